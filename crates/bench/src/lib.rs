//! The benchmarks behind `borderlens bench risk|link|link-companies|hs|embed|serve`, kept out of the product commands.
//!
//! - [`risk`]: our GBDT and TreeSHAP against LightGBM + shap on the same features and model
//!   size, in the same run (`scripts/bench_lightgbm.py`), reported as ratios.
//! - [`link`]: linkage of generated FEBRL-like records with known matches (`borderlens-synth`)
//!   against Splink on the same files (`scripts/bench_splink.py`): F1, records/s, CPU, memory.
//! - [`link_companies`]: deduplication of company names (PATSTAT-like generated applicants, or a
//!   CSV file with a cluster column), B-cubed precision, recall and F1 beside the baseline of
//!   grouping on the first word of the name.
//! - [`nii`]: scans per second of the synthetic dual-energy X-ray generator (drawing, PNG +
//!   SHA-256, into a library folder).
//! - [`hs`]: throughput of the lexical HS model (descriptions/s) on real descriptions.
//! - [`import()`]: whether `borderlens import` streams: peak memory of a child process importing
//!   N/10 and N described items.
//! - [`text_features`]: the risk model with the goods descriptions' text columns against the
//!   same model without them, on the described sample, trained on earlier dates and measured on
//!   a later period.
//! - [`embed`]: throughput of the all-MiniLM-L6-v2 sentence encoder (`borderlens-embed`) on CPU,
//!   and of the combined suggestion when it is saved.
//! - [`federation`]: federated training over HTTP (three `borderlens node serve` processes on
//!   loopback, the sample split by customs office) against pooled training of the same trees.
//! - [`serve`]: an open-loop load test of `borderlens serve` on loopback (a reqwest client on a
//!   single-threaded tokio runtime), with the store read back afterwards.
//!
//! Each prints a table, or one JSON object with `json`, and reports its phases to a
//! [`Progress`](borderlens_app::Progress). `link` and `serve` run the current executable as a
//! child process (`borderlens link`, `borderlens serve`): call them from the `borderlens` binary.
//!
//! Architecture invariant: measures what the product does through its jobs and commands; no
//! product code path depends on this crate, and the CLI only parses the arguments into
//! [`BenchOptions`] and calls one of these functions.
#![deny(missing_docs)]

mod dedupe;
mod embed;
mod federation;
mod hs;
mod import;
mod link;
mod nii;
mod nii_detector;
mod risk;
mod serve;
mod text_features;

use std::path::PathBuf;

pub use dedupe::{bcubed, first_token_groups, link_companies};
pub use embed::embed;
pub use federation::federation;
pub use hs::hs;
pub use import::import;
pub use link::link;
pub use nii::nii;
pub use nii_detector::nii_detector;
pub use risk::risk;
pub use serve::serve;
pub use text_features::text_features;

/// `println!` that ends the process quietly when stdout is closed (`borderlens ... | head`), as
/// the CLI's own output does.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout(), $($arg)*) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            return Err(e.into());
        }
    }};
}
pub(crate) use outln;

/// The shortest of `repeat` timed runs of `f`, in seconds (its result kept from the optimiser).
pub(crate) fn best_seconds(repeat: usize, f: &dyn Fn() -> usize) -> f64 {
    (0..repeat.max(1))
        .map(|_| {
            let t = std::time::Instant::now();
            std::hint::black_box(f());
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Settings of the benchmarks (`borderlens bench --help`); each benchmark reads its own.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Folder with df_syn_train_eng.csv and df_syn_valid_eng.csv.
    pub data: PathBuf,
    /// risk: trees in the benchmark model (both tools).
    pub trees: usize,
    /// risk: leaves per tree (both tools).
    pub leaves: usize,
    /// risk: repetitions (best time kept).
    pub repeat: usize,
    /// Python with lightgbm and shap (risk) or splink (link) for the side-by-side run (skipped
    /// when it cannot run).
    pub python: String,
    /// link: records per side of the generated FEBRL-like data.
    pub records: usize,
    /// link: seed of the generated data; serve: seed of the order of the declarations; nii: seed of
    /// the scans.
    pub seed: u64,
    /// link: folder for the generated data and both tools' outputs (default target/bench-link).
    /// serve: folder for the databases, server logs, bench-serve.json and bench-serve.svg
    /// (default target/bench-serve).
    pub work: Option<PathBuf>,
    /// link: skip the Splink side.
    pub no_splink: bool,
    /// link-companies: a CSV file to deduplicate, with an id, a name and a true cluster column
    /// (default: PATSTAT-like records generated with `records` and `seed`).
    pub file: Option<PathBuf>,
    /// link-companies: id column of `file`.
    pub id_column: String,
    /// link-companies: name column of `file` (for the first-word baseline).
    pub name_column: String,
    /// link-companies: true cluster column of `file` (left out of the linkage).
    pub cluster_column: String,
    /// serve: offered request rates (requests/s), one step each.
    pub rates: Vec<u32>,
    /// serve: seconds of each rate step.
    pub step_seconds: f64,
    /// serve: request kinds: submit (control results), read (score or decision).
    pub kinds: Vec<String>,
    /// serve: SQLite `synchronous` settings to measure: normal, full.
    pub synchronous: Vec<String>,
    /// serve: also measure PostgreSQL, in a fresh schema of this database.
    pub postgres: Option<String>,
    /// serve: declaration items imported from the sample (the first N of 2020).
    pub declarations: usize,
    /// serve: most connections the load generator opens.
    pub connections: usize,
    /// serve: a request not answered within this many milliseconds of its scheduled send counts
    /// as a timeout.
    pub timeout_ms: u64,
    /// serve: the whole load test stops scheduling steps after this many seconds.
    pub max_seconds: u64,
    /// nii: scans generated per stage.
    pub scans: usize,
    /// nii: image width and height, pixels.
    pub size: u32,
    /// nii-detector: scans of each held-out set.
    pub test_scans: usize,
    /// nii-detector: training epochs.
    pub epochs: usize,
    /// nii-detector: the network's input side, pixels.
    pub side: usize,
    /// nii-detector: channels of the network's first layer.
    pub width: usize,
}
