//! Command-line definition and dispatch.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_domain::{ItemKey, LabelKind};
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::{Imbalance, TrainOptions};
use borderlens_selection::policy::RankBy;
use borderlens_selection::simulate::{SimulationOptions, Strategy};
use borderlens_store::pg::redact_url;
use borderlens_store::{Backend, Decisions, Items, Store};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::output::{self, outln};
use crate::progress::Bars;

#[derive(Parser)]
#[command(
    name = "borderlens",
    version,
    about = "Customs risk targeting: import, train, evaluate, score and explain"
)]
pub struct Cli {
    /// SQLite database file (created when missing).
    #[arg(long, global = true, default_value = "borderlens.db")]
    pub db: PathBuf,
    /// PostgreSQL database to use instead of the SQLite file, e.g.
    /// postgres://user@127.0.0.1:5432/borderlens (no TLS; --db is then not used).
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Print one JSON object instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is acting, as written in the audit log (officer or service id).
    #[arg(long, global = true, default_value = "cli")]
    pub actor: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Import declaration files (CSV); bad records are reported with file, line and field.
    Import(ImportArgs),
    /// Train a risk model on the control results up to a date.
    Train(TrainArgs),
    /// Measure a model on a labelled period: precision, recall and revenue at 1/2/5/10% inspected.
    Evaluate(EvaluateArgs),
    /// Score declarations (by default everything after the model's training period).
    Score(ScoreArgs),
    /// Explain one declaration's score: contributions, counterfactual, waterfall chart.
    Explain(ExplainArgs),
    /// Rare-threat framing: rank a period by isolation-forest anomaly score alone (no labels used).
    Anomaly(AnomalyArgs),
    /// Global feature importance (mean |SHAP|) of a model on a period.
    Importance(ImportanceArgs),
    /// List the models in the registry.
    Models,
    /// Export the exact model features (train/test CSV + meta.json) for comparison with other tools.
    ExportFeatures(ExportArgs),
    /// Manage selection policies (capacity, random share, campaigns).
    #[command(subcommand)]
    Policy(crate::loop_cmds::PolicyCommand),
    /// Decide lanes for the declarations of a period with a stored policy; records π.
    Select(crate::loop_cmds::SelectArgs),
    /// Override the current decision on a declaration (reason mandatory).
    Override(crate::loop_cmds::OverrideArgs),
    /// Control results: form schema, record, bulk import, exchange export.
    #[command(subcommand)]
    Controls(crate::loop_cmds::ControlsCommand),
    /// Horvitz–Thompson estimates of the non-compliance rate, overall and by segment.
    Estimate(crate::loop_cmds::EstimateArgs),
    /// Score, contributions, π, policy, overrides and outcome of one declaration.
    ExplainDecision {
        /// Declaration id.
        declaration: String,
    },
    /// Selection rate, hit rate and their ratio by origin, office, importer size and declarant;
    /// flags groups selected beyond what their hits justify.
    BiasAudit(crate::loop_cmds::BiasArgs),
    /// Feature, score and hit-rate drift between two periods; alerts name what moved.
    Drift(crate::loop_cmds::DriftArgs),
    /// Link two files of records that share no key (or find duplicates in one): Fellegi–Sunter
    /// with EM, one-to-one assignment; settings inferred from the data unless given.
    Link(LinkArgs),
    /// Replay the declarations week by week under several selection policies: only selected
    /// declarations reveal their labels, the model retrains weekly on what was revealed.
    Simulate(SimulateArgs),
    /// Run the HTTP API on this database: JSON under /api/v1, the OpenAPI document at
    /// /api/v1/openapi.json, GET /healthz; Ctrl-C stops it after the requests in flight.
    Serve(crate::service_cmds::ServeArgs),
    /// Users of the service (argon2id password hashes): `user add NAME --role ROLE`.
    #[command(subcommand)]
    User(crate::service_cmds::UserCommand),
    /// API tokens for machines: `token create NAME` prints one, once; `token list`, `token revoke ID`.
    #[command(subcommand)]
    Token(crate::service_cmds::TokenCommand),
    /// Benchmarks.
    Bench(BenchArgs),
    /// The whole job on the bundled sample: import, train, evaluate, score, explain, charts.
    Demo(DemoArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// CSV files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Column-mapping JSON for other layouts (our field → your header).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Refuse a whole file if any record is bad.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Clone)]
pub struct ModelOptions {
    /// Label to learn: fraud or critical.
    #[arg(long, default_value = "fraud")]
    pub label: String,
    /// Imbalance treatment: none, class-weight, oversample, undersample, smote.
    #[arg(long, default_value = "none")]
    pub imbalance: String,
    /// Add the isolation-forest anomaly score as a feature.
    #[arg(long)]
    pub anomaly_feature: bool,
    /// Maximum number of trees.
    #[arg(long, default_value_t = 1000)]
    pub trees: usize,
    /// Train exactly --trees trees (no early stopping on the held-out recent rows).
    #[arg(long)]
    pub no_early_stopping: bool,
    /// Leaves per tree.
    #[arg(long, default_value_t = 31)]
    pub leaves: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 0.05)]
    pub learning_rate: f64,
    /// Random seed (same data + options + seed → same model bytes).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl ModelOptions {
    pub fn to_options(&self) -> anyhow::Result<TrainOptions> {
        let label = LabelKind::parse(&self.label)
            .with_context(|| format!("unknown label '{}': use fraud or critical", self.label))?;
        let mut options = TrainOptions::standard(label);
        options.imbalance = Imbalance::parse(&self.imbalance)
            .with_context(|| format!("unknown imbalance option '{}': use none, class-weight, oversample, undersample or smote", self.imbalance))?;
        options.anomaly_feature = self.anomaly_feature;
        options.gbdt.n_trees = self.trees;
        options.gbdt.num_leaves = self.leaves;
        options.gbdt.learning_rate = self.learning_rate;
        options.gbdt.seed = self.seed;
        if self.no_early_stopping {
            options.gbdt.early_stopping_rounds = None;
        }
        Ok(options)
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// Last date of training data (inclusive), YYYY-MM-DD.
    #[arg(long)]
    pub until: NaiveDate,
    /// Registry name.
    #[arg(long)]
    pub model: String,
    /// Weight each controlled declaration by 1/π, its recorded probability of selection, so
    /// that risk-driven controls stand for the whole traffic (declarations without a recorded
    /// decision weigh 1).
    #[arg(long)]
    pub ipw: bool,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Args)]
