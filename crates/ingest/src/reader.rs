//! Streaming reader of declaration items from a CSV file, one [`RecordError`] per bad record.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use borderlens_domain::{
    check_text, ControlLabel, DeclarationItem, DeclaredValue, FieldType, ItemKey, ValueError,
};
use csv::ByteRecord;

use crate::error::{FileError, RecordError, RecordProblem};
use crate::mapping::{ColumnMapping, Field};

/// Opens `path`, checks its header against `mapping` and returns a reader of its records.
///
/// Fails with a [`FileError`] naming the file when it cannot be opened, is empty, has a header
/// that is not UTF-8, or lacks a mapped column (all missing columns are named at once).
/// Records are read lazily, one at a time: the file is never loaded whole.
pub fn read_declarations(
    path: &Path,
    mapping: &ColumnMapping,
) -> Result<DeclarationReader, FileError> {
    let file = File::open(path).map_err(|source| FileError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    DeclarationReader::from_reader(path, file, mapping)
}

/// Iterator over the records of a trade file: `Ok(item)` for each good record, `Err` for each bad
/// one (the next record is read normally after an error). Stops after an I/O error.
pub struct DeclarationReader<R = File> {
    path: PathBuf,
    csv: csv::Reader<LineCounter<R>>,
    record: ByteRecord,
    n_fields: usize,
    /// The header names, trimmed.
    columns: Vec<String>,
    /// Column index of each [`Field`] (by [`Field::index`]), `None` when not mapped.
    index: Vec<Option<usize>>,
    mapping: ColumnMapping,
    last_line: u64,
    done: bool,
}

impl<R: Read> DeclarationReader<R> {
    /// Reads CSV from any byte source; `name` is the path used in error messages.
    pub fn from_reader(
        name: &Path,
        source: R,
        mapping: &ColumnMapping,
    ) -> Result<DeclarationReader<R>, FileError> {
        let path = name.to_path_buf();
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(LineCounter::new(source));
        let header = csv
            .byte_headers()
            .map_err(|source| FileError::Unreadable {
                path: path.clone(),
                source,
            })?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].trim_ascii().is_empty()) {
            return Err(FileError::Empty { path });
        }
        let mut names = Vec::with_capacity(header.len());
        for (i, raw) in header.iter().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| FileError::HeaderNotUtf8 {
                path: path.clone(),
                column: i + 1,
            })?;
            // A UTF-8 byte order mark may precede the first header name.
            names.push(name.trim_start_matches('\u{feff}').trim());
        }
        let mut index = vec![None; mapping.n_fields()];
        let mut missing = Vec::new();
        for field in mapping.fields() {
            let Some(wanted) = mapping.header(field) else {
                continue;
            };
            let wanted = wanted.trim();
            let mut found = names
                .iter()
                .enumerate()
                .filter(|(_, name)| **name == wanted);
            match (found.next(), found.next()) {
                (None, _) => {
                    if !missing.iter().any(|m| m == wanted) {
                        missing.push(wanted.to_string());
                    }
                }
                (Some((i, _)), None) => {
                    index[field.index(mapping.registry().fields().len())] = Some(i)
                }
                (Some(_), Some(_)) => {
                    return Err(FileError::DuplicateColumn {
                        path,
                        column: wanted.to_string(),
                    })
                }
            }
        }
        if !missing.is_empty() {
            return Err(FileError::MissingColumns {
                path,
                columns: missing,
            });
        }
        Ok(DeclarationReader {
            path,
            csv,
            record: ByteRecord::new(),
            n_fields: header.len(),
            columns: names.iter().map(|n| n.to_string()).collect(),
            index,
            mapping: mapping.clone(),
            last_line: 1,
            done: false,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The 1-based line where the record last returned starts (1, the header, before any).
    pub fn last_line(&self) -> u64 {
        self.last_line
    }

    /// Pairs each good item with the 1-based line where its record starts, the form
    /// `borderlens-store` imports.
    pub fn with_lines(self) -> WithLines<R> {
        WithLines { inner: self }
    }

    /// The error for a record starting on `line` one of whose fields holds lines that look like
    /// whole records: a quote opened and not closed, so that csv read the following records
    /// into the field, up to the next quote or the end of the file. `None` for other records;
    /// a quoted field may hold line breaks, but not a line with a delimiter for every column.
    fn swallowed(&self, line: u64) -> Option<RecordError> {
        // A line of a one- or two-column file is not told apart from a line of text.
        if self.n_fields < 3 {
            return None;
        }
        let mut opened = line;
        for (i, field) in self.record.iter().enumerate() {
            let breaks = line_breaks(field);
            if breaks == 0 {
                continue;
            }
            let mut whole = 0u64;
            let mut first = None;
            let mut last = 0;
            for (k, text) in physical_lines(field).enumerate().skip(1) {
                let delimiters = text.iter().filter(|&&b| b == b',').count();
                if delimiters + 1 >= self.n_fields {
                    whole += 1;
                    first.get_or_insert(opened + k as u64);
                    last = opened + k as u64;
                }
            }
            if let Some(first) = first {
                return Some(RecordError {
                    path: self.path.clone(),
                    line,
                    field: self.columns.get(i).cloned(),
                    reason: RecordProblem::UnclosedQuote {
                        opened,
                        records: whole,
                        first,
                        last,
                    },
                });
            }
            opened += breaks;
        }
        None
    }

    fn parse_current(&self, line: u64) -> Result<DeclarationItem, RecordError> {
        let record = Fields {
            reader: self,
            record: &self.record,
            line,
        };
        record.parse()
    }
}

impl<R: Read> Iterator for DeclarationReader<R> {
    type Item = Result<DeclarationItem, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let before = self.csv.position().byte();
        match self.csv.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Ok(true) => {
                // csv's own line count skips newlines inside quoted fields: count them here.
                let start = self.record.position().map_or(before, |p| p.byte());
                let line = self.csv.get_mut().line_of_record_at(start);
                self.last_line = line;
                if let Some(error) = self.swallowed(line) {
                    return Some(Err(error));
                }
                Some(self.parse_current(line))
            }
            Err(e) => {
                let end = self.csv.position().byte();
                let line = 1 + self.csv.get_mut().breaks_before(end);
                self.last_line = line;
                // An I/O error, or one that did not move the reader forward, would repeat.
                self.done = matches!(e.kind(), csv::ErrorKind::Io(_))
                    || self.csv.position().byte() == before;
                Some(Err(RecordError {
                    path: self.path.clone(),
                    line,
                    field: None,
                    reason: RecordProblem::Unreadable(e.to_string()),
                }))
            }
        }
    }
}

