#!/usr/bin/env bash
# dpcnn vs PyTorch benchmark: seed model, global batch 64, six configurations
# (dpcnn 1x1, 1x2, 2x1; torch 1 thread, 2 threads, DDP 2x1) interleaved for K
# rounds, then MFU, scaling, allreduce share, RSS and a oneDNN time breakdown.
#   scripts/bench.sh [--rounds K] [--steps S] [--quick] [more: tests/bench/bench.py --help]
# Results: runs/bench/bench.json, runs/bench/bench.md (logs in runs/bench/logs).
# Installs the PyTorch peer (Debian's python3-torch), builds and fetches the data
# when missing. Run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
# From a fresh clone too: the peer's packages, a Release build, both datasets.
scripts/bootstrap.sh --bench
[[ -x build/bin/dpcnn-train ]] || scripts/build.sh
for d in mnist fashion-mnist; do
  [[ -f data/$d/train-images-idx3-ubyte || -f data/$d/train-images-idx3-ubyte.gz ]] ||
    scripts/fetch-data.sh "$d" "data/$d"
done
exec /usr/bin/python3 tests/bench/bench.py "$@"
