#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_fuzz.sh — the fuzz targets of every parser of outside input (model
# file, config file, recordings: tests/fuzz/): `make fuzz` builds them with
# clang's libFuzzer and ASan+UBSan, replays every regression input (inputs
# that once crashed a target, tests/fuzz/regress/NAME/) and fuzzes each
# target for FUZZ_SECONDS (60 unless set), one after the other; then the
# regression inputs are replayed once more through the first ASan build in
# $TRIDENT_BUILDS (gcc, make fuzz-replay), where allocations above 2 GiB are
# errors as under libFuzzer.  One TAP line per target and per regression
# input; a target that finds anything fails and names its reproducer.
# TAP lines for tests/run.sh.
set -u
. "$(dirname "$0")/tap.sh"
cd "$root" || exit 1
secs=${FUZZ_SECONDS:-60}

make --no-print-directory fuzz FUZZ_SECONDS="$secs" >"$tmp/log" 2>&1
rc=$?
grep -E '^(ok|not ok|#) ' "$tmp/log"
if [ $rc -ne 0 ] && ! grep -q '^not ok ' "$tmp/log"; then
    grep -v -E '^(ok|not ok|#) ' "$tmp/log" | tail -20 | sed 's/^/# /'
    fail "make fuzz (exit $rc)"
fi
grep -q '^not ok ' "$tmp/log" && failed=1
n=$(grep -c '^ok - fuzz_[a-z]*: ' "$tmp/log")
[ "$n" -eq 3 ] || [ "$secs" -eq 0 ] || fail "make fuzz ran $n targets, not 3"

asan=
for b in ${TRIDENT_BUILDS:-}; do
    case $b in *address*) asan=$b; break ;; esac
done
if [ -z "$asan" ]; then
    echo "# no ASan build in TRIDENT_BUILDS: the gcc replay is skipped"
    exit $failed
fi
if ! make --no-print-directory BUILD="$asan" SANITIZER=address fuzz-replay >"$tmp/log" 2>&1; then
    tail -20 "$tmp/log" | sed 's/^/# /'
    fail "make fuzz-replay in $asan"
    exit $failed
fi
mkdir -p "$tmp/t"
for d in tests/fuzz/regress/*/; do
    t=$(basename "$d")
    for f in "$d"*; do
        [ -f "$f" ] || continue
        if TMPDIR=$tmp/t ASAN_OPTIONS=max_allocation_size_mb=2048:detect_leaks=1 \
           LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp \
           "$asan/fuzz-replay/fuzz_$t" "$f" >"$tmp/replay" 2>&1; then
            ok "fuzz_$t ($asan, gcc) replays $f"
        else
            grep -E 'ERROR|SUMMARY|fuzz_|flex' "$tmp/replay" | head -5 | sed 's/^/# /'
            fail "fuzz_$t ($asan, gcc) replays $f"
        fi
    done
done
exit $failed
