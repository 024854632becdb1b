//! What the officer pages show, each gathered from the store in one call: the day's risk queue,
//! a declaration with everything known about it, the dashboard's figures and the audit log.
//! The server renders these; the numbers come from the same jobs the CLI runs.

use std::collections::{BTreeMap, BTreeSet};

use borderlens_domain::{DecisionSource, ItemKey, Lane};
use borderlens_monitor::bias::{BiasAudit, BiasOptions};
use borderlens_monitor::drift::{DriftReport, Series};
use borderlens_store::{AuditEntry, Backend};
use chrono::{Duration, NaiveDate};
use schemars::JsonSchema;
use serde::Serialize;

use crate::cache::Lru;
use crate::decisions::{explain_decision, DecisionTrace};
use crate::reports::EvaluationReport;
use crate::{
    bias_audit, drift_report, estimates, evaluate, hit_rate_series, DriftRequest, EstimateReport,
    EvaluateRequest, JobError,
};

/// Lanes in the order a queue shows them: controls first.
pub const LANES: &[Lane] = Lane::ALL;

/// How the queue is sorted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum QueueSort {
    /// Lane (red first), then score, highest first.
    #[default]
    Lane,
    /// Score, highest first.
    Score,
    /// Selection probability π, lowest first (the rarest draws).
    Pi,
    /// Declaration id.
    Id,
}

impl QueueSort {
    /// Every sort, by name.
    pub const ALL: [(&'static str, QueueSort); 4] = [
        ("lane", QueueSort::Lane),
        ("score", QueueSort::Score),
        ("pi", QueueSort::Pi),
        ("id", QueueSort::Id),
    ];

    /// The sort called `name`.
    pub fn parse(name: &str) -> Option<QueueSort> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }
}

/// Which part of the queue to show.
#[derive(Clone, Debug, Default)]
pub struct QueueFilter {
    /// Day (`YYYY-MM-DD`); the latest decided day when absent.
    pub day: Option<String>,
    /// Only this lane.
    pub lane: Option<Lane>,
    /// Only this office.
    pub office: Option<String>,
    /// Order of the rows.
    pub sort: QueueSort,
    /// Only declarations whose id or importer id contains this text (case-insensitive; blank
    /// means all).
    pub search: Option<String>,
    /// Rows per page; all rows on one page when absent.
    pub page_size: Option<usize>,
    /// Page to show, from 1 (a page past the last shows the last).
    pub page: usize,
}

/// Longest search text the queue accepts, in characters.
pub const QUEUE_SEARCH_MAX: usize = 100;
/// Largest page size the queue accepts.
pub const QUEUE_PAGE_SIZE_MAX: usize = 500;

/// One declaration of the queue.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct QueueRow {
    /// Declaration id.
    pub declaration_id: String,
    /// Declared date.
    pub date: String,
    /// Customs office.
    pub office: String,
    /// Importer id.
    pub importer: String,
    /// HS6 code as declared.
    pub hs6: String,
    /// Country of origin as declared.
    pub origin: String,
    /// Lane in force (an override's when overridden).
    pub lane: Lane,
    /// Why it is in that lane: `risk`, `random`, `campaign`, `release`, `override`, ...
    pub source: DecisionSource,
    /// Selection probability of the design decision.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub pi: f64,
    /// Risk score of the deciding model.
    pub score: Option<f64>,
    /// Top reasons of the score, in words.
    pub reasons: Vec<String>,
    /// Whether an officer overrode the decision.
    pub overridden: bool,
    /// Outcome code of the latest control result, once recorded.
    pub outcome: Option<String>,
}

/// The day's declarations by lane and score.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Queue {
    /// The day shown (none when nothing was ever decided).
    pub day: Option<String>,
    /// Every decided day, newest first.
    pub days: Vec<String>,
    /// Offices with declarations that day.
    pub offices: Vec<String>,
    /// Declarations per lane (by name) that day, before the lane and office filters.
    pub lanes: BTreeMap<String, usize>,
    /// The rows of the page shown, filtered and sorted.
    pub rows: Vec<QueueRow>,
    /// Rows matching the lane, office and search filters, on every page.
    pub matching: usize,
    /// The page shown, from 1.
    pub page: usize,
    /// Number of pages (at least 1).
    pub pages: usize,
}

fn first_item(declaration_id: &str) -> ItemKey {
    item_key(declaration_id, 1)
}

