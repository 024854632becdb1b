//! Scores on PostgreSQL (see `crate::scores`).

use borderlens_domain::ItemKey;
use postgres::error::SqlState;

use super::audit::insert_audit;
use super::{big, small, write_tx, PgStore, NOW};
use crate::error::Context;
use crate::{key_text, StoreError, StoredScore};

impl PgStore {
    /// See [`Store::save_scores`](crate::Store::save_scores).
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

    /// See [`Store::save_scores_with_reasons`](crate::Store::save_scores_with_reasons).
    pub fn save_scores_with_reasons(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64, Vec<String>)],
    ) -> Result<usize, StoreError> {
        let subject = format!("{model}@{version}");
        let what = || format!("saving scores of model {subject}");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let known: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM models WHERE name = $1 AND version = $2)",
                &[&model, &big(version)],
            )
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        if !known {
            return Err(StoreError::UnknownModel {
                name: model.to_string(),
                version,
            });
        }
        let now: String = tx
            .query_one(&format!("SELECT {NOW}"), &[])
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        let upsert = tx
            .prepare(
                "INSERT INTO scores (declaration_id, item_no, model_name, model_version,
                     score, scored_at, reasons_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
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
                Some(
                    serde_json::to_string(reasons).map_err(|e| StoreError::Invalid {
                        what: format!("{}: reasons of item {}", what(), key_text(key)),
                        reason: e.to_string(),
                    })?,
                )
            };
            tx.execute(
                &upsert,
                &[
                    &key.declaration_id,
                    &big(key.item_no),
                    &model,
                    &big(version),
                    score,
                    &now,
                    &reasons_json,
                ],
            )
            .map_err(|source| {
                if source.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) {
                    // The model exists (checked above): the item does not.
                    StoreError::UnknownItem { key: key_text(key) }
                } else {
                    StoreError::Postgres {
                        what: format!("{}: item {}", what(), key_text(key)),
                        source,
                    }
                }
            })?;
        }
        let detail = format!(r#"{{"scores":{}}}"#, scores.len());
        insert_audit(&mut tx, &actor, "save_scores", &subject, &detail)?;
        tx.commit().ctx(what)?;
        Ok(scores.len())
    }

    /// See [`Store::scores_for`](crate::Store::scores_for).
    pub fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError> {
        let what = || format!("reading the scores of item {}", key_text(key));
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT model_name, model_version, score, scored_at, reasons_json FROM scores
                 WHERE declaration_id = $1 AND item_no = $2
                 ORDER BY model_name, model_version",
                &[&key.declaration_id, &big(key.item_no)],
            )
            .ctx(what)?;
        rows.iter()
            .map(|row| {
                Ok(StoredScore {
                    model: row.try_get(0)?,
                    version: small(row.try_get(1)?),
                    score: row.try_get(2)?,
                    scored_at: row.try_get(3)?,
                    reasons: row
                        .try_get::<_, Option<String>>(4)?
                        .and_then(|text| serde_json::from_str(&text).ok())
                        .unwrap_or_default(),
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx(what)
    }
}
