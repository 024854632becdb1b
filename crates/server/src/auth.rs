//! Who is calling and whether they may: credentials (session cookie or bearer token), the role
//! check of each route, and the CSRF check of cookie requests that change state. (The login rate
//! limit is the app's `login` job, counted in the store so that it holds across instances.)

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use borderlens_app::{self as app, Caller, Role};
use subtle::ConstantTimeEq;

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

/// The client's IP address: the TCP peer, or, when the peer is a trusted proxy
/// ([`ServeConfig::trusted_proxies`](crate::ServeConfig::trusted_proxies)), the address its
/// `X-Forwarded-For` names (see [`client_address`]).
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip());
        let forwarded: Vec<&str> = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        Ok(ClientIp(peer.map(|peer| {
            client_address(peer, &forwarded, &state.config.trusted_proxies)
        })))
    }
}

/// The client behind `peer`. A peer that is not a trusted proxy is the client, whatever its
/// headers say. A trusted proxy's `X-Forwarded-For` lists the addresses the request came
/// through, the client first, each proxy appending the one it received from: read from the
/// right, the first address that is not a trusted proxy is the client. Addresses further left
/// were written by that client and may be made up, so they are never read: a client cannot
/// change its address by sending the header. When every address read is a trusted proxy (or
/// one cannot be read), the leftmost trusted one read is taken. IPv4-mapped IPv6 addresses
/// (`::ffff:10.0.0.1`, as a dual-stack listener sees IPv4 peers) count as the IPv4 address.
pub(crate) fn client_address(peer: IpAddr, forwarded: &[&str], trusted: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.to_canonical() == ip);
    if !is_trusted(peer) {
        return peer;
    }
    let mut last_trusted = peer;
    for hop in forwarded.iter().rev().flat_map(|value| value.rsplit(',')) {
        let Some(ip) = parse_hop(hop.trim()) else {
            return last_trusted;
        };
        let ip = ip.to_canonical();
        if !is_trusted(ip) {
            return ip;
        }
        last_trusted = ip;
    }
    last_trusted
}

/// One address of `X-Forwarded-For`: an IPv4 or IPv6 address, possibly with a port
/// (`1.2.3.4:5678`, `[::1]:5678`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    hop.parse::<SocketAddr>().ok().map(|address| address.ip())
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

/// Compares two secrets in time independent of where they differ (not of their lengths, which
/// are not secret: every CSRF token has the same).
fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_proxy_says_who_the_client_is() {
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let proxy = ip("10.0.0.1");
        let trusted = [proxy, ip("10.0.0.2")];
        // Not a trusted peer: the header is ignored.
        assert_eq!(
            client_address(ip("192.0.2.7"), &["198.51.100.1"], &trusted),
            ip("192.0.2.7")
        );
        // A trusted proxy: the rightmost untrusted address, past other trusted proxies.
        assert_eq!(
            client_address(proxy, &["203.0.113.9, 198.51.100.1, 10.0.0.2"], &trusted),
            ip("198.51.100.1")
        );
        // Several headers are one list; ports and IPv6 are read.
        assert_eq!(
            client_address(proxy, &["203.0.113.9", "[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
        assert_eq!(
            client_address(proxy, &["198.51.100.1:5678"], &trusted),
            ip("198.51.100.1")
        );
        // Only trusted proxies named: the leftmost of them; nothing: the peer.
        assert_eq!(
            client_address(proxy, &["10.0.0.2"], &trusted),
            ip("10.0.0.2")
        );
        assert_eq!(client_address(proxy, &[], &trusted), proxy);
        // What the client wrote left of its own address is never read, garbage included.
        assert_eq!(
            client_address(proxy, &["unknown, 1.2.3.4"], &trusted),
            ip("1.2.3.4")
        );
        assert_eq!(
            client_address(proxy, &["1.2.3.4, garbage"], &trusted),
            proxy,
            "an unreadable hop written by a trusted proxy: the last trusted address"
        );
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6.
        assert_eq!(
            client_address(ip("::ffff:10.0.0.1"), &["198.51.100.1"], &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("::ffff:192.0.2.7"), &["198.51.100.1"], &trusted),
            ip("192.0.2.7")
        );
    }

    /// An address of a small pool, half of them trusted proxies (`10.0.0.x`), some written as
    /// IPv4-mapped IPv6.
    fn address() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        (any::<bool>(), 0u8..4, any::<bool>()).prop_map(|(proxy, n, mapped)| {
            let v4 = if proxy {
                std::net::Ipv4Addr::new(10, 0, 0, n)
            } else {
                std::net::Ipv4Addr::new(198, 51, 100, n)
            };
            if mapped {
                IpAddr::V6(v4.to_ipv6_mapped())
            } else {
                IpAddr::V4(v4)
            }
        })
    }

    proptest::proptest! {
        /// Whatever the header says, an untrusted peer is the client; behind trusted proxies
        /// the client is the rightmost untrusted address of the header, and nothing a client
        /// writes to the left of it (garbage included) changes that.
        #[test]
        fn the_client_is_the_rightmost_untrusted_hop_and_a_client_cannot_choose_it(
            peer in address(),
            hops in proptest::collection::vec(address(), 0..5),
            forged in "[0-9a-z:., \\[\\]]{0,30}",
        ) {
            let trusted: Vec<IpAddr> = (0..4).map(|n| IpAddr::from([10, 0, 0, n])).collect();
            let is_proxy = |ip: IpAddr| matches!(ip.to_canonical(), IpAddr::V4(v4) if v4.octets()[0] == 10);
            let header = hops.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            let client = client_address(peer, &[header.as_str()], &trusted);
            if !is_proxy(peer) {
                proptest::prop_assert_eq!(client, peer.to_canonical());
            } else if let Some(rightmost) = hops.iter().rev().find(|ip| !is_proxy(**ip)) {
                proptest::prop_assert_eq!(client, rightmost.to_canonical());
                let with_forged = format!("{forged}, {header}");
                proptest::prop_assert_eq!(
                    client_address(peer, &[with_forged.as_str()], &trusted),
                    client
                );
                proptest::prop_assert_eq!(
                    client_address(peer, &[forged.as_str(), header.as_str()], &trusted),
                    client
                );
            } else {
                proptest::prop_assert!(is_proxy(client));
            }
        }
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
