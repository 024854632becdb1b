//! What the jobs return: serialisable, stable field names (the `--json` contract).

use std::collections::BTreeMap;

use borderlens_domain::{
    DeclarationItem, DeclaredValue, LabelKind, GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED,
};
use schemars::JsonSchema;
use serde::Serialize;

/// One bad record of an import.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RecordIssue {
    /// File.
    pub file: String,
    /// 1-based line.
    pub line: u64,
    /// Column (header name), when one field is at fault.
    pub field: Option<String>,
    /// The full message.
    pub message: String,
}

/// What happened to one file.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// The whole file was refused (nothing of it stored), and why.
    pub file_error: Option<String>,
    /// Records read.
    pub records: u64,
    /// New items stored.
    pub inserted: u64,
    /// Items already stored identically (re-import).
    pub unchanged: u64,
    /// Stored items that received their control label.
    pub labelled: u64,
    /// Items whose content differs from what is stored: the stored original is kept.
    pub conflicts: Vec<String>,
    /// Bad records, not stored.
    pub rejected: Vec<RecordIssue>,
    /// Goods descriptions read by the shipped HS model after the file was stored, the readings
    /// stored as derived values (its new items' descriptions, and any stored earlier without
    /// a reading by this model).
    pub descriptions_read: u64,
    /// Reading the goods descriptions failed after the file's items were stored: the items
    /// stay stored (and the readings saved before the failure); `borderlens annotate` reads
    /// the rest once the cause is fixed.
    pub descriptions_error: Option<String>,
}

impl FileReport {
    /// Whether anything in this file needs the user's attention.
    pub fn has_problems(&self) -> bool {
        self.file_error.is_some()
            || !self.rejected.is_empty()
            || !self.conflicts.is_empty()
            || self.descriptions_error.is_some()
    }
}

/// Result of `train`.
#[derive(Clone, Debug, Serialize)]
pub struct TrainReport {
    /// Registry name.
    pub model: String,
    /// Registry version.
    pub version: u32,
    /// SHA-256 of the model bytes (same data + options + seed → same digest).
    pub sha256: String,
    /// `fraud` or `critical`.
    pub label: LabelKind,
    /// Imbalance option.
    pub imbalance: String,
    /// Labelled rows trained on.
    pub n_rows: usize,
    /// Positives among them.
    pub positives: usize,
    /// Trees kept.
    pub n_trees: usize,
    /// ROC-AUC on the held-out most recent rows.
    pub validation_roc_auc: Option<f64>,
    /// Precision at 5% on the held-out rows.
    pub validation_precision_at_5: Option<f64>,
    /// First and last training date.
    pub date_range: (String, String),
    /// Probability thresholds by inspection rate (percent).
    pub thresholds: BTreeMap<String, f64>,
    /// The HS model whose readings of the goods descriptions are the model's text columns;
    /// `None` when trained without them (no descriptions, or `--no-text-features`).
    pub text_features: Option<String>,
    /// The party links whose firms the model's firm columns read; `None` when trained without
    /// them (no party links in the store, or `--no-firm-history`).
    pub firm_history: Option<FirmHistory>,
    /// Seconds spent.
    pub seconds: f64,
}

/// The party links a model's firm columns read (see `TrainRequest::firm_history`).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FirmHistory {
    /// The linkage run that saved them.
    pub run: String,
    /// Linked parties.
    pub parties: usize,
    /// Groups (firms of two ids or more).
    pub groups: usize,
}

/// Result of `evaluate`: targeting quality on a labelled period.
#[derive(Clone, Debug, Serialize)]
pub struct EvaluationReport {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u32,
    /// Label evaluated.
    pub label: LabelKind,
    /// First date (inclusive).
    pub from: String,
    /// Last date (inclusive).
    pub to: String,
    /// Targeting quality (its fields appear at the top level of the JSON).
    #[serde(flatten)]
    pub metrics: TargetingMetrics,
    /// Precision, recall and revenue share at every rate from 1% to 20%.
    pub curve: Vec<CurvePoint>,
}

/// How well a ranking targets a labelled period at the inspection rates of every report.
#[derive(Clone, Debug, Serialize)]
pub struct TargetingMetrics {
    /// Declarations evaluated.
    pub n: usize,
    /// Positives among them.
    pub positives: usize,
    /// Precision by inspection rate ("1","2","5","10").
    pub precision_at: BTreeMap<String, f64>,
    /// Recall by inspection rate.
    pub recall_at: BTreeMap<String, f64>,
    /// Share of the duty at stake of all frauds caught, by inspection rate.
    pub revenue_at: BTreeMap<String, f64>,
    /// Average precision.
    pub pr_auc: f64,
    /// ROC-AUC.
    pub roc_auc: f64,
}

