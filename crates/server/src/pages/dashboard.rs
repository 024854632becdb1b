//! The dashboard: the latest control results, non-compliance estimates with intervals, weekly
//! hit rates, the bias audit, drift alerts and the newest model's evaluation, as charts. The
//! monitoring parts only for the roles the API lets read them ([`Permission::Monitor`]).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app::{self as app, Dashboard, DashboardParts, EstimateReport};
use borderlens_charts::intervals::{intervals_svg, IntervalRow};
use borderlens_monitor::{bias, drift};
use maud::{html, Markup};
use serde::Deserialize;

use super::{caller_of, chart, error_page, html_response, layout};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::pool::blocking;
use crate::roles::Permission;
use crate::AppState;

/// Segments drawn in the estimates chart (the largest).
const SEGMENTS_DRAWN: usize = 15;

#[derive(Deserialize)]
pub(crate) struct DashboardQuery {
    by: Option<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<DashboardQuery>, QueryRejection>,
) -> Response {
    let caller = caller_of(&auth);
    let by = query
        .ok()
        .and_then(|Query(q)| q.by)
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "origin".to_string());
    if !app::DIMENSIONS.contains(&by.as_str()) {
        let error =
            ApiError::unprocessable(format!("by: use one of {}", app::DIMENSIONS.join(", ")));
        return error_page(Some(caller), &error);
    }
    let dimension = by.clone();
    // What the API refuses a role, its dashboard does not show either (one role table).
    let monitoring = Permission::Monitor.allows(caller.role);
    let parts = if monitoring {
        DashboardParts::All
    } else {
        DashboardParts::Results
    };
    let dashboard = match blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::dashboard(store, &dimension, parts)
    })
    .await
    {
        Ok(dashboard) => dashboard,
        Err(error) => return error_page(Some(caller), &error),
    };
    let body = html! {
        h1 { "Dashboard" }
        (recent(&dashboard))
        @if !monitoring {
            p.muted { "Estimates, hit rates, the bias audit, drift and the model's evaluation are \
                for the roles that may read them (" (role_names(Permission::Monitor)) ")." }
        } @else {
        (estimates(&dashboard, &by))
        @if !dashboard.hit_rates.is_empty() {
            section aria-labelledby="hits" {
                h2 #hits { "Weekly hit rate by office (last twelve weeks)" }
                (chart(&drift::hit_rate_chart_svg("Weekly hit rate of controls by office", &dashboard.hit_rates)))
            }
        }
        (bias_section(&dashboard))
        (drift_section(&dashboard))
        @if let Some(e) = &dashboard.evaluation {
            section aria-labelledby="model" {
                h2 #model { "Model " (e.model) " v" (e.version) " on " (e.from) " … " (e.to) }
                p { "Precision at 5% inspected: " strong { (pct(e.metrics.precision_at.get("5"))) }
                    " · recall at 5%: " strong { (pct(e.metrics.recall_at.get("5"))) }
                    " · ROC-AUC " (format!("{:.3}", e.metrics.roc_auc))
                    " (" (e.metrics.positives) " frauds in " (e.metrics.n) " items never seen in training)" }
                (chart(&e.rate_chart()))
            }
        }
        @if !dashboard.notes.is_empty() {
            section { h2 { "Not shown" } ul { @for n in &dashboard.notes { li { (n) } } } }
        }
        }
    };
    html_response(
        StatusCode::OK,
        layout("Dashboard", Some(caller), None, body),
    )
}

/// The names of the roles that have `permission`, for messages.
fn role_names(permission: Permission) -> String {
    let names: Vec<&str> = permission.roles().iter().map(|r| r.name()).collect();
    names.join(", ")
}

