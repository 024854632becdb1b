//! Isolation forest (Liu, Ting & Zhou, 2008) for the rare-threat framing.
//!
//! Labels are ignored: the forest learns how easy it is to *isolate* a declaration by random
//! axis-parallel cuts. Points that are isolated in few cuts are unusual; the score is
//! `s(x) = 2^(−E[h(x)] / c(ψ))` in `(0, 1]`, where `h` is the path length in one tree, `ψ` the
//! per-tree sample size and `c(ψ)` the average path length of an unsuccessful search in a binary
//! search tree of `ψ` points. Scores near 1 are anomalous, scores well below 0.5 are normal.
//!
//! Extensions to the original algorithm, needed for declaration data:
//! - **Missing values** (`NaN`) on a numeric feature are treated as *below the minimum*: they always
//!   go to the left branch of a numeric split, and a node whose sample has both missing and present
//!   values can be split even when the present values are constant.
//! - **Categorical features** are split on a random non-empty proper subset of the categories present
//!   in the node sample ("missing" counts as one more category). At scoring time a code that was not
//!   present in the node sample goes to the right branch.
//! - At each node the feature is drawn uniformly among the features that can still split the node
//!   sample (non-constant), as in common implementations; a node with no such feature is a leaf.
//!
//! Determinism: one seed is drawn per tree from `Rng::new(seed)` before the (parallel) build, so the
//! same data, config and seed give the same forest, whatever the number of threads.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, FeatureKind};
use crate::rng::Rng;

/// Euler–Mascheroni constant, used in the harmonic-number approximation of `c(n)`.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// Hyper-parameters of [`IsolationForest::fit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForestConfig {
    /// Number of isolation trees (the paper's default is 100).
    pub n_trees: usize,
    /// Rows sub-sampled (without replacement) per tree, `ψ` (the paper's default is 256). Capped at
    /// the number of rows; the tree height limit is `ceil(log2 ψ)`.
    pub sample_size: usize,
}

impl IsolationForestConfig {
    /// The paper's recommended settings: 100 trees of 256 sampled rows.
    pub fn standard() -> IsolationForestConfig {
        IsolationForestConfig {
            n_trees: 100,
            sample_size: 256,
        }
    }
}

/// One node of an isolation tree; children are indices into the tree's node vector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Node {
    /// External node holding `size` sample rows.
    Leaf { size: usize },
    /// `x[feature] < threshold` or missing goes left, otherwise right.
    Numeric {
        feature: usize,
        threshold: f64,
        left: usize,
        right: usize,
    },
    /// Codes in `left_codes` (sorted) go left, and missing goes left if `missing_left`;
    /// everything else (including codes unseen in the node sample) goes right.
    Categorical {
        feature: usize,
        left_codes: Vec<u32>,
        missing_left: bool,
        left: usize,
        right: usize,
    },
}

/// One isolation tree; `nodes[0]` is the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ITree {
    nodes: Vec<Node>,
}

/// A fitted isolation forest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IsolationForest {
    trees: Vec<ITree>,
    /// Effective per-tree sample size `ψ`.
    sample_size: usize,
    /// `c(ψ)`, the normaliser of the mean path length.
    c_psi: f64,
    /// Number of features seen at fit time.
    n_features: usize,
}

/// Average path length of an unsuccessful BST search among `n` points, `c(n)` in the paper.
fn average_path_length(n: usize) -> f64 {
    match n {
        0 | 1 => 0.0,
        2 => 1.0,
        _ => {
            let n = n as f64;
            2.0 * ((n - 1.0).ln() + EULER_GAMMA) - 2.0 * (n - 1.0) / n
        }
    }
}

/// Category code of a stored value, `None` for missing.
fn code_of(v: f64) -> Option<u32> {
    if v.is_nan() {
        None
    } else {
        // Codes are small non-negative integers stored as f64; `as` saturates odd values.
        Some(v as u32)
    }
}

/// State for building one tree.
struct Builder<'a> {
    data: &'a Dataset,
    rng: Rng,
    height_limit: usize,
    nodes: Vec<Node>,
}

/// A split chosen for a node, before the children are built.
enum Split {
    Numeric {
        feature: usize,
        threshold: f64,
    },
    Categorical {
        feature: usize,
        left_codes: Vec<u32>,
        missing_left: bool,
    },
}

impl Split {
    fn goes_left(&self, get: impl Fn(usize) -> f64) -> bool {
        match self {
            Split::Numeric { feature, threshold } => {
                let v = get(*feature);
                v.is_nan() || v < *threshold
            }
            Split::Categorical {
                feature,
                left_codes,
                missing_left,
            } => match code_of(get(*feature)) {
                None => *missing_left,
                Some(c) => left_codes.binary_search(&c).is_ok(),
            },
        }
    }
}

