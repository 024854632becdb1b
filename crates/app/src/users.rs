//! Users, roles and credentials: adding a user, creating an API token, logging in and out, and
//! finding who a session id or a token belongs to. Shared by the CLI (`user add`,
//! `token create`) and the server (login, every authenticated request).
//!
//! Passwords are hashed with argon2id (the `argon2` crate's default parameters) into a PHC
//! string; API tokens, session ids and CSRF tokens are 32 random bytes from the operating system
//! (`getrandom`), written as 64 hex digits. The store keeps only the SHA-256 of tokens and
//! session ids, so a copy of the database gives no usable credential.

use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use borderlens_domain::hex;
use borderlens_store::{Backend, LoginGate, StoredUser};
use schemars::JsonSchema;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::JobError;

/// What a user may do; the server's route table says which roles each route admits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Records control results, reads decisions.
    Officer,
    /// Reads decisions and estimates.
    Analyst,
    /// Labels X-ray scans at the annotation desk and retrains the detector there.
    Annotator,
    /// Everything an officer and an analyst do.
    Manager,
    /// Everything.
    Admin,
}

impl Role {
    /// Every role, in a fixed order.
    pub const ALL: [Role; 5] = [
        Role::Officer,
        Role::Analyst,
        Role::Annotator,
        Role::Manager,
        Role::Admin,
    ];

    /// The role as stored and shown: `officer`, `analyst`, `annotator`, `manager`, `admin`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Officer => "officer",
            Role::Analyst => "analyst",
            Role::Annotator => "annotator",
            Role::Manager => "manager",
            Role::Admin => "admin",
        }
    }

    /// The role of that name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password accepted, in bytes (argon2 takes any length; this bounds the work).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest user name, in characters.
pub const MAX_USER_NAME_CHARS: usize = 64;

/// Who is calling, once a session id or a token has been checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Caller {
    /// User name.
    pub user: String,
    /// The user's role.
    pub role: Role,
    /// For a session: the CSRF token its state-changing requests must carry; `None` for an API
    /// token (no cookie, so no cross-site request forgery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

/// A user as reported (never with the hash).
#[derive(Clone, Debug, Serialize)]
pub struct UserReport {
    /// User name.
    pub user: String,
    /// Role.
    pub role: Role,
}

/// A new API token: shown once, kept only as its SHA-256.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct NewToken {
    /// Whose token.
    pub user: String,
    /// Its id, to list and revoke it by (see [`TokenInfo::id`]).
    pub id: String,
    /// The token (64 hex digits), to send as `Authorization: Bearer TOKEN`.
    pub token: String,
}

/// Hex digits of a token's id: the start of the SHA-256 of the token (not of the token, so the
/// id gives nothing away). The audit log names tokens by their first 8.
pub const TOKEN_ID_DIGITS: usize = 12;
/// The fewest digits of an id that [`revoke_token`] takes (the audit log's 8 will do).
pub const MIN_TOKEN_ID_DIGITS: usize = 8;

/// An API token as listed: never the token itself.
#[derive(Clone, Debug, Serialize, PartialEq, Eq, JsonSchema)]
pub struct TokenInfo {
    /// The first [`TOKEN_ID_DIGITS`] hex digits of the token's SHA-256.
    pub id: String,
    /// Whose token.
    pub user: String,
    /// When it was created (UTC).
    pub created_at: String,
    /// Revoked for good.
    pub revoked: bool,
}

impl From<borderlens_store::StoredToken> for TokenInfo {
    fn from(token: borderlens_store::StoredToken) -> TokenInfo {
        TokenInfo {
            id: token.token_sha256[..TOKEN_ID_DIGITS].to_string(),
            user: token.user,
            created_at: token.created_at,
            revoked: token.revoked,
        }
    }
}

/// What [`revoke_token`] did.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct RevokeReport {
    /// The token, now revoked.
    pub token: TokenInfo,
    /// It had been revoked before: nothing changed.
    pub already_revoked: bool,
}

