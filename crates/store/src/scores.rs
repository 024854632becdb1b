//! Scores of items by model versions.

use borderlens_domain::ItemKey;
use rusqlite::{params, ErrorCode, TransactionBehavior};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::{key_text, sql_int, Store, StoreError, NOW};

/// A score of an item by one model version.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredScore {
    /// The model name.
    pub model: String,
    /// The model version.
    pub version: u32,
    /// The score.
    pub score: f64,
    /// When it was saved (UTC, ISO 8601).
    pub scored_at: String,
    /// Its top reasons in words, largest contribution first (empty when saved without).
    pub reasons: Vec<String>,
}

impl Store {
    /// Saves `scores` of stored items by model `model` version `version`, in one transaction,
    /// replacing earlier scores of that model version for the same items. Fails, keeping
    /// nothing, when the model version or an item is not stored or a score is not finite.
    /// Writes a `save_scores` audit entry. Returns the number of scores saved.
    pub fn save_scores(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64)],
    ) -> Result<usize, StoreError> {
        let with_reasons: Vec<(ItemKey, f64, Vec<String>)> = scores
            .iter()
            .map(|(key, score)| (key.clone(), *score, Vec::new()))
            .collect();
        self.save_scores_with_reasons(model, version, &with_reasons)
    }

    /// [`Store::save_scores`], each score with its top reasons in words (kept as a JSON array;
    /// none is kept as NULL).
    pub fn save_scores_with_reasons(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64, Vec<String>)],
    ) -> Result<usize, StoreError> {
        let subject = format!("{model}@{version}");
        let what = || format!("saving scores of model {subject}");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let known: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM models WHERE name = ?1 AND version = ?2)",
                params![model, version],
                |row| row.get(0),
            )
            .ctx(what)?;
        if !known {
            return Err(StoreError::UnknownModel {
                name: model.to_string(),
                version,
            });
        }
        let now: String = tx
            .query_row(&format!("SELECT {NOW}"), [], |row| row.get(0))
            .ctx(what)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO scores (declaration_id, item_no, model_name, model_version,
                         score, scored_at, reasons_json)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (declaration_id, item_no, model_name, model_version)
                     DO UPDATE SET score = excluded.score, scored_at = excluded.scored_at,
                         reasons_json = excluded.reasons_json",
                )
                .ctx(what)?;
            for (key, score, reasons) in scores {
                if !score.is_finite() {
                    return Err(StoreError::InvalidScore {
                        key: key_text(key),
                        score: *score,
                    });
                }
                let reasons_json = if reasons.is_empty() {
                    None
                } else {
                    Some(serde_json::to_string(reasons).map_err(|e| StoreError::Sql {
                        what: format!("{}: reasons of item {}", what(), key_text(key)),
                        source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
                    })?)
                };
                upsert
                    .execute(params![
                        key.declaration_id,
                        key.item_no,
                        model,
                        version,
                        score,
                        now,
                        reasons_json
                    ])
                    .map_err(|source| match source.sqlite_error_code() {
                        // The model exists (checked above): the item does not.
                        Some(ErrorCode::ConstraintViolation) => {
                            StoreError::UnknownItem { key: key_text(key) }
                        }
                        _ => StoreError::Sql {
                            what: format!("{}: item {}", what(), key_text(key)),
                            source,
                        },
                    })?;
            }
        }
        let detail: String = tx
            .query_row(
                "SELECT json_object('scores', ?1)",
                [sql_int(scores.len() as u64)],
                |row| row.get(0),
            )
            .ctx(what)?;
        insert_audit(&tx, &actor, "save_scores", &subject, &detail)?;
        tx.commit().ctx(what)?;
        Ok(scores.len())
    }

    /// Every stored score of the item `key`, by model name then version.
    pub fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError> {
        let what = || format!("reading the scores of item {}", key_text(key));
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT model_name, model_version, score, scored_at, reasons_json FROM scores
                 WHERE declaration_id = ?1 AND item_no = ?2
                 ORDER BY model_name, model_version",
            )
            .ctx(what)?;
        let rows = statement
            .query_map(params![key.declaration_id, key.item_no], |row| {
                Ok(StoredScore {
                    model: row.get(0)?,
                    version: row.get(1)?,
                    score: row.get(2)?,
                    scored_at: row.get(3)?,
                    reasons: row
                        .get::<_, Option<String>>(4)?
                        .and_then(|text| serde_json::from_str(&text).ok())
                        .unwrap_or_default(),
                })
            })
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }
}
