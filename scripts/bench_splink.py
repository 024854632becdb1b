#!/usr/bin/env python3
"""Run Splink 5 (DuckDB backend) on the linkage benchmarks and score it.

Reference side of issue 4 (`borderlens link`). Prints one JSON object per
dataset on stdout (also written to --out as a JSON list).

Built-in recipes, following Splink's own documentation examples:
  febrl4        FEBRL4 A vs B, link_only, the "extended" model of Splink's
                FEBRL4 example (see FEBRL4_* below); truth: rec-N-org in A
                matches rec-N-dup-0 in B.
  transactions  origin vs destination, link_only, Splink's transactions
                example (amount, one-sided date window, memo Levenshtein),
                then single-best-link (one-to-one) clustering; truth:
                the ground_truth column.

    python scripts/bench_splink.py --dataset both --threads 2 --out splink.json
    python scripts/bench_splink.py --dataset febrl4 --left A.csv --right B.csv
    python scripts/bench_splink.py --left A.csv --right B.csv --id-column id \\
        --settings settings.json --truth-column cluster [--one-to-one]

Timings: wall (time.perf_counter) and CPU of the whole process, all threads
(time.process_time), taken in this process around
  train   = probability_two_random_records_match (estimate or fixed) + u by
            random sampling + every EM pass,
  predict = linker.inference.predict() (table materialised in DuckDB, not
            written to disk),
  cluster = single-best-link clustering at --oto-threshold (transactions:
            0.001, the example's predict threshold; else --threshold), for
            transactions or with --one-to-one.
Loading the CSVs and creating the Linker are timed apart (load_*).

Scoring: a predicted link is a scored pair with match_probability >=
--threshold. Truth pairs are all cross-file pairs (or within-file pairs for
dedupe) sharing a truth key, including pairs that blocking never generated,
so recall is against all true pairs. best_f1 sweeps every distinct
probability among the scored pairs. One-to-one: linked = the two records
share a cluster from cluster_using_single_best_links.

Exit code 2 with a message on bad input (missing file or column, bad
settings file).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
from pathlib import Path

REPO_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "linkage"
DEFAULT_DATA = Path(os.environ.get("LINKAGE_DATA", str(REPO_DATA)))
DEFAULT_TX_DIR = Path(os.environ.get("LINKDATA_CSV", "/tmp/linkdata"))


class InputError(Exception):
    pass


# --------------------------------------------------------------------------
# Settings of Splink's documentation examples
# --------------------------------------------------------------------------

# FEBRL4 example ("Linking the febrl4 datasets"): blocking rules for prediction.
FEBRL4_BLOCKING_RULES = [
    ("block_on", ["given_name", "surname"]),
    "l.given_name = r.surname and l.surname = r.given_name",
    ("block_on", ["date_of_birth"]),
    ("block_on", ["soc_sec_id"]),
    ("block_on", ["state", "address_1"]),
    ("block_on", ["street_number", "address_1"]),
    ("block_on", ["postcode"]),
]
# Rules used to estimate probability_two_random_records_match, with recall 0.8.
FEBRL4_DETERMINISTIC_RULES = [
    "l.soc_sec_id = r.soc_sec_id",
    "l.given_name = r.given_name and l.surname = r.surname "
    "and l.date_of_birth = r.date_of_birth",
]
FEBRL4_RECALL = 0.8
FEBRL4_U_MAX_PAIRS = 1e7
FEBRL4_EM_RULES = ["l.date_of_birth = r.date_of_birth", "l.postcode = r.postcode"]


def _blocking_rules(spec):
    from splink import block_on

    out = []
    for r in spec:
        if isinstance(r, tuple):
            out.append(block_on(*r[1]))
        else:
            out.append(r)
    return out


def febrl4_comparisons(model: str):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    dob = cl.DateOfBirthComparison(
        "date_of_birth",
        input_is_string=True,
        datetime_format="%Y%m%d",
        invalid_dates_as_null=True,
    )
    if model == "detailed":
        # The example's first full model.
        return [
            cl.NameComparison("given_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("surname").configure(term_frequency_adjustments=True),
            dob,
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.DamerauLevenshteinAtThresholds("postcode", [1, 2]).configure(
                term_frequency_adjustments=True
            ),
        ]
    # The example's final ("extended") model: one full-name comparison with
    # swapped-name levels, DOB, soc_sec_id, street_number, postcode. The example
    # leaves the other location columns out (correlated with postcode).
    jw_swap = (
        "jaro_winkler_similarity(given_name_l, surname_r) + "
        "jaro_winkler_similarity(surname_l, given_name_r) >= {t}"
    )
    return [
        {
            "output_column_name": "Full name",
            "comparison_levels": [
                {
                    "sql_condition": "(given_name_l IS NULL OR given_name_r IS NULL) "
                    "and (surname_l IS NULL OR surname_r IS NULL)",
                    "label_for_charts": "Null",
                    "is_null_level": True,
                },
                cll.ExactMatchLevel("full_name", term_frequency_adjustments=True),
                cll.JaroWinklerLevel("full_name", 0.9),
                cll.JaroWinklerLevel("full_name", 0.7),
                cll.ColumnsReversedLevel("given_name", "surname"),
                {
                    "sql_condition": jw_swap.format(t=1.8),
                    "label_for_charts": "switched + jaro_winkler_similarity >= 1.8",
                },
                {
                    "sql_condition": jw_swap.format(t=1.4),
                    "label_for_charts": "switched + jaro_winkler_similarity >= 1.4",
                },
                cll.ExactMatchLevel("given_name", term_frequency_adjustments=True),
                cll.ExactMatchLevel("surname", term_frequency_adjustments=True),
                {
                    "sql_condition": "given_name_l = surname_r OR surname_l = given_name_r",
                    "label_for_charts": "single name cross-matches",
                },
                cll.JaroWinklerLevel("given_name", 0.9),
                cll.JaroWinklerLevel("surname", 0.9),
                cll.ElseLevel(),
            ],
        },
        dob,
        {
            "output_column_name": "Social security ID",
            "comparison_levels": [
                cll.NullLevel("soc_sec_id"),
                cll.ExactMatchLevel("soc_sec_id", term_frequency_adjustments=True),
                cll.DamerauLevenshteinLevel("soc_sec_id", 1),
                cll.DamerauLevenshteinLevel("soc_sec_id", 2),
                cll.ElseLevel(),
            ],
        },
        {
            "output_column_name": "Street number",
            "comparison_levels": [
                cll.NullLevel("street_number"),
                cll.ExactMatchLevel("street_number", term_frequency_adjustments=True),
                cll.DamerauLevenshteinLevel("street_number", 1),
                cll.ElseLevel(),
            ],
        },
        {
            "output_column_name": "Postcode",
            "comparison_levels": [
                cll.NullLevel("postcode"),
                cll.ExactMatchLevel("postcode", term_frequency_adjustments=True),
                cll.DamerauLevenshteinLevel("postcode", 1),
                cll.DamerauLevenshteinLevel("postcode", 2),
                cll.ElseLevel(),
            ],
        },
    ]


def febrl4_recipe(model: str):
    from splink import SettingsCreator

    settings = SettingsCreator(
        unique_id_column_name="rec_id",
        link_type="link_only",
        blocking_rules_to_generate_predictions=_blocking_rules(FEBRL4_BLOCKING_RULES),
        comparisons=febrl4_comparisons(model),
        retain_intermediate_calculation_columns=True,
    )
    training = {
        "deterministic_rules": FEBRL4_DETERMINISTIC_RULES,
        "recall": FEBRL4_RECALL,
        "u_max_pairs": FEBRL4_U_MAX_PAIRS,
        "em_blocking_rules": FEBRL4_EM_RULES,
        "em_estimate_without_term_frequencies": True,
    }
    return settings, training


# Transactions example ("Linking financial transactions").
TX_BLOCKING_RULES = [
    # date_1: same calendar month, memo prefix, amount within 30 %
    """
    strftime(l.transaction_date, '%Y%m') = strftime(r.transaction_date, '%Y%m')
    and substr(l.memo, 1,3) = substr(r.memo,1,3)
    and l.amount/r.amount > 0.7   and l.amount/r.amount < 1.3
    """,
    # date_2: offset by half a month (31 Jan vs 1 Feb)
    """
    strftime(l.transaction_date+15, '%Y%m') = strftime(r.transaction_date, '%Y%m')
    and substr(l.memo, 1,3) = substr(r.memo,1,3)
    and l.amount/r.amount > 0.7   and l.amount/r.amount < 1.3
    """,
    ("block_on", ["substr(memo,1,9)"]),
    """
    round(l.amount/2,0)*2 = round(r.amount/2,0)*2 and yearweek(r.transaction_date) = yearweek(l.transaction_date)
    """,
    """
    round(l.amount/2,0)*2 = round((r.amount+1)/2,0)*2 and yearweek(r.transaction_date) = yearweek(l.transaction_date + 4)
    """,
]
# The example's last rule, block_on("unique_id"), named "cheat" there: in this
# data unique_id equals ground_truth, so it hands every true pair to the model.
TX_CHEAT_RULE = ("block_on", ["unique_id"])
TX_U_MAX_PAIRS = 1e6
TX_EM_RULES = [("block_on", ["memo"]), ("block_on", ["amount"])]
# The example predicts with threshold_match_probability=0.001; single-best-link
# clustering at that threshold gives the 0.920.
TX_OTO_THRESHOLD = 0.001


def transactions_recipe(n_origin: int, cheat: bool):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator

    comparison_amount = {
        "output_column_name": "amount",
        "comparison_levels": [
            cll.NullLevel("amount"),
            cll.ExactMatchLevel("amount"),
            cll.PercentageDifferenceLevel("amount", 0.01),
            cll.PercentageDifferenceLevel("amount", 0.03),
            cll.PercentageDifferenceLevel("amount", 0.1),
            cll.PercentageDifferenceLevel("amount", 0.3),
            cll.ElseLevel(),
        ],
        "comparison_description": "Amount percentage difference",
    }
    # One-sided: a transaction arrives on or after the day it left.
    within_n_days = (
        "transaction_date_r - transaction_date_l <= {n} "
        "and transaction_date_r >= transaction_date_l"
    )
    comparison_date = {
        "output_column_name": "transaction_date",
        "comparison_levels": [
            cll.NullLevel("transaction_date"),
            {"sql_condition": within_n_days.format(n=1), "label_for_charts": "1 day"},
            {"sql_condition": within_n_days.format(n=4), "label_for_charts": "<=4 days"},
            {"sql_condition": within_n_days.format(n=10), "label_for_charts": "<=10 days"},
            {"sql_condition": within_n_days.format(n=30), "label_for_charts": "<=30 days"},
            cll.ElseLevel(),
        ],
        "comparison_description": "Transaction date days apart",
    }
    rules = list(TX_BLOCKING_RULES) + ([TX_CHEAT_RULE] if cheat else [])
    settings = SettingsCreator(
        link_type="link_only",
        probability_two_random_records_match=1 / n_origin,
        blocking_rules_to_generate_predictions=_blocking_rules(rules),
        comparisons=[
            comparison_amount,
            cl.LevenshteinAtThresholds("memo", [2, 6, 10]),
            comparison_date,
        ],
        retain_intermediate_calculation_columns=True,
    )
    training = {
        "u_max_pairs": TX_U_MAX_PAIRS,
        "em_blocking_rules": TX_EM_RULES,
        "em_estimate_without_term_frequencies": False,
    }
    return settings, training


# --------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------


def _need_file(p):
    p = Path(p)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: file is empty")
    return p


def read_csv_arrow(path, all_strings: bool, strip: bool, column_types=None):
    """Read a CSV into a pyarrow Table. Column names are stripped of spaces.
    With all_strings every column is text; with strip, text values are
    stripped and empty strings become null."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    path = _need_file(path)
    with open(path, "r", encoding="utf-8") as f:
        header = f.readline()
    if not header.strip():
        raise InputError(f"{path}: no header row")
    raw_names = next(iter(__import__("csv").reader([header])))
    names = [n.strip() for n in raw_names]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: duplicate column names {names}")
    types = None
    if all_strings:
        types = {n: pa.string() for n in names}
    elif column_types:
        types = column_types
    table = pacsv.read_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=names, skip_rows=1),
        convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=True
        ),
    )
    if table.num_rows == 0:
        raise InputError(f"{path}: no data rows")
    if strip:
        cols = []
        for name in table.column_names:
            col = table[name]
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                col = pc.utf8_trim_whitespace(col)
                col = pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)
            cols.append(col)
        table = pa.table(cols, names=table.column_names)
    return table


