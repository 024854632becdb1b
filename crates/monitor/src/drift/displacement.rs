//! Displacement of hits: where the hits of a dimension were found in both periods (see the
//! parent module doc).

use std::fmt::Write as _;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format;

/// Share of the hits of one dimension found in one group, in both periods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
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

/// `office: hits moved from 30 to 40 — share of hits in 30 45% → 12% (of inspections 40% → 38%),
/// in 40 10% → 41% (of inspections 12% → 14%); total hits 210 → 198`.
pub(super) fn displacement_sentence(d: &Displacement, moved: &[&ShareShift]) -> String {
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
