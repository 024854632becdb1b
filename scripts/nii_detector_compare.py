#!/usr/bin/env python3
"""Trains a standard PyPI object detector on a borderlens COCO export and reports its figures
side by side with the borderlens X-ray threat detector's.

Not part of the tests or CI: a comparison helper, run by hand. It needs PyTorch, which the
Rust build does not.

What it computes on the test export, with the definitions of `crates/nii/src/detector/eval.rs`:
- AP@0.5 per class: detections with score >= 0.01; per image, detections by descending score
  are matched greedily, each true box at most once, to the same-class detection with the
  highest IoU >= 0.5 among the free boxes; VOC all-point interpolation (precision envelope
  from the right, area under the PR curve). mAP@0.5 = mean over the classes with objects.
- view-level detection rate at 1 % and 5 % false alarms per image: an image's alarm is its
  highest detection score (0 if none); among images without objects the alarms are sorted
  descending, allowed = floor(rate * n_clean), threshold = alarm at index `allowed` (0 if
  there is none); an image alarms when its score is strictly above the threshold; detection
  rate = share of images with objects that alarm (object recall at that threshold as well).
- training wall-clock seconds (model building, data conversion and the training loop) and
  inference images/s (PNG path in, detections out; batch of one image, as `predict` does).

Detectors tried, in this order (the first that installs and runs is used; `--detector` picks
one), all trained from scratch, nothing downloaded at run time:
1. ultralytics YOLOv8n built from `yolov8n.yaml` (pretrained=False, plots=False, amp=False,
   val=False, YOLO_OFFLINE=1, settings sync off; settings and runs under a temporary folder).
2. torchvision `fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)`.
If none works, it prints which were tried and why each failed, and exits with status 3.

Training stops at `--epochs` or when `--seconds` of wall clock are spent (default 600: the
borderlens detector aims at training within 10 minutes on a 2-core CPU), whichever comes
first; the budget is checked at every batch.

End to end:

    B=target/release/borderlens   # or target/debug/borderlens
    $B nii generate --count 2000 --seed 1 --out /tmp/cmp/train-lib --size 512
    $B nii export-coco --lib /tmp/cmp/train-lib --out /tmp/cmp/train-coco --source truth
    $B nii generate --count 500 --seed 2 --out /tmp/cmp/test-lib --size 512
    $B nii export-coco --lib /tmp/cmp/test-lib --out /tmp/cmp/test-coco --source truth
    $B nii train --library /tmp/cmp/train-lib --labels truth --out /tmp/cmp/model
    $B nii evaluate --model /tmp/cmp/model --library /tmp/cmp/test-lib --labels truth \\
        --json > /tmp/cmp/ours.json
    /work/venv-compare/bin/python scripts/nii_detector_compare.py \\
        --train-coco /tmp/cmp/train-coco --test-coco /tmp/cmp/test-coco \\
        --ours /tmp/cmp/ours.json --ours-model /tmp/cmp/model \\
        --epochs 30 --imgsz 512 --seconds 600 --device cpu

`--json` prints one JSON object instead of the tables.

Installed (Python 3.11.7, virtual environment /work/venv-compare):

    python3 -m venv /work/venv-compare
    /work/venv-compare/bin/pip install torch torchvision ultralytics

The CPU-only index (`pip install torch --index-url https://download.pytorch.org/whl/cpu`)
was tried first and is not reachable from this machine (name resolution fails), so torch
came from plain PyPI: the CUDA build, with its nvidia-* wheels (several GB); it runs on the
CPU as it is (`torch.cuda` is simply unavailable). That pulled about 6 GB into the venv.
Versions that ran here: torch 2.15.0+cu132, torchvision 0.29.2+cu132, ultralytics 8.4.190,
numpy 2.4.6, opencv-python 5.1.0.95, pillow 13.0.0 (every report prints the versions used).
Both detectors trained and predicted on a tiny export (smoke runs only, 60 training and 30
test images at 256x256); no download or hub call showed in their logs (no weights, no font).

Notes on fairness: ultralytics' own augmentation (mosaic, HSV, flips, scale) and optimizer
choice (`optimizer=auto`) are left at their defaults; its validation is switched off (it
would count as training time, and only this script's metrics are reported). The PyPI
training seconds include building the model and converting the export; ours
(`--ours-model`) exclude reading the library. Images/s: ultralytics `predict` on one PNG
path at a time (reading, letterboxing, network, NMS); ours: `end_to_end_views_per_second`.
`--threads` sets torch's threads (default: every core; ultralytics itself caps torch at
cores - 1 when it selects the device; this script sets it back after that).
"""

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
import traceback

