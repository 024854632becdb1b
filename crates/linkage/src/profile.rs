//! Settings inferred from the data: each column is profiled (fill rate, distinct share, length,
//! digits, dates, tokens) and given a comparison; blocking rules are chosen among the columns and
//! column pairs whose expected candidate pairs stay within a budget.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::compare::parse_day;
use crate::identifiers::{self, IdentifierColumn, IdentifierKind};
use crate::normalize::normalize_text;
use crate::settings::{BlockingRule, Comparison, ComparisonKind, KeyPart, LinkType, Settings};
use crate::table::Table;

/// What a column looks like.
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnProfile {
    /// Column name.
    pub name: String,
    /// Share of non-empty values.
    pub fill: f64,
    /// Share of values that are known: non-empty and not one of the [`placeholders`]
    /// (an ungeocoded `0.0` is filled but not known).
    ///
    /// [`placeholders`]: ColumnProfile::placeholders
    pub known: f64,
    /// Distinct normalised values / non-empty values.
    pub distinct: f64,
    /// Mean characters of non-empty values.
    pub mean_length: f64,
    /// Mean whitespace tokens.
    pub mean_tokens: f64,
    /// Share of values with only digits (after removing spaces, dashes, dots).
    pub digits: f64,
    /// Share of values that parse as dates.
    pub dates: f64,
    /// Share of values that parse as numbers with a decimal point.
    pub decimals: f64,
    /// Share of values with both letters and digits.
    pub mixed: f64,
    /// Share of values carrying a company legal form ("SA", "Ltd", "GmbH", "N.V. …").
    pub legal_forms: f64,
    /// Values that stand for "not known" here (placeholders such as `n/a`, or `0` in a column
    /// of decimals such as coordinates), held by at least 2% of the non-empty values.
    pub placeholders: Vec<String>,
    /// The kind chosen.
    pub kind: &'static str,
}

/// Profiles the columns shared by both sources (or all of one source).
pub fn profile(left: &Table, right: Option<&Table>) -> Vec<ColumnProfile> {
    left.columns
        .iter()
        .filter(|c| right.is_none_or(|r| r.columns.contains(c)))
        .map(|name| {
            let values: Vec<&str> = left
                .column(name)
                .into_iter()
                .chain(right.and_then(|r| r.column(name)))
                .flat_map(|c| c.iter())
                .collect();
            profile_column(name, &values)
        })
        .collect()
}

