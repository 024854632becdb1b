#!/usr/bin/env python3
"""Loads a borderlens COCO export with pycocotools and checks it.

Checks: pycocotools' COCO() loads `annotations.json` and indexes it; every image file exists
under `images/`, is an 8-bit grayscale PNG of the listed width and height; every box lies
inside its image with positive size and `area` = w × h; and COCOeval of the export's boxes
against themselves (as detections, with their scores) gives AP = 1.0 at IoU 0.5:0.95.

Not part of CI (pycocotools is a Python package the Rust build does not need).

Usage:
    python3 -m venv /tmp/cocovenv && /tmp/cocovenv/bin/pip install pycocotools
    borderlens nii export-coco --lib LIB --out COCO --source truth
    /tmp/cocovenv/bin/python scripts/coco_check.py COCO

Exit status 1 when a check fails.
"""

import contextlib
import io
import os
import struct
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def png_header(path):
    with open(path, "rb") as f:
        head = f.read(26)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG")
    width, height = struct.unpack(">II", head[16:24])
    return width, height, head[24], head[25]


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    folder = sys.argv[1]
    problems = []
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(os.path.join(folder, "annotations.json"))
    images = gt.loadImgs(gt.getImgIds())
    for image in images:
        path = os.path.join(folder, "images", image["file_name"])
        width, height, depth, colour = png_header(path)
        if (width, height) != (image["width"], image["height"]) or (depth, colour) != (8, 0):
            problems.append(f"{path}: {width}x{height}, depth {depth}, colour type {colour}")
    anns = gt.loadAnns(gt.getAnnIds())
    for a in anns:
        image = gt.imgs[a["image_id"]]
        x, y, w, h = a["bbox"]
        if not (w > 0 and h > 0 and x >= 0 and y >= 0
                and x + w <= image["width"] and y + h <= image["height"]):
            problems.append(f"annotation {a['id']}: box {a['bbox']} outside or empty")
        if abs(a["area"] - w * h) > 1e-6:
            problems.append(f"annotation {a['id']}: area {a['area']} != {w * h}")
        if a["category_id"] not in gt.cats:
            problems.append(f"annotation {a['id']}: unknown category {a['category_id']}")
    ap = None
    if anns:
        detections = [
            {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": a.get("score", 1.0)}
            for a in anns
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(detections)
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        ap = ev.stats[0]
        if abs(ap - 1.0) > 1e-9:
            problems.append(f"AP of the boxes against themselves is {ap}, not 1.0")
    print(f"{len(images)} images, {len(anns)} boxes, {len(gt.cats)} categories; "
          f"self-AP {ap}; {len(problems)} problem(s)")
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
