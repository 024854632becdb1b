//! Federation over HTTP, black box: three `node serve` nodes on loopback, each over its own
//! SQLite store holding one customs office's declarations (split by
//! `scripts/federation-split.sh`), and the coordinator's client (`HttpNodes`) running
//! `federate_train`. The model every node saves equals the model trained on the pooled rows;
//! every round is in every node's audit log; tokens are mutual; a node killed mid-training is
//! dropped or aborts training, and no node keeps a half model.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use borderlens_app::{self as app, FederateRequest, Progress, Silent};
use borderlens_domain::LabelKind;
use borderlens_federation::dp::{self, PrivacyPolicy};
use borderlens_federation::{OnFault, Privacy};
use borderlens_ingest::ColumnMapping;
use borderlens_risk::data::Dataset;
use borderlens_risk::gbdt::{Booster, GbdtConfig};
use borderlens_risk::model::RiskModel;
use borderlens_server::federation::{
    run_node, token_sha256, HttpNodes, NodeConfig, NodeEntry, NodeTls, NodesFile, Partner, Partners,
};
use borderlens_store::{Audit, ItemFilter, Items, Registry, Store};
use chrono::NaiveDate;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const TOKEN: &str = "coordinator-token-0123456789abcdef";
const NAMES: [&str; 3] = ["node-a", "node-b", "node-c"];

fn node_token(name: &str) -> String {
    format!("{name}-answers-with-this-token")
}

/// Three nodes serving on loopback, each over its own store.
struct Nodes {
    runtime: tokio::runtime::Runtime,
    addrs: Vec<SocketAddr>,
    stops: Vec<Option<tokio::sync::oneshot::Sender<()>>>,
    served: Vec<Option<tokio::task::JoinHandle<()>>>,
    stores: Vec<PathBuf>,
    /// Whether the nodes serve HTTPS (with the test authority's certificate).
    tls: bool,
    _dir: tempfile::TempDir,
}

/// The TLS fixtures (`scripts/make-test-certs.sh`).
fn tls_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

impl Nodes {
    /// Splits the sample's 2021-Q1 declarations by office with the script, imports each part
    /// into its node's store, and serves the three nodes.
    fn start() -> Nodes {
        Nodes::start_serving(false)
    }

    /// [`Nodes::start`], the nodes serving HTTPS when `tls`.
    fn start_serving(tls: bool) -> Nodes {
        Nodes::start_with(tls, &[None, None, None])
    }

