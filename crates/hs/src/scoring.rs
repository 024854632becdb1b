//! Hierarchy-aware scoring shared by the lexical and semantic models and their combination.
//!
//! A model gives, for a description, a similarity to every subheading, heading and chapter
//! ([`LevelScores`]). Probabilities follow the tree:
//! `P(code) = P(chapter) · P(heading | chapter) · P(subheading | heading)`, each factor a softmax
//! over siblings of a weighted sum of evidence, summed over the models combined:
//! - chapter: its own similarity, its best heading's and its best subheading's;
//! - heading (among its chapter's headings): its own similarity and its best subheading's;
//! - subheading (among its heading's subheadings): its own similarity.
//!
//! Because each level is normalised among siblings, a chapter with 500 subheadings gets no more
//! mass than one with five for the same evidence. The weights carry the temperatures; they are
//! fitted by maximum likelihood (Newton's method, one level at a time: the log-likelihood
//! separates) on descriptions held out from the index ([`Calibration::fit`]), which is what
//! calibrates the probabilities. A heading's probability is the sum over its subheadings.

use serde::{Deserialize, Serialize};

use crate::nomenclature::Nomenclature;

/// Similarities of one description to every subheading, heading and chapter (nomenclature order).
#[derive(Clone, Debug)]
pub struct LevelScores {
    /// To each subheading.
    pub s6: Vec<f32>,
    /// To each heading.
    pub s4: Vec<f32>,
    /// To each chapter.
    pub s2: Vec<f32>,
}

/// Evidence features at each level, for one description and any number of models.
struct Evidence<'a> {
    sets: &'a [&'a LevelScores],
    best6_of_heading: Vec<Vec<f32>>,
    best4_of_chapter: Vec<Vec<f32>>,
    best6_of_chapter: Vec<Vec<f32>>,
}

impl<'a> Evidence<'a> {
    fn new(nom: &'a Nomenclature, sets: &'a [&'a LevelScores]) -> Evidence<'a> {
        let max =
            |v: &[f32], r: std::ops::Range<usize>| v[r].iter().copied().fold(0.0f32, f32::max);
        let best6_of_heading: Vec<Vec<f32>> = sets
            .iter()
            .map(|s| {
                nom.heading_subheadings
                    .iter()
                    .map(|r| max(&s.s6, r.clone()))
                    .collect()
            })
            .collect();
        let best4_of_chapter = sets
            .iter()
            .map(|s| {
                nom.chapter_headings
                    .iter()
                    .map(|r| max(&s.s4, r.clone()))
                    .collect()
            })
            .collect();
        let best6_of_chapter = best6_of_heading
            .iter()
            .map(|b| {
                nom.chapter_headings
                    .iter()
                    .map(|r| max(b, r.clone()))
                    .collect()
            })
            .collect();
        Evidence {
            sets,
            best6_of_heading,
            best4_of_chapter,
            best6_of_chapter,
        }
    }
    fn chapter(&self, ch: usize, f: &mut Vec<f64>) {
        f.clear();
        for m in 0..self.sets.len() {
            f.extend([
                self.sets[m].s2[ch] as f64,
                self.best4_of_chapter[m][ch] as f64,
                self.best6_of_chapter[m][ch] as f64,
            ]);
        }
    }
    fn heading(&self, h: usize, f: &mut Vec<f64>) {
        f.clear();
        for m in 0..self.sets.len() {
            f.extend([
                self.sets[m].s4[h] as f64,
                self.best6_of_heading[m][h] as f64,
            ]);
        }
    }
    fn hs6(&self, c: usize, f: &mut Vec<f64>) {
        f.clear();
        for m in 0..self.sets.len() {
            f.push(self.sets[m].s6[c] as f64);
        }
    }
}

/// Fitted weights of the three levels (per model: 3 for chapters, 2 for headings, 1 for
/// subheadings).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Calibration {
    /// Chapter weights.
    pub chapter: Vec<f64>,
    /// Heading weights.
    pub heading: Vec<f64>,
    /// Subheading weights.
    pub hs6: Vec<f64>,
    /// Mean negative log-likelihood of the true subheading on the fitting set.
    pub nll: f64,
    /// Descriptions it was fitted on.
    pub fitted_on: usize,
}

/// Probabilities of every subheading, heading and chapter.
#[derive(Clone, Debug)]
pub struct Probabilities {
    /// Per subheading (sums to 1).
    pub p6: Vec<f64>,
    /// Per heading.
    pub p4: Vec<f64>,
    /// Per chapter.
    pub p2: Vec<f64>,
}

impl Probabilities {
    /// Indices of the `k` most probable entries of a level, best first (ties: lower index).
    pub fn top(p: &[f64], k: usize) -> Vec<usize> {
        // One pass keeping the k best in order (k is a handful; sorting 5,612 would cost more).
        let k = k.min(p.len());
        let mut best: Vec<usize> = Vec::with_capacity(k + 1);
        if k == 0 {
            return best;
        }
        for (i, v) in p.iter().enumerate() {
            // plain comparison first (probabilities are never NaN); total order for the insert
            if best.len() == k && p[best[k - 1]] >= *v {
                continue;
            }
            let at = best.partition_point(|&j| p[j].total_cmp(v).is_ge());
            best.insert(at, i);
            best.truncate(k);
        }
        best
    }
}

fn dot(w: &[f64], f: &[f64]) -> f64 {
    w.iter().zip(f).map(|(a, b)| a * b).sum()
}

/// Softmax of logits in place.
fn softmax_in_place(z: &mut [f64]) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in z.iter_mut() {
            *v /= sum;
        }
    }
}

