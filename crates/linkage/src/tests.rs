use borderlens_domain::rng::Rng;

use super::*;
use crate::identifiers::IdentifierKind;
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
        max_block: None,
    };
    let cmp = |column: &str, kind: ComparisonKind| Comparison {
        column: column.into(),
        kind,
        normalise: "text".into(),
        term_frequency: false,
        missing: Vec::new(),
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

/// `n` people, each `copies` times (the copies after the first with a typo in one field).
fn people_with_copies(n: usize, copies: usize) -> Table {
    let (a, _) = people(n, 21);
    let mut rng = Rng::new(5);
    let mut t = Table {
        name: "copies".into(),
        columns: a.columns.clone(),
        values: vec![crate::table::Column::new(); a.columns.len()],
        ..Table::default()
    };
    for r in 0..a.len() {
        for k in 0..copies {
            t.ids.push(&format!("p{r}-{k}"));
            let damaged = if k == 0 { usize::MAX } else { rng.below(4) };
            for c in 0..a.columns.len() {
                let v = &a.values[c][r];
                let v = if c == damaged {
                    typo(&mut rng, v)
                } else {
                    v.to_string()
                };
                t.values[c].push(&v);
            }
        }
    }
    t
}

#[test]
fn the_dedupe_prior_counts_every_duplicate_not_one_per_record() {
    // 150 people, 6 records each: 15 matching pairs per person, λ = 2250 / C(900, 2) ≈ 0.0056,
    // where one partner per record would cap it at 2 / 899 ≈ 0.0022.
    let t = people_with_copies(150, 6);
    let mut s = settings();
    s.link_type = LinkType::DedupeOnly;
    let result = link(&t, None, &s).unwrap();
    let truth = 150.0 * 15.0 / (900.0 * 899.0 / 2.0);
    assert!(
        result.model.lambda > 0.6 * truth && result.model.lambda < 2.0 * truth,
        "λ {} (truth {truth})",
        result.model.lambda
    );
    let clusters: std::collections::HashSet<usize> = result.clusters.iter().copied().collect();
    assert!(
        clusters.len() < 200,
        "{} clusters of 150 people",
        clusters.len()
    );
}

#[test]
fn missing_values_are_neither_agreement_nor_disagreement() {
    // Coordinates where 0.0 means "not geocoded": two ungeocoded records must not agree.
    let mut t = Table {
        name: "t".into(),
        columns: vec!["lat".into()],
        values: vec![crate::table::Column::new()],
        ..Table::default()
    };
    for (r, v) in ["0.0", "0", "50.85", "50.85", "n/a"].iter().enumerate() {
        t.ids.push(&format!("r{r}"));
        t.values[0].push(v);
    }
    let mut c = Comparison {
        column: "lat".into(),
        kind: ComparisonKind::Numeric {
            thresholds: vec![0.001],
            relative: true,
        },
        normalise: "none".into(),
        term_frequency: false,
        missing: Vec::new(),
    };
    let rule = BlockingRule {
        columns: vec!["lat".into()],
        prefix: None,
        max_block: None,
    };
    let mut s = Settings {
        link_type: LinkType::DedupeOnly,
        blocking_rules: vec![rule],
        training_blocking_rules: Vec::new(),
        comparisons: vec![c.clone()],
        identifiers: Vec::new(),
        threshold: 0.5,
        one_to_one: true,
        u_sample_pairs: 1000,
        seed: 1,
    };
    let model = link(&t, None, &s).unwrap().model;
    let level = |s: &Settings, i, j| {
        model::explain_pair(s, &model, &t, None, i, j).comparisons[0]
            .level
            .clone()
    };
    // Without a missing list, 0.0 is a number like any other.
    assert_eq!(level(&s, 0, 1), "exact");
    c.missing = vec!["0".into(), "N/A".into()];
    s.comparisons = vec![c];
    assert_eq!(level(&s, 0, 1), "missing");
    assert_eq!(level(&s, 0, 2), "missing");
    assert_eq!(level(&s, 2, 4), "missing");
    assert_eq!(level(&s, 2, 3), "exact");
    // Nor do they block together: only the two geocoded records are a candidate pair.
    let result = link(&t, None, &s).unwrap();
    assert_eq!(result.candidates, 1);
}

#[test]
fn company_names_are_profiled_as_companies_and_blocked_on_their_words() {
    let forms = ["SA", "N.V.", "Ltd", "GmbH", "Inc."];
    let mut rng = Rng::new(3);
    let mut t = Table {
        name: "t".into(),
        columns: vec!["name".into(), "lat".into()],
        values: vec![crate::table::Column::new(), crate::table::Column::new()],
        ..Table::default()
    };
    for r in 0..400 {
        let brand = format!("{}{}", FIRST[r % 12], LAST[(r / 12) % 10]);
        let name = match rng.below(3) {
            0 => format!("{} {brand} {}", forms[r % 5], LAST[r % 7]),
            1 => format!("{brand} {}, {}", LAST[r % 7], forms[(r + 1) % 5]),
            _ => format!("{brand} {}", LAST[r % 7]),
        };
        t.ids.push(&format!("r{r}"));
        t.values[0].push(&name);
        let lat = if r % 3 == 0 {
            "0.0".to_string()
        } else {
            format!("{:.4}", 50.0 + rng.next_f64())
        };
        t.values[1].push(&lat);
    }
    let s = profile::infer_settings(&t, None);
    let name = s.comparisons.iter().find(|c| c.column == "name").unwrap();
    assert_eq!(name.normalise, "company");
    let lat = s.comparisons.iter().find(|c| c.column == "lat").unwrap();
    assert_eq!(lat.missing, vec!["0".to_string()]);
    let words: Vec<&BlockingRule> = s
        .blocking_rules
        .iter()
        .filter(|r| {
            r.columns
                .iter()
                .any(|c| c.contains("_words(name)") || c.contains("first_word(name)"))
        })
        .collect();
    assert!(!words.is_empty(), "{:?}", s.blocking_rules);
    assert!(words.iter().all(|r| r.max_block.is_some()));
}

#[test]
fn placeholders_are_filled_but_not_known_and_their_columns_block_without_training() {
    // Half the firms are ungeocoded (0.0); the other half sit on 40 city centres.
    let mut t = Table {
        name: "t".into(),
        columns: vec!["name".into(), "lat".into()],
        values: vec![crate::table::Column::new(), crate::table::Column::new()],
        ..Table::default()
    };
    for r in 0..400 {
        t.ids.push(&format!("r{r}"));
        t.values[0].push(&format!(
            "{}{} {}",
            FIRST[r % 12],
            LAST[(r / 12) % 10],
            r / 3
        ));
        let centre = format!("{:.4}", 50.0 + (r % 80) as f64 * 0.01);
        t.values[1].push(if r % 2 == 0 { "0.0" } else { &centre });
    }
    let profiles = profile::profile(&t, None);
    let lat = profiles.iter().find(|p| p.name == "lat").unwrap();
    assert_eq!(lat.fill, 1.0);
    assert!((lat.known - 0.5).abs() < 1e-9, "known {}", lat.known);
    let name = profiles.iter().find(|p| p.name == "name").unwrap();
    assert_eq!(name.known, 1.0);
    let s = profile::infer_settings(&t, None);
    let on_lat = |r: &BlockingRule| r.columns.iter().any(|c| c == "lat");
    assert!(
        s.blocking_rules.iter().any(on_lat),
        "{:?}",
        s.blocking_rules
    );
    assert!(!s.training_blocking_rules.is_empty());
    assert!(
        !s.training_blocking_rules.iter().any(on_lat),
        "{:?}",
        s.training_blocking_rules
    );
}

#[test]
fn word_keys_and_large_blocks() {
    let first = settings::KeyPart::parse("first_word(n)").unwrap();
    let sorted = settings::KeyPart::parse("sorted_words(n)").unwrap();
    assert_eq!(
        first.key_normalised("N.V. Bekaert Textiles S.A.", "company"),
        Some("bekaert".into())
    );
    assert_eq!(
        sorted.key_normalised("Dupont, Jean", "text"),
        sorted.key_normalised("jean DUPONT", "text")
    );
    let mut left = vec![1, 1, 1, 2, 0];
    let mut right = vec![2, 2, 3];
    blocking::drop_large_blocks(&mut left, Some(&mut right), 2);
    assert_eq!(left, vec![0, 0, 0, 2, 0]);
    assert_eq!(right, vec![2, 2, 3]);
    blocking::drop_large_blocks(&mut left, Some(&mut right), 1);
    assert_eq!(left, vec![0, 0, 0, 0, 0]);
    assert_eq!(right, vec![0, 0, 3]);
}

#[test]
fn registration_numbers_are_found_by_their_header_and_link_outright() {
    let mut t = Table {
        name: "parties".into(),
        columns: vec!["name".into(), "EORI number".into(), "destination".into()],
        values: vec![crate::table::Column::new(); 3],
        ..Table::default()
    };
    let rows = [
        (
            "p1",
            "Hanbit Precision Trading",
            "KR123456789000",
            "DE10234567",
        ),
        ("p2", "Daehan Logistics", "kr-1234 5678 9000", "DE10234567"),
        ("p3", "Nordic Timber", "KR987654321000", "FR20234567"),
        ("p4", "Baltic Foods", "n/a", "FR20234568"),
    ];
    for (id, name, eori, destination) in rows {
        t.ids.push(id);
        t.values[0].push(name);
        t.values[1].push(eori);
        t.values[2].push(destination);
    }
    let s = profile::infer_settings(&t, None);
    let kinds: Vec<(&str, IdentifierKind)> = s
        .identifiers
        .iter()
        .map(|c| (c.column.as_str(), c.kind))
        .collect();
    // `destination` has the shape of a registration number, but its header does not say so.
    assert_eq!(kinds, [("EORI number", IdentifierKind::Registration)]);
    let result = link(&t, None, &s).unwrap();
    assert!(result.links.contains(&(0, 1)) || result.links.contains(&(1, 0)));
    assert_eq!(result.identifier_links, 1);
    assert_eq!(result.invalid_identifiers.len(), 1, "n/a is reported");
}
