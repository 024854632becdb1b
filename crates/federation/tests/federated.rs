//! Federated training on the sample declarations split by customs office between three parties:
//! the model equals pooled training's, the coordinator sees masked messages only, and faults stop
//! training (or drop the party) with the party and round named, leaving every party's model
//! whole.

use std::time::Instant;

use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_federation::dp::{self, PrivacyPolicy};
use borderlens_federation::message::{
    bytes_to_words, words_to_bytes, Ahead, Call, Confirm, Envelope, Kind, Request,
};
use borderlens_federation::secagg::{self, KeyPair};
use borderlens_federation::{
    Coordinator, FederatedModel, FederationError, FederationOptions, InProcess, LocalParty,
    OnFault, PartyId, Privacy, Transport, Unreachable,
};
use borderlens_ingest::{read_declarations, ColumnMapping};
use borderlens_risk::data::Dataset;
use borderlens_risk::features::FeaturePipeline;
use borderlens_risk::gbdt::{
    log_loss_gradients, BinSplit, Binning, Booster, FeatureSummary, GbdtConfig, LabelSums,
    NodeHistogram,
};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_valid_eng.csv"
);

/// The sample's items, sorted by date.
fn sample_items() -> Vec<DeclarationItem> {
    let reader =
        read_declarations(std::path::Path::new(SAMPLE), &ColumnMapping::kcs_default()).unwrap();
    let mut items: Vec<DeclarationItem> = reader.map(Result::unwrap).collect();
    items.sort_by_key(|d| d.date);
    items
}

/// The items split by customs office: office 40, office 20, every other office.
fn split_by_office(items: &[DeclarationItem]) -> [Vec<DeclarationItem>; 3] {
    let mut parts: [Vec<DeclarationItem>; 3] = Default::default();
    for item in items {
        let party = match item.office_id.as_str() {
            "40" => 0,
            "20" => 1,
            _ => 2,
        };
        parts[party].push(item.clone());
    }
    parts
}

/// Party `id`'s key pair, known to the tests (to take a message's masks away).
fn keys(id: PartyId) -> KeyPair {
    KeyPair::from_secret([id as u8 + 1; 32])
}

/// The secret parties `a` and `b` mask with, from their known keys and the session salts the
/// coordinator relayed.
fn pair_secret(a: PartyId, b: PartyId, salts: &[(PartyId, [u8; 32])]) -> [u8; 32] {
    let salt = |p: PartyId| salts.iter().find(|(q, _)| *q == p).unwrap().1;
    let agreed = keys(a).agree(&keys(b).public()).unwrap();
    let (lower, higher) = (salt(a.min(b)), salt(a.max(b)));
    secagg::pair_secret(&agreed, &lower, &higher)
}

fn parties() -> Vec<LocalParty> {
    let items = sample_items();
    split_by_office(&items)
        .into_iter()
        .enumerate()
        .map(|(id, items)| {
            let id = id as PartyId;
            LocalParty::with_keys(id, items, LabelKind::Fraud, keys(id))
        })
        .collect()
}

fn config() -> GbdtConfig {
    let mut config = GbdtConfig::standard();
    config.n_trees = 30;
    config.learning_rate = 0.1;
    config
}

fn options(on_fault: OnFault) -> FederationOptions {
    FederationOptions {
        gbdt: config(),
        on_fault,
        privacy: None,
    }
}

/// The parties' rows together, party after party: what pooled training reads.
fn pooled(parties: &[LocalParty]) -> Dataset {
    let mut pooled = parties[0].dataset().unwrap().clone();
    for party in &parties[1..] {
        let data = party.dataset().unwrap();
        for i in 0..data.n_rows() {
            pooled.push_row(&data.row(i), data.labels[i], data.weights[i]);
        }
    }
    pooled
}

/// The federated model's scores equal the pooled model's on every declaration: the same bins,
/// the same trees, bit for bit.
#[test]
fn federated_training_gives_the_pooled_model_on_every_declaration() {
    let items = sample_items();
    let started = Instant::now();
    let mut coordinator = Coordinator::new(InProcess::new(parties()), options(OnFault::Abort));
    let model = coordinator.train().unwrap();
    let federated_time = started.elapsed();
    let parties = coordinator.transport().all();
    assert_eq!(parties.len(), 3);
    assert!(parties.iter().all(|p| p.dataset().unwrap().n_rows() > 1000));

    // Features agreed without rows are those of pooled fitting.
    assert_eq!(model.pipeline, FeaturePipeline::fit(&items));
    let pooled = pooled(parties);
    let config = config();
    assert_eq!(model.binning, Binning::from_data(&pooled, config.max_bin));

    let started = Instant::now();
    let reference = Booster::train(&pooled, &config, None, &mut |_, _| true);
    let pooled_time = started.elapsed();
    assert_eq!(model.booster.trees.len(), config.n_trees);
    assert_eq!(model.booster.init_score, reference.init_score);
    assert_eq!(
        model.booster, reference,
        "the federated trees are the pooled trees"
    );

    let federated = model.booster.predict_raw_all(&pooled);
    let expected = reference.predict_raw_all(&pooled);
    let max_delta = federated
        .iter()
        .zip(&expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "{} declarations, max |score difference| {max_delta:e}; federated {:.2?} \
         ({} rounds), pooled {:.2?}",
        pooled.n_rows(),
        federated_time,
        model.rounds,
        pooled_time
    );
    assert!(max_delta < 1e-9, "max |Δ| {max_delta}");
    // A round a split would take a round per split, plus a root and an apply per tree;
    // splitting ahead the leaves the grower may split next takes fewer.
    let splits: usize = model
        .booster
        .trees
        .iter()
        .map(|t| t.nodes.iter().filter(|n| n.split.is_some()).count())
        .sum();
    assert!(
        (model.rounds as usize) < splits,
        "{} rounds for {splits} splits",
        model.rounds
    );
    assert!(
        expected
            .iter()
            .any(|&s| (s - reference.init_score).abs() > 0.1),
        "a real model"
    );
    // Every party got the same model.
    for party in parties {
        assert_eq!(
            party.booster().unwrap(),
            model.booster,
            "party {}",
            party.id()
        );
    }
}

