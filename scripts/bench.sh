#!/usr/bin/env bash
# dpcnn vs PyTorch benchmark: seed model, global batch 64, six configurations
# (dpcnn 1x1, 1x2, 2x1; torch 1 thread, 2 threads, DDP 2x1) interleaved for K
# rounds, then MFU, scaling, allreduce share, RSS and a oneDNN time breakdown.
#   scripts/bench.sh [--rounds K] [--steps S] [--quick] [more: tests/bench/bench.py --help]
# Results: runs/bench/bench.json, runs/bench/bench.md (logs in runs/bench/logs).
# Needs a built worker (build/bin/dpcnn-train), data/mnist, data/fashion-mnist
# and Debian's python3-torch (/usr/bin/python3). Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/python3 ]] || { echo "bench.sh: /usr/bin/python3 not found" >&2; exit 1; }
for d in data/mnist data/fashion-mnist; do
  [[ -f $d/train-images-idx3-ubyte || -f $d/train-images-idx3-ubyte.gz ]] ||
    { echo "bench.sh: $d missing: run scripts/fetch-data.sh ${d#data/}" >&2; exit 1; }
done
exec /usr/bin/python3 tests/bench/bench.py "$@"
