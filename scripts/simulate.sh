#!/usr/bin/env bash
# The replay simulator on the customs-declarations data (train + valid as one stream), capacity
# 5%, for several seeds: one markdown table row per seed and policy.
# Usage: scripts/simulate.sh [seeds...] [-- extra borderlens simulate options...]
# Default seeds: 42 7 2026. Data: ../shared/data/customs-declarations when present, else the
# identical bundled sample.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=(); extra=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; extra=("$@"); break; fi
  seeds+=("$1"); shift
done
[ ${#seeds[@]} -gt 0 ] || seeds=(42 7 2026)
data=../shared/data/customs-declarations
[ -d "$data" ] || data=data/sample
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
bl="${BORDERLENS:-target/release/borderlens}"
[ -x "$bl" ] || cargo build --release -q -p borderlens
"$bl" --db "$work/s.db" import "$data/df_syn_train_eng.csv" "$data/df_syn_valid_eng.csv" >/dev/null
echo "| seed | policy | precision | recall | revenue share | last-quarter revenue share | estimator | weekly coverage | mean abs error | pooled estimate (95% CI) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for seed in "${seeds[@]}"; do
  "$bl" --db "$work/s.db" --json simulate --capacity 5 --seed "$seed" "${extra[@]}" > "$work/r.json"
  python3 - "$seed" "$work/r.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
for name, p in r["policies"].items():
    e = p["pooled_estimate"]
    print(f'| {sys.argv[1]} | {name} | {p["precision"]:.3f} | {p["recall"]:.3f} | {p["revenue_share"]:.3f} '
          f'| {p["last_quarter_revenue_share"]:.3f} | {p["estimator"]} | {p["estimate_coverage"]:.2f} '
          f'| {p["mean_abs_estimate_error"]:.3f} | {e["rate"]:.3f} ({e["low"]:.3f}–{e["high"]:.3f}) |')
print(f'| {sys.argv[1]} | *truth* | | | | | | | | {r["true_rate"]:.3f} |')
PY
done