/// A new login session.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// Who logged in.
    pub user: String,
    /// Their role.
    pub role: Role,
    /// The session id (64 hex digits), for the cookie; the store keeps only its SHA-256.
    pub session_id: String,
    /// The CSRF token the session's state-changing requests must carry.
    pub csrf_token: String,
    /// When the session ends (UTC, ISO 8601).
    pub expires_at: String,
}

/// 32 random bytes from the operating system, as 64 lower-case hex digits.
pub fn new_secret() -> Result<String, JobError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        JobError::Internal(format!("the operating system's random source failed: {e}"))
    })?;
    Ok(hex::encode(&bytes))
}

/// SHA-256 of `secret`, as 64 lower-case hex digits (how the store keeps tokens and session
/// ids).
pub fn secret_digest(secret: &str) -> String {
    hex::encode(&Sha256::digest(secret.as_bytes()))
}

/// Fails unless `name` is 1..=64 characters of letters, digits, `.`, `_`, `-` and `@`.
fn check_user_name(name: &str) -> Result<(), JobError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_USER_NAME_CHARS {
        return Err(JobError::Invalid(format!(
            "user name: {chars} characters, 1 to {MAX_USER_NAME_CHARS} allowed"
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@')))
    {
        return Err(JobError::Invalid(format!(
            "user name: '{}' is not allowed (letters, digits, '.', '_', '-' and '@')",
            bad.escape_debug()
        )));
    }
    Ok(())
}

fn hash_password(password: &str) -> Result<String, JobError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| JobError::Internal(format!("cannot hash the password: {e}")))
}

/// A hash of a random password, verified against when the user does not exist so that a wrong
/// name takes as long as a wrong password (no user enumeration by timing).
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        new_secret()
            .and_then(|secret| hash_password(&secret))
            .unwrap_or_default()
    })
}

/// Adds a user with a role and a password (the policy of `check_password`: at least 8
/// characters without the white space around them, not trivial; hashed with argon2id).
/// Audited by the store as `user_add`.
pub fn add_user(
    store: &mut dyn Backend,
    name: &str,
    role: Role,
    password: &str,
) -> Result<UserReport, JobError> {
    check_user_name(name)?;
    check_password(name, password)?;
    store.add_user(name, role.name(), &hash_password(password)?)?;
    Ok(UserReport {
        user: name.to_string(),
        role,
    })
}

/// Passwords refused whatever their length: the most common ones that pass the other rules
/// (lower case; compared without case and surrounding white space).
const COMMON_PASSWORDS: [&str; 24] = [
    "password",
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "iloveyou",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "welcome1",
    "welcome123",
    "letmein1",
    "trustno1",
    "superman",
    "starwars",
    "whatever",
    "admin123",
    "administrator",
    "changeme",
    "qwerty123",
    "1q2w3e4r",
    "1qaz2wsx",
    "borderlens",
];

/// Runs of neighbouring keys or characters: a password that is a piece of one (either way) is
/// refused (`12345678`, `qwertyui`, `hgfedcba`).
const SEQUENCES: [&str; 5] = [
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
];

