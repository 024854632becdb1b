//! The command line: every command and its arguments (clap). What each command does is in
//! `dispatch.rs`; the demo scenario in `demo.rs`.

use std::path::PathBuf;

use anyhow::Context;
use borderlens_domain::LabelKind;
use borderlens_risk::model::{Imbalance, TrainOptions};
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

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
    /// A federation node over this store: `node serve --partners FILE` answers trusted
    /// coordinators' training sessions (rows never leave); `node token` makes a token.
    #[command(subcommand)]
    Node(crate::federation_cmds::NodeCommand),
    /// Federated training across nodes: `federate train --nodes FILE --until DATE --model NAME`.
    #[command(subcommand)]
    Federate(crate::federation_cmds::FederateCommand),
    /// Users of the service (argon2id password hashes): `user add NAME --role ROLE`.
    #[command(subcommand)]
    User(crate::service_cmds::UserCommand),
    /// API tokens for machines: `token create NAME` prints one, once; `token list`, `token revoke ID`.
    #[command(subcommand)]
    Token(crate::service_cmds::TokenCommand),
    /// Goods descriptions and HS codes: suggest, check a declared code, batch, evaluate, train.
    #[command(subcommand)]
    Hs(crate::hs_cmds::HsCommand),
    /// Read the goods descriptions of stored items not read yet by the shipped HS model (or read
    /// by another version) and store the readings beside the declared codes (imports do this).
    Annotate,
    /// The X-ray reference library (non-intrusive inspection): generate synthetic dual-energy
    /// scans, project threats, quality report, annotators' agreement.
    #[command(subcommand)]
    Nii(crate::nii_cmds::NiiCommand),
    /// Benchmarks.
    Bench(BenchArgs),
    /// Sample data sets: `sample describe` attaches UK parcel goods descriptions to the sample
    /// declarations (constructed data, misdeclarations planted at known rates).
    #[command(subcommand)]
    Sample(SampleCommand),
    /// The whole job on the bundled sample: import, train, evaluate, score, explain, charts.
    Demo(DemoArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// CSV files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Column-mapping JSON for other layouts (our field → your header). Without it: the KCS
    /// layout, plus the goods descriptions when every file has the columns "Goods Description"
    /// (and "Cleaned Goods Description").
    #[arg(long)]
    pub mapping: Option<PathBuf>,
    /// Refuse a whole file if any record is bad.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Clone)]
pub struct ModelOptions {
    /// Label to learn: fraud or critical.
    #[arg(long, default_value_t = LabelKind::Fraud)]
    pub label: LabelKind,
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
        let mut options = TrainOptions::standard(self.label);
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
    /// Train without the text columns (what the shipped HS model reads the goods descriptions
    /// as), even when the items carry descriptions.
    #[arg(long)]
    pub no_text_features: bool,
    /// Train without the firm columns (the summed past of every id that the saved party links
    /// join to the importer's and the declarant's), even when the store holds party links.
    #[arg(long)]
    pub no_firm_history: bool,
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
    #[arg(long, default_value_t = LabelKind::Critical)]
    pub label: LabelKind,
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
    /// --left is a register of trade parties whose ids are the importer and declarant ids of
    /// the declarations: save the groups found (one firm under several ids) in the store
    /// (--db / --database-url), replacing the previous run's. The declaration page then lists
    /// the declarations of linked parties.
    #[arg(long, conflicts_with = "right")]
    pub save_party_links: bool,
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
    #[arg(long, default_value_t = LabelKind::Fraud)]
    pub label: LabelKind,
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
    /// Leave out the text columns (what the shipped HS model reads the goods descriptions as),
    /// even when the items carry descriptions; `train` adds them then, so they are exported by
    /// default.
    #[arg(long)]
    pub no_text_features: bool,
    #[command(flatten)]
    pub options: ModelOptions,
}

#[derive(Args)]
pub struct BenchArgs {
    /// What to benchmark: risk (GBDT vs LightGBM + shap), link (vs Splink on generated data),
    /// link-companies (company-name deduplication, B-cubed F1), nii (synthetic X-ray scans/s; --scans, --size), hs (descriptions/s of the lexical HS model;
    /// --records descriptions, --data may hold cross_atlas_validation.jsonl), embed (descriptions/s of
    /// the all-MiniLM-L6-v2 encoder, --encoder DIR, at most 5,000 of --records), import (peak memory of importing --records/10 and --records
    /// described items: does the import stream?; --file: the rows to copy), text-features (risk model with
    /// and without the goods descriptions' text columns on --data data/sample-described, --seed) or serve (load test of `borderlens serve` on loopback: submissions and reads at increasing
    /// rates) or federation (federated training over HTTP on three `node serve` processes
    /// against pooled training of the same trees, --trees, --repeat).
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
    /// link: records per side of the generated FEBRL-like data; link-companies: records of the
    /// generated PATSTAT-like data.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,
    /// link: seed of the generated data; nii: seed of the scans.
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
    /// link-companies: a CSV file to deduplicate, with an id, a name and a true cluster column
    /// (default: PATSTAT-like company records generated with --records and --seed).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// link-companies: id column of --file.
    #[arg(long, default_value = "person_id")]
    pub id_column: String,
    /// link-companies: name column of --file (for the first-word baseline).
    #[arg(long, default_value = "person_name")]
    pub name_column: String,
    /// link-companies: true cluster column of --file (left out of the linkage, used to score).
    #[arg(long, default_value = "cluster")]
    pub cluster_column: String,
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
    /// embed: folder of the all-MiniLM-L6-v2 encoder (default: $BORDERLENS_MINILM_DIR, else
    /// models/all-MiniLM-L6-v2 found from here or the repository root).
    #[arg(long, value_name = "DIR")]
    pub encoder: Option<PathBuf>,
    /// nii: scans generated per stage.
    #[arg(long, default_value_t = 400)]
    pub scans: usize,
    /// nii: image width and height, pixels.
    #[arg(long, default_value_t = 512)]
    pub size: u32,
    /// nii-detector: scans of each held-out set (the training set is --scans; the figures in
    /// docs/nii-detector.md use --scans 1500).
    #[arg(long, default_value_t = 600)]
    pub test_scans: usize,
    /// nii-detector: training epochs.
    #[arg(long, default_value_t = borderlens_nii::detector::train::TrainOptions::default().epochs)]
    pub epochs: usize,
    /// nii-detector: the network's input side, pixels (a multiple of 16).
    #[arg(long, default_value_t = 128)]
    pub side: usize,
    /// nii-detector: channels of the network's first layer.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
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
            file: self.file.clone(),
            id_column: self.id_column.clone(),
            name_column: self.name_column.clone(),
            cluster_column: self.cluster_column.clone(),
            rates: self.rates.clone(),
            step_seconds: self.step_seconds,
            kinds: self.kinds.clone(),
            synchronous: self.synchronous.clone(),
            postgres: self.postgres.clone(),
            declarations: self.declarations,
            connections: self.connections,
            timeout_ms: self.timeout_ms,
            max_seconds: self.max_seconds,
            scans: self.scans,
            size: self.size,
            test_scans: self.test_scans,
            epochs: self.epochs,
            side: self.side,
            width: self.width,
        }
    }
}

