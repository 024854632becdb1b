//! Jobs of the selection loop: policies, selection, overrides, control results, estimates, and
//! the trace of one declaration (`explain-decision`).

use std::collections::{BTreeMap, HashMap};

use borderlens_controls::{exchange, FieldError, FormSchema, Submission, ValidationErrors};
use borderlens_domain::rng::Rng;
use borderlens_domain::{DecisionSource, DeclarationItem, ItemKey, Lane, RecordStatus};
use borderlens_selection::batch::{self, Batch, Batching, Member};
use borderlens_selection::estimate::{self, RateEstimate, StratumCount};
use borderlens_selection::policy::{decide, Candidate, Policy};
use borderlens_store::{
    Backend, ItemFilter, NewControlResult, NewDecision, StoredControlResult, StoredDecision,
};
use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::Serialize;
use sha2::Digest;

use crate::{explain, ExplainReport, ExplainRequest, JobError, Progress};

/// Validates a policy file and saves it as the next version of its name (or returns the
/// current version when unchanged).
pub fn save_policy(store: &mut dyn Backend, json: &str) -> Result<(String, u32), JobError> {
    let policy = Policy::from_json(json).map_err(|e| JobError::Invalid(e.to_string()))?;
    let version = store.save_policy(&policy.name, &policy.to_json())?;
    Ok((policy.name, version))
}

/// Loads a stored policy.
pub fn load_policy(
    store: &dyn Backend,
    name: &str,
    version: Option<u32>,
) -> Result<(Policy, u32), JobError> {
    let (version, body) = store.load_policy(name, version)?.ok_or_else(|| {
        JobError::NotFound(format!(
            "no policy '{name}'{}: save one with `borderlens policy set FILE`",
            version.map(|v| format!(" version {v}")).unwrap_or_default()
        ))
    })?;
    let policy = Policy::from_json(&body).map_err(|e| JobError::Invalid(e.to_string()))?;
    Ok((policy, version))
}

/// Which declarations to decide on, with what.
pub struct SelectRequest {
    /// Policy name (latest version).
    pub policy: String,
    /// Model name (latest version) that scores.
    pub model: String,
    /// First date.
    pub from: NaiveDate,
    /// Last date.
    pub to: NaiveDate,
    /// Seed of the random draws.
    pub seed: u64,
    /// One batch per office and day (else one per day): the capacity applies per batch, so a
    /// share rounds down to nothing at offices with a handful of declarations a day.
    pub per_office: bool,
}

/// One batch's outcome.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct BatchReport {
    /// Batch name (`DATE`, or `DATE office OFFICE`).
    pub batch: String,
    /// Declarations.
    pub declarations: usize,
    /// Per lane.
    pub lanes: BTreeMap<String, usize>,
    /// Per source.
    pub sources: BTreeMap<String, usize>,
}

/// The selection report.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SelectReport {
    /// Policy and version used.
    pub policy: String,
    /// Version.
    pub policy_version: u32,
    /// Model and version used.
    pub model: String,
    /// Version.
    pub model_version: u32,
    /// Per batch.
    pub batches: Vec<BatchReport>,
    /// Declarations of the period skipped because they were decided before.
    pub already_decided: usize,
}

