#!/usr/bin/env bash
# mpirun with the flags Open MPI needs here: --allow-run-as-root when root (Open
# MPI refuses root otherwise) and --oversubscribe (more ranks than cores is
# allowed, e.g. -np 4 on 2 cores). Everything else is passed through:
#   scripts/mpirun.sh -np 2 build/bin/dpcnn-train --config configs/mnist.yaml
set -euo pipefail
flags=(--oversubscribe)
[[ $(id -u) -eq 0 ]] && flags+=(--allow-run-as-root)
exec mpirun "${flags[@]}" "$@"
