# SPDX-License-Identifier: Apache-2.0
"""export.py — write a Net's state_dict as a safetensors file trident loads.

No Debian package provides the safetensors library, so the format is written
here (model/FORMAT.md): an 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, padded with
spaces to a multiple of 8, then the raw little-endian tensor data in header
order.

    /usr/bin/python3 model/train/export.py [--seed S] [--scale X] [--classes a,b,c,d]
        [--sample-rate HZ] [--normalize zscore|none] OUT.safetensors
writes a randomly initialised Net (for tests); training uses save().
load() reads such a file back (tests, benchmarks).
"""
import argparse
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {
    torch.float32: ("F32", "<f4"),
    torch.float16: ("F16", "<f2"),
    torch.float64: ("F64", "<f8"),
    torch.int64: ("I64", "<i8"),
    torch.int32: ("I32", "<i4"),
}


def save(state_dict, path, metadata=None):
    """Write tensors (a state_dict) and string metadata as safetensors."""
    header, blobs, off = {}, [], 0
    for name, t in state_dict.items():
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            raw = t.view(torch.int16).numpy().astype("<i2").tobytes()
            code = "BF16"
        else:
            code, np_dtype = DTYPES[t.dtype]
            raw = t.numpy().astype(np_dtype).tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    """(state_dict, metadata) from a safetensors file save() wrote.

    Floating tensors (F32, F16, F64, BF16) come back as float32, integer ones
    (I32, I64) as int64: what Net.load_state_dict and the tests compare with.
    metadata is the "__metadata__" dict ({} if absent).
    """
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    codes = {code: np_dtype for code, np_dtype in DTYPES.values()}
    sd = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        raw = blob[base + a:base + b]
        if h["dtype"] == "BF16":
            # bfloat16 is the top half of a float32: widen the bits.
            arr = (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=codes[h["dtype"]])
            arr = arr.astype(np.int64 if h["dtype"][0] == "I" else np.float32)
        sd[name] = torch.from_numpy(arr.reshape(h["shape"]).copy())
    return sd, meta


def metadata(classes=None, sample_rate=None, normalize=None):
    md = {}
    if classes:
        md["trident.classes"] = ",".join(classes)
    if sample_rate:
        md["trident.sample_rate"] = str(int(sample_rate))
    if normalize:
        md["trident.normalize"] = normalize
    return md


def random_net(seed, scale=1.0, num_classes=4):
    """A Net at PyTorch's default initialisation (times scale) for a seed."""
    from net import Net
    torch.manual_seed(seed)
    net = Net(num_classes)
    if scale != 1.0:
        with torch.no_grad():
            for name, p in net.named_parameters():
                p.mul_(scale)
    net.eval()
    return net


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--classes", default="normal,inner,ball,outer")
    ap.add_argument("--sample-rate", type=int, default=0)
    ap.add_argument("--normalize", default="")
    a = ap.parse_args(argv)
    classes = a.classes.split(",")
    net = random_net(a.seed, a.scale, len(classes))
    save(net.state_dict(), a.out, metadata(classes, a.sample_rate, a.normalize))


if __name__ == "__main__":
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    main()
