//! The X-ray library's pages over the desk's library: the browser with filters on every
//! metadata field and the provenance, a scan's viewer data (metadata, views, raw 16-bit
//! channels, every source's objects as layers), the review queue of disputed objects and the
//! reviewer's decision, and the quality report. The rules (consensus, review) are
//! `borderlens_nii`'s; this module selects, counts and records.

use std::collections::{BTreeMap, BTreeSet};

use borderlens_nii::consensus::{resolve_view, AnnotatedObject, ConsensusOptions, ResolvedView};
use borderlens_nii::guideline;
use borderlens_nii::library::{check_annotation_on, AnnotationRecord, AnnotationRole, Library};
use borderlens_nii::report::{quality_report, QualityReport};
use borderlens_nii::scan::{Energy, METADATA_FIELDS, PERSONAL_FIELDS};
use borderlens_nii::ScanRecord;
use serde::Serialize;

use crate::nii_desk::{folder_name, invalid, lock, nii, record_of, MAX_REVIEW_SECONDS};
use crate::{JobError, NiiDesk};

/// Scans on one page of the browser.
pub const BROWSE_PAGE: usize = 100;
/// A field with at most this many distinct values is offered as a list in the filters.
const LIST_AT_MOST: usize = 40;

/// The browser's filters: `field` → text, every one to hold. A metadata field (any of
/// [`METADATA_FIELDS`]) matches when its value contains the text, case aside (a list field when
/// one item does), or equals it when the field is offered as a list (few values, never a
/// personal field); `share` (real, staged, synthetic, projected), `licence`, `redistributable`
/// and `anonymised` (yes/no) filter the provenance; `class` a label of the truth or the
/// consensus; `annotation` the state (`none`, `annotated`, `disputed` with an open dispute,
/// `reviewed`).
#[derive(Clone, Debug, Default)]
pub struct ScanFilter {
    /// `(field, text)` pairs; empty texts are ignored
    pub terms: Vec<(String, String)>,
    /// page, from 0
    pub page: usize,
}

/// The provenance and annotation filters, beside the metadata fields.
pub const OTHER_FILTERS: [&str; 6] = [
    "share",
    "licence",
    "redistributable",
    "anonymised",
    "class",
    "annotation",
];

/// Every field the browser filters on: the metadata fields, then [`OTHER_FILTERS`].
pub fn scan_filter_fields() -> Vec<&'static str> {
    METADATA_FIELDS
        .iter()
        .chain(OTHER_FILTERS.iter())
        .copied()
        .collect()
}

/// One filter of the browser's form: a list of the values found, or free text.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FilterField {
    /// the field's name
    pub name: String,
    /// the values found in the library, when few enough to list
    pub values: Option<Vec<String>>,
    /// the text the filter holds now
    pub current: String,
}

/// One scan in the browser.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct BrowsedScan {
    /// scan id
    pub scan_id: String,
    /// date and time
    pub scanned_at: String,
    /// parcel, bag, container
    pub cargo_type: String,
    /// scanner model
    pub scanner_model: String,
    /// scanning location
    pub location: Option<String>,
    /// container or postal item id
    pub container_or_package: Option<String>,
    /// real, staged, synthetic or projected
    pub share: String,
    /// licence
    pub licence: String,
    /// may be given to another administration
    pub redistributable: bool,
    /// anonymised, or holds no personal data
    pub anonymised: bool,
    /// views (with energies: `2 × dual`)
    pub views: String,
    /// annotators who drew on it
    pub annotators: usize,
    /// disputed objects not decided by a current review
    pub open_disputes: usize,
    /// labels of the truth and the consensus
    pub classes: Vec<String>,
}

/// A page of the browser.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct LibraryPage {
    /// the library folder's name
    pub library: String,
    /// scans in the library
    pub total: usize,
    /// scans the filters keep
    pub matched: usize,
    /// this page (from 0) and the page count
    pub page: usize,
    /// pages
    pub pages: usize,
    /// the scans of this page
    pub scans: Vec<BrowsedScan>,
    /// the filters, metadata fields first
    pub filters: Vec<FilterField>,
}

