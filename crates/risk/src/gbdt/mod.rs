//! Histogram gradient-boosted decision trees for binary targets.
//!
//! Written here rather than taken from a crate (see DESIGN.md §6): no Rust GBDT builds on stable with
//! native categorical splits, sample weights, missing values and exact TreeSHAP together, and
//! federated training needs the per-node gradient histograms that this module computes.
//!
//! Shape of the algorithm (as in LightGBM): features are bucketed into at most `max_bin` bins (bin 0
//! = missing); trees grow leaf-wise (best gain first) up to `num_leaves`; each node's histogram of
//! gradient/hessian sums is built for the smaller child and subtracted from the parent for the larger.
//! Numeric splits learn where missing values go. Categorical splits sort categories by
//! gradient/hessian ratio and take the best prefix (one-vs-rest for few categories), with extra L2
//! regularisation `cat_l2` and a minimum count per category `min_data_per_group`.
//!
//! Histograms hold gradient and hessian sums only, built row by row (each row's gradients and bins
//! are read once); split constraints estimate row counts from hessian shares, as LightGBM does,
//! while node covers (TreeSHAP's weights) are exact row counts. Gradients and hessians are
//! summed in fixed point (each rounded to a multiple of 2^-32, [`to_fixed`]), so that every sum
//! is exact and the same bits whatever the order of the additions.
//!
//! The seam for federated training: a tree is grown from node histograms only ([`grow_tree`]
//! asks a [`NodeRows`] for them; [`find_split`] turns one into a split). [`NodeHistogram`]s of
//! disjoint rows binned with the same [`Binning`] add up, exactly, and a `Binning` is learned from
//! summaries of the rows ([`FeatureSummary`]; [`Binning::from_data`] is what [`Booster::train`]
//! does, [`Binning::from_summaries`] merges the summaries of rows held in several places into the
//! same bins) or given ([`Binning::new`], [`Booster::train_with_binning`]). One boosting round is
//! made of public steps that training itself runs: the starting score from [`LabelSums`],
//! [`log_loss_gradients`], [`round_sample`], [`grow_tree`], [`add_leaf_values`]; rows held in
//! several places running them, with the histograms summed, grow the trees of all their rows, bit
//! for bit (without bagging, whose row draws are the pooled rows').
//!
//! Determinism: histogram sums are exact, ties resolve to the lowest index, and sampling uses the
//! seeded [`crate::rng::Rng`], so the same data, configuration and seed give the same trees bit
//! for bit, on any number of threads.

mod binning;
mod compiled;
mod histogram;
mod train;
mod tree;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, FeatureInfo};
pub use binning::{BinnedRows, Binning, BinningError, FeatureBins, FeatureSummary};
pub use compiled::CompiledForest;
pub use histogram::{
    find_split, from_fixed, to_fixed, BinSplit, BinStat, LocalRows, NodeHistogram, NodeRows,
    SplitCandidate, FIXED_ONE,
};
pub use train::{add_leaf_values, grow_tree, log_loss_gradients, round_sample, LabelSums};
pub use tree::{Node, Split, Tree};

/// Training options. No `Default`: [`GbdtConfig::standard`] is the tuned starting point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbdtConfig {
    /// Maximum number of boosting rounds.
    pub n_trees: usize,
    /// Shrinkage applied to every leaf value.
    pub learning_rate: f64,
    /// Maximum leaves per tree (leaf-wise growth).
    pub num_leaves: usize,
    /// Maximum depth; 0 = unlimited.
    pub max_depth: usize,
    /// Minimum rows per leaf.
    pub min_data_in_leaf: usize,
    /// Minimum hessian sum per leaf.
    pub min_sum_hessian: f64,
    /// L2 regularisation of leaf values.
    pub lambda_l2: f64,
    /// Minimum gain to split.
    pub min_gain_to_split: f64,
    /// Maximum bins per feature (at most 256, bin 0 = missing).
    pub max_bin: usize,
    /// Share of features tried per tree.
    pub feature_fraction: f64,
    /// Share of rows used per tree.
    pub bagging_fraction: f64,
    /// Smoothing of the gradient/hessian ratio used to order categories.
    pub cat_smooth: f64,
    /// Extra L2 on categorical splits.
    pub cat_l2: f64,
    /// Maximum categories in the left set of a categorical split.
    pub max_cat_threshold: usize,
    /// Minimum rows for a category to be placed in a split's set.
    pub min_data_per_group: usize,
    /// At most this many categories: try one-vs-rest splits instead of sorted prefixes.
    pub max_cat_to_onehot: usize,
    /// Stop when the validation ROC-AUC has not improved for this many rounds.
    pub early_stopping_rounds: Option<usize>,
    /// Seed for row and feature sampling.
    pub seed: u64,
}

impl GbdtConfig {
    /// Defaults comparable to LightGBM's, tuned on the customs declarations data.
    pub fn standard() -> GbdtConfig {
        GbdtConfig {
            n_trees: 300,
            learning_rate: 0.05,
            num_leaves: 31,
            max_depth: 0,
            min_data_in_leaf: 20,
            min_sum_hessian: 1e-3,
            lambda_l2: 1.0,
            min_gain_to_split: 0.0,
            max_bin: 255,
            feature_fraction: 0.9,
            bagging_fraction: 1.0,
            cat_smooth: 10.0,
            cat_l2: 10.0,
            max_cat_threshold: 32,
            min_data_per_group: 20,
            max_cat_to_onehot: 4,
            early_stopping_rounds: None,
            seed: 42,
        }
    }
}

