//! Linkage settings: what to block on, what to compare and how, as a file (TOML or JSON) that a
//! user can keep and edit. Every name is checked against the data before any work starts.

use serde::{Deserialize, Serialize};

/// Link two sources, or find duplicates within one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    /// Pairs across two sources only.
    LinkOnly,
    /// Pairs within one source.
    DedupeOnly,
}

/// How a column's values are compared; each kind defines its comparison levels, best first.
#[derive(Clone, Debug, PartialEq)]
pub enum ComparisonKind {
    /// Levels: exact, else.
    Exact,
    /// Levels: exact, then Jaro–Winkler similarity ≥ each threshold (descending), else.
    JaroWinkler {
        /// Similarity thresholds, e.g. `[0.92, 0.8]`.
        thresholds: Vec<f64>,
    },
    /// Levels: exact, then Levenshtein distance ≤ each threshold (ascending), else.
    Levenshtein {
        /// Edit distances, e.g. `[1, 2]`.
        thresholds: Vec<u32>,
    },
    /// Levels: exact, then token-set Jaccard ≥ each threshold (descending), else.
    Jaccard {
        /// Jaccard thresholds, e.g. `[0.8, 0.5]`.
        thresholds: Vec<f64>,
    },
    /// Levels: exact, then |a − b| ≤ each threshold (ascending; relative to max(|a|, |b|) when
    /// `relative`), else. Values that are not numbers are missing.
    Numeric {
        /// Differences, e.g. `[0.01, 0.1]`.
        thresholds: Vec<f64>,
        /// Thresholds are shares of the larger value.
        relative: bool,
    },
    /// Levels: exact, then |days| ≤ each threshold (ascending), else. Dates as `YYYY-MM-DD` or
    /// `YYYYMMDD`; others are missing.
    Date {
        /// Day differences, e.g. `[1, 30, 365]`.
        thresholds: Vec<u32>,
    },
}

/// The kinds, as named in settings files.
pub const COMPARISON_KINDS: [&str; 6] = [
    "exact",
    "jaro_winkler",
    "levenshtein",
    "jaccard",
    "numeric",
    "date",
];

/// One comparison: a column (after normalisation) and how to compare it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawComparison", into = "RawComparison")]
pub struct Comparison {
    /// Column name.
    pub column: String,
    /// Levels.
    pub kind: ComparisonKind,
    /// Normalisation before comparing: `text` (default), `company`, `address`, `none`.
    pub normalise: String,
    /// Term-frequency adjustment of the exact level: agreeing on a rare value weighs more.
    pub term_frequency: bool,
    /// Values that mean "not known" (such as `0.0` for an ungeocoded coordinate, or `n/a`):
    /// treated as empty, so that they are neither agreement nor disagreement, and give no
    /// blocking key. Matched on the trimmed value ignoring case, and as numbers when both parse
    /// (`0` also matches `0.0`).
    pub missing: Vec<String>,
}

/// A comparison as written in a settings file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawComparison {
    column: String,
    kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    thresholds: Vec<f64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    relative: bool,
    #[serde(default = "default_normalise")]
    normalise: String,
    #[serde(default)]
    term_frequency: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    missing: Vec<String>,
}

impl TryFrom<RawComparison> for Comparison {
    type Error = String;

    fn try_from(raw: RawComparison) -> Result<Comparison, String> {
        let whole = |what: &str| -> Result<Vec<u32>, String> {
            raw.thresholds
                .iter()
                .map(|&t| {
                    if t >= 0.0 && t.fract() == 0.0 && t <= f64::from(u32::MAX) {
                        Ok(t as u32)
                    } else {
                        Err(format!(
                            "comparison of '{}': {what} thresholds must be whole numbers, not {t}",
                            raw.column
                        ))
                    }
                })
                .collect()
        };
        let kind = match raw.kind.as_str() {
            "exact" => ComparisonKind::Exact,
            "jaro_winkler" => ComparisonKind::JaroWinkler {
                thresholds: raw.thresholds.clone(),
            },
            "jaccard" => ComparisonKind::Jaccard {
                thresholds: raw.thresholds.clone(),
            },
            "levenshtein" => ComparisonKind::Levenshtein {
                thresholds: whole("levenshtein")?,
            },
            "date" => ComparisonKind::Date {
                thresholds: whole("date")?,
            },
            "numeric" => ComparisonKind::Numeric {
                thresholds: raw.thresholds.clone(),
                relative: raw.relative,
            },
            other => {
                return Err(format!(
                    "comparison of '{}': unknown kind '{other}' (use one of {})",
                    raw.column,
                    COMPARISON_KINDS.join(", ")
                ))
            }
        };
        Ok(Comparison {
            column: raw.column,
            kind,
            normalise: raw.normalise,
            term_frequency: raw.term_frequency,
            missing: raw.missing,
        })
    }
}

