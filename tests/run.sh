#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh — trident's test runner.
#
# Runs every unit-test program of every build in $TRIDENT_BUILDS (default
# "build"), then every integration test tests/integration/test_*.py (with
# Debian's interpreter) and test_*.sh, against the first build.  Each program
# prints TAP lines ("ok - name" / "not ok - name"); a program that exits
# non-zero without reporting a failure (a crash, a sanitizer abort) counts as
# one failure.  The last line is "N passed, N failed"; the exit status is
# non-zero when anything failed.
#
#   TRIDENT_BUILDS="build build-address" sh tests/run.sh [FILTER]
set -u
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-/usr/bin/python3}
TRIDENT_BUILDS=${TRIDENT_BUILDS:-build}
export TRIDENT_BUILDS PYTHON
TRIDENT_BUILD=${TRIDENT_BUILD:-${TRIDENT_BUILDS%% *}}
export TRIDENT_BUILD
filter=${1:-}
passed=0
failed=0
out=$(mktemp)
trap 'rm -f "$out"' EXIT

# sanitizers: report and fail, never hang on a prompt
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# (tsan.supp: libzmq's own hand-offs, invisible to TSan — see the file)
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$(pwd)/tests/tsan.supp}

run_one() { # label, command...
    label=$1; shift
    case "$label" in *"$filter"*) ;; *) return ;; esac
    echo "# ---- $label"
    start=$(date +%s)
    "$@" >"$out" 2>&1
    rc=$?
    sed 's/^/    /' "$out"
    p=$(grep -c '^ok ' "$out")
    f=$(grep -c '^not ok ' "$out")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "not ok - $label exited with status $rc"
        f=1
    fi
    echo "# $label: $p passed, $f failed ($(( $(date +%s) - start )) s)"
    passed=$((passed + p))
    failed=$((failed + f))
}

for b in $TRIDENT_BUILDS; do
    [ -d "$b/tests" ] || { echo "not ok - build $b has no tests (run make check)"; failed=$((failed+1)); continue; }
    for t in "$b"/tests/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.d) continue ;; esac
        TRIDENT_BUILD=$b run_one "$t" "$t"
    done
done

for t in tests/integration/test_*.py; do
    [ -f "$t" ] || continue
    run_one "$t" "$PYTHON" "$t"
done
for t in tests/integration/test_*.sh; do
    [ -f "$t" ] || continue
    run_one "$t" sh "$t"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
