#!/usr/bin/env bash
# Installs the Debian 12 packages tollgate needs and are missing; does nothing when all are
# there. `scripts/deps.sh bench` adds the peers the benchmarks compare against.
set -euo pipefail

pkgs=(cmake gcc make pkg-config libssl-dev libevent-dev libyaml-dev libcmocka-dev
      openssl curl python3 clang clang-format libclang-rt-14-dev
      libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev libgnutls28-dev ngtcp2-client
      libjansson-dev libcurl4-openssl-dev)
if [[ "${1:-}" == "bench" ]]; then
    pkgs+=(wrk nginx-light haproxy nghttp2-client caddy)
fi

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "installing: ${missing[*]}" >&2
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
