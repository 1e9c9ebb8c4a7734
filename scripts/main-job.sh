#!/usr/bin/env bash
# The main job: install dependencies, build Release into build/, then run each
# step in STEPS in order and stop at the first that fails.
#
#   bash scripts/main-job.sh              all steps
#   STEPS="info" bash scripts/main-job.sh only some of them
#
# Steps: the heap's views (numaslub-info), a real program under LD_PRELOAD
# with its heap report, numaslub against jemalloc (microbenchmarks in one
# process, then the throughput workloads under every allocator by
# LD_PRELOAD, quick mode), and the burst-and-idle memory return test.
# To add a step: write step_<name>, add <name> to DEFAULT_STEPS and its
# build target to TARGETS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${BUILD_DIR:-build}"
JOBS="${JOBS:-$(nproc)}"
DEFAULT_STEPS="info preload page_bench slub_bench throughput reclaim"
# Build targets the steps run; one the tree does not define yet is skipped.
TARGETS=(numaslub numaslub-info page_bench slub_bench bench_workloads)
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

step_preload() {
  banner "a real program under LD_PRELOAD: sqlite3, 200k rows (heap report follows)"
  local db
  db=$(mktemp -d)/main-job.db
  NUMASLUB_STATS=1 "$BUILD_DIR/numaslub-run" -- sqlite3 "$db" \
    "create table t(a integer primary key, b text);
     with recursive c(x) as (select 1 union all select x+1 from c where x < 200000)
     insert into t select x, hex(randomblob(24)) from c;
     create index ib on t(b);
     select count(*), sum(length(b)) from t;" 2>&1 |
    awk '/^== zoneinfo/ { skip = 1 } /^== slabinfo/ { skip = 0 } !skip'
  rm -rf "$(dirname "$db")"
}

step_slub_bench() {
  banner "numaslub vs jemalloc: malloc+free microbenchmarks in one process"
  "$BUILD_DIR/bench/slub_bench" --benchmark_min_time=0.05 --benchmark_repetitions=3 \
    --benchmark_filter='pair|batch|prodcons' 2>&1 | sed -n '/^numaslub \/ jemalloc/,$p'
}

step_throughput() {
  banner "throughput workloads under each allocator (bench/run.py --quick)"
  python3 "$ROOT/bench/run.py" --quick --no-build --build-dir "$BUILD_DIR" \
    --out-dir "$BUILD_DIR/bench-results"
}

step_reclaim() {
  banner "memory return: 1 GiB burst freed, then idle (bench/reclaim/run.sh)"
  bash "$ROOT/bench/reclaim/run.sh" "$BUILD_DIR" 1024 3
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
