//! The Fellegi–Sunter model: candidate pairs from blocking rules, u by random sampling, m by EM
//! on the pairs of each training rule, the prior by EM on all candidates, match weights, and the
//! assignment of links.

use std::collections::HashMap;

use borderlens_domain::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::compare::{self, Prepared};
use crate::settings::{BlockingRule, KeyPart, LinkType, Settings};
use crate::table::Table;

/// m and u of one comparison, per level (best first; the missing level has none).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonParams {
    /// Column.
    pub column: String,
    /// Level names.
    pub levels: Vec<String>,
    /// P(level | match).
    pub m: Vec<f64>,
    /// P(level | non-match).
    pub u: Vec<f64>,
    /// Whether m was estimated (false: the column was in every training rule; default m).
    pub m_trained: bool,
}

impl ComparisonParams {
    /// Match weight (log2 Bayes factor) of level `level` (1-based; 0 = missing → 0).
    pub fn weight(&self, level: u8) -> f64 {
        if level == 0 {
            return 0.0;
        }
        let k = usize::from(level) - 1;
        (self.m[k] / self.u[k]).log2()
    }
}

/// The trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Prior probability that two records drawn at random match.
    pub lambda: f64,
    /// Per comparison.
    pub comparisons: Vec<ComparisonParams>,
    /// Term frequencies for comparisons with `term_frequency` (value → share of entities).
    #[serde(default)]
    pub term_frequencies: Vec<HashMap<String, f64>>,
}

impl Model {
    /// Prior weight log2(λ / (1 − λ)).
    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }
}

/// Probability from a match weight.
pub fn probability(weight: f64) -> f64 {
    1.0 / (1.0 + (-weight).exp2())
}

/// A scored candidate pair (indices into left and right; right = left for dedupe).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoredPair {
    /// Left record.
    pub left: u32,
    /// Right record.
    pub right: u32,
    /// Match weight.
    pub weight: f64,
    /// Match probability.
    pub probability: f64,
}

/// Both sides prepared for the comparisons.
pub(crate) struct Sides {
    pub(crate) left: Vec<Prepared>,
    pub(crate) right: Vec<Prepared>,
    pub(crate) n_left: usize,
    pub(crate) n_right: usize,
    pub(crate) dedupe: bool,
}

impl Sides {
    pub(crate) fn new(settings: &Settings, left: &Table, right: Option<&Table>) -> Sides {
        let prepare = |t: &Table| -> Vec<Prepared> {
            settings
                .comparisons
                .par_iter()
                .map(|c| compare::prepare(c, t.column(&c.column).unwrap_or(&[])))
                .collect()
        };
        let l = prepare(left);
        let (r, n_right) = match right {
            Some(t) => (prepare(t), t.len()),
            None => (l.clone(), left.len()),
        };
        Sides {
            left: l,
            right: r,
            n_left: left.len(),
            n_right,
            dedupe: right.is_none(),
        }
    }

    /// Levels of pair (i, j) for every comparison.
    pub(crate) fn levels(&self, settings: &Settings, i: usize, j: usize, out: &mut [u8]) {
        for (k, c) in settings.comparisons.iter().enumerate() {
            out[k] = compare::level(c, &self.left[k], i, &self.right[k], j);
        }
    }

    fn total_pairs(&self) -> f64 {
        pair_count(self.n_left, (!self.dedupe).then_some(self.n_right))
    }
}

/// All pairs of two sources of these sizes, or of one source with itself (`right` = `None`).
pub(crate) fn pair_count(left: usize, right: Option<usize>) -> f64 {
    match right {
        Some(r) => left as f64 * r as f64,
        None => left as f64 * (left as f64 - 1.0) / 2.0,
    }
}

/// Blocking key of each record for `rule`: normalised values of its columns joined; `None` when
/// any is empty.
fn keys(rule: &BlockingRule, table: &Table) -> Vec<Option<String>> {
    let parts: Vec<(KeyPart, &[String])> = rule
        .columns
        .iter()
        .filter_map(|spec| KeyPart::parse(spec).ok())
        .map(|part| {
            let values = table.column(part.column()).unwrap_or(&[]);
            (part, values)
        })
        .collect();
    (0..table.len())
        .into_par_iter()
        .map(|r| {
            let mut key = String::new();
            for (part, values) in &parts {
                let v = part.key(values.get(r).map_or("", String::as_str))?;
                let v: String = match rule.prefix {
                    Some(p) => v.chars().take(p).collect(),
                    None => v,
                };
                key.push_str(&v);
                key.push('\u{1f}');
            }
            Some(key)
        })
        .collect()
}

