#!/usr/bin/env bash
# Prints the NUMASLUB_CONF options as the Markdown table in README.md,
# generated from `numaslub-info --config-help` (build it first).
#   bash scripts/config-table.sh [path/to/numaslub-info]
set -euo pipefail
INFO="${1:-build/numaslub-info}"
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
