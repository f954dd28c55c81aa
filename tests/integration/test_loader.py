# SPDX-License-Identifier: Apache-2.0
"""test_loader.py — net_load() refuses bad model files cleanly, accepts good ones.

Every bad file (built here from a random Net's state_dict, then broken one way)
must make `net-run --info FILE` exit with status 1 — not a signal, not a
sanitizer abort — printing exactly one line on stderr that starts with the
file's path and names the tensor or key at fault.  Good files (with and
without metadata, F16 and BF16 weights, BN tensors absent, tensors stored out
of order with gaps) must load, report their metadata and SHA-256 prefix, and
give PyTorch's logits.  Runs under the normal and the ASan+UBSan builds of
$TRIDENT_BUILDS.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import export  # noqa: E402

tap = harness.Tap()
torch.set_num_threads(1)
CODES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<i8"): "I64",
         np.dtype("<f8"): "F64", np.dtype("<i4"): "I32"}


def entries_of(state_dict, dtype="F32"):
    """[[name, dtype, shape, raw bytes]] of a state_dict, floats as dtype."""
    out = []
    for name, t in state_dict.items():
        t = t.detach().contiguous()
        if t.is_floating_point() and dtype == "F16":
            code, raw = "F16", t.numpy().astype("<f2").tobytes()
        elif t.is_floating_point() and dtype == "BF16":
            code, raw = "BF16", t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            a = t.numpy()
            a = a.astype(a.dtype.newbyteorder("<"))
            code, raw = CODES[a.dtype], a.tobytes()
        out.append([name, code, list(t.shape), raw])
    return out


def encode(entries, metadata=None, offsets=None, gap=0, header_len=None, raw_header=None):
    """safetensors bytes.  offsets: {name: [b, e]} overriding the computed
    ones; gap: bytes left between tensors; entries may repeat a name."""
    parts, data, off = [], b"", 0
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata))
    for name, code, shape, raw in entries:
        o = [off, off + len(raw)]
        data += raw + b"\0" * gap
        off += len(raw) + gap
        if offsets and name in offsets:
            o = offsets[name]
        parts.append(json.dumps(name) + ":" + json.dumps(
            {"dtype": code, "shape": shape, "data_offsets": o}))
    h = raw_header if raw_header is not None else ("{" + ",".join(parts) + "}").encode()
    h += b" " * (-len(h) % 8)
    n = len(h) if header_len is None else header_len
    return struct.pack("<Q", n) + h + data


def offsets_in(entries):
    o, off = {}, 0
    for name, _, _, raw in entries:
        o[name] = [off, off + len(raw)]
        off += len(raw)
    return o, off


def replace(entries, name, **kw):
    out = []
    for e in entries:
        e = list(e)
        if e[0] == name:
            for k, v in kw.items():
                e[{"name": 0, "dtype": 1, "shape": 2, "raw": 3}[k]] = v
        out.append(e)
    return out


def safe_name(label):
    return "".join(c if c.isalnum() else "_" for c in label)[:60] + ".safetensors"


def builds():
    bs = [b for b in harness.BUILDS
          if os.path.basename(b) in ("build", "build-address")
          and os.path.exists(os.path.join(b, "tools", "net-run"))]
    return bs or [harness.BUILD]


def info(build, path):
    return subprocess.run([harness.binpath("net-run", build), "--info", path],
                          capture_output=True, text=True, errors="replace")


def expect_refused(tmp, label, blob, must, path=None):
    _show = os.environ.get("SHOW")
    if path is None:
        path = os.path.join(tmp, safe_name(label))
        with open(path, "wb") as f:
            f.write(blob)
    for b in builds():
        r = info(b, path)
        if _show:
            print("#", r.stderr.strip())
        lines = r.stderr.splitlines()
        why = []
        if r.returncode != 1:
            why.append(f"exit {r.returncode}")
        if len(lines) != 1:
            why.append(f"{len(lines)} stderr lines")
        elif not lines[0].startswith(path + ": "):
            why.append("message does not start with the path")
        msg = r.stderr[len(path) + 2:] if r.stderr.startswith(path + ": ") else r.stderr
        for s in must:
            if s not in msg:       # the path itself may contain the words
                why.append(f"no {s!r}")
        if r.stdout:
            why.append("stdout not empty")
        tap.ok(f"{os.path.basename(b)}: refuses {label}", not why,
               "; ".join(why) + " | " + r.stderr.strip()[:400].replace("\n", " / "))


def main():
    net = export.random_net(7, 1.0, 4)
    sd = net.state_dict()
    good = entries_of(sd)
    md = {"trident.classes": "normal,inner,ball,outer", "trident.sample_rate": "12000",
          "trident.normalize": "zscore"}
    offs, dsize = offsets_in(good)

    with tempfile.TemporaryDirectory() as tmp:
        ok_blob = encode(good, md)
        hlen = struct.unpack("<Q", ok_blob[:8])[0]

        # -- the file's frame ------------------------------------------------
        expect_refused(tmp, "empty file", b"", ["too short"])
        expect_refused(tmp, "4-byte file", ok_blob[:4], ["too short"])
        expect_refused(tmp, "file cut inside the header", ok_blob[:200], ["beyond the end"])
        expect_refused(tmp, "file cut inside the data", ok_blob[:len(ok_blob) // 2],
                       ["outside the data area"])
        expect_refused(tmp, "file missing its last byte", ok_blob[:-1],
                       ["fc.bias", "outside the data area"])
        expect_refused(tmp, "header length beyond the file",
                       struct.pack("<Q", len(ok_blob)) + ok_blob[8:], ["beyond the end"])
        for n in (200 << 20, 1 << 63, (1 << 64) - 1):
            expect_refused(tmp, f"absurd header length {n}",
                           struct.pack("<Q", n) + ok_blob[8:], ["absurd"])
        expect_refused(tmp, "missing file", None, ["No such file"],
                       path=os.path.join(tmp, "nonexistent.safetensors"))
        expect_refused(tmp, "a directory", None, ["regular file"], path=tmp)

        # -- the JSON ---------------------------------------------------------
        expect_refused(tmp, "bad JSON", encode(good, raw_header=b"{not json"), ["bad JSON"])
        expect_refused(tmp, "NUL bytes in the header",
                       encode(good, raw_header=b'{"a\x00":1}'), ["bad JSON"])
        expect_refused(tmp, "JSON header that is an array",
                       encode(good, raw_header=b"[1,2]"), ["not an object"])
        expect_refused(tmp, "empty header", encode(good, raw_header=b""), ["bad JSON"])
        dup = good[:3] + [good[1]] + good[3:]
        expect_refused(tmp, "duplicate tensor names", encode(dup, md, offsets=offs),
                       ["duplicate", good[1][0]])
        hdr = ('{"__metadata__":{"trident.normalize":"none"},"__metadata__":{}}').encode()
        expect_refused(tmp, "duplicate __metadata__", encode(good, raw_header=hdr),
                       ["duplicate", "__metadata__"])

        # -- entries ------------------------------------------------------------
        raw_hdr = json.loads(ok_blob[8:8 + hlen])

        def with_entry(name, value):
            h = dict(raw_hdr)
            h[name] = value
            return encode(good, raw_header=json.dumps(h).encode())

        expect_refused(tmp, "entry not an object", with_entry("conv1.bias", 5),
                       ["conv1.bias", "not a JSON object"])
        e = dict(raw_hdr["conv1.bias"]); del e["dtype"]
        expect_refused(tmp, "entry without dtype", with_entry("conv1.bias", e),
                       ["conv1.bias", "dtype"])
        e = dict(raw_hdr["conv1.bias"]); e["shape"] = [64.0]
        expect_refused(tmp, "non-integer shape", with_entry("conv1.bias", e),
                       ["conv1.bias", "shape"])
        e = dict(raw_hdr["conv1.bias"]); e["shape"] = [-64]
        expect_refused(tmp, "negative shape", with_entry("conv1.bias", e),
                       ["conv1.bias", "shape"])
        e = dict(raw_hdr["conv1.bias"]); e["shape"] = [1 << 62, 1 << 62]
        expect_refused(tmp, "shape whose size overflows", with_entry("conv1.bias", e),
                       ["conv1.bias", "too large"])
        e = dict(raw_hdr["conv1.bias"]); e["data_offsets"] = [-4, 252]
        expect_refused(tmp, "negative data offset", with_entry("conv1.bias", e),
                       ["conv1.bias", "data_offsets"])
        e = dict(raw_hdr["conv1.bias"]); e["data_offsets"] = [0]
        expect_refused(tmp, "data_offsets of one number", with_entry("conv1.bias", e),
                       ["conv1.bias", "data_offsets"])

        # -- offsets -----------------------------------------------------------------
        b0, e0 = offs["conv3_2.bias"]
        expect_refused(tmp, "data offsets past the data area",
                       encode(good, md, offsets={"conv3_2.bias": [dsize - 256, dsize + 256]}),
                       ["conv3_2.bias", "outside the data area"])
        expect_refused(tmp, "begin after end",
                       encode(good, md, offsets={"conv3_2.bias": [e0, b0]}),
                       ["conv3_2.bias", "outside the data area"])
        expect_refused(tmp, "data offsets shorter than dtype x shape",
                       encode(good, md, offsets={"conv3_2.bias": [b0, e0 - 4]}),
                       ["conv3_2.bias", "512", "508"])
        expect_refused(tmp, "data offsets longer than dtype x shape",
                       encode(good, md, offsets={"conv3_2.bias": [b0, e0 + 4]}),
                       ["conv3_2.bias", "516"])
        expect_refused(tmp, "two tensors on the same bytes",
                       encode(good, md, offsets={"conv5_1.bias": offs["conv3_1.bias"]}),
                       ["overlap", "conv3_1.bias", "conv5_1.bias"])
        expect_refused(tmp, "tensors overlapping by 4 bytes",
                       encode(good, md, offsets={"conv3_2.bias": [b0 - 4, e0 - 4]}),
                       ["overlap", "conv3_2.bias"])

        # -- names, shapes, dtypes ------------------------------------------------------
        expect_refused(tmp, "missing tensor",
                       encode([e for e in good if e[0] != "conv5_2.bias"], md),
                       ["missing tensor conv5_2.bias"])
        expect_refused(tmp, "unknown tensor",
                       encode(good + [["conv9_1.weight", "F32", [4], b"\0" * 16]], md),
                       ["conv9_1.weight"])
        w = np.zeros((64, 64, 5), "<f4").tobytes()
        expect_refused(tmp, "wrong shape", encode(replace(good, "conv3_1.weight",
                                                          shape=[64, 64, 5], raw=w), md),
                       ["conv3_1.weight", "[64,64,5]", "[64,64,3]"])
        expect_refused(tmp, "wrong rank", encode(replace(good, "conv1.bias", shape=[64, 1]), md),
                       ["conv1.bias", "shape"])
        expect_refused(tmp, "fc.weight with 700 features",
                       encode(replace(good, "fc.weight", shape=[4, 700],
                                      raw=np.zeros((4, 700), "<f4").tobytes()), md),
                       ["fc.weight", "768"])
        expect_refused(tmp, "fc.bias disagreeing with fc.weight",
                       encode(replace(good, "fc.bias", shape=[5],
                                      raw=np.zeros(5, "<f4").tobytes()), md),
                       ["fc.bias", "[5]"])
        expect_refused(tmp, "zero classes",
                       encode(replace(replace(good, "fc.weight", shape=[0, 768], raw=b""),
                                      "fc.bias", shape=[0], raw=b""), md),
                       ["fc.weight", "classes"])
        expect_refused(tmp, "300 classes",
                       encode(replace(replace(good, "fc.weight", shape=[300, 768],
                                              raw=np.zeros((300, 768), "<f4").tobytes()),
                                      "fc.bias", shape=[300], raw=np.zeros(300, "<f4").tobytes())),
                       ["fc.weight", "300 classes"])
        expect_refused(tmp, "wrong dtype (I32 weights)",
                       encode(replace(good, "conv1.weight", dtype="I32"), md),
                       ["conv1.weight", "dtype I32"])
        expect_refused(tmp, "wrong dtype (F64 bias)",
                       encode(replace(good, "conv1.bias", dtype="F64",
                                      raw=np.zeros(64, "<f8").tobytes()), md),
                       ["conv1.bias", "dtype F64"])
        expect_refused(tmp, "unknown dtype", encode(replace(good, "fc.bias", dtype="F99"), md),
                       ["fc.bias", "unknown dtype"])
        bad = np.array(sd["conv5_1.weight"]).astype("<f4")
        bad.flat[17] = np.nan
        expect_refused(tmp, "NaN weight",
                       encode(replace(good, "conv5_1.weight", raw=bad.tobytes()), md),
                       ["conv5_1.weight", "non-finite", "17"])

        # -- metadata -------------------------------------------------------------------------
        for value, must in ((dict(md, **{"trident.classes": "a,b,c"}),
                             ["trident.classes", "3 names", "4 classes"]),
                            (dict(md, **{"trident.classes": "a,b,c,d,e"}),
                             ["trident.classes", "5 names", "4 classes"]),
                            (dict(md, **{"trident.classes": "a,,c,d"}),
                             ["trident.classes", "empty"]),
                            (dict(md, **{"trident.normalize": "l2"}), ["trident.normalize", "l2"]),
                            (dict(md, **{"trident.sample_rate": "fast"}), ["trident.sample_rate"]),
                            (dict(md, **{"trident.sample_rate": "-8000"}), ["trident.sample_rate"]),
                            (dict(md, **{"trident.sample_rate": "0"}), ["trident.sample_rate"]),
                            (dict(md, **{"trident.sample_rate": "1e30"}),
                             ["trident.sample_rate", "1e30", "10000000"]),
                            (dict(md, **{"trident.sample_rate": "10000000.5"}),
                             ["trident.sample_rate", "10000000"]),
                            (dict(md, **{"trident.sample_rate": "0.5"}),
                             ["trident.sample_rate", "0.5"]),
                            (dict(md, **{"trident.sample_rate": 12000}),
                             ["trident.sample_rate", "not a string"]),
                            (["trident.classes"], ["__metadata__", "not a JSON object"])):
            expect_refused(tmp, f"metadata {json.dumps(value)[:60]}", encode(good, value), must)

        # -- good files ---------------------------------------------------------------------
        x = np.random.default_rng(3).standard_normal((24, 1024)).astype(np.float32)
        x[1] *= 1000
        inp = os.path.join(tmp, "in.f32")
        x.tofile(inp)

        def accepted(label, blob, ref_net, want):
            path = os.path.join(tmp, safe_name(label))
            with open(path, "wb") as f:
                f.write(blob)
            want = dict(want, digest=hashlib.sha256(blob).hexdigest()[:12])
            with torch.no_grad():
                gold = ref_net(torch.from_numpy(x)[:, None, :]).numpy()
            for b in builds():
                r = info(b, path)
                got = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
                diff = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
                tap.ok(f"{os.path.basename(b)}: accepts {label}",
                       r.returncode == 0 and not r.stderr and not diff,
                       f"exit {r.returncode} {r.stderr.strip()[:200]} {diff}")
                outp = os.path.join(tmp, "out.f32")
                r = subprocess.run([harness.binpath("net-run", b), path, inp, outp],
                                   capture_output=True, text=True)
                y = np.fromfile(outp, "<f4") if r.returncode == 0 else np.zeros(0)
                ok = y.size == gold.size
                rel = np.inf
                if ok:
                    y = y.reshape(gold.shape)
                    rel = float((np.abs(y - gold) / np.abs(gold).max(1, keepdims=True)).max())
                    ok = rel <= 1e-4
                tap.ok(f"{os.path.basename(b)}: {label} gives PyTorch's logits", ok,
                       f"exit {r.returncode} {r.stderr.strip()[:200]} rel {rel:.3g}")

        accepted("F32 with metadata", ok_blob, net,
                 {"classes": "normal,inner,ball,outer", "n_classes": "4",
                  "sample_rate": "12000", "normalize": "zscore"})
        accepted("F32 without metadata", encode(good), net,
                 {"classes": "0,1,2,3", "sample_rate": "0", "normalize": "none"})
        accepted("unknown metadata keys ignored", encode(good, {"trained_on": "cwru",
                                                                "trident.normalize": "none"}),
                 net, {"classes": "0,1,2,3", "normalize": "none"})
        shuffled = [good[i] for i in np.random.default_rng(1).permutation(len(good))]
        accepted("tensors out of order, gaps, no BN",
                 encode([e for e in shuffled if not e[0].startswith("BN.")], md, gap=12),
                 net, {"n_classes": "4"})
        for code, dt in (("F16", torch.float16), ("BF16", torch.bfloat16)):
            rounded = export.random_net(7, 1.0, 4)
            with torch.no_grad():
                for p in rounded.parameters():
                    p.copy_(p.to(dt).float())
            accepted(f"{code} weights (widened)", encode(entries_of(sd, code), md), rounded,
                     {"classes": "normal,inner,ball,outer"})
        net10 = export.random_net(8, 1.0, 10)
        accepted("10 classes, fractional sample rate",
                 encode(entries_of(net10.state_dict()),
                        {"trident.classes": ",".join(f"k{i}" for i in range(10)),
                         "trident.sample_rate": "44100.5"}),
                 net10, {"n_classes": "10", "sample_rate": "44100.5"})
    tap.done()


if __name__ == "__main__":
    main()
