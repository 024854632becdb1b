//! Black-box tests of the HTTP API: each test starts the real server on `127.0.0.1:0` over its
//! own copy of a small store (the first 300 declaration items of the bundled sample, a 5-tree
//! model, one user and one API token per role) and talks to it over HTTP. Each runs twice, on
//! SQLite and on PostgreSQL (see `common`).
//!
//! The store is checked through a second connection of its own (`Served::with_store`), so what
//! the server acknowledged is seen as committed by another reader.

#[macro_use]
mod common;

use std::ops::Deref;

use borderlens_app::Role;
use borderlens_domain::Lane;
use borderlens_server::{
    routes, Access, Route, ServeConfig, API_PREFIX, MAX_BODY_BYTES, SESSION_COOKIE,
};
use common::{password, user_name, Fixture, Served, Spec, StoreKind};
use reqwest::header::{HeaderMap, AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const SAMPLE_VALID: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_valid_eng.csv"
);
const SERVER_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md");

/// A declaration of the fixture (first data line of the sample).
const DECLARATION: &str = "97061800";

// ---------------------------------------------------------------------------------------------
// fixture

/// The store, built once per test binary and kind of store: sample items, a model, the
/// bundled policy (nothing selected yet), users and tokens.
static FIXTURE: Fixture = Fixture::new(Spec {
    tag: "api",
    train_lines: 300,
    valid_lines: 0,
    model: "s",
    trees: 5,
    select: None,
});

/// A running server over a fresh copy of the fixture's store, and a client.
struct TestApp {
    served: Served,
    client: reqwest::Client,
    /// A scan of the X-ray library the server serves ([`nii_library`]) on whose first view
    /// the active detector finds something.
    nii_scan: String,
}

/// The X-ray library every test server serves, with an active detector: made once per test
/// binary under cargo's scratch folder for integration tests (only read by the API's routes).
fn nii_library() -> &'static (borderlens_app::DeskConfig, String) {
    static NII: std::sync::OnceLock<(borderlens_app::DeskConfig, String)> =
        std::sync::OnceLock::new();
    NII.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("api-nii-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = common::nii_desk(&dir);
        let desk = borderlens_app::NiiDesk::new(config.clone()).unwrap();
        desk.claim_retrain("setup").unwrap();
        desk.retrain("setup", &borderlens_app::Silent).unwrap();
        let scan = common::nii_scans(&config)
            .into_iter()
            .find(|s| {
                let found = desk.detections(s, &|_, _| String::new()).unwrap();
                !found.views[0].detections.is_empty()
            })
            .expect("a scan with a detection");
        (config, scan)
    })
}

impl Deref for TestApp {
    type Target = Served;

    fn deref(&self) -> &Served {
        &self.served
    }
}

impl TestApp {
    /// A second server over the same store.
    async fn another_instance(&self) -> TestApp {
        TestApp {
            served: self.served.another_instance().await,
            client: self.client.clone(),
            nii_scan: self.nii_scan.clone(),
        }
    }
}

async fn spawn_app(kind: StoreKind) -> TestApp {
    spawn_app_with(kind, |_| {}).await
}

async fn spawn_app_with(kind: StoreKind, configure: impl FnOnce(&mut ServeConfig)) -> TestApp {
    let (desk, nii_scan) = tokio::task::spawn_blocking(nii_library).await.unwrap();
    TestApp {
        served: FIXTURE
            .serve_with(kind, |config| {
                config.nii_desk = Some(desk.clone());
                configure(config)
            })
            .await,
        client: borderlens_server::federation::http_client()
            .no_proxy()
            .build()
            .unwrap(),
        nii_scan: nii_scan.clone(),
    }
}

/// How a request authenticates.
#[derive(Clone)]
enum Auth {
    None,
    Bearer(String),
    /// Session cookie value and the CSRF token to send (None: no header).
    Session(String, Option<String>),
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}), status {}: {}", self.status, self.text))
    }

    /// The `error` of a JSON error body (every error answer must have one).
    fn error(&self) -> String {
        let body = self.json();
        assert!(
            self.headers[CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "error without a JSON content type: {:?}",
            self.headers
        );
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {body}"))
            .to_string()
    }
}

impl TestApp {
    fn token(&self, role: Role) -> Auth {
        Auth::Bearer(self.api_token(role))
    }

    async fn send(&self, method: Method, path: &str, auth: &Auth, body: Option<Vec<u8>>) -> Answer {
        self.send_typed(method, path, auth, body.map(|b| (b, "application/json")))
            .await
    }

    /// A request whose body has the given media type.
    async fn send_typed(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<(Vec<u8>, &str)>,
    ) -> Answer {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        match auth {
            Auth::None => {}
            Auth::Bearer(token) => {
                request = request.header(AUTHORIZATION, format!("Bearer {token}"))
            }
            Auth::Session(cookie, csrf) => {
                request = request.header(COOKIE, format!("{SESSION_COOKIE}={cookie}"));
                if let Some(csrf) = csrf {
                    request = request.header("X-CSRF-Token", csrf);
                }
            }
        }
        if let Some((body, media)) = body {
            request = request.header(CONTENT_TYPE, media).body(body);
        }
        let response = request.send().await.expect("the server answers");
        Answer {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.send(Method::GET, path, auth, None).await
    }

    async fn post(&self, path: &str, auth: &Auth, body: &Value) -> Answer {
        self.send(
            Method::POST,
            path,
            auth,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    async fn login(&self, user: &str, password: &str) -> Answer {
        self.post(
            "/api/v1/login",
            &Auth::None,
            &json!({"user": user, "password": password}),
        )
        .await
    }

    /// Logs `role` in: its session cookie and CSRF token.
    async fn session(&self, role: Role) -> (String, String) {
        let answer = self.login(&user_name(role), &password(role)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let cookie = session_cookie(&answer.headers);
        let csrf = answer.json()["csrf_token"].as_str().unwrap().to_string();
        (cookie, csrf)
    }

    /// Control results in the store, read through a connection of our own.
    fn stored_results(&self) -> Vec<borderlens_store::StoredControlResult> {
        self.with_store(|store| store.control_results().unwrap())
    }

    async fn stop(self) {
        self.served.stop().await
    }
}

/// The session cookie's `Set-Cookie` header.
fn set_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{SESSION_COOKIE}=")))
        .unwrap_or_else(|| panic!("no session cookie set: {headers:?}"))
}

fn session_cookie(headers: &HeaderMap) -> String {
    let header = set_cookie(headers);
    let pair = header.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_string()
}

fn submission(submission_id: &str, declaration: &str, remarks: &str) -> Value {
    json!({
        "submission_id": submission_id,
        "declaration_id": declaration,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
            "drug_form": "powder", "packaging": "bricks_taped",
            "concealment_method": "false_compartment", "quantity": 12.5, "quantity_unit": "kg",
            "inspection_method": ["physical_full", "sniffer_dog"],
            "inspected_at": "2020-01-02T10:30:00+01:00", "place": "Terminal 3",
            "officer_id": "O17", "remarks": remarks
        }
    })
}

/// The header and lines `from..to` (1-based data lines) of the sample's second file, as CSV.
fn sample_lines(from: usize, to: usize) -> String {
    let text = std::fs::read_to_string(SAMPLE_VALID).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let mut out = format!("{header}\n");
    for line in lines.skip(from - 1).take(to + 1 - from) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The bytes and media type of an example body: CSV text for imports, JSON otherwise.
fn encoded(body: Value) -> (Vec<u8>, &'static str) {
    match body {
        Value::String(csv) => (csv.into_bytes(), "text/csv"),
        other => (other.to_string().into_bytes(), "application/json"),
    }
}

/// A request that the route accepts from a role that may use it (for the role matrix); an
/// override asks for a lane other than the current one of `app`'s store.
fn example_request(route: &Route, n: usize, app: Option<&TestApp>) -> (String, Option<Value>) {
    let path = match route.path {
        // A token of the analyst's to revoke, made for this request (never the caller's own).
        "/api/v1/tokens/{id}/revoke" => {
            let id = app.map_or_else(
                || "0123456789ab".to_string(),
                |app| {
                    app.with_store(|store| {
                        borderlens_app::create_token(store, &user_name(Role::Analyst))
                            .unwrap()
                            .id
                    })
                },
            );
            route.path.replace("{id}", &id)
        }
        p if p.starts_with("/api/v1/nii/") => {
            let scan = app.map_or("syn-5-000000", |app| app.nii_scan.as_str());
            p.replace("{id}", scan)
                .replace("{view}", "0")
                .replace("{n}", "0")
        }
        _ => route.path.replace("{id}", DECLARATION),
    };
    let path = match route.path {
        "/api/v1/imports" => format!("{path}?name=matrix-{n}.csv"),
        "/api/v1/declarations/{id}/explanation" => format!("{path}?model=s&version=1"),
        "/api/v1/drift" => format!(
            "{path}?reference_from=2020-01-01&reference_to=2020-01-01&from=2020-01-02&to=2020-01-03"
        ),
        _ => path,
    };
    let body = route.takes_body().then(|| match route.path {
        "/api/v1/control-results" => submission(&format!("matrix-{n}"), DECLARATION, "ok"),
        "/api/v1/login" => {
            json!({"user": user_name(Role::Admin), "password": password(Role::Admin)})
        }
        "/api/v1/declarations/{id}/override" => {
            let current = app.and_then(|app| {
                app.with_store(|store| store.decisions_for(DECLARATION).unwrap())
                    .pop()
                    .map(|d| d.decision.lane)
            });
            let lane = Lane::ALL.iter().find(|l| Some(**l) != current).unwrap();
            json!({"lane": lane, "reason": format!("matrix {n}: tip from the port police")})
        }
        "/api/v1/score" => json!({"model": "s", "from": "2020-01-01"}),
        "/api/v1/tokens" => json!({"user": user_name(Role::Analyst)}),
        "/api/v1/imports" => Value::String(sample_lines(1, 3)),
        "/api/v1/select" => json!({
            "policy": "port-default", "model": "s", "from": "2020-01-01", "to": "2020-01-03"
        }),
        "/api/v1/hs/suggest" => json!({"text": "insulated copper wire", "k": 3}),
        "/api/v1/hs/check" => json!({"declared": "6112.49", "text": "insulated copper wire"}),
        other => panic!("no example body for {other}: add one"),
    });
    (path, body)
}

// ---------------------------------------------------------------------------------------------
// health, document, authentication

async fn healthz_answers_ok_without_credentials(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let answer = app.get("/healthz", &Auth::None).await;
    assert_eq!(
        (answer.status, answer.text.as_str()),
        (StatusCode::OK, "ok")
    );
    app.stop().await;
}
on_both_stores!(healthz_answers_ok_without_credentials);

async fn openapi_documents_every_route_with_its_roles(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let answer = app.get("/api/v1/openapi.json", &Auth::None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let table = routes();
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|methods| methods.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, table.len(), "one operation per route");
    for route in &table {
        let op = &doc["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is not documented",
            route.method,
            route.path
        );
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()));
        let roles: Vec<&str> = op["x-roles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        match route.access {
            Access::Public => {
                assert!(roles.is_empty());
                assert_eq!(op["security"], json!([]));
            }
            Access::Roles(allowed) => {
                assert_eq!(roles, allowed.iter().map(|r| r.name()).collect::<Vec<_>>());
                assert!(op["responses"]["401"].is_object());
                assert!(op["responses"]["403"].is_object());
                assert!(route.path.starts_with(borderlens_server::API_PREFIX));
            }
        }
        if route.takes_body() {
            let content = op["requestBody"]["content"].as_object().unwrap();
            let (media, entry) = content.iter().next().unwrap();
            let schema = resolved(&doc, &entry["schema"]);
            match media.as_str() {
                "application/json" => assert_eq!(schema["type"], "object", "{}", route.path),
                "text/csv" => assert_eq!(schema["type"], "string", "{}", route.path),
                other => panic!("{}: unexpected media type {other}", route.path),
            }
            for status in ["400", "413", "422"] {
                assert!(
                    op["responses"][status].is_object(),
                    "{} {status}",
                    route.path
                );
            }
        }
    }
    // The submission schema lists the form's fields with their code lists.
    let submission = resolved(
        &doc,
        &doc["paths"]["/api/v1/control-results"]["post"]["requestBody"]["content"]
            ["application/json"]["schema"],
    );
    assert!(
        submission["properties"]["values"]["properties"]["drug_type"]["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("cocaine"))
    );
    app.stop().await;
}
on_both_stores!(openapi_documents_every_route_with_its_roles);

/// `schema`, or the component schema it refers to (`#/components/schemas/NAME`).
fn resolved<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(target) => {
            let found = doc.pointer(target.trim_start_matches('#'));
            found.unwrap_or_else(|| panic!("{target} is not in the document"))
        }
        None => schema,
    }
}

