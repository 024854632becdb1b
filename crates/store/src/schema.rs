//! The schema, as one list of migrations for both databases: version `i` holds the same tables,
//! indexes and rules on SQLite and on PostgreSQL. Each migration is written once, with a few
//! placeholders for what the two DDLs spell differently ([`ddl`]):
//!
//! | placeholder | SQLite | PostgreSQL |
//! | --- | --- | --- |
//! | `{int}`, `{real}`, `{blob}` | `INTEGER`, `REAL`, `BLOB` | `BIGINT`, `DOUBLE PRECISION`, `BYTEA` |
//! | `{key}`: text that is ordered by | `TEXT` | `TEXT COLLATE "C"` (byte order, as SQLite) |
//! | `{id}`: an increasing row id | `INTEGER PRIMARY KEY AUTOINCREMENT` | `BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY` |
//! | `{json:COL}`, `{json_array:COL}` | `json_valid(COL)`, `json_type(COL) = 'array'` | a cast to `json` |
//! | `{refuse\|NAME\|EVENT\|WHEN\|MESSAGE}`: a trigger refusing a change | `RAISE(ABORT, …)` | the `borderlens_refuse` function |
//! | `{no_truncate\|NAME\|TABLE\|MESSAGE}` | nothing (SQLite has no `TRUNCATE`) | a statement trigger |
//!
//! Times and dates are TEXT in the same format on both; JSON is TEXT as given, so that a
//! payload's digest is the digest of what is stored. `"user"` is quoted (reserved on
//! PostgreSQL). The version reached is `PRAGMA user_version` on SQLite, the one row of the
//! `schema_version` table on PostgreSQL.
//!
//! Versions 1 to 5 create exactly what the migrations of earlier releases created on each
//! database (their stores are at version 5 already); a migration, once released, is never
//! changed. Version 6 is the first written once for both.

use std::path::{Path, PathBuf};

use postgres::Client;
use rusqlite::{Connection, TransactionBehavior};

use crate::error::Context;
use crate::sql::Dialect;
use crate::StoreError;

/// Version 1: declaration items, import conflicts, models, scores, audit log.
const V1: &str = r#"
CREATE TABLE declaration_items (
    declaration_id    {key}   NOT NULL CHECK (length(declaration_id) > 0),
    item_no           {int}   NOT NULL CHECK (item_no >= 1),
    date              {key}   NOT NULL,
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
    tax_rate          {real}  NOT NULL CHECK (tax_rate >= 0),
    tax_type          TEXT    NOT NULL,
    origin_indicator  TEXT    NOT NULL,
    net_mass          {real}  NOT NULL CHECK (net_mass >= 0),
    item_price        {real}  NOT NULL CHECK (item_price >= 0),
    fraud             {int}   CHECK (fraud IN (0, 1)),
    critical_fraud    {int}   CHECK (critical_fraud IN (0, 1, 2)),
    imported_at       TEXT    NOT NULL,
    source_file       TEXT    NOT NULL,
    source_line       {int}   NOT NULL,
    labelled_at       TEXT,
    label_source      TEXT,
    label_line        {int},
    PRIMARY KEY (declaration_id, item_no),
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL)),
    CHECK (fraud IS NULL OR (fraud = 1) = (critical_fraud > 0))
);
CREATE INDEX declaration_items_by_date ON declaration_items (date, declaration_id, item_no);
{postgres_only|CREATE INDEX declaration_items_by_importer ON declaration_items (importer_id);}
{postgres_only|CREATE INDEX declaration_items_by_declarant ON declaration_items (declarant_id);}

-- What the trader declared is never overwritten; a label is only ever added.
{refuse|declaration_items_declared_fields_are_final|BEFORE UPDATE OF declaration_id, item_no, date, office_id, process_type, import_type, import_use, payment_type, transport_mode, declarant_id, importer_id, seller_id, courier_id, hs6, departure_country, origin_country, tax_rate, tax_type, origin_indicator, net_mass, item_price, imported_at, source_file, source_line ON declaration_items||declared fields of declaration_items are never overwritten}
{refuse|declaration_items_labels_are_final|BEFORE UPDATE OF fraud, critical_fraud ON declaration_items|OLD.fraud IS NOT NULL|a stored control label is never overwritten}

