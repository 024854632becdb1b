//! A fitted regression tree in raw feature units, so that prediction needs no binning.

use serde::{Deserialize, Serialize};

/// How an internal node routes a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Split {
    /// `x <= threshold` goes left; a missing `x` goes left iff `default_left`.
    Numeric {
        /// Feature index.
        feature: u32,
        /// Threshold in raw units.
        threshold: f64,
        /// Direction of missing values.
        default_left: bool,
    },
    /// Codes in `left` (sorted) go left; every other code, and unseen codes, go right;
    /// a missing value goes left iff `missing_left`.
    Categorical {
        /// Feature index.
        feature: u32,
        /// Category codes routed left, ascending.
        left: Vec<u32>,
        /// Direction of missing values.
        missing_left: bool,
    },
}

impl Split {
    /// Feature the split reads.
    pub fn feature(&self) -> usize {
        match self {
            Split::Numeric { feature, .. } | Split::Categorical { feature, .. } => {
                *feature as usize
            }
        }
    }

    /// Whether `value` goes to the left child.
    pub fn goes_left(&self, value: f64) -> bool {
        match self {
            Split::Numeric {
                threshold,
                default_left,
                ..
            } => {
                if value.is_nan() {
                    *default_left
                } else {
                    value <= *threshold
                }
            }
            Split::Categorical {
                left, missing_left, ..
            } => {
                if value.is_nan() {
                    *missing_left
                } else if value < 0.0 || value.fract() != 0.0 {
                    false
                } else {
                    left.binary_search(&(value as u32)).is_ok()
                }
            }
        }
    }
}

/// A node: internal when `split` is set (children `left`, `right`), a leaf otherwise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// The routing rule; `None` for a leaf.
    pub split: Option<Split>,
    /// Left child index.
    pub left: u32,
    /// Right child index.
    pub right: u32,
    /// Leaf output (already scaled by the learning rate); for internal nodes the cover-weighted
    /// mean of the leaves below.
    pub value: f64,
    /// Number of training rows that reached the node (TreeSHAP's cover).
    pub cover: f64,
    /// Gain of the split (0 for leaves), for global importance.
    pub gain: f64,
}

/// One regression tree; node 0 is the root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Nodes, root first.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The leaf value reached by `row`.
    pub fn predict(&self, row: &[f64]) -> f64 {
        let mut index = 0usize;
        loop {
            let node = &self.nodes[index];
            match &node.split {
                None => return node.value,
                Some(split) => {
                    index = if split.goes_left(row[split.feature()]) {
                        node.left as usize
                    } else {
                        node.right as usize
                    };
                }
            }
        }
    }

    /// Depth of the deepest leaf (root alone = 0).
    pub fn max_depth(&self) -> usize {
        fn depth(tree: &Tree, index: usize) -> usize {
            let node = &tree.nodes[index];
            match node.split {
                None => 0,
                Some(_) => {
                    1 + depth(tree, node.left as usize).max(depth(tree, node.right as usize))
                }
            }
        }
        if self.nodes.is_empty() {
            0
        } else {
            depth(self, 0)
        }
    }

    /// Fills `value` of internal nodes with the cover-weighted mean of their children.
    pub(crate) fn fill_internal_values(&mut self) {
        fn fill(tree: &mut Tree, index: usize) -> f64 {
            let (left, right) = match tree.nodes[index].split {
                None => return tree.nodes[index].value,
                Some(_) => (
                    tree.nodes[index].left as usize,
                    tree.nodes[index].right as usize,
                ),
            };
            let lv = fill(tree, left);
            let rv = fill(tree, right);
            let (lc, rc) = (tree.nodes[left].cover, tree.nodes[right].cover);
            let value = if lc + rc > 0.0 {
                (lv * lc + rv * rc) / (lc + rc)
            } else {
                0.0
            };
            tree.nodes[index].value = value;
            value
        }
        if !self.nodes.is_empty() {
            fill(self, 0);
        }
    }
}
