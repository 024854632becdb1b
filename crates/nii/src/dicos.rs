//! DICOS-structured export and import, and a plain DICOM secondary-capture export, through
//! dicom-rs.
//!
//! A DICOS export is a folder with one sub-folder per scan:
//! - `<scan>/v<view>-<energy>.dcm`: one *DICOS Digital X-Ray Image Storage — For Processing*
//!   object per view and energy, the 16-bit transmission as stored (MONOCHROME2, 16 bits, air
//!   bright), with the scan's metadata in standard attributes where the dictionary has a home
//!   for them (acquisition date and time, scanner model, imager pixel spacing, the object of
//!   inspection's id and type, carrier, route start and end, scanning location);
//! - `<scan>/v<view>-tdr-<n>-<type>.dcm`: one *DICOS Threat Detection Report* per source and
//!   view: each annotator and reviewer (TDR type OPERATOR, named in Operators' Name), the model
//!   (MACHINE, named in Threat Detection Algorithm and Version), the consensus and, for
//!   generated or projected scans, the true objects (GROUND TRUTH). Each object is a Threat
//!   Sequence item: the class in Threat Category Description, a DICOS category in Threat
//!   Category, the score in ATD Assessment Probability, the box as Threat ROI Base and Extents
//!   (x, y, 0 and width, height, 0 in pixels) and as a four-corner Bounding Polygon, with a
//!   reference to the view's image objects.
//!
//! What has no home in the standard dictionary rides in a private block (group 0071, creator
//! `borderlens`): the scan's full catalogue record as JSON (every metadata field, provenance,
//! licence, true objects, anonymisation log), the object mask as PNG, and each report's source
//! and role. An importer reads boxes, labels, scores, source names and pixels from the standard
//! attributes, the rest from the private block.
//!
//! It is *DICOS-structured*, not conformant: the modules DICOS requires that borderlens has
//! nothing to fill (detector geometry, OOI owner, itinerary) are left out.
//!
//! Both directions go through a scan package ([`crate::package`]): the export writes one with
//! [`export_package`] (so the same refusals — licence, privacy — and the same anonymisation
//! apply) and turns it into DICOM objects; the import turns the objects back into a package and
//! imports it with [`import_package`](crate::package::import_package) (so the same checks apply, nothing is written unless all
//! of it passes, and importing twice changes nothing). The staging package is removed after.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Length, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject, OpenFileOptions};
use serde::{Deserialize, Serialize};

use crate::coco::{objects_of, CocoSource};
use crate::consensus::AnnotatedObject;
use crate::geometry::BoxPx;
use crate::image::{Image16, Mask8, MAX_PIXELS, MAX_SIDE};
use crate::library::{sha256_hex, sync_dir, write_durable, Library, LibraryError};
use crate::package::{
    export_package, fail, import_staged, read_json, refuse_non_empty, undo_export, write_staged,
    ExportOptions, ImportSummary, Manifest, PackageAnnotations, Refusal, ScanAnnotations,
    SourceObjects, StagedImages, ANNOTATIONS_FORMAT, MANIFEST_FILE, PACKAGE_ANNOTATIONS_FILE,
    PACKAGE_VERSION,
};
use crate::scan::{CargoType, Energy, ScanRecord};

/// The private group of the borderlens block.
pub const PRIVATE_GROUP: u16 = 0x0071;
/// The private creator of the borderlens block.
pub const PRIVATE_CREATOR: &str = "borderlens";
/// Private element (within the block): the scan's catalogue record, JSON (UT).
const PRIVATE_RECORD: u8 = 0x00;
/// Private element: the object mask, 8-bit PNG (OB), in the scan's first image object.
const PRIVATE_MASK: u8 = 0x01;
/// Private element: a report's source, JSON (UT): [`ReportSource`].
const PRIVATE_SOURCE: u8 = 0x02;
/// Largest DICOM file read, bytes (a 16,384 × 16,384 16-bit image and its attributes).
pub const MAX_FILE_BYTES: u64 = 2 * (MAX_SIDE as u64) * (MAX_SIDE as u64) + (64 << 20);
/// Transfer syntaxes whose pixel data is read (native, uncompressed).
const NATIVE: [&str; 2] = [
    uids::EXPLICIT_VR_LITTLE_ENDIAN,
    uids::IMPLICIT_VR_LITTLE_ENDIAN,
];
/// SOP classes read as X-ray images.
const IMAGE_CLASSES: [&str; 5] = [
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
    uids::DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PRESENTATION,
    uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
];
/// Implementation class UID of borderlens' files (a UUID-derived `2.25` UID, fixed).
const IMPLEMENTATION_UID: &str = "2.25.262186432935227101460622993546016413431";

/// The role of a threat detection report's source, in the private block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportRole {
    /// an annotator (TDR type OPERATOR)
    Annotator,
    /// a reviewer's decisions (OPERATOR)
    Reviewer,
    /// a model's proposals (MACHINE)
    Machine,
    /// the consensus of the annotators (GROUND TRUTH; informative, an importer computes its own)
    Consensus,
    /// the true objects of a generated or projected scan (GROUND TRUTH; the record carries them)
    Truth,
}

impl ReportRole {
    /// The DICOS TDR type of this role.
    pub fn tdr_type(self) -> &'static str {
        match self {
            ReportRole::Annotator | ReportRole::Reviewer => "OPERATOR",
            ReportRole::Machine => "MACHINE",
            ReportRole::Consensus | ReportRole::Truth => "GROUND TRUTH",
        }
    }
}

/// A report's source, as the private block carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSource {
    /// who
    pub role: ReportRole,
    /// the view the report is about
    pub view: usize,
    /// seconds the annotation took, when known
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// the report's objects at full precision (the standard attributes are FL, 32-bit): an
    /// importer takes these where the standard values agree with them to 32-bit precision
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<AnnotatedObject>,
}

/// What a DICOS or DICOM export wrote.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DicomExportSummary {
    /// the folder (`None` when no scan could be exported and nothing was written)
    pub folder: Option<PathBuf>,
    /// scans written
    pub scans: usize,
    /// image objects written (one per view and energy; one per view for secondary capture)
    pub images: usize,
    /// threat detection reports written
    pub reports: usize,
    /// bytes of all files written
    pub bytes: u64,
    /// scans anonymised on the way out
    pub anonymised: usize,
    /// scans left out, each with its reason
    pub refused: Vec<Refusal>,
}

/// The DICOS category of a borderlens class (our reading of the DICOS defined terms; the class
/// itself is in Threat Category Description).
pub fn threat_category(label: &str) -> &'static str {
    match label {
        "ied" => "EXPLOSIVE",
        "gun" | "knife" | "blade" | "scissors" | "ammunition" => "PROHIBITED_ITEM",
        "drug_bricks" | "cigarette_cartons" => "CONTRABAND",
        _ => "ANOMALY",
    }
}

/// A `2.25` UID (a UUID as a decimal integer, PS3.5 B.2) derived from `parts`: the same parts,
/// the same UID, so an export is reproducible and two exports of the same image agree.
pub fn derived_uid(parts: &[&str]) -> String {
    let mut text = String::from("borderlens-uid");
    for p in parts {
        text.push('\u{1f}');
        text.push_str(p);
    }
    let digest = sha256_hex(text.as_bytes());
    let n = u128::from_str_radix(&digest[..32], 16).unwrap_or(1) >> 1;
    format!("2.25.{}", n.max(1))
}

fn element(tag: Tag, vr: VR, value: PrimitiveValue) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, vr, value)
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, text: &str) {
    obj.put(element(tag, vr, PrimitiveValue::from(text)));
}

fn put_strs(obj: &mut InMemDicomObject, tag: Tag, vr: VR, texts: &[String]) {
    obj.put(element(
        tag,
        vr,
        PrimitiveValue::Strs(texts.iter().cloned().collect()),
    ));
}

fn put_u16(obj: &mut InMemDicomObject, tag: Tag, value: u16) {
    obj.put(element(tag, VR::US, PrimitiveValue::from(value)));
}

fn put_f32s(obj: &mut InMemDicomObject, tag: Tag, values: &[f32]) {
    obj.put(element(
        tag,
        VR::FL,
        PrimitiveValue::F32(values.iter().copied().collect()),
    ));
}

/// `text` cut to `max` characters, backslashes (the DICOM value separator) made slashes.
fn limited(text: &str, max: usize) -> String {
    text.chars()
        .map(|c| if c == '\\' { '/' } else { c })
        .take(max)
        .collect()
}

/// A decimal string (DS) of at most 16 characters.
fn decimal(v: f64) -> String {
    let plain = format!("{v}");
    if plain.len() <= 16 {
        return plain;
    }
    (0..=14)
        .rev()
        .map(|p| format!("{v:.p$}"))
        .find(|t| t.len() <= 16)
        .unwrap_or_else(|| format!("{v:.6e}"))
}

/// Puts a short string (SH: 16 characters) only when it fits; the full value is in the record.
fn put_short(obj: &mut InMemDicomObject, tag: Tag, text: Option<&str>) {
    if let Some(t) = text.filter(|t| !t.is_empty() && t.chars().count() <= 16 && !t.contains('\\'))
    {
        put_str(obj, tag, VR::SH, t);
    }
}

/// Puts a private element in the borderlens block: the creator at (0071,0010), the elements
/// at (0071,10xx). (dicom-rs' `put_private_element` reserves (0071,0001), outside the creator
/// range 0010–00FF that PS3.5 7.8.1 allows and pydicom reads, so it is done by hand.)
fn put_private(obj: &mut InMemDicomObject, el: u8, vr: VR, value: PrimitiveValue) {
    if obj.get(Tag(PRIVATE_GROUP, 0x0010)).is_none() {
        put_str(obj, Tag(PRIVATE_GROUP, 0x0010), VR::LO, PRIVATE_CREATOR);
    }
    obj.put(element(
        Tag(PRIVATE_GROUP, 0x1000 | u16::from(el)),
        vr,
        value,
    ));
}

