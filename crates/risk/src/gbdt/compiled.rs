//! A flat, cache-friendly copy of the trees for the hot paths: scoring and exact contributions.
//!
//! Exact contributions use the integral form of TreeSHAP (as in "Linear TreeSHAP", Yu et al.,
//! NeurIPS 2022): a leaf's Shapley weight for feature `k` is
//! `∫₀¹ Π_{j≠k} (z_j (1 − t) + o_j t) dt`, where `z_j` is the share of training rows that follow the
//! leaf's path at `j`'s splits and `o_j` ∈ {0, 1} says whether the row does. The integrand is a
//! polynomial of degree < path length, so Gauss–Legendre quadrature with `Q ≥ length / 2` points is
//! exact. Carrying the path product at `Q` points down the tree and summing leaf values up gives
//! O(nodes × Q) per tree and row instead of TreeSHAP's O(leaves × depth²), with the same values
//! (tests compare both with brute-force Shapley values).

// Index loops over quadrature points × batch lanes read several arrays at once; iterators would
// hide the shape of the arithmetic.
#![allow(clippy::needless_range_loop)]

use std::sync::OnceLock;

use super::{Split, Tree};

/// Largest quadrature order supported (paths of up to 64 distinct features).
const MAX_Q: usize = 32;

#[derive(Clone, Debug)]
struct FlatNode {
    /// Leaf when `kind == LEAF`.
    kind: u8,
    missing_left: bool,
    feature: u32,
    left: u32,
    right: u32,
    /// Numeric threshold, or the start (in words) of the categorical bitset in `bits`.
    threshold: f64,
    bits_len: u32,
    value: f64,
    cover: f64,
}

const LEAF: u8 = 0;
const NUMERIC: u8 = 1;
const CATEGORICAL: u8 = 2;

#[derive(Clone, Debug)]
struct FlatTree {
    nodes: Vec<FlatNode>,
    /// Quadrature order for exact contributions of this tree.
    q: usize,
}

/// The flattened forest.
#[derive(Clone, Debug)]
pub struct CompiledForest {
    trees: Vec<FlatTree>,
    bits: Vec<u64>,
    n_features: usize,
}

impl CompiledForest {
    pub(crate) fn new(trees: &[Tree], n_features: usize) -> CompiledForest {
        let mut bits = Vec::new();
        let flat = trees
            .iter()
            .map(|tree| {
                let nodes = tree
                    .nodes
                    .iter()
                    .map(|node| match &node.split {
                        None => FlatNode {
                            kind: LEAF,
                            missing_left: false,
                            feature: 0,
                            left: 0,
                            right: 0,
                            threshold: 0.0,
                            bits_len: 0,
                            value: node.value,
                            cover: node.cover,
                        },
                        Some(Split::Numeric {
                            feature,
                            threshold,
                            default_left,
                        }) => FlatNode {
                            kind: NUMERIC,
                            missing_left: *default_left,
                            feature: *feature,
                            left: node.left,
                            right: node.right,
                            threshold: *threshold,
                            bits_len: 0,
                            value: node.value,
                            cover: node.cover,
                        },
                        Some(Split::Categorical {
                            feature,
                            left,
                            missing_left,
                        }) => {
                            let words = left.last().map(|&c| c as usize / 64 + 1).unwrap_or(0);
                            let start = bits.len();
                            bits.resize(start + words, 0u64);
                            for &c in left {
                                bits[start + c as usize / 64] |= 1u64 << (c % 64);
                            }
                            FlatNode {
                                kind: CATEGORICAL,
                                missing_left: *missing_left,
                                feature: *feature,
                                left: node.left,
                                right: node.right,
                                threshold: start as f64,
                                bits_len: words as u32,
                                value: node.value,
                                cover: node.cover,
                            }
                        }
                    })
                    .collect();
                let longest = longest_unique_path(tree, 0, &mut Vec::new());
                FlatTree {
                    nodes,
                    q: longest.div_ceil(2).max(1),
                }
            })
            .collect();
        CompiledForest {
            trees: flat,
            bits,
            n_features,
        }
    }

