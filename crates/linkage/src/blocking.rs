//! Blocking: which pairs get compared. A pair is a candidate when it agrees on the key of at
//! least one rule. Keys are hashed to 64 bits and the right side is indexed per rule (sorted
//! hashes), so candidates are produced record by record, never all held at once: memory is
//! O(records × rules), whatever the number of pairs.
//!
//! A pair found by several rules is produced once, by the first rule that finds it (the later
//! rules check the earlier keys, as Splink does), and carries the bit set of every rule it
//! agrees on, so that one pass over the candidates also serves each training rule.

use rayon::prelude::*;

use crate::settings::{BlockingRule, Comparison, KeyPart};
use crate::table::Table;

/// 64-bit hash of a key (FNV-1a, then a SplitMix finaliser to spread the bits); never 0, which
/// marks a record without key. Two distinct keys sharing a hash (odds ~10⁻⁷ at a million keys)
/// only add a candidate pair, which the comparisons then score as the non-match it is.
fn hash_key(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    h.max(1)
}

/// Key hash of every record of `table` for `rule` (0: some part is missing). A rule without
/// columns gives every record the same key. A column compared with `company` or `address`
/// normalisation (in `comparisons`) is keyed with it too, and its `missing` values give no key.
pub(crate) fn key_hashes(
    rule: &BlockingRule,
    table: &Table,
    comparisons: &[Comparison],
) -> Vec<u64> {
    let no_missing: &[String] = &[];
    let parts: Vec<(KeyPart, Option<&crate::table::Column>, &str, &[String])> = rule
        .columns
        .iter()
        .filter_map(|spec| KeyPart::parse(spec).ok())
        .map(|part| {
            let column = table.column(part.column());
            let comparison = comparisons.iter().find(|c| c.column == part.column());
            let normalise = comparison.map_or("text", |c| c.normalise.as_str());
            let missing = comparison.map_or(no_missing, |c| c.missing.as_slice());
            (part, column, normalise, missing)
        })
        .collect();
    (0..table.len())
        .into_par_iter()
        .map_init(String::new, |key, r| {
            key.clear();
            for (part, values, normalise, missing) in &parts {
                let raw = values.and_then(|v| v.get(r)).unwrap_or("");
                // A value that means "not known" gives no key, as an empty one.
                if crate::settings::is_missing_value(raw, missing) {
                    return 0;
                }
                let Some(v) = part.key_normalised(raw, normalise) else {
                    return 0;
                };
                match rule.prefix {
                    Some(p) => key.extend(v.chars().take(p)),
                    None => key.push_str(&v),
                }
                key.push('\u{1f}');
            }
            hash_key(key.as_bytes())
        })
        .collect()
}

/// Keys held by more than `max` records of either side become 0 (no key) on both sides.
pub(crate) fn drop_large_blocks(left: &mut [u64], right: Option<&mut [u64]>, max: usize) {
    let mut counts: crate::FastMap<u64, (usize, usize)> = crate::FastMap::default();
    for &k in left.iter().filter(|&&k| k != 0) {
        counts.entry(k).or_default().0 += 1;
    }
    if let Some(r) = right.as_deref() {
        for &k in r.iter().filter(|&&k| k != 0) {
            counts.entry(k).or_default().1 += 1;
        }
    }
    let large = |k: &u64| counts.get(k).is_some_and(|&(a, b)| a > max || b > max);
    for k in left.iter_mut().chain(right.into_iter().flatten()) {
        if large(k) {
            *k = 0;
        }
    }
}

/// One rule's keys and the index of the right side.
struct RuleIndex {
    left: Vec<u64>,
    /// `None` when deduplicating: the right side is the left one.
    right: Option<Vec<u64>>,
    /// Right records with a key, sorted by (hash, record).
    sorted_keys: Vec<u64>,
    sorted_ids: Vec<u32>,
}

impl RuleIndex {
    fn right_key(&self, j: usize) -> u64 {
        self.right.as_ref().unwrap_or(&self.left)[j]
    }
}

/// The rules indexed, ready to produce each left record's candidates.
pub(crate) struct Blocker {
    rules: Vec<RuleIndex>,
    dedupe: bool,
}

/// A candidate partner of a left record: the right record, and the bit set of the rules the
/// pair agrees on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) right: u32,
    pub(crate) rules: u32,
}

/// The most rules (blocking and training together) a run may have: rule sets are 32-bit masks.
pub(crate) const MAX_RULES: usize = 32;

impl Blocker {
    /// Indexes `rules` (at most [`MAX_RULES`]) over the sources.
    pub(crate) fn new(
        rules: &[&BlockingRule],
        comparisons: &[Comparison],
        left: &Table,
        right: Option<&Table>,
    ) -> Blocker {
        let rules = rules
            .iter()
            .take(MAX_RULES)
            .map(|rule| {
                let mut left_keys = key_hashes(rule, left, comparisons);
                let mut right_keys = right.map(|t| key_hashes(rule, t, comparisons));
                if let Some(max) = rule.max_block {
                    drop_large_blocks(&mut left_keys, right_keys.as_deref_mut(), max);
                }
                let keys = right_keys.as_ref().unwrap_or(&left_keys);
                let mut order: Vec<(u64, u32)> = keys
                    .iter()
                    .enumerate()
                    .filter(|(_, &k)| k != 0)
                    .map(|(j, &k)| (k, j as u32))
                    .collect();
                order.par_sort_unstable();
                let (sorted_keys, sorted_ids) = order.into_iter().unzip();
                RuleIndex {
                    left: left_keys,
                    right: right_keys,
                    sorted_keys,
                    sorted_ids,
                }
            })
            .collect();
        Blocker {
            rules,
            dedupe: right.is_none(),
        }
    }

