#!/usr/bin/env python3
"""Write a synthetic `borderlens export-features` directory for testing scripts.

    python scripts/_make_fake_export.py DIR [--n-train 4000] [--n-test 1500] [--seed 7]
                                            [--fake-eval FILE]

3 numeric features (some missing) + 2 categorical (integer codes, some missing),
~20% positives, in exactly the export format (train.csv, test.csv, meta.json).
--fake-eval FILE additionally writes a *fake* `borderlens evaluate --json`
(metrics of a noisy linear score on test.csv) to exercise --borderlens-json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

CARD_ORIGIN, CARD_HS = 12, 40


def _simulate(rng, n, start_id):
    value = rng.lognormal(7.0, 1.2, n)                       # declared value
    weight_kg = rng.lognormal(3.0, 1.0, n)
    unit_value = value / weight_kg
    tax_rate = rng.choice([0.0, 5.0, 8.0, 12.0, 20.0], n)
    origin = rng.integers(0, CARD_ORIGIN, n).astype(float)
    hs = np.minimum(rng.zipf(1.6, n) - 1, CARD_HS - 1).astype(float)
    # latent risk: cheap unit values, some origins, some HS chapters, high tax
    origin_eff = np.linspace(-1.0, 1.5, CARD_ORIGIN)[origin.astype(int)]
    hs_eff = np.where(hs.astype(int) % 7 == 3, 1.2, 0.0)
    logit = (-2.65 - 0.6 * (np.log(unit_value) - np.log(unit_value).mean())
             + origin_eff + hs_eff + 0.05 * tax_rate + rng.normal(0, 0.8, n))
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    duty = value * tax_rate / 100.0
    feats = {
        "declared_value": np.log1p(value),
        "unit_value_ratio": unit_value,
        "tax_rate": tax_rate,
        "origin_country": origin,
        "hs_chapter": hs,
    }
    # missing values
    feats["unit_value_ratio"][rng.random(n) < 0.05] = np.nan
    feats["declared_value"][rng.random(n) < 0.02] = np.nan
    feats["origin_country"][rng.random(n) < 0.03] = np.nan
    feats["hs_chapter"][rng.random(n) < 0.03] = np.nan
    sample_w = np.where(label == 1, 1.0, rng.choice([1.0, 1.0, 1.0, 0.5], n))
    ids = [f"D{start_id + i:07d}" for i in range(n)]
    return feats, label, sample_w, duty, ids, logit


def _write_csv(path, names, kinds, feats, label, w, duty, ids):
    with open(path, "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(names + ["__label", "__weight", "__duty", "__id"])
        for i in range(len(label)):
            row = []
            for nm, kind in zip(names, kinds):
                v = feats[nm][i]
                if np.isnan(v):
                    row.append("")
                elif kind == "categorical":
                    row.append(str(int(v)))
                else:
                    row.append(repr(float(v)))
            row += [str(int(label[i])), repr(float(w[i])), repr(float(duty[i])), ids[i]]
            wr.writerow(row)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--n-train", type=int, default=4000)
    ap.add_argument("--n-test", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--fake-eval", metavar="FILE")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    os.makedirs(args.dir, exist_ok=True)
    features = [
        {"name": "declared_value", "kind": "numeric"},
        {"name": "unit_value_ratio", "kind": "numeric"},
        {"name": "tax_rate", "kind": "numeric"},
        {"name": "origin_country", "kind": "categorical", "cardinality": CARD_ORIGIN},
        {"name": "hs_chapter", "kind": "categorical", "cardinality": CARD_HS},
    ]
    names = [f["name"] for f in features]
    kinds = [f["kind"] for f in features]
    tr = _simulate(rng, args.n_train, 1)
    te = _simulate(rng, args.n_test, args.n_train + 1)
    _write_csv(os.path.join(args.dir, "train.csv"), names, kinds, *tr[:5])
    _write_csv(os.path.join(args.dir, "test.csv"), names, kinds, *te[:5])
    meta = {
        "label": "fraud",
        "features": features,
        "params": {
            "n_trees": 100, "learning_rate": 0.1, "num_leaves": 31, "max_depth": -1,
            "min_data_in_leaf": 20, "lambda_l2": 1.0, "max_bin": 255,
            "feature_fraction": 0.9, "bagging_fraction": 0.8, "cat_smooth": 10.0,
            "max_cat_threshold": 32, "min_data_per_group": 100, "seed": 42,
        },
    }
    with open(os.path.join(args.dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
    print(f"wrote {args.dir}: train={args.n_train} (pos {tr[1].mean():.1%}), "
          f"test={args.n_test} (pos {te[1].mean():.1%})")

    if args.fake_eval:
        from metrics import compute_metrics

        score = te[5] + rng.normal(0, 1.0, args.n_test)  # noisy oracle, stands in for borderlens
        with open(args.fake_eval, "w") as f:
            json.dump(compute_metrics(score, te[1], te[3]), f, indent=2)
        print(f"wrote fake borderlens evaluation {args.fake_eval}")


if __name__ == "__main__":
    main()
