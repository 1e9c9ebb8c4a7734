#!/usr/bin/env bash
# The heap profiler (prof=1) and the leak check (leak_check=1), on programs
# whose allocations per call site are known (prof_sites.c, prof_sigfork.c).
#
#   bash prof.sh CASE LINK MODE LIBNUMASLUB PROF_SITES PROF_SIGFORK NUMASLUB_INFO
#
# LINK: preload (LD_PRELOAD=libnumaslub.so) | static (the programs are
# linked -static with libnumaslub.a). MODE: default | thread (percpu=thread).
#
# CASE:
#   profile   prof_final read by google-pprof --text: each site's bytes are
#             within the sampling error of what it allocated (prof_sample=16k:
#             over 500 samples for the first two sites, each 20% wide is
#             more than 4 standard deviations)
#   outside   the same from outside: numaslub-info --pid --heap-profile on a
#             live target that waits on stdin (not stopped, not signalled:
#             it goes on and exits 0 when told)
#   leak      leak_check=1 (sampled): the three leaked sites are reported,
#             frame #0 of each symbolizes (addr2line, as the report says) to
#             that site, nothing else is reported, the estimates are about
#             half of what the sites allocated; exit status 0, and leak_exitcode=23
#             makes it 23; with nothing leaked, no stack is reported
#   leak_all  prof_sample=1 (every allocation tracked), smaller sites: the
#             leaked counts are exactly half of each site (4096, 32, 5), none
#             of the reachable ones (global, heap chain, stack variable)
#   sigfork   samples taken in a signal handler and in fork children (from
#             the main thread and from the handler) with no deadlock; each
#             child's own profile (prof_final with %p) holds child_site and
#             what it inherited from parent_site, the parent's no child_site
#   off       prof=0: no heap file beside the views file, no report, and
#             numaslub-info --heap-profile says so
# google-pprof (Debian: google-perftools, installed by scripts/install-deps.sh)
# is needed by profile, outside and sigfork: without it they are skipped.
set -euo pipefail

CASE=$1 LINK=$2 MODE=$3 LIB=$4 SITES=$5 SIGFORK=$6 INFO=$7
case $MODE in
  default) BASE="" ;;
  thread) BASE="percpu=thread," ;;
  *) echo "unknown mode $MODE" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/numaslub-prof.$CASE.$LINK.$MODE.XXXXXX")
export TMPDIR=$WORK/tmp
mkdir -p "$TMPDIR"
trap 'rm -rf "$WORK"' EXIT

fail() {
  echo "FAIL ($CASE $LINK $MODE): $*" >&2
  exit 1
}

# run CONF PROG ARGS...: the program under numaslub with NUMASLUB_CONF=CONF.
run() {
  local conf=$1
  shift
  if [ "$LINK" = preload ]; then
    env NUMASLUB_CONF="$BASE$conf" LD_PRELOAD="$LIB" "$@"
  else
    env NUMASLUB_CONF="$BASE$conf" "$@"
  fi
}

need_pprof() {
  if ! command -v google-pprof > /dev/null; then
    echo "SKIP: google-pprof not installed (apt-get install google-perftools)"
    exit 77
  fi
}

# MiB of function FN in google-pprof --text output FILE (0 when absent).
mib_of() {
  awk -v fn="$2" '$6 == fn { print $1; found = 1 } END { if (!found) print 0 }' "$1"
}

# within VALUE WANT PERCENT: |VALUE - WANT| <= PERCENT% of WANT.
within() {
  awk -v v="$1" -v w="$2" -v p="$3" 'BEGIN { d = v - w; if (d < 0) d = -d; exit !(d <= w * p / 100) }'
}

# The expected MiB per site of prof_sites (full size): site_small is 8 MiB
# of blocks and the 1 MiB array keeping them; site_large 10 x 100 KiB.
check_sites() {
  local text=$1
  local small page large
  small=$(mib_of "$text" site_small)
  page=$(mib_of "$text" site_page)
  large=$(mib_of "$text" site_large)
  echo "site_small ${small} MiB (want 9), site_page ${page} (want 4), site_large ${large} (want 0.98)"
  within "$small" 9 20 || fail "site_small: $small MiB, not 9 within 20%"
  within "$page" 4 20 || fail "site_page: $page MiB, not 4 within 20%"
  within "$large" 0.98 20 || fail "site_large: $large MiB, not 0.98 within 20%"
}

