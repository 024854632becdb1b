//! The coordinator: agrees the features from the parties' summaries, runs the rounds of
//! boosting, sums the parties' masked histograms and picks the splits with `risk`'s own code
//! ([`grow_tree`] over a [`NodeRows`] that asks the parties), then broadcasts each tree.
//!
//! Rounds: every call is a round with its own number and a fresh nonce; every answer is checked
//! (decodes, checksum, party, round, nonce, kind) before it is read, and every sum is checked for
//! range (lengths, row counts that add up, hessians not negative, magnitudes the rows' weights
//! allow). A party that does not answer, answers garbage, a replayed or stale message, or
//! refuses, is a fault named with the party, the round and the stage (tree and node): training
//! aborts ([`OnFault::Abort`]) or drops the party and regrows the current tree with the others
//! ([`OnFault::Drop`], the reason recorded in [`FederatedModel::dropped`]). Faults while the
//! features are agreed always abort. No party's model changes in a failed round: a tree reaches
//! the parties only once it is whole ([`Request::Apply`]).
//!
//! A dropped party's masks are not unmasked in training: its rows are in the histograms of the
//! tree's earlier nodes, so the tree is regrown by the survivors from the root, in fresh rounds
//! whose masks are theirs only. [`crate::secagg::unmask`] (survivors reveal a round's seeds,
//! [`Request::Reveal`]) recovers a single round's sum, as pooled statistics will need.

use std::collections::BTreeMap;

use borderlens_risk::features::FeaturePipeline;
use borderlens_risk::gbdt::{
    grow_tree, round_sample, BinSplit, Binning, Booster, FeatureSummary, GbdtConfig, LabelSums,
    NodeHistogram, NodeRows, Tree,
};

use crate::message::{Ahead, Call, Confirm, Kind, Received, Request};
use crate::party::LocalParty;
use crate::secagg::Nonce;
use crate::PartyId;

/// A party that could not be reached.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreachable: {0}")]
pub struct Unreachable(pub String);

/// How the coordinator reaches the parties: in process ([`InProcess`]) or, later, over HTTP.
pub trait Transport {
    /// The parties' ids, ascending.
    fn parties(&self) -> Vec<PartyId>;

    /// Sends `call` to `party`; its answer as bytes (an [`Envelope`]).
    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable>;

    /// Sends `call` to each of `parties`; their answers in the same order. One after the other
    /// unless the transport knows better (in process, the parties answer in parallel).
    fn call_all(&mut self, parties: &[PartyId], call: &Call) -> Vec<Result<Vec<u8>, Unreachable>> {
        parties
            .iter()
            .map(|&party| self.call(party, call))
            .collect()
    }
}

/// Parties in the coordinator's process.
pub struct InProcess {
    parties: Vec<LocalParty>,
}

impl InProcess {
    /// The parties (distinct ids).
    pub fn new(mut parties: Vec<LocalParty>) -> InProcess {
        parties.sort_by_key(LocalParty::id);
        InProcess { parties }
    }

    /// Party `id`.
    pub fn party(&self, id: PartyId) -> Option<&LocalParty> {
        self.parties.iter().find(|p| p.id() == id)
    }

    /// Every party.
    pub fn all(&self) -> &[LocalParty] {
        &self.parties
    }
}

impl Transport for InProcess {
    fn parties(&self) -> Vec<PartyId> {
        self.parties.iter().map(LocalParty::id).collect()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        self.parties
            .iter_mut()
            .find(|p| p.id() == party)
            .map(|p| p.handle(call))
            .ok_or_else(|| Unreachable(format!("no party {party}")))
    }

    fn call_all(&mut self, parties: &[PartyId], call: &Call) -> Vec<Result<Vec<u8>, Unreachable>> {
        use rayon::prelude::*;
        let mut answers: Vec<Option<Vec<u8>>> = self
            .parties
            .par_iter_mut()
            .map(|p| parties.contains(&p.id()).then(|| p.handle(call)))
            .collect();
        parties
            .iter()
            .map(|&party| {
                let at = self.parties.iter().position(|p| p.id() == party);
                at.and_then(|at| answers[at].take())
                    .ok_or_else(|| Unreachable(format!("no party {party}")))
            })
            .collect()
    }
}

/// What to do when a party fails in a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFault {
    /// Stop training with an error naming the party, round and stage.
    Abort,
    /// Drop the party (the reason recorded), regrow the current tree with the others; abort
    /// when fewer than two parties are left.
    Drop,
}

