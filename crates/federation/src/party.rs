//! A party of the federation (a node, in process): it holds its declaration items and answers
//! the coordinator's calls with summaries and masked sums, never with rows.
//!
//! State: what was agreed (pipeline, bins, options, peers' secrets), its rows as model columns,
//! the model so far (the starting score, the trees applied, its rows' scores) and the scratch of
//! the tree being grown (gradients, the rows of each node). Only [`Request::Apply`] changes the
//! model: a round that fails, or a tree abandoned, leaves the model as it was after the last
//! tree applied.

use std::collections::BTreeMap;

use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_risk::data::Dataset;
use borderlens_risk::features::FeaturePipeline;
use borderlens_risk::gbdt::{
    add_leaf_values, log_loss_gradients, BinnedRows, Binning, Booster, FeatureSummary, LabelSums,
    NodeHistogram, Tree,
};

use crate::dp::{self, Noise, PrivacyPolicy, Spent};
use crate::message::{Ahead, Call, Confirm, Envelope, Kind, Payload, Request};
use crate::secagg::{self, KeyPair};
use crate::PartyId;

/// A party's answer before it goes into an envelope.
enum Answer {
    Bytes(Vec<u8>),
    /// Words to mask with the peers' secrets as they are written into the envelope.
    Masked {
        words: Vec<u64>,
        peers: Vec<(PartyId, [u8; 32])>,
    },
}

/// The most leaves per tree a party grows (bounds the node ids a coordinator may ask for).
const MAX_LEAVES: usize = 1 << 12;

/// What was agreed and built before boosting.
struct Agreed {
    binning: Binning,
    binned: BinnedRows,
    /// Node ids of a tree stay below this (two per leaf the options allow): a coordinator
    /// cannot make the party allocate beyond it.
    max_nodes: usize,
}

/// The model so far: changed by [`Request::Init`] and [`Request::Apply`] only.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    init_score: f64,
    trees: Vec<Tree>,
    scores: Vec<f64>,
}

/// The tree being grown.
struct Scratch {
    /// The features whose bins this tree's answers carry ([`crate::summed_features`]).
    features: Vec<usize>,
    gradients: Vec<i64>,
    hessians: Vec<i64>,
    /// Rows of each node not split yet, by node id.
    rows: Vec<Option<Vec<u32>>>,
    /// This party's histogram of each node not split yet (a split builds its smaller child's
    /// and takes the other from the parent's, as pooled training does).
    histograms: Vec<Option<NodeHistogram>>,
    /// Leaves split ahead, not yet taken by the grower: by node, the children's rows and
    /// histograms (left, right).
    ahead: BTreeMap<usize, AheadSplit>,
    /// The id the grower gives the next split's left child (1, 3, 5...: it numbers nodes in
    /// the order it splits).
    next_child: usize,
}

/// The most segments a party counts in one round.
pub const MAX_SEGMENTS: usize = 10_000;

/// A leaf split ahead of the grower ([`Request::Split`]).
struct AheadSplit {
    left_rows: Vec<u32>,
    right_rows: Vec<u32>,
    /// The smaller child's histogram: the other's is the leaf's less it, taken when the split
    /// is confirmed (no copy of the leaf's kept meanwhile).
    small: NodeHistogram,
    small_is_left: bool,
}

/// A party holding its own declaration items.
pub struct LocalParty {
    id: PartyId,
    items: Vec<DeclarationItem>,
    label: LabelKind,
    keys: KeyPair,
    /// Fresh randomness of this session, mixed into every pair's secret.
    salt: [u8; 32],
    /// Secret shared with each other party.
    shared: BTreeMap<PartyId, [u8; 32]>,
    /// The members whose keys were agreed: a masked round's members must be among them.
    agreed_members: std::collections::BTreeSet<PartyId>,
    /// Pooled statistics answered in this session (segments, counts): each once, so that
    /// a coordinator cannot difference sums over several sets of parties.
    stats_answered: (bool, bool),
    /// The peers' public keys this party accepts, when it pins them: a relayed key not among
    /// them is refused (a coordinator substituting its own keys could otherwise unmask).
    pinned: Option<std::collections::BTreeSet<[u8; 32]>>,
    /// Last round answered: a call of that round or an earlier one is refused.
    last_round: Option<u64>,
    pipeline: Option<FeaturePipeline>,
    data: Option<Dataset>,
    agreed: Option<Agreed>,
    model: Option<Model>,
    scratch: Option<Scratch>,
    /// The party's own rule on differential privacy, if it has one.
    policy: Option<PrivacyPolicy>,
    /// The noise the session asked for (at least the policy's), once the bins are agreed.
    noise: Option<Noise>,
    /// The privacy spent in this party's life (noisy releases), never reset.
    spent: Option<Spent>,
    /// The concealment method recorded for declarations where fraud was found, by
    /// declaration id (pooled statistics by concealment).
    concealment: BTreeMap<String, String>,
}