/// Records every call and answer going through, in process.
struct Recording {
    inner: InProcess,
    log: Vec<(PartyId, Call, Vec<u8>)>,
}

impl Transport for Recording {
    fn parties(&self) -> Vec<PartyId> {
        self.inner.parties()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        let answer = self.inner.call(party, call)?;
        self.log.push((party, call.clone(), answer.clone()));
        Ok(answer)
    }
}

/// Chi-square statistics of words against uniform: over the 256 byte values (255 degrees of
/// freedom), and over the 64 bit positions' counts of ones (64 degrees of freedom).
fn chi_square(words: &[u64]) -> (f64, f64) {
    let bytes = words_to_bytes(words);
    let mut counts = [0u64; 256];
    bytes.iter().for_each(|&b| counts[b as usize] += 1);
    let expected = bytes.len() as f64 / 256.0;
    let byte_chi: f64 = counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum();
    let n = words.len() as f64;
    let bit_chi: f64 = (0..64)
        .map(|bit| {
            let ones = words.iter().filter(|&&w| w >> bit & 1 == 1).count() as f64;
            // Ones and zeros against n/2 each.
            2.0 * (ones - n / 2.0).powi(2) / (n / 2.0)
        })
        .sum();
    (byte_chi, bit_chi)
}

/// Far beyond chance for uniform words: p ≈ 1e-9 at 255 degrees of freedom (bytes), 2e-7 at 64
/// (bits), by the Wilson–Hilferty approximation.
const BYTE_LIMIT: f64 = 420.0;
const BIT_LIMIT: f64 = 140.0;

/// What the coordinator receives from one party is indistinguishable from uniform noise, while
/// the same message without its masks is not (so the test can fail); the masks cancel and the
/// sum is exactly the pooled rows' histogram.
#[test]
fn the_coordinator_sees_uniform_noise_from_each_party_and_exact_sums() {
    let recording = Recording {
        inner: InProcess::new(parties()),
        log: Vec::new(),
    };
    let mut options = options(OnFault::Abort);
    options.gbdt.n_trees = 1;
    let config = options.gbdt.clone();
    let mut coordinator = Coordinator::new(recording, options);
    let model = coordinator.train().unwrap();
    let recording = coordinator.transport();
    let roots: Vec<&(PartyId, Call, Vec<u8>)> = recording
        .log
        .iter()
        .filter(|(_, call, _)| matches!(call.request, Request::Root { iteration: 0, .. }))
        .collect();
    assert_eq!(roots.len(), 3);
    let parties = recording.inner.all();
    let pooled = pooled(parties);
    let binning = &model.binning;
    // The bins of the features the first tree reads, the first feature's among them.
    let (_, allowed) = borderlens_risk::gbdt::round_sample(&config, 0, binning.features().len(), 0);
    let features = borderlens_federation::summed_features(&allowed);
    assert!(features.len() < binning.features().len() && features[0] == 0);
    let words_of = |histogram: NodeHistogram| {
        let mut words = Vec::new();
        histogram.extend_words_of(binning, &features, &mut words);
        words
    };
    let salts = recording
        .log
        .iter()
        .find_map(|(_, call, _)| match &call.request {
            Request::Peers { salts, .. } => Some(salts.clone()),
            _ => None,
        })
        .unwrap();

    let mut masked_messages = Vec::new();
    let mut plain_messages = Vec::new();
    for (party, call, bytes) in &roots {
        let envelope = Envelope::decode(bytes).unwrap();
        assert_eq!((envelope.party, envelope.round), (*party, call.round));
        let masked = bytes_to_words(&envelope.payload).unwrap();
        // The party's own histogram, computed here from its rows.
        let data = parties[*party as usize].dataset().unwrap();
        let n = data.n_rows();
        let init = vec![model.booster.init_score; n];
        let (mut g, mut h) = (vec![0; n], vec![0; n]);
        log_loss_gradients(&init, &data.labels, &data.weights, &mut g, &mut h);
        let all: Vec<u32> = (0..n as u32).collect();
        let plain = words_of(NodeHistogram::build(
            binning,
            &binning.bin_rows(data),
            &all,
            &g,
            &h,
        ));
        // Taking the masks away (the tests know the keys; the coordinator does not) gives it.
        let peers: Vec<(PartyId, [u8; 32])> = call
            .members
            .iter()
            .filter(|&&m| m != *party)
            .map(|&m| (m, pair_secret(*party, m, &salts)))
            .collect();
        let masks = secagg::mask(
            *party,
            &vec![0; masked.len()],
            &peers,
            call.round,
            &call.nonce,
        );
        let unmasked: Vec<u64> = masked
            .iter()
            .zip(&masks)
            .map(|(m, k)| m.wrapping_sub(*k))
            .collect();
        assert_eq!(unmasked, plain, "party {party}");

        let (byte_chi, bit_chi) = chi_square(&masked);
        let (plain_byte_chi, plain_bit_chi) = chi_square(&plain);
        println!(
            "party {party}: {} words; masked chi-square bytes {byte_chi:.1} (255 df), bits \
             {bit_chi:.1} (64 df); unmasked bytes {plain_byte_chi:.3e}, bits {plain_bit_chi:.3e}",
            masked.len()
        );
        assert!(masked.len() > 2000, "enough words to test");
        assert!(
            byte_chi < BYTE_LIMIT && bit_chi < BIT_LIMIT,
            "party {party}: masked"
        );
        assert!(
            plain_byte_chi > BYTE_LIMIT && plain_bit_chi > BIT_LIMIT,
            "party {party}: unmasked"
        );
        masked_messages.push(masked);
        plain_messages.push(plain);
    }
    // The masks cancel: the sum is exact, and it is the histogram of the pooled rows.
    let sum = secagg::sum(&masked_messages).unwrap();
    assert_eq!(sum, secagg::sum(&plain_messages).unwrap());
    let n = pooled.n_rows();
    let sums = LabelSums::of(&pooled.labels, &pooled.weights);
    let init = vec![sums.init_score(); n];
    let (mut g, mut h) = (vec![0; n], vec![0; n]);
    log_loss_gradients(&init, &pooled.labels, &pooled.weights, &mut g, &mut h);
    let all: Vec<u32> = (0..n as u32).collect();
    let whole = NodeHistogram::build(binning, &binning.bin_rows(&pooled), &all, &g, &h);
    assert_eq!(sum, words_of(whole));
}

