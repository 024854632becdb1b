#!/usr/bin/env bash
# Side-by-side: borderlens GBDT vs LightGBM (native categoricals) on the same features and split.
# Usage: scripts/compare.sh [LABEL] [EXTRA borderlens train options...]
#   LABEL: fraud (default) or critical. Needs `pip install -r scripts/requirements-compare.txt`.
# Both tools train the same number of trees with the same leaves and learning rate on every labelled
# declaration up to UNTIL (default 2020-12-31) and are evaluated on FROM..TO (default 2021-Q1),
# never seen in training.
set -euo pipefail
cd "$(dirname "$0")/.."
label="${1:-fraud}"; shift || true
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bl="${BORDERLENS:-target/release/borderlens}"
[ -x "$bl" ] || cargo build --release -q -p borderlens
opts=(--label "$label" --trees "${TREES:-300}" --leaves 31 --learning-rate 0.05 --no-early-stopping "$@")
"$bl" --db "$work/c.db" import data/sample/df_syn_train_eng.csv data/sample/df_syn_valid_eng.csv >/dev/null
until="${UNTIL:-2020-12-31}"; from="${FROM:-2021-01-01}"; to="${TO:-2021-03-31}"
"$bl" --db "$work/c.db" train --until "$until" --model cmp "${opts[@]}" >/dev/null
"$bl" --db "$work/c.db" --json evaluate --model cmp --from "$from" --to "$to" > "$work/borderlens.json"
"$bl" --db "$work/c.db" export-features --until "$until" --from "$from" --to "$to" --out "$work/export" "${opts[@]}" >/dev/null
python3 scripts/compare_lightgbm.py "$work/export" --borderlens-json "$work/borderlens.json" ${JSON:+--json}
