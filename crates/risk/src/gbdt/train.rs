//! Leaf-wise histogram boosting for binary log-loss.

use rayon::prelude::*;

use super::binning::{bin_dataset, BinMapper, BinnedData};
use super::tree::{Node, Split, Tree};
use super::{Booster, GbdtConfig};
use crate::data::Dataset;
use crate::rng::Rng;

/// Gradient and hessian sums of a bin. Row counts are not kept per bin (as in LightGBM): a side's
/// count is estimated from its hessian share of the leaf (`BinStat::count`); node covers, which
/// TreeSHAP needs exactly, come from the row partitions instead.
#[derive(Clone, Copy, Default, Debug)]
struct BinStat {
    g: f64,
    h: f64,
}

impl BinStat {
    fn add(&mut self, other: &BinStat) {
        self.g += other.g;
        self.h += other.h;
    }
    fn minus(&self, other: &BinStat) -> BinStat {
        BinStat {
            g: self.g - other.g,
            h: self.h - other.h,
        }
    }
}

/// Gradient statistics of every bin of every feature, feature after feature
/// (`BinnedData::offsets` says where each feature starts).
type Histogram = Vec<BinStat>;

/// Leaves with fewer rows build their histogram on one thread (a second buffer to zero and merge
/// costs more than it saves).
const PARALLEL_MIN_ROWS: usize = 4096;

#[derive(Clone, Debug)]
enum BinSplit {
    Numeric {
        threshold_bin: u8,
        default_left: bool,
    },
    Categorical {
        left: Vec<bool>,
    },
}

impl BinSplit {
    fn goes_left(&self, bin: u8) -> bool {
        match self {
            BinSplit::Numeric {
                threshold_bin,
                default_left,
            } => {
                if bin == 0 {
                    *default_left
                } else {
                    bin <= *threshold_bin
                }
            }
            BinSplit::Categorical { left } => left[bin as usize],
        }
    }
}

#[derive(Clone, Debug)]
struct Candidate {
    gain: f64,
    feature: usize,
    split: BinSplit,
}

struct Leaf {
    node: usize,
    rows: Vec<u32>,
    hist: Histogram,
    total: BinStat,
    depth: usize,
    best: Option<Candidate>,
}

struct GrowNode {
    split: Option<(usize, BinSplit)>,
    left: u32,
    right: u32,
    value: f64,
    cover: f64,
    gain: f64,
}

