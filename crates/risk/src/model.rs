//! The risk model as the rest of borderlens sees it: train from labelled declarations, score,
//! explain (TreeSHAP in business words), find counterfactuals, and serialise for the registry.

use std::collections::BTreeMap;

use borderlens_domain::{DeclarationItem, DeclaredField, FieldRegistry, FieldType, LabelKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::anomaly::{IsolationForest, IsolationForestConfig};
use crate::data::{Dataset, FeatureInfo, FeatureKind};
use crate::features::{FeaturePipeline, Firms, HistoryState, TextSignalMap, TextSignals};
use crate::gbdt::{Booster, GbdtConfig};
use crate::metrics::{self, INSPECTION_RATES};
use crate::resample;

/// How training compensates for rare positives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Imbalance {
    /// Plain log-loss.
    None,
    /// Positives weighted by negatives/positives.
    ClassWeight,
    /// Random duplication of positives up to a 50% share.
    Oversample,
    /// Random removal of negatives down to a 50% positive share.
    Undersample,
    /// SMOTE-NC synthetic positives up to a 50% share.
    Smote,
}

impl Imbalance {
    /// Parses `none`, `class-weight`, `oversample`, `undersample`, `smote`.
    pub fn parse(text: &str) -> Option<Imbalance> {
        Some(match text {
            "none" => Imbalance::None,
            "class-weight" | "class_weight" => Imbalance::ClassWeight,
            "oversample" => Imbalance::Oversample,
            "undersample" => Imbalance::Undersample,
            "smote" => Imbalance::Smote,
            _ => return None,
        })
    }

    /// All options, for reports that compare them.
    pub const ALL: [Imbalance; 5] = [
        Imbalance::None,
        Imbalance::ClassWeight,
        Imbalance::Oversample,
        Imbalance::Undersample,
        Imbalance::Smote,
    ];

    /// Command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Imbalance::None => "none",
            Imbalance::ClassWeight => "class-weight",
            Imbalance::Oversample => "oversample",
            Imbalance::Undersample => "undersample",
            Imbalance::Smote => "smote",
        }
    }
}

/// Everything that determines a model, besides the data. Same options + same data → same bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// The label learnt (saved as `fraud` or `critical`).
    pub label: LabelKind,
    /// Imbalance treatment.
    pub imbalance: Imbalance,
    /// Add the isolation-forest anomaly score as a feature.
    pub anomaly_feature: bool,
    /// Share of the most recent training rows held out for early stopping and calibration.
    pub validation_share: f64,
    /// Retrain on all rows with the chosen number of trees after early stopping.
    pub refit: bool,
    /// Tree options.
    pub gbdt: GbdtConfig,
}

impl TrainOptions {
    /// The options `borderlens train` uses unless told otherwise.
    pub fn standard(label: LabelKind) -> TrainOptions {
        let mut gbdt = GbdtConfig::standard();
        gbdt.n_trees = 1000;
        gbdt.early_stopping_rounds = Some(50);
        TrainOptions {
            label,
            imbalance: Imbalance::None,
            // Measured on 2021-Q1 (fraud): P@5% 0.855 without, 0.830 with; kept as an option.
            anomaly_feature: false,
            validation_share: 0.15,
            refit: true,
            gbdt,
        }
    }
}

/// Errors of the risk engine.
#[derive(Debug, thiserror::Error)]
pub enum RiskError {
    /// Not enough labelled data to train.
    #[error("cannot train: {0}")]
    Data(String),
    /// Inconsistent options.
    #[error("invalid options: {0}")]
    Options(String),
    /// Model bytes that do not decode.
    #[error("model bytes do not decode: {0}")]
    Format(String),
    /// Model bytes of a format version newer than this build reads (written by a later release).
    #[error(
        "model bytes are in format version {0}, newer than this build reads \
         (up to version {MODEL_FORMAT}): load the model with a later release of borderlens"
    )]
    NewerFormat(u64),
    /// A trained model whose calibrated scores collapse (see [`collapse`]): refused, not saved.
    #[error("refused to keep the trained model: {0}")]
    Collapsed(String),
}

/// Version of the registry bytes that [`RiskModel::to_bytes`] writes.
///
/// The bytes are JSON. Version 1 is `{"format":1,"model":{..}}`, the model being the serde JSON
/// of [`RiskModel`]; bytes without a `format` field are the unversioned format written before
/// versions existed (the same model JSON at the top level), which still loads. A change to what
/// the model JSON holds that an older build would misread needs a new version, and
/// [`RiskModel::from_bytes`] must keep reading every earlier one (`tests/model_format.rs`).
///
/// Version 2 is version 1 with text columns in the pipeline (`"text":true`: the model reads what
/// an HS model made of the goods descriptions, issue 14). An older build would ignore the flag
/// and build rows without those columns, so a model that has them is written as version 2 and
/// refused by older builds; a model without them is still written as version 1, byte for byte
/// as before.
///
/// Version 3 is version 2 with firm columns in the pipeline (`"firms":{..}`: the linked ids
/// whose summed past the model reads, issue 13), which an older build would likewise ignore.
/// A model with them is written as version 3; one without, as before.
pub const MODEL_FORMAT: u32 = 3;

/// Version 1 of the registry bytes, as written.
#[derive(Serialize)]
struct VersionedRef<'a> {
    format: u32,
    model: &'a RiskModel,
}

/// Version 1 of the registry bytes, as read.
#[derive(Deserialize)]
struct Versioned {
    model: RiskModel,
}

/// The format version of registry bytes, read before the model: `None` for unversioned bytes.
#[derive(Deserialize)]
struct FormatProbe {
    format: Option<u64>,
}

/// Platt scaling: `p = σ(a·raw + b)`, fitted on held-out rows.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Slope.
    pub a: f64,
    /// Intercept.
    pub b: f64,
}

impl Calibration {
    /// Probability for a raw score.
    pub fn apply(&self, raw: f64) -> f64 {
        sigmoid(self.a * raw + self.b)
    }

    /// The identity on log-odds: `p = σ(raw)`, right for a booster trained on log-loss without
    /// reweighting; the fallback when a fit is impossible.
    pub const IDENTITY: Calibration = Calibration { a: 1.0, b: 0.0 };