/// Softmax in place, times `scale`, with single-precision exponentials: for the 5,612 subheadings of every
/// suggestion, where seven significant digits are plenty and `expf` is about twice as fast.
fn softmax_fast(z: &mut [f64], scale: f64) {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = ((*v - max) as f32).exp() as f64;
        sum += *v;
    }
    if sum > 0.0 {
        let k = scale / sum;
        for v in z.iter_mut() {
            *v *= k;
        }
    }
}

/// Heading probability below which its subheadings share its mass evenly (see
/// [`Calibration::probabilities`]).
pub const NEGLIGIBLE: f64 = 1e-12;

/// One level's fitting data: per description, the feature vectors of the candidates (siblings)
/// and the index of the true one among them.
type Choice = (Vec<Vec<f64>>, usize);

impl Calibration {
    /// Number of models this calibration combines.
    pub fn models(&self) -> usize {
        self.hs6.len()
    }

    /// Starting weights for `models` models.
    pub fn start(models: usize) -> Calibration {
        Calibration {
            chapter: [10.0, 5.0, 5.0].repeat(models),
            heading: [10.0, 5.0].repeat(models),
            hs6: vec![10.0; models],
            nll: f64::NAN,
            fitted_on: 0,
        }
    }

    /// Probabilities from one score set per model (in the order the calibration was fitted).
    pub fn probabilities(&self, nom: &Nomenclature, scores: &[&LevelScores]) -> Probabilities {
        // The same logits as the fit's `Evidence` features, computed level by level without
        // per-candidate vectors (this is the hot path of every suggestion).
        let (n2, n4, n6) = (
            nom.chapters.len(),
            nom.headings.len(),
            nom.subheadings.len(),
        );
        let mut z2 = vec![0.0f64; n2];
        let mut z4 = vec![0.0f64; n4];
        let mut z6 = vec![0.0f64; n6];
        let mut best6_h = vec![0.0f32; n4];
        for (m, s) in scores.iter().enumerate() {
            for (h, r) in nom.heading_subheadings.iter().enumerate() {
                best6_h[h] = s.s6[r.clone()].iter().copied().fold(0.0f32, f32::max);
            }
            for (c, r) in nom.chapter_headings.iter().enumerate() {
                let b4 = s.s4[r.clone()].iter().copied().fold(0.0f32, f32::max);
                let b6 = best6_h[r.clone()].iter().copied().fold(0.0f32, f32::max);
                z2[c] += self.chapter[3 * m] * s.s2[c] as f64;
                z2[c] += self.chapter[3 * m + 1] * b4 as f64;
                z2[c] += self.chapter[3 * m + 2] * b6 as f64;
            }
            for ((z, &own), &best) in z4.iter_mut().zip(&s.s4).zip(&best6_h) {
                *z += self.heading[2 * m] * own as f64;
                *z += self.heading[2 * m + 1] * best as f64;
            }
            for (z, &own) in z6.iter_mut().zip(&s.s6) {
                *z += self.hs6[m] * own as f64;
            }
        }
        softmax_in_place(&mut z2);
        let p2 = z2;
        for (c, r) in nom.chapter_headings.iter().enumerate() {
            softmax_in_place(&mut z4[r.clone()]);
            for p in &mut z4[r.clone()] {
                *p *= p2[c];
            }
        }
        let p4 = z4;
        for (h, r) in nom.heading_subheadings.iter().enumerate() {
            if p4[h] < NEGLIGIBLE {
                // No subheading of a negligible heading can matter: spread its mass evenly
                // rather than spend an exponential on each.
                let share = p4[h] / r.len() as f64;
                z6[r.clone()].iter_mut().for_each(|p| *p = share);
                continue;
            }
            softmax_fast(&mut z6[r.clone()], p4[h]);
        }
        Probabilities { p6: z6, p4, p2 }
    }