def require_columns(table, cols, what):
    missing = [c for c in cols if c not in table.column_names]
    if missing:
        raise InputError(
            f"{what}: missing column(s) {missing}; has {table.column_names}"
        )


def load_febrl(path):
    import pyarrow.compute as pc

    t = read_csv_arrow(path, all_strings=True, strip=True)
    require_columns(
        t,
        ["rec_id", "given_name", "surname", "street_number", "address_1",
         "postcode", "state", "date_of_birth", "soc_sec_id"],
        str(path),
    )
    # The example adds full_name = given_name || '_' || surname (null if either
    # is null) for the full-name comparison's term frequencies.
    full = pc.binary_join_element_wise(t["given_name"], t["surname"], "_")
    return t.append_column("full_name", full)


def load_transactions(path):
    import pyarrow as pa

    types = {
        "ground_truth": pa.int64(),
        "memo": pa.string(),
        "transaction_date": pa.date32(),
        "amount": pa.float64(),
        "unique_id": pa.int64(),
    }
    if str(path).endswith(".parquet"):
        import pyarrow.parquet as pq

        t = pq.read_table(_need_file(path))
    else:
        t = read_csv_arrow(path, all_strings=False, strip=False, column_types=types)
    require_columns(t, list(types), str(path))
    return t


# --------------------------------------------------------------------------
# Running Splink
# --------------------------------------------------------------------------