impl LocalParty {
    /// A party with `items` (sorted by date; the labelled ones become its rows, all of them its
    /// history), learning `label`, with a key pair from the operating system's randomness.
    pub fn new(
        id: PartyId,
        items: Vec<DeclarationItem>,
        label: LabelKind,
    ) -> Result<LocalParty, String> {
        Ok(LocalParty::with_keys(
            id,
            items,
            label,
            KeyPair::generate()?,
        ))
    }

    /// [`LocalParty::new`] with a given key pair.
    pub fn with_keys(
        id: PartyId,
        items: Vec<DeclarationItem>,
        label: LabelKind,
        keys: KeyPair,
    ) -> LocalParty {
        let mut salt = [0u8; 32];
        if getrandom::fill(&mut salt).is_err() {
            // No OS randomness: a salt from the clock still differs per session.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            salt[..16].copy_from_slice(&nanos.to_le_bytes());
        }
        LocalParty {
            id,
            items,
            label,
            keys,
            salt,
            shared: BTreeMap::new(),
            agreed_members: std::collections::BTreeSet::new(),
            stats_answered: (false, false),
            pinned: None,
            last_round: None,
            pipeline: None,
            data: None,
            agreed: None,
            model: None,
            scratch: None,
            policy: None,
            noise: None,
            spent: None,
            concealment: BTreeMap::new(),
        }
    }

    /// Gives the party the concealment method of its findings (declaration id → method, from
    /// its control results), for pooled statistics by concealment; a finding without one
    /// counts as "not recorded".
    pub fn set_concealment(&mut self, methods: BTreeMap<String, String>) {
        self.concealment = methods;
    }

    /// Gives the party a rule on differential privacy (checked): it refuses a session asking
    /// for less noise than the policy's, and any release beyond its budget.
    pub fn with_privacy(mut self, policy: PrivacyPolicy) -> Result<LocalParty, String> {
        policy.check()?;
        self.policy = Some(policy);
        Ok(self)
    }

    /// The privacy this party spent so far (`None`: it never added noise).
    pub fn privacy_spent(&self) -> Option<Spent> {
        self.spent
    }

    /// Its rule on differential privacy.
    pub fn privacy_policy(&self) -> Option<&PrivacyPolicy> {
        self.policy.as_ref()
    }

    /// Checks that one more release fits the party's budget: the privacy spent after it, or
    /// `None` when the party adds no noise.
    fn next_release(&self) -> Result<Option<Spent>, String> {
        let (Some(noise), Some(spent)) = (&self.noise, &self.spent) else {
            return Ok(None);
        };
        let next = spent.after_release();
        debug_assert_eq!(next.noise_multiplier, noise.multiplier());
        if let Some(policy) = &self.policy {
            if let Some(max) = policy.max_epsilon {
                let epsilon = next.epsilon(policy.delta);
                if epsilon > max {
                    return Err(format!(
                        "privacy budget: one more release would bring this node's ε to \
                         {epsilon:.3} (δ = {}), beyond its limit of {max} per session; it \
                         answers no more",
                        policy.delta
                    ));
                }
            }
        }
        Ok(Some(next))
    }

    /// Adds noise to histogram words (`chunk_len` words per histogram of `n_features`
    /// features) and records the release checked by [`LocalParty::next_release`].
    fn release_histograms(
        &mut self,
        next: Option<Spent>,
        words: &mut [u64],
        chunk_len: usize,
        n_features: usize,
    ) -> Result<(), String> {
        if let (Some(next), Some(noise)) = (next, self.noise.as_mut()) {
            noise.add_to_histograms(words, chunk_len, dp::histogram_sensitivity(n_features))?;
            self.spent = Some(next);
        }
        Ok(())
    }