/// `YYYYMMDD`, `HHMMSS` and `YYYYMMDDHHMMSS` of a time as the library writes it: a scan's
/// `YYYY-MM-DDTHH:MM:SS` (the scanner's local time, as DICOS dates are), or an RFC 3339 UTC
/// time (the export's).
fn dicom_date_time(text: &str) -> Option<(String, String, String)> {
    let t = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc).naive_utc())
        })?;
    Some((
        t.format("%Y%m%d").to_string(),
        t.format("%H%M%S").to_string(),
        t.format("%Y%m%d%H%M%S").to_string(),
    ))
}

fn ooi_type(cargo: CargoType) -> &'static str {
    match cargo {
        CargoType::Bag => "BAGGAGE",
        CargoType::Parcel => "BOX",
        CargoType::Container => "CARGO",
    }
}

/// The attributes every object of a scan carries: patient/OOI, study, equipment.
fn common(obj: &mut InMemDicomObject, record: &ScanRecord, study_uid: &str, created: &str) {
    let m = &record.metadata;
    put_str(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(obj, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
    if m.scan_id.len() <= 16 {
        put_str(obj, tags::STUDY_ID, VR::SH, &m.scan_id);
    }
    put_str(
        obj,
        tags::STUDY_DESCRIPTION,
        VR::LO,
        &limited(&format!("scan {}", m.scan_id), 64),
    );
    if let Some((date, time, _)) = dicom_date_time(&m.scanned_at) {
        put_str(obj, tags::STUDY_DATE, VR::DA, &date);
        put_str(obj, tags::STUDY_TIME, VR::TM, &time);
    }
    if let Some((date, time, _)) = dicom_date_time(created) {
        put_str(obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
        put_str(obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    }
    // DICOS: the "patient" is the object of inspection (the bag, parcel or container).
    let ooi_id = m
        .container_id
        .as_deref()
        .or(m.package_id.as_deref())
        .unwrap_or(&m.scan_id);
    // Type 2: present, empty when the id does not fit (a cut id would name another object).
    let ooi_id = if ooi_id.chars().count() <= 64 && !ooi_id.contains('\\') {
        ooi_id
    } else {
        ""
    };
    put_str(obj, tags::PATIENT_ID, VR::LO, ooi_id);
    put_str(obj, tags::PATIENT_NAME, VR::PN, "");
    put_str(obj, tags::OOI_TYPE, VR::CS, ooi_type(m.cargo_type));
    put_str(obj, tags::OOI_TYPE_DESCRIPTOR, VR::LT, m.cargo_type.word());
    put_short(obj, tags::CARRIER_ID, m.carrier.as_deref());
    put_short(
        obj,
        tags::ROUTE_SEGMENT_START_LOCATION_ID,
        m.origin.as_deref(),
    );
    put_short(
        obj,
        tags::ROUTE_SEGMENT_END_LOCATION_ID,
        m.destination.as_deref(),
    );
    put_str(obj, tags::MANUFACTURER, VR::LO, "");
    put_str(
        obj,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        &limited(&m.scanner_model, 64),
    );
    if let Some(location) = m.location.as_deref() {
        put_str(obj, tags::INSTITUTION_NAME, VR::LO, &limited(location, 64));
    }
    put_str(
        obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        concat!("borderlens ", env!("CARGO_PKG_VERSION")),
    );
}

fn file_bytes(
    obj: InMemDicomObject,
    sop_class: &str,
    sop_instance: &str,
    path: &Path,
) -> Result<Vec<u8>, LibraryError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(sop_class)
        .media_storage_sop_instance_uid(sop_instance)
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .implementation_class_uid(IMPLEMENTATION_UID)
        .implementation_version_name("BORDERLENS")
        .build()
        .map_err(|e| fail(path, None, format!("file meta: {e}")))?;
    let file = obj.with_exact_meta(meta);
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| fail(path, None, format!("cannot encode: {e}")))?;
    Ok(bytes)
}

/// One image object: a view's energy channel.
#[allow(clippy::too_many_arguments)]
fn image_object(
    record: &ScanRecord,
    view: usize,
    energy: Energy,
    image: &Image16,
    sop_class: &str,
    uids_of: (&str, &str, &str),
    instance_number: usize,
    created: &str,
) -> InMemDicomObject {
    let (study_uid, series_uid, sop_uid) = uids_of;
    let mut obj = InMemDicomObject::new_empty();
    common(&mut obj, record, study_uid, created);
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put_str(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        &(view + 1).to_string(),
    );
    put_str(
        &mut obj,
        tags::INSTANCE_NUMBER,
        VR::IS,
        &instance_number.to_string(),
    );
    let name = &record.views[view].name;
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &limited(&format!("view {view} {name} {} energy", energy.word()), 64),
    );
    put_strs(
        &mut obj,
        tags::IMAGE_TYPE,
        VR::CS,
        &[
            // Pixels approximated from a rendering are derived, not what the scanner measured.
            if record.provenance.rendering.is_some() {
                "DERIVED".into()
            } else {
                "ORIGINAL".into()
            },
            "PRIMARY".into(),
            energy.word().to_uppercase(),
        ],
    );
    if let Some(r) = &record.provenance.rendering {
        put_str(
            &mut obj,
            tags::DERIVATION_DESCRIPTION,
            VR::ST,
            &format!(
                "approximated from an 8-bit {} rendering ({})",
                r.format, r.method
            ),
        );
        if r.format == "jpeg" {
            put_str(&mut obj, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "01");
        }
    }
    if let Some((date, time, dt)) = dicom_date_time(&record.metadata.scanned_at) {
        put_str(&mut obj, tags::ACQUISITION_DATE_TIME, VR::DT, &dt);
        put_str(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
        put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    }
    if sop_class == uids::SECONDARY_CAPTURE_IMAGE_STORAGE {
        put_str(&mut obj, tags::MODALITY, VR::CS, "OT");
        put_str(&mut obj, tags::CONVERSION_TYPE, VR::CS, "WSD");
    } else {
        put_str(&mut obj, tags::MODALITY, VR::CS, "DX");
        put_str(
            &mut obj,
            tags::PRESENTATION_INTENT_TYPE,
            VR::CS,
            "FOR PROCESSING",
        );
    }
    let spacing = decimal(record.metadata.mm_per_pixel);
    put_strs(
        &mut obj,
        tags::IMAGER_PIXEL_SPACING,
        VR::DS,
        &[spacing.clone(), spacing.clone()],
    );
    put_strs(
        &mut obj,
        tags::PIXEL_SPACING,
        VR::DS,
        &[spacing.clone(), spacing],
    );
    put_u16(&mut obj, tags::SAMPLES_PER_PIXEL, 1);
    put_str(
        &mut obj,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    put_u16(&mut obj, tags::ROWS, image.height as u16);
    put_u16(&mut obj, tags::COLUMNS, image.width as u16);
    put_u16(&mut obj, tags::BITS_ALLOCATED, 16);
    put_u16(&mut obj, tags::BITS_STORED, 16);
    put_u16(&mut obj, tags::HIGH_BIT, 15);
    put_u16(&mut obj, tags::PIXEL_REPRESENTATION, 0);
    put_str(&mut obj, tags::WINDOW_CENTER, VR::DS, "32768");
    put_str(&mut obj, tags::WINDOW_WIDTH, VR::DS, "65536");
    obj.put(element(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::U16(image.data.iter().copied().collect()),
    ));
    obj
}

fn object_item(k: usize, object: &AnnotatedObject, refs: &[InMemDicomObject]) -> InMemDicomObject {
    let b = object.bbox;
    let mut item = InMemDicomObject::new_empty();
    put_u16(&mut item, tags::POTENTIAL_THREAT_OBJECT_ID, k as u16);
    put_str(
        &mut item,
        tags::THREAT_CATEGORY,
        VR::CS,
        threat_category(&object.label),
    );
    put_str(
        &mut item,
        tags::THREAT_CATEGORY_DESCRIPTION,
        VR::LT,
        &object.label,
    );
    put_str(&mut item, tags::ATD_ASSESSMENT_FLAG, VR::CS, "THREAT");
    put_f32s(
        &mut item,
        tags::ATD_ASSESSMENT_PROBABILITY,
        &[object.score as f32],
    );
    let mut region = InMemDicomObject::new_empty();
    put_f32s(
        &mut region,
        tags::THREAT_ROI_BASE,
        &[b.x0 as f32, b.y0 as f32, 0.0],
    );
    put_f32s(
        &mut region,
        tags::THREAT_ROI_EXTENTS,
        &[(b.x1 - b.x0) as f32, (b.y1 - b.y0) as f32, 0.0],
    );
    put_f32s(
        &mut region,
        tags::BOUNDING_POLYGON,
        &[
            b.x0 as f32,
            b.y0 as f32,
            b.x1 as f32,
            b.y0 as f32,
            b.x1 as f32,
            b.y1 as f32,
            b.x0 as f32,
            b.y1 as f32,
        ],
    );
    region.put(element_seq(
        tags::REFERENCED_INSTANCE_SEQUENCE,
        refs.to_vec(),
    ));
    item.put(element_seq(tags::PTO_REPRESENTATION_SEQUENCE, vec![region]));
    item
}

fn element_seq(tag: Tag, items: Vec<InMemDicomObject>) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::new(items, Length::UNDEFINED))
}

fn reference(sop_class: &str, sop_uid: &str) -> InMemDicomObject {
    let mut r = InMemDicomObject::new_empty();
    put_str(&mut r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, sop_class);
    put_str(&mut r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop_uid);
    r
}

/// One threat detection report.
#[allow(clippy::too_many_arguments)]
fn report_object(
    record: &ScanRecord,
    source: &ReportSource,
    name: &str,
    objects: &[AnnotatedObject],
    refs: &[InMemDicomObject],
    uids_of: (&str, &str, &str),
    instance_number: usize,
    created: &str,
) -> InMemDicomObject {
    let (study_uid, series_uid, sop_uid) = uids_of;
    let mut obj = InMemDicomObject::new_empty();
    common(&mut obj, record, study_uid, created);
    put_str(
        &mut obj,
        tags::SOP_CLASS_UID,
        VR::UI,
        uids::DICOS_THREAT_DETECTION_REPORT_STORAGE,
    );
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, sop_uid);
    put_str(&mut obj, tags::SERIES_INSTANCE_UID, VR::UI, series_uid);
    put_str(&mut obj, tags::MODALITY, VR::CS, "TDR");
    put_str(
        &mut obj,
        tags::INSTANCE_NUMBER,
        VR::IS,
        &instance_number.to_string(),
    );
    put_str(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        &format!("view {} {}", source.view, serde_word(source.role)),
    );
    put_str(&mut obj, tags::TDR_TYPE, VR::CS, source.role.tdr_type());
    match source.role {
        ReportRole::Annotator | ReportRole::Reviewer => {
            put_str(&mut obj, tags::OPERATORS_NAME, VR::PN, &limited(name, 64));
        }
        _ => {
            put_str(
                &mut obj,
                tags::THREAT_DETECTION_ALGORITHM_AND_VERSION,
                VR::LO,
                &limited(name, 64),
            );
        }
    }
    if let Some((_, _, dt)) = dicom_date_time(created) {
        put_str(&mut obj, tags::ALARM_DECISION_TIME, VR::DT, &dt);
    }
    put_str(
        &mut obj,
        tags::ALARM_DECISION,
        VR::CS,
        if objects.is_empty() { "CLEAR" } else { "ALARM" },
    );
    let n = objects.len().min(usize::from(u16::MAX)) as u16;
    put_u16(&mut obj, tags::NUMBER_OF_TOTAL_OBJECTS, n);
    put_u16(&mut obj, tags::NUMBER_OF_ALARM_OBJECTS, n);
    obj.put(element_seq(
        tags::REFERENCED_INSTANCE_SEQUENCE,
        refs.to_vec(),
    ));
    let items = objects
        .iter()
        .enumerate()
        .map(|(k, o)| object_item(k, o, refs))
        .collect();
    obj.put(element_seq(tags::THREAT_SEQUENCE, items));
    let exact = ReportSource {
        objects: objects.to_vec(),
        ..source.clone()
    };
    let json = serde_json::to_string(&exact).unwrap_or_default();
    put_private(&mut obj, PRIVATE_SOURCE, VR::UT, PrimitiveValue::from(json));
    obj
}

