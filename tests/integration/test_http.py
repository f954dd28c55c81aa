# SPDX-License-Identifier: Apache-2.0
"""test_http.py — the HTTP sink in the real daemon (daemon/sink_http.c).

tridentd replays the CWRU fixtures in real time, in a loop, with --http and a
ZeroMQ endpoint, and:
  - `promtool check metrics` accepts /metrics, and every stream has windows;
  - a real Prometheus scraping it every second answers trident_windows_total
    > 0 for every stream through its query API;
  - headless Chromium runs the page: the DOM holds every stream's card with
    its live state (not "waiting"), and a screenshot has many colours,
    among them the state badges' green (normal) and amber (a fault);
  - 40 clients that send half a request and never finish, plus one that asks
    for /metrics again and again and never reads, do not slow ZeroMQ: the
    windows received while they stall come at the real-time rate (counted
    against the model's rate; generous margin, no wall-time bound on
    anything but the rate), the sink's drops are counted in /metrics, and
    /metrics is served again once they close.
Deadlines are generous: the suite must pass with both cores busy.
"""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, Tap, binpath, free_port, subscriber, tmpdir  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "cwru")
STREAMS = ["ball", "inner", "normal", "outer"]
MODEL_RATE, HOP = 12000, 1024       # the shipped model's rate; --hop's default


