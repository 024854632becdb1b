use borderlens_domain::rng::Rng;

use super::*;
use crate::settings::{BlockingRule, Comparison, ComparisonKind, LinkType};

const FIRST: [&str; 12] = [
    "michaela", "courtney", "elton", "mitchell", "joshua", "amelia", "liam", "chloe", "noah",
    "grace", "oliver", "ruby",
];
const LAST: [&str; 10] = [
    "neumann", "painter", "maxon", "smith", "nguyen", "brown", "wilson", "taylor", "martin",
    "white",
];

/// A typo: one character replaced.
fn typo(rng: &mut Rng, s: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let i = rng.below(chars.len());
    chars[i] = (b'a' + rng.below(26) as u8) as char;
    chars.into_iter().collect()
}

/// `n` people in A and a corrupted copy of each in B (one field damaged per record), shuffled.
fn people(n: usize, seed: u64) -> (Table, Table) {
    let mut rng = Rng::new(seed);
    let columns = vec![
        "first".to_string(),
        "last".into(),
        "dob".into(),
        "postcode".into(),
    ];
    let mut a = Table {
        name: "a".into(),
        columns: columns.clone(),
        values: vec![crate::table::Column::new(); 4],
        ..Table::default()
    };
    let mut b = Table {
        name: "b".into(),
        columns,
        values: vec![crate::table::Column::new(); 4],
        ..Table::default()
    };
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut rows = Vec::new();
    for i in 0..n {
        let row = [
            FIRST[rng.below(FIRST.len())].to_string(),
            LAST[rng.below(LAST.len())].to_string(),
            format!(
                "19{:02}{:02}{:02}",
                rng.below(100),
                1 + rng.below(12),
                1 + rng.below(28)
            ),
            format!("{}", 2000 + rng.below(3000)),
        ];
        a.ids.push(&format!("a{i}"));
        for (c, v) in row.iter().enumerate() {
            a.values[c].push(v);
        }
        rows.push(row);
    }
    for &i in &order {
        let mut row = rows[i].clone();
        let damaged = rng.below(4);
        row[damaged] = if rng.below(4) == 0 {
            String::new()
        } else {
            typo(&mut rng, &row[damaged])
        };
        b.ids.push(&format!("b{i}"));
        for (c, v) in row.iter().enumerate() {
            b.values[c].push(v);
        }
    }
    (a, b)
}

fn settings() -> Settings {
    let rule = |cols: &[&str]| BlockingRule {
        columns: cols.iter().map(|s| s.to_string()).collect(),
        prefix: None,
    };
    let cmp = |column: &str, kind: ComparisonKind| Comparison {
        column: column.into(),
        kind,
        normalise: "text".into(),
        term_frequency: false,
    };
    Settings {
        link_type: LinkType::LinkOnly,
        blocking_rules: vec![
            rule(&["dob"]),
            rule(&["postcode"]),
            rule(&["first", "last"]),
        ],
        training_blocking_rules: Vec::new(),
        comparisons: vec![
            cmp(
                "first",
                ComparisonKind::JaroWinkler {
                    thresholds: vec![0.9],
                },
            ),
            cmp(
                "last",
                ComparisonKind::JaroWinkler {
                    thresholds: vec![0.9],
                },
            ),
            cmp(
                "dob",
                ComparisonKind::Levenshtein {
                    thresholds: vec![1],
                },
            ),
            cmp(
                "postcode",
                ComparisonKind::Levenshtein {
                    thresholds: vec![1],
                },
            ),
        ],
        identifiers: Vec::new(),
        threshold: 0.5,
        one_to_one: true,
        u_sample_pairs: 50_000,
        seed: 1,
    }
}

fn f1(result: &LinkResult, a: &Table, b: &Table) -> f64 {
    let tp = result
        .links
        .iter()
        .filter(|&&(i, j)| a.ids[i as usize][1..] == b.ids[j as usize][1..])
        .count() as f64;
    2.0 * tp / (result.links.len() as f64 + a.len() as f64)
}

#[test]
fn links_corrupted_copies_without_labels() {
    let (a, b) = people(2000, 3);
    let result = link(&a, Some(&b), &settings()).unwrap();
    let score = f1(&result, &a, &b);
    assert!(score > 0.97, "F1 {score}");
    // EM learnt that agreeing on the date of birth is strong evidence.
    let dob = &result.model.comparisons[2];
    assert!(dob.weight(1) > 8.0, "{dob:?}");
    assert!(dob.weight(3) < 0.0, "{dob:?}");
    // One to one: no record twice.
    let mut left: Vec<u32> = result.links.iter().map(|l| l.0).collect();
    let mut right: Vec<u32> = result.links.iter().map(|l| l.1).collect();
    left.sort_unstable();
    left.dedup();
    right.sort_unstable();
    right.dedup();
    assert_eq!(left.len(), result.links.len());
    assert_eq!(right.len(), result.links.len());
    // Clusters: a linked pair shares one; the rest are alone.
    assert_eq!(result.clusters.len(), a.len() + b.len());
    let (i, j) = result.links[0];
    assert_eq!(
        result.clusters[i as usize],
        result.clusters[a.len() + j as usize]
    );
}