    /// [`Nodes::start_serving`], each node with its own rule on differential privacy.
    fn start_with(tls: bool, privacy: &[Option<PrivacyPolicy>; 3]) -> Nodes {
        let dir = tempfile::tempdir().unwrap();
        let split = dir.path().join("split");
        let sample = Path::new(ROOT).join("data/sample/df_syn_valid_eng.csv");
        let status = std::process::Command::new("bash")
            .arg(Path::new(ROOT).join("scripts/federation-split.sh"))
            .arg(&split)
            .arg(&sample)
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "the split script failed");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut nodes = Nodes {
            runtime,
            addrs: Vec::new(),
            stops: Vec::new(),
            served: Vec::new(),
            stores: Vec::new(),
            tls,
            _dir: dir,
        };
        for (name, privacy) in NAMES.iter().zip(privacy) {
            let db = nodes._dir.path().join(format!("{name}.db"));
            let mut store = Store::open(&db).unwrap();
            let reports = app::import_files(
                &mut store,
                &[split.join(name).join("df_syn_valid_eng.csv")],
                &ColumnMapping::kcs_default(),
                true,
                &Silent,
            )
            .unwrap();
            assert!(
                reports[0].inserted > 2000,
                "{name}: {}",
                reports[0].inserted
            );
            drop(store);
            let config = NodeConfig {
                db: db.clone(),
                database_url: None,
                partners: Partners {
                    partners: vec![Partner {
                        name: "coordinator".into(),
                        token_sha256: token_sha256(TOKEN),
                        node_token: node_token(name),
                    }],
                    peers: Vec::new(),
                    privacy: privacy.clone(),
                },
                key: None,
                tls: tls.then(|| {
                    NodeTls::read(&tls_fixture("node.pem"), &tls_fixture("node.key")).unwrap()
                }),
            };
            let listener = nodes
                .runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .unwrap();
            nodes.addrs.push(listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let served = nodes.runtime.spawn(async move {
                run_node(listener, config, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
            nodes.stops.push(Some(stop));
            nodes.served.push(Some(served));
            nodes.stores.push(db);
        }
        nodes
    }

    /// The coordinator's nodes file for these nodes.
    fn file(&self) -> NodesFile {
        NodesFile {
            nodes: NAMES
                .iter()
                .zip(&self.addrs)
                .map(|(name, addr)| NodeEntry {
                    name: name.to_string(),
                    url: match self.tls {
                        true => format!("https://{addr}"),
                        false => format!("http://{addr}"),
                    },
                    token: TOKEN.into(),
                    node_token: node_token(name),
                    ca: self.tls.then(|| tls_fixture("ca.pem")),
                })
                .collect(),
        }
    }

    /// Stops node `i` and waits until it no longer serves.
    fn kill(&mut self, i: usize) {
        if let Some(stop) = self.stops[i].take() {
            let _ = stop.send(());
        }
        if let Some(served) = self.served[i].take() {
            self.runtime.block_on(served).unwrap();
        }
    }

    fn store(&self, i: usize) -> Store {
        Store::open(&self.stores[i]).unwrap()
    }
}

fn config() -> GbdtConfig {
    let mut gbdt = GbdtConfig::standard();
    gbdt.n_trees = 30;
    gbdt.learning_rate = 0.1;
    gbdt
}

fn request(model: &str, on_fault: OnFault) -> FederateRequest {
    FederateRequest {
        label: LabelKind::Fraud,
        until: NaiveDate::from_ymd_opt(2021, 3, 31).unwrap(),
        model: model.into(),
        gbdt: config(),
        on_fault,
        privacy: None,
    }
}

/// Runs the coordinator off the nodes' runtime (its client blocks).
fn federate(
    file: NodesFile,
    request: &FederateRequest,
    progress: &(dyn Progress + Sync),
) -> Result<app::FederateReport, app::JobError> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let links = HttpNodes::new(file, Duration::from_secs(60)).unwrap();
                app::federate_train(links, request, progress)
            })
            .join()
            .unwrap()
    })
}

/// The entries of `store`'s audit log about `session`.
fn session_log(store: &Store, session: &str) -> Vec<(String, serde_json::Value)> {
    store
        .audit_entries(100_000)
        .unwrap()
        .into_iter()
        .rev()
        .filter(|e| e.subject == session)
        .map(|e| (e.action, serde_json::from_str(&e.detail_json).unwrap()))
        .collect()
}

