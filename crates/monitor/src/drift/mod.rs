//! Drift and displacement: how the declarations, the scores and the hits of a current period
//! differ from a reference period.
//!
//! - **Feature and score drift**: population stability index (PSI) of each feature and of the
//!   model score, with the bins that moved most.
//! - **Hit-rate shifts**: per (dimension, group), the hit rate of inspections in the reference vs
//!   the current period, with a two-proportion z-test.
//! - **Displacement**: per dimension, the share of all hits found in each group (office, route,
//!   concealment method, weekday) in the reference vs the current period. Hits moving from one
//!   office or concealment method to another while totals stay flat is what smugglers changing
//!   route or method looks like; the share of *inspections* per group is shown beside it, so that
//!   a shift of hits caused by a shift of controls can be told apart.
//!
//! # PSI
//!
//! `PSI = Σ_bins (c − r) · ln(c / r)` with `r`, `c` the shares of the reference and current values
//! in each bin. Every term is ≥ 0. Levels: below 0.1 stable, 0.1 to 0.25 moderate, 0.25 and above
//! major ([`DriftLevel`]).
//!
//! - Numeric values ([`psi_numeric`]): bin edges are the reference quantiles at `k / bins`
//!   (`k = 1 … bins − 1`, the value at index `⌊k·n/bins⌋` of the sorted finite reference values),
//!   with duplicate edges and edges equal to the reference minimum dropped, so that heavy ties
//!   give fewer, never empty-by-construction bins. A bin holds the values `x` with
//!   `edge_i ≤ x < edge_{i+1}`; the lowest and highest bins are open-ended, so current values
//!   outside the reference range fall in them (±∞ too). NaN is *missing* and has a bin of its own.
//! - Categorical values ([`psi_categorical`]): one bin per category; categories under 1% of both
//!   periods are pooled into one `other` bin (`other (pooled)` when a category is called
//!   `other`), the empty string is shown as `(empty)`. A category never seen in the reference has
//!   a reference share of 0.
//! - **Smoothing**: a share of exactly 0 (a bin empty in one period) is replaced by
//!   [`PSI_EPSILON`] = 10⁻⁴ in the formula (shares are not renormalised, and reported shares stay
//!   the raw ones). A bin holding a share `p` on one side only then contributes
//!   `(p − ε) · ln(p / ε)`, about 0.69 for `p` = 0.1: large, finite, and growing with `p`.
//! - When one period has no values at all there is nothing to compare: PSI is 0 and
//!   `reference_count` / `current_count` say why. The report does not alert on PSI unless both
//!   periods have at least `min_psi_count` values (PSI of small samples is biased upwards: about
//!   `(bins − 1)·(1/n_ref + 1/n_cur)` between two samples of one distribution).
//!
//! # Tests and multiple testing
//!
//! Hit-rate shifts use the pooled two-proportion z-test (two-sided) and are tested only when both
//! periods have `min_inspected` inspections of the group; displacement compares the share of hits
//! of each group with the same test on (group hits, dimension hits), tested only when the dimension
//! has `min_hits` hits in both periods and more than one group. All p-values of one report (overall
//! hit rate, every group's hit rate, every group's share of hits) form a single family corrected by
//! **Benjamini–Hochberg** (false discovery rate at `alpha`): `significant` means the
//! BH-adjusted p-value is ≤ `alpha`. An alert further needs a change worth acting on: a hit rate
//! moving by at least `min_relative_change` of its reference value, a share of hits moving by
//! at least `min_share_shift` (absolute).
//!
//! # Alerts
//!
//! | what | severity |
//! | --- | --- |
//! | score PSI ≥ `psi_alert` | critical |
//! | displacement of hits | critical |
//! | feature PSI ≥ `psi_alert`; reference and current of different kinds | warning |
//! | hit-rate shift (overall or a group) | warning |
//! | score PSI moderate (0.1 to `psi_alert`) | info |
//!
//! Alerts are sorted by severity (critical first), in the order of the table within a severity.
//!
//! Outcome records name their groups like audit records: a record naming no group of a dimension
//! is not counted in it, a repeated pair counts once, and per dimension the
//! `max_groups_per_dimension` groups with the most inspections (both periods) are kept, the rest
//! summed into `other`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use borderlens_selection::estimate::{normal_cdf, wilson};
use serde::{Deserialize, Serialize};

use crate::format;
use crate::svg::{self, c, Bands, Scale};

/// Share used in place of an empty bin's share of 0 when computing PSI.
pub const PSI_EPSILON: f64 = 1e-4;
/// Categories under this share in both periods are pooled into `other`.
pub const RARE_CATEGORY_SHARE: f64 = 0.01;

/// The values of one feature in one period.
#[derive(Clone, Copy, Debug)]
pub enum Values<'a> {
    /// Numbers; NaN is missing.
    Numeric(&'a [f64]),
    /// Categories.
    Categorical(&'a [&'a str]),
}

impl Values<'_> {
    /// Number of values (missing included).
    pub fn len(&self) -> usize {
        match self {
            Values::Numeric(v) => v.len(),
            Values::Categorical(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind(&self) -> &'static str {
        match self {
            Values::Numeric(_) => "numeric",
            Values::Categorical(_) => "categorical",
        }
    }
}

/// One bin of a PSI computation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsiBin {
    /// `< 3`, `[3, 7)`, `≥ 12`, `missing`, a category, or `other`.
    pub label: String,
    /// Share of the reference values in the bin (raw, not smoothed).
    pub reference_share: f64,
    /// Share of the current values in the bin (raw, not smoothed).
    pub current_share: f64,
    /// The bin's term of the PSI sum (≥ 0).
    pub contribution: f64,
}

/// A population stability index with its bins.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    /// The index (≥ 0, finite; 0 when either period has no values).
    pub value: f64,
    /// Reference values (missing included).
    pub reference_count: usize,
    /// Current values (missing included).
    pub current_count: usize,
    /// The bins, in value order for numbers (missing last), by size for categories (`other`
    /// last).
    pub bins: Vec<PsiBin>,
}

/// PSI from per-bin counts.
fn psi_from_counts(labels: Vec<String>, reference: &[usize], current: &[usize]) -> Psi {
    let nr: usize = reference.iter().sum();
    let nc: usize = current.iter().sum();
    let share = |count: usize, n: usize| {
        if n == 0 {
            0.0
        } else {
            count as f64 / n as f64
        }
    };
    let comparable = nr > 0 && nc > 0;
    let mut value = 0.0;
    let bins = labels
        .into_iter()
        .zip(reference.iter().zip(current))
        .map(|(label, (&rc, &cc))| {
            let (r, c) = (share(rc, nr), share(cc, nc));
            let contribution = if comparable {
                let rs = if r > 0.0 { r } else { PSI_EPSILON };
                let cs = if c > 0.0 { c } else { PSI_EPSILON };
                (cs - rs) * (cs / rs).ln()
            } else {
                0.0
            };
            value += contribution;
            PsiBin {
                label,
                reference_share: r,
                current_share: c,
                contribution,
            }
        })
        .collect();
    Psi {
        value,
        reference_count: nr,
        current_count: nc,
        bins,
    }
}

/// A bin edge as text: the shortest representation when short, four decimals or scientific
/// notation otherwise.
fn edge_text(x: f64) -> String {
    let short = format!("{x}");
    if short.len() <= 10 {
        return short;
    }
    let fixed = format!("{x:.4}");
    let fixed = fixed.trim_end_matches('0').trim_end_matches('.');
    if fixed.len() <= 12 && fixed != "0" && fixed != "-0" {
        fixed.to_string()
    } else {
        format!("{x:.3e}")
    }
}

/// PSI of numeric values, with `bins` quantile bins of the reference (at least 1) and a bin for
/// missing values (NaN). See the module doc for the binning and the smoothing of empty bins.
pub fn psi_numeric(reference: &[f64], current: &[f64], bins: usize) -> Psi {
    let bins = bins.max(1);
    let mut sorted: Vec<f64> = reference
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = Vec::new();
    if let Some(&min) = sorted.first() {
        let n = sorted.len();
        for k in 1..bins {
            let e = sorted[k * n / bins];
            if e > min && edges.last().is_none_or(|&last| e > last) {
                edges.push(e);
            }
        }
    }
    let value_bins = edges.len() + 1;
    let count = |values: &[f64]| {
        let mut counts = vec![0usize; value_bins + 1];
        for &v in values {
            if v.is_nan() {
                counts[value_bins] += 1;
            } else {
                counts[edges.partition_point(|&e| e <= v)] += 1;
            }
        }
        counts
    };
    let (rc, cc) = (count(reference), count(current));
    let mut labels: Vec<String> = if edges.is_empty() {
        vec!["all values".to_string()]
    } else {
        let mut labels = vec![format!("< {}", edge_text(edges[0]))];
        for w in edges.windows(2) {
            labels.push(format!("[{}, {})", edge_text(w[0]), edge_text(w[1])));
        }
        labels.push(format!("≥ {}", edge_text(edges[edges.len() - 1])));
        labels
    };
    labels.push("missing".to_string());
    // Drop the value bins when neither period has a value, and the missing bin when nothing is
    // missing.
    let any_value = rc[..value_bins]
        .iter()
        .chain(&cc[..value_bins])
        .any(|&n| n > 0);
    let any_missing = rc[value_bins] + cc[value_bins] > 0;
    let keep: Vec<usize> = (0..=value_bins)
        .filter(|&i| {
            if i < value_bins {
                any_value
            } else {
                any_missing
            }
        })
        .collect();
    psi_from_counts(
        keep.iter().map(|&i| labels[i].clone()).collect(),
        &keep.iter().map(|&i| rc[i]).collect::<Vec<_>>(),
        &keep.iter().map(|&i| cc[i]).collect::<Vec<_>>(),
    )
}