def get(url, timeout=10):
    """(status, headers, body bytes); status 0 when no answer came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (OSError, urllib.error.URLError):
        return 0, None, b""


def wait_for(pred, seconds, step=0.5):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def metric_values(text, name):
    """{stream: value} of the samples of NAME{stream="..."} in /metrics."""
    out = {}
    for line in text.splitlines():
        if line.startswith(name + "{stream=\""):
            labels, _, value = line.rpartition(" ")
            out[labels[len(name) + 9:].split("\"")[0]] = float(value)
    return out


# ---- PNG without PIL: zlib and the five row filters ----------------------------

def png_pixels(path):
    """(width, height, list of (r, g, b)) of an 8-bit RGB or RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), f"depth {depth} colour type {ctype}"
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    px = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if f == 1:
                row[i] = (row[i] + a) & 255
            elif f == 2:
                row[i] = (row[i] + b) & 255
            elif f == 3:
                row[i] = (row[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        px.extend(tuple(row[i:i + 3]) for i in range(0, stride, bpp))
        prev = row
    return w, h, px


def near(px, rgb, tol=12):
    return sum(1 for p in px if all(abs(p[k] - rgb[k]) <= tol for k in range(3)))


# ---- the daemon ------------------------------------------------------------------

class Daemon:
    def __init__(self, tmp):
        self.http = free_port()
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        files = [os.path.join(FIXTURES, s + ".wav") for s in STREAMS]
        self.err = open(os.path.join(tmp, "tridentd.err"), "wb")
        self.p = subprocess.Popen([binpath("tridentd"), "--replay", *files, "--pace", "realtime",
                                   "--loop", "--stats-interval", "2",
                                   "--http", f"127.0.0.1:{self.http}",
                                   "--endpoint", self.endpoint],
                                  stdout=subprocess.DEVNULL, stderr=self.err)
        self.base = f"http://127.0.0.1:{self.http}"

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.err.close()
        return self.p.returncode


def count_windows(sub, seconds):
    """Windows per stream received on SUB during SECONDS."""
    n = {s: 0 for s in STREAMS}
    end = time.monotonic() + seconds
    while True:
        left = end - time.monotonic()
        if left <= 0:
            break
        if sub.poll(int(left * 1000) + 1):
            parts = sub.recv_multipart()        # [topic, JSON]
            try:
                m = json.loads(parts[-1])
            except ValueError:
                continue
            if "label" in m and m.get("stream") in n:
                n[m["stream"]] += 1
    return n


def check_prometheus(t, d, tmp):
    prom = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.path.exists(prom):
        t.ok("prometheus: scrapes trident_windows_total # SKIP no prometheus", True)
        return
    port = free_port()
    conf = os.path.join(tmp, "prometheus.yml")
    with open(conf, "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: trident\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{d.http}']\n")
    log = open(os.path.join(tmp, "prometheus.log"), "wb")
    p = subprocess.Popen([prom, f"--config.file={conf}",
                          f"--storage.tsdb.path={os.path.join(tmp, 'tsdb')}",
                          f"--web.listen-address=127.0.0.1:{port}"],
                         stdout=log, stderr=subprocess.STDOUT)
    q = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(
        {"query": "trident_windows_total"})

    def streams_seen():
        st, _, body = get(q, timeout=5)
        if st != 200:
            return None
        try:
            res = json.loads(body)["data"]["result"]
        except (ValueError, KeyError):
            return None
        seen = {r["metric"].get("stream"): float(r["value"][1]) for r in res}
        return seen if all(seen.get(s, 0) > 0 for s in STREAMS) else None

    try:
        seen = wait_for(streams_seen, 120, 1)
        t.ok("prometheus: trident_windows_total > 0 for every stream via its query API",
             bool(seen), f"last answer: {get(q, 5)[2][:300]!r}")
        if seen:
            t.note("prometheus sees " + ", ".join(f"{k}={v:.0f}" for k, v in sorted(seen.items())))
        st, _, body = get(f"http://127.0.0.1:{port}/api/v1/targets", 5)
        health = [a.get("health") for a in json.loads(body)["data"]["activeTargets"]] if st == 200 else []
        t.ok("prometheus: the target is up", health == ["up"], f"{health}")
    finally:
        p.terminate()
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()


def chromium(args, timeout=180):
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    return subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-dev-shm-usage", "--no-first-run", *args],
                          capture_output=True, timeout=timeout)


def check_page(t, d, tmp):
    if not (shutil.which("chromium") or os.path.exists("/usr/bin/chromium")):
        t.ok("page: chromium shows the states # SKIP no chromium", True)
        return
    import re
    dom = chromium(["--dump-dom", "--virtual-time-budget=8000", d.base + "/"]).stdout.decode(
        errors="replace")
    cards = dict(re.findall(r'data-stream="([^"]+)".*?class="badge[^"]*">([^<]*)<', dom, re.S))
    t.ok("page: a card per stream after the script ran", set(cards) == set(STREAMS),
         f"cards {cards}; DOM {len(dom)} bytes")
    # the replayed fixtures: each file's own class (the shipped model gets them right)
    t.ok("page: every card shows a live state", all(cards.get(s) == s for s in STREAMS),
         f"{cards}")
    t.ok("page: connected (live)", 'id="conn" class="live"' in dom)

    shot = os.path.join(tmp, "page.png")
    r = chromium([f"--screenshot={shot}", "--window-size=1280,900",
                  "--virtual-time-budget=8000", d.base + "/"])
    if not t.ok("page: a screenshot", os.path.exists(shot), r.stderr.decode(errors="replace")[-300:]):
        return
    w, h, px = png_pixels(shot)
    colours = {(p[0] >> 4, p[1] >> 4, p[2] >> 4) for p in px}
    bg = max(set(px[::97]), key=px[::97].count)
    share = sum(1 for p in px[::7] if p == bg) / len(px[::7])
    t.note(f"screenshot {w}x{h}: {len(colours)} colours (4 bits each), background {share:.0%}")
    t.ok("page: screenshot not near-uniform", len(colours) >= 20 and share < 0.95,
         f"{len(colours)} colours, background {share:.0%}")
    green, amber = near(px, (0x22, 0xc5, 0x5e)), near(px, (0xf5, 0x9e, 0x0b))
    t.ok("page: the badges' colours (normal green, fault amber)", green > 300 and amber > 900,
         f"green {green} px, amber {amber} px")


def stall_clients(port):
    """40 half requests and one client that asks without reading."""
    # the reader that never reads comes first: the half requests fill the
    # per-address connection limit (16), after which new connections close
    hog = socket.create_connection(("127.0.0.1", port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.setblocking(False)
    sent = 0
    for _ in range(20000):
        try:
            hog.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            sent += 1
        except BlockingIOError:
            time.sleep(0.05)                # the server has answers it cannot send
            try:
                hog.send(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                sent += 1
            except (BlockingIOError, OSError):
                break
        except OSError:
            break
    socks = [hog]
    for _ in range(40):
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            socks.append(s)
        except OSError:
            pass
    return socks, sent


def check_stall(t, d):
    ctx = zmq.Context.instance()
    sub = subscriber(d.endpoint, ctx=ctx)
    count_windows(sub, 3)                       # subscription settled, queue drained
    base = count_windows(sub, 8)
    socks, sent = stall_clients(d.http)
    span = 12.0
    during = count_windows(sub, span)
    want = span * MODEL_RATE / HOP
    t.note(f"windows in 8 s before: {base}; in {span:.0f} s with {len(socks) - 1} stalled clients "
           f"and {sent} unread requests: {during} (real time: {want:.0f} per stream)")
    t.ok("stall: ZeroMQ windows keep the real-time rate while HTTP clients stall",
         all(during[s] >= 0.75 * want for s in STREAMS), f"{during}, want >= {0.75 * want:.0f}")
    t.ok("stall: the daemon is still running", d.p.poll() is None)
    for s in socks:
        s.close()
    sub.close()

    def metrics():
        st, _, body = get(d.base + "/metrics", 5)
        return body.decode() if st == 200 else None
    text = wait_for(metrics, 60, 0.5)
    t.ok("stall: /metrics served again once the stalled clients closed", bool(text))
    text = text or ""
    t.ok("stall: the sink's queue and drops are counted",
         'trident_sink_dropped_total{sink="http"}' in text and
         'trident_sink_queued_total{sink="http"}' in text)
    t.ok("stall: the stalled connections are counted",
         any(line.startswith("trident_http_connections_total ") and float(line.split()[1]) >= 41
             for line in text.splitlines()))


def main():
    t = Tap()
    tmp = tmpdir("trident-http-")
    d = Daemon(tmp)
    try:
        def metrics_ready():
            st, hdr, body = get(d.base + "/metrics", 5)
            if st != 200:
                return None
            w = metric_values(body.decode(), "trident_windows_total")
            return (hdr, body) if all(w.get(s, 0) > 0 for s in STREAMS) else None
        got = wait_for(metrics_ready, 90)
        if not t.ok("metrics: every stream has windows", bool(got),
                    open(os.path.join(tmp, "tridentd.err"), errors="replace").read()[-800:]):
            return
        hdr, body = got
        t.ok("metrics: the exposition format's content type",
             hdr.get("Content-Type", "").startswith("text/plain; version=0.0.4"))
        promtool = shutil.which("promtool") or "/usr/bin/promtool"
        if os.path.exists(promtool):
            r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                               timeout=60)
            t.ok("metrics: promtool check metrics", r.returncode == 0,
                 (r.stdout + r.stderr).decode(errors="replace")[:500])
        else:
            t.ok("metrics: promtool check metrics # SKIP no promtool", True)

        st, _, body = get(d.base + "/api/status")
        j = json.loads(body) if st == 200 else {}
        states = {s["stream"]: s.get("state") for s in j.get("streams", [])}
        t.ok("status: every stream with its state", states == {s: s for s in STREAMS}, f"{states}")
        t.ok("status: first events, newest last",
             len(j.get("events", [])) >= 4 and
             all(a["received"] <= b["received"] for a, b in zip(j["events"], j["events"][1:])))

        check_prometheus(t, d, tmp)
        check_page(t, d, tmp)
        check_stall(t, d)
    finally:
        rc = d.stop()
        t.ok("tridentd exits 0 on SIGTERM", rc == 0, f"status {rc}")
    t.done()


if __name__ == "__main__":
    main()