/// Passes bytes through and remembers where the line breaks are (CR LF, lone LF and lone CR each
/// count once, as csv and editors see them), so that records get the physical line they start on.
struct LineCounter<R> {
    inner: R,
    /// Bytes read so far.
    offset: u64,
    /// Whether the last byte read was a CR.
    after_cr: bool,
    /// Offsets of the line breaks read but not yet counted.
    pending: VecDeque<u64>,
    /// Line breaks counted (all before the last offset asked about).
    counted: u64,
    /// Runs of CR/LF bytes `[start, end)` that may still hold a record's start.
    runs: VecDeque<(u64, u64)>,
    /// Start of the run of CR/LF bytes at the end of what was read, if any.
    open_run: Option<u64>,
}

impl<R> LineCounter<R> {
    fn new(inner: R) -> Self {
        LineCounter {
            inner,
            offset: 0,
            after_cr: false,
            pending: VecDeque::new(),
            counted: 0,
            runs: VecDeque::new(),
            open_run: None,
        }
    }

    /// Number of line breaks at offsets below `offset`; offsets must not decrease between calls.
    fn breaks_before(&mut self, offset: u64) -> u64 {
        while self.pending.front().is_some_and(|&at| at < offset) {
            self.pending.pop_front();
            self.counted += 1;
        }
        self.counted
    }

    /// The 1-based line of the first byte of a record whose read began at `start`: csv skips
    /// the terminator of the previous record and empty lines before the record's first byte.
    /// Starts must not decrease between calls.
    fn line_of_record_at(&mut self, start: u64) -> u64 {
        while self.runs.front().is_some_and(|&(_, end)| end <= start) {
            self.runs.pop_front();
        }
        let first_byte = match self.runs.front() {
            Some(&(run_start, run_end)) if run_start <= start => run_end,
            _ => start,
        };
        1 + self.breaks_before(first_byte)
    }
}