/// What goes wrong, where.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Random bytes instead of the answer.
    Garbage,
    /// The party's answer of the previous round instead of this one's.
    Replay,
    /// No answer, from then on.
    Dead,
    /// A well-formed answer with masked words added to (the sum goes out of range).
    Tampered,
}

/// Parties in process; `party` goes wrong at its first node histogram of tree `tree`.
struct Faulty {
    inner: InProcess,
    fault: Fault,
    party: PartyId,
    tree: usize,
    roots: usize,
    /// Strike at the tree's first call (its root), before any of its sums, instead of at its
    /// first node histogram.
    at_root: bool,
    struck: Option<u64>,
    last_answer: Option<Vec<u8>>,
}

impl Faulty {
    fn new(fault: Fault, party: PartyId, tree: usize) -> Faulty {
        Faulty {
            inner: InProcess::new(parties()),
            fault,
            party,
            tree,
            roots: 0,
            at_root: false,
            struck: None,
            last_answer: None,
        }
    }

    fn at_root(mut self) -> Faulty {
        self.at_root = true;
        self
    }
}

impl Transport for Faulty {
    fn parties(&self) -> Vec<PartyId> {
        self.inner.parties()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        if party == self.party && matches!(call.request, Request::Root { .. }) {
            self.roots += 1;
        }
        let strike = party == self.party
            && self.roots == self.tree + 1
            && if self.at_root {
                matches!(call.request, Request::Root { .. })
            } else {
                matches!(call.request, Request::Split { .. })
            };
        if self.fault == Fault::Dead && party == self.party && self.struck.is_some() {
            return Err(Unreachable("connection refused".into()));
        }
        if !strike || self.struck.is_some() {
            let answer = self.inner.call(party, call)?;
            if party == self.party {
                self.last_answer = Some(answer.clone());
            }
            return Ok(answer);
        }
        self.struck = Some(call.round);
        match self.fault {
            Fault::Garbage => Ok((0..5000u32).map(|i| (i * 7919 % 251) as u8).collect()),
            Fault::Replay => Ok(self.last_answer.clone().unwrap()),
            Fault::Dead => Err(Unreachable("connection refused".into())),
            Fault::Tampered => {
                let answer = self.inner.call(party, call)?;
                let mut envelope = Envelope::decode(&answer).unwrap();
                let mut words = bytes_to_words(&envelope.payload).unwrap();
                words[0] = words[0].wrapping_add(1 << 40);
                envelope.payload = words_to_bytes(&words);
                Ok(envelope.encode())
            }
        }
    }
}

/// The clean run's model, to compare the parties' models with.
fn clean_model() -> FederatedModel {
    let mut coordinator = Coordinator::new(InProcess::new(parties()), options(OnFault::Abort));
    coordinator.train().unwrap()
}

/// Every party holds the first `n` trees of the clean model and nothing else, and the scores of
/// its rows under them.
fn parties_hold_the_first_trees(parties: &[LocalParty], clean: &FederatedModel, n: usize) {
    for party in parties {
        let booster = party.booster().unwrap();
        assert_eq!(
            booster.trees,
            clean.booster.trees[..n],
            "party {}",
            party.id()
        );
        let data = party.dataset().unwrap();
        let raw = booster.predict_raw_all(data);
        for (held, raw) in party.scores().unwrap().iter().zip(raw) {
            assert!((held - raw).abs() < 1e-12, "party {}", party.id());
        }
    }
}