/// Three nodes over HTTP train the model pooled training gives on the union of their rows: the
/// same trees, every declaration's score within 1e-9 (exactly equal, in fact), saved in every
/// node's registry; every round is in every node's audit log.
#[test]
fn three_nodes_over_http_train_the_pooled_model_and_audit_every_round() {
    let nodes = Nodes::start();
    let report = federate(nodes.file(), &request("federated", OnFault::Abort), &Silent).unwrap();
    assert_eq!(report.n_trees, 30);
    assert!(report.same_trees, "{report:?}");
    assert!(report.nodes.iter().all(|n| n.saved.is_some()), "{report:?}");

    // The pooled model: the nodes' rows together (each with its own history), trained in one
    // place with the same options.
    let mut pooled: Option<Dataset> = None;
    let mut saved = Vec::new();
    for i in 0..3 {
        let store = nodes.store(i);
        let stored = store.load_model("federated", None).unwrap().unwrap();
        let model = RiskModel::from_bytes(&stored.bytes).unwrap();
        let items = store
            .items(&ItemFilter {
                from: None,
                to: None,
                labelled_only: false,
            })
            .unwrap();
        let wanted: Vec<bool> = items.iter().map(|d| d.label.is_some()).collect();
        let (data, _) = model.design(&items, &wanted);
        match &mut pooled {
            None => pooled = Some(data),
            Some(p) => {
                for r in 0..data.n_rows() {
                    p.push_row(&data.row(r), data.labels[r], data.weights[r]);
                }
            }
        }
        saved.push(model);
    }
    let pooled = pooled.unwrap();
    assert_eq!(pooled.n_rows(), 8134);
    let reference = Booster::train(&pooled, &config(), None, &mut |_, _| true);
    let expected = reference.predict_raw_all(&pooled);
    for (i, model) in saved.iter().enumerate() {
        assert_eq!(model.booster, reference, "{}: the pooled trees", NAMES[i]);
        let got = model.booster.predict_raw_all(&pooled);
        let max_delta = got
            .iter()
            .zip(&expected)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(max_delta < 1e-9, "{}: max |Δ| {max_delta}", NAMES[i]);
    }
    assert!(
        expected
            .iter()
            .any(|&s| (s - reference.init_score).abs() > 0.1),
        "a real model"
    );

    // Every round, in every node's audit log, under the coordinator's name.
    for (i, name) in NAMES.iter().enumerate() {
        let store = nodes.store(i);
        let log = session_log(&store, &report.session);
        let actions: Vec<&str> = log.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(actions.first(), Some(&"federation_open"), "{}", name);
        assert_eq!(actions.last(), Some(&"federation_finish"), "{}", name);
        let mut rounds: Vec<u64> = log
            .iter()
            .filter(|(a, _)| a == "federation_rounds")
            .flat_map(|(_, d)| d["rounds"].as_array().unwrap().clone())
            .map(|r| r["round"].as_u64().unwrap())
            .collect();
        rounds.sort_unstable();
        assert_eq!(
            rounds,
            (1..=report.rounds).collect::<Vec<_>>(),
            "{}: every round audited once",
            name
        );
        // The manager's page reads the same log: the session, its rounds, what was shared.
        let sessions = app::federation_sessions(&store, 100_000).unwrap();
        let seen = &sessions[0];
        assert_eq!(seen.session, report.session);
        assert_eq!(seen.partner, "coordinator");
        assert_eq!(seen.outcome, "finished");
        assert_eq!(seen.rounds as u64, report.rounds);
        assert_eq!(seen.trees, 30);
        assert_eq!(seen.party, Some(i as u64));
        let masked = seen
            .shared
            .iter()
            .find(|(what, _)| what.starts_with("masked sums"))
            .map(|(_, n)| *n);
        // Label sums, one root per tree and one per split.
        assert!(masked.unwrap_or(0) > 30, "{:?}", seen.shared);
        let entries = store.audit_entries(100_000).unwrap();
        assert!(entries
            .iter()
            .filter(|e| e.subject == report.session)
            .all(|e| e.actor == "federation:coordinator"));
    }
}

