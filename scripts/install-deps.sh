#!/usr/bin/env bash
# Installs what numaslub needs to build, test and benchmark on Debian 12.
#
# Idempotent: every package is checked with `dpkg -s` first, so a machine that
# has them all does no apt work; otherwise one `apt-get update` and one
# `apt-get install` of the missing ones. Non-interactive; meant to run as root
# (uses sudo when it is not root and sudo exists).
set -euo pipefail

PACKAGES=(
  cmake g++ make                  # toolchain
  pkgconf                         # the installed numaslub.pc (ctest test consumer)
  libgtest-dev libgmock-dev       # tests/
  libbenchmark-dev                # bench/
  libnuma-dev numactl             # NUMA checks in tests, numactl for runs
  libjemalloc-dev                 # the allocator the benchmarks compare with
  clang-format                    # format check in scripts/test-all.sh
  valgrind binutils               # tests/fastpath: golden instruction counts (callgrind, objdump)
  python3 libpython3.11-testsuite git sqlite3 perl redis-server redis-tools
                                  # tests/preload: real programs under LD_PRELOAD
  libmimalloc2.0 libtcmalloc-minimal4  # bench/run.py: the other allocators
  gnuplot-nox                     # bench/run.py: charts
  google-perftools binutils       # tests/prof: google-pprof reads heap profiles, addr2line
)

export DEBIAN_FRONTEND=noninteractive

installed() {
  dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -E)
  else
    echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
fi

echo "install-deps: installing ${missing[*]}"
# Wait for another apt/dpkg (e.g. unattended-upgrades) instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" update
"${SUDO[@]}" apt-get "${APT_OPTS[@]}" install -y --no-install-recommends "${missing[@]}"

for p in "${missing[@]}"; do
  if ! installed "$p"; then
    echo "install-deps: $p is still not installed" >&2
    exit 1
  fi
done
echo "install-deps: done"
