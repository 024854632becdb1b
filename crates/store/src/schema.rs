//! The schema, as a list of migrations; the version reached is `PRAGMA user_version`.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use crate::StoreError;

/// Schema version 1: declaration items, import conflicts, models, scores, audit log.
const V1: &str = r#"
CREATE TABLE declaration_items (
    declaration_id    TEXT    NOT NULL CHECK (length(declaration_id) > 0),
    item_no           INTEGER NOT NULL CHECK (item_no >= 1),
    date              TEXT    NOT NULL,
    office_id         TEXT    NOT NULL,
    process_type      TEXT    NOT NULL,
    import_type       TEXT    NOT NULL,
    import_use        TEXT    NOT NULL,
    payment_type      TEXT    NOT NULL,
    transport_mode    TEXT    NOT NULL,
    declarant_id      TEXT    NOT NULL,
    importer_id       TEXT    NOT NULL,
    seller_id         TEXT,
    courier_id        TEXT,
    hs6               TEXT    NOT NULL CHECK (length(hs6) = 6),
    departure_country TEXT    NOT NULL,
    origin_country    TEXT    NOT NULL,
    tax_rate          REAL    NOT NULL CHECK (tax_rate >= 0),
    tax_type          TEXT    NOT NULL,
    origin_indicator  TEXT    NOT NULL,
    net_mass          REAL    NOT NULL CHECK (net_mass >= 0),
    item_price        REAL    NOT NULL CHECK (item_price >= 0),
    fraud             INTEGER CHECK (fraud IN (0, 1)),
    critical_fraud    INTEGER CHECK (critical_fraud IN (0, 1, 2)),
    imported_at       TEXT    NOT NULL,
    source_file       TEXT    NOT NULL,
    source_line       INTEGER NOT NULL,
    labelled_at       TEXT,
    label_source      TEXT,
    label_line        INTEGER,
    PRIMARY KEY (declaration_id, item_no),
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL)),
    CHECK (fraud IS NULL OR (fraud = 1) = (critical_fraud > 0))
);
CREATE INDEX declaration_items_by_date ON declaration_items (date, declaration_id, item_no);

-- What the trader declared is never overwritten; a label is only ever added.
CREATE TRIGGER declaration_items_declared_fields_are_final
BEFORE UPDATE OF declaration_id, item_no, date, office_id, process_type, import_type, import_use,
    payment_type, transport_mode, declarant_id, importer_id, seller_id, courier_id, hs6,
    departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass, item_price,
    imported_at, source_file, source_line
ON declaration_items
BEGIN
    SELECT RAISE(ABORT, 'declared fields of declaration_items are never overwritten');
END;
CREATE TRIGGER declaration_items_labels_are_final
BEFORE UPDATE OF fraud, critical_fraud ON declaration_items
WHEN OLD.fraud IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'a stored control label is never overwritten');
END;

CREATE TABLE import_conflicts (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT    NOT NULL,
    source_file    TEXT    NOT NULL,
    source_line    INTEGER NOT NULL,
    declaration_id TEXT    NOT NULL,
    item_no        INTEGER NOT NULL,
    field          TEXT    NOT NULL,
    stored         TEXT    NOT NULL,
    incoming       TEXT    NOT NULL,
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
);
CREATE INDEX import_conflicts_by_item ON import_conflicts (declaration_id, item_no);

CREATE TABLE models (
    name          TEXT    NOT NULL CHECK (length(name) > 0),
    version       INTEGER NOT NULL CHECK (version >= 1),
    metadata_json TEXT    NOT NULL CHECK (json_valid(metadata_json)),
    bytes         BLOB    NOT NULL,
    sha256        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE scores (
    declaration_id TEXT    NOT NULL,
    item_no        INTEGER NOT NULL,
    model_name     TEXT    NOT NULL,
    model_version  INTEGER NOT NULL,
    score          REAL    NOT NULL,
    scored_at      TEXT    NOT NULL,
    PRIMARY KEY (declaration_id, item_no, model_name, model_version),
    FOREIGN KEY (model_name, model_version) REFERENCES models (name, version),
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
) WITHOUT ROWID;
CREATE INDEX scores_by_model ON scores (model_name, model_version);

CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail_json TEXT    NOT NULL CHECK (json_valid(detail_json))
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be updated');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: entries cannot be deleted');
END;
"#;

/// Schema version 2: selection policies, selection decisions (with π and stratum) and officer
/// overrides, control results; a control label may now grow (a later control finds fraud) but
/// never shrink.
const V2: &str = r#"
CREATE TABLE policies (
    name       TEXT    NOT NULL CHECK (length(name) > 0),
    version    INTEGER NOT NULL CHECK (version >= 1),
    body_json  TEXT    NOT NULL CHECK (json_valid(body_json)),
    sha256     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    declaration_id  TEXT    NOT NULL,
    batch           TEXT    NOT NULL,
    policy_name     TEXT    NOT NULL,
    policy_version  INTEGER NOT NULL,
    model_name      TEXT,
    model_version   INTEGER,
    score           REAL,
    pi              REAL    NOT NULL CHECK (pi >= 0 AND pi <= 1),
    stratum         TEXT    NOT NULL,
    lane            TEXT    NOT NULL CHECK (lane IN ('red', 'yellow', 'green')),
    source          TEXT    NOT NULL,
    reasons_json    TEXT    NOT NULL CHECK (json_valid(reasons_json)),
    overrides       INTEGER REFERENCES decisions (id),
    override_reason TEXT,
    actor           TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    CHECK ((source = 'override') = (overrides IS NOT NULL)),
    CHECK (source != 'override' OR length(trim(coalesce(override_reason, ''))) > 0),
    FOREIGN KEY (policy_name, policy_version) REFERENCES policies (name, version)
);
CREATE INDEX decisions_by_declaration ON decisions (declaration_id, id);
-- A declaration is decided once; changes are overrides.
CREATE UNIQUE INDEX decisions_one_per_declaration ON decisions (declaration_id)
    WHERE overrides IS NULL;
