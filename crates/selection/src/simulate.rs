//! The replay simulator: how would a selection policy have done, week by week, if only the
//! declarations it selected had revealed their labels?
//!
//! The declarations (with their true labels, known to the simulator only) are replayed in ISO
//! weeks. Each week, for each policy:
//! 1. the policy's model, trained by the caller's [`Learner`] on what that policy has revealed so
//!    far (plus all earlier declarations, unlabelled, as context), scores the week;
//! 2. the policy selects within capacity ([`crate::policy::decide`]), recording π and strata;
//! 3. the selected declarations reveal their labels; everything else stays unknown to it;
//! 4. the week's fraud rate is estimated from what was revealed — Horvitz–Thompson when every
//!    declaration had π > 0, otherwise the naive hits / inspected — and compared with the truth.
//!
//! The first `warmup_weeks` weeks select uniformly at random (the same draws for every policy):
//! a new system has no model yet. Totals are over the weeks after the warm-up.

use std::collections::BTreeMap;

use borderlens_domain::rng::Rng;
use borderlens_domain::{DeclarationItem, LabelKind};
use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::estimate::{self, RateEstimate, StratumCount};
use crate::policy::{decide, Candidate, Capacity, Decision, Exploration, Policy, RankBy};

/// Trains on revealed labels and scores a week. Supplied by the caller (the simulator never
/// trains models itself).
pub trait Learner: Sync {
    /// Trains on the labelled items of `history` (sorted by date; unlabelled items are context
    /// only) with `weights` per item, then returns a probability per item of `batch`.
    fn fit_score(
        &self,
        history: &[DeclarationItem],
        weights: &[f64],
        batch: &[DeclarationItem],
    ) -> Result<Vec<f64>, String>;
}

/// The policies the simulator knows how to compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The highest scores fill the capacity.
    Exploit,
    /// Highest scores, plus a uniform random share of the capacity.
    ExploitRandom,
    /// Highest scores, plus an uncertainty-stratified exploration share.
    ExploitExplore,
    /// The whole capacity drawn uniformly at random (the reference for estimates).
    Random,
}

impl Strategy {
    /// All strategies.
    pub const ALL: [Strategy; 4] = [
        Strategy::Exploit,
        Strategy::ExploitRandom,
        Strategy::ExploitExplore,
        Strategy::Random,
    ];

    /// Name used in reports and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Exploit => "exploit",
            Strategy::ExploitRandom => "exploit_random",
            Strategy::ExploitExplore => "exploit_explore",
            Strategy::Random => "random",
        }
    }

    /// Parses a name.
    pub fn parse(text: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.name() == text.trim())
    }

    /// The policy this strategy applies with a capacity share and exploration share.
    pub fn policy(self, capacity: f64, explore_share: f64, rank_by: RankBy) -> Policy {
        let (explore_share, exploration) = match self {
            Strategy::Exploit => (0.0, Exploration::None),
            Strategy::ExploitRandom => (explore_share, Exploration::Random),
            Strategy::ExploitExplore => (
                explore_share,
                Exploration::Uncertainty {
                    strata: 3,
                    oversample: 2.0,
                },
            ),
            Strategy::Random => (0.999_999, Exploration::Random),
        };
        Policy {
            name: self.name().into(),
            description: String::new(),
            capacity: Capacity::Share(capacity),
            explore_share,
            exploration,
            documentary_share: 0.0,
            campaigns: Vec::new(),
            rank_by,
        }
    }

    fn needs_model(self) -> bool {
        self != Strategy::Random
    }
}

/// What to simulate.
#[derive(Clone, Debug, Serialize)]
pub struct SimulationOptions {
    /// Red-lane capacity as a share of each week's declarations.
    pub capacity: f64,
    /// Share of the capacity given to exploration by the exploring strategies.
    pub explore_share: f64,
    /// Weeks of uniform random selection before any model exists.
    pub warmup_weeks: usize,
    /// Weeks counted as "the last quarter".
    pub last_weeks: usize,
    /// Strategies to compare.
    pub strategies: Vec<Strategy>,
    /// Train with inverse-probability weights 1/π.
    pub ipw: bool,
    /// What risk targeting ranks by.
    pub rank_by: RankBy,
    /// Which label is the target.
    #[serde(serialize_with = "label_name")]
    pub label: LabelKind,
    /// Confidence level of the intervals.
    pub confidence: f64,
    /// Seed of the random draws.
    pub seed: u64,
}

