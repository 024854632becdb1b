//! COCO object-detection export and import.
//!
//! [`export_coco`] writes a folder with `annotations.json` in the COCO object-detection format
//! (`info`, `licenses`, `images`, `annotations`, `categories`) and one **8-bit** grayscale PNG
//! per view (`images/<scan>-<view>.png`: the high-energy channel's transmission, or the only
//! channel's, as `t · 255`), because COCO tools read 8-bit images. The 16-bit originals and the
//! second energy stay in the library and in the scan package ([`crate::package`]). Boxes are
//! COCO's `[x, y, width, height]` in pixels, the same edges as the library's
//! `[x0, y0, x1, y1]`. Which objects: the consensus of the annotators (default), the true
//! objects of generated or projected scans, or one named annotator's. The privacy rule of the
//! scan package holds: scans not redistributable or not anonymised are left out, named with the
//! reason.
//!
//! [`import_coco`] reads a COCO file's boxes for scans already in the library (images matched
//! by the `borderlens_scan_id` and `borderlens_view` fields, or by the file name
//! `<scan>-<view>.png`), checks all of it first, and writes them as one new annotator source,
//! so that a model's or another tool's boxes are compared and merged by the consensus like a
//! person's. Importing the same file again changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::consensus::{resolve_view, AnnotatedObject, ConsensusOptions};
use crate::generate::THREAT_CLASSES;
use crate::geometry::BoxPx;
use crate::image::Mask8;
use crate::library::{
    check_annotation_on, write_durable, AnnotationRecord, AnnotationRole, Library, LibraryError,
};
use crate::package::{
    annotations_by_view, fail, new_export_folder, select_scans, sharing_refusal, Refusal,
    MAX_JSON_BYTES,
};
use crate::scan::{check_scan_id, Energy, ScanRecord};

/// The annotation file's name in an export.
pub const COCO_FILE: &str = "annotations.json";

/// Which objects an export writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CocoSource {
    /// the consensus of the annotators (accepted objects only), per view
    Consensus,
    /// the true objects of generated or projected scans
    Truth,
    /// the latest objects of one annotator (or reviewer) by name
    Annotator(String),
    /// the set a model is retrained on after people corrected its proposals: per view, the
    /// annotators' consensus where people annotated it, else the true objects where the
    /// generator knows them
    Corrected,
}

impl CocoSource {
    /// `consensus`, `truth`, or an annotator's name.
    pub fn parse(word: &str) -> CocoSource {
        match word {
            "consensus" => CocoSource::Consensus,
            "truth" => CocoSource::Truth,
            "corrected" => CocoSource::Corrected,
            other => CocoSource::Annotator(other.to_string()),
        }
    }

    /// The kind of source written in `info.description`: `consensus`, `truth` or `annotator`
    /// (never a person's name).
    pub fn kind_word(&self) -> &str {
        match self {
            CocoSource::Consensus => "consensus",
            CocoSource::Truth => "truth",
            CocoSource::Annotator(_) => "annotator",
            CocoSource::Corrected => "corrected",
        }
    }

    /// The source's word: `consensus`, `truth` or the annotator's name.
    pub fn word(&self) -> &str {
        match self {
            CocoSource::Consensus => "consensus",
            CocoSource::Truth => "truth",
            CocoSource::Annotator(name) => name,
            CocoSource::Corrected => "corrected",
        }
    }
}

/// What to export.
#[derive(Clone, Debug)]
pub struct CocoExportOptions {
    /// the scans (`None`: every scan of the library)
    pub scans: Option<Vec<String>>,
    /// which objects
    pub source: CocoSource,
}

