//! The scan model: views and energies, metadata, provenance, licence, true objects.
//!
//! One [`ScanRecord`] is one line of the library's `catalogue.jsonl`. Images are referenced by
//! the SHA-256 of their PNG bytes ([`ImageRef`]); the pixels live in the library folder.
//! [`ScanRecord::validate`] checks what serde cannot: identifiers (ISO 6346, UPU S10), the date,
//! resolution, weights, that every box lies inside its image. Each problem names its field.

use borderlens_domain::{ContainerNumber, S10ItemId};
use serde::{Deserialize, Serialize};

use crate::generate::GeneratorParams;
use crate::geometry::BoxPx;
use crate::tip::ProjectionRecord;

/// Energy channel of a dual-energy scanner (a single-energy scanner has only `high`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Energy {
    /// the low-energy channel (more sensitive to atomic number)
    Low,
    /// the high-energy channel
    High,
}

impl Energy {
    /// `low` or `high`.
    pub fn word(self) -> &'static str {
        match self {
            Energy::Low => "low",
            Energy::High => "high",
        }
    }
}

/// A stored image: the SHA-256 (hex) of its PNG bytes, which is also its file name in the library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageRef {
    /// lower-case hex SHA-256 of the PNG file
    pub sha256: String,
    /// width in pixels
    pub width: u32,
    /// height in pixels
    pub height: u32,
}

/// One energy channel of a view: a 16-bit transmission image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// which energy
    pub energy: Energy,
    /// the 16-bit transmission image
    pub image: ImageRef,
}

/// One view (projection direction) of a scan, with one or two energies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// name of the view, e.g. `top` or `side`
    pub name: String,
    /// one or two channels, at most one per energy
    pub channels: Vec<Channel>,
}

/// What was scanned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CargoType {
    /// a postal or express parcel (cardboard box)
    Parcel,
    /// a passenger's bag or suitcase
    Bag,
    /// a freight container or a truck's load
    Container,
}

impl CargoType {
    /// The word used in files.
    pub fn word(self) -> &'static str {
        match self {
            CargoType::Parcel => "parcel",
            CargoType::Bag => "bag",
            CargoType::Container => "container",
        }
    }
}

/// The study's metadata list, in full.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// scan id, unique in the library
    pub scan_id: String,
    /// date and time of the scan, ISO 8601 without zone (`2026-03-01T10:15:00`), local to the site
    pub scanned_at: String,
    /// scanner make and model
    pub scanner_model: String,
    /// resolution in millimetres per pixel at the object plane
    pub mm_per_pixel: f64,
    /// parcel, bag or container
    pub cargo_type: CargoType,
    /// ISO 6346 container number (check digit verified), when a container
    pub container_id: Option<String>,
    /// UPU S10 postal item id (check digit verified), when a postal item
    pub package_id: Option<String>,
    /// declared contents (as declared; never rewritten)
    pub declared_contents: Option<String>,
    /// gross weight, kg
    pub weight_kg: Option<f64>,
    /// volume, m³
    pub volume_m3: Option<f64>,
    /// country of origin (ISO 3166 alpha-2)
    pub origin: Option<String>,
    /// country of destination (ISO 3166 alpha-2)
    pub destination: Option<String>,
    /// carrier (shipping line, airline, postal operator)
    pub carrier: Option<String>,
    /// scanning location (port, airport, mail centre)
    pub location: Option<String>,
    /// why it was scanned: routine, risk, random, training, synthetic, ...
    pub purpose: String,
    /// risk flags raised before the scan
    #[serde(default)]
    pub risk_flags: Vec<String>,
    /// inspection outcome, when known
    pub outcome: Option<String>,
    /// subsequent actions (seizure, release, referral, ...)
    #[serde(default)]
    pub actions: Vec<String>,
    /// sender's name (**personal**: pseudonymised by anonymisation)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consignor_name: Option<String>,
    /// sender's postal address (**personal**: pseudonymised)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consignor_address: Option<String>,
    /// recipient's name (**personal**: pseudonymised)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consignee_name: Option<String>,
    /// recipient's postal address (**personal**: pseudonymised)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consignee_address: Option<String>,
    /// a contact phone number (**personal**: pseudonymised)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_phone: Option<String>,
    /// driver's name, for a truck or container (**personal**: pseudonymised)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver_name: Option<String>,
    /// the officer's free-text notes (**personal**: may hold anything; removed)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// Every field of [`Metadata`], in its order: the fields the library browser filters on.
