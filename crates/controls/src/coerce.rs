//! Answers typed as text (the fields of a web form, `--set field=value` on the command line)
//! turned into the JSON values of a submission, by the type the form schema gives each field.
//! One set of rules for every form that sends text; what the answers mean is judged afterwards
//! by [`FormSchema::validate`].

use std::collections::BTreeMap;

use chrono::{FixedOffset, NaiveDateTime};
use serde_json::{Map, Number, Value};

use crate::schema::{FieldDef, FieldType, FormSchema};
use crate::validate::{shorten, FieldError, Mode, ValidationErrors};

/// Reads `(field, text)` answers into the `values` of a [`crate::Submission`], the field's type
/// deciding what the text becomes:
///
/// - **text**: the text exactly as typed (not trimmed; `123` stays the text `123`);
/// - **code**, **container_number**, **s10_id**: the text as typed, a JSON string (validation
///   trims, matches codes case-insensitively and canonicalises identifiers);
/// - **codes**: every answer to the field, each either codes separated by commas (`a, b`) or a
///   JSON list of strings (`["a", "b"]`), in order; an empty item (`a,,b`) is refused;
/// - **number**, **integer**: a decimal number, `-`, digits, an optional fraction, an optional
///   exponent (`12`, `-0.5`, `.5`, `1e3`: what JSON and HTML number inputs write); anything else
///   (`12 kg`, `+5`, `5.`, `inf`, `0x10`) is refused, and so is a number too large for a
///   double. Whole numbers become JSON integers;
/// - **datetime**: the text as typed, except that with `local_offset` a local date-time without
///   an offset (`2024-03-01T10:15`, `2024-03-01T10:15:30`, what an HTML `datetime-local` input
///   sends) gets that offset (`2024-03-01T10:15:00+01:00`). Without `local_offset` the offset
///   must be typed.
///
/// A blank answer (empty or spaces only) is no answer: the field is left out, and the schema
/// says whether it was required. A field answered more than once (other than a `codes` field)
/// is refused, and so is a name that is not a field of the form. Field names are trimmed.
///
/// On failure every problem is reported, each naming its field (`quantity`,
/// `inspection_method[2]`): those of the answers that could not be read, and, so that one
/// round trip names them all, those [`FormSchema::validate`] finds in the answers that could
/// be read (an answer that depends on an unreadable one is neither required nor refused). On
/// success nothing is validated yet: the caller sends the values on for validation.
pub fn coerce<I, K, V>(
    schema: &FormSchema,
    answers: I,
    local_offset: Option<FixedOffset>,
) -> Result<Map<String, Value>, ValidationErrors>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let mut given: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut unknown: Vec<String> = Vec::new();
    for (name, text) in answers {
        let name = name.as_ref().trim();
        let text = text.as_ref();
        match schema.field(name) {
            None if !unknown.iter().any(|u| u == name) => unknown.push(name.to_string()),
            None => {}
            Some(_) if text.trim().is_empty() => {}
            Some(field) => given
                .entry(field.name.as_str())
                .or_default()
                .push(text.to_string()),
        }
    }
    let mut values = Map::new();
    let mut unreadable: BTreeMap<&str, Vec<FieldError>> = BTreeMap::new();
    for field in schema.fields() {
        let Some(texts) = given.get(field.name.as_str()) else {
            continue;
        };
        match read(field, texts, local_offset) {
            Ok(value) => {
                values.insert(field.name.clone(), value);
            }
            Err(problems) => {
                let problems = problems
                    .into_iter()
                    .map(|(suffix, reason)| {
                        FieldError::new(format!("{}{suffix}", field.name), reason)
                    })
                    .collect();
                unreadable.insert(&field.name, problems);
            }
        }
    }
    if unreadable.is_empty() && unknown.is_empty() {
        return Ok(values);
    }
    let mut errors = Vec::new();
    schema.check_values(&values, Mode::Recorded, "", &unreadable, &mut errors);
    for name in &unknown {
        errors.push(FieldError::new(
            shorten(name, 64),
            schema.unknown_field_reason(name),
        ));
    }
    Err(ValidationErrors(errors))
}

