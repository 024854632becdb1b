//! The control result form as data: fields, code lists and conditional follow-ups, loaded from a
//! versioned JSON file and checked on load.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The value of the `"schema"` key of every form schema file.
pub const SCHEMA_KIND: &str = "borderlens-control-result";

/// The form schema compiled into the crate (`schema/control-result-v1.json`).
const BUILTIN_V1: &str = include_str!("../schema/control-result-v1.json");

/// Name of the field whose code decides the training label; every form has it.
pub const OUTCOME_FIELD: &str = "outcome";

/// Name of the date-time field that says when the control took place; every form has it.
pub const INSPECTED_AT_FIELD: &str = "inspected_at";

/// Keys of a submission outside `values`: a form field may not take one of these names.
pub(crate) const RESERVED_NAMES: [&str; 4] = [
    "submission_id",
    "declaration_id",
    "schema_version",
    "values",
];

/// Why a form schema was refused. Every message names where the schema came from (a file path,
/// or `built-in`).
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file could not be read.
    #[error("form schema {path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The text is not JSON of the schema's shape (syntax error, unknown key, wrong type).
    #[error("form schema {origin}: {reason}")]
    Json {
        /// Where the schema came from.
        origin: String,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// Well-formed, but inconsistent: a field referencing an unknown code list, a condition
    /// referencing an unknown field, duplicate names, ...; all problems are listed.
    #[error("form schema {origin}: {}", problems.join("; "))]
    Invalid {
        /// Where the schema came from.
        origin: String,
        /// One message per problem, each naming the field or code list at fault.
        problems: Vec<String>,
    },
}

/// The control result form: which fields exist, their types, code lists and when each is asked.
///
/// Obtained only through [`FormSchema::builtin`], [`FormSchema::from_json_str`] or
/// [`FormSchema::from_json_file`] (or serde, which runs the same checks), so a `FormSchema` is
/// always consistent: every code list and condition reference resolves, conditions only look at
/// earlier fields, the `outcome` and `inspected_at` fields exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawFormSchema")]
pub struct FormSchema {
    schema: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    code_lists: BTreeMap<String, Vec<Code>>,
    fields: Vec<FieldDef>,
}

/// The file shape, before the consistency checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFormSchema {
    schema: String,
    version: String,
    #[serde(default)]
    description: Option<String>,
    code_lists: BTreeMap<String, Vec<Code>>,
    fields: Vec<FieldDef>,
}

/// One entry of a code list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Code {
    /// The code as stored and exchanged: lower-case ASCII letters, digits and `_`.
    pub code: String,
    /// What a form shows for it.
    pub label: String,
    /// Only on the outcome list: whether this outcome is a hit (an irregularity that the
    /// risk model should learn to find). Exactly one of `hit` and `no_label` is set there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit: Option<bool>,
    /// Only on the outcome list: this outcome gives no training label (the control was not
    /// carried out, so nothing is known about the goods).
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_label: bool,
    /// A hit in which this code is chosen (in any field) is critical: label `critical = 2`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub critical: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The type of a form field, which fixes the JSON it accepts and how it is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// One code of the field's code list (a JSON string, matched case-insensitively, stored
    /// lower-case).
    Code,
    /// One or more distinct codes of the field's code list (a JSON array of strings).
    Codes,
    /// Free text (a JSON string) of at most `max_length` characters, stored exactly as given.
    Text,
    /// A finite JSON number within `min`..=`max`.
    Number,
    /// A whole JSON number within `min`..=`max` (`5.0` is accepted as `5`).
    Integer,
    /// An RFC 3339 date-time with offset, e.g. `2024-03-01T10:15:00+01:00`.
    Datetime,
    /// An ISO 6346 container number with a valid check digit, stored canonical (`CSQU3054383`).
    ContainerNumber,
    /// A UPU S10 postal item id with a valid check digit, stored canonical (`RR473124829GB`).
    S10Id,
}

