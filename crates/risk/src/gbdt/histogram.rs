//! The seam between the rows and the trees: a node's histograms, and the split found from them.
//!
//! Growing a tree needs, for each node it may split, the gradient and hessian sums of the node's
//! rows per bin of every feature ([`NodeHistogram`]), and nothing else from the rows:
//! [`find_split`] turns a histogram into the node's best split. Histograms of disjoint rows binned
//! with the same [`Binning`] add up ([`NodeHistogram::add`]) to the histogram of all of them, so
//! rows held in several places (the nodes of a federation) can grow one tree: each builds its
//! histograms from its own rows, and the splits are found on their sum. The grower asks for
//! histograms through [`NodeRows`]; [`LocalRows`] answers from rows in memory, as training does.

use rayon::prelude::*;

use super::binning::{BinnedRows, Binning, FeatureBins};
use super::GbdtConfig;

/// Scale of the fixed-point gradient and hessian sums: each row's gradient and hessian are
/// rounded to a multiple of 2^-32 ([`to_fixed`]) before they are summed.
pub const FIXED_ONE: f64 = 4_294_967_296.0;

/// `x` in fixed point (a multiple of 2^-32, rounded to nearest): the form every gradient and
/// hessian is summed in, so that sums are exact and do not depend on the order of the additions
/// (pooled rows in any order, or the histograms of several holders of rows added up, give the
/// same bits). Sums stay exact while their magnitude stays below 2^31 (the range of `i64` in
/// units of 2^-32): training checks that the rows' weights sum to less than 2^30
/// ([`crate::gbdt::LabelSums::check`]), which bounds every gradient and hessian sum, and the
/// difference of two, with room to spare.
pub fn to_fixed(x: f64) -> i64 {
    (x * FIXED_ONE).round() as i64
}

/// A fixed-point value ([`to_fixed`]) as `f64`.
pub fn from_fixed(x: i64) -> f64 {
    x as f64 / FIXED_ONE
}

/// Gradient and hessian sums of a bin (or of a node), in fixed point ([`to_fixed`]): exact, so
/// that they add and subtract in any order to the same bits. Row counts are not kept per bin
/// (as in LightGBM): a side's count is estimated from its hessian share of the node; node
/// covers, which TreeSHAP needs exactly, are counted rows ([`NodeHistogram::n_rows`]).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct BinStat {
    /// Sum of the rows' gradients, in units of 2^-32.
    pub g: i64,
    /// Sum of the rows' hessians, in units of 2^-32.
    pub h: i64,
}

impl BinStat {
    /// Adds `other`'s sums.
    pub fn add(&mut self, other: &BinStat) {
        self.g += other.g;
        self.h += other.h;
    }

    /// The sums of `self` less `other`'s.
    pub fn minus(&self, other: &BinStat) -> BinStat {
        BinStat {
            g: self.g - other.g,
            h: self.h - other.h,
        }
    }

    /// Whether rows whose sums are bounded by `max_abs` can give these: a hessian sum in
    /// `0..=max_abs`, a gradient sum in `-max_abs..=max_abs`.
    pub fn within(&self, max_abs: i64) -> bool {
        (0..=max_abs).contains(&self.h) && (-max_abs..=max_abs).contains(&self.g)
    }

    /// The gradient sum as a number.
    pub fn gradient(&self) -> f64 {
        from_fixed(self.g)
    }

    /// The hessian sum as a number.
    pub fn hessian(&self) -> f64 {
        from_fixed(self.h)
    }
}

/// Leaves with fewer rows build their histogram on one thread (a second buffer to zero and merge
/// costs more than it saves).
const PARALLEL_MIN_ROWS: usize = 4096;

/// The histograms of one node: gradient and hessian sums of its rows in every bin of every
/// feature, feature after feature as the [`Binning`] lays them out, and the number of rows.
///
/// Histograms of disjoint row sets add up to the histogram of their union
/// ([`NodeHistogram::add`]); a node's histogram less one child's is the other child's
/// ([`NodeHistogram::subtract`]). Sums are exact (fixed point, [`to_fixed`]): the same bits
/// whatever the order rows and histograms are added in.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeHistogram {
    bins: Vec<BinStat>,
    n_rows: usize,
}

