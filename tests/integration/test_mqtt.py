#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""test_mqtt.py — the MQTT sink (daemon/sink_mqtt.c) through the real daemon
and a real mosquitto on a free loopback port, for each build in
$TRIDENT_BUILDS.  The CWRU fixtures normal.wav and inner.wav are replayed at
their real rate, looping; a paho client listens on the broker, a ZeroMQ
subscriber on the daemon.

1. tridentd --replay ... --mqtt URL (the default topic trident/HOST):
   status "online" retained; a Home Assistant discovery config retained
   per stream (JSON with unique_id, state_topic, availability_topic,
   device); a retained state per stream equal to the daemon's own state
   (the ZeroMQ "_state" snapshot and the results' "state"); the events on
   TOPIC/STREAM/event are the ZeroMQ "_events".
2. The will: SIGKILL the daemon and "offline" arrives on TOPIC/status,
   retained.
3. Reconnect (a config file: the same two files as streams, mqtt.topic,
   mqtt.keepalive = 5, mqtt.results = true; -c does not go with --replay): mosquitto
   stopped and started again on the same port (no persistence: it forgot
   everything); a fresh subscriber gets status online, the discovery
   configs and the states again.
4. Stall: the broker SIGSTOPped for 8 s; ZeroMQ's result windows keep
   arriving at the realtime rate (>= 60 % of 2 streams x 12000/1024 per
   second); the mqtt entry of _stats "sinks" keeps counting (queued grows;
   with mqtt.results on, the results not handed to the stalled broker are
   "lost");
   after SIGCONT the sink publishes again; SIGTERM: exit 0, status
   "offline" retained.
5. mqtt.broker = "http://x": tridentd --check exits 78 naming mqtt.broker.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import paho.mqtt.client as paho
import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import (BUILDS, ROOT, Tap, binpath, free_endpoint, free_port,  # noqa: E402
                     sanitizer_report, tmpdir)

# Run directly (not through tests/run.sh), TSan builds still need the libzmq suppression.
_supp = os.path.join(HERE, "..", "tsan.supp")
if "suppressions=" not in os.environ.get("TSAN_OPTIONS", ""):
    os.environ["TSAN_OPTIONS"] = (os.environ.get("TSAN_OPTIONS", "halt_on_error=1")
                                  + ":suppressions=" + os.path.abspath(_supp))

tap = Tap()
T = tmpdir("trident-mqtt-")
FIX = os.path.join(ROOT, "tests", "fixtures", "cwru")
WAVS = [os.path.join(FIX, "normal.wav"), os.path.join(FIX, "inner.wav")]
STREAMS = ["normal", "inner"]
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
RATE, HOP = 12000, 1024
STALL_S = 8.0
# what the daemon calls this machine in topics and Home Assistant ids
HOST = socket.gethostname().split(".")[0] or "localhost"
NODE = re.sub(r"[^A-Za-z0-9_-]", "_", HOST)


def wait(cond, seconds, step=0.05):
    """Poll cond() until true or seconds passed; its last value."""
    end = time.monotonic() + seconds
    while True:
        v = cond()
        if v or time.monotonic() > end:
            return v
        time.sleep(step)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


class Broker:
    """A real mosquitto on 127.0.0.1:port, no persistence."""

    def __init__(self, port):
        self.port, self.p = port, None
        self.conf = os.path.join(T, f"mosquitto-{port}.conf")
        with open(self.conf, "w") as f:
            f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")

    def start(self):
        self.log = open(os.path.join(T, f"mosquitto-{self.port}.log"), "ab")
        self.p = subprocess.Popen(["mosquitto", "-c", self.conf], stdout=self.log,
                                  stderr=subprocess.STDOUT)
        return wait(lambda: self.p.poll() is None and port_open(self.port), 20)

    def stop(self):
        if self.p and self.p.poll() is None:
            self.p.send_signal(signal.SIGCONT)
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.p = None


class Listener:
    """A paho client subscribed to '#': every message as (monotonic time,
    topic, payload text, retain)."""

    def __init__(self, port):
        self.lk = threading.Lock()
        self.msgs, self.subscribed = [], threading.Event()
        self.c = paho.Client(client_id="", clean_session=True)
        self.c.on_connect = lambda c, u, f, rc: c.subscribe("#", 1)
        self.c.on_subscribe = lambda c, u, mid, q: self.subscribed.set()
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port, 30)
        self.c.loop_start()
        self.ok = self.subscribed.wait(20)

    def _msg(self, c, u, m):
        with self.lk:
            self.msgs.append((time.monotonic(), m.topic, m.payload.decode("utf-8", "replace"),
                              bool(m.retain)))

    def n(self):
        with self.lk:
            return len(self.msgs)

    def find(self, topic, pred=None, since=0):
        """Messages on topic (from index since) for which pred(payload)."""
        with self.lk:
            return [m for m in self.msgs[since:]
                    if m[1] == topic and (pred is None or pred(m[2]))]

    def wait(self, topic, pred=None, seconds=30, since=0):
        r = wait(lambda: self.find(topic, pred, since), seconds)
        return r[-1] if r else None

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


