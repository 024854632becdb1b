"""Shared loader for a `borderlens export-features` directory.

DIR/train.csv, DIR/test.csv: feature columns (in meta order), then __label,
__weight, __duty, __id. Empty cell = missing. DIR/meta.json: label, features,
params (see scripts/README.md).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

import numpy as np

SPECIAL = ("__label", "__weight", "__duty", "__id")
REQUIRED_PARAMS = (
    "n_trees", "learning_rate", "num_leaves", "max_depth", "min_data_in_leaf",
    "lambda_l2", "max_bin", "feature_fraction", "bagging_fraction", "cat_smooth",
    "max_cat_threshold", "min_data_per_group", "seed",
)


class ExportError(Exception):
    pass


def die(msg: str):
    sys.stderr.write(f"error: {msg}\n")
    sys.exit(2)


@dataclass
class Split:
    X: "object"          # pandas DataFrame, float64 columns (categoricals as float codes, NaN = missing)
    label: np.ndarray    # int64 0/1
    weight: np.ndarray   # float64
    duty: np.ndarray     # float64
    ids: np.ndarray      # object (str)


@dataclass
class Export:
    dir: str
    meta: dict
    feature_names: list
    categorical: list    # names of categorical features
    train: Split
    test: Split


def _read_meta(path):
    try:
        with open(path) as f:
            meta = json.load(f)
    except json.JSONDecodeError as e:
        raise ExportError(f"{path}: invalid JSON: {e}")
    feats = meta.get("features")
    if not isinstance(feats, list) or not feats:
        raise ExportError(f"{path}: 'features' must be a non-empty list")
    for i, f in enumerate(feats):
        if not isinstance(f, dict) or "name" not in f or f.get("kind") not in ("numeric", "categorical"):
            raise ExportError(f"{path}: features[{i}] must be {{name, kind: numeric|categorical}}, got {f!r}")
    params = meta.get("params")
    if not isinstance(params, dict):
        raise ExportError(f"{path}: missing 'params' object")
    missing = [p for p in REQUIRED_PARAMS if p not in params]
    if missing:
        raise ExportError(f"{path}: params lacks {missing}")
    return meta


def _read_split(path, meta, which):
    import pandas as pd

    names = [f["name"] for f in meta["features"]]
    # Only the empty string means "missing": keep ids like "NA" intact.
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ExportError(f"{path}: file is empty")
    cols = list(df.columns)
    if cols[: len(names)] != names:
        raise ExportError(
            f"{path}: feature columns do not match meta.json features (in order).\n"
            f"  csv : {cols[: len(names)]}\n  meta: {names}")
    extra = [c for c in cols[len(names):] if c not in SPECIAL]
    lacking = [c for c in SPECIAL if c not in cols]
    if lacking or extra:
        raise ExportError(f"{path}: expected trailing columns {list(SPECIAL)}; missing {lacking}, unexpected {extra}")
    if len(df) == 0:
        raise ExportError(f"{path}: no data rows")

    def num(col):
        v = pd.to_numeric(df[col], errors="coerce")
        bad = v.isna() & df[col].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise ExportError(f"{path}: column {col!r} line {row + 2}: not a number: {df[col].iloc[row]!r}")
        return v.to_numpy(dtype=np.float64)

    X = {}
    for f in meta["features"]:
        v = num(f["name"])
        if f["kind"] == "categorical":
            ok = np.isnan(v) | ((v >= 0) & (v == np.floor(v)))
            if not ok.all():
                row = int(np.flatnonzero(~ok)[0])
                raise ExportError(f"{path}: categorical {f['name']!r} line {row + 2}: "
                                  f"expected a non-negative integer code, got {v[row]!r}")
            card = f.get("cardinality")
            if card is not None and (v[~np.isnan(v)] >= card).any():
                sys.stderr.write(f"warning: {which}: categorical {f['name']!r} has codes >= cardinality {card}\n")
        X[f["name"]] = v
    X = pd.DataFrame(X, columns=names)

    label = num("__label")
    if np.isnan(label).any() or not np.isin(label, (0.0, 1.0)).all():
        raise ExportError(f"{path}: __label must be 0/1 on every row")
    weight = num("__weight")
    if np.isnan(weight).any() or (weight < 0).any():
        raise ExportError(f"{path}: __weight must be present and >= 0 on every row")
    duty = num("__duty")
    if np.isnan(duty).any():
        n_missing = int(np.isnan(duty).sum())
        sys.stderr.write(f"warning: {which}: {n_missing} empty __duty cells treated as 0\n")
        duty = np.nan_to_num(duty, nan=0.0)
    ids = df["__id"].fillna("").to_numpy(dtype=object)
    return Split(X=X, label=label.astype(np.int64), weight=weight, duty=duty, ids=ids)


def load_export(d: str) -> Export:
    if not os.path.isdir(d):
        raise ExportError(f"{d}: not a directory")
    paths = {n: os.path.join(d, n) for n in ("meta.json", "train.csv", "test.csv")}
    missing = [n for n, p in paths.items() if not os.path.isfile(p)]
    if missing:
        raise ExportError(f"{d}: missing {', '.join(missing)} "
                          f"(expected the output of `borderlens export-features --out {d}`)")
    meta = _read_meta(paths["meta.json"])
    names = [f["name"] for f in meta["features"]]
    if len(set(names)) != len(names):
        raise ExportError(f"{paths['meta.json']}: duplicate feature names")
    cats = [f["name"] for f in meta["features"] if f["kind"] == "categorical"]
    train = _read_split(paths["train.csv"], meta, "train")
    test = _read_split(paths["test.csv"], meta, "test")
    return Export(dir=d, meta=meta, feature_names=names, categorical=cats, train=train, test=test)


def lgb_params(meta_params: dict, num_threads: int = 2) -> dict:
    """Map meta.json params onto LightGBM parameter names.

    Parameters not listed in meta.json keep LightGBM defaults; the ones most
    likely to matter for parity with the Rust GBDT are noted in README.md
    (max_cat_to_onehot=4, cat_l2=10, min_sum_hessian_in_leaf=1e-3,
    min_data_in_bin=3, lambda_l1=0, min_gain_to_split=0).
    """
    p = meta_params
    out = {
        "objective": "binary",
        "num_iterations": int(p["n_trees"]),
        "learning_rate": float(p["learning_rate"]),
        "num_leaves": int(p["num_leaves"]),
        "max_depth": int(p["max_depth"]),
        "min_data_in_leaf": int(p["min_data_in_leaf"]),
        "lambda_l2": float(p["lambda_l2"]),
        "max_bin": int(p["max_bin"]),
        "feature_fraction": float(p["feature_fraction"]),
        "bagging_fraction": float(p["bagging_fraction"]),
        "cat_smooth": float(p["cat_smooth"]),
        "max_cat_threshold": int(p["max_cat_threshold"]),
        "min_data_per_group": int(p["min_data_per_group"]),
        "seed": int(p["seed"]),
        "deterministic": True,
        # LightGBM's docs ask for an explicit row/col-wise choice alongside
        # deterministic=True; row-wise also skips the auto-selection probe.
        "force_row_wise": True,
        "num_threads": int(num_threads),
        "verbose": -1,
    }
    if out["bagging_fraction"] < 1.0:
        out["bagging_freq"] = 1
    return out


def load_or_die(d: str) -> Export:
    try:
        return load_export(d)
    except ExportError as e:
        die(str(e))
