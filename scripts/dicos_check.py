#!/usr/bin/env python3
"""Reads a borderlens DICOS export with pydicom and checks it against a scan package of the same
scans (the same `borderlens nii export-dicos` / `nii export` options, so the same anonymisation).

Checks, for every scan of the package's manifest.json:
- each view and energy has `<scan>/v<view>-<energy>.dcm`, a DICOS Digital X-Ray Image (For
  Processing) that pydicom reads: 16 bits allocated and stored, unsigned, MONOCHROME2, the
  package's width and height, and pixels identical to the package's 16-bit PNG (decoded here
  with zlib, no imaging library);
- the metadata in standard attributes equals the record's: StudyDate/StudyTime and
  AcquisitionDateTime (scanned_at), ManufacturerModelName (scanner_model), ImagerPixelSpacing
  (mm_per_pixel), PatientID (the object of inspection: container or package id, else the scan
  id), OOIType and OOITypeDescriptor (cargo type), InstitutionName (location), CarrierID and
  RouteSegmentStart/EndLocationID (carrier, origin, destination, when at most 16 characters);
  the private block (creator (0071,0010) `borderlens`, element (0071,1000)) holds the record itself, equal to the manifest's;
- each view's threat detection reports match annotations.json and the true objects: the
  annotators and reviewers as TDRType OPERATOR named in OperatorsName, the model as MACHINE
  named in ThreatDetectionAlgorithmAndVersion, the consensus and the truth as GROUND TRUTH;
  each object's ThreatCategoryDescription (label), ThreatROIBase and ThreatROIExtents (box) and
  ATDAssessmentProbability (score), in order, exactly the 32-bit (FL) roundings of the package's
  values, and the reports' references to the view's images.

With a third folder (`borderlens nii export-dicom`), also checks each secondary-capture image:
SOP class, 16-bit MONOCHROME2, pixels identical to the view's high-energy channel.

Usage:
    scripts/install-pydicom.sh     # pydicom into models/python (pure Python, from PyPI)
    PYTHONPATH=models/python python3 scripts/dicos_check.py DICOS PACKAGE [SC]

Prints what it checked; exit status 1 at the first mismatch (named).
"""

import json
import os
import struct
import sys
import zlib

import pydicom

DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.501.2.2"
TDR = "1.2.840.10008.5.1.4.1.1.501.3"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
OOI_TYPE = {"bag": "BAGGAGE", "parcel": "BOX", "container": "CARGO"}


class Mismatch(Exception):
    pass


def expect(what, got, want):
    if got != want:
        raise Mismatch(f"{what}: {got!r}, expected {want!r}")


