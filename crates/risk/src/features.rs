//! The feature pipeline: declaration items (and the labelled past) → model columns.
//!
//! Leakage rules, enforced here and nowhere else:
//! - every history feature of an item dated `d` reads only items dated strictly before `d`
//!   (`HistoryState` is advanced day by day, after the day's features are taken);
//! - category vocabularies are fixed when the model is trained; a code first seen later maps to the
//!   "unseen" code, which no categorical split sends left;
//! - nothing reads the label of the item being described;
//! - text signals ([`TextSignals`]: what an HS model read the item's own goods descriptions as)
//!   are derived from that item's declared texts and code only, never from a label; they are
//!   computed outside this crate (which knows no HS model) and passed in per item.
//!
//! High-cardinality parties (importer, seller) are described by their history rather than by
//! their identity: counts, smoothed past fraud rate and seniority. A pipeline fitted with
//! [`Firms`] (issue 13) also describes the importer's and the declarant's *firm*: every id a
//! record-linkage run found to be that firm, so that a firm which changes id does not shed its
//! past. The links come from names and addresses, never from labels.

use std::collections::HashMap;

use borderlens_domain::{
    DeclarationItem, DeclaredValue, FieldRegistry, ItemKey, LabelKind, GOODS_DESCRIPTION,
};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, FeatureInfo, FeatureKind};

/// Declared code fields read as native categoricals: (column name, business words, accessor).
type Accessor = fn(&DeclarationItem) -> Option<&str>;
const CATEGORICALS: [(&str, &str, Accessor); 15] = [
    ("office", "customs office", |d| Some(&d.office_id)),
    ("process_type", "process type", |d| Some(&d.process_type)),
    ("import_type", "import type", |d| Some(&d.import_type)),
    ("import_use", "import use", |d| Some(&d.import_use)),
    ("payment_type", "payment type", |d| Some(&d.payment_type)),
    ("transport_mode", "mode of transport", |d| {
        Some(&d.transport_mode)
    }),
    ("tax_type", "tax type", |d| Some(&d.tax_type)),
    ("origin_indicator", "origin indicator", |d| {
        Some(&d.origin_indicator)
    }),
    ("departure_country", "country of departure", |d| {
        Some(&d.departure_country)
    }),
    ("origin_country", "country of origin", |d| {
        Some(&d.origin_country)
    }),
    ("hs_chapter", "HS chapter", |d| Some(d.hs6.chapter())),
    ("hs_heading", "HS heading", |d| Some(d.hs6.heading())),
    ("hs6", "HS code", |d| Some(d.hs6.as_str())),
    ("declarant", "declarant", |d| Some(&d.declarant_id)),
    ("courier", "courier", |d| d.courier_id.as_deref()),
];

/// Parties and goods whose past control results become features.
const HISTORIES: [(&str, &str, Accessor); 4] = [
    ("importer", "importer", |d| Some(&d.importer_id)),
    ("declarant", "declarant", |d| Some(&d.declarant_id)),
    ("seller", "seller", |d| d.seller_id.as_deref()),
    ("hs6", "HS code", |d| Some(d.hs6.as_str())),
];

/// Pseudo-count of the prior in smoothed fraud rates.
const PRIOR_STRENGTH: f64 = 5.0;

/// Below this many past declarations or controls, a history feature "rests on few": a smoothed
/// fraud rate then owes at least a third of its weight to the prior (5 / (5 + n) ≥ 1/3 for
/// n ≤ 10), and counts and seniority say little about a party.
pub const FEW_PAST: u64 = 10;

/// What a history column's value rests on: how many past declarations or controls of the same
/// party (or HS code) it was computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistorySupport {
    /// How many.
    pub count: u64,
    /// What was counted: `past declarations` or `past controls`.
    pub counted: &'static str,
}

impl HistorySupport {
    /// Whether the count is below [`FEW_PAST`].
    pub fn few(&self) -> bool {
        self.count < FEW_PAST
    }

    /// `from 2 past controls (few)`, the plural and the warning as they apply.
    pub fn in_words(&self) -> String {
        let counted = match (self.count, self.counted) {
            (1, "past declarations") => "past declaration",
            (1, "past controls") => "past control",
            (_, counted) => counted,
        };
        let few = if self.few() { " (few)" } else { "" };
        format!("from {} {counted}{few}", self.count)
    }
}

/// What an HS model read one item's goods descriptions as (issue 14): derived values, computed
/// by the caller (the app reads them from the stored HS readings), never declared. `risk`
/// knows no HS model; it turns these numbers into the text columns.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TextSignals {
    /// `1 − P(declared chapter | sender's text)`; `None` when not read (routed to review, a
    /// declared code outside the nomenclature).
    pub chapter_mismatch: Option<f64>,
    /// `1 − P(declared heading | sender's text)`.
    pub heading_mismatch: Option<f64>,
    /// `1 − P(declared subheading | sender's text)`.
    pub hs6_mismatch: Option<f64>,
    /// The chapter, heading and 6-digit code the text reads as best (for explanations).
    pub reads_as: [Option<String>; 3],
    /// Probability that the sender's text is too vague to classify.
    pub vagueness: Option<f64>,
    /// Whether the text is routed to an officer's review (too vague or unreadable).
    pub review: bool,
    /// How far the sender's and the cleaned texts read apart (0 to 1), when both exist.
    pub cleaned_disagreement: Option<f64>,
}