/// One source's objects on a view of the viewer.
#[derive(Clone, Debug, Serialize)]
pub struct Layer {
    /// `annotator`, `reviewer`, `machine`, `consensus` or `truth`
    pub kind: String,
    /// who (the annotator, the model, `consensus`, `truth`)
    pub name: String,
    /// the objects
    pub objects: Vec<AnnotatedObject>,
    /// seconds the annotation took, when recorded
    pub seconds: Option<f64>,
}

/// One view of a scan in the viewer.
#[derive(Clone, Debug, Serialize)]
pub struct ViewerView {
    /// view index
    pub view: usize,
    /// view name
    pub name: String,
    /// pixels
    pub width: u32,
    /// pixels
    pub height: u32,
    /// energies held (`low`, `high`)
    pub energies: Vec<String>,
    /// every source's objects, then the consensus (after review), then the truth if known
    pub layers: Vec<Layer>,
    /// disputed objects, decided or not
    pub disputed: usize,
    /// disputed objects not decided by a current review
    pub open: usize,
}

/// The viewer's data of a scan.
#[derive(Clone, Debug, Serialize)]
pub struct ScanViewer {
    /// scan id
    pub scan_id: String,
    /// `(field, value)` of every metadata field; personal ones say "withheld" when the caller
    /// may not read them
    pub metadata: Vec<(String, String)>,
    /// `(what, value)` of the provenance
    pub provenance: Vec<(String, String)>,
    /// the privacy state (`None`: anonymised or nothing personal)
    pub privacy_problem: Option<String>,
    /// the views
    pub views: Vec<ViewerView>,
}

/// One view with disputed objects, in the review queue.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DisputedView {
    /// scan id
    pub scan_id: String,
    /// view index
    pub view: usize,
    /// annotators counted
    pub annotators: usize,
    /// disputed objects
    pub disputed: usize,
    /// of which no current review decided
    pub open: usize,
    /// the reasons, one per disputed object
    pub reasons: Vec<String>,
    /// the reviewer whose decision holds, if any
    pub reviewer: Option<String>,
    /// an annotator saved after that review
    pub stale: bool,
}

/// The review queue as the API answers it.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct DisputeQueue {
    /// disputed objects no current review decided, over every view
    pub open: usize,
    /// the views with disputed objects, those with open disputes first
    pub views: Vec<DisputedView>,
}

/// A view to review: its consensus after review, its size and the guideline's classes.
#[derive(Clone, Debug, Serialize)]
pub struct DisputeReview {
    /// scan id
    pub scan_id: String,
    /// view index
    pub view: usize,
    /// pixels
    pub width: u32,
    /// pixels
    pub height: u32,
    /// the consensus with each merged object's decision
    pub resolved: ResolvedView,
    /// lines saved on the view so far: the decision form sends it back, and a decision made
    /// on an older state is refused (another annotator or reviewer saved meanwhile)
    pub lines: usize,
    /// classes to choose from: the guideline's, then any other an annotator gave
    pub classes: Vec<String>,
}

/// A reviewer's decision on a view: the objects kept (disputed objects with the label and box
/// chosen, and objects added). Disputed objects left out are rejected.
#[derive(Clone, Debug)]
pub struct ReviewDecision {
    /// view index
    pub view: usize,
    /// the objects kept
    pub kept: Vec<AnnotatedObject>,
    /// seconds the review took
    pub seconds: Option<f64>,
    /// the lines on the view when the reviewer's page was drawn ([`DisputeReview::lines`])
    pub seen_lines: Option<usize>,
}

fn contains(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}

/// A metadata field's value as text (lists joined with `, `; absent: empty).
fn text_of(value: Option<&serde_json::Value>) -> String {
    match value {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| text_of(Some(i)))
            .collect::<Vec<_>>()
            .join(", "),
        Some(other) => other.to_string(),
    }
}

fn is_personal(field: &str) -> bool {
    PERSONAL_FIELDS.iter().any(|p| p.name == field)
}

