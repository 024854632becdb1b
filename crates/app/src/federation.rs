//! Federated training between administrations (issue 17), over `borderlens-federation`:
//!
//! - [`FederationNode`]: one administration's node. A partner (a coordinator it trusts) opens a
//!   training session ([`OpenSession`]): the node reads its own labelled items up to a date from
//!   its store and becomes a party of `borderlens_federation` ([`LocalParty`]), which answers
//!   the coordinator's calls with summaries and masked sums only. Every round is written to the
//!   node's audit log (one `federation_rounds` entry per tree and per setup, listing each round's
//!   number, nonce, request and answer), and when the coordinator finishes ([`FinishSession`])
//!   the node saves the model every party got in its own registry. A session aborted, replaced
//!   or finished is audited too.
//! - [`federate_train`]: the coordinator's job over [`NodeLinks`] (HTTP nodes in the server
//!   crate, or [`LocalNodes`] in one process): opens a session on every node, runs
//!   [`Coordinator::train_with`], then finishes on the nodes still taking part (or aborts on all
//!   of them, with the reason), and checks that every node saved the same trees.
//!
//! The node holds one session at a time; a partner's new session ends its earlier one (audited
//! as replaced) and a session belongs to the partner that opened it.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use borderlens_domain::hex::encode as hex;
use borderlens_domain::LabelKind;
use borderlens_federation::dp::{PrivacyPolicy, Spent};
use borderlens_federation::message::{Call, Kind, Request};
use borderlens_federation::secagg::KeyPair;
use borderlens_federation::{
    Coordinator, FederationError, FederationOptions, LocalParty, OnFault, PartyId, Privacy,
    Transport, Unreachable,
};
use borderlens_risk::gbdt::GbdtConfig;
use borderlens_risk::model::{Imbalance, TrainOptions};
use borderlens_store::{Backend, ItemFilter};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{JobError, Progress};

/// A partner's request to open a training session on a node.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OpenSession {
    /// The session's id, chosen by the coordinator (letters, digits, `-`, at most 64).
    pub session: String,
    /// The node's party id in this federation.
    pub party: PartyId,
    /// The label learnt.
    pub label: LabelKind,
    /// The node trains on its labelled items dated up to this day (unlabelled ones are history).
    #[schemars(with = "String")]
    pub until: NaiveDate,
}

/// The coordinator's word that training is over: save the model under `model`.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FinishSession {
    /// The session.
    pub session: String,
    /// Registry name the model is saved under.
    pub model: String,
    /// The boosting options trained with (kept in the model's options).
    #[schemars(with = "serde_json::Value")]
    pub gbdt: GbdtConfig,
    /// Parties that took part to the end.
    pub parties: Vec<PartyId>,
    /// Rounds run.
    pub rounds: u64,
    /// Parties dropped, with the round and reason.
    pub dropped: Vec<String>,
}

/// The coordinator's word that training stopped: nothing is saved.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AbortSession {
    /// The session.
    pub session: String,
    /// Why, in words.
    pub reason: String,
    /// The session did what it was opened for and saves nothing (pooled statistics): audited
    /// as `federation_close`, not as an abort.
    #[serde(default)]
    pub done: bool,
}

/// What a node saved at the end of a session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Finished {
    /// Registry version saved.
    pub version: u32,
    /// SHA-256 of the saved model's bytes (differs between nodes: thresholds and
    /// counterfactual values are each node's own).
    pub sha256: String,
    /// SHA-256 of the trees and starting score (the same on every node).
    pub trees_sha256: String,
}

/// A round as the node's audit log keeps it.
#[derive(Clone, Debug, Serialize)]
struct RoundRecord {
    round: u64,
    nonce: String,
    request: String,
    answer: String,
}

struct Session {
    id: String,
    partner: String,
    party: LocalParty,
    until: NaiveDate,
    /// Rounds answered since the last audit entry.
    rounds: Vec<RoundRecord>,
    /// Trees applied (to name the audit entries).
    trees: usize,
    /// When the coordinator last called.
    last_seen: Instant,
    /// Whether the party was given its findings' concealment methods (read from the store
    /// only when statistics by concealment are asked).
    concealment_read: bool,
}

/// How long another partner's silent session keeps a partner from opening one.
const SESSION_IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// The longest reason or drop note kept from a coordinator.
const MAX_NOTE: usize = 2000;

fn note(text: &str) -> String {
    text.chars().take(MAX_NOTE).collect()
}

/// A node's key material for mask agreement: its long-term secret, so that partners can pin
/// its public key (a fresh key per session without it), and the partners' public keys it pins
/// (none: it accepts the keys the coordinator relays).
#[derive(Clone, Debug, Default)]
pub struct NodeIdentity {
    /// The node's X25519 secret.
    pub secret: Option<[u8; 32]>,
    /// The other nodes' public keys it accepts.
    pub pinned: Vec<[u8; 32]>,
    /// Its rule on differential privacy (none: it adds the noise a coordinator asks for, if
    /// any).
    pub privacy: Option<PrivacyPolicy>,
}

