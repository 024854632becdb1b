//! Every error the API answers: a status code and a JSON body `{"error": "...", "fields": [...]}`
//! (`fields` only when the fields at fault are known). [`ApiError::from`] on a [`JobError`] is the
//! one place where a job's error becomes a status code.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use borderlens_app::JobError;
use borderlens_controls::FieldError;
use borderlens_store::StoreError;
use schemars::JsonSchema;
use serde::Serialize;

/// An error answer.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    pub(crate) fields: Vec<FieldError>,
    /// Seconds, for 429 and 503.
    pub(crate) retry_after: Option<u64>,
    /// For 401: ask for a bearer token or a session.
    pub(crate) authenticate: bool,
}

/// The body of every error answer.
#[derive(Serialize, JsonSchema)]
#[schemars(rename = "Error")]
pub(crate) struct Body<'a> {
    /// What is wrong, naming the field when known.
    error: &'a str,
    /// Each field at fault (`field` empty for the document as a whole); only when known.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            fields: Vec::new(),
            retry_after: None,
            authenticate: false,
        }
    }

    /// 400: the request cannot be read (malformed JSON, bad encoding).
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 422: well-formed, but the content is refused.
    pub(crate) fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    /// 401 with `WWW-Authenticate`.
    pub(crate) fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError {
            authenticate: true,
            ..ApiError::new(StatusCode::UNAUTHORIZED, message)
        }
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }

    /// 500, with a message that reveals nothing of the server; the detail goes to stderr.
    pub(crate) fn internal(detail: &str) -> ApiError {
        eprintln!("borderlens-server: internal error: {detail}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error (details are in the server's log)",
        )
    }
}

/// The `Retry-After` of a 503 for a busy store, in seconds.
pub(crate) const BUSY_RETRY_AFTER_SECONDS: u64 = 5;

/// How each job error is answered: refused content 422 (with the fields), unknown things 404,
/// a reused submission id 409, a store busy with another writer 503 with `Retry-After`,
/// everything else 500 without details.
impl From<JobError> for ApiError {
    fn from(error: JobError) -> ApiError {
        let message = error.to_string();
        match error {
            JobError::Refused { errors, .. } => ApiError {
                fields: errors.0,
                ..ApiError::unprocessable(message)
            },
            JobError::Invalid(_) => ApiError::unprocessable(message),
            JobError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, message),
            // Another writer (a long import) held the store past the busy timeout: nothing was
            // written, and the same request will do once it is done. Not retried here: the
            // request has already waited the whole timeout.
            JobError::Store(store) if store.is_busy() => ApiError {
                retry_after: Some(BUSY_RETRY_AFTER_SECONDS),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "the store is busy with another write (an import, perhaps) and stayed \
                         so for {} s: nothing was stored; send the same request again in a \
                         moment",
                        borderlens_store::BUSY_TIMEOUT.as_secs()
                    ),
                )
            },
            JobError::Store(store) => match store {
                StoreError::SubmissionConflict { .. } => {
                    ApiError::new(StatusCode::CONFLICT, message)
                }
                StoreError::UnknownDeclaration { .. }
                | StoreError::UnknownUser { .. }
                | StoreError::UnknownModel { .. } => ApiError::new(StatusCode::NOT_FOUND, message),
                StoreError::Invalid { .. } | StoreError::InvalidItem { .. } => {
                    ApiError::unprocessable(message)
                }
                _ => ApiError::internal(&message),
            },
            JobError::Interrupted | JobError::ImportInterrupted { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
            }
            JobError::Risk(_) | JobError::Io { .. } | JobError::Internal(_) => {
                ApiError::internal(&message)
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(Body {
                error: &self.message,
                fields: &self.fields,
            }),
        )
            .into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.authenticate {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"borderlens\""),
            );
        }
        response
    }
}
