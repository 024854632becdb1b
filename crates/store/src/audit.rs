//! The append-only audit log: who did what, when, to what.

use crate::error::Context;
use crate::sql::Exec;
use crate::{check_json, Audit, Lock, Store, StoreError};

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

impl Audit for Store {
    fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail_json: &str,
    ) -> Result<i64, StoreError> {
        check_json("audit detail", detail_json)?;
        let what = || format!("appending '{action}' on '{subject}' to the audit log");
        self.write(Lock::Rows, what, |exec, _| {
            insert_audit(exec, actor, action, subject, detail_json)
        })
    }

    fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT id, at, actor, action, subject, detail_json FROM audit_log
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )?
            .iter()
            .map(entry_of)
            .collect()
        })
        .ctx(|| "reading the audit log".to_string())
    }

    fn audit_entries_of(&self, prefix: &str, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        // LIKE with the prefix's own wildcards escaped: `federation_` means what it says.
        let pattern = format!(
            "{}%",
            prefix
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        self.read(|exec| {
            exec.query(
                "SELECT id, at, actor, action, subject, detail_json FROM audit_log
                 WHERE action LIKE $1 ESCAPE '\\' ORDER BY id DESC LIMIT $2",
                &[&pattern, &limit],
            )?
            .iter()
            .map(entry_of)
            .collect()
        })
        .ctx(|| format!("reading the audit log's '{prefix}' entries"))
    }
}

fn entry_of(row: &crate::sql::Row) -> Result<AuditEntry, crate::sql::DbError> {
    Ok(AuditEntry {
        id: row.get(0)?,
        at: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        subject: row.get(4)?,
        detail_json: row.get(5)?,
    })
}

/// Appends an entry in the transaction of `exec` (every write audits in its own transaction)
/// and returns its id.
pub(crate) fn insert_audit(
    exec: &mut dyn Exec,
    actor: &str,
    action: &str,
    subject: &str,
    detail_json: &str,
) -> Result<i64, StoreError> {
    exec.value(
        &format!(
            "INSERT INTO audit_log (at, actor, action, subject, detail_json)
             VALUES ({}, $1, $2, $3, $4) RETURNING id",
            exec.dialect().now()
        ),
        &[&actor, &action, &subject, &detail_json],
    )
    .ctx(|| format!("appending '{action}' on '{subject}' to the audit log"))
}
