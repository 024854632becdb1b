//! Persistence of borderlens: declaration items as declared, their control labels, import
//! conflicts, the model registry and scores, selection policies and decisions, control results,
//! users and sessions, and the append-only audit log, in one SQLite file (WAL mode, the
//! default) or a PostgreSQL database (`--database-url`).
//!
//! One [`Store`] type serves both databases, and every operation is written once: its SQL and
//! its row mapping run over a small executor (`sql`: `$N` placeholders, values bound to the
//! type each database expects, a few dialect hooks such as the current time). The operations
//! are grouped by room, one trait each: [`Items`], [`Registry`], [`Decisions`], [`Controls`],
//! [`Accounts`], [`Audit`], [`HsReadings`], [`PartyLinks`], [`NiiCatalogue`]; [`Backend`] is all of them, what jobs, the server and the CLI hold.
//! The schema is the one part written per database (`schema`): the same tables, the same rules
//! as triggers, in each one's DDL.
//!
//! - [`Store::open`] (SQLite) and [`Store::connect`] (PostgreSQL) create or migrate the schema;
//!   [`open_any`] takes either a path or a `postgres://` URL.
//! - [`Items::import_stream`] adds declaration items in one transaction: new keys are inserted,
//!   identical re-imports change nothing, a label may be added to an unlabelled item, and any
//!   other difference is a conflict that keeps the original (what the trader declared is never
//!   overwritten; triggers enforce it).
//! - [`Registry`]: numbered versions of opaque model bytes, and scores per item and version.
//! - [`Decisions`]: versioned selection policies and append-only decisions with their π and the
//!   item decided on; an override is a new entry.
//! - [`Controls`]: append-only control results, idempotent by submission id, which raise the
//!   declaration's item labels (a label grows, never shrinks).
//! - [`Accounts`]: users with a role and an argon2id password hash, API tokens and login
//!   sessions kept as SHA-256 digests of the secrets (the hashing is the caller's), the login
//!   rate limit's failures.
//! - [`HsReadings`]: what an HS model read each item's goods descriptions as, derived values
//!   per item and model, beside the declared code and never over it.
//! - [`PartyLinks`]: parties (importer, declarant ids) a linkage run found to be one firm,
//!   replaced whole by each run; the related declarations of a declaration include them.
//! - [`NiiCatalogue`]: the scans of X-ray reference libraries, with the container numbers and
//!   postal item ids that link them to declarations, replaced whole from each library's folder.
//! - [`Audit`]: the audit log; every write above audits in its own transaction.
//!
//! Architecture invariant: this crate owns persistence (schema, migrations, transactions, the
//! audit log) and knows nothing of models' internals: a model is opaque bytes plus JSON metadata.
//! It does not parse files (that is `borderlens-ingest`) and does not score.
#![deny(missing_docs)]

mod accounts;
mod api;
mod audit;
mod controls;
mod decisions;
mod error;
mod foreign_results;
mod hs_readings;
mod items;
mod nii_catalogue;
mod party_links;
pub mod pg;
mod registry;
mod schema;
mod sql;

use std::path::{Path, PathBuf};
use std::time::Duration;

use borderlens_domain::{FieldRegistry, ItemKey};
use rusqlite::TransactionBehavior;

pub use accounts::{LoginGate, StoredSession, StoredToken, StoredUser, ROLES};
pub use api::{
    Accounts, Audit, Backend, Controls, Decisions, HsReadings, Items, NiiCatalogue, PartyLinks,
    Registry,
};
pub use audit::AuditEntry;
pub use controls::{NewControlResult, Recorded, StoredControlResult};
pub use decisions::{NewDecision, StoredDecision};
pub use error::StoreError;
pub use foreign_results::{ForeignDocument, ForeignImport, NewForeignResult, StoredForeignResult};
pub use hs_readings::{HsSignals, NewHsReading, StoredHsReading};
pub use items::{
    FieldDifference, ImportConflict, ImportOutcome, ItemFilter, LabelCounts, RecordedConflict,
    SharingFilter,
};
pub use nii_catalogue::{CataloguedScan, StoredScan};
pub use party_links::{PartyLink, StoredPartyLink};
pub use registry::{ModelInfo, StoredModel, StoredScore};
pub use schema::SCHEMA_VERSION;
pub use sql::DbError;

use error::Context;
use sql::{Exec, PgExec, SqliteExec};

