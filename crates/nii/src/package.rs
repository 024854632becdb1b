//! The scan package: the exchange format between administrations.
//!
//! A package is a folder:
//! - `manifest.json`: format and version, producer, creation time, every scan in full (the
//!   catalogue record: metadata, views, provenance with licence and redistribution flag, true
//!   objects, anonymisation log) and every image (`images/<sha256>.png`, its SHA-256, size in
//!   bytes, bit depth, width and height);
//! - `images/<sha256>.png`: the images as stored in the library (16-bit transmission, 8-bit
//!   object masks), named by the SHA-256 of their bytes;
//! - `annotations.json`: per scan and view, the annotators' objects, the consensus merged from
//!   them, and the reviewers' decisions.
//!
//! JSON Schemas of both files are in `schemas/nii-package-manifest.schema.json` and
//! `schemas/nii-package-annotations.schema.json` (a test validates exported packages against
//! them). [`export_package`] refuses scans whose licence forbids redistribution or that are not
//! anonymised, naming the scan and the reason; it can anonymise them on the way out
//! ([`crate::anonymise::Anonymiser`]). [`import_package`] checks the whole package before it
//! writes anything, and importing the same package again changes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::anonymise::{mask_pixels, Anonymiser};
use crate::consensus::{consensus, AnnotatedObject, AnnotatorObjects, ConsensusOptions};
use crate::geometry::BoxPx;
use crate::image::{Image16, Mask8};
use crate::library::{
    check_annotation_on, sha256_hex, write_durable, AnnotationRecord, AnnotationRole, Library,
    LibraryError, Prepared,
};
use crate::scan::{ImageRef, ScanRecord};

/// `format` of `manifest.json`.
pub const PACKAGE_FORMAT: &str = "borderlens-nii-package";
/// `format` of `annotations.json`.
pub const ANNOTATIONS_FORMAT: &str = "borderlens-nii-package-annotations";
/// Version of both files this build writes and reads.
pub const PACKAGE_VERSION: u32 = 1;
/// The manifest's file name.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The annotations' file name.
pub const PACKAGE_ANNOTATIONS_FILE: &str = "annotations.json";
/// Largest `manifest.json` or `annotations.json` read, bytes.
pub const MAX_JSON_BYTES: u64 = 512 * 1024 * 1024;

/// Who made a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Producer {
    /// the program (`borderlens`)
    pub software: String,
    /// its version
    pub version: String,
    /// the administration or unit that exported it, when given
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation: Option<String>,
}

/// One image file of a package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageImage {
    /// SHA-256 of the file's bytes, lower-case hex
    pub sha256: String,
    /// `images/<sha256>.png`
    pub path: String,
    /// size of the file, bytes
    pub bytes: u64,
    /// 16 (transmission) or 8 (object mask)
    pub bit_depth: u8,
    /// width, pixels
    pub width: u32,
    /// height, pixels
    pub height: u32,
}

/// `manifest.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`PACKAGE_FORMAT`]
    pub format: String,
    /// [`PACKAGE_VERSION`]
    pub version: u32,
    /// who made it
    pub producer: Producer,
    /// when, UTC, RFC 3339
    pub created: String,
    /// the scans, in full
    pub scans: Vec<ScanRecord>,
    /// every image file
    pub images: Vec<PackageImage>,
}

/// One source's objects on a scan's view.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceObjects {
    /// the annotator or reviewer (a pseudonym when the export was anonymised)
    pub annotator: String,
    /// the objects drawn
    pub objects: Vec<AnnotatedObject>,
    /// seconds the annotation took
    #[serde(default)]
    pub seconds: Option<f64>,
    /// the version of the annotation guideline it was drawn under, when recorded
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guideline: Option<u32>,
}

/// One object of the consensus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsensusObject {
    /// most voted label
    pub label: String,
    /// fused box
    pub bbox: BoxPx,
    /// consensus score (sum of members' scores / annotators assigned)
    pub score: f64,
    /// whether its label reached the quorum with no tie
    pub accepted: bool,
    /// why it is disputed (empty: not disputed)
    pub disputes: Vec<String>,
    /// the annotators whose boxes it merges
    pub annotators: Vec<String>,
}

/// The consensus of a scan's view, as computed by the exporting library.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageConsensus {
    /// boxes match at this IoU
    pub iou_threshold: f64,
    /// votes needed to accept an object
    pub quorum: usize,
    /// merged objects
    pub objects: Vec<ConsensusObject>,
}

/// The annotations of one view of one scan, per source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanAnnotations {
    /// the scan (in the manifest)
    pub scan_id: String,
    /// which view
    pub view: usize,
    /// the annotators' objects
    pub annotators: Vec<SourceObjects>,
    /// merged from the annotators (informative: an importing library computes its own)
    pub consensus: Option<PackageConsensus>,
    /// the reviewers' decisions
    #[serde(default)]
    pub reviewers: Vec<SourceObjects>,
    /// a model's proposals (MACHINE lines, named by the model id), only when the export asked
    /// for them ([`ExportOptions::include_machine`]): not reference labels, never merged into
    /// the consensus
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub machines: Vec<SourceObjects>,
}

impl ScanAnnotations {
    /// The annotations of view `view` of `scan_id`, none yet.
    pub fn new(scan_id: &str, view: usize) -> ScanAnnotations {
        ScanAnnotations {
            scan_id: scan_id.to_string(),
            view,
            annotators: Vec::new(),
            consensus: None,
            reviewers: Vec::new(),
            machines: Vec::new(),
        }
    }
}

/// `annotations.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageAnnotations {
    /// [`ANNOTATIONS_FORMAT`]
    pub format: String,
    /// [`PACKAGE_VERSION`]
    pub version: u32,
    /// per scan and view
    pub scans: Vec<ScanAnnotations>,
}

/// What to export and how.
#[derive(Debug, Default)]
pub struct ExportOptions {
    /// the scans (`None`: every scan of the library)
    pub scans: Option<Vec<String>>,
    /// anonymise on the way out (key and masks)
    pub anonymiser: Option<Anonymiser>,
    /// the producer's organisation, written in the manifest
    pub organisation: Option<String>,
    /// also export the model's proposals (MACHINE lines) of each view; off by default, since
    /// they are not reference labels (the DICOS export turns it on: a threat detection report
    /// of type MACHINE per model)
    pub include_machine: bool,
}

/// A scan an export left out, and why.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Refusal {
    /// the scan
    pub scan_id: String,
    /// the field behind the refusal
    pub field: String,
    /// why
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scan '{}' not exported: field {}: {}",
            self.scan_id, self.field, self.reason
        )
    }
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExportSummary {
    /// the package folder (`None` when nothing could be exported and nothing was written)
    pub package: Option<PathBuf>,
    /// scans written
    pub scans: usize,
    /// image files written
    pub images: usize,
    /// bytes of image files
    pub image_bytes: u64,
    /// annotation lines (annotators and reviewers) written
    pub annotations: usize,
    /// scans anonymised on the way out
    pub anonymised: usize,
    /// image regions masked, over all scans and views
    pub masked_regions: usize,
    /// scans left out, each with its reason
    pub refused: Vec<Refusal>,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ImportSummary {
    /// scans added to the library
    pub scans_added: usize,
    /// scans already in the library, identical
    pub scans_present: usize,
    /// annotation lines added
    pub annotations_added: usize,
    /// annotation lines already in the library
    pub annotations_present: usize,
}

pub(crate) fn fail(file: &Path, field: Option<&str>, reason: impl Into<String>) -> LibraryError {
    LibraryError {
        file: file.to_path_buf(),
        line: None,
        field: field.map(str::to_string),
        reason: reason.into(),
    }
}

/// The scans an export reads: every scan of the library, or those of `ids` in their order (each
/// once); an id the library does not hold is an error naming it.
pub(crate) fn select_scans<'a>(
    library: &'a Library,
    ids: Option<&[String]>,
) -> Result<Vec<&'a ScanRecord>, LibraryError> {
    let Some(ids) = ids else {
        return Ok(library.records().iter().collect());
    };
    let catalogue = library.root().join(crate::library::CATALOGUE_FILE);
    let mut seen = HashSet::new();
    let mut list = Vec::new();
    for id in ids {
        let record = library.get(id).ok_or_else(|| {
            fail(
                &catalogue,
                Some("metadata.scan_id"),
                format!("scan '{id}' is not in the library"),
            )
        })?;
        if seen.insert(id.as_str()) {
            list.push(record);
        }
    }
    Ok(list)
}