fn profile_column(name: &str, values: &[&str]) -> ColumnProfile {
    let present: Vec<&str> = values
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .collect();
    let n = present.len().max(1) as f64;
    let mut distinct = HashMap::new();
    let (mut length, mut tokens, mut digits, mut dates, mut decimals, mut mixed) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut legal_forms, mut zeros) = (0.0, 0.0);
    let mut placeholders: HashMap<&'static str, f64> = HashMap::new();
    for v in &present {
        if v.parse::<f64>().is_ok_and(|x| x == 0.0) {
            zeros += 1.0;
        }
        if let Some(p) = PLACEHOLDERS.iter().find(|p| p.eq_ignore_ascii_case(v)) {
            *placeholders.entry(p).or_default() += 1.0;
        }
        if v.chars().any(char::is_alphabetic)
            && crate::normalize::normalize_company(v).legal_form.is_some()
        {
            legal_forms += 1.0;
        }
        *distinct.entry(normalize_text(v)).or_insert(0usize) += 1;
        length += v.chars().count() as f64;
        tokens += v.split_whitespace().count() as f64;
        let stripped: String = v
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
            .collect();
        if !stripped.is_empty() && stripped.chars().all(|c| c.is_ascii_digit()) {
            digits += 1.0;
        }
        if parse_day(v).is_some() && (v.len() == 8 || v.len() == 10) {
            dates += 1.0;
        }
        if v.contains('.') && v.parse::<f64>().is_ok() {
            decimals += 1.0;
        }
        if v.chars().any(|c| c.is_alphabetic()) && v.chars().any(|c| c.is_ascii_digit()) {
            mixed += 1.0;
        }
    }
    let mut p = ColumnProfile {
        name: name.to_string(),
        fill: present.len() as f64 / values.len().max(1) as f64,
        known: 0.0,
        distinct: distinct.len() as f64 / n,
        mean_length: length / n,
        mean_tokens: tokens / n,
        digits: digits / n,
        dates: dates / n,
        decimals: decimals / n,
        mixed: mixed / n,
        legal_forms: legal_forms / n,
        placeholders: Vec::new(),
        kind: "",
    };
    p.kind = classify(&p, distinct.len());
    let common = |count: f64| count >= 2.0 && count >= 0.02 * n;
    let mut found: Vec<String> = placeholders
        .iter()
        .filter(|&(_, &count)| common(count))
        .map(|(p, _)| p.to_string())
        .collect();
    found.sort();
    // Zero among decimals (an ungeocoded coordinate, an amount not filled in) is a placeholder;
    // in a column of small whole numbers or categories it is a value.
    if p.kind == "amount" && common(zeros) {
        found.insert(0, "0".into());
    }
    let unknown: f64 = placeholders
        .iter()
        .filter(|(v, _)| found.iter().any(|f| f == *v))
        .map(|(_, count)| *count)
        .sum::<f64>()
        + if found.iter().any(|f| f == "0") {
            zeros
        } else {
            0.0
        };
    p.known = (present.len() as f64 - unknown).max(0.0) / values.len().max(1) as f64;
    p.placeholders = found;
    p
}

/// Below this share of known values, a column's rules block but do not train.
const TRAINING_KNOWN: f64 = 0.7;

/// The rules EM learns m on: those whose columns are known for most records. A rule on a column
/// that most records lack sees a biased share of the data, and one whose shared values are
/// placeholders-turned-defaults (firms geocoded to their city centre) teaches EM that sharing
/// the default is a match: on PATSTAT-like company records, training on the coordinate rules
/// made m(name differs) 0.45 and cost a third of the recall (docs/linkage.md). Blocking still
/// uses every rule; with no rule left to train on, all of them train.
fn training_rules(rules: &[BlockingRule], profiles: &[ColumnProfile]) -> Vec<BlockingRule> {
    let known = |spec: &String| {
        let column = KeyPart::parse(spec)
            .map(|p| p.column().to_string())
            .unwrap_or_default();
        profiles
            .iter()
            .find(|p| p.name == column)
            .is_none_or(|p| p.known >= TRAINING_KNOWN)
    };
    let kept: Vec<BlockingRule> = rules
        .iter()
        .filter(|r| r.columns.iter().all(known))
        .cloned()
        .collect();
    if kept.is_empty() {
        rules.to_vec()
    } else {
        kept
    }
}

/// Values that commonly stand for "not known" in trade files.
const PLACEHOLDERS: [&str; 9] = [
    "n/a", "na", "none", "null", "unknown", "-", "?", "--", "nan",
];

/// Share of values with a legal form from which a column of names is a column of companies.
const COMPANY_LEGAL_FORMS: f64 = 0.1;

fn classify(p: &ColumnProfile, n_distinct: usize) -> &'static str {
    if p.fill < 0.05 {
        "empty"
    } else if p.dates >= 0.8 {
        "date"
    } else if p.decimals >= 0.5 {
        "amount"
    } else if p.digits >= 0.8 && p.distinct >= 0.5 && p.mean_length >= 5.0 {
        "identifier"
    } else if p.digits >= 0.8 && n_distinct <= 200 && p.mean_length <= 4.0 {
        "small_number"
    } else if p.digits >= 0.8 {
        "code"
    } else if n_distinct <= 50 {
        "category"
    } else if p.legal_forms >= COMPANY_LEGAL_FORMS && p.mean_tokens < 8.0 {
        "company"
    } else if p.mean_tokens >= 4.0 {
        "free_text"
    } else if p.mixed >= 0.3 || p.mean_tokens >= 2.0 {
        "address"
    } else {
        "name"
    }
}

