//! `borderlens bench text-features`: the risk model with the text columns (what the shipped HS
//! model reads the goods descriptions as) against the same model without them, on the sample
//! with descriptions (`data/sample-described`, constructed data): same rows, same seed, same
//! options; trained on the earlier dates, measured on a later period. Runs the product's own
//! jobs (import, which reads the descriptions; train; evaluate) on a fresh SQLite store.

use std::time::Instant;

use anyhow::{bail, Context};
use borderlens_app::{self as app, Progress};
use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use chrono::NaiveDate;
use serde_json::json;

use crate::{outln, BenchOptions};

/// The training period ends here; the test period is the next quarter (as `bench risk`).
const UNTIL: (i32, u32, u32) = (2020, 12, 31);
const FROM: (i32, u32, u32) = (2021, 1, 1);
const TO: (i32, u32, u32) = (2021, 3, 31);

/// Runs the comparison (see the module doc). `a.data` is the described sample's folder (its
/// `mapping.json` reads the descriptions); `a.work` keeps the store (default: a temporary
/// folder, removed afterwards).
pub fn text_features(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let date = |(y, m, d): (i32, u32, u32)| NaiveDate::from_ymd_opt(y, m, d).context("date");
    let (until, from, to) = (date(UNTIL)?, date(FROM)?, date(TO)?);
    let mapping_path = a.data.join(app::MAPPING_FILE);
    if !mapping_path.exists() {
        bail!(
            "{} not found: --data must name the sample with descriptions (data/sample-described, \
             made by `borderlens sample describe`)",
            mapping_path.display()
        );
    }
    let mapping = ColumnMapping::from_json_file(&mapping_path)
        .with_context(|| format!("{}", mapping_path.display()))?;
    let (dir, keep) = workdir(a)?;
    let db = dir.join("bench-text-features.db");
    let mut store = borderlens_store::open_any(&db.display().to_string())?;
    let files: Vec<_> = app::SAMPLE_FILES.iter().map(|f| a.data.join(f)).collect();
    let started = Instant::now();
    let reports = app::import_files(&mut *store, &files, &mapping, false, bars)?;
    let import_seconds = started.elapsed().as_secs_f64();
    if let Some(bad) = reports.iter().find(|r| r.file_error.is_some()) {
        bail!(
            "{}: {}",
            bad.file,
            bad.file_error.clone().unwrap_or_default()
        );
    }
    let read: u64 = reports.iter().map(|r| r.descriptions_read).sum();
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.seed = a.seed;
    let mut runs = Vec::new();
    for (name, text_features) in [("without-text", false), ("with-text", true)] {
        let started = Instant::now();
        let trained = app::train(
            &mut *store,
            &app::TrainRequest {
                model: name.into(),
                until,
                options: options.clone(),
                ipw: false,
                text_features,
                firm_history: false,
            },
            bars,
        )?;
        let train_seconds = started.elapsed().as_secs_f64();
        if text_features && trained.text_features.is_none() {
            bail!("the model with text features was trained without them: no descriptions read");
        }
        let (evaluation, _, _) = app::evaluate(
            &*store,
            &app::EvaluateRequest {
                model: name.into(),
                version: None,
                from,
                to,
            },
        )?;
        let importance = if text_features {
            app::importance(&*store, name, None, from, to)?
                .into_iter()
                .take(8)
                .collect()
        } else {
            Vec::new()
        };
        runs.push((name, trained, evaluation, train_seconds, importance));
    }
    drop(store);
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let metric = |r: &app::EvaluationReport, k: &str| r.metrics.precision_at.get(k).copied();
    let report = json!({
        "data": a.data.display().to_string(),
        "train_until": until.to_string(),
        "test": [from.to_string(), to.to_string()],
        "seed": a.seed,
        "descriptions_read_on_import": read,
        "import_seconds": import_seconds,
        "models": runs.iter().map(|(name, t, e, s, imp)| json!({
            "model": name,
            "text_features": t.text_features,
            "n_train": t.n_rows,
            "train_positives": t.positives,
            "n_trees": t.n_trees,
            "train_seconds": s,
            "n_test": e.metrics.n,
            "test_positives": e.metrics.positives,
            "precision_at": e.metrics.precision_at,
            "recall_at": e.metrics.recall_at,
            "roc_auc": e.metrics.roc_auc,
            "pr_auc": e.metrics.pr_auc,
            "top_importance": imp,
        })).collect::<Vec<_>>(),
    });
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let (_, with_t, with_e, _, importance) = &runs[1];
    let (_, _, without_e, _, _) = &runs[0];
    outln!(
        "text features on {} (constructed data): trained on labelled items up to {until} ({} rows, {} fraud), \
         tested on {from}..{to} ({} rows, {} fraud), seed {}; {read} descriptions read on import",
        a.data.display(),
        with_t.n_rows,
        with_t.positives,
        with_e.metrics.n,
        with_e.metrics.positives,
        a.seed
    );
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec!["", "without text", "with text", "difference"]);
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    for rate in ["1", "2", "5", "10"] {
        let (x, y) = (metric(without_e, rate), metric(with_e, rate));
        t.add_row(vec![
            format!("precision at {rate}%"),
            cell(x),
            cell(y),
            cell(x.zip(y).map(|(x, y)| y - x)),
        ]);
    }
    for (label, x, y) in [
        ("ROC-AUC", without_e.metrics.roc_auc, with_e.metrics.roc_auc),
        ("PR-AUC", without_e.metrics.pr_auc, with_e.metrics.pr_auc),
    ] {
        t.add_row(vec![
            label.to_string(),
            cell(Some(x)),
            cell(Some(y)),
            cell(Some(y - x)),
        ]);
    }
    outln!("{t}");
    outln!("largest mean |contribution| with text (log-odds):");
    for (words, v) in importance {
        outln!("  {v:.3}  {words}");
    }
    Ok(())
}

/// The folder of the store: `a.work` when given (kept), else a temporary one (removed after).
fn workdir(a: &BenchOptions) -> anyhow::Result<(std::path::PathBuf, bool)> {
    let (dir, keep) = match &a.work {
        Some(dir) => (dir.clone(), true),
        None => (
            std::env::temp_dir().join(format!("borderlens-bench-text-{}", std::process::id())),
            false,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let db = dir.join("bench-text-features.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    Ok((dir, keep))
}