/// Candidate pairs of the rules (deduplicated, sorted), as `left << 32 | right`.
pub(crate) fn candidates(rules: &[BlockingRule], left: &Table, right: Option<&Table>) -> Vec<u64> {
    let mut pairs: Vec<u64> = Vec::new();
    for rule in rules {
        if rule.columns.is_empty() {
            // Every pair (small sources only: checked by the caller).
            let n_right = right.map_or(left.len(), Table::len);
            for i in 0..left.len() {
                let from = if right.is_some() { 0 } else { i + 1 };
                pairs.extend((from..n_right).map(|j| (i as u64) << 32 | j as u64));
            }
            continue;
        }
        let left_keys = keys(rule, left);
        let right_keys = match right {
            Some(t) => keys(rule, t),
            None => left_keys.clone(),
        };
        let mut index: HashMap<&str, Vec<u32>> = HashMap::new();
        for (j, k) in right_keys.iter().enumerate() {
            if let Some(k) = k {
                index.entry(k.as_str()).or_default().push(j as u32);
            }
        }
        let found: Vec<Vec<u64>> = left_keys
            .par_iter()
            .enumerate()
            .map(|(i, k)| {
                let Some(k) = k else { return Vec::new() };
                let Some(partners) = index.get(k.as_str()) else {
                    return Vec::new();
                };
                partners
                    .iter()
                    .filter(|&&j| right.is_some() || (j as usize) > i)
                    .map(|&j| (i as u64) << 32 | u64::from(j))
                    .collect()
            })
            .collect();
        for f in found {
            pairs.extend(f);
        }
    }
    pairs.par_sort_unstable();
    pairs.dedup();
    pairs
}

/// u: level frequencies among random pairs.
pub(crate) fn estimate_u(settings: &Settings, sides: &Sides) -> Vec<Vec<f64>> {
    let n_cmp = settings.comparisons.len();
    let total = sides.total_pairs();
    let samples = (settings.u_sample_pairs as f64).min(total).max(1.0) as usize;
    let chunks = 64;
    let counts: Vec<Vec<Vec<f64>>> = (0..chunks)
        .into_par_iter()
        .map(|chunk| {
            let mut rng = Rng::new(settings.seed ^ (chunk as u64).wrapping_mul(0x9E37_79B9));
            let mut counts: Vec<Vec<f64>> = settings
                .comparisons
                .iter()
                .map(|c| vec![0.0; c.n_levels()])
                .collect();
            let mut levels = vec![0u8; n_cmp];
            let n = samples / chunks + usize::from(chunk < samples % chunks);
            // Pairs come in runs: one random left record against a run of consecutive right
            // records from a random start. Every pair is still equally likely, and reading the
            // right side in order keeps it in cache (random single pairs were memory-bound).
            const RUN: usize = 32;
            let mut done = 0;
            while done < n {
                let i = rng.below(sides.n_left);
                let start = rng.below(sides.n_right);
                for step in 0..RUN.min(n - done).min(sides.n_right) {
                    let j = (start + step) % sides.n_right;
                    if sides.dedupe && j == i {
                        continue;
                    }
                    sides.levels(settings, i, j, &mut levels);
                    for (k, &l) in levels.iter().enumerate() {
                        if l > 0 {
                            counts[k][usize::from(l) - 1] += 1.0;
                        }
                    }
                    done += 1;
                }
            }
            counts
        })
        .collect();
    settings
        .comparisons
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let mut total = vec![0.0; c.n_levels()];
            for chunk in &counts {
                for (t, v) in total.iter_mut().zip(&chunk[k]) {
                    *t += v;
                }
            }
            // Half a pair of prior per level: a level never seen among random pairs is rare, not
            // impossible.
            let sum: f64 = total.iter().sum::<f64>() + 0.5 * total.len() as f64;
            let mut u: Vec<f64> = total.iter().map(|v| (v + 0.5) / sum).collect();
            // The exact level is the rarest and weighs most: count it exactly from the value
            // frequencies instead of trusting a sample, and share the rest as sampled.
            if let Some(exact) = exact_share(&sides.left[k], &sides.right[k], sides.dedupe) {
                let floor = 0.5 / sides.total_pairs().max(1.0);
                let exact = exact.max(floor).min(0.999);
                let rest: f64 = u[1..].iter().sum();
                if rest > 0.0 {
                    for v in &mut u[1..] {
                        *v *= (1.0 - exact) / rest;
                    }
                }
                u[0] = exact;
            }
            u
        })
        .collect()
}

