//! Population stability index of features and of the model score: binning, smoothing, levels,
//! and the feature drift the report carries (see the parent module doc).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DriftOptions;
use crate::format;

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

    pub(super) fn kind(&self) -> &'static str {
        match self {
            Values::Numeric(_) => "numeric",
            Values::Categorical(_) => "categorical",
        }
    }
}

/// One bin of a PSI computation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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

/// PSI of one feature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

pub(super) fn feature_drift(input: &FeatureInput<'_>, options: &DriftOptions) -> FeatureDrift {
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
pub(super) fn psi_sentence(name: &str, drift: &FeatureDrift) -> String {
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
pub(super) fn psi_alerts(drift: &FeatureDrift, threshold: f64) -> bool {
    drift.note.is_none() && drift.psi.value >= threshold
}
