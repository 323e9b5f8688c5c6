#!/usr/bin/env bash
# Fresh Debian 12 to a running demo: packages, build, demo PKI, then tollgate in the
# foreground with HTTPS and QUIC (HTTP/3) on localhost:8443 answering from a fixed-response
# backend.
# `scripts/demo.sh proxy` runs conf/proxy.yaml instead, in front of a real HTTP server
# (python3 -m http.server on 127.0.0.1:8080, serving this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)"
certs/mkpki.sh certs/demo

config=conf/tollgate.yaml
if [[ "${1:-}" == "proxy" ]]; then
    config=conf/proxy.yaml
    python3 -m http.server 8080 --bind 127.0.0.1 >/dev/null 2>&1 &
    trap 'kill $! 2>/dev/null' EXIT
fi
build/tollgate check -c "$config"
echo "try: curl --cacert certs/demo/ca.crt https://localhost:8443/" >&2
echo "     gtlsclient -q 127.0.0.1 8443 https://localhost:8443/   (HTTP/3)" >&2
exec build/tollgate run -c "$config"