/// Federated training options.
#[derive(Clone, Debug)]
pub struct FederationOptions {
    /// Boosting options. Bagging is refused (its row draws are the pooled rows'); early
    /// stopping is not run (no validation rows are pooled).
    pub gbdt: GbdtConfig,
    /// What a fault does.
    pub on_fault: OnFault,
    /// Differential privacy: the noise every party adds to what it releases ([`crate::dp`]);
    /// `None`, exact sums (the trees are the pooled ones).
    pub privacy: Option<Privacy>,
}

/// The noise asked of the parties, and the δ at which the privacy spent is reported.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Privacy {
    /// σ of each party's noise over a release's sensitivity ([`crate::dp`]).
    pub noise_multiplier: f64,
    /// The δ of the (ε, δ) reported.
    pub delta: f64,
}

/// The privacy a training spent, per party (each party adds its own noise and answered every
/// noisy round while a member): the noise, the releases and their (ε, δ).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrivacySpent {
    /// The releases and their ρ.
    pub spent: crate::dp::Spent,
    /// The δ of `epsilon`.
    pub delta: f64,
    /// ε at `delta`.
    pub epsilon: f64,
}

/// A party dropped during training.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Which.
    pub party: PartyId,
    /// In which round.
    pub round: u64,
    /// Why, with the stage.
    pub reason: String,
}

/// The result of federated training: what every party got.
#[derive(Clone, Debug)]
pub struct FederatedModel {
    /// The agreed feature pipeline.
    pub pipeline: FeaturePipeline,
    /// The agreed bins.
    pub binning: Binning,
    /// The trees.
    pub booster: Booster,
    /// Parties dropped, in order.
    pub dropped: Vec<Dropped>,
    /// Rounds run.
    pub rounds: u64,
    /// With differential privacy, what a party that answered every round spent.
    pub privacy: Option<PrivacySpent>,
}

/// Why federated training failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FederationError {
    /// A party failed: it did not answer, or its answer was refused.
    #[error("round {round} ({stage}): party {party}: {what}")]
    Party {
        /// Which party.
        party: PartyId,
        /// Which round.
        round: u64,
        /// Tree and node, or setup step.
        stage: String,
        /// What went wrong.
        what: String,
    },
    /// The sum of the parties' answers is not what their rows can give.
    #[error("round {round} ({stage}): the parties' summed answer is out of range: {what}")]
    OutOfRange {
        /// Which round.
        round: u64,
        /// Tree and node, or setup step.
        stage: String,
        /// What is out of range.
        what: String,
    },
    /// Training cannot go on (options, too few parties).
    #[error("{0}")]
    Refused(String),
    /// Stopped by the caller after this many trees.
    #[error("interrupted after {0} trees")]
    Interrupted(usize),
}

/// A party's fault in a round, before the policy is applied.
struct Fault {
    party: PartyId,
    what: String,
}

/// Runs federated training over a [`Transport`].
pub struct Coordinator<T: Transport> {
    transport: T,
    options: FederationOptions,
    round: u64,
    members: Vec<PartyId>,
    dropped: Vec<Dropped>,
    /// The tree being grown.
    tree: Option<usize>,
    /// Whether a masked sum of the tree being grown was revealed: a party dropped after that
    /// cannot be dropped, for regrowing the tree without it would give the sum without it, and
    /// the difference is its own histogram.
    summed_in_tree: bool,
    /// Rounds that summed noisy releases (with differential privacy).
    releases: u64,
}

impl<T: Transport> Coordinator<T> {
    /// A coordinator of the transport's parties.
    pub fn new(transport: T, options: FederationOptions) -> Coordinator<T> {
        let members = transport.parties();
        Coordinator {
            transport,
            options,
            round: 0,
            members,
            dropped: Vec::new(),
            tree: None,
            summed_in_tree: false,
            releases: 0,
        }
    }

    /// The transport (e.g. to look at in-process parties).
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, to reach the parties outside the rounds (sessions of HTTP nodes).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    /// The parties still taking part, ascending.
    pub fn members(&self) -> &[PartyId] {
        &self.members
    }

    /// Trains: agrees keys, vocabularies and bins, then boosts `options.gbdt.n_trees` trees.
    pub fn train(&mut self) -> Result<FederatedModel, FederationError> {
        self.train_with(&mut |_| true)
    }