/// Text signals per item, for the items that have them.
pub type TextSignalMap = HashMap<ItemKey, TextSignals>;

/// The text columns, appended after the history columns in a pipeline fitted with text:
/// (column name, business words).
const TEXT_COLUMNS: [(&str, &str); 7] = [
    ("no_description", "no goods description declared"),
    (
        "description_chapter_mismatch",
        "description reads as another HS chapter than declared (1 − P(declared chapter))",
    ),
    (
        "description_heading_mismatch",
        "description reads as another HS heading than declared (1 − P(declared heading))",
    ),
    (
        "description_hs6_mismatch",
        "description reads as another HS code than declared (1 − P(declared code))",
    ),
    (
        "description_vagueness",
        "description too vague to classify (probability)",
    ),
    (
        "description_routed_to_review",
        "description too vague or unreadable: routed to review",
    ),
    (
        "description_cleaned_disagreement",
        "sender's and cleaned descriptions read as different goods (0 to 1)",
    ),
];

/// Whether `item` carries a sender's goods description (not empty, not only blanks).
pub fn has_description(item: &DeclarationItem) -> bool {
    matches!(item.extra.get(GOODS_DESCRIPTION), Some(DeclaredValue::Text(t)) if !t.trim().is_empty())
}

fn is_false(value: &bool) -> bool {
    !value
}

/// Parties that a record-linkage run found to be one firm under several ids (the store's party
/// links), frozen into a pipeline when it is fitted, as the vocabularies are: the model scores
/// with the groups it was trained on, and a later linkage run reaches it at its next training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "FirmsWire", into = "FirmsWire")]
pub struct Firms {
    /// The linkage run the groups come from.
    run: String,
    /// Each group's party ids, sorted; the groups sorted by their first id.
    groups: Vec<Vec<String>>,
    /// Party id → index in `groups` (rebuilt from `groups`, never saved).
    index: HashMap<String, usize>,
}

/// How [`Firms`] are saved: the groups only.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FirmsWire {
    run: String,
    groups: Vec<Vec<String>>,
}

impl From<FirmsWire> for Firms {
    fn from(wire: FirmsWire) -> Firms {
        Firms::new(&wire.run, wire.groups)
    }
}

impl From<Firms> for FirmsWire {
    fn from(firms: Firms) -> FirmsWire {
        FirmsWire {
            run: firms.run,
            groups: firms.groups,
        }
    }
}

impl Firms {
    /// The firms of linkage run `run` from its groups of party ids. Groups of fewer than two
    /// distinct ids link nothing and are dropped; an id in several groups is kept in the first
    /// (by sorted order) only, so that every party belongs to one firm at most.
    pub fn new(run: &str, groups: Vec<Vec<String>>) -> Firms {
        let mut groups: Vec<Vec<String>> = groups
            .into_iter()
            .map(|mut g| {
                g.sort_unstable();
                g.dedup();
                g
            })
            .collect();
        groups.sort_unstable();
        let mut index = HashMap::new();
        let mut kept = Vec::with_capacity(groups.len());
        for group in groups {
            let group: Vec<String> = group
                .into_iter()
                .filter(|id| !index.contains_key(id))
                .collect();
            if group.len() < 2 {
                continue;
            }
            for id in &group {
                index.insert(id.clone(), kept.len());
            }
            kept.push(group);
        }
        Firms {
            run: run.to_string(),
            groups: kept,
            index,
        }
    }

    /// The linkage run the groups come from.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// How many parties are linked, in how many groups.
    pub fn counts(&self) -> (usize, usize) {
        (self.index.len(), self.groups.len())
    }

    /// The ids of `party`'s firm, itself included (sorted); `None` when it is linked to no other.
    pub fn group(&self, party: &str) -> Option<&[String]> {
        self.index
            .get(party)
            .and_then(|&g| self.groups.get(g))
            .map(Vec::as_slice)
    }
}

/// The history entities ([`HISTORIES`] indexes) whose firm a pipeline with [`Firms`] also
/// describes: (index, column name prefix, business words).
const FIRM_HISTORIES: [(usize, &str, &str); 2] = [
    (0, "importer_firm", "importer's firm (all its linked ids)"),
    (1, "declarant_firm", "declarant's firm (all its linked ids)"),
];

/// The fitted pipeline: category vocabularies learned at training time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeaturePipeline {
    /// Sorted distinct codes per categorical column, in [`CATEGORICALS`] order.
    vocabularies: Vec<Vec<String>>,
    /// Whether the text columns ([`TEXT_COLUMNS`]) follow the history columns. Absent (false)
    /// in models saved before they existed, and left out of the bytes when false, so that a
    /// model without them is saved as before.
    #[serde(default, skip_serializing_if = "is_false")]
    text: bool,
    /// The firms whose history the firm columns ([`FIRM_HISTORIES`]) read, after the text
    /// columns. Absent in models trained without them, and then left out of the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    firms: Option<Firms>,
}