/// The bins written by [`NodeHistogram::extend_words_of`] for `features` (the other features'
/// bins zero), each accepted by `ok`; `None` when `features` are not ascending features of
/// `binning`, the words are not as many as those features' bins need, or a bin is refused.
fn bins_of_words(
    binning: &Binning,
    features: &[usize],
    words: &[u64],
    ok: impl Fn(&BinStat) -> bool,
) -> Option<Vec<BinStat>> {
    let n_features = binning.features().len();
    let ascending = features.windows(2).all(|w| w[0] < w[1]);
    if !ascending || features.last().is_some_and(|&f| f >= n_features) {
        return None;
    }
    if words.len() != NodeHistogram::words_len(binning, features) {
        return None;
    }
    let mut bins = vec![BinStat::default(); binning.total_bins];
    let mut pairs = words[1..].chunks_exact(2);
    for &f in features {
        let start = binning.offsets[f];
        for stat in &mut bins[start..start + binning.features()[f].n_bins()] {
            let w = pairs.next()?;
            *stat = BinStat {
                g: w[0] as i64,
                h: w[1] as i64,
            };
            if !ok(stat) {
                return None;
            }
        }
    }
    Some(bins)
}

impl NodeHistogram {
    /// An empty histogram (no rows) for `binning`.
    pub fn empty(binning: &Binning) -> NodeHistogram {
        NodeHistogram {
            bins: vec![BinStat::default(); binning.total_bins],
            n_rows: 0,
        }
    }

    /// The histogram of `rows` (indices into `binned`, and into `gradients` and `hessians`, in
    /// fixed point: [`to_fixed`]).
    ///
    /// Row by row over the row-major bins: each row's gradient, hessian and bins are read once
    /// (column by column would re-read the gradients once per feature). From 4,096 rows on, the
    /// rows are summed in two halves on two threads; the sums are exact, so the result depends
    /// on the rows only, never on their order or the threads.
    pub fn build(
        binning: &Binning,
        binned: &BinnedRows,
        rows: &[u32],
        gradients: &[i64],
        hessians: &[i64],
    ) -> NodeHistogram {
        let one_part = |part: &[u32]| {
            let mut hist = vec![BinStat::default(); binning.total_bins];
            let n_features = binning.offsets.len();
            for &r in part {
                let r = r as usize;
                let (g, h) = (gradients[r], hessians[r]);
                let row_bins = &binned.row_major[r * n_features..(r + 1) * n_features];
                for (offset, &bin) in binning.offsets.iter().zip(row_bins) {
                    let stat = &mut hist[offset + bin as usize];
                    stat.g += g;
                    stat.h += h;
                }
            }
            hist
        };
        let bins = if rows.len() < PARALLEL_MIN_ROWS {
            one_part(rows)
        } else {
            let (first, second) = rows.split_at(rows.len() / 2);
            let (mut a, b) = rayon::join(|| one_part(first), || one_part(second));
            for (x, y) in a.iter_mut().zip(&b) {
                x.add(y);
            }
            a
        };
        NodeHistogram {
            bins,
            n_rows: rows.len(),
        }
    }

    /// Adds the histogram of other rows (binned the same way) to this one.
    ///
    /// # Panics
    /// When the two histograms are not laid out for the same binning.
    pub fn add(&mut self, other: &NodeHistogram) {
        assert_eq!(
            self.bins.len(),
            other.bins.len(),
            "histograms of different binnings"
        );
        for (x, y) in self.bins.iter_mut().zip(&other.bins) {
            x.add(y);
        }
        self.n_rows += other.n_rows;
    }

    /// Takes the histogram of some of this node's rows (a child's) away, leaving the other
    /// child's.
    ///
    /// # Panics
    /// When the two histograms are not laid out for the same binning, or `part` has more rows.
    pub fn subtract(&mut self, part: &NodeHistogram) {
        assert_eq!(
            self.bins.len(),
            part.bins.len(),
            "histograms of different binnings"
        );
        for (x, y) in self.bins.iter_mut().zip(&part.bins) {
            *x = x.minus(y);
        }
        self.n_rows -= part.n_rows;
    }

