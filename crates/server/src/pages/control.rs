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

use borderlens_controls::{
    coerce, FieldDef, FieldError, FieldType, FormSchema, Submission, ValidationErrors,
    INSPECTED_AT_FIELD,
};
use chrono::{FixedOffset, Offset, Utc};
use maud::{html, Markup};

use super::{caller_of, encode, error_page, html_response, layout, path_id, see_other, Form};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::pool::blocking;
use crate::AppState;

/// Hidden field of the form: the device's offset from UTC, `+01:00`.
const TZ_OFFSET: &str = "tz_offset";

/// The fields of the form that are not answers.
const NOT_ANSWERS: [&str; 3] = ["csrf_token", "submission_id", TZ_OFFSET];

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
    let submission = match submission_of(&id, &form) {
        Ok(submission) => submission,
        Err(errors) => {
            return render(
                StatusCode::UNPROCESSABLE_ENTITY,
                caller,
                &id,
                &submission_id,
                &form,
                errors.errors(),
            )
        }
    };
    let recorded = blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::record_control_submission(store, &submission, "form")
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

/// The submission a posted form makes: the answers read by the form schema's field types
/// ([`coerce`]), the local time a datetime-local input sends completed with the device's offset
/// (UTC when the script could not send it). Answers that cannot be read are refused, each
/// naming its field, together with every other problem of the answers.
fn submission_of(declaration_id: &str, form: &Form) -> Result<Submission, ValidationErrors> {
    let schema = FormSchema::builtin();
    let offset = form
        .get(TZ_OFFSET)
        .and_then(offset_of)
        .unwrap_or_else(|| Utc.fix());
    let answers = form.pairs().filter(|(name, _)| !NOT_ANSWERS.contains(name));
    Ok(Submission {
        submission_id: form.get("submission_id").unwrap_or_default().to_string(),
        declaration_id: declaration_id.to_string(),
        schema_version: schema.version().to_string(),
        values: coerce(schema, answers, Some(offset))?,
    })
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

/// An offset as the page's script sends it, `+05:30` or `-03:00`; `None` for anything else.
fn offset_of(text: &str) -> Option<FixedOffset> {
    let b = text.as_bytes();
    let well_formed = b.len() == 6
        && (b[0] == b'+' || b[0] == b'-')
        && b[1].is_ascii_digit()
        && b[2].is_ascii_digit()
        && b[3] == b':'
        && b[4].is_ascii_digit()
        && b[5].is_ascii_digit();
    if !well_formed {
        return None;
    }
    let number = |at: usize| i32::from(b[at] - b'0') * 10 + i32::from(b[at + 1] - b'0');
    let seconds = number(1) * 3600 + number(4) * 60;
    FixedOffset::east_opt(if b[0] == b'-' { -seconds } else { seconds })
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
    fn a_posted_form_becomes_a_typed_submission() {
        let form = Form::parse(
            b"csrf_token=t&submission_id=form-1&outcome=contraband&contraband_type=drugs&\
              inspection_method=documentary&inspection_method=physical_full&\
              inspected_at=2024-03-01T10%3A15&tz_offset=%2B01%3A00&\
              remarks=%3Cscript%3Ealert(1)%3C%2Fscript%3E&place=&quantity=12",
        );
        let submission = submission_of("D-1", &form).unwrap();
        assert_eq!(
            (
                submission.submission_id.as_str(),
                submission.declaration_id.as_str(),
                submission.schema_version.as_str()
            ),
            ("form-1", "D-1", "1.0.0")
        );
        let values = &submission.values;
        assert_eq!(values["outcome"], "contraband");
        assert_eq!(
            values["inspection_method"],
            serde_json::json!(["documentary", "physical_full"])
        );
        assert_eq!(values["inspected_at"], "2024-03-01T10:15:00+01:00");
        assert_eq!(values["remarks"], "<script>alert(1)</script>");
        assert_eq!(values["quantity"], 12);
        assert!(!values.contains_key("place"), "an empty answer is left out");
        assert!(!values.contains_key("csrf_token") && !values.contains_key("tz_offset"));
    }

    #[test]
    fn unreadable_or_unknown_answers_are_named() {
        let form = Form::parse(
            b"submission_id=form-2&outcome=contraband&quantity=12+kg&vessel=x&tz_offset=bad",
        );
        let errors = submission_of("D-1", &form).unwrap_err();
        let fields = errors.fields();
        assert!(
            fields.contains(&"quantity") && fields.contains(&"vessel"),
            "{errors}"
        );
        assert!(
            fields.contains(&"contraband_type"),
            "every problem at once: {errors}"
        );
    }

    #[test]
    fn offsets_are_checked() {
        assert_eq!(offset_of("+05:30"), FixedOffset::east_opt(5 * 3600 + 1800));
        assert_eq!(offset_of("-03:00"), FixedOffset::west_opt(3 * 3600));
        assert_eq!(offset_of("+00:00"), Some(Utc.fix()));
        for bad in ["05:30", "+5:30", "Z", "+25:00", "+05:3x", ""] {
            assert_eq!(offset_of(bad), None, "{bad}");
        }
    }
}