class Zmq:
    """A thread draining a ZeroMQ subscriber: (monotonic time, topic, JSON)."""

    def __init__(self, endpoint, topic=b""):
        self.lk = threading.Lock()
        self.msgs, self.stop = [], False
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVHWM, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, topic)
        self.sock.connect(endpoint)
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.stop:
            if self.sock.poll(100):
                parts = self.sock.recv_multipart()
                try:
                    body = json.loads(parts[-1])
                except ValueError:
                    continue
                with self.lk:
                    self.msgs.append((time.monotonic(), parts[0].decode(errors="replace"), body))
        self.sock.close()

    def results(self, t0=0.0, t1=float("inf")):
        with self.lk:
            return [b for t, _, b in self.msgs if t0 <= t < t1 and "label" in b]

    def topic(self, topic):
        with self.lk:
            return [b for _, tp, b in self.msgs if tp == topic]

    def close(self):
        self.stop = True
        self.th.join(5)


class Daemon:
    def __init__(self, build, args, name):
        self.err_path = os.path.join(T, f"{name}.err")
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen([binpath("tridentd", build), *args],
                                  stdout=subprocess.DEVNULL, stderr=self.err)

    def stderr(self):
        with open(self.err_path, errors="replace") as f:
            return f.read()

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()

    def term(self, seconds=60):
        if self.p.poll() is None:
            self.p.terminate()
        try:
            return self.p.wait(seconds)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None


def jload(s):
    try:
        return json.loads(s)
    except ValueError:
        return None


def disc_topic(stream):
    return f"homeassistant/sensor/{NODE}/{re.sub(r'[^A-Za-z0-9_-]', '_', stream)}/config"


def check_discovery(tag, lst, topic_prefix, want_retained):
    """Every stream's discovery config from lst (a Listener): valid JSON
    naming the stream's state topic and the availability topic."""
    bad = []
    for s in STREAMS:
        m = lst.wait(disc_topic(s), seconds=30)
        d = jload(m[2]) if m else None
        if not (isinstance(d, dict) and d.get("unique_id")
                and d.get("state_topic") == f"{topic_prefix}/{s}/state"
                and d.get("availability_topic") == f"{topic_prefix}/status"
                and isinstance(d.get("device"), dict) and d["device"].get("identifiers")
                and (m[3] or not want_retained)):
            bad.append((s, m))
    uids = [jload(m[2]).get("unique_id") for s in STREAMS
            for m in [lst.wait(disc_topic(s), seconds=0)] if m and jload(m[2])]
    tap.ok(f"{tag}: a discovery config per stream{' (retained)' if want_retained else ''}: "
           "unique_id, state_topic, availability_topic, device",
           not bad and len(set(uids)) == len(STREAMS), f"{bad} {uids}")