/// The password policy of every user added or password set (CLI and any other caller of
/// [`add_user`] and [`set_password`]). Refused, each with its reason:
///
/// - fewer than [`MIN_PASSWORD_CHARS`] characters once white space around it is left out (so a
///   password of spaces only has none), or more than [`MAX_PASSWORD_BYTES`] bytes;
/// - control characters (they cannot be typed in the log-in form);
/// - fewer than 4 different characters (`aaaaaaaa`, `abababab`), or one piece repeated
///   (`abcdabcd`);
/// - a piece of the alphabet, the digits or a keyboard row, either way (`12345678`,
///   `qwertyui`);
/// - one of a short list of the most common passwords, or the user name (without case).
///
/// The password is kept as typed (surrounding spaces included): only the checks leave them out.
fn check_password(name: &str, password: &str) -> Result<(), JobError> {
    let refuse = |why: String| Err(JobError::Invalid(format!("password: {why}")));
    if password.len() > MAX_PASSWORD_BYTES {
        return refuse(format!(
            "{} bytes, at most {MAX_PASSWORD_BYTES} allowed",
            password.len()
        ));
    }
    if password.chars().any(char::is_control) {
        return refuse("control characters are not allowed".to_string());
    }
    let core = password.trim();
    let chars: Vec<char> = core.chars().flat_map(char::to_lowercase).collect();
    if chars.len() < MIN_PASSWORD_CHARS {
        return refuse(format!(
            "{} characters without the white space around it, at least {MIN_PASSWORD_CHARS} \
             needed",
            chars.len()
        ));
    }
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return refuse(format!(
            "only {} different characters, at least 4 needed",
            distinct.len()
        ));
    }
    let n = chars.len();
    if let Some(unit) = (1..=n / 2).find(|&p| (n / p) * p == n && chars[p..] == chars[..n - p]) {
        let piece: String = chars[..unit].iter().collect();
        return refuse(format!("'{piece}' repeated is too easy to guess"));
    }
    let lower: String = chars.iter().collect();
    let reversed: String = chars.iter().rev().collect();
    if SEQUENCES
        .iter()
        .any(|run| run.contains(&lower) || run.contains(&reversed))
    {
        return refuse("a run of neighbouring characters or keys is too easy to guess".into());
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return refuse("one of the most common passwords: choose another".to_string());
    }
    if lower == name.trim().to_lowercase() {
        return refuse("the user name is too easy to guess".to_string());
    }
    Ok(())
}

/// Sets a new password for user `name` (hashed with argon2id); the user's sessions end.
pub fn set_password(store: &mut dyn Backend, name: &str, password: &str) -> Result<(), JobError> {
    check_password(name, password)?;
    if store.set_password_hash(name, &hash_password(password)?)? {
        Ok(())
    } else {
        Err(JobError::NotFound(format!("no user '{name}'")))
    }
}

/// Creates an API token for an existing user. The token is returned once; the store keeps its
/// SHA-256 (audited as `token_create`).
pub fn create_token(store: &mut dyn Backend, user: &str) -> Result<NewToken, JobError> {
    let token = new_secret()?;
    let digest = secret_digest(&token);
    store.add_api_token(user, &digest)?;
    Ok(NewToken {
        user: user.to_string(),
        id: digest[..TOKEN_ID_DIGITS].to_string(),
        token,
    })
}

/// The API tokens of `user` (of everyone when `None`), newest first, revoked ones included.
pub fn list_tokens(store: &dyn Backend, user: Option<&str>) -> Result<Vec<TokenInfo>, JobError> {
    if let Some(name) = user {
        if store.user(name)?.is_none() {
            return Err(JobError::NotFound(format!("no user '{name}'")));
        }
    }
    Ok(store
        .api_tokens(user)?
        .into_iter()
        .map(TokenInfo::from)
        .collect())
}

/// Revokes the API token whose id starts with `id` ([`MIN_TOKEN_ID_DIGITS`] to 64 hex digits,
/// e.g. as `token list` or the audit log shows it), for good (audited as `token_revoke`).
/// An id that matches no token is not found; one that matches several is refused.
pub fn revoke_token(store: &mut dyn Backend, id: &str) -> Result<RevokeReport, JobError> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() < MIN_TOKEN_ID_DIGITS || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return Err(JobError::Invalid(format!(
            "token id '{id}': expected {MIN_TOKEN_ID_DIGITS} to 64 hex digits, as `token list` shows"
        )));
    }
    let mut matches: Vec<_> = store
        .api_tokens(None)?
        .into_iter()
        .filter(|t| t.token_sha256.starts_with(&id))
        .collect();
    let token = match matches.len() {
        0 => return Err(JobError::NotFound(format!("no API token with id '{id}'"))),
        1 => matches.remove(0),
        n => {
            return Err(JobError::Invalid(format!(
                "token id '{id}' matches {n} tokens: give more digits"
            )))
        }
    };
    let newly = store.revoke_api_token(&token.token_sha256)?;
    let mut info = TokenInfo::from(token);
    info.revoked = true;
    Ok(RevokeReport {
        token: info,
        already_revoked: !newly,
    })
}

