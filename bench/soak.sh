#!/usr/bin/env bash
# bench/soak.sh: tollgate under mixed HTTPS and HTTP/3 load with reloads every 2 s and
# hostile clients (bench/soak.py says what), then the verdict: unexpected answers (want 0),
# RSS and descriptors over time (want flat), a clean stop and sanitizer log.
#   DURATION [1800]  seconds       BUILD_DIR [build]  a build with bench/backend and h3load
#   SANITIZE [0]     1: build and soak an ASan/UBSan build in build-asan instead
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
for cmd in wrk python3 cmake; do command -v $cmd >/dev/null || { echo "soak: $cmd missing (scripts/deps.sh bench)" >&2; exit 1; }; done
if [[ "${SANITIZE:-0}" = 1 ]]; then
  export BUILD_DIR=${BUILD_DIR:-build-asan}
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug -DTG_SANITIZE=ON >/dev/null
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} TG_SANITIZED=1
else
  export BUILD_DIR=${BUILD_DIR:-build}
  [[ -f "$BUILD_DIR/CMakeCache.txt" ]] || cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi
cmake --build "$BUILD_DIR" -j"$(nproc)" --target tollgate backend h3load >/dev/null
ulimit -n 65536 2>/dev/null || true
exec python3 bench/soak.py
