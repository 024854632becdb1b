//! Exact TreeSHAP (Lundberg et al. 2018, "Consistent individualized feature attribution for tree
//! ensembles", Algorithm 2): Shapley values of a tree's output under the path-dependent
//! (cover-weighted) conditional expectation, in O(leaves × depth²) per tree and row.
//!
//! Written by hand: it must run on our own tree type and is the hot path of `score --explain`.

use crate::gbdt::Tree;

#[derive(Clone, Copy, Default, Debug)]
struct PathElement {
    feature: i64,
    zero_fraction: f64,
    one_fraction: f64,
    weight: f64,
}

/// Reusable buffer for [`tree_shap`], so that explaining many rows allocates once.
#[derive(Default, Debug)]
pub struct Scratch {
    path: Vec<PathElement>,
}

/// Adds the contributions of `tree` for `row` to `phi` (one slot per feature; the expected value of
/// the tree is added to the last slot).
pub fn tree_shap(tree: &Tree, row: &[f64], phi: &mut [f64], scratch: &mut Scratch) {
    if tree.nodes.is_empty() {
        return;
    }
    let bias_slot = phi.len() - 1;
    phi[bias_slot] += tree.nodes[0].value;
    let depth = tree.max_depth();
    let needed = (depth + 3) * (depth + 4) / 2;
    if scratch.path.len() < needed {
        scratch.path.resize(needed, PathElement::default());
    }
    recurse(tree, row, phi, 0, &mut scratch.path, 0, 0, 1.0, 1.0, -1);
}

#[allow(clippy::too_many_arguments)]
fn recurse(
    tree: &Tree,
    row: &[f64],
    phi: &mut [f64],
    node_index: usize,
    buffer: &mut [PathElement],
    parent_offset: usize,
    mut unique_depth: usize,
    parent_zero_fraction: f64,
    parent_one_fraction: f64,
    parent_feature: i64,
) {
    // As in the reference implementation: this level's path starts right after the parent's and
    // begins as a copy of it.
    let offset = parent_offset + unique_depth + 1;
    buffer.copy_within(parent_offset..parent_offset + unique_depth + 1, offset);
    let path = &mut buffer[offset..];
    extend_path(
        path,
        unique_depth,
        parent_zero_fraction,
        parent_one_fraction,
        parent_feature,
    );
    let node = &tree.nodes[node_index];
    let Some(split) = &node.split else {
        for i in 1..=unique_depth {
            let w = unwound_path_sum(path, unique_depth, i);
            let element = path[i];
            phi[element.feature as usize] +=
                w * (element.one_fraction - element.zero_fraction) * node.value;
        }
        return;
    };
    let feature = split.feature();
    let (hot, cold) = if split.goes_left(row[feature]) {
        (node.left as usize, node.right as usize)
    } else {
        (node.right as usize, node.left as usize)
    };
    let cover = node.cover;
    let (hot_zero_fraction, cold_zero_fraction) = if cover > 0.0 {
        (
            tree.nodes[hot].cover / cover,
            tree.nodes[cold].cover / cover,
        )
    } else {
        (0.5, 0.5)
    };
    let mut incoming_zero_fraction = 1.0;
    let mut incoming_one_fraction = 1.0;
    if let Some(path_index) = (0..=unique_depth).find(|&i| path[i].feature == feature as i64) {
        incoming_zero_fraction = path[path_index].zero_fraction;
        incoming_one_fraction = path[path_index].one_fraction;
        unwind_path(path, unique_depth, path_index);
        unique_depth -= 1;
    }
    recurse(
        tree,
        row,
        phi,
        hot,
        buffer,
        offset,
        unique_depth + 1,
        hot_zero_fraction * incoming_zero_fraction,
        incoming_one_fraction,
        feature as i64,
    );
    recurse(
        tree,
        row,
        phi,
        cold,
        buffer,
        offset,
        unique_depth + 1,
        cold_zero_fraction * incoming_zero_fraction,
        0.0,
        feature as i64,
    );
}