/// Scores the period's declarations and decides each batch (one day, or one office-day) with the
/// policy; records every decision with π, stratum, policy and model versions, and the item it
/// was made on (the declaration's riskiest item, or the one a campaign covers). A declaration is
/// decided once: those decided before are skipped, and late arrivals for a day already decided
/// form a batch of their own (`DATE late 2`).
pub fn select(
    store: &mut dyn Backend,
    request: &SelectRequest,
    progress: &dyn Progress,
) -> Result<SelectReport, JobError> {
    let (policy, policy_version) = load_policy(store, &request.policy, None)?;
    let score = crate::score(
        store,
        &crate::ScoreRequest {
            model: request.model.clone(),
            version: None,
            from: Some(request.from),
            to: Some(request.to),
            // The top reasons are saved with the scores, for the officers' queue.
            explain: true,
            top_reasons: 3,
            rate: 5,
        },
        progress,
    )?;
    let scores: HashMap<(String, u32), f64> = score
        .items
        .iter()
        .map(|s| ((s.declaration_id.clone(), s.item_no), s.score))
        .collect();
    let items = store.items(&ItemFilter {
        from: Some(request.from),
        to: Some(request.to),
        labelled_only: false,
    })?;
    let scored = items.into_iter().map(|item| {
        let s = scores
            .get(&(item.key.declaration_id.clone(), item.key.item_no))
            .copied()
            .unwrap_or(f64::NAN);
        (item, s)
    });
    // One member per declaration and batch, on the item a campaign covers or else the riskiest;
    // declarations already decided (in any batch) are not decided again.
    let grouped = batch::group(
        scored,
        Batching::per_office(request.per_office),
        &policy,
        |id: &str| store.is_decided(id),
    )?;
    let mut reports = Vec::new();
    let mut to_record = Vec::new();
    for Batch { key, members } in &grouped.batches {
        // Declarations that arrive after their day was decided form a batch of their own.
        let name = batch::undecided_name(&key.name(), |name: &str| store.batch_decided(name))?;
        let mut report = BatchReport {
            batch: name.clone(),
            declarations: members.len(),
            lanes: BTreeMap::new(),
            sources: BTreeMap::new(),
        };
        let candidates: Vec<Candidate> = members
            .iter()
            .map(|member| Candidate {
                item: &member.item,
                score: member.score,
            })
            .collect();
        let mut rng = Rng::new(batch::batch_seed(request.seed, &name));
        for (Member { item, score: s }, decision) in
            members.iter().zip(decide(&policy, &candidates, &mut rng))
        {
            *report.lanes.entry(decision.lane.name().into()).or_default() += 1;
            *report
                .sources
                .entry(decision.source.name().into())
                .or_default() += 1;
            to_record.push(NewDecision {
                declaration_id: item.key.declaration_id.clone(),
                item_no: Some(item.key.item_no),
                batch: name.clone(),
                policy_name: policy.name.clone(),
                policy_version,
                model_name: Some(score.model.clone()),
                model_version: Some(score.version),
                score: s.is_finite().then_some(*s),
                pi: decision.pi,
                stratum: decision.stratum,
                lane: decision.lane,
                source: decision.source,
                reasons: decision.reasons,
            });
        }
        reports.push(report);
    }
    if progress.interrupted() {
        return Err(JobError::Interrupted);
    }
    store.record_decisions(&to_record)?;
    Ok(SelectReport {
        policy: policy.name,
        policy_version,
        model: score.model,
        model_version: score.version,
        batches: reports,
        already_decided: grouped.already_decided,
    })
}

/// FNV-1a of `text`, for seeds and derived ids (with the batches' seeds in `selection`).
pub use borderlens_selection::batch::stable_hash;

/// Fewest visible characters of an override reason (white space and invisible format
/// characters, such as zero-width spaces, not counted): the page's form asks for as many.
pub const MIN_OVERRIDE_REASON_CHARS: usize = 5;
/// Most characters of an override reason (the page's form allows as many).
pub const MAX_OVERRIDE_REASON_CHARS: usize = 1000;

/// Whether `c` shows nothing by itself: the invisible format characters (Unicode category Cf:
/// soft hyphen, zero-width space and joiners, directional marks and isolates, word joiner,
/// byte order mark, tags...), variation selectors, the combining grapheme joiner and the Hangul
/// fillers. They neither count towards a reason's length nor are trimmed off as white space by
/// `str::trim`.
pub(crate) fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{AD}'
            | '\u{34F}'
            | '\u{61C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// Checks an override reason and returns it as it is kept: white space and invisible
/// characters trimmed off both ends, the rest as typed. Refused (naming the field `reason`):
/// control characters other than line breaks and tabs (a NUL, an escape...), fewer than
/// [`MIN_OVERRIDE_REASON_CHARS`] visible characters, more than [`MAX_OVERRIDE_REASON_CHARS`].
pub fn check_override_reason(reason: &str) -> Result<String, JobError> {
    let refused = |why: String| JobError::Refused {
        what: "override".to_string(),
        errors: ValidationErrors(vec![FieldError::new("reason", why)]),
    };
    if let Some(c) = reason
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(refused(format!(
            "control character U+{:04X} is not allowed (only letters, digits, punctuation, \
             spaces, tabs and line breaks)",
            u32::from(c)
        )));
    }
    let kept = reason.trim_matches(|c: char| c.is_whitespace() || is_invisible(c));
    let visible = kept
        .chars()
        .filter(|c| !c.is_whitespace() && !is_invisible(*c))
        .count();
    if visible == 0 {
        return Err(refused(
            "a reason is mandatory: say why the lane changes".to_string(),
        ));
    }
    if visible < MIN_OVERRIDE_REASON_CHARS {
        return Err(refused(format!(
            "{visible} visible characters, at least {MIN_OVERRIDE_REASON_CHARS} needed: say why \
             the lane changes"
        )));
    }
    let chars = kept.chars().count();
    if chars > MAX_OVERRIDE_REASON_CHARS {
        return Err(refused(format!(
            "{chars} characters, at most {MAX_OVERRIDE_REASON_CHARS} allowed"
        )));
    }
    Ok(kept.to_string())
}

