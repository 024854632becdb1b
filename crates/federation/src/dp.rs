//! Differential privacy of what a party releases (optional): Gaussian noise added by each party
//! to every word of its histograms and label sums before they are masked, and the privacy that
//! costs it, accounted per party.
//!
//! - Noise. A release's L2 sensitivity is what one row can change in it: one bin per feature
//!   sent gets the row's gradient (|g| ≤ 1, rows weigh 1) and hessian (h ≤ 1/4), and the row
//!   count gets 1, so Δ = √(F·(1 + 1/16) + 1) for F features sent ([`histogram_sensitivity`]).
//!   A split's round sends several leaves' histograms, but a row is in one leaf only: Δ still
//!   bounds it. The label sums' Δ is √3 (count, weight, positive weight). Each party adds
//!   N(0, (z·Δ)²) to every sum itself, z being the noise multiplier: its guarantee holds
//!   whatever the other parties add or whether they collude with the coordinator. The noisy
//!   sums are rounded to the fixed-point grid, which is post-processing.
//! - Accounting in zero-concentrated DP (ρ-zCDP, Bun and Steinke 2016): each release costs
//!   ρ = 1/(2z²), releases compose by adding their ρ, and ρ-zCDP gives (ε, δ)-DP with
//!   ε = ρ + 2√(ρ·ln(1/δ)) ([`epsilon`]). The unit protected is one row (declaration item) of
//!   the party.
//! - What it does not cover: the pooled statistics' counts (sent exact, under secure aggregation
//!   only), the feature summaries agreed before boosting, and attacks on floating-point sampling
//!   (the noise is drawn as `f64`, Mironov 2012).

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use borderlens_risk::gbdt::FIXED_ONE;

/// The L2 sensitivity of one node's histogram of `n_features` features (in rows and gradient
/// units): what one row of weight 1 can change in it.
pub fn histogram_sensitivity(n_features: usize) -> f64 {
    (n_features as f64 * (1.0 + 1.0 / 16.0) + 1.0).sqrt()
}

/// The L2 sensitivity of the label sums (row count, weight, positive weight) for rows of
/// weight 1.
pub fn label_sums_sensitivity() -> f64 {
    3f64.sqrt()
}

/// (ε, δ) from ρ-zCDP: ε = ρ + 2√(ρ·ln(1/δ)); 0 for ρ = 0, infinite for δ outside (0, 1).
pub fn epsilon(rho: f64, delta: f64) -> f64 {
    if !(delta > 0.0 && delta < 1.0) || rho.is_nan() {
        return f64::INFINITY;
    }
    if rho <= 0.0 {
        return 0.0;
    }
    rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The ρ one release costs at noise multiplier `multiplier` (σ = multiplier × Δ).
pub fn rho_per_release(multiplier: f64) -> f64 {
    1.0 / (2.0 * multiplier * multiplier)
}

/// The largest noise multiplier: beyond it the noise no longer fits the fixed-point words it
/// is added to (and would be read back nearly exact), while ρ per release is 5·10⁻⁹ already.
pub const MAX_MULTIPLIER: f64 = 1e4;

/// Whether `multiplier` is a usable noise multiplier: from 0.1 (less is no noise worth the
/// name, and its ρ per release would be 50 or more) to [`MAX_MULTIPLIER`].
pub fn check_multiplier(multiplier: f64) -> Result<(), String> {
    if (0.1..=MAX_MULTIPLIER).contains(&multiplier) {
        Ok(())
    } else {
        Err(format!(
            "noise multiplier {multiplier}: it must be a number from 0.1 to {MAX_MULTIPLIER}"
        ))
    }
}

/// The largest noise a word takes (2⁶²): a draw beyond it would wrap the word it is added to.
const MAX_DRAW: f64 = 4.611_686_018_427_388e18;

/// A party's own rule on privacy, checked when the coordinator asks for the bins: the least
/// noise it adds, and the most privacy one session may spend.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyPolicy {
    /// The least noise multiplier the party answers with: a session asking for less (or for
    /// none) is refused.
    pub min_noise_multiplier: f64,
    /// The δ at which ε is reported and bounded.
    pub delta: f64,
    /// The most ε (at `delta`) one session may spend: a release beyond it is refused and
    /// training stops there.
    #[serde(default)]
    pub max_epsilon: Option<f64>,
}

impl PrivacyPolicy {
    /// Checks the numbers: a usable multiplier, δ in (0, 1), a positive budget.
    pub fn check(&self) -> Result<(), String> {
        check_multiplier(self.min_noise_multiplier)
            .map_err(|e| format!("min_noise_multiplier: {e}"))?;
        if !(self.delta > 0.0 && self.delta < 1.0) {
            return Err(format!("delta {}: it must be in (0, 1)", self.delta));
        }
        if let Some(max) = self.max_epsilon {
            if !(max.is_finite() && max > 0.0) {
                return Err(format!("max_epsilon {max}: it must be a positive number"));
            }
        }
        Ok(())
    }
}

