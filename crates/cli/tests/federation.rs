//! `borderlens node …` and `borderlens federate …`, black box: three `node serve` processes on
//! loopback over stores holding the sample's 2021-Q1 split by office (the split script), one
//! `federate train` with every node pinning the others' public keys (one node serving HTTPS),
//! and the model each node saved used by `evaluate`; bad partners and nodes files are refused naming the file, the
//! entry and the field.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

fn borderlens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_borderlens"))
        .args(args)
        .output()
        .unwrap()
}

/// `borderlens [EXTRA...] federate train --nodes NODES --until UNTIL --model MODEL` (the
/// global `--json` goes before the subcommand, the others after).
fn federate(nodes: &Path, until: &str, model: &str, extra: &[&str]) -> Output {
    let (global, after): (Vec<&str>, Vec<&str>) = extra.iter().partition(|a| **a == "--json");
    let mut args = global;
    args.extend(["federate", "train", "--nodes", nodes.to_str().unwrap()]);
    args.extend(["--until", until, "--model", model]);
    args.extend(after);
    borderlens(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A `node serve` child, stopped (SIGTERM) when dropped: the process, its URL and the line it
/// said when it started listening.
struct Node(Child, String, Value);

/// The TLS fixtures of the server's tests (`scripts/make-test-certs.sh`).
fn tls_fixture(name: &str) -> PathBuf {
    Path::new(ROOT)
        .join("crates/server/tests/fixtures/tls")
        .join(name)
}

impl Node {
    /// Serves over `db`; with `tls`, HTTPS with the test authority's node certificate.
    fn start(db: &Path, partners: &Path, key: &Path, tls: bool) -> Node {
        let mut command = Command::new(env!("CARGO_BIN_EXE_borderlens"));
        command
            .arg("--db")
            .arg(db)
            .args([
                "--json",
                "node",
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--partners",
            ])
            .arg(partners)
            .arg("--key")
            .arg(key);
        if tls {
            command
                .arg("--tls-cert")
                .arg(tls_fixture("node.pem"))
                .arg("--tls-key")
                .arg(tls_fixture("node.key"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        Node(child, v["listening"].as_str().unwrap().to_string(), v)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn three_node_processes_train_one_model_that_each_node_uses() {
    let dir = TempDir::new().unwrap();
    let split = dir.path().join("split");
    let status = Command::new("bash")
        .arg(Path::new(ROOT).join("scripts/federation-split.sh"))
        .arg(&split)
        .arg(Path::new(ROOT).join("data/sample/df_syn_valid_eng.csv"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let token = borderlens(&["--json", "node", "token"]);
    assert!(token.status.success(), "{}", text(&token.stderr));
    let token: Value = serde_json::from_slice(&token.stdout).unwrap();
    let (secret, sha) = (
        token["token"].as_str().unwrap(),
        token["token_sha256"].as_str().unwrap(),
    );
    assert_eq!(secret.len(), 64);
    // Each node's long-term key; every node pins the two others'.
    let names = ["node-a", "node-b", "node-c"];
    let public: Vec<String> = names
        .iter()
        .map(|name| {
            let key = dir.path().join(format!("{name}.key"));
            let out = borderlens(&["--json", "node", "key", "--key", key.to_str().unwrap()]);
            assert!(out.status.success(), "{}", text(&out.stderr));
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            // Asked again, the same key.
            let again = borderlens(&["--json", "node", "key", "--key", key.to_str().unwrap()]);
            assert_eq!(again.stdout, out.stdout);
            v["public_key"].as_str().unwrap().to_string()
        })
        .collect();
    let mut nodes = Vec::new();
    let mut nodes_toml = String::new();
    let mut dbs = Vec::new();
    let mut addresses = Vec::new();
    for (i, name) in names.into_iter().enumerate() {
        let db = dir.path().join(format!("{name}.db"));
        let csv = split.join(name).join("df_syn_valid_eng.csv");
        let out = borderlens(&[
            "--db",
            db.to_str().unwrap(),
            "import",
            csv.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let answer = format!("{name}-answers-with-this");
        let mut partners_toml = format!(
            "[[partner]]\nname = \"hq\"\ntoken_sha256 = \"{sha}\"\nnode_token = \"{answer}\"\n"
        );
        for (j, peer) in names.iter().enumerate().filter(|(j, _)| *j != i) {
            partners_toml.push_str(&format!(
                "\n[[peer]]\nname = \"{peer}\"\npublic_key = \"{}\"\n",
                public[j]
            ));
        }
        let partners = write(dir.path(), &format!("{name}.toml"), &partners_toml);
        // node-b serves HTTPS: the coordinator trusts the test authority for it alone.
        let tls = name == "node-b";
        let node = Node::start(&db, &partners, &dir.path().join(format!("{name}.key")), tls);
        assert_eq!(node.1.starts_with("https://"), tls, "{}", node.1);
        addresses.push(node.1.clone());
        let ca = match tls {
            true => format!("ca = {:?}\n", tls_fixture("ca.pem").to_str().unwrap()),
            false => String::new(),
        };
        nodes_toml.push_str(&format!(
            "[[node]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"{secret}\"\nnode_token = \"{answer}\"\n{ca}\n",
            node.1
        ));
        nodes.push(node);
        dbs.push(db);
    }
    let nodes_file = write(dir.path(), "nodes.toml", &nodes_toml);
    let out = federate(
        &nodes_file,
        "2021-02-28",
        "together",
        &["--json", "--trees", "5"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["n_trees"], 5);
    assert_eq!(report["same_trees"], true);
    assert!(report["privacy"].is_null(), "exact sums: {report}");
    // With differential privacy: every node adds noise and the ε spent is reported.
    let out = federate(
        &nodes_file,
        "2021-02-28",
        "private",
        &[
            "--trees",
            "3",
            "--num-leaves",
            "4",
            "--max-bin",
            "8",
            "--dp-noise",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("differential privacy: noise multiplier 5,") && said.contains("epsilon "),
        "{said}"
    );
    assert!(
        said.contains("every node that saved the model holds the same trees"),
        "{said}"
    );
    // Pooled statistics by origin under secure aggregation: the sums of the three nodes'
    // controlled declarations, segment by segment, counted here from their files.
    let mut by_origin: std::collections::BTreeMap<String, (u64, u64, usize)> = Default::default();
    for name in names {
        let csv = std::fs::read_to_string(split.join(name).join("df_syn_valid_eng.csv")).unwrap();
        let mut declarations: std::collections::BTreeMap<String, (String, bool)> =
            Default::default();
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let entry = declarations
                .entry(f[0].to_string())
                .or_insert((f[14].to_string(), false));
            entry.1 |= f[20] == "1";
        }
        let mut seen = std::collections::BTreeSet::new();
        for (origin, hit) in declarations.into_values() {
            let entry = by_origin.entry(origin.clone()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(hit);
            if seen.insert(origin) {
                entry.2 += 1;
            }
        }
    }
    let chart = dir.path().join("pooled.svg");
    let out = borderlens(&[
        "--json",
        "federate",
        "stats",
        "--nodes",
        nodes_file.to_str().unwrap(),
        "--by",
        "origin",
        "--until",
        "2021-03-31",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["nodes"], serde_json::json!(names));
    let segments = stats["segments"].as_array().unwrap();
    let shared: Vec<_> = by_origin.iter().filter(|(_, (_, _, n))| *n >= 2).collect();
    assert_eq!(segments.len(), shared.len(), "{stats}");
    for (origin, (n, hits, _)) in shared {
        let s = segments
            .iter()
            .find(|s| s["segment"] == origin.as_str())
            .unwrap_or_else(|| panic!("{origin} missing: {stats}"));
        assert_eq!(s["pooled"]["inspected"], *n, "{origin}");
        assert_eq!(s["pooled"]["hits"], *hits, "{origin}");
    }
    let alone: u64 = by_origin
        .values()
        .filter(|(_, _, n)| *n < 2)
        .map(|(c, _, _)| c)
        .sum();
    // Counted together when two nodes or more hold origins of their own, else not at all.
    if !stats["elsewhere"].is_null() {
        assert_eq!(stats["elsewhere"]["pooled"]["inspected"], alone);
    }
    assert!(std::fs::read_to_string(&chart).unwrap().starts_with("<svg"));
    let out = borderlens(&[
        "federate",
        "stats",
        "--nodes",
        nodes_file.to_str().unwrap(),
        "--by",
        "importer",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("unknown dimension 'importer'"),
        "{}",
        text(&out.stderr)
    );
    // node-c restarted pinning another key for node-a (as if a coordinator had substituted
    // node-a's): it refuses the session's keys, training stops naming it, nothing is saved.
    let c_partners = dir.path().join("node-c.toml");
    let pinned = std::fs::read_to_string(&c_partners).unwrap();
    let wrong = pinned.replace(&public[0], &public[2]);
    assert_ne!(pinned, wrong);
    std::fs::write(&c_partners, wrong).unwrap();
    drop(nodes.pop());
    let restarted = Node::start(&dbs[2], &c_partners, &dir.path().join("node-c.key"), false);
    let nodes_toml = nodes_toml.replace(&addresses[2], &restarted.1);
    let nodes_file = write(dir.path(), "nodes.toml", &nodes_toml);
    let out = federate(&nodes_file, "2021-02-28", "substituted", &["--trees", "5"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("party 2") && err.contains("is not one this party pins"),
        "{err}"
    );
    nodes.push(restarted);
    drop(nodes);
    // Each node scores its own later month with the model it saved.
    for db in &dbs {
        let out = borderlens(&[
            "--db",
            db.to_str().unwrap(),
            "--json",
            "evaluate",
            "--model",
            "together",
            "--from",
            "2021-03-01",
            "--to",
            "2021-03-31",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let e: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(e["roc_auc"].as_f64().unwrap() > 0.6, "{e}");
    }
}

#[test]
fn bad_partners_and_nodes_files_are_refused_naming_file_entry_and_field() {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("n.db");
    let partners = write(
        dir.path(),
        "partners.toml",
        "[[partner]]\nname = \"hq\"\ntoken_sha256 = \"abc\"\nnode_token = \"long enough answer\"\n",
    );
    // A node refused at start-up: exit 2, the reason on stderr.
    let refused = |partners: &Path| {
        let out = borderlens(&[
            "--db",
            db.to_str().unwrap(),
            "node",
            "serve",
            "--partners",
            partners.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(2));
        text(&out.stderr)
    };
    let err = refused(&partners);
    assert!(
        err.contains("partners.toml: partner 1 (\"hq\"): field token_sha256"),
        "{err}"
    );
    let nodes = write(
        dir.path(),
        "nodes.toml",
        "[[node]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\nnode_token = \"n\"\n\n\
         [[node]]\nname = \"b\"\nurl = \"ftp://x\"\ntoken = \"t\"\nnode_token = \"n\"\n",
    );
    let out = federate(&nodes, "2021-01-31", "m", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("nodes.toml: node 2 (\"b\"): field url"),
        "{err}"
    );
    // A node that does not answer: named, nothing trained.
    let nodes = write(
        dir.path(),
        "nodes.toml",
        "[[node]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\nnode_token = \"n\"\n\n\
         [[node]]\nname = \"b\"\nurl = \"http://127.0.0.1:1\"\ntoken = \"t\"\nnode_token = \"n\"\n",
    );
    let out = federate(&nodes, "2021-01-31", "m", &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("node a (party 0) did not open the session"),
        "{err}"
    );
    // TLS: a certificate without its key is a usage error; a key that is not one is named.
    let good = write(
        dir.path(),
        "good-partners.toml",
        &format!(
            "[[partner]]\nname = \"hq\"\ntoken_sha256 = \"{}\"\nnode_token = \"long enough answer\"\n",
            "ab".repeat(32)
        ),
    );
    let cert = tls_fixture("node.pem");
    let serve = |extra: &[&str]| {
        let mut args = vec!["--db", db.to_str().unwrap(), "node", "serve", "--partners"];
        args.push(good.to_str().unwrap());
        args.extend([
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            cert.to_str().unwrap(),
        ]);
        args.extend(extra);
        borderlens(&args)
    };
    let out = serve(&[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--tls-key"),
        "{}",
        text(&out.stderr)
    );
    let out = serve(&["--tls-key", partners.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(
        err.contains("partners.toml: not a PEM private key"),
        "{err}"
    );
    // A privacy rule with a δ that is no probability: named with the file and table.
    let private = write(
        dir.path(),
        "private-partners.toml",
        &format!(
            "[[partner]]\nname = \"hq\"\ntoken_sha256 = \"{}\"\nnode_token = \"long enough \
             answer\"\n\n[privacy]\nmin_noise_multiplier = 2.0\ndelta = 1.5\n",
            "ab".repeat(32)
        ),
    );
    let err = refused(&private);
    assert!(
        err.contains("private-partners.toml: [privacy]: delta 1.5: it must be in (0, 1)"),
        "{err}"
    );
    // A good rule: the node says it when it starts listening.
    let text_of_private = std::fs::read_to_string(&private)
        .unwrap()
        .replace("delta = 1.5", "delta = 1e-5\nmax_epsilon = 8.0");
    let private = write(dir.path(), "private-partners.toml", &text_of_private);
    let node = Node::start(&db, &private, &dir.path().join("n.key"), false);
    assert_eq!(node.2["privacy"]["min_noise_multiplier"], 2.0, "{}", node.2);
    assert_eq!(node.2["privacy"]["max_epsilon"], 8.0, "{}", node.2);
    drop(node);
    // Noise too small to be noise: refused before any node is called.
    let out = federate(&nodes, "2021-01-31", "m", &["--dp-noise", "0.01"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("--dp-noise: noise multiplier 0.01: it must be a number from 0.1 to 10000"),
        "{err}"
    );
}
