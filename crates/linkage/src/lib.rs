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

mod blocking;
mod cluster;
mod compare;
pub mod identifiers;
pub mod model;
pub mod normalize;
pub mod profile;
pub mod settings;
pub mod table;

use std::time::Instant;

/// A hash map with a fast fixed hasher: counting pairs and coding values hash millions of small
/// keys, where SipHash's protection against chosen keys costs a third of the time.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

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
    /// The observer asked to stop.
    #[error("interrupted")]
    Interrupted,
}

/// Watches a long run: phases with their size, progress, and a way to stop it. Called from the
/// calling thread only.
pub trait Observer {
    /// A phase of `total` units (left records) starts.
    fn phase(&self, _name: &str, _total: u64) {}
    /// `done` units of the phase are finished.
    fn advance(&self, _done: u64) {}
    /// Whether to stop (checked between steps).
    fn stop(&self) -> bool {
        false
    }
}

/// An [`Observer`] that shows nothing and never stops.
pub struct Quiet;

impl Observer for Quiet {}

/// Options of a run that are not settings.
#[derive(Clone, Debug)]
pub struct LinkOptions {
    /// Scored pairs below this probability are not kept in the result (links are always kept).
    pub keep_probability: f64,
    /// Candidate pairs kept in memory with their comparison vectors at most (16 bytes each);
    /// beyond, scoring compares them again.
    pub max_stored_pairs: usize,
    /// Known matching pairs (left record, right record; both in `left` when deduplicating),
    /// to check the links against and, with `train_on_labels`, to estimate m from.
    pub labels: Vec<(u32, u32)>,
    /// m from the labelled pairs' comparison levels instead of EM (the prior still by EM).
    pub train_on_labels: bool,
}

/// The links checked against known matching pairs.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LabelCheck {
    /// Labelled pairs.
    pub labelled_pairs: usize,
    /// Of which linked (in one cluster).
    pub found: usize,
    /// found / labelled pairs.
    pub recall: f64,
    /// Links touching a labelled record.
    pub links_checked: usize,
    /// Of which wrong: a labelled record linked to a record that is not its labelled partner.
    pub wrong_links: usize,
    /// 1 − wrong / checked: precision among the links the labels can judge.
    pub precision: f64,
    /// Harmonic mean of the two.
    pub f1: f64,
    /// Whether m came from these labels.
    pub trained_on_labels: bool,
}

impl Default for LinkOptions {
    fn default() -> LinkOptions {
        LinkOptions {
            keep_probability: 0.01,
            max_stored_pairs: model::MAX_STORED_PAIRS,
            labels: Vec::new(),
            train_on_labels: false,
        }
    }
}

/// Timings of the phases, in seconds of wall time.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Timings {
    /// Normalising and parsing the compared columns.
    pub prepare: f64,
    /// Blocking: candidate pairs.
    pub blocking: f64,
    /// Comparing the candidates and the training pairs once, counting comparison vectors.
    pub comparing: f64,
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
    /// The candidate pairs kept (at or above the keep probability, or linked), scored, in a
    /// fixed order.
    pub pairs: Vec<ScoredPair>,
    /// Accepted links (left, right), right indexing the right table (or the left one for dedupe).
    pub links: Vec<(u32, u32)>,
    /// Cluster of each left record, then of each right record (two sources) — dense ids from 0.
    pub clusters: Vec<usize>,
    /// Candidate pairs compared.
    pub candidates: usize,
    /// Links through a shared valid identifier (also in `links`).
    pub identifier_links: usize,
    /// The pairs sharing a valid identifier (left, right), whether or not they were also scored.
    pub identifier_pairs: Vec<(u32, u32)>,
    /// Identifiers that failed their check (not used).
    pub invalid_identifiers: Vec<identifiers::InvalidIdentifier>,
    /// The links checked against the labels, when some were given.
    pub label_check: Option<LabelCheck>,
    /// Where the time went.
    pub timings: Timings,
}