    /// Fits the weights by maximum likelihood on held-out descriptions: `examples` holds each
    /// one's score sets (one per model, the same models for all) and its true subheading index.
    /// Deterministic.
    pub fn fit(
        nom: &Nomenclature,
        examples: &[(Vec<LevelScores>, usize)],
        start: &Calibration,
    ) -> Calibration {
        let mut chapters: Vec<Choice> = Vec::new();
        let mut headings: Vec<Choice> = Vec::new();
        let mut subs: Vec<Choice> = Vec::new();
        for (sets, y) in examples {
            let refs: Vec<&LevelScores> = sets.iter().collect();
            let ev = Evidence::new(nom, &refs);
            let h = nom.hs6_heading[*y];
            let c = nom.heading_chapter[h];
            let mut f = Vec::new();
            let mut cands = |range: std::ops::Range<usize>, feat: &dyn Fn(usize, &mut Vec<f64>)| {
                range
                    .map(|i| {
                        feat(i, &mut f);
                        f.clone()
                    })
                    .collect::<Vec<_>>()
            };
            chapters.push((cands(0..nom.chapters.len(), &|i, f| ev.chapter(i, f)), c));
            let hr = nom.chapter_headings[c].clone();
            headings.push((cands(hr.clone(), &|i, f| ev.heading(i, f)), h - hr.start));
            let sr = nom.heading_subheadings[h].clone();
            subs.push((cands(sr.clone(), &|i, f| ev.hs6(i, f)), y - sr.start));
        }
        let (chapter, n2) = fit_choice(&chapters, &start.chapter);
        let (heading, n4) = fit_choice(&headings, &start.heading);
        let (hs6, n6) = fit_choice(&subs, &start.hs6);
        Calibration {
            chapter,
            heading,
            hs6,
            nll: n2 + n4 + n6,
            fitted_on: examples.len(),
        }
    }
}

