"""Evaluation metrics for borderlens risk scores, mirroring the Rust definitions.

For each inspection rate k in (1, 2, 5, 10) percent the top ceil(n*k/100) rows
by score are "inspected". Rows are ordered by a *stable* descending sort on the
score, so ties keep their original row order (first row wins).

    precision_at[k] = positives selected / selection size      (0 if size 0)
    recall_at[k]    = positives selected / all positives       (0 if none)
    revenue_at[k]   = duty of positive selected rows
                      / duty of all positive rows              (0 if denom 0)
    pr_auc          = sklearn.metrics.average_precision_score
    roc_auc         = sklearn.metrics.roc_auc_score

Degenerate cases follow crates/risk/src/metrics.rs (not sklearn, which warns or
raises): pr_auc = 0.0 when there are no positives, roc_auc = 0.5 when only one
class is present, ratios with a denominator <= 0 are 0.0. Ordering uses the
IEEE total order like Rust's f64::total_cmp, so 0.0 ranks above -0.0 (they are
not a tie); NaN scores are rejected.

Usable as a library (`compute_metrics(scores, labels, duty)`) or from the
command line on a CSV holding a score column, `__label` and `__duty`:

    python scripts/metrics.py scores.csv [--score-col score]
"""

from __future__ import annotations

import json
import sys

import numpy as np

RATES = (1, 2, 5, 10)


def _as_1d(name, values, dtype):
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def selection_size(n: int, k: int) -> int:
    """ceil(n * k / 100) in exact integer arithmetic."""
    return (n * k + 99) // 100


def _ratio(a, b) -> float:
    return float(a) / float(b) if b > 0 else 0.0


def ranking(scores) -> np.ndarray:
    """Row indices by descending score, ties in row order (Rust `ranking`).

    Sorts on the IEEE-754 total-order key (as f64::total_cmp), so 0.0 > -0.0.
    """
    bits = np.ascontiguousarray(scores, dtype=np.float64).view(np.int64)
    key = bits ^ ((bits >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))
    return np.argsort(~key, kind="stable")  # ~key is strictly decreasing in key


def compute_metrics(scores, labels, duty) -> dict:
    scores = _as_1d("scores", scores, np.float64)
    labels_raw = _as_1d("labels", labels, np.float64)
    duty = _as_1d("duty", duty, np.float64)
    n = scores.shape[0]
    if labels_raw.shape[0] != n or duty.shape[0] != n:
        raise ValueError(
            f"length mismatch: scores={n} labels={labels_raw.shape[0]} duty={duty.shape[0]}"
        )
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if not np.isin(labels_raw, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if np.isnan(duty).any():
        raise ValueError("duty contains NaN")
    labels = labels_raw.astype(np.int64)
    pos_mask = labels == 1
    positives = int(pos_mask.sum())
    pos_duty_total = float(duty[pos_mask].sum())

    order = ranking(scores)
    sorted_pos = pos_mask[order]
    sorted_pos_duty = np.where(sorted_pos, duty[order], 0.0)

    precision_at, recall_at, revenue_at = {}, {}, {}
    for k in RATES:
        m = selection_size(n, k)
        tp = int(sorted_pos[:m].sum())
        rev = float(sorted_pos_duty[:m].sum())
        precision_at[str(k)] = _ratio(tp, m)
        recall_at[str(k)] = _ratio(tp, positives)
        revenue_at[str(k)] = _ratio(rev, pos_duty_total)

    pr_auc, roc_auc = 0.0, 0.5
    if positives > 0:
        from sklearn.metrics import average_precision_score

        pr_auc = float(average_precision_score(labels, scores))
    if 0 < positives < n:
        from sklearn.metrics import roc_auc_score

        roc_auc = float(roc_auc_score(labels, scores))

    return {
        "precision_at": precision_at,
        "recall_at": recall_at,
        "revenue_at": revenue_at,
        "pr_auc": pr_auc,
        "roc_auc": roc_auc,
        "n": int(n),
        "positives": positives,
    }


def flatten(metrics: dict) -> list[tuple[str, object]]:
    """(name, value) rows in a fixed display order, e.g. ('precision@5%', 0.4)."""
    rows = [("n", metrics.get("n")), ("positives", metrics.get("positives")),
            ("pr_auc", metrics.get("pr_auc")), ("roc_auc", metrics.get("roc_auc"))]
    for key, label in (("precision_at", "precision"), ("recall_at", "recall"),
                       ("revenue_at", "revenue")):
        sub = metrics.get(key) or {}
        for k in RATES:
            rows.append((f"{label}@{k}%", sub.get(str(k))))
    return rows


def _main(argv):
    import argparse

    import pandas as pd

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="CSV with a score column, __label and __duty")
    ap.add_argument("--score-col", default="score")
    args = ap.parse_args(argv)
    df = pd.read_csv(args.csv)
    missing = [c for c in (args.score_col, "__label", "__duty") if c not in df.columns]
    if missing:
        sys.exit(f"error: {args.csv} lacks column(s) {missing}")
    out = compute_metrics(df[args.score_col], df["__label"], df["__duty"])
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    _main(sys.argv[1:])