fn comparison_for(p: &ColumnProfile) -> Option<Comparison> {
    let (kind, normalise, tf) = match p.kind {
        "empty" => return None,
        // Dates: a typo in a digit is a few days, a month or a year off; events seen from two
        // sides (sent, received) are days apart.
        "date" => (
            ComparisonKind::Date {
                thresholds: vec![1, 7, 31, 366],
            },
            "none",
            false,
        ),
        "identifier" => (
            ComparisonKind::Levenshtein {
                thresholds: vec![1, 2],
            },
            "none",
            false,
        ),
        "amount" => (
            ComparisonKind::Numeric {
                thresholds: vec![0.001, 0.01, 0.1],
                relative: true,
            },
            "none",
            false,
        ),
        "small_number" | "category" => (ComparisonKind::Exact, "text", false),
        "code" => (
            ComparisonKind::Levenshtein {
                thresholds: vec![1],
            },
            "none",
            false,
        ),
        "free_text" => (
            ComparisonKind::Jaccard {
                thresholds: vec![0.7, 0.4],
            },
            "text",
            false,
        ),
        "address" => (
            ComparisonKind::JaroWinkler {
                thresholds: vec![0.9, 0.75],
            },
            "address",
            false,
        ),
        // Company names without their legal form, case, punctuation, "&" and diacritics: the
        // exact level weighs by how rare the name is.
        "company" => (
            ComparisonKind::JaroWinkler {
                thresholds: vec![0.94, 0.88, 0.7],
            },
            "company",
            true,
        ),
        _ => (
            ComparisonKind::JaroWinkler {
                thresholds: vec![0.92, 0.8],
            },
            "text",
            true,
        ),
    };
    Some(Comparison {
        column: p.name.clone(),
        kind,
        normalise: normalise.into(),
        term_frequency: tf,
        missing: p.placeholders.clone(),
    })
}

/// Key hashes of one key part (`spec`) for every record of `table`, normalised as the
/// column's comparison does and without its missing values.
fn spec_hashes(spec: &str, table: &Table, comparisons: &[Comparison]) -> Vec<u64> {
    let rule = BlockingRule {
        columns: vec![spec.to_string()],
        prefix: None,
        max_block: None,
    };
    crate::blocking::key_hashes(&rule, table, comparisons)
}

/// Records sharing a key on words of a name at most, for a rule on them (see
/// [`BlockingRule::max_block`]): a first word held by more records says little.
pub const MAX_WORD_BLOCK: usize = 100;

/// Whether a key part reads words of a name (and so is bounded by [`MAX_WORD_BLOCK`]).
fn is_word_key(spec: &str) -> bool {
    matches!(
        KeyPart::parse(spec),
        Ok(KeyPart::FirstWord(_) | KeyPart::SortedWords(_))
    )
}

/// Both keys' hash (0 when either is missing).
fn combine(a: u64, b: u64) -> u64 {
    if a == 0 || b == 0 {
        0
    } else {
        (a ^ b.rotate_left(29))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .max(1)
    }
}

/// Pairs agreeing on the keys: across `left` and `right`, or within `left` alone.
fn agreeing_pairs(left: &[u64], right: Option<&[u64]>) -> f64 {
    let mut counts: crate::FastMap<u64, f64> = crate::FastMap::default();
    for &k in left.iter().filter(|&&k| k != 0) {
        *counts.entry(k).or_default() += 1.0;
    }
    match right {
        Some(r) => r
            .iter()
            .filter(|&&k| k != 0)
            .map(|k| counts.get(k).copied().unwrap_or(0.0))
            .sum(),
        None => counts.values().map(|a| a * (a - 1.0) / 2.0).sum(),
    }
}

