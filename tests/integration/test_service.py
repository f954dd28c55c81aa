# SPDX-License-Identifier: Apache-2.0
"""test_service.py — the real daemon under a pretend systemd (issue 6).

This test plays systemd: it binds the datagram socket systemd would, starts
tridentd with NOTIFY_SOCKET and WATCHDOG_USEC pointing at it and a config with
a looping, real-time paced file stream, and checks what arrives, in order:
READY=1, periodic WATCHDOG=1, a STATUS= line, RELOADING=1 (with
MONOTONIC_USEC) then READY=1 after SIGHUP, the same after a SIGHUP with a
broken config (which must leave the daemon running and say why), and
STOPPING=1 on SIGTERM, then exit 0.  It also checks the exit codes of
config errors (78, with file, line and key), usage errors (64) and --check.

The stall run uses the pipeline's test-only fault hook: the environment
variable TRIDENT_TEST_STALL_AFTER=N makes the workers stop taking windows
after N have been classified (work keeps arriving, nothing is published), so
WATCHDOG=1 must stop within one watchdog period, as a stuck worker would make
it.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import zmq

from harness import ROOT, NotifySocket, Tap, binpath, tmpdir, write_wav

T = Tap()
WD_USEC = 1_000_000


def tridentd():
    try:
        return binpath("tridentd")
    except FileNotFoundError as e:
        T.ok("tridentd is built", False, str(e))
        T.done()


def make_model(path):
    shipped = os.path.join(ROOT, "model", "cwru.safetensors")
    if os.path.exists(shipped):
        return shipped
    subprocess.run([sys.executable, os.path.join(ROOT, "model", "train", "export.py"),
                    "--seed", "7", path], check=True)
    return path


def write_conf(path, model, wav, ipc, extra=""):
    with open(path, "w") as f:
        f.write(f'model = "{model}";\nworkers = 1;\n'
                f'publish = {{ endpoints = [ "ipc://{ipc}" ]; stats_interval = 1.0; }};\n'
                f'streams = (\n  {{ name = "loop"; type = "file"; path = "{wav}";\n'
                f'    pace = "realtime"; loop = true; hop = 512; }}\n);\n{extra}')


def main():
    exe = tridentd()
    tmp = tmpdir("trident-svc-")
    model = make_model(os.path.join(tmp, "m.safetensors"))
    rng = np.random.default_rng(1)
    wav = os.path.join(tmp, "noise.wav")
    write_wav(wav, (0.1 * rng.standard_normal(12000 * 2)).astype(np.float32), 12000)
    conf = os.path.join(tmp, "trident.conf")
    write_conf(conf, model, wav, os.path.join(tmp, "pub.ipc"))

    # --- exit codes --------------------------------------------------------
    r = subprocess.run([exe, "--check", "-c", conf], capture_output=True, text=True, timeout=60)
    T.ok("--check on a valid config exits 0", r.returncode == 0, f"rc={r.returncode} {r.stderr.strip()}")
    T.ok("--check prints the streams", "loop" in r.stdout, r.stdout)

    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write('workers = 1;\npublish = {\n  hwm = 0.75;\n};\n')
    for args in (["--check", "-c", bad], ["-c", bad]):
        r = subprocess.run([exe] + args, capture_output=True, text=True, timeout=60)
        T.ok(f"{' '.join(args[:-1])} on a bad config exits 78", r.returncode == 78, f"rc={r.returncode}")
        T.ok(f"{' '.join(args[:-1])}: the message has file:line and the key",
             f"{bad}:3:" in r.stderr and "publish.hwm" in r.stderr, r.stderr.strip())

    corrupt = os.path.join(tmp, "corrupt.safetensors")
    with open(corrupt, "wb") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    cconf = os.path.join(tmp, "corrupt.conf")
    write_conf(cconf, corrupt, wav, os.path.join(tmp, "c.ipc"))
    r = subprocess.run([exe, "--check", "-c", cconf], capture_output=True, text=True, timeout=60)
    T.ok("--check with a corrupt model exits 78 naming it", r.returncode == 78 and corrupt in r.stderr,
         f"rc={r.returncode} {r.stderr.strip()}")

    r = subprocess.run([exe, "--no-such-option"], capture_output=True, text=True, timeout=60)
    T.ok("an unknown option exits 64", r.returncode == 64, f"rc={r.returncode}")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    T.ok("--help lists the config keys", r.returncode == 0 and "publish.stats_interval" in r.stdout
         and "streams[].rt_priority" in r.stdout, f"rc={r.returncode}")

    # --- a supervised run ----------------------------------------------------
    sd = NotifySocket(os.path.join(tmp, "notify"))
    env = dict(os.environ, NOTIFY_SOCKET=os.path.join(tmp, "notify"), WATCHDOG_USEC=str(WD_USEC))
    env.pop("WATCHDOG_PID", None)
    log = open(os.path.join(tmp, "stderr"), "w+")
    p = subprocess.Popen([exe, "-c", conf], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        ready = sd.wait_for("READY=1", 20)
        T.ok("READY=1", ready is not None)
        if ready is None:
            return
        sd.pump(3.0)
        t_ready = sd.msgs[ready][0]
        wd = [t for t, m in sd.msgs[ready:] if "WATCHDOG=1" in m.split("\n")]
        T.ok("periodic WATCHDOG=1", len(wd) >= 3, f"{len(wd)} pings in 3 s")
        gaps = np.diff([t_ready] + wd)
        T.ok("no watchdog gap longer than WatchdogSec", len(gaps) > 0 and gaps.max() < WD_USEC / 1e6,
             f"max gap {gaps.max() if len(gaps) else None:.3f} s")
        status = [m for _, m in sd.msgs if m.startswith("STATUS=")]
        T.ok("a STATUS= line", len(status) > 0)
        if status:
            T.note(status[-1])

        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 10, n0)
        T.ok("SIGHUP: RELOADING=1", rel is not None)
        if rel is not None:
            T.ok("RELOADING=1 carries MONOTONIC_USEC", "MONOTONIC_USEC=" in sd.msgs[rel][1])
            T.ok("then READY=1", sd.wait_for("READY=1", 20, rel + 1) is not None)

        # a broken config on SIGHUP: refused, the daemon keeps running and says why
        write_conf(conf, model, wav, os.path.join(tmp, "pub.ipc"), extra="\nbogus_key = 1;\n")
        log.seek(0, os.SEEK_END)
        n0 = len(sd.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", 10, n0)
        back = sd.wait_for("READY=1", 20, rel + 1) if rel is not None else None
        T.ok("SIGHUP with a broken config: RELOADING=1 then READY=1", back is not None)
        sd.pump(2.0)
        T.ok("the daemon keeps running on the old config", p.poll() is None, f"exited {p.poll()}")
        log.flush()
        with open(os.path.join(tmp, "stderr")) as f:
            err = f.read()
        T.ok("and says why (file:line and key)", f"{conf}:" in err and "bogus_key" in err,
             err.strip()[-300:])
        wd_after = [m for _, m in sd.msgs[n0:] if "WATCHDOG=1" in m.split("\n")]
        T.ok("watchdog pings continue after the refused reload", len(wd_after) >= 2, f"{len(wd_after)}")

        n0 = len(sd.msgs)
        p.send_signal(signal.SIGTERM)
        stop = sd.wait_for("STOPPING=1", 20, n0)
        T.ok("SIGTERM: STOPPING=1", stop is not None)
        rc = p.wait(timeout=30)
        T.ok("exit 0 after SIGTERM", rc == 0, f"rc={rc}")

        # the whole conversation, in order
        seq = [m.split("\n")[0] for _, m in sd.msgs if not m.startswith(("STATUS=", "WATCHDOG=1"))]
        T.ok("order: READY, (RELOADING, READY) x2, STOPPING",
             seq == ["READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1", "STOPPING=1"],
             str(seq))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        log.close()

    # --- a stalled pipeline stops the watchdog ---------------------------------
    write_conf(conf, model, wav, os.path.join(tmp, "pub.ipc"))
    os.unlink(os.path.join(tmp, "notify"))
    sd = NotifySocket(os.path.join(tmp, "notify"))
    # The stall's time: the arrival of the last window published (the one
    # worker takes the next window, number STALL, and sticks on it), as seen
    # by a subscriber on the same clock as the notify socket's messages.
    stall_after = 30
    env["TRIDENT_TEST_STALL_AFTER"] = str(stall_after)
    ctx = zmq.Context.instance()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.connect(f"ipc://{os.path.join(tmp, 'pub.ipc')}")
    sub.setsockopt(zmq.SUBSCRIBE, b"loop")
    windows = []                        # (monotonic arrival, seq)
    stop = threading.Event()

    def collect():
        while not stop.is_set():
            if sub.poll(20):
                topic, body = sub.recv_multipart()
                windows.append((time.monotonic(), json.loads(body)["seq"]))

    reader = threading.Thread(target=collect)
    reader.start()
    p = subprocess.Popen([exe, "-c", conf], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        ready = sd.wait_for("READY=1", 20)
        T.ok("stall run: READY=1", ready is not None)
        if ready is not None:
            sd.pump(4.0)
            t_end = time.monotonic()
            stop.set()
            reader.join()
            wd = [t for t, m in sd.msgs[ready:] if "WATCHDOG=1" in m.split("\n")]
            last = wd[-1] if wd else sd.msgs[ready][0]
            seqs = [q for _, q in windows]
            # (the subscriber may join after the first windows: no wait in config mode)
            T.ok(f"stall run: windows up to {stall_after - 1} published, then none",
                 bool(seqs) and seqs == list(range(seqs[0], stall_after)),
                 f"seqs {seqs[:3]}..{seqs[-3:]} ({len(seqs)})")
            if windows:
                stall_t = windows[-1][0]
                T.note(f"{len(wd)} pings, the last {last - stall_t:+.3f} s after the last window")
                # the last ping may follow the last progress by at most one period
                T.ok("a stalled pipeline stops WATCHDOG=1 within one period of the stall",
                     last - stall_t <= WD_USEC / 1e6 and t_end - stall_t > 2 * WD_USEC / 1e6,
                     f"last ping {last - stall_t:+.3f} s after the last window, "
                     f"run on {t_end - stall_t:.2f} s after it")
            T.ok("the stalled daemon is still alive (systemd would restart it)", p.poll() is None)
    finally:
        stop.set()
        if reader.is_alive():
            reader.join()
        sub.close()
        if p.poll() is None:
            p.kill()
            p.wait()


main()
T.done()
