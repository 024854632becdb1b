//! The JSON exchange format for sharing control results with other administrations.
//!
//! An [`ExchangeDocument`] carries results of one form schema version from one sender:
//!
//! ```json
//! {"format": "borderlens-control-results", "format_version": 2, "schema_version": "1.0.0",
//!  "sender": "NL", "generated_at": "2024-03-02T08:00:00Z", "anonymised": false,
//!  "results": [{"submission_id": "...", "declaration_id": "...", "values": {...},
//!               "context": {"origin_country": "CN", "transport_mode": "10", ...}}]}
//! ```
//!
//! Format version 2 adds each result's optional `context` ([`ResultContext`]): the controlled
//! declaration's origin, departure country, transport mode, HS chapter and the probability with
//! which the selection picked it. None of them names a person or a firm; they are what a
//! partner needs to pool hit rates by route and origin and to weigh a result by its selection.
//! Version 1 documents (no context) are still read.
//!
//! [`export`] builds one from validated results, optionally anonymised with an [`AnonymiseKey`]:
//! submission and declaration ids become keyed pseudonyms (HMAC-SHA256, so the same declaration
//! gets the same pseudonym under the same key and nobody without the key can reverse or confirm
//! a guess), fields marked `"anonymise": "drop"` in the form schema (officer, place, remarks,
//! container and postal ids in v1) are removed, and fields marked `"anonymise": "date"`
//! (`inspected_at`) keep only the local calendar date.
//!
//! [`import`] reads a document back, validating every result with the form schema. In a document
//! with `"anonymised": true`, dropped fields are not required and must be absent, and date fields
//! must be bare dates. Errors name the record and field: `results[3].drug_type: ...`. The JSON
//! Schema of the document is `schema/exchange-v1.schema.json`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use borderlens_domain::hex;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;

use crate::schema::{Anonymise, FormSchema};
use crate::validate::{id_problem, kind, shorten, Envelope, Mode};
use crate::{ControlResult, FieldError, ValidationErrors};

/// The value of `format` in every exchange document.
pub const FORMAT: &str = "borderlens-control-results";

/// The exchange format version this crate writes.
pub const FORMAT_VERSION: u32 = 2;

/// The exchange format versions this crate reads.
pub const READ_VERSIONS: [u32; 2] = [1, 2];

/// The JSON Schema (draft 2020-12) of an exchange document.
pub const JSON_SCHEMA: &str = include_str!("../schema/exchange-v1.schema.json");

/// Longest sender code accepted, in characters.
pub const MAX_SENDER_LENGTH: usize = 64;

/// Shortest anonymisation key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;

/// Why a document could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    /// The text is not JSON.
    #[error("exchange document is not valid JSON: {0}")]
    Json(String),
    /// The document is JSON but not valid: every problem, named by path
    /// (`format_version`, `results[3].drug_type`, ...).
    #[error("exchange document: {0}")]
    Invalid(ValidationErrors),
    /// The results cannot be exported as asked.
    #[error("cannot export: {0}")]
    Export(String),
    /// The anonymisation key is unusable.
    #[error("anonymisation key: {0}")]
    Key(String),
}

/// The secret that turns ids into pseudonyms. Keep it per administration and stable over time if
/// partners should be able to link results of the same declaration across documents; change it
/// to break that linkage. Its `Debug` output does not show the key.
#[derive(Clone)]
pub struct AnonymiseKey(Vec<u8>);

impl fmt::Debug for AnonymiseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AnonymiseKey({} bytes)", self.0.len())
    }
}

