//! Validation of a submitted control result against the form schema, the validated result, and
//! its training label.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use borderlens_domain::{ContainerNumber, ControlLabel, S10ItemId};
use chrono::{DateTime, FixedOffset, NaiveDate};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use crate::schema::{
    Anonymise, Condition, FieldDef, FieldType, FormSchema, INSPECTED_AT_FIELD, OUTCOME_FIELD,
};

/// Longest submission or declaration id accepted, in characters.
pub const MAX_ID_LENGTH: usize = 128;

/// Longest text accepted in an identifier field (container number, postal id) before parsing:
/// generous for separators and spaces, small enough to keep messages short.
const MAX_IDENTIFIER_INPUT: usize = 40;

/// How many allowed codes an error message lists before saying how many more there are.
const LISTED_CODES: usize = 10;

/// A control result as submitted by a form or another system, before validation.
///
/// JSON shape: `{"submission_id": "...", "declaration_id": "...", "schema_version": "1.0.0",
/// "values": {"outcome": "contraband", ...}}`; no other keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Unique id of this submission, chosen by the submitting system (idempotency key).
    #[schemars(length(min = 1, max = MAX_ID_LENGTH))]
    pub submission_id: String,
    /// The declaration that was controlled.
    #[schemars(length(min = 1, max = MAX_ID_LENGTH))]
    pub declaration_id: String,
    /// The version of the form schema the result was recorded with.
    pub schema_version: String,
    /// The answers, by field name.
    pub values: Map<String, Value>,
}

/// One problem with a submission: the field at fault (a form field name, an envelope key such as
/// `submission_id`, a path such as `inspection_method[1]` or `results[3].drug_type`, or empty for
/// the document as a whole) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FieldError {
    /// The field at fault.
    pub field: String,
    /// What is wrong, lower-case, no trailing period.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// `field: reason`, or just `reason` when no field is named.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.field, self.reason)
        }
    }
}

/// Every problem found in a submission (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", join(.0))]
pub struct ValidationErrors(pub Vec<FieldError>);

fn join(errors: &[FieldError]) -> String {
    let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    parts.join("; ")
}

impl ValidationErrors {
    /// The problems, in the order found: envelope, then fields in form order, then unknown fields.
    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// The first problem with `field`, if any.
    pub fn get(&self, field: &str) -> Option<&FieldError> {
        self.0.iter().find(|e| e.field == field)
    }

    /// The names of the fields at fault, in order, without repeats.
    pub fn fields(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.0
            .iter()
            .map(|e| e.field.as_str())
            .filter(|f| seen.insert(*f))
            .collect()
    }
}

/// A validated control result: every answer checked against the form schema it names, and
/// normalised (codes lower-case, container and postal ids canonical, date-times in RFC 3339 form;
/// text exactly as given). Only [`FormSchema::validate`], [`FormSchema::parse_submission`] and
/// [`crate::exchange::import`] make one.
///
/// Free text (remarks, brand, ...) is stored as typed, never escaped or trimmed: escaping belongs
/// to whatever renders it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControlResult {
    submission_id: String,
    declaration_id: String,
    schema_version: String,
    outcome: String,
    #[serde(serialize_with = "serialize_datetime")]
    inspected_at: DateTime<FixedOffset>,
    anonymised: bool,
    values: BTreeMap<String, Value>,
}

fn serialize_datetime<S: serde::Serializer>(
    value: &DateTime<FixedOffset>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&value.to_rfc3339())
}

impl ControlResult {
    /// The submitting system's id of this result (a pseudonym in anonymised results).
    pub fn submission_id(&self) -> &str {
        &self.submission_id
    }

    /// The controlled declaration (a keyed pseudonym in anonymised results).
    pub fn declaration_id(&self) -> &str {
        &self.declaration_id
    }

    /// The form schema version the result was recorded with.
    pub fn schema_version(&self) -> &str {
        &self.schema_version
    }

    /// The outcome code, e.g. `contraband`.
    pub fn outcome(&self) -> &str {
        &self.outcome
    }

    /// When the control took place, with the offset it was recorded in. For anonymised results
    /// only the date is known: this is midnight at offset +00:00 of that date.
    pub fn inspected_at(&self) -> DateTime<FixedOffset> {
        self.inspected_at
    }