EVAL_MIN_SCORE = 0.01
IOU = 0.5
FALSE_ALARM_RATES = (0.01, 0.05)
DETECTORS = ("ultralytics", "torchvision")


# ---------------------------------------------------------------------------------------------
# data


class CocoSet:
    """A borderlens COCO export: images (path, width, height) and true boxes (x0, y0, x1, y1)."""

    def __init__(self, folder):
        path = os.path.join(folder, "annotations.json")
        if not os.path.isfile(path):
            raise SystemExit(f"error: {path} is missing (not a `borderlens nii export-coco` folder)")
        with open(path) as f:
            coco = json.load(f)
        cats = sorted(coco["categories"], key=lambda c: c["id"])
        self.classes = [c["name"] for c in cats]
        index = {c["id"]: k for k, c in enumerate(cats)}
        self.images = []
        by_id = {}
        for im in sorted(coco["images"], key=lambda i: i["id"]):
            name = im["file_name"]
            p = os.path.join(folder, name)
            if not os.path.isfile(p):
                p = os.path.join(folder, "images", name)
            if not os.path.isfile(p):
                raise SystemExit(f"error: image {name} of {path} is missing")
            entry = {"id": im["id"], "path": p, "width": im["width"], "height": im["height"],
                     "truth": []}
            by_id[im["id"]] = entry
            self.images.append(entry)
        for a in coco["annotations"]:
            x, y, w, h = a["bbox"]
            by_id[a["image_id"]]["truth"].append((index[a["category_id"]],
                                                  (x, y, x + w, y + h)))

    def objects(self):
        return sum(len(i["truth"]) for i in self.images)


# ---------------------------------------------------------------------------------------------
# metrics (as crates/nii/src/detector/eval.rs)


def iou(a, b):
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_detections(dets, truth):
    """dets: [(class, score, box)], truth: [(class, box)] -> per detection the true box index."""
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])  # stable, as Rust's sort_by
    taken = [False] * len(truth)
    out = [None] * len(dets)
    for i in order:
        k, _, b = dets[i]
        best = None
        for j, (tk, tb) in enumerate(truth):
            if taken[j] or tk != k:
                continue
            v = iou(b, tb)
            if v >= IOU and (best is None or v > best[1]):
                best = (j, v)
        if best is not None:
            taken[best[0]] = True
            out[i] = best[0]
    return out


def average_precision(scored, objects):
    if objects == 0:
        return None
    scored = sorted(scored, key=lambda s: -s[0])
    tp = 0
    points = []
    for i, (_, hit) in enumerate(scored):
        if hit:
            tp += 1
        points.append([tp / objects, tp / (i + 1)])
    best = 0.0
    for p in reversed(points):
        best = max(best, p[1])
        p[1] = best
    ap, last = 0.0, 0.0
    for r, p in points:
        if r > last:
            ap += (r - last) * p
            last = r
    return ap


def threshold_for(clean_desc, rate):
    allowed = math.floor(rate * len(clean_desc))
    return clean_desc[allowed] if allowed < len(clean_desc) else 0.0


def evaluate(test, detections):
    """detections: per test image [(class, score, (x0, y0, x1, y1))]."""
    results = []
    for im, dets in zip(test.images, detections):
        dets = [d for d in dets if d[1] >= EVAL_MIN_SCORE]
        alarm = max((d[1] for d in dets), default=0.0)
        results.append((im["truth"], dets, match_detections(dets, im["truth"]), alarm))
    per_class = []
    for k, name in enumerate(test.classes):
        objects = sum(sum(1 for t in r[0] if t[0] == k) for r in results)
        scored = [(d[1], m is not None) for r in results for d, m in zip(r[1], r[2]) if d[0] == k]
        per_class.append({"class": name, "objects": objects, "detections": len(scored),
                          "ap": average_precision(scored, objects)})
    aps = [c["ap"] for c in per_class if c["ap"] is not None]
    map50 = sum(aps) / len(aps) if aps else None
    clean = sorted((r[3] for r in results if not r[0]), reverse=True)
    threat = [r for r in results if r[0]]
    objects_total = sum(len(r[0]) for r in threat)
    ops = []
    if clean and threat:
        for rate in FALSE_ALARM_RATES:
            thr = threshold_for(clean, rate)
            fa = sum(1 for s in clean if s > thr) / len(clean)
            dr = sum(1 for r in threat if r[3] > thr) / len(threat)
            found = 0
            for truth, dets, matched, _ in threat:
                hit = [False] * len(truth)
                for d, m in zip(dets, matched):
                    if m is not None and d[1] > thr:
                        hit[m] = True
                found += sum(hit)
            ops.append({"false_alarm_target": rate, "threshold": thr, "false_alarm_rate": fa,
                        "detection_rate": dr, "object_recall": found / max(objects_total, 1)})
    return {"views": len(results), "threat_views": len(threat), "clean_views": len(clean),
            "map50": map50, "per_class": per_class, "operating_points": ops}


