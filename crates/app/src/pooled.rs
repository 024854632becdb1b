//! Foreign control results and pooled statistics (issue 17): another administration's
//! anonymised results are stored apart from this store's own ([`store_foreign_document`]), and
//! hit rates by origin, route and concealment method pool the own controls with every
//! sender's ([`pooled_statistics`]). What goes out with an export is the declaration's context
//! ([`declaration_context`]): attributes of the goods' journey and of the selection, never a
//! person, a firm, a place or an officer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use borderlens_controls::exchange::{
    is_country_code, is_transport_code, ImportedDocument, ResultContext,
};
use borderlens_controls::FormSchema;
use borderlens_domain::{hex, DeclarationItem, ItemKey};
use borderlens_selection::estimate::{self, RateEstimate};
use borderlens_store::{Backend, ForeignDocument, ForeignImport, ItemFilter, NewForeignResult};
use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::JobError;

/// The dimensions pooled statistics are split by.
pub const POOLED_DIMENSIONS: [&str; 3] = ["origin", "route", "concealment"];

/// The name of this store's own controls among a report's sources.
pub const OWN: &str = "own";

/// What an export tells a partner about the declaration a result is about: the origin,
/// departure country and transport mode, the HS chapter of the item the selection decided on
/// (item 1 when none was recorded), and the inclusion probability of its design decision when
/// the declaration was selected by the design and not overridden. `None` when the declaration
/// is not stored. Codes that are not plain letters and digits are left out, never sent.
pub fn declaration_context(
    store: &dyn Backend,
    declaration_id: &str,
) -> Result<Option<ResultContext>, JobError> {
    let decisions = store.decisions_for(declaration_id)?;
    let item_no = crate::decisions::decided_item(&decisions).unwrap_or(1);
    let item = match store.item(&ItemKey {
        declaration_id: declaration_id.to_string(),
        item_no,
    })? {
        Some(item) => item,
        None => match store.declaration(declaration_id)? {
            Some(declaration) => match declaration.items().first() {
                Some(item) => item.clone(),
                None => return Ok(None),
            },
            None => return Ok(None),
        },
    };
    let design = decisions.iter().find(|d| d.overrides.is_none());
    let overridden = decisions.iter().any(|d| d.overrides.is_some());
    let selection_probability = design
        .filter(|d| !overridden && d.decision.source.is_design_selection())
        .map(|d| d.decision.pi)
        .filter(|&pi| pi > 0.0 && pi <= 1.0);
    Ok(Some(ResultContext {
        selection_probability,
        ..item_context(&item)
    }))
}

/// The journey attributes of an item as a context (no selection probability); a code the
/// exchange format would not take is left out.
fn item_context(item: &DeclarationItem) -> ResultContext {
    let code = |text: &str, valid: fn(&str) -> bool| valid(text).then(|| text.to_string());
    let chapter = &item.hs6.as_str()[..2];
    ResultContext {
        origin_country: code(&item.origin_country, is_country_code),
        departure_country: code(&item.departure_country, is_country_code),
        transport_mode: code(&item.transport_mode, is_transport_code),
        hs_chapter: (chapter != "00").then(|| chapter.to_string()),
        selection_probability: None,
    }
}

/// Stores an anonymised document read from `file` (`text` its bytes) as foreign results, whole
/// or not at all.
pub(crate) fn store_foreign_document(
    store: &mut dyn Backend,
    file: &str,
    text: &str,
    document: &ImportedDocument,
) -> Result<ForeignImport, JobError> {
    let schema = FormSchema::builtin();
    let results = document
        .results
        .iter()
        .map(|(result, context)| NewForeignResult {
            submission_id: result.submission_id().to_string(),
            declaration_id: result.declaration_id().to_string(),
            outcome: result.outcome().to_string(),
            label: result.label(schema),
            inspected_on: result
                .inspected_at()
                .date_naive()
                .format("%Y-%m-%d")
                .to_string(),
            // Only codes, numbers and dates are kept: free text (a brand, a species, a rights
            // holder) could carry a name, and statistics read none of it. Plain maps of
            // validated JSON values serialise.
            values_json: serde_json::to_string(&without_text(schema, result.values()))
                .unwrap_or_default(),
            context_json: context
                .as_ref()
                .map(|c| serde_json::to_string(c).unwrap_or_default()),
        })
        .collect();
    let foreign = ForeignDocument {
        sender: document.sender.clone(),
        format_version: document.format_version,
        schema_version: document.schema_version.clone(),
        generated_at: document
            .generated_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        source: file.to_string(),
        document_sha256: hex::encode(&Sha256::digest(text.as_bytes())),
        results,
    };
    Ok(store.record_foreign_results(&foreign)?)
}