/// A party sending garbage, a replayed message, or none (dead mid-round), and a sum out of
/// range: training stops with the party (where it can be known), the round and the tree named,
/// and every party's model is the clean model's first trees.
#[test]
fn faults_stop_training_naming_party_and_round_and_leave_every_model_whole() {
    let clean = clean_model();
    for (fault, expect) in [
        (Fault::Garbage, "malformed message"),
        (Fault::Replay, "replayed message of round"),
        (Fault::Dead, "dead or unreachable"),
        (Fault::Tampered, "out of range"),
    ] {
        let (party, tree) = (1, 2);
        let mut coordinator =
            Coordinator::new(Faulty::new(fault, party, tree), options(OnFault::Abort));
        let error = coordinator.train().unwrap_err();
        let transport = coordinator.transport();
        let round = transport.struck.unwrap();
        let message = error.to_string();
        println!("{fault:?}: {message}");
        assert!(message.contains(expect), "{fault:?}: {message}");
        assert!(message.contains(&format!("round {round}")), "{message}");
        assert!(
            message.contains(&format!("tree {tree}, split of node")),
            "{message}"
        );
        match error {
            FederationError::Party { party: p, .. } => assert_eq!(p, party, "{message}"),
            FederationError::OutOfRange { .. } => assert_eq!(fault, Fault::Tampered),
            FederationError::Refused(_) | FederationError::Interrupted(_) => {
                panic!("{message}")
            }
        }
        parties_hold_the_first_trees(transport.inner.all(), &clean, tree);
    }
}

/// With the drop policy, a party dead mid-round is dropped with the reason recorded; the tree
/// being grown is grown again by the others, training completes, and the survivors hold the
/// same model, whose first trees are the clean model's.
#[test]
fn a_dead_party_is_dropped_and_the_others_finish_training() {
    let clean = clean_model();
    let (party, tree) = (2, 3);
    // Dead at the start of tree 3, before any sum of it.
    let mut coordinator = Coordinator::new(
        Faulty::new(Fault::Dead, party, tree).at_root(),
        options(OnFault::Drop),
    );
    let model = coordinator.train().unwrap();
    let transport = coordinator.transport();
    let round = transport.struck.unwrap();
    assert_eq!(model.dropped.len(), 1);
    let dropped = &model.dropped[0];
    assert_eq!((dropped.party, dropped.round), (party, round));
    assert!(
        dropped.reason.contains(&format!("tree {tree}")) && dropped.reason.contains("dead"),
        "{}",
        dropped.reason
    );
    assert_eq!(model.booster.trees.len(), config().n_trees);
    assert_eq!(model.booster.trees[..tree], clean.booster.trees[..tree]);
    assert_ne!(model.booster.trees[tree], clean.booster.trees[tree]);
    for survivor in transport.inner.all().iter().filter(|p| p.id() != party) {
        assert_eq!(survivor.booster().unwrap(), model.booster);
    }
    // The dead party kept the trees it applied before it died.
    let dead = transport.inner.party(party).unwrap();
    assert_eq!(dead.booster().unwrap().trees, clean.booster.trees[..tree]);
}

/// A party that dies after its histograms of a tree were summed is not dropped: the tree regrown
/// without it would reveal its histograms by difference. Training stops, saying why.
#[test]
fn a_party_dead_after_a_sum_of_its_tree_stops_training_instead_of_being_dropped() {
    let (party, tree) = (2, 3);
    let mut coordinator = Coordinator::new(
        Faulty::new(Fault::Dead, party, tree),
        options(OnFault::Drop),
    );
    let error = coordinator.train().unwrap_err().to_string();
    assert!(
        error.contains("party 2") && error.contains("tree 3") && error.contains("not dropped"),
        "{error}"
    );
    assert!(coordinator.transport().struck.is_some());
}

/// A party refuses a replayed call (a round it answered already), naming the rounds.
#[test]
fn a_party_refuses_a_replayed_call() {
    let mut party = parties().remove(0);
    let call = Call {
        round: 5,
        nonce: [1; 16],
        members: vec![0, 1, 2],
        request: Request::PublicKey,
    };
    let first = Envelope::decode(&party.handle(&call)).unwrap();
    assert_eq!(first.payload[..32], keys(0).public());
    assert_eq!(first.payload.len(), 64, "key and session salt");
    let again = Envelope::decode(&party.handle(&call)).unwrap();
    let why = String::from_utf8(again.payload).unwrap();
    assert!(why.contains("round 5 is not after round 5"), "{why}");
}

/// Calls straight to parties 0, 1 and 2, rounds numbered from 1.
#[derive(Default)]
struct Calls {
    round: u64,
}

impl Calls {
    /// `request` in the next round, every party a member: the call and each party's answer.
    fn all(&mut self, parties: &mut [LocalParty], request: Request) -> (Call, Vec<Envelope>) {
        self.round += 1;
        let call = Call {
            round: self.round,
            nonce: [self.round as u8; 16],
            members: vec![0, 1, 2],
            request,
        };
        let answers = parties
            .iter_mut()
            .map(|p| Envelope::decode(&p.handle(&call)).unwrap())
            .collect();
        (call, answers)
    }
}

/// The parties' public keys and salts relayed to all, as the coordinator does; the salts.
fn agree_keys(
    call_all: &mut impl FnMut(&mut [LocalParty], Request) -> (Call, Vec<Envelope>),
    parties: &mut [LocalParty],
) -> Vec<(PartyId, [u8; 32])> {
    let (_, answers) = call_all(parties, Request::PublicKey);
    let keys = answers
        .iter()
        .map(|e| (e.party, e.payload[..32].try_into().unwrap()))
        .collect();
    let salts: Vec<(PartyId, [u8; 32])> = answers
        .iter()
        .map(|e| (e.party, e.payload[32..].try_into().unwrap()))
        .collect();
    call_all(
        parties,
        Request::Peers {
            keys,
            salts: salts.clone(),
        },
    );
    salts
}

