# SPDX-License-Identifier: Apache-2.0
"""test_leak.py — no leak on a full start -> run -> reload -> stop cycle (issue 8).

The cycle, in configuration-file mode, with systemd played by a datagram
socket (NOTIFY_SOCKET) and every message taken by a SUB socket:

  1. start with model A and three looping, real-time paced file streams
     "keep", "change" and "gone"; READY=1; windows of all three arrive;
  2. rewrite the file: model B (another file, other weights, three classes),
     "keep" as it was, "change" at another hop, "gone" removed, "new" added;
     SIGHUP; RELOADING=1 then READY=1; windows of "keep", the restarted
     "change" and "new" arrive, classified by B;
  3. SIGTERM: STOPPING=1, exit 0.

It runs twice:

  a. on the ASan+UBSan build (build-address) with detect_leaks=1: no
     AddressSanitizer, LeakSanitizer or UBSan report;
  b. on the normal build under valgrind memcheck (--leak-check=full
     --errors-for-leak-kinds=definite,indirect --error-exitcode=99
     --fair-sched=yes): no memory error, nothing definitely or indirectly
     lost.  Valgrind emulates no AVX-512 and runs the AVX2 kernel ~10x
     slower than the portable one, so the daemon runs TRIDENT_NET=generic
     there (about 25 ms a window under valgrind), with hops of 2048 to keep
     the real-time streams within what valgrind can classify.

and a short `tridentd --replay` of two files under valgrind (pace fast, a
subscriber that must get every window): exit 0, no leak.  Valgrind's report
goes to its own file (--log-file); the test prints its LEAK SUMMARY.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from messages import check_message  # noqa: E402

T = harness.Tap()
RATE, WIN = 12000, 1024
FIXTURES = os.path.join(harness.ROOT, "tests", "fixtures", "cwru")
WAV = {n: os.path.join(FIXTURES, n + ".wav") for n in ("inner", "ball", "outer")}
TMP = harness.tmpdir("trident-leak-")
os.environ.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
            "--error-exitcode=99", "--fair-sched=yes"]


class Collector(threading.Thread):
    """Every message as (stream, seq, model digest); _stats counted apart."""

    def __init__(self, ctx, endpoint):
        super().__init__(daemon=True)
        self.sub = harness.subscriber(endpoint, ctx=ctx)
        self.msgs, self.bad = [], []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            if not self.sub.poll(20):
                continue
            topic, body = self.sub.recv_multipart()
            if topic.startswith(b"_"):      # _stats, _events, _state
                continue
            try:
                d = check_message(topic, body)
            except AssertionError as e:
                self.bad.append(str(e)[:200])
                continue
            self.msgs.append((d["stream"], d["seq"], d["model"]))
        self.sub.close()

    def count(self, stream, model, since=0):
        return sum(1 for s, _, m in self.msgs[since:] if s == stream and m == model)

    def restarted(self, stream):
        """Seqs of stream after it restarted from 0 (empty if it has not)."""
        seqs = [q for s, q, _ in self.msgs if s == stream]
        cut = next((i for i in range(1, len(seqs)) if seqs[i] == 0), None)
        return seqs[cut:] if cut is not None else []

    def wait(self, want, timeout, since=0, also=lambda: True):
        """Until count(stream, model, since) >= n for every (stream, model, n)
        and also() holds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(self.count(s, m, since) >= n for s, m, n in want) and also():
                return True
            time.sleep(0.05)
        return False


def conf_text(model, endpoint, streams):
    body = ",\n".join(
        f'  {{ name = "{n}"; type = "file"; path = "{p}"; pace = "realtime"; loop = true; '
        f'hop = {h}; }}' for n, p, h in streams)
    return (f'model = "{model}";\nworkers = 2;\n'
            f'publish = {{ endpoints = [ "{endpoint}" ]; stats_interval = 1.0; }};\n'
            f'streams = (\n{body}\n);\n')