CREATE TABLE import_conflicts (
    id             {id},
    at             TEXT    NOT NULL,
    source_file    TEXT    NOT NULL,
    source_line    {int}   NOT NULL,
    declaration_id {key}   NOT NULL,
    item_no        {int}   NOT NULL,
    field          TEXT    NOT NULL,
    stored         TEXT    NOT NULL,
    incoming       TEXT    NOT NULL,
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
);
CREATE INDEX import_conflicts_by_item ON import_conflicts (declaration_id, item_no);

CREATE TABLE models (
    name          {key}   NOT NULL CHECK (length(name) > 0),
    version       {int}   NOT NULL CHECK (version >= 1),
    metadata_json TEXT    NOT NULL CHECK ({json:metadata_json}),
    bytes         {blob}  NOT NULL,
    sha256        TEXT    NOT NULL,
    created_at    TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE scores (
    declaration_id {key}   NOT NULL,
    item_no        {int}   NOT NULL,
    model_name     {key}   NOT NULL,
    model_version  {int}   NOT NULL,
    score          {real}  NOT NULL,
    scored_at      TEXT    NOT NULL,
    PRIMARY KEY (declaration_id, item_no, model_name, model_version),
    FOREIGN KEY (model_name, model_version) REFERENCES models (name, version),
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
){sqlite_only| WITHOUT ROWID};
CREATE INDEX scores_by_model ON scores (model_name, model_version);

CREATE TABLE audit_log (
    id          {id},
    at          TEXT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    detail_json TEXT    NOT NULL CHECK ({json:detail_json})
);
{refuse|audit_log_no_update|BEFORE UPDATE ON audit_log||audit_log is append-only: entries cannot be updated}
{refuse|audit_log_no_delete|BEFORE DELETE ON audit_log||audit_log is append-only: entries cannot be deleted}
{no_truncate|audit_log_no_truncate|audit_log|audit_log is append-only: entries cannot be deleted}
"#;

/// Version 2: selection policies, selection decisions (with π and stratum) and officer
/// overrides, control results; a control label may now grow (a later control finds fraud) but
/// never shrink.
const V2: &str = r#"
CREATE TABLE policies (
    name       {key}   NOT NULL CHECK (length(name) > 0),
    version    {int}   NOT NULL CHECK (version >= 1),
    body_json  TEXT    NOT NULL CHECK ({json:body_json}),
    sha256     TEXT    NOT NULL,
    created_at TEXT    NOT NULL,
    created_by TEXT    NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE decisions (
    id              {id},
    declaration_id  {key}   NOT NULL,
    batch           {key}   NOT NULL,
    policy_name     {key}   NOT NULL,
    policy_version  {int}   NOT NULL,
    model_name      TEXT,
    model_version   {int},
    score           {real},
    pi              {real}  NOT NULL CHECK (pi >= 0 AND pi <= 1),
    stratum         TEXT    NOT NULL,
    lane            TEXT    NOT NULL CHECK (lane IN ('red', 'yellow', 'green')),
    source          TEXT    NOT NULL,
    reasons_json    TEXT    NOT NULL CHECK ({json:reasons_json}),
    overrides       {int} REFERENCES decisions (id),
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
{refuse|decisions_no_update|BEFORE UPDATE ON decisions||decisions are append-only: record an override instead}
{refuse|decisions_no_delete|BEFORE DELETE ON decisions||decisions are append-only: they cannot be deleted}
{no_truncate|decisions_no_truncate|decisions|decisions are append-only: they cannot be deleted}

CREATE TABLE control_results (
    id             {id},
    submission_id  TEXT    NOT NULL UNIQUE CHECK (length(submission_id) > 0),
    declaration_id {key}   NOT NULL,
    schema_version TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    fraud          {int}   CHECK (fraud IN (0, 1)),
    critical_fraud {int}   CHECK (critical_fraud IN (0, 1, 2)),
    payload_json   TEXT    NOT NULL CHECK ({json:payload_json}),
    payload_sha256 TEXT    NOT NULL,
    source         TEXT    NOT NULL,
    recorded_by    TEXT    NOT NULL,
    recorded_at    TEXT    NOT NULL,
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL))
);
CREATE INDEX control_results_by_declaration ON control_results (declaration_id, id);
{refuse|control_results_no_update|BEFORE UPDATE ON control_results||control results are append-only}
{refuse|control_results_no_delete|BEFORE DELETE ON control_results||control results are append-only}
{no_truncate|control_results_no_truncate|control_results|control results are append-only}

DROP TRIGGER declaration_items_labels_are_final{postgres_only| ON declaration_items};
{refuse|declaration_items_labels_only_grow|BEFORE UPDATE OF fraud, critical_fraud ON declaration_items|OLD.fraud IS NOT NULL AND (NEW.fraud IS NULL OR NEW.fraud < OLD.fraud OR NEW.critical_fraud < OLD.critical_fraud)|a stored control label is never lowered or removed}
"#;

/// Version 3: users (name, role, argon2id password hash as a PHC string), API tokens and
/// login sessions, both kept only as the SHA-256 of the secret (a stolen database gives no
/// usable credential).
const V3: &str = r#"
CREATE TABLE users (
    name          {key}   NOT NULL PRIMARY KEY CHECK (length(name) > 0),
    role          TEXT    NOT NULL
        CHECK (role IN ('officer', 'analyst', 'annotator', 'manager', 'admin')),
    password_hash TEXT    NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at    TEXT    NOT NULL
);

CREATE TABLE api_tokens (
    token_sha256 TEXT    NOT NULL PRIMARY KEY CHECK (length(token_sha256) = 64),
    "user"       {key}   NOT NULL REFERENCES users (name),
    created_at   TEXT    NOT NULL,
    revoked      {int}   NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
);
CREATE INDEX api_tokens_by_user ON api_tokens ("user");
-- A revoked token stays revoked.
{refuse|api_tokens_revocation_is_final|BEFORE UPDATE ON api_tokens|OLD.revoked = 1 OR NEW.token_sha256 <> OLD.token_sha256 OR NEW."user" <> OLD."user"|an API token can only be revoked}

CREATE TABLE sessions (
    session_sha256 TEXT  NOT NULL PRIMARY KEY CHECK (length(session_sha256) = 64),
    "user"         {key} NOT NULL REFERENCES users (name),
    csrf_token     TEXT  NOT NULL CHECK (length(csrf_token) >= 32),
    created_at     {key} NOT NULL,
    expires_at     {key} NOT NULL
);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
"#;

/// Version 4: the top reasons of a score (its largest contributions, in words, as a JSON
/// array), saved with the score so that a queue of the day's declarations shows why each is
/// risky without explaining them again.
const V4: &str = r#"
ALTER TABLE scores ADD COLUMN reasons_json TEXT
    CHECK (reasons_json IS NULL OR {json_array:reasons_json});
"#;

/// Version 5: failed logins, so that the login rate limit holds across every server on the
/// store (each row: a key, `user:NAME` or `ip:ADDRESS`, and when, in Unix milliseconds; rows
/// older than the limit's window are swept by the next attempt); indexes for one item's
/// history (importer, declarant, seller, HS code; labels by date).
const V5: &str = r#"
CREATE TABLE login_failures (
    id    {sqlite_only|INTEGER PRIMARY KEY}{postgres_only|BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY},
    key   {key}   NOT NULL CHECK (length(key) > 0),
    at_ms {int}   NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (key, at_ms);
CREATE INDEX login_failures_by_time ON login_failures (at_ms);
-- One item's history features read the past of its importer, declarant, seller and HS code,
-- and the label counts before its date (read from the index alone). (PostgreSQL has had the
-- importer and declarant indexes since version 1.)
{sqlite_only|CREATE INDEX declaration_items_by_importer ON declaration_items (importer_id);}
{sqlite_only|CREATE INDEX declaration_items_by_declarant ON declaration_items (declarant_id);}
CREATE INDEX declaration_items_by_seller ON declaration_items (seller_id);
CREATE INDEX declaration_items_by_hs6 ON declaration_items (hs6);
CREATE INDEX declaration_items_labels_by_date ON declaration_items (date, fraud);
"#;

/// Version 6: the item a decision was made on (the declaration's riskiest item, or the one a
/// campaign covers), so that its explanation describes that item. NULL in the decisions
/// recorded before, which item 1 stood for.
const V6: &str = r#"
ALTER TABLE decisions ADD COLUMN item_no {int} CHECK (item_no IS NULL OR item_no >= 1);
"#;

/// Version 7: the goods descriptions of an item (issue 14), the sender's and the one a broker
/// or postal operator cleaned, both optional, stored as declared (TEXT keeps every byte of
/// UTF-8 on both databases) and final like every declared field. NULL in the items stored
/// before, which had none.
const V7: &str = r#"
ALTER TABLE declaration_items ADD COLUMN goods_description TEXT;
ALTER TABLE declaration_items ADD COLUMN goods_description_cleaned TEXT;
{refuse|declaration_items_descriptions_are_final|BEFORE UPDATE OF goods_description, goods_description_cleaned ON declaration_items||declared fields of declaration_items are never overwritten}
"#;

/// Version 8: the HS readings of items' goods descriptions (issue 14), derived values kept
/// beside the declared code and never written over it: per item and HS model (its id names
/// the recipe version and the file's digest), the best three codes with their probabilities,
/// the declared code's mismatch at chapter, heading and 6-digit level (`1 − P(declared code)`,
/// NULL where the declared code has no such level or the text is routed to review), the code
/// the text reads as at each level, the probability that the text is too vague, whether it is
/// routed to an officer's review, the disagreement of the sender's and the cleaned texts (NULL
/// unless both were declared and read), the whole reading as JSON for the pages, and when it
/// was computed. A reading is a pure function of the item's declared text and the model, so
/// it is written once per item and model and never updated.
const V8: &str = r#"
CREATE TABLE hs_readings (
    declaration_id       {key}   NOT NULL,
    item_no              {int}   NOT NULL,
    model                {key}   NOT NULL CHECK (length(model) > 0),
    model_version        TEXT    NOT NULL CHECK (length(model_version) > 0),
    outcome              TEXT    NOT NULL CHECK (length(outcome) > 0),
    suggestions_json     TEXT    NOT NULL CHECK ({json_array:suggestions_json}),
    chapter_mismatch     {real}  CHECK (chapter_mismatch BETWEEN 0 AND 1),
    heading_mismatch     {real}  CHECK (heading_mismatch BETWEEN 0 AND 1),
    hs6_mismatch         {real}  CHECK (hs6_mismatch BETWEEN 0 AND 1),
    reads_as_chapter     TEXT,
    reads_as_heading     TEXT,
    reads_as_hs6         TEXT,
    vague_probability    {real}  CHECK (vague_probability BETWEEN 0 AND 1),
    review               {int}   NOT NULL CHECK (review IN (0, 1)),
    cleaned_disagreement {real}  CHECK (cleaned_disagreement BETWEEN 0 AND 1),
    reading_json         TEXT    NOT NULL CHECK ({json:reading_json}),
    computed_at          TEXT    NOT NULL,
    PRIMARY KEY (declaration_id, item_no, model),
    FOREIGN KEY (declaration_id, item_no) REFERENCES declaration_items (declaration_id, item_no)
){sqlite_only| WITHOUT ROWID};
CREATE INDEX hs_readings_by_model ON hs_readings (model);
{refuse|hs_readings_no_update|BEFORE UPDATE ON hs_readings||an HS reading is derived once per item and model: it is never updated}
"#;

/// Version 9: party links (issue 13), what a record-linkage run over a register of trade
/// parties found: parties (importer, declarant ids) that are one firm under several ids. One
/// row per party in a group of two or more: the group (its smallest party id), the party it is
/// most strongly linked to and that link's match probability (1 for a shared valid
/// identifier), the run and when it was saved. Derived values: a new run replaces every row of
/// the previous one in one transaction; a row is never updated. The ids are plain `TEXT`, as
/// the items' importer and declarant ids are: compared with another collation, PostgreSQL
/// could not use the items' indexes.
const V9: &str = r#"
CREATE TABLE party_links (
    party_id    TEXT    NOT NULL PRIMARY KEY CHECK (length(party_id) > 0),
    group_id    TEXT    NOT NULL CHECK (length(group_id) > 0),
    linked_to   TEXT    NOT NULL CHECK (length(linked_to) > 0 AND linked_to <> party_id),
    probability {real}  NOT NULL CHECK (probability BETWEEN 0 AND 1),
    run         TEXT    NOT NULL CHECK (length(run) > 0),
    linked_at   TEXT    NOT NULL
){sqlite_only| WITHOUT ROWID};
CREATE INDEX party_links_by_group ON party_links (group_id);
{refuse|party_links_no_update|BEFORE UPDATE ON party_links||party links are replaced by a new linkage run, never updated}
"#;

/// Migration `i` takes the schema from version `i` to `i + 1`.
/// Version 10: the transport unit an item travels in (issue 15), as declared and final like
/// every declared field (NULL in the items stored before), indexed on its canonical form
/// (upper case, without spaces and hyphens: [`TRANSPORT_CANONICAL`]) so that an X-ray scan
/// finds its declarations; and the X-ray catalogue (`nii_catalogue.rs`): one row per scan of a
/// reference library, replaced whole from the library's folder, never updated.
const V10: &str = r#"
ALTER TABLE declaration_items ADD COLUMN container_number TEXT;
ALTER TABLE declaration_items ADD COLUMN postal_item_id TEXT;
{refuse|declaration_items_transport_ids_are_final|BEFORE UPDATE OF container_number, postal_item_id ON declaration_items||declared fields of declaration_items are never overwritten}
CREATE INDEX declaration_items_by_container ON declaration_items ((upper(replace(replace(container_number, ' ', ''), '-', ''))));
CREATE INDEX declaration_items_by_postal_item ON declaration_items ((upper(replace(replace(postal_item_id, ' ', ''), '-', ''))));
CREATE TABLE nii_scans (
    library         TEXT    NOT NULL CHECK (length(library) > 0),
    scan_id         TEXT    NOT NULL CHECK (length(scan_id) > 0),
    scanned_at      TEXT    NOT NULL CHECK (length(scanned_at) > 0),
    cargo_type      TEXT    NOT NULL CHECK (length(cargo_type) > 0),
    container_id    TEXT    CHECK (container_id IS NULL OR length(container_id) > 0),
    package_id      TEXT    CHECK (package_id IS NULL OR length(package_id) > 0),
    purpose         TEXT    NOT NULL,
    outcome         TEXT,
    source          TEXT    NOT NULL CHECK (length(source) > 0),
    projected       {int}   NOT NULL CHECK (projected IN (0, 1)),
    licence         TEXT    NOT NULL,
    redistributable {int}   NOT NULL CHECK (redistributable IN (0, 1)),
    views           {int}   NOT NULL CHECK (views >= 1),
    catalogued_at   TEXT    NOT NULL,
    PRIMARY KEY (library, scan_id)
){sqlite_only| WITHOUT ROWID};
CREATE INDEX nii_scans_by_container ON nii_scans (container_id);
CREATE INDEX nii_scans_by_package ON nii_scans (package_id);
{refuse|nii_scans_no_update|BEFORE UPDATE ON nii_scans||the X-ray catalogue is replaced from its library, never updated}
"#;

/// Version 11: foreign control results (issue 17, `foreign_results.rs`), what other
/// administrations shared in anonymised exchange documents: per sender and submission
/// pseudonym, the declaration pseudonym, the outcome and label, the control's date, the
/// answers and the declaration's context as JSON, the digest a re-import is compared by, and
/// the provenance (format and form schema versions, when the sender made the document, the
/// file and its SHA-256, who imported it and when). Append-only. No foreign key to the items:
/// a pseudonym names no declaration here.
const V11: &str = r#"
CREATE TABLE foreign_results (
    id              {id},
    sender          {key}   NOT NULL CHECK (length(sender) > 0),
    format_version  {int}   NOT NULL CHECK (format_version >= 1),
    schema_version  TEXT    NOT NULL CHECK (length(schema_version) > 0),
    generated_at    TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    document_sha256 TEXT    NOT NULL CHECK (length(document_sha256) = 64),
    submission_id   {key}   NOT NULL CHECK (length(submission_id) > 0),
    declaration_id  TEXT    NOT NULL CHECK (length(declaration_id) > 0),
    outcome         TEXT    NOT NULL,
    fraud           {int}   CHECK (fraud IN (0, 1)),
    critical_fraud  {int}   CHECK (critical_fraud IN (0, 1, 2)),
    inspected_on    TEXT    NOT NULL,
    values_json     TEXT    NOT NULL CHECK ({json:values_json}),
    context_json    TEXT    CHECK (context_json IS NULL OR {json:context_json}),
    result_sha256   TEXT    NOT NULL,
    imported_by     TEXT    NOT NULL,
    imported_at     TEXT    NOT NULL,
    UNIQUE (sender, submission_id),
    CHECK ((fraud IS NULL) = (critical_fraud IS NULL))
);
{refuse|foreign_results_no_update|BEFORE UPDATE ON foreign_results||foreign results are append-only}
{refuse|foreign_results_no_delete|BEFORE DELETE ON foreign_results||foreign results are append-only}
{no_truncate|foreign_results_no_truncate|foreign_results|foreign results are append-only}
"#;

const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11];

/// The canonical form of a declared container number or postal item id column in SQL, as the
/// version 10 indexes compute it (`{column}` is replaced by the column's name): a query that
/// compares this expression uses the index.
pub(crate) const TRANSPORT_CANONICAL: &str = "upper(replace(replace({column}, ' ', ''), '-', ''))";

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Created before version 1 on PostgreSQL: the function every refusing trigger calls (it
/// raises its first argument as the error message).
const POSTGRES_REFUSE: &str = r#"
CREATE FUNCTION borderlens_refuse() RETURNS trigger LANGUAGE plpgsql AS $body$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END
$body$;
"#;

/// Migration `template` in `dialect`'s DDL (see the module documentation for the
/// placeholders).
pub(crate) fn ddl(template: &str, dialect: Dialect) -> String {
    let sqlite = dialect == Dialect::Sqlite;
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').expect("placeholders are closed");
        let placeholder = &rest[open + 1..close];
        rest = &rest[close + 1..];
        let parts: Vec<&str> = placeholder.split('|').collect();
        let (name, argument) = match placeholder.split_once(':') {
            Some((name, argument)) if parts.len() == 1 => (name, argument),
            _ => (parts[0], ""),
        };
        let text = match (name, sqlite) {
            ("int", true) => "INTEGER".to_string(),
            ("int", false) => "BIGINT".to_string(),
            ("real", true) => "REAL".to_string(),
            ("real", false) => "DOUBLE PRECISION".to_string(),
            ("blob", true) => "BLOB".to_string(),
            ("blob", false) => "BYTEA".to_string(),
            ("key", true) => "TEXT".to_string(),
            ("key", false) => r#"TEXT COLLATE "C""#.to_string(),
            ("id", true) => "INTEGER PRIMARY KEY AUTOINCREMENT".to_string(),
            ("id", false) => "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY".to_string(),
            ("json", true) => format!("json_valid({argument})"),
            ("json", false) => format!("{argument}::json IS NOT NULL"),
            ("json_array", true) => format!("json_type({argument}) = 'array'"),
            ("json_array", false) => format!("json_typeof({argument}::json) = 'array'"),
            ("sqlite_only", _) | ("postgres_only", _) => {
                let wanted = (name == "sqlite_only") == sqlite;
                if wanted {
                    parts[1..].join("|")
                } else {
                    String::new()
                }
            }
            ("refuse", _) => {
                let [_, trigger, event, when, message] = parts[..] else {
                    panic!("refuse takes a name, an event, a condition and a message");
                };
                match (sqlite, when.is_empty()) {
                    (true, true) => format!(
                        "CREATE TRIGGER {trigger} {event}\nBEGIN\n    SELECT RAISE(ABORT, '{message}');\nEND;"
                    ),
                    (true, false) => format!(
                        "CREATE TRIGGER {trigger} {event}\nWHEN {when}\nBEGIN\n    SELECT RAISE(ABORT, '{message}');\nEND;"
                    ),
                    (false, true) => format!(
                        "CREATE TRIGGER {trigger} {event} FOR EACH ROW\nEXECUTE FUNCTION borderlens_refuse('{message}');"
                    ),
                    (false, false) => format!(
                        "CREATE TRIGGER {trigger} {event}\nFOR EACH ROW WHEN ({when})\nEXECUTE FUNCTION borderlens_refuse('{message}');"
                    ),
                }
            }
            ("no_truncate", true) => String::new(),
            ("no_truncate", false) => {
                let [_, trigger, table, message] = parts[..] else {
                    panic!("no_truncate takes a name, a table and a message");
                };
                format!(
                    "CREATE TRIGGER {trigger} BEFORE TRUNCATE ON {table} FOR EACH STATEMENT\nEXECUTE FUNCTION borderlens_refuse('{message}');"
                )
            }
            _ => panic!("unknown schema placeholder {{{placeholder}}}"),
        };
        out.push_str(&text);
    }
    out.push_str(rest);
    if !sqlite && std::ptr::eq(template, V1) {
        return format!("{POSTGRES_REFUSE}{out}");
    }
    out
}

/// Brings an SQLite file to [`SCHEMA_VERSION`], each step in its own transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    migrate_to(conn, path, SCHEMA_VERSION)
}