/// Running statistics of everything dated before the day being described.
#[derive(Clone, Debug, Default)]
pub struct HistoryState {
    /// Per history key (e.g. importer id): (declarations, controlled, frauds, first date).
    entities: Vec<HashMap<String, EntityStats>>,
    /// Sum and count of log unit values by HS6×origin, and by HS6 alone.
    norms_hs_origin: HashMap<(String, String), (f64, f64)>,
    norms_hs: HashMap<String, (f64, f64)>,
    controlled: f64,
    frauds: f64,
}

#[derive(Clone, Debug, Default)]
struct EntityStats {
    declarations: f64,
    controlled: f64,
    frauds: f64,
    first_seen: Option<NaiveDate>,
}

impl FeaturePipeline {
    /// Learns the vocabularies from the training items.
    pub fn fit(items: &[DeclarationItem]) -> FeaturePipeline {
        FeaturePipeline::fit_with_text(items, false)
    }

    /// [`FeaturePipeline::fit`], with the text columns when `text`.
    pub fn fit_with_text(items: &[DeclarationItem], text: bool) -> FeaturePipeline {
        let vocabularies = CATEGORICALS
            .iter()
            .map(|(_, _, get)| {
                let mut codes: Vec<String> = items
                    .iter()
                    .filter_map(|d| get(d).map(str::to_string))
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                codes
            })
            .collect();
        FeaturePipeline {
            vocabularies,
            text,
            firms: None,
        }
    }

    /// The pipeline with the firm columns, reading the history of `firms`.
    pub fn with_firms(mut self, firms: Firms) -> FeaturePipeline {
        self.firms = Some(firms);
        self
    }

    /// The firms the firm columns read (`None` for a pipeline without them).
    pub fn firms(&self) -> Option<&Firms> {
        self.firms.as_ref()
    }