impl Builder<'_> {
    /// Builds the subtree over `rows` at `depth`, returns its node index.
    fn build(&mut self, rows: &mut [usize], depth: usize) -> usize {
        let index = self.nodes.len();
        self.nodes.push(Node::Leaf { size: rows.len() });
        if depth >= self.height_limit || rows.len() <= 1 {
            return index;
        }
        let Some(split) = self.choose_split(rows) else {
            return index;
        };
        let data = self.data;
        // Stable in-place partition: left rows first.
        let mut n_left = 0;
        for i in 0..rows.len() {
            let r = rows[i];
            if split.goes_left(|f| data.columns[f][r]) {
                rows.swap(i, n_left);
                n_left += 1;
            }
        }
        if n_left == 0 || n_left == rows.len() {
            // Cannot happen with the split rules below, but a leaf is the safe answer.
            return index;
        }
        let (left_rows, right_rows) = rows.split_at_mut(n_left);
        let left = self.build(left_rows, depth + 1);
        let right = self.build(right_rows, depth + 1);
        self.nodes[index] = match split {
            Split::Numeric { feature, threshold } => Node::Numeric {
                feature,
                threshold,
                left,
                right,
            },
            Split::Categorical {
                feature,
                left_codes,
                missing_left,
            } => Node::Categorical {
                feature,
                left_codes,
                missing_left,
                left,
                right,
            },
        };
        index
    }

    /// Draws a random split among the features that can separate `rows`; `None` if none can.
    fn choose_split(&mut self, rows: &[usize]) -> Option<Split> {
        let data = self.data;
        // Per candidate feature: what is needed to draw its split.
        enum Candidate {
            Numeric {
                min: f64,
                max: f64,
                any_missing: bool,
            },
            Categorical {
                codes: Vec<u32>,
                any_missing: bool,
            },
        }
        let mut candidates: Vec<(usize, Candidate)> = Vec::new();
        for (feature, info) in data.features.iter().enumerate() {
            let column = &data.columns[feature];
            match info.kind {
                FeatureKind::Numeric => {
                    let mut min = f64::INFINITY;
                    let mut max = f64::NEG_INFINITY;
                    let mut any_missing = false;
                    for &r in rows {
                        let v = column[r];
                        if v.is_nan() {
                            any_missing = true;
                        } else {
                            min = min.min(v);
                            max = max.max(v);
                        }
                    }
                    let any_present = min <= max;
                    if any_present && (max > min || any_missing) {
                        candidates.push((
                            feature,
                            Candidate::Numeric {
                                min,
                                max,
                                any_missing,
                            },
                        ));
                    }
                }
                FeatureKind::Categorical { .. } => {
                    let mut codes: Vec<u32> = Vec::new();
                    let mut any_missing = false;
                    for &r in rows {
                        match code_of(column[r]) {
                            None => any_missing = true,
                            Some(c) => codes.push(c),
                        }
                    }
                    codes.sort_unstable();
                    codes.dedup();
                    if codes.len() + usize::from(any_missing) >= 2 {
                        candidates.push((feature, Candidate::Categorical { codes, any_missing }));
                    }
                }
            }
        }
        if candidates.is_empty() {
            return None;
        }
        let pick = self.rng.below(candidates.len());
        let (feature, candidate) = candidates.swap_remove(pick);
        Some(match candidate {
            Candidate::Numeric {
                min,
                max,
                any_missing,
            } => {
                let threshold = if max > min {
                    // Uniform in (min, max]: `min` always goes left, `max` always goes right.
                    let mut u = self.rng.next_f64();
                    if u == 0.0 {
                        u = 0.5;
                    }
                    let mut t = min + u * (max - min);
                    if !t.is_finite() {
                        // `max - min` overflowed on extreme values: use the midpoint.
                        t = min / 2.0 + max / 2.0;
                    }
                    if t <= min {
                        // Rounding collapsed onto `min` (adjacent floats): cut just below `max`.
                        t = max;
                    }
                    t.min(max)
                } else {
                    // Present values are constant but some are missing: isolate the missing ones.
                    debug_assert!(any_missing);
                    min
                };
                Split::Numeric { feature, threshold }
            }
            Candidate::Categorical { codes, any_missing } => {
                // Items are the present codes plus (optionally) "missing" as the last item.
                let n_items = codes.len() + usize::from(any_missing);
                let mut in_left = vec![false; n_items];
                loop {
                    for flag in in_left.iter_mut() {
                        *flag = self.rng.next_u64() & 1 == 1;
                    }
                    let n = in_left.iter().filter(|&&b| b).count();
                    if n > 0 && n < n_items {
                        break;
                    }
                }
                let left_codes = codes
                    .iter()
                    .zip(&in_left)
                    .filter(|(_, &b)| b)
                    .map(|(&c, _)| c)
                    .collect();
                let missing_left = any_missing && in_left[n_items - 1];
                Split::Categorical {
                    feature,
                    left_codes,
                    missing_left,
                }
            }
        })
    }
}

