#!/usr/bin/env bash
# Builds every tests/fuzz/fuzz_*.c as a libFuzzer target (clang, ASan + UBSan, via cmake -DPORTIER_FUZZ=ON) and
# runs each for FUZZ_SECONDS (default 10: the smoke run of `make test`; `make fuzz` runs longer) on a copy of
# its committed seed corpus (tests/fuzz/corpus/<name>). Any crash, leak, sanitizer report or timeout fails the
# run; the reproducer is written to the build directory and the log names it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SECONDS_EACH=${FUZZ_SECONDS:-10}
OUT=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
command -v clang >/dev/null || { echo "clang is missing (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

CC=clang cmake -S "$ROOT" -B "$OUT" -DPORTIER_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
targets=$(cd tests/fuzz && ls fuzz_*.c | sed 's/\.c$//')
# shellcheck disable=SC2086
cmake --build "$OUT" -j"${JOBS:-2}" --target $targets >/dev/null

status=0
for name in $targets; do
    corpus=$ROOT/tests/fuzz/corpus/${name#fuzz_}
    work=$OUT/corpus-$name
    rm -rf "$work"
    mkdir -p "$work"
    [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
    if (cd "$OUT" && ASAN_OPTIONS=detect_leaks=1 "./$name" -max_total_time="$SECONDS_EACH" -timeout=10 \
            -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 "$work" >"$OUT/$name.log" 2>&1); then
        runs=$(awk '/stat::number_of_executed_units/ { print $2 }' "$OUT/$name.log")
        echo "fuzz $name: ok, $runs inputs in ${SECONDS_EACH}s"
    else
        echo "fuzz $name: FAILED (log: $OUT/$name.log)"
        tail -40 "$OUT/$name.log"
        status=1
    fi
done
exit $status
