//! Comparison levels of one pair on one column, from prepared (normalised, parsed) values.

use rayon::prelude::*;

use crate::normalize;
use crate::settings::{Comparison, ComparisonKind};
use crate::table::Column;
use crate::FastMap;

/// A column prepared for comparing: normalised text, the parsed number or day when the kind
/// needs one, and a code per value shared by both sides (equal codes: equal values; 0: missing),
/// so that the exact level, value frequencies and term frequencies compare integers.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub(crate) text: Column,
    pub(crate) number: Vec<Option<f64>>,
    pub(crate) codes: Vec<u32>,
}

impl Prepared {
    /// Whether value `i` is missing (empty, or not a number / date where one is needed).
    pub(crate) fn missing(&self, i: usize) -> bool {
        self.codes[i] == 0
    }

    /// The value as coded (the number for numeric kinds, else the normalised text); `None` when
    /// missing.
    pub(crate) fn key(&self, i: usize) -> Option<String> {
        if self.missing(i) {
            return None;
        }
        Some(match self.number.get(i) {
            Some(Some(v)) => format!("{v}"),
            _ => self.text[i].to_string(),
        })
    }
}

/// Normalises `left` (and `right`) as the comparison asks, and codes the values of both sides
/// with one dictionary.
pub(crate) fn prepare(
    comparison: &Comparison,
    left: &Column,
    right: Option<&Column>,
) -> (Prepared, Option<Prepared>) {
    let side = |values: &Column| -> (Column, Vec<Option<f64>>) {
        let texts: Vec<String> = (0..values.len())
            .into_par_iter()
            .map(|r| {
                let v = &values[r];
                if comparison.is_missing(v) {
                    return String::new();
                }
                match comparison.normalise.as_str() {
                    "none" => v.trim().to_string(),
                    "company" => normalize::normalize_company(v).core,
                    "address" => normalize::normalize_address(v),
                    _ => normalize::normalize_text(v),
                }
            })
            .collect();
        let number = match comparison.kind {
            // From the raw value: normalising turns '.', ',' and '-' into spaces.
            ComparisonKind::Numeric { .. } => values
                .iter()
                .map(|t| parse_number(t).filter(|_| !comparison.is_missing(t)))
                .collect(),
            ComparisonKind::Date { .. } => values
                .iter()
                .map(|t| parse_day(t.trim()).filter(|_| !comparison.is_missing(t)))
                .collect(),
            _ => Vec::new(),
        };
        (texts.iter().collect(), number)
    };
    let (l_text, l_number) = side(left);
    let r = right.map(side);
    let mut dictionary: FastMap<String, u32> = FastMap::default();
    let mut code = |text: &Column, number: &[Option<f64>]| -> Vec<u32> {
        (0..text.len())
            .map(|i| {
                let key = match number.get(i) {
                    _ if text[i].is_empty() => return 0,
                    Some(Some(v)) => format!("{v}"),
                    Some(None) => return 0,
                    None => {
                        if let Some(&c) = dictionary.get(&text[i]) {
                            return c;
                        }
                        text[i].to_string()
                    }
                };
                let next = dictionary.len() as u32 + 1;
                *dictionary.entry(key).or_insert(next)
            })
            .collect()
    };
    let l_codes = code(&l_text, &l_number);
    let right = r.map(|(text, number)| {
        let codes = code(&text, &number);
        Prepared {
            text,
            number,
            codes,
        }
    });
    (
        Prepared {
            text: l_text,
            number: l_number,
            codes: l_codes,
        },
        right,
    )
}

fn parse_number(text: &str) -> Option<f64> {
    // Thousands separators and spaces are dropped: "1,234.50" → 1234.5.
    let cleaned: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ',')
        .collect();
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Days since 0000-03-01 of `YYYY-MM-DD`, `YYYY/MM/DD` or `YYYYMMDD`, when valid.
pub(crate) fn parse_day(text: &str) -> Option<f64> {
    let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.len() != 8 {
        return None;
    }
    let y: i64 = digits[0..4].parse().ok()?;
    let m: i64 = digits[4..6].parse().ok()?;
    let d: i64 = digits[6..8].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe) as f64)
}

/// Level of the pair: 0 = missing on either side, 1 = exact, 2.. = the thresholds in order,
/// `n_levels` = else.
#[cfg(test)]
pub(crate) fn level(comparison: &Comparison, a: &Prepared, i: usize, b: &Prepared, j: usize) -> u8 {
    level_coded(comparison, a, i, a.codes[i], b, j, b.codes[j])
}