/// The lines of each (scan, view), in the order they were saved.
fn lines_by_view(library: &Library) -> BTreeMap<(&str, usize), Vec<&AnnotationRecord>> {
    let mut out: BTreeMap<(&str, usize), Vec<&AnnotationRecord>> = BTreeMap::new();
    for line in library.annotations() {
        out.entry((line.scan_id.as_str(), line.view))
            .or_default()
            .push(line);
    }
    out
}

fn resolved_of(lines: Option<&Vec<&AnnotationRecord>>) -> ResolvedView {
    resolve_view(
        lines.map_or(&[][..], |l| l.as_slice()),
        &ConsensusOptions::default(),
    )
}

/// What the browser knows of a scan beyond its record.
struct Facts {
    annotators: BTreeSet<String>,
    open: usize,
    reviewed: bool,
    classes: BTreeSet<String>,
}

fn facts_of(record: &ScanRecord, lines: &BTreeMap<(&str, usize), Vec<&AnnotationRecord>>) -> Facts {
    let mut facts = Facts {
        annotators: BTreeSet::new(),
        open: 0,
        reviewed: false,
        classes: record.truth.iter().map(|t| t.class.clone()).collect(),
    };
    for view in 0..record.views.len() {
        let Some(view_lines) = lines.get(&(record.metadata.scan_id.as_str(), view)) else {
            continue;
        };
        let resolved = resolved_of(Some(view_lines));
        facts.annotators.extend(resolved.annotators.iter().cloned());
        facts.open += resolved.open();
        facts.reviewed |= resolved.reviewer.is_some();
        facts
            .classes
            .extend(resolved.objects().into_iter().map(|o| o.label));
    }
    facts
}

fn annotation_state(facts: &Facts) -> &'static str {
    if facts.annotators.is_empty() {
        "none"
    } else if facts.open > 0 {
        "disputed"
    } else if facts.reviewed {
        "reviewed"
    } else {
        "annotated"
    }
}

/// The value a non-metadata filter reads (see [`ScanFilter`]).
fn other_value(record: &ScanRecord, facts: &Facts, field: &str) -> Vec<String> {
    match field {
        "share" => vec![record.provenance.share().to_string()],
        "licence" => vec![record.provenance.licence.clone()],
        "redistributable" => vec![yes_no(record.provenance.redistributable).to_string()],
        "anonymised" => vec![yes_no(record.privacy_problem().is_none()).to_string()],
        "class" => facts.classes.iter().cloned().collect(),
        "annotation" => vec![annotation_state(facts).to_string()],
        _ => Vec::new(),
    }
}