/// Opens the store `target` names: a PostgreSQL URL (`postgres://` or `postgresql://`) connects
/// to that database ([`Store::connect`]); anything else is the path of an SQLite file
/// ([`Store::open`]). Either way the schema is created or migrated first.
pub fn open_any(target: &str) -> Result<Box<dyn Backend>, StoreError> {
    if pg::is_postgres_url(target) {
        Ok(Box::new(Store::connect(target)?))
    } else {
        Ok(Box::new(Store::open(Path::new(target))?))
    }
}

/// How long a statement waits for another connection's lock before failing
/// ([`StoreError::is_busy`]): SQLite's busy timeout, PostgreSQL's `lock_timeout` of every write
/// transaction ([`pg::LOCK_TIMEOUT`], the same 10 s).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// SQLite statements kept prepared per connection (the store has about sixty).
const STATEMENT_CACHE: usize = 128;

/// The actor of audit entries the store writes itself, until [`Store::set_actor`] is called.
pub const DEFAULT_ACTOR: &str = "system";

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

/// An open borderlens store, on SQLite or PostgreSQL. One per thread (it is `Send`, not
/// `Sync`); several processes may open the same file or database (SQLite's WAL mode lets
/// readers work while one writer writes; PostgreSQL writers queue on an advisory lock).
pub struct Store {
    conn: Conn,
    actor: String,
    /// The declared fields of the items: each has a column of `declaration_items`.
    fields: &'static FieldRegistry,
}

enum Conn {
    Sqlite {
        conn: rusqlite::Connection,
        path: PathBuf,
    },
    Postgres(Box<pg::PgConn>),
}

/// What a write transaction locks before it starts (see [`Store::write`]).
#[derive(Clone, Copy)]
pub(crate) enum Lock<'a> {
    /// The store's writer lock: one writer at a time, as SQLite's `BEGIN IMMEDIATE` (every
    /// read-check-write sequence behaves alike on both databases).
    Writers,
    /// Only these keys (PostgreSQL advisory locks, taken in order): writes that must not queue
    /// behind imports, such as login attempts. On SQLite, the writer lock all the same.
    Keys(&'a [String]),
    /// No lock beyond the rows' own (on SQLite, the writer lock all the same).
    Rows,
}

