# SPDX-License-Identifier: Apache-2.0
"""test_results.py — the results sink (results = { ... }, --results DIR).

A replay with --stdout and --results writes every message twice: as stdout
lines and as JSON Lines files.  The files must hold exactly the stdout
messages, in order, each with its topic first; the last _stats counts the
sink ("sinks": queued = every message, none dropped or lost); a small
results.max_bytes rotates into at most results.files + 1 files.  A
results.path that cannot be created is one line naming the key, exit 78.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.Tap()
TMP = harness.tmpdir("trident-results-")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "cwru")
MODEL = os.path.join(ROOT, "model", "cwru.safetensors")
WAVS = [os.path.join(FIX, n) for n in ("normal.wav", "inner.wav")]


def topic_of(msg):
    if "label" in msg:
        return msg["stream"]
    if "to" in msg:
        return "_events"
    if "velocity_mm_s" in msg and "streams" not in msg:
        return "_severity"
    return "_stats"


def read_lines(d):
    files = sorted(glob.glob(os.path.join(d, "results.jsonl*")),
                   key=lambda p: -int(p.rsplit(".", 1)[1]) if p[-1].isdigit() else 0)
    out = []
    for p in files:
        with open(p) as f:
            out += [json.loads(ln) for ln in f]
    return files, out


for build in os.environ.get("TRIDENT_BUILDS", "build").split():
    exe = harness.binpath("tridentd", build)
    tag = os.path.basename(build)
    d = os.path.join(TMP, tag, "all")
    r = subprocess.run([exe, "--model", MODEL, "--stdout", "--no-publish", "--stats-interval",
                        "0.5", "--results", d, "--replay"] + WAVS,
                       capture_output=True, text=True, timeout=600)
    T.ok(f"{tag}: replay with --results exits 0", r.returncode == 0,
         f"rc={r.returncode} {r.stderr[-400:]}")
    stdout = [json.loads(ln) for ln in r.stdout.splitlines() if ln.startswith("{")]
    files, lines = read_lines(d)
    T.ok(f"{tag}: one file (below max_bytes)", [os.path.basename(p) for p in files]
         == ["results.jsonl"], str(files))
    topics_ok = all(ln.get("topic") == topic_of({k: v for k, v in ln.items() if k != "topic"})
                    and list(ln)[0] == "topic" for ln in lines)
    T.ok(f"{tag}: every line has its topic first ({len(lines)} lines)", topics_ok and lines)
    # stdout has the final _stats written after the results sink's last one
    # was queued: compare everything but _stats, and the _stats count
    body = [{k: v for k, v in ln.items() if k != "topic"} for ln in lines]
    res_f = [m for m in body if "label" in m]
    res_o = [m for m in stdout if "label" in m]
    ev_f = [m for m in body if "to" in m]
    ev_o = [m for m in stdout if "to" in m]
    T.ok(f"{tag}: the files hold exactly the results of stdout, in order ({len(res_f)})",
         res_f == res_o and len(res_o) > 50,
         f"{len(res_f)} vs {len(res_o)}: " + next((f"{a} != {b}" for a, b in zip(res_f, res_o)
                                                  if a != b), ""))
    T.ok(f"{tag}: ... and its events ({len(ev_f)})", ev_f == ev_o and len(ev_o) >= 2,
         f"{len(ev_f)} vs {len(ev_o)}")
    finals = [m for m in stdout if m.get("final")]
    sinks = finals[-1].get("sinks") if finals else None
    want = len(res_f) + len(ev_f) + len([m for m in body if "streams" in m])
    T.ok(f"{tag}: the final _stats counts the sink: every message queued, none dropped or lost",
         sinks and sinks[0]["sink"] == "results" and sinks[0]["dropped"] == 0
         and sinks[0]["lost"] == 0 and sinks[0]["queued"] >= want - 1,
         f"{sinks} want about {want}")
    T.ok(f"{tag}: the final _stats itself is the last line of the file",
         bool(body) and body[-1].get("final") is True, str(body[-1])[:200] if body else "")

    # rotation: 4 KiB files, 2 kept
    d2 = os.path.join(TMP, tag, "rot")
    conf = os.path.join(TMP, f"{tag}-rot.conf")
    with open(conf, "w") as f:
        f.write(f'model = "{MODEL}";\npublish = {{ endpoints = []; stdout = false; }};\n'
                f'results = {{ path = "{d2}"; max_bytes = 4096; files = 2; }};\n'
                f'streams = ( {{ name = "inner"; type = "file"; path = "{WAVS[1]}"; '
                f'pace = "fast"; loop = false; }} );\n')
    # a config's file stream that ends leaves the daemon serving: stop it
    # once the stream is done (its eof in _stats would say so; the files'
    # rotation is what is checked)
    pr = subprocess.Popen([exe, "-c", conf], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not os.path.exists(os.path.join(d2, "results.jsonl.2")):
        time.sleep(0.2)
    time.sleep(1)
    pr.send_signal(signal.SIGTERM)
    err = pr.communicate(timeout=120)[1]
    T.ok(f"{tag}: a config with results = {{ ... }} runs and stops on SIGTERM (exit 0)",
         pr.returncode == 0, f"rc={pr.returncode} {err[-300:]}")
    files, lines = read_lines(d2)
    sizes = [os.path.getsize(p) for p in files]
    names = sorted(os.path.basename(p) for p in files)
    T.ok(f"{tag}: results.max_bytes 4096, files 2: at most 3 files of at most 4 KiB "
         f"({names}, {sizes})",
         names == ["results.jsonl", "results.jsonl.1", "results.jsonl.2"]
         and all(s <= 4096 for s in sizes), "")
    seqs = [m["seq"] for m in lines if "label" in m]
    T.ok(f"{tag}: the files kept hold the newest results, contiguous",
         seqs and seqs == list(range(seqs[0], seqs[0] + len(seqs))) and seqs[0] > 0,
         f"{seqs[:3]}..{seqs[-3:]}" if seqs else "none")

    # a results.path that cannot be made
    bad = os.path.join(TMP, f"{tag}-bad.conf")
    with open(bad, "w") as f:
        f.write(f'model = "{MODEL}";\nresults = {{ path = "/proc/1/nope/x"; }};\nstreams = ();\n')
    r = subprocess.run([exe, "-c", bad], capture_output=True, text=True, timeout=120)
    T.ok(f"{tag}: an unusable results.path: one line naming it, non-zero exit",
         r.returncode != 0 and "results.path: cannot create /proc/1/nope/x" in r.stderr
         and len(r.stderr.strip().splitlines()) <= 3, f"rc={r.returncode} {r.stderr[-300:]}")
T.done()
