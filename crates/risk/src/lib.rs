/*!
The risk engine: turns declarations and past control results into calibrated, explained risk scores.

Brief overview:
- [`data::Dataset`] is the column-major matrix every model reads.
- `gbdt` is our histogram gradient-boosted trees (native categorical splits, weights, missing values,
  deterministic, multi-threaded); `shap` computes exact TreeSHAP contributions for it.
- `anomaly` is an isolation forest for the rare-threat framing; `resample` holds the imbalance options
  (random over/under-sampling, SMOTE-NC).
- `metrics` evaluates at the inspection rates an administration can afford.

Architecture invariant: this crate does no I/O and does not select declarations for control;
it takes records and returns numbers. Model bytes are a pure function of data, options and seed.
*/
#![deny(missing_docs)]

pub mod anomaly;
pub mod data;
pub mod features;
pub mod gbdt;
pub mod metrics;
pub mod model;
pub mod resample;
pub use borderlens_domain::rng;
pub mod shap;