/// Links `left` with `right` (or deduplicates `left` when `right` is `None`), quietly, with the
/// default options.
pub fn link(
    left: &Table,
    right: Option<&Table>,
    settings: &Settings,
) -> Result<LinkResult, LinkError> {
    link_with(left, right, settings, &LinkOptions::default(), &Quiet)
}

/// Checks the run before any work: sources, settings against the columns, sizes.
fn check(left: &Table, right: Option<&Table>, settings: &Settings) -> Result<(), LinkError> {
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
    let all_pairs = model::pair_count(left.len(), right.map(Table::len));
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
    if model::all_rules(settings).0.len() > blocking::MAX_RULES {
        return Err(LinkError::Data(format!(
            "settings: at most {} distinct blocking and training rules",
            blocking::MAX_RULES
        )));
    }
    if model::Radix::new(settings).is_none() {
        return Err(LinkError::Data(
            "settings: too many comparisons and levels (their product must fit 64 bits)".into(),
        ));
    }
    Ok(())
}

/// Links `left` with `right` (or deduplicates `left` when `right` is `None`).
pub fn link_with(
    left: &Table,
    right: Option<&Table>,
    settings: &Settings,
    options: &LinkOptions,
    observer: &dyn Observer,
) -> Result<LinkResult, LinkError> {
    check(left, right, settings)?;
    if options.train_on_labels && options.labels.is_empty() {
        return Err(LinkError::Data(
            "training on labels needs at least one labelled pair".into(),
        ));
    }
    let n_right = right.map_or(left.len(), Table::len);
    if let Some(&(i, j)) = options
        .labels
        .iter()
        .find(|&&(i, j)| i as usize >= left.len() || j as usize >= n_right)
    {
        return Err(LinkError::Data(format!(
            "labelled pair ({i}, {j}) out of range"
        )));
    }
    let linking = right.is_some();
    let radix = model::Radix::new(settings)
        .ok_or_else(|| LinkError::Data("settings: too many comparison levels".into()))?;
    let mut timings = Timings::default();
    let started = Instant::now();
    let sides = model::Sides::new(settings, left, right);
    timings.prepare = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let (rules, training_index) = model::all_rules(settings);
    let n_blocking = settings.blocking_rules.len();
    let blocker = blocking::Blocker::new(&rules, &settings.comparisons, left, right);
    timings.blocking = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let patterns = model::count_patterns(
        settings,
        &sides,
        &blocker,
        &radix,
        n_blocking,
        options.max_stored_pairs,
        observer,
    )?;
    timings.comparing = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut trained = model::train(
        settings,
        &sides,
        &patterns,
        &radix,
        n_blocking,
        &training_index,
        options.train_on_labels.then_some(options.labels.as_slice()),
    );
    timings.training = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let n = left.len() + right.map_or(0, Table::len);
    let keep = options.keep_probability.min(settings.threshold);
    let (exact, invalid_identifiers) = identifiers::exact_links(&settings.identifiers, left, right);
    // Record numbers: left first, then right (when linking).
    let number = |i: u32, j: u32| -> (usize, usize) {
        let j = if linking {
            left.len() + j as usize
        } else {
            j as usize
        };
        (i as usize, j)
    };
    let cluster_links = |scorer: &model::Scorer, links: &[(u32, u32)], pairs: &[ScoredPair]| {
        if linking && settings.one_to_one {
            let edges: Vec<(usize, usize)> = links.iter().map(|&(i, j)| number(i, j)).collect();
            return cluster::components(n, &edges);
        }
        let known: FastMap<(u32, u32), f64> = pairs
            .iter()
            .map(|p| ((p.left, p.right), p.weight))
            .chain(exact.iter().map(|&pair| (pair, f64::INFINITY)))
            .collect();
        let edges: Vec<(usize, usize, f64)> = links
            .iter()
            .map(|&(i, j)| {
                let (a, b) = number(i, j);
                (a, b, known.get(&(i, j)).copied().unwrap_or(f64::INFINITY))
            })
            .collect();
        cluster::resistant_clusters(n, &edges, settings.threshold, |a, b| {
            let (i, j) = if linking {
                if (a < left.len()) == (b < left.len()) {
                    return None;
                }
                (a.min(b), a.max(b) - left.len())
            } else {
                (a.min(b), a.max(b))
            };
            Some(match known.get(&(i as u32, j as u32)) {
                Some(&w) => w,
                None => scorer.pair_weight(settings, &sides, i, j),
            })
        })
    };
    let score_and_link = |model: &Model| -> Result<_, LinkError> {
        let scorer = model::Scorer::new(model, &sides);
        let pairs = model::score_candidates(
            settings, &sides, &blocker, &patterns, &radix, &scorer, keep, observer,
        )?;
        // Shared valid identifiers link outright; the probabilistic links fill in around them.
        let mut with_exact = pairs.clone();
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
        let clusters = cluster_links(&scorer, &links, &pairs);
        Ok((pairs, links, clusters))
    };
    if settings.comparisons.iter().any(|c| c.term_frequency) {
        // Term frequencies count entities, not records: when deduplicating, a first pass
        // without them finds the clusters, so that the duplicates of one person do not make
        // their name look common.
        let entities = if linking {
            None
        } else {
            let (_, _, clusters) = score_and_link(&trained)?;
            Some(clusters)
        };
        trained.term_frequencies = model::term_frequencies(settings, &sides, entities.as_deref());
    }
    let (pairs, links, clusters) = score_and_link(&trained)?;
    let label_check = (!options.labels.is_empty()).then(|| {
        check_labels(&options.labels, &links, &clusters, left.len(), linking)
            .with_trained(options.train_on_labels)
    });
    timings.prediction = started.elapsed().as_secs_f64();
    Ok(LinkResult {
        model: trained,
        candidates: patterns.candidates,
        identifier_links: exact.len(),
        identifier_pairs: exact,
        invalid_identifiers,
        pairs,
        links,
        clusters,
        label_check,
        timings,
    })
}

