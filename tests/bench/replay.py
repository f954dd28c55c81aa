# SPDX-License-Identifier: Apache-2.0
"""replay.py — make bench's daemon measurement: the whole daemon against the engine alone,
measured like for like (run.sh calls it; table.py reads its lines).

    replay.py BUILD MODEL WAV WINDOWS HOP WORKERS REPEATS ENDPOINT

One untimed replay first (warms the page cache, gives the duration D); then
REPEATS times: the engine alone (bench -i auto -w WORKERS: WORKERS threads at
once, the daemon's implementation, no FMA probe) for D seconds, a timed
`tridentd --replay --pace fast --workers WORKERS`, and D is updated to that
replay's duration; one last engine run closes the series.  So every replay
sits between two engine runs of its own duration, and both sides are also
counted in CPU-seconds (the daemon's: user + system time of its process, all
threads; the engine's: its threads' own CPU time), which leaves out the time
other processes held the cores.  Prints, in order:

    daemon_engine IMPL THREADS WINDOWS_PER_S MIN MAX WINDOWS_PER_CPU_S   (bench.c's line)
    daemon WORKERS WINDOWS T0 T1 CPU_SECONDS
    ...
    daemon_failed MESSAGE                                                (and stops)
"""
import os
import resource
import subprocess
import sys
import time


def engine(build, model, seconds, workers):
    out = subprocess.run([os.path.join(build, "bench", "bench"), "-r", "1", "-t", f"{seconds:.3f}",
                          "-i", "auto", "-w", str(workers), model],
                         check=True, capture_output=True, text=True).stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("engine "))
    print("daemon_" + line, flush=True)


def replay(build, model, wav, hop, workers, endpoint):
    """(wall seconds, CPU seconds) of one replay, or raises with its last log line."""
    cmd = [os.path.join(build, "bin", "tridentd"), "--replay", wav, "--model", model,
           "--hop", str(hop), "--pace", "fast", "--workers", str(workers),
           "--stats-interval", "0", "--endpoint", endpoint]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    t1 = time.time()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
        raise RuntimeError(last)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return t0, t1, cpu


def main():
    build, model, wav, windows, hop, workers, repeats, endpoint = sys.argv[1:9]
    windows, hop, workers, repeats = int(windows), int(hop), int(workers), int(repeats)
    try:
        t0, t1, _ = replay(build, model, wav, hop, workers, endpoint)
        duration = t1 - t0
        for _ in range(repeats):
            engine(build, model, duration, workers)
            t0, t1, cpu = replay(build, model, wav, hop, workers, endpoint)
            duration = t1 - t0
            print(f"daemon {workers} {windows} {t0:.6f} {t1:.6f} {cpu:.4f}", flush=True)
        engine(build, model, duration, workers)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        print(f"daemon_failed {e}", flush=True)


if __name__ == "__main__":
    main()
