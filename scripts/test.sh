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
# Coverage-guided fuzzing of the checkpoint and image readers: clang build in
# build-fuzz/, 20 s per fuzzer. DPCNN_SKIP_FUZZ=1 skips it.
[[ "${DPCNN_SKIP_FUZZ:-0}" == 1 ]] || scripts/fuzz.sh
echo "scripts/test.sh: $(( $(date +%s) - start )) s" >&2