/// Records profiled per source at most: larger sources are sampled, and pair counts scaled.
const PROFILE_SAMPLE: usize = 50_000;

/// An even sample of at most `max` records of `table` (the table itself when small enough).
fn sample(table: &Table, max: usize, seed: u64) -> std::borrow::Cow<'_, Table> {
    if table.len() <= max {
        return std::borrow::Cow::Borrowed(table);
    }
    let mut rows: Vec<usize> = (0..table.len()).collect();
    borderlens_domain::rng::Rng::new(seed).shuffle(&mut rows);
    rows.truncate(max);
    rows.sort_unstable();
    let mut out = Table {
        name: table.name.clone(),
        ids: rows.iter().map(|&r| &table.ids[r]).collect(),
        columns: table.columns.clone(),
        values: Vec::new(),
    };
    out.values = table
        .values
        .iter()
        .map(|c| rows.iter().map(|&r| &c[r]).collect())
        .collect();
    std::borrow::Cow::Owned(out)
}

/// Key parts worth trying for a column: the whole value, and by kind prefixes of text or the
/// month and week of dates.
fn key_specs(p: &ColumnProfile) -> Vec<String> {
    let c = &p.name;
    match p.kind {
        "date" => vec![c.clone(), format!("month({c})"), format!("week({c})")],
        "name" | "address" | "free_text" => {
            vec![c.clone(), format!("{c}[:3]"), format!("{c}[:9]")]
        }
        // The first word of the name proper (legal form dropped) catches "Bekaert" and
        // "N.V. Bekaert S.A."; sorted words catch reordered words ("Dupont, Jean").
        "company" => vec![
            c.clone(),
            format!("first_word({c})"),
            format!("sorted_words({c})"),
            format!("{c}[:9]"),
        ],
        _ => vec![c.clone()],
    }
}

/// Header words that name a trader's registration number (EORI, VAT, TIN, tax id, company
/// register numbers): the shape of such numbers (letters and digits) is too common to find
/// them by their values alone, so their header says what they are.
const REGISTRATION_WORDS: [&str; 8] = [
    "eori",
    "vat",
    "tin",
    "taxid",
    "registration",
    "siren",
    "siret",
    "ust",
];

/// Whether a column's header names a registration number: one of [`REGISTRATION_WORDS`] as a
/// word of the header (`eori`, `VAT number`, `tax_id`, `Company registration`), never inside
/// another word (`destination` is no `tin`).
fn names_registration(header: &str) -> bool {
    let lower = header.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().any(|w| REGISTRATION_WORDS.contains(w))
        || words.windows(2).any(|w| w.concat() == "taxid")
}

/// Columns where at least half of the non-empty values (and two or more) are valid ISO 6346
/// container numbers or UPU S10 ids, or whose header names a registration number
/// ([`names_registration`]) and at least half of whose values have its shape: shared valid
/// ones link outright, invalid ones are reported.
fn identifier_columns(left: &Table, right: Option<&Table>) -> Vec<IdentifierColumn> {
    let mut found = Vec::new();
    for name in &left.columns {
        if right.is_some_and(|r| !r.columns.contains(name)) {
            continue;
        }
        let values: Vec<&str> = left
            .column(name)
            .into_iter()
            .chain(right.and_then(|r| r.column(name)))
            .flat_map(|c| c.iter())
            .filter(|v| !v.trim().is_empty())
            .take(2000)
            .collect();
        if values.is_empty() {
            continue;
        }
        let registration = names_registration(name).then_some(IdentifierKind::Registration);
        for kind in [IdentifierKind::Iso6346, IdentifierKind::S10]
            .into_iter()
            .chain(registration)
        {
            if kind == IdentifierKind::Registration
                && found.iter().any(|c: &IdentifierColumn| c.column == *name)
            {
                continue;
            }
            let valid = values
                .iter()
                .filter(|v| identifiers::canonical(kind, v).is_ok())
                .count();
            if valid >= 2 && valid as f64 >= 0.5 * values.len() as f64 {
                found.push(IdentifierColumn {
                    column: name.clone(),
                    kind,
                });
            }
        }
    }
    found
}

