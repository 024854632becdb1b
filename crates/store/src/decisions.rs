//! Selection policies (versioned), selection decisions with their inclusion probability π, and
//! officer overrides — all append-only.

use std::collections::BTreeMap;

use borderlens_domain::{DecisionSource, Lane};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Exec, Row};
use crate::{check_json, sha256_hex, Decisions, Lock, Store, StoreError};

/// A decision to store.
#[derive(Clone, Debug, PartialEq)]
pub struct NewDecision {
    /// The declaration decided on.
    pub declaration_id: String,
    /// The item of the declaration the policy decided on: its riskiest item, or the one a
    /// campaign covers. `None` in decisions recorded before schema version 6, which did not
    /// keep it (item 1 stood for the declaration then).
    pub item_no: Option<u32>,
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
    /// Lane.
    pub lane: Lane,
    /// What put it there: the policy's source, or [`DecisionSource::Override`].
    pub source: DecisionSource,
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
     actor, at, item_no";

fn read_decision(row: &Row) -> Result<StoredDecision, DbError> {
    let reasons_json: String = row.get(12)?;
    let id: i64 = row.get(0)?;
    Ok(StoredDecision {
        id,
        decision: NewDecision {
            declaration_id: row.get(1)?,
            item_no: row.get(17)?,
            batch: row.get(2)?,
            policy_name: row.get(3)?,
            policy_version: row.get(4)?,
            model_name: row.get(5)?,
            model_version: row.get(6)?,
            score: row.get(7)?,
            pi: row.get(8)?,
            stratum: row.get(9)?,
            lane: row.parsed(10, "decisions", id, "lane")?,
            source: row.parsed(11, "decisions", id, "source")?,
            reasons: serde_json::from_str(&reasons_json).unwrap_or_default(),
        },
        overrides: row.get(13)?,
        override_reason: row.get(14)?,
        actor: row.get(15)?,
        at: row.get(16)?,
    })
}

/// The decisions `sql` selects ([`DECISION_COLUMNS`]).
fn read_decisions(
    exec: &mut dyn Exec,
    sql: &str,
    params: &[&dyn crate::sql::ToParam],
) -> Result<Vec<StoredDecision>, DbError> {
    exec.query(sql, params)?.iter().map(read_decision).collect()
}

/// Whether `sql` (an `EXISTS`) holds for `key`.
fn exists(exec: &mut dyn Exec, sql: &str, key: &str) -> Result<bool, DbError> {
    exec.value(sql, &[&key])
}

const BATCH_DECIDED: &str = "SELECT EXISTS (SELECT 1 FROM decisions WHERE batch = $1)";
const DECLARATION_DECIDED: &str = "SELECT EXISTS (SELECT 1 FROM decisions
     WHERE declaration_id = $1 AND overrides IS NULL)";

/// What a new row of `decisions` adds to a [`NewDecision`]: for an override, the decision it
/// overrides and the officer's reason.
struct Override<'a> {
    overrides: i64,
    reason: &'a str,
}

/// Inserts `d` (with its `source` and `lane` as given) and returns the stored row.
fn insert_decision(
    exec: &mut dyn Exec,
    d: &NewDecision,
    override_of: Option<Override<'_>>,
    actor: &str,
) -> Result<StoredDecision, DbError> {
    let reasons = serde_json::to_string(&d.reasons).unwrap_or_else(|_| "[]".into());
    let sql = format!(
        "INSERT INTO decisions (declaration_id, batch, policy_name, policy_version, model_name,
            model_version, score, pi, stratum, lane, source, reasons_json, overrides,
            override_reason, actor, item_no, at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, {})
         RETURNING {DECISION_COLUMNS}",
        exec.dialect().now()
    );
    let (overrides, override_reason) = match &override_of {
        Some(o) => (Some(o.overrides), Some(o.reason)),
        None => (None, None),
    };
    read_decisions(
        exec,
        &sql,
        &[
            &d.declaration_id,
            &d.batch,
            &d.policy_name,
            &d.policy_version,
            &d.model_name,
            &d.model_version,
            &d.score,
            &d.pi,
            &d.stratum,
            &d.lane.name(),
            &d.source.name(),
            &reasons,
            &overrides,
            &override_reason,
            &actor,
            &d.item_no,
        ],
    )?
    .pop()
    .ok_or(DbError::NoRow)
}

