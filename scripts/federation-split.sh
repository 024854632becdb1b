#!/usr/bin/env bash
# Splits the KAIST-format declarations by customs office between three federation nodes, as
# issue 17 measures: node-a gets office 40, node-b office 20, node-c every other office.
#
#   scripts/federation-split.sh OUT_DIR [CSV...]
#
# Default inputs: the bundled sample (data/sample/df_syn_train_eng.csv, 2020, and
# df_syn_valid_eng.csv, 2021-Q1). Writes OUT_DIR/node-{a,b,c}/FILE for each input, header kept,
# and prints the row counts. The office is the third column ("Office ID"); the script refuses a
# file whose header says otherwise.
set -euo pipefail
out=${1:?usage: scripts/federation-split.sh OUT_DIR [CSV...]}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -eq 0 ]; then
  set -- "$root/data/sample/df_syn_train_eng.csv" "$root/data/sample/df_syn_valid_eng.csv"
fi
mkdir -p "$out/node-a" "$out/node-b" "$out/node-c"
for csv in "$@"; do
  name=$(basename "$csv")
  header=$(head -n 1 "$csv")
  if [ "$(printf '%s' "$header" | cut -d, -f3)" != "Office ID" ]; then
    echo "$csv: line 1: the third column is not \"Office ID\"" >&2
    exit 1
  fi
  awk -F, -v a="$out/node-a/$name" -v b="$out/node-b/$name" -v c="$out/node-c/$name" '
    NR == 1 { print > a; print > b; print > c; next }
    $3 == "40" { print > a; next }
    $3 == "20" { print > b; next }
    { print > c }
  ' "$csv"
  for node in a b c; do
    echo "node-$node/$name: $(($(wc -l < "$out/node-$node/$name") - 1)) declarations"
  done
done