pub const METADATA_FIELDS: [&str; 25] = [
    "scan_id",
    "scanned_at",
    "scanner_model",
    "mm_per_pixel",
    "cargo_type",
    "container_id",
    "package_id",
    "declared_contents",
    "weight_kg",
    "volume_m3",
    "origin",
    "destination",
    "carrier",
    "location",
    "purpose",
    "risk_flags",
    "outcome",
    "actions",
    "consignor_name",
    "consignor_address",
    "consignee_name",
    "consignee_address",
    "contact_phone",
    "driver_name",
    "notes",
];

/// What kind of personal data a field holds; also the prefix of its pseudonyms, so that the
/// same person named as sender on one scan and recipient on another gets the same pseudonym.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonalKind {
    /// a person's or company's name
    Name,
    /// a postal address
    Address,
    /// a phone number
    Phone,
    /// free text, which may hold any of these
    FreeText,
}

impl PersonalKind {
    /// The word used in files and pseudonyms.
    pub fn word(self) -> &'static str {
        match self {
            PersonalKind::Name => "name",
            PersonalKind::Address => "address",
            PersonalKind::Phone => "phone",
            PersonalKind::FreeText => "free_text",
        }
    }
}

/// What anonymisation does to a personal field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// replaced by a keyed pseudonym (HMAC-SHA256 under the user's key): the same value under
    /// the same key always gives the same pseudonym, so scans of one sender stay linked
    Pseudonymise,
    /// removed
    Remove,
}

/// One personal field of the metadata: the one table anonymisation, validation, the export's
/// refusals and the quality report's privacy figures all read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PersonalField {
    /// field name in `metadata`
    pub name: &'static str,
    /// what it holds
    pub kind: PersonalKind,
    /// what anonymisation does to it
    pub treatment: Treatment,
    /// whether it counts on synthetic scans too; `false` for `declared_contents`, which the
    /// generator draws from a fixed list of goods (on real and staged scans it is the sender's
    /// free text)
    pub synthetic_too: bool,
}

/// The personal fields of [`Metadata`]. The other fields (ids of the container or postal item,
/// weight, volume, countries, carrier, location, purpose, flags, outcome, actions) describe
/// goods, sites and procedures, not people, and are kept.
pub const PERSONAL_FIELDS: &[PersonalField] = &[
    PersonalField {
        name: "consignor_name",
        kind: PersonalKind::Name,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "consignor_address",
        kind: PersonalKind::Address,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "consignee_name",
        kind: PersonalKind::Name,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "consignee_address",
        kind: PersonalKind::Address,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "contact_phone",
        kind: PersonalKind::Phone,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "driver_name",
        kind: PersonalKind::Name,
        treatment: Treatment::Pseudonymise,
        synthetic_too: true,
    },
    PersonalField {
        name: "notes",
        kind: PersonalKind::FreeText,
        treatment: Treatment::Remove,
        synthetic_too: true,
    },
    PersonalField {
        name: "declared_contents",
        kind: PersonalKind::FreeText,
        treatment: Treatment::Remove,
        synthetic_too: false,
    },
];

impl Metadata {
    /// The value of a personal field of [`PERSONAL_FIELDS`] (`None` for any other name).
    pub fn personal(&self, name: &str) -> Option<&String> {
        match name {
            "consignor_name" => self.consignor_name.as_ref(),
            "consignor_address" => self.consignor_address.as_ref(),
            "consignee_name" => self.consignee_name.as_ref(),
            "consignee_address" => self.consignee_address.as_ref(),
            "contact_phone" => self.contact_phone.as_ref(),
            "driver_name" => self.driver_name.as_ref(),
            "notes" => self.notes.as_ref(),
            "declared_contents" => self.declared_contents.as_ref(),
            _ => None,
        }
    }

