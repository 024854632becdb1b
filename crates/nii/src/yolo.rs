//! YOLO export and import: the label format of Ultralytics YOLO and Darknet, for the detection
//! tools that read it rather than COCO.
//!
//! An export is a folder: `images/<scan>-<view>.png` (the same 8-bit views as the COCO export),
//! `labels/<scan>-<view>.txt` (one line per box: `class cx cy w h`, the class's index in
//! `classes.txt`, the box's centre and size as fractions of the image's width and height; an
//! empty file for a view without boxes), `classes.txt` (one class name per line) and `data.yaml`
//! (Ultralytics' dataset file: `path`, `train`, `val`, `nc`, `names`). It is made from a COCO
//! export of the same options (staged, then removed), so the same boxes, refusals and images.
//!
//! An import reads such a folder's `classes.txt` and label files (`labels/*.txt`, or `*.txt`
//! beside `classes.txt`), an optional sixth column being the score, matches each file to a view
//! of the library by its name `<scan>-<view>`, checks every line (file and line named), and
//! writes the boxes as one annotator source, as [`import_coco`] does (it is done through it).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::coco::{
    export_coco, image_file_name, import_coco, CocoAnnotation, CocoCategory, CocoExportOptions,
    CocoFile, CocoImage, CocoImportSummary, COCO_FILE,
};
use crate::library::{sync_dir, write_durable, Library, LibraryError};
use crate::package::{fail, read_capped, read_json, refuse_non_empty, undo_export, Refusal};

/// The class list of a YOLO folder.
pub const CLASSES_FILE: &str = "classes.txt";
/// Ultralytics' dataset file.
pub const DATA_FILE: &str = "data.yaml";
/// Largest label or class file read, bytes.
const MAX_TEXT_BYTES: u64 = 16 << 20;

/// What a YOLO export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct YoloExportSummary {
    /// the folder (`None` when no scan could be exported and nothing was written)
    pub folder: Option<PathBuf>,
    /// which boxes (`consensus`, `truth`, `corrected` or an annotator's name)
    pub source: String,
    /// scans written
    pub scans: usize,
    /// images (views) written, each with its label file
    pub images: usize,
    /// boxes written
    pub boxes: usize,
    /// classes in `classes.txt`
    pub classes: usize,
    /// scans left out, each with its reason
    pub refused: Vec<Refusal>,
}

/// A fraction with six decimals, as YOLO tools write them.
fn fraction(v: f64) -> String {
    format!("{:.6}", v.clamp(0.0, 1.0))
}

/// Exports scans of a library in the YOLO format into `out`, a new or empty folder (see the
/// module documentation). The same scans, boxes and refusals as [`export_coco`] with the same
/// options; nothing is written when no scan is left.
pub fn export_yolo(
    library: &Library,
    options: &CocoExportOptions,
    out: &Path,
) -> Result<YoloExportSummary, LibraryError> {
    let created = !out.exists();
    refuse_non_empty(out, "a YOLO export")?;
    fs::create_dir_all(out).map_err(|e| fail(out, None, e.to_string()))?;
    let staging = out.join(".coco-staging");
    let result = coco_to_yolo(library, options, &staging, out);
    let _ = fs::remove_dir_all(&staging);
    if !matches!(&result, Ok(s) if s.folder.is_some()) {
        undo_export(out, created);
    }
    result
}