    /// Pins the peers' public keys: the keys the coordinator relays for the other members must
    /// be among `keys` (partners exchange them beforehand), or the party refuses the round.
    pub fn pin_peers(mut self, keys: impl IntoIterator<Item = [u8; 32]>) -> LocalParty {
        self.pinned = Some(keys.into_iter().collect());
        self
    }

    /// The party's id.
    pub fn id(&self) -> PartyId {
        self.id
    }

    /// Its declaration items (the labelled ones are its rows, all of them its history).
    pub fn items(&self) -> &[DeclarationItem] {
        &self.items
    }

    /// The label it learns.
    pub fn label(&self) -> LabelKind {
        self.label
    }

    /// Its rows as model columns, once the pipeline is agreed.
    pub fn dataset(&self) -> Option<&Dataset> {
        self.data.as_ref()
    }

    /// The agreed pipeline.
    pub fn pipeline(&self) -> Option<&FeaturePipeline> {
        self.pipeline.as_ref()
    }

    /// Its model so far: the starting score and the trees applied (every party's is the same).
    pub fn booster(&self) -> Option<Booster> {
        let (data, model) = (self.data.as_ref()?, self.model.as_ref()?);
        Some(Booster::new(
            data.features.clone(),
            model.init_score,
            model.trees.clone(),
        ))
    }

    /// Its rows' raw scores under the model so far (kept as boosting goes).
    pub fn scores(&self) -> Option<&[f64]> {
        self.model.as_ref().map(|m| m.scores.as_slice())
    }

    /// Answers one call, as bytes (an [`Envelope`]); a call it cannot answer gets a refusal
    /// saying why.
    pub fn handle(&mut self, call: &Call) -> Vec<u8> {
        self.handle_telling(call).0
    }

    /// [`LocalParty::handle`], with the kind of the answer and, for a refusal, why (for a
    /// node's audit log, without decoding the envelope again).
    pub fn handle_telling(&mut self, call: &Call) -> (Vec<u8>, Kind, Option<String>) {
        let (kind, answer, why) = match self.answer(call) {
            Ok((kind, answer)) => (kind, answer, None),
            Err(why) => (
                Kind::Refused,
                Answer::Bytes(why.clone().into_bytes()),
                Some(why),
            ),
        };
        let payload = match &answer {
            Answer::Bytes(bytes) => Payload::Bytes(bytes),
            Answer::Masked { words, peers } => Payload::Masked {
                me: self.id,
                words,
                peers,
            },
        };
        let envelope = Envelope::write(self.id, call.round, call.nonce, kind, payload);
        (envelope, kind, why)
    }

