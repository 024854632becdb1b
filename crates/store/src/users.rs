//! Users, API tokens and login sessions.
//!
//! The store keeps only what cannot be replayed: a password as its argon2id PHC string, an API
//! token and a session id as the SHA-256 of the secret (64 hex digits). Hashing and the secrets
//! themselves belong to the caller (`borderlens-app`'s `users` jobs); the store checks the shapes
//! (a role of the list, a PHC string that is argon2id, a 64-digit digest) and writes the audit
//! log in the same transaction as the change.

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::{Store, StoreError, NOW};

/// The roles a user may have, as stored.
pub const ROLES: [&str; 5] = ["officer", "analyst", "annotator", "manager", "admin"];

/// A stored user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredUser {
    /// Unique name.
    pub name: String,
    /// One of [`ROLES`].
    pub role: String,
    /// The argon2id hash of the password, as a PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    /// When the user was added (UTC).
    pub created_at: String,
}

/// A login session that has not expired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// Whose session.
    pub user: String,
    /// The user's role.
    pub role: String,
    /// The token a state-changing request of this session must carry (`X-CSRF-Token`).
    pub csrf_token: String,
    /// When the session ends (UTC, ISO 8601).
    pub expires_at: String,
}

/// What the login rate limit decided before a password is checked ([`Store::begin_login`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginGate {
    /// The attempt may go on; it is already counted as a failure under these row ids, which
    /// [`Store::forget_login_failures`] takes back when the password was right.
    Counted(Vec<i64>),
    /// A key has its maximum of failures in the window: wait this many seconds (at least 1).
    Wait {
        /// Until enough failures are out of the window.
        seconds: u64,
    },
}

/// An API token as stored: the SHA-256 of the secret, never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredToken {
    /// SHA-256 of the token (64 hex digits); its first digits name it in the audit log and the
    /// CLI.
    pub token_sha256: String,
    /// Whose token.
    pub user: String,
    /// When it was created (UTC).
    pub created_at: String,
    /// Revoked for good.
    pub revoked: bool,
}

/// The login gate's decision, shared by both backends: `nth_newest(key)` reads the time of the
/// key's `max`-th newest failure in the window (the one that makes it full), if there is one.
/// `Some(seconds)` to wait until the last full key has one failure out of the window (rounded
/// up, at least 1); `None` when no key is full.
pub(crate) fn login_wait(
    keys: &[String],
    now_ms: i64,
    window_ms: i64,
    mut nth_newest: impl FnMut(&str) -> Result<Option<i64>, StoreError>,
) -> Result<Option<u64>, StoreError> {
    let mut wait = None;
    for key in keys {
        if let Some(at) = nth_newest(key)? {
            let left_ms = u64::try_from(at + window_ms - now_ms).unwrap_or(1);
            let seconds = left_ms.div_ceil(1000).max(1);
            wait = Some(wait.map_or(seconds, |w: u64| w.max(seconds)));
        }
    }
    Ok(wait)
}

/// The checks of a login gate's arguments, shared by both backends.
pub(crate) fn check_login_gate(
    keys: &[String],
    window_ms: i64,
    max: u32,
) -> Result<(), StoreError> {
    if keys.is_empty() || keys.iter().any(String::is_empty) || window_ms <= 0 || max == 0 {
        return Err(StoreError::Invalid {
            what: "login rate limit".to_string(),
            reason: "expected non-empty keys, a positive window and a positive maximum".to_string(),
        });
    }
    Ok(())
}

/// Fails unless `digest` is 64 lower-case hex digits (a SHA-256 as the store keeps it).
pub(crate) fn check_digest(what: &str, digest: &str) -> Result<(), StoreError> {
    if digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: what.to_string(),
            reason: "expected the SHA-256 of the secret as 64 lower-case hex digits".to_string(),
        })
    }
}

/// The checks of a new user's fields, shared by both backends.
pub(crate) fn check_new_user(
    name: &str,
    role: &str,
    password_hash: &str,
) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::Invalid {
            what: "user name".to_string(),
            reason: "must not be empty".to_string(),
        });
    }
    if !ROLES.contains(&role) {
        return Err(StoreError::Invalid {
            what: format!("role of user '{name}'"),
            reason: format!("'{role}' is not one of {}", ROLES.join(", ")),
        });
    }
    check_password_hash(name, password_hash)
}

