#!/usr/bin/env bash
# A small mutation check: breaks the code on purpose, one mutation at a time,
# and shows that the test suite notices each. Never touches this tree: it
# copies the tracked and new files into a throwaway tree (MUTATION_DIR,
# default /tmp/dpcnn-mutation-$UID; its build/ is kept between runs, so only
# the first run builds everything), applies one mutation (a perl
# substitution that must match), rebuilds, runs the tests that should catch
# it, restores the file, and prints a table: mutation, tests run, tests that
# failed. Exits 1 if any mutation survived (no test failed).
#   scripts/mutation-check.sh              every mutation
#   scripts/mutation-check.sh rho fsync    only those whose name contains a word given
# The launcher and MPI tests run real jobs: a full pass takes ~15 minutes
# on 2 cores after the first build.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
work=${MUTATION_DIR:-/tmp/dpcnn-mutation-$(id -u)}
tree=$work/tree
mkdir -p "$tree"

# name | file | perl substitution | ctest -R regex of the tests expected to catch it
mutations=(
  "grad-sign|src/layers/softmax_xent.cc|s/\(std::exp\(row\[j\]\) - \(j == y \? 1.0f : 0.0f\)\)/((j == y ? 1.0f : 0.0f) - std::exp(row[j]))/|^(SoftmaxCrossEntropy|Model|TrainerTest)\."
  "sgd-step-sign|src/optim/optimizer.cc|s/p\[i\] -= lr \* g\[i\];/p[i] += lr * g[i];/|^(Sgd|WeightDecay)\."
  "rmsprop-drops-rho|src/optim/optimizer.cc|s/v\[i\] = rho \* v\[i\] \+ \(1.0f - rho\)/v[i] = (1.0f - rho)/g|^(RmsProp|WeightDecay)\."
  "adam-drops-first-moment-correction|src/optim/optimizer.cc|s/ \/ \(1.0 - std::pow\(b1, t\)\)\);/);/|^(Adam|WeightDecay)\."
  "mean-over-local-slice|src/train/trainer.cc|s/1.0f \/ static_cast<float>\(gsize\)/1.0f \/ static_cast<float>(mine.n)/|^TrainMpi\.OneTwoFour"
  "allreduce-max-not-sum|src/comm/mpi_communicator.cc|s/grads_ \+ b, static_cast<int>\(end\(k\) - b\), MPI_FLOAT, MPI_SUM/grads_ + b, static_cast<int>(end(k) - b), MPI_FLOAT, MPI_MAX/|^comm_mpi|^TrainMpi\.OneTwoFour"
  "checkpoint-skips-fsync|src/checkpoint/checkpoint.cc|s/if \(::fsync\(fd\) != 0\)/if (false)/|^(Durability|Checkpoint|CheckpointDir)\."
  "checkpoint-skips-dir-fsync|src/checkpoint/checkpoint.cc|s/const int rc = ::fsync\(dfd\);/const int rc = 0;/|^(Durability|Checkpoint|CheckpointDir)\."
  "checkpoint-ignores-checksum|src/checkpoint/checkpoint.cc|s/if \(sha256\(payload, n\) != bytes.substr\(kHeader \+ n, kSha\)\)/if (false)/|^(Checkpoint|CheckpointDir|checkpoint\.FuzzReplay)\."
  "replica-check-off|src/train/trainer.cc|s/if \(sums\[r\] != sums\[0\]\)/if (false)/|^Replicas\."
  "rng-output-changed|src/core/rng.cc|s/rotl\(s_\[1\] \* 5, 7\) \* 9/rotl(s_[1] * 5, 7) * 7/|^(Rng|EpochOrder)\."
  "stall-timeout-ignored|launcher/supervisor.cc|s/if \(!h.finished && seconds_since\(h.last_progress\) > opt_.stall_timeout_s\)/if (false)/|^LaunchFailure\.Stalled"
  "max-restarts-off-by-one|launcher/supervisor.cc|s/if \(restarts >= opt_.max_restarts\)/if (restarts > opt_.max_restarts)/|^LaunchFailure\.GivesUp"
  "no-pdeathsig-for-mpirun|launcher/process_group.cc|s/prctl\(PR_SET_PDEATHSIG, SIGKILL\);//|^LaunchFailure\.LauncherKilled"
  "request-size-limit-dropped|launcher/status_server.cc|s/builder.SetMaxReceiveMessageSize\(1 << 20\);//|^StatusServiceTest\.Oversized"
  "watch-not-rate-limited|launcher/status_service.cc|s/if \(!shutting_down_ && Clock::now\(\) < next\)/if (false)/|^StatusServiceTest\.Watch"
  "token-compared-with-itself|launcher/status_service.cc|s/!same_secret\(presented, info_.token\)/!same_secret(presented, presented)/|^StatusServiceTest\.(Stop|Reports)|^StatusTool\.Token"
  "predict-ranks-backwards|src/apps/predict_main.cc|s/return log_probs\[a\] > log_probs\[b\];/return log_probs[a] < log_probs[b];/|^PredictTest\."
)