    /// The slot of a personal field of [`PERSONAL_FIELDS`].
    pub fn personal_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "consignor_name" => &mut self.consignor_name,
            "consignor_address" => &mut self.consignor_address,
            "consignee_name" => &mut self.consignee_name,
            "consignee_address" => &mut self.consignee_address,
            "contact_phone" => &mut self.contact_phone,
            "driver_name" => &mut self.driver_name,
            "notes" => &mut self.notes,
            "declared_contents" => &mut self.declared_contents,
            _ => return None,
        })
    }
}

/// A keyed pseudonym as anonymisation writes it: `<kind>-<32 lower-case hex>`.
pub fn is_pseudonym(value: &str, kind: PersonalKind) -> bool {
    value
        .strip_prefix(kind.word())
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// What anonymisation did to one field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldChange {
    /// dotted path, e.g. `metadata.consignee_name`
    pub field: String,
    /// `pseudonymise` or `remove`
    pub action: Treatment,
}

/// An image region anonymisation set to full transmission (air) in every energy channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskedRegion {
    /// which view (index into `views`)
    pub view: usize,
    /// left column
    pub x: u32,
    /// top row
    pub y: u32,
    /// width, pixels (clipped to the image)
    pub width: u32,
    /// height, pixels (clipped to the image)
    pub height: u32,
}

/// The log of an anonymisation, kept with the scan: what was changed, never the values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnonymisationLog {
    /// when, UTC, RFC 3339
    pub at: String,
    /// what was used: `hmac-sha256`
    pub method: String,
    /// fingerprint of the key (HMAC of a fixed text under it, 16 hex): which key, not the key
    pub key_id: String,
    /// each metadata field pseudonymised or removed
    pub changes: Vec<FieldChange>,
    /// each image region masked
    pub masked: Vec<MaskedRegion>,
    /// annotators whose names were replaced by pseudonyms in the annotations shipped with it
    #[serde(default)]
    pub annotators_pseudonymised: usize,
}

/// Where a scan's pixels come from. A projected threat does not change this: see
/// [`Provenance::projections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// a scan of real traffic
    Real,
    /// a real scan of a staged bag (threats placed on purpose)
    Staged,
    /// generated by a program
    Synthetic,
}

impl Source {
    /// The word used in files and reports.
    pub fn word(self) -> &'static str {
        match self {
            Source::Real => "real",
            Source::Staged => "staged",
            Source::Synthetic => "synthetic",
        }
    }
}

/// The generator run that made a synthetic scan: enough to make it again bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorRecord {
    /// generator name (`borderlens-nii`)
    pub name: String,
    /// generator version (the crate version)
    pub version: String,
    /// the run's seed
    pub seed: u64,
    /// the scan's index in the run (its own stream is derived from seed and index)
    pub index: u64,
    /// every parameter of the run
    pub params: GeneratorParams,
}

/// Provenance, licence and redistribution of a scan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// real, staged or synthetic
    pub source: Source,
    /// the generator run, for synthetic scans
    pub generator: Option<GeneratorRecord>,
    /// threats projected into this scan (threat image projection), in order
    #[serde(default)]
    pub projections: Vec<ProjectionRecord>,
    /// licence of the images and metadata (SPDX id or text)
    pub licence: String,
    /// whether the licence allows giving the scan to another administration
    pub redistributable: bool,
    /// the 8-bit rendering its pixels were approximated from, when the scanner's transmission
    /// was not available (`nii import-scans --renderings`; [`crate::rendering`])
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rendering: Option<crate::rendering::RenderingRecord>,
}

impl Provenance {
    /// Whether the scan may be counted as real traffic: real, and nothing projected into it.
    pub fn counts_as_real(&self) -> bool {
        self.source == Source::Real && self.projections.is_empty()
    }

    /// Whether the scan's true objects are known: the generator drew it, or threats were
    /// projected into it (then a view without truth is a true negative).
    pub fn knows_truth(&self) -> bool {
        self.source == Source::Synthetic || !self.projections.is_empty()
    }

