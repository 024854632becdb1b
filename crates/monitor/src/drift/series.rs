//! Hit rate of the largest groups of a dimension, window by window.

use std::collections::{BTreeMap, BTreeSet};

use borderlens_selection::estimate::wilson;
use serde::{Deserialize, Serialize};

use super::hit_rate::Counts;
use super::OutcomeRecord;

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