    /// Whether the result came from an anonymised exchange document: ids are pseudonyms, the
    /// fields marked `anonymise: drop` are absent and `inspected_at` holds only the date.
    pub fn is_anonymised(&self) -> bool {
        self.anonymised
    }

    /// Every answered field, normalised, by name (including `outcome` and `inspected_at`).
    pub fn values(&self) -> &BTreeMap<String, Value> {
        &self.values
    }

    /// The answer to `field`, if given.
    pub fn value(&self, field: &str) -> Option<&Value> {
        self.values.get(field)
    }

    /// The code chosen in the `code` field `field`, if answered.
    pub fn code(&self, field: &str) -> Option<&str> {
        self.values.get(field).and_then(Value::as_str)
    }

    /// The result as stored and digested (`payload_json`): compact JSON with the keys
    /// `submission_id`, `declaration_id`, `schema_version`, `outcome`, `inspected_at`,
    /// `anonymised` and `values` in this order, the answers by name. The text is part of the
    /// idempotency contract (a retry is recognised by the SHA-256 of this text), so it must not
    /// change for the same result; [`FormSchema::read_stored`] reads it back.
    pub fn to_json(&self) -> String {
        // Strings, a bool and JSON values keyed by strings: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The result as a submission again; validating it with the same schema (and mode) gives an
    /// equal result.
    pub fn to_submission(&self) -> Submission {
        Submission {
            submission_id: self.submission_id.clone(),
            declaration_id: self.declaration_id.clone(),
            schema_version: self.schema_version.clone(),
            values: self
                .values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The training label of this result, read from the code lists of `schema`:
    /// - `None` when the outcome gives no label (`not_controlled`: nothing is known about the
    ///   goods), or when `schema` is not the version the result was recorded with (a hit in one
    ///   version need not be one in another: label with the schema the result names);
    /// - `fraud` is the outcome's `hit` flag;
    /// - `critical` is 0 without a hit, 2 for a hit where any chosen code is marked critical
    ///   (drugs, weapons, explosives, precursors in v1), 1 for any other hit.
    pub fn label(&self, schema: &FormSchema) -> Option<ControlLabel> {
        if schema.version() != self.schema_version {
            return None;
        }
        let hit = schema.code_of(OUTCOME_FIELD, &self.outcome)?.hit?;
        if !hit {
            return Some(ControlLabel {
                fraud: false,
                critical: 0,
            });
        }
        let is_critical = |field: &str, code: &Value| {
            code.as_str()
                .and_then(|c| schema.code_of(field, c))
                .is_some_and(|c| c.critical)
        };
        let critical = self.values.iter().any(|(field, value)| match value {
            Value::Array(codes) => codes.iter().any(|c| is_critical(field, c)),
            code => is_critical(field, code),
        });
        Some(ControlLabel {
            fraud: true,
            critical: if critical { 2 } else { 1 },
        })
    }
}

/// Which rules apply to the values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// As recorded by the administration: every required field is required.
    Recorded,
    /// From an anonymised exchange document: `anonymise: drop` fields must be absent (and are not
    /// required), `anonymise: date` fields hold only a date.
    Anonymised,
}

/// The envelope of a submission as found; `None` means missing or malformed, already reported.
pub(crate) struct Envelope<'a> {
    pub submission_id: Option<&'a str>,
    pub declaration_id: Option<&'a str>,
    pub schema_version: Option<&'a str>,
    pub values: Option<&'a Map<String, Value>>,
}

/// The keys of a submission, all of them required.
const ENVELOPE_KEYS: [&str; 4] = [
    "submission_id",
    "declaration_id",
    "schema_version",
    "values",
];

/// Whether `object` is a well-shaped submission: the three envelope strings, an object of
/// answers, nothing else.
fn is_envelope(object: &Map<String, Value>) -> bool {
    object.len() == ENVELOPE_KEYS.len()
        && ENVELOPE_KEYS[..3]
            .iter()
            .all(|key| matches!(object.get(*key), Some(Value::String(_))))
        && matches!(object.get("values"), Some(Value::Object(_)))
}

/// What [`ControlResult::to_json`] writes, as far as reading it back needs (`outcome` and
/// `inspected_at` are in `values` too).
#[derive(Deserialize)]
struct StoredForm {
    submission_id: String,
    declaration_id: String,
    schema_version: String,
    #[serde(default)]
    anonymised: bool,
    values: Map<String, Value>,
}

impl FormSchema {
    /// Checks a submission against this form schema and normalises it. On failure every problem
    /// is reported, each naming its field.
    pub fn validate(&self, submission: &Submission) -> Result<ControlResult, ValidationErrors> {
        let envelope = Envelope {
            submission_id: Some(&submission.submission_id),
            declaration_id: Some(&submission.declaration_id),
            schema_version: Some(&submission.schema_version),
            values: Some(&submission.values),
        };
        self.check(envelope, Mode::Recorded, "", Vec::new())
    }