/// A trained ensemble: `raw(x) = init_score + Σ tree(x)` in log-odds.
///
/// Invariant: `trees` are not changed after the first prediction (the flat copy used by the hot
/// paths is built once, on first use).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Booster {
    /// The columns the model reads, in order.
    pub features: Vec<FeatureInfo>,
    /// Log-odds before any tree.
    pub init_score: f64,
    /// The trees.
    pub trees: Vec<Tree>,
    #[serde(skip)]
    compiled: OnceLock<CompiledForest>,
}

impl PartialEq for Booster {
    fn eq(&self, other: &Booster) -> bool {
        self.features == other.features
            && self.init_score == other.init_score
            && self.trees == other.trees
    }
}

impl Booster {
    /// Trains on `data` (labels and weights included). `valid`, when given, drives early stopping
    /// on ROC-AUC. `on_iteration(done, valid_auc)` is called after each tree; returning `false`
    /// stops training early and keeps the trees built so far (interruption).
    pub fn train(
        data: &Dataset,
        config: &GbdtConfig,
        valid: Option<&Dataset>,
        on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
    ) -> Booster {
        let binning = Binning::from_data(data, config.max_bin);
        train::train(data, config, &binning, valid, on_iteration)
    }

    /// [`Booster::train`] with bins given rather than learned from `data` (`config.max_bin` is
    /// then unused): e.g. the bin edges and vocabularies every node of a federation uses, so
    /// that their histograms add up. `Booster::train` is this with
    /// [`Binning::from_data`]`(data, config.max_bin)`.
    pub fn train_with_binning(
        data: &Dataset,
        config: &GbdtConfig,
        binning: &Binning,
        valid: Option<&Dataset>,
        on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
    ) -> Result<Booster, BinningError> {
        binning.check(data)?;
        Ok(train::train(data, config, binning, valid, on_iteration))
    }

    /// A booster from its parts.
    pub fn new(features: Vec<FeatureInfo>, init_score: f64, trees: Vec<Tree>) -> Booster {
        Booster {
            features,
            init_score,
            trees,
            compiled: OnceLock::new(),
        }
    }

    fn compiled(&self) -> &CompiledForest {
        self.compiled
            .get_or_init(|| CompiledForest::new(&self.trees, self.features.len()))
    }

    /// Raw score (log-odds) of one row.
    pub fn predict_raw(&self, row: &[f64]) -> f64 {
        self.init_score + self.compiled().predict(row)
    }

    /// Raw scores of every row of `data`, in parallel.
    pub fn predict_raw_all(&self, data: &Dataset) -> Vec<f64> {
        use rayon::prelude::*;
        const BLOCK: usize = 64;
        let compiled = self.compiled();
        let mut out = vec![0.0; data.n_rows()];
        out.par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(block, chunk)| {
                compiled.predict_columns(&data.columns, block * BLOCK, chunk);
                chunk.iter_mut().for_each(|s| *s += self.init_score);
            });
        out
    }

    /// Exact contributions of `rows`, explained [`compiled::BATCH`] at a time, in parallel.
    pub fn contributions_rows(&self, rows: &[Vec<f64>]) -> Vec<Vec<f64>> {
        use rayon::prelude::*;
        let n_slots = self.features.len() + 1;
        let mut out = vec![vec![0.0; n_slots]; rows.len()];
        out.par_chunks_mut(compiled::BATCH)
            .zip(rows.par_chunks(compiled::BATCH))
            .for_each(|(out, rows)| {
                let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
                if self.compiled().contributions_batch(&refs, out) {
                    for slots in out.iter_mut() {
                        slots[n_slots - 1] += self.init_score;
                    }
                } else {
                    for (slots, row) in out.iter_mut().zip(rows) {
                        *slots = self.contributions_reference(row);
                    }
                }
            });
        out
    }

    /// Exact TreeSHAP contributions in log-odds: one per feature, then the expected value last.
    /// They sum to [`Booster::predict_raw`].
    pub fn contributions(&self, row: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.features.len() + 1];
        phi[self.features.len()] = self.init_score;
        let mut out = [vec![0.0; self.features.len() + 1]];
        if self.compiled().contributions_batch(&[row], &mut out) {
            let [contributions] = out;
            for (slot, c) in phi.iter_mut().zip(contributions) {
                *slot += c;
            }
            return phi;
        }
        self.contributions_reference(row)
    }

    /// The same contributions by the original TreeSHAP recursion (Lundberg et al. 2018, Algorithm
    /// 2): the reference the fast path is tested against.
    pub fn contributions_reference(&self, row: &[f64]) -> Vec<f64> {
        let mut phi = vec![0.0; self.features.len() + 1];
        phi[self.features.len()] = self.init_score;
        let mut scratch = crate::shap::Scratch::default();
        for tree in &self.trees {
            crate::shap::tree_shap(tree, row, &mut phi, &mut scratch);
        }
        phi
    }
}