    fn answer(&mut self, call: &Call) -> Result<(Kind, Answer), String> {
        if let Some(last) = self.last_round {
            if call.round <= last {
                return Err(format!(
                    "round {} is not after round {last}, already answered: a replayed call",
                    call.round
                ));
            }
        }
        if !call.members.contains(&self.id) {
            return Err(format!(
                "party {} is not a member of round {}",
                self.id, call.round
            ));
        }
        self.last_round = Some(call.round);
        let ack = Ok((Kind::Ack, Answer::Bytes(Vec::new())));
        match &call.request {
            Request::PublicKey => {
                let mut payload = self.keys.public().to_vec();
                payload.extend_from_slice(&self.salt);
                Ok((Kind::PublicKey, Answer::Bytes(payload)))
            }
            Request::Peers { keys, salts } => {
                // Its own key as the others get it: altered, the others would mask with a key
                // the coordinator holds.
                let own = keys.iter().find(|(p, _)| *p == self.id).map(|(_, k)| *k);
                if own != Some(self.keys.public()) {
                    return Err(
                        "this party's own public key is missing or altered in the keys relayed"
                            .into(),
                    );
                }
                if let Some(pinned) = &self.pinned {
                    for (peer, key) in keys.iter().filter(|(p, _)| *p != self.id) {
                        if !pinned.contains(key) {
                            let short = borderlens_domain::hex::encode(&key[..4]);
                            return Err(format!(
                                "party {peer}'s public key ({short}…) is not one this party \
                                 pins: the keys relayed are not the partners'"
                            ));
                        }
                    }
                }
                // Two members with one key would make this party's masks with both come from
                // one secret: a coordinator holding it would unmask.
                let mut distinct: Vec<&[u8; 32]> = keys.iter().map(|(_, k)| k).collect();
                distinct.sort_unstable();
                distinct.dedup();
                if distinct.len() != keys.len() {
                    return Err("two members are relayed with the same public key".into());
                }
                let salt_of = |party: PartyId| {
                    salts
                        .iter()
                        .find(|(p, _)| *p == party)
                        .map(|(_, s)| *s)
                        .ok_or_else(|| format!("no session salt relayed for party {party}"))
                };
                if salt_of(self.id)? != self.salt {
                    return Err(
                        "this party's own session salt is altered in the salts relayed".into(),
                    );
                }
                let mut shared = BTreeMap::new();
                for (peer, key) in keys.iter().filter(|(p, _)| *p != self.id) {
                    let agreed = self
                        .keys
                        .agree(key)
                        .ok_or_else(|| format!("party {peer}'s public key is of low order"))?;
                    let theirs = salt_of(*peer)?;
                    let (lower, higher) = if self.id < *peer {
                        (&self.salt, &theirs)
                    } else {
                        (&theirs, &self.salt)
                    };
                    shared.insert(*peer, secagg::pair_secret(&agreed, lower, higher));
                }
                self.shared = shared;
                self.agreed_members = keys.iter().map(|(p, _)| *p).collect();
                ack
            }
            Request::Vocabulary => {
                let own = FeaturePipeline::fit(&self.items);
                let json = serde_json::to_vec(&own).map_err(|e| e.to_string())?;
                Ok((Kind::Pipeline, Answer::Bytes(json)))
            }
            Request::Pipeline { pipeline } => {
                let wanted: Vec<bool> = self.items.iter().map(|d| d.label.is_some()).collect();
                let (data, _) = pipeline.transform(&self.items, &wanted, self.label);
                let summaries = FeatureSummary::of_data(&data);
                self.pipeline = Some(pipeline.clone());
                self.data = Some(data);
                self.agreed = None;
                self.model = None;
                self.scratch = None;
                let json = serde_json::to_vec(&summaries).map_err(|e| e.to_string())?;
                Ok((Kind::Summaries, Answer::Bytes(json)))
            }
            // The options are the coordinator's to apply; a party only bins.
            Request::Binning {
                binning,
                config,
                noise,
            } => {
                let data = self.data.as_ref().ok_or("no pipeline agreed yet")?;
                binning.check(data).map_err(|e| e.to_string())?;
                if config.num_leaves > MAX_LEAVES {
                    return Err(format!(
                        "{} leaves per tree asked, at most {MAX_LEAVES}",
                        config.num_leaves
                    ));
                }
                match (noise, &self.policy) {
                    (None, Some(policy)) => {
                        return Err(format!(
                            "this node adds differential-privacy noise of multiplier {} at \
                             least; the coordinator asked for none",
                            policy.min_noise_multiplier
                        ))
                    }
                    (Some(z), Some(policy)) if *z < policy.min_noise_multiplier => {
                        return Err(format!(
                            "this node adds differential-privacy noise of multiplier {} at \
                             least; the coordinator asked for {z}",
                            policy.min_noise_multiplier
                        ))
                    }
                    _ => {}
                }
                // Once noisy sums were sent, the noise stays as it was: exact sums after
                // noisy ones would undo them.
                if let Some(spent) = &self.spent {
                    if *noise != Some(spent.noise_multiplier) {
                        return Err(format!(
                            "this party sent sums with noise of multiplier {} in this session: \
                             the noise cannot change now",
                            spent.noise_multiplier
                        ));
                    }
                }
                if let Some(z) = noise {
                    // The sensitivity assumes rows of weight 1 (as the pipeline gives them).
                    if data.weights.iter().any(|&w| w != 1.0) {
                        return Err("differential privacy needs rows of weight 1".into());
                    }
                    let noise = Noise::new(*z)?;
                    // The widest histogram (every feature) must take the noise.
                    noise.fits(dp::histogram_sensitivity(binning.features().len()))?;
                    self.spent.get_or_insert(Spent::new(*z));
                    self.noise = Some(noise);
                } else {
                    self.noise = None;
                }
                self.agreed = Some(Agreed {
                    binned: binning.bin_rows(data),
                    binning: binning.clone(),
                    max_nodes: 2 * config.num_leaves.max(2),
                });
                ack
            }
            Request::LabelSums => {
                let data = self.data.as_ref().ok_or("no pipeline agreed yet")?;
                let sums = LabelSums::of(&data.labels, &data.weights);
                let mut words = [sums.n_rows, sums.weight as u64, sums.positive_weight as u64];
                let next = self.next_release()?;
                if let (Some(next), Some(noise)) = (next, self.noise.as_mut()) {
                    noise.add_to_label_sums(&mut words)?;
                    self.spent = Some(next);
                }
                self.masked(call, words.to_vec())
            }
            Request::Init { init_score } => {
                let data = self.data.as_ref().ok_or("no pipeline agreed yet")?;
                if !init_score.is_finite() {
                    return Err(format!("starting score {init_score}"));
                }
                self.model = Some(Model {
                    init_score: *init_score,
                    trees: Vec::new(),
                    scores: vec![*init_score; data.n_rows()],
                });
                ack
            }
            Request::Root {
                iteration,
                features,
            } => {
                let (data, model) = match (&self.data, &self.model) {
                    (Some(data), Some(model)) => (data, model),
                    _ => return Err("no starting score yet".into()),
                };
                if *iteration != model.trees.len() {
                    return Err(format!(
                        "tree {iteration} asked, {} trees applied",
                        model.trees.len()
                    ));
                }
                let n = data.n_rows();
                let (mut gradients, mut hessians) = (vec![0; n], vec![0; n]);
                log_loss_gradients(
                    &model.scores,
                    &data.labels,
                    &data.weights,
                    &mut gradients,
                    &mut hessians,
                );
                let agreed = self.agreed.as_ref().ok_or("no binning agreed yet")?;
                let rows: Vec<u32> = (0..n as u32).collect();
                let root = NodeHistogram::build(
                    &agreed.binning,
                    &agreed.binned,
                    &rows,
                    &gradients,
                    &hessians,
                );
                let n_features = agreed.binning.features().len();
                let ascending = features.windows(2).all(|w| w[0] < w[1]);
                if features.first() != Some(&0)
                    || !ascending
                    || features.last().is_some_and(|&f| f >= n_features)
                {
                    return Err(format!(
                        "the features of tree {iteration} must ascend from the first and be \
                         below {n_features}: {features:?}"
                    ));
                }
                let features = features.clone();
                let mut words = Vec::new();
                root.extend_words_of(&agreed.binning, &features, &mut words);
                let next = self.next_release()?;
                let chunk_len = words.len();
                self.release_histograms(next, &mut words, chunk_len, features.len())?;
                self.scratch = Some(Scratch {
                    features,
                    gradients,
                    hessians,
                    rows: vec![Some(rows)],
                    histograms: vec![Some(root)],
                    ahead: BTreeMap::new(),
                    next_child: 1,
                });
                self.masked(call, words)
            }
            Request::Split { confirm, ahead } => {
                let next = self.next_release()?;
                let agreed = self.agreed.as_ref().ok_or("no binning agreed yet")?;
                let scratch = self.scratch.as_mut().ok_or("no tree started")?;
                if ahead.is_empty() || ahead.len() > agreed.max_nodes / 2 {
                    return Err(format!(
                        "{} leaves to split in one round, 1 to {} allowed",
                        ahead.len(),
                        agreed.max_nodes / 2
                    ));
                }
                confirm_splits(scratch, confirm, agreed.max_nodes)?;
                // Checked whole before any split: a refusal leaves the leaves as they were.
                for (i, a) in ahead.iter().enumerate() {
                    check_ahead(agreed, scratch, a)?;
                    if ahead[..i].iter().any(|b| b.node == a.node) {
                        return Err(format!("node {} asked twice in one round", a.node));
                    }
                }
                let chunk_len = NodeHistogram::words_len(&agreed.binning, &scratch.features);
                let n_features = scratch.features.len();
                let mut words = Vec::with_capacity(ahead.len() * chunk_len);
                for a in ahead {
                    split_ahead(agreed, scratch, a, &mut words);
                }
                self.release_histograms(next, &mut words, chunk_len, n_features)?;
                self.masked(call, words)
            }
            Request::Apply {
                iteration,
                tree,
                confirm,
            } => {
                let model = self.model.as_mut().ok_or("no starting score yet")?;
                if *iteration + 1 == model.trees.len() && model.trees.last() == Some(tree) {
                    return ack;
                }
                if *iteration != model.trees.len() {
                    return Err(format!(
                        "tree {iteration} to apply, {} trees applied",
                        model.trees.len()
                    ));
                }
                let max_nodes = self.agreed.as_ref().map_or(0, |a| a.max_nodes);
                // Checked whole before anything changes: refused, the tree stays as grown.
                let scratch = self.scratch.as_mut().ok_or("no tree grown")?;
                confirm_splits(scratch, confirm, max_nodes)?;
                let scratch = self.scratch.take().ok_or("no tree grown")?;
                // Splits made ahead and never taken are forgotten.
                let leaves: Vec<(usize, Vec<u32>)> = scratch
                    .rows
                    .into_iter()
                    .enumerate()
                    .filter_map(|(node, rows)| rows.map(|rows| (node, rows)))
                    .collect();
                let fits = leaves.iter().all(|(node, _)| {
                    tree.nodes
                        .get(*node)
                        .is_some_and(|n| n.split.is_none() && n.value.is_finite())
                });
                if !fits {
                    return Err("the tree's leaves are not the nodes grown".into());
                }
                add_leaf_values(tree, &leaves, &mut model.scores);
                model.trees.push(tree.clone());
                ack
            }
            Request::Segments { dimension } => {
                if std::mem::replace(&mut self.stats_answered.0, true) {
                    return Err("segments were answered already in this session".into());
                }
                let mut segments: Vec<String> = self.controls(dimension)?.into_keys().collect();
                segments.sort_unstable();
                let json = serde_json::to_vec(&segments).map_err(|e| e.to_string())?;
                Ok((Kind::Segments, Answer::Bytes(json)))
            }
            Request::Counts {
                dimension,
                segments,
                elsewhere,
            } => {
                if std::mem::replace(&mut self.stats_answered.1, true) {
                    return Err("counts were answered already in this session".into());
                }
                // Every party of the key agreement, none dropped: sums over other sets of
                // parties would give one party's counts by difference.
                let members: std::collections::BTreeSet<PartyId> =
                    call.members.iter().copied().collect();
                if members != self.agreed_members {
                    return Err(format!(
                        "round {} lists {} of the {} parties that agreed keys: counts are \
                         summed over all of them or not at all",
                        call.round,
                        members.len(),
                        self.agreed_members.len()
                    ));
                }
                if segments.len() > MAX_SEGMENTS {
                    return Err(format!(
                        "{} segments asked, at most {MAX_SEGMENTS}",
                        segments.len()
                    ));
                }
                let mut controls = self.controls(dimension)?;
                let mut words = Vec::with_capacity(2 * segments.len() + 2);
                for segment in segments {
                    let (n, hits) = controls.remove(segment).unwrap_or((0, 0));
                    words.extend([n, hits]);
                }
                // Whatever is in no segment asked, together.
                if *elsewhere {
                    let (n, hits) = controls
                        .values()
                        .fold((0, 0), |(n, h), (a, b)| (n + a, h + b));
                    words.extend([n, hits]);
                }
                self.masked(call, words)
            }
            // Revealing a pair's round seed lets the coordinator unmask the party left out
            // of that round; without self-masks (double masking) it cannot tell a party that
            // dropped from one whose answer it holds, so no seed is revealed. Training never
            // asks: a dropped party's tree is regrown by the others.
            Request::Reveal { dropped, .. } => Err(format!(
                "the round seed shared with party {dropped} is not revealed: without self-masks \
                 it could unmask a party that did answer"
            )),
        }
    }

