//! Selection policies, decisions and overrides on PostgreSQL (see `crate::selection`).

use postgres::Row;
use sha2::{Digest, Sha256};

use super::audit::insert_audit;
use super::{big, check_json, small, write_tx, PgStore, NOW};
use crate::error::Context;
use crate::selection::DECISION_COLUMNS;
use crate::{NewDecision, StoreError, StoredDecision};

fn read_decision(row: &Row) -> Result<StoredDecision, postgres::Error> {
    let reasons_json: String = row.try_get(12)?;
    Ok(StoredDecision {
        id: row.try_get(0)?,
        decision: NewDecision {
            declaration_id: row.try_get(1)?,
            batch: row.try_get(2)?,
            policy_name: row.try_get(3)?,
            policy_version: small(row.try_get(4)?),
            model_name: row.try_get(5)?,
            model_version: row.try_get::<_, Option<i64>>(6)?.map(small),
            score: row.try_get(7)?,
            pi: row.try_get(8)?,
            stratum: row.try_get(9)?,
            lane: row.try_get(10)?,
            source: row.try_get(11)?,
            reasons: serde_json::from_str(&reasons_json).unwrap_or_default(),
        },
        overrides: row.try_get(13)?,
        override_reason: row.try_get(14)?,
        actor: row.try_get(15)?,
        at: row.try_get(16)?,
    })
}

