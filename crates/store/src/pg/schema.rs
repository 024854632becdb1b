//! The PostgreSQL schema, as a list of migrations mirroring the SQLite ones (`crate::schema`):
//! version `i` here holds what version `i` holds there. The version reached is the one row of
//! the `schema_version` table.
//!
//! Types: SQLite's INTEGER is BIGINT, REAL is DOUBLE PRECISION, BLOB is BYTEA; times and dates
//! stay TEXT in the same format; JSON stays TEXT as given (a cast to `json` checks it), so that a
//! payload's digest is the digest of what is stored. `user` is a reserved word here: quoted.

use std::path::PathBuf;

use postgres::Client;

use crate::error::Context;
use crate::{StoreError, SCHEMA_VERSION};

/// Version 1: declaration items, import conflicts, models, scores, audit log, and the function
/// every refusing trigger calls (it raises its first argument as the error message).
const V1: &str = r#"
CREATE FUNCTION borderlens_refuse() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END
$body$;

CREATE TABLE declaration_items (
    declaration_id    TEXT COLLATE "C" NOT NULL CHECK (length(declaration_id) > 0),
    item_no           BIGINT  NOT NULL CHECK (item_no >= 1),
    date              TEXT COLLATE "C" NOT NULL,
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
    tax_rate          DOUBLE PRECISION NOT NULL CHECK (tax_rate >= 0),
    tax_type          TEXT    NOT NULL,
    origin_indicator  TEXT    NOT NULL,
    net_mass          DOUBLE PRECISION NOT NULL CHECK (net_mass >= 0),
    item_price        DOUBLE PRECISION NOT NULL CHECK (item_price >= 0),
    fraud             BIGINT CHECK (fraud IN (0, 1)),
    critical_fraud    BIGINT CHECK (critical_fraud IN (0, 1, 2)),
    imported_at       TEXT    NOT NULL,
    source_file       TEXT    NOT NULL,
    source_line       BIGINT  NOT NULL,
    labelled_at       TEXT,
    label_source      TEXT,
    label_line        BIGINT,
    PRIMARY KEY (declaration_id, item_no),
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL)),
    CHECK (fraud IS NULL OR (fraud = 1) = (critical_fraud > 0))
);
CREATE INDEX declaration_items_by_date ON declaration_items (date, declaration_id, item_no);
CREATE INDEX declaration_items_by_importer ON declaration_items (importer_id);
CREATE INDEX declaration_items_by_declarant ON declaration_items (declarant_id);

-- What the trader declared is never overwritten; a label is only ever added.
CREATE TRIGGER declaration_items_declared_fields_are_final
BEFORE UPDATE OF declaration_id, item_no, date, office_id, process_type, import_type, import_use,
    payment_type, transport_mode, declarant_id, importer_id, seller_id, courier_id, hs6,
    departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass, item_price,
    imported_at, source_file, source_line
ON declaration_items FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('declared fields of declaration_items are never overwritten');
CREATE TRIGGER declaration_items_labels_are_final
BEFORE UPDATE OF fraud, critical_fraud ON declaration_items
FOR EACH ROW WHEN (OLD.fraud IS NOT NULL)
EXECUTE FUNCTION borderlens_refuse('a stored control label is never overwritten');

CREATE TABLE import_conflicts (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TEXT    NOT NULL,
    source_file    TEXT    NOT NULL,
    source_line    BIGINT  NOT NULL,
    declaration_id TEXT COLLATE "C" NOT NULL,
    item_no        BIGINT  NOT NULL,
    field          TEXT    NOT NULL,
    stored         TEXT    NOT NULL,
    incoming       TEXT    NOT NULL,
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
);
CREATE INDEX import_conflicts_by_item ON import_conflicts (declaration_id, item_no);