/// Records an officer's override with its mandatory reason, checked by
/// [`check_override_reason`] (and kept trimmed) before anything is written.
pub fn override_decision(
    store: &mut dyn Backend,
    declaration_id: &str,
    lane: Lane,
    reason: &str,
) -> Result<StoredDecision, JobError> {
    let reason = check_override_reason(reason)?;
    Ok(store.override_decision(declaration_id, lane, &reason)?)
}

/// What recording one result did.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RecordReport {
    /// Stored id.
    pub id: i64,
    /// `recorded` or `duplicate` (already stored, nothing changed).
    pub status: RecordStatus,
    /// Submission id.
    pub submission_id: String,
    /// Declaration.
    pub declaration_id: String,
    /// Outcome code.
    pub outcome: String,
    /// Label it gives: `compliant`, `fraud`, `critical fraud`, or none.
    #[schemars(extend("enum" = ["compliant", "fraud", "critical fraud", null]))]
    pub label: Option<String>,
}

/// A control label in words: `compliant`, `fraud` or `critical fraud`.
pub(crate) fn label_words(label: Option<borderlens_domain::ControlLabel>) -> Option<String> {
    label.map(|l| match (l.fraud, l.critical) {
        (false, _) => "compliant".to_string(),
        (true, 2) => "critical fraud".to_string(),
        (true, _) => "fraud".to_string(),
    })
}

fn store_result(
    store: &mut dyn Backend,
    schema: &FormSchema,
    result: &borderlens_controls::ControlResult,
    source: &str,
) -> Result<RecordReport, JobError> {
    let label = result.label(schema);
    // Serialised once, here: the stored text and its SHA-256 are what a retry is compared by.
    let payload = result.to_json();
    let recorded = store.record_control_result(&NewControlResult {
        submission_id: result.submission_id().to_string(),
        declaration_id: result.declaration_id().to_string(),
        schema_version: result.schema_version().to_string(),
        outcome: result.outcome().to_string(),
        label,
        payload_json: payload,
        source: source.to_string(),
    })?;
    Ok(RecordReport {
        id: recorded.id(),
        status: recorded.status(),
        submission_id: result.submission_id().to_string(),
        declaration_id: result.declaration_id().to_string(),
        outcome: result.outcome().to_string(),
        label: label_words(label),
    })
}

fn refused(errors: ValidationErrors) -> JobError {
    JobError::Refused {
        what: "control result".to_string(),
        errors,
    }
}

/// Reads a submission that came as JSON (an HTTP body) against the built-in form: the
/// envelope's shape only, every problem named (the answers' too) when it is wrong. The answers
/// are validated when the submission is recorded ([`record_control_submission`]).
pub fn read_control_submission(json: serde_json::Value) -> Result<Submission, JobError> {
    FormSchema::builtin().read_submission(json).map_err(refused)
}

/// Validates one submission against the built-in form and stores it, with the label it implies,
/// idempotently by submission id; every bad field is named. The edges build the submission:
/// from JSON ([`read_control_submission`], [`record_control_result`]) or from answers typed as
/// text ([`borderlens_controls::coerce`]).
pub fn record_control_submission(
    store: &mut dyn Backend,
    submission: &Submission,
    source: &str,
) -> Result<RecordReport, JobError> {
    let schema = FormSchema::builtin();
    let result = schema.validate(submission).map_err(refused)?;
    store_result(store, schema, &result, source)
}

