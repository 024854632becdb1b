//! The sample with descriptions: real UK parcel goods descriptions attached to the KCS sample
//! declarations by their HS code, with misdeclarations planted at known rates and a broker's
//! "cleaned" description on a share of rows. CONSTRUCTED data: the declarations and the
//! descriptions are real (synthetic KCS rows, real UK parcel texts), their pairing is made here.
//!
//! For each declaration row:
//! 1. the sender's description is drawn from the UK descriptions of the declared HS6 code; if
//!    there is none, from those of its heading (4 digits), else of its chapter (2 digits); the
//!    level that matched is recorded ([`Level`]); a code of a chapter without any UK description
//!    gets no description;
//! 2. with probability `misdeclared_fraud_rate` on rows labelled `Fraud = 1` and
//!    `misdeclared_clean_rate` on the others, the row is **misdeclared**: the sender's
//!    description is instead drawn for the HS code of another row of the same file whose
//!    chapter differs (the goods really sent), so the declared code no longer matches the text.
//!    The story: the sender writes what is in the parcel; the declaration carries a code of
//!    another chapter (a lower duty, a code without licence requirements);
//! 3. with probability `cleaned_rate` the row also gets a cleaned description: the HS 2022 text
//!    of the declared code (its heading's or chapter's when the code is not an HS 2022
//!    subheading), as a broker's classification software writes it. On a misdeclared row the
//!    cleaned text agrees with the declared code while the sender's does not: what only dual
//!    visibility shows.
//!
//! Every row draws from its own stream (seed, file, row), in a fixed order (plant?, clean?,
//! description of the declared code, then the other row), so a row that is not planted gets the
//! same description whatever the rates. The truth (level, planted or not, the true code and
//! chapter) goes to a separate truth file, never to a column the importer reads. Every other
//! byte of the input is kept: the two columns are appended to each record before its line end.

use std::collections::BTreeMap;

use borderlens_domain::rng::Rng;
use borderlens_domain::{check_free_text, FieldRegistry};

/// The header of the sender's description in the described files (the usual one, which an
/// import without a mapping file reads).
pub const DESCRIPTION_HEADER: &str = borderlens_domain::GOODS_DESCRIPTION_HEADER;
/// The header of the cleaned description in the described files.
pub const CLEANED_HEADER: &str = borderlens_domain::GOODS_DESCRIPTION_CLEANED_HEADER;
/// The header of the declaration id (KCS layout), copied to the truth file.
pub const ID_HEADER: &str = "Declaration ID";
/// The header of the label column the planting rates depend on (KCS layout).
pub const FRAUD_HEADER: &str = "Fraud";

/// The columns of the truth file, in order.
pub const TRUTH_COLUMNS: [&str; 13] = [
    "file",
    "line",
    "declaration_id",
    "declared_hs6",
    "fraud",
    "declared_level",
    "misdeclared",
    "true_hs6",
    "true_chapter",
    "description_level",
    "description_code",
    "description_source",
    "cleaned_level",
];

/// How a description was found for an HS code.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    /// A description of the exact 6-digit code.
    Hs6,
    /// None of the code; one of its heading (first 4 digits).
    Heading,
    /// None of the heading; one of its chapter (first 2 digits).
    Chapter,
    /// None of the chapter either: no description.
    None,
}

impl Level {
    /// All levels, in back-off order.
    pub const ALL: [Level; 4] = [Level::Hs6, Level::Heading, Level::Chapter, Level::None];

    /// The word written in the truth file and the README.
    pub fn word(self) -> &'static str {
        match self {
            Level::Hs6 => "hs6",
            Level::Heading => "heading",
            Level::Chapter => "chapter",
            Level::None => "none",
        }
    }
}

/// The file a UK description comes from.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Source {
    /// `uk_fpo_extra_references.csv`: real parcel descriptions.
    ExtraReferences,
    /// `uk_fpo_search_references.json`: colloquial terms.
    SearchReferences,
    /// `uk_fpo_brands.csv`: brand descriptions.
    Brands,
}

impl Source {
    /// The file name, as shipped in `data/hs/`.
    pub fn file(self) -> &'static str {
        match self {
            Source::ExtraReferences => "uk_fpo_extra_references.csv",
            Source::SearchReferences => "uk_fpo_search_references.json",
            Source::Brands => "uk_fpo_brands.csv",
        }
    }
}

/// One UK description with the code it was labelled with.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct UkDescription {
    /// The UK commodity code as given (6, 8 or 10 digits; the first 6 are the HS6 code).
    code: String,
    /// The description, verbatim.
    text: String,
    source: Source,
}

