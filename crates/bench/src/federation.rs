//! `borderlens bench federation`: federated training over HTTP against pooled training of the
//! same trees, timed in the same run (issue 17 asks federated ≤ 2× pooled).
//!
//! The 2020 declarations of `--data` are split by customs office between three nodes (office
//! 40, office 20, every other office, as `scripts/federation-split.sh` does), each imported into
//! its own SQLite store and served by a `borderlens node serve` child process on loopback. The
//! federated time is `borderlens federate train`'s own figure (sessions opened, features agreed,
//! every tree grown over masked histograms, the model saved on every node), best of
//! `--repeat`. The pooled time is training the same trees in this process on the union of the
//! nodes' rows: with the features (the pipeline fitted on all items, every node's rows
//! described from its own history, then boosting), and boosting alone; both ratios are
//! reported. The trees are checked equal.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use borderlens_app::Progress;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::data::Dataset;
use borderlens_risk::features::FeaturePipeline;
use borderlens_risk::gbdt::{Booster, GbdtConfig};
use borderlens_risk::model::RiskModel;
use borderlens_store::{Items, Registry, Store};

use crate::{outln, BenchOptions};

const NODES: [(&str, &str); 3] = [("node-a", "40"), ("node-b", "20"), ("node-c", "")];
const TOKEN: &str = "bench-federation-coordinator-token";

/// A `borderlens node serve` child process.
struct Node {
    child: Child,
    url: String,
}

