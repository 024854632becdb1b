//! Who is calling and whether they may: credentials (session cookie or bearer token), the role
//! check of each route, the CSRF check of cookie requests that change state, and the login rate
//! limiter.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use borderlens_app::{self as app, Caller, Role};

use crate::error::ApiError;
use crate::pool::blocking;
use crate::{AppState, CSRF_HEADER, SESSION_COOKIE};

/// The access rule of one route, as the middleware applies it.
#[derive(Clone)]
pub(crate) struct Guard {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) roles: &'static [Role],
    /// Whether the route changes state: then a session request needs the CSRF token.
    pub(crate) changes_state: bool,
}

/// The authenticated caller, put in the request's extensions by [`authorize`] for the handler.
#[derive(Clone, Debug)]
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    /// The session id, when the caller came with the session cookie.
    pub(crate) session_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Authenticated>()
            .cloned()
            .ok_or_else(|| ApiError::internal("a guarded handler ran without a caller"))
    }
}

/// The client's IP address (the TCP peer; behind a proxy, the proxy's).
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Credentials as found in a request.
enum Credentials {
    Bearer(String),
    Session(String),
    Malformed(&'static str),
    None,
}

/// A secret as we issue them: 64 lower-case hex digits. Anything else is not looked up.
fn is_secret(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value of the session cookie, if the request has one.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim().to_string())
}

/// A bearer token wins over a cookie; a malformed `Authorization` header is an error rather
/// than a fall-back to the cookie.
fn credentials(headers: &HeaderMap) -> Credentials {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let Ok(text) = value.to_str() else {
            return Credentials::Malformed("Authorization header is not ASCII");
        };
        return match text.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                Credentials::Bearer(token.trim().to_string())
            }
            _ => Credentials::Malformed("Authorization header: expected `Bearer TOKEN`"),
        };
    }
    match session_cookie(headers) {
        Some(id) => Credentials::Session(id),
        None => Credentials::None,
    }
}

/// Compares two secrets in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The middleware of every guarded route: 401 without valid credentials, 403 for a role the
/// route does not admit, 403 for a cookie request that changes state without the session's
/// CSRF token; otherwise the handler runs with [`Authenticated`] in the extensions.
pub(crate) async fn authorize(
    State(state): State<AppState>,
    guard: Guard,
    mut request: Request,
    next: Next,
) -> Response {
    match check(&state, &guard, request.headers()).await {
        Ok(authenticated) => {
            request.extensions_mut().insert(authenticated);
            next.run(request).await
        }
        Err(error) => error.into_response(),
    }
}

