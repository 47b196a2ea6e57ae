#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (checkpoint reader, image decoder) with clang,
# ASan and UBSan into build-fuzz/, and runs each on a fresh seed corpus for
# FUZZ_SECONDS (default 20) seconds. Exits non-zero when a fuzzer finds a crash
# (the reproducer is left in build-fuzz/fuzz/crash-*).
#   scripts/fuzz.sh [fuzzer ...]      default: checkpoint image
# FUZZ_SEED (default 0: a new random seed each run) and FUZZ_RUNS (default: no
# limit) make a run repeatable: scripts/test.sh (CI) uses a fixed seed and
# count, so CI replays the same inputs every time; explore with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
limits=(-seed="${FUZZ_SEED:-0}")
[[ -n "${FUZZ_RUNS:-}" ]] && limits+=(-runs="$FUZZ_RUNS")
fuzzers=("$@")
[[ ${#fuzzers[@]} -gt 0 ]] || fuzzers=(checkpoint image)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/bootstrap.sh)" >&2; exit 2; }
targets=()
for f in "${fuzzers[@]}"; do targets+=("${f}_fuzz" "${f}_seeds"); done

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDPCNN_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for f in "${fuzzers[@]}"; do
  corpus=build-fuzz/fuzz/corpus-$f
  rm -rf "$corpus" && mkdir -p "$corpus"
  "build-fuzz/fuzz/${f}_seeds" "$corpus"
  if [[ -d tests/fuzz/regressions/$f ]]; then cp tests/fuzz/regressions/"$f"/* "$corpus"/; fi
  echo "fuzz.sh: $f for ${seconds} s" >&2
  if ! (cd build-fuzz/fuzz && "./${f}_fuzz" -max_total_time="$seconds" "${limits[@]}" -max_len=65536 \
        -rss_limit_mb=2048 -print_final_stats=1 "corpus-$f" 2>"$f.log"); then
    echo "fuzz.sh: $f FOUND A CRASH; see build-fuzz/fuzz/$f.log and build-fuzz/fuzz/crash-*" >&2
    tail -n 40 "build-fuzz/fuzz/$f.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "build-fuzz/fuzz/$f.log" >&2 || true
  fi
done
exit $status
