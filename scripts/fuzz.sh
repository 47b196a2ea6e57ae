#!/usr/bin/env bash
# Builds the libFuzzer fuzzers (checkpoint reader, image decoder, experiment
# file reader) with clang, ASan and UBSan into build-fuzz/, and runs each on a
# fresh seed corpus for FUZZ_SECONDS (default 20) seconds. Exits non-zero
# when a fuzzer finds a crash (the reproducer is left in build-fuzz/fuzz/crash-*).
#   scripts/fuzz.sh [fuzzer ...]      default: checkpoint image config
# FUZZ_SEED (default 0: a new random seed each run) and FUZZ_RUNS (default: no
# limit) make a run repeatable: scripts/test.sh (CI) uses a fixed seed and
# count, so CI replays the same inputs every time, on any machine (the seed
# corpus is handed over in a fixed order, below); explore with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-20}
limits=(-seed="${FUZZ_SEED:-0}")
[[ -n "${FUZZ_RUNS:-}" ]] && limits+=(-runs="$FUZZ_RUNS")
fuzzers=("$@")
[[ ${#fuzzers[@]} -gt 0 ]] || fuzzers=(checkpoint image config)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (scripts/bootstrap.sh)" >&2; exit 2; }
targets=()
for f in "${fuzzers[@]}"; do targets+=("${f}_fuzz" "${f}_seeds"); done

CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DDPCNN_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for f in "${fuzzers[@]}"; do
  # New inputs go to corpus-$f; each seed sits alone in its own folder under
  # seeds-$f, passed in name order. libFuzzer reads a folder in the file
  # system's readdir order, which differs between machines (ext4 hashes
  # names), and that order steers everything after it: one file per folder,
  # -shuffle=0 and -reload=0 make a fixed seed replay the same inputs anywhere.
  corpus=build-fuzz/fuzz/corpus-$f seeds=build-fuzz/fuzz/seeds-$f
  rm -rf "$corpus" "$seeds" && mkdir -p "$corpus" "$seeds/all"
  "build-fuzz/fuzz/${f}_seeds" "$seeds/all"
  if [[ -d tests/fuzz/regressions/$f ]]; then cp tests/fuzz/regressions/"$f"/* "$seeds/all"/; fi
  dirs=()
  while IFS= read -r name; do
    mkdir "$seeds/$name.d" && mv "$seeds/all/$name" "$seeds/$name.d/"
    dirs+=("seeds-$f/$name.d")
  done < <(cd "$seeds/all" && LC_ALL=C ls -1)
  echo "fuzz.sh: $f for ${seconds} s" >&2
  # Comparisons the fuzzer learns from include pointers: with address-space
  # randomisation off (setarch -R) and the same small environment, addresses,
  # and so the inputs tried, are the same from run to run.
  # An input slower than 10 s is a finding (a hang, or memory growing without
  # end: libFuzzer's out-of-memory report walks the whole heap and can take
  # longer than the run), and the outer timeout makes sure nothing hangs CI.
  if ! (cd build-fuzz/fuzz && env -i PATH=/usr/bin:/bin ASAN_OPTIONS="$ASAN_OPTIONS" \
        UBSAN_OPTIONS="$UBSAN_OPTIONS" timeout -k 10 $((seconds + 120)) \
        setarch "$(uname -m)" -R "./${f}_fuzz" -timeout=10 \
        -max_total_time="$seconds" "${limits[@]}" -max_len=65536 -shuffle=0 -reload=0 -rss_limit_mb=2048 -print_final_stats=1 "corpus-$f" "${dirs[@]}" \
        2>"$f.log"); then
    echo "fuzz.sh: $f FOUND A CRASH (or a hang); see build-fuzz/fuzz/$f.log and its crash-*, timeout-*, oom-*" >&2
    tail -n 40 "build-fuzz/fuzz/$f.log" >&2
    status=1
  else
    grep -E "^stat::number_of_executed_units|^Done" "build-fuzz/fuzz/$f.log" >&2 || true
  fi
done
exit $status
