//! Exact links through standard identifiers, checked before use: ISO 6346 container numbers and
//! UPU S10 postal item ids by their check digits, transport document numbers by their shape.
//! Two records sharing a valid identifier are linked outright; an invalid identifier is reported
//! (record, column, reason) and never used to link.

use std::collections::HashMap;

use borderlens_domain::{ContainerNumber, S10ItemId};
use serde::{Deserialize, Serialize};

use crate::table::Table;

/// The identifier standards.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    /// ISO 6346 container number (owner code, category, serial, check digit).
    Iso6346,
    /// UPU S10 postal item id (two letters, eight digits, check digit, country).
    S10,
    /// A transport document number (bill of lading, air waybill): letters and digits, 6 to 35
    /// characters after removing spaces, dashes, dots and slashes; no check digit.
    TransportDocument,
    /// A trader's registration number (EORI, VAT, TIN, company register): letters and digits,
    /// 5 to 35 characters after removing spaces, dashes, dots and slashes, at least one digit;
    /// no check digit (each scheme has its own, most have none). One number is one legal
    /// entity, so two parties sharing one are one firm.
    Registration,
}

/// A column holding identifiers of one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierColumn {
    /// Column name.
    pub column: String,
    /// Standard.
    pub kind: IdentifierKind,
}

/// An identifier that failed its check, named.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InvalidIdentifier {
    /// Source (file name).
    pub source: String,
    /// Record id.
    pub record: String,
    /// Column.
    pub column: String,
    /// The value as written.
    pub value: String,
    /// Why it was refused.
    pub reason: String,
}

/// `value` upper-cased without spaces, dashes, dots and slashes, if it is then `lengths`
/// letters and digits; else why not, naming it as `what`.
fn letters_and_digits(
    value: &str,
    what: &str,
    lengths: std::ops::RangeInclusive<usize>,
) -> Result<String, String> {
    let cleaned: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
        .flat_map(char::to_uppercase)
        .collect();
    if !lengths.contains(&cleaned.len()) {
        Err(format!(
            "{what} '{value}' has {} characters, expected {} to {}",
            cleaned.len(),
            lengths.start(),
            lengths.end()
        ))
    } else if !cleaned.chars().all(|c| c.is_ascii_alphanumeric()) {
        Err(format!(
            "{what} '{value}' has characters other than letters and digits"
        ))
    } else {
        Ok(cleaned)
    }
}

/// Whether the digits of `s` are five or more of one digit (`DE000000000`, `99999`).
fn one_digit_repeated(s: &str) -> bool {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    digits.len() >= 5 && digits.iter().all(|&d| d == digits[0])
}

/// Canonical form of a valid identifier, or why it is not one.
pub fn canonical(kind: IdentifierKind, value: &str) -> Result<String, String> {
    match kind {
        IdentifierKind::Iso6346 => ContainerNumber::parse(value)
            .map(|c| c.as_str().to_string())
            .map_err(|e| e.to_string()),
        IdentifierKind::S10 => S10ItemId::parse(value)
            .map(|s| s.as_str().to_string())
            .map_err(|e| e.to_string()),
        IdentifierKind::Registration => {
            let cleaned = letters_and_digits(value, "registration number", 5..=35)?;
            if !cleaned.chars().any(|c| c.is_ascii_digit()) {
                Err(format!("registration number '{value}' has no digit"))
            } else if one_digit_repeated(&cleaned) {
                // `DE000000000`, `99999`: a placeholder, which would link every record
                // carrying it.
                Err(format!(
                    "registration number '{value}' is one digit repeated: a placeholder"
                ))
            } else {
                Ok(cleaned)
            }
        }
        IdentifierKind::TransportDocument => {
            letters_and_digits(value, "transport document number", 6..=35)
        }
    }
}

