//! Control results of borderlens: what an officer records after controlling a declaration, checked
//! against a form defined as data, turned into a training label, and shared with other
//! administrations.
//!
//! - [`FormSchema`] is the control result form: fields, types, code lists and context-aware
//!   follow-ups (`drug_type` is asked only when `contraband_type` is `drugs`). It is data, a
//!   versioned JSON file: [`FormSchema::builtin`] embeds `schema/control-result-v1.json`;
//!   [`FormSchema::from_json_file`] loads another version. A schema is checked on load (every code
//!   list and condition reference must resolve).
//! - [`FormSchema::validate`] / [`FormSchema::parse_submission`] check a [`Submission`] and
//!   report every problem at once, each naming its field ([`ValidationErrors`]); a valid one
//!   becomes a normalised [`ControlResult`].
//! - [`FormSchema::read_submission`] reads a submission from parsed JSON (an HTTP body, a line of
//!   a file) without validating its answers; [`coerce`] reads the answers of a form that sends
//!   text (a web form, `--set field=value`) by each field's type. Either way the edge builds one
//!   typed [`Submission`], which is validated once.
//! - [`ControlResult::to_json`] is the text a result is stored (and digested) as;
//!   [`FormSchema::read_stored`] reads it back.
//! - [`ControlResult::label`] maps a result to the [`ControlLabel`] the risk model learns from.
//! - [`exchange`] writes and reads the JSON document for sharing results, optionally anonymised.
//!
//! Architecture invariant: this crate owns the form's definition, the reading of answers typed as
//! text, validation, labelling, the stored form of a result and the exchange format, and nothing
//! else. It renders nothing (no HTML: free text is stored exactly as
//! typed and escaping is the renderer's job), does no I/O beyond reading a schema file it is given
//! a path to, and knows nothing of storage or models. Results keep the schema version they were
//! recorded with; a new version of the form is a new schema file, never an edit of an old one.
//!
//! [`ControlLabel`]: borderlens_domain::ControlLabel
#![deny(missing_docs)]

mod coerce;
pub mod exchange;
mod schema;
mod validate;

pub use coerce::coerce;
pub use schema::{
    Anonymise, Code, Condition, FieldDef, FieldType, FormSchema, SchemaError, INSPECTED_AT_FIELD,
    OUTCOME_FIELD, SCHEMA_KIND,
};
pub use validate::{ControlResult, FieldError, Submission, ValidationErrors, MAX_ID_LENGTH};
