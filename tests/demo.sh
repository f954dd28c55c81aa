#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# demo.sh — `make demo`: the daemon classifies the shipped CWRU recordings live.
#
# Starts trident-sub on a free local TCP port, then tridentd replaying
# tests/fixtures/cwru/*.wav in real time with the shipped model; every
# classification is shown as it arrives (tests/demo_view.py), and the end is a
# per-stream summary: windows per predicted label against the true class (the
# file name) and the fraction correct.  Runs from `make demo` with $BUILD and
# $PYTHON set; exits non-zero if the daemon fails or nothing arrives.
set -u
cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
MODEL=model/cwru.safetensors
for f in "$BUILD/bin/tridentd" "$BUILD/bin/trident-sub" "$MODEL" tests/fixtures/cwru/normal.wav; do
    [ -e "$f" ] || { echo "demo: $f is missing (run make)" >&2; exit 1; }
done

tmp=$(mktemp -d) || exit 1
sub_pid=
view_pid=
cleanup() {
    [ -n "$sub_pid" ] && kill "$sub_pid" 2>/dev/null
    [ -n "$view_pid" ] && kill "$view_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nobody listens on now (the daemon binds it a moment later).
port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 1
endpoint="tcp://127.0.0.1:$port"

# trident-sub flushes every line, so the view shows each message as it arrives.
mkfifo "$tmp/lines" || exit 1
"$PYTHON" -u tests/demo_view.py <"$tmp/lines" &
view_pid=$!
"$BUILD/bin/trident-sub" "$endpoint" >"$tmp/lines" &
sub_pid=$!

echo "tridentd --replay tests/fixtures/cwru/*.wav --model $MODEL --endpoint $endpoint --pace realtime"
echo
"$BUILD/bin/tridentd" --replay tests/fixtures/cwru/*.wav --model "$MODEL" \
    --endpoint "$endpoint" --wait-subscribers 1 --pace realtime >/dev/null
rc=$?

# The daemon exits once everything is published; give the last messages a
# moment to cross the socket, then end the subscriber so the summary prints.
sleep 1
kill "$sub_pid" 2>/dev/null
wait "$sub_pid" 2>/dev/null
sub_pid=
wait "$view_pid"
vrc=$?
view_pid=
if [ "$rc" -ne 0 ]; then
    echo "demo: tridentd exited with status $rc" >&2
    exit "$rc"
fi
exit "$vrc"