fn serde_word(role: ReportRole) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Writes `bytes` to `dir/name` durably and counts it.
fn write_file(dir: &Path, name: &str, bytes: &[u8], total: &mut u64) -> Result<(), LibraryError> {
    write_durable(&dir.join(name), bytes)?;
    *total += bytes.len() as u64;
    Ok(())
}

fn remove_staging(dir: &Path) {
    let _ = fs::remove_dir_all(dir);
}

/// Which objects a conversion of a package writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// DICOS image objects per view and energy, and threat detection reports
    Dicos,
    /// one secondary-capture image per view (the high-energy channel, or the only one)
    SecondaryCapture,
}

/// Exports scans of a library as DICOS-structured objects into `out`, a new or empty folder.
/// The same scans as [`export_package`] with the same `options` are written (the same
/// refusals and anonymisation); set [`ExportOptions::include_machine`] for the model's
/// reports. Nothing is written when no scan is left.
pub fn export_dicos(
    library: &Library,
    options: &ExportOptions,
    out: &Path,
) -> Result<DicomExportSummary, LibraryError> {
    export_via_package(library, options, out, Flavour::Dicos)
}

/// Exports one plain DICOM *Secondary Capture Image* per view (the high-energy channel, or the
/// only one; 16-bit MONOCHROME2, air bright, a full-range window) that ordinary DICOM viewers
/// open, with the same refusals and anonymisation as [`export_package`]. No reports: the boxes
/// travel in the DICOS export.
pub fn export_secondary_capture(
    library: &Library,
    options: &ExportOptions,
    out: &Path,
) -> Result<DicomExportSummary, LibraryError> {
    export_via_package(library, options, out, Flavour::SecondaryCapture)
}

fn export_via_package(
    library: &Library,
    options: &ExportOptions,
    out: &Path,
    flavour: Flavour,
) -> Result<DicomExportSummary, LibraryError> {
    let what = match flavour {
        Flavour::Dicos => "a DICOS export",
        Flavour::SecondaryCapture => "a DICOM export",
    };
    let created = !out.exists();
    refuse_non_empty(out, what)?;
    fs::create_dir_all(out).map_err(|e| fail(out, None, e.to_string()))?;
    let staging = out.join(".package-staging");
    let result = (|| {
        let package = export_package(library, options, &staging)?;
        let mut summary = DicomExportSummary {
            folder: None,
            scans: 0,
            images: 0,
            reports: 0,
            bytes: 0,
            anonymised: package.anonymised,
            refused: package.refused,
        };
        if package.package.is_some() {
            package_to_dicom(&staging, out, flavour, &mut summary)?;
            summary.folder = Some(out.to_path_buf());
        }
        Ok(summary)
    })();
    remove_staging(&staging);
    // Nothing exported, or an error midway: leave no partial export behind.
    if !matches!(&result, Ok(s) if s.folder.is_some()) {
        undo_export(out, created);
    }
    result
}

fn sop_class_of(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Dicos => uids::DICOS_DIGITAL_X_RAY_IMAGE_STORAGE_FOR_PROCESSING,
        Flavour::SecondaryCapture => uids::SECONDARY_CAPTURE_IMAGE_STORAGE,
    }
}

/// Turns the package in `package` into DICOM objects under `out`.
fn package_to_dicom(
    package: &Path,
    out: &Path,
    flavour: Flavour,
    summary: &mut DicomExportSummary,
) -> Result<(), LibraryError> {
    let manifest: Manifest = read_json(&package.join(MANIFEST_FILE))?;
    let annotations_path = package.join(PACKAGE_ANNOTATIONS_FILE);
    let annotations: PackageAnnotations = if annotations_path.exists() {
        read_json(&annotations_path)?
    } else {
        PackageAnnotations {
            format: ANNOTATIONS_FORMAT.to_string(),
            version: PACKAGE_VERSION,
            scans: Vec::new(),
        }
    };
    let mut by_view: BTreeMap<(&str, usize), &ScanAnnotations> = BTreeMap::new();
    for a in &annotations.scans {
        by_view.insert((a.scan_id.as_str(), a.view), a);
    }
    let created = manifest.created.clone();
    let read_png = |sha: &str| -> Result<Vec<u8>, LibraryError> {
        let path = package.join("images").join(format!("{sha}.png"));
        fs::read(&path).map_err(|e| fail(&path, None, e.to_string()))
    };
    for record in &manifest.scans {
        let id = &record.metadata.scan_id;
        let dir = out.join(id);
        fs::create_dir_all(&dir).map_err(|e| fail(&dir, None, e.to_string()))?;
        // UIDs from the content: the same export again gives the same UIDs; two scans with the
        // same id in two libraries (ids like `syn-7-000000` repeat) do not share one.
        let first_sha = record
            .views
            .iter()
            .flat_map(|v| &v.channels)
            .map(|c| c.image.sha256.as_str())
            .next()
            .unwrap_or_default();
        let study_uid = derived_uid(&["study", id, first_sha]);
        let mut mask_png = match (&record.mask, flavour) {
            (Some(mask), Flavour::Dicos) => Some(read_png(&mask.sha256)?),
            _ => None,
        };
        let record_json =
            serde_json::to_string(record).map_err(|e| fail(&dir, Some("record"), e.to_string()))?;
        for (v, view) in record.views.iter().enumerate() {
            let series_uid =
                derived_uid(&["series", sop_class_of(flavour), &study_uid, &v.to_string()]);
            let channels: Vec<_> = match flavour {
                Flavour::Dicos => view.channels.iter().collect(),
                Flavour::SecondaryCapture => view
                    .channels
                    .iter()
                    .find(|c| c.energy == Energy::High)
                    .or(view.channels.first())
                    .into_iter()
                    .collect(),
            };
            let sop_class = sop_class_of(flavour);
            let mut refs = Vec::new();
            for (c, channel) in channels.iter().enumerate() {
                let png = read_png(&channel.image.sha256)?;
                let image = Image16::from_png(&png).map_err(|e| {
                    fail(
                        &package.join("images"),
                        Some(&channel.image.sha256),
                        e.to_string(),
                    )
                })?;
                let sop_uid = derived_uid(&[
                    sop_class,
                    id,
                    &v.to_string(),
                    channel.energy.word(),
                    &channel.image.sha256,
                ]);
                let mut obj = image_object(
                    record,
                    v,
                    channel.energy,
                    &image,
                    sop_class,
                    (&study_uid, &series_uid, &sop_uid),
                    c + 1,
                    &created,
                );
                if flavour == Flavour::Dicos {
                    put_private(
                        &mut obj,
                        PRIVATE_RECORD,
                        VR::UT,
                        PrimitiveValue::from(record_json.clone()),
                    );
                    if let Some(mask) = mask_png.take() {
                        put_private(
                            &mut obj,
                            PRIVATE_MASK,
                            VR::OB,
                            PrimitiveValue::U8(mask.into()),
                        );
                    }
                }
                let name = match flavour {
                    Flavour::Dicos => format!("v{v}-{}.dcm", channel.energy.word()),
                    Flavour::SecondaryCapture => format!("v{v}.dcm"),
                };
                let bytes = file_bytes(obj, sop_class, &sop_uid, &dir.join(&name))?;
                write_file(&dir, &name, &bytes, &mut summary.bytes)?;
                summary.images += 1;
                refs.push(reference(sop_class, &sop_uid));
            }
            if flavour == Flavour::SecondaryCapture {
                continue;
            }
            // The reports of this view: each source, then the consensus, then the truth.
            let mut reports: Vec<(ReportSource, String, Vec<AnnotatedObject>)> = Vec::new();
            let source = |role, s: &SourceObjects| {
                (
                    ReportSource {
                        role,
                        view: v,
                        seconds: s.seconds,
                        objects: Vec::new(),
                    },
                    s.annotator.clone(),
                    s.objects.clone(),
                )
            };
            if let Some(a) = by_view.get(&(id.as_str(), v)) {
                reports.extend(
                    a.annotators
                        .iter()
                        .map(|s| source(ReportRole::Annotator, s)),
                );
                reports.extend(a.reviewers.iter().map(|s| source(ReportRole::Reviewer, s)));
                reports.extend(a.machines.iter().map(|s| source(ReportRole::Machine, s)));
                if let Some(c) = &a.consensus {
                    let objects = c
                        .objects
                        .iter()
                        .map(|o| AnnotatedObject {
                            label: o.label.clone(),
                            bbox: o.bbox,
                            score: o.score,
                        })
                        .collect();
                    reports.push((
                        ReportSource {
                            role: ReportRole::Consensus,
                            view: v,
                            seconds: None,
                            objects: Vec::new(),
                        },
                        "borderlens consensus".to_string(),
                        objects,
                    ));
                }
            }
            if record.provenance.knows_truth() {
                reports.push((
                    ReportSource {
                        role: ReportRole::Truth,
                        view: v,
                        seconds: None,
                        objects: Vec::new(),
                    },
                    format!("borderlens {}", record.provenance.share()),
                    objects_of(record, v, &CocoSource::Truth, None),
                ));
            }
            let tdr_series = derived_uid(&["tdr-series", &study_uid, &v.to_string()]);
            for (n, (src, name, objects)) in reports.iter().enumerate() {
                let content = serde_json::to_string(objects).unwrap_or_default();
                let sop_uid = derived_uid(&[
                    "tdr",
                    &study_uid,
                    &v.to_string(),
                    &n.to_string(),
                    name,
                    &content,
                ]);
                let obj = report_object(
                    record,
                    src,
                    name,
                    objects,
                    &refs,
                    (&study_uid, &tdr_series, &sop_uid),
                    n + 1,
                    &created,
                );
                let file = format!(
                    "v{v}-tdr-{:03}-{}.dcm",
                    n + 1,
                    src.role.tdr_type().to_lowercase().replace(' ', "-")
                );
                let bytes = file_bytes(
                    obj,
                    uids::DICOS_THREAT_DETECTION_REPORT_STORAGE,
                    &sop_uid,
                    &dir.join(&file),
                )?;
                write_file(&dir, &file, &bytes, &mut summary.bytes)?;
                summary.reports += 1;
            }
        }
        sync_dir(&dir)?;
        summary.scans += 1;
    }
    sync_dir(out)
}

