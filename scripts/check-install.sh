#!/usr/bin/env bash
# Installs a build into a temporary prefix and builds tests/consumer against
# it, the way a user would: with find_package(numaslub) (numaslub::numaslub
# and numaslub::numaslub_static) and with pkg-config (shared, and --static
# into a fully static executable). Runs each consumer and the installed
# numaslub-run. The ctest test `consumer` runs it.
#   bash scripts/check-install.sh [BUILD_DIR [C_COMPILER]]
# Exits non-zero, naming the failed part, if any part fails.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build}" && pwd)" || exit 1
CC="${2:-${CC:-cc}}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/numaslub-install.XXXXXX")" || exit 1
trap 'rm -rf "$TMP"' EXIT
PREFIX="$TMP/prefix"
FAILED=()

step() {
  local name=$1
  shift
  echo "== $name"
  if ! "$@"; then
    echo "check-install: FAILED: $name" >&2
    FAILED+=("$name")
    return 1
  fi
}

step "cmake --install $BUILD --prefix <tmp>" cmake --install "$BUILD" --prefix "$PREFIX" >/dev/null ||
  exit 1

# find_package(numaslub): the exported targets, shared and static.
if step "find_package: configure" cmake -S "$ROOT/tests/consumer" -B "$TMP/cmake" \
  -DCMAKE_PREFIX_PATH="$PREFIX" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  step "find_package: build" cmake --build "$TMP/cmake" >/dev/null; then
  step "find_package: run shared" "$TMP/cmake/consumer_shared"
  step "find_package: run static" "$TMP/cmake/consumer_static"
fi

# pkg-config, from the installed numaslub.pc only (no system paths).
PC_DIR="$(dirname "$(find "$PREFIX" -name numaslub.pc -print -quit)")"
export PKG_CONFIG_PATH="$PC_DIR" PKG_CONFIG_LIBDIR="$PC_DIR"
if step "pkg-config: numaslub.pc" pkg-config --exists --print-errors numaslub; then
  read -r -a CFLAGS <<<"$(pkg-config --cflags numaslub)"
  read -r -a LIBS <<<"$(pkg-config --libs numaslub)"
  read -r -a STATIC_LIBS <<<"$(pkg-config --libs --static numaslub)"
  LIBDIR="$(pkg-config --variable=libdir numaslub)"
  if step "pkg-config: build shared" "$CC" -O2 "${CFLAGS[@]}" "$ROOT/tests/consumer/consumer.c" \
    -o "$TMP/pc_shared" "${LIBS[@]}" -Wl,-rpath,"$LIBDIR"; then
    step "pkg-config: run shared" "$TMP/pc_shared"
  fi
  if step "pkg-config: build --static" "$CC" -O2 -static "${CFLAGS[@]}" \
    "$ROOT/tests/consumer/consumer.c" -o "$TMP/pc_static" "${STATIC_LIBS[@]}"; then
    step "pkg-config: run --static" "$TMP/pc_static"
  fi
fi

# The installed launcher finds the installed library.
run_launcher() {
  local out
  out="$("$PREFIX/bin/numaslub-run" --stats -- env true 2>&1)" || {
    echo "$out"
    return 1
  }
  grep -q 'kmalloc-112' <<<"$out" || {
    echo "$out"
    echo "no heap report: the library was not preloaded" >&2
    return 1
  }
}
step "numaslub-run --stats" run_launcher

if [ "${#FAILED[@]}" -ne 0 ]; then
  printf 'check-install: failed: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "check-install: find_package and pkg-config consumers, shared and static, run on numaslub"
