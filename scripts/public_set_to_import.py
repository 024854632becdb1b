#!/usr/bin/env python3
"""Turn a copy of a public X-ray set into an import folder for `borderlens nii import-scans`.

SIXray, OPIXray and HiXray ship Pascal VOC XML boxes beside 8-bit pseudo-colour JPEG images;
PIDray and CLCXray ship COCO JSON. This script writes, into --out (default: the images' folder):

- `metadata.csv`: one row per image (the scan id is the file's stem; the file's path relative to
  --out), with the licence you hold the copy under, `redistributable` false (these sets are
  academic-only), and the fields the set does not give (scanner, resolution, cargo type, date)
  from the options;
- `boxes.csv`: every box of the annotations, as one annotator source (`--annotator`), clipped to
  the image (VOC `<size>`, COCO `width`/`height`); a box left empty by the clipping, and boxes of
  images not in the folder (another split), are skipped and counted.

A large set goes in parts (`--part K/N`, each to its own --out, then one import per part): an
import reads `metadata.csv` whole, up to 64 MiB (about 600,000 rows).

Then: `borderlens nii import-scans --lib LIB OUT --renderings` (docs/nii.md, "Bringing your own
scans"). Standard library only. Exit 1 with the file and the entry named on bad input.

  scripts/public_set_to_import.py IMAGES_DIR --licence "SIXray: academic use only" \\
      --scanned-at 2019-01-01T00:00:00 --annotator sixray [--voc ANNOTATION_DIR | --coco FILE] \\
      [--out DIR] [--part K/N] [--cargo-type bag] [--scanner-model unknown] [--mm-per-pixel 1.0]
"""

import argparse
import csv
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


class Bad(Exception):
    pass


