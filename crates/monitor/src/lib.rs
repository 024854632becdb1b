//! Monitoring of borderlens: the bias audit of selection and the drift / displacement report.
//!
//! - [`bias`]: selection rate, hit rate and their ratios by group (origin country, office,
//!   importer size, declarant, ...), unbiased non-compliance estimates by group where a random
//!   stratum allows them, and flags on groups selected far more often than their hits justify;
//!   [`bias::bias_chart_svg`] draws one dimension.
//! - [`drift`]: population stability index of features and of the model score, hit-rate shifts by
//!   group with a multiple-testing correction, displacement of hits between offices, routes,
//!   concealment methods and times (the "smugglers moved" signal), and alerts in sentences;
//!   [`drift::psi_chart_svg`] and [`drift::hit_rate_chart_svg`] draw them.
//!
//! Every report type is `serde::Serialize` (the `--json` contract of the callers) and every chart
//! is a self-contained SVG 1.1 string (XML-escaped text, no `NaN`, a "no data" chart for empty
//! input), following the rules of `borderlens_charts`.
//!
//! Architecture invariant: this crate only computes reports from records its caller gives it. It
//! does no I/O, knows no storage or database schema, trains and scores no model and selects
//! nothing; callers (the app crate) build [`bias::AuditRecord`]s, [`drift::FeatureInput`]s and
//! [`drift::OutcomeRecord`]s from the database and decide what to do with flags and alerts.
#![deny(missing_docs)]

pub mod bias;
pub mod drift;
mod format;
mod svg;

/// A tiny deterministic generator for the tests (64-bit LCG, Knuth's constants).
#[cfg(test)]
pub(crate) mod test_util {
    /// Linear congruential generator.
    pub(crate) struct Lcg(u64);

    impl Lcg {
        /// A generator from `seed`.
        pub(crate) fn new(seed: u64) -> Self {
            let mut rng = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
            rng.next_u64();
            rng
        }

        /// Next 64 bits (the high bits are the good ones).
        pub(crate) fn next_u64(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0
        }

        /// Uniform in [0, 1).
        pub(crate) fn uniform(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Standard normal (Box–Muller).
        pub(crate) fn normal(&mut self) -> f64 {
            let u = 1.0 - self.uniform();
            let v = self.uniform();
            (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
        }

        /// Index drawn with the given weights.
        pub(crate) fn pick(&mut self, weights: &[f64]) -> usize {
            let total: f64 = weights.iter().sum();
            let mut x = self.uniform() * total;
            for (i, w) in weights.iter().enumerate() {
                if x < *w {
                    return i;
                }
                x -= w;
            }
            weights.len() - 1
        }
    }
}