    /// This party's controlled declarations (labelled items; a declaration is a hit when one
    /// of its items is, and falls in its first item's segment) by segment of `dimension`:
    /// origin country, or route (departure country/transport mode, `?` for what is not
    /// declared, as `controls pooled` names them): (declarations, hits). By `concealment`, its
    /// findings (declarations with fraud found) by method, "not recorded" without one:
    /// (findings, findings) per method. The coordinator takes the denominator of the shares
    /// from the sums it is given, never from a party's own total: a total of all findings,
    /// less the methods shown, would give one party's findings of a method only it holds.
    fn controls(&self, dimension: &str) -> Result<BTreeMap<String, (u64, u64)>, String> {
        if dimension == "concealment" {
            let mut found: BTreeMap<&str, bool> = BTreeMap::new();
            for item in &self.items {
                let Some(label) = item.label else { continue };
                *found.entry(item.key.declaration_id.as_str()).or_default() |= label.fraud;
            }
            let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for (id, _) in found.into_iter().filter(|(_, hit)| *hit) {
                let method = self
                    .concealment
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| "not recorded".to_string());
                let entry = out.entry(method).or_default();
                entry.0 += 1;
                entry.1 += 1;
            }
            return Ok(out);
        }
        let segment: fn(&DeclarationItem) -> String = match dimension {
            "origin" => |d| d.origin_country.clone(),
            "route" => |d| {
                let known = |s: &str| {
                    if s.is_empty() {
                        "?".to_string()
                    } else {
                        s.to_string()
                    }
                };
                format!(
                    "{}/{}",
                    known(&d.departure_country),
                    known(&d.transport_mode)
                )
            },
            other => {
                return Err(format!(
                    "no statistics by {other:?}: origin, route or concealment"
                ))
            }
        };
        let mut declarations: BTreeMap<&str, (String, bool)> = BTreeMap::new();
        for item in &self.items {
            let Some(label) = item.label else { continue };
            let entry = declarations
                .entry(item.key.declaration_id.as_str())
                .or_insert_with(|| (segment(item), false));
            entry.1 |= label.fraud;
        }
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for (segment, hit) in declarations.into_values() {
            let entry = out.entry(segment).or_default();
            entry.0 += 1;
            entry.1 += u64::from(hit);
        }
        Ok(out)
    }

    /// `words` masked with the round's members.
    fn masked(&self, call: &Call, words: Vec<u64>) -> Result<(Kind, Answer), String> {
        let mut peers = Vec::new();
        for &member in call.members.iter().filter(|&&m| m != self.id) {
            let shared = self
                .shared
                .get(&member)
                .ok_or_else(|| format!("no secret shared with party {member}"))?;
            peers.push((member, *shared));
        }
        // A round's members must be parties whose keys were agreed. (A coordinator that is
        // also a party could still list this party with itself alone and take its own masks
        // away: a party cannot tell that from a legitimate drop to two. Run the coordinator
        // apart from the nodes; masks with a threshold would close it.)
        if call
            .members
            .iter()
            .any(|m| !self.agreed_members.contains(m))
        {
            return Err(format!(
                "round {} lists a party whose key was not agreed",
                call.round
            ));
        }
        // Alone, a party's "sum" is its own histogram: never send it.
        if peers.is_empty() {
            return Err(format!(
                "round {} lists this party alone: a masked sum needs other parties, or the \
                 coordinator learns this party's histogram",
                call.round
            ));
        }
        // Masked as the envelope is written (the round and nonce are the call's).
        Ok((Kind::Masked, Answer::Masked { words, peers }))
    }
}