/// A source file that cannot be read; names the file, the line (or JSON key) and the problem.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[error("{file}: {place}{problem}")]
pub struct SourceError {
    /// The file.
    pub file: String,
    /// `line N: `, or empty.
    pub place: String,
    /// What is wrong.
    pub problem: String,
}

/// The UK descriptions by HS6 code, heading and chapter, and the HS 2022 texts.
#[derive(Clone, Debug)]
pub struct DescriptionSources {
    descriptions: Vec<UkDescription>,
    /// Indices into `descriptions` of each 2-, 4- and 6-digit prefix, in `descriptions` order.
    by_prefix: BTreeMap<String, Vec<usize>>,
    /// HS 2022 texts by code (2, 4 and 6 digits).
    nomenclature: BTreeMap<String, String>,
    /// Source rows left out (malformed code, empty or unstorable text), by file.
    skipped: BTreeMap<&'static str, usize>,
    /// Rows read, by file.
    read: BTreeMap<&'static str, usize>,
}

/// The texts of the four source files, as shipped in `data/hs/`.
pub struct SourceTexts<'a> {
    /// `uk_fpo_extra_references.csv`.
    pub extra_references: &'a str,
    /// `uk_fpo_search_references.json`.
    pub search_references: &'a str,
    /// `uk_fpo_brands.csv`.
    pub brands: &'a str,
    /// `hs2022_nomenclature.csv`.
    pub nomenclature: &'a str,
}

/// The first 6 digits of a UK commodity code of 6, 8 or 10 digits; `None` for anything else
/// (the three malformed rows of the extra references have words in the code column).
fn hs6_of(code: &str) -> Option<&str> {
    let code = code.trim();
    (matches!(code.len(), 6 | 8 | 10) && code.bytes().all(|b| b.is_ascii_digit()))
        .then(|| &code[..6])
}

impl DescriptionSources {
    /// Reads the sources. Rows with a malformed code, an empty text or a text the importer
    /// would refuse ([`check_free_text`]) are left out and counted; a file that is not the
    /// expected CSV or JSON is an error naming it.
    pub fn parse(texts: &SourceTexts<'_>) -> Result<DescriptionSources, SourceError> {
        let mut descriptions = Vec::new();
        let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut read: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut keep = |source: Source, text: &str, code: &str| {
            *read.entry(source.file()).or_default() += 1;
            let usable = !text.trim().is_empty() && check_free_text(text).is_ok();
            match hs6_of(code) {
                Some(_) if usable => descriptions.push(UkDescription {
                    code: code.trim().to_string(),
                    text: text.to_string(),
                    source,
                }),
                _ => *skipped.entry(source.file()).or_default() += 1,
            }
        };
        for (source, text, description, code) in [
            (
                Source::ExtraReferences,
                texts.extra_references,
                "Goods Description",
                "Commodity Code",
            ),
            (Source::Brands, texts.brands, "GDSDESC", "CMDTYCODE"),
        ] {
            for_each_row(source.file(), text, &[description, code], |row| {
                keep(source, row[0], row[1]);
            })?;
        }
        let search: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(texts.search_references).map_err(|e| SourceError {
                file: Source::SearchReferences.file().to_string(),
                place: String::new(),
                problem: format!("not a JSON object of term → code: {e}"),
            })?;
        for (term, code) in &search {
            keep(
                Source::SearchReferences,
                term,
                code.as_str().unwrap_or_default(),
            );
        }
        // One order whatever the files' order: by code, text, source.
        descriptions.sort();
        descriptions.dedup();
        let mut by_prefix: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, d) in descriptions.iter().enumerate() {
            for digits in [2, 4, 6] {
                by_prefix
                    .entry(d.code[..digits].to_string())
                    .or_default()
                    .push(i);
            }
        }
        let mut nomenclature = BTreeMap::new();
        for_each_row(
            "hs2022_nomenclature.csv",
            texts.nomenclature,
            &["hscode", "description", "level"],
            |row| {
                if matches!(row[2], "2" | "4" | "6") {
                    nomenclature.insert(row[0].to_string(), row[1].to_string());
                }
            },
        )?;
        Ok(DescriptionSources {
            descriptions,
            by_prefix,
            nomenclature,
            skipped,
            read,
        })
    }

    /// The descriptions that may stand for `hs6`, and the level they were found at.
    fn pool(&self, hs6: &str) -> (Level, &[usize]) {
        for (level, digits) in [(Level::Hs6, 6), (Level::Heading, 4), (Level::Chapter, 2)] {
            if let Some(pool) = hs6.get(..digits).and_then(|p| self.by_prefix.get(p)) {
                return (level, pool);
            }
        }
        (Level::None, &[])
    }

    /// The HS 2022 text of `hs6` (or of its heading, or chapter), and the level found.
    fn nomenclature_text(&self, hs6: &str) -> (Level, Option<&str>) {
        for (level, digits) in [(Level::Hs6, 6), (Level::Heading, 4), (Level::Chapter, 2)] {
            if let Some(text) = hs6.get(..digits).and_then(|p| self.nomenclature.get(p)) {
                return (level, Some(text));
            }
        }
        (Level::None, None)
    }
}

