#!/usr/bin/env bash
# The main job: install dependencies, build Release into build/, then run each
# step in STEPS in order and stop at the first that fails.
#
#   bash scripts/main-job.sh              all steps
#   STEPS="info" bash scripts/main-job.sh only some of them
#
# To add a step (the jemalloc comparison, a real program under LD_PRELOAD):
# write a function step_<name>, add <name> to DEFAULT_STEPS and its build
# target to TARGETS. A target the tree does not define yet is not built, and
# its step prints a note instead of running.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-$(nproc)}"
DEFAULT_STEPS="info page_bench"
# Build targets the steps run; one the tree does not define yet is skipped.
TARGETS=(numaslub-info page_bench)
STEPS="${STEPS:-$DEFAULT_STEPS}"
# Extra arguments for the page benchmark (Google Benchmark flags).
PAGE_BENCH_ARGS="${PAGE_BENCH_ARGS:-}"

banner() { printf '\n==== %s ====\n' "$*"; }

# True when the configured build tree defines target $1 (read the whole list
# first: grep -q closing the pipe early would fail it under pipefail).
has_target() {
  local list
  list=$(cmake --build "$BUILD_DIR" --target help 2>/dev/null) || return 1
  grep -Eq "(^|[ .])$1(\$|[: ])" <<<"$list"
}

step_build() {
  banner "configure + build (Release) into $BUILD_DIR/"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release
  # Only what the steps run; the test suites are built by scripts/test-all.sh.
  local targets=() t
  for t in "${TARGETS[@]}"; do
    if has_target "$t"; then targets+=("$t"); else echo "note: no target $t yet"; fi
  done
  cmake --build "$BUILD_DIR" -j "$JOBS" --target "${targets[@]}"
}

step_info() {
  banner "numaslub-info: buddyinfo / zoneinfo"
  "$BUILD_DIR/numaslub-info"
}

step_page_bench() {
  banner "page benchmark"
  local bin="$BUILD_DIR/bench/page_bench"
  if [ ! -x "$bin" ]; then
    echo "note: $bin does not exist yet (bench/page_bench.cpp not in the tree); skipped"
    return 0
  fi
  # shellcheck disable=SC2086  # PAGE_BENCH_ARGS is a list of flags
  "$bin" $PAGE_BENCH_ARGS
}

start=$SECONDS
banner "dependencies"
bash "$ROOT/scripts/install-deps.sh"
step_build
for s in $STEPS; do
  if ! declare -F "step_$s" >/dev/null; then
    echo "main-job: unknown step '$s' (known: $DEFAULT_STEPS)" >&2
    exit 2
  fi
  "step_$s"
done
banner "main job done in $((SECONDS - start)) s"
