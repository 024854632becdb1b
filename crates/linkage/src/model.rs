//! The Fellegi–Sunter model: u by random sampling, m by EM on the pairs of each training rule,
//! the prior by EM on all candidates, term frequencies, match weights, and the assignment of
//! links.
//!
//! EM never sees pairs one by one: candidates are streamed once and counted by comparison
//! vector (the levels of every comparison, as one integer) and by the rules they agree on, so
//! training costs the same at a million pairs as at a billion, and memory holds only the few
//! thousand distinct vectors.

use std::collections::BTreeMap;

use borderlens_domain::rng::Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::blocking::{Blocker, Candidate};
use crate::compare::{self, Prepared};
use crate::settings::{BlockingRule, KeyPart, LinkType, Settings};
use crate::table::Table;
use crate::{FastMap, LinkError, Observer};

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

/// How often each value of a column is held, for term-frequency adjustments: agreeing exactly
/// on a rare value weighs more than agreeing on a common one.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TermFrequencies {
    /// Column.
    pub column: String,
    /// Share of entities holding each value held by at least two entities.
    pub values: BTreeMap<String, f64>,
    /// Share of a value held by one entity (and of any value not listed).
    pub single: f64,
    /// Entities counted: records, or clusters of a first pass when deduplicating (so that a
    /// name is not made common by the duplicates of one person).
    pub entities: usize,
}

impl TermFrequencies {
    /// Share of entities holding `value`.
    pub fn share(&self, value: &str) -> f64 {
        self.values.get(value).copied().unwrap_or(self.single)
    }
}

/// The trained model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Model {
    /// Prior probability that two records drawn at random match.
    pub lambda: f64,
    /// Per comparison.
    pub comparisons: Vec<ComparisonParams>,
    /// Per comparison, its term frequencies when it has `term_frequency` (else `null`).
    #[serde(default)]
    pub term_frequencies: Vec<Option<TermFrequencies>>,
}

impl Model {
    /// Prior weight log2(λ / (1 − λ)).
    pub fn prior_weight(&self) -> f64 {
        (self.lambda / (1.0 - self.lambda)).log2()
    }

    /// Weight of the exact level of comparison `k` on a value held by a share `share` of
    /// entities: log2(m_exact / share), never below 0 (agreeing is never evidence against).
    pub fn tf_exact_weight(&self, k: usize, share: f64) -> f64 {
        (self.comparisons[k].m[0] / share).log2().max(0.0)
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
    /// `None` when deduplicating: the right side is the left one.
    right: Option<Vec<Prepared>>,
    /// Codes of every comparison, record by record (`record × comparisons + k`).
    left_codes: Vec<u32>,
    right_codes: Option<Vec<u32>>,
    pub(crate) n_left: usize,
    pub(crate) n_right: usize,
    pub(crate) dedupe: bool,
}

impl Sides {
    pub(crate) fn new(settings: &Settings, left: &Table, right: Option<&Table>) -> Sides {
        let empty = crate::table::Column::new();
        let mut l = Vec::new();
        let mut r = Vec::new();
        for c in &settings.comparisons {
            let lv = left.column(&c.column).unwrap_or(&empty);
            let rv = right.map(|t| t.column(&c.column).unwrap_or(&empty));
            let (pl, pr) = compare::prepare(c, lv, rv);
            l.push(pl);
            r.extend(pr);
        }
        // Value codes record by record (all comparisons of a record in one cache line): a pair's
        // exact and missing levels are settled without touching the columns.
        let interleave = |side: &[Prepared], n: usize| -> Vec<u32> {
            let mut codes = vec![0u32; n * side.len()];
            for (k, p) in side.iter().enumerate() {
                for (r, &code) in p.codes.iter().enumerate() {
                    codes[r * side.len() + k] = code;
                }
            }
            codes
        };
        let left_codes = interleave(&l, left.len());
        let right_codes = right.map(|t| interleave(&r, t.len()));
        Sides {
            left_codes,
            right_codes,
            left: l,
            right: right.map(|_| r),
            n_left: left.len(),
            n_right: right.map_or(left.len(), Table::len),
            dedupe: right.is_none(),
        }
    }