/// Takes the splits `confirm` as the tree's: each names a leaf split ahead and its children's
/// ids, numbered as the grower numbers them (the next two ids in the order it splits: left
/// 1, 3, 5..., right the one after, within `max_nodes`). Checked whole before any is taken.
fn confirm_splits(
    scratch: &mut Scratch,
    confirm: &[Confirm],
    max_nodes: usize,
) -> Result<(), String> {
    let mut next = scratch.next_child;
    let mut taken = std::collections::BTreeSet::new();
    for c in confirm {
        let Confirm { node, left, right } = *c;
        if left != next || right != next + 1 || right >= max_nodes {
            return Err(format!(
                "children {left} and {right} of node {node}: the next are {next} and {}",
                next + 1
            ));
        }
        if !scratch.ahead.contains_key(&node) || !taken.insert(node) {
            return Err(format!("node {node} was not split ahead"));
        }
        next += 2;
    }
    for c in confirm {
        let Confirm { node, left, right } = *c;
        let Some(split) = scratch.ahead.remove(&node) else {
            continue;
        };
        if right >= scratch.rows.len() {
            scratch.rows.resize(right + 1, None);
            scratch.histograms.resize(right + 1, None);
        }
        scratch.rows[node] = None;
        // Checked to be there when the leaf was split ahead; it has not changed since.
        let mut large = scratch.histograms[node]
            .take()
            .unwrap_or_else(|| split.small.clone());
        large.subtract(&split.small);
        let (left_histogram, right_histogram) = if split.small_is_left {
            (split.small, large)
        } else {
            (large, split.small)
        };
        scratch.rows[left] = Some(split.left_rows);
        scratch.rows[right] = Some(split.right_rows);
        scratch.histograms[left] = Some(left_histogram);
        scratch.histograms[right] = Some(right_histogram);
    }
    scratch.next_child = next;
    Ok(())
}