/// The δ at which a node reports the ε it spent when its policy names none.
pub const DEFAULT_DELTA: f64 = 1e-6;

/// The privacy a session spent on a node, as its audit log keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SessionPrivacy {
    /// The noise multiplier (σ over a release's sensitivity).
    pub noise_multiplier: f64,
    /// Noisy releases (label sums, roots, splits).
    pub releases: u64,
    /// Their ρ (zero-concentrated DP), summed.
    pub rho: f64,
    /// ε at `delta`.
    pub epsilon: f64,
    /// The δ of `epsilon`.
    pub delta: f64,
}

impl SessionPrivacy {
    fn of(spent: Spent, delta: f64) -> SessionPrivacy {
        SessionPrivacy {
            noise_multiplier: spent.noise_multiplier,
            releases: spent.releases,
            rho: spent.rho,
            epsilon: spent.epsilon(delta),
            delta,
        }
    }

    /// What `party` spent so far, at its policy's δ ([`DEFAULT_DELTA`] without one).
    fn of_party(party: &LocalParty) -> Option<SessionPrivacy> {
        let delta = party.privacy_policy().map_or(DEFAULT_DELTA, |p| p.delta);
        party.privacy_spent().map(|s| SessionPrivacy::of(s, delta))
    }
}

/// One administration's node: answers a trusted partner's training session over its own store.
#[derive(Default)]
pub struct FederationNode {
    session: Mutex<Option<Session>>,
    identity: NodeIdentity,
}

fn check_session_id(id: &str) -> Result<(), JobError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(JobError::Invalid(format!(
            "session id {id:?}: 1 to 64 letters, digits or '-'"
        )))
    }
}

fn actor(partner: &str) -> String {
    format!("federation:{partner}")
}

impl FederationNode {
    /// A node with no session, a fresh key per session and no pinned keys.
    pub fn new() -> FederationNode {
        FederationNode::default()
    }