fn coco_to_yolo(
    library: &Library,
    options: &CocoExportOptions,
    staging: &Path,
    out: &Path,
) -> Result<YoloExportSummary, LibraryError> {
    let coco = export_coco(library, options, staging)?;
    let mut summary = YoloExportSummary {
        folder: None,
        source: coco.source.clone(),
        scans: coco.scans,
        images: 0,
        boxes: 0,
        classes: 0,
        refused: coco.refused,
    };
    if coco.folder.is_none() {
        return Ok(summary);
    }
    let file: CocoFile = read_json(&staging.join(COCO_FILE))?;
    let images = out.join("images");
    fs::rename(staging.join("images"), &images).map_err(|e| fail(&images, None, e.to_string()))?;
    let labels = out.join("labels");
    fs::create_dir_all(&labels).map_err(|e| fail(&labels, None, e.to_string()))?;
    let mut categories = file.categories.clone();
    categories.sort_by_key(|c| c.id);
    let class_of: HashMap<u64, usize> = categories
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut by_image: HashMap<u64, Vec<&CocoAnnotation>> = HashMap::new();
    for a in &file.annotations {
        by_image.entry(a.image_id).or_default().push(a);
    }
    for image in &file.images {
        let (w, h) = (f64::from(image.width), f64::from(image.height));
        let mut text = String::new();
        for a in by_image.get(&image.id).into_iter().flatten() {
            let [x, y, bw, bh] = [a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]];
            text.push_str(&format!(
                "{} {} {} {} {}\n",
                class_of[&a.category_id],
                fraction((x + bw / 2.0) / w),
                fraction((y + bh / 2.0) / h),
                fraction(bw / w),
                fraction(bh / h)
            ));
            summary.boxes += 1;
        }
        let stem = image.file_name.trim_end_matches(".png");
        let path = labels.join(format!("{stem}.txt"));
        fs::write(&path, text).map_err(|e| fail(&path, None, e.to_string()))?;
        summary.images += 1;
    }
    sync_dir(&labels)?;
    let names: Vec<&str> = categories.iter().map(|c| c.name.as_str()).collect();
    write_durable(
        &out.join(CLASSES_FILE),
        (names.join("\n") + "\n").as_bytes(),
    )?;
    let mut yaml = String::from(
        "# borderlens X-ray library, YOLO export (8-bit views of the high-energy transmission)\n\
         path: .\ntrain: images\nval: images\n",
    );
    yaml.push_str(&format!("nc: {}\nnames:\n", names.len()));
    for (i, n) in names.iter().enumerate() {
        yaml.push_str(&format!("  {i}: {n}\n"));
    }
    write_durable(&out.join(DATA_FILE), yaml.as_bytes())?;
    summary.classes = names.len();
    summary.folder = Some(out.to_path_buf());
    Ok(summary)
}