class Timer:
    def __enter__(self):
        self.w0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.process_time() - self.c0
        return False


def make_db_api(threads: int):
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect(":memory:", config={"threads": threads})
    return DuckDBAPI(connection=con), con


def train(linker, training: dict):
    """Run the training steps; returns {step: [wall_s, cpu_s]}."""
    t = linker.training
    steps = {}

    def timed(key, fn):
        with Timer() as tm:
            fn()
        w, c = steps.get(key, [0.0, 0.0])
        steps[key] = [round(w + tm.wall, 4), round(c + tm.cpu, 4)]

    if training.get("deterministic_rules"):
        timed("lambda", lambda: t.estimate_probability_two_random_records_match(
            training["deterministic_rules"], recall=training.get("recall", 0.8)))
    timed("u", lambda: t.estimate_u_using_random_sampling(
        max_pairs=float(training.get("u_max_pairs", 1e7)),
        seed=training.get("u_seed")))
    for br in training.get("em_blocking_rules", []):
        if isinstance(br, (tuple, list)) and br and br[0] == "block_on":
            br = _blocking_rules([tuple(br)])[0]
        timed("em", lambda: t.estimate_parameters_using_expectation_maximisation(
            br,
            estimate_without_term_frequencies=bool(
                training.get("em_estimate_without_term_frequencies", False))))
    return steps