/// Calls `f` with the cells of `columns` of every record of the CSV `text`.
fn for_each_row(
    file: &str,
    text: &str,
    columns: &[&str],
    mut f: impl FnMut(&[&str]),
) -> Result<(), SourceError> {
    let fail = |place: String, problem: String| SourceError {
        file: file.to_string(),
        place,
        problem,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| fail(String::new(), e.to_string()))?
        .clone();
    let mut index = Vec::with_capacity(columns.len());
    for column in columns {
        let i = header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').trim() == *column)
            .ok_or_else(|| fail(String::new(), format!("no column '{column}'")))?;
        index.push(i);
    }
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            fail(format!("line {line}: "), e.to_string())
        })?;
        let cells: Vec<&str> = index
            .iter()
            .map(|&i| record.get(i).unwrap_or_default())
            .collect();
        f(&cells);
    }
    Ok(())
}

/// The generator's settings.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct DescribeOptions {
    /// Seed of every draw.
    pub seed: u64,
    /// Probability that a row labelled `Fraud = 1` is misdeclared.
    pub misdeclared_fraud_rate: f64,
    /// Probability that any other row is misdeclared.
    pub misdeclared_clean_rate: f64,
    /// Probability that a row gets a cleaned description.
    pub cleaned_rate: f64,
}

impl DescribeOptions {
    /// The settings `data/sample-described/` was made with.
    pub const RECORDED: DescribeOptions = DescribeOptions {
        seed: 2026,
        misdeclared_fraud_rate: 0.30,
        misdeclared_clean_rate: 0.01,
        cleaned_rate: 0.50,
    };

    /// The first setting out of its range, in words (`None` when all are fine).
    pub fn problem(&self) -> Option<String> {
        for (name, rate) in [
            ("misdeclared fraud rate", self.misdeclared_fraud_rate),
            ("misdeclared clean rate", self.misdeclared_clean_rate),
            ("cleaned rate", self.cleaned_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Some(format!("the {name} {rate} is not a probability in [0, 1]"));
            }
        }
        None
    }
}

/// What was done to one file.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct FileSummary {
    /// The file name.
    pub file: String,
    /// Data rows.
    pub rows: u64,
    /// Rows labelled `Fraud = 1`.
    pub fraud_rows: u64,
    /// Rows by the level at which a description of the *declared* code was found
    /// ([`Level::ALL`] order).
    pub coverage: [u64; 4],
    /// Misdeclared rows among the rows labelled fraud ...
    pub misdeclared_fraud: u64,
    /// ... and among the others.
    pub misdeclared_clean: u64,
    /// Rows with a cleaned description.
    pub cleaned: u64,
    /// Rows with a sender's description.
    pub described: u64,
}

/// A CSV file that cannot be described; names the file and line.
#[derive(Clone, PartialEq, Debug, thiserror::Error)]
#[error("{file}: line {line}: {problem}")]
pub struct DescribeError {
    /// The file.
    pub file: String,
    /// The line (1 for the header).
    pub line: u64,
    /// What is wrong.
    pub problem: String,
}

/// A stream of its own for row `row` of file `file_no`.
fn row_rng(seed: u64, file_no: u64, row: u64) -> Rng {
    let mut mix = Rng::new(seed ^ file_no.rotate_left(48) ^ row);
    Rng::new(mix.next_u64())
}