    /// A node with its own key and the partners' public keys it pins.
    pub fn with_identity(identity: NodeIdentity) -> FederationNode {
        FederationNode {
            session: Mutex::default(),
            identity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Session>> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens a session for `partner`: reads the store's items dated up to `open.until` (the
    /// labelled ones are the node's rows). An earlier session is ended (audited as replaced).
    pub fn open(
        &self,
        store: &mut dyn Backend,
        partner: &str,
        open: &OpenSession,
    ) -> Result<(), JobError> {
        check_session_id(&open.session)?;
        let items = store.items(&ItemFilter {
            from: None,
            to: Some(open.until),
            labelled_only: false,
        })?;
        let rows = items.iter().filter(|d| d.label.is_some()).count();
        if rows == 0 {
            return Err(JobError::Invalid(format!(
                "no labelled declarations dated up to {} on this node",
                open.until
            )));
        }
        let mut party = match self.identity.secret {
            Some(secret) => {
                LocalParty::with_keys(open.party, items, open.label, KeyPair::from_secret(secret))
            }
            None => LocalParty::new(open.party, items, open.label).map_err(JobError::Internal)?,
        };
        if !self.identity.pinned.is_empty() {
            party = party.pin_peers(self.identity.pinned.iter().copied());
        }
        if let Some(policy) = &self.identity.privacy {
            party = party
                .with_privacy(policy.clone())
                .map_err(JobError::Invalid)?;
        }
        let mut slot = self.lock();
        if let Some(old) = slot.as_ref() {
            if old.partner != partner && old.last_seen.elapsed() < SESSION_IDLE {
                return Err(JobError::Invalid(format!(
                    "partner {}'s session is running on this node: try again later",
                    old.partner
                )));
            }
        }
        if let Some(old) = slot.take() {
            end_session(
                store,
                old,
                "federation_replaced",
                "a new session was opened",
            )?;
        }
        store.append_audit(
            &actor(partner),
            "federation_open",
            &open.session,
            &serde_json::json!({
                "party": open.party,
                "label": open.label,
                "until": open.until.to_string(),
                "rows": rows,
            })
            .to_string(),
        )?;
        *slot = Some(Session {
            id: open.session.clone(),
            partner: partner.to_string(),
            party,
            until: open.until,
            rounds: Vec::new(),
            trees: 0,
            last_seen: Instant::now(),
            concealment_read: false,
        });
        Ok(())
    }

    /// Answers one call of `partner`'s session (`call` as bytes, [`Call::encode`]); the answer
    /// is an envelope as bytes. A tree applied writes the rounds since the last entry to the
    /// audit log.
    pub fn call(
        &self,
        store: &mut dyn Backend,
        partner: &str,
        session: &str,
        call: &[u8],
    ) -> Result<Vec<u8>, JobError> {
        let call = Call::decode(call).map_err(JobError::Invalid)?;
        let mut slot = self.lock();
        let current = own_session(&mut slot, partner, session)?;
        current.last_seen = Instant::now();
        let by_concealment = matches!(
            &call.request,
            Request::Segments { dimension } | Request::Counts { dimension, .. }
                if dimension == "concealment"
        );
        if by_concealment && !current.concealment_read {
            let methods = crate::pooled::concealment_by_declaration(store)?;
            current.party.set_concealment(methods);
            current.concealment_read = true;
        }
        let (answer, kind, refusal) = current.party.handle_telling(&call);
        let what = match refusal {
            Some(why) => format!("refused: {why}"),
            None => format!("{kind:?}"),
        };
        current.rounds.push(RoundRecord {
            round: call.round,
            nonce: hex(&call.nonce),
            request: call.request.name(),
            answer: what,
        });
        // One audit entry for the setup (keys, features, bins, starting score), then one per
        // tree.
        if kind == Kind::Ack {
            match call.request {
                Request::Init { .. } => flush_rounds(store, current, "setup")?,
                Request::Apply { iteration, .. } => {
                    current.trees = iteration + 1;
                    flush_rounds(store, current, &format!("tree {iteration}"))?;
                }
                _ => {}
            }
        }
        Ok(answer)
    }

    /// Ends `partner`'s session by saving the model every party got under `finish.model`.
    pub fn finish(
        &self,
        store: &mut dyn Backend,
        partner: &str,
        finish: &FinishSession,
    ) -> Result<Finished, JobError> {
        let mut slot = self.lock();
        let current = own_session(&mut slot, partner, &finish.session)?;
        flush_rounds(store, current, "end")?;
        // A name of the registry that federation did not write is not a partner's to add
        // versions to: the node's own models stay its own.
        if let Some(existing) = store.load_model(&finish.model, None)? {
            let metadata: serde_json::Value =
                serde_json::from_str(&existing.metadata_json).unwrap_or_default();
            if metadata.get("federated").is_none() {
                return Err(JobError::Invalid(format!(
                    "model {} exists in this node's registry and was not trained by \
                     federation: choose another name",
                    finish.model
                )));
            }
        }
        let party = &current.party;
        let (Some(pipeline), Some(data), Some(booster)) =
            (party.pipeline(), party.dataset(), party.booster())
        else {
            return Err(JobError::Invalid(
                "the session has no model yet: no tree was applied".into(),
            ));
        };
        if booster.trees.is_empty() {
            return Err(JobError::Invalid(
                "the session has no model yet: no tree was applied".into(),
            ));
        }
        let options = TrainOptions {
            label: party.label(),
            imbalance: Imbalance::None,
            anomaly_feature: false,
            validation_share: 0.0,
            refit: false,
            gbdt: finish.gbdt.clone(),
        };
        let trees_sha256 = trees_digest(&booster);
        let model = borderlens_risk::model::federated(
            &options,
            pipeline.clone(),
            booster,
            party.items(),
            data,
        )?;
        let bytes = model.to_bytes();
        let sha256 = model.digest();
        let metadata = serde_json::json!({
            "label": model.options.label,
            "until": current.until.to_string(),
            "imbalance": model.options.imbalance.name(),
            "sha256": sha256,
            "n_rows": model.summary.n_rows,
            "positives": model.summary.positives,
            "n_trees": model.summary.n_trees,
            "thresholds": model.thresholds.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "federated": {
                "session": current.id,
                "coordinator": current.partner,
                "party": party.id(),
                "parties": finish.parties,
                "rounds": finish.rounds,
                "dropped": finish.dropped.iter().take(64).map(|d| note(d)).collect::<Vec<_>>(),
                "trees_sha256": trees_sha256,
                "privacy": SessionPrivacy::of_party(party),
            },
        });
        let version = store.save_model(&finish.model, &metadata.to_string(), &bytes)?;
        let done = slot.take().expect("the session was checked above");
        end_session(
            store,
            done,
            "federation_finish",
            &format!("saved as {} version {version}", finish.model),
        )?;
        Ok(Finished {
            version,
            sha256,
            trees_sha256,
        })
    }

    /// Ends `partner`'s session without saving anything, recording why.
    pub fn abort(
        &self,
        store: &mut dyn Backend,
        partner: &str,
        abort: &AbortSession,
    ) -> Result<(), JobError> {
        let mut slot = self.lock();
        own_session(&mut slot, partner, &abort.session)?;
        let done = slot.take().expect("the session was checked above");
        let action = if abort.done {
            "federation_close"
        } else {
            "federation_abort"
        };
        end_session(store, done, action, &note(&abort.reason))
    }
}

fn own_session<'a>(
    slot: &'a mut Option<Session>,
    partner: &str,
    session: &str,
) -> Result<&'a mut Session, JobError> {
    match slot {
        Some(s) if s.id == session && s.partner == partner => Ok(s),
        _ => Err(JobError::NotFound(format!(
            "no open session {session:?} of partner {partner}"
        ))),
    }
}