impl TargetingMetrics {
    /// The report form of an engine evaluation.
    pub fn from_evaluation(e: &borderlens_risk::metrics::Evaluation) -> TargetingMetrics {
        let by_rate = |m: &BTreeMap<u32, f64>| m.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        TargetingMetrics {
            n: e.n,
            positives: e.positives,
            precision_at: by_rate(&e.precision_at),
            recall_at: by_rate(&e.recall_at),
            revenue_at: by_rate(&e.revenue_at),
            pr_auc: e.pr_auc,
            roc_auc: e.roc_auc,
        }
    }
}

/// One point of the rate curve.
#[derive(Clone, Debug, Serialize)]
pub struct CurvePoint {
    /// Inspection rate, percent.
    pub rate: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// Revenue share.
    pub revenue: f64,
}

/// A contribution to one score.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Reason {
    /// Column name.
    pub feature: String,
    /// Business words.
    pub words: String,
    /// The declaration's value, as the model read it.
    pub value: String,
    /// The declared values it was derived from, in business words (`item price 10000` beside
    /// `item price (log)`); absent when the value is a declared code as it is, or comes from
    /// other items (history).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declared: Option<String>,
    /// For a history feature (a party's past fraud rate, counts, seniority): what it rests on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<HistoryBasis>,
    /// For a firm column: the ids whose past it sums (`importer IMP1 with its linked ids IMP7
    /// (linkage run R)`), derived from the saved party links, not declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub linked: Option<String>,
    /// Contribution in log-odds (positive raises the risk).
    pub log_odds: f64,
}

/// How many past declarations or controls a history feature was computed from.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct HistoryBasis {
    /// How many.
    pub count: u64,
    /// What was counted: `past declarations` or `past controls`.
    pub counted: String,
    /// Whether that is few (below 10): the value says little about the party; a smoothed rate
    /// is then mostly the overall prior.
    pub few: bool,
    /// In words: `from 2 past controls (few)`.
    pub words: String,
}

impl From<borderlens_risk::features::HistorySupport> for HistoryBasis {
    fn from(support: borderlens_risk::features::HistorySupport) -> HistoryBasis {
        HistoryBasis {
            count: support.count,
            counted: support.counted.to_string(),
            few: support.few(),
            words: support.in_words(),
        }
    }
}

impl Reason {
    /// One line: `words = value (+0.42)`, the contribution in log-odds with its sign, and the
    /// declared values behind a derived one: `item price (log) = 9.210 [declared: item price
    /// 10000] (+0.42)`.
    pub fn in_words(&self) -> String {
        format!(
            "{} ({:+.2})",
            self.in_words_without_contribution(),
            self.log_odds
        )
    }

    /// `words = value`, with `[declared: ...]` behind a derived value and `[from 2 past
    /// controls (few)]` behind a history one.
    pub fn in_words_without_contribution(&self) -> String {
        match self.basis() {
            Some(basis) => format!("{} = {} [{basis}]", self.words, self.value),
            None => format!("{} = {}", self.words, self.value),
        }
    }

    /// What the value comes from: `declared: item price 10000` for a derived value, `from 2
    /// past controls (few)` for a history one; `None` for a declared code as it is.
    pub fn basis(&self) -> Option<String> {
        let basis = match (&self.declared, &self.history) {
            (Some(declared), _) => Some(format!("declared: {declared}")),
            (None, Some(history)) => Some(history.words.clone()),
            (None, None) => None,
        };
        match (basis, &self.linked) {
            (Some(basis), Some(linked)) => Some(format!("{basis}; {linked}")),
            (basis, linked) => basis.or_else(|| linked.clone()),
        }
    }
}

/// One scored declaration item.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ScoredItem {
    /// Declaration id.
    pub declaration_id: String,
    /// Item number.
    pub item_no: u32,
    /// Declaration date.
    pub date: String,
    /// Calibrated probability of the label.
    pub score: f64,
    /// 1 = riskiest.
    pub rank: usize,
    /// Whether the score reaches the threshold of the chosen inspection rate.
    pub selected: bool,
    /// Top contributions (with `--explain`).
    pub reasons: Vec<Reason>,
}

/// Result of `score`.
#[derive(Clone, Debug, Serialize)]
pub struct ScoreReport {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u32,
    /// Inspection rate whose threshold marks `selected`.
    pub rate: u32,
    /// Threshold used.
    pub threshold: f64,
    /// Items, riskiest first.
    pub items: Vec<ScoredItem>,
}

/// A declared field changed by a counterfactual.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Change {
    /// Field.
    pub field: String,
    /// As declared.
    pub from: String,
    /// Counterfactual value.
    pub to: String,
}

/// "With these changes the score falls below the threshold."
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct CounterfactualReport {
    /// Score after the changes.
    pub score: f64,
    /// The changes (one or two fields).
    pub changes: Vec<Change>,
}

/// The goods descriptions of an item exactly as declared, beside the HS code declared with
/// them: what an officer compares (dual visibility). Nothing here is derived; suggestions from
/// the text (an HS code read from the description, a mismatch score) will sit beside this,
/// never in it.
#[derive(Clone, PartialEq, Debug, Serialize, JsonSchema)]
pub struct GoodsText {
    /// The declared HS6 code.
    pub hs6: String,
    /// The sender's goods description, byte for byte as declared; `None` when none was declared.
    pub description: Option<String>,
    /// A cleaned description a broker or postal operator supplied beside the sender's, byte for
    /// byte as declared; `None` when none was.
    pub description_cleaned: Option<String>,
}

