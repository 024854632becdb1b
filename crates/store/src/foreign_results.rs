//! Foreign control results (issue 17): results another administration shared in an anonymised
//! exchange document, kept apart from this store's own results. Their declaration ids are the
//! sender's keyed pseudonyms, which name no declaration here, so they label no item; they are
//! kept for pooled statistics, with their provenance (sender, format and form schema versions,
//! when the sender made the document, the file and its digest). Append-only; a document is
//! stored whole or not at all, and importing it again stores nothing twice.
//!
//! The store knows nothing of the exchange format: a foreign result is text it is given.

use borderlens_domain::ControlLabel;

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Row};
use crate::{check_json, sha256_hex, Lock, Store, StoreError};

/// One result of a foreign document, as the sender gave it (ids are its pseudonyms).
#[derive(Clone, Debug, PartialEq)]
pub struct NewForeignResult {
    /// The sender's pseudonym of the submission; unique per sender.
    pub submission_id: String,
    /// The sender's pseudonym of the declaration.
    pub declaration_id: String,
    /// Outcome code.
    pub outcome: String,
    /// The label the result gives, when it gives one.
    pub label: Option<ControlLabel>,
    /// The date of the control (`YYYY-MM-DD`).
    pub inspected_on: String,
    /// The result's answers as JSON, as validated.
    pub values_json: String,
    /// The declaration's context as JSON (origin, route, selection probability), when given.
    pub context_json: Option<String>,
}

/// A foreign document to store: its provenance and its results.
#[derive(Clone, Debug, PartialEq)]
pub struct ForeignDocument {
    /// The sender's code.
    pub sender: String,
    /// The exchange format version the sender wrote.
    pub format_version: u32,
    /// The form schema version the sender recorded with.
    pub schema_version: String,
    /// When the sender made the document (RFC 3339).
    pub generated_at: String,
    /// Where it was read from (a file name).
    pub source: String,
    /// SHA-256 of the document's bytes.
    pub document_sha256: String,
    /// Its results.
    pub results: Vec<NewForeignResult>,
}

/// A stored foreign result with its provenance.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredForeignResult {
    /// Increasing id.
    pub id: i64,
    /// The sender's code.
    pub sender: String,
    /// The exchange format version of its document.
    pub format_version: u32,
    /// The form schema version.
    pub schema_version: String,
    /// When the sender made its document.
    pub generated_at: String,
    /// The file it was read from.
    pub source: String,
    /// SHA-256 of that document.
    pub document_sha256: String,
    /// The result.
    pub result: NewForeignResult,
    /// Who imported it.
    pub imported_by: String,
    /// When (UTC).
    pub imported_at: String,
}

/// What storing a foreign document did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForeignImport {
    /// Results stored now.
    pub recorded: usize,
    /// Results already stored from an earlier import (same sender, pseudonym and values).
    pub duplicates: usize,
}

const COLUMNS: &str = "id, sender, format_version, schema_version, generated_at, source, \
     document_sha256, submission_id, declaration_id, outcome, fraud, critical_fraud, \
     inspected_on, values_json, context_json, imported_by, imported_at";

fn read_result(row: &Row) -> Result<StoredForeignResult, DbError> {
    let format_version: i64 = row.get(2)?;
    let fraud: Option<bool> = row.get(10)?;
    let critical: Option<u8> = row.get(11)?;
    Ok(StoredForeignResult {
        id: row.get(0)?,
        sender: row.get(1)?,
        format_version: u32::try_from(format_version).unwrap_or(u32::MAX),
        schema_version: row.get(3)?,
        generated_at: row.get(4)?,
        source: row.get(5)?,
        document_sha256: row.get(6)?,
        result: NewForeignResult {
            submission_id: row.get(7)?,
            declaration_id: row.get(8)?,
            outcome: row.get(9)?,
            label: fraud
                .zip(critical)
                .map(|(fraud, critical)| ControlLabel { fraud, critical }),
            inspected_on: row.get(12)?,
            values_json: row.get(13)?,
            context_json: row.get(14)?,
        },
        imported_by: row.get(15)?,
        imported_at: row.get(16)?,
    })
}

