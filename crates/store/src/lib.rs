//! Persistence of borderlens: one SQLite file (WAL mode, foreign keys on, busy timeout) holding
//! the declaration items as declared, their control labels, import conflicts, the model registry,
//! scores and the append-only audit log.
//!
//! The same operations, with the same semantics, run on PostgreSQL too ([`pg::PgStore`]); the
//! [`Backend`] trait is what both implement, and [`open_any`] opens either from a path or a
//! `postgres://` URL.
//!
//! - [`Store::open`] creates or migrates the schema (version in `PRAGMA user_version`).
//! - [`Store::import`] adds declaration items in one transaction: new keys are inserted,
//!   identical re-imports change nothing, a label may be added to an unlabelled item, and any
//!   other difference is a conflict that keeps the original (what the trader declared is never
//!   overwritten; triggers enforce it).
//! - [`Store::save_model`] / [`Store::load_model`] keep numbered versions of each model.
//! - [`Store::save_scores`] / [`Store::scores_for`] keep scores per item and model version.
//! - [`Store::append_audit`] / [`Store::audit_entries`]: the audit log, which SQLite triggers
//!   make append-only.
//! - [`Store::save_policy`], [`Store::record_decisions`], [`Store::override_decision`]: versioned
//!   selection policies and append-only decisions with their π; an override is a new entry.
//! - [`Store::record_control_result`]: append-only control results, idempotent by submission
//!   id, which raise the declaration's item labels (a label grows, never shrinks).
//! - [`Store::add_user`], [`Store::add_api_token`], [`Store::create_session`]: users with a role
//!   and an argon2id password hash, API tokens and login sessions kept as SHA-256 digests of the
//!   secrets (the hashing is the caller's).
//!
//! Architecture invariant: this crate owns persistence (schema, migrations, transactions, the
//! audit log) and knows nothing of models' internals: a model is opaque bytes plus JSON metadata.
//! It does not parse files (that is `borderlens-ingest`) and does not score.
#![deny(missing_docs)]

mod api;
mod audit;
mod controls;
mod error;
mod items;
mod models;
pub mod pg;
mod schema;
mod scores;
mod selection;
mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

use borderlens_domain::ItemKey;
use rusqlite::Connection;

pub use api::Backend;
pub use audit::AuditEntry;
pub use controls::{NewControlResult, Recorded, StoredControlResult};
pub use error::StoreError;
pub use items::{
    FieldDifference, ImportConflict, ImportOutcome, ItemFilter, LabelCounts, RecordedConflict,
    SharingFilter,
};
pub use models::{ModelInfo, StoredModel};
pub use schema::SCHEMA_VERSION;
pub use scores::StoredScore;
pub use selection::{NewDecision, StoredDecision};
pub use users::{LoginGate, StoredSession, StoredToken, StoredUser, ROLES};

use error::Context;

/// Opens the store `target` names: a PostgreSQL URL (`postgres://` or `postgresql://`) connects
/// to that database ([`pg::PgStore::connect`]); anything else is the path of an SQLite file
/// ([`Store::open`]). Either way the schema is created or migrated first.
pub fn open_any(target: &str) -> Result<Box<dyn Backend>, StoreError> {
    if pg::is_postgres_url(target) {
        Ok(Box::new(pg::PgStore::connect(target)?))
    } else {
        Ok(Box::new(Store::open(Path::new(target))?))
    }
}

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The actor of audit entries the store writes itself, until [`Store::set_actor`] is called.
pub const DEFAULT_ACTOR: &str = "system";

/// SQL expression of the current UTC time, ISO 8601 with milliseconds.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Environment variable choosing SQLite's `synchronous` setting for every store a process
/// opens: `normal` (the default: WAL commits survive a killed process, the last ones may be
/// lost on power loss) or `full` (an fsync per commit: they survive power loss too).
pub const SYNCHRONOUS_ENV: &str = "BORDERLENS_SQLITE_SYNCHRONOUS";

