//! The library folder: content-addressed images, the catalogue and annotators' boxes.
//!
//! Layout of a library folder `LIB`:
//! - `LIB/library.json`: `{"format": "borderlens-nii-library", "version": 1}`;
//! - `LIB/images/ab/abcdef….png`: every image (16-bit transmission or 8-bit mask) as lossless PNG,
//!   named by the SHA-256 of its bytes — the same pixels are stored once;
//! - `LIB/catalogue.jsonl`: one [`ScanRecord`] per line (metadata, views, provenance, truth);
//! - `LIB/annotations.jsonl`: one [`AnnotationRecord`] per line (an annotator's boxes on a scan).
//!
//! The catalogue is a file of the library in this slice; the store's catalogue (with links to
//! declarations) comes later. Writes are append-only and durable: images first (written to a
//! temporary name, flushed to disk with `fsync`, renamed, the folder flushed), then the catalogue
//! line (appended, then the file flushed; the folder too when the file is new). A line counts once
//! its newline is on disk, so a crash leaves every referenced image in place.
//!
//! A crash in the middle of an append can leave an unterminated last line (a *torn* line). It is
//! not read as a scan or annotation, never fails the opening and is never silently dropped:
//! [`Library::recovered`] lists it (file, line, byte offset and length), and the next write to
//! that file first moves its bytes to `<file>.torn` (e.g. `catalogue.jsonl.torn`, appended,
//! flushed) and cuts the file back to its last complete line. Any other bad line is still an
//! error naming the file, line and field.
//! Reading checks everything it reads and names the file, line and field at fault.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::consensus::AnnotatedObject;
use crate::generate::GeneratedScan;
use crate::image::{Image16, ImageError, Mask8};
use crate::scan::{Channel, Energy, ImageRef, ScanRecord, View};

/// Marker file of a library folder.
pub const LIBRARY_FILE: &str = "library.json";
/// The catalogue.
pub const CATALOGUE_FILE: &str = "catalogue.jsonl";
/// The annotations.
pub const ANNOTATIONS_FILE: &str = "annotations.jsonl";
/// Largest catalogue or annotation line read (bytes).
pub const MAX_LINE: usize = 4 * 1024 * 1024;

/// A problem with a library file: which file, line and field, and why.
#[derive(Debug)]
pub struct LibraryError {
    /// the file at fault
    pub file: PathBuf,
    /// 1-based line, for JSON Lines files
    pub line: Option<usize>,
    /// the field at fault (dotted path)
    pub field: Option<String>,
    /// what is wrong
    pub reason: String,
}

impl fmt::Display for LibraryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(field) = &self.field {
            write!(f, ": field {field}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for LibraryError {}

pub(crate) fn fail(
    file: &Path,
    line: Option<usize>,
    field: Option<&str>,
    reason: impl Into<String>,
) -> LibraryError {
    LibraryError {
        file: file.to_path_buf(),
        line,
        field: field.map(str::to_string),
        reason: reason.into(),
    }
}

/// A torn (unterminated) last line of a JSON Lines file of the library, left by a crash in the
/// middle of an append: not read, reported, and moved to `<file>.torn` by the next write to that
/// file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Recovered {
    /// the file it ends
    pub file: PathBuf,
    /// its 1-based line number
    pub line: usize,
    /// byte offset of its first byte in the file
    pub offset: u64,
    /// its length in bytes
    pub bytes: u64,
    /// where its bytes were moved (`<file>.torn`), once a write has set it aside
    pub moved_to: Option<PathBuf>,
}

impl fmt::Display for Recovered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: unterminated last line ({} bytes at offset {}, left by an interrupted write) was not read; ",
            self.file.display(),
            self.line,
            self.bytes,
            self.offset
        )?;
        match &self.moved_to {
            Some(p) => write!(f, "its bytes were moved to {}", p.display()),
            None => write!(
                f,
                "the next write to the library moves its bytes to {}.torn",
                self.file.display()
            ),
        }
    }
}

/// Who made an annotation line: one of the annotators (whose objects the consensus merges and
/// agreement measures) or a reviewer (whose decision on disputed objects is its own source).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationRole {
    /// an annotator (the default)
    #[default]
    Annotator,
    /// a reviewer
    Reviewer,
    /// a model's pre-annotation (`borderlens nii detect --pre-annotate`), offered to annotators
    /// and never counted as one: left out of the consensus, the agreement, the annotation
    /// coverage of the quality report and the scan package
    Machine,
}

impl AnnotationRole {
    /// Whether this is the default role (then not written in files).
    pub fn is_annotator(&self) -> bool {
        *self == AnnotationRole::Annotator
    }
}

/// One annotator's objects on one scan: a line of `annotations.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationRecord {
    /// the scan (must be in the catalogue)
    pub scan_id: String,
    /// who annotated
    pub annotator: String,
    /// annotator (the default, not written) or reviewer
    #[serde(default, skip_serializing_if = "AnnotationRole::is_annotator")]
    pub role: AnnotationRole,
    /// which view (index into the scan's views)
    #[serde(default)]
    pub view: usize,
    /// the objects drawn (empty: the annotator saw nothing)
    pub objects: Vec<AnnotatedObject>,
    /// time the annotation took, seconds
    pub seconds: Option<f64>,
    /// the version of the annotation guideline the line was drawn under (the library's current
    /// one when the desk saved it); absent in lines written before it was recorded, and in
    /// lines of other sources (imports, the model)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guideline: Option<u32>,
    /// how the line came out of the hybrid loop (the model's proposals, whether they were
    /// shown, the actions taken), when it did
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<crate::review::Review>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Marker {
    format: String,
    version: u32,
}

