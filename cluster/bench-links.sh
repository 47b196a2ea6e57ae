#!/usr/bin/env bash
# The scaling model of cluster/scaling.md, calibrated on this machine and
# checked on emulated links. Prints the tables (a benchmark, not a test).
#   cluster/bench-links.sh [calibrate|links|all|report] [--steps N] [--reps R] [--out DIR] [--rt]
#   (links needs root; report only prints the tables of an earlier run's DIR;
#   --rt runs the ranks SCHED_RR, as if each host were dedicated: see below)
#
# calibrate: compute time of one step of the seed model (configs/mnist.yaml) on
#   1 rank x 1 thread at per-rank batches 8..64, alone on a core (k=1) and two
#   at once on one core (k=2, as 4 virtual hosts on 2 cores run); no root.
# links: a 4-host virtual cluster (cluster/vcluster.sh); for each link and
#   p = 2, 3, 4 hosts x 1 rank x 1 thread: ping-pong and allreduce times
#   (cluster/allreduce-bench.c) and dpcnn-train's step time at global batch 64.
#   Links: the plain veth; then 10 Gbit/s + 50 us and 1 Gbit/s + 200 us (rate and
#   one-way delay on every host's egress) by `tc netem` on eth0 where the kernel
#   has sch_netem, else by cluster/linkemu.c (a userspace emulator on TUN devices,
#   subnet 10.78.0.0/24), together with its plain link (no delay, no cap: "tun").
# Then fits alpha/beta on the plain link and prints predicted against measured
# step times, and the model's projections.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[[ $# -gt 0 ]] && shift
steps=80
reps=2 # each point this many times; the model takes the fastest (least disturbed)
out=${DPCNN_BENCH_OUT:-/tmp/dpcnn-bench-links}
run=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --steps) steps=$2; shift 2 ;;
    --reps) reps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    # Ranks spin (yielding) while they wait; on a machine shared with other
    # work, each yield hands the core to it for up to a scheduler tick (4 ms).
    # SCHED_RR (priority 1; the link emulator runs above it) keeps the ranks'
    # waits short; other work gets what RT throttling leaves (5 %) meanwhile.
    --rt) run=(chrt -r 1); shift ;;
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
        OMP_NUM_THREADS=1 "${run[@]}" taskset -c 0 "$bin/dpcnn-train" --config configs/mnist.yaml \
          --set "${sets[@]}" train.batch_size="$b" 2>&1 | perf |
          sed "s/^/{\"b\":$b,\"k\":$k,\"perf\":/; s/\$/}/" >>"$out/compute.jsonl" &
      done
      wait
    done
  done
  done
  echo "bench-links: compute calibration in $out/compute.jsonl"
}

# One measurement set on the links as they are now, labelled $1: p = 2, 3, 4 hosts.
measure() {
  local link=$1 r p hf
  for ((r = 0; r < reps; r++)); do
    for p in 2 3 4; do
      # The first p hosts: a cluster directory of its own with a p-line hostfile.
      hf="$out/vc-$p"
      mkdir -p "$hf"
      cp "$DPCNN_VC_DIR/hosts" "$hf/hosts"
      grep -v '^#' "$DPCNN_VC_DIR/hostfile" | head -n "$p" >"$hf/hostfile"
      DPCNN_VC_DIR=$hf "${run[@]}" cluster/mpirun-vcluster.sh -np "$p" "$out/allreduce-bench" 50 2>&1 |
        grep -E '^(pingpong|allreduce|buckets) ' | sed "s|^|$link |" | tr ' ' '\t' >>"$out/allreduce.tsv.$$" || true
      DPCNN_VC_DIR=$hf "${run[@]}" cluster/mpirun-vcluster.sh -np "$p" \
        "$bin/dpcnn-train" --config configs/mnist.yaml --set "${sets[@]}" train.batch_size=64 2>&1 |
        perf | sed "s|^|{\"link\":\"$link\",\"p\":$p,\"perf\":|; s|\$|}|" >>"$out/links.jsonl"
    done
  done
}