def _q(con, sql):
    return con.execute(sql).fetchall()


def score(con, pred_table, records, link_only, threshold):
    """Pairwise metrics. `records` is an Arrow table (sd, id, key)."""
    con.register("__bench_records", records)
    # Total truth pairs.
    if link_only:
        total = _q(con, """
            select coalesce(sum(a.n * b.n), 0) from
              (select key, count(*) n from __bench_records where sd = 'L' and key is not null group by key) a
              join
              (select key, count(*) n from __bench_records where sd = 'R' and key is not null group by key) b
              using (key)""")[0][0]
    else:
        total = _q(con, """
            select coalesce(sum(n * (n - 1) / 2), 0) from
              (select key, count(*) n from __bench_records where key is not null group by key)""")[0][0]
    total = int(total)
    con.execute(f"""
        create or replace temp table __bench_scored as
        select p.match_probability as p,
               coalesce(rl.key = rr.key, false) as is_match
        from {pred_table} p
        left join __bench_records rl on rl.sd = p.__sd_l and rl.id = p.__id_l
        left join __bench_records rr on rr.sd = p.__sd_r and rr.id = p.__id_r
    """)
    n_pairs, n_true_scored = _q(
        con, "select count(*), coalesce(sum(is_match::int), 0) from __bench_scored")[0]
    pred, tp = _q(con, f"""
        select count(*), coalesce(sum(is_match::int), 0)
        from __bench_scored where p >= {threshold}""")[0]
    best = _q(con, f"""
        with g as (select p, count(*) n, sum(is_match::int) tp from __bench_scored group by p),
        c as (select p, sum(n) over (order by p desc) cn,
                        sum(tp) over (order by p desc) ctp from g)
        select p, cn, ctp, 2.0 * ctp / (cn + {total}) f1 from c
        order by f1 desc, p desc limit 1""")
    prec = tp / pred if pred else 0.0
    rec = tp / total if total else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    out = {
        "pairs_scored": int(n_pairs),
        "true_pairs": total,
        "true_pairs_scored": int(n_true_scored),
        "blocking_recall": round(n_true_scored / total, 6) if total else None,
        "threshold": threshold,
        "predicted_links": int(pred),
        "true_positives": int(tp),
        "precision": round(prec, 6),
        "recall": round(rec, 6),
        "f1": round(f1, 6),
    }
    if best:
        p, cn, ctp, bf1 = best[0]
        out.update({
            "best_f1": round(float(bf1), 6),
            "best_threshold": float(p),
            "best_precision": round(ctp / cn, 6) if cn else 0.0,
            "best_recall": round(ctp / total, 6) if total else 0.0,
        })
    con.execute("drop table if exists __bench_scored")
    return out


