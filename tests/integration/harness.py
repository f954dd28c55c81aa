# SPDX-License-Identifier: Apache-2.0
"""harness.py — what trident's integration tests share.

Tests print TAP lines through Tap; tests/run.sh counts them.  Paths: the build
under test is $TRIDENT_BUILD (default "build"), all builds made by `make check`
are in $TRIDENT_BUILDS; ../shared/data/cwru holds the CWRU recordings (found
beside the repository, or at $TRIDENT_SHARED).  Also: free TCP ports, a
pretend systemd notify socket, random exported models and their PyTorch logits.
"""
import atexit
import hashlib
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("TRIDENT_BUILD", "build"))
BUILDS = [os.path.join(ROOT, b) for b in os.environ.get("TRIDENT_BUILDS", "build").split()]
SHARED = os.environ.get("TRIDENT_SHARED", os.path.join(ROOT, "..", "shared"))
CWRU = os.path.join(SHARED, "data", "cwru")
sys.path.insert(0, os.path.join(ROOT, "model", "train"))


def binpath(name, build=None):
    """A program of a build: tridentd, trident-sub, trident-prep, or tools/NAME."""
    b = build or BUILD
    for sub in ("bin", "tools"):
        p = os.path.join(b, sub, name)
        if os.path.exists(p):
            return p
    raise FileNotFoundError(f"{name} not built in {b}")


def tmpdir(prefix):
    """A temporary folder removed when the test exits, failed or not."""
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    return d


class Tap:
    """TAP output: ok()/fail() print one line each; done() exits 1 on failure."""

    def __init__(self):
        self.failed = 0

    def ok(self, name, cond=True, why=""):
        if cond:
            print(f"ok - {name}", flush=True)
        else:
            self.failed += 1
            print(f"not ok - {name}" + (f" # {why}" if why else ""), flush=True)
        return cond

    def note(self, msg):
        print(f"# {msg}", flush=True)

    def done(self):
        sys.exit(1 if self.failed else 0)


def read_wav(path):
    """Return (samples float32 [frames, channels], rate) for PCM 16/24/32 or float WAV.

    Integer samples are divided by 2^(bits-1), as libsndfile and the daemon do.
    """
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    pos, fmt, raw = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            fmt = struct.unpack("<HHIIHH", body[:16])
            if fmt[0] == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: real tag in the GUID
                fmt = (struct.unpack("<H", body[24:26])[0],) + fmt[1:]
        elif cid == b"data":
            raw = body
        pos += 8 + size + (size & 1)
    tag, ch, rate, _, _, bits = fmt
    if tag == 3 and bits == 32:
        x = np.frombuffer(raw, "<f4").astype(np.float32)
    elif tag == 1 and bits == 16:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif tag == 1 and bits == 32:
        x = (np.frombuffer(raw, "<i4").astype(np.float64) / 2147483648.0).astype(np.float32)
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        v = np.where(v >= 1 << 23, v - (1 << 24), v)
        x = (v.astype(np.float64) / 8388608.0).astype(np.float32)
    else:
        raise ValueError(f"{path}: unsupported WAV format tag {tag}, {bits} bits")
    n = len(x) // ch
    return x[: n * ch].reshape(n, ch), rate


def write_wav(path, samples, rate, fmt="float"):
    """Write [frames, channels] (or 1-D) samples as a WAV: fmt float, s16 or s32."""
    x = np.asarray(samples)
    if x.ndim == 1:
        x = x[:, None]
    ch = x.shape[1]
    if fmt == "float":
        tag, bits, raw = 3, 32, x.astype("<f4").tobytes()
    elif fmt == "s16":
        tag, bits = 1, 16
        raw = np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()
    elif fmt == "s32":
        tag, bits = 1, 32
        raw = np.clip(np.round(x.astype(np.float64) * 2147483648.0),
                      -2147483648, 2147483647).astype("<i4").tobytes()
    else:
        raise ValueError(fmt)
    ba = ch * bits // 8
    fmtc = struct.pack("<HHIIHH", tag, ch, rate, rate * ba, ba, bits)
    if tag == 3:
        fmtc += struct.pack("<H", 0)
    chunks = b"fmt " + struct.pack("<I", len(fmtc)) + fmtc
    if tag == 3:
        chunks += b"fact" + struct.pack("<II", 4, len(x))
    chunks += b"data" + struct.pack("<I", len(raw)) + raw
    with open(path, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks)


def window_accounting(starts, hop, n, win=1024):
    """(span, skipped, tail) of n samples cut into windows of `win` starting
    at `starts` (ascending, the k-th at k * hop), worked out from the windows
    alone: span, the samples inside at least one window; skipped, those
    before max(last end, k * hop) inside none (hop > win); tail, the rest."""
    if not starts:
        return 0, 0, n
    span, covered_to = 0, 0
    for s in starts:
        span += max(0, s + win - max(s, covered_to))
        covered_to = max(covered_to, s + win)
    bound = min(max(starts[-1] + win, len(starts) * hop), n)
    return span, bound - min(span, bound), n - bound


