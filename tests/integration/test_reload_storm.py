# SPDX-License-Identifier: Apache-2.0
"""test_reload_storm.py — SIGHUP storm while the model file is rewritten in place.

The model file tridentd's configuration names is rewritten in place (open
O_TRUNC, written in chunks, no rename) over and over with a good model, a
corrupt file, a model with another sample rate and a file truncated
mid-write, each time followed by a SIGHUP, for TRIDENT_STORM_SECONDS
(default 20; the reviewer's reproducer ran 60).  The loader once mapped the
file and died of SIGBUS when it shrank under it (issue 16, item 1).

Checks, per build in $TRIDENT_BUILDS: the daemon is alive after the storm;
signals may coalesce, so no count of HUPs is asserted, but every
"SIGHUP: reloading" line has an outcome line ("reload done" or "reload
refused"), and at least one reload happened; a subscriber still gets
messages afterwards; SIGTERM exits 0; no sanitizer report.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-storm-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SECONDS = float(os.environ.get("TRIDENT_STORM_SECONDS", "20"))

with open(os.path.join(ROOT, "model", "cwru.safetensors"), "rb") as f:
    GOOD = f.read()
harness.make_model(os.path.join(TMP, "rate.safetensors"), seed=3, rate=8000)
with open(os.path.join(TMP, "rate.safetensors"), "rb") as f:
    WRONG_RATE = f.read()
CORRUPT = GOOD[:8] + b"{not json" + GOOD[17:]


def rewrite(path, data, stop_at=None):
    """Rewrite path in place (same inode) in 64 KiB chunks; stop_at: leave
    the file truncated after that many bytes (a writer killed mid-write)."""
    n = len(data) if stop_at is None else stop_at
    with open(path, "r+b" if os.path.exists(path) else "wb") as f:
        f.truncate(0)
        for i in range(0, n, 65536):
            f.write(data[i:min(n, i + 65536)])
            f.flush()


def run(build):
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    model = os.path.join(TMP, f"{tag}.safetensors")
    rewrite(model, GOOD)
    ep = harness.free_endpoint()
    conf = os.path.join(TMP, f"{tag}.conf")
    wav = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")
    with open(conf, "w") as f:
        f.write(f'model = "{model}";\npublish = {{ endpoints = [ "{ep}" ]; }};\n'
                f'streams = ( {{ name = "ball"; type = "file"; path = "{wav}"; '
                f'pace = "realtime"; loop = true; }} );\n')
    errpath = os.path.join(TMP, f"{tag}.stderr")
    with open(errpath, "w") as errf:
        p = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL, stderr=errf)

    def err():
        with open(errpath, errors="replace") as f:
            return f.read()

    deadline = time.monotonic() + 60
    while "ready" not in err().lower() and "stream ball" not in err() \
            and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    kinds = [lambda: rewrite(model, GOOD),
             lambda: rewrite(model, CORRUPT),
             lambda: rewrite(model, WRONG_RATE),
             lambda: rewrite(model, GOOD, stop_at=len(GOOD) // 2)]
    sent, i, end = 0, 0, time.monotonic() + SECONDS
    while time.monotonic() < end and p.poll() is None:
        kinds[i % len(kinds)]()
        p.send_signal(signal.SIGHUP)
        sent += 1
        i += 1
        # the next rewrite often lands while this reload is reading
        time.sleep(0.005 * (i % 5))
    alive = p.poll() is None
    T.ok(f"{tag}: alive after {sent} rewrite+SIGHUP rounds", alive,
         f"rc={p.poll()} {err()[-400:]}")
    if not alive:
        return
    rewrite(model, GOOD)
    # let the last reloads finish: every started reload gets its outcome line
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        e = err()
        started = e.count("SIGHUP: reloading")
        outcome = e.count("reload done") + e.count("reload refused")
        if started == outcome:
            break
        time.sleep(0.2)
    T.ok(f"{tag}: every logged reload applied or refused ({started} reloads, "
         f"{outcome} outcomes, {sent} HUPs sent)", started == outcome and 0 < started <= sent,
         e[-400:])
    T.ok(f"{tag}: a refusal names a file that changed or is bad",
         "reload refused" in e)
    sub = harness.subscriber(ep)
    got = sub.poll(60000)
    sub.close()
    T.ok(f"{tag}: still publishes after the storm", got)
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(120)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    T.ok(f"{tag}: exit 0 after SIGTERM", rc == 0, f"rc={rc} {err()[-300:]}")
    T.ok(f"{tag}: no sanitizer report", not harness.sanitizer_report(err()),
         harness.sanitizer_report(err()))


for b in os.environ.get("TRIDENT_BUILDS", "build").split():
    run(b)
T.done()