// ---------------------------------------------------------------------------------------------
// Import

/// An image object read back; its pixels are already in the staging package, as PNG.
struct ImageRead {
    path: PathBuf,
    sop_uid: String,
    view: usize,
    energy: Energy,
    sha256: String,
    width: u32,
    height: u32,
    record_json: Option<String>,
    mask_png: Option<Vec<u8>>,
}

/// Every DICOM file under `dir` (sub-folders included, dot files skipped), sorted.
fn dicom_files(dir: &Path) -> Result<Vec<PathBuf>, LibraryError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let entries = fs::read_dir(&d).map_err(|e| fail(&d, None, format!("cannot read: {e}")))?;
        for entry in entries {
            let entry = entry.map_err(|e| fail(&d, None, e.to_string()))?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let kind = entry
                .file_type()
                .map_err(|e| fail(&path, None, e.to_string()))?;
            if kind.is_dir() {
                if depth < 8 {
                    stack.push((path, depth + 1));
                }
            } else if kind.is_file() && has_dicm_magic(&path) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_dicm_magic(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 132];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .map(|_| &head[128..] == b"DICM")
        .unwrap_or(false)
}

fn field_err(path: &Path, tag_name: &str, reason: impl Into<String>) -> LibraryError {
    fail(path, Some(tag_name), reason)
}

