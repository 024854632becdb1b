//! Maps raw feature values to small integer bins (histogram GBDT). Bin 0 is always "missing".
//!
//! A [`Binning`] says how every feature's values map to bins. Training learns one from its rows
//! ([`Binning::from_data`]) unless it is given one ([`Binning::new`]): nodes of a federation that
//! add up their histograms must all bin with the same edges and vocabularies.
//!
//! Bins are learned from summaries of the rows, never from the rows themselves
//! ([`FeatureSummary`]: a numeric feature's distinct values with their counts, a categorical
//! feature's codes with their counts). Summaries of disjoint rows merge into the summary of all
//! of them, exactly, so holders of rows in several places get, from the union of their
//! summaries ([`Binning::from_summaries`]), the bins that pooled training learns from all the
//! rows: pooled training takes the same path, with the summary of its own rows.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, FeatureKind};

/// What one holder of rows says about a feature's values so that bins can be agreed without
/// rows: its distinct non-missing values (or category codes) with how many rows have each.
///
/// Exact, not a sketch: the bins learned from merged summaries are those learned from the pooled
/// rows. What it discloses: the holder's distinct values and their counts (no row, no label, no
/// link between features).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeatureSummary {
    /// Distinct values, ascending (`f64::total_cmp`, equal values merged), with their counts.
    Numeric {
        /// (value, rows).
        values: Vec<(f64, u64)>,
    },
    /// Category codes, ascending, with their counts.
    Categorical {
        /// (code, rows).
        counts: Vec<(u32, u64)>,
    },
}

impl FeatureSummary {
    /// The summary of one column of the given kind.
    pub fn of(column: &[f64], kind: FeatureKind) -> FeatureSummary {
        match kind {
            FeatureKind::Numeric => {
                let mut values: Vec<f64> = column.iter().copied().filter(|v| !v.is_nan()).collect();
                values.sort_by(f64::total_cmp);
                FeatureSummary::Numeric {
                    values: merge_runs(values.into_iter().map(|v| (v, 1))),
                }
            }
            FeatureKind::Categorical { .. } => {
                let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
                for &v in column {
                    if !v.is_nan() && v >= 0.0 {
                        *counts.entry(v as u32).or_default() += 1;
                    }
                }
                FeatureSummary::Categorical {
                    counts: counts.into_iter().collect(),
                }
            }
        }
    }

    /// The summaries of every column of `data`, in column order.
    pub fn of_data(data: &Dataset) -> Vec<FeatureSummary> {
        use rayon::prelude::*;
        data.features
            .par_iter()
            .zip(data.columns.par_iter())
            .map(|(info, column)| FeatureSummary::of(column, info.kind))
            .collect()
    }

    /// The summary of the union of the rows `parts` summarise: as [`FeatureSummary::of`] the
    /// pooled column. `None` when the parts are not all of the same kind, or one is ill-formed
    /// (values not ascending, or NaN).
    pub fn merge(parts: &[&FeatureSummary]) -> Option<FeatureSummary> {
        match parts.first()? {
            FeatureSummary::Numeric { .. } => {
                let mut all: Vec<(f64, u64)> = Vec::new();
                for part in parts {
                    let FeatureSummary::Numeric { values } = part else {
                        return None;
                    };
                    let ascending = values.windows(2).all(|w| w[0].0.total_cmp(&w[1].0).is_lt());
                    if !ascending || values.iter().any(|(v, _)| v.is_nan()) {
                        return None;
                    }
                    all.extend(values);
                }
                // Stable: of equal values (0 and -0), the first in total order comes first, as
                // when the pooled column is sorted.
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                Some(FeatureSummary::Numeric {
                    values: merge_runs(all.into_iter()),
                })
            }
            FeatureSummary::Categorical { .. } => {
                let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
                for part in parts {
                    let FeatureSummary::Categorical { counts: part } = part else {
                        return None;
                    };
                    for &(code, n) in part {
                        *counts.entry(code).or_default() += n;
                    }
                }
                Some(FeatureSummary::Categorical {
                    counts: counts.into_iter().collect(),
                })
            }
        }
    }
}