def score_clusters(con, clusters_table, total):
    """One-to-one metrics: linked = a record from L and one from R share a
    cluster."""
    tp, pred = _q(con, f"""
        with c as (
          select c.cluster_id, r.sd, r.key
          from {clusters_table} c join __bench_records r
            on r.sd = c.__sd and r.id = c.__id)
        select coalesce(sum((a.key = b.key)::int), 0), count(*)
        from c a join c b on a.cluster_id = b.cluster_id
        where a.sd = 'L' and b.sd = 'R'""")[0]
    prec = tp / pred if pred else 0.0
    rec = tp / total if total else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"links": int(pred), "true_positives": int(tp), "precision": round(prec, 6),
            "recall": round(rec, 6), "f1": round(f1, 6)}


def check_settings_columns(linker):
    """Refuse settings naming columns the inputs lack, before any work.
    Uses Splink's own validator (the one that only logs warnings)."""
    from splink.internals.settings_validation import log_invalid_columns as lic

    cleaned = lic.SettingsColumnCleaner(
        settings_object=linker._settings_obj, input_columns=linker._input_tables_dict)
    v = lic.InvalidColumnsLogger(cleaned)
    logs = [
        lic.construct_missing_settings_column_log(v.validate_uid()),
        lic.construct_missing_settings_column_log(v.validate_cols_to_retain()),
        lic.construct_missing_column_in_blocking_rule_log(v.validate_blocking_rules()),
        lic.construct_missing_column_in_comparison_level_log(v.validate_comparison_levels()),
    ]
    logs = [x for x in logs if x]
    if logs:
        raise InputError("settings name columns that are not in the input:\n"
                         + "\n".join(logs))