    /// The share a report counts it in: `real`, `staged`, `synthetic`, or `projected` when a
    /// threat was projected into it (whatever its base).
    pub fn share(&self) -> &'static str {
        if self.projections.is_empty() {
            self.source.word()
        } else {
            "projected"
        }
    }
}

/// How a true object came to be known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TruthSource {
    /// drawn by the generator
    Generator,
    /// written by threat image projection
    Projection,
}

/// An object whose position is known exactly (generated or projected), with its mask value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthObject {
    /// class name (`knife`, `gun`, ...)
    pub class: String,
    /// box in the view's pixels
    pub bbox: BoxPx,
    /// main material
    pub material: String,
    /// in-plane rotation, degrees
    pub rotation_deg: f64,
    /// which view the box is in (index into `views`)
    pub view: usize,
    /// value of the object's pixels in the scan's mask (1..=255); 0 when it has no mask
    pub mask_value: u8,
    /// generator or projection
    pub source: TruthSource,
}

/// One scan of the library: a line of `catalogue.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanRecord {
    /// metadata
    pub metadata: Metadata,
    /// views with their energy channels
    pub views: Vec<View>,
    /// provenance, licence, redistribution
    pub provenance: Provenance,
    /// objects known exactly (synthetic or projected)
    #[serde(default)]
    pub truth: Vec<TruthObject>,
    /// 8-bit mask of the true objects in the first view (0 background, `mask_value` per object)
    pub mask: Option<ImageRef>,
    /// what the generator put in (clutter density, materials), for the diversity report
    #[serde(default)]
    pub clutter: Option<ClutterSummary>,
    /// present once the scan was anonymised: what was changed (the scan is then in its
    /// anonymised form; see [`ScanRecord::privacy_problem`])
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymisation: Option<AnonymisationLog>,
}

/// What clutter a generated scan holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClutterSummary {
    /// clutter objects per 10,000 px² of the cargo's inner area (the parameter drawn)
    pub density: f64,
    /// clutter objects drawn
    pub objects: usize,
    /// objects per material family (`organic`, `inorganic`, `metal`)
    pub by_family: Vec<(String, usize)>,
}

/// A metadata or record problem: the field (dotted path) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// dotted path of the field, e.g. `metadata.container_id` or `truth[2].bbox`
    pub field: String,
    /// what is wrong
    pub reason: String,
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A scan id: 1–128 characters of letters, digits, `-`, `_` and `.`, not starting with `.` (it
/// names files and folders in exports).
pub fn check_scan_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("scan id '{id}' must have 1 to 128 characters"));
    }
    // A scan id names folders and files of exports: `..` or `.x` would be a parent or a hidden
    // entry.
    if id.starts_with('.') {
        return Err(format!("scan id '{id}' may not start with '.'"));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "scan id '{id}' has {c:?}; only letters, digits, '-', '_' and '.' are allowed"
        ));
    }
    Ok(())
}

