#!/usr/bin/env bash
# python3 under the preload: an allocation-heavy subset of CPython's own
# regression tests (Debian's libpythonX.Y-testsuite), run sequentially in one
# interpreter; tests that start subprocesses run those preloaded too. Compared:
# the exit status, the regrtest summary without its timings, and the outcome
# of every single test case from --junit-xml. Debian's /usr/bin/python3 is
# used explicitly (python3 on PATH may be another build, e.g. a pyenv shim).
# shellcheck source-path=SCRIPTDIR
set -euo pipefail
NS_NAME=python
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY=/usr/bin/python3
[[ -x $PY ]] || ns_skip "$PY is not installed (Debian package python3)"
PYVER=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ -f /usr/lib/python$PYVER/test/libregrtest/__init__.py ]] ||
  ns_skip "CPython's test suite is not installed (Debian package libpython$PYVER-testsuite)"

# Dicts, lists, sets, str, bytes, ints, containers, JSON, regex, XML DOM,
# itertools, copies, thread-local data and threads: all allocate constantly.
# (Not test_xml_etree: it swaps ElementTree modules and breaks --junit-xml.)
TESTS=(test_dict test_list test_set test_unicode test_bytes test_long test_deque
  test_collections test_json test_re test_minidom test_itertools test_copy
  test_struct test_heapq test_threading_local test_thread)

# junit_outcomes JUNIT: one "test-id outcome" line per test case, sorted.
junit_outcomes() {
  "$PY" - "$1" <<'PY'
import sys
import xml.etree.ElementTree as ET

rows = []
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    outcome = case.get("result") or case.get("status") or "?"
    for child in case:
        if child.tag in ("skipped", "failure", "error"):
            outcome = child.tag
            break
    rows.append(f"{case.get('name')} {outcome}")
print("\n".join(sorted(rows)))
print(f"{len(rows)} test cases")
PY
}

workload() {
  local out=$1 rc=0
  unset PYTHONPATH PYTHONHOME PYTHONSTARTUP PYTHONUSERBASE PYTHONWARNINGS
  # Keep the system's test directory unwritten.
  export PYTHONDONTWRITEBYTECODE=1
  mkdir tmp
  tgt --any-rc "$PY" -m test --tempdir "$PWD/tmp" --junit-xml "$PWD/junit.xml" "${TESTS[@]}" \
    >regrtest.log 2>&1 || rc=$?
  echo "exit status $rc" >"$out/status"
  # Drop the "0:00:12 load avg: 1.23 " prefixes, the cwd (a temp path), the
  # total and any "(12.3 sec)" durations.
  sed -E -e 's/^[0-9]+:[0-9]{2}:[0-9]{2} (load avg: [0-9.]+ )?//' \
    -e '/^== cwd: /d' -e '/^Total duration: /d' \
    -e 's/ \(([0-9.]+ (hour|min|sec|ms) ?)+\)//g' regrtest.log >"$out/summary"
  junit_outcomes junit.xml >"$out/outcomes"
}

ns_main "$@"
