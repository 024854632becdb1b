#!/usr/bin/env python3
"""Benchmark LightGBM (+ shap) on a borderlens feature export.

    python scripts/bench_lightgbm.py DIR [--repeat 3] [--min-time 0.2] --json

Same train/test files and params as compare_lightgbm.py. Measured with
time.perf_counter, best of --repeat:

  train_seconds               lgb.Dataset construction (binning) + lgb.train,
                              num_threads=2 (parts: dataset_seconds, boost_seconds
                              of the best run)
  predict_rows_per_s          booster.predict(X_test, raw_score=True)
  shap_rows_per_s             shap.TreeExplainer(model).shap_values(X_test), the
                              call only; construction is reported separately
                              (shap_explainer_construct_seconds)
  lgb_pred_contrib_rows_per_s booster.predict(X_test, pred_contrib=True)

A call shorter than --min-time is looped until --min-time has elapsed and the
per-call mean is used for that repeat (so small test sets give stable numbers).
All prediction-side calls use num_threads=2 and a float64 numpy matrix (no
pandas conversion inside the timed region).

CAVEAT (shap): for a LightGBM Booster with the default
feature_perturbation="tree_path_dependent" and no background data, shap does not
run its own Tree SHAP: TreeExplainer.shap_values() forwards to
booster.predict(X, pred_contrib=True), i.e. LightGBM's C++ implementation
(without num_threads; OMP_NUM_THREADS=2 is set at import time to pin it). So shap_rows_per_s is "LightGBM's
TreeSHAP + shap's Python overhead" and tracks lgb_pred_contrib_rows_per_s;
"shap_backend" says which path ran.

For reference the script also times shap's *own* C-extension Tree SHAP
(single-threaded) by forcing explainer.model.model_type = "internal" -- a hack
on shap internals, reported as shap_native_rows_per_s (null if it fails; skip
with --no-shap-native). shap 0.51 parses LightGBM categorical ("==") splits but
its native path gets them WRONG (checked: max |diff| vs pred_contrib ~1.8 on the
fake export, ~1e-15 when the same model is trained without categoricals), so
shap_native_matches_pred_contrib tells whether that number is for correct
output. Read it as a speed reference only.

Input format: the model is trained on a plain float64 matrix with
categorical_feature indices (codes as floats, NaN = missing), and the test
matrix is passed the same way to predict/shap -- no pandas 'category' dtype, so
there is no category-mapping (pandas_categorical) mismatch to worry about. If
you ever train from a DataFrame with 'category' columns, pass shap a frame with
identical categories or LightGBM will remap/reject codes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

NUM_THREADS = 2
# shap's forwarding call (booster.predict(X, pred_contrib=True)) passes no
# num_threads, and LightGBM's predict does not reuse the training params, so it
# would use every core. Pin the OpenMP default before lightgbm is loaded so that
# all timed calls run with NUM_THREADS threads.
os.environ["OMP_NUM_THREADS"] = str(NUM_THREADS)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _export import lgb_params, load_or_die  # noqa: E402


def timed(fn, repeat, min_time):
    """Best (over `repeat`) per-call seconds; returns (seconds, last_result)."""
    best, result = float("inf"), None
    for _ in range(repeat):
        calls, t0 = 0, time.perf_counter()
        while True:
            result = fn()
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = min(best, elapsed / calls)
    return best, result


def main(argv=None):
    ap = argparse.ArgumentParser(description="Benchmark LightGBM / shap on a borderlens export.")
    ap.add_argument("dir", help="export directory (train.csv, test.csv, meta.json)")
    ap.add_argument("--repeat", type=int, default=3, help="best of N (default 3)")
    ap.add_argument("--min-time", type=float, default=0.2,
                    help="loop prediction-side calls until this many seconds per repeat (default 0.2; 0 = single call)")
    ap.add_argument("--no-shap-native", action="store_true",
                    help="skip the shap-native (forced internal path) reference timing")
    ap.add_argument("--json", action="store_true", help="print one JSON object (the only output format)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    import lightgbm as lgb
    import shap

    exp = load_or_die(args.dir)
    params = lgb_params(exp.meta["params"], num_threads=NUM_THREADS)
    n_rounds = params.pop("num_iterations")
    cat_idx = [exp.feature_names.index(c) for c in exp.categorical]
    X_train = np.ascontiguousarray(exp.train.X.to_numpy(dtype=np.float64))
    X_test = np.ascontiguousarray(exp.test.X.to_numpy(dtype=np.float64))
    n_test = X_test.shape[0]

    # --- training (fresh Dataset each run so binning is included) -------------
    best_train, parts, booster = float("inf"), None, None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ds = lgb.Dataset(X_train, label=exp.train.label, weight=exp.train.weight,
                         feature_name=exp.feature_names, categorical_feature=cat_idx,
                         params=params, free_raw_data=True)
        ds.construct()
        t1 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            b = lgb.train(params, ds, num_boost_round=n_rounds)
        t2 = time.perf_counter()
        if t2 - t0 < best_train:
            best_train, parts, booster = t2 - t0, (t1 - t0, t2 - t1), b

    # --- prediction ------------------------------------------------------------
    t_pred, raw = timed(lambda: booster.predict(X_test, raw_score=True, num_threads=NUM_THREADS),
                        args.repeat, args.min_time)
    t_contrib, contrib = timed(lambda: booster.predict(X_test, pred_contrib=True, num_threads=NUM_THREADS),
                               args.repeat, args.min_time)

    # --- shap --------------------------------------------------------------------
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_construct, explainer = timed(lambda: shap.TreeExplainer(booster), args.repeat, 0.0)
        # shap's forwarding call passes no num_threads: OMP_NUM_THREADS (set at
        # the top) keeps it at NUM_THREADS.
        t_shap, sv = timed(lambda: explainer.shap_values(X_test), args.repeat, args.min_time)
    sv = np.asarray(sv)
    if sv.ndim == 3:  # older shap versions: list [neg, pos] for binary
        sv = sv[-1]
    if isinstance(sv, list):
        sv = np.asarray(sv[-1])
    ev = np.ravel(explainer.expected_value)[-1]
    shap_additivity = float(np.max(np.abs(sv.sum(axis=1) + ev - raw)))
    contrib_additivity = float(np.max(np.abs(contrib.sum(axis=1) - raw)))
    shap_vs_contrib = float(np.max(np.abs(sv - contrib[:, :-1])))
    uses_cext_shortcut = explainer.feature_perturbation == "tree_path_dependent" and explainer.data is None
    backend = ("lightgbm_pred_contrib (shap forwards to LightGBM C++)" if uses_cext_shortcut
               else "shap_native")

    # shap's own algorithm, forced (reference only; see module docstring).
    t_native = native_diff = None
    if not args.no_shap_native:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ex2 = shap.TreeExplainer(booster)
                if getattr(ex2.model, "trees", None) is None:
                    raise RuntimeError("shap could not parse the trees")
                ex2.model.model_type = "internal"
                t_native, sv2 = timed(lambda: ex2.shap_values(X_test, check_additivity=False),
                                      args.repeat, args.min_time)
            sv2 = np.asarray(sv2)
            native_diff = float(np.max(np.abs(sv2.reshape(contrib[:, :-1].shape) - contrib[:, :-1])))
        except Exception as e:  # internals changed: report null, keep going
            sys.stderr.write(f"warning: shap native timing skipped: {e}\n")
            t_native = native_diff = None

    n_cat_splits = sum(
        1 for t in booster.dump_model()["tree_info"] for _ in _iter_cat_splits(t["tree_structure"]))

    out = {
        "train_seconds": best_train,
        "predict_rows_per_s": n_test / t_pred,
        "shap_rows_per_s": n_test / t_shap,
        "lgb_pred_contrib_rows_per_s": n_test / t_contrib,
        "n_train": int(X_train.shape[0]),
        "n_test": int(n_test),
        "n_trees": int(booster.num_trees()),
        "num_leaves": int(params["num_leaves"]),
        "lightgbm_version": lgb.__version__,
        "shap_version": shap.__version__,
        # extras
        "dataset_seconds": parts[0],
        "boost_seconds": parts[1],
        "shap_explainer_construct_seconds": t_construct,
        "shap_backend": backend,
        "shap_native_rows_per_s": (n_test / t_native) if t_native else None,
        "shap_native_max_abs_diff_vs_pred_contrib": native_diff,
        "shap_native_matches_pred_contrib": (native_diff < 1e-6) if native_diff is not None else None,
        "categorical_splits_in_model": n_cat_splits,
        "max_abs_err_shap_additivity": shap_additivity,
        "max_abs_err_pred_contrib_additivity": contrib_additivity,
        "max_abs_diff_shap_vs_pred_contrib": shap_vs_contrib,
        "num_threads": NUM_THREADS,
        "repeat": args.repeat,
        "min_time": args.min_time,
        "n_features": len(exp.feature_names),
        "n_categorical": len(exp.categorical),
    }
    print(json.dumps(out, indent=2))


def _iter_cat_splits(node):
    stack = [node]
    while stack:
        nd = stack.pop()
        if "split_index" in nd:
            if nd.get("decision_type") == "==":
                yield nd
            stack.append(nd["left_child"])
            stack.append(nd["right_child"])


if __name__ == "__main__":
    main()