/// [`level`] with the two value codes already read (callers keep a record's codes together, so
/// that comparing a pair touches one cache line per record before any text).
pub(crate) fn level_coded(
    comparison: &Comparison,
    a: &Prepared,
    i: usize,
    ca: u32,
    b: &Prepared,
    j: usize,
    cb: u32,
) -> u8 {
    if ca == 0 || cb == 0 {
        return 0;
    }
    if ca == cb {
        return 1;
    }
    let (x, y) = (&a.text[i], &b.text[j]);
    let n = comparison.n_levels() as u8;
    match &comparison.kind {
        ComparisonKind::Exact => n,
        ComparisonKind::JaroWinkler { thresholds } => {
            let lowest = thresholds.last().copied().unwrap_or(1.0);
            if jaro_winkler_bound(x, y) < lowest {
                return n;
            }
            let s = jaro_winkler(x, y);
            first_at_least(thresholds, s).map_or(n, |k| k as u8 + 2)
        }
        ComparisonKind::Jaccard { thresholds } => {
            let s = normalize::jaccard_tokens(x, y);
            first_at_least(thresholds, s).map_or(n, |k| k as u8 + 2)
        }
        ComparisonKind::Levenshtein { thresholds } => {
            let d = levenshtein(x, y) as u32;
            thresholds
                .iter()
                .position(|&t| d <= t)
                .map_or(n, |k| k as u8 + 2)
        }
        ComparisonKind::Numeric {
            thresholds,
            relative,
        } => match (a.number[i], b.number[j]) {
            (Some(p), Some(q)) => {
                if p == q {
                    return 1;
                }
                let diff = if *relative {
                    (p - q).abs() / p.abs().max(q.abs())
                } else {
                    (p - q).abs()
                };
                thresholds
                    .iter()
                    .position(|&t| diff <= t)
                    .map_or(n, |k| k as u8 + 2)
            }
            _ => 0,
        },
        ComparisonKind::Date { thresholds } => match (a.number[i], b.number[j]) {
            (Some(p), Some(q)) => {
                if p == q {
                    return 1;
                }
                let diff = (p - q).abs();
                thresholds
                    .iter()
                    .position(|&t| diff <= f64::from(t))
                    .map_or(n, |k| k as u8 + 2)
            }
            _ => 0,
        },
    }
}