impl PgStore {
    /// See [`Store::save_policy`](crate::Store::save_policy).
    pub fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "policy name".into(),
                reason: "empty".into(),
            });
        }
        check_json("policy", body_json)?;
        let sha256: String = Sha256::digest(body_json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let what = || format!("saving policy '{name}'");
        let actor = self.actor.clone();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let latest: Option<(i64, String)> = tx
            .query_opt(
                "SELECT version, sha256 FROM policies WHERE name = $1
                 ORDER BY version DESC LIMIT 1",
                &[&name],
            )
            .and_then(|row| {
                row.map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .transpose()
            })
            .ctx(what)?;
        if let Some((version, sha)) = &latest {
            if *sha == sha256 {
                return Ok(small(*version));
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        tx.execute(
            &format!(
                "INSERT INTO policies (name, version, body_json, sha256, created_at, created_by)
                 VALUES ($1, $2, $3, $4, {NOW}, $5)"
            ),
            &[&name, &version, &body_json, &sha256, &actor],
        )
        .ctx(what)?;
        let detail = serde_json::json!({"version": version, "sha256": sha256}).to_string();
        insert_audit(
            &mut tx,
            &actor,
            "save_policy",
            &format!("{name}@{version}"),
            &detail,
        )?;
        tx.commit().ctx(what)?;
        Ok(small(version))
    }

    /// See [`Store::load_policy`](crate::Store::load_policy).
    pub fn load_policy(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, String)>, StoreError> {
        self.client
            .borrow_mut()
            .query_opt(
                "SELECT version, body_json FROM policies
                 WHERE name = $1 AND ($2::bigint IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1",
                &[&name, &version.map(big)],
            )
            .and_then(|row| {
                row.map(|row| Ok((small(row.try_get(0)?), row.try_get(1)?)))
                    .transpose()
            })
            .ctx(|| format!("loading policy '{name}'"))
    }

    /// See [`Store::is_decided`](crate::Store::is_decided).
    pub fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError> {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM decisions
                 WHERE declaration_id = $1 AND overrides IS NULL)",
                &[&declaration_id],
            )
            .and_then(|row| row.try_get(0))
            .ctx(|| format!("looking up decisions on '{declaration_id}'"))
    }

    /// See [`Store::batch_decided`](crate::Store::batch_decided).
    pub fn batch_decided(&self, batch: &str) -> Result<bool, StoreError> {
        self.client
            .borrow_mut()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM decisions WHERE batch = $1)",
                &[&batch],
            )
            .and_then(|row| row.try_get(0))
            .ctx(|| format!("looking up batch '{batch}'"))
    }

    /// See [`Store::record_decisions`](crate::Store::record_decisions).
    pub fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError> {
        let actor = self.actor.clone();
        let what = || "recording selection decisions".to_string();
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let mut batches: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        let exists = tx
            .prepare("SELECT EXISTS (SELECT 1 FROM declaration_items WHERE declaration_id = $1)")
            .ctx(what)?;
        let decided = tx
            .prepare("SELECT EXISTS (SELECT 1 FROM decisions WHERE batch = $1)")
            .ctx(what)?;
        let decided_declaration = tx
            .prepare(
                "SELECT EXISTS (SELECT 1 FROM decisions
                 WHERE declaration_id = $1 AND overrides IS NULL)",
            )
            .ctx(what)?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version,
                    model_name, model_version, score, pi, stratum, lane, source, reasons_json,
                    actor, at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, {NOW})"
            ))
            .ctx(what)?;
        for d in decisions {
            if !batches.contains_key(d.batch.as_str()) {
                let already: bool = tx
                    .query_one(&decided, &[&d.batch])
                    .and_then(|r| r.try_get(0))
                    .ctx(what)?;
                if already {
                    return Err(StoreError::Invalid {
                        what: format!("batch '{}'", d.batch),
                        reason: "already decided; record an override to change a decision".into(),
                    });
                }
                batches.insert(&d.batch, (0, 0));
            }
            let known: bool = tx
                .query_one(&exists, &[&d.declaration_id])
                .and_then(|r| r.try_get(0))
                .ctx(what)?;
            let twice: bool = tx
                .query_one(&decided_declaration, &[&d.declaration_id])
                .and_then(|r| r.try_get(0))
                .ctx(what)?;
            if twice {
                return Err(StoreError::Invalid {
                    what: format!("decision on declaration '{}'", d.declaration_id),
                    reason: "already decided; record an override to change a decision".into(),
                });
            }
            if !known {
                return Err(StoreError::Invalid {
                    what: format!("decision on declaration '{}'", d.declaration_id),
                    reason: "no such declaration in the store".into(),
                });
            }
            if !(0.0..=1.0).contains(&d.pi) {
                return Err(StoreError::Invalid {
                    what: format!("decision on declaration '{}'", d.declaration_id),
                    reason: format!("π = {} is not a probability", d.pi),
                });
            }
            let reasons = serde_json::to_string(&d.reasons).unwrap_or_else(|_| "[]".into());
            tx.execute(
                &insert,
                &[
                    &d.declaration_id,
                    &d.batch,
                    &d.policy_name,
                    &big(d.policy_version),
                    &d.model_name,
                    &d.model_version.map(big),
                    &d.score,
                    &d.pi,
                    &d.stratum,
                    &d.lane,
                    &d.source,
                    &reasons,
                    &actor,
                ],
            )
            .ctx(|| format!("recording the decision on '{}'", d.declaration_id))?;
            let entry = batches.get_mut(d.batch.as_str()).expect("inserted above");
            entry.0 += 1;
            entry.1 += usize::from(d.lane != "green");
        }
        for (batch, (n, selected)) in &batches {
            let detail = serde_json::json!({"declarations": n, "selected": selected}).to_string();
            insert_audit(&mut tx, &actor, "select", batch, &detail)?;
        }
        tx.commit().ctx(what)?;
        Ok(decisions.len())
    }

    /// See [`Store::override_decision`](crate::Store::override_decision).
    pub fn override_decision(
        &mut self,
        declaration_id: &str,
        lane: &str,
        reason: &str,
    ) -> Result<StoredDecision, StoreError> {
        crate::selection::check_override(lane, reason)?;
        let actor = self.actor.clone();
        let what = || format!("overriding the decision on '{declaration_id}'");
        let mut tx = write_tx(self.client.get_mut()).ctx(what)?;
        let current = tx
            .query_opt(
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = $1
                     ORDER BY id DESC LIMIT 1"
                ),
                &[&declaration_id],
            )
            .and_then(|row| row.map(|row| read_decision(&row)).transpose())
            .ctx(what)?
            .ok_or_else(|| StoreError::Invalid {
                what: format!("override of '{declaration_id}'"),
                reason: "no selection decision to override: run `borderlens select` first".into(),
            })?;
        if current.decision.lane == lane {
            return Err(StoreError::Invalid {
                what: format!("override of '{declaration_id}'"),
                reason: format!("the declaration is already in the {lane} lane"),
            });
        }
        let d = &current.decision;
        let reasons = serde_json::to_string(&[format!("override: {reason}")]).unwrap_or_default();
        let stored = tx
            .query_one(
                &format!(
                    "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version,
                        model_name, model_version, score, pi, stratum, lane, source, reasons_json,
                        overrides, override_reason, actor, at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'override', $11, $12, $13,
                        $14, {NOW})
                     RETURNING {DECISION_COLUMNS}"
                ),
                &[
                    &d.declaration_id,
                    &d.batch,
                    &d.policy_name,
                    &big(d.policy_version),
                    &d.model_name,
                    &d.model_version.map(big),
                    &d.score,
                    &d.pi,
                    &d.stratum,
                    &lane,
                    &reasons,
                    &current.id,
                    &reason,
                    &actor,
                ],
            )
            .and_then(|row| read_decision(&row))
            .ctx(what)?;
        let detail = serde_json::json!({
            "from": d.lane, "to": lane, "reason": reason, "overrides": current.id
        })
        .to_string();
        insert_audit(&mut tx, &actor, "override", declaration_id, &detail)?;
        tx.commit().ctx(what)?;
        Ok(stored)
    }

    /// See [`Store::decisions_for`](crate::Store::decisions_for).
    pub fn decisions_for(&self, declaration_id: &str) -> Result<Vec<StoredDecision>, StoreError> {
        let what = || format!("reading decisions on '{declaration_id}'");
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = $1
                     ORDER BY id"
                ),
                &[&declaration_id],
            )
            .ctx(what)?;
        rows.iter()
            .map(read_decision)
            .collect::<Result<_, _>>()
            .ctx(what)
    }

    /// See [`Store::decisions`](crate::Store::decisions). The prefix is matched as SQLite's
    /// `LIKE` does it (ASCII case-insensitive, `_` matching any character).
    pub fn decisions(&self, batch_prefix: Option<&str>) -> Result<Vec<StoredDecision>, StoreError> {
        let what = || "reading decisions".to_string();
        let pattern = format!("{}%", batch_prefix.unwrap_or("").replace('%', ""));
        let rows = self
            .client
            .borrow_mut()
            .query(
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE batch ILIKE $1 ESCAPE '' ORDER BY id"
                ),
                &[&pattern],
            )
            .ctx(what)?;
        rows.iter()
            .map(read_decision)
            .collect::<Result<_, _>>()
            .ctx(what)
    }
}