    /// Parses a submission from JSON text and validates it: [`FormSchema::read_submission`] then
    /// [`FormSchema::validate`]. Syntax errors are reported with field `""`; a wrong shape (not an
    /// object, a missing or mistyped envelope key, an unknown key) names the key, together with
    /// the problems of the answers.
    pub fn parse_submission(&self, json: &str) -> Result<ControlResult, ValidationErrors> {
        let value: Value = serde_json::from_str(json).map_err(|e| {
            ValidationErrors(vec![FieldError::new("", format!("not valid JSON: {e}"))])
        })?;
        self.validate(&self.read_submission(value)?)
    }

    /// Reads a submission from JSON that a caller has parsed (an HTTP body, a line of a file):
    /// the envelope's shape only, taking the value apart without copying the answers. The
    /// answers are checked by [`FormSchema::validate`] afterwards.
    ///
    /// When the shape is wrong (not an object, a missing or mistyped envelope key, an unknown
    /// key) every problem is reported at once, the answers' included, exactly as
    /// [`FormSchema::parse_submission`] reports them: one round trip names them all.
    pub fn read_submission(&self, value: Value) -> Result<Submission, ValidationErrors> {
        let value = match value {
            Value::Object(mut object) if is_envelope(&object) => {
                let mut text = |key: &str| match object.remove(key) {
                    Some(Value::String(text)) => text,
                    // `is_envelope` has checked every key.
                    _ => String::new(),
                };
                let submission_id = text("submission_id");
                let declaration_id = text("declaration_id");
                let schema_version = text("schema_version");
                let Some(Value::Object(values)) = object.remove("values") else {
                    return Err(ValidationErrors(vec![FieldError::new(
                        "values",
                        "expected an object of answers",
                    )]));
                };
                return Ok(Submission {
                    submission_id,
                    declaration_id,
                    schema_version,
                    values,
                });
            }
            other => other,
        };
        match self.check_value(&value, Mode::Recorded, "") {
            Err(errors) => Err(errors),
            // Unreachable: a value that is not an envelope always has a shape problem.
            Ok(_) => Err(ValidationErrors(vec![FieldError::new(
                "",
                "not a submission",
            )])),
        }
    }

    /// Reads back a result stored as [`ControlResult::to_json`] wrote it and validates it again
    /// with this schema (in the mode it was recorded in: an anonymised result stays one), so that
    /// what comes out of storage is as checked as what went in.
    pub fn read_stored(&self, payload_json: &str) -> Result<ControlResult, ValidationErrors> {
        let stored: StoredForm = serde_json::from_str(payload_json).map_err(|e| {
            ValidationErrors(vec![FieldError::new(
                "",
                format!("not a stored control result: {e}"),
            )])
        })?;
        let envelope = Envelope {
            submission_id: Some(&stored.submission_id),
            declaration_id: Some(&stored.declaration_id),
            schema_version: Some(&stored.schema_version),
            values: Some(&stored.values),
        };
        let mode = if stored.anonymised {
            Mode::Anonymised
        } else {
            Mode::Recorded
        };
        self.check(envelope, mode, "", Vec::new())
    }