/// Checks real requests and answers against the schemas the OpenAPI document declares for
/// their route, method and status; `$ref`s resolve in the document's components.
struct Contract {
    doc: Value,
}

impl Contract {
    fn operation(&self, method: &Method, path: &str) -> &Value {
        let op = &self.doc["paths"][path][method.as_str().to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {path} is not documented");
        op
    }

    /// Why `instance` does not validate against `schema` (a part of the document), if it does not.
    fn problems(&self, schema: &Value, instance: &Value) -> Vec<String> {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| panic!("not a valid schema ({e}): {schema}"));
        validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    /// Checks a JSON request body against the route's request schema.
    fn check_request(&self, method: &Method, path: &str, body: &Value) {
        let schema =
            &self.operation(method, path)["requestBody"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{method} {path} takes no JSON body");
        let problems = self.problems(schema, body);
        assert!(
            problems.is_empty(),
            "{method} {path}: the body sent does not match its schema: {problems:?}\n{body}"
        );
    }

    /// Why the answer does not match what the document declares for its status, if it does not:
    /// the status must be documented, the media type must be the documented one, and a JSON
    /// body must validate against the documented schema.
    fn answer_problems(&self, method: &Method, path: &str, answer: &Answer) -> Vec<String> {
        let status = answer.status.as_u16();
        let response = &self.operation(method, path)["responses"][status.to_string()];
        if !response.is_object() {
            return vec![format!(
                "status {status} is not documented: {}",
                answer.text
            )];
        }
        let media = answer
            .headers
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        match response["content"].as_object() {
            None if answer.text.is_empty() => Vec::new(),
            None => vec![format!("a body where none is documented: {}", answer.text)],
            Some(content) => {
                let (documented, entry) = content.iter().next().unwrap();
                if !media.as_deref().is_some_and(|m| m.starts_with(documented)) {
                    return vec![format!("media type {media:?}, documented {documented}")];
                }
                if documented == "application/json" {
                    self.problems(&entry["schema"], &answer.json())
                } else {
                    Vec::new()
                }
            }
        }
    }

    fn check_answer(&self, method: &Method, path: &str, answer: &Answer) {
        let problems = self.answer_problems(method, path, answer);
        assert!(
            problems.is_empty(),
            "{method} {path} answered {} not as documented ({} problems): {:?}\n{}",
            answer.status,
            problems.len(),
            &problems[..problems.len().min(5)],
            answer.text.chars().take(600).collect::<String>()
        );
    }
}

async fn real_answers_and_bodies_validate_against_the_documented_schemas(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let doc = app.get("/api/v1/openapi.json", &Auth::None).await.json();
    let contract = Contract { doc };
    let admin = app.token(Role::Admin);
    let mut checked = std::collections::BTreeSet::new();
    // Sends a request as `auth` (route `path` with `url`), checks the body sent and the answer.
    macro_rules! exchange {
        ($method:expr, $path:expr, $url:expr, $auth:expr, $body:expr) => {{
            let (method, path): (Method, &str) = ($method, $path);
            let body: Option<Value> = $body;
            if let Some(json @ Value::Object(_)) = &body {
                contract.check_request(&method, path, json);
            }
            let answer = app
                .send_typed(method.clone(), &$url, $auth, body.map(encoded))
                .await;
            contract.check_answer(&method, path, &answer);
            checked.insert((method.to_string(), path.to_string(), answer.status.as_u16()));
            answer
        }};
    }
    let table = routes();
    let route = |path: &str, method: Method| {
        table
            .iter()
            .find(|r| r.path == path && r.method == method)
            .unwrap()
            .clone()
    };
    // Decide the sample's days first, so that queues, traces and audits have rows.
    let select = route("/api/v1/select", Method::POST);
    let (url, body) = example_request(&select, 0, Some(&app));
    let answer = exchange!(Method::POST, select.path, url, &admin, body);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // Every route as a role that may use it, in the table's order; then a retried submission
    // (200 duplicate) and the declaration's trace with its result.
    for (n, route) in table.iter().enumerate() {
        let (url, body) = example_request(route, n + 1, Some(&app));
        let answer = exchange!(route.method.clone(), route.path, url, &admin, body);
        assert!(
            answer.status.is_success(),
            "{} {}: {}",
            route.method,
            route.path,
            answer.text
        );
    }
    let results = route("/api/v1/control-results", Method::POST);
    let results_n = 1 + table.iter().position(|r| r.path == results.path).unwrap();
    let (url, body) = example_request(&results, results_n, Some(&app));
    let answer = exchange!(Method::POST, results.path, url, &admin, body);
    assert_eq!(answer.status, StatusCode::OK, "a retry: {}", answer.text);
    let trace_path = "/api/v1/declarations/{id}/decision";
    let trace_url = format!("/api/v1/declarations/{DECLARATION}/decision");
    let trace = exchange!(Method::GET, trace_path, trace_url, &admin, None);
    let trace = trace.json();
    assert!(!trace["decisions"].as_array().unwrap().is_empty());
    assert!(!trace["results"].as_array().unwrap().is_empty());
    assert!(trace["explanation"].is_object());

    // Errors: each with its documented status and the error schema.
    let errors = [
        (
            Method::POST,
            "/api/v1/login".to_string(),
            "/api/v1/login",
            Auth::None,
            Some(json!({"user": user_name(Role::Admin), "password": "wrong password"})),
            401,
        ),
        (
            Method::GET,
            "/api/v1/me".into(),
            "/api/v1/me",
            Auth::None,
            None,
            401,
        ),
        (
            Method::GET,
            "/api/v1/tokens".into(),
            "/api/v1/tokens",
            app.token(Role::Analyst),
            None,
            403,
        ),
        (
            Method::GET,
            "/api/v1/queue?lane=purple".into(),
            "/api/v1/queue",
            admin.clone(),
            None,
            422,
        ),
        (
            Method::GET,
            "/api/v1/declarations/nope/decision".into(),
            trace_path,
            admin.clone(),
            None,
            404,
        ),
        (
            Method::POST,
            "/api/v1/control-results".into(),
            "/api/v1/control-results",
            admin.clone(),
            Some(submission(
                &format!("matrix-{results_n}"),
                DECLARATION,
                "other content",
            )),
            409,
        ),
        (
            Method::POST,
            "/api/v1/control-results".into(),
            "/api/v1/control-results",
            admin.clone(),
            Some(json!({"submission_id": "x", "declaration_id": DECLARATION,
                     "schema_version": "1.0.0", "values": {"outcome": "nothing-like-it"}})),
            422,
        ),
        (
            Method::POST,
            "/api/v1/hs/check".into(),
            "/api/v1/hs/check",
            admin.clone(),
            Some(json!({"declared": "999999", "text": "copper wire"})),
            422,
        ),
    ];
    for (method, url, path, auth, body, status) in errors {
        // A body refused on purpose is not checked against the request schema.
        let answer = app
            .send_typed(method.clone(), &url, &auth, body.map(encoded))
            .await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {url}: {}",
            answer.text
        );
        contract.check_answer(&method, path, &answer);
        checked.insert((method.to_string(), path.to_string(), status));
    }

    // Every route of the table was checked with a success.
    for route in &table {
        assert!(
            checked
                .iter()
                .any(|(m, p, s)| *m == route.method.to_string()
                    && p == route.path
                    && (200..300).contains(s)),
            "{} {} not checked",
            route.method,
            route.path
        );
    }

    // The check can fail: a queue answer does not match a document whose queue rows are
    // strings, nor one whose queue needs a field it never has; an error does not match the
    // queue's schema.
    let queue = app.get("/api/v1/queue", &admin).await;
    assert_eq!(queue.status, StatusCode::OK);
    let mut wrong = Contract {
        doc: contract.doc.clone(),
    };
    wrong.doc["components"]["schemas"]["QueueRow"]["properties"]["lane"] =
        json!({"type": "integer"});
    assert!(!wrong
        .answer_problems(&Method::GET, "/api/v1/queue", &queue)
        .is_empty());
    let mut wrong = Contract {
        doc: contract.doc.clone(),
    };
    wrong.doc["components"]["schemas"]["Queue"]["required"] = json!(["day", "weather"]);
    assert!(!wrong
        .answer_problems(&Method::GET, "/api/v1/queue", &queue)
        .is_empty());
    let error = app.get("/api/v1/queue?lane=purple", &admin).await;
    let queue_schema = &contract.operation(&Method::GET, "/api/v1/queue")["responses"]["200"]
        ["content"]["application/json"]["schema"];
    assert!(!contract.problems(queue_schema, &error.json()).is_empty());
    app.stop().await;
}
on_both_stores!(real_answers_and_bodies_validate_against_the_documented_schemas);

async fn every_api_route_without_valid_credentials_answers_401(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let bad = [
        Auth::None,
        Auth::Bearer("0".repeat(64)),
        Auth::Bearer("not-a-token".into()),
        Auth::Session("f".repeat(64), Some("x".into())),
        Auth::Session("garbage".into(), None),
    ];
    for (n, route) in routes().iter().enumerate() {
        if route.access == Access::Public {
            continue;
        }
        for auth in &bad {
            let (path, body) = example_request(route, n, None);
            let answer = app
                .send_typed(route.method.clone(), &path, auth, body.map(encoded))
                .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{} {path}: {}",
                route.method,
                answer.text
            );
            assert!(!answer.error().is_empty());
            assert!(answer.headers.contains_key("www-authenticate"));
        }
    }
    // A malformed Authorization header is refused, not ignored in favour of nothing.
    let mut request = app.client.get(format!("{}/api/v1/me", app.base));
    request = request.header(AUTHORIZATION, "Basic dXNlcjpwdw==");
    assert_eq!(
        request.send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(app.stored_results().is_empty());
    app.stop().await;
}
on_both_stores!(every_api_route_without_valid_credentials_answers_401);

async fn the_role_matrix_is_enforced_on_every_route_for_every_role(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let mut n = 0;
    for route in routes() {
        if route.access == Access::Public {
            continue;
        }
        for role in Role::ALL {
            // Once with the role's API token, once with its session (and CSRF token).
            let (cookie, csrf) = app.session(role).await;
            for auth in [app.token(role), Auth::Session(cookie, Some(csrf))] {
                n += 1;
                let before = app.stored_results().len();
                let (path, body) = example_request(&route, n, Some(&app));
                let answer = app
                    .send_typed(route.method.clone(), &path, &auth, body.map(encoded))
                    .await;
                let what = format!("{} {} as {}", route.method, route.path, role.name());
                if route.access.allows(role) {
                    assert!(
                        answer.status.is_success(),
                        "{what}: {} {}",
                        answer.status,
                        answer.text
                    );
                } else {
                    assert_eq!(
                        answer.status,
                        StatusCode::FORBIDDEN,
                        "{what}: {}",
                        answer.text
                    );
                    assert!(answer.error().contains(role.name()), "{what}");
                    assert_eq!(
                        app.stored_results().len(),
                        before,
                        "{what} stored something"
                    );
                }
            }
        }
    }
    app.stop().await;
}
on_both_stores!(the_role_matrix_is_enforced_on_every_route_for_every_role);

#[test]
fn docs_server_md_states_the_role_matrix_of_the_route_table() {
    let doc = std::fs::read_to_string(SERVER_DOC).unwrap();
    for route in routes() {
        let cell = format!("| `{} {}` |", route.method, route.path);
        let line = doc
            .lines()
            .find(|l| l.starts_with(&cell))
            .unwrap_or_else(|| panic!("docs/server.md has no row starting {cell}"));
        for role in Role::ALL {
            let mark = line
                .split('|')
                .nth(role_column(role))
                .unwrap_or_else(|| panic!("row {cell} has no column for {}", role.name()))
                .trim();
            let expected = match route.access {
                Access::Public => "public",
                Access::Roles(_) if route.access.allows(role) => "yes",
                Access::Roles(_) => "no",
            };
            assert_eq!(mark, expected, "docs/server.md: {cell} {}", role.name());
        }
    }
}

/// Column of `role` in the matrix rows of docs/server.md (`| route | officer | analyst | ...`).
fn role_column(role: Role) -> usize {
    2 + Role::ALL.iter().position(|r| *r == role).unwrap()
}

// ---------------------------------------------------------------------------------------------
// sessions, CSRF, tokens

async fn login_sets_an_httponly_samesite_strict_secure_cookie_and_logout_ends_it(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let answer = app.login("officer-1", &password(Role::Officer)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let header = set_cookie(&answer.headers);
    let attributes: Vec<&str> = header.split(';').map(str::trim).collect();
    for expected in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(
            attributes.contains(&expected),
            "{expected} missing: {header}"
        );
    }
    let body = answer.json();
    assert_eq!(
        (body["user"].as_str(), body["role"].as_str()),
        (Some("officer-1"), Some("officer"))
    );
    let csrf = body["csrf_token"].as_str().unwrap().to_string();
    let cookie = session_cookie(&answer.headers);
    assert_eq!(cookie.len(), 64);

    let me = app
        .get("/api/v1/me", &Auth::Session(cookie.clone(), None))
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({"user": "officer-1", "role": "officer", "csrf_token": csrf})
    );

