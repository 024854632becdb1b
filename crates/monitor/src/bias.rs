//! Bias audit of selection: selection rate, hit rate and their ratios by group (origin country,
//! office, importer size, declarant, ...), with a flag on groups that are selected far more often
//! than their hit rate justifies.
//!
//! # Definitions
//!
//! For a group `g` of a dimension, `s_g = selected / declarations` is its selection rate and
//! `h_g = hits / inspected` its hit rate, where *inspected* counts the records with an outcome
//! (whatever selected them). They are compared with the averages of the dimension:
//!
//! - `S = Σ selected_g / Σ declarations_g`, the selection rate of the dimension's records;
//! - `H = Σ declarations_g · h_g / Σ declarations_g` over the groups with inspections: the
//!   **declaration-weighted average of the group hit rates**, not the pooled hit rate of all
//!   inspections (`hits / inspected`, reported in [`OverallAudit`]).
//!
//! and
//!
//! - `selection_ratio = s_g / S` (how many times the average rate the group is selected);
//! - `hit_ratio = h_g / H` (how many times the average hit rate its inspections hit);
//! - `disparity = selection_ratio / hit_ratio`: how many times more the group is selected than
//!   its hits justify (> 1: over-selected, < 1: under-selected).
//!
//! Why not the pooled hit rate: over-selected groups weigh more among inspections than among
//! declarations, so the pooled rate leans towards them. With selection exactly proportional to
//! hit rates (`s_g = k·h_g`, the "justified" case) the pooled rate gives every group the same
//! disparity `E[h²] / E[h]²` (declaration-weighted), which is above 1 whenever hit rates differ —
//! 1.5 when their coefficient of variation is 0.7 — and would flag every large group. With `H` as
//! above that case gives a disparity of exactly 1 for every group, and when all groups hit at the
//! same rate `H` equals the pooled rate.
//!
//! # Flag rule
//!
//! A group is flagged when **both**
//!
//! 1. it has at least `min_inspected` inspected declarations, and
//! 2. its *robust disparity* is at least `max_disparity`, where
//!    `robust_disparity = (L_sel / S) / (U_hit / H)`,
//!    `L_sel` being the lower Wilson bound of the group's selection rate (`selected` out of
//!    `declarations`) and `U_hit` the upper Wilson bound of its hit rate (`hits` out of
//!    `inspected`), both at `confidence`, and `S`, `H` the averages of the dimension (both must
//!    be positive, otherwise nothing is flagged).
//!
//! That is: even reading both of the group's rates in its favour (the lowest selection rate and
//! the highest hit rate its counts make plausible), it is still selected `max_disparity` times
//! more than its hits justify. Since `L_sel ≤ s_g` and `U_hit ≥ h_g`, the rule implies
//! `disparity ≥ max_disparity` as well. Wilson bounds widen for small groups, so a group with a
//! handful of inspections and extreme rates is not flagged on noise (the `min_inspected` floor is
//! a second guard for those), while a large group selected three times the average rate and hitting
//! at the average rate has bounds close to its point rates and is flagged. A group whose hit rate
//! is zero has no finite `disparity`, but its robust disparity is finite (`U_hit > 0`) and it is
//! flagged when that is large enough. The averages are treated as exact: they rest on all the
//! dimension's records and are far more precise than any group's.
//!
//! Groups are compared with averages that include the group itself: a group that makes up most of
//! the traffic cannot be far from the average.
//!
//! # Unbiased non-compliance by group
//!
//! Hit rates of risk-selected inspections say how well targeting works, not how non-compliant a
//! group is. When a group's records carry design inclusion probabilities π and at least one of them
//! is below 1 (a random stratum), the audit adds a Horvitz–Thompson estimate of its non-compliance
//! rate ([`borderlens_selection::estimate::horvitz_thompson`]) over the group's records that have
//! a π: each design stratum within the group is a stratum whose population is the group's records
//! in it and whose inspected members are those the design selected (`design_selected`) with an
//! outcome; documentary picks and overrides count in the hit rate, not in the estimate. Records with a π but no
//! stratum name are grouped by their π value. The estimate is `None` when some stratum of the group
//! has members but no inspection (e.g. π = 0).
//!
//! # Conventions
//!
//! A record is counted in each group it names; a record that names no group of a dimension is not
//! counted in that dimension (it still counts in the overall rates), and a (dimension, group) pair
//! repeated in one record counts once. Per dimension the `max_groups_per_dimension` largest groups
//! (by declarations, ties by name) are kept and the rest summed into one group named `other`
//! (`other (pooled)` if a real group is named `other`). An invalid confidence (not in (0, 1))
//! falls back to 0.95.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use borderlens_selection::estimate::{horvitz_thompson, wilson, RateEstimate, StratumCount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::format;
use crate::svg::{self, c, escape_xml, Scale};

/// One declaration of the audited period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// (dimension, group) pairs, e.g. `("origin country", "CN")`, `("office", "30")`,
    /// `("importer size", "10-99 declarations")`, `("declarant", "D123")`.
    pub groups: Vec<(String, String)>,
    /// Selected for control (red or yellow lane) by any reason.
    pub selected: bool,
    /// Design stratum of the selection (`"risk"`, `"random"`, `"campaign:x"`, ...) with its π;
    /// `None` when unknown.
    pub stratum: Option<String>,
    /// Design inclusion probability, when known.
    pub pi: Option<f64>,
    /// `Some(hit)` when a control result exists.
    pub outcome: Option<bool>,
    /// Whether the design itself selected it (campaign, risk, random or exploration draw), as
    /// opposed to a documentary pick or an officer's override: only design selections enter the
    /// Horvitz–Thompson estimate.
    #[serde(default = "design_default")]
    pub design_selected: bool,
}