impl AnonymiseKey {
    /// A key from secret bytes, at least [`MIN_KEY_BYTES`] long.
    pub fn new(secret: &[u8]) -> Result<AnonymiseKey, ExchangeError> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(ExchangeError::Key(format!(
                "{} bytes, at least {MIN_KEY_BYTES} needed",
                secret.len()
            )));
        }
        Ok(AnonymiseKey(secret.to_vec()))
    }

    /// The pseudonym an anonymised export gives `declaration_id`: 64 lower-case hex digits.
    /// The sender can compute it to recognise feedback about its own declarations.
    pub fn declaration_pseudonym(&self, declaration_id: &str) -> String {
        self.pseudonym("declaration_id", declaration_id)
    }

    /// The pseudonym an anonymised export gives `submission_id`.
    pub fn submission_pseudonym(&self, submission_id: &str) -> String {
        self.pseudonym("submission_id", submission_id)
    }

    fn pseudonym(&self, domain: &str, id: &str) -> String {
        let message = format!("borderlens-controls/{domain}\0{id}");
        hex::encode(&hmac_sha256(&self.0, message.as_bytes()))
    }
}

/// A document of control results for exchange.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeDocument {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] when written by this crate.
    pub format_version: u32,
    /// The form schema version of every result in the document.
    pub schema_version: String,
    /// Who sends it: the administration's code (e.g. an ISO 3166 country code, `NL`).
    pub sender: String,
    /// When the document was made, in UTC.
    #[serde(with = "rfc3339_utc")]
    pub generated_at: DateTime<Utc>,
    /// Whether the results are anonymised (ids pseudonymised, personal fields dropped, dates
    /// truncated). Absent means `false`.
    #[serde(default)]
    pub anonymised: bool,
    /// The results.
    pub results: Vec<ExchangedResult>,
}

/// One control result in an exchange document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangedResult {
    /// The submission id, or its pseudonym.
    pub submission_id: String,
    /// The declaration id, or its pseudonym.
    pub declaration_id: String,
    /// The normalised answers, by field name.
    pub values: BTreeMap<String, Value>,
    /// What the sender knows of the controlled declaration (format version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ResultContext>,
}

/// The controlled declaration's context in an exchange document: attributes of the goods'
/// journey and of the selection, never of a person or a firm (no ids, names, places or
/// officers). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultContext {
    /// Country of origin of the goods (the declared code, e.g. `CN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin_country: Option<String>,
    /// Country the goods were shipped from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departure_country: Option<String>,
    /// The sender's transport mode code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport_mode: Option<String>,
    /// The declared HS chapter (two digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs_chapter: Option<String>,
    /// The probability with which the sender's selection design picked the declaration for
    /// control (absent for an override or a control outside the design).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_probability: Option<f64>,
}

/// Smallest selection probability a context may carry: a control picked with a lower one
/// would outweigh a million others in a design-weighted rate.
pub const MIN_SELECTION_PROBABILITY: f64 = 1e-6;