/// Whether leaf `a.node` may be split ahead: an existing feature, a split of its bins, a leaf
/// with rows and a histogram, not split ahead already.
fn check_ahead(agreed: &Agreed, scratch: &Scratch, a: &Ahead) -> Result<(), String> {
    let Ahead {
        node,
        feature,
        ref split,
    } = *a;
    if feature >= agreed.binning.features().len() {
        return Err(format!("feature {feature} does not exist"));
    }
    let n_bins = agreed.binning.features()[feature].n_bins();
    match split {
        borderlens_risk::gbdt::BinSplit::Categorical { left } if left.len() != n_bins => {
            return Err(format!(
                "a split of feature {feature} over {} bins, it has {n_bins}",
                left.len()
            ));
        }
        borderlens_risk::gbdt::BinSplit::Numeric { threshold_bin, .. }
            if usize::from(*threshold_bin) >= n_bins =>
        {
            return Err(format!(
                "a split of feature {feature} after bin {threshold_bin}, it has {n_bins}"
            ));
        }
        _ => {}
    }
    if scratch.ahead.contains_key(&node) {
        return Err(format!("node {node} is split ahead already"));
    }
    let rows = scratch.rows.get(node).is_some_and(Option::is_some);
    let histogram = scratch.histograms.get(node).is_some_and(Option::is_some);
    if !rows || !histogram {
        return Err(format!(
            "node {node} has no rows (split already, or unknown)"
        ));
    }
    Ok(())
}