fn item_key(declaration_id: &str, item_no: u32) -> ItemKey {
    ItemKey {
        declaration_id: declaration_id.to_string(),
        item_no,
    }
}

/// The queue of one day: every declaration decided that day with its lane, π, score, top
/// reasons and control outcome; what a row shows of the declaration is its item the selection
/// decided on (item 1 for decisions that did not record it).
pub fn queue(store: &dyn Backend, filter: &QueueFilter) -> Result<Queue, JobError> {
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    if let Some(search) = &search {
        if search.chars().count() > QUEUE_SEARCH_MAX {
            return Err(JobError::Invalid(format!(
                "search: at most {QUEUE_SEARCH_MAX} characters"
            )));
        }
        if search.chars().any(char::is_control) {
            return Err(JobError::Invalid(
                "search: control characters are not allowed".into(),
            ));
        }
    }
    if let Some(size) = filter.page_size {
        if !(1..=QUEUE_PAGE_SIZE_MAX).contains(&size) {
            return Err(JobError::Invalid(format!(
                "page size {size}: use 1 to {QUEUE_PAGE_SIZE_MAX}"
            )));
        }
    }
    let decisions = store.decisions(None)?;
    let days: BTreeSet<String> = decisions
        .iter()
        .map(|d| d.decision.batch.chars().take(10).collect())
        .collect();
    let days: Vec<String> = days.into_iter().rev().collect();
    let day = match &filter.day {
        Some(day) if days.contains(day) => Some(day.clone()),
        Some(day) => {
            return Err(JobError::NotFound(format!(
                "no declarations were decided on '{}'",
                day.chars().take(20).collect::<String>()
            )))
        }
        None => days.first().cloned(),
    };
    let Some(day) = day else {
        return Ok(Queue {
            day: None,
            days,
            offices: Vec::new(),
            lanes: BTreeMap::new(),
            rows: Vec::new(),
            matching: 0,
            page: 1,
            pages: 1,
        });
    };
    // The decisions of the day, in id order: an override comes after what it overrides.
    let mut latest: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut design: BTreeMap<String, usize> = BTreeMap::new();
    for (i, d) in decisions.iter().enumerate() {
        let id = &d.decision.declaration_id;
        let of_day = d.decision.batch.starts_with(&day);
        if d.overrides.is_some() {
            if let Some(entry) = latest.get_mut(id) {
                *entry = (i, true);
            }
        } else if of_day {
            latest.insert(id.clone(), (i, false));
            design.insert(id.clone(), i);
        }
    }
    let mut rows = Vec::with_capacity(latest.len());
    let mut offices = BTreeSet::new();
    let mut lanes: BTreeMap<String, usize> = BTreeMap::new();
    for (id, (index, overridden)) in &latest {
        let current = &decisions[*index];
        let original = &decisions[design[id]];
        let decided = original.decision.item_no.unwrap_or(1);
        let Some(item) = store.item(&item_key(id, decided))? else {
            continue;
        };
        let stored = store.scores_for(&item.key)?;
        let deciding = stored
            .iter()
            .rfind(|s| {
                Some(&s.model) == original.decision.model_name.as_ref()
                    && Some(s.version) == original.decision.model_version
            })
            .or(stored.last());
        let outcome = store
            .control_results_for(id)?
            .pop()
            .map(|r| r.result.outcome);
        offices.insert(item.office_id.clone());
        *lanes
            .entry(current.decision.lane.name().to_string())
            .or_default() += 1;
        rows.push(QueueRow {
            declaration_id: id.clone(),
            date: item.date.to_string(),
            office: item.office_id.clone(),
            importer: item.importer_id.clone(),
            hs6: item.hs6.to_string(),
            origin: item.origin_country.clone(),
            lane: current.decision.lane,
            source: current.decision.source,
            pi: original.decision.pi,
            score: original.decision.score.or(deciding.map(|s| s.score)),
            reasons: deciding.map(|s| s.reasons.clone()).unwrap_or_default(),
            overridden: *overridden,
            outcome,
        });
    }
    rows.retain(|r| {
        filter.lane.is_none_or(|lane| r.lane == lane)
            && filter
                .office
                .as_ref()
                .is_none_or(|office| &r.office == office)
            && search.as_ref().is_none_or(|text| {
                r.declaration_id.to_lowercase().contains(text)
                    || r.importer.to_lowercase().contains(text)
            })
    });
    let score = |r: &QueueRow| r.score.unwrap_or(f64::NEG_INFINITY);
    rows.sort_by(|a, b| match filter.sort {
        QueueSort::Lane => a.lane.cmp(&b.lane).then(score(b).total_cmp(&score(a))),
        QueueSort::Score => score(b).total_cmp(&score(a)),
        QueueSort::Pi => a.pi.total_cmp(&b.pi),
        QueueSort::Id => a.declaration_id.cmp(&b.declaration_id),
    });
    let matching = rows.len();
    let size = filter.page_size.unwrap_or(matching.max(1));
    let pages = matching.div_ceil(size).max(1);
    let page = filter.page.clamp(1, pages);
    let rows = rows
        .into_iter()
        .skip((page - 1) * size)
        .take(size)
        .collect();
    Ok(Queue {
        day: Some(day),
        days,
        offices: offices.into_iter().collect(),
        lanes,
        rows,
        matching,
        page,
        pages,
    })
}

