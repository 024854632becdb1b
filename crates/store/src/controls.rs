//! Control results: append-only, idempotent by submission id, and feeding the item labels.

use borderlens_domain::{ControlLabel, RecordStatus};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Row};
use crate::{check_json, sha256_hex, Controls, Lock, Store, StoreError};

/// A validated control result to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewControlResult {
    /// Client-chosen id of the submission; a retry sends the same id.
    pub submission_id: String,
    /// The declaration controlled.
    pub declaration_id: String,
    /// Version of the form schema the result was recorded with.
    pub schema_version: String,
    /// Outcome code.
    pub outcome: String,
    /// The label the result gives, when it gives one.
    pub label: Option<ControlLabel>,
    /// The whole validated result as JSON.
    pub payload_json: String,
    /// Where it came from: `form`, `cli`, `import:FILE`, `exchange:SENDER`.
    pub source: String,
}

/// A stored control result.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredControlResult {
    /// Increasing id.
    pub id: i64,
    /// As submitted.
    pub result: NewControlResult,
    /// Who recorded it.
    pub recorded_by: String,
    /// When (UTC).
    pub recorded_at: String,
}

/// What recording did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// Stored under this id.
    New(i64),
    /// The same submission was already stored under this id; nothing changed.
    Duplicate(i64),
}

impl Recorded {
    /// The id of the stored result.
    pub fn id(self) -> i64 {
        match self {
            Recorded::New(id) | Recorded::Duplicate(id) => id,
        }
    }

    /// `recorded` or `duplicate`.
    pub fn status(self) -> RecordStatus {
        match self {
            Recorded::New(_) => RecordStatus::Recorded,
            Recorded::Duplicate(_) => RecordStatus::Duplicate,
        }
    }
}

pub(crate) const COLUMNS: &str =
    "id, submission_id, declaration_id, schema_version, outcome, fraud, \
     critical_fraud, payload_json, source, recorded_by, recorded_at";

fn read_result(row: &Row) -> Result<StoredControlResult, DbError> {
    let fraud: Option<bool> = row.get(5)?;
    let critical: Option<u8> = row.get(6)?;
    Ok(StoredControlResult {
        id: row.get(0)?,
        result: NewControlResult {
            submission_id: row.get(1)?,
            declaration_id: row.get(2)?,
            schema_version: row.get(3)?,
            outcome: row.get(4)?,
            label: fraud
                .zip(critical)
                .map(|(fraud, critical)| ControlLabel { fraud, critical }),
            payload_json: row.get(7)?,
            source: row.get(8)?,
        },
        recorded_by: row.get(9)?,
        recorded_at: row.get(10)?,
    })
}

impl Store {
    /// The control results `sql` selects ([`COLUMNS`]).
    fn read_results(
        &self,
        what: impl FnOnce() -> String,
        sql: &str,
        params: &[&dyn crate::sql::ToParam],
    ) -> Result<Vec<StoredControlResult>, StoreError> {
        self.read(|exec| exec.query(sql, params)?.iter().map(read_result).collect())
            .ctx(what)
    }
}

impl Controls for Store {
    fn record_control_result(&mut self, result: &NewControlResult) -> Result<Recorded, StoreError> {
        check_json("control result", &result.payload_json)?;
        let id = &result.submission_id;
        let what = || format!("recording control result '{id}'");
        let digest = sha256_hex(result.payload_json.as_bytes());
        self.write(Lock::Writers, what, |exec, actor| {
            let existing = exec
                .query_opt(
                    "SELECT id, payload_sha256, declaration_id FROM control_results
                     WHERE submission_id = $1",
                    &[id],
                )
                .and_then(|row| {
                    row.map(|row| {
                        Ok::<(i64, String, String), DbError>((
                            row.get(0)?,
                            row.get(1)?,
                            row.get(2)?,
                        ))
                    })
                    .transpose()
                })
                .ctx(what)?;
            if let Some((stored_id, stored_digest, declaration)) = existing {
                if stored_digest == digest {
                    return Ok(Recorded::Duplicate(stored_id));
                }
                return Err(StoreError::SubmissionConflict {
                    submission_id: id.clone(),
                    stored_id,
                    declaration_id: declaration,
                });
            }
            let items: i64 = exec
                .value(
                    "SELECT count(*) FROM declaration_items WHERE declaration_id = $1",
                    &[&result.declaration_id],
                )
                .ctx(what)?;
            if items == 0 {
                return Err(StoreError::UnknownDeclaration {
                    submission_id: id.clone(),
                    declaration_id: result.declaration_id.clone(),
                });
            }
            let dialect = exec.dialect();
            let new_id: i64 = exec
                .value(
                    &format!(
                        "INSERT INTO control_results (submission_id, declaration_id,
                            schema_version, outcome, fraud, critical_fraud, payload_json,
                            payload_sha256, source, recorded_by, recorded_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {})
                         RETURNING id",
                        dialect.now()
                    ),
                    &[
                        id,
                        &result.declaration_id,
                        &result.schema_version,
                        &result.outcome,
                        &result.label.map(|l| l.fraud),
                        &result.label.map(|l| l.critical),
                        &result.payload_json,
                        &digest,
                        &result.source,
                        &actor,
                    ],
                )
                .ctx(what)?;
            let mut labelled = 0;
            if let Some(label) = result.label {
                // Raise each item's label to at least this one; never lower it.
                let greatest = dialect.greatest();
                labelled = exec
                    .execute(
                        &format!(
                            "UPDATE declaration_items
                             SET fraud = {greatest}(coalesce(fraud, 0), $2),
                                 critical_fraud = {greatest}(coalesce(critical_fraud, 0), $3),
                                 labelled_at = {}, label_source = $4, label_line = NULL
                             WHERE declaration_id = $1
                               AND (fraud IS NULL OR fraud < $2 OR critical_fraud < $3)",
                            dialect.now()
                        ),
                        &[
                            &result.declaration_id,
                            &label.fraud,
                            &label.critical,
                            &format!("control result {new_id}"),
                        ],
                    )
                    .ctx(what)?;
            }
            let detail = serde_json::json!({
                "result": new_id, "submission_id": id, "outcome": result.outcome,
                "source": result.source, "items_labelled": labelled
            })
            .to_string();
            insert_audit(
                exec,
                actor,
                "control_result",
                &result.declaration_id,
                &detail,
            )?;
            Ok(Recorded::New(new_id))
        })
    }

    fn control_results_for(
        &self,
        declaration_id: &str,
    ) -> Result<Vec<StoredControlResult>, StoreError> {
        self.read_results(
            || format!("reading control results of '{declaration_id}'"),
            &format!("SELECT {COLUMNS} FROM control_results WHERE declaration_id = $1 ORDER BY id"),
            &[&declaration_id],
        )
    }

    fn control_results(&self) -> Result<Vec<StoredControlResult>, StoreError> {
        self.read_results(
            || "reading control results".to_string(),
            &format!("SELECT {COLUMNS} FROM control_results ORDER BY id"),
            &[],
        )
    }

    fn record_foreign_results(
        &mut self,
        document: &crate::ForeignDocument,
    ) -> Result<crate::ForeignImport, StoreError> {
        self.store_foreign_document(document)
    }

    fn foreign_results(&self) -> Result<Vec<crate::StoredForeignResult>, StoreError> {
        self.read_foreign_results()
    }
}