fn flush_rounds(
    store: &mut dyn Backend,
    session: &mut Session,
    stage: &str,
) -> Result<(), JobError> {
    if session.rounds.is_empty() {
        return Ok(());
    }
    let mut detail = serde_json::json!({ "stage": stage, "rounds": session.rounds });
    // The privacy spent so far, written with the setup and each tree: a node that dies
    // mid-session has on record all but the tree it was growing.
    if let Some(privacy) = SessionPrivacy::of_party(&session.party) {
        detail["privacy"] = serde_json::to_value(privacy).unwrap_or_default();
    }
    store.append_audit(
        &actor(&session.partner),
        "federation_rounds",
        &session.id,
        &detail.to_string(),
    )?;
    session.rounds.clear();
    Ok(())
}

fn end_session(
    store: &mut dyn Backend,
    mut session: Session,
    action: &str,
    reason: &str,
) -> Result<(), JobError> {
    flush_rounds(store, &mut session, "end")?;
    // What was released is spent however the session ended.
    let mut detail = serde_json::json!({ "reason": reason, "trees": session.trees });
    if let Some(privacy) = SessionPrivacy::of_party(&session.party) {
        detail["privacy"] = serde_json::to_value(privacy).unwrap_or_default();
    }
    store.append_audit(
        &actor(&session.partner),
        action,
        &session.id,
        &detail.to_string(),
    )?;
    Ok(())
}

/// SHA-256 of a booster's starting score and trees (its JSON without the feature names'
/// descriptions): equal on every node of a federation.
fn trees_digest(booster: &borderlens_risk::gbdt::Booster) -> String {
    let json = serde_json::to_vec(&(booster.init_score, &booster.trees)).expect("trees serialise");
    hex(&Sha256::digest(json))
}

/// How the coordinator reaches its nodes: the federation's [`Transport`] for the rounds, plus
/// opening, finishing and aborting a session on each.
pub trait NodeLinks: Transport {
    /// Party `party`'s name (for reports).
    fn name(&self, party: PartyId) -> String;
    /// Opens the session on `party`.
    fn open(&mut self, party: PartyId, open: &OpenSession) -> Result<(), Unreachable>;
    /// Finishes the session on `party`: it saves the model.
    fn finish(&mut self, party: PartyId, finish: &FinishSession) -> Result<Finished, Unreachable>;
    /// Aborts the session on `party`.
    fn abort(&mut self, party: PartyId, abort: &AbortSession) -> Result<(), Unreachable>;
}

/// Nodes in the coordinator's process, each over its own store (tests, benchmarks).
pub struct LocalNodes {
    nodes: Vec<(String, FederationNode, Box<dyn Backend>)>,
    session: String,
}

impl LocalNodes {
    /// Nodes named and with their stores, party ids 0, 1, 2... in this order.
    pub fn new(stores: Vec<(String, Box<dyn Backend>)>) -> LocalNodes {
        LocalNodes {
            nodes: stores
                .into_iter()
                .map(|(name, store)| (name, FederationNode::new(), store))
                .collect(),
            session: String::new(),
        }
    }

    /// The stores back, in order.
    pub fn into_stores(self) -> Vec<Box<dyn Backend>> {
        self.nodes.into_iter().map(|(_, _, store)| store).collect()
    }

    fn node(
        &mut self,
        party: PartyId,
    ) -> Result<&mut (String, FederationNode, Box<dyn Backend>), Unreachable> {
        self.nodes
            .get_mut(party as usize)
            .ok_or_else(|| Unreachable(format!("no party {party}")))
    }
}

const LOCAL_PARTNER: &str = "local";

impl Transport for LocalNodes {
    fn parties(&self) -> Vec<PartyId> {
        (0..self.nodes.len() as PartyId).collect()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        let session = self.session.clone();
        let (_, node, store) = self.node(party)?;
        node.call(store.as_mut(), LOCAL_PARTNER, &session, &call.encode())
            .map_err(|e| Unreachable(e.to_string()))
    }
}

impl NodeLinks for LocalNodes {
    fn name(&self, party: PartyId) -> String {
        self.nodes
            .get(party as usize)
            .map_or_else(|| format!("party {party}"), |(name, _, _)| name.clone())
    }

    fn open(&mut self, party: PartyId, open: &OpenSession) -> Result<(), Unreachable> {
        self.session = open.session.clone();
        let (_, node, store) = self.node(party)?;
        node.open(store.as_mut(), LOCAL_PARTNER, open)
            .map_err(|e| Unreachable(e.to_string()))
    }

    fn finish(&mut self, party: PartyId, finish: &FinishSession) -> Result<Finished, Unreachable> {
        let (_, node, store) = self.node(party)?;
        node.finish(store.as_mut(), LOCAL_PARTNER, finish)
            .map_err(|e| Unreachable(e.to_string()))
    }

    fn abort(&mut self, party: PartyId, abort: &AbortSession) -> Result<(), Unreachable> {
        let (_, node, store) = self.node(party)?;
        node.abort(store.as_mut(), LOCAL_PARTNER, abort)
            .map_err(|e| Unreachable(e.to_string()))
    }
}

