#!/usr/bin/env bash
# Every check CI runs, in order, continuing past failures so one run reports
# them all:
#   0. the layer rule on every #include (scripts/check-layers.py, no build);
#   1. Release build with -Werror into build/, then its ctest;
#   2. the component tests (tests/*_test.cpp) with ASan + UBSan into
#      build-asan/, then their ctest (with NUMASLUB_TSAN=1, also the slub and
#      buddy suites under ThreadSanitizer into build-tsan/);
#   3. clang-format --dry-run -Werror on every tracked *.cpp / *.h.
# Exits non-zero if any step failed. The last line is the sum of all ctest
# runs, "N passed, N failed". A test binary that does not compile shows up in
# ctest as a failed <name>_NOT_BUILT test (the build keeps going past it).
# Sized for CI's 2 cores: a few minutes from a clean tree (CI allows 90).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

JOBS="${JOBS:-$(nproc)}"
PASSED=0
FAILED=0
FAILED_STEPS=()

# Each banner shows the seconds elapsed since the start, to see where CI's time goes.
banner() { printf '\n==== %s [%ds] ====\n' "$*" "$SECONDS"; }
fail_step() {
  FAILED_STEPS+=("$1")
  echo "test-all: FAILED: $1" >&2
}

# configure_and_build DIR NAME TARGETS cmake-args...: configure, then build
# TARGETS (space-separated; "" for all) with make's -k, so every target that
# can be built is.
configure_and_build() {
  local dir=$1 name=$2 targets=$3
  shift 3
  banner "$name: configure + build into $dir/"
  if ! cmake -S . -B "$dir" "$@"; then
    fail_step "$name configure"
    return 1
  fi
  # Keep going past a target that fails (make -k, ninja -k 0).
  local keep_going=(-k)
  if grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja' "$dir/CMakeCache.txt" 2>/dev/null; then
    keep_going=(-k 0)
  fi
  local target_args=()
  if [ -n "$targets" ]; then
    # shellcheck disable=SC2206  # a space-separated list of target names
    target_args=(--target $targets)
  fi
  if ! cmake --build "$dir" -j "$JOBS" "${target_args[@]}" -- "${keep_going[@]}"; then
    fail_step "$name build"
  fi
  return 0
}

# run_ctest DIR NAME [REGEX]: ctest in DIR (a build tree or a folder of one: ctest
# then runs only the tests defined there); adds its counts to PASSED / FAILED.
run_ctest() {
  local dir=$1 name=$2 log="$1/ctest-output.log" rc line total failed filter=()
  [ -n "${3:-}" ] && filter=(-R "$3")
  banner "$name: ctest"
  (cd "$dir" && ctest --output-on-failure -j2 --no-tests=error "${filter[@]}") 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  # "100% tests passed, 0 tests failed out of 42" / "... 1 tests failed out of 42"
  line=$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1)
  if [ -n "$line" ]; then
    failed=${line%% *}
    total=${line##* }
    PASSED=$((PASSED + total - failed))
    FAILED=$((FAILED + failed))
    if [ "$failed" -ne 0 ] || [ "$rc" -ne 0 ]; then fail_step "$name ctest"; fi
  else
    # No summary line: ctest found no tests or did not finish.
    FAILED=$((FAILED + 1))
    fail_step "$name ctest (no result line, rc=$rc)"
  fi
}

SECONDS=0

banner "dependencies"
if ! bash "$ROOT/scripts/install-deps.sh"; then
  fail_step "install-deps"
fi

# 0. Layers: no file includes a folder above its own, and a lower folder
# only through its umbrella header (docs/ARCHITECTURE.md). Needs no build.
banner "layer check"
if ! python3 "$ROOT/scripts/check-layers.py"; then
  fail_step "layer check (scripts/check-layers.py)"
fi

