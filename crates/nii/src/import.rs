//! Import of scans made elsewhere: a folder of 16-bit PNG or TIFF transmission images described
//! by `metadata.csv`, with the boxes people drew on them in an optional `boxes.csv`.
//!
//! `metadata.csv` has one row per image file (a view's energy channel); the scan's own fields
//! are given on its first row and may be repeated, equal, on the others. `boxes.csv` has one
//! row per box. The whole folder is read and checked first — every row, every image (format,
//! bit depth, size, decodable), every box (its scan and view known, inside the image) — and
//! turned into a scan package that [`import_package`](crate::package::import_package) imports:
//! nothing is written unless all of it passes, and importing the same folder again changes
//! nothing. An error names the file, the line and the field. Memory: one image at a time (its
//! pixels go to the staging package as PNG at once).
//!
//! With [`ImportOptions::renderings`], 8-bit JPEG and PNG pictures (the public sets SIXray,
//! PIDray…) are taken too, approximated back to transmission by [`crate::rendering`] and marked
//! so in the scan's provenance; a colour rendering gives both energies of its view.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::consensus::AnnotatedObject;
use crate::geometry::BoxPx;
use crate::image::Image16;
use crate::library::{Library, LibraryError};
use crate::package::{
    import_staged, read_capped, write_staged, ImportSummary, ScanAnnotations, SourceObjects,
    StagedImages,
};
use crate::rendering::{self, RenderingRecord};
use crate::scan::{Channel, Energy, ImageRef, Metadata, Provenance, ScanRecord, Source, View};

/// The metadata file of an import folder.
pub const METADATA_FILE: &str = "metadata.csv";
/// The optional boxes file of an import folder.
pub const BOXES_FILE: &str = "boxes.csv";
/// Largest image file read, bytes.
pub const MAX_IMAGE_FILE_BYTES: u64 = 1 << 30;
/// Annotator name of boxes without one.
pub const DEFAULT_ANNOTATOR: &str = "imported";

/// One row of `metadata.csv`: an image file, and the scan's fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaRow {
    scan_id: String,
    file: String,
    view: Option<String>,
    energy: Option<String>,
    scanned_at: Option<String>,
    scanner_model: Option<String>,
    mm_per_pixel: Option<f64>,
    cargo_type: Option<String>,
    container_id: Option<String>,
    package_id: Option<String>,
    declared_contents: Option<String>,
    weight_kg: Option<f64>,
    volume_m3: Option<f64>,
    origin: Option<String>,
    destination: Option<String>,
    carrier: Option<String>,
    location: Option<String>,
    purpose: Option<String>,
    risk_flags: Option<String>,
    outcome: Option<String>,
    actions: Option<String>,
    consignor_name: Option<String>,
    consignor_address: Option<String>,
    consignee_name: Option<String>,
    consignee_address: Option<String>,
    contact_phone: Option<String>,
    driver_name: Option<String>,
    notes: Option<String>,
    source: Option<String>,
    licence: Option<String>,
    redistributable: Option<String>,
}

impl MetaRow {
    /// The scan's fields this row gives (empty cells left out), as the catalogue's JSON types;
    /// words (cargo type, source, redistributable) in lower case. A number that is not finite
    /// or a cargo type the catalogue does not know is an error naming the column.
    fn scan_fields(&self) -> Result<Vec<(&'static str, Value)>, (&'static str, String)> {
        let mut out = Vec::new();
        let mut text = |name: &'static str, v: &Option<String>| {
            if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                out.push((name, Value::from(v)));
            }
        };
        let lower = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_lowercase());
        text("scanned_at", &self.scanned_at);
        text("scanner_model", &self.scanner_model);
        text("cargo_type", &lower(&self.cargo_type));
        text("container_id", &self.container_id);
        text("package_id", &self.package_id);
        text("declared_contents", &self.declared_contents);
        text("origin", &self.origin);
        text("destination", &self.destination);
        text("carrier", &self.carrier);
        text("location", &self.location);
        text("purpose", &self.purpose);
        text("outcome", &self.outcome);
        text("consignor_name", &self.consignor_name);
        text("consignor_address", &self.consignor_address);
        text("consignee_name", &self.consignee_name);
        text("consignee_address", &self.consignee_address);
        text("contact_phone", &self.contact_phone);
        text("driver_name", &self.driver_name);
        text("notes", &self.notes);
        text("source", &lower(&self.source));
        text("licence", &self.licence);
        text("redistributable", &lower(&self.redistributable));
        for (name, v) in [
            ("mm_per_pixel", self.mm_per_pixel),
            ("weight_kg", self.weight_kg),
            ("volume_m3", self.volume_m3),
        ] {
            if let Some(x) = v {
                let number = serde_json::Number::from_f64(x)
                    .ok_or((name, format!("{x} is not a finite number")))?;
                out.push((name, Value::Number(number)));
            }
        }
        for (name, v) in [("risk_flags", &self.risk_flags), ("actions", &self.actions)] {
            if let Some(v) = v.as_deref().filter(|v| !v.trim().is_empty()) {
                let list: Vec<Value> = v
                    .split(';')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(Value::from)
                    .collect();
                out.push((name, Value::Array(list)));
            }
        }
        if let Some((_, Value::String(c))) = out.iter().find(|(n, _)| *n == "cargo_type") {
            if !matches!(c.as_str(), "parcel" | "bag" | "container") {
                return Err(("cargo_type", format!("'{c}'; parcel, bag or container")));
            }
        }
        Ok(out)
    }
}

