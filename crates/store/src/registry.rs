//! The model registry: numbered versions of opaque model bytes with JSON metadata, and the
//! scores of each version per item, with their top reasons.

use borderlens_domain::ItemKey;

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Row};
use crate::{check_json, key_text, sha256_hex, Lock, Registry, Store, StoreError};

/// A stored model version, bytes included.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredModel {
    /// The model name.
    pub name: String,
    /// Version, from 1, per name.
    pub version: u32,
    /// Metadata as saved (valid JSON).
    pub metadata_json: String,
    /// The model, opaque to the store.
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, lowercase hex.
    pub sha256: String,
    /// When it was saved (UTC, ISO 8601).
    pub created_at: String,
}

/// A stored model version without its bytes, as listed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ModelInfo {
    /// The model name.
    pub name: String,
    /// Version, from 1, per name.
    pub version: u32,
    /// Metadata as saved (valid JSON).
    pub metadata_json: String,
    /// Size of the model bytes.
    pub size_bytes: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// When it was saved (UTC, ISO 8601).
    pub created_at: String,
}

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

impl Registry for Store {
    fn save_model(
        &mut self,
        name: &str,
        metadata_json: &str,
        bytes: &[u8],
    ) -> Result<u32, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "model name".to_string(),
                reason: "empty".to_string(),
            });
        }
        check_json("model metadata", metadata_json)?;
        let sha256 = sha256_hex(bytes);
        let what = || format!("saving model '{name}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let version: u32 = exec
                .value(
                    "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = $1",
                    &[&name],
                )
                .ctx(what)?;
            exec.execute(
                &format!(
                    "INSERT INTO models (name, version, metadata_json, bytes, sha256, created_at)
                     VALUES ($1, $2, $3, $4, $5, {})",
                    exec.dialect().now()
                ),
                &[&name, &version, &metadata_json, &bytes, &sha256],
            )
            .ctx(what)?;
            let detail = format!(
                r#"{{"version":{version},"size_bytes":{},"sha256":"{sha256}"}}"#,
                bytes.len()
            );
            let subject = format!("{name}@{version}");
            insert_audit(exec, actor, "save_model", &subject, &detail)?;
            Ok(version)
        })
    }

    fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredModel>, StoreError> {
        self.read(|exec| {
            exec.query_opt(
                "SELECT name, version, metadata_json, bytes, sha256, created_at FROM models
                 WHERE name = $1 AND (CAST($2 AS BIGINT) IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1",
                &[&name, &version],
            )?
            .map(|row| {
                Ok(StoredModel {
                    name: row.get(0)?,
                    version: row.get(1)?,
                    metadata_json: row.get(2)?,
                    bytes: row.get(3)?,
                    sha256: row.get(4)?,
                    created_at: row.get(5)?,
                })
            })
            .transpose()
        })
        .ctx(|| match version {
            Some(version) => format!("loading model '{name}' version {version}"),
            None => format!("loading the latest version of model '{name}'"),
        })
    }

    fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT name, version, metadata_json, CAST(length(bytes) AS BIGINT), sha256,
                     created_at
                 FROM models ORDER BY name, version",
                &[],
            )?
            .iter()
            .map(|row| {
                Ok(ModelInfo {
                    name: row.get(0)?,
                    version: row.get(1)?,
                    metadata_json: row.get(2)?,
                    size_bytes: row.get(3)?,
                    sha256: row.get(4)?,
                    created_at: row.get(5)?,
                })
            })
            .collect()
        })
        .ctx(|| "listing models".to_string())
    }

    fn save_scores_with_reasons(
        &mut self,
        model: &str,
        version: u32,
        scores: &[(ItemKey, f64, Vec<String>)],
    ) -> Result<usize, StoreError> {
        let subject = format!("{model}@{version}");
        let what = || format!("saving scores of model {subject}");
        self.write(Lock::Writers, what, |exec, actor| {
            let known: bool = exec
                .value(
                    "SELECT EXISTS (SELECT 1 FROM models WHERE name = $1 AND version = $2)",
                    &[&model, &version],
                )
                .ctx(what)?;
            if !known {
                return Err(StoreError::UnknownModel {
                    name: model.to_string(),
                    version,
                });
            }
            let now: String = exec
                .value(&format!("SELECT {}", exec.dialect().now()), &[])
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
                exec.execute(
                    "INSERT INTO scores (declaration_id, item_no, model_name, model_version,
                         score, scored_at, reasons_json)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)
                     ON CONFLICT (declaration_id, item_no, model_name, model_version)
                     DO UPDATE SET score = excluded.score, scored_at = excluded.scored_at,
                         reasons_json = excluded.reasons_json",
                    &[
                        &key.declaration_id,
                        &key.item_no,
                        &model,
                        &version,
                        score,
                        &now,
                        &reasons_json,
                    ],
                )
                .map_err(|source| {
                    if source.is_foreign_key_violation() {
                        // The model exists (checked above): the item does not.
                        StoreError::UnknownItem { key: key_text(key) }
                    } else {
                        StoreError::Sql {
                            what: format!("{}: item {}", what(), key_text(key)),
                            source,
                        }
                    }
                })?;
            }
            let detail = format!(r#"{{"scores":{}}}"#, scores.len());
            insert_audit(exec, actor, "save_scores", &subject, &detail)?;
            Ok(scores.len())
        })
    }

    fn scores_for(&self, key: &ItemKey) -> Result<Vec<StoredScore>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT model_name, model_version, score, scored_at, reasons_json FROM scores
                 WHERE declaration_id = $1 AND item_no = $2
                 ORDER BY model_name, model_version",
                &[&key.declaration_id, &key.item_no],
            )?
            .iter()
            .map(read_score)
            .collect()
        })
        .ctx(|| format!("reading the scores of item {}", key_text(key)))
    }
}

fn read_score(row: &Row) -> Result<StoredScore, DbError> {
    Ok(StoredScore {
        model: row.get(0)?,
        version: row.get(1)?,
        score: row.get(2)?,
        scored_at: row.get(3)?,
        reasons: row
            .get::<Option<String>>(4)?
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default(),
    })
}