impl Store {
    /// Opens (creating it if needed) the SQLite database at `path`, switches it to WAL mode,
    /// turns foreign keys on, sets a busy timeout and migrates the schema to
    /// [`SCHEMA_VERSION`].
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_error = |source: rusqlite::Error| StoreError::Open {
            path: path.to_path_buf(),
            source: source.into(),
        };
        let mut conn = rusqlite::Connection::open(path).map_err(open_error)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
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
            conn: Conn::Sqlite {
                conn,
                path: path.to_path_buf(),
            },
            actor: DEFAULT_ACTOR.to_string(),
            fields: FieldRegistry::standard(),
        })
    }

    /// Connects to the PostgreSQL database at `url`
    /// (`postgres://user[:password]@host[:port]/database`, without TLS) and creates or
    /// migrates the schema to [`SCHEMA_VERSION`]. See [`pg`].
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store {
            conn: Conn::Postgres(Box::new(pg::PgConn::connect(url)?)),
            actor: DEFAULT_ACTOR.to_string(),
            fields: FieldRegistry::standard(),
        })
    }

    /// Reads and writes the declared fields of `fields` from now on (the standard ones unless
    /// set). Each field needs its column in `declaration_items`: a field added to the
    /// registry comes with the schema migration that adds its column.
    pub fn set_fields(&mut self, fields: &'static FieldRegistry) {
        self.fields = fields;
    }

    /// The declared fields of the items.
    pub fn fields(&self) -> &'static FieldRegistry {
        self.fields
    }

    /// `sqlite` or `postgresql`.
    pub fn kind(&self) -> &'static str {
        match self.conn {
            Conn::Sqlite { .. } => "sqlite",
            Conn::Postgres(_) => "postgresql",
        }
    }

    /// Where the data lives: the SQLite file, or the PostgreSQL URL without its password.
    pub fn location(&self) -> String {
        match &self.conn {
            Conn::Sqlite { path, .. } => path.display().to_string(),
            Conn::Postgres(pg) => pg.url().to_string(),
        }
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

    /// The schema version (`PRAGMA user_version` on SQLite, the `schema_version` table on
    /// PostgreSQL).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let sql = match self.conn {
            Conn::Sqlite { .. } => "PRAGMA user_version",
            Conn::Postgres(_) => "SELECT version FROM schema_version",
        };
        self.read(|exec| exec.value(sql, &[]))
            .ctx(|| "reading the schema version".to_string())
    }

    /// SQLite's `synchronous` setting of this connection: `normal` or `full` (see
    /// [`SYNCHRONOUS_ENV`]); `None` on PostgreSQL.
    pub fn synchronous(&self) -> Result<Option<&'static str>, StoreError> {
        if !matches!(self.conn, Conn::Sqlite { .. }) {
            return Ok(None);
        }
        let level: i64 = self
            .read(|exec| exec.value("PRAGMA synchronous", &[]))
            .ctx(|| "reading the synchronous setting".to_string())?;
        Ok(Some(match level {
            0 => "off",
            1 => "normal",
            2 => "full",
            _ => "extra",
        }))
    }

    /// Runs `f` on the connection, outside any transaction (reads).
    pub(crate) fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Exec) -> Result<T, sql::DbError>,
    ) -> Result<T, sql::DbError> {
        match &self.conn {
            Conn::Sqlite { conn, .. } => f(&mut SqliteExec(conn)),
            Conn::Postgres(pg) => {
                let mut client = pg.client();
                f(&mut PgExec {
                    client: &mut *client,
                    prepared: pg.prepared(),
                })
            }
        }
    }

    /// Runs `f` in one write transaction, after taking `lock`, and commits when it returns
    /// `Ok` (anything it wrote is rolled back when it returns an error). `what` names the
    /// operation in errors of the transaction itself.
    pub(crate) fn write<T>(
        &mut self,
        lock: Lock<'_>,
        what: impl Fn() -> String,
        f: impl FnOnce(&mut dyn Exec, &str) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let actor = self.actor.as_str();
        match &mut self.conn {
            Conn::Sqlite { conn, .. } => {
                // IMMEDIATE: the writer lock first, so that a read-check-write never has to
                // upgrade (and fail) under a concurrent writer.
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .ctx(&what)?;
                let out = f(&mut SqliteExec(&tx), actor)?;
                tx.commit().ctx(&what)?;
                Ok(out)
            }
            Conn::Postgres(pg) => {
                let (client, prepared) = pg.parts();
                let mut tx = client.transaction().ctx(&what)?;
                // Wait for other writers as long as SQLite would, then fail as busy.
                tx.batch_execute(pg::LOCK_TIMEOUT).ctx(&what)?;
                match lock {
                    Lock::Writers => tx.batch_execute(pg::WRITE_LOCK).ctx(&what)?,
                    Lock::Keys(keys) => {
                        let mut keys: Vec<&String> = keys.iter().collect();
                        keys.sort();
                        keys.dedup();
                        for key in keys {
                            tx.execute(pg::KEY_LOCK, &[key]).ctx(&what)?;
                        }
                    }
                    Lock::Rows => {}
                }
                let out = f(
                    &mut PgExec {
                        client: &mut tx,
                        prepared,
                    },
                    actor,
                )?;
                tx.commit().ctx(&what)?;
                Ok(out)
            }
        }
    }

    /// Runs `sql` (tests: what the triggers and constraints refuse past the store's checks).
    #[cfg(test)]
    pub(crate) fn execute_raw(&mut self, sql: &str) -> Result<u64, String> {
        self.read(|exec| exec.execute(sql, &[]))
            .map_err(|e| e.to_string())
    }

    /// Runs a migration template (see [`schema::ddl`]) outside the versioned list (tests: a
    /// field added to the registry with the migration of its column).
    #[cfg(test)]
    pub(crate) fn migrate_raw(&mut self, template: &str) -> Result<(), String> {
        match &mut self.conn {
            Conn::Sqlite { conn, .. } => conn
                .execute_batch(&schema::ddl(template, sql::Dialect::Sqlite))
                .map_err(|e| e.to_string()),
            Conn::Postgres(pg) => pg
                .parts()
                .0
                .batch_execute(&schema::ddl(template, sql::Dialect::Postgres))
                .map_err(|e| e.to_string()),
        }
    }

    /// The first column of the first row of `sql`, as text (tests).
    #[cfg(test)]
    pub(crate) fn query_text_raw(&mut self, sql: &str) -> Result<Option<String>, String> {
        self.read(|exec| exec.value(sql, &[]))
            .map_err(|e| e.to_string())
    }
}

/// `declaration_id/item_no`, as keys appear in messages.
pub(crate) fn key_text(key: &ItemKey) -> String {
    format!("{}/{}", key.declaration_id, key.item_no)
}

/// Fails with [`StoreError::Invalid`] unless `text` is valid JSON.
pub(crate) fn check_json(what: &str, text: &str) -> Result<(), StoreError> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(_) => Ok(()),
        Err(_) => Err(StoreError::Invalid {
            what: what.to_string(),
            reason: "not valid JSON".to_string(),
        }),
    }
}

/// Lower-case hex of the SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    borderlens_domain::hex::encode(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests;
