# SPDX-License-Identifier: Apache-2.0
"""table.py — formats make bench's measurements as one table (run.sh).

    table.py ENGINE.txt TORCH.txt DAEMON.txt

ENGINE.txt holds one or more runs of bench.c, TORCH.txt of bench_torch.py
(one line per measurement and run; the table shows the median over runs of
each run's median, and the minimum and maximum), DAEMON.txt from
replay.py (each "daemon WORKERS WINDOWS T0 T1 CPU_SECONDS" between two
"daemon_engine ..." lines, or "daemon_failed MSG"), empty when tridentd is
not built.  A daemon-to-engine ratio above 105% is printed as "measurement
invalid": the daemon cannot beat the engine it runs.
"""
import platform
import statistics
import sys


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    eng, torch_rows, daemon = sys.argv[1:4]
    flop, fast_flop, cpus, blas = None, None, 1, "?"
    runs = {}           # (name, threads, batch) -> [(median, min, max, cpu median)]
    stages = {}         # stage name -> [windows/s median per run]
    for line in list(open(eng)) + list(open(torch_rows)):
        f = line.split()
        if not f:
            continue
        if f[0] == "cpus":
            cpus = int(f[1])
        elif f[0] == "flop_per_window":
            flop = float(f[1])
        elif f[0] == "flop_per_window_fast":
            fast_flop = float(f[1])
        elif f[0] == "torch_blas":
            blas = f[1]
        elif f[0] == "peak":
            runs.setdefault(("peak", int(f[1]), 0), []).append(
                (float(f[2]), float(f[3]), float(f[4]), float(f[5])))
        elif f[0] == "engine":
            runs.setdefault((f"trident {f[1]}", int(f[2]), 1), []).append(
                (float(f[3]), float(f[4]), float(f[5]), float(f[6])))
        elif f[0] == "stage":
            stages.setdefault(f[1], []).append(float(f[3]))
        elif f[0] == "torch":
            runs.setdefault((f"PyTorch {f[1]}", int(f[2]), int(f[3])), []).append(
                (float(f[4]), float(f[5]), float(f[6]), float(f[7])))
    peak, cpupeak, rows = {}, {}, []
    for (name, th, b), v in runs.items():
        med = statistics.median(r[0] for r in v)
        lo, hi = min(r[1] for r in v), max(r[2] for r in v)
        cpu = statistics.median(r[3] for r in v) if v[0][3] is not None else None
        if name == "peak":
            peak[th], cpupeak[th] = med, cpu
        else:
            rows.append((name, th, b, med, lo, hi, cpu, len(v)))
    nruns = max((r[7] for r in rows), default=0)

    def torch_ref(col):
        """PyTorch eager at batch 1 on 1 thread, and PyTorch's best on 1 thread."""
        b1 = next((r[col] for r in rows if r[0] == "PyTorch eager" and r[1] == 1 and r[2] == 1),
                  None)
        best = max((r[col] for r in rows if r[0].startswith("PyTorch") and r[1] == 1),
                   default=None)
        return b1, best
    base, best = torch_ref(3)
    cbase, cbest = torch_ref(6)
    print(f"trident make bench — {cpu_name()}, {cpus} CPUs, FP32, "
          f"{flop / 1e6:.2f} MFLOP per window; medians (min-max) of {nruns} runs")
    for th, g in sorted(peak.items()):
        print(f"measured FMA peak, {th} thread{'s' if th > 1 else ''}: {g:.1f} GFLOP/s"
              f" = {g * 1e9 / flop:.0f} windows/s; per CPU-second: {cpupeak[th]:.1f} GFLOP"
              f" = {cpupeak[th] * 1e9 / flop:.0f} windows")
    if fast_flop:
        print(f"the fast paths (generic, avx2, avx512) execute {fast_flop / 1e6:.2f} MFLOP per "
              f"window (Winograd F(2,3) on the branch convolutions); % peak counts the "
              f"network's {flop / 1e6:.2f} (direct convolutions), so it passes 100% once they run "
              f"above {100 * fast_flop / flop:.0f}% of the FMA peak")
    print(f"PyTorch's BLAS (its batch-1 convolutions): {blas}")
    print("wall clock: what this run got; per CPU-second: per second of the threads' own "
          "CPU time, leaving out the time other processes held the cores. x PyTorch: "
          "against PyTorch eager, batch 1, 1 thread (b1) and PyTorch's best on 1 thread.")
    print()

    def ratio(v, r):
        return f"{v / r:.2f}" if v and r else "-"

    def pct(v, g):
        return f"{100 * v * flop / (g * 1e9):.1f}" if v and g else "-"
    print(f"{'':39}{' wall clock '.center(52, '-')} {' per CPU-second '.center(28, '-')}")
    hdr = (f"{'':24} {'threads':>7} {'batch':>5} {'windows/s':>9} {'(min-max)':>13} "
           f"{'us/win':>8} {'%peak':>5} {'x b1':>6} {'x best':>6} "
           f"{'windows':>8} {'%peak':>5} {'x b1':>6} {'x best':>6}")
    print(hdr)
    print("-" * len(hdr))
    for name, th, b, med, lo, hi, cpu, _ in rows:
        print(f"{name:24} {th:7d} {b:5d} {med:9.0f} {f'({lo:.0f}-{hi:.0f})':>13} "
              f"{1e6 * th / med:8.1f} {pct(med, peak.get(th)):>5} {ratio(med, base):>6} "
              f"{ratio(med, best):>6} {cpu:8.0f} {pct(cpu, cpupeak.get(th)):>5} "
              f"{ratio(cpu, cbase):>6} {ratio(cpu, cbest):>6}")
    print()
    stage_table(stages, rows)
    daemon_table(daemon)


