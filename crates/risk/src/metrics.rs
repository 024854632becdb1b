//! Evaluation at the inspection rates an administration can afford. Never accuracy: with 1–20%
//! positives it rewards doing nothing.

use std::collections::BTreeMap;

/// The inspection rates (percent of declarations controlled) that reports always show.
pub const INSPECTION_RATES: [u32; 4] = [1, 2, 5, 10];

/// Targeting quality of a score on a labelled set.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Rows evaluated.
    pub n: usize,
    /// Positive rows.
    pub positives: usize,
    /// Share of selected rows that are positive, by inspection rate (percent).
    pub precision_at: BTreeMap<u32, f64>,
    /// Share of positives that are selected, by inspection rate.
    pub recall_at: BTreeMap<u32, f64>,
    /// Share of the duty at stake of all positives that the selection catches, by inspection rate.
    pub revenue_at: BTreeMap<u32, f64>,
    /// Area under the precision–recall curve (average precision).
    pub pr_auc: f64,
    /// Area under the ROC curve (ties count one half).
    pub roc_auc: f64,
}

/// Order of rows by descending score; ties keep input order (stable), so results are reproducible.
pub fn ranking(scores: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    order
}

/// Number of rows selected at `rate_percent` of `n`: ⌈n·rate/100⌉.
pub fn selection_size(n: usize, rate_percent: f64) -> usize {
    ((n as f64 * rate_percent / 100.0).ceil() as usize).min(n)
}

/// Precision, recall and revenue share of selecting the top `rate_percent`% of a ranking.
struct Selection<'a> {
    order: Vec<usize>,
    labels: &'a [bool],
    duty: &'a [f64],
    positives: usize,
    total_duty: f64,
}

impl<'a> Selection<'a> {
    fn new(scores: &[f64], labels: &'a [bool], duty: &'a [f64]) -> Selection<'a> {
        let total_duty = labels
            .iter()
            .zip(duty)
            .filter(|(&y, _)| y)
            .map(|(_, &d)| d)
            .sum();
        Selection {
            order: ranking(scores),
            labels,
            duty,
            positives: labels.iter().filter(|&&y| y).count(),
            total_duty,
        }
    }

    /// (precision, recall, revenue share) at `rate_percent`.
    fn at(&self, rate_percent: f64) -> (f64, f64, f64) {
        let k = selection_size(self.order.len(), rate_percent);
        let selected_positives = self.order[..k].iter().filter(|&&i| self.labels[i]);
        let hits = selected_positives.clone().count() as f64;
        let caught: f64 = selected_positives.map(|&i| self.duty[i]).sum();
        (
            ratio(hits, k as f64),
            ratio(hits, self.positives as f64),
            ratio(caught, self.total_duty),
        )
    }
}

/// Evaluates `scores` against `labels`, weighting revenue by `duty` (duty at stake per row).
pub fn evaluate(scores: &[f64], labels: &[bool], duty: &[f64]) -> Evaluation {
    let selection = Selection::new(scores, labels, duty);
    let mut precision_at = BTreeMap::new();
    let mut recall_at = BTreeMap::new();
    let mut revenue_at = BTreeMap::new();
    for rate in INSPECTION_RATES {
        let (precision, recall, revenue) = selection.at(rate as f64);
        precision_at.insert(rate, precision);
        recall_at.insert(rate, recall);
        revenue_at.insert(rate, revenue);
    }
    Evaluation {
        n: scores.len(),
        positives: selection.positives,
        precision_at,
        recall_at,
        revenue_at,
        pr_auc: average_precision(scores, labels),
        roc_auc: roc_auc(scores, labels),
    }
}

