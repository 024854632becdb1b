#!/usr/bin/env bash
# Issue 17's case for pooling, measured: the sample's declarations split by customs office
# between three nodes (scripts/federation-split.sh); each node trains on its own 2020 alone
# (`borderlens train`, the defaults an administration would use, and the federated options for a
# like-for-like row), the three train one model together over HTTP (`node serve` +
# `federate train`), and every model is evaluated on the node's own 2021-Q1. Prints a Markdown
# table (precision at 5 % and 10 % inspected, ROC-AUC) and the federated training time.
#
#   scripts/federation-table.sh [TREES]      (default 300; needs target/release/borderlens)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
B=${BORDERLENS:-$root/target/release/borderlens}
trees=${1:-300}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$root/scripts/federation-split.sh" "$work" > /dev/null
token=$("$B" node token --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
sha=$(printf %s "$token" | sha256sum | cut -d' ' -f1)
: > "$work/nodes.toml"
for n in a b c; do
  db="$work/node-$n.db"
  "$B" --db "$db" import "$work/node-$n/df_syn_train_eng.csv" "$work/node-$n/df_syn_valid_eng.csv" > /dev/null
  "$B" --db "$db" train --until 2020-12-31 --model local > /dev/null
  "$B" --db "$db" train --until 2020-12-31 --model local-fixed --trees "$trees" --no-early-stopping > /dev/null
  printf '[[partner]]\nname = "coordinator"\ntoken_sha256 = "%s"\nnode_token = "node-%s-answers-%s"\n' \
    "$sha" "$n" "$token" > "$work/partners-$n.toml"
  "$B" --db "$db" --json node serve --addr 127.0.0.1:0 --partners "$work/partners-$n.toml" \
    > "$work/node-$n.out" 2> "$work/node-$n.err" &
  pids+=($!)
done
for n in a b c; do
  for _ in $(seq 100); do [ -s "$work/node-$n.out" ] && break; sleep 0.1; done
  url=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' "$work/node-$n.out")
  printf '[[node]]\nname = "node-%s"\nurl = "%s"\ntoken = "%s"\nnode_token = "node-%s-answers-%s"\n\n' \
    "$n" "$url" "$token" "$n" "$token" >> "$work/nodes.toml"
done
"$B" --json federate train --nodes "$work/nodes.toml" --until 2020-12-31 --model federated \
  --trees "$trees" > "$work/federate.json"
seconds=$(python3 -c 'import json,sys; print("%.1f" % json.load(open(sys.argv[1]))["seconds"])' "$work/federate.json")
echo "| node | offices | 2021-Q1 declarations (fraud) | model | precision at 5 % | precision at 10 % | ROC-AUC |"
echo "| --- | --- | ---: | --- | ---: | ---: | ---: |"
for n in a b c; do
  case $n in a) offices="40";; b) offices="20";; c) offices="all others";; esac
  for model in local local-fixed federated; do
    "$B" --db "$work/node-$n.db" --json evaluate --model "$model" --from 2021-01-01 --to 2021-03-31 \
      | python3 -c '
import json, sys
r = json.load(sys.stdin)
names = {"local": "local only (train defaults)", "local-fixed": "local only ('"$trees"' trees, as federated)", "federated": "federated ('"$trees"' trees)"}
print("| node-%s | %s | %d (%d) | %s | %.3f | %.3f | %.3f |" % ("'"$n"'", "'"$offices"'", r["n"], r["positives"], names[r["model"]], r["precision_at"]["5"], r["precision_at"]["10"], r["roc_auc"]))'
  done
done
echo
echo "federated training over HTTP on loopback: ${seconds} s for ${trees} trees"