def valgrind_summary(log):
    """(errors, definitely lost bytes, indirectly lost bytes, the LEAK SUMMARY
    lines) from a valgrind log; None fields when missing."""
    def num(pat):
        m = re.search(pat, log)
        return int(m.group(1).replace(",", "")) if m else None
    errors = num(r"ERROR SUMMARY: ([\d,]+) errors")
    definite = num(r"definitely lost: ([\d,]+) bytes")
    indirect = num(r"indirectly lost: ([\d,]+) bytes")
    if "All heap blocks were freed" in log:
        definite = indirect = 0
    lines = [ln.split("== ", 1)[-1] for ln in log.splitlines()
             if re.search(r"(definitely|indirectly|possibly) lost:|still reachable:|"
                          r"All heap blocks were freed|ERROR SUMMARY", ln)]
    return errors, definite, indirect, lines


def check_valgrind(tag, vglog):
    with open(vglog) as f:
        log = f.read()
    errors, definite, indirect, lines = valgrind_summary(log)
    T.ok(f"{tag}: no memory error ({errors} errors)", errors == 0, log[-2000:])
    T.ok(f"{tag}: nothing definitely or indirectly lost ({definite} + {indirect} bytes)",
         definite == 0 and indirect == 0, log[-3000:])
    for ln in lines:
        T.note(f"{tag}: {ln.strip()}")


def cycle(tag, build, wrap=(), env_extra=None, hop=512, timeout=60):
    """The start -> run -> reload -> stop cycle; wrap: a command line the
    daemon runs under (valgrind).  Returns the daemon's stderr."""
    exe = harness.binpath("tridentd", build)
    A = harness.make_model(os.path.join(TMP, f"{tag}-a.safetensors"), 21, RATE, "zscore")
    B = harness.make_model(os.path.join(TMP, f"{tag}-b.safetensors"), 22, RATE, "none",
                           ("x", "y", "z"))
    ep = harness.free_endpoint()
    conf = os.path.join(TMP, f"{tag}.conf")
    with open(conf, "w") as f:
        f.write(conf_text(A["path"], ep, [("keep", WAV["inner"], hop), ("change", WAV["ball"], hop),
                                          ("gone", WAV["outer"], hop)]))
    nsock = os.path.join(TMP, f"{tag}.notify")
    sd = harness.NotifySocket(nsock)
    ctx = zmq.Context()
    col = Collector(ctx, ep)
    col.start()
    env = dict(os.environ, NOTIFY_SOCKET=nsock, **(env_extra or {}))
    env.pop("WATCHDOG_USEC", None)
    errpath = os.path.join(TMP, f"{tag}.stderr")
    errf = open(errpath, "w")
    t0 = time.monotonic()
    p = subprocess.Popen([*wrap, exe, "-c", conf, "--wait-subscribers", "1"], env=env,
                         stdout=subprocess.DEVNULL, stderr=errf)
    rc = None
    try:
        T.ok(f"{tag}: READY=1", sd.wait_for("READY=1", timeout) is not None)
        # Past the end of the 3-s recordings: the loop back to their start.
        loop = 36000 // hop + 2
        T.ok(f"{tag}: windows of keep, change and gone on model A, {loop} of each (one loop)",
             col.wait([(s, A["digest"], loop) for s in ("keep", "change", "gone")], timeout))

        with open(conf, "w") as f:
            f.write(conf_text(B["path"], ep, [("keep", WAV["inner"], hop),
                                              ("change", WAV["ball"], 2 * hop),
                                              ("new", WAV["outer"], hop)]))
        n0 = len(sd.msgs)
        since = len(col.msgs)
        p.send_signal(signal.SIGHUP)
        rel = sd.wait_for("RELOADING=1", timeout, n0)
        rdy = sd.wait_for("READY=1", timeout, rel + 1) if rel is not None else None
        T.ok(f"{tag}: SIGHUP: RELOADING=1 then READY=1", rdy is not None)
        T.ok(f"{tag}: after the reload: windows of keep, new and the restarted change "
             f"(seq from 0 again) on model B",
             col.wait([(s, B["digest"], 5) for s in ("keep", "new")], timeout, since,
                      lambda: len(col.restarted("change")) >= 3))
        cs = [(q, m) for s, q, m in col.msgs if s == "change"]
        n_new = len(col.restarted("change"))
        T.ok(f"{tag}: change: the restarted windows all on B",
             n_new >= 2 and all(m == B["digest"] for _, m in cs[-n_new:]), f"{cs[-4:]}")

        n0 = len(sd.msgs)
        p.send_signal(signal.SIGTERM)
        T.ok(f"{tag}: SIGTERM: STOPPING=1", sd.wait_for("STOPPING=1", timeout, n0) is not None)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        errf.close()
        time.sleep(0.3)
        col.stop.set()
        col.join()
        ctx.term()
        sd.close()
    with open(errpath) as f:
        err = f.read()
    T.ok(f"{tag}: exit 0 ({time.monotonic() - t0:.1f} s in all)", rc == 0,
         f"rc {rc}: {err.strip()[-600:]}")
    T.ok(f"{tag}: every message follows the contract", not col.bad, "; ".join(col.bad[:2]))
    return err