impl NiiDesk {
    /// A page of the library browser: the scans every filter keeps, in catalogue order.
    /// Filters on personal fields are refused to a caller who may not read them.
    pub fn browse(&self, filter: &ScanFilter, personal: bool) -> Result<LibraryPage, JobError> {
        let library = self.library()?;
        let terms: Vec<(&str, &str)> = filter
            .terms
            .iter()
            .map(|(f, v)| (f.as_str(), v.trim()))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        for (field, _) in &terms {
            if !METADATA_FIELDS.contains(field) && !OTHER_FILTERS.contains(field) {
                return Err(JobError::Invalid(format!(
                    "{field}: no such field to filter on (metadata: {}; also {})",
                    METADATA_FIELDS.join(", "),
                    OTHER_FILTERS.join(", ")
                )));
            }
            if is_personal(field) && !personal {
                return Err(JobError::Invalid(format!(
                    "{field}: a personal field; your role may not filter on it"
                )));
            }
        }
        let lines = lines_by_view(&library);
        let mut values: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut scanned = Vec::new();
        for record in library.records() {
            let json = serde_json::to_value(&record.metadata).map_err(nii)?;
            let facts = facts_of(record, &lines);
            let mut texts: Vec<(&str, Vec<String>)> = Vec::new();
            for field in METADATA_FIELDS {
                let value = match json.get(field) {
                    Some(serde_json::Value::Array(items)) => {
                        items.iter().map(|i| text_of(Some(i))).collect()
                    }
                    other => vec![text_of(other)],
                };
                texts.push((field, value));
            }
            for field in OTHER_FILTERS {
                texts.push((field, other_value(record, &facts, field)));
            }
            for (field, value) in &texts {
                let set = values.entry(field).or_default();
                if set.len() <= LIST_AT_MOST {
                    set.extend(value.iter().filter(|v| !v.is_empty()).cloned());
                }
            }
            scanned.push((record, facts, texts));
        }
        // A field offered as a list (few values; never a personal one, whose values are not
        // listed in bulk) matches a value exactly, case aside; any other, as a substring.
        let listed = |field: &str| {
            field != "scan_id"
                && !is_personal(field)
                && values.get(field).is_some_and(|v| v.len() <= LIST_AT_MOST)
        };
        let mut kept = Vec::new();
        for (record, facts, texts) in scanned {
            let keep = terms.iter().all(|(field, wanted)| {
                let exact = listed(field);
                texts
                    .iter()
                    .find(|(f, _)| f == field)
                    .is_some_and(|(_, value)| {
                        value.iter().any(|v| {
                            if exact {
                                v.to_lowercase() == wanted.to_lowercase()
                            } else {
                                contains(v, wanted)
                            }
                        })
                    })
            });
            if keep {
                kept.push((record, facts));
            }
        }
        let matched = kept.len();
        let pages = matched.div_ceil(BROWSE_PAGE).max(1);
        let page = filter.page.min(pages - 1);
        let scans = kept
            .into_iter()
            .skip(page * BROWSE_PAGE)
            .take(BROWSE_PAGE)
            .map(|(r, facts)| {
                let m = &r.metadata;
                let dual = r.views.iter().filter(|v| v.channels.len() == 2).count();
                BrowsedScan {
                    scan_id: m.scan_id.clone(),
                    scanned_at: m.scanned_at.clone(),
                    cargo_type: m.cargo_type.word().to_string(),
                    scanner_model: m.scanner_model.clone(),
                    location: m.location.clone(),
                    container_or_package: m.container_id.clone().or(m.package_id.clone()),
                    share: r.provenance.share().to_string(),
                    licence: r.provenance.licence.clone(),
                    redistributable: r.provenance.redistributable,
                    anonymised: r.privacy_problem().is_none(),
                    views: if dual == r.views.len() {
                        format!("{} × dual energy", r.views.len())
                    } else {
                        format!("{} ({dual} dual energy)", r.views.len())
                    },
                    annotators: facts.annotators.len(),
                    open_disputes: facts.open,
                    classes: facts.classes.into_iter().collect(),
                }
            })
            .collect();
        let current = |name: &str| {
            terms
                .iter()
                .find(|(f, _)| *f == name)
                .map_or(String::new(), |(_, v)| v.to_string())
        };
        let filters = METADATA_FIELDS
            .iter()
            .filter(|f| personal || !is_personal(f))
            .chain(OTHER_FILTERS.iter())
            .map(|name| FilterField {
                name: name.to_string(),
                values: listed(name)
                    .then(|| values.get(name).cloned().unwrap_or_default())
                    .map(|v| v.into_iter().collect()),
                current: current(name),
            })
            .collect();
        Ok(LibraryPage {
            library: folder_name(&self.config().library),
            total: library.records().len(),
            matched,
            page,
            pages,
            scans,
            filters,
        })
    }

