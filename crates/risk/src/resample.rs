//! Class-imbalance options: random over-sampling, random under-sampling and SMOTE-NC.
//!
//! Every function returns a new [`Dataset`] and leaves its input untouched. Shared conventions:
//! - `target_positive_share` is the wished share of positive *rows* (weights are not rescaled);
//!   a target at or below the current share, or a non-finite one, returns an unchanged clone.
//! - Inputs with fewer than two positives, or without negatives, are returned unchanged (there is
//!   nothing meaningful to resample), never a panic.
//! - Original rows keep their order; duplicated or synthetic rows are appended at the end
//!   (under-sampling keeps the original order of the rows it keeps).
//! - Randomness comes only from [`Rng`], so the same input and seed give the same output.

use rayon::prelude::*;

use crate::data::{Dataset, FeatureKind};
use crate::rng::Rng;

/// Largest share the over-sampling functions aim for: a share of 1 would need infinitely many rows.
pub const MAX_OVERSAMPLE_SHARE: f64 = 0.99;

/// Indices of positive rows, in order.
fn positive_indices(data: &Dataset) -> Vec<usize> {
    (0..data.n_rows()).filter(|&i| data.labels[i]).collect()
}

/// Number of positive rows to add so that `(p + m) / (n + m) ≈ target`, or `None` when nothing
/// should be added (degenerate input or target not above the current share).
fn rows_to_add(n_pos: usize, n_total: usize, target: f64) -> Option<usize> {
    if n_pos < 2 || n_pos == n_total || !target.is_finite() {
        return None;
    }
    let target = target.min(MAX_OVERSAMPLE_SHARE);
    let (p, n) = (n_pos as f64, n_total as f64);
    if target <= p / n {
        return None;
    }
    let m = ((target * n - p) / (1.0 - target)).round();
    (m >= 1.0).then_some(m as usize)
}

/// Duplicates randomly chosen positives (with replacement) until positives/total ≈
/// `target_positive_share` (capped at [`MAX_OVERSAMPLE_SHARE`]). Never removes rows; duplicates
/// keep their weights and are appended after the original rows.
pub fn random_oversample(data: &Dataset, target_positive_share: f64, seed: u64) -> Dataset {
    let positives = positive_indices(data);
    let Some(m) = rows_to_add(positives.len(), data.n_rows(), target_positive_share) else {
        return data.clone();
    };
    let mut rng = Rng::new(seed);
    let mut indices: Vec<usize> = (0..data.n_rows()).collect();
    indices.extend((0..m).map(|_| positives[rng.below(positives.len())]));
    data.select_rows(&indices)
}

/// Drops randomly chosen negatives until positives/total ≈ `target_positive_share` (a target of 1
/// or more drops every negative). Keeps every positive; kept rows stay in their original order.
pub fn random_undersample(data: &Dataset, target_positive_share: f64, seed: u64) -> Dataset {
    let n_rows = data.n_rows();
    let n_pos = data.labels.iter().filter(|&&l| l).count();
    let n_neg = n_rows - n_pos;
    if n_pos < 2 || n_neg == 0 || !target_positive_share.is_finite() {
        return data.clone();
    }
    let target = target_positive_share.min(1.0);
    if target <= n_pos as f64 / n_rows as f64 {
        return data.clone();
    }
    // p / (p + k) = target  ⇔  k = p (1 − target) / target.
    let keep_neg = ((n_pos as f64 * (1.0 - target) / target).round() as usize).min(n_neg);
    let mut negatives: Vec<usize> = (0..n_rows).filter(|&i| !data.labels[i]).collect();
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut negatives);
    let mut keep = vec![false; n_rows];
    for &i in &negatives[..keep_neg] {
        keep[i] = true;
    }
    let indices: Vec<usize> = (0..n_rows).filter(|&i| data.labels[i] || keep[i]).collect();
    data.select_rows(&indices)
}

