//! The route table: every route with its method, path, who may use it, and what it takes and
//! answers. The router ([`router`]), the authorisation middleware and the OpenAPI document
//! (`openapi.rs`) are all built from [`routes`], so a route cannot be served without being
//! documented and guarded.

use axum::extract::DefaultBodyLimit;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderValue, Method};
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use borderlens_app::Role;
use serde_json::Value;

use crate::openapi::schemas;
use crate::{auth, handlers, AppState, MAX_BODY_BYTES};

/// Prefix of every versioned API route.
pub const API_PREFIX: &str = "/api/v1";

/// Who may use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials.
    Public,
    /// A logged-in user (session cookie) or an API token whose user has one of these roles.
    Roles(&'static [Role]),
}

impl Access {
    /// Whether a user with `role` may use the route (always for a public one).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Public => true,
            Access::Roles(roles) => roles.contains(&role),
        }
    }
}

/// What a response carries, for the OpenAPI document.
#[derive(Clone, Debug)]
pub(crate) enum Content {
    /// `application/json` with this JSON Schema.
    Json(Value),
    /// `text/plain`.
    Text,
    /// No body.
    Empty,
}

/// One route of the API.
#[derive(Clone)]
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path, with parameters as `{name}` (the same syntax for axum and OpenAPI).
    pub path: &'static str,
    /// Who may use it.
    pub access: Access,
    /// One line on what it does.
    pub summary: &'static str,
    pub(crate) operation_id: &'static str,
    /// OpenAPI parameter objects (path and query parameters).
    pub(crate) parameters: Vec<Value>,
    /// JSON Schema of the request body, when it takes one.
    pub(crate) request_body: Option<Value>,
    /// Success responses: status, description, content.
    pub(crate) responses: Vec<(u16, &'static str, Content)>,
    /// Error statuses particular to this route (the common ones, 400/401/403/413/415/422/500,
    /// are added from the access and the request body).
    pub(crate) errors: Vec<(u16, &'static str)>,
    pub(crate) handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

impl Route {
    /// Whether the route changes state (and so needs the CSRF token with a session cookie).
    pub fn changes_state(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD | Method::OPTIONS)
    }

    /// Whether the route takes a JSON request body.
    pub fn takes_body(&self) -> bool {
        self.request_body.is_some()
    }
}

const EVERYONE: &[Role] = &Role::ALL;
const RECORDERS: &[Role] = &[Role::Officer, Role::Manager, Role::Admin];
const DECISION_READERS: &[Role] = &[Role::Officer, Role::Analyst, Role::Manager, Role::Admin];
const ESTIMATE_READERS: &[Role] = &[Role::Analyst, Role::Manager, Role::Admin];

/// Every route the service answers, in the order of the OpenAPI document.
pub fn routes() -> Vec<Route> {
    vec![
        Route {
            method: Method::GET,
            path: "/healthz",
            access: Access::Public,
            summary: "Liveness: answers `ok` while the service runs",
            operation_id: "healthz",
            parameters: vec![],
            request_body: None,
            responses: vec![(200, "The service runs", Content::Text)],
            errors: vec![],
            handler: |m| on(m, handlers::healthz),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/openapi.json",
            access: Access::Public,
            summary: "This document: every route, its roles and its schemas (OpenAPI 3.1)",
            operation_id: "openapi",
            parameters: vec![],
            request_body: None,
            responses: vec![(
                200,
                "The OpenAPI document",
                Content::Json(serde_json::json!({"type": "object"})),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::openapi),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/login",
            access: Access::Public,
            summary: "Log in with a user name and password: sets the session cookie and returns \
                      the CSRF token that state-changing requests of the session must carry in \
                      `X-CSRF-Token`",
            operation_id: "login",
            parameters: vec![],
            request_body: Some(schemas::login_request()),
            responses: vec![(
                200,
                "Logged in; the `Set-Cookie` header carries the session",
                Content::Json(schemas::session()),
            )],
            errors: vec![
                (401, "Wrong user name or password"),
                (
                    429,
                    "Too many failed logins for this user name or client address in the last \
                     60 s; `Retry-After` says when to try again",
                ),
            ],
            handler: |m| on(m, handlers::login),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/logout",
            access: Access::Roles(EVERYONE),
            summary: "End the session and clear its cookie (with an API token: nothing to end)",
            operation_id: "logout",
            parameters: vec![],
            request_body: None,
            responses: vec![(204, "Logged out", Content::Empty)],
            errors: vec![],
            handler: |m| on(m, handlers::logout),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/me",
            access: Access::Roles(EVERYONE),
            summary: "Who is calling: user, role, and the session's CSRF token",
            operation_id: "me",
            parameters: vec![],
            request_body: None,
            responses: vec![(200, "The caller", Content::Json(schemas::caller()))],
            errors: vec![],
            handler: |m| on(m, handlers::me),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/control-results",
            access: Access::Roles(RECORDERS),
            summary: "Record a control result (the submission `borderlens controls record` \
                      takes; docs/controls.md). Idempotent by `submission_id`: a retry of the \
                      same submission answers 200 `duplicate` and stores nothing twice",
            operation_id: "recordControlResult",
            parameters: vec![],
            request_body: Some(schemas::control_result_submission()),
            responses: vec![
                (
                    201,
                    "Recorded (committed before the answer)",
                    Content::Json(schemas::record_report()),
                ),
                (
                    200,
                    "The same submission was already recorded; nothing changed (`status`: \
                     `duplicate`)",
                    Content::Json(schemas::record_report()),
                ),
            ],
            errors: vec![
                (404, "The declaration is not in the store"),
                (
                    409,
                    "The submission id is already used by a result with other content",
                ),
            ],
            handler: |m| on(m, handlers::record_control_result),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/declarations/{id}/decision",
            access: Access::Roles(DECISION_READERS),
            summary: "Why a declaration was (not) controlled and what was found: score, \
                      contributions, π, policy, overrides, control results \
                      (`borderlens explain-decision`)",
            operation_id: "explainDecision",
            parameters: vec![serde_json::json!({
                "name": "id", "in": "path", "required": true,
                "description": "Declaration id",
                "schema": {"type": "string"}
            })],
            request_body: None,
            responses: vec![(
                200,
                "The declaration's trace",
                Content::Json(schemas::decision_trace()),
            )],
            errors: vec![(404, "No such declaration")],
            handler: |m| on(m, handlers::explain_decision),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/estimates",
            access: Access::Roles(ESTIMATE_READERS),
            summary: "Horvitz–Thompson estimates of the non-compliance rate with 95% intervals, \
                      overall and by segment (`borderlens estimate`)",
            operation_id: "estimates",
            parameters: vec![serde_json::json!({
                "name": "by", "in": "query", "required": false,
                "description": "Segment dimension (default `origin`)",
                "schema": {"type": "string", "enum": borderlens_app::DIMENSIONS}
            })],
            request_body: None,
            responses: vec![(
                200,
                "The estimates",
                Content::Json(schemas::estimate_report()),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::estimates),
        },
    ]
}

/// The axum method filter of a route's method (the table holds standard methods only).
fn filter_of(method: &Method) -> MethodFilter {
    match *method {
        Method::POST => MethodFilter::POST,
        Method::PUT => MethodFilter::PUT,
        Method::PATCH => MethodFilter::PATCH,
        Method::DELETE => MethodFilter::DELETE,
        _ => MethodFilter::GET,
    }
}

/// The router: each route of the table, guarded by the authorisation middleware unless public,
/// JSON answers for unknown paths (404) and methods (405), and the body limit.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes() {
        let mut method_router = (route.handler)(filter_of(&route.method));
        if let Access::Roles(roles) = route.access {
            let guard = auth::Guard {
                method: route.method.clone(),
                path: route.path,
                roles,
                changes_state: route.changes_state(),
            };
            method_router = method_router.route_layer(from_fn_with_state(
                state.clone(),
                move |state, request, next| auth::authorize(state, guard.clone(), request, next),
            ));
        }
        router = router.route(route.path, method_router);
    }
    router
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(map_response(security_headers))
        .with_state(state)
}

/// Headers on every answer: the API serves data, never a page, so nothing it returns may be
/// sniffed into HTML, run as script, framed or cached (free text such as remarks is stored as
/// typed and must stay inert). Server-rendered pages will need their own policy.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}
