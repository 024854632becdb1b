//! The jobs. Each loads what it needs from the store, calls the engine, and saves what it made.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use borderlens_domain::{DeclarationItem, FieldRegistry, ItemKey, LabelKind};
use borderlens_ingest::{read_declarations, ColumnMapping, DeclarationReader, FileError};
use borderlens_risk::data::{Dataset, FeatureKind};
use borderlens_risk::features::{Firms, HistoryState};
use borderlens_risk::metrics;
use borderlens_risk::model::{self, RiskModel, TrainOptions};
use borderlens_store::{Backend, ItemFilter, SharingFilter};
use chrono::NaiveDate;

use crate::cache::Lru;
use crate::reports::*;
use crate::{JobError, Progress};

/// Reads each file and stores its valid records, one transaction per file.
///
/// A file whose header is wrong (or that is empty or unreadable) is refused whole. Bad records are
/// reported and not stored; the file's valid records are. With `strict`, any bad record refuses
/// the whole file. Re-importing a file changes nothing (idempotent).
pub fn import_files(
    store: &mut dyn Backend,
    paths: &[PathBuf],
    mapping: &ColumnMapping,
    strict: bool,
    progress: &dyn Progress,
) -> Result<Vec<FileReport>, JobError> {
    let mut reports: Vec<FileReport> = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let size = std::fs::metadata(path).map(|m| m.len()).ok();
        let file = path.display().to_string();
        let report = if progress.interrupted() {
            Err(JobError::Interrupted)
        } else {
            import_reader(
                store,
                &file,
                read_declarations(path, mapping),
                size,
                strict,
                progress,
            )
        };
        match report {
            Ok(report) => reports.push(report),
            // Each file is committed on its own: say which ones were.
            Err(JobError::Interrupted) => {
                let (saved, refused): (Vec<&FileReport>, Vec<&FileReport>) =
                    reports.iter().partition(|r| r.file_error.is_none());
                if saved.is_empty() {
                    return Err(JobError::Interrupted);
                }
                return Err(JobError::ImportInterrupted {
                    saved: saved.iter().map(|r| r.file.clone()).collect(),
                    not_saved: refused
                        .iter()
                        .map(|r| r.file.clone())
                        .chain(paths[i..].iter().map(|p| p.display().to_string()))
                        .collect(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Ok(reports)
}

/// Imports declarations sent as bytes (an upload) as [`import_files`] imports one file; `name`
/// is what reports and the stored records call the source.
pub fn import_bytes(
    store: &mut dyn Backend,
    name: &str,
    bytes: &[u8],
    mapping: &ColumnMapping,
    strict: bool,
    progress: &dyn Progress,
) -> Result<FileReport, JobError> {
    let reader = DeclarationReader::from_reader(Path::new(name), bytes, mapping);
    import_reader(
        store,
        name,
        reader,
        Some(bytes.len() as u64),
        strict,
        progress,
    )
}

/// Stores the valid records of one source in one transaction and reports the rest.
fn import_reader<R: std::io::Read>(
    store: &mut dyn Backend,
    file: &str,
    reader: Result<DeclarationReader<R>, FileError>,
    size: Option<u64>,
    strict: bool,
    progress: &dyn Progress,
) -> Result<FileReport, JobError> {
    let file = file.to_string();
    let mut report = FileReport {
        file: file.clone(),
        file_error: None,
        records: 0,
        inserted: 0,
        unchanged: 0,
        labelled: 0,
        conflicts: Vec::new(),
        rejected: Vec::new(),
        descriptions_read: 0,
        descriptions_error: None,
    };
    let reader = match reader {
        Ok(reader) => reader,
        Err(e) => {
            report.file_error = Some(e.to_string());
            return Ok(report);
        }
    };
    progress.start(&format!("importing {file}"), size.map(|_| 0));
    let mut rejected = Vec::new();
    let mut records = 0u64;
    let mut interrupted = false;
    let stream = reader.with_lines().filter_map(|result| {
        records += 1;
        if records.is_multiple_of(1000) {
            progress.advance(records);
        }
        if progress.interrupted() {
            interrupted = true;
            return Some(Err("interrupted".to_string()));
        }
        match result {
            Ok(pair) => Some(Ok(pair)),
            Err(e) => {
                let issue = RecordIssue {
                    file: file.clone(),
                    line: e.line,
                    field: e.field.clone(),
                    message: e.to_string(),
                };
                rejected.push(issue);
                if strict {
                    Some(Err(format!("{e} (strict: nothing of the file imported)")))
                } else {
                    None
                }
            }
        }
    });
    let outcome = store.try_import(&file, stream);
    progress.finish();
    report.records = records;
    report.rejected = rejected;
    if interrupted {
        return Err(JobError::Interrupted);
    }
    match outcome {
        Ok(outcome) => {
            // The goods descriptions of the new items are read now, so that nothing downstream
            // (pages, training, scoring) meets an item without its reading. An interruption
            // here keeps the items stored (and the readings already saved); the rest are read
            // by the next import or `borderlens annotate`.
            // A failure of the reading is reported with the file, never in place of its report:
            // the file's items are committed already.
            report.descriptions_read = match crate::hs_reading::annotate(store, progress) {
                Ok(annotated) => annotated.read,
                Err(JobError::Interrupted) => 0,
                Err(e) => {
                    report.descriptions_error = Some(format!(
                        "the items are stored, but reading their goods descriptions failed \
                         (run `borderlens annotate` once fixed): {e}"
                    ));
                    0
                }
            };
            report.inserted = outcome.inserted;
            report.unchanged = outcome.unchanged;
            report.labelled = outcome.labelled;
            report.conflicts = outcome
                .conflicts
                .iter()
                .map(|c| {
                    let mut text = format!(
                        "{}:{}: declaration {} item {} already stored with other values:",
                        file, c.line, c.key.declaration_id, c.key.item_no
                    );
                    for d in &c.differences {
                        let _ = write!(
                            text,
                            " {} stored '{}' incoming '{}';",
                            d.field, d.stored, d.incoming
                        );
                    }
                    text.trim_end_matches(';').to_string()
                })
                .collect();
        }
        Err(e) if strict && !report.rejected.is_empty() => {
            report.file_error = Some(format!(
                "refused (strict): {} bad record(s); {e}",
                report.rejected.len()
            ));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(report)
}

/// What to train.
pub struct TrainRequest {
    /// Registry name.
    pub model: String,
    /// Last date of training data (inclusive).
    pub until: NaiveDate,
    /// Options (label, imbalance, trees...).
    pub options: TrainOptions,
    /// Weight controlled declarations by 1/π of their recorded selection decision.
    pub ipw: bool,
    /// Add the text columns (what the shipped HS model reads the goods descriptions as:
    /// mismatch with the declared code per level, vagueness, sender-vs-cleaned disagreement, no
    /// description) when labelled training items carry descriptions. Without descriptions the
    /// model is trained without them either way.
    pub text_features: bool,
    /// Add the firm columns (issue 13) when the store holds party links: the history of every
    /// id a linkage run found to be the importer's (declarant's) firm, summed, so that a firm
    /// that changes id keeps its past. The model keeps the groups it was trained with.
    pub firm_history: bool,
}

/// The firms of the store's party links (`None` when there are none): every group of the last
/// linkage run that saved links.
pub fn stored_firms(store: &dyn Backend) -> Result<Option<Firms>, JobError> {
    let links = store.party_links()?;
    let Some(run) = links.first().map(|l| l.run.clone()) else {
        return Ok(None);
    };
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for l in links {
        groups
            .entry(l.link.group_id)
            .or_default()
            .push(l.link.party_id);
    }
    Ok(Some(Firms::new(&run, groups.into_values().collect())))
}

/// Trains on every labelled item dated up to `until` (unlabelled ones are history context, as
/// they are when scoring) and saves a new registry version.
pub fn train(
    store: &mut dyn Backend,
    request: &TrainRequest,
    progress: &dyn Progress,
) -> Result<TrainReport, JobError> {
    let started = Instant::now();
    let items = store.items(&ItemFilter {
        from: None,
        to: Some(request.until),
        labelled_only: false,
    })?;
    let weights = if request.ipw {
        Some(inverse_probability_weights(store, &items)?)
    } else {
        None
    };
    if !items.iter().any(|d| d.label.is_some()) {
        return Err(JobError::Invalid(format!(
            "no labelled declarations dated up to {}: import control results first",
            request.until
        )));
    }
    let described = items
        .iter()
        .any(|d| d.label.is_some() && borderlens_risk::features::has_description(d));
    let hs_model_id = if request.text_features && described {
        Some(crate::hs_model()?.id())
    } else {
        None
    };
    let text = match &hs_model_id {
        Some(id) => {
            // Readings missing from the store (items imported before they were stored) are
            // stored first, so that scoring later reads the same numbers.
            crate::hs_reading::annotate(store, progress)?;
            Some(crate::hs_reading::text_signals(store, id, &items)?)
        }
        None => None,
    };
    let firms = if request.firm_history {
        stored_firms(store)?
    } else {
        None
    };
    let firm_history = firms.as_ref().map(|f| {
        let (parties, groups) = f.counts();
        FirmHistory {
            run: f.run().to_string(),
            parties,
            groups,
        }
    });
    let max_trees = request.options.gbdt.n_trees as u64;
    progress.start("training", Some(max_trees));
    let trained = model::train_with_firms(
        &items,
        weights.as_deref(),
        text.as_ref(),
        firms,
        &request.options,
        &mut |done, _| {
            progress.advance(done as u64);
            !progress.interrupted()
        },
    );
    progress.finish();
    if progress.interrupted() {
        return Err(JobError::Interrupted);
    }
    let model = trained?;
    let bytes = model.to_bytes();
    let sha256 = model.digest();
    let thresholds: BTreeMap<String, f64> = model
        .thresholds
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let metadata = serde_json::json!({
        "label": model.options.label,
        "until": request.until.to_string(),
        "imbalance": model.options.imbalance.name(),
        "inverse_probability_weights": request.ipw,
        "sha256": sha256,
        "n_rows": model.summary.n_rows,
        "positives": model.summary.positives,
        "n_trees": model.summary.n_trees,
        "validation_roc_auc": model.summary.validation_roc_auc,
        "thresholds": thresholds,
        "text_features": hs_model_id,
        "firm_history": firm_history,
    });
    let version = store.save_model(&request.model, &metadata.to_string(), &bytes)?;
    Ok(TrainReport {
        model: request.model.clone(),
        version,
        sha256,
        label: model.options.label,
        imbalance: model.options.imbalance.name().to_string(),
        n_rows: model.summary.n_rows,
        positives: model.summary.positives,
        n_trees: model.summary.n_trees,
        validation_roc_auc: model.summary.validation_roc_auc,
        validation_precision_at_5: model.summary.validation_precision_at_5,
        date_range: model.summary.date_range.clone(),
        thresholds,
        text_features: hs_model_id,
        firm_history,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// 1/π of each item's declaration, from its design decision (campaign, risk, random, explore);
/// 1 for declarations without one, or whose π is 0.
fn inverse_probability_weights(
    store: &dyn Backend,
    items: &[DeclarationItem],
) -> Result<Vec<f64>, JobError> {
    let mut pi: std::collections::HashMap<String, f64> = std::collections::HashMap::new();
    for d in store.decisions(None)? {
        if d.overrides.is_none() && d.decision.source.is_design_selection() {
            pi.insert(d.decision.declaration_id, d.decision.pi);
        }
    }
    Ok(items
        .iter()
        .map(|d| match pi.get(&d.key.declaration_id) {
            Some(&p) if p > 0.0 => 1.0 / p,
            _ => 1.0,
        })
        .collect())
}

/// A model read from the registry, with the HS model whose readings its text columns read.
struct Loaded {
    model: Arc<RiskModel>,
    version: u32,
    /// The HS model id of the readings the model was trained on (`text_features` in its
    /// metadata); `None` for a model without text columns.
    hs_model: Option<String>,
}

impl Loaded {
    /// The text signals of `items` the model reads (`None` for a model without text columns).
    fn text(
        &self,
        store: &dyn Backend,
        items: &[DeclarationItem],
    ) -> Result<Option<borderlens_risk::features::TextSignalMap>, JobError> {
        match (&self.hs_model, self.model.uses_text()) {
            (Some(id), true) => Ok(Some(crate::hs_reading::text_signals(store, id, items)?)),
            (None, true) => Err(JobError::Invalid(
                "the model has text columns but its metadata names no HS model (text_features): \
                 retrain it"
                    .into(),
            )),
            _ => Ok(None),
        }
    }
}

fn load_model(store: &dyn Backend, name: &str, version: Option<u32>) -> Result<Loaded, JobError> {
    let (model, version, metadata) = load_model_bytes(store, name, version)?;
    let hs_model = serde_json::from_str::<serde_json::Value>(&metadata)
        .ok()
        .and_then(|m| m.get("text_features")?.as_str().map(str::to_string));
    Ok(Loaded {
        model,
        version,
        hs_model,
    })
}

fn load_model_bytes(
    store: &dyn Backend,
    name: &str,
    version: Option<u32>,
) -> Result<(Arc<RiskModel>, u32, String), JobError> {
    let not_found = || {
        JobError::NotFound(match version {
            Some(v) => format!("no model '{name}' version {v} in the registry (see `borderlens models`)"),
            None => format!("no model '{name}' in the registry: train one with `borderlens train --model {name}`"),
        })
    };
    let info = store
        .list_models()?
        .into_iter()
        .filter(|m| m.name == name && version.is_none_or(|v| m.version == v))
        .max_by_key(|m| m.version)
        .ok_or_else(not_found)?;
    if let Some(model) = MODELS.get(&info.sha256) {
        return Ok((model, info.version, info.metadata_json));
    }
    let stored = store
        .load_model(name, Some(info.version))?
        .ok_or_else(not_found)?;
    let model = Arc::new(RiskModel::from_bytes(&stored.bytes)?);
    MODELS.put(stored.sha256, model.clone());
    Ok((model, stored.version, stored.metadata_json))
}

/// Models read from the registry, by the SHA-256 of their bytes (so a cached model is always
/// the one stored: a version's bytes never change, and other bytes have another key). Reading
/// one takes tens of milliseconds (a 7 MB model: 70 ms here); a server explaining one
/// declaration per request reads the same few models again and again.
static MODELS: Lru<String, Arc<RiskModel>> = Lru::new(4);

/// Which period to evaluate a model on.
pub struct EvaluateRequest {
    /// Model name.
    pub model: String,
    /// Version (latest when `None`).
    pub version: Option<u32>,
    /// First date (inclusive).
    pub from: NaiveDate,
    /// Last date (inclusive).
    pub to: NaiveDate,
}

/// Scores every labelled item in the period (history: everything stored before each item's date)
/// and measures targeting at the usual inspection rates.
pub fn evaluate(
    store: &dyn Backend,
    request: &EvaluateRequest,
) -> Result<(EvaluationReport, Vec<f64>, Vec<bool>), JobError> {
    let loaded = load_model(store, &request.model, request.version)?;
    let (model, version) = (&loaded.model, loaded.version);
    let label = model.label();
    let items = store.items(&ItemFilter {
        from: None,
        to: Some(request.to),
        labelled_only: false,
    })?;
    let wanted: Vec<bool> = items
        .iter()
        .map(|d| d.date >= request.from && d.label.is_some())
        .collect();
    if !wanted.iter().any(|&w| w) {
        return Err(JobError::Invalid(format!(
            "no labelled declarations between {} and {}: nothing to evaluate",
            request.from, request.to
        )));
    }
    let text = loaded.text(store, &items)?;
    let (data, rows) = model.design_with_text(&items, &wanted, text.as_ref());
    let scores = model.score(&data);
    let duty: Vec<f64> = rows.iter().map(|&i| items[i].duty_at_stake()).collect();
    let evaluation = metrics::evaluate(&scores, &data.labels, &duty);
    let curve = metrics::rate_curve(&scores, &data.labels, &duty, 20)
        .into_iter()
        .map(|(rate, precision, recall, revenue)| CurvePoint {
            rate,
            precision,
            recall,
            revenue,
        })
        .collect();
    let report = EvaluationReport {
        model: request.model.clone(),
        version,
        label,
        from: request.from.to_string(),
        to: request.to.to_string(),
        metrics: TargetingMetrics::from_evaluation(&evaluation),
        curve,
    };
    Ok((report, scores, data.labels))
}

/// What to score.
pub struct ScoreRequest {
    /// Model name.
    pub model: String,
    /// Version (latest when `None`).
    pub version: Option<u32>,
    /// First date; default: the day after the model's training data ends.
    pub from: Option<NaiveDate>,
    /// Last date; default: no limit.
    pub to: Option<NaiveDate>,
    /// Attach the top reasons to every item.
    pub explain: bool,
    /// Reasons per item.
    pub top_reasons: usize,
    /// Inspection rate whose threshold marks items as selected.
    pub rate: u32,
}

/// Scores the items of the period, saves the scores, returns them riskiest first.
pub fn score(
    store: &mut dyn Backend,
    request: &ScoreRequest,
    progress: &dyn Progress,
) -> Result<ScoreReport, JobError> {
    let loaded = load_model(store, &request.model, request.version)?;
    let (model, version) = (&loaded.model, loaded.version);
    let from = match request.from {
        Some(from) => from,
        None => NaiveDate::parse_from_str(&model.summary.date_range.1, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.succ_opt())
            .ok_or_else(|| {
                JobError::Invalid("model has no training end date; pass --from".into())
            })?,
    };
    let items = store.items(&ItemFilter {
        from: None,
        to: request.to,
        labelled_only: false,
    })?;
    let wanted: Vec<bool> = items.iter().map(|d| d.date >= from).collect();
    let n_wanted = wanted.iter().filter(|&&w| w).count();
    if n_wanted == 0 {
        return Err(JobError::Invalid(format!(
            "no declarations dated from {from}{}: nothing to score",
            request.to.map(|t| format!(" to {t}")).unwrap_or_default()
        )));
    }
    let text = loaded.text(store, &items)?;
    progress.start("scoring", Some(n_wanted as u64));
    let (data, rows) = model.design_with_text(&items, &wanted, text.as_ref());
    let scores = model.score(&data);
    let threshold = threshold_for(model, request.rate)?;
    let order = metrics::ranking(&scores);
    let explanations = if request.explain {
        model.explain_all(&data)
    } else {
        Vec::new()
    };
    if progress.interrupted() {
        return Err(JobError::Interrupted);
    }
    let mut scored = Vec::with_capacity(order.len());
    for (rank, &r) in order.iter().enumerate() {
        let item = &items[rows[r]];
        let reasons = match explanations.get(r) {
            Some(explanation) => to_reasons(
                model,
                &explanation.contributions,
                request.top_reasons,
                item,
                text.as_ref().and_then(|t| t.get(&item.key)),
            ),
            None => Vec::new(),
        };
        if rank.is_multiple_of(1000) {
            progress.advance(rank as u64);
        }
        scored.push(ScoredItem {
            declaration_id: item.key.declaration_id.clone(),
            item_no: item.key.item_no,
            date: item.date.to_string(),
            score: scores[r],
            rank: rank + 1,
            selected: scores[r] >= threshold,
            reasons,
        });
    }
    progress.finish();
    let keyed: Vec<(ItemKey, f64, Vec<String>)> = rows
        .iter()
        .zip(&scores)
        .enumerate()
        .map(|(r, (&i, &s))| {
            let reasons = match explanations.get(r) {
                Some(explanation) => to_reasons(
                    model,
                    &explanation.contributions,
                    request.top_reasons,
                    &items[i],
                    text.as_ref().and_then(|t| t.get(&items[i].key)),
                )
                .iter()
                .map(Reason::in_words)
                .collect(),
                None => Vec::new(),
            };
            (items[i].key.clone(), s, reasons)
        })
        .collect();
    store.save_scores_with_reasons(&request.model, version, &keyed)?;
    Ok(ScoreReport {
        model: request.model.clone(),
        version,
        rate: request.rate,
        threshold,
        items: scored,
    })
}

fn threshold_for(model: &RiskModel, rate: u32) -> Result<f64, JobError> {
    model.thresholds.get(&rate).copied().ok_or_else(|| {
        JobError::Invalid(format!(
            "no threshold for a {rate}% inspection rate; use one of {:?}",
            model.thresholds.keys().collect::<Vec<_>>()
        ))
    })
}

fn to_reasons(
    model: &RiskModel,
    contributions: &[model::Contribution],
    n: usize,
    item: &DeclarationItem,
    text: Option<&borderlens_risk::features::TextSignals>,
) -> Vec<Reason> {
    use borderlens_risk::features::{declared_basis, text_basis};
    contributions
        .iter()
        .take(n)
        .map(|c| Reason {
            feature: c.feature.clone(),
            words: c.words.clone(),
            value: c.value.clone(),
            declared: declared_basis(&c.feature, item)
                .or_else(|| text_basis(&c.feature, item, text)),
            linked: model.firm_basis(&c.feature, item),
            history: c.support.map(Into::into),
            log_odds: c.log_odds,
        })
        .collect()
}

/// Which declaration to explain.
pub struct ExplainRequest {
    /// Model name.
    pub model: String,
    /// Version (latest when `None`).
    pub version: Option<u32>,
    /// The item.
    pub key: ItemKey,
    /// Inspection rate of the threshold for the counterfactual.
    pub rate: u32,
}

/// The history one item's features read: the past of its importer, declarant, seller and HS
/// code, and the label counts before its date, not every earlier item. The cost follows the
/// size of those pasts: on the 45,519-item sample the most common HS code has 2,145 items, the
/// median far fewer; a store where one code has millions would want the per-key counts and
/// unit-value sums aggregated in SQL instead.
///
/// `linked` are the ids linked to the importer and declarant whose past a model's firm columns
/// read ([`RiskModel::linked_parties`]); empty for a model without them.
pub fn item_history(
    store: &dyn Backend,
    item: &DeclarationItem,
    linked: Vec<String>,
) -> Result<HistoryState, JobError> {
    let related = store.items_sharing(&SharingFilter {
        before: item.date,
        importer_id: item.importer_id.clone(),
        declarant_id: item.declarant_id.clone(),
        seller_id: item.seller_id.clone(),
        hs6: item.hs6.as_str().to_string(),
        linked_party_ids: linked,
    })?;
    let counts = store.label_counts(item.date)?;
    Ok(HistoryState::for_one_item(
        &related,
        item.date,
        counts.labelled,
        counts.frauds,
    ))
}

/// Explains one declaration item: contributions, the counterfactual, the declared values.
pub fn explain(
    store: &dyn Backend,
    request: &ExplainRequest,
) -> Result<(ExplainReport, model::Explanation), JobError> {
    let loaded = load_model(store, &request.model, request.version)?;
    let (model, version) = (&loaded.model, loaded.version);
    let item = store.item(&request.key)?.ok_or_else(|| {
        JobError::NotFound(format!(
            "no declaration {} item {} in the store",
            request.key.declaration_id, request.key.item_no
        ))
    })?;
    let history = item_history(store, &item, model.linked_parties(&item))?;
    let hs_reading = crate::hs_reading::item_hs_reading(store, &item)?;
    let text = loaded.text(store, std::slice::from_ref(&item))?;
    let signals = text.as_ref().and_then(|t| t.get(&item.key));
    let row = model.row_with_text(&item, &history, signals);
    let explanation = model.explain(&row);
    let threshold = threshold_for(model, request.rate)?;
    // A changed HS code is read against the description again (by the shipped model; a model
    // trained on another HS model's readings was refused by `text` above).
    // The search tries the same few codes again in pairs: each is read once.
    let reread_codes = std::cell::RefCell::new(BTreeMap::new());
    let reread = |changed: &DeclarationItem| {
        if changed.hs6 == item.hs6 {
            return signals.cloned();
        }
        text.as_ref()?;
        reread_codes
            .borrow_mut()
            .entry(changed.hs6.as_str().to_string())
            .or_insert_with(|| {
                crate::hs_reading::reading_of_item(changed)
                    .ok()
                    .map(|(_, s)| crate::hs_reading::to_text_signals(&s))
            })
            .clone()
    };
    let counterfactual = model
        .counterfactual_with_text(&item, &history, &reread, threshold)
        .map(|c| CounterfactualReport {
            score: c.probability,
            changes: c
                .changes
                .into_iter()
                .map(|ch| Change {
                    field: ch.field,
                    from: ch.from,
                    to: ch.to,
                })
                .collect(),
        });
    let report = ExplainReport {
        model: request.model.clone(),
        version,
        declaration_id: item.key.declaration_id.clone(),
        item_no: item.key.item_no,
        declared: declared_values(&item),
        goods: crate::GoodsText::of(&item),
        hs_reading,
        score: explanation.probability,
        base_log_odds: explanation.base_log_odds,
        log_odds: explanation.raw,
        contributions: to_reasons(
            model,
            &explanation.contributions,
            usize::MAX,
            &item,
            signals,
        ),
        threshold,
        rate: request.rate,
        counterfactual,
        outcome: crate::decisions::label_words(item.label),
    };
    Ok((report, explanation))
}

/// Every declared field of the registry, by name, as declared (empty when not declared).
fn declared_values(item: &DeclarationItem) -> BTreeMap<String, String> {
    FieldRegistry::standard()
        .fields()
        .iter()
        .map(|field| (field.name.to_string(), field.get(item).to_string()))
        .collect()
}

/// What to export for side-by-side comparison with other tools.
pub struct ExportRequest {
    /// Training period end (inclusive).
    pub until: NaiveDate,
    /// Test period.
    pub from: NaiveDate,
    /// Test period end (inclusive).
    pub to: NaiveDate,
    /// Options (label, anomaly feature, tree parameters written to meta.json).
    pub options: TrainOptions,
    /// Output directory.
    pub out: PathBuf,
    /// Add the text columns when the training items carry goods descriptions, as `train` does.
    pub text_features: bool,
}

/// Writes `train.csv`, `test.csv` and `meta.json`: exactly the columns the model trains on,
/// the text columns included when `train` would include them (the training items carry goods
/// descriptions and `text_features` is set); readings missing from the store are stored first,
/// as `train` does.
pub fn export_features(
    store: &mut dyn Backend,
    request: &ExportRequest,
    progress: &dyn Progress,
) -> Result<(usize, usize), JobError> {
    let training = store.items(&ItemFilter {
        from: None,
        to: Some(request.until),
        labelled_only: true,
    })?;
    let items = store.items(&ItemFilter {
        from: None,
        to: Some(request.to),
        labelled_only: false,
    })?;
    let described = training
        .iter()
        .any(borderlens_risk::features::has_description);
    let text = if request.text_features && described {
        let id = crate::hs_model()?.id();
        crate::hs_reading::annotate(store, progress)?;
        let mut signals = crate::hs_reading::text_signals(store, &id, &training)?;
        signals.extend(crate::hs_reading::text_signals(store, &id, &items)?);
        Some((id, signals))
    } else {
        None
    };
    export_items(
        &training,
        &items,
        request,
        text.as_ref().map(|(id, signals)| (id.as_str(), signals)),
    )
}

/// [`export_features`] on items already in memory: `training` (labelled, sorted, up to `until`)
/// and `items` (sorted, everything up to `to`, the history of the test rows), with the text
/// columns from `text` (the HS model's id and the items' signals) when given.
pub fn export_items(
    training: &[DeclarationItem],
    items: &[DeclarationItem],
    request: &ExportRequest,
    text: Option<(&str, &borderlens_risk::features::TextSignalMap)>,
) -> Result<(usize, usize), JobError> {
    let signals = text.map(|(_, signals)| signals);
    let design = model::training_design_with_text(training, signals, &request.options)?;
    let label = request.options.label;
    let wanted: Vec<bool> = items
        .iter()
        .map(|d| d.date >= request.from && d.date <= request.to && d.label.is_some())
        .collect();
    let (test, rows) = model::design_with_text(
        &design.pipeline,
        design.anomaly.as_ref(),
        items,
        &wanted,
        label,
        signals,
    );
    std::fs::create_dir_all(&request.out).map_err(|source| JobError::Io {
        path: request.out.display().to_string(),
        source,
    })?;
    let train_duty: Vec<f64> = design
        .items
        .iter()
        .map(DeclarationItem::duty_at_stake)
        .collect();
    let train_ids: Vec<&str> = design
        .items
        .iter()
        .map(|d| d.key.declaration_id.as_str())
        .collect();
    write_matrix(
        &request.out.join("train.csv"),
        &design.data,
        &train_duty,
        &train_ids,
    )?;
    let test_duty: Vec<f64> = rows.iter().map(|&i| items[i].duty_at_stake()).collect();
    let test_ids: Vec<&str> = rows
        .iter()
        .map(|&i| items[i].key.declaration_id.as_str())
        .collect();
    write_matrix(&request.out.join("test.csv"), &test, &test_duty, &test_ids)?;
    let g = &request.options.gbdt;
    let features: Vec<serde_json::Value> = design
        .data
        .features
        .iter()
        .map(|f| match f.kind {
            FeatureKind::Numeric => serde_json::json!({"name": f.name, "kind": "numeric"}),
            FeatureKind::Categorical { cardinality } => serde_json::json!({"name": f.name, "kind": "categorical", "cardinality": cardinality}),
        })
        .collect();
    let meta = serde_json::json!({
        "label": request.options.label,
        "text_features": text.map(|(id, _)| id),
        "features": features,
        "params": {
            "n_trees": g.n_trees, "learning_rate": g.learning_rate, "num_leaves": g.num_leaves,
            "max_depth": if g.max_depth == 0 { -1 } else { g.max_depth as i64 },
            "min_data_in_leaf": g.min_data_in_leaf, "lambda_l2": g.lambda_l2, "max_bin": g.max_bin,
            "feature_fraction": g.feature_fraction, "bagging_fraction": g.bagging_fraction,
            "cat_smooth": g.cat_smooth, "max_cat_threshold": g.max_cat_threshold,
            "min_data_per_group": g.min_data_per_group, "seed": g.seed,
        }
    });
    let path = request.out.join("meta.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&meta).unwrap_or_default(),
    )
    .map_err(|source| JobError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok((design.data.n_rows(), test.n_rows()))
}

/// Writes the matrix as CSV: one column per feature (empty where missing), then `__label`,
/// `__weight`, `__duty` and `__id`.
fn write_matrix(path: &Path, data: &Dataset, duty: &[f64], ids: &[&str]) -> Result<(), JobError> {
    let io = |source| JobError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut out = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let write = |out: &mut csv::Writer<_>| -> csv::Result<()> {
        let names = data.features.iter().map(|f| f.name.as_str());
        out.write_record(names.chain(["__label", "__weight", "__duty", "__id"]))?;
        let mut cell = String::new();
        for i in 0..data.n_rows() {
            for column in &data.columns {
                let v = column[i];
                cell.clear();
                if !v.is_nan() {
                    let _ = write!(cell, "{v}");
                }
                out.write_field(&cell)?;
            }
            out.write_field(if data.labels[i] { "1" } else { "0" })?;
            for v in [data.weights[i], duty[i]] {
                cell.clear();
                let _ = write!(cell, "{v}");
                out.write_field(&cell)?;
            }
            out.write_field(ids[i])?;
            out.write_record(None::<&[u8]>)?;
        }
        Ok(())
    };
    write(&mut out).map_err(|e| io(e.into()))?;
    out.flush().map_err(io)
}

/// Global importance (mean |SHAP| in log-odds, business words) of a model on a period's items.
pub fn importance(
    store: &dyn Backend,
    model_name: &str,
    version: Option<u32>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(String, f64)>, JobError> {
    let loaded = load_model(store, model_name, version)?;
    let model = &loaded.model;
    let items = store.items(&ItemFilter {
        from: None,
        to: Some(to),
        labelled_only: false,
    })?;
    let wanted: Vec<bool> = items.iter().map(|d| d.date >= from).collect();
    if !wanted.iter().any(|&w| w) {
        return Err(JobError::Invalid(format!(
            "no declarations between {from} and {to}"
        )));
    }
    let text = loaded.text(store, &items)?;
    let (data, _) = model.design_with_text(&items, &wanted, text.as_ref());
    Ok(model.global_importance(&data))
}

/// The anomaly framing for rare threats: an isolation forest fitted, without labels, on the
/// declarations up to `until`, ranking the period `from..=to` by how unusual each item is.
pub struct AnomalyRequest {
    /// Last date of the declarations the forest learns "normal" from.
    pub until: NaiveDate,
    /// First date scored.
    pub from: NaiveDate,
    /// Last date scored.
    pub to: NaiveDate,
    /// Label used only to measure the ranking (when the period has control results).
    pub label: LabelKind,
    /// Seed of the forest.
    pub seed: u64,
    /// Items listed in the report.
    pub top: usize,
}

/// Scores a period with the isolation forest alone and, where labels exist, evaluates it.
pub fn anomaly(store: &dyn Backend, request: &AnomalyRequest) -> Result<AnomalyReport, JobError> {
    let items = store.items(&ItemFilter {
        from: None,
        to: Some(request.to.max(request.until)),
        labelled_only: false,
    })?;
    let fit_items: Vec<DeclarationItem> = items
        .iter()
        .filter(|d| d.date <= request.until)
        .cloned()
        .collect();
    if fit_items.len() < 50 {
        return Err(JobError::Invalid(format!(
            "{} declarations up to {}: need at least 50 to learn what is normal",
            fit_items.len(),
            request.until
        )));
    }
    let pipeline = borderlens_risk::features::FeaturePipeline::fit(&fit_items);
    let (fit_data, _) = pipeline.transform(&fit_items, &vec![true; fit_items.len()], request.label);
    let forest = borderlens_risk::anomaly::IsolationForest::fit(
        &fit_data,
        &borderlens_risk::anomaly::IsolationForestConfig::standard(),
        request.seed,
    );
    let wanted: Vec<bool> = items
        .iter()
        .map(|d| d.date >= request.from && d.date <= request.to)
        .collect();
    let (data, rows) = pipeline.transform(&items, &wanted, request.label);
    if data.n_rows() == 0 {
        return Err(JobError::Invalid(format!(
            "no declarations between {} and {}",
            request.from, request.to
        )));
    }
    let scores = forest.score_all(&data);
    let labelled: Vec<usize> = (0..rows.len())
        .filter(|&r| items[rows[r]].label.is_some())
        .collect();
    let evaluation = if labelled.is_empty() {
        None
    } else {
        let s: Vec<f64> = labelled.iter().map(|&r| scores[r]).collect();
        let y: Vec<bool> = labelled.iter().map(|&r| data.labels[r]).collect();
        let duty: Vec<f64> = labelled
            .iter()
            .map(|&r| items[rows[r]].duty_at_stake())
            .collect();
        let e = metrics::evaluate(&s, &y, &duty);
        Some(AnomalyEvaluation {
            label: request.label,
            metrics: TargetingMetrics::from_evaluation(&e),
        })
    };
    let top = metrics::ranking(&scores)
        .into_iter()
        .take(request.top)
        .enumerate()
        .map(|(rank, r)| {
            let item = &items[rows[r]];
            AnomalousItem {
                declaration_id: item.key.declaration_id.clone(),
                item_no: item.key.item_no,
                date: item.date.to_string(),
                score: scores[r],
                rank: rank + 1,
            }
        })
        .collect();
    Ok(AnomalyReport {
        from: request.from.to_string(),
        to: request.to.to_string(),
        n: data.n_rows(),
        evaluation,
        top,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use borderlens_store::{Items, Store};

    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sample/df_syn_train_eng.csv"
    );

    /// Ids and feature names with a comma, a quote or a line break come back as written.
    #[test]
    fn exported_matrix_quotes_what_csv_needs_quoted() {
        use borderlens_risk::data::FeatureInfo;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        let numeric = |name: &str| FeatureInfo {
            name: name.to_string(),
            kind: FeatureKind::Numeric,
        };
        let data = Dataset {
            features: vec![numeric("value, declared"), numeric("weight")],
            columns: vec![vec![1.5, f64::NAN], vec![f64::INFINITY, -2.0]],
            labels: vec![true, false],
            weights: vec![1.0, 0.25],
        };
        let ids = ["DECL-1,\"A\"\nline 2", "DECL-2"];
        write_matrix(&path, &data, &[10.0, 0.0], &ids).unwrap();
        let mut reader = csv::Reader::from_path(&path).unwrap();
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            [
                "value, declared",
                "weight",
                "__label",
                "__weight",
                "__duty",
                "__id"
            ]
        );
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["1.5", "inf", "1", "1", "10", ids[0]],
                ["", "-2", "0", "0.25", "0", ids[1]],
            ]
        );
    }

    /// A progress that asks to stop when the `stop_at`-th file starts.
    struct StopAtFile {
        started: std::cell::Cell<usize>,
        stop_at: usize,
    }

    impl crate::Progress for StopAtFile {
        fn start(&self, _: &str, _: Option<u64>) {
            self.started.set(self.started.get() + 1);
        }
        fn advance(&self, _: u64) {}
        fn finish(&self) {}
        fn interrupted(&self) -> bool {
            self.started.get() >= self.stop_at
        }
    }

    /// Interrupted on the second of three files: the first is committed and the error says so,
    /// naming the two that were not saved; interrupted on the first, nothing was saved.
    #[test]
    fn an_interrupted_import_names_the_files_saved_and_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(SAMPLE).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let files: Vec<PathBuf> = (0..3)
            .map(|k| {
                let path = dir.path().join(format!("part{k}.csv"));
                let rows = &lines[1 + 50 * k..1 + 50 * (k + 1)];
                std::fs::write(&path, format!("{}\n{}\n", lines[0], rows.join("\n"))).unwrap();
                path
            })
            .collect();
        let mapping = borderlens_ingest::ColumnMapping::kcs_default();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let stop = StopAtFile {
            started: Default::default(),
            stop_at: 2,
        };
        let err = crate::import_files(&mut store, &files, &mapping, false, &stop).unwrap_err();
        let name = |k: usize| files[k].display().to_string();
        match &err {
            JobError::ImportInterrupted { saved, not_saved } => {
                assert_eq!(saved, &[name(0)]);
                assert_eq!(not_saved, &[name(1), name(2)]);
            }
            other => panic!("{other:?}"),
        }
        let message = err.to_string();
        assert!(!message.contains("nothing was saved"), "{message}");
        assert!(
            message.contains(&format!("saved {}", name(0)))
                && message.contains(&format!("not saved: {}, {}", name(1), name(2))),
            "{message}"
        );
        assert_eq!(store.items(&ItemFilter::default()).unwrap().len(), 50);

        let mut store = Store::open(&dir.path().join("u.db")).unwrap();
        let stop = StopAtFile {
            started: Default::default(),
            stop_at: 1,
        };
        let err = crate::import_files(&mut store, &files, &mapping, false, &stop).unwrap_err();
        assert!(matches!(err, JobError::Interrupted), "{err:?}");
        assert_eq!(err.to_string(), "interrupted: nothing was saved");
        assert!(store.items(&ItemFilter::default()).unwrap().is_empty());
    }

    /// One item's history read through `items_sharing` and `label_counts` gives the very row
    /// that the history of every earlier item gives: for items early and late, labelled or not,
    /// with and without a seller, and for a model with firm columns, whose linked ids' past
    /// `items_sharing` must also read.
    #[test]
    fn one_items_history_gives_the_row_of_the_whole_history() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(SAMPLE).unwrap();
        let head: Vec<&str> = text.lines().take(2501).collect();
        let csv = dir.path().join("head.csv");
        std::fs::write(&csv, head.join("\n") + "\n").unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        let reports = crate::import_files(
            &mut store,
            &[csv],
            &borderlens_ingest::ColumnMapping::kcs_default(),
            true,
            &crate::Silent,
        )
        .unwrap();
        assert!(!reports[0].has_problems());
        let all = store.items(&ItemFilter::default()).unwrap();
        let mut options = model::TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 3;
        options.gbdt.early_stopping_rounds = None;
        let model = model::train(&all, &options, &mut |_, _| true).unwrap();
        // Firms of two: every importer (declarant) with the next one in sorted order.
        let mut parties: Vec<String> = all
            .iter()
            .flat_map(|d| [d.importer_id.clone(), d.declarant_id.clone()])
            .collect();
        parties.sort_unstable();
        parties.dedup();
        let groups = parties.chunks(2).map(<[String]>::to_vec).collect();
        let firms = Firms::new("test-run", groups);
        let with_firms =
            model::train_with_firms(&all, None, None, Some(firms), &options, &mut |_, _| true)
                .unwrap();
        let mut checked = 0;
        let mut with_history = 0;
        let mut with_linked_past = 0;
        for item in all.iter().step_by(23) {
            let whole = model.row(item, &HistoryState::as_of(&all, item.date));
            let one = model.row(item, &item_history(&store, item, Vec::new()).unwrap());
            let linked = with_firms.linked_parties(item);
            let whole_firm = with_firms.row(item, &HistoryState::as_of(&all, item.date));
            let one_firm =
                with_firms.row(item, &item_history(&store, item, linked.clone()).unwrap());
            let bits = |row: &[f64]| row.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one_firm), bits(&whole_firm), "{:?}", item.key);
            // (The firm columns read a linked id's past in the same role.)
            let firm_of = |party: &str| {
                with_firms
                    .firms()
                    .and_then(|f| f.group(party))
                    .unwrap_or_default()
                    .to_vec()
            };
            let (importers, declarants) = (firm_of(&item.importer_id), firm_of(&item.declarant_id));
            with_linked_past += usize::from(all.iter().any(|d| {
                d.date < item.date
                    && ((d.importer_id != item.importer_id && importers.contains(&d.importer_id))
                        || (d.declarant_id != item.declarant_id
                            && declarants.contains(&d.declarant_id)))
            }));
            let bits = |row: &[f64]| row.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&whole), "{:?}", item.key);
            checked += 1;
            with_history += usize::from(all.iter().any(|d| {
                d.date < item.date
                    && (d.importer_id == item.importer_id
                        || d.declarant_id == item.declarant_id
                        || d.hs6 == item.hs6)
            }));
        }
        assert!(
            checked > 100 && with_history > 50 && with_linked_past > 20,
            "{checked} items, {with_history} with history, {with_linked_past} with a linked id's past"
        );
    }
}
