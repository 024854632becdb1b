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
use borderlens_app::{self as app, Role};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::Value;

use crate::openapi::ControlResultSubmission;
use crate::roles::Permission;
use crate::{auth, handlers, AppState, MAX_BODY_BYTES, MAX_IMPORT_BYTES};

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

/// The JSON Schema of a type, from the document's generator: a `$ref` to
/// `#/components/schemas/NAME` for a named type (its schema is added to the components).
pub(crate) type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// What a response carries, for the OpenAPI document.
#[derive(Clone, Copy)]
pub(crate) enum Content {
    /// `application/json`: the type the handler serialises.
    Json(SchemaOf),
    /// `text/plain`.
    Text,
    /// `image/png`.
    Png,
    /// No body.
    Empty,
}

impl Content {
    /// `application/json` of type `T`.
    pub(crate) fn json<T: JsonSchema>() -> Content {
        Content::Json(SchemaGenerator::subschema_for::<T>)
    }
}

/// What a request body is, for the OpenAPI document and the body checks.
#[derive(Clone, Copy)]
pub(crate) enum Body {
    /// `application/json`: the type the handler reads.
    Json(SchemaOf),
    /// A CSV file (`text/csv`) of at most this many bytes.
    Csv(usize),
}

impl Body {
    /// `application/json` of type `T`.
    pub(crate) fn json<T: JsonSchema>() -> Option<Body> {
        Some(Body::Json(SchemaGenerator::subschema_for::<T>))
    }
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
    /// The request body, when it takes one.
    pub(crate) request_body: Option<Body>,
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

    /// Whether the route takes a request body.
    pub fn takes_body(&self) -> bool {
        self.request_body.is_some()
    }
}

// Who may use each route: the one role table (`roles.rs`), which the pages use too.
const EVERYONE: &[Role] = Permission::Session.roles();
const RECORDERS: &[Role] = Permission::Record.roles();
const DECISION_READERS: &[Role] = Permission::ReadDecisions.roles();
const ESTIMATE_READERS: &[Role] = Permission::Monitor.roles();
const SCORERS: &[Role] = Permission::Score.roles();
const SELECTORS: &[Role] = Permission::Select.roles();
const ADMINS: &[Role] = Permission::Administer.roles();
const SCAN_READERS: &[Role] = Permission::ReadScans.roles();
const SCAN_REVIEWERS: &[Role] = Permission::Review.roles();

/// The OpenAPI object of the `{id}` path parameter of the X-ray routes.
fn scan_id_parameter() -> Value {
    serde_json::json!({
        "name": "id", "in": "path", "required": true,
        "description": "Scan id in the X-ray library the server serves (`serve --nii-library`)",
        "schema": {"type": "string"}
    })
}

/// The OpenAPI object of a required integer path parameter.
fn index_parameter(name: &str, description: &str) -> Value {
    serde_json::json!({
        "name": name, "in": "path", "required": true,
        "description": description,
        "schema": {"type": "integer", "minimum": 0}
    })
}

/// The OpenAPI object of the `{id}` path parameter.
fn id_parameter() -> Value {
    serde_json::json!({
        "name": "id", "in": "path", "required": true,
        "description": "Declaration id",
        "schema": {"type": "string"}
    })
}

/// The OpenAPI object of an optional query parameter.
fn query_parameter(name: &str, description: &str, schema: Value) -> Value {
    serde_json::json!({
        "name": name, "in": "query", "required": false,
        "description": description, "schema": schema
    })
}