async fn check(
    state: &AppState,
    guard: &Guard,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let authenticated = identify(state, headers).await?;
    check_role(guard, &authenticated.caller)?;
    if authenticated.session_id.is_some() && guard.changes_state {
        let given = headers
            .get(CSRF_HEADER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        if !csrf_matches(&authenticated.caller, given) {
            return Err(ApiError::forbidden(
                "missing or wrong X-CSRF-Token header: a request with the session cookie that \
                 changes state must carry the csrf_token returned by login",
            ));
        }
    }
    Ok(authenticated)
}

/// 403 unless the caller's role is one the route admits.
pub(crate) fn check_role(guard: &Guard, caller: &Caller) -> Result<(), ApiError> {
    if guard.roles.contains(&caller.role) {
        return Ok(());
    }
    let allowed: Vec<&str> = guard.roles.iter().map(|r| r.name()).collect();
    Err(ApiError::forbidden(format!(
        "role {} may not use {} {} (allowed: {})",
        caller.role.name(),
        guard.method,
        guard.path,
        allowed.join(", ")
    )))
}

/// Whether `given` is the CSRF token of the caller's session.
pub(crate) fn csrf_matches(caller: &Caller, given: &str) -> bool {
    let expected = caller.csrf_token.as_deref().unwrap_or_default();
    !expected.is_empty() && same_secret(given, expected)
}

/// Who calls: 401 without valid credentials (no cookie or token, a malformed header, an
/// unknown, revoked or expired secret).
pub(crate) async fn identify(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let (caller, session_id) =
        match credentials(headers) {
            Credentials::None => return Err(ApiError::unauthenticated(
                "authentication required: log in (POST /api/v1/login) for a session cookie, or \
                 send `Authorization: Bearer TOKEN`",
            )),
            Credentials::Malformed(why) => return Err(ApiError::unauthenticated(why)),
            Credentials::Bearer(token) => {
                let caller = if is_secret(&token) {
                    blocking(&state.pool, None, move |store| {
                        app::token_caller(store, &token)
                    })
                    .await?
                } else {
                    None
                };
                let caller = caller
                    .ok_or_else(|| ApiError::unauthenticated("unknown or revoked API token"))?;
                (caller, None)
            }
            Credentials::Session(id) => {
                let caller = if is_secret(&id) {
                    let lookup = id.clone();
                    blocking(&state.pool, None, move |store| {
                        app::session_caller(store, &lookup)
                    })
                    .await?
                } else {
                    None
                };
                let caller = caller.ok_or_else(|| {
                    ApiError::unauthenticated("session expired or unknown: log in again")
                })?;
                (caller, Some(id))
            }
        };
    Ok(Authenticated { caller, session_id })
}

/// Failed logins allowed per user name and per client address within [`WINDOW`].
pub(crate) const MAX_FAILURES: usize = 5;
/// The window of the login rate limit.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// Keys kept before stale ones are swept (bounds memory under a flood of made-up user names).
const SWEEP_ABOVE: usize = 10_000;

/// Counts failed logins per user name and per client address, in memory: after
/// [`MAX_FAILURES`] within [`WINDOW`] for either, logins are refused (429) until the oldest
/// failure is out of the window.
///
/// In memory is enough for one instance. Several instances behind a load balancer each count on
/// their own (an attacker gets `MAX_FAILURES` per instance): they will need the count in the
/// store.
#[derive(Default)]
pub(crate) struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// The keys of a login attempt: its user name and its client address.
pub(crate) fn limiter_keys(user: &str, ip: Option<IpAddr>) -> Vec<String> {
    // A name longer than any user's is cut: it only needs to be told apart from real names.
    let name: String = user.chars().take(app::MAX_USER_NAME_CHARS + 1).collect();
    let mut keys = vec![format!("user:{name}")];
    if let Some(ip) = ip {
        keys.push(format!("ip:{ip}"));
    }
    keys
}

impl LoginLimiter {
    /// Before a password is checked: the seconds to wait when a key already has
    /// [`MAX_FAILURES`] failures in the window; otherwise the attempt is counted as a failure
    /// now (so that concurrent attempts cannot pass the limit together) and its instant is
    /// returned, for [`LoginLimiter::succeeded`] to take back.
    pub(crate) fn begin(&self, keys: &[String], now: Instant) -> Result<Instant, u64> {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() > SWEEP_ABOVE {
            failures.retain(|_, times| {
                prune(times, now);
                !times.is_empty()
            });
        }
        let mut wait = None;
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                prune(times, now);
                if times.len() >= MAX_FAILURES {
                    let oldest = times.front().copied().unwrap_or(now);
                    let left = (oldest + WINDOW).saturating_duration_since(now);
                    let seconds = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                    wait = Some(wait.unwrap_or(0).max(seconds.max(1)));
                }
            }
        }
        if let Some(seconds) = wait {
            return Err(seconds);
        }
        for key in keys {
            failures.entry(key.clone()).or_default().push_back(now);
        }
        Ok(now)
    }

    /// The attempt begun at `at` succeeded: it no longer counts as a failure.
    pub(crate) fn succeeded(&self, keys: &[String], at: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            if let Some(times) = failures.get_mut(key) {
                if let Some(position) = times.iter().position(|t| *t == at) {
                    times.remove(position);
                }
                if times.is_empty() {
                    failures.remove(key);
                }
            }
        }
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_failure_within_a_minute_waits_for_the_first_to_expire() {
        let limiter = LoginLimiter::default();
        let keys = limiter_keys("olga", None);
        let start = Instant::now();
        for i in 0..5 {
            assert!(limiter.begin(&keys, start + Duration::from_secs(i)).is_ok());
        }
        assert_eq!(
            limiter.begin(&keys, start + Duration::from_secs(10)),
            Err(50)
        );
        // Another user from nowhere is not affected.
        assert!(limiter.begin(&limiter_keys("ana", None), start).is_ok());
        // Once the first failure is a minute old, one more attempt is allowed.
        assert!(limiter
            .begin(&keys, start + Duration::from_secs(60))
            .is_ok());
    }

    #[test]
    fn a_success_is_not_a_failure_and_addresses_count_across_names() {
        let limiter = LoginLimiter::default();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let now = Instant::now();
        for _ in 0..10 {
            let keys = limiter_keys("olga", ip);
            let at = limiter.begin(&keys, now).unwrap();
            limiter.succeeded(&keys, at);
        }
        for name in ["a", "b", "c", "d", "e"] {
            assert!(limiter.begin(&limiter_keys(name, ip), now).is_ok());
        }
        assert_eq!(limiter.begin(&limiter_keys("f", ip), now), Err(60));
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "a=1; borderlens_session=abc ; b=2".parse().unwrap());
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
        assert!(matches!(credentials(&headers), Credentials::Session(s) if s == "abc"));
        headers.insert(AUTHORIZATION, "bearer  xyz".parse().unwrap());
        assert!(matches!(credentials(&headers), Credentials::Bearer(t) if t == "xyz"));
        headers.insert(AUTHORIZATION, "Basic eHl6".parse().unwrap());
        assert!(matches!(credentials(&headers), Credentials::Malformed(_)));
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
        assert!(is_secret(&"0f".repeat(32)));
        assert!(!is_secret(&"0F".repeat(32)));
    }
}
