//! Batches of declarations: what a policy decides on at once.
//!
//! A policy's capacity applies per batch. A batch is one day of declarations, or one office's
//! declarations of one day ([`Batching`]); [`group`] puts each scored declaration in its batch,
//! once, with the item the decision is made on. A declaration is decided once: those decided
//! before are left out, and declarations that arrive after their batch was decided form a batch
//! of their own, `DATE late 2`, `DATE late 3`, ... ([`undecided_name`]). Each batch draws its
//! random numbers from a seed of its own ([`batch_seed`]), so a batch's draws do not depend on
//! which other batches were decided in the same run.
//!
//! Nothing here reads or writes a store: whether a declaration or a batch name was decided is
//! asked of the caller through a predicate.

use std::collections::{BTreeMap, BTreeSet};

use borderlens_domain::DeclarationItem;
use chrono::NaiveDate;

use crate::policy::Policy;

/// How declarations are grouped into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// One batch per day.
    Daily,
    /// One batch per office and day: the capacity applies per batch, so with daily batches a
    /// share rounds down to nothing at offices with a handful of declarations a day.
    PerOffice,
}

impl Batching {
    /// [`Batching::PerOffice`] when `per_office`, else [`Batching::Daily`].
    pub fn per_office(per_office: bool) -> Batching {
        if per_office {
            Batching::PerOffice
        } else {
            Batching::Daily
        }
    }
}

/// The batch a declaration item falls in: its day, and its office when batches are per office.
///
/// Keys order as their [`names`](BatchKey::name) do (day, then office), which is the order in
/// which batches are decided.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchKey {
    /// The day.
    pub date: NaiveDate,
    /// The office, for batches per office.
    pub office: Option<String>,
}

impl BatchKey {
    /// The batch of `item`.
    pub fn of(item: &DeclarationItem, batching: Batching) -> BatchKey {
        BatchKey {
            date: item.date,
            office: match batching {
                Batching::Daily => None,
                Batching::PerOffice => Some(item.office_id.clone()),
            },
        }
    }

    /// The batch's name: `DATE` (`2020-01-02`), or `DATE office OFFICE` per office. A batch
    /// decided after another of the same name is named by [`undecided_name`].
    pub fn name(&self) -> String {
        match &self.office {
            None => self.date.to_string(),
            Some(office) => format!("{} office {office}", self.date),
        }
    }
}

/// One declaration of a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    /// The item the decision is made on: the first of the declaration's items that a campaign
    /// of the policy covers, else its riskiest item (the first of the riskiest on a tie, and the
    /// last one read while no item has a score).
    pub item: DeclarationItem,
    /// The declaration's score: the highest score of its items (NaN when none is scored).
    pub score: f64,
}

/// The declarations of one batch, in the order of their ids.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Which batch.
    pub key: BatchKey,
    /// Its declarations, by declaration id.
    pub members: Vec<Member>,
}

/// What [`group`] made of a period's items.
#[derive(Clone, Debug, PartialEq)]
pub struct Batches {
    /// The batches, in key order (day, then office).
    pub batches: Vec<Batch>,
    /// Declarations left out because they were decided before.
    pub already_decided: usize,
}

/// Groups scored items (NaN for an unscored one) into batches of declarations: one member per
/// declaration of each batch, with the item the decision is made on (see [`Member::item`]);
/// `policy` says which items a campaign covers. Declarations for which `is_decided` answers
/// true are left out and counted; it is asked once per declaration id, and its first error is
/// returned.
///
/// A declaration is identified by its id within a batch: should its items fall on two days (or
/// at two offices, per office), it is a member of each of those batches.
pub fn group<E>(
    items: impl IntoIterator<Item = (DeclarationItem, f64)>,
    batching: Batching,
    policy: &Policy,
    mut is_decided: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Batches, E> {
    /// The member so far, and whether a campaign covers its item (then it is kept).
    struct Pick {
        member: Member,
        in_campaign: bool,
    }
    let mut decided: BTreeSet<String> = BTreeSet::new();
    let mut undecided: BTreeSet<String> = BTreeSet::new();
    let mut picks: BTreeMap<(BatchKey, String), Pick> = BTreeMap::new();
    for (item, score) in items {
        let id = &item.key.declaration_id;
        if decided.contains(id) {
            continue;
        }
        if !undecided.contains(id) {
            if is_decided(id)? {
                decided.insert(id.clone());
                continue;
            }
            undecided.insert(id.clone());
        }
        let in_campaign = policy.campaign_for(&item).is_some();
        let key = (BatchKey::of(&item, batching), id.clone());
        match picks.get_mut(&key) {
            Some(pick) => {
                let best = pick.member.score;
                if !pick.in_campaign && (in_campaign || best.is_nan() || score > best) {
                    pick.member.item = item;
                    pick.in_campaign = in_campaign;
                }
                if best.is_nan() || score > best {
                    pick.member.score = score;
                }
            }
            None => {
                picks.insert(
                    key,
                    Pick {
                        member: Member { item, score },
                        in_campaign,
                    },
                );
            }
        }
    }
    let mut batches: Vec<Batch> = Vec::new();
    for ((key, _), pick) in picks {
        match batches.last_mut() {
            Some(batch) if batch.key == key => batch.members.push(pick.member),
            _ => batches.push(Batch {
                key,
                members: vec![pick.member],
            }),
        }
    }
    Ok(Batches {
        batches,
        already_decided: decided.len(),
    })
}

/// The name a batch is decided under: `base` unless a batch of that name was decided before
/// (`is_decided`), else the first of `base late 2`, `base late 3`, ... that was not. Its first
/// error is returned.
pub fn undecided_name<E>(
    base: &str,
    mut is_decided: impl FnMut(&str) -> Result<bool, E>,
) -> Result<String, E> {
    let mut name = base.to_string();
    let mut run = 1u64;
    while is_decided(&name)? {
        run += 1;
        name = format!("{base} late {run}");
    }
    Ok(name)
}

/// The seed of a batch's random draws: the run's `seed` mixed with the batch's name.
pub fn batch_seed(seed: u64, batch_name: &str) -> u64 {
    seed ^ stable_hash(batch_name)
}

/// FNV-1a of `text`: stable across releases and platforms (std's hasher is not), for seeds and
/// derived ids.
pub fn stable_hash(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