/// Nodes serving HTTPS train with a coordinator that trusts their authority (the same trees on
/// every node); a coordinator that trusts another authority, or speaks plain HTTP to them, is
/// refused before any round, naming the node; a nodes file naming no authority for an https://
/// node, or an authority that is no certificate, is refused naming the file, node and field.
#[test]
fn nodes_serving_tls_train_and_a_coordinator_trusting_another_authority_is_refused() {
    let nodes = Nodes::start_serving(true);
    let mut request = request("over-tls", OnFault::Abort);
    request.gbdt.n_trees = 5;
    let report = federate(nodes.file(), &request, &Silent).unwrap();
    assert_eq!(report.n_trees, 5);
    assert!(report.same_trees, "{report:?}");
    assert!(report.nodes.iter().all(|n| n.saved.is_some()), "{report:?}");
    for i in 0..3 {
        assert!(nodes
            .store(i)
            .load_model("over-tls", None)
            .unwrap()
            .is_some());
    }

    // Another authority: the handshake fails, nothing runs.
    let mut file = nodes.file();
    file.nodes[1].ca = Some(tls_fixture("other-ca.pem"));
    let error = federate(file, &request, &Silent).unwrap_err().to_string();
    println!("trusting another authority: {error}");
    assert!(
        error.contains("node-b") && error.contains("certificate"),
        "{error}"
    );
    // Plain HTTP to a TLS node: no answer either.
    let mut file = nodes.file();
    file.nodes[2].url = file.nodes[2].url.replace("https://", "http://");
    file.nodes[2].ca = None;
    let error = federate(file, &request, &Silent).unwrap_err().to_string();
    println!("plain HTTP to a TLS node: {error}");
    assert!(
        error.contains("node-c") && error.contains("http://127.0.0.1"),
        "{error}"
    );
    // Built in code, an https:// node without its authority is refused too (no system roots).
    let mut file = nodes.file();
    file.nodes[0].ca = None;
    let error = HttpNodes::new(file, Duration::from_secs(5)).err().unwrap();
    assert!(
        error.contains("node-a") && error.contains("needs a ca"),
        "{error}"
    );

    // Nodes files: the authority is required for https:// and must be a certificate.
    let dir = tempfile::tempdir().unwrap();
    let write = |body: &str| {
        let path = dir.path().join("nodes.toml");
        std::fs::write(&path, body).unwrap();
        NodesFile::read(&path)
    };
    let entry = |name: &str, url: &str, ca: Option<&str>| {
        let ca = ca.map(|c| format!("ca = {c:?}\n")).unwrap_or_default();
        format!("[[node]]\nname = {name:?}\nurl = {url:?}\ntoken = \"t\"\nnode_token = \"n\"\n{ca}")
    };
    let ok = entry("a", "http://127.0.0.1:1", None);
    let error = write(&format!("{ok}{}", entry("b", "https://127.0.0.1:2", None))).unwrap_err();
    assert!(
        error.contains("node 2 (\"b\")") && error.contains("field ca"),
        "{error}"
    );
    std::fs::write(dir.path().join("not-a-cert.pem"), "hello").unwrap();
    let bad = entry("b", "https://127.0.0.1:2", Some("not-a-cert.pem"));
    let error = write(&format!("{ok}{bad}")).unwrap_err();
    assert!(
        error.contains("field ca") && error.contains("not-a-cert.pem"),
        "{error}"
    );
    let plain = entry("b", "http://127.0.0.1:2", Some("ca.pem"));
    let error = write(&format!("{ok}{plain}")).unwrap_err();
    assert!(error.contains("use https://"), "{error}");
    // A relative authority is read beside the nodes file.
    std::fs::copy(tls_fixture("ca.pem"), dir.path().join("ca.pem")).unwrap();
    let good = entry("b", "https://127.0.0.1:2", Some("ca.pem"));
    let file = write(&format!("{ok}{good}")).unwrap();
    assert_eq!(
        file.nodes[1].ca.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    // A node's key that does not serve its certificate is refused naming both files.
    let error = NodeTls::read(&tls_fixture("other-ca.pem"), &tls_fixture("node.key")).unwrap_err();
    assert!(
        error.contains("other-ca.pem") && error.contains("node.key"),
        "{error}"
    );
}

/// Counts trees and runs `at_tree` once, when the `n`th tree is applied.
struct AtTree {
    n: u64,
    action: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Progress for AtTree {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, done: u64) {
        if done == self.n {
            if let Some(action) = self.action.lock().unwrap().take() {
                action();
            }
        }
    }
    fn finish(&self) {}
    fn interrupted(&self) -> bool {
        false
    }
}

/// A wrong token on either side stops training before any round, naming the node; a node
/// killed mid-training aborts it (nothing saved, every node's session ended in its audit log)
/// or, when told to drop, training goes on with the two others, who save the model.
#[test]
fn tokens_are_mutual_and_a_node_killed_mid_training_aborts_or_is_dropped() {
    let nodes = Nodes::start();

    // The coordinator presents a token node-b does not know.
    let mut file = nodes.file();
    file.nodes[1].token = "not-the-partner-token".into();
    let err = federate(file, &request("wrong-token", OnFault::Abort), &Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("node-b") && err.contains("401"), "{err}");
    // A node that does not answer with the token the coordinator expects is not believed.
    let mut file = nodes.file();
    file.nodes[2].node_token = "an-impostor-would-not-know".into();
    let err = federate(file, &request("impostor", OnFault::Abort), &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("node-c") && err.contains("does not bear the node's token"),
        "{err}"
    );
    for (i, name) in NAMES.iter().enumerate() {
        let models = nodes.store(i).list_models().unwrap();
        assert!(models.is_empty(), "{name}: {models:?}");
    }

    // node-b dies after tree 3, with Drop: the two others finish and save the model.
    let shared = Arc::new(Mutex::new(nodes));
    let to_kill = Arc::clone(&shared);
    let kill_b = AtTree {
        n: 3,
        action: Mutex::new(Some(Box::new(move || to_kill.lock().unwrap().kill(1)))),
    };
    let file = shared.lock().unwrap().file();
    let report = federate(file, &request("dropped", OnFault::Drop), &kill_b).unwrap();
    drop(kill_b);
    let nodes = Arc::into_inner(shared).unwrap().into_inner().unwrap();
    assert_eq!(report.n_trees, 30);
    let b = &report.nodes[1];
    assert!(b.saved.is_none(), "{report:?}");
    assert!(
        b.problem.as_deref().unwrap().contains("dropped"),
        "{report:?}"
    );
    assert!(report.nodes[0].saved.is_some() && report.nodes[2].saved.is_some());
    assert!(report.same_trees);
    for i in [0, 2] {
        let store = nodes.store(i);
        let stored = store.load_model("dropped", None).unwrap().unwrap();
        let meta: serde_json::Value = serde_json::from_str(&stored.metadata_json).unwrap();
        assert_eq!(meta["federated"]["parties"], serde_json::json!([0, 2]));
        let dropped = meta["federated"]["dropped"].to_string();
        assert!(dropped.contains("party 1"), "{dropped}");
    }
    // node-b's store kept no model, and its audit log says its session opened and stopped
    // at tree 3.
    let b_store = nodes.store(1);
    assert!(b_store.load_model("dropped", None).unwrap().is_none());
    let log = session_log(&b_store, &report.session);
    assert_eq!(log[0].0, "federation_open");
    assert!(log
        .iter()
        .any(|(a, d)| a == "federation_rounds" && d["stage"] == "tree 2"));

    // A dead node cannot open a session: training does not start.
    let err = federate(
        nodes.file(),
        &request("not-opened", OnFault::Abort),
        &Silent,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("node-b") && err.contains("did not open"),
        "{err}"
    );

    // With Abort, a node dying mid-training stops it: nothing saved, the other's session
    // ended in its audit log with the reason.
    let mut file = nodes.file();
    file.nodes.remove(1);
    let shared = Arc::new(Mutex::new(nodes));
    let to_kill = Arc::clone(&shared);
    let kill_c = AtTree {
        n: 2,
        action: Mutex::new(Some(Box::new(move || to_kill.lock().unwrap().kill(2)))),
    };
    let err = federate(file, &request("aborted", OnFault::Abort), &kill_c)
        .unwrap_err()
        .to_string();
    drop(kill_c);
    let nodes = Arc::into_inner(shared).unwrap().into_inner().unwrap();
    assert!(
        err.contains("party 1") && err.contains("no answer"),
        "{err}"
    );
    for i in [0, 2] {
        assert!(nodes
            .store(i)
            .load_model("aborted", None)
            .unwrap()
            .is_none());
    }
    let entries = nodes.store(0).audit_entries(5).unwrap();
    let abort = entries
        .iter()
        .find(|e| e.action == "federation_abort")
        .expect("node-a's session ended");
    assert!(
        abort.detail_json.contains("no answer"),
        "{}",
        abort.detail_json
    );
    assert!(
        abort.detail_json.contains("\"trees\":2"),
        "{}",
        abort.detail_json
    );
}

/// Dies (panics) when the `n`th tree is applied, as a coordinator process killed then would.
struct DiesAt(u64);

impl Progress for DiesAt {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, done: u64) {
        if done == self.0 {
            panic!("the coordinator dies after tree {done}");
        }
    }
    fn finish(&self) {}
    fn interrupted(&self) -> bool {
        false
    }
}

