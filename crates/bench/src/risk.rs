//! `borderlens bench risk`: our GBDT against LightGBM + shap on the same features, same model size,
//! same machine, same run; reported as ratios because shared machines are noisy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use borderlens_app::{self as app, Progress};
use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_ingest::{read_declarations, ColumnMapping};
use borderlens_risk::gbdt::Booster;
use borderlens_risk::model::{self, TrainOptions};
use chrono::NaiveDate;
use serde_json::json;

use crate::{outln, BenchOptions};

/// Runs the risk benchmark (see the module doc); `bars` is not used (the phases are short).
pub fn risk(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let _ = bars;
    let mut items = Vec::new();
    for name in ["df_syn_train_eng.csv", "df_syn_valid_eng.csv"] {
        let path = a.data.join(name);
        for record in read_declarations(&path, &ColumnMapping::kcs_default())? {
            items.push(record?);
        }
    }
    items.sort_by(|x, y| x.date.cmp(&y.date).then_with(|| x.key.cmp(&y.key)));
    let until = NaiveDate::from_ymd_opt(2020, 12, 31).context("date")?;
    let from = NaiveDate::from_ymd_opt(2021, 1, 1).context("date")?;
    let to = NaiveDate::from_ymd_opt(2021, 3, 31).context("date")?;
    let training: Vec<DeclarationItem> = items
        .iter()
        .filter(|d| d.date <= until && d.label.is_some())
        .cloned()
        .collect();
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.n_trees = a.trees;
    options.gbdt.num_leaves = a.leaves;
    options.gbdt.early_stopping_rounds = None;
    let design = model::training_design(&training, &options)?;
    let wanted: Vec<bool> = items
        .iter()
        .map(|d| d.date >= from && d.date <= to)
        .collect();
    let (test, _) = model::design_with(&design.pipeline, None, &items, &wanted, LabelKind::Fraud);

    let repeat = a.repeat.max(1);
    let mut train_seconds = f64::INFINITY;
    let mut booster = None;
    for _ in 0..repeat {
        let started = Instant::now();
        let b = Booster::train(&design.data, &options.gbdt, None, &mut |_, _| true);
        train_seconds = train_seconds.min(started.elapsed().as_secs_f64());
        booster = Some(b);
    }
    let booster = booster.context("no training run")?;
    let rows: Vec<Vec<f64>> = (0..test.n_rows()).map(|i| test.row(i)).collect();
    let best = |f: &dyn Fn() -> f64| (0..repeat).map(|_| f()).fold(f64::INFINITY, f64::min);
    let predict_seconds = best(&|| {
        let started = Instant::now();
        let s: f64 = booster.predict_raw_all(&test).iter().sum();
        std::hint::black_box(s);
        started.elapsed().as_secs_f64()
    });
    let shap_seconds = best(&|| {
        let started = Instant::now();
        let s: f64 = booster.contributions_rows(&rows).iter().map(|c| c[0]).sum();
        std::hint::black_box(s);
        started.elapsed().as_secs_f64()
    });
    let n_test = rows.len() as f64;
    let ours = json!({
        "train_seconds": train_seconds,
        "predict_rows_per_s": n_test / predict_seconds,
        "shap_rows_per_s": n_test / shap_seconds,
        "n_train": design.data.n_rows(),
        "n_test": rows.len(),
        "n_trees": booster.trees.len(),
        "num_leaves": a.leaves,
        "threads": rayon::current_num_threads(),
    });

    let dir = std::env::temp_dir().join(format!("borderlens-bench-{}", std::process::id()));
    let request = app::ExportRequest {
        until,
        from,
        to,
        options: options.clone(),
        out: dir.clone(),
        text_features: false,
    };
    app::export_items(&training, &items, &request, None)?;
    let lightgbm = run_python(&a.python, &dir, repeat);
    let _ = std::fs::remove_dir_all(&dir);
    let (lightgbm, ratios) = match lightgbm {
        Ok(l) => {
            let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { f64::NAN };
            let get = |k: &str| l.get(k).and_then(|v| v.as_f64()).unwrap_or(f64::NAN);
            let ratios = json!({
                "training_speedup_vs_lightgbm": ratio(get("train_seconds"), train_seconds),
                "predict_speedup_vs_lightgbm": ratio(n_test / predict_seconds, get("predict_rows_per_s")),
                "explain_speedup_vs_shap_tree_explainer": ratio(n_test / shap_seconds, get("shap_rows_per_s")),
                "explain_speedup_vs_lightgbm_pred_contrib": ratio(n_test / shap_seconds, get("lgb_pred_contrib_rows_per_s")),
            });
            (l, ratios)
        }
        Err(e) => {
            eprintln!("borderlens: LightGBM side skipped: {e:#}");
            (serde_json::Value::Null, serde_json::Value::Null)
        }
    };
    let report = json!({ "borderlens": ours, "lightgbm": lightgbm, "ratios": ratios });
    if json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    outln!("risk benchmark: fraud model, {} trees × {} leaves, {} training rows, {} test rows, {} threads", booster.trees.len(), a.leaves, design.data.n_rows(), rows.len(), rayon::current_num_threads());
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "measure",
        "borderlens",
        "LightGBM / shap",
        "ratio (>1: borderlens better)",
    ]);
    let l = |k: &str| {
        report["lightgbm"]
            .get(k)
            .and_then(|v| v.as_f64())
            .map(|v| format!("{v:.3}"))
            .unwrap_or_else(|| "-".into())
    };
    let r = |k: &str| {
        report["ratios"]
            .get(k)
            .and_then(|v| v.as_f64())
            .map(|v| format!("{v:.2}×"))
            .unwrap_or_else(|| "-".into())
    };
    t.add_row(vec![
        "training seconds".into(),
        format!("{train_seconds:.3}"),
        l("train_seconds"),
        r("training_speedup_vs_lightgbm"),
    ]);
    t.add_row(vec![
        "scores / s".into(),
        format!("{:.0}", n_test / predict_seconds),
        l("predict_rows_per_s"),
        r("predict_speedup_vs_lightgbm"),
    ]);
    t.add_row(vec![
        "exact contributions / s (shap TreeExplainer)".into(),
        format!("{:.0}", n_test / shap_seconds),
        l("shap_rows_per_s"),
        r("explain_speedup_vs_shap_tree_explainer"),
    ]);
    t.add_row(vec![
        "exact contributions / s (LightGBM pred_contrib)".into(),
        format!("{:.0}", n_test / shap_seconds),
        l("lgb_pred_contrib_rows_per_s"),
        r("explain_speedup_vs_lightgbm_pred_contrib"),
    ]);
    outln!("{t}");
    Ok(())
}

fn run_python(python: &str, dir: &Path, repeat: usize) -> anyhow::Result<serde_json::Value> {
    let script = PathBuf::from("scripts/bench_lightgbm.py");
    if !script.exists() {
        bail!(
            "{} not found (run from the repository root)",
            script.display()
        );
    }
    let output = Command::new(python)
        .arg(&script)
        .arg(dir)
        .args(["--repeat", &repeat.to_string(), "--json"])
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    serde_json::from_slice(&output.stdout).context("bench_lightgbm.py printed no JSON")
}