/// Precision, recall and revenue share at every whole-percent inspection rate from 1 to `max`.
pub fn rate_curve(
    scores: &[f64],
    labels: &[bool],
    duty: &[f64],
    max: u32,
) -> Vec<(f64, f64, f64, f64)> {
    let selection = Selection::new(scores, labels, duty);
    (1..=max)
        .map(|rate| {
            let (precision, recall, revenue) = selection.at(rate as f64);
            (rate as f64, precision, recall, revenue)
        })
        .collect()
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// ROC-AUC by the rank-sum (Mann–Whitney) formula, ties counting one half. 0.5 when one class is absent.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = labels.iter().filter(|&&y| y).count() as f64;
    let n_neg = labels.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return 0.5;
    }
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if labels[k] {
                rank_sum += mid_rank;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Average precision, as scikit-learn defines it: Σ (R_k − R_{k−1}) P_k over distinct thresholds.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> f64 {
    let order = ranking(scores);
    let n_pos = labels.iter().filter(|&&y| y).count() as f64;
    if n_pos == 0.0 {
        return 0.0;
    }
    let mut ap = 0.0;
    let mut tp = 0.0;
    let mut seen = 0.0;
    let mut last_recall = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        for &k in &order[i..=j] {
            seen += 1.0;
            if labels[k] {
                tp += 1.0;
            }
        }
        let recall = tp / n_pos;
        ap += (recall - last_recall) * (tp / seen);
        last_recall = recall;
        i = j + 1;
    }
    ap
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn perfect_and_reversed_rankings() {
        let labels = [true, true, false, false];
        assert_eq!(roc_auc(&[0.9, 0.8, 0.2, 0.1], &labels), 1.0);
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &labels), 0.0);
        assert_eq!(roc_auc(&[0.5; 4], &labels), 0.5);
        assert_eq!(average_precision(&[0.9, 0.8, 0.2, 0.1], &labels), 1.0);
    }

    #[test]
    fn average_precision_matches_sklearn_example() {
        // sklearn docs: y_true = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8] → 0.8333…
        let ap = average_precision(&[0.1, 0.4, 0.35, 0.8], &[false, false, true, true]);
        assert!((ap - 0.833_333_333).abs() < 1e-6);
    }

    #[test]
    fn precision_recall_revenue_at_rates() {
        // 200 rows, the first 10 by score are positive, duty 1 each, plus one positive at the bottom.
        let mut scores: Vec<f64> = (0..200).map(|i| 200.0 - i as f64).collect();
        let mut labels = vec![false; 200];
        labels[..10].iter_mut().for_each(|y| *y = true);
        labels[199] = true;
        scores[199] = -1.0;
        let duty = vec![1.0; 200];
        let e = evaluate(&scores, &labels, &duty);
        assert_eq!((e.n, e.positives), (200, 11));
        assert_eq!(e.precision_at[&1], 1.0); // 2 selected
        assert_eq!(e.precision_at[&5], 1.0); // 10 selected
        assert_eq!(e.precision_at[&10], 0.5); // 20 selected
        assert!((e.recall_at[&10] - 10.0 / 11.0).abs() < 1e-12);
        assert!((e.revenue_at[&2] - 4.0 / 11.0).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn auc_is_probability_of_correct_order(scores in proptest::collection::vec(0u8..20, 2..60), flags in proptest::collection::vec(any::<bool>(), 60)) {
            let scores: Vec<f64> = scores.into_iter().map(f64::from).collect();
            let labels: Vec<bool> = flags[..scores.len()].to_vec();
            let mut wins = 0.0; let mut pairs = 0.0;
            for i in 0..scores.len() { for j in 0..scores.len() {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    if scores[i] > scores[j] { wins += 1.0 } else if scores[i] == scores[j] { wins += 0.5 }
                }
            }}
            let expected = if pairs == 0.0 { 0.5 } else { wins / pairs };
            prop_assert!((roc_auc(&scores, &labels) - expected).abs() < 1e-9);
            let ap = average_precision(&scores, &labels);
            prop_assert!((0.0..=1.0 + 1e-12).contains(&ap));
        }
    }
}