/// `values` without the answers to free-text fields.
fn without_text(
    schema: &FormSchema,
    values: &BTreeMap<String, serde_json::Value>,
) -> BTreeMap<String, serde_json::Value> {
    values
        .iter()
        .filter(|(name, _)| {
            schema
                .field(name)
                .is_some_and(|f| f.kind != borderlens_controls::FieldType::Text)
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Controls and findings of one source in one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Tally {
    /// Controlled declarations (for `concealment`: findings of the source, all methods).
    pub controls: usize,
    /// Of them, fraud found (for `concealment`: findings with this method).
    pub hits: usize,
}

/// One source of a pooled report: this store, or one foreign sender.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PooledSource {
    /// [`OWN`], or the sender's code.
    pub source: String,
    /// Exchange documents it came in (0 for own).
    pub documents: usize,
    /// Its controls and findings over all segments.
    pub total: Tally,
    /// When its newest document was made (foreign senders).
    pub newest_document: Option<String>,
}

/// A design-weighted (Hájek) rate: every control weighted by the inverse of the probability
/// with which its selection design picked it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct WeightedRate {
    /// Σ hit/π ÷ Σ 1/π.
    pub rate: f64,
    /// Lower bound (Wilson on Kish's effective sample size).
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Controls it rests on.
    pub controls: usize,
}

/// One segment of a pooled report.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PooledSegment {
    /// The origin country, route (`departure/transport mode`) or concealment method.
    pub segment: String,
    /// Per source, in [`PooledReport::sources`] order.
    pub counts: Vec<Tally>,
    /// All sources together: hit rate among the controls (for `concealment`: the method's
    /// share of the findings), with a Wilson interval.
    pub pooled: RateEstimate,
    /// The design-weighted rate, when every pooled control of the segment carries its
    /// selection probability (not for `concealment`).
    pub weighted: Option<WeightedRate>,
}

/// Hit rates pooled across this store's controls and the foreign results it imported.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct PooledReport {
    /// `origin`, `route` or `concealment`.
    pub dimension: String,
    /// `hit rate`, or `share of findings` for `concealment`.
    pub measure: String,
    /// The sources, own first, then the senders by code.
    pub sources: Vec<PooledSource>,
    /// The segments, most controls first.
    pub segments: Vec<PooledSegment>,
}

/// One controlled declaration, as pooled statistics see it.
struct Control {
    hit: bool,
    context: ResultContext,
    concealment: Option<String>,
}

const NOT_GIVEN: &str = "not given";

