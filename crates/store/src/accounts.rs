//! Users, API tokens and login sessions.
//!
//! The store keeps only what cannot be replayed: a password as its argon2id PHC string, an API
//! token and a session id as the SHA-256 of the secret (64 hex digits). Hashing and the secrets
//! themselves belong to the caller (`borderlens-app`'s `users` jobs); the store checks the shapes
//! (a role of the list, a PHC string that is argon2id, a 64-digit digest) and writes the audit
//! log in the same transaction as the change.

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Exec, Row};
use crate::{Accounts, Lock, Store, StoreError};

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

/// What the login rate limit decided before a password is checked ([`Accounts::begin_login`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginGate {
    /// The attempt may go on; it is already counted as a failure under these row ids, which
    /// [`Accounts::forget_login_failures`] takes back when the password was right.
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

/// The login gate's decision: `nth_newest(key)` reads the time of the
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

/// The checks of a login gate's arguments, kept apart from the SQL.
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

/// The checks of a new user's fields, kept apart from the SQL.
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

/// A password is kept only as an argon2id PHC string; kept apart from the SQL.
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

/// The checks of a new session's secrets, kept apart from the SQL.
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

fn read_user(row: &Row) -> Result<StoredUser, DbError> {
    Ok(StoredUser {
        name: row.get(0)?,
        role: row.get(1)?,
        password_hash: row.get(2)?,
        created_at: row.get(3)?,
    })
}

/// Whether user `name` exists.
fn user_exists(exec: &mut dyn Exec, name: &str) -> Result<bool, DbError> {
    exec.value("SELECT count(*) > 0 FROM users WHERE name = $1", &[&name])
}

/// The user `sql` selects by `key` (name, role, password hash, creation).
fn find_user(exec: &mut dyn Exec, sql: &str, key: &str) -> Result<Option<StoredUser>, DbError> {
    exec.query_opt(sql, &[&key])?
        .map(|row| read_user(&row))
        .transpose()
}

/// The time of the `max`-th newest failure of `key` after `after_ms`, if there are that many.
fn nth_newest_failure(
    exec: &mut dyn Exec,
    key: &str,
    after_ms: i64,
    max: u32,
) -> Result<Option<i64>, DbError> {
    exec.query_opt(
        "SELECT at_ms FROM login_failures WHERE key = $1 AND at_ms > $2
         ORDER BY at_ms DESC LIMIT 1 OFFSET $3",
        &[&key, &after_ms, &(max - 1)],
    )?
    .map(|row| row.get(0))
    .transpose()
}