/// One row of `boxes.csv`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxRow {
    scan_id: String,
    view: Option<String>,
    annotator: Option<String>,
    label: String,
    x0: f64,
    y0: f64,
    x1: f64,
    y1: f64,
    score: Option<f64>,
    seconds: Option<f64>,
}

fn fail_at(file: &Path, line: u64, field: &str, reason: impl Into<String>) -> LibraryError {
    LibraryError {
        file: file.to_path_buf(),
        line: Some(line as usize),
        field: Some(field.to_string()).filter(|f| !f.is_empty()),
        reason: reason.into(),
    }
}

/// Largest `metadata.csv` or `boxes.csv` read, bytes.
pub const MAX_CSV_BYTES: u64 = 64 << 20;

/// Reads a CSV file's rows as `T`, each with its line in the file (counted from the bytes, so
/// CRLF line ends, blank lines and quoted line breaks do not shift it); a row that does not
/// parse is an error naming the line and the column.
fn read_rows<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<(u64, T)>, LibraryError> {
    let bytes =
        read_capped(path, MAX_CSV_BYTES).map_err(|e| crate::package::fail(path, None, e))?;
    // The line of the record starting at `byte`: past the line ends a previous record left,
    // then one more than the line ends before it (found once, then searched).
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_at = |byte: u64| -> u64 {
        let mut at = (byte as usize).min(bytes.len());
        while at < bytes.len() && matches!(bytes[at], b'\r' | b'\n') {
            at += 1;
        }
        1 + newlines.partition_point(|&p| p < at) as u64
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .map_err(|e| crate::package::fail(path, None, format!("no header line: {e}")))?
        .clone();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(p.byte()));
            fail_at(path, line, "", format!("not a CSV row: {e}"))
        })?;
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        let row: T = record.deserialize(Some(&headers)).map_err(|e| {
            let field = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err
                    .field()
                    .and_then(|i| headers.get(i as usize))
                    .unwrap_or("")
                    .to_string(),
                _ => String::new(),
            };
            let reason = match e.kind() {
                csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
                _ => e.to_string(),
            };
            fail_at(path, line, &field, reason)
        })?;
        out.push((line, row));
    }
    Ok(out)
}

/// How an import folder is read.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// take 8-bit JPEG and PNG renderings too, approximated back to transmission
    /// ([`crate::rendering`]); without it they are refused
    pub renderings: bool,
}

/// What one image file gave.
enum Read {
    /// 16-bit transmission, as the scanner wrote it
    Transmission(Image16),
    /// an 8-bit rendering's approximation: the high channel, the low one for colour
    Rendering(Image16, Option<Image16>, RenderingRecord),
}

/// Whether a PNG file's header says 16-bit grayscale (the transmission a scanner writes).
fn png_is_transmission(bytes: &[u8]) -> bool {
    png::Decoder::new(std::io::Cursor::new(bytes))
        .read_header_info()
        .is_ok_and(|h| {
            h.bit_depth == png::BitDepth::Sixteen && h.color_type == png::ColorType::Grayscale
        })
}

/// Reads one image file: 16-bit transmission (grayscale PNG or TIFF), or, with
/// `renderings`, an 8-bit JPEG or PNG rendering approximated back to transmission.
fn read_file(path: &Path, renderings: bool) -> Result<Read, String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let format = match ext.as_str() {
        "jpg" | "jpeg" if renderings => "jpeg",
        "png" if renderings => "png",
        _ => return read_image(path).map(Read::Transmission),
    };
    let bytes =
        read_capped(path, MAX_IMAGE_FILE_BYTES).map_err(|e| format!("{}: {e}", path.display()))?;
    if format == "png" && png_is_transmission(&bytes) {
        return Image16::from_png(&bytes)
            .map(Read::Transmission)
            .map_err(|e| format!("{}: {e}", path.display()));
    }
    let picture =
        rendering::decode(&bytes, format).map_err(|e| format!("{}: {e}", path.display()))?;
    drop(bytes);
    let (high, low) = rendering::approximate(&picture);
    let record = RenderingRecord {
        format: format.to_string(),
        colour: low.is_some(),
        method: rendering::METHOD.to_string(),
    };
    Ok(Read::Rendering(high, low, record))
}

