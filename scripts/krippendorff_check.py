#!/usr/bin/env python3
"""Checks borderlens's Krippendorff's alpha figures against the PyPI `krippendorff` package.

borderlens merges the annotators' boxes into objects (units) and computes alpha for boxes
(distance 1 - IoU, an absent annotator holding the empty box) and for labels (nominal, an
absent annotator holding no value), overall and per class (see crates/nii/src/agreement.rs).
This script runs `borderlens nii agreement FILE --json`, takes the units borderlens formed, and
recomputes every alpha with `krippendorff.alpha` (IoU computed here, independently), then
compares.

Usage:
    python3 -m venv /tmp/kvenv && /tmp/kvenv/bin/pip install krippendorff numpy
    /tmp/kvenv/bin/python scripts/krippendorff_check.py [--borderlens PATH] [FILE.json ...]

Without files, it checks the hand-computed cases of the Rust tests and a seeded random input
(6 annotators, 60 scans, boxes jittered, objects missed, labels swapped). Exit status 1 when a
figure differs by more than 1e-9.
"""

import argparse
import importlib.metadata
import json
import math
import os
import random
import subprocess
import sys
import tempfile

import krippendorff
import numpy as np

TOLERANCE = 1e-9


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def alpha_or_none(**kwargs):
    try:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = krippendorff.alpha(**kwargs)
    except ValueError:
        # the package refuses a value domain of one value: alpha is undefined
        return None
    return None if value is None or math.isnan(value) else float(value)


def box_alpha(units, coders):
    # Value domain: every distinct box, plus the empty box (index 0).
    domain = [None]
    index = {None: 0}
    data = np.full((len(coders), len(units)), np.nan)
    for u, unit in enumerate(units):
        for c, coder in enumerate(coders):
            if coder not in unit["values"]:
                continue
            v = unit["values"][coder]
            key = None if v is None else tuple(v[0])
            if key not in index:
                index[key] = len(domain)
                domain.append(key)
            data[c, u] = index[key]
    n = len(domain)
    dist = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            a, b = domain[i], domain[j]
            if a is None and b is None:
                dist[i, j] = 0.0
            elif a is None or b is None:
                dist[i, j] = 1.0
            else:
                dist[i, j] = 1.0 - iou(a, b)

    def metric(v1, v2, i1, i2, n_v, dtype=np.float64):
        return dist[i1, i2].astype(dtype)

    return alpha_or_none(
        reliability_data=data,
        value_domain=np.arange(n),
        level_of_measurement=metric,
    )


def label_alpha(units, coders, mapping):
    labels = sorted({mapping(v[1]) for unit in units for v in unit["values"].values() if v is not None})
    if not labels:
        return None
    code = {l: i for i, l in enumerate(labels)}
    data = np.full((len(coders), len(units)), np.nan)
    for u, unit in enumerate(units):
        for c, coder in enumerate(coders):
            v = unit["values"].get(coder)
            if v is not None:
                data[c, u] = code[mapping(v[1])]
    return alpha_or_none(
        reliability_data=data,
        value_domain=np.arange(len(labels)),
        level_of_measurement="nominal",
    )


def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= TOLERANCE


def check(borderlens, path):
    out = subprocess.run(
        [borderlens, "nii", "agreement", path, "--json"], capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    units = report["units"]
    coders = report["annotators"]
    rows = [("overall", "boxes", report["alpha_boxes"], box_alpha(units, coders))]
    rows.append(("overall", "labels", report["alpha_labels"], label_alpha(units, coders, lambda l: l)))
    for c in report["per_class"]:
        cls = c["class"]
        subset = [u for u in units if u["label"] == cls]
        rows.append((cls, "boxes", c["alpha_boxes"], box_alpha(subset, coders)))
        rows.append((cls, "labels", c["alpha_labels"], label_alpha(units, coders, lambda l, cls=cls: str(l == cls).lower())))
    bad = 0
    print(f"{os.path.basename(path)}: {len(units)} units, {len(coders)} annotators")
    for scope, kind, ours, theirs in rows:
        ok = close(ours, theirs)
        bad += 0 if ok else 1
        fmt = lambda v: "undefined" if v is None else f"{v:.12f}"
        print(f"  {'ok ' if ok else 'BAD'} {scope:>18} {kind:<6} borderlens {fmt(ours):>16}  krippendorff {fmt(theirs):>16}")
    return bad, len(rows)


def obj(label, box):
    return {"label": label, "bbox": box}


def hand_cases():
    k, k2, g = [0, 0, 10, 10], [0, 0, 8, 10], [50, 50, 60, 60]
    two = {
        "scans": [
            {"scan_id": "s1", "annotations": [
                {"annotator": "a", "objects": [obj("knife", k)]},
                {"annotator": "b", "objects": [obj("knife", k)]}]},
            {"scan_id": "s2", "annotations": [
                {"annotator": "a", "objects": [obj("gun", k)]},
                {"annotator": "b", "objects": []}]},
        ]
    }
    three = {
        "scans": [{"scan_id": "s", "annotations": [
            {"annotator": "a", "objects": [obj("knife", k), obj("gun", g)]},
            {"annotator": "b", "objects": [obj("knife", k2), obj("gun", g)]},
            {"annotator": "c", "objects": [obj("blade", k), obj("gun", g)]}]}]
    }
    return {"two_annotators.json": two, "three_annotators.json": three}


def random_case(seed=2026, annotators=6, scans=60):
    rng = random.Random(seed)
    classes = ["knife", "gun", "blade", "bottle", "drug_bricks"]
    names = [f"ann{i}" for i in range(annotators)]
    out = []
    for s in range(scans):
        truth = []
        for _ in range(rng.randint(0, 4)):
            x, y = rng.uniform(0, 400), rng.uniform(0, 400)
            w, h = rng.uniform(20, 100), rng.uniform(20, 100)
            truth.append((rng.choice(classes), [x, y, x + w, y + h]))
        assigned = rng.sample(names, rng.randint(2, 4))
        anns = []
        for a in assigned:
            objects = []
            for label, box in truth:
                if rng.random() < 0.15:
                    continue  # missed
                j = [round(v + rng.gauss(0, 4), 1) for v in box]
                j = [min(j[0], j[2] - 1), min(j[1], j[3] - 1), j[2], j[3]]
                if rng.random() < 0.1:
                    label = rng.choice(classes)  # disputed label
                objects.append(obj(label, j))
            if rng.random() < 0.1:
                x, y = rng.uniform(0, 450), rng.uniform(0, 450)
                objects.append(obj(rng.choice(classes), [x, y, x + 30, y + 30]))  # false alarm
            anns.append({"annotator": a, "objects": objects})
        out.append({"scan_id": f"r{s}", "annotations": anns})
    return {"iou_threshold": 0.5, "scans": out}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--borderlens", default=os.environ.get("BORDERLENS", "target/release/borderlens"))
    parser.add_argument("files", nargs="*")
    args = parser.parse_args()
    files = list(args.files)
    tmp = tempfile.mkdtemp(prefix="krippendorff_check_")
    if not files:
        cases = hand_cases()
        cases["random_6_annotators.json"] = random_case()
        for name, case in cases.items():
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                json.dump(case, f)
            files.append(path)
    total_bad = total = 0
    for path in files:
        bad, n = check(args.borderlens, path)
        total_bad += bad
        total += n
    version = importlib.metadata.version("krippendorff")
    print(f"{total - total_bad} of {total} alpha figures match krippendorff {version} within {TOLERANCE}")
    sys.exit(1 if total_bad else 0)


if __name__ == "__main__":
    main()