/// PSI of categorical values: one bin per category, categories under 1% of both periods pooled
/// into `other` (see the module doc).
pub fn psi_categorical(reference: &[&str], current: &[&str]) -> Psi {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for &v in reference {
        counts.entry(v).or_default().0 += 1;
    }
    for &v in current {
        counts.entry(v).or_default().1 += 1;
    }
    let (nr, nc) = (reference.len(), current.len());
    let share = |count: usize, n: usize| {
        if n == 0 {
            0.0
        } else {
            count as f64 / n as f64
        }
    };
    let (mut kept, rare): (Vec<_>, Vec<_>) = counts.into_iter().partition(|(_, (r, c))| {
        share(*r, nr) >= RARE_CATEGORY_SHARE || share(*c, nc) >= RARE_CATEGORY_SHARE
    });
    kept.sort_by(|a, b| {
        let size = |(r, c): (usize, usize)| share(r, nr) + share(c, nc);
        size(b.1).total_cmp(&size(a.1)).then(a.0.cmp(b.0))
    });
    let mut labels: Vec<String> = kept
        .iter()
        .map(|(name, _)| {
            if name.is_empty() {
                "(empty)".to_string()
            } else {
                name.to_string()
            }
        })
        .collect();
    let mut rc: Vec<usize> = kept.iter().map(|(_, (r, _))| *r).collect();
    let mut cc: Vec<usize> = kept.iter().map(|(_, (_, c))| *c).collect();
    if !rare.is_empty() {
        let other = if kept.iter().any(|(name, _)| *name == "other") {
            "other (pooled)"
        } else {
            "other"
        };
        labels.push(other.to_string());
        rc.push(rare.iter().map(|(_, (r, _))| r).sum());
        cc.push(rare.iter().map(|(_, (_, c))| c).sum());
    }
    psi_from_counts(labels, &rc, &cc)
}

/// How much a distribution moved, by PSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftLevel {
    /// PSI below 0.1.
    Stable,
    /// PSI from 0.1 to 0.25.
    Moderate,
    /// PSI 0.25 or above.
    Major,
}

impl DriftLevel {
    /// The level of a PSI value (a non-finite value counts as stable).
    pub fn of(psi: f64) -> Self {
        if psi >= 0.25 {
            DriftLevel::Major
        } else if psi >= 0.1 {
            DriftLevel::Moderate
        } else {
            DriftLevel::Stable
        }
    }

    /// `stable`, `moderate` or `major`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DriftLevel::Stable => "stable",
            DriftLevel::Moderate => "moderate",
            DriftLevel::Major => "major",
        }
    }
}

/// One feature (or the score) in both periods.
#[derive(Clone, Debug)]
pub struct FeatureInput<'a> {
    /// Feature name as analysts know it (e.g. `origin country`).
    pub name: String,
    /// Values of the reference period.
    pub reference: Values<'a>,
    /// Values of the current period.
    pub current: Values<'a>,
}

/// One inspected declaration (or item) with its result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeRecord {
    /// Time window, e.g. `2021-W03` or `2021-01`; windows sort chronologically as strings.
    pub window: String,
    /// (dimension, group) pairs: `("office", "30")`, `("route", "CN→KR")`,
    /// `("concealment", "false_compartment")`, `("weekday", "Mon")`.
    pub groups: Vec<(String, String)>,
    /// Found non-compliant.
    pub hit: bool,
}

/// Settings of the drift report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftOptions {
    /// Confidence level of the Wilson intervals of hit rates (default 0.95).
    pub confidence: f64,
    /// False discovery rate of the Benjamini–Hochberg correction (default 0.01: alerts are meant
    /// to be acted on, and a quiet report on a stable week matters more than a marginal find).
    pub alpha: f64,
    /// Inspections a group needs in each period before its hit rate is tested (default 30).
    pub min_inspected: usize,
    /// Hits a dimension needs in each period before its shares of hits are tested (default 30).
    pub min_hits: usize,
    /// PSI from which a feature or the score raises an alert (default 0.25).
    pub psi_alert: f64,
    /// Values each period needs before PSI can raise an alert (default 100).
    pub min_psi_count: usize,
    /// Quantile bins of numeric features (default 10).
    pub bins: usize,
    /// Moving bins reported per feature (default 3).
    pub top_bins: usize,
    /// Smallest change of a hit rate, relative to its reference value, that raises an alert
    /// (default 0.2).
    pub min_relative_change: f64,
    /// Smallest absolute change of a group's share of hits that raises an alert (default 0.05).
    pub min_share_shift: f64,
    /// Groups kept per dimension, those with the most inspections; the rest are summed into
    /// `other` (default 25).
    pub max_groups_per_dimension: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            alpha: 0.01,
            min_inspected: 30,
            min_hits: 30,
            psi_alert: 0.25,
            min_psi_count: 100,
            bins: 10,
            top_bins: 3,
            min_relative_change: 0.2,
            min_share_shift: 0.05,
            max_groups_per_dimension: 25,
        }
    }
}

/// PSI of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureDrift {
    /// Feature name.
    pub name: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// The index and its bins.
    pub psi: Psi,
    /// Level of `psi.value`.
    pub level: DriftLevel,
    /// The bins with the largest contributions, largest first (zero contributions left out).
    pub top_bins: Vec<PsiBin>,
    /// False when reference and current are of different kinds (nothing computed).
    pub compared: bool,
    /// Why the feature could not be compared, or could not alert.
    pub note: Option<String>,
}

/// Hit rate of one group in both periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HitRateShift {
    /// Dimension (`overall` for all inspections).
    pub dimension: String,
    /// Group (`all` for all inspections).
    pub group: String,
    /// Inspections in the reference period.
    pub reference_inspected: usize,
    /// Hits in the reference period.
    pub reference_hits: usize,
    /// Reference hit rate; `None` without inspections.
    pub reference_rate: Option<f64>,
    /// Wilson interval of the reference hit rate.
    pub reference_interval: (f64, f64),
    /// Inspections in the current period.
    pub current_inspected: usize,
    /// Hits in the current period.
    pub current_hits: usize,
    /// Current hit rate; `None` without inspections.
    pub current_rate: Option<f64>,
    /// Wilson interval of the current hit rate.
    pub current_interval: (f64, f64),
    /// `current_rate − reference_rate`.
    pub difference: Option<f64>,
    /// Two-sided p-value of the two-proportion z-test; `None` when not tested.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value.
    pub adjusted_p_value: Option<f64>,
    /// `adjusted_p_value ≤ alpha`.
    pub significant: bool,
}

/// Share of the hits of one dimension found in one group, in both periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareShift {
    /// Group.
    pub group: String,
    /// Hits of the group in the reference period.
    pub reference_hits: usize,
    /// Hits of the group in the current period.
    pub current_hits: usize,
    /// Group hits / dimension hits, reference period.
    pub reference_share: Option<f64>,
    /// Group hits / dimension hits, current period.
    pub current_share: Option<f64>,
    /// Group inspections / dimension inspections, reference period.
    pub reference_inspection_share: Option<f64>,
    /// Group inspections / dimension inspections, current period.
    pub current_inspection_share: Option<f64>,
    /// `current_share − reference_share`.
    pub difference: Option<f64>,
    /// Two-sided p-value of the two-proportion z-test; `None` when not tested.
    pub p_value: Option<f64>,
    /// Benjamini–Hochberg adjusted p-value.
    pub adjusted_p_value: Option<f64>,
    /// `adjusted_p_value ≤ alpha`.
    pub significant: bool,
}

/// Where the hits of one dimension were found, in both periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Displacement {
    /// Dimension.
    pub dimension: String,
    /// Inspections naming a group of the dimension, reference period.
    pub reference_inspected: usize,
    /// Same, current period.
    pub current_inspected: usize,
    /// Hits naming a group of the dimension, reference period.
    pub reference_hits: usize,
    /// Same, current period.
    pub current_hits: usize,
    /// Per group, most inspections first, `other` last.
    pub groups: Vec<ShareShift>,
}

/// How urgent an alert is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Something moved.
    Warning,
    /// The model or the smugglers moved.
    Critical,
}

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A feature's distribution.
    FeatureDrift,
    /// The score's distribution.
    ScoreDrift,
    /// A hit rate.
    HitRate,
    /// Where hits are found.
    Displacement,
}

/// One alert of a drift report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// About what.
    pub kind: AlertKind,
    /// A sentence naming what moved and by how much.
    pub what: String,
}