impl FieldType {
    /// The name used in schema files.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Code => "code",
            FieldType::Codes => "codes",
            FieldType::Text => "text",
            FieldType::Number => "number",
            FieldType::Integer => "integer",
            FieldType::Datetime => "datetime",
            FieldType::ContainerNumber => "container_number",
            FieldType::S10Id => "s10_id",
        }
    }

    fn has_code_list(self) -> bool {
        matches!(self, FieldType::Code | FieldType::Codes)
    }

    fn is_numeric(self) -> bool {
        matches!(self, FieldType::Number | FieldType::Integer)
    }
}

/// What anonymisation for exchange does to a field (see [`crate::exchange`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anonymise {
    /// Kept as is (the default).
    #[default]
    Keep,
    /// Removed: personal data or data that locates the control (officer, place, free text,
    /// container and postal ids).
    Drop,
    /// Only for `datetime` fields: truncated to the local calendar date, `YYYY-MM-DD`.
    Date,
}

impl Anonymise {
    fn is_keep(&self) -> bool {
        *self == Anonymise::Keep
    }
}

/// One field of the form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Key in a submission's `values`: lower-case ASCII letters, digits and `_`, starting with a
    /// letter.
    pub name: String,
    /// What a form shows.
    pub label: String,
    /// A hint shown under the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// The JSON it accepts.
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// For `code` and `codes` fields: the code list to choose from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_list: Option<String>,
    /// Whether an answer is needed whenever the field is asked.
    pub required: bool,
    /// When the field is asked; absent means always. A value for a field that is not asked is
    /// refused, and `required` only applies when it is asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<Condition>,
    /// For numbers: the smallest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// For numbers: the largest value allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// For text: the most characters (Unicode scalar values) allowed. Required on text fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// For text: whether line breaks and tabs are allowed (other control characters never are).
    #[serde(default, skip_serializing_if = "is_false")]
    pub multiline: bool,
    /// What anonymisation for exchange does to this field.
    #[serde(default, skip_serializing_if = "Anonymise::is_keep")]
    pub anonymise: Anonymise,
}

/// When a field is asked: a test on the answers to earlier `code`/`codes` fields.
///
/// In files: `{"field": "outcome", "in": ["contraband"]}`, `{"all": [cond, ...]}` or
/// `{"any": [cond, ...]}`. A test on a field that has no answer (or is not asked) is false; on a
/// `codes` field it is true when any chosen code is in the set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition", into = "RawCondition")]
pub enum Condition {
    /// The answer to `field` is one of `codes`.
    In {
        /// An earlier `code` or `codes` field.
        field: String,
        /// Codes of that field's list.
        codes: Vec<String>,
    },
    /// Every condition holds.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    field: Option<String>,
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    codes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<Vec<RawCondition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    any: Option<Vec<RawCondition>>,
}

impl TryFrom<RawCondition> for Condition {
    type Error = String;

    fn try_from(raw: RawCondition) -> Result<Self, Self::Error> {
        let convert = |list: Vec<RawCondition>| -> Result<Vec<Condition>, String> {
            list.into_iter().map(Condition::try_from).collect()
        };
        match (raw.field, raw.codes, raw.all, raw.any) {
            (Some(field), Some(codes), None, None) => Ok(Condition::In { field, codes }),
            (None, None, Some(all), None) => Ok(Condition::All(convert(all)?)),
            (None, None, None, Some(any)) => Ok(Condition::Any(convert(any)?)),
            _ => Err(
                "a condition is either {\"field\": ..., \"in\": [...]}, {\"all\": [...]} \
                      or {\"any\": [...]}"
                    .to_string(),
            ),
        }
    }
}

impl From<Condition> for RawCondition {
    fn from(condition: Condition) -> Self {
        let empty = RawCondition {
            field: None,
            codes: None,
            all: None,
            any: None,
        };
        match condition {
            Condition::In { field, codes } => RawCondition {
                field: Some(field),
                codes: Some(codes),
                ..empty
            },
            Condition::All(list) => RawCondition {
                all: Some(list.into_iter().map(Into::into).collect()),
                ..empty
            },
            Condition::Any(list) => RawCondition {
                any: Some(list.into_iter().map(Into::into).collect()),
                ..empty
            },
        }
    }
}