    // Logout changes state: it needs the CSRF token too.
    let refused = app
        .send(
            Method::POST,
            "/api/v1/logout",
            &Auth::Session(cookie.clone(), None),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let out = app
        .send(
            Method::POST,
            "/api/v1/logout",
            &Auth::Session(cookie.clone(), Some(csrf)),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(set_cookie(&out.headers).contains("Max-Age=0"));
    let after = app.get("/api/v1/me", &Auth::Session(cookie, None)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);

    let wrong = app.login("officer-1", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.error(), "wrong user name or password");
    assert!(!wrong.headers.contains_key(SET_COOKIE));
    let unknown = app.login("nobody", "not the password").await;
    assert_eq!(unknown.error(), "wrong user name or password");
    app.stop().await;
}
on_both_stores!(login_sets_an_httponly_samesite_strict_secure_cookie_and_logout_ends_it);

async fn insecure_cookies_leave_out_only_secure(kind: StoreKind) {
    let app = spawn_app_with(kind, |config| config.secure_cookies = false).await;
    let answer = app.login("analyst-1", &password(Role::Analyst)).await;
    let header = set_cookie(&answer.headers);
    assert!(!header.contains("Secure"), "{header}");
    assert!(
        header.contains("HttpOnly") && header.contains("SameSite=Strict"),
        "{header}"
    );
    app.stop().await;
}
on_both_stores!(insecure_cookies_leave_out_only_secure);

async fn a_cookie_post_needs_the_sessions_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let (cookie, csrf) = app.session(Role::Officer).await;
    let body = submission("csrf-1", DECLARATION, "");
    let path = "/api/v1/control-results";
    let missing = app
        .post(path, &Auth::Session(cookie.clone(), None), &body)
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.error().contains("X-CSRF-Token"));
    let wrong = app
        .post(
            path,
            &Auth::Session(cookie.clone(), Some("0".repeat(64))),
            &body,
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    // Another session's token does not do either.
    let (_, other_csrf) = app.session(Role::Officer).await;
    let other = app
        .post(
            path,
            &Auth::Session(cookie.clone(), Some(other_csrf)),
            &body,
        )
        .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    assert!(app.stored_results().is_empty());

    let ok = app
        .post(path, &Auth::Session(cookie, Some(csrf)), &body)
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let stored = app.stored_results();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].recorded_by, "officer-1");
    assert_eq!(stored[0].result.source, "api");
    app.stop().await;
}
on_both_stores!(a_cookie_post_needs_the_sessions_csrf_token);