    /// [`Coordinator::train`], calling `on_tree` with the number of trees every party has
    /// applied after each tree; training stops ([`FederationError::Interrupted`]) when it
    /// answers `false`. The parties keep the trees applied so far.
    pub fn train_with(
        &mut self,
        on_tree: &mut dyn FnMut(usize) -> bool,
    ) -> Result<FederatedModel, FederationError> {
        let config = self.options.gbdt.clone();
        if config.bagging_fraction < 1.0 {
            return Err(FederationError::Refused(
                "bagging is not supported in federated training (bagging_fraction must be 1)"
                    .into(),
            ));
        }
        if self.members.len() < 2 {
            return Err(FederationError::Refused(format!(
                "{} parties: federated training needs at least 2",
                self.members.len()
            )));
        }
        let noise = self.options.privacy.map(|p| p.noise_multiplier);
        if let Some(p) = self.options.privacy {
            crate::dp::check_multiplier(p.noise_multiplier).map_err(FederationError::Refused)?;
            if !(p.delta > 0.0 && p.delta < 1.0) {
                return Err(FederationError::Refused(format!(
                    "delta {}: it must be in (0, 1)",
                    p.delta
                )));
            }
        }
        self.agree_keys()?;
        // Vocabularies, then summaries of the rows described with the union.
        let pipelines = self.collect_setup(Request::Vocabulary)?;
        let mut parts = Vec::new();
        for (party, e) in pipelines {
            let pipeline: FeaturePipeline = serde_json::from_slice(e.payload()).map_err(|err| {
                self.party_error(party, "vocabularies", format!("not a pipeline: {err}"))
            })?;
            parts.push(pipeline);
        }
        let pipeline = FeaturePipeline::union(&parts).ok_or_else(|| {
            FederationError::Refused("the parties' pipelines disagree on text columns".into())
        })?;
        let answers = self.collect_setup(Request::Pipeline {
            pipeline: pipeline.clone(),
        })?;
        let mut summaries = Vec::new();
        for (party, e) in answers {
            let summary: Vec<FeatureSummary> =
                serde_json::from_slice(e.payload()).map_err(|err| {
                    self.party_error(party, "feature summaries", format!("not summaries: {err}"))
                })?;
            summaries.push(summary);
        }
        let binning = Binning::from_summaries(&summaries, config.max_bin)
            .map_err(|e| FederationError::Refused(format!("feature summaries: {e}")))?;
        let n_features = binning.features().len();
        if n_features != pipeline.features().len() {
            return Err(FederationError::Refused(format!(
                "summaries of {n_features} features, the pipeline has {}",
                pipeline.features().len()
            )));
        }
        self.collect_setup(Request::Binning {
            binning: binning.clone(),
            config: config.clone(),
            noise,
        })?;
        // The starting score from the masked label sums (a noisy release when noise is asked).
        if noise.is_some() {
            self.releases += 1;
        }
        let words = self.sum_setup(Request::LabelSums, 3)?;
        let out_of_range = |round, what| FederationError::OutOfRange {
            round,
            stage: Request::LabelSums.name(),
            what,
        };
        let sums = match noise {
            None => LabelSums {
                n_rows: words[0],
                weight: words[1] as i64,
                positive_weight: words[2] as i64,
            },
            Some(z) => {
                let (rows, abs) = crate::dp::tolerance(
                    z,
                    crate::dp::label_sums_sensitivity(),
                    self.members.len(),
                );
                noisy_label_sums(&words, rows, abs)
                    .map_err(|what| out_of_range(self.round, what))?
            }
        };
        sums.check()
            .map_err(|what| out_of_range(self.round, what))?;
        let init_score = sums.init_score();
        self.collect_setup(Request::Init { init_score })?;
        let limits = Limits {
            max_rows: usize::try_from(sums.n_rows).unwrap_or(usize::MAX),
            max_abs: sums
                .weight
                .saturating_add(sums.n_rows as i64)
                .saturating_add(1),
        };

        let mut trees: Vec<Tree> = Vec::new();
        let mut iteration = 0;
        while iteration < config.n_trees {
            self.tree = Some(iteration);
            self.summed_in_tree = false;
            let (_, allowed) = round_sample(&config, 0, n_features, iteration);
            let mut rows = Rounds {
                coordinator: self,
                binning: &binning,
                features: crate::summed_features(&allowed),
                iteration,
                limits,
                histograms: BTreeMap::new(),
                next: Vec::new(),
                split_ahead: BTreeMap::new(),
                confirm: Vec::new(),
            };
            let grown = grow_tree(&binning, &config, &allowed, &mut rows);
            let confirm = std::mem::take(&mut rows.confirm);
            let tree = match grown {
                // Grown: a party dropped while it is applied is not regrown without.
                Ok(tree) => {
                    self.summed_in_tree = false;
                    tree
                }
                Err(Step::Abort(e)) => return Err(e),
                // A party was dropped: grow this tree again with the others.
                Err(Step::Dropped) => continue,
            };
            // Applying is idempotent: after a drop, the survivors that applied it already
            // acknowledge again, the others apply it.
            loop {
                let request = Request::Apply {
                    iteration,
                    tree: tree.clone(),
                    confirm: confirm.clone(),
                };
                match self.collect_boosting(request, None) {
                    Ok(_) => break,
                    Err(Step::Abort(e)) => return Err(e),
                    Err(Step::Dropped) => {}
                }
            }
            trees.push(tree);
            iteration += 1;
            if !on_tree(iteration) {
                self.tree = None;
                return Err(FederationError::Interrupted(iteration));
            }
        }
        self.tree = None;
        Ok(FederatedModel {
            booster: Booster::new(pipeline.features(), init_score, trees),
            pipeline,
            binning,
            dropped: self.dropped.clone(),
            rounds: self.round,
            privacy: self.options.privacy.map(|p| {
                let mut spent = crate::dp::Spent::new(p.noise_multiplier);
                for _ in 0..self.releases {
                    spent = spent.after_release();
                }
                PrivacySpent {
                    spent,
                    delta: p.delta,
                    epsilon: spent.epsilon(p.delta),
                }
            }),
        })
    }