impl Condition {
    /// Every field the condition reads.
    pub fn fields(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Condition::In { field, .. } => out.push(field),
            Condition::All(list) | Condition::Any(list) => {
                list.iter().for_each(|c| c.collect_fields(out))
            }
        }
    }
}

/// Words, as used in messages: `contraband_type is drugs`, `outcome is contraband or
/// prohibited_restricted`, `... and ...`.
impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::In { field, codes } => write!(f, "{field} is {}", codes.join(" or ")),
            Condition::All(list) | Condition::Any(list) => {
                let joiner = if matches!(self, Condition::All(_)) {
                    " and "
                } else {
                    " or "
                };
                for (i, condition) in list.iter().enumerate() {
                    if i > 0 {
                        f.write_str(joiner)?;
                    }
                    let nested = matches!(condition, Condition::All(_) | Condition::Any(_));
                    if nested {
                        write!(f, "({condition})")?;
                    } else {
                        write!(f, "{condition}")?;
                    }
                }
                Ok(())
            }
        }
    }
}

impl TryFrom<RawFormSchema> for FormSchema {
    type Error = String;

    fn try_from(raw: RawFormSchema) -> Result<Self, Self::Error> {
        FormSchema::from_raw(raw).map_err(|problems| problems.join("; "))
    }
}