/// Share of non-missing random pairs that agree exactly, from value frequencies.
fn exact_share(left: &Prepared, right: &Prepared, dedupe: bool) -> Option<f64> {
    let key = |p: &Prepared, i: usize| -> Option<String> {
        if p.text[i].is_empty() {
            return None;
        }
        match p.number.get(i) {
            Some(Some(v)) => Some(format!("{v}")),
            Some(None) => None,
            None => Some(p.text[i].clone()),
        }
    };
    let count = |p: &Prepared| {
        let mut m: HashMap<String, f64> = HashMap::new();
        for i in 0..p.text.len() {
            if let Some(k) = key(p, i) {
                *m.entry(k).or_default() += 1.0;
            }
        }
        m
    };
    let l = count(left);
    let n_l: f64 = l.values().sum();
    if dedupe {
        let pairs = n_l * (n_l - 1.0);
        (pairs > 0.0).then(|| l.values().map(|c| c * (c - 1.0)).sum::<f64>() / pairs)
    } else {
        let r = count(right);
        let n_r: f64 = r.values().sum();
        (n_l * n_r > 0.0).then(|| {
            l.iter()
                .map(|(k, c)| c * r.get(k).copied().unwrap_or(0.0))
                .sum::<f64>()
                / (n_l * n_r)
        })
    }
}

/// Pseudo-matches of the prior on m.
const PRIOR_MATCHES: f64 = 5.0;

/// Default m before training: most mass on the best levels.
fn initial_m(n_levels: usize) -> Vec<f64> {
    let mut m: Vec<f64> = (0..n_levels).map(|l| 0.5f64.powi(l as i32 + 1)).collect();
    m[0] += 0.3;
    let s: f64 = m.iter().sum();
    m.iter().map(|v| v / s).collect()
}

/// Levels of `pairs`, row-major (`pairs.len() × n_comparisons`).
pub(crate) fn pair_levels(settings: &Settings, sides: &Sides, pairs: &[u64]) -> Vec<u8> {
    let n_cmp = settings.comparisons.len();
    let mut out = vec![0u8; pairs.len() * n_cmp];
    out.par_chunks_mut(n_cmp)
        .zip(pairs.par_iter())
        .for_each(|(row, &p)| {
            sides.levels(
                settings,
                (p >> 32) as usize,
                (p & 0xFFFF_FFFF) as usize,
                row,
            )
        });
    out
}

/// What EM runs over: the pairs' levels (row-major), which comparisons count, and the fixed u.
struct EmData<'a> {
    levels: &'a [u8],
    n_cmp: usize,
    use_k: &'a [bool],
    u: &'a [Vec<f64>],
}

/// EM over the pairs, updating the prior `lambda` (within these pairs) and, when `update_m`, m
/// of the comparisons in `use_k`; returns the prior.
fn em(
    data: &EmData<'_>,
    m: &mut [Vec<f64>],
    mut lambda: f64,
    update_m: bool,
    iterations: usize,
) -> f64 {
    let EmData {
        levels,
        n_cmp,
        use_k,
        u,
    } = *data;
    let n = levels.len() / n_cmp.max(1);
    if n == 0 {
        return lambda;
    }
    for _ in 0..iterations {
        let log_bf: Vec<Vec<f64>> = m
            .iter()
            .zip(u)
            .map(|(mk, uk)| mk.iter().zip(uk).map(|(a, b)| (a / b).ln()).collect())
            .collect();
        let prior = (lambda / (1.0 - lambda)).ln();
        // Fixed blocks summed in order: the same input gives the same model, whatever the
        // threads did (a rayon fold/reduce would sum in a schedule-dependent order).
        const BLOCK: usize = 4096;
        let partials: Vec<(f64, Vec<Vec<f64>>)> = levels
            .par_chunks(n_cmp * BLOCK)
            .map(|block| {
                let mut s = 0.0;
                let mut acc: Vec<Vec<f64>> = m.iter().map(|mk| vec![0.0; mk.len()]).collect();
                for row in block.chunks(n_cmp) {
                    let mut w = prior;
                    for (k, &l) in row.iter().enumerate() {
                        if use_k[k] && l > 0 {
                            w += log_bf[k][usize::from(l) - 1];
                        }
                    }
                    let p = 1.0 / (1.0 + (-w).exp());
                    s += p;
                    for (k, &l) in row.iter().enumerate() {
                        if use_k[k] && l > 0 {
                            acc[k][usize::from(l) - 1] += p;
                        }
                    }
                }
                (s, acc)
            })
            .collect();
        let mut sum_p = 0.0;
        let mut m_acc: Vec<Vec<f64>> = m.iter().map(|mk| vec![0.0; mk.len()]).collect();
        for (s_block, acc) in partials {
            sum_p += s_block;
            for (x, y) in m_acc.iter_mut().zip(acc) {
                for (p, q) in x.iter_mut().zip(y) {
                    *p += q;
                }
            }
        }
        let new_lambda = (sum_p / n as f64).clamp(1e-9, 1.0 - 1e-9);
        let mut delta = (new_lambda - lambda).abs();
        lambda = new_lambda;
        if update_m {
            for k in 0..m.len() {
                if !use_k[k] {
                    continue;
                }
                // A Dirichlet prior of PRIOR_MATCHES pseudo-matches distributed as the initial m:
                // negligible with thousands of pairs, and it keeps a handful of pairs from
                // teaching that disagreeing is what matches do.
                let prior = initial_m(m_acc[k].len());
                let total: f64 = m_acc[k].iter().sum::<f64>() + PRIOR_MATCHES;
                for ((mv, acc), p0) in m[k].iter_mut().zip(&m_acc[k]).zip(&prior) {
                    let new = (acc + PRIOR_MATCHES * p0) / total;
                    delta = delta.max((new - *mv).abs());
                    *mv = new;
                }
            }
        }
        if delta < 1e-6 {
            break;
        }
    }
    lambda
}