    #[inline]
    fn goes_left(&self, node: &FlatNode, value: f64) -> bool {
        if value.is_nan() {
            return node.missing_left;
        }
        if node.kind == NUMERIC {
            return value <= node.threshold;
        }
        if value < 0.0 || value.fract() != 0.0 {
            return false;
        }
        let code = value as u64;
        let word = (code / 64) as usize;
        word < node.bits_len as usize
            && self.bits[node.threshold as usize + word] & (1u64 << (code % 64)) != 0
    }

    /// Sum of the trees' leaf values for `row`.
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut sum = 0.0;
        for tree in &self.trees {
            let mut node = &tree.nodes[0];
            while node.kind != LEAF {
                let next = if self.goes_left(node, row[node.feature as usize]) {
                    node.left
                } else {
                    node.right
                };
                node = &tree.nodes[next as usize];
            }
            sum += node.value;
        }
        sum
    }

    /// Sum of the trees' leaf values for rows `start..start + out.len()` of column-major `columns`.
    /// Trees are walked for a block of rows at a time, so each tree stays in cache and the
    /// independent walks overlap.
    pub fn predict_columns(&self, columns: &[Vec<f64>], start: usize, out: &mut [f64]) {
        out.fill(0.0);
        for tree in &self.trees {
            for (offset, sum) in out.iter_mut().enumerate() {
                let row = start + offset;
                let mut node = &tree.nodes[0];
                while node.kind != LEAF {
                    let value = columns[node.feature as usize][row];
                    let next = if self.goes_left(node, value) {
                        node.left
                    } else {
                        node.right
                    };
                    node = &tree.nodes[next as usize];
                }
                *sum += node.value;
            }
        }
    }

    /// Exact TreeSHAP contributions of every tree for up to [`BATCH`] rows at once: `out[i]` (with
    /// `n_features + 1` slots, the last receiving the trees' expected values) gets row `rows[i]`'s.
    /// Returns `false`, touching nothing, if a tree's paths are too long for the quadrature table
    /// (the caller then uses the reference algorithm).
    ///
    /// Rows share the walk: every node is visited for every row (TreeSHAP follows both children),
    /// and everything but "does the row take this branch" is the same for all rows, so the cover
    /// arithmetic and divisions are done once per node and the per-row work is a few
    /// multiply-adds per quadrature point.
    pub fn contributions_batch(&self, rows: &[&[f64]], out: &mut [Vec<f64>]) -> bool {
        if self.trees.iter().any(|t| t.q > MAX_Q) || rows.is_empty() || rows.len() > BATCH {
            return false;
        }
        let mut lanes: [&[f64]; BATCH] = [rows[0]; BATCH];
        lanes[..rows.len()].copy_from_slice(rows);
        let mut phi = vec![[0.0f64; BATCH]; self.n_features + 1];
        let mut z_state = vec![1.0f64; self.n_features];
        let mut o_state = vec![[1.0f64; BATCH]; self.n_features];
        for tree in &self.trees {
            let mut ctx = BatchContext {
                z_state: &mut z_state,
                o_state: &mut o_state,
                phi: &mut phi,
            };
            // Round the order up to a few fixed sizes: more points stay exact, and fixed-size
            // arrays keep the walk free of allocation and bounds checks.
            match tree.q {
                0..=2 => self.walk_tree::<2>(tree, &lanes, &mut ctx),
                3 => self.walk_tree::<3>(tree, &lanes, &mut ctx),
                4 => self.walk_tree::<4>(tree, &lanes, &mut ctx),
                5 => self.walk_tree::<5>(tree, &lanes, &mut ctx),
                6 => self.walk_tree::<6>(tree, &lanes, &mut ctx),
                7..=8 => self.walk_tree::<8>(tree, &lanes, &mut ctx),
                9..=12 => self.walk_tree::<12>(tree, &lanes, &mut ctx),
                13..=16 => self.walk_tree::<16>(tree, &lanes, &mut ctx),
                _ => self.walk_tree::<MAX_Q>(tree, &lanes, &mut ctx),
            }
            for lane in phi[self.n_features].iter_mut() {
                *lane += tree.nodes[0].value;
            }
        }
        for (i, slots) in out.iter_mut().enumerate().take(rows.len()) {
            for (j, slot) in slots.iter_mut().enumerate() {
                *slot += phi[j][i];
            }
        }
        true
    }

    fn walk_tree<const Q: usize>(
        &self,
        tree: &FlatTree,
        rows: &[&[f64]; BATCH],
        ctx: &mut BatchContext<'_>,
    ) {
        let (t, w) = gauss_legendre(Q);
        let mut walk = Walk::<Q> {
            forest: self,
            tree,
            rows,
            t: [0.0; Q],
            one_minus_t: [0.0; Q],
            w: [0.0; Q],
            claimed: vec![[[0.0; BATCH]; Q]; self.n_features],
        };
        for i in 0..Q {
            walk.t[i] = t[i];
            walk.one_minus_t[i] = 1.0 - t[i];
            walk.w[i] = w[i];
        }
        let mut r = [[0.0f64; BATCH]; Q];
        walk.node(0, &[[1.0; BATCH]; Q], &mut r, ctx);
    }
}

