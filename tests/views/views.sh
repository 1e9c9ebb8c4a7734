#!/usr/bin/env bash
# Live views from another process (lib/views): a target program runs under
# LD_PRELOAD=libnumaslub.so and the readers (numaslub-info --pid/--list,
# numaslub-top, views_check) look at it from outside.
#
#   bash views.sh CASE MODE LIBNUMASLUB VIEWS_TARGET VIEWS_CHECK NUMASLUB_INFO NUMASLUB_TOP
#
# MODE: default | thread (percpu=thread) | fakenuma2 (fake_numa=2: two nodes,
# so per-node parts really are parts). Each run has a TMPDIR of its own, so
# its views directory holds only its own processes' files.
#
# CASE:
#   show        the reader prints exactly the target's in-process buddyinfo,
#               zoneinfo and slabinfo (and its vmstat lines), and the known
#               amounts; the file goes away when the target exits
#   json        --json parses, holds the known amounts, and its totals add up;
#               --list --json lists the target
#   consistent  while two threads churn and publish_ms=1, thousands of reads
#               all pass the checksum and the sums (views_check), and so do
#               20 --json reads
#   stale       the files of a SIGKILLed process, of a reused pid and of an
#               exec'd process (crafted from a real file) are not listed and
#               are removed by --list; a live one stays
#   publish0    publish=0 makes no file, though slow paths run (and the
#               control run without it does make one by itself)
#   top         numaslub-top -b -n 2 prints two frames with the caches
#   fork        a fork child publishes its own file under its own pid
set -euo pipefail

CASE=$1 MODE=$2 LIB=$3 TARGET=$4 CHECK=$5 INFO=$6 TOP=$7
case $MODE in
  default) BASE_CONF="" ;;
  thread) BASE_CONF="percpu=thread" ;;
  fakenuma2) BASE_CONF="fake_numa=2" ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/numaslub-views.$CASE.$MODE.XXXXXX")
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
DIR=$TMPDIR/numaslub-$(id -u)
PIDS=()
OK=0

log() { echo "views.$CASE.$MODE: $*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
skip() {
  log "SKIP: $*"
  exit 77
}
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if ((OK)); then rm -rf "$WORK"; else log "work directory kept: $WORK"; fi
}
trap cleanup EXIT

conf() { # conf EXTRA: NUMASLUB_CONF for this mode plus EXTRA
  local c=$BASE_CONF
  [[ -n $1 ]] && c=${c:+$c,}$1
  printf '%s' "$c"
}

# start_target EXTRA_CONF ARGS...: the target, preloaded, in the background;
# returns once it printed "ready PID". Sets TPID and TOUT (its stdout).
start_target() {
  local extra=$1 i
  shift
  TOUT=$(mktemp "$WORK/target.XXXXXX")
  env LD_PRELOAD="$LIB" NUMASLUB_CONF="$(conf "$extra")" "$TARGET" "$@" >"$TOUT" 2>"$TOUT.err" &
  TPID=$!
  PIDS+=("$TPID")
  for ((i = 0; i < 600; i++)); do
    if grep -q '^ready ' "$TOUT"; then return 0; fi
    kill -0 "$TPID" 2>/dev/null || fail "target ($*) exited early: $(cat "$TOUT.err")"
    sleep 0.1
  done
  fail "target ($*) not ready within 60 s"
}

# stop_target PID: SIGTERM; the target exits normally (its destructor runs).
stop_target() {
  kill -TERM "$1"
  local rc=0
  wait "$1" || rc=$?
  ((rc == 0)) || fail "target $1 exited with status $rc"
}

# active CACHE FILE: active_objs of CACHE in a slabinfo text.
active() { awk -v c="$1" '$1 == c {print $2; found = 1} END {if (!found) print -1}' "$2"; }

# The amounts views_target.c's kHold allocates.
HOLD=("kmalloc-3072 4000" "kmalloc-768 10000" "kmalloc-14336 600" "kmalloc-48 30000")

check_hold() { # check_hold SLABINFO_FILE
  local entry name want got
  for entry in "${HOLD[@]}"; do
    read -r name want <<<"$entry"
    got=$(active "$name" "$1")
    ((got >= want)) || fail "$name: $got active objects published, the target holds $want"
    # Objects in sheaves count too, but not a whole class's worth more.
    ((got < want + 4096)) || fail "$name: $got active objects, far more than the $want held"
  done
  log "known amounts shown: ${HOLD[*]}"
}

