//! Party links (issue 13): trade parties (importer and declarant ids) that a record-linkage run
//! over a register of parties found to be one firm under several ids. Derived values: each run
//! replaces the previous run's links whole, in one transaction; a link is never updated.
//!
//! The store knows nothing of linkage: a link is two party ids, a group and a probability.

use std::collections::HashSet;

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Row};
use crate::{Lock, PartyLinks, Store, StoreError};

/// One party of a group of linked parties.
#[derive(Clone, PartialEq, Debug)]
pub struct PartyLink {
    /// The party (an importer or declarant id as declarations carry it).
    pub party_id: String,
    /// Its group: the same for every party of one firm (by convention the group's smallest id).
    pub group_id: String,
    /// The party of the group it is most strongly linked to.
    pub linked_to: String,
    /// That link's match probability (1 for a shared valid identifier).
    pub probability: f64,
}

/// A stored party link, with the run that found it.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredPartyLink {
    /// The link.
    pub link: PartyLink,
    /// The linkage run (what it read and where it wrote).
    pub run: String,
    /// When the run's links were saved (UTC).
    pub linked_at: String,
}

const COLUMNS: &str = "party_id, group_id, linked_to, probability, run, linked_at";

fn read_link(row: &Row) -> Result<StoredPartyLink, DbError> {
    Ok(StoredPartyLink {
        link: PartyLink {
            party_id: row.get(0)?,
            group_id: row.get(1)?,
            linked_to: row.get(2)?,
            probability: row.get(3)?,
        },
        run: row.get(4)?,
        linked_at: row.get(5)?,
    })
}

/// Refuses links no group could hold: an empty id, a party twice, a party linked to itself or
/// to a party outside its group, a probability outside 0 to 1.
fn check_links(run: &str, links: &[PartyLink]) -> Result<(), StoreError> {
    let invalid = |what: String, reason: &str| StoreError::Invalid {
        what,
        reason: reason.to_string(),
    };
    if run.trim().is_empty() {
        return Err(invalid("party links: run".into(), "empty"));
    }
    let mut seen: HashSet<&str> = HashSet::new();
    let groups: std::collections::HashMap<&str, &str> = links
        .iter()
        .map(|l| (l.party_id.as_str(), l.group_id.as_str()))
        .collect();
    for l in links {
        let what = |field: &str| format!("party link of '{}': {field}", l.party_id);
        if l.party_id.trim().is_empty() {
            return Err(invalid("party link: party_id".into(), "empty"));
        }
        if l.group_id.trim().is_empty() {
            return Err(invalid(what("group_id"), "empty"));
        }
        if !seen.insert(&l.party_id) {
            return Err(invalid(what("party_id"), "appears twice"));
        }
        if l.linked_to == l.party_id {
            return Err(invalid(
                what("linked_to"),
                "a party is not linked to itself",
            ));
        }
        if groups.get(l.linked_to.as_str()) != Some(&l.group_id.as_str()) {
            return Err(invalid(
                what("linked_to"),
                "the party it is linked to is not in its group",
            ));
        }
        if !(0.0..=1.0).contains(&l.probability) {
            return Err(invalid(what("probability"), "outside 0 to 1"));
        }
    }
    Ok(())
}

impl PartyLinks for Store {
    fn replace_party_links(&mut self, run: &str, links: &[PartyLink]) -> Result<usize, StoreError> {
        check_links(run, links)?;
        let what = || format!("saving the party links of run '{run}'");
        self.write(Lock::Writers, what, |exec, actor| {
            let now: String = exec
                .value(&format!("SELECT {}", exec.dialect().now()), &[])
                .ctx(what)?;
            let replaced = exec.execute("DELETE FROM party_links", &[]).ctx(what)?;
            for l in links {
                exec.execute(
                    &format!("INSERT INTO party_links ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)"),
                    &[
                        &l.party_id,
                        &l.group_id,
                        &l.linked_to,
                        &l.probability,
                        &run,
                        &now,
                    ],
                )
                .ctx(what)?;
            }
            let groups: HashSet<&str> = links.iter().map(|l| l.group_id.as_str()).collect();
            let detail = serde_json::json!({
                "parties": links.len(),
                "groups": groups.len(),
                "replaced": replaced,
            });
            insert_audit(exec, actor, "replace_party_links", run, &detail.to_string())?;
            Ok(links.len())
        })
    }

    fn party_group(&self, party_id: &str) -> Result<Vec<StoredPartyLink>, StoreError> {
        self.read(|exec| {
            exec.query(
                &format!(
                    "SELECT {COLUMNS} FROM party_links
                     WHERE group_id = (SELECT group_id FROM party_links WHERE party_id = $1)
                     ORDER BY party_id"
                ),
                &[&party_id],
            )?
            .iter()
            .map(read_link)
            .collect()
        })
        .ctx(|| format!("reading the parties linked to '{party_id}'"))
    }

    fn party_links(&self) -> Result<Vec<StoredPartyLink>, StoreError> {
        self.read(|exec| {
            exec.query(
                &format!("SELECT {COLUMNS} FROM party_links ORDER BY group_id, party_id"),
                &[],
            )?
            .iter()
            .map(read_link)
            .collect()
        })
        .ctx(|| "reading the party links".to_string())
    }

    fn party_link_counts(&self) -> Result<(u64, u64), StoreError> {
        self.read(|exec| {
            let row = exec.query_opt(
                "SELECT count(*), count(DISTINCT group_id) FROM party_links",
                &[],
            )?;
            match row {
                Some(row) => Ok((row.get(0)?, row.get(1)?)),
                None => Ok((0, 0)),
            }
        })
        .ctx(|| "counting the party links".to_string())
    }
}