/// A coordinator that dies mid-training leaves no model on any node; restarted, its new
/// session replaces the dead one on every node (audited, with the trees the dead one had
/// applied), trains and saves; the nodes hold the new model only.
#[test]
fn a_coordinator_dying_mid_training_leaves_no_model_and_a_restart_trains_cleanly() {
    let nodes = Nodes::start();
    let died = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let links = HttpNodes::new(nodes.file(), Duration::from_secs(60)).unwrap();
                app::federate_train(links, &request("first", OnFault::Abort), &DiesAt(3))
            })
            .join()
    });
    assert!(died.is_err(), "the coordinator died");
    for i in 0..3 {
        assert!(nodes.store(i).list_models().unwrap().is_empty());
    }
    let report = federate(nodes.file(), &request("second", OnFault::Abort), &Silent).unwrap();
    assert!(report.same_trees && report.nodes.iter().all(|n| n.saved.is_some()));
    for (i, name) in NAMES.iter().enumerate() {
        let store = nodes.store(i);
        let sessions = app::federation_sessions(&store, 100_000).unwrap();
        assert_eq!(sessions.len(), 2, "{name}");
        assert_eq!(sessions[0].session, report.session);
        assert_eq!(sessions[0].outcome, "finished");
        assert_eq!(sessions[1].outcome, "replaced", "{name}: {:?}", sessions[1]);
        assert_eq!(sessions[1].trees, 3, "{name}");
        let models: Vec<String> = store
            .list_models()
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(models, ["second"], "{name}");
    }
}