def png_gray16(path):
    """Pixels of a 16-bit grayscale, non-interlaced PNG, as a list of ints (row-major)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise Mismatch(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if (depth, colour, interlace) != (16, 0, 0):
        raise Mismatch(f"{path}: not 16-bit grayscale non-interlaced")
    raw = zlib.decompress(idat)
    stride, bpp = width * 2, 2
    out, prev = [], bytearray(stride)
    for y in range(height):
        filt = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if filt == 1:
                line[i] = (line[i] + a) & 255
            elif filt == 2:
                line[i] = (line[i] + b) & 255
            elif filt == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif filt == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        out.extend(struct.unpack(f">{width}H", bytes(line)))
        prev = line
    return width, height, out


def dicom_pixels(ds):
    raw = bytes(ds.PixelData)
    n = int(ds.Rows) * int(ds.Columns)
    return list(struct.unpack(f"<{n}H", raw[: 2 * n]))


def check_image(ds, path, png):
    width, height, pixels = png
    expect(f"{path} BitsAllocated", int(ds.BitsAllocated), 16)
    expect(f"{path} BitsStored", int(ds.BitsStored), 16)
    expect(f"{path} PixelRepresentation", int(ds.PixelRepresentation), 0)
    expect(f"{path} PhotometricInterpretation", ds.PhotometricInterpretation, "MONOCHROME2")
    expect(f"{path} Columns × Rows", (int(ds.Columns), int(ds.Rows)), (width, height))
    if dicom_pixels(ds) != pixels:
        raise Mismatch(f"{path}: pixels differ from the package's PNG")


def dicom_date_time(scanned_at):
    """DA, TM and DT of a scan's YYYY-MM-DDTHH:MM:SS (the scanner's local time)."""
    from datetime import datetime

    t = datetime.strptime(scanned_at, "%Y-%m-%dT%H:%M:%S")
    return t.strftime("%Y%m%d"), t.strftime("%H%M%S"), t.strftime("%Y%m%d%H%M%S")


def private_block(ds, element):
    block = ds.private_block(0x0071, "borderlens")
    return block[element].value


def check_metadata(ds, path, record):
    m = record["metadata"]
    # LO values hold 64 characters (the whole value is in the private record)
    expect(f"{path} ManufacturerModelName", ds.ManufacturerModelName, m["scanner_model"][:64])
    spacing = [float(v) for v in ds.ImagerPixelSpacing]
    expect(f"{path} ImagerPixelSpacing", spacing, [m["mm_per_pixel"]] * 2)
    ooi = m.get("container_id") or m.get("package_id") or m["scan_id"]
    expect(f"{path} PatientID (OOI id)", ds.PatientID, ooi if len(ooi) <= 64 else "")
    expect(f"{path} OOIType", ds.OOIType, OOI_TYPE[m["cargo_type"]])
    expect(f"{path} OOITypeDescriptor", ds.OOITypeDescriptor, m["cargo_type"])
    if m.get("location"):
        expect(f"{path} InstitutionName", ds.InstitutionName, m["location"][:64])
    for keyword, field in [
        ("CarrierID", "carrier"),
        ("RouteSegmentStartLocationID", "origin"),
        ("RouteSegmentEndLocationID", "destination"),
    ]:
        value = m.get(field)
        if value and len(value) <= 16:
            expect(f"{path} {keyword}", getattr(ds, keyword), value)
    when = dicom_date_time(m["scanned_at"])
    expect(f"{path} StudyDate", ds.StudyDate, when[0])
    expect(f"{path} StudyTime", ds.StudyTime, when[1])
    expect(f"{path} AcquisitionDateTime", ds.AcquisitionDateTime, when[2])
    stored = json.loads(private_block(ds, 0x00))
    expect(f"{path} private record (0071,1000)", stored, record)


def objects_of_report(ds, path):
    out = []
    for k, item in enumerate(ds.get("ThreatSequence", [])):
        region = item.PTORepresentationSequence[0]
        x, y = float(region.ThreatROIBase[0]), float(region.ThreatROIBase[1])
        w, h = float(region.ThreatROIExtents[0]), float(region.ThreatROIExtents[1])
        out.append(
            {
                "label": str(item.ThreatCategoryDescription),
                "bbox": [x, y, x + w, y + h],
                "score": float(item.ATDAssessmentProbability),
            }
        )
    expect(f"{path} NumberOfTotalObjects", int(ds.NumberOfTotalObjects), len(out))
    return out


def f32(v):
    """v rounded to a 32-bit float, as FL attributes hold it."""
    return struct.unpack("<f", struct.pack("<f", v))[0]


def same_objects(what, got, want):
    """The standard attributes are FL (32-bit): base, extents and score must be exactly the
    32-bit roundings of the package's x0, y0, x1 − x0, y1 − y0 and score."""
    expect(f"{what}: number of objects", len(got), len(want))
    for k, (g, w) in enumerate(zip(got, want)):
        expect(f"{what}[{k}] label", g["label"], w["label"])
        x0, y0, x1, y1 = w["bbox"]
        gx0, gy0, gx1, gy1 = g["bbox"]
        expect(f"{what}[{k}] ThreatROIBase", (gx0, gy0), (f32(x0), f32(y0)))
        expect(f"{what}[{k}] ThreatROIExtents", (gx1 - gx0, gy1 - gy0), (f32(x1 - x0), f32(y1 - y0)))
        expect(f"{what}[{k}] ATDAssessmentProbability", g["score"], f32(w.get("score", 1.0)))