/// Why `record` may not leave the library as it is, if it may not: a licence that forbids
/// redistribution, or personal data not anonymised ([`ScanRecord::privacy_problem`]).
pub(crate) fn sharing_refusal(record: &ScanRecord, check_privacy: bool) -> Option<Refusal> {
    let scan_id = record.metadata.scan_id.clone();
    if !record.provenance.redistributable {
        return Some(Refusal {
            scan_id,
            field: "provenance.redistributable".into(),
            reason: format!(
                "its licence ('{}') does not allow giving it to another administration",
                record.provenance.licence
            ),
        });
    }
    let reason = record.privacy_problem().filter(|_| check_privacy)?;
    let field = record
        .personal_fields_present()
        .first()
        .map_or("anonymisation".to_string(), |f| {
            format!("metadata.{}", f.name)
        });
    Some(Refusal {
        scan_id,
        field,
        reason,
    })
}

/// Refuses an `out` folder that exists and is not empty (`what` is written into a new or empty
/// one).
pub(crate) fn refuse_non_empty(out: &Path, what: &str) -> Result<(), LibraryError> {
    if out.exists()
        && fs::read_dir(out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(fail(
            out,
            None,
            format!("is not an empty folder; {what} is written into a new or empty one"),
        ));
    }
    Ok(())
}