fn role_of(user: &StoredUser) -> Result<Role, JobError> {
    Role::parse(&user.role).ok_or_else(|| {
        JobError::Invalid(format!(
            "user '{}' has the unknown role '{}'",
            user.name, user.role
        ))
    })
}

/// Failed logins allowed per user name and per client address within [`LOGIN_WINDOW`]; the
/// next attempt waits (even with the right password) until the oldest is out of the window.
pub const LOGIN_MAX_FAILURES: u32 = 5;
/// The window of the login rate limit.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(60);

/// What a login attempt came to.
#[derive(Debug)]
pub enum LoginOutcome {
    /// The name and password were right: a new session.
    Session(NewSession),
    /// Wrong user name or password (which one is not said).
    Refused,
    /// Too many failures for this user name or client address: try again after this many
    /// seconds. The password was not checked.
    Limited {
        /// Seconds to wait (at least 1).
        retry_after: u64,
    },
}

/// The keys a login attempt is counted under: its user name and its client address.
pub fn login_keys(user: &str, client: Option<IpAddr>) -> Vec<String> {
    // A name longer than any user's is cut: it only needs to be told apart from real names.
    let name: String = user.chars().take(MAX_USER_NAME_CHARS + 1).collect();
    let mut keys = vec![format!("user:{name}")];
    if let Some(ip) = client {
        keys.push(format!("ip:{ip}"));
    }
    keys
}

/// Checks a user name and password under the login rate limit; on success opens a session of
/// `ttl_seconds` (audited as `login`).
///
/// The limit is counted in the store (`Backend::begin_login`), in the store's clock
/// (`Backend::clock_ms`: on PostgreSQL the database server's), so it holds across every server
/// on the same database: [`LOGIN_MAX_FAILURES`] failures per user name and per client address
/// within [`LOGIN_WINDOW`]. Each attempt is counted as a failure before the
/// password is checked (concurrent attempts cannot pass the limit together) and taken back
/// when the password was right.
pub fn login(
    store: &mut dyn Backend,
    name: &str,
    password: &str,
    client: Option<IpAddr>,
    ttl_seconds: u32,
) -> Result<LoginOutcome, JobError> {
    let now_ms = store.clock_ms()?;
    login_at(store, name, password, client, ttl_seconds, now_ms)
}

/// [`login`] at a given time (Unix milliseconds), for tests that move the clock.
pub fn login_at(
    store: &mut dyn Backend,
    name: &str,
    password: &str,
    client: Option<IpAddr>,
    ttl_seconds: u32,
    now_ms: i64,
) -> Result<LoginOutcome, JobError> {
    let keys = login_keys(name, client);
    let window_ms = i64::try_from(LOGIN_WINDOW.as_millis()).unwrap_or(i64::MAX);
    let counted = match store.begin_login(&keys, now_ms, window_ms, LOGIN_MAX_FAILURES)? {
        LoginGate::Wait { seconds } => {
            return Ok(LoginOutcome::Limited {
                retry_after: seconds,
            })
        }
        LoginGate::Counted(ids) => ids,
    };
    let user = if name.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        None
    } else {
        store.user(name)?
    };
    let verified = {
        let hash = match &user {
            Some(user) => user.password_hash.as_str(),
            None => dummy_hash(),
        };
        Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
    };
    let Some(user) = user.filter(|_| verified) else {
        return Ok(LoginOutcome::Refused);
    };
    store.forget_login_failures(&counted)?;
    let role = role_of(&user)?;
    let session_id = new_secret()?;
    let csrf_token = new_secret()?;
    let expires_at = store.create_session(
        &secret_digest(&session_id),
        &user.name,
        &csrf_token,
        ttl_seconds,
    )?;
    Ok(LoginOutcome::Session(NewSession {
        user: user.name,
        role,
        session_id,
        csrf_token,
        expires_at,
    }))
}

