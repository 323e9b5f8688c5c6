#!/usr/bin/env bash
# Every test: unit (cmocka) and integration (real daemon, real clients) under ctest, in a
# release build and again in an ASan/UBSan build, then a short run of each fuzz target.
# FUZZ_SECONDS=0 skips fuzzing; SANITIZE=0 skips the sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
jobs=$(nproc)

# ctest in DIR with the environment given; a skipped test fails the run too, since the
# set-up above installs everything every test needs (TG_ALLOW_SKIPS=1 to look anyway).
run_ctest() {
    local dir=$1 log
    shift
    log=$(mktemp)
    (cd "$dir" && env "$@" ctest --output-on-failure -j"$jobs") 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    if [[ $rc -eq 0 ]] && grep -q "(Skipped)" "$log" && [[ "${TG_ALLOW_SKIPS:-0}" != 1 ]]; then
        echo "FAILED: tests were skipped although this set-up should run them:" >&2
        grep "(Skipped)" "$log" >&2
        rc=1
    fi
    rm -f "$log"
    return "$rc"
}

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
run_ctest build TG_BUILD=release

if [[ "${SANITIZE:-1}" != 0 ]]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    run_ctest build-asan TG_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" tests/fuzz/run.sh
fi
