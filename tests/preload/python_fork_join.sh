#!/usr/bin/env bash
# CPython's test_3_join_in_forked_from_thread under the preload: a thread
# forks, and in the child that thread, now the only one, ends with
# pthread_exit, after which glibc exits the process. It hung every time
# when the fork child handler started the reclaim thread with pthread_create:
# glibc counted it, so the child lived on with only ns-kswapd0 and the parent
# waited for it forever (issue 10). Compared: the exit status and the
# outcome of the test case; a hang is stopped after NS_TIMEOUT seconds.
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=python_fork_join
NS_TIMEOUT=${NS_TIMEOUT:-60}
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
[[ -x $PY ]] || ns_skip "$PY is not installed (Debian package python3)"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ -f /usr/lib/python$PYVER/test/libregrtest/__init__.py ]] ||
  ns_skip "CPython's test suite is not installed (Debian package libpython$PYVER-testsuite)"

workload() {
  local out=$1 rc=0
  unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE PYTHONWARNINGS
  export PYTHONDONTWRITEBYTECODE=1
  mkdir tmp
  tgt --any-rc "$PY" -m test --tempdir "$PWD/tmp" test_threading \
    -m test_3_join_in_forked_from_thread -m test_2_join_in_forked_process \
    -m test_1_join_in_forked_process -m test_4_daemon_threads \
    >regrtest.log 2>&1 || rc=$?
  echo "exit status $rc" >"$out/status"
  grep -E '^(Tests result|Result): ' regrtest.log >"$out/result" || true
}

ns_main "$@"
