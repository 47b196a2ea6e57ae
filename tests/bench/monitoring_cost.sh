#!/bin/sh
# What monitoring costs training: the same 2-rank dpcnn-launch job run
# alternately quiet (the HTTP side on, nobody looking) and watched (/metrics
# scraped every second as Prometheus would, plus the web page open in headless
# Chromium, which polls /api/status twice a second and redraws), PAIRS pairs,
# interleaved; prints each run's images/s (the workers' `perf` line), the
# medians and their ratio, and the page's own lag figures (how long after the
# launcher received a step the page showed it).
#
#   tests/bench/monitoring_cost.sh [BUILD_DIR] [PAIRS] [STEPS] [CONFIG]
# Defaults: build 5 600 configs/mnist-small.yaml (data/mnist, from
# scripts/fetch-data.sh); each run trains STEPS steps (train.max_steps).
set -eu
build=${1:-build}
pairs=${2:-5}
steps=${3:-600}
config=${4:-configs/mnist-small.yaml}
here=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/dpcnn-monitoring-cost-XXXXXX)
trap 'rm -rf "$work"' EXIT

# run quiet|watched N: one job; prints its images/s on stdout.
run() {
  mode=$1 n=$2
  log=$work/$mode$n.log
  "$build/bin/dpcnn-launch" --config "$config" --np 2 --set train.max_steps="$steps" \
    --set train.eval=false --set runs_dir="$work/runs$mode$n" \
    --set distributed.threads_per_rank=1 >"$log" 2>&1 &
  launcher=$!
  if [ "$mode" = watched ]; then
    addr=""
    while [ -z "$addr" ] && kill -0 $launcher 2>/dev/null; do
      sleep 0.1
      addr=$(cat "$work"/runs$mode$n/*/version_*/metrics.addr 2>/dev/null || true)
    done
    (while kill -0 $launcher 2>/dev/null; do
       curl -s -o /dev/null "http://$addr/metrics" || true
       sleep 1
     done) &
    scraper=$!
    python3 "$here/tests/launcher/page_check.py" --url "http://$addr/" --out "$work" \
      --lag-only --seconds 1000000 >"$work/lag$n.txt" 2>&1 &
    page=$!
  fi
  wait $launcher || { echo "launcher failed:" >&2; cat "$log" >&2; exit 1; }
  if [ "$mode" = watched ]; then
    kill $page 2>/dev/null || true  # SIGTERM: page_check closes Chromium and prints nothing
    wait $scraper 2>/dev/null || true
    wait $page 2>/dev/null || true
  fi
  sed -n 's/.*"images_per_sec":\([0-9.]*\).*/\1/p' "$log" | tail -1
}

quiet="" watched=""
for i in $(seq 1 "$pairs"); do
  q=$(run quiet "$i")
  w=$(run watched "$i")
  echo "pair $i: quiet $q images/s, watched $w images/s   (load: $(cut -d' ' -f1-3 /proc/loadavg))"
  echo "  page $(grep '^lag=' "$work/lag$i.txt" || echo 'lag=?')"
  quiet="$quiet $q" watched="$watched $w"
done
python3 - "$quiet" "$watched" <<'PY'
import statistics, sys
q = [float(v) for v in sys.argv[1].split()]
w = [float(v) for v in sys.argv[2].split()]
mq, mw = statistics.median(q), statistics.median(w)
print(f"median images/s: quiet {mq:.0f}, watched (/metrics every 1 s + web page) {mw:.0f}: "
      f"{100 * (mw / mq - 1):+.2f}%")
PY