/// Conditional-logit fit by Newton's method with step halving and a small ridge; returns the
/// weights and the mean negative log-likelihood (without the ridge).
// Index loops mirror the matrix formulas.
#[allow(clippy::needless_range_loop)]
fn fit_choice(data: &[Choice], start: &[f64]) -> (Vec<f64>, f64) {
    let k = start.len();
    let ridge = 1e-4;
    let n = data.len().max(1) as f64;
    let nll = |w: &[f64]| -> f64 {
        let mut total = 0.0;
        for (cands, y) in data {
            let z: Vec<f64> = cands.iter().map(|f| dot(w, f)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            total += max + z.iter().map(|v| (v - max).exp()).sum::<f64>().ln() - z[*y];
        }
        total / n
    };
    let objective = |w: &[f64]| nll(w) + ridge * w.iter().map(|v| v * v).sum::<f64>();
    let mut w = start.to_vec();
    if data.is_empty() {
        return (w, 0.0);
    }
    let mut current = objective(&w);
    for _ in 0..50 {
        let mut grad = vec![0.0; k];
        let mut hess = vec![vec![0.0; k]; k];
        for (cands, y) in data {
            let mut p: Vec<f64> = cands.iter().map(|f| dot(&w, f)).collect();
            softmax_in_place(&mut p);
            let mut mean = vec![0.0; k];
            for (f, &pi) in cands.iter().zip(&p) {
                for i in 0..k {
                    mean[i] += pi * f[i];
                    for j in 0..=i {
                        hess[i][j] += pi * f[i] * f[j];
                    }
                }
            }
            for i in 0..k {
                grad[i] += mean[i] - cands[*y][i];
                for j in 0..=i {
                    hess[i][j] -= mean[i] * mean[j];
                }
            }
        }
        for i in 0..k {
            grad[i] = grad[i] / n + 2.0 * ridge * w[i];
            for j in 0..=i {
                hess[i][j] /= n;
                hess[j][i] = hess[i][j];
            }
            hess[i][i] += 2.0 * ridge;
        }
        let Some(step) = solve(hess, grad.clone()) else {
            break;
        };
        let mut scale = 1.0;
        let mut improved = false;
        for _ in 0..30 {
            let trial: Vec<f64> = w.iter().zip(&step).map(|(a, s)| a - scale * s).collect();
            let value = objective(&trial);
            if value < current - 1e-12 {
                w = trial;
                current = value;
                improved = true;
                break;
            }
            scale *= 0.5;
        }
        if !improved || grad.iter().map(|g| g * g).sum::<f64>().sqrt() < 1e-8 {
            break;
        }
    }
    let value = nll(&w);
    (w, value)
}

/// Solves `a x = b` by Gaussian elimination with partial pivoting (a handful of unknowns).
#[allow(clippy::needless_range_loop)]
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let pivot = (col..n).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..n {
            let factor = a[row][col] / a[col][col];
            for c in col..n {
                a[row][c] -= factor * a[col][c];
            }
            b[row] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| a[row][c] * x[c]).sum();
        x[row] = (b[row] - s) / a[row][row];
    }
    Some(x)
}

/// Expected calibration error of top-1 confidences (equal-width bins): `Σ_bins |acc − conf|·n_bin/n`.
pub fn expected_calibration_error(confidence_correct: &[(f64, bool)], bins: usize) -> f64 {
    if confidence_correct.is_empty() || bins == 0 {
        return 0.0;
    }
    let mut sum_conf = vec![0.0; bins];
    let mut sum_acc = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for &(c, ok) in confidence_correct {
        let b = ((c.clamp(0.0, 1.0) * bins as f64) as usize).min(bins - 1);
        sum_conf[b] += c;
        sum_acc[b] += if ok { 1.0 } else { 0.0 };
        count[b] += 1;
    }
    let n = confidence_correct.len() as f64;
    (0..bins)
        .filter(|&b| count[b] > 0)
        .map(|b| (sum_acc[b] - sum_conf[b]).abs() / n)
        .sum()
}

