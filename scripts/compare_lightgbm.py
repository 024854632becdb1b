#!/usr/bin/env python3
"""Train LightGBM on a borderlens feature export and compare its test metrics.

    python scripts/compare_lightgbm.py DIR [--borderlens-json FILE] [--json]

DIR is the output of `borderlens export-features` (train.csv, test.csv,
meta.json). LightGBM is trained on train.csv with the meta.json params (native
categorical handling on the categorical columns, __weight as sample weight) and
scored on test.csv; metrics are those of scripts/metrics.py.

With --borderlens-json FILE (output of `borderlens evaluate --json`, same keys)
a side-by-side table is printed (difference = borderlens - lightgbm). With
--json a single JSON object {"lightgbm": {...}[, "borderlens": {...}]} is
printed instead of tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _export import die, lgb_params, load_or_die  # noqa: E402
from metrics import compute_metrics, flatten  # noqa: E402


def train_lightgbm(exp, num_threads=2):
    import lightgbm as lgb

    params = lgb_params(exp.meta["params"], num_threads=num_threads)
    ds = lgb.Dataset(
        exp.train.X, label=exp.train.label, weight=exp.train.weight,
        feature_name=exp.feature_names, categorical_feature=exp.categorical,
        free_raw_data=False,
    )
    n_rounds = params.pop("num_iterations")  # == meta n_trees; passed as num_boost_round
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        booster = lgb.train(params, ds, num_boost_round=n_rounds)
    return booster, params


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _diff(b, l):
    if isinstance(b, (int, float)) and isinstance(l, (int, float)) and b is not None and l is not None:
        d = b - l
        return str(d) if isinstance(d, int) else f"{d:+.4f}"
    return "-"


def _load_borderlens(path):
    if not os.path.isfile(path):
        die(f"{path}: no such file")
    try:
        with open(path) as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        die(f"{path}: invalid JSON: {e}")
    # Tolerate the metrics being nested under a "metrics" key.
    if isinstance(obj, dict) and "precision_at" not in obj and isinstance(obj.get("metrics"), dict):
        obj = obj["metrics"]
    if not isinstance(obj, dict) or "precision_at" not in obj:
        die(f"{path}: expected an object with precision_at/recall_at/revenue_at/pr_auc/roc_auc/n/positives")
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train LightGBM on a borderlens export and print test metrics.")
    ap.add_argument("dir", help="export directory (train.csv, test.csv, meta.json)")
    ap.add_argument("--borderlens-json", metavar="FILE", help="`borderlens evaluate --json` output to compare against")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)

    exp = load_or_die(args.dir)
    bl = _load_borderlens(args.borderlens_json) if args.borderlens_json else None

    booster, params = train_lightgbm(exp)
    scores = booster.predict(exp.test.X, raw_score=True, num_threads=2)
    lg = compute_metrics(scores, exp.test.label, exp.test.duty)

    if args.json:
        out = {"lightgbm": lg}
        if bl is not None:
            out["borderlens"] = bl
        print(json.dumps(out, indent=2))
        return

    import lightgbm as lgb

    print(f"export: {exp.dir}  label={exp.meta.get('label')}  features={len(exp.feature_names)} "
          f"({len(exp.categorical)} categorical)  train={len(exp.train.label)}  test={len(exp.test.label)}")
    print(f"lightgbm {lgb.__version__}: {booster.num_trees()} trees, params={json.dumps(params, sort_keys=True)}")
    print()
    rows = flatten(lg)
    if bl is None:
        w = max(len(r[0]) for r in rows)
        print(f"{'metric':<{w}}  lightgbm")
        for name, v in rows:
            print(f"{name:<{w}}  {_fmt(v)}")
        return
    bl_vals = dict(flatten(bl))
    table = [("metric", "borderlens", "lightgbm", "difference")]
    for name, v in rows:
        b = bl_vals.get(name)
        table.append((name, _fmt(b), _fmt(v), _diff(b, v)))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    for i, r in enumerate(table):
        print(f"{r[0]:<{widths[0]}}  " + "  ".join(f"{c:>{widths[j + 1]}}" for j, c in enumerate(r[1:])))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if bl.get("n") is not None and bl.get("n") != lg["n"]:
        sys.stderr.write(f"warning: borderlens n={bl.get('n')} differs from test.csv n={lg['n']}\n")


if __name__ == "__main__":
    main()
