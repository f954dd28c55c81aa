# SPDX-License-Identifier: Apache-2.0
"""test_replay.py — tridentd --replay end to end, through real sockets.

Recordings cut from the CWRU data (../shared/data/cwru) are written as
WAV/FLAC files, random models are exported with model/train/export.py, and
the real daemon replays them to a python3-zmq SUB socket (--wait-subscribers 1,
so nothing is missed).  Every window of every channel must arrive exactly
once, in seq order, with every docs/DESIGN.md field typed, and with the logits
PyTorch computes on the same samples (normalised as the model's metadata
says) within 1e-4 * max|logit|.  Then: hop values, worker counts, sample
formats, real-time pacing, resampling, --stdout, bad input and its exit
codes, and SIGTERM in the middle of a replay.  Goldens are computed here, now.
"""
import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import torch
import zmq

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402  (also puts model/train on sys.path)

from messages import check_message  # noqa: E402  (the docs/DESIGN.md contract, typed)

WIN = 1024
TOL = 1e-4
tap = harness.Tap()
torch.set_num_threads(1)
TRIDENTD = harness.binpath("tridentd")
TMP = harness.tmpdir("trident-replay-")
CLASSES = ["normal", "inner", "ball", "outer"]

# Run directly (not through tests/run.sh), TSan builds still need the libzmq
# suppression (tests/tsan.supp: races inside libzmq's own pipes only).
_supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tsan.supp")
if "suppressions=" not in os.environ.get("TSAN_OPTIONS", ""):
    os.environ["TSAN_OPTIONS"] = (os.environ.get("TSAN_OPTIONS", "halt_on_error=1")
                                  + ":suppressions=" + os.path.abspath(_supp))


# ---- fixtures --------------------------------------------------------------

class SndFile:
    """Just enough libsndfile through ctypes to write FLAC, Ogg, 8-bit and
    double WAV fixtures (Python has no writer for those)."""
    WAV, FLAC, OGG = 0x010000, 0x170000, 0x200000
    PCM_S8, PCM_16, PCM_U8, DOUBLE, VORBIS = 0x0001, 0x0002, 0x0005, 0x0007, 0x0060

    class Info(ctypes.Structure):
        _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                    ("channels", ctypes.c_int), ("format", ctypes.c_int),
                    ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]

    def __init__(self):
        self.lib = ctypes.CDLL(ctypes.util.find_library("sndfile") or "libsndfile.so.1")
        self.lib.sf_open.restype = ctypes.c_void_p
        self.lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(self.Info)]
        self.lib.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        self.lib.sf_writef_float.restype = ctypes.c_int64
        self.lib.sf_close.argtypes = [ctypes.c_void_p]

    def write(self, path, x, rate, fmt):
        x = np.ascontiguousarray(np.asarray(x, np.float32).reshape(len(x), -1))
        info = self.Info(0, rate, x.shape[1], fmt, 0, 0)
        f = self.lib.sf_open(path.encode(), 0x20, ctypes.byref(info))   # SFM_WRITE
        if not f:
            raise OSError(f"sf_open({path}) failed for format {fmt:#x}")
        n = self.lib.sf_writef_float(f, x.ctypes.data, len(x))
        self.lib.sf_close(f)
        if n != len(x):
            raise OSError(f"{path}: wrote {n} of {len(x)} frames")


def cwru(name, load=0):
    x, rate = harness.read_wav(os.path.join(harness.CWRU, f"load{load}", name + ".wav"))
    return x[:, 0], rate


# ---- running the daemon ----------------------------------------------------