/// A node with a rule on differential privacy refuses a session asking for no noise (naming
/// its rule) before it sends any sum; with noise, every node saves the same noisy trees, and
/// each records the ε it spent, at its own δ, in its audit log and its model's metadata, which
/// the manager's budget adds up.
#[test]
fn a_node_with_a_privacy_rule_refuses_exact_sums_and_every_node_records_the_privacy_spent() {
    let policy = PrivacyPolicy {
        min_noise_multiplier: 0.5,
        delta: 1e-5,
        max_epsilon: None,
    };
    let nodes = Nodes::start_with(false, &[Some(policy), None, None]);
    let mut exact = request("exact", OnFault::Abort);
    exact.gbdt.n_trees = 5;
    let error = federate(nodes.file(), &exact, &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("party 0")
            && error.contains("noise of multiplier 0.5 at least; the coordinator asked for none"),
        "{error}"
    );

    let mut noisy = exact.clone();
    noisy.model = "noisy".into();
    noisy.privacy = Some(Privacy {
        noise_multiplier: 1.0,
        delta: 1e-6,
    });
    let report = federate(nodes.file(), &noisy, &Silent).unwrap();
    assert!(report.same_trees, "{report:?}");
    assert!(report.nodes.iter().all(|n| n.saved.is_some()), "{report:?}");
    let spent = report.privacy.clone().expect("privacy reported");
    assert_eq!(spent.noise_multiplier, 1.0);
    // The label sums, a root per tree and the split rounds: every round but the six of setup
    // and the five applies.
    assert_eq!(spent.releases, report.rounds - 6 - 5, "{spent:?}");
    assert!((spent.rho - spent.releases as f64 / 2.0).abs() < 1e-9);
    assert!((spent.epsilon - dp::epsilon(spent.rho, 1e-6)).abs() < 1e-9);

    for (i, name) in NAMES.iter().enumerate() {
        let store = nodes.store(i);
        // At the node's own δ: its rule's, else the default.
        let delta = if i == 0 { 1e-5 } else { app::DEFAULT_DELTA };
        let log = session_log(&store, &report.session);
        let (action, end) = log.last().unwrap();
        assert_eq!(action, "federation_finish", "{name}");
        let recorded: app::SessionPrivacy = serde_json::from_value(end["privacy"].clone()).unwrap();
        assert_eq!(recorded.releases, spent.releases, "{name}");
        assert_eq!(recorded.delta, delta, "{name}");
        assert!((recorded.epsilon - dp::epsilon(spent.rho, delta)).abs() < 1e-9);
        // Written with each tree as it is spent, not only at the end.
        assert!(
            log.iter()
                .filter(|(a, d)| a == "federation_rounds" && d["stage"] == "tree 1")
                .any(|(_, d)| d["privacy"]["releases"]
                    .as_u64()
                    .is_some_and(|r| r > 2 && r < spent.releases)),
            "{name}: {log:?}"
        );
        let stored = store.load_model("noisy", None).unwrap().unwrap();
        let metadata: serde_json::Value = serde_json::from_str(&stored.metadata_json).unwrap();
        assert_eq!(
            metadata["federated"]["privacy"]["releases"].as_u64(),
            Some(spent.releases),
            "{name}"
        );

        // The manager's view: the refused session sent nothing; the noisy one is the budget.
        let sessions = app::federation_sessions(&store, 100_000).unwrap();
        assert_eq!(sessions.len(), 2, "{name}");
        assert_eq!(sessions[0].privacy.as_ref(), Some(&recorded), "{name}");
        assert!(
            sessions[1].privacy.is_none() && !sessions[1].sent_sums(),
            "{name}"
        );
        let budget = app::privacy_budget(&sessions);
        assert_eq!(
            (budget.noisy_sessions, budget.exact_sessions),
            (1, 0),
            "{name}"
        );
        assert!((budget.epsilon - recorded.epsilon).abs() < 1e-9, "{name}");
    }
}