const FORMAT: &str = "borderlens-nii-library";

/// A scan ready to be stored: its record and the PNG bytes it references.
pub struct Prepared {
    /// the catalogue record
    pub record: ScanRecord,
    /// `(sha256, png bytes)` of each image
    pub blobs: Vec<(String, Vec<u8>)>,
}

/// SHA-256 of `bytes` as lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    borderlens_domain::hex::encode(&Sha256::digest(bytes))
}

fn image_ref(png: &[u8], width: u32, height: u32) -> (ImageRef, String) {
    let sha = sha256_hex(png);
    (
        ImageRef {
            sha256: sha.clone(),
            width,
            height,
        },
        sha,
    )
}

/// Encodes and hashes a generated scan's images (no I/O; can run on many threads).
pub fn prepare(scan: GeneratedScan) -> Result<Prepared, ImageError> {
    let mut blobs = Vec::with_capacity(3);
    let mut channels = Vec::with_capacity(2);
    for (energy, image) in [(Energy::Low, &scan.low), (Energy::High, &scan.high)] {
        let png = image.to_png()?;
        let (r, sha) = image_ref(&png, image.width, image.height);
        channels.push(Channel { energy, image: r });
        blobs.push((sha, png));
    }
    let mask = if scan.truth.is_empty() {
        None
    } else {
        let png = scan.mask.to_png()?;
        let (r, sha) = image_ref(&png, scan.mask.width, scan.mask.height);
        blobs.push((sha, png));
        Some(r)
    };
    Ok(Prepared {
        record: ScanRecord {
            metadata: scan.metadata,
            views: vec![View {
                name: "top".to_string(),
                channels,
            }],
            provenance: scan.provenance,
            truth: scan.truth,
            mask,
            clutter: Some(scan.clutter),
            anonymisation: None,
        },
        blobs,
    })
}

/// Encodes and hashes given images into a record (for projected or imported scans).
pub fn prepare_record(
    mut record: ScanRecord,
    views: &[(String, Vec<(Energy, Image16)>)],
    mask: Option<&Mask8>,
) -> Result<Prepared, ImageError> {
    let mut blobs = Vec::new();
    record.views = Vec::new();
    for (name, channels) in views {
        let mut out = Vec::new();
        for (energy, image) in channels {
            let png = image.to_png()?;
            let (r, sha) = image_ref(&png, image.width, image.height);
            out.push(Channel {
                energy: *energy,
                image: r,
            });
            blobs.push((sha, png));
        }
        record.views.push(View {
            name: name.clone(),
            channels: out,
        });
    }
    record.mask = match mask {
        Some(m) => {
            let png = m.to_png()?;
            let (r, sha) = image_ref(&png, m.width, m.height);
            blobs.push((sha, png));
            Some(r)
        }
        None => None,
    };
    Ok(Prepared { record, blobs })
}

/// An open library folder.
pub struct Library {
    root: PathBuf,
    records: Vec<ScanRecord>,
    index: HashMap<String, usize>,
    annotations: Vec<AnnotationRecord>,
    recovered: Vec<Recovered>,
}

impl Library {
    /// Opens the library at `root`, creating the folder and its files when missing.
    pub fn create(root: &Path) -> Result<Library, LibraryError> {
        let marker = root.join(LIBRARY_FILE);
        if !marker.exists() {
            if root.exists()
                && fs::read_dir(root)
                    .map(|mut d| d.next().is_some())
                    .unwrap_or(false)
            {
                return Err(fail(
                    root,
                    None,
                    None,
                    format!("is a folder that is not empty and has no {LIBRARY_FILE}; pick an empty or new folder"),
                ));
            }
            let existed = root.exists();
            fs::create_dir_all(root.join("images"))
                .map_err(|e| fail(root, None, None, e.to_string()))?;
            sync_dir(root)?;
            if !existed {
                if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
            }
            let text = serde_json::to_string_pretty(&Marker {
                format: FORMAT.to_string(),
                version: 1,
            })
            .map_err(|e| fail(&marker, None, None, e.to_string()))?;
            write_durable(&marker, (text + "\n").as_bytes())?;
        }
        Library::open(root)
    }

    /// Opens an existing library, reading and checking its catalogue and annotations.
    pub fn open(root: &Path) -> Result<Library, LibraryError> {
        let marker_path = root.join(LIBRARY_FILE);
        let text = fs::read_to_string(&marker_path).map_err(|e| {
            fail(
                &marker_path,
                None,
                None,
                format!("not a library folder ({e})"),
            )
        })?;
        let marker: Marker = serde_json::from_str(&text)
            .map_err(|e| fail(&marker_path, None, None, e.to_string()))?;
        if marker.format != FORMAT || marker.version != 1 {
            return Err(fail(
                &marker_path,
                None,
                Some("format"),
                format!(
                    "'{}' version {}; this build reads {FORMAT} version 1",
                    marker.format, marker.version
                ),
            ));
        }
        let mut library = Library {
            root: root.to_path_buf(),
            records: Vec::new(),
            index: HashMap::new(),
            annotations: Vec::new(),
            recovered: Vec::new(),
        };
        let catalogue = root.join(CATALOGUE_FILE);
        let (lines, torn) = read_lines(&catalogue)?;
        library.recovered.extend(torn);
        for (line, text) in lines {
            let record: ScanRecord =
                serde_json::from_str(&text).map_err(|e| json_error(&catalogue, line, &e))?;
            record
                .validate()
                .map_err(|e| fail(&catalogue, Some(line), Some(&e.field), e.reason))?;
            if library.index.contains_key(&record.metadata.scan_id) {
                return Err(fail(
                    &catalogue,
                    Some(line),
                    Some("metadata.scan_id"),
                    format!("scan '{}' appears twice", record.metadata.scan_id),
                ));
            }
            for (field, image) in record.images() {
                if !library.image_path(&image.sha256).is_file() {
                    return Err(fail(
                        &catalogue,
                        Some(line),
                        Some(&format!("{field}.sha256")),
                        format!("image {} is missing from the library", image.sha256),
                    ));
                }
            }
            library
                .index
                .insert(record.metadata.scan_id.clone(), library.records.len());
            library.records.push(record);
        }
        let annotations = root.join(ANNOTATIONS_FILE);
        let (lines, torn) = read_lines(&annotations)?;
        library.recovered.extend(torn);
        for (line, text) in lines {
            let record: AnnotationRecord =
                serde_json::from_str(&text).map_err(|e| json_error(&annotations, line, &e))?;
            library
                .check_annotation(&record)
                .map_err(|(field, reason)| fail(&annotations, Some(line), Some(&field), reason))?;
            library.annotations.push(record);
        }
        Ok(library)
    }

