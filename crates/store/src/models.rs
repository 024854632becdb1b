//! Model registry: numbered versions of opaque model bytes with JSON metadata.

use rusqlite::{params, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::{check_json, from_sql_int, sql_int, Store, StoreError, NOW};

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

impl Store {
    /// Saves a new version of model `name` (1 for the first, then 2, 3...) and returns it.
    /// `metadata_json` must be valid JSON. Writes a `save_model` audit entry.
    pub fn save_model(
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
        check_json(&self.conn, "model metadata", metadata_json)?;
        let sha256: String = Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let what = || format!("saving model '{name}'");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let version: u32 = tx
            .query_row(
                "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?1",
                [name],
                |row| row.get(0),
            )
            .ctx(what)?;
        tx.execute(
            &format!(
                "INSERT INTO models (name, version, metadata_json, bytes, sha256, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, {NOW})"
            ),
            params![name, version, metadata_json, bytes, sha256],
        )
        .ctx(what)?;
        let detail: String = tx
            .query_row(
                "SELECT json_object('version', ?1, 'size_bytes', ?2, 'sha256', ?3)",
                params![version, sql_int(bytes.len() as u64), sha256],
                |row| row.get(0),
            )
            .ctx(what)?;
        insert_audit(
            &tx,
            &actor,
            "save_model",
            &format!("{name}@{version}"),
            &detail,
        )?;
        tx.commit().ctx(what)?;
        Ok(version)
    }

    /// Loads version `version` of model `name`, or its latest version when `version` is `None`.
    /// `None` when there is no such model or version.
    pub fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredModel>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT name, version, metadata_json, bytes, sha256, created_at FROM models
                 WHERE name = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY version DESC LIMIT 1",
            )
            .and_then(|mut statement| {
                statement
                    .query_row(params![name, version], |row| {
                        Ok(StoredModel {
                            name: row.get(0)?,
                            version: row.get(1)?,
                            metadata_json: row.get(2)?,
                            bytes: row.get(3)?,
                            sha256: row.get(4)?,
                            created_at: row.get(5)?,
                        })
                    })
                    .optional()
            })
            .ctx(|| match version {
                Some(version) => format!("loading model '{name}' version {version}"),
                None => format!("loading the latest version of model '{name}'"),
            })
    }

    /// Every stored model version (without bytes), by name then version.
    pub fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError> {
        let what = || "listing models".to_string();
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT name, version, metadata_json, length(bytes), sha256, created_at
                 FROM models ORDER BY name, version",
            )
            .ctx(what)?;
        let rows = statement
            .query_map([], |row| {
                Ok(ModelInfo {
                    name: row.get(0)?,
                    version: row.get(1)?,
                    metadata_json: row.get(2)?,
                    size_bytes: from_sql_int(row.get(3)?),
                    sha256: row.get(4)?,
                    created_at: row.get(5)?,
                })
            })
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }
}