    /// The viewer's data of a scan: metadata (personal fields withheld unless `personal`),
    /// provenance, and per view every source's objects as layers.
    pub fn viewer(&self, scan_id: &str, personal: bool) -> Result<ScanViewer, JobError> {
        let library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let json = serde_json::to_value(&record.metadata).map_err(nii)?;
        let metadata = METADATA_FIELDS
            .iter()
            .map(|field| {
                let value = text_of(json.get(*field));
                let shown = if is_personal(field) && !personal && !value.is_empty() {
                    "withheld (personal)".to_string()
                } else {
                    value
                };
                (field.to_string(), shown)
            })
            .collect();
        let p = &record.provenance;
        let mut provenance = vec![
            ("source".to_string(), p.source.word().to_string()),
            ("counted as".to_string(), p.share().to_string()),
            ("licence".to_string(), p.licence.clone()),
            (
                "redistributable".to_string(),
                yes_no(p.redistributable).to_string(),
            ),
        ];
        if let Some(g) = &p.generator {
            provenance.push((
                "generator".to_string(),
                format!(
                    "{} {}, seed {}, scan {}",
                    g.name, g.version, g.seed, g.index
                ),
            ));
        }
        if let Some(r) = &p.rendering {
            provenance.push((
                "pixels".to_string(),
                format!(
                    "approximated from an 8-bit {} {} rendering ({}), not the scanner's transmission",
                    if r.colour { "pseudo-colour" } else { "gray" },
                    r.format.to_uppercase(),
                    r.method
                ),
            ));
        }
        for (i, projection) in p.projections.iter().enumerate() {
            provenance.push((
                format!("projection {}", i + 1),
                serde_json::to_string(projection).map_err(nii)?,
            ));
        }
        let lines = lines_by_view(&library);
        let views = record
            .views
            .iter()
            .enumerate()
            .map(|(v, view)| {
                let image = &view.channels[0].image;
                let view_lines = lines.get(&(scan_id, v));
                let mut layers = Vec::new();
                // each source's latest line, in the order they were saved
                let mut latest: Vec<&AnnotationRecord> = Vec::new();
                for line in view_lines.into_iter().flatten() {
                    latest.retain(|l| !(l.annotator == line.annotator && l.role == line.role));
                    latest.push(line);
                }
                for line in latest {
                    let kind = match line.role {
                        AnnotationRole::Annotator => "annotator",
                        AnnotationRole::Reviewer => "reviewer",
                        AnnotationRole::Machine => "machine",
                    };
                    layers.push(Layer {
                        kind: kind.into(),
                        name: line.annotator.clone(),
                        objects: line.objects.clone(),
                        seconds: line.seconds,
                    });
                }
                let resolved = resolved_of(view_lines);
                if !resolved.annotators.is_empty() {
                    layers.push(Layer {
                        kind: "consensus".into(),
                        name: "consensus".into(),
                        objects: resolved.objects(),
                        seconds: None,
                    });
                }
                if record.provenance.knows_truth() {
                    layers.push(Layer {
                        kind: "truth".into(),
                        name: "truth".into(),
                        objects: record
                            .truth
                            .iter()
                            .filter(|t| t.view == v)
                            .map(|t| AnnotatedObject {
                                label: t.class.clone(),
                                bbox: t.bbox,
                                score: 1.0,
                            })
                            .collect(),
                        seconds: None,
                    });
                }
                ViewerView {
                    view: v,
                    name: view.name.clone(),
                    width: image.width,
                    height: image.height,
                    energies: view
                        .channels
                        .iter()
                        .map(|c| c.energy.word().to_string())
                        .collect(),
                    layers,
                    disputed: resolved.disputed(),
                    open: resolved.open(),
                }
            })
            .collect();
        Ok(ScanViewer {
            scan_id: scan_id.to_string(),
            metadata,
            provenance,
            privacy_problem: record.privacy_problem(),
            views,
        })
    }

    /// One energy channel of a view as raw 16-bit transmission: `(width, height, samples as
    /// little-endian u16)`, for the viewer's window and level.
    pub fn channel(
        &self,
        scan_id: &str,
        view: usize,
        energy: Energy,
    ) -> Result<(u32, u32, Vec<u8>), JobError> {
        let library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let Some(v) = record.views.get(view) else {
            return Err(JobError::NotFound(format!(
                "scan '{scan_id}' has no view {view}"
            )));
        };
        let Some(channel) = v.channels.iter().find(|c| c.energy == energy) else {
            return Err(JobError::NotFound(format!(
                "scan '{scan_id}' view {view} has no {} energy channel",
                energy.word()
            )));
        };
        let image = library.read_image(&channel.image).map_err(nii)?;
        let mut bytes = Vec::with_capacity(image.data.len() * 2);
        for sample in &image.data {
            bytes.extend_from_slice(&sample.to_le_bytes());
        }
        Ok((image.width, image.height, bytes))
    }