async fn a_bearer_token_works_without_csrf_token(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let me = app.get("/api/v1/me", &app.token(Role::Manager)).await;
    assert_eq!(me.json(), json!({"user": "manager-1", "role": "manager"}));
    let answer = app
        .post(
            "/api/v1/control-results",
            &app.token(Role::Manager),
            &submission("bearer-1", DECLARATION, ""),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.json()["status"], "recorded");
    // The audit log names the user.
    let audit = app.with_store(|store| store.audit_entries(1).unwrap());
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].action.as_str()),
        ("manager-1", "control_result")
    );
    app.stop().await;
}
on_both_stores!(a_bearer_token_works_without_csrf_token);

async fn the_sixth_failed_login_within_a_minute_is_429(kind: StoreKind) {
    let app = spawn_app(kind).await;
    for attempt in 1..=5 {
        let answer = app.login("officer-1", &format!("guess {attempt}")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Even the right password waits now.
    let limited = app.login("officer-1", &password(Role::Officer)).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.text
    );
    let wait: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert!(limited.error().contains("too many failed logins"));
    // The address is limited too: five failures were counted against it.
    let other = app.login("analyst-1", &password(Role::Analyst)).await;
    assert_eq!(other.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
}
on_both_stores!(the_sixth_failed_login_within_a_minute_is_429);

async fn two_instances_share_sessions_submissions_and_the_login_limit(kind: StoreKind) {
    let a = spawn_app(kind).await;
    let b = a.another_instance().await;
    // A session opened on one instance works on the other, and ends on both.
    let (cookie, csrf) = a.session(Role::Officer).await;
    let me = b
        .get("/api/v1/me", &Auth::Session(cookie.clone(), None))
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    // The same submission sent to both at once is stored once.
    let body = submission("both-1", DECLARATION, "sent twice");
    let officer = a.token(Role::Officer);
    let path = "/api/v1/control-results";
    let (first, second) =
        tokio::join!(a.post(path, &officer, &body), b.post(path, &officer, &body));
    let mut statuses = [first.status, second.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CREATED],
        "{} / {}",
        first.text,
        second.text
    );
    assert_eq!(a.stored_results().len(), 1);
    let out = b
        .send(
            Method::POST,
            "/api/v1/logout",
            &Auth::Session(cookie.clone(), Some(csrf)),
            None,
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    let after = a.get("/api/v1/me", &Auth::Session(cookie, None)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    // Failed logins count on every instance: three on one and two on the other reach the
    // limit, and the right password waits on both.
    for (n, instance) in [&a, &a, &a, &b, &b].into_iter().enumerate() {
        let answer = instance.login("analyst-1", &format!("guess {n}")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    for instance in [&a, &b] {
        let limited = instance.login("analyst-1", &password(Role::Analyst)).await;
        assert_eq!(
            limited.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{}",
            limited.text
        );
    }
    b.stop().await;
    a.stop().await;
}
on_both_stores!(two_instances_share_sessions_submissions_and_the_login_limit);

async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_limit(kind: StoreKind) {
    let login_from = |app: &TestApp, client: &str, user: &str, password: &str| {
        let request = app
            .client
            .post(format!("{}/api/v1/login", app.base))
            .header("X-Forwarded-For", format!("203.0.113.50, {client}"))
            .json(&json!({"user": user, "password": password}));
        async move { request.send().await.unwrap().status() }
    };
    let names = ["a", "b", "c", "d", "e"];
    // The test's requests come from 127.0.0.1, trusted as a proxy here.
    let app = spawn_app_with(kind, |config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]
    })
    .await;
    for name in names {
        let status = login_from(&app, "198.51.100.1", name, "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (officer, right) = (user_name(Role::Officer), password(Role::Officer));
    assert_eq!(
        login_from(&app, "198.51.100.1", &officer, &right).await,
        StatusCode::TOO_MANY_REQUESTS,
        "the address with five failures waits"
    );
    assert_eq!(
        login_from(&app, "198.51.100.2", &officer, &right).await,
        StatusCode::OK,
        "another client behind the same proxy does not"
    );
    app.stop().await;
    // Not trusted: the header is ignored, and every client is 127.0.0.1.
    let app = spawn_app(kind).await;
    for name in names {
        let status = login_from(&app, "198.51.100.1", name, "guess").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_from(&app, "198.51.100.2", &officer, &right).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    app.stop().await;
}
on_both_stores!(behind_a_trusted_proxy_each_forwarded_client_has_its_own_login_limit);

async fn an_admin_creates_lists_and_revokes_tokens_which_stop_working_at_once(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.token(Role::Admin);
    let created = app
        .post("/api/v1/tokens", &admin, &json!({"user": "officer-1"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let created = created.json();
    let (id, token) = (
        created["id"].as_str().unwrap().to_string(),
        created["token"].as_str().unwrap().to_string(),
    );
    let bearer = Auth::Bearer(token.clone());
    assert_eq!(
        app.get("/api/v1/me", &bearer).await.json()["user"],
        "officer-1"
    );

    let listed = app.get("/api/v1/tokens?user=officer-1", &admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    let ids: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 2, "the fixture's token and the new one");
    assert!(ids.contains(&id));
    assert!(!listed.text.contains(&token), "a token is never listed");

    let revoked = app
        .send(
            Method::POST,
            &format!("/api/v1/tokens/{}/revoke", &id[..8]),
            &admin,
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.text);
    assert_eq!(revoked.json()["token"]["id"], id);
    assert_eq!(revoked.json()["already_revoked"], false);
    assert_eq!(
        app.get("/api/v1/me", &bearer).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The fixture's officer token still works; the audit log names the admin.
    assert_eq!(
        app.get("/api/v1/me", &app.token(Role::Officer))
            .await
            .status,
        StatusCode::OK
    );
    let audit = app.with_store(|store| store.audit_entries(1).unwrap());
    assert_eq!(
        (
            audit[0].actor.as_str(),
            audit[0].action.as_str(),
            audit[0].subject.as_str()
        ),
        ("admin-1", "token_revoke", "officer-1")
    );
    let again = app
        .send(
            Method::POST,
            &format!("/api/v1/tokens/{id}/revoke"),
            &admin,
            None,
        )
        .await;
    assert_eq!(again.json()["already_revoked"], true);

    let unknown = app
        .send(
            Method::POST,
            "/api/v1/tokens/00000000000f/revoke",
            &admin,
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    let bad = app
        .send(Method::POST, "/api/v1/tokens/xyz/revoke", &admin, None)
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let ghost = app
        .post("/api/v1/tokens", &admin, &json!({"user": "ghost"}))
        .await;
    assert_eq!(ghost.status, StatusCode::NOT_FOUND, "{}", ghost.text);
    let nobody = app.get("/api/v1/tokens?user=ghost", &admin).await;
    assert_eq!(nobody.status, StatusCode::NOT_FOUND, "{}", nobody.text);
    app.stop().await;
}
on_both_stores!(an_admin_creates_lists_and_revokes_tokens_which_stop_working_at_once);

// ---------------------------------------------------------------------------------------------
// control results

async fn a_retried_submission_is_a_duplicate_not_a_double(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let body = submission("retry-1", DECLARATION, "found it");
    let officer = app.token(Role::Officer);
    let first = app.post("/api/v1/control-results", &officer, &body).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text);
    let first = first.json();
    assert_eq!(
        (first["status"].as_str(), first["label"].as_str()),
        (Some("recorded"), Some("critical fraud"))
    );
    // Acknowledged means committed: another connection sees it.
    assert_eq!(app.stored_results().len(), 1);
    let second = app.post("/api/v1/control-results", &officer, &body).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.text);
    let second = second.json();
    assert_eq!(second["status"], "duplicate");
    assert_eq!(second["id"], first["id"]);
    assert_eq!(app.stored_results().len(), 1);
    app.stop().await;
}
on_both_stores!(a_retried_submission_is_a_duplicate_not_a_double);

async fn the_same_submission_id_with_other_content_is_409(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let first = app
        .post(
            "/api/v1/control-results",
            &officer,
            &submission("s-1", DECLARATION, "a"),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let conflict = app
        .post(
            "/api/v1/control-results",
            &officer,
            &submission("s-1", DECLARATION, "b"),
        )
        .await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.text);
    assert!(conflict.error().contains("already used"));
    let stored = app.stored_results();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].result.payload_json.contains("\"a\""));
    app.stop().await;
}
on_both_stores!(the_same_submission_id_with_other_content_is_409);

async fn a_result_for_an_unknown_declaration_is_404(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let answer = app
        .post(
            "/api/v1/control-results",
            &app.token(Role::Officer),
            &submission("s-404", "NO-SUCH-DECLARATION", ""),
        )
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    assert!(answer.error().contains("NO-SUCH-DECLARATION"));
    assert!(app.stored_results().is_empty());
    app.stop().await;
}
on_both_stores!(a_result_for_an_unknown_declaration_is_404);

async fn bad_bodies_get_clear_4xx_and_store_nothing(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let path = "/api/v1/control-results";

    // Over 256 KiB: 413, whatever the content.
    let mut big = submission("big", DECLARATION, "");
    big["padding"] = json!("x".repeat(MAX_BODY_BYTES));
    let answer = app.post(path, &officer, &big).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.error().contains("256 KiB"));

    // Not JSON: 400.
    for text in ["{\"submission_id\": ", "not json", "{} {}", ""] {
        let answer = app
            .send(Method::POST, path, &officer, Some(text.as_bytes().to_vec()))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{text:?}: {}",
            answer.text
        );
        assert!(answer.error().contains("malformed JSON"), "{}", answer.text);
    }

    // Unknown field, wrong type, missing field, bad value: 422 naming the field.
    let mut unknown = submission("u-1", DECLARATION, "");
    unknown["values"]["vessel"] = json!("MSC Gülsün");
    let mut wrong_type = submission("u-2", DECLARATION, "");
    wrong_type["values"]["quantity"] = json!("12 kg");
    let mut envelope = submission("u-3", DECLARATION, "");
    envelope["priority"] = json!(1);
    let mut missing = submission("u-4", DECLARATION, "");
    missing["values"]
        .as_object_mut()
        .unwrap()
        .remove("inspected_at");
    let mut not_asked = submission("u-5", DECLARATION, "");
    not_asked["values"]["tobacco_product"] = json!("cigarettes");
    for (body, field) in [
        (unknown, "vessel"),
        (wrong_type, "quantity"),
        (envelope, "priority"),
        (missing, "inspected_at"),
        (not_asked, "tobacco_product"),
        (json!([1, 2]), ""),
    ] {
        let answer = app.post(path, &officer, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {}",
            answer.text
        );
        let error = answer.json();
        assert!(
            error["fields"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["field"] == field),
            "{field} not named in {error}"
        );
    }

    // Not declared as JSON: 415.
    let answer = app
        .client
        .post(format!("{}{path}", app.base))
        .header(
            AUTHORIZATION,
            format!("Bearer {}", app.api_token(Role::Officer)),
        )
        .header(CONTENT_TYPE, "text/plain")
        .body(submission("t-1", DECLARATION, "").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Login: unknown field and wrong type are 422 naming the field, broken JSON 400.
    let answer = app
        .post(
            "/api/v1/login",
            &Auth::None,
            &json!({"user": "a", "password": "b", "otp": 1}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(answer.error().contains("otp"), "{}", answer.text);
    let answer = app
        .post(
            "/api/v1/login",
            &Auth::None,
            &json!({"user": 7, "password": "b"}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json()["fields"][0]["field"], "user");
    let answer = app
        .send(
            Method::POST,
            "/api/v1/login",
            &Auth::None,
            Some(b"{\"user\"".to_vec()),
        )
        .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);

    // A lane that does not exist, to override to or to filter the queue by: 422 naming the
    // field, the word and the lanes; nothing is recorded.
    let decisions = || app.with_store(|store| store.decisions(None).unwrap().len());
    let before = decisions();
    let override_path = format!("/api/v1/declarations/{DECLARATION}/override");
    let body = json!({"lane": "purple", "reason": "tip from the port police"});
    for answer in [
        app.post(&override_path, &officer, &body).await,
        app.get("/api/v1/queue?lane=purple", &officer).await,
    ] {
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            answer.text
        );
        assert_eq!(
            answer.json()["fields"][0]["field"],
            "lane",
            "{}",
            answer.text
        );
        assert!(
            answer
                .error()
                .contains("unknown lane 'purple': use red, yellow or green"),
            "{}",
            answer.text
        );
    }
    assert_eq!(decisions(), before);

    assert!(app.stored_results().is_empty());
    app.stop().await;
}
on_both_stores!(bad_bodies_get_clear_4xx_and_store_nothing);

async fn script_in_remarks_is_stored_and_returned_as_inert_data(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let remarks = "<script>alert(document.cookie)</script>\n\"quoted\" & <b>bold</b>";
    let answer = app
        .post(
            "/api/v1/control-results",
            &app.token(Role::Officer),
            &submission("xss-1", DECLARATION, remarks),
        )
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    let stored = app.stored_results();
    let payload: Value = serde_json::from_str(&stored[0].result.payload_json).unwrap();
    assert_eq!(
        payload["values"]["remarks"], remarks,
        "stored exactly as typed"
    );

    let trace = app
        .get(
            &format!("/api/v1/declarations/{DECLARATION}/decision"),
            &app.token(Role::Analyst),
        )
        .await;
    assert_eq!(trace.status, StatusCode::OK);
    assert_eq!(trace.json()["results"][0]["values"]["remarks"], remarks);
    // Served as JSON that no browser renders as a page.
    assert_eq!(trace.headers[CONTENT_TYPE], "application/json");
    assert_eq!(trace.headers["x-content-type-options"], "nosniff");
    assert!(trace.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    app.stop().await;
}
on_both_stores!(script_in_remarks_is_stored_and_returned_as_inert_data);

// ---------------------------------------------------------------------------------------------
// decisions, estimates, unknown routes

async fn the_decision_trace_explains_with_the_newest_model(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let answer = app
        .get(
            &format!("/api/v1/declarations/{DECLARATION}/decision"),
            &app.token(Role::Officer),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let trace = answer.json();
    assert_eq!(trace["declaration_id"], DECLARATION);
    assert_eq!(trace["explanation"]["model"], "s");
    assert!(trace["explanation"]["score"].as_f64().is_some());
    assert_eq!(trace["decisions"], json!([]));
    for key in [
        "declaration_id",
        "explanation",
        "decisions",
        "results",
        "label",
    ] {
        assert!(trace.get(key).is_some(), "{key} missing");
    }

    let unknown = app
        .get(
            "/api/v1/declarations/NOPE%2F..%2Fx/decision",
            &app.token(Role::Officer),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.text);
    assert!(unknown.error().contains("NOPE/../x"));
    app.stop().await;
}
on_both_stores!(the_decision_trace_explains_with_the_newest_model);

async fn an_explanation_names_its_model_version_and_refuses_what_is_not_there(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let analyst = app.token(Role::Analyst);
    let path = format!("/api/v1/declarations/{DECLARATION}/explanation");
    let answer = app
        .get(&format!("{path}?model=s&version=1&rate=5"), &analyst)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let report = answer.json();
    assert_eq!(
        (report["model"].as_str(), report["version"].as_u64()),
        (Some("s"), Some(1))
    );
    assert_eq!(report["declaration_id"], DECLARATION);
    let contributions = report["contributions"].as_array().unwrap();
    assert!(!contributions.is_empty());
    // The contributions add up to the log-odds.
    let sum: f64 = contributions
        .iter()
        .map(|c| c["log_odds"].as_f64().unwrap())
        .sum();
    let (base, log_odds) = (
        report["base_log_odds"].as_f64().unwrap(),
        report["log_odds"].as_f64().unwrap(),
    );
    assert!(
        (base + sum - log_odds).abs() < 1e-6,
        "{base} + {sum} != {log_odds}"
    );
    assert!(report["declared"].as_object().unwrap().len() > 5);
    // The newest version without `version`; what is not there is 404, a bad query 422.
    assert_eq!(
        app.get(&format!("{path}?model=s"), &analyst).await.json()["version"],
        1
    );
    for (query, status) in [
        ("model=s&version=9", StatusCode::NOT_FOUND),
        ("model=nope", StatusCode::NOT_FOUND),
        ("model=s&item=99", StatusCode::NOT_FOUND),
        ("model=s&rate=lots", StatusCode::UNPROCESSABLE_ENTITY),
        ("version=1", StatusCode::UNPROCESSABLE_ENTITY),
        ("model=s&colour=red", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let answer = app.get(&format!("{path}?{query}"), &analyst).await;
        assert_eq!(answer.status, status, "{query}: {}", answer.text);
        assert!(!answer.error().is_empty());
    }
    app.stop().await;
}
on_both_stores!(an_explanation_names_its_model_version_and_refuses_what_is_not_there);

async fn estimates_are_split_by_the_dimension_asked(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let analyst = app.token(Role::Analyst);
    for by in ["origin", "office", "hs_chapter", "transport_mode"] {
        let answer = app
            .get(&format!("/api/v1/estimates?by={by}"), &analyst)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{by}: {}", answer.text);
        let report = answer.json();
        assert_eq!(report["dimension"], by);
        for key in [
            "overall",
            "naive",
            "declarations",
            "pending",
            "overrides",
            "segments",
        ] {
            assert!(report.get(key).is_some(), "{key} missing");
        }
    }
    assert_eq!(
        app.get("/api/v1/estimates", &analyst).await.json()["dimension"],
        "origin"
    );
    let bad = app.get("/api/v1/estimates?by=colour", &analyst).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["fields"][0]["field"], "by");
    let extra = app
        .get("/api/v1/estimates?by=office&limit=3", &analyst)
        .await;
    assert_eq!(extra.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(extra.error().contains("limit"), "{}", extra.text);
    app.stop().await;
}
on_both_stores!(estimates_are_split_by_the_dimension_asked);

async fn pooled_statistics_are_split_by_the_dimension_asked(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let analyst = app.token(Role::Analyst);
    for by in ["origin", "route", "concealment"] {
        let answer = app.get(&format!("/api/v1/pooled?by={by}"), &analyst).await;
        assert_eq!(answer.status, StatusCode::OK, "{by}: {}", answer.text);
        let report = answer.json();
        assert_eq!(report["dimension"], by);
        // The fixture's own labelled declarations; no foreign document imported.
        assert_eq!(report["sources"][0]["source"], "own");
        assert_eq!(report["sources"].as_array().unwrap().len(), 1);
        assert!(report["sources"][0]["total"]["controls"].as_u64() > Some(0));
    }
    let bad = app.get("/api/v1/pooled?by=importer", &analyst).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.json()["fields"][0]["field"], "by");
    let officer = app.token(Role::Officer);
    assert_eq!(
        app.get("/api/v1/pooled", &officer).await.status,
        StatusCode::FORBIDDEN
    );
    app.stop().await;
}
on_both_stores!(pooled_statistics_are_split_by_the_dimension_asked);

async fn the_queue_answers_a_page_and_a_search(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let admin = app.token(Role::Admin);
    let select = app
        .post(
            "/api/v1/select",
            &admin,
            &json!({"policy": "port-default", "model": "s",
                    "from": "2020-01-01", "to": "2020-01-03"}),
        )
        .await;
    assert_eq!(select.status, StatusCode::OK, "{}", select.text);
    let all = app.get("/api/v1/queue?sort=id", &admin).await.json();
    let ids = |queue: &Value| -> Vec<String> {
        queue["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["declaration_id"].as_str().unwrap().to_string())
            .collect()
    };
    let every = ids(&all);
    assert!(every.len() > 4, "{} rows", every.len());
    assert_eq!(all["pages"], 1);

    // The second page of two rows is the third and fourth row of the whole queue.
    let page = app
        .get("/api/v1/queue?sort=id&page_size=2&page=2", &admin)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let page = page.json();
    assert_eq!(ids(&page), every[2..4].to_vec());
    assert_eq!(page["page"], 2);
    assert_eq!(page["pages"], every.len().div_ceil(2));
    assert_eq!(page["matching"], every.len());

    // A search by part of a declaration id, in any case, finds that declaration.
    let wanted = &every[every.len() / 2];
    let part = &wanted[1..wanted.len() - 1];
    let found = app
        .get(&format!("/api/v1/queue?search={part}"), &admin)
        .await
        .json();
    let found_ids = ids(&found);
    assert!(found_ids.contains(wanted), "{found_ids:?}");
    for row in found["rows"].as_array().unwrap() {
        let id = row["declaration_id"].as_str().unwrap().to_lowercase();
        let importer = row["importer"].as_str().unwrap().to_lowercase();
        assert!(
            id.contains(&part.to_lowercase()) || importer.contains(&part.to_lowercase()),
            "{row}"
        );
    }
    assert!(found_ids.len() < every.len(), "the search filtered nothing");
    assert_eq!(found["matching"], found_ids.len());

    // A page without its size, a size of 0 or past the bound, and a search of 101 characters
    // are refused naming the parameter.
    for (url, field) in [
        ("/api/v1/queue?page=2", "page"),
        ("/api/v1/queue?page_size=0", "page size"),
        ("/api/v1/queue?page_size=501", "page size"),
        ("/api/v1/queue?page_size=ten", "page_size"),
    ] {
        let answer = app.get(url, &admin).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{url}: {}",
            answer.text
        );
        assert!(answer.error().contains(field), "{url}: {}", answer.text);
    }
    let long = "9".repeat(101);
    let answer = app
        .get(&format!("/api/v1/queue?search={long}"), &admin)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        answer.text
    );
    assert!(answer.error().contains("search"), "{}", answer.text);
    app.stop().await;
}
on_both_stores!(the_queue_answers_a_page_and_a_search);

async fn unknown_routes_and_methods_answer_json_errors(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let missing = app.get("/api/v1/nothing-here", &Auth::None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.error().contains("/api/v1/nothing-here"));
    let method = app
        .send(Method::DELETE, "/api/v1/me", &Auth::None, None)
        .await;
    assert_eq!(method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(method.error().contains("DELETE"));
    app.stop().await;
}
on_both_stores!(unknown_routes_and_methods_answer_json_errors);

async fn the_server_stops_when_asked_and_finishes_cleanly(kind: StoreKind) {
    let app = spawn_app(kind).await;
    assert_eq!(
        app.get("/healthz", &Auth::None).await.status,
        StatusCode::OK
    );
    let base = app.base.clone();
    app.stop().await;
    let after = borderlens_server::federation::http_client()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{base}/healthz"))
        .send()
        .await;
    assert!(after.is_err(), "still answering after shutdown");
}
on_both_stores!(the_server_stops_when_asked_and_finishes_cleanly);

#[test]
fn the_route_table_has_unique_routes_and_api_paths_under_the_prefix() {
    let table = routes();
    let mut seen = std::collections::BTreeSet::new();
    for route in &table {
        assert!(
            seen.insert((route.method.to_string(), route.path)),
            "{} {} twice",
            route.method,
            route.path
        );
        assert!(route.path == "/healthz" || route.path.starts_with(API_PREFIX));
    }
}

// ---------------------------------------------------------------------------------------------
// import over HTTP

async fn an_uploaded_file_is_imported_once_with_bad_records_named_and_the_rest_stored(
    kind: StoreKind,
) {
    let app = spawn_app(kind).await;
    let token = app.token(Role::Analyst);
    let mut csv = sample_lines(1, 40);
    // A bad record: a date that is not one.
    let bad = csv
        .lines()
        .nth(5)
        .unwrap()
        .replacen("2021-01-0", "2021-13-0", 1);
    csv.push_str(&bad.replacen(|c: char| c.is_ascii_digit(), "9", 1));
    csv.push('\n');
    // Over the 256 KiB limit of JSON bodies, under the 64 MiB of imports.
    let more = sample_lines(41, 3000);
    let big = format!("{csv}{}", more.split_once('\n').unwrap().1);
    assert!(big.len() > MAX_BODY_BYTES);
    let post = |body: String, media: &'static str, query: &str| {
        let path = format!("/api/v1/imports?{query}");
        let app = &app;
        let token = token.clone();
        async move {
            app.send_typed(
                Method::POST,
                &path,
                &token,
                Some((body.into_bytes(), media)),
            )
            .await
        }
    };
    let first = post(big.clone(), "text/csv", "name=january.csv").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let report = first.json();
    assert_eq!(report["file"], "upload:january.csv");
    assert_eq!(report["rejected"].as_array().unwrap().len(), 1, "{report}");
    let issue = &report["rejected"][0];
    assert_eq!(issue["field"], "Date", "{issue}");
    assert_eq!(issue["line"], 42, "{issue}");
    let inserted = report["inserted"].as_u64().unwrap();
    assert!(inserted >= 3000, "{report}");
    // Re-importing changes nothing.
    let again = post(big, "text/csv", "name=january.csv").await.json();
    assert_eq!(again["inserted"], 0);
    assert_eq!(again["unchanged"].as_u64().unwrap(), inserted);
    // Strict refuses the whole file; a wrong media type or a missing name stores nothing.
    let before = app.with_store(|store| store.count_items().unwrap());
    let strict = post(
        csv.replace("56839011", "56839012"),
        "text/csv",
        "name=s.csv&strict=true",
    )
    .await;
    assert_eq!(strict.status, StatusCode::OK);
    assert!(strict.json()["file_error"]
        .as_str()
        .unwrap()
        .contains("strict"));
    assert_eq!(
        post(csv.clone(), "application/json", "name=x.csv")
            .await
            .status,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        post(csv.clone(), "text/csv", "strict=true").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(app.with_store(|store| store.count_items().unwrap()), before);
    // An officer may not import.
    let officer = app
        .send_typed(
            Method::POST,
            "/api/v1/imports?name=o.csv",
            &app.token(Role::Officer),
            Some((csv.into_bytes(), "text/csv")),
        )
        .await;
    assert_eq!(officer.status, StatusCode::FORBIDDEN);
    app.stop().await;
}
on_both_stores!(an_uploaded_file_is_imported_once_with_bad_records_named_and_the_rest_stored);

/// An upload of a described file kept no description: the route read the KCS layout only.
/// Now the descriptions are stored byte for byte when the header has their usual columns.
async fn an_uploaded_described_file_keeps_its_goods_descriptions(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let token = app.token(Role::Analyst);
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../data/sample-described/df_syn_valid_eng.csv"
    );
    let text = std::fs::read_to_string(path).unwrap();
    // Fresh declaration ids, so that the fixture's own items are not met again.
    let mut rows = csv::Reader::from_reader(text.as_bytes());
    let headers = rows.headers().unwrap().clone();
    let id = headers.iter().position(|h| h == "Declaration ID").unwrap();
    let described = headers
        .iter()
        .position(|h| h == "Goods Description")
        .unwrap();
    let cleaned = headers
        .iter()
        .position(|h| h == "Cleaned Goods Description")
        .unwrap();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(&headers).unwrap();
    let mut expected = Vec::new();
    for (n, row) in rows.records().take(60).enumerate() {
        let row = row.unwrap();
        let fresh = format!("U{n:07}");
        let fields: Vec<&str> = row
            .iter()
            .enumerate()
            .map(|(c, v)| if c == id { fresh.as_str() } else { v })
            .collect();
        out.write_record(&fields).unwrap();
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        expected.push((fresh, some(&row[described]), some(&row[cleaned])));
    }
    let body = out.into_inner().unwrap();
    let answer = app
        .send_typed(
            Method::POST,
            "/api/v1/imports?name=described.csv",
            &token,
            Some((body, "text/csv")),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json()["inserted"], 60, "{}", answer.text);
    assert!(expected.iter().any(|e| e.1.is_some()) && expected.iter().any(|e| e.2.is_some()));
    for (declaration, sender, broker) in expected {
        let item = app.with_store(|store| {
            store
                .declaration(&declaration)
                .unwrap()
                .unwrap()
                .first()
                .clone()
        });
        let goods = borderlens_app::GoodsText::of(&item);
        assert_eq!(goods.description, sender, "{declaration}");
        assert_eq!(goods.description_cleaned, broker, "{declaration}");
    }
    app.stop().await;
}
on_both_stores!(an_uploaded_described_file_keeps_its_goods_descriptions);

/// An override reason of NULs answered 500 (PostgreSQL refuses NUL in text); one character and
/// zero-width characters were taken. Now: 422 naming the field, nothing stored, on both stores.
async fn override_reasons_are_checked_before_anything_is_stored(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let decisions = || app.with_store(|store| store.decisions(None).unwrap().len());
    let before = decisions();
    let path = format!("/api/v1/declarations/{DECLARATION}/override");
    for (reason, why) in [
        ("\0\0\0\0\0\0\0\0", "control character U+0000"),
        ("tip\u{1b}[2J from the police", "control character U+001B"),
        ("x", "1 visible characters, at least 5"),
        (
            "\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}",
            "reason is mandatory",
        ),
        ("\u{FEFF}ab\u{2060}\u{200D}", "2 visible characters"),
    ] {
        let answer = app
            .post(&path, &officer, &json!({"lane": "red", "reason": reason}))
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reason:?}: {}",
            answer.text
        );
        assert_eq!(answer.json()["fields"][0]["field"], "reason", "{reason:?}");
        assert!(answer.error().contains(why), "{reason:?}: {}", answer.text);
    }
    assert_eq!(decisions(), before);
    app.stop().await;
}
on_both_stores!(override_reasons_are_checked_before_anything_is_stored);

/// A write while another connection holds the store's writer lock (as a long import does)
/// answered 500 "database is locked" after the busy timeout. Now 503 with `Retry-After` and
/// nothing stored; the same request succeeds once the lock is released. On PostgreSQL the
/// write waited for as long as the lock was held; now it gives up after the same timeout.
async fn a_write_while_the_store_is_busy_answers_503_with_retry_after(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let before = app.stored_results().len();
    let body = submission("busy-1", DECLARATION, "during an import");
    assert_eq!(
        app.get("/healthz", &Auth::None).await.status,
        StatusCode::OK
    );
    let lock = app.hold_write_lock();
    // Reads go on, also on a connection opened during the lock (opening a store at the current
    // schema version reads it without waiting for the writers).
    let other = app.another_instance().await;
    let me = other.get("/api/v1/me", &officer).await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text);
    let answer = app.post("/api/v1/control-results", &officer, &body).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    assert_eq!(answer.headers[RETRY_AFTER], "5");
    let error = answer.error();
    assert!(
        error.contains("busy") && error.contains("nothing was stored"),
        "{error}"
    );
    drop(lock);
    assert_eq!(app.stored_results().len(), before);
    let answer = app.post("/api/v1/control-results", &officer, &body).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(app.stored_results().len(), before + 1);
    other.stop().await;
    app.stop().await;
}
on_both_stores!(a_write_while_the_store_is_busy_answers_503_with_retry_after);

// ---------------------------------------------------------------------------------------------
// HS codes read from goods descriptions

async fn hs_routes_read_descriptions_and_refuse_bad_input(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);

    // A description of insulated copper wire declared as knitted garments (chapter 61): the chapter
    // disagrees; the same text declared as copper wire agrees.
    let check = app
        .post(
            "/api/v1/hs/check",
            &officer,
            &json!({"declared": "6112.49", "text": "insulated copper wire"}),
        )
        .await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.text);
    let check = check.json();
    assert_eq!(check["declared"]["code"], "611249");
    assert_eq!(check["reading"]["kind"], "derived");
    assert!(check["reading"]["model"]
        .as_str()
        .unwrap()
        .starts_with("hs-lexical-"));
    let chapter = &check["reading"]["mismatch"][0];
    assert_eq!(chapter["level"], "chapter");
    assert_eq!(chapter["reads_as"]["code"], "85", "{check}");
    assert_eq!(chapter["verdict"], "disagrees", "{check}");
    let agrees = app
        .post(
            "/api/v1/hs/check",
            &officer,
            &json!({"declared": "8544", "text": "insulated copper wire"}),
        )
        .await
        .json();
    assert_eq!(agrees["reading"]["mismatch"][0]["verdict"], "agrees");
    assert_eq!(agrees["reading"]["mismatch"].as_array().unwrap().len(), 2);

    let suggest = app
        .post(
            "/api/v1/hs/suggest",
            &officer,
            &json!({"text": "insulated copper wire", "k": 5}),
        )
        .await;
    assert_eq!(suggest.status, StatusCode::OK, "{}", suggest.text);
    let suggest = suggest.json();
    let codes = suggest["suggestions"].as_array().unwrap();
    assert_eq!(codes.len(), 5);
    assert!(codes[0]["code"].as_str().unwrap().starts_with("85"));
    assert!(codes[0]["words"]
        .as_str()
        .unwrap()
        .to_lowercase()
        .contains("wire"));
    // k is 3 when absent.
    let three = app
        .post(
            "/api/v1/hs/suggest",
            &officer,
            &json!({"text": "insulated copper wire"}),
        )
        .await
        .json();
    assert_eq!(three["suggestions"].as_array().unwrap().len(), 3);

    // Unreadable text: a clear answer routed to review, no code read.
    for text in ["\u{0}\u{1}\u{2}\u{fffd}", "เสื้อยืดผ้าฝ้าย"] {
        let answer = app
            .post("/api/v1/hs/suggest", &officer, &json!({"text": text}))
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let answer = answer.json();
        assert_eq!(answer["outcome"], "cannot_read", "{answer}");
        assert_eq!(answer["routed_to_review"], true);
        assert!(answer["reads_as"].is_null() && answer["suggestions"] == json!([]));
    }

    // Bad input: 422 naming the field, never a 500.
    let huge = "copper wire ".repeat(90_000); // about 1 MB
    let refused: [(&str, Value, &str); 8] = [
        ("/api/v1/hs/suggest", json!({"text": ""}), "text"),
        ("/api/v1/hs/suggest", json!({"text": "   "}), "text"),
        ("/api/v1/hs/suggest", json!({"text": huge}), "text"),
        ("/api/v1/hs/suggest", json!({"text": "wire", "k": 0}), "k"),
        ("/api/v1/hs/suggest", json!({"text": 7}), "text"),
        (
            "/api/v1/hs/check",
            json!({"declared": "999999", "text": "wire"}),
            "declared",
        ),
        (
            "/api/v1/hs/check",
            json!({"declared": "61x2", "text": "wire"}),
            "declared",
        ),
        (
            "/api/v1/hs/check",
            json!({"declared": "6112", "text": ""}),
            "text",
        ),
    ];
    for (path, body, field) in refused {
        let answer = app.post(path, &officer, &body).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path}: {}",
            answer.text
        );
        let error = answer.json();
        assert_eq!(error["fields"][0]["field"], field, "{path}: {error}");
        assert!(answer.error().starts_with(field), "{}", answer.error());
    }
    // Bytes that are not UTF-8 are not JSON: 400, not 500.
    let binary = app
        .send(
            Method::POST,
            "/api/v1/hs/suggest",
            &officer,
            Some(b"{\"text\": \"\xff\xfe\x00\"}".to_vec()),
        )
        .await;
    assert_eq!(binary.status, StatusCode::BAD_REQUEST, "{}", binary.text);

    // Annotators may not; without credentials, 401.
    let annotator = app
        .post(
            "/api/v1/hs/suggest",
            &app.token(Role::Annotator),
            &json!({"text": "wire"}),
        )
        .await;
    assert_eq!(annotator.status, StatusCode::FORBIDDEN);
    let anonymous = app
        .post(
            "/api/v1/hs/check",
            &Auth::None,
            &json!({"declared": "85", "text": "wire"}),
        )
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

on_both_stores!(hs_routes_read_descriptions_and_refuse_bad_input);

// ---------------------------------------------------------------------------------------------
// X-ray detections

async fn detections_come_with_heat_maps_as_grids_and_pngs(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let scan = app.nii_scan.clone();
    let answer = app
        .get(&format!("/api/v1/nii/scans/{scan}/detections"), &officer)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let found = answer.json();
    let (config, _) = nii_library();
    let registry = borderlens_nii::review::Registry::open(&config.library).unwrap();
    assert_eq!(
        found["model_id"],
        registry.active().unwrap().model_id.as_str()
    );
    let grid = found["heat_map_grid_side"].as_u64().unwrap() as usize;
    let view = &found["views"][0];
    let first = &view["detections"][0];
    assert_eq!(
        first["heat_map_grid"].as_array().unwrap().len(),
        grid * grid
    );
    assert_eq!(
        view["alarm"], first["score"],
        "the alarm is the highest score"
    );
    let png = app.get(first["heat_map"].as_str().unwrap(), &officer).await;
    assert_eq!(png.status, StatusCode::OK);
    assert_eq!(png.headers[CONTENT_TYPE], "image/png");
    let n = view["detections"].as_array().unwrap().len();
    for path in [
        format!("/api/v1/nii/scans/{scan}/views/0/heat/{n}"),
        format!("/api/v1/nii/scans/{scan}/views/9/heat/0"),
        "/api/v1/nii/scans/no-such-scan/detections".to_string(),
    ] {
        let answer = app.get(&path, &officer).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!answer.error().is_empty());
    }
    app.stop().await;
    // A server without an X-ray library says so.
    let app = spawn_app_with(kind, |config| config.nii_desk = None).await;
    let answer = app
        .get(&format!("/api/v1/nii/scans/{scan}/detections"), &officer)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer.error().contains("no X-ray library"),
        "{}",
        answer.text
    );
    app.stop().await;
}
on_both_stores!(detections_come_with_heat_maps_as_grids_and_pngs);

