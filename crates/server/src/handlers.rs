//! The handlers: read the request, call one `borderlens-app` job on a blocking thread, answer.
//! Who may call which handler is decided before, by the route table and `auth::authorize`.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use borderlens_app::{self as app, Role};
use borderlens_controls::FieldError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::auth::{limiter_keys, Authenticated, ClientIp};
use crate::error::ApiError;
use crate::pool::blocking;
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
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body over {} KiB: nothing was stored",
                    MAX_BODY_BYTES / 1024
                ),
            )
        } else {
            ApiError::bad_request(format!(
                "cannot read the request body: {}",
                rejection.body_text()
            ))
        }
    })?;
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json",
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

/// 400 unless `bytes` are one well-formed JSON document (its shape is the job's to check).
fn check_json_syntax(bytes: &[u8]) -> Result<&str, ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginRequest {
    user: String,
    password: String,
}

#[derive(Serialize)]
struct SessionBody {
    user: String,
    role: Role,
    csrf_token: String,
    expires_at: String,
}

/// The session cookie: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's
/// page sends it), `Path=/`, and `Secure` unless configured off.
fn session_cookie_header(
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
    let keys = limiter_keys(&request.user, ip);
    let attempt = state
        .limiter
        .begin(&keys, Instant::now())
        .map_err(|seconds| ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                "too many failed logins for this user name or address: try again in {seconds} s"
            ),
            )
        })?;
    let ttl = state.config.session_seconds;
    let session = blocking(&state.pool, None, move |store| {
        app::login(store, &request.user, &request.password, ttl)
    })
    .await?;
    let Some(session) = session else {
        return Err(ApiError::unauthenticated("wrong user name or password"));
    };
    state.limiter.succeeded(&keys, attempt);
    let cookie = session_cookie_header(&state, &session.session_id, ttl)?;
    let body = SessionBody {
        user: session.user,
        role: session.role,
        csrf_token: session.csrf_token,
        expires_at: session.expires_at,
    };
    Ok(([(SET_COOKIE, cookie)], Json(body)).into_response())
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
    let submission = check_json_syntax(&bytes)?.to_string();
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::record_control_result(store, &submission, "api")
    })
    .await?;
    let status = if report.status == "duplicate" {
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
    let Path(id) = id.map_err(|e| ApiError::bad_request(format!("id: {}", e.body_text())))?;
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

pub(crate) async fn estimates(
    State(state): State<AppState>,
    auth: Authenticated,
    query: Result<Query<EstimatesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::unprocessable(e.body_text()))?;
    let by = query.by.unwrap_or_else(|| "origin".to_string());
    if !app::DIMENSIONS.contains(&by.as_str()) {
        let reason = format!(
            "'{}' is not a dimension: use one of {}",
            by.chars().take(40).collect::<String>(),
            app::DIMENSIONS.join(", ")
        );
        return Err(ApiError {
            fields: vec![FieldError::new("by", reason.clone())],
            ..ApiError::unprocessable(format!("by: {reason}"))
        });
    }
    let report = blocking(&state.pool, Some(auth.caller.user), move |store| {
        app::estimates(store, &by, CONFIDENCE)
    })
    .await?;
    Ok(Json(report).into_response())
}