    /// Keys and session salts: each party's, relayed to all, which agree their pair secrets.
    fn agree_keys(&mut self) -> Result<(), FederationError> {
        let answers = self.collect_setup(Request::PublicKey)?;
        let mut keys: Vec<(PartyId, [u8; 32])> = Vec::new();
        let mut salts: Vec<(PartyId, [u8; 32])> = Vec::new();
        for (party, e) in answers {
            match (e.payload().get(..32), e.payload().get(32..)) {
                (Some(key), Some(salt)) if e.payload().len() == 64 => {
                    keys.push((party, key.try_into().expect("32 bytes")));
                    salts.push((party, salt.try_into().expect("32 bytes")));
                }
                _ => {
                    return Err(self.party_error(
                        party,
                        "public key",
                        "not 32 bytes of key and 32 of salt".into(),
                    ))
                }
            }
        }
        self.collect_setup(Request::Peers { keys, salts })?;
        Ok(())
    }

    /// Pooled statistics under secure aggregation: each party's controlled declarations and
    /// hits by segment of `dimension` (`origin` or `route`; by `concealment`, its findings by
    /// method, out of the findings counted), summed masked, so that no party's counts are
    /// seen. The parties first say which segments they have (not how many);
    /// segments at two parties or more are counted one by one, the others together as
    /// "elsewhere" when two parties or more hold some, so that no sum is one party's alone.
    /// The coordinator is trusted to choose the segments so (honest but curious): a party
    /// cannot tell a segment only it holds from one shared. Each party answers once per
    /// session, and only rounds listing every party of the key agreement.
    pub fn pooled_counts(&mut self, dimension: &str) -> Result<PooledCounts, FederationError> {
        if self.members.len() < 2 {
            return Err(FederationError::Refused(format!(
                "{} parties: pooled statistics need at least 2",
                self.members.len()
            )));
        }
        self.agree_keys()?;
        let answers = self.collect_setup(Request::Segments {
            dimension: dimension.to_string(),
        })?;
        let mut holders: BTreeMap<String, usize> = BTreeMap::new();
        let mut lists: Vec<std::collections::BTreeSet<String>> = Vec::new();
        for (party, e) in answers {
            let segments: Vec<String> = serde_json::from_slice(e.payload()).map_err(|err| {
                self.party_error(party, "segments", format!("not a list of names: {err}"))
            })?;
            if segments.len() > crate::party::MAX_SEGMENTS {
                return Err(self.party_error(
                    party,
                    "segments",
                    format!(
                        "{} segments, at most {}",
                        segments.len(),
                        crate::party::MAX_SEGMENTS
                    ),
                ));
            }
            let distinct: std::collections::BTreeSet<String> = segments.into_iter().collect();
            for segment in &distinct {
                *holders.entry(segment.clone()).or_default() += 1;
            }
            lists.push(distinct);
        }
        let shared: Vec<String> = holders
            .iter()
            .filter(|(_, parties)| **parties >= 2)
            .map(|(segment, _)| segment.clone())
            .collect();
        // The other segments together, only when two parties or more hold some: else their
        // sum would be one party's own.
        let holding_alone = lists
            .iter()
            .filter(|list| list.iter().any(|s| holders.get(s) == Some(&1)))
            .count();
        let elsewhere = holding_alone >= 2;
        let words = self.sum_setup(
            Request::Counts {
                dimension: dimension.to_string(),
                segments: shared.clone(),
                elsewhere,
            },
            2 * shared.len() + 2 * usize::from(elsewhere),
        )?;
        // Counts are below 2^48 and hits never exceed controls: anything else is not a sum
        // of counts.
        let round = self.round;
        let pairs: Vec<(u64, u64)> = words.chunks_exact(2).map(|w| (w[0], w[1])).collect();
        if let Some((n, hits)) = pairs.iter().find(|(n, h)| *n >= 1 << 48 || h > n) {
            return Err(FederationError::OutOfRange {
                round,
                stage: format!("counts by {dimension}"),
                what: format!("{hits} hits among {n} declarations"),
            });
        }
        let mut elsewhere = if elsewhere {
            pairs.last().copied()
        } else {
            None
        };
        let mut pairs = pairs;
        // By concealment the parties send each method's findings twice: the denominator of
        // every share is the findings summed here (the methods counted, and the others
        // together when asked), so that no party's own total is ever revealed.
        if dimension == "concealment" {
            let counted: u64 = pairs.iter().map(|(_, hits)| hits).sum();
            for pair in &mut pairs {
                pair.0 = counted;
            }
            if let Some(rest) = &mut elsewhere {
                rest.0 = counted;
            }
        }
        Ok(PooledCounts {
            dimension: dimension.to_string(),
            segments: shared
                .into_iter()
                .zip(pairs)
                .map(|(segment, (controls, hits))| (segment, controls, hits))
                .collect(),
            elsewhere,
            parties: self.members.clone(),
            rounds: self.round,
        })
    }