fn pct(value: Option<&f64>) -> String {
    value.map_or_else(|| "–".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn recent(dashboard: &Dashboard) -> Markup {
    html! {
        section aria-labelledby="recent" {
            h2 #recent { "Latest control results (" (dashboard.results_total) " in all)" }
            @if dashboard.recent.is_empty() { p { "None recorded yet." } } @else {
                div.scroll { table #recent-results {
                    thead { tr { th { "Recorded" } th { "Declaration" } th { "Outcome" } th { "Label" } th { "By" } } }
                    tbody { @for r in &dashboard.recent { tr {
                        td { (r.recorded_at) }
                        td { a href={ "/declarations/" (r.declaration_id) } { (r.declaration_id) } }
                        td { (r.outcome) }
                        td { (r.label.clone().unwrap_or_else(|| "none".into())) }
                        td { (r.recorded_by) }
                    } } }
                } }
            }
        }
    }
}

/// A chart row: the estimate with its interval, and the naive rate (hits, inspected, rate).
fn interval_row(
    name: String,
    estimate: Option<(f64, f64, f64)>,
    (hits, inspected, naive): (usize, usize, f64),
) -> IntervalRow {
    IntervalRow {
        name,
        estimate,
        compared: (inspected > 0).then_some(naive),
        note: format!("{hits} hits / {inspected} inspected"),
    }
}

fn estimates_chart(report: &EstimateReport) -> String {
    let mut rows = vec![interval_row(
        "all declarations".to_string(),
        report.overall.as_ref().map(|e| (e.rate, e.low, e.high)),
        (report.naive.hits, report.naive.inspected, report.naive.rate),
    )];
    let mut segments: Vec<_> = report.segments.iter().collect();
    segments.sort_by_key(|s| std::cmp::Reverse(s.naive.population));
    for s in segments.into_iter().take(SEGMENTS_DRAWN) {
        rows.push(interval_row(
            s.segment.clone(),
            s.estimate.as_ref().map(|e| (e.rate, e.low, e.high)),
            (s.naive.hits, s.naive.inspected, s.naive.rate),
        ));
    }
    intervals_svg(
        &format!(
            "Non-compliance rate by {} (95% intervals)",
            report.dimension
        ),
        &rows,
        "share of declarations non-compliant",
        "estimate (Horvitz–Thompson)",
        "naive hits / inspected",
    )
}

fn estimates(dashboard: &Dashboard, by: &str) -> Markup {
    html! {
        section aria-labelledby="estimates" {
            h2 #estimates { "Non-compliance estimates" }
            form.filters method="get" action="/dashboard" {
                label { "Split by"
                    select name="by" {
                        @for d in app::DIMENSIONS { option value=(d) selected[d == by] { (d) } }
                    }
                }
                button.secondary type="submit" { "Show" }
            }
            @if let Some(report) = &dashboard.estimates {
                p.muted { "From " (report.declarations) " decided declarations; "
                    (report.pending) " selections wait for a result; "
                    (report.overrides) " overrides are kept out. The naive rate counts only what "
                    "was inspected, which risk targeting makes too high." }
                (chart(&estimates_chart(report)))
            }
        }
    }
}

fn bias_section(dashboard: &Dashboard) -> Markup {
    html! {
        @if let Some(audit) = &dashboard.bias {
            section aria-labelledby="bias" {
                h2 #bias { "Bias audit of the selections" }
                @if audit.flags.is_empty() {
                    p { "No group is selected well beyond what its hit rate justifies." }
                } @else {
                    ul { @for f in &audit.flags { li.error { (f) } } }
                }
                @for dimension in audit.dimensions.iter().take(2) {
                    (chart(&bias::bias_chart_svg(dimension)))
                }
            }
        }
    }
}

fn drift_section(dashboard: &Dashboard) -> Markup {
    html! {
        @if let (Some(report), Some((reference, current))) = (&dashboard.drift, &dashboard.drift_periods) {
            section aria-labelledby="drift" {
                h2 #drift { "Drift: " (current.0) " … " (current.1) " against " (reference.0) " … " (reference.1) }
                @if report.alerts.is_empty() { p { "No alert." } } @else {
                    ul { @for a in &report.alerts {
                        li { strong { (format!("{:?}", a.severity)) } ": " (a.what) }
                    } }
                }
                (chart(&drift::psi_chart_svg(report)))
            }
        }
    }
}