impl FormSchema {
    /// The schema compiled into the crate (`schema/control-result-v1.json`, version 1.0.0).
    pub fn builtin() -> &'static FormSchema {
        static BUILTIN: OnceLock<FormSchema> = OnceLock::new();
        BUILTIN.get_or_init(|| {
            // The file is checked by the crate's tests, so a failure here is a build defect.
            FormSchema::load(BUILTIN_V1, "built-in").expect("the built-in form schema is valid")
        })
    }

    /// Parses and checks a schema given as JSON text.
    pub fn from_json_str(text: &str) -> Result<FormSchema, SchemaError> {
        FormSchema::load(text, "<text>")
    }

    /// Reads, parses and checks a schema file. Errors name the file.
    pub fn from_json_file(path: impl AsRef<Path>) -> Result<FormSchema, SchemaError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| SchemaError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        FormSchema::load(&text, &path.display().to_string())
    }

    fn load(text: &str, origin: &str) -> Result<FormSchema, SchemaError> {
        let raw: RawFormSchema = serde_json::from_str(text).map_err(|e| SchemaError::Json {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        FormSchema::from_raw(raw).map_err(|problems| SchemaError::Invalid {
            origin: origin.to_string(),
            problems,
        })
    }

    fn from_raw(raw: RawFormSchema) -> Result<FormSchema, Vec<String>> {
        let schema = FormSchema {
            schema: raw.schema,
            version: raw.version,
            description: raw.description,
            code_lists: raw.code_lists,
            fields: raw.fields,
        };
        let problems = schema.problems();
        if problems.is_empty() {
            Ok(schema)
        } else {
            Err(problems)
        }
    }

    /// The schema version, e.g. `1.0.0`; a submission must name it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The description in the file, if any.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The fields, in form order (conditions only look at earlier fields).
    pub fn fields(&self) -> &[FieldDef] {
        &self.fields
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The code list named `name`.
    pub fn code_list(&self, name: &str) -> Option<&[Code]> {
        self.code_lists.get(name).map(Vec::as_slice)
    }

    /// All code lists, by name.
    pub fn code_lists(&self) -> &BTreeMap<String, Vec<Code>> {
        &self.code_lists
    }

    /// The entry for `code` in the list of field `field`, if the field has a list and the code
    /// is in it (`code` must already be lower-case).
    pub fn code_of(&self, field: &str, code: &str) -> Option<&Code> {
        let list = self.field(field)?.code_list.as_deref()?;
        self.code_list(list)?.iter().find(|c| c.code == code)
    }

    /// The JSON Schema (draft 2020-12) of a submission's `values` under this form: one property
    /// per field with its type, code list and limits; the fields that are always asked and
    /// required are required. Which other fields are asked and required depends on earlier
    /// answers (the conditions are in each property's description): validation checks that.
    pub fn answers_json_schema(&self) -> serde_json::Value {
        use serde_json::{json, Map, Value};
        let mut properties = Map::new();
        for field in &self.fields {
            let codes = || -> Value {
                field
                    .code_list
                    .as_deref()
                    .and_then(|name| self.code_list(name))
                    .map(|list| list.iter().map(|c| Value::from(c.code.clone())).collect())
                    .unwrap_or_default()
            };
            let mut schema = match field.kind {
                FieldType::Code => json!({"type": "string", "enum": codes()}),
                FieldType::Codes => json!({
                    "type": "array", "uniqueItems": true, "minItems": 1,
                    "items": {"type": "string", "enum": codes()}
                }),
                FieldType::Text => json!({"type": "string", "maxLength": field.max_length}),
                FieldType::Number => json!({"type": "number"}),
                FieldType::Integer => json!({"type": "integer"}),
                FieldType::Datetime => json!({"type": "string", "format": "date-time"}),
                FieldType::ContainerNumber => json!({
                    "type": "string",
                    "description": "ISO 6346 container number with a valid check digit"
                }),
                FieldType::S10Id => json!({
                    "type": "string",
                    "description": "UPU S10 postal item id with a valid check digit"
                }),
            };
            schema["title"] = Value::from(field.label.clone());
            if let Some(min) = field.min {
                schema["minimum"] = Value::from(min);
            }
            if let Some(max) = field.max {
                schema["maximum"] = Value::from(max);
            }
            if let Some(condition) = &field.when {
                schema["description"] = Value::from(format!("Only asked when {condition}"));
            }
            properties.insert(field.name.clone(), schema);
        }
        let required: Vec<&str> = self
            .fields
            .iter()
            .filter(|f| f.required && f.when.is_none())
            .map(|f| f.name.as_str())
            .collect();
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": required,
            "properties": properties
        })
    }

    /// Every consistency problem, empty when the schema is usable.
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.schema != SCHEMA_KIND {
            problems.push(format!(
                "\"schema\" is '{}', expected '{SCHEMA_KIND}'",
                self.schema
            ));
        }
        if !is_version(&self.version) {
            problems.push(format!(
                "version '{}' is not of the form MAJOR.MINOR.PATCH",
                self.version
            ));
        }
        self.check_code_lists(&mut problems);
        self.check_fields(&mut problems);
        problems
    }

    fn check_code_lists(&self, problems: &mut Vec<String>) {
        let used: BTreeSet<&str> = self
            .fields
            .iter()
            .filter_map(|f| f.code_list.as_deref())
            .collect();
        let outcome_list = self
            .field(OUTCOME_FIELD)
            .and_then(|f| f.code_list.as_deref())
            .unwrap_or_default();
        for (name, codes) in &self.code_lists {
            if !is_identifier(name) {
                problems.push(format!(
                    "code list '{name}': name must be lower-case letters, digits and _"
                ));
            }
            if !used.contains(name.as_str()) {
                problems.push(format!("code list {name} is not used by any field"));
            }
            if codes.is_empty() {
                problems.push(format!("code list {name} is empty"));
            }
            let mut seen = BTreeSet::new();
            for code in codes {
                let at = format!("code list {name}, code '{}'", code.code);
                if !is_code(&code.code) {
                    problems.push(format!(
                        "{at}: a code is lower-case letters, digits and _ (at most 64)"
                    ));
                }
                if !seen.insert(code.code.as_str()) {
                    problems.push(format!("{at}: listed twice"));
                }
                if code.label.trim().is_empty() {
                    problems.push(format!("{at}: empty label"));
                }
                if name == outcome_list {
                    match (code.hit, code.no_label) {
                        (Some(_), false) | (None, true) => {}
                        _ => problems.push(format!(
                            "{at}: an outcome code has either \"hit\": true/false or \
                             \"no_label\": true"
                        )),
                    }
                } else if code.hit.is_some() || code.no_label {
                    problems.push(format!(
                        "{at}: \"hit\" and \"no_label\" belong on the outcome list only"
                    ));
                }
            }
        }
    }

    fn check_fields(&self, problems: &mut Vec<String>) {
        let mut earlier: BTreeMap<&str, &FieldDef> = BTreeMap::new();
        for field in &self.fields {
            let at = format!("field {}", field.name);
            if !is_identifier(&field.name) {
                problems.push(format!(
                    "field '{}': name must start with a lower-case letter, then lower-case \
                     letters, digits and _",
                    field.name
                ));
            }
            if RESERVED_NAMES.contains(&field.name.as_str()) {
                problems.push(format!(
                    "{at}: the name is reserved for the submission envelope"
                ));
            }
            if earlier.contains_key(field.name.as_str()) {
                problems.push(format!("{at}: defined twice"));
            }
            if field.label.trim().is_empty() {
                problems.push(format!("{at}: empty label"));
            }
            match (&field.code_list, field.kind.has_code_list()) {
                (None, true) => problems.push(format!(
                    "{at}: a {} field needs a code_list",
                    field.kind.name()
                )),
                (Some(list), true) if !self.code_lists.contains_key(list) => {
                    problems.push(format!("{at}: unknown code list {list}"))
                }
                (Some(_), false) => problems.push(format!(
                    "{at}: a {} field has no code_list",
                    field.kind.name()
                )),
                _ => {}
            }
            if !field.kind.is_numeric() && (field.min.is_some() || field.max.is_some()) {
                problems.push(format!(
                    "{at}: min and max are for number and integer fields"
                ));
            }
            for (key, bound) in [("min", field.min), ("max", field.max)] {
                if bound.is_some_and(|b| !b.is_finite()) {
                    problems.push(format!("{at}: {key} is not finite"));
                }
            }
            if let (Some(min), Some(max)) = (field.min, field.max) {
                if min > max {
                    problems.push(format!("{at}: min {min} is greater than max {max}"));
                }
            }
            match (field.kind, field.max_length) {
                (FieldType::Text, None) => {
                    problems.push(format!("{at}: a text field needs max_length"))
                }
                (FieldType::Text, Some(0)) => {
                    problems.push(format!("{at}: max_length must be at least 1"))
                }
                (FieldType::Text, Some(_)) => {}
                (_, Some(_)) => problems.push(format!("{at}: max_length is for text fields")),
                (_, None) => {}
            }
            if field.multiline && field.kind != FieldType::Text {
                problems.push(format!("{at}: multiline is for text fields"));
            }
            if field.anonymise == Anonymise::Date && field.kind != FieldType::Datetime {
                problems.push(format!("{at}: anonymise \"date\" is for datetime fields"));
            }
            if let Some(condition) = &field.when {
                self.check_condition(condition, &at, &earlier, problems);
            }
            earlier.insert(&field.name, field);
        }
        match self.field(OUTCOME_FIELD) {
            None => problems.push(format!("the form needs a field named {OUTCOME_FIELD}")),
            Some(f)
                if f.kind != FieldType::Code
                    || !f.required
                    || f.when.is_some()
                    || f.anonymise != Anonymise::Keep =>
            {
                problems.push(format!(
                    "field {OUTCOME_FIELD}: must be a required code field asked always and kept \
                     on anonymisation"
                ))
            }
            Some(_) => {}
        }
        match self.field(INSPECTED_AT_FIELD) {
            None => problems.push(format!("the form needs a field named {INSPECTED_AT_FIELD}")),
            Some(f)
                if f.kind != FieldType::Datetime
                    || !f.required
                    || f.when.is_some()
                    || f.anonymise == Anonymise::Drop =>
            {
                problems.push(format!(
                    "field {INSPECTED_AT_FIELD}: must be a required datetime field asked always \
                     and not dropped on anonymisation"
                ))
            }
            Some(_) => {}
        }
    }

    fn check_condition(
        &self,
        condition: &Condition,
        at: &str,
        earlier: &BTreeMap<&str, &FieldDef>,
        problems: &mut Vec<String>,
    ) {
        match condition {
            Condition::In { field, codes } => {
                let Some(target) = earlier.get(field.as_str()) else {
                    let why = if self.field(field).is_some() {
                        "a condition may only look at fields defined before"
                    } else {
                        "no such field"
                    };
                    problems.push(format!("{at}: condition on field {field}: {why}"));
                    return;
                };
                let Some(list) = target
                    .code_list
                    .as_deref()
                    .filter(|_| target.kind.has_code_list())
                else {
                    problems.push(format!(
                        "{at}: condition on field {field}: only code and codes fields can be tested"
                    ));
                    return;
                };
                if codes.is_empty() {
                    problems.push(format!("{at}: condition on field {field}: empty \"in\""));
                }
                let known = self.code_list(list).unwrap_or_default();
                for code in codes {
                    if !known.iter().any(|c| &c.code == code) {
                        problems.push(format!(
                            "{at}: condition on field {field}: '{code}' is not in code list {list}"
                        ));
                    }
                }
            }
            Condition::All(list) | Condition::Any(list) => {
                if list.is_empty() {
                    problems.push(format!("{at}: empty all/any condition"));
                }
                for c in list {
                    self.check_condition(c, at, earlier, problems);
                }
            }
        }
    }
}