impl ITree {
    /// Path length `h(x)`: edges traversed plus `c(size)` for the leaf's unbuilt subtree.
    fn path_length(&self, get: &impl Fn(usize) -> f64) -> f64 {
        let mut index = 0;
        let mut depth = 0usize;
        loop {
            match &self.nodes[index] {
                Node::Leaf { size } => return depth as f64 + average_path_length(*size),
                Node::Numeric {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    let v = get(*feature);
                    index = if v.is_nan() || v < *threshold {
                        *left
                    } else {
                        *right
                    };
                }
                Node::Categorical {
                    feature,
                    left_codes,
                    missing_left,
                    left,
                    right,
                } => {
                    let goes_left = match code_of(get(*feature)) {
                        None => *missing_left,
                        Some(c) => left_codes.binary_search(&c).is_ok(),
                    };
                    index = if goes_left { *left } else { *right };
                }
            }
            depth += 1;
        }
    }
}

impl IsolationForest {
    /// Fits `config.n_trees` isolation trees, each on `min(config.sample_size, n_rows)` rows drawn
    /// without replacement. Labels and weights are ignored. Deterministic in `seed`.
    pub fn fit(data: &Dataset, config: &IsolationForestConfig, seed: u64) -> IsolationForest {
        let n_rows = data.n_rows();
        let sample_size = config.sample_size.max(1).min(n_rows);
        let n_trees = if n_rows == 0 { 0 } else { config.n_trees };
        let height_limit = (sample_size.max(2) as f64).log2().ceil() as usize;
        let mut master = Rng::new(seed);
        let tree_seeds: Vec<u64> = (0..n_trees).map(|_| master.next_u64()).collect();
        let trees = tree_seeds
            .into_par_iter()
            .map(|tree_seed| {
                let mut rng = Rng::new(tree_seed);
                // Partial Fisher–Yates: the first `sample_size` entries are a uniform sample.
                let mut all: Vec<usize> = (0..n_rows).collect();
                for i in 0..sample_size {
                    let j = i + rng.below(n_rows - i);
                    all.swap(i, j);
                }
                all.truncate(sample_size);
                let mut builder = Builder {
                    data,
                    rng,
                    height_limit,
                    nodes: Vec::new(),
                };
                builder.build(&mut all, 0);
                ITree {
                    nodes: builder.nodes,
                }
            })
            .collect();
        IsolationForest {
            trees,
            sample_size,
            c_psi: average_path_length(sample_size),
            n_features: data.n_features(),
        }
    }

    /// Number of trees in the forest.
    pub fn n_trees(&self) -> usize {
        self.trees.len()
    }

    /// Effective per-tree sample size `ψ` (the configured size capped at the training row count).
    pub fn sample_size(&self) -> usize {
        self.sample_size
    }

    /// Anomaly score of one row (values in training column order), in `(0, 1]`; higher is more
    /// anomalous. Features beyond the end of `row` are read as missing. A forest fitted on fewer
    /// than two rows (or with no trees) cannot rank anything and returns the neutral 0.5.
    pub fn score_row(&self, row: &[f64]) -> f64 {
        self.score_with(|f| row.get(f).copied().unwrap_or(f64::NAN))
    }

    /// Anomaly scores of all rows of `data` (same columns as at fit time), computed in parallel;
    /// the result is identical to calling [`IsolationForest::score_row`] on each row.
    pub fn score_all(&self, data: &Dataset) -> Vec<f64> {
        let n_features = self.n_features.min(data.n_features());
        (0..data.n_rows())
            .into_par_iter()
            .map(|i| {
                self.score_with(|f| {
                    if f < n_features {
                        data.columns[f][i]
                    } else {
                        f64::NAN
                    }
                })
            })
            .collect()
    }