    /// The other ids of the firms of `item`'s importer and declarant (linked ids whose past the
    /// firm columns read), sorted; empty without firm columns or links.
    pub fn linked_parties(&self, item: &DeclarationItem) -> Vec<String> {
        let Some(firms) = &self.firms else {
            return Vec::new();
        };
        let mut ids: Vec<String> = [&item.importer_id, &item.declarant_id]
            .into_iter()
            .flat_map(|party| {
                firms
                    .group(party)
                    .unwrap_or_default()
                    .iter()
                    .filter(move |id| *id != party)
                    .cloned()
            })
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The pipeline of the union of the items the `parts` were fitted on: every categorical
    /// column's vocabulary is the union of theirs, so that [`FeaturePipeline::fit`] of all the
    /// items together gives this pipeline. Holders of items in several places (the nodes of a
    /// federation) agree on category codes this way, sharing vocabularies but no item. `None`
    /// when `parts` is empty or the parts disagree on the text columns.
    pub fn union(parts: &[FeaturePipeline]) -> Option<FeaturePipeline> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.text != first.text || p.firms != first.firms)
        {
            return None;
        }
        let vocabularies = (0..CATEGORICALS.len())
            .map(|column| {
                let mut codes: Vec<String> = parts
                    .iter()
                    .flat_map(|p| p.vocabularies.get(column).into_iter().flatten().cloned())
                    .collect();
                codes.sort_unstable();
                codes.dedup();
                codes
            })
            .collect();
        Some(FeaturePipeline {
            vocabularies,
            text: first.text,
            firms: first.firms.clone(),
        })
    }

    /// Whether the pipeline has the text columns (it reads [`TextSignals`]).
    pub fn uses_text(&self) -> bool {
        self.text
    }

    /// Column descriptions, in column order.
    pub fn features(&self) -> Vec<FeatureInfo> {
        let mut features: Vec<FeatureInfo> = CATEGORICALS
            .iter()
            .zip(&self.vocabularies)
            .map(|((name, _, _), vocabulary)| FeatureInfo {
                name: name.to_string(),
                kind: FeatureKind::Categorical {
                    // + 1: the "unseen" code.
                    cardinality: vocabulary.len() as u32 + 1,
                },
            })
            .collect();
        for name in NUMERIC_NAMES {
            features.push(FeatureInfo {
                name: name.to_string(),
                kind: FeatureKind::Numeric,
            });
        }
        for (name, _, _) in HISTORIES {
            for suffix in HISTORY_SUFFIXES {
                features.push(FeatureInfo {
                    name: format!("{name}_{suffix}"),
                    kind: FeatureKind::Numeric,
                });
            }
        }
        if self.text {
            for (name, _) in TEXT_COLUMNS {
                features.push(FeatureInfo {
                    name: name.to_string(),
                    kind: FeatureKind::Numeric,
                });
            }
        }
        if self.firms.is_some() {
            for (_, name, _) in FIRM_HISTORIES {
                for suffix in HISTORY_SUFFIXES {
                    features.push(FeatureInfo {
                        name: format!("{name}_{suffix}"),
                        kind: FeatureKind::Numeric,
                    });
                }
            }
        }
        features
    }

    /// Business words for a column, e.g. `origin_country` → "country of origin".
    pub fn describe(&self, column: usize) -> String {
        let features = self.features();
        let name = &features[column].name;
        if let Some((_, words, _)) = CATEGORICALS.iter().find(|(n, _, _)| n == name) {
            return words.to_string();
        }
        if let Some(i) = NUMERIC_NAMES.iter().position(|n| n == name) {
            return NUMERIC_WORDS[i].to_string();
        }
        if let Some((_, words)) = TEXT_COLUMNS.iter().find(|(n, _)| n == name) {
            return words.to_string();
        }
        for (entity, words, _) in HISTORIES {
            for (suffix, suffix_words) in HISTORY_SUFFIXES.iter().zip(HISTORY_WORDS) {
                if *name == format!("{entity}_{suffix}") {
                    return format!("{words}'s {suffix_words}");
                }
            }
        }
        for (_, entity, words) in FIRM_HISTORIES {
            for (suffix, suffix_words) in HISTORY_SUFFIXES.iter().zip(HISTORY_WORDS) {
                if *name == format!("{entity}_{suffix}") {
                    return format!("{words}: {suffix_words}");
                }
            }
        }
        name.clone()
    }

    /// The linked ids a firm column of `item` reads, in words beside the value: `importer
    /// IMP1 with its linked ids IMP7, IMP9 (linkage run R)`, or `importer IMP1 (linked to no
    /// other id)`. `None` for other columns.
    pub fn firm_basis(&self, column: &str, item: &DeclarationItem) -> Option<String> {
        let firms = self.firms.as_ref()?;
        let (index, _, _) = FIRM_HISTORIES
            .iter()
            .find(|(_, entity, _)| column.starts_with(&format!("{entity}_")))?;
        let (_, role, get) = HISTORIES[*index];
        let party = get(item)?;
        Some(match firms.group(party) {
            Some(group) => {
                let others: Vec<&str> = group
                    .iter()
                    .filter(|id| *id != party)
                    .map(String::as_str)
                    .collect();
                format!(
                    "{role} {party} with its linked ids {} (linkage run {})",
                    others.join(", "),
                    firms.run
                )
            }
            None => format!("{role} {party} (linked to no other id)"),
        })
    }

    /// What history column `column` of `row` rests on: for a past fraud rate, the party's past
    /// controls; for counts of declarations and days known, its past declarations; for past
    /// controls, the controls themselves. `None` for columns that are not history. Read from the
    /// row's own count columns, so the model's columns stay as they are.
    pub fn history_support(&self, column: usize, row: &[f64]) -> Option<HistorySupport> {
        let first = CATEGORICALS.len() + NUMERIC_NAMES.len();
        let histories = HISTORIES.len() * HISTORY_SUFFIXES.len();
        let first_firm = first + histories + if self.text { TEXT_COLUMNS.len() } else { 0 };
        let firm_columns = if self.firms.is_some() {
            FIRM_HISTORIES.len() * HISTORY_SUFFIXES.len()
        } else {
            0
        };
        let (first, offset) = match column.checked_sub(first) {
            Some(offset) if offset < histories => (first, offset),
            _ => match column.checked_sub(first_firm) {
                Some(offset) if offset < firm_columns => (first_firm, offset),
                _ => return None,
            },
        };
        let entity = first + offset / HISTORY_SUFFIXES.len() * HISTORY_SUFFIXES.len();
        let (count_column, counted) = match HISTORY_SUFFIXES[offset % HISTORY_SUFFIXES.len()] {
            "past_controls" | "past_fraud_rate" => (entity + 1, "past controls"),
            _ => (entity, "past declarations"),
        };
        let count = row.get(count_column).copied().filter(|c| c.is_finite())?;
        Some(HistorySupport {
            count: count.max(0.0) as u64,
            counted,
        })
    }

    /// The value of column `column` as a person reads it (category codes back to declared text).
    pub fn display_value(&self, column: usize, value: f64) -> String {
        if value.is_nan() {
            return "(missing)".to_string();
        }
        if column < CATEGORICALS.len() {
            return self.vocabularies[column]
                .get(value as usize)
                .cloned()
                .unwrap_or_else(|| "(new code)".to_string());
        }
        if value.fract() == 0.0 && value.abs() < 1e9 {
            format!("{value:.0}")
        } else {
            format!("{value:.3}")
        }
    }

    /// Category code of `text` in column `column` (the "unseen" code if it was never trained on).
    fn code(&self, column: usize, text: Option<&str>) -> f64 {
        match text {
            None => f64::NAN,
            Some(text) => {
                let vocabulary = &self.vocabularies[column];
                match vocabulary.binary_search_by(|c| c.as_str().cmp(text)) {
                    Ok(i) => i as f64,
                    Err(_) => vocabulary.len() as f64,
                }
            }
        }
    }

    /// One item's columns given the history before its date (and, for a pipeline with text
    /// columns, no text signals: see [`FeaturePipeline::row_with_text`]).
    pub fn row(&self, item: &DeclarationItem, history: &HistoryState) -> Vec<f64> {
        self.row_with_text(item, history, None)
    }

    /// One item's columns given the history before its date and what its descriptions were
    /// read as. Without signals, an item with a description has its text columns missing
    /// (NaN); one without has `no_description` 1 and the rest missing.
    pub fn row_with_text(
        &self,
        item: &DeclarationItem,
        history: &HistoryState,
        text: Option<&TextSignals>,
    ) -> Vec<f64> {
        let mut row = Vec::with_capacity(CATEGORICALS.len() + NUMERIC_NAMES.len() + 16);
        for (column, (_, _, get)) in CATEGORICALS.iter().enumerate() {
            row.push(self.code(column, get(item)));
        }
        let log_unit_value = log_unit_value(item);
        let norm = history.unit_value_norm(item);
        row.push(item.tax_rate);
        row.push((1.0 + item.net_mass.max(0.0)).ln());
        row.push((1.0 + item.item_price.max(0.0)).ln());
        row.push(log_unit_value.unwrap_or(f64::NAN));
        row.push(match (log_unit_value, norm) {
            (Some(v), Some(n)) => v - n,
            _ => f64::NAN,
        });
        row.push((1.0 + item.duty_at_stake()).ln());
        row.push(f64::from(item.date.weekday().num_days_from_monday()));
        row.push(f64::from(u8::from(
            item.departure_country != item.origin_country,
        )));
        let prior = history.prior_rate();
        let history_columns = |stats: Option<&EntityStats>| match stats {
            None => [0.0, 0.0, prior, f64::NAN],
            Some(s) => [
                s.declarations,
                s.controlled,
                (s.frauds + PRIOR_STRENGTH * prior) / (s.controlled + PRIOR_STRENGTH),
                s.first_seen
                    .map(|first| (item.date - first).num_days() as f64)
                    .unwrap_or(f64::NAN),
            ],
        };
        for (entity_index, (_, _, get)) in HISTORIES.iter().enumerate() {
            let stats = get(item).and_then(|key| history.entities.get(entity_index)?.get(key));
            row.extend(history_columns(stats));
        }
        if self.text {
            let number = |v: Option<f64>| v.unwrap_or(f64::NAN);
            row.push(f64::from(u8::from(!has_description(item))));
            match text {
                Some(t) => row.extend([
                    number(t.chapter_mismatch),
                    number(t.heading_mismatch),
                    number(t.hs6_mismatch),
                    number(t.vagueness),
                    f64::from(u8::from(t.review)),
                    number(t.cleaned_disagreement),
                ]),
                None => row.extend([f64::NAN; TEXT_COLUMNS.len() - 1]),
            }
        }
        if let Some(firms) = &self.firms {
            for (entity_index, _, _) in FIRM_HISTORIES {
                let (_, _, get) = HISTORIES[entity_index];
                let firm = get(item).map(|party| match firms.group(party) {
                    Some(group) => history.firm_stats(entity_index, group),
                    // A party linked to no other id is a firm of one.
                    None => history
                        .entities
                        .get(entity_index)
                        .and_then(|e| e.get(party))
                        .cloned()
                        .unwrap_or_default(),
                });
                let firm = firm.filter(|s| s.declarations > 0.0);
                row.extend(history_columns(firm.as_ref()));
            }
        }
        row
    }

    /// Columns for `items` (sorted by date), each described with the history of `items` dated
    /// strictly before it; `label` chooses the target column.
    ///
    /// `items` is the whole known past plus the items to describe; `wanted[i]` says whether item `i`
    /// gets a row. Labels of items dated before an item are history; its own label never is.
    pub fn transform(
        &self,
        items: &[DeclarationItem],
        wanted: &[bool],
        label: LabelKind,
    ) -> (Dataset, Vec<usize>) {
        self.transform_with_text(items, wanted, label, None)
    }

    /// [`FeaturePipeline::transform`] with the items' text signals (by item key), read by a
    /// pipeline with text columns.
    pub fn transform_with_text(
        &self,
        items: &[DeclarationItem],
        wanted: &[bool],
        label: LabelKind,
        text: Option<&TextSignalMap>,
    ) -> (Dataset, Vec<usize>) {
        let mut data = Dataset {
            features: self.features(),
            columns: vec![Vec::new(); self.features().len()],
            labels: Vec::new(),
            weights: Vec::new(),
        };
        let mut rows_for = Vec::new();
        let mut history = HistoryState::new();
        let mut day_start = 0;
        while day_start < items.len() {
            let date = items[day_start].date;
            let day_end = day_start
                + items[day_start..]
                    .iter()
                    .take_while(|d| d.date == date)
                    .count();
            for i in day_start..day_end {
                if wanted[i] {
                    let signals = text.and_then(|t| t.get(&items[i].key));
                    let row = self.row_with_text(&items[i], &history, signals);
                    let positive = items[i].label.is_some_and(|l| label.is_positive(l));
                    data.push_row(&row, positive, 1.0);
                    rows_for.push(i);
                }
            }
            for item in &items[day_start..day_end] {
                history.add(item);
            }
            day_start = day_end;
        }
        (data, rows_for)
    }
}

