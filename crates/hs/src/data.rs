//! Reading the labelled data: the UK parcel references shipped in `data/hs/` (compiled into the
//! crate), the vague terms, the known-wrong pairs, the hand-written micro benchmark, and the CBP
//! rulings (read from a folder at evaluation time, never shipped, never trained on).
//!
//! Rows that cannot be used are skipped and counted with their line and reason; reading goes on.

use std::path::Path;

use serde::Serialize;

use crate::nomenclature::{code_digits, Chapter, Code, Hs6, Nomenclature};
use crate::HsError;

const EXTRA_REFERENCES: &str = include_str!("../../../data/hs/uk_fpo_extra_references.csv");
const SEARCH_REFERENCES: &str = include_str!("../../../data/hs/uk_fpo_search_references.json");
const BRANDS: &str = include_str!("../../../data/hs/uk_fpo_brands.csv");
const VAGUE_TERMS: &str = include_str!("../../../data/hs/uk_fpo_vague_terms.csv");
const INCORRECT_PAIRS: &str = include_str!("../../../data/hs/uk_fpo_incorrect_code_desc_pairs.csv");
const MICRO_CASES: &str = include_str!("../../../data/hs/hsclassify_micro_benchmark_cases.csv");

/// Where a labelled description comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// uk_fpo_search_references.json: colloquial terms.
    SearchReferences,
    /// uk_fpo_brands.csv: brand descriptions.
    Brands,
    /// uk_fpo_extra_references.csv: real parcel descriptions.
    ExtraReferences,
    /// CBP CROSS rulings (evaluation only).
    CbpRulings,
    /// The micro benchmark (evaluation only).
    Micro,
}

/// A description with its 6-digit code.
#[derive(Clone, Debug, Serialize)]
pub struct Labelled {
    /// The description as written.
    pub text: String,
    /// Its code.
    pub hs6: Hs6,
    /// Its file.
    pub source: Source,
}

/// One row left out, with why.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    /// Line (CSV) or entry number (JSON) in the file, 1-based.
    pub line: usize,
    /// Why it was left out.
    pub reason: String,
}

/// What reading one file gave.
#[derive(Clone, Debug, Serialize)]
pub struct LoadReport {
    /// The file.
    pub file: String,
    /// Rows read.
    pub rows: usize,
    /// Rows kept.
    pub kept: usize,
    /// Rows left out.
    pub skipped: Vec<Skipped>,
}

/// A UK commodity code to its subheading: digits only; a 7- or 9-digit code lost its leading
/// zero in a spreadsheet and gets it back; the first six digits must be a subheading of HS 2022.
pub fn uk_code(nom: &Nomenclature, text: &str) -> Result<Hs6, String> {
    let t = text.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "code '{}' is not digits",
            t.chars().take(30).collect::<String>()
        ));
    }
    let digits = if t.len() % 2 == 1 {
        format!("0{t}")
    } else {
        t.to_string()
    };
    let digits = code_digits(&digits).map_err(|e| e.to_string())?;
    if digits.len() < 6 {
        return Err(format!("code '{t}' has fewer than 6 digits"));
    }
    nom.parse_hs6(&digits).map_err(|e| e.to_string())
}

fn csv_reader(text: &str, has_headers: bool) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(has_headers)
        .flexible(true)
        .from_reader(text.as_bytes())
}

/// The labelled UK descriptions of one file from its text.
pub fn read_uk(nom: &Nomenclature, source: Source, text: &str) -> (Vec<Labelled>, LoadReport) {
    let file = match source {
        Source::SearchReferences => "uk_fpo_search_references.json",
        Source::Brands => "uk_fpo_brands.csv",
        _ => "uk_fpo_extra_references.csv",
    };
    let mut report = LoadReport {
        file: file.into(),
        rows: 0,
        kept: 0,
        skipped: Vec::new(),
    };
    let mut out = Vec::new();
    let mut push = |line: usize, desc: &str, code: &str, report: &mut LoadReport| {
        report.rows += 1;
        if desc.trim().is_empty() {
            report.skipped.push(Skipped {
                line,
                reason: "empty description".into(),
            });
            return;
        }
        match uk_code(nom, code) {
            Ok(hs6) => {
                report.kept += 1;
                out.push(Labelled {
                    text: desc.trim().to_string(),
                    hs6,
                    source,
                });
            }
            Err(reason) => report.skipped.push(Skipped { line, reason }),
        }
    };
    match source {
        Source::SearchReferences => {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
                Ok(map) => {
                    for (i, (term, code)) in map.iter().enumerate() {
                        push(i + 1, term, code.as_str().unwrap_or(""), &mut report);
                    }
                }
                Err(e) => report.skipped.push(Skipped {
                    line: e.line(),
                    reason: format!("not a JSON object of term → code: {e}"),
                }),
            }
        }
        _ => {
            let brands = source == Source::Brands;
            for (i, row) in csv_reader(text, true).records().enumerate() {
                let line = i + 2;
                match row {
                    Err(e) => {
                        report.rows += 1;
                        report.skipped.push(Skipped {
                            line,
                            reason: e.to_string(),
                        });
                    }
                    Ok(r) if brands => push(
                        line,
                        r.get(1).unwrap_or(""),
                        r.get(0).unwrap_or(""),
                        &mut report,
                    ),
                    Ok(r) if r.len() != 2 => {
                        report.rows += 1;
                        report.skipped.push(Skipped {
                            line,
                            reason: format!("{} fields, expected 2", r.len()),
                        });
                    }
                    Ok(r) => push(
                        line,
                        r.get(0).unwrap_or(""),
                        r.get(1).unwrap_or(""),
                        &mut report,
                    ),
                }
            }
        }
    }
    (out, report)
}