/// Takes back what an export wrote into `out`: the folder itself when the export created it,
/// else its content (it was empty before: [`refuse_non_empty`]).
pub(crate) fn undo_export(out: &Path, created: bool) {
    if created {
        let _ = fs::remove_dir_all(out);
    } else if let Ok(entries) = fs::read_dir(out) {
        for e in entries.flatten() {
            let path = e.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Refuses an `out` folder that exists and is not empty (`what` is written into a new or empty
/// one), then makes `out/images`, which it returns.
pub(crate) fn new_export_folder(out: &Path, what: &str) -> Result<PathBuf, LibraryError> {
    refuse_non_empty(out, what)?;
    let images_dir = out.join("images");
    fs::create_dir_all(&images_dir).map_err(|e| fail(&images_dir, None, e.to_string()))?;
    Ok(images_dir)
}

pub(crate) fn now_utc() -> String {
    chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The annotation lines of the library per (scan, view): the latest line of each annotator,
/// reviewer and model (as the report reads them), in the order those lines were saved.
pub(crate) fn annotations_by_view(
    library: &Library,
) -> BTreeMap<(String, usize), Vec<AnnotationRecord>> {
    let mut out: BTreeMap<(String, usize), Vec<AnnotationRecord>> = BTreeMap::new();
    for r in library.annotations() {
        let list = out.entry((r.scan_id.clone(), r.view)).or_default();
        // a later line replaces the earlier one and moves to the end: the list keeps the order
        // the latest lines were saved in (a review is stale when an annotator saved after it)
        list.retain(|a| !(a.annotator == r.annotator && a.role == r.role));
        list.push(r.clone());
    }
    out
}

/// Exports scans of a library as a package into `out`, a new or empty folder.
///
/// Each selected scan is checked first: a licence that forbids redistribution
/// (`provenance.redistributable` false) or personal data not anonymised
/// ([`ScanRecord::privacy_problem`]) leaves it out, with the reason in
/// [`ExportSummary::refused`]; with an [`Anonymiser`], scans are anonymised on the way out
/// (pseudonyms, free text removed, masks burned into every energy channel, annotators'
/// names pseudonymised, the log kept with each scan) and the library itself is unchanged.
/// When no scan is left, nothing is written. Errors: an unknown scan in the selection, a
/// damaged image in the library, a folder that cannot be written.
pub fn export_package(
    library: &Library,
    options: &ExportOptions,
    out: &Path,
) -> Result<ExportSummary, LibraryError> {
    let selected = select_scans(library, options.scans.as_deref())?;
    let at = now_utc();
    let mut refused = Vec::new();
    let mut records = Vec::new();
    for record in selected {
        if let Some(refusal) = sharing_refusal(record, false) {
            refused.push(refusal);
            continue;
        }
        let shared = match &options.anonymiser {
            Some(a) => match a.apply(record, &at) {
                Ok(r) => r,
                Err((field, reason)) => {
                    refused.push(Refusal {
                        scan_id: record.metadata.scan_id.clone(),
                        field,
                        reason,
                    });
                    continue;
                }
            },
            None => record.clone(),
        };
        if let Some(refusal) = sharing_refusal(&shared, true) {
            refused.push(refusal);
            continue;
        }
        records.push((record, shared));
    }
    let mut summary = ExportSummary {
        package: None,
        scans: 0,
        images: 0,
        image_bytes: 0,
        annotations: 0,
        anonymised: 0,
        masked_regions: 0,
        refused,
    };
    if records.is_empty() {
        return Ok(summary);
    }

    let images_dir = new_export_folder(out, "a package")?;

    // Annotations, per scan and view. Annotators and reviewers are staff: their names never
    // leave in clear. With a key they become keyed pseudonyms (the same person, the same
    // pseudonym in every export with that key); without one, `annotator-1`, `annotator-2`… in
    // the order they first appear in this package (the same person within the package only).
    let by_view = annotations_by_view(library);
    let mut numbered: HashMap<String, String> = HashMap::new();
    let mut scans_out = Vec::new();
    let mut image_list: Vec<PackageImage> = Vec::new();
    let mut written: HashSet<String> = HashSet::new();
    let mut manifest_scans = Vec::new();
    for (original, mut shared) in records {
        let id = original.metadata.scan_id.clone();
        // Images: copied as stored, or masked and encoded again.
        let regions = shared
            .anonymisation
            .as_ref()
            .map(|l| l.masked.clone())
            .unwrap_or_default();
        for v in 0..original.views.len() {
            for c in 0..original.views[v].channels.len() {
                let source = &original.views[v].channels[c].image;
                // Masking again a region burned in by an earlier anonymisation changes nothing.
                let masked_here =
                    options.anonymiser.is_some() && regions.iter().any(|r| r.view == v);
                let (image_ref, bytes) = if masked_here {
                    let mut image = library.read_image(source)?;
                    mask_pixels(&mut image, v, &regions);
                    let png = image
                        .to_png()
                        .map_err(|e| fail(&images_dir, None, e.to_string()))?;
                    let sha = sha256_hex(&png);
                    (
                        ImageRef {
                            sha256: sha,
                            width: image.width,
                            height: image.height,
                        },
                        png,
                    )
                } else {
                    let bytes = read_library_image(library, source)?;
                    (source.clone(), bytes)
                };
                add_image(
                    out,
                    &image_ref,
                    &bytes,
                    16,
                    &mut written,
                    &mut image_list,
                    &mut summary,
                )?;
                shared.views[v].channels[c].image = image_ref;
            }
        }
        if let Some(mask) = &original.mask {
            let bytes = read_library_image(library, mask)?;
            add_image(
                out,
                mask,
                &bytes,
                8,
                &mut written,
                &mut image_list,
                &mut summary,
            )?;
        }
        // Annotations of this scan.
        let mut pseudonymised = HashSet::new();
        for ((scan_id, view), lines) in by_view.range((id.clone(), 0)..=(id.clone(), usize::MAX)) {
            debug_assert_eq!(scan_id, &id);
            let mut name = |n: &str| match &options.anonymiser {
                Some(a) => a.annotator(n),
                None => {
                    let next = numbered.len() + 1;
                    numbered
                        .entry(n.trim().to_string())
                        .or_insert_with(|| format!("annotator-{next}"))
                        .clone()
                }
            };
            let mut entry = ScanAnnotations::new(&id, *view);
            for line in lines {
                if line.role == AnnotationRole::Machine {
                    // A model's proposals are not reference labels: exchanged only on request,
                    // under the model's id (no person's name to hide).
                    if options.include_machine {
                        entry.machines.push(SourceObjects {
                            annotator: line.annotator.clone(),
                            objects: line.objects.clone(),
                            seconds: line.seconds,
                            guideline: line.guideline,
                        });
                        summary.annotations += 1;
                    }
                    continue;
                }
                if options.anonymiser.is_some() {
                    pseudonymised.insert(line.annotator.clone());
                }
                let source = SourceObjects {
                    annotator: name(&line.annotator),
                    objects: line.objects.clone(),
                    seconds: line.seconds,
                    guideline: line.guideline,
                };
                match line.role {
                    AnnotationRole::Annotator => entry.annotators.push(source),
                    AnnotationRole::Reviewer => entry.reviewers.push(source),
                    AnnotationRole::Machine => continue,
                }
                summary.annotations += 1;
            }
            if !entry.annotators.is_empty() {
                let input: Vec<AnnotatorObjects> = entry
                    .annotators
                    .iter()
                    .map(|a| AnnotatorObjects {
                        annotator: a.annotator.clone(),
                        objects: a.objects.clone(),
                    })
                    .collect();
                let opts = ConsensusOptions::default();
                let merged = consensus(&input, &opts);
                entry.consensus = Some(PackageConsensus {
                    iou_threshold: opts.iou_threshold,
                    quorum: opts.quorum_for(input.len()),
                    objects: merged
                        .into_iter()
                        .map(|m| ConsensusObject {
                            label: m.label,
                            bbox: m.bbox,
                            score: m.score,
                            accepted: m.accepted,
                            disputes: m.disputes,
                            annotators: m.members.into_iter().map(|x| x.annotator).collect(),
                        })
                        .collect(),
                });
            }
            if !entry.annotators.is_empty()
                || !entry.reviewers.is_empty()
                || !entry.machines.is_empty()
            {
                scans_out.push(entry);
            }
        }
        if let Some(log) = shared.anonymisation.as_mut() {
            if options.anonymiser.is_some() {
                log.annotators_pseudonymised = pseudonymised.len();
                summary.anonymised += 1;
                summary.masked_regions += regions.len();
            }
        }
        shared
            .validate()
            .map_err(|e| fail(&out.join(MANIFEST_FILE), Some(&e.field), e.reason))?;
        manifest_scans.push(shared);
        summary.scans += 1;
    }
    // Every image on disk before the files that name them.
    {
        use rayon::prelude::*;
        image_list.par_iter().try_for_each(|i| {
            let path = out.join(&i.path);
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(&path, None, e.to_string()))
        })?;
        crate::library::sync_dir(&images_dir)?;
    }
    let annotations = PackageAnnotations {
        format: ANNOTATIONS_FORMAT.to_string(),
        version: PACKAGE_VERSION,
        scans: scans_out,
    };
    let path = out.join(PACKAGE_ANNOTATIONS_FILE);
    let text =
        serde_json::to_string_pretty(&annotations).map_err(|e| fail(&path, None, e.to_string()))?;
    write_durable(&path, (text + "\n").as_bytes())?;
    let manifest = Manifest {
        format: PACKAGE_FORMAT.to_string(),
        version: PACKAGE_VERSION,
        producer: Producer {
            software: "borderlens".to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            organisation: options.organisation.clone(),
        },
        created: at,
        scans: manifest_scans,
        images: image_list,
    };
    // The manifest last: a package with a manifest is complete.
    let path = out.join(MANIFEST_FILE);
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| fail(&path, None, e.to_string()))?;
    write_durable(&path, (text + "\n").as_bytes())?;
    summary.package = Some(out.to_path_buf());
    Ok(summary)
}

fn read_library_image(library: &Library, image: &ImageRef) -> Result<Vec<u8>, LibraryError> {
    let path = library.image_path(&image.sha256);
    let bytes = fs::read(&path).map_err(|e| fail(&path, None, e.to_string()))?;
    let found = sha256_hex(&bytes);
    if found != image.sha256 {
        return Err(fail(
            &path,
            Some("sha256"),
            format!("content hash is {found}: the file was changed or damaged"),
        ));
    }
    Ok(bytes)
}

fn add_image(
    out: &Path,
    image: &ImageRef,
    bytes: &[u8],
    bit_depth: u8,
    written: &mut HashSet<String>,
    list: &mut Vec<PackageImage>,
    summary: &mut ExportSummary,
) -> Result<(), LibraryError> {
    if !written.insert(image.sha256.clone()) {
        return Ok(());
    }
    let rel = format!("images/{}.png", image.sha256);
    // Flushed together before the manifest is written (see `export_package`).
    let path = out.join(&rel);
    fs::write(&path, bytes).map_err(|e| fail(&path, None, e.to_string()))?;
    summary.images += 1;
    summary.image_bytes += bytes.len() as u64;
    list.push(PackageImage {
        sha256: image.sha256.clone(),
        path: rel,
        bytes: bytes.len() as u64,
        bit_depth,
        width: image.width,
        height: image.height,
    });
    Ok(())
}

/// The bytes of a regular file of at most `max` bytes (read with that bound, so a file that
/// grows, a FIFO or a device cannot take more); the error says why, without the path.
pub(crate) fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let meta = file.metadata().map_err(|e| format!("cannot read: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!("more than {max} bytes"));
    }
    Ok(bytes)
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LibraryError> {
    let bytes = read_capped(path, MAX_JSON_BYTES).map_err(|e| fail(path, None, e))?;
    // serde_json names the field it met (`unknown field`, `missing field`, `invalid type`)
    // with the line and column.
    serde_json::from_slice(&bytes).map_err(|e| fail(path, None, format!("not a valid file: {e}")))
}

/// A package checked in full, ready to be written.
struct Checked {
    manifest: Manifest,
    annotations: Vec<AnnotationRecord>,
}

/// `shared`: the package came from another administration (only redistributable scans belong
/// in one); false for a package staged from this site's own files (`import_staged`).
fn check_package(library: &Library, dir: &Path, shared: bool) -> Result<Checked, LibraryError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let manifest: Manifest = read_json(&manifest_path)?;
    if manifest.format != PACKAGE_FORMAT {
        return Err(fail(
            &manifest_path,
            Some("format"),
            format!("'{}'; expected '{PACKAGE_FORMAT}'", manifest.format),
        ));
    }
    if manifest.version != PACKAGE_VERSION {
        return Err(fail(
            &manifest_path,
            Some("version"),
            format!(
                "{}; this build reads version {PACKAGE_VERSION}",
                manifest.version
            ),
        ));
    }
    // The image table.
    let mut images: HashMap<&str, (usize, &PackageImage)> = HashMap::new();
    for (i, image) in manifest.images.iter().enumerate() {
        let field = |f: &str| format!("images[{i}].{f}");
        let expected = format!("images/{}.png", image.sha256);
        if image.sha256.len() != 64
            || !image
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(fail(
                &manifest_path,
                Some(&field("sha256")),
                format!("'{}' is not a lower-case hex SHA-256", image.sha256),
            ));
        }
        if image.path != expected {
            return Err(fail(
                &manifest_path,
                Some(&field("path")),
                format!("'{}'; an image's path is '{expected}'", image.path),
            ));
        }
        if image.bit_depth != 16 && image.bit_depth != 8 {
            return Err(fail(
                &manifest_path,
                Some(&field("bit_depth")),
                format!(
                    "{}; images are 16-bit transmission or 8-bit masks",
                    image.bit_depth
                ),
            ));
        }
        if images.insert(&image.sha256, (i, image)).is_some() {
            return Err(fail(
                &manifest_path,
                Some(&field("sha256")),
                format!("image {} is listed twice", image.sha256),
            ));
        }
    }
    // The scans.
    let mut ids = HashSet::new();
    for (s, record) in manifest.scans.iter().enumerate() {
        let id = &record.metadata.scan_id;
        record.validate().map_err(|e| {
            fail(
                &manifest_path,
                Some(&format!("scans[{s}].{}", e.field)),
                e.reason,
            )
        })?;
        if !ids.insert(id.as_str()) {
            return Err(fail(
                &manifest_path,
                Some(&format!("scans[{s}].metadata.scan_id")),
                format!("scan '{id}' appears twice"),
            ));
        }
        if shared && !record.provenance.redistributable {
            return Err(fail(
                &manifest_path,
                Some(&format!("scans[{s}].provenance.redistributable")),
                format!(
                    "scan '{id}' is marked as not redistributable (licence '{}'); a package holds only scans that may be shared",
                    record.provenance.licence
                ),
            ));
        }
        for (field, image) in record.images() {
            let field = format!("scans[{s}].{field}");
            let Some((i, entry)) = images.get(image.sha256.as_str()) else {
                return Err(fail(
                    &manifest_path,
                    Some(&format!("{field}.sha256")),
                    format!("image {} is not in the manifest's images", image.sha256),
                ));
            };
            let depth = if field.ends_with(".mask") { 8 } else { 16 };
            if entry.bit_depth != depth {
                return Err(fail(
                    &manifest_path,
                    Some(&format!("images[{i}].bit_depth")),
                    format!(
                        "{}-bit, but {field} needs a {depth}-bit image",
                        entry.bit_depth
                    ),
                ));
            }
            if (entry.width, entry.height) != (image.width, image.height) {
                return Err(fail(
                    &manifest_path,
                    Some(&format!("images[{i}].width")),
                    format!(
                        "{} × {}, but {field} says {} × {}",
                        entry.width, entry.height, image.width, image.height
                    ),
                ));
            }
        }
        if let Some(existing) = library.get(id) {
            if existing != record {
                return Err(fail(
                    &manifest_path,
                    Some(&format!("scans[{s}].metadata.scan_id")),
                    format!("scan '{id}' is already in the library with other content; import refused (nothing written)"),
                ));
            }
        }
    }
    // Every image file: present, its hash, its depth and size.
    for (i, entry) in manifest.images.iter().enumerate() {
        let path = dir.join(&entry.path);
        let bytes = fs::read(&path).map_err(|e| {
            fail(
                &path,
                Some(&format!("manifest images[{i}]")),
                format!("missing or unreadable: {e}"),
            )
        })?;
        check_image_bytes(&path, entry, &bytes)?;
    }
    // The annotations.
    let annotations_path = dir.join(PACKAGE_ANNOTATIONS_FILE);
    let mut lines = Vec::new();
    if annotations_path.exists() {
        let file: PackageAnnotations = read_json(&annotations_path)?;
        if file.format != ANNOTATIONS_FORMAT || file.version != PACKAGE_VERSION {
            return Err(fail(
                &annotations_path,
                Some("format"),
                format!(
                    "'{}' version {}; expected '{ANNOTATIONS_FORMAT}' version {PACKAGE_VERSION}",
                    file.format, file.version
                ),
            ));
        }
        let scans: HashMap<&str, &ScanRecord> = manifest
            .scans
            .iter()
            .map(|r| (r.metadata.scan_id.as_str(), r))
            .collect();
        for (s, entry) in file.scans.iter().enumerate() {
            let Some(scan) = scans.get(entry.scan_id.as_str()) else {
                return Err(fail(
                    &annotations_path,
                    Some(&format!("scans[{s}].scan_id")),
                    format!("scan '{}' is not in the manifest", entry.scan_id),
                ));
            };
            let sources = entry
                .annotators
                .iter()
                .map(|a| ("annotators", AnnotationRole::Annotator, a))
                .chain(
                    entry
                        .reviewers
                        .iter()
                        .map(|a| ("reviewers", AnnotationRole::Reviewer, a)),
                )
                .chain(
                    entry
                        .machines
                        .iter()
                        .map(|a| ("machines", AnnotationRole::Machine, a)),
                );
            let mut per_source = [0usize; 3];
            for (list, role, source) in sources {
                let j = &mut per_source[match role {
                    AnnotationRole::Annotator => 0,
                    AnnotationRole::Reviewer => 1,
                    AnnotationRole::Machine => 2,
                }];
                let record = AnnotationRecord {
                    scan_id: entry.scan_id.clone(),
                    annotator: source.annotator.clone(),
                    role,
                    view: entry.view,
                    objects: source.objects.clone(),
                    seconds: source.seconds,
                    guideline: source.guideline,
                    review: None,
                };
                check_annotation_on(scan, &record).map_err(|(field, reason)| {
                    let field = if field == "view" {
                        format!("scans[{s}].view")
                    } else {
                        format!("scans[{s}].{list}[{j}].{field}")
                    };
                    fail(&annotations_path, Some(&field), reason)
                })?;
                *j += 1;
                lines.push(record);
            }
            if let Some(c) = &entry.consensus {
                let Some(view) = scan.views.get(entry.view) else {
                    return Err(fail(
                        &annotations_path,
                        Some(&format!("scans[{s}].view")),
                        format!(
                            "view {} of a scan with {} view(s)",
                            entry.view,
                            scan.views.len()
                        ),
                    ));
                };
                let Some(channel) = view.channels.first() else {
                    return Err(fail(
                        &annotations_path,
                        Some(&format!("scans[{s}].view")),
                        format!("view {} has no image", entry.view),
                    ));
                };
                let image = &channel.image;
                for (k, object) in c.objects.iter().enumerate() {
                    if !object.bbox.inside(image.width, image.height) {
                        return Err(fail(
                            &annotations_path,
                            Some(&format!("scans[{s}].consensus.objects[{k}].bbox")),
                            format!(
                                "box {:?} lies outside the {} × {} image",
                                <[f64; 4]>::from(object.bbox),
                                image.width,
                                image.height
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(Checked {
        manifest,
        annotations: lines,
    })
}

fn check_image_bytes(path: &Path, entry: &PackageImage, bytes: &[u8]) -> Result<(), LibraryError> {
    if bytes.len() as u64 != entry.bytes {
        return Err(fail(
            path,
            Some("bytes"),
            format!("{} bytes, the manifest says {}", bytes.len(), entry.bytes),
        ));
    }
    let found = sha256_hex(bytes);
    if found != entry.sha256 {
        return Err(fail(
            path,
            Some("sha256"),
            format!(
                "content hash is {found}, the manifest says {}: the file was changed or damaged",
                entry.sha256
            ),
        ));
    }
    let (width, height) = if entry.bit_depth == 16 {
        let i =
            Image16::from_png(bytes).map_err(|e| fail(path, Some("bit_depth"), e.to_string()))?;
        (i.width, i.height)
    } else {
        let m = Mask8::from_png(bytes).map_err(|e| fail(path, Some("bit_depth"), e.to_string()))?;
        (m.width, m.height)
    };
    if (width, height) != (entry.width, entry.height) {
        return Err(fail(
            path,
            Some("width"),
            format!(
                "{width} × {height} pixels, the manifest says {} × {}",
                entry.width, entry.height
            ),
        ));
    }
    Ok(())
}

/// Imports a package into a library. The whole package is checked first — manifest and
/// annotations against their format, every scan record, every image (present, hash, bit depth,
/// size), every annotation (scan in the manifest, boxes inside the image), scans already in the
/// library identical — and nothing is written unless all of it passes; an error names the file
/// and field. Scans and annotation lines already in the library are skipped, so importing the
/// same package twice changes nothing.
pub fn import_package(library: &mut Library, dir: &Path) -> Result<ImportSummary, LibraryError> {
    import_checked(library, dir, true)
}

fn import_checked(
    library: &mut Library,
    dir: &Path,
    shared: bool,
) -> Result<ImportSummary, LibraryError> {
    let checked = check_package(library, dir, shared)?;
    let mut summary = ImportSummary::default();
    let entries: HashMap<&str, &PackageImage> = checked
        .manifest
        .images
        .iter()
        .map(|i| (i.sha256.as_str(), i))
        .collect();
    // Written in groups (one flush per step per group) of at most 64 scans or 256 MB of images.
    let mut group: Vec<Prepared> = Vec::new();
    let mut group_bytes = 0usize;
    let mut new_images = HashSet::new();
    for record in &checked.manifest.scans {
        if library.get(&record.metadata.scan_id).is_some() {
            summary.scans_present += 1;
            continue;
        }
        let mut blobs = Vec::new();
        for (_, image) in record.images() {
            if library.image_path(&image.sha256).is_file() || !new_images.insert(&image.sha256) {
                continue;
            }
            let entry = entries[image.sha256.as_str()];
            let path = dir.join(&entry.path);
            let bytes = fs::read(&path).map_err(|e| fail(&path, None, e.to_string()))?;
            // The same bytes as checked in the first pass (the file may have changed since).
            let found = sha256_hex(&bytes);
            if found != entry.sha256 {
                return Err(fail(
                    &path,
                    Some("sha256"),
                    format!("content hash is {found}, the manifest says {}: the file changed during the import", entry.sha256),
                ));
            }
            group_bytes += bytes.len();
            blobs.push((image.sha256.clone(), bytes));
        }
        group.push(Prepared {
            record: record.clone(),
            blobs,
        });
        summary.scans_added += 1;
        if group.len() >= 64 || group_bytes >= 256 << 20 {
            library.commit_all(std::mem::take(&mut group))?;
            group_bytes = 0;
        }
    }
    library.commit_all(group)?;
    let known: HashSet<String> = library
        .annotations()
        .iter()
        .filter_map(|a| serde_json::to_string(a).ok())
        .collect();
    for line in checked.annotations {
        let text = serde_json::to_string(&line).unwrap_or_default();
        if known.contains(&text) {
            summary.annotations_present += 1;
        } else {
            library.add_annotation(line)?;
            summary.annotations_added += 1;
        }
    }
    Ok(summary)
}

/// The images of a package being staged by an import from another format, each written once.
pub(crate) struct StagedImages {
    dir: PathBuf,
    written: HashSet<String>,
    list: Vec<PackageImage>,
}

impl StagedImages {
    /// Staging into `dir` (its `images/` made).
    pub(crate) fn new(dir: &Path) -> Result<StagedImages, LibraryError> {
        let images = dir.join("images");
        fs::create_dir_all(&images).map_err(|e| fail(&images, None, e.to_string()))?;
        Ok(StagedImages {
            dir: dir.to_path_buf(),
            written: HashSet::new(),
            list: Vec::new(),
        })
    }

    /// Writes `bytes` (a PNG) as `images/<sha256>.png` unless written already; its SHA-256.
    pub(crate) fn add(
        &mut self,
        bytes: Vec<u8>,
        bit_depth: u8,
        width: u32,
        height: u32,
    ) -> Result<String, LibraryError> {
        let sha = sha256_hex(&bytes);
        if self.written.insert(sha.clone()) {
            let rel = format!("images/{sha}.png");
            let path = self.dir.join(&rel);
            fs::write(&path, &bytes).map_err(|e| fail(&path, None, e.to_string()))?;
            self.list.push(PackageImage {
                sha256: sha.clone(),
                path: rel,
                bytes: bytes.len() as u64,
                bit_depth,
                width,
                height,
            });
        }
        Ok(sha)
    }
}

/// Writes a staged package's `annotations.json` and `manifest.json` (made by `software`).
pub(crate) fn write_staged(
    staging: &Path,
    software: &str,
    scans: Vec<ScanRecord>,
    images: StagedImages,
    annotations: Vec<ScanAnnotations>,
) -> Result<(), LibraryError> {
    let annotations = PackageAnnotations {
        format: ANNOTATIONS_FORMAT.to_string(),
        version: PACKAGE_VERSION,
        scans: annotations,
    };
    let path = staging.join(PACKAGE_ANNOTATIONS_FILE);
    let text = serde_json::to_string(&annotations).map_err(|e| fail(&path, None, e.to_string()))?;
    fs::write(&path, text).map_err(|e| fail(&path, None, e.to_string()))?;
    let manifest = Manifest {
        format: PACKAGE_FORMAT.to_string(),
        version: PACKAGE_VERSION,
        producer: Producer {
            software: software.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            organisation: None,
        },
        created: now_utc(),
        scans,
        images: images.list,
    };
    let path = staging.join(MANIFEST_FILE);
    let text = serde_json::to_string(&manifest).map_err(|e| fail(&path, None, e.to_string()))?;
    fs::write(&path, text).map_err(|e| fail(&path, None, e.to_string()))
}

/// Imports what `stage` makes of `source` (a folder in another format; it is given the library,
/// to name a scan that conflicts with one already there by its own file and line) as a scan
/// package: the
/// package is staged in the library folder (`.staging-<kind>-<pid>-<time>`), imported as
/// [`import_package`] does (checked in full, idempotent) and removed. `shared`: the files came
/// from another administration, so, as in a package, only redistributable scans are accepted;
/// false for the site's own files, whose licence may keep them here (the exports refuse them). An error of the package check
/// names `source` and the staged file it concerns. Staging folders left by a killed import are
/// removed first.
pub(crate) fn import_staged(
    library: &mut Library,
    source: &Path,
    kind: &str,
    shared: bool,
    stage: impl FnOnce(&Path, &Library) -> Result<(), LibraryError>,
) -> Result<ImportSummary, LibraryError> {
    sweep_stale_staging(library.root(), kind);
    let staging = library.root().join(format!(
        ".staging-{kind}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = stage(&staging, library).and_then(|()| {
        import_checked(library, &staging, shared).map_err(|mut e| {
            if e.file.starts_with(&staging) {
                let inner = e
                    .file
                    .strip_prefix(&staging)
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                e.reason = format!("{} (as read into {})", e.reason, inner.display());
                e.file = source.to_path_buf();
            }
            e
        })
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

/// Removes the staging folders of `kind` whose process is gone (killed before it could clean
/// up): `.staging-<kind>-<pid>-<time>` with no process `<pid>` (Linux's /proc) and untouched
/// for an hour (a library shared between hosts sees other hosts' pids as gone).
fn sweep_stale_staging(root: &Path, kind: &str) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let prefix = format!(".staging-{kind}-");
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let gone = cfg!(target_os = "linux")
            && Path::new("/proc").is_dir()
            && !Path::new("/proc").join(pid).exists();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 3600);
        if gone && old {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::anonymise::MaskRect;
    use crate::generate::{generate_scan, GeneratorParams};
    use crate::library::{prepare, ANNOTATIONS_FILE, CATALOGUE_FILE};
    use crate::scan::Source;

    const SIZE: u32 = 48;

    fn params(threat_rate: f64) -> GeneratorParams {
        GeneratorParams {
            width: SIZE,
            height: SIZE,
            threat_rate,
            threat_scale: [0.2, 0.3],
            ..GeneratorParams::default()
        }
    }

    /// Planted personal data: none of it may appear in an anonymised package.
    pub(crate) const PLANTED: &[&str] = &[
        "Maria Rossi",
        "maria rossi",
        "Jan Kowalski",
        "+39 06 1234 5678",
        "0612345678",
        "Via Roma 1",
        "00100 Roma",
        "ul. Długa 5",
        "Gdańsk",
        "+48 601 234 567",
        "secret gift for",
        "officer Anna Schmidt",
    ];

    /// Two synthetic scans with threats, two "real" scans carrying personal data, annotated by
    /// two annotators and a reviewer.
    pub(crate) fn library() -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        for i in 0..2 {
            lib.commit(prepare(generate_scan(&params(1.0), 7, i)).unwrap())
                .unwrap();
        }
        for i in 0..2u64 {
            let mut p = prepare(generate_scan(&params(0.0), 8, i)).unwrap();
            let r = &mut p.record;
            r.metadata.scan_id = format!("real-{i}");
            r.provenance.source = Source::Real;
            r.provenance.generator = None;
            r.clutter = None;
            r.provenance.licence = "CC-BY-4.0".into();
            let m = &mut r.metadata;
            if i == 0 {
                m.consignee_name = Some("Maria Rossi".into());
                m.consignor_name = Some("Jan Kowalski".into());
                m.contact_phone = Some("+39 06 1234 5678".into());
                m.consignee_address = Some("Via Roma 1, 00100 Roma".into());
                m.declared_contents = Some("secret gift for maria rossi, call 0612345678".into());
            } else {
                m.driver_name = Some("Jan Kowalski".into());
                m.consignor_address = Some("ul. Długa 5, Gdańsk".into());
                m.contact_phone = Some("+48 601 234 567".into());
                m.notes = Some("officer Anna Schmidt: driver Jan Kowalski nervous".into());
            }
            lib.commit(p).unwrap();
        }
        let ids: Vec<String> = lib
            .records()
            .iter()
            .map(|r| r.metadata.scan_id.clone())
            .collect();
        for id in &ids {
            for (who, role, dx) in [
                ("officer Anna Schmidt", AnnotationRole::Annotator, 0.0),
                ("Jan Kowalski", AnnotationRole::Annotator, 1.0),
                ("Maria Rossi", AnnotationRole::Reviewer, 0.0),
            ] {
                lib.add_annotation(AnnotationRecord {
                    scan_id: id.clone(),
                    annotator: who.into(),
                    role,
                    view: 0,
                    objects: vec![AnnotatedObject {
                        label: "knife".into(),
                        bbox: BoxPx::new(2.0 + dx, 30.0, 12.0, 40.0).unwrap(),
                        score: 1.0,
                    }],
                    guideline: (role == AnnotationRole::Annotator).then_some(2),
                    review: None,
                    seconds: Some(30.0),
                })
                .unwrap();
            }
        }
        (dir, lib)
    }

    pub(crate) fn anonymiser(masks: &[&str]) -> Anonymiser {
        Anonymiser::new(
            b"a key of at least sixteen bytes",
            masks.iter().map(|m| MaskRect::parse(m).unwrap()).collect(),
        )
        .unwrap()
    }

    pub(crate) fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(all_files(&path));
            } else {
                let bytes = fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
        out
    }

    fn validate_against_schema(schema_file: &str, instance: &serde_json::Value) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../schemas")
            .join(schema_file);
        let schema: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema)
            .unwrap_or_else(|e| panic!("{schema_file} is not a valid schema: {e}"));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{schema_file}: {errors:#?}");
    }

    fn package_json(dir: &Path) -> (serde_json::Value, serde_json::Value) {
        let read = |f: &str| -> serde_json::Value {
            serde_json::from_slice(&fs::read(dir.join(f)).unwrap()).unwrap()
        };
        (read(MANIFEST_FILE), read(PACKAGE_ANNOTATIONS_FILE))
    }

    #[test]
    fn a_models_proposals_travel_only_when_asked_under_the_model_id() {
        let (dir, mut lib) = library();
        lib.add_annotation(AnnotationRecord {
            scan_id: "syn-7-000000".into(),
            annotator: "model-abc".into(),
            role: AnnotationRole::Machine,
            view: 0,
            objects: vec![AnnotatedObject {
                label: "gun".into(),
                bbox: BoxPx::new(1.0, 2.0, 9.0, 9.0).unwrap(),
                score: 0.4,
            }],
            guideline: None,
            review: None,
            seconds: None,
        })
        .unwrap();
        let machines_of = |pkg: &Path| -> Vec<serde_json::Value> {
            let (_, annotations) = package_json(pkg);
            annotations["scans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["machines"].as_array().cloned().unwrap_or_default())
                .collect()
        };
        let plain = dir.path().join("plain");
        let options = |machine| ExportOptions {
            anonymiser: Some(anonymiser(&[])),
            include_machine: machine,
            ..ExportOptions::default()
        };
        export_package(&lib, &options(false), &plain).unwrap();
        assert!(machines_of(&plain).is_empty());
        let with = dir.path().join("with");
        let summary = export_package(&lib, &options(true), &with).unwrap();
        assert_eq!(summary.annotations, 4 * 3 + 1);
        let machines = machines_of(&with);
        assert_eq!(machines.len(), 1);
        // The model id is not a person's name: kept as it is, not pseudonymised.
        assert_eq!(machines[0]["annotator"], "model-abc");
        let (_, annotations) = package_json(&with);
        validate_against_schema("nii-package-annotations.schema.json", &annotations);
        let mut other = Library::create(&dir.path().join("other")).unwrap();
        import_package(&mut other, &with).unwrap();
        let imported: Vec<_> = other
            .annotations()
            .iter()
            .filter(|a| a.role == AnnotationRole::Machine)
            .collect();
        assert_eq!(imported.len(), 1);
        assert_eq!(imported[0].annotator, "model-abc");
        assert_eq!(imported[0].objects[0].score, 0.4);
    }

    #[test]
    fn an_anonymised_package_holds_none_of_the_planted_personal_data() {
        let (dir, lib) = library();
        let out = dir.path().join("pkg");
        let options = ExportOptions {
            anonymiser: Some(anonymiser(&["0,0,48,6"])),
            ..ExportOptions::default()
        };
        let summary = export_package(&lib, &options, &out).unwrap();
        assert_eq!(summary.scans, 4, "{:?}", summary.refused);
        assert_eq!(summary.anonymised, 4);
        assert_eq!(summary.masked_regions, 4);
        assert_eq!(summary.annotations, 12);
        let files = all_files(&out);
        assert!(files.len() >= 2 + 4 * 2, "{}", files.len());
        for (path, bytes) in &files {
            for planted in PLANTED {
                let needle = planted.as_bytes();
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle),
                    "{} holds '{planted}'",
                    path.display()
                );
                // JSON may escape non-ASCII characters: look for the escaped form too.
                let escaped = serde_json::to_string(planted).unwrap();
                let escaped = escaped.trim_matches('"').as_bytes();
                assert!(
                    !bytes.windows(escaped.len()).any(|w| w == escaped),
                    "{} holds '{planted}' escaped",
                    path.display()
                );
            }
        }
        let (manifest, annotations) = package_json(&out);
        validate_against_schema("nii-package-manifest.schema.json", &manifest);
        validate_against_schema("nii-package-annotations.schema.json", &annotations);
        // The log says what changed, and the masked rows are air in every energy channel.
        let m: Manifest = serde_json::from_value(manifest).unwrap();
        let real = m
            .scans
            .iter()
            .find(|s| s.metadata.scan_id == "real-0")
            .unwrap();
        let log = real.anonymisation.as_ref().unwrap();
        let changed: Vec<&str> = log.changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            changed,
            [
                "metadata.consignor_name",
                "metadata.consignee_name",
                "metadata.consignee_address",
                "metadata.contact_phone",
                "metadata.declared_contents"
            ]
        );
        assert_eq!(log.annotators_pseudonymised, 3);
        assert!(real.anonymised());
        for channel in &real.views[0].channels {
            let bytes = fs::read(out.join(format!("images/{}.png", channel.image.sha256))).unwrap();
            let image = Image16::from_png(&bytes).unwrap();
            assert!(image.data[..(SIZE * 6) as usize]
                .iter()
                .all(|&v| v == u16::MAX));
            assert!(image.data[(SIZE * 6) as usize..].iter().any(|&v| v < 60000));
        }
        // The library itself is unchanged.
        let again = Library::open(lib.root()).unwrap();
        assert_eq!(again.records(), lib.records());
    }

    /// Burned-in text: the bytes of a name written as pixel values along the top rows of a
    /// real scan, in both energy channels. Masking those rows leaves no trace of it in the
    /// exported images' pixels; without the mask it would be there.
    #[test]
    fn a_masked_region_takes_burned_in_text_out_of_every_channel() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let mut scan = generate_scan(&params(0.0), 11, 0);
        let text: Vec<u16> = "Maria Rossi +39 06 1234 5678"
            .bytes()
            .map(|b| u16::from(b) * 257)
            .collect();
        for image in [&mut scan.low, &mut scan.high] {
            for row in 1..4usize {
                let start = row * SIZE as usize + 2;
                image.data[start..start + text.len()].copy_from_slice(&text);
            }
        }
        let mut p = prepare(scan).unwrap();
        p.record.metadata.scan_id = "burned".into();
        p.record.provenance.source = Source::Real;
        p.record.provenance.generator = None;
        lib.commit(p).unwrap();
        let holds = |image: &Image16| image.data.windows(text.len()).any(|w| w == text);
        let [low, high] = lib.read_view(&lib.records()[0], 0).unwrap();
        assert!(holds(&low.unwrap()) && holds(&high.unwrap()));

        for (name, masks, expect) in [("plain", vec![], true), ("masked", vec!["0,0,48,5"], false)]
        {
            let out = dir.path().join(name);
            let options = ExportOptions {
                anonymiser: Some(anonymiser(&masks)),
                ..ExportOptions::default()
            };
            let summary = export_package(&lib, &options, &out).unwrap();
            assert_eq!(summary.scans, 1);
            let m: Manifest =
                serde_json::from_slice(&fs::read(out.join(MANIFEST_FILE)).unwrap()).unwrap();
            for channel in &m.scans[0].views[0].channels {
                let bytes =
                    fs::read(out.join(format!("images/{}.png", channel.image.sha256))).unwrap();
                let image = Image16::from_png(&bytes).unwrap();
                assert_eq!(holds(&image), expect, "{name} {:?}", channel.energy);
            }
        }
    }

    #[test]
    fn export_refuses_unshareable_scans_naming_scan_and_reason() {
        let (dir, mut lib) = library();
        let mut p = prepare(generate_scan(&params(0.0), 9, 0)).unwrap();
        p.record.metadata.scan_id = "restricted".into();
        p.record.provenance.redistributable = false;
        p.record.provenance.licence = "academic use only".into();
        lib.commit(p).unwrap();
        let out = dir.path().join("pkg");
        let summary = export_package(&lib, &ExportOptions::default(), &out).unwrap();
        assert_eq!(summary.scans, 2);
        let refused: Vec<String> = summary.refused.iter().map(|r| r.to_string()).collect();
        assert_eq!(refused.len(), 3, "{refused:#?}");
        assert!(
            refused[0].contains("'real-0'")
                && refused[0].contains("metadata.consignor_name")
                && refused[0].contains("personal data"),
            "{}",
            refused[0]
        );
        assert!(refused[1].contains("'real-1'"), "{}", refused[1]);
        assert!(
            refused[2].contains("'restricted'")
                && refused[2].contains("provenance.redistributable")
                && refused[2].contains("academic use only"),
            "{}",
            refused[2]
        );
        // A real scan with no personal field but never anonymised is refused too.
        let mut p = prepare(generate_scan(&params(0.0), 9, 1)).unwrap();
        p.record.metadata.scan_id = "real-plain".into();
        p.record.provenance.source = Source::Real;
        p.record.provenance.generator = None;
        p.record.metadata.declared_contents = None;
        lib.commit(p).unwrap();
        let options = ExportOptions {
            scans: Some(vec!["real-plain".into(), "restricted".into()]),
            ..ExportOptions::default()
        };
        let none = dir.path().join("none");
        let summary = export_package(&lib, &options, &none).unwrap();
        assert_eq!(summary.scans, 0);
        assert!(summary.refused[0].reason.contains("not anonymised"));
        assert!(summary.package.is_none() && !none.exists());
        // A mask over a true object is refused for that scan.
        let options = ExportOptions {
            anonymiser: Some(anonymiser(&["0,0,48,48"])),
            ..ExportOptions::default()
        };
        let masked = dir.path().join("masked");
        let summary = export_package(&lib, &options, &masked).unwrap();
        assert!(summary
            .refused
            .iter()
            .any(|r| r.field.starts_with("truth[") && r.reason.contains("true object")));
        // An unknown scan in the selection is an error.
        let options = ExportOptions {
            scans: Some(vec!["nope".into()]),
            ..ExportOptions::default()
        };
        let err = export_package(&lib, &options, &dir.path().join("x")).unwrap_err();
        assert!(err.to_string().contains("'nope'"), "{err}");
    }

    #[test]
    fn import_round_trips_and_is_idempotent() {
        let (dir, lib) = library();
        let out = dir.path().join("pkg");
        let options = ExportOptions {
            anonymiser: Some(anonymiser(&[])),
            organisation: Some("Customs lab A".into()),
            ..ExportOptions::default()
        };
        let summary = export_package(&lib, &options, &out).unwrap();
        assert_eq!(summary.scans, 4);
        let (manifest, annotations) = package_json(&out);
        validate_against_schema("nii-package-manifest.schema.json", &manifest);
        validate_against_schema("nii-package-annotations.schema.json", &annotations);

        let target = dir.path().join("other");
        let mut other = Library::create(&target).unwrap();
        let first = import_package(&mut other, &out).unwrap();
        assert_eq!(
            first,
            ImportSummary {
                scans_added: 4,
                scans_present: 0,
                annotations_added: 12,
                annotations_present: 0
            }
        );
        let m: Manifest = serde_json::from_value(manifest).unwrap();
        assert_eq!(other.records(), &m.scans[..]);
        assert!(other.verify().is_empty());
        assert!(other.records().iter().all(ScanRecord::anonymised));
        // Reviewers stay reviewers; the guideline version an annotator worked under travels.
        assert_eq!(
            other
                .annotations()
                .iter()
                .filter(|a| a.role == AnnotationRole::Reviewer)
                .count(),
            4
        );
        for a in other.annotations() {
            let expected = (a.role == AnnotationRole::Annotator).then_some(2);
            assert_eq!(a.guideline, expected, "{a:?}");
        }
        // Synthetic scans come through byte for byte (no mask: same images, same hashes).
        let syn = lib.records()[0].clone();
        assert_eq!(other.get(&syn.metadata.scan_id).unwrap().views, syn.views);

        let catalogue = fs::read(target.join(CATALOGUE_FILE)).unwrap();
        let annotations = fs::read(target.join(ANNOTATIONS_FILE)).unwrap();
        let second = import_package(&mut other, &out).unwrap();
        assert_eq!(
            second,
            ImportSummary {
                scans_added: 0,
                scans_present: 4,
                annotations_added: 0,
                annotations_present: 12
            }
        );
        assert_eq!(fs::read(target.join(CATALOGUE_FILE)).unwrap(), catalogue);
        assert_eq!(
            fs::read(target.join(ANNOTATIONS_FILE)).unwrap(),
            annotations
        );

        // The anonymised scans can be exported again from there without a key.
        let again =
            export_package(&other, &ExportOptions::default(), &dir.path().join("p2")).unwrap();
        assert_eq!(again.scans, 4, "{:?}", again.refused);
    }

    /// Without a key, staff names still do not leave in clear: annotators and reviewers are
    /// numbered in the order they first appear, the same person with the same number in the
    /// whole package (and in the consensus's member lists).
    #[test]
    fn without_a_key_annotator_names_are_numbered_not_exported() {
        let (dir, lib) = library();
        let out = dir.path().join("pkg");
        let summary = export_package(&lib, &ExportOptions::default(), &out).unwrap();
        assert!(summary.scans >= 1, "{:?}", summary.refused);
        let text = fs::read_to_string(out.join(PACKAGE_ANNOTATIONS_FILE)).unwrap();
        for name in ["Anna Schmidt", "Jan Kowalski", "Maria Rossi"] {
            assert!(!text.contains(name), "{name} left in clear");
        }
        let (_, annotations) = package_json(&out);
        let mut names = std::collections::BTreeSet::new();
        for scan in annotations["scans"].as_array().unwrap() {
            let who: Vec<&str> = scan["annotators"]
                .as_array()
                .unwrap()
                .iter()
                .chain(scan["reviewers"].as_array().unwrap())
                .map(|a| a["annotator"].as_str().unwrap())
                .collect();
            assert_eq!(who, ["annotator-1", "annotator-2", "annotator-3"]);
            names.extend(who);
        }
        assert_eq!(names.len(), 3);
    }

    /// Exports a fresh package, breaks it with `damage`, imports it into an empty library and
    /// returns the error text; checks that nothing was written.
    fn import_error(
        damage: impl FnOnce(&Path, &mut serde_json::Value, &mut serde_json::Value),
    ) -> String {
        let (dir, lib) = library();
        let out = dir.path().join("pkg");
        let options = ExportOptions {
            anonymiser: Some(anonymiser(&[])),
            ..ExportOptions::default()
        };
        export_package(&lib, &options, &out).unwrap();
        let (mut manifest, mut annotations) = package_json(&out);
        damage(&out, &mut manifest, &mut annotations);
        fs::write(out.join(MANIFEST_FILE), manifest.to_string()).unwrap();
        fs::write(out.join(PACKAGE_ANNOTATIONS_FILE), annotations.to_string()).unwrap();
        let target = dir.path().join("target");
        let mut other = Library::create(&target).unwrap();
        let err = import_package(&mut other, &out).unwrap_err().to_string();
        assert!(!target.join(CATALOGUE_FILE).exists(), "{err}");
        assert!(!target.join(ANNOTATIONS_FILE).exists(), "{err}");
        assert_eq!(
            fs::read_dir(target.join("images")).unwrap().count(),
            0,
            "{err}"
        );
        err
    }

    #[test]
    fn import_checks_the_whole_package_before_writing_anything() {
        // A changed image: hash mismatch, naming the file.
        let err = import_error(|dir, m, _| {
            let path = dir.join(m["images"][3]["path"].as_str().unwrap());
            let mut bytes = fs::read(&path).unwrap();
            let n = bytes.len();
            bytes[n / 2] ^= 0x55;
            fs::write(&path, bytes).unwrap();
        });
        assert!(
            err.contains("images/") && err.contains("field sha256"),
            "{err}"
        );
        // A missing image.
        let err = import_error(|dir, m, _| {
            fs::remove_file(dir.join(m["images"][5]["path"].as_str().unwrap())).unwrap();
        });
        assert!(
            err.contains("missing or unreadable") && err.contains("images[5]"),
            "{err}"
        );
        // An annotation of a scan the package does not hold.
        let err = import_error(|_, _, a| {
            a["scans"][2]["scan_id"] = "ghost".into();
        });
        assert!(
            err.contains("annotations.json")
                && err.contains("field scans[2].scan_id")
                && err.contains("'ghost'"),
            "{err}"
        );
        // A consensus of a view the scan does not have, with no annotator line to check the
        // view first (a panic before).
        let err = import_error(|_, _, a| {
            let entry = &mut a["scans"][1];
            entry["view"] = 7.into();
            entry["annotators"] = serde_json::json!([]);
            entry["reviewers"] = serde_json::json!([]);
            if entry["consensus"].is_null() {
                entry["consensus"] = serde_json::json!({"objects": []});
            }
        });
        assert!(
            err.contains("field scans[1].view") && err.contains("view 7"),
            "{err}"
        );
        // A box outside the image.
        let err = import_error(|_, _, a| {
            a["scans"][1]["annotators"][1]["objects"][0]["bbox"] =
                serde_json::json!([10, 10, 49, 20]);
        });
        assert!(
            err.contains("field scans[1].annotators[1].objects[0].bbox") && err.contains("outside"),
            "{err}"
        );
        let err = import_error(|_, _, a| {
            a["scans"][0]["reviewers"][0]["objects"][0]["bbox"] =
                serde_json::json!([0, 0, 10, 100]);
        });
        assert!(
            err.contains("field scans[0].reviewers[0].objects[0].bbox"),
            "{err}"
        );
        // A wrong bit depth: an 8-bit image where a transmission channel needs 16 bits.
        let err = import_error(|dir, m, _| {
            let mask = Mask8 {
                width: SIZE,
                height: SIZE,
                data: vec![3; (SIZE * SIZE) as usize],
            };
            let png = mask.to_png().unwrap();
            let sha = sha256_hex(&png);
            fs::write(dir.join(format!("images/{sha}.png")), &png).unwrap();
            let old = m["scans"][0]["views"][0]["channels"][0]["image"]["sha256"]
                .as_str()
                .unwrap()
                .to_string();
            let entry = m["images"]
                .as_array_mut()
                .unwrap()
                .iter_mut()
                .find(|i| i["sha256"] == old.as_str())
                .unwrap();
            entry["sha256"] = sha.clone().into();
            entry["path"] = format!("images/{sha}.png").into();
            entry["bytes"] = png.len().into();
            m["scans"][0]["views"][0]["channels"][0]["image"]["sha256"] = sha.into();
        });
        assert!(
            err.contains("field bit_depth") && err.contains("8-bit"),
            "{err}"
        );
        // ... and a manifest that calls a transmission image 8-bit.
        let err = import_error(|_, m, _| {
            m["images"][0]["bit_depth"] = 8.into();
        });
        assert!(err.contains("field images[0].bit_depth"), "{err}");
        // A scan that may not be shared has no place in a package.
        let err = import_error(|_, m, _| {
            m["scans"][3]["provenance"]["redistributable"] = false.into();
        });
        assert!(
            err.contains("field scans[3].provenance.redistributable"),
            "{err}"
        );
        // A bad record in the manifest: field path inside the scan.
        let err = import_error(|_, m, _| {
            m["scans"][1]["metadata"]["origin"] = "Italy".into();
        });
        assert!(
            err.contains("manifest.json: field scans[1].metadata.origin"),
            "{err}"
        );
        // An anonymised scan that still holds a name.
        let err = import_error(|_, m, _| {
            m["scans"][2]["metadata"]["driver_name"] = "Jan Kowalski".into();
        });
        assert!(err.contains("field scans[2].metadata.driver_name"), "{err}");
        // Not a manifest at all.
        let err = import_error(|_, m, _| {
            m["format"] = "something-else".into();
        });
        assert!(err.contains("manifest.json: field format"), "{err}");
    }

    #[test]
    fn import_refuses_a_scan_the_library_holds_with_other_content() {
        let (dir, mut lib) = library();
        let out = dir.path().join("pkg");
        export_package(
            &lib,
            &ExportOptions {
                anonymiser: Some(anonymiser(&[])),
                ..ExportOptions::default()
            },
            &out,
        )
        .unwrap();
        // Back into the library it came from: the originals hold the personal data.
        let before = fs::read(lib.root().join(CATALOGUE_FILE)).unwrap();
        let err = import_package(&mut lib, &out).unwrap_err().to_string();
        assert!(
            err.contains("already in the library with other content"),
            "{err}"
        );
        assert_eq!(fs::read(lib.root().join(CATALOGUE_FILE)).unwrap(), before);
    }
}