impl LabelCheck {
    fn with_trained(mut self, trained: bool) -> LabelCheck {
        self.trained_on_labels = trained;
        self
    }
}

/// Checks links and clusters against labelled pairs.
fn check_labels(
    labels: &[(u32, u32)],
    links: &[(u32, u32)],
    clusters: &[usize],
    n_left: usize,
    linking: bool,
) -> LabelCheck {
    let number = |j: u32| {
        if linking {
            n_left + j as usize
        } else {
            j as usize
        }
    };
    let found = labels
        .iter()
        .filter(|&&(i, j)| clusters[i as usize] == clusters[number(j)])
        .count();
    // Partners of each labelled record, by record number.
    let mut partners: FastMap<usize, Vec<usize>> = FastMap::default();
    for &(i, j) in labels {
        partners.entry(i as usize).or_default().push(number(j));
        partners.entry(number(j)).or_default().push(i as usize);
    }
    let (mut checked, mut wrong) = (0, 0);
    for &(i, j) in links {
        let (a, b) = (i as usize, number(j));
        let known_a = partners.get(&a);
        let known_b = partners.get(&b);
        if known_a.is_none() && known_b.is_none() {
            continue;
        }
        checked += 1;
        let right =
            known_a.is_some_and(|p| p.contains(&b)) || known_b.is_some_and(|p| p.contains(&a));
        if !right {
            wrong += 1;
        }
    }
    let recall = found as f64 / labels.len().max(1) as f64;
    let precision = if checked == 0 {
        1.0
    } else {
        1.0 - wrong as f64 / checked as f64
    };
    let f1 = if recall + precision > 0.0 {
        2.0 * recall * precision / (recall + precision)
    } else {
        0.0
    };
    LabelCheck {
        labelled_pairs: labels.len(),
        found,
        recall,
        links_checked: checked,
        wrong_links: wrong,
        precision,
        f1,
        trained_on_labels: false,
    }
}

#[cfg(test)]
mod tests;