def run_one(name, left, right, settings, training, id_col, truth_fn, args,
            one_to_one=False, extra=None, oto_threshold=None, check_columns=False):
    """left/right: Arrow tables (right may be None for dedupe).

    Splink 5 puts on its left side (columns *_l) the input whose registered
    name sorts first, whatever the order they are passed in. The example
    rules for transactions are one-sided (the destination date is the later
    one, *_r), so the left file is registered under the name that sorts first;
    --swap-sides does the opposite."""
    import pyarrow as pa
    import splink
    from splink import Linker

    result = {"dataset": name, "splink_version": splink.__version__,
              "duckdb_threads": args.threads}
    with Timer() as t_load:
        db_api, con = make_db_api(args.threads)
        names = ["input_2", "input_1"] if args.swap_sides else ["input_1", "input_2"]
        if right is None:
            names = names[:1]
        sdfs = [db_api.register(left, dataset_display_name=names[0])]
        if right is not None:
            sdfs.append(db_api.register(right, dataset_display_name=names[1]))
        linker = Linker(sdfs if right is not None else sdfs[0], settings,
                        log_level=logging.INFO if args.verbose else logging.WARNING)
        if check_columns:
            check_settings_columns(linker)
    result["load_wall_s"] = round(t_load.wall, 4)
    if right is not None:
        result["splink_l_side"] = "right file" if args.swap_sides else "left file"
    result["records_left"] = left.num_rows
    result["records_right"] = right.num_rows if right is not None else None

    if not args.no_train:
        if args.u_max_pairs is not None:
            training["u_max_pairs"] = args.u_max_pairs
        with Timer() as t_train:
            steps = train(linker, training)
        result["train_wall_s"] = round(t_train.wall, 4)
        result["train_cpu_s"] = round(t_train.cpu, 4)
        result["train_steps_wall_cpu_s"] = steps
        result["u_max_pairs"] = float(training.get("u_max_pairs", 1e7))
    else:
        result["train_wall_s"] = result["train_cpu_s"] = 0.0

    with Timer() as t_pred:
        df_predict = linker.inference.predict(
            threshold_match_probability=args.predict_threshold, warning_mode="never")
    result["predict_wall_s"] = round(t_pred.wall, 4)
    result["predict_cpu_s"] = round(t_pred.cpu, 4)
    if args.predict_threshold is not None:
        result["predict_threshold"] = args.predict_threshold

    clusters = None
    oto_th = oto_threshold if oto_threshold is not None else args.threshold
    if one_to_one:
        with Timer() as t_cl:
            clusters = linker.clustering.cluster_using_single_best_links(
                df_predict, duplicate_free_datasets=names,
                threshold_match_probability=oto_th)
        result["cluster_wall_s"] = round(t_cl.wall, 4)
        result["cluster_cpu_s"] = round(t_cl.cpu, 4)
        result["predict_and_cluster_wall_s"] = round(t_pred.wall + t_cl.wall, 4)
        result["predict_and_cluster_cpu_s"] = round(t_pred.cpu + t_cl.cpu, 4)
    result["peak_rss_mb"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)

    # ---- scoring (untimed) ----
    sd_col = "source_dataset"
    link_only = right is not None
    left_sd = right_sd = None
    if link_only:
        # Which source_dataset value each input carries in Splink's tables.
        vals = [r[0] for r in _q(con, f"select distinct {sd_col}_l from {df_predict.physical_name} "
                                       f"union select distinct {sd_col}_r from {df_predict.physical_name}")]
        left_sd, right_sd = names[0], names[1]
        unknown = set(vals) - {left_sd, right_sd}
        if unknown:
            raise RuntimeError(f"unexpected source_dataset values {vals}")
    keys_l = truth_fn(left)
    recs = {"sd": ["L"] * left.num_rows, "id": left[id_col].to_pylist(), "key": keys_l}
    if link_only:
        keys_r = truth_fn(right)
        recs["sd"] += ["R"] * right.num_rows
        recs["id"] += right[id_col].to_pylist()
        recs["key"] += keys_r
    records = pa.table(recs)
    sd_map = (f"case {{c}} when '{left_sd}' then 'L' when '{right_sd}' then 'R' end"
              if link_only else "'L'")
    con.execute(f"""
        create or replace temp view __bench_pred as
        select *, {sd_map.format(c=sd_col + '_l')} as __sd_l, {id_col}_l as __id_l,
                  {sd_map.format(c=sd_col + '_r')} as __sd_r, {id_col}_r as __id_r
        from {df_predict.physical_name}""")
    result.update(score(con, "__bench_pred", records, link_only, args.threshold))

    if one_to_one:
        def view_for(cl_df):
            sdm = sd_map.format(c=sd_col) if link_only else "'L'"
            con.execute(f"""
                create or replace temp view __bench_cl as
                select cluster_id, {sdm} as __sd, {id_col} as __id
                from {cl_df.physical_name}""")
            return "__bench_cl"

        oto = score_clusters(con, view_for(clusters), result["true_pairs"])
        result["one_to_one_threshold"] = oto_th
        result["one_to_one_precision"] = oto["precision"]
        result["one_to_one_recall"] = oto["recall"]
        result["one_to_one_f1"] = oto["f1"]
        # Threshold sweep (untimed): best one-to-one F1.
        sweep = {}
        for th in args.oto_thresholds:
            cl_df = linker.clustering.cluster_using_single_best_links(
                df_predict, duplicate_free_datasets=names,
                threshold_match_probability=th)
            sweep[str(th)] = score_clusters(con, view_for(cl_df), result["true_pairs"])["f1"]
            cl_df.drop_table_from_database_and_remove_from_cache()
        if sweep:
            bt = max(sweep, key=lambda k: (sweep[k], -float(k)))
            result["one_to_one_best_f1"] = sweep[bt]
            result["one_to_one_best_threshold"] = float(bt)
            result["one_to_one_f1_by_threshold"] = sweep

    if args.save_model:
        p = Path(args.save_model)
        p = p.with_name(f"{p.stem}_{name}{p.suffix or '.json'}")
        linker.misc.save_model_to_json(str(p), overwrite=True)
        result["model_json"] = str(p)
    if extra:
        result.update(extra)
    con.close()
    return result


# --------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------