    /// Validates a submission given as a JSON value; field names in errors are prefixed with
    /// `prefix` (e.g. `results[3].`).
    pub(crate) fn check_value(
        &self,
        value: &Value,
        mode: Mode,
        prefix: &str,
    ) -> Result<ControlResult, ValidationErrors> {
        let mut errors = Vec::new();
        let Some(object) = value.as_object() else {
            let at = prefix.trim_end_matches('.');
            errors.push(FieldError::new(
                at,
                format!("expected a JSON object, got {}", kind(value)),
            ));
            return Err(ValidationErrors(errors));
        };
        let mut string = |key: &str| match object.get(key) {
            None => {
                errors.push(FieldError::new(format!("{prefix}{key}"), "required"));
                None
            }
            Some(Value::String(text)) => Some(text.as_str()),
            Some(other) => {
                errors.push(FieldError::new(
                    format!("{prefix}{key}"),
                    format!("expected a string, got {}", kind(other)),
                ));
                None
            }
        };
        let submission_id = string("submission_id");
        let declaration_id = string("declaration_id");
        let schema_version = string("schema_version");
        let values = match object.get("values") {
            None => {
                errors.push(FieldError::new(format!("{prefix}values"), "required"));
                None
            }
            Some(Value::Object(values)) => Some(values),
            Some(other) => {
                errors.push(FieldError::new(
                    format!("{prefix}values"),
                    format!("expected an object of answers, got {}", kind(other)),
                ));
                None
            }
        };
        for key in object.keys() {
            if !ENVELOPE_KEYS.contains(&key.as_str()) {
                errors.push(FieldError::new(
                    format!("{prefix}{}", shorten(key, 64)),
                    "unknown key (a submission has submission_id, declaration_id, \
                     schema_version and values; form fields go in values)",
                ));
            }
        }
        let envelope = Envelope {
            submission_id,
            declaration_id,
            schema_version,
            values,
        };
        self.check(envelope, mode, prefix, errors)
    }

    /// The validation proper; `errors` holds problems already found in the envelope's shape.
    pub(crate) fn check(
        &self,
        envelope: Envelope<'_>,
        mode: Mode,
        prefix: &str,
        mut errors: Vec<FieldError>,
    ) -> Result<ControlResult, ValidationErrors> {
        let at = |field: &str| format!("{prefix}{field}");
        for (key, id) in [
            ("submission_id", envelope.submission_id),
            ("declaration_id", envelope.declaration_id),
        ] {
            if let Some(reason) = id.and_then(|id| id_problem(id, MAX_ID_LENGTH)) {
                errors.push(FieldError::new(at(key), reason));
            }
        }
        if let Some(version) = envelope.schema_version {
            if version != self.version() {
                errors.push(FieldError::new(
                    at("schema_version"),
                    format!(
                        "'{}' does not match the form schema used to validate, v{} (validate \
                         with the schema version the result was recorded with)",
                        shorten(version, 32),
                        self.version()
                    ),
                ));
            }
        }
        let answers = match envelope.values {
            Some(values) => self.check_values(values, mode, prefix, &BTreeMap::new(), &mut errors),
            None => BTreeMap::new(),
        };
        if !errors.is_empty() {
            return Err(ValidationErrors(errors));
        }
        let (Some(submission_id), Some(declaration_id), Some(schema_version)) = (
            envelope.submission_id,
            envelope.declaration_id,
            envelope.schema_version,
        ) else {
            // Unreachable: a missing envelope key is always reported as an error above.
            return Err(ValidationErrors(vec![FieldError::new(
                prefix,
                "incomplete submission",
            )]));
        };
        let outcome = answers
            .get(OUTCOME_FIELD)
            .and_then(Value::as_str)
            .map(str::to_string);
        let inspected_at = answers
            .get(INSPECTED_AT_FIELD)
            .and_then(Value::as_str)
            .and_then(parse_stored_datetime);
        let (Some(outcome), Some(inspected_at)) = (outcome, inspected_at) else {
            // Unreachable: the schema makes both required, always asked, of the right type.
            return Err(ValidationErrors(vec![FieldError::new(
                at(OUTCOME_FIELD),
                "outcome and inspected_at could not be read",
            )]));
        };
        Ok(ControlResult {
            submission_id: submission_id.to_string(),
            declaration_id: declaration_id.to_string(),
            schema_version: schema_version.to_string(),
            outcome,
            inspected_at,
            anonymised: mode == Mode::Anonymised,
            values: answers,
        })
    }