/// SMOTE-NC (Chawla et al., 2002): appends synthetic positives until positives/total ≈
/// `target_positive_share` (capped at [`MAX_OVERSAMPLE_SHARE`]).
///
/// Each synthetic row takes a random positive `a` and one of its `k` nearest positive neighbours
/// `b` (uniformly), and a gap `u ∈ [0, 1)`:
/// - numeric features are `a + u (b − a)`; if one endpoint is missing the other is used, if both
///   are missing the value is missing;
/// - categorical features take the most frequent code among the `k` neighbours of `a` (ties go to
///   the smaller code; missing neighbour values are not counted; if all are missing, `a`'s value);
/// - the weight is the mean positive weight, the label is positive.
///
/// Distances (exact, brute force, computed in parallel) are squared Euclidean over numeric
/// features standardised by their standard deviation over the positives. Each categorical
/// mismatch adds `med²`, where `med` is the median of the numeric standard deviations *in the
/// space the distance is measured in*: after standardisation every one of them is 1, so a
/// mismatch adds 1 — the same weight as a one-standard-deviation numeric difference, which is the
/// intent of Chawla's rule (a raw-unit median would mix units with the standardised terms).
/// A numeric feature missing on exactly one side counts as a mismatch too (adds 1). Ties between
/// neighbours are broken by row order, so the output is deterministic.
///
/// `k` is capped at `positives − 1`; `k = 0` is treated as 1.
pub fn smote_nc(data: &Dataset, target_positive_share: f64, k: usize, seed: u64) -> Dataset {
    let positives = positive_indices(data);
    let Some(m) = rows_to_add(positives.len(), data.n_rows(), target_positive_share) else {
        return data.clone();
    };
    let n_pos = positives.len();
    let k = k.clamp(1, n_pos - 1);
    let n_features = data.n_features();

    // Row-major copy of the positives, standardised numeric values for the distance.
    let is_numeric: Vec<bool> = data
        .features
        .iter()
        .map(|f| matches!(f.kind, FeatureKind::Numeric))
        .collect();
    let scale: Vec<f64> = (0..n_features)
        .map(|j| {
            if !is_numeric[j] {
                return 1.0;
            }
            let values: Vec<f64> = positives
                .iter()
                .map(|&i| data.columns[j][i])
                .filter(|v| v.is_finite())
                .collect();
            let sd = std_dev(&values);
            if sd.is_finite() && sd > 0.0 {
                1.0 / sd
            } else {
                1.0
            }
        })
        .collect();
    let points: Vec<Vec<f64>> = positives
        .iter()
        .map(|&i| {
            (0..n_features)
                .map(|j| {
                    let v = data.columns[j][i];
                    if is_numeric[j] {
                        v * scale[j]
                    } else {
                        v
                    }
                })
                .collect()
        })
        .collect();

    // Draw every (base, neighbour rank, gap) first, so that the random stream does not depend on
    // the parallel neighbour search.
    let mut rng = Rng::new(seed);
    let draws: Vec<(usize, usize, f64)> = (0..m)
        .map(|_| (rng.below(n_pos), rng.below(k), rng.next_f64()))
        .collect();
    let mut needed = vec![false; n_pos];
    for &(base, _, _) in &draws {
        needed[base] = true;
    }
    let neighbours: Vec<Option<Vec<usize>>> = (0..n_pos)
        .into_par_iter()
        .map(|a| needed[a].then(|| nearest(&points, &is_numeric, a, k)))
        .collect();

    // Categorical values per base: majority among its neighbours.
    let categorical_votes: Vec<Option<Vec<f64>>> = neighbours
        .iter()
        .enumerate()
        .map(|(a, nn)| {
            nn.as_ref().map(|nn| {
                (0..n_features)
                    .map(|j| {
                        if is_numeric[j] {
                            f64::NAN
                        } else {
                            majority(nn.iter().map(|&b| data.columns[j][positives[b]]))
                                .unwrap_or(data.columns[j][positives[a]])
                        }
                    })
                    .collect()
            })
        })
        .collect();

    let positive_weight = positives.iter().map(|&i| data.weights[i]).sum::<f64>() / n_pos as f64;
    let mut out = data.clone();
    let mut row = vec![0.0; n_features];
    for &(base, rank, gap) in &draws {
        let nn = neighbours[base]
            .as_ref()
            .expect("neighbours computed for drawn bases");
        let other = nn[rank.min(nn.len() - 1)];
        let votes = categorical_votes[base].as_ref().expect("votes computed");
        let (ia, ib) = (positives[base], positives[other]);
        for j in 0..n_features {
            row[j] = if is_numeric[j] {
                interpolate(data.columns[j][ia], data.columns[j][ib], gap)
            } else {
                votes[j]
            };
        }
        out.push_row(&row, true, positive_weight);
    }
    out
}

