# shellcheck shell=bash
# The driver shared by the preload tests; each tests/preload/<program>.sh
# sources it. A test script is run by CTest as
#
#   bash <program>.sh LIBNUMASLUB MODE      MODE: default | thread | fakenuma2
#
# and defines:
#   workload OUTDIR   runs the real program through `tgt` (never directly) in
#                     the current directory and writes into OUTDIR everything
#                     that must come out the same with and without the preload,
#                     already normalized (no timings, no absolute temp paths);
#   prepare DIR       (optional) sets up inputs both runs share, once.
#
# then calls `ns_main "$@"`. ns_main runs the workload twice, each time in a
# fresh directory: first plain, then with LD_PRELOAD=LIBNUMASLUB and the mode's
# NUMASLUB_CONF. In the preloaded run every process started by `tgt` writes a
# NUMASLUB_STATS report to a file of its own; ns_main checks that each report
# has a slabinfo section with active objects (so the preload was really in
# effect), then diffs the two OUTDIRs. Exit status: 0 pass, 1 fail, 77 skip
# (a program is not installed). NS_KEEP=1 keeps the work directory; it is
# kept anyway on failure.
set -euo pipefail

NS_SKIP_RC=77
NS_MODE=${2:-?}  # sourced with the test script's arguments; set for real by ns_main
NS_TIMEOUT=${NS_TIMEOUT:-240}  # seconds, for each program run
# shellcheck disable=SC2034  # used by the test scripts
NS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# Messages go to the test's stderr even where a workload redirects the
# stderr of a `tgt` call: ns_main keeps it open as NS_LOG_FD.
ns_log() { printf 'preload.%s.%s: %s\n' "${NS_NAME:-?}" "${NS_MODE:-?}" "$*" >&"${NS_LOG_FD:-2}"; }
ns_die() {
  ns_log "FAIL: $*"
  exit 1
}
ns_skip() {
  ns_log "SKIP: $*"
  exit "$NS_SKIP_RC"
}

# ns_require COMMAND PACKAGE: skip the test when COMMAND is missing.
ns_require() {
  command -v "$1" >/dev/null 2>&1 ||
    ns_skip "$1 is not installed (Debian package $2; scripts/install-deps.sh installs it)"
}

# ns_env DESCRIPTION: sets the array NS_ENV to the `env` arguments for one
# program run in the current phase. Preloaded runs get a fresh stats file,
# with DESCRIPTION beside it for the report check.
ns_env() {
  NS_ENV=(-u LD_PRELOAD -u NUMASLUB_CONF -u NUMASLUB_STATS)
  if [[ $NS_PHASE == preload ]]; then
    local stats
    stats=$(mktemp "$NS_STATS_DIR/stats.XXXXXX")
    printf '%s\n' "$1" >"$NS_STATS_DIR/cmd.${stats##*.}"
    NS_ENV+=("LD_PRELOAD=$NS_LIB" "NUMASLUB_STATS=$stats")
    if [[ -n $NS_CONF ]]; then NS_ENV+=("NUMASLUB_CONF=$NS_CONF"); fi
  fi
}

# ns_repro CMD...: the command line that reruns CMD the way this phase ran it.
ns_repro() {
  local conf=""
  if [[ $NS_PHASE == preload ]]; then
    conf="LD_PRELOAD=$NS_LIB${NS_CONF:+ NUMASLUB_CONF=$NS_CONF} "
  fi
  printf '(cd %q && %s' "$PWD" "$conf"
  printf '%q ' "$@"
  printf ')\n'
}

# tgt [--any-rc] CMD ARGS...: runs a program under test, bounded by
# NS_TIMEOUT, with the preload in the preload phase. A nonzero exit status is
# reported with a reproducer and returned; --any-rc reports only a timeout or
# a death by signal (the caller compares the status itself).
tgt() {
  local any_rc=0 rc=0
  if [[ $1 == --any-rc ]]; then
    any_rc=1
    shift
  fi
  ns_env "$*"
  timeout -k 10 "$NS_TIMEOUT" env "${NS_ENV[@]}" "$@" {NS_LOG_FD}>&- || rc=$?
  if ((rc != 0)) && { ((any_rc == 0)) || ((rc >= 124)); }; then
    local why="exit status $rc"
    if ((rc == 124)); then
      why="timed out after ${NS_TIMEOUT}s (hang or deadlock?)"
    elif ((rc > 128)); then
      why="killed by signal $((rc - 128)) ($(kill -l "$((rc - 128))" 2>/dev/null || echo '?'))"
    fi
    ns_log "$NS_PHASE run: $1 failed: $why"
    ns_log "reproduce: $(ns_repro "$@")"
  fi
  return "$rc"
}

