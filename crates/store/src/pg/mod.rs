//! PostgreSQL specifics: the connection behind a PostgreSQL [`Store`](crate::Store)
//! (`--database-url postgres://…`), its schema, URL helpers and the tests' schemas. The
//! operations themselves are the same code as on SQLite (`crate::sql`).
//!
//! - [`Store::connect`](crate::Store::connect) connects (no TLS: loopback or a trusted network)
//!   and creates or migrates the schema, versions 1 to [`SCHEMA_VERSION`](crate::SCHEMA_VERSION),
//!   tracked in a `schema_version` table, each step in one transaction.
//! - Every write runs in one transaction that first takes a transaction-scoped advisory lock
//!   (one per schema): writers queue one after the other as they do on SQLite (`BEGIN
//!   IMMEDIATE`), so the read-check-write sequences (a model's next version, a submission id
//!   seen before, a batch already decided) behave as on SQLite, with no serialization failures
//!   to retry. Readers are never blocked. The audit entry is written in the same transaction.
//!   A writer waits at most [`LOCK_TIMEOUT`] (SQLite's busy timeout), then fails as busy
//!   ([`StoreError::is_busy`]).
//!   Login attempts lock their own keys instead ([`KEY_LOCK`]).
//! - The append-only and never-overwrite rules are triggers, as on SQLite: a PL/pgSQL function
//!   raises the same messages.
//! - Times are the same text as on SQLite (UTC, `2026-11-24T23:33:00.123Z`), dates ISO text;
//!   text columns that are ordered by use the `"C"` collation, so that order is byte order as on
//!   SQLite whatever the database's locale.
//!
//! A URL may choose a schema with the `options` parameter, e.g.
//! `postgres://user@127.0.0.1:5432/db?options=-c%20search_path%3Dborderlens`.

pub mod testing;

use std::cell::{RefCell, RefMut};

use postgres::{Client, NoTls, Transaction};

use crate::error::Context;
use crate::sql::Prepared;
use crate::StoreError;

/// Set first by every write transaction: a lock (the writers' one included) waited for longer
/// than [`BUSY_TIMEOUT`](crate::BUSY_TIMEOUT) fails with `lock_not_available`
/// ([`StoreError::is_busy`]), as SQLite's busy timeout does, instead of waiting for as long as
/// an import runs.
pub(crate) const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

/// Taken first by every write transaction: one writer at a time per schema (see the module
/// documentation). Released at commit or rollback.
pub(crate) const WRITE_LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')))";

/// Locks one key (`$1`) of this schema until the transaction ends (login attempts lock theirs
/// instead of [`WRITE_LOCK`]).
pub(crate) const KEY_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('borderlens-login:'
    || coalesce(current_schema(), '') || ':' || $1))";

/// Whether `target` is a PostgreSQL URL (`postgres://` or `postgresql://`) rather than the path
/// of an SQLite file.
pub fn is_postgres_url(target: &str) -> bool {
    target.starts_with("postgres://") || target.starts_with("postgresql://")
}

/// Creates the schema `name` (lower-case letters, digits and `_`) in the database at `url`, for
/// a store to live in: connect to it with `url` plus `?options=-c%20search_path%3D{name}` (see
/// [`schema_url`]). Fails if it exists.
pub fn create_schema(url: &str, name: &str) -> Result<(), StoreError> {
    admin_sql(url, name, &format!("CREATE SCHEMA {name}"))
}

/// Drops the schema `name` and everything in it, if it exists.
pub fn drop_schema(url: &str, name: &str) -> Result<(), StoreError> {
    admin_sql(url, name, &format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
}

/// `url` with the schema `name` as the search path.
pub fn schema_url(url: &str, name: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{name}")
}

/// Runs one statement about schema `name` on a connection of its own, on a thread of its own
/// (the client's runtime must not nest in a caller's async runtime).
fn admin_sql(url: &str, name: &str, sql: &str) -> Result<(), StoreError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(StoreError::Invalid {
            what: format!("schema name '{name}'"),
            reason: "only lower-case letters, digits and '_' are taken".to_string(),
        });
    }
    let (url, sql) = (url.to_string(), sql.to_string());
    let shown = redact_url(&url);
    std::thread::spawn(move || -> Result<(), StoreError> {
        let what = || format!("'{sql}' on {shown}");
        let mut client = Client::connect(&url, NoTls).ctx(what)?;
        client.batch_execute(&sql).ctx(what)
    })
    .join()
    .map_err(|_| StoreError::Invalid {
        what: "the PostgreSQL connection thread".to_string(),
        reason: "it panicked".to_string(),
    })?
}