/// ROC-AUC of scores where `true` marks positives (ties count one half); `None` without both classes.
pub fn roc_auc(scored: &[(f64, bool)]) -> Option<f64> {
    let pos = scored.iter().filter(|s| s.1).count();
    let neg = scored.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut sorted: Vec<(f64, bool)> = scored.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += avg_rank * sorted[i..j].iter().filter(|s| s.1).count() as f64;
        i = j;
    }
    Some((rank_sum - (pos * (pos + 1)) as f64 / 2.0) / (pos * neg) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn auc_of_perfect_and_reversed_and_tied_scores() {
        assert_eq!(roc_auc(&[(0.1, false), (0.9, true)]), Some(1.0));
        assert_eq!(roc_auc(&[(0.9, false), (0.1, true)]), Some(0.0));
        assert_eq!(roc_auc(&[(0.5, false), (0.5, true)]), Some(0.5));
        assert_eq!(roc_auc(&[(0.5, true)]), None);
    }

    #[test]
    fn ece_is_zero_when_confidence_matches_accuracy() {
        let v: Vec<(f64, bool)> = (0..10).map(|i| (0.75, i < 7)).collect();
        let e = expected_calibration_error(&v, 10);
        assert!((e - 0.05).abs() < 1e-9, "{e}");
        let perfect = [(1.0, true), (0.0, false)];
        assert_eq!(expected_calibration_error(&perfect, 10), 0.0);
    }

    #[test]
    fn newton_fit_sharpens_scores_that_rank_well() {
        let nom = Nomenclature::hs2022();
        let n6 = nom.subheadings.len();
        let mut examples = Vec::new();
        for y in (0..n6).step_by(150) {
            let mut s6 = vec![0.1f32; n6];
            s6[y] = 0.6;
            s6[(y + 1) % n6] = 0.5; // a close competitor
            let mut s4 = vec![0.1f32; nom.headings.len()];
            s4[nom.hs6_heading[y]] = 0.5;
            let mut s2 = vec![0.1f32; nom.chapters.len()];
            s2[nom.hs6_chapter(y)] = 0.5;
            examples.push((vec![LevelScores { s6, s4, s2 }], y));
        }
        let start = Calibration::start(1);
        let cal = Calibration::fit(nom, &examples, &start);
        let refs: Vec<&LevelScores> = examples[0].0.iter().collect();
        let p = cal.probabilities(nom, &refs);
        let before = start.probabilities(nom, &refs);
        assert!(p.p6[examples[0].1] > before.p6[examples[0].1], "{cal:?}");
        assert!(p.p6[examples[0].1] > 0.5, "{}", p.p6[examples[0].1]);
        assert!(cal.nll < 1.0, "{cal:?}");
        assert!((p.p6.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((p.p2.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!((p.p4.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn fast_probabilities_match_the_fit_features() {
        let nom = Nomenclature::hs2022();
        let index = crate::lexical::LexicalIndex::build(nom, &[], &Default::default());
        let s = index.level_scores("frozen boneless bovine meat");
        let cal = Calibration {
            chapter: vec![6.0, 3.0, 9.0],
            heading: vec![7.0, 11.0],
            hs6: vec![12.0],
            nll: 0.0,
            fitted_on: 0,
        };
        let fast = cal.probabilities(nom, &[&s]);
        // the reference: Evidence features and dot products, as in the fit
        let refs = [&s];
        let ev = Evidence::new(nom, &refs);
        let mut f = Vec::new();
        let mut z2: Vec<f64> = (0..nom.chapters.len())
            .map(|c| {
                ev.chapter(c, &mut f);
                dot(&cal.chapter, &f)
            })
            .collect();
        softmax_in_place(&mut z2);
        for (a, b) in fast.p2.iter().zip(&z2) {
            assert!((a - b).abs() < 1e-12);
        }
        let h = nom.hs6_heading[Probabilities::top(&fast.p6, 1)[0]];
        let r = nom.heading_subheadings[h].clone();
        let mut z6: Vec<f64> = r
            .clone()
            .map(|c| {
                ev.hs6(c, &mut f);
                dot(&cal.hs6, &f)
            })
            .collect();
        softmax_in_place(&mut z6);
        for (c, p) in r.zip(z6) {
            assert!((fast.p6[c] / fast.p4[h] - p).abs() < 1e-6);
        }
        assert_eq!(nom.chapters[Probabilities::top(&fast.p2, 1)[0]].code, "02");
    }

    proptest! {
        #[test]
        fn auc_is_in_unit_interval(v in proptest::collection::vec((0.0f64..1.0, any::<bool>()), 0..50)) {
            if let Some(a) = roc_auc(&v) {
                prop_assert!((0.0..=1.0).contains(&a));
            }
            let e = expected_calibration_error(&v, 10);
            prop_assert!((0.0..=1.0).contains(&e));
        }

        #[test]
        fn top_k_is_sorted_and_distinct(v in proptest::collection::vec(0.0f64..1.0, 1..40), k in 0usize..10) {
            let t = Probabilities::top(&v, k);
            prop_assert_eq!(t.len(), k.min(v.len()));
            for w in t.windows(2) {
                prop_assert!(v[w[0]] >= v[w[1]]);
            }
        }
    }
}