def free_port():
    """A TCP port on 127.0.0.1 free right now (the kernel's pick)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def subscriber(endpoint, *topics, ctx=None):
    """A ZeroMQ SUB socket connected to endpoint and subscribed to topics
    (bytes prefixes; none: everything), with no receive high-water mark (a
    test loses nothing to its own queue) and no linger on close."""
    import zmq
    sub = (ctx or zmq.Context.instance()).socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.connect(endpoint)
    for t in topics or (b"",):
        sub.setsockopt(zmq.SUBSCRIBE, t)
    return sub


def free_endpoint():
    """A ZeroMQ endpoint "tcp://127.0.0.1:PORT" on a free port."""
    return f"tcp://127.0.0.1:{free_port()}"


class NotifySocket:
    """Plays systemd's notify socket (NOTIFY_SOCKET=path): collects the
    daemon's sd_notify datagrams as (time.monotonic() of arrival, text) in
    .msgs.  SO_PASSCRED is set as systemd sets it (the sender's credentials
    come with every datagram)."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.msgs = []

    def _recv(self, timeout):
        """Take one datagram, waiting up to timeout s (0: only one already
        there); False if none came."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, BlockingIOError):
            return False
        self.msgs.append((time.monotonic(), data.decode(errors="replace")))
        return True

    def pump(self, seconds):
        """Collect for `seconds`, then whatever is already queued."""
        end = time.monotonic() + seconds
        while self._recv(max(0.0, end - time.monotonic())):
            pass

    def wait_for(self, text, seconds, since=0):
        """Index in .msgs of the first message from index `since` on with a
        line equal to text, collecting for up to `seconds`; None if none."""
        end = time.monotonic() + seconds
        while True:
            for i, (_, m) in enumerate(self.msgs[since:], since):
                if text in m.split("\n"):
                    return i
            left = end - time.monotonic()
            if left <= 0:
                return None
            self._recv(min(left, 0.1))

    def messages(self):
        """The texts of every message so far (those queued are taken first)."""
        self.pump(0)
        return [m for _, m in self.msgs]

    def close(self):
        self.sock.close()
        os.unlink(self.path)


def make_model(path, seed=0, rate=None, normalize=None,
               classes=("normal", "inner", "ball", "outer")):
    """Export model/train/export.random_net(seed) with the metadata given to
    path; return {"path", "net", "norm", "digest"} (digest: the first 12 hex
    digits of the file's SHA-256, as the daemon's `model` field has it)."""
    import export
    net = export.random_net(seed, num_classes=len(classes))
    export.save(net.state_dict(), path, export.metadata(classes, rate, normalize))
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    return {"path": path, "net": net, "norm": normalize, "digest": digest}


def torch_logits(m, windows):
    """PyTorch logits of windows [n, 1024] by make_model's m, normalised as
    its metadata says."""
    import torch
    from net import normalize
    x = torch.from_numpy(normalize(np.asarray(windows, np.float32), m["norm"]))
    with torch.no_grad():
        return m["net"](x[:, None, :]).numpy()


def rss_kb(pid):
    """Resident memory (VmRSS) of a running process in kB, from
    /proc/PID/status; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
    except (OSError, ValueError):
        pass
    return None


# What the sanitizers (and valgrind) print first when they report something.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def sanitizer_report(text):
    """The first line of a sanitizer report in a program's stderr, or ''."""
    for ln in text.splitlines():
        if any(k in ln for k in SANITIZER_MARKS):
            return ln
    return ""


# ---- a daemon run with --stdout-like JSON on stdout (test_alsa, test_record) ----

def run_daemon(binary, conf, env, seconds, want=None):
    """Run tridentd -c conf for up to `seconds` (or until want(msgs) is true),
    then SIGTERM; return (messages, stderr, exit status).  Messages read
    before the SIGTERM carry their arrival time (time.time()) in "_rx"."""
    p = subprocess.Popen([binary, "-c", conf], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    msgs, buf, end = [], b"", time.monotonic() + seconds
    os.set_blocking(p.stdout.fileno(), False)
    while time.monotonic() < end and p.poll() is None:
        r, _, _ = select.select([p.stdout], [], [], 0.1)
        if r:
            chunk = p.stdout.read() or b""
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        msgs.append(dict(json.loads(line), _rx=time.time()))
                    except ValueError:
                        pass
        if want and want(msgs):
            break
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        out, err = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    for line in (buf + (out or b"")).split(b"\n"):
        if line.strip():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                pass
    return msgs, err.decode(errors="replace"), p.returncode


def windows_of(msgs, stream):
    return sorted((m for m in msgs if m.get("stream") == stream and "label" in m),
                  key=lambda m: m["seq"])


def daemon_conf(tmp, model, stream, stats=0.0):
    path = os.path.join(tmp, "trident.conf")
    with open(path, "w") as f:
        f.write(f'model = "{model}";\nworkers = 1;\n'
                f'publish = {{ endpoints = [ "ipc://{tmp}/pub" ]; stdout = true; '
                f'stats_interval = {stats}; }};\n'
                f'streams = ( {stream} );\n')
    return path


def last_stats(msgs, stream):
    """The stream's entry in the last _stats message, or {}."""
    for m in reversed(msgs):
        for s in m.get("streams", []) if isinstance(m.get("streams"), list) else []:
            if s.get("stream") == stream:
                return s
    return {}