    /// The review queue: every view with disputed objects, those with open disputes first.
    pub fn disputes(&self) -> Result<Vec<DisputedView>, JobError> {
        let library = self.library()?;
        let mut out = Vec::new();
        for ((scan_id, view), lines) in lines_by_view(&library) {
            let resolved = resolved_of(Some(&lines));
            if resolved.disputed() == 0 {
                continue;
            }
            out.push(DisputedView {
                scan_id: scan_id.to_string(),
                view,
                annotators: resolved.annotators.len(),
                disputed: resolved.disputed(),
                open: resolved.open(),
                reasons: resolved
                    .merged
                    .iter()
                    .filter(|(m, _)| m.disputed())
                    .map(|(m, _)| format!("{}: {}", m.label, m.disputes.join("; ")))
                    .collect(),
                reviewer: resolved.reviewer.clone(),
                stale: resolved.stale,
            });
        }
        // open first; then catalogue (id) order
        out.sort_by_key(|d| d.open == 0);
        Ok(out)
    }

    /// The review queue with its count of open objects (the API's answer).
    pub fn dispute_queue(&self) -> Result<DisputeQueue, JobError> {
        let views = self.disputes()?;
        Ok(DisputeQueue {
            open: views.iter().map(|d| d.open).sum(),
            views,
        })
    }

    /// A view to review: its consensus after review and the classes to choose from.
    pub fn dispute(&self, scan_id: &str, view: usize) -> Result<DisputeReview, JobError> {
        let library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let Some(v) = record.views.get(view) else {
            return Err(JobError::NotFound(format!(
                "scan '{scan_id}' has no view {view}"
            )));
        };
        let lines = lines_by_view(&library);
        let view_lines = lines.get(&(scan_id, view));
        let resolved = resolved_of(view_lines);
        let mut classes = guideline::current(&library).map_err(nii)?.names();
        for line in library.annotations() {
            for o in &line.objects {
                if !classes.contains(&o.label) {
                    classes.push(o.label.clone());
                }
            }
        }
        Ok(DisputeReview {
            scan_id: scan_id.to_string(),
            view,
            width: v.channels[0].image.width,
            height: v.channels[0].image.height,
            resolved,
            classes,
            lines: view_lines.map_or(0, Vec::len),
        })
    }

    /// Records a reviewer's decision on a view as a reviewer line (its own source). Checked in
    /// full first; an error names the object and field.
    pub fn resolve(
        &self,
        scan_id: &str,
        reviewer: &str,
        decision: ReviewDecision,
    ) -> Result<ResolvedView, JobError> {
        let _writer = lock(&self.writer);
        let mut library = self.library()?;
        let record = record_of(&library, scan_id)?;
        // A reviewer decides disputes; a view without one has nothing to decide (and a
        // reviewer line there would silently override the annotators' agreed consensus).
        let lines: Vec<&AnnotationRecord> = library
            .annotations()
            .iter()
            .filter(|l| l.scan_id == scan_id && l.view == decision.view)
            .collect();
        if resolved_of(Some(&lines)).disputed() == 0 {
            return Err(JobError::Invalid(format!(
                "view {} of scan '{scan_id}' has no disputed object to decide",
                decision.view
            )));
        }
        if let Some(seen) = decision.seen_lines {
            let now = lines.len();
            if now != seen {
                return Err(JobError::Invalid(format!(
                    "the annotations of this view changed since the page was drawn ({seen} \
                     line(s) then, {now} now: another annotator or reviewer saved): look at it \
                     again and decide"
                )));
            }
        }
        let line = AnnotationRecord {
            scan_id: scan_id.to_string(),
            annotator: reviewer.to_string(),
            role: AnnotationRole::Reviewer,
            view: decision.view,
            objects: decision.kept,
            seconds: decision
                .seconds
                .filter(|s| s.is_finite() && (0.0..=MAX_REVIEW_SECONDS).contains(s)),
            guideline: Some(guideline::current(&library).map_err(nii)?.version),
            review: None,
        };
        check_annotation_on(record, &line)
            .map_err(|(field, reason)| invalid(format!("{field}: {reason}")))?;
        library.add_annotation(line).map_err(nii)?;
        let lines = lines_by_view(&library);
        Ok(resolved_of(lines.get(&(scan_id, decision.view))))
    }

