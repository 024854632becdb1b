#!/usr/bin/env bash
# borderlens link beside Splink 5 on FEBRL4 (A vs B), in the same run on the same machine:
# F1 against the truth, and CPU seconds of the whole run (ours: the process, reading to writing;
# Splink: training + prediction as scripts/bench_splink.py measures them).
# Usage: scripts/bench_link.sh   (Splink side needs /tmp/venv-splink, see scripts/bench_splink.md)
# Generated data at any size, with records/s and peak memory: `borderlens bench link --records N`.
set -euo pipefail
cd "$(dirname "$0")/.."
bl="${BORDERLENS:-target/release/borderlens}"
[ -x "$bl" ] || cargo build --release -q -p borderlens
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
a=data/linkage/dataset4a.csv; b=data/linkage/dataset4b.csv
score() {
  python3 - "$1" <<'PY'
import csv, sys
links = [(r['left_id'], r['right_id']) for r in csv.DictReader(open(sys.argv[1])) if r['linked'] == '1']
tp = sum(1 for x, y in links if x.split('-')[1] == y.split('-')[1])
print(f"precision {tp/max(1,len(links)):.4f} recall {tp/5000:.4f} F1 {2*tp/(len(links)+5000):.4f}")
PY
}
for mode in inferred given; do
  extra=()
  [ "$mode" = given ] && extra=(--settings "$work/inferred/settings.toml")
  /usr/bin/time -f "%U %S %e %M" -o "$work/time" \
    "$bl" --json link --left "$a" --right "$b" --id-column rec_id --out "$work/$mode" "${extra[@]}" > "$work/$mode.json"
  read -r user sys wall rss < "$work/time"
  echo "borderlens ($mode settings): $(score "$work/$mode/pairs.csv"); CPU $(python3 -c "print(f'{$user+$sys:.2f}')") s, wall $wall s, peak RSS $((rss/1024)) MiB"
done
if [ -x /tmp/venv-splink/bin/python ]; then
  # Splink's FEBRL4 example samples u from 10^7 pairs; 10^6 is its default and the faster reference.
  for u in 1e7 1e6; do
    /tmp/venv-splink/bin/python scripts/bench_splink.py --dataset febrl4 --threads 2 --u-max-pairs "$u" \
      --out "$work/splink-$u.json" > /dev/null 2> "$work/splink-$u.log"
    python3 - "$work/splink-$u.json" "$u" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r = r[0] if isinstance(r, list) else r
print(f"splink {r['splink_version']} (u from {sys.argv[2]} pairs): precision {r['precision']:.4f} recall {r['recall']:.4f} F1 {r['f1']:.4f}; "
      f"CPU train {r['train_cpu_s']:.2f} s + predict {r['predict_cpu_s']:.2f} s, wall {r['train_wall_s']+r['predict_wall_s']:.2f} s, "
      f"peak RSS {r.get('peak_rss_mb', 0):.0f} MiB")
PY
  done
else
  echo "splink: not installed (python3 -m venv /tmp/venv-splink && /tmp/venv-splink/bin/pip install -r scripts/requirements-linkage.txt)"
fi