/// Jaro–Winkler similarity (prefix scale 0.1, up to 4 characters, boost above 0.7), on bytes when both sides are
/// ASCII — normalised text always is. Written here because this is the innermost loop of
/// linkage: strsim's version decodes characters and allocates per call; this one works on
/// bytes with stack buffers for names up to 64 bytes, and is tested equal to strsim's.
pub(crate) fn jaro_winkler(x: &str, y: &str) -> f64 {
    if !(x.is_ascii() && y.is_ascii()) || x.len() > 64 || y.len() > 64 {
        return strsim::jaro_winkler(x, y);
    }
    let (a, b) = (x.as_bytes(), y.as_bytes());
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_flags = [false; 64];
    let mut b_flags = [false; 64];
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_flags[j] && b[j] == ca {
                a_flags[i] = true;
                b_flags[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut k = 0;
    for (i, &ca) in a.iter().enumerate() {
        if a_flags[i] {
            while !b_flags[k] {
                k += 1;
            }
            if ca != b[k] {
                transpositions += 1;
            }
            k += 1;
        }
    }
    let m = matches as f64;
    let jaro =
        (m / a.len() as f64 + m / b.len() as f64 + (m - (transpositions / 2) as f64) / m) / 3.0;
    if jaro <= 0.7 {
        // The Winkler boost applies only above the usual 0.7 threshold (as in strsim).
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(p, q)| p == q).count() as f64;
    jaro + 0.1 * prefix * (1.0 - jaro)
}

/// An upper bound of the Jaro–Winkler similarity from character counts alone (no character can
/// match more often than both strings hold it; transpositions only lower it), in O(length): most
/// random pairs fall below the lowest level and skip the quadratic matching. 2.0 (no bound)
/// when not ASCII.
pub(crate) fn jaro_winkler_bound(x: &str, y: &str) -> f64 {
    if !(x.is_ascii() && y.is_ascii()) || x.is_empty() || y.is_empty() {
        return 2.0;
    }
    let (a, b) = (x.as_bytes(), y.as_bytes());
    // Buckets of 32: characters sharing a bucket only raise the bound.
    let mut counts = [0i16; 32];
    for &c in b {
        counts[usize::from(c & 31)] += 1;
    }
    let mut m = 0usize;
    for &c in a {
        let slot = &mut counts[usize::from(c & 31)];
        if *slot > 0 {
            *slot -= 1;
            m += 1;
        }
    }
    if m == 0 {
        return 0.0;
    }
    let m = m as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + 1.0) / 3.0;
    if jaro <= 0.7 {
        return jaro;
    }
    let prefix = a.iter().zip(b).take(4).take_while(|(p, q)| p == q).count() as f64;
    jaro + 0.1 * prefix * (1.0 - jaro)
}

/// Levenshtein distance, on bytes with a stack row when both sides are ASCII and short.
pub(crate) fn levenshtein(x: &str, y: &str) -> usize {
    if !(x.is_ascii() && y.is_ascii()) || y.len() > 127 {
        return strsim::levenshtein(x, y);
    }
    let (a, b) = (x.as_bytes(), y.as_bytes());
    let mut row = [0usize; 128];
    for (j, cell) in row.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for (i, &ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

fn first_at_least(thresholds: &[f64], s: f64) -> Option<usize> {
    thresholds.iter().position(|&t| s >= t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(kind: ComparisonKind) -> Comparison {
        Comparison {
            column: "c".into(),
            kind,
            normalise: "text".into(),
            term_frequency: false,
            missing: Vec::new(),
        }
    }

    fn prep(c: &Comparison, values: &[&str]) -> Prepared {
        let column: Column = values.iter().collect();
        prepare(c, &column, None).0
    }

    #[test]
    fn levels_follow_the_thresholds() {
        let c = cmp(ComparisonKind::JaroWinkler {
            thresholds: vec![0.92, 0.8],
        });
        let p = prep(&c, &["Michaela", "michaela", "micheala", "xavier", ""]);
        assert_eq!(level(&c, &p, 0, &p, 1), 1);
        assert_eq!(level(&c, &p, 0, &p, 2), 2);
        assert_eq!(level(&c, &p, 0, &p, 3), 4);
        assert_eq!(level(&c, &p, 0, &p, 4), 0);
        let d = cmp(ComparisonKind::Date {
            thresholds: vec![1, 31],
        });
        let p = prep(
            &d,
            &["19151111", "1915-11-12", "1915-12-01", "1916-11-11", "n/a"],
        );
        assert_eq!(level(&d, &p, 0, &p, 1), 2);
        assert_eq!(level(&d, &p, 0, &p, 2), 3);
        assert_eq!(level(&d, &p, 0, &p, 3), 4);
        assert_eq!(level(&d, &p, 0, &p, 4), 0);
        let n = cmp(ComparisonKind::Numeric {
            thresholds: vec![0.01],
            relative: true,
        });
        let p = prep(&n, &["100", "100.5", "120", "abc", "-100", "1,000.25"]);
        assert_eq!(p.number[4], Some(-100.0));
        assert_eq!(p.number[5], Some(1000.25));
        assert_eq!(level(&n, &p, 0, &p, 0), 1);
        assert_eq!(level(&n, &p, 0, &p, 1), 2);
        assert_eq!(level(&n, &p, 0, &p, 2), 3);
        assert_eq!(level(&n, &p, 0, &p, 3), 0);
    }

    proptest::proptest! {
        #[test]
        fn byte_distances_equal_strsim(a in "[a-e ]{0,12}", b in "[a-e ]{0,12}", c in "\\PC{0,6}") {
            let jw = jaro_winkler(&a, &b);
            proptest::prop_assert!((jw - strsim::jaro_winkler(&a, &b)).abs() < 1e-12, "{} {}", a, b);
            proptest::prop_assert_eq!(levenshtein(&a, &b), strsim::levenshtein(&a, &b));
            proptest::prop_assert_eq!(levenshtein(&a, &c), strsim::levenshtein(&a, &c));
            proptest::prop_assert!((jaro_winkler(&c, &b) - strsim::jaro_winkler(&c, &b)).abs() < 1e-12);
            proptest::prop_assert!(jaro_winkler_bound(&a, &b) >= jw - 1e-12, "{} {}", a, b);
            proptest::prop_assert!(jaro_winkler_bound(&c, &b) >= jaro_winkler(&c, &b) - 1e-12);
        }
    }

    #[test]
    fn days_are_counted_across_months_and_leap_years() {
        let d = |s: &str| parse_day(s).unwrap();
        assert_eq!(d("2020-03-01") - d("2020-02-28"), 2.0);
        assert_eq!(d("2021-03-01") - d("2021-02-28"), 1.0);
        assert_eq!(d("2000-01-01") - d("1999-12-31"), 1.0);
        assert!(parse_day("2020-13-01").is_none());
    }
}