    fn check_annotation(&self, record: &AnnotationRecord) -> Result<(), (String, String)> {
        let Some(scan) = self.get(&record.scan_id) else {
            return Err((
                "scan_id".into(),
                format!("scan '{}' is not in the catalogue", record.scan_id),
            ));
        };
        check_annotation_on(scan, record)
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every scan, in catalogue order.
    pub fn records(&self) -> &[ScanRecord] {
        &self.records
    }

    /// The scan with this id.
    pub fn get(&self, scan_id: &str) -> Option<&ScanRecord> {
        self.index.get(scan_id).map(|&i| &self.records[i])
    }

    /// Every annotation line, in file order.
    pub fn annotations(&self) -> &[AnnotationRecord] {
        &self.annotations
    }

    /// Torn last lines found when the library was opened or before a write (see the module
    /// documentation): not read, and moved to `<file>.torn` by the next write to their file.
    pub fn recovered(&self) -> &[Recovered] {
        &self.recovered
    }

    fn append(&mut self, path: &Path, line: &str) -> Result<(), LibraryError> {
        if let Some(torn) = append_line(path, line)? {
            match self
                .recovered
                .iter_mut()
                .find(|r| r.file == torn.file && r.offset == torn.offset)
            {
                Some(known) => known.moved_to = torn.moved_to,
                None => self.recovered.push(torn),
            }
        }
        Ok(())
    }

    /// Where the image with this hash is stored.
    pub fn image_path(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root
            .join("images")
            .join(prefix)
            .join(format!("{sha256}.png"))
    }

    /// Stores a prepared scan: its images (once per content), then its catalogue line.
    pub fn commit(&mut self, prepared: Prepared) -> Result<&ScanRecord, LibraryError> {
        self.commit_all(vec![prepared])?;
        Ok(&self.records[self.records.len() - 1])
    }

    /// Stores several prepared scans with one flush per step (group commit): every scan is
    /// checked first (nothing is written if one fails); the new images are written to
    /// temporary names and flushed together (in parallel), renamed, their folders flushed;
    /// then all the catalogue lines are appended in one write and the catalogue flushed once.
    /// The order keeps the rule of [`Library::commit`]: a line is written only when its images
    /// are on disk, and an image's final name only ever holds its whole content.
    pub fn commit_all(&mut self, batch: Vec<Prepared>) -> Result<(), LibraryError> {
        let catalogue = self.root.join(CATALOGUE_FILE);
        let mut ids = HashSet::new();
        for prepared in &batch {
            let record = &prepared.record;
            record.validate().map_err(|e| {
                fail(
                    &catalogue,
                    None,
                    Some(&e.field),
                    format!("scan '{}': {}", record.metadata.scan_id, e.reason),
                )
            })?;
            if self.index.contains_key(&record.metadata.scan_id)
                || !ids.insert(record.metadata.scan_id.as_str())
            {
                return Err(fail(
                    &catalogue,
                    None,
                    Some("metadata.scan_id"),
                    format!(
                        "scan '{}' is already in the library",
                        record.metadata.scan_id
                    ),
                ));
            }
        }
        // New images: written to temporary names, flushed, renamed, folders flushed.
        let mut pending: Vec<(PathBuf, PathBuf)> = Vec::new();
        let mut seen = HashSet::new();
        let mut dirs = std::collections::BTreeSet::new();
        for (sha, bytes) in batch.iter().flat_map(|p| &p.blobs) {
            let path = self.image_path(sha);
            if !seen.insert(sha.as_str()) || path.is_file() {
                continue;
            }
            let dir = path.parent().unwrap_or(&self.root).to_path_buf();
            if !dir.is_dir() {
                fs::create_dir_all(&dir).map_err(|e| fail(&dir, None, None, e.to_string()))?;
                dirs.insert(dir.parent().unwrap_or(&self.root).to_path_buf());
            }
            let tmp = dir.join(format!(".{sha}.png.tmp"));
            fs::write(&tmp, bytes).map_err(|e| fail(&tmp, None, None, e.to_string()))?;
            dirs.insert(dir);
            pending.push((tmp, path));
        }
        pending.par_iter().try_for_each(|(tmp, _)| {
            File::open(tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail(tmp, None, None, e.to_string()))
        })?;
        for (tmp, path) in &pending {
            fs::rename(tmp, path).map_err(|e| fail(path, None, None, e.to_string()))?;
        }
        for dir in &dirs {
            sync_dir(dir)?;
        }
        // The catalogue lines, in one append.
        let mut text = String::new();
        for prepared in &batch {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(
                &serde_json::to_string(&prepared.record)
                    .map_err(|e| fail(&catalogue, None, None, e.to_string()))?,
            );
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.append(&catalogue, &text)?;
        for prepared in batch {
            let record = prepared.record;
            self.index
                .insert(record.metadata.scan_id.clone(), self.records.len());
            self.records.push(record);
        }
        Ok(())
    }

    /// Appends an annotator's objects on a scan (checked like the file's lines).
    pub fn add_annotation(&mut self, record: AnnotationRecord) -> Result<(), LibraryError> {
        let path = self.root.join(ANNOTATIONS_FILE);
        self.check_annotation(&record)
            .map_err(|(field, reason)| fail(&path, None, Some(&field), reason))?;
        let line =
            serde_json::to_string(&record).map_err(|e| fail(&path, None, None, e.to_string()))?;
        self.append(&path, &line)?;
        self.annotations.push(record);
        Ok(())
    }

    fn read_checked(&self, image: &ImageRef) -> Result<(PathBuf, Vec<u8>), LibraryError> {
        let path = self.image_path(&image.sha256);
        let bytes = fs::read(&path).map_err(|e| fail(&path, None, None, e.to_string()))?;
        let found = sha256_hex(&bytes);
        if found != image.sha256 {
            return Err(fail(
                &path,
                None,
                Some("sha256"),
                format!("content hash is {found}: the file was changed or damaged"),
            ));
        }
        Ok((path, bytes))
    }

    /// Reads a transmission image back: hash checked, 16-bit grayscale, size as recorded.
    pub fn read_image(&self, image: &ImageRef) -> Result<Image16, LibraryError> {
        let (path, bytes) = self.read_checked(image)?;
        let decoded = Image16::from_png(&bytes)
            .map_err(|e| fail(&path, None, Some("pixels"), e.to_string()))?;
        check_dims(&path, image, decoded.width, decoded.height)?;
        Ok(decoded)
    }

    /// Reads a mask back: hash checked, 8-bit grayscale, size as recorded.
    pub fn read_mask(&self, image: &ImageRef) -> Result<Mask8, LibraryError> {
        let (path, bytes) = self.read_checked(image)?;
        let decoded = Mask8::from_png(&bytes)
            .map_err(|e| fail(&path, None, Some("pixels"), e.to_string()))?;
        check_dims(&path, image, decoded.width, decoded.height)?;
        Ok(decoded)
    }

    /// The low and high channels of a scan's view (`None` for an energy it lacks).
    pub fn read_view(
        &self,
        record: &ScanRecord,
        view: usize,
    ) -> Result<[Option<Image16>; 2], LibraryError> {
        let mut out = [None, None];
        if let Some(v) = record.views.get(view) {
            for c in &v.channels {
                let slot = match c.energy {
                    Energy::Low => 0,
                    Energy::High => 1,
                };
                out[slot] = Some(self.read_image(&c.image)?);
            }
        }
        Ok(out)
    }

    /// Reads every image of every scan back and checks it; returns the problems found.
    pub fn verify(&self) -> Vec<LibraryError> {
        let mut problems = Vec::new();
        for record in &self.records {
            for (field, image) in record.images() {
                let result = if field == "mask" {
                    self.read_mask(image).map(|_| ())
                } else {
                    self.read_image(image).map(|_| ())
                };
                if let Err(mut e) = result {
                    e.reason = format!("scan '{}', {field}: {}", record.metadata.scan_id, e.reason);
                    problems.push(e);
                }
            }
        }
        problems
    }
}

/// Checks an annotation line against its scan: annotator named, view present, every box inside
/// the view's image, labels not empty, time a duration. Returns the field at fault and why.
pub fn check_annotation_on(
    scan: &ScanRecord,
    record: &AnnotationRecord,
) -> Result<(), (String, String)> {
    if record.annotator.trim().is_empty() {
        return Err(("annotator".into(), "is empty".into()));
    }
    let Some(view) = scan.views.get(record.view) else {
        return Err((
            "view".into(),
            format!("scan '{}' has no view {}", record.scan_id, record.view),
        ));
    };
    let image = &view.channels[0].image;
    for (i, object) in record.objects.iter().enumerate() {
        if !object.bbox.inside(image.width, image.height) {
            return Err((
                format!("objects[{i}].bbox"),
                format!(
                    "box {:?} lies outside the {} × {} image",
                    <[f64; 4]>::from(object.bbox),
                    image.width,
                    image.height
                ),
            ));
        }
        if object.label.trim().is_empty() {
            return Err((format!("objects[{i}].label"), "is empty".into()));
        }
    }
    if let Some(s) = record.seconds {
        if !(s.is_finite() && s >= 0.0) {
            return Err(("seconds".into(), format!("{s} is not a duration")));
        }
    }
    if let Some(review) = &record.review {
        if record.role != AnnotationRole::Annotator {
            return Err((
                "review".into(),
                "only an annotator's line records a review".into(),
            ));
        }
        for (i, action) in review.actions.iter().enumerate() {
            if action.proposal.is_some_and(|p| p >= review.proposals.len()) {
                return Err((
                    format!("review.actions[{i}].proposal"),
                    format!("the review has {} proposals", review.proposals.len()),
                ));
            }
        }
    }
    Ok(())
}

fn check_dims(path: &Path, image: &ImageRef, width: u32, height: u32) -> Result<(), LibraryError> {
    if (width, height) != (image.width, image.height) {
        return Err(fail(
            path,
            None,
            Some("size"),
            format!(
                "{width} × {height} pixels, the catalogue says {} × {}",
                image.width, image.height
            ),
        ));
    }
    Ok(())
}

pub(crate) fn json_error(file: &Path, line: usize, e: &serde_json::Error) -> LibraryError {
    // serde_json names the field in its message ("missing field `scan_id`", "unknown field ...",
    // "invalid type ... at column N").
    fail(file, Some(line), None, format!("not a valid record: {e}"))
}

/// Flushes a folder's entries (new, renamed or removed files) to disk. A no-op where folders
/// cannot be opened (not Unix).
pub(crate) fn sync_dir(dir: &Path) -> Result<(), LibraryError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| fail(dir, None, None, format!("cannot flush the folder: {e}")))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Writes a whole file durably: to a temporary name beside it, flushed, renamed over `path`,
/// then the folder flushed. A crash leaves the old file or the new one, never a part.
pub(crate) fn write_durable(path: &Path, bytes: &[u8]) -> Result<(), LibraryError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut file = File::create(&tmp).map_err(|e| fail(&tmp, None, None, e.to_string()))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| fail(&tmp, None, None, e.to_string()))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| fail(path, None, None, e.to_string()))?;
    sync_dir(&dir)
}