/// Drift and displacement between a reference and a current period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DriftReport {
    /// Settings the report ran with.
    pub options: DriftOptions,
    /// PSI per feature, in the caller's order.
    pub features: Vec<FeatureDrift>,
    /// PSI of the model score.
    pub score: Option<FeatureDrift>,
    /// Hit rate of all inspections.
    pub overall_hit_rate: HitRateShift,
    /// Hit rates per dimension (name order) and group (most inspections first, `other` last).
    pub hit_rate_shifts: Vec<HitRateShift>,
    /// Shares of hits per dimension (name order).
    pub displacement: Vec<Displacement>,
    /// Alerts, most severe first.
    pub alerts: Vec<Alert>,
}

/// Inspections and hits.
#[derive(Clone, Copy, Debug, Default)]
struct Counts {
    inspected: usize,
    hits: usize,
}

impl Counts {
    fn add(&mut self, hit: bool) {
        self.inspected += 1;
        self.hits += usize::from(hit);
    }

    fn plus(self, other: Counts) -> Counts {
        Counts {
            inspected: self.inspected + other.inspected,
            hits: self.hits + other.hits,
        }
    }

    fn rate(self) -> Option<f64> {
        share(self.hits, self.inspected)
    }
}

/// `a / b`, `None` when `b` is 0.
fn share(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Counts per dimension and group of one period.
type Tallies<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Counts>>;

fn tally(outcomes: &[OutcomeRecord]) -> (Counts, Tallies<'_>) {
    let mut overall = Counts::default();
    let mut tallies: Tallies = BTreeMap::new();
    for record in outcomes {
        overall.add(record.hit);
        let mut seen: Vec<(&str, &str)> = Vec::with_capacity(record.groups.len());
        for (dimension, group) in &record.groups {
            let pair = (dimension.as_str(), group.as_str());
            if seen.contains(&pair) {
                continue;
            }
            seen.push(pair);
            tallies
                .entry(pair.0)
                .or_default()
                .entry(pair.1)
                .or_default()
                .add(record.hit);
        }
    }
    (overall, tallies)
}

/// Two-sided p-value of the pooled two-proportion z-test of `h1/n1` vs `h2/n2`; `None` when a
/// sample is empty, 1 when the pooled proportion is 0 or 1.
fn two_proportion_p(h1: usize, n1: usize, h2: usize, n2: usize) -> Option<f64> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (n1f, n2f) = (n1 as f64, n2 as f64);
    let pooled = (h1 + h2) as f64 / (n1f + n2f);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1f + 1.0 / n2f)).sqrt();
    if !(se > 0.0 && se.is_finite()) {
        return Some(1.0);
    }
    let z = (h2 as f64 / n2f - h1 as f64 / n1f) / se;
    Some((2.0 * (1.0 - normal_cdf(z.abs()))).clamp(0.0, 1.0))
}

/// Benjamini–Hochberg adjusted p-values (step-up, monotone, capped at 1), in the input order.
fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = vec![1.0; m];
    let mut running = 1.0f64;
    for rank in (0..m).rev() {
        let i = order[rank];
        // m / rank ≥ 1 first, so that rounding never gives an adjusted p below the raw one.
        let q = (p[i] * (m as f64 / (rank + 1) as f64)).min(1.0);
        running = running.min(q);
        adjusted[i] = running;
    }
    adjusted
}

fn feature_drift(input: &FeatureInput<'_>, options: &DriftOptions) -> FeatureDrift {
    let (psi, note) = match (&input.reference, &input.current) {
        (Values::Numeric(r), Values::Numeric(c)) => (psi_numeric(r, c, options.bins), None),
        (Values::Categorical(r), Values::Categorical(c)) => (psi_categorical(r, c), None),
        (r, c) => (
            Psi {
                value: 0.0,
                reference_count: r.len(),
                current_count: c.len(),
                bins: Vec::new(),
            },
            Some(format!(
                "reference is {} but current is {}: not compared",
                r.kind(),
                c.kind()
            )),
        ),
    };
    let compared = note.is_none();
    let note = note.or_else(|| {
        (psi.reference_count < options.min_psi_count || psi.current_count < options.min_psi_count)
            .then(|| {
                format!(
                    "too few values to alert ({} reference, {} current; {} needed)",
                    psi.reference_count, psi.current_count, options.min_psi_count
                )
            })
    });
    let mut top: Vec<PsiBin> = psi
        .bins
        .iter()
        .filter(|b| b.contribution > 0.0)
        .cloned()
        .collect();
    top.sort_by(|a, b| {
        b.contribution
            .total_cmp(&a.contribution)
            .then(a.label.cmp(&b.label))
    });
    top.truncate(options.top_bins);
    FeatureDrift {
        name: input.name.clone(),
        kind: input.reference.kind().to_string(),
        compared,
        level: DriftLevel::of(psi.value),
        psi,
        top_bins: top,
        note,
    }
}

/// `origin country: PSI 0.41 (major) — CN 12% → 31%, US 40% → 25% of declarations`.
fn psi_sentence(name: &str, drift: &FeatureDrift) -> String {
    let mut s = format!(
        "{name}: PSI {} ({})",
        format::psi(drift.psi.value),
        drift.level.as_str()
    );
    let moves: Vec<String> = drift
        .top_bins
        .iter()
        .take(2)
        .map(|b| {
            format!(
                "{} {} → {}",
                b.label,
                format::pct(b.reference_share),
                format::pct(b.current_share)
            )
        })
        .collect();
    if !moves.is_empty() {
        let _ = write!(s, " — {} of declarations", moves.join(", "));
    }
    s
}

/// Whether PSI of `drift` may raise an alert at `threshold`.
fn psi_alerts(drift: &FeatureDrift, threshold: f64) -> bool {
    drift.note.is_none() && drift.psi.value >= threshold
}

/// The groups of one dimension in both periods, largest first, the rest pooled.
fn merged_groups<'a>(
    reference: Option<&BTreeMap<&'a str, Counts>>,
    current: Option<&BTreeMap<&'a str, Counts>>,
    max_groups: usize,
) -> Vec<(String, Counts, Counts)> {
    let names: BTreeSet<&str> = reference
        .into_iter()
        .chain(current)
        .flat_map(|m| m.keys().copied())
        .collect();
    let get = |m: Option<&BTreeMap<&str, Counts>>, name: &str| {
        m.and_then(|m| m.get(name)).copied().unwrap_or_default()
    };
    let mut groups: Vec<(&str, Counts, Counts)> = names
        .into_iter()
        .map(|name| (name, get(reference, name), get(current, name)))
        .collect();
    groups.sort_by(|a, b| {
        (b.1.inspected + b.2.inspected)
            .cmp(&(a.1.inspected + a.2.inspected))
            .then(a.0.cmp(b.0))
    });
    let keep = max_groups.min(groups.len());
    let rest = groups.split_off(keep);
    let mut out: Vec<(String, Counts, Counts)> = groups
        .iter()
        .map(|(n, r, c)| (n.to_string(), *r, *c))
        .collect();
    if !rest.is_empty() {
        let other = if groups.iter().any(|(n, _, _)| *n == "other") {
            "other (pooled)"
        } else {
            "other"
        };
        let (r, c) = rest.iter().fold(
            (Counts::default(), Counts::default()),
            |(r, c), (_, gr, gc)| (r.plus(*gr), c.plus(*gc)),
        );
        out.push((other.to_string(), r, c));
    }
    out
}

fn hit_rate_shift(
    dimension: &str,
    group: &str,
    reference: Counts,
    current: Counts,
    options: &DriftOptions,
    confidence: f64,
) -> HitRateShift {
    let (reference_rate, current_rate) = (reference.rate(), current.rate());
    let tested =
        reference.inspected >= options.min_inspected && current.inspected >= options.min_inspected;
    HitRateShift {
        dimension: dimension.to_string(),
        group: group.to_string(),
        reference_inspected: reference.inspected,
        reference_hits: reference.hits,
        reference_rate,
        reference_interval: wilson(reference.hits, reference.inspected, confidence),
        current_inspected: current.inspected,
        current_hits: current.hits,
        current_rate,
        current_interval: wilson(current.hits, current.inspected, confidence),
        difference: current_rate.zip(reference_rate).map(|(c, r)| c - r),
        p_value: if tested {
            two_proportion_p(
                reference.hits,
                reference.inspected,
                current.hits,
                current.inspected,
            )
        } else {
            None
        },
        adjusted_p_value: None,
        significant: false,
    }
}

/// Whether a significant hit-rate shift is large enough to alert on.
fn hit_rate_alerts(shift: &HitRateShift, options: &DriftOptions) -> bool {
    match (shift.significant, shift.reference_rate, shift.difference) {
        (true, Some(r), Some(d)) => d.abs() >= options.min_relative_change * r && d != 0.0,
        _ => false,
    }
}

/// `office 40: hit rate 0.31 → 0.12 (adjusted p=0.001; 210 → 250 inspected)`.
fn hit_rate_sentence(shift: &HitRateShift) -> String {
    let who = if shift.dimension == "overall" {
        "all inspections".to_string()
    } else {
        format!("{} {}", shift.dimension, shift.group)
    };
    format!(
        "{who}: hit rate {} → {} (adjusted {}; {} → {} inspected)",
        format::rate(shift.reference_rate.unwrap_or(f64::NAN)),
        format::rate(shift.current_rate.unwrap_or(f64::NAN)),
        format::p_value(shift.adjusted_p_value.unwrap_or(f64::NAN)),
        shift.reference_inspected,
        shift.current_inspected
    )
}

