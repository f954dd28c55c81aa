# SPDX-License-Identifier: Apache-2.0
"""test_newcomer.py — what a newcomer hit first (issue 16, items 15-17).

  1. the package's example config has streams = (): the daemon runs, and
     both its log and STATUS= say that nothing is configured;
  2. a replay beside the service: --no-publish binds no port (it works while
     another process holds the endpoint) and writes the messages on stdout;
     with --endpoint it is refused, exit 64;
  3. a file stream's channel_names must match its file's channels: refused
     by --check with one line naming the file, exit 78;
  4. trident-sub on an endpoint where nothing publishes says so once, after
     a few seconds, and still exits 0 at SIGTERM.
"""
import os
import signal
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
ROOT = harness.ROOT
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
WAV = os.path.join(ROOT, "tests", "fixtures", "cwru", "ball.wav")
TMP = harness.tmpdir("trident-new-")

for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)

    # 1. no streams
    conf = os.path.join(TMP, f"{tag}-empty.conf")
    ep = harness.free_endpoint()
    with open(conf, "w") as f:
        f.write(f'model = "{MODEL}";\npublish = {{ endpoints = [ "{ep}" ]; }};\nstreams = ( );\n')
    sd = harness.NotifySocket(os.path.join(TMP, f"{tag}-notify"))
    p = subprocess.Popen([exe, "-c", conf], env=dict(os.environ, NOTIFY_SOCKET=sd.path),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    ready = sd.wait_for("READY=1", 60)
    end = time.monotonic() + 30
    status = []
    while not status and time.monotonic() < end:
        sd.pump(0.2)
        status = [m for m in sd.messages() if "STATUS=no streams configured" in m]
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    err = p.stderr.read()
    sd.close()
    T.ok(f"{tag}: streams = (): running (READY=1), STATUS= says no streams are configured",
         ready is not None and status and conf in status[0], f"{status[:1]}")
    T.ok(f"{tag}: streams = (): one warning in the log, exit 0 at SIGTERM",
         p.returncode == 0 and err.count("no streams configured") == 1, err[-300:])

    # 2. --no-publish beside a process that holds the endpoint
    ctx = zmq.Context.instance()
    holder = ctx.socket(zmq.PUB)
    holder.setsockopt(zmq.LINGER, 0)
    held = "tcp://127.0.0.1:5556"        # the service's default port, which a replay uses
    try:
        holder.bind(held)
    except zmq.ZMQError:
        pass                             # held already: by something else
    r = subprocess.run([exe, "--replay", WAV, "--stats-interval", "0"],
                       capture_output=True, text=True, timeout=120)
    T.ok(f"{tag}: without --no-publish a replay on a held endpoint fails (the clash)",
         r.returncode != 0 and "in use" in r.stderr, f"rc {r.returncode}: {r.stderr[-200:]}")
    r = subprocess.run([exe, "--replay", WAV, "--no-publish", "--stats-interval", "0"],
                       capture_output=True, text=True, timeout=120)
    n = sum('"label"' in ln for ln in r.stdout.splitlines())
    T.ok(f"{tag}: --no-publish: the replay runs while the port is held, {n} windows on stdout",
         r.returncode == 0 and n == 35 and "publishing on standard output" in r.stderr,
         f"rc {r.returncode}: {r.stderr[-200:]}")
    holder.close()
    r = subprocess.run([exe, "--replay", WAV, "--no-publish", "--endpoint", held],
                       capture_output=True, text=True, timeout=60)
    T.ok(f"{tag}: --no-publish with --endpoint: refused, exit 64",
         r.returncode == 64 and "--no-publish" in r.stderr, f"rc {r.returncode}: {r.stderr}")

    # 3. channel_names against the file's channels
    conf = os.path.join(TMP, f"{tag}-names.conf")
    with open(conf, "w") as f:
        f.write(f'model = "{MODEL}";\nstreams = (\n  {{ name = "b"; type = "file"; path = "{WAV}"; '
                'channel_names = [ "x", "y" ]; } );\n')
    r = subprocess.run([exe, "--check", "-c", conf], capture_output=True, text=True, timeout=60)
    errs = [ln for ln in r.stderr.splitlines() if "error" in ln]
    T.ok(f"{tag}: two channel_names for a mono file: --check exits 78, one line naming the file",
         r.returncode == 78 and len(errs) == 1 and WAV in errs[0] and "channel_names" in errs[0],
         f"rc {r.returncode}: {r.stderr[-300:]}")

    # 4. trident-sub and silence (once: it is the same program in every build)
    if build == os.environ.get("TRIDENT_BUILDS", "build").split()[0]:
        sub = subprocess.Popen([harness.binpath("trident-sub", build), harness.free_endpoint()],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.set_blocking(sub.stderr.fileno(), False)
        raw, end = b"", time.monotonic() + 60
        while b"no messages yet" not in raw and time.monotonic() < end:
            time.sleep(0.2)
            raw += sub.stderr.read() or b""
        time.sleep(0.5)
        sub.send_signal(signal.SIGTERM)
        sub.wait(30)
        raw += sub.stderr.read() or b""
        got = raw.decode(errors="replace")
        T.ok("trident-sub with nothing publishing: one hint on stderr, exit 0 at SIGTERM",
             got.count("no messages yet from tcp://") == 1 and sub.returncode == 0,
             f"rc {sub.returncode}: {got}")
T.done()