want=("$@")
selected() {
  [[ ${#want[@]} -eq 0 ]] && return 0
  local w
  for w in "${want[@]}"; do [[ "$1" == *"$w"* ]] && return 0; done
  return 1
}

# The throwaway tree: this tree's tracked and new files, mtimes kept so that
# the kept build/ rebuilds only what changed since the last run.
echo "mutation-check: copying the tree to $tree" >&2
git ls-files -co --exclude-standard -z | tar --null -T - -cf - | tar -xf - -C "$tree"
if [[ -f $work/applied ]]; then  # an earlier run stopped mid-mutation
  touch "$tree/$(cat "$work/applied")"
  rm -f "$work/applied"
fi
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
export CCACHE_BASEDIR=$tree
cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" >/dev/null
echo "mutation-check: building the unmutated copy" >&2
cmake --build "$tree/build" -j "$(nproc)" >"$work/build.log" 2>&1 ||
  { tail -n 30 "$work/build.log" >&2; exit 1; }

rows=()
md() { printf '%s' "${1//|/\\|}"; }  # a regex inside a markdown table cell
survived=0
for m in "${mutations[@]}"; do
  IFS='|' read -r name file subst tests <<<"$m"
  selected "$name" || continue
  f=$tree/$file
  # The tests must pass before the mutation, or their failing proves nothing.
  if ! (cd "$tree/build" && ctest -R "$tests" -j "$(nproc)" --timeout 300 >"$work/$name.before.log" 2>&1); then
    rows+=("| $name | \`$(md "$tests")\` | tests fail WITHOUT the mutation (see $work/$name.before.log) |")
    survived=1
    continue
  fi
  cp "$f" "$work/original"
  echo "$file" >"$work/applied"
  perl -0pi -e "$subst" "$f"
  if cmp -s "$f" "$work/original"; then
    rows+=("| $name | \`$(md "$tests")\` | MUTATION DID NOT APPLY (the code changed?) |")
    survived=1
    rm -f "$work/applied"
    continue
  fi
  echo "mutation-check: $name ($file)" >&2
  if ! cmake --build "$tree/build" -j "$(nproc)" >"$work/$name.build.log" 2>&1; then
    caught="MUTATION DOES NOT COMPILE (see $work/$name.build.log)"
    survived=1
  else
    (cd "$tree/build" && ctest -R "$tests" -j "$(nproc)" --timeout 300 >"$work/$name.log" 2>&1) || true
    caught=$(grep -E '^\s+[0-9]+ - .* \((Failed|Timeout|SEGFAULT|Subprocess aborted|Exception)' "$work/$name.log" |
      sed -E 's/^\s+[0-9]+ - ([^ ]+) .*/\1/' | paste -sd ' ' - || true)
  fi
  cp "$work/original" "$f"
  touch "$f"  # newer than the mutated build, so it rebuilds
  rm -f "$work/applied"
  # Unmutated again before the next mutation's own before-check.
  cmake --build "$tree/build" -j "$(nproc)" >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; exit 1; }
  if [[ -z "$caught" ]]; then
    rows+=("| $name | \`$(md "$tests")\` | **SURVIVED** |")
    survived=1
  else
    rows+=("| $name | \`$(md "$tests")\` | $caught |")
  fi
done
echo
echo "| mutation | tests run (ctest -R) | failed |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
exit $survived
