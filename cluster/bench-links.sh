#!/usr/bin/env bash
# The scaling model of cluster/scaling.md, calibrated on this machine and
# checked on emulated links. Prints the tables (a benchmark, not a test).
#   cluster/bench-links.sh [calibrate|links|all|report] [--steps N] [--reps R] [--out DIR]
#   (links needs root; report only prints the tables of an earlier run's DIR)
#
# calibrate: compute time of one step of the seed model (configs/mnist.yaml) on
#   1 rank x 1 thread at per-rank batches 8..64, alone on a core (k=1) and two
#   at once on one core (k=2, as 4 virtual hosts on 2 cores run); no root.
# links: a 4-host virtual cluster (cluster/vcluster.sh); for each link (plain
#   veth, then `tc netem` 10 Gbit/s + 50 us and 1gbit/200us: rate and one-way delay on every
#   host's eth0) and p = 2, 3, 4 hosts x 1 rank x 1 thread: MPI_Allreduce times
#   (cluster/allreduce-bench.c) and dpcnn-train's step time at global batch 64.
# Then fits alpha/beta (ring allreduce) on the plain veth and prints predicted
# against measured step times, and the model's projections.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[[ $# -gt 0 ]] && shift
steps=80
reps=2 # each point this many times; the model takes the fastest (least disturbed)
out=${DPCNN_BENCH_OUT:-/tmp/dpcnn-bench-links}
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench-links: unknown option $1" >&2; exit 2 ;;
  esac
done
mkdir -p "$out"
bin=$(realpath "${DPCNN_BIN:-build/bin}")
data=$(pwd)/data/mnist
[[ -x $bin/dpcnn-train ]] || { echo "bench-links: no $bin/dpcnn-train (build first)" >&2; exit 2; }
sets=(train.max_steps="$steps" train.eval=false distributed.threads_per_rank=1 data.dir="$data"
  runs_dir="$out/runs")
perf() { sed -n 's/^perf //p'; }

calibrate() {
  : >"$out/compute.jsonl"
  local b k i r
  for ((r = 0; r < reps; r++)); do
  for b in 8 16 22 32 64; do
    for k in 1 2; do
      for ((i = 0; i < k; i++)); do
        OMP_NUM_THREADS=1 taskset -c 0 "$bin/dpcnn-train" --config configs/mnist.yaml \
          --set "${sets[@]}" train.batch_size="$b" 2>&1 | perf |
          sed "s/^/{\"b\":$b,\"k\":$k,\"perf\":/; s/\$/}/" >>"$out/compute.jsonl" &
      done
      wait
    done
  done
  done
  echo "bench-links: compute calibration in $out/compute.jsonl"
}

links() {
  [[ $(id -u) -eq 0 ]] || { echo "bench-links: links needs root (network namespaces, tc)" >&2; exit 2; }
  command -v mpicc >/dev/null || { echo "bench-links: mpicc not found (libopenmpi-dev)" >&2; exit 2; }
  mpicc -O2 -o "$out/allreduce-bench" cluster/allreduce-bench.c
  export DPCNN_VC_NAME=${DPCNN_VC_NAME:-dplinks} DPCNN_VC_DIR=$out/vc
  trap 'cluster/vcluster.sh down >/dev/null' EXIT
  trap 'exit 143' TERM INT # so that the EXIT trap runs
  cluster/vcluster.sh up 4 >/dev/null # h1, h3 on core 0; h2, h4 on core 1 (2 cores)
  # 4 virtual hosts on 2 cores: two ranks share a core, and Open MPI's ranks
  # busy-poll while they wait, so each would burn the other's time slice (a
  # 4-byte allreduce took 68 ms). Open MPI cannot see the sharing (one slot a
  # host); tell it to yield when idle, as it does itself when oversubscribed.
  export OMPI_MCA_mpi_yield_when_idle=1
  : >"$out/links.jsonl"
  local want link p hf h r ns
  for want in veth 10gbit/50us 1gbit/200us; do
    link=$want
    for h in 1 2 3 4; do
      ns="$DPCNN_VC_NAME-h$h"
      if [[ $want == veth ]]; then
        ip netns exec "$ns" tc qdisc del dev eth0 root 2>/dev/null || true
      elif ip netns exec "$ns" tc qdisc replace dev eth0 root netem delay "${want#*/}" rate "${want%/*}" limit 10000 2>/dev/null; then
        :
      else
        # No sch_netem in this kernel (a VM without modules): the rate alone,
        # with a token bucket; the delay is then left to the model (alpha + delay).
        link="${want%/*}/0us"
        ip netns exec "$ns" tc qdisc replace dev eth0 root tbf rate "${want%/*}" burst 32kb latency 100ms
      fi
    done
    echo "bench-links: link $want: measuring as $link$([[ $link != "$want" ]] && echo ' (no netem here: rate by tbf, no delay)')" >&2
    for ((r = 0; r < reps; r++)); do
    for p in 2 3 4; do
      # The first p hosts: a cluster directory of its own with a p-line hostfile.
      hf="$out/vc-$p"
      mkdir -p "$hf"
      cp "$DPCNN_VC_DIR/hosts" "$hf/hosts"
      grep -v '^#' "$DPCNN_VC_DIR/hostfile" | head -n "$p" >"$hf/hostfile"
      DPCNN_VC_DIR=$hf cluster/mpirun-vcluster.sh -np "$p" "$out/allreduce-bench" 50 2>&1 | grep '^allreduce' |
        sed "s|^|$link |" | tr ' ' '\t' >>"$out/allreduce.tsv.$$" || true
      DPCNN_VC_DIR=$hf cluster/mpirun-vcluster.sh -np "$p" \
        "$bin/dpcnn-train" --config configs/mnist.yaml --set "${sets[@]}" train.batch_size=64 2>&1 |
        perf | sed "s|^|{\"link\":\"$link\",\"p\":$p,\"perf\":|; s|\$|}|" >>"$out/links.jsonl"
    done
    done
  done
  mv "$out/allreduce.tsv.$$" "$out/allreduce.tsv"
  echo "bench-links: link measurements in $out/links.jsonl, $out/allreduce.tsv"
}

case $what in
  calibrate) calibrate ;;
  links) links ;;
  all) calibrate; links ;;
  report) ;;
  *) echo "usage: cluster/bench-links.sh [calibrate|links|all|report] [--steps N] [--reps R] [--out DIR]" >&2; exit 2 ;;
esac
python3 cluster/scaling_model.py "$out"
