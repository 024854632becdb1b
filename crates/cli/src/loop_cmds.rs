//! Subcommands of the selection loop: policy, select, override, controls, estimate,
//! explain-decision, bias-audit, drift. Glue only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_controls::{FormSchema, Submission};
use borderlens_domain::Lane;
use borderlens_store::Backend;
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use crate::output::{self, outln};
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Validate a policy JSON file and save it as the next version of its name.
    Set {
        /// Policy file (JSON; see docs/selection.md).
        file: PathBuf,
    },
    /// Print a stored policy.
    Show {
        name: String,
        #[arg(long)]
        version: Option<u32>,
    },
}

#[derive(Args)]
pub struct SelectArgs {
    /// Stored policy name (latest version).
    #[arg(long)]
    pub policy: String,
    /// Model that scores (latest version).
    #[arg(long)]
    pub model: String,
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Apply the capacity per office and day instead of per day.
    #[arg(long)]
    pub per_office: bool,
}

#[derive(Args)]
pub struct OverrideArgs {
    /// Declaration id.
    pub declaration: String,
    /// New lane: red, yellow or green.
    #[arg(long)]
    pub lane: Lane,
    /// Why (mandatory, kept in the audit log).
    #[arg(long)]
    pub reason: String,
}

#[derive(Subcommand)]
pub enum ControlsCommand {
    /// Print the control result form (fields, follow-ups, code lists) as JSON.
    Schema,
    /// Record one control result: a submission JSON file (`-` for stdin), or fields on the
    /// command line.
    Record(RecordArgs),
    /// Import results in bulk: an exchange document or JSON lines of submissions.
    Import {
        /// File.
        file: PathBuf,
    },
    /// Hit rates pooled over this store's controls and the foreign results it imported
    /// (anonymised exchange documents of other administrations), by origin, route or
    /// concealment method.
    Pooled(PooledArgs),
    /// Export every result as an exchange document for another administration.
    Export {
        /// Sending administration's code.
        #[arg(long)]
        sender: String,
        /// Key file for pseudonymising ids (anonymised export: officer, place, remarks and
        /// identifiers dropped, dates only).
        #[arg(long)]
        anonymise_key: Option<PathBuf>,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct RecordArgs {
    /// Submission JSON file (`-` for stdin).
    #[arg(long, conflicts_with_all = ["declaration", "set"])]
    pub file: Option<PathBuf>,
    /// Declaration controlled.
    #[arg(long)]
    pub declaration: Option<String>,
    /// Submission id (a retry reuses it; default: derived from the content).
    #[arg(long)]
    pub submission_id: Option<String>,
    /// Answers as FIELD=VALUE, read by the field's type (docs/controls.md): text as typed,
    /// numbers such as 12.5, lists of codes as a,b (or repeated), date-times with their offset.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    pub set: Vec<String>,
}

#[derive(Args)]
pub struct PooledArgs {
    /// Split by: origin, route (departure country/transport mode) or concealment.
    #[arg(long, default_value = "origin")]
    pub by: String,
    /// Confidence level of the intervals.
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
    /// Write the chart (pooled rate with its interval beside the own rate) to this SVG file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
}

#[derive(Args)]
pub struct EstimateArgs {
    /// Split by: origin, office, hs_chapter, transport_mode.
    #[arg(long, default_value = "origin")]
    pub by: String,
    #[arg(long, default_value_t = 0.95)]
    pub confidence: f64,
}

pub fn policy(
    store: &mut dyn Backend,
    command: &PolicyCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Set { file } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let (name, version) = app::save_policy(store, &text)
                .with_context(|| format!("policy file {}", file.display()))?;
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"policy": name, "version": version})
                );
            } else {
                outln!("policy {name} version {version}");
            }
        }
        PolicyCommand::Show { name, version } => {
            let (policy, version) = app::load_policy(store, name, *version)?;
            if json {
                outln!(
                    "{}",
                    serde_json::json!({"version": version, "policy": policy})
                );
            } else {
                outln!("# {name} version {version}\n{}", policy.to_json());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn select(
    store: &mut dyn Backend,
    a: &SelectArgs,
    json: bool,
    bars: &Bars,
) -> anyhow::Result<ExitCode> {
    if a.to < a.from {
        bail!("--to {} is before --from {}", a.to, a.from);
    }
    let report = app::select(
        store,
        &app::SelectRequest {
            policy: a.policy.clone(),
            model: a.model.clone(),
            from: a.from,
            to: a.to,
            seed: a.seed,
            per_office: a.per_office,
        },
        bars,
    )?;
    output::select(&report, json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn override_decision(
    store: &mut dyn Backend,
    a: &OverrideArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let stored = app::override_decision(store, &a.declaration, a.lane, &a.reason)?;
    if json {
        outln!(
            "{}",
            serde_json::json!({"id": stored.id, "declaration_id": a.declaration,
                "lane": stored.decision.lane, "overrides": stored.overrides,
                "reason": stored.override_reason})
        );
    } else {
        outln!(
            "declaration {} now {} (override {} of decision {}), reason recorded",
            a.declaration,
            stored.decision.lane,
            stored.id,
            stored.overrides.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path == Path::new("-") {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read stdin")?;
        Ok(text)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// A submission from `--declaration` and `--set` arguments, the answers read by the form's
/// field types (`borderlens_controls::coerce`).
fn submission_from_args(a: &RecordArgs) -> anyhow::Result<Submission> {
    let Some(declaration) = &a.declaration else {
        bail!("give --file, or --declaration with --set FIELD=VALUE answers");
    };
    let schema = FormSchema::builtin();
    let mut answers = Vec::with_capacity(a.set.len());
    for pair in &a.set {
        let Some(answer) = pair.split_once('=') else {
            bail!("--set {pair}: expected FIELD=VALUE");
        };
        answers.push(answer);
    }
    let values = borderlens_controls::coerce(schema, answers, None).map_err(|errors| {
        app::JobError::Refused {
            what: "control result".to_string(),
            errors,
        }
    })?;
    let submission_id = match &a.submission_id {
        Some(id) => id.clone(),
        None => {
            // Same answers → same id: re-running the same command is idempotent. The answers
            // are hashed as compact JSON (keys sorted), as results recorded earlier were.
            let hash = app::stable_hash(&format!(
                "{declaration}\n{}",
                serde_json::to_string(&values)?
            ));
            format!("cli-{hash:016x}")
        }
    };
    Ok(Submission {
        submission_id,
        declaration_id: declaration.clone(),
        schema_version: schema.version().to_string(),
        values,
    })
}

pub fn controls(
    store: &mut dyn Backend,
    command: &ControlsCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    match command {
        ControlsCommand::Schema => {
            outln!("{}", serde_json::to_string_pretty(FormSchema::builtin())?);
            Ok(ExitCode::SUCCESS)
        }
        ControlsCommand::Record(a) => {
            let report = match &a.file {
                Some(path) => app::record_control_result(store, &read_input(path)?, "cli")?,
                None => app::record_control_submission(store, &submission_from_args(a)?, "cli")?,
            };
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else {
                outln!(
                    "{} control result {} (submission {}) for declaration {}: {}{}",
                    report.status,
                    report.id,
                    report.submission_id,
                    report.declaration_id,
                    report.outcome,
                    report
                        .label
                        .as_ref()
                        .map(|l| format!(", label {l}"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ControlsCommand::Import { file } => {
            let text = read_input(file)?;
            let report = app::import_control_results(store, &file.display().to_string(), &text)?;
            if json {
                outln!("{}", serde_json::to_string(&report)?);
            } else if let Some(sender) = &report.foreign_sender {
                outln!(
                    "{}: anonymised results of {sender}: {} stored as foreign results, {} already stored",
                    report.file,
                    report.recorded,
                    report.duplicates,
                );
            } else {
                outln!(
                    "{}: {} recorded, {} already stored, {} refused",
                    report.file,
                    report.recorded,
                    report.duplicates,
                    report.rejected.len()
                );
                for line in &report.rejected {
                    outln!("  {line}");
                }
            }
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        ControlsCommand::Export {
            sender,
            anonymise_key,
            out,
        } => {
            let key = anonymise_key
                .as_ref()
                .map(|p| std::fs::read(p).with_context(|| format!("cannot read {}", p.display())))
                .transpose()?;
            let export = app::export_control_results(store, sender, key.as_deref())?;
            // Recorded before the file is written: a document that left the store is never
            // missing from the audit log (the manager's federation page lists it).
            let destination = std::path::absolute(out).unwrap_or_else(|_| out.clone());
            app::audit_control_export(store, &export, &destination.display().to_string())?;
            std::fs::write(out, &export.json)
                .with_context(|| format!("cannot write {}", out.display()))?;
            outln!(
                "wrote {} ({} results, {}, SHA-256 {})",
                out.display(),
                export.results,
                if export.anonymised {
                    "anonymised"
                } else {
                    "NOT anonymised: for this administration only"
                },
                export.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        ControlsCommand::Pooled(a) => {
            let report = app::pooled_statistics(store, &a.by, a.confidence)?;
            if let Some(path) = &a.chart {
                std::fs::write(path, app::pooled_chart(&report))
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            output::pooled(&report, json)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn estimate(store: &dyn Backend, a: &EstimateArgs, json: bool) -> anyhow::Result<ExitCode> {
    let report = app::estimates(store, &a.by, a.confidence)?;
    output::estimates(&report, json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn explain_decision(store: &dyn Backend, id: &str, json: bool) -> anyhow::Result<ExitCode> {
    let trace = app::explain_decision(store, id)?;
    output::decision_trace(&trace, json)?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct BiasArgs {
    /// Flag groups selected this many times more than their hit rate justifies.
    #[arg(long, default_value_t = 1.5)]
    pub max_disparity: f64,
    /// Fewest inspected declarations for a group to be flagged.
    #[arg(long, default_value_t = 20)]
    pub min_inspected: usize,
    /// Directory for one SVG chart per dimension.
    #[arg(long)]
    pub charts: Option<PathBuf>,
}

#[derive(Args)]
pub struct DriftArgs {
    /// Reference period: first day.
    #[arg(long)]
    pub reference_from: NaiveDate,
    #[arg(long)]
    pub reference_to: NaiveDate,
    /// Current period: first day.
    #[arg(long)]
    pub from: NaiveDate,
    #[arg(long)]
    pub to: NaiveDate,
    /// Compare this model's stored scores too (run `borderlens score` over both periods).
    #[arg(long)]
    pub model: Option<String>,
    /// Directory for the PSI chart and weekly hit-rate charts.
    #[arg(long)]
    pub charts: Option<PathBuf>,
}

fn write_svg(dir: &Path, name: &str, svg: String) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))
}

fn file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

pub fn bias_audit(store: &dyn Backend, a: &BiasArgs, json: bool) -> anyhow::Result<ExitCode> {
    let options = borderlens_monitor::bias::BiasOptions {
        max_disparity: a.max_disparity,
        min_inspected: a.min_inspected,
        ..Default::default()
    };
    let audit = app::bias_audit(store, &options)?;
    if let Some(dir) = &a.charts {
        for dimension in &audit.dimensions {
            write_svg(
                dir,
                &format!("bias-{}.svg", file_name(&dimension.name)),
                borderlens_monitor::bias::bias_chart_svg(dimension),
            )?;
        }
    }
    output::bias(&audit, json)?;
    Ok(ExitCode::SUCCESS)
}

pub fn drift(store: &dyn Backend, a: &DriftArgs, json: bool) -> anyhow::Result<ExitCode> {
    let report = app::drift_report(
        store,
        &app::DriftRequest {
            reference: (a.reference_from, a.reference_to),
            current: (a.from, a.to),
            model: a.model.clone(),
            scored_only: false,
        },
    )?;
    if let Some(dir) = &a.charts {
        write_svg(
            dir,
            "drift-psi.svg",
            borderlens_monitor::drift::psi_chart_svg(&report),
        )?;
        for dimension in ["office", "route", "HS chapter"] {
            let series = app::hit_rate_series(store, a.reference_from, a.to, dimension, 6)?;
            write_svg(
                dir,
                &format!("hit-rate-{}.svg", file_name(dimension)),
                borderlens_monitor::drift::hit_rate_chart_svg(
                    &format!("weekly hit rate by {dimension}"),
                    &series,
                ),
            )?;
        }
    }
    output::drift(&report, json)?;
    Ok(ExitCode::SUCCESS)
}
