#!/usr/bin/env bash
# Burst-and-idle for numaslub, jemalloc, tcmalloc and glibc in one run
# (issue: reclaim).
#   bench/reclaim/run.sh [BUILD_DIR=build] [MiB=1024] [idle_s=10]
# Prints, per allocator: peak RSS, RSS 1 s after the free, seconds until RSS
# is back within 10% of the burst (-1: not within 3 s), and the CPU time the
# process used while the heap settles (2 s) and then while idle.
#
# Each allocator runs with its defaults, and the others also with their own
# way of returning memory sooner: jemalloc's background thread with a 500 ms
# dirty decay (its default has no thread: purging happens inside later
# malloc/free calls, which an idle process never makes), and gperftools
# tcmalloc's TCMALLOC_RELEASE_RATE at 10, the top of the range it documents
# ([0, 10], default 1; it releases pages as frees reach its page heap, and
# has no thread).
set -euo pipefail
build=${1:-build}
mib=${2:-1024}
idle=${3:-10}
here=$(cd "$(dirname "$0")" && pwd)
bin=$(mktemp -d)/burst_idle
cc -O2 -o "$bin" "$here/burst_idle.c"
ns=$(cd "$build" && pwd)/libnumaslub.so
libdir=/usr/lib/x86_64-linux-gnu
je=$(ls $libdir/libjemalloc.so.2 2>/dev/null || true)
tc=$(ls $libdir/libtcmalloc_minimal.so.4 2>/dev/null || true)
[[ -r $ns ]] || { echo "build $ns first" >&2; exit 1; }
row() { printf '%-22s %s\n' "$1" "$2"; }
row allocator "result (burst ${mib} MiB, idle ${idle} s)"
row numaslub "$(LD_PRELOAD=$ns "$bin" "$mib" "$idle")"
if [[ -n $je ]]; then
  row jemalloc "$(LD_PRELOAD=$je "$bin" "$mib" "$idle")"
  row "jemalloc bg,decay500" \
    "$(MALLOC_CONF=background_thread:true,dirty_decay_ms:500 LD_PRELOAD=$je "$bin" "$mib" "$idle")"
else
  row jemalloc "(libjemalloc2 not installed: skipped)"
fi
if [[ -n $tc ]]; then
  row tcmalloc "$(LD_PRELOAD=$tc "$bin" "$mib" "$idle")"
  row "tcmalloc rate=10" "$(TCMALLOC_RELEASE_RATE=10 LD_PRELOAD=$tc "$bin" "$mib" "$idle")"
else
  row tcmalloc "(libtcmalloc-minimal4 not installed: skipped)"
fi
row glibc "$("$bin" "$mib" "$idle")"
row "numaslub reclaim=off" "$(NUMASLUB_CONF=reclaim=0 LD_PRELOAD=$ns "$bin" "$mib" 1)"