# ---------------------------------------------------------------------------------------------
# detectors


def versions():
    out = {"python": sys.version.split()[0]}
    for mod in ("torch", "torchvision", "ultralytics", "numpy", "cv2", "PIL"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception as e:  # noqa: BLE001
            out[mod] = f"not importable ({type(e).__name__}: {e})"
    return out


def run_ultralytics(train, test, args, work):
    os.environ.setdefault("YOLO_OFFLINE", "1")  # no hub / GitHub look-ups
    os.environ.setdefault("YOLO_CONFIG_DIR", os.path.join(work, "config"))
    t0 = time.perf_counter()
    import torch
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.utils import SETTINGS

    torch.set_num_threads(args.threads)
    try:
        SETTINGS.update({"sync": False})
    except Exception:  # noqa: BLE001
        pass

    # COCO -> YOLO layout (images linked, labels as normalised cx cy w h)
    data = os.path.join(work, "yolo")
    for split, ds in (("train", train),):
        idir = os.path.join(data, "images", split)
        ldir = os.path.join(data, "labels", split)
        os.makedirs(idir)
        os.makedirs(ldir)
        for im in ds.images:
            base = f"{im['id']:07d}_" + os.path.basename(im["path"])
            os.symlink(os.path.abspath(im["path"]), os.path.join(idir, base))
            W, H = im["width"], im["height"]
            with open(os.path.join(ldir, os.path.splitext(base)[0] + ".txt"), "w") as f:
                for k, (x0, y0, x1, y1) in im["truth"]:
                    f.write(f"{k} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} "
                            f"{(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}\n")
    yaml_path = os.path.join(data, "data.yaml")
    with open(yaml_path, "w") as f:
        f.write(f"path: {data}\ntrain: images/train\nval: images/train\n")  # val unused (see below)
        f.write("names:\n" + "".join(f"  {k}: {n}\n" for k, n in enumerate(train.classes)))

    model = YOLO("yolov8n.yaml")  # architecture only, random weights
    deadline = t0 + args.seconds
    state = {"epochs": 0, "stopped_by_budget": False}

    def on_batch_end(trainer):
        if time.perf_counter() > deadline:
            state["stopped_by_budget"] = True
            trainer.stop = True

    def on_epoch_end(trainer):
        if not state["stopped_by_budget"]:  # a full epoch
            state["epochs"] = trainer.epoch + 1
        if time.perf_counter() > deadline:
            state["stopped_by_budget"] = True
            trainer.stop = True

    def on_train_start(trainer):
        # no validation during or after training (it would count as training time; the test
        # set is evaluated below with borderlens' definitions, not ultralytics' metrics)
        trainer.validate = lambda: (dict(trainer.metrics or {}), None)
        trainer.final_eval = lambda: None
        torch.set_num_threads(args.threads)  # ultralytics' select_device set cores - 1

    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_batch_end", on_batch_end)
    model.add_callback("on_train_epoch_end", on_epoch_end)
    model.train(data=yaml_path, epochs=args.epochs, imgsz=args.imgsz, device=args.device,
                batch=args.batch, workers=0, pretrained=False, plots=False, amp=False,
                val=False, project=os.path.join(work, "runs"), name="train", exist_ok=True,
                seed=args.seed, deterministic=True, verbose=False, cache=False,
                close_mosaic=0 if args.epochs <= 2 else min(10, args.epochs // 3))
    train_seconds = time.perf_counter() - t0
    weights = model.trainer.last if os.path.isfile(str(model.trainer.last)) else None
    trained = YOLO(str(weights)) if weights else model

    # inference, timed: one image path at a time, as a scanner would feed it
    paths = [im["path"] for im in test.images]
    trained.predict(paths[0], imgsz=args.imgsz, device=args.device, conf=EVAL_MIN_SCORE,
                    verbose=False)  # warm-up, not timed
    torch.set_num_threads(args.threads)  # after the predictor's select_device
    t1 = time.perf_counter()
    detections = []
    for p in paths:
        r = trained.predict(p, imgsz=args.imgsz, device=args.device, conf=EVAL_MIN_SCORE,
                            max_det=100, verbose=False)[0]
        b = r.boxes
        detections.append([(int(c), float(s), tuple(float(v) for v in xy))
                           for c, s, xy in zip(b.cls.tolist(), b.conf.tolist(), b.xyxy.tolist())])
    infer = time.perf_counter() - t1
    return {
        "detector": "ultralytics YOLOv8n (yolov8n.yaml, from scratch)",
        "versions": {"ultralytics": ultralytics.__version__, "torch": torch.__version__},
        "epochs_done": state["epochs"], "stopped_by_budget": state["stopped_by_budget"],
        "train_seconds": train_seconds, "images_per_second": len(paths) / infer,
        "detections": detections,
    }


def run_torchvision(train, test, args, work):
    t0 = time.perf_counter()
    import numpy as np
    import torch
    import torchvision
    from PIL import Image
    from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_fpn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    nc = len(train.classes) + 1  # + background

    def load(path):
        a = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
        t = torch.from_numpy(a)[None]
        return t.expand(3, -1, -1).contiguous()

    model = fasterrcnn_mobilenet_v3_large_fpn(
        weights=None, weights_backbone=None, num_classes=nc, min_size=args.imgsz,
        max_size=args.imgsz, box_score_thresh=EVAL_MIN_SCORE, box_detections_per_img=100)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    deadline = t0 + args.seconds
    epochs_done, stopped = 0, False
    steps_per_epoch = math.ceil(len(train.images) / args.batch)
    warm = min(100, steps_per_epoch)
    step = 0
    for epoch in range(args.epochs):
        order = rng.permutation(len(train.images))
        for s in range(0, len(order), args.batch):
            if time.perf_counter() > deadline:
                stopped = True
                break
            ims, tgts = [], []
            for i in order[s:s + args.batch]:
                im = train.images[i]
                x = load(im["path"])
                boxes = torch.tensor([t[1] for t in im["truth"]], dtype=torch.float32).reshape(-1, 4)
                labels = torch.tensor([t[0] + 1 for t in im["truth"]], dtype=torch.int64)
                if rng.random() < 0.5:  # horizontal flip
                    x = x.flip(-1)
                    if len(boxes):
                        w = x.shape[-1]
                        boxes = torch.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0],
                                             boxes[:, 3]], 1)
                ims.append(x)
                tgts.append({"boxes": boxes, "labels": labels})
            for g in opt.param_groups:
                g["lr"] = 0.01 * min(1.0, (step + 1) / warm)
            loss = sum(model(ims, tgts).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        if stopped:
            break
        epochs_done = epoch + 1
    train_seconds = time.perf_counter() - t0

    model.eval()
    paths = [im["path"] for im in test.images]
    detections = []
    with torch.no_grad():
        model([load(paths[0])])  # warm-up, not timed
        t1 = time.perf_counter()
        for p in paths:
            out = model([load(p)])[0]
            detections.append([(int(c) - 1, float(s), tuple(float(v) for v in b))
                               for b, c, s in zip(out["boxes"].tolist(), out["labels"].tolist(),
                                                  out["scores"].tolist())])
        infer = time.perf_counter() - t1
    return {
        "detector": "torchvision fasterrcnn_mobilenet_v3_large_fpn (from scratch)",
        "versions": {"torchvision": torchvision.__version__, "torch": torch.__version__},
        "epochs_done": epochs_done, "stopped_by_budget": stopped,
        "train_seconds": train_seconds, "images_per_second": len(paths) / infer,
        "detections": detections,
    }


RUNNERS = {"ultralytics": run_ultralytics, "torchvision": run_torchvision}


# ---------------------------------------------------------------------------------------------
# report


def fmt(v, pct=False):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{100 * v:.1f} %" if pct else f"{v:.3f}"
    return str(v)


def print_tables(theirs, ours):
    name = theirs["detector"]
    print(f"PyPI detector: {name}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in theirs["versions"].items()))
    print(f"training: {theirs['train_seconds']:.1f} s wall clock, {theirs['epochs_done']} full "
          f"epoch(s){' (stopped by the --seconds budget)' if theirs['stopped_by_budget'] else ''}")
    ev = theirs["evaluation"]
    print(f"test set: {ev['views']} images, {ev['threat_views']} with objects, "
          f"{ev['clean_views']} without")
    print()
    cols = ("metric", "borderlens", "pypi") if ours else ("metric", "pypi")
    rows = [("mAP@0.5", ours and ours.get("map50"), ev["map50"])]
    ours_pc = {c["class"]: c for c in (ours or {}).get("per_class", [])}
    for c in ev["per_class"]:
        o = ours_pc.get(c["class"])
        rows.append((f"AP@0.5 {c['class']} ({c['objects']} obj, {c['detections']} pypi det)",
                     o and o.get("ap"), c["ap"]))
    ours_op = {round(o["false_alarm_target"], 6): o
               for o in (ours or {}).get("operating_points", [])}
    for op in ev["operating_points"]:
        o = ours_op.get(round(op["false_alarm_target"], 6))
        tag = f"{100 * op['false_alarm_target']:g} % FA"
        rows.append((f"detection rate @ {tag}", o and o.get("detection_rate"), op["detection_rate"]))
        rows.append((f"  false-alarm rate reached", o and o.get("false_alarm_rate"),
                     op["false_alarm_rate"]))
        rows.append((f"  object recall", o and o.get("object_recall"), op["object_recall"]))
        rows.append((f"  threshold", o and o.get("threshold"), op["threshold"]))
    rows.append(("inference images/s", ours and ours.get("end_to_end_views_per_second"),
                 theirs["images_per_second"]))
    rows.append(("training seconds", ours and ours.get("_train_seconds"), theirs["train_seconds"]))
    w = max(len(r[0]) for r in rows) + 2
    print(cols[0].ljust(w) + "".join(c.rjust(12) for c in cols[1:]))
    for label, o, t in rows:
        cells = [o, t] if ours else [t]
        print(label.ljust(w) + "".join(fmt(c if c is not False else None).rjust(12) for c in cells))
    if ours:
        print("\nborderlens: from --ours (`borderlens nii evaluate --json`); its inference figure "
              "is end_to_end_views_per_second (PNG to detections); its training seconds come "
              "from --ours-model DIR/detector.json (training.seconds, without reading the "
              "library) when given.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train-coco", required=True, help="`borderlens nii export-coco` folder")
    ap.add_argument("--test-coco", required=True, help="`borderlens nii export-coco` folder")
    ap.add_argument("--ours", help="`borderlens nii evaluate --json` output")
    ap.add_argument("--ours-model", help="our model folder: its detector.json gives the "
                    "training seconds")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=600.0, help="training wall-clock budget")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", choices=("auto",) + DETECTORS, default="auto")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--keep", help="keep the working folder (runs, weights) here")
    args = ap.parse_args()

    train, test = CocoSet(args.train_coco), CocoSet(args.test_coco)
    if train.classes != test.classes:
        raise SystemExit(f"error: classes differ: {train.classes} vs {test.classes}")
    ours = None
    if args.ours:
        with open(args.ours) as f:
            ours = json.load(f)
    if args.ours_model:
        with open(os.path.join(args.ours_model, "detector.json")) as f:
            secs = json.load(f).get("training", {}).get("seconds")
        ours = dict(ours or {})
        ours["_train_seconds"] = secs

    tried = []
    theirs = None
    for name in DETECTORS if args.detector == "auto" else (args.detector,):
        work = tempfile.mkdtemp(prefix=f"nii-compare-{name}-")
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)  # the libraries' logs go to stderr, so stdout keeps only the report
        try:
            theirs = RUNNERS[name](train, test, args, work)
            tried.append({"detector": name, "ok": True})
            break
        except Exception as e:  # noqa: BLE001
            reason = f"{type(e).__name__}: {e}".strip()
            tried.append({"detector": name, "ok": False, "reason": reason})
            print(f"[{name}] failed: {reason}", file=sys.stderr)
            traceback.print_exc(limit=3, file=sys.stderr)
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            if args.keep:
                dest = os.path.join(args.keep, name)
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(work, dest, symlinks=True)
            shutil.rmtree(work, ignore_errors=True)
    if theirs is None:
        if args.json:
            print(json.dumps({"pypi": None, "tried": tried, "versions": versions()}, indent=2))
        else:
            print("no PyPI detector could be trained. Tried:")
            for t in tried:
                print(f"  - {t['detector']}: {t['reason']}")
            print("versions: " + json.dumps(versions()))
        sys.exit(3)

    theirs["evaluation"] = evaluate(test, theirs.pop("detections"))
    theirs["tried"] = tried
    theirs["settings"] = {k: getattr(args, k) for k in
                          ("epochs", "imgsz", "seconds", "device", "batch", "threads", "seed")}
    theirs["train_images"] = len(train.images)
    theirs["train_objects"] = train.objects()
    if args.json:
        print(json.dumps({"pypi": theirs, "borderlens": ours}, indent=2))
    else:
        print_tables(theirs, ours)


if __name__ == "__main__":
    main()
