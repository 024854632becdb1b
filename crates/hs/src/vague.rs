//! The detector of descriptions too vague to classify ("gift", "parts", "clothes"): logistic
//! regression on hashed word and character n-grams (folded to 2^16 weights) and four dense
//! signals (shortness, letters, share of digits, a single word),
//! trained by SGD with a seeded order. Positives: the UK vague-terms list; negatives: the
//! labelled UK descriptions.

use serde::{Deserialize, Serialize};

use crate::scoring::roc_auc;
use crate::text;
use crate::HsError;

const BITS: u32 = 16;
const DENSE: usize = 4;

/// The trained detector.
#[derive(Clone, Debug, PartialEq)]
pub struct VagueDetector {
    pub(crate) weights: Vec<f32>,
    pub(crate) dense: [f32; DENSE],
    pub(crate) bias: f32,
}

/// Held-out figures of the detector.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct VagueReport {
    /// Training descriptions (vague, specific).
    pub train: (usize, usize),
    /// Held-out descriptions (vague, specific).
    pub held_out: (usize, usize),
    /// ROC-AUC on the held-out descriptions.
    pub auc: f64,
    /// Precision at probability ≥ 0.5.
    pub precision: f64,
    /// Recall at probability ≥ 0.5.
    pub recall: f64,
}

/// What the detector reads from a description.
pub struct VagueInput {
    sparse: Vec<(usize, f32)>,
    dense: [f32; DENSE],
}

impl VagueInput {
    /// The detector's input for a description: hashed n-grams (unit idf, so that the detector
    /// does not depend on which texts an index was built from) and the dense signals.
    pub fn new(description: &str) -> VagueInput {
        let (capped, _) = text::cap(description);
        let ws = text::words(capped);
        let f = text::features(&ws);
        let v = crate::lexical::weigh(&f, 0.6, &|_| 1.0);
        let sparse = v
            .into_iter()
            .map(|(id, w)| ((id & ((1 << BITS) - 1)) as usize, w))
            .collect();
        let letters = capped.chars().filter(|c| c.is_alphabetic()).count();
        let digits = capped.chars().filter(|c| c.is_ascii_digit()).count();
        let dense = [
            1.0 / (1.0 + ws.len() as f32),
            (letters as f32 / 40.0).min(1.0),
            digits as f32 / (1.0 + letters as f32 + digits as f32),
            if ws.len() == 1 { 1.0 } else { 0.0 },
        ];
        VagueInput { sparse, dense }
    }
}

fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + (-z).exp())
}

/// A seeded xorshift generator for the training order (deterministic, no dependency).
pub(crate) struct XorShift(pub u64);
impl XorShift {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0.max(1);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

impl VagueDetector {
    /// Probability that the description is too vague to classify.
    pub fn probability(&self, x: &VagueInput) -> f64 {
        let mut z = self.bias;
        for &(i, w) in &x.sparse {
            z += self.weights[i] * w;
        }
        for (d, v) in self.dense.iter().zip(x.dense) {
            z += d * v;
        }
        sigmoid(z) as f64
    }

    /// Trains on labelled inputs (`true` = vague) with SGD on the logistic loss: `epochs` passes
    /// in an order drawn from `seed`, step size decaying as 1/√t, L2 penalty `l2`.
    pub fn train(examples: &[(VagueInput, bool)], epochs: usize, seed: u64) -> VagueDetector {
        let mut d = VagueDetector {
            weights: vec![0.0; 1 << BITS],
            dense: [0.0; DENSE],
            bias: 0.0,
        };
        let pos = examples.iter().filter(|e| e.1).count().max(1) as f32;
        let neg = (examples.len() as f32 - pos).max(1.0);
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = XorShift(seed ^ 0x9e37_79b9_7f4a_7c15);
        let l2 = 1e-5f32;
        let mut t = 0f32;
        for _ in 0..epochs {
            for i in (1..order.len()).rev() {
                order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
            }
            for &k in &order {
                t += 1.0;
                let lr = 0.5 / (1.0 + t / 2000.0).sqrt();
                let (x, y) = &examples[k];
                // balanced classes: each class weighs half of the loss
                let weight = if *y {
                    0.5 * examples.len() as f32 / pos
                } else {
                    0.5 * examples.len() as f32 / neg
                };
                let p = d.probability(x) as f32;
                let g = weight * (p - if *y { 1.0 } else { 0.0 });
                for &(i, w) in &x.sparse {
                    d.weights[i] -= lr * (g * w + l2 * d.weights[i]);
                }
                for (dw, v) in d.dense.iter_mut().zip(x.dense) {
                    *dw -= lr * g * v;
                }
                d.bias -= lr * g;
            }
        }
        d
    }

    /// Held-out figures.
    pub fn report(&self, held_out: &[(VagueInput, bool)], train: (usize, usize)) -> VagueReport {
        let scored: Vec<(f64, bool)> = held_out
            .iter()
            .map(|(x, y)| (self.probability(x), *y))
            .collect();
        let tp = scored.iter().filter(|s| s.0 >= 0.5 && s.1).count() as f64;
        let flagged = scored.iter().filter(|s| s.0 >= 0.5).count() as f64;
        let positives = scored.iter().filter(|s| s.1).count();
        VagueReport {
            train,
            held_out: (positives, scored.len() - positives),
            auc: roc_auc(&scored).unwrap_or(f64::NAN),
            precision: if flagged > 0.0 { tp / flagged } else { 0.0 },
            recall: if positives > 0 {
                tp / positives as f64
            } else {
                0.0
            },
        }
    }

    pub(crate) fn write(&self, w: &mut crate::io::Writer) {
        w.f32s(&self.weights);
        w.f32s(&self.dense);
        w.f32(self.bias);
    }

    pub(crate) fn read(r: &mut crate::io::Reader<'_>) -> Result<VagueDetector, HsError> {
        let weights = r.f32s()?;
        let dense = r.f32s()?;
        let bias = r.f32()?;
        if weights.len() != 1 << BITS || dense.len() != DENSE {
            return Err(HsError::Model("vague detector has the wrong size".into()));
        }
        Ok(VagueDetector {
            weights,
            dense: [dense[0], dense[1], dense[2], dense[3]],
            bias,
        })
    }
}
