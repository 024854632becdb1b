//! `hs batch`: suggestions (and the mismatch, when a declared-code column is named) for every
//! row of a CSV file, streamed row by row to CSV or JSON Lines; memory does not grow with the
//! file. A row whose code does not parse gets its error in the output and the run goes on.

use std::io::{Read, Write};

use serde::Serialize;

use crate::model::{HsModel, Status};
use crate::nomenclature::Nomenclature;
use crate::HsError;

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// CSV with a header.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// What to read.
pub struct BatchOptions {
    /// Header of the description column.
    pub column: String,
    /// Header of the declared-code column, if any.
    pub declared_column: Option<String>,
    /// Header of a cleaned-description column, if any (compared with `column`).
    pub cleaned_column: Option<String>,
    /// Candidates per row.
    pub k: usize,
    /// Output format.
    pub format: Format,
}

/// Counts of a batch run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchSummary {
    /// Rows read.
    pub rows: u64,
    /// Rows per status.
    pub classified: u64,
    /// Heading or chapter only.
    pub needs_more_detail: u64,
    /// No likely chapter.
    pub uncertain: u64,
    /// Too vague.
    pub too_vague: u64,
    /// Unreadable or empty.
    pub cannot_read: u64,
    /// Rows whose declared code did not parse.
    pub bad_codes: u64,
    /// Rows that could not be read as CSV (line and error in the output).
    pub bad_rows: u64,
}

#[derive(Serialize)]
struct OutRow<'a> {
    line: u64,
    status: &'a str,
    code: Option<&'a str>,
    probability: Option<f64>,
    candidates: String,
    vague_probability: Option<f64>,
    declared: Option<String>,
    mismatch_chapter: Option<f64>,
    mismatch_heading: Option<f64>,
    mismatch_hs6: Option<f64>,
    mismatch_chapter_log_ratio: Option<f64>,
    reads_as_chapter: Option<String>,
    cleaned_disagreement_chapter: Option<f64>,
    cleaned_disagreement_hs6: Option<f64>,
    error: Option<String>,
    message: &'a str,
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Classified => "classified",
        Status::NeedsMoreDetail => "needs_more_detail",
        Status::Uncertain => "uncertain",
        Status::TooVague => "too_vague",
        Status::CannotRead => "cannot_read",
        Status::Empty => "empty",
    }
}

/// Runs the batch. `progress(rows)` is called every 256 rows; returning `false` stops the run
/// (what was written stays, the summary says how far it got).
pub fn run<R: Read, W: Write>(
    model: &HsModel,
    input: R,
    output: W,
    options: &BatchOptions,
    progress: &mut dyn FnMut(u64) -> bool,
) -> Result<BatchSummary, HsError> {
    let nom = Nomenclature::hs2022();
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| HsError::Data(format!("cannot read the header: {e}")))?
        .clone();
    let find = |name: &str| -> Result<usize, HsError> {
        headers
            .iter()
            .position(|h| h.trim() == name)
            .ok_or_else(|| {
                HsError::Data(format!(
                    "no column '{name}' in the header (columns: {})",
                    headers.iter().collect::<Vec<_>>().join(", ")
                ))
            })
    };
    let text_col = find(&options.column)?;
    let code_col = options.declared_column.as_deref().map(find).transpose()?;
    let clean_col = options.cleaned_column.as_deref().map(find).transpose()?;
    let mut sink = match options.format {
        Format::Csv => Out::Csv(Box::new(csv::Writer::from_writer(output))),
        Format::Jsonl => Out::Jsonl(output),
    };
    let mut summary = BatchSummary::default();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                summary.rows += 1;
                summary.bad_rows += 1;
                let row = OutRow {
                    line,
                    status: "error",
                    code: None,
                    probability: None,
                    candidates: String::new(),
                    vague_probability: None,
                    declared: None,
                    mismatch_chapter: None,
                    mismatch_heading: None,
                    mismatch_hs6: None,
                    mismatch_chapter_log_ratio: None,
                    reads_as_chapter: None,
                    cleaned_disagreement_chapter: None,
                    cleaned_disagreement_hs6: None,
                    error: Some(e.to_string()),
                    message: "",
                };
                sink.write(&row)?;
                if e.is_io_error() {
                    break;
                }
                continue;
            }
        }
        summary.rows += 1;
        let text = record.get(text_col).unwrap_or("");
        let mut error = None;
        let (suggestion, mismatch, declared) = match code_col.map(|c| record.get(c).unwrap_or("")) {
            Some(code) if !code.trim().is_empty() => match nom.parse_code(code) {
                Ok(c) => {
                    let check = model.check(c, text, options.k);
                    (check.suggestion, check.mismatch, Some(c.to_string()))
                }
                Err(e) => {
                    summary.bad_codes += 1;
                    error = Some(format!(
                        "line {line}, column {}: {e}",
                        options.declared_column.as_deref().unwrap_or("")
                    ));
                    (model.suggest(text, options.k), None, None)
                }
            },
            _ => (model.suggest(text, options.k), None, None),
        };
        let cleaned = clean_col
            .map(|c| record.get(c).unwrap_or(""))
            .filter(|c| !c.trim().is_empty())
            .and_then(|c| model.compare(text, c).disagreement);
        match suggestion.status {
            Status::Classified => summary.classified += 1,
            Status::NeedsMoreDetail => summary.needs_more_detail += 1,
            Status::Uncertain => summary.uncertain += 1,
            Status::TooVague => summary.too_vague += 1,
            Status::CannotRead | Status::Empty => summary.cannot_read += 1,
        }
        let candidates = suggestion
            .candidates
            .iter()
            .map(|c| format!("{}:{:.3}", c.code, c.probability))
            .collect::<Vec<_>>()
            .join(" ");
        let row = OutRow {
            line,
            status: status_word(suggestion.status),
            code: suggestion.code.as_deref(),
            probability: suggestion.probability,
            candidates,
            vague_probability: suggestion.vague_probability,
            declared,
            mismatch_chapter: mismatch.as_ref().map(|m| m.chapter),
            mismatch_heading: mismatch.as_ref().and_then(|m| m.heading),
            mismatch_hs6: mismatch.as_ref().and_then(|m| m.hs6),
            mismatch_chapter_log_ratio: mismatch.as_ref().map(|m| m.chapter_log_ratio),
            reads_as_chapter: mismatch.as_ref().map(|m| m.best_chapter.0.to_string()),
            cleaned_disagreement_chapter: cleaned.as_ref().map(|d| d.chapter),
            cleaned_disagreement_hs6: cleaned.as_ref().map(|d| d.hs6),
            error,
            message: &suggestion.message,
        };
        sink.write(&row)?;
        if summary.rows % 256 == 0 && !progress(summary.rows) {
            break;
        }
    }
    match &mut sink {
        Out::Csv(w) => w.flush(),
        Out::Jsonl(w) => w.flush(),
    }
    .map_err(|e| HsError::Io(e.to_string()))?;
    Ok(summary)
}

enum Out<W: Write> {
    Csv(Box<csv::Writer<W>>),
    Jsonl(W),
}

impl<W: Write> Out<W> {
    fn write(&mut self, row: &OutRow<'_>) -> Result<(), HsError> {
        let err = |e: &dyn std::fmt::Display| HsError::Io(format!("cannot write the output: {e}"));
        match self {
            Out::Csv(w) => w.serialize(row).map_err(|e| err(&e)),
            Out::Jsonl(w) => {
                serde_json::to_writer(&mut *w, row).map_err(|e| err(&e))?;
                w.write_all(b"\n").map_err(|e| err(&e))
            }
        }
    }
}