/// Sorted values with counts, equal values (`==`: 0 and -0 too) merged into the first.
fn merge_runs(sorted: impl Iterator<Item = (f64, u64)>) -> Vec<(f64, u64)> {
    let mut distinct: Vec<(f64, u64)> = Vec::new();
    for (v, n) in sorted {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += n,
            _ => distinct.push((v, n)),
        }
    }
    distinct
}

/// How one feature's values map to bins. Serialised with numeric bounds as their IEEE-754 bits
/// (learned bounds end with `+inf`, which JSON has no number for), so that a binning sent to the
/// nodes of a federation arrives bit for bit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeatureBins {
    /// `upper_bounds[b - 1]` is the largest value in bin `b` (bins 1..=len are value bins); values
    /// above the last bound fall in the last bin.
    Numeric {
        /// Ascending upper bounds of the value bins (learned ones end with `+inf`).
        #[serde(with = "f64_bits")]
        upper_bounds: Vec<f64>,
    },
    /// `categories[b - 1]` is the category code of bin `b`; codes not listed fall in the last bin
    /// ("other": too rare to get their own bin), which never goes into a categorical split's set.
    Categorical {
        /// Category codes with a bin of their own, in bin order.
        categories: Vec<u32>,
        /// Whether codes not listed share an "other" bin (otherwise they count as missing).
        has_other: bool,
    },
}

impl FeatureBins {
    /// Number of bins, the missing bin included.
    pub fn n_bins(&self) -> usize {
        match self {
            FeatureBins::Numeric { upper_bounds } => upper_bounds.len() + 1,
            FeatureBins::Categorical {
                categories,
                has_other,
            } => categories.len() + 1 + usize::from(*has_other),
        }
    }

    /// The bin of `value` (0 when missing).
    pub fn bin(&self, value: f64) -> u8 {
        bin_of(self, value)
    }
}

/// `f64`s as their bits, for formats without infinities.
mod f64_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
        let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
        bits.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        let bits = Vec::<u64>::deserialize(d)?;
        Ok(bits.into_iter().map(f64::from_bits).collect())
    }
}

/// A binning that does not fit its features or its data.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid binning: {0}")]
pub struct BinningError(String);

/// How every feature's values map to histogram bins, in feature order, with where each feature's
/// bins start in a node's histogram.
///
/// Invariant: every feature has at most 256 bins (bins are `u8`), numeric bounds ascend strictly,
/// categories are distinct.
///
/// Serialised as its features only; reading one checks it ([`Binning::new`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<FeatureBins>", into = "Vec<FeatureBins>")]
pub struct Binning {
    features: Vec<FeatureBins>,
    /// Start of each feature's bins in a flat histogram.
    pub(crate) offsets: Vec<usize>,
    /// Bins of all features.
    pub(crate) total_bins: usize,
}

impl TryFrom<Vec<FeatureBins>> for Binning {
    type Error = BinningError;

    fn try_from(features: Vec<FeatureBins>) -> Result<Binning, BinningError> {
        Binning::new(features)
    }
}

impl From<Binning> for Vec<FeatureBins> {
    fn from(binning: Binning) -> Vec<FeatureBins> {
        binning.features
    }
}

impl Binning {
    /// A given binning (e.g. agreed by the nodes of a federation), checked.
    pub fn new(features: Vec<FeatureBins>) -> Result<Binning, BinningError> {
        for (j, bins) in features.iter().enumerate() {
            if bins.n_bins() > 256 {
                return Err(BinningError(format!(
                    "feature {j}: {} bins, at most 256",
                    bins.n_bins()
                )));
            }
            match bins {
                FeatureBins::Numeric { upper_bounds } => {
                    if upper_bounds.is_empty() {
                        return Err(BinningError(format!("feature {j}: no value bin")));
                    }
                    if upper_bounds.iter().any(|b| b.is_nan())
                        || upper_bounds.windows(2).any(|w| w[0] >= w[1])
                    {
                        return Err(BinningError(format!(
                            "feature {j}: upper bounds are not strictly ascending"
                        )));
                    }
                }
                FeatureBins::Categorical { categories, .. } => {
                    let mut sorted = categories.clone();
                    sorted.sort_unstable();
                    if sorted.windows(2).any(|w| w[0] == w[1]) {
                        return Err(BinningError(format!(
                            "feature {j}: a category is listed twice"
                        )));
                    }
                }
            }
        }
        Ok(Binning::with_offsets(features))
    }