/// Sample standard deviation of `values` (population formula, `NaN` when empty).
fn std_dev(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
}

/// `a + gap (b − a)`, kept inside `[min(a, b), max(a, b)]`; a missing endpoint yields the other.
fn interpolate(a: f64, b: f64, gap: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => f64::NAN,
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            let v = a + gap * (b - a);
            if v.is_finite() {
                v.clamp(a.min(b), a.max(b))
            } else {
                a
            }
        }
    }
}

/// Most frequent non-missing value (smallest on ties), `None` if all are missing.
fn majority(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut present: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
    present.sort_by(f64::total_cmp);
    let mut best: Option<(f64, usize)> = None;
    let mut i = 0;
    while i < present.len() {
        let mut j = i;
        while j < present.len() && present[j] == present[i] {
            j += 1;
        }
        if best.is_none_or(|(_, count)| j - i > count) {
            best = Some((present[i], j - i));
        }
        i = j;
    }
    best.map(|(v, _)| v)
}

/// Squared SMOTE-NC distance between two standardised rows (see [`smote_nc`]).
fn distance(a: &[f64], b: &[f64], is_numeric: &[bool]) -> f64 {
    let mut d = 0.0;
    for ((&x, &y), &numeric) in a.iter().zip(b).zip(is_numeric) {
        let (x_missing, y_missing) = (x.is_nan(), y.is_nan());
        if x_missing || y_missing {
            if x_missing != y_missing {
                d += 1.0;
            }
        } else if numeric {
            let diff = x - y;
            d += if diff.is_finite() { diff * diff } else { 1.0 };
        } else if x != y {
            d += 1.0;
        }
    }
    d
}

