//! Leaf-wise histogram boosting for binary log-loss.

use rayon::prelude::*;

use super::binning::{BinnedRows, Binning, FeatureBins};
use super::histogram::{
    find_split, from_fixed, to_fixed, BinSplit, BinStat, LocalRows, NodeHistogram, NodeRows,
    SplitCandidate,
};
use super::tree::{Node, Split, Tree};
use super::{Booster, GbdtConfig};
use crate::data::Dataset;
use crate::rng::Rng;

/// Fixed-point sums ([`super::to_fixed`]) of some rows' weights and weighted labels: what the
/// starting score of boosting is computed from. Sums of disjoint rows add up exactly, so the
/// holders of rows in several places get the starting score of all their rows.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct LabelSums {
    /// Number of rows.
    pub n_rows: u64,
    /// Sum of the weights, in units of 2^-32.
    pub weight: i64,
    /// Sum of the weights of positive rows, in units of 2^-32.
    pub positive_weight: i64,
}

impl LabelSums {
    /// The sums of rows with these labels and weights.
    pub fn of(labels: &[bool], weights: &[f64]) -> LabelSums {
        let mut sums = LabelSums {
            n_rows: labels.len() as u64,
            ..LabelSums::default()
        };
        for (&y, &w) in labels.iter().zip(weights) {
            let w = to_fixed(w);
            sums.weight = sums.weight.saturating_add(w);
            if y {
                sums.positive_weight = sums.positive_weight.saturating_add(w);
            }
        }
        sums
    }

    /// Adds the sums of other rows.
    pub fn add(&mut self, other: &LabelSums) {
        self.n_rows += other.n_rows;
        self.weight = self.weight.saturating_add(other.weight);
        self.positive_weight = self.positive_weight.saturating_add(other.positive_weight);
    }

    /// Whether histograms of these rows stay exact: the weights are not negative and sum to less
    /// than 2^30 (about 1.07e9), so that no gradient or hessian sum leaves the fixed-point range.
    pub fn check(&self) -> Result<(), String> {
        if self.weight < 0 || self.positive_weight < 0 || self.positive_weight > self.weight {
            return Err(format!(
                "weights sum to {}, positive rows' to {}: weights must not be negative",
                from_fixed(self.weight),
                from_fixed(self.positive_weight)
            ));
        }
        if self.weight >= i64::MAX / 2 {
            return Err(format!(
                "weights sum to {} or more, they must sum to less than 2^30 (fixed-point histograms)",
                from_fixed(self.weight)
            ));
        }
        Ok(())
    }

    /// The starting score (log-odds of the weighted positive share).
    pub fn init_score(&self) -> f64 {
        let p = if self.weight > 0 {
            self.positive_weight as f64 / self.weight as f64
        } else {
            0.5
        };
        let p = p.clamp(1e-6, 1.0 - 1e-6);
        (p / (1.0 - p)).ln()
    }
}

/// Log-loss gradients and hessians of rows with these raw `scores`, labels and weights, in fixed
/// point ([`super::to_fixed`]; a hessian is at least one unit, so every row weighs in a node):
/// one boosting round's, row by row, as training computes them.
pub fn log_loss_gradients(
    scores: &[f64],
    labels: &[bool],
    weights: &[f64],
    gradients: &mut [i64],
    hessians: &mut [i64],
) {
    gradients
        .par_iter_mut()
        .zip(hessians.par_iter_mut())
        .enumerate()
        .for_each(|(i, (g, h))| {
            let p = sigmoid(scores[i]);
            let y = f64::from(u8::from(labels[i]));
            *g = to_fixed((p - y) * weights[i]);
            *h = to_fixed((p * (1.0 - p)).max(1e-16) * weights[i]).max(1);
        });
}