case_show() {
  mkdir -p "$WORK/inproc" "$WORK/pub"
  start_target "" hold "$WORK/inproc"
  local file=$DIR/$TPID v
  [[ -f $file ]] || fail "no views file $file"
  [[ $(stat -c %a "$DIR") == 700 && $(stat -c %a "$file") == 600 ]] ||
    fail "modes: dir $(stat -c %a "$DIR"), file $(stat -c %a "$file") (want 700, 600)"
  for v in buddyinfo zoneinfo slabinfo vmstat; do
    "$INFO" --pid "$TPID" "$v" >"$WORK/pub/$v" || fail "numaslub-info --pid $TPID $v failed"
  done
  for v in buddyinfo zoneinfo slabinfo; do
    diff -u "$WORK/inproc/$v" "$WORK/pub/$v" >&2 || fail "published $v differs from the in-process one"
  done
  # The in-process vmstat view is the slab layer's part of the report's.
  local line
  while IFS= read -r line; do
    grep -qxF "$line" "$WORK/pub/vmstat" || fail "vmstat line '$line' is not published"
  done <"$WORK/inproc/vmstat"
  grep -q '^kswapd_passes ' "$WORK/pub/vmstat" || fail "the report's kswapd lines are missing"
  check_hold "$WORK/pub/slabinfo"
  "$INFO" --pid "$TPID" >"$WORK/pub/all"
  for v in buddyinfo zoneinfo slabinfo vmstat; do
    grep -qx "== $v ==" "$WORK/pub/all" || fail "'all' has no $v section"
  done
  stop_target "$TPID"
  [[ ! -e $file ]] || fail "$file is still there after the target exited"
  log "views identical to the in-process ones; file removed at exit"
}

JSON_CHECK='
import json, sys
d = json.load(open(sys.argv[1]))
pid, want = int(sys.argv[2]), dict(kv.split("=") for kv in sys.argv[3:])
assert d["pid"] == pid, d["pid"]
caches = {c["name"]: c for c in d["slabinfo"]}
for name, n in want.items():
    got = caches[name]["active_objs"]
    assert got >= int(n), "%s: %d active, want >= %s" % (name, got, n)
for c in d["slabinfo"]:
    for k, nk in (("active_objs", "active_objs"), ("num_slabs", "num_slabs"),
                  ("remote_frees", "remote_frees")):
        s = sum(x[nk] for x in c["nodes"])
        assert s == c[k], "%s: %s %d but the nodes sum to %d" % (c["name"], k, c[k], s)
    assert len(c["nodes"]) == d["nodes"]
for z in d["zoneinfo"]:
    free = d["buddyinfo"][z["node"]]["free"]
    assert z["free"] == sum(n << o for o, n in enumerate(free)), z["node"]
    assert z["nr_free_pcp"] == sum(p["count"] for p in z["pagesets"]), z["node"]
assert len(d["zoneinfo"]) == len(d["buddyinfo"]) == d["nodes"]
assert d["vmstat"]["numa_hit"] >= 1
'

case_json() {
  command -v python3 >/dev/null || skip "python3 is not installed"
  mkdir -p "$WORK/inproc"
  start_target "" hold "$WORK/inproc"
  "$INFO" --pid "$TPID" --json >"$WORK/views.json" || fail "--json failed"
  local want=() entry name n
  for entry in "${HOLD[@]}"; do
    read -r name n <<<"$entry"
    want+=("$name=$n")
  done
  python3 -c "$JSON_CHECK" "$WORK/views.json" "$TPID" "${want[@]}" ||
    fail "JSON check failed ($WORK/views.json)"
  "$INFO" --list --json >"$WORK/list.json"
  python3 -c '
import json, sys
rows = json.load(open(sys.argv[1]))
mine = [r for r in rows if r["pid"] == int(sys.argv[2])]
assert len(mine) == 1 and mine[0]["comm"] == "views_target", rows
assert mine[0]["heap_used_bytes"] >= 25 << 20, mine
' "$WORK/list.json" "$TPID" || fail "--list --json does not show the target ($WORK/list.json)"
  stop_target "$TPID"
  log "JSON holds the known amounts and its totals add up"
}

case_consistent() {
  command -v python3 >/dev/null || skip "python3 is not installed"
  start_target "publish_ms=1" churn
  local i=0
  while [[ ! -f $DIR/$TPID ]] && ((i++ < 100)); do sleep 0.1; done
  [[ -f $DIR/$TPID ]] || fail "the churning target made no file within 10 s"
  "$CHECK" "$DIR" "$TPID" 200 >&2 || fail "views_check found an inconsistent snapshot"
  for ((i = 0; i < 20; i++)); do
    "$INFO" --pid "$TPID" --json >"$WORK/churn.json" || fail "--json read $i failed"
    python3 -c "$JSON_CHECK" "$WORK/churn.json" "$TPID" || fail "JSON read $i: sums do not add up"
  done
  stop_target "$TPID"
  log "every snapshot read during the churn was consistent"
}

# craft_file SRC PID START_TIME: a copy of the views file SRC, made to claim
# PID and (unless empty) START_TIME.
craft_file() {
  python3 - "$1" "$DIR/$2" "$2" "$3" <<'EOF'
import struct, sys
src, dst, pid, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
b = bytearray(open(src, "rb").read())
struct.pack_into("<i", b, 48, pid)  # FileHeader::pid
if start:
    struct.pack_into("<Q", b, 56, int(start))  # FileHeader::start_time
open(dst, "wb").write(b)
EOF
  chmod 600 "$DIR/$2"
}

