//! `borderlens node …` and `borderlens federate …`: a federation node over this store, and the
//! coordinator of federated training. Glue only: the node and the coordinator's client are
//! `borderlens-server`'s, the sessions and the training job `borderlens-app`'s.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_domain::LabelKind;
use borderlens_federation::OnFault;
use borderlens_risk::gbdt::GbdtConfig;
use borderlens_server::federation::{HttpNodes, NodeConfig, NodesFile, Partners};
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::output::outln;
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum NodeCommand {
    /// Serve this store as a federation node: trusted partners (coordinators) open training
    /// sessions; the node answers with summaries and masked sums only, audits every round and
    /// saves the model at the end. Ctrl-C stops it.
    Serve(NodeServeArgs),
    /// Print a new random token and its SHA-256: the token goes into the coordinator's nodes
    /// file, the SHA-256 into this node's partners file.
    Token,
    /// Print this node's public key (what the other nodes pin in their partners files'
    /// `[[peer]]` tables), creating the secret key file when it is missing.
    Key {
        /// The node's secret key file (64 hexadecimal digits; created, readable by its owner
        /// only, when missing).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
    },
}

#[derive(Args)]
pub struct NodeServeArgs {
    /// Address to listen on (port 0: any free port; the address bound is printed).
    #[arg(long, default_value = "127.0.0.1:7301")]
    pub addr: SocketAddr,
    /// Partners file (TOML): `[[partner]]` tables with `name`, `token_sha256` (of the token the
    /// partner presents) and `node_token` (the token this node answers with); optional
    /// `[[peer]]` tables with `name` and `public_key` pin the other nodes' keys.
    #[arg(long, value_name = "FILE")]
    pub partners: PathBuf,
    /// The node's secret key file (`node key` makes one): its sessions use this key, so that
    /// the other nodes can pin it. Without it each session uses a fresh key.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Serve HTTPS with this certificate chain (PEM, the node's certificate first); with
    /// --tls-key. Coordinators then name the node `https://…` with the `ca` that signed it.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// 32 bytes of the operating system's randomness (tokens, keys).
fn random32() -> anyhow::Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| anyhow::anyhow!("the system's random source failed: {e}"))?;
    Ok(bytes)
}