    fn next_call(&mut self, request: Request) -> Call {
        self.round += 1;
        let mut nonce: Nonce = [0; 16];
        if getrandom::fill(&mut nonce).is_err() {
            // No OS randomness: a nonce from the round alone still differs per round.
            nonce[..8].copy_from_slice(&self.round.to_le_bytes());
        }
        Call {
            round: self.round,
            nonce,
            members: self.members.clone(),
            request,
        }
    }

    /// The stage of a call, in words: the tree being grown, if any, and the request.
    fn stage(&self, call: &Call) -> String {
        match (self.tree, &call.request) {
            (_, Request::Root { .. }) | (None, _) => call.request.name(),
            (Some(tree), request) => format!("tree {tree}, {}", request.name()),
        }
    }

    fn party_error(&self, party: PartyId, stage: &str, what: String) -> FederationError {
        FederationError::Party {
            party,
            round: self.round,
            stage: stage.to_string(),
            what,
        }
    }

    fn abort(&self, fault: Fault, call: &Call) -> FederationError {
        FederationError::Party {
            party: fault.party,
            round: call.round,
            stage: self.stage(call),
            what: fault.what,
        }
    }

    /// Sends `call` to every member; their checked answers (for masked words, `words` of them
    /// each), or the first fault.
    fn collect(
        &mut self,
        call: &Call,
        words: Option<usize>,
    ) -> Result<Vec<(PartyId, Received)>, Fault> {
        let mut answers = Vec::with_capacity(call.members.len());
        let replies = self.transport.call_all(&call.members, call);
        for (&party, reply) in call.members.iter().zip(replies) {
            let bytes = reply.map_err(|e| Fault {
                party,
                what: format!("no answer ({e}): the party is dead or unreachable"),
            })?;
            let envelope = Received::read(bytes).map_err(|what| Fault {
                party,
                what: format!("malformed message: {what}"),
            })?;
            envelope
                .envelope()
                .check(party, call)
                .map_err(|what| Fault { party, what })?;
            if envelope.kind == Kind::Refused {
                return Err(Fault {
                    party,
                    what: format!("refused: {}", String::from_utf8_lossy(envelope.payload())),
                });
            }
            if let Some(words) = words {
                if envelope.payload().len() != 8 * words {
                    return Err(Fault {
                        party,
                        what: format!(
                            "out of range: {} bytes of masked words, expected {words} words",
                            envelope.payload().len()
                        ),
                    });
                }
            }
            answers.push((party, envelope));
        }
        Ok(answers)
    }

    /// A setup call: any fault aborts.
    fn collect_setup(
        &mut self,
        request: Request,
    ) -> Result<Vec<(PartyId, Received)>, FederationError> {
        let call = self.next_call(request);
        self.collect(&call, None).map_err(|f| self.abort(f, &call))
    }

    /// A setup call of masked words: their sum; any fault aborts.
    fn sum_setup(&mut self, request: Request, words: usize) -> Result<Vec<u64>, FederationError> {
        let call = self.next_call(request);
        let answers = self
            .collect(&call, Some(words))
            .map_err(|f| self.abort(f, &call))?;
        Ok(sum_masked(&answers, words))
    }

