//! The append-only audit log on PostgreSQL (see `crate::audit`).

use postgres::GenericClient;

use super::{check_json, PgStore, NOW};
use crate::error::Context;
use crate::{AuditEntry, StoreError};

impl PgStore {
    /// See [`Store::append_audit`](crate::Store::append_audit).
    pub fn append_audit(
        &mut self,
        actor: &str,
        action: &str,
        subject: &str,
        detail_json: &str,
    ) -> Result<i64, StoreError> {
        check_json("audit detail", detail_json)?;
        insert_audit(self.client.get_mut(), actor, action, subject, detail_json)
    }

    /// See [`Store::audit_entries`](crate::Store::audit_entries).
    pub fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let what = || "reading the audit log".to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT id, at, actor, action, subject, detail_json FROM audit_log
                 ORDER BY id DESC LIMIT $1",
                &[&limit],
            )
            .ctx(what)?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get(0)?,
                    at: row.try_get(1)?,
                    actor: row.try_get(2)?,
                    action: row.try_get(3)?,
                    subject: row.try_get(4)?,
                    detail_json: row.try_get(5)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx(what)
    }
}

/// The statement that appends an entry.
fn insert_sql() -> String {
    format!(
        "INSERT INTO audit_log (at, actor, action, subject, detail_json)
         VALUES ({NOW}, $1, $2, $3, $4) RETURNING id"
    )
}

/// Inserts an entry on `client` (a connection or a transaction) and returns its id.
pub(crate) fn insert_audit(
    client: &mut impl GenericClient,
    actor: &str,
    action: &str,
    subject: &str,
    detail_json: &str,
) -> Result<i64, StoreError> {
    client
        .query_one(&insert_sql(), &[&actor, &action, &subject, &detail_json])
        .and_then(|row| row.try_get(0))
        .ctx(|| format!("appending '{action}' on '{subject}' to the audit log"))
}

/// [`insert_audit`] with the statement prepared once (see [`super::prepared`]).
pub(crate) fn insert_audit_prepared(
    client: &mut impl GenericClient,
    statements: &std::cell::RefCell<std::collections::HashMap<String, postgres::Statement>>,
    actor: &str,
    action: &str,
    subject: &str,
    detail_json: &str,
) -> Result<i64, StoreError> {
    let what = || format!("appending '{action}' on '{subject}' to the audit log");
    let statement = super::prepared(statements, client, &insert_sql()).ctx(what)?;
    client
        .query_one(&statement, &[&actor, &action, &subject, &detail_json])
        .and_then(|row| row.try_get(0))
        .ctx(what)
}
