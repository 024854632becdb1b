//! The audit log: every change the store recorded, newest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app as app;
use maud::html;
use serde::Deserialize;

use super::{caller_of, error_page, html_response, layout};
use crate::auth::Authenticated;
use crate::pool::blocking;
use crate::AppState;

/// Entries shown unless asked otherwise, and at most.
const DEFAULT_SHOWN: usize = 200;
const MAX_SHOWN: usize = 5000;
/// Details longer than this are cut in the table.
const DETAIL_CHARS: usize = 300;

#[derive(Deserialize)]
pub(crate) struct AuditQuery {
    limit: Option<usize>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Response {
    let caller = caller_of(&auth);
    let limit = query
        .ok()
        .and_then(|Query(q)| q.limit)
        .unwrap_or(DEFAULT_SHOWN)
        .clamp(1, MAX_SHOWN);
    let entries = match blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::audit_log(store, limit)
    })
    .await
    {
        Ok(entries) => entries,
        Err(error) => return error_page(Some(caller), &error),
    };
    let body = html! {
        h1 { "Audit log" }
        p.muted { "The latest " (entries.len()) " entries, newest first. Entries can never be "
            "changed or deleted." }
        div.scroll { table #audit {
            thead { tr { th { "#" } th { "When (UTC)" } th { "Who" } th { "What" } th { "Subject" } th { "Details" } } }
            tbody { @for e in &entries { tr {
                td { (e.id) } td { (e.at) } td { (e.actor) } td { (e.action) } td { (e.subject) }
                td { code { (e.detail_json.chars().take(DETAIL_CHARS).collect::<String>()) } }
            } } }
        } }
    };
    html_response(
        StatusCode::OK,
        layout("Audit log", Some(caller), None, body),
    )
}