/// `office: hits moved from 30 to 40 — share of hits in 30 45% → 12% (of inspections 40% → 38%),
/// in 40 10% → 41% (of inspections 12% → 14%); total hits 210 → 198`.
fn displacement_sentence(d: &Displacement, moved: &[&ShareShift]) -> String {
    let names = |up: bool| -> Vec<&str> {
        moved
            .iter()
            .filter(|g| g.difference.is_some_and(|x| (x > 0.0) == up))
            .map(|g| g.group.as_str())
            .collect()
    };
    let (gainers, losers) = (names(true), names(false));
    let mut s = format!("{}: ", d.dimension);
    if !gainers.is_empty() && !losers.is_empty() {
        let _ = write!(
            s,
            "hits moved from {} to {} — ",
            losers.join(", "),
            gainers.join(", ")
        );
    }
    let parts: Vec<String> = moved
        .iter()
        .map(|g| {
            format!(
                "in {} {} → {} (of inspections {} → {})",
                g.group,
                format::pct(g.reference_share.unwrap_or(f64::NAN)),
                format::pct(g.current_share.unwrap_or(f64::NAN)),
                format::pct(g.reference_inspection_share.unwrap_or(f64::NAN)),
                format::pct(g.current_inspection_share.unwrap_or(f64::NAN)),
            )
        })
        .collect();
    let _ = write!(
        s,
        "share of hits {}; total hits {} → {}",
        parts.join(", "),
        d.reference_hits,
        d.current_hits
    );
    s
}

/// Compares a current period with a reference period: PSI of every feature and of the score,
/// hit-rate shifts, displacement of hits, and alerts (see the module doc for the tests, the
/// correction and the alert rules).
pub fn drift_report(
    features: &[FeatureInput<'_>],
    score: Option<FeatureInput<'_>>,
    reference_outcomes: &[OutcomeRecord],
    current_outcomes: &[OutcomeRecord],
    options: &DriftOptions,
) -> DriftReport {
    let confidence = if options.confidence > 0.0 && options.confidence < 1.0 {
        options.confidence
    } else {
        0.95
    };
    let features: Vec<FeatureDrift> = features.iter().map(|f| feature_drift(f, options)).collect();
    let score = score.as_ref().map(|s| feature_drift(s, options));

    let (reference_all, reference_tallies) = tally(reference_outcomes);
    let (current_all, current_tallies) = tally(current_outcomes);
    let mut overall = hit_rate_shift(
        "overall",
        "all",
        reference_all,
        current_all,
        options,
        confidence,
    );
    let dimensions: BTreeSet<&str> = reference_tallies
        .keys()
        .chain(current_tallies.keys())
        .copied()
        .collect();
    let mut shifts = Vec::new();
    let mut displacement = Vec::new();
    for dimension in dimensions {
        let groups = merged_groups(
            reference_tallies.get(dimension),
            current_tallies.get(dimension),
            options.max_groups_per_dimension,
        );
        let (r_total, c_total) = groups.iter().fold(
            (Counts::default(), Counts::default()),
            |(r, c), (_, gr, gc)| (r.plus(*gr), c.plus(*gc)),
        );
        let tested = groups.len() > 1
            && r_total.hits >= options.min_hits
            && c_total.hits >= options.min_hits;
        let mut shares = Vec::with_capacity(groups.len());
        for (group, r, c) in &groups {
            shifts.push(hit_rate_shift(
                dimension, group, *r, *c, options, confidence,
            ));
            let (reference_share, current_share) =
                (share(r.hits, r_total.hits), share(c.hits, c_total.hits));
            shares.push(ShareShift {
                group: group.clone(),
                reference_hits: r.hits,
                current_hits: c.hits,
                reference_share,
                current_share,
                reference_inspection_share: share(r.inspected, r_total.inspected),
                current_inspection_share: share(c.inspected, c_total.inspected),
                difference: current_share.zip(reference_share).map(|(c, r)| c - r),
                p_value: if tested {
                    two_proportion_p(r.hits, r_total.hits, c.hits, c_total.hits)
                } else {
                    None
                },
                adjusted_p_value: None,
                significant: false,
            });
        }
        displacement.push(Displacement {
            dimension: dimension.to_string(),
            reference_inspected: r_total.inspected,
            current_inspected: c_total.inspected,
            reference_hits: r_total.hits,
            current_hits: c_total.hits,
            groups: shares,
        });
    }

    // One Benjamini–Hochberg family for every p-value of the report.
    {
        let mut targets: Vec<(&mut Option<f64>, &mut bool, f64)> = Vec::new();
        if let Some(p) = overall.p_value {
            targets.push((&mut overall.adjusted_p_value, &mut overall.significant, p));
        }
        for s in &mut shifts {
            if let Some(p) = s.p_value {
                targets.push((&mut s.adjusted_p_value, &mut s.significant, p));
            }
        }
        for d in &mut displacement {
            for g in &mut d.groups {
                if let Some(p) = g.p_value {
                    targets.push((&mut g.adjusted_p_value, &mut g.significant, p));
                }
            }
        }
        let p: Vec<f64> = targets.iter().map(|t| t.2).collect();
        for ((adjusted, significant, _), q) in targets.into_iter().zip(benjamini_hochberg(&p)) {
            *adjusted = Some(q);
            *significant = q <= options.alpha;
        }
    }

    let mut alerts = Vec::new();
    if let Some(s) = &score {
        if psi_alerts(s, options.psi_alert) {
            alerts.push(Alert {
                severity: Severity::Critical,
                kind: AlertKind::ScoreDrift,
                what: psi_sentence(&format!("{} (model score)", s.name), s),
            });
        }
    }
    for d in &displacement {
        let mut moved: Vec<&ShareShift> = d
            .groups
            .iter()
            .filter(|g| {
                g.significant
                    && g.difference
                        .is_some_and(|x| x.abs() >= options.min_share_shift && x != 0.0)
            })
            .collect();
        if moved.is_empty() {
            continue;
        }
        moved.sort_by(|a, b| {
            let size = |g: &ShareShift| g.difference.map_or(0.0, f64::abs);
            size(b).total_cmp(&size(a))
        });
        alerts.push(Alert {
            severity: Severity::Critical,
            kind: AlertKind::Displacement,
            what: displacement_sentence(d, &moved),
        });
    }
    for f in &features {
        if let (false, Some(note)) = (f.compared, &f.note) {
            alerts.push(Alert {
                severity: Severity::Warning,
                kind: AlertKind::FeatureDrift,
                what: format!("{}: {note}", f.name),
            });
        } else if psi_alerts(f, options.psi_alert) {
            alerts.push(Alert {
                severity: Severity::Warning,
                kind: AlertKind::FeatureDrift,
                what: psi_sentence(&f.name, f),
            });
        }
    }
    for shift in std::iter::once(&overall).chain(&shifts) {
        if hit_rate_alerts(shift, options) {
            alerts.push(Alert {
                severity: Severity::Warning,
                kind: AlertKind::HitRate,
                what: hit_rate_sentence(shift),
            });
        }
    }
    if let Some(s) = &score {
        if !psi_alerts(s, options.psi_alert) && psi_alerts(s, 0.1) {
            alerts.push(Alert {
                severity: Severity::Info,
                kind: AlertKind::ScoreDrift,
                what: psi_sentence(&format!("{} (model score)", s.name), s),
            });
        }
    }
    // Stable sort: the order above is kept within a severity.
    alerts.sort_by_key(|a| std::cmp::Reverse(a.severity));

    DriftReport {
        options: options.clone(),
        features,
        score,
        overall_hit_rate: overall,
        hit_rate_shifts: shifts,
        displacement,
        alerts,
    }
}

/// Hit rate of one group in one window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Window (e.g. `2021-W03`).
    pub window: String,
    /// Inspections of the group in the window.
    pub inspected: usize,
    /// Hits among them.
    pub hits: usize,
    /// `hits / inspected`; `None` without inspections.
    pub rate: Option<f64>,
    /// Lower bound of the 95% Wilson interval; `None` without inspections.
    pub low: Option<f64>,
    /// Upper bound of the 95% Wilson interval; `None` without inspections.
    pub high: Option<f64>,
}

/// The hit rate of one group over the windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Group name.
    pub group: String,
    /// One point per window of the outcomes, in window order.
    pub points: Vec<SeriesPoint>,
}

/// Inspections of a group in all windows, and its counts per window.
type GroupWindows<'a> = (usize, BTreeMap<&'a str, Counts>);

