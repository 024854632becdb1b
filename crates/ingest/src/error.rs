//! What can be wrong with a trade file as a whole ([`FileError`]) or with one record of it
//! ([`RecordError`]).

use std::fmt;
use std::path::PathBuf;

use borderlens_domain::{HsError, PLAUSIBLE_YEARS};

use crate::mapping::quoted_list;

/// A file that cannot be read at all: nothing of it is imported. Names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be opened.
    #[error("cannot open '{}': {source}", path.display())]
    Open {
        /// the file
        path: PathBuf,
        /// why
        source: std::io::Error,
    },
    /// The header line cannot be read.
    #[error("cannot read the header of '{}': {source}", path.display())]
    Unreadable {
        /// the file
        path: PathBuf,
        /// why
        source: csv::Error,
    },
    /// The file has no header line.
    #[error("'{}' is empty: no header line", path.display())]
    Empty {
        /// the file
        path: PathBuf,
    },
    /// A header name is not valid UTF-8.
    #[error("'{}': header column {column} is not valid UTF-8", path.display())]
    HeaderNotUtf8 {
        /// the file
        path: PathBuf,
        /// 1-based column number
        column: usize,
    },
    /// Columns that the mapping needs are not in the header.
    #[error("'{}': missing column(s) {}", path.display(), quoted_list(columns))]
    MissingColumns {
        /// the file
        path: PathBuf,
        /// the header names not found, in mapping order
        columns: Vec<String>,
    },
    /// A column that the mapping needs appears more than once, so which one is meant is unclear.
    #[error("'{}': column '{column}' appears more than once in the header", path.display())]
    DuplicateColumn {
        /// the file
        path: PathBuf,
        /// the header name
        column: String,
    },
}

/// One record that could not be turned into a declaration item. The reader goes on with the next.
///
/// Displays as `FILE:LINE: field 'Net Mass': reason` (or `FILE:LINE: reason` when the problem is
/// with the record as a whole).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordError {
    /// The file.
    pub path: PathBuf,
    /// 1-based physical line where the record starts.
    pub line: u64,
    /// The header name of the offending field; `None` when the whole record is wrong.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: RecordProblem,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.path.display(), self.line)?;
        if let Some(field) = &self.field {
            write!(f, "field '{field}': ")?;
        }
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for RecordError {}