/// Appends the two description columns to every record of the KCS-layout CSV `input` (its
/// other bytes kept), and a line per data row to `truth` (see [`TRUTH_COLUMNS`]; the caller
/// writes the header). `file_no` separates the streams of the files of one sample.
pub fn describe_file(
    file: &str,
    file_no: u64,
    input: &[u8],
    sources: &DescriptionSources,
    options: &DescribeOptions,
    truth: &mut csv::Writer<Vec<u8>>,
) -> Result<(Vec<u8>, FileSummary), DescribeError> {
    let fail = |line: u64, problem: String| DescribeError {
        file: file.to_string(),
        line,
        problem,
    };
    if let Some(problem) = options.problem() {
        return Err(fail(0, problem));
    }
    let hs_header = FieldRegistry::standard()
        .get("hs6")
        .and_then(|f| f.kcs_header)
        .unwrap_or("HS6 Code");
    let id_header = ID_HEADER;
    // (start, end) byte range, line and cells of every record, the header first.
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut records: Vec<(usize, u64, csv::StringRecord)> = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let (byte, line) = record
                    .position()
                    .map_or((0, 0), |p| (p.byte() as usize, p.line()));
                records.push((byte, line, record.clone()));
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(fail(line, e.to_string()));
            }
        }
    }
    let Some((_, _, header)) = records.first() else {
        return Err(fail(1, "empty file".to_string()));
    };
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim_start_matches('\u{feff}').trim() == name)
            .ok_or_else(|| fail(1, format!("no column '{name}'")))
    };
    let (hs_column, fraud_column, id_column) = (
        column(hs_header)?,
        column(FRAUD_HEADER)?,
        column(id_header)?,
    );
    for name in [DESCRIPTION_HEADER, CLEANED_HEADER] {
        if column(name).is_ok() {
            return Err(fail(1, format!("already has a column '{name}'")));
        }
    }
    let codes: Vec<&str> = records[1..]
        .iter()
        .map(|(_, _, r)| r.get(hs_column).unwrap_or_default().trim())
        .collect();
    let mut summary = FileSummary {
        file: file.to_string(),
        ..FileSummary::default()
    };
    let mut out = Vec::with_capacity(input.len() * 3 / 2);
    for (n, (start, line, record)) in records.iter().enumerate() {
        let end = records.get(n + 1).map_or(input.len(), |next| next.0);
        let raw = &input[*start..end];
        // What follows the record: its line end (and any empty lines after it), kept as it was;
        // none after a last record without one. Only line breaks: a space ending the last cell
        // is the cell's.
        let ends = raw
            .iter()
            .rev()
            .take_while(|&&b| b == b'\n' || b == b'\r')
            .count();
        let body = &raw[..raw.len() - ends];
        let terminator = &raw[body.len()..];
        out.extend_from_slice(body);
        let (sender, cleaned) = if n == 0 {
            (DESCRIPTION_HEADER.to_string(), CLEANED_HEADER.to_string())
        } else {
            let row = n as u64 - 1;
            let declared = record.get(hs_column).unwrap_or_default().trim();
            let fraud = record.get(fraud_column).unwrap_or_default().trim() == "1";
            let mut rng = row_rng(options.seed, file_no, row);
            let rate = if fraud {
                options.misdeclared_fraud_rate
            } else {
                options.misdeclared_clean_rate
            };
            let plant = rng.next_f64() < rate;
            let clean = rng.next_f64() < options.cleaned_rate;
            let (declared_level, pool) = sources.pool(declared);
            let mut chosen = (!pool.is_empty()).then(|| pool[rng.below(pool.len())]);
            let mut description_level = declared_level;
            let mut true_hs6 = declared.to_string();
            let mut misdeclared = false;
            if plant && chosen.is_some() {
                // Another row's goods, of another chapter (a bounded number of tries: a file
                // of one chapter has none).
                for _ in 0..64 {
                    let other = codes[rng.below(codes.len())];
                    if other.get(..2) == declared.get(..2) {
                        continue;
                    }
                    let (level, pool) = sources.pool(other);
                    if pool.is_empty() {
                        continue;
                    }
                    chosen = Some(pool[rng.below(pool.len())]);
                    description_level = level;
                    true_hs6 = other.to_string();
                    misdeclared = true;
                    break;
                }
            }
            let (cleaned_level, cleaned_text) = if clean {
                sources.nomenclature_text(declared)
            } else {
                (Level::None, None)
            };
            summary.rows += 1;
            summary.fraud_rows += u64::from(fraud);
            summary.coverage[declared_level as usize] += 1;
            match (misdeclared, fraud) {
                (true, true) => summary.misdeclared_fraud += 1,
                (true, false) => summary.misdeclared_clean += 1,
                _ => {}
            }
            summary.cleaned += u64::from(cleaned_text.is_some());
            let description = chosen.map(|i| &sources.descriptions[i]);
            summary.described += u64::from(description.is_some());
            let truth_row = [
                file.to_string(),
                line.to_string(),
                record.get(id_column).unwrap_or_default().to_string(),
                declared.to_string(),
                u8::from(fraud).to_string(),
                declared_level.word().to_string(),
                u8::from(misdeclared).to_string(),
                true_hs6.clone(),
                true_hs6.get(..2).unwrap_or_default().to_string(),
                if description.is_some() {
                    description_level.word()
                } else {
                    Level::None.word()
                }
                .to_string(),
                description.map(|d| d.code.clone()).unwrap_or_default(),
                description
                    .map(|d| d.source.file().to_string())
                    .unwrap_or_default(),
                cleaned_level.word().to_string(),
            ];
            truth
                .write_record(&truth_row)
                .map_err(|e| fail(*line, format!("cannot write the truth: {e}")))?;
            (
                description.map(|d| d.text.clone()).unwrap_or_default(),
                cleaned_text.unwrap_or_default().to_string(),
            )
        };
        out.push(b',');
        out.extend_from_slice(&csv_cells(&[&sender, &cleaned]));
        out.extend_from_slice(terminator);
    }
    Ok((out, summary))
}