/// The OpenAPI object of a required date query parameter.
fn date_parameter(name: &str, description: &str) -> Value {
    serde_json::json!({
        "name": name, "in": "query", "required": true,
        "description": description, "schema": {"type": "string", "format": "date"}
    })
}

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
                Content::Json(|_| schemars::json_schema!({"type": "object"})),
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
            request_body: Body::json::<handlers::LoginRequest>(),
            responses: vec![(
                200,
                "Logged in; the `Set-Cookie` header carries the session",
                Content::json::<handlers::SessionBody>(),
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
            responses: vec![(200, "The caller", Content::json::<app::Caller>())],
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
            request_body: Body::json::<ControlResultSubmission>(),
            responses: vec![
                (
                    201,
                    "Recorded (committed before the answer)",
                    Content::json::<app::RecordReport>(),
                ),
                (
                    200,
                    "The same submission was already recorded; nothing changed (`status`: \
                     `duplicate`)",
                    Content::json::<app::RecordReport>(),
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
                Content::json::<app::DecisionTrace>(),
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
                "schema": {"type": "string", "enum": app::DIMENSIONS}
            })],
            request_body: None,
            responses: vec![(200, "The estimates", Content::json::<app::EstimateReport>())],
            errors: vec![],
            handler: |m| on(m, handlers::estimates),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/pooled",
            access: Access::Roles(ESTIMATE_READERS),
            summary: "Hit rates pooled over this store's controls and the foreign results it \
                      imported (other administrations' anonymised exchange documents), by \
                      origin, route or concealment method, with 95% intervals \
                      (`borderlens controls pooled`)",
            operation_id: "pooled",
            parameters: vec![serde_json::json!({
                "name": "by", "in": "query", "required": false,
                "description": "Segment dimension (default `origin`)",
                "schema": {"type": "string", "enum": app::POOLED_DIMENSIONS}
            })],
            request_body: None,
            responses: vec![(
                200,
                "The pooled statistics",
                Content::json::<app::PooledReport>(),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::pooled),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/imports",
            access: Access::Roles(SCORERS),
            summary: "Import declarations: a CSV file of the sample's layout as the body \
                      (`borderlens import`). Bad records are reported with line and field and \
                      not stored; the rest is, in one transaction; re-importing changes nothing; \
                      a record contradicting what is stored is a conflict and the original stays",
            operation_id: "importDeclarations",
            parameters: vec![
                serde_json::json!({
                    "name": "name", "in": "query", "required": true,
                    "description": "The file's name, used in reports and kept as the records' source",
                    "schema": {"type": "string", "maxLength": 200}
                }),
                query_parameter(
                    "strict",
                    "Refuse the whole file when any record is bad",
                    serde_json::json!({"type": "boolean", "default": false}),
                ),
            ],
            request_body: Some(Body::Csv(MAX_IMPORT_BYTES)),
            responses: vec![(
                200,
                "What happened to the file (also when the whole file was refused: `file_error`)",
                Content::json::<app::FileReport>(),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::import).layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES)),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/select",
            access: Access::Roles(SELECTORS),
            summary: "Decide the lanes of a period's declarations with a policy, recording π \
                      (`borderlens select`); days already decided are skipped",
            operation_id: "select",
            parameters: vec![],
            request_body: Body::json::<handlers::SelectBody>(),
            responses: vec![(
                200,
                "The batches decided",
                Content::json::<app::SelectReport>(),
            )],
            errors: vec![(404, "No such policy or model")],
            handler: |m| on(m, handlers::select),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/queue",
            access: Access::Roles(DECISION_READERS),
            summary: "The risk queue of a day: every declaration decided that day with its lane, \
                      π, score, top reasons and control outcome (the queue page's data)",
            operation_id: "queue",
            parameters: vec![
                query_parameter(
                    "day",
                    "Day (YYYY-MM-DD); default the latest decided day",
                    serde_json::json!({"type": "string", "format": "date"}),
                ),
                query_parameter(
                    "lane",
                    "Only this lane",
                    serde_json::json!({"type": "string", "enum": app::LANES}),
                ),
                query_parameter(
                    "office",
                    "Only this office",
                    serde_json::json!({"type": "string"}),
                ),
                query_parameter(
                    "sort",
                    "Order: lane then score (default), score, pi (rarest first) or id",
                    serde_json::json!({"type": "string", "enum": ["lane", "score", "pi", "id"]}),
                ),
                query_parameter(
                    "search",
                    "Only declarations whose id or importer id contains this text \
                     (case-insensitive; blank means all)",
                    serde_json::json!({"type": "string", "maxLength": app::QUEUE_SEARCH_MAX}),
                ),
                query_parameter(
                    "page_size",
                    "Rows per page; every row on one page when absent",
                    serde_json::json!({"type": "integer", "minimum": 1,
                                       "maximum": app::QUEUE_PAGE_SIZE_MAX}),
                ),
                query_parameter(
                    "page",
                    "Page to show, from 1 (needs page_size; a page past the last shows the last)",
                    serde_json::json!({"type": "integer", "minimum": 1}),
                ),
            ],
            request_body: None,
            responses: vec![(200, "The queue", Content::json::<app::Queue>())],
            errors: vec![(404, "Nothing was decided on that day")],
            handler: |m| on(m, handlers::queue),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/declarations/{id}/score",
            access: Access::Roles(DECISION_READERS),
            summary: "The saved risk scores of a declaration's items, by model version, with \
                      their top reasons (`borderlens score` saves them)",
            operation_id: "declarationScores",
            parameters: vec![id_parameter()],
            request_body: None,
            responses: vec![(200, "The scores", Content::json::<handlers::ScoresBody>())],
            errors: vec![(404, "No such declaration")],
            handler: |m| on(m, handlers::declaration_scores),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/declarations/{id}/override",
            access: Access::Roles(RECORDERS),
            summary: "Override the selection decision: a new lane with a mandatory reason, kept \
                      beside the original decision (`borderlens override`)",
            operation_id: "overrideDecision",
            parameters: vec![id_parameter()],
            request_body: Body::json::<handlers::OverrideRequest>(),
            responses: vec![(
                201,
                "The override entry",
                Content::json::<app::DecisionEntry>(),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::override_decision),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/score",
            access: Access::Roles(SCORERS),
            summary: "Score a period with a model and save the scores with their top reasons \
                      (`borderlens score --explain`); answers the counts and the riskiest items",
            operation_id: "score",
            parameters: vec![],
            request_body: Body::json::<handlers::ScoreBody>(),
            responses: vec![(
                200,
                "Scored and saved",
                Content::json::<handlers::ScoreSummary>(),
            )],
            errors: vec![(404, "No such model")],
            handler: |m| on(m, handlers::score),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/bias-audit",
            access: Access::Roles(ESTIMATE_READERS),
            summary: "Selection and hit rates by origin, office, importer size and declarant, \
                      with flagged groups (`borderlens bias-audit`)",
            operation_id: "biasAudit",
            parameters: vec![],
            request_body: None,
            responses: vec![(
                200,
                "The audit",
                Content::json::<borderlens_monitor::bias::BiasAudit>(),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::bias_audit),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/drift",
            access: Access::Roles(ESTIMATE_READERS),
            summary: "Feature, score and hit-rate drift between two periods, with displacement \
                      and alerts (`borderlens drift`)",
            operation_id: "drift",
            parameters: vec![
                date_parameter("reference_from", "First day of the reference period"),
                date_parameter("reference_to", "Last day of the reference period"),
                date_parameter("from", "First day of the current period"),
                date_parameter("to", "Last day of the current period"),
                query_parameter(
                    "model",
                    "Compare this model's scores too",
                    serde_json::json!({"type": "string"}),
                ),
            ],
            request_body: None,
            responses: vec![(
                200,
                "The drift report",
                Content::json::<borderlens_monitor::drift::DriftReport>(),
            )],
            errors: vec![],
            handler: |m| on(m, handlers::drift),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/declarations/{id}/explanation",
            access: Access::Roles(DECISION_READERS),
            summary: "Explain an item's score with a chosen model version: every contribution, \
                      the counterfactual at an inspection rate, the declared values \
                      (`borderlens explain`)",
            operation_id: "explain",
            parameters: vec![
                id_parameter(),
                serde_json::json!({
                    "name": "model", "in": "query", "required": true,
                    "description": "Model name", "schema": {"type": "string"}
                }),
                query_parameter(
                    "version",
                    "Model version (the newest when absent)",
                    serde_json::json!({"type": "integer", "minimum": 1}),
                ),
                query_parameter(
                    "item",
                    "Item number (1 when absent)",
                    serde_json::json!({"type": "integer", "minimum": 1}),
                ),
                query_parameter(
                    "rate",
                    "Inspection rate in percent of the counterfactual's threshold (5 when absent)",
                    serde_json::json!({"type": "integer", "minimum": 1, "maximum": 100}),
                ),
            ],
            request_body: None,
            responses: vec![(
                200,
                "The explanation",
                Content::json::<app::ExplainReport>(),
            )],
            errors: vec![(404, "No such declaration item or model")],
            handler: |m| on(m, handlers::explanation),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/hs/suggest",
            access: Access::Roles(DECISION_READERS),
            summary: "HS codes suggested from a goods description by the shipped model: the best \
                      6-digit codes with their words and calibrated probabilities, and the \
                      back-off outcome (`borderlens hs suggest`); a text too vague or unreadable \
                      is routed to review, never given a guess",
            operation_id: "hsSuggest",
            parameters: vec![],
            request_body: Body::json::<handlers::HsSuggestBody>(),
            responses: vec![(200, "The reading", Content::json::<app::HsSuggestReport>())],
            errors: vec![],
            handler: |m| {
                on(m, handlers::hs_suggest).layer(DefaultBodyLimit::max(handlers::HS_BODY_BYTES))
            },
        },
        Route {
            method: Method::POST,
            path: "/api/v1/hs/check",
            access: Access::Roles(DECISION_READERS),
            summary: "A declared HS code checked against its goods description: the mismatch at \
                      chapter, heading and 6-digit level, each flagged as agreeing or disagreeing \
                      (`borderlens hs check`)",
            operation_id: "hsCheck",
            parameters: vec![],
            request_body: Body::json::<handlers::HsCheckBody>(),
            responses: vec![(200, "The check", Content::json::<app::HsCheckReport>())],
            errors: vec![],
            handler: |m| {
                on(m, handlers::hs_check).layer(DefaultBodyLimit::max(handlers::HS_BODY_BYTES))
            },
        },
        Route {
            method: Method::GET,
            path: "/api/v1/tokens",
            access: Access::Roles(ADMINS),
            summary: "API tokens by id, user, creation time and state, newest first; never the \
                      tokens themselves (`borderlens token list`)",
            operation_id: "listTokens",
            parameters: vec![query_parameter(
                "user",
                "Only this user's tokens",
                serde_json::json!({"type": "string"}),
            )],
            request_body: None,
            responses: vec![(200, "The tokens", Content::json::<Vec<app::TokenInfo>>())],
            errors: vec![(404, "No such user")],
            handler: |m| on(m, handlers::list_tokens),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/tokens",
            access: Access::Roles(ADMINS),
            summary: "Create an API token for a user; the token is in this answer only \
                      (`borderlens token create`)",
            operation_id: "createToken",
            parameters: vec![],
            request_body: Body::json::<handlers::NewTokenRequest>(),
            responses: vec![(201, "The new token", Content::json::<app::NewToken>())],
            errors: vec![(404, "No such user")],
            handler: |m| on(m, handlers::create_token),
        },
        Route {
            method: Method::POST,
            path: "/api/v1/tokens/{id}/revoke",
            access: Access::Roles(ADMINS),
            summary: "Revoke an API token for good, by its id or the id's first 8 digits \
                      (`borderlens token revoke`)",
            operation_id: "revokeToken",
            parameters: vec![serde_json::json!({
                "name": "id", "in": "path", "required": true,
                "description": "Token id: 8 to 64 hex digits of the token's SHA-256",
                "schema": {"type": "string"}
            })],
            request_body: None,
            responses: vec![(200, "Revoked", Content::json::<app::RevokeReport>())],
            errors: vec![(404, "No token with this id")],
            handler: |m| on(m, handlers::revoke_token),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/nii/scans",
            access: Access::Roles(SCAN_READERS),
            summary: "The X-ray library's scans, 100 a page, with the filters of the library \
                      page: a metadata field's text is contained in its value (case aside), a \
                      field offered as a list (`filters[].values`) matches one value exactly; \
                      personal fields only for the roles that read declarations",
            operation_id: "niiScans",
            parameters: app::scan_filter_fields()
                .into_iter()
                .map(|name| {
                    query_parameter(
                        name,
                        "Keep the scans whose field matches this text (blank: no filter)",
                        serde_json::json!({"type": "string"}),
                    )
                })
                .chain(std::iter::once(query_parameter(
                    "page",
                    "Page, from 1 (a page past the last shows the last)",
                    serde_json::json!({"type": "integer", "minimum": 1}),
                )))
                .collect(),
            request_body: None,
            responses: vec![(
                200,
                "A page of scans, the counts and the filters with their values",
                Content::json::<app::LibraryPage>(),
            )],
            errors: vec![(404, "No X-ray library is served")],
            handler: |m| on(m, handlers::nii_scans),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/nii/disputes",
            access: Access::Roles(SCAN_REVIEWERS),
            summary: "The review queue of the X-ray library: every view with disputed objects \
                      (labels differ, or an annotator did not draw it), open ones first, with \
                      the reviewer whose decision holds",
            operation_id: "niiDisputes",
            parameters: vec![],
            request_body: None,
            responses: vec![(
                200,
                "The queue and its count of open objects",
                Content::json::<app::DisputeQueue>(),
            )],
            errors: vec![(404, "No X-ray library is served")],
            handler: |m| on(m, handlers::nii_disputes),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/nii/scans/{id}/detections",
            access: Access::Roles(SCAN_READERS),
            summary: "The active X-ray detector on every view of a scan: each view's alarm, \
                      every detection's class, score and box, and its Grad-CAM heat map as a \
                      grid and as a PNG over the scan (`borderlens nii detect`)",
            operation_id: "scanDetections",
            parameters: vec![scan_id_parameter()],
            request_body: None,
            responses: vec![(
                200,
                "The detections",
                Content::json::<app::ScanDetections>(),
            )],
            errors: vec![(
                404,
                "No X-ray library is served, the scan is not in it, or no detector is active",
            )],
            handler: |m| on(m, handlers::scan_detections),
        },
        Route {
            method: Method::GET,
            path: "/api/v1/nii/scans/{id}/views/{view}/heat/{n}",
            access: Access::Roles(SCAN_READERS),
            summary: "Detection `n` of a view (in the order `detections` lists them) as a PNG: \
                      the view in grey, the Grad-CAM heat map blended in from transparent to \
                      red and yellow, the box in cyan",
            operation_id: "detectionHeatMap",
            parameters: vec![
                scan_id_parameter(),
                index_parameter("view", "The view, from 0"),
                index_parameter("n", "The detection, from 0, highest score first"),
            ],
            request_body: None,
            responses: vec![(200, "The heat map over the scan", Content::Png)],
            errors: vec![(
                404,
                "No X-ray library is served, no such scan, view or detection, or no detector \
                 is active",
            )],
            handler: |m| on(m, handlers::detection_heat_map),
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
    crate::pages::add_pages(router, &state)
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(map_response(security_headers))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state)
}

/// Headers on every answer. The API serves data, never a page, so nothing it returns may be
/// sniffed into HTML, run as script, framed or cached (free text such as remarks is stored as
/// typed and must stay inert). Pages set their own policy (their style sheet and script only,
/// see `pages`) and static files their own cache time; everything else gets the strict default.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if !headers.contains_key(CONTENT_SECURITY_POLICY) {
        headers.insert(
            CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
    }
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if !headers.contains_key(REFERRER_POLICY) {
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    }
    response
}
