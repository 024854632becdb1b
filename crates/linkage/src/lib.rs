//! Record linkage: link trade records that share no key.
//!
//! - [`settings`]: blocking rules and comparisons with levels, as a TOML/JSON file.
//! - [`normalize`]: text, company-name and address normalisation for trade parties.
//! - [`identifiers`]: exact links through ISO 6346 container numbers, UPU S10 ids and transport
//!   document numbers, each checked first; invalid ones are reported, never used.
//! - [`link`]: Fellegi–Sunter linkage of two tables (or deduplication of one): candidate pairs
//!   from blocking rules, u by random sampling, m by EM, match weights and probabilities, then a
//!   one-to-one assignment (two sources) or clusters (one source).
//!
//! Architecture invariant: takes records (string columns) and returns pairs, weights and
//! clusters; never touches the store, reads no files.
#![deny(missing_docs)]

mod compare;
pub mod identifiers;
pub mod model;
pub mod normalize;
pub mod profile;
pub mod settings;
pub mod table;

use std::time::Instant;

pub use model::{Model, ScoredPair};
pub use settings::{Settings, SettingsError};
pub use table::Table;

/// Why a linkage cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Settings that do not fit the data.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// Data that cannot be linked.
    #[error("{0}")]
    Data(String),
}

/// Timings of the phases, in seconds of wall time.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    /// Normalising and parsing the compared columns.
    pub prepare: f64,
    /// Blocking: candidate pairs.
    pub blocking: f64,
    /// u sampling and EM.
    pub training: f64,
    /// Comparing and scoring the candidates, and assigning links.
    pub prediction: f64,
}

/// The outcome of a linkage run.
#[derive(Clone, Debug)]
pub struct LinkResult {
    /// The trained model.
    pub model: Model,
    /// Every candidate pair, scored.
    pub pairs: Vec<ScoredPair>,
    /// Accepted links (left, right), right indexing the right table (or the left one for dedupe).
    pub links: Vec<(u32, u32)>,
    /// Cluster of each left record, then of each right record (two sources) — dense ids from 0.
    pub clusters: Vec<usize>,
    /// Candidate pairs compared.
    pub candidates: usize,
    /// Links through a shared valid identifier (also in `links`).
    pub identifier_links: usize,
    /// Identifiers that failed their check (not used).
    pub invalid_identifiers: Vec<identifiers::InvalidIdentifier>,
    /// Where the time went.
    pub timings: Timings,
}

/// Links `left` with `right` (or deduplicates `left` when `right` is `None`).
pub fn link(
    left: &Table,
    right: Option<&Table>,
    settings: &Settings,
) -> Result<LinkResult, LinkError> {
    let linking = model::is_link(settings);
    if linking != right.is_some() {
        return Err(LinkError::Data(if linking {
            "link_only settings need two sources (--right)".into()
        } else {
            "dedupe_only settings take one source (no --right)".into()
        }));
    }
    for table in std::iter::once(left).chain(right) {
        if table.is_empty() {
            return Err(LinkError::Data(format!("{}: no records", table.name)));
        }
        settings
            .validate(&table.columns)
            .map_err(|e| LinkError::Data(format!("{}: {e}", table.name)))?;
        if table.len() > u32::MAX as usize {
            return Err(LinkError::Data(format!("{}: too many records", table.name)));
        }
    }
    let all_pairs = crate::model::pair_count(left.len(), right.map(Table::len));
    let rules = settings
        .blocking_rules
        .iter()
        .chain(&settings.training_blocking_rules);
    for (i, rule) in rules.enumerate() {
        if rule.columns.is_empty() && all_pairs > settings::MAX_FULL_PAIRS {
            return Err(LinkError::Data(format!(
                "blocking rule {} names no column, so it would compare all {all_pairs:.0} pairs \
                 (at most {:.0}): name columns to agree on",
                i + 1,
                settings::MAX_FULL_PAIRS
            )));
        }
    }
    let mut timings = Timings::default();
    let started = Instant::now();
    let sides = model::Sides::new(settings, left, right);
    timings.prepare = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let pairs = model::candidates(&settings.blocking_rules, left, right);
    timings.blocking = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let levels = model::pair_levels(settings, &sides, &pairs);
    let compare_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let trained = model::train(settings, &sides, left, right, &levels);
    timings.training = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let n_cmp = settings.comparisons.len();
    let scored = model::score(&trained, &pairs, &levels, n_cmp);
    // Shared valid identifiers link outright; the probabilistic links fill in around them.
    let (exact, invalid_identifiers) = identifiers::exact_links(&settings.identifiers, left, right);
    let mut with_exact = scored.clone();
    with_exact.extend(exact.iter().map(|&(l, r)| ScoredPair {
        left: l,
        right: r,
        weight: f64::INFINITY,
        probability: 1.0,
    }));
    let links = model::assign(
        &with_exact,
        settings.threshold,
        linking && settings.one_to_one,
    );
    let clusters = clusters(left.len(), right.map(Table::len), &links);
    timings.prediction = started.elapsed().as_secs_f64() + compare_seconds;
    Ok(LinkResult {
        model: trained,
        candidates: pairs.len(),
        identifier_links: exact.len(),
        invalid_identifiers,
        pairs: scored,
        links,
        clusters,
        timings,
    })
}

/// Connected components of the links; records are numbered left first, then right.
fn clusters(n_left: usize, n_right: Option<usize>, links: &[(u32, u32)]) -> Vec<usize> {
    let n = n_left + n_right.unwrap_or(0);
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(a, b) in links {
        let a = a as usize;
        let b = if n_right.is_some() {
            n_left + b as usize
        } else {
            b as usize
        };
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut dense = std::collections::HashMap::new();
    (0..n)
        .map(|x| {
            let root = find(&mut parent, x);
            let next = dense.len();
            *dense.entry(root).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests;
