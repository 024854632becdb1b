//! The risk queue: a day's declarations by lane and score, each with its top reasons.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use borderlens_app::{self as app, QueueFilter, QueueSort};
use borderlens_domain::Lane;
use maud::html;
use serde::Deserialize;

use super::{caller_of, error_page, html_response, lane_badge, layout, prob};
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::pool::blocking;
use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct QueueQuery {
    day: Option<String>,
    lane: Option<String>,
    office: Option<String>,
    sort: Option<String>,
}

/// An empty select means "all".
fn chosen(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

pub(crate) async fn page(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Response {
    let caller = caller_of(&auth);
    let Ok(Query(query)) = query else {
        let error = ApiError::unprocessable("the queue takes day, lane, office and sort");
        return error_page(Some(caller), &error);
    };
    let sort_name = chosen(query.sort).unwrap_or_else(|| "lane".to_string());
    let Some(sort) = QueueSort::parse(&sort_name) else {
        let error = ApiError::unprocessable("sort: use lane, score, pi or id");
        return error_page(Some(caller), &error);
    };
    let lane = match chosen(query.lane).as_deref().map(Lane::parse).transpose() {
        Ok(lane) => lane,
        Err(e) => return error_page(Some(caller), &ApiError::unprocessable(format!("lane: {e}"))),
    };
    let filter = QueueFilter {
        day: chosen(query.day),
        lane,
        office: chosen(query.office),
        sort,
    };
    let shown = filter.clone();
    let queue = match blocking(&state.pool, Some(caller.user.clone()), move |store| {
        app::queue(store, &filter)
    })
    .await
    {
        Ok(queue) => queue,
        Err(error) => return error_page(Some(caller), &error),
    };
    let total: usize = queue.lanes.values().sum();
    let body = html! {
        h1 {
            "Risk queue"
            @if let Some(day) = &queue.day { " · " (day) }
        }
        @if queue.day.is_none() {
            section { p { "Nothing has been selected yet: run " code { "borderlens select" }
                " (or the demo) and the day's declarations appear here." } }
        } @else {
            p.muted {
                (total) " declarations decided: "
                @for (i, lane) in app::LANES.iter().enumerate() {
                    @if i > 0 { ", " }
                    (queue.lanes.get(lane.name()).copied().unwrap_or(0)) " " (lane)
                }
                "."
            }
            form.filters.card method="get" action="/queue" aria-label="Filter the queue" {
                label { "Day"
                    select name="day" {
                        @for day in &queue.days {
                            option value=(day) selected[Some(day) == queue.day.as_ref()] { (day) }
                        }
                    }
                }
                label { "Lane"
                    select name="lane" {
                        option value="" { "all" }
                        @for lane in app::LANES {
                            option value=(lane) selected[shown.lane == Some(*lane)] { (lane) }
                        }
                    }
                }
                label { "Office"
                    select name="office" {
                        option value="" { "all" }
                        @for office in &queue.offices {
                            option value=(office) selected[shown.office.as_ref() == Some(office)] { (office) }
                        }
                    }
                }
                label { "Sort by"
                    select name="sort" {
                        @for (name, words) in [("lane", "lane, then score"), ("score", "score"), ("pi", "π, rarest first"), ("id", "declaration id")] {
                            option value=(name) selected[sort_name == name] { (words) }
                        }
                    }
                }
                button.secondary type="submit" { "Show" }
            }
            @if queue.rows.is_empty() {
                p { "No declaration matches these filters." }
            }
            ol.queue {
                @for row in &queue.rows {
                    li data-lane=(row.lane) {
                        div.top {
                            (lane_badge(row.lane))
                            a.id href={ "/declarations/" (row.declaration_id) } { (row.declaration_id) }
                            span { "score " strong { (row.score.map(prob).unwrap_or_else(|| "–".into())) } }
                            span { "π " (prob(row.pi)) }
                            span.muted { (row.source) @if row.overridden { " (overridden)" } }
                            @if let Some(outcome) = &row.outcome {
                                span.muted { "result: " (outcome) }
                            }
                        }
                        div.muted {
                            "office " (row.office) " · HS " (row.hs6) " · origin " (row.origin)
                            " · importer " (row.importer)
                        }
                        @if !row.reasons.is_empty() {
                            ul.reasons {
                                @for reason in &row.reasons { li { (reason) } }
                            }
                        }
                    }
                }
            }
        }
    };
    html_response(
        StatusCode::OK,
        layout("Risk queue", Some(caller), None, body),
    )
}