/// The rows (bagging) and features (feature fraction) of boosting round `iteration` (from 0) of
/// `n_rows` rows and `n_features` features, drawn as training draws them. With
/// `config.bagging_fraction` 1 every row is used and the features do not depend on `n_rows`:
/// holders of rows in several places draw the same features.
pub fn round_sample(
    config: &GbdtConfig,
    n_rows: usize,
    n_features: usize,
    iteration: usize,
) -> (Vec<u32>, Vec<bool>) {
    let mut rng = Rng::new(config.seed ^ (iteration as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let rows: Vec<u32> = if config.bagging_fraction < 1.0 {
        (0..n_rows as u32)
            .filter(|_| rng.next_f64() < config.bagging_fraction)
            .collect()
    } else {
        (0..n_rows as u32).collect()
    };
    let allowed: Vec<bool> = if config.feature_fraction < 1.0 {
        let keep = ((n_features as f64 * config.feature_fraction).ceil() as usize).max(1);
        let mut order: Vec<usize> = (0..n_features).collect();
        rng.shuffle(&mut order);
        let mut allowed = vec![false; n_features];
        for &f in &order[..keep] {
            allowed[f] = true;
        }
        allowed
    } else {
        vec![true; n_features]
    };
    (rows, allowed)
}

/// Adds a grown tree's leaf values to the scores of the rows in its leaves (`leaves`: each leaf's
/// node id and rows, as [`LocalRows::into_leaves`] gives them), as training does.
pub fn add_leaf_values(tree: &Tree, leaves: &[(usize, Vec<u32>)], scores: &mut [f64]) {
    for (node, rows) in leaves {
        let value = tree.nodes[*node].value;
        for &r in rows {
            scores[r as usize] += value;
        }
    }
}

struct Leaf {
    node: usize,
    hist: NodeHistogram,
    total: BinStat,
    depth: usize,
    best: Option<SplitCandidate>,
}

struct GrowNode {
    split: Option<(usize, BinSplit)>,
    left: u32,
    right: u32,
    value: f64,
    cover: f64,
    gain: f64,
}

/// Boosts trees on `data`, binned by `binning` (which fits `data`: [`Binning::check`]).
pub(super) fn train(
    data: &Dataset,
    config: &GbdtConfig,
    binning: &Binning,
    valid: Option<&Dataset>,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Booster {
    let n_rows = data.n_rows();
    let binned = binning.bin_rows(data);
    let weights = &data.weights;
    let sums = LabelSums::of(&data.labels, weights);
    if let Err(e) = sums.check() {
        panic!("{e}");
    }
    let init_score = sums.init_score();
    let mut trees: Vec<Tree> = Vec::new();
    let mut scores = vec![init_score; n_rows];
    let mut valid_scores = valid.map(|v| vec![init_score; v.n_rows()]);
    let mut best_metric = f64::NEG_INFINITY;
    let mut best_n_trees = 0usize;
    let mut gradients = vec![0; n_rows];
    let mut hessians = vec![0; n_rows];

    for iteration in 0..config.n_trees {
        log_loss_gradients(
            &scores,
            &data.labels,
            weights,
            &mut gradients,
            &mut hessians,
        );
        let (rows, allowed) = round_sample(config, n_rows, data.n_features(), iteration);
        let bagged = rows.len() < n_rows;
        let mut local = LocalRows::new(binning, &binned, &gradients, &hessians, rows);
        let nodes = match grow(binning, config, &allowed, &mut local) {
            Ok(nodes) => nodes,
            Err(never) => match never {},
        };
        if bagged {
            // Out-of-bag rows are in no leaf's list: route every row.
            scores.par_iter_mut().enumerate().for_each(|(i, s)| {
                *s += route_binned(&nodes, &binned, i);
            });
        }
        let leaves = local.into_leaves();
        let tree = to_tree(nodes, binning);
        if !bagged {
            add_leaf_values(&tree, &leaves, &mut scores);
        }
        if let (Some(valid), Some(valid_scores)) = (valid, valid_scores.as_mut()) {
            let single =
                super::CompiledForest::new(std::slice::from_ref(&tree), valid.n_features());
            valid_scores
                .par_chunks_mut(256)
                .enumerate()
                .for_each(|(block, chunk)| {
                    let mut added = vec![0.0; chunk.len()];
                    single.predict_columns(&valid.columns, block * 256, &mut added);
                    chunk.iter_mut().zip(added).for_each(|(s, a)| *s += a);
                });
        }
        trees.push(tree);
        let metric = match (valid, valid_scores.as_ref()) {
            (Some(valid), Some(valid_scores)) => {
                let m = crate::metrics::roc_auc(valid_scores, &valid.labels);
                if m > best_metric + 1e-9 {
                    best_metric = m;
                    best_n_trees = trees.len();
                }
                Some(m)
            }
            _ => None,
        };
        if !on_iteration(iteration + 1, metric) {
            break;
        }
        if let Some(rounds) = config.early_stopping_rounds {
            if valid.is_some() && trees.len() >= best_n_trees + rounds {
                break;
            }
        }
    }
    if valid.is_some() && config.early_stopping_rounds.is_some() && best_n_trees > 0 {
        trees.truncate(best_n_trees);
    }
    Booster::new(data.features.clone(), init_score, trees)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn route_binned(nodes: &[GrowNode], binned: &BinnedRows, row: usize) -> f64 {
    let mut index = 0usize;
    loop {
        let node = &nodes[index];
        match &node.split {
            None => return node.value,
            Some((feature, split)) => {
                index = if split.goes_left(binned.bins[*feature][row]) {
                    node.left as usize
                } else {
                    node.right as usize
                };
            }
        }
    }
}

fn to_tree(nodes: Vec<GrowNode>, binning: &Binning) -> Tree {
    let mappers = binning.features();
    let mut tree = Tree {
        nodes: nodes
            .into_iter()
            .map(|node| Node {
                split: node
                    .split
                    .map(|(feature, split)| raw_split(feature, &split, &mappers[feature])),
                left: node.left,
                right: node.right,
                value: node.value,
                cover: node.cover,
                gain: node.gain,
            })
            .collect(),
    };
    tree.fill_internal_values();
    tree
}

fn raw_split(feature: usize, split: &BinSplit, mapper: &FeatureBins) -> Split {
    match (split, mapper) {
        (
            BinSplit::Numeric {
                threshold_bin,
                default_left,
            },
            FeatureBins::Numeric { upper_bounds },
        ) => Split::Numeric {
            feature: feature as u32,
            // The last bin's bound is +inf, which JSON cannot hold: every finite value is <= MAX.
            threshold: upper_bounds[*threshold_bin as usize - 1].min(f64::MAX),
            default_left: *default_left,
        },
        (BinSplit::Categorical { left }, FeatureBins::Categorical { categories, .. }) => {
            let mut codes: Vec<u32> = categories
                .iter()
                .enumerate()
                .filter(|(i, _)| left[i + 1])
                .map(|(_, &c)| c)
                .collect();
            codes.sort_unstable();
            Split::Categorical {
                feature: feature as u32,
                left: codes,
                missing_left: left[0],
            }
        }
        // A bin split always matches its feature's mapper kind.
        _ => unreachable!("split kind does not match feature kind"),
    }
}

/// Grows one tree leaf-wise (best gain first, up to `config.num_leaves` leaves and
/// `config.max_depth`) on the histograms that `rows` gives, splitting on the features `allowed`;
/// the tree is in raw units of `binning`'s features.
///
/// Each split asks `rows` for the histogram of the child with fewer rows and takes the other
/// child's as the parent's less that one. Given [`LocalRows`] of a dataset, this is the tree
/// [`super::Booster::train`] grows for those gradients; given rows held in several places whose
/// histograms are summed, it grows the tree of all their rows. Fails with the first error of
/// `rows`.
pub fn grow_tree<R: NodeRows>(
    binning: &Binning,
    config: &GbdtConfig,
    allowed: &[bool],
    rows: &mut R,
) -> Result<Tree, R::Error> {
    Ok(to_tree(grow(binning, config, allowed, rows)?, binning))
}

/// Grows one tree; returns its nodes in bins.
fn grow<R: NodeRows>(
    binning: &Binning,
    config: &GbdtConfig,
    allowed: &[bool],
    rows: &mut R,
) -> Result<Vec<GrowNode>, R::Error> {
    let best_split = |leaf: &Leaf| {
        if config.max_depth > 0 && leaf.depth >= config.max_depth {
            return None;
        }
        find_split(&leaf.hist, &leaf.total, binning, config, allowed)
    };
    let hist = rows.root()?;
    let total = hist.total(binning);
    let mut nodes = vec![GrowNode {
        split: None,
        left: 0,
        right: 0,
        value: leaf_value(config, &total),
        cover: hist.n_rows() as f64,
        gain: 0.0,
    }];
    let mut root = Leaf {
        node: 0,
        hist,
        total,
        depth: 0,
        best: None,
    };
    root.best = best_split(&root);
    let mut leaves = vec![root];
    while leaves.len() < config.num_leaves.max(2) {
        {
            // What may be split next, best first (ties: the lower node, as the pick below).
            let mut candidates: Vec<(usize, usize, &BinSplit, f64)> = leaves
                .iter()
                .filter_map(|l| {
                    l.best
                        .as_ref()
                        .map(|b| (l.node, b.feature, &b.split, b.gain))
                })
                .collect();
            candidates.sort_by(|a, b| b.3.total_cmp(&a.3));
            candidates.truncate(config.num_leaves.max(2) - leaves.len());
            let ahead: Vec<(usize, usize, &BinSplit)> =
                candidates.iter().map(|&(n, f, s, _)| (n, f, s)).collect();
            rows.ahead(&ahead);
        }
        let pick = leaves
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.best.as_ref().map(|b| (i, b.gain)))
            .fold(None::<(usize, f64)>, |acc, (i, g)| match acc {
                Some((_, best)) if best >= g => acc,
                _ => Some((i, g)),
            });
        let Some((leaf_index, _)) = pick else { break };
        let leaf = leaves.swap_remove(leaf_index);
        let Some(candidate) = leaf.best.clone() else {
            break;
        };
        let left_node = nodes.len();
        let right_node = left_node + 1;
        let (left_rows, right_rows) = rows.split(
            leaf.node,
            candidate.feature,
            &candidate.split,
            left_node,
            right_node,
        )?;
        let small_is_left = left_rows <= right_rows;
        let small_hist = rows.histogram(if small_is_left { left_node } else { right_node })?;
        let mut large_hist = leaf.hist;
        large_hist.subtract(&small_hist);
        let (left_hist, right_hist) = if small_is_left {
            (small_hist, large_hist)
        } else {
            (large_hist, small_hist)
        };
        let left_total = left_hist.total(binning);
        let right_total = leaf.total.minus(&left_total);
        for (total, n_rows) in [(&left_total, left_rows), (&right_total, right_rows)] {
            nodes.push(GrowNode {
                split: None,
                left: 0,
                right: 0,
                value: leaf_value(config, total),
                cover: n_rows as f64,
                gain: 0.0,
            });
        }
        let parent = &mut nodes[leaf.node];
        parent.split = Some((candidate.feature, candidate.split.clone()));
        parent.left = left_node as u32;
        parent.right = right_node as u32;
        parent.gain = candidate.gain;
        let mut children = [
            Leaf {
                node: left_node,
                hist: left_hist,
                total: left_total,
                depth: leaf.depth + 1,
                best: None,
            },
            Leaf {
                node: right_node,
                hist: right_hist,
                total: right_total,
                depth: leaf.depth + 1,
                best: None,
            },
        ];
        for child in children.iter_mut() {
            child.best = best_split(child);
        }
        // Keep leaves ordered by node index so ties resolve deterministically.
        leaves.extend(children);
        leaves.sort_by_key(|l| l.node);
    }
    Ok(nodes)
}

/// The leaf's output. Exact hessian sums are never negative; noisy ones (differential privacy in
/// federated training) may be, and a negative denominator would flip the leaf's sign: read as 0.
fn leaf_value(config: &GbdtConfig, total: &BinStat) -> f64 {
    -total.gradient() / (total.hessian().max(0.0) + config.lambda_l2) * config.learning_rate
}