impl Decisions for Store {
    fn save_policy(&mut self, name: &str, body_json: &str) -> Result<u32, StoreError> {
        if name.trim().is_empty() {
            return Err(StoreError::Invalid {
                what: "policy name".into(),
                reason: "empty".into(),
            });
        }
        check_json("policy", body_json)?;
        let sha256 = sha256_hex(body_json.as_bytes());
        let what = || format!("saving policy '{name}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let latest = exec
                .query_opt(
                    "SELECT version, sha256 FROM policies WHERE name = $1
                     ORDER BY version DESC LIMIT 1",
                    &[&name],
                )
                .and_then(|row| {
                    row.map(|row| Ok::<(u32, String), DbError>((row.get(0)?, row.get(1)?)))
                        .transpose()
                })
                .ctx(what)?;
            if let Some((version, sha)) = &latest {
                if *sha == sha256 {
                    return Ok(*version);
                }
            }
            let version = latest.map_or(1, |(v, _)| v + 1);
            exec.execute(
                &format!(
                    "INSERT INTO policies (name, version, body_json, sha256, created_at,
                         created_by)
                     VALUES ($1, $2, $3, $4, {}, $5)",
                    exec.dialect().now()
                ),
                &[&name, &version, &body_json, &sha256, &actor],
            )
            .ctx(what)?;
            let detail = serde_json::json!({"version": version, "sha256": sha256}).to_string();
            let subject = format!("{name}@{version}");
            insert_audit(exec, actor, "save_policy", &subject, &detail)?;
            Ok(version)
        })
    }

    fn load_policy(
        &self,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<(u32, String)>, StoreError> {
        self.read(|exec| {
            exec.query_opt(
                "SELECT version, body_json FROM policies
                 WHERE name = $1 AND (CAST($2 AS BIGINT) IS NULL OR version = $2)
                 ORDER BY version DESC LIMIT 1",
                &[&name, &version],
            )?
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .transpose()
        })
        .ctx(|| format!("loading policy '{name}'"))
    }

    fn is_decided(&self, declaration_id: &str) -> Result<bool, StoreError> {
        self.read(|exec| exists(exec, DECLARATION_DECIDED, declaration_id))
            .ctx(|| format!("looking up decisions on '{declaration_id}'"))
    }

    fn batch_decided(&self, batch: &str) -> Result<bool, StoreError> {
        self.read(|exec| exists(exec, BATCH_DECIDED, batch))
            .ctx(|| format!("looking up batch '{batch}'"))
    }

    fn record_decisions(&mut self, decisions: &[NewDecision]) -> Result<usize, StoreError> {
        let what = || "recording selection decisions".to_string();
        self.write(Lock::Writers, what, |exec, actor| {
            let mut batches: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for d in decisions {
                let refused = |what: String, reason: &str| StoreError::Invalid {
                    what,
                    reason: reason.to_string(),
                };
                let again = "already decided; record an override to change a decision";
                if !batches.contains_key(d.batch.as_str()) {
                    if exists(exec, BATCH_DECIDED, &d.batch).ctx(what)? {
                        return Err(refused(format!("batch '{}'", d.batch), again));
                    }
                    batches.insert(&d.batch, (0, 0));
                }
                let on = || format!("decision on declaration '{}'", d.declaration_id);
                if exists(exec, DECLARATION_DECIDED, &d.declaration_id).ctx(what)? {
                    return Err(refused(on(), again));
                }
                let known = exists(
                    exec,
                    "SELECT EXISTS (SELECT 1 FROM declaration_items WHERE declaration_id = $1)",
                    &d.declaration_id,
                )
                .ctx(what)?;
                if !known {
                    return Err(refused(on(), "no such declaration in the store"));
                }
                if let Some(item_no) = d.item_no {
                    let item_known: bool = exec
                        .value(
                            "SELECT EXISTS (SELECT 1 FROM declaration_items
                             WHERE declaration_id = $1 AND item_no = $2)",
                            &[&d.declaration_id, &item_no],
                        )
                        .ctx(what)?;
                    if !item_known {
                        let reason = format!("no item {item_no} of it in the store");
                        return Err(refused(on(), &reason));
                    }
                }
                if !(0.0..=1.0).contains(&d.pi) {
                    let reason = format!("π = {} is not a probability", d.pi);
                    return Err(refused(on(), &reason));
                }
                insert_decision(exec, d, None, actor)
                    .ctx(|| format!("recording the decision on '{}'", d.declaration_id))?;
                let entry = batches.get_mut(d.batch.as_str()).expect("inserted above");
                entry.0 += 1;
                entry.1 += usize::from(d.lane.is_control());
            }
            for (batch, (n, selected)) in &batches {
                let detail =
                    serde_json::json!({"declarations": n, "selected": selected}).to_string();
                insert_audit(exec, actor, "select", batch, &detail)?;
            }
            Ok(decisions.len())
        })
    }

    fn override_decision(
        &mut self,
        declaration_id: &str,
        lane: Lane,
        reason: &str,
    ) -> Result<StoredDecision, StoreError> {
        check_override(reason)?;
        let what = || format!("overriding the decision on '{declaration_id}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let refused = |reason: String| StoreError::Invalid {
                what: format!("override of '{declaration_id}'"),
                reason,
            };
            let current = read_decisions(
                exec,
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = $1
                     ORDER BY id DESC LIMIT 1"
                ),
                &[&declaration_id],
            )
            .ctx(what)?
            .pop()
            .ok_or_else(|| {
                refused("no selection decision to override: run `borderlens select` first".into())
            })?;
            if current.decision.lane == lane {
                return Err(refused(format!(
                    "the declaration is already in the {lane} lane"
                )));
            }
            let d = &current.decision;
            let overriding = NewDecision {
                lane,
                source: DecisionSource::Override,
                reasons: vec![format!("override: {reason}")],
                ..d.clone()
            };
            let stored = insert_decision(
                exec,
                &overriding,
                Some(Override {
                    overrides: current.id,
                    reason,
                }),
                actor,
            )
            .ctx(what)?;
            let detail = serde_json::json!({
                "from": d.lane, "to": lane, "reason": reason, "overrides": current.id
            })
            .to_string();
            insert_audit(exec, actor, "override", declaration_id, &detail)?;
            Ok(stored)
        })
    }

    fn decisions_for(&self, declaration_id: &str) -> Result<Vec<StoredDecision>, StoreError> {
        self.read(|exec| {
            read_decisions(
                exec,
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE declaration_id = $1
                     ORDER BY id"
                ),
                &[&declaration_id],
            )
        })
        .ctx(|| format!("reading decisions on '{declaration_id}'"))
    }

    fn decisions(&self, batch_prefix: Option<&str>) -> Result<Vec<StoredDecision>, StoreError> {
        let pattern = format!("{}%", batch_prefix.unwrap_or("").replace('%', ""));
        self.read(|exec| {
            let dialect = exec.dialect();
            read_decisions(
                exec,
                &format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE batch {} $1 {} ORDER BY id",
                    dialect.like(),
                    dialect.like_escape()
                ),
                &[&pattern],
            )
        })
        .ctx(|| "reading decisions".to_string())
    }
}

pub(crate) fn check_override(reason: &str) -> Result<(), StoreError> {
    if reason.trim().is_empty() {
        return Err(StoreError::Invalid {
            what: "override".into(),
            reason: "a reason is mandatory".into(),
        });
    }
    Ok(())
}