CREATE TABLE models (
    name          TEXT COLLATE "C" NOT NULL CHECK (length(name) > 0),
    version       BIGINT  NOT NULL CHECK (version >= 1),
    metadata_json TEXT    NOT NULL CHECK (metadata_json::json IS NOT NULL),
    bytes         BYTEA   NOT NULL,
    sha256        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE scores (
    declaration_id TEXT COLLATE "C" NOT NULL,
    item_no        BIGINT  NOT NULL,
    model_name     TEXT COLLATE "C" NOT NULL,
    model_version  BIGINT  NOT NULL,
    score          DOUBLE PRECISION NOT NULL,
    scored_at      TEXT    NOT NULL,
    PRIMARY KEY (declaration_id, item_no, model_name, model_version),
    FOREIGN KEY (model_name, model_version) REFERENCES models (name, version),
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
);
CREATE INDEX scores_by_model ON scores (model_name, model_version);

CREATE TABLE audit_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail_json TEXT    NOT NULL CHECK (detail_json::json IS NOT NULL)
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('audit_log is append-only: entries cannot be updated');
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('audit_log is append-only: entries cannot be deleted');
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT
EXECUTE FUNCTION borderlens_refuse('audit_log is append-only: entries cannot be deleted');
"#;

/// Version 2: selection policies, decisions and overrides, control results; a label may grow
/// but never shrink.
const V2: &str = r#"
CREATE TABLE policies (
    name       TEXT COLLATE "C" NOT NULL CHECK (length(name) > 0),
    version    BIGINT  NOT NULL CHECK (version >= 1),
    body_json  TEXT    NOT NULL CHECK (body_json::json IS NOT NULL),
    sha256     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE decisions (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    declaration_id  TEXT COLLATE "C" NOT NULL,
    batch           TEXT COLLATE "C" NOT NULL,
    policy_name     TEXT COLLATE "C" NOT NULL,
    policy_version  BIGINT  NOT NULL,
    model_name      TEXT,
    model_version   BIGINT,
    score           DOUBLE PRECISION,
    pi              DOUBLE PRECISION NOT NULL CHECK (pi >= 0 AND pi <= 1),
    stratum         TEXT    NOT NULL,
    lane            TEXT    NOT NULL CHECK (lane IN ('red', 'yellow', 'green')),
    source          TEXT    NOT NULL,
    reasons_json    TEXT    NOT NULL CHECK (reasons_json::json IS NOT NULL),
    overrides       BIGINT REFERENCES decisions (id),
    override_reason TEXT,
    actor           TEXT    NOT NULL,
    at              TEXT    NOT NULL,
    CHECK ((source = 'override') = (overrides IS NOT NULL)),
    CHECK (source <> 'override' OR length(trim(coalesce(override_reason, ''))) > 0),
    FOREIGN KEY (policy_name, policy_version) REFERENCES policies (name, version)
);
CREATE INDEX decisions_by_declaration ON decisions (declaration_id, id);
-- A declaration is decided once; changes are overrides.
CREATE UNIQUE INDEX decisions_one_per_declaration ON decisions (declaration_id)
    WHERE overrides IS NULL;
CREATE INDEX decisions_by_batch ON decisions (batch);
CREATE TRIGGER decisions_no_update BEFORE UPDATE ON decisions FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('decisions are append-only: record an override instead');
CREATE TRIGGER decisions_no_delete BEFORE DELETE ON decisions FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('decisions are append-only: they cannot be deleted');
CREATE TRIGGER decisions_no_truncate BEFORE TRUNCATE ON decisions FOR EACH STATEMENT
EXECUTE FUNCTION borderlens_refuse('decisions are append-only: they cannot be deleted');

CREATE TABLE control_results (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    submission_id  TEXT    NOT NULL UNIQUE CHECK (length(submission_id) > 0),
    declaration_id TEXT COLLATE "C" NOT NULL,
    schema_version TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    fraud          BIGINT CHECK (fraud IN (0, 1)),
    critical_fraud BIGINT CHECK (critical_fraud IN (0, 1, 2)),
    payload_json   TEXT    NOT NULL CHECK (payload_json::json IS NOT NULL),
    payload_sha256 TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    recorded_by    TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL))
);
CREATE INDEX control_results_by_declaration ON control_results (declaration_id, id);
CREATE TRIGGER control_results_no_update BEFORE UPDATE ON control_results FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('control results are append-only');
CREATE TRIGGER control_results_no_delete BEFORE DELETE ON control_results FOR EACH ROW
EXECUTE FUNCTION borderlens_refuse('control results are append-only');
CREATE TRIGGER control_results_no_truncate BEFORE TRUNCATE ON control_results FOR EACH STATEMENT
EXECUTE FUNCTION borderlens_refuse('control results are append-only');

