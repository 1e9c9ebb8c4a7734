#!/bin/busybox sh
# Runs inside the QEMU guest (numa-qemu.sh runs it as PROGRAM): every
# placement check of numa_place, under each memory policy, on this guest's
# NODES nodes. With --preload, numa-qemu.sh exports LD_PRELOAD, so every
# program below (numactl included) runs on libnumaslub.so; this shell is
# busybox, static, and does not.
#   guest.sh NUMA_PLACE NODES
# Exit status: the number of failed runs.
P=$1
N=$2
fails=0
failed=""
run() {
  name=$1
  shift
  echo "=== $name: $*"
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "--- PASS $name"
  else
    echo "--- FAIL $name (exit $rc)"
    fails=$((fails + 1))
    failed="$failed $name"
  fi
}

run local "$P" local --policy=local
run local.percpu-thread env NUMASLUB_CONF=percpu=thread "$P" local --policy=local
run remote "$P" remote
run malloc_node "$P" node
# reclaim=0: kswapd takes free blocks off the lists while it madvises them,
# so an allocation right after the big free could find a node empty
# (transiently) and fall back or fail; this run checks the fallback order.
run exhaust env NUMASLUB_CONF=arena_size=16M,section_size=4M,reclaim=0 "$P" exhaust
run numactl-interleave numactl --interleave=all "$P" interleave --policy=interleave --process
run conf-interleave env NUMASLUB_CONF=numa=interleave "$P" interleave --policy=interleave:0-
run conf-bind1 env NUMASLUB_CONF=numa=bind:1 "$P" bind 1 --policy=bind:1
run numactl-membind1 numactl --membind=1 "$P" bind 1 "--policy=bind:1 (process" --process
run conf-preferred1 env NUMASLUB_CONF=numa=preferred:1 "$P" preferred 1 --policy=preferred:1
run numactl-preferred1 numactl --preferred=1 "$P" preferred 1 "--policy=preferred:1 (process" --process
if [ "$N" -ge 4 ]; then
  run conf-bind1,3 env NUMASLUB_CONF=numa=bind:1,3 "$P" bind 1,3 --policy=bind:1,3
  run numactl-membind2-3 numactl --membind=2,3 "$P" bind 2-3 "--policy=bind:2-3 (process" --process
  run conf-interleave0,2 env NUMASLUB_CONF=numa=interleave:0,2 "$P" interleave 0,2 --policy=interleave:0,2
fi
echo "guest.sh: $fails failed run(s)${failed:+:$failed}"
exit $fails