#[test]
fn inferred_settings_link_as_well() {
    let (a, b) = people(2000, 4);
    let inferred = profile::infer_settings(&a, Some(&b));
    assert_eq!(inferred.link_type, LinkType::LinkOnly);
    assert!(!inferred.blocking_rules.is_empty());
    let text = inferred.to_toml();
    assert_eq!(Settings::parse(&text).unwrap(), inferred, "{text}");
    let result = link(&a, Some(&b), &inferred).unwrap();
    let score = f1(&result, &a, &b);
    assert!(score > 0.95, "F1 {score}\n{text}");
}

#[test]
fn the_same_run_gives_the_same_links() {
    let (a, b) = people(500, 5);
    let first = link(&a, Some(&b), &settings()).unwrap();
    let second = link(&a, Some(&b), &settings()).unwrap();
    assert_eq!(first.links, second.links);
    assert_eq!(first.model, second.model);
}

#[test]
fn dedupe_clusters_duplicates_within_one_source() {
    let (a, b) = people(300, 6);
    let mut both = a.clone();
    both.name = "both".into();
    for r in 0..b.len() {
        both.ids.push(&b.ids[r]);
        for (c, column) in both.values.iter_mut().enumerate() {
            column.push(&b.values[c][r]);
        }
    }
    let mut s = settings();
    s.link_type = LinkType::DedupeOnly;
    let result = link(&both, None, &s).unwrap();
    let same = |x: &str, y: &str| {
        let (i, j) = (
            both.ids.iter().position(|id| id == x).unwrap(),
            both.ids.iter().position(|id| id == y).unwrap(),
        );
        result.clusters[i] == result.clusters[j]
    };
    let found = (0..300)
        .filter(|i| same(&format!("a{i}"), &format!("b{i}")))
        .count();
    assert!(found > 280, "{found} of 300 duplicates found");
    assert!(!same("a0", "a1") || !same("b0", "b1"));
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let (a, b) = people(10, 7);
    let mut s = settings();
    s.blocking_rules[0].columns = vec!["date_of_birth".into()];
    let error = link(&a, Some(&b), &s).unwrap_err().to_string();
    assert!(error.contains("unknown column 'date_of_birth'"), "{error}");
    let mut s = settings();
    s.comparisons[0].column = "given".into();
    let error = link(&a, Some(&b), &s).unwrap_err().to_string();
    assert!(error.contains("unknown column 'given'"), "{error}");
    let error = Settings::parse(
        "link_type = \"link_only\"\n[[blocking_rules]]\ncolumns = [\"dob\"]\n\
         [[comparisons]]\ncolumn = \"dob\"\nkind = \"soundex\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("unknown kind 'soundex'"), "{error}");
    let error = link(&a, None, &settings()).unwrap_err().to_string();
    assert!(error.contains("two sources"), "{error}");
    let empty = Table {
        name: "empty.csv".into(),
        columns: a.columns.clone(),
        values: vec![crate::table::Column::new(); 4],
        ..Table::default()
    };
    let error = link(&empty, Some(&b), &settings()).unwrap_err().to_string();
    assert!(error.contains("empty.csv: no records"), "{error}");
}

proptest::proptest! {
    #[test]
    fn one_to_one_assignment_uses_each_record_once(
        pairs in proptest::collection::vec((0u32..20, 0u32..20, -10.0f64..10.0), 0..80)
    ) {
        let scored: Vec<ScoredPair> = pairs
            .iter()
            .map(|&(l, r, w)| ScoredPair { left: l, right: r, weight: w, probability: model::probability(w) })
            .collect();
        let links = model::assign(&scored, 0.5, true);
        let mut seen_l = std::collections::HashSet::new();
        let mut seen_r = std::collections::HashSet::new();
        for (l, r) in &links {
            proptest::prop_assert!(seen_l.insert(*l) && seen_r.insert(*r));
        }
        // Every accepted link is above the threshold.
        for (l, r) in &links {
            proptest::prop_assert!(scored.iter().any(|p| p.left == *l && p.right == *r && p.probability >= 0.5));
        }
    }
}

#[test]
fn blocking_keys_take_prefixes_months_and_weeks() {
    use crate::settings::KeyPart;
    assert_eq!(
        KeyPart::parse("memo[:3]").unwrap(),
        KeyPart::Prefix("memo".into(), 3)
    );
    assert_eq!(
        KeyPart::parse(" month(d) ").unwrap(),
        KeyPart::Month("d".into())
    );
    assert!(KeyPart::parse("memo[:0]").is_err());
    assert!(KeyPart::parse("soundex(name)").is_err());
    let prefix = KeyPart::Prefix("memo".into(), 3);
    assert_eq!(prefix.key("MATTHIAS C paym").as_deref(), Some("mat"));
    assert_eq!(prefix.key("  ").as_deref(), None);
    let month = KeyPart::Month("d".into());
    assert_eq!(month.key("2022-03-28"), month.key("20220301"));
    assert_ne!(month.key("2022-03-31"), month.key("2022-04-01"));
    assert_eq!(month.key("not a date"), None);
    // ISO weeks run Monday to Sunday: 2022-03-28 was a Monday.
    let week = KeyPart::Week("d".into());
    assert_eq!(week.key("2022-03-28"), week.key("2022-04-03"));
    assert_ne!(week.key("2022-03-27"), week.key("2022-03-28"));
    // A rule naming an unknown column through a derived key is refused.
    let (a, b) = people(10, 8);
    let mut s = settings();
    s.blocking_rules[0].columns = vec!["week(birth)".into()];
    let error = link(&a, Some(&b), &s).unwrap_err().to_string();
    assert!(error.contains("unknown column 'birth'"), "{error}");
}

#[test]
fn scoring_from_stored_vectors_equals_comparing_again() {
    let (a, b) = people(800, 9);
    let stored = link(&a, Some(&b), &settings()).unwrap();
    let options = LinkOptions {
        max_stored_pairs: 0,
        ..LinkOptions::default()
    };
    let streamed = link_with(&a, Some(&b), &settings(), &options, &Quiet).unwrap();
    assert_eq!(stored.pairs, streamed.pairs);
    assert_eq!(stored.links, streamed.links);
    assert_eq!(stored.candidates, streamed.candidates);
}

struct StopAtOnce;

impl Observer for StopAtOnce {
    fn stop(&self) -> bool {
        true
    }
}

#[test]
fn a_run_can_be_interrupted() {
    let (a, b) = people(100, 10);
    let result = link_with(
        &a,
        Some(&b),
        &settings(),
        &LinkOptions::default(),
        &StopAtOnce,
    );
    assert!(matches!(result, Err(LinkError::Interrupted)));
}

/// One source: `n` people, and person 0 ("zyx quist") recorded `copies` extra times.
fn with_many_copies(n: usize, copies: usize) -> Table {
    let (a, _) = people(n, 11);
    let mut t = a.clone();
    t.values[0] = (0..a.len())
        .map(|r| if r == 0 { "zyx" } else { &a.values[0][r] })
        .collect();
    let first: Vec<String> = (0..4).map(|c| t.values[c][0].to_string()).collect();
    for k in 0..copies {
        t.ids.push(&format!("copy{k}"));
        for (c, v) in first.iter().enumerate() {
            t.values[c].push(v);
        }
    }
    t
}

#[test]
fn term_frequencies_count_people_not_their_duplicates() {
    let t = with_many_copies(400, 30);
    let mut s = settings();
    s.link_type = LinkType::DedupeOnly;
    s.comparisons[0].term_frequency = true;
    let result = link(&t, None, &s).unwrap();
    let tf = result.model.term_frequencies[0].as_ref().unwrap();
    // 31 records of one person: one entity holding "zyx", as rare as any single name.
    assert!(
        tf.share("zyx") < 3.0 / tf.entities as f64,
        "{} of {} entities",
        tf.share("zyx"),
        tf.entities
    );
    assert!(tf.entities < t.len() - 25, "{} entities", tf.entities);
    // The 31 records are one cluster.
    let cluster = result.clusters[0];
    assert_eq!(
        result.clusters.iter().filter(|&&c| c == cluster).count(),
        31
    );
    // Agreeing on a common first name weighs less than agreeing on a rare one.
    let common = tf
        .values
        .iter()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .map(|(_, &share)| share)
        .unwrap();
    assert!(result.model.tf_exact_weight(0, common) < result.model.tf_exact_weight(0, tf.single));
}

#[test]
fn labels_check_links_and_can_replace_em() {
    let (a, b) = people(600, 12);
    let labels: Vec<(u32, u32)> = (0..a.len())
        .map(|i| {
            let j = (0..b.len())
                .find(|&j| b.ids[j][1..] == a.ids[i][1..])
                .unwrap();
            (i as u32, j as u32)
        })
        .collect();
    let options = LinkOptions {
        labels: labels.clone(),
        ..LinkOptions::default()
    };
    let checked = link_with(&a, Some(&b), &settings(), &options, &Quiet).unwrap();
    let check = checked.label_check.clone().unwrap();
    assert!((check.f1 - f1(&checked, &a, &b)).abs() < 0.01, "{check:?}");
    assert!(!check.trained_on_labels);
    let trained = link_with(
        &a,
        Some(&b),
        &settings(),
        &LinkOptions {
            labels,
            train_on_labels: true,
            ..LinkOptions::default()
        },
        &Quiet,
    )
    .unwrap();
    assert!(f1(&trained, &a, &b) > 0.97);
    assert_ne!(trained.model.comparisons, checked.model.comparisons);
    assert!(trained.label_check.unwrap().trained_on_labels);
}
