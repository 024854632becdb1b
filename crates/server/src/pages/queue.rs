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
    /// Declaration id or importer id (part of it).
    q: Option<String>,
    page: Option<String>,
    size: Option<String>,
}

/// Rows per page unless the officer picks another size.
const PAGE_SIZE: usize = 50;
/// The page sizes offered.
const PAGE_SIZES: [usize; 4] = [10, 25, 50, 100];

/// A whole number from a query parameter: `None` when blank, an error naming the parameter.
fn number(name: &str, value: Option<String>) -> Result<Option<usize>, ApiError> {
    match chosen(value) {
        None => Ok(None),
        Some(text) => text.trim().parse().map(Some).map_err(|_| {
            ApiError::unprocessable(format!(
                "{name}: '{}' is not a whole number",
                text.chars().take(20).collect::<String>()
            ))
        }),
    }
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
        let error =
            ApiError::unprocessable("the queue takes day, lane, office, sort, q, page and size");
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
    let (page, size) = match (number("page", query.page), number("size", query.size)) {
        (Ok(page), Ok(size)) => (page.unwrap_or(1), size.unwrap_or(PAGE_SIZE)),
        (Err(e), _) | (_, Err(e)) => return error_page(Some(caller), &e),
    };
    let filter = QueueFilter {
        day: chosen(query.day),
        lane,
        office: chosen(query.office),
        sort,
        search: chosen(query.q),
        page_size: Some(size),
        page,
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
                label.search { "Declaration or importer"
                    input type="search" name="q" maxlength=(app::QUEUE_SEARCH_MAX)
                        value=(shown.search.clone().unwrap_or_default()) placeholder="id, or part of it";
                }
                label { "Per page"
                    select name="size" {
                        @for n in PAGE_SIZES {
                            option value=(n) selected[n == size] { (n) }
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
            } @else {
                p.muted data-matching=(queue.matching) {
                    "Showing " ((queue.page - 1) * size + 1) "–" ((queue.page - 1) * size + queue.rows.len())
                    " of " (queue.matching) "."
                }
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
            @if queue.pages > 1 {
                nav.pager aria-label="Pages of the queue" {
                    @if queue.page > 1 {
                        a rel="prev" href=(page_link(&queue, &shown, &sort_name, size, queue.page - 1)) { "← Previous" }
                    }
                    span { "Page " (queue.page) " of " (queue.pages) }
                    @if queue.page < queue.pages {
                        a rel="next" href=(page_link(&queue, &shown, &sort_name, size, queue.page + 1)) { "Next →" }
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

/// The link to page `page` of the queue with the same filters.
fn page_link(
    queue: &app::Queue,
    shown: &QueueFilter,
    sort: &str,
    size: usize,
    page: usize,
) -> String {
    let mut link = form_urlencoded::Serializer::new(String::new());
    if let Some(day) = &queue.day {
        link.append_pair("day", day);
    }
    if let Some(lane) = shown.lane {
        link.append_pair("lane", lane.name());
    }
    if let Some(office) = &shown.office {
        link.append_pair("office", office);
    }
    if let Some(search) = &shown.search {
        link.append_pair("q", search);
    }
    link.append_pair("sort", sort);
    link.append_pair("size", &size.to_string());
    link.append_pair("page", &page.to_string());
    format!("/queue?{}", link.finish())
}