/// `url` with its password, if any, replaced by `***` (for messages and logs).
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let user_info = &authority[..at];
    match user_info.find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &user_info[..colon],
            &rest[at..]
        ),
        None => url.to_string(),
    }
}

/// The connection of a PostgreSQL [`Store`](crate::Store), with its prepared statements.
pub(crate) struct PgConn {
    client: ClientCell,
    prepared: Prepared,
    url: String,
}

/// The `postgres` client drives its I/O on a runtime of its own, which cannot start inside
/// another asynchronous runtime's thread (tokio panics): it is therefore opened and closed on a
/// short-lived thread of its own, so that a store can be created and dropped anywhere (e.g. by
/// the server's pool, on its async threads). Every other use must happen on a thread that is
/// not driving async tasks (the server runs jobs on blocking threads).
struct ClientCell(Option<RefCell<Client>>);

impl Drop for ClientCell {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Closing blocks on the client's runtime: off this thread (see above).
            if let Ok(closing) = std::thread::Builder::new().spawn(move || drop(client)) {
                let _ = closing.join();
            }
        }
    }
}

impl PgConn {
    /// Connects to the database at `url` and creates or migrates the schema.
    pub(crate) fn connect(url: &str) -> Result<PgConn, StoreError> {
        let shown = redact_url(url);
        let connect = || -> Result<Client, StoreError> {
            let mut client = Client::connect(url, NoTls)
                .ctx(|| format!("cannot connect to the PostgreSQL store '{shown}'"))?;
            crate::schema::migrate_postgres(&mut client, &shown)?;
            Ok(client)
        };
        // On a thread of its own (see `ClientCell`).
        let client = std::thread::scope(|scope| {
            std::thread::Builder::new()
                .spawn_scoped(scope, connect)
                .map(|connecting| connecting.join())
        });
        let client = match client {
            Ok(Ok(connected)) => connected?,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => {
                return Err(StoreError::Invalid {
                    what: format!("connection to the PostgreSQL store '{shown}'"),
                    reason: format!("cannot start a thread: {e}"),
                })
            }
        };
        Ok(PgConn {
            client: ClientCell(Some(RefCell::new(client))),
            prepared: Prepared::default(),
            url: shown,
        })
    }

    /// The URL connected to, its password replaced by `***`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn client(&self) -> RefMut<'_, Client> {
        self.client
            .0
            .as_ref()
            .expect("open until dropped")
            .borrow_mut()
    }

    pub(crate) fn prepared(&self) -> &Prepared {
        &self.prepared
    }

    /// The client and the prepared statements, borrowed together (a transaction borrows the
    /// client mutably).
    pub(crate) fn parts(&mut self) -> (&mut Client, &Prepared) {
        let client = self
            .client
            .0
            .as_mut()
            .expect("open until dropped")
            .get_mut();
        (client, &self.prepared)
    }
}

/// Starts a write transaction: one at a time per schema (see [`WRITE_LOCK`]).
pub(crate) fn write_tx(client: &mut Client) -> Result<Transaction<'_>, postgres::Error> {
    let mut tx = client.transaction()?;
    tx.batch_execute(LOCK_TIMEOUT)?;
    tx.batch_execute(WRITE_LOCK)?;
    Ok(tx)
}

#[cfg(test)]
mod url_tests {
    use super::{is_postgres_url, redact_url};

    #[test]
    fn passwords_are_redacted_and_urls_recognised() {
        assert_eq!(
            redact_url("postgres://ana:s3cr:et@db.example:5432/bl?options=x"),
            "postgres://ana:***@db.example:5432/bl?options=x"
        );
        assert_eq!(
            redact_url("postgres://ana@127.0.0.1/bl"),
            "postgres://ana@127.0.0.1/bl"
        );
        assert_eq!(redact_url("borderlens.db"), "borderlens.db");
        assert!(is_postgres_url("postgresql://x/y"));
        assert!(!is_postgres_url("data/postgres.db"));
    }
}
