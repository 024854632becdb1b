//! Maps raw feature values to small integer bins (histogram GBDT). Bin 0 is always "missing".

use std::collections::HashMap;

use crate::data::{Dataset, FeatureKind};

/// How one feature's values map to bins.
#[derive(Clone, Debug)]
pub(crate) enum BinMapper {
    /// `upper_bounds[b - 1]` is the largest value in bin `b` (bins 1..=len are value bins).
    Numeric { upper_bounds: Vec<f64> },
    /// `categories[b - 1]` is the category code of bin `b`; codes not listed fall in the last bin
    /// ("other": too rare to get their own bin), which never goes into a categorical split's set.
    Categorical {
        categories: Vec<u32>,
        has_other: bool,
    },
}

impl BinMapper {
    pub(crate) fn n_bins(&self) -> usize {
        match self {
            BinMapper::Numeric { upper_bounds } => upper_bounds.len() + 1,
            BinMapper::Categorical {
                categories,
                has_other,
            } => categories.len() + 1 + usize::from(*has_other),
        }
    }
}

/// The binned training matrix: `bins[feature][row]`, and the same row-major
/// (`row_major[row * n_features + feature]`) for row-wise histograms.
pub(crate) struct BinnedData {
    pub(crate) mappers: Vec<BinMapper>,
    pub(crate) bins: Vec<Vec<u8>>,
    pub(crate) row_major: Vec<u8>,
    /// Start of each feature's bins in a flat histogram.
    pub(crate) offsets: Vec<usize>,
    /// Bins of all features.
    pub(crate) total_bins: usize,
}

pub(crate) fn bin_dataset(data: &Dataset, max_bin: usize) -> BinnedData {
    use rayon::prelude::*;
    let max_bin = max_bin.clamp(3, 256);
    let (mappers, bins): (Vec<BinMapper>, Vec<Vec<u8>>) = data
        .features
        .par_iter()
        .zip(data.columns.par_iter())
        .map(|(info, column)| {
            let mapper = match info.kind {
                FeatureKind::Numeric => numeric_mapper(column, max_bin - 1),
                FeatureKind::Categorical { .. } => categorical_mapper(column, max_bin - 2),
            };
            let binned = column.iter().map(|&v| bin_of(&mapper, v)).collect();
            (mapper, binned)
        })
        .unzip();
    let n_rows = data.n_rows();
    let n_features = bins.len();
    let mut row_major = vec![0u8; n_rows * n_features];
    for (f, column) in bins.iter().enumerate() {
        for (r, &b) in column.iter().enumerate() {
            row_major[r * n_features + f] = b;
        }
    }
    let mut offsets = Vec::with_capacity(n_features);
    let mut total_bins = 0;
    for mapper in &mappers {
        offsets.push(total_bins);
        total_bins += mapper.n_bins();
    }
    BinnedData {
        mappers,
        bins,
        row_major,
        offsets,
        total_bins,
    }
}

fn bin_of(mapper: &BinMapper, value: f64) -> u8 {
    if value.is_nan() {
        return 0;
    }
    match mapper {
        BinMapper::Numeric { upper_bounds } => {
            let idx = upper_bounds.partition_point(|&ub| ub < value);
            (idx.min(upper_bounds.len() - 1) + 1) as u8
        }
        BinMapper::Categorical {
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

/// Quantile bins over distinct values: each distinct value gets its own bin while there are few;
/// otherwise boundaries split the sorted values into near-equal counts, never inside a run of
/// equal values.
fn numeric_mapper(column: &[f64], max_value_bins: usize) -> BinMapper {
    let mut values: Vec<f64> = column.iter().copied().filter(|v| !v.is_nan()).collect();
    if values.is_empty() {
        return BinMapper::Numeric {
            upper_bounds: vec![f64::INFINITY],
        };
    }
    values.sort_by(f64::total_cmp);
    let mut distinct: Vec<(f64, usize)> = Vec::new();
    for v in values.iter().copied() {
        match distinct.last_mut() {
            Some((last, count)) if *last == v => *count += 1,
            _ => distinct.push((v, 1)),
        }
    }
    let mut upper_bounds = Vec::new();
    if distinct.len() <= max_value_bins {
        for w in distinct.windows(2) {
            upper_bounds.push(midpoint(w[0].0, w[1].0));
        }
    } else {
        let per_bin = values.len() as f64 / max_value_bins as f64;
        let mut seen = 0usize;
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
    BinMapper::Numeric { upper_bounds }
}

fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    if m >= b {
        a
    } else {
        m
    }
}

/// Categories by descending frequency (ties by code, for determinism); the rarest beyond
/// `max_categories` share one "other" bin.
fn categorical_mapper(column: &[f64], max_categories: usize) -> BinMapper {
    let mut counts: HashMap<u32, usize> = HashMap::new();
    for &v in column {
        if !v.is_nan() && v >= 0.0 {
            *counts.entry(v as u32).or_default() += 1;
        }
    }
    let mut by_freq: Vec<(u32, usize)> = counts.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let has_other = by_freq.len() > max_categories;
    by_freq.truncate(max_categories);
    BinMapper::Categorical {
        categories: by_freq.into_iter().map(|(c, _)| c).collect(),
        has_other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_bins_respect_order_and_missing() {
        let column: Vec<f64> = (0..1000)
            .map(|i| (i % 100) as f64)
            .chain([f64::NAN])
            .collect();
        let mapper = numeric_mapper(&column, 16);
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
    fn few_distinct_values_get_own_bins() {
        let column = [1.0, 2.0, 2.0, 5.0];
        let mapper = numeric_mapper(&column, 255);
        let bins: Vec<u8> = column.iter().map(|&v| bin_of(&mapper, v)).collect();
        assert_eq!(bins, vec![1, 2, 2, 3]);
        assert_eq!(bin_of(&mapper, 100.0), 3);
    }

    #[test]
    fn rare_categories_share_other_bin() {
        let column = [0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0];
        let mapper = categorical_mapper(&column, 2);
        assert_eq!(bin_of(&mapper, 0.0), 1);
        assert_eq!(bin_of(&mapper, 1.0), 2);
        assert_eq!(bin_of(&mapper, 2.0), 3);
        assert_eq!(bin_of(&mapper, 3.0), 3);
        assert_eq!(bin_of(&mapper, f64::NAN), 0);
    }
}
