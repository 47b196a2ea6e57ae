#!/usr/bin/env bash
# Line and branch coverage of src/ and launcher/ from the whole ctest run.
# Builds with gcc's --coverage into build-cov/ (its own build dir, so build/
# keeps its Release binaries), runs every test except the `multihost` ones
# (they need network namespaces with fixed names; run them alone with
# `ctest -L multihost` in build-cov/ to add theirs), and prints gcovr's
# per-file table and the totals. Installs Debian's gcovr when it is missing
# (as root; otherwise prints the apt-get line and exits 2).
#   scripts/coverage.sh [extra ctest args]     e.g. -R Launch to measure a subset
# Branch figures leave out the branches gcc adds for exceptions
# (--exclude-throw-branches) and those it proves unreachable: they are not
# decisions in our code.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v gcovr >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "coverage.sh: gcovr is missing; run as root: apt-get install -y gcovr" >&2
    exit 2
  fi
  echo "coverage.sh: installing gcovr" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends gcovr >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends gcovr >/dev/null; }
fi

# -Og keeps the counts close to the source lines and the timing-bound tests
# passing; ccache is used when present.
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B build-cov -DCMAKE_BUILD_TYPE=Coverage "${launcher[@]}" \
  -DCMAKE_CXX_FLAGS_COVERAGE="-Og -g --coverage" \
  -DCMAKE_EXE_LINKER_FLAGS_COVERAGE="--coverage" \
  -DCMAKE_SHARED_LINKER_FLAGS_COVERAGE="--coverage" >/dev/null
cmake --build build-cov -j "$(nproc)"

# Counters of an earlier run would add up with this one's.
find build-cov -name '*.gcda' -delete
status=0
(cd build-cov && ctest -LE multihost -j "$(nproc)" --timeout 600 --output-on-failure "$@") ||
  status=$?
if [[ $status -ne 0 ]]; then
  echo "coverage.sh: some tests failed (ctest exit $status); the figures count what ran" >&2
fi

gcovr -r . build-cov --filter 'src/' --filter 'launcher/' \
  --exclude-throw-branches --exclude-unreachable-branches --gcov-ignore-parse-errors \
  -j "$(nproc)" --json build-cov/coverage.json 2>build-cov/gcovr.log ||
  { cat build-cov/gcovr.log >&2; exit 1; }
gcovr -r . -a build-cov/coverage.json --sort-uncovered --txt build-cov/lines.txt
gcovr -r . -a build-cov/coverage.json --sort-uncovered -b --txt build-cov/branches.txt
echo "== lines per file, most uncovered last (build-cov/lines.txt; branches: build-cov/branches.txt)"
cat build-cov/lines.txt
gcovr -r . -a build-cov/coverage.json --print-summary 2>/dev/null | tail -n 3
exit $status
