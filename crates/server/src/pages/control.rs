//! The control result form, generated from the form schema: drop-downs for code lists,
//! check boxes for multiple choices, follow-up questions shown only when their condition holds
//! (by the script; without it every question shows and the server still refuses an answer to a
//! question that does not apply), identifiers checked as typed, a barcode scan where the browser
//! can, and a draft kept on the device. The submission id is fixed when the form is drawn, so
//! sending it twice records it once.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app::{self as app, Caller};
use std::collections::BTreeMap;

use borderlens_controls::{FieldDef, FieldError, FieldType, FormSchema, INSPECTED_AT_FIELD};
use maud::{html, Markup};
use serde_json::{Map, Value};

use super::{caller_of, encode, error_page, html_response, layout, path_id, see_other, Form};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::pool::blocking;
use crate::AppState;

/// Hidden fields of the form that are not answers.
const TZ_OFFSET: &str = "tz_offset";

pub(crate) async fn form(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    // The declaration must exist: a form for nothing would only fail at the end.
    let check = id.clone();
    let exists = blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::declaration_exists(store, &check)
    })
    .await;
    match exists {
        Ok(true) => {}
        Ok(false) => {
            let error = ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no declaration '{id}' in the store"),
            );
            return error_page(Some(caller), &error);
        }
        Err(error) => return error_page(Some(caller), &error),
    }
    let submission_id = match app::new_secret() {
        Ok(secret) => format!("form-{}", &secret[..24]),
        Err(error) => return error_page(Some(caller), &ApiError::from(error)),
    };
    render(
        StatusCode::OK,
        caller,
        &id,
        &submission_id,
        &Form::parse(b""),
        &[],
    )
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let caller = caller_of(&auth);
    let id = match path_id(id) {
        Ok(id) => id,
        Err(error) => return error_page(Some(caller), &error),
    };
    let form = Form::parse(&body);
    let submission_id = form.get("submission_id").unwrap_or_default().to_string();
    let submission = serde_json::json!({
        "submission_id": submission_id,
        "declaration_id": id,
        "schema_version": FormSchema::builtin().version(),
        "values": values_of(FormSchema::builtin(), &form),
    })
    .to_string();
    let recorded = blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::record_control_result(store, &submission, "form")
    })
    .await;
    match recorded {
        Ok(report) => see_other(&format!(
            "/declarations/{}?recorded={}#results",
            encode(&id),
            encode(&report.submission_id)
        )),
        Err(error) if error.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let mut problems = error.fields.clone();
            if problems.is_empty() {
                problems.push(FieldError::new("", error.message.clone()));
            }
            render(error.status, caller, &id, &submission_id, &form, &problems)
        }
        Err(error) => error_page(Some(caller), &error),
    }
}

/// The submission's `values` from the posted form: each field as its type's JSON; empty answers
/// are left out (the schema says which are required), values that do not parse are passed on
/// as text so that validation names the field.
fn values_of(schema: &FormSchema, form: &Form) -> Map<String, Value> {
    let mut values = Map::new();
    let offset = form
        .get(TZ_OFFSET)
        .filter(|o| is_offset(o))
        .unwrap_or("+00:00");
    for field in schema.fields() {
        let name = field.name.as_str();
        let answers: Vec<&str> = form
            .all(name)
            .into_iter()
            .filter(|v| !v.trim().is_empty())
            .collect();
        if answers.is_empty() {
            continue;
        }
        let first = answers[0].trim();
        let value = match field.kind {
            FieldType::Codes => Value::Array(
                answers
                    .iter()
                    .map(|a| Value::String(a.trim().to_string()))
                    .collect(),
            ),
            FieldType::Number | FieldType::Integer => first
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| match first.parse::<i64>() {
                    Ok(i) => Value::from(i),
                    Err(_) => Value::Number(n),
                })
                .unwrap_or_else(|| Value::String(first.to_string())),
            FieldType::Datetime => Value::String(with_offset(first, offset)),
            // Free text is stored exactly as typed.
            FieldType::Text => Value::String(answers[0].to_string()),
            _ => Value::String(first.to_string()),
        };
        values.insert(name.to_string(), value);
    }
    values
}