    /// Number of rows summed.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The histogram as words: the row count, then each bin's gradient and hessian sums (two's
    /// complement). Words of several histograms added with wrapping arithmetic are the words of
    /// their sum (what secure aggregation adds, masked).
    pub fn to_words(&self) -> Vec<u64> {
        let mut words = Vec::with_capacity(1 + 2 * self.bins.len());
        words.push(self.n_rows as u64);
        for stat in &self.bins {
            words.push(stat.g as u64);
            words.push(stat.h as u64);
        }
        words
    }

    /// The histogram [`NodeHistogram::to_words`] wrote, for `binning`; `None` when the words are
    /// not a histogram of that binning: another length, or sums out of range (a row count above
    /// `max_rows`, a negative hessian sum, or a sum whose magnitude is above `max_abs`, in fixed
    /// point: rows whose weights sum to `W` have gradient and hessian sums of at most `W` plus
    /// one unit per row).
    pub fn from_words(
        binning: &Binning,
        words: &[u64],
        max_rows: usize,
        max_abs: i64,
    ) -> Option<NodeHistogram> {
        if words.len() != 1 + 2 * binning.total_bins {
            return None;
        }
        let n_rows = usize::try_from(words[0]).ok().filter(|&n| n <= max_rows)?;
        let bins: Vec<BinStat> = words[1..]
            .chunks_exact(2)
            .map(|w| BinStat {
                g: w[0] as i64,
                h: w[1] as i64,
            })
            .collect();
        bins.iter()
            .all(|b| b.within(max_abs))
            .then_some(NodeHistogram { bins, n_rows })
    }

    /// Words of a histogram of features `features` only ([`NodeHistogram::extend_words_of`]).
    pub fn words_len(binning: &Binning, features: &[usize]) -> usize {
        1 + 2 * features
            .iter()
            .map(|&f| binning.features()[f].n_bins())
            .sum::<usize>()
    }

    /// Appends [`NodeHistogram::to_words`]'s words of features `features` only (ascending):
    /// the row count, then those features' bins. What a holder of rows sends for a tree that
    /// reads those features only: the others' sums would never be looked at.
    pub fn extend_words_of(&self, binning: &Binning, features: &[usize], out: &mut Vec<u64>) {
        out.reserve(NodeHistogram::words_len(binning, features));
        out.push(self.n_rows as u64);
        for &f in features {
            for stat in self.feature(binning, f) {
                out.push(stat.g as u64);
                out.push(stat.h as u64);
            }
        }
    }

    /// [`NodeHistogram::extend_words_of`] of this histogram less `part` (a child's rows): the
    /// other child's words, without building its histogram. Wrapping, as words add.
    pub fn extend_words_less(
        &self,
        part: &NodeHistogram,
        binning: &Binning,
        features: &[usize],
        out: &mut Vec<u64>,
    ) {
        out.reserve(NodeHistogram::words_len(binning, features));
        out.push((self.n_rows as u64).wrapping_sub(part.n_rows as u64));
        for &f in features {
            for (whole, part) in self
                .feature(binning, f)
                .iter()
                .zip(part.feature(binning, f))
            {
                out.push(whole.g.wrapping_sub(part.g) as u64);
                out.push(whole.h.wrapping_sub(part.h) as u64);
            }
        }
    }

    /// The histogram [`NodeHistogram::extend_words_of`] wrote for `features` (the other
    /// features' bins are zero), checked as [`NodeHistogram::from_words`] checks; `None` also
    /// when `features` are not ascending features of `binning`.
    pub fn from_words_of(
        binning: &Binning,
        features: &[usize],
        words: &[u64],
        max_rows: usize,
        max_abs: i64,
    ) -> Option<NodeHistogram> {
        let bins = bins_of_words(binning, features, words, |stat| stat.within(max_abs))?;
        let n_rows = usize::try_from(words[0]).ok().filter(|&n| n <= max_rows)?;
        Some(NodeHistogram { bins, n_rows })
    }