/// Validates one submission given as JSON text (see docs/controls.md) against the built-in form
/// and stores it: the text is parsed once into a [`Submission`], then as
/// [`record_control_submission`].
pub fn record_control_result(
    store: &mut dyn Backend,
    submission_json: &str,
    source: &str,
) -> Result<RecordReport, JobError> {
    let value: serde_json::Value = serde_json::from_str(submission_json).map_err(|e| {
        refused(ValidationErrors(vec![FieldError::new(
            "",
            format!("not valid JSON: {e}"),
        )]))
    })?;
    let submission = read_control_submission(value)?;
    record_control_submission(store, &submission, source)
}

/// Outcome of a bulk import.
#[derive(Clone, Debug, Serialize)]
pub struct ControlImportReport {
    /// File.
    pub file: String,
    /// Stored now.
    pub recorded: usize,
    /// Already stored (idempotent).
    pub duplicates: usize,
    /// Refused, with the reason (record number and field).
    pub rejected: Vec<String>,
    /// The sender, when the file was another administration's anonymised exchange document:
    /// its results were stored as foreign results (pooled statistics), not as this store's.
    pub foreign_sender: Option<String>,
}

/// Imports control results in bulk: an exchange document (`"format":
/// "borderlens-control-results"`) or JSON lines of submissions. Each result is validated and
/// stored on its own (idempotent by submission id), so a retry after a failure doubles nothing.
///
/// An anonymised exchange document is another administration's: its results name declarations
/// by the sender's pseudonyms, so they are stored whole, in one transaction, as foreign results
/// with their provenance ([`crate::pooled`]), where pooled statistics read them.
pub fn import_control_results(
    store: &mut dyn Backend,
    file: &str,
    text: &str,
) -> Result<ControlImportReport, JobError> {
    let schema = FormSchema::builtin();
    let mut report = ControlImportReport {
        file: file.to_string(),
        recorded: 0,
        duplicates: 0,
        rejected: Vec::new(),
        foreign_sender: None,
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') && trimmed.contains("\"format\"") {
        let document = exchange::import_document(text, schema)
            .map_err(|e| JobError::Invalid(format!("{file}: {e}")))?;
        if document.anonymised {
            let stored = crate::pooled::store_foreign_document(store, file, text, &document)?;
            report.recorded = stored.recorded;
            report.duplicates = stored.duplicates;
            report.foreign_sender = Some(document.sender);
            return Ok(report);
        }
    }
    let mut tally = |outcome: Result<RecordReport, JobError>, at: String| match outcome {
        Ok(r) if r.status == RecordStatus::Duplicate => report.duplicates += 1,
        Ok(_) => report.recorded += 1,
        Err(e) => report.rejected.push(format!("{file}: {at}: {e}")),
    };
    if trimmed.starts_with('{') && trimmed.contains("\"format\"") {
        let results = exchange::import(text, schema)
            .map_err(|e| JobError::Invalid(format!("{file}: {e}")))?;
        let source = format!("exchange:{file}");
        for (i, result) in results.iter().enumerate() {
            tally(
                store_result(store, schema, result, &source),
                format!("results[{i}]"),
            );
        }
    } else {
        let source = format!("import:{file}");
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let outcome = schema
                .parse_submission(line)
                .map_err(|e| JobError::Invalid(format!("refused: {e}")))
                .and_then(|result| store_result(store, schema, &result, &source));
            tally(outcome, format!("line {}", i + 1));
        }
    }
    Ok(report)
}

/// An exchange document made from this store's control results ([`export_control_results`]),
/// with what the audit log keeps of it once it is written ([`audit_control_export`]).
#[derive(Clone, Debug)]
pub struct ControlExport {
    /// The document (JSON).
    pub json: String,
    /// The sending administration's code.
    pub sender: String,
    /// Results in it.
    pub results: usize,
    /// Whether ids were pseudonymised and officer, place, remarks and identifiers dropped.
    pub anonymised: bool,
    /// SHA-256 of `json`, hex.
    pub sha256: String,
    /// When it was made (UTC, RFC 3339).
    pub generated_at: String,
}