fn label_name<S: serde::Serializer>(label: &LabelKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(label.name())
}

impl SimulationOptions {
    /// Defaults: 5% capacity, 20% of it exploring, 4 warm-up weeks, 13 last weeks, every
    /// strategy, no IPW, fraud label, 95% intervals.
    pub fn standard() -> SimulationOptions {
        SimulationOptions {
            capacity: 0.05,
            explore_share: 0.2,
            warmup_weeks: 4,
            last_weeks: 13,
            strategies: Strategy::ALL.to_vec(),
            ipw: false,
            rank_by: RankBy::Probability,
            label: LabelKind::Fraud,
            confidence: 0.95,
            seed: 42,
        }
    }
}

/// One week of one policy.
#[derive(Clone, Debug, Serialize)]
pub struct WeekResult {
    /// ISO week, e.g. `2020-W07`.
    pub week: String,
    /// First day with declarations.
    pub first_day: NaiveDate,
    /// Whether this is a warm-up week (random selection, not counted in totals).
    pub warmup: bool,
    /// Declarations of the week.
    pub declarations: usize,
    /// Selected (red lane).
    pub selected: usize,
    /// Frauds found.
    pub hits: usize,
    /// Frauds in the week (truth).
    pub frauds: usize,
    /// Duty at stake of the frauds found.
    pub revenue_caught: f64,
    /// Duty at stake of all the week's frauds.
    pub revenue_total: f64,
    /// True fraud rate of the week.
    pub true_rate: f64,
    /// The policy's estimate of it.
    pub estimate: RateEstimate,
    /// `horvitz_thompson` or `naive`.
    pub estimator: &'static str,
    /// Whether the interval contains the true rate.
    pub covered: bool,
}

/// Totals of one policy over the weeks after the warm-up.
#[derive(Clone, Debug, Serialize)]
pub struct PolicySummary {
    /// hits / selected.
    pub precision: f64,
    /// hits / frauds.
    pub recall: f64,
    /// Duty at stake caught / duty at stake of all frauds.
    pub revenue_share: f64,
    /// The same over the last `last_weeks` weeks.
    pub last_quarter_revenue_share: f64,
    /// Share of weeks whose interval contains the true rate.
    pub estimate_coverage: f64,
    /// Mean |estimate − truth| over the weeks that have an estimate.
    pub mean_abs_estimate_error: f64,
    /// Estimator of the weekly estimates.
    pub estimator: &'static str,
    /// The fraud rate of the whole period estimated from all the policy's weeks together.
    pub pooled_estimate: RateEstimate,
    /// Selected, hits, frauds over the period.
    pub selected: usize,
    /// Frauds found.
    pub hits: usize,
    /// Duty at stake caught.
    pub revenue_caught: f64,
    /// Week by week.
    pub weeks: Vec<WeekResult>,
}

/// The comparison.
#[derive(Clone, Debug, Serialize)]
pub struct SimulationReport {
    /// Options used.
    pub options: SimulationOptions,
    /// Declarations replayed.
    pub declarations: usize,
    /// Weeks replayed (including warm-up).
    pub weeks: usize,
    /// Frauds over the counted weeks.
    pub frauds: usize,
    /// True fraud rate over the counted weeks.
    pub true_rate: f64,
    /// Duty at stake of all frauds over the counted weeks.
    pub revenue_total: f64,
    /// Share of that duty held by the largest 1% of those frauds (at least one): how much a
    /// revenue share depends on catching a handful of consignments. Exploration draws for
    /// uncertainty (or at random), not for duty, so where this is high, revenue shares of
    /// policies ranked by probability differ by which few consignments a draw happened to hit.
    pub largest_frauds_duty_share: f64,
    /// Per policy name.
    pub policies: BTreeMap<String, PolicySummary>,
}