/// A party drops out of a masked round after the others have masked with it: the survivors'
/// masked words sum to noise; with their round seeds of the pairs with it the exact sum comes
/// back (`secagg::unmask`), but a party refuses to reveal a seed (no self-masks yet).
#[test]
fn survivors_sum_is_recovered_from_the_round_seeds_which_no_party_reveals() {
    let items = sample_items();
    let mut parties = parties();
    let mut calls = Calls::default();
    let mut call_all = |parties: &mut [LocalParty], request| calls.all(parties, request);
    let salts = agree_keys(&mut call_all, &mut parties);
    let pipeline = FeaturePipeline::fit(&items);
    call_all(&mut parties, Request::Pipeline { pipeline });
    let (sums_call, answers) = call_all(&mut parties, Request::LabelSums);
    // Party 1's answer is lost: the others' masked words do not sum to anything.
    let survivors = [0usize, 2];
    let masked: Vec<Vec<u64>> = survivors
        .iter()
        .map(|&p| bytes_to_words(&answers[p].payload).unwrap())
        .collect();
    let partial = secagg::sum(&masked).unwrap();
    let mut expected = LabelSums::default();
    for &p in &survivors {
        let data = parties[p].dataset().unwrap();
        expected.add(&LabelSums::of(&data.labels, &data.weights));
    }
    let plain = vec![
        expected.n_rows,
        expected.weight as u64,
        expected.positive_weight as u64,
    ];
    assert_ne!(partial, plain);
    // A party reveals no round seed: without self-masks the coordinator could claim that a
    // party which did answer had dropped, and unmask it.
    let reveal = Call {
        round: 1_000,
        nonce: [0xEE; 16],
        members: vec![0, 2],
        request: Request::Reveal {
            dropped: 1,
            round: sums_call.round,
            nonce: sums_call.nonce,
        },
    };
    let refused = Envelope::decode(&parties[0].handle(&reveal)).unwrap();
    assert!(String::from_utf8(refused.payload)
        .unwrap()
        .contains("is not revealed"));
    // The arithmetic of recovery holds with the seeds (known here from the tests' keys).
    let seeds: Vec<(PartyId, [u8; 32])> = survivors
        .iter()
        .map(|&p| {
            let p = p as PartyId;
            let shared = pair_secret(p, 1, &salts);
            (
                p,
                secagg::round_seed(&shared, sums_call.round, &sums_call.nonce),
            )
        })
        .collect();
    assert_eq!(secagg::unmask(&partial, 1, &seeds), plain);
}

/// Relays the parties' public keys with party 2's replaced by one the coordinator holds: what a
/// dishonest coordinator would do to unmask party 2's sums.
struct Substituting {
    inner: InProcess,
    attacker: KeyPair,
}

impl Transport for Substituting {
    fn parties(&self) -> Vec<PartyId> {
        self.inner.parties()
    }

    fn call(&mut self, party: PartyId, call: &Call) -> Result<Vec<u8>, Unreachable> {
        let mut call = call.clone();
        if let Request::Peers { keys, .. } = &mut call.request {
            for (p, key) in keys.iter_mut() {
                if *p == 2 {
                    *key = self.attacker.public();
                }
            }
        }
        self.inner.call(party, &call)
    }
}

/// Parties that pin each other's public keys train as before; a coordinator relaying a key of
/// its own in place of a party's is refused (by the pinning parties, and by the party whose
/// key was altered even without pins), before any sum is sent.
#[test]
fn pinned_keys_train_and_a_substituted_key_is_refused() {
    let pins: Vec<[u8; 32]> = (0..3).map(|id| keys(id).public()).collect();
    let pinned = || -> Vec<LocalParty> {
        parties()
            .into_iter()
            .map(|p| p.pin_peers(pins.clone()))
            .collect()
    };
    let mut short = options(OnFault::Abort);
    short.gbdt.n_trees = 3;
    let mut coordinator = Coordinator::new(InProcess::new(pinned()), short.clone());
    let model = coordinator.train().unwrap();
    assert_eq!(model.booster.trees.len(), 3);

    let mut coordinator = Coordinator::new(
        Substituting {
            inner: InProcess::new(pinned()),
            attacker: KeyPair::from_secret([99; 32]),
        },
        short.clone(),
    );
    let error = coordinator.train().unwrap_err().to_string();
    assert!(
        error.contains("party 0") && error.contains("is not one this party pins"),
        "{error}"
    );
    let mut coordinator = Coordinator::new(
        Substituting {
            inner: InProcess::new(parties()),
            attacker: KeyPair::from_secret([99; 32]),
        },
        short,
    );
    let error = coordinator.train().unwrap_err().to_string();
    assert!(
        error.contains("party 2") && error.contains("own public key is missing or altered"),
        "{error}"
    );
    // No party got as far as a sum.
    for party in coordinator.transport().inner.all() {
        assert!(party.booster().is_none(), "party {}", party.id());
    }
}