impl Default for CocoExportOptions {
    fn default() -> Self {
        CocoExportOptions {
            scans: None,
            source: CocoSource::Consensus,
        }
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CocoExportSummary {
    /// the folder (`None` when no scan could be exported and nothing was written)
    pub folder: Option<PathBuf>,
    /// the source of the objects
    pub source: String,
    /// scans written
    pub scans: usize,
    /// images (views) written
    pub images: usize,
    /// boxes written
    pub annotations: usize,
    /// categories written
    pub categories: usize,
    /// scans left out, each with its reason
    pub refused: Vec<Refusal>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CocoImportSummary {
    /// the annotator source written
    pub source: String,
    /// images of the file (each a view of a scan of the library)
    pub images: usize,
    /// boxes read
    pub annotations: usize,
    /// annotation lines (one per view) added to the library
    pub lines_added: usize,
    /// annotation lines already in the library, identical
    pub lines_present: usize,
}

/// `info` of a COCO file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoInfo {
    /// what the file holds
    #[serde(default)]
    pub description: String,
    /// the writing program's version
    #[serde(default)]
    pub version: String,
    /// year of the export
    #[serde(default)]
    pub year: i32,
    /// who made it
    #[serde(default)]
    pub contributor: String,
    /// when, UTC
    #[serde(default)]
    pub date_created: String,
    /// the source of the objects (`consensus`, `truth` or an annotator)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_source: Option<String>,
}

/// One entry of `licenses`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoLicense {
    /// id referenced by images
    pub id: u64,
    /// the licence (SPDX id or text, as the scan records it)
    pub name: String,
    /// a URL (empty when unknown)
    #[serde(default)]
    pub url: String,
}

/// One entry of `images`: a view of a scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// image id
    pub id: u64,
    /// `<scan>-<view>.png` (under `images/`)
    pub file_name: String,
    /// width, pixels
    pub width: u32,
    /// height, pixels
    pub height: u32,
    /// licence id
    #[serde(default)]
    pub license: Option<u64>,
    /// the scan in the library
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_scan_id: Option<String>,
    /// the view's index in the scan
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_view: Option<usize>,
    /// the view's name
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_view_name: Option<String>,
    /// `real`, `staged`, `synthetic` or `projected`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_provenance: Option<String>,
    /// the energy channel the 8-bit image was made from (`high`, or `low` when the only one)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub borderlens_energy: Option<String>,
}

/// One entry of `annotations`: a box.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// annotation id
    pub id: u64,
    /// the image
    pub image_id: u64,
    /// the category
    pub category_id: u64,
    /// `[x, y, width, height]`, pixels
    pub bbox: Vec<f64>,
    /// width × height
    #[serde(default)]
    pub area: f64,
    /// always 0 (single objects)
    #[serde(default)]
    pub iscrowd: u8,
    /// confidence (consensus score, a model's score; 1 for a person)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
}

/// One entry of `categories`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// category id
    pub id: u64,
    /// the class name (`knife`, ...)
    pub name: String,
    /// `threat` for the threat classes, `other` for any other label
    #[serde(default)]
    pub supercategory: String,
}

/// A COCO object-detection file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoFile {
    /// about the file
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<CocoInfo>,
    /// licences of the images
    #[serde(default)]
    pub licenses: Vec<CocoLicense>,
    /// the images
    pub images: Vec<CocoImage>,
    /// the boxes
    #[serde(default)]
    pub annotations: Vec<CocoAnnotation>,
    /// the classes
    pub categories: Vec<CocoCategory>,
}

/// The name of a view in file names: its name when that is a safe file-name word, else its index.
fn view_word(record: &ScanRecord, view: usize) -> String {
    let name = &record.views[view].name;
    if check_scan_id(name).is_ok() {
        name.clone()
    } else {
        view.to_string()
    }
}

/// The 8-bit image's file name of a view: `<scan>-<view>.png`.
pub fn image_file_name(record: &ScanRecord, view: usize) -> String {
    format!(
        "{}-{}.png",
        record.metadata.scan_id,
        view_word(record, view)
    )
}

/// Whether people (annotators, not reviewers or models) drew on this view.
pub(crate) fn annotated_by_people(lines: Option<&Vec<AnnotationRecord>>) -> bool {
    lines.is_some_and(|l| l.iter().any(|r| r.role == AnnotationRole::Annotator))
}

/// The objects of a view from a source.
pub(crate) fn objects_of(
    record: &ScanRecord,
    view: usize,
    source: &CocoSource,
    lines: Option<&Vec<AnnotationRecord>>,
) -> Vec<AnnotatedObject> {
    match source {
        CocoSource::Corrected => {
            let source = if annotated_by_people(lines) {
                CocoSource::Consensus
            } else {
                CocoSource::Truth
            };
            objects_of(record, view, &source, lines)
        }
        CocoSource::Truth => record
            .truth
            .iter()
            .filter(|t| t.view == view)
            .map(|t| AnnotatedObject {
                label: t.class.clone(),
                bbox: t.bbox,
                score: 1.0,
            })
            .collect(),
        CocoSource::Consensus => {
            let lines: Vec<&AnnotationRecord> = lines.into_iter().flatten().collect();
            resolve_view(&lines, &ConsensusOptions::default()).objects()
        }
        CocoSource::Annotator(name) => lines
            .into_iter()
            .flatten()
            .rfind(|l| &l.annotator == name)
            .map(|l| l.objects.clone())
            .unwrap_or_default(),
    }
}

