//! The drift report: its settings, its alerts and [`drift_report`], which puts the PSI,
//! hit-rate and displacement parts together under one Benjamini–Hochberg family.

use std::collections::BTreeSet;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::displacement::displacement_sentence;
use super::hit_rate::{
    benjamini_hochberg, hit_rate_alerts, hit_rate_sentence, hit_rate_shift, merged_groups, share,
    tally, two_proportion_p, Counts,
};
use super::psi::{feature_drift, psi_alerts, psi_sentence};
use super::{Displacement, FeatureDrift, FeatureInput, HitRateShift, OutcomeRecord, ShareShift};

/// Settings of the drift report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// How urgent an alert is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// How urgent.
    pub severity: Severity,
    /// About what.
    pub kind: AlertKind,
    /// A sentence naming what moved and by how much.
    pub what: String,
}

/// Drift and displacement between a reference and a current period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