/// Now in UTC as a datetime-local value (`2024-03-01T10:15`); the script replaces it with the
/// device's local time and sends the device's offset.
fn utc_now_minutes() -> String {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    chrono::DateTime::from_timestamp(i64::try_from(seconds).unwrap_or(0), 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M").to_string())
        .unwrap_or_default()
}

fn is_offset(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b':'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit()
}

/// `2024-03-01T10:15` (what a datetime-local input sends) with the browser's offset as RFC 3339;
/// anything else is passed on for validation to judge.
fn with_offset(local: &str, offset: &str) -> String {
    match local.len() {
        16 => format!("{local}:00{offset}"),
        19 => format!("{local}{offset}"),
        _ => local.to_string(),
    }
}

fn render(
    status: StatusCode,
    caller: &Caller,
    declaration_id: &str,
    submission_id: &str,
    answers: &Form,
    problems: &[FieldError],
) -> Response {
    let schema = FormSchema::builtin();
    let problem_of = |name: &str| {
        problems
            .iter()
            .filter(|p| p.field == name || p.field.starts_with(&format!("{name}[")))
            .map(|p| p.reason.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let general: Vec<&FieldError> = problems
        .iter()
        .filter(|p| {
            !schema
                .fields()
                .iter()
                .any(|f| p.field == f.name || p.field.starts_with(&format!("{}[", f.name)))
        })
        .collect();
    let mut defaults = BTreeMap::new();
    defaults.insert(INSPECTED_AT_FIELD, utc_now_minutes());
    defaults.insert("officer_id", caller.user.clone());
    let body = html! {
        h1 { "Control result · " a href={ "/declarations/" (declaration_id) } { (declaration_id) } }
        @if !problems.is_empty() {
            div.banner.bad role="alert" {
                p { "Nothing was recorded: " (problems.len()) " answer(s) to correct." }
                @for p in &general { p { @if !p.field.is_empty() { (p.field) ": " } (p.reason) } }
            }
        }
        p #draft-note .banner.ok hidden role="status" {}
        form.card method="post" action={ "/declarations/" (declaration_id) "/control" }
            data-draft=(declaration_id) data-has-errors=(if problems.is_empty() { "0" } else { "1" }) {
            input type="hidden" name="csrf_token" value=(caller.csrf_token.clone().unwrap_or_default());
            input type="hidden" name="submission_id" value=(submission_id);
            input type="hidden" name=(TZ_OFFSET) value=(answers.get(TZ_OFFSET).unwrap_or("+00:00"));
            @for field in schema.fields() {
                (field_markup(schema, field, answers, &defaults, &problem_of(&field.name)))
            }
            button.primary type="submit" { "Record the result" }
        }
    };
    html_response(status, layout("Control result", Some(caller), None, body))
}

fn field_markup(
    schema: &FormSchema,
    field: &FieldDef,
    answers: &Form,
    defaults: &BTreeMap<&str, String>,
    problem: &str,
) -> Markup {
    let id = format!("f-{}", field.name);
    let when = field
        .when
        .as_ref()
        .and_then(|c| serde_json::to_string(c).ok());
    let chosen = answers.all(&field.name);
    let first = chosen.first().copied().unwrap_or_default();
    // Answers the form can propose: now, and the officer logged in.
    let (first, proposed) = match (first, defaults.get(field.name.as_str())) {
        ("", Some(default)) => (default.as_str(), true),
        (given, _) => (given, false),
    };
    let codes = field
        .code_list
        .as_deref()
        .and_then(|list| schema.code_list(list))
        .unwrap_or(&[]);
    // A follow-up question is required only once it is asked: the script marks it so when it
    // shows it (without the script every question shows, and the server judges).
    let required = field.required && field.when.is_none();
    let data_required = field.required && field.when.is_some();
    let label_text = if field.required {
        format!("{} *", field.label)
    } else {
        field.label.clone()
    };
    html! {
        div.field data-when=[when] data-field=(field.name) {
            @match field.kind {
                FieldType::Codes => {
                    fieldset {
                        legend { (label_text) }
                        @for code in codes {
                            label.choice {
                                input type="checkbox" name=(field.name) value=(code.code)
                                    checked[chosen.contains(&code.code.as_str())];
                                (code.label)
                            }
                        }
                    }
                }
                FieldType::Code => {
                    label for=(id) { (label_text) }
                    select id=(id) name=(field.name) required[required]
                        data-required[data_required] {
                        option value="" { "— choose —" }
                        @for code in codes {
                            option value=(code.code) selected[first == code.code] { (code.label) }
                        }
                    }
                }
                FieldType::Text => {
                    label for=(id) { (label_text) }
                    @if field.multiline {
                        textarea id=(id) name=(field.name) rows="3"
                            maxlength=[field.max_length] required[required]
                            data-required[data_required] { (first) }
                    } @else {
                        input id=(id) type="text" name=(field.name) value=(first)
                            maxlength=[field.max_length] required[required]
                            data-required[data_required];
                    }
                }
                FieldType::Number | FieldType::Integer => {
                    label for=(id) { (label_text) }
                    input id=(id) type="number" name=(field.name) value=(first)
                        step=(if field.kind == FieldType::Integer { "1" } else { "any" })
                        inputmode=(if field.kind == FieldType::Integer { "numeric" } else { "decimal" })
                        min=[field.min] max=[field.max] required[required]
                        data-required[data_required];
                }
                FieldType::Datetime => {
                    label for=(id) { (label_text) }
                    input id=(id) type="datetime-local" name=(field.name)
                        value=(first.get(..16).unwrap_or(first)) required[required]
                        data-now[proposed];
                    p.help { "Local time of this device (UTC when the page's script cannot run)." }
                }
                FieldType::ContainerNumber | FieldType::S10Id => {
                    label for=(id) { (label_text) }
                    input id=(id) type="text" name=(field.name) value=(first)
                        autocapitalize="characters" autocomplete="off" spellcheck="false"
                        data-check=(if field.kind == FieldType::ContainerNumber { "iso6346" } else { "s10" })
                        required[required];
                    small.check id={ (id) "-check" } aria-live="polite" {}
                    button.secondary type="button" data-scan=(id) hidden { "Scan barcode" }
                }
            }
            @if let Some(help) = &field.help { p.help { (help) } }
            @if !problem.is_empty() { p.problem role="alert" { (problem) } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posted_answers_become_the_submission_values_of_their_types() {
        let schema = FormSchema::builtin();
        let form = Form::parse(
            b"outcome=contraband&contraband_type=drugs&inspection_method=documentary&\
              inspection_method=physical_full&inspected_at=2024-03-01T10%3A15&tz_offset=%2B01%3A00&\
              remarks=%3Cscript%3Ealert(1)%3C%2Fscript%3E&place=",
        );
        let values = values_of(schema, &form);
        assert_eq!(values["outcome"], "contraband");
        assert_eq!(
            values["inspection_method"],
            serde_json::json!(["documentary", "physical_full"])
        );
        assert_eq!(values["inspected_at"], "2024-03-01T10:15:00+01:00");
        assert_eq!(values["remarks"], "<script>alert(1)</script>");
        assert!(!values.contains_key("place"), "an empty answer is left out");
    }

    #[test]
    fn offsets_are_checked_and_local_times_completed() {
        assert!(is_offset("+05:30") && is_offset("-03:00"));
        assert!(!is_offset("05:30") && !is_offset("+5:30") && !is_offset("Z"));
        assert_eq!(
            with_offset("2024-03-01T10:15", "+00:00"),
            "2024-03-01T10:15:00+00:00"
        );
        assert_eq!(
            with_offset("2024-03-01T10:15:07", "-03:00"),
            "2024-03-01T10:15:07-03:00"
        );
        assert_eq!(with_offset("yesterday", "+00:00"), "yesterday");
    }
}