/// Reads one image file as 16-bit transmission: a 16-bit grayscale PNG or TIFF.
fn read_image(path: &Path) -> Result<Image16, String> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let decode = match ext.as_str() {
        "png" => Image16::from_png,
        "tif" | "tiff" => Image16::from_tiff,
        "jpg" | "jpeg" => {
            return Err(format!(
                "{}: a JPEG is 8-bit and lossy, a rendering, not transmission; bring the scanner's 16-bit PNG or TIFF, or import with --renderings to approximate it (marked so in the provenance)",
                path.display()
            ))
        }
        other => {
            return Err(format!(
                "{}: extension '{other}'; 16-bit grayscale PNG or TIFF expected",
                path.display()
            ))
        }
    };
    let bytes =
        read_capped(path, MAX_IMAGE_FILE_BYTES).map_err(|e| format!("{}: {e}", path.display()))?;
    decode(&bytes).map_err(|e| match e {
        crate::image::ImageError::Format { ref found, .. }
            if ext == "png" && found.starts_with("8-bit") =>
        {
            format!(
                "{}: {e}; an 8-bit rendering is approximated with --renderings (marked so in the provenance)",
                path.display()
            )
        }
        e => format!("{}: {e}", path.display()),
    })
}

/// One annotator's boxes on one view, and the seconds the annotation took.
type Line = (Vec<AnnotatedObject>, Option<f64>);

/// A scan being assembled from its rows.
struct Draft {
    line: u64,
    fields: Map<String, Value>,
    field_lines: HashMap<String, u64>,
    views: Vec<(String, Vec<Channel>)>,
    /// the rendering its images were approximated from, with the line of the first; or the
    /// line of its first 16-bit image
    rendering: Option<(RenderingRecord, u64)>,
    transmission: Option<u64>,
}