fn design_default() -> bool {
    true
}

/// Settings of the audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BiasOptions {
    /// Confidence level of the Wilson and Horvitz–Thompson intervals (default 0.95).
    pub confidence: f64,
    /// Disparity from which a group is flagged (default 1.5).
    pub max_disparity: f64,
    /// Inspected declarations a group needs before it can be flagged (default 20).
    pub min_inspected: usize,
    /// Groups kept per dimension, the largest ones; the rest are summed into `other` (default 25).
    pub max_groups_per_dimension: usize,
}

impl Default for BiasOptions {
    fn default() -> Self {
        Self {
            confidence: 0.95,
            max_disparity: 1.5,
            min_inspected: 20,
            max_groups_per_dimension: 25,
        }
    }
}

/// Rates over all records of the period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OverallAudit {
    /// Records audited.
    pub declarations: usize,
    /// Records selected for control.
    pub selected: usize,
    /// `selected / declarations`; `None` without records.
    pub selection_rate: Option<f64>,
    /// Records with an outcome.
    pub inspected: usize,
    /// Records found non-compliant.
    pub hits: usize,
    /// `hits / inspected`; `None` without inspections.
    pub hit_rate: Option<f64>,
    /// Lower Wilson bound of the hit rate (0 without inspections).
    pub hit_rate_low: f64,
    /// Upper Wilson bound of the hit rate (1 without inspections).
    pub hit_rate_high: f64,
    /// Horvitz–Thompson estimate of the non-compliance rate (see the module doc), when the
    /// records carry π for a random stratum.
    pub non_compliance: Option<RateEstimate>,
}

/// One group of one dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupAudit {
    /// Group name (`other` for the pooled small groups).
    pub group: String,
    /// Number of groups summed into this one (0 for a real group).
    pub pooled_groups: usize,
    /// Records of the group.
    pub declarations: usize,
    /// Records of the group selected for control.
    pub selected: usize,
    /// `selected / declarations`.
    pub selection_rate: f64,
    /// Records of the group with an outcome.
    pub inspected: usize,
    /// Hits among them.
    pub hits: usize,
    /// `hits / inspected`; `None` without inspections.
    pub hit_rate: Option<f64>,
    /// Lower Wilson bound of the hit rate (0 without inspections).
    pub hit_rate_low: f64,
    /// Upper Wilson bound of the hit rate (1 without inspections).
    pub hit_rate_high: f64,
    /// Group selection rate / average selection rate of the dimension; `None` when nothing was
    /// selected.
    pub selection_ratio: Option<f64>,
    /// Group hit rate / average hit rate of the dimension (see the module doc); `None` without
    /// inspections or without hits.
    pub hit_ratio: Option<f64>,
    /// Wilson bounds of the hit rate divided by the average hit rate.
    pub hit_ratio_interval: Option<(f64, f64)>,
    /// `selection_ratio / hit_ratio`; `None` when either is undefined or the group has no hit
    /// (infinite disparity: see `robust_disparity`).
    pub disparity: Option<f64>,
    /// The conservative disparity of the flag rule (see the module doc).
    pub robust_disparity: Option<f64>,
    /// Horvitz–Thompson estimate of the group's non-compliance (see the module doc).
    pub non_compliance: Option<RateEstimate>,
    /// Whether the flag rule fired.
    pub flagged: bool,
}

/// The groups of one dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DimensionAudit {
    /// Dimension name (e.g. `origin country`).
    pub name: String,
    /// Records that name a group of this dimension.
    pub declarations: usize,
    /// Average selection rate `S` of the dimension (see the module doc).
    pub selection_rate: Option<f64>,
    /// Average hit rate `H` of the dimension: declaration-weighted mean of the group hit rates.
    pub hit_rate: Option<f64>,
    /// Groups, largest first, `other` last.
    pub groups: Vec<GroupAudit>,
}

/// The bias audit of one period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BiasAudit {
    /// Settings the audit ran with.
    pub options: BiasOptions,
    /// Overall rates.
    pub overall: OverallAudit,
    /// Per dimension, in name order.
    pub dimensions: Vec<DimensionAudit>,
    /// One sentence per flagged group, the most over-selected first.
    pub flags: Vec<String>,
}

/// Counts of one stratum of one group.
#[derive(Clone, Copy, Debug, Default)]
struct StratumTally {
    population: usize,
    inspected: usize,
    hits: usize,
}

/// Counts of one group (or of all records).
#[derive(Clone, Debug, Default)]
struct Tally {
    declarations: usize,
    selected: usize,
    inspected: usize,
    hits: usize,
    strata: BTreeMap<String, StratumTally>,
    sampled: bool,
    pooled: usize,
}