    fn with_offsets(features: Vec<FeatureBins>) -> Binning {
        let mut offsets = Vec::with_capacity(features.len());
        let mut total_bins = 0;
        for bins in &features {
            offsets.push(total_bins);
            total_bins += bins.n_bins();
        }
        Binning {
            features,
            offsets,
            total_bins,
        }
    }

    /// Learns the bins from `data`'s rows: numeric features in at most `max_bin - 1` quantile
    /// bins over distinct values, categorical ones with a bin for each of the `max_bin - 2` most
    /// frequent codes and an "other" bin for the rest (`max_bin` clamped to 3..=256). This is
    /// [`Binning::from_summaries`] of the one summary of `data`'s rows.
    pub fn from_data(data: &Dataset, max_bin: usize) -> Binning {
        let summary = FeatureSummary::of_data(data);
        Binning::from_summaries(&[summary], max_bin)
            .unwrap_or_else(|e| unreachable!("the summary of one dataset merges: {e}"))
    }

    /// Learns the bins from the summaries of rows held in several places (one list per holder,
    /// one summary per feature in each): the bins [`Binning::from_data`] learns from all their
    /// rows together. Fails when the holders do not summarise the same features.
    pub fn from_summaries(
        holders: &[Vec<FeatureSummary>],
        max_bin: usize,
    ) -> Result<Binning, BinningError> {
        let max_bin = max_bin.clamp(3, 256);
        let Some(first) = holders.first() else {
            return Err(BinningError("no summary".into()));
        };
        if let Some(h) = holders.iter().position(|s| s.len() != first.len()) {
            return Err(BinningError(format!(
                "summary {h} has {} features, summary 0 {}",
                holders[h].len(),
                first.len()
            )));
        }
        let features = (0..first.len())
            .map(|j| {
                let parts: Vec<&FeatureSummary> = holders.iter().map(|s| &s[j]).collect();
                match FeatureSummary::merge(&parts) {
                    Some(FeatureSummary::Numeric { values }) => {
                        Ok(numeric_mapper(&values, max_bin - 1))
                    }
                    Some(FeatureSummary::Categorical { counts }) => {
                        Ok(categorical_mapper(counts, max_bin - 2))
                    }
                    None => Err(BinningError(format!(
                        "feature {j}: summaries of different kinds, or ill-formed"
                    ))),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Binning::with_offsets(features))
    }

    /// The bins of every feature, in feature order.
    pub fn features(&self) -> &[FeatureBins] {
        &self.features
    }

    /// Checks that the binning has one entry of the right kind per column of `data`.
    pub fn check(&self, data: &Dataset) -> Result<(), BinningError> {
        if self.features.len() != data.n_features() {
            return Err(BinningError(format!(
                "{} binned features for {} columns",
                self.features.len(),
                data.n_features()
            )));
        }
        for (j, (bins, info)) in self.features.iter().zip(&data.features).enumerate() {
            let fits = matches!(
                (bins, info.kind),
                (FeatureBins::Numeric { .. }, FeatureKind::Numeric)
                    | (
                        FeatureBins::Categorical { .. },
                        FeatureKind::Categorical { .. }
                    )
            );
            if !fits {
                return Err(BinningError(format!(
                    "feature {j} ({}): bins of the wrong kind",
                    info.name
                )));
            }
        }
        Ok(())
    }

    /// `data`'s rows in bins.
    ///
    /// # Panics
    /// When the binning does not fit `data` ([`Binning::check`]).
    pub fn bin_rows(&self, data: &Dataset) -> BinnedRows {
        use rayon::prelude::*;
        if let Err(e) = self.check(data) {
            panic!("{e}");
        }
        let bins: Vec<Vec<u8>> = self
            .features
            .par_iter()
            .zip(data.columns.par_iter())
            .map(|(mapper, column)| column.iter().map(|&v| bin_of(mapper, v)).collect())
            .collect();
        let n_rows = data.n_rows();
        let n_features = bins.len();
        let mut row_major = vec![0u8; n_rows * n_features];
        for (f, column) in bins.iter().enumerate() {
            for (r, &b) in column.iter().enumerate() {
                row_major[r * n_features + f] = b;
            }
        }
        BinnedRows { bins, row_major }
    }
}

/// A matrix in bins: `bins[feature][row]`, and the same row-major
/// (`row_major[row * n_features + feature]`) for row-wise histograms.
#[derive(Clone, Debug)]
pub struct BinnedRows {
    pub(crate) bins: Vec<Vec<u8>>,
    pub(crate) row_major: Vec<u8>,
}

impl BinnedRows {
    /// The bins of feature `feature`, row by row.
    pub fn column(&self, feature: usize) -> &[u8] {
        &self.bins[feature]
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.bins.first().map_or(0, Vec::len)
    }
}

fn bin_of(mapper: &FeatureBins, value: f64) -> u8 {
    if value.is_nan() {
        return 0;
    }
    match mapper {
        FeatureBins::Numeric { upper_bounds } => {
            let idx = upper_bounds.partition_point(|&ub| ub < value);
            (idx.min(upper_bounds.len() - 1) + 1) as u8
        }
        FeatureBins::Categorical {
            categories,
            has_other,
        } => {
            let code = value as u32;
            match categories.iter().position(|&c| c == code) {
                Some(p) => (p + 1) as u8,
                None if *has_other => (categories.len() + 1) as u8,
                None => 0,
            }
        }
    }
}

/// Quantile bins over distinct values (ascending, with their counts): each distinct value gets
/// its own bin while there are few; otherwise boundaries split the sorted values into near-equal
/// counts, never inside a run of equal values.
fn numeric_mapper(distinct: &[(f64, u64)], max_value_bins: usize) -> FeatureBins {
    if distinct.is_empty() {
        return FeatureBins::Numeric {
            upper_bounds: vec![f64::INFINITY],
        };
    }
    let n_values: u64 = distinct.iter().map(|(_, n)| n).sum();
    let mut upper_bounds = Vec::new();
    if distinct.len() <= max_value_bins {
        for w in distinct.windows(2) {
            upper_bounds.push(midpoint(w[0].0, w[1].0));
        }
    } else {
        let per_bin = n_values as f64 / max_value_bins as f64;
        let mut seen = 0u64;
        let mut next_cut = per_bin;
        for w in distinct.windows(2) {
            seen += w[0].1;
            if seen as f64 >= next_cut && upper_bounds.len() + 1 < max_value_bins {
                upper_bounds.push(midpoint(w[0].0, w[1].0));
                while next_cut <= seen as f64 {
                    next_cut += per_bin;
                }
            }
        }
    }
    upper_bounds.push(f64::INFINITY);
    FeatureBins::Numeric { upper_bounds }
}

fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    if m >= b {
        a
    } else {
        m
    }
}

/// Categories (codes with their counts) by descending frequency (ties by code, for
/// determinism); the rarest beyond `max_categories` share one "other" bin.
fn categorical_mapper(counts: Vec<(u32, u64)>, max_categories: usize) -> FeatureBins {
    let mut by_freq = counts;
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let has_other = by_freq.len() > max_categories;
    by_freq.truncate(max_categories);
    FeatureBins::Categorical {
        categories: by_freq.into_iter().map(|(c, _)| c).collect(),
        has_other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(column: &[f64], max_value_bins: usize) -> FeatureBins {
        match FeatureSummary::of(column, FeatureKind::Numeric) {
            FeatureSummary::Numeric { values } => numeric_mapper(&values, max_value_bins),
            FeatureSummary::Categorical { .. } => unreachable!(),
        }
    }

    #[test]
    fn numeric_bins_respect_order_and_missing() {
        let column: Vec<f64> = (0..1000)
            .map(|i| (i % 100) as f64)
            .chain([f64::NAN])
            .collect();
        let mapper = numeric(&column, 16);
        assert!(mapper.n_bins() <= 17);
        assert_eq!(bin_of(&mapper, f64::NAN), 0);
        let mut last = 0;
        for v in 0..100 {
            let b = bin_of(&mapper, v as f64);
            assert!(b >= last && b >= 1, "value {v} bin {b} after {last}");
            last = b;
        }
    }

    #[test]
    fn a_binning_travels_as_json_bit_for_bit_and_is_checked_when_read() {
        let binning = Binning::new(vec![
            numeric(&[0.1, 0.2, 0.30000000000000004, 7.5, -3.0], 255),
            FeatureBins::Categorical {
                categories: vec![4, 1, 9],
                has_other: true,
            },
        ])
        .unwrap();
        let json = serde_json::to_string(&binning).unwrap();
        let back: Binning = serde_json::from_str(&json).unwrap();
        assert_eq!(back, binning);
        assert_eq!(back.offsets, binning.offsets);
        let FeatureBins::Numeric { upper_bounds } = &back.features()[0] else {
            unreachable!()
        };
        assert_eq!(upper_bounds.last(), Some(&f64::INFINITY));
        // Bounds out of order are refused on reading.
        let mut bad: serde_json::Value = serde_json::from_str(&json).unwrap();
        let bounds = bad[0]["Numeric"]["upper_bounds"].as_array_mut().unwrap();
        bounds.swap(0, 1);
        assert!(serde_json::from_value::<Binning>(bad).is_err());
    }

    #[test]
    fn few_distinct_values_get_own_bins() {
        let column = [1.0, 2.0, 2.0, 5.0];
        let mapper = numeric(&column, 255);
        let bins: Vec<u8> = column.iter().map(|&v| bin_of(&mapper, v)).collect();
        assert_eq!(bins, vec![1, 2, 2, 3]);
        assert_eq!(bin_of(&mapper, 100.0), 3);
    }

    #[test]
    fn rare_categories_share_other_bin() {
        let column = [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0];
        let FeatureSummary::Categorical { counts } =
            FeatureSummary::of(&column, FeatureKind::Categorical { cardinality: 4 })
        else {
            unreachable!()
        };
        let mapper = categorical_mapper(counts, 2);
        assert_eq!(bin_of(&mapper, 0.0), 1);
        assert_eq!(bin_of(&mapper, 1.0), 2);
        assert_eq!(bin_of(&mapper, 2.0), 3);
        assert_eq!(bin_of(&mapper, 3.0), 3);
        assert_eq!(bin_of(&mapper, f64::NAN), 0);
    }

    /// Bins from the union of several holders' summaries are the bins of all their rows: many
    /// distinct values (quantile cuts across holders), 0 and -0, missing values, categories
    /// beyond the vocabulary's size; summaries that do not fit are refused.
    #[test]
    fn bins_from_merged_summaries_are_the_bins_of_the_pooled_rows() {
        use crate::data::FeatureInfo;
        let mut rng = crate::rng::Rng::new(4);
        let n = 3000;
        let mut data = Dataset {
            features: vec![
                FeatureInfo {
                    name: "x".into(),
                    kind: FeatureKind::Numeric,
                },
                FeatureInfo {
                    name: "c".into(),
                    kind: FeatureKind::Categorical { cardinality: 40 },
                },
            ],
            columns: vec![Vec::new(), Vec::new()],
            labels: Vec::new(),
            weights: Vec::new(),
        };
        for i in 0..n {
            let x = match i % 10 {
                0 => f64::NAN,
                1 => 0.0,
                2 => -0.0,
                _ => (rng.next_f64() * 500.0).round() / 4.0,
            };
            let c = (rng.next_f64() * rng.next_f64() * 40.0).floor();
            data.push_row(&[x, c], false, 1.0);
        }
        for max_bin in [16, 255] {
            let pooled = Binning::from_data(&data, max_bin);
            let parts: Vec<Vec<FeatureSummary>> = [0..700, 700..701, 701..2100, 2100..n]
                .into_iter()
                .map(|range| FeatureSummary::of_data(&data.select_rows(&range.collect::<Vec<_>>())))
                .collect();
            let merged = Binning::from_summaries(&parts, max_bin).unwrap();
            assert_eq!(merged, pooled, "max_bin {max_bin}");
        }
        let one = FeatureSummary::of_data(&data);
        assert!(Binning::from_summaries(&[], 255).is_err());
        assert!(Binning::from_summaries(&[one.clone(), one[..1].to_vec()], 255).is_err());
        let swapped = vec![one[1].clone(), one[0].clone()];
        assert!(Binning::from_summaries(&[one.clone(), swapped], 255).is_err());
        let descending = vec![
            FeatureSummary::Numeric {
                values: vec![(2.0, 1), (1.0, 1)],
            },
            one[1].clone(),
        ];
        assert!(Binning::from_summaries(&[descending], 255).is_err());
    }
}