/// `cells` as one CSV record (quoted where needed), without a line end.
fn csv_cells(cells: &[&str]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(cells);
    let mut bytes = writer.into_inner().unwrap_or_default();
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    bytes
}

/// The share `part / whole` in percent, one decimal.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".to_string();
    }
    format!("{:.1} %", 100.0 * part as f64 / whole as f64)
}

/// The README of a described sample: what it is (CONSTRUCTED data), its sources and licences,
/// the settings and the coverage and rates measured while making it.
pub fn readme(
    sources: &DescriptionSources,
    options: &DescribeOptions,
    summaries: &[FileSummary],
) -> String {
    let mut total = FileSummary {
        file: "all".to_string(),
        ..FileSummary::default()
    };
    for s in summaries {
        total.rows += s.rows;
        total.fraud_rows += s.fraud_rows;
        for (t, c) in total.coverage.iter_mut().zip(s.coverage) {
            *t += c;
        }
        total.misdeclared_fraud += s.misdeclared_fraud;
        total.misdeclared_clean += s.misdeclared_clean;
        total.cleaned += s.cleaned;
        total.described += s.described;
    }
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("# Sample declarations with goods descriptions: CONSTRUCTED data");
    line("");
    line("**This is constructed data.** The declarations are the KCS synthetic sample (`data/sample/`),");
    line("the goods descriptions are real UK parcel descriptions (`data/hs/`), and their pairing is made");
    line("by `borderlens sample describe`: no sender ever wrote these descriptions for these declarations.");
    line("The misdeclarations are planted at the rates below; they are not observed fraud. Use it to");
    line("demonstrate and test what borderlens does with descriptions, never to report how often goods");
    line("are misdeclared.");
    line("");
    line("Made by (regenerating with the same settings reproduces every file byte for byte; a test checks it):");
    line("");
    line("```");
    line(&format!(
        "borderlens sample describe --out data/sample-described --seed {} --misdeclared-fraud-rate {} --misdeclared-clean-rate {} --cleaned-rate {}",
        options.seed, options.misdeclared_fraud_rate, options.misdeclared_clean_rate, options.cleaned_rate
    ));
    line("```");
    line("");
    line("Use it:");
    line("");
    line("```");
    line("borderlens import data/sample-described/df_syn_train_eng.csv data/sample-described/df_syn_valid_eng.csv --mapping data/sample-described/mapping.json");
    line("borderlens demo --data data/sample-described");
    line("```");
    line("");
    line("## Files");
    line("");
    line("| file | what |");
    line("| --- | --- |");
    line("| `df_syn_train_eng.csv`, `df_syn_valid_eng.csv` | the sample files, every byte kept, with two columns appended to each record: `Goods Description` (the sender's text) and `Cleaned Goods Description` (a broker's or operator's text, empty on the rows that have none) |");
    line("| `mapping.json` | the column mapping that reads them (`borderlens import --mapping`): the KCS layout plus the two descriptions |");
    line("| `truth/descriptions.csv` | one line per data row: which level matched, whether it was misdeclared, the true code and chapter, the UK code and file the description came from, the level of the cleaned text. In a folder of its own so that no import reads it |");
    line("");
    line("## How it was made");
    line("");
    line("For each declaration row:");
    line("");
    line("1. The sender's description is drawn at random from the UK descriptions of the declared HS6 code;");
    line("   if there is none, from those of its heading (first 4 digits), else of its chapter (first 2 digits).");
    line("   A code of a chapter without any UK description gets no description. A description found at");
    line("   heading or chapter level is of related goods, not of the declared subheading: it still reads");
    line("   as the declared chapter.");
    line(&format!(
        "2. With probability {} on rows labelled `Fraud = 1` and {} on the others, the row is **misdeclared**:",
        options.misdeclared_fraud_rate, options.misdeclared_clean_rate
    ));
    line("   the sender's description is drawn instead for the HS code of another row of the same file,");
    line("   of another chapter (the goods really sent; found by the same back-off). The story: the sender");
    line("   writes what is in the parcel, the declaration carries a code of another chapter. A row without");
    line("   a description is never misdeclared, so the measured rates below are a little under the rates asked.");
    line(&format!(
        "3. With probability {}, independently, the row also gets a cleaned description: the HS 2022 text",
        options.cleaned_rate
    ));
    line("   of the declared code (of its heading or chapter when the code is not an HS 2022 subheading), as a");
    line("   broker's classification software would write it. On a misdeclared row the cleaned text agrees");
    line("   with the declared code while the sender's does not: only the sender's text shows the problem.");
    line("");
    line("Each row draws from a stream of its own (seed, file, row) in a fixed order, so a row that is not");
    line("misdeclared gets the same description whatever the rates. The UK labels are themselves");
    line("sometimes wrong (`data/hs/README.md`), so a row that is not planted may still read as other goods.");
    line("");
    line("## Measured");
    line("");
    line("Coverage: the level at which a UK description was found for the declared code.");
    line("");
    line("| file | rows | HS6 | heading | chapter | none |");
    line("| --- | ---: | ---: | ---: | ---: | ---: |");
    for s in summaries.iter().chain([&total]) {
        line(&format!(
            "| {} | {} | {} ({}) | {} ({}) | {} ({}) | {} ({}) |",
            s.file,
            s.rows,
            s.coverage[0],
            percent(s.coverage[0], s.rows),
            s.coverage[1],
            percent(s.coverage[1], s.rows),
            s.coverage[2],
            percent(s.coverage[2], s.rows),
            s.coverage[3],
            percent(s.coverage[3], s.rows),
        ));
    }
    line("");
    line("Planted misdeclarations and cleaned descriptions:");
    line("");
    line("| file | rows with a description | fraud rows misdeclared | other rows misdeclared | misdeclared rows that are fraud | rows with a cleaned text |");
    line("| --- | ---: | ---: | ---: | ---: | ---: |");
    for s in summaries.iter().chain([&total]) {
        let clean_rows = s.rows - s.fraud_rows;
        let misdeclared = s.misdeclared_fraud + s.misdeclared_clean;
        line(&format!(
            "| {} | {} ({}) | {} of {} ({}) | {} of {} ({}) | {} of {} ({}) | {} ({}) |",
            s.file,
            s.described,
            percent(s.described, s.rows),
            s.misdeclared_fraud,
            s.fraud_rows,
            percent(s.misdeclared_fraud, s.fraud_rows),
            s.misdeclared_clean,
            clean_rows,
            percent(s.misdeclared_clean, clean_rows),
            s.misdeclared_fraud,
            misdeclared,
            percent(s.misdeclared_fraud, misdeclared),
            s.cleaned,
            percent(s.cleaned, s.rows),
        ));
    }
    line("");
    let uk = sources.descriptions.len();
    let read: Vec<String> = sources
        .read
        .iter()
        .map(|(file, n)| {
            let skipped = sources.skipped.get(file).copied().unwrap_or(0);
            format!("{file}: {n} read, {skipped} left out")
        })
        .collect();
    line(&format!(
        "UK descriptions used: {uk} distinct (code, text, file) entries over {} HS6 codes ({}). Left out: codes that are not 6, 8 or 10 digits, empty texts, texts the importer refuses.",
        sources.by_prefix.keys().filter(|k| k.len() == 6).count(),
        read.join("; ")
    ));
    line("");
    line("## Sources and licences");
    line("");
    line("- Declarations: \"Customs Import Declaration Datasets\", Jeong, Kim, Park, Choi (KAIST / IBS / Korea");
    line("  Customs Service), arXiv:2208.02484, synthetic rows made by CTGAN; GitHub Seondong/Customs-Declaration-Datasets");
    line("  @ a33cfc3. MIT — Copyright (c) 2022 Institute for Basic Science & Korea Customs Service (see `data/sample/README.md`).");
    line("- Goods descriptions: HMRC's trade-tariff-lambdas-fpo-search @ a7bda30, reference_data/extra_references.csv,");
    line("  search_references.json, brands.csv. MIT — Copyright (c) 2023 Crown Copyright (HM Revenue and Customs)");
    line("  (see `data/hs/README.md` for the full notice).");
    line("- Cleaned descriptions: the HS 2022 nomenclature texts of github.com/datasets/harmonized-system @ 905e5a0,");
    line("  ODC-PDDL-1.0.");
    line("");
    line("Permission is hereby granted, free of charge, to any person obtaining a copy of this software and");
    line("associated documentation files, to deal in the Software without restriction, subject to the condition");
    line("that the copyright notices above and this permission notice are included in all copies or substantial");
    line("portions of the Software. THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOMENCLATURE: &str = "section,hscode,description,parent,level\n\
XI,61,\"Apparel and clothing accessories; knitted or crocheted\",TOTAL,2\n\
XI,6109,\"T-shirts, singlets and other vests; knitted or crocheted\",61,4\n\
XI,610910,\"T-shirts, singlets and other vests; of cotton, knitted or crocheted\",6109,6\n\
XVI,85,\"Electrical machinery and equipment\",TOTAL,2\n\
XVI,8517,Telephone sets,85,4\n\
XVI,851713,Smartphones,8517,6\n";

    fn sources() -> DescriptionSources {
        DescriptionSources::parse(&SourceTexts {
            extra_references: "Goods Description,Commodity Code\nmens tshirt,61091000\n\"shirt, \"\"L\"\"\",6109100010\nlipstick,dark brun\niphone 12,85171300\n",
            search_references: r#"{"smartphones": "8517130000", "vest": "6109902000"}"#,
            brands: "CMDTYCODE,GDSDESC,GDSDESC (Brand / Product),Description for context / augmenting,Comments,Initials\n851762,Airpods pro,Airpods,,,X\n",
            nomenclature: NOMENCLATURE,
        })
        .unwrap()
    }

    const INPUT: &str = "Declaration ID,HS6 Code,Fraud\r\nA,610910,0\r\nB,610920,1\r\nC,611020,0\r\nD,851713,1\r\nE,010121,0 \r\nF,851762,1";

    fn run(options: &DescribeOptions) -> (String, FileSummary, String) {
        let mut truth = csv::Writer::from_writer(Vec::new());
        let (out, summary) = describe_file(
            "f.csv",
            0,
            INPUT.as_bytes(),
            &sources(),
            options,
            &mut truth,
        )
        .unwrap();
        (
            String::from_utf8(out).unwrap(),
            summary,
            String::from_utf8(truth.into_inner().unwrap()).unwrap(),
        )
    }

    fn none() -> DescribeOptions {
        DescribeOptions {
            seed: 1,
            misdeclared_fraud_rate: 0.0,
            misdeclared_clean_rate: 0.0,
            cleaned_rate: 0.0,
        }
    }

    #[test]
    fn sources_keep_texts_verbatim_and_leave_out_malformed_codes() {
        let sources = sources();
        let texts: Vec<&str> = sources
            .descriptions
            .iter()
            .map(|d| d.text.as_str())
            .collect();
        assert!(texts.contains(&"shirt, \"L\""), "{texts:?}");
        assert!(!texts.contains(&"lipstick"));
        assert_eq!(sources.skipped.get("uk_fpo_extra_references.csv"), Some(&1));
        assert_eq!(sources.pool("610910").0, Level::Hs6);
        assert_eq!(sources.pool("610990").0, Level::Hs6);
        assert_eq!(sources.pool("610920").0, Level::Heading);
        assert_eq!(sources.pool("611020").0, Level::Chapter);
        assert_eq!(sources.pool("010121"), (Level::None, &[][..]));
        assert_eq!(
            sources.nomenclature_text("610920"),
            (
                Level::Heading,
                Some("T-shirts, singlets and other vests; knitted or crocheted")
            )
        );
    }

    #[test]
    fn every_input_byte_is_kept_and_the_columns_are_appended() {
        let (out, summary, truth) = run(&none());
        let lines: Vec<&str> = out.split("\r\n").collect();
        let input: Vec<&str> = INPUT.split("\r\n").collect();
        assert_eq!(lines.len(), input.len());
        for (got, was) in lines.iter().zip(&input) {
            assert!(got.starts_with(&format!("{was},")), "{got:?} from {was:?}");
        }
        assert_eq!(
            lines[0],
            "Declaration ID,HS6 Code,Fraud,Goods Description,Cleaned Goods Description"
        );
        // No line end is added after a last record without one.
        assert!(!out.ends_with('\n'));
        // A space ending a record stays in its cell.
        assert_eq!(lines[5], "E,010121,0 ,,");
        assert_eq!(summary.coverage, [3, 1, 1, 1]);
        assert_eq!(summary.rows, 6);
        assert_eq!(summary.fraud_rows, 3);
        assert_eq!(
            (summary.misdeclared_fraud, summary.misdeclared_clean),
            (0, 0)
        );
        assert_eq!(truth.lines().count(), 6);
    }

    #[test]
    fn misdeclared_rows_read_as_another_chapter_and_the_cleaned_text_as_the_declared_code() {
        let options = DescribeOptions {
            seed: 1,
            misdeclared_fraud_rate: 1.0,
            misdeclared_clean_rate: 0.0,
            cleaned_rate: 1.0,
        };
        let (out, summary, truth) = run(&options);
        assert_eq!(summary.misdeclared_fraud, 3);
        assert_eq!(summary.misdeclared_clean, 0);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(truth.as_bytes());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        for row in &rows {
            let (declared, fraud, misdeclared, true_chapter) = (&row[3], &row[4], &row[6], &row[8]);
            assert_eq!(misdeclared, fraud, "{row:?}");
            if misdeclared == "1" {
                assert_ne!(&declared[..2], true_chapter, "{row:?}");
                assert_eq!(&row[10][..2], true_chapter, "{row:?}");
            } else {
                assert_eq!(&declared[..2], true_chapter);
            }
        }
        // The broker's text is the declared code's: D (851713, fraud) reads "Smartphones"
        // as cleaned text, while the sender's text is of chapter 61.
        let mut reader = csv::Reader::from_reader(out.as_bytes());
        let d = reader
            .records()
            .map(Result::unwrap)
            .find(|r| &r[0] == "D")
            .unwrap();
        assert_eq!(&d[4], "Smartphones");
        assert!(!d[3].is_empty());
    }

    #[test]
    fn a_row_not_planted_gets_the_same_description_whatever_the_rates() {
        let (plain, _, _) = run(&none());
        let options = DescribeOptions {
            misdeclared_fraud_rate: 1.0,
            cleaned_rate: 1.0,
            ..none()
        };
        let (planted, _, _) = run(&options);
        let sender = |text: &str, id: &str| {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let row = reader
                .records()
                .map(Result::unwrap)
                .find(|r| &r[0] == id)
                .unwrap();
            row[3].to_string()
        };
        for id in ["A", "C", "E"] {
            assert_eq!(sender(&plain, id), sender(&planted, id), "{id}");
        }
        let (again, _, _) = run(&options);
        assert_eq!(planted, again);
        let (other_seed, _, _) = run(&DescribeOptions { seed: 2, ..options });
        assert_ne!(planted, other_seed);
    }

    #[test]
    fn bad_input_is_an_error_naming_file_and_line() {
        let mut truth = csv::Writer::from_writer(Vec::new());
        let run = |input: &str, options: &DescribeOptions, truth: &mut csv::Writer<Vec<u8>>| {
            describe_file("f.csv", 0, input.as_bytes(), &sources(), options, truth).unwrap_err()
        };
        let err = run("Declaration ID,Fraud\nA,0\n", &none(), &mut truth);
        assert_eq!(err.to_string(), "f.csv: line 1: no column 'HS6 Code'");
        let err = run("", &none(), &mut truth);
        assert_eq!(err.to_string(), "f.csv: line 1: empty file");
        let err = run(
            "Declaration ID,HS6 Code,Fraud,Goods Description\n",
            &none(),
            &mut truth,
        );
        assert!(err.to_string().contains("already has a column"), "{err}");
        let err = run(
            INPUT,
            &DescribeOptions {
                cleaned_rate: 1.5,
                ..none()
            },
            &mut truth,
        );
        assert!(err.to_string().contains("not a probability"), "{err}");
        let err = DescriptionSources::parse(&SourceTexts {
            extra_references: "Goods Description,Commodity Code\n",
            search_references: "[1]",
            brands: "CMDTYCODE,GDSDESC\n",
            nomenclature: NOMENCLATURE,
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("uk_fpo_search_references.json: not a JSON object"),
            "{err}"
        );
        let err = DescriptionSources::parse(&SourceTexts {
            extra_references: "Description,Code\n",
            search_references: "{}",
            brands: "CMDTYCODE,GDSDESC\n",
            nomenclature: NOMENCLATURE,
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "uk_fpo_extra_references.csv: no column 'Goods Description'"
        );
    }
}
