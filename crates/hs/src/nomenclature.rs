//! The HS 2022 nomenclature (chapters, headings, 6-digit subheadings with their texts and
//! sections) and the code types that parse and validate against it.
//!
//! Loaded once from the shipped `data/hs/hs2022_nomenclature.csv` (compiled into the crate).
//! Comtrade's "not specified" codes 99, 9999 and 999999 are not WCO codes and are left out.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};

use crate::HsError;

const NOMENCLATURE_CSV: &str = include_str!("../../../data/hs/hs2022_nomenclature.csv");
const SECTIONS_CSV: &str = include_str!("../../../data/hs/hs2022_sections.csv");

/// An HS chapter (2 digits), e.g. 39.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chapter(pub u8);

/// An HS heading (4 digits), e.g. 3920.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Heading(pub u16);

/// An HS 6-digit subheading, e.g. 392062.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hs6(pub u32);

impl Heading {
    /// The chapter the heading belongs to.
    pub fn chapter(self) -> Chapter {
        Chapter((self.0 / 100) as u8)
    }
}

impl Hs6 {
    /// The heading the subheading belongs to.
    pub fn heading(self) -> Heading {
        Heading((self.0 / 100) as u16)
    }
    /// The chapter the subheading belongs to.
    pub fn chapter(self) -> Chapter {
        self.heading().chapter()
    }
}