impl Store {
    /// In one write transaction: finds the user of the row `find` selects by `key`, applies
    /// `change` to it, and audits it as `audit(user)` says (actor, action, detail). Returns
    /// whether the row was found (nothing is written when it is not).
    fn change_one(
        &mut self,
        what: &str,
        find: &str,
        change: &str,
        key: &str,
        audit: impl FnOnce(&str, &str) -> (String, &'static str, String),
    ) -> Result<bool, StoreError> {
        let what = || what.to_string();
        self.write(Lock::Writers, what, |exec, actor| {
            let user: Option<String> = exec
                .query_opt(find, &[&key])
                .and_then(|row| row.map(|row| row.get(0)).transpose())
                .ctx(what)?;
            let Some(user) = user else {
                return Ok(false);
            };
            exec.execute(change, &[&key]).ctx(what)?;
            let (actor, action, detail) = audit(actor, &user);
            insert_audit(exec, &actor, action, &user, &detail)?;
            Ok(true)
        })
    }
}

impl Accounts for Store {
    fn add_user(&mut self, name: &str, role: &str, password_hash: &str) -> Result<(), StoreError> {
        check_new_user(name, role, password_hash)?;
        let what = || format!("adding user '{name}'");
        self.write(Lock::Writers, what, |exec, actor| {
            if user_exists(exec, name).ctx(what)? {
                return Err(StoreError::Invalid {
                    what: format!("user '{name}'"),
                    reason: "already exists".to_string(),
                });
            }
            exec.execute(
                &format!(
                    "INSERT INTO users (name, role, password_hash, created_at)
                     VALUES ($1, $2, $3, {})",
                    exec.dialect().now()
                ),
                &[&name, &role, &password_hash],
            )
            .ctx(what)?;
            let detail = serde_json::json!({ "role": role }).to_string();
            insert_audit(exec, actor, "user_add", name, &detail)?;
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        self.read(|exec| {
            find_user(
                exec,
                "SELECT name, role, password_hash, created_at FROM users WHERE name = $1",
                name,
            )
        })
        .ctx(|| format!("reading user '{name}'"))
    }

    fn set_password_hash(&mut self, name: &str, password_hash: &str) -> Result<bool, StoreError> {
        check_password_hash(name, password_hash)?;
        let what = || format!("setting the password of user '{name}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let changed = exec
                .execute(
                    "UPDATE users SET password_hash = $2 WHERE name = $1",
                    &[&name, &password_hash],
                )
                .ctx(what)?;
            if changed == 0 {
                return Ok(false);
            }
            let ended = exec
                .execute(r#"DELETE FROM sessions WHERE "user" = $1"#, &[&name])
                .ctx(what)?;
            let detail = serde_json::json!({ "sessions_ended": ended }).to_string();
            insert_audit(exec, actor, "password_set", name, &detail)?;
            Ok(true)
        })
    }

    fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
                &[],
            )?
            .iter()
            .map(read_user)
            .collect()
        })
        .ctx(|| "reading users".to_string())
    }

    fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError> {
        check_digest("API token digest", token_sha256)?;
        let what = || format!("adding an API token for user '{user}'");
        self.write(Lock::Writers, what, |exec, actor| {
            if !user_exists(exec, user).ctx(what)? {
                return Err(StoreError::UnknownUser {
                    name: user.to_string(),
                });
            }
            exec.execute(
                &format!(
                    r#"INSERT INTO api_tokens (token_sha256, "user", created_at, revoked)
                       VALUES ($1, $2, {}, 0)"#,
                    exec.dialect().now()
                ),
                &[&token_sha256, &user],
            )
            .ctx(what)?;
            let detail =
                serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
            insert_audit(exec, actor, "token_create", user, &detail)?;
            Ok(())
        })
    }

    fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError> {
        self.read(|exec| {
            find_user(
                exec,
                r#"SELECT u.name, u.role, u.password_hash, u.created_at
                   FROM api_tokens t JOIN users u ON u.name = t."user"
                   WHERE t.token_sha256 = $1 AND t.revoked = 0"#,
                token_sha256,
            )
        })
        .ctx(|| "looking up an API token".to_string())
    }

    fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError> {
        self.read(|exec| {
            exec.query(
                r#"SELECT token_sha256, "user", created_at, revoked FROM api_tokens
                   WHERE CAST($1 AS TEXT) IS NULL OR "user" = $1
                   ORDER BY created_at DESC, token_sha256"#,
                &[&user],
            )?
            .iter()
            .map(|row| {
                Ok(StoredToken {
                    token_sha256: row.get(0)?,
                    user: row.get(1)?,
                    created_at: row.get(2)?,
                    revoked: row.get::<i64>(3)? != 0,
                })
            })
            .collect()
        })
        .ctx(|| "reading API tokens".to_string())
    }

    fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError> {
        check_digest("API token digest", token_sha256)?;
        let detail = serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
        self.change_one(
            "revoking an API token",
            r#"SELECT "user" FROM api_tokens WHERE token_sha256 = $1 AND revoked = 0"#,
            "UPDATE api_tokens SET revoked = 1 WHERE token_sha256 = $1",
            token_sha256,
            |actor, _| (actor.to_string(), "token_revoke", detail),
        )
    }

    fn begin_login(
        &mut self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: u32,
    ) -> Result<LoginGate, StoreError> {
        check_login_gate(keys, window_ms, max_failures)?;
        let what = || "counting a login attempt".to_string();
        let cutoff = now_ms - window_ms;
        // A limited attempt only reads: a flood of them does not queue for any lock.
        let wait = self
            .read(|exec| {
                let mut waits = Vec::new();
                for key in keys {
                    waits.push(nth_newest_failure(exec, key, cutoff, max_failures)?);
                }
                Ok(waits)
            })
            .ctx(what)?;
        let mut waits = wait.into_iter();
        if let Some(seconds) = login_wait(keys, now_ms, window_ms, |_| Ok(waits.next().flatten()))?
        {
            return Ok(LoginGate::Wait { seconds });
        }
        // Check again under the keys' locks, then count.
        self.write(Lock::Keys(keys), what, |exec, _| {
            let wait = login_wait(keys, now_ms, window_ms, |key| {
                nth_newest_failure(exec, key, cutoff, max_failures).ctx(what)
            })?;
            if let Some(seconds) = wait {
                return Ok(LoginGate::Wait { seconds });
            }
            // One sweeper at a time on PostgreSQL; the others skip it (old rows change no
            // decision). SQLite's writer lock already makes it one.
            let sweeper: bool = match exec.dialect() {
                crate::sql::Dialect::Sqlite => true,
                crate::sql::Dialect::Postgres => exec
                    .value(
                        "SELECT pg_try_advisory_xact_lock(hashtext('borderlens-login-sweep:'
                            || coalesce(current_schema(), '')))",
                        &[],
                    )
                    .ctx(what)?,
            };
            if sweeper {
                exec.execute("DELETE FROM login_failures WHERE at_ms <= $1", &[&cutoff])
                    .ctx(what)?;
            }
            let mut ids = Vec::with_capacity(keys.len());
            for key in keys {
                let id: i64 = exec
                    .value(
                        "INSERT INTO login_failures (key, at_ms) VALUES ($1, $2) RETURNING id",
                        &[key, &now_ms],
                    )
                    .ctx(what)?;
                ids.push(id);
            }
            Ok(LoginGate::Counted(ids))
        })
    }

    fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        let what = || "forgetting a login attempt".to_string();
        self.write(Lock::Rows, what, |exec, _| {
            for id in ids {
                exec.execute("DELETE FROM login_failures WHERE id = $1", &[id])
                    .ctx(what)?;
            }
            Ok(())
        })
    }

    fn clock_ms(&self) -> Result<i64, StoreError> {
        self.read(|exec| match exec.dialect() {
            crate::sql::Dialect::Sqlite => Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))),
            crate::sql::Dialect::Postgres => exec.value(
                "SELECT CAST(extract(epoch FROM clock_timestamp()) * 1000 AS BIGINT)",
                &[],
            ),
        })
        .ctx(|| "reading the database clock".to_string())
    }

    fn create_session(
        &mut self,
        session_sha256: &str,
        user: &str,
        csrf_token: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError> {
        check_new_session(session_sha256, csrf_token)?;
        let what = || format!("opening a session for user '{user}'");
        self.write(Lock::Writers, what, |exec, _| {
            let dialect = exec.dialect();
            exec.execute(
                &format!("DELETE FROM sessions WHERE expires_at <= {}", dialect.now()),
                &[],
            )
            .ctx(what)?;
            if !user_exists(exec, user).ctx(what)? {
                return Err(StoreError::UnknownUser {
                    name: user.to_string(),
                });
            }
            let expires_at: String = exec
                .value(
                    &format!("SELECT {}", dialect.now_plus_seconds("$1")),
                    &[&ttl_seconds],
                )
                .ctx(what)?;
            exec.execute(
                &format!(
                    r#"INSERT INTO sessions (session_sha256, "user", csrf_token, created_at,
                           expires_at)
                       VALUES ($1, $2, $3, {}, $4)"#,
                    dialect.now()
                ),
                &[&session_sha256, &user, &csrf_token, &expires_at],
            )
            .ctx(what)?;
            let detail = serde_json::json!({ "expires_at": expires_at }).to_string();
            insert_audit(exec, user, "login", user, &detail)?;
            Ok(expires_at)
        })
    }

    fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError> {
        self.read(|exec| {
            exec.query_opt(
                &format!(
                    r#"SELECT s."user", u.role, s.csrf_token, s.expires_at
                       FROM sessions s JOIN users u ON u.name = s."user"
                       WHERE s.session_sha256 = $1 AND s.expires_at > {}"#,
                    exec.dialect().now()
                ),
                &[&session_sha256],
            )?
            .map(|row| {
                Ok(StoredSession {
                    user: row.get(0)?,
                    role: row.get(1)?,
                    csrf_token: row.get(2)?,
                    expires_at: row.get(3)?,
                })
            })
            .transpose()
        })
        .ctx(|| "looking up a session".to_string())
    }

    fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError> {
        check_digest("session digest", session_sha256)?;
        self.change_one(
            "ending a session",
            r#"SELECT "user" FROM sessions WHERE session_sha256 = $1"#,
            "DELETE FROM sessions WHERE session_sha256 = $1",
            session_sha256,
            |_, user| (user.to_string(), "logout", "{}".to_string()),
        )
    }
}
