//! The officer pages: server-rendered HTML (maud escapes every value it interpolates), one small
//! style sheet and one small script that only enhances (follow-up questions, check digits,
//! barcode scan, drafts). Every page works without the script and without a mouse.
//!
//! [`pages`] is the page table, like `routes()` for the API: the router and the authorisation of
//! every page are built from it. A page answers HTML errors instead of JSON: no session sends the
//! browser to the login page (303), a role the page does not admit gets a 403 page, a form post
//! without the session's CSRF token gets a 403 page and changes nothing.

mod audit;
mod control;
mod dashboard;
mod declaration;
mod federation;
mod login;
mod nii;
mod nii_library;
mod queue;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, LOCATION, REFERRER_POLICY,
};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;
use borderlens_app::{Caller, Role};
use borderlens_domain::Lane;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use crate::auth::{self, Authenticated, Guard};
use crate::error::ApiError;
use crate::roles::Permission;
use crate::routes::Access;
use crate::{AppState, MAX_BODY_BYTES};

/// The policy of every page: only this server's style sheet and script, no inline script, no
/// framing, forms post only here. Charts are inline SVG markup, not script.
const PAGE_CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
                        img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
                        form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

// Who may open each page, and see each part of one: the API's role table (`roles.rs`).
const EVERYONE: &[Role] = Permission::Session.roles();
const READERS: &[Role] = Permission::ReadDecisions.roles();
const RECORDERS: &[Role] = Permission::Record.roles();
const AUDITORS: &[Role] = Permission::Audit.roles();
const ANNOTATORS: &[Role] = Permission::Annotate.roles();
const SCAN_READERS: &[Role] = Permission::ReadScans.roles();
const REVIEWERS: &[Role] = Permission::Review.roles();

/// One page (or form target) of the site.
pub struct Page {
    /// GET for pages, POST for form targets.
    pub method: Method,
    /// Path, parameters as `{name}`.
    pub path: &'static str,
    /// Who may open it.
    pub access: Access,
    /// What it shows or does.
    pub summary: &'static str,
    handler: fn(MethodFilter) -> MethodRouter<AppState>,
}

