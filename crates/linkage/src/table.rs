//! Records as the linkage sees them: an id and named text columns, column-major.

use std::ops::Index;

/// A column of text values stored end to end in one buffer: about the bytes of the values plus
/// 8 per value, where a `Vec<String>` costs 24 per value and a heap block each (a million-record
/// source of ten columns is ~100 MB instead of ~600 MB).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Column {
    data: String,
    ends: Vec<usize>,
}

impl Column {
    /// An empty column.
    pub fn new() -> Column {
        Column::default()
    }

    /// Values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there is no value.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Appends a value.
    pub fn push(&mut self, value: &str) {
        self.data.push_str(value);
        self.ends.push(self.data.len());
    }

    /// Value `r`.
    pub fn get(&self, r: usize) -> Option<&str> {
        let end = *self.ends.get(r)?;
        let start = if r == 0 { 0 } else { self.ends[r - 1] };
        Some(&self.data[start..end])
    }

    /// The values in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        (0..self.len()).map(|r| &self[r])
    }

    /// Position of the first value equal to `value`.
    pub fn position(&self, value: &str) -> Option<usize> {
        self.iter().position(|v| v == value)
    }
}

impl Index<usize> for Column {
    type Output = str;

    #[inline]
    fn index(&self, r: usize) -> &str {
        let start = if r == 0 { 0 } else { self.ends[r - 1] };
        &self.data[start..self.ends[r]]
    }
}

impl<S: AsRef<str>> FromIterator<S> for Column {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Column {
        let mut column = Column::new();
        for v in iter {
            column.push(v.as_ref());
        }
        column
    }
}

/// A source of records. Empty strings are missing values.
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Name for messages (e.g. the file name).
    pub name: String,
    /// One id per record.
    pub ids: Column,
    /// Column names.
    pub columns: Vec<String>,
    /// `values[c][r]`: column `c` of record `r`.
    pub values: Vec<Column>,
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
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns
            .iter()
            .position(|c| c == name)
            .map(|i| &self.values[i])
    }

    /// Removes column `name`; false when there is none.
    pub fn remove_column(&mut self, name: &str) -> bool {
        match self.columns.iter().position(|c| c == name) {
            Some(i) => {
                self.columns.remove(i);
                self.values.remove(i);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn a_column_gives_back_what_was_pushed(values in proptest::collection::vec("\\PC{0,8}", 0..20)) {
            let column: Column = values.iter().collect();
            proptest::prop_assert_eq!(column.len(), values.len());
            for (r, v) in values.iter().enumerate() {
                proptest::prop_assert_eq!(&column[r], v.as_str());
                proptest::prop_assert_eq!(column.get(r), Some(v.as_str()));
            }
            proptest::prop_assert_eq!(column.get(values.len()), None);
            let back: Vec<&str> = column.iter().collect();
            proptest::prop_assert_eq!(back, values.iter().map(String::as_str).collect::<Vec<_>>());
        }
    }
}
