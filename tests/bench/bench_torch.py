# SPDX-License-Identifier: Apache-2.0
"""bench_torch.py — Debian's PyTorch on trident's network, for make bench.

    /usr/bin/python3 tests/bench/bench_torch.py [--repeats N] [--seconds S]
                                                [--scan | --best T:B,...] MODEL

Loads the same safetensors file the C benchmark runs into model/train/net.py's
Net and measures windows/s with torch.inference_mode():
  eager and traced (torch.jit.trace + freeze) at batch 1 on one thread;
  "onednn": the same layers calling torch.mkldnn_convolution directly at
  batch 1 (PyTorch itself only picks oneDNN for batch > 1; at batch 1 it
  runs im2col + the system BLAS, which is netlib's reference BLAS unless
  OpenBLAS is installed: the BLAS in use is printed);
  traced at its best batch size on one thread and on all CPUs (intra-op
  threads = online CPUs), the batch chosen by a quick scan first (--scan
  only scans and prints "best THREADS BATCH" lines; --best 1:16,2:64 skips
  the scan, so run.sh can call this once per repeat, between runs of the C
  benchmark, and both see the same load).
Each is measured REPEATS times, interleaved; prints lines for run.sh:
  torch NAME THREADS BATCH WINDOWS_PER_S_MEDIAN MIN MAX CPU_MEDIAN
(CPU_MEDIAN: windows per second of the process's CPU time, as bench.c's.)
  torch_blas PATH
"""
import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "model", "train"))
import export  # noqa: E402
from net import Net, WINDOW  # noqa: E402


def onednn_forward(net):
    """Net.forward with every Conv1d run by oneDNN (torch.mkldnn_convolution)."""
    def conv(c, x):
        return torch.mkldnn_convolution(x, c.weight, c.bias, c.padding, c.stride,
                                        c.dilation, c.groups)

    def fwd(x):
        x = net.pool1(conv(net.conv1, x))
        ys = []
        for k in (3, 5, 7):
            y = x
            for layer in (1, 2, 3):
                y = getattr(net, f"pool{k}_{layer}")(conv(getattr(net, f"conv{k}_{layer}"), y))
            ys.append(net.pool2(y))
        return net.fc(torch.cat(ys, dim=1).flatten(1))
    return fwd


def blas_in_use():
    with open("/proc/self/maps") as f:
        for line in f:
            if "blas" in line.rsplit("/", 1)[-1]:
                return line.split()[-1]
    return "unknown"


def rate(fn, batch, seconds):
    """(windows/s, windows per CPU-second of this process) of fn() over about
    `seconds` of wall clock, after one warm-up call."""
    fn()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        n += 1
        t = time.perf_counter() - t0
        if t >= seconds:
            return n * batch / t, n * batch / max(time.process_time() - c0, 1e-9)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.3)
    ap.add_argument("--scan", action="store_true")
    ap.add_argument("--best", default="")
    a = ap.parse_args()

    sd, _ = export.load(a.model)
    classes = sd["fc.weight"].shape[0]
    net = Net(classes)
    net.load_state_dict(sd, strict=False)   # BN.* may be absent: unused in forward
    net.eval()
    cpus = os.cpu_count() or 1
    gen = torch.Generator().manual_seed(0)

    def inputs(b):
        return torch.rand((b, 1, WINDOW), generator=gen) - 0.5

    with torch.inference_mode():
        traced = {}

        def tr(b):
            if b not in traced:
                m = torch.jit.freeze(torch.jit.trace(net, inputs(b)))
                traced[b] = m
            return traced[b]

        onednn = onednn_forward(net)
        x = inputs(2)
        if (onednn(x) - net(x)).abs().max() > 1e-4 * net(x).abs().max():
            sys.exit("bench_torch: the oneDNN forward disagrees with Net")

        def run(kind, threads, b, seconds):
            torch.set_num_threads(threads)
            x = inputs(b)
            f = {"eager": net, "onednn": onednn}.get(kind) or tr(b)
            return rate(lambda: f(x), b, seconds)

        # best batch per thread count: one quick pass
        batches = (1, 4, 16, 64, 256)
        best = {int(t): int(b) for t, b in
                (kv.split(":") for kv in a.best.split(",") if kv)}
        for th in sorted({1, cpus} - set(best)):
            scan = {b: run("traced", th, b, a.seconds / 2)[0] for b in batches}
            best[th] = max(scan, key=scan.get)
        if a.scan:
            for th, b in sorted(best.items()):
                print(f"best {th} {b}")
            return

        series = [("eager", 1, 1), ("traced", 1, 1), ("onednn", 1, 1),
                  ("traced", 1, best[1])]
        if cpus > 1:
            series += [("traced", cpus, best[cpus])]
        vals = {s: [] for s in series}
        for _ in range(a.repeats):
            for s in series:
                vals[s].append(run(s[0], s[1], s[2], a.seconds))
    print(f"torch_blas {blas_in_use()}")
    for (kind, th, b), v in vals.items():
        wall = [w for w, _ in v]
        cpu = statistics.median(c for _, c in v)
        print(f"torch {kind} {th} {b} {statistics.median(wall):.1f} {min(wall):.1f} "
              f"{max(wall):.1f} {cpu:.1f}")


if __name__ == "__main__":
    main()