/// Reads an import folder into a scan package at `staging`.
fn folder_to_package(
    dir: &Path,
    staging: &Path,
    library: &Library,
    options: ImportOptions,
) -> Result<(), LibraryError> {
    let meta_path = dir.join(METADATA_FILE);
    if !meta_path.is_file() {
        return Err(crate::package::fail(
            &meta_path,
            None,
            "missing: an import folder has metadata.csv (one row per image file)",
        ));
    }
    let rows: Vec<(u64, MetaRow)> = read_rows(&meta_path)?;
    if rows.is_empty() {
        return Err(crate::package::fail(&meta_path, None, "has no row"));
    }
    let mut staged = StagedImages::new(staging)?;
    let mut order: Vec<String> = Vec::new();
    let mut drafts: HashMap<String, Draft> = HashMap::new();
    for (line, row) in &rows {
        let line = *line;
        let id = row.scan_id.clone();
        let draft = drafts.entry(id.clone()).or_insert_with(|| {
            order.push(id.clone());
            Draft {
                line,
                fields: Map::new(),
                field_lines: HashMap::new(),
                views: Vec::new(),
                rendering: None,
                transmission: None,
            }
        });
        let fields = row
            .scan_fields()
            .map_err(|(field, reason)| fail_at(&meta_path, line, field, reason))?;
        for (name, value) in fields {
            match draft.fields.get(name) {
                Some(old) if *old != value => {
                    return Err(fail_at(
                        &meta_path,
                        line,
                        name,
                        format!(
                            "{value} differs from {old} on line {} for scan '{id}'",
                            draft.field_lines[name]
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    draft.fields.insert(name.to_string(), value);
                    draft.field_lines.insert(name.to_string(), line);
                }
            }
        }
        let view = row
            .view
            .as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .unwrap_or("top")
            .to_string();
        let energy_given = row
            .energy
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty());
        let energy = match energy_given.as_deref() {
            None | Some("high") => Energy::High,
            Some("low") => Energy::Low,
            Some(other) => {
                return Err(fail_at(
                    &meta_path,
                    line,
                    "energy",
                    format!("'{other}'; low or high (empty: high, a single-energy scanner)"),
                ))
            }
        };
        let slot = match draft.views.iter().position(|(name, _)| *name == view) {
            Some(i) => i,
            None => {
                draft.views.push((view.clone(), Vec::new()));
                draft.views.len() - 1
            }
        };
        let file = Path::new(row.file.trim());
        let path = if file.is_absolute() {
            file.to_path_buf()
        } else {
            dir.join(file)
        };
        let images = match read_file(&path, options.renderings)
            .map_err(|e| fail_at(&meta_path, line, "file", e))?
        {
            Read::Transmission(image) => {
                if let Some((_, first)) = &draft.rendering {
                    return Err(fail_at(&meta_path, line, "file", format!(
                        "{}: 16-bit transmission, but scan '{id}' was given as a rendering on line {first}; a scan is one or the other",
                        path.display()
                    )));
                }
                draft.transmission.get_or_insert(line);
                vec![(energy, image)]
            }
            Read::Rendering(high, low, record) => {
                if let Some(first) = draft.transmission {
                    return Err(fail_at(&meta_path, line, "file", format!(
                        "{}: a rendering, but scan '{id}' was given as 16-bit transmission on line {first}; a scan is one or the other",
                        path.display()
                    )));
                }
                match &draft.rendering {
                    Some((first, _)) if first.colour != record.colour => {
                        return Err(fail_at(&meta_path, line, "file", format!(
                            "{}: a {} rendering, but scan '{id}' has {} ones; a scan's renderings are all colour or all gray",
                            path.display(),
                            if record.colour { "colour" } else { "gray" },
                            if first.colour { "colour" } else { "gray" },
                        )));
                    }
                    Some(_) => {}
                    None => draft.rendering = Some((record, line)),
                }
                match low {
                    // One colour picture holds both energies of its view.
                    Some(low) => {
                        if let Some(given) = energy_given {
                            return Err(fail_at(&meta_path, line, "energy", format!(
                                "'{given}' given for a colour rendering, which holds both energies of its view: leave it empty"
                            )));
                        }
                        vec![(Energy::Low, low), (Energy::High, high)]
                    }
                    None => vec![(energy, high)],
                }
            }
        };
        for (energy, image) in images {
            if draft.views[slot].1.iter().any(|c| c.energy == energy) {
                return Err(fail_at(
                    &meta_path,
                    line,
                    "energy",
                    format!(
                        "view '{view}' of scan '{id}' has its {} energy image already",
                        energy.word()
                    ),
                ));
            }
            let png = image
                .to_png()
                .map_err(|e| fail_at(&meta_path, line, "file", e.to_string()))?;
            let (width, height) = (image.width, image.height);
            drop(image);
            if let Some(other) = draft.views[slot].1.first() {
                if (other.image.width, other.image.height) != (width, height) {
                    return Err(fail_at(
                        &meta_path,
                        line,
                        "file",
                        format!(
                            "{}: {width} × {height} pixels, but the {} energy image of view '{view}' has {} × {}",
                            path.display(),
                            other.energy.word(),
                            other.image.width,
                            other.image.height
                        ),
                    ));
                }
            }
            let sha256 = staged.add(png, 16, width, height)?;
            draft.views[slot].1.push(Channel {
                energy,
                image: ImageRef {
                    sha256,
                    width,
                    height,
                },
            });
        }
    }
    // The records.
    let mut records: Vec<ScanRecord> = Vec::new();
    for id in &order {
        let Some(mut draft) = drafts.remove(id) else {
            continue;
        };
        let at =
            |draft: &Draft, name: &str| draft.field_lines.get(name).copied().unwrap_or(draft.line);
        let source = match draft
            .fields
            .remove("source")
            .as_ref()
            .and_then(Value::as_str)
        {
            None | Some("real") => Source::Real,
            Some("staged") => Source::Staged,
            Some(other) => {
                return Err(fail_at(
                    &meta_path,
                    at(&draft, "source"),
                    "source",
                    format!(
                        "'{other}'; real or staged (synthetic scans are made by `nii generate`)"
                    ),
                ))
            }
        };
        let Some(licence) = draft
            .fields
            .remove("licence")
            .and_then(|v| v.as_str().map(str::to_string))
        else {
            return Err(fail_at(
                &meta_path,
                draft.line,
                "licence",
                format!("missing for scan '{id}': every scan says under which licence it is held"),
            ));
        };
        let redistributable = match draft
            .fields
            .remove("redistributable")
            .as_ref()
            .and_then(Value::as_str)
            .map(str::to_lowercase)
            .as_deref()
        {
            None | Some("false") | Some("no") | Some("0") => false,
            Some("true") | Some("yes") | Some("1") => true,
            Some(other) => {
                return Err(fail_at(
                    &meta_path,
                    at(&draft, "redistributable"),
                    "redistributable",
                    format!("'{other}'; true or false (empty: false)"),
                ))
            }
        };
        draft
            .fields
            .insert("scan_id".into(), Value::from(id.as_str()));
        draft
            .fields
            .entry("purpose")
            .or_insert_with(|| Value::from("imported"));
        let metadata: Metadata = serde_json::from_value(Value::Object(draft.fields.clone()))
            .map_err(|e| {
                let text = e.to_string();
                let field = text
                    .split('`')
                    .nth(1)
                    .filter(|f| draft.fields.contains_key(*f) || text.starts_with("missing"))
                    .unwrap_or("")
                    .to_string();
                let line = at(&draft, &field);
                fail_at(&meta_path, line, &field, format!("scan '{id}': {text}"))
            })?;
        let record = ScanRecord {
            metadata,
            views: draft
                .views
                .into_iter()
                .map(|(name, mut channels)| {
                    channels.sort_by_key(|c| c.energy);
                    View { name, channels }
                })
                .collect(),
            provenance: Provenance {
                source,
                generator: None,
                projections: Vec::new(),
                licence,
                redistributable,
                rendering: draft.rendering.take().map(|(record, _)| record),
            },
            truth: Vec::new(),
            mask: None,
            clutter: None,
            anonymisation: None,
        };
        record.validate().map_err(|e| {
            let column = e.field.rsplit('.').next().unwrap_or(&e.field).to_string();
            let line = draft
                .field_lines
                .get(&column)
                .copied()
                .unwrap_or(draft.line);
            fail_at(&meta_path, line, &e.field, e.reason)
        })?;
        if library.get(id).is_some_and(|existing| *existing != record) {
            return Err(fail_at(
                &meta_path,
                draft.line,
                "scan_id",
                format!("scan '{id}' is already in the library with other content; rename it or leave it out"),
            ));
        }
        records.push(record);
    }
    // The boxes.
    let boxes_path = dir.join(BOXES_FILE);
    // per (scan, view, annotator): the boxes and the seconds the annotation took
    let mut lines: BTreeMap<(usize, usize, String), Line> = BTreeMap::new();
    if boxes_path.exists() {
        let index: HashMap<&str, usize> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.metadata.scan_id.as_str(), i))
            .collect();
        for (line, row) in read_rows::<BoxRow>(&boxes_path)? {
            let Some(&s) = index.get(row.scan_id.as_str()) else {
                return Err(fail_at(
                    &boxes_path,
                    line,
                    "scan_id",
                    format!("scan '{}' is not in {METADATA_FILE}", row.scan_id),
                ));
            };
            let record = &records[s];
            let v = match row.view.as_deref().filter(|v| !v.is_empty()) {
                None => 0,
                Some(name) => record
                    .views
                    .iter()
                    .position(|v| v.name == name)
                    .ok_or_else(|| {
                        fail_at(
                            &boxes_path,
                            line,
                            "view",
                            format!("scan '{}' has no view '{name}'", row.scan_id),
                        )
                    })?,
            };
            if row.label.is_empty() {
                return Err(fail_at(&boxes_path, line, "label", "empty"));
            }
            let image = &record.views[v].channels[0].image;
            let (w, h) = (f64::from(image.width), f64::from(image.height));
            let coordinate_problem = [
                ("x0", row.x0, !(row.x0 >= 0.0 && row.x0 < w)),
                ("y0", row.y0, !(row.y0 >= 0.0 && row.y0 < h)),
                ("x1", row.x1, !(row.x1 > row.x0 && row.x1 <= w)),
                ("y1", row.y1, !(row.y1 > row.y0 && row.y1 <= h)),
            ]
            .into_iter()
            .find(|(_, _, bad)| *bad);
            if let Some((field, value, _)) = coordinate_problem {
                return Err(fail_at(
                    &boxes_path,
                    line,
                    field,
                    format!(
                        "{value}: box [{}, {}, {}, {}] is empty or lies outside the {} × {} image",
                        row.x0, row.y0, row.x1, row.y1, image.width, image.height
                    ),
                ));
            }
            let bbox = BoxPx::new(row.x0, row.y0, row.x1, row.y1)
                .map_err(|e| fail_at(&boxes_path, line, "x1", e))?;
            let score = row.score.unwrap_or(1.0);
            if !(score.is_finite() && score >= 0.0) {
                return Err(fail_at(
                    &boxes_path,
                    line,
                    "score",
                    format!("{score} is not a score"),
                ));
            }
            if let Some(t) = row.seconds.filter(|t| !(t.is_finite() && *t >= 0.0)) {
                return Err(fail_at(
                    &boxes_path,
                    line,
                    "seconds",
                    format!("{t} is not a duration"),
                ));
            }
            let who = row
                .annotator
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(|| DEFAULT_ANNOTATOR.to_string());
            let entry = lines.entry((s, v, who)).or_default();
            entry.0.push(AnnotatedObject {
                label: row.label,
                bbox,
                score,
            });
            if row.seconds.is_some() {
                entry.1 = row.seconds;
            }
        }
    }
    let mut annotations: BTreeMap<(usize, usize), ScanAnnotations> = BTreeMap::new();
    for ((s, v, who), (objects, seconds)) in lines {
        annotations
            .entry((s, v))
            .or_insert_with(|| ScanAnnotations::new(&records[s].metadata.scan_id, v))
            .annotators
            .push(SourceObjects {
                annotator: who,
                objects,
                seconds,
                guideline: None,
            });
    }
    write_staged(
        staging,
        "borderlens (folder import)",
        records,
        staged,
        annotations.into_values().collect(),
    )
}