impl fmt::Display for Chapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}
impl fmt::Display for Heading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}
impl fmt::Display for Hs6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:06}", self.0)
    }
}
macro_rules! serialize_as_text {
    ($($t:ty),*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_text!(Chapter, Heading, Hs6);

/// A declared code at whatever precision it was given: 2 digits name a chapter, 4 a heading,
/// 6, 8 or 10 a subheading (national digits beyond the sixth are not HS and are dropped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "level", content = "code", rename_all = "lowercase")]
pub enum Code {
    /// A chapter only.
    Chapter(Chapter),
    /// A heading only.
    Heading(Heading),
    /// A 6-digit subheading.
    Hs6(Hs6),
}

impl Code {
    /// The chapter of the code.
    pub fn chapter(self) -> Chapter {
        match self {
            Code::Chapter(c) => c,
            Code::Heading(h) => h.chapter(),
            Code::Hs6(s) => s.chapter(),
        }
    }
    /// The heading of the code, if it is precise enough.
    pub fn heading(self) -> Option<Heading> {
        match self {
            Code::Chapter(_) => None,
            Code::Heading(h) => Some(h),
            Code::Hs6(s) => Some(s.heading()),
        }
    }
    /// The subheading, if the code has six digits or more.
    pub fn hs6(self) -> Option<Hs6> {
        match self {
            Code::Hs6(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Code::Chapter(c) => c.fmt(f),
            Code::Heading(h) => h.fmt(f),
            Code::Hs6(s) => s.fmt(f),
        }
    }
}

/// The digits of a code as written: dots, spaces and dashes are separators ("3920.62.0000");
/// anything else, or a length other than 2, 4, 6, 8 or 10 digits, is an error naming the text.
pub fn code_digits(text: &str) -> Result<String, HsError> {
    let trimmed = text.trim();
    let mut digits = String::with_capacity(10);
    for ch in trimmed.chars() {
        match ch {
            '0'..='9' => digits.push(ch),
            '.' | ' ' | '-' => {}
            _ => {
                return Err(HsError::Code(format!(
                    "'{}' is not an HS code (only digits, dots, spaces)",
                    clip(trimmed)
                )))
            }
        }
        if digits.len() > 10 {
            return Err(HsError::Code(format!(
                "'{}' has more than 10 digits",
                clip(trimmed)
            )));
        }
    }
    if ![2, 4, 6, 8, 10].contains(&digits.len()) {
        return Err(HsError::Code(format!(
            "'{}' has {} digits: an HS code has 2 (chapter), 4 (heading), 6 (subheading) or 8/10 (national)",
            clip(trimmed),
            digits.len()
        )));
    }
    Ok(digits)
}

fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}

/// One line of the nomenclature.
#[derive(Clone, Debug, Serialize)]
pub struct Entry {
    /// The code's digits (2, 4 or 6).
    pub code: String,
    /// The Comtrade description.
    pub text: String,
    /// The HS section (Roman numeral).
    pub section: String,
}

/// The HS 2022 nomenclature with its tree.
#[derive(Debug)]
pub struct Nomenclature {
    /// Chapters in code order.
    pub chapters: Vec<Entry>,
    /// Headings in code order.
    pub headings: Vec<Entry>,
    /// Subheadings in code order.
    pub subheadings: Vec<Entry>,
    /// Index of each subheading's heading in `headings`.
    pub hs6_heading: Vec<usize>,
    /// Index of each heading's chapter in `chapters`.
    pub heading_chapter: Vec<usize>,
    /// Section names by numeral.
    pub sections: HashMap<String, String>,
    /// Indices (in `headings`) of each chapter's headings.
    pub chapter_headings: Vec<std::ops::Range<usize>>,
    /// Indices (in `subheadings`) of each heading's subheadings.
    pub heading_subheadings: Vec<std::ops::Range<usize>>,
    chapter_index: HashMap<u8, usize>,
    heading_index: HashMap<u16, usize>,
    hs6_index: HashMap<u32, usize>,
}

impl Nomenclature {
    /// The shipped HS 2022 nomenclature, parsed once.
    pub fn hs2022() -> &'static Nomenclature {
        static CELL: OnceLock<Nomenclature> = OnceLock::new();
        CELL.get_or_init(|| {
            Nomenclature::parse(NOMENCLATURE_CSV, SECTIONS_CSV)
                .unwrap_or_else(|e| panic!("the shipped nomenclature does not parse: {e}"))
        })
    }

    /// Parses the nomenclature and sections files (the shipped layout).
    pub fn parse(nomenclature_csv: &str, sections_csv: &str) -> Result<Nomenclature, HsError> {
        let mut sections = HashMap::new();
        let mut reader =
            csv::Reader::from_reader(sections_csv.trim_start_matches('\u{feff}').as_bytes());
        for (i, row) in reader.records().enumerate() {
            let row = row
                .map_err(|e| HsError::Data(format!("hs2022_sections.csv record {}: {e}", i + 1)))?;
            sections.insert(
                row.get(0).unwrap_or("").to_string(),
                row.get(1).unwrap_or("").to_string(),
            );
        }
        let mut chapters = Vec::new();
        let mut headings = Vec::new();
        let mut subheadings = Vec::new();
        let mut reader = csv::Reader::from_reader(nomenclature_csv.as_bytes());
        for (i, row) in reader.records().enumerate() {
            let row = row.map_err(|e| {
                HsError::Data(format!("hs2022_nomenclature.csv record {}: {e}", i + 1))
            })?;
            let (section, code, text) = (
                row.get(0).unwrap_or(""),
                row.get(1).unwrap_or(""),
                row.get(2).unwrap_or(""),
            );
            if !code.bytes().all(|b| b.is_ascii_digit()) || code.chars().all(|c| c == '9') {
                continue; // TOTAL and Comtrade's "not specified" (99, 9999, 999999)
            }
            let entry = Entry {
                code: code.to_string(),
                text: text.to_string(),
                section: section.to_string(),
            };
            match code.len() {
                2 => chapters.push(entry),
                4 => headings.push(entry),
                6 => subheadings.push(entry),
                _ => {}
            }
        }
        for list in [&mut chapters, &mut headings, &mut subheadings] {
            list.sort_by(|a, b| a.code.cmp(&b.code));
        }
        let number = |e: &Entry| e.code.parse::<u32>().unwrap_or(0);
        let chapter_index: HashMap<u8, usize> = chapters
            .iter()
            .enumerate()
            .map(|(i, e)| (number(e) as u8, i))
            .collect();
        let heading_index: HashMap<u16, usize> = headings
            .iter()
            .enumerate()
            .map(|(i, e)| (number(e) as u16, i))
            .collect();
        let hs6_index: HashMap<u32, usize> = subheadings
            .iter()
            .enumerate()
            .map(|(i, e)| (number(e), i))
            .collect();
        let mut heading_chapter = Vec::with_capacity(headings.len());
        for h in &headings {
            let c = (number(h) / 100) as u8;
            heading_chapter.push(*chapter_index.get(&c).ok_or_else(|| {
                HsError::Data(format!(
                    "heading {} has no chapter {c:02} in the nomenclature",
                    h.code
                ))
            })?);
        }
        let mut hs6_heading = Vec::with_capacity(subheadings.len());
        for s in &subheadings {
            let h = (number(s) / 100) as u16;
            hs6_heading.push(*heading_index.get(&h).ok_or_else(|| {
                HsError::Data(format!(
                    "subheading {} has no heading {h:04} in the nomenclature",
                    s.code
                ))
            })?);
        }
        if subheadings.is_empty() {
            return Err(HsError::Data(
                "the nomenclature has no 6-digit codes".into(),
            ));
        }
        let ranges = |parents: usize, child_parent: &[usize]| -> Vec<std::ops::Range<usize>> {
            let mut r = vec![0..0; parents];
            for (i, &p) in child_parent.iter().enumerate() {
                r[p] = if r[p].is_empty() {
                    i..i + 1
                } else {
                    r[p].start..i + 1
                };
            }
            r
        };
        let chapter_headings = ranges(chapters.len(), &heading_chapter);
        let heading_subheadings = ranges(headings.len(), &hs6_heading);
        Ok(Nomenclature {
            chapter_headings,
            heading_subheadings,
            chapters,
            headings,
            subheadings,
            hs6_heading,
            heading_chapter,
            sections,
            chapter_index,
            heading_index,
            hs6_index,
        })
    }

    /// Index of a chapter, if it exists in HS 2022.
    pub fn chapter_idx(&self, c: Chapter) -> Option<usize> {
        self.chapter_index.get(&c.0).copied()
    }
    /// Index of a heading, if it exists in HS 2022.
    pub fn heading_idx(&self, h: Heading) -> Option<usize> {
        self.heading_index.get(&h.0).copied()
    }
    /// Index of a subheading, if it exists in HS 2022.
    pub fn hs6_idx(&self, s: Hs6) -> Option<usize> {
        self.hs6_index.get(&s.0).copied()
    }
    /// The subheading at an index.
    pub fn hs6_at(&self, i: usize) -> Hs6 {
        Hs6(self.subheadings[i].code.parse().unwrap_or(0))
    }
    /// The heading at an index.
    pub fn heading_at(&self, i: usize) -> Heading {
        Heading(self.headings[i].code.parse().unwrap_or(0))
    }
    /// The chapter at an index.
    pub fn chapter_at(&self, i: usize) -> Chapter {
        Chapter(self.chapters[i].code.parse().unwrap_or(0))
    }
    /// Chapter index of a subheading index.
    pub fn hs6_chapter(&self, i: usize) -> usize {
        self.heading_chapter[self.hs6_heading[i]]
    }

    /// Parses a declared code ("3920.62", "392062", "3920620000", "39", "3920") and checks that
    /// it exists in HS 2022; an error names the code.
    pub fn parse_code(&self, text: &str) -> Result<Code, HsError> {
        let digits = code_digits(text)?;
        let code = match digits.len() {
            2 => Code::Chapter(Chapter(digits.parse().unwrap_or(0))),
            4 => Code::Heading(Heading(digits.parse().unwrap_or(0))),
            _ => Code::Hs6(Hs6(digits[..6].parse().unwrap_or(0))),
        };
        let known = match code {
            Code::Chapter(c) => self.chapter_idx(c).is_some(),
            Code::Heading(h) => self.heading_idx(h).is_some(),
            Code::Hs6(s) => self.hs6_idx(s).is_some(),
        };
        if known {
            Ok(code)
        } else {
            Err(HsError::Code(format!(
                "{} (from '{}') is not a code of HS 2022",
                code,
                text.trim()
            )))
        }
    }

    /// Parses a code that must be at least 6 digits long.
    pub fn parse_hs6(&self, text: &str) -> Result<Hs6, HsError> {
        match self.parse_code(text)? {
            Code::Hs6(s) => Ok(s),
            other => Err(HsError::Code(format!(
                "'{}' names {} only, not a 6-digit subheading",
                text.trim(),
                other
            ))),
        }
    }

    /// The text of a subheading with its heading's and chapter's texts ("chapter; heading;
    /// subheading"), what the models read for a code.
    pub fn hs6_full_text(&self, i: usize) -> String {
        let h = self.hs6_heading[i];
        let c = self.heading_chapter[h];
        format!(
            "{}; {}; {}",
            self.chapters[c].text, self.headings[h].text, self.subheadings[i].text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shipped_nomenclature_has_the_tree_without_not_specified() {
        let n = Nomenclature::hs2022();
        assert_eq!(n.chapters.len(), 96);
        assert_eq!(n.headings.len(), 1228);
        assert_eq!(n.subheadings.len(), 5612);
        assert!(n.parse_code("99").is_err());
        assert!(n.parse_code("999999").is_err());
        let i = n.hs6_idx(Hs6(392062)).expect("392062");
        assert_eq!(n.headings[n.hs6_heading[i]].code, "3920");
        assert_eq!(n.chapters[n.hs6_chapter(i)].code, "39");
        assert_eq!(n.sections.get("VII").map(|s| !s.is_empty()), Some(true));
        for (h, r) in n.heading_subheadings.iter().enumerate() {
            assert!(r.clone().all(|c| n.hs6_heading[c] == h));
        }
        let children: usize = n.chapter_headings.iter().map(|r| r.len()).sum();
        assert_eq!(children, n.headings.len());
    }

    #[test]
    fn codes_parse_at_every_precision() {
        let n = Nomenclature::hs2022();
        for text in [
            "3920.62",
            "392062",
            "3920620000",
            "3920.62.0000",
            "39206200",
        ] {
            assert_eq!(
                n.parse_code(text).unwrap(),
                Code::Hs6(Hs6(392062)),
                "{text}"
            );
        }
        assert_eq!(n.parse_code("39").unwrap(), Code::Chapter(Chapter(39)));
        assert_eq!(n.parse_code("3920").unwrap(), Code::Heading(Heading(3920)));
        let e = n.parse_code("392070").unwrap_err().to_string();
        assert!(e.contains("392070"), "{e}");
        assert!(n.parse_code("39206").is_err());
        assert!(n.parse_code("ab1234").is_err());
        assert!(n.parse_code("").is_err());
        assert!(n.parse_hs6("3920").is_err());
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panic(s in "\\PC{0,30}") {
            let _ = Nomenclature::hs2022().parse_code(&s);
        }

        #[test]
        fn every_subheading_round_trips(i in 0usize..5612, national in 0u32..10000) {
            let n = Nomenclature::hs2022();
            let s = n.hs6_at(i);
            prop_assert_eq!(n.parse_code(&s.to_string()).unwrap(), Code::Hs6(s));
            prop_assert_eq!(n.parse_code(&format!("{s}{national:04}")).unwrap(), Code::Hs6(s));
        }
    }
}