/// Whether the store holds a declaration `declaration_id`.
pub fn declaration_exists(store: &dyn Backend, declaration_id: &str) -> Result<bool, JobError> {
    Ok(store.item(&first_item(declaration_id))?.is_some())
}

/// A saved score of one item of a declaration.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ItemScore {
    /// Item number.
    pub item_no: u32,
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u32,
    /// Calibrated probability.
    pub score: f64,
    /// When saved.
    pub scored_at: String,
    /// Top reasons in words, when saved with them.
    pub reasons: Vec<String>,
}

/// Every saved score of every item of `declaration_id`, by item then model version; 404 for an
/// unknown declaration.
pub fn declaration_scores(
    store: &dyn Backend,
    declaration_id: &str,
) -> Result<Vec<ItemScore>, JobError> {
    let declaration = store.declaration(declaration_id)?.ok_or_else(|| {
        JobError::NotFound(format!("no declaration '{declaration_id}' in the store"))
    })?;
    let mut out = Vec::new();
    for item in declaration.items() {
        let item_no = item.key.item_no;
        out.extend(store.scores_for(&item.key)?.into_iter().map(|s| ItemScore {
            item_no,
            model: s.model,
            version: s.version,
            score: s.score,
            scored_at: s.scored_at,
            reasons: s.reasons,
        }));
    }
    Ok(out)
}

/// A value the system derived from the declaration (a model feature as the model read it).
#[derive(Clone, Debug, Serialize)]
pub struct DerivedValue {
    /// What it is, in business words.
    pub words: String,
    /// Its value, as the model read it.
    pub value: String,
    /// The declared values it comes from, in business words (see [`crate::Reason::declared`]).
    pub declared: Option<String>,
    /// For a history value, what it rests on (see [`crate::Reason::history`]).
    pub history: Option<crate::HistoryBasis>,
    /// For a firm column, the ids whose past it sums (see [`crate::Reason::linked`]).
    pub linked: Option<String>,
    /// Its contribution to the score, in log-odds.
    pub log_odds: f64,
}

/// A later file that said something else about a declared field: kept aside, never applied.
#[derive(Clone, Debug, Serialize)]
pub struct ConflictView {
    /// When.
    pub at: String,
    /// File and line.
    pub source: String,
    /// Field.
    pub field: String,
    /// What is stored (the original).
    pub stored: String,
    /// What the later file said.
    pub incoming: String,
}

/// A declaration linked to this one through a shared party.
#[derive(Clone, Debug, Serialize)]
pub struct RelatedRow {
    /// What links them: `importer` and/or `declarant`.
    pub link: String,
    /// Declaration id.
    pub declaration_id: String,
    /// Date.
    pub date: String,
    /// HS6 code.
    pub hs6: String,
    /// Origin.
    pub origin: String,
    /// Known outcome: `fraud`, `compliant` or none.
    pub label: Option<String>,
}

/// A party a linkage run found to be the same firm as this declaration's importer or
/// declarant (`borderlens link --save-party-links`).
#[derive(Clone, Debug, Serialize)]
pub struct LinkedPartyView {
    /// Whose group: `importer` or `declarant`.
    pub role: String,
    /// This declaration's party.
    pub party_id: String,
    /// The linked party.
    pub linked_id: String,
    /// The party of the group it is most strongly linked to, and that link's probability.
    pub linked_to: String,
    /// See `linked_to`.
    pub probability: f64,
    /// The linkage run, and when it was saved.
    pub run: String,
    /// See `run`.
    pub linked_at: String,
}