    /// The candidates of left record `i`, appended to `out` in a fixed order (rule, then right
    /// record). When deduplicating, only partners after `i`.
    pub(crate) fn candidates_of(&self, i: usize, out: &mut Vec<Candidate>) {
        for (r, rule) in self.rules.iter().enumerate() {
            let key = rule.left[i];
            if key == 0 {
                continue;
            }
            let from = rule.sorted_keys.partition_point(|&k| k < key);
            let to = from + rule.sorted_keys[from..].partition_point(|&k| k == key);
            let mut ids = &rule.sorted_ids[from..to];
            if self.dedupe {
                ids = &ids[ids.partition_point(|&j| j as usize <= i)..];
            }
            'partner: for &j in ids {
                let j_us = j as usize;
                for earlier in &self.rules[..r] {
                    let k = earlier.left[i];
                    if k != 0 && k == earlier.right_key(j_us) {
                        continue 'partner;
                    }
                }
                let mut mask = 1u32 << r;
                for (later, other) in self.rules.iter().enumerate().skip(r + 1) {
                    let k = other.left[i];
                    if k != 0 && k == other.right_key(j_us) {
                        mask |= 1 << later;
                    }
                }
                out.push(Candidate {
                    right: j,
                    rules: mask,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::Column;

    fn table(rows: &[[&str; 2]]) -> Table {
        let mut t = Table {
            name: "t".into(),
            columns: vec!["a".into(), "b".into()],
            values: vec![Column::new(), Column::new()],
            ..Table::default()
        };
        for (r, row) in rows.iter().enumerate() {
            t.ids.push(&format!("r{r}"));
            for (c, v) in row.iter().enumerate() {
                t.values[c].push(v);
            }
        }
        t
    }

    fn rule(columns: &[&str]) -> BlockingRule {
        BlockingRule {
            columns: columns.iter().map(|s| s.to_string()).collect(),
            prefix: None,
            max_block: None,
        }
    }

    fn all(blocker: &Blocker, n: usize) -> Vec<(usize, u32, u32)> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut c = Vec::new();
            blocker.candidates_of(i, &mut c);
            out.extend(c.into_iter().map(|c| (i, c.right, c.rules)));
        }
        out
    }

    #[test]
    fn each_pair_comes_once_with_every_rule_it_agrees_on() {
        let left = table(&[["x", "1"], ["y", "2"], ["", "1"]]);
        let right = table(&[["x", "1"], ["x", "9"], ["y", "1"]]);
        let (ra, rb) = (rule(&["a"]), rule(&["b"]));
        let blocker = Blocker::new(&[&ra, &rb], &[], &left, Some(&right));
        let pairs = all(&blocker, 3);
        assert_eq!(
            pairs,
            vec![
                (0, 0, 0b11),
                (0, 1, 0b01),
                (0, 2, 0b10),
                (1, 2, 0b01),
                (2, 0, 0b10),
                (2, 2, 0b10),
            ]
        );
    }

    #[test]
    fn deduplication_gives_each_pair_once_in_order() {
        let t = table(&[["x", "1"], ["x", "1"], ["x", "2"], ["", "2"]]);
        let (ra, rb) = (rule(&["a"]), rule(&["b"]));
        let blocker = Blocker::new(&[&ra, &rb], &[], &t, None);
        let pairs = all(&blocker, 4);
        assert_eq!(
            pairs,
            vec![(0, 1, 0b11), (0, 2, 0b01), (1, 2, 0b01), (2, 3, 0b10),]
        );
        // A rule without columns pairs everyone.
        let everyone = rule(&[]);
        let blocker = Blocker::new(&[&everyone], &[], &t, None);
        assert_eq!(all(&blocker, 4).len(), 6);
    }

    #[test]
    fn company_columns_block_on_the_company_normalisation() {
        let left = table(&[["Acme Trading Co. Ltd", "1"]]);
        let right = table(&[["ACME TRADING COMPANY LIMITED", "2"], ["Acme Foods", "1"]]);
        let ra = rule(&["a"]);
        let company = Comparison {
            column: "a".into(),
            kind: crate::settings::ComparisonKind::Exact,
            normalise: "company".into(),
            term_frequency: false,
            missing: Vec::new(),
        };
        let blocker = Blocker::new(&[&ra], &[company], &left, Some(&right));
        assert_eq!(all(&blocker, 1), vec![(0, 0, 1)]);
        // Plain text keys would not have met.
        let plain = Blocker::new(&[&ra], &[], &left, Some(&right));
        assert!(all(&plain, 1).is_empty());
    }
}