fn extend_path(
    path: &mut [PathElement],
    unique_depth: usize,
    zero_fraction: f64,
    one_fraction: f64,
    feature: i64,
) {
    path[unique_depth] = PathElement {
        feature,
        zero_fraction,
        one_fraction,
        weight: if unique_depth == 0 { 1.0 } else { 0.0 },
    };
    let d = unique_depth as f64;
    for i in (0..unique_depth).rev() {
        path[i + 1].weight += one_fraction * path[i].weight * (i as f64 + 1.0) / (d + 1.0);
        path[i].weight = zero_fraction * path[i].weight * (d - i as f64) / (d + 1.0);
    }
}

fn unwind_path(path: &mut [PathElement], unique_depth: usize, path_index: usize) {
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let d = unique_depth as f64;
    let mut next_one_portion = path[unique_depth].weight;
    for i in (0..unique_depth).rev() {
        if one_fraction != 0.0 {
            let tmp = path[i].weight;
            path[i].weight = next_one_portion * (d + 1.0) / ((i as f64 + 1.0) * one_fraction);
            next_one_portion = tmp - path[i].weight * zero_fraction * (d - i as f64) / (d + 1.0);
        } else {
            path[i].weight = path[i].weight * (d + 1.0) / (zero_fraction * (d - i as f64));
        }
    }
    for i in path_index..unique_depth {
        path[i].feature = path[i + 1].feature;
        path[i].zero_fraction = path[i + 1].zero_fraction;
        path[i].one_fraction = path[i + 1].one_fraction;
    }
}