def truth_from_column(col):
    def fn(t):
        if col not in t.column_names:
            raise InputError(f"truth column {col!r} not in {t.column_names}")
        return [None if v is None else str(v) for v in t[col].to_pylist()]
    return fn


def truth_febrl_recid(id_col):
    import re

    pat = re.compile(r"^(rec-\d+)-")

    def fn(t):
        out = []
        for v in t[id_col].to_pylist():
            m = pat.match(v or "")
            out.append(m.group(1) if m else None)
        return out
    return fn


def dump_settings(settings, training, path, name):
    d = settings.create_settings_dict("duckdb")
    d.pop("linker_uid", None)
    tr = dict(training)
    if tr.get("em_blocking_rules"):
        rules = []
        for br in tr["em_blocking_rules"]:
            if isinstance(br, tuple):
                rules.append(list(br))
            else:
                rules.append(br)
        tr["em_blocking_rules"] = rules
    d["training"] = tr
    p = Path(path)
    p = p.with_name(f"{p.stem}_{name}{p.suffix or '.json'}")
    p.write_text(json.dumps(d, indent=2, default=str), encoding="utf-8")
    print(f"settings written to {p}", file=sys.stderr)


def bench_febrl4(args):
    data = Path(args.data_dir) / "febrl"
    a = load_febrl(args.left or data / "dataset4a.csv")
    b = load_febrl(args.right or data / "dataset4b.csv")
    settings, training = febrl4_recipe(args.febrl_model)
    training["u_seed"] = args.seed
    if args.dump_settings:
        dump_settings(settings, training, args.dump_settings, "febrl4")
    truth = (truth_from_column(args.truth_column) if args.truth_column
             else truth_febrl_recid("rec_id"))
    return run_one("febrl4", a, b, settings, training, "rec_id", truth, args,
                   one_to_one=args.one_to_one,
                   extra={"febrl_model": args.febrl_model},
                   oto_threshold=args.oto_threshold)


def bench_transactions(args):
    d = Path(args.tx_dir)
    o = load_transactions(args.left or d / "transactions_origin.csv")
    de = load_transactions(args.right or d / "transactions_destination.csv")
    settings, training = transactions_recipe(o.num_rows, cheat=not args.no_cheat)
    training["u_seed"] = args.seed
    if args.dump_settings:
        dump_settings(settings, training, args.dump_settings, "transactions")
    truth = truth_from_column(args.truth_column or "ground_truth")
    return run_one("transactions", o, de, settings, training, "unique_id", truth, args,
                   one_to_one=True, extra={"cheat_blocking_rule": not args.no_cheat},
                   oto_threshold=args.oto_threshold if args.oto_threshold is not None
                   else TX_OTO_THRESHOLD)