/// Every page and form target of the site.
pub fn pages() -> Vec<Page> {
    let page = |method: Method,
                path: &'static str,
                access: Access,
                summary: &'static str,
                handler: fn(MethodFilter) -> MethodRouter<AppState>| Page {
        method,
        path,
        access,
        summary,
        handler,
    };
    vec![
        page(
            Method::GET,
            "/",
            Access::Roles(EVERYONE),
            "Home: the role's first page",
            |m| on(m, home),
        ),
        page(Method::GET, "/login", Access::Public, "Log-in form", |m| {
            on(m, login::form)
        }),
        page(
            Method::POST,
            "/login",
            Access::Public,
            "Log in (rate-limited like the API)",
            |m| on(m, login::submit),
        ),
        page(
            Method::POST,
            "/logout",
            Access::Roles(EVERYONE),
            "Log out",
            |m| on(m, login::logout),
        ),
        page(
            Method::GET,
            "/queue",
            Access::Roles(READERS),
            "Risk queue: a day's declarations by lane and score, with top reasons",
            |m| on(m, queue::page),
        ),
        page(
            Method::GET,
            "/declarations/{id}",
            Access::Roles(READERS),
            "Declaration: declared beside derived values, score, contributions, \
             counterfactual, linked records, decision with π, control results",
            |m| on(m, declaration::page),
        ),
        page(
            Method::POST,
            "/declarations/{id}/override",
            Access::Roles(RECORDERS),
            "Override the decision (reason mandatory)",
            |m| on(m, declaration::override_lane),
        ),
        page(
            Method::GET,
            "/declarations/{id}/control",
            Access::Roles(RECORDERS),
            "Control result form (from the form schema, with follow-up questions)",
            |m| on(m, control::form),
        ),
        page(
            Method::POST,
            "/declarations/{id}/control",
            Access::Roles(RECORDERS),
            "Record the control result",
            |m| on(m, control::submit),
        ),
        page(
            Method::GET,
            "/dashboard",
            Access::Roles(READERS),
            "Dashboard: results, non-compliance estimates, hit rates, bias audit, drift, \
             model evaluation",
            |m| on(m, dashboard::page),
        ),
        page(
            Method::GET,
            "/audit",
            Access::Roles(AUDITORS),
            "Audit log",
            |m| on(m, audit::page),
        ),
        page(
            Method::GET,
            "/federation",
            Access::Roles(AUDITORS),
            "Federated training: the partners, the sessions this node took part in, their \
             rounds, what was shared and the privacy budget",
            |m| on(m, federation::page),
        ),
        page(
            Method::GET,
            "/nii",
            Access::Roles(ANNOTATORS),
            "X-ray annotation desk: the scans, the hybrid loop's figures (views per hour, \
             agreement with the model shown and hidden), model versions, retraining",
            |m| on(m, nii::desk),
        ),
        page(
            Method::GET,
            "/nii/scans/{id}",
            Access::Roles(ANNOTATORS),
            "Review a scan: the model's proposals drawn on it (or hidden for the automation-bias \
             share), accept, move, relabel, delete or add objects",
            |m| on(m, nii::scan),
        ),
        page(
            Method::POST,
            "/nii/scans/{id}",
            Access::Roles(ANNOTATORS),
            "Save a review with its recorded actions and time",
            |m| on(m, nii::save),
        ),
        page(
            Method::GET,
            "/nii/scans/{id}/image",
            Access::Roles(SCAN_READERS),
            "A scan's view (`?view=N`, the first by default) as an 8-bit grey PNG",
            |m| on(m, nii::image),
        ),
        page(
            Method::GET,
            "/nii/library",
            Access::Roles(SCAN_READERS),
            "X-ray library: the scans, with filters on every metadata field, the provenance and \
             the annotation state",
            |m| on(m, nii_library::browse),
        ),
        page(
            Method::GET,
            "/nii/library/scans/{id}",
            Access::Roles(SCAN_READERS),
            "A scan in the viewer: window and level on the 16-bit data, zoom and pan, \
             pseudo-colour, each source's objects and the consensus as layers; metadata and \
             provenance",
            |m| on(m, nii_library::scan),
        ),
        page(
            Method::GET,
            "/nii/library/scans/{id}/raw",
            Access::Roles(SCAN_READERS),
            "One energy channel of a view as raw 16-bit samples, for the viewer",
            |m| on(m, nii_library::raw),
        ),
        page(
            Method::GET,
            "/nii/report",
            Access::Roles(SCAN_READERS),
            "The library's quality report, with charts",
            |m| on(m, nii_library::report),
        ),
        page(
            Method::GET,
            "/nii/disputes",
            Access::Roles(REVIEWERS),
            "Review queue: views with disputed objects, open ones first",
            |m| on(m, nii_library::disputes),
        ),
        page(
            Method::GET,
            "/nii/disputes/{id}",
            Access::Roles(REVIEWERS),
            "A view's disputed objects, each annotator's boxes, and the decision form",
            |m| on(m, nii_library::dispute),
        ),
        page(
            Method::POST,
            "/nii/disputes/{id}",
            Access::Roles(REVIEWERS),
            "Record a reviewer's decision (its own source; the consensus follows it)",
            |m| on(m, nii_library::decide),
        ),
        page(
            Method::POST,
            "/nii/retrain",
            Access::Roles(ANNOTATORS),
            "Retrain the detector on the corrected set; the new version replaces the active one \
             only when not worse on the held-out set",
            |m| on(m, nii::retrain),
        ),
        page(
            Method::GET,
            "/static/app.css",
            Access::Public,
            "Style sheet",
            |m| on(m, stylesheet),
        ),
        page(
            Method::GET,
            "/static/app.js",
            Access::Public,
            "Script (progressive enhancement only)",
            |m| on(m, script),
        ),
        page(
            Method::GET,
            "/static/nii.js",
            Access::Public,
            "The X-ray viewer and box drawing (progressive enhancement only)",
            |m| on(m, nii_script),
        ),
    ]
}

