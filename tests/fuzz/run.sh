#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# run.sh — run the fuzz targets `make fuzz` built: first every regression
# input of each (tests/fuzz/regress/NAME/: inputs that once crashed it, kept
# so the fix stays), then FUZZ_SECONDS (default 60; 0: replay only) of
# fuzzing each, one after the other, on a scratch copy of its seed corpus
# (tests/fuzz/corpus/NAME/ copied to BUILD/fuzz/work/NAME/, which grows; the
# repository is never written).  Prints one TAP line per regression input and
# per target; a crash, sanitizer report, leak, timeout (-timeout) or memory
# blow-up (-rss_limit_mb, also one malloc larger than it) fails the target,
# and the line names the reproducer libFuzzer wrote in BUILD/fuzz/work/.
# Exit status non-zero if anything failed.
#
#   sh tests/fuzz/run.sh BUILD [NAME...]       BUILD: build-fuzzer; NAME: load config source
#
# Per target: its dictionary (tests/fuzz/NAME.dict) and the longest input
# worth mutating (-max_len): a model header with some data (fuzz_load
# extends it), a config file, a short recording.
set -u
cd "$(dirname "$0")/../.." || exit 1
build=${1:?usage: run.sh BUILD [NAME...]}
shift
targets=${*:-load config source}
secs=${FUZZ_SECONDS:-60}
work=$build/fuzz/work
failed=0

# libconfig 1.5 leaks on some malformed input (tests/fuzz/lsan.supp); UBSan
# reports are fatal (-fno-sanitize-recover) and ASan's go to the log.
export LSAN_OPTIONS="suppressions=$(pwd)/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

for t in $targets; do
    bin=$build/fuzz/fuzz_$t
    case $t in
    load)   max_len=65536 ;;
    config) max_len=16384 ;;
    source) max_len=65536 ;;
    *)      max_len=65536 ;;
    esac
    if [ ! -x "$bin" ]; then
        echo "not ok - fuzz_$t: $bin not built (make fuzz)"
        failed=1
        continue
    fi
    rm -rf "$work/$t" "$work/$t.tmp" "$work/$t.artifacts"
    mkdir -p "$work/$t" "$work/$t.tmp" "$work/$t.artifacts"
    # fuzz_config writes its input to a file under $TMPDIR
    export TMPDIR="$(pwd)/$work/$t.tmp"
    # -timeout: the limit for one input; generous (an input that takes 50 ms
    # once took 30 s on a busy shared machine), a real hang still ends the run
    opts="-rss_limit_mb=2048 -timeout=25 -max_len=$max_len -artifact_prefix=$work/$t.artifacts/"

    for f in tests/fuzz/regress/$t/*; do
        [ -f "$f" ] || continue
        if "$bin" $opts "$f" >"$work/$t.replay.log" 2>&1; then
            echo "ok - fuzz_$t replays $f"
        else
            grep -E 'ERROR|SUMMARY|fuzz_'"$t"':' "$work/$t.replay.log" | head -5 | sed 's/^/# /'
            echo "not ok - fuzz_$t replays $f (log: $work/$t.replay.log)"
            failed=1
        fi
    done
    [ "$secs" -gt 0 ] || continue

    cp tests/fuzz/corpus/$t/* "$work/$t/"
    dict=
    [ -f "tests/fuzz/$t.dict" ] && dict=-dict=tests/fuzz/$t.dict
    log=$work/$t.log
    start=$(date +%s)
    "$bin" $opts $dict -max_total_time="$secs" -print_final_stats=1 "$work/$t" >"$log" 2>&1
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    corpus=$(ls "$work/$t" | wc -l)
    took=$(( $(date +%s) - start ))
    # (slow-unit-* files are only slow, not failures)
    repro=$(ls "$work/$t.artifacts" 2>/dev/null | grep -E '^(crash|leak|timeout|oom)-' | head -1)
    if [ "$rc" -eq 0 ] && [ -z "$repro" ]; then
        echo "ok - fuzz_$t: ${took} s, ${runs:-?} inputs (${rate:-?}/s), corpus $corpus, nothing found"
    else
        grep -E '^==[0-9]+==|SUMMARY|^fuzz_'"$t"':|Test unit written' "$log" | head -8 | sed 's/^/# /'
        echo "not ok - fuzz_$t: exit $rc after ${took} s; reproducer: ${repro:+$work/$t.artifacts/$repro} (log: $log;" \
             "replay: $bin $work/$t.artifacts/${repro:-FILE}; keep it in tests/fuzz/regress/$t/ once fixed)"
        failed=1
    fi
done
exit $failed