const NUMERIC_NAMES: [&str; 8] = [
    "tax_rate",
    "log_net_mass",
    "log_item_price",
    "log_unit_value",
    "unit_value_deviation",
    "log_duty_at_stake",
    "weekday",
    "departure_differs_from_origin",
];
const NUMERIC_WORDS: [&str; 8] = [
    "tax rate (%)",
    "net mass (log kg)",
    "item price (log)",
    "unit value (log price per kg)",
    "unit value vs HS6×origin norm (log ratio)",
    "duty at stake (log)",
    "weekday (0 = Monday)",
    "departure country differs from origin",
];
const HISTORY_SUFFIXES: [&str; 4] = [
    "past_declarations",
    "past_controls",
    "past_fraud_rate",
    "days_known",
];
const HISTORY_WORDS: [&str; 4] = [
    "past declarations",
    "past controls",
    "past fraud rate (smoothed)",
    "days since first seen",
];

/// The declared values a model column is read from, in business words, for showing beside the
/// derived value (an officer checks "item price 372254.4" against the declaration, not
/// "item price (log) 12.827"). `None` for columns that are a declared code as it is (the value
/// shown is already the declared one) and for history columns (they come from other items).
pub fn declared_basis(column: &str, item: &DeclarationItem) -> Option<String> {
    let registry = FieldRegistry::standard();
    let declared = |name: &str| {
        registry
            .get(name)
            .map(|f| format!("{} {}", f.words, f.get(item)))
            .unwrap_or_default()
    };
    let unit_value = || match item.unit_value() {
        Some(v) => format!(
            "{} / {} = {v:.2} per kg",
            declared("item_price"),
            declared("net_mass")
        ),
        None => format!("{}, {}", declared("item_price"), declared("net_mass")),
    };
    Some(match column {
        "log_item_price" => declared("item_price"),
        "log_net_mass" => declared("net_mass"),
        "log_unit_value" | "unit_value_deviation" => unit_value(),
        "log_duty_at_stake" => format!(
            "{} × {} = {:.2} duty",
            declared("item_price"),
            declared("tax_rate"),
            item.duty_at_stake()
        ),
        "weekday" => declared("date"),
        "departure_differs_from_origin" => format!(
            "{}, {}",
            declared("departure_country"),
            declared("origin_country")
        ),
        "hs_chapter" | "hs_heading" => declared("hs6"),
        _ => return None,
    })
}