def bench_custom(args):
    if not args.settings:
        raise InputError("--left/--right without --dataset needs --settings FILE")
    if not args.id_column:
        raise InputError("--id-column is required with --settings")
    sp = _need_file(args.settings)
    try:
        sd = json.loads(sp.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{sp}: not valid JSON: {e}")
    if not isinstance(sd, dict):
        raise InputError(f"{sp}: expected a JSON object (Splink settings dict)")
    training = sd.pop("training", None) or {}
    training.setdefault("u_max_pairs", 1e7)
    if args.seed is not None:
        training["u_seed"] = args.seed
    sd["unique_id_column_name"] = args.id_column
    sd["link_type"] = "link_only" if args.right else "dedupe_only"
    sd.pop("linker_uid", None)
    left = read_csv_arrow(args.left, all_strings=args.all_strings, strip=args.all_strings)
    right = (read_csv_arrow(args.right, all_strings=args.all_strings, strip=args.all_strings)
             if args.right else None)
    for t, p in [(left, args.left), (right, args.right)]:
        if t is None:
            continue
        need = [args.id_column] + ([args.truth_column] if args.truth_column else [])
        require_columns(t, need, str(p))
    if right is not None and set(left.column_names) != set(right.column_names):
        raise InputError(
            f"--left and --right have different columns: {left.column_names} vs {right.column_names}")
    if not args.truth_column:
        raise InputError("--truth-column is required to score a custom run")
    name = args.name or Path(args.left).stem
    return run_one(name, left, right, sd, training, args.id_column,
                   truth_from_column(args.truth_column), args,
                   one_to_one=args.one_to_one and right is not None,
                   extra={"settings_file": str(sp)}, oto_threshold=args.oto_threshold,
                   check_columns=True)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["febrl4", "transactions", "both"],
                    help="built-in recipe (default: both, or custom when --settings)")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads (default 2)")
    ap.add_argument("--out", help="also write the results as a JSON list to this file")
    ap.add_argument("--threshold", type=float, default=0.5,
                    help="match probability for a link (default 0.5)")
    ap.add_argument("--predict-threshold", type=float, default=None,
                    help="pass threshold_match_probability to predict() (default: keep all scored pairs)")
    ap.add_argument("--seed", type=int, default=None,
                    help="seed for u random sampling (the docs examples use none)")
    ap.add_argument("--data-dir", default=str(DEFAULT_DATA),
                    help="shared linkage data dir (febrl/ inside); env LINKAGE_DATA")
    ap.add_argument("--tx-dir", default=str(DEFAULT_TX_DIR),
                    help="dir with transactions_{origin,destination}.csv; env LINKDATA_CSV")
    ap.add_argument("--febrl-model", choices=["extended", "detailed"], default="extended",
                    help="which model of Splink's FEBRL4 example (default: extended, the final one)")
    ap.add_argument("--no-cheat", action="store_true",
                    help="transactions: drop the example's block_on('unique_id') rule (unique_id == ground_truth)")
    ap.add_argument("--swap-sides", action="store_true",
                    help="register the inputs so that Splink puts the right file on its l side "
                    "(what naming them 'origin'/'destination' does: 'destination' sorts first)")
    ap.add_argument("--one-to-one", action="store_true",
                    help="also run single-best-link clustering (always on for transactions)")
    ap.add_argument("--oto-threshold", type=float, default=None,
                    help="match probability for single-best-link clustering (timed run); "
                    f"default {TX_OTO_THRESHOLD} for transactions (the example's predict "
                    "threshold), else --threshold")
    ap.add_argument("--oto-thresholds",
                    default="0,0.00001,0.0001,0.001,0.01,0.05,0.1,0.2,0.3,0.5,0.7,0.9,0.95,0.99",
                    help="thresholds swept (untimed) for one_to_one_best_f1; '' to skip")
    ap.add_argument("--u-max-pairs", type=float, default=None,
                    help="override max_pairs of u random sampling (recipes: febrl4 1e7, "
                    "transactions 1e6, as in the examples)")
    ap.add_argument("--left", help="left CSV (custom mode, or override a recipe's file)")
    ap.add_argument("--right", help="right CSV (omit for dedupe in custom mode)")
    ap.add_argument("--id-column", help="unique id column (custom mode)")
    ap.add_argument("--settings", help="Splink settings JSON (custom mode); optional "
                    "top-level 'training' object, see bench_splink.md")
    ap.add_argument("--truth-column", help="rows with the same value in COL match")
    ap.add_argument("--all-strings", action="store_true",
                    help="custom mode: read every column as text, trimmed, '' -> null")
    ap.add_argument("--name", help="dataset name in the JSON (custom mode)")
    ap.add_argument("--no-train", action="store_true",
                    help="skip training (settings already hold trained m/u)")
    ap.add_argument("--dump-settings", metavar="FILE",
                    help="write each recipe's settings (+training) as FILE_<dataset>.json")
    ap.add_argument("--save-model", metavar="FILE",
                    help="write each trained model as FILE_<dataset>.json")
    ap.add_argument("--verbose", action="store_true", help="Splink INFO logging on stderr")
    args = ap.parse_args(argv)
    args.oto_thresholds = [float(x) for x in args.oto_thresholds.split(",") if x.strip()]
    if args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.dataset is None:
        args.dataset = "custom" if (args.settings or args.left) else "both"
    if args.dataset == "both" and (args.left or args.right):
        ap.error("--left/--right need --dataset febrl4 or transactions (or custom --settings)")
    return args


def main(argv=None):
    args = parse_args(argv)
    results = []
    try:
        if args.dataset in ("febrl4", "both"):
            results.append(bench_febrl4(args))
            print(json.dumps(results[-1]), flush=True)
        if args.dataset in ("transactions", "both"):
            results.append(bench_transactions(args))
            print(json.dumps(results[-1]), flush=True)
        if args.dataset == "custom":
            results.append(bench_custom(args))
            print(json.dumps(results[-1]), flush=True)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # Splink/DuckDB errors: say what failed, no traceback
        if args.verbose:
            raise
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
