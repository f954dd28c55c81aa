# SPDX-License-Identifier: Apache-2.0
"""seeds.py — how the committed seed corpora of the fuzz targets were made.

    /usr/bin/python3 tests/fuzz/seeds.py tests/fuzz/corpus

writes tests/fuzz/corpus/load/ and tests/fuzz/corpus/source/ (the config
seeds are written by hand).  Only needed to change them: they are committed.

load/: model headers of trident's Net (every dtype it takes, metadata or
not, BN.* tensors) followed by a few bytes of data, which fuzz_load extends
to a whole model (a real one is 1.4 to 3.5 MB, too big to mutate), and small
files that are each refused for one reason.  source/: a few hundred frames
of WAV, WAVE_EXTENSIBLE, RF64 and FLAC in every sample format the file source
takes, mono and multichannel, and some it refuses.  Standard library only,
plus libsndfile (a build dependency) through ctypes for the audio.
"""
import ctypes
import ctypes.util
import json
import math
import os
import random
import struct
import sys

# Net's state_dict (model/FORMAT.md): name -> shape; fc's C is filled in.
KS = (3, 5, 7)


def net_shapes(classes):
    shapes = {"conv1.weight": [64, 1, 32], "conv1.bias": [64]}
    for k in KS:
        for layer, (cout, cin) in enumerate(((64, 64), (128, 64), (256, 128)), 1):
            shapes[f"conv{k}_{layer}.weight"] = [cout, cin, k]
            shapes[f"conv{k}_{layer}.bias"] = [cout]
    shapes["fc.weight"] = [classes, 768]
    shapes["fc.bias"] = [classes]
    return shapes


def tensor_bytes(n, dtype, rng):
    """n small random weights as dtype."""
    vals = [rng.uniform(-0.05, 0.05) for _ in range(n)]
    if dtype == "F32":
        return struct.pack(f"<{n}f", *vals)
    if dtype == "F16":
        return struct.pack(f"<{n}e", *vals)
    if dtype == "BF16":
        return struct.pack(f"<{n}H", *(struct.unpack("<I", struct.pack("<f", v))[0] >> 16
                                       for v in vals))
    raise ValueError(dtype)


SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8}


def model(classes=4, dtype="F32", metadata=None, extra=(), seed=0, data=None):
    """A safetensors file of Net (bytes), as export.save() lays it out; extra:
    (name, dtype, shape) tensors appended (BN.*).  data=N: only the first N
    bytes of the data area (its offsets pointing past the end)."""
    rng = random.Random(seed)
    header, blobs, off = {}, [], 0
    tensors = [(n, dtype, s) for n, s in net_shapes(classes).items()] + list(extra)
    for name, dt, shape in tensors:
        count = math.prod(shape)
        size = count * SIZES[dt]
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + size]}
        if data is None or sum(map(len, blobs)) < data:
            blobs.append(tensor_bytes(count, dt, rng) if dt != "I64"
                         else struct.pack(f"<{count}q", *range(count)))
        off += size
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    body = b"".join(blobs)
    return struct.pack("<Q", len(h)) + h + (body if data is None else body[:data])


def raw_header(text):
    h = text.encode()
    return struct.pack("<Q", len(h)) + h


