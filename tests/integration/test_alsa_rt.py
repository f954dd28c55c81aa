# SPDX-License-Identifier: Apache-2.0
"""test_alsa_rt.py — an ALSA stream's rt_priority: granted as root, refused without CAP_SYS_NICE.

The real tridentd captures from the paced test device (tests/alsa/
pcm_trident_test.c, BUILD/alsa/...) with rt_priority = 50, twice:
  a. as the test runs (root): the start-up log says "SCHED_FIFO 50 granted",
     nothing is refused, and exactly one of the daemon's threads (the capture
     thread) is SCHED_FIFO at priority 50 (read with sched_getscheduler() on
     each /proc/PID/task/TID while it runs);
  b. without the privilege: `prlimit --rtprio=0` (an RLIMIT_RTPRIO of 50 or
     more would let an unprivileged process have SCHED_FIFO 50) and `setpriv`
     dropping CAP_SYS_NICE from the bounding set (root's permitted and
     effective sets after exec), the inheritable and the ambient sets.  The
     kernel then says EPERM: the log has the one warning line "rt_priority 50
     refused (Operation not permitted)", nothing says SCHED_FIFO (the source
     line, logged before the start, says "rt_priority 50 (asked)"), capture
     works as before (windows at hop/rate, no gap) and no thread is SCHED_FIFO.
The test first checks that the same wrapper really makes `chrt -f 50` fail,
so it cannot pass because the privilege was never there to remove.
Every build of $TRIDENT_BUILDS is run (about 6 s each).
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

RATE = 12000
HOP = 512
RT = 50
tap = harness.Tap()
UNPRIV = ["prlimit", "--rtprio=0", "setpriv", "--inh-caps=-sys_nice",
          "--ambient-caps=-sys_nice", "--bounding-set=-sys_nice"]


def fifo_threads(pid):
    """[(tid, priority)] of the process's threads that are SCHED_FIFO now."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            if os.sched_getscheduler(int(tid)) == os.SCHED_FIFO:
                out.append((int(tid), os.sched_getparam(int(tid)).sched_priority))
        except (ProcessLookupError, FileNotFoundError):
            pass
    return out


def run(cmd, env, tmp, seconds):
    """Run cmd for `seconds`, sampling its SCHED_FIFO threads every 0.25 s
    after the first second; then SIGTERM.  (windows, stderr, rc, samples)."""
    out_path, err_path = os.path.join(tmp, "out"), os.path.join(tmp, "err")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        samples, t0 = [], time.monotonic()
        while time.monotonic() - t0 < seconds and p.poll() is None:
            time.sleep(0.25)
            if time.monotonic() - t0 > 1.0 and p.poll() is None:
                try:
                    samples.append(fifo_threads(p.pid))
                except FileNotFoundError:
                    pass
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
    msgs = []
    with open(out_path, "rb") as f:
        for line in f:
            try:
                msgs.append(json.loads(line))
            except ValueError:
                pass
    with open(err_path, "rb") as f:
        err = f.read().decode(errors="replace")
    w = sorted((m for m in msgs if m.get("stream") == "pac" and "label" in m), key=lambda m: m["seq"])
    return w, err, rc, samples


def check_capture(ok, what, w):
    ts = np.array([m["t"] for m in w])
    d = np.abs(np.diff(ts) - HOP / RATE) if len(ts) > 1 else np.array([1.0])
    ok(f"{what}: windows published", len(w) > 30, f"{len(w)} windows")
    ok(f"{what}: t advances by hop/rate within 1 ms", d.max() < 1e-3, f"worst {d.max():.6f} s")
    ok(f"{what}: no gap", len(w) and not any(m["gap"] for m in w))
    seqs = [m["seq"] for m in w]
    ok(f"{what}: no window missing", seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs
       else False)


