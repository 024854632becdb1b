//! The append-only audit log: who did what, when, to what.

use rusqlite::Connection;

use crate::error::Context;
use crate::{check_json, Store, StoreError, NOW};

/// One entry of the audit log.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct AuditEntry {
    /// Increasing id (never reused).
    pub id: i64,
    /// UTC time, ISO 8601 (`2026-11-24T23:33:00.123Z`).
    pub at: String,
    /// Who: an officer, a service, or `system`.
    pub actor: String,
    /// What, e.g. `import`, `save_model`, `save_scores`, `override`.
    pub action: String,
    /// To what, e.g. a file name, `model@version`, `declaration_id/item_no`.
    pub subject: String,
    /// Details as a JSON document.
    pub detail_json: String,
}

impl Store {
    /// Appends an entry to the audit log and returns its id. `detail_json` must be valid JSON.
    /// Entries can never be changed or deleted (SQLite triggers refuse it).
    pub fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail_json: &str,
    ) -> Result<i64, StoreError> {
        check_json(&self.conn, "audit detail", detail_json)?;
        insert_audit(&self.conn, actor, action, subject, detail_json)
    }

    /// The latest `limit` entries of the audit log, newest first.
    pub fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let what = || "reading the audit log".to_string();
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, at, actor, action, subject, detail_json FROM audit_log
                 ORDER BY id DESC LIMIT ?1",
            )
            .ctx(what)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = statement
            .query_map([limit], |row| {
                Ok(AuditEntry {
                    id: row.get(0)?,
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    subject: row.get(4)?,
                    detail_json: row.get(5)?,
                })
            })
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }
}

/// Inserts an entry on `conn` (a plain connection or a transaction's).
pub(crate) fn insert_audit(
    conn: &Connection,
    actor: &str,
    action: &str,
    subject: &str,
    detail_json: &str,
) -> Result<i64, StoreError> {
    conn.prepare_cached(&format!(
        "INSERT INTO audit_log (at, actor, action, subject, detail_json)
         VALUES ({NOW}, ?1, ?2, ?3, ?4)"
    ))
    .and_then(|mut statement| statement.insert([actor, action, subject, detail_json]))
    .ctx(|| format!("appending '{action}' on '{subject}' to the audit log"))
}