/// The three shipped UK files: search references, brands, extra references, in that order.
pub fn uk_shipped(nom: &Nomenclature) -> Vec<(Vec<Labelled>, LoadReport)> {
    vec![
        read_uk(nom, Source::SearchReferences, SEARCH_REFERENCES),
        read_uk(nom, Source::Brands, BRANDS),
        read_uk(nom, Source::ExtraReferences, EXTRA_REFERENCES),
    ]
}

/// The shipped vague terms (one description per line, no header), blank lines left out.
pub fn vague_terms() -> Vec<String> {
    let mut out = Vec::new();
    for row in csv_reader(VAGUE_TERMS, false).records().flatten() {
        let joined = row.iter().collect::<Vec<_>>().join(",");
        if !joined.trim().is_empty() {
            out.push(joined.trim().to_string());
        }
    }
    out
}

/// A known-wrong description/code pair.
#[derive(Clone, Debug, Serialize)]
pub struct WrongPair {
    /// The description.
    pub text: String,
    /// The code it was declared under.
    pub declared: Code,
    /// The chapter it should be in, when the file says.
    pub chapter_should_be: Option<Chapter>,
}

/// The shipped known-wrong pairs, with the rows that could not be read.
pub fn wrong_pairs(nom: &Nomenclature) -> (Vec<WrongPair>, LoadReport) {
    let mut report = LoadReport {
        file: "uk_fpo_incorrect_code_desc_pairs.csv".into(),
        rows: 0,
        kept: 0,
        skipped: Vec::new(),
    };
    let mut out = Vec::new();
    for (i, row) in csv_reader(INCORRECT_PAIRS, true).records().enumerate() {
        report.rows += 1;
        let line = i + 2;
        let Ok(r) = row else {
            report.skipped.push(Skipped {
                line,
                reason: "unreadable row".into(),
            });
            continue;
        };
        match uk_code(nom, r.get(2).unwrap_or("")) {
            Ok(hs6) => {
                report.kept += 1;
                out.push(WrongPair {
                    text: r.get(0).unwrap_or("").to_string(),
                    declared: Code::Hs6(hs6),
                    chapter_should_be: r
                        .get(1)
                        .and_then(|c| c.trim().parse::<u8>().ok())
                        .map(Chapter),
                });
            }
            Err(reason) => report.skipped.push(Skipped { line, reason }),
        }
    }
    (out, report)
}

/// A hand-written micro-benchmark case.
#[derive(Clone, Debug, Serialize)]
pub struct MicroCase {
    /// The description.
    pub text: String,
    /// Expected subheading (`None` when the file's code is not in HS 2022, e.g. an HS 2017 code;
    /// the case still tests the readability check).
    pub hs6: Option<Hs6>,
    /// Language code (en, th, vi, zh).
    pub language: String,
}

/// The shipped micro benchmark (78 cases).
pub fn micro_cases(nom: &Nomenclature) -> (Vec<MicroCase>, LoadReport) {
    let mut report = LoadReport {
        file: "hsclassify_micro_benchmark_cases.csv".into(),
        rows: 0,
        kept: 0,
        skipped: Vec::new(),
    };
    let mut out = Vec::new();
    for (i, row) in csv_reader(MICRO_CASES, true).records().enumerate() {
        report.rows += 1;
        let line = i + 2;
        let Ok(r) = row else {
            report.skipped.push(Skipped {
                line,
                reason: "unreadable row".into(),
            });
            continue;
        };
        report.kept += 1;
        let hs6 = match nom.parse_hs6(r.get(1).unwrap_or("")) {
            Ok(hs6) => Some(hs6),
            Err(e) => {
                report.skipped.push(Skipped {
                    line,
                    reason: format!("{e}: kept for the readability check only"),
                });
                None
            }
        };
        out.push(MicroCase {
            text: r.get(0).unwrap_or("").into(),
            hs6,
            language: r.get(3).unwrap_or("").into(),
        });
    }
    (out, report)
}