# 1. Release, warnings as errors, benchmarks built too (so they keep compiling).
if configure_and_build build release "" -DCMAKE_BUILD_TYPE=Release -DNUMASLUB_WERROR=ON \
  -DNUMASLUB_SANITIZE= -DNUMASLUB_TESTS=ON; then
  run_ctest build release
else
  FAILED=$((FAILED + 1))
fi

# 2. Sanitizers on the component tests only: tests/<component>_test.cpp,
# which link the layers without the malloc shim. The suites that make
# numaslub the process's malloc (tests/api and the like: preloaded, static)
# cannot run under ASan, which interposes malloc itself, so they are neither
# built nor run here; ctest runs in build-asan/tests, where only the
# component tests are defined. -O2 -g keeps them fast and the reports
# readable; UBSan halts on its first report as ASan does.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
COMPONENT_TESTS=""
for src in tests/*_test.cpp; do
  [ -e "$src" ] && COMPONENT_TESTS+="$(basename "$src" .cpp) "
done
if [ -z "$COMPONENT_TESTS" ]; then
  echo "test-all: no tests/*_test.cpp" >&2
  FAILED=$((FAILED + 1))
  fail_step "asan (no component tests)"
elif configure_and_build build-asan asan "$COMPONENT_TESTS" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DNUMASLUB_SANITIZE=address,undefined -DNUMASLUB_BENCH=OFF -DNUMASLUB_TESTS=ON \
  -DNUMASLUB_WERROR=ON; then
  run_ctest build-asan/tests asan
else
  FAILED=$((FAILED + 1))
fi

# 2b. With NUMASLUB_TSAN=1: the multi-threaded suites of the page allocator
# and the object caches under ThreadSanitizer (all four slub
# configurations). The buddy's benign neighbour-descriptor read is hidden
# from TSan at its one read (free_order, lib/buddy/zone.cpp), so the buddy
# suite runs clean without suppressions, and so do the slub suites: the
# rseq hand-offs are annotated in lib/slub (NS_TSAN_ACQUIRE/RELEASE), and
# tests/tsan.supp holds no entry, only the history of those it held.
# Opt-in, not in CI: about 9 minutes on 2 cores.
if [ "${NUMASLUB_TSAN:-0}" = 1 ]; then
  export TSAN_OPTIONS="${TSAN_OPTIONS:-suppressions=$ROOT/tests/tsan.supp:history_size=7}"
  if configure_and_build build-tsan tsan \
    "slub_test slub_tiers_test slub_threads_test slub_hardening_test slub_barn_test slub_enomem_test
    buddy_test buddy_runs_test" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DNUMASLUB_SANITIZE=thread -DNUMASLUB_BENCH=OFF -DNUMASLUB_TESTS=ON -DNUMASLUB_WERROR=ON; then
    run_ctest build-tsan/tests tsan 'Slub|Buddy'
  else
    FAILED=$((FAILED + 1))
  fi
fi

# 3. Formatting, by the tree's .clang-format.
banner "clang-format check"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t SOURCES < <(git ls-files -- '*.cpp' '*.h')
else
  mapfile -t SOURCES < <(find . -path ./build -prune -o -path './build-*' -prune -o \
    \( -name '*.cpp' -o -name '*.h' \) -print)
fi
if [ "${#SOURCES[@]}" -eq 0 ]; then
  echo "no sources to check"
elif clang-format --dry-run -Werror "${SOURCES[@]}"; then
  echo "clang-format: ${#SOURCES[@]} files clean"
else
  fail_step "clang-format (fix with: git ls-files '*.cpp' '*.h' | xargs clang-format -i)"
fi

banner "summary"
if [ "${#FAILED_STEPS[@]}" -ne 0 ]; then
  printf 'failed step: %s\n' "${FAILED_STEPS[@]}"
else
  echo "all steps passed"
fi
echo "$PASSED passed, $FAILED failed"
[ "${#FAILED_STEPS[@]}" -eq 0 ]