/// Adds every page to `router`, guarded unless public.
pub(crate) fn add_pages(mut router: Router<AppState>, state: &AppState) -> Router<AppState> {
    for page in pages() {
        let filter = if page.method == Method::POST {
            MethodFilter::POST
        } else {
            MethodFilter::GET
        };
        let mut method_router = (page.handler)(filter);
        if let Access::Roles(roles) = page.access {
            let guard = Guard {
                method: page.method.clone(),
                path: page.path,
                roles,
                changes_state: page.method == Method::POST,
            };
            method_router = method_router.route_layer(from_fn_with_state(
                state.clone(),
                move |state, request, next| authorize_page(state, guard.clone(), request, next),
            ));
        }
        router = router.route(page.path, method_router);
    }
    router
}

/// The guard of every page: the browser goes to the login page without a session, a wrong role
/// gets a 403 page, and a form post must carry the session's CSRF token in its `csrf_token`
/// field (the body is read here, checked, and handed on unchanged).
async fn authorize_page(
    State(state): State<AppState>,
    guard: Guard,
    request: Request,
    next: Next,
) -> Response {
    let authenticated = match auth::identify(&state, request.headers()).await {
        Ok(authenticated) => authenticated,
        Err(error) if error.status == StatusCode::UNAUTHORIZED => {
            let target = request
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".to_string());
            let next_page = if guard.changes_state {
                "/".to_string()
            } else {
                target
            };
            return see_other(&format!("/login?next={}", encode(&next_page)));
        }
        Err(error) => return error_page(None, &error),
    };
    if let Err(error) = auth::check_role(&guard, &authenticated.caller) {
        return error_page(Some(&authenticated.caller), &error);
    }
    if guard.changes_state && !same_origin(request.headers()) {
        let error = ApiError::forbidden(
            "this form did not come from borderlens (another site's page sent it): nothing was \
             changed",
        );
        return error_page(Some(&authenticated.caller), &error);
    }
    let (parts, body) = request.into_parts();
    let mut request = if guard.changes_state {
        let bytes = match to_bytes(body, MAX_BODY_BYTES).await {
            Ok(bytes) => bytes,
            Err(_) => {
                let error = ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!(
                        "the form is over {} KiB: nothing was stored",
                        MAX_BODY_BYTES / 1024
                    ),
                );
                return error_page(Some(&authenticated.caller), &error);
            }
        };
        let form = Form::parse(&bytes);
        let given = form.get("csrf_token").unwrap_or_default();
        if authenticated.session_id.is_none() || !auth::csrf_matches(&authenticated.caller, given) {
            let error = ApiError::forbidden(
                "this form is out of date or did not come from borderlens (wrong CSRF token): \
                 nothing was changed; go back, reload the page and send it again",
            );
            return error_page(Some(&authenticated.caller), &error);
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        Request::from_parts(parts, body)
    };
    request.extensions_mut().insert(authenticated);
    next.run(request).await
}

/// Whether a form post comes from this site: no `Origin` header (older browsers, other
/// clients), or one whose host and port are the request's `Host`. Browsers send `Origin` with
/// every POST, so another site's form is refused before anything else is looked at.
pub(crate) fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, rest)| !host.is_empty() && rest.eq_ignore_ascii_case(host))
}