/// Exports every stored control result as an exchange document, anonymised with `key` when
/// given. Each result carries its declaration's context (origin, route, HS chapter, the
/// selection probability of its design decision: [`crate::pooled::declaration_context`]), so
/// that a partner can pool hit rates by route and origin. Nothing is written: before the
/// document goes anywhere, [`audit_control_export`] records that it leaves the store.
pub fn export_control_results(
    store: &dyn Backend,
    sender: &str,
    key: Option<&[u8]>,
) -> Result<ControlExport, JobError> {
    let schema = FormSchema::builtin();
    let mut results = Vec::new();
    let mut contexts = Vec::new();
    for stored in store.control_results()? {
        let result = schema
            .read_stored(&stored.result.payload_json)
            .map_err(|e| JobError::Invalid(format!("stored result {}: {e}", stored.id)))?;
        contexts.push(crate::pooled::declaration_context(
            store,
            result.declaration_id(),
        )?);
        results.push(result);
    }
    let key = key
        .map(exchange::AnonymiseKey::new)
        .transpose()
        .map_err(|e| JobError::Invalid(e.to_string()))?;
    let now = chrono::Utc::now();
    let anonymised = key.is_some();
    let document =
        exchange::export_with_context(schema, &results, &contexts, sender, key.as_ref(), now)
            .map_err(|e| JobError::Invalid(e.to_string()))?;
    let json = document.to_json();
    Ok(ControlExport {
        sha256: borderlens_domain::hex::encode(&sha2::Sha256::digest(json.as_bytes())),
        json,
        sender: sender.to_string(),
        results: results.len(),
        anonymised,
        generated_at: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// The audit action of a control-results export ([`audit_control_export`]).
pub const CONTROLS_EXPORT: &str = "controls_export";

/// A control-results export as the audit log keeps it ([`control_exports`]).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ExportRecord {
    /// When it was written (UTC).
    pub at: String,
    /// Who wrote it.
    pub actor: String,
    /// The sending administration's code.
    pub sender: String,
    /// Results in it.
    pub results: u64,
    /// Whether it was anonymised.
    pub anonymised: bool,
    /// SHA-256 of the document.
    pub sha256: String,
    /// Where it was written.
    pub destination: String,
}

/// The control-results exports in this store's audit log (the latest `limit`), newest
/// first: what this administration shared.
pub fn control_exports(store: &dyn Backend, limit: usize) -> Result<Vec<ExportRecord>, JobError> {
    Ok(store
        .audit_entries_of(CONTROLS_EXPORT, limit)?
        .into_iter()
        .filter(|e| e.action == CONTROLS_EXPORT)
        .map(|e| {
            let detail: serde_json::Value =
                serde_json::from_str(&e.detail_json).unwrap_or_default();
            ExportRecord {
                at: e.at,
                actor: e.actor,
                sender: e.subject,
                results: detail["results"].as_u64().unwrap_or_default(),
                anonymised: detail["anonymised"].as_bool().unwrap_or(false),
                sha256: detail["sha256"].as_str().unwrap_or_default().to_string(),
                destination: detail["destination"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect())
}

/// Records in the audit log that `export` leaves the store for `destination` (a file): what
/// the manager's federation page lists as shared. Called before the document is written, so
/// that none leaves unrecorded (a write that then fails leaves the record of an attempt).
pub fn audit_control_export(
    store: &mut dyn Backend,
    export: &ControlExport,
    destination: &str,
) -> Result<(), JobError> {
    let actor = store.actor().to_string();
    let detail = serde_json::json!({
        "results": export.results,
        "anonymised": export.anonymised,
        "sha256": export.sha256,
        "generated_at": export.generated_at,
        "destination": destination,
    });
    store.append_audit(&actor, CONTROLS_EXPORT, &export.sender, &detail.to_string())?;
    Ok(())
}

/// Non-compliance estimates from the recorded decisions and results.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct EstimateReport {
    /// Overall: Horvitz–Thompson when every declaration had π > 0, else absent.
    pub overall: Option<RateEstimate>,
    /// hits / inspected, whatever the selection.
    pub naive: RateEstimate,
    /// Decided declarations covered.
    pub declarations: usize,
    /// Design selections still waiting for a result (treated as missing at random).
    pub pending: usize,
    /// Overrides (not part of the design; their results are kept out of the estimate).
    pub overrides: usize,
    /// Per segment value, for the dimension asked.
    pub segments: Vec<SegmentEstimate>,
    /// Dimension of the segments.
    pub dimension: String,
}

/// One segment's estimate.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct SegmentEstimate {
    /// Segment value.
    pub segment: String,
    /// Estimate, when possible.
    pub estimate: Option<RateEstimate>,
    /// Naive estimate.
    pub naive: RateEstimate,
}

/// Segment dimensions estimates can be split by.
pub const DIMENSIONS: [&str; 4] = ["origin", "office", "hs_chapter", "transport_mode"];

fn dimension_value(item: &DeclarationItem, dimension: &str) -> String {
    match dimension {
        "origin" => item.origin_country.clone(),
        "office" => item.office_id.clone(),
        "hs_chapter" => item.hs6.as_str()[..2].to_string(),
        "transport_mode" => item.transport_mode.clone(),
        _ => String::new(),
    }
}

/// Estimates the non-compliance rate overall and by segment from the design selections
/// (campaign, risk, random, explore) and their results — recorded control results, or the label
/// imported with the declaration; overrides are kept out.
pub fn estimates(
    store: &dyn Backend,
    dimension: &str,
    confidence: f64,
) -> Result<EstimateReport, JobError> {
    if !DIMENSIONS.contains(&dimension) {
        return Err(JobError::Invalid(format!(
            "unknown dimension '{dimension}': use one of {}",
            DIMENSIONS.join(", ")
        )));
    }
    let decisions = store.decisions(None)?;
    let mut outcome = outcomes(store)?;
    let overrides = decisions.iter().filter(|d| d.overrides.is_some()).count();
    let design: Vec<&StoredDecision> = decisions.iter().filter(|d| d.overrides.is_none()).collect();
    let mut items: HashMap<String, DeclarationItem> = HashMap::new();
    for d in &design {
        if !items.contains_key(&d.decision.declaration_id) {
            if let Some(item) = store.item(&ItemKey {
                declaration_id: d.decision.declaration_id.clone(),
                item_no: 1,
            })? {
                items.insert(d.decision.declaration_id.clone(), item);
            }
        }
    }
    // Declarations whose control result came in with the data (imported labels) count too.
    for (id, item) in &items {
        if let Some(label) = item.label {
            outcome.entry(id.clone()).or_insert(label.fraud);
        }
    }
    let segment_of = |d: &StoredDecision| {
        items
            .get(&d.decision.declaration_id)
            .map(|i| dimension_value(i, dimension))
            .unwrap_or_default()
    };
    let is_design = |d: &StoredDecision| d.decision.source.is_design_selection();
    // The design's strata over every decided declaration: (batch, stratum) → counts. A design
    // selection without a result stays in its stratum's population but not among the inspected
    // (missing at random within the stratum).
    let mut strata: BTreeMap<(&str, &str), StratumCount> = BTreeMap::new();
    let (mut inspected, mut hits, mut pending) = (0, 0, 0);
    for d in &design {
        let s = strata
            .entry((d.decision.batch.as_str(), d.decision.stratum.as_str()))
            .or_insert(StratumCount {
                population: 0,
                inspected: 0,
                hits: 0,
            });
        s.population += 1;
        if is_design(d) {
            match outcome.get(&d.decision.declaration_id) {
                Some(&hit) => {
                    s.inspected += 1;
                    s.hits += usize::from(hit);
                    inspected += 1;
                    hits += usize::from(hit);
                }
                None => pending += 1,
            }
        }
    }
    let all: Vec<StratumCount> = strata.values().cloned().collect();
    let overall = estimate::horvitz_thompson(&all, confidence);
    let naive = estimate::naive(inspected, hits, design.len(), confidence);
    // Segments are domains of the whole design: within each full stratum, y = hit × (in the
    // segment), so the stratum's sampling rate (n_h/N_h over all its members) is the one used,
    // not the handful of draws that fell in the segment.
    let mut groups: BTreeMap<String, Vec<&StoredDecision>> = BTreeMap::new();
    for d in &design {
        groups.entry(segment_of(d)).or_default().push(d);
    }
    let segments = groups
        .into_iter()
        .map(|(segment, members)| {
            let mut domain: BTreeMap<(&str, &str), StratumCount> = BTreeMap::new();
            let (mut seg_inspected, mut seg_hits) = (0, 0);
            for d in &members {
                let key = (d.decision.batch.as_str(), d.decision.stratum.as_str());
                let entry = domain.entry(key).or_insert_with(|| StratumCount {
                    hits: 0,
                    ..strata[&key].clone()
                });
                if is_design(d) {
                    if let Some(&hit) = outcome.get(&d.decision.declaration_id) {
                        entry.hits += usize::from(hit);
                        seg_inspected += 1;
                        seg_hits += usize::from(hit);
                    }
                }
            }
            let counts: Vec<StratumCount> = domain.into_values().collect();
            let covered: usize = counts.iter().map(|c| c.population).sum();
            let estimate = estimate::horvitz_thompson(&counts, confidence).map(|e| {
                let scale = covered as f64 / members.len() as f64;
                RateEstimate {
                    rate: (e.rate * scale).min(1.0),
                    low: (e.low * scale).min(1.0),
                    high: (e.high * scale).min(1.0),
                    population: members.len(),
                    inspected: seg_inspected,
                    hits: seg_hits,
                    ..e
                }
            });
            SegmentEstimate {
                segment,
                estimate,
                naive: estimate::naive(seg_inspected, seg_hits, members.len(), confidence),
            }
        })
        .collect();
    Ok(EstimateReport {
        overall,
        naive,
        declarations: design.len(),
        pending,
        overrides,
        segments,
        dimension: dimension.to_string(),
    })
}

/// Latest outcome per declaration from the stored control results (hit = fraud found; results
/// without a label are ignored).
fn outcomes(store: &dyn Backend) -> Result<HashMap<String, bool>, JobError> {
    let mut out = HashMap::new();
    for r in store.control_results()? {
        if let Some(label) = r.result.label {
            let hit = out.entry(r.result.declaration_id.clone()).or_insert(false);
            *hit |= label.fraud;
        }
    }
    Ok(out)
}

/// Everything known about why a declaration was (not) controlled and what was found.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DecisionTrace {
    /// Declaration.
    pub declaration_id: String,
    /// The item explained: the one the selection decided on ([`DecisionTrace::decided_item`]);
    /// item 1 for a declaration not decided yet, or decided before the decided item was
    /// recorded (schema version 6).
    #[schemars(range(min = 1))]
    pub item_no: u32,
    /// The item the selection decided on, as recorded with the decision; `None` when not
    /// decided yet or decided before it was recorded.
    pub decided_item: Option<u32>,
    /// Items of the declaration.
    pub items: u32,
    /// The declared HS code and goods descriptions of `item_no`, verbatim, side by side (shown
    /// whether or not a model has scored it).
    pub goods: crate::GoodsText,
    /// Derived, beside `goods` and never over it: what the shipped HS model reads the sender's
    /// description as, its mismatch with the declared code, the sender-vs-cleaned disagreement;
    /// computed when read, with the model's id.
    pub hs_reading: crate::HsReading,
    /// Score, contributions and counterfactual of `item_no` by the model that decided; for a
    /// declaration not decided yet, by the newest model in the registry; absent when there is
    /// no model.
    pub explanation: Option<ExplainReport>,
    /// Decisions and overrides, oldest first.
    pub decisions: Vec<DecisionEntry>,
    /// Control results, oldest first.
    pub results: Vec<ResultEntry>,
    /// The label stored on `item_no`.
    pub label: Option<String>,
}

/// One decision entry.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct DecisionEntry {
    /// Id.
    pub id: i64,
    /// When.
    pub at: String,
    /// Who.
    pub actor: String,
    /// Batch.
    pub batch: String,
    /// The item decided on (copied by an override); `None` for decisions recorded before
    /// schema version 6.
    pub item_no: Option<u32>,
    /// `name@version`.
    pub policy: String,
    /// `name@version` of the model.
    pub model: Option<String>,
    /// Score.
    pub score: Option<f64>,
    /// Inclusion probability.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub pi: f64,
    /// Stratum.
    pub stratum: String,
    /// Lane.
    pub lane: Lane,
    /// Source (`override` for overrides).
    pub source: DecisionSource,
    /// Reasons.
    pub reasons: Vec<String>,
    /// The overridden decision, for an override.
    pub overrides: Option<i64>,
    /// The officer's reason, for an override.
    pub override_reason: Option<String>,
}

impl From<StoredDecision> for DecisionEntry {
    fn from(d: StoredDecision) -> DecisionEntry {
        DecisionEntry {
            id: d.id,
            at: d.at,
            actor: d.actor,
            batch: d.decision.batch,
            item_no: d.decision.item_no,
            policy: format!("{}@{}", d.decision.policy_name, d.decision.policy_version),
            model: d
                .decision
                .model_name
                .zip(d.decision.model_version)
                .map(|(n, v)| format!("{n}@{v}")),
            score: d.decision.score,
            pi: d.decision.pi,
            stratum: d.decision.stratum,
            lane: d.decision.lane,
            source: d.decision.source,
            reasons: d.decision.reasons,
            overrides: d.overrides,
            override_reason: d.override_reason,
        }
    }
}

/// One control result entry.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ResultEntry {
    /// Id.
    pub id: i64,
    /// Submission id.
    pub submission_id: String,
    /// When stored.
    pub recorded_at: String,
    /// Who.
    pub recorded_by: String,
    /// Outcome code.
    pub outcome: String,
    /// Label.
    pub label: Option<String>,
    /// Where it came from.
    pub source: String,
    /// The recorded answers.
    pub values: serde_json::Value,
}

/// The item a declaration's decisions were made on: the one recorded with its design decision
/// (an override copies it); `None` when not decided, or decided before the item was recorded.
pub(crate) fn decided_item(decisions: &[StoredDecision]) -> Option<u32> {
    decisions
        .iter()
        .find(|d| d.overrides.is_none())
        .and_then(|d| d.decision.item_no)
}

/// How many items `declaration_id` has (0 when it is not stored).
pub(crate) fn item_count(store: &dyn Backend, declaration_id: &str) -> Result<u32, JobError> {
    let items = store
        .declaration(declaration_id)?
        .map_or(0, |declaration| declaration.items().len());
    Ok(u32::try_from(items).unwrap_or(u32::MAX))
}

/// The trace of one declaration: score, contributions, π, policy, overrides and outcome, of the
/// item the selection decided on (item 1 when not decided, or decided before the item was
/// recorded).
pub fn explain_decision(
    store: &dyn Backend,
    declaration_id: &str,
) -> Result<DecisionTrace, JobError> {
    let decisions = store.decisions_for(declaration_id)?;
    let decided = decided_item(&decisions);
    let item = store
        .item(&ItemKey {
            declaration_id: declaration_id.to_string(),
            item_no: decided.unwrap_or(1),
        })?
        .ok_or_else(|| {
            JobError::NotFound(format!("no declaration '{declaration_id}' in the store"))
        })?;
    let items = item_count(store, declaration_id)?.max(item.key.item_no);
    // The model that decided; for a declaration not decided yet, the newest model in the registry.
    let deciding = decisions
        .iter()
        .find_map(|d| d.decision.model_name.clone().zip(d.decision.model_version))
        .or_else(|| {
            store.list_models().ok().and_then(|models| {
                models
                    .into_iter()
                    .max_by(|a, b| a.created_at.cmp(&b.created_at))
                    .map(|m| (m.name, m.version))
            })
        });
    let explanation = match deciding {
        Some((model, version)) => Some(
            explain(
                store,
                &ExplainRequest {
                    model,
                    version: Some(version),
                    key: item.key.clone(),
                    rate: 5,
                },
            )?
            .0,
        ),
        None => None,
    };
    let results: Vec<StoredControlResult> = store.control_results_for(declaration_id)?;
    Ok(DecisionTrace {
        declaration_id: declaration_id.to_string(),
        item_no: item.key.item_no,
        decided_item: decided,
        items,
        goods: crate::GoodsText::of(&item),
        // The explanation carries the same reading: read once.
        hs_reading: match &explanation {
            Some(e) => e.hs_reading.clone(),
            None => crate::hs_reading::item_hs_reading(store, &item)?,
        },
        explanation,
        decisions: decisions.into_iter().map(DecisionEntry::from).collect(),
        results: results
            .into_iter()
            .map(|r| ResultEntry {
                id: r.id,
                submission_id: r.result.submission_id,
                recorded_at: r.recorded_at,
                recorded_by: r.recorded_by,
                outcome: r.result.outcome,
                label: label_words(r.result.label),
                source: r.result.source,
                values: serde_json::from_str::<serde_json::Value>(&r.result.payload_json)
                    .ok()
                    .and_then(|v| v.get("values").cloned())
                    .unwrap_or(serde_json::Value::Null),
            })
            .collect(),
        label: label_words(item.label),
    })
}

#[cfg(test)]
mod tests;