    /// A boosting call: its answers (for masked words, their sum); a fault aborts or drops the
    /// party, as the options say.
    fn collect_boosting(
        &mut self,
        request: Request,
        words: Option<usize>,
    ) -> Result<(Call, Vec<u64>), Step> {
        let call = self.next_call(request);
        // Spent once sent: a party that answers noisy sums has spent them, whether or not
        // another party's fault then drops the round.
        if words.is_some_and(|w| w > 0) && self.options.privacy.is_some() {
            self.releases += 1;
        }
        match self.collect(&call, words) {
            Ok(answers) => {
                if words.is_some_and(|w| w > 0) {
                    self.summed_in_tree = true;
                }
                Ok((call, sum_masked(&answers, words.unwrap_or(0))))
            }
            Err(fault) => Err(self.fault(fault, &call)),
        }
    }

    fn fault(&mut self, fault: Fault, call: &Call) -> Step {
        match self.options.on_fault {
            OnFault::Abort => Step::Abort(self.abort(fault, call)),
            // Regrowing the tree without a party whose histograms are in a sum already revealed
            // would reveal the sum without it: the difference is its own. Abort instead.
            OnFault::Drop if self.summed_in_tree && self.tree.is_some() => {
                let mut error = self.abort(fault, call);
                if let FederationError::Party { what, .. } = &mut error {
                    what.push_str(
                        "; not dropped: its histograms of this tree are in a sum already seen, \
                         and the tree regrown without it would reveal them by difference",
                    );
                }
                Step::Abort(error)
            }
            OnFault::Drop => {
                let stage = self.stage(call);
                self.members.retain(|&m| m != fault.party);
                self.dropped.push(Dropped {
                    party: fault.party,
                    round: call.round,
                    reason: format!("{stage}: {}", fault.what),
                });
                if self.members.len() < 2 {
                    return Step::Abort(FederationError::Party {
                        party: fault.party,
                        round: call.round,
                        stage,
                        what: format!("{}; dropped, and fewer than 2 parties are left", fault.what),
                    });
                }
                Step::Dropped
            }
        }
    }
}

/// The wrapping sum of checked answers of `len` masked words each.
fn sum_masked(answers: &[(PartyId, Received)], len: usize) -> Vec<u64> {
    // Straight from the payloads (checked to be `len` words each): no copy of a message.
    let mut total = vec![0u64; len];
    for (_, e) in answers {
        for (t, w) in total.iter_mut().zip(e.payload().chunks_exact(8)) {
            *t = t.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
        }
    }
    total
}

/// Pooled counts by segment ([`Coordinator::pooled_counts`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PooledCounts {
    /// `origin`, `route` or `concealment`.
    pub dimension: String,
    /// Per segment held by two parties or more: its name, controlled declarations, hits (by
    /// concealment: the findings counted in all segments, those with the method).
    pub segments: Vec<(String, u64, u64)>,
    /// The declarations of segments held by one party only, together (controls, hits), when
    /// two parties or more hold such segments (else not counted: the sum would be one
    /// party's).
    pub elsewhere: Option<(u64, u64)>,
    /// The parties counted.
    pub parties: Vec<PartyId>,
    /// Rounds run.
    pub rounds: u64,
}

/// Bounds of any sum of the parties' rows.
#[derive(Clone, Copy)]
struct Limits {
    max_rows: usize,
    max_abs: i64,
}

/// Noisy label sums (differential privacy), read as signed: refused beyond the noise's
/// tolerance (`rows` for the count, `abs` in fixed point for the weights), else clamped to
/// sums rows can give (at least one row of weight, the positive weight within the weight).
fn noisy_label_sums(words: &[u64], rows: u64, abs: i64) -> Result<LabelSums, String> {
    let (n, weight, positive) = (words[0] as i64, words[1] as i64, words[2] as i64);
    let rows = i64::try_from(rows).unwrap_or(i64::MAX);
    if n < -rows || weight < -abs || positive < -abs || positive > weight.saturating_add(abs) {
        return Err(format!(
            "noisy label sums beyond their noise: {n} rows, weight {weight}, positive weight \
             {positive} (fixed point)"
        ));
    }
    let n_rows = n.max(1) as u64;
    let weight = weight.max(borderlens_risk::gbdt::to_fixed(1.0));
    Ok(LabelSums {
        n_rows,
        weight,
        positive_weight: positive.clamp(0, weight),
    })
}

/// Why a round of boosting stopped.
enum Step {
    Abort(FederationError),
    /// A party was dropped: the tree is grown again.
    Dropped,
}

/// How many leaves a split's round splits (the one asked and those the grower may split next).
/// Leaf-wise trees grow mostly down one branch, so a few capture nearly all the rounds saved
/// and splitting more ahead only adds histograms never used: on the sample's 2021-Q1, 100 trees
/// took 3,207 rounds one at a time, 2,198 with 2, 1,981 with 4 and 1,963 with every candidate
/// (up to 30), which built a third more histograms than 4 and was slower.
const AHEAD: usize = 4;