def section_replay(build, tag):
    """1 and 2: the --replay command line, the default topic, then SIGKILL."""
    broker = Broker(free_port())
    lst = late = zs = d = None
    prefix = f"trident/{HOST}"
    try:
        tap.ok(f"{tag}: mosquitto started", broker.start())
        lst = Listener(broker.port)
        ep = free_endpoint()
        zs = Zmq(ep)
        d = Daemon(build, ["--replay", *WAVS, "--pace", "realtime", "--loop",
                           "--mqtt", f"mqtt://127.0.0.1:{broker.port}", "--endpoint", ep,
                           "--stats-interval", "1", "--wait-subscribers", "1"], f"replay-{tag}")
        on = lst.wait(f"{prefix}/status", lambda p: p == "online", 60)
        tap.ok(f"{tag}: status online on {prefix}/status", on is not None and d.p.poll() is None,
               d.stderr()[-400:])
        # every stream's first event on both sides
        got = wait(lambda: all(lst.find(f"{prefix}/{s}/event") for s in STREAMS)
                   and all(any(e.get("stream") == s for e in zs.topic("_events"))
                           for s in STREAMS), 90)
        ev_ok, why = bool(got), []
        for s in STREAMS:
            mq = [jload(m[2]) for m in lst.find(f"{prefix}/{s}/event")]
            zq = [e for e in zs.topic("_events") if e.get("stream") == s]
            k = min(len(mq), len(zq))
            key = [(e or {}).get(f) for e in mq[:k] for f in ("from", "to", "seq", "at_seq")]
            zkey = [e.get(f) for e in zq[:k] for f in ("from", "to", "seq", "at_seq")]
            if not (k >= 1 and key == zkey and mq[0].get("from") is None
                    and mq[0].get("stream") == s):
                ev_ok = False
                why.append((s, mq[:2], zq[:2]))
        tap.ok(f"{tag}: events on TOPIC/STREAM/event are ZeroMQ's _events (from, to, seq)",
               ev_ok, f"{why}"[:600])

        # a late subscriber: what is retained
        late = Listener(broker.port)
        st = late.wait(f"{prefix}/status", seconds=20)
        tap.ok(f"{tag}: a late subscriber gets status online, retained",
               st is not None and st[2] == "online" and st[3], f"{st}")
        check_discovery(tag, late, prefix, True)
        # the daemon's own states: a _state snapshot (a subscription to it
        # asks for one) and the latest results
        zst = Zmq(ep, b"_state")
        snap = wait(lambda: zst.topic("_state"), 30)
        zst.close()
        zstate = {s.get("stream"): s.get("state")
                  for s in (snap[-1].get("streams", []) if snap else [])}
        bad = []
        for s in STREAMS:
            m = late.wait(f"{prefix}/{s}/state", seconds=20)
            j = jload(m[2]) if m else None
            res = [r for r in zs.results() if r.get("stream") == s]
            if not (j and m[3] and j.get("state") == zstate.get(s) is not None
                    and res and res[-1].get("state") == j["state"]
                    and j.get("stream") == s and j.get("model") == res[-1].get("model")):
                bad.append((s, m, zstate.get(s), res[-1].get("state") if res else None))
        tap.ok(f"{tag}: retained TOPIC/STREAM/state = the daemon's state (_state and results)",
               not bad and set(zstate) >= set(STREAMS), f"{bad} {zstate}")
        tap.ok(f"{tag}: the states are the recordings' (normal, inner)",
               [zstate.get(s) for s in STREAMS] == STREAMS, f"{zstate}")
        late.close()
        late = None

        # 2. the will
        n0 = lst.n()
        tk = time.monotonic()
        d.kill()
        off = lst.wait(f"{prefix}/status", lambda p: p == "offline", 60, since=n0)
        if off:
            tap.note(f"the will arrived {off[0] - tk:.2f} s after SIGKILL")
        tap.ok(f"{tag}: SIGKILL: the will, offline, arrives on TOPIC/status", off is not None)
        late = Listener(broker.port)
        st = late.wait(f"{prefix}/status", seconds=20)
        tap.ok(f"{tag}: ... and stays retained", st is not None and st[2] == "offline" and st[3],
               f"{st}")
        rep = sanitizer_report(d.stderr())
        tap.ok(f"{tag}: no sanitizer report (replay daemon)", not rep, rep)
    finally:
        for x in (late, lst, zs):
            if x:
                x.close()
        if d:
            d.kill()
        broker.stop()