/// Valid canonical identifiers of each record (None: missing or invalid), and the invalid ones.
fn column_ids(
    table: &Table,
    identifier: &IdentifierColumn,
    invalid: &mut Vec<InvalidIdentifier>,
) -> Vec<Option<String>> {
    let Some(values) = table.column(&identifier.column) else {
        return vec![None; table.len()];
    };
    values
        .iter()
        .enumerate()
        .map(|(r, v)| {
            let v = v.trim();
            if v.is_empty() {
                return None;
            }
            match canonical(identifier.kind, v) {
                Ok(id) => Some(id),
                Err(reason) => {
                    invalid.push(InvalidIdentifier {
                        source: table.name.clone(),
                        record: table.ids[r].to_string(),
                        column: identifier.column.clone(),
                        value: v.to_string(),
                        reason,
                    });
                    None
                }
            }
        })
        .collect()
}

/// Pairs of records (left, right; right indexes `left` again when `right` is `None`) that share
/// a valid identifier in any of the columns, and every invalid identifier met.
pub fn exact_links(
    identifiers: &[IdentifierColumn],
    left: &Table,
    right: Option<&Table>,
) -> (Vec<(u32, u32)>, Vec<InvalidIdentifier>) {
    let mut invalid = Vec::new();
    let mut pairs = Vec::new();
    for identifier in identifiers {
        let l = column_ids(left, identifier, &mut invalid);
        let r = match right {
            Some(t) => column_ids(t, identifier, &mut invalid),
            None => l.clone(),
        };
        let mut index: HashMap<&str, Vec<u32>> = HashMap::new();
        for (j, id) in r.iter().enumerate() {
            if let Some(id) = id {
                index.entry(id.as_str()).or_default().push(j as u32);
            }
        }
        for (i, id) in l.iter().enumerate() {
            let Some(id) = id else { continue };
            for &j in index.get(id.as_str()).into_iter().flatten() {
                if right.is_some() || (j as usize) > i {
                    pairs.push((i as u32, j));
                }
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    (pairs, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, ids: &[&str], containers: &[&str]) -> Table {
        Table {
            name: name.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            columns: vec!["container".into()],
            values: vec![containers.iter().map(|s| s.to_string()).collect()],
        }
    }

    #[test]
    fn valid_containers_link_and_invalid_ones_are_reported() {
        // CSQU3054383 is the standard's example; CSQU3054384 has a wrong check digit.
        let a = table(
            "bookings.csv",
            &["b1", "b2", "b3"],
            &["CSQU 305438 3", "CSQU3054384", ""],
        );
        let b = table(
            "manifest.csv",
            &["m1", "m2"],
            &["csqu-305438-3", "MSKU1234565"],
        );
        let columns = [IdentifierColumn {
            column: "container".into(),
            kind: IdentifierKind::Iso6346,
        }];
        let (links, invalid) = exact_links(&columns, &a, Some(&b));
        assert_eq!(links, vec![(0, 0)]);
        assert!(invalid
            .iter()
            .any(|i| i.record == "b2" && i.source == "bookings.csv"));
        assert!(invalid.iter().all(|i| !i.reason.is_empty()));
        assert!(
            !invalid.iter().any(|i| i.record == "b3"),
            "missing is not invalid"
        );
    }

    #[test]
    fn transport_documents_are_cleaned_and_checked() {
        assert_eq!(
            canonical(IdentifierKind::TransportDocument, "maeu-123 456.789").unwrap(),
            "MAEU123456789"
        );
        assert!(canonical(IdentifierKind::TransportDocument, "12").is_err());
        assert!(canonical(IdentifierKind::TransportDocument, "ABC#12345").is_err());
        assert_eq!(
            canonical(IdentifierKind::Registration, "de 123.456-789").unwrap(),
            "DE123456789"
        );
        assert!(canonical(IdentifierKind::Registration, "ACME LTD").is_err());
        assert!(canonical(IdentifierKind::Registration, "DE12").is_err());
        assert!(canonical(IdentifierKind::Registration, "DE 000 000 000").is_err());
        assert!(canonical(IdentifierKind::Registration, "99999").is_err());
        assert!(canonical(IdentifierKind::Registration, "DE100000000").is_ok());
    }
}
