//! The manager's page of federated training (`/federation`): the sessions this node took part
//! in, with the partner that coordinated, the rounds answered, what was shared and how each
//! ended, read from the node's audit log (`app::federation_sessions`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app as app;
use maud::html;

use super::{caller_of, chart, error_page, html_response, layout};
use crate::auth::Authenticated;
use crate::pool::blocking;
use crate::AppState;

/// Audit entries read for the page.
const ENTRIES_READ: usize = 100_000;

pub(crate) async fn page(State(state): State<AppState>, auth: Authenticated) -> Response {
    let caller = caller_of(&auth);
    let (sessions, pooled, exports) =
        match blocking(&state.pool, Some(caller.user.clone()), move |store| {
            Ok((
                app::federation_sessions(store, ENTRIES_READ)?,
                app::pooled_statistics(store, "origin", 0.95)?,
                app::control_exports(store, ENTRIES_READ)?,
            ))
        })
        .await
        {
            Ok(read) => read,
            Err(error) => return error_page(Some(caller), &error),
        };
    let foreign: Vec<&app::PooledSource> = pooled
        .sources
        .iter()
        .filter(|s| s.source != app::OWN)
        .collect();
    let partners: std::collections::BTreeSet<&str> =
        sessions.iter().map(|s| s.partner.as_str()).collect();
    let budget = app::privacy_budget(&sessions);
    let body = html! {
        h1 { "Federated training" }
        p { "The training sessions this node took part in, newest first, from its audit log. "
            "A node sends no row: only what is listed under \"shared\". Serve the node with "
            code { "borderlens node serve --partners FILE" } "; the partners file says who may "
            "coordinate." }
        div #privacy {
            h2 { "Privacy budget" }
            @if budget.noisy_sessions > 0 {
                p #budget { strong { (budget.noisy_sessions) " session(s) added noise: ε = "
                    (format!("{:.3}", budget.epsilon)) " at δ = " (format!("{:e}", budget.delta)) }
                    " spent in all, for any one declaration item of this node (their ρ, "
                    (format!("{:.4}", budget.rho)) " in zero-concentrated DP, add up), over "
                    "the sessions of the latest " (ENTRIES_READ) " federation entries of the "
                    "audit log. A session's own ε is in its row below." }
            }
            @if budget.exact_sessions > 0 {
                p #exact { strong { (budget.exact_sessions) " session(s) sent exact sums" }
                    " (no noise): secure aggregation hides this node's own sums from the "
                    "coordinator, but no ε bounds what the partners learn from the totals." }
            }
            @if budget.noisy_sessions == 0 && budget.exact_sessions == 0 {
                p.muted { "No sums sent yet." }
            }
            p { "Noise is asked by the coordinator (" code { "federate train --dp-noise" }
                "); a node's " code { "[privacy]" } " table in its partners file sets the least "
                "noise it adds and the most ε one session may spend. ε does not cover the "
                "vocabularies and feature summaries agreed before training, nor the counts of "
                "pooled statistics." }
        }
        h2 { "Partners that coordinated" }
        @if partners.is_empty() {
            p.muted { "None yet." }
        } @else {
            ul #partners { @for p in &partners { li { (p) } } }
        }
        h2 { "Sessions" }
        @if sessions.is_empty() {
            p.muted { "No federated training yet." }
        } @else {
            div.scroll { table #sessions {
                thead { tr {
                    th { "Opened (UTC)" } th { "Partner" } th { "Session" } th { "Party" }
                    th { "Label, up to" } th { "Rows (kept here)" } th { "Rounds" }
                    th { "Trees" } th { "Shared" } th { "Privacy spent" } th { "Outcome" }
                } }
                tbody { @for s in &sessions { tr {
                    td { (s.opened_at) }
                    td { (s.partner) }
                    td { code { (s.session) } }
                    td { @if let Some(p) = s.party { (p) } @else { "–" } }
                    td { (s.label.as_deref().unwrap_or("–")) ", " (s.until.as_deref().unwrap_or("–")) }
                    td { @if let Some(r) = s.rows { (r) } @else { "–" } }
                    td { (s.rounds) }
                    td { (s.trees) }
                    td { ul { @for (what, n) in &s.shared { li { (n) " × " (what) } } } }
                    td { @if let Some(p) = &s.privacy {
                        "ε " (format!("{:.3}", p.epsilon)) " (δ " (format!("{:e}", p.delta)) ")"
                        br; span.muted { (p.releases) " noisy releases, noise multiplier "
                            (p.noise_multiplier) }
                    } @else if s.sent_sums() {
                        "exact sums"
                    } @else { "–" } }
                    td {
                        strong { (s.outcome) }
                        @if let Some(d) = &s.detail { br; span.muted { (d) } }
                        @if let Some(at) = &s.ended_at { br; span.muted { (at) } }
                    }
                } } }
            } }
        }
        h2 { "Control results we shared" }
        p { "Exchange documents written from this store with "
            code { "borderlens controls export --sender CODE [--anonymise-key FILE] --out FILE" }
            ", newest first, from the audit log." }
        @if exports.is_empty() {
            p.muted { "None exported yet." }
        } @else {
            div.scroll { table #exports {
                thead { tr {
                    th { "Written (UTC)" } th { "By" } th { "Sender code" } th { "Results" }
                    th { "Anonymised" } th { "SHA-256" } th { "Written to" }
                } }
                tbody { @for x in &exports { tr {
                    td { (x.at) }
                    td { (x.actor) }
                    td { (x.sender) }
                    td { (x.results) }
                    td { @if x.anonymised { "yes" } @else {
                        strong.bad { "no: names, officers and places included" } } }
                    td { code title=(x.sha256) { (x.sha256.get(..16).unwrap_or(&x.sha256)) "…" } }
                    td { (x.destination) }
                } } }
            } }
        }
        h2 { "Control results shared with us" }
        p { "Other administrations' anonymised exchange documents, imported with "
            code { "borderlens controls import FILE" } ". They name declarations by the "
            "sender's pseudonyms and carry no officer, place, remark or identifier; they are "
            "kept apart from this store's results and pooled with them in "
            code { "borderlens controls pooled" } "." }
        @if foreign.is_empty() {
            p.muted { "None imported yet." }
        } @else {
            div.scroll { table #foreign {
                thead { tr {
                    th { "Sender" } th { "Documents" } th { "Newest made (UTC)" }
                    th { "Controlled declarations" } th { "Fraud found" }
                } }
                tbody { @for f in &foreign { tr {
                    td { (f.source) }
                    td { (f.documents) }
                    td { (f.newest_document.as_deref().unwrap_or("–")) }
                    td { (f.total.controls) }
                    td { (f.total.hits) }
                } } }
            } }
            (chart(&app::pooled_chart(&pooled)))
        }
    };
    html_response(
        StatusCode::OK,
        layout("Federated training", Some(caller), None, body),
    )
}
