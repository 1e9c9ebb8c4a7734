#!/usr/bin/env bash
# redis-server under the preload, on 127.0.0.1 only, at a free port the script
# picks, with lazy freeing on (FLUSHALL ASYNC and DEL of big keys free in its
# bio thread). It is driven by a bounded redis-benchmark, a bulk load through
# redis-cli --pipe (strings up to 4 KiB, a 1 MiB value, lists, hashes, sets, a
# sorted set), a Lua script, APPEND growth (realloc), GET checks of known
# values, DBSIZE and DEBUG DIGEST, UNLINK of half the keys; then it is stopped
# by its PID (SIGTERM, wait). The clients run preloaded too. Compared: the
# functional replies only, never the benchmark's numbers.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=redis
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ns_require redis-server redis-server
ns_require redis-cli redis-tools
ns_require redis-benchmark redis-tools

HOST=127.0.0.1
NKEYS=20000

# port_in_use PORT: something accepts connections on HOST:PORT.
port_in_use() { (: <>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# value_of I: the value bulk-loaded for key:I, 1 to 4096 bytes.
value_of() {
  local i=$1 len=$((1 + ($1 * 7919) % 4096)) v
  printf -v v '%*s' "$len" ''
  printf 'v%d-%s\n' "$i" "${v// /x}"
}

# bulk_resp: the RESP commands of the bulk load, for redis-cli --pipe.
bulk_resp() {
  awk -v n="$NKEYS" '
    function cmd(a, k, i) { printf "*%d\r\n", k; for (i = 1; i <= k; i++) printf "$%d\r\n%s\r\n", length(a[i]), a[i] }
    BEGIN {
      x = sprintf("%4096s", ""); gsub(/ /, "x", x)
      for (i = 1; i <= n; i++) {
        a[1] = "SET"; a[2] = "key:" i; a[3] = "v" i "-" substr(x, 1, 1 + (i * 7919) % 4096) ; cmd(a, 3)
        a[1] = "RPUSH"; a[2] = "list:" (i % 100); a[3] = "item-" i; cmd(a, 3)
        a[1] = "HSET"; a[2] = "hash:" (i % 50); a[3] = "field-" i; a[4] = i * 3; cmd(a, 4)
        a[1] = "SADD"; a[2] = "set:" (i % 20); a[3] = "member-" (i * 31 % 7001); cmd(a, 3)
        a[1] = "ZADD"; a[2] = "zset"; a[3] = (i * 7) % 1009; a[4] = "m" i; cmd(a, 4)
      }
      big = x; while (length(big) < 1048576) big = big big
      a[1] = "SET"; a[2] = "big"; a[3] = big; cmd(a, 3)
    }'
}

# Queries for redis-cli, one command per line; the replies are compared.
queries() {
  local i
  echo "DBSIZE"
  for i in 1 2 777 4096 19999 "$NKEYS"; do echo "STRLEN key:$i"; done
  echo "STRLEN big"
  echo "LLEN list:7"
  echo "LRANGE list:7 0 5"
  echo "HLEN hash:3"
  echo "HGET hash:3 field-53"
  echo "SCARD set:5"
  echo "ZCARD zset"
  echo "ZRANGE zset 0 9 WITHSCORES"
  echo "ZRANGEBYSCORE zset 1000 1008 LIMIT 0 5"
  echo "EVAL \"local t = {} for i = 1, 100000 do t[i] = tostring(i) .. KEYS[1] end return #table.concat(t, ',')\" 1 lua"
  for ((i = 0; i < 2000; i++)); do echo "APPEND grow 0123456789abcdef0123456789abcdef"; done
  echo "STRLEN grow"
  echo "DEBUG DIGEST"
  for ((i = 1; i <= NKEYS; i += 2)); do echo "UNLINK key:$i"; done
  echo "DEL big list:7 hash:3 zset"
  echo "DBSIZE"
  echo "DEBUG DIGEST"
}

# start_server LOG: starts redis-server at a free port, sets PORT and PID.
start_server() {
  local try
  for ((try = 0; try < 10; try++)); do
    PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    port_in_use "$PORT" && continue
    ns_env "redis-server --port $PORT"
    env "${NS_ENV[@]}" redis-server --bind "$HOST" --port "$PORT" --protected-mode yes \
      --daemonize no --save '' --appendonly no --dir "$PWD" --logfile "$1" --loglevel notice \
      --enable-debug-command local \
      --lazyfree-lazy-user-del yes {NS_LOG_FD}>&- &
    PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
      if ! kill -0 "$PID" 2>/dev/null; then break; fi
      if [[ $(redis-cli -h "$HOST" -p "$PORT" PING 2>/dev/null) == PONG ]]; then return 0; fi
      sleep 0.1
    done
    if kill -0 "$PID" 2>/dev/null; then
      kill "$PID"
      ns_die "redis-server (pid $PID) did not answer PING within 30 s; see $1"
    fi
    wait "$PID" || true
    grep -q 'Address already in use' "$1" || {
      tail -n 20 "$1" >&2
      ns_die "redis-server exited at start-up; reproduce: $(ns_repro redis-server --port "$PORT")"
    }
  done
  ns_die "no free port found for redis-server"
}

workload() {
  local out=$1 i expect got rc=0
  PID=""
  trap 'if [[ -n $PID ]]; then kill "$PID" 2>/dev/null || true; fi' EXIT
  start_server "$PWD/redis.log"

  # The server runs the library it should (or does not, in the plain run).
  if grep -q libnumaslub "/proc/$PID/maps"; then got=preload; else got=plain; fi
  [[ $got == "$NS_PHASE" ]] || ns_die "redis-server maps libnumaslub: $got; expected $NS_PHASE"

  local cli=(redis-cli -h "$HOST" -p "$PORT")
  tgt redis-benchmark -h "$HOST" -p "$PORT" -n 10000 -c 10 -d 200 --csv \
    -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100 >bench.csv
  cut -d, -f1 bench.csv >"$out/bench-tests"
  tgt "${cli[@]}" DBSIZE >"$out/bench-dbsize"
  tgt "${cli[@]}" FLUSHALL ASYNC >"$out/flushall"

  bulk_resp >bulk.resp
  tgt "${cli[@]}" --pipe <bulk.resp >pipe.log
  grep '^errors:' pipe.log >"$out/pipe"

  # Values read back are exactly the ones written.
  for i in 1 2 3 777 4096 12345 "$NKEYS"; do
    expect=$(value_of "$i")
    got=$(tgt "${cli[@]}" GET "key:$i")
    [[ $got == "$expect" ]] || ns_die "GET key:$i returned ${#got} bytes, expected ${#expect}: $(ns_repro "${cli[@]}" GET "key:$i")"
    echo "key:$i ok ${#got}" >>"$out/get-checks"
  done
  tgt "${cli[@]}" SET greeting "hello from numaslub" >>"$out/set-get"
  tgt "${cli[@]}" GET greeting >>"$out/set-get"

  queries >queries.txt
  tgt "${cli[@]}" <queries.txt >"$out/queries"

  kill -TERM "$PID"
  wait "$PID" || rc=$?
  PID=""
  echo "redis-server exit status $rc" >"$out/server-status"
  if ((rc != 0)); then
    tail -n 30 redis.log >&2
    ns_log "reproduce: $(ns_repro redis-server --bind "$HOST" --port "$PORT")"
  fi
  grep -q 'Redis is now ready to exit, bye bye' redis.log
  echo "clean shutdown" >"$out/shutdown"
}

ns_main "$@"
