#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with ctest.
# This is what CI runs (.ci/run). Extra arguments go to ctest (e.g. -L mpi).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
scripts/bootstrap.sh
scripts/build.sh
cd build
ctest --output-on-failure -j "$(nproc)" --timeout 300 "$@"
cd ..
# Coverage-guided fuzzing of the checkpoint, image and experiment-file readers:
# clang build in build-fuzz/. DPCNN_SKIP_FUZZ=1 skips it.
# In CI the same 100,000 inputs each (fixed seed), so a run is repeatable on
# any machine; see scripts/fuzz.sh for open-ended fuzzing. The time is only a
# cap (each takes 10-30 s here): hit, it would make the count machine-dependent.
[[ "${DPCNN_SKIP_FUZZ:-0}" == 1 ]] ||
  FUZZ_SEED=${FUZZ_SEED:-1} FUZZ_RUNS=${FUZZ_RUNS:-100000} FUZZ_SECONDS=${FUZZ_SECONDS:-300} scripts/fuzz.sh
echo "scripts/test.sh: $(( $(date +%s) - start )) s" >&2