fn unwound_path_sum(path: &[PathElement], unique_depth: usize, path_index: usize) -> f64 {
    let one_fraction = path[path_index].one_fraction;
    let zero_fraction = path[path_index].zero_fraction;
    let d = unique_depth as f64;
    let mut next_one_portion = path[unique_depth].weight;
    let mut total = 0.0;
    for i in (0..unique_depth).rev() {
        if one_fraction != 0.0 {
            let tmp = next_one_portion * (d + 1.0) / ((i as f64 + 1.0) * one_fraction);
            total += tmp;
            next_one_portion = path[i].weight - tmp * zero_fraction * ((d - i as f64) / (d + 1.0));
        } else if zero_fraction != 0.0 {
            total += (path[i].weight / zero_fraction) / ((d - i as f64) / (d + 1.0));
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, FeatureInfo, FeatureKind};
    use crate::gbdt::{Booster, GbdtConfig};
    use crate::rng::Rng;

    /// E[f(x) | x_S] under the path-dependent definition: follow x where the split feature is in S,
    /// otherwise average the children by cover.
    fn conditional_expectation(tree: &Tree, row: &[f64], subset: u32, index: usize) -> f64 {
        let node = &tree.nodes[index];
        match &node.split {
            None => node.value,
            Some(split) => {
                let (l, r) = (node.left as usize, node.right as usize);
                if subset & (1 << split.feature()) != 0 {
                    let next = if split.goes_left(row[split.feature()]) {
                        l
                    } else {
                        r
                    };
                    conditional_expectation(tree, row, subset, next)
                } else {
                    let (lc, rc) = (tree.nodes[l].cover, tree.nodes[r].cover);
                    (conditional_expectation(tree, row, subset, l) * lc
                        + conditional_expectation(tree, row, subset, r) * rc)
                        / (lc + rc)
                }
            }
        }
    }

    fn brute_force_shapley(booster: &Booster, row: &[f64]) -> Vec<f64> {
        let m = booster.features.len();
        let value = |subset: u32| -> f64 {
            booster
                .trees
                .iter()
                .map(|t| conditional_expectation(t, row, subset, 0))
                .sum::<f64>()
        };
        let factorial = |n: usize| (1..=n).map(|k| k as f64).product::<f64>();
        let mut phi = vec![0.0; m];
        for (i, phi_i) in phi.iter_mut().enumerate() {
            for subset in 0u32..(1 << m) {
                if subset & (1 << i) != 0 {
                    continue;
                }
                let s = subset.count_ones() as usize;
                let weight = factorial(s) * factorial(m - s - 1) / factorial(m);
                *phi_i += weight * (value(subset | (1 << i)) - value(subset));
            }
        }
        phi
    }

    fn small_dataset(seed: u64, n: usize) -> Dataset {
        let mut rng = Rng::new(seed);
        let features = vec![
            FeatureInfo {
                name: "a".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureInfo {
                name: "b".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureInfo {
                name: "c".into(),
                kind: FeatureKind::Categorical { cardinality: 6 },
            },
            FeatureInfo {
                name: "d".into(),
                kind: FeatureKind::Numeric,
            },
            FeatureInfo {
                name: "e".into(),
                kind: FeatureKind::Categorical { cardinality: 3 },
            },
        ];
        let mut data = Dataset {
            features,
            columns: vec![Vec::new(); 5],
            labels: Vec::new(),
            weights: Vec::new(),
        };
        for _ in 0..n {
            let a = rng.next_f64();
            let b = if rng.next_f64() < 0.1 {
                f64::NAN
            } else {
                rng.next_f64()
            };
            let c = rng.below(6) as f64;
            let d = rng.next_f64();
            let e = rng.below(3) as f64;
            let logit = 3.0 * (a - 0.5)
                + if b.is_nan() { 1.0 } else { b - 0.5 }
                + if c == 2.0 || c == 4.0 { 1.5 } else { -0.5 }
                + if e == 1.0 { 0.8 } else { 0.0 } * d;
            let label = rng.next_f64() < 1.0 / (1.0 + (-logit).exp());
            data.push_row(&[a, b, c, d, e], label, 1.0);
        }
        data
    }

    #[test]
    fn treeshap_matches_brute_force_shapley() {
        let data = small_dataset(3, 600);
        let mut config = GbdtConfig::standard();
        config.n_trees = 8;
        config.num_leaves = 12;
        config.min_data_in_leaf = 5;
        config.min_data_per_group = 5;
        config.max_cat_to_onehot = 2;
        let booster = Booster::train(&data, &config, None, &mut |_, _| true);
        assert!(booster.trees.iter().any(|t| t.max_depth() >= 3));
        let mut checked_categorical = false;
        for i in 0..40 {
            let row = data.row(i);
            let fast = booster.contributions(&row);
            let slow = brute_force_shapley(&booster, &row);
            for j in 0..slow.len() {
                assert!(
                    (fast[j] - slow[j]).abs() < 1e-9,
                    "row {i} feature {j}: {} vs {}",
                    fast[j],
                    slow[j]
                );
            }
            let total: f64 = fast.iter().sum();
            assert!((total - booster.predict_raw(&row)).abs() < 1e-9);
            checked_categorical |= fast[2].abs() > 1e-6;
        }
        assert!(checked_categorical, "categorical feature never contributed");
    }

    #[test]
    fn fast_path_matches_reference_on_deep_trees_with_repeated_features() {
        let data = small_dataset(11, 3000);
        let mut config = GbdtConfig::standard();
        config.n_trees = 20;
        config.num_leaves = 63;
        config.min_data_in_leaf = 3;
        config.min_data_per_group = 3;
        let booster = Booster::train(&data, &config, None, &mut |_, _| true);
        assert!(
            booster.trees.iter().any(|t| t.max_depth() >= 8),
            "trees too shallow to test repeats"
        );
        // 82 rows: ten full batches and a partial one.
        let rows: Vec<Vec<f64>> = (0..3000).step_by(37).map(|i| data.row(i)).collect();
        let batched = booster.contributions_rows(&rows);
        for (row, batch) in rows.iter().zip(&batched) {
            let reference = booster.contributions_reference(row);
            for j in 0..reference.len() {
                assert!(
                    (batch[j] - reference[j]).abs() < 1e-9,
                    "batched feature {j}: {} vs {}",
                    batch[j],
                    reference[j]
                );
            }
        }
        for i in (0..3000).step_by(37) {
            let row = data.row(i);
            let fast = booster.contributions(&row);
            let reference = booster.contributions_reference(&row);
            for j in 0..fast.len() {
                assert!(
                    (fast[j] - reference[j]).abs() < 1e-9,
                    "row {i} feature {j}: {} vs {}",
                    fast[j],
                    reference[j]
                );
            }
        }
    }
}