/// What is wrong with a record or one of its fields. Values are quoted as found (shortened when
/// long).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordProblem {
    /// The record has a different number of fields than the header.
    FieldCount {
        /// fields in the header
        expected: usize,
        /// fields in this record
        found: usize,
    },
    /// A field holds a byte sequence that is not UTF-8.
    NotUtf8 {
        /// the first invalid byte
        byte: u8,
        /// its 0-based offset within the field
        offset: usize,
    },
    /// A mandatory field is empty.
    Empty,
    /// Not a date in the mapping's date format.
    Date {
        /// the text found
        value: String,
        /// the expected chrono format
        format: String,
    },
    /// Not a number.
    Number {
        /// the text found
        value: String,
    },
    /// NaN or infinite.
    NotFinite {
        /// the text found
        value: String,
    },
    /// A mass, price or rate below zero.
    Negative {
        /// the text found
        value: String,
    },
    /// Not an item number (a whole number from 1).
    ItemNo {
        /// the text found
        value: String,
    },
    /// Not an HS6 code.
    HsCode(HsError),
    /// A label value outside its code list.
    Label {
        /// the text found
        value: String,
        /// the allowed values, e.g. `0 or 1`
        allowed: &'static str,
    },
    /// One label column is empty while the other is set.
    LabelMissing {
        /// the header name of the column that is set
        other: String,
    },
    /// `critical > 0` but `fraud = 0`, or `fraud = 1` but `critical = 0`.
    Inconsistent {
        /// the fraud label
        fraud: u8,
        /// the critical fraud label
        critical: u8,
    },
    /// A date outside the plausible years, or with a signed year.
    DateRange {
        /// the text found
        value: String,
    },
    /// A number above the plausible maximum of its field.
    TooLarge {
        /// the text found
        value: String,
        /// the largest value accepted
        max: f64,
    },
    /// A free text longer than [`borderlens_domain::MAX_TEXT_BYTES`].
    TooLong {
        /// its length in bytes
        bytes: usize,
    },
    /// A control character (NUL, escape...) in a code, a text or the declaration id.
    Control {
        /// the character
        character: char,
        /// its 0-based position in the field, in characters
        position: usize,
    },
    /// A quote opened in this record and not closed where it should be: csv read the following
    /// lines, which look like whole records, into one field. They are not imported.
    UnclosedQuote {
        /// the line where the quoted field starts
        opened: u64,
        /// lines in the field that look like whole records
        records: u64,
        /// the first of them
        first: u64,
        /// the last of them
        last: u64,
    },
    /// The record cannot be read from the file (I/O error).
    Unreadable(String),
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordProblem::FieldCount { expected, found } => {
                write!(f, "expected {expected} fields, found {found}")
            }
            RecordProblem::NotUtf8 { byte, offset } => {
                write!(f, "not valid UTF-8 (byte 0x{byte:02x} at offset {offset})")
            }
            RecordProblem::Empty => f.write_str("empty mandatory field"),
            RecordProblem::Date { value, format } => {
                write!(f, "'{}' is not a date in format '{format}'", shown(value))
            }
            RecordProblem::Number { value } => write!(f, "'{}' is not a number", shown(value)),
            RecordProblem::NotFinite { value } => {
                write!(f, "'{}' is not a finite number", shown(value))
            }
            RecordProblem::Negative { value } => {
                write!(f, "'{}' is negative", shown(value))
            }
            RecordProblem::ItemNo { value } => write!(
                f,
                "'{}' is not an item number (a whole number from 1)",
                shown(value)
            ),
            RecordProblem::HsCode(e) => write!(f, "{e}"),
            RecordProblem::Label { value, allowed } => {
                write!(f, "'{}' is not a label (expected {allowed})", shown(value))
            }
            RecordProblem::LabelMissing { other } => {
                write!(f, "empty while '{other}' is set")
            }
            RecordProblem::Inconsistent { fraud, critical } => write!(
                f,
                "critical fraud {critical} with fraud {fraud} \
                 (critical fraud must be above 0 exactly when fraud is 1)"
            ),
            RecordProblem::DateRange { value } => write!(
                f,
                "'{}' is not a plausible date (years {} to {})",
                shown(value),
                PLAUSIBLE_YEARS.start(),
                PLAUSIBLE_YEARS.end()
            ),
            RecordProblem::TooLarge { value, max } => write!(
                f,
                "'{}' is above the plausible maximum {max:e}",
                shown(value)
            ),
            RecordProblem::TooLong { bytes } => write!(
                f,
                "{bytes} bytes of text, more than the {} a declared text may hold",
                borderlens_domain::MAX_TEXT_BYTES
            ),
            RecordProblem::Control {
                character,
                position,
            } => write!(
                f,
                "control character {} at character {} (codes, ids and texts hold printable text, tabs and line breaks)",
                character.escape_unicode(),
                position + 1
            ),
            RecordProblem::UnclosedQuote {
                opened,
                records,
                first,
                last,
            } => {
                let lines = if first == last {
                    format!("line {first}")
                } else {
                    format!("lines {first} to {last}")
                };
                write!(
                    f,
                    "the quote opened on line {opened} is not closed: {records} following \
                     record(s) ({lines}) were read into this field and are not imported; \
                     close the quote and import the file again"
                )
            }
            RecordProblem::Unreadable(e) => write!(f, "cannot read the record: {e}"),
        }
    }
}

/// A field value as shown in a message: control characters escaped, at most 40 characters.
fn shown(value: &str) -> String {
    const MAX: usize = 40;
    let mut out = String::new();
    for c in value.chars().take(MAX) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if value.chars().nth(MAX).is_some() {
        out.push('…');
    }
    out
}