pub struct EvaluateArgs {
    #[arg(long)]
    pub model: String,
    /// Model version (default: latest).
    #[arg(long)]
    pub version: Option<u32>,
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    /// Write the precision/recall/revenue vs inspection rate chart (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: Option<u32>,
    /// First date (default: the day after the model's training data).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Attach the top reasons (TreeSHAP) to every score.
    #[arg(long)]
    pub explain: bool,
    /// Inspection rate (percent) whose threshold marks declarations as selected: 1, 2, 5 or 10.
    #[arg(long, default_value_t = 5)]
    pub rate: u32,
    /// Rows shown in the table (JSON has all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Args)]
pub struct ExplainArgs {
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: Option<u32>,
    /// Declaration id.
    #[arg(long)]
    pub declaration: String,
    /// Item number.
    #[arg(long, default_value_t = 1)]
    pub item: u32,
    /// Inspection rate (percent) of the selection threshold for the counterfactual.
    #[arg(long, default_value_t = 5)]
    pub rate: u32,
    /// Write the waterfall chart (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Args)]
pub struct AnomalyArgs {
    /// Last date of the declarations that define "normal".
    #[arg(long)]
    pub until: NaiveDate,
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    /// Label to measure the ranking against, where known: fraud or critical.
    #[arg(long, default_value = "critical")]
    pub label: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Items listed.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(Subcommand)]
pub enum LinkCommand {
    /// Why a finished run did (not) link two records: the prior and each comparison's level,
    /// m, u and weight, with a waterfall chart.
    Explain {
        /// Left record id.
        left_id: String,
        /// Right record id (or another record of the same file when deduplicating).
        right_id: String,
        /// The run's output directory.
        #[arg(long)]
        out: PathBuf,
        /// Write the waterfall chart (SVG) here.
        #[arg(long)]
        chart: Option<PathBuf>,
    },
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct LinkArgs {
    #[command(subcommand)]
    pub command: Option<LinkCommand>,
    /// First (or only) CSV file.
    #[arg(long, required = true)]
    pub left: Option<PathBuf>,
    /// Second CSV file: link the two (else find duplicates in --left).
    #[arg(long)]
    pub right: Option<PathBuf>,
    /// Settings (TOML or JSON): blocking rules and comparisons. Inferred from the data when
    /// absent, and written to OUT/settings.toml either way.
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// Column holding each record's id.
    #[arg(long, required = true)]
    pub id_column: Option<String>,
    /// Output directory: clusters.csv, pairs.csv, settings.toml, model.json.
    #[arg(long, required = true)]
    pub out: Option<PathBuf>,
    /// Pairs below this match probability are left out of pairs.csv.
    #[arg(long, default_value_t = 0.01)]
    pub min_pair_probability: f64,
    /// A column to leave out of the linkage (repeatable), e.g. a truth column kept for scoring.
    #[arg(long = "ignore-column")]
    pub ignore_columns: Vec<String>,
    /// Known matching pairs (CSV: left id, right id): the links are checked against them.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Estimate m from the --labels pairs instead of EM (u and the prior as usual).
    #[arg(long)]
    pub train_on_labels: bool,
}

#[derive(Args)]
pub struct SimulateArgs {
    /// Red-lane capacity in percent of each week's declarations (e.g. 5 or 5%).
    #[arg(long, default_value = "5", value_parser = parse_percent)]
    pub capacity: f64,
    /// Share of the capacity that exploring policies spend on exploration (0 to 1).
    #[arg(long, default_value_t = 0.2)]
    pub explore_share: f64,
    /// Weeks of random selection before the first model.
    #[arg(long, default_value_t = 4)]
    pub warmup_weeks: usize,
    /// Weeks counted as the last quarter.
    #[arg(long, default_value_t = 13)]
    pub last_weeks: usize,
    /// Policies, comma-separated: exploit, exploit_random, exploit_explore, random.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "exploit,exploit_random,exploit_explore,random"
    )]
    pub policies: Vec<String>,
    /// Train with inverse-probability weights 1/π.
    #[arg(long)]
    pub ipw: bool,
    /// Rank risk targeting by `probability` or `expected_revenue` (score × duty at stake).
    #[arg(long, default_value = "probability")]
    pub rank_by: String,
    /// Target label: fraud or critical.
    #[arg(long, default_value = "fraud")]
    pub label: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First date replayed.
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last date replayed.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Directory for the SVG charts (precision, revenue, estimates per week).
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Also print the week-by-week table of each policy.
    #[arg(long)]
    pub weekly: bool,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a percentage"))?;
    if value > 0.0 && value <= 100.0 {
        Ok(value / 100.0)
    } else {
        Err(format!("{value}% is not in (0, 100]"))
    }
}

#[derive(Args)]
pub struct ImportanceArgs {
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub version: Option<u32>,
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    /// Write a bar chart (SVG).
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Args)]
pub struct ExportArgs {
    #[arg(long)]
    pub until: NaiveDate,
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to benchmark: risk (GBDT vs LightGBM + shap), link (vs Splink on generated data) or
    /// serve (load test of `borderlens serve` on loopback: submissions and reads at increasing
    /// rates).
    pub what: String,
    /// Folder with df_syn_train_eng.csv and df_syn_valid_eng.csv.
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Trees in the benchmark model (both tools).
    #[arg(long, default_value_t = 300)]
    pub trees: usize,
    /// Leaves per tree (both tools).
    #[arg(long, default_value_t = 31)]
    pub leaves: usize,
    /// Repetitions (best time kept).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Python with lightgbm and shap (risk) or splink (link) for the side-by-side run (skipped
    /// when it cannot run).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// link: records per side of the generated FEBRL-like data.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// link: seed of the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// link: folder for the generated data and both tools' outputs (data is reused; default
    /// target/bench-link). serve: folder for the databases, server logs, bench-serve.json and
    /// bench-serve.svg (default target/bench-serve).
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// link: skip the Splink side.
    #[arg(long)]
    pub no_splink: bool,
    /// serve: offered request rates (requests/s), one step each, in increasing order.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,2000,4000")]
    pub rates: Vec<u32>,
    /// serve: seconds of each rate step.
    #[arg(long, default_value_t = 5.0)]
    pub step_seconds: f64,
    /// serve: request kinds, comma-separated: submit (control results), read (score or decision).
    #[arg(long, value_delimiter = ',', default_value = "submit,read")]
    pub kinds: Vec<String>,
    /// serve: SQLite `synchronous` settings to measure, comma-separated: normal, full.
    #[arg(long, value_delimiter = ',', default_value = "normal,full")]
    pub synchronous: Vec<String>,
    /// serve: also measure PostgreSQL, in a fresh schema `bench_<unix-seconds>_<pid>` of this
    /// database (created at the start, dropped at the end), e.g. postgres://user@127.0.0.1:5432/db.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// serve: declaration items imported from the sample (the first N of 2020).
    #[arg(long, default_value_t = 2000)]
    pub declarations: usize,
    /// serve: most connections the load generator opens.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// serve: a request not answered within this many milliseconds of its scheduled send
    /// counts as a timeout.
    #[arg(long, default_value_t = 2000)]
    pub timeout_ms: u64,
    /// serve: the whole load test stops scheduling steps after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
}