def check_build(build, tmp, env, model, alsa_conf):
    tag = os.path.basename(build)

    def ok(name, cond=True, why=""):
        return tap.ok(f"{tag}: {name}", cond, why)

    binary = os.path.join(build, "bin", "tridentd")
    plugin = os.path.join(build, "alsa", "libasound_module_pcm_trident_test.so")
    if not os.path.exists(binary) or not os.path.exists(plugin):
        ok("tridentd and the ALSA test plugin are built", False, f"{binary}, {plugin}")
        return
    raw = os.path.join(tmp, "ramp.raw")
    with open(alsa_conf, "w") as f:
        f.write(f'pcm_type.trident_test {{ lib "{os.path.abspath(plugin)}" }}\n'
                f'pcm.tpaced {{ type trident_test file "{raw}" channels 1 rates {RATE} '
                f'formats S16_LE }}\n')
    conf = os.path.join(tmp, "trident.conf")
    with open(conf, "w") as f:
        f.write(f'model = "{model}";\nworkers = 1;\n'
                f'publish = {{ endpoints = [ "ipc://{tmp}/pub" ]; stdout = true; }};\n'
                f'streams = ( {{ name = "pac"; type = "alsa"; device = "tpaced"; rate = {RATE}; '
                f'channels = 1; format = "S16_LE"; hop = {HOP}; rt_priority = {RT}; }} );\n')
    cmd = [binary, "-c", conf]

    # a. As root: granted.
    w, err, rc, samples = run(cmd, env, tmp, 3.0)
    ok("root: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
    ok(f"root: the start-up log says SCHED_FIFO {RT} granted, and nothing refused",
       f"alsa 'tpaced': S16_LE, {RATE} Hz, 1 ch" in err
       and f"alsa stream 'pac': SCHED_FIFO {RT} granted" in err and "refused" not in err,
       err[-600:])
    ok("root: sampled the threads while capturing", len(samples) >= 4, f"{len(samples)} samples")
    ok(f"root: exactly one thread (the capture thread) is SCHED_FIFO {RT}, all along",
       samples and all(len(s) == 1 and s[0][1] == RT for s in samples), str(samples[:3]))
    check_capture(ok, "root", w)

    # b. Without CAP_SYS_NICE and with RLIMIT_RTPRIO 0: refused, capture goes on.
    w, err, rc, samples = run(UNPRIV + cmd, env, tmp, 3.0)
    ok("unprivileged: daemon exits 0 on SIGTERM", rc == 0, f"rc {rc}: {err[-500:]}")
    warn = [ln for ln in err.splitlines() if f"rt_priority {RT} refused" in ln]
    ok(f"unprivileged: one warning line \"rt_priority {RT} refused (Operation not permitted)\"",
       len(warn) >= 1 and "warn" in warn[0].lower()
       and f"rt_priority {RT} refused (Operation not permitted)" in warn[0], err[-600:])
    src = [ln for ln in err.splitlines() if "alsa 'tpaced'" in ln]
    ok("unprivileged: exactly one such line", len(warn) == 1, "\n".join(warn))
    ok("unprivileged: nothing says SCHED_FIFO (the source line, logged before the start, "
       "says asked)", "SCHED_FIFO" not in err
       and any(f"rt_priority {RT} (asked)" in ln for ln in src), "\n".join(src))
    tap.note(f"{tag}: unprivileged log: " + " | ".join(warn + src))
    ok("unprivileged: sampled the threads while capturing", len(samples) >= 4,
       f"{len(samples)} samples")
    ok("unprivileged: no thread is SCHED_FIFO", samples and not any(samples), str(samples[:3]))
    check_capture(ok, "unprivileged", w)


def main():
    tmp = harness.tmpdir("trident-rt-")
    # The wrapper must really take the privilege away, or (b) proves nothing.
    pre = subprocess.run(UNPRIV + ["chrt", "-f", str(RT), "true"], capture_output=True)
    if not tap.ok(f"without CAP_SYS_NICE and RLIMIT_RTPRIO, chrt -f {RT} is refused",
                  pre.returncode != 0, pre.stderr.decode(errors="replace")):
        tap.done()
    ramp = ((np.arange(RATE * 4) % 32768) - 16384).astype("<i2")
    ramp.tofile(os.path.join(tmp, "ramp.raw"))
    model = harness.make_model(os.path.join(tmp, "m.safetensors"), 11,
                               classes=["a", "b", "c", "d"])["path"]
    alsa_conf = os.path.join(tmp, "alsa.conf")
    env = dict(os.environ)
    env["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{alsa_conf}"
    for b in harness.BUILDS:
        check_build(b, tmp, env, model, alsa_conf)
    tap.done()


if __name__ == "__main__":
    main()