impl<R: Read> Read for LineCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &byte) in buf[..n].iter().enumerate() {
            let at = self.offset + i as u64;
            if byte == b'\r' || (byte == b'\n' && !self.after_cr) {
                self.pending.push_back(at);
            }
            if byte == b'\r' || byte == b'\n' {
                self.open_run.get_or_insert(at);
            } else if let Some(run_start) = self.open_run.take() {
                self.runs.push_back((run_start, at));
            }
            self.after_cr = byte == b'\r';
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// Line breaks in `bytes`, counted as [`LineCounter`] counts them (CR LF, lone CR, lone LF).
fn line_breaks(bytes: &[u8]) -> u64 {
    let mut n = 0;
    let mut after_cr = false;
    for &b in bytes {
        if b == b'\r' || (b == b'\n' && !after_cr) {
            n += 1;
        }
        after_cr = b == b'\r';
    }
    n
}

/// The physical lines of `bytes`, split as [`line_breaks`] counts them.
fn physical_lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let text = rest?;
        match text.iter().position(|&b| b == b'\r' || b == b'\n') {
            None => {
                rest = None;
                Some(text)
            }
            Some(at) => {
                let skip = if text[at..].starts_with(b"\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&text[at + skip..]);
                Some(&text[..at])
            }
        }
    })
}

/// [`DeclarationReader`] yielding `(item, line)` pairs; see [`DeclarationReader::with_lines`].
pub struct WithLines<R = File> {
    inner: DeclarationReader<R>,
}

impl<R: Read> WithLines<R> {
    /// The underlying reader.
    pub fn reader(&self) -> &DeclarationReader<R> {
        &self.inner
    }
}

impl<R: Read> Iterator for WithLines<R> {
    type Item = Result<(DeclarationItem, u64), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(item.map(|item| (item, self.inner.last_line)))
    }
}

/// The fields of the current record, parsed one by one.
struct Fields<'a, R> {
    reader: &'a DeclarationReader<R>,
    record: &'a ByteRecord,
    line: u64,
}

impl<'a, R> Fields<'a, R> {
    fn error(&self, field: Option<Field>, reason: RecordProblem) -> RecordError {
        RecordError {
            path: self.reader.path.clone(),
            line: self.line,
            field: field
                .and_then(|f| self.reader.mapping.header(f))
                .map(|h| h.trim().to_string()),
            reason,
        }
    }

    /// The column index of `field` in the record, `None` when not mapped.
    fn column(&self, field: Field) -> Option<usize> {
        let declared = self.reader.mapping.registry().fields().len();
        self.reader.index[field.index(declared)]
    }

