"""harness.py — what trident's integration tests share.

Tests print TAP lines through Tap; tests/run.sh counts them.  Paths: the build
under test is $TRIDENT_BUILD (default "build"), all builds made by `make check`
are in $TRIDENT_BUILDS; ../shared/data/cwru holds the CWRU recordings (found
beside the repository, or at $TRIDENT_SHARED).
"""
import atexit
import os
import shutil
import struct
import sys
import tempfile

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