case_stale() {
  command -v python3 >/dev/null || skip "python3 is not installed"
  mkdir -p "$WORK/inproc"
  # A live target, whose file must survive every --list below.
  start_target "" hold "$WORK/inproc"
  local live=$TPID
  cp "$DIR/$live" "$WORK/template"
  # 1. Killed: its file stays behind.
  start_target "" hold "$WORK/inproc"
  local dead=$TPID
  kill -9 "$dead"
  wait "$dead" 2>/dev/null || true
  [[ -f $DIR/$dead ]] || fail "a SIGKILLed target left no file (nothing to test)"
  # 2. Pid reused: a file claiming a live process that started at another time.
  sleep 1000 &
  local reused=$!
  PIDS+=("$reused")
  craft_file "$WORK/template" "$reused" ""
  # 3. Exec'd: the right pid and start time, but the process maps no such file.
  sleep 1000 &
  local execd=$!
  PIDS+=("$execd")
  local st
  st=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$execd/stat")
  craft_file "$WORK/template" "$execd" "$st"
  "$INFO" --pid "$reused" >/dev/null 2>&1 && fail "--pid read the file of a reused pid"
  "$INFO" --list >"$WORK/list" 2>"$WORK/list.err"
  cat "$WORK/list" "$WORK/list.err" >&2
  local p
  for p in "$dead" "$reused" "$execd"; do
    awk -v p="$p" '$1 == p {exit 1}' "$WORK/list" || fail "--list shows stale pid $p"
    [[ ! -e $DIR/$p ]] || fail "--list left the stale file of pid $p"
  done
  awk -v p="$live" '$1 == p {f = 1} END {exit !f}' "$WORK/list" || fail "--list lost live pid $live"
  [[ -f $DIR/$live ]] || fail "--list removed the live file of pid $live"
  stop_target "$live"
  log "stale files (killed, reused pid, exec'd) ignored and removed; the live one kept"
}

case_publish0() {
  start_target "publish=0,publish_ms=10" publish0
  local off=$TPID
  start_target "publish_ms=10" slowpaths
  local on=$TPID
  [[ -f $DIR/$on ]] || fail "control: slow paths past publish_ms made no file for pid $on"
  [[ ! -e $DIR/$off ]] || fail "publish=0 made $DIR/$off"
  if "$INFO" --pid "$off" >/dev/null 2>&1; then fail "numaslub-info read views of a publish=0 process"; fi
  stop_target "$off"
  stop_target "$on"
  [[ ! -e $DIR/$on ]] || fail "the control's file stayed after exit"
  log "publish=0 made no file; the control made one by itself"
}

case_top() {
  mkdir -p "$WORK/inproc"
  start_target "" hold "$WORK/inproc"
  "$TOP" -b -n 2 -d 0.2 "$TPID" >"$WORK/top.out" || fail "numaslub-top failed"
  cat "$WORK/top.out" >&2
  local frames
  frames=$(grep -c "^numaslub-top - pid $TPID " "$WORK/top.out" || true)
  ((frames == 2)) || fail "numaslub-top -b -n 2 printed $frames frames"
  [[ $(grep -c '^kmalloc-3072 ' "$WORK/top.out") == 2 ]] || fail "a frame lacks kmalloc-3072"
  grep -q '^NODE ' "$WORK/top.out" || fail "no per-node table"
  ! grep -q $'\e' "$WORK/top.out" || fail "escape sequences in batch output"
  stop_target "$TPID"
  log "two frames"
}

case_fork() {
  start_target "" fork
  local parent=$TPID child="" i
  for ((i = 0; i < 600; i++)); do
    child=$(awk '$1 == "child" {print $2}' "$TOUT")
    [[ -n $child ]] && break
    sleep 0.1
  done
  [[ -n $child ]] || fail "the fork child did not report"
  [[ -f $DIR/$parent && -f $DIR/$child ]] || fail "files: $(ls "$DIR")"
  "$INFO" --list >"$WORK/list"
  cat "$WORK/list" >&2
  for i in "$parent" "$child"; do
    awk -v p="$i" '$1 == p {f = 1} END {exit !f}' "$WORK/list" || fail "--list misses pid $i"
  done
  "$INFO" --pid "$child" slabinfo >"$WORK/child"
  "$INFO" --pid "$parent" slabinfo >"$WORK/parent"
  local c p
  c=$(active kmalloc-20480 "$WORK/child")
  p=$(active kmalloc-20480 "$WORK/parent")
  ((c >= 2000)) || fail "child's kmalloc-20480: $c active, it holds 2000"
  ((p >= 0 && p < 2000)) || fail "parent's kmalloc-20480: $p active: the child's objects in the parent's file?"
  stop_target "$parent"
  [[ ! -e $DIR/$parent && ! -e $DIR/$child ]] || fail "files left after exit: $(ls "$DIR")"
  log "child $child published its own file; parent $parent's is its own"
}

"case_$CASE"
OK=1