def replay_valgrind(build, vglog):
    """A short --replay of two files under valgrind; every window must arrive."""
    exe = harness.binpath("tridentd", build)
    x, _ = harness.read_wav(WAV["inner"])
    y, _ = harness.read_wav(WAV["ball"])
    files = {"one": x[:RATE], "two": y[:RATE // 2]}
    paths = []
    for name, s in files.items():
        paths.append(os.path.join(TMP, name + ".wav"))
        harness.write_wav(paths[-1], s, RATE)
    hop = 512
    ep = harness.free_endpoint()
    ctx = zmq.Context()
    col = Collector(ctx, ep)
    col.start()
    t0 = time.monotonic()
    r = subprocess.run([*VALGRIND, f"--log-file={vglog}", exe, "--replay", *paths,
                        "--model", os.path.join(harness.ROOT, "model", "cwru.safetensors"),
                        "--hop", str(hop), "--endpoint", ep, "--wait-subscribers", "1",
                        "--stats-interval", "0.5"],
                       env=dict(os.environ, TRIDENT_NET="generic"),
                       capture_output=True, text=True, timeout=300)
    secs = time.monotonic() - t0
    time.sleep(0.3)
    col.stop.set()
    col.join()
    ctx.term()
    T.ok(f"valgrind --replay: exit 0 ({secs:.1f} s)", r.returncode == 0,
         f"rc {r.returncode}: {r.stderr.strip()[-400:]}")
    ok = True
    for name, s in files.items():
        n = (len(s) - WIN) // hop + 1
        seqs = [q for st, q, _ in col.msgs if st == name]
        ok = ok and seqs == list(range(n))
    T.ok("valgrind --replay: every window of both files, once, in order", ok and not col.bad,
         f"{len(col.msgs)} messages; {col.bad[:1]}")
    check_valgrind("valgrind --replay", vglog)


def main():
    builds = {os.path.basename(b): b for b in harness.BUILDS}
    ran = 0
    if "build-address" in builds:
        ran += 1
        err = cycle("asan", builds["build-address"], hop=512, timeout=60)
        rep = harness.sanitizer_report(err)
        T.ok("asan: no ASan/LSan/UBSan report (detect_leaks=1)", not rep,
             err[err.find(rep):][:2000] if rep else "")
    if "build" in builds:
        if not shutil.which("valgrind"):
            T.ok("valgrind is installed (packaging/deps.sh test)", False)
        else:
            ran += 1
            vglog = os.path.join(TMP, "cycle.valgrind")
            cycle("valgrind", builds["build"], wrap=[*VALGRIND, f"--log-file={vglog}"],
                  env_extra={"TRIDENT_NET": "generic"}, hop=2048, timeout=180)
            check_valgrind("valgrind", vglog)
            replay_valgrind(builds["build"], os.path.join(TMP, "replay.valgrind"))
    T.ok("ran on at least one build", ran > 0)
    T.done()


main()
