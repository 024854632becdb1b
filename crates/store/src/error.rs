//! [`StoreError`]: what failed, named.

use std::path::PathBuf;

use crate::sql::DbError;

/// Why a store operation failed. Every message names the operation or the record concerned.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file cannot be opened or configured.
    #[error("cannot open the store '{}': {source}", path.display())]
    Open {
        /// the database file
        path: PathBuf,
        /// the SQLite error
        source: DbError,
    },
    /// SQLite refused WAL mode (e.g. the file system does not support shared memory).
    #[error("store '{}': cannot switch to WAL mode (journal mode stays '{mode}')", path.display())]
    NotWal {
        /// the database file
        path: PathBuf,
        /// the journal mode SQLite reported
        mode: String,
    },
    /// The database was written by a newer borderlens.
    #[error(
        "store '{}' has schema version {found}, newer than the {supported} this program knows: \
         upgrade borderlens", path.display()
    )]
    NewerSchema {
        /// the database file
        path: PathBuf,
        /// `PRAGMA user_version` of the file
        found: u32,
        /// the latest version this build can migrate to
        supported: u32,
    },
    /// A migration step failed; the schema stays at the version before it.
    #[error("store '{}': migration to schema version {version} failed: {source}", path.display())]
    Migration {
        /// the database file
        path: PathBuf,
        /// the version that could not be reached
        version: u32,
        /// the database's error
        source: DbError,
    },
    /// An SQL statement, a connection or a transaction failed, on either database.
    #[error("{what}: {source}")]
    Sql {
        /// what was being done, e.g. `import of 'train.csv': inserting item 123/1`
        what: String,
        /// the database's error
        source: DbError,
    },
    /// An item that cannot be stored (the whole import is rolled back).
    #[error("import of '{file}', line {line}: item {key}: {reason}")]
    InvalidItem {
        /// the import's source name
        file: String,
        /// the line of the item in the source
        line: u64,
        /// `declaration_id/item_no`
        key: String,
        /// what is wrong
        reason: String,
    },
    /// The item stream of [`Items::import_stream`](crate::Items::import_stream) yielded an error;
    /// nothing of the import was kept.
    #[error("import of '{file}' aborted, nothing of it was kept: {reason}")]
    Aborted {
        /// the import's source name
        file: String,
        /// the error the stream yielded
        reason: String,
    },
    /// No such model version.
    #[error("no model '{name}' version {version} in the store")]
    UnknownModel {
        /// the model name
        name: String,
        /// the version asked for
        version: u32,
    },
    /// A score for an item that is not in the store (the whole batch is rolled back).
    #[error("score for item {key}, which is not in the store")]
    UnknownItem {
        /// `declaration_id/item_no`
        key: String,
    },
    /// A score that is NaN or infinite (the whole batch is rolled back).
    #[error("score {score} for item {key} is not a finite number")]
    InvalidScore {
        /// `declaration_id/item_no`
        key: String,
        /// the score
        score: f64,
    },
    /// A control result whose submission id is already stored with other content (a retry of
    /// the same submission is not an error: it is recorded as a duplicate).
    #[error(
        "invalid control result '{submission_id}': submission id already used (result \
         {stored_id}, declaration '{declaration_id}') with different content; use a new \
         submission id for a new result"
    )]
    SubmissionConflict {
        /// the submission id
        submission_id: String,
        /// the id of the stored result
        stored_id: i64,
        /// the declaration of the stored result
        declaration_id: String,
    },
    /// A control result for a declaration that is not in the store.
    #[error(
        "invalid control result '{submission_id}': declaration '{declaration_id}' is not in the \
         store; import the declaration first"
    )]
    UnknownDeclaration {
        /// the submission id
        submission_id: String,
        /// the declaration named
        declaration_id: String,
    },
    /// No user of that name.
    #[error("no user '{name}' in the store: add one with `borderlens user add`")]
    UnknownUser {
        /// the name asked for
        name: String,
    },
    /// An argument that the store refuses, e.g. an empty model name or text that is not JSON.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// the argument, e.g. `model metadata`
        what: String,
        /// what is wrong with it
        reason: String,
    },
}

impl StoreError {
    /// Whether the store was busy: another connection held the writer lock (a long import, say)
    /// past the wait of [`BUSY_TIMEOUT`](crate::BUSY_TIMEOUT). Nothing was written; the same
    /// request may succeed a little later (the server answers 503 with `Retry-After`).
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Sql { source, .. }
            | StoreError::Open { source, .. }
            | StoreError::Migration { source, .. } => source.is_busy(),
            _ => false,
        }
    }
}

/// Attaches "what was being done" to database errors.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: Into<DbError>> Context<T> for Result<T, E> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql {
            what: what(),
            source: source.into(),
        })
    }
}