/// Trains the model: u from random pairs, m by EM on each training rule's pairs (each rule's
/// own columns excluded), then the prior by EM on all `candidate` pairs.
pub(crate) fn train(
    settings: &Settings,
    sides: &Sides,
    left: &Table,
    right: Option<&Table>,
    candidate_levels: &[u8],
) -> Model {
    let n_cmp = settings.comparisons.len();
    let u = estimate_u(settings, sides);
    let mut m_sum: Vec<Vec<f64>> = settings
        .comparisons
        .iter()
        .map(|c| vec![0.0; c.n_levels()])
        .collect();
    let mut m_count = vec![0usize; n_cmp];
    let rules = if settings.training_blocking_rules.is_empty() {
        &settings.blocking_rules
    } else {
        &settings.training_blocking_rules
    };
    for rule in rules {
        let pairs = candidates(std::slice::from_ref(rule), left, right);
        let levels = pair_levels(settings, sides, &pairs);
        let use_k: Vec<bool> = settings
            .comparisons
            .iter()
            .map(|c| {
                !rule
                    .columns
                    .iter()
                    .any(|spec| KeyPart::parse(spec).is_ok_and(|p| p.column() == c.column))
            })
            .collect();
        let mut m: Vec<Vec<f64>> = settings
            .comparisons
            .iter()
            .map(|c| initial_m(c.n_levels()))
            .collect();
        let data = EmData {
            levels: &levels,
            n_cmp,
            use_k: &use_k,
            u: &u,
        };
        em(&data, &mut m, 0.5, true, 50);
        for k in 0..n_cmp {
            if use_k[k] {
                for (s, v) in m_sum[k].iter_mut().zip(&m[k]) {
                    *s += v;
                }
                m_count[k] += 1;
            }
        }
    }
    let m: Vec<Vec<f64>> = settings
        .comparisons
        .iter()
        .enumerate()
        .map(|(k, c)| {
            if m_count[k] > 0 {
                m_sum[k].iter().map(|v| v / m_count[k] as f64).collect()
            } else {
                initial_m(c.n_levels())
            }
        })
        .collect();
    // The prior over all pairs: expected matches among the candidates (blocking is assumed to
    // keep nearly every match) over all possible pairs, iterated to its fixed point.
    let use_all = vec![true; n_cmp];
    let n_candidates = (candidate_levels.len() / n_cmp.max(1)) as f64;
    let total = sides.total_pairs().max(1.0);
    let mut lambda = (sides.n_left.min(sides.n_right) as f64 / total).clamp(1e-12, 0.5);
    let mut m_fixed = m.clone();
    for _ in 0..30 {
        let within = lambda * total / n_candidates.max(1.0);
        let data = EmData {
            levels: candidate_levels,
            n_cmp,
            use_k: &use_all,
            u: &u,
        };
        let within = em(
            &data,
            &mut m_fixed,
            within.clamp(1e-12, 1.0 - 1e-9),
            false,
            1,
        );
        // At most one partner per record when linking: λ cannot exceed min(n_l, n_r) / pairs.
        let most = (sides.n_left.min(sides.n_right) as f64 / total).min(0.5);
        let next = (within * n_candidates / total).clamp(1e-15, most);
        if (next - lambda).abs() < lambda * 1e-4 {
            lambda = next;
            break;
        }
        lambda = next;
    }
    Model {
        lambda,
        comparisons: settings
            .comparisons
            .iter()
            .enumerate()
            .map(|(k, c)| ComparisonParams {
                column: c.column.clone(),
                levels: c.level_names(),
                m: m[k].clone(),
                u: u[k].clone(),
                m_trained: m_count[k] > 0,
            })
            .collect(),
        term_frequencies: Vec::new(),
    }
}