impl Tally {
    fn add(&mut self, record: &AuditRecord) {
        self.declarations += 1;
        self.selected += usize::from(record.selected);
        if let Some(hit) = record.outcome {
            self.inspected += 1;
            self.hits += usize::from(hit);
        }
        if let Some(pi) = record.pi.filter(|p| p.is_finite()) {
            let key = match &record.stratum {
                Some(name) => format!("stratum {name}"),
                None => format!("pi {pi}"),
            };
            let stratum = self.strata.entry(key).or_default();
            stratum.population += 1;
            if let (true, true, Some(hit)) =
                (record.selected, record.design_selected, record.outcome)
            {
                stratum.inspected += 1;
                stratum.hits += usize::from(hit);
            }
            self.sampled |= pi < 1.0;
        }
    }

    fn merge(&mut self, other: &Tally) {
        self.declarations += other.declarations;
        self.selected += other.selected;
        self.inspected += other.inspected;
        self.hits += other.hits;
        for (key, s) in &other.strata {
            let mine = self.strata.entry(key.clone()).or_default();
            mine.population += s.population;
            mine.inspected += s.inspected;
            mine.hits += s.hits;
        }
        self.sampled |= other.sampled;
        self.pooled += other.pooled.max(1);
    }

    fn non_compliance(&self, confidence: f64) -> Option<RateEstimate> {
        if !self.sampled {
            return None;
        }
        let strata: Vec<StratumCount> = self
            .strata
            .values()
            .map(|s| StratumCount {
                population: s.population,
                inspected: s.inspected,
                hits: s.hits,
            })
            .collect();
        horvitz_thompson(&strata, confidence)
    }
}

/// `a / b`, `None` when `b` is 0.
fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Audits the selection of `records` by group.
pub fn audit(records: &[AuditRecord], options: &BiasOptions) -> BiasAudit {
    let confidence = if options.confidence > 0.0 && options.confidence < 1.0 {
        options.confidence
    } else {
        0.95
    };
    let mut overall = Tally::default();
    let mut by_dimension: BTreeMap<&str, (usize, BTreeMap<&str, Tally>)> = BTreeMap::new();
    for record in records {
        overall.add(record);
        let mut seen: Vec<(&str, &str)> = Vec::with_capacity(record.groups.len());
        let mut dimensions_seen: Vec<&str> = Vec::with_capacity(record.groups.len());
        for (dimension, group) in &record.groups {
            let pair = (dimension.as_str(), group.as_str());
            if seen.contains(&pair) {
                continue;
            }
            seen.push(pair);
            let entry = by_dimension.entry(pair.0).or_default();
            if !dimensions_seen.contains(&pair.0) {
                dimensions_seen.push(pair.0);
                entry.0 += 1;
            }
            entry.1.entry(pair.1).or_default().add(record);
        }
    }
    let (hit_low, hit_high) = wilson(overall.hits, overall.inspected, confidence);
    let overall_audit = OverallAudit {
        declarations: overall.declarations,
        selected: overall.selected,
        selection_rate: ratio(overall.selected, overall.declarations),
        inspected: overall.inspected,
        hits: overall.hits,
        hit_rate: ratio(overall.hits, overall.inspected),
        hit_rate_low: hit_low,
        hit_rate_high: hit_high,
        non_compliance: overall.non_compliance(confidence),
    };
    let mut flags: Vec<(f64, String)> = Vec::new();
    let mut dimensions = Vec::with_capacity(by_dimension.len());
    for (name, (declarations, groups)) in by_dimension {
        let mut groups: Vec<(&str, Tally)> = groups.into_iter().collect();
        let context = Context::new(options, confidence, &overall_audit, &groups);
        groups.sort_by(|a, b| b.1.declarations.cmp(&a.1.declarations).then(a.0.cmp(b.0)));
        let keep = options.max_groups_per_dimension.min(groups.len());
        let rest = groups.split_off(keep);
        let mut audits: Vec<GroupAudit> = groups
            .iter()
            .map(|(group, tally)| context.group(group, tally))
            .collect();
        if !rest.is_empty() {
            let mut pooled = Tally::default();
            for (_, tally) in &rest {
                pooled.merge(tally);
            }
            let other = if groups.iter().any(|(g, _)| *g == "other") {
                "other (pooled)"
            } else {
                "other"
            };
            audits.push(context.group(other, &pooled));
        }
        for group in audits.iter().filter(|g| g.flagged) {
            flags.push((
                group.robust_disparity.unwrap_or(0.0),
                context.sentence(name, group),
            ));
        }
        dimensions.push(DimensionAudit {
            name: name.to_string(),
            declarations,
            selection_rate: context.selection,
            hit_rate: context.hit,
            groups: audits,
        });
    }
    flags.sort_by(|a, b| b.0.total_cmp(&a.0));
    BiasAudit {
        options: options.clone(),
        overall: overall_audit,
        dimensions,
        flags: flags.into_iter().map(|(_, s)| s).collect(),
    }
}

/// What every group of one dimension is compared with.
struct Context<'a> {
    options: &'a BiasOptions,
    confidence: f64,
    overall: &'a OverallAudit,
    /// Average selection rate `S` of the dimension.
    selection: Option<f64>,
    /// Average hit rate `H` of the dimension.
    hit: Option<f64>,
}

