//! Control results on PostgreSQL (see `crate::controls`): append-only, idempotent by
//! submission id, raising the declaration's item labels.

use borderlens_domain::ControlLabel;
use postgres::Row;

use super::audit::insert_audit_prepared;
use super::{check_json, prepared, write_tx, PgStore, NOW};
use crate::controls::{sha256, COLUMNS};
use crate::error::Context;
use crate::{NewControlResult, Recorded, StoreError, StoredControlResult};

fn read_result(row: &Row) -> Result<StoredControlResult, postgres::Error> {
    let fraud: Option<i64> = row.try_get(5)?;
    let critical: Option<i64> = row.try_get(6)?;
    Ok(StoredControlResult {
        id: row.try_get(0)?,
        result: NewControlResult {
            submission_id: row.try_get(1)?,
            declaration_id: row.try_get(2)?,
            schema_version: row.try_get(3)?,
            outcome: row.try_get(4)?,
            label: fraud.zip(critical).map(|(fraud, critical)| ControlLabel {
                fraud: fraud == 1,
                critical: u8::try_from(critical).unwrap_or(2),
            }),
            payload_json: row.try_get(7)?,
            source: row.try_get(8)?,
        },
        recorded_by: row.try_get(9)?,
        recorded_at: row.try_get(10)?,
    })
}

impl PgStore {
    /// See [`Store::record_control_result`](crate::Store::record_control_result).
    pub fn record_control_result(
        &mut self,
        result: &NewControlResult,
    ) -> Result<Recorded, StoreError> {
        check_json("control result", &result.payload_json)?;
        let actor = self.actor.clone();
        let id = &result.submission_id;
        let what = || format!("recording control result '{id}'");
        let digest = sha256(&result.payload_json);
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let statements = &self.statements;
        let find = prepared(
            statements,
            &mut tx,
            "SELECT id, payload_sha256, declaration_id FROM control_results
             WHERE submission_id = $1",
        )
        .ctx(what)?;
        let existing: Option<(i64, String, String)> = tx
            .query_opt(&find, &[id])
            .and_then(|row| {
                row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
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
        let count = prepared(
            statements,
            &mut tx,
            "SELECT count(*) FROM declaration_items WHERE declaration_id = $1",
        )
        .ctx(what)?;
        let items: i64 = tx
            .query_one(&count, &[&result.declaration_id])
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        if items == 0 {
            return Err(StoreError::UnknownDeclaration {
                submission_id: id.clone(),
                declaration_id: result.declaration_id.clone(),
            });
        }
        let fraud = result.label.map(|l| i64::from(l.fraud));
        let critical = result.label.map(|l| i64::from(l.critical));
        let insert = prepared(
            statements,
            &mut tx,
            &format!(
                "INSERT INTO control_results (submission_id, declaration_id, schema_version,
                        outcome, fraud, critical_fraud, payload_json, payload_sha256, source,
                        recorded_by, recorded_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, {NOW})
                     RETURNING id"
            ),
        )
        .ctx(what)?;
        let new_id: i64 = tx
            .query_one(
                &insert,
                &[
                    id,
                    &result.declaration_id,
                    &result.schema_version,
                    &result.outcome,
                    &fraud,
                    &critical,
                    &result.payload_json,
                    &digest,
                    &result.source,
                    &actor,
                ],
            )
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        let mut labelled = 0;
        if let (Some(fraud), Some(critical)) = (fraud, critical) {
            // Raise each item's label to at least this one; never lower it.
            let update = prepared(
                statements,
                &mut tx,
                &format!(
                    "UPDATE declaration_items
                         SET fraud = greatest(coalesce(fraud, 0), $2),
                             critical_fraud = greatest(coalesce(critical_fraud, 0), $3),
                             labelled_at = {NOW}, label_source = $4, label_line = NULL
                         WHERE declaration_id = $1
                           AND (fraud IS NULL OR fraud < $2 OR critical_fraud < $3)"
                ),
            )
            .ctx(what)?;
            labelled = tx
                .execute(
                    &update,
                    &[
                        &result.declaration_id,
                        &fraud,
                        &critical,
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
        insert_audit_prepared(
            &mut tx,
            statements,
            &actor,
            "control_result",
            &result.declaration_id,
            &detail,
        )?;
        tx.commit().ctx(what)?;
        Ok(Recorded::New(new_id))
    }

    /// See [`Store::control_results_for`](crate::Store::control_results_for).
    pub fn control_results_for(
        &self,
        declaration_id: &str,
    ) -> Result<Vec<StoredControlResult>, StoreError> {
        let what = || format!("reading control results of '{declaration_id}'");
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM control_results WHERE declaration_id = $1 ORDER BY id"
                ),
                &[&declaration_id],
            )
            .ctx(what)?;
        rows.iter()
            .map(read_result)
            .collect::<Result<_, _>>()
            .ctx(what)
    }

    /// See [`Store::control_results`](crate::Store::control_results).
    pub fn control_results(&self) -> Result<Vec<StoredControlResult>, StoreError> {
        let what = || "reading control results".to_string();
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!("SELECT {COLUMNS} FROM control_results ORDER BY id"),
                &[],
            )
            .ctx(what)?;
        rows.iter()
            .map(read_result)
            .collect::<Result<_, _>>()
            .ctx(what)
    }
}