impl From<Comparison> for RawComparison {
    fn from(c: Comparison) -> RawComparison {
        let (kind, thresholds, relative) = match c.kind {
            ComparisonKind::Exact => ("exact", Vec::new(), false),
            ComparisonKind::JaroWinkler { thresholds } => ("jaro_winkler", thresholds, false),
            ComparisonKind::Jaccard { thresholds } => ("jaccard", thresholds, false),
            ComparisonKind::Levenshtein { thresholds } => (
                "levenshtein",
                thresholds.into_iter().map(f64::from).collect(),
                false,
            ),
            ComparisonKind::Date { thresholds } => (
                "date",
                thresholds.into_iter().map(f64::from).collect(),
                false,
            ),
            ComparisonKind::Numeric {
                thresholds,
                relative,
            } => ("numeric", thresholds, relative),
        };
        RawComparison {
            column: c.column,
            kind: kind.into(),
            thresholds,
            relative,
            normalise: c.normalise,
            term_frequency: c.term_frequency,
            missing: c.missing,
        }
    }
}

fn default_normalise() -> String {
    "text".into()
}

impl Comparison {
    /// Whether a raw value is missing: empty, or one of [`Comparison::missing`].
    pub fn is_missing(&self, raw: &str) -> bool {
        is_missing_value(raw, &self.missing)
    }

    /// Number of levels, the missing level excluded.
    pub fn n_levels(&self) -> usize {
        2 + match &self.kind {
            ComparisonKind::Exact => 0,
            ComparisonKind::JaroWinkler { thresholds } | ComparisonKind::Jaccard { thresholds } => {
                thresholds.len()
            }
            ComparisonKind::Levenshtein { thresholds } | ComparisonKind::Date { thresholds } => {
                thresholds.len()
            }
            ComparisonKind::Numeric { thresholds, .. } => thresholds.len(),
        }
    }

    /// Names of the levels, best first (`exact`, `jaro_winkler >= 0.92`, …, `else`).
    pub fn level_names(&self) -> Vec<String> {
        let mut names = vec!["exact".to_string()];
        match &self.kind {
            ComparisonKind::Exact => {}
            ComparisonKind::JaroWinkler { thresholds } => {
                names.extend(thresholds.iter().map(|t| format!("jaro_winkler >= {t}")))
            }
            ComparisonKind::Jaccard { thresholds } => {
                names.extend(thresholds.iter().map(|t| format!("jaccard >= {t}")))
            }
            ComparisonKind::Levenshtein { thresholds } => {
                names.extend(thresholds.iter().map(|t| format!("levenshtein <= {t}")))
            }
            ComparisonKind::Date { thresholds } => {
                names.extend(thresholds.iter().map(|t| format!("within {t} days")))
            }
            ComparisonKind::Numeric {
                thresholds,
                relative,
            } => names.extend(thresholds.iter().map(|t| {
                if *relative {
                    format!("within {:.1}%", t * 100.0)
                } else {
                    format!("within {t}")
                }
            })),
        }
        names.push("else".into());
        names
    }
}

/// Whether `raw` is empty or one of `missing` (trimmed, ignoring case, or as equal numbers).
pub fn is_missing_value(raw: &str, missing: &[String]) -> bool {
    let v = raw.trim();
    if v.is_empty() {
        return true;
    }
    if missing.is_empty() {
        return false;
    }
    let number = v.parse::<f64>().ok();
    missing.iter().any(|m| {
        let m = m.trim();
        m.eq_ignore_ascii_case(v) || number.is_some_and(|x| m.parse::<f64>().is_ok_and(|y| x == y))
    })
}

/// A blocking rule: candidate pairs agree exactly on every listed column (normalised), or on
/// the first `prefix` characters of it when given. A rule with no column compares every pair,
/// which small sources allow (see [`MAX_FULL_PAIRS`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockingRule {
    /// Columns that must agree.
    pub columns: Vec<String>,
    /// Compare only the first characters of each column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<usize>,
    /// A key held by more records than this (on either side) is not used by this rule: the
    /// pairs it would bring must come from another rule. Bounds the candidates of rules on words
    /// of a name, where a common first word ("universite") would pair thousands of records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_block: Option<usize>,
}