/// Why a simulation stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimulationError {
    /// Inputs that cannot be simulated.
    #[error("cannot simulate: {0}")]
    Input(String),
    /// The learner failed.
    #[error("training for policy {policy} in week {week} failed: {reason}")]
    Learner {
        /// Policy.
        policy: String,
        /// Week.
        week: String,
        /// Learner's message.
        reason: String,
    },
    /// The caller asked to stop.
    #[error("interrupted")]
    Interrupted,
}

/// Week label and the index ranges of each week in `items` (sorted by date).
fn weeks(items: &[DeclarationItem]) -> Vec<(String, std::ops::Range<usize>)> {
    let mut out: Vec<(String, std::ops::Range<usize>)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let week = item.date.iso_week();
        let label = format!("{}-W{:02}", week.year(), week.week());
        match out.last_mut() {
            Some((last, range)) if *last == label => range.end = i + 1,
            _ => out.push((label, i..i + 1)),
        }
    }
    out
}

/// Replays `items` (sorted by date, every one labelled) under each strategy.
///
/// `progress(done, total)` is called after each policy-week and returns `false` to stop.
pub fn simulate(
    items: &[DeclarationItem],
    learner: &dyn Learner,
    options: &SimulationOptions,
    progress: &(dyn Fn(usize, usize) -> bool + Sync),
) -> Result<SimulationReport, SimulationError> {
    if !(options.capacity > 0.0 && options.capacity <= 1.0) {
        return Err(SimulationError::Input(format!(
            "capacity {} is not in (0, 1]",
            options.capacity
        )));
    }
    if !(0.0..1.0).contains(&options.explore_share) {
        return Err(SimulationError::Input(format!(
            "explore share {} is not in [0, 1)",
            options.explore_share
        )));
    }
    if options.strategies.is_empty() {
        return Err(SimulationError::Input("no policy to simulate".into()));
    }
    if let Some(item) = items.iter().find(|d| d.label.is_none()) {
        return Err(SimulationError::Input(format!(
            "declaration {} has no control result: the replay needs the truth of every declaration",
            item.key.declaration_id
        )));
    }
    if items.windows(2).any(|w| w[0].date > w[1].date) {
        return Err(SimulationError::Input(
            "declarations are not sorted by date".into(),
        ));
    }
    let weeks = weeks(items);
    if weeks.len() <= options.warmup_weeks {
        return Err(SimulationError::Input(format!(
            "{} weeks of data, need more than the {} warm-up weeks",
            weeks.len(),
            options.warmup_weeks
        )));
    }
    let total = weeks.len() * options.strategies.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let tick = || {
        let d = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        progress(d, total)
    };
    let results: Vec<Result<PolicySummary, SimulationError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = options
            .strategies
            .iter()
            .map(|&strategy| {
                let weeks = &weeks;
                let tick = &tick;
                scope.spawn(move || run_policy(items, weeks, strategy, learner, options, tick))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    let mut policies = BTreeMap::new();
    for (strategy, result) in options.strategies.iter().zip(results) {
        policies.insert(strategy.name().to_string(), result?);
    }
    let counted = weeks[options.warmup_weeks].1.start..items.len();
    let positive = |d: &DeclarationItem| d.label.is_some_and(|l| options.label.is_positive(l));
    let frauds = items[counted.clone()]
        .iter()
        .filter(|d| positive(d))
        .count();
    let mut fraud_duties: Vec<f64> = items[counted.clone()]
        .iter()
        .filter(|d| positive(d))
        .map(DeclarationItem::duty_at_stake)
        .collect();
    let revenue_total: f64 = fraud_duties.iter().sum();
    fraud_duties.sort_by(|a, b| b.total_cmp(a));
    let largest = fraud_duties.len().div_ceil(100);
    let largest_frauds_duty_share = if revenue_total > 0.0 {
        fraud_duties[..largest].iter().sum::<f64>() / revenue_total
    } else {
        f64::NAN
    };
    Ok(SimulationReport {
        options: options.clone(),
        declarations: items.len(),
        weeks: weeks.len(),
        frauds,
        true_rate: frauds as f64 / counted.len().max(1) as f64,
        revenue_total,
        largest_frauds_duty_share,
        policies,
    })
}

fn run_policy(
    items: &[DeclarationItem],
    weeks: &[(String, std::ops::Range<usize>)],
    strategy: Strategy,
    learner: &dyn Learner,
    options: &SimulationOptions,
    tick: &dyn Fn() -> bool,
) -> Result<PolicySummary, SimulationError> {
    let policy = strategy.policy(options.capacity, options.explore_share, options.rank_by);
    let warmup_policy =
        Strategy::Random.policy(options.capacity, options.explore_share, options.rank_by);
    let positive = |d: &DeclarationItem| d.label.is_some_and(|l| options.label.is_positive(l));
    // What this policy knows: every past declaration, labelled only where it looked.
    let mut known: Vec<DeclarationItem> = Vec::with_capacity(items.len());
    let mut weights: Vec<f64> = Vec::with_capacity(items.len());
    let mut results = Vec::with_capacity(weeks.len());
    let mut pooled: Vec<StratumCount> = Vec::new();
    let mut pooled_feasible = true;
    for (w, (label, range)) in weeks.iter().enumerate() {
        let batch = &items[range.clone()];
        let warmup = w < options.warmup_weeks;
        let hidden: Vec<DeclarationItem> = batch
            .iter()
            .map(|d| DeclarationItem {
                label: None,
                ..d.clone()
            })
            .collect();
        let scores = if warmup || !strategy.needs_model() {
            vec![0.5; batch.len()]
        } else {
            learner
                .fit_score(&known, &weights, &hidden)
                .map_err(|reason| SimulationError::Learner {
                    policy: strategy.name().into(),
                    week: label.clone(),
                    reason,
                })?
        };
        let candidates: Vec<Candidate> = batch
            .iter()
            .zip(&scores)
            .map(|(item, &score)| Candidate { item, score })
            .collect();
        // Warm-up draws depend on the week only, so every policy starts from the same labels.
        let mut rng = if warmup {
            Rng::new(options.seed ^ (w as u64).wrapping_mul(0x9E37_79B9))
        } else {
            Rng::new(
                options.seed
                    ^ (w as u64).wrapping_mul(0x9E37_79B9)
                    ^ (strategy as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03),
            )
        };
        let decisions = decide(
            if warmup { &warmup_policy } else { &policy },
            &candidates,
            &mut rng,
        );
        let week = score_week(label, batch, &decisions, warmup, options, &positive);
        let strata = strata_of(batch, &decisions, &positive);
        if !warmup {
            if strata.iter().any(|s| s.population > 0 && s.inspected == 0) {
                pooled_feasible = false;
            }
            pooled.extend(strata);
        }
        results.push(week);
        for ((mut item, original), decision) in hidden.into_iter().zip(batch).zip(&decisions) {
            let selected = decision.lane == crate::policy::Lane::Red;
            if selected {
                item.label = original.label;
            }
            weights.push(if selected && decision.pi > 0.0 {
                if options.ipw {
                    1.0 / decision.pi
                } else {
                    1.0
                }
            } else {
                1.0
            });
            known.push(item);
        }
        if !tick() {
            return Err(SimulationError::Interrupted);
        }
    }
    Ok(summarise(
        results,
        pooled_feasible.then_some(pooled),
        options,
    ))
}

/// Strata counts of one batch: design-selected members of each stratum are the inspected ones.
fn strata_of(
    batch: &[DeclarationItem],
    decisions: &[Decision],
    positive: &dyn Fn(&DeclarationItem) -> bool,
) -> Vec<StratumCount> {
    let mut strata: BTreeMap<&str, StratumCount> = BTreeMap::new();
    for (item, decision) in batch.iter().zip(decisions) {
        let s = strata
            .entry(decision.stratum.as_str())
            .or_insert(StratumCount {
                population: 0,
                inspected: 0,
                hits: 0,
            });
        s.population += 1;
        if decision.source.is_design_selection() {
            s.inspected += 1;
            s.hits += usize::from(positive(item));
        }
    }
    strata.into_values().collect()
}

fn score_week(
    label: &str,
    batch: &[DeclarationItem],
    decisions: &[Decision],
    warmup: bool,
    options: &SimulationOptions,
    positive: &dyn Fn(&DeclarationItem) -> bool,
) -> WeekResult {
    let (mut selected, mut hits, mut frauds) = (0, 0, 0);
    let (mut revenue_caught, mut revenue_total) = (0.0, 0.0);
    for (item, decision) in batch.iter().zip(decisions) {
        let fraud = positive(item);
        let red = decision.lane == crate::policy::Lane::Red;
        frauds += usize::from(fraud);
        selected += usize::from(red);
        if fraud {
            revenue_total += item.duty_at_stake();
        }
        if red && fraud {
            hits += 1;
            revenue_caught += item.duty_at_stake();
        }
    }
    let true_rate = frauds as f64 / batch.len() as f64;
    let strata = strata_of(batch, decisions, positive);
    let (estimate, estimator) = match estimate::horvitz_thompson(&strata, options.confidence) {
        Some(e) => (e, "horvitz_thompson"),
        None => (
            estimate::naive(selected, hits, batch.len(), options.confidence),
            "naive",
        ),
    };
    WeekResult {
        week: label.to_string(),
        first_day: batch[0].date,
        warmup,
        declarations: batch.len(),
        selected,
        hits,
        frauds,
        revenue_caught,
        revenue_total,
        true_rate,
        // A week with nothing inspected has no estimate: it does not count as covered.
        covered: estimate.rate.is_finite() && estimate.covers(true_rate),
        estimate,
        estimator,
    }
}

fn summarise(
    weeks: Vec<WeekResult>,
    pooled: Option<Vec<StratumCount>>,
    options: &SimulationOptions,
) -> PolicySummary {
    let counted: Vec<&WeekResult> = weeks.iter().filter(|w| !w.warmup).collect();
    let last_start = counted.len().saturating_sub(options.last_weeks);
    let sum = |f: &dyn Fn(&WeekResult) -> f64, from: usize| -> f64 {
        counted[from..].iter().map(|w| f(w)).sum()
    };
    let selected = sum(&|w| w.selected as f64, 0);
    let hits = sum(&|w| w.hits as f64, 0);
    let frauds = sum(&|w| w.frauds as f64, 0);
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let n_weeks = counted.len().max(1) as f64;
    let population: usize = counted.iter().map(|w| w.declarations).sum();
    let estimator = counted.first().map_or("naive", |w| w.estimator);
    let pooled_estimate = pooled
        .and_then(|strata| estimate::horvitz_thompson(&strata, options.confidence))
        .unwrap_or_else(|| {
            estimate::naive(
                selected as usize,
                hits as usize,
                population,
                options.confidence,
            )
        });
    PolicySummary {
        precision: ratio(hits, selected),
        recall: ratio(hits, frauds),
        revenue_share: ratio(sum(&|w| w.revenue_caught, 0), sum(&|w| w.revenue_total, 0)),
        last_quarter_revenue_share: ratio(
            sum(&|w| w.revenue_caught, last_start),
            sum(&|w| w.revenue_total, last_start),
        ),
        estimate_coverage: sum(&|w| f64::from(u8::from(w.covered)), 0) / n_weeks,
        mean_abs_estimate_error: {
            let errors: Vec<f64> = counted
                .iter()
                .map(|w| (w.estimate.rate - w.true_rate).abs())
                .filter(|e| e.is_finite())
                .collect();
            errors.iter().sum::<f64>() / errors.len().max(1) as f64
        },
        estimator,
        pooled_estimate,
        selected: selected as usize,
        hits: hits as usize,
        revenue_caught: sum(&|w| w.revenue_caught, 0),
        weeks,
    }
}

#[cfg(test)]
mod tests;