    /// Checks every answer in form order, then reports unknown fields. Returns the normalised
    /// answers of the fields that are asked.
    ///
    /// `unreadable` holds fields whose answer was given but could not be read (see
    /// [`crate::coerce`]) with their problems: these are reported in the field's place, and the
    /// field counts as refused (its follow-ups are neither required nor refused).
    pub(crate) fn check_values(
        &self,
        values: &Map<String, Value>,
        mode: Mode,
        prefix: &str,
        unreadable: &BTreeMap<&str, Vec<FieldError>>,
        errors: &mut Vec<FieldError>,
    ) -> BTreeMap<String, Value> {
        let mut answers: BTreeMap<String, Value> = BTreeMap::new();
        // Fields whose answer is invalid or not allowed: conditions on them are undecided, so
        // their follow-ups are type-checked but neither required nor refused.
        let mut broken: BTreeSet<&str> = BTreeSet::new();
        for field in self.fields() {
            let name = field.name.as_str();
            let at = format!("{prefix}{name}");
            if let Some(problems) = unreadable.get(name) {
                errors.extend(problems.iter().cloned());
                broken.insert(name);
                continue;
            }
            let given = values.get(name).filter(|v| !is_blank(v));
            let asked = match &field.when {
                None => Some(true),
                Some(condition) => evaluate(condition, &answers, &broken),
            };
            let dropped = mode == Mode::Anonymised && field.anonymise == Anonymise::Drop;
            let Some(given) = given else {
                if asked == Some(true) && field.required && !dropped {
                    let reason = match &field.when {
                        None => "required".to_string(),
                        Some(condition) => format!("required when {condition}"),
                    };
                    errors.push(FieldError::new(at, reason));
                }
                continue;
            };
            if asked == Some(false) {
                let condition = field
                    .when
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                errors.push(FieldError::new(at, format!("only asked when {condition}")));
                broken.insert(name);
                continue;
            }
            if dropped {
                errors.push(FieldError::new(
                    at,
                    "removed by anonymisation: must not appear in an anonymised result",
                ));
                broken.insert(name);
                continue;
            }
            match self.normalise(field, given, mode) {
                Ok(value) if asked == Some(true) => {
                    answers.insert(name.to_string(), value);
                }
                Ok(_) => {
                    broken.insert(name);
                }
                Err(problems) => {
                    for (suffix, reason) in problems {
                        errors.push(FieldError::new(format!("{at}{suffix}"), reason));
                    }
                    broken.insert(name);
                }
            }
        }
        for key in values.keys() {
            if self.field(key).is_none() {
                errors.push(FieldError::new(
                    format!("{prefix}{}", shorten(key, 64)),
                    self.unknown_field_reason(key),
                ));
            }
        }
        answers
    }

    /// Why `key` is refused as an answer: no such field, with a hint at the nearest one.
    pub(crate) fn unknown_field_reason(&self, key: &str) -> String {
        let mut reason = format!("not in form schema v{}", self.version());
        if let Some(close) = self.closest_field(key) {
            reason.push_str(&format!(" (did you mean {close}?)"));
        }
        reason
    }

    /// The field name nearest to `unknown` (edit distance at most 2, or 3 for long names).
    fn closest_field(&self, unknown: &str) -> Option<&str> {
        if unknown.chars().count() > 64 {
            return None;
        }
        let limit = if unknown.len() >= 10 { 3 } else { 2 };
        self.fields()
            .iter()
            .map(|f| {
                (
                    edit_distance(&unknown.to_lowercase(), &f.name),
                    f.name.as_str(),
                )
            })
            .filter(|(d, _)| *d <= limit)
            .min_by_key(|(d, _)| *d)
            .map(|(_, name)| name)
    }