/// The path of the file that receives a JSON Lines file's torn lines: `<file>.torn`.
pub fn torn_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".torn");
    PathBuf::from(name)
}

/// Appends one line durably. A torn last line already there (no final newline) is first moved
/// to `<file>.torn` and cut off, and returned.
pub(crate) fn append_line(path: &Path, line: &str) -> Result<Option<Recovered>, LibraryError> {
    let io = |e: std::io::Error| fail(path, None, None, e.to_string());
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let torn = set_aside_torn_tail(path, &mut file)?;
    let mut text = String::with_capacity(line.len() + 1);
    text.push_str(line);
    text.push('\n');
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(io)?;
    if !existed {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync_dir(dir)?;
        }
    }
    Ok(torn)
}

/// When `file` does not end with a newline, moves its last, unterminated line to `<file>.torn`
/// (appended and flushed first) and cuts `file` back to its last complete line (flushed).
/// Whitespace alone is cut without a record.
fn set_aside_torn_tail(path: &Path, file: &mut File) -> Result<Option<Recovered>, LibraryError> {
    use std::io::{Seek, SeekFrom};
    let io = |e: std::io::Error| fail(path, None, None, e.to_string());
    let len = file.metadata().map_err(io)?.len();
    if len == 0 {
        return Ok(None);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io)?;
    file.read_exact(&mut last).map_err(io)?;
    if last[0] == b'\n' {
        return Ok(None);
    }
    // Find the start of the last line, reading backwards in blocks.
    let mut start = 0u64;
    let mut end = len;
    let mut block = vec![0u8; 64 * 1024];
    'search: while end > 0 {
        let from = end.saturating_sub(block.len() as u64);
        let n = (end - from) as usize;
        file.seek(SeekFrom::Start(from)).map_err(io)?;
        file.read_exact(&mut block[..n]).map_err(io)?;
        if let Some(i) = block[..n].iter().rposition(|&b| b == b'\n') {
            start = from + i as u64 + 1;
            break 'search;
        }
        end = from;
    }
    let mut tail = Vec::with_capacity((len - start) as usize);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    (&mut *file)
        .take(len - start)
        .read_to_end(&mut tail)
        .map_err(io)?;
    let record = if tail.iter().all(|b| b.is_ascii_whitespace()) {
        None
    } else {
        let line = count_newlines(file, start).map_err(io)? + 1;
        let torn = torn_path(path);
        let existed = torn.exists();
        let mut out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&torn)
            .map_err(|e| fail(&torn, None, None, e.to_string()))?;
        tail.push(b'\n');
        out.write_all(&tail)
            .and_then(|_| out.sync_all())
            .map_err(|e| fail(&torn, None, None, e.to_string()))?;
        if !existed {
            if let Some(dir) = torn.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
        }
        Some(Recovered {
            file: path.to_path_buf(),
            line,
            offset: start,
            bytes: len - start,
            moved_to: Some(torn),
        })
    };
    file.set_len(start)
        .and_then(|_| file.sync_all())
        .map_err(io)?;
    Ok(record)
}

