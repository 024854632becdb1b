//! The handlers: read the request, call one `borderlens-app` job on a blocking thread, answer.
//! Who may call which handler is decided before, by the route table and `auth::authorize`.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use borderlens_app::{self as app, Role};
use borderlens_controls::FieldError;
use borderlens_domain::{Lane, RecordStatus};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{Authenticated, ClientIp};
use crate::error::ApiError;
use crate::pool::blocking;
use crate::roles::Permission;
use crate::{AppState, MAX_BODY_BYTES, SESSION_COOKIE};

/// The confidence level of the intervals the estimates route reports.
const CONFIDENCE: f64 = 0.95;

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

pub(crate) async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!(
            "no route {}: GET /api/v1/openapi.json lists them",
            uri.path()
        ),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{method} is not allowed on {}: GET /api/v1/openapi.json lists the methods",
            uri.path()
        ),
    )
}

/// The body of a JSON request: 413 over the limit, 415 unless `Content-Type` is JSON.
fn json_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    typed_body(
        headers,
        body,
        "application/json",
        &format!(
            "request body over {} KiB: nothing was stored",
            MAX_BODY_BYTES / 1024
        ),
    )
}

/// A request body of media type `media`: 413 with `too_large` over the route's limit, 400 when
/// it cannot be read, 415 unless `Content-Type` is `media`.
fn typed_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    media: &str,
    too_large: &str,
) -> Result<Bytes, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, too_large)
        } else {
            ApiError::bad_request(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    })?;
    let matches = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case(media));
    if !matches {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Content-Type must be {media}"),
        ));
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`: 400 when it is not JSON, 422 when it is JSON of the wrong shape
/// (wrong type, missing or unknown field), naming the field.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if !inner.is_data() {
            return ApiError::bad_request(format!("malformed JSON: {inner}"));
        }
        let reason = inner.to_string();
        if path == "." {
            return ApiError::unprocessable(reason);
        }
        ApiError {
            fields: vec![FieldError::new(path.clone(), reason.clone())],
            ..ApiError::unprocessable(format!("{path}: {reason}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A login.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    /// User name.
    user: String,
    /// Password.
    password: String,
}

/// A new session (its id is in the cookie only).
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Session")]
pub(crate) struct SessionBody {
    /// User name.
    user: String,
    /// The user's role.
    role: Role,
    /// Send as `X-CSRF-Token` with the cookie on requests that change state.
    csrf_token: String,
    /// When the session ends (UTC).
    #[schemars(extend("format" = "date-time"))]
    expires_at: String,
}

/// The session cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
/// page sends it), `Path=/`, and `Secure` unless configured off.
pub(crate) fn session_cookie_header(
    state: &AppState,
    value: &str,
    max_age: u32,
) -> Result<HeaderValue, ApiError> {
    let secure = if state.config.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| ApiError::internal(&format!("cookie header: {e}")))
}

pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_body(&headers, body)?;
    let request: LoginRequest = parse_json(&bytes)?;
    let session = attempt_login(&state, ip, request.user, request.password).await?;
    let cookie = session_cookie_header(&state, &session.session_id, state.config.session_seconds)?;
    let body = SessionBody {
        user: session.user,
        role: session.role,
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    };
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Checks a user name and password under the login rate limit: the new session, 401 for a
/// wrong name or password, 429 with `Retry-After` over the limit.
pub(crate) async fn attempt_login(
    state: &AppState,
    ip: Option<std::net::IpAddr>,
    user: String,
    password: String,
) -> Result<app::NewSession, ApiError> {
    let ttl = state.config.session_seconds;
    let outcome = blocking(&state.pool, None, move |store| {
        app::login(store, &user, &password, ip, ttl)
    })
    .await?;
    match outcome {
        app::LoginOutcome::Session(session) => Ok(session),
        app::LoginOutcome::Refused => Err(ApiError::unauthenticated("wrong user name or password")),
        app::LoginOutcome::Limited { retry_after } => Err(ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "too many failed logins for this user name or address: try again in \
                     {retry_after} s"
                ),
            )
        }),
    }
}

pub(crate) async fn logout(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    if let Some(session_id) = auth.session_id {
        blocking(&state.pool, Some(auth.caller.user), move |store| {
            app::logout(store, &session_id)
        })
        .await?;
    }
    let cookie = session_cookie_header(&state, "", 0)?;
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response())
}

pub(crate) async fn me(auth: Authenticated) -> Json<app::Caller> {
    Json(auth.caller)
}

pub(crate) async fn record_control_result(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_body(&headers, body)?;
    // Parsed once, here (400 when it is not JSON), into a typed submission (422 naming every
    // problem when its shape is wrong); the job validates the answers and stores it.
    let submission = app::read_control_submission(parse_json(&bytes)?)?;
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::record_control_submission(store, &submission, "api")
    })
    .await?;
    let status = if report.status == RecordStatus::Duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(report)).into_response())
}

pub(crate) async fn explain_decision(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let trace = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::explain_decision(store, &id)
    })
    .await?;
    Ok(Json(trace).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EstimatesQuery {
    by: Option<String>,
}

/// The query's `by` (default `origin`), when it is one of `dimensions`; else 422 naming it.
fn dimension_of(
    query: Result<Query<EstimatesQuery>, QueryRejection>,
    dimensions: &[&str],
) -> Result<String, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    let by = query.by.unwrap_or_else(|| "origin".to_string());
    if dimensions.contains(&by.as_str()) {
        return Ok(by);
    }
    let reason = format!(
        "'{}' is not a dimension: use one of {}",
        by.chars().take(40).collect::<String>(),
        dimensions.join(", ")
    );
    Err(ApiError {
        fields: vec![FieldError::new("by", reason.clone())],
        ..ApiError::unprocessable(format!("by: {reason}"))
    })
}

pub(crate) async fn estimates(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<EstimatesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let by = dimension_of(query, &app::DIMENSIONS)?;
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::estimates(store, &by, CONFIDENCE)
    })
    .await?;
    Ok(Json(report).into_response())
}

pub(crate) async fn pooled(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<EstimatesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let by = dimension_of(query, &app::POOLED_DIMENSIONS)?;
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::pooled_statistics(store, &by, CONFIDENCE)
    })
    .await?;
    Ok(Json(report).into_response())
}

/// The X-ray desk's library, or 404 when the server serves none.
fn desk_of(state: &AppState) -> Result<std::sync::Arc<app::NiiDesk>, ApiError> {
    state.desk.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "this server serves no X-ray library (start it with serve --nii-library LIB)",
        )
    })
}

/// Runs a desk job on a blocking thread (the detector runs on the CPU).
pub(crate) async fn on_desk<T: Send + 'static>(
    state: &AppState,
    job: impl FnOnce(&app::NiiDesk) -> Result<T, app::JobError> + Send + 'static,
) -> Result<T, ApiError> {
    let desk = desk_of(state)?;
    tokio::task::spawn_blocking(move || job(&desk))
        .await
        .map_err(|e| ApiError::internal(&format!("job failed: {e}")))?
        .map_err(ApiError::from)
}

/// Where detection `n` of `view` of scan `id` is drawn as a PNG.
pub(crate) fn heat_map_path(id: &str, view: usize, n: usize) -> String {
    let id: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
    format!("/api/v1/nii/scans/{id}/views/{view}/heat/{n}")
}

pub(crate) async fn scan_detections(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let report = on_desk(&state, move |desk| {
        desk.detections(&id, &|view, n| heat_map_path(&id, view, n))
    })
    .await?;
    Ok(Json(report).into_response())
}

pub(crate) async fn detection_heat_map(
    State(state): State<AppState>,
    path: Result<Path<(String, usize, usize)>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path((id, view, n)) =
        path.map_err(|e| ApiError::bad_request(format!("path: {}", e.body_text())))?;
    let png = on_desk(&state, move |desk| desk.heat_png(&id, view, n)).await?;
    let mut response = png.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("image/png"));
    Ok(response)
}

/// A page of the X-ray library's scans: every query parameter but `page` is a filter
/// (`app::ScanFilter`); `page` counts from 1. Personal fields may be filtered on only by the
/// roles that read declarations.
pub(crate) async fn nii_scans(
    State(state): State<AppState>,
    auth: Authenticated,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let mut filter = app::ScanFilter::default();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "page" {
            filter.page = match value.parse::<usize>() {
                Ok(n) if n >= 1 => n - 1,
                _ => {
                    let reason = format!(
                        "'{}' is not a page number: use 1, 2, ...",
                        value.chars().take(40).collect::<String>()
                    );
                    return Err(ApiError {
                        fields: vec![FieldError::new("page", reason.clone())],
                        ..ApiError::unprocessable(format!("page: {reason}"))
                    });
                }
            };
        } else {
            filter.terms.push((key.into_owned(), value.into_owned()));
        }
    }
    let personal = Permission::ReadDecisions
        .roles()
        .contains(&auth.caller.role);
    let page = on_desk(&state, move |desk| desk.browse(&filter, personal)).await?;
    Ok(Json(page).into_response())
}

/// The review queue of the X-ray library: views with disputed objects, open ones first.
pub(crate) async fn nii_disputes(State(state): State<AppState>) -> Result<Response, ApiError> {
    let queue = on_desk(&state, |desk| desk.dispute_queue()).await?;
    Ok(Json(queue).into_response())
}

/// The path's `{id}` (a declaration's or a token's), 400 when it cannot be decoded.
pub(crate) fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|e| ApiError::bad_request(format!("id: {}", e.body_text())))
}

/// A date `YYYY-MM-DD`, or 422 naming `field`.
fn date(field: &str, text: &str) -> Result<chrono::NaiveDate, ApiError> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
        let reason = format!(
            "'{}' is not a date: use YYYY-MM-DD",
            text.chars().take(40).collect::<String>()
        );
        ApiError {
            fields: vec![FieldError::new(field, reason.clone())],
            ..ApiError::unprocessable(format!("{field}: {reason}"))
        }
    })
}

/// A query string of the wrong shape: 422 naming what is wrong.
fn query_of<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(q)| q)
        .map_err(|e| ApiError::unprocessable(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueQuery {
    day: Option<String>,
    lane: Option<String>,
    office: Option<String>,
    sort: Option<String>,
    /// Declaration id or importer id (part of it, case-insensitive).
    search: Option<String>,
    /// Page, from 1; only with `page_size`.
    page: Option<usize>,
    /// Rows per page; every row when absent.
    page_size: Option<usize>,
}

pub(crate) async fn queue(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    let sort = match query.sort.as_deref() {
        None => app::QueueSort::default(),
        Some(name) => app::QueueSort::parse(name).ok_or_else(|| ApiError {
            fields: vec![FieldError::new("sort", "use lane, score, pi or id")],
            ..ApiError::unprocessable("sort: use lane, score, pi or id")
        })?,
    };
    let lane = query
        .lane
        .as_deref()
        .map(Lane::parse)
        .transpose()
        .map_err(|e| ApiError {
            fields: vec![FieldError::new("lane", e.to_string())],
            ..ApiError::unprocessable(format!("lane: {e}"))
        })?;
    if query.page.is_some() && query.page_size.is_none() {
        return Err(ApiError {
            fields: vec![FieldError::new("page", "give page_size with page")],
            ..ApiError::unprocessable("page: give page_size with page")
        });
    }
    let filter = app::QueueFilter {
        day: query.day,
        lane,
        office: query.office,
        sort,
        search: query.search,
        page_size: query.page_size,
        page: query.page.unwrap_or(1),
    };
    let queue = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::queue(store, &filter)
    })
    .await?;
    Ok(Json(queue).into_response())
}

/// The saved scores of a declaration's items.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "DeclarationScores")]
pub(crate) struct ScoresBody {
    /// Declaration.
    declaration_id: String,
    /// By item, then model version.
    scores: Vec<app::ItemScore>,
}

pub(crate) async fn declaration_scores(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let lookup = id.clone();
    let scores = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::declaration_scores(store, &lookup)
    })
    .await?;
    Ok(Json(ScoresBody {
        declaration_id: id,
        scores,
    })
    .into_response())
}

/// An officer's override of a selection decision.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OverrideRequest {
    /// The new lane.
    lane: Lane,
    /// Why (mandatory: at least 5 visible characters, no control characters but line breaks
    /// and tabs; kept in the record, trimmed).
    #[schemars(length(min = 5, max = 1000))]
    reason: String,
}

pub(crate) async fn override_decision(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let bytes = json_body(&headers, body)?;
    let request: OverrideRequest = parse_json(&bytes)?;
    let entry = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::override_decision(store, &id, request.lane, &request.reason)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(app::DecisionEntry::from(entry))).into_response())
}

pub(crate) async fn bias_audit(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Response, ApiError> {
    let audit = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::bias_audit(store, &borderlens_monitor::bias::BiasOptions::default())
    })
    .await?;
    Ok(Json(audit).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DriftQuery {
    reference_from: String,
    reference_to: String,
    from: String,
    to: String,
    model: Option<String>,
}

pub(crate) async fn drift(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<DriftQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query_of(query)?;
    let request = app::DriftRequest {
        reference: (
            date("reference_from", &q.reference_from)?,
            date("reference_to", &q.reference_to)?,
        ),
        current: (date("from", &q.from)?, date("to", &q.to)?),
        model: q.model,
        scored_only: false,
    };
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::drift_report(store, &request)
    })
    .await?;
    Ok(Json(report).into_response())
}

/// Which declarations to decide on, with what (`borderlens select`).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "SelectRequest")]
pub(crate) struct SelectBody {
    /// Policy name (its latest version).
    policy: String,
    /// Model name (its latest version) that scores.
    model: String,
    /// First day.
    #[schemars(extend("format" = "date"))]
    from: String,
    /// Last day.
    #[schemars(extend("format" = "date"))]
    to: String,
    /// Seed of the random draws.
    #[serde(default)]
    seed: u64,
    /// One batch per office and day (else one per day).
    #[serde(default)]
    per_office: bool,
}

pub(crate) async fn select(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_body(&headers, body)?;
    let b: SelectBody = parse_json(&bytes)?;
    let request = app::SelectRequest {
        from: date("from", &b.from)?,
        to: date("to", &b.to)?,
        policy: b.policy,
        model: b.model,
        seed: b.seed,
        per_office: b.per_office,
    };
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::select(store, &request, &app::Silent)
    })
    .await?;
    Ok(Json(report).into_response())
}

/// What to score, with which model.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ScoreRequest")]
pub(crate) struct ScoreBody {
    /// Model name.
    model: String,
    /// Model version; the latest when absent.
    version: Option<u32>,
    /// First day; the day after the model's training data when absent.
    #[schemars(extend("format" = "date"))]
    from: Option<String>,
    /// Last day.
    #[schemars(extend("format" = "date"))]
    to: Option<String>,
    /// Inspection rate (percent) whose threshold marks `selected`.
    #[serde(default = "default_rate")]
    #[schemars(extend("enum" = [1, 2, 5, 10]))]
    rate: u32,
}

fn default_rate() -> u32 {
    5
}

/// Items listed in the answer of the score job (the riskiest); all are saved.
const SCORED_LISTED: usize = 100;

/// What scoring a period did.
#[derive(Serialize, JsonSchema)]
pub(crate) struct ScoreSummary {
    /// Model name.
    model: String,
    /// Model version.
    version: u32,
    /// Inspection rate (percent) whose threshold marks `selected`.
    rate: u32,
    /// Threshold of that rate.
    threshold: f64,
    /// Items scored (and saved).
    scored: usize,
    /// Items at or above the threshold.
    selected: usize,
    /// The riskiest items, riskiest first (at most 100).
    riskiest: Vec<app::ScoredItem>,
}

pub(crate) async fn score(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_body(&headers, body)?;
    let b: ScoreBody = parse_json(&bytes)?;
    let request = app::ScoreRequest {
        from: b.from.as_deref().map(|d| date("from", d)).transpose()?,
        to: b.to.as_deref().map(|d| date("to", d)).transpose()?,
        model: b.model,
        version: b.version,
        explain: true,
        top_reasons: 3,
        rate: b.rate,
    };
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::score(store, &request, &app::Silent)
    })
    .await?;
    let selected = report.items.iter().filter(|i| i.selected).count();
    Ok(Json(ScoreSummary {
        model: report.model,
        version: report.version,
        rate: report.rate,
        threshold: report.threshold,
        scored: report.items.len(),
        selected,
        riskiest: report.items.into_iter().take(SCORED_LISTED).collect(),
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportQuery {
    name: String,
    #[serde(default)]
    strict: bool,
}

/// Longest file name kept as a source.
const MAX_SOURCE_NAME: usize = 200;

pub(crate) async fn import(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let query = query_of(query)?;
    let bytes = typed_body(
        &headers,
        body,
        "text/csv",
        &format!(
            "file over {} MiB: nothing was stored; use `borderlens import`",
            crate::MAX_IMPORT_BYTES / (1024 * 1024)
        ),
    )?;
    let name = query.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_SOURCE_NAME
        || name.chars().any(char::is_control)
    {
        return Err(ApiError {
            fields: vec![FieldError::new(
                "name",
                format!("a file name of 1 to {MAX_SOURCE_NAME} printable characters"),
            )],
            ..ApiError::unprocessable("name: a file name of printable characters")
        });
    }
    let source = format!("upload:{name}");
    let user = auth.caller.user.clone();
    let report = blocking(&state.pool, Some(user), move |store| {
        app::import_bytes(
            store,
            &source,
            &bytes,
            &borderlens_ingest::ColumnMapping::kcs_default_for_csv(&bytes),
            query.strict,
            &app::Silent,
        )
    })
    .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokensQuery {
    user: Option<String>,
}

pub(crate) async fn list_tokens(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<TokensQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let user = query_of(query)?.user;
    let tokens = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::list_tokens(store, user.as_deref())
    })
    .await?;
    Ok(Json(tokens).into_response())
}

/// Whose API token to create.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTokenRequest {
    /// An existing user.
    user: String,
}

pub(crate) async fn create_token(
    State(state): State<AppState>,
    auth: Authenticated,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = json_body(&headers, body)?;
    let request: NewTokenRequest = parse_json(&bytes)?;
    let token = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::create_token(store, &request.user)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(token)).into_response())
}

pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::revoke_token(store, &id)
    })
    .await?;
    Ok(Json(report).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExplanationQuery {
    model: String,
    version: Option<u32>,
    item: Option<u32>,
    rate: Option<u32>,
}

pub(crate) async fn explanation(
    State(state): State<AppState>,
    auth: Authenticated,
    id: Result<Path<String>, PathRejection>,
    query: Result<Query<ExplanationQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let q = query_of(query)?;
    let request = app::ExplainRequest {
        model: q.model,
        version: q.version,
        key: borderlens_domain::ItemKey {
            declaration_id: id,
            item_no: q.item.unwrap_or(1),
        },
        rate: q.rate.unwrap_or(5),
    };
    let (report, _) = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::explain(store, &request)
    })
    .await?;
    Ok(Json(report).into_response())
}

/// Largest body of the HS routes: above the common limit so that a 1 MB description reaches
/// the handler and is refused as a 422 naming `text`, not cut off as a 413.
pub(crate) const HS_BODY_BYTES: usize = 2 * 1024 * 1024;

/// A goods description to read.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HsSuggestRequest")]
pub(crate) struct HsSuggestBody {
    /// The goods description, free text (at most 64 KiB; the model reads its first 1,024
    /// bytes).
    #[schemars(length(min = 1, max = 65536))]
    text: String,
    /// How many 6-digit codes to suggest (3 when absent).
    #[serde(default = "default_k")]
    #[schemars(range(min = 1, max = 20))]
    k: usize,
}

fn default_k() -> usize {
    app::HS_SUGGESTIONS
}

/// A declared code and the description declared with it.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HsCheckRequest")]
pub(crate) struct HsCheckBody {
    /// The declared HS code: 2, 4, 6, 8 or 10 digits, dots and spaces allowed (`6112.49`).
    #[schemars(length(min = 2, max = 40))]
    declared: String,
    /// The goods description (at most 64 KiB).
    #[schemars(length(min = 1, max = 65536))]
    text: String,
}

/// The body of an HS route: 413 over [`HS_BODY_BYTES`], 415 unless JSON.
fn hs_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    typed_body(
        headers,
        body,
        "application/json",
        &format!("request body over {} MiB", HS_BODY_BYTES / (1024 * 1024)),
    )
}

/// A refusal of the HS jobs ("field: reason") as a 422 naming the field.
fn hs_refusal(error: app::JobError) -> ApiError {
    match &error {
        app::JobError::Invalid(message) => {
            let (field, reason) = message.split_once(": ").unwrap_or(("", message));
            ApiError {
                fields: vec![FieldError::new(field, reason)],
                ..ApiError::unprocessable(message.clone())
            }
        }
        _ => ApiError::from(error),
    }
}

pub(crate) async fn hs_suggest(
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = hs_body(&headers, body)?;
    let request: HsSuggestBody = parse_json(&bytes)?;
    // A few hundred microseconds of CPU: no store, no blocking pool.
    let report = app::hs_suggest(&request.text, request.k).map_err(hs_refusal)?;
    Ok(Json(report).into_response())
}

pub(crate) async fn hs_check(
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let bytes = hs_body(&headers, body)?;
    let request: HsCheckBody = parse_json(&bytes)?;
    let report = app::hs_check(&request.declared, &request.text).map_err(hs_refusal)?;
    Ok(Json(report).into_response())
}