/// The node's secret key from `path`, made (owner-only) when the file is missing.
fn node_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    match std::fs::read_to_string(path) {
        Ok(text) => borderlens_server::federation::decode_key(&text).with_context(|| {
            format!(
                "{}: line 1: not a key (64 hexadecimal digits)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = random32()?;
            let hex = borderlens_domain::hex::encode(&secret);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{hex}").with_context(|| format!("cannot write {}", path.display()))?;
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[derive(Subcommand)]
pub enum FederateCommand {
    /// Train one risk model across the nodes without moving rows: features agreed from
    /// summaries, masked histograms summed per tree node; every node saves the same trees.
    Train(FederateTrainArgs),
    /// Pooled hit rates across the nodes by origin or route (shares of findings by
    /// concealment method), summed under secure aggregation:
    /// the coordinator sees sums only; segments held by one node only are counted together.
    Stats(FederateStatsArgs),
}

#[derive(Args)]
pub struct FederateStatsArgs {
    /// Nodes file (TOML), as for `federate train`.
    #[arg(long, value_name = "FILE")]
    pub nodes: PathBuf,
    /// Split by: origin, route (departure country/transport mode) or concealment (the
    /// methods of the findings: each method's share of the findings).
    #[arg(long, default_value = "origin")]
    pub by: String,
    /// Every node counts its controlled declarations up to this day (default: today).
    #[arg(long)]
    pub until: Option<NaiveDate>,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Write the chart of the pooled hit rates to this SVG file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Seconds a node may take to answer one request.
    #[arg(long, default_value_t = 120)]
    pub timeout_seconds: u64,
}

#[derive(Args)]
pub struct FederateTrainArgs {
    /// Nodes file (TOML): `[[node]]` tables with `name`, `url`, `token` and `node_token`; party
    /// ids follow the order of the file.
    #[arg(long, value_name = "FILE")]
    pub nodes: PathBuf,
    /// Label to learn: fraud or critical.
    #[arg(long, default_value_t = LabelKind::Fraud)]
    pub label: LabelKind,
    /// Every node trains on its labelled declarations up to this day (inclusive).
    #[arg(long)]
    pub until: NaiveDate,
    /// Registry name every node saves the model under.
    #[arg(long)]
    pub model: String,
    /// Number of trees (no early stopping: no validation rows are pooled).
    #[arg(long, default_value_t = GbdtConfig::standard().n_trees)]
    pub trees: usize,
    /// Learning rate.
    #[arg(long, default_value_t = GbdtConfig::standard().learning_rate)]
    pub learning_rate: f64,
    /// Most leaves per tree (small trees take fewer rounds, so fewer noisy releases with
    /// --dp-noise).
    #[arg(long, default_value_t = GbdtConfig::standard().num_leaves)]
    pub num_leaves: usize,
    /// Most bins per feature (fewer bins carry less noise per split with --dp-noise).
    #[arg(long, default_value_t = GbdtConfig::standard().max_bin)]
    pub max_bin: usize,
    /// L2 regularisation of the leaf values (a larger one tames noisy leaves with --dp-noise).
    #[arg(long, default_value_t = GbdtConfig::standard().lambda_l2)]
    pub lambda_l2: f64,
    /// Differential privacy: every node adds Gaussian noise of this multiplier (σ over what
    /// one declaration item can change) to each sum it sends, and accounts the ε it spends. The
    /// trees then differ from pooled training's. None by default: exact sums.
    #[arg(long, value_name = "MULTIPLIER")]
    pub dp_noise: Option<f64>,
    /// The δ at which the ε spent is reported (with --dp-noise).
    #[arg(long, default_value_t = app::DEFAULT_DELTA, requires = "dp_noise")]
    pub dp_delta: f64,
    /// What a node's fault does: abort (stop, nothing saved) or drop (go on without it while
    /// at least two nodes are left).
    #[arg(long, default_value = "abort")]
    pub on_fault: String,
    /// Seconds a node may take to answer one request.
    #[arg(long, default_value_t = 120)]
    pub timeout_seconds: u64,
}

pub fn node(
    db: &Path,
    database_url: Option<&str>,
    command: &NodeCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let a = match command {
        NodeCommand::Token => {
            let token = borderlens_domain::hex::encode(&random32()?);
            let sha = borderlens_server::federation::token_sha256(&token);
            if json {
                outln!(
                    "{}",
                    serde_json::json!({ "token": token, "token_sha256": sha })
                );
            } else {
                outln!("token:        {token}");
                outln!("token_sha256: {sha}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        NodeCommand::Key { key } => {
            let public = borderlens_server::federation::public_key_hex(node_key(key)?);
            if json {
                outln!("{}", serde_json::json!({ "public_key": public }));
            } else {
                outln!("public_key: {public}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        NodeCommand::Serve(a) => a,
    };
    let partners = Partners::read(&a.partners).map_err(anyhow::Error::msg)?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(cert), Some(key)) => Some(
            borderlens_server::federation::NodeTls::read(cert, key).map_err(anyhow::Error::msg)?,
        ),
        _ => None,
    };
    if !a.addr.ip().is_loopback() && tls.is_none() {
        eprintln!(
            "borderlens: warning: serving the federation node in plain HTTP on {}, beyond this \
             machine: give it --tls-cert and --tls-key, or put a TLS proxy in front (tokens \
             travel in clear otherwise)",
            a.addr
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let n_partners = partners.partners.len();
    // The node's rule on differential privacy, said when it starts listening.
    let rule = match &partners.privacy {
        Some(p) => format!(
            "adds differential-privacy noise of multiplier {} at least{} (delta {:e})",
            p.min_noise_multiplier,
            p.max_epsilon
                .map(|e| format!(", at most epsilon {e} per session"))
                .unwrap_or_default(),
            p.delta
        ),
        None => "no privacy rule: adds the noise a coordinator asks for, if any".to_string(),
    };
    let privacy = serde_json::to_value(&partners.privacy).unwrap_or_default();
    let key = a.key.as_deref().map(node_key).transpose()?;
    let config = NodeConfig {
        db: db.to_path_buf(),
        database_url: database_url.map(str::to_string),
        partners,
        key,
        tls,
    };
    borderlens_server::federation::serve_node(config, a.addr, |local| {
        let what = format!("federation node for {n_partners} partner(s) ({rule}), listening on");
        let extra = serde_json::json!({ "partners": n_partners, "privacy": privacy });
        let url = format!("{scheme}://{local}");
        crate::service_cmds::say_listening(json, &url, extra, &what);
    })
    .with_context(|| crate::service_cmds::cannot_serve(db, database_url))?;
    Ok(ExitCode::SUCCESS)
}

pub fn federate(command: &FederateCommand, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    let a = match command {
        FederateCommand::Train(a) => a,
        FederateCommand::Stats(a) => return federate_stats(a, json),
    };
    let on_fault = match a.on_fault.as_str() {
        "abort" => OnFault::Abort,
        "drop" => OnFault::Drop,
        other => bail!("--on-fault {other:?}: abort or drop"),
    };
    if a.trees == 0 {
        bail!("--trees must be at least 1");
    }
    if !(a.learning_rate > 0.0 && a.learning_rate <= 1.0) {
        bail!("--learning-rate must be in (0, 1]");
    }
    if !(2..=4096).contains(&a.num_leaves) {
        bail!("--num-leaves must be between 2 and 4096");
    }
    if !(3..=256).contains(&a.max_bin) {
        bail!("--max-bin must be between 3 and 256");
    }
    if !(a.lambda_l2.is_finite() && a.lambda_l2 >= 0.0) {
        bail!("--lambda-l2 must be a number of at least 0");
    }
    if let Some(z) = a.dp_noise {
        borderlens_federation::dp::check_multiplier(z)
            .map_err(|e| anyhow::anyhow!("--dp-noise: {e}"))?;
        if !(a.dp_delta > 0.0 && a.dp_delta < 1.0) {
            bail!("--dp-delta must be between 0 and 1");
        }
    }
    let nodes = NodesFile::read(&a.nodes).map_err(anyhow::Error::msg)?;
    let links = HttpNodes::new(nodes, Duration::from_secs(a.timeout_seconds.max(1)))
        .map_err(anyhow::Error::msg)?;
    let mut gbdt = GbdtConfig::standard();
    gbdt.n_trees = a.trees;
    gbdt.learning_rate = a.learning_rate;
    gbdt.max_bin = a.max_bin;
    gbdt.num_leaves = a.num_leaves;
    gbdt.lambda_l2 = a.lambda_l2;
    let request = app::FederateRequest {
        label: a.label,
        until: a.until,
        model: a.model.clone(),
        gbdt,
        on_fault,
        privacy: a
            .dp_noise
            .map(|noise_multiplier| borderlens_federation::Privacy {
                noise_multiplier,
                delta: a.dp_delta,
            }),
    };
    let report = app::federate_train(links, &request, bars)?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        outln!(
            "federated model {} ({} label, up to {}): {} trees in {} rounds, {:.1} s, session {}",
            report.model,
            report.label,
            report.until,
            report.n_trees,
            report.rounds,
            report.seconds,
            report.session
        );
        for n in &report.nodes {
            match (&n.saved, &n.problem) {
                (Some(s), _) => outln!(
                    "  party {} {}: saved version {} (trees {})",
                    n.party,
                    n.name,
                    s.version,
                    s.trees_sha256.get(..16).unwrap_or(&s.trees_sha256)
                ),
                (None, Some(p)) => outln!("  party {} {}: {p}", n.party, n.name),
                (None, None) => outln!("  party {} {}: nothing saved", n.party, n.name),
            }
        }
        match &report.privacy {
            Some(p) => outln!(
                "differential privacy: noise multiplier {}, {} noisy releases per node, \
                 epsilon {:.3} at delta {:e} (zCDP rho {:.4})",
                p.noise_multiplier,
                p.releases,
                p.epsilon,
                p.delta,
                p.rho
            ),
            None => outln!("no differential-privacy noise: the sums were exact"),
        }
        if report.same_trees {
            outln!("every node that saved the model holds the same trees");
        } else {
            outln!("WARNING: the nodes saved different trees");
        }
    }
    let all_saved = report.nodes.iter().all(|n| n.saved.is_some());
    Ok(if report.same_trees && all_saved {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn federate_stats(a: &FederateStatsArgs, json: bool) -> anyhow::Result<ExitCode> {
    if !(a.confidence > 0.0 && a.confidence < 1.0) {
        bail!("--confidence must be between 0 and 1");
    }
    let nodes = NodesFile::read(&a.nodes).map_err(anyhow::Error::msg)?;
    let links = HttpNodes::new(nodes, Duration::from_secs(a.timeout_seconds.max(1)))
        .map_err(anyhow::Error::msg)?;
    let until = a.until.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let report = app::federate_stats(links, &a.by, until, a.confidence)?;
    if let Some(path) = &a.chart {
        let rows: Vec<borderlens_charts::intervals::IntervalRow> = report
            .segments
            .iter()
            .chain(report.elsewhere.iter())
            .take(30)
            .map(|s| borderlens_charts::intervals::IntervalRow {
                name: s.segment.clone(),
                estimate: s.pooled.rate.is_finite().then_some((
                    s.pooled.rate,
                    s.pooled.low,
                    s.pooled.high,
                )),
                compared: None,
                note: format!("{}/{}", s.pooled.hits, s.pooled.inspected),
            })
            .collect();
        let svg = borderlens_charts::intervals::intervals_svg(
            &format!(
                "Pooled {} by {} across {} nodes",
                report.measure,
                report.dimension,
                report.nodes.len()
            ),
            &rows,
            &report.measure,
            "pooled",
            "",
        );
        std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} by {} pooled across {} (declarations up to {}), {} rounds, session {}; the \
         nodes' counts were summed masked",
        report.measure,
        report.dimension,
        report.nodes.join(", "),
        report.until,
        report.rounds,
        report.session
    );
    let (of, with) = if report.dimension == "concealment" {
        ("findings", "with the method")
    } else {
        ("controlled", "fraud found")
    };
    let measure = format!("{} (CI)", report.measure);
    let mut t = crate::output::table(&[&report.dimension, of, with, &measure]);
    for s in report.segments.iter().chain(report.elsewhere.iter()) {
        t.add_row(vec![
            s.segment.clone(),
            s.pooled.inspected.to_string(),
            s.pooled.hits.to_string(),
            if s.pooled.rate.is_finite() {
                format!(
                    "{:.4} ({:.4}-{:.4})",
                    s.pooled.rate, s.pooled.low, s.pooled.high
                )
            } else {
                "n/a".to_string()
            },
        ]);
    }
    outln!("{t}");
    Ok(ExitCode::SUCCESS)
}
