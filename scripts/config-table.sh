#!/usr/bin/env bash
# Prints the NUMASLUB_CONF options as the Markdown table in README.md,
# generated from `numaslub-info --config-help` (build it first).
#   bash scripts/config-table.sh [path/to/numaslub-info]
# With --check, compares the generated table with README.md's (the table
# under "## Configuration") and fails, showing the difference, when they
# differ; CI runs this as the ctest test `config_table`.
#   bash scripts/config-table.sh --check [path/to/numaslub-info]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHECK=0
if [ "${1:-}" = "--check" ]; then
  CHECK=1
  shift
fi
INFO="${1:-$ROOT/build/numaslub-info}"

generate() {
  echo '| option | type | default | description |'
  echo '|---|---|---|---|'
  "$INFO" --config-help | awk '{
    name = $1; type = $2; def = $3
    help = $0
    for (i = 1; i <= 3; i++) { sub(/^[ \t]*[^ \t]+/, "", help) }
    sub(/^[ \t]+/, "", help)
    gsub(/\|/, "\\|", help)
    gsub(/</, "\\&lt;", help); gsub(/>/, "\\&gt;", help)
    printf "| `%s` | %s | `%s` | %s |\n", name, type, def, help
  }'
}

if [ "$CHECK" = 0 ]; then
  generate
  exit 0
fi

# README's table: the first run of "|" lines after the "## Configuration" heading.
readme_table() {
  awk '/^## Configuration/ { sect = 1; next }
       /^## / { sect = 0 }
       sect && /^\|/ { print; intable = 1; next }
       sect && intable { exit }' "$ROOT/README.md"
}

generated=$(generate) || {
  echo "config-table: $INFO --config-help failed" >&2
  exit 1
}
if [ -z "$(readme_table)" ]; then
  echo "config-table: no table under '## Configuration' in README.md" >&2
  exit 1
fi
if ! diff -u --label README.md --label "numaslub-info --config-help" \
  <(readme_table) <(printf '%s\n' "$generated"); then
  echo "config-table: README.md's configuration table is out of date; regenerate it with" \
    "bash scripts/config-table.sh and paste it under '## Configuration'" >&2
  exit 1
fi
echo "config-table: README.md matches numaslub-info --config-help ($(($(wc -l <<<"$generated") - 2)) options)"