/// What a text column's value comes from, in business words beside the declared values:
/// `description reads as chapter 85, declared chapter 39` for a chapter mismatch. `None` for
/// columns that are not text columns, and when the item has no signals.
pub fn text_basis(
    column: &str,
    item: &DeclarationItem,
    text: Option<&TextSignals>,
) -> Option<String> {
    let declared_text = |name: &str| match item.extra.get(name) {
        Some(DeclaredValue::Text(t)) => Some(shortened(t, 60)),
        _ => None,
    };
    if column == "no_description" {
        return Some(match declared_text(GOODS_DESCRIPTION) {
            Some(t) => format!("goods description \"{t}\""),
            None => "no goods description".to_string(),
        });
    }
    let t = text?;
    let code = item.hs6.as_str();
    let level = |i: usize, words: &str, digits: usize| {
        let reads = t.reads_as[i].as_deref()?;
        let declared = code.get(..digits).unwrap_or(code);
        Some(format!(
            "description reads as {words}{reads}, declared {words}{declared}"
        ))
    };
    match column {
        "description_chapter_mismatch" => level(0, "chapter ", 2),
        "description_heading_mismatch" => level(1, "heading ", 4),
        "description_hs6_mismatch" => level(2, "", 6),
        "description_vagueness" | "description_routed_to_review" => {
            declared_text(GOODS_DESCRIPTION).map(|d| format!("goods description \"{d}\""))
        }
        "description_cleaned_disagreement" => {
            match (
                declared_text(GOODS_DESCRIPTION),
                declared_text(borderlens_domain::GOODS_DESCRIPTION_CLEANED),
            ) {
                (Some(sender), Some(cleaned)) => Some(format!(
                    "sender's description \"{sender}\", cleaned description \"{cleaned}\""
                )),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `text` cut to `max` characters (ending in `…`) when longer.
fn shortened(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((at, _)) => format!("{}…", &text[..at]),
    }
}

fn log_unit_value(item: &DeclarationItem) -> Option<f64> {
    item.log_unit_value()
}

impl HistoryState {
    /// Empty history.
    pub fn new() -> HistoryState {
        HistoryState {
            entities: vec![HashMap::new(); HISTORIES.len()],
            ..HistoryState::default()
        }
    }

    /// The history of `items` dated strictly before `date`.
    pub fn as_of(items: &[DeclarationItem], date: NaiveDate) -> HistoryState {
        let mut history = HistoryState::new();
        for item in items.iter().filter(|d| d.date < date) {
            history.add(item);
        }
        history
    }

    /// The history one item needs, without reading every earlier item: `related` holds the
    /// items dated before `date` that share the item's importer, declarant, seller or HS code,
    /// and for a pipeline with firm columns those of its linked ids
    /// ([`FeaturePipeline::linked_parties`]) (in date order; others may be there too, they
    /// change nothing the item reads), and
    /// `controlled` / `frauds` count every labelled and every fraudulent item before `date`
    /// (the prior of the smoothed rates). For that item, [`FeaturePipeline::row`] gives the
    /// same row as with [`HistoryState::as_of`] over every item.
    pub fn for_one_item(
        related: &[DeclarationItem],
        date: NaiveDate,
        controlled: u64,
        frauds: u64,
    ) -> HistoryState {
        let mut history = HistoryState::as_of(related, date);
        // Exact in f64 far beyond any store's size.
        history.controlled = controlled as f64;
        history.frauds = frauds as f64;
        history
    }

    /// Adds one item (its declaration always; its control result if it has one).
    pub fn add(&mut self, item: &DeclarationItem) {
        for (entity_index, (_, _, get)) in HISTORIES.iter().enumerate() {
            if let Some(key) = get(item) {
                let stats = self.entities[entity_index]
                    .entry(key.to_string())
                    .or_default();
                stats.declarations += 1.0;
                if let Some(label) = item.label {
                    stats.controlled += 1.0;
                    stats.frauds += f64::from(u8::from(label.fraud));
                }
                stats.first_seen.get_or_insert(item.date);
            }
        }
        if let Some(label) = item.label {
            self.controlled += 1.0;
            self.frauds += f64::from(u8::from(label.fraud));
        }
        if let Some(v) = log_unit_value(item) {
            let key = (item.hs6.as_str().to_string(), item.origin_country.clone());
            let e = self.norms_hs_origin.entry(key).or_default();
            e.0 += v;
            e.1 += 1.0;
            let e = self
                .norms_hs
                .entry(item.hs6.as_str().to_string())
                .or_default();
            e.0 += v;
            e.1 += 1.0;
        }
    }

    /// The summed history of the ids of one firm in role `entity_index` (a [`HISTORIES`]
    /// index): every id's declarations, controls and frauds, first seen the earliest.
    fn firm_stats(&self, entity_index: usize, group: &[String]) -> EntityStats {
        let mut firm = EntityStats::default();
        let Some(entities) = self.entities.get(entity_index) else {
            return firm;
        };
        for stats in group.iter().filter_map(|id| entities.get(id)) {
            firm.declarations += stats.declarations;
            firm.controlled += stats.controlled;
            firm.frauds += stats.frauds;
            firm.first_seen = match (firm.first_seen, stats.first_seen) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        firm
    }

    fn prior_rate(&self) -> f64 {
        (self.frauds + 1.0) / (self.controlled + 2.0)
    }

    /// Mean past log unit value of the item's HS6×origin (at least 3 items), else of its HS6.
    fn unit_value_norm(&self, item: &DeclarationItem) -> Option<f64> {
        let key = (item.hs6.as_str().to_string(), item.origin_country.clone());
        match self.norms_hs_origin.get(&key) {
            Some(&(sum, n)) if n >= 3.0 => Some(sum / n),
            _ => match self.norms_hs.get(item.hs6.as_str()) {
                Some(&(sum, n)) if n >= 3.0 => Some(sum / n),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One declared item (HS 847130, importer IMP1, declarant DEC1, 2024-03-04).
    fn sample_item() -> DeclarationItem {
        let registry = FieldRegistry::standard();
        let texts = [
            "2024-03-04",
            "030",
            "B",
            "11",
            "21",
            "11",
            "10",
            "DEC1",
            "IMP1",
            "",
            "",
            "847130",
            "CN",
            "VN",
            "8",
            "A",
            "B",
            "20",
            "1000",
        ];
        let values = registry
            .fields()
            .iter()
            .zip(texts)
            .map(|(f, t)| f.parse(t, "%Y-%m-%d").unwrap());
        let key = borderlens_domain::ItemKey {
            declaration_id: "D".into(),
            item_no: 1,
        };
        registry.build(key, values, None).unwrap()
    }

    #[test]
    fn derived_columns_name_the_declared_values_they_come_from() {
        let item = sample_item();
        let basis = |column| declared_basis(column, &item);
        assert_eq!(basis("log_item_price").as_deref(), Some("item price 1000"));
        assert_eq!(basis("log_net_mass").as_deref(), Some("net mass (kg) 20"));
        assert_eq!(
            basis("log_unit_value").as_deref(),
            Some("item price 1000 / net mass (kg) 20 = 50.00 per kg")
        );
        assert_eq!(
            basis("log_duty_at_stake").as_deref(),
            Some("item price 1000 × tax rate (%) 8 = 80.00 duty")
        );
        assert_eq!(basis("hs_chapter").as_deref(), Some("HS code 847130"));
        assert_eq!(basis("origin_country"), None);
        assert_eq!(basis("importer_past_fraud_rate"), None);
        // Every derived numeric column is covered, except the tax rate (declared as it is).
        for name in NUMERIC_NAMES.iter().filter(|n| **n != "tax_rate") {
            assert!(basis(name).is_some(), "{name}");
        }
    }

    #[test]
    fn history_columns_say_how_many_past_declarations_and_controls_they_rest_on() {
        use borderlens_domain::ControlLabel;
        let item = sample_item();
        // Importer IMP1: three past declarations, two of them controlled (one fraud).
        let past: Vec<DeclarationItem> = (0..3)
            .map(|i| {
                let mut d = item.clone();
                d.key.declaration_id = format!("P{i}");
                d.date = item.date - chrono::Duration::days(10 - i);
                d.label = (i < 2).then_some(ControlLabel {
                    fraud: i == 0,
                    critical: 0,
                });
                d
            })
            .collect();
        let pipeline = FeaturePipeline::fit(&past);
        let history = HistoryState::as_of(&past, item.date);
        let row = pipeline.row(&item, &history);
        let features = pipeline.features();
        let column = |name: &str| features.iter().position(|f| f.name == name).unwrap();
        let support = |name: &str| pipeline.history_support(column(name), &row);
        let rate = support("importer_past_fraud_rate").unwrap();
        assert_eq!((rate.count, rate.counted), (2, "past controls"));
        assert!(rate.few());
        assert_eq!(rate.in_words(), "from 2 past controls (few)");
        let known = support("importer_days_known").unwrap();
        assert_eq!((known.count, known.counted), (3, "past declarations"));
        assert_eq!(
            support("declarant_past_controls").unwrap().in_words(),
            "from 2 past controls (few)"
        );
        // Not history: nothing to say.
        assert_eq!(support("log_item_price"), None);
        assert_eq!(support("origin_country"), None);
        assert_eq!(pipeline.history_support(features.len(), &row), None);
        // Enough past controls: no warning.
        let many = HistorySupport {
            count: FEW_PAST,
            counted: "past controls",
        };
        assert!(!many.few());
        assert_eq!(many.in_words(), "from 10 past controls");
        let one = HistorySupport {
            count: 1,
            counted: "past declarations",
        };
        assert_eq!(one.in_words(), "from 1 past declaration (few)");
    }

    /// A firm that declared under IMP-OLD, was caught three times out of four, and now declares
    /// under IMP1: the importer's own columns see a newcomer, the firm columns see its past.
    #[test]
    fn firm_columns_read_the_past_of_every_linked_id() {
        use borderlens_domain::ControlLabel;
        let item = sample_item();
        // Twenty clean controls of other firms first, so that the prior rate is low.
        let past: Vec<DeclarationItem> = (0..24)
            .map(|i| {
                let mut d = item.clone();
                d.key.declaration_id = format!("P{i}");
                let firm = i >= 20;
                d.importer_id = if firm { "IMP-OLD" } else { "OTHER" }.into();
                d.declarant_id = if i == 20 { "IMP1" } else { "DEC2" }.into();
                d.date = item.date - chrono::Duration::days(if firm { 50 - i } else { 100 });
                d.label = Some(ControlLabel {
                    fraud: i > 20,
                    critical: 0,
                });
                d
            })
            .collect();
        let history = HistoryState::as_of(&past, item.date);
        let firms = Firms::new(
            "run-1",
            vec![
                vec!["IMP1".into(), "IMP-OLD".into(), "IMP1".into()],
                vec!["LONE".into()],
            ],
        );
        assert_eq!(firms.counts(), (2, 1), "a group of one links nothing");
        let plain = FeaturePipeline::fit(&past);
        let pipeline = plain.clone().with_firms(firms.clone());
        let row = pipeline.row(&item, &history);
        let features = pipeline.features();
        assert_eq!(features.len(), plain.features().len() + 8);
        let column = |name: &str| features.iter().position(|f| f.name == name).unwrap();
        let value = |name: &str| row[column(name)];
        assert_eq!(value("importer_past_declarations"), 0.0);
        // Only the importer role counts: IMP1 declared P0 as a declarant, not as an importer.
        assert_eq!(value("importer_firm_past_declarations"), 4.0);
        assert_eq!(value("importer_firm_past_controls"), 4.0);
        assert_eq!(value("importer_firm_days_known"), 30.0);
        let prior = value("importer_past_fraud_rate");
        let firm_rate = value("importer_firm_past_fraud_rate");
        assert!(firm_rate > 2.0 * prior, "{firm_rate} against {prior}");
        // The declarant DEC1 is linked to nobody: its firm is itself, with no past here.
        assert_eq!(value("declarant_firm_past_declarations"), 0.0);
        // The columns before the firm columns are those of the pipeline without them.
        assert_eq!(
            row[..plain.features().len()]
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>(),
            plain
                .row(&item, &history)
                .iter()
                .map(|v| v.to_bits())
                .collect::<Vec<_>>()
        );
        // Words, what they rest on, and which ids.
        assert_eq!(
            pipeline.describe(column("importer_firm_past_fraud_rate")),
            "importer's firm (all its linked ids): past fraud rate (smoothed)"
        );
        let support = pipeline
            .history_support(column("importer_firm_past_fraud_rate"), &row)
            .unwrap();
        assert_eq!(support.in_words(), "from 4 past controls (few)");
        assert_eq!(
            pipeline
                .firm_basis("importer_firm_past_fraud_rate", &item)
                .as_deref(),
            Some("importer IMP1 with its linked ids IMP-OLD (linkage run run-1)")
        );
        assert_eq!(
            pipeline
                .firm_basis("declarant_firm_past_controls", &item)
                .as_deref(),
            Some("declarant DEC1 (linked to no other id)")
        );
        assert_eq!(pipeline.firm_basis("importer_past_controls", &item), None);
        assert_eq!(pipeline.linked_parties(&item), ["IMP-OLD"]);
        assert!(plain.linked_parties(&item).is_empty());
        // Saved and read back with its groups; a pipeline without firms is saved as before.
        let bytes = serde_json::to_string(&pipeline).unwrap();
        let back: FeaturePipeline = serde_json::from_str(&bytes).unwrap();
        assert_eq!(back, pipeline);
        assert_eq!(
            back.firms().unwrap().group("IMP-OLD").unwrap(),
            ["IMP-OLD", "IMP1"]
        );
        assert!(!serde_json::to_string(&plain).unwrap().contains("firms"));
        // Federated nodes must agree on the firms as on the text columns.
        assert_eq!(
            FeaturePipeline::union(&[plain.clone(), pipeline.clone()]),
            None
        );
        assert_eq!(
            FeaturePipeline::union(&[pipeline.clone(), pipeline.clone()]),
            Some(pipeline)
        );
    }
}