def write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def model_seeds(d):
    os.makedirs(d, exist_ok=True)
    bn = [("BN.weight", "F32", [64]), ("BN.bias", "F32", [64]),
          ("BN.running_mean", "F32", [64]), ("BN.running_var", "F32", [64]),
          ("BN.num_batches_tracked", "I64", [])]
    full = model(4, "F16", {"trident.classes": "a,b,c,d", "trident.sample_rate": "48000"})
    hlen = struct.unpack("<Q", full[:8])[0]
    seeds = {
        # whole headers, a few bytes of data (fuzz_load extends them)
        "f32-meta": model(4, "F32", {"trident.classes": "normal,inner,ball,outer",
                                     "trident.sample_rate": "12000",
                                     "trident.normalize": "zscore", "format": "pt"},
                          seed=1, data=256),
        "f16-bn-1class": model(1, "F16", {"trident.normalize": "none"}, extra=bn, seed=2,
                               data=128),
        "bf16-nometa-3class": model(3, "BF16", seed=3, data=128),
        "f32-256class": model(256, "F32", seed=4, data=64),
        "f32-nodata": model(2, "F32", {"trident.classes": "x,y"}, data=0),
        # refused, one reason each
        "empty": b"",
        "short": b"\x10\x00\x00",
        "len-only": struct.pack("<Q", 0),
        "len-absurd": struct.pack("<Q", 1 << 40) + b"{}",
        "len-past-end": struct.pack("<Q", 64) + b"{}",
        "empty-object": raw_header("{}"),
        "not-object": raw_header("[1,2,3]"),
        "bad-json": raw_header('{"conv1.weight": {"dtype": "F32", '),
        "nul-in-header": raw_header('{"a\\u0000b": 1}'),
        "duplicate": raw_header('{"fc.bias": {"dtype": "F32", "shape": [1], "data_offsets": '
                                '[0, 4]}, "fc.bias": {"dtype": "F32", "shape": [1], '
                                '"data_offsets": [4, 8]}}') + bytes(8),
        "bad-dtype": raw_header('{"fc.bias": {"dtype": "Q7", "shape": [1], '
                                '"data_offsets": [0, 4]}}') + bytes(4),
        "int-dtype": raw_header('{"fc.bias": {"dtype": "I32", "shape": [1], '
                                '"data_offsets": [0, 4]}}') + bytes(4),
        "shape-overflow": raw_header('{"x": {"dtype": "F64", "shape": [4294967296, '
                                     '4294967296, 2], "data_offsets": [0, 0]}}'),
        "shape-zero": raw_header('{"BN.x": {"dtype": "F32", "shape": [0, 99999999999], '
                                 '"data_offsets": [0, 0]}}'),
        "shape-negative": raw_header('{"fc.bias": {"dtype": "F32", "shape": [-1], '
                                     '"data_offsets": [0, 4]}}') + bytes(4),
        "offsets-reversed": raw_header('{"fc.bias": {"dtype": "F32", "shape": [1], '
                                       '"data_offsets": [4, 0]}}') + bytes(4),
        "overlap": raw_header('{"BN.a": {"dtype": "F32", "shape": [2], "data_offsets": '
                              '[0, 8]}, "BN.b": {"dtype": "F32", "shape": [2], '
                              '"data_offsets": [4, 12]}}') + bytes(12),
        "unexpected-name": raw_header('{"conv9.weight": {"dtype": "F32", "shape": [1], '
                                      '"data_offsets": [0, 4]}}') + bytes(4),
        "meta-not-string": raw_header('{"__metadata__": {"trident.sample_rate": 12000}}'),
        "meta-not-object": raw_header('{"__metadata__": "x"}'),
        "classes-257": model(257, "F32", data=0),
        "meta-bad": model(2, "BF16", {"trident.classes": "x,", "trident.sample_rate": "1e400",
                                      "trident.normalize": "zscore"}, data=16),
        # the F16 model cut inside its data area, and one byte short
        "truncated-data": full[:8 + hlen + 1000],
        "truncated-by-one": full[:8 + hlen] + full[8 + hlen:8 + hlen + 1],
        "header-cut": full[:8 + hlen // 2],
    }
    for name, data in seeds.items():
        write(os.path.join(d, name + ".safetensors"), data)


# ---- audio, through libsndfile --------------------------------------------
class SF_INFO(ctypes.Structure):
    _fields_ = [("frames", ctypes.c_int64), ("samplerate", ctypes.c_int),
                ("channels", ctypes.c_int), ("format", ctypes.c_int),
                ("sections", ctypes.c_int), ("seekable", ctypes.c_int)]


SF = dict(WAV=0x010000, AIFF=0x020000, WAVEX=0x130000, RF64=0x220000, FLAC=0x170000,
          PCM_S8=0x1, PCM_16=0x2, PCM_24=0x3, PCM_32=0x4, PCM_U8=0x5, FLOAT=0x6,
          DOUBLE=0x7, ULAW=0x10, ALAW=0x11)
SFM_WRITE = 0x20


def sndfile():
    lib = ctypes.CDLL(ctypes.util.find_library("sndfile") or "libsndfile.so.1")
    lib.sf_open.restype = ctypes.c_void_p
    lib.sf_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(SF_INFO)]
    lib.sf_writef_float.restype = ctypes.c_int64
    lib.sf_writef_float.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                    ctypes.c_int64]
    lib.sf_close.argtypes = [ctypes.c_void_p]
    lib.sf_strerror.restype = ctypes.c_char_p
    lib.sf_strerror.argtypes = [ctypes.c_void_p]
    return lib


def audio(lib, path, major, sub, channels, frames, rate=12000):
    info = SF_INFO(0, rate, channels, SF[major] | SF[sub], 0, 0)
    sf = lib.sf_open(path.encode(), SFM_WRITE, ctypes.byref(info))
    if not sf:
        raise RuntimeError(f"{path}: {lib.sf_strerror(None).decode()}")
    n = frames * channels
    x = (ctypes.c_float * n)(*[0.8 * math.sin(0.05 * (i // channels) * (1 + i % channels))
                               for i in range(n)])
    if lib.sf_writef_float(sf, x, frames) != frames:
        raise RuntimeError(f"{path}: short write")
    lib.sf_close(sf)


def audio_seeds(d):
    os.makedirs(d, exist_ok=True)
    lib = sndfile()
    taken = [("WAV", "PCM_16", 1, 300), ("WAV", "PCM_16", 2, 200), ("WAV", "PCM_24", 1, 300),
             ("WAV", "PCM_32", 2, 150), ("WAV", "FLOAT", 1, 300), ("WAV", "FLOAT", 3, 100),
             ("WAVEX", "PCM_16", 2, 200), ("WAVEX", "PCM_24", 4, 64), ("WAVEX", "FLOAT", 2, 200),
             ("RF64", "PCM_16", 1, 300), ("RF64", "FLOAT", 2, 150),
             ("FLAC", "PCM_16", 1, 400), ("FLAC", "PCM_16", 2, 300), ("FLAC", "PCM_24", 1, 300)]
    refused = [("WAV", "PCM_U8", 1, 200), ("WAV", "DOUBLE", 1, 100), ("WAV", "ALAW", 1, 200),
               ("AIFF", "PCM_16", 1, 200), ("FLAC", "PCM_S8", 1, 300)]
    for major, sub, ch, frames in taken + refused:
        ext = "flac" if major == "FLAC" else "aiff" if major == "AIFF" else "wav"
        audio(lib, os.path.join(d, f"{major.lower()}-{sub.lower()}-{ch}ch.{ext}"),
              major, sub, ch, frames)
    # a WAV header whose data chunk claims more than the file holds
    with open(os.path.join(d, "wav-pcm_16-1ch.wav"), "rb") as f:
        w = bytearray(f.read())
    i = w.find(b"data")
    w[i + 4:i + 8] = struct.pack("<I", 1 << 30)
    write(os.path.join(d, "wav-data-overlong.wav"), bytes(w[:i + 8 + 100]))


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    model_seeds(os.path.join(argv[1], "load"))
    audio_seeds(os.path.join(argv[1], "source"))


if __name__ == "__main__":
    main(sys.argv)