/// Pooled statistics by concealment method over HTTP: the findings per method the nodes' sums
/// give are those of every node's own control results (`controls pooled --by concealment`)
/// added up; a method only one node found is not counted (its sum would be that node's), and
/// the shares' denominator is the findings counted, so that it cannot be recovered either.
#[test]
fn pooled_statistics_by_concealment_add_up_the_nodes_own_findings() {
    let nodes = Nodes::start();
    let until = NaiveDate::from_ymd_opt(2021, 3, 31).unwrap();
    // Control results naming a method on a few of each node's findings: false compartments at
    // every node, body concealment at node-c only.
    for (i, methods) in [
        &["false_compartment", "false_compartment"][..],
        &["false_compartment"],
        &["false_compartment", "body", "body"],
    ]
    .into_iter()
    .enumerate()
    {
        let mut store = nodes.store(i);
        let items = store
            .items(&ItemFilter {
                from: None,
                to: Some(until),
                labelled_only: true,
            })
            .unwrap();
        let mut found: Vec<&str> = items
            .iter()
            .filter(|d| d.label.is_some_and(|l| l.fraud))
            .map(|d| d.key.declaration_id.as_str())
            .collect();
        found.dedup();
        for (j, (method, id)) in methods.iter().zip(found).enumerate() {
            let submission = serde_json::json!({
                "declaration_id": id, "schema_version": "1.0.0",
                "submission_id": format!("test-{i}-{j}"),
                "values": {
                    "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
                    "drug_form": "powder", "concealment_method": method, "quantity": 1.0,
                    "quantity_unit": "kg", "inspection_method": ["physical_full"],
                    "inspected_at": "2021-03-01T10:00:00Z", "place": "Terminal 1",
                    "officer_id": "O1"
                }
            });
            app::record_control_result(&mut store, &submission.to_string(), "test").unwrap();
        }
    }
    // Each node's own view, added up.
    let mut findings = 0;
    let mut by_method: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for i in 0..3 {
        let own = app::pooled_statistics(&nodes.store(i), "concealment", 0.95).unwrap();
        findings += own.sources[0].total.controls;
        for s in &own.segments {
            let entry = by_method.entry(s.segment.clone()).or_default();
            entry.0 += s.counts[0].hits;
            entry.1 += 1;
        }
    }
    assert!(findings > 100, "{findings}");
    assert_eq!(by_method["false_compartment"], (4, 3));
    assert_eq!(by_method["body"], (2, 1));

    let file = nodes.file();
    let report = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let links = HttpNodes::new(file, Duration::from_secs(60)).unwrap();
                app::federate_stats(links, "concealment", until, 0.95)
            })
            .join()
            .unwrap()
    })
    .unwrap();
    assert_eq!(report.measure, "share of findings");
    let got: Vec<(String, usize, usize)> = report
        .segments
        .iter()
        .map(|s| (s.segment.clone(), s.pooled.inspected, s.pooled.hits))
        .collect();
    let counted: usize = by_method
        .values()
        .filter(|(_, holders)| *holders >= 2)
        .map(|(hits, _)| hits)
        .sum();
    assert_eq!(counted, findings - 2, "all but node-c's body concealments");
    let mut expected: Vec<(String, usize, usize)> = by_method
        .iter()
        .filter(|(_, (_, holders))| *holders >= 2)
        .map(|(method, (hits, _))| (method.clone(), counted, *hits))
        .collect();
    expected.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    let mut got_sorted = got.clone();
    got_sorted.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    assert_eq!(got_sorted, expected, "{report:?}");
    assert!(got.iter().any(|(m, _, _)| m == "not recorded"));
    assert!(
        !got.iter().any(|(m, _, _)| m == "body"),
        "one node's own count"
    );
    assert!(report.elsewhere.is_none());
}
