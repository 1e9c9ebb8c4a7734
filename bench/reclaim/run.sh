#!/usr/bin/env bash
# Burst-and-idle for numaslub, jemalloc and glibc in one run (issue: reclaim).
#   bench/reclaim/run.sh [BUILD_DIR=build] [MiB=1024] [idle_s=10]
# Prints, per allocator: peak RSS, RSS 1 s after the free, seconds until RSS
# is back within 10% of the burst (-1: not within 3 s), and the CPU time the
# process used while the heap settles (2 s) and then while idle.
set -euo pipefail
build=${1:-build}
mib=${2:-1024}
idle=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)/burst_idle
cc -O2 -o "$bin" "$here/burst_idle.c"
ns=$(cd "$build" && pwd)/libnumaslub.so
je=$(ls /usr/lib/x86_64-linux-gnu/libjemalloc.so.2 2>/dev/null || true)
[[ -r $ns ]] || { echo "build $ns first" >&2; exit 1; }
printf '%-10s %s\n' allocator "result (burst ${mib} MiB, idle ${idle} s)"
printf '%-10s %s\n' numaslub "$(LD_PRELOAD=$ns "$bin" "$mib" "$idle")"
if [[ -n $je ]]; then
  printf '%-10s %s\n' jemalloc "$(LD_PRELOAD=$je "$bin" "$mib" "$idle")"
else
  echo "jemalloc   (libjemalloc2 not installed: skipped)"
fi
printf '%-10s %s\n' glibc "$("$bin" "$mib" "$idle")"
printf '%-10s %s\n' "numaslub" "reclaim=off: $(NUMASLUB_CONF=reclaim=0 LD_PRELOAD=$ns "$bin" "$mib" 1)"
