//! The model registry on PostgreSQL (see `crate::models`).

use sha2::{Digest, Sha256};

use super::audit::insert_audit;
use super::{big, check_json, small, write_tx, PgStore, NOW};
use crate::error::Context;
use crate::{from_sql_int, ModelInfo, StoreError, StoredModel};

impl PgStore {
    /// See [`Store::save_model`](crate::Store::save_model).
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
        check_json("model metadata", metadata_json)?;
        let sha256: String = Sha256::digest(bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let what = || format!("saving model '{name}'");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let version: i64 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = $1",
                &[&name],
            )
            .and_then(|row| row.try_get(0))
            .ctx(what)?;
        tx.execute(
            &format!(
                "INSERT INTO models (name, version, metadata_json, bytes, sha256, created_at)
                 VALUES ($1, $2, $3, $4, $5, {NOW})"
            ),
            &[&name, &version, &metadata_json, &bytes, &sha256],
        )
        .ctx(what)?;
        let detail = format!(
            r#"{{"version":{version},"size_bytes":{},"sha256":"{sha256}"}}"#,
            bytes.len()
        );
        insert_audit(
            &mut tx,
            &actor,
            "save_model",
            &format!("{name}@{version}"),
            &detail,
        )?;
        tx.commit().ctx(what)?;
        Ok(small(version))
    }

    /// See [`Store::load_model`](crate::Store::load_model).
    pub fn load_model(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<StoredModel>, StoreError> {
        let what = || match version {
            Some(version) => format!("loading model '{name}' version {version}"),
            None => format!("loading the latest version of model '{name}'"),
        };
        let row = self
            .client
            .borrow_mut()
            .query_opt(
                "SELECT name, version, metadata_json, bytes, sha256, created_at FROM models
                 WHERE name = $1 AND ($2::bigint IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1",
                &[&name, &version.map(big)],
            )
            .ctx(what)?;
        row.map(|row| -> Result<StoredModel, postgres::Error> {
            Ok(StoredModel {
                name: row.try_get(0)?,
                version: small(row.try_get(1)?),
                metadata_json: row.try_get(2)?,
                bytes: row.try_get(3)?,
                sha256: row.try_get(4)?,
                created_at: row.try_get(5)?,
            })
        })
        .transpose()
        .ctx(what)
    }

    /// See [`Store::list_models`](crate::Store::list_models).
    pub fn list_models(&self) -> Result<Vec<ModelInfo>, StoreError> {
        let what = || "listing models".to_string();
        let rows = self
            .client
            .borrow_mut()
            .query(
                "SELECT name, version, metadata_json, octet_length(bytes)::bigint, sha256,
                     created_at
                 FROM models ORDER BY name, version",
                &[],
            )
            .ctx(what)?;
        rows.iter()
            .map(|row| {
                Ok(ModelInfo {
                    name: row.try_get(0)?,
                    version: small(row.try_get(1)?),
                    metadata_json: row.try_get(2)?,
                    size_bytes: from_sql_int(row.try_get(3)?),
                    sha256: row.try_get(4)?,
                    created_at: row.try_get(5)?,
                })
            })
            .collect::<Result<_, postgres::Error>>()
            .ctx(what)
    }
}