fn count_newlines(file: &mut File, upto: u64) -> std::io::Result<usize> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new((&mut *file).take(upto));
    let mut count = 0;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(count);
        }
        count += buf.iter().filter(|&&b| b == b'\n').count();
        let n = buf.len();
        reader.consume(n);
    }
}

/// Lines of a file with their 1-based numbers.
pub(crate) type NumberedLines = Vec<(usize, String)>;

/// The non-empty lines of a JSON Lines file (none when it does not exist), numbered from 1, and
/// its torn last line (bytes after the last newline), which is not returned as a line.
pub(crate) fn read_lines(path: &Path) -> Result<(NumberedLines, Option<Recovered>), LibraryError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(fail(path, None, None, e.to_string())),
    };
    let mut reader = BufReader::new(file);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0;
    let mut offset = 0u64;
    loop {
        buf.clear();
        line += 1;
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| fail(path, Some(line), None, e.to_string()))?;
        if n == 0 {
            break;
        }
        if buf.len() > MAX_LINE {
            // Too long to read as a record. Find where it ends without keeping it: an
            // unterminated tail is a torn append like any other (set aside by the next write),
            // a whole line is an error.
            let mut total = n as u64;
            let mut ended = false;
            loop {
                let chunk = reader
                    .fill_buf()
                    .map_err(|e| fail(path, Some(line), None, e.to_string()))?;
                if chunk.is_empty() {
                    break;
                }
                let (used, found) = match chunk.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (chunk.len(), false),
                };
                total += used as u64;
                reader.consume(used);
                if found {
                    ended = true;
                    break;
                }
            }
            if !ended {
                let torn = Recovered {
                    file: path.to_path_buf(),
                    line,
                    offset,
                    bytes: total,
                    moved_to: None,
                };
                return Ok((out, Some(torn)));
            }
            return Err(fail(
                path,
                Some(line),
                None,
                format!("line longer than {MAX_LINE} bytes"),
            ));
        }
        if buf.last() != Some(&b'\n') {
            // The end of the file without a newline: an append that did not finish.
            if buf.iter().all(|b| b.is_ascii_whitespace()) {
                break;
            }
            let torn = Recovered {
                file: path.to_path_buf(),
                line,
                offset,
                bytes: n as u64,
                moved_to: None,
            };
            return Ok((out, Some(torn)));
        }
        offset += n as u64;
        let text = String::from_utf8(std::mem::take(&mut buf))
            .map_err(|_| fail(path, Some(line), None, "not UTF-8 text"))?;
        if !text.trim().is_empty() {
            out.push((line, text));
        }
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::{generate_scan, GeneratorParams};
    use crate::geometry::BoxPx;

    fn params() -> GeneratorParams {
        GeneratorParams {
            width: 64,
            height: 64,
            threat_rate: 1.0,
            threat_scale: [0.2, 0.3],
            ..GeneratorParams::default()
        }
    }

    fn library_with(n: u64) -> (tempfile::TempDir, Library) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lib");
        let mut lib = Library::create(&root).unwrap();
        for i in 0..n {
            lib.commit(prepare(generate_scan(&params(), 1, i)).unwrap())
                .unwrap();
        }
        (dir, lib)
    }

    #[test]
    fn scans_round_trip_through_the_folder() {
        let (_dir, lib) = library_with(3);
        let again = Library::open(lib.root()).unwrap();
        assert_eq!(again.records(), lib.records());
        let scan = generate_scan(&params(), 1, 1);
        let record = again.get("syn-1-000001").unwrap();
        let [low, high] = again.read_view(record, 0).unwrap();
        assert_eq!(low.unwrap(), scan.low);
        assert_eq!(high.unwrap(), scan.high);
        assert!(again.verify().is_empty());
    }

    #[test]
    fn a_duplicate_scan_is_refused() {
        let (_dir, mut lib) = library_with(1);
        let err = lib
            .commit(prepare(generate_scan(&params(), 1, 0)).unwrap())
            .unwrap_err();
        assert!(err.to_string().contains("already in the library"), "{err}");
    }

    #[test]
    fn damaged_files_are_refused_with_file_and_field() {
        let (_dir, lib) = library_with(2);
        let root = lib.root().to_path_buf();
        let record = lib.records()[0].clone();
        // A changed image: the hash check names the file.
        let path = lib.image_path(&record.views[0].channels[0].image.sha256);
        let mut bytes = fs::read(&path).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let err = lib
            .read_image(&record.views[0].channels[0].image)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&record.views[0].channels[0].image.sha256) && err.contains("sha256"),
            "{err}"
        );
        assert_eq!(lib.verify().len(), 1);
        // An 8-bit image stored under a transmission channel's name: refused as the wrong depth.
        let mask = Mask8 {
            width: 64,
            height: 64,
            data: vec![0; 64 * 64],
        };
        let png = mask.to_png().unwrap();
        let sha = sha256_hex(&png);
        let p = lib.image_path(&sha);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, &png).unwrap();
        let fake = ImageRef {
            sha256: sha,
            width: 64,
            height: 64,
        };
        let err = lib.read_image(&fake).unwrap_err().to_string();
        assert!(
            err.contains("field pixels") && err.contains("8-bit"),
            "{err}"
        );

        // Catalogue lines: a box outside the image, a bad container number, a missing field.
        let catalogue = root.join(CATALOGUE_FILE);
        let good = fs::read_to_string(&catalogue).unwrap();
        let mut bad = record.clone();
        bad.metadata.scan_id = "other".into();
        bad.truth = vec![crate::scan::TruthObject {
            class: "knife".into(),
            bbox: BoxPx::new(10.0, 10.0, 80.0, 20.0).unwrap(),
            material: "steel".into(),
            rotation_deg: 0.0,
            view: 0,
            mask_value: 1,
            source: crate::scan::TruthSource::Generator,
        }];
        fs::write(
            &catalogue,
            format!("{good}{}\n", serde_json::to_string(&bad).unwrap()),
        )
        .unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(
            err.contains("catalogue.jsonl:3")
                && err.contains("truth[0].bbox")
                && err.contains("outside"),
            "{err}"
        );
        bad.truth.clear();
        bad.metadata.container_id = Some("CSQU3054384".into());
        fs::write(
            &catalogue,
            format!("{good}{}\n", serde_json::to_string(&bad).unwrap()),
        )
        .unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(
            err.contains("metadata.container_id") && err.contains("check digit"),
            "{err}"
        );
        fs::write(&catalogue, format!("{good}{{\"metadata\": {{}}}}\n")).unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(
            err.contains("catalogue.jsonl:3") && err.contains("missing field"),
            "{err}"
        );
        fs::write(&catalogue, &good).unwrap();

        // An annotation of a scan the catalogue does not have.
        let annotations = root.join(ANNOTATIONS_FILE);
        fs::write(
            &annotations,
            "{\"scan_id\": \"nope\", \"annotator\": \"a\", \"objects\": [], \"seconds\": 3}\n",
        )
        .unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(
            err.contains("annotations.jsonl:1")
                && err.contains("field scan_id")
                && err.contains("nope"),
            "{err}"
        );
        fs::write(
            &annotations,
            format!(
                "{{\"scan_id\": \"{}\", \"annotator\": \"a\", \"objects\": [{{\"label\": \"knife\", \"bbox\": [0, 0, 65, 10]}}], \"seconds\": 3}}\n",
                record.metadata.scan_id
            ),
        )
        .unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(err.contains("objects[0].bbox"), "{err}");
    }

    fn annotation(scan_id: &str, annotator: &str) -> AnnotationRecord {
        AnnotationRecord {
            scan_id: scan_id.into(),
            annotator: annotator.into(),
            role: AnnotationRole::Annotator,
            view: 0,
            objects: vec![AnnotatedObject {
                label: "knife".into(),
                bbox: BoxPx::new(1.0, 2.0, 10.0, 12.0).unwrap(),
                score: 1.0,
            }],
            seconds: Some(4.0),
            guideline: None,
            review: None,
        }
    }

    /// A torn tail longer than a line may be is still a torn tail: reported, the library
    /// opens, and the next write sets all of it aside. A whole line that long is an error.
    #[test]
    fn a_torn_tail_over_the_line_limit_is_set_aside_not_fatal() {
        let (_dir, lib) = library_with(1);
        let root = lib.root().to_path_buf();
        let catalogue = root.join(CATALOGUE_FILE);
        let complete = fs::read(&catalogue).unwrap();
        let mut bytes = complete.clone();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        fs::write(&catalogue, &bytes).unwrap();
        let mut again = Library::open(&root).unwrap();
        assert_eq!(again.records().len(), 1);
        let rec = again.recovered().to_vec();
        assert_eq!(rec.len(), 1);
        assert_eq!(
            (rec[0].line, rec[0].offset, rec[0].bytes),
            (2, complete.len() as u64, (MAX_LINE + 10) as u64)
        );
        again
            .commit(prepare(generate_scan(&params(), 1, 5)).unwrap())
            .unwrap();
        let mut expected = vec![b'x'; MAX_LINE + 10];
        expected.push(b'\n');
        assert!(
            fs::read(torn_path(&catalogue)).unwrap() == expected,
            "every byte kept aside, as one line"
        );
        assert_eq!(Library::open(&root).unwrap().records().len(), 2);
        // A complete line over the limit is refused, naming the file and line.
        let mut bytes = fs::read(&catalogue).unwrap();
        bytes.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        bytes.push(b'\n');
        fs::write(&catalogue, &bytes).unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(
            err.contains("catalogue.jsonl:3") && err.contains("longer than"),
            "{err}"
        );
    }

    #[test]
    fn a_torn_last_line_is_reported_then_moved_aside_never_lost() {
        let (_dir, mut lib) = library_with(2);
        let root = lib.root().to_path_buf();
        lib.add_annotation(annotation("syn-1-000000", "a")).unwrap();
        let catalogue = root.join(CATALOGUE_FILE);
        let annotations = root.join(ANNOTATIONS_FILE);
        let complete = fs::read(&catalogue).unwrap();

        // A crash in the middle of the third scan's line: half of it, cut inside a UTF-8
        // character (the line holds "µ" in its declared contents).
        let mut third = prepare(generate_scan(&params(), 1, 2)).unwrap();
        third.record.metadata.declared_contents = Some("µµµµ books".into());
        let line = serde_json::to_string(&third.record).unwrap();
        let cut = line.find('µ').unwrap() + 1;
        let torn_bytes = line.as_bytes()[..cut].to_vec();
        let mut bytes = complete.clone();
        bytes.extend_from_slice(&torn_bytes);
        fs::write(&catalogue, &bytes).unwrap();
        // ... and one in the middle of an annotation line; a whole record that lacks only its
        // newline was not committed either.
        let whole = serde_json::to_string(&annotation("syn-1-000001", "b")).unwrap();
        let mut ann = fs::read(&annotations).unwrap();
        let ann_len = ann.len() as u64;
        ann.extend_from_slice(whole.as_bytes());
        fs::write(&annotations, &ann).unwrap();

        let mut again = Library::open(&root).unwrap();
        assert_eq!(again.records().len(), 2);
        assert_eq!(again.annotations().len(), 1);
        let rec = again.recovered().to_vec();
        assert_eq!(rec.len(), 2, "{rec:?}");
        assert_eq!(
            (
                rec[0].file.clone(),
                rec[0].line,
                rec[0].offset,
                rec[0].bytes
            ),
            (
                catalogue.clone(),
                3,
                complete.len() as u64,
                torn_bytes.len() as u64
            )
        );
        assert_eq!((rec[1].line, rec[1].offset), (2, ann_len));
        assert!(rec.iter().all(|r| r.moved_to.is_none()));
        let text = rec[0].to_string();
        assert!(
            text.contains("catalogue.jsonl:3") && text.contains("unterminated"),
            "{text}"
        );
        // Opening does not write: the files are as the crash left them.
        assert_eq!(fs::read(&catalogue).unwrap(), bytes);

        // The next write sets the torn bytes aside, byte for byte, then appends.
        again.commit(third).unwrap();
        let torn_file = torn_path(&catalogue);
        let mut expected = torn_bytes.clone();
        expected.push(b'\n');
        assert_eq!(fs::read(&torn_file).unwrap(), expected);
        assert_eq!(
            again.recovered()[0].moved_to.as_deref(),
            Some(torn_file.as_path())
        );
        assert!(again.recovered()[1].moved_to.is_none());
        again
            .add_annotation(annotation("syn-1-000002", "c"))
            .unwrap();
        assert_eq!(
            fs::read_to_string(torn_path(&annotations)).unwrap(),
            format!("{whole}\n")
        );
        assert!(again.recovered().iter().all(|r| r.moved_to.is_some()));

        // Afterwards the library reads cleanly, with every committed record.
        let clean = Library::open(&root).unwrap();
        assert!(clean.recovered().is_empty());
        assert_eq!(clean.records().len(), 3);
        assert_eq!(clean.annotations().len(), 2);
        assert!(fs::read(&catalogue).unwrap().ends_with(b"\n"));

        // A bad line that is terminated is still an error, not a torn line.
        let mut bad = fs::read(&catalogue).unwrap();
        bad.extend_from_slice(b"{\"metadata\": \n");
        fs::write(&catalogue, &bad).unwrap();
        let err = Library::open(&root).err().unwrap().to_string();
        assert!(err.contains("catalogue.jsonl:4"), "{err}");
    }

    #[test]
    fn a_group_commit_writes_all_or_nothing_it_refuses() {
        let (_dir, mut lib) = library_with(1);
        let root = lib.root().to_path_buf();
        let before = fs::read(root.join(CATALOGUE_FILE)).unwrap();
        // A batch with a scan twice is refused before anything is written.
        let batch = vec![
            prepare(generate_scan(&params(), 1, 7)).unwrap(),
            prepare(generate_scan(&params(), 1, 7)).unwrap(),
        ];
        let err = lib.commit_all(batch).unwrap_err().to_string();
        assert!(err.contains("syn-1-000007"), "{err}");
        assert_eq!(fs::read(root.join(CATALOGUE_FILE)).unwrap(), before);
        assert!(!lib
            .image_path(&prepare(generate_scan(&params(), 1, 7)).unwrap().blobs[0].0)
            .exists());
        // A good batch: every scan, every image, in one append.
        let batch: Vec<_> = (1..5)
            .map(|i| prepare(generate_scan(&params(), 1, i)).unwrap())
            .collect();
        lib.commit_all(batch).unwrap();
        let again = Library::open(&root).unwrap();
        assert_eq!(again.records().len(), 5);
        assert!(again.verify().is_empty());
        // No temporary file is left behind.
        let leftovers = fs::read_dir(root.join("images"))
            .unwrap()
            .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count();
        assert_eq!(leftovers, 0);
    }

    /// A crash can cut the catalogue at any byte: whatever the cut, the library opens, holds
    /// exactly the lines completed before it, and reports the rest; the next write moves the
    /// rest to `catalogue.jsonl.torn` byte for byte.
    #[test]
    fn a_cut_at_any_byte_opens_with_the_complete_lines_and_reports_the_rest() {
        let (_dir, lib) = library_with(3);
        let root = lib.root().to_path_buf();
        let catalogue = root.join(CATALOGUE_FILE);
        let full = fs::read(&catalogue).unwrap();
        let ends: Vec<usize> = full
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        let mut cut = 0;
        while cut <= full.len() {
            fs::write(&catalogue, &full[..cut]).unwrap();
            let opened = Library::open(&root).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(opened.records().len(), complete, "cut at {cut}");
            let start = ends.iter().rev().find(|&&e| e <= cut).copied().unwrap_or(0);
            match opened.recovered() {
                [] => assert_eq!(start, cut, "cut at {cut}"),
                [r] => {
                    assert_eq!((r.offset, r.bytes), (start as u64, (cut - start) as u64));
                    assert_eq!(r.line, complete + 1);
                }
                more => panic!("{more:?}"),
            }
            cut += 1;
        }
        // The next write after a cut inside line 2.
        let cut = ends[0] + 50;
        fs::write(&catalogue, &full[..cut]).unwrap();
        let _ = fs::remove_file(torn_path(&catalogue));
        let mut opened = Library::open(&root).unwrap();
        opened
            .commit(prepare(generate_scan(&params(), 1, 9)).unwrap())
            .unwrap();
        let mut expected = full[ends[0]..cut].to_vec();
        expected.push(b'\n');
        assert_eq!(fs::read(torn_path(&catalogue)).unwrap(), expected);
        let reopened = Library::open(&root).unwrap();
        assert!(reopened.recovered().is_empty());
        assert_eq!(reopened.records().len(), 2);
    }

    #[test]
    fn whitespace_after_the_last_line_is_not_a_torn_line() {
        let (_dir, lib) = library_with(1);
        let root = lib.root().to_path_buf();
        let catalogue = root.join(CATALOGUE_FILE);
        let mut bytes = fs::read(&catalogue).unwrap();
        bytes.extend_from_slice(b"  ");
        fs::write(&catalogue, &bytes).unwrap();
        let mut again = Library::open(&root).unwrap();
        assert!(again.recovered().is_empty());
        again
            .commit(prepare(generate_scan(&params(), 1, 5)).unwrap())
            .unwrap();
        assert!(!torn_path(&catalogue).exists());
        assert_eq!(Library::open(&root).unwrap().records().len(), 2);
    }

    #[test]
    fn a_non_library_folder_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("notes.txt"), "mine").unwrap();
        let err = Library::create(dir.path()).err().unwrap().to_string();
        assert!(err.contains("not empty"), "{err}");
    }
}