# ns_check_reports: every preloaded process wrote a report with a slabinfo
# section and a nonzero active object count.
ns_check_reports() {
  local f id cmd report active n=0
  for f in "$NS_STATS_DIR"/stats.*; do
    [[ -e $f ]] || continue
    id=${f##*.}
    cmd=$(cat "$NS_STATS_DIR/cmd.$id")
    report=$NS_STATS_DIR/report.$id
    [[ -s $f ]] || ns_die "no NUMASLUB_STATS report from '$cmd': was the preload active?"
    # Writers of one file may overlap (a child and its parent): drop NULs.
    tr -d '\0' <"$f" >"$report"
    grep -q '^== slabinfo ==$' "$report" || ns_die "report from '$cmd' has no slabinfo section ($f)"
    active=$(awk '/^== /{s = ($0 == "== slabinfo ==")}
      s && NF > 2 && $1 !~ /^#/ && $1 != "slabinfo" && $2 ~ /^[0-9]+$/ {a += $2}
      END {print a + 0}' "$report")
    ((active > 0)) || ns_die "report from '$cmd' shows no active slab objects ($f)"
    n=$((n + 1))
  done
  ((n > 0)) || ns_die "no program ran under the preload"
  ns_log "preload active: $n NUMASLUB_STATS reports, each with active slab objects"
}

ns_cleanup() {
  local rc=$?
  if [[ -n ${NS_WORK:-} && -d $NS_WORK ]]; then
    if ((rc == 0 || rc == NS_SKIP_RC)) && [[ ${NS_KEEP:-0} != 1 ]]; then
      rm -rf "$NS_WORK"
    else
      ns_log "work directory kept: $NS_WORK"
    fi
  fi
}

ns_main() {
  if [[ $# -ne 2 ]]; then
    echo "usage: $0 LIBNUMASLUB default|thread|fakenuma2" >&2
    exit 2
  fi
  NS_LIB=$1
  NS_MODE=$2
  case $NS_MODE in
    default) NS_CONF="" ;;
    thread) NS_CONF="percpu=thread" ;;
    fakenuma2) NS_CONF="fake_numa=2" ;;
    *) ns_die "unknown mode '$NS_MODE'" ;;
  esac
  [[ -f $NS_LIB ]] || ns_die "$NS_LIB does not exist (build the numaslub target first)"
  NS_LIB=$(cd "$(dirname "$NS_LIB")" && pwd)/$(basename "$NS_LIB")
  exec {NS_LOG_FD}>&2
  # Only `tgt` sets these, for the program under test; the helpers run plain.
  unset LD_PRELOAD NUMASLUB_CONF NUMASLUB_STATS
  export LC_ALL=C TZ=UTC

  NS_WORK=$(mktemp -d "${TMPDIR:-/tmp}/numaslub-preload.$NS_NAME.$NS_MODE.XXXXXX")
  trap ns_cleanup EXIT
  NS_STATS_DIR=$NS_WORK/stats
  mkdir -p "$NS_STATS_DIR" "$NS_WORK/shared"
  if declare -F prepare >/dev/null; then prepare "$NS_WORK/shared"; fi

  local start secs=()
  for NS_PHASE in plain preload; do
    mkdir -p "$NS_WORK/$NS_PHASE/out" "$NS_WORK/$NS_PHASE/run"
    start=$SECONDS
    # A subshell, so the workload's cd, exports and traps stay inside. It is
    # waited for rather than tested with `||`, which would turn off set -e in it.
    (
      cd "$NS_WORK/$NS_PHASE/run"
      workload "$NS_WORK/$NS_PHASE/out"
    ) </dev/null &
    wait "$!" || ns_die "$NS_PHASE run failed (see above)"
    secs+=("$NS_PHASE $((SECONDS - start)) s")
  done
  ns_log "${secs[*]}"

  ns_check_reports
  if ! diff -ru "$NS_WORK/plain/out" "$NS_WORK/preload/out" >"$NS_WORK/diff.txt"; then
    head -n 200 "$NS_WORK/diff.txt" >&2
    ns_die "output differs with LD_PRELOAD=$NS_LIB${NS_CONF:+ NUMASLUB_CONF=$NS_CONF} (diff above)"
  fi
  ns_log "PASS: $(find "$NS_WORK/plain/out" -type f | wc -l) output files identical"
}