/// The privacy a party spent in a session: how many noisy releases, at which multiplier.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    /// The noise multiplier of every release.
    pub noise_multiplier: f64,
    /// Releases of noisy sums (label sums, roots, splits).
    pub releases: u64,
    /// Their ρ (zCDP), summed.
    pub rho: f64,
}

impl Spent {
    /// Nothing spent yet, at `noise_multiplier`.
    pub fn new(noise_multiplier: f64) -> Spent {
        Spent {
            noise_multiplier,
            releases: 0,
            rho: 0.0,
        }
    }

    /// After one more release.
    pub fn after_release(&self) -> Spent {
        Spent {
            noise_multiplier: self.noise_multiplier,
            releases: self.releases + 1,
            rho: self.rho + rho_per_release(self.noise_multiplier),
        }
    }

    /// ε at `delta`.
    pub fn epsilon(&self, delta: f64) -> f64 {
        epsilon(self.rho, delta)
    }
}

/// Gaussian noise on a party's words, from a generator seeded by the operating system.
pub struct Noise {
    multiplier: f64,
    rng: ChaCha20Rng,
}

impl Noise {
    /// Noise of `multiplier` (checked), seeded by the operating system's randomness.
    pub fn new(multiplier: f64) -> Result<Noise, String> {
        check_multiplier(multiplier)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness for the noise: {e}"))?;
        Ok(Noise::seeded(multiplier, seed))
    }

    /// Noise of `multiplier` from a given seed (tests).
    pub fn seeded(multiplier: f64, seed: [u8; 32]) -> Noise {
        Noise {
            multiplier,
            rng: ChaCha20Rng::from_seed(seed),
        }
    }

    /// The noise multiplier.
    pub fn multiplier(&self) -> f64 {
        self.multiplier
    }

    /// Adds noise to histogram words ([`borderlens_risk::gbdt::NodeHistogram::extend_words_of`]'s,
    /// `chunk_len` words per histogram, one or more histograms): σ = multiplier × `sensitivity`,
    /// in rows for each histogram's first word (the row count), in fixed point for the others.
    /// Refused (nothing sent) when the noise would not fit the words.
    pub fn add_to_histograms(
        &mut self,
        words: &mut [u64],
        chunk_len: usize,
        sensitivity: f64,
    ) -> Result<(), String> {
        let sigma = self.multiplier * sensitivity;
        let (rows, sums) = (self.normal(sigma)?, self.normal(sigma * FIXED_ONE)?);
        for chunk in words.chunks_mut(chunk_len.max(1)) {
            if let Some((count, rest)) = chunk.split_first_mut() {
                *count = count.wrapping_add(self.draw(&rows)? as u64);
                for w in rest {
                    *w = w.wrapping_add(self.draw(&sums)? as u64);
                }
            }
        }
        Ok(())
    }

    /// Adds noise to the label sums (row count; weight and positive weight in fixed point).
    pub fn add_to_label_sums(&mut self, words: &mut [u64; 3]) -> Result<(), String> {
        let sigma = self.multiplier * label_sums_sensitivity();
        let (rows, sums) = (self.normal(sigma)?, self.normal(sigma * FIXED_ONE)?);
        words[0] = words[0].wrapping_add(self.draw(&rows)? as u64);
        for w in &mut words[1..] {
            *w = w.wrapping_add(self.draw(&sums)? as u64);
        }
        Ok(())
    }

    /// Whether noise for a release of `sensitivity` fits the sums' words.
    pub fn fits(&self, sensitivity: f64) -> Result<(), String> {
        self.normal(self.multiplier * sensitivity * FIXED_ONE)
            .map(|_| ())
    }

    /// N(0, σ²), refused when σ is not a usable number.
    fn normal(&self, sigma: f64) -> Result<Normal<f64>, String> {
        if !(sigma.is_finite() && sigma > 0.0 && sigma < MAX_DRAW / 64.0) {
            return Err(format!("noise of σ {sigma} does not fit the sums' words"));
        }
        Normal::new(0.0, sigma).map_err(|e| format!("noise of σ {sigma}: {e}"))
    }

    /// One draw, rounded to an integer; refused beyond ±2⁶² (it would wrap the word).
    fn draw(&mut self, normal: &Normal<f64>) -> Result<i64, String> {
        let x = normal.sample(&mut self.rng).round();
        if x.abs() < MAX_DRAW {
            Ok(x as i64)
        } else {
            Err(format!("a noise draw of {x} does not fit the sums' words"))
        }
    }
}

