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

mod charts;
mod displacement;
mod hit_rate;
mod psi;
mod report;
mod series;
#[cfg(test)]
mod tests;

pub use charts::{hit_rate_chart_svg, psi_chart_svg};
pub use displacement::{Displacement, ShareShift};
pub use hit_rate::{HitRateShift, OutcomeRecord};
pub use psi::{
    psi_categorical, psi_numeric, DriftLevel, FeatureDrift, FeatureInput, Psi, PsiBin, Values,
    PSI_EPSILON, RARE_CATEGORY_SHARE,
};
pub use report::{drift_report, Alert, AlertKind, DriftOptions, DriftReport, Severity};
pub use series::{hit_rate_series, Series, SeriesPoint};
