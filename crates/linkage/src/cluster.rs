//! Clusters from links. Connected components chain: one bad link between two people's records
//! merges everyone. Here clusters follow the evidence of every pair, not of one link — a
//! correlation clustering on match weights:
//!
//! 1. Links are taken strongest first; two clusters merge only when the match weights of all
//!    the pairs across them, each less the threshold's weight, sum above zero (pairs that
//!    blocking never brought are compared now).
//! 2. Then each record moves to the cluster (or to a cluster of its own) where its pairs sum
//!    highest, until none moves: this undoes an early merge through a strong wrong link.
//!
//! A true duplicate agrees with most of its cluster; a chaining link agrees with one record.

use std::collections::HashMap;

/// Most cross pairs compared to decide one merge; beyond it, an even sample of them.
const MAX_CROSS_PAIRS: usize = 10_000;
/// Rounds of moving records at most.
const MOVE_ROUNDS: usize = 5;
/// Weights are capped: a shared identifier (infinite weight) counts as very strong, not as
/// overruling everything.
const CAP: f64 = 40.0;

/// Cluster of each record (dense ids from 0, in order of first record). `edges` are links
/// `(a, b, weight)` between record numbers; `weight(a, b)` is the match weight of any two
/// records, `None` when they cannot be compared (same source when linking two). `threshold`
/// is the link probability: pairs count for a merge by how far their weight is above its
/// weight.
pub(crate) fn resistant_clusters(
    n: usize,
    edges: &[(usize, usize, f64)],
    threshold: f64,
    weight: impl Fn(usize, usize) -> Option<f64>,
) -> Vec<usize> {
    let bar = (threshold / (1.0 - threshold)).log2();
    let mut cache: HashMap<(usize, usize), Option<f64>> = edges
        .iter()
        .map(|&(a, b, w)| ((a.min(b), a.max(b)), Some(w.clamp(-CAP, CAP) - bar)))
        .collect();
    let mut evidence = |a: usize, b: usize| -> Option<f64> {
        let key = (a.min(b), a.max(b));
        *cache
            .entry(key)
            .or_insert_with(|| weight(key.0, key.1).map(|w| w.clamp(-CAP, CAP) - bar))
    };
    let mut order: Vec<&(usize, usize, f64)> = edges.iter().collect();
    order.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
    // Cluster of each record, and members of each cluster (keyed by its smallest record).
    let mut cluster: Vec<usize> = (0..n).collect();
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    let members_of = |members: &HashMap<usize, Vec<usize>>, c: usize| -> Vec<usize> {
        members.get(&c).cloned().unwrap_or_else(|| vec![c])
    };
    for &&(a, b, _) in &order {
        let (ca, cb) = (cluster[a], cluster[b]);
        if ca == cb {
            continue;
        }
        let (ma, mb) = (members_of(&members, ca), members_of(&members, cb));
        let total = ma.len() * mb.len();
        let stride = total.div_ceil(MAX_CROSS_PAIRS).max(1);
        let mut sum = 0.0;
        for k in (0..total).step_by(stride) {
            sum += evidence(ma[k / mb.len()], mb[k % mb.len()]).unwrap_or(0.0);
        }
        if sum > 0.0 {
            let (keep, gone) = (ca.min(cb), ca.max(cb));
            members.remove(&gone);
            let mut all = ma;
            all.extend(mb);
            for &x in &all {
                cluster[x] = keep;
            }
            members.insert(keep, all);
        }
    }
    // Moves: records in clusters, or linked, in order.
    let mut movable: Vec<usize> = edges.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    movable.sort_unstable();
    movable.dedup();
    let neighbours: HashMap<usize, Vec<usize>> = {
        let mut m: HashMap<usize, Vec<usize>> = HashMap::new();
        for &(a, b, _) in edges {
            m.entry(a).or_default().push(b);
            m.entry(b).or_default().push(a);
        }
        m
    };
    for _ in 0..MOVE_ROUNDS {
        let mut moved = false;
        for &x in &movable {
            let own = cluster[x];
            let mut options: Vec<usize> = neighbours
                .get(&x)
                .into_iter()
                .flatten()
                .map(|&y| cluster[y])
                .collect();
            options.push(own);
            options.sort_unstable();
            options.dedup();
            let score = |c: usize, evidence: &mut dyn FnMut(usize, usize) -> Option<f64>| {
                members_of(&members, c)
                    .iter()
                    .filter(|&&y| y != x)
                    .map(|&y| evidence(x, y).unwrap_or(0.0))
                    .sum::<f64>()
            };
            let own_score = if members.contains_key(&own) {
                score(own, &mut evidence)
            } else {
                0.0
            };
            // Alone scores 0: a record whose own cluster sums below zero leaves it.
            let mut best: (f64, Option<usize>) = (own_score, Some(own));
            if own_score < 0.0 {
                best = (0.0, None);
            }
            for &c in options.iter().filter(|&&c| c != own) {
                let s = score(c, &mut evidence);
                if s > best.0 + 1e-9 {
                    best = (s, Some(c));
                }
            }
            if best.1 == Some(own) {
                continue;
            }
            moved = true;
            // Leave the own cluster.
            if let Some(list) = members.get_mut(&own) {
                list.retain(|&y| y != x);
                let rest = std::mem::take(list);
                members.remove(&own);
                if !rest.is_empty() {
                    let key = rest.iter().copied().min().unwrap_or(own);
                    for &y in &rest {
                        cluster[y] = key;
                    }
                    if rest.len() > 1 {
                        members.insert(key, rest);
                    }
                }
            }
            match best.1 {
                Some(c) => {
                    let mut list = members_of(&members, c);
                    list.push(x);
                    let key = list.iter().copied().min().unwrap_or(c);
                    members.remove(&c);
                    for &y in &list {
                        cluster[y] = key;
                    }
                    members.insert(key, list);
                }
                None => cluster[x] = x,
            }
        }
        if !moved {
            break;
        }
    }
    let mut dense = HashMap::new();
    (0..n)
        .map(|x| {
            let next = dense.len();
            *dense.entry(cluster[x]).or_insert(next)
        })
        .collect()
}