def replay(files, m, *args, subscribe=True, endpoint=None, timeout=60, stats=False,
           binary=None, impl=None):
    """Run tridentd --replay; return (messages as (topic, text), stdout, stderr, rc, secs),
    secs being, with a subscriber, from the first classification received to the exit."""
    endpoint = endpoint or harness.free_endpoint()
    ctx = zmq.Context.instance()
    sub = None
    if subscribe:
        sub = harness.subscriber(endpoint, ctx=ctx)
    cmd = [binary or TRIDENTD, "--replay", *files, "--model", m["path"], "--endpoint", endpoint,
           "--stats-interval", "0" if not stats else str(stats)]
    if subscribe:
        cmd += ["--wait-subscribers", "1"]
    cmd += list(args)
    t0 = time.monotonic()
    env = dict(os.environ, TRIDENT_NET=impl) if impl else None   # network implementation
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    msgs = []
    first = None
    out, err = b"", b""
    if sub is not None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        deadline = time.monotonic() + timeout
        # Read while the daemon runs and until it has been quiet for a while
        # after it exited (it lingers until everything is sent).
        quiet_since = None
        while time.monotonic() < deadline:
            if poller.poll(5):
                msgs.append(tuple(f.decode() for f in sub.recv_multipart()))
                if first is None and not msgs[-1][0].startswith("_"):
                    first = time.monotonic()
                quiet_since = None
                continue
            if p.poll() is not None:
                if quiet_since is None:
                    quiet_since = time.monotonic()
                    t0 = first if first is not None else t0   # secs: first window to exit
                if time.monotonic() - quiet_since > 0.3:
                    break
        sub.close()
    try:
        out, err = p.communicate(timeout=max(1, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    secs = (quiet_since if sub is not None and quiet_since else time.monotonic()) - t0
    return msgs, out.decode(), err.decode(), p.returncode, secs


def results(msgs):
    """Classification messages by stream, as parsed dicts, in arrival order."""
    by = {}
    for topic, text in msgs:
        if topic.startswith("_"):      # _stats, _events, _state
            continue
        by.setdefault(topic, []).append(json.loads(text))
    return by


FIELDS = {"stream": str, "seq": int, "sample": int, "t": (int, float), "label": str,
          "state": (str, type(None)),
          "class": int, "score": (int, float), "probs": list, "logits": list,
          "quality": str, "rms": float, "peak": float, "crest": float, "kurtosis": float,
          "gap": bool, "latency_us": int, "model": str}


def check_fields(msgs, m, ncls=4):
    """Every message has exactly the docs/DESIGN.md fields, typed; None or why not."""
    for topic, text in msgs:
        if topic.startswith("_"):      # _stats, _events, _state
            continue
        try:
            check_message(topic, text, n_classes=ncls)
        except AssertionError as e:
            return str(e)[:300]
        d = json.loads(text)
        if set(d) - {"anomaly", "threshold"} != set(FIELDS):
            return f"fields {sorted(d)}"
        for k, ty in FIELDS.items():
            if not isinstance(d[k], ty) or (ty is int and isinstance(d[k], bool)):
                return f"{k} is {type(d[k]).__name__}: {text[:200]}"
        if d["stream"] != topic or d["model"] != m["digest"]:
            return f"topic {topic} / stream {d['stream']} / model {d['model']}"
        if len(d["probs"]) != ncls or len(d["logits"]) != ncls:
            return f"{len(d['probs'])} probs, {len(d['logits'])} logits"
        p = np.array(d["probs"])
        if abs(p.sum() - 1) > 1e-4 or d["class"] != int(np.argmax(p)) \
                or d["label"] not in (CLASSES[d["class"]], "unknown") or abs(d["score"] - p[d["class"]]) > 1e-6:
            return f"probs/class/label/score inconsistent: {text[:200]}"
        if d["latency_us"] < 0 or d["gap"]:
            return f"latency {d['latency_us']}, gap {d['gap']}"
    return None


def expect_windows(n, hop):
    return 0 if n < WIN else (n - WIN) // hop + 1


def check_stream(name, got, x, hop, m, rate):
    """got: the stream's messages; x: its samples as the daemon saw them."""
    n = expect_windows(len(x), hop)
    seqs = [d["seq"] for d in got]
    if seqs != list(range(n)):
        return tap.ok(f"{name}: windows 0..{n - 1} once, in order", False,
                      f"got {len(seqs)}: {seqs[:5]}...{seqs[-5:]}")
    if [d["sample"] for d in got] != [k * hop for k in range(n)]:
        return tap.ok(f"{name}: sample = seq * hop", False)
    t = np.array([d["t"] for d in got])
    dt = t - t[0] - np.arange(n) * hop / rate
    if np.abs(dt).max() > 1e-5:
        return tap.ok(f"{name}: t advances by hop / rate", False, f"off by {np.abs(dt).max()}")
    w = np.stack([x[k * hop:k * hop + WIN] for k in range(n)])
    ref = harness.torch_logits(m, w)
    got_l = np.array([d["logits"] for d in got])
    err = np.abs(got_l - ref).max(axis=1) / np.maximum(np.abs(ref).max(axis=1), 1e-30)
    return tap.ok(f"{name}: {n} windows in order, logits = PyTorch (worst {err.max():.2e})",
                  err.max() <= TOL, f"window {int(err.argmax())}")


def sanitizer(err):
    """The first sanitizer report line in a daemon's stderr, or ''."""
    for ln in err.splitlines():
        if "Sanitizer" in ln or "runtime error" in ln:
            return ln
    return ""


def sigterm(three, mz, binary, tag):
    """SIGTERM in the middle of a looping fast replay: exit 0, nothing missing."""
    ctx = zmq.Context.instance()
    ep = harness.free_endpoint()
    sub = harness.subscriber(ep, ctx=ctx)
    p = subprocess.Popen([binary, "--replay", three, "--model", mz["path"], "--endpoint", ep,
                          "--wait-subscribers", "1", "--loop", "--stats-interval", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    got, sent = [], False
    deadline = time.monotonic() + 120
    quiet = None
    while time.monotonic() < deadline:
        if sub.poll(50):
            got.append(tuple(f.decode() for f in sub.recv_multipart()))
            quiet = None
            if len(got) >= 60 and not sent:
                p.send_signal(signal.SIGTERM)
                sent = True
            continue
        if p.poll() is not None:
            quiet = quiet or time.monotonic()
            if time.monotonic() - quiet > 0.3:
                break
    if p.poll() is None:
        p.kill()
    err = p.communicate()[1].decode()
    sub.close()
    by = results(got)
    contiguous = all([d["seq"] for d in ds] == list(range(len(ds))) for ds in by.values())
    tap.ok(f"{tag}SIGTERM mid-replay: exit 0, {sum(map(len, by.values()))} windows contiguous from 0",
           sent and p.returncode == 0 and contiguous and len(by) == 3 and not sanitizer(err),
           f"rc {p.returncode}, sent {sent}: {sanitizer(err) or err.strip()[-300:]}")
    # The drain: every sample the source wrote before it stopped was cut into
    # windows and published, or (past the stop deadline, slow sanitizer
    # builds) counted as dropped.  The summary accounts for each stream's
    # samples; the windows it counts must be those the subscriber received,
    # and the samples left over shorter than a window (any more would have
    # made another).
    summary = {}
    for ln in err.splitlines():
        m = re.search(r"stream (\S+): (\d+) windows \(\d+ gap\)", ln)
        if m:
            summary.setdefault(m.group(1), {})["windows"] = int(m.group(2))
        m = re.search(r"stream (\S+): (\d+) samples in = (\d+) in windows \+ (\d+) skipped "
                      r"by hop \+ (\d+) dropped \+ (\d+) tail", ln)
        if m:
            summary.setdefault(m.group(1), {})["acct"] = tuple(map(int, m.groups()[1:]))
    why = []
    for name in ("three/0", "three/1", "three/2"):
        s = summary.get(name, {})
        if "windows" not in s or "acct" not in s:
            why.append(f"{name}: no summary")
            continue
        n_in, span, skipped, dropped, tail = s["acct"]
        nwin = s["windows"]
        if (len(by.get(name, [])) != nwin or span != nwin * WIN or skipped != 0
                or n_in != span + dropped + tail or tail >= WIN):
            why.append(f"{name}: summary {s}, received {len(by.get(name, []))}")
    tap.ok(f"{tag}SIGTERM mid-replay: every sample written was published in a window or "
           "counted (the summary's accounting)", not why, "; ".join(why))


def paced_latency(path, rate, mz):
    """A realtime-paced replay at hop 1 outruns one worker, so samples wait in
    the ring; latency_us must count that wait: it must match, within the
    subscriber's own lag, the receive time minus the time of the window's
    last sample (t + 1023 / rate)."""
    ctx = zmq.Context.instance()
    ep = harness.free_endpoint()
    sub = harness.subscriber(ep, ctx=ctx)
    p = subprocess.Popen([TRIDENTD, "--replay", path, "--model", mz["path"], "--endpoint", ep,
                          "--wait-subscribers", "1", "--pace", "realtime", "--hop", "1",
                          "--workers", "1", "--stats-interval", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    raw, quiet, deadline = [], None, time.monotonic() + 120
    while time.monotonic() < deadline:
        if sub.poll(50):
            f = sub.recv_multipart()
            if not f[0].startswith(b"_"):       # not _events, _state
                raw.append((time.time(), f[1]))  # parsed later: keep the lag small
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
    lat, miss = [], []
    for recv, text in raw:
        d = json.loads(text)
        seen = recv - (d["t"] + (WIN - 1) / rate)
        lat.append(d["latency_us"] / 1e6)
        miss.append(seen - d["latency_us"] / 1e6)
    ok = p.returncode == 0 and len(raw) > 0
    med = float(np.median(miss)) if miss else float("nan")
    tap.ok("paced replay: latency_us counts the wait in the ring (median of receive time - "
           f"last sample's time - latency {med * 1e3:.1f} ms, max latency {max(lat or [0]):.2f} s)",
           ok and max(lat) > 0.2 and abs(med) < 0.05 and min(miss) > -0.02,
           f"rc {p.returncode}, {len(raw)} windows: {err.strip()[-300:]}")


# ---- the tests ----------------------------------------------------------------

def main():
    if not os.path.isdir(harness.CWRU):
        tap.ok("CWRU recordings found", False, harness.CWRU)
        tap.done()
    sf = SndFile()
    ncut = 3 * 12000 // 2      # 1.5 s per channel keeps the reference forward quick
    chans = [cwru(n)[0][:ncut] for n in ("inner_007", "ball_007", "outer_007")]
    x3 = np.stack(chans, axis=1)
    three = os.path.join(TMP, "three.wav")
    harness.write_wav(three, x3, 12000, "float")
    mz = harness.make_model(os.path.join(TMP, "mz.safetensors"), seed=1, rate=12000,
                            normalize="zscore", classes=CLASSES)
    mn = harness.make_model(os.path.join(TMP, "mn.safetensors"), seed=2, rate=12000,
                            normalize="none", classes=CLASSES)

    # 1. a 3-channel float WAV, both normalisations, with the fast path and
    #    with the reference forward (TRIDENT_NET=ref)
    for m, label, impl in ((mz, "zscore", None), (mn, "none", None),
                           (mz, "zscore, ref", "ref"), (mn, "none, ref", "ref")):
        msgs, _, err, rc, secs = replay([three], m, impl=impl)
        if impl:
            tap.ok(f"3-channel replay ({label}): the daemon runs impl {impl}",
                   f"impl {impl}," in err, err.strip()[-300:])
        tap.ok(f"3-channel replay ({label}) exits 0", rc == 0, err.strip()[-300:])
        why = check_fields(msgs, m)
        tap.ok(f"3-channel replay ({label}): every field present and typed", why is None, why or "")
        by = results(msgs)
        tap.ok(f"3-channel replay ({label}): streams three/0..2", sorted(by) ==
               ["three/0", "three/1", "three/2"], str(sorted(by)))
        for c in range(3):
            check_stream(f"{label} three/{c}", by.get(f"three/{c}", []), x3[:, c], 1024, m, 12000)
        if label == "zscore":
            base = by

    # 2. hops
    for hop in (256, 1500):
        msgs, _, err, rc, _ = replay([three], mz, "--hop", str(hop))
        by = results(msgs)
        tap.ok(f"--hop {hop} exits 0", rc == 0, err.strip()[-300:])
        for c in range(3):
            check_stream(f"hop {hop} three/{c}", by.get(f"three/{c}", []), x3[:, c], hop, mz, 12000)

    # 3. worker counts give identical results (latency and wall-clock t aside)
    def canon(by):
        """Per stream: every field but latency_us and t, and t relative to the first."""
        fields, dts = {}, {}
        for s, ds in by.items():
            fields[s] = [{k: v for k, v in d.items() if k not in ("latency_us", "t")} for d in ds]
            dts[s] = np.array([d["t"] - ds[0]["t"] for d in ds])
        return fields, dts
    ref_f, ref_t = canon(base)
    for w in (1, 2, 4):
        msgs, _, err, rc, _ = replay([three], mz, "--workers", str(w))
        f, t = canon(results(msgs))
        same = rc == 0 and f == ref_f and sorted(t) == sorted(ref_t) and all(
            len(t[s]) == len(ref_t[s]) and np.abs(t[s] - ref_t[s]).max() < 3e-6 for s in t)
        tap.ok(f"--workers {w}: identical results", same, err.strip()[-300:])

    # 4. sample formats: WAV s16, s32, float; FLAC 16-bit
    mono = chans[0][:12000]
    q16 = np.clip(np.round(mono / 8 * 32768), -32768, 32767) / 32768      # CWRU peaks ~ +-7
    for fmt in ("s16", "s32", "float"):
        path = os.path.join(TMP, f"fmt_{fmt}.wav")
        harness.write_wav(path, mono / 8, 12000, fmt)
        xs, _ = harness.read_wav(path)
        msgs, _, err, rc, _ = replay([path], mn)
        tap.ok(f"WAV {fmt} exits 0", rc == 0, err.strip()[-300:])
        check_stream(f"WAV {fmt}", results(msgs).get(f"fmt_{fmt}", []), xs[:, 0], 1024, mn, 12000)
    flac = os.path.join(TMP, "fmt_flac.flac")
    sf.write(flac, q16.astype(np.float32), 12000, SndFile.FLAC | SndFile.PCM_16)
    msgs, _, err, rc, _ = replay([flac], mn)
    tap.ok("FLAC 16-bit exits 0", rc == 0, err.strip()[-300:])
    check_stream("FLAC 16-bit", results(msgs).get("fmt_flac", []), q16.astype(np.float32),
                 1024, mn, 12000)

    # 5. --stdout writes the same objects as ZeroMQ
    msgs, out, err, rc, _ = replay([three], mz, "--stdout", "--hop", "2048")
    zl = [t for topic, t in msgs if topic not in ("_stats", "_state")]
    sl = [ln for ln in out.splitlines() if ln.strip()]
    tap.ok("--stdout lines equal the ZeroMQ messages", rc == 0 and sl == zl and len(zl) > 0,
           f"{len(sl)} lines, {len(zl)} messages")

    # 5a. publishing fails (`--stdout | head`: EPIPE on every later write): exit 74
    p = subprocess.Popen([TRIDENTD, "--replay", three, "--model", mz["path"], "--stdout",
                          "--hop", "32", "--stats-interval", "0", "--endpoint", harness.free_endpoint()],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    p.stdout.close()        # ~1600 lines of ~350 bytes: far more than the pipe holds
    try:
        err = p.communicate(timeout=120)[1].decode()
    except subprocess.TimeoutExpired:
        p.kill()
        err = p.communicate()[1].decode()
    tap.ok("--stdout into a reader that goes away (| head -1): exit 74, says how many were lost",
           p.returncode == 74 and first.startswith(b"{") and "could not be published" in err,
           f"rc {p.returncode}: {err.strip()[-300:]}")

    # 5b. a file name that is not UTF-8: every line on stdout, results and
    # _stats alike, is valid UTF-8 JSON (the byte becomes U+FFFD in "stream")
    latin1 = os.path.join(os.fsencode(TMP), b"caf\xe9.wav")
    harness.write_wav(latin1, chans[0][:6000], 12000, "float")
    r = subprocess.run([TRIDENTD, "--replay", latin1, "--model", mz["path"], "--stdout",
                        "--pace", "realtime", "--stats-interval", "0.1",
                        "--endpoint", harness.free_endpoint()], capture_output=True, timeout=60)
    kinds, why = {}, ""
    for ln in r.stdout.splitlines():
        try:
            d = json.loads(ln.decode("utf-8"))
        except ValueError as e:
            why = f"{e}: {ln[:120]!r}"
            break
        k = "stats" if "streams" in d else "event" if "from" in d else "result"
        kinds[k] = kinds.get(k, 0) + 1
        names = [x["stream"] for x in d["streams"]] if k == "stats" else [d["stream"]]
        if names != ["caf\ufffd"]:
            why = f"stream names {names}"
            break
    tap.ok("a non-UTF-8 file name: every result and _stats line is valid JSON, name with U+FFFD",
           r.returncode == 0 and not why and kinds.get("result") == expect_windows(6000, 1024)
           and kinds.get("stats", 0) >= 2, f"rc {r.returncode}, {kinds}, {why}")

    # 6. resampling: 48 kHz recording, 12 kHz model
    nrm, r48 = cwru("normal")
    x48 = nrm[:72000]
    p48 = os.path.join(TMP, "normal48.wav")
    harness.write_wav(p48, x48, r48, "float")
    msgs, _, err, rc, _ = replay([p48], mz)
    got = results(msgs).get("normal48", [])
    n_out = int(np.floor(len(x48) / (r48 / 12000) + 0.5))
    n = expect_windows(n_out, 1024)
    t = np.array([d["t"] for d in got])
    ok = rc == 0 and [d["seq"] for d in got] == list(range(n)) \
        and [d["sample"] for d in got] == [k * 1024 for k in range(n)] \
        and np.abs(np.diff(t) - 1024 / 12000).max() < 1e-6
    tap.ok(f"48 kHz file, 12 kHz model: {n} windows, t every 1024/12000 s", ok,
           f"rc {rc}, {len(got)} windows {err.strip()[-200:]}")

    # 6b. without --model: the shipped model (from the build tree: ../../model)
    shipped = os.path.join(harness.ROOT, "model", "cwru.safetensors")
    if os.path.exists(shipped):
        with open(shipped, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
        r = subprocess.run([TRIDENTD, "--replay", three, "--stdout", "--endpoint", harness.free_endpoint(),
                            "--hop", "8192", "--stats-interval", "0"],
                           capture_output=True, text=True, cwd="/")
        models = {json.loads(ln)["model"] for ln in r.stdout.splitlines() if ln.strip()}
        tap.ok("no --model: the shipped model beside the build tree", r.returncode == 0
               and models == {digest}, f"rc {r.returncode}, {models}: {r.stderr[-200:]}")
    else:
        tap.note("no model/cwru.safetensors: default-model test skipped")

    # 7. realtime pace: 3 s take 3 s within 5 %
    x3s = cwru("ball_007")[0][:36000]
    prt = os.path.join(TMP, "rt.wav")
    harness.write_wav(prt, x3s, 12000, "float")
    msgs, _, err, rc, secs = replay([prt], mn, "--pace", "realtime", stats=0.5)
    secs += WIN / 12000     # the first window can only leave once its 1024 samples were read
    got = results(msgs).get("rt", [])
    stats = [json.loads(t) for topic, t in msgs if topic == "_stats"]
    tap.ok(f"--pace realtime: 3 s file took {secs:.3f} s", rc == 0 and abs(secs - 3) <= 0.15,
           err.strip()[-300:])
    tap.ok("--pace realtime: every window", [d["seq"] for d in got] ==
           list(range(expect_windows(36000, 1024))), f"{len(got)} windows")
    tap.ok(f"_stats every 0.5 s ({len(stats)} messages) with streams, queue, latency",
           4 <= len(stats) <= 7 and all("streams" in s and "queue" in s and "latency_us" in s
                                        for s in stats), str(stats[:1])[:300])

    # 8. bad input: one-line error, documented exit code
    def bad(label, files, code, m=mz, *extra, needle=None):
        _, _, err, rc, _ = replay(files, m, *extra, subscribe=False)
        lines = [ln for ln in err.splitlines() if ": error: " in ln]
        needle = needle if needle is not None else (files[0] if files else "")
        tap.ok(f"{label}: exit {code}, one error line naming it", rc == code and len(lines) == 1
               and needle in lines[0], f"rc {rc}: {err.strip()[-300:]}")

    def raw(name, data):
        path = os.path.join(TMP, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    bad("missing file", [os.path.join(TMP, "nope.wav")], 66)
    bad("not audio", [raw("text.wav", b"this is not a recording\n" * 50)], 65)
    bad("empty file", [raw("empty.wav", b"")], 65)
    e0 = os.path.join(TMP, "noframes.wav")
    harness.write_wav(e0, np.zeros((0, 1), np.float32), 12000, "float")
    bad("WAV without samples", [e0], 65)
    short = os.path.join(TMP, "short.wav")
    harness.write_wav(short, mono[:1000], 12000, "float")
    bad("shorter than a window", [short], 65)
    short48 = os.path.join(TMP, "short48.wav")
    harness.write_wav(short48, x48[:4000], 48000, "float")    # 1000 samples at 12 kHz
    bad("shorter than a window after resampling", [short48], 65)
    u8 = os.path.join(TMP, "u8.wav")
    sf.write(u8, mono / 8, 12000, SndFile.WAV | SndFile.PCM_U8)
    bad("8-bit WAV", [u8], 65)
    f64 = os.path.join(TMP, "f64.wav")
    sf.write(f64, mono / 8, 12000, SndFile.WAV | SndFile.DOUBLE)
    bad("64-bit float WAV", [f64], 65)
    try:
        ogg = os.path.join(TMP, "vorbis.ogg")
        sf.write(ogg, mono / 8, 12000, SndFile.OGG | SndFile.VORBIS)
        bad("Ogg Vorbis", [ogg], 65)
    except OSError as e:
        tap.note(f"no Ogg fixture: {e}")
    bad("missing model", [three], 66, {"path": os.path.join(TMP, "nope.safetensors")},
        needle="nope.safetensors")
    bad("bad model", [three], 65, {"path": raw("bad.safetensors", b"\x10\0\0\0\0\0\0\0{not json}")},
        needle="bad.safetensors")
    dup = os.path.join(TMP, "sub")
    os.makedirs(dup, exist_ok=True)
    harness.write_wav(os.path.join(dup, "three.wav"), x3[:2048], 12000, "float")
    bad("two files with the same name", [three, os.path.join(dup, "three.wav")], 64,
        needle="three")
    bad("no files", [], 64, needle="--replay")
    bad("--hop 0", [three], 64, mz, "--hop", "0", needle="--hop")
    bad("--pace slow", [three], 64, mz, "--pace", "slow", needle="--pace")
    ctx = zmq.Context.instance()
    taken = ctx.socket(zmq.PUB)
    ep = harness.free_endpoint()
    taken.bind(ep)
    _, _, err, rc, _ = replay([three], mz, subscribe=False, endpoint=ep)
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    tap.ok("endpoint already bound: exit 69, one error line naming it",
           rc == 69 and len(lines) == 1 and ep in lines[0], f"rc {rc}: {err.strip()[-300:]}")
    taken.close()
    _, _, err, rc, _ = replay([three], mz, subscribe=False, endpoint="bogus://nowhere")
    lines = [ln for ln in err.splitlines() if ": error: " in ln]
    # (validated before anything is opened: a command-line error, not retried)
    tap.ok("malformed endpoint: exit 64, one error line naming it",
           rc == 64 and len(lines) == 1 and "bogus://nowhere" in lines[0],
           f"rc {rc}: {err.strip()[-300:]}")
    # Without --replay tridentd runs a configuration file (test_service.py):
    # a missing one is a configuration error naming the file.
    missing = os.path.join(TMP, "no-such.conf")
    r = subprocess.run([TRIDENTD, "-c", missing], capture_output=True, text=True)
    tap.ok("tridentd -c MISSING: exit 78 naming the file", r.returncode == 78
           and missing in r.stderr, r.stderr[-200:])
    r = subprocess.run([TRIDENTD, "stray-argument"], capture_output=True, text=True)
    tap.ok("a file without --replay: exit 64 with a message", r.returncode == 64
           and "error" in r.stderr, r.stderr[-200:])
    r = subprocess.run([TRIDENTD, "--help"], capture_output=True, text=True)
    tap.ok("--help documents the exit codes", r.returncode == 0 and all(
        str(c) in r.stdout for c in (64, 65, 66, 69)), r.stdout[-200:])
    r = subprocess.run([TRIDENTD, "--version"], capture_output=True, text=True)
    tap.ok("--version", r.returncode == 0 and r.stdout.startswith("tridentd "), r.stdout)

    # 9. SIGTERM in the middle of a looping fast replay
    sigterm(three, mz, TRIDENTD, "")

    # 9b. a subscriber that takes nothing: the first SIGTERM drains (blocked by
    # NODROP back-pressure), a second one gives up and exits 0 anyway
    ep = harness.free_endpoint()
    stuck = ctx.socket(zmq.SUB)
    stuck.setsockopt(zmq.RCVHWM, 1)
    stuck.setsockopt(zmq.RCVBUF, 4096)
    stuck.connect(ep)
    stuck.setsockopt(zmq.SUBSCRIBE, b"")
    p = subprocess.Popen([TRIDENTD, "--replay", three, "--model", mz["path"], "--endpoint", ep,
                          "--wait-subscribers", "1", "--loop", "--hop", "32",
                          "--stats-interval", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(2.0)
    p.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    still = p.poll() is None
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(timeout=15)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "hung"
    err = p.communicate()[1].decode()
    stuck.close()
    tap.ok("stuck subscriber: a second SIGTERM ends the drain, exit 0", rc == 0,
           f"rc {rc}: {err.strip()[-300:]}")
    tap.note(f"stuck subscriber: still draining 0.5 s after the first SIGTERM: {still}")

    # 9c. latency_us of a paced stream includes the time samples wait in the ring
    paced = os.path.join(TMP, "paced.wav")
    harness.write_wav(paced, x3[:int(0.6 * 12000), 0], 12000, "float")
    paced_latency(paced, 12000, mz)

    # 10. the sanitizer builds of `make check`: the same paths under ASan/UBSan and
    # TSan, on small files (the reference forward is slow under TSan: ~0.5 s a window)
    small = os.path.join(TMP, "small.wav")
    harness.write_wav(small, x3[:3 * WIN + 100], 12000, "float")
    small48 = os.path.join(TMP, "small48.wav")
    harness.write_wav(small48, x48[:5 * 4096], r48, "float")
    for b in harness.BUILDS[1:]:
        try:
            binary = harness.binpath("tridentd", b)
        except FileNotFoundError:
            tap.ok(f"tridentd built in {b}", False)
            continue
        tag = os.path.basename(b)
        msgs, _, err, rc, _ = replay([small], mz, "--workers", "2", stats=0.1,
                                     binary=binary, timeout=120)
        by = results(msgs)
        ok = rc == 0 and sorted(by) == ["small/0", "small/1", "small/2"] and all(
            [d["seq"] for d in ds] == [0, 1, 2] for ds in by.values())
        tap.ok(f"{tag}: 3-channel replay, every window, clean exit", ok and not sanitizer(err),
               f"rc {rc} {sanitizer(err) or err.strip()[-300:]}")
        msgs, _, err, rc, _ = replay([small48], mz, binary=binary, timeout=120)
        n = len(results(msgs).get("small48", []))
        tap.ok(f"{tag}: resampled replay, clean exit", rc == 0 and n == expect_windows(
            5 * 1024, 1024) and not sanitizer(err), f"rc {rc}, {n} windows {sanitizer(err)}")
        if "thread" not in tag:     # up to ~30 windows to drain: too slow under TSan
            sigterm(three, mz, binary, tag + ": ")
    tap.done()


if __name__ == "__main__":
    main()