/// Everything the declaration page shows, of the item the selection decided on (`trace.item_no`,
/// item 1 for a declaration not decided yet or decided before the item was recorded).
#[derive(Clone, Debug, Serialize)]
pub struct DeclarationView {
    /// Score, contributions, counterfactual, declared values, decisions, results.
    pub trace: DecisionTrace,
    /// What the system derived, beside what was declared.
    pub derived: Vec<DerivedValue>,
    /// Later files that disagreed with the stored item.
    pub conflicts: Vec<ConflictView>,
    /// Declarations of the same importer or declarant, or of a party linked to them, newest
    /// first.
    pub related: Vec<RelatedRow>,
    /// The parties linked to the importer and the declarant by the last linkage run.
    pub linked_parties: Vec<LinkedPartyView>,
    /// The container numbers and postal item ids its items declare, as declared.
    pub transport: Vec<crate::TransportId>,
    /// The catalogued X-ray scans of those containers and parcels, newest first.
    pub scans: Vec<crate::DeclarationScan>,
    /// The lane in force.
    pub lane: Option<Lane>,
}

/// Declarations shown as linked records.
const RELATED_SHOWN: usize = 15;

/// The declaration page's content.
pub fn declaration(store: &dyn Backend, declaration_id: &str) -> Result<DeclarationView, JobError> {
    let trace = explain_decision(store, declaration_id)?;
    let key = item_key(declaration_id, trace.item_no);
    let item = store
        .item(&key)?
        .ok_or_else(|| JobError::NotFound(format!("no declaration '{declaration_id}'")))?;
    let derived = trace
        .explanation
        .as_ref()
        .map(|e| {
            e.contributions
                .iter()
                .map(|c| DerivedValue {
                    words: c.words.clone(),
                    value: c.value.clone(),
                    declared: c.declared.clone(),
                    history: c.history.clone(),
                    linked: c.linked.clone(),
                    log_odds: c.log_odds,
                })
                .collect()
        })
        .unwrap_or_default();
    let conflicts = store
        .conflicts_for(&key)?
        .into_iter()
        .map(|c| ConflictView {
            at: c.at,
            source: format!("{} line {}", c.source, c.line),
            field: c.field,
            stored: c.stored,
            incoming: c.incoming,
        })
        .collect();
    let related = store
        .related_items(
            &item.importer_id,
            &item.declarant_id,
            declaration_id,
            RELATED_SHOWN,
        )?
        .into_iter()
        .map(|(other, link)| RelatedRow {
            link,
            declaration_id: other.key.declaration_id.clone(),
            date: other.date.to_string(),
            hs6: other.hs6.to_string(),
            origin: other.origin_country.clone(),
            label: crate::decisions::label_words(other.label),
        })
        .collect();
    let mut linked_parties = Vec::new();
    for (role, party) in [
        ("importer", &item.importer_id),
        ("declarant", &item.declarant_id),
    ] {
        for l in store.party_group(party)? {
            if l.link.party_id != *party {
                linked_parties.push(LinkedPartyView {
                    role: role.to_string(),
                    party_id: party.clone(),
                    linked_id: l.link.party_id,
                    linked_to: l.link.linked_to,
                    probability: l.link.probability,
                    run: l.run,
                    linked_at: l.linked_at,
                });
            }
        }
    }
    let items = match store.declaration(declaration_id)? {
        Some(declaration) => declaration.items().to_vec(),
        None => vec![item],
    };
    let (transport, scans) = crate::scans_of_declaration(store, &items)?;
    let lane = trace.decisions.last().map(|d| d.lane);
    Ok(DeclarationView {
        trace,
        derived,
        conflicts,
        related,
        linked_parties,
        transport,
        scans,
        lane,
    })
}

/// A control result as the dashboard lists it.
#[derive(Clone, Debug, Serialize)]
pub struct RecentResult {
    /// When recorded.
    pub recorded_at: String,
    /// By whom.
    pub recorded_by: String,
    /// Declaration.
    pub declaration_id: String,
    /// Outcome code.
    pub outcome: String,
    /// Label it gave.
    pub label: Option<String>,
}