/// Pools hit rates by `dimension` ([`POOLED_DIMENSIONS`]) over this store's controlled
/// declarations (every labelled declaration: imported labels and recorded control results)
/// and the foreign results, per declaration (a declaration is a hit when any of its items or
/// results found fraud). Foreign declarations are the senders' pseudonyms: never matched with
/// this store's. `confidence` is the level of the intervals.
pub fn pooled_statistics(
    store: &dyn Backend,
    dimension: &str,
    confidence: f64,
) -> Result<PooledReport, JobError> {
    if !POOLED_DIMENSIONS.contains(&dimension) {
        return Err(JobError::Invalid(format!(
            "unknown dimension '{dimension}': use one of {}",
            POOLED_DIMENSIONS.join(", ")
        )));
    }
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(JobError::Invalid(format!(
            "confidence {confidence} is not between 0 and 1"
        )));
    }
    let mut sources: BTreeMap<String, (Vec<Control>, PooledSource)> = BTreeMap::new();
    let own = own_controls(store)?;
    sources.insert(
        OWN.to_string(),
        (
            own,
            PooledSource {
                source: OWN.to_string(),
                documents: 0,
                total: Tally::default(),
                newest_document: None,
            },
        ),
    );
    let mut foreign: BTreeMap<(String, String), Control> = BTreeMap::new();
    // Per sender: its documents' digests and when its newest was made.
    let mut documents: BTreeMap<String, (BTreeSet<String>, String)> = BTreeMap::new();
    for stored in store.foreign_results()? {
        let Some(label) = stored.result.label else {
            continue;
        };
        let (digests, newest) = documents.entry(stored.sender.clone()).or_default();
        digests.insert(stored.document_sha256.clone());
        if stored.generated_at > *newest {
            newest.clone_from(&stored.generated_at);
        }
        let context: ResultContext = stored
            .result
            .context_json
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_default();
        let concealment = serde_json::from_str::<serde_json::Value>(&stored.result.values_json)
            .ok()
            .and_then(|v| v["concealment_method"].as_str().map(str::to_string));
        let control = foreign
            .entry((stored.sender.clone(), stored.result.declaration_id.clone()))
            .or_insert(Control {
                hit: false,
                context,
                concealment: None,
            });
        control.hit |= label.fraud;
        if concealment.is_some() {
            control.concealment = concealment;
        }
    }
    for ((sender, _), control) in foreign {
        let entry = sources.entry(sender.clone()).or_insert_with(|| {
            let (digests, newest) = documents
                .get(&sender)
                .map(|(d, newest)| (d.len(), newest.clone()))
                .unwrap_or_default();
            (
                Vec::new(),
                PooledSource {
                    source: sender.clone(),
                    documents: digests,
                    total: Tally::default(),
                    newest_document: Some(newest),
                },
            )
        });
        entry.0.push(control);
    }
    // Own first, then the senders by code.
    let mut ordered: Vec<(Vec<Control>, PooledSource)> = Vec::new();
    if let Some(own) = sources.remove(OWN) {
        ordered.push(own);
    }
    ordered.extend(sources.into_values());

    let concealment = dimension == "concealment";
    let segment_of = |c: &Control| -> Option<String> {
        let given = |v: &Option<String>| v.clone().unwrap_or_else(|| NOT_GIVEN.to_string());
        match dimension {
            "origin" => Some(given(&c.context.origin_country)),
            "route" => Some(
                if c.context.departure_country.is_none() && c.context.transport_mode.is_none() {
                    NOT_GIVEN.to_string()
                } else {
                    c.context.route()
                },
            ),
            // Only findings have a concealment method.
            _ => c.hit.then(|| {
                c.concealment
                    .clone()
                    .unwrap_or_else(|| "not recorded".to_string())
            }),
        }
    };
    let n_sources = ordered.len();
    // Per segment: the tallies per source, and every pooled control's (hit, π).
    type Members = Vec<(bool, Option<f64>)>;
    let mut segments: BTreeMap<String, (Vec<Tally>, Members)> = BTreeMap::new();
    for (i, (controls, source)) in ordered.iter_mut().enumerate() {
        let findings = controls.iter().filter(|c| c.hit).count();
        source.total = Tally {
            controls: if concealment {
                findings
            } else {
                controls.len()
            },
            hits: findings,
        };
        for control in controls.iter() {
            let Some(segment) = segment_of(control) else {
                continue;
            };
            let (tallies, members) = segments
                .entry(segment)
                .or_insert_with(|| (vec![Tally::default(); n_sources], Vec::new()));
            tallies[i].hits += usize::from(control.hit);
            if !concealment {
                tallies[i].controls += 1;
                members.push((control.hit, control.context.selection_probability));
            }
        }
    }
    // By concealment method, every segment's denominator is each source's findings, whatever
    // segments the source has.
    if concealment {
        for (tallies, _) in segments.values_mut() {
            for (tally, (_, source)) in tallies.iter_mut().zip(&ordered) {
                tally.controls = source.total.controls;
            }
        }
    }
    let mut out: Vec<PooledSegment> = segments
        .into_iter()
        .map(|(segment, (counts, members))| {
            let controls: usize = counts.iter().map(|t| t.controls).sum();
            let hits: usize = counts.iter().map(|t| t.hits).sum();
            PooledSegment {
                segment,
                pooled: estimate::naive(controls, hits, controls, confidence),
                weighted: weighted_rate(&members, confidence),
                counts,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.pooled
            .inspected
            .cmp(&a.pooled.inspected)
            .then(b.pooled.hits.cmp(&a.pooled.hits))
            .then_with(|| a.segment.cmp(&b.segment))
    });
    Ok(PooledReport {
        dimension: dimension.to_string(),
        measure: if concealment {
            "share of findings"
        } else {
            "hit rate"
        }
        .to_string(),
        sources: ordered.into_iter().map(|(_, source)| source).collect(),
        segments: out,
    })
}