def scan_id(stem):
    """A scan id the catalogue takes: letters, digits, '-', '_', '.', not starting with '.'."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", stem).lstrip(".")
    if not cleaned or len(cleaned) > 128:
        raise Bad(f"{stem!r}: no usable scan id in the file name (1 to 128 characters)")
    return cleaned


def label(name):
    return re.sub(r"\s+", "_", name.strip().lower())


def clip(box, width, height):
    """The box inside [0, width] x [0, height] (no bound when a size is unknown), or None when
    nothing of it is left."""
    x0, y0, x1, y1 = box
    x0, y0 = max(x0, 0.0), max(y0, 0.0)
    if width:
        x1 = min(x1, float(width))
    if height:
        y1 = min(y1, float(height))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def voc_boxes(folder, ids, counts):
    """(scan id, label, x0, y0, x1, y1) of every object of every VOC file whose image is in the
    folder; VOC pixels are 1-based and inclusive, ours 0-based with x1/y1 exclusive."""
    out = []
    for path in sorted(Path(folder).glob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as e:
            raise Bad(f"{path}: not readable XML: {e}")
        filename = root.findtext("filename") or path.stem
        stem = Path(filename).stem
        if stem not in ids:
            counts["other images"] += len(list(root.iter("object")))
            continue
        width = number(root.findtext("size/width"))
        height = number(root.findtext("size/height"))
        for n, obj in enumerate(root.iter("object"), 1):
            name = obj.findtext("name")
            box = obj.find("bndbox")
            if not name or box is None:
                raise Bad(f"{path}: object {n}: no name or bndbox")
            try:
                xmin, ymin, xmax, ymax = (
                    float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")
                )
            except (TypeError, ValueError):
                raise Bad(f"{path}: object {n}: bndbox needs numbers xmin, ymin, xmax, ymax")
            box = clip((xmin - 1, ymin - 1, xmax, ymax), width, height)
            if box is None:
                counts["empty after clipping"] += 1
                continue
            out.append((ids[stem], label(name), *box))
    return out


def coco_boxes(path, ids, counts):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        images = {i["id"]: i["file_name"] for i in data["images"]}
        sizes = {i["id"]: (i.get("width"), i.get("height")) for i in data["images"]}
        categories = {c["id"]: c["name"] for c in data["categories"]}
        annotations = data["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Bad(f"{path}: not a COCO object detection file: {e!r}")
    out = []
    for a in annotations:
        where = f"{path}: annotation {a.get('id')}"
        if a.get("image_id") not in images:
            raise Bad(f"{where}: image_id {a.get('image_id')!r} unknown")
        stem = Path(images[a["image_id"]]).stem
        if stem not in ids:
            counts["other images"] += 1
            continue
        if a.get("category_id") not in categories:
            raise Bad(f"{where}: category_id {a.get('category_id')!r} unknown")
        try:
            x, y, w, h = (float(v) for v in a["bbox"])
        except (KeyError, TypeError, ValueError):
            raise Bad(f"{where}: bbox must be [x, y, w, h]")
        box = clip((x, y, x + w, y + h), *sizes[a["image_id"]])
        if box is None:
            counts["empty after clipping"] += 1
            continue
        out.append((ids[stem], label(categories[a["category_id"]]), *box))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", help="the folder of the set's images (JPEG or PNG)")
    p.add_argument("--licence", required=True, help="the licence you hold the copy under")
    p.add_argument("--scanned-at", required=True,
                   help="YYYY-MM-DDTHH:MM:SS for every scan (the sets give no scan dates)")
    p.add_argument("--voc", help="folder of Pascal VOC XML files (SIXray, OPIXray, HiXray)")
    p.add_argument("--coco", help="COCO JSON file (PIDray, CLCXray)")
    p.add_argument("--cargo-type", default="bag", choices=["bag", "parcel", "container"])
    p.add_argument("--scanner-model", default="unknown")
    p.add_argument("--mm-per-pixel", type=float, default=1.0)
    p.add_argument("--annotator", required=True,
                   help="the boxes' source name, e.g. the set's: sixray")
    p.add_argument("--out", help="where metadata.csv and boxes.csv go (default: the images)")
    p.add_argument("--part", help="K/N: only every N-th image from the K-th (1-based)")
    args = p.parse_args()
    folder = Path(args.images)
    out_dir = Path(args.out) if args.out else folder
    counts = {"other images": 0, "empty after clipping": 0}
    try:
        k, n = 1, 1
        if args.part:
            m = re.fullmatch(r"(\d+)/(\d+)", args.part)
            if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
                raise Bad(f"--part {args.part!r}: K/N with 1 <= K <= N")
            k, n = int(m.group(1)), int(m.group(2))
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise Bad(f"{folder}: no .jpg, .jpeg or .png image")
        files = files[k - 1::n]
        ids, seen = {}, set()
        for f in files:
            sid = scan_id(f.stem)
            if sid in seen:
                raise Bad(f"{f}: scan id {sid!r} given by two files")
            seen.add(sid)
            ids[f.stem] = sid
        boxes = []
        if args.voc:
            boxes += voc_boxes(args.voc, ids, counts)
        if args.coco:
            boxes += coco_boxes(args.coco, ids, counts)
        out_dir.mkdir(parents=True, exist_ok=True)
    except (Bad, OSError) as e:
        print(f"public_set_to_import: {e}", file=sys.stderr)
        return 1
    with open(out_dir / "metadata.csv", "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["scan_id", "file", "scanned_at", "scanner_model", "mm_per_pixel",
                    "cargo_type", "licence", "redistributable"])
        for f in files:
            w.writerow([ids[f.stem], os.path.relpath(f.resolve(), out_dir.resolve()),
                        args.scanned_at, args.scanner_model,
                        args.mm_per_pixel, args.cargo_type, args.licence, "false"])
    annotator = args.annotator
    if boxes:
        with open(out_dir / "boxes.csv", "w", newline="", encoding="utf-8") as out:
            w = csv.writer(out)
            w.writerow(["scan_id", "annotator", "label", "x0", "y0", "x1", "y1"])
            for sid, name, x0, y0, x1, y1 in boxes:
                w.writerow([sid, annotator, name, x0, y0, x1, y1])
    skipped = ", ".join(f"{v} boxes skipped ({k})" for k, v in counts.items() if v)
    print(f"{out_dir}: metadata.csv with {len(files)} images, boxes.csv with {len(boxes)} boxes"
          f"{'; ' + skipped if skipped else ''}; "
          f"next: borderlens nii import-scans --lib LIB {out_dir} --renderings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