    /// Fits `a` and `b` by minimising log-loss against Platt's smoothed targets (Lin, Lin & Weng,
    /// 2007): Newton steps damped (Levenberg–Marquardt) until each lowers the loss, so that the
    /// loss never rises.
    ///
    /// The fit starts from the better of [`Calibration::IDENTITY`] and the prior (a constant
    /// score at the smoothed positive rate) and stops when the gradient vanishes. It falls back
    /// to the identity when there is nothing to fit (one class only, fewer than two rows, a
    /// non-finite raw score), and to the starting point when the search ends outside
    /// [`Calibration::MAX_SLOPE`]: such a slope turns every score into 0 or 1.
    pub fn fit(raw: &[f64], labels: &[bool]) -> Calibration {
        let n_pos = labels.iter().filter(|&&y| y).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        if n_pos == 0.0
            || n_neg == 0.0
            || raw.len() != labels.len()
            || raw.iter().any(|x| !x.is_finite())
        {
            return Calibration::IDENTITY;
        }
        let hi = (n_pos + 1.0) / (n_pos + 2.0);
        let lo = 1.0 / (n_neg + 2.0);
        let targets: Vec<f64> = labels.iter().map(|&y| if y { hi } else { lo }).collect();
        let loss = |c: Calibration| platt_loss(raw, &targets, c);
        let prior = Calibration {
            a: 0.0,
            b: ((n_pos + 1.0) / (n_neg + 1.0)).ln(),
        };
        let start = if loss(Calibration::IDENTITY) <= loss(prior) {
            Calibration::IDENTITY
        } else {
            prior
        };
        let n = raw.len() as f64;
        let mut c = start;
        let mut f = loss(c);
        // Levenberg–Marquardt damping: λ grows until a step lowers the loss enough (where the
        // scores saturate the Hessian vanishes and the step becomes a short gradient step), and
        // shrinks again after each success, back to plain Newton steps.
        let min_damping = 1e-12 * n;
        let mut damping = min_damping;
        'newton: for _ in 0..200 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (&x, &t) in raw.iter().zip(&targets) {
                let p = sigmoid(c.a * x + c.b);
                let d = p - t;
                let w = p * (1.0 - p);
                ga += d * x;
                gb += d;
                haa += w * x * x;
                hab += w * x;
                hbb += w;
            }
            if ga.abs().max(gb.abs()) <= 1e-9 * n {
                break;
            }
            loop {
                let (daa, dbb) = (haa + damping, hbb + damping);
                let det = daa * dbb - hab * hab;
                let (da, db) = ((dbb * ga - hab * gb) / det, (daa * gb - hab * ga) / det);
                // The gradient along the step: positive for a descent direction.
                let slope = ga * da + gb * db;
                if det > 0.0 && slope > 0.0 && da.is_finite() && db.is_finite() {
                    let next = Calibration {
                        a: c.a - da,
                        b: c.b - db,
                    };
                    if (next.a, next.b) == (c.a, c.b) {
                        break 'newton;
                    }
                    let g = loss(next);
                    if g.is_finite() && g <= f - 1e-4 * slope {
                        c = next;
                        f = g;
                        damping = (damping / 10.0).max(min_damping);
                        break;
                    }
                }
                damping *= 10.0;
                if damping > 1e30 * (1.0 + haa + hbb) {
                    break 'newton;
                }
            }
        }
        if c.a.is_finite() && c.b.is_finite() && c.a.abs() <= Calibration::MAX_SLOPE {
            c
        } else {
            start
        }
    }

    /// The steepest slope a fit may keep. Raw scores are log-odds: a slope of 1 takes them as
    /// they are, and one this steep maps a raw difference of 0.01 to a factor e^10 in odds.
    pub const MAX_SLOPE: f64 = 1e3;
}

/// Log-loss of `c` against the (smoothed) `targets`, computed without overflow:
/// `Σ softplus(z) − t·z` with `z = a·raw + b`.
fn platt_loss(raw: &[f64], targets: &[f64], c: Calibration) -> f64 {
    raw.iter()
        .zip(targets)
        .map(|(&x, &t)| {
            let z = c.a * x + c.b;
            let softplus = if z > 0.0 {
                z + (-z).exp().ln_1p()
            } else {
                z.exp().ln_1p()
            };
            softplus - t * z
        })
        .sum()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Figures from training, kept with the model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    /// Labelled rows trained on.
    pub n_rows: usize,
    /// Positives among them.
    pub positives: usize,
    /// Trees kept after early stopping.
    pub n_trees: usize,
    /// ROC-AUC on the held-out most recent rows (before refit), when there were any.
    pub validation_roc_auc: Option<f64>,
    /// Precision at 5% on the held-out rows.
    pub validation_precision_at_5: Option<f64>,
    /// First and last training date.
    pub date_range: (String, String),
}

/// A trained risk model: pipeline, trees, calibration, optional anomaly detector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RiskModel {
    /// Options it was trained with.
    pub options: TrainOptions,
    /// Feature pipeline (vocabularies).
    pub pipeline: FeaturePipeline,
    /// Anomaly detector whose score is the last column, when enabled.
    pub anomaly: Option<IsolationForest>,
    /// The trees.
    pub booster: Booster,
    /// Raw score → probability.
    pub calibration: Calibration,
    /// Probability threshold that selects the top `rate`% of the training period, by rate.
    pub thresholds: BTreeMap<u32, f64>,
    /// Frequent declared values tried by counterfactuals, per editable field.
    pub counterfactual_values: Vec<(String, Vec<String>)>,
    /// Training figures.
    pub summary: TrainingSummary,
}

/// A model column's contribution to one score, in business words.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// Column name.
    pub feature: String,
    /// Business words for the column.
    pub words: String,
    /// The row's value, as a person reads it.
    pub value: String,
    /// SHAP value in log-odds.
    pub log_odds: f64,
    /// For a history column (a party's past fraud rate, counts, seniority): how many past
    /// declarations or controls it rests on, so that a rate from 2 controls is not read as one
    /// from 200. `None` for other columns.
    pub support: Option<crate::features::HistorySupport>,
}

/// Why a declaration got its score.
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation {
    /// Log-odds of an average declaration (the expected value).
    pub base_log_odds: f64,
    /// Raw score = base + Σ contributions.
    pub raw: f64,
    /// Calibrated probability.
    pub probability: f64,
    /// Contributions, largest magnitude first.
    pub contributions: Vec<Contribution>,
}

/// One field changed by a counterfactual.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldChange {
    /// Declared field name.
    pub field: String,
    /// Value as declared.
    pub from: String,
    /// Value in the counterfactual.
    pub to: String,
}

/// The smallest change (one or two declared fields) that brings the score below a threshold.
#[derive(Clone, Debug, PartialEq)]
pub struct Counterfactual {
    /// Threshold aimed at.
    pub threshold: f64,
    /// Score before.
    pub original: f64,
    /// Score after the changes.
    pub probability: f64,
    /// The changes.
    pub changes: Vec<FieldChange>,
}