/// Parses the CBP rulings file (ATLAS chat format): the product description from the user's
/// question ("What is the HTS US Code for …?"), the code from the answer's
/// "HTS US Code -> 3920.62.0000".
pub fn read_cbp(nom: &Nomenclature, path: &Path) -> Result<(Vec<Labelled>, LoadReport), HsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| HsError::Io(format!("{}: {e}", path.display())))?;
    Ok(parse_cbp(nom, &text, &path.display().to_string()))
}

/// [`read_cbp`] on text already read.
pub fn parse_cbp(nom: &Nomenclature, text: &str, file: &str) -> (Vec<Labelled>, LoadReport) {
    let mut report = LoadReport {
        file: file.into(),
        rows: 0,
        kept: 0,
        skipped: Vec::new(),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        match cbp_row(nom, line) {
            Ok(l) => {
                report.kept += 1;
                out.push(l);
            }
            Err(reason) => report.skipped.push(Skipped {
                line: i + 1,
                reason,
            }),
        }
    }
    (out, report)
}

fn cbp_row(nom: &Nomenclature, line: &str) -> Result<Labelled, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let messages = v
        .get("messages")
        .and_then(|m| m.as_array())
        .ok_or("no messages")?;
    let content = |role: &str| {
        messages
            .iter()
            .find(|m| m.get("role").and_then(|r| r.as_str()) == Some(role))
            .and_then(|m| m.get("content").and_then(|c| c.as_str()))
    };
    let question = content("user").ok_or("no user message")?;
    let answer = content("assistant").ok_or("no assistant message")?;
    let mut desc = question.trim();
    for prefix in ["What is the HTS US Code for ", "What is the HTS code for "] {
        if let Some(rest) = desc.strip_prefix(prefix) {
            desc = rest;
        }
    }
    let desc = desc.trim_end_matches('?').trim();
    let after = answer
        .split("HTS US Code ->")
        .nth(1)
        .ok_or("no 'HTS US Code ->' in the answer")?;
    let code: String = after
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let hs6 = nom
        .parse_hs6(code.trim_end_matches('.'))
        .map_err(|e| e.to_string())?;
    if desc.is_empty() {
        return Err("empty description".into());
    }
    Ok(Labelled {
        text: desc.to_string(),
        hs6,
        source: Source::CbpRulings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_uk_files_load_and_count_their_bad_rows() {
        let nom = Nomenclature::hs2022();
        let files = uk_shipped(nom);
        let extra = &files[2].1;
        assert_eq!(extra.rows, 2358);
        let malformed = extra
            .skipped
            .iter()
            .filter(|s| s.reason.contains("not digits"))
            .count();
        assert_eq!(malformed, 3, "{:?}", extra.skipped);
        assert!(files[0].1.kept > 3900, "{:?}", files[0].1.kept);
        assert!(files[1].1.kept > 100);
        assert_eq!(vague_terms().len(), 4451);
    }

    #[test]
    fn uk_codes_regain_a_lost_leading_zero() {
        let nom = Nomenclature::hs2022();
        assert_eq!(uk_code(nom, "3055390").unwrap(), Hs6(30553));
        assert_eq!(uk_code(nom, "4029110").unwrap(), Hs6(40291));
        assert!(uk_code(nom, "dark brun").is_err());
        let (pairs, report) = wrong_pairs(nom);
        assert_eq!(
            pairs.len() + report.skipped.len(),
            14,
            "{:?}",
            report.skipped
        );
    }

    #[test]
    fn cbp_rows_give_description_and_code_and_bad_rows_are_named() {
        let nom = Nomenclature::hs2022();
        let good = r#"{"messages":[{"role":"user","content":"What is the HTS US Code for Polivac film?"},{"role":"assistant","content":"HTS US Code -> 3920.62.0000\nReasoning -> x"}]}"#;
        let text = format!("{good}\nnot json\n{}\n", good.replace("3920.62", "9999.99"));
        let (rows, report) = parse_cbp(nom, &text, "t.jsonl");
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text, "Polivac film");
        assert_eq!(rows[0].hs6, Hs6(392062));
        assert_eq!(report.skipped.len(), 2);
        assert_eq!(report.skipped[0].line, 2);
    }

    #[test]
    fn micro_cases_load() {
        let (cases, report) = micro_cases(Nomenclature::hs2022());
        assert_eq!(report.rows, 78);
        assert_eq!(cases.len(), 78);
        assert_eq!(cases.iter().filter(|c| c.language == "th").count(), 7);
        // HS 2017 codes (851712, 854140, 080300, 390760) are not HS 2022 subheadings
        assert_eq!(
            cases.iter().filter(|c| c.hs6.is_none()).count(),
            report.skipped.len()
        );
        assert!(
            report.skipped.iter().any(|s| s.reason.contains("851712")),
            "{:?}",
            report.skipped
        );
    }
}