/// `MAJOR.MINOR.PATCH`, digits only.
pub(crate) fn is_version(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A field or code list name: `[a-z][a-z0-9_]*`, at most 64 characters.
fn is_identifier(text: &str) -> bool {
    text.len() <= 64
        && text.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A code: `[a-z0-9_]+`, at most 64 characters.
fn is_code(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin_value() -> serde_json::Value {
        serde_json::from_str(BUILTIN_V1).unwrap()
    }

    fn load_value(value: &serde_json::Value) -> Result<FormSchema, SchemaError> {
        FormSchema::from_json_str(&value.to_string())
    }

    #[test]
    fn builtin_loads_with_the_expected_content() {
        let schema = FormSchema::builtin();
        assert_eq!(schema.version(), "1.0.0");
        let outcome = schema.code_list("outcome").unwrap();
        let codes: Vec<&str> = outcome.iter().map(|c| c.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "no_irregularity",
                "documentary",
                "revenue",
                "contraband",
                "prohibited_restricted",
                "not_controlled"
            ]
        );
        let critical: Vec<&str> = schema
            .code_list("contraband_type")
            .unwrap()
            .iter()
            .filter(|c| c.critical)
            .map(|c| c.code.as_str())
            .collect();
        assert_eq!(critical, ["drugs", "weapons", "explosives", "precursors"]);
        assert_eq!(
            schema.field("inspection_method").unwrap().kind,
            FieldType::Codes
        );
        assert_eq!(schema.field("remarks").unwrap().max_length, Some(2000));
    }

    #[test]
    fn schema_serialises_back_to_an_equal_schema() {
        let schema = FormSchema::builtin();
        let text = serde_json::to_string(schema).unwrap();
        let again = FormSchema::from_json_str(&text).unwrap();
        assert_eq!(&again, schema);
        let via_serde: FormSchema = serde_json::from_str(&text).unwrap();
        assert_eq!(&via_serde, schema);
    }

    #[test]
    fn unknown_code_list_is_refused_naming_the_field() {
        let mut value = builtin_value();
        value["fields"][4]["code_list"] = "drug_types".into();
        let err = load_value(&value).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("field drug_type: unknown code list drug_types"),
            "{text}"
        );
        // The now-unused list is reported too.
        assert!(
            text.contains("code list drug_type is not used by any field"),
            "{text}"
        );
    }

    #[test]
    fn condition_on_unknown_or_later_field_is_refused() {
        let mut value = builtin_value();
        value["fields"][4]["when"] =
            serde_json::json!({"field": "contraband_kind", "in": ["drugs"]});
        let text = load_value(&value).unwrap_err().to_string();
        assert!(
            text.contains("field drug_type: condition on field contraband_kind: no such field"),
            "{text}"
        );

        let mut value = builtin_value();
        value["fields"][0]["when"] = serde_json::json!({"field": "remarks", "in": ["x"]});
        let text = load_value(&value).unwrap_err().to_string();
        assert!(
            text.contains("may only look at fields defined before"),
            "{text}"
        );
        assert!(
            text.contains("must be a required code field asked always"),
            "{text}"
        );
    }

    #[test]
    fn condition_with_unknown_code_is_refused() {
        let mut value = builtin_value();
        value["fields"][4]["when"] = serde_json::json!({"all": [
            {"field": "outcome", "in": ["contraband"]},
            {"field": "contraband_type", "in": ["narcotics"]}
        ]});
        let text = load_value(&value).unwrap_err().to_string();
        assert!(
            text.contains(
                "field drug_type: condition on field contraband_type: 'narcotics' is not in code \
                 list contraband_type"
            ),
            "{text}"
        );
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("borderlens-controls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("broken.json");
        let mut value = builtin_value();
        value["fields"][1]["type"] = "text".into();
        std::fs::write(&path, value.to_string()).unwrap();
        let text = FormSchema::from_json_file(&path).unwrap_err().to_string();
        assert!(
            text.starts_with(&format!("form schema {}: ", path.display())),
            "{text}"
        );
        assert!(
            text.contains("field revenue_type: a text field has no code_list"),
            "{text}"
        );

        std::fs::write(&path, "{\"schema\": ").unwrap();
        let text = FormSchema::from_json_file(&path).unwrap_err().to_string();
        assert!(
            text.contains("broken.json") && text.contains("line 1"),
            "{text}"
        );

        let missing = dir.join("missing.json");
        let text = FormSchema::from_json_file(&missing)
            .unwrap_err()
            .to_string();
        assert!(text.contains("missing.json: cannot read"), "{text}");
        std::fs::remove_dir_all(&dir).unwrap();

        let ok = FormSchema::from_json_file(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/control-result-v1.json"),
        )
        .unwrap();
        assert_eq!(&ok, FormSchema::builtin());
    }

    #[test]
    fn misspelt_keys_and_bad_outcome_flags_are_refused() {
        let mut value = builtin_value();
        value["fields"][0]["requried"] = true.into();
        let text = load_value(&value).unwrap_err().to_string();
        assert!(text.contains("unknown field `requried`"), "{text}");

        let mut value = builtin_value();
        value["code_lists"]["outcome"][0] = serde_json::json!({"code": "clean", "label": "Clean"});
        let text = load_value(&value).unwrap_err().to_string();
        assert!(
            text.contains("code list outcome, code 'clean': an outcome code has either"),
            "{text}"
        );

        let mut value = builtin_value();
        value["code_lists"]["drug_type"][0]["code"] = "Cocaine".into();
        let text = load_value(&value).unwrap_err().to_string();
        assert!(
            text.contains("code 'Cocaine': a code is lower-case"),
            "{text}"
        );

        let mut value = builtin_value();
        value["version"] = "1.0".into();
        let text = load_value(&value).unwrap_err().to_string();
        assert!(text.contains("version '1.0' is not of the form"), "{text}");
    }

    #[test]
    fn conditions_read_as_words() {
        let schema = FormSchema::builtin();
        let when = |name: &str| {
            schema
                .field(name)
                .unwrap()
                .when
                .as_ref()
                .unwrap()
                .to_string()
        };
        assert_eq!(when("drug_type"), "contraband_type is drugs");
        assert_eq!(
            when("quantity"),
            "outcome is contraband or prohibited_restricted"
        );
        assert_eq!(
            when("sticks"),
            "contraband_type is tobacco and tobacco_product is cigarettes or cigars_cigarillos"
        );
    }
}