fn is_sha256_hex(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ScanRecord {
    /// Checks what the types cannot: identifiers and their check digits, date, resolution,
    /// weights, views (1 or 2 channels, one per energy, same size), hashes, boxes inside the
    /// image, mask values. Returns the first problem with its field.
    pub fn validate(&self) -> Result<(), FieldError> {
        let m = &self.metadata;
        check_scan_id(&m.scan_id).map_err(|e| err("metadata.scan_id", e))?;
        chrono::NaiveDateTime::parse_from_str(&m.scanned_at, "%Y-%m-%dT%H:%M:%S").map_err(|e| {
            err(
                "metadata.scanned_at",
                format!(
                    "'{}' is not a date and time like 2026-03-01T10:15:00 ({e})",
                    m.scanned_at
                ),
            )
        })?;
        if !(m.mm_per_pixel.is_finite() && m.mm_per_pixel > 0.0 && m.mm_per_pixel <= 1000.0) {
            return Err(err(
                "metadata.mm_per_pixel",
                format!(
                    "{} is not a resolution in (0, 1000] mm per pixel",
                    m.mm_per_pixel
                ),
            ));
        }
        if let Some(id) = &m.container_id {
            ContainerNumber::parse(id).map_err(|e| err("metadata.container_id", e.to_string()))?;
        }
        if let Some(id) = &m.package_id {
            S10ItemId::parse(id).map_err(|e| err("metadata.package_id", e.to_string()))?;
        }
        for (name, value) in [
            ("metadata.weight_kg", m.weight_kg),
            ("metadata.volume_m3", m.volume_m3),
        ] {
            if let Some(v) = value {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(err(name, format!("{v} is not a non-negative number")));
                }
            }
        }
        for (name, value) in [
            ("metadata.origin", &m.origin),
            ("metadata.destination", &m.destination),
        ] {
            if let Some(code) = value {
                if !(code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase())) {
                    return Err(err(
                        name,
                        format!("'{code}' is not a two-letter country code"),
                    ));
                }
            }
        }
        if self.provenance.licence.trim().is_empty() {
            return Err(err(
                "provenance.licence",
                "is empty; every scan needs a licence",
            ));
        }
        match (self.provenance.source, &self.provenance.generator) {
            (Source::Synthetic, None) => {
                return Err(err(
                    "provenance.generator",
                    "a synthetic scan must record its generator run (parameters and seed)",
                ))
            }
            (Source::Real | Source::Staged, Some(_)) => {
                return Err(err(
                    "provenance.generator",
                    "only a synthetic scan has a generator run",
                ))
            }
            _ => {}
        }
        if let Some(log) = &self.anonymisation {
            if let Some(f) = self.personal_fields_present().first() {
                return Err(err(
                    format!("metadata.{}", f.name),
                    format!(
                        "the scan is marked anonymised (key {}) but this field holds a value that is not a pseudonym",
                        log.key_id
                    ),
                ));
            }
            for (i, m) in log.masked.iter().enumerate() {
                if m.view >= self.views.len() {
                    return Err(err(
                        format!("anonymisation.masked[{i}].view"),
                        format!("no view {}", m.view),
                    ));
                }
            }
        }
        if self.views.is_empty() {
            return Err(err("views", "a scan has at least one view"));
        }
        for (v, view) in self.views.iter().enumerate() {
            let field = format!("views[{v}].channels");
            if view.channels.is_empty() || view.channels.len() > 2 {
                return Err(err(
                    field,
                    format!(
                        "{} channels; a view has one or two energies",
                        view.channels.len()
                    ),
                ));
            }
            if view.channels.len() == 2 && view.channels[0].energy == view.channels[1].energy {
                return Err(err(field, "two channels of the same energy"));
            }
            for (c, channel) in view.channels.iter().enumerate() {
                if !is_sha256_hex(&channel.image.sha256) {
                    return Err(err(
                        format!("views[{v}].channels[{c}].image.sha256"),
                        format!("'{}' is not a lower-case hex SHA-256", channel.image.sha256),
                    ));
                }
                let first = &view.channels[0].image;
                if (channel.image.width, channel.image.height) != (first.width, first.height) {
                    return Err(err(
                        format!("views[{v}].channels[{c}].image"),
                        "the energies of a view differ in size",
                    ));
                }
            }
        }
        if let Some(mask) = &self.mask {
            if !is_sha256_hex(&mask.sha256) {
                return Err(err(
                    "mask.sha256",
                    format!("'{}' is not a lower-case hex SHA-256", mask.sha256),
                ));
            }
            let first = &self.views[0].channels[0].image;
            if (mask.width, mask.height) != (first.width, first.height) {
                return Err(err("mask", "the mask differs in size from the first view"));
            }
        }
        for (i, object) in self.truth.iter().enumerate() {
            let Some(view) = self.views.get(object.view) else {
                return Err(err(
                    format!("truth[{i}].view"),
                    format!("no view {}", object.view),
                ));
            };
            let image = &view.channels[0].image;
            if !object.bbox.inside(image.width, image.height) {
                return Err(err(
                    format!("truth[{i}].bbox"),
                    format!(
                        "box {:?} lies outside the {} × {} image",
                        <[f64; 4]>::from(object.bbox),
                        image.width,
                        image.height
                    ),
                ));
            }
            if object.class.trim().is_empty() {
                return Err(err(format!("truth[{i}].class"), "is empty"));
            }
        }
        Ok(())
    }

    /// The personal fields of [`PERSONAL_FIELDS`] that hold a value that is not a pseudonym
    /// (on a synthetic scan, only those that count on synthetic scans).
    pub fn personal_fields_present(&self) -> Vec<&'static PersonalField> {
        let synthetic = self.provenance.source == Source::Synthetic;
        PERSONAL_FIELDS
            .iter()
            .filter(|f| f.synthetic_too || !synthetic)
            .filter(|f| {
                self.metadata
                    .personal(f.name)
                    .is_some_and(|v| f.treatment == Treatment::Remove || !is_pseudonym(v, f.kind))
            })
            .collect()
    }

    /// Why this scan may not leave the administration as it is, or `None` when it may:
    /// personal data in its metadata, or a real or staged scan not anonymised (its images may
    /// show burned-in text or a driver's cab, which only a person can judge, and its declared
    /// contents are the sender's free text).
    pub fn privacy_problem(&self) -> Option<String> {
        let present = self.personal_fields_present();
        if !present.is_empty() {
            let names: Vec<&str> = present.iter().map(|f| f.name).collect();
            return Some(format!(
                "metadata field(s) {} hold personal data; anonymise it (a key, and masks of image regions where needed)",
                names.join(", ")
            ));
        }
        if self.provenance.source != Source::Synthetic && self.anonymisation.is_none() {
            return Some(format!(
                "a {} scan that was not anonymised (its images may show burned-in text or a driver's cab); anonymise it with a key, and masks where needed",
                self.provenance.source.word()
            ));
        }
        None
    }

    /// Whether the scan may be shared as far as personal data goes (see
    /// [`ScanRecord::privacy_problem`]); the licence is another question.
    pub fn anonymised(&self) -> bool {
        self.privacy_problem().is_none()
    }

    /// Every image the record references (channels, then the mask).
    pub fn images(&self) -> Vec<(String, &ImageRef)> {
        let mut out = Vec::new();
        for (v, view) in self.views.iter().enumerate() {
            for (c, channel) in view.channels.iter().enumerate() {
                out.push((format!("views[{v}].channels[{c}].image"), &channel.image));
            }
        }
        if let Some(mask) = &self.mask {
            out.push(("mask".to_string(), mask));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_fields_lists_every_field_of_the_metadata_in_order() {
        // every listed name is a field (unknown fields are refused) ...
        let mut json = serde_json::Map::new();
        for field in METADATA_FIELDS {
            let value = match field {
                "mm_per_pixel" | "weight_kg" | "volume_m3" => serde_json::json!(1.0),
                "cargo_type" => serde_json::json!("parcel"),
                "risk_flags" | "actions" => serde_json::json!(["x"]),
                _ => serde_json::json!("x"),
            };
            json.insert(field.to_string(), value);
        }
        let metadata: Metadata = serde_json::from_value(serde_json::Value::Object(json)).unwrap();
        // ... and every field is listed, in the struct's order (serialised in that order)
        let text = serde_json::to_string(&metadata).unwrap();
        let mut at = 0;
        for field in METADATA_FIELDS {
            let found = text[at..]
                .find(&format!("\"{field}\":"))
                .unwrap_or_else(|| panic!("{field} missing or out of order in {text}"));
            at += found;
        }
        let keys = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&text)
            .unwrap()
            .len();
        assert_eq!(keys, METADATA_FIELDS.len());
    }

    #[test]
    fn scan_ids_that_would_name_a_parent_or_hidden_folder_are_refused() {
        for good in ["syn-7-000000", "a.b", "A_1", "x"] {
            assert!(check_scan_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(check_scan_id(bad).is_err(), "{bad}");
        }
    }
}