/// Connected components of the links; records are numbered left first, then right.
pub(crate) fn components(n: usize, links: &[(usize, usize)]) -> Vec<usize> {
    let mut parent: Vec<usize> = (0..n).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &(a, b) in links {
        let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    }
    let mut dense = HashMap::new();
    (0..n)
        .map(|x| {
            let root = find(&mut parent, x);
            let next = dense.len();
            *dense.entry(root).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bad_link_does_not_chain_two_people() {
        // Records 0-2 are one person, 3-5 another; a single strong but wrong link 2–3.
        let same = |a: usize, b: usize| (a < 3) == (b < 3);
        let edges = vec![
            (0, 1, 10.0),
            (1, 2, 9.0),
            (0, 2, 8.0),
            (3, 4, 10.0),
            (4, 5, 9.0),
            (2, 3, 12.0),
        ];
        let p = |a: usize, b: usize| Some(if same(a, b) { 6.6 } else { -5.6 });
        let clusters = resistant_clusters(7, &edges, 0.5, p);
        assert_eq!(clusters[0], clusters[1]);
        assert_eq!(clusters[1], clusters[2]);
        assert_eq!(clusters[3], clusters[5]);
        assert_ne!(clusters[0], clusters[3]);
        assert_eq!(clusters[6], 2, "a record with no link is its own cluster");
        // Components would have chained them.
        let links: Vec<(usize, usize)> = edges.iter().map(|e| (e.0, e.1)).collect();
        let chained = components(7, &links);
        assert_eq!(chained[0], chained[5]);
    }

    #[test]
    fn a_weak_member_still_joins_when_the_rest_agree() {
        // 0–1 strong, 2 matches 0 well and 1 weakly: 4.2 − 1.2 > 0.
        let p = |a: usize, b: usize| {
            Some(match (a.min(b), a.max(b)) {
                (0, 1) => 6.6,
                (0, 2) => 4.2,
                _ => -1.2,
            })
        };
        let clusters = resistant_clusters(3, &[(0, 1, 9.0), (0, 2, 6.0)], 0.5, p);
        assert_eq!(clusters, vec![0, 0, 0]);
    }
}