impl Node {
    fn start(exe: &Path, db: &Path, partners: &Path, log: &Path) -> anyhow::Result<Node> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let mut child = Command::new(exe)
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
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .context("cannot start borderlens node serve")?;
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line);
        let url = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v["listening"].as_str().map(str::to_string));
        match (read, url) {
            (Ok(_), Some(url)) => Ok(Node { child, url }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "borderlens node serve did not print its address: {}",
                    std::fs::read_to_string(log).unwrap_or_default().trim()
                )
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the lines of `csv` into one file per node, by the office column (the third).
fn split(csv: &Path, work: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let text =
        std::fs::read_to_string(csv).with_context(|| format!("cannot read {}", csv.display()))?;
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    if header.split(',').nth(2) != Some("Office ID") {
        bail!(
            "{}: line 1: the third column is not \"Office ID\"",
            csv.display()
        );
    }
    let mut parts: Vec<String> = vec![format!("{header}\n"); NODES.len()];
    for line in lines {
        let office = line.split(',').nth(2).unwrap_or_default();
        let at = NODES
            .iter()
            .position(|(_, o)| *o == office)
            .unwrap_or(NODES.len() - 1);
        parts[at].push_str(line);
        parts[at].push('\n');
    }
    let mut paths = Vec::new();
    for ((name, _), part) in NODES.iter().zip(parts) {
        let path = work.join(format!("{name}.csv"));
        std::fs::write(&path, part).with_context(|| format!("cannot write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

/// Runs the benchmark.
pub fn federation(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    if a.leaves != GbdtConfig::standard().num_leaves {
        // `federate train` trains with the standard leaves; say so rather than compare unlike.
        bail!("bench federation trains with the standard 31 leaves: leave --leaves out");
    }
    let exe = std::env::current_exe().context("cannot find the borderlens executable")?;
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-federation"));
    if work.exists() {
        std::fs::remove_dir_all(&work)
            .with_context(|| format!("cannot clear {}", work.display()))?;
    }
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let csvs = split(&a.data.join("df_syn_train_eng.csv"), &work)?;
    let mut stores = Vec::new();
    let mut nodes_toml = String::new();
    let mut running = Vec::new();
    bars.start(
        "importing the nodes' declarations",
        Some(NODES.len() as u64),
    );
    for (i, ((name, _), csv)) in NODES.iter().zip(&csvs).enumerate() {
        let db = work.join(format!("{name}.db"));
        let mut store = Store::open(&db)?;
        borderlens_app::import_files(
            &mut store,
            std::slice::from_ref(csv),
            &ColumnMapping::kcs_default(),
            true,
            &borderlens_app::Silent,
        )?;
        drop(store);
        let node_token = format!("{name}-answers-{TOKEN}");
        let partners = work.join(format!("{name}-partners.toml"));
        std::fs::write(
            &partners,
            format!(
                "[[partner]]\nname = \"bench\"\ntoken_sha256 = \"{}\"\nnode_token = \"{node_token}\"\n",
                borderlens_nii::library::sha256_hex(TOKEN.as_bytes())
            ),
        )?;
        let node = Node::start(&exe, &db, &partners, &work.join(format!("{name}.log")))?;
        nodes_toml.push_str(&format!(
            "[[node]]\nname = \"{name}\"\nurl = \"{}\"\ntoken = \"{TOKEN}\"\nnode_token = \"{node_token}\"\n\n",
            node.url
        ));
        running.push(node);
        stores.push(db);
        bars.advance(i as u64 + 1);
    }
    bars.finish();
    let nodes_file = work.join("nodes.toml");
    std::fs::write(&nodes_file, &nodes_toml)?;

    let mut gbdt = GbdtConfig::standard();
    gbdt.n_trees = a.trees;
    gbdt.num_leaves = a.leaves;
    let until = "2020-12-31";
    let repeat = a.repeat.max(1);
    // Federated and pooled runs alternate, so that each pair meets the same load on this
    // shared machine: the ratio of each pair is reported beside the best times of each.
    let federate = || -> anyhow::Result<(f64, u64)> {
        let out = Command::new(&exe)
            .args(["--json", "federate", "train", "--nodes"])
            .arg(&nodes_file)
            .args(["--until", until, "--model", "bench", "--trees"])
            .arg(a.trees.to_string())
            .args(["--learning-rate", &gbdt.learning_rate.to_string()])
            .output()
            .context("cannot run borderlens federate train")?;
        if !out.status.success() {
            bail!(
                "borderlens federate train failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok((
            report["seconds"].as_f64().unwrap_or(f64::INFINITY),
            report["rounds"].as_u64().unwrap_or_default(),
        ))
    };
    // Pooled: the same rows in one process, described as the nodes describe theirs.
    let mut node_items = Vec::new();
    for db in &stores {
        let store = Store::open(db)?;
        node_items.push(store.items(&borderlens_store::ItemFilter {
            from: None,
            to: Some(chrono::NaiveDate::parse_from_str(until, "%Y-%m-%d")?),
            labelled_only: false,
        })?);
    }
    let features = |label| -> Dataset {
        let all: Vec<_> = node_items.iter().flatten().cloned().collect();
        let pipeline = FeaturePipeline::fit(&all);
        let mut pooled: Option<Dataset> = None;
        for items in &node_items {
            let wanted: Vec<bool> = items.iter().map(|d| d.label.is_some()).collect();
            let (data, _) = pipeline.transform(items, &wanted, label);
            match &mut pooled {
                None => pooled = Some(data),
                Some(p) => {
                    for r in 0..data.n_rows() {
                        p.push_row(&data.row(r), data.labels[r], data.weights[r]);
                    }
                }
            }
        }
        pooled.expect("three nodes")
    };
    bars.start(
        "federated and pooled training, alternately",
        Some(repeat as u64),
    );
    let (mut federated, mut rounds) = (f64::INFINITY, 0);
    let mut pooled_all = f64::INFINITY;
    let mut pooled_boost = f64::INFINITY;
    let mut ratios: Vec<(f64, f64)> = Vec::new();
    let mut reference = None;
    let mut saved: Option<RiskModel> = None;
    let mut n_rows = 0;
    for r in 0..repeat {
        let (seconds, n_rounds) = federate()?;
        federated = federated.min(seconds);
        rounds = n_rounds;
        if saved.is_none() {
            let stored = Store::open(&stores[0])?
                .load_model("bench", None)?
                .context("node-a saved no model")?;
            saved = Some(RiskModel::from_bytes(&stored.bytes)?);
        }
        let label = saved.as_ref().context("no node")?.options.label;
        let t = Instant::now();
        let data = features(label);
        let t_boost = Instant::now();
        let booster = Booster::train(&data, &gbdt, None, &mut |_, _| true);
        let boost = t_boost.elapsed().as_secs_f64();
        let all = t.elapsed().as_secs_f64();
        pooled_boost = pooled_boost.min(boost);
        pooled_all = pooled_all.min(all);
        ratios.push((seconds / all, seconds / boost));
        n_rows = data.n_rows();
        reference = Some(booster);
        bars.advance(r as u64 + 1);
    }
    drop(running);
    let saved = saved.context("no node")?;
    bars.finish();
    let same_trees = reference.as_ref() == Some(&saved.booster);
    let result = serde_json::json!({
        "rows": n_rows,
        "nodes": NODES.len(),
        "trees": a.trees,
        "rounds": rounds,
        "repeat": repeat,
        "federated_seconds": federated,
        "pooled_seconds_with_features": pooled_all,
        "pooled_seconds_boosting": pooled_boost,
        "ratio_to_pooled_with_features": federated / pooled_all,
        "ratio_to_pooled_boosting": federated / pooled_boost,
        "pair_ratios_with_features": ratios.iter().map(|r| r.0).collect::<Vec<_>>(),
        "pair_ratios_boosting": ratios.iter().map(|r| r.1).collect::<Vec<_>>(),
        "same_trees": same_trees,
        "work": work.display().to_string(),
        "note": "the three nodes, the coordinator and the pooled run share this machine's cores; best of repeat each; runs alternate, a federated run then a pooled one, and each pair's ratio is given",
    });
    if json {
        outln!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        outln!(
            "{n_rows} labelled declarations of 2020 on {} nodes (by customs office), {} trees, {rounds} rounds, best of {repeat}:",
            NODES.len(),
            a.trees
        );
        outln!("  federated over HTTP (3 node processes on loopback): {federated:.2} s");
        outln!(
            "  pooled in one process: {pooled_all:.2} s with features, {pooled_boost:.2} s boosting alone"
        );
        outln!(
            "  ratio: {:.2}x (to pooled with features), {:.2}x (to boosting alone); the same trees: {same_trees}",
            federated / pooled_all,
            federated / pooled_boost
        );
        let pairs: Vec<String> = ratios
            .iter()
            .map(|(all, boost)| format!("{all:.2}x ({boost:.2}x)"))
            .collect();
        outln!(
            "  each pair, a federated run then a pooled one: {}",
            pairs.join(", ")
        );
    }
    if !same_trees {
        bail!("the federated trees differ from the pooled trees");
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