/// A party splits leaves ahead only as the grower may (leaves it holds, once each, at most
/// one per leaf allowed), takes a split as the tree's only when it was made ahead and its
/// children are numbered as the grower numbers them, and answers with one histogram per leaf
/// split, in the order asked.
#[test]
fn a_party_takes_only_splits_made_ahead_with_the_children_the_grower_numbers() {
    let mut parties = parties();
    let mut calls = Calls::default();
    agree_keys(&mut |p, r| calls.all(p, r), &mut parties);
    let mut call_all = |parties: &mut [LocalParty], request| calls.all(parties, request).1;
    let pipeline = FeaturePipeline::fit(&sample_items());
    let answers = call_all(&mut parties, Request::Pipeline { pipeline });
    let summaries: Vec<Vec<FeatureSummary>> = answers
        .iter()
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect();
    let config = config();
    let binning = Binning::from_summaries(&summaries, config.max_bin).unwrap();
    call_all(
        &mut parties,
        Request::Binning {
            binning: binning.clone(),
            config: config.clone(),
            noise: None,
        },
    );
    call_all(&mut parties, Request::Init { init_score: -2.0 });
    let every: Vec<usize> = (0..binning.features().len()).collect();
    // Features that do not ascend from the first are refused.
    for features in [vec![1, 2], vec![0, 2, 1], vec![0, every.len()]] {
        let answers = call_all(
            &mut parties,
            Request::Root {
                iteration: 0,
                features,
            },
        );
        assert_eq!(answers[0].kind, Kind::Refused);
        let why = String::from_utf8(answers[0].payload.clone()).unwrap();
        assert!(why.contains("must ascend from the first"), "{why}");
    }
    let root = call_all(
        &mut parties,
        Request::Root {
            iteration: 0,
            features: every,
        },
    );
    let len = root[0].payload.len();
    // A numeric feature split at its first bin.
    let feature = binning
        .features()
        .iter()
        .position(|f| {
            f.n_bins() > 3 && matches!(f, borderlens_risk::gbdt::FeatureBins::Numeric { .. })
        })
        .unwrap();
    let at = |node: usize| Ahead {
        node,
        feature,
        split: BinSplit::Numeric {
            threshold_bin: 1,
            default_left: true,
        },
    };
    let split = |confirm: Vec<Confirm>, ahead: Vec<Ahead>| Request::Split { confirm, ahead };
    let refusal = |answers: &[Envelope]| {
        assert_eq!(answers[0].kind, Kind::Refused);
        String::from_utf8(answers[0].payload.clone()).unwrap()
    };
    let children = |node, left, right| Confirm { node, left, right };

    let answers = call_all(&mut parties, split(vec![], vec![at(0)]));
    assert_eq!(answers[0].kind, Kind::Masked);
    assert_eq!(answers[0].payload.len(), len, "one histogram");
    // The root again, before the grower took it: refused.
    let why = refusal(&call_all(&mut parties, split(vec![], vec![at(0)])));
    assert!(why.contains("node 0 is split ahead already"), "{why}");
    // Children numbered otherwise than the grower: refused.
    let why = refusal(&call_all(
        &mut parties,
        split(vec![children(0, 2, 3)], vec![at(1)]),
    ));
    assert!(why.contains("children 2 and 3 of node 0"), "{why}");
    // A node never split ahead cannot be taken.
    let why = refusal(&call_all(
        &mut parties,
        split(vec![children(4, 1, 2)], vec![at(1)]),
    ));
    assert!(why.contains("node 4 was not split ahead"), "{why}");
    // Ids out of the grower's order, however large: refused, never a panic.
    let why = refusal(&call_all(
        &mut parties,
        split(vec![children(0, usize::MAX, 0)], vec![at(1)]),
    ));
    assert!(why.contains("the next are 1 and 2"), "{why}");
    // Nothing to split, or more leaves than a tree may have: refused.
    let why = refusal(&call_all(&mut parties, split(vec![], vec![])));
    assert!(why.contains("0 leaves to split in one round"), "{why}");
    let many: Vec<Ahead> = (0..config.num_leaves + 1).map(at).collect();
    let why = refusal(&call_all(&mut parties, split(vec![], many)));
    assert!(why.contains("leaves to split in one round"), "{why}");
    // Taken as the grower numbers them, the two children are split ahead in one round: two
    // histograms, in the order asked.
    let answers = call_all(
        &mut parties,
        split(vec![children(0, 1, 2)], vec![at(2), at(1)]),
    );
    assert_eq!(
        answers[0].kind,
        Kind::Masked,
        "{:?}",
        String::from_utf8_lossy(&answers[0].payload)
    );
    assert_eq!(answers[0].payload.len(), 2 * len);
    // The root was split: it holds no rows any more.
    let why = refusal(&call_all(&mut parties, split(vec![], vec![at(0)])));
    assert!(why.contains("node 0 has no rows"), "{why}");
}