/// The high-energy channel (or the only one) as 8-bit: `round(t · 255)`.
fn eight_bit(library: &Library, record: &ScanRecord, view: usize) -> Result<Mask8, LibraryError> {
    let channels = &record.views[view].channels;
    let channel = channels
        .iter()
        .find(|c| c.energy == Energy::High)
        .unwrap_or(&channels[0]);
    let image = library.read_image(&channel.image)?;
    Ok(Mask8 {
        width: image.width,
        height: image.height,
        data: image
            .data
            .iter()
            .map(|&v| ((u32::from(v) * 255 + 32767) / 65535) as u8)
            .collect(),
    })
}

/// Exports scans of a library in the COCO object-detection format into `out`, a new or empty
/// folder: `annotations.json` and `images/<scan>-<view>.png` (8-bit).
///
/// Scans whose licence forbids redistribution or that are not anonymised
/// ([`ScanRecord::privacy_problem`]) are left out and listed in
/// [`CocoExportSummary::refused`]; when no scan is left, nothing is written. Errors: an unknown
/// scan in the selection, an annotator who drew nothing in the library, a damaged image, a
/// folder that cannot be written.
pub fn export_coco(
    library: &Library,
    options: &CocoExportOptions,
    out: &Path,
) -> Result<CocoExportSummary, LibraryError> {
    let selected = select_scans(library, options.scans.as_deref())?;
    if let CocoSource::Annotator(name) = &options.source {
        if !library.annotations().iter().any(|a| &a.annotator == name) {
            return Err(fail(
                &library.root().join(crate::library::ANNOTATIONS_FILE),
                Some("annotator"),
                format!("no annotation by '{name}' in the library (sources: consensus, truth, or an annotator's name)"),
            ));
        }
    }
    let mut refused = Vec::new();
    let mut records = Vec::new();
    for record in selected {
        match sharing_refusal(record, true) {
            Some(refusal) => refused.push(refusal),
            None => records.push(record),
        }
    }
    let mut summary = CocoExportSummary {
        folder: None,
        source: options.source.word().to_string(),
        scans: 0,
        images: 0,
        annotations: 0,
        categories: 0,
        refused,
    };
    if records.is_empty() {
        return Ok(summary);
    }
    let images_dir = new_export_folder(out, "a COCO export")?;

    // Objects first, so that the categories are known.
    let lines = annotations_by_view(library);
    let mut per_view: Vec<(&ScanRecord, usize, Vec<AnnotatedObject>)> = Vec::new();
    let mut other_labels = BTreeSet::new();
    for record in &records {
        for v in 0..record.views.len() {
            let objects = objects_of(
                record,
                v,
                &options.source,
                lines.get(&(record.metadata.scan_id.clone(), v)),
            );
            for o in &objects {
                if !THREAT_CLASSES.iter().any(|c| c.word() == o.label) {
                    other_labels.insert(o.label.clone());
                }
            }
            per_view.push((record, v, objects));
        }
    }
    let mut categories: Vec<CocoCategory> = THREAT_CLASSES
        .iter()
        .map(|c| (c.word().to_string(), "threat"))
        .chain(other_labels.into_iter().map(|l| (l, "other")))
        .enumerate()
        .map(|(i, (name, sup))| CocoCategory {
            id: i as u64 + 1,
            name,
            supercategory: sup.to_string(),
        })
        .collect();
    categories.sort_by_key(|c| c.id);
    let category_id: HashMap<&str, u64> =
        categories.iter().map(|c| (c.name.as_str(), c.id)).collect();

    let mut licenses: Vec<CocoLicense> = Vec::new();
    let mut images = Vec::new();
    let mut annotations = Vec::new();
    for (record, v, objects) in &per_view {
        let licence = &record.provenance.licence;
        let license_id = match licenses.iter().find(|l| &l.name == licence) {
            Some(l) => l.id,
            None => {
                let id = licenses.len() as u64 + 1;
                licenses.push(CocoLicense {
                    id,
                    name: licence.clone(),
                    url: String::new(),
                });
                id
            }
        };
        let image = eight_bit(library, record, *v)?;
        let file_name = image_file_name(record, *v);
        let path = images_dir.join(&file_name);
        let png = image
            .to_png()
            .map_err(|e| fail(&path, None, e.to_string()))?;
        fs::write(&path, &png).map_err(|e| fail(&path, None, e.to_string()))?;
        let image_id = images.len() as u64 + 1;
        let energy = record.views[*v]
            .channels
            .iter()
            .find(|c| c.energy == Energy::High)
            .unwrap_or(&record.views[*v].channels[0])
            .energy;
        images.push(CocoImage {
            id: image_id,
            file_name,
            width: image.width,
            height: image.height,
            license: Some(license_id),
            borderlens_scan_id: Some(record.metadata.scan_id.clone()),
            borderlens_view: Some(*v),
            borderlens_view_name: Some(record.views[*v].name.clone()),
            borderlens_provenance: Some(record.provenance.share().to_string()),
            borderlens_energy: Some(energy.word().to_string()),
        });
        for o in objects {
            let (w, h) = (o.bbox.x1 - o.bbox.x0, o.bbox.y1 - o.bbox.y0);
            annotations.push(CocoAnnotation {
                id: annotations.len() as u64 + 1,
                image_id,
                category_id: category_id[o.label.as_str()],
                bbox: vec![o.bbox.x0, o.bbox.y0, w, h],
                area: w * h,
                iscrowd: 0,
                score: Some(o.score),
            });
        }
    }
    let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    let file = CocoFile {
        info: Some(CocoInfo {
            // Not the library's path (it may name a user's home folder), nor an annotator's name.
            description: format!(
                "borderlens X-ray library: {} objects, 8-bit views of the high-energy transmission",
                options.source.kind_word()
            ),
            version: env!("CARGO_PKG_VERSION").to_string(),
            year: now.format("%Y").to_string().parse().unwrap_or(0),
            contributor: "borderlens".to_string(),
            date_created: now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            borderlens_source: Some(options.source.kind_word().to_string()),
        }),
        licenses,
        images,
        annotations,
        categories,
    };
    crate::library::sync_dir(&images_dir)?;
    let path = out.join(COCO_FILE);
    let text = serde_json::to_string_pretty(&file).map_err(|e| fail(&path, None, e.to_string()))?;
    write_durable(&path, (text + "\n").as_bytes())?;
    summary.folder = Some(out.to_path_buf());
    summary.scans = records.len();
    summary.images = file.images.len();
    summary.annotations = file.annotations.len();
    summary.categories = file.categories.len();
    Ok(summary)
}