/// Rows explained together by [`CompiledForest::contributions_batch`].
pub const BATCH: usize = 16;

struct BatchContext<'a> {
    /// Merged cover share `z` of each feature on the current path (the same for every row).
    z_state: &'a mut [f64],
    /// Whether each row follows the current path at each feature's splits (`o` ∈ {0, 1}).
    o_state: &'a mut [[f64; BATCH]],
    phi: &'a mut [[f64; BATCH]],
}

struct Walk<'a, const Q: usize> {
    forest: &'a CompiledForest,
    tree: &'a FlatTree,
    rows: &'a [&'a [f64]; BATCH],
    t: [f64; Q],
    one_minus_t: [f64; Q],
    w: [f64; Q],
    /// Per feature: the part of the leaf sums already attributed at a deeper split on it.
    claimed: Vec<[[f64; BATCH]; Q]>,
}

impl<const Q: usize> Walk<'_, Q> {
    /// Writes Σ over leaves below `index` of (leaf value × path product at each point) into `r`,
    /// per row, and adds the contributions of this subtree's splits to `ctx.phi`.
    fn node(
        &mut self,
        index: usize,
        p: &[[f64; BATCH]; Q],
        r: &mut [[f64; BATCH]; Q],
        ctx: &mut BatchContext<'_>,
    ) {
        let node = &self.tree.nodes[index];
        if node.kind == LEAF {
            for i in 0..Q {
                for b in 0..BATCH {
                    r[i][b] = node.value * p[i][b];
                }
            }
            return;
        }
        let k = node.feature as usize;
        let z0 = ctx.z_state[k];
        let o0 = ctx.o_state[k];
        let mut goes_left = [0.0f64; BATCH];
        for b in 0..BATCH {
            goes_left[b] = f64::from(u8::from(self.forest.goes_left(node, self.rows[b][k])));
        }
        // The feature's factor in the path product is f(t) = z (1 − t) + o t; before this split
        // it was z0 (1 − t) + o0 t, with o0 = 0 or 1 per row.
        let mut inv_before = [[0.0f64; 2]; Q];
        for i in 0..Q {
            let base = z0 * self.one_minus_t[i];
            inv_before[i] = [
                if base > 0.0 { 1.0 / base } else { 0.0 },
                1.0 / (base + self.t[i]),
            ];
        }
        let entry_claim = self.claimed[k];
        *r = [[0.0; BATCH]; Q];
        for (child, is_left) in [(node.left, true), (node.right, false)] {
            let child_node = &self.tree.nodes[child as usize];
            let zc = if node.cover > 0.0 {
                z0 * child_node.cover / node.cover
            } else {
                0.0
            };
            let mut oc = [0.0f64; BATCH];
            for b in 0..BATCH {
                let hot = if is_left {
                    goes_left[b]
                } else {
                    1.0 - goes_left[b]
                };
                oc[b] = hot * o0[b];
            }
            // Per point, the ratio new factor / old factor for the three cases (oc, o0) = (0, 0),
            // (0, 1), (1, 1), and w / new factor for oc = 0, 1; each row then blends with its 0/1s.
            let mut ratio = [[0.0f64; 3]; Q];
            let mut w_inv_f = [[0.0f64; 2]; Q];
            for i in 0..Q {
                let base = zc * self.one_minus_t[i];
                let (f0, f1) = (base, base + self.t[i]);
                ratio[i] = [
                    f0 * inv_before[i][0],
                    f0 * inv_before[i][1],
                    f1 * inv_before[i][1],
                ];
                w_inv_f[i] = [if f0 > 0.0 { self.w[i] / f0 } else { 0.0 }, self.w[i] / f1];
            }
            let mut pc = [[0.0f64; BATCH]; Q];
            let mut w_inv_fc = [[0.0f64; BATCH]; Q];
            for i in 0..Q {
                let [r00, r01, r11] = ratio[i];
                let [w0, w1] = w_inv_f[i];
                for b in 0..BATCH {
                    pc[i][b] = p[i][b] * (r00 + o0[b] * (r01 - r00) + oc[b] * (r11 - r01));
                    w_inv_fc[i][b] = w0 + oc[b] * (w1 - w0);
                }
            }
            ctx.z_state[k] = zc;
            ctx.o_state[k] = oc;
            self.claimed[k] = [[0.0; BATCH]; Q];
            let mut rc = [[0.0f64; BATCH]; Q];
            self.node(child as usize, &pc, &mut rc, ctx);
            let mut u = [0.0f64; BATCH];
            for i in 0..Q {
                for b in 0..BATCH {
                    u[b] += (rc[i][b] - self.claimed[k][i][b]) * w_inv_fc[i][b];
                    r[i][b] += rc[i][b];
                }
            }
            for b in 0..BATCH {
                ctx.phi[k][b] += (oc[b] - zc) * u[b];
            }
        }
        ctx.z_state[k] = z0;
        ctx.o_state[k] = o0;
        for i in 0..Q {
            for b in 0..BATCH {
                self.claimed[k][i][b] = entry_claim[i][b] + r[i][b];
            }
        }
    }
}