/// The parties' rows of the tree being grown, as the grower sees them: each question is a round.
/// A split's round splits ahead the other leaves the grower may split next (up to the leaves
/// left to grow), so that a tree takes a round per level of the tree rather than per split;
/// the grower then takes those splits, in its own order, without a round, and the parties learn
/// the children's ids with the next call.
struct Rounds<'a, T: Transport> {
    coordinator: &'a mut Coordinator<T>,
    binning: &'a Binning,
    /// The features whose bins the parties send for this tree ([`crate::summed_features`]).
    features: Vec<usize>,
    iteration: usize,
    limits: Limits,
    /// Summed histogram of each node not split yet: a split's round answers with the left
    /// child's, the right child's is its parent's less the left's, so no node needs a round of
    /// its own.
    histograms: BTreeMap<usize, NodeHistogram>,
    /// The leaves the grower may split next, best first ([`NodeRows::ahead`]).
    next: Vec<Ahead>,
    /// Leaves the parties split ahead: the feature, the split and the children's summed
    /// histograms (checked), by node.
    split_ahead: BTreeMap<usize, (usize, BinSplit, [NodeHistogram; 2])>,
    /// Splits the grower took since the last call: sent with the next one.
    confirm: Vec<Confirm>,
}

impl<T: Transport> Rounds<'_, T> {
    fn out_of_range(&self, call: &Call, what: String) -> Step {
        Step::Abort(FederationError::OutOfRange {
            round: call.round,
            stage: self.coordinator.stage(call),
            what,
        })
    }

    /// The parties' noise multiplier (differential privacy): sums may stray by their noise.
    fn noise(&self) -> Option<f64> {
        self.coordinator.options.privacy.map(|p| p.noise_multiplier)
    }

    /// Words of one node's histogram.
    fn histogram_len(&self) -> usize {
        NodeHistogram::words_len(self.binning, &self.features)
    }

    /// `words` as the summed histogram of `what` (for messages), checked against what the rows
    /// can give.
    fn checked(&self, call: &Call, what: &str, words: &[u64]) -> Result<NodeHistogram, Step> {
        match self.noise() {
            None => NodeHistogram::from_words_of(
                self.binning,
                &self.features,
                words,
                self.limits.max_rows,
                self.limits.max_abs,
            ),
            Some(z) => NodeHistogram::from_noisy_words_of(
                self.binning,
                &self.features,
                words,
                self.limits.max_rows,
                self.limits.max_abs,
                crate::dp::tolerance(
                    z,
                    crate::dp::histogram_sensitivity(self.features.len()),
                    self.coordinator.members.len(),
                ),
            ),
        }
        .ok_or_else(|| {
            self.out_of_range(
                call,
                format!("{what}: row count or gradient/hessian sums beyond what the rows can give"),
            )
        })
    }

    /// The children's summed histograms of a split of `node` from the left child's words,
    /// checked: the left within the node's, leaving a right child whose sums rows can give too.
    fn checked_children(
        &self,
        call: &Call,
        node: usize,
        words: &[u64],
    ) -> Result<[NodeHistogram; 2], Step> {
        let mut left = self.checked(call, &format!("the left child of node {node}"), words)?;
        let Some(parent) = self.histograms.get(&node) else {
            return Err(Step::Abort(FederationError::Refused(format!(
                "tree {}: node {node} has no histogram to split",
                self.iteration
            ))));
        };
        if self.noise().is_some() {
            // Noisy sums: the left child's rows within its parent's, the right child what is
            // left (post-processing of the noisy sums).
            left.clamp_rows(parent.n_rows());
            let mut right = parent.clone();
            right.subtract(&left);
            return Ok([left, right]);
        }
        let (rows, l) = (parent.n_rows(), left.n_rows());
        if l > rows {
            return Err(self.out_of_range(
                call,
                format!("node {node} of {rows} rows has a left child of {l} rows"),
            ));
        }
        let mut right = parent.clone();
        right.subtract(&left);
        if !right.within(self.limits.max_rows, self.limits.max_abs) {
            return Err(self.out_of_range(
                call,
                format!("node {node}: the left child's sums exceed the node's"),
            ));
        }
        Ok([left, right])
    }
}