/// Pooled statistics under secure aggregation: the sums by origin and by route are the counts
/// of all the parties' controlled declarations, segment by segment; segments only one party
/// holds are counted together, never alone.
#[test]
fn pooled_counts_are_the_sums_of_the_parties_counts() {
    let parties = parties();
    let mut expected: Vec<std::collections::BTreeMap<String, (u64, u64, usize)>> = Vec::new();
    let mut held: Vec<Vec<std::collections::BTreeSet<String>>> = Vec::new();
    for dimension in ["origin", "route"] {
        let mut sets = Vec::new();
        // By hand: per party, its declarations' segment and whether fraud was found.
        let mut by_segment: std::collections::BTreeMap<String, (u64, u64, usize)> =
            Default::default();
        for party in &parties {
            let mut declarations: std::collections::BTreeMap<&str, (String, bool)> =
                Default::default();
            for item in party.items() {
                let Some(label) = item.label else { continue };
                let segment = match dimension {
                    "origin" => item.origin_country.clone(),
                    _ => format!("{}/{}", item.departure_country, item.transport_mode),
                };
                let entry = declarations
                    .entry(item.key.declaration_id.as_str())
                    .or_insert((segment, false));
                entry.1 |= label.fraud;
            }
            let mut seen = std::collections::BTreeSet::new();
            for (segment, hit) in declarations.into_values() {
                let entry = by_segment.entry(segment.clone()).or_default();
                entry.0 += 1;
                entry.1 += u64::from(hit);
                if seen.insert(segment) {
                    entry.2 += 1;
                }
            }
            sets.push(seen);
        }
        expected.push(by_segment);
        held.push(sets);
    }
    drop(parties);
    let session = || Coordinator::new(InProcess::new(self::parties()), options(OnFault::Abort));
    let mut coordinator = session();
    for ((dimension, expected), sets) in ["origin", "route"].into_iter().zip(expected).zip(held) {
        coordinator = session();
        let counts = coordinator.pooled_counts(dimension).unwrap();
        assert_eq!(counts.dimension, dimension);
        let shared: Vec<(String, u64, u64)> = expected
            .iter()
            .filter(|(_, (_, _, parties))| *parties >= 2)
            .map(|(s, (n, h, _))| (s.clone(), *n, *h))
            .collect();
        assert!(shared.len() > 3, "{dimension}: {shared:?}");
        assert_eq!(counts.segments, shared, "{dimension}");
        let alone = expected
            .values()
            .filter(|(_, _, parties)| *parties < 2)
            .fold((0, 0), |(n, h), (a, b, _)| (n + a, h + b));
        // Counted together only when two parties or more hold segments of their own.
        let holding_alone = sets
            .iter()
            .filter(|set| set.iter().any(|s| expected[s].2 == 1))
            .count();
        assert_eq!(
            counts.elsewhere,
            (holding_alone >= 2).then_some(alone),
            "{dimension}: {holding_alone} parties hold segments of their own"
        );
        println!("{dimension}: {holding_alone} parties hold segments of their own, {alone:?}");
        let total: u64 = expected.values().map(|(n, _, _)| n).sum();
        assert!(total > 5_000);
    }
    // Asked again in the same session (over another set of parties, say): refused.
    let err = coordinator.pooled_counts("origin").unwrap_err().to_string();
    assert!(err.contains("segments were answered already"), "{err}");
    // Statistics by anything else are refused by the parties, naming the dimension.
    let err = session().pooled_counts("importer").unwrap_err().to_string();
    assert!(err.contains("no statistics by \"importer\""), "{err}");
}

/// The parties with a privacy policy each.
fn parties_with_policy(policy: &PrivacyPolicy) -> Vec<LocalParty> {
    parties()
        .into_iter()
        .map(|p| p.with_privacy(policy.clone()).unwrap())
        .collect()
}

fn noisy_options(noise_multiplier: f64) -> FederationOptions {
    FederationOptions {
        privacy: Some(Privacy {
            noise_multiplier,
            delta: 1e-6,
        }),
        ..options(OnFault::Abort)
    }
}

/// With differential privacy every party adds its own noise: the trees are no longer the exact
/// ones but every party holds the same, the model still ranks, and the privacy each party
/// counted spending is what the coordinator reports.
#[test]
fn with_noise_every_party_holds_one_model_and_spends_the_privacy_reported() {
    let clean = clean_model();
    let policy = PrivacyPolicy {
        min_noise_multiplier: 0.1,
        delta: 1e-6,
        max_epsilon: None,
    };
    let mut coordinator = Coordinator::new(
        InProcess::new(parties_with_policy(&policy)),
        noisy_options(0.1),
    );
    let model = coordinator.train().unwrap();
    let privacy = model.privacy.expect("privacy reported");
    // The label sums, then per tree its root and its split rounds: every round but the six of
    // setup (keys, vocabularies, summaries, bins, starting score) and the trees' applies.
    assert_eq!(privacy.spent.releases, model.rounds - 6 - 30, "{privacy:?}");
    assert_eq!(privacy.spent.noise_multiplier, 0.1);
    assert!((privacy.spent.rho - privacy.spent.releases as f64 * 50.0).abs() < 1e-6);
    assert!((privacy.epsilon - dp::epsilon(privacy.spent.rho, 1e-6)).abs() < 1e-9);
    let parties = coordinator.transport().all();
    for party in parties {
        assert_eq!(
            party.privacy_spent(),
            Some(privacy.spent),
            "party {}",
            party.id()
        );
        assert_eq!(
            party.booster().unwrap().trees,
            model.booster.trees,
            "party {}",
            party.id()
        );
    }
    assert_ne!(
        model.booster.trees, clean.booster.trees,
        "noise changed nothing"
    );
    // The model still ranks the rows it learnt from, if less well: noise of σ ≈ 0.5 per bin
    // on 6,000 rows and 255 bins per feature (0.62-0.66 in nine runs, 0.88 without noise).
    let rows = pooled(parties);
    let auc =
        |b: &Booster| borderlens_risk::metrics::roc_auc(&b.predict_raw_all(&rows), &rows.labels);
    let (noisy, exact) = (auc(&model.booster), auc(&clean.booster));
    println!("AUC {noisy} with noise, {exact} without");
    assert!(
        noisy > 0.55 && noisy < exact,
        "AUC {noisy} with noise, {exact} without"
    );
}