/// Trains a model on the labelled `items`, sorted by date (earlier items are history of later
/// ones). Unlabelled items are history only: they count as past declarations and in unit-value
/// norms, as they will when the model scores.
pub fn train(
    items: &[DeclarationItem],
    options: &TrainOptions,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Result<RiskModel, RiskError> {
    train_weighted(items, None, options, on_iteration)
}

/// [`train`] with a weight per item (used for the labelled ones), e.g. inverse inclusion
/// probabilities 1/π so that a risk-driven sample of controls stands for the whole traffic.
pub fn train_weighted(
    items: &[DeclarationItem],
    weights: Option<&[f64]>,
    options: &TrainOptions,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Result<RiskModel, RiskError> {
    train_with_text(items, weights, None, options, on_iteration)
}

/// [`train_weighted`], with the text columns when `text` is given: what an HS model read each
/// item's goods descriptions as, by item key (items without an entry have their text columns
/// missing, but `no_description`). The model then reads text signals wherever it scores.
pub fn train_with_text(
    items: &[DeclarationItem],
    weights: Option<&[f64]>,
    text: Option<&TextSignalMap>,
    options: &TrainOptions,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Result<RiskModel, RiskError> {
    train_with_firms(items, weights, text, None, options, on_iteration)
}

/// [`train_with_text`], with the firm columns when `firms` is given: the history of every id a
/// linkage run found to be the importer's (declarant's) firm, summed. The model keeps the
/// firms it was trained with and scores with them.
pub fn train_with_firms(
    items: &[DeclarationItem],
    weights: Option<&[f64]>,
    text: Option<&TextSignalMap>,
    firms: Option<Firms>,
    options: &TrainOptions,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Result<RiskModel, RiskError> {
    let TrainingDesign {
        items,
        pipeline,
        anomaly,
        data,
    } = training_design_weighted(items, weights, text, firms, options)?;
    let positives = data.labels.iter().filter(|&&y| y).count();
    let n = data.n_rows();
    let n_valid = ((n as f64 * options.validation_share).round() as usize).min(n / 2);
    let fit_rows: Vec<usize> = (0..n - n_valid).collect();
    let valid_rows: Vec<usize> = (n - n_valid..n).collect();
    let fit_data = rebalance(&data.select_rows(&fit_rows), options);
    check_weights(&fit_data)?;
    let valid = data.select_rows(&valid_rows);
    let has_valid =
        n_valid > 0 && valid.labels.iter().any(|&y| y) && valid.labels.iter().any(|&y| !y);
    let first = Booster::train(
        &fit_data,
        &options.gbdt,
        has_valid.then_some(&valid),
        on_iteration,
    );
    let (calibration, validation_roc_auc, validation_precision_at_5) = if has_valid {
        let raw = first.predict_raw_all(&valid);
        let duty = vec![1.0; raw.len()];
        let evaluation = metrics::evaluate(&raw, &valid.labels, &duty);
        (
            Calibration::fit(&raw, &valid.labels),
            Some(evaluation.roc_auc),
            Some(evaluation.precision_at[&5]),
        )
    } else {
        (Calibration { a: 1.0, b: 0.0 }, None, None)
    };
    let booster = if options.refit && has_valid {
        let mut config = options.gbdt.clone();
        config.n_trees = first.trees.len().max(1);
        config.early_stopping_rounds = None;
        let all = rebalance(&data, options);
        check_weights(&all)?;
        Booster::train(&all, &config, None, on_iteration)
    } else {
        first
    };
    let mut model = RiskModel {
        options: options.clone(),
        pipeline,
        anomaly,
        booster,
        calibration,
        thresholds: BTreeMap::new(),
        counterfactual_values: counterfactual_values(&items),
        summary: TrainingSummary {
            n_rows: n,
            positives,
            n_trees: 0,
            validation_roc_auc,
            validation_precision_at_5,
            date_range: (
                items[0].date.to_string(),
                items[items.len() - 1].date.to_string(),
            ),
        },
    };
    model.summary.n_trees = model.booster.trees.len();
    let raw = model.booster.predict_raw_all(&data);
    let scores: Vec<f64> = raw.iter().map(|&r| model.calibration.apply(r)).collect();
    if let Some(reason) = collapse(&raw, &scores) {
        return Err(RiskError::Collapsed(format!(
            "{reason} (calibration a = {:e}, b = {:e}); the model would not rank declarations",
            model.calibration.a, model.calibration.b
        )));
    }
    let order = metrics::ranking(&scores);
    for rate in INSPECTION_RATES {
        let k = metrics::selection_size(n, rate as f64).max(1);
        model.thresholds.insert(rate, scores[order[k - 1]]);
    }
    Ok(model)
}

/// The risk model one node of a federation keeps from federated training: the agreed pipeline
/// and the trees every node got, with the identity calibration (no validation rows are pooled to
/// fit one), and what only the node's own rows can give: its thresholds (the top `rate`% of its
/// own labelled rows, `data`), the frequent values its counterfactuals try (its own `items`) and
/// its training figures. Refused, like [`train`]'s, when the scores collapse.
pub fn federated(
    options: &TrainOptions,
    pipeline: FeaturePipeline,
    booster: Booster,
    items: &[DeclarationItem],
    data: &Dataset,
) -> Result<RiskModel, RiskError> {
    let labelled: Vec<&DeclarationItem> = items.iter().filter(|d| d.label.is_some()).collect();
    let (Some(first), Some(last)) = (labelled.first(), labelled.last()) else {
        return Err(RiskError::Data(
            "no labelled declarations on this node".into(),
        ));
    };
    let mut model = RiskModel {
        options: options.clone(),
        pipeline,
        anomaly: None,
        booster,
        calibration: Calibration::IDENTITY,
        thresholds: BTreeMap::new(),
        counterfactual_values: counterfactual_values(items),
        summary: TrainingSummary {
            n_rows: data.n_rows(),
            positives: data.labels.iter().filter(|&&y| y).count(),
            n_trees: 0,
            validation_roc_auc: None,
            validation_precision_at_5: None,
            date_range: (first.date.to_string(), last.date.to_string()),
        },
    };
    model.summary.n_trees = model.booster.trees.len();
    let raw = model.booster.predict_raw_all(data);
    let scores: Vec<f64> = raw.iter().map(|&r| model.calibration.apply(r)).collect();
    if let Some(reason) = collapse(&raw, &scores) {
        return Err(RiskError::Collapsed(format!(
            "{reason}; the model would not rank declarations"
        )));
    }
    let order = metrics::ranking(&scores);
    let n = scores.len();
    for rate in INSPECTION_RATES {
        let k = metrics::selection_size(n, rate as f64).max(1);
        model.thresholds.insert(rate, scores[order[k - 1]]);
    }
    Ok(model)
}

/// Histograms sum in fixed point ([`crate::gbdt::to_fixed`]): refuses weights that sum to 2^30
/// or more (or are negative) before boosting, which would panic on them.
fn check_weights(data: &Dataset) -> Result<(), RiskError> {
    crate::gbdt::LabelSums::of(&data.labels, &data.weights)
        .check()
        .map_err(RiskError::Data)
}

/// Why calibrated `scores` no longer rank as their `raw` scores do, if they do not: most scores
/// exactly 0 or 1, or the calibration merging distinct raw scores into fewer than half as many
/// values.
pub fn collapse(raw: &[f64], scores: &[f64]) -> Option<String> {
    fn distinct(values: &[f64]) -> usize {
        let mut bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        bits.sort_unstable();
        bits.dedup();
        bits.len()
    }
    let n = scores.len();
    if n == 0 {
        return None;
    }
    if let Some(bad) = scores.iter().find(|p| !p.is_finite()) {
        return Some(format!("a calibrated score is {bad}"));
    }
    // Exactly 0 or 1: the logistic saturated in floating point, so these scores tie.
    let saturated = scores.iter().filter(|&&p| p == 0.0 || p == 1.0).count();
    if saturated * 2 > n {
        return Some(format!(
            "the calibrated scores collapse: {saturated} of {n} training scores are 0 or 1"
        ));
    }
    let (raw_distinct, distinct) = (distinct(raw), distinct(scores));
    if raw_distinct >= 2 && distinct * 2 < raw_distinct {
        return Some(format!(
            "the calibrated scores collapse: {raw_distinct} distinct raw scores of {n} training \
             rows become {distinct} distinct scores"
        ));
    }
    None
}

/// The training matrix and the fitted transformations that produced it.
pub struct TrainingDesign {
    /// The labelled items used, sorted by date.
    pub items: Vec<DeclarationItem>,
    /// Fitted pipeline.
    pub pipeline: FeaturePipeline,
    /// Fitted anomaly detector, when enabled.
    pub anomaly: Option<IsolationForest>,
    /// One row per item, labels set, weights 1.
    pub data: Dataset,
}

/// Fits the feature pipeline (and anomaly detector) on the labelled `items` and builds the
/// training matrix, as [`train`] does; also used to export the same features to other tools.
pub fn training_design(
    items: &[DeclarationItem],
    options: &TrainOptions,
) -> Result<TrainingDesign, RiskError> {
    training_design_weighted(items, None, None, None, options)
}

/// [`training_design`] with the text columns when `text` is given (see [`train_with_text`]).
pub fn training_design_with_text(
    items: &[DeclarationItem],
    text: Option<&TextSignalMap>,
    options: &TrainOptions,
) -> Result<TrainingDesign, RiskError> {
    training_design_weighted(items, None, text, None, options)
}

fn training_design_weighted(
    all_items: &[DeclarationItem],
    weights: Option<&[f64]>,
    text: Option<&TextSignalMap>,
    firms: Option<Firms>,
    options: &TrainOptions,
) -> Result<TrainingDesign, RiskError> {
    let label = options.label;
    if let Some(weights) = weights {
        if weights.len() != all_items.len() {
            return Err(RiskError::Data(format!(
                "{} weights for {} declarations",
                weights.len(),
                all_items.len()
            )));
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(RiskError::Data(format!(
                "weight {w} is not a finite positive number"
            )));
        }
    }
    let wanted: Vec<bool> = all_items.iter().map(|d| d.label.is_some()).collect();
    let items: Vec<DeclarationItem> = all_items
        .iter()
        .filter(|d| d.label.is_some())
        .cloned()
        .collect();
    if items.len() < 50 {
        return Err(RiskError::Data(format!(
            "{} labelled declarations, need at least 50",
            items.len()
        )));
    }
    if all_items.windows(2).any(|w| w[0].date > w[1].date) {
        return Err(RiskError::Data("items are not sorted by date".into()));
    }
    let mut pipeline = FeaturePipeline::fit_with_text(all_items, text.is_some());
    if let Some(firms) = firms {
        pipeline = pipeline.with_firms(firms);
    }
    let (mut data, rows) = pipeline.transform_with_text(all_items, &wanted, label, text);
    if let Some(weights) = weights {
        data.weights = rows.iter().map(|&i| weights[i]).collect();
    }
    let positives = data.labels.iter().filter(|&&y| y).count();
    if positives < 5 {
        return Err(RiskError::Data(format!(
            "only {positives} positive ({}) declarations",
            label.name()
        )));
    }
    let anomaly = if options.anomaly_feature {
        let forest =
            IsolationForest::fit(&data, &IsolationForestConfig::standard(), options.gbdt.seed);
        let scores = forest.score_all(&data);
        append_anomaly_column(&mut data, scores);
        Some(forest)
    } else {
        None
    };
    Ok(TrainingDesign {
        items,
        pipeline,
        anomaly,
        data,
    })
}

/// Model columns for the `wanted` items of `items` (sorted by date; earlier items, with their
/// labels, are history), plus the index in `items` of each row.
pub fn design_with(
    pipeline: &FeaturePipeline,
    anomaly: Option<&IsolationForest>,
    items: &[DeclarationItem],
    wanted: &[bool],
    label: LabelKind,
) -> (Dataset, Vec<usize>) {
    design_with_text(pipeline, anomaly, items, wanted, label, None)
}

/// [`design_with`], with the items' text signals for a pipeline with text columns.
pub fn design_with_text(
    pipeline: &FeaturePipeline,
    anomaly: Option<&IsolationForest>,
    items: &[DeclarationItem],
    wanted: &[bool],
    label: LabelKind,
    text: Option<&TextSignalMap>,
) -> (Dataset, Vec<usize>) {
    let (mut data, rows) = pipeline.transform_with_text(items, wanted, label, text);
    if let Some(forest) = anomaly {
        let scores = forest.score_all(&data);
        append_anomaly_column(&mut data, scores);
    }
    (data, rows)
}

fn append_anomaly_column(data: &mut Dataset, scores: Vec<f64>) {
    data.features.push(FeatureInfo {
        name: "anomaly_score".into(),
        kind: FeatureKind::Numeric,
    });
    data.columns.push(scores);
}

fn rebalance(data: &Dataset, options: &TrainOptions) -> Dataset {
    let seed = options.gbdt.seed;
    match options.imbalance {
        Imbalance::None => data.clone(),
        Imbalance::ClassWeight => {
            let positives = data.labels.iter().filter(|&&y| y).count().max(1) as f64;
            let negatives = (data.n_rows() as f64 - positives).max(1.0);
            let mut weighted = data.clone();
            for (w, &y) in weighted.weights.iter_mut().zip(&data.labels) {
                if y {
                    *w *= negatives / positives;
                }
            }
            weighted
        }
        Imbalance::Oversample => resample::random_oversample(data, 0.5, seed),
        Imbalance::Undersample => resample::random_undersample(data, 0.5, seed),
        Imbalance::Smote => resample::smote_nc(data, 0.5, 5, seed),
    }
}

/// Declared fields a counterfactual may change: the registry's `counterfactual` ones.
fn editable() -> impl Iterator<Item = &'static DeclaredField> {
    FieldRegistry::standard()
        .fields()
        .iter()
        .filter(|f| f.counterfactual)
}

/// `item` with `field` declared as `value` (`None` when `value` is not a value of the field).
fn with_field(item: &DeclarationItem, field: &str, value: &str) -> Option<DeclarationItem> {
    let field = FieldRegistry::standard().get(field)?;
    let value = field.parse(value, "%Y-%m-%d").ok()?;
    let mut changed = item.clone();
    field.set(&mut changed, value).ok()?;
    Some(changed)
}

/// The frequent values of each editable code field, most frequent first.
fn counterfactual_values(items: &[DeclarationItem]) -> Vec<(String, Vec<String>)> {
    editable()
        .filter(|f| !f.ty.is_number())
        .map(|field| {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for item in items {
                *counts.entry(field.get(item).to_string()).or_default() += 1;
            }
            let mut by_count: Vec<(String, usize)> = counts.into_iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            // HS codes: keep many, so that each chapter has candidates (see `counterfactual`).
            let keep = if field.ty == FieldType::Hs6 { 400 } else { 12 };
            (
                field.name.to_string(),
                by_count.into_iter().take(keep).map(|(v, _)| v).collect(),
            )
        })
        .collect()
}

impl RiskModel {
    /// The label this model predicts.
    pub fn label(&self) -> LabelKind {
        self.options.label
    }

    /// Model columns for the `wanted` items of `items` (sorted by date; earlier items, with their
    /// labels, are history), plus the index in `items` of each row.
    pub fn design(&self, items: &[DeclarationItem], wanted: &[bool]) -> (Dataset, Vec<usize>) {
        self.design_with_text(items, wanted, None)
    }

    /// [`RiskModel::design`] with the items' text signals (read when
    /// [`RiskModel::uses_text`]).
    pub fn design_with_text(
        &self,
        items: &[DeclarationItem],
        wanted: &[bool],
        text: Option<&TextSignalMap>,
    ) -> (Dataset, Vec<usize>) {
        design_with_text(
            &self.pipeline,
            self.anomaly.as_ref(),
            items,
            wanted,
            self.options.label,
            text,
        )
    }

    /// Whether the model reads text signals (it was trained with the text columns).
    pub fn uses_text(&self) -> bool {
        self.pipeline.uses_text()
    }

    /// The firms its firm columns read (`None` for a model trained without them).
    pub fn firms(&self) -> Option<&Firms> {
        self.pipeline.firms()
    }

    /// The ids linked to `item`'s importer and declarant whose past its firm columns read
    /// (see [`FeaturePipeline::linked_parties`]): what one item's history must also hold.
    pub fn linked_parties(&self, item: &DeclarationItem) -> Vec<String> {
        self.pipeline.linked_parties(item)
    }

    /// The linked ids behind a firm column, in words (see [`FeaturePipeline::firm_basis`]).
    pub fn firm_basis(&self, column: &str, item: &DeclarationItem) -> Option<String> {
        self.pipeline.firm_basis(column, item)
    }

    /// One item's model columns given its history.
    pub fn row(&self, item: &DeclarationItem, history: &HistoryState) -> Vec<f64> {
        self.row_with_text(item, history, None)
    }

    /// One item's model columns given its history and its text signals.
    pub fn row_with_text(
        &self,
        item: &DeclarationItem,
        history: &HistoryState,
        text: Option<&TextSignals>,
    ) -> Vec<f64> {
        let mut row = self.pipeline.row_with_text(item, history, text);
        if let Some(forest) = &self.anomaly {
            let score = forest.score_row(&row);
            row.push(score);
        }
        row
    }

    /// Calibrated probabilities of every row.
    pub fn score(&self, data: &Dataset) -> Vec<f64> {
        self.booster
            .predict_raw_all(data)
            .into_iter()
            .map(|raw| self.calibration.apply(raw))
            .collect()
    }

    /// Calibrated probability of one row.
    pub fn score_row(&self, row: &[f64]) -> f64 {
        self.calibration.apply(self.booster.predict_raw(row))
    }

    /// Explanations of every row of `data`, in parallel.
    pub fn explain_all(&self, data: &Dataset) -> Vec<Explanation> {
        use rayon::prelude::*;
        let rows: Vec<Vec<f64>> = (0..data.n_rows()).map(|i| data.row(i)).collect();
        let contributions = self.booster.contributions_rows(&rows);
        rows.par_iter()
            .zip(contributions)
            .map(|(row, phi)| self.explanation_from(row, phi))
            .collect()
    }

    /// TreeSHAP explanation of one row, in business words.
    pub fn explain(&self, row: &[f64]) -> Explanation {
        self.explanation_from(row, self.booster.contributions(row))
    }

    fn explanation_from(&self, row: &[f64], phi: Vec<f64>) -> Explanation {
        let n = self.booster.features.len();
        let raw: f64 = phi.iter().sum();
        let mut contributions: Vec<Contribution> = (0..n)
            .map(|j| Contribution {
                feature: self.booster.features[j].name.clone(),
                words: self.words(j),
                value: if j < self.pipeline.features().len() {
                    self.pipeline.display_value(j, row[j])
                } else {
                    format!("{:.3}", row[j])
                },
                log_odds: phi[j],
                support: self.pipeline.history_support(j, row),
            })
            .collect();
        contributions.sort_by(|a, b| b.log_odds.abs().total_cmp(&a.log_odds.abs()));
        Explanation {
            base_log_odds: phi[n],
            raw,
            probability: self.calibration.apply(raw),
            contributions,
        }
    }

    fn words(&self, column: usize) -> String {
        if column < self.pipeline.features().len() {
            self.pipeline.describe(column)
        } else {
            "anomaly score (isolation forest)".to_string()
        }
    }

    /// Global importance: mean |SHAP| over `data`'s rows (at most 2,000, evenly spaced), in words.
    pub fn global_importance(&self, data: &Dataset) -> Vec<(String, f64)> {
        use rayon::prelude::*;
        let n = data.n_rows();
        let step = (n / 2000).max(1);
        let rows: Vec<usize> = (0..n).step_by(step).collect();
        let n_features = self.booster.features.len();
        let sample: Vec<Vec<f64>> = rows.iter().map(|&i| data.row(i)).collect();
        let sums = self
            .booster
            .contributions_rows(&sample)
            .into_par_iter()
            .reduce(
                || vec![0.0; n_features + 1],
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| *x += y.abs());
                    a
                },
            );
        let mut importance: Vec<(String, f64)> = (0..n_features)
            .map(|j| (self.words(j), sums[j] / rows.len().max(1) as f64))
            .collect();
        importance.sort_by(|a, b| b.1.total_cmp(&a.1));
        importance
    }

    /// The smallest change of one or two declared fields that brings `item`'s score below
    /// `threshold`; among equally small changes, the one with the lowest score. `None` if the item
    /// is already below, or no such change exists among the values tried.
    ///
    /// A counterfactual tells the officer what would make this declaration look normal, so that
    /// the officer can check whether the declared values are true ("at half the declared mass it
    /// would not stand out: weigh it"). It must not read as a recipe for getting through
    /// unchecked: the fields tried are the registry's `counterfactual` ones, which leave out the
    /// customs office ("declare at another office" is evasion, not a fact about the goods), and
    /// HS codes are tried only within the declared heading (4 digits), never another product.
    pub fn counterfactual(
        &self,
        item: &DeclarationItem,
        history: &HistoryState,
        threshold: f64,
    ) -> Option<Counterfactual> {
        self.counterfactual_with_text(item, history, &|_| None, threshold)
    }

    /// [`RiskModel::counterfactual`] for a model with text columns: `text` reads an item (the
    /// declared one, or one with a changed field) as the caller's HS model does, so that a
    /// changed HS code is compared with the description again (a reclassification that the
    /// description supports lowers the mismatch).
    pub fn counterfactual_with_text(
        &self,
        item: &DeclarationItem,
        history: &HistoryState,
        text: &dyn Fn(&DeclarationItem) -> Option<TextSignals>,
        threshold: f64,
    ) -> Option<Counterfactual> {
        let declared_text = text(item);
        let row_of = |changed: &DeclarationItem| {
            if changed.hs6 == item.hs6 {
                self.row_with_text(changed, history, declared_text.as_ref())
            } else {
                self.row_with_text(changed, history, text(changed).as_ref())
            }
        };
        let original = self.score_row(&row_of(item));
        if original < threshold {
            return None;
        }
        let mut singles: Vec<(f64, FieldChange, DeclarationItem)> = Vec::new();
        for field in editable() {
            let current = field.get(item);
            let candidates: Vec<String> = match current.number() {
                Some(v) => [0.5, 0.8, 1.25, 2.0]
                    .iter()
                    .map(|f| format!("{}", (v * f * 100.0).round() / 100.0))
                    .collect(),
                None => {
                    // (Models saved before the field registry also list the office, under
                    // `office`; it is not tried any more.)
                    let values = self
                        .counterfactual_values
                        .iter()
                        .find(|(f, _)| f == field.name)
                        .map(|(_, values)| values.as_slice())
                        .unwrap_or_default();
                    if field.ty == FieldType::Hs6 {
                        // A plausible reclassification stays in the declared heading (4 digits):
                        // another subheading of the same goods. A code of another heading is
                        // another product, and proposing it teaches "declare something else".
                        let heading = item.hs6.heading();
                        values
                            .iter()
                            .filter(|v| v.starts_with(heading))
                            .take(12)
                            .cloned()
                            .collect()
                    } else {
                        values.to_vec()
                    }
                }
            };
            let current = current.to_string();
            for value in candidates.into_iter().filter(|v| *v != current) {
                if let Some(changed) = with_field(item, field.name, &value) {
                    let score = self.score_row(&row_of(&changed));
                    let change = FieldChange {
                        field: field.name.to_string(),
                        from: current.clone(),
                        to: value,
                    };
                    singles.push((score, change, changed));
                }
            }
        }
        singles.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((score, change, _)) = singles.first() {
            if *score < threshold {
                return Some(Counterfactual {
                    threshold,
                    original,
                    probability: *score,
                    changes: vec![change.clone()],
                });
            }
        }
        // Pairs among the most helpful single changes of different fields.
        let top: Vec<&(f64, FieldChange, DeclarationItem)> = singles.iter().take(15).collect();
        let mut best: Option<Counterfactual> = None;
        for (i, first) in top.iter().enumerate() {
            for second in &top[i + 1..] {
                if first.1.field == second.1.field {
                    continue;
                }
                let Some(both) = with_field(&first.2, &second.1.field, &second.1.to) else {
                    continue;
                };
                let score = self.score_row(&row_of(&both));
                if score < threshold && best.as_ref().is_none_or(|b| score < b.probability) {
                    best = Some(Counterfactual {
                        threshold,
                        original,
                        probability: score,
                        changes: vec![first.1.clone(), second.1.clone()],
                    });
                }
            }
        }
        best
    }

    /// Canonical bytes for the registry: JSON in format version 1, 2 for a model with text
    /// columns, 3 for one with firm columns (see [`MODEL_FORMAT`]); deterministic.
    pub fn to_bytes(&self) -> Vec<u8> {
        // The lowest version that holds the model: one without text or firm columns is
        // version 1.
        let format = if self.firms().is_some() {
            3
        } else if self.uses_text() {
            2
        } else {
            1
        };
        let versioned = VersionedRef {
            format,
            model: self,
        };
        // Serialising plain structs, vectors and BTreeMaps cannot fail.
        serde_json::to_vec(&versioned).unwrap_or_default()
    }

    /// Decodes registry bytes of any format version up to [`MODEL_FORMAT`], unversioned bytes
    /// (written before versions existed) included; bytes of a later version are
    /// [`RiskError::NewerFormat`].
    pub fn from_bytes(bytes: &[u8]) -> Result<RiskModel, RiskError> {
        let decode_error = |e: serde_json::Error| RiskError::Format(e.to_string());
        let probe: FormatProbe = serde_json::from_slice(bytes).map_err(decode_error)?;
        match probe.format {
            None => serde_json::from_slice(bytes).map_err(decode_error),
            Some(1..=3) => serde_json::from_slice::<Versioned>(bytes)
                .map(|versioned| versioned.model)
                .map_err(decode_error),
            Some(version) if version > u64::from(MODEL_FORMAT) => {
                Err(RiskError::NewerFormat(version))
            }
            Some(version) => Err(RiskError::Format(format!(
                "format version {version} was never written"
            ))),
        }
    }

    /// SHA-256 of [`RiskModel::to_bytes`], hex.
    pub fn digest(&self) -> String {
        borderlens_domain::hex::encode(&Sha256::digest(self.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use borderlens_domain::{ControlLabel, ItemKey};
    use chrono::NaiveDate;

    /// 3,000 items over 2020 where origin "XX" with HS chapter 61 is almost always fraud.
    fn items() -> Vec<DeclarationItem> {
        let mut rng = Rng::new(5);
        let origins = ["CN", "US", "JP", "XX"];
        let codes = ["611249", "610822", "851712", "940360"];
        (0..3000)
            .map(|i| {
                let origin = origins[rng.below(4)];
                let hs = codes[rng.below(4)];
                let risky = origin == "XX" && hs.starts_with("61");
                let fraud = rng.next_f64() < if risky { 0.9 } else { 0.1 };
                DeclarationItem {
                    key: ItemKey {
                        declaration_id: format!("D{i:05}"),
                        item_no: 1,
                    },
                    date: NaiveDate::from_ymd_opt(2020, 1, 1).unwrap()
                        + chrono::Duration::days((i / 10) as i64),
                    office_id: "40".into(),
                    process_type: "B".into(),
                    import_type: "11".into(),
                    import_use: "21".into(),
                    payment_type: "11".into(),
                    transport_mode: "10".into(),
                    declarant_id: format!("DCL{}", rng.below(30)),
                    importer_id: format!("IMP{}", rng.below(500)),
                    seller_id: None,
                    courier_id: None,
                    hs6: borderlens_domain::HsCode::parse(hs).unwrap(),
                    departure_country: origin.into(),
                    origin_country: origin.into(),
                    tax_rate: 8.0,
                    tax_type: "A".into(),
                    origin_indicator: "E".into(),
                    net_mass: 10.0 + rng.next_f64() * 100.0,
                    item_price: 1000.0 + rng.next_f64() * 10_000.0,
                    label: Some(ControlLabel {
                        fraud,
                        critical: u8::from(fraud),
                    }),
                    extra: Default::default(),
                }
            })
            .collect()
    }

    /// Weights whose sum leaves the fixed-point range of the histograms are refused with the
    /// reason, before boosting (which would panic on them); large weights within it train.
    #[test]
    fn weights_beyond_the_fixed_point_range_are_refused() {
        let items = items();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 3;
        let huge = vec![1e7; items.len()];
        let error = train_weighted(&items, Some(&huge), &options, &mut |_, _| true).unwrap_err();
        assert!(
            matches!(&error, RiskError::Data(why) if why.contains("2^30")),
            "{error}"
        );
        let large = vec![1e5; items.len()];
        assert!(train_weighted(&items, Some(&large), &options, &mut |_, _| true).is_ok());
    }

    /// The loss [`Calibration::fit`] minimises, at `c`.
    fn fit_loss(raw: &[f64], labels: &[bool], c: Calibration) -> f64 {
        let n_pos = labels.iter().filter(|&&y| y).count() as f64;
        let n_neg = labels.len() as f64 - n_pos;
        let targets: Vec<f64> = labels
            .iter()
            .map(|&y| {
                if y {
                    (n_pos + 1.0) / (n_pos + 2.0)
                } else {
                    1.0 / (n_neg + 2.0)
                }
            })
            .collect();
        platt_loss(raw, &targets, c)
    }

    /// Raw scores from `draw` and labels drawn with probability `truth(raw)`.
    fn sample(
        n: usize,
        seed: u64,
        draw: impl Fn(&mut Rng) -> f64,
        truth: impl Fn(f64) -> f64,
    ) -> (Vec<f64>, Vec<bool>) {
        let mut rng = Rng::new(seed);
        let raw: Vec<f64> = (0..n).map(|_| draw(&mut rng)).collect();
        let labels = raw.iter().map(|&x| rng.next_f64() < truth(x)).collect();
        (raw, labels)
    }

    #[test]
    fn calibration_recovers_a_known_slope_and_intercept_on_wide_margins() {
        // Margins over ±100 (saturated at the identity) whose true calibration is σ(0.05x − 1).
        let (raw, labels) = sample(
            20_000,
            11,
            |rng| rng.next_f64() * 200.0 - 100.0,
            |x| sigmoid(0.05 * x - 1.0),
        );
        let c = Calibration::fit(&raw, &labels);
        assert!(
            (c.a - 0.05).abs() < 0.01 && (c.b + 1.0).abs() < 0.2,
            "{c:?}"
        );
    }

    #[test]
    fn calibration_of_saturating_scores_stays_finite_lowers_the_loss_and_keeps_the_ranking() {
        let cases = [
            // Separable, huge margins: negatives at −60..−40, 5% positives at 40..60.
            sample(
                2_000,
                1,
                |rng| {
                    if rng.next_f64() < 0.05 {
                        40.0 + 20.0 * rng.next_f64()
                    } else {
                        -60.0 + 20.0 * rng.next_f64()
                    }
                },
                |x| f64::from(u8::from(x > 0.0)),
            ),
            // Separable at a point, rare positives, margins ±1e3.
            sample(
                3_000,
                2,
                |rng| 2e3 * rng.next_f64() - 1e3,
                |x| f64::from(u8::from(x > 900.0)),
            ),
            // Every raw score very negative (a rare class), weakly informative.
            sample(
                5_000,
                3,
                |rng| -45.0 + 10.0 * rng.next_f64(),
                |x| 0.01 + 0.02 * (x + 45.0) / 10.0,
            ),
            // Overconfident and noisy: margins ±80, labels barely follow them.
            sample(
                5_000,
                4,
                |rng| 160.0 * rng.next_f64() - 80.0,
                |x| if x > 0.0 { 0.3 } else { 0.1 },
            ),
        ];
        for (k, (raw, labels)) in cases.iter().enumerate() {
            assert!(labels.iter().any(|&y| y) && labels.iter().any(|&y| !y));
            let c = Calibration::fit(raw, labels);
            assert!(
                c.a.is_finite() && c.b.is_finite() && c.a > 0.0 && c.a <= Calibration::MAX_SLOPE,
                "case {k}: {c:?}"
            );
            let loss = fit_loss(raw, labels, c);
            let prior = Calibration {
                a: 0.0,
                b: (labels.iter().filter(|&&y| y).count() as f64
                    / labels.iter().filter(|&&y| !y).count() as f64)
                    .ln(),
            };
            for start in [Calibration::IDENTITY, prior] {
                assert!(
                    loss <= fit_loss(raw, labels, start) + 1e-9,
                    "case {k}: {c:?} loses to {start:?}"
                );
            }
            let scores: Vec<f64> = raw.iter().map(|&x| c.apply(x)).collect();
            assert_eq!(collapse(raw, &scores), None, "case {k}: {c:?}");
        }
    }

    #[test]
    fn calibration_without_both_classes_or_finite_scores_is_the_identity() {
        let raw = [0.5, -1.0, 2.0];
        assert_eq!(
            Calibration::fit(&raw, &[true, true, true]),
            Calibration::IDENTITY
        );
        assert_eq!(
            Calibration::fit(&raw, &[false, false, false]),
            Calibration::IDENTITY
        );
        assert_eq!(
            Calibration::fit(&[0.5, f64::INFINITY, 1.0], &[true, false, true]),
            Calibration::IDENTITY
        );
        assert_eq!(Calibration::fit(&[], &[]), Calibration::IDENTITY);
    }

    #[test]
    fn collapsed_scores_are_told_apart_from_sound_ones() {
        let (raw, _) = sample(1_000, 5, |rng| rng.next_f64() * 6.0 - 5.0, |_| 0.0);
        // The calibration stored by the diverged fit of issue 13.
        let diverged = Calibration {
            a: 3.5e13,
            b: -7.3e11,
        };
        let scores: Vec<f64> = raw.iter().map(|&x| diverged.apply(x)).collect();
        let reason = collapse(&raw, &scores).unwrap();
        assert!(reason.contains("training scores are 0 or 1"), "{reason}");
        // A constant score throws the ranking away too.
        let flat = vec![0.03; raw.len()];
        let reason = collapse(&raw, &flat).unwrap();
        assert!(reason.contains("become 1 distinct scores"), "{reason}");
        let sound: Vec<f64> = raw.iter().map(|&x| sigmoid(0.8 * x - 0.5)).collect();
        assert_eq!(collapse(&raw, &sound), None);
        assert_eq!(collapse(&[], &[]), None);
    }

    #[test]
    fn counterfactual_brings_a_risky_item_below_the_threshold_with_a_plausible_change() {
        let items = items();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 60;
        options.gbdt.early_stopping_rounds = None;
        let model = train(&items, &options, &mut |_, _| true).unwrap();
        let risky = items
            .iter()
            .rev()
            .find(|d| d.origin_country == "XX" && d.hs6.chapter() == "61")
            .unwrap();
        let history = HistoryState::as_of(&items, risky.date);
        let score = model.score_row(&model.row(risky, &history));
        let threshold = model.thresholds[&10];
        assert!(
            score >= threshold,
            "risky item scored {score} below threshold {threshold}"
        );
        let counterfactual = model
            .counterfactual(risky, &history, threshold)
            .expect("a counterfactual");
        assert!(counterfactual.probability < threshold);
        assert!((1..=2).contains(&counterfactual.changes.len()));
        for change in &counterfactual.changes {
            assert_ne!(change.from, change.to);
            if change.field == "hs6" {
                assert_eq!(
                    &change.to[..2],
                    "61",
                    "HS change left the chapter: {change:?}"
                );
            }
        }
        // Applying the changes really gives the reported score.
        let mut changed = risky.clone();
        for change in &counterfactual.changes {
            changed = with_field(&changed, &change.field, &change.to).unwrap();
        }
        let rescored = model.score_row(&model.row(&changed, &history));
        assert!((rescored - counterfactual.probability).abs() < 1e-12);
    }

    /// 3,000 items where fraud is driven by the office and by a subheading: at office "41",
    /// HS 611249 is almost always fraud, 611241 (same heading 6112) sometimes, 610822 (same
    /// chapter, heading 6108) rarely; at office "40" every code is rarely fraud.
    fn items_with_office_and_heading_levers() -> Vec<DeclarationItem> {
        let mut rng = Rng::new(11);
        let codes = ["611249", "611241", "610822"];
        items()
            .into_iter()
            .map(|mut d| {
                let office = ["40", "41"][rng.below(2)];
                let hs = codes[rng.below(3)];
                let p = match (office, hs) {
                    ("41", "611249") => 0.95,
                    ("41", "611241") => 0.3,
                    _ => 0.03,
                };
                let fraud = rng.next_f64() < p;
                d.office_id = office.into();
                d.hs6 = borderlens_domain::HsCode::parse(hs).unwrap();
                d.origin_country = "CN".into();
                d.departure_country = "CN".into();
                d.label = Some(ControlLabel {
                    fraud,
                    critical: u8::from(fraud),
                });
                d
            })
            .collect()
    }

    #[test]
    fn counterfactual_proposes_neither_another_office_nor_an_hs_code_of_another_heading() {
        let items = items_with_office_and_heading_levers();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 60;
        options.gbdt.early_stopping_rounds = None;
        let model = train(&items, &options, &mut |_, _| true).unwrap();
        let threshold = model.thresholds[&10];
        let risky: Vec<&DeclarationItem> = items
            .iter()
            .rev()
            .filter(|d| d.office_id == "41" && d.hs6.as_str() == "611249")
            .take(5)
            .collect();
        let mut found = 0;
        for item in risky {
            let history = HistoryState::as_of(&items, item.date);
            let Some(counterfactual) = model.counterfactual(item, &history, threshold) else {
                continue;
            };
            found += 1;
            for change in &counterfactual.changes {
                assert_ne!(change.field, "office_id", "{counterfactual:?}");
                if change.field == "hs6" {
                    assert_eq!(&change.to[..4], "6112", "{counterfactual:?}");
                }
            }
        }
        assert!(found > 0, "no counterfactual at all");
    }

    /// Fraud is a trait of the firm, and every firm takes a new id every month (the old
    /// one is left behind): the firm columns carry a firm's caught past over to its new id,
    /// which the importer's own columns see as a newcomer. Trained to October, scored on
    /// November and December.
    #[test]
    fn firm_columns_carry_a_firms_past_across_a_change_of_id() {
        let mut rng = Rng::new(9);
        let start = NaiveDate::from_ymd_opt(2020, 1, 1).unwrap();
        let n_firms = 300;
        // A tenth of the firms cheat often; each firm changes id on its own days.
        let bad: Vec<bool> = (0..n_firms).map(|_| rng.next_f64() < 0.1).collect();
        let offset: Vec<i64> = (0..n_firms).map(|_| rng.below(30) as i64).collect();
        let id = |firm: usize, day: i64| format!("F{firm}-{}", (day + offset[firm]) / 30);
        let base = items()[0].clone();
        let mut all: Vec<DeclarationItem> = (0..12_000)
            .map(|i| {
                let firm = rng.below(n_firms);
                let day = rng.below(366) as i64;
                let fraud = rng.next_f64() < if bad[firm] { 0.5 } else { 0.04 };
                let mut d = base.clone();
                d.key.declaration_id = format!("F{i:05}");
                d.date = start + chrono::Duration::days(day);
                d.importer_id = id(firm, day);
                d.declarant_id = format!("DCL{}", rng.below(30));
                d.origin_country = ["CN", "US", "JP"][rng.below(3)].into();
                d.departure_country = d.origin_country.clone();
                d.net_mass = 10.0 + rng.next_f64() * 100.0;
                d.item_price = 1000.0 + rng.next_f64() * 10_000.0;
                d.label = Some(ControlLabel { fraud, critical: 0 });
                d
            })
            .collect();
        all.sort_by(|a, b| a.date.cmp(&b.date).then(a.key.cmp(&b.key)));
        let cut = NaiveDate::from_ymd_opt(2020, 10, 31).unwrap();
        let training: Vec<DeclarationItem> =
            all.iter().filter(|d| d.date <= cut).cloned().collect();
        let groups = (0..n_firms)
            .map(|f| (0..=13).map(|month| id(f, month * 30)).collect())
            .collect();
        let firms = Firms::new("run-1", groups);
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 200;
        let test_auc = |model: &RiskModel| {
            let wanted: Vec<bool> = all.iter().map(|d| d.date > cut).collect();
            let (data, _) = model.design(&all, &wanted);
            metrics::roc_auc(&model.score(&data), &data.labels)
        };
        let plain = train(&training, &options, &mut |_, _| true).unwrap();
        let with_firms =
            train_with_firms(&training, None, None, Some(firms), &options, &mut |_, _| {
                true
            })
            .unwrap();
        let (without, with) = (test_auc(&plain), test_auc(&with_firms));
        assert!(
            with > without + 0.05 && with > 0.75,
            "ROC-AUC on Nov–Dec: {without:.3} without firm columns, {with:.3} with"
        );
        // Saved as format 3 and read back whole.
        let bytes = with_firms.to_bytes();
        assert!(bytes.starts_with(br#"{"format":3,"#));
        assert_eq!(RiskModel::from_bytes(&bytes).unwrap(), with_firms);
        assert!(plain.to_bytes().starts_with(br#"{"format":1,"#));
    }

    #[test]
    fn same_data_and_seed_give_same_bytes() {
        let items = items();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 20;
        let a = train(&items, &options, &mut |_, _| true).unwrap();
        let b = train(&items, &options, &mut |_, _| true).unwrap();
        assert_eq!(a.to_bytes(), b.to_bytes());
        options.gbdt.seed = 7;
        let c = train(&items, &options, &mut |_, _| true).unwrap();
        assert_ne!(a.digest(), c.digest());
        assert_eq!(RiskModel::from_bytes(&a.to_bytes()).unwrap(), a);
    }

    #[test]
    fn bytes_carry_the_format_version_and_unversioned_bytes_still_load() {
        let items = items();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 5;
        let model = train(&items, &options, &mut |_, _| true).unwrap();
        let bytes = model.to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // Without text columns: version 1, as before they existed (no `text` key either).
        assert_eq!(value["format"], 1);
        assert!(value["model"]["pipeline"].get("text").is_none());
        assert_eq!(RiskModel::from_bytes(&bytes).unwrap(), model);
        // Written before versions existed: the model's JSON alone.
        let unversioned = serde_json::to_vec(&model).unwrap();
        assert_eq!(RiskModel::from_bytes(&unversioned).unwrap(), model);
        for (bad, kind) in [
            (br#"{"format":"1","model":{}}"#.as_slice(), "not a number"),
            (br#"{"format":0,"model":{}}"#.as_slice(), "never written"),
            (br#"{"format":1}"#.as_slice(), "no model"),
            (b"[1, 2]".as_slice(), "not an object"),
        ] {
            let error = RiskModel::from_bytes(bad).unwrap_err();
            assert!(matches!(error, RiskError::Format(_)), "{kind}: {error:?}");
        }
        assert!(matches!(
            RiskModel::from_bytes(br#"{"format":4,"model":{}}"#),
            Err(RiskError::NewerFormat(4))
        ));
    }

    /// Text signals of the test items: a description on every item; the chapter mismatch is
    /// high on most risky items (the planted story: the text reads as other goods) and low
    /// elsewhere; every fifth item has no description.
    fn described(items: &mut [DeclarationItem]) -> TextSignalMap {
        let mut rng = crate::rng::Rng::new(11);
        let mut text = TextSignalMap::new();
        for (i, item) in items.iter_mut().enumerate() {
            if i % 5 == 4 {
                continue;
            }
            item.extra.insert(
                borderlens_domain::GOODS_DESCRIPTION,
                borderlens_domain::DeclaredValue::Text("cotton t-shirt".into()),
            );
            let fraud = item.label.is_some_and(|l| l.fraud);
            let mismatch = if fraud && rng.next_f64() < 0.8 {
                0.99
            } else {
                0.1 * rng.next_f64()
            };
            text.insert(
                item.key.clone(),
                TextSignals {
                    chapter_mismatch: Some(mismatch),
                    heading_mismatch: Some(mismatch),
                    hs6_mismatch: Some(mismatch),
                    reads_as: [
                        Some("85".into()),
                        Some("8544".into()),
                        Some("854411".into()),
                    ],
                    vagueness: Some(0.1),
                    review: false,
                    cleaned_disagreement: None,
                },
            );
        }
        text
    }

    #[test]
    fn text_columns_are_learnt_saved_as_format_2_and_read_where_the_model_scores() {
        let mut items = items();
        let text = described(&mut items);
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 30;
        let with = train_with_text(&items, None, Some(&text), &options, &mut |_, _| true).unwrap();
        let without = train(&items, &options, &mut |_, _| true).unwrap();
        assert!(with.uses_text() && !without.uses_text());
        let n = without.pipeline.features().len();
        let names: Vec<String> = with.pipeline.features()[n..]
            .iter()
            .map(|f| f.name.clone())
            .collect();
        assert_eq!(names[0], "no_description");
        assert!(names.contains(&"description_chapter_mismatch".to_string()));
        // Saved as version 2 and read back as it was.
        let bytes = with.to_bytes();
        assert!(bytes.starts_with(br#"{"format":2,"#));
        assert_eq!(RiskModel::from_bytes(&bytes).unwrap(), with);
        // The signal carries the fraud it was planted on: the mismatch column leads.
        let wanted = vec![true; items.len()];
        let (data, _) = with.design_with_text(&items, &wanted, Some(&text));
        let importance = with.global_importance(&data);
        assert!(
            importance[0].0.contains("another HS chapter")
                || importance[0].0.contains("another HS heading")
                || importance[0].0.contains("another HS code"),
            "{importance:?}"
        );
        let scores = with.score(&data);
        let auc = |scores: &[f64]| {
            metrics::evaluate(scores, &data.labels, &vec![1.0; scores.len()]).roc_auc
        };
        let (plain, _) = without.design(&items, &wanted);
        assert!(auc(&scores) > auc(&without.score(&plain)) + 0.02);
        // One row: the same as in the design; without signals the text columns are missing.
        let history = HistoryState::as_of(&items, items[10].date);
        let row = with.row_with_text(&items[10], &history, text.get(&items[10].key));
        assert_eq!(row.len(), data.features.len());
        assert_eq!(row[n], 0.0, "item 10 has a description");
        let bare = with.row(&items[10], &history);
        assert!(bare[n + 1].is_nan());
        let none = with.row(&items[4], &history);
        assert_eq!(none[n], 1.0, "item 4 has no description");
        // Explanations name the column in business words.
        let explanation = with.explain(&row);
        assert!(explanation.contributions.iter().any(|c| c
            .words
            .starts_with("description reads as another HS chapter")));
    }

    #[test]
    fn a_text_column_says_what_the_description_reads_as_beside_the_declared_code() {
        let mut items = items();
        let text = described(&mut items);
        let item = &items[0];
        let signals = text.get(&item.key);
        let basis = |c| crate::features::text_basis(c, item, signals);
        assert_eq!(
            basis("description_chapter_mismatch").as_deref(),
            Some(
                format!(
                    "description reads as chapter 85, declared chapter {}",
                    item.hs6.chapter()
                )
                .as_str()
            )
        );
        assert_eq!(
            basis("description_hs6_mismatch").as_deref(),
            Some(
                format!(
                    "description reads as 854411, declared {}",
                    item.hs6.as_str()
                )
                .as_str()
            )
        );
        assert_eq!(
            basis("no_description").as_deref(),
            Some("goods description \"cotton t-shirt\"")
        );
        assert_eq!(
            crate::features::text_basis("no_description", &items[4], None).as_deref(),
            Some("no goods description")
        );
        assert_eq!(basis("origin_country"), None);
        assert_eq!(
            crate::features::text_basis("description_chapter_mismatch", item, None),
            None
        );
    }

    #[test]
    fn the_label_is_saved_as_its_word_and_an_unknown_one_does_not_load() {
        let items = items();
        let mut options = TrainOptions::standard(LabelKind::Fraud);
        options.gbdt.n_trees = 3;
        let model = train(&items, &options, &mut |_, _| true).unwrap();
        assert_eq!(model.label(), LabelKind::Fraud);
        let mut value: serde_json::Value = serde_json::from_slice(&model.to_bytes()).unwrap();
        assert_eq!(value["model"]["options"]["label"], "fraud");
        value["model"]["options"]["label"] = "critical".into();
        let critical = RiskModel::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert_eq!(critical.label(), LabelKind::Critical);
        value["model"]["options"]["label"] = "tax evasion".into();
        let error = RiskModel::from_bytes(&serde_json::to_vec(&value).unwrap()).unwrap_err();
        assert!(
            matches!(&error, RiskError::Format(m) if m.contains("unknown label 'tax evasion'")),
            "{error:?}"
        );
    }
}