    /// The quality report of the desk's library.
    pub fn quality(&self) -> Result<QualityReport, JobError> {
        Ok(quality_report(&self.library()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nii_desk::tests_support::desk;
    use borderlens_nii::BoxPx;

    fn obj(label: &str, b: [f64; 4]) -> AnnotatedObject {
        AnnotatedObject {
            label: label.into(),
            bbox: BoxPx::new(b[0], b[1], b[2], b[3]).unwrap(),
            score: 1.0,
        }
    }

    fn filter(terms: &[(&str, &str)]) -> ScanFilter {
        ScanFilter {
            terms: terms
                .iter()
                .map(|(f, v)| (f.to_string(), v.to_string()))
                .collect(),
            page: 0,
        }
    }

    fn annotate(desk: &NiiDesk, scan: &str, who: &str, objects: Vec<AnnotatedObject>) {
        let mut library = desk.library().unwrap();
        library
            .add_annotation(AnnotationRecord {
                scan_id: scan.into(),
                annotator: who.into(),
                role: AnnotationRole::Annotator,
                view: 0,
                objects,
                seconds: Some(5.0),
                guideline: None,
                review: None,
            })
            .unwrap();
    }

    #[test]
    fn the_browser_filters_on_metadata_provenance_and_annotation_state() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        let all = desk.browse(&ScanFilter::default(), true).unwrap();
        assert_eq!((all.total, all.matched, all.scans.len()), (12, 12, 12));
        let first = all.scans[0].scan_id.clone();
        // a metadata field, case aside, as a substring
        let one = desk
            .browse(&filter(&[("scan_id", &first.to_uppercase())]), true)
            .unwrap();
        assert_eq!(one.matched, 1);
        assert_eq!(one.scans[0].scan_id, first);
        // every metadata field is offered (personal ones only to who may read them)
        let names: Vec<&str> = all.filters.iter().map(|f| f.name.as_str()).collect();
        assert!(METADATA_FIELDS.iter().all(|f| names.contains(f)));
        let limited = desk.browse(&ScanFilter::default(), false).unwrap();
        assert!(!limited.filters.iter().any(|f| f.name == "consignee_name"));
        let refused = desk
            .browse(&filter(&[("consignee_name", "x")]), false)
            .unwrap_err();
        assert!(refused.to_string().contains("consignee_name"), "{refused}");
        let unknown = desk
            .browse(&filter(&[("colour", "red")]), true)
            .unwrap_err();
        assert!(
            unknown.to_string().starts_with("colour: no such field"),
            "{unknown}"
        );
        // provenance and the annotation state
        assert_eq!(
            desk.browse(&filter(&[("share", "real")]), true)
                .unwrap()
                .matched,
            0
        );
        assert_eq!(
            desk.browse(&filter(&[("share", "synthetic")]), true)
                .unwrap()
                .matched,
            12
        );
        annotate(
            &desk,
            &first,
            "a",
            vec![obj("knife", [0.0, 0.0, 10.0, 10.0])],
        );
        annotate(
            &desk,
            &first,
            "b",
            vec![obj("blade", [0.0, 0.0, 10.0, 10.0])],
        );
        let disputed = desk
            .browse(&filter(&[("annotation", "disputed")]), true)
            .unwrap();
        assert_eq!(disputed.matched, 1);
        assert_eq!(disputed.scans[0].open_disputes, 1);
        assert_eq!(disputed.scans[0].annotators, 2);
        assert_eq!(
            desk.browse(&filter(&[("annotation", "none")]), true)
                .unwrap()
                .matched,
            11
        );
        // a field offered as a list matches a whole value (case aside); free text, a part
        assert_eq!(
            desk.browse(&filter(&[("cargo_type", "PARCEL")]), true)
                .unwrap()
                .matched,
            12
        );
        assert_eq!(
            desk.browse(&filter(&[("cargo_type", "parc")]), true)
                .unwrap()
                .matched,
            0
        );
        assert_eq!(
            desk.browse(&filter(&[("scan_id", "syn-1-")]), true)
                .unwrap()
                .matched,
            12
        );
        // two filters must both hold
        assert_eq!(
            desk.browse(
                &filter(&[("annotation", "disputed"), ("share", "real")]),
                true
            )
            .unwrap()
            .matched,
            0
        );
    }

    #[test]
    fn a_reviewers_decision_closes_the_dispute_and_the_consensus_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        let scan = desk.library().unwrap().records()[2]
            .metadata
            .scan_id
            .clone();
        assert!(desk.disputes().unwrap().is_empty());
        // nothing disputed yet: no decision to record
        let early = desk.resolve(
            &scan,
            "rev",
            ReviewDecision {
                view: 0,
                kept: Vec::new(),
                seconds: None,
                seen_lines: None,
            },
        );
        assert!(
            early
                .unwrap_err()
                .to_string()
                .contains("no disputed object"),
            "refused"
        );
        annotate(
            &desk,
            &scan,
            "a",
            vec![obj("knife", [0.0, 0.0, 10.0, 10.0])],
        );
        annotate(
            &desk,
            &scan,
            "b",
            vec![obj("blade", [1.0, 0.0, 11.0, 10.0])],
        );
        let queue = desk.disputes().unwrap();
        assert_eq!(queue.len(), 1);
        assert_eq!((queue[0].disputed, queue[0].open), (1, 1));
        assert!(
            queue[0].reasons[0].contains("labels differ"),
            "{:?}",
            queue[0].reasons
        );
        let review = desk.dispute(&scan, 0).unwrap();
        assert!(review.classes.contains(&"knife".to_string()));
        assert_eq!(review.lines, 2);
        let open = |desk: &NiiDesk| desk.quality().unwrap().agreement.unwrap().open;
        assert_eq!(open(&desk), 1, "the quality report counts the open dispute");
        // a decision on a page drawn before another annotator saved is refused
        let older = desk.resolve(
            &scan,
            "rev",
            ReviewDecision {
                view: 0,
                kept: Vec::new(),
                seconds: None,
                seen_lines: Some(1),
            },
        );
        assert!(
            older
                .unwrap_err()
                .to_string()
                .contains("changed since the page was drawn"),
            "refused"
        );
        // a box outside the view is refused by its field, and nothing is written
        let outside = desk.resolve(
            &scan,
            "rev",
            ReviewDecision {
                view: 0,
                kept: vec![obj("knife", [0.0, 0.0, 500.0, 10.0])],
                seconds: None,
                seen_lines: None,
            },
        );
        assert!(outside
            .unwrap_err()
            .to_string()
            .starts_with("objects[0].bbox"));
        assert_eq!(desk.disputes().unwrap()[0].open, 1);
        let resolved = desk
            .resolve(
                &scan,
                "rev",
                ReviewDecision {
                    view: 0,
                    kept: vec![obj("knife", [0.5, 0.0, 10.5, 10.0])],
                    seconds: Some(12.0),
                    seen_lines: Some(review.lines),
                },
            )
            .unwrap();
        assert_eq!(resolved.open(), 0);
        assert_eq!(open(&desk), 0);
        let queue = desk.disputes().unwrap();
        assert_eq!(
            (queue[0].open, queue[0].reviewer.as_deref()),
            (0, Some("rev"))
        );
        // the viewer's consensus layer holds the reviewer's object
        let viewer = desk.viewer(&scan, true).unwrap();
        let consensus = viewer.views[0]
            .layers
            .iter()
            .find(|l| l.kind == "consensus")
            .unwrap();
        assert_eq!(
            consensus.objects,
            vec![obj("knife", [0.5, 0.0, 10.5, 10.0])]
        );
        let kinds: Vec<&str> = viewer.views[0]
            .layers
            .iter()
            .map(|l| l.kind.as_str())
            .collect();
        assert_eq!(
            kinds,
            ["annotator", "annotator", "reviewer", "consensus", "truth"]
        );
        // a raw channel: two bytes per pixel
        let (w, h, bytes) = desk.channel(&scan, 0, Energy::High).unwrap();
        assert_eq!(bytes.len(), 2 * (w * h) as usize);
        let missing = desk.channel(&scan, 3, Energy::High).unwrap_err();
        assert!(missing.to_string().contains("no view 3"), "{missing}");
    }
}