/// A password is kept only as an argon2id PHC string; shared by both backends.
pub(crate) fn check_password_hash(name: &str, password_hash: &str) -> Result<(), StoreError> {
    if password_hash.starts_with("$argon2id$") {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: format!("password hash of user '{name}'"),
            reason: "expected an argon2id PHC string ($argon2id$...)".to_string(),
        })
    }
}

/// The checks of a new session's secrets, shared by both backends.
pub(crate) fn check_new_session(session_sha256: &str, csrf_token: &str) -> Result<(), StoreError> {
    check_digest("session digest", session_sha256)?;
    if csrf_token.len() < 32 {
        return Err(StoreError::Invalid {
            what: "CSRF token".to_string(),
            reason: "at least 32 characters expected".to_string(),
        });
    }
    Ok(())
}

fn read_user(row: &Row<'_>) -> rusqlite::Result<StoredUser> {
    Ok(StoredUser {
        name: row.get(0)?,
        role: row.get(1)?,
        password_hash: row.get(2)?,
        created_at: row.get(3)?,
    })
}

impl Store {
    /// Adds a user with a role of [`ROLES`] and the argon2id PHC string of the password, and
    /// audits it (`user_add`, by the store's actor; the hash is not logged). A name that exists
    /// is refused: a user is never silently replaced.
    pub fn add_user(
        &mut self,
        name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let what = || format!("adding user '{name}'");
        check_new_user(name, role, password_hash)?;
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let exists: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM users WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .ctx(what)?;
        if exists {
            return Err(StoreError::Invalid {
                what: format!("user '{name}'"),
                reason: "already exists".to_string(),
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO users (name, role, password_hash, created_at)
                 VALUES (?1, ?2, ?3, {NOW})"
            ),
            params![name, role, password_hash],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "role": role }).to_string();
        insert_audit(&tx, &actor, "user_add", name, &detail)?;
        tx.commit().ctx(what)
    }

