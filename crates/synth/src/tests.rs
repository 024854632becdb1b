use std::collections::{HashMap, HashSet};

use super::*;

fn by_entity(records: &Records) -> HashMap<usize, &Vec<String>> {
    records
        .rows
        .iter()
        .map(|r| (entity_of(&r[REC_ID]).expect("a rec-{k}-... id"), r))
        .collect()
}

fn counts(records: &Records, column: usize) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for r in &records.rows {
        if !r[column].is_empty() {
            *counts.entry(r[column].as_str()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn same_arguments_same_output() {
    let (a1, b1) = febrl_like(20_000, 7);
    let (a2, b2) = febrl_like(20_000, 7);
    assert_eq!(a1, a2);
    assert_eq!(b1, b2);
    let (a3, _) = febrl_like(20_000, 8);
    assert_ne!(a1, a3);
    assert_eq!(
        febrl_like_dedupe(5_000, 5, 3),
        febrl_like_dedupe(5_000, 5, 3)
    );
}

#[test]
fn a_prefix_of_entities_does_not_depend_on_n() {
    // Entity k is the same person whatever the size of the data set.
    let (small, _) = febrl_like(100, 9);
    let (large, _) = febrl_like(30_000, 9);
    let large = by_entity(&large);
    for row in &small.rows {
        assert_eq!(&row, large.get(&entity_of(&row[0]).unwrap()).unwrap());
    }
}

#[test]
fn sizes_and_ids() {
    let n = 5_000;
    let (a, b) = febrl_like(n, 1);
    assert_eq!(a.len(), n);
    assert_eq!(b.len(), n);
    assert_eq!(a.columns, COLUMNS);
    assert_eq!(b.columns, COLUMNS);
    assert!(a
        .rows
        .iter()
        .chain(&b.rows)
        .all(|r| r.len() == COLUMNS.len()));
    let a_ids: HashSet<&str> = a.rows.iter().map(|r| r[0].as_str()).collect();
    let b_ids: HashSet<&str> = b.rows.iter().map(|r| r[0].as_str()).collect();
    let want_a: HashSet<String> = (0..n).map(|k| format!("rec-{k}-org")).collect();
    let want_b: HashSet<String> = (0..n).map(|k| format!("rec-{k}-dup-0")).collect();
    assert_eq!(a_ids, want_a.iter().map(String::as_str).collect());
    assert_eq!(b_ids, want_b.iter().map(String::as_str).collect());
    // Shuffled, not in id order.
    assert_ne!(a.rows[0][0], "rec-0-org");
    assert!(febrl_like(0, 1).0.is_empty());
}

#[test]
fn every_b_record_has_its_partner_in_a() {
    let (a, b) = febrl_like(5_000, 2);
    let a = by_entity(&a);
    let mut partners = HashSet::new();
    for r in &b.rows {
        let k = entity_of(&r[0]).unwrap();
        assert!(a.contains_key(&k), "no partner for {}", r[0]);
        assert!(partners.insert(k), "two duplicates of {k}");
    }
    assert_eq!(partners.len(), a.len());
}

#[test]
fn duplicates_are_corrupted_like_febrl4() {
    let (a, b) = febrl_like(20_000, 3);
    let a = by_entity(&a);
    let (mut identical, mut equal_fields, mut fields) = (0usize, 0usize, 0usize);
    let mut changed_per_column = [0usize; 11];
    let mut swapped_names = 0usize;
    for r in &b.rows {
        let o = a[&entity_of(&r[0]).unwrap()];
        let equal = (1..11).filter(|&c| o[c] == r[c]).count();
        for c in 1..11 {
            if o[c] != r[c] {
                changed_per_column[c] += 1;
            }
        }
        if o[GIVEN_NAME] == r[SURNAME] && o[SURNAME] == r[GIVEN_NAME] {
            swapped_names += 1;
        }
        identical += usize::from(equal == 10);
        equal_fields += equal;
        fields += 10;
    }
    let n = b.len() as f64;
    let identical = identical as f64 / n;
    let equal = equal_fields as f64 / fields as f64;
    // FEBRL4: no record is identical to its original, and 77.5% of values are equal.
    assert!(identical < 0.01, "identical records {identical}");
    assert!((0.72..0.86).contains(&equal), "equal values {equal}");
    for (c, &changed) in changed_per_column.iter().enumerate().skip(1) {
        let share = changed as f64 / n;
        assert!(
            (0.01..0.5).contains(&share),
            "column {c} changed in {share}"
        );
    }
    let swaps = swapped_names as f64 / n;
    assert!((0.02..0.08).contains(&swaps), "name swaps {swaps}");
}

#[test]
fn names_are_skewed() {
    let (a, _) = febrl_like(50_000, 4);
    for column in [GIVEN_NAME, SURNAME, SUBURB] {
        let counts = counts(&a, column);
        let mut freq: Vec<usize> = counts.values().copied().collect();
        freq.sort_unstable_by(|x, y| y.cmp(x));
        let top = freq[0];
        let median = freq[freq.len() / 2];
        assert!(
            top >= 20 * median,
            "column {column}: top {top}, median {median}"
        );
        // No single value dominates either (FEBRL4: the top surname is 3% of records).
        assert!(top < a.len() / 15, "column {column}: top {top}");
    }
    let surnames = counts(&a, SURNAME).len();
    assert!(surnames > 5_000, "{surnames} distinct surnames");
}

#[test]
fn originals_look_like_febrl() {
    let (a, _) = febrl_like(20_000, 5);
    let n = a.len() as f64;
    let empty = |c: usize| a.rows.iter().filter(|r| r[c].is_empty()).count() as f64 / n;
    assert!(
        (0.05..0.12).contains(&empty(ADDRESS_2)),
        "address_2 empty {}",
        empty(ADDRESS_2)
    );
    assert_eq!(empty(POSTCODE), 0.0);
    assert_eq!(empty(SOC_SEC_ID), 0.0);
    for r in &a.rows {
        assert!(r[POSTCODE].len() == 4 && r[POSTCODE].bytes().all(|b| b.is_ascii_digit()));
        assert!(r[SOC_SEC_ID].len() == 7 && r[SOC_SEC_ID].bytes().all(|b| b.is_ascii_digit()));
        if !r[DATE_OF_BIRTH].is_empty() {
            let year: u32 = r[DATE_OF_BIRTH][..4].parse().unwrap();
            assert!((1910..=2005).contains(&year));
        }
    }
    let ssids: HashSet<&str> = a.rows.iter().map(|r| r[SOC_SEC_ID].as_str()).collect();
    assert_eq!(ssids.len(), a.len());
    let states = counts(&a, STATE);
    let nsw = states["nsw"] as f64 / n;
    assert!((0.28..0.40).contains(&nsw), "nsw {nsw}");
    assert!(states["nt"] < states["act"] && states["act"] < states["tas"]);
    // A suburb mostly has one postcode.
    let mut postcodes: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for r in &a.rows {
        if !r[SUBURB].is_empty() {
            *postcodes
                .entry(&r[SUBURB])
                .or_default()
                .entry(&r[POSTCODE])
                .or_insert(0) += 1;
        }
    }
    let (modal, all) = postcodes.values().fold((0, 0), |(m, t), p| {
        (m + p.values().max().unwrap(), t + p.values().sum::<usize>())
    });
    assert!(modal as f64 / all as f64 > 0.85, "{modal} of {all}");
}

#[test]
fn dedupe_has_skewed_duplicate_counts() {
    let entities = 10_000;
    let max = 9;
    let records = febrl_like_dedupe(entities, max, 6);
    let mut per_entity: HashMap<usize, (usize, usize)> = HashMap::new();
    for r in &records.rows {
        let k = entity_of(&r[0]).unwrap();
        let e = per_entity.entry(k).or_default();
        if r[0].ends_with("-org") {
            e.0 += 1;
        } else {
            assert!(r[0].starts_with(&format!("rec-{k}-dup-")), "{}", r[0]);
            e.1 += 1;
        }
    }
    assert_eq!(per_entity.len(), entities);
    assert!(per_entity
        .values()
        .all(|&(org, dups)| org == 1 && dups <= max));
    let with = |d: usize| per_entity.values().filter(|e| e.1 == d).count() as f64 / entities as f64;
    assert!(with(0) + with(1) > 0.7, "{} {}", with(0), with(1));
    assert!(with(0) > with(1));
    assert!((4..=max).map(with).sum::<f64>() > 0.01);
    assert!(with(max) > 0.0);
    assert_eq!(
        records.len(),
        per_entity.values().map(|e| 1 + e.1).sum::<usize>()
    );
    assert!(febrl_like_dedupe(100, 0, 1)
        .rows
        .iter()
        .all(|r| r[0].ends_with("-org")));
}

#[test]
fn csv_round_trip() {
    let (a, _) = febrl_like(2_000, 10);
    let dir = std::env::temp_dir().join(format!("borderlens-synth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("a.csv");
    let mut tricky = a.clone();
    tricky.rows[0][ADDRESS_2] = "flat 2, \"the willows\"".to_owned();
    write_csv(&tricky, &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with(
        "rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,\
         date_of_birth,soc_sec_id\n"
    ));
    let mut reader = csv::Reader::from_path(&path).unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, COLUMNS);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(rows, tricky.rows);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn entity_of_reads_ids() {
    assert_eq!(entity_of("rec-12-org"), Some(12));
    assert_eq!(entity_of("rec-0-dup-3"), Some(0));
    assert_eq!(entity_of("rec-x-org"), None);
    assert_eq!(entity_of("12"), None);
}

#[test]
fn company_records_are_reproducible_with_their_truth() {
    let a = companies_dedupe(500, 4);
    assert_eq!(a, companies_dedupe(500, 4));
    assert_ne!(a, companies_dedupe(500, 5));
    assert!(a.len() >= 500 && a.columns.len() == COMPANY_COLUMNS.len());
    let clusters: HashSet<&str> = a.rows.iter().map(|r| r[6].as_str()).collect();
    // Several filings per applicant on average, and a share of ungeocoded 0.0 coordinates.
    assert!(clusters.len() < a.len() / 2, "{} clusters", clusters.len());
    let zeros = a.rows.iter().filter(|r| r[4] == "0.0").count();
    assert!(zeros > a.len() / 3 && zeros < a.len(), "{zeros} ungeocoded");
}

#[test]
fn a_parties_register_plants_two_id_firms_at_the_asked_share_and_never_shares_an_eori_across_firms()
{
    let ids: Vec<String> = (0..4000).map(|i| format!("P{i:05}")).collect();
    let (register, pairs) = crate::parties_register(&ids, 0.05, 7);
    assert_eq!(register.columns, crate::PARTY_COLUMNS);
    assert_eq!(register.rows.len(), ids.len());
    for (row, id) in register.rows.iter().zip(&ids) {
        assert_eq!(&row[0], id, "rows in the order of the ids");
        assert!(!row[1].is_empty(), "every party has a name");
    }
    // About 5% of the firms hold two ids: 4000 ids make about 3810 firms, 190 of them two-id.
    assert!((150..=240).contains(&pairs.len()), "{} pairs", pairs.len());
    let mut seen = std::collections::HashSet::new();
    for (a, b) in &pairs {
        assert!(a != b && seen.insert(a.clone()) && seen.insert(b.clone()));
    }
    // An EORI number is one firm's: ids sharing one are a planted pair.
    let firm_pairs: std::collections::HashSet<(&str, &str)> = pairs
        .iter()
        .flat_map(|(a, b)| [(a.as_str(), b.as_str()), (b.as_str(), a.as_str())])
        .collect();
    let mut by_eori: std::collections::HashMap<&str, Vec<&str>> = Default::default();
    for row in &register.rows {
        if !row[4].is_empty() {
            by_eori.entry(&row[4]).or_default().push(&row[0]);
        }
    }
    let shared: Vec<&Vec<&str>> = by_eori.values().filter(|v| v.len() > 1).collect();
    assert!(!shared.is_empty());
    for ids in shared {
        assert_eq!(ids.len(), 2);
        assert!(firm_pairs.contains(&(ids[0], ids[1])), "{ids:?}");
    }
    // Seeded.
    assert_eq!(crate::parties_register(&ids, 0.05, 7).0.rows, register.rows);
    assert_ne!(crate::parties_register(&ids, 0.05, 8).0.rows, register.rows);
}