/// One part of a blocking key: a column's normalised value, its first characters (`memo[:3]`),
/// the month (`month(date)`) or ISO week (`week(date)`) of a date column, or the first word
/// (`first_word(name)`) or the words in sorted order (`sorted_words(name)`) of a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPart {
    /// The whole normalised value.
    Column(String),
    /// The first characters of the normalised value.
    Prefix(String, usize),
    /// `YYYY-MM` of a date.
    Month(String),
    /// ISO year and week of a date.
    Week(String),
    /// The first word of the normalised value (for a company column, of the name without its
    /// legal form).
    FirstWord(String),
    /// The words of the normalised value, sorted: "Dupont, Jean" and "Jean Dupont" agree.
    SortedWords(String),
}

impl KeyPart {
    /// Parses `col`, `col[:N]`, `month(col)`, `week(col)`, `first_word(col)` or
    /// `sorted_words(col)`.
    pub fn parse(spec: &str) -> Result<KeyPart, String> {
        let spec = spec.trim();
        let inner = |prefix: &str| {
            spec.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(')'))
                .map(|c| c.trim().to_string())
        };
        if let Some(c) = inner("month(") {
            return Ok(KeyPart::Month(c));
        }
        if let Some(c) = inner("week(") {
            return Ok(KeyPart::Week(c));
        }
        if let Some(c) = inner("first_word(") {
            return Ok(KeyPart::FirstWord(c));
        }
        if let Some(c) = inner("sorted_words(") {
            return Ok(KeyPart::SortedWords(c));
        }
        if let Some((column, rest)) = spec.split_once("[:") {
            let n = rest
                .strip_suffix(']')
                .and_then(|n| n.trim().parse::<usize>().ok())
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("'{spec}': write a prefix as column[:N] with N ≥ 1"))?;
            return Ok(KeyPart::Prefix(column.trim().to_string(), n));
        }
        if spec.contains(['(', ')', '[', ']']) {
            return Err(format!(
                "'{spec}' is not a column, column[:N], month(column), week(column), \
                 first_word(column) or sorted_words(column)"
            ));
        }
        Ok(KeyPart::Column(spec.to_string()))
    }

    /// The column it reads.
    pub fn column(&self) -> &str {
        match self {
            KeyPart::Column(c)
            | KeyPart::Prefix(c, _)
            | KeyPart::Month(c)
            | KeyPart::Week(c)
            | KeyPart::FirstWord(c)
            | KeyPart::SortedWords(c) => c,
        }
    }

    /// The key part of a raw value; `None` when missing or (for dates) unreadable.
    pub fn key(&self, raw: &str) -> Option<String> {
        self.key_normalised(raw, "text")
    }

    /// The key part of a raw value with the text normalised as a comparison's `normalise` says
    /// (`company`, `address`; anything else: plain text), so that a rule on a company column
    /// agrees on "Acme Trading Co. Ltd" and "ACME TRADING COMPANY LIMITED" as its comparison
    /// does.
    pub fn key_normalised(&self, raw: &str, normalise: &str) -> Option<String> {
        let text = || {
            let v = match normalise {
                "company" => crate::normalize::normalize_company(raw).core,
                "address" => crate::normalize::normalize_address(raw),
                _ => crate::normalize::normalize_text(raw),
            };
            (!v.is_empty()).then_some(v)
        };
        match self {
            KeyPart::Column(_) => text(),
            KeyPart::Prefix(_, n) => text().map(|v| v.chars().take(*n).collect()),
            KeyPart::FirstWord(_) => text().and_then(|v| v.split(' ').next().map(str::to_string)),
            KeyPart::SortedWords(_) => text().map(|v| {
                let mut words: Vec<&str> = v.split(' ').collect();
                words.sort_unstable();
                words.join(" ")
            }),
            KeyPart::Month(_) => {
                // Only valid dates have a month; the digits are then YYYYMMDD.
                crate::compare::parse_day(raw.trim())?;
                let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
                Some(digits[..6].to_string())
            }
            KeyPart::Week(_) => {
                // Days since a Monday (0000-03-01 was a Wednesday: shift by 2).
                let day = crate::compare::parse_day(raw.trim())?;
                Some(format!("w{}", ((day + 2.0) / 7.0).floor()))
            }
        }
    }
}

/// The most pairs a rule without columns may compare.
pub const MAX_FULL_PAIRS: f64 = 10_000_000.0;