/// Per-window hit rate (with 95% Wilson intervals) of the `top` groups of `dimension` with the
/// most inspections (ties by name), one point per window present in `outcomes` (string order,
/// which is chronological for `2021-W03` / `2021-01` windows). Smaller groups are left out.
pub fn hit_rate_series(outcomes: &[OutcomeRecord], dimension: &str, top: usize) -> Vec<Series> {
    let windows: BTreeSet<&str> = outcomes.iter().map(|o| o.window.as_str()).collect();
    let mut by_group: BTreeMap<&str, GroupWindows> = BTreeMap::new();
    for o in outcomes {
        let mut seen: Vec<&str> = Vec::new();
        for (d, g) in &o.groups {
            if d != dimension || seen.contains(&g.as_str()) {
                continue;
            }
            seen.push(g);
            let entry = by_group.entry(g).or_default();
            entry.0 += 1;
            entry.1.entry(o.window.as_str()).or_default().add(o.hit);
        }
    }
    let mut groups: Vec<(&str, GroupWindows)> = by_group.into_iter().collect();
    groups.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(b.0)));
    groups.truncate(top);
    groups
        .into_iter()
        .map(|(group, (_, per_window))| Series {
            group: group.to_string(),
            points: windows
                .iter()
                .map(|&w| {
                    let counts = per_window.get(w).copied().unwrap_or_default();
                    let interval =
                        (counts.inspected > 0).then(|| wilson(counts.hits, counts.inspected, 0.95));
                    SeriesPoint {
                        window: w.to_string(),
                        inspected: counts.inspected,
                        hits: counts.hits,
                        rate: counts.rate(),
                        low: interval.map(|i| i.0),
                        high: interval.map(|i| i.1),
                    }
                })
                .collect(),
        })
        .collect()
}

/// Colour of a drift level.
fn level_colour(level: DriftLevel) -> &'static str {
    match level {
        DriftLevel::Stable => "#2ca02c",
        DriftLevel::Moderate => "#ff7f0e",
        DriftLevel::Major => "#d62728",
    }
}

/// One horizontal bar per feature (the score last), coloured by level (green stable, orange
/// moderate, red major) and labelled with its PSI and level, with dashed vertical lines at 0.1 and
/// 0.25. Bars carry `class="bar"`; a report without features or score gives a "no data" chart.
pub fn psi_chart_svg(report: &DriftReport) -> String {
    let title = "Population stability index (PSI), current vs reference";
    let rows: Vec<(String, &FeatureDrift)> = report
        .features
        .iter()
        .map(|f| (f.name.clone(), f))
        .chain(
            report
                .score
                .iter()
                .map(|s| (format!("{} (score)", s.name), s)),
        )
        .collect();
    if rows.is_empty() {
        return svg::no_data(title);
    }
    let max = rows
        .iter()
        .map(|(_, f)| f.psi.value)
        .filter(|v| v.is_finite())
        .fold(0.3f64, f64::max);
    let left = svg::name_margin(rows.iter().map(|(n, _)| n.as_str()));
    let row = 26.0;
    let plot_top = svg::TOP + 24.0;
    let plot_bottom = plot_top + rows.len() as f64 * row;
    let height = plot_bottom + svg::BOTTOM;
    let scale = Scale {
        d0: 0.0,
        d1: max * 1.08,
        p0: left,
        p1: svg::WIDTH - 110.0,
    };
    let mut s = svg::open(title, height);
    svg::x_axis(&mut s, &scale, plot_bottom, plot_top, "PSI");
    for (i, (name, f)) in rows.iter().enumerate() {
        let y = plot_top + i as f64 * row;
        let value = if f.psi.value.is_finite() {
            f.psi.value
        } else {
            0.0
        };
        let x1 = scale.at(value);
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{ty}\" text-anchor=\"end\">{}</text>\n\
             <rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n\
             <text x=\"{}\" y=\"{ty}\" font-size=\"11\" fill=\"#333333\">{} ({})</text>",
            c(left - 8.0),
            svg::label(name),
            c(scale.p0),
            c(y + 4.0),
            c(x1 - scale.p0),
            c(row - 8.0),
            level_colour(f.level),
            c(x1 + 4.0),
            format::psi(f.psi.value),
            f.level.as_str(),
            ty = c(y + row / 2.0 + 4.0),
        );
    }
    for (mark, text) in [(0.1, "0.1 moderate"), (0.25, "0.25 major")] {
        svg::x_marker(&mut s, &scale, mark, plot_top, plot_bottom, text, "#555555");
    }
    s.push_str("</svg>\n");
    s
}

/// A point of a hit-rate line: window index, rate, Wilson interval.
type PlotPoint = (usize, f64, Option<(f64, f64)>);