/// The label files of a YOLO folder: `labels/*.txt`, else the `*.txt` files beside
/// `classes.txt` (not `classes.txt` itself), sorted.
fn label_files(dir: &Path) -> Result<Vec<PathBuf>, LibraryError> {
    let labels = dir.join("labels");
    let from = if labels.is_dir() {
        labels
    } else {
        dir.to_path_buf()
    };
    let mut out = Vec::new();
    for e in fs::read_dir(&from).map_err(|e| fail(&from, None, format!("cannot read: {e}")))? {
        let path = e.map_err(|e| fail(&from, None, e.to_string()))?.path();
        let is_txt = path.extension().is_some_and(|x| x == "txt");
        if is_txt && path.file_name().is_some_and(|n| n != CLASSES_FILE) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Imports a YOLO folder's boxes for scans already in the library as the annotator source
/// `source_name` (see the module documentation). Every line is checked first — five or six
/// numbers, a class listed in `classes.txt`, a centre inside the image, a positive width and
/// height — and the error names the file, the line and the column; a label file whose name is
/// no view `<scan>-<view>` of the library is refused by name. Importing again changes nothing.
pub fn import_yolo(
    library: &mut Library,
    dir: &Path,
    source_name: &str,
) -> Result<CocoImportSummary, LibraryError> {
    let classes_path = dir.join(CLASSES_FILE);
    let classes_text = String::from_utf8(
        read_capped(&classes_path, MAX_TEXT_BYTES).map_err(|e| fail(&classes_path, None, e))?,
    )
    .map_err(|e| fail(&classes_path, None, format!("not UTF-8 text: {e}")))?;
    let classes: Vec<String> = classes_text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if classes.is_empty() {
        return Err(fail(&classes_path, None, "lists no class"));
    }
    let mut views: HashMap<String, (String, usize, u32, u32)> = HashMap::new();
    for r in library.records() {
        for v in 0..r.views.len() {
            let stem = image_file_name(r, v).trim_end_matches(".png").to_string();
            let image = &r.views[v].channels[0].image;
            views.insert(
                stem,
                (r.metadata.scan_id.clone(), v, image.width, image.height),
            );
        }
    }
    let mut coco = CocoFile {
        info: None,
        licenses: Vec::new(),
        images: Vec::new(),
        annotations: Vec::new(),
        categories: classes
            .iter()
            .enumerate()
            .map(|(i, name)| CocoCategory {
                id: i as u64 + 1,
                name: name.clone(),
                supercategory: String::new(),
            })
            .collect(),
    };
    let files = label_files(dir)?;
    if files.is_empty() {
        return Err(fail(dir, None, "holds no label file (labels/*.txt)"));
    }
    for path in &files {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some((scan, view, width, height)) = views.get(&stem).cloned() else {
            return Err(fail(
                path,
                Some("file name"),
                format!("'{stem}' is no view <scan>-<view> of a scan in the library"),
            ));
        };
        let image_id = coco.images.len() as u64 + 1;
        coco.images.push(CocoImage {
            id: image_id,
            file_name: format!("{stem}.png"),
            width,
            height,
            license: None,
            borderlens_scan_id: Some(scan),
            borderlens_view: Some(view),
            borderlens_view_name: None,
            borderlens_provenance: None,
            borderlens_energy: None,
        });
        let text =
            String::from_utf8(read_capped(path, MAX_TEXT_BYTES).map_err(|e| fail(path, None, e))?)
                .map_err(|e| fail(path, None, format!("not UTF-8 text: {e}")))?;
        let (w, h) = (f64::from(width), f64::from(height));
        for (n, line) in text.lines().enumerate() {
            let at = |field: &str, reason: String| LibraryError {
                file: path.clone(),
                line: Some(n + 1),
                field: Some(field.to_string()),
                reason,
            };
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.is_empty() {
                continue;
            }
            if !(words.len() == 5 || words.len() == 6) {
                return Err(at(
                    "class",
                    format!(
                        "{} values; a box is `class cx cy w h` (and optionally a score)",
                        words.len()
                    ),
                ));
            }
            let class: usize = words[0]
                .parse()
                .ok()
                .filter(|c| *c < classes.len())
                .ok_or_else(|| {
                    at(
                        "class",
                        format!(
                            "'{}' is not a class index of classes.txt (0 to {})",
                            words[0],
                            classes.len() - 1
                        ),
                    )
                })?;
            let mut v = [0.0f64; 5];
            for (k, name) in ["cx", "cy", "w", "h", "score"].iter().enumerate() {
                let Some(word) = words.get(k + 1) else {
                    v[k] = 1.0;
                    continue;
                };
                v[k] = word
                    .parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0 && (k == 4 || *x <= 1.0))
                    .ok_or_else(|| at(name, format!("'{word}' is not a fraction from 0 to 1")))?;
            }
            let [cx, cy, bw, bh, score] = v;
            if bw <= 0.0 || bh <= 0.0 {
                return Err(at(
                    if bw <= 0.0 { "w" } else { "h" },
                    "an empty box".to_string(),
                ));
            }
            // In pixels, clamped to the image (a centre near the edge with rounded fractions may
            // reach a hair beyond it).
            let x0 = ((cx - bw / 2.0) * w).clamp(0.0, w);
            let y0 = ((cy - bh / 2.0) * h).clamp(0.0, h);
            let x1 = ((cx + bw / 2.0) * w).clamp(0.0, w);
            let y1 = ((cy + bh / 2.0) * h).clamp(0.0, h);
            if x1 <= x0 || y1 <= y0 {
                return Err(at("cx", "the box lies outside its image".to_string()));
            }
            coco.annotations.push(CocoAnnotation {
                id: coco.annotations.len() as u64 + 1,
                image_id,
                category_id: class as u64 + 1,
                bbox: vec![x0, y0, x1 - x0, y1 - y0],
                area: (x1 - x0) * (y1 - y0),
                iscrowd: 0,
                score: Some(score),
            });
        }
    }
    // Through the COCO import (the same lines, the same idempotence), from a file staged in
    // the library folder.
    let staged = library.root().join(format!(
        ".staging-yolo-{}-{}.json",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let text = serde_json::to_string(&coco).map_err(|e| fail(&staged, None, e.to_string()))?;
    fs::write(&staged, text).map_err(|e| fail(&staged, None, e.to_string()))?;
    let result = import_coco(library, &staged, source_name).map_err(|mut e| {
        if e.file == staged {
            e.file = dir.to_path_buf();
            e.reason = format!("{} (as read into a COCO file)", e.reason);
        }
        e
    });
    let _ = fs::remove_file(&staged);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coco::CocoSource;
    use crate::generate::{generate_scan, GeneratorParams};
    use crate::library::prepare;

    fn library() -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let params = GeneratorParams {
            width: 96,
            height: 64,
            threat_rate: 1.0,
            threat_scale: [0.3, 0.4],
            ..GeneratorParams::default()
        };
        for i in 0..3 {
            lib.commit(prepare(generate_scan(&params, 11, i)).unwrap())
                .unwrap();
        }
        (dir, lib)
    }

    fn truth() -> CocoExportOptions {
        CocoExportOptions {
            scans: None,
            source: CocoSource::Truth,
        }
    }

    #[test]
    fn a_yolo_export_imports_back_as_the_same_boxes_within_rounding() {
        let (dir, mut lib) = library();
        let out = dir.path().join("yolo");
        let s = export_yolo(&lib, &truth(), &out).unwrap();
        assert_eq!((s.scans, s.images, s.classes), (3, 3, 9));
        let truth_boxes: usize = lib.records().iter().map(|r| r.truth.len()).sum();
        assert!(truth_boxes > 0);
        assert_eq!(s.boxes, truth_boxes);
        let classes = fs::read_to_string(out.join(CLASSES_FILE)).unwrap();
        assert_eq!(classes.lines().next(), Some("knife"));
        let yaml = fs::read_to_string(out.join(DATA_FILE)).unwrap();
        assert!(
            yaml.contains("nc: 9") && yaml.contains("  0: knife"),
            "{yaml}"
        );
        assert!(out.join("images/syn-11-000000-top.png").is_file());
        assert!(!out.join(".coco-staging").exists());
        let r = import_yolo(&mut lib, &out, "yolo-run").unwrap();
        assert_eq!(r.lines_added, 3);
        // The boxes back, in pixels, within the rounding of six decimals.
        for record in lib.records().to_vec() {
            let line = lib
                .annotations()
                .iter()
                .find(|a| a.scan_id == record.metadata.scan_id && a.annotator == "yolo-run")
                .unwrap()
                .clone();
            assert_eq!(line.objects.len(), record.truth.len());
            for (o, t) in line.objects.iter().zip(&record.truth) {
                assert_eq!(o.label, t.class);
                for (a, b) in <[f64; 4]>::from(o.bbox)
                    .iter()
                    .zip(<[f64; 4]>::from(t.bbox))
                {
                    assert!((a - b).abs() < 1e-3, "{a} vs {b}");
                }
            }
        }
        let again = import_yolo(&mut lib, &out, "yolo-run").unwrap();
        assert_eq!((again.lines_added, again.lines_present), (0, 3));
    }

    /// Spoils an export with `damage`; the import is refused naming `file`, `line` and
    /// `field`, and nothing is written.
    fn refused(damage: impl FnOnce(&Path), file: &str, line: Option<usize>, field: &str) {
        let (dir, mut lib) = library();
        let out = dir.path().join("yolo");
        export_yolo(&lib, &truth(), &out).unwrap();
        damage(&out);
        let before = lib.annotations().len();
        let e = import_yolo(&mut lib, &out, "yolo-run").unwrap_err();
        assert!(e.file.ends_with(file), "{e}");
        assert_eq!((e.line, e.field.as_deref()), (line, Some(field)), "{e}");
        assert_eq!(lib.annotations().len(), before);
    }

    fn first_label(out: &Path) -> PathBuf {
        let mut files = label_files(out).unwrap();
        files.retain(|f| fs::metadata(f).unwrap().len() > 0);
        files.remove(0)
    }

    #[test]
    fn bad_label_lines_and_unknown_files_are_refused_by_file_line_and_column() {
        let set = |line: &'static str| {
            move |out: &Path| {
                let f = first_label(out);
                fs::write(&f, format!("{line}\n")).unwrap();
            }
        };
        let name = |out: &Path| {
            first_label(out)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        };
        let (dir, lib) = library();
        let probe = dir.path().join("probe");
        export_yolo(&lib, &truth(), &probe).unwrap();
        let file = name(&probe);
        refused(set("12 0.5 0.5 0.1 0.1"), &file, Some(1), "class");
        refused(set("0 0.5 1.5 0.1 0.1"), &file, Some(1), "cy");
        refused(set("0 0.5 0.5 0 0.1"), &file, Some(1), "w");
        refused(set("0 0.5 0.5 0.1"), &file, Some(1), "class");
        refused(set("0 0.5 0.5 0.1 nan"), &file, Some(1), "h");
        refused(
            |out: &Path| {
                fs::write(out.join("labels/ghost-top.txt"), "0 0.5 0.5 0.1 0.1\n").unwrap()
            },
            "ghost-top.txt",
            None,
            "file name",
        );
    }
}
