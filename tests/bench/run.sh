#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh — make bench: trident's engine and daemon against the machine's FMA
# peak and Debian's PyTorch, in one run, printed as one table.
#
#   PYTHON=/usr/bin/python3 BUILD=build sh tests/bench/run.sh
#
# Last, tests/bench/train_bench.py times trident-train (60 recordings of
# 10 s at 20 kHz, target under 5 minutes).
# Steps: the shipped model (model/cwru.safetensors; a random one from
# model/train/export.py if it is missing: the timing does not depend on the
# weights); $BUILD/bench/bench
# (FMA peak, every forward implementation, 1 thread and all CPUs, and the
# per-window stages besides the network: health check, detector);
# bench_torch.py (PyTorch on the same file); the daemon replaying a long
# file with --pace fast if $BUILD/bin/tridentd exists, each replay between
# two runs of the engine alone of the same duration (replay.py); table.py
# prints it.
# Every number is a median of repeated runs (BENCH_REPEATS, default 7),
# the programs taking turns, because the cores may be shared.
set -eu
cd "$(dirname "$0")/../.." || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
BUILD=${BUILD:-build}
REPEATS=${BENCH_REPEATS:-7}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT INT TERM

model=model/cwru.safetensors
if [ ! -f "$model" ]; then
    model="$out/bench.safetensors"
    "$PYTHON" model/train/export.py --seed 1 "$model"
fi

# The C benchmark and PyTorch take turns, one repeat each, so that both see
# the same load from whatever else runs on the machine.
echo "bench: PyTorch's best batch sizes..." >&2
best=$("$PYTHON" tests/bench/bench_torch.py --scan "$model" | awk '{printf "%s%s:%s", (NR > 1 ? "," : ""), $2, $3}')
: >"$out/engine.txt"
: >"$out/torch.txt"
for i in $(seq "$REPEATS"); do
    echo "bench: repeat $i of $REPEATS: engine (FMA peak, every implementation), PyTorch..." >&2
    "$BUILD/bench/bench" -r 1 "$model" >>"$out/engine.txt"
    "$PYTHON" tests/bench/bench_torch.py --repeats 1 --best "$best" "$model" >>"$out/torch.txt"
done

: >"$out/daemon.txt"
if [ -x "$BUILD/bin/tridentd" ]; then
    echo "bench: daemon replay..." >&2
    cpus=$(nproc)
    hop=1024
    windows=20000
    "$PYTHON" - "$out/long.wav" "$windows" "$hop" <<'PY'
import sys, wave
import numpy as np
path, windows, hop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
n = (windows - 1) * hop + 1024
x = (np.random.default_rng(0).standard_normal(n) * 3000).clip(-32768, 32767).astype("<i2")
with wave.open(path, "wb") as w:
    w.setnchannels(1); w.setsampwidth(2); w.setframerate(12000); w.writeframes(x.tobytes())
PY
    # each replay between two runs of the engine alone (the same duration,
    # $cpus threads at once), so that both see the same load
    "$PYTHON" tests/bench/replay.py "$BUILD" "$model" "$out/long.wav" "$windows" "$hop" \
        "$cpus" "$REPEATS" "ipc://$out/pub" >"$out/daemon.txt"
fi

"$PYTHON" tests/bench/table.py "$out/engine.txt" "$out/torch.txt" "$out/daemon.txt"

# trident-train: 60 synthetic recordings of 10 s at 20 kHz, under 5 minutes
echo "bench: trident-train on 60 synthetic recordings..." >&2
BUILD=$BUILD "$PYTHON" tests/bench/train_bench.py 2>/dev/null