/// Brings an SQLite file to version `target` (tests build stores of earlier versions with it).
pub(crate) fn migrate_to(
    conn: &mut Connection,
    path: &Path,
    target: u32,
) -> Result<(), StoreError> {
    let open_error = |source: rusqlite::Error| StoreError::Open {
        path: path.to_path_buf(),
        source: source.into(),
    };
    // A store already at `target` is only read: opening one (the server's pool does, for reads
    // too) does not wait for the writer lock that a long import holds.
    let current: Result<u32, _> = conn.pragma_query_value(None, "user_version", |row| row.get(0));
    if current.is_ok_and(|found| found == target) {
        return Ok(());
    }
    loop {
        // IMMEDIATE: two processes opening a fresh file must not both run a step.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        let found: u32 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(open_error)?;
        let Some(version) = next_version(found, target, path)? else {
            return Ok(());
        };
        let failed = |source: rusqlite::Error| StoreError::Migration {
            path: path.to_path_buf(),
            version,
            source: source.into(),
        };
        tx.execute_batch(&ddl(MIGRATIONS[found as usize], Dialect::Sqlite))
            .map_err(failed)?;
        tx.pragma_update(None, "user_version", version)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
    }
}

/// Brings a PostgreSQL database to [`SCHEMA_VERSION`], each step in its own transaction, under
/// the write lock (two processes connecting to a fresh database do not both run a step).
pub(crate) fn migrate_postgres(client: &mut Client, url: &str) -> Result<(), StoreError> {
    migrate_postgres_to(client, url, SCHEMA_VERSION)
}