def main():
    if len(sys.argv) not in (3, 4):
        print(__doc__)
        return 2
    dicos, package = sys.argv[1], sys.argv[2]
    sc = sys.argv[3] if len(sys.argv) == 4 else None
    with open(os.path.join(package, "manifest.json")) as f:
        manifest = json.load(f)
    annotations_path = os.path.join(package, "annotations.json")
    views = {}
    if os.path.exists(annotations_path):
        with open(annotations_path) as f:
            for entry in json.load(f)["scans"]:
                views[(entry["scan_id"], entry["view"])] = entry
    counts = {"images": 0, "reports": 0, "objects": 0, "secondary": 0}
    for record in manifest["scans"]:
        scan_id = record["metadata"]["scan_id"]
        folder = os.path.join(dicos, scan_id)
        for v, view in enumerate(record["views"]):
            image_uids = []
            high = None
            for channel in view["channels"]:
                path = os.path.join(folder, f"v{v}-{channel['energy']}.dcm")
                ds = pydicom.dcmread(path)
                expect(f"{path} SOPClassUID", ds.SOPClassUID, DX_FOR_PROCESSING)
                expect(f"{path} Modality", ds.Modality, "DX")
                png = png_gray16(os.path.join(package, "images", channel["image"]["sha256"] + ".png"))
                check_image(ds, path, png)
                check_metadata(ds, path, record)
                image_uids.append(ds.SOPInstanceUID)
                if channel["energy"] == "high" or high is None:
                    high = png
                counts["images"] += 1
            # The reports this view must have, in the order borderlens writes them.
            entry = views.get((scan_id, v), {})
            want = []
            for key, tdr_type, name_keyword in [
                ("annotators", "OPERATOR", "OperatorsName"),
                ("reviewers", "OPERATOR", "OperatorsName"),
                ("machines", "MACHINE", "ThreatDetectionAlgorithmAndVersion"),
            ]:
                for source in entry.get(key, []):
                    want.append((tdr_type, name_keyword, source["annotator"], source["objects"]))
            if entry.get("consensus"):
                want.append(("GROUND TRUTH", None, None, entry["consensus"]["objects"]))
            if record["provenance"]["source"] in ("synthetic",) or record["provenance"]["projections"]:
                truth = [
                    {"label": t["class"], "bbox": t["bbox"], "score": 1.0}
                    for t in record["truth"]
                    if t["view"] == v
                ]
                want.append(("GROUND TRUTH", None, None, truth))
            reports = sorted(
                (f for f in os.listdir(folder) if f.startswith(f"v{v}-tdr-") and f.endswith(".dcm")),
                key=lambda f: int(f.split("-")[2]),
            )
            expect(f"{folder} reports of view {v}", len(reports), len(want))
            for file, (tdr_type, name_keyword, name, objects) in zip(reports, want):
                path = os.path.join(folder, file)
                ds = pydicom.dcmread(path)
                expect(f"{path} SOPClassUID", ds.SOPClassUID, TDR)
                expect(f"{path} TDRType", ds.TDRType, tdr_type)
                if name_keyword:
                    expect(f"{path} {name_keyword}", str(getattr(ds, name_keyword)), name)
                refs = [r.ReferencedSOPInstanceUID for r in ds.ReferencedInstanceSequence]
                expect(f"{path} ReferencedInstanceSequence", refs, image_uids)
                same_objects(path, objects_of_report(ds, path), objects)
                counts["reports"] += 1
                counts["objects"] += len(objects)
            if sc:
                path = os.path.join(sc, scan_id, f"v{v}.dcm")
                ds = pydicom.dcmread(path)
                expect(f"{path} SOPClassUID", ds.SOPClassUID, SECONDARY_CAPTURE)
                check_image(ds, path, high)
                counts["secondary"] += 1
    print(
        f"pydicom {pydicom.__version__}: {len(manifest['scans'])} scans, {counts['images']} image "
        f"objects (pixels, metadata, record identical), {counts['reports']} threat detection "
        f"reports with {counts['objects']} objects (labels identical; boxes and scores the exact "
        f"32-bit values of the package's), "
        f"{counts['secondary']} secondary-capture images"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Mismatch as e:
        print(f"dicos_check: {e}", file=sys.stderr)
        sys.exit(1)