/// Imports an import folder (`metadata.csv`, the images it names, an optional `boxes.csv`)
/// into a library; see the module documentation.
pub fn import_folder(library: &mut Library, dir: &Path) -> Result<ImportSummary, LibraryError> {
    import_folder_with(library, dir, ImportOptions::default())
}

/// [`import_folder`] with options (renderings taken or not).
pub fn import_folder_with(
    library: &mut Library,
    dir: &Path,
    options: ImportOptions,
) -> Result<ImportSummary, LibraryError> {
    // The site's own files: a scan whose licence keeps it here is imported (the exports
    // refuse it).
    import_staged(library, dir, "folder", false, |staging, library| {
        folder_to_package(dir, staging, library, options)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Mask8;
    use std::fs;
    use std::path::PathBuf;

    fn gradient(width: u32, height: u32, seed: u16) -> Image16 {
        Image16 {
            width,
            height,
            data: (0..width * height)
                .map(|i| (i as u16).wrapping_mul(37).wrapping_add(seed))
                .collect(),
        }
    }

    fn write_tiff(path: &Path, image: &Image16) {
        use tiff::encoder::{colortype::Gray16, TiffEncoder};
        let file = fs::File::create(path).unwrap();
        let mut enc = TiffEncoder::new(file).unwrap();
        enc.write_image::<Gray16>(image.width, image.height, &image.data)
            .unwrap();
    }

    const HEADER: &str = "scan_id,file,view,energy,scanned_at,scanner_model,mm_per_pixel,cargo_type,container_id,package_id,declared_contents,origin,destination,risk_flags,consignee_name,source,licence,redistributable";

    /// A folder with two scans: `lab-1` dual-energy (two PNG), `lab-2` single-energy (TIFF);
    /// two boxes by `analyst-1` on `lab-1`.
    fn folder() -> (tempfile::TempDir, PathBuf, Vec<Image16>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        fs::create_dir_all(root.join("img")).unwrap();
        let images = vec![
            gradient(40, 30, 1),
            gradient(40, 30, 2),
            gradient(24, 20, 3),
        ];
        fs::write(root.join("img/lab-1-low.png"), images[0].to_png().unwrap()).unwrap();
        fs::write(root.join("img/lab-1-high.png"), images[1].to_png().unwrap()).unwrap();
        write_tiff(&root.join("img/lab-2.tif"), &images[2]);
        fs::write(
            root.join(METADATA_FILE),
            format!(
                "{HEADER}\n\
                 lab-1,img/lab-1-low.png,top,low,2026-03-01T10:15:00,Scanner X,1.5,container,MSCU6639870,,tyres,CN,FR,high value;new shipper,Maria Rossi,staged,CC-BY-4.0,true\n\
                 lab-1,img/lab-1-high.png,top,high,,,,,,,,,,,,,,\n\
                 lab-2,img/lab-2.tif,,,2026-03-02T08:00:00,Scanner Y,2,parcel,,RR123456785FR,books,DE,FR,,,real,internal,false\n"
            ),
        )
        .unwrap();
        fs::write(
            root.join(BOXES_FILE),
            "scan_id,view,annotator,label,x0,y0,x1,y1,score,seconds\n\
             lab-1,top,analyst-1,knife,1,2,10,12,,35\n\
             lab-1,,analyst-1,gun,20.5,3,40,29.5,,\n",
        )
        .unwrap();
        (dir, root, images)
    }

    #[test]
    fn a_folder_of_png_and_tiff_with_metadata_and_boxes_is_imported_once() {
        let (dir, root, images) = folder();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let s = import_folder(&mut lib, &root).unwrap();
        assert_eq!((s.scans_added, s.annotations_added), (2, 1));
        let a = lib.get("lab-1").unwrap();
        assert_eq!(a.metadata.scanner_model, "Scanner X");
        assert_eq!(a.metadata.container_id.as_deref(), Some("MSCU6639870"));
        assert_eq!(a.metadata.risk_flags, ["high value", "new shipper"]);
        assert_eq!(a.metadata.consignee_name.as_deref(), Some("Maria Rossi"));
        assert_eq!(a.metadata.purpose, "imported");
        assert_eq!(a.provenance.source, Source::Staged);
        assert!(a.provenance.redistributable);
        assert_eq!(a.views.len(), 1);
        assert_eq!(a.views[0].channels.len(), 2);
        assert_eq!(
            lib.read_image(&a.views[0].channels[0].image).unwrap(),
            images[0]
        );
        assert_eq!(
            lib.read_image(&a.views[0].channels[1].image).unwrap(),
            images[1]
        );
        let b = lib.get("lab-2").unwrap();
        assert_eq!(b.provenance.source, Source::Real);
        assert!(!b.provenance.redistributable);
        assert_eq!(b.views[0].channels[0].energy, Energy::High);
        assert_eq!(
            lib.read_image(&b.views[0].channels[0].image).unwrap(),
            images[2]
        );
        let line = &lib.annotations()[0];
        assert_eq!((line.annotator.as_str(), line.view), ("analyst-1", 0));
        assert_eq!(line.objects.len(), 2);
        assert_eq!(
            line.objects[1].bbox,
            BoxPx::new(20.5, 3.0, 40.0, 29.5).unwrap()
        );
        assert_eq!(line.seconds, Some(35.0));
        let again = import_folder(&mut lib, &root).unwrap();
        assert_eq!((again.scans_added, again.annotations_added), (0, 0));
        assert_eq!((again.scans_present, again.annotations_present), (2, 1));
        // No staging folder is left in the library.
        assert!(fs::read_dir(lib.root()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".staging")));
    }

    /// Spoils the folder with `damage`; the import is refused naming `file`, `line` and
    /// `field`, and nothing is written.
    fn refused(
        damage: impl FnOnce(&Path),
        file: &str,
        line: Option<usize>,
        field: &str,
        says: &str,
    ) {
        let (dir, root, _) = folder();
        damage(&root);
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let e = import_folder(&mut lib, &root).unwrap_err();
        assert!(e.file.ends_with(file), "{e}");
        assert_eq!(e.line, line, "{e}");
        assert_eq!(e.field.as_deref(), Some(field), "{e}");
        assert!(e.reason.contains(says), "{e}");
        assert!(lib.records().is_empty() && lib.annotations().is_empty());
    }

    #[test]
    fn renderings_are_taken_only_when_asked_and_marked_in_the_provenance() {
        let (dir, root, images) = folder();
        // lab-1's two 16-bit PNGs become one colour JPEG of its view; lab-2 stays a TIFF.
        let low = &images[0];
        let high = &images[1];
        let picture = crate::rendering::render(high, Some(low));
        let mut jpeg = Vec::new();
        jpeg_encoder::Encoder::new(&mut jpeg, 95)
            .encode(&picture.data, 40, 30, jpeg_encoder::ColorType::Rgb)
            .unwrap();
        fs::write(root.join("img/lab-1.jpg"), jpeg).unwrap();
        replace(
            &root,
            METADATA_FILE,
            "img/lab-1-low.png,top,low",
            "img/lab-1.jpg,top,",
        );
        let text = fs::read_to_string(root.join(METADATA_FILE)).unwrap();
        let without_high: String = text
            .lines()
            .filter(|l| !l.contains("lab-1-high"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(root.join(METADATA_FILE), without_high).unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let e = import_folder(&mut lib, &root).unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(2), Some("file")), "{e}");
        assert!(e.reason.contains("--renderings"), "{e}");
        let renderings = ImportOptions { renderings: true };
        import_folder_with(&mut lib, &root, renderings).unwrap();
        let one = lib.get("lab-1").unwrap();
        let record = one.provenance.rendering.as_ref().unwrap();
        assert_eq!((record.format.as_str(), record.colour), ("jpeg", true));
        assert_eq!(
            one.views[0].channels.len(),
            2,
            "both energies from one picture"
        );
        assert!(lib.get("lab-2").unwrap().provenance.rendering.is_none());
        // A colour picture with an energy, and a scan mixing a picture and 16-bit images.
        let (dir, root, _) = folder();
        let picture = crate::rendering::render(&images[1], Some(&images[0]))
            .to_png()
            .unwrap();
        fs::write(root.join("img/lab-1.png"), picture).unwrap();
        replace(&root, METADATA_FILE, "img/lab-1-low.png", "img/lab-1.png");
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let e = import_folder_with(&mut lib, &root, renderings).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(2), Some("energy")),
            "{e}"
        );
        assert!(e.reason.contains("leave it empty"), "{e}");
        replace(
            &root,
            METADATA_FILE,
            "img/lab-1.png,top,low",
            "img/lab-1.png,top,",
        );
        let e = import_folder_with(&mut lib, &root, renderings).unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(3), Some("file")), "{e}");
        assert!(e.reason.contains("one or the other"), "{e}");
        assert!(lib.records().is_empty());
    }

    fn replace(root: &Path, file: &str, from: &str, to: &str) {
        let text = fs::read_to_string(root.join(file)).unwrap();
        assert!(text.contains(from), "{from}");
        fs::write(root.join(file), text.replacen(from, to, 1)).unwrap();
    }

    /// A PNG of `width` × `height`, 16-bit grayscale, whose header is valid and whose data is
    /// not there: what a 20,000-pixel image looks like to a reader that checks the size first.
    fn png_header_only(width: u32, height: u32) -> Vec<u8> {
        use crate::image::tests::crc32 as crc;
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&width.to_be_bytes());
        ihdr.extend_from_slice(&height.to_be_bytes());
        ihdr.extend_from_slice(&[16, 0, 0, 0, 0]);
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend_from_slice(&13u32.to_be_bytes());
        out.extend_from_slice(&ihdr);
        out.extend_from_slice(&crc(&ihdr).to_be_bytes());
        out
    }

    #[test]
    fn bad_images_are_refused_naming_the_row_and_the_file() {
        refused(
            |r| {
                let p = r.join("img/lab-1-high.png");
                let bytes = fs::read(&p).unwrap();
                fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
            },
            METADATA_FILE,
            Some(3),
            "file",
            "lab-1-high.png",
        );
        refused(
            |r| {
                let eight = Mask8 {
                    width: 40,
                    height: 30,
                    data: vec![200; 1200],
                };
                fs::write(r.join("img/lab-1-low.png"), eight.to_png().unwrap()).unwrap();
            },
            METADATA_FILE,
            Some(2),
            "file",
            "8-bit",
        );
        refused(
            |r| {
                // an 8-bit RGB rendering passed as the raw image
                let mut bytes = Vec::new();
                let mut enc = png::Encoder::new(&mut bytes, 4, 4);
                enc.set_color(png::ColorType::Rgb);
                enc.set_depth(png::BitDepth::Eight);
                enc.write_header()
                    .unwrap()
                    .write_image_data(&[90; 48])
                    .unwrap();
                fs::write(r.join("img/lab-1-low.png"), bytes).unwrap();
            },
            METADATA_FILE,
            Some(2),
            "file",
            "pseudo-colour",
        );
        refused(
            |r| fs::write(r.join("img/lab-2.tif"), png_header_only(20_000, 20_000)).unwrap(),
            METADATA_FILE,
            Some(4),
            "file",
            "TIFF",
        );
        refused(
            |r| fs::write(r.join("img/lab-1-low.png"), png_header_only(20_000, 20_000)).unwrap(),
            METADATA_FILE,
            Some(2),
            "file",
            "20000 × 20000",
        );
        refused(
            |r| replace(r, METADATA_FILE, "img/lab-2.tif", "img/lab-2.jpg"),
            METADATA_FILE,
            Some(4),
            "file",
            "JPEG",
        );
    }

    /// A 16-bit WhiteIsZero TIFF (dense bright): the decoder inverts it, and it must not be
    /// inverted twice.
    struct WhiteIsZero16;

    impl tiff::encoder::colortype::ColorType for WhiteIsZero16 {
        type Inner = u16;
        const TIFF_VALUE: tiff::tags::PhotometricInterpretation =
            tiff::tags::PhotometricInterpretation::WhiteIsZero;
        const BITS_PER_SAMPLE: &'static [u16] = &[16];
        const SAMPLE_FORMAT: &'static [tiff::tags::SampleFormat] =
            &[tiff::tags::SampleFormat::Uint];
        fn horizontal_predict(row: &[u16], result: &mut Vec<u16>) {
            result.extend_from_slice(row);
        }
    }

    #[test]
    fn a_white_is_zero_tiff_comes_out_air_bright() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.tif");
        let air_bright = gradient(16, 8, 5);
        let stored: Vec<u16> = air_bright.data.iter().map(|v| u16::MAX - v).collect();
        let file = fs::File::create(&path).unwrap();
        tiff::encoder::TiffEncoder::new(file)
            .unwrap()
            .write_image::<WhiteIsZero16>(16, 8, &stored)
            .unwrap();
        assert_eq!(read_image(&path).unwrap(), air_bright);
    }

    #[test]
    fn lines_are_the_files_lines_with_crlf_and_blank_lines() {
        let (dir, root, _) = folder();
        let text = fs::read_to_string(root.join(BOXES_FILE)).unwrap();
        // CRLF line ends and a blank line before the second box, which is outside its image.
        let text = text
            .replace("20.5,3,40,29.5", "20.5,3,41,29.5")
            .replace('\n', "\r\n")
            .replacen("\r\nlab-1,,", "\r\n\r\nlab-1,,", 1);
        fs::write(root.join(BOXES_FILE), text).unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let e = import_folder(&mut lib, &root).unwrap_err();
        assert_eq!((e.line, e.field.as_deref()), (Some(4), Some("x1")), "{e}");
    }

    #[test]
    fn a_scan_the_library_holds_with_other_content_is_refused_by_its_row() {
        let (dir, root, _) = folder();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        import_folder(&mut lib, &root).unwrap();
        replace(&root, METADATA_FILE, "Scanner Y", "Scanner Z");
        let e = import_folder(&mut lib, &root).unwrap_err();
        assert!(e.file.ends_with(METADATA_FILE), "{e}");
        assert_eq!(
            (e.line, e.field.as_deref()),
            (Some(4), Some("scan_id")),
            "{e}"
        );
        assert!(e.reason.contains("other content"), "{e}");
    }

    #[test]
    fn bad_rows_and_boxes_are_refused_naming_file_line_and_field() {
        refused(
            |r| {
                replace(
                    r,
                    BOXES_FILE,
                    "lab-1,top,analyst-1,knife",
                    "ghost,top,analyst-1,knife",
                )
            },
            BOXES_FILE,
            Some(2),
            "scan_id",
            "not in metadata.csv",
        );
        refused(
            |r| replace(r, BOXES_FILE, "20.5,3,40,29.5", "20.5,3,41,29.5"),
            BOXES_FILE,
            Some(3),
            "x1",
            "outside the 40 × 30 image",
        );
        refused(
            |r| replace(r, BOXES_FILE, "20.5,3,40,29.5", "20.5,3,40,3"),
            BOXES_FILE,
            Some(3),
            "y1",
            "empty",
        );
        refused(
            |r| replace(r, METADATA_FILE, ",1.5,container", ",1.5,boat"),
            METADATA_FILE,
            Some(2),
            "cargo_type",
            "parcel, bag or container",
        );
        refused(
            |r| replace(r, METADATA_FILE, ",1.5,container", ",inf,container"),
            METADATA_FILE,
            Some(2),
            "mm_per_pixel",
            "not a finite number",
        );
        refused(
            |r| {
                replace(
                    r,
                    BOXES_FILE,
                    "lab-1,top,analyst-1,knife",
                    "lab-1,side,analyst-1,knife",
                )
            },
            BOXES_FILE,
            Some(2),
            "view",
            "no view 'side'",
        );
        refused(
            |r| {
                replace(
                    r,
                    METADATA_FILE,
                    "high,,,,,",
                    "high,2026-03-05T10:15:00,,,,",
                )
            },
            METADATA_FILE,
            Some(3),
            "scanned_at",
            "differs",
        );
        refused(
            |r| replace(r, METADATA_FILE, "real,internal,false", "real,,false"),
            METADATA_FILE,
            Some(4),
            "licence",
            "missing",
        );
        refused(
            |r| replace(r, METADATA_FILE, "MSCU6639870", "MSCU6639871"),
            METADATA_FILE,
            Some(2),
            "metadata.container_id",
            "check digit",
        );
        refused(
            |r| replace(r, METADATA_FILE, ",1.5,", ",wide,"),
            METADATA_FILE,
            Some(2),
            "mm_per_pixel",
            "",
        );
        refused(
            |r| replace(r, METADATA_FILE, "top,high", "top,low"),
            METADATA_FILE,
            Some(3),
            "energy",
            "already",
        );
    }
}