/// Everything a linkage run needs besides the data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Two sources or one.
    pub link_type: LinkType,
    /// Candidate pairs: the union of these rules.
    pub blocking_rules: Vec<BlockingRule>,
    /// Rules whose pairs train m by EM (each rule's own columns are not trained by it).
    #[serde(default)]
    pub training_blocking_rules: Vec<BlockingRule>,
    /// The comparisons.
    pub comparisons: Vec<Comparison>,
    /// Identifier columns that link outright when a valid identifier is shared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identifiers: Vec<crate::identifiers::IdentifierColumn>,
    /// Pairs at or above this match probability are links.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// With two sources: each record has at most one partner (greedy by weight).
    #[serde(default = "default_true")]
    pub one_to_one: bool,
    /// Random pairs drawn to estimate u (the exact level's u is counted from value frequencies,
    /// not sampled).
    #[serde(default = "default_u_pairs")]
    pub u_sample_pairs: usize,
    /// Seed of the random pairs.
    #[serde(default = "default_seed")]
    pub seed: u64,
}

fn default_threshold() -> f64 {
    0.5
}

fn default_true() -> bool {
    true
}

fn default_u_pairs() -> usize {
    200_000
}

fn default_seed() -> u64 {
    42
}

/// A settings file or value that cannot be used, named.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Syntax or shape.
    #[error("settings: {0}")]
    Syntax(String),
    /// A name or value that does not fit the data.
    #[error("settings: {0}")]
    Invalid(String),
}

impl Settings {
    /// Parses TOML (or JSON when the text starts with `{`).
    pub fn parse(text: &str) -> Result<Settings, SettingsError> {
        if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| SettingsError::Syntax(e.to_string()))
        } else {
            toml::from_str(text).map_err(|e| SettingsError::Syntax(e.to_string()))
        }
    }

    /// As TOML, the form written next to the results.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot write settings: {e}\n"))
    }

    /// Checks every rule and comparison against the columns of the data.
    pub fn validate(&self, columns: &[String]) -> Result<(), SettingsError> {
        let known = |c: &str| columns.iter().any(|k| k == c);
        let list = || columns.join(", ");
        for identifier in &self.identifiers {
            if !known(&identifier.column) {
                return Err(SettingsError::Invalid(format!(
                    "identifier of unknown column '{}' (columns: {})",
                    identifier.column,
                    list()
                )));
            }
        }
        if self.comparisons.is_empty() {
            return Err(SettingsError::Invalid("no comparison".into()));
        }
        if self.blocking_rules.is_empty() {
            return Err(SettingsError::Invalid(
                "no blocking rule: every pair of records would be compared".into(),
            ));
        }
        for (i, rule) in self
            .blocking_rules
            .iter()
            .chain(&self.training_blocking_rules)
            .enumerate()
        {
            for spec in &rule.columns {
                let part = KeyPart::parse(spec).map_err(|reason| {
                    SettingsError::Invalid(format!("blocking rule {}: {reason}", i + 1))
                })?;
                let c = part.column();
                if !known(c) {
                    return Err(SettingsError::Invalid(format!(
                        "blocking rule {} names unknown column '{c}' (columns: {})",
                        i + 1,
                        list()
                    )));
                }
            }
        }
        for c in &self.comparisons {
            if !known(&c.column) {
                return Err(SettingsError::Invalid(format!(
                    "comparison of unknown column '{}' (columns: {})",
                    c.column,
                    list()
                )));
            }
            if !["text", "company", "address", "none"].contains(&c.normalise.as_str()) {
                return Err(SettingsError::Invalid(format!(
                    "comparison of '{}': unknown normalise '{}' (text, company, address, none)",
                    c.column, c.normalise
                )));
            }
            let sorted_desc = |t: &[f64]| t.windows(2).all(|w| w[0] > w[1]);
            let ok = match &c.kind {
                ComparisonKind::Exact => true,
                ComparisonKind::JaroWinkler { thresholds }
                | ComparisonKind::Jaccard { thresholds } => {
                    sorted_desc(thresholds) && thresholds.iter().all(|t| (0.0..1.0).contains(t))
                }
                ComparisonKind::Levenshtein { thresholds }
                | ComparisonKind::Date { thresholds } => thresholds.windows(2).all(|w| w[0] < w[1]),
                ComparisonKind::Numeric { thresholds, .. } => {
                    thresholds.windows(2).all(|w| w[0] < w[1])
                        && thresholds.iter().all(|t| t.is_finite() && *t >= 0.0)
                }
            };
            if !ok {
                return Err(SettingsError::Invalid(format!(
                    "comparison of '{}': thresholds must be strictly ordered from the closest level \
                     (similarities descending in [0, 1), distances ascending)",
                    c.column
                )));
            }
        }
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(SettingsError::Invalid(format!(
                "threshold {} is not a probability in (0, 1)",
                self.threshold
            )));
        }
        Ok(())
    }
}
