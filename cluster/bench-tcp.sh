#!/usr/bin/env bash
# Step time over TCP between (virtual) hosts against shared memory on one host:
# 2 hosts x 1 rank on the virtual cluster, then 1 host x 2 ranks, alternated
# REPEATS times (timings on a shared machine drift; compare medians).
#   cluster/bench-tcp.sh [REPEATS] [--set key=value ...]     (needs root)
# Default: configs/mnist.yaml on data/mnist, 300 steps, no evaluation.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-3}
[[ $# -gt 0 ]] && shift
export DPCNN_VC_NAME=${DPCNN_VC_NAME:-dpbench} DPCNN_VC_DIR=${DPCNN_VC_DIR:-/tmp/dpcnn-bench-vc}
out=$(mktemp -d)
trap 'cluster/vcluster.sh down >/dev/null; rm -rf "$out"' EXIT
cluster/vcluster.sh up 2 >/dev/null
sets=(train.max_steps=300 train.eval=false runs_dir="$out" distributed.threads_per_rank=1 "$@")
train="build/bin/dpcnn-train --config configs/mnist.yaml --set ${sets[*]}"
for ((i = 1; i <= reps; i++)); do
  # shellcheck disable=SC2086
  cluster/mpirun-vcluster.sh -np 2 $train 2>&1 | sed -n 's/^perf /tcp /p'
  # shellcheck disable=SC2086
  scripts/mpirun.sh -np 2 $train 2>&1 | sed -n 's/^perf /shm /p'
done | tee "$out/perf"
python3 - "$out/perf" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    kind, js = line.split(" ", 1)
    runs.setdefault(kind, []).append(json.loads(js))
for kind, rs in runs.items():
    med = lambda f: statistics.median(f(r) for r in rs)
    tot, ar = med(lambda r: r["step_ms"]["total"]), med(lambda r: r["step_ms"]["allreduce_wait"])
    share = med(lambda r: r["step_ms"]["allreduce_wait"] / r["step_ms"]["total"])
    print(f"{kind}: median of {len(rs)}: step {tot:.2f} ms, {med(lambda r: r['images_per_sec']):.0f} images/s, "
          f"allreduce_wait {ar:.2f} ms ({100 * share:.0f}% of the step)")
PY
