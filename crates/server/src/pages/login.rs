//! Log-in form, log in, log out.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use borderlens_app as app;
use maud::html;
use serde::Deserialize;

use super::{html_response, layout, see_other, Form};
use crate::auth::{Authenticated, ClientIp};
use crate::handlers::{attempt_login, session_cookie_header};
use crate::pool::blocking;
use crate::AppState;

#[derive(Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Where to go after logging in: a path of this site only, anything else goes to `/`. The
/// value arrives decoded (`next=/%09/x` is `/`, a tab, `/x`), and browsers drop tabs and line
/// breaks from a `Location` and read `\` as `/`, so `/\t/evil.example/` would leave the site as
/// `//evil.example/` does. Taken only: a `/` then printable ASCII without spaces (what a path
/// of this site is once percent-encoded, as the login redirect sends it), the second character
/// neither `/` nor `\`, no `\` at all, under 512 bytes.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && path.bytes().all(|b| b.is_ascii_graphic() && b != b'\\')
                && path.len() < 512 =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

fn render(status: StatusCode, next: &str, user: &str, problem: Option<&str>) -> Response {
    let body = html! {
        h1 { "Log in" }
        @if let Some(problem) = problem {
            div.banner.bad role="alert" { (problem) }
        }
        form.card method="post" action="/login" {
            input type="hidden" name="next" value=(next);
            div.field {
                label for="user" { "User name" }
                input #user type="text" name="user" value=(user) autocomplete="username"
                    autocapitalize="none" required autofocus;
            }
            div.field {
                label for="password" { "Password" }
                input #password type="password" name="password"
                    autocomplete="current-password" required;
            }
            button.primary type="submit" { "Log in" }
        }
    };
    html_response(status, layout("Log in", None, None, body))
}

pub(crate) async fn form(Query(query): Query<Next>) -> Response {
    render(StatusCode::OK, &safe_next(query.next.as_deref()), "", None)
}

pub(crate) async fn submit(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Login CSRF (another site logging the browser in as someone else): a browser says where a
    // form came from, and only this site's own login form is taken.
    if !super::same_origin(&headers) {
        let error = crate::error::ApiError::forbidden(
            "this log-in form did not come from borderlens: nothing was done",
        );
        return super::error_page(None, &error);
    }
    let form = Form::parse(&body);
    let next = safe_next(form.get("next"));
    let user = form.get("user").unwrap_or_default().to_string();
    let password = form.get("password").unwrap_or_default().to_string();
    match attempt_login(&state, ip, user.clone(), password).await {
        Ok(session) => {
            let mut response = see_other(&next);
            match session_cookie_header(&state, &session.session_id, state.config.session_seconds) {
                Ok(cookie) => {
                    response.headers_mut().insert(SET_COOKIE, cookie);
                    response
                }
                Err(error) => error.into_response(),
            }
        }
        Err(error) => {
            let mut response = render(error.status, &next, &user, Some(&error.message));
            if let Some(seconds) = error.retry_after {
                if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                    response.headers_mut().insert(RETRY_AFTER, value);
                }
            }
            response
        }
    }
}

pub(crate) async fn logout(State(state): State<AppState>, auth: Authenticated) -> Response {
    if let Some(session_id) = auth.session_id {
        if let Err(error) = blocking(&state.pool, Some(auth.caller.user), move |store| {
            app::logout(store, &session_id)
        })
        .await
        {
            return error.into_response();
        }
    }
    let mut response = see_other("/login");
    if let Ok(cookie) = session_cookie_header(&state, "", 0) {
        response.headers_mut().insert(SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_paths_of_this_site_are_followed_after_login() {
        assert_eq!(
            safe_next(Some("/queue?day=2021-03-22")),
            "/queue?day=2021-03-22"
        );
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "queue",
            // What browsers drop or read as a slash: tab, line breaks, space, backslash,
            // anywhere in the path (`next=/%09/evil.example/` arrives as the first one).
            "/\t/evil.example/",
            "/\n/evil.example/",
            "/\r\n/evil.example/",
            "\t//evil.example/",
            "/ /evil.example/",
            "/queue\\..\\\\evil.example",
            "/\u{0}/evil.example/",
            "/\u{7f}/evil.example/",
            "/\u{a0}/evil.example/",
            "/\u{3000}/evil.example/",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            safe_next(Some("/declarations/A%2F1?x=%09")),
            "/declarations/A%2F1?x=%09",
            "encoded characters stay encoded: a path of this site"
        );
    }
}