CREATE INDEX decisions_by_batch ON decisions (batch);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only: record an override instead');
END;
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions
BEGIN
    SELECT RAISE(ABORT, 'decisions are append-only: they cannot be deleted');
END;

CREATE TABLE control_results (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    submission_id  TEXT    NOT NULL UNIQUE CHECK (length(submission_id) > 0),
    declaration_id TEXT    NOT NULL,
    schema_version TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    fraud          INTEGER CHECK (fraud IN (0, 1)),
    critical_fraud INTEGER CHECK (critical_fraud IN (0, 1, 2)),
    payload_json   TEXT    NOT NULL CHECK (json_valid(payload_json)),
    payload_sha256 TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    recorded_by    TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL))
);
CREATE INDEX control_results_by_declaration ON control_results (declaration_id, id);
CREATE TRIGGER control_results_no_update BEFORE UPDATE ON control_results
BEGIN
    SELECT RAISE(ABORT, 'control results are append-only');
END;
CREATE TRIGGER control_results_no_delete BEFORE DELETE ON control_results
BEGIN
    SELECT RAISE(ABORT, 'control results are append-only');
END;

DROP TRIGGER declaration_items_labels_are_final;
CREATE TRIGGER declaration_items_labels_only_grow
BEFORE UPDATE OF fraud, critical_fraud ON declaration_items
WHEN OLD.fraud IS NOT NULL
    AND (NEW.fraud IS NULL OR NEW.fraud < OLD.fraud OR NEW.critical_fraud < OLD.critical_fraud)
BEGIN
    SELECT RAISE(ABORT, 'a stored control label is never lowered or removed');
END;
"#;

/// Schema version 3: users (name, role, argon2id password hash as a PHC string), API tokens and
/// login sessions, both kept only as the SHA-256 of the secret (a stolen database file gives no
/// usable credential).
const V3: &str = r#"
CREATE TABLE users (
    name          TEXT    NOT NULL PRIMARY KEY CHECK (length(name) > 0),
    role          TEXT    NOT NULL
        CHECK (role IN ('officer', 'analyst', 'annotator', 'manager', 'admin')),
    password_hash TEXT    NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    token_sha256 TEXT    NOT NULL PRIMARY KEY CHECK (length(token_sha256) = 64),
    user         TEXT    NOT NULL REFERENCES users (name),
    created_at   TEXT    NOT NULL,
    revoked      INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX api_tokens_by_user ON api_tokens (user);
-- A revoked token stays revoked.
CREATE TRIGGER api_tokens_revocation_is_final
BEFORE UPDATE ON api_tokens
WHEN OLD.revoked = 1 OR NEW.token_sha256 != OLD.token_sha256 OR NEW.user != OLD.user
BEGIN
    SELECT RAISE(ABORT, 'an API token can only be revoked');
END;

CREATE TABLE sessions (
    session_sha256 TEXT NOT NULL PRIMARY KEY CHECK (length(session_sha256) = 64),
    user           TEXT NOT NULL REFERENCES users (name),
    csrf_token     TEXT NOT NULL CHECK (length(csrf_token) >= 32),
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
"#;

/// Schema version 4: the top reasons of a score (its largest contributions, in words, as a JSON
/// array), saved with the score so that a queue of the day's declarations shows why each is
/// risky without explaining them again.
const V4: &str = r#"
ALTER TABLE scores ADD COLUMN reasons_json TEXT
    CHECK (reasons_json IS NULL OR json_type(reasons_json) = 'array');
"#;

/// Schema version 5: failed logins, so that the login rate limit holds across every server on
/// the store (each row: a key, `user:NAME` or `ip:ADDRESS`, and when, in Unix milliseconds;
/// rows older than the limit's window are swept by the next attempt); indexes for one item's
/// history (importer, declarant, seller, HS code; labels by date).
const V5: &str = r#"
CREATE TABLE login_failures (
    id    INTEGER PRIMARY KEY,
    key   TEXT    NOT NULL CHECK (length(key) > 0),
    at_ms INTEGER NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at_ms);
CREATE INDEX login_failures_by_time ON login_failures (at_ms);
-- One item's history features read the past of its importer, declarant, seller and HS code,
-- and the label counts before its date (read from the index alone).
-- (SQLite had no index on importer and declarant before; PostgreSQL has had them since v1.)
CREATE INDEX declaration_items_by_importer ON declaration_items (importer_id);
CREATE INDEX declaration_items_by_declarant ON declaration_items (declarant_id);
CREATE INDEX declaration_items_by_seller ON declaration_items (seller_id);
CREATE INDEX declaration_items_by_hs6 ON declaration_items (hs6);
CREATE INDEX declaration_items_labels_by_date ON declaration_items (date, fraud);
"#;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Brings the schema to [`SCHEMA_VERSION`], each step in its own transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    loop {
        // IMMEDIATE: two processes opening a fresh file must not both run a step.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source: source.into(),
            })?;
        let found: u32 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| StoreError::Open {
                path: path.to_path_buf(),
                source: source.into(),
            })?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            return Ok(());
        }
        let version = found + 1;
        let failed = |source: rusqlite::Error| StoreError::Migration {
            path: path.to_path_buf(),
            version,
            source: source.into(),
        };
        tx.execute_batch(MIGRATIONS[found as usize])
            .map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}
