#!/usr/bin/env bash
# Recall of the rare `critical` label (Critical Fraud == 2, about 1% of items) at 1, 2, 5 and 10%
# inspected, for each imbalance option. Train on 2020, evaluate on 2021-Q1.
# Usage: scripts/imbalance.sh [extra borderlens train options...]
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bl="${BORDERLENS:-target/release/borderlens}"
[ -x "$bl" ] || cargo build --release -q -p borderlens
"$bl" --db "$work/i.db" import data/sample/df_syn_train_eng.csv data/sample/df_syn_valid_eng.csv >/dev/null
printf '%-13s %9s %9s %9s %9s %8s %8s %6s\n' option recall@1% recall@2% recall@5% recall@10% pr_auc roc_auc trees
for option in none class-weight oversample undersample smote; do
  "$bl" --db "$work/i.db" --json train --label critical --until 2020-12-31 --model "c-$option" --imbalance "$option" "$@" > "$work/t.json"
  "$bl" --db "$work/i.db" --json evaluate --model "c-$option" --from 2021-01-01 --to 2021-03-31 > "$work/e.json"
  python3 - "$option" "$work/e.json" "$work/t.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[2])); t = json.load(open(sys.argv[3]))
r = e["recall_at"]
print(f'{sys.argv[1]:<13} {r["1"]:9.3f} {r["2"]:9.3f} {r["5"]:9.3f} {r["10"]:9.3f} {e["pr_auc"]:8.3f} {e["roc_auc"]:8.3f} {t["n_trees"]:6d}')
PY
done