impl<T: Transport> NodeRows for Rounds<'_, T> {
    type Error = Step;

    fn root(&mut self) -> Result<NodeHistogram, Step> {
        let iteration = self.iteration;
        let len = self.histogram_len();
        let (call, words) = self.coordinator.collect_boosting(
            Request::Root {
                iteration,
                features: self.features.clone(),
            },
            Some(len),
        )?;
        let histogram = self.checked(&call, "the root", &words)?;
        self.histograms.insert(0, histogram.clone());
        Ok(histogram)
    }

    fn ahead(&mut self, candidates: &[(usize, usize, &BinSplit)]) {
        self.next.clear();
        self.next.extend(
            candidates
                .iter()
                .take(AHEAD)
                .map(|&(node, feature, split)| Ahead {
                    node,
                    feature,
                    split: split.clone(),
                }),
        );
    }

    /// The children's histograms, from the round that split the node ahead, or from a round
    /// now (which splits ahead the other leaves the grower may split next): the parties send
    /// the left child's, the right child's is the parent's less the left's.
    fn split(
        &mut self,
        node: usize,
        feature: usize,
        split: &BinSplit,
        left: usize,
        right: usize,
    ) -> Result<(usize, usize), Step> {
        let [left_histogram, right_histogram] = match self.split_ahead.remove(&node) {
            Some((f, s, children)) if f == feature && s == *split => children,
            Some(_) => {
                return Err(Step::Abort(FederationError::Refused(format!(
                    "tree {}: node {node} was split ahead another way",
                    self.iteration
                ))))
            }
            None => {
                let mut ahead = vec![Ahead {
                    node,
                    feature,
                    split: split.clone(),
                }];
                ahead.extend(
                    self.next
                        .iter()
                        .filter(|a| a.node != node && !self.split_ahead.contains_key(&a.node))
                        .cloned(),
                );
                let len = self.histogram_len();
                let request = Request::Split {
                    confirm: std::mem::take(&mut self.confirm),
                    ahead: ahead.clone(),
                };
                let (call, words) = self
                    .coordinator
                    .collect_boosting(request, Some(len * ahead.len()))?;
                for (a, chunk) in ahead.iter().zip(words.chunks_exact(len)) {
                    let children = self.checked_children(&call, a.node, chunk)?;
                    self.split_ahead
                        .insert(a.node, (a.feature, a.split.clone(), children));
                }
                // The node asked is the first split ahead.
                self.split_ahead
                    .remove(&node)
                    .map(|(_, _, h)| h)
                    .ok_or_else(|| {
                        Step::Abort(FederationError::Refused(format!(
                            "tree {}: node {node} was not split",
                            self.iteration
                        )))
                    })?
            }
        };
        if self.histograms.remove(&node).is_none() {
            return Err(Step::Abort(FederationError::Refused(format!(
                "tree {}: node {node} has no histogram to split",
                self.iteration
            ))));
        }
        let (l, r) = (left_histogram.n_rows(), right_histogram.n_rows());
        self.histograms.insert(left, left_histogram);
        self.histograms.insert(right, right_histogram);
        self.confirm.push(Confirm { node, left, right });
        Ok((l, r))
    }

    fn histogram(&mut self, node: usize) -> Result<NodeHistogram, Step> {
        self.histograms.get(&node).cloned().ok_or_else(|| {
            Step::Abort(FederationError::Refused(format!(
                "tree {}: node {node} has no histogram",
                self.iteration
            )))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use borderlens_risk::gbdt::to_fixed;

    /// Noisy label sums: within the noise's tolerance they are clamped to sums rows can give;
    /// beyond it they are refused.
    #[test]
    fn noisy_label_sums_are_clamped_within_the_noise_and_refused_beyond() {
        let (rows, abs) = (10, to_fixed(10.0));
        let words = |n: i64, w: f64, p: f64| [n as u64, to_fixed(w) as u64, to_fixed(p) as u64];
        let exact = noisy_label_sums(&words(100, 100.0, 7.0), rows, abs).unwrap();
        assert_eq!(
            (exact.n_rows, exact.weight, exact.positive_weight),
            (100, to_fixed(100.0), to_fixed(7.0))
        );
        // Noise took the count below 1 and the positive weight below 0 or above the weight.
        let low = noisy_label_sums(&words(-5, 0.5, -3.0), rows, abs).unwrap();
        assert_eq!(
            (low.n_rows, low.weight, low.positive_weight),
            (1, to_fixed(1.0), 0)
        );
        let high = noisy_label_sums(&words(50, 50.0, 55.0), rows, abs).unwrap();
        assert_eq!(high.positive_weight, high.weight);
        // Beyond the tolerance: garbage.
        for bad in [
            words(-11, 50.0, 5.0),
            words(50, -11.0, 5.0),
            words(50, 50.0, -11.0),
            words(50, 50.0, 61.0),
        ] {
            assert!(noisy_label_sums(&bad, rows, abs).is_err(), "{bad:?}");
        }
    }
}