/// Everything the dashboard shows; a part that cannot be computed (no model yet, no period
/// to compare) is absent with the reason in `notes`.
#[derive(Clone, Debug, Serialize)]
pub struct Dashboard {
    /// Non-compliance estimates with intervals, by `dimension`.
    pub estimates: Option<EstimateReport>,
    /// The latest control results, newest first.
    pub recent: Vec<RecentResult>,
    /// Control results recorded in all.
    pub results_total: usize,
    /// Weekly hit rates by office over the last twelve weeks of data.
    pub hit_rates: Vec<Series>,
    /// Bias audit of the selections.
    pub bias: Option<BiasAudit>,
    /// Drift of the last four weeks against the twelve before.
    pub drift: Option<DriftReport>,
    /// The periods of the drift report.
    pub drift_periods: Option<((NaiveDate, NaiveDate), (NaiveDate, NaiveDate))>,
    /// Evaluation of the newest model on the period after its training data.
    pub evaluation: Option<EvaluationReport>,
    /// Why a part is missing.
    pub notes: Vec<String>,
}

/// Results listed as recent.
const RECENT_SHOWN: usize = 10;

/// Which parts of the dashboard a caller may see (the server decides by role, with the same
/// table as its API routes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DashboardParts {
    /// The latest control results only: no estimates, hit rates, bias audit, drift or model
    /// evaluation (they are not even computed).
    Results,
    /// Everything.
    All,
}

/// The dashboard's content: estimates by `dimension` (one of [`crate::DIMENSIONS`]), or with
/// [`DashboardParts::Results`] only the latest control results.
///
/// Rebuilding it reads every item (estimates, drift, the evaluation score whole periods: about
/// a second on the bundled sample), so it is kept per store and dimension until the store
/// changes: every change writes an audit entry in its transaction, so the newest entry's id
/// tells whether anything changed since.
pub fn dashboard(
    store: &dyn Backend,
    dimension: &str,
    parts: DashboardParts,
) -> Result<Dashboard, JobError> {
    if parts == DashboardParts::Results {
        let (recent, results_total) = recent_results(store)?;
        return Ok(Dashboard {
            estimates: None,
            recent,
            results_total,
            hit_rates: Vec::new(),
            bias: None,
            drift: None,
            drift_periods: None,
            evaluation: None,
            notes: Vec::new(),
        });
    }
    let key = (
        store.location(),
        dimension.to_string(),
        data_generation(store)?,
    );
    if let Some(dashboard) = DASHBOARDS.get(&key) {
        return Ok(dashboard);
    }
    let (dashboard, failed) = build_dashboard(store, dimension)?;
    // A part that failed on the store (a lost connection, a busy database) is tried again on
    // the next view, not kept until the next change.
    if !failed {
        DASHBOARDS.put(key, dashboard.clone());
    }
    Ok(dashboard)
}

/// Dashboards by store location, dimension and [`data_generation`].
static DASHBOARDS: Lru<(String, String, i64), Dashboard> = Lru::new(8);

/// Audit actions that change nothing a dashboard shows.
const SESSION_ACTIONS: [&str; 2] = ["login", "logout"];

/// The id of the newest audit entry that may have changed the data (logins and logouts left
/// out, so a shift logging in keeps the cached dashboards); the newest of all when the last
/// hundred are all logins and logouts.
fn data_generation(store: &dyn Backend) -> Result<i64, JobError> {
    let entries = store.audit_entries(100)?;
    Ok(entries
        .iter()
        .find(|entry| !SESSION_ACTIONS.contains(&entry.action.as_str()))
        .or(entries.first())
        .map_or(0, |entry| entry.id))
}