impl<'a> Context<'a> {
    fn new(
        options: &'a BiasOptions,
        confidence: f64,
        overall: &'a OverallAudit,
        groups: &[(&str, Tally)],
    ) -> Self {
        let (mut declarations, mut selected) = (0usize, 0usize);
        let (mut weighted_hits, mut weight) = (0.0, 0usize);
        for (_, tally) in groups {
            declarations += tally.declarations;
            selected += tally.selected;
            if tally.inspected > 0 {
                weighted_hits +=
                    tally.declarations as f64 * tally.hits as f64 / tally.inspected as f64;
                weight += tally.declarations;
            }
        }
        Context {
            options,
            confidence,
            overall,
            selection: ratio(selected, declarations),
            hit: (weight > 0).then(|| weighted_hits / weight as f64),
        }
    }

    fn group(&self, name: &str, tally: &Tally) -> GroupAudit {
        let overall_selection = self.selection.filter(|s| *s > 0.0);
        let overall_hit = self.hit.filter(|h| *h > 0.0);
        let selection_rate = tally.selected as f64 / tally.declarations.max(1) as f64;
        let hit_rate = ratio(tally.hits, tally.inspected);
        let (hit_rate_low, hit_rate_high) = wilson(tally.hits, tally.inspected, self.confidence);
        let selection_ratio = overall_selection.map(|s| selection_rate / s);
        let hit_ratio = hit_rate.zip(overall_hit).map(|(h, all)| h / all);
        let hit_ratio_interval = overall_hit
            .filter(|_| tally.inspected > 0)
            .map(|all| (hit_rate_low / all, hit_rate_high / all));
        let disparity = selection_ratio
            .zip(hit_ratio)
            .filter(|(_, h)| *h > 0.0)
            .map(|(s, h)| s / h);
        let robust_disparity = match (overall_selection, hit_ratio_interval) {
            (Some(all_selection), Some((_, high))) if high > 0.0 => {
                let (selection_low, _) =
                    wilson(tally.selected, tally.declarations, self.confidence);
                Some(selection_low / all_selection / high)
            }
            _ => None,
        };
        let flagged = tally.inspected >= self.options.min_inspected
            && robust_disparity.is_some_and(|d| d >= self.options.max_disparity);
        GroupAudit {
            group: name.to_string(),
            pooled_groups: tally.pooled,
            declarations: tally.declarations,
            selected: tally.selected,
            selection_rate,
            inspected: tally.inspected,
            hits: tally.hits,
            hit_rate,
            hit_rate_low,
            hit_rate_high,
            selection_ratio,
            hit_ratio,
            hit_ratio_interval,
            disparity,
            robust_disparity,
            non_compliance: tally.non_compliance(self.confidence),
            flagged,
        }
    }

    /// The sentence of a flagged group.
    fn sentence(&self, dimension: &str, group: &GroupAudit) -> String {
        let mut s = format!("{dimension} {}", display_name(group));
        let _ = write!(
            s,
            ": selected {}× the average rate ({} vs {}), hit rate {} vs {} average ({} CI {}–{}); \
             even at the top of that interval it is selected {}× more than its hits justify",
            format::ratio(group.selection_ratio.unwrap_or(f64::NAN)),
            format::pct(group.selection_rate),
            format::pct(self.selection.unwrap_or(f64::NAN)),
            format::rate(group.hit_rate.unwrap_or(f64::NAN)),
            format::rate(self.hit.unwrap_or(f64::NAN)),
            format::confidence(self.confidence),
            format::rate(group.hit_rate_low),
            format::rate(group.hit_rate_high),
            format::ratio(group.robust_disparity.unwrap_or(f64::NAN)),
        );
        if let Some(estimate) = &group.non_compliance {
            let _ = write!(
                s,
                "; random-control estimate of its non-compliance {} ({}–{})",
                format::rate(estimate.rate),
                format::rate(estimate.low),
                format::rate(estimate.high)
            );
            if let Some(all) = &self.overall.non_compliance {
                let _ = write!(s, " vs {} overall", format::rate(all.rate));
            }
        }
        s
    }
}

/// Group name as shown in sentences and charts.
fn display_name(group: &GroupAudit) -> String {
    if group.pooled_groups > 0 {
        let plural = if group.pooled_groups == 1 { "" } else { "s" };
        format!(
            "{} ({} smaller group{plural})",
            group.group, group.pooled_groups
        )
    } else {
        group.group.clone()
    }
}

/// Colour of the selection-ratio bars.
const SELECTION_COLOUR: &str = "#4c72b0";
/// Colour of the hit-ratio bars.
const HIT_COLOUR: &str = "#dd8452";
/// Colour marking flagged groups.
const FLAG_COLOUR: &str = "#d62728";
/// Largest ratio drawn; longer bars are cut at this value (their label keeps the true value).
const MAX_RATIO_DRAWN: f64 = 10.0;