    /// Checks one answer against its field's type and normalises it. Errors are (path suffix,
    /// reason) pairs; the suffix is `[i]` for an item of a `codes` list.
    fn normalise(
        &self,
        field: &FieldDef,
        given: &Value,
        mode: Mode,
    ) -> Result<Value, Vec<(String, String)>> {
        let one = |reason: String| vec![(String::new(), reason)];
        let wrong_type = || {
            one(format!(
                "expected {}, got {}",
                expected(field.kind),
                kind(given)
            ))
        };
        match field.kind {
            FieldType::Code => {
                let Value::String(text) = given else {
                    return Err(wrong_type());
                };
                self.normalise_code(field, text)
                    .map(Value::String)
                    .map_err(one)
            }
            FieldType::Codes => {
                let Value::Array(items) = given else {
                    return Err(wrong_type());
                };
                let mut problems = Vec::new();
                let mut codes: Vec<String> = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    let suffix = format!("[{i}]");
                    let Value::String(text) = item else {
                        problems.push((suffix, format!("expected a code, got {}", kind(item))));
                        continue;
                    };
                    match self.normalise_code(field, text) {
                        Ok(code) if codes.contains(&code) => {
                            problems.push((suffix, format!("'{code}' is given twice")))
                        }
                        Ok(code) => codes.push(code),
                        Err(reason) => problems.push((suffix, reason)),
                    }
                }
                if problems.is_empty() {
                    Ok(Value::Array(codes.into_iter().map(Value::String).collect()))
                } else {
                    Err(problems)
                }
            }
            FieldType::Text => {
                let Value::String(text) = given else {
                    return Err(wrong_type());
                };
                let limit = field.max_length.unwrap_or(usize::MAX);
                let length = text.chars().count();
                if length > limit {
                    return Err(one(format!("{length} characters, at most {limit} allowed")));
                }
                let allowed = |c: char| field.multiline && matches!(c, '\n' | '\r' | '\t');
                if let Some(c) = text.chars().find(|&c| c.is_control() && !allowed(c)) {
                    let what = if field.multiline {
                        "a control character"
                    } else {
                        "a line break or control character"
                    };
                    return Err(one(format!("contains {what} (U+{:04X})", u32::from(c))));
                }
                Ok(given.clone())
            }
            FieldType::Number => {
                let Value::Number(number) = given else {
                    return Err(wrong_type());
                };
                let value = number.as_f64().filter(|v| v.is_finite());
                let Some(value) = value else {
                    return Err(one("not a finite number".to_string()));
                };
                check_range(field, value).map_err(one)?;
                // Finite, so `from_f64` succeeds.
                Number::from_f64(value)
                    .map(Value::Number)
                    .ok_or_else(|| one("not a finite number".into()))
            }
            FieldType::Integer => {
                let Value::Number(number) = given else {
                    return Err(wrong_type());
                };
                let float = number.as_f64().unwrap_or(f64::NAN);
                let whole = match number.as_i64() {
                    Some(whole) => whole,
                    None if !float.is_finite() => {
                        return Err(one("not a finite number".to_string()))
                    }
                    None if float.fract() != 0.0 => {
                        return Err(one(format!(
                            "expected a whole number, got {}",
                            show_number(float)
                        )))
                    }
                    None if float.abs() <= 9_007_199_254_740_992.0 => float as i64,
                    None => return Err(one(format!("{} is too large", show_number(float)))),
                };
                check_range(field, whole as f64).map_err(one)?;
                Ok(Value::from(whole))
            }
            FieldType::Datetime => {
                let Value::String(text) = given else {
                    return Err(wrong_type());
                };
                if mode == Mode::Anonymised && field.anonymise == Anonymise::Date {
                    return NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
                        .map(|date| Value::String(date.format("%Y-%m-%d").to_string()))
                        .map_err(|_| {
                            one(format!(
                                "'{}' is not a date YYYY-MM-DD (anonymised results carry only \
                                 the date)",
                                shorten(text, 40)
                            ))
                        });
                }
                DateTime::parse_from_rfc3339(text.trim())
                    .map(|t| Value::String(t.to_rfc3339()))
                    .map_err(|e| {
                        one(format!(
                            "'{}' is not an RFC 3339 date-time such as 2024-03-01T10:15:00+01:00 \
                             ({e})",
                            shorten(text, 40)
                        ))
                    })
            }
            FieldType::ContainerNumber | FieldType::S10Id => {
                let Value::String(text) = given else {
                    return Err(wrong_type());
                };
                // Identifier parsers quote the text they get: keep huge inputs out of messages.
                let length = text.chars().count();
                if length > MAX_IDENTIFIER_INPUT {
                    return Err(one(format!(
                        "{length} characters, too long for {}",
                        expected(field.kind).trim_end_matches(" (a string)")
                    )));
                }
                let canonical = if field.kind == FieldType::ContainerNumber {
                    ContainerNumber::parse(text).map(|c| c.as_str().to_string())
                } else {
                    S10ItemId::parse(text).map(|c| c.as_str().to_string())
                };
                canonical.map(Value::String).map_err(|e| one(e.to_string()))
            }
        }
    }