/// The report as a chart: per segment (the 30 with most controls), the pooled rate with its
/// interval, and this store's own rate as the value compared with.
pub fn pooled_chart(report: &PooledReport) -> String {
    use borderlens_charts::intervals::{intervals_svg, IntervalRow};
    let own = report.sources.iter().position(|s| s.source == OWN);
    let rows: Vec<IntervalRow> = report
        .segments
        .iter()
        .take(30)
        .map(|s| {
            let own_rate = own
                .map(|i| s.counts[i])
                .filter(|t| t.controls > 0)
                .map(|t| t.hits as f64 / t.controls as f64);
            let note = report
                .sources
                .iter()
                .zip(&s.counts)
                .filter(|(_, t)| t.controls > 0)
                .map(|(source, t)| format!("{} {}/{}", source.source, t.hits, t.controls))
                .collect::<Vec<_>>()
                .join(", ");
            IntervalRow {
                name: s.segment.clone(),
                estimate: s.pooled.rate.is_finite().then_some((
                    s.pooled.rate,
                    s.pooled.low,
                    s.pooled.high,
                )),
                compared: own_rate,
                note,
            }
        })
        .collect();
    intervals_svg(
        &format!("Pooled {} by {}", report.measure, report.dimension),
        &rows,
        &report.measure,
        "pooled (all sources)",
        "own controls only",
    )
}

/// The Hájek rate of `members` (hit, π), when there are some and every one has its π.
fn weighted_rate(members: &[(bool, Option<f64>)], confidence: f64) -> Option<WeightedRate> {
    if members.is_empty() {
        return None;
    }
    let weights: Option<Vec<(bool, f64)>> = members
        .iter()
        .map(|&(hit, pi)| pi.filter(|p| *p > 0.0).map(|p| (hit, 1.0 / p)))
        .collect();
    let weights = weights?;
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let squares: f64 = weights.iter().map(|(_, w)| w * w).sum();
    let rate = weights
        .iter()
        .filter(|(hit, _)| *hit)
        .map(|(_, w)| w)
        .sum::<f64>()
        / total;
    let (low, high) = estimate::wilson_effective(rate, total * total / squares, confidence);
    Some(WeightedRate {
        rate,
        low,
        high,
        controls: members.len(),
    })
}

/// The concealment method of each declaration's latest control result that names one, by
/// declaration id (also a federation node's, for pooled statistics by concealment).
pub(crate) fn concealment_by_declaration(
    store: &dyn Backend,
) -> Result<BTreeMap<String, String>, JobError> {
    let schema = FormSchema::builtin();
    let mut concealment = BTreeMap::new();
    for stored in store.control_results()? {
        if let Ok(result) = schema.read_stored(&stored.result.payload_json) {
            if let Some(method) = result.code("concealment_method") {
                concealment.insert(stored.result.declaration_id.clone(), method.to_string());
            }
        }
    }
    Ok(concealment)
}

/// This store's controlled declarations: every labelled one, with its first item's context,
/// the π of its design decision when not overridden, and the concealment method of its latest
/// recorded result that names one.
fn own_controls(store: &dyn Backend) -> Result<Vec<Control>, JobError> {
    let concealment = concealment_by_declaration(store)?;
    let mut pi: HashMap<String, Option<f64>> = HashMap::new();
    for d in store.decisions(None)? {
        let id = d.decision.declaration_id.clone();
        if d.overrides.is_some() {
            pi.insert(id, None);
        } else {
            let design = d.decision.source.is_design_selection() && d.decision.pi > 0.0;
            pi.entry(id).or_insert(design.then_some(d.decision.pi));
        }
    }
    let mut by_declaration: BTreeMap<String, Control> = BTreeMap::new();
    for item in store.items(&ItemFilter {
        labelled_only: true,
        ..ItemFilter::default()
    })? {
        let Some(label) = item.label else { continue };
        let id = item.key.declaration_id.clone();
        let control = by_declaration.entry(id.clone()).or_insert_with(|| Control {
            hit: false,
            context: ResultContext {
                selection_probability: pi.get(&id).copied().flatten(),
                ..item_context(&item)
            },
            concealment: concealment.get(&id).cloned(),
        });
        control.hit |= label.fraud;
    }
    Ok(by_declaration.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_rate_weighs_by_inverse_probability() {
        // One hit picked with π = 0.5, three clean picked with π = 0.1: the clean ones stand
        // for 30 declarations, the hit for 2.
        let members = [
            (true, Some(0.5)),
            (false, Some(0.1)),
            (false, Some(0.1)),
            (false, Some(0.1)),
        ];
        let w = weighted_rate(&members, 0.95).unwrap();
        assert!((w.rate - 2.0 / 32.0).abs() < 1e-12, "{}", w.rate);
        assert!(w.low <= w.rate && w.rate <= w.high);
        assert_eq!(w.controls, 4);
        // One control without its π: no weighted rate.
        assert!(weighted_rate(&[(true, Some(0.5)), (false, None)], 0.95).is_none());
        assert!(weighted_rate(&[], 0.95).is_none());
    }
}
