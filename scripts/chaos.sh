#!/usr/bin/env bash
# Chaos soak (not in CI): a launched job on Fashion-MNIST while a random worker
# or mpirun is killed (kill -9) or frozen (SIGSTOP) every 15-30 s, then the same
# job without faults. Reports faults injected, restarts, steps lost to the
# faults, checkpoints that no longer load, and both final accuracies. Since a
# resume is bit-identical for the same rank count, the two should agree
# exactly; the goal is within 0.5 points and zero checkpoints lost.
#
#   scripts/chaos.sh [SECONDS]          fault window, default 600
#   CHAOS_EPOCHS=40 CHAOS_NP=2 scripts/chaos.sh 600
#   CHAOS_CONFIG=configs/mnist.yaml CHAOS_DATA=data/mnist CHAOS_EPOCHS=3 scripts/chaos.sh 60
#
# Outputs in runs/chaos-<time>/ (chaos.log, baseline.log, faults.tsv). It only
# signals processes of its own job (matched by its runs directory).
set -euo pipefail
cd "$(dirname "$0")/.."

window=${1:-600}
epochs=${CHAOS_EPOCHS:-40}
np=${CHAOS_NP:-2}
config=${CHAOS_CONFIG:-configs/fashion-mnist.yaml}
data=${CHAOS_DATA:-data/fashion-mnist}
out=runs/chaos-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
out=$(cd "$out" && pwd)

[[ -x build/bin/dpcnn-launch ]] || scripts/build.sh
[[ -f $data/train-images-idx3-ubyte || -f $data/train-images-idx3-ubyte.gz ]] ||
  scripts/fetch-data.sh fashion-mnist "$data"

# A short stall timeout so a frozen rank costs seconds, not minutes; restarts
# without limit for the soak; a checkpoint every 100 steps.
sets=(--set "runs_dir=$out" "data.dir=$data" "train.epochs=$epochs" checkpoint.every_steps=100
  launcher.max_restarts=100000 launcher.stall_timeout_s=20 distributed.threads_per_rank=1)

status_step() {  # the job's current global step, or -1
  build/bin/dpcnn-status --run "$out/chaos" --json 2>/dev/null |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("step", 0))' 2>/dev/null || echo -1
}

echo "chaos: ${window}s of faults on $config, $np ranks, $epochs epochs; outputs in $out"
build/bin/dpcnn-launch --config "$config" --np "$np" "${sets[@]}" --set name=chaos \
  >"$out/chaos.log" 2>&1 &
launcher=$!
trap 'kill -INT $launcher 2>/dev/null || true' INT TERM

start=$(date +%s)
faults=0
printf 'time\tstep\tfault\tpid\n' >"$out/faults.tsv"
while kill -0 "$launcher" 2>/dev/null && (($(date +%s) - start < window)); do
  sleep $((15 + RANDOM % 16))
  kill -0 "$launcher" 2>/dev/null || break
  # Anchored: mpirun's own command line names dpcnn-train too.
  mapfile -t workers < <(pgrep -f "^[^ ]*dpcnn-train .*runs_dir=$out" || true)
  mapfile -t mpiruns < <(pgrep -f "mpirun .*runs_dir=$out" || true)
  ((${#workers[@]} > 0)) || continue  # between attempts: nothing to hit
  step=$(status_step)
  case $((RANDOM % 3)) in
    0) pid=${workers[RANDOM % ${#workers[@]}]} fault="kill-9-worker" sig=KILL ;;
    1) pid=${workers[RANDOM % ${#workers[@]}]} fault="sigstop-worker" sig=STOP ;;
    *) pid=${mpiruns[0]:-${workers[0]}} fault="kill-9-mpirun" sig=KILL ;;
  esac
  kill -s "$sig" "$pid" 2>/dev/null || continue
  faults=$((faults + 1))
  printf '%s\t%s\t%s\t%s\n' "$(($(date +%s) - start))" "$step" "$fault" "$pid" >>"$out/faults.tsv"
  echo "chaos: fault $faults at ${step:-?}: $fault (pid $pid)"
done
echo "chaos: fault window over after $faults fault(s); letting the job finish"
set +e
wait "$launcher"
chaos_rc=$?
set -e

echo "chaos: the same job without faults"
build/bin/dpcnn-launch --config "$config" --np "$np" "${sets[@]}" --set name=baseline \
  >"$out/baseline.log" 2>&1 || true

# Steps lost: for each resume, the step the status showed just before the fault
# minus the step it resumed from. The status lags training by up to a report
# interval, so this is a lower bound.
python3 - "$out" "$faults" "$chaos_rc" "$data" <<'EOF'
import glob, os, re, subprocess, sys
out, faults, rc, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
log = open(os.path.join(out, "chaos.log"), errors="replace").read()
base = open(os.path.join(out, "baseline.log"), errors="replace").read()
fault_steps = [int(l.split("\t")[1]) for l in open(os.path.join(out, "faults.tsv")).read().splitlines()[1:]
               if l.split("\t")[1].lstrip("-").isdigit()]
resumed = [int(m) for m in re.findall(r"resuming from \S+: epoch \d+, step \d+ \((\d+) steps done\)", log)]
lost = sum(max(0, f - r) for f, r in zip(fault_steps, resumed))
acc = lambda t: (re.findall(r"test_acc (\S+)", t) or ["nan"])[-1]
bad = 0
ckpts = sorted(glob.glob(os.path.join(out, "chaos", "*", "checkpoints", "ckpt-*.pb")))
for c in ckpts:
    r = subprocess.run(["build/bin/dpcnn-predict", "--checkpoint", c, "--idx",
                        data + "/t10k-images-idx3-ubyte", data + "/t10k-labels-idx1-ubyte"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        bad += 1
        print("chaos: checkpoint does not load:", c, r.stderr.strip())
print(f"chaos: faults {faults}, restarts {len(resumed)}, steps lost >= {lost}, "
      f"checkpoints kept {len(ckpts)} (not loading: {bad}), launcher exit {rc}")
a, b = acc(log), acc(base)
print(f"chaos: final test accuracy {a} with faults, {b} without"
      + (f" (difference {abs(float(a) - float(b)) * 100:.2f} points)" if a != "nan" and b != "nan" else ""))
EOF