DROP TRIGGER declaration_items_labels_are_final ON declaration_items;
CREATE TRIGGER declaration_items_labels_only_grow
BEFORE UPDATE OF fraud, critical_fraud ON declaration_items
FOR EACH ROW WHEN (OLD.fraud IS NOT NULL
    AND (NEW.fraud IS NULL OR NEW.fraud < OLD.fraud OR NEW.critical_fraud < OLD.critical_fraud))
EXECUTE FUNCTION borderlens_refuse('a stored control label is never lowered or removed');
"#;

/// Version 3: users, API tokens and login sessions (secrets kept as SHA-256 digests only).
const V3: &str = r#"
CREATE TABLE users (
    name          TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(name) > 0),
    role          TEXT    NOT NULL
        CHECK (role IN ('officer', 'analyst', 'annotator', 'manager', 'admin')),
    password_hash TEXT    NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    token_sha256 TEXT    NOT NULL PRIMARY KEY CHECK (length(token_sha256) = 64),
    "user"       TEXT COLLATE "C" NOT NULL REFERENCES users (name),
    created_at   TEXT    NOT NULL,
    revoked      BIGINT  NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX api_tokens_by_user ON api_tokens ("user");
-- A revoked token stays revoked.
CREATE TRIGGER api_tokens_revocation_is_final
BEFORE UPDATE ON api_tokens
FOR EACH ROW WHEN (OLD.revoked = 1 OR NEW.token_sha256 <> OLD.token_sha256
    OR NEW."user" <> OLD."user")
EXECUTE FUNCTION borderlens_refuse('an API token can only be revoked');

CREATE TABLE sessions (
    session_sha256 TEXT NOT NULL PRIMARY KEY CHECK (length(session_sha256) = 64),
    "user"         TEXT COLLATE "C" NOT NULL REFERENCES users (name),
    csrf_token     TEXT NOT NULL CHECK (length(csrf_token) >= 32),
    created_at     TEXT COLLATE "C" NOT NULL,
    expires_at     TEXT COLLATE "C" NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
"#;

/// Version 4: the top reasons of a score, as a JSON array.
const V4: &str = r#"
ALTER TABLE scores ADD COLUMN reasons_json TEXT
    CHECK (reasons_json IS NULL OR json_typeof(reasons_json::json) = 'array');
"#;

/// Version 5: failed logins, for the login rate limit shared by every server on the store.
const V5: &str = r#"
CREATE TABLE login_failures (
    id    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key   TEXT COLLATE "C" NOT NULL CHECK (length(key) > 0),
    at_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at_ms);
CREATE INDEX login_failures_by_time ON login_failures (at_ms);
-- One item's history features read the past of its importer, declarant, seller and HS code,
-- and the label counts before its date (read from the index alone).
CREATE INDEX declaration_items_by_seller ON declaration_items (seller_id);
CREATE INDEX declaration_items_by_hs6 ON declaration_items (hs6);
CREATE INDEX declaration_items_labels_by_date ON declaration_items (date, fraud);
"#;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5];

// The two backends have the same versions.
const _: () = assert!(MIGRATIONS.len() as u32 == SCHEMA_VERSION);

/// Brings the schema to [`SCHEMA_VERSION`], each step in its own transaction, under the write
/// lock (two processes connecting to a fresh database do not both run a step).
pub(crate) fn migrate(client: &mut Client, url: &str) -> Result<(), StoreError> {
    let opening = || format!("cannot open the PostgreSQL store '{url}'");
    loop {
        let mut tx = super::write_tx(client).ctx(opening)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
            .ctx(opening)?;
        let found: Option<i64> = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .ctx(opening)?;
        let found = match found {
            Some(found) => u32::try_from(found).unwrap_or(u32::MAX),
            None => {
                tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                    .ctx(opening)?;
                0
            }
        };
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema {
                path: PathBuf::from(url),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        if found == SCHEMA_VERSION {
            tx.commit().ctx(opening)?;
            return Ok(());
        }
        let version = found + 1;
        let failed = || format!("store '{url}': migration to schema version {version} failed");
        tx.batch_execute(MIGRATIONS[found as usize]).ctx(failed)?;
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&i64::from(version)],
        )
        .ctx(failed)?;
        tx.commit().ctx(failed)?;
    }
}
