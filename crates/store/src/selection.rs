//! Selection policies (versioned), selection decisions with their inclusion probability π, and
//! officer overrides — all append-only.

use rusqlite::{params, OptionalExtension, Row, TransactionBehavior};
use sha2::{Digest, Sha256};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::{check_json, Store, StoreError, NOW};

/// A decision to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDecision {
    /// The declaration decided on.
    pub declaration_id: String,
    /// The batch the capacity applied to, e.g. `2021-03-01 office 30`.
    pub batch: String,
    /// Policy name.
    pub policy_name: String,
    /// Policy version.
    pub policy_version: u32,
    /// Model name, when a model scored it.
    pub model_name: Option<String>,
    /// Model version.
    pub model_version: Option<u32>,
    /// Risk score.
    pub score: Option<f64>,
    /// Inclusion probability of the design.
    pub pi: f64,
    /// Design stratum.
    pub stratum: String,
    /// `red`, `yellow` or `green`.
    pub lane: String,
    /// `campaign`, `risk`, `random`, `explore`, `documentary`, `release`.
    pub source: String,
    /// Reasons in words.
    pub reasons: Vec<String>,
}

/// A stored decision or override.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredDecision {
    /// Increasing id.
    pub id: i64,
    /// The decision as made (for an override: copied from the overridden one, with the new lane).
    pub decision: NewDecision,
    /// For an override: the decision it overrides.
    pub overrides: Option<i64>,
    /// For an override: the officer's reason.
    pub override_reason: Option<String>,
    /// Who.
    pub actor: String,
    /// When (UTC).
    pub at: String,
}

pub(crate) const DECISION_COLUMNS: &str =
    "id, declaration_id, batch, policy_name, policy_version, model_name, \
     model_version, score, pi, stratum, lane, source, reasons_json, overrides, override_reason, \
     actor, at";

fn read_decision(row: &Row<'_>) -> rusqlite::Result<StoredDecision> {
    let reasons_json: String = row.get(12)?;
    Ok(StoredDecision {
        id: row.get(0)?,
        decision: NewDecision {
            declaration_id: row.get(1)?,
            batch: row.get(2)?,
            policy_name: row.get(3)?,
            policy_version: row.get(4)?,
            model_name: row.get(5)?,
            model_version: row.get(6)?,
            score: row.get(7)?,
            pi: row.get(8)?,
            stratum: row.get(9)?,
            lane: row.get(10)?,
            source: row.get(11)?,
            reasons: serde_json::from_str(&reasons_json).unwrap_or_default(),
        },
        overrides: row.get(13)?,
        override_reason: row.get(14)?,
        actor: row.get(15)?,
        at: row.get(16)?,
    })
}