/// The dashboard, and whether a part of it failed on the store or the system (not merely
/// missing, like an evaluation without a model).
fn build_dashboard(store: &dyn Backend, dimension: &str) -> Result<(Dashboard, bool), JobError> {
    let mut notes = Vec::new();
    let failed = std::cell::Cell::new(false);
    let note = |notes: &mut Vec<String>, part: &str, error: JobError| {
        if matches!(
            error,
            JobError::Store(_)
                | JobError::Io { .. }
                | JobError::Internal(_)
                | JobError::Interrupted
                | JobError::ImportInterrupted { .. }
        ) {
            failed.set(true);
        }
        notes.push(format!("{part}: {error}"))
    };
    let estimates = match estimates(store, dimension, 0.95) {
        Ok(report) => Some(report),
        Err(e) => {
            note(&mut notes, "estimates", e);
            None
        }
    };
    let (recent, results_total) = recent_results(store)?;
    let last_day = store.last_item_date()?;
    let mut hit_rates = Vec::new();
    let mut drift = None;
    let mut drift_periods = None;
    if let Some(last) = last_day {
        match hit_rate_series(store, last - Duration::weeks(12), last, "office", 6) {
            Ok(series) => hit_rates = series,
            Err(e) => note(&mut notes, "hit rates", e),
        }
        let current = (last - Duration::days(27), last);
        let (reference, model) = drift_windows(last, newest_model(store)?, &mut notes);
        match drift_report(
            store,
            &DriftRequest {
                reference,
                current,
                model,
                scored_only: true,
            },
        ) {
            Ok(report) => {
                drift = Some(report);
                drift_periods = Some((reference, current));
            }
            Err(e) => note(&mut notes, "drift", e),
        }
    } else {
        notes.push("no declarations in the store yet".to_string());
    }
    let bias = match bias_audit(store, &BiasOptions::default()) {
        Ok(audit) => Some(audit),
        Err(e) => {
            note(&mut notes, "bias audit", e);
            None
        }
    };
    let evaluation = match (newest_model(store)?, last_day) {
        (Some((model, version, until)), Some(last)) if until < last => {
            match evaluate(
                store,
                &EvaluateRequest {
                    model,
                    version: Some(version),
                    from: until + Duration::days(1),
                    to: last,
                },
            ) {
                Ok((report, _, _)) => Some(report),
                Err(e) => {
                    note(&mut notes, "model evaluation", e);
                    None
                }
            }
        }
        (Some(_), _) => {
            notes.push(
                "model evaluation: no declarations after the newest model's training data"
                    .to_string(),
            );
            None
        }
        (None, _) => {
            notes.push("model evaluation: no model trained yet".to_string());
            None
        }
    };
    let dashboard = Dashboard {
        estimates,
        recent,
        results_total,
        hit_rates,
        bias,
        drift,
        drift_periods,
        evaluation,
        notes,
    };
    Ok((dashboard, failed.get()))
}

/// The dashboard's drift reference window and the model whose scores it compares: the twelve
/// weeks before the last four (which end on `last`), with the newest model's scores when there
/// is one. The days the model was trained on (up to its `until`) were not scored, or scored
/// in-sample: either way not the score the current weeks have, so they are left out of the
/// reference window (which then starts the day after). When no day of the window is left, the
/// features are compared on the whole window without the score, and a note says why.
fn drift_windows(
    last: NaiveDate,
    newest: Option<(String, u32, NaiveDate)>,
    notes: &mut Vec<String>,
) -> ((NaiveDate, NaiveDate), Option<String>) {
    let reference = (last - Duration::days(27 + 84), last - Duration::days(28));
    match newest {
        Some((model, _, until)) if until < reference.0 => (reference, Some(model)),
        Some((model, _, until)) if until < reference.1 => {
            ((until + Duration::days(1), reference.1), Some(model))
        }
        Some((model, version, until)) => {
            notes.push(format!(
                "score drift: model {model} v{version} was trained on declarations up to \
                 {until}, which covers the whole reference window ({} … {}): only the \
                 declared values are compared",
                reference.0, reference.1
            ));
            (reference, None)
        }
        None => (reference, None),
    }
}

/// The latest control results, newest first, and how many are recorded in all.
fn recent_results(store: &dyn Backend) -> Result<(Vec<RecentResult>, usize), JobError> {
    let results = store.control_results()?;
    let results_total = results.len();
    let recent = results
        .into_iter()
        .rev()
        .take(RECENT_SHOWN)
        .map(|r| RecentResult {
            recorded_at: r.recorded_at,
            recorded_by: r.recorded_by,
            declaration_id: r.result.declaration_id,
            outcome: r.result.outcome,
            label: crate::decisions::label_words(r.result.label),
        })
        .collect();
    Ok((recent, results_total))
}

/// The newest model of the registry: name, version and the last day of its training data.
fn newest_model(store: &dyn Backend) -> Result<Option<(String, u32, NaiveDate)>, JobError> {
    let newest = store
        .list_models()?
        .into_iter()
        .max_by(|a, b| a.created_at.cmp(&b.created_at));
    Ok(newest.and_then(|m| {
        let metadata: serde_json::Value = serde_json::from_str(&m.metadata_json).ok()?;
        let until = metadata.get("until")?.as_str()?;
        let until = NaiveDate::parse_from_str(until, "%Y-%m-%d").ok()?;
        Some((m.name, m.version, until))
    }))
}

/// The latest `limit` audit entries, newest first.
pub fn audit_log(store: &dyn Backend, limit: usize) -> Result<Vec<AuditEntry>, JobError> {
    Ok(store.audit_entries(limit)?)
}

#[cfg(test)]
mod tests;