/// What `borderlens federate train` asks.
#[derive(Clone, Debug)]
pub struct FederateRequest {
    /// The label learnt.
    pub label: LabelKind,
    /// Every node trains on its labelled items up to this day.
    pub until: NaiveDate,
    /// Registry name each node saves the model under.
    pub model: String,
    /// Boosting options (no bagging, no early stopping).
    pub gbdt: GbdtConfig,
    /// What a node's fault does.
    pub on_fault: OnFault,
    /// Differential privacy: the noise each node adds (none: exact sums).
    pub privacy: Option<Privacy>,
}

/// One node's outcome.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct NodeOutcome {
    /// Party id.
    pub party: PartyId,
    /// Name (from the nodes file).
    pub name: String,
    /// What it saved, when it took part to the end.
    pub saved: Option<Finished>,
    /// Why it did not, when it was dropped or failed to save.
    pub problem: Option<String>,
}

/// The coordinator's report.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct FederateReport {
    /// Session id.
    pub session: String,
    /// Model name on the nodes.
    pub model: String,
    /// Label.
    pub label: LabelKind,
    /// Training data up to.
    #[schemars(with = "String")]
    pub until: NaiveDate,
    /// Trees grown.
    pub n_trees: usize,
    /// Rounds run.
    pub rounds: u64,
    /// Each node.
    pub nodes: Vec<NodeOutcome>,
    /// Whether every node that saved the model saved the coordinator's own trees.
    pub same_trees: bool,
    /// With differential privacy, what each node that took part to the end spent (its own
    /// account may be at another δ).
    pub privacy: Option<SessionPrivacy>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Runs federated training over `links`: opens a session on every node, trains, then makes the
