#!/usr/bin/env bash
# Every test: unit (cmocka) and integration (real daemon, real clients) under ctest, in a
# release build and again in an ASan/UBSan build, then a short run of each fuzz target.
# FUZZ_SECONDS=0 skips fuzzing; SANITIZE=0 skips the sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [[ "${SANITIZE:-1}" != 0 ]]; then
    cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON >/dev/null
    cmake --build build-asan -j"$jobs"
    (cd build-asan && TG_SANITIZED=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")
fi

if [[ "${FUZZ_SECONDS:-20}" != 0 ]]; then
    FUZZ_SECONDS="${FUZZ_SECONDS:-20}" tests/fuzz/run.sh
fi
