//! Users, API tokens and login sessions on PostgreSQL (see `crate::users`). `user` is a reserved
//! word in PostgreSQL: the column is quoted.

use postgres::Row;

use super::audit::insert_audit;
use super::{write_tx, PgStore, NOW};
use crate::error::Context;
use crate::users::{check_digest, check_login_gate, login_wait};
use crate::{LoginGate, StoreError, StoredSession, StoredToken, StoredUser};

fn read_user(row: &Row) -> Result<StoredUser, postgres::Error> {
    Ok(StoredUser {
        name: row.try_get(0)?,
        role: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

impl PgStore {
    /// See [`Store::add_user`](crate::Store::add_user).
    pub fn add_user(
        &mut self,
        name: &str,
        role: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let what = || format!("adding user '{name}'");
        crate::users::check_new_user(name, role, password_hash)?;
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let exists: bool = tx
            .query_one("SELECT count(*) > 0 FROM users WHERE name = $1", &[&name])
            .and_then(|row| row.try_get(0))
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
                 VALUES ($1, $2, $3, {NOW})"
            ),
            &[&name, &role, &password_hash],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "role": role }).to_string();
        insert_audit(&mut tx, &actor, "user_add", name, &detail)?;
        tx.commit().ctx(what)
    }

    /// See [`Store::user`](crate::Store::user).
    pub fn user(&self, name: &str) -> Result<Option<StoredUser>, StoreError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT name, role, password_hash, created_at FROM users WHERE name = $1",
                &[&name],
            )
            .and_then(|row| row.map(|row| read_user(&row)).transpose())
            .ctx(|| format!("reading user '{name}'"))
    }

    /// See [`Store::set_password_hash`](crate::Store::set_password_hash).
    pub fn set_password_hash(
        &mut self,
        name: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        crate::users::check_password_hash(name, password_hash)?;
        let what = || format!("setting the password of user '{name}'");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let changed = tx
            .execute(
                "UPDATE users SET password_hash = $2 WHERE name = $1",
                &[&name, &password_hash],
            )
            .ctx(what)?;
        if changed == 0 {
            return Ok(false);
        }
        let ended = tx
            .execute(r#"DELETE FROM sessions WHERE "user" = $1"#, &[&name])
            .ctx(what)?;
        let detail = serde_json::json!({ "sessions_ended": ended }).to_string();
        insert_audit(&mut tx, &actor, "password_set", name, &detail)?;
        tx.commit().ctx(what)?;
        Ok(true)
    }

    /// See [`Store::users`](crate::Store::users).
    pub fn users(&self) -> Result<Vec<StoredUser>, StoreError> {
        let what = || "reading users".to_string();
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT name, role, password_hash, created_at FROM users ORDER BY name",
                &[],
            )
            .ctx(what)?;
        rows.iter()
            .map(read_user)
            .collect::<Result<_, _>>()
            .ctx(what)
    }

    /// See [`Store::add_api_token`](crate::Store::add_api_token).
    pub fn add_api_token(&mut self, user: &str, token_sha256: &str) -> Result<(), StoreError> {
        check_digest("API token digest", token_sha256)?;
        let what = || format!("adding an API token for user '{user}'");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let exists: bool = tx
            .query_one("SELECT count(*) > 0 FROM users WHERE name = $1", &[&user])
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        if !exists {
            return Err(StoreError::UnknownUser {
                name: user.to_string(),
            });
        }
        tx.execute(
            &format!(
                r#"INSERT INTO api_tokens (token_sha256, "user", created_at, revoked)
                   VALUES ($1, $2, {NOW}, 0)"#
            ),
            &[&token_sha256, &user],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
        insert_audit(&mut tx, &actor, "token_create", user, &detail)?;
        tx.commit().ctx(what)
    }

    /// See [`Store::user_for_token`](crate::Store::user_for_token).
    /// Asked on every request with a token: prepared once (see [`super::prepared`]).
    pub fn user_for_token(&self, token_sha256: &str) -> Result<Option<StoredUser>, StoreError> {
        let mut client = self.client.borrow_mut();
        super::prepared(
            &self.statements,
            &mut *client,
            r#"SELECT u.name, u.role, u.password_hash, u.created_at
               FROM api_tokens t JOIN users u ON u.name = t."user"
               WHERE t.token_sha256 = $1 AND t.revoked = 0"#,
        )
        .and_then(|statement| client.query_opt(&statement, &[&token_sha256]))
        .and_then(|row| row.map(|row| read_user(&row)).transpose())
        .ctx(|| "looking up an API token".to_string())
    }

    /// See [`Store::api_tokens`](crate::Store::api_tokens).
    pub fn api_tokens(&self, user: Option<&str>) -> Result<Vec<StoredToken>, StoreError> {
        let rows = self
            .client
            .borrow_mut()
            .query(
                r#"SELECT token_sha256, "user", created_at, revoked FROM api_tokens
                   WHERE $1::text IS NULL OR "user" = $1
                   ORDER BY created_at DESC, token_sha256"#,
                &[&user],
            )
            .ctx(|| "reading API tokens".to_string())?;
        rows.iter()
            .map(|row| {
                Ok(StoredToken {
                    token_sha256: row.try_get(0)?,
                    user: row.try_get(1)?,
                    created_at: row.try_get(2)?,
                    revoked: row.try_get::<_, i64>(3)? != 0,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx(|| "reading API tokens".to_string())
    }

    /// See [`Store::begin_login`](crate::Store::begin_login). Not under the store's write lock:
    /// the attempt's keys are locked instead (transaction-scoped advisory locks, in key order),
    /// so logins neither wait for imports nor make other writers wait, and two attempts on one
    /// key still cannot pass the limit together.
    pub fn begin_login(
        &mut self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
        max_failures: u32,
    ) -> Result<LoginGate, StoreError> {
        check_login_gate(keys, window_ms, max_failures)?;
        let what = || "counting a login attempt".to_string();
        let cutoff = now_ms - window_ms;
        let offset = i64::from(max_failures) - 1;
        let mut tx = self.client.get_mut().transaction().ctx(what)?;
        let mut locked: Vec<&String> = keys.iter().collect();
        locked.sort();
        locked.dedup();
        for key in locked {
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext('borderlens-login:'
                    || coalesce(current_schema(), '') || ':' || $1))",
                &[key],
            )
            .ctx(what)?;
        }
        let wait = login_wait(keys, now_ms, window_ms, |key| {
            tx.query_opt(
                "SELECT at_ms FROM login_failures WHERE key = $1 AND at_ms > $2
                 ORDER BY at_ms DESC LIMIT 1 OFFSET $3",
                &[&key, &cutoff, &offset],
            )
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .ctx(what)
        })?;
        if let Some(seconds) = wait {
            tx.commit().ctx(what)?;
            return Ok(LoginGate::Wait { seconds });
        }
        // One sweeper at a time; the others skip it (old rows change no decision).
        let sweeper: bool = tx
            .query_one(
                "SELECT pg_try_advisory_xact_lock(hashtext('borderlens-login-sweep:'
                    || coalesce(current_schema(), '')))",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        if sweeper {
            tx.execute("DELETE FROM login_failures WHERE at_ms <= $1", &[&cutoff])
                .ctx(what)?;
        }
        let mut ids = Vec::with_capacity(keys.len());
        for key in keys {
            let id: i64 = tx
                .query_one(
                    "INSERT INTO login_failures (key, at_ms) VALUES ($1, $2) RETURNING id",
                    &[key, &now_ms],
                )
                .and_then(|row| row.try_get(0))
                .ctx(what)?;
            ids.push(id);
        }
        tx.commit().ctx(what)?;
        Ok(LoginGate::Counted(ids))
    }

    /// See [`Store::forget_login_failures`](crate::Store::forget_login_failures) (not under the
    /// store's write lock either).
    pub fn forget_login_failures(&mut self, ids: &[i64]) -> Result<(), StoreError> {
        self.client
            .get_mut()
            .execute("DELETE FROM login_failures WHERE id = ANY($1)", &[&ids])
            .ctx(|| "forgetting a login attempt".to_string())?;
        Ok(())
    }

    /// See [`Store::clock_ms`](crate::Store::clock_ms): the database server's clock.
    pub fn clock_ms(&self) -> Result<i64, StoreError> {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
                &[],
            )
            .and_then(|row| row.try_get(0))
            .ctx(|| "reading the database clock".to_string())
    }

    /// See [`Store::revoke_api_token`](crate::Store::revoke_api_token).
    pub fn revoke_api_token(&mut self, token_sha256: &str) -> Result<bool, StoreError> {
        check_digest("API token digest", token_sha256)?;
        let actor = self.actor.clone();
        let detail = serde_json::json!({ "token_sha256_prefix": &token_sha256[..8] }).to_string();
        self.change_one(
            "revoking an API token",
            r#"SELECT "user" FROM api_tokens WHERE token_sha256 = $1 AND revoked = 0"#,
            "UPDATE api_tokens SET revoked = 1 WHERE token_sha256 = $1",
            token_sha256,
            |_| (actor, "token_revoke", detail),
        )
    }

    /// In one write transaction: finds the user of the row `find` selects by `key`, applies
    /// `change` to it, and audits it as `audit(user)` says (actor, action, detail).
    fn change_one(
        &mut self,
        what: &str,
        find: &str,
        change: &str,
        key: &str,
        audit: impl FnOnce(&str) -> (String, &'static str, String),
    ) -> Result<bool, StoreError> {
        let what = || what.to_string();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let user: Option<String> = tx
            .query_opt(find, &[&key])
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .ctx(what)?;
        let Some(user) = user else {
            return Ok(false);
        };
        tx.execute(change, &[&key]).ctx(what)?;
        let (actor, action, detail) = audit(&user);
        insert_audit(&mut tx, &actor, action, &user, &detail)?;
        tx.commit().ctx(what)?;
        Ok(true)
    }

    /// See [`Store::create_session`](crate::Store::create_session).
    pub fn create_session(
        &mut self,
        session_sha256: &str,
        user: &str,
        csrf_token: &str,
        ttl_seconds: u32,
    ) -> Result<String, StoreError> {
        crate::users::check_new_session(session_sha256, csrf_token)?;
        let what = || format!("opening a session for user '{user}'");
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        tx.execute(
            &format!("DELETE FROM sessions WHERE expires_at <= {NOW}"),
            &[],
        )
        .ctx(what)?;
        let exists: bool = tx
            .query_one("SELECT count(*) > 0 FROM users WHERE name = $1", &[&user])
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        if !exists {
            return Err(StoreError::UnknownUser {
                name: user.to_string(),
            });
        }
        let expires_at: String = tx
            .query_one(
                r#"SELECT to_char((statement_timestamp() + make_interval(secs => $1))
                       AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#,
                &[&f64::from(ttl_seconds)],
            )
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        tx.execute(
            &format!(
                r#"INSERT INTO sessions (session_sha256, "user", csrf_token, created_at, expires_at)
                   VALUES ($1, $2, $3, {NOW}, $4)"#
            ),
            &[&session_sha256, &user, &csrf_token, &expires_at],
        )
        .ctx(what)?;
        let detail = serde_json::json!({ "expires_at": expires_at }).to_string();
        insert_audit(&mut tx, user, "login", user, &detail)?;
        tx.commit().ctx(what)?;
        Ok(expires_at)
    }

    /// See [`Store::session`](crate::Store::session).
    pub fn session(&self, session_sha256: &str) -> Result<Option<StoredSession>, StoreError> {
        self.client
            .borrow_mut()
            .query_opt(
                &format!(
                    r#"SELECT s."user", u.role, s.csrf_token, s.expires_at
                       FROM sessions s JOIN users u ON u.name = s."user"
                       WHERE s.session_sha256 = $1 AND s.expires_at > {NOW}"#
                ),
                &[&session_sha256],
            )
            .and_then(|row| {
                row.map(|row| {
                    Ok(StoredSession {
                        user: row.try_get(0)?,
                        role: row.try_get(1)?,
                        csrf_token: row.try_get(2)?,
                        expires_at: row.try_get(3)?,
                    })
                })
                .transpose()
            })
            .ctx(|| "looking up a session".to_string())
    }

    /// See [`Store::delete_session`](crate::Store::delete_session).
    pub fn delete_session(&mut self, session_sha256: &str) -> Result<bool, StoreError> {
        check_digest("session digest", session_sha256)?;
        self.change_one(
            "ending a session",
            r#"SELECT "user" FROM sessions WHERE session_sha256 = $1"#,
            "DELETE FROM sessions WHERE session_sha256 = $1",
            session_sha256,
            |user| (user.to_string(), "logout", "{}".to_string()),
        )
    }
}
