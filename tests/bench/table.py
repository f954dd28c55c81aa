"""table.py — formats make bench's measurements as one table (run.sh).

    table.py ENGINE.txt TORCH.txt DAEMON.txt

ENGINE.txt holds one or more runs of bench.c, TORCH.txt of bench_torch.py
(one line per measurement and run; the table shows the median over runs of
each run's median, and the minimum and maximum), DAEMON.txt from
run.sh ("daemon WORKERS WINDOWS T0 T1" per replay, or "daemon_failed MSG",
or empty when tridentd is not built).
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
    lines = [line.split() for line in open(daemon) if line.strip()]
    runs = [ln for ln in lines if ln[0] == "daemon"]
    failed = [ln for ln in lines if ln[0] == "daemon_failed"]
    # the engine alone, measured right after each replay: "daemon_engine IMPL THREADS ..."
    alone = [ln for ln in lines if ln[0] == "daemon_engine" and ln[2] == "1"]
    if runs:
        workers, windows = int(runs[0][1]), int(runs[0][2])
        wps = statistics.median(windows / (float(ln[4]) - float(ln[3])) for ln in runs)
        print(f"daemon: tridentd --replay (1 stream, {windows} windows, hop 1024) --pace fast "
              f"--workers {workers}: {wps:.0f} windows/s (median of {len(runs)}, wall clock)")
        if alone:
            one = statistics.median(float(ln[3]) for ln in alone)
            print(f"        engine alone ({alone[0][1]}, 1 thread, measured after each replay) "
                  f"x {workers} workers: {one * workers:.0f} windows/s -> the daemon reaches "
                  f"{100 * wps / (one * workers):.1f}% of it")
        together = [float(ln[3]) for ln in lines
                    if ln[0] == "daemon_engine" and int(ln[2]) == workers and workers > 1]
        if together:
            t = statistics.median(together)
            print(f"        engine alone on {workers} threads at once: {t:.0f} windows/s -> "
                  f"the daemon reaches {100 * wps / t:.1f}% of it")
    elif failed:
        print("daemon: failed: " + " ".join(failed[0][1:]))
    else:
        print("daemon: not built")


if __name__ == "__main__":
    main()