impl Store {
    /// Saves `body_json` as the next version of policy `name`, or returns the latest version when
    /// its body is identical. Writes a `save_policy` audit entry for a new version.
    pub fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "policy name".into(),
                reason: "empty".into(),
            });
        }
        check_json(&self.conn, "policy", body_json)?;
        let sha256: String = Sha256::digest(body_json.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let what = || format!("saving policy '{name}'");
        let actor = self.actor.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let latest: Option<(u32, String)> = tx
            .query_row(
                "SELECT version, sha256 FROM policies WHERE name = ?1 ORDER BY version DESC LIMIT 1",
                [name],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .ctx(what)?;
        if let Some((version, sha)) = &latest {
            if *sha == sha256 {
                return Ok(*version);
            }
        }
        let version = latest.map_or(1, |(v, _)| v + 1);
        tx.execute(
            &format!(
                "INSERT INTO policies (name, version, body_json, sha256, created_at, created_by)
                 VALUES (?1, ?2, ?3, ?4, {NOW}, ?5)"
            ),
            params![name, version, body_json, sha256, actor],
        )
        .ctx(what)?;
        let detail = serde_json::json!({"version": version, "sha256": sha256}).to_string();
        insert_audit(
            &tx,
            &actor,
            "save_policy",
            &format!("{name}@{version}"),
            &detail,
        )?;
        tx.commit().ctx(what)?;
        Ok(version)
    }

    /// Version `version` (latest when `None`) of policy `name`: (version, body).
    pub fn load_policy(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, String)>, StoreError> {
        self.conn
            .query_row(
                "SELECT version, body_json FROM policies
                 WHERE name = ?1 AND (?2 IS NULL OR version = ?2)
                 ORDER BY version DESC LIMIT 1",
                params![name, version],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()
            .ctx(|| format!("loading policy '{name}'"))
    }

    /// Whether `declaration_id` has a selection decision (overrides aside).
    pub fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM decisions
                 WHERE declaration_id = ?1 AND overrides IS NULL)",
                [declaration_id],
                |row| row.get(0),
            )
            .ctx(|| format!("looking up decisions on '{declaration_id}'"))
    }

    /// Whether any decision was recorded for `batch`.
    pub fn batch_decided(&self, batch: &str) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM decisions WHERE batch = ?1)",
                [batch],
                |row| row.get(0),
            )
            .ctx(|| format!("looking up batch '{batch}'"))
    }

    /// Records the decisions of one or more batches in one transaction, with one `select` audit
    /// entry per batch. Every declaration must be in the store; a batch already decided is
    /// refused (decisions are never made twice: use an override).
    pub fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError> {
        let actor = self.actor.clone();
        let what = || "recording selection decisions".to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let mut batches: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
        {
            let mut exists = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM declaration_items WHERE declaration_id = ?1)",
                )
                .ctx(what)?;
            let mut decided = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM decisions WHERE batch = ?1)")
                .ctx(what)?;
            let mut decided_declaration = tx
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM decisions
                     WHERE declaration_id = ?1 AND overrides IS NULL)",
                )
                .ctx(what)?;
            let mut insert = tx
                .prepare_cached(&format!(
                    "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version,
                        model_name, model_version, score, pi, stratum, lane, source, reasons_json,
                        actor, at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, {NOW})"
                ))
                .ctx(what)?;
            for d in decisions {
                if !batches.contains_key(d.batch.as_str()) {
                    let already: bool = decided.query_row([&d.batch], |r| r.get(0)).ctx(what)?;
                    if already {
                        return Err(StoreError::Invalid {
                            what: format!("batch '{}'", d.batch),
                            reason: "already decided; record an override to change a decision"
                                .into(),
                        });
                    }
                    batches.insert(&d.batch, (0, 0));
                }
                let known: bool = exists
                    .query_row([&d.declaration_id], |r| r.get(0))
                    .ctx(what)?;
                let twice: bool = decided_declaration
                    .query_row([&d.declaration_id], |r| r.get(0))
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
                insert
                    .execute(params![
                        d.declaration_id,
                        d.batch,
                        d.policy_name,
                        d.policy_version,
                        d.model_name,
                        d.model_version,
                        d.score,
                        d.pi,
                        d.stratum,
                        d.lane,
                        d.source,
                        reasons,
                        actor
                    ])
                    .ctx(|| format!("recording the decision on '{}'", d.declaration_id))?;
                let entry = batches.get_mut(d.batch.as_str()).expect("inserted above");
                entry.0 += 1;
                entry.1 += usize::from(d.lane != "green");
            }
        }
        for (batch, (n, selected)) in &batches {
            let detail = serde_json::json!({"declarations": n, "selected": selected}).to_string();
            insert_audit(&tx, &actor, "select", batch, &detail)?;
        }
        tx.commit().ctx(what)?;
        Ok(decisions.len())
    }

    /// Records an officer's override of the current decision on `declaration_id`: a new entry
    /// with the new lane and the reason, pointing at the decision it overrides (which stays).
    pub fn override_decision(
        &mut self,
        declaration_id: &str,
        lane: &str,
        reason: &str,
    ) -> Result<StoredDecision, StoreError> {
        check_override(lane, reason)?;
        let actor = self.actor.clone();
        let what = || format!("overriding the decision on '{declaration_id}'");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(what)?;
        let current = tx
            .query_row(
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = ?1
                     ORDER BY id DESC LIMIT 1"
                ),
                [declaration_id],
                read_decision,
            )
            .optional()
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
        tx.execute(
            &format!(
                "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version,
                    model_name, model_version, score, pi, stratum, lane, source, reasons_json,
                    overrides, override_reason, actor, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'override', ?11, ?12, ?13, ?14, {NOW})"
            ),
            params![
                d.declaration_id,
                d.batch,
                d.policy_name,
                d.policy_version,
                d.model_name,
                d.model_version,
                d.score,
                d.pi,
                d.stratum,
                lane,
                reasons,
                current.id,
                reason,
                actor
            ],
        )
        .ctx(what)?;
        let id = tx.last_insert_rowid();
        let detail = serde_json::json!({
            "from": d.lane, "to": lane, "reason": reason, "overrides": current.id
        })
        .to_string();
        insert_audit(&tx, &actor, "override", declaration_id, &detail)?;
        let stored = tx
            .query_row(
                &format!("SELECT {DECISION_COLUMNS} FROM decisions WHERE id = ?1"),
                [id],
                read_decision,
            )
            .ctx(what)?;
        tx.commit().ctx(what)?;
        Ok(stored)
    }

    /// Every decision and override on `declaration_id`, oldest first.
    pub fn decisions_for(&self, declaration_id: &str) -> Result<Vec<StoredDecision>, StoreError> {
        let what = || format!("reading decisions on '{declaration_id}'");
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = ?1 ORDER BY id"
            ))
            .ctx(what)?;
        let rows = statement
            .query_map([declaration_id], read_decision)
            .ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }

    /// Every decision and override, in id order (batches whose name starts with `batch_prefix`
    /// when given — batch names start with the date).
    pub fn decisions(&self, batch_prefix: Option<&str>) -> Result<Vec<StoredDecision>, StoreError> {
        let what = || "reading decisions".to_string();
        let pattern = format!("{}%", batch_prefix.unwrap_or("").replace('%', ""));
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "SELECT {DECISION_COLUMNS} FROM decisions WHERE batch LIKE ?1 ORDER BY id"
            ))
            .ctx(what)?;
        let rows = statement.query_map([pattern], read_decision).ctx(what)?;
        rows.collect::<Result<_, _>>().ctx(what)
    }
}

/// An override needs a known lane and a reason; shared by both backends.
pub(crate) fn check_override(lane: &str, reason: &str) -> Result<(), StoreError> {
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid {
            what: "override".into(),
            reason: "a reason is mandatory".into(),
        });
    }
    if !["red", "yellow", "green"].contains(&lane) {
        return Err(StoreError::Invalid {
            what: "override".into(),
            reason: format!("unknown lane '{lane}': use red, yellow or green"),
        });
    }
    Ok(())
}
