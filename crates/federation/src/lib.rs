/*!
Federation: several administrations train one risk model without sharing rows.

What this crate owns: the protocol and the maths of federated horizontal training of `risk`'s
histogram GBDT, and secure aggregation.
- Parties ([`LocalParty`]) hold their own declaration items; they agree on features through the
  coordinator without sharing rows: category vocabularies are unioned
  ([`borderlens_risk::features::FeaturePipeline::union`]) and bins are learned from the union of
  the parties' feature summaries ([`borderlens_risk::gbdt::FeatureSummary`],
  [`borderlens_risk::gbdt::Binning::from_summaries`]), the same bins pooled training learns from
  all the rows. History features are computed by each party from its own items.
- The [`Coordinator`] runs the boosting rounds: per node of the tree being grown, each party
  sends the gradient and hessian histogram of its rows, masked; the coordinator sums them and
  chooses the split with `risk`'s own grower ([`borderlens_risk::gbdt::grow_tree`]), then
  broadcasts the tree. Histograms are exact fixed-point sums, so the trees are those pooled
  training grows on the union of the parties' rows, bit for bit.
- Secure aggregation ([`secagg`]): pairwise additive masks over wrapping `u64` arithmetic, seeded
  per pair by X25519 key agreement and per round by the round number and nonce: the coordinator
  learns sums only.
- Messages ([`message`]) carry the party, the round and its nonce, with a checksum: garbage,
  replayed or stale messages, sums out of range and dead parties are faults named with the party
  and round, which abort training or drop the party ([`OnFault`]).
- The coordinator reaches the parties through a [`Transport`]: [`InProcess`] here, HTTP nodes
  in `server`.
- Differential privacy, optional ([`dp`]): each party adds Gaussian noise to what it releases,
  before masking, at the multiplier the coordinator asks and at least its own policy's, and
  accounts the privacy it spends (zCDP, reported as (ε, δ)). Trees grown from noisy sums are no
  longer the pooled ones.
- Only the bins a tree reads travel: those of the features drawn for it and of the first
  feature, which gives a node's totals ([`summed_features`]).

What it must not touch: the store (it takes items and returns models; jobs in `app` read and
write stores), another party's rows (a party answers with summaries and masked sums, never with
rows), and selection.
*/
#![deny(missing_docs)]

pub mod coordinator;
pub mod dp;
pub mod message;
pub mod party;
pub mod secagg;

pub use coordinator::{
    Coordinator, Dropped, FederatedModel, FederationError, FederationOptions, InProcess, OnFault,
    PooledCounts, Privacy, PrivacySpent, Transport, Unreachable,
};
pub use party::LocalParty;

/// A party's id in a federation.
pub type PartyId = u32;

/// The features whose bins the parties send for a tree (ascending): those it may split on
/// (`allowed`, drawn by `risk`'s [`borderlens_risk::gbdt::round_sample`] as pooled training
/// draws them) and the first, whose bins give a node's totals
/// ([`borderlens_risk::gbdt::NodeHistogram::total`]). The other features' sums would never be
/// looked at. The coordinator draws them and names them in the tree's first call
/// ([`message::Request::Root`]): the parties never draw on their own.
pub fn summed_features(allowed: &[bool]) -> Vec<usize> {
    (0..allowed.len())
        .filter(|&f| f == 0 || allowed[f])
        .collect()
}
