//! Black-box tests of the pages over HTTP (no browser): the login redirect, the role matrix of
//! the page table, CSRF on form posts, inert free text, and form errors that name the field.
//! `browser.rs` drives the same pages in Chromium. Each test runs on SQLite and on PostgreSQL
//! (see `common`).

#[macro_use]
mod common;

use std::collections::BTreeSet;

use borderlens_app::Role;
use borderlens_domain::Lane;
use borderlens_server::{pages, Access, Permission};
use common::{
    password, user_name, Served, StoreKind, PAGES, PLANTED, PLANTED_HS6, PLANTED_READS_AS,
    PLANTED_TEXT,
};
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use reqwest::{redirect, Method, StatusCode};

const SERVER_DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md");

fn client() -> reqwest::Client {
    borderlens_server::federation::http_client()
        .no_proxy()
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in through the API: the session cookie and its CSRF token.
async fn session(app: &Served, role: Role) -> (String, String) {
    let answer = client()
        .post(format!("{}/api/v1/login", app.base))
        .json(&serde_json::json!({"user": user_name(role), "password": password(role)}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let cookie = answer
        .headers()
        .get(SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let body: serde_json::Value = answer.json().await.unwrap();
    (cookie, body["csrf_token"].as_str().unwrap().to_string())
}

struct Page {
    status: StatusCode,
    location: String,
    csp: String,
    text: String,
}

async fn send(app: &Served, method: Method, path: &str, cookie: Option<&str>, form: &str) -> Page {
    let mut request = client().request(method.clone(), format!("{}{path}", app.base));
    if let Some(cookie) = cookie {
        request = request.header(COOKIE, cookie);
    }
    if method == Method::POST {
        request = request
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_string());
    }
    let answer = request.send().await.unwrap();
    let header = |name| {
        answer
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (location, csp) = (header(LOCATION), header(CONTENT_SECURITY_POLICY));
    Page {
        status: answer.status(),
        location,
        csp,
        text: answer.text().await.unwrap(),
    }
}

fn encode(text: &str) -> String {
    url_encode(text)
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A control form body with every answer a no-irregularity result needs.
fn control_form(csrf: &str, submission_id: &str, remarks: &str) -> String {
    format!(
        "csrf_token={csrf}&submission_id={submission_id}&outcome=no_irregularity&\
         inspection_method=documentary&inspected_at=2021-01-04T10%3A15&tz_offset=%2B09%3A00&\
         place=terminal+2&officer_id=o-7&remarks={}",
        encode(remarks)
    )
}

/// Posts a control form for declaration `id` with the session `cookie`.
async fn post_control(app: &Served, id: &str, cookie: &str, form: &str) -> Page {
    let path = format!("/declarations/{id}/control");
    send(app, Method::POST, &path, Some(cookie), form).await
}

/// Declarations of the fixture that were decided, green ones first (they can be overridden to
/// red), each once.
fn decided(app: &Served) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut decisions = app.with_store(|store| store.decisions(None).unwrap());
    decisions.sort_by_key(|d| d.decision.lane != Lane::Green);
    decisions
        .into_iter()
        .map(|d| d.decision.declaration_id)
        .filter(|id| seen.insert(id.clone()))
        .collect()
}

fn counts(app: &Served) -> (usize, usize) {
    app.with_store(|store| {
        (
            store.decisions(None).unwrap().len(),
            store.control_results().unwrap().len(),
        )
    })
}

async fn every_page_without_a_session_sends_the_browser_to_the_login_page(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    for page in pages() {
        if page.access == Access::Public {
            continue;
        }
        let path = page.path.replace("{id}", &id);
        let answer = send(&app, page.method.clone(), &path, None, "x=1").await;
        assert_eq!(
            answer.status,
            StatusCode::SEE_OTHER,
            "{} {path}",
            page.method
        );
        assert!(
            answer.location.starts_with("/login?next="),
            "{} {path}: {}",
            page.method,
            answer.location
        );
    }
    // An unknown or forged cookie is no session either.
    let answer = send(
        &app,
        Method::GET,
        "/queue",
        Some("borderlens_session=abc"),
        "",
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let login = send(&app, Method::GET, "/login?next=%2Fqueue", None, "").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.text.contains("name=\"next\" value=\"/queue\""));
    app.stop().await;
}
on_both_stores!(every_page_without_a_session_sends_the_browser_to_the_login_page);

async fn the_role_matrix_is_enforced_on_every_page_for_every_role(kind: StoreKind) {
    let dir = tempfile::TempDir::new().unwrap();
    let desk = common::nii_desk(dir.path());
    let scans = common::nii_scans(&desk);
    let library = desk.library.clone();
    let annotation_lines = move || {
        borderlens_nii::Library::open(&library)
            .unwrap()
            .annotations()
            .len()
    };
    let app = PAGES
        .serve_with(kind, |config| config.nii_desk = Some(desk))
        .await;
    let ids = decided(&app);
    let mut n = 0;
    for page in pages() {
        let Access::Roles(_) = page.access else {
            continue;
        };
        for role in Role::ALL {
            n += 1;
            let (cookie, csrf) = session(&app, role).await;
            let id = if page.path.starts_with("/nii/") {
                &scans[n % scans.len()]
            } else {
                &ids[n]
            };
            let path = page.path.replace("{id}", id);
            let form = if path.ends_with("/override") {
                format!("csrf_token={csrf}&lane=red&reason=tip+from+the+port+police")
            } else if path.ends_with("/control") {
                control_form(&csrf, &format!("matrix-{n}"), "")
            } else if path.starts_with("/nii/disputes/") {
                format!("csrf_token={csrf}&view=0&rows=0")
            } else {
                format!("csrf_token={csrf}")
            };
            let before = counts(&app);
            let lines_before = annotation_lines();
            let answer = send(&app, page.method.clone(), &path, Some(&cookie), &form).await;
            let what = format!("{} {} as {}", page.method, page.path, role.name());
            // One retraining runs at a time: a second press while the first runs is refused.
            let busy = path == "/nii/retrain" && answer.text.contains("is running");
            // The shared library's views have no disputed object: the handler, past the role
            // guard, refuses a decision there (the decision itself is tested in app and in
            // the browser test).
            let nothing_to_decide = path.starts_with("/nii/disputes/")
                && answer.status == StatusCode::UNPROCESSABLE_ENTITY
                && answer.text.contains("no disputed object to decide");
            if page.access.allows(role) {
                assert!(
                    answer.status.is_success()
                        || answer.status == StatusCode::SEE_OTHER
                        || busy
                        || nothing_to_decide,
                    "{what}: {} {}",
                    answer.status,
                    answer.text
                );
                assert!(!answer.location.starts_with("/login?"), "{what}");
            } else {
                assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
                assert!(answer.text.contains("may not"), "{what}: {}", answer.text);
                assert!(answer.text.contains(role.name()), "{what}");
                assert_eq!(counts(&app), before, "{what} changed the store");
                assert_eq!(
                    annotation_lines(),
                    lines_before,
                    "{what} wrote to the X-ray library"
                );
            }
            // (an image or a raw channel keeps the strict default policy of every answer that
            // is not a page)
            if answer.status != StatusCode::SEE_OTHER
                && !path.ends_with("/image")
                && !path.ends_with("/raw")
            {
                assert!(
                    answer.csp.contains("script-src 'self'"),
                    "{what}: {}",
                    answer.csp
                );
            }
        }
    }
    app.stop().await;
}
on_both_stores!(the_role_matrix_is_enforced_on_every_page_for_every_role);

async fn a_form_post_without_the_sessions_csrf_token_changes_nothing(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let (other_cookie, other_csrf) = session(&app, Role::Manager).await;
    let before = counts(&app);
    for (cookie, token) in [
        (&cookie, ""),
        (&cookie, other_csrf.as_str()),
        (&other_cookie, csrf.as_str()),
    ] {
        let body = control_form(token, "csrf-1", "");
        let answer = send(
            &app,
            Method::POST,
            &format!("/declarations/{id}/control"),
            Some(cookie),
            &body,
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.text);
        assert!(answer.text.contains("CSRF"));
        let body = format!("csrf_token={token}&lane=red&reason=because");
        let answer = send(
            &app,
            Method::POST,
            &format!("/declarations/{id}/override"),
            Some(cookie),
            &body,
        )
        .await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(counts(&app), before);
    // With its own token the same post goes through, and a second send records nothing new.
    for _ in 0..2 {
        let answer = post_control(&app, &id, &cookie, &control_form(&csrf, "csrf-1", "")).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
        assert!(
            answer.location.contains("recorded=csrf-1"),
            "{}",
            answer.location
        );
    }
    assert_eq!(counts(&app), (before.0, before.1 + 1));
    app.stop().await;
}
on_both_stores!(a_form_post_without_the_sessions_csrf_token_changes_nothing);

async fn the_dashboard_shows_a_new_result_at_once_though_logins_keep_it(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (analyst, _) = session(&app, Role::Analyst).await;
    let before = send(&app, Method::GET, "/dashboard", Some(&analyst), "").await;
    assert_eq!(before.status, StatusCode::OK);
    assert!(!before.text.contains("officer-1"), "no result recorded yet");
    // A login changes nothing shown: the same page.
    let (officer, csrf) = session(&app, Role::Officer).await;
    let again = send(&app, Method::GET, "/dashboard", Some(&analyst), "").await;
    assert_eq!(again.text, before.text);
    let answer = post_control(
        &app,
        &id,
        &officer,
        &control_form(&csrf, "dash-1", "for the dashboard"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let after = send(&app, Method::GET, "/dashboard", Some(&analyst), "").await;
    assert!(after.text.contains("officer-1"), "the new result is shown");
    assert!(after.text.contains(&id));
    app.stop().await;
}
on_both_stores!(the_dashboard_shows_a_new_result_at_once_though_logins_keep_it);

async fn script_in_remarks_is_shown_as_text_and_never_run(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let script = "<script>alert('x')</script><img src=x onerror=alert(1)>";
    let answer = post_control(&app, &id, &cookie, &control_form(&csrf, "inert-1", script)).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let stored = app.with_store(|store| store.control_results().unwrap());
    assert!(stored
        .last()
        .unwrap()
        .result
        .payload_json
        .contains("<script>alert('x')</script>"));
    for path in [format!("/declarations/{id}"), "/dashboard".to_string()] {
        let page = send(&app, Method::GET, &path, Some(&cookie), "").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(!page.text.contains("<script>alert"), "{path}");
        assert!(!page.text.contains("<img src=x"), "{path}");
        assert!(page.csp.contains("script-src 'self'") && !page.csp.contains("unsafe-inline"));
    }
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{id}"),
        Some(&cookie),
        "",
    )
    .await;
    assert!(page
        .text
        .contains("&lt;script&gt;alert('x')&lt;/script&gt;"));
    app.stop().await;
}
on_both_stores!(script_in_remarks_is_shown_as_text_and_never_run);

async fn a_control_form_with_wrong_answers_names_each_field_and_stores_nothing(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let before = counts(&app);
    // Contraband without its follow-up answers, a container number with a wrong check digit.
    let body = format!(
        "csrf_token={csrf}&submission_id=bad-1&outcome=contraband&inspection_method=physical_full&\
         inspected_at=2021-01-04T10%3A15&tz_offset=%2B09%3A00&place=t&officer_id=o&\
         container_number=CSQU3054384&remarks=found+it"
    );
    let answer = send(
        &app,
        Method::POST,
        &format!("/declarations/{id}/control"),
        Some(&cookie),
        &body,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    for field in [
        "f-contraband_type",
        "f-quantity",
        "f-concealment_method",
        "f-container_number",
    ] {
        let at = answer
            .text
            .find(&format!("id=\"{field}\""))
            .unwrap_or_else(|| panic!("{field}"));
        let rest = &answer.text[at..];
        let problem = rest.find("class=\"problem\"").unwrap_or(usize::MAX);
        let next_field = rest[1..].find("class=\"field\"").unwrap_or(usize::MAX);
        assert!(problem < next_field, "{field} has no problem shown");
    }
    // The answers given are kept in the form, to correct rather than retype.
    assert!(answer.text.contains("value=\"CSQU3054384\""));
    assert!(answer.text.contains("found it"));
    assert_eq!(counts(&app), before);
    // An unknown declaration has no form.
    let missing = send(
        &app,
        Method::GET,
        "/declarations/nope-404/control",
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}
on_both_stores!(a_control_form_with_wrong_answers_names_each_field_and_stores_nothing);

async fn an_override_needs_a_reason_and_is_shown_beside_the_original_decision(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let before = counts(&app);
    let path = format!("/declarations/{id}/override");
    let answer = send(
        &app,
        Method::POST,
        &path,
        Some(&cookie),
        &format!("csrf_token={csrf}&lane=red&reason=+"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        answer.text.contains("reason is mandatory"),
        "{}",
        answer.text
    );
    assert_eq!(counts(&app), before);
    let answer = send(
        &app,
        Method::POST,
        &path,
        Some(&cookie),
        &format!("csrf_token={csrf}&lane=purple&reason=x-ray+shows+a+false+wall"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        ["unknown lane", "purple", "use red, yellow or green"]
            .iter()
            .all(|words| answer.text.contains(words)),
        "{}",
        answer.text
    );
    assert_eq!(counts(&app), before);
    let answer = send(
        &app,
        Method::POST,
        &path,
        Some(&cookie),
        &format!("csrf_token={csrf}&lane=red&reason=x-ray+shows+a+false+wall"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{id}"),
        Some(&cookie),
        "",
    )
    .await;
    assert!(page.text.contains("x-ray shows a false wall"));
    assert!(page.text.contains("Selection probability π"));
    assert_eq!(counts(&app), (before.0 + 1, before.1));
    app.stop().await;
}
on_both_stores!(an_override_needs_a_reason_and_is_shown_beside_the_original_decision);

async fn wrong_passwords_on_the_login_page_are_refused_then_rate_limited(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    for attempt in 1..=6 {
        let answer = send(
            &app,
            Method::POST,
            "/login",
            None,
            "user=officer-1&password=wrong&next=%2Fqueue",
        )
        .await;
        let expected = if attempt <= 5 {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(answer.status, expected, "attempt {attempt}");
        assert!(answer.text.contains("Log in"));
    }
    // The address is blocked too, whatever the user name.
    let right = format!(
        "user=analyst-1&password={}&next=%2F%2Fevil.example",
        encode(&password(Role::Analyst))
    );
    let answer = send(&app, Method::POST, "/login", None, &right).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    app.stop().await;
    let app = PAGES.serve(kind).await;
    let answer = send(&app, Method::POST, "/login", None, &right).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.location, "/", "never sent off-site after login");
    app.stop().await;
}
on_both_stores!(wrong_passwords_on_the_login_page_are_refused_then_rate_limited);

/// `next=/%09/evil.example/` arrives as `/`, a tab, `/evil.example/`; browsers drop the tab
/// from a `Location`, which made it `//evil.example/`: off-site. Neither the form nor the
/// redirect after login may carry it.
async fn login_never_sends_the_browser_off_site(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    for next in [
        "%2F%09%2Fevil.example%2F",
        "%2F%0A%2Fevil.example%2F",
        "%2F%0D%0A%2Fevil.example%2F",
        "%2F%20%2Fevil.example%2F",
        "%2F%5C%2Fevil.example%2F",
        "%09%2F%2Fevil.example%2F",
        "%2F%E3%80%80%2Fevil.example%2F",
        "https%3A%2F%2Fevil.example%2F",
    ] {
        let form = send(&app, Method::GET, &format!("/login?next={next}"), None, "").await;
        assert_eq!(form.status, StatusCode::OK, "{next}");
        assert!(
            form.text.contains(r#"name="next" value="/""#) && !form.text.contains("evil"),
            "{next}: {}",
            form.text
        );
        let body = format!(
            "user=officer-1&password={}&next={next}",
            encode(&password(Role::Officer))
        );
        let answer = send(&app, Method::POST, "/login", None, &body).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(
            answer.location, "/",
            "{next}: never sent off-site after login"
        );
    }
    // A path of this site is followed, encoded as the login redirect encodes it.
    let body = format!(
        "user=officer-1&password={}&next=%2Fqueue%3Fday%3D2021-01-04",
        encode(&password(Role::Officer))
    );
    let answer = send(&app, Method::POST, "/login", None, &body).await;
    assert_eq!(answer.location, "/queue?day=2021-01-04");
    app.stop().await;
}
on_both_stores!(login_never_sends_the_browser_off_site);

/// An override reason of NULs (a 500 on PostgreSQL), of one character, or of zero-width
/// characters only: a 422 page naming the field, and nothing stored.
async fn an_override_reason_without_visible_words_or_with_control_characters_is_refused(
    kind: StoreKind,
) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let before = counts(&app);
    let path = format!("/declarations/{id}/override");
    for (reason, why) in [
        ("%00%00%00%00%00%00%00%00", "control character U+0000"),
        ("tip%00from+the+police", "control character U+0000"),
        ("x", "1 visible characters, at least 5"),
        (
            "%E2%80%8B%E2%80%8B%E2%80%8B%E2%80%8B%E2%80%8B%E2%80%8B",
            "reason is mandatory",
        ),
        ("a%E2%80%8Bb%E2%80%8Dc%EF%BB%BF", "3 visible characters"),
    ] {
        let form = format!("csrf_token={csrf}&lane=red&reason={reason}");
        let answer = send(&app, Method::POST, &path, Some(&cookie), &form).await;
        assert_eq!(
            answer.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{reason}: {}",
            answer.text
        );
        assert!(
            answer.text.contains("reason: ") && answer.text.contains(why),
            "{reason}: {}",
            answer.text
        );
        assert_eq!(counts(&app), before, "{reason}");
    }
    app.stop().await;
}
on_both_stores!(an_override_reason_without_visible_words_or_with_control_characters_is_refused);

/// The dashboard shows each role what the API lets it read, no more and no less: officers the
/// latest results but not the estimates, bias audit or drift the API refuses them (403).
async fn the_dashboard_shows_each_role_only_what_the_api_lets_it_read(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let api = |path: &'static str, role: Role| {
        let request = client()
            .get(format!("{}{path}", app.base))
            .bearer_auth(app.api_token(role));
        async move { request.send().await.unwrap().status() }
    };
    let drift = "/api/v1/drift?reference_from=2020-01-01&reference_to=2020-01-10&\
                 from=2021-01-01&to=2021-01-05";
    let dashboard_page = pages()
        .into_iter()
        .find(|p| p.path == "/dashboard")
        .unwrap();
    for role in Role::ALL {
        if !dashboard_page.access.allows(role) {
            continue;
        }
        let (cookie, _) = session(&app, role).await;
        let page = send(&app, Method::GET, "/dashboard", Some(&cookie), "").await;
        assert_eq!(page.status, StatusCode::OK, "{}", role.name());
        assert!(page.text.contains(r#"id="recent""#), "{}", role.name());
        // A part is shown, or named under "Not shown" with why it could not be computed (the
        // fixture's few weeks leave the dashboard's drift windows empty).
        for (path, section, note) in [
            ("/api/v1/estimates", r#"id="estimates""#, "<li>estimates: "),
            ("/api/v1/bias-audit", r#"id="bias""#, "<li>bias audit: "),
            (drift, r#"id="drift""#, "<li>drift: "),
        ] {
            let status = api(path, role).await;
            let what = format!("{} as {}: API {status}", section, role.name());
            assert!(
                status == StatusCode::OK || status == StatusCode::FORBIDDEN,
                "{what}"
            );
            assert_eq!(
                page.text.contains(section) || page.text.contains(note),
                status == StatusCode::OK,
                "{what}: {}",
                page.text
            );
            assert_eq!(
                status == StatusCode::OK,
                Permission::Monitor.allows(role),
                "{what}: one table"
            );
        }
        if !Permission::Monitor.allows(role) {
            for hidden in [
                "Non-compliance estimates",
                "Bias audit of the selections",
                "Weekly hit rate",
                "Drift: ",
                "Precision at 5%",
                "Not shown",
            ] {
                assert!(
                    !page.text.contains(hidden),
                    "{hidden} shown to {}",
                    role.name()
                );
            }
        }
    }
    app.stop().await;
}
on_both_stores!(the_dashboard_shows_each_role_only_what_the_api_lets_it_read);

#[test]
fn docs_server_md_states_the_role_matrix_of_the_page_table() {
    let doc = std::fs::read_to_string(SERVER_DOC).unwrap();
    for page in pages() {
        let cell = format!("| `{} {}` |", page.method, page.path);
        let line = doc
            .lines()
            .find(|l| l.starts_with(&cell))
            .unwrap_or_else(|| panic!("docs/server.md has no row starting {cell}"));
        for (i, role) in Role::ALL.iter().enumerate() {
            let mark = line.split('|').nth(2 + i).unwrap().trim();
            let expected = match page.access {
                Access::Public => "public",
                Access::Roles(_) if page.access.allows(*role) => "yes",
                Access::Roles(_) => "no",
            };
            assert_eq!(mark, expected, "docs/server.md: {cell} {}", role.name());
        }
    }
}

async fn pages_travel_gzipped_to_browsers_that_accept_it(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (cookie, _) = session(&app, Role::Officer).await;
    for accept in [Some("gzip, deflate, br"), None] {
        let mut request = client()
            .get(format!("{}/queue", app.base))
            .header(COOKIE, &cookie);
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let encoding = answer
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = answer.bytes().await.unwrap();
        match accept {
            Some(_) => {
                assert_eq!(encoding.as_deref(), Some("gzip"));
                assert_eq!(&bytes[..2], b"\x1f\x8b", "a gzip stream");
            }
            None => {
                assert_eq!(encoding, None);
                assert!(bytes.starts_with(b"<!DOCTYPE html>"));
            }
        }
    }
    app.stop().await;
}
on_both_stores!(pages_travel_gzipped_to_browsers_that_accept_it);

async fn a_form_posted_from_another_site_is_refused_even_with_the_right_token(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let host = app.base.trim_start_matches("http://").to_string();
    for (path, body) in [
        (
            format!("/declarations/{id}/control"),
            control_form(&csrf, "origin-1", ""),
        ),
        (
            format!("/declarations/{id}/override"),
            format!("csrf_token={csrf}&lane=red&reason=from+elsewhere"),
        ),
    ] {
        for (origin, expected) in [
            ("https://evil.example", StatusCode::FORBIDDEN),
            (format!("http://{host}").as_str(), StatusCode::SEE_OTHER),
        ] {
            let before = counts(&app);
            let answer = client()
                .post(format!("{}{path}", app.base))
                .header(COOKIE, &cookie)
                .header("origin", origin)
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), expected, "{path} from {origin}");
            if expected == StatusCode::FORBIDDEN {
                assert_eq!(
                    counts(&app),
                    before,
                    "{path} from {origin} changed the store"
                );
            }
        }
    }
    // Login CSRF: another site's form cannot log the browser in.
    let login = client()
        .post(format!("{}/login", app.base))
        .header("origin", "https://evil.example")
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!(
            "user=officer-1&password={}",
            encode(&password(Role::Officer))
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::FORBIDDEN);
    assert!(login.headers().get(SET_COOKIE).is_none());
    app.stop().await;
}
on_both_stores!(a_form_posted_from_another_site_is_refused_even_with_the_right_token);

/// A declaration of two items whose second is the riskier: the selection decides on item 2, and
/// the page and the API's decision trace explain item 2 and say so.
async fn a_declaration_of_several_items_is_explained_by_the_item_decided_on(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = "MULTI-1";
    let saved = app.with_store(|store| {
        // The scores the fixture's selection saved, riskiest first (outside the January
        // campaign on Chinese textiles, which would pick its own item).
        let mut scored: Vec<(f64, borderlens_domain::DeclarationItem)> = store
            .decisions(None)
            .unwrap()
            .into_iter()
            .filter_map(|d| {
                let key = borderlens_domain::ItemKey {
                    declaration_id: d.decision.declaration_id,
                    item_no: 1,
                };
                let score = store.scores_for(&key).unwrap().pop()?.score;
                let item = store.item(&key).unwrap()?;
                (item.origin_country != "CN").then_some((score, item))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        let date = chrono::NaiveDate::from_ymd_opt(2021, 1, 6).unwrap();
        let copy = |item: &borderlens_domain::DeclarationItem, item_no| {
            borderlens_domain::DeclarationItem {
                key: borderlens_domain::ItemKey {
                    declaration_id: id.to_string(),
                    item_no,
                },
                date,
                ..item.clone()
            }
        };
        let (low, high) = (&scored[scored.len() - 1].1, &scored[0].1);
        store
            .import("multi.csv", [(copy(low, 1), 2), (copy(high, 2), 3)])
            .unwrap();
        borderlens_app::select(
            store,
            &borderlens_app::SelectRequest {
                policy: "port-default".into(),
                model: "pages".into(),
                from: date,
                to: date,
                seed: 7,
                per_office: false,
            },
            &borderlens_app::Silent,
        )
        .unwrap();
        let score = |item_no| {
            let key = borderlens_domain::ItemKey {
                declaration_id: id.to_string(),
                item_no,
            };
            store.scores_for(&key).unwrap()[0].score
        };
        (score(1), score(2))
    });
    assert!(saved.1 > saved.0, "{saved:?}");

    let (cookie, _) = session(&app, Role::Officer).await;
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{id}"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("item 2 of 2"), "{}", page.text);
    assert!(
        page.text
            .contains("Item 2 of 2: the item the selection decided on."),
        "{}",
        page.text
    );

    let answer = client()
        .get(format!("{}/api/v1/declarations/{id}/decision", app.base))
        .bearer_auth(app.api_token(Role::Officer))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let trace: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(trace["item_no"], 2);
    assert_eq!(trace["decided_item"], 2);
    assert_eq!(trace["items"], 2);
    assert_eq!(trace["decisions"][0]["item_no"], 2);
    assert_eq!(trace["explanation"]["item_no"], 2);
    let explained = trace["explanation"]["score"].as_f64().unwrap();
    assert!((explained - saved.1).abs() < 1e-9, "{explained} {saved:?}");
    app.stop().await;
}
on_both_stores!(a_declaration_of_several_items_is_explained_by_the_item_decided_on);

/// The declaration ids a queue page lists, in order.
fn queue_ids(page: &str) -> Vec<String> {
    page.split("class=\"id\" href=\"/declarations/")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// The `href` of the link marked `rel`, unescaped.
fn link(page: &str, rel: &str) -> Option<String> {
    let at = page.find(&format!("rel=\"{rel}\" href=\""))?;
    let rest = &page[at + rel.len() + 13..];
    Some(rest.split('"').next().unwrap().replace("&amp;", "&"))
}

async fn the_queue_is_paged_and_searched_on_the_server(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (cookie, _) = session(&app, Role::Officer).await;
    let get = |path: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move { send(app, Method::GET, &path, Some(&cookie), "").await }
    };
    let whole = get("/queue?size=500".into()).await;
    assert_eq!(whole.status, StatusCode::OK);
    let all = queue_ids(&whole.text);
    assert!(all.len() >= 3, "{}", all.len());
    assert!(link(&whole.text, "next").is_none());
    // Three pages: the same order, page after page, by the next links.
    let size = all.len().div_ceil(3);
    let mut page = get(format!("/queue?size={size}")).await;
    let mut seen = Vec::new();
    let mut pages = 1;
    loop {
        let ids = queue_ids(&page.text);
        assert!(ids.len() <= size && !ids.is_empty(), "{ids:?}");
        assert_eq!(link(&page.text, "prev").is_some(), pages > 1);
        seen.extend(ids);
        match link(&page.text, "next") {
            Some(next) => {
                assert!(next.contains(&format!("size={size}")));
                assert!(next.contains(&format!("page={}", pages + 1)));
                page = get(next).await;
                pages += 1;
            }
            None => break,
        }
    }
    assert_eq!(seen, all);
    assert_eq!(pages, all.len().div_ceil(size));
    assert!(page.text.contains(&format!("Page {pages} of {pages}")));
    // Search by (part of) a declaration id, any case.
    let wanted = &all[all.len() / 2];
    let found = get(format!("/queue?q={}", encode(&wanted.to_lowercase()))).await;
    let ids = queue_ids(&found.text);
    assert!(ids.contains(wanted), "{ids:?}");
    assert!(ids.len() < all.len());
    assert!(found
        .text
        .contains(&format!("value=\"{}\"", wanted.to_lowercase())));
    let none = get("/queue?q=no-such-declaration".into()).await;
    assert!(queue_ids(&none.text).is_empty());
    assert!(none.text.contains("No declaration matches"));
    // Paging words that are not numbers are refused by name.
    let bad = get("/queue?page=second".into()).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        bad.text
            .contains("page: &#39;second&#39; is not a whole number")
            || bad.text.contains("page: 'second' is not a whole number"),
        "{}",
        bad.text
    );
    let bad = get("/queue?size=0".into()).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.stop().await;
}
on_both_stores!(the_queue_is_paged_and_searched_on_the_server);

async fn a_declaration_shows_readable_times_and_control_answers_in_words(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[1].clone();
    let (cookie, csrf) = session(&app, Role::Officer).await;
    let answer = post_control(&app, &id, &cookie, &control_form(&csrf, "words-1", "ok")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{id}"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let results = &page.text[page.text.find("id=\"results\"").unwrap()..];
    // Times as `2021-01-04 01:15 UTC`, never RFC 3339 (`2021-01-04T01:15:00+00:00`).
    let raw_time = |text: &str| {
        text.as_bytes()
            .windows(13)
            .any(|w| w[4] == b'-' && w[7] == b'-' && w[10] == b'T' && w[11].is_ascii_digit())
    };
    assert!(!raw_time(&page.text), "a raw RFC 3339 time on the page");
    assert!(results.contains(" UTC by "), "{results}");
    // Codes in the form's words, not codes or JSON.
    let schema = borderlens_controls::FormSchema::builtin();
    let outcome = schema.code_of("outcome", "no_irregularity").unwrap();
    assert!(results.contains(&outcome.label), "{results}");
    let method = schema.field("inspection_method").unwrap();
    assert!(results.contains(&method.label), "{results}");
    assert!(!results.contains("no_irregularity") && !results.contains("inspection_method"));
    assert!(
        !results.contains("[&quot;") && !results.contains("[\""),
        "{results}"
    );
    app.stop().await;
}
on_both_stores!(a_declaration_shows_readable_times_and_control_answers_in_words);

async fn a_planted_misdeclaration_shows_the_reading_beside_the_declared_code(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (cookie, _) = session(&app, Role::Officer).await;
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{PLANTED}"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let goods = &page.text[page.text.find("id=\"goods\"").unwrap()..];
    let reading = &goods[goods.find("id=\"hs-reading\"").expect("the reading")..];
    // Side by side: the declared code and the sender's text, then the reading, derived.
    assert!(goods.contains(&format!("<td data-declared-hs6>{PLANTED_HS6}</td>")));
    assert!(goods.contains(&format!(">{PLANTED_TEXT}</bdi>")));
    assert!(reading.contains("(derived)"), "{reading}");
    assert!(reading.contains("data-hs-model>hs-lexical-1+"), "{reading}");
    let line = &reading[reading.find("id=\"hs-suggestion\"").unwrap()..];
    let line = &line[..line.find("</p>").unwrap()];
    assert!(
        line.contains(&format!("data-hs-declared>{PLANTED_HS6}</span>")),
        "{line}"
    );
    assert!(
        line.contains(&format!("data-hs-reads-as>{PLANTED_READS_AS} ")),
        "{line}"
    );
    assert!(line.contains("chapter mismatch: "), "{line}");
    assert!(line.contains("data-hs-verdict=\"disagrees\""), "{line}");
    assert!(reading.contains("data-hs-level=\"chapter\""), "{reading}");
    assert!(reading.contains("id=\"hs-sender-vs-cleaned\""), "{reading}");
    // The decision trace carries the same reading apart from the declared goods.
    let trace = send(
        &app,
        Method::GET,
        &format!("/api/v1/declarations/{PLANTED}/decision"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(trace.status, StatusCode::OK, "{}", trace.text);
    let trace: serde_json::Value = serde_json::from_str(&trace.text).unwrap();
    assert_eq!(
        trace["goods"]["hs6"], PLANTED_HS6,
        "the declared code is kept"
    );
    assert_eq!(trace["hs_reading"]["kind"], "derived");
    assert_eq!(trace["hs_reading"]["mismatch"][0]["verdict"], "disagrees");
    assert_eq!(
        trace["hs_reading"]["suggestions"][0]["code"],
        PLANTED_READS_AS
    );
    app.stop().await;
}
on_both_stores!(a_planted_misdeclaration_shows_the_reading_beside_the_declared_code);

async fn a_declaration_lists_the_declarations_of_parties_a_linkage_run_linked(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let id = decided(&app)[0].clone();
    // Link this declaration's importer with the importer of a declaration that shares neither
    // its importer nor its declarant, as `borderlens link --save-party-links` would.
    let (importer, other) = app.with_store(|store| {
        let mine = store.declaration(&id).unwrap().unwrap().first().clone();
        let other = store
            .items(&Default::default())
            .unwrap()
            .into_iter()
            // The newest such item: the related records list the newest first.
            .rev()
            .find(|d| {
                d.importer_id != mine.importer_id
                    && d.declarant_id != mine.declarant_id
                    && d.key.declaration_id != id
            })
            .unwrap();
        let links = [
            borderlens_store::PartyLink {
                party_id: mine.importer_id.clone(),
                group_id: "G".into(),
                linked_to: other.importer_id.clone(),
                probability: 0.987,
            },
            borderlens_store::PartyLink {
                party_id: other.importer_id.clone(),
                group_id: "G".into(),
                linked_to: mine.importer_id.clone(),
                probability: 0.987,
            },
        ];
        store
            .replace_party_links("parties.csv -> out", &links)
            .unwrap();
        (mine.importer_id, other)
    });
    let (cookie, _) = session(&app, Role::Officer).await;
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{id}"),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let related = &page.text[page.text.find("id=\"related\"").unwrap()..];
    let related = &related[..related.find("id=\"results\"").unwrap()];
    assert!(related.contains("id=\"linked-parties\""), "{related}");
    assert!(related.contains(&importer) && related.contains(&other.importer_id));
    assert!(related.contains("0.987") && related.contains("parties.csv -&gt; out"));
    assert!(related.contains("linked importer"), "{related}");
    app.stop().await;
}
on_both_stores!(a_declaration_lists_the_declarations_of_parties_a_linkage_run_linked);

/// A declaration naming a container or parcel that the served X-ray library scanned shows the
/// scan (linked to the viewer), whatever spelling of the id it declared; an id with a wrong
/// check digit is shown with why it links nothing; the scan's page lists its declarations for
/// those who may read declarations, and not for an annotator. The catalogue is written when
/// the server starts.
async fn a_declaration_shows_the_scans_of_its_container_and_a_scan_its_declarations(
    kind: StoreKind,
) {
    use borderlens_nii::batch::generate_into;
    use borderlens_nii::generate::GeneratorParams;
    let dir = tempfile::TempDir::new().unwrap();
    let params = GeneratorParams {
        width: 96,
        height: 96,
        cargo_mix: [0.5, 0.0, 0.5],
        ..GeneratorParams::default()
    };
    let root = dir.path().join("library");
    let mut library = borderlens_nii::Library::create(&root).unwrap();
    generate_into(&mut library, &params, 3, 8, &|_| {}, &|| false).unwrap();
    let records = borderlens_nii::Library::open(&root)
        .unwrap()
        .records()
        .to_vec();
    let container_scan = records
        .iter()
        .find(|r| r.metadata.container_id.is_some())
        .expect("a container among 8 scans");
    let parcel_scan = records
        .iter()
        .find(|r| r.metadata.package_id.is_some())
        .expect("a parcel among 8 scans");
    let container = container_scan.metadata.container_id.clone().unwrap();
    let parcel = parcel_scan.metadata.package_id.clone().unwrap();
    // Declared in lower case with spaces: it still links.
    let spelled = format!(
        "{} {} {}",
        container[..4].to_lowercase(),
        &container[4..10],
        &container[10..]
    );
    let wrong_digit = format!(
        "{}{}",
        &parcel[..10],
        (parcel.as_bytes()[10] - b'0' + 1) % 10
    );
    let wrong = format!("{wrong_digit}{}", &parcel[11..]);
    let row = "2021-01-01,40,B,11,11,11,40,76NV527,SHHZGSL,249LO7A,,760711,CN,CN,7.2,FCN1,E,901.2,415092.72,0,0";
    let csv = format!(
        "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,Critical Fraud,Container Number,Postal Item ID\n\
         XRAY-C,{row},{spelled},\n\
         XRAY-P,{row},,{parcel}\n\
         XRAY-W,{row},,{wrong}\n"
    );
    // An active detector (issue 16): trained on the library, evaluated on a held-out one.
    let held_out = dir.path().join("held-out");
    let mut other = borderlens_nii::Library::create(&held_out).unwrap();
    generate_into(&mut other, &params, 4, 6, &|_| {}, &|| false).unwrap();
    let mut desk = borderlens_app::DeskConfig::new(root.clone());
    desk.hidden_share = 0.0;
    desk.held_out = Some(held_out);
    desk.train = common::nii_train_options();
    let trainer = borderlens_app::NiiDesk::new(desk.clone()).unwrap();
    trainer.claim_retrain("setup").unwrap();
    trainer.retrain("setup", &borderlens_app::Silent).unwrap();
    let app = PAGES
        .serve_with(kind, |config| config.nii_desk = Some(desk))
        .await;
    app.with_store(|store| {
        let mapping = borderlens_ingest::ColumnMapping::kcs_default_for_csv(csv.as_bytes());
        let report = borderlens_app::import_bytes(
            store,
            "xray.csv",
            csv.as_bytes(),
            &mapping,
            true,
            &borderlens_app::Silent,
        )
        .unwrap();
        assert_eq!(report.inserted, 3, "{report:?}");
    });
    let (officer, _) = session(&app, Role::Officer).await;
    let page = send(
        &app,
        Method::GET,
        "/declarations/XRAY-C",
        Some(&officer),
        "",
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let link = format!(
        "href=\"/nii/library/scans/{}\"",
        container_scan.metadata.scan_id
    );
    assert!(page.text.contains("id=\"xray-scans\""), "{}", page.text);
    assert!(page.text.contains(&link), "{}", page.text);
    assert!(page.text.contains(&format!("container {container}")));
    // The active detector's alarm on the scan, with its heat map when it detected something.
    let expected = trainer
        .detections(&container_scan.metadata.scan_id, &|_, _| String::new())
        .unwrap()
        .alarm();
    assert!(
        page.text
            .contains(&format!("data-alarm=\"{:.3}\"", expected.alarm)),
        "{}",
        page.text
    );
    let heat = page.text.find("src=\"/api/v1/nii/scans/");
    assert_eq!(heat.is_some(), expected.top.is_some(), "{}", page.text);
    if let Some(at) = heat {
        let src = &page.text[at + 5..];
        let src = &src[..src.find('"').unwrap()];
        let png = send(&app, Method::GET, src, Some(&officer), "").await;
        assert_eq!(png.status, StatusCode::OK, "{src}");
    }
    let page = send(
        &app,
        Method::GET,
        "/declarations/XRAY-P",
        Some(&officer),
        "",
    )
    .await;
    assert!(page.text.contains(&format!(
        "href=\"/nii/library/scans/{}\"",
        parcel_scan.metadata.scan_id
    )));
    let page = send(
        &app,
        Method::GET,
        "/declarations/XRAY-W",
        Some(&officer),
        "",
    )
    .await;
    assert!(page.text.contains("links no scan"), "{}", page.text);
    assert!(page.text.contains("No catalogued scan."), "{}", page.text);
    // A declaration naming no container or parcel has no such section.
    let ids = decided(&app);
    let page = send(
        &app,
        Method::GET,
        &format!("/declarations/{}", ids[0]),
        Some(&officer),
        "",
    )
    .await;
    assert!(!page.text.contains("id=\"xray-scans\""));

    // The scan's page lists its declarations for an officer, not for an annotator.
    let scan_page = format!("/nii/library/scans/{}", container_scan.metadata.scan_id);
    let page = send(&app, Method::GET, &scan_page, Some(&officer), "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text.contains("id=\"scan-declarations\""),
        "{}",
        page.text
    );
    assert!(page.text.contains("href=\"/declarations/XRAY-C\""));
    assert!(!page.text.contains("href=\"/declarations/XRAY-P\""));
    let (annotator, _) = session(&app, Role::Annotator).await;
    let page = send(&app, Method::GET, &scan_page, Some(&annotator), "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.text.contains("XRAY-C"));
    app.stop().await;
}
on_both_stores!(a_declaration_shows_the_scans_of_its_container_and_a_scan_its_declarations);

async fn the_federation_page_lists_the_foreign_results_imported(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (manager, _) = session(&app, Role::Manager).await;
    let before = send(&app, Method::GET, "/federation", Some(&manager), "").await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text);
    assert!(
        before.text.contains("None imported yet."),
        "{}",
        before.text
    );
    // Another administration's anonymised document, as `controls import` stores it.
    let document = serde_json::json!({
        "format": "borderlens-control-results", "format_version": 2,
        "schema_version": "1.0.0", "sender": "BE", "generated_at": "2024-05-01T08:00:00Z",
        "anonymised": true,
        "results": [{
            "submission_id": "a".repeat(64), "declaration_id": "b".repeat(64),
            "values": {
                "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
                "drug_form": "powder", "concealment_method": "false_compartment",
                "quantity": 2.0, "quantity_unit": "kg", "inspection_method": ["physical_full"],
                "inspected_at": "2024-04-30"
            },
            "context": {"origin_country": "CO", "transport_mode": "10"}
        }]
    })
    .to_string();
    app.with_store(|store| {
        let report = borderlens_app::import_control_results(store, "be.json", &document).unwrap();
        assert_eq!(report.foreign_sender.as_deref(), Some("BE"));
        assert_eq!(report.recorded, 1);
    });
    let page = send(&app, Method::GET, "/federation", Some(&manager), "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(r#"id="foreign""#), "{}", page.text);
    assert!(page.text.contains("<td>BE</td>"), "{}", page.text);
    assert!(page.text.contains("2024-05-01T08:00:00Z"), "{}", page.text);
    assert!(
        page.text
            .contains("<td>2024-05-01T08:00:00Z</td><td>1</td><td>1</td>"),
        "{}",
        page.text
    );
    // The pooled chart beside it.
    assert!(
        page.text.contains("Pooled hit rate by origin"),
        "{}",
        page.text
    );
    let (analyst, _) = session(&app, Role::Analyst).await;
    let refused = send(&app, Method::GET, "/federation", Some(&analyst), "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}
on_both_stores!(the_federation_page_lists_the_foreign_results_imported);

/// The manager's federation page adds up the privacy the node's sessions spent, as the node's
/// audit log records it, and says which sessions sent exact sums.
async fn the_federation_page_shows_the_privacy_budget_spent(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (manager, _) = session(&app, Role::Manager).await;
    let rounds = |n: u64| {
        serde_json::json!((1..=n)
            .map(|r| serde_json::json!({
                "round": r, "nonce": "00", "request": "label sums", "answer": "Masked"
            }))
            .collect::<Vec<_>>())
    };
    let privacy = |releases: u64, rho: f64| {
        serde_json::json!({
            "noise_multiplier": 10.0, "releases": releases, "rho": rho,
            "epsilon": borderlens_federation::dp::epsilon(rho, 1e-6), "delta": 1e-6
        })
    };
    app.with_store(|store| {
        let actor = "federation:coordinator";
        for (session, noisy) in [("s-exact", false), ("s-noisy", true)] {
            let open = serde_json::json!({"party": 0, "label": "fraud", "until": "2021-03-31", "rows": 100});
            store.append_audit(actor, "federation_open", session, &open.to_string()).unwrap();
            let mut detail = serde_json::json!({"stage": "setup", "rounds": rounds(4)});
            let mut end = serde_json::json!({"reason": "saved as m version 1", "trees": 1});
            if noisy {
                detail["privacy"] = privacy(2, 0.01);
                end["privacy"] = privacy(4, 0.02);
            }
            store.append_audit(actor, "federation_rounds", session, &detail.to_string()).unwrap();
            store.append_audit(actor, "federation_finish", session, &end.to_string()).unwrap();
        }
    });
    let page = send(&app, Method::GET, "/federation", Some(&manager), "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let epsilon = format!("{:.3}", borderlens_federation::dp::epsilon(0.02, 1e-6));
    assert!(
        page.text.contains(&format!(
            "1 session(s) added noise: ε = {epsilon} at δ = 1e-6"
        )),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("1 session(s) sent exact sums"),
        "{}",
        page.text
    );
    // Each session's own row: the noisy one's ε from its end, the exact one says so.
    assert!(
        page.text.contains(&format!("ε {epsilon} (δ 1e-6)")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("4 noisy releases, noise multiplier 10"),
        "{}",
        page.text
    );
    assert!(page.text.contains("<td>exact sums</td>"), "{}", page.text);
}
on_both_stores!(the_federation_page_shows_the_privacy_budget_spent);

/// What this administration shared: each control-results export written, newest first, with
/// whether it was anonymised (a plain one is flagged).
async fn the_federation_page_lists_the_control_results_we_exported(kind: StoreKind) {
    let app = PAGES.serve(kind).await;
    let (manager, _) = session(&app, Role::Manager).await;
    let before = send(&app, Method::GET, "/federation", Some(&manager), "").await;
    assert!(
        before.text.contains("None exported yet."),
        "{}",
        before.text
    );
    let sha = app.with_store(|store| {
        let plain = borderlens_app::export_control_results(store, "XX", None).unwrap();
        borderlens_app::audit_control_export(store, &plain, "internal.json").unwrap();
        let anonymised =
            borderlens_app::export_control_results(store, "XX", Some(&[7u8; 32])).unwrap();
        borderlens_app::audit_control_export(store, &anonymised, "for-be.json").unwrap();
        anonymised.sha256
    });
    let page = send(&app, Method::GET, "/federation", Some(&manager), "").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(r#"id="exports""#), "{}", page.text);
    let newest = page
        .text
        .find("for-be.json")
        .expect("the anonymised export");
    let older = page.text.find("internal.json").expect("the plain export");
    assert!(newest < older, "newest first");
    assert!(page.text.contains(&sha[..16]), "{}", page.text);
    assert!(
        page.text
            .contains("no: names, officers and places included"),
        "{}",
        page.text
    );
}
on_both_stores!(the_federation_page_lists_the_control_results_we_exported);