    /// [`NodeHistogram::from_words_of`] for sums with noise added to them (differential
    /// privacy): the words are read as signed, and every sum may stray up to `tolerance` beyond
    /// what rows can give (rows for the row count; gradient and hessian sums in fixed point).
    /// Further out, `None`: no noise of that scale gives it. Within, the bins' sums are kept as
    /// they are (clamping each bin would bias every total built from them) and the row count
    /// is clamped to `0..=max_rows`, which reads the noisy sums only and so spends no privacy.
    pub fn from_noisy_words_of(
        binning: &Binning,
        features: &[usize],
        words: &[u64],
        max_rows: usize,
        max_abs: i64,
        tolerance: (u64, i64),
    ) -> Option<NodeHistogram> {
        let (rows_tolerance, abs_tolerance) =
            (i64::try_from(tolerance.0).ok()?, tolerance.1.max(0));
        let wide = max_abs.saturating_add(abs_tolerance);
        let bins = bins_of_words(binning, features, words, |stat| {
            (-abs_tolerance..=wide).contains(&stat.h) && (-wide..=wide).contains(&stat.g)
        })?;
        let max_rows_signed = i64::try_from(max_rows).ok()?;
        let rows = words[0] as i64;
        if rows < -rows_tolerance || rows > max_rows_signed.saturating_add(rows_tolerance) {
            return None;
        }
        let mut histogram = NodeHistogram {
            bins,
            n_rows: usize::try_from(rows.max(0)).ok()?,
        };
        histogram.clamp_rows(max_rows);
        Some(histogram)
    }

    /// Clamps the row count to at most `max_rows` (noisy sums: the left child of a split is
    /// made to fit in its parent).
    pub fn clamp_rows(&mut self, max_rows: usize) {
        self.n_rows = self.n_rows.min(max_rows);
    }

    /// Whether every bin's sums are what rows can give ([`NodeHistogram::from_words`]'s
    /// check) and the row count is at most `max_rows`.
    pub fn within(&self, max_rows: usize, max_abs: i64) -> bool {
        self.n_rows <= max_rows && self.bins.iter().all(|b| b.within(max_abs))
    }

    /// The sums of feature `feature`'s bins, bin 0 (missing) first.
    pub fn feature(&self, binning: &Binning, feature: usize) -> &[BinStat] {
        let start = binning.offsets[feature];
        &self.bins[start..start + binning.features()[feature].n_bins()]
    }

    /// Gradient and hessian sums of the node: the sum over the bins of one feature (the first).
    pub fn total(&self, binning: &Binning) -> BinStat {
        let mut total = BinStat::default();
        if !binning.features().is_empty() {
            self.feature(binning, 0).iter().for_each(|b| total.add(b));
        }
        total
    }
}

/// How a split routes bins: the form splits are found in, before they become a
/// [`super::Split`] in raw units.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BinSplit {
    /// Bins `1..=threshold_bin` go left; missing (bin 0) goes left iff `default_left`.
    Numeric {
        /// Last bin on the left.
        threshold_bin: u8,
        /// Direction of missing values.
        default_left: bool,
    },
    /// Bins with `left[bin]` go left (bin 0 = missing).
    Categorical {
        /// Per bin, whether it goes left.
        left: Vec<bool>,
    },
}

impl BinSplit {
    /// Whether a row in bin `bin` goes to the left child.
    pub fn goes_left(&self, bin: u8) -> bool {
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

/// The best split of a node.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitCandidate {
    /// Gain in the regularised log-loss objective.
    pub gain: f64,
    /// Feature split on.
    pub feature: usize,
    /// How bins go.
    pub split: BinSplit,
}

/// The best split of a node from its histogram, `None` when no split is allowed or gains more
/// than `config.min_gain_to_split`.
///
/// `total` is the node's gradient and hessian sums: [`NodeHistogram::total`], except that the
/// grower passes a right child's as its parent's less its sibling's (equal up to rounding; the
/// grower keeps doing so because trained models' bits depend on it). `allowed[feature]` says
/// which features this tree may split on (feature fraction).
/// Constraints on rows (`min_data_in_leaf`, `min_data_per_group`) use the histogram's row count;
/// the depth limit is the grower's. Ties go to the lowest feature index.
pub fn find_split(
    histogram: &NodeHistogram,
    total: &BinStat,
    binning: &Binning,
    config: &GbdtConfig,
    allowed: &[bool],
) -> Option<SplitCandidate> {
    let n_rows = histogram.n_rows();
    if n_rows < 2 * config.min_data_in_leaf || total.h <= 0 {
        return None;
    }
    let finder = SplitFinder {
        config,
        total,
        rows_per_hessian: n_rows as f64 / total.hessian(),
    };
    let one_feature = |feature: usize| {
        if !allowed[feature] {
            return None;
        }
        let hist = histogram.feature(binning, feature);
        match &binning.features()[feature] {
            FeatureBins::Numeric { .. } => finder.numeric_split(feature, hist),
            FeatureBins::Categorical { has_other, .. } => {
                finder.categorical_split(feature, hist, *has_other)
            }
        }
    };
    let n_features = binning.features().len();
    // Measured: running small leaves on one thread was slower (2.8 s → 4.0 s for 300 trees).
    let candidates: Vec<Option<SplitCandidate>> =
        (0..n_features).into_par_iter().map(one_feature).collect();
    // Highest gain; ties to the lowest feature index (determinism).
    candidates
        .into_iter()
        .flatten()
        .fold(None, |best: Option<SplitCandidate>, c| match best {
            Some(b) if b.gain >= c.gain => Some(b),
            _ => Some(c),
        })
        .filter(|c| c.gain > config.min_gain_to_split)
}

struct SplitFinder<'a> {
    config: &'a GbdtConfig,
    total: &'a BinStat,
    rows_per_hessian: f64,
}