/// Scores candidate pairs with the model.
pub(crate) fn score(model: &Model, pairs: &[u64], levels: &[u8], n_cmp: usize) -> Vec<ScoredPair> {
    let prior = model.prior_weight();
    let weights: Vec<Vec<f64>> = model
        .comparisons
        .iter()
        .map(|c| (1..=c.m.len() as u8).map(|l| c.weight(l)).collect())
        .collect();
    pairs
        .par_iter()
        .zip(levels.par_chunks(n_cmp))
        .map(|(&p, row)| {
            let mut w = prior;
            for (k, &l) in row.iter().enumerate() {
                if l > 0 {
                    w += weights[k][usize::from(l) - 1];
                }
            }
            ScoredPair {
                left: (p >> 32) as u32,
                right: (p & 0xFFFF_FFFF) as u32,
                weight: w,
                probability: probability(w),
            }
        })
        .collect()
}

/// Links above `threshold`: with `one_to_one`, each record keeps at most one partner, taken
/// greedily from the highest weight down (ties broken by position, so the result is
/// deterministic).
pub(crate) fn assign(pairs: &[ScoredPair], threshold: f64, one_to_one: bool) -> Vec<(u32, u32)> {
    let mut order: Vec<&ScoredPair> = pairs
        .iter()
        .filter(|p| p.probability >= threshold)
        .collect();
    order.sort_by(|a, b| {
        b.weight
            .total_cmp(&a.weight)
            .then(a.left.cmp(&b.left))
            .then(a.right.cmp(&b.right))
    });
    if !one_to_one {
        return order.iter().map(|p| (p.left, p.right)).collect();
    }
    let mut left_taken = std::collections::HashSet::new();
    let mut right_taken = std::collections::HashSet::new();
    let mut links = Vec::new();
    for p in order {
        if !left_taken.contains(&p.left) && !right_taken.contains(&p.right) {
            left_taken.insert(p.left);
            right_taken.insert(p.right);
            links.push((p.left, p.right));
        }
    }
    links
}

/// Whether the settings link two sources.
pub(crate) fn is_link(settings: &Settings) -> bool {
    settings.link_type == LinkType::LinkOnly
}

/// How one pair's match weight is made: the prior, then each comparison's level and weight.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairExplanation {
    /// Prior weight log2(λ / (1 − λ)).
    pub prior_weight: f64,
    /// Per comparison.
    pub comparisons: Vec<ComparisonExplanation>,
    /// Total match weight.
    pub weight: f64,
    /// Match probability.
    pub probability: f64,
}

/// One comparison of one pair.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComparisonExplanation {
    /// Column.
    pub column: String,
    /// Left value as compared (normalised).
    pub left: String,
    /// Right value as compared.
    pub right: String,
    /// Level reached (`missing` when either side is empty).
    pub level: String,
    /// m of the level.
    pub m: Option<f64>,
    /// u of the level.
    pub u: Option<f64>,
    /// log2(m / u), 0 when missing.
    pub weight: f64,
}

/// Explains the pair (left record `i`, right record `j`) under `model`.
pub fn explain_pair(
    settings: &Settings,
    model: &Model,
    left: &Table,
    right: Option<&Table>,
    i: usize,
    j: usize,
) -> PairExplanation {
    let sides = Sides::new(settings, left, right);
    let mut levels = vec![0u8; settings.comparisons.len()];
    sides.levels(settings, i, j, &mut levels);
    let comparisons: Vec<ComparisonExplanation> = model
        .comparisons
        .iter()
        .zip(&levels)
        .enumerate()
        .map(|(k, (params, &level))| {
            let index = usize::from(level).checked_sub(1);
            ComparisonExplanation {
                column: params.column.clone(),
                left: sides.left[k].text[i].clone(),
                right: sides.right[k].text[j].clone(),
                level: index.map_or("missing".into(), |x| params.levels[x].clone()),
                m: index.map(|x| params.m[x]),
                u: index.map(|x| params.u[x]),
                weight: params.weight(level),
            }
        })
        .collect();
    let weight = model.prior_weight() + comparisons.iter().map(|c| c.weight).sum::<f64>();
    PairExplanation {
        prior_weight: model.prior_weight(),
        comparisons,
        weight,
        probability: probability(weight),
    }
}