/// The digest a re-import is compared by: what the sender said of the control, not when or
/// from where it was read, nor the declaration's context (which the sender computes at each
/// export and may change, e.g. an override removing the selection probability: the first one
/// stored is kept).
fn result_digest(result: &NewForeignResult) -> String {
    let mut text = String::new();
    for part in [
        result.declaration_id.as_str(),
        &result.outcome,
        &result.inspected_on,
        &result.values_json,
    ] {
        text.push_str(part);
        text.push('\0');
    }
    sha256_hex(text.as_bytes())
}

impl Store {
    pub(crate) fn store_foreign_document(
        &mut self,
        document: &ForeignDocument,
    ) -> Result<ForeignImport, StoreError> {
        let what = || {
            format!(
                "storing foreign results of '{}' from '{}'",
                document.sender, document.source
            )
        };
        if document.sender.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "foreign document".to_string(),
                reason: "its sender is empty".to_string(),
            });
        }
        for (i, result) in document.results.iter().enumerate() {
            check_json(&format!("results[{i}] values"), &result.values_json)?;
            if let Some(context) = &result.context_json {
                check_json(&format!("results[{i}] context"), context)?;
            }
        }
        self.write(Lock::Writers, what, |exec, actor| {
            let mut report = ForeignImport {
                recorded: 0,
                duplicates: 0,
            };
            for (i, result) in document.results.iter().enumerate() {
                let digest = result_digest(result);
                let stored: Option<(i64, String)> = exec
                    .query_opt(
                        "SELECT id, result_sha256 FROM foreign_results
                         WHERE sender = $1 AND submission_id = $2",
                        &[&document.sender, &result.submission_id],
                    )
                    .and_then(|row| {
                        row.map(|row| Ok::<_, DbError>((row.get(0)?, row.get(1)?)))
                            .transpose()
                    })
                    .ctx(what)?;
                match stored {
                    Some((_, stored_digest)) if stored_digest == digest => {
                        report.duplicates += 1;
                        continue;
                    }
                    Some((stored_id, _)) => {
                        return Err(StoreError::Invalid {
                            what: format!("foreign document '{}'", document.source),
                            reason: format!(
                                "results[{i}]: {} already sent submission {} with other \
                                 values (stored as foreign result {stored_id}); nothing of \
                                 this document was kept",
                                document.sender, result.submission_id
                            ),
                        });
                    }
                    None => {}
                }
                exec.execute(
                    &format!(
                        "INSERT INTO foreign_results (sender, format_version, schema_version,
                            generated_at, source, document_sha256, submission_id,
                            declaration_id, outcome, fraud, critical_fraud, inspected_on,
                            values_json, context_json, result_sha256, imported_by, imported_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                            $15, $16, {})",
                        exec.dialect().now()
                    ),
                    &[
                        &document.sender,
                        &i64::from(document.format_version),
                        &document.schema_version,
                        &document.generated_at,
                        &document.source,
                        &document.document_sha256,
                        &result.submission_id,
                        &result.declaration_id,
                        &result.outcome,
                        &result.label.map(|l| l.fraud),
                        &result.label.map(|l| l.critical),
                        &result.inspected_on,
                        &result.values_json,
                        &result.context_json,
                        &digest,
                        &actor,
                    ],
                )
                .ctx(what)?;
                report.recorded += 1;
            }
            let detail = serde_json::json!({
                "sender": document.sender, "source": document.source,
                "document_sha256": document.document_sha256,
                "format_version": document.format_version,
                "schema_version": document.schema_version,
                "recorded": report.recorded, "duplicates": report.duplicates,
            })
            .to_string();
            insert_audit(exec, actor, "foreign_results", &document.sender, &detail)?;
            Ok(report)
        })
    }

    pub(crate) fn read_foreign_results(&self) -> Result<Vec<StoredForeignResult>, StoreError> {
        self.read(|exec| {
            exec.query(
                &format!("SELECT {COLUMNS} FROM foreign_results ORDER BY id"),
                &[],
            )?
            .iter()
            .map(read_result)
            .collect()
        })
        .ctx(|| "reading foreign results".to_string())
    }
}