/// A URL-encoded form body: fields in order, a name may repeat (checkboxes).
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn parse(bytes: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every (name, value) pair, in order.
    pub(crate) fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of `name`, in order.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The `{id}` of a page's path, 400 when it cannot be decoded.
pub(crate) fn path_id(
    id: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<String, ApiError> {
    crate::handlers::path_id(id)
}

/// Percent-encodes `text` for a query string.
pub(crate) fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// A 303 to `location` (after a form post, or to the login page).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// An HTML answer with the pages' security policy.
pub(crate) fn html_response(status: StatusCode, markup: Markup) -> Response {
    let mut response = (status, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP));
    // Nothing leaves for other sites; this site's own form posts keep their `Origin` (with
    // `no-referrer` browsers send `Origin: null`, which the form guard refuses).
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    response
}

/// An error as a page: the status and the message, with the navigation when logged in.
pub(crate) fn error_page(caller: Option<&Caller>, error: &ApiError) -> Response {
    let title = match error.status {
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        StatusCode::SERVICE_UNAVAILABLE => "Busy, try again",
        s if s.is_server_error() => "Something went wrong",
        _ => "Cannot do this",
    };
    let body = html! {
        h1 { (title) }
        div.banner.bad role="alert" { p { (error.message) } }
        @for field in &error.fields {
            p.error { (field.field) ": " (field.reason) }
        }
        p { a href="/" { "Back to the start page" } }
    };
    let mut response = html_response(error.status, layout(title, caller, None, body));
    if let Some(seconds) = error.retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The frame of every page: header with the links the role may use, then `body`.
pub(crate) fn layout(
    title: &str,
    caller: Option<&Caller>,
    csrf: Option<&str>,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · borderlens" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
                script src="/static/nii.js" defer {}
            }
            // The user names the device's drafts (app.js), which logging out removes.
            body data-user=[caller.map(|c| c.user.as_str())] {
                a.skip href="#main" { "Skip to content" }
                header {
                    a.brand href="/" { "borderlens" }
                    @if let Some(caller) = caller {
                        nav aria-label="Main" {
                            @if READERS.contains(&caller.role) {
                                a href="/queue" { "Queue" }
                                a href="/dashboard" { "Dashboard" }
                            }
                            @if ANNOTATORS.contains(&caller.role) {
                                a href="/nii" { "X-ray desk" }
                            }
                            a href="/nii/library" { "X-ray library" }
                            @if AUDITORS.contains(&caller.role) {
                                a href="/audit" { "Audit log" }
                                a href="/federation" { "Federation" }
                            }
                        }
                        span.muted { (caller.user) " (" (caller.role.name()) ")" }
                        @if let Some(csrf) = csrf.or(caller.csrf_token.as_deref()) {
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf_token" value=(csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" { (body) }
            }
        }
    }
}

/// An SVG chart inlined into a page (charts escape their own text).
pub(crate) fn chart(svg: &str) -> Markup {
    html! { figure.chart { (PreEscaped(svg)) } }
}

/// The caller of a guarded page.
pub(crate) fn caller_of(auth: &Authenticated) -> &Caller {
    &auth.caller
}

async fn home(auth: Authenticated) -> Response {
    if READERS.contains(&auth.caller.role) {
        return see_other("/queue");
    }
    if ANNOTATORS.contains(&auth.caller.role) {
        return see_other("/nii");
    }
    let body = html! {
        h1 { "Welcome, " (auth.caller.user) }
        section {
            p { "Your role (" (auth.caller.role.name()) ") has no page here. Risk queues, \
                 declarations and dashboards are for officers, analysts and managers; the \
                 X-ray desk for annotators." }
        }
    };
    html_response(
        StatusCode::OK,
        layout("Welcome", Some(&auth.caller), None, body),
    )
}

/// Static files change only with a new build: a day in the cache is safe.
fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=86400"));
    response
}

async fn stylesheet() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    )
}

async fn nii_script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/nii.js"),
    )
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    )
}

/// A lane as a coloured badge.
pub(crate) fn lane_badge(lane: Lane) -> Markup {
    let class = match lane {
        Lane::Red => "lane lane-red",
        Lane::Yellow => "lane lane-yellow",
        Lane::Green => "lane lane-green",
    };
    html! { span class=(class) { (lane) } }
}

/// A probability with three decimals.
pub(crate) fn prob(value: f64) -> String {
    format!("{value:.3}")
}