/// A party's policy: less noise than its least, or none, is refused before any sum is sent; a
/// release beyond its budget is refused and training stops there, every party holding the
/// trees applied before.
#[test]
fn a_party_refuses_too_little_noise_and_any_release_beyond_its_budget() {
    let policy = PrivacyPolicy {
        min_noise_multiplier: 2.0,
        delta: 1e-6,
        max_epsilon: None,
    };
    for options in [noisy_options(1.0), options(OnFault::Abort)] {
        let mut coordinator = Coordinator::new(
            InProcess::new(parties_with_policy(&policy)),
            options.clone(),
        );
        let error = coordinator.train().unwrap_err().to_string();
        assert!(
            error.contains("binning")
                && error.contains("noise of multiplier 2 at least; the coordinator asked for"),
            "{error}"
        );
        for party in coordinator.transport().all() {
            assert!(party.booster().is_none(), "party {}", party.id());
            assert_eq!(party.privacy_spent(), None, "party {}", party.id());
        }
    }

    // A budget of 40 releases at multiplier 2 (ρ = 1/8 each).
    let budget = dp::epsilon(40.0 / 8.0, 1e-6);
    let policy = PrivacyPolicy {
        max_epsilon: Some(budget),
        ..policy
    };
    let mut coordinator = Coordinator::new(
        InProcess::new(parties_with_policy(&policy)),
        noisy_options(2.0),
    );
    let error = coordinator.train().unwrap_err();
    let FederationError::Party { what, .. } = &error else {
        panic!("{error}");
    };
    assert!(
        what.contains("privacy budget") && what.contains("answers no more"),
        "{what}"
    );
    let parties = coordinator.transport().all();
    let trees = parties[0].booster().unwrap().trees;
    assert!(
        !trees.is_empty() && trees.len() < 30,
        "{} trees",
        trees.len()
    );
    for party in parties {
        assert_eq!(
            party.booster().unwrap().trees,
            trees,
            "party {}",
            party.id()
        );
        let spent = party.privacy_spent().unwrap();
        assert!(
            spent.releases <= 40 && spent.epsilon(1e-6) <= budget,
            "{spent:?}"
        );
    }
}

/// Pooled statistics by concealment method: each party's findings (declarations with fraud
/// found) by method, summed masked. A method only one party found is not counted, nor are its
/// findings in the denominator (all findings less those shown would be that party's count).
#[test]
fn pooled_counts_by_concealment_are_shares_of_all_the_parties_findings() {
    // A method for most findings, from the declaration id; a few have none recorded; only
    // party 2 found "swallowed", and never "in_goods".
    let method_of = |party: PartyId, id: &str| match id.bytes().map(u32::from).sum::<u32>() % 5 {
        0 => None,
        1 | 2 => Some("false_compartment"),
        3 if party == 2 => Some("swallowed"),
        3 => Some("in_goods"),
        _ => Some("body"),
    };
    let parties: Vec<LocalParty> = parties()
        .into_iter()
        .map(|mut party| {
            let methods = party
                .items()
                .iter()
                .filter(|d| d.label.is_some_and(|l| l.fraud))
                .filter_map(|d| {
                    method_of(party.id(), &d.key.declaration_id)
                        .map(|m| (d.key.declaration_id.clone(), m.to_string()))
                })
                .collect();
            party.set_concealment(methods);
            party
        })
        .collect();
    // By hand: every party's findings, and per method (or "not recorded") how many.
    let mut findings = 0u64;
    let mut by_method: std::collections::BTreeMap<String, u64> = Default::default();
    for party in &parties {
        let mut found: std::collections::BTreeMap<&str, bool> = Default::default();
        for item in party.items() {
            let Some(label) = item.label else { continue };
            *found.entry(item.key.declaration_id.as_str()).or_default() |= label.fraud;
        }
        for (id, _) in found.into_iter().filter(|(_, hit)| *hit) {
            findings += 1;
            *by_method
                .entry(
                    method_of(party.id(), id)
                        .unwrap_or("not recorded")
                        .to_string(),
                )
                .or_default() += 1;
        }
    }
    assert!(findings > 200, "{findings} findings");
    let mut coordinator = Coordinator::new(InProcess::new(parties), options(OnFault::Abort));
    let counts = coordinator.pooled_counts("concealment").unwrap();
    // Every other method is held by two parties or more: each is counted on its own, out of
    // the findings counted.
    let alone = by_method.remove("swallowed").expect("party 2's own method");
    assert!(alone > 0);
    let expected: Vec<(String, u64, u64)> = by_method
        .into_iter()
        .map(|(method, n)| (method, findings - alone, n))
        .collect();
    assert_eq!(expected.len(), 4);
    assert_eq!(counts.segments, expected);
    assert_eq!(
        counts.elsewhere, None,
        "one party only holds a method of its own"
    );
}

/// With noise, a party dropped at a tree's root: the survivors had answered that root with
/// noisy sums before the tree was regrown without it, and the privacy the coordinator reports
/// is what each survivor counted spending, that root included.
#[test]
fn with_noise_a_dropped_party_leaves_the_survivors_spent_as_reported() {
    let (party, tree) = (2, 3);
    let mut coordinator = Coordinator::new(
        Faulty::new(Fault::Dead, party, tree).at_root(),
        FederationOptions {
            on_fault: OnFault::Drop,
            ..noisy_options(1.0)
        },
    );
    let model = coordinator.train().unwrap();
    assert_eq!(model.dropped.len(), 1);
    let reported = model.privacy.unwrap().spent;
    // The label sums, every tree's root and split rounds, and the root the survivors answered
    // before the drop: every round but the six of setup and the trees' applies.
    let setup_and_applies = 6 + config().n_trees as u64;
    assert_eq!(
        reported.releases,
        model.rounds - setup_and_applies,
        "{} rounds",
        model.rounds
    );
    for survivor in coordinator
        .transport()
        .inner
        .all()
        .iter()
        .filter(|p| p.id() != party)
    {
        assert_eq!(
            survivor.privacy_spent(),
            Some(reported),
            "party {}",
            survivor.id()
        );
    }
}
