#!/usr/bin/env bash
# CTest's way into a QEMU guest with real NUMA nodes (numa-qemu.sh).
#
#   run_guest.sh --probe NUMA_QEMU MARKER
#       Boots a 2-node guest running /bin/true. If that fails (no script,
#       no QEMU, no kernel, no boot, too slow), writes the reason to MARKER
#       and exits 77, which CTest reports as SKIPPED; otherwise writes "ok"
#       there and passes.
#   run_guest.sh NUMA_QEMU MARKER [numa-qemu.sh options] -- PROGRAM [ARGS]
#       Skips (77) when MARKER holds the probe's reason; otherwise runs
#       PROGRAM in a guest and exits with its status. A guest that does not
#       boot (numa-qemu.sh's 125) is a skip only where no probe said guests
#       boot; a timeout (124) or a failed program is a failure, never a pass.
set -uo pipefail
SKIP=77

probe=0
if [[ ${1-} == --probe ]]; then probe=1; shift; fi
qemu=${1-}
marker=${2-}
shift 2 || { echo "usage: $0 [--probe] NUMA_QEMU MARKER [options] -- PROGRAM" >&2; exit 2; }

skip() {
  echo "SKIPPED: $*"
  exit $SKIP
}

if ((probe)); then
  rm -f "$marker"
  why=""
  if [[ ! -x $qemu ]]; then
    why="numa-qemu.sh not found at $qemu (set -DNUMA_QEMU_SCRIPT=...)"
  else
    out=$("$qemu" --nodes 2 --mem-per-node 128 --timeout 150 -q -- /bin/true 2>&1)
    rc=$?
    echo "$out" | tail -n 30
    case $rc in
      0) echo ok >"$marker"; echo "numa-qemu.sh boots guests here: the QEMU placement tests run"; exit 0 ;;
      124) why="numa-qemu.sh timed out booting an empty guest (QEMU too slow here)" ;;
      125) why="numa-qemu.sh could not boot a guest (harness or boot error, see above)" ;;
      *) why="numa-qemu.sh failed with exit code $rc running /bin/true" ;;
    esac
  fi
  echo "$why" >"$marker"
  skip "$why; the QEMU placement tests are skipped"
fi

probed=$(cat "$marker" 2>/dev/null)
[[ -n $probed && $probed != ok ]] && skip "$probed; this QEMU placement test is skipped"
[[ -x $qemu ]] || skip "numa-qemu.sh not found at $qemu"
"$qemu" "$@"
rc=$?
case $rc in
  125)
    [[ $probed == ok ]] && { echo "FAILED: the probe's guest booted, this one ended without an exit marker"; exit 1; }
    skip "numa-qemu.sh could not boot the guest (harness or boot error above)" ;;
  124) echo "FAILED: the guest ran past its time limit (numa-qemu.sh exit 124)"; exit 1 ;;
esac
exit $rc