    /// The right side's prepared column of comparison `k`.
    pub(crate) fn right(&self, k: usize) -> &Prepared {
        &self.right.as_ref().unwrap_or(&self.left)[k]
    }

    /// Levels of pair (i, j) for every comparison.
    pub(crate) fn levels(&self, settings: &Settings, i: usize, j: usize, out: &mut [u8]) {
        let n = settings.comparisons.len();
        let left_codes = &self.left_codes[i * n..(i + 1) * n];
        let right_codes = self.right_codes.as_ref().unwrap_or(&self.left_codes);
        let right_codes = &right_codes[j * n..(j + 1) * n];
        for (k, c) in settings.comparisons.iter().enumerate() {
            out[k] = compare::level_coded(
                c,
                &self.left[k],
                i,
                left_codes[k],
                self.right(k),
                j,
                right_codes[k],
            );
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

/// Comparison vectors as integers: the level of comparison k is digit k in base
/// (levels + 1, the missing level included).
pub(crate) struct Radix {
    place: Vec<u64>,
    base: Vec<u64>,
}

impl Radix {
    /// `None` when the vectors do not fit 64 bits (far beyond any sensible settings).
    pub(crate) fn new(settings: &Settings) -> Option<Radix> {
        let mut place = Vec::new();
        let mut base = Vec::new();
        let mut p: u64 = 1;
        for c in &settings.comparisons {
            let b = c.n_levels() as u64 + 1;
            place.push(p);
            base.push(b);
            p = p.checked_mul(b)?;
        }
        Some(Radix { place, base })
    }

    fn encode(&self, levels: &[u8]) -> u64 {
        levels
            .iter()
            .zip(&self.place)
            .map(|(&l, p)| u64::from(l) * p)
            .sum()
    }

    fn decode(&self, code: u64, out: &mut [u8]) {
        for (k, slot) in out.iter_mut().enumerate() {
            *slot = ((code / self.place[k]) % self.base[k]) as u8;
        }
    }
}

/// The candidates counted by comparison vector and rule set.
pub(crate) struct Patterns {
    /// (vector, rule set, pairs), sorted by vector then rule set.
    pub(crate) counts: Vec<(u64, u32, f64)>,
    /// Candidate pairs of the blocking rules.
    pub(crate) candidates: usize,
    /// The blocking candidates with their vectors, in order, when they fit
    /// [`MAX_STORED_PAIRS`]: scoring then needs no second comparison.
    stored: Option<Vec<StoredChunk>>,
}

/// The blocking candidates of a chunk of left records, 8 bytes a pair: the right record and the
/// index of its comparison vector in the chunk's own list of vectors.
struct StoredChunk {
    first_left: usize,
    /// Candidates of each left record of the chunk, in order.
    per_left: Vec<u32>,
    pairs: Vec<(u32, u32)>,
    vectors: Vec<u64>,
}

/// Candidates kept with their vectors at most (8 bytes each: 512 MB); beyond, scoring compares
/// the pairs again, so memory stays bounded whatever the number of pairs.
pub(crate) const MAX_STORED_PAIRS: usize = 64_000_000;

/// Left records per unit of parallel work, and per progress step.
const CHUNK: usize = 1024;
const STEP: usize = 64 * CHUNK;

/// Runs `work` over the left records in parallel chunks, in order, reporting progress and
/// stopping when asked. Results come back in the order of the chunks.
fn over_left<T: Send>(
    n_left: usize,
    phase: &str,
    observer: &dyn Observer,
    work: impl Fn(std::ops::Range<usize>) -> T + Sync,
) -> Result<Vec<T>, LinkError> {
    observer.phase(phase, n_left as u64);
    let mut out = Vec::new();
    let mut start = 0;
    while start < n_left {
        if observer.stop() {
            return Err(LinkError::Interrupted);
        }
        let end = (start + STEP).min(n_left);
        let chunks: Vec<std::ops::Range<usize>> = (start..end)
            .step_by(CHUNK)
            .map(|a| a..(a + CHUNK).min(end))
            .collect();
        out.extend(chunks.into_par_iter().map(&work).collect::<Vec<T>>());
        start = end;
        observer.advance(end as u64);
    }
    Ok(out)
}

/// Counts the candidates of `blocker` by comparison vector and rule set. Rules below
/// `n_blocking` are blocking rules; the others only train.
pub(crate) fn count_patterns(
    settings: &Settings,
    sides: &Sides,
    blocker: &Blocker,
    radix: &Radix,
    n_blocking: usize,
    max_stored: usize,
    observer: &dyn Observer,
) -> Result<Patterns, LinkError> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let stored_pairs = AtomicUsize::new(0);
    let n_cmp = settings.comparisons.len();
    let blocking_mask = if n_blocking >= 32 {
        u32::MAX
    } else {
        (1u32 << n_blocking) - 1
    };
    let parts = over_left(
        sides.n_left,
        "comparing candidate pairs",
        observer,
        |range| {
            let mut counts: FastMap<(u64, u32), u64> = FastMap::default();
            let mut candidates = 0usize;
            let mut partners: Vec<Candidate> = Vec::new();
            let mut levels = vec![0u8; n_cmp];
            let first_left = range.start;
            let mut stored = Some(StoredChunk {
                first_left,
                per_left: Vec::with_capacity(range.len()),
                pairs: Vec::new(),
                vectors: Vec::new(),
            });
            let mut local: FastMap<u64, u32> = FastMap::default();
            for i in range {
                partners.clear();
                blocker.candidates_of(i, &mut partners);
                let mut kept = 0u32;
                for c in &partners {
                    sides.levels(settings, i, c.right as usize, &mut levels);
                    let vector = radix.encode(&levels);
                    *counts.entry((vector, c.rules)).or_default() += 1;
                    if c.rules & blocking_mask != 0 {
                        candidates += 1;
                        if let Some(chunk) = stored.as_mut() {
                            let next = chunk.vectors.len() as u32;
                            let id = *local.entry(vector).or_insert(next);
                            if id == next {
                                chunk.vectors.push(vector);
                            }
                            chunk.pairs.push((c.right, id));
                            kept += 1;
                        }
                    }
                }
                if let Some(chunk) = stored.as_mut() {
                    chunk.per_left.push(kept);
                }
                if stored.is_some()
                    && stored_pairs.fetch_add(partners.len(), Ordering::Relaxed) > max_stored
                {
                    stored = None;
                }
            }
            (counts, candidates, stored)
        },
    )?;
    let mut all: FastMap<(u64, u32), u64> = FastMap::default();
    let mut candidates = 0;
    let overflow = stored_pairs.load(Ordering::Relaxed) > max_stored;
    let mut stored = (!overflow).then(Vec::new);
    for (counts, n, list) in parts {
        candidates += n;
        for (key, v) in counts {
            *all.entry(key).or_default() += v;
        }
        match (stored.as_mut(), list) {
            (Some(all), Some(list)) => all.push(list),
            _ => stored = None,
        }
    }
    let mut counts: Vec<(u64, u32, f64)> = all
        .into_iter()
        .map(|((p, r), v)| (p, r, v as f64))
        .collect();
    counts.sort_by_key(|&(p, r, _)| (p, r));
    Ok(Patterns {
        counts,
        candidates,
        stored,
    })
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
            if let Some(exact) = exact_share(&sides.left[k], sides.right(k), sides.dedupe) {
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

/// Records per value code (index = code; code 0, missing, not counted).
fn code_counts(p: &Prepared) -> Vec<f64> {
    let top = p.codes.iter().copied().max().unwrap_or(0) as usize;
    let mut counts = vec![0.0; top + 1];
    for &c in &p.codes {
        if c != 0 {
            counts[c as usize] += 1.0;
        }
    }
    counts
}

/// Share of non-missing random pairs that agree exactly, from value frequencies.
fn exact_share(left: &Prepared, right: &Prepared, dedupe: bool) -> Option<f64> {
    let l = code_counts(left);
    let n_l: f64 = l.iter().sum();
    if dedupe {
        let pairs = n_l * (n_l - 1.0);
        (pairs > 0.0).then(|| l.iter().map(|c| c * (c - 1.0)).sum::<f64>() / pairs)
    } else {
        let r = code_counts(right);
        let n_r: f64 = r.iter().sum();
        (n_l * n_r > 0.0).then(|| l.iter().zip(&r).map(|(a, b)| a * b).sum::<f64>() / (n_l * n_r))
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

/// The level-wise median of several estimates of m, renormalised to sum to 1.
fn median_m(estimates: &[Vec<f64>]) -> Vec<f64> {
    let levels = estimates.first().map_or(0, Vec::len);
    let median: Vec<f64> = (0..levels)
        .map(|l| {
            let mut v: Vec<f64> = estimates.iter().map(|e| e[l]).collect();
            v.sort_by(f64::total_cmp);
            let n = v.len();
            if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            }
        })
        .collect();
    let total: f64 = median.iter().sum();
    median
        .iter()
        .map(|v| v / total.max(f64::MIN_POSITIVE))
        .collect()
}

/// What EM runs over: distinct comparison vectors (row-major levels) with their pair counts,
/// which comparisons count, and the fixed u.
struct EmData<'a> {
    levels: &'a [u8],
    counts: &'a [f64],
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
        counts,
        n_cmp,
        use_k,
        u,
    } = *data;
    let n: f64 = counts.iter().sum();
    if n == 0.0 {
        return lambda;
    }
    for _ in 0..iterations {
        let log_bf: Vec<Vec<f64>> = m
            .iter()
            .zip(u)
            .map(|(mk, uk)| mk.iter().zip(uk).map(|(a, b)| (a / b).ln()).collect())
            .collect();
        let prior = (lambda / (1.0 - lambda)).ln();
        // Distinct vectors are few (thousands): one thread, summed in their sorted order, so the
        // same input gives the same model.
        let mut sum_p = 0.0;
        let mut m_acc: Vec<Vec<f64>> = m.iter().map(|mk| vec![0.0; mk.len()]).collect();
        for (row, &count) in levels.chunks(n_cmp.max(1)).zip(counts) {
            let mut w = prior;
            for (k, &l) in row.iter().enumerate() {
                if use_k[k] && l > 0 {
                    w += log_bf[k][usize::from(l) - 1];
                }
            }
            let p = count / (1.0 + (-w).exp());
            sum_p += p;
            for (k, &l) in row.iter().enumerate() {
                if use_k[k] && l > 0 {
                    m_acc[k][usize::from(l) - 1] += p;
                }
            }
        }
        let new_lambda = (sum_p / n).clamp(1e-9, 1.0 - 1e-9);
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
        if delta < 1e-7 {
            break;
        }
    }
    lambda
}

/// The vectors of the pairs whose rule set meets `mask`, merged by vector: (levels row-major,
/// counts).
fn vectors(patterns: &Patterns, radix: &Radix, n_cmp: usize, mask: u32) -> (Vec<u8>, Vec<f64>) {
    let mut levels = Vec::new();
    let mut counts: Vec<f64> = Vec::new();
    let mut last = None;
    let mut row = vec![0u8; n_cmp];
    for &(p, rules, c) in &patterns.counts {
        if rules & mask == 0 {
            continue;
        }
        if last == Some(p) {
            if let Some(total) = counts.last_mut() {
                *total += c;
            }
            continue;
        }
        last = Some(p);
        radix.decode(p, &mut row);
        levels.extend_from_slice(&row);
        counts.push(c);
    }
    (levels, counts)
}

/// The rules of a run: the blocking rules, then the training rules that are not also blocking
/// rules. Returns them and, per training rule, its index among them.
pub(crate) fn all_rules(settings: &Settings) -> (Vec<&BlockingRule>, Vec<usize>) {
    let mut rules: Vec<&BlockingRule> = settings.blocking_rules.iter().collect();
    let training = if settings.training_blocking_rules.is_empty() {
        &settings.blocking_rules
    } else {
        &settings.training_blocking_rules
    };
    let mut index = Vec::new();
    for rule in training {
        match rules.iter().position(|r| *r == rule) {
            Some(i) => index.push(i),
            None => {
                index.push(rules.len());
                rules.push(rule);
            }
        }
    }
    (rules, index)
}

/// Trains the model: u from random pairs, m by EM on each training rule's pairs (each rule's
/// own columns excluded), then the prior by EM on the blocking candidates.
pub(crate) fn train(
    settings: &Settings,
    sides: &Sides,
    patterns: &Patterns,
    radix: &Radix,
    n_blocking: usize,
    training_index: &[usize],
    labels: Option<&[(u32, u32)]>,
) -> Model {
    let n_cmp = settings.comparisons.len();
    let u = estimate_u(settings, sides);
    // Each rule's estimate of each comparison's m; combined by the median, not the mean: a rule
    // whose pairs hold a second kind of near-match (people of one household share an address)
    // teaches EM that class, and one such rule must not drag every estimate.
    let mut m_by_rule: Vec<Vec<Vec<f64>>> = vec![Vec::new(); n_cmp];
    let (all_rules, _) = all_rules(settings);
    for &r in training_index {
        let rule = all_rules[r];
        let (levels, counts) = vectors(patterns, radix, n_cmp, 1 << r);
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
            counts: &counts,
            n_cmp,
            use_k: &use_k,
            u: &u,
        };
        em(&data, &mut m, 0.5, true, 200);
        for k in 0..n_cmp {
            if use_k[k] && !counts.is_empty() {
                m_by_rule[k].push(m[k].clone());
            }
        }
    }
    let mut m_count: Vec<usize> = m_by_rule.iter().map(Vec::len).collect();
    let mut m: Vec<Vec<f64>> = settings
        .comparisons
        .iter()
        .enumerate()
        .map(|(k, c)| {
            if m_count[k] > 0 {
                median_m(&m_by_rule[k])
            } else {
                initial_m(c.n_levels())
            }
        })
        .collect();
    if let Some(labels) = labels {
        m = m_from_labels(settings, sides, labels);
        m_count.iter_mut().for_each(|c| *c = labels.len());
    }
    // The prior over all pairs: expected matches among the candidates (blocking is assumed to
    // keep nearly every match) over all possible pairs, iterated to its fixed point.
    let blocking_mask = if n_blocking >= 32 {
        u32::MAX
    } else {
        (1u32 << n_blocking) - 1
    };
    let (levels, counts) = vectors(patterns, radix, n_cmp, blocking_mask);
    let use_all = vec![true; n_cmp];
    let n_candidates = patterns.candidates as f64;
    let total = sides.total_pairs().max(1.0);
    let mut lambda = (sides.n_left.min(sides.n_right) as f64 / total).clamp(1e-12, 0.5);
    let mut m_fixed = m.clone();
    for _ in 0..30 {
        let within = lambda * total / n_candidates.max(1.0);
        let data = EmData {
            levels: &levels,
            counts: &counts,
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
        // Within one source an entity may have many records (a firm filing a hundred times is
        // 4,950 matching pairs), so no such bound holds: the expected duplicates are what EM
        // finds among the candidates.
        let most = if sides.dedupe {
            0.5
        } else {
            (sides.n_left.min(sides.n_right) as f64 / total).min(0.5)
        };
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
        term_frequencies: vec![None; n_cmp],
    }
}

/// m as the level shares among labelled matching pairs, with the same Dirichlet prior as EM.
fn m_from_labels(settings: &Settings, sides: &Sides, labels: &[(u32, u32)]) -> Vec<Vec<f64>> {
    let mut levels = vec![0u8; settings.comparisons.len()];
    let mut counts: Vec<Vec<f64>> = settings
        .comparisons
        .iter()
        .map(|c| vec![0.0; c.n_levels()])
        .collect();
    for &(i, j) in labels {
        sides.levels(settings, i as usize, j as usize, &mut levels);
        for (k, &l) in levels.iter().enumerate() {
            if l > 0 {
                counts[k][usize::from(l) - 1] += 1.0;
            }
        }
    }
    counts
        .iter()
        .map(|acc| {
            let prior = initial_m(acc.len());
            let total: f64 = acc.iter().sum::<f64>() + PRIOR_MATCHES;
            acc.iter()
                .zip(&prior)
                .map(|(a, p0)| (a + PRIOR_MATCHES * p0) / total)
                .collect()
        })
        .collect()
}

/// Term frequencies of the comparisons with `term_frequency`: entities holding each value.
/// `entity` gives each record's entity (left records first, then right ones); `None` counts
/// every record as its own entity.
pub(crate) fn term_frequencies(
    settings: &Settings,
    sides: &Sides,
    entity: Option<&[usize]>,
) -> Vec<Option<TermFrequencies>> {
    settings
        .comparisons
        .iter()
        .enumerate()
        .map(|(k, c)| {
            if !c.term_frequency {
                return None;
            }
            let left = &sides.left[k];
            let mut held: Vec<(usize, u32)> = Vec::new();
            held.extend(left.codes.iter().enumerate().map(|(r, &code)| (r, code)));
            if !sides.dedupe {
                let right = sides.right(k);
                held.extend(
                    right
                        .codes
                        .iter()
                        .enumerate()
                        .map(|(r, &code)| (sides.n_left + r, code)),
                );
            }
            let mut by_entity: Vec<(usize, u32)> = held
                .into_iter()
                .filter(|&(_, code)| code != 0)
                .map(|(r, code)| (entity.map_or(r, |e| e[r]), code))
                .collect();
            by_entity.par_sort_unstable();
            by_entity.dedup();
            let entities = {
                let mut e: Vec<usize> = by_entity.iter().map(|&(e, _)| e).collect();
                e.dedup();
                e.len()
            };
            let mut per_code: FastMap<u32, usize> = FastMap::default();
            for &(_, code) in &by_entity {
                *per_code.entry(code).or_default() += 1;
            }
            // A code's text: the first record holding it.
            let mut text_of: FastMap<u32, String> = FastMap::default();
            for r in 0..sides.n_left {
                let code = left.codes[r];
                if per_code.get(&code).is_some_and(|&n| n >= 2) {
                    text_of
                        .entry(code)
                        .or_insert_with(|| left.key(r).unwrap_or_default());
                }
            }
            if !sides.dedupe {
                let right = sides.right(k);
                for r in 0..sides.n_right {
                    let code = right.codes[r];
                    if per_code.get(&code).is_some_and(|&n| n >= 2) {
                        text_of
                            .entry(code)
                            .or_insert_with(|| right.key(r).unwrap_or_default());
                    }
                }
            }
            let n = entities.max(1) as f64;
            Some(TermFrequencies {
                column: c.column.clone(),
                values: text_of
                    .into_iter()
                    .map(|(code, text)| (text, per_code[&code] as f64 / n))
                    .collect(),
                single: 1.0 / n,
                entities,
            })
        })
        .collect()
}

/// The weight of each level of each comparison, and of the exact level per value where term
/// frequencies apply.
pub(crate) struct Scorer {
    prior: f64,
    weights: Vec<Vec<f64>>,
    /// Per comparison with term frequencies: exact-level weight per value code.
    tf: Vec<Option<Vec<f64>>>,
}

impl Scorer {
    pub(crate) fn new(model: &Model, sides: &Sides) -> Scorer {
        let weights = model
            .comparisons
            .iter()
            .map(|c| (1..=c.m.len() as u8).map(|l| c.weight(l)).collect())
            .collect();
        let tf = model
            .term_frequencies
            .iter()
            .enumerate()
            .map(|(k, tf)| {
                let tf = tf.as_ref()?;
                let left = &sides.left[k];
                let right = sides.right(k);
                let top = left
                    .codes
                    .iter()
                    .chain(&right.codes)
                    .copied()
                    .max()
                    .unwrap_or(0) as usize;
                let mut by_code = vec![f64::NAN; top + 1];
                for side in [left, right] {
                    for r in 0..side.codes.len() {
                        let code = side.codes[r] as usize;
                        if code != 0 && by_code[code].is_nan() {
                            let share = side.key(r).map_or(tf.single, |key| tf.share(&key));
                            by_code[code] = model.tf_exact_weight(k, share);
                        }
                    }
                }
                Some(by_code)
            })
            .collect();
        Scorer {
            prior: model.prior_weight(),
            weights,
            tf,
        }
    }

    /// Match weight of pair (i, j) with these levels.
    pub(crate) fn weight(&self, sides: &Sides, i: usize, levels: &[u8]) -> f64 {
        let mut w = self.prior;
        for (k, &l) in levels.iter().enumerate() {
            if l == 0 {
                continue;
            }
            if l == 1 {
                if let Some(tf) = &self.tf[k] {
                    w += tf[sides.left[k].codes[i] as usize];
                    continue;
                }
            }
            w += self.weights[k][usize::from(l) - 1];
        }
        w
    }

    /// Match weight of any pair (i, j), compared now.
    pub(crate) fn pair_weight(
        &self,
        settings: &Settings,
        sides: &Sides,
        i: usize,
        j: usize,
    ) -> f64 {
        let mut levels = vec![0u8; settings.comparisons.len()];
        sides.levels(settings, i, j, &mut levels);
        self.weight(sides, i, &levels)
    }
}

/// Scores the blocking candidates (rules below `n_blocking`), keeping the pairs at or above
/// probability `keep`, in a fixed order (left record, rule, right record).
#[allow(clippy::too_many_arguments)]
pub(crate) fn score_candidates(
    settings: &Settings,
    sides: &Sides,
    blocker: &Blocker,
    patterns: &Patterns,
    radix: &Radix,
    scorer: &Scorer,
    keep: f64,
    observer: &dyn Observer,
) -> Result<Vec<ScoredPair>, LinkError> {
    let n_blocking = settings.blocking_rules.len();
    let n_cmp = settings.comparisons.len();
    let blocking_mask = if n_blocking >= 32 {
        u32::MAX
    } else {
        (1u32 << n_blocking) - 1
    };
    if let Some(stored) = &patterns.stored {
        let parts: Vec<Vec<ScoredPair>> = stored
            .par_iter()
            .map(|chunk| {
                // Each vector's levels once; the weight then needs only the pair's own term
                // frequencies.
                let mut row = vec![0u8; n_cmp];
                let levels: Vec<Vec<u8>> = chunk
                    .vectors
                    .iter()
                    .map(|&v| {
                        radix.decode(v, &mut row);
                        row.clone()
                    })
                    .collect();
                let mut kept = Vec::new();
                let mut pairs = chunk.pairs.iter();
                for (offset, &n) in chunk.per_left.iter().enumerate() {
                    let i = chunk.first_left + offset;
                    for &(right, id) in pairs.by_ref().take(n as usize) {
                        let weight = scorer.weight(sides, i, &levels[id as usize]);
                        let probability = probability(weight);
                        if probability >= keep {
                            kept.push(ScoredPair {
                                left: i as u32,
                                right,
                                weight,
                                probability,
                            });
                        }
                    }
                }
                kept
            })
            .collect();
        return Ok(parts.into_iter().flatten().collect());
    }
    let parts = over_left(sides.n_left, "scoring candidate pairs", observer, |range| {
        let mut kept = Vec::new();
        let mut partners: Vec<Candidate> = Vec::new();
        let mut levels = vec![0u8; n_cmp];
        for i in range {
            partners.clear();
            blocker.candidates_of(i, &mut partners);
            for c in &partners {
                if c.rules & blocking_mask == 0 {
                    continue;
                }
                sides.levels(settings, i, c.right as usize, &mut levels);
                let weight = scorer.weight(sides, i, &levels);
                let probability = probability(weight);
                if probability >= keep {
                    kept.push(ScoredPair {
                        left: i as u32,
                        right: c.right,
                        weight,
                        probability,
                    });
                }
            }
        }
        kept
    })?;
    Ok(parts.into_iter().flatten().collect())
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
    /// Share of entities holding the agreed value, when a term-frequency adjustment replaced u.
    pub term_frequency: Option<f64>,
    /// log2(m / u) (or log2(m / term frequency)), 0 when missing.
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
            let tf = model.term_frequencies.get(k).and_then(Option::as_ref);
            let term_frequency = match (level, tf) {
                (1, Some(tf)) => Some(sides.left[k].key(i).map_or(tf.single, |v| tf.share(&v))),
                _ => None,
            };
            ComparisonExplanation {
                column: params.column.clone(),
                left: sides.left[k].text[i].to_string(),
                right: sides.right(k).text[j].to_string(),
                level: index.map_or("missing".into(), |x| params.levels[x].clone()),
                m: index.map(|x| params.m[x]),
                u: index.map(|x| params.u[x]),
                term_frequency,
                weight: term_frequency.map_or(params.weight(level), |share| {
                    model.tf_exact_weight(k, share)
                }),
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