/// Hit rate over windows, one coloured line per series with its Wilson interval as a faint
/// vertical error bar at each point; windows without inspections break the line. The x axis shows
/// the windows (string order, thinned to about ten labels), the y axis the hit rate from 0. A
/// legend on the right names the groups. No point with inspections gives a "no data" chart.
pub fn hit_rate_chart_svg(title: &str, series: &[Series]) -> String {
    let windows: Vec<&str> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.window.as_str()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
    let top_value = series
        .iter()
        .flat_map(|s| &s.points)
        .flat_map(|p| [finite(p.rate), finite(p.high)])
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
    if windows.is_empty() || !top_value.is_finite() {
        return svg::no_data(title);
    }
    let top_value = top_value.clamp(0.01, 1.0);
    // The y axis ends on a tick at or above the highest value (as many ticks as the axis draws).
    let ticks = svg::nice_ticks(0.0, top_value, 6);
    let step = if ticks.len() >= 2 {
        ticks[1] - ticks[0]
    } else {
        top_value
    };
    let last = ticks.last().copied().unwrap_or(top_value);
    let d1 = if last + 1e-12 >= top_value {
        last
    } else {
        last + step
    };
    let height = 480.0;
    let (left, right) = (70.0, svg::WIDTH - 180.0);
    let (plot_top, plot_bottom) = (svg::TOP + 10.0, height - svg::BOTTOM - 10.0);
    let ys = Scale {
        d0: 0.0,
        d1,
        p0: plot_bottom,
        p1: plot_top,
    };
    let bands = Bands {
        n: windows.len(),
        p0: left,
        p1: right,
    };
    let x_of = |i: usize| bands.at(i);
    let index: BTreeMap<&str, usize> = windows.iter().enumerate().map(|(i, w)| (*w, i)).collect();
    let mut s = svg::open(title, height);
    svg::y_axis(&mut s, &ys, left, right, "hit rate");
    svg::band_axis(&mut s, &bands, &windows, plot_bottom, "window");
    let legend_rows = ((plot_bottom - plot_top) / 20.0).floor().max(1.0) as usize;
    for (k, one) in series.iter().enumerate() {
        let colour = svg::PALETTE[k % svg::PALETTE.len()];
        let mut points: Vec<PlotPoint> = one
            .points
            .iter()
            .filter_map(|p| {
                let i = *index.get(p.window.as_str())?;
                let rate = finite(p.rate)?;
                let band = finite(p.low).zip(finite(p.high));
                Some((i, rate, band))
            })
            .collect();
        points.sort_by_key(|p| p.0);
        let _ = writeln!(s, "<g class=\"series\">");
        for &(i, _, band) in &points {
            if let Some((low, high)) = band {
                let x = c(x_of(i));
                let _ = writeln!(
                    s,
                    "<line class=\"ci\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\" stroke=\"{colour}\" stroke-opacity=\"0.3\" stroke-width=\"5\"/>",
                    c(ys.at(low.clamp(0.0, 1.0))),
                    c(ys.at(high.clamp(0.0, 1.0)))
                );
            }
        }
        // Runs of consecutive windows with a rate.
        let mut run: Vec<String> = Vec::new();
        let mut previous: Option<usize> = None;
        let flush = |run: &mut Vec<String>, s: &mut String| {
            if run.len() >= 2 {
                let _ = writeln!(
                    s,
                    "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                    run.join(" ")
                );
            }
            run.clear();
        };
        for &(i, rate, _) in &points {
            if previous.is_some_and(|p| p + 1 != i) {
                flush(&mut run, &mut s);
            }
            run.push(format!("{},{}", c(x_of(i)), c(ys.at(rate.clamp(0.0, 1.0)))));
            previous = Some(i);
        }
        flush(&mut run, &mut s);
        for &(i, rate, _) in &points {
            let _ = writeln!(
                s,
                "<circle cx=\"{}\" cy=\"{}\" r=\"3\" fill=\"{colour}\"/>",
                c(x_of(i)),
                c(ys.at(rate.clamp(0.0, 1.0)))
            );
        }
        s.push_str("</g>\n");
        if k < legend_rows {
            let ly = plot_top + 8.0 + k as f64 * 20.0;
            let _ = writeln!(
                s,
                "<line x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{colour}\" stroke-width=\"3\"/>\n\
                 <text x=\"{}\" y=\"{}\">{}</text>",
                c(right + 15.0),
                c(right + 38.0),
                c(right + 44.0),
                c(ly + 4.0),
                svg::label_max(&one.group, 18),
                y = c(ly),
            );
        } else if k == legend_rows {
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" fill=\"#555555\">+{} more</text>",
                c(right + 15.0),
                c(plot_top + 12.0 + k as f64 * 20.0),
                series.len() - legend_rows
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::check::{assert_no_nan, assert_well_formed};
    use crate::test_util::Lcg;
    use proptest::prelude::*;

    fn psi_by_hand(pairs: &[(f64, f64)]) -> f64 {
        pairs.iter().map(|&(r, c)| (c - r) * (c / r).ln()).sum()
    }

    #[test]
    fn identical_distributions_give_zero() {
        let values: Vec<f64> = (0..1000).map(|i| (i % 37) as f64 * 0.5).collect();
        let psi = psi_numeric(&values, &values, 10);
        assert_eq!(psi.value, 0.0);
        let cats: Vec<&str> = (0..500).map(|i| ["CN", "US", "DE"][i % 3]).collect();
        assert_eq!(psi_categorical(&cats, &cats).value, 0.0);
        // Two samples of one distribution: close to zero.
        let mut rng = Lcg::new(3);
        let a: Vec<f64> = (0..20000).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..20000).map(|_| rng.normal()).collect();
        let psi = psi_numeric(&a, &b, 10);
        assert!(psi.value < 0.005, "{}", psi.value);
        assert_eq!(psi.bins.len(), 10);
        assert_eq!(DriftLevel::of(psi.value), DriftLevel::Stable);
    }

    #[test]
    fn a_known_shift_gives_the_textbook_value() {
        // Reference 0..99: quartile edges 25, 50, 75, 25% in each bin.
        let reference: Vec<f64> = (0..100).map(f64::from).collect();
        // Current: 10% below 25, 20% in [25, 50), 30% in [50, 75), 40% from 75.
        let mut current = Vec::new();
        for (value, n) in [(3.0, 10), (30.0, 20), (60.0, 30), (90.0, 40)] {
            current.extend(std::iter::repeat_n(value, n));
        }
        let psi = psi_numeric(&reference, &current, 4);
        let labels: Vec<&str> = psi.bins.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["< 25", "[25, 50)", "[50, 75)", "≥ 75"]);
        // (0.10 − 0.25)·ln(0.10/0.25) + (0.20 − 0.25)·ln(0.20/0.25) + (0.30 − 0.25)·ln(0.30/0.25)
        // + (0.40 − 0.25)·ln(0.40/0.25) = 0.137444 + 0.011157 + 0.009116 + 0.070501 = 0.228218
        let expected = psi_by_hand(&[(0.25, 0.1), (0.25, 0.2), (0.25, 0.3), (0.25, 0.4)]);
        assert!((expected - 0.228_218).abs() < 1e-6);
        assert!((psi.value - expected).abs() < 1e-12, "{}", psi.value);
        assert_eq!(DriftLevel::of(psi.value), DriftLevel::Moderate);
        assert_eq!(psi.bins[3].current_share, 0.4);
    }

    #[test]
    fn missing_values_have_their_own_bin_and_outliers_fall_in_the_end_bins() {
        let mut reference: Vec<f64> = (0..90).map(f64::from).collect();
        reference.extend([f64::NAN; 10]);
        let mut current: Vec<f64> = vec![-1000.0; 35];
        current.extend([f64::INFINITY; 35]);
        current.extend([f64::NAN; 30]);
        let psi = psi_numeric(&reference, &current, 2);
        let labels: Vec<&str> = psi.bins.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["< 45", "≥ 45", "missing"]);
        let expected = psi_by_hand(&[(0.45, 0.35), (0.45, 0.35), (0.1, 0.3)]);
        assert!((psi.value - expected).abs() < 1e-12);
        assert_eq!(psi.reference_count, 100);
    }

    #[test]
    fn ties_do_not_make_empty_reference_bins() {
        // 70% zeros: the quantile edges at 0 are dropped.
        let reference: Vec<f64> = (0..100)
            .map(|i| if i < 70 { 0.0 } else { f64::from(i) })
            .collect();
        let psi = psi_numeric(&reference, &reference, 10);
        assert!(psi.bins.iter().all(|b| b.reference_share > 0.0), "{psi:?}");
        assert_eq!(psi.bins[0].label, "< 70");
        assert!((psi.bins[0].reference_share - 0.7).abs() < 1e-12);
        // A constant feature has a single bin.
        let constant = psi_numeric(&[5.0; 50], &[5.0, 6.0], 10);
        assert_eq!(constant.bins.len(), 1);
        assert_eq!(constant.value, 0.0);
    }

    #[test]
    fn categories_never_seen_in_the_reference_are_handled() {
        let reference: Vec<&str> = [["A"; 50], ["B"; 50]].concat();
        let current: Vec<&str> = [["A"; 50], ["C"; 50]].concat();
        let psi = psi_categorical(&reference, &current);
        let c = psi.bins.iter().find(|b| b.label == "C").unwrap();
        assert_eq!((c.reference_share, c.current_share), (0.0, 0.5));
        // B and C each contribute (0.5 − ε)·ln(0.5 / ε), A nothing.
        let eps = PSI_EPSILON;
        let expected = 2.0 * (0.5 - eps) * (0.5 / eps).ln();
        assert!((psi.value - expected).abs() < 1e-12, "{}", psi.value);
        assert!(psi.value.is_finite());
        assert_eq!(DriftLevel::of(psi.value), DriftLevel::Major);
    }

    #[test]
    fn rare_categories_are_pooled_into_other() {
        let mut reference: Vec<&str> = vec!["A"; 990];
        reference.extend(["r1"; 5]);
        reference.extend(["r2"; 5]);
        let mut current: Vec<&str> = vec!["A"; 980];
        current.extend(["r1"; 5]);
        current.extend(["r3"; 15]); // 1.5% of current: kept
        current.push("");
        let psi = psi_categorical(&reference, &current);
        let labels: Vec<&str> = psi.bins.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["A", "r3", "other"]);
        let other = psi.bins.last().unwrap();
        assert!((other.reference_share - 0.01).abs() < 1e-12);
        assert!((other.current_share - 6.0 / 1001.0).abs() < 1e-12);
        // A real category called "other" stays apart from the pool.
        let psi = psi_categorical(&["other", "other", "x"], &["other"]);
        assert!(psi.bins.iter().any(|b| b.label == "other"));
        let reference: Vec<&str> = [vec!["other"; 200], vec!["rare"]].concat();
        let psi = psi_categorical(&reference, &reference);
        let labels: Vec<&str> = psi.bins.iter().map(|b| b.label.as_str()).collect();
        assert_eq!(labels, ["other", "other (pooled)"]);
        // The empty string is shown as such.
        let psi = psi_categorical(&["", "a"], &["", "a"]);
        assert!(psi.bins.iter().any(|b| b.label == "(empty)"));
    }

    #[test]
    fn empty_and_missing_only_inputs_do_not_panic() {
        let none = psi_numeric(&[], &[], 10);
        assert_eq!(none.value, 0.0);
        assert!(none.bins.is_empty());
        let nan = psi_numeric(&[f64::NAN; 5], &[f64::NAN; 3], 10);
        assert_eq!(nan.value, 0.0);
        assert_eq!(nan.bins.len(), 1);
        assert_eq!(nan.bins[0].label, "missing");
        let one_side = psi_numeric(&[], &[1.0, 2.0], 10);
        assert_eq!(one_side.value, 0.0);
        assert_eq!(one_side.reference_count, 0);
        let became_missing = psi_numeric(&[1.0, 2.0, 3.0], &[f64::NAN; 3], 0);
        assert!(became_missing.value > 1.0 && became_missing.value.is_finite());
        let cats = psi_categorical(&[], &[]);
        assert_eq!(cats.value, 0.0);
        assert!(psi_categorical(&["a"], &[]).value == 0.0);
    }

    #[test]
    fn levels_follow_the_usual_thresholds() {
        assert_eq!(DriftLevel::of(0.099), DriftLevel::Stable);
        assert_eq!(DriftLevel::of(0.1), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.249), DriftLevel::Moderate);
        assert_eq!(DriftLevel::of(0.25), DriftLevel::Major);
        assert_eq!(DriftLevel::of(f64::NAN), DriftLevel::Stable);
    }

    #[test]
    fn benjamini_hochberg_matches_a_hand_computation() {
        // Sorted: 0.005, 0.01, 0.03, 0.04 → 0.02, 0.02, 0.04, 0.04.
        let adjusted = benjamini_hochberg(&[0.01, 0.04, 0.03, 0.005]);
        let expected = [0.02, 0.04, 0.04, 0.02];
        for (a, e) in adjusted.iter().zip(expected) {
            assert!((a - e).abs() < 1e-12, "{adjusted:?}");
        }
        // Monotonicity: a larger p never gets a smaller adjusted p.
        let adjusted = benjamini_hochberg(&[0.001, 0.9, 0.04, 0.041]);
        assert!((adjusted[2] - 0.041 * 4.0 / 3.0).abs() < 1e-12);
        assert!((adjusted[3] - adjusted[2]).abs() < 1e-12);
        assert!(benjamini_hochberg(&[]).is_empty());
    }

    #[test]
    fn two_proportion_test_matches_a_hand_computation() {
        // 30/100 vs 50/100: pooled 0.4, se = √(0.4·0.6·0.02) = 0.069282, z = 2.88675,
        // p = 2·(1 − Φ(2.88675)) = 0.003892.
        let p = two_proportion_p(30, 100, 50, 100).unwrap();
        assert!((p - 0.003_892).abs() < 1e-5, "{p}");
        assert_eq!(two_proportion_p(0, 100, 0, 50), Some(1.0));
        assert_eq!(two_proportion_p(0, 0, 0, 50), None);
    }

    /// `n` outcomes: office drawn from `offices` (name, weight, hit rate); hits get a concealment
    /// drawn from `concealment` (name, weight); every record a route and a weekday.
    fn outcomes(
        rng: &mut Lcg,
        n: usize,
        period: &str,
        offices: &[(&str, f64, f64)],
        concealment: &[(&str, f64)],
    ) -> Vec<OutcomeRecord> {
        let routes = ["CN→KR", "VN→KR", "US→KR", "<script>&"];
        let weekdays = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        let office_weights: Vec<f64> = offices.iter().map(|o| o.1).collect();
        let concealment_weights: Vec<f64> = concealment.iter().map(|c| c.1).collect();
        (0..n)
            .map(|i| {
                let office = offices[rng.pick(&office_weights)];
                let hit = rng.uniform() < office.2;
                let mut groups = vec![
                    ("office".to_string(), office.0.to_string()),
                    (
                        "route".to_string(),
                        routes[rng.pick(&[0.4, 0.3, 0.2, 0.1])].to_string(),
                    ),
                    (
                        "weekday".to_string(),
                        weekdays[(rng.next_u64() >> 33) as usize % 7].to_string(),
                    ),
                ];
                if hit {
                    groups.push((
                        "concealment".to_string(),
                        concealment[rng.pick(&concealment_weights)].0.to_string(),
                    ));
                }
                OutcomeRecord {
                    window: format!("{period}-W{:02}", 1 + i * 4 / n),
                    groups,
                    hit,
                }
            })
            .collect()
    }

    const OFFICES: [(&str, f64, f64); 5] = [
        ("30", 0.3, 0.1),
        ("40", 0.25, 0.15),
        ("50", 0.2, 0.2),
        ("60", 0.15, 0.05),
        ("70", 0.1, 0.3),
    ];
    const CONCEALMENT: [(&str, f64); 3] =
        [("false_compartment", 0.2), ("body", 0.5), ("luggage", 0.3)];

    fn countries(rng: &mut Lcg, n: usize, weights: &[f64]) -> Vec<&'static str> {
        let names = ["CN", "US", "DE", "VN", "TR", "NL", "BR", "IN"];
        (0..n).map(|_| names[rng.pick(weights)]).collect()
    }

    /// Same generator for both periods: alerts are false alarms. With the BH family at 1% and
    /// the PSI thresholds, at most a few of 100 seeds may raise any alert.
    #[test]
    fn stable_data_raises_no_alerts() {
        let weights = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02];
        let mut noisy = Vec::new();
        for seed in 0..100 {
            let mut rng = Lcg::new(seed);
            let reference = outcomes(&mut rng, 3000, "2021", &OFFICES, &CONCEALMENT);
            let current = outcomes(&mut rng, 3000, "2022", &OFFICES, &CONCEALMENT);
            let value_r: Vec<f64> = (0..2000).map(|_| rng.normal().exp()).collect();
            let value_c: Vec<f64> = (0..2000).map(|_| rng.normal().exp()).collect();
            let country_r = countries(&mut rng, 2000, &weights);
            let country_c = countries(&mut rng, 2000, &weights);
            let score_r: Vec<f64> = (0..2000).map(|_| rng.uniform().powi(3)).collect();
            let score_c: Vec<f64> = (0..2000).map(|_| rng.uniform().powi(3)).collect();
            let features = [
                FeatureInput {
                    name: "customs value".into(),
                    reference: Values::Numeric(&value_r),
                    current: Values::Numeric(&value_c),
                },
                FeatureInput {
                    name: "origin country".into(),
                    reference: Values::Categorical(&country_r),
                    current: Values::Categorical(&country_c),
                },
            ];
            let score = FeatureInput {
                name: "risk".into(),
                reference: Values::Numeric(&score_r),
                current: Values::Numeric(&score_c),
            };
            let report = drift_report(
                &features,
                Some(score),
                &reference,
                &current,
                &DriftOptions::default(),
            );
            assert!(report.features.iter().all(|f| f.psi.value < 0.05));
            if !report.alerts.is_empty() {
                noisy.push((seed, report.alerts));
            }
        }
        assert!(noisy.len() <= 3, "{noisy:?}");
        // The first seeds are quiet (pinned so that a regression is visible at once).
        assert!(noisy.iter().all(|(seed, _)| *seed >= 5), "{noisy:?}");
    }

    #[test]
    fn hits_moving_from_one_office_to_another_raise_a_displacement_alert() {
        let mut rng = Lcg::new(42);
        let reference = outcomes(
            &mut rng,
            4000,
            "2021",
            &[("30", 1.0, 0.3), ("40", 1.0, 0.05), ("50", 1.0, 0.1)],
            &CONCEALMENT,
        );
        let current = outcomes(
            &mut rng,
            4000,
            "2022",
            &[("30", 1.0, 0.05), ("40", 1.0, 0.3), ("50", 1.0, 0.1)],
            &[
                ("false_compartment", 0.45),
                ("body", 0.35),
                ("luggage", 0.2),
            ],
        );
        let report = drift_report(&[], None, &reference, &current, &DriftOptions::default());
        let displacement: Vec<&Alert> = report
            .alerts
            .iter()
            .filter(|a| a.kind == AlertKind::Displacement)
            .collect();
        let office = displacement
            .iter()
            .find(|a| a.what.starts_with("office:"))
            .unwrap_or_else(|| panic!("{:?}", report.alerts));
        assert!(
            office.what.contains("hits moved from 30 to 40"),
            "{}",
            office.what
        );
        assert_eq!(office.severity, Severity::Critical);
        let concealment = displacement
            .iter()
            .find(|a| a.what.starts_with("concealment:"))
            .unwrap_or_else(|| panic!("{:?}", report.alerts));
        assert!(
            concealment.what.contains("to false_compartment")
                && concealment
                    .what
                    .contains("share of hits in false_compartment 2"),
            "{}",
            concealment.what
        );
        // Both offices' hit rates moved; the overall rate and the other dimensions did not.
        let hit_rate: Vec<&str> = report
            .alerts
            .iter()
            .filter(|a| a.kind == AlertKind::HitRate)
            .map(|a| a.what.as_str())
            .collect();
        assert_eq!(hit_rate.len(), 2, "{hit_rate:?}");
        for office in ["30", "40"] {
            let prefix = format!("office {office}: hit rate 0.");
            assert!(
                hit_rate.iter().any(|w| w.starts_with(&prefix)),
                "{hit_rate:?}"
            );
        }
        assert!(!report.overall_hit_rate.significant);
        assert!(report
            .alerts
            .iter()
            .all(|a| !a.what.starts_with("route") && !a.what.starts_with("weekday")));
        // Critical alerts come first.
        assert!(report
            .alerts
            .windows(2)
            .all(|w| w[0].severity >= w[1].severity));
        let json = serde_json::to_string(&report).unwrap();
        assert!(!json.contains("NaN"));
        assert!(json.contains("\"severity\":\"critical\""));
    }

    #[test]
    fn a_feature_shift_raises_an_alert_naming_the_category() {
        let reference: Vec<&str> = [vec!["CN"; 120], vec!["US"; 400], vec!["DE"; 480]].concat();
        let current: Vec<&str> = [vec!["CN"; 310], vec!["US"; 250], vec!["DE"; 440]].concat();
        let scores_r: Vec<f64> = (0..1000).map(|i| f64::from(i) / 1000.0).collect();
        let scores_c: Vec<f64> = (0..1000).map(|i| 0.3 + f64::from(i) / 1430.0).collect();
        let features = [FeatureInput {
            name: "origin country".into(),
            reference: Values::Categorical(&reference),
            current: Values::Categorical(&current),
        }];
        let score = FeatureInput {
            name: "risk".into(),
            reference: Values::Numeric(&scores_r),
            current: Values::Numeric(&scores_c),
        };
        let report = drift_report(&features, Some(score), &[], &[], &DriftOptions::default());
        let feature = &report.features[0];
        assert_eq!(feature.level, DriftLevel::Major);
        assert_eq!(feature.top_bins[0].label, "CN");
        let alert = report
            .alerts
            .iter()
            .find(|a| a.kind == AlertKind::FeatureDrift)
            .unwrap();
        assert!(
            alert.what.starts_with("origin country: PSI 0.")
                && alert
                    .what
                    .contains("(major) — CN 12% → 31%, US 40% → 25% of declarations"),
            "{}",
            alert.what
        );
        assert_eq!(report.alerts[0].kind, AlertKind::ScoreDrift);
        assert_eq!(report.alerts[0].severity, Severity::Critical);
        assert!(report.alerts[0].what.starts_with("risk (model score): PSI"));
        // No outcomes: nothing tested, no hit-rate alerts.
        assert_eq!(report.overall_hit_rate.p_value, None);
        assert!(report.hit_rate_shifts.is_empty() && report.displacement.is_empty());
    }

    #[test]
    fn a_hit_rate_drop_names_the_group_and_the_rates() {
        let make = |rate_40: f64| -> Vec<OutcomeRecord> {
            let mut out = Vec::new();
            for (office, n, rate) in [("40", 400, rate_40), ("30", 400, 0.2)] {
                let hits = (n as f64 * rate).round() as usize;
                for i in 0..n {
                    out.push(OutcomeRecord {
                        window: "w".into(),
                        groups: vec![("office".into(), office.into())],
                        hit: i < hits,
                    });
                }
            }
            out
        };
        let report = drift_report(
            &[],
            None,
            &make(0.31),
            &make(0.12),
            &DriftOptions::default(),
        );
        let alert = report
            .alerts
            .iter()
            .find(|a| a.what.starts_with("office 40"))
            .unwrap_or_else(|| panic!("{:?}", report.alerts));
        assert_eq!(
            alert.what,
            "office 40: hit rate 0.31 → 0.12 (adjusted p<0.001; 400 → 400 inspected)"
        );
        let shift = report
            .hit_rate_shifts
            .iter()
            .find(|s| s.group == "40")
            .unwrap();
        assert!((shift.difference.unwrap() + 0.19).abs() < 1e-12);
        assert!(shift.significant);
        assert!(shift.adjusted_p_value.unwrap() >= shift.p_value.unwrap());
    }

    #[test]
    fn small_samples_and_mixed_kinds_are_reported_not_alerted() {
        let r = [1.0, 2.0, 3.0];
        let c = [10.0, 20.0, 30.0];
        let cats = ["a", "b"];
        let features = [
            FeatureInput {
                name: "tiny".into(),
                reference: Values::Numeric(&r),
                current: Values::Numeric(&c),
            },
            FeatureInput {
                name: "mixed".into(),
                reference: Values::Numeric(&r),
                current: Values::Categorical(&cats),
            },
        ];
        let report = drift_report(&features, None, &[], &[], &DriftOptions::default());
        assert!(report.features[0].psi.value > 0.25);
        assert!(report.features[0]
            .note
            .as_ref()
            .unwrap()
            .contains("too few"));
        assert!(!report.features[1].compared);
        assert_eq!(report.alerts.len(), 1, "{:?}", report.alerts);
        assert_eq!(
            report.alerts[0].what,
            "mixed: reference is numeric but current is categorical: not compared"
        );
    }

    #[test]
    fn series_have_a_point_per_window_for_the_top_groups() {
        let mut rng = Lcg::new(9);
        let mut records = outcomes(&mut rng, 2000, "2021", &OFFICES, &CONCEALMENT);
        // Office 80 only in the last window.
        records.push(OutcomeRecord {
            window: "2021-W04".into(),
            groups: vec![("office".into(), "80".into())],
            hit: true,
        });
        let series = hit_rate_series(&records, "office", 3);
        let names: Vec<&str> = series.iter().map(|s| s.group.as_str()).collect();
        assert_eq!(names, ["30", "40", "50"]);
        for s in &series {
            let windows: Vec<&str> = s.points.iter().map(|p| p.window.as_str()).collect();
            assert_eq!(windows, ["2021-W01", "2021-W02", "2021-W03", "2021-W04"]);
            for p in &s.points {
                let (rate, low, high) = (p.rate.unwrap(), p.low.unwrap(), p.high.unwrap());
                assert!(low <= rate && rate <= high);
            }
        }
        let all = hit_rate_series(&records, "office", 10);
        let rare = all.iter().find(|s| s.group == "80").unwrap();
        assert_eq!(rare.points[0].rate, None);
        assert_eq!(rare.points[3].rate, Some(1.0));
        assert!(hit_rate_series(&records, "no such dimension", 5).is_empty());
        assert!(hit_rate_series(&[], "office", 5).is_empty());
    }

    #[test]
    fn charts_are_well_formed_escaped_and_free_of_nan() {
        let mut rng = Lcg::new(1);
        let records = outcomes(&mut rng, 3000, "2021", &OFFICES, &CONCEALMENT);
        let mut series = hit_rate_series(&records, "route", 10);
        assert!(series.iter().any(|s| s.group == "<script>&"));
        // A gap and a non-finite value must not break the chart.
        series[0].points[1].rate = None;
        series[0].points[1].low = None;
        series[1].points[2].rate = Some(f64::NAN);
        let svg = hit_rate_chart_svg("hit rate by route <script>&", &series);
        assert!(svg.starts_with("<svg"));
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert!(svg.contains("&lt;script&gt;&amp;"));
        assert!(!svg.contains("<script"));
        assert_eq!(svg.matches("class=\"series\"").count(), series.len());
        let empty = hit_rate_chart_svg("nothing", &[]);
        assert_well_formed(&empty);
        assert!(empty.contains("no data"));
        let no_points = hit_rate_chart_svg(
            "nothing",
            &[Series {
                group: "x".into(),
                points: vec![],
            }],
        );
        assert!(no_points.contains("no data"));

        let reference: Vec<f64> = (0..500).map(f64::from).collect();
        let current: Vec<f64> = (0..500).map(|i| f64::from(i) * 1.5).collect();
        let cats = ["<script>&"; 200];
        let other = ["b"; 200];
        let features = [
            FeatureInput {
                name: "value".into(),
                reference: Values::Numeric(&reference),
                current: Values::Numeric(&current),
            },
            FeatureInput {
                name: "<script>&".into(),
                reference: Values::Categorical(&cats),
                current: Values::Categorical(&other),
            },
            FeatureInput {
                name: "empty".into(),
                reference: Values::Numeric(&[]),
                current: Values::Numeric(&[]),
            },
        ];
        let report = drift_report(
            &features,
            Some(features[0].clone()),
            &records,
            &records,
            &DriftOptions::default(),
        );
        let svg = psi_chart_svg(&report);
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert!(svg.contains("&lt;script&gt;&amp;"));
        assert_eq!(svg.matches("class=\"bar\"").count(), 4);
        assert!(svg.contains("#d62728") && svg.contains("#2ca02c"));
        let empty = drift_report(&[], None, &[], &[], &DriftOptions::default());
        let svg = psi_chart_svg(&empty);
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
    }

    fn numbers() -> impl Strategy<Value = Vec<f64>> {
        proptest::collection::vec(
            prop_oneof![
                4 => -1e6f64..1e6,
                1 => (0i32..5).prop_map(f64::from),
                1 => Just(f64::NAN),
                1 => proptest::num::f64::ANY,
            ],
            0..200,
        )
    }

    fn categories() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![
                10 => "[a-e]",
                1 => "[a-z]{1,3}",
                1 => Just(String::new()),
            ],
            0..300,
        )
    }

    fn as_str(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    proptest! {
        #[test]
        fn numeric_psi_is_finite_non_negative_and_order_free(
            (reference, current, reference_shuffled, current_shuffled) in (numbers(), numbers())
                .prop_flat_map(|(r, c)| (
                    Just(r.clone()),
                    Just(c.clone()),
                    Just(r).prop_shuffle(),
                    Just(c).prop_shuffle(),
                )),
            bins in 0usize..20,
        ) {
            let psi = psi_numeric(&reference, &current, bins);
            prop_assert!(psi.value.is_finite() && psi.value >= 0.0, "{:?}", psi);
            for b in &psi.bins {
                prop_assert!(b.contribution.is_finite() && b.contribution >= 0.0);
            }
            let shuffled = psi_numeric(&reference_shuffled, &current_shuffled, bins);
            prop_assert_eq!(&psi, &shuffled);
            let sum: f64 = psi.bins.iter().map(|b| b.reference_share).sum();
            prop_assert!(reference.is_empty() || (sum - 1.0).abs() < 1e-9);
        }

        #[test]
        fn categorical_psi_is_finite_non_negative_and_order_free(
            (reference, current, reference_shuffled, current_shuffled) in (categories(), categories())
                .prop_flat_map(|(r, c)| (
                    Just(r.clone()),
                    Just(c.clone()),
                    Just(r).prop_shuffle(),
                    Just(c).prop_shuffle(),
                )),
        ) {
            let psi = psi_categorical(&as_str(&reference), &as_str(&current));
            prop_assert!(psi.value.is_finite() && psi.value >= 0.0);
            let shuffled = psi_categorical(&as_str(&reference_shuffled), &as_str(&current_shuffled));
            prop_assert_eq!(&psi, &shuffled);
            let swapped = psi_categorical(&as_str(&current), &as_str(&reference));
            // PSI is symmetric in the two periods.
            prop_assert!((swapped.value - psi.value).abs() <= 1e-9 * psi.value.max(1.0));
        }

        #[test]
        fn reports_never_panic_and_p_values_are_probabilities(
            rows in proptest::collection::vec((0u8..2, 0u8..4, 0u8..3, proptest::bool::ANY), 0..400)
        ) {
            let (reference, current): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.0 == 0);
            let build = |rows: &[&(u8, u8, u8, bool)]| -> Vec<OutcomeRecord> {
                rows.iter()
                    .map(|&&(_, office, window, hit)| OutcomeRecord {
                        window: format!("w{window}"),
                        groups: vec![("office".into(), format!("o{office}"))],
                        hit,
                    })
                    .collect()
            };
            let options = DriftOptions { min_inspected: 5, min_hits: 5, max_groups_per_dimension: 3, ..DriftOptions::default() };
            let report = drift_report(&[], None, &build(&reference), &build(&current), &options);
            for s in std::iter::once(&report.overall_hit_rate).chain(&report.hit_rate_shifts) {
                for p in [s.p_value, s.adjusted_p_value].into_iter().flatten() {
                    prop_assert!((0.0..=1.0).contains(&p));
                }
                prop_assert!(s.adjusted_p_value >= s.p_value);
            }
            let series = hit_rate_series(&build(&current), "office", 3);
            assert_no_nan(&hit_rate_chart_svg("t", &series));
            assert_no_nan(&psi_chart_svg(&report));
        }
    }
}