def section_conf(build, tag):
    """3 and 4: a config file's streams, mqtt.topic and keepalive."""
    broker = Broker(free_port())
    lst = fresh = zs = d = None
    prefix = f"tt/{tag}-{os.getpid()}"
    ep = free_endpoint()
    conf = os.path.join(T, f"{tag}.conf")
    with open(conf, "w") as f:
        f.write(f'model = "{MODEL}";\n'
                f'publish = {{ endpoints = [ "{ep}" ]; stats_interval = 1.0; }};\n'
                "streams = (\n" + ",\n".join(
                    f'  {{ name = "{s}"; type = "file"; path = "{w}"; pace = "realtime"; '
                    "loop = true; }" for s, w in zip(STREAMS, WAVS)) + "\n);\n"
                f'mqtt = {{ broker = "mqtt://127.0.0.1:{broker.port}"; topic = "{prefix}"; '
                "keepalive = 5; results = true; };\n")
    try:
        tap.ok(f"{tag}: mosquitto started (config run)", broker.start())
        lst = Listener(broker.port)
        zs = Zmq(ep)
        d = Daemon(build, ["-c", conf], f"conf-{tag}")
        tap.ok(f"{tag}: config run: online and every state",
               lst.wait(f"{prefix}/status", lambda p: p == "online", 60) is not None
               and wait(lambda: all(lst.find(f"{prefix}/{s}/state") for s in STREAMS), 60),
               d.stderr()[-400:])
        lst.close()
        lst = None

        # 3. broker stopped, started again on the same port
        broker.stop()
        time.sleep(2.0)
        tap.ok(f"{tag}: the daemon keeps running without its broker", d.p.poll() is None)
        tb = time.monotonic()
        tap.ok(f"{tag}: mosquitto started again on the same port", broker.start())
        fresh = Listener(broker.port)
        on = fresh.wait(f"{prefix}/status", lambda p: p == "online", 90)
        if on:
            tap.note(f"online again {on[0] - tb:.2f} s after the broker was restarted "
                     "(2 s away)")
        tap.ok(f"{tag}: reconnect: status online again", on is not None,
               d.stderr()[-400:])
        check_discovery(f"{tag}: reconnect", fresh, prefix, False)
        ok = wait(lambda: all(fresh.find(f"{prefix}/{s}/state",
                                         lambda p: (jload(p) or {}).get("state") == s)
                              for s in STREAMS), 60)
        tap.ok(f"{tag}: reconnect: every state again", bool(ok),
               f"{[fresh.find(f'{prefix}/{s}/state') for s in STREAMS]}"[:400])

        # 4. stall
        def mq_account():
            for b in reversed(zs.topic("_stats")):
                for a in b.get("sinks", []) or []:
                    if a.get("sink") == "mqtt":
                        return a
            return None

        wait(lambda: mq_account() is not None, 20)
        a0 = mq_account()
        base_t1 = time.monotonic()
        with zs.lk:
            first = next((t for t, _, b in zs.msgs if "label" in b), base_t1)
        base_t0 = max(first, base_t1 - 10.0)
        base = len(zs.results(base_t0, base_t1))
        n_stats0 = len(zs.topic("_stats"))
        broker.p.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            time.sleep(STALL_S)
            t1 = time.monotonic()
            wait(lambda: len(zs.topic("_stats")) > n_stats0 + 1, 10)
            a1 = mq_account()
        finally:
            broker.p.send_signal(signal.SIGCONT)
        during = zs.results(t0, t1)
        expect = len(STREAMS) * RATE / HOP * (t1 - t0)
        per = {s: sum(1 for r in during if r.get("stream") == s) for s in STREAMS}
        tap.note(f"stall {t1 - t0:.1f} s: {len(during)} result windows on ZeroMQ "
                 f"(expected {expect:.0f} at the realtime rate; {per}); the {base_t1 - base_t0:.1f} s "
                 f"before: {base} ({len(STREAMS) * RATE / HOP * (base_t1 - base_t0):.0f} "
                 "expected)")
        tap.note(f"mqtt sink account before the stall {a0}, after {a1}")
        tap.ok(f"{tag}: stall: ZeroMQ results keep the realtime rate (>= 60 %)",
               len(during) >= 0.6 * expect and all(per[s] >= 0.6 * expect / len(STREAMS)
                                                   for s in STREAMS),
               f"{len(during)} of {expect:.0f}")
        tap.ok(f"{tag}: stall: the _stats mqtt account keeps counting (queued grows)",
               a0 is not None and a1 is not None and a1["queued"] > a0["queued"]
               and a1["dropped"] >= a0["dropped"] and a1["lost"] >= a0["lost"], f"{a0} {a1}")
        tap.ok(f"{tag}: stall: the results the broker could not take are counted as lost",
               a0 is not None and a1 is not None and a1["lost"] > a0["lost"], f"{a0} {a1}")
        tap.ok(f"{tag}: stall: the daemon kept running", d.p.poll() is None)
        # after SIGCONT: the sink publishes again (its P/stats probe, about
        # every second once nothing waits for an acknowledgement)
        n1 = fresh.n()
        back = fresh.wait(f"{prefix}/stats", seconds=90, since=n1)
        tap.ok(f"{tag}: after SIGCONT the sink publishes again", back is not None,
               d.stderr()[-400:])
        if back:
            tap.note(f"publishing again {back[0] - t1:.2f} s after SIGCONT")
        a2 = mq_account()
        tap.note(f"mqtt sink account after recovery {a2}")

        n2 = fresh.n()
        rc = d.term()
        tap.ok(f"{tag}: SIGTERM: exit 0", rc == 0, f"rc {rc} {d.stderr()[-400:]}")
        st = fresh.find(f"{prefix}/status", since=n2)
        tap.ok(f"{tag}: a clean exit says offline", bool(st) and st[-1][2] == "offline", f"{st}")
        for ln in d.stderr().splitlines():
            if " mqtt: " in ln:
                tap.note(f"daemon: {ln}")
        rep = sanitizer_report(d.stderr())
        tap.ok(f"{tag}: no sanitizer report (config daemon)", not rep, rep)
    finally:
        if broker.p:
            broker.p.send_signal(signal.SIGCONT)
        for x in (fresh, lst, zs):
            if x:
                x.close()
        if d:
            d.kill()
        broker.stop()