impl BenchArgs {
    /// The benchmarks' settings (everything but `what`).
    pub fn to_options(&self) -> borderlens_bench::BenchOptions {
        borderlens_bench::BenchOptions {
            data: self.data.clone(),
            trees: self.trees,
            leaves: self.leaves,
            repeat: self.repeat,
            python: self.python.clone(),
            records: self.records,
            seed: self.seed,
            work: self.work.clone(),
            no_splink: self.no_splink,
            rates: self.rates.clone(),
            step_seconds: self.step_seconds,
            kinds: self.kinds.clone(),
            synchronous: self.synchronous.clone(),
            postgres: self.postgres.clone(),
            declarations: self.declarations,
            connections: self.connections,
            timeout_ms: self.timeout_ms,
            max_seconds: self.max_seconds,
        }
    }
}

#[derive(Args)]
pub struct DemoArgs {
    /// Folder with the sample CSV files.
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Folder for charts.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Where the demo's pages are served at the end (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Stop after the jobs instead of serving the pages.
    #[arg(long)]
    pub no_serve: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let bars = Bars::new(!cli.json && std::io::stderr().is_terminal());
    let open = || -> anyhow::Result<Box<dyn Backend>> {
        let mut store: Box<dyn Backend> = match &cli.database_url {
            Some(url) => Box::new(
                Store::connect(url)
                    .with_context(|| format!("cannot open database {}", redact_url(url)))?,
            ),
            None => Box::new(
                Store::open(&cli.db)
                    .with_context(|| format!("cannot open database {}", cli.db.display()))?,
            ),
        };
        store.set_actor(&cli.actor);
        Ok(store)
    };
    match &cli.command {
        Command::Import(a) => {
            let mapping = match &a.mapping {
                Some(path) => ColumnMapping::from_json_file(path)?,
                None => ColumnMapping::kcs_default(),
            };
            let mut store = open()?;
            let reports = app::import_files(&mut *store, &a.files, &mapping, a.strict, &bars)?;
            output::import(&reports, cli.json)?;
            Ok(if reports.iter().any(app::FileReport::has_problems) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Train(a) => {
            let mut store = open()?;
            let request = app::TrainRequest {
                model: a.model.clone(),
                until: a.until,
                options: a.options.to_options()?,
                ipw: a.ipw,
            };
            let report = app::train(&mut *store, &request, &bars)?;
            output::train(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Evaluate(a) => {
            let store = open()?;
            let request = app::EvaluateRequest {
                model: a.model.clone(),
                version: a.version,
                from: a.from,
                to: a.to,
            };
            let (report, _, _) = app::evaluate(&*store, &request)?;
            if let Some(path) = &a.chart {
                output::write_rate_chart(path, &report)?;
            }
            output::evaluate(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Score(a) => {
            if ![1, 2, 5, 10].contains(&a.rate) {
                bail!("--rate must be 1, 2, 5 or 10");
            }
            let mut store = open()?;
            let request = app::ScoreRequest {
                model: a.model.clone(),
                version: a.version,
                from: a.from,
                to: a.to,
                explain: a.explain,
                top_reasons: 3,
                rate: a.rate,
            };
            let report = app::score(&mut *store, &request, &bars)?;
            output::score(&report, a.limit, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(a) => {
            let store = open()?;
            let request = app::ExplainRequest {
                model: a.model.clone(),
                version: a.version,
                key: ItemKey {
                    declaration_id: a.declaration.clone(),
                    item_no: a.item,
                },
                rate: a.rate,
            };
            let (report, _) = app::explain(&*store, &request)?;
            if let Some(path) = &a.chart {
                output::write_waterfall(path, &report)?;
            }
            output::explain(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Importance(a) => {
            let store = open()?;
            let importance = app::importance(&*store, &a.model, a.version, a.from, a.to)?;
            if let Some(path) = &a.chart {
                output::write_importance(path, &importance)?;
            }
            output::importance(&importance, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Anomaly(a) => {
            let store = open()?;
            let label = LabelKind::parse(&a.label)
                .with_context(|| format!("unknown label '{}': use fraud or critical", a.label))?;
            let request = app::AnomalyRequest {
                until: a.until,
                from: a.from,
                to: a.to,
                label,
                seed: a.seed,
                top: a.top,
            };
            let report = app::anomaly(&*store, &request)?;
            output::anomaly(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Models => {
            let store = open()?;
            output::models(&store.list_models()?, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ExportFeatures(a) => {
            let store = open()?;
            let request = app::ExportRequest {
                until: a.until,
                from: a.from,
                to: a.to,
                options: a.options.to_options()?,
                out: a.out.clone(),
            };
            let (n_train, n_test) = app::export_features(&*store, &request)?;
            if cli.json {
                outln!(
                    "{}",
                    serde_json::json!({"out": a.out.display().to_string(), "train_rows": n_train, "test_rows": n_test})
                );
            } else {
                outln!(
                    "wrote {} ({n_train} training rows, {n_test} test rows)",
                    a.out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(c) => crate::loop_cmds::policy(&mut *open()?, c, cli.json),
        Command::Select(a) => crate::loop_cmds::select(&mut *open()?, a, cli.json, &bars),
        Command::Override(a) => crate::loop_cmds::override_decision(&mut *open()?, a, cli.json),
        Command::Controls(c) => crate::loop_cmds::controls(&mut *open()?, c, cli.json),
        Command::Estimate(a) => crate::loop_cmds::estimate(&*open()?, a, cli.json),
        Command::ExplainDecision { declaration } => {
            crate::loop_cmds::explain_decision(&*open()?, declaration, cli.json)
        }
        Command::Link(LinkArgs {
            command:
                Some(LinkCommand::Explain {
                    left_id,
                    right_id,
                    out,
                    chart,
                }),
            ..
        }) => {
            let report = app::explain_link(out, left_id, right_id)?;
            if let Some(path) = chart {
                std::fs::write(path, &report.chart_svg)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            output::link_explain(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Link(a) => {
            let (Some(left), Some(id_column), Some(out)) = (&a.left, &a.id_column, &a.out) else {
                bail!("link needs --left, --id-column and --out");
            };
            let report = app::link_files(
                &app::LinkRequest {
                    left: left.clone(),
                    right: a.right.clone(),
                    settings: a.settings.clone(),
                    id_column: id_column.clone(),
                    out: out.clone(),
                    min_pair_probability: a.min_pair_probability,
                    ignore: a.ignore_columns.clone(),
                    labels: a.labels.clone(),
                    train_on_labels: a.train_on_labels,
                },
                &bars,
            )?;
            output::link(&report, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BiasAudit(a) => crate::loop_cmds::bias_audit(&*open()?, a, cli.json),
        Command::Drift(a) => crate::loop_cmds::drift(&*open()?, a, cli.json),
        Command::Simulate(a) => {
            let store = open()?;
            let label = LabelKind::parse(&a.label)
                .with_context(|| format!("unknown label '{}': use fraud or critical", a.label))?;
            let strategies = a
                .policies
                .iter()
                .map(|name| {
                    Strategy::parse(name).with_context(|| {
                        format!(
                            "unknown policy '{name}': use {}",
                            Strategy::ALL.map(Strategy::name).join(", ")
                        )
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut options = SimulationOptions::standard();
            options.capacity = a.capacity;
            options.explore_share = a.explore_share;
            options.warmup_weeks = a.warmup_weeks;
            options.last_weeks = a.last_weeks;
            options.strategies = strategies;
            options.ipw = a.ipw;
            options.rank_by = match a.rank_by.as_str() {
                "probability" => RankBy::Probability,
                "expected_revenue" => RankBy::ExpectedRevenue,
                other => bail!("unknown --rank-by '{other}': use probability or expected_revenue"),
            };
            options.label = label;
            options.seed = a.seed;
            let request = app::SimulateRequest {
                from: a.from,
                to: a.to,
                options,
            };
            let report = app::simulate(&*store, &request, &bars)?;
            if let Some(dir) = &a.charts {
                output::write_simulation_charts(dir, &report)?;
            }
            output::simulation(&report, a.weekly, cli.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(a) => {
            match a.what.as_str() {
                "risk" => borderlens_bench::risk(&a.to_options(), cli.json, &bars)?,
                "link" => borderlens_bench::link(&a.to_options(), cli.json, &bars)?,
                "serve" => borderlens_bench::serve(&a.to_options(), cli.json, &bars)?,
                other => bail!(
                    "unknown benchmark '{other}': use `borderlens bench risk`, `bench link` or `bench serve`"
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(a) => {
            crate::service_cmds::serve(&cli.db, cli.database_url.as_deref(), a, cli.json)
        }
        Command::User(c) => crate::service_cmds::user(&mut *open()?, c, cli.json),
        Command::Token(c) => crate::service_cmds::token(&mut *open()?, c, cli.json),
        Command::Demo(a) => demo(&cli, a, &bars),
    }
}

fn demo(cli: &Cli, a: &DemoArgs, bars: &Bars) -> anyhow::Result<ExitCode> {
    let files = vec![
        a.data.join("df_syn_train_eng.csv"),
        a.data.join("df_syn_valid_eng.csv"),
    ];
    for f in &files {
        if !f.exists() {
            bail!(
                "sample file {} not found: run from the repository root or pass --data DIR",
                f.display()
            );
        }
    }
    if cli.database_url.is_some() {
        anyhow::bail!("demo builds a fresh SQLite file (--db); it does not run on --database-url");
    }
    let mut store = Store::open(&cli.db)
        .with_context(|| format!("cannot open database {}", cli.db.display()))?;
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").context("bad date");
    outln!(
        "== 1. import {} and {} into {}",
        files[0].display(),
        files[1].display(),
        cli.db.display()
    );
    let reports = app::import_files(
        &mut store,
        &files,
        &ColumnMapping::kcs_default(),
        false,
        bars,
    )?;
    output::import(&reports, false)?;
    outln!("\n== 2. train a fraud model on 2020 (borderlens train --label fraud --until 2020-12-31 --model demo)");
    let options = ModelOptions {
        label: "fraud".into(),
        imbalance: "none".into(),
        anomaly_feature: false,
        trees: 1000,
        no_early_stopping: false,
        leaves: 31,
        learning_rate: 0.05,
        seed: 42,
    };
    let request = app::TrainRequest {
        model: "demo".into(),
        until: date("2020-12-31")?,
        options: options.to_options()?,
        ipw: false,
    };
    let trained = app::train(&mut store, &request, bars)?;
    output::train(&trained, false)?;
    outln!("\n== 3. evaluate on 2021-Q1, never seen in training (borderlens evaluate --model demo --from 2021-01-01 --to 2021-03-31)");
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let request = app::EvaluateRequest {
        model: "demo".into(),
        version: Some(trained.version),
        from: date("2021-01-01")?,
        to: date("2021-03-31")?,
    };
    let (evaluation, _, _) = app::evaluate(&store, &request)?;
    let rate_chart = a.out.join("rate-curves.svg");
    output::write_rate_chart(&rate_chart, &evaluation)?;
    output::evaluate(&evaluation, false)?;
    outln!("chart: {}", rate_chart.display());
    outln!("\n== 4. score 2021-Q1 with reasons (borderlens score --model demo --explain)");
    let request = app::ScoreRequest {
        model: "demo".into(),
        version: Some(trained.version),
        from: None,
        to: None,
        explain: true,
        top_reasons: 3,
        rate: 5,
    };
    let scored = app::score(&mut store, &request, bars)?;
    output::score(&scored, 10, false)?;
    if let Some(top) = scored.items.first() {
        outln!("\n== 5. explain the riskiest declaration (borderlens explain --model demo --declaration {})", top.declaration_id);
        let request = app::ExplainRequest {
            model: "demo".into(),
            version: Some(trained.version),
            key: ItemKey {
                declaration_id: top.declaration_id.clone(),
                item_no: top.item_no,
            },
            rate: 5,
        };
        let (report, _) = app::explain(&store, &request)?;
        let chart = a.out.join(format!("waterfall-{}.svg", top.declaration_id));
        output::write_waterfall(&chart, &report)?;
        output::explain(&report, false)?;
        outln!("chart: {}", chart.display());
    }
    let importance = app::importance(
        &store,
        "demo",
        Some(trained.version),
        date("2021-01-01")?,
        date("2021-03-31")?,
    )?;
    let chart = a.out.join("importance.svg");
    output::write_importance(&chart, &importance)?;
    outln!("\nglobal importance chart: {}", chart.display());
    demo_loop(&mut store, a, bars)?;
    outln!("\nlater: `borderlens simulate --capacity 5` replays 2020-2021 week by week under four selection policies (about a minute)");
    if a.no_serve {
        return Ok(ExitCode::SUCCESS);
    }
    let users = crate::service_cmds::demo_users(&mut store)?;
    drop(store);
    outln!(
        "\n== 10. the pages: risk queue, declarations, control form, dashboard (borderlens serve)"
    );
    outln!("log in as one of (new passwords each run):");
    for (name, password) in &users {
        outln!("  {name:<14} {password}");
    }
    // The port asked for, or any free one when it is taken (a second demo, another service).
    let addr = match std::net::TcpListener::bind(a.addr) {
        Ok(listener) => {
            drop(listener);
            a.addr
        }
        Err(_) => std::net::SocketAddr::new(a.addr.ip(), 0),
    };
    crate::service_cmds::serve(
        &cli.db,
        None,
        &crate::service_cmds::ServeArgs {
            addr,
            insecure_cookies: false,
            session_minutes: borderlens_server::DEFAULT_SESSION_SECONDS / 60,
            trusted_proxies: Vec::new(),
        },
        cli.json,
    )
}

/// The default policy the demo stores (also `data/policies/port-default.json`).
const DEMO_POLICY: &str = include_str!("../../../data/policies/port-default.json");

/// Demo steps 6–9: select with a policy, record a control result, trace it, audit and drift.
fn demo_loop(store: &mut Store, a: &DemoArgs, bars: &Bars) -> anyhow::Result<()> {
    let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").context("bad date");
    outln!("\n== 6. select for control, 2021-03-22..26, with policy port-default (borderlens policy set data/policies/port-default.json; borderlens select --policy port-default --model demo --from 2021-03-22 --to 2021-03-26)");
    let (policy, policy_version) = app::save_policy(store, DEMO_POLICY)?;
    outln!("policy {policy} version {policy_version}");
    let selected = app::select(
        store,
        &app::SelectRequest {
            policy,
            model: "demo".into(),
            from: date("2021-03-22")?,
            to: date("2021-03-26")?,
            seed: 42,
            per_office: false,
        },
        bars,
    )?;
    output::select(&selected, false)?;
    let random = store
        .decisions(Some("2021-03-22"))?
        .into_iter()
        .find(|d| d.decision.source == "random");
    if let Some(d) = random {
        let id = d.decision.declaration_id;
        outln!("\n== 7. an officer records the control result of randomly selected declaration {id} (borderlens controls record ...)");
        // The sample already holds the truth of every declaration: the demo's officer finds it.
        let fraud = store
            .item(&ItemKey {
                declaration_id: id.clone(),
                item_no: 1,
            })?
            .and_then(|item| item.label)
            .is_some_and(|label| label.fraud);
        let mut values = serde_json::json!({
            "outcome": "no_irregularity",
            "inspection_method": ["documentary", "physical_partial"],
            "inspected_at": "2021-03-22T14:05:00+09:00", "place": "demo terminal",
            "officer_id": "demo-officer", "remarks": "goods as declared"
        });
        if fraud {
            values["outcome"] = "revenue".into();
            values["revenue_type"] = "undervaluation".into();
            values["remarks"] = "invoice price far below the HS6 norm".into();
        }
        let submission = serde_json::json!({
            "submission_id": format!("demo-{id}"),
            "declaration_id": id,
            "schema_version": borderlens_controls::FormSchema::builtin().version(),
            "values": values
        })
        .to_string();
        let recorded = app::record_control_result(store, &submission, "demo")?;
        outln!(
            "{} result {}: {}",
            recorded.status,
            recorded.id,
            recorded.label.as_deref().unwrap_or("no label")
        );
        outln!("\n== 8. trace it (borderlens explain-decision {id})");
        output::decision_trace(&app::explain_decision(store, &id)?, false)?;
    }
    outln!("\n== 9. bias audit of the selections and drift of 2021-Q1 against 2020-Q4 (borderlens bias-audit; borderlens drift ...)");
    let audit = app::bias_audit(store, &borderlens_monitor::bias::BiasOptions::default())?;
    for dimension in &audit.dimensions {
        if dimension.name == "origin country" || dimension.name == "importer size" {
            let name = dimension.name.replace(' ', "-");
            let path = a.out.join(format!("bias-{name}.svg"));
            std::fs::write(&path, borderlens_monitor::bias::bias_chart_svg(dimension))
                .with_context(|| format!("cannot write {}", path.display()))?;
            outln!("bias chart: {}", path.display());
        }
    }
    if audit.flags.is_empty() {
        outln!("no group is selected well beyond what its hit rate justifies");
    }
    for flag in &audit.flags {
        outln!("FLAG: {flag}");
    }
    let drift = app::drift_report(
        store,
        &app::DriftRequest {
            reference: (date("2020-10-01")?, date("2020-12-31")?),
            current: (date("2021-01-01")?, date("2021-03-31")?),
            model: None,
        },
    )?;
    let path = a.out.join("drift-psi.svg");
    std::fs::write(&path, borderlens_monitor::drift::psi_chart_svg(&drift))
        .with_context(|| format!("cannot write {}", path.display()))?;
    outln!(
        "drift: {} alerts; largest feature PSI {:.3}; chart: {}",
        drift.alerts.len(),
        drift
            .features
            .iter()
            .map(|f| f.psi.value)
            .fold(0.0, f64::max),
        path.display()
    );
    Ok(())
}
