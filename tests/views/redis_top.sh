#!/usr/bin/env bash
# numaslub-top against a real server: redis-server runs under
# LD_PRELOAD=libnumaslub.so on 127.0.0.1 at a free port while a bounded
# redis-benchmark drives it; `numaslub-top -b -n 2` must print two frames of
# its heap, `numaslub-info --list` must list it, and its views file must go
# away when it exits. Skips (77) when redis is not installed.
#
#   bash redis_top.sh LIBNUMASLUB NUMASLUB_INFO NUMASLUB_TOP
set -euo pipefail
LIB=$1 INFO=$2 TOP=$3
HOST=127.0.0.1

log() { echo "views.redis_top: $*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}
for cmd in redis-server redis-benchmark redis-cli; do
  command -v "$cmd" >/dev/null 2>&1 || {
    log "SKIP: $cmd is not installed (Debian packages redis-server, redis-tools)"
    exit 77
  }
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/numaslub-views.redis.XXXXXX")
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
DIR=$TMPDIR/numaslub-$(id -u)
SERVER="" BENCH="" OK=0
cleanup() {
  [[ -n $BENCH ]] && kill "$BENCH" 2>/dev/null
  [[ -n $SERVER ]] && kill -9 "$SERVER" 2>/dev/null
  wait 2>/dev/null || true
  if ((OK)); then rm -rf "$WORK"; else log "work directory kept: $WORK"; fi
}
trap cleanup EXIT

port_in_use() { (: <>"/dev/tcp/$HOST/$1") 2>/dev/null; }

for ((try = 0; try < 10; try++)); do
  PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
  port_in_use "$PORT" || break
done
env LD_PRELOAD="$LIB" NUMASLUB_CONF=publish_ms=50 redis-server --bind "$HOST" --port "$PORT" \
  --protected-mode yes --daemonize no --save '' --appendonly no --dir "$WORK" \
  --logfile "$WORK/redis.log" &
SERVER=$!
for ((i = 0; i < 300; i++)); do
  [[ $(redis-cli -h "$HOST" -p "$PORT" PING 2>/dev/null) == PONG ]] && break
  kill -0 "$SERVER" 2>/dev/null || fail "redis-server exited: $(tail -n 5 "$WORK/redis.log")"
  sleep 0.1
done
grep -q libnumaslub "/proc/$SERVER/maps" || fail "redis-server does not map libnumaslub"

timeout -k 5 120 redis-benchmark -h "$HOST" -p "$PORT" -n 300000 -c 10 -d 200 -q \
  -t set,get,lpush,lpop,sadd,hset >"$WORK/bench.out" 2>&1 &
BENCH=$!
i=0
while [[ ! -f $DIR/$SERVER ]] && ((i++ < 300)); do sleep 0.1; done
[[ -f $DIR/$SERVER ]] || fail "redis-server (pid $SERVER) made no views file within 30 s"

timeout -k 5 60 "$TOP" -b -n 2 -d 0.5 "$SERVER" >"$WORK/top.out" || fail "numaslub-top failed"
cat "$WORK/top.out" >&2
frames=$(grep -c "^numaslub-top - pid $SERVER (redis-server" "$WORK/top.out" || true)
((frames == 2)) || fail "numaslub-top -b -n 2 printed $frames frames"
(($(grep -c '^kmalloc-' "$WORK/top.out") >= 2)) || fail "no caches in the frames"
"$INFO" --list >"$WORK/list"
cat "$WORK/list" >&2
awk -v p="$SERVER" '$1 == p && $2 == "redis-server" {f = 1} END {exit !f}' "$WORK/list" ||
  fail "--list does not show redis-server $SERVER"

wait "$BENCH" || log "redis-benchmark: status $? (bounded run; not what is tested)"
BENCH=""
kill -TERM "$SERVER"
rc=0
wait "$SERVER" || rc=$?
SERVER_PID=$SERVER
SERVER=""
((rc == 0)) || fail "redis-server exited with status $rc"
[[ ! -e $DIR/$SERVER_PID ]] || fail "the views file stayed after redis-server exited"
log "PASS: two frames of redis-server's heap under redis-benchmark; file removed at exit"
OK=1