/// Most distinct features on any root-to-leaf path.
fn longest_unique_path(tree: &Tree, index: usize, path: &mut Vec<usize>) -> usize {
    let node = &tree.nodes[index];
    match &node.split {
        None => {
            let mut distinct = path.clone();
            distinct.sort_unstable();
            distinct.dedup();
            distinct.len()
        }
        Some(split) => {
            path.push(split.feature());
            let l = longest_unique_path(tree, node.left as usize, path);
            let r = longest_unique_path(tree, node.right as usize, path);
            path.pop();
            l.max(r)
        }
    }
}

/// Gauss–Legendre nodes and weights on [0, 1] for `q` points (1 ≤ q ≤ MAX_Q), computed once.
fn gauss_legendre(q: usize) -> (&'static [f64], &'static [f64]) {
    static TABLES: OnceLock<Vec<(Vec<f64>, Vec<f64>)>> = OnceLock::new();
    let tables = TABLES.get_or_init(|| (1..=MAX_Q).map(legendre_rule).collect());
    let (t, w) = &tables[q - 1];
    (t, w)
}

/// Newton's iteration on the Legendre polynomial P_n (Numerical Recipes' `gauleg`), mapped to [0, 1].
fn legendre_rule(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut t = vec![0.0; n];
    let mut w = vec![0.0; n];
    for i in 0..n.div_ceil(2) {
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, 0.0);
            for j in 0..n {
                let p2 = p1;
                p1 = p0;
                p0 = ((2 * j + 1) as f64 * x * p1 - j as f64 * p2) / (j + 1) as f64;
            }
            derivative = n as f64 * (x * p0 - p1) / (x * x - 1.0);
            let step = p0 / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
        t[i] = (1.0 - x) / 2.0;
        t[n - 1 - i] = (1.0 + x) / 2.0;
        w[i] = weight / 2.0;
        w[n - 1 - i] = weight / 2.0;
    }
    (t, w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quadrature_is_exact_for_polynomials() {
        for n in 1..=MAX_Q {
            let (t, w) = gauss_legendre(n);
            for degree in 0..(2 * n) {
                let integral: f64 = t
                    .iter()
                    .zip(w)
                    .map(|(t, w)| w * t.powi(degree as i32))
                    .sum();
                let exact = 1.0 / (degree as f64 + 1.0);
                assert!(
                    (integral - exact).abs() < 1e-12,
                    "n {n} degree {degree}: {integral} vs {exact}"
                );
            }
        }
    }
}