/// The `PRAGMA synchronous` value for the value of [`SYNCHRONOUS_ENV`] (unset: `NORMAL`).
fn synchronous_setting(value: Option<&str>) -> Result<&'static str, StoreError> {
    match value.map(str::trim) {
        None | Some("") => Ok("NORMAL"),
        Some(v) if v.eq_ignore_ascii_case("normal") => Ok("NORMAL"),
        Some(v) if v.eq_ignore_ascii_case("full") => Ok("FULL"),
        Some(v) => Err(StoreError::Invalid {
            what: SYNCHRONOUS_ENV.to_string(),
            reason: format!(
                "'{}' is not a synchronous setting: use normal or full",
                v.chars().take(40).collect::<String>()
            ),
        }),
    }
}

/// An open borderlens database. One per thread (it is `Send`, not `Sync`); several processes may
/// open the same file (WAL mode lets readers work while one writer writes).
pub struct Store {
    conn: Connection,
    path: PathBuf,
    actor: String,
}

impl Store {
    /// Opens (creating it if needed) the database at `path`, switches it to WAL mode, turns
    /// foreign keys on, sets a busy timeout and migrates the schema to [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NotWal {
                path: path.to_path_buf(),
                mode,
            });
        }
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(open_error)?;
        // NORMAL is safe with WAL: a commit survives the process being killed; a power loss
        // may lose the last commits, never corrupt the file. FULL (an fsync per commit) closes
        // that gap; `BORDERLENS_SQLITE_SYNCHRONOUS=full` chooses it.
        let synchronous = synchronous_setting(std::env::var(SYNCHRONOUS_ENV).ok().as_deref())?;
        conn.pragma_update(None, "synchronous", synchronous)
            .map_err(open_error)?;
        schema::migrate(&mut conn, path)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            actor: DEFAULT_ACTOR.to_string(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets who the audit entries written by the store itself (imports, saved models and scores)
    /// are attributed to, e.g. the logged-in officer.
    pub fn set_actor(&mut self, actor: &str) {
        self.actor = actor.to_string();
    }

    /// The actor of the store's own audit entries ([`DEFAULT_ACTOR`] unless set).
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The schema version of the open file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .ctx(|| "reading the schema version".to_string())
    }

    /// SQLite's `synchronous` setting of this connection: `normal` or `full` (see
    /// [`SYNCHRONOUS_ENV`]).
    pub fn synchronous(&self) -> Result<&'static str, StoreError> {
        let level: i64 = self
            .conn
            .pragma_query_value(None, "synchronous", |row| row.get(0))
            .ctx(|| "reading the synchronous setting".to_string())?;
        Ok(match level {
            0 => "off",
            1 => "normal",
            2 => "full",
            _ => "extra",
        })
    }

    /// The journal mode SQLite reports (`wal` for every store opened by [`Store::open`]).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.conn
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .ctx(|| "reading the journal mode".to_string())
    }
}

/// A count or line number as an SQLite integer (saturating; SQLite integers are signed).
pub(crate) fn sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An SQLite integer that the schema keeps non-negative, as a count or line number.
pub(crate) fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `declaration_id/item_no`, as keys appear in messages.
pub(crate) fn key_text(key: &ItemKey) -> String {
    format!("{}/{}", key.declaration_id, key.item_no)
}

/// Fails with [`StoreError::Invalid`] unless `text` is valid JSON (SQLite's `json_valid`).
pub(crate) fn check_json(conn: &Connection, what: &str, text: &str) -> Result<(), StoreError> {
    let valid: bool = conn
        .prepare_cached("SELECT json_valid(?1)")
        .and_then(|mut statement| statement.query_row([text], |row| row.get(0)))
        .ctx(|| format!("checking {what}"))?;
    if valid {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: what.to_string(),
            reason: "not valid JSON".to_string(),
        })
    }
}

#[cfg(test)]
mod tests;
