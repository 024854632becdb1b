//! The in-memory training/scoring matrix that every model in this crate consumes.

use serde::{Deserialize, Serialize};

/// How a feature is read by the models.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum FeatureKind {
    /// A real number; `NaN` is missing.
    Numeric,
    /// A category code in `0..cardinality` stored as `f64`; `NaN` is missing.
    Categorical {
        /// Number of distinct codes.
        cardinality: u32,
    },
}

/// Name and kind of one column.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct FeatureInfo {
    /// Machine name, e.g. `origin_country`.
    pub name: String,
    /// Numeric or categorical.
    pub kind: FeatureKind,
}

/// A column-major feature matrix with labels and sample weights.
///
/// Invariant: every column has `n_rows` values; `labels` and `weights` have `n_rows` entries
/// (labels may be all `false` for unlabelled scoring data).
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// Column descriptions, one per column.
    pub features: Vec<FeatureInfo>,
    /// `columns[j][i]` is feature `j` of row `i`.
    pub columns: Vec<Vec<f64>>,
    /// Positive class per row.
    pub labels: Vec<bool>,
    /// Sample weight per row (1.0 by default).
    pub weights: Vec<f64>,
}

impl Dataset {
    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    /// Number of columns.
    pub fn n_features(&self) -> usize {
        self.features.len()
    }

    /// Row `i` as a dense vector (allocates; for per-row work such as explanations).
    pub fn row(&self, i: usize) -> Vec<f64> {
        self.columns.iter().map(|c| c[i]).collect()
    }

    /// A new dataset with the rows at `indices` (repetitions allowed), in that order.
    pub fn select_rows(&self, indices: &[usize]) -> Dataset {
        Dataset {
            features: self.features.clone(),
            columns: self
                .columns
                .iter()
                .map(|c| indices.iter().map(|&i| c[i]).collect())
                .collect(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            weights: indices.iter().map(|&i| self.weights[i]).collect(),
        }
    }

    /// Appends one row (`values` in column order).
    pub fn push_row(&mut self, values: &[f64], label: bool, weight: f64) {
        for (column, &v) in self.columns.iter_mut().zip(values) {
            column.push(v);
        }
        self.labels.push(label);
        self.weights.push(weight);
    }
}