/// Settings inferred from the data.
pub fn infer_settings(full_left: &Table, full_right: Option<&Table>) -> Settings {
    let left_sample = sample(full_left, PROFILE_SAMPLE, 1);
    let right_sample = full_right.map(|r| sample(r, PROFILE_SAMPLE, 2));
    let (left, right) = (left_sample.as_ref(), right_sample.as_deref());
    // Pairs in the sample stand for this many pairs of the whole.
    let scale = crate::model::pair_count(full_left.len(), full_right.map(Table::len))
        / crate::model::pair_count(left.len(), right.map(Table::len)).max(1.0);
    let profiles = profile(left, right);
    let comparisons: Vec<Comparison> = profiles.iter().filter_map(comparison_for).collect();
    // Blocking: a match with a typo in one column must still meet another rule, so rules are
    // few columns each and share no column. First single columns that identify well (fewest
    // expected pairs, within a budget), then pairs of columns when fewer than three singles fit.
    let n = full_left.len() + full_right.map_or(0, Table::len);
    let budget = 10.0 * n as f64;
    let usable: Vec<&ColumnProfile> = profiles
        .iter()
        .filter(|p| p.fill >= 0.7 && p.kind != "empty")
        .collect();
    let specs: Vec<(String, String)> = usable
        .iter()
        .flat_map(|p| key_specs(p).into_iter().map(|s| (p.name.clone(), s)))
        .collect();
    let hashes: Vec<(Vec<u64>, Option<Vec<u64>>)> = specs
        .par_iter()
        .map(|(_, spec)| {
            let mut l = spec_hashes(spec, left, &comparisons);
            let mut r = right.map(|r| spec_hashes(spec, r, &comparisons));
            if is_word_key(spec) {
                crate::blocking::drop_large_blocks(&mut l, r.as_deref_mut(), MAX_WORD_BLOCK);
            }
            (l, r)
        })
        .collect();
    let expected = |l: &[u64], r: Option<&[u64]>| agreeing_pairs(l, r) * scale;
    let mut singles: Vec<(Vec<String>, f64)> = specs
        .iter()
        .zip(&hashes)
        .map(|((_, spec), (l, r))| (vec![spec.clone()], expected(l, r.as_deref())))
        .filter(|(_, pairs)| *pairs > 0.0 && *pairs <= budget)
        .collect();
    singles.sort_by(|a, b| a.1.total_cmp(&b.1));
    // One rule per column among the singles: its most discriminating key part.
    let mut rules: Vec<BlockingRule> = Vec::new();
    let mut used_columns: Vec<String> = Vec::new();
    for (cols, _) in &singles {
        // Words of a name are a rule of their own beside the whole name: a name with its words
        // reordered or one word changed meets its duplicates there.
        let column = if is_word_key(&cols[0]) {
            cols[0].clone()
        } else {
            KeyPart::parse(&cols[0])
                .map(|p| p.column().to_string())
                .unwrap_or_default()
        };
        if rules.len() < 4 && !used_columns.contains(&column) {
            used_columns.push(column);
            rules.push(BlockingRule {
                columns: cols.clone(),
                prefix: None,
                max_block: is_word_key(&cols[0]).then_some(MAX_WORD_BLOCK),
            });
        }
    }
    let all_pairs = crate::model::pair_count(full_left.len(), full_right.map(Table::len));
    if rules.is_empty() && all_pairs <= 1_000_000.0 {
        // Small sources: compare every pair rather than miss links.
        rules.push(BlockingRule {
            columns: Vec::new(),
            prefix: None,
            max_block: None,
        });
    }
    // Then pairs of key parts of two columns (e.g. a name prefix within the same month), which
    // catch matches whose single columns all differ a little; up to five rules in all.
    if all_pairs > 1_000_000.0 {
        let candidates: Vec<(usize, usize)> = (0..specs.len())
            .flat_map(|i| ((i + 1)..specs.len()).map(move |k| (i, k)))
            .filter(|&(i, k)| specs[i].0 != specs[k].0)
            .filter(|&(i, k)| {
                let cols = [specs[i].1.clone(), specs[k].1.clone()];
                // Implied by a single rule already taken: no new pair.
                !rules
                    .iter()
                    .any(|r| r.columns.len() == 1 && cols.contains(&r.columns[0]))
            })
            .collect();
        let mut doubles: Vec<(Vec<String>, f64)> = candidates
            .par_iter()
            .map(|&(i, k)| {
                let both = |a: &[u64], b: &[u64]| -> Vec<u64> {
                    a.iter().zip(b).map(|(&x, &y)| combine(x, y)).collect()
                };
                let l = both(&hashes[i].0, &hashes[k].0);
                let r = match (&hashes[i].1, &hashes[k].1) {
                    (Some(a), Some(b)) => Some(both(a, b)),
                    _ => None,
                };
                (
                    vec![specs[i].1.clone(), specs[k].1.clone()],
                    expected(&l, r.as_deref()),
                )
            })
            .filter(|(_, pairs)| *pairs > 0.0 && *pairs <= budget)
            .collect();
        // Doubles that bring columns no rule uses yet first (a match whose typos defeat every
        // rule on some columns is caught on others), then the broadest: they bring the most
        // pairs the singles miss.
        let columns_of = |s: &String| {
            KeyPart::parse(s)
                .map(|p| p.column().to_string())
                .unwrap_or_default()
        };
        let mut used: Vec<String> = rules
            .iter()
            .flat_map(|r| r.columns.iter().map(columns_of))
            .collect();
        let mut double_columns: Vec<(String, String)> = Vec::new();
        while rules.len() < 5 {
            let fresh = |cols: &[String], used: &[String]| {
                cols.iter()
                    .filter(|c| !used.contains(&columns_of(c)))
                    .count()
            };
            let best = doubles
                .iter()
                .enumerate()
                .filter(|(_, (cols, _))| {
                    // At most two rules per pair of columns (e.g. same week, same month: a match
                    // across a week boundary is rarely across a month boundary too).
                    let pair = (columns_of(&cols[0]), columns_of(&cols[1]));
                    double_columns.iter().filter(|p| **p == pair).count() < 2
                })
                .max_by(|(i, a), (j, b)| {
                    fresh(&a.0, &used)
                        .cmp(&fresh(&b.0, &used))
                        .then(a.1.total_cmp(&b.1))
                        .then(j.cmp(i))
                })
                .map(|(i, _)| i);
            let Some(i) = best else { break };
            let (cols, _) = doubles.remove(i);
            double_columns.push((columns_of(&cols[0]), columns_of(&cols[1])));
            used.extend(cols.iter().map(columns_of));
            let max_block = cols
                .iter()
                .any(|c| is_word_key(c))
                .then_some(MAX_WORD_BLOCK);
            rules.push(BlockingRule {
                columns: cols,
                prefix: None,
                max_block,
            });
        }
    }
    let training_blocking_rules = training_rules(&rules, &profiles);
    Settings {
        link_type: if right.is_some() {
            LinkType::LinkOnly
        } else {
            LinkType::DedupeOnly
        },
        training_blocking_rules,
        blocking_rules: rules,
        comparisons,
        identifiers: identifier_columns(left, right),
        // With one-to-one assignment each record keeps only its best partner, so a low bar
        // mostly adds right links (measured: FEBRL4 F1 1.000 at 0.5 and 0.01; transactions
        // 0.843 at 0.5, 0.946 at 0.01). Deduplication has no such guard.
        threshold: if right.is_some() { 0.01 } else { 0.5 },
        one_to_one: true,
        u_sample_pairs: 200_000,
        seed: 42,
    }
}