/// How far a sum of `parties` parties' noise of `multiplier` may stray (rows, fixed point) for
/// a release of sensitivity `sensitivity`: nine standard deviations of the sum, which noise
/// exceeds with probability below 10⁻¹⁸ per word. Beyond it, a sum is garbage, not noise. (The
/// coordinator measures from its noisy row total, whose own noise eats into the margin: for
/// a row count, about six standard deviations of the two noises together are left.)
pub fn tolerance(multiplier: f64, sensitivity: f64, parties: usize) -> (u64, i64) {
    let sigma = multiplier * sensitivity * (parties.max(1) as f64).sqrt();
    let rows = (9.0 * sigma).ceil();
    (rows as u64, (rows * FIXED_ONE) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn epsilon_of_known_values() {
        // ρ = 0.5, δ = 1e-5: 0.5 + 2·√(0.5·ln 1e5) = 0.5 + 2·2.3993 = 5.2987.
        assert!((epsilon(0.5, 1e-5) - 5.298_59).abs() < 1e-4);
        assert_eq!(epsilon(0.0, 1e-6), 0.0);
        assert!(epsilon(1.0, 0.0).is_infinite());
        assert!(epsilon(1.0, 1.0).is_infinite());
        // One release at multiplier 1: ρ = 1/2.
        assert_eq!(rho_per_release(1.0), 0.5);
        let spent = Spent::new(2.0).after_release().after_release();
        assert_eq!(spent.releases, 2);
        assert!((spent.rho - 0.25).abs() < 1e-15);
    }

    #[test]
    fn the_noise_has_the_scale_asked_and_no_bias() {
        let mut noise = Noise::seeded(3.0, [7; 32]);
        let sensitivity = histogram_sensitivity(4);
        let chunk = 9;
        let mut words = vec![0u64; chunk * 4_000];
        noise
            .add_to_histograms(&mut words, chunk, sensitivity)
            .unwrap();
        let sigma = 3.0 * sensitivity;
        let stats = |values: Vec<f64>| {
            let n = values.len() as f64;
            let mean = values.iter().sum::<f64>() / n;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var.sqrt())
        };
        let counts: Vec<f64> = words.chunks(chunk).map(|c| c[0] as i64 as f64).collect();
        let sums: Vec<f64> = words
            .chunks(chunk)
            .flat_map(|c| c[1..].iter().map(|&w| w as i64 as f64 / FIXED_ONE))
            .collect();
        let (mean, sd) = stats(counts);
        assert!(
            mean.abs() < 4.0 * sigma / 4_000f64.sqrt(),
            "row count mean {mean}"
        );
        assert!(
            (sd / sigma - 1.0).abs() < 0.05,
            "row count sd {sd}, σ {sigma}"
        );
        let (mean, sd) = stats(sums);
        assert!(
            mean.abs() < 4.0 * sigma / 32_000f64.sqrt(),
            "sum mean {mean}"
        );
        assert!((sd / sigma - 1.0).abs() < 0.03, "sum sd {sd}, σ {sigma}");
        // Another seed, other noise; the same seed, the same noise.
        let mut again = vec![0u64; chunk * 4_000];
        Noise::seeded(3.0, [7; 32])
            .add_to_histograms(&mut again, chunk, sensitivity)
            .unwrap();
        assert_eq!(again, words);
        let mut other = vec![0u64; chunk * 4_000];
        Noise::seeded(3.0, [8; 32])
            .add_to_histograms(&mut other, chunk, sensitivity)
            .unwrap();
        // The largest multiplier still fits the words; more is refused before any draw.
        assert!(check_multiplier(MAX_MULTIPLIER).is_ok());
        assert!(check_multiplier(MAX_MULTIPLIER * 10.0).is_err());
        let mut big = vec![0u64; chunk];
        Noise::seeded(MAX_MULTIPLIER, [9; 32])
            .add_to_histograms(&mut big, chunk, histogram_sensitivity(500))
            .unwrap();
        let mut huge = Noise::seeded(1e300, [9; 32]);
        assert!(huge.add_to_histograms(&mut big, chunk, 1.0).is_err());
        assert!(huge.add_to_label_sums(&mut [0; 3]).is_err());
        assert_ne!(other, words);
    }

    #[test]
    fn policies_are_checked() {
        let good = PrivacyPolicy {
            min_noise_multiplier: 1.0,
            delta: 1e-6,
            max_epsilon: Some(8.0),
        };
        assert!(good.check().is_ok());
        for bad in [
            PrivacyPolicy {
                min_noise_multiplier: 0.0,
                ..good.clone()
            },
            PrivacyPolicy {
                delta: 1.0,
                ..good.clone()
            },
            PrivacyPolicy {
                max_epsilon: Some(-1.0),
                ..good.clone()
            },
            PrivacyPolicy {
                min_noise_multiplier: f64::NAN,
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// ε grows with ρ and shrinks as δ grows; it is never below ρ.
        #[test]
        fn epsilon_is_monotone(rho in 1e-6f64..1e3, more in 1e-6f64..1e3, d in 1e-12f64..0.5) {
            let e = epsilon(rho, d);
            prop_assert!(e >= rho);
            prop_assert!(epsilon(rho + more, d) > e);
            prop_assert!(epsilon(rho, (d * 1.5).min(0.99)) <= e);
        }

        /// Composition: n releases at z cost n times one release's ρ.
        #[test]
        fn releases_add_their_rho(z in 0.1f64..100.0, n in 1u64..500) {
            let mut spent = Spent::new(z);
            for _ in 0..n {
                spent = spent.after_release();
            }
            let expected = n as f64 * rho_per_release(z);
            prop_assert!((spent.rho - expected).abs() <= 1e-9 * expected);
        }
    }
}