#[derive(clap::Subcommand)]
pub enum SampleCommand {
    /// Attach real UK parcel goods descriptions to the sample declarations by HS code (exact
    /// HS6, else heading, else chapter), plant misdeclarations (a description of another
    /// chapter) at known rates, add a broker's cleaned description on a share of rows; writes
    /// the files, their mapping.json, truth/descriptions.csv and a README (CONSTRUCTED data).
    Describe(DescribeArgs),
    /// Write a register of the sample's trade parties (every importer and declarant id, with
    /// names, addresses and EORI numbers) where a share of the firms hold two ids, and the
    /// pairs of ids of one firm in truth/same-firm.csv (CONSTRUCTED data): the input of
    /// `borderlens link --save-party-links`.
    Parties(PartiesArgs),
}

#[derive(Args)]
pub struct PartiesArgs {
    /// Folder with df_syn_train_eng.csv and df_syn_valid_eng.csv (read through its
    /// mapping.json when it has one).
    #[arg(long, default_value = "data/sample")]
    pub data: PathBuf,
    /// Folder to write: parties.csv and truth/same-firm.csv.
    #[arg(long)]
    pub out: PathBuf,
    /// Share of the firms that hold two ids.
    #[arg(long, default_value_t = 0.05)]
    pub two_id_share: f64,
    /// Seed of every draw.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Args)]
pub struct DescribeArgs {
    /// Folder with df_syn_train_eng.csv and df_syn_valid_eng.csv.
    #[arg(long, default_value = "data/sample")]
    pub sample: PathBuf,
    /// Folder with the UK descriptions and the HS 2022 nomenclature.
    #[arg(long, default_value = "data/hs")]
    pub hs: PathBuf,
    /// Folder to write.
    #[arg(long, default_value = "data/sample-described")]
    pub out: PathBuf,
    /// Seed of every draw (the shipped folder's: 2026).
    #[arg(long, default_value_t = borderlens_app::DescribeOptions::RECORDED.seed)]
    pub seed: u64,
    /// Probability that a row labelled Fraud = 1 gets a description of another chapter.
    #[arg(long, default_value_t = borderlens_app::DescribeOptions::RECORDED.misdeclared_fraud_rate)]
    pub misdeclared_fraud_rate: f64,
    /// Probability that any other row gets a description of another chapter.
    #[arg(long, default_value_t = borderlens_app::DescribeOptions::RECORDED.misdeclared_clean_rate)]
    pub misdeclared_clean_rate: f64,
    /// Probability that a row also gets a cleaned description (the HS 2022 text of its code).
    #[arg(long, default_value_t = borderlens_app::DescribeOptions::RECORDED.cleaned_rate)]
    pub cleaned_rate: f64,
}

#[derive(Args)]
pub struct DemoArgs {
    /// Folder with the sample CSV files (read through its mapping.json when it has one, as
    /// data/sample-described does).
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
