//! Records as the linkage sees them: an id and named text columns, column-major.

/// A source of records. Empty strings are missing values.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Name for messages (e.g. the file name).
    pub name: String,
    /// One id per record.
    pub ids: Vec<String>,
    /// Column names.
    pub columns: Vec<String>,
    /// `values[c][r]`: column `c` of record `r`.
    pub values: Vec<Vec<String>>,
}

impl Table {
    /// Records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The values of column `name`.
    pub fn column(&self, name: &str) -> Option<&[String]> {
        self.columns
            .iter()
            .position(|c| c == name)
            .map(|i| self.values[i].as_slice())
    }
}