/// nodes still taking part save the model (the others are told to abort). Training that fails
/// or is interrupted aborts the session on every node, saving nothing, and says why.
pub fn federate_train<L: NodeLinks>(
    links: L,
    request: &FederateRequest,
    progress: &dyn Progress,
) -> Result<FederateReport, JobError> {
    let started = Instant::now();
    let options = FederationOptions {
        gbdt: request.gbdt.clone(),
        on_fault: request.on_fault,
        privacy: request.privacy,
    };
    let (mut coordinator, parties, session) =
        start_sessions(links, "fed", options, request.label, request.until)?;
    progress.start("federated training", Some(request.gbdt.n_trees as u64));
    let trained = coordinator.train_with(&mut |trees| {
        progress.advance(trees as u64);
        !progress.interrupted()
    });
    progress.finish();
    let model = match trained {
        Ok(model) => model,
        Err(e) => {
            abort_all(&mut coordinator, &parties, &session, &e.to_string());
            return Err(match e {
                FederationError::Interrupted(_) => JobError::Interrupted,
                e => JobError::Invalid(format!("federated training failed: {e}")),
            });
        }
    };
    let dropped: BTreeMap<PartyId, String> = model
        .dropped
        .iter()
        .map(|d| (d.party, format!("round {}: {}", d.round, d.reason)))
        .collect();
    let finish = FinishSession {
        session: session.clone(),
        model: request.model.clone(),
        gbdt: request.gbdt.clone(),
        parties: coordinator.members().to_vec(),
        rounds: model.rounds,
        dropped: dropped
            .iter()
            .map(|(party, why)| format!("party {party}: {why}"))
            .collect(),
    };
    let mut nodes = Vec::new();
    for &party in &parties {
        let name = coordinator.transport().name(party);
        let outcome = if let Some(why) = dropped.get(&party) {
            let _ = coordinator.transport_mut().abort(
                party,
                &AbortSession {
                    session: session.clone(),
                    reason: format!("dropped: {why}"),
                    done: false,
                },
            );
            NodeOutcome {
                party,
                name,
                saved: None,
                problem: Some(format!("dropped in {why}")),
            }
        } else {
            match coordinator.transport_mut().finish(party, &finish) {
                Ok(saved) => NodeOutcome {
                    party,
                    name,
                    saved: Some(saved),
                    problem: None,
                },
                Err(e) => NodeOutcome {
                    party,
                    name,
                    saved: None,
                    problem: Some(format!("did not save the model: {e}")),
                },
            }
        };
        nodes.push(outcome);
    }
    // Every node that saved must hold the coordinator's own trees.
    let own = trees_digest(&model.booster);
    let same_trees = nodes
        .iter()
        .filter_map(|n| n.saved.as_ref())
        .all(|s| s.trees_sha256 == own);
    Ok(FederateReport {
        session,
        model: request.model.clone(),
        label: request.label,
        until: request.until,
        n_trees: model.booster.trees.len(),
        rounds: model.rounds,
        nodes,
        same_trees,
        privacy: model.privacy.map(|p| SessionPrivacy::of(p.spent, p.delta)),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Pooled statistics across the nodes, under secure aggregation ([`federate_stats`]).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PooledNodesReport {
    /// The session.
    pub session: String,
    /// `origin`, `route` or `concealment`.
    pub dimension: String,
    /// `hit rate`, or `share of findings` by concealment (as `controls pooled`).
    pub measure: String,
    /// Each node's controlled declarations dated up to this day are counted.
    #[schemars(with = "String")]
    pub until: NaiveDate,
    /// The nodes, by party id.
    pub nodes: Vec<String>,
    /// Per segment held by two nodes or more: the pooled counts and hit rate (Wilson
    /// interval); no node's own counts are seen.
    pub segments: Vec<PooledNodesSegment>,
    /// The segments held by one node only, together, when two nodes or more hold such
    /// segments (else not counted: the sum would be one node's own).
    pub elsewhere: Option<PooledNodesSegment>,
    /// Rounds run.
    pub rounds: u64,
}

/// One segment of [`PooledNodesReport`].
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct PooledNodesSegment {
    /// The origin country, route (`departure/transport mode`) or concealment method.
    pub segment: String,
    /// The pooled hit rate among the controlled declarations (by concealment: the method's
    /// share of the findings), with its interval.
    pub pooled: borderlens_selection::estimate::RateEstimate,
}

/// Opens a session on every node, sums their controlled declarations and hits by `dimension`
/// (`origin` or `route`) under secure aggregation, and closes the sessions (audited on each
/// node as `federation_close`). Each node counts its labelled declarations dated up to `until`.
/// By `concealment`, each node's findings and those with each method (the method of its
/// control results, "not recorded" without one): the pooled share of findings per method.
pub fn federate_stats<L: NodeLinks>(
    links: L,
    dimension: &str,
    until: NaiveDate,
    confidence: f64,
) -> Result<PooledNodesReport, JobError> {
    if !matches!(dimension, "origin" | "route" | "concealment") {
        return Err(JobError::Invalid(format!(
            "unknown dimension '{dimension}': use origin, route or concealment"
        )));
    }
    let options = FederationOptions {
        gbdt: GbdtConfig::standard(),
        on_fault: OnFault::Abort,
        privacy: None,
    };
    let (mut coordinator, parties, session) =
        start_sessions(links, "stats", options, LabelKind::Fraud, until)?;
    let counts = match coordinator.pooled_counts(dimension) {
        Ok(counts) => counts,
        Err(e) => {
            abort_all(&mut coordinator, &parties, &session, &e.to_string());
            return Err(JobError::Invalid(format!("pooled statistics failed: {e}")));
        }
    };
    for &party in &parties {
        // A node that cannot be told ends the session when a new one opens.
        let _ = coordinator.transport_mut().abort(
            party,
            &AbortSession {
                session: session.clone(),
                reason: format!("pooled statistics by {dimension} computed"),
                done: true,
            },
        );
    }
    let rate = |segment: String, n: u64, hits: u64| PooledNodesSegment {
        segment,
        pooled: borderlens_selection::estimate::naive(
            n as usize,
            hits as usize,
            n as usize,
            confidence,
        ),
    };
    let mut segments: Vec<PooledNodesSegment> = counts
        .segments
        .into_iter()
        .map(|(segment, n, hits)| rate(segment, n, hits))
        .collect();
    segments.sort_by(|a, b| {
        b.pooled
            .inspected
            .cmp(&a.pooled.inspected)
            .then_with(|| a.segment.cmp(&b.segment))
    });
    let elsewhere = counts
        .elsewhere
        .map(|(n, hits)| rate("at one node only".to_string(), n, hits));
    Ok(PooledNodesReport {
        session,
        dimension: dimension.to_string(),
        measure: if dimension == "concealment" {
            "share of findings"
        } else {
            "hit rate"
        }
        .to_string(),
        until,
        nodes: parties
            .iter()
            .map(|&p| coordinator.transport().name(p))
            .collect(),
        segments,
        elsewhere,
        rounds: counts.rounds,
    })
}

/// A coordinator over `links` with `options`, and a session (`PREFIX-` and 16 random hex
/// digits) opened on every node: the parties and the session's id. A node that does not open
/// aborts the session on all ([`open_all`]).
fn start_sessions<L: NodeLinks>(
    links: L,
    prefix: &str,
    options: FederationOptions,
    label: LabelKind,
    until: NaiveDate,
) -> Result<(Coordinator<L>, Vec<PartyId>, String), JobError> {
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| JobError::Internal(format!("randomness: {e}")))?;
    let session = format!("{prefix}-{}", hex(&id));
    let parties = links.parties();
    let mut coordinator = Coordinator::new(links, options);
    // The transport is the coordinator's now; sessions are opened through it.
    open_all(&mut coordinator, &parties, &session, label, until)?;
    Ok((coordinator, parties, session))
}

/// Opens `session` on every party; when one does not open, aborts it everywhere and says which.
fn open_all<L: NodeLinks>(
    coordinator: &mut Coordinator<L>,
    parties: &[PartyId],
    session: &str,
    label: LabelKind,
    until: NaiveDate,
) -> Result<(), JobError> {
    for &party in parties {
        let open = OpenSession {
            session: session.to_string(),
            party,
            label,
            until,
        };
        if let Err(e) = coordinator.transport_mut().open(party, &open) {
            let name = coordinator.transport().name(party);
            abort_all(
                coordinator,
                parties,
                session,
                &format!("{name} did not open: {e}"),
            );
            return Err(JobError::Invalid(format!(
                "node {name} (party {party}) did not open the session: {e}"
            )));
        }
    }
    Ok(())
}

fn abort_all<L: NodeLinks>(
    coordinator: &mut Coordinator<L>,
    parties: &[PartyId],
    session: &str,
    reason: &str,
) {
    for &party in parties {
        // A node that cannot be told ends the session when a new one opens.
        let _ = coordinator.transport_mut().abort(
            party,
            &AbortSession {
                session: session.to_string(),
                reason: reason.to_string(),
                done: false,
            },
        );
    }
}

/// One training session as this node's audit log tells it: the manager's view of what the node
/// took part in and what it shared.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct SessionSummary {
    /// Session id.
    pub session: String,
    /// The partner that coordinated (the audit actor without `federation:`).
    pub partner: String,
    /// When it opened (UTC).
    pub opened_at: String,
    /// This node's party id, label, training end date and rows, as opened.
    pub party: Option<u64>,
    /// Label learnt.
    pub label: Option<String>,
    /// Rows up to.
    pub until: Option<String>,
    /// Labelled rows this node trained on (never sent).
    pub rows: Option<u64>,
    /// Rounds this node answered.
    pub rounds: usize,
    /// Trees applied.
    pub trees: usize,
    /// What this node sent, by kind of answer, with counts (refusals included).
    pub shared: BTreeMap<String, usize>,
    /// How it ended: `finished`, `aborted`, `replaced`, or `open` (no end recorded yet).
    pub outcome: String,
    /// The end's details: the model saved, or the reason.
    pub detail: Option<String>,
    /// When it ended.
    pub ended_at: Option<String>,
    /// With differential privacy, what it spent (the latest record: the end's, or the last
    /// tree's while it runs).
    pub privacy: Option<SessionPrivacy>,
}

impl SessionSummary {
    /// Whether the node sent masked sums in this session (histograms, label sums, counts).
    pub fn sent_sums(&self) -> bool {
        self.shared.contains_key(&shared_as("Masked"))
    }
}

/// A node's privacy budget over its sessions ([`privacy_budget`]).
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub struct PrivacyBudget {
    /// Sessions that added noise.
    pub noisy_sessions: usize,
    /// Sessions that sent masked sums without noise (training or pooled statistics): their
    /// sums are exact, so no ε bounds what the partners could learn from them.
    pub exact_sessions: usize,
    /// ρ (zero-concentrated DP) of the noisy sessions, summed: sessions over the same rows
    /// compose by adding their ρ.
    pub rho: f64,
    /// ε of that ρ at `delta`.
    pub epsilon: f64,
    /// The δ of `epsilon` (the newest noisy session's).
    pub delta: f64,
}

/// The privacy this node spent over `sessions` ([`federation_sessions`]).
pub fn privacy_budget(sessions: &[SessionSummary]) -> PrivacyBudget {
    // A session that asked for noise but released nothing spent nothing.
    let noisy: Vec<&SessionPrivacy> = sessions
        .iter()
        .filter_map(|s| s.privacy.as_ref())
        .filter(|p| p.releases > 0)
        .collect();
    let exact_sessions = sessions
        .iter()
        .filter(|s| s.privacy.is_none() && s.sent_sums())
        .count();
    let rho: f64 = noisy.iter().map(|p| p.rho).sum();
    // Sessions come newest first.
    let delta = noisy.first().map_or(DEFAULT_DELTA, |p| p.delta);
    PrivacyBudget {
        noisy_sessions: noisy.len(),
        exact_sessions,
        rho,
        epsilon: borderlens_federation::dp::epsilon(rho, delta),
        delta,
    }
}

/// What an answer kind discloses, in words.
fn shared_as(answer: &str) -> String {
    match answer {
        "Masked" => "masked sums (histograms, label sums): the coordinator sees totals only".into(),
        "Pipeline" => "vocabularies (category codes seen)".into(),
        "Summaries" => "feature summaries (distinct values with their counts, no labels)".into(),
        "PublicKey" => "public key for mask agreement".into(),
        "Seed" => "a round seed (to unmask the survivors' sum after a party dropped)".into(),
        "Segments" => "segment names (origins or routes present, no counts)".into(),
        "Ack" => "acknowledgements".into(),
        other if other.starts_with("refused") => "refusals".into(),
        other => other.to_string(),
    }
}

/// The federation sessions in this node's audit log (its latest `limit` `federation_` entries),
/// newest first.
pub fn federation_sessions(
    store: &dyn Backend,
    limit: usize,
) -> Result<Vec<SessionSummary>, JobError> {
    // By partner and session id: two partners choosing the same id stay apart.
    let mut sessions: BTreeMap<(String, String), SessionSummary> = BTreeMap::new();
    let mut order: Vec<(String, String)> = Vec::new();
    let entries = store.audit_entries_of("federation_", limit)?;
    for e in entries.iter().rev() {
        if !e.action.starts_with("federation_") {
            continue;
        }
        let detail: serde_json::Value =
            serde_json::from_str(&e.detail_json).unwrap_or(serde_json::Value::Null);
        let key = (e.actor.clone(), e.subject.clone());
        let summary = sessions.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            SessionSummary {
                session: e.subject.clone(),
                partner: e
                    .actor
                    .strip_prefix("federation:")
                    .unwrap_or(&e.actor)
                    .to_string(),
                opened_at: e.at.clone(),
                party: None,
                label: None,
                until: None,
                rows: None,
                rounds: 0,
                trees: 0,
                shared: BTreeMap::new(),
                outcome: "open".into(),
                detail: None,
                ended_at: None,
                privacy: None,
            }
        });
        if let Ok(privacy) = serde_json::from_value::<SessionPrivacy>(detail["privacy"].clone()) {
            summary.privacy = Some(privacy);
        }
        match e.action.as_str() {
            "federation_open" => {
                summary.opened_at = e.at.clone();
                summary.party = detail["party"].as_u64();
                summary.label = detail["label"].as_str().map(str::to_string);
                summary.until = detail["until"].as_str().map(str::to_string);
                summary.rows = detail["rows"].as_u64();
            }
            "federation_rounds" => {
                for round in detail["rounds"].as_array().into_iter().flatten() {
                    summary.rounds += 1;
                    let answer = round["answer"].as_str().unwrap_or("?");
                    *summary.shared.entry(shared_as(answer)).or_default() += 1;
                }
            }
            "federation_finish"
            | "federation_abort"
            | "federation_replaced"
            | "federation_close" => {
                summary.outcome = match e.action.as_str() {
                    "federation_finish" => "finished",
                    "federation_abort" => "aborted",
                    "federation_close" => "closed",
                    _ => "replaced",
                }
                .into();
                summary.detail = detail["reason"].as_str().map(str::to_string);
                summary.trees = detail["trees"].as_u64().unwrap_or_default() as usize;
                summary.ended_at = Some(e.at.clone());
            }
            _ => {}
        }
    }
    Ok(order
        .into_iter()
        .rev()
        .filter_map(|id| sessions.remove(&id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use borderlens_ingest::ColumnMapping;
    use borderlens_store::{Audit, Registry, Store};

    /// A node's store holding the sample's 2021-Q1.
    fn node_store(dir: &std::path::Path) -> Store {
        let mut store = Store::open(&dir.join("node.db")).unwrap();
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/sample/df_syn_valid_eng.csv");
        crate::import_files(
            &mut store,
            &[sample],
            &ColumnMapping::kcs_default(),
            true,
            &crate::Silent,
        )
        .unwrap();
        store
    }

    fn open(session: &str) -> OpenSession {
        OpenSession {
            session: session.into(),
            party: 0,
            label: LabelKind::Fraud,
            until: NaiveDate::from_ymd_opt(2021, 3, 31).unwrap(),
        }
    }

    /// A partner cannot end another partner's live session; the same partner can (a restarted
    /// coordinator), audited as replaced. A partner cannot add a version to a model of the
    /// node's own registry.
    #[test]
    fn sessions_belong_to_their_partner_and_the_nodes_own_models_stay_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = node_store(dir.path());
        let node = FederationNode::new();
        node.open(&mut store, "hq", &open("s-1")).unwrap();
        let err = node
            .open(&mut store, "rival", &open("s-2"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("partner hq's session is running"), "{err}");
        // The rival cannot call or finish hq's session either.
        let finish = FinishSession {
            session: "s-1".into(),
            model: "production".into(),
            gbdt: GbdtConfig::standard(),
            parties: vec![0, 1],
            rounds: 0,
            dropped: Vec::new(),
        };
        let err = node.finish(&mut store, "rival", &finish).unwrap_err();
        assert!(err.to_string().contains("no open session"), "{err}");
        node.open(&mut store, "hq", &open("s-3")).unwrap();
        let replaced = store
            .audit_entries(10)
            .unwrap()
            .into_iter()
            .find(|e| e.action == "federation_replaced")
            .unwrap();
        assert_eq!(replaced.subject, "s-1");

        store
            .save_model("production", "{}", b"not federated")
            .unwrap();
        let finish = FinishSession {
            session: "s-3".into(),
            ..finish
        };
        let err = node.finish(&mut store, "hq", &finish).unwrap_err();
        assert!(
            err.to_string().contains("was not trained by federation"),
            "{err}"
        );
        assert_eq!(store.list_models().unwrap().len(), 1);
    }
}