/// Whether `code` is a country code a context may carry: 2 or 3 upper-case letters (ISO 3166
/// alpha-2 or alpha-3). Nothing longer: a context never carries a name.
pub fn is_country_code(code: &str) -> bool {
    (2..=3).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Whether `code` is a transport mode code a context may carry: 1 to 4 letters or digits.
pub fn is_transport_code(code: &str) -> bool {
    (1..=4).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether `id` looks like a keyed pseudonym: 64 lower-case hex digits (an anonymised
/// document's ids must).
pub fn is_pseudonym(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl ResultContext {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == ResultContext::default()
    }

    /// The route: `departure country/transport mode`, with `?` for what is unknown.
    pub fn route(&self) -> String {
        format!(
            "{}/{}",
            self.departure_country.as_deref().unwrap_or("?"),
            self.transport_mode.as_deref().unwrap_or("?")
        )
    }

    /// Every problem of the fields, named `{prefix}{field}`.
    fn problems(&self, prefix: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        // (field, value, its rule, the rule in words)
        type CodeRule<'a> = (&'a str, &'a Option<String>, fn(&str) -> bool, &'a str);
        let codes: [CodeRule; 3] = [
            (
                "origin_country",
                &self.origin_country,
                is_country_code,
                "2 or 3 upper-case letters",
            ),
            (
                "departure_country",
                &self.departure_country,
                is_country_code,
                "2 or 3 upper-case letters",
            ),
            (
                "transport_mode",
                &self.transport_mode,
                is_transport_code,
                "1 to 4 letters or digits",
            ),
        ];
        for (name, value, valid, rule) in codes {
            if let Some(code) = value {
                if !valid(code) {
                    errors.push(FieldError::new(
                        format!("{prefix}{name}"),
                        format!("'{}' is not a code ({rule})", shorten(code, 24)),
                    ));
                }
            }
        }
        if let Some(chapter) = &self.hs_chapter {
            let two_digits = chapter.len() == 2 && chapter.bytes().all(|b| b.is_ascii_digit());
            if !two_digits || chapter == "00" {
                errors.push(FieldError::new(
                    format!("{prefix}hs_chapter"),
                    format!("'{}' is not an HS chapter (01 to 99)", shorten(chapter, 24)),
                ));
            }
        }
        if let Some(p) = self.selection_probability {
            if !(MIN_SELECTION_PROBABILITY..=1.0).contains(&p) {
                errors.push(FieldError::new(
                    format!("{prefix}selection_probability"),
                    format!("{p} is not a probability in [{MIN_SELECTION_PROBABILITY}, 1]"),
                ));
            }
        }
        errors
    }
}

/// A document read by [`import_document`]: who sent it, when, how, and its results.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedDocument {
    /// The sender's code.
    pub sender: String,
    /// When the sender made it.
    pub generated_at: DateTime<Utc>,
    /// The exchange format version it was written in.
    pub format_version: u32,
    /// The form schema version of its results.
    pub schema_version: String,
    /// Whether it is anonymised.
    pub anonymised: bool,
    /// The validated results, each with its context when the document gave one.
    pub results: Vec<(ControlResult, Option<ResultContext>)>,
}

impl ExchangeDocument {
    /// The document as indented JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain strings, numbers and maps cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// [`export_at`] stamped with the current time.
pub fn export(
    results: &[ControlResult],
    sender: &str,
    anonymise: Option<&AnonymiseKey>,
) -> Result<ExchangeDocument, ExchangeError> {
    let now = DateTime::<Utc>::from(std::time::SystemTime::now());
    export_at(results, sender, anonymise, now)
}

/// Builds an exchange document from validated results, all recorded with the same form schema
/// version (an empty slice gives an empty document for the built-in schema's version).
///
/// With a key, the document is anonymised: ids become keyed pseudonyms, fields the schema marks
/// `"anonymise": "drop"` are removed and `"anonymise": "date"` fields keep only the date. Results
/// that are already anonymised (imported from a partner) can only be exported anonymised.
/// The field rules are read from the built-in schema when its version matches the results, which
/// it must: results of another version are refused (export them with [`export_with_schema`]).
pub fn export_at(
    results: &[ControlResult],
    sender: &str,
    anonymise: Option<&AnonymiseKey>,
    generated_at: DateTime<Utc>,
) -> Result<ExchangeDocument, ExchangeError> {
    export_with_schema(
        FormSchema::builtin(),
        results,
        sender,
        anonymise,
        generated_at,
    )
}

/// [`export_at`] with the form schema the results were recorded with (for versions other than
/// the built-in one).
pub fn export_with_schema(
    schema: &FormSchema,
    results: &[ControlResult],
    sender: &str,
    anonymise: Option<&AnonymiseKey>,
    generated_at: DateTime<Utc>,
) -> Result<ExchangeDocument, ExchangeError> {
    export_with_context(schema, results, &[], sender, anonymise, generated_at)
}

/// [`export_with_schema`] with each result's context: `contexts[i]` goes with `results[i]`
/// (missing or empty ones are left out).
pub fn export_with_context(
    schema: &FormSchema,
    results: &[ControlResult],
    contexts: &[Option<ResultContext>],
    sender: &str,
    anonymise: Option<&AnonymiseKey>,
    generated_at: DateTime<Utc>,
) -> Result<ExchangeDocument, ExchangeError> {
    if contexts.len() > results.len() {
        return Err(ExchangeError::Export(format!(
            "{} contexts for {} results",
            contexts.len(),
            results.len()
        )));
    }
    for (i, context) in contexts.iter().enumerate() {
        if let Some(problem) = context
            .as_ref()
            .and_then(|c| c.problems("").into_iter().next())
        {
            return Err(ExchangeError::Export(format!(
                "results[{i}].context.{problem}"
            )));
        }
    }
    if let Some(problem) = id_problem(sender, MAX_SENDER_LENGTH) {
        return Err(ExchangeError::Export(format!("sender {problem}")));
    }
    for (i, result) in results.iter().enumerate() {
        if result.schema_version() != schema.version() {
            return Err(ExchangeError::Export(format!(
                "results[{i}] was recorded with form schema v{}, the document is for v{}: \
                 export one document per version",
                result.schema_version(),
                schema.version()
            )));
        }
        if result.is_anonymised() && anonymise.is_none() {
            return Err(ExchangeError::Export(format!(
                "results[{i}] is anonymised and can only be exported anonymised"
            )));
        }
    }
    let exchanged = results
        .iter()
        .enumerate()
        .map(|(i, result)| {
            let context = contexts.get(i).cloned().flatten().filter(|c| !c.is_empty());
            match anonymise {
                None => ExchangedResult {
                    submission_id: result.submission_id().to_string(),
                    declaration_id: result.declaration_id().to_string(),
                    values: result.values().clone(),
                    context,
                },
                Some(key) => ExchangedResult {
                    submission_id: key.submission_pseudonym(result.submission_id()),
                    declaration_id: key.declaration_pseudonym(result.declaration_id()),
                    values: anonymised_values(schema, result.values()),
                    context,
                },
            }
        })
        .collect();
    Ok(ExchangeDocument {
        format: FORMAT.to_string(),
        format_version: FORMAT_VERSION,
        schema_version: schema.version().to_string(),
        sender: sender.to_string(),
        generated_at,
        anonymised: anonymise.is_some(),
        results: exchanged,
    })
}

/// The values with `drop` fields removed and `date` fields truncated to the local date.
fn anonymised_values(
    schema: &FormSchema,
    values: &BTreeMap<String, Value>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (name, value) in values {
        let rule = schema
            .field(name)
            .map(|f| f.anonymise)
            .unwrap_or(Anonymise::Drop);
        match rule {
            Anonymise::Keep => {
                out.insert(name.clone(), value.clone());
            }
            Anonymise::Drop => {}
            Anonymise::Date => {
                // A validated date-time field holds RFC 3339 text, or already a bare date.
                let text = value.as_str().unwrap_or_default();
                let date = DateTime::parse_from_rfc3339(text)
                    .map(|t| t.date_naive().format("%Y-%m-%d").to_string())
                    .unwrap_or_else(|_| text.to_string());
                out.insert(name.clone(), Value::String(date));
            }
        }
    }
    out
}

/// Reads an exchange document and validates every result with `schema`, which must be the
/// version the document names. All problems are reported at once, by path; nothing is returned
/// unless every result is valid.
pub fn import(json: &str, schema: &FormSchema) -> Result<Vec<ControlResult>, ExchangeError> {
    Ok(import_document(json, schema)?
        .results
        .into_iter()
        .map(|(result, _)| result)
        .collect())
}

/// [`import`], keeping what the document says of itself (sender, date, format and schema
/// versions, anonymised) and each result's context.
pub fn import_document(json: &str, schema: &FormSchema) -> Result<ImportedDocument, ExchangeError> {
    let document: Value =
        serde_json::from_str(json).map_err(|e| ExchangeError::Json(e.to_string()))?;
    let invalid = |errors: Vec<FieldError>| ExchangeError::Invalid(ValidationErrors(errors));
    let Some(object) = document.as_object() else {
        return Err(invalid(vec![FieldError::new(
            "",
            format!("expected a JSON object, got {}", kind(&document)),
        )]));
    };
    let mut errors = Vec::new();

    // What kind of document this is: stop early when it is not one we can read.
    match object.get("format") {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(other) => errors.push(FieldError::new(
            "format",
            format!("is {}, expected '{FORMAT}'", describe(other)),
        )),
        None => errors.push(FieldError::new("format", "required")),
    }
    let mut format_version = FORMAT_VERSION;
    match object.get("format_version") {
        Some(Value::Number(n))
            if n.as_u64()
                .is_some_and(|v| READ_VERSIONS.iter().any(|&r| u64::from(r) == v)) =>
        {
            format_version = n.as_u64().map_or(FORMAT_VERSION, |v| v as u32);
        }
        Some(other) => errors.push(FieldError::new(
            "format_version",
            format!(
                "{} is not supported (this reader knows {})",
                describe(other),
                READ_VERSIONS.map(|v| v.to_string()).join(" and ")
            ),
        )),
        None => errors.push(FieldError::new("format_version", "required")),
    }
    let schema_version = match object.get("schema_version") {
        Some(Value::String(version)) if version == schema.version() => Some(version.as_str()),
        Some(Value::String(version)) => {
            errors.push(FieldError::new(
                "schema_version",
                format!(
                    "results were recorded with form schema v{}, this import validates with \
                     v{}: load that version's schema",
                    shorten(version, 32),
                    schema.version()
                ),
            ));
            None
        }
        Some(other) => {
            errors.push(FieldError::new(
                "schema_version",
                format!("expected a string, got {}", kind(other)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new("schema_version", "required"));
            None
        }
    };
    if !errors.is_empty() {
        return Err(invalid(errors));
    }

    let mut sender_code = String::new();
    match object.get("sender") {
        Some(Value::String(sender)) => {
            if let Some(problem) = id_problem(sender, MAX_SENDER_LENGTH) {
                errors.push(FieldError::new("sender", problem));
            }
            sender_code = sender.clone();
        }
        Some(other) => errors.push(FieldError::new(
            "sender",
            format!("expected a string, got {}", kind(other)),
        )),
        None => errors.push(FieldError::new("sender", "required")),
    }
    let mut generated_at = DateTime::<Utc>::UNIX_EPOCH;
    match object.get("generated_at") {
        Some(Value::String(text)) => match DateTime::parse_from_rfc3339(text) {
            Ok(at) => generated_at = at.with_timezone(&Utc),
            Err(e) => errors.push(FieldError::new(
                "generated_at",
                format!("'{}' is not an RFC 3339 date-time ({e})", shorten(text, 40)),
            )),
        },
        Some(other) => errors.push(FieldError::new(
            "generated_at",
            format!("expected a string, got {}", kind(other)),
        )),
        None => errors.push(FieldError::new("generated_at", "required")),
    }
    let mode = match object.get("anonymised") {
        None | Some(Value::Bool(false)) => Mode::Recorded,
        Some(Value::Bool(true)) => Mode::Anonymised,
        Some(other) => {
            errors.push(FieldError::new(
                "anonymised",
                format!("expected true or false, got {}", kind(other)),
            ));
            Mode::Recorded
        }
    };
    const KEYS: [&str; 7] = [
        "format",
        "format_version",
        "schema_version",
        "sender",
        "generated_at",
        "anonymised",
        "results",
    ];
    for key in object.keys().filter(|k| !KEYS.contains(&k.as_str())) {
        errors.push(FieldError::new(
            shorten(key, 64),
            "unknown key of an exchange document",
        ));
    }

    let mut imported = Vec::new();
    match object.get("results") {
        Some(Value::Array(results)) => {
            let mut first_seen: BTreeMap<&str, usize> = BTreeMap::new();
            for (i, record) in results.iter().enumerate() {
                let prefix = format!("results[{i}].");
                match check_record(
                    schema,
                    record,
                    schema_version,
                    mode,
                    format_version,
                    &prefix,
                ) {
                    Ok(result) => imported.push(result),
                    Err(ValidationErrors(found)) => errors.extend(found),
                }
                if let Some(id) = record.get("submission_id").and_then(Value::as_str) {
                    if let Some(first) = first_seen.get(id) {
                        errors.push(FieldError::new(
                            format!("{prefix}submission_id"),
                            format!("same as results[{first}]"),
                        ));
                    } else {
                        first_seen.insert(id, i);
                    }
                }
            }
        }
        Some(other) => errors.push(FieldError::new(
            "results",
            format!("expected a list of results, got {}", kind(other)),
        )),
        None => errors.push(FieldError::new("results", "required")),
    }
    if errors.is_empty() {
        Ok(ImportedDocument {
            sender: sender_code,
            generated_at,
            format_version,
            schema_version: schema.version().to_string(),
            anonymised: mode == Mode::Anonymised,
            results: imported,
        })
    } else {
        Err(invalid(errors))
    }
}

/// Validates one record of `results`; its schema version is the document's.
fn check_record(
    schema: &FormSchema,
    record: &Value,
    schema_version: Option<&str>,
    mode: Mode,
    format_version: u32,
    prefix: &str,
) -> Result<(ControlResult, Option<ResultContext>), ValidationErrors> {
    let at = |key: &str| format!("{prefix}{key}");
    let Some(object) = record.as_object() else {
        return Err(ValidationErrors(vec![FieldError::new(
            prefix.trim_end_matches('.'),
            format!("expected an object, got {}", kind(record)),
        )]));
    };
    let mut errors = Vec::new();
    let mut string = |key: &str| match object.get(key) {
        Some(Value::String(text)) => Some(text.as_str()),
        Some(other) => {
            errors.push(FieldError::new(
                at(key),
                format!("expected a string, got {}", kind(other)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(at(key), "required"));
            None
        }
    };
    let submission_id = string("submission_id");
    let declaration_id = string("declaration_id");
    // An anonymised document names results and declarations by keyed pseudonyms only.
    if mode == Mode::Anonymised {
        for (key, id) in [
            ("submission_id", submission_id),
            ("declaration_id", declaration_id),
        ] {
            if id.is_some_and(|id| !is_pseudonym(id)) {
                errors.push(FieldError::new(
                    at(key),
                    "not a keyed pseudonym (64 lower-case hex digits), as an anonymised \
                     document's ids must be",
                ));
            }
        }
    }
    let values = match object.get("values") {
        Some(Value::Object(values)) => Some(values),
        Some(other) => {
            errors.push(FieldError::new(
                at("values"),
                format!("expected an object of answers, got {}", kind(other)),
            ));
            None
        }
        None => {
            errors.push(FieldError::new(at("values"), "required"));
            None
        }
    };
    let mut known: BTreeSet<&str> = ["submission_id", "declaration_id", "values"].into();
    let mut context = None;
    if format_version >= 2 {
        known.insert("context");
        match object.get("context").map(ResultContext::deserialize) {
            None => {}
            Some(Ok(found)) => {
                errors.extend(found.problems(&format!("{prefix}context.")));
                context = Some(found).filter(|c| !c.is_empty());
            }
            Some(Err(e)) => errors.push(FieldError::new(at("context"), e.to_string())),
        }
    }
    for key in object.keys().filter(|k| !known.contains(k.as_str())) {
        errors.push(FieldError::new(
            at(&shorten(key, 64)),
            format!(
                "unknown key (a result has {})",
                known.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let envelope = Envelope {
        submission_id,
        declaration_id,
        schema_version,
        values,
    };
    schema
        .check(envelope, mode, prefix, errors)
        .map(|result| (result, context))
}

/// A JSON value quoted for a message.
fn describe(value: &Value) -> String {
    match value {
        Value::String(text) => format!("'{}'", shorten(text, 40)),
        Value::Number(n) => n.to_string(),
        other => kind(other).to_string(),
    }
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `DateTime<Utc>` as RFC 3339 text with a `Z`, whole seconds unless there is a fraction.
mod rfc3339_utc {
    use super::*;

    pub fn serialize<S: serde::Serializer>(
        value: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&value.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
