//! Hit-rate shifts: inspections and hits counted per (dimension, group) in both periods, the
//! two-proportion z-test and the Benjamini–Hochberg correction (see the parent module doc).

use std::collections::{BTreeMap, BTreeSet};

use borderlens_selection::estimate::{normal_cdf, wilson};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::DriftOptions;
use crate::format;

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

/// Hit rate of one group in both periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// Inspections and hits.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counts {
    pub(super) inspected: usize,
    pub(super) hits: usize,
}

impl Counts {
    pub(super) fn add(&mut self, hit: bool) {
        self.inspected += 1;
        self.hits += usize::from(hit);
    }

    pub(super) fn plus(self, other: Counts) -> Counts {
        Counts {
            inspected: self.inspected + other.inspected,
            hits: self.hits + other.hits,
        }
    }

    pub(super) fn rate(self) -> Option<f64> {
        share(self.hits, self.inspected)
    }
}

/// `a / b`, `None` when `b` is 0.
pub(super) fn share(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Counts per dimension and group of one period.
pub(super) type Tallies<'a> = BTreeMap<&'a str, BTreeMap<&'a str, Counts>>;

pub(super) fn tally(outcomes: &[OutcomeRecord]) -> (Counts, Tallies<'_>) {
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
pub(super) fn two_proportion_p(h1: usize, n1: usize, h2: usize, n2: usize) -> Option<f64> {
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
pub(super) fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
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

/// The groups of one dimension in both periods, largest first, the rest pooled.
pub(super) fn merged_groups<'a>(
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

pub(super) fn hit_rate_shift(
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
pub(super) fn hit_rate_alerts(shift: &HitRateShift, options: &DriftOptions) -> bool {
    match (shift.significant, shift.reference_rate, shift.difference) {
        (true, Some(r), Some(d)) => d.abs() >= options.min_relative_change * r && d != 0.0,
        _ => false,
    }
}

/// `office 40: hit rate 0.31 → 0.12 (adjusted p=0.001; 210 → 250 inspected)`.
pub(super) fn hit_rate_sentence(shift: &HitRateShift) -> String {
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
