#!/bin/sh
# Builds every libFuzzer target tests/fuzz/fuzz_*.c with clang into build-fuzz/ and runs each
# for FUZZ_SECONDS (default 60); exits non-zero when any target finds something.
#
# FUZZ_TARGETS="fuzz_a fuzz_b" limits the run to those targets (the long runs by hand).
#
# Optional per target NAME: seeds in tests/fuzz/corpus/NAME/, a dictionary in
# tests/fuzz/NAME.dict. The growing corpus and any crash inputs stay in build-fuzz/.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
fuzz_dir="$root/tests/fuzz"
build="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-60}

if ! command -v clang >/dev/null 2>&1; then
    echo "run.sh: clang not found, skipping the fuzz targets"
    exit 0
fi

targets=""
for src in "$fuzz_dir"/fuzz_*.c; do
    [ -e "$src" ] || continue
    name=$(basename "$src" .c)
    case " ${FUZZ_TARGETS:-$name} " in
    *" $name "*) targets="$targets $name" ;;
    esac
done
if [ -z "$targets" ]; then
    echo "run.sh: no fuzz targets in $fuzz_dir"
    exit 0
fi

# fuzzer-no-link instruments the library for coverage without a second main(); without
# -fno-sanitize-recover UBSan would only print and libFuzzer would never see a finding.
mkdir -p "$build"
CC=clang cmake -S "$root" -B "$build" -DTG_FUZZ=ON -DTG_TESTS=ON \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all" \
    >"$build/configure.log" 2>&1 || {
    cat "$build/configure.log"
    echo "run.sh: configure failed"
    exit 1
}
# shellcheck disable=SC2086 # one word per target
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target $targets

failed=""
for name in $targets; do
    corpus="$build/corpus/$name"
    artifacts="$build/artifacts/$name"
    mkdir -p "$corpus" "$artifacts"
    set -- -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix="$artifacts/"
    [ -f "$fuzz_dir/$name.dict" ] && set -- "$@" -dict="$fuzz_dir/$name.dict"
    set -- "$@" "$corpus"
    [ -d "$fuzz_dir/corpus/$name" ] && set -- "$@" "$fuzz_dir/corpus/$name"
    echo "run.sh: $name for ${seconds}s"
    if ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$build/tests/$name" "$@" \
        >"$build/$name.log" 2>&1; then
        tail -n 3 "$build/$name.log"
    else
        tail -n 40 "$build/$name.log"
        echo "run.sh: $name FAILED; inputs in $artifacts, log in $build/$name.log"
        failed="$failed $name"
    fi
done

if [ -n "$failed" ]; then
    echo "run.sh: findings in:$failed"
    exit 1
fi
echo "run.sh: all targets ran ${seconds}s without a finding:$targets"