async fn the_library_browser_and_review_queue_answer_json_with_their_filters(kind: StoreKind) {
    let app = spawn_app(kind).await;
    let officer = app.token(Role::Officer);
    let annotator = app.token(Role::Annotator);
    let scan = app.nii_scan.clone();
    let all = app.get("/api/v1/nii/scans", &annotator).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text);
    let all = all.json();
    let total = all["total"].as_u64().unwrap();
    assert!(total >= 2, "{all}");
    assert_eq!(all["matched"], total);
    // One scan by its id; then a listed field, matched exactly.
    let one = app
        .get(&format!("/api/v1/nii/scans?scan_id={scan}"), &annotator)
        .await
        .json();
    assert_eq!(one["matched"], 1, "{one}");
    assert_eq!(one["scans"][0]["scan_id"], scan.as_str());
    let cargo = one["scans"][0]["cargo_type"].as_str().unwrap().to_string();
    let filter = all["filters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "cargo_type")
        .expect("a cargo_type filter");
    assert!(filter["values"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == cargo.as_str()));
    let same = app
        .get(
            &format!("/api/v1/nii/scans?cargo_type={cargo}&page=1"),
            &annotator,
        )
        .await
        .json();
    let kept = same["scans"].as_array().unwrap();
    assert!(!kept.is_empty());
    assert!(
        kept.iter().all(|s| s["cargo_type"] == cargo.as_str()),
        "{same}"
    );
    assert_eq!(
        same["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "cargo_type")
            .unwrap()["current"],
        cargo.as_str()
    );
    // A listed field matches whole values only: a part of one keeps nothing.
    let part = &cargo[..cargo.len() - 1];
    let none = app
        .get(&format!("/api/v1/nii/scans?cargo_type={part}"), &annotator)
        .await
        .json();
    assert_eq!(none["matched"], 0, "{none}");
    assert!(none["scans"].as_array().unwrap().is_empty());
    // Bad queries are 422 naming what is wrong; personal fields are not every role's.
    for (query, auth, field) in [
        ("page=0", &annotator, "page"),
        ("page=two", &officer, "page"),
        ("no_such_field=1", &officer, "no_such_field"),
        ("consignor_name=x", &annotator, "consignor_name"),
    ] {
        let answer = app.get(&format!("/api/v1/nii/scans?{query}"), auth).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{query}: {}",
            answer.text
        );
        assert!(
            answer.error().starts_with(field),
            "{query}: {}",
            answer.error()
        );
    }
    let personal = app
        .get("/api/v1/nii/scans?consignor_name=x", &officer)
        .await;
    assert_eq!(personal.status, StatusCode::OK, "{}", personal.text);
    assert!(
        !all["filters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == "consignor_name"),
        "annotators are not offered personal fields"
    );
    // The review queue: managers only; its count is the sum of its views'.
    let queue = app
        .get("/api/v1/nii/disputes", &app.token(Role::Manager))
        .await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.text);
    let queue = queue.json();
    let open: u64 = queue["views"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["open"].as_u64().unwrap())
        .sum();
    assert_eq!(queue["open"], open);
    let refused = app.get("/api/v1/nii/disputes", &annotator).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    app.stop().await;
    // A server without an X-ray library says so.
    let app = spawn_app_with(kind, |config| config.nii_desk = None).await;
    for path in ["/api/v1/nii/scans", "/api/v1/nii/disputes"] {
        let answer = app.get(path, &app.token(Role::Admin)).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            answer.error().contains("no X-ray library"),
            "{}",
            answer.text
        );
    }
    app.stop().await;
}
on_both_stores!(the_library_browser_and_review_queue_answer_json_with_their_filters);