/// The JSON value of one field's (non-blank) answers. Errors are (path suffix, reason) pairs;
/// the suffix is `[i]` for an item of a `codes` list.
fn read(
    field: &FieldDef,
    texts: &[String],
    local_offset: Option<FixedOffset>,
) -> Result<Value, Vec<(String, String)>> {
    let one = |reason: String| vec![(String::new(), reason)];
    if field.kind == FieldType::Codes {
        return read_codes(texts);
    }
    let [text] = texts else {
        return Err(one(format!(
            "answered {} times, give one answer",
            texts.len()
        )));
    };
    match field.kind {
        FieldType::Number | FieldType::Integer => read_number(text.trim()).map_err(one),
        FieldType::Datetime => Ok(Value::String(
            local_offset
                .and_then(|offset| complete_local(text.trim(), offset))
                .unwrap_or_else(|| text.clone()),
        )),
        FieldType::Code
        | FieldType::Codes
        | FieldType::Text
        | FieldType::ContainerNumber
        | FieldType::S10Id => Ok(Value::String(text.clone())),
    }
}

/// Codes separated by commas, or a JSON list of strings, from every answer in order.
fn read_codes(texts: &[String]) -> Result<Value, Vec<(String, String)>> {
    let mut codes: Vec<Value> = Vec::new();
    let mut problems = Vec::new();
    for text in texts {
        let trimmed = text.trim();
        if trimmed.starts_with('[') {
            match serde_json::from_str::<Vec<String>>(trimmed) {
                Ok(list) => codes.extend(list.into_iter().map(Value::String)),
                Err(_) => problems.push((
                    String::new(),
                    format!(
                        "'{}' is not a JSON list of codes such as [\"a\", \"b\"]",
                        shorten(trimmed, 40)
                    ),
                )),
            }
            continue;
        }
        for item in text.split(',') {
            let item = item.trim();
            if item.is_empty() {
                problems.push((
                    format!("[{}]", codes.len()),
                    "empty item (codes are separated by commas)".to_string(),
                ));
            }
            codes.push(Value::String(item.to_string()));
        }
    }
    if problems.is_empty() {
        Ok(Value::Array(codes))
    } else {
        Err(problems)
    }
}

/// A decimal number as JSON: an integer when the text is one, else a double.
fn read_number(text: &str) -> Result<Value, String> {
    if !is_decimal(text) {
        return Err(format!(
            "'{}' is not a number (digits, with . for decimals)",
            shorten(text, 40)
        ));
    }
    // JSON's grammar first, so that a number reads as it does in a JSON submission.
    if let Ok(number) = serde_json::from_str::<Number>(text) {
        return Ok(Value::Number(number));
    }
    // What JSON does not write but HTML does (`05`, `.5`), or out of a double's range.
    if let Ok(whole) = text.parse::<i64>() {
        return Ok(Value::from(whole));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
        .ok_or_else(|| format!("'{}' is too large a number", shorten(text, 40)))
}

/// `-?(digits(.digits)? | .digits)([eE][+-]?digits)?`: what JSON and HTML number inputs write.
fn is_decimal(text: &str) -> bool {
    fn digits(bytes: &[u8]) -> bool {
        !bytes.is_empty() && bytes.iter().all(u8::is_ascii_digit)
    }
    let unsigned = text.strip_prefix('-').unwrap_or(text).as_bytes();
    let (mantissa, exponent) = match unsigned.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => {
            let (whole, fraction) = (&mantissa[..at], &mantissa[at + 1..]);
            (whole.is_empty() || digits(whole)) && digits(fraction)
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e
            .strip_prefix(b"+")
            .or_else(|| e.strip_prefix(b"-"))
            .unwrap_or(e);
        digits(e)
    });
    mantissa_ok && exponent_ok
}

/// A local date-time without offset (`2024-03-01T10:15`, seconds and fractions optional) at
/// `offset`, as RFC 3339; `None` for anything else.
fn complete_local(text: &str, offset: FixedOffset) -> Option<String> {
    let b = text.as_bytes();
    let layout = b.len() >= 16
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && (b.len() == 16 || b[16] == b':');
    if !layout {
        return None;
    }
    let local = [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
    ]
    .iter()
    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())?;
    local
        .and_local_timezone(offset)
        .single()
        .map(|t| t.to_rfc3339())
}

#[cfg(test)]
mod tests;