/// Splits leaf `a.node` ahead (checked by [`check_ahead`]): its rows partitioned, the smaller
/// child's histogram built and the other's taken from the leaf's, as pooled training does;
/// appends the left child's words to `words`.
fn split_ahead(agreed: &Agreed, scratch: &mut Scratch, a: &Ahead, words: &mut Vec<u64>) {
    let Ahead {
        node,
        feature,
        ref split,
    } = *a;
    let empty = Vec::new();
    let rows = scratch
        .rows
        .get(node)
        .and_then(Option::as_ref)
        .unwrap_or(&empty);
    let column = agreed.binned.column(feature);
    let (left_rows, right_rows): (Vec<u32>, Vec<u32>) = rows
        .iter()
        .partition(|&&r| split.goes_left(column[r as usize]));
    let small_is_left = left_rows.len() <= right_rows.len();
    let small = NodeHistogram::build(
        &agreed.binning,
        &agreed.binned,
        if small_is_left {
            &left_rows
        } else {
            &right_rows
        },
        &scratch.gradients,
        &scratch.hessians,
    );
    let features = &scratch.features;
    if small_is_left {
        small.extend_words_of(&agreed.binning, features, words);
    } else {
        // The left child's words are the leaf's less the right child's: wrapping arithmetic
        // on words is the arithmetic of the sums.
        let empty;
        let parent = match scratch.histograms.get(node).and_then(Option::as_ref) {
            Some(parent) => parent,
            None => {
                empty = NodeHistogram::empty(&agreed.binning);
                &empty
            }
        };
        parent.extend_words_less(&small, &agreed.binning, features, words);
    }
    scratch.ahead.insert(
        node,
        AheadSplit {
            left_rows,
            right_rows,
            small,
            small_is_left,
        },
    );
}