    /// The user called `name`, if any.
    pub fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT name, role, password_hash, created_at FROM users WHERE name = ?1",
            )
            .and_then(|mut statement| statement.query_row([name], read_user).optional())
            .ctx(|| format!("reading user '{name}'"))
    }

    /// Replaces the password hash of user `name` and ends the user's sessions, in one
    /// transaction, audited (`password_set`). False when there is no such user.
    pub fn set_password_hash(
        &mut self,
        name: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        check_password_hash(name, password_hash)?;
        let what = || format!("setting the password of user '{name}'");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let changed = tx
            .execute(
                "UPDATE users SET password_hash = ?2 WHERE name = ?1",
                params![name, password_hash],
            )
            .ctx(what)?;
        if changed == 0 {
            return Ok(false);
        }
        let ended = tx
            .execute("DELETE FROM sessions WHERE user = ?1", [name])
            .ctx(what)?;
        let detail = serde_json::json!({ "sessions_ended": ended }).to_string();
        insert_audit(&tx, &actor, "password_set", name, &detail)?;
        tx.commit().ctx(what)?;
        Ok(true)
    }

    /// Every user, by name.
    pub fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        let what = || "reading users".to_string();
        let mut statement = self
            .conn
            .prepare_cached("SELECT name, role, password_hash, created_at FROM users ORDER BY name")
            .ctx(what)?;
        let rows = statement.query_map([], read_user).ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }

    /// Records an API token of `user` by the SHA-256 of the token, and audits it (`token_create`,
    /// with the first 8 digits of the digest so that the entry names the token without
    /// revealing it).
    pub fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError> {
        check_digest("API token digest", token_sha256)?;
        let what = || format!("adding an API token for user '{user}'");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let exists: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM users WHERE name = ?1",
                [user],
                |row| row.get(0),
            )
            .ctx(what)?;
        if !exists {
            return Err(StoreError::UnknownUser {
                name: user.to_string(),
            });
        }
        tx.execute(
            &format!(
                "INSERT INTO api_tokens (token_sha256, user, created_at, revoked)
                 VALUES (?1, ?2, {NOW}, 0)"
            ),
            params![token_sha256, user],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
        insert_audit(&tx, &actor, "token_create", user, &detail)?;
        tx.commit().ctx(what)
    }

    /// The user an unrevoked API token (given by its SHA-256) belongs to.
    pub fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT u.name, u.role, u.password_hash, u.created_at
                 FROM api_tokens t JOIN users u ON u.name = t.user
                 WHERE t.token_sha256 = ?1 AND t.revoked = 0",
            )
            .and_then(|mut statement| statement.query_row([token_sha256], read_user).optional())
            .ctx(|| "looking up an API token".to_string())
    }

    /// The API tokens of `user` (of every user when `None`), newest first, revoked ones
    /// included.
    pub fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError> {
        let what = || "reading API tokens".to_string();
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT token_sha256, user, created_at, revoked FROM api_tokens
                 WHERE ?1 IS NULL OR user = ?1 ORDER BY created_at DESC, token_sha256",
            )
            .ctx(what)?;
        let rows = statement
            .query_map([user], |row| {
                Ok(StoredToken {
                    token_sha256: row.get(0)?,
                    user: row.get(1)?,
                    created_at: row.get(2)?,
                    revoked: row.get::<_, i64>(3)? != 0,
                })
            })
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }

    /// Revokes an API token (by its SHA-256) for good, and audits it (`token_revoke`). Returns
    /// whether an unrevoked token was found.
    pub fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError> {
        check_digest("API token digest", token_sha256)?;
        let actor = self.actor.clone();
        let detail = serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
        self.change_one(
            "revoking an API token",
            "SELECT user FROM api_tokens WHERE token_sha256 = ?1 AND revoked = 0",
            "UPDATE api_tokens SET revoked = 1 WHERE token_sha256 = ?1",
            token_sha256,
            |_| (actor, "token_revoke", detail),
        )
    }

    /// In one immediate transaction: finds the user of the row `find` selects by `key`, applies
    /// `change` to it, and audits it as `audit(user)` says (actor, action, detail). Returns
    /// whether the row was found (nothing is written when it is not).
    fn change_one(
        &mut self,
        what: &str,
        find: &str,
        change: &str,
        key: &str,
        audit: impl FnOnce(&str) -> (String, &'static str, String),
    ) -> Result<bool, StoreError> {
        let what = || what.to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let user: Option<String> = tx
            .query_row(find, [key], |row| row.get(0))
            .optional()
            .ctx(what)?;
        let Some(user) = user else {
            return Ok(false);
        };
        tx.execute(change, [key]).ctx(what)?;
        let (actor, action, detail) = audit(&user);
        insert_audit(&tx, &actor, action, &user, &detail)?;
        tx.commit().ctx(what)?;
        Ok(true)
    }

    /// Opens a login session of `user` lasting `ttl_seconds`, kept by the SHA-256 of its id with
    /// its CSRF token, and audits it (`login`, by the user). Expired sessions are deleted on
    /// the way. Returns when the session expires (UTC, ISO 8601).
    pub fn create_session(
        &mut self,
        session_sha256: &str,
        user: &str,
        csrf_token: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError> {
        check_new_session(session_sha256, csrf_token)?;
        let what = || format!("opening a session for user '{user}'");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        tx.execute(
            &format!("DELETE FROM sessions WHERE expires_at <= {NOW}"),
            [],
        )
        .ctx(what)?;
        let exists: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM users WHERE name = ?1",
                [user],
                |row| row.get(0),
            )
            .ctx(what)?;
        if !exists {
            return Err(StoreError::UnknownUser {
                name: user.to_string(),
            });
        }
        let ttl = format!("+{ttl_seconds} seconds");
        let expires_at: String = tx
            .query_row(
                "SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?1)",
                [&ttl],
                |row| row.get(0),
            )
            .ctx(what)?;
        tx.execute(
            &format!(
                "INSERT INTO sessions (session_sha256, user, csrf_token, created_at, expires_at)
                 VALUES (?1, ?2, ?3, {NOW}, ?4)"
            ),
            params![session_sha256, user, csrf_token, expires_at],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "expires_at": expires_at }).to_string();
        insert_audit(&tx, user, "login", user, &detail)?;
        tx.commit().ctx(what)?;
        Ok(expires_at)
    }

    /// The login rate limit, shared by every process on this store. Before a password is
    /// checked: when any of `keys` (e.g. `user:NAME`, `ip:ADDRESS`) has `max_failures` within
    /// `window_ms` before `now_ms` (Unix milliseconds, from [`Store::clock_ms`]), says how long to
    /// wait, writing nothing; otherwise counts the attempt as a failure of each key now, in a
    /// write transaction that checks again first (so that concurrent attempts, from any
    /// server, cannot pass the limit together), and sweeps failures out of the window. Failed
    /// logins are not audited: a flood of them would fill the audit log.
    pub fn begin_login(
        &mut self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: u32,
    ) -> Result<LoginGate, StoreError> {
        check_login_gate(keys, window_ms, max_failures)?;
        let what = || "counting a login attempt".to_string();
        let nth_newest = |conn: &rusqlite::Connection, key: &str| {
            conn.prepare_cached(
                "SELECT at_ms FROM login_failures WHERE key = ?1 AND at_ms > ?2
                 ORDER BY at_ms DESC LIMIT 1 OFFSET ?3",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![key, now_ms - window_ms, max_failures - 1], |row| {
                        row.get(0)
                    })
                    .optional()
            })
            .ctx(what)
        };
        // A limited attempt only reads: a flood of them does not queue for the write lock.
        if let Some(seconds) =
            login_wait(keys, now_ms, window_ms, |key| nth_newest(&self.conn, key))?
        {
            return Ok(LoginGate::Wait { seconds });
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        if let Some(seconds) = login_wait(keys, now_ms, window_ms, |key| nth_newest(&tx, key))? {
            return Ok(LoginGate::Wait { seconds });
        }
        tx.execute(
            "DELETE FROM login_failures WHERE at_ms <= ?1",
            [now_ms - window_ms],
        )
        .ctx(what)?;
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            tx.execute(
                "INSERT INTO login_failures (key, at_ms) VALUES (?1, ?2)",
                params![key, now_ms],
            )
            .ctx(what)?;
            ids.push(tx.last_insert_rowid());
        }
        tx.commit().ctx(what)?;
        Ok(LoginGate::Counted(ids))
    }

    /// The store's clock, in Unix milliseconds: the time [`Store::begin_login`] counts in. On
    /// SQLite, this machine's clock (every server on the file runs here); on PostgreSQL, the
    /// database server's, so that servers on several machines count in one clock.
    pub fn clock_ms(&self) -> Result<i64, StoreError> {
        Ok(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    /// Takes back the failures counted by [`Store::begin_login`] (the password was right).
    pub fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let what = || "forgetting a login attempt".to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        for id in ids {
            tx.execute("DELETE FROM login_failures WHERE id = ?1", [id])
                .ctx(what)?;
        }
        tx.commit().ctx(what)
    }

    /// The session whose id has this SHA-256, unless it has expired.
    pub fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError> {
        self.conn
            .prepare_cached(&format!(
                "SELECT s.user, u.role, s.csrf_token, s.expires_at
                 FROM sessions s JOIN users u ON u.name = s.user
                 WHERE s.session_sha256 = ?1 AND s.expires_at > {NOW}"
            ))
            .and_then(|mut statement| {
                statement
                    .query_row([session_sha256], |row| {
                        Ok(StoredSession {
                            user: row.get(0)?,
                            role: row.get(1)?,
                            csrf_token: row.get(2)?,
                            expires_at: row.get(3)?,
                        })
                    })
                    .optional()
            })
            .ctx(|| "looking up a session".to_string())
    }

    /// Ends the session whose id has this SHA-256 and audits it (`logout`, by the user). Returns
    /// whether there was such a session.
    pub fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError> {
        check_digest("session digest", session_sha256)?;
        self.change_one(
            "ending a session",
            "SELECT user FROM sessions WHERE session_sha256 = ?1",
            "DELETE FROM sessions WHERE session_sha256 = ?1",
            session_sha256,
            |user| (user.to_string(), "logout", "{}".to_string()),
        )
    }
}