/// Ends a session (audited as `logout`); `false` when there was none.
pub fn logout(store: &mut dyn Backend, session_id: &str) -> Result<bool, JobError> {
    Ok(store.delete_session(&secret_digest(session_id))?)
}

/// Who an unexpired session id belongs to.
pub fn session_caller(store: &dyn Backend, session_id: &str) -> Result<Option<Caller>, JobError> {
    let Some(session) = store.session(&secret_digest(session_id))? else {
        return Ok(None);
    };
    let role = Role::parse(&session.role).ok_or_else(|| {
        JobError::Invalid(format!(
            "user '{}' has the unknown role '{}'",
            session.user, session.role
        ))
    })?;
    Ok(Some(Caller {
        user: session.user,
        role,
        csrf_token: Some(session.csrf_token),
    }))
}

/// Who an unrevoked API token belongs to.
pub fn token_caller(store: &dyn Backend, token: &str) -> Result<Option<Caller>, JobError> {
    let Some(user) = store.user_for_token(&secret_digest(token))? else {
        return Ok(None);
    };
    Ok(Some(Caller {
        role: role_of(&user)?,
        user: user.name,
        csrf_token: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use borderlens_store::{Accounts, Store};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn roles_round_trip_by_name() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.name()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(
            borderlens_store::ROLES.to_vec(),
            Role::ALL.map(Role::name).to_vec()
        );
    }

    #[test]
    fn a_user_logs_in_with_the_right_password_only() {
        let (_dir, mut store) = store();
        add_user(&mut store, "olga", Role::Officer, "correct horse").unwrap();
        let stored = store.user("olga").unwrap().unwrap();
        assert!(stored.password_hash.starts_with("$argon2id$v=19$"));
        assert!(!stored.password_hash.contains("correct horse"));

        let attempt = |store: &mut Store, name: &str, password: &str| {
            login(store, name, password, None, 60).unwrap()
        };
        assert!(matches!(
            attempt(&mut store, "olga", "wrong horse"),
            LoginOutcome::Refused
        ));
        assert!(matches!(
            attempt(&mut store, "nobody", "correct horse"),
            LoginOutcome::Refused
        ));
        let LoginOutcome::Session(session) = attempt(&mut store, "olga", "correct horse") else {
            panic!("the right password is refused")
        };
        assert_eq!(
            (session.user.as_str(), session.role),
            ("olga", Role::Officer)
        );
        assert_eq!(session.session_id.len(), 64);
        assert_ne!(session.session_id, session.csrf_token);
        let caller = session_caller(&store, &session.session_id)
            .unwrap()
            .unwrap();
        assert_eq!(
            caller.csrf_token.as_deref(),
            Some(session.csrf_token.as_str())
        );
        // The store keeps the digest, not the id.
        assert!(store.session(&session.session_id).unwrap().is_none());
        assert!(logout(&mut store, &session.session_id).unwrap());
        assert!(session_caller(&store, &session.session_id)
            .unwrap()
            .is_none());
    }

    #[test]
    fn the_sixth_failure_within_a_minute_waits_for_the_first_to_leave_the_window() {
        let (_dir, mut store) = store();
        add_user(&mut store, "olga", Role::Officer, "correct horse").unwrap();
        let start = store.clock_ms().unwrap();
        let at = |seconds: i64| start + 1000 * seconds;
        for i in 0..5 {
            let outcome = login_at(&mut store, "olga", "guess", None, 60, at(i)).unwrap();
            assert!(matches!(outcome, LoginOutcome::Refused), "{outcome:?}");
        }
        // Even the right password waits now, until the first failure is a minute old.
        let outcome = login_at(&mut store, "olga", "correct horse", None, 60, at(10)).unwrap();
        assert!(
            matches!(outcome, LoginOutcome::Limited { retry_after: 50 }),
            "{outcome:?}"
        );
        // Another user is not affected.
        add_user(&mut store, "ana", Role::Analyst, "correct horse").unwrap();
        let outcome = login_at(&mut store, "ana", "correct horse", None, 60, at(10)).unwrap();
        assert!(matches!(outcome, LoginOutcome::Session(_)), "{outcome:?}");
        let outcome = login_at(&mut store, "olga", "correct horse", None, 60, at(60)).unwrap();
        assert!(matches!(outcome, LoginOutcome::Session(_)), "{outcome:?}");
    }

    #[test]
    fn a_success_is_not_a_failure_and_an_address_counts_across_names() {
        let (_dir, mut store) = store();
        add_user(&mut store, "olga", Role::Officer, "correct horse").unwrap();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        for _ in 0..7 {
            let outcome = login(&mut store, "olga", "correct horse", ip, 60).unwrap();
            assert!(matches!(outcome, LoginOutcome::Session(_)), "{outcome:?}");
        }
        for name in ["a", "b", "c", "d", "e"] {
            let outcome = login(&mut store, name, "x", ip, 60).unwrap();
            assert!(matches!(outcome, LoginOutcome::Refused), "{outcome:?}");
        }
        let outcome = login(&mut store, "olga", "correct horse", ip, 60).unwrap();
        assert!(
            matches!(
                outcome,
                LoginOutcome::Limited {
                    retry_after: 59 | 60
                }
            ),
            "{outcome:?}"
        );
        // The same names from elsewhere are not limited by this address.
        let elsewhere = Some(IpAddr::from([10, 0, 0, 9]));
        let outcome = login(&mut store, "olga", "correct horse", elsewhere, 60).unwrap();
        assert!(matches!(outcome, LoginOutcome::Session(_)), "{outcome:?}");
    }

    #[test]
    fn tokens_are_listed_by_id_and_revoked_by_a_unique_prefix() {
        let (_dir, mut store) = store();
        add_user(&mut store, "bot", Role::Analyst, "long enough").unwrap();
        add_user(&mut store, "ana", Role::Analyst, "long enough").unwrap();
        let first = create_token(&mut store, "bot").unwrap();
        let second = create_token(&mut store, "ana").unwrap();
        assert_eq!(first.id.len(), TOKEN_ID_DIGITS);
        assert!(secret_digest(&first.token).starts_with(&first.id));
        assert!(
            !first.token.starts_with(&first.id),
            "the id is not the token's start"
        );
        let listed = list_tokens(&store, Some("bot")).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].id.as_str(), listed[0].revoked),
            (first.id.as_str(), false)
        );
        assert_eq!(list_tokens(&store, None).unwrap().len(), 2);
        assert!(matches!(
            list_tokens(&store, Some("ghost")),
            Err(JobError::NotFound(_))
        ));

        for bad in ["", "abc", "not-hex-digits", &"a".repeat(65)] {
            assert!(
                matches!(revoke_token(&mut store, bad), Err(JobError::Invalid(_))),
                "{bad}"
            );
        }
        let other = if first.id.starts_with('0') {
            "ffffffff"
        } else {
            "00000000"
        };
        assert!(matches!(
            revoke_token(&mut store, other),
            Err(JobError::NotFound(_))
        ));
        // The audit log's 8 digits will do, upper case too.
        let report = revoke_token(&mut store, &first.id[..8].to_uppercase()).unwrap();
        assert_eq!(
            (report.token.id.as_str(), report.already_revoked),
            (first.id.as_str(), false)
        );
        assert!(token_caller(&store, &first.token).unwrap().is_none());
        assert!(token_caller(&store, &second.token).unwrap().is_some());
        let again = revoke_token(&mut store, &first.id).unwrap();
        assert!(again.already_revoked && again.token.revoked);
        assert!(list_tokens(&store, Some("bot")).unwrap()[0].revoked);
    }

    #[test]
    fn tokens_identify_their_user_and_bad_users_are_refused() {
        let (_dir, mut store) = store();
        add_user(&mut store, "bot@ops", Role::Analyst, "long enough").unwrap();
        let token = create_token(&mut store, "bot@ops").unwrap();
        assert_eq!(token.token.len(), 64);
        let caller = token_caller(&store, &token.token).unwrap().unwrap();
        assert_eq!(
            (caller.user.as_str(), caller.role, caller.csrf_token),
            ("bot@ops", Role::Analyst, None)
        );
        assert!(token_caller(&store, "nope").unwrap().is_none());
        assert!(create_token(&mut store, "ghost").is_err());

        let short = add_user(&mut store, "x", Role::Admin, "short").unwrap_err();
        assert!(short.to_string().contains("at least 8"), "{short}");
        let name = add_user(&mut store, "a b", Role::Admin, "long enough").unwrap_err();
        assert!(name.to_string().contains("user name"), "{name}");
        let twice = add_user(&mut store, "bot@ops", Role::Admin, "long enough").unwrap_err();
        assert!(twice.to_string().contains("already exists"), "{twice}");
    }

    #[test]
    fn weak_passwords_are_refused_when_a_user_is_added_or_a_password_set() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("t.db")).unwrap();
        add_user(&mut store, "olga", Role::Officer, "correct horse").unwrap();
        for (password, why) in [
            ("        ", "0 characters without the white space"),
            ("  \u{3000}   \t  ", "control characters"),
            ("   short    ", "5 characters without the white space"),
            (
                "\u{3000}seven77\u{3000}",
                "7 characters without the white space",
            ),
            ("pass\0word!", "control characters"),
            ("aaaaaaaa", "only 1 different characters"),
            ("abababab", "only 2 different characters"),
            ("abcdabcd", "'abcd' repeated"),
            ("Hallo123Hallo123", "'hallo123' repeated"),
            ("12345678", "run of neighbouring"),
            ("87654321", "run of neighbouring"),
            ("QWERTYUI", "run of neighbouring"),
            ("defghijklm", "run of neighbouring"),
            ("Password1", "most common"),
            (" iloveyou ", "most common"),
            ("natalia-7", "user name"),
        ] {
            let mut errors = vec![add_user(&mut store, "natalia-7", Role::Officer, password)
                .unwrap_err()
                .to_string()];
            if password != "natalia-7" {
                errors.push(
                    set_password(&mut store, "olga", password)
                        .unwrap_err()
                        .to_string(),
                );
            }
            for error in errors {
                assert!(error.starts_with("password: "), "{password:?}: {error}");
                assert!(error.contains(why), "{password:?}: {error}");
            }
        }
        assert!(
            store.user("natalia-7").unwrap().is_none(),
            "nothing was added"
        );
        // The old password still works: nothing was set.
        assert!(matches!(
            login(&mut store, "olga", "correct horse", None, 60).unwrap(),
            LoginOutcome::Session(_)
        ));
        // Surrounding spaces are kept as typed (only the checks leave them out).
        add_user(&mut store, "ana", Role::Analyst, "  tram stop 12  ").unwrap();
        assert!(matches!(
            login(&mut store, "ana", "  tram stop 12  ", None, 60).unwrap(),
            LoginOutcome::Session(_)
        ));
        set_password(&mut store, "olga", "Zollamt Nord 4").unwrap();
    }
}