pub(super) fn train(
    data: &Dataset,
    config: &GbdtConfig,
    valid: Option<&Dataset>,
    on_iteration: &mut dyn FnMut(usize, Option<f64>) -> bool,
) -> Booster {
    let n_rows = data.n_rows();
    let binned = bin_dataset(data, config.max_bin);
    let labels: Vec<f64> = data
        .labels
        .iter()
        .map(|&y| f64::from(u8::from(y)))
        .collect();
    let weights = &data.weights;
    let init_score = {
        let sum_w: f64 = weights.iter().sum();
        let sum_wy: f64 = weights.iter().zip(&labels).map(|(w, y)| w * y).sum();
        let p = if sum_w > 0.0 { sum_wy / sum_w } else { 0.5 };
        let p = p.clamp(1e-6, 1.0 - 1e-6);
        (p / (1.0 - p)).ln()
    };
    let mut trees: Vec<Tree> = Vec::new();
    let mut scores = vec![init_score; n_rows];
    let mut valid_scores = valid.map(|v| vec![init_score; v.n_rows()]);
    let mut best_metric = f64::NEG_INFINITY;
    let mut best_n_trees = 0usize;
    let mut gradients = vec![0.0; n_rows];
    let mut hessians = vec![0.0; n_rows];

    for iteration in 0..config.n_trees {
        gradients
            .par_iter_mut()
            .zip(hessians.par_iter_mut())
            .enumerate()
            .for_each(|(i, (g, h))| {
                let p = sigmoid(scores[i]);
                *g = (p - labels[i]) * weights[i];
                *h = (p * (1.0 - p)).max(1e-16) * weights[i];
            });
        let mut rng =
            Rng::new(config.seed ^ (iteration as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
        let rows: Vec<u32> = if config.bagging_fraction < 1.0 {
            (0..n_rows as u32)
                .filter(|_| rng.next_f64() < config.bagging_fraction)
                .collect()
        } else {
            (0..n_rows as u32).collect()
        };
        let allowed: Vec<bool> = if config.feature_fraction < 1.0 {
            let n_features = data.n_features();
            let keep = ((n_features as f64 * config.feature_fraction).ceil() as usize).max(1);
            let mut order: Vec<usize> = (0..n_features).collect();
            rng.shuffle(&mut order);
            let mut allowed = vec![false; n_features];
            for &f in &order[..keep] {
                allowed[f] = true;
            }
            allowed
        } else {
            vec![true; data.n_features()]
        };
        let grow = GrowContext {
            binned: &binned,
            gradients: &gradients,
            hessians: &hessians,
            config,
            allowed: &allowed,
        };
        let bagged = rows.len() < n_rows;
        let (nodes, leaf_rows) = grow.grow(rows);
        if bagged {
            // Out-of-bag rows are in no leaf's list: route every row.
            scores.par_iter_mut().enumerate().for_each(|(i, s)| {
                *s += route_binned(&nodes, &binned, i);
            });
        } else {
            for (node, rows) in &leaf_rows {
                let value = nodes[*node].value;
                for &r in rows {
                    scores[r as usize] += value;
                }
            }
        }
        let tree = to_tree(nodes, &binned.mappers);
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

fn route_binned(nodes: &[GrowNode], binned: &BinnedData, row: usize) -> f64 {
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

fn to_tree(nodes: Vec<GrowNode>, mappers: &[BinMapper]) -> Tree {
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

fn raw_split(feature: usize, split: &BinSplit, mapper: &BinMapper) -> Split {
    match (split, mapper) {
        (
            BinSplit::Numeric {
                threshold_bin,
                default_left,
            },
            BinMapper::Numeric { upper_bounds },
        ) => Split::Numeric {
            feature: feature as u32,
            // The last bin's bound is +inf, which JSON cannot hold: every finite value is <= MAX.
            threshold: upper_bounds[*threshold_bin as usize - 1].min(f64::MAX),
            default_left: *default_left,
        },
        (BinSplit::Categorical { left }, BinMapper::Categorical { categories, .. }) => {
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

struct GrowContext<'a> {
    binned: &'a BinnedData,
    gradients: &'a [f64],
    hessians: &'a [f64],
    config: &'a GbdtConfig,
    allowed: &'a [bool],
}

impl GrowContext<'_> {
    /// Grows one tree on `rows`; returns its nodes and, per leaf, the rows that reached it.
    fn grow(&self, rows: Vec<u32>) -> (Vec<GrowNode>, Vec<(usize, Vec<u32>)>) {
        let config = self.config;
        let hist = self.histogram(&rows);
        let total = self.sum_feature0(&hist);
        let mut nodes = vec![GrowNode {
            split: None,
            left: 0,
            right: 0,
            value: self.leaf_value(&total),
            cover: rows.len() as f64,
            gain: 0.0,
        }];
        let mut root = Leaf {
            node: 0,
            rows,
            hist,
            total,
            depth: 0,
            best: None,
        };
        root.best = self.best_split(&root);
        let mut leaves = vec![root];
        while leaves.len() < config.num_leaves.max(2) {
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
            let column = &self.binned.bins[candidate.feature];
            let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = leaf
                .rows
                .iter()
                .partition(|&&r| candidate.split.goes_left(column[r as usize]));
            let (small_rows, small_is_left) = if left_rows.len() <= right_rows.len() {
                (&left_rows, true)
            } else {
                (&right_rows, false)
            };
            let small_hist = self.histogram(small_rows);
            let mut large_hist = leaf.hist;
            for (p, s) in large_hist.iter_mut().zip(&small_hist) {
                *p = p.minus(s);
            }
            let (left_hist, right_hist) = if small_is_left {
                (small_hist, large_hist)
            } else {
                (large_hist, small_hist)
            };
            let left_total = self.sum_feature0(&left_hist);
            let right_total = leaf.total.minus(&left_total);
            let left_node = nodes.len();
            let right_node = left_node + 1;
            for (total, n_rows) in [
                (&left_total, left_rows.len()),
                (&right_total, right_rows.len()),
            ] {
                nodes.push(GrowNode {
                    split: None,
                    left: 0,
                    right: 0,
                    value: self.leaf_value(total),
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
                    rows: left_rows,
                    hist: left_hist,
                    total: left_total,
                    depth: leaf.depth + 1,
                    best: None,
                },
                Leaf {
                    node: right_node,
                    rows: right_rows,
                    hist: right_hist,
                    total: right_total,
                    depth: leaf.depth + 1,
                    best: None,
                },
            ];
            for child in children.iter_mut() {
                child.best = self.best_split(child);
            }
            // Keep leaves ordered by node index so ties resolve deterministically.
            leaves.extend(children);
            leaves.sort_by_key(|l| l.node);
        }
        let leaf_rows = leaves.into_iter().map(|l| (l.node, l.rows)).collect();
        (nodes, leaf_rows)
    }

    fn leaf_value(&self, total: &BinStat) -> f64 {
        -total.g / (total.h + self.config.lambda_l2) * self.config.learning_rate
    }

    fn histogram(&self, rows: &[u32]) -> Histogram {
        let binned = self.binned;
        // Row by row over the row-major copy of the bins: each row's gradient, hessian and bins
        // are read once (column by column would re-read the gradients once per feature). Large
        // leaves in two fixed halves summed at the end, so the result depends on the row count
        // only, never on the threads.

        let one_part = |part: &[u32]| {
            let mut hist = vec![BinStat::default(); binned.total_bins];
            let n_features = binned.offsets.len();
            for &r in part {
                let r = r as usize;
                let (g, h) = (self.gradients[r], self.hessians[r]);
                let row_bins = &binned.row_major[r * n_features..(r + 1) * n_features];
                for (offset, &bin) in binned.offsets.iter().zip(row_bins) {
                    let stat = &mut hist[offset + bin as usize];
                    stat.g += g;
                    stat.h += h;
                }
            }
            hist
        };
        if rows.len() < PARALLEL_MIN_ROWS {
            return one_part(rows);
        }
        let (first, second) = rows.split_at(rows.len() / 2);
        let (mut a, b) = rayon::join(|| one_part(first), || one_part(second));
        for (x, y) in a.iter_mut().zip(&b) {
            x.add(y);
        }
        a
    }

    /// Totals of a leaf: the sum over the bins of any one feature (the first).
    fn sum_feature0(&self, hist: &Histogram) -> BinStat {
        let mut total = BinStat::default();
        if !self.binned.mappers.is_empty() {
            self.feature_hist(hist, 0).iter().for_each(|b| total.add(b));
        }
        total
    }

    fn feature_hist<'h>(&self, hist: &'h Histogram, feature: usize) -> &'h [BinStat] {
        let start = self.binned.offsets[feature];
        &hist[start..start + self.binned.mappers[feature].n_bins()]
    }

    fn best_split(&self, leaf: &Leaf) -> Option<Candidate> {
        let config = self.config;
        if config.max_depth > 0 && leaf.depth >= config.max_depth {
            return None;
        }
        if leaf.rows.len() < 2 * config.min_data_in_leaf || leaf.total.h <= 0.0 {
            return None;
        }
        let rows_per_hessian = leaf.rows.len() as f64 / leaf.total.h;
        let one_feature = |feature: usize| {
            if !self.allowed[feature] {
                return None;
            }
            let hist = self.feature_hist(&leaf.hist, feature);
            match &self.binned.mappers[feature] {
                BinMapper::Numeric { .. } => {
                    self.numeric_split(feature, hist, &leaf.total, rows_per_hessian)
                }
                BinMapper::Categorical { has_other, .. } => {
                    self.categorical_split(feature, hist, &leaf.total, *has_other, rows_per_hessian)
                }
            }
        };
        let n_features = self.binned.mappers.len();
        // Measured: running small leaves on one thread was slower (2.8 s → 4.0 s for 300 trees).
        let candidates: Vec<Option<Candidate>> =
            (0..n_features).into_par_iter().map(one_feature).collect();
        // Highest gain; ties to the lowest feature index (determinism).
        candidates
            .into_iter()
            .flatten()
            .fold(None, |best: Option<Candidate>, c| match best {
                Some(b) if b.gain >= c.gain => Some(b),
                _ => Some(c),
            })
            .filter(|c| c.gain > config.min_gain_to_split)
    }

    fn gain(&self, left: &BinStat, right: &BinStat, total: &BinStat, extra_l2: f64) -> f64 {
        let l2 = self.config.lambda_l2 + extra_l2;
        left.g * left.g / (left.h + l2) + right.g * right.g / (right.h + l2)
            - total.g * total.g / (total.h + l2)
    }

    /// Whether a side has enough rows (estimated from its hessian) and hessian.
    fn admissible(&self, side: &BinStat, rows_per_hessian: f64) -> bool {
        side.h * rows_per_hessian >= self.config.min_data_in_leaf as f64 - 1e-9
            && side.h >= self.config.min_sum_hessian
    }

    fn numeric_split(
        &self,
        feature: usize,
        hist: &[BinStat],
        total: &BinStat,
        rows_per_hessian: f64,
    ) -> Option<Candidate> {
        let missing = hist[0];
        let directions: &[bool] = if missing.h > 0.0 {
            &[false, true]
        } else {
            &[false]
        };
        let mut best: Option<Candidate> = None;
        for &default_left in directions {
            let mut left = if default_left {
                missing
            } else {
                BinStat::default()
            };
            for (b, stat) in hist.iter().enumerate().skip(1) {
                if stat.h == 0.0 {
                    // Same partition as the previous threshold: its gain was already seen.
                    continue;
                }
                left.add(stat);
                let right = total.minus(&left);
                if right.h * rows_per_hessian < self.config.min_data_in_leaf as f64 - 1e-9 {
                    break;
                }
                if !self.admissible(&left, rows_per_hessian)
                    || !self.admissible(&right, rows_per_hessian)
                {
                    continue;
                }
                let gain = self.gain(&left, &right, total, 0.0);
                if best.as_ref().is_none_or(|c| gain > c.gain) {
                    best = Some(Candidate {
                        gain,
                        feature,
                        split: BinSplit::Numeric {
                            threshold_bin: b as u8,
                            default_left,
                        },
                    });
                }
            }
        }
        best
    }

    fn categorical_split(
        &self,
        feature: usize,
        hist: &[BinStat],
        total: &BinStat,
        has_other: bool,
        rows_per_hessian: f64,
    ) -> Option<Candidate> {
        let config = self.config;
        let n_bins = hist.len();
        // The "other" bin (rare categories) never joins the left set: unseen codes go right too.
        let last_eligible = if has_other { n_bins - 1 } else { n_bins };
        let present: Vec<usize> = (0..last_eligible).filter(|&b| hist[b].h > 0.0).collect();
        let mut best: Option<Candidate> = None;
        let mut consider = |set: &[usize], extra_l2: f64| {
            let mut left = BinStat::default();
            for &b in set {
                left.add(&hist[b]);
            }
            let right = total.minus(&left);
            if !self.admissible(&left, rows_per_hessian)
                || !self.admissible(&right, rows_per_hessian)
            {
                return;
            }
            let gain = self.gain(&left, &right, total, extra_l2);
            if best.as_ref().is_none_or(|c| gain > c.gain) {
                let mut mask = vec![false; n_bins];
                for &b in set {
                    mask[b] = true;
                }
                best = Some(Candidate {
                    gain,
                    feature,
                    split: BinSplit::Categorical { left: mask },
                });
            }
        };
        if present.len() <= config.max_cat_to_onehot {
            for &b in &present {
                consider(&[b], 0.0);
            }
            return best;
        }
        let mut keyed: Vec<(f64, usize)> = present
            .into_iter()
            .filter(|&b| hist[b].h * rows_per_hessian >= config.min_data_per_group as f64)
            .map(|b| (hist[b].g / (hist[b].h + config.cat_smooth), b))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut sorted: Vec<usize> = keyed.into_iter().map(|(_, b)| b).collect();
        let max_k = config.max_cat_threshold.min(sorted.len().saturating_sub(1));
        for k in 1..=max_k {
            consider(&sorted[..k], config.cat_l2);
        }
        sorted.reverse();
        for k in 1..=max_k {
            consider(&sorted[..k], config.cat_l2);
        }
        best
    }
}
