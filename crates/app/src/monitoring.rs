//! Monitoring jobs: the bias audit of recorded selections and the drift / displacement report
//! between two periods, built from the store for `borderlens-monitor`.

use std::collections::HashMap;

use borderlens_domain::{DeclarationItem, FieldRegistry, FieldType, ItemKey};
use borderlens_monitor::bias::{self, AuditRecord, BiasAudit, BiasOptions};
use borderlens_monitor::drift::{
    self, DriftOptions, DriftReport, FeatureInput, OutcomeRecord, Values,
};
use borderlens_store::{Backend, ItemFilter};
use chrono::{Datelike, NaiveDate};

use crate::JobError;

fn size_band(n: usize) -> &'static str {
    match n {
        0..=1 => "1 declaration",
        2..=9 => "2-9 declarations",
        10..=99 => "10-99 declarations",
        _ => "100+ declarations",
    }
}

/// Audits the recorded selections: selection rate, hit rate and their ratio by origin country,
/// office, importer size band and declarant. A declaration counts as selected when its current
/// lane (after overrides) is red or yellow; its groups are those of the item the selection
/// decided on (item 1 for decisions that did not record it), its outcome that item's stored
/// label when selected.
pub fn bias_audit(store: &dyn Backend, options: &BiasOptions) -> Result<BiasAudit, JobError> {
    let records: Vec<AuditRecord> = audit_records(store)?
        .into_iter()
        .map(|(_, record)| record)
        .collect();
    Ok(bias::audit(&records, options))
}

/// The bias audit's records, one per decided declaration (by id), built from the item each
/// decision was made on.
pub(crate) fn audit_records(store: &dyn Backend) -> Result<Vec<(String, AuditRecord)>, JobError> {
    let decisions = store.decisions(None)?;
    if decisions.is_empty() {
        return Err(JobError::Invalid(
            "no selection decisions recorded: run `borderlens select` first".into(),
        ));
    }
    // Design decision (first) and current lane (last) per declaration.
    let mut per_declaration: HashMap<&str, (usize, usize)> = HashMap::new();
    for (i, d) in decisions.iter().enumerate() {
        per_declaration
            .entry(d.decision.declaration_id.as_str())
            .and_modify(|e| e.1 = i)
            .or_insert((i, i));
    }
    let all = store.items(&ItemFilter {
        from: None,
        to: None,
        labelled_only: false,
    })?;
    let mut importer_counts: HashMap<&str, usize> = HashMap::new();
    for item in &all {
        *importer_counts
            .entry(item.importer_id.as_str())
            .or_default() += 1;
    }
    let items: HashMap<(&str, u32), &DeclarationItem> = all
        .iter()
        .map(|d| ((d.key.declaration_id.as_str(), d.key.item_no), d))
        .collect();
    let mut records = Vec::with_capacity(per_declaration.len());
    let mut ids: Vec<&&str> = per_declaration.keys().collect();
    ids.sort();
    for id in ids {
        let (first, last) = per_declaration[*id];
        let design = &decisions[first].decision;
        let Some(item) = items.get(&(*id, design.item_no.unwrap_or(1))) else {
            continue;
        };
        let selected = decisions[last].decision.lane.is_control();
        let design_selected =
            design.source.is_design_selection() && decisions[last].decision.lane == design.lane;
        records.push((
            id.to_string(),
            AuditRecord {
                groups: vec![
                    ("origin country".into(), item.origin_country.clone()),
                    ("office".into(), item.office_id.clone()),
                    (
                        "importer size".into(),
                        size_band(importer_counts[item.importer_id.as_str()]).into(),
                    ),
                    ("declarant".into(), item.declarant_id.clone()),
                ],
                selected,
                stratum: Some(format!("{} {}", design.batch, design.stratum)),
                pi: Some(design.pi),
                outcome: if selected {
                    item.label.map(|l| l.fraud)
                } else {
                    None
                },
                design_selected,
            },
        ));
    }
    Ok(records)
}

/// Two periods to compare.
pub struct DriftRequest {
    /// Reference period.
    pub reference: (NaiveDate, NaiveDate),
    /// Current period.
    pub current: (NaiveDate, NaiveDate),
    /// Scores of this model, when given, are compared too.
    pub model: Option<String>,
    /// Compare the model's scores only where it scored: items without a saved score of the
    /// model are left out of the score's comparison (not counted as missing) on both sides, and
    /// the score is not compared when either period has none. Otherwise an unscored item is a
    /// missing score, and a period of unscored days against a scored one is a shift.
    pub scored_only: bool,
}

fn week_of(date: NaiveDate) -> String {
    let w = date.iso_week();
    format!("{}-W{:02}", w.year(), w.week())
}