    /// A code of the field's list, matched case-insensitively, returned lower-case.
    fn normalise_code(&self, field: &FieldDef, text: &str) -> Result<String, String> {
        let list_name = field.code_list.as_deref().unwrap_or_default();
        let list = self.code_list(list_name).unwrap_or_default();
        let code = text.trim().to_lowercase();
        if list.iter().any(|c| c.code == code) {
            return Ok(code);
        }
        let shown: Vec<&str> = list
            .iter()
            .take(LISTED_CODES)
            .map(|c| c.code.as_str())
            .collect();
        let more = list.len().saturating_sub(LISTED_CODES);
        let tail = if more > 0 {
            format!(", ... and {more} more")
        } else {
            String::new()
        };
        Err(format!(
            "'{}' is not in code list {list_name} (allowed: {}{tail})",
            shorten(text, 40),
            shown.join(", ")
        ))
    }
}

/// Whether the condition holds for the answers so far: `None` when it depends on a field whose
/// answer was refused.
pub(crate) fn evaluate(
    condition: &Condition,
    answers: &BTreeMap<String, Value>,
    broken: &BTreeSet<&str>,
) -> Option<bool> {
    match condition {
        Condition::In { field, codes } => {
            if broken.contains(field.as_str()) {
                return None;
            }
            let matches = |v: &Value| v.as_str().is_some_and(|c| codes.iter().any(|x| x == c));
            Some(match answers.get(field) {
                None => false,
                Some(Value::Array(chosen)) => chosen.iter().any(matches),
                Some(value) => matches(value),
            })
        }
        Condition::All(list) => {
            let results: Vec<Option<bool>> =
                list.iter().map(|c| evaluate(c, answers, broken)).collect();
            if results.contains(&Some(false)) {
                Some(false)
            } else if results.contains(&None) {
                None
            } else {
                Some(true)
            }
        }
        Condition::Any(list) => {
            let results: Vec<Option<bool>> =
                list.iter().map(|c| evaluate(c, answers, broken)).collect();
            if results.contains(&Some(true)) {
                Some(true)
            } else if results.contains(&None) {
                None
            } else {
                Some(false)
            }
        }
    }
}

/// Reads back a stored `inspected_at`: RFC 3339, or a bare date (anonymised) as midnight +00:00.
fn parse_stored_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    let utc = FixedOffset::east_opt(0)?;
    date.and_hms_opt(0, 0, 0)?.and_local_timezone(utc).single()
}

/// Why `id` is not an acceptable identifier (submission, declaration, sender), if it is not.
pub(crate) fn id_problem(id: &str, max: usize) -> Option<String> {
    if id.trim().is_empty() {
        return Some("must not be empty".to_string());
    }
    let length = id.chars().count();
    if length > max {
        return Some(format!("{length} characters, at most {max} allowed"));
    }
    id.chars()
        .find(|c| c.is_control())
        .map(|c| format!("contains a control character (U+{:04X})", u32::from(c)))
}

/// A missing answer: absent, `null`, a blank string or an empty list.
fn is_blank(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.trim().is_empty(),
        Value::Array(items) => items.is_empty(),
        _ => false,
    }
}

fn check_range(field: &FieldDef, value: f64) -> Result<(), String> {
    if let Some(min) = field.min.filter(|&min| value < min) {
        return Err(format!(
            "{} is below the minimum {}",
            show_number(value),
            show_number(min)
        ));
    }
    if let Some(max) = field.max.filter(|&max| value > max) {
        return Err(format!(
            "{} is above the maximum {}",
            show_number(value),
            show_number(max)
        ));
    }
    Ok(())
}

/// A number for messages: plain for ordinary magnitudes, scientific for huge or tiny ones.
fn show_number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude != 0.0 && !(1e-6..1e15).contains(&magnitude) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// What a field of this type expects, for messages.
fn expected(kind: FieldType) -> &'static str {
    match kind {
        FieldType::Code => "a code (a string)",
        FieldType::Codes => "a list of codes",
        FieldType::Text => "text (a string)",
        FieldType::Number => "a number",
        FieldType::Integer => "a whole number",
        FieldType::Datetime => "a date-time (a string)",
        FieldType::ContainerNumber => "a container number (a string)",
        FieldType::S10Id => "a postal item id (a string)",
    }
}

/// The JSON kind of a value, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// User text quoted in a message: at most `max` characters, control characters escaped.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max {
        out.push_str("...");
    }
    out
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
pub(crate) mod tests;