    /// The trimmed text of `field`; `None` when not mapped or empty.
    fn text(&self, field: Field) -> Result<Option<&'a str>, RecordError> {
        let text = self.raw(field)?.map(str::trim);
        Ok(text.filter(|text| !text.is_empty()))
    }

    /// The text of `field` as it is in the file, not trimmed (a free text is kept byte for
    /// byte); `None` when not mapped.
    fn raw(&self, field: Field) -> Result<Option<&'a str>, RecordError> {
        let Some(i) = self.column(field) else {
            return Ok(None);
        };
        let bytes = &self.record[i];
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let offset = e.valid_up_to();
            self.error(
                Some(field),
                RecordProblem::NotUtf8 {
                    byte: bytes[offset],
                    offset,
                },
            )
        })?;
        Ok(Some(text))
    }

    fn required(&self, field: Field) -> Result<&'a str, RecordError> {
        self.text(field)?
            .ok_or_else(|| self.error(Some(field), RecordProblem::Empty))
    }

    /// The declared field at `i` of the registry, checked against its type.
    fn declared(&self, i: usize) -> Result<DeclaredValue, RecordError> {
        let field = Field::Declared(i);
        let spec = &self.reader.mapping.registry().fields()[i];
        // Free text is read as it is (`parse` keeps it byte for byte); other values trimmed.
        let text = match spec.ty {
            FieldType::Text => self.raw(field)?,
            _ => self.text(field)?,
        }
        .unwrap_or_default();
        spec.parse(text, &self.reader.mapping.date_format)
            .map_err(|e| {
                let problem = match e {
                    ValueError::Empty => RecordProblem::Empty,
                    ValueError::Number { value } => RecordProblem::Number { value },
                    ValueError::NotFinite { value } => RecordProblem::NotFinite { value },
                    ValueError::Negative { value } => RecordProblem::Negative { value },
                    ValueError::Date { value, format } => RecordProblem::Date { value, format },
                    ValueError::Hs(e) => RecordProblem::HsCode(e),
                    ValueError::DateRange { value } => RecordProblem::DateRange { value },
                    ValueError::TooLarge { value, max } => RecordProblem::TooLarge { value, max },
                    ValueError::TooLong { bytes } => RecordProblem::TooLong { bytes },
                    ValueError::Control {
                        character,
                        position,
                        ..
                    } => RecordProblem::Control {
                        character,
                        position,
                    },
                };
                self.error(Some(field), problem)
            })
    }

    fn item_no(&self) -> Result<u32, RecordError> {
        if self.column(Field::ItemNo).is_none() {
            return Ok(1);
        }
        let text = self.required(Field::ItemNo)?;
        match text.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err(self.error(
                Some(Field::ItemNo),
                RecordProblem::ItemNo {
                    value: text.to_string(),
                },
            )),
        }
    }

    /// A label value in `0..=max`, `None` when the column is not mapped or the cell is empty.
    fn label_value(&self, field: Field, max: u8) -> Result<Option<u8>, RecordError> {
        let Some(text) = self.text(field)? else {
            return Ok(None);
        };
        match text.parse::<u8>() {
            Ok(v) if v <= max && text.len() == 1 => Ok(Some(v)),
            _ => Err(self.error(
                Some(field),
                RecordProblem::Label {
                    value: text.to_string(),
                    allowed: if max == 1 { "0 or 1" } else { "0, 1 or 2" },
                },
            )),
        }
    }

    fn label(&self) -> Result<Option<ControlLabel>, RecordError> {
        let fraud = self.label_value(Field::Fraud, 1)?;
        let critical = self.label_value(Field::CriticalFraud, 2)?;
        let fraud_mapped = self.column(Field::Fraud).is_some();
        let critical_mapped = self.column(Field::CriticalFraud).is_some();
        let header = |field| {
            self.reader
                .mapping
                .header(field)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        match (fraud, critical) {
            (None, None) => Ok(None),
            (Some(fraud), None) if !critical_mapped => Ok(Some(ControlLabel {
                fraud: fraud == 1,
                critical: fraud,
            })),
            (None, Some(critical)) if !fraud_mapped => Ok(Some(ControlLabel {
                fraud: critical > 0,
                critical,
            })),
            (Some(_), None) => Err(self.error(
                Some(Field::CriticalFraud),
                RecordProblem::LabelMissing {
                    other: header(Field::Fraud),
                },
            )),
            (None, Some(_)) => Err(self.error(
                Some(Field::Fraud),
                RecordProblem::LabelMissing {
                    other: header(Field::CriticalFraud),
                },
            )),
            (Some(fraud), Some(critical)) => {
                if (fraud == 1) != (critical > 0) {
                    return Err(self.error(
                        Some(Field::CriticalFraud),
                        RecordProblem::Inconsistent { fraud, critical },
                    ));
                }
                Ok(Some(ControlLabel {
                    fraud: fraud == 1,
                    critical,
                }))
            }
        }
    }

    fn parse(&self) -> Result<DeclarationItem, RecordError> {
        if self.record.len() != self.reader.n_fields {
            return Err(self.error(
                None,
                RecordProblem::FieldCount {
                    expected: self.reader.n_fields,
                    found: self.record.len(),
                },
            ));
        }
        let declaration_id = self.required(Field::DeclarationId)?;
        check_text(declaration_id).map_err(|e| match e {
            ValueError::Control {
                character,
                position,
                ..
            } => self.error(
                Some(Field::DeclarationId),
                RecordProblem::Control {
                    character,
                    position,
                },
            ),
            other => self.error(
                Some(Field::DeclarationId),
                RecordProblem::Unreadable(other.to_string()),
            ),
        })?;
        let key = ItemKey {
            declaration_id: declaration_id.to_string(),
            item_no: self.item_no()?,
        };
        let registry = self.reader.mapping.registry();
        let values = (0..registry.fields().len())
            .map(|i| self.declared(i))
            .collect::<Result<Vec<_>, _>>()?;
        let label = self.label()?;
        registry.build(key, values, label).map_err(|e| {
            let field = registry.position(e.field).map(Field::Declared);
            self.error(field, RecordProblem::Unreadable(e.to_string()))
        })
    }
}