impl GoodsText {
    /// The declared code and descriptions of `item`.
    pub fn of(item: &DeclarationItem) -> GoodsText {
        let text = |name: &str| match item.extra.get(name) {
            Some(DeclaredValue::Text(text)) => Some(text.clone()),
            _ => None,
        };
        GoodsText {
            hs6: item.hs6.as_str().to_string(),
            description: text(GOODS_DESCRIPTION),
            description_cleaned: text(GOODS_DESCRIPTION_CLEANED),
        }
    }
}

/// Result of `explain` for one declaration item.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct ExplainReport {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: u32,
    /// Declaration id.
    pub declaration_id: String,
    /// Item number.
    pub item_no: u32,
    /// The declared values, verbatim.
    pub declared: BTreeMap<String, String>,
    /// The declared HS code and goods descriptions, verbatim, side by side.
    pub goods: GoodsText,
    /// Derived, beside `goods` and never over it: what the shipped HS model reads the sender's
    /// description as and its mismatch with the declared code, with the model's id.
    pub hs_reading: crate::HsReading,
    /// Calibrated probability.
    pub score: f64,
    /// Log-odds of an average declaration.
    pub base_log_odds: f64,
    /// Log-odds of this one (base + Σ contributions).
    pub log_odds: f64,
    /// Every contribution, largest magnitude first.
    pub contributions: Vec<Reason>,
    /// Selection threshold (at `rate`%).
    pub threshold: f64,
    /// Inspection rate of the threshold.
    pub rate: u32,
    /// Smallest change that brings the score below the threshold, when above it.
    pub counterfactual: Option<CounterfactualReport>,
    /// The control outcome, when known.
    pub outcome: Option<String>,
}

/// How well the anomaly score alone ranks a labelled period.
#[derive(Clone, Debug, Serialize)]
pub struct AnomalyEvaluation {
    /// Label measured against.
    pub label: LabelKind,
    /// Targeting quality (flattened into this object in JSON).
    #[serde(flatten)]
    pub metrics: TargetingMetrics,
}

/// One unusual declaration item.
#[derive(Clone, Debug, Serialize)]
pub struct AnomalousItem {
    /// Declaration id.
    pub declaration_id: String,
    /// Item number.
    pub item_no: u32,
    /// Date.
    pub date: String,
    /// Anomaly score in (0, 1]; higher is more unusual.
    pub score: f64,
    /// 1 = most unusual.
    pub rank: usize,
}

/// Result of `anomaly`.
#[derive(Clone, Debug, Serialize)]
pub struct AnomalyReport {
    /// First date scored.
    pub from: String,
    /// Last date scored.
    pub to: String,
    /// Items scored.
    pub n: usize,
    /// Ranking quality, where the period has control results.
    pub evaluation: Option<AnomalyEvaluation>,
    /// The most unusual items.
    pub top: Vec<AnomalousItem>,
}

impl EvaluationReport {
    /// Precision, recall and revenue share against the share inspected, as an SVG chart, with
    /// the 1, 2, 5 and 10% rates marked.
    pub fn rate_chart(&self) -> String {
        let points: Vec<borderlens_charts::RateCurvePoint> = self
            .curve
            .iter()
            .map(|p| borderlens_charts::RateCurvePoint {
                rate_percent: p.rate,
                precision: p.precision,
                recall: p.recall,
                revenue_share: p.revenue,
            })
            .collect();
        let title = format!(
            "{} v{} on {}..{}: precision, recall, revenue vs share inspected",
            self.model, self.version, self.from, self.to
        );
        borderlens_charts::rate_curves_svg(&title, &points, &[1.0, 2.0, 5.0, 10.0])
    }
}

impl ExplainReport {
    /// The score's waterfall as an SVG chart: the twelve largest contributions, the rest summed
    /// into one bar, from the base log-odds to this declaration's.
    pub fn waterfall_chart(&self) -> String {
        let shown = 12;
        let mut bars: Vec<(String, f64)> = self
            .contributions
            .iter()
            .take(shown)
            .map(|c| (format!("{} = {}", c.words, c.value), c.log_odds))
            .collect();
        if self.contributions.len() > shown {
            let rest: f64 = self
                .contributions
                .iter()
                .skip(shown)
                .map(|c| c.log_odds)
                .sum();
            bars.push((
                format!("{} other fields", self.contributions.len() - shown),
                rest,
            ));
        }
        let title = format!(
            "declaration {} item {}: score {:.3}",
            self.declaration_id, self.item_no, self.score
        );
        borderlens_charts::waterfall_svg(
            &title,
            self.base_log_odds,
            &bars,
            self.log_odds,
            "log-odds of fraud",
        )
    }
}