def section_check(build, tag):
    """5. a bad mqtt.broker."""
    for broker, want in (("http://x", 78), ("mqtt://127.0.0.1:1883", 0)):
        conf = os.path.join(T, f"check-{tag}.conf")
        with open(conf, "w") as f:
            f.write(f'model = "{MODEL}";\n'
                    f'publish = {{ endpoints = [ "{free_endpoint()}" ]; }};\n'
                    f'streams = ( {{ name = "n"; type = "file"; path = "{WAVS[1]}"; }} );\n'
                    f'mqtt = {{ broker = "{broker}"; }};\n')
        r = subprocess.run([binpath("tridentd", build), "--check", "-c", conf],
                           capture_output=True, text=True, timeout=120)
        if want:
            tap.ok(f"{tag}: --check: mqtt.broker = \"{broker}\": exit 78 naming mqtt.broker",
                   r.returncode == 78 and "mqtt.broker" in r.stderr,
                   f"rc {r.returncode} {r.stderr[-300:]}")
        else:
            tap.ok(f"{tag}: --check: mqtt.broker = \"{broker}\": exit 0", r.returncode == 0,
                   f"rc {r.returncode} {r.stderr[-300:]}")


for b in BUILDS:
    name = os.path.basename(b)
    try:
        binpath("tridentd", b)
    except FileNotFoundError:
        tap.note(f"{name}: no tridentd, skipped")
        continue
    section_check(b, name)
    section_replay(b, name)
    section_conf(b, name)
tap.done()