# The pid of a target started with "hold", once it printed "ready PID".
wait_ready() {
  for _ in $(seq 300); do
    grep -q '^ready ' "$WORK/out" 2> /dev/null && break
    sleep 0.1
  done
  sed -n 's/^ready \([0-9]*\)$/\1/p' "$WORK/out" | grep . || fail "the target did not get ready"
}

# The function of FILE+OFF, the outermost of those inlined there.
func_of() {
  addr2line -f -i -e "$1" "$2" | sed -n 'p;n' | tail -1
}

# The frames #0 of a leak report (file+offset) symbolized to function names.
leak_sites() {
  grep -A1 '^Leak of' "$1" | sed -n 's/^ *#0 0x[0-9a-f]* (\(.*\)+\(0x[0-9a-f]*\))$/\1 \2/p' |
    while read -r file off; do func_of "$file" "$off"; done | sort
}

case $CASE in
  profile)
    need_pprof
    run "prof=1,prof_sample=16k,prof_final=$WORK/final.heap" "$SITES" noleak
    head -1 "$WORK/final.heap" | grep -q '^heap profile: .* @ heapprofile$' || fail "header"
    grep -q '^MAPPED_LIBRARIES:$' "$WORK/final.heap" || fail "no MAPPED_LIBRARIES"
    google-pprof --text "$SITES" "$WORK/final.heap" > "$WORK/text" 2> /dev/null
    cat "$WORK/text"
    check_sites "$WORK/text"
    ;;
  outside)
    need_pprof
    mkfifo "$WORK/in"
    run "prof=1,prof_sample=16k" "$SITES" noleak,hold < "$WORK/in" > "$WORK/out" &
    job=$!
    exec 3> "$WORK/in"
    pid=$(wait_ready)
    ls "$TMPDIR"/numaslub-*/"$pid.heap" > /dev/null || fail "no $pid.heap beside the views file"
    "$INFO" --pid "$pid" --heap-profile "$WORK/outside.heap" || fail "numaslub-info failed"
    grep -q "^State:.*S (sleeping)" "/proc/$pid/status" || fail "the target is not running as it was"
    google-pprof --text "$SITES" "$WORK/outside.heap" > "$WORK/text" 2> /dev/null
    cat "$WORK/text"
    check_sites "$WORK/text"
    echo go >&3
    exec 3>&-
    wait "$job" || fail "the target exited $?"
    [ ! -e "$TMPDIR/numaslub-$(id -u)/$pid.heap" ] || fail "$pid.heap left behind at exit"
    ;;
  leak)
    set +e
    run "leak_check=1,prof_sample=16k" "$SITES" > /dev/null 2> "$WORK/report"
    rc=$?
    set -e
    cat "$WORK/report"
    [ "$rc" = 0 ] || fail "exit status $rc with leaks but no leak_exitcode"
    grep -q '^SUMMARY: numaslub: ~[0-9]* byte(s) leaked' "$WORK/report" || fail "no summary"
    grep -q 'addr2line' "$WORK/report" || fail "no line telling how to symbolize"
    sites=$(leak_sites "$WORK/report" | tr '\n' ' ')
    [ "$sites" = "site_large site_page site_small " ] || fail "leaked sites: '$sites'"
    # About half of each site leaked: 4 MiB + 2 MiB + 500 KiB (6803456 bytes).
    total=$(sed -n 's/^SUMMARY: numaslub: ~\([0-9]*\) byte(s) leaked.*/\1/p' "$WORK/report")
    within "$total" 6803456 20 || fail "$total bytes leaked, not 6803456 within 20%"
    set +e
    run "leak_check=1,prof_sample=16k,leak_exitcode=23" "$SITES" > /dev/null 2>&1
    rc=$?
    set -e
    [ "$rc" = 23 ] || fail "leak_exitcode=23 gave exit status $rc"
    run "leak_check=1,prof_sample=16k,leak_exitcode=23" "$SITES" noleak > /dev/null 2> "$WORK/none" ||
      fail "noleak exited $? with leak_exitcode=23"
    grep -q 'leaked in ~0 allocation(s) from 0 stack(s)' "$WORK/none" || fail "leaks reported without any"
    ;;
  leak_all)
    run "leak_check=1,prof_sample=1" "$SITES" small > /dev/null 2> "$WORK/report"
    cat "$WORK/report"
    sites=$(leak_sites "$WORK/report" | tr '\n' ' ')
    [ "$sites" = "site_large site_page site_small " ] || fail "leaked sites: '$sites'"
    # Counts per site, by frame #0's function.
    grep -A1 '^Leak of' "$WORK/report" | paste - - - 2> /dev/null |
      sed -n 's/^Leak of \([0-9]*\) byte(s) in \([0-9]*\) object(s).*#0 0x[0-9a-f]* (\(.*\)+\(0x[0-9a-f]*\)).*/\2 \3 \4/p' |
      while read -r n file off; do echo "$(func_of "$file" "$off") $n"; done |
      sort > "$WORK/counts"
    cat "$WORK/counts"
    printf 'site_large 5\nsite_page 32\nsite_small 4096\n' | diff - "$WORK/counts" || fail "leaked counts"
    run "leak_check=1,prof_sample=1" "$SITES" small,noleak > /dev/null 2> "$WORK/none"
    grep -q ' 0 byte(s) leaked in 0 allocation(s) from 0 stack(s)' "$WORK/none" ||
      fail "leaks reported without any: $(cat "$WORK/none")"
    ;;
  sigfork)
    need_pprof
    mkdir "$WORK/p"
    run "prof=1,prof_sample=4k,prof_final=$WORK/p/%p.heap" "$SIGFORK" > "$WORK/sigfork.out" ||
      fail "exit status $?"
    cat "$WORK/sigfork.out"
    # The parent says its pid (pids wrap around: it need not be the smallest).
    parent=$(sed -n 's/.* parent \([0-9][0-9]*\)$/\1/p' "$WORK/sigfork.out").heap
    [ -f "$WORK/p/$parent" ] || fail "no profile $parent of the parent"
    n=$(ls "$WORK/p" | wc -l)
    [ "$n" -ge 21 ] || fail "$n profiles, not the parent's and 20 children's"
    google-pprof --text "$SIGFORK" "$WORK/p/$parent" > "$WORK/parent" 2> /dev/null
    cat "$WORK/parent"
    grep -q ' parent_site$' "$WORK/parent" || fail "parent_site missing in the parent"
    grep -q ' sig_site$' "$WORK/parent" || fail "no sample taken in the signal handler"
    grep -q ' child_site$' "$WORK/parent" && fail "child_site in the parent's profile"
    for f in $(ls "$WORK/p" | grep -vx "$parent"); do
      google-pprof --text "$SIGFORK" "$WORK/p/$f" > "$WORK/child" 2> /dev/null
      grep -q ' child_site$' "$WORK/child" || fail "child_site missing in child $f"
      grep -q ' parent_site$' "$WORK/child" || fail "inherited parent_site missing in child $f"
    done
    ;;
  off)
    mkfifo "$WORK/in"
    run "prof=0" "$SITES" noleak,hold < "$WORK/in" > "$WORK/out" 2> "$WORK/err" &
    job=$!
    exec 3> "$WORK/in"
    pid=$(wait_ready)
    ls "$TMPDIR"/numaslub-*/"$pid" > /dev/null || fail "no views file"
    [ ! -e "$TMPDIR/numaslub-$(id -u)/$pid.heap" ] || fail "a heap file with prof=0"
    if "$INFO" --pid "$pid" --heap-profile "$WORK/x.heap" 2> "$WORK/info"; then
      fail "numaslub-info read a heap profile with prof=0"
    fi
    grep -q 'publishes no heap profile' "$WORK/info" || fail "$(cat "$WORK/info")"
    echo go >&3
    exec 3>&-
    wait "$job"
    [ ! -s "$WORK/err" ] || fail "output on stderr: $(cat "$WORK/err")"
    ;;
  *)
    echo "unknown case $CASE" >&2
    exit 2
    ;;
esac
echo "PASS ($CASE $LINK $MODE)"
