# SPDX-License-Identifier: Apache-2.0
"""test_accounting.py — every sample of a stream is accounted for.

For each stream `_stats` carries (pipeline.h, struct pipeline_acct)

    samples (in) = span + skipped + dropped + tail

and, for a stream resampled to the model's rate, resampled = span + skipped
+ tail at that rate.  A lossless `--replay` of real recordings, with windows
overlapping (hop 300), touching (1024) and apart (1500), is checked against
what is known without the daemon's word: the file's frame count, the
windows the subscriber received (their union and the samples between them,
computed here from their `sample` fields), the last partial window, and for
the 48 kHz recording the resampler's exact output length.  The last
`_stats` ("final": true, sent once everything was published) and the exit
summary in the log must say the same.  The lossy side (drops, gap flags)
is test_overload.py's.
"""
import json
import os
import re
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

tap = harness.Tap()
WIN = 1024
FIX = os.path.join(harness.ROOT, "tests", "fixtures", "cwru")
MODEL = os.path.join(harness.ROOT, "model", "cwru.safetensors")
MODEL_RATE = 12000


def replay(binary, files, hop):
    """--replay to one SUB socket; (results by stream, _stats list, stderr, rc)."""
    ep = harness.free_endpoint()
    ctx = zmq.Context.instance()
    sub = harness.subscriber(ep, ctx=ctx)
    p = subprocess.Popen([binary, "--replay", *files, "--model", MODEL, "--endpoint", ep,
                          "--hop", str(hop), "--stats-interval", "0.2",
                          "--wait-subscribers", "1"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    by, stats = {}, []
    quiet = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if sub.poll(20):
            topic, body = sub.recv_multipart()
            d = json.loads(body)
            if topic == b"_stats":
                stats.append(d)
            elif not topic.startswith(b"_"):    # not _events, _state
                by.setdefault(topic.decode(), []).append(d)
            quiet = None
            continue
        if p.poll() is not None:
            quiet = quiet or time.monotonic()
            if time.monotonic() - quiet > 0.3:
                break
    if p.poll() is None:
        p.kill()
    err = p.communicate()[1].decode()
    sub.close()
    return by, stats, err, p.returncode


def rs_out_len(n, rin, rout):
    return int(n * rout / rin + 0.5)


def main():
    builds = [b for b in harness.BUILDS if os.path.basename(b) in ("build", "build-address")]
    files = {name: os.path.join(FIX, f"{name}.wav") for name in ("inner", "normal")}
    frames = {name: harness.read_wav(path)[0].shape[0] for name, path in files.items()}
    rates = {name: harness.read_wav(path)[1] for name, path in files.items()}
    for build in builds:
        tag = os.path.basename(build)
        binary = harness.binpath("tridentd", build)
        for hop in (300, 1024, 1500):
            by, stats, err, rc = replay(binary, list(files.values()), hop)
            t = f"{tag} hop {hop}"
            tap.ok(f"{t}: replay exits 0", rc == 0, err[-400:])
            final = stats[-1] if stats else {}
            tap.ok(f"{t}: the last _stats is the final one, after everything was published",
                   final.get("final") is True
                   and all(s["eof"] and s["backlog"] == 0 for s in final.get("streams", [])),
                   str(final)[:300])
            per = {s["stream"]: s for s in final.get("streams", [])}
            for name in files:
                s, got = per.get(name, {}), by.get(name, [])
                starts = [d["sample"] for d in got]
                n_in = frames[name]
                resampled = rates[name] != MODEL_RATE
                n_w = rs_out_len(n_in, rates[name], MODEL_RATE) if resampled else n_in
                span, skipped, tail = harness.window_accounting(starts, hop, n_w, WIN)
                tap.ok(f"{t} {name}: windows received = windows in _stats, seq 0.. with no gap flag",
                       [d["seq"] for d in got] == list(range(len(got))) and s.get("windows") == len(got)
                       and s.get("gaps") == 0 and not any(d["gap"] for d in got),
                       f"{len(got)} received; {s}")
                tap.ok(f"{t} {name}: samples in = the file's {n_in} frames, none dropped",
                       s.get("samples") == n_in and s.get("dropped") == 0, str(s))
                tap.ok(f"{t} {name}: span {span}, skipped {skipped}, tail {tail} as the "
                       "windows received say", (s.get("span"), s.get("skipped"), s.get("tail"))
                       == (span, skipped, tail), str(s))
                if resampled:
                    tap.ok(f"{t} {name}: resampled {n_w} = span + skipped + tail "
                           f"({rates[name]} -> {MODEL_RATE} Hz)",
                           s.get("resampled") == n_w == span + skipped + tail, str(s))
                else:
                    tap.ok(f"{t} {name}: samples in = span + skipped + dropped + tail",
                           s.get("samples") == span + skipped + s.get("dropped", -1) + tail,
                           str(s))
                    m = re.search(rf"stream {name}: (\d+) samples in = (\d+) in windows \+ "
                                  rf"(\d+) skipped by hop \+ (\d+) dropped \+ (\d+) tail", err)
                    tap.ok(f"{t} {name}: the exit summary says the same",
                           m is not None and tuple(map(int, m.groups()))
                           == (n_in, span, skipped, 0, tail), err[-400:])
    tap.done()


if __name__ == "__main__":
    main()