fn text_of(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    obj.get(tag)
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn u16_of(obj: &InMemDicomObject, tag: Tag, path: &Path, name: &str) -> Result<u16, LibraryError> {
    let e = obj
        .get(tag)
        .ok_or_else(|| field_err(path, name, "missing"))?;
    e.to_int::<u16>()
        .map_err(|err| field_err(path, name, format!("not a number: {err}")))
}

/// A private element of the borderlens block, wherever its creator sits (0010 to 00FF).
fn private_of(obj: &InMemDicomObject, el: u8) -> Option<&PrimitiveValue> {
    let slot = (0x10u16..=0xFF)
        .find(|&slot| text_of(obj, Tag(PRIVATE_GROUP, slot)).as_deref() == Some(PRIVATE_CREATOR))?;
    obj.get(Tag(PRIVATE_GROUP, (slot << 8) | u16::from(el)))
        .and_then(|e| e.value().primitive())
}

fn private_text(obj: &InMemDicomObject, el: u8) -> Option<String> {
    private_of(obj, el).map(|v| {
        String::from_utf8_lossy(&v.to_bytes())
            .trim_end_matches(['\0', ' '])
            .to_string()
    })
}

/// The 16-bit pixels of an image object, checked: one sample, 16 bits allocated, unsigned,
/// MONOCHROME2 (or MONOCHROME1, inverted to air bright), the size within the library's limits.
fn pixels_of(obj: &InMemDicomObject, path: &Path) -> Result<Image16, LibraryError> {
    let samples = u16_of(obj, tags::SAMPLES_PER_PIXEL, path, "SamplesPerPixel")?;
    if samples != 1 {
        return Err(field_err(
            path,
            "SamplesPerPixel",
            format!("{samples} samples per pixel: colour (pseudo-colour) images are not transmission; import the raw 16-bit channels"),
        ));
    }
    let bits = u16_of(obj, tags::BITS_ALLOCATED, path, "BitsAllocated")?;
    if bits != 16 {
        return Err(field_err(
            path,
            "BitsAllocated",
            format!("{bits} bits per sample; the library stores 16-bit transmission"),
        ));
    }
    let stored = u16_of(obj, tags::BITS_STORED, path, "BitsStored")?;
    if !(8..=16).contains(&stored) {
        return Err(field_err(
            path,
            "BitsStored",
            format!("{stored} bits stored, not 8 to 16"),
        ));
    }
    if let Some(high) = obj.get(tags::HIGH_BIT).and_then(|e| e.to_int::<u16>().ok()) {
        if high + 1 != stored {
            return Err(field_err(
                path,
                "HighBit",
                format!("{high} with {stored} bits stored; only HighBit = BitsStored − 1 is read"),
            ));
        }
    }
    if u16_of(obj, tags::PIXEL_REPRESENTATION, path, "PixelRepresentation")? != 0 {
        return Err(field_err(
            path,
            "PixelRepresentation",
            "signed samples; transmission is unsigned",
        ));
    }
    let photometric = text_of(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_default();
    let invert = match photometric.as_str() {
        "MONOCHROME2" => false,
        "MONOCHROME1" => true,
        other => {
            return Err(field_err(
                path,
                "PhotometricInterpretation",
                format!("'{other}'; only MONOCHROME1 or MONOCHROME2 grayscale is transmission"),
            ))
        }
    };
    let rows = u16_of(obj, tags::ROWS, path, "Rows")?;
    let columns = u16_of(obj, tags::COLUMNS, path, "Columns")?;
    let (width, height) = (u32::from(columns), u32::from(rows));
    if width == 0
        || height == 0
        || width > MAX_SIDE
        || height > MAX_SIDE
        || u64::from(width) * u64::from(height) > MAX_PIXELS
    {
        return Err(field_err(
            path,
            "Rows",
            format!("{width} × {height} pixels; at most {MAX_SIDE} a side and {MAX_PIXELS} pixels"),
        ));
    }
    if obj
        .get(tags::NUMBER_OF_FRAMES)
        .and_then(|e| e.to_int::<u32>().ok())
        .unwrap_or(1)
        > 1
    {
        return Err(field_err(
            path,
            "NumberOfFrames",
            "several frames; one view per object is read",
        ));
    }
    let n = (width * height) as usize;
    let element = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| field_err(path, "PixelData", "missing"))?;
    let mut data: Vec<u16> = match element.value().primitive() {
        Some(PrimitiveValue::U16(v)) => v.to_vec(),
        Some(PrimitiveValue::U8(bytes)) => bytes
            .chunks_exact(2)
            .map(|p| u16::from_le_bytes([p[0], p[1]]))
            .collect(),
        Some(_) => {
            return Err(field_err(path, "PixelData", "not 16-bit words"));
        }
        None => return Err(field_err(
            path,
            "PixelData",
            "encapsulated (compressed) pixel data; export uncompressed (explicit VR little endian)",
        )),
    };
    if data.len() != n {
        return Err(field_err(
            path,
            "PixelData",
            format!(
                "{} samples for {width} × {height} = {n} pixels (truncated or damaged)",
                data.len()
            ),
        ));
    }
    if stored < 16 {
        let max = (1u32 << stored) - 1;
        for v in &mut data {
            let x = u32::from(*v) & max;
            *v = ((x * 65535 + max / 2) / max) as u16;
        }
    }
    if invert {
        for v in &mut data {
            *v = u16::MAX - *v;
        }
    }
    Ok(Image16 {
        width,
        height,
        data,
    })
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f32>> {
    obj.get(tag).and_then(|e| e.to_multi_float32().ok())
}

/// The objects of a report's Threat Sequence: the class from Threat Category Description (or
/// Threat Category), the box from Threat ROI Base and Extents, the score from ATD Assessment
/// Probability (1 when absent).
fn threats_of(obj: &InMemDicomObject, path: &Path) -> Result<Vec<AnnotatedObject>, LibraryError> {
    let Some(seq) = obj.get(tags::THREAT_SEQUENCE) else {
        return Ok(Vec::new());
    };
    let items = seq.items().unwrap_or(&[]);
    let mut out = Vec::with_capacity(items.len());
    for (k, item) in items.iter().enumerate() {
        let field = |name: &str| format!("ThreatSequence[{k}].{name}");
        let label = text_of(item, tags::THREAT_CATEGORY_DESCRIPTION)
            .or_else(|| text_of(item, tags::THREAT_CATEGORY).map(|c| c.to_lowercase()))
            .ok_or_else(|| fail(path, Some(&field("ThreatCategoryDescription")), "missing"))?;
        let region = item
            .get(tags::PTO_REPRESENTATION_SEQUENCE)
            .and_then(|e| e.items())
            .and_then(|i| i.first())
            .ok_or_else(|| fail(path, Some(&field("PTORepresentationSequence")), "missing"))?;
        let region_field = |name: &str| field(&format!("PTORepresentationSequence[0].{name}"));
        let base = floats(region, tags::THREAT_ROI_BASE)
            .filter(|v| v.len() >= 2)
            .ok_or_else(|| {
                fail(
                    path,
                    Some(&region_field("ThreatROIBase")),
                    "missing or not x, y",
                )
            })?;
        let extents = floats(region, tags::THREAT_ROI_EXTENTS)
            .filter(|v| v.len() >= 2)
            .ok_or_else(|| {
                fail(
                    path,
                    Some(&region_field("ThreatROIExtents")),
                    "missing or not width, height",
                )
            })?;
        let (x0, y0, w, h) = (
            f64::from(base[0]),
            f64::from(base[1]),
            f64::from(extents[0]),
            f64::from(extents[1]),
        );
        let bbox = BoxPx::try_from([x0, y0, x0 + w, y0 + h])
            .map_err(|e| fail(path, Some(&region_field("ThreatROIExtents")), e))?;
        let score = floats(item, tags::ATD_ASSESSMENT_PROBABILITY)
            .and_then(|v| v.first().copied())
            .map_or(1.0, f64::from);
        if !(score.is_finite() && score >= 0.0) {
            return Err(fail(
                path,
                Some(&field("ATDAssessmentProbability")),
                format!("{score} is not a score"),
            ));
        }
        out.push(AnnotatedObject { label, bbox, score });
    }
    Ok(out)
}

/// A report's source: from the private block when borderlens wrote it, else from the TDR type
/// (OPERATOR → annotator, MACHINE → machine, GROUND TRUTH → consensus) and the referenced image.
fn source_of(
    obj: &InMemDicomObject,
    path: &Path,
    study: &str,
    view_of_image: &HashMap<(String, String), usize>,
) -> Result<(ReportSource, String), LibraryError> {
    let tdr_type = text_of(obj, tags::TDR_TYPE).unwrap_or_default();
    let private: Option<ReportSource> = match private_text(obj, PRIVATE_SOURCE) {
        Some(text) => Some(serde_json::from_str(&text).map_err(|e| {
            fail(
                path,
                Some("(0071,1002) borderlens report source"),
                format!("not valid: {e}"),
            )
        })?),
        None => None,
    };
    let referenced = obj
        .get(tags::REFERENCED_INSTANCE_SEQUENCE)
        .and_then(|e| e.items())
        .and_then(|items| items.first())
        .and_then(|r| text_of(r, tags::REFERENCED_SOP_INSTANCE_UID));
    let view = match referenced {
        Some(uid) => *view_of_image
            .get(&(study.to_string(), uid.clone()))
            .ok_or_else(|| {
                fail(
                    path,
                    Some("ReferencedInstanceSequence"),
                    format!(
                        "names image {uid}, which is no image of this study among the files read"
                    ),
                )
            })?,
        None => private.as_ref().map_or(0, |p| p.view),
    };
    let source = match private {
        Some(p) => {
            if p.role.tdr_type() != tdr_type {
                return Err(fail(
                    path,
                    Some("TDRType"),
                    format!(
                        "'{tdr_type}', but the report's source is a {:?} ({})",
                        p.role,
                        p.role.tdr_type()
                    ),
                ));
            }
            ReportSource { view, ..p }
        }
        None => ReportSource {
            role: match tdr_type.as_str() {
                "OPERATOR" => ReportRole::Annotator,
                "MACHINE" => ReportRole::Machine,
                "GROUND TRUTH" => ReportRole::Consensus,
                other => {
                    return Err(fail(
                        path,
                        Some("TDRType"),
                        format!("'{other}'; expected OPERATOR, MACHINE or GROUND TRUTH"),
                    ))
                }
            },
            view,
            seconds: None,
            objects: Vec::new(),
        },
    };
    let name = match source.role {
        ReportRole::Annotator | ReportRole::Reviewer => text_of(obj, tags::OPERATORS_NAME),
        _ => text_of(obj, tags::THREAT_DETECTION_ALGORITHM_AND_VERSION),
    }
    .ok_or_else(|| {
        fail(
            path,
            Some(if source.role.tdr_type() == "OPERATOR" {
                "OperatorsName"
            } else {
                "ThreatDetectionAlgorithmAndVersion"
            }),
            "missing: a report needs its source's name",
        )
    })?;
    Ok((source, name))
}

/// Reads a DICOS folder (as [`export_dicos`] writes it) into a scan package at `staging`.
/// Memory: one file's data set at a time (its pixels go to the staging package as PNG at
/// once), plus the reports' objects and each study's record.
fn dicos_to_package(dir: &Path, staging: &Path, library: &Library) -> Result<(), LibraryError> {
    let files = dicom_files(dir)?;
    if files.is_empty() {
        return Err(fail(
            dir,
            None,
            "holds no DICOM file (none with the DICM prefix)",
        ));
    }
    let mut staged = StagedImages::new(staging)?;
    // Image objects by Study Instance UID, studies in the order of their first file.
    let mut images: Vec<(String, Vec<ImageRead>)> = Vec::new();
    let mut study_index: HashMap<String, usize> = HashMap::new();
    let mut reports: Vec<(String, PathBuf, InMemDicomObject)> = Vec::new();
    let mut instances: HashMap<String, PathBuf> = HashMap::new();
    for path in &files {
        let size = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        if size > MAX_FILE_BYTES {
            return Err(fail(
                path,
                None,
                format!("{size} bytes, more than {MAX_FILE_BYTES}"),
            ));
        }
        let file = OpenFileOptions::new()
            .open_file(path)
            .map_err(|e| fail(path, None, format!("not a readable DICOM file: {e}")))?;
        let ts = file
            .meta()
            .transfer_syntax()
            .trim_end_matches('\0')
            .to_string();
        let class = file
            .meta()
            .media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string();
        let obj = file.into_inner();
        let study = text_of(&obj, tags::STUDY_INSTANCE_UID)
            .ok_or_else(|| field_err(path, "StudyInstanceUID", "missing"))?;
        let sop_uid = text_of(&obj, tags::SOP_INSTANCE_UID)
            .ok_or_else(|| field_err(path, "SOPInstanceUID", "missing"))?;
        if let Some(first) = instances.insert(sop_uid.clone(), path.clone()) {
            return Err(field_err(
                path,
                "SOPInstanceUID",
                format!(
                    "{sop_uid} is also the instance of {}: one object in two files",
                    first.display()
                ),
            ));
        }
        if class == uids::DICOS_THREAT_DETECTION_REPORT_STORAGE {
            reports.push((study, path.clone(), obj));
            continue;
        }
        if !IMAGE_CLASSES.contains(&class.as_str()) {
            return Err(field_err(
                path,
                "MediaStorageSOPClassUID",
                format!("{class} is neither an X-ray image (DICOS or DICOM DX, secondary capture) nor a DICOS threat detection report"),
            ));
        }
        if !NATIVE.contains(&ts.as_str()) {
            return Err(field_err(
                path,
                "TransferSyntaxUID",
                format!("{ts} is compressed; only uncompressed pixel data is read"),
            ));
        }
        let view = text_of(&obj, tags::SERIES_NUMBER)
            .and_then(|s| s.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .ok_or_else(|| field_err(path, "SeriesNumber", "missing or not 1, 2, …"))?;
        let energy_word = obj
            .get(tags::IMAGE_TYPE)
            .and_then(|e| e.to_multi_str().ok())
            .and_then(|v| v.get(2).map(|s| s.trim().to_uppercase()));
        let energy = match energy_word.as_deref() {
            Some("LOW") => Energy::Low,
            Some("HIGH") => Energy::High,
            other => {
                return Err(field_err(
                    path,
                    "ImageType",
                    format!(
                        "third value {other:?}; borderlens writes the energy there, LOW or HIGH"
                    ),
                ))
            }
        };
        let image = pixels_of(&obj, path)?;
        let png = image
            .to_png()
            .map_err(|e| field_err(path, "PixelData", e.to_string()))?;
        let (width, height) = (image.width, image.height);
        drop(image);
        let sha256 = staged.add(png, 16, width, height)?;
        let record_json = private_text(&obj, PRIVATE_RECORD);
        let mask_png = private_of(&obj, PRIVATE_MASK).map(|v| v.to_bytes().into_owned());
        let i = *study_index.entry(study.clone()).or_insert_with(|| {
            images.push((study, Vec::new()));
            images.len() - 1
        });
        if let Some(twin) = images[i]
            .1
            .iter()
            .find(|r| r.view == view && r.energy == energy)
        {
            return Err(field_err(
                path,
                "SeriesNumber",
                format!(
                    "view {view}, {} energy again: {} holds it already",
                    energy.word(),
                    twin.path.display()
                ),
            ));
        }
        images[i].1.push(ImageRead {
            path: path.clone(),
            sop_uid,
            view,
            energy,
            sha256,
            width,
            height,
            record_json,
            mask_png,
        });
    }
    const RECORD: &str = "(0071,1000) borderlens record";
    let mut manifest_scans: Vec<ScanRecord> = Vec::new();
    let mut scan_files: HashMap<String, PathBuf> = HashMap::new();
    let mut study_scan: HashMap<String, usize> = HashMap::new();
    let mut view_of_image: HashMap<(String, String), usize> = HashMap::new();
    for (study, list) in &images {
        let first = &list[0];
        let Some((json_file, json)) = list
            .iter()
            .find_map(|i| i.record_json.as_ref().map(|j| (&i.path, j)))
        else {
            return Err(fail(
                &first.path,
                Some(RECORD),
                "missing: this build reads DICOS files written by borderlens (other DICOM files: bring the images as 16-bit PNG or TIFF with a metadata CSV, `nii import-scans`)",
            ));
        };
        if let Some(other) = list
            .iter()
            .find(|i| i.record_json.as_ref().is_some_and(|j| j != json))
        {
            return Err(fail(
                &other.path,
                Some(RECORD),
                format!(
                    "differs from the record in {} of the same study",
                    json_file.display()
                ),
            ));
        }
        let mut record: ScanRecord = serde_json::from_str(json)
            .map_err(|e| fail(json_file, Some(RECORD), format!("not valid: {e}")))?;
        let id = record.metadata.scan_id.clone();
        if let Some(other) = scan_files.insert(id.clone(), json_file.clone()) {
            return Err(fail(
                json_file,
                Some(RECORD),
                format!(
                    "scan '{id}' is also the scan of {}, another study",
                    other.display()
                ),
            ));
        }
        for (v, view) in record.views.iter_mut().enumerate() {
            for channel in &mut view.channels {
                let Some(read) = list
                    .iter()
                    .find(|i| i.view == v && i.energy == channel.energy)
                else {
                    return Err(fail(
                        &first.path,
                        Some(&format!("views[{v}].{}", channel.energy.word())),
                        format!(
                            "scan '{id}' has no image object for view {v}, {} energy",
                            channel.energy.word()
                        ),
                    ));
                };
                if (read.width, read.height) != (channel.image.width, channel.image.height) {
                    return Err(field_err(
                        &read.path,
                        "Rows",
                        format!(
                            "{} × {} pixels; the record says {} × {}",
                            read.width, read.height, channel.image.width, channel.image.height
                        ),
                    ));
                }
                channel.image.sha256 = read.sha256.clone();
                view_of_image.insert((study.clone(), read.sop_uid.clone()), v);
            }
        }
        for read in list {
            let known = record
                .views
                .get(read.view)
                .is_some_and(|v| v.channels.iter().any(|c| c.energy == read.energy));
            if !known {
                return Err(field_err(
                    &read.path,
                    "SeriesNumber",
                    format!(
                        "view {}, {} energy is not a channel of scan '{id}'",
                        read.view,
                        read.energy.word()
                    ),
                ));
            }
        }
        if let Some(mask) = record.mask.as_mut() {
            let read = list.iter().find(|i| i.mask_png.is_some()).ok_or_else(|| {
                fail(
                    &first.path,
                    Some("(0071,1001) borderlens mask"),
                    "missing: the record names an object mask",
                )
            })?;
            // Encoded again, as the image channels are: an OB value is padded to an even
            // length, so the bytes read may have one more than the PNG written.
            let bytes = read.mask_png.as_deref().unwrap_or_default();
            let decoded = Mask8::from_png(bytes)
                .and_then(|m| Ok((m.to_png()?, m.width, m.height)))
                .map_err(|e| field_err(&read.path, "(0071,1001) borderlens mask", e.to_string()))?;
            mask.sha256 = staged.add(decoded.0, 8, decoded.1, decoded.2)?;
        }
        record
            .validate()
            .map_err(|e| fail(json_file, Some(&format!("{RECORD}: {}", e.field)), e.reason))?;
        if library.get(&id).is_some_and(|existing| *existing != record) {
            return Err(fail(
                json_file,
                Some(RECORD),
                format!("scan '{id}' is already in the library with other content; import refused"),
            ));
        }
        study_scan.insert(study.clone(), manifest_scans.len());
        manifest_scans.push(record);
    }
    // Reports: operators, reviewers and models become annotation lines; the ground truth is
    // informative (the library computes its own consensus; the record carries the truth).
    let mut by_view: BTreeMap<(String, usize), ScanAnnotations> = BTreeMap::new();
    for (study, path, obj) in &reports {
        let &scan = study_scan.get(study).ok_or_else(|| {
            fail(
                path,
                Some("StudyInstanceUID"),
                format!("{study}: no image object of this study was read"),
            )
        })?;
        let record = &manifest_scans[scan];
        let scan_id = &record.metadata.scan_id;
        let (source, name) = source_of(obj, path, study, &view_of_image)?;
        let read = threats_of(obj, path)?;
        let image = record
            .views
            .get(source.view)
            .and_then(|v| v.channels.first())
            .map(|c| (c.image.width, c.image.height));
        let Some((width, height)) = image else {
            return Err(fail(
                path,
                Some("ReferencedInstanceSequence"),
                format!("view {} is not a view of scan '{scan_id}'", source.view),
            ));
        };
        let objects = exact_objects(read, &source.objects, width, height);
        if let Some(k) = objects.iter().position(|o| !o.bbox.inside(width, height)) {
            return Err(fail(
                path,
                Some(&format!(
                    "ThreatSequence[{k}].PTORepresentationSequence[0].ThreatROIExtents"
                )),
                format!(
                    "box {:?} lies outside the {width} × {height} image",
                    <[f64; 4]>::from(objects[k].bbox)
                ),
            ));
        }
        if let Some(seconds) = source.seconds.filter(|s| !(s.is_finite() && *s >= 0.0)) {
            return Err(fail(
                path,
                Some("(0071,1002) borderlens report source: seconds"),
                format!("{seconds} is not a duration"),
            ));
        }
        let entry = by_view
            .entry((scan_id.clone(), source.view))
            .or_insert_with(|| ScanAnnotations::new(scan_id, source.view));
        let lines = SourceObjects {
            annotator: name,
            objects,
            seconds: source.seconds,
            guideline: None,
        };
        match source.role {
            ReportRole::Annotator => entry.annotators.push(lines),
            ReportRole::Reviewer => entry.reviewers.push(lines),
            ReportRole::Machine => entry.machines.push(lines),
            ReportRole::Consensus | ReportRole::Truth => {}
        }
    }
    write_staged(
        staging,
        "borderlens (DICOS import)",
        manifest_scans,
        staged,
        by_view.into_values().collect(),
    )
}

/// A report's objects: the standard attributes' values (32-bit floats) where a tool changed
/// them, else the exact values the private block carries (those that agree with the standard
/// ones to 32-bit precision); an edge within 0.001 pixel outside the image is put on it.
fn exact_objects(
    read: Vec<AnnotatedObject>,
    exact: &[AnnotatedObject],
    width: u32,
    height: u32,
) -> Vec<AnnotatedObject> {
    let f32_of = |v: f64| f64::from(v as f32);
    read.into_iter()
        .enumerate()
        .map(|(k, o)| {
            let same = exact.get(k).filter(|e| {
                e.label == o.label
                    && f32_of(e.bbox.x0) == o.bbox.x0
                    && f32_of(e.bbox.y0) == o.bbox.y0
                    && f32_of(e.bbox.x1 - e.bbox.x0) == o.bbox.x1 - o.bbox.x0
                    && f32_of(e.bbox.y1 - e.bbox.y0) == o.bbox.y1 - o.bbox.y0
                    && f32_of(e.score) == o.score
            });
            match same {
                Some(e) => e.clone(),
                None => {
                    let snap = |v: f64, max: f64| {
                        if v < 0.0 && v > -1e-3 {
                            0.0
                        } else if v > max && v < max + 1e-3 {
                            max
                        } else {
                            v
                        }
                    };
                    let (w, h) = (f64::from(width), f64::from(height));
                    let b = o.bbox;
                    let bbox = BoxPx::try_from([
                        snap(b.x0, w),
                        snap(b.y0, h),
                        snap(b.x1, w),
                        snap(b.y1, h),
                    ])
                    .unwrap_or(b);
                    AnnotatedObject { bbox, ..o }
                }
            }
        })
        .collect()
}

/// Imports a DICOS folder written by [`export_dicos`] into a library: every file is read and
/// checked first (SOP class, transfer syntax, pixel format and size, the record, every channel
/// present, report sources and boxes), then imported as a scan package ([`import_package`](crate::package::import_package):
/// nothing written unless all of it passes; importing twice changes nothing). Annotators',
/// reviewers' and models' reports become annotation lines; GROUND TRUTH reports are not
/// imported (the library computes its own consensus, and the record carries the true objects).
pub fn import_dicos(library: &mut Library, dir: &Path) -> Result<ImportSummary, LibraryError> {
    // From another administration, as a package: only redistributable scans.
    import_staged(library, dir, "dicos", true, |staging, library| {
        dicos_to_package(dir, staging, library)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::library::{AnnotationRecord, AnnotationRole};
    use crate::package::import_package;
    use crate::package::tests::{all_files, anonymiser, library, PLANTED};

    /// The package tests' library (two synthetic scans with threats, two real ones with
    /// personal data; two annotators and a reviewer on each) and a model's proposals on the
    /// first scan.
    fn annotated() -> (tempfile::TempDir, Library) {
        let (dir, mut lib) = library();
        let id = lib.records()[0].metadata.scan_id.clone();
        lib.add_annotation(AnnotationRecord {
            scan_id: id,
            annotator: "model-0123456789ab".into(),
            role: AnnotationRole::Machine,
            view: 0,
            // an edge on the image's (48 pixels), a fractional start, a score no f32 holds:
            // the 32-bit standard attributes alone would not give them back
            objects: vec![AnnotatedObject {
                label: "gun".into(),
                bbox: BoxPx::new(13.37, 6.1, 48.0, 18.25).unwrap(),
                score: 0.8731,
            }],
            seconds: None,
            guideline: None,
            review: None,
        })
        .unwrap();
        (dir, lib)
    }

    /// The annotation lines, sorted, without the guideline version (a DICOS report does not
    /// carry it yet; a scan package does).
    fn lines(lib: &Library) -> Vec<String> {
        let mut v: Vec<String> = lib
            .annotations()
            .iter()
            .map(|a| {
                let mut a = a.clone();
                a.guideline = None;
                serde_json::to_string(&a).unwrap()
            })
            .collect();
        v.sort();
        v
    }

    /// Anonymised (the real scans carry personal data), with a masked strip when `mask`.
    fn options(machine: bool, mask: bool) -> ExportOptions {
        let masks: &[&str] = if mask { &["0,0,48,6"] } else { &[] };
        ExportOptions {
            anonymiser: Some(anonymiser(masks)),
            include_machine: machine,
            ..ExportOptions::default()
        }
    }

    /// The records of a library by scan id, the anonymisation time left out (two exports a
    /// second apart stamp different times).
    fn records(lib: &Library) -> Vec<ScanRecord> {
        let mut v = lib.records().to_vec();
        v.sort_by(|a, b| a.metadata.scan_id.cmp(&b.metadata.scan_id));
        for r in &mut v {
            if let Some(log) = r.anonymisation.as_mut() {
                log.at.clear();
            }
        }
        v
    }

    fn open(path: &Path) -> InMemDicomObject {
        OpenFileOptions::new().open_file(path).unwrap().into_inner()
    }

    fn save(obj: InMemDicomObject, like: &Path) {
        let file = OpenFileOptions::new().open_file(like).unwrap();
        let meta = file.meta().clone();
        obj.with_exact_meta(meta).write_to_file(like).unwrap();
    }

    #[test]
    fn a_dicos_round_trip_gives_the_same_scans_pixels_and_sources_as_the_package() {
        let (dir, lib) = annotated();
        let out = dir.path().join("dicos");
        let summary = export_dicos(&lib, &options(true, true), &out).unwrap();
        assert_eq!(summary.scans, 4, "{:?}", summary.refused);
        assert_eq!(summary.images, 8, "one object per view and energy");
        // per scan: 2 annotators + 1 reviewer + consensus; the synthetic ones add the truth;
        // the first adds the model
        assert_eq!(summary.reports, 4 * 4 + 2 + 1);
        // The same export as a package, imported: the reference.
        let pkg = dir.path().join("pkg");
        export_package(&lib, &options(true, true), &pkg).unwrap();
        let mut by_package = Library::create(&dir.path().join("lib-pkg")).unwrap();
        import_package(&mut by_package, &pkg).unwrap();

        let mut by_dicos = Library::create(&dir.path().join("lib-dicos")).unwrap();
        let s = import_dicos(&mut by_dicos, &out).unwrap();
        assert_eq!((s.scans_added, s.annotations_added), (4, 4 * 3 + 1));
        assert_eq!(records(&by_dicos), records(&by_package));
        assert_eq!(lines(&by_dicos), lines(&by_package));
        let machine: Vec<_> = by_dicos
            .annotations()
            .iter()
            .filter(|a| a.role == AnnotationRole::Machine)
            .collect();
        assert_eq!(machine.len(), 1);
        assert_eq!(machine[0].annotator, "model-0123456789ab");
        assert_eq!(
            machine[0].objects[0].bbox,
            BoxPx::new(13.37, 6.1, 48.0, 18.25).unwrap()
        );
        assert_eq!(machine[0].objects[0].score, 0.8731);
        // Pixels: every channel reads back identical to the package's.
        for (a, b) in records(&by_dicos).iter().zip(&records(&by_package)) {
            for (va, vb) in a.views.iter().zip(&b.views) {
                for (ca, cb) in va.channels.iter().zip(&vb.channels) {
                    assert_eq!(
                        by_dicos.read_image(&ca.image).unwrap(),
                        by_package.read_image(&cb.image).unwrap()
                    );
                }
            }
        }
        // The synthetic scans' records are the library's own (not anonymised: nothing personal).
        let original = lib.get("syn-7-000000").unwrap();
        assert_eq!(by_dicos.get("syn-7-000000").unwrap().truth, original.truth);
        // Importing again changes nothing.
        let again = import_dicos(&mut by_dicos, &out).unwrap();
        assert_eq!((again.scans_added, again.annotations_added), (0, 0));
        assert_eq!((again.scans_present, again.annotations_present), (4, 13));
        // No staging folder is left in the export or the library.
        assert!(fs::read_dir(&out).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')));
        assert!(fs::read_dir(by_dicos.root()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with(".staging")));
    }

    #[test]
    fn the_standard_attributes_carry_pixels_boxes_and_sources() {
        let (dir, lib) = annotated();
        let out = dir.path().join("dicos");
        export_dicos(&lib, &options(true, false), &out).unwrap();
        let scan = out.join("syn-7-000000");
        let dx = open(&scan.join("v0-high.dcm"));
        let record = lib.get("syn-7-000000").unwrap();
        let high = &record.views[0]
            .channels
            .iter()
            .find(|c| c.energy == Energy::High)
            .unwrap();
        let image = lib.read_image(&high.image).unwrap();
        assert_eq!(text_of(&dx, tags::MODALITY).as_deref(), Some("DX"));
        assert_eq!(pixels_of(&dx, &scan).unwrap(), image);
        assert_eq!(
            text_of(&dx, tags::MANUFACTURER_MODEL_NAME).as_deref(),
            Some(record.metadata.scanner_model.as_str())
        );
        let tdrs: Vec<PathBuf> = {
            let mut v: Vec<PathBuf> = fs::read_dir(&scan)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.to_string_lossy().contains("-tdr-"))
                .collect();
            v.sort();
            v
        };
        let types: Vec<String> = tdrs
            .iter()
            .map(|p| text_of(&open(p), tags::TDR_TYPE).unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "OPERATOR",
                "OPERATOR",
                "OPERATOR",
                "MACHINE",
                "GROUND TRUTH",
                "GROUND TRUTH"
            ]
        );
        let machine = open(&tdrs[3]);
        assert_eq!(
            text_of(&machine, tags::THREAT_DETECTION_ALGORITHM_AND_VERSION).as_deref(),
            Some("model-0123456789ab")
        );
        let objects = threats_of(&machine, &tdrs[3]).unwrap();
        assert_eq!(objects.len(), 1);
        assert_eq!(objects[0].label, "gun");
        assert_eq!(objects[0].score, f64::from(0.8731f32));
        let truth = threats_of(&open(&tdrs[5]), &tdrs[5]).unwrap();
        let expected = objects_of(record, 0, &CocoSource::Truth, None);
        assert!(!expected.is_empty());
        assert_eq!(truth.len(), expected.len());
        for (t, e) in truth.iter().zip(&expected) {
            assert_eq!(t.label, e.label);
            for (a, b) in <[f64; 4]>::from(t.bbox)
                .iter()
                .zip(<[f64; 4]>::from(e.bbox))
            {
                assert!((a - b).abs() < 1e-3, "{a} vs {b}");
            }
        }
        // The importer reads the box from the standard attributes: a tool that moves it there
        // moves it in the library.
        let mut edited = machine;
        let seq = edited
            .get(tags::THREAT_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()
            .to_vec();
        let mut item = seq[0].clone();
        let mut region = item
            .get(tags::PTO_REPRESENTATION_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0]
            .clone();
        put_f32s(&mut region, tags::THREAT_ROI_BASE, &[7.0, 8.0, 0.0]);
        item.put(element_seq(tags::PTO_REPRESENTATION_SEQUENCE, vec![region]));
        edited.put(element_seq(tags::THREAT_SEQUENCE, vec![item]));
        save(edited, &tdrs[3]);
        let mut back = Library::create(&dir.path().join("back")).unwrap();
        import_dicos(&mut back, &out).unwrap();
        let line = back
            .annotations()
            .iter()
            .find(|a| a.role == AnnotationRole::Machine)
            .unwrap();
        let (w, h) = (
            f64::from((48.0f64 - 13.37) as f32),
            f64::from((18.25f64 - 6.1) as f32),
        );
        assert_eq!(
            line.objects[0].bbox,
            BoxPx::new(7.0, 8.0, 7.0 + w, 8.0 + h).unwrap()
        );
    }

    #[test]
    fn an_anonymised_dicos_export_holds_none_of_the_planted_personal_data() {
        let (dir, lib) = annotated();
        let out = dir.path().join("dicos");
        let summary = export_dicos(&lib, &options(true, true), &out).unwrap();
        assert_eq!(summary.anonymised, 4);
        let files = all_files(&out);
        assert!(files.len() > 8);
        for (path, bytes) in &files {
            for planted in PLANTED {
                assert!(
                    !bytes
                        .windows(planted.len())
                        .any(|w| w == planted.as_bytes()),
                    "{} holds '{planted}'",
                    path.display()
                );
            }
        }
        // Without a key, the scans with personal data are refused, named.
        let plain = dir.path().join("plain");
        let s = export_dicos(&lib, &ExportOptions::default(), &plain).unwrap();
        assert_eq!(s.scans, 2);
        assert_eq!(s.refused.len(), 2);
        assert!(s.refused.iter().all(|r| r.scan_id.starts_with("real-")));
        // An export that keeps nothing writes nothing.
        let none = dir.path().join("none");
        let only_real = ExportOptions {
            scans: Some(vec!["real-0".into()]),
            ..ExportOptions::default()
        };
        let s = export_dicos(&lib, &only_real, &none).unwrap();
        assert!(s.folder.is_none());
        assert!(!none.exists());
        // A folder the user made is kept, empty.
        fs::create_dir(&none).unwrap();
        let s = export_dicos(&lib, &only_real, &none).unwrap();
        assert!(s.folder.is_none());
        assert_eq!(fs::read_dir(&none).unwrap().count(), 0);
    }

    #[test]
    fn pixels_from_a_rendering_are_exported_as_derived_and_read_back_so() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("in");
        std::fs::create_dir_all(&folder).unwrap();
        let params = crate::generate::GeneratorParams {
            width: 64,
            height: 64,
            ..Default::default()
        };
        let scan = crate::generate::generate_scan(&params, 3, 0);
        let picture = crate::rendering::render(&scan.high, Some(&scan.low));
        std::fs::write(folder.join("a.png"), picture.to_png().unwrap()).unwrap();
        std::fs::write(
            folder.join("metadata.csv"),
            "scan_id,file,scanned_at,scanner_model,mm_per_pixel,cargo_type,licence,redistributable\n\
             set-1,a.png,2019-01-01T00:00:00,unknown,1.0,bag,CC-BY-4.0,true\n",
        )
        .unwrap();
        let mut lib = Library::create(&dir.path().join("lib")).unwrap();
        let renderings = crate::import::ImportOptions { renderings: true };
        crate::import::import_folder_with(&mut lib, &folder, renderings).unwrap();
        let out = dir.path().join("dicos");
        // A real scan leaves only anonymised.
        let s = export_dicos(&lib, &options(false, false), &out).unwrap();
        assert_eq!(s.scans, 1);
        for energy in ["low", "high"] {
            let obj = open(&out.join("set-1").join(format!("v0-{energy}.dcm")));
            let image_type = obj
                .get(tags::IMAGE_TYPE)
                .and_then(|e| e.to_multi_str().ok())
                .unwrap();
            assert_eq!(image_type[0].trim(), "DERIVED");
            let how = text_of(&obj, tags::DERIVATION_DESCRIPTION).unwrap();
            assert!(how.contains("8-bit png rendering"), "{how}");
            assert!(
                text_of(&obj, tags::LOSSY_IMAGE_COMPRESSION).is_none(),
                "a PNG is lossless"
            );
        }
        let mut back = Library::create(&dir.path().join("back")).unwrap();
        import_dicos(&mut back, &out).unwrap();
        assert_eq!(
            back.get("set-1").unwrap().provenance.rendering,
            lib.get("set-1").unwrap().provenance.rendering
        );
        assert!(back.get("set-1").unwrap().provenance.rendering.is_some());
    }

    #[test]
    fn secondary_capture_writes_one_plain_16_bit_image_per_view() {
        let (dir, lib) = annotated();
        let out = dir.path().join("sc");
        let s = export_secondary_capture(&lib, &options(false, false), &out).unwrap();
        assert_eq!((s.scans, s.images, s.reports), (4, 4, 0));
        let path = out.join("syn-7-000001").join("v0.dcm");
        let file = OpenFileOptions::new().open_file(&path).unwrap();
        assert_eq!(
            file.meta()
                .media_storage_sop_class_uid()
                .trim_end_matches('\0'),
            uids::SECONDARY_CAPTURE_IMAGE_STORAGE
        );
        let obj = file.into_inner();
        let record = lib.get("syn-7-000001").unwrap();
        let high = record.views[0]
            .channels
            .iter()
            .find(|c| c.energy == Energy::High)
            .unwrap();
        assert_eq!(
            pixels_of(&obj, &path).unwrap(),
            lib.read_image(&high.image).unwrap()
        );
        assert!(
            private_text(&obj, PRIVATE_RECORD).is_none(),
            "a plain export"
        );
    }

    /// Exports the library, lets `damage` spoil the export, and checks the import refuses it
    /// naming `file` and `field`, with nothing written.
    fn refused(damage: impl FnOnce(&Path), file: &str, field: Option<&str>) {
        let (dir, lib) = annotated();
        let out = dir.path().join("dicos");
        export_dicos(&lib, &options(true, true), &out).unwrap();
        damage(&out.join("syn-7-000000"));
        let mut target = Library::create(&dir.path().join("target")).unwrap();
        let e = import_dicos(&mut target, &out).unwrap_err();
        assert!(
            e.file.to_string_lossy().ends_with(file),
            "{e} (expected file {file})"
        );
        assert_eq!(e.field.as_deref(), field, "{e}");
        assert!(target.records().is_empty() && target.annotations().is_empty());
    }

    fn edit(path: &Path, change: impl FnOnce(&mut InMemDicomObject)) {
        let mut obj = open(path);
        change(&mut obj);
        save(obj, path);
    }

    #[test]
    fn a_truncated_file_is_refused_naming_it() {
        // Truncated: the pixel data stops short.
        refused(
            |d| {
                let p = d.join("v0-low.dcm");
                let bytes = fs::read(&p).unwrap();
                fs::write(&p, &bytes[..bytes.len() - 4000]).unwrap();
            },
            "v0-low.dcm",
            None,
        );
    }

    #[test]
    fn pseudo_colour_8_bit_compressed_and_huge_images_are_refused() {
        refused(
            |d| {
                let p = d.join("v0-high.dcm");
                let file = OpenFileOptions::new().open_file(&p).unwrap();
                let meta = FileMetaTableBuilder::new()
                    .media_storage_sop_class_uid(file.meta().media_storage_sop_class_uid())
                    .media_storage_sop_instance_uid(file.meta().media_storage_sop_instance_uid())
                    .transfer_syntax(uids::JPEG_BASELINE8_BIT)
                    .implementation_class_uid(IMPLEMENTATION_UID)
                    .build()
                    .unwrap();
                file.into_inner()
                    .with_exact_meta(meta)
                    .write_to_file(&p)
                    .unwrap();
            },
            "v0-high.dcm",
            Some("TransferSyntaxUID"),
        );
        refused(
            |d| {
                edit(&d.join("v0-high.dcm"), |o| {
                    put_u16(o, tags::SAMPLES_PER_PIXEL, 3)
                })
            },
            "v0-high.dcm",
            Some("SamplesPerPixel"),
        );
        refused(
            |d| {
                edit(&d.join("v0-high.dcm"), |o| {
                    put_u16(o, tags::BITS_ALLOCATED, 8)
                })
            },
            "v0-high.dcm",
            Some("BitsAllocated"),
        );
        refused(
            |d| {
                edit(&d.join("v0-high.dcm"), |o| {
                    put_str(o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "PALETTE COLOR")
                })
            },
            "v0-high.dcm",
            Some("PhotometricInterpretation"),
        );
        refused(
            |d| {
                edit(&d.join("v0-high.dcm"), |o| {
                    put_u16(o, tags::ROWS, 20_000);
                    put_u16(o, tags::COLUMNS, 20_000);
                })
            },
            "v0-high.dcm",
            Some("Rows"),
        );
    }

    #[test]
    fn a_scan_not_redistributable_is_refused_as_in_a_package() {
        // Another administration's DICOS folder whose record says the scan may not be shared
        // (every image object of the study says so): refused, nothing written.
        let (dir, lib) = annotated();
        let out = dir.path().join("dicos");
        export_dicos(&lib, &options(true, true), &out).unwrap();
        for name in ["v0-low.dcm", "v0-high.dcm"] {
            edit(&out.join("syn-7-000001").join(name), |o| {
                let json = private_text(o, PRIVATE_RECORD).unwrap();
                let mut record: ScanRecord = serde_json::from_str(&json).unwrap();
                record.provenance.redistributable = false;
                let text = serde_json::to_string(&record).unwrap();
                put_private(o, PRIVATE_RECORD, VR::UT, PrimitiveValue::from(text));
            });
        }
        let mut target = Library::create(&dir.path().join("target")).unwrap();
        let e = import_dicos(&mut target, &out).unwrap_err();
        assert!(
            e.field
                .as_deref()
                .is_some_and(|f| f.ends_with("provenance.redistributable")),
            "{e}"
        );
        assert!(e.reason.contains("not redistributable"), "{e}");
        assert!(target.records().is_empty() && target.annotations().is_empty());
    }

    #[test]
    fn a_file_copied_twice_and_a_missing_energy_are_refused() {
        refused(
            |d| {
                fs::copy(d.join("v0-tdr-001-operator.dcm"), d.join("copy.dcm")).unwrap();
            },
            "v0-tdr-001-operator.dcm",
            Some("SOPInstanceUID"),
        );
        refused(
            |d| {
                edit(&d.join("v0-low.dcm"), |o| {
                    put_strs(
                        o,
                        tags::IMAGE_TYPE,
                        VR::CS,
                        &["ORIGINAL".into(), "PRIMARY".into()],
                    )
                })
            },
            "v0-low.dcm",
            Some("ImageType"),
        );
    }

    #[test]
    fn a_missing_channel_a_box_outside_and_a_wrong_report_type_are_refused() {
        refused(
            |d| {
                edit(&d.join("v0-tdr-002-operator.dcm"), |o| {
                    let mut item =
                        o.get(tags::THREAT_SEQUENCE).unwrap().items().unwrap()[0].clone();
                    let mut region = item
                        .get(tags::PTO_REPRESENTATION_SEQUENCE)
                        .unwrap()
                        .items()
                        .unwrap()[0]
                        .clone();
                    put_f32s(&mut region, tags::THREAT_ROI_BASE, &[40.0, 40.0, 0.0]);
                    item.put(element_seq(tags::PTO_REPRESENTATION_SEQUENCE, vec![region]));
                    o.put(element_seq(tags::THREAT_SEQUENCE, vec![item]));
                })
            },
            "v0-tdr-002-operator.dcm",
            Some("ThreatSequence[0].PTORepresentationSequence[0].ThreatROIExtents"),
        );
        refused(
            |d| fs::remove_file(d.join("v0-low.dcm")).unwrap(),
            "v0-high.dcm",
            Some("views[0].low"),
        );
        refused(
            |d| {
                edit(&d.join("v0-tdr-001-operator.dcm"), |o| {
                    put_str(o, tags::TDR_TYPE, VR::CS, "MACHINE")
                })
            },
            "v0-tdr-001-operator.dcm",
            Some("TDRType"),
        );
        refused(
            |d| {
                edit(&d.join("v0-tdr-001-operator.dcm"), |o| {
                    o.remove_element(tags::OPERATORS_NAME);
                })
            },
            "v0-tdr-001-operator.dcm",
            Some("OperatorsName"),
        );
    }
}