/// Per group, two horizontal bars side by side: the selection ratio and the hit ratio (with the
/// Wilson interval of the hit ratio as a whisker), a dashed reference line at 1 (the average),
/// flagged groups named in red with a ⚠ and a tinted row. Bars longer than 10× are cut at 10 and
/// keep their true value as label; undefined ratios are drawn with zero length and labelled
/// `n/a`. Bars carry `class="bar"`; an empty dimension gives a "no data" chart.
pub fn bias_chart_svg(dimension: &DimensionAudit) -> String {
    let title = format!(
        "{}: selection and hit rates relative to average",
        dimension.name
    );
    if dimension.groups.is_empty() {
        return svg::no_data(&title);
    }
    let names: Vec<String> = dimension
        .groups
        .iter()
        .map(|g| {
            let name = display_name(g);
            if g.flagged {
                format!("⚠ {name}")
            } else {
                name
            }
        })
        .collect();
    let finite_max = dimension
        .groups
        .iter()
        .flat_map(|g| [g.selection_ratio, g.hit_ratio])
        .flatten()
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max)
        .min(MAX_RATIO_DRAWN);
    let left = svg::name_margin(names.iter().map(String::as_str));
    let row = 40.0;
    let plot_top = svg::TOP + 44.0;
    let plot_bottom = plot_top + dimension.groups.len() as f64 * row;
    let height = plot_bottom + svg::BOTTOM;
    let scale = Scale {
        d0: 0.0,
        d1: finite_max * 1.08,
        p0: left,
        p1: svg::WIDTH - 70.0,
    };
    let mut s = svg::open(&title, height);
    // Legend.
    for (i, (colour, text)) in [
        (SELECTION_COLOUR, "selection rate ÷ average"),
        (HIT_COLOUR, "hit rate ÷ average (with CI)"),
    ]
    .iter()
    .enumerate()
    {
        let x = left + i as f64 * 230.0;
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{}\" width=\"14\" height=\"10\" fill=\"{colour}\"/>\n\
             <text x=\"{}\" y=\"{}\">{}</text>",
            c(x),
            c(svg::TOP + 6.0),
            c(x + 20.0),
            c(svg::TOP + 15.0),
            escape_xml(text)
        );
    }
    for (i, (group, name)) in dimension.groups.iter().zip(&names).enumerate() {
        let y = plot_top + i as f64 * row;
        if group.flagged {
            let _ = writeln!(
                s,
                "<rect class=\"flagged\" x=\"4\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fde0dd\"/>",
                c(y + 1.0),
                c(svg::WIDTH - 8.0),
                c(row - 2.0)
            );
        }
        let (fill, weight) = if group.flagged {
            (FLAG_COLOUR, "bold")
        } else {
            ("#000000", "normal")
        };
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"{fill}\" font-weight=\"{weight}\">{}</text>",
            c(left - 8.0),
            c(y + row / 2.0 + 4.0),
            svg::label(name)
        );
        let whisker = group
            .hit_ratio_interval
            .filter(|(l, h)| l.is_finite() && h.is_finite());
        let bars = [
            (group.selection_ratio, SELECTION_COLOUR, y + 4.0, None),
            (group.hit_ratio, HIT_COLOUR, y + 21.0, whisker.map(|w| w.1)),
        ];
        for (value, colour, top, whisker_end) in bars {
            let value = value.filter(|v| v.is_finite());
            let x1 = value.map_or(scale.p0, |v| scale.at(v));
            // The label goes right of the bar and of its whisker.
            let label_x = whisker_end.map_or(x1, |w| x1.max(scale.at(w)));
            let _ = writeln!(
                s,
                "<rect class=\"bar\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"14\" fill=\"{colour}\"/>\n\
                 <text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#333333\">{}</text>",
                c(scale.p0),
                c(top),
                c(x1 - scale.p0),
                c(label_x + 4.0),
                c(top + 11.0),
                value.map_or("n/a".to_string(), |v| format!("{}×", format::ratio(v)))
            );
        }
        if let Some((low, high)) = whisker {
            let yc = c(y + 28.0);
            let _ = writeln!(
                s,
                "<line class=\"ci\" x1=\"{}\" y1=\"{yc}\" x2=\"{}\" y2=\"{yc}\" stroke=\"#333333\" stroke-width=\"1.2\"/>",
                c(scale.at(low)),
                c(scale.at(high))
            );
        }
    }
    svg::x_marker(
        &mut s,
        &scale,
        1.0,
        plot_top,
        plot_bottom,
        "average",
        "#333333",
    );
    svg::x_axis(
        &mut s,
        &scale,
        plot_bottom,
        plot_top,
        "times the average rate (1 = average)",
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::check::{assert_no_nan, assert_well_formed};
    use crate::test_util::Lcg;

    fn record(groups: &[(&str, &str)], selected: bool, outcome: Option<bool>) -> AuditRecord {
        AuditRecord {
            groups: groups
                .iter()
                .map(|(d, g)| (d.to_string(), g.to_string()))
                .collect(),
            selected,
            stratum: None,
            pi: None,
            outcome,
            design_selected: selected,
        }
    }

    /// `n` records of `group`, `selected` of them selected and inspected, `hits` of those hits.
    fn block(out: &mut Vec<AuditRecord>, group: &str, n: usize, selected: usize, hits: usize) {
        for i in 0..n {
            let is_selected = i < selected;
            let outcome = is_selected.then_some(i < hits);
            out.push(record(&[("origin country", group)], is_selected, outcome));
        }
    }

    fn group<'a>(audit: &'a BiasAudit, dimension: &str, name: &str) -> &'a GroupAudit {
        audit
            .dimensions
            .iter()
            .find(|d| d.name == dimension)
            .unwrap()
            .groups
            .iter()
            .find(|g| g.group == name)
            .unwrap()
    }

    #[test]
    fn a_group_selected_three_times_as_often_with_the_same_hit_rate_is_flagged() {
        let mut records = Vec::new();
        // A: 2000 declarations, 30% selected, hit rate 0.2.
        block(&mut records, "A", 2000, 600, 120);
        // B, C, D: 18000 declarations, 8% selected, hit rate 0.2.
        for g in ["B", "C", "D"] {
            block(&mut records, g, 6000, 480, 96);
        }
        let audit = audit(&records, &BiasOptions::default());
        let a = group(&audit, "origin country", "A");
        let s = audit.overall.selection_rate.unwrap();
        assert!((s - 2040.0 / 20000.0).abs() < 1e-12);
        assert!((a.selection_ratio.unwrap() - 0.3 / s).abs() < 1e-12);
        assert!((a.hit_ratio.unwrap() - 1.0).abs() < 1e-12);
        assert!(a.selection_ratio.unwrap() > 2.9);
        assert!(a.flagged, "{a:?}");
        assert!(a.robust_disparity.unwrap() < a.disparity.unwrap());
        assert_eq!(audit.flags.len(), 1, "{:?}", audit.flags);
        let flag = &audit.flags[0];
        assert!(
            flag.starts_with("origin country A: selected 2.9× the average rate"),
            "{flag}"
        );
        assert!(
            flag.contains("hit rate 0.20 vs 0.20 average (95% CI 0.17–0.23)"),
            "{flag}"
        );
        for g in ["B", "C", "D"] {
            assert!(!group(&audit, "origin country", g).flagged);
        }
    }

    /// Selection proportional to hit rates (`s = 0.5·h`) is what the hits justify: every group
    /// has a disparity of 1. Against the pooled hit rate of all inspections every group would
    /// have had `E[h²] / E[h]²` = 1.9, above the flag threshold.
    #[test]
    fn selection_proportional_to_hit_rates_gives_a_disparity_of_one() {
        let mut records = Vec::new();
        let groups = [
            ("A", 2000, 0.6),
            ("B", 8000, 0.2),
            ("C", 8000, 0.05),
            ("D", 4000, 0.1),
        ];
        for (g, n, h) in groups {
            let selected = (n as f64 * 0.5 * h).round() as usize;
            block(
                &mut records,
                g,
                n,
                selected,
                (selected as f64 * h).round() as usize,
            );
        }
        let audit = audit(&records, &BiasOptions::default());
        for (g, _, _) in groups {
            let a = group(&audit, "origin country", g);
            assert!((a.disparity.unwrap() - 1.0).abs() < 1e-9, "{a:?}");
            assert!(!a.flagged);
        }
        assert!(audit.flags.is_empty());
        let n: f64 = groups.iter().map(|g| g.1 as f64).sum();
        let mean: f64 = groups.iter().map(|g| g.1 as f64 * g.2).sum::<f64>() / n;
        let square: f64 = groups.iter().map(|g| g.1 as f64 * g.2 * g.2).sum::<f64>() / n;
        assert!(square / mean / mean > 1.5);
        let pooled = audit.overall.hit_rate.unwrap();
        let dimension_average = audit.dimensions[0].hit_rate.unwrap();
        assert!((dimension_average - mean).abs() < 1e-9);
        assert!(pooled > 1.5 * dimension_average);
    }

    #[test]
    fn small_groups_with_extreme_numbers_are_not_flagged() {
        let mut records = Vec::new();
        block(&mut records, "big", 20000, 2000, 400);
        // 10 declarations, all selected, none a hit: disparity is infinite.
        block(&mut records, "tiny", 10, 10, 0);
        // Selected 2× the average rate with 2 hits in 22 inspections (0.09 vs 0.2): a point
        // disparity of 4.4, but both rates are uncertain.
        block(&mut records, "noisy", 110, 22, 2);
        let audit = audit(&records, &BiasOptions::default());
        let tiny = group(&audit, "origin country", "tiny");
        assert_eq!(tiny.inspected, 10);
        assert_eq!(tiny.disparity, None);
        assert!(!tiny.flagged);
        let noisy = group(&audit, "origin country", "noisy");
        assert!(noisy.inspected >= 20);
        assert!(noisy.disparity.unwrap() > 4.0);
        assert!(noisy.robust_disparity.unwrap() < 1.5);
        assert!(!noisy.flagged, "{noisy:?}");
        assert!(audit.flags.is_empty(), "{:?}", audit.flags);
    }

    #[test]
    fn a_large_group_that_never_hits_is_flagged() {
        let mut records = Vec::new();
        block(&mut records, "big", 20000, 2000, 400);
        block(&mut records, "clean", 500, 200, 0);
        let audit = audit(&records, &BiasOptions::default());
        let clean = group(&audit, "origin country", "clean");
        assert_eq!(clean.disparity, None);
        assert!(clean.flagged);
        assert!(audit.flags[0].contains("origin country clean"));
    }

    #[test]
    fn groups_beyond_the_maximum_are_summed_into_other() {
        let mut records = Vec::new();
        for g in 0..30 {
            // Group g has 100 + g declarations, so the largest are 29, 28, ...
            block(&mut records, &format!("G{g:02}"), 100 + g, 10, 2);
        }
        let options = BiasOptions {
            max_groups_per_dimension: 25,
            ..BiasOptions::default()
        };
        let audit = audit(&records, &options);
        let dimension = &audit.dimensions[0];
        assert_eq!(dimension.groups.len(), 26);
        assert_eq!(dimension.groups[0].group, "G29");
        let other = dimension.groups.last().unwrap();
        assert_eq!(other.group, "other");
        assert_eq!(other.pooled_groups, 5);
        assert_eq!(other.declarations, 100 + 101 + 102 + 103 + 104);
        assert_eq!(other.selected, 50);
        assert_eq!(other.hits, 10);
        let total: usize = dimension.groups.iter().map(|g| g.declarations).sum();
        assert_eq!(total, records.len());
        assert_eq!(dimension.declarations, records.len());
    }

    #[test]
    fn a_real_group_named_other_is_not_confused_with_the_pool() {
        let mut records = Vec::new();
        block(&mut records, "other", 500, 10, 1);
        block(&mut records, "x", 10, 1, 0);
        block(&mut records, "y", 10, 1, 0);
        let options = BiasOptions {
            max_groups_per_dimension: 1,
            ..BiasOptions::default()
        };
        let audit = audit(&records, &options);
        let names: Vec<&str> = audit.dimensions[0]
            .groups
            .iter()
            .map(|g| g.group.as_str())
            .collect();
        assert_eq!(names, ["other", "other (pooled)"]);
    }

    #[test]
    fn empty_input_and_groups_without_inspections_do_not_panic() {
        let empty = audit(&[], &BiasOptions::default());
        assert_eq!(empty.overall.declarations, 0);
        assert_eq!(empty.overall.selection_rate, None);
        assert!(empty.dimensions.is_empty() && empty.flags.is_empty());
        // Nothing inspected anywhere; nothing selected in one group.
        let records = vec![
            record(&[("office", "30")], true, None),
            record(&[("office", "40")], false, None),
            record(&[], false, None),
        ];
        let audit = audit(&records, &BiasOptions::default());
        let g = group(&audit, "office", "30");
        assert_eq!(g.hit_rate, None);
        assert_eq!(g.hit_ratio, None);
        assert_eq!(g.disparity, None);
        assert_eq!(g.robust_disparity, None);
        assert_eq!((g.hit_rate_low, g.hit_rate_high), (0.0, 1.0));
        assert_eq!(audit.dimensions[0].declarations, 2);
        // Degenerate options do not panic either.
        let odd = BiasOptions {
            confidence: f64::NAN,
            max_disparity: f64::NAN,
            min_inspected: 0,
            max_groups_per_dimension: 0,
        };
        let audit = super::audit(&records, &odd);
        assert_eq!(audit.dimensions[0].groups.len(), 1);
        assert_eq!(audit.dimensions[0].groups[0].group, "other");
        assert!(audit.flags.is_empty());
    }

    #[test]
    fn repeated_pairs_count_once_and_dimensions_are_independent() {
        let records = vec![
            record(
                &[("office", "30"), ("office", "30"), ("origin country", "CN")],
                true,
                Some(true),
            ),
            record(&[("office", "30")], false, None),
        ];
        let audit = audit(&records, &BiasOptions::default());
        let g = group(&audit, "office", "30");
        assert_eq!((g.declarations, g.selected, g.hits), (2, 1, 1));
        assert_eq!(group(&audit, "origin country", "CN").declarations, 1);
    }

    /// A design with a risk stratum (π = 1) and a 5% random stratum: the Horvitz–Thompson estimate
    /// of the group's non-compliance recovers the true rate, while the hit rate of its inspections
    /// (mostly risk-selected) does not.
    #[test]
    fn random_stratum_gives_an_unbiased_group_estimate() {
        let mut rng = Lcg::new(11);
        let mut records = Vec::new();
        let mut truth = (0usize, 0usize);
        for _ in 0..20000 {
            let bad = rng.uniform() < 0.1;
            truth.0 += 1;
            truth.1 += usize::from(bad);
            // Risk targeting catches 60% of the bad ones and 2% of the good ones.
            let risky = rng.uniform() < if bad { 0.6 } else { 0.02 };
            let (stratum, pi, selected) = if risky {
                ("risk", 1.0, true)
            } else {
                ("random", 0.05, rng.uniform() < 0.05)
            };
            records.push(AuditRecord {
                groups: vec![("office".into(), "30".into())],
                selected,
                stratum: Some(stratum.into()),
                pi: Some(pi),
                outcome: selected.then_some(bad),
                design_selected: selected,
            });
        }
        let audit = audit(&records, &BiasOptions::default());
        let g = group(&audit, "office", "30");
        let estimate = g.non_compliance.as_ref().unwrap();
        let true_rate = truth.1 as f64 / truth.0 as f64;
        assert!(estimate.covers(true_rate), "{estimate:?} vs {true_rate}");
        assert!(
            g.hit_rate.unwrap() > 0.5,
            "risk-selected inspections hit far more"
        );
        assert_eq!(
            audit.overall.non_compliance.as_ref().map(|e| e.rate),
            Some(estimate.rate)
        );
        // Without π there is no estimate.
        let plain: Vec<AuditRecord> = records
            .iter()
            .map(|r| AuditRecord {
                pi: None,
                ..r.clone()
            })
            .collect();
        let audit = super::audit(&plain, &BiasOptions::default());
        assert!(group(&audit, "office", "30").non_compliance.is_none());
        // A π = 0 stratum makes the estimate impossible.
        let mut with_zero = records.clone();
        with_zero.push(AuditRecord {
            groups: vec![("office".into(), "30".into())],
            selected: false,
            stratum: Some("excluded".into()),
            pi: Some(0.0),
            outcome: None,
            design_selected: false,
        });
        let audit = super::audit(&with_zero, &BiasOptions::default());
        assert!(group(&audit, "office", "30").non_compliance.is_none());
        // Documentary picks of the riskiest unselected records count in the hit rate but not in
        // the estimate: it does not move.
        let mut with_documentary = records.clone();
        for r in with_documentary
            .iter_mut()
            .filter(|r| !r.selected)
            .take(300)
        {
            r.selected = true;
            r.design_selected = false;
            r.outcome = Some(true);
        }
        let audit = super::audit(&with_documentary, &BiasOptions::default());
        assert_eq!(
            group(&audit, "office", "30")
                .non_compliance
                .as_ref()
                .map(|e| e.rate),
            Some(estimate.rate)
        );
    }

    #[test]
    fn flag_sentence_mentions_the_random_estimate_when_there_is_one() {
        let mut rng = Lcg::new(5);
        let mut records = Vec::new();
        // Risk stratum (π = 1) of 500 in A and 900 in B; the rest in a 5% random stratum. Every
        // inspection hits with probability 0.2.
        for (g, n, risk) in [("A", 2000usize, 500usize), ("B", 18000, 900)] {
            for i in 0..n {
                let risky = i < risk;
                let selected = risky || rng.uniform() < 0.05;
                records.push(AuditRecord {
                    groups: vec![("origin country".into(), g.into())],
                    selected,
                    stratum: Some(if risky { "risk" } else { "random" }.into()),
                    pi: Some(if risky { 1.0 } else { 0.05 }),
                    outcome: selected.then(|| rng.uniform() < 0.2),
                    design_selected: selected,
                });
            }
        }
        let audit = audit(&records, &BiasOptions::default());
        assert!(group(&audit, "origin country", "A").flagged);
        assert!(
            audit.flags[0].contains("random-control estimate of its non-compliance"),
            "{}",
            audit.flags[0]
        );
    }

    #[test]
    fn audit_serialises_without_nan() {
        let mut records = Vec::new();
        block(&mut records, "A", 100, 50, 0);
        block(&mut records, "B", 100, 0, 0);
        let audit = audit(&records, &BiasOptions::default());
        let json = serde_json::to_string(&audit).unwrap();
        assert!(!json.contains("NaN") && !json.contains("inf"), "{json}");
        let back: BiasAudit = serde_json::from_str(&json).unwrap();
        assert_eq!(back.dimensions.len(), 1);
    }

    #[test]
    fn chart_is_well_formed_escapes_names_and_marks_flags() {
        let mut records = Vec::new();
        block(&mut records, "<script>&", 2000, 600, 120);
        block(&mut records, "B", 18000, 1440, 288);
        block(&mut records, "tiny", 5, 5, 0);
        block(&mut records, "unselected", 50, 0, 0);
        let audit = audit(&records, &BiasOptions::default());
        let svg = bias_chart_svg(&audit.dimensions[0]);
        assert!(svg.starts_with("<svg"));
        assert_well_formed(&svg);
        assert_no_nan(&svg);
        assert!(svg.contains("&lt;script&gt;&amp;"));
        assert!(!svg.contains("<script"));
        assert_eq!(svg.matches("class=\"flagged\"").count(), 1);
        assert_eq!(svg.matches("class=\"bar\"").count(), 8);
        assert!(svg.contains("n/a"));
        let empty = bias_chart_svg(&DimensionAudit {
            name: "office".into(),
            declarations: 0,
            selection_rate: None,
            hit_rate: None,
            groups: vec![],
        });
        assert_well_formed(&empty);
        assert!(empty.contains("no data"));
    }

    proptest::proptest! {
        /// Arbitrary small populations: no panic, ratios finite where defined, a flagged group
        /// always has enough inspections and a point disparity at least the threshold.
        #[test]
        fn audit_is_total_and_flags_are_consistent(
            rows in proptest::collection::vec((0u8..6, proptest::bool::ANY, 0u8..3), 0..300)
        ) {
            let records: Vec<AuditRecord> = rows
                .iter()
                .map(|&(g, selected, outcome)| {
                    let outcome = match outcome { 0 => None, 1 => Some(false), _ => Some(true) };
                    record(&[("g", &format!("G{g}"))], selected, outcome)
                })
                .collect();
            let options = BiasOptions { min_inspected: 3, max_groups_per_dimension: 4, ..BiasOptions::default() };
            let audit = audit(&records, &options);
            for d in &audit.dimensions {
                for g in &d.groups {
                    for v in [g.selection_ratio, g.hit_ratio, g.disparity, g.robust_disparity].into_iter().flatten() {
                        proptest::prop_assert!(v.is_finite() && v >= 0.0);
                    }
                    if g.flagged {
                        proptest::prop_assert!(g.inspected >= 3);
                        proptest::prop_assert!(g.disparity.is_none_or(|d| d >= 1.5));
                    }
                }
                let svg = bias_chart_svg(d);
                assert_no_nan(&svg);
            }
        }
    }
}