    fn score_with(&self, get: impl Fn(usize) -> f64) -> f64 {
        if self.trees.is_empty() || self.c_psi <= 0.0 {
            return 0.5;
        }
        let total: f64 = self.trees.iter().map(|t| t.path_length(&get)).sum();
        let mean = total / self.trees.len() as f64;
        2f64.powf(-mean / self.c_psi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FeatureInfo;

    /// Approximately standard normal (sum of 12 uniforms minus 6).
    fn gauss(rng: &mut Rng) -> f64 {
        (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0
    }

    fn numeric(name: &str) -> FeatureInfo {
        FeatureInfo {
            name: name.to_string(),
            kind: FeatureKind::Numeric,
        }
    }

    fn cloud_with_outlier() -> Dataset {
        let mut data = Dataset {
            features: vec![numeric("x"), numeric("y")],
            columns: vec![Vec::new(), Vec::new()],
            ..Dataset::default()
        };
        let mut rng = Rng::new(42);
        for _ in 0..1000 {
            let (x, y) = (gauss(&mut rng), gauss(&mut rng));
            data.push_row(&[x, y], false, 1.0);
        }
        data.push_row(&[8.0, -7.5], false, 1.0);
        data
    }

    fn median(values: &[f64]) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn outlier_scores_above_inliers() {
        let data = cloud_with_outlier();
        let forest = IsolationForest::fit(&data, &IsolationForestConfig::standard(), 1);
        let scores = forest.score_all(&data);
        let (outlier, inliers) = scores.split_last().unwrap();
        let med = median(inliers);
        assert!(*outlier > med, "outlier {outlier} vs median {med}");
        assert!(*outlier > 0.6, "outlier {outlier}");
        let max_inlier = inliers.iter().cloned().fold(f64::MIN, f64::max);
        assert!(
            *outlier >= max_inlier,
            "outlier {outlier} vs max {max_inlier}"
        );
        assert!(med < 0.5, "median {med}");
    }

    #[test]
    fn scores_in_unit_interval_and_match_score_row() {
        let mut data = cloud_with_outlier();
        // Add missing values to exercise the NaN path.
        data.columns[0][3] = f64::NAN;
        data.columns[1][10] = f64::NAN;
        let forest = IsolationForest::fit(&data, &IsolationForestConfig::standard(), 9);
        let scores = forest.score_all(&data);
        for (i, &s) in scores.iter().enumerate() {
            assert!(s > 0.0 && s <= 1.0, "score {s}");
            assert_eq!(s, forest.score_row(&data.row(i)));
        }
        assert!(forest.score_row(&[f64::NAN, f64::NAN]) > 0.0);
        assert!(forest.score_row(&[]) <= 1.0);
    }

    #[test]
    fn rare_category_scores_higher() {
        let mut data = Dataset {
            features: vec![
                FeatureInfo {
                    name: "origin".into(),
                    kind: FeatureKind::Categorical { cardinality: 3 },
                },
                numeric("noise"),
            ],
            columns: vec![Vec::new(), Vec::new()],
            ..Dataset::default()
        };
        let mut rng = Rng::new(3);
        for i in 0..1000 {
            let code = if i % 100 == 0 { 2.0 } else { 0.0 };
            data.push_row(&[code, gauss(&mut rng)], false, 1.0);
        }
        let forest = IsolationForest::fit(&data, &IsolationForestConfig::standard(), 5);
        let common = forest.score_row(&[0.0, 0.0]);
        let rare = forest.score_row(&[2.0, 0.0]);
        assert!(rare > common, "rare {rare} vs common {common}");
    }

    #[test]
    fn same_seed_same_scores() {
        let data = cloud_with_outlier();
        let config = IsolationForestConfig {
            n_trees: 30,
            sample_size: 64,
        };
        let a = IsolationForest::fit(&data, &config, 11).score_all(&data);
        let b = IsolationForest::fit(&data, &config, 11).score_all(&data);
        assert_eq!(a, b);
        let c = IsolationForest::fit(&data, &config, 12).score_all(&data);
        assert_ne!(a, c);
        // Serialisation round trip keeps the scores.
        let forest = IsolationForest::fit(&data, &config, 11);
        let json = serde_json::to_string(&forest).unwrap();
        let back: IsolationForest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.score_all(&data), a);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let config = IsolationForestConfig::standard();
        let empty = Dataset::default();
        let forest = IsolationForest::fit(&empty, &config, 0);
        assert_eq!(forest.score_row(&[1.0]), 0.5);
        assert!(forest.score_all(&empty).is_empty());

        let mut constant = Dataset {
            features: vec![numeric("x")],
            columns: vec![Vec::new()],
            ..Dataset::default()
        };
        for _ in 0..10 {
            constant.push_row(&[1.0], false, 1.0);
        }
        let forest = IsolationForest::fit(&constant, &config, 0);
        for s in forest.score_all(&constant) {
            assert!(s > 0.0 && s <= 1.0);
        }
    }
}