/// Indices (into `points`) of the `k` nearest other points of `points[a]`, nearest first; ties are
/// broken by index.
fn nearest(points: &[Vec<f64>], is_numeric: &[bool], a: usize, k: usize) -> Vec<usize> {
    let mut candidates: Vec<(f64, usize)> = points
        .iter()
        .enumerate()
        .filter(|&(b, _)| b != a)
        .map(|(b, p)| (distance(&points[a], p, is_numeric), b))
        .collect();
    let order = |x: &(f64, usize), y: &(f64, usize)| x.0.total_cmp(&y.0).then(x.1.cmp(&y.1));
    let k = k.min(candidates.len());
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k, order);
        candidates.truncate(k);
    }
    candidates.sort_by(order);
    candidates.into_iter().map(|(_, b)| b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::FeatureInfo;
    use crate::rng::Rng;
    use proptest::prelude::*;

    fn share(data: &Dataset) -> f64 {
        data.labels.iter().filter(|&&l| l).count() as f64 / data.n_rows() as f64
    }

    fn n_pos(data: &Dataset) -> usize {
        data.labels.iter().filter(|&&l| l).count()
    }

    /// `n` rows, one positive every `every`; numeric `x` (with some NaN), categorical `c` (0..4),
    /// numeric `y`.
    fn sample(n: usize, every: usize, seed: u64) -> Dataset {
        let mut data = Dataset {
            features: vec![
                FeatureInfo {
                    name: "x".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureInfo {
                    name: "c".into(),
                    kind: FeatureKind::Categorical { cardinality: 4 },
                },
                FeatureInfo {
                    name: "y".into(),
                    kind: FeatureKind::Numeric,
                },
            ],
            columns: vec![Vec::new(); 3],
            ..Dataset::default()
        };
        let mut rng = Rng::new(seed);
        for i in 0..n {
            let positive = i % every == 0;
            let x = if i % 7 == 3 {
                f64::NAN
            } else {
                rng.next_f64() * 100.0 + if positive { 50.0 } else { 0.0 }
            };
            let c = rng.below(4) as f64;
            let y = rng.next_f64() * 0.01;
            data.push_row(&[x, c, y], positive, 1.0 + (i % 3) as f64);
        }
        data
    }

    fn check_shape(data: &Dataset) {
        assert_eq!(data.labels.len(), data.weights.len());
        for c in &data.columns {
            assert_eq!(c.len(), data.labels.len());
        }
    }

    #[test]
    fn oversample_reaches_target_and_keeps_originals() {
        let data = sample(2000, 20, 1);
        let out = random_oversample(&data, 0.3, 7);
        check_shape(&out);
        assert!((share(&out) - 0.3).abs() < 0.01, "share {}", share(&out));
        let original = data.select_rows(&(0..2000).collect::<Vec<_>>());
        let prefix = out.select_rows(&(0..2000).collect::<Vec<_>>());
        assert_eq!(prefix.labels, original.labels);
        assert_eq!(prefix.weights, original.weights);
        assert!(out.labels[2000..].iter().all(|&l| l));
        assert_eq!(
            format!("{:?}", random_oversample(&data, 0.3, 7)),
            format!("{:?}", out)
        );
    }

    #[test]
    fn undersample_reaches_target_and_keeps_positives() {
        let data = sample(2000, 20, 2);
        let out = random_undersample(&data, 0.25, 3);
        check_shape(&out);
        assert!((share(&out) - 0.25).abs() < 0.01, "share {}", share(&out));
        assert_eq!(n_pos(&out), n_pos(&data));
        // Kept rows are in original order: weights follow the `1 + i % 3` pattern of kept indices.
        let again = random_undersample(&data, 0.25, 3);
        assert_eq!(format!("{again:?}"), format!("{out:?}"));
        let all = random_undersample(&data, 1.0, 3);
        assert_eq!(n_pos(&all), all.n_rows());
    }

    #[test]
    fn undersample_preserves_order() {
        let mut data = sample(500, 5, 4);
        // Tag each row with its index in column y so the order can be checked.
        data.columns[2] = (0..500).map(|i| i as f64).collect();
        let out = random_undersample(&data, 0.5, 9);
        assert!(out.columns[2].windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn smote_reaches_target_and_stays_in_range() {
        let data = sample(3000, 30, 5);
        let out = smote_nc(&data, 0.2, 5, 11);
        check_shape(&out);
        assert!((share(&out) - 0.2).abs() < 0.01, "share {}", share(&out));
        let positives: Vec<usize> = (0..data.n_rows()).filter(|&i| data.labels[i]).collect();
        for j in [0, 2] {
            let present: Vec<f64> = positives
                .iter()
                .map(|&i| data.columns[j][i])
                .filter(|v| !v.is_nan())
                .collect();
            let lo = present.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = present.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            for &v in out.columns[j][data.n_rows()..]
                .iter()
                .filter(|v| !v.is_nan())
            {
                assert!(v >= lo && v <= hi, "feature {j}: {v} outside [{lo}, {hi}]");
            }
        }
        for &c in &out.columns[1][data.n_rows()..] {
            assert!(c == c.floor() && (0.0..4.0).contains(&c), "code {c}");
        }
        let mean_w =
            positives.iter().map(|&i| data.weights[i]).sum::<f64>() / positives.len() as f64;
        assert!(out.weights[data.n_rows()..].iter().all(|&w| w == mean_w));
        assert!(out.labels[data.n_rows()..].iter().all(|&l| l));
        // Originals unchanged, in order.
        assert_eq!(out.labels[..data.n_rows()], data.labels[..]);
        assert_eq!(
            format!("{:?}", smote_nc(&data, 0.2, 5, 11)),
            format!("{out:?}")
        );
    }

    #[test]
    fn smote_categorical_follows_neighbours() {
        // Positives all share category 2 except one: synthetic rows must be category 2.
        let mut data = sample(400, 4, 6);
        let mut first = true;
        for i in 0..data.n_rows() {
            if data.labels[i] {
                data.columns[1][i] = if first { 1.0 } else { 2.0 };
                first = false;
            }
        }
        let out = smote_nc(&data, 0.5, 3, 1);
        assert!(out.columns[1][400..].iter().all(|&c| c == 2.0));
    }

    #[test]
    fn interpolation_handles_missing() {
        assert_eq!(interpolate(f64::NAN, 2.0, 0.3), 2.0);
        assert_eq!(interpolate(1.0, f64::NAN, 0.3), 1.0);
        assert!(interpolate(f64::NAN, f64::NAN, 0.3).is_nan());
        assert_eq!(interpolate(1.0, 3.0, 0.5), 2.0);
        assert_eq!(
            majority([1.0, 2.0, 2.0, 1.0, f64::NAN].into_iter()),
            Some(1.0)
        );
        assert_eq!(majority([f64::NAN].into_iter()), None);
    }

    #[test]
    fn degenerate_inputs_are_returned_unchanged() {
        let empty = Dataset::default();
        let one = {
            // Only row 0 is positive.
            sample(50, 1000, 1)
        };
        let zero = sample(50, 1000, 1).select_rows(&(1..50).collect::<Vec<_>>());
        let all = sample(30, 1, 2);
        for data in [&empty, &one, &zero, &all] {
            for out in [
                random_oversample(data, 0.5, 1),
                random_undersample(data, 0.5, 1),
                smote_nc(data, 0.5, 5, 1),
            ] {
                check_shape(&out);
                assert_eq!(out.n_rows(), data.n_rows());
            }
        }
        // Targets at or below the current share, NaN, or extreme: no panic, no loss of positives.
        let data = sample(200, 10, 3);
        for t in [0.0, 0.05, f64::NAN, 1.0, 5.0, -1.0] {
            for out in [
                random_oversample(&data, t, 1),
                random_undersample(&data, t, 1),
                smote_nc(&data, t, 0, 1),
            ] {
                check_shape(&out);
                assert!(n_pos(&out) >= n_pos(&data));
            }
        }
        // Two positives, k larger than possible.
        let mut two = sample(100, 1000, 4);
        two.labels[5] = true;
        two.labels[6] = true;
        let out = smote_nc(&two, 0.3, 10, 2);
        assert!((share(&out) - 0.3).abs() < 0.01);
    }

    proptest! {
        #[test]
        fn never_loses_positives(
            rows in proptest::collection::vec((any::<bool>(), -1e3f64..1e3, 0u32..3, any::<bool>()), 0..60),
            target in 0.0f64..1.2,
            k in 0usize..6,
            seed in any::<u64>(),
        ) {
            let mut data = Dataset {
                features: vec![
                    FeatureInfo { name: "v".into(), kind: FeatureKind::Numeric },
                    FeatureInfo { name: "c".into(), kind: FeatureKind::Categorical { cardinality: 3 } },
                ],
                columns: vec![Vec::new(); 2],
                ..Dataset::default()
            };
            for (label, v, c, missing) in rows {
                let v = if missing { f64::NAN } else { v };
                data.push_row(&[v, c as f64], label, 1.0);
            }
            for out in [
                random_oversample(&data, target, seed),
                random_undersample(&data, target, seed),
                smote_nc(&data, target, k, seed),
            ] {
                prop_assert!(n_pos(&out) >= n_pos(&data));
                prop_assert_eq!(out.labels.len(), out.weights.len());
                for c in &out.columns {
                    prop_assert_eq!(c.len(), out.labels.len());
                }
            }
        }
    }
}