impl SplitFinder<'_> {
    fn gain(&self, left: &BinStat, right: &BinStat, extra_l2: f64) -> f64 {
        let total = self.total;
        let l2 = self.config.lambda_l2 + extra_l2;
        // A noisy hessian sum below 0 reads as 0 (exact ones never are: see `leaf_value`).
        let term = |s: &BinStat| s.gradient() * s.gradient() / (s.hessian().max(0.0) + l2);
        term(left) + term(right) - term(total)
    }

    /// Whether a side has enough rows (estimated from its hessian) and hessian.
    fn admissible(&self, side: &BinStat) -> bool {
        side.hessian() * self.rows_per_hessian >= self.config.min_data_in_leaf as f64 - 1e-9
            && side.hessian() >= self.config.min_sum_hessian
    }

    fn numeric_split(&self, feature: usize, hist: &[BinStat]) -> Option<SplitCandidate> {
        let total = self.total;
        let missing = hist[0];
        let directions: &[bool] = if missing.h > 0 {
            &[false, true]
        } else {
            &[false]
        };
        let mut best: Option<SplitCandidate> = None;
        for &default_left in directions {
            let mut left = if default_left {
                missing
            } else {
                BinStat::default()
            };
            for (b, stat) in hist.iter().enumerate().skip(1) {
                if stat.h == 0 {
                    // Same partition as the previous threshold: its gain was already seen.
                    continue;
                }
                left.add(stat);
                let right = total.minus(&left);
                if right.hessian() * self.rows_per_hessian
                    < self.config.min_data_in_leaf as f64 - 1e-9
                {
                    break;
                }
                if !self.admissible(&left) || !self.admissible(&right) {
                    continue;
                }
                let gain = self.gain(&left, &right, 0.0);
                if best.as_ref().is_none_or(|c| gain > c.gain) {
                    best = Some(SplitCandidate {
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
        has_other: bool,
    ) -> Option<SplitCandidate> {
        let config = self.config;
        let n_bins = hist.len();
        // The "other" bin (rare categories) never joins the left set: unseen codes go right too.
        let last_eligible = if has_other { n_bins - 1 } else { n_bins };
        let present: Vec<usize> = (0..last_eligible).filter(|&b| hist[b].h > 0).collect();
        let mut best: Option<SplitCandidate> = None;
        let mut consider = |set: &[usize], extra_l2: f64| {
            let mut left = BinStat::default();
            for &b in set {
                left.add(&hist[b]);
            }
            let right = self.total.minus(&left);
            if !self.admissible(&left) || !self.admissible(&right) {
                return;
            }
            let gain = self.gain(&left, &right, extra_l2);
            if best.as_ref().is_none_or(|c| gain > c.gain) {
                let mut mask = vec![false; n_bins];
                for &b in set {
                    mask[b] = true;
                }
                best = Some(SplitCandidate {
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
            .filter(|&b| {
                hist[b].hessian() * self.rows_per_hessian >= config.min_data_per_group as f64
            })
            .map(|b| {
                (
                    hist[b].gradient() / (hist[b].hessian() + config.cat_smooth),
                    b,
                )
            })
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

/// The rows of a tree's nodes, as the grower sees them: it never reads rows, it splits nodes and
/// asks for their histograms. Node ids are the grower's: the root is 0, and a split of node `n`
/// names its children. Answers may fail (rows held elsewhere, asked over a network); the grower
/// then stops and returns the error.
pub trait NodeRows {
    /// Why an answer failed ([`std::convert::Infallible`] for rows in memory).
    type Error;

    /// The histogram of the root (every row the tree is grown on).
    fn root(&mut self) -> Result<NodeHistogram, Self::Error>;

    /// Sends node `node`'s rows to children `left` and `right` by `split` of feature `feature`;
    /// returns the children's row counts.
    fn split(
        &mut self,
        node: usize,
        feature: usize,
        split: &BinSplit,
        left: usize,
        right: usize,
    ) -> Result<(usize, usize), Self::Error>;

    /// The histogram of node `node`'s rows (a node made by [`NodeRows::split`]).
    fn histogram(&mut self, node: usize) -> Result<NodeHistogram, Self::Error>;

    /// Before each split: the leaves the grower may split next, as (node, feature, split),
    /// best gain first, as many as splits are left. The next [`NodeRows::split`] is the first
    /// of them; the others may follow, unless their children's gains come first. Rows held
    /// elsewhere use it to split ahead in one round; rows in memory ignore it.
    fn ahead(&mut self, _candidates: &[(usize, usize, &BinSplit)]) {}
}

/// Rows in memory, with their gradients and hessians: the [`NodeRows`] training uses, and what
/// each holder of rows would answer with in a federation.
pub struct LocalRows<'a> {
    binning: &'a Binning,
    binned: &'a BinnedRows,
    gradients: &'a [i64],
    hessians: &'a [i64],
    /// Rows of each node not split yet, by node id (ascending row indices).
    rows: Vec<Option<Vec<u32>>>,
}

impl<'a> LocalRows<'a> {
    /// A tree's rows: `rows` (ascending indices into `binned`, `gradients` and `hessians`, the
    /// latter two in fixed point: [`to_fixed`]) are the root's.
    pub fn new(
        binning: &'a Binning,
        binned: &'a BinnedRows,
        gradients: &'a [i64],
        hessians: &'a [i64],
        rows: Vec<u32>,
    ) -> LocalRows<'a> {
        LocalRows {
            binning,
            binned,
            gradients,
            hessians,
            rows: vec![Some(rows)],
        }
    }

    /// The rows of every node not split, by node id: after growing, the leaves' rows.
    pub fn into_leaves(self) -> Vec<(usize, Vec<u32>)> {
        self.rows
            .into_iter()
            .enumerate()
            .filter_map(|(node, rows)| rows.map(|rows| (node, rows)))
            .collect()
    }

    fn rows(&self, node: usize) -> &[u32] {
        self.rows
            .get(node)
            .and_then(Option::as_deref)
            .unwrap_or_else(|| panic!("node {node} has no rows (split already, or unknown)"))
    }
}

impl NodeRows for LocalRows<'_> {
    type Error = std::convert::Infallible;

    fn root(&mut self) -> Result<NodeHistogram, Self::Error> {
        self.histogram(0)
    }

    fn split(
        &mut self,
        node: usize,
        feature: usize,
        split: &BinSplit,
        left: usize,
        right: usize,
    ) -> Result<(usize, usize), Self::Error> {
        let rows = self
            .rows
            .get_mut(node)
            .and_then(Option::take)
            .unwrap_or_else(|| panic!("node {node} has no rows (split already, or unknown)"));
        let column = &self.binned.bins[feature];
        let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = rows
            .iter()
            .partition(|&&r| split.goes_left(column[r as usize]));
        let counts = (left_rows.len(), right_rows.len());
        let needed = left.max(right) + 1;
        if self.rows.len() < needed {
            self.rows.resize(needed, None);
        }
        self.rows[left] = Some(left_rows);
        self.rows[right] = Some(right_rows);
        Ok(counts)
    }

    fn histogram(&mut self, node: usize) -> Result<NodeHistogram, Self::Error> {
        Ok(NodeHistogram::build(
            self.binning,
            self.binned,
            self.rows(node),
            self.gradients,
            self.hessians,
        ))
    }
}