fn same_objects(a: &[AnnotatedObject], b: &[AnnotatedObject]) -> bool {
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-6 * (1.0 + x.abs().max(y.abs()));
    a.len() == b.len()
        && a.iter().zip(b).all(|(p, q)| {
            p.label == q.label
                && close(p.score, q.score)
                && <[f64; 4]>::from(p.bbox)
                    .iter()
                    .zip(<[f64; 4]>::from(q.bbox).iter())
                    .all(|(x, y)| close(*x, *y))
        })
}

/// Imports the boxes of a COCO file into a library as the annotator source `source_name`.
///
/// Every image must be a view of a scan of the library (by `borderlens_scan_id` and
/// `borderlens_view`, or by the file name `<scan>-<view>.png`) of the same size; every
/// annotation must name a listed image and category, have a unique id, and a box of positive
/// width and height inside its image. All of it is checked before anything is written; an
/// error names the file, the annotation id and the field. Each listed image becomes one
/// annotation line (an image with no box: the source saw nothing there). A line identical to
/// the source's latest on that view is not written again.
pub fn import_coco(
    library: &mut Library,
    file: &Path,
    source_name: &str,
) -> Result<CocoImportSummary, LibraryError> {
    if source_name.trim().is_empty() || matches!(source_name, "consensus" | "truth") {
        return Err(fail(
            file,
            None,
            format!("'{source_name}' cannot name a source; give a name that is not empty, 'consensus' or 'truth'"),
        ));
    }
    let size = fs::metadata(file)
        .map_err(|e| fail(file, None, e.to_string()))?
        .len();
    if size > MAX_JSON_BYTES {
        return Err(fail(
            file,
            None,
            format!("{size} bytes; the largest COCO file read is {MAX_JSON_BYTES}"),
        ));
    }
    let text = fs::read_to_string(file).map_err(|e| fail(file, None, e.to_string()))?;
    let coco: CocoFile = serde_json::from_str(&text)
        .map_err(|e| fail(file, None, format!("not a COCO object-detection file: {e}")))?;

    // Images → views of the library.
    let mut by_name: HashMap<String, (String, usize)> = HashMap::new();
    for r in library.records() {
        for v in 0..r.views.len() {
            by_name.insert(image_file_name(r, v), (r.metadata.scan_id.clone(), v));
        }
    }
    let mut image_of: HashMap<u64, (String, usize)> = HashMap::new();
    let mut views_seen = HashSet::new();
    for (i, image) in coco.images.iter().enumerate() {
        let at = |f: &str| format!("images[{i}].{f}");
        let key = match (&image.borderlens_scan_id, image.borderlens_view) {
            (Some(scan), view) => {
                let view = view.unwrap_or(0);
                match library.get(scan) {
                    Some(r) if view < r.views.len() => (scan.clone(), view),
                    Some(_) => {
                        return Err(fail(
                            file,
                            Some(&at("borderlens_view")),
                            format!("image id {}: scan '{scan}' has no view {view}", image.id),
                        ))
                    }
                    None => {
                        return Err(fail(
                            file,
                            Some(&at("borderlens_scan_id")),
                            format!(
                                "image id {}: unknown image, scan '{scan}' is not in the library",
                                image.id
                            ),
                        ))
                    }
                }
            }
            (None, _) => {
                let base = Path::new(&image.file_name)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                by_name.get(&base).cloned().ok_or_else(|| {
                    fail(
                        file,
                        Some(&at("file_name")),
                        format!(
                            "image id {}: unknown image '{}', not a view <scan>-<view>.png of a scan in the library",
                            image.id, image.file_name
                        ),
                    )
                })?
            }
        };
        let record = library.get(&key.0).expect("matched above");
        let first = &record.views[key.1].channels[0].image;
        if (image.width, image.height) != (first.width, first.height) {
            return Err(fail(
                file,
                Some(&at("width")),
                format!(
                    "image id {}: {} × {} pixels, but view {} of scan '{}' is {} × {}",
                    image.id, image.width, image.height, key.1, key.0, first.width, first.height
                ),
            ));
        }
        if image_of.insert(image.id, key.clone()).is_some() {
            return Err(fail(
                file,
                Some(&at("id")),
                format!("image id {} is used twice", image.id),
            ));
        }
        if !views_seen.insert(key.clone()) {
            return Err(fail(
                file,
                Some(&at("file_name")),
                format!(
                    "image id {}: view {} of scan '{}' is listed twice",
                    image.id, key.1, key.0
                ),
            ));
        }
    }
    let mut category_of: HashMap<u64, &str> = HashMap::new();
    for (i, c) in coco.categories.iter().enumerate() {
        if c.name.trim().is_empty() {
            return Err(fail(
                file,
                Some(&format!("categories[{i}].name")),
                format!("category id {}: the name is empty", c.id),
            ));
        }
        if category_of.insert(c.id, c.name.as_str()).is_some() {
            return Err(fail(
                file,
                Some(&format!("categories[{i}].id")),
                format!("category id {} is used twice", c.id),
            ));
        }
    }
    // Annotations, grouped per view in the file's image order.
    let mut objects: BTreeMap<(String, usize), Vec<AnnotatedObject>> = BTreeMap::new();
    for key in image_of.values() {
        objects.entry(key.clone()).or_default();
    }
    let mut ids = HashSet::new();
    for (i, a) in coco.annotations.iter().enumerate() {
        let at = |f: &str| format!("annotations[{i}].{f}");
        let bad = |f: &str, reason: String| {
            fail(
                file,
                Some(&at(f)),
                format!("annotation id {}: {reason}", a.id),
            )
        };
        if !ids.insert(a.id) {
            return Err(bad("id", "the id is used twice".into()));
        }
        let Some(key) = image_of.get(&a.image_id) else {
            return Err(bad(
                "image_id",
                format!("unknown image, no image has id {}", a.image_id),
            ));
        };
        let Some(label) = category_of.get(&a.category_id) else {
            return Err(bad(
                "category_id",
                format!("unknown category, no category has id {}", a.category_id),
            ));
        };
        let &[x, y, w, h] = a.bbox.as_slice() else {
            return Err(bad(
                "bbox",
                format!("{} numbers; a box is [x, y, width, height]", a.bbox.len()),
            ));
        };
        if ![x, y, w, h].iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
            return Err(bad(
                "bbox",
                format!("[{x}, {y}, {w}, {h}] has a width or height that is not positive"),
            ));
        }
        let record = library.get(&key.0).expect("matched above");
        let image = &record.views[key.1].channels[0].image;
        let bbox = BoxPx::new(x, y, x + w, y + h).map_err(|e| bad("bbox", e))?;
        if !bbox.inside(image.width, image.height) {
            return Err(bad(
                "bbox",
                format!(
                    "[{x}, {y}, {w}, {h}] lies outside the {} × {} image",
                    image.width, image.height
                ),
            ));
        }
        let score = a.score.unwrap_or(1.0);
        if !(score.is_finite() && score >= 0.0) {
            return Err(bad("score", format!("{score} is not a confidence")));
        }
        objects
            .get_mut(key)
            .expect("every image")
            .push(AnnotatedObject {
                label: label.to_string(),
                bbox,
                score,
            });
    }
    // Lines to write, each checked like the library's own.
    let latest = annotations_by_view(library);
    let mut summary = CocoImportSummary {
        source: source_name.to_string(),
        images: coco.images.len(),
        annotations: coco.annotations.len(),
        ..CocoImportSummary::default()
    };
    let mut to_write = Vec::new();
    for ((scan_id, view), objects) in objects {
        let line = AnnotationRecord {
            scan_id: scan_id.clone(),
            annotator: source_name.to_string(),
            role: AnnotationRole::Annotator,
            view,
            objects,
            seconds: None,
            guideline: None,
            review: None,
        };
        let record = library.get(&scan_id).expect("matched above");
        check_annotation_on(record, &line)
            .map_err(|(field, reason)| fail(file, Some(&field), reason))?;
        let present = latest.get(&(scan_id, view)).is_some_and(|lines| {
            lines.iter().any(|l| {
                l.annotator == source_name
                    && l.role == AnnotationRole::Annotator
                    && same_objects(&l.objects, &line.objects)
            })
        });
        if present {
            summary.lines_present += 1;
        } else {
            to_write.push(line);
        }
    }
    for line in to_write {
        library.add_annotation(line)?;
        summary.lines_added += 1;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_scan, GeneratorParams};
    use crate::library::prepare;
    use crate::scan::Source;

    const SIZE: u32 = 48;

    fn params() -> GeneratorParams {
        GeneratorParams {
            width: SIZE,
            height: SIZE,
            threat_rate: 1.0,
            threat_scale: [0.2, 0.3],
            ..GeneratorParams::default()
        }
    }

    /// Three synthetic scans annotated by `a` and `b` (b's boxes a little narrower, so the
    /// consensus is fractional), one scan not redistributable, one real scan not anonymised.
    fn library() -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        for i in 0..3 {
            lib.commit(prepare(generate_scan(&params(), 7, i)).unwrap())
                .unwrap();
        }
        let mut closed = prepare(generate_scan(&params(), 8, 0)).unwrap();
        closed.record.metadata.scan_id = "closed".into();
        closed.record.provenance.redistributable = false;
        lib.commit(closed).unwrap();
        let mut real = prepare(generate_scan(&params(), 8, 1)).unwrap();
        let r = &mut real.record;
        r.metadata.scan_id = "real-0".into();
        r.provenance.source = Source::Real;
        r.provenance.generator = None;
        r.clutter = None;
        r.provenance.licence = "CC-BY-4.0".into();
        lib.commit(real).unwrap();
        let records: Vec<ScanRecord> = lib.records().to_vec();
        for record in &records {
            for (name, shrink) in [("a", 0.0), ("b", 0.5)] {
                let objects = record
                    .truth
                    .iter()
                    .filter(|t| t.view == 0)
                    .map(|t| AnnotatedObject {
                        label: t.class.clone(),
                        bbox: BoxPx::new(t.bbox.x0, t.bbox.y0, t.bbox.x1 - shrink, t.bbox.y1)
                            .unwrap(),
                        score: 1.0,
                    })
                    .collect();
                lib.add_annotation(AnnotationRecord {
                    scan_id: record.metadata.scan_id.clone(),
                    annotator: name.into(),
                    role: AnnotationRole::Annotator,
                    view: 0,
                    objects,
                    guideline: None,
                    review: None,
                    seconds: Some(12.0),
                })
                .unwrap();
            }
        }
        (dir, lib)
    }

    fn expected(lib: &Library, source: &CocoSource) -> Vec<(String, usize, Vec<AnnotatedObject>)> {
        let lines = crate::package::annotations_by_view(lib);
        let mut out = Vec::new();
        for r in lib.records() {
            if r.metadata.scan_id == "closed" || r.metadata.scan_id == "real-0" {
                continue;
            }
            for v in 0..r.views.len() {
                let key = (r.metadata.scan_id.clone(), v);
                out.push((key.0.clone(), v, objects_of(r, v, source, lines.get(&key))));
            }
        }
        out
    }

    fn read(path: &Path) -> CocoFile {
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
    }

    type Boxes = BTreeMap<(String, usize), Vec<(String, [f64; 4])>>;

    /// The boxes of a COCO file per (scan, view), as `[x0, y0, x1, y1]` and labels.
    fn boxes_of(file: &CocoFile) -> Boxes {
        let mut out: Boxes = BTreeMap::new();
        for image in &file.images {
            out.entry((
                image.borderlens_scan_id.clone().unwrap(),
                image.borderlens_view.unwrap(),
            ))
            .or_default();
        }
        for a in &file.annotations {
            let image = file.images.iter().find(|i| i.id == a.image_id).unwrap();
            let category = file
                .categories
                .iter()
                .find(|c| c.id == a.category_id)
                .unwrap();
            let b = &a.bbox;
            assert_eq!(a.iscrowd, 0);
            assert!((a.area - b[2] * b[3]).abs() < 1e-9);
            out.get_mut(&(
                image.borderlens_scan_id.clone().unwrap(),
                image.borderlens_view.unwrap(),
            ))
            .unwrap()
            .push((
                category.name.clone(),
                [b[0], b[1], b[0] + b[2], b[1] + b[3]],
            ));
        }
        out
    }

    fn assert_same(got: &Boxes, want: &[(String, usize, Vec<AnnotatedObject>)]) {
        assert_eq!(got.len(), want.len());
        for (scan, view, objects) in want {
            let boxes = &got[&(scan.clone(), *view)];
            assert_eq!(boxes.len(), objects.len(), "{scan} view {view}");
            for ((label, b), o) in boxes.iter().zip(objects) {
                assert_eq!(label, &o.label);
                let w: [f64; 4] = o.bbox.into();
                for (x, y) in b.iter().zip(w.iter()) {
                    assert!((x - y).abs() < 1e-9, "{scan}: {b:?} vs {w:?}");
                }
            }
        }
    }

    #[test]
    fn export_import_round_trip_consensus_truth_and_annotator() {
        let (dir, mut lib) = library();
        let out = dir.path().join("coco");
        let s = export_coco(&lib, &CocoExportOptions::default(), &out).unwrap();
        // The two scans that may not leave are named, with their field.
        let refused: Vec<(&str, &str)> = s
            .refused
            .iter()
            .map(|r| (r.scan_id.as_str(), r.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            [
                ("closed", "provenance.redistributable"),
                ("real-0", "metadata.declared_contents")
            ]
        );
        assert_eq!(s.scans, 3);
        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join(COCO_FILE)).unwrap()).unwrap();
        for key in ["info", "licenses", "images", "annotations", "categories"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        let file = read(&out.join(COCO_FILE));
        assert_eq!(file.images.len(), s.images);
        assert!(s.annotations > 0 && s.annotations == file.annotations.len());
        assert_eq!(file.categories.len(), 9);
        assert_eq!(file.licenses.len(), 1);
        for image in &file.images {
            assert_eq!(image.license, Some(1));
            assert_eq!(image.borderlens_provenance.as_deref(), Some("synthetic"));
            let png = fs::read(out.join("images").join(&image.file_name)).unwrap();
            let mask = Mask8::from_png(&png).expect("8-bit grayscale");
            assert_eq!((mask.width, mask.height), (image.width, image.height));
        }
        let want = expected(&lib, &CocoSource::Consensus);
        assert!(want
            .iter()
            .any(|(_, _, o)| o.iter().any(|o| o.bbox.x1.fract() != 0.0)));
        assert_same(&boxes_of(&file), &want);

        // Back in as another source: the same boxes.
        let before = lib.annotations().len();
        let imported = import_coco(&mut lib, &out.join(COCO_FILE), "coco-back").unwrap();
        assert_eq!(imported.lines_added, file.images.len());
        assert_eq!(lib.annotations().len(), before + file.images.len());
        let back = expected(&lib, &CocoSource::Annotator("coco-back".into()));
        assert_eq!(back.len(), want.len());
        for ((s1, v1, o1), (s2, v2, o2)) in back.iter().zip(&want) {
            assert_eq!((s1, v1), (s2, v2));
            assert!(same_objects(o1, o2), "{s1}: {o1:?} vs {o2:?}");
        }
        // Again: nothing new, also after reopening.
        let mut lib = Library::open(lib.root()).unwrap();
        let again = import_coco(&mut lib, &out.join(COCO_FILE), "coco-back").unwrap();
        assert_eq!(
            (again.lines_added, again.lines_present),
            (0, file.images.len())
        );

        // The truth and one annotator.
        for source in [CocoSource::Truth, CocoSource::Annotator("b".into())] {
            let out = dir.path().join(format!("coco-{}", source.word()));
            export_coco(
                &lib,
                &CocoExportOptions {
                    scans: None,
                    source: source.clone(),
                },
                &out,
            )
            .unwrap();
            let file = read(&out.join(COCO_FILE));
            assert_eq!(
                file.info.as_ref().unwrap().borderlens_source.as_deref(),
                Some(source.kind_word())
            );
            assert_same(&boxes_of(&file), &expected(&lib, &source));
        }
        let err = export_coco(
            &lib,
            &CocoExportOptions {
                scans: None,
                source: CocoSource::Annotator("nobody".into()),
            },
            &dir.path().join("none"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("'nobody'"), "{err}");
        // A folder that is not empty is refused.
        let err = export_coco(&lib, &CocoExportOptions::default(), &out).unwrap_err();
        assert!(err.to_string().contains("not an empty folder"), "{err}");
    }

    #[test]
    fn import_refusals_name_file_annotation_and_field_and_write_nothing() {
        let (dir, mut lib) = library();
        let out = dir.path().join("coco");
        export_coco(&lib, &CocoExportOptions::default(), &out).unwrap();
        let text = fs::read_to_string(out.join(COCO_FILE)).unwrap();
        let base: serde_json::Value = serde_json::from_str(&text).unwrap();
        let first_id = base["annotations"][0]["id"].as_u64().unwrap();
        type Edit = fn(&mut serde_json::Value);
        let cases: Vec<(&str, Edit, &str)> = vec![
            (
                "unknown image",
                |j| j["annotations"][0]["image_id"] = 999.into(),
                "annotations[0].image_id",
            ),
            (
                "unknown category",
                |j| j["annotations"][0]["category_id"] = 999.into(),
                "annotations[0].category_id",
            ),
            (
                "outside",
                |j| j["annotations"][0]["bbox"][0] = 47.5.into(),
                "annotations[0].bbox",
            ),
            (
                "zero width",
                |j| j["annotations"][0]["bbox"][2] = 0.0.into(),
                "annotations[0].bbox",
            ),
            (
                "negative height",
                |j| j["annotations"][0]["bbox"][3] = (-2.0).into(),
                "annotations[0].bbox",
            ),
        ];
        let before = fs::read(lib.root().join(crate::library::ANNOTATIONS_FILE)).unwrap();
        for (what, edit, field) in cases {
            let mut j = base.clone();
            edit(&mut j);
            let path = dir.path().join(format!("{}.json", what.replace(' ', "-")));
            fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
            let err = import_coco(&mut lib, &path, "model")
                .unwrap_err()
                .to_string();
            assert!(err.contains(&path.display().to_string()), "{what}: {err}");
            assert!(err.contains(&format!("field {field}")), "{what}: {err}");
            assert!(
                err.contains(&format!("annotation id {first_id}")),
                "{what}: {err}"
            );
        }
        // A duplicate annotation id: the second use is named.
        let mut j = base.clone();
        let copy = j["annotations"][0].clone();
        let list = j["annotations"].as_array_mut().unwrap();
        list.push(copy);
        let n = list.len() - 1;
        let path = dir.path().join("duplicate.json");
        fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
        let err = import_coco(&mut lib, &path, "model")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("field annotations[{n}].id")), "{err}");
        assert!(
            err.contains(&format!("annotation id {first_id}: the id is used twice")),
            "{err}"
        );
        // An image that is no view of the library, by file name.
        let mut j = base.clone();
        let image = j["images"][0].as_object_mut().unwrap();
        image.retain(|k, _| !k.starts_with("borderlens_"));
        image.insert("file_name".into(), "elsewhere-top.png".into());
        let path = dir.path().join("unknown-image.json");
        fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
        let err = import_coco(&mut lib, &path, "model")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field images[0].file_name"), "{err}");
        assert!(err.contains("unknown image 'elsewhere-top.png'"), "{err}");
        // Reserved source names.
        let err = import_coco(&mut lib, &out.join(COCO_FILE), "consensus").unwrap_err();
        assert!(err.to_string().contains("'consensus'"), "{err}");
        // Nothing was written by any refusal.
        let after = fs::read(lib.root().join(crate::library::ANNOTATIONS_FILE)).unwrap();
        assert_eq!(before, after);
        // Matching by file name alone works.
        let mut j = base.clone();
        for image in j["images"].as_array_mut().unwrap() {
            image
                .as_object_mut()
                .unwrap()
                .retain(|k, _| !k.starts_with("borderlens_"));
        }
        let path = dir.path().join("by-name.json");
        fs::write(&path, serde_json::to_string(&j).unwrap()).unwrap();
        let s = import_coco(&mut lib, &path, "model").unwrap();
        assert_eq!(s.lines_added, base["images"].as_array().unwrap().len());
    }
}