# A userspace link (cluster/linkemu.c) with one-way delay $1 us and rate $2
# Mbit/s (0: no cap) between the 4 hosts on 10.78.0.0/24; the ranks' bytes go
# there (btl_tcp_if_include), Open MPI's control stays on eth0.
emu_start() {
  : >"$out/linkemu-$1us-$2mbit.log"
  "$out/linkemu" --name "$DPCNN_VC_NAME" --hosts 4 --subnet 10.78.0 --delay-us "$1" --rate-mbit "$2" \
    2>"$out/linkemu-$1us-$2mbit.log" &
  emu=$!
  local i
  for ((i = 0; ; i++)); do
    grep -q '^linkemu: up' "$out/linkemu-$1us-$2mbit.log" && break
    if ! kill -0 "$emu" 2>/dev/null || ((i == 100)); then
      echo "bench-links: linkemu did not come up:" >&2
      cat "$out/linkemu-$1us-$2mbit.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  export DPCNN_VC_BTL_IF=10.78.0.0/24
}
emu_stop() {
  kill -TERM "$emu"
  wait "$emu" || true
  emu=
  unset DPCNN_VC_BTL_IF
}

links() {
  [[ $(id -u) -eq 0 ]] || { echo "bench-links: links needs root (network namespaces, tc)" >&2; exit 2; }
  command -v mpicc >/dev/null || { echo "bench-links: mpicc not found (libopenmpi-dev)" >&2; exit 2; }
  mpicc -O2 -o "$out/allreduce-bench" cluster/allreduce-bench.c
  cc -O2 -o "$out/linkemu" cluster/linkemu.c
  export DPCNN_VC_NAME=${DPCNN_VC_NAME:-dplinks} DPCNN_VC_DIR=$out/vc
  emu=
  trap '[[ -z $emu ]] || kill "$emu" 2>/dev/null || true; cluster/vcluster.sh down >/dev/null' EXIT
  trap 'exit 143' TERM INT # so that the EXIT trap runs
  cluster/vcluster.sh up 4 >/dev/null # h1, h3 on core 0; h2, h4 on core 1 (2 cores)
  # 4 virtual hosts on 2 cores: two ranks share a core, and Open MPI's ranks
  # busy-poll while they wait, so each would burn the other's time slice (a
  # 4-byte allreduce took 68 ms). Open MPI cannot see the sharing (one slot a
  # host); tell it to yield when idle, as it does itself when oversubscribed.
  export OMPI_MCA_mpi_yield_when_idle=1
  : >"$out/links.jsonl"
  local want h ns netem=1
  ip netns exec "$DPCNN_VC_NAME-h1" tc qdisc replace dev eth0 root netem delay 0us 2>/dev/null || netem=0
  ip netns exec "$DPCNN_VC_NAME-h1" tc qdisc del dev eth0 root 2>/dev/null || true
  echo "bench-links: link veth (the bridge, no emulation)" >&2
  measure veth
  if ((netem)); then
    for want in 10gbit/50us 1gbit/200us; do
      echo "bench-links: link netem:$want on every host's eth0" >&2
      for h in 1 2 3 4; do
        ns="$DPCNN_VC_NAME-h$h"
        ip netns exec "$ns" tc qdisc replace dev eth0 root netem delay "${want#*/}" rate "${want%/*}" limit 10000
      done
      measure "netem:$want"
    done
    for h in 1 2 3 4; do ip netns exec "$DPCNN_VC_NAME-h$h" tc qdisc del dev eth0 root; done
  else
    # No sch_netem in this kernel (a VM without modules): the same links from
    # userspace, and the plain userspace link (no delay, no cap) as their base.
    echo "bench-links: no sch_netem here: links by cluster/linkemu.c (TUN, 10.78.0.0/24)" >&2
    for want in 0/0 50/10000 200/1000; do
      emu_start "${want%/*}" "${want#*/}"
      case $want in
        0/0) measure tun ;;
        50/10000) measure tun:10gbit/50us ;;
        200/1000) measure tun:1gbit/200us ;;
      esac
      emu_stop
      tail -n 1 "$out/linkemu-${want%/*}us-${want#*/}mbit.log" >&2
    done
  fi
  mv "$out/allreduce.tsv.$$" "$out/allreduce.tsv"
  echo "bench-links: link measurements in $out/links.jsonl, $out/allreduce.tsv, $out/linkemu-*.log"
}

case $what in
  calibrate) calibrate ;;
  links) links ;;
  all) calibrate; links ;;
  report) ;;
  *) echo "usage: cluster/bench-links.sh [calibrate|links|all|report] [--steps N] [--reps R] [--out DIR] [--rt]" >&2; exit 2 ;;
esac
python3 cluster/scaling_model.py "$out"