def stage_table(stages, rows):
    """The per-window work besides the network, each as a share of the fastest
    engine on one thread (the one the daemon picks): targets under 10 % for
    the detector (issue 14), under 5 % for the health check (issue 17), under
    10 % for recording (issue 15: its two threads, capture and writer), under
    5 % for severity and 10 % for severity with the bearing defects on (the
    envelope path doubles it; ours)."""
    if not stages:
        return
    net = max((r for r in rows if r[0].startswith("trident") and r[1] == 1),
              key=lambda r: r[3], default=None)
    if not net:
        return
    net_us = 1e6 / net[3]
    targets = {"health": 5, "detector": 10, "severity": 5, "bearing": 10, "record": 10}
    print(f"per window besides the network (1 thread; the network: {net[0]}, {net_us:.1f} us):")
    for name, v in stages.items():
        us = 1e6 / statistics.median(v)
        share = 100 * us / net_us
        t = targets.get(name)
        verdict = f" (target under {t}%: {'met' if share < t else 'MISSED'})" if t else ""
        print(f"  {name:10} {us:7.2f} us = {share:5.1f}% of the network{verdict}")
    print()


def verdict(pct):
    """A ratio above 105% means the baseline did not see the daemon's conditions."""
    return " -> measurement invalid (above 105%)" if pct > 105 else ""


def daemon_table(path):
    """The daemon against the engine alone, like for like (replay.py): each replay sits
    between two runs of the engine on WORKERS threads for the replay's duration; both
    also in windows per CPU-second."""
    lines = [line.split() for line in open(path) if line.strip()]
    failed = [ln for ln in lines if ln[0] == "daemon_failed"]
    if failed:
        print("daemon: failed: " + " ".join(failed[0][1:]))
        return
    if not any(ln[0] == "daemon" for ln in lines):
        print("daemon: not built")
        return
    wall, cpu, rows = [], [], []
    for i, ln in enumerate(lines):
        if ln[0] != "daemon":
            continue
        before, after = lines[i - 1], lines[i + 1]
        assert before[0] == after[0] == "daemon_engine", "replay.py's order: engine, daemon, engine"
        workers, windows = int(ln[1]), int(ln[2])
        wps = windows / (float(ln[4]) - float(ln[3]))
        eng = (float(before[3]) + float(after[3])) / 2
        # engine: sum over its threads of windows per thread-CPU-second; per thread:
        eng_cpu = (float(before[6]) + float(after[6])) / 2 / workers
        d_cpu = windows / float(ln[5])
        wall.append(100 * wps / eng)
        cpu.append(100 * d_cpu / eng_cpu)
        rows.append((wps, eng, d_cpu, eng_cpu))
    impl, workers, windows = lines[0][1], int(lines[1][1]), int(lines[1][2])
    med = [statistics.median(r[k] for r in rows) for k in range(4)]
    w, c = statistics.median(wall), statistics.median(cpu)
    print(f"daemon: tridentd --replay (1 stream, {windows} windows, hop 1024) --pace fast "
          f"--workers {workers}; each of {len(rows)} replays between two runs of the engine "
          f"alone ({impl}, {workers} threads at once) of its duration; medians:")
    print(f"  wall clock:      daemon {med[0]:.0f} windows/s, engine alone {med[1]:.0f} -> "
          f"the daemon reaches {w:.1f}% of it "
          f"(replays: {', '.join(f'{x:.1f}%' for x in wall)}){verdict(max(wall))}")
    print(f"  per CPU-second:  daemon {med[2]:.0f} windows per second of its process's CPU time "
          f"(all threads), engine alone {med[3]:.0f} per thread -> {c:.1f}% "
          f"(replays: {', '.join(f'{x:.1f}%' for x in cpu)}){verdict(max(cpu))}")


if __name__ == "__main__":
    main()