/// Feature, score and hit-rate drift between two periods, with displacement of hits across
/// offices, routes, HS chapters, weekdays and concealment methods.
pub fn drift_report(store: &dyn Backend, request: &DriftRequest) -> Result<DriftReport, JobError> {
    let period = |(from, to): (NaiveDate, NaiveDate)| {
        store.items(&ItemFilter {
            from: Some(from),
            to: Some(to),
            labelled_only: false,
        })
    };
    let reference = period(request.reference)?;
    let current = period(request.current)?;
    if reference.is_empty() || current.is_empty() {
        return Err(JobError::Invalid(format!(
            "no declarations in the {} period",
            if reference.is_empty() {
                "reference"
            } else {
                "current"
            }
        )));
    }
    let concealment: HashMap<String, String> = store
        .control_results()?
        .into_iter()
        .filter_map(|r| {
            let value: serde_json::Value = serde_json::from_str(&r.result.payload_json).ok()?;
            let method = value
                .get("values")?
                .get("concealment_method")?
                .as_str()?
                .to_string();
            Some((r.result.declaration_id, method))
        })
        .collect();
    // The declared fields the registry says drift watches (codes as declared, amounts on a log
    // scale), then what is derived from them: the HS chapter and the unit value, read as the
    // model reads it.
    let mut categorical: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
    let mut numeric: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for field in FieldRegistry::standard()
        .fields()
        .iter()
        .filter(|f| f.drift)
    {
        if field.ty.is_number() {
            let log = field.ty == FieldType::Amount;
            let value = |d: &DeclarationItem| {
                let v = field.get(d).number().unwrap_or(f64::NAN);
                if log {
                    v.ln_1p()
                } else {
                    v
                }
            };
            let name = if log {
                format!("{}, log scale", field.words)
            } else {
                field.words.to_string()
            };
            numeric.push((
                name,
                reference.iter().map(value).collect(),
                current.iter().map(value).collect(),
            ));
        } else {
            let value = |d: &DeclarationItem| field.get(d).to_string();
            categorical.push((
                field.words.to_string(),
                reference.iter().map(value).collect(),
                current.iter().map(value).collect(),
            ));
        }
    }
    let chapter = |d: &DeclarationItem| d.hs6.chapter().to_string();
    categorical.push((
        "HS chapter".to_string(),
        reference.iter().map(chapter).collect(),
        current.iter().map(chapter).collect(),
    ));
    let unit_value = |d: &DeclarationItem| d.log_unit_value().unwrap_or(f64::NAN);
    numeric.push((
        "unit value (log price per kg)".to_string(),
        reference.iter().map(unit_value).collect(),
        current.iter().map(unit_value).collect(),
    ));
    let cat_refs: Vec<(Vec<&str>, Vec<&str>)> = categorical
        .iter()
        .map(|(_, r, c)| {
            (
                r.iter().map(String::as_str).collect(),
                c.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut features = Vec::new();
    for ((name, _, _), (r, c)) in categorical.iter().zip(&cat_refs) {
        features.push(FeatureInput {
            name: name.clone(),
            reference: Values::Categorical(r),
            current: Values::Categorical(c),
        });
    }
    for (name, r, c) in &numeric {
        features.push(FeatureInput {
            name: name.clone(),
            reference: Values::Numeric(r),
            current: Values::Numeric(c),
        });
    }
    let scores = match &request.model {
        Some(model) => {
            let score_of = |items: &[DeclarationItem]| -> Result<Vec<f64>, JobError> {
                let mut scored = Vec::with_capacity(items.len());
                for item in items {
                    let s = store
                        .scores_for(&ItemKey {
                            declaration_id: item.key.declaration_id.clone(),
                            item_no: item.key.item_no,
                        })?
                        .into_iter()
                        .filter(|s| &s.model == model)
                        .max_by_key(|s| s.version)
                        .map_or(f64::NAN, |s| s.score);
                    scored.push(s);
                }
                Ok(scored)
            };
            let (mut r, mut c) = (score_of(&reference)?, score_of(&current)?);
            if request.scored_only {
                r.retain(|s| !s.is_nan());
                c.retain(|s| !s.is_nan());
            }
            if request.scored_only && (r.is_empty() || c.is_empty()) {
                None
            } else {
                Some((r, c))
            }
        }
        None => None,
    };
    let score = scores.as_ref().map(|(r, c)| FeatureInput {
        name: format!("score ({})", request.model.as_deref().unwrap_or_default()),
        reference: Values::Numeric(r),
        current: Values::Numeric(c),
    });
    let outcomes = |items: &[DeclarationItem]| -> Vec<OutcomeRecord> {
        items
            .iter()
            .filter_map(|d| {
                let label = d.label?;
                let mut groups = vec![
                    ("office".to_string(), d.office_id.clone()),
                    (
                        "route".to_string(),
                        format!("{}→{}", d.departure_country, d.origin_country),
                    ),
                    ("HS chapter".to_string(), d.hs6.as_str()[..2].to_string()),
                    ("weekday".to_string(), d.date.weekday().to_string()),
                ];
                if let Some(method) = concealment.get(&d.key.declaration_id) {
                    groups.push(("concealment".to_string(), method.clone()));
                }
                Some(OutcomeRecord {
                    window: week_of(d.date),
                    groups,
                    hit: label.fraud,
                })
            })
            .collect()
    };
    Ok(drift::drift_report(
        &features,
        score,
        &outcomes(&reference),
        &outcomes(&current),
        &DriftOptions::default(),
    ))
}

/// Hit-rate series per week for a dimension (office, route, HS chapter, weekday,
/// concealment) over a period, for charts.
pub fn hit_rate_series(
    store: &dyn Backend,
    from: NaiveDate,
    to: NaiveDate,
    dimension: &str,
    top: usize,
) -> Result<Vec<drift::Series>, JobError> {
    let items = store.items(&ItemFilter {
        from: Some(from),
        to: Some(to),
        labelled_only: true,
    })?;
    let records: Vec<OutcomeRecord> = items
        .iter()
        .filter_map(|d| {
            let label = d.label?;
            Some(OutcomeRecord {
                window: week_of(d.date),
                groups: vec![
                    ("office".to_string(), d.office_id.clone()),
                    (
                        "route".to_string(),
                        format!("{}→{}", d.departure_country, d.origin_country),
                    ),
                    ("HS chapter".to_string(), d.hs6.as_str()[..2].to_string()),
                    ("weekday".to_string(), d.date.weekday().to_string()),
                ],
                hit: label.fraud,
            })
        })
        .collect();
    Ok(drift::hit_rate_series(&records, dimension, top))
}