/// Brings a PostgreSQL database to version `target` (tests build stores of earlier versions
/// with it).
pub(crate) fn migrate_postgres_to(
    client: &mut Client,
    url: &str,
    target: u32,
) -> Result<(), StoreError> {
    let opening = || format!("cannot open the PostgreSQL store '{url}'");
    // A store already at `target` is only read (no writer lock: a long import holds it); a
    // missing table or another version takes the locked path below.
    let current = client
        .query_opt("SELECT version FROM schema_version", &[])
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<_, i64>(0).ok());
    if current == Some(i64::from(target)) {
        return Ok(());
    }
    loop {
        let mut tx = crate::pg::write_tx(client).ctx(opening)?;
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
        let Some(version) = next_version(found, target, Path::new(url))? else {
            tx.commit().ctx(opening)?;
            return Ok(());
        };
        let failed = || format!("store '{url}': migration to schema version {version} failed");
        tx.batch_execute(&ddl(MIGRATIONS[found as usize], Dialect::Postgres))
            .ctx(failed)?;
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[&i64::from(version)],
        )
        .ctx(failed)?;
        tx.commit().ctx(failed)?;
    }
}

/// The version to migrate to from `found` on the way to `target`: `None` when there is
/// nothing to do; an error when the store is newer than this build.
fn next_version(found: u32, target: u32, store: &Path) -> Result<Option<u32>, StoreError> {
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: PathBuf::from(store),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok((found < target.min(SCHEMA_VERSION)).then_some(found + 1))
}
