#!/usr/bin/env bash
# Regenerates docs/misuse.md, the table of which heap misuse each mode
# (default, slub_debug=F, Z, P, U, FZPU) catches, from the misuse suite
# (tests/hostile/misuse.c, --table). Build it first.
#   bash scripts/misuse-table.sh [build dir]
set -euo pipefail
BUILD="${1:-build}"
cd "$(dirname "$0")/.."
"$BUILD/tests/hostile/hostile_misuse_static" --table > docs/misuse.md.new
mv docs/misuse.md.new docs/misuse.md
echo "docs/misuse.md: $(grep -c '^| .*`' docs/misuse.md) cases"
