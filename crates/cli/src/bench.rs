//! `borderlens bench risk`: our GBDT against LightGBM + shap on the same features, same model size,
//! same machine, same run; reported as ratios because shared machines are noisy.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use borderlens_app as app;
use borderlens_domain::{DeclarationItem, LabelKind};
use borderlens_ingest::{read_declarations, ColumnMapping};
use borderlens_risk::gbdt::Booster;
use borderlens_risk::model::{self, TrainOptions};
use chrono::NaiveDate;
use serde_json::json;

use crate::args::BenchArgs;
use crate::output::outln;
use crate::progress::Bars;

pub fn risk(a: &BenchArgs, json: bool, bars: &Bars) -> anyhow::Result<()> {
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
    };
    app::export_items(&training, &items, &request)?;
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

/// `borderlens bench link`: FEBRL-like data of `--records` per side (generated once, kept in
/// `--work`), linked by borderlens with inferred settings in a child process (so that its peak
/// memory is the linkage's alone), then by Splink 5 with its FEBRL4 example settings
/// (`scripts/bench_splink.py`), in the same run; F1 against the truth in the ids.
pub fn link(a: &BenchArgs, json: bool, bars: &Bars) -> anyhow::Result<()> {
    use borderlens_app::Progress as _;
    let n = a.records;
    if n == 0 {
        bail!("--records must be at least 1");
    }
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-link"));
    let dir = work.join(format!("febrl-like-{n}-{}", a.seed));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (left, right) = (dir.join("a.csv"), dir.join("b.csv"));
    if !left.exists() || !right.exists() {
        bars.start(&format!("generating {n} + {n} FEBRL-like records"), None);
        let (x, y) = borderlens_synth::febrl_like(n, a.seed);
        for (records, path) in [(&x, &left), (&y, &right)] {
            // Written under a temporary name first: an interrupted run leaves no half file.
            let partial = path.with_extension("partial");
            borderlens_synth::write_csv(records, &partial)
                .with_context(|| format!("cannot write {}", partial.display()))?;
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        bars.finish();
    }
    let out = dir.join("borderlens");
    let exe = std::env::current_exe().context("cannot find the borderlens executable")?;
    bars.start("linking with borderlens (inferred settings)", None);
    let started = Instant::now();
    let output = Command::new(exe)
        .arg("--json")
        .arg("link")
        .arg("--left")
        .arg(&left)
        .arg("--right")
        .arg(&right)
        .args(["--id-column", "rec_id", "--out"])
        .arg(&out)
        .output()
        .context("cannot run borderlens link")?;
    let wall = started.elapsed().as_secs_f64();
    bars.finish();
    if !output.status.success() {
        bail!(
            "borderlens link failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("borderlens link printed no report")?;
    let (precision, recall, f1) = score_febrl_links(&out.join("pairs.csv"), n)?;
    let records = 2.0 * n as f64;
    let ours = json!({
        "records_per_side": n,
        "wall_seconds": wall,
        "records_per_second": records / wall,
        "cpu_seconds": report["cpu_seconds"],
        "peak_memory_mib": report["peak_memory_mib"],
        "candidate_pairs": report["candidate_pairs"],
        "phases": report["seconds"],
        "precision": precision,
        "recall": recall,
        "f1": f1,
    });
    let splink = if a.no_splink {
        serde_json::Value::Null
    } else {
        bars.start("linking with Splink (FEBRL4 example settings)", None);
        let result = run_splink(&a.python, &left, &right, &dir);
        bars.finish();
        match result {
            Ok(v) => v,
            Err(e) => {
                eprintln!("borderlens: Splink side skipped: {e:#}");
                serde_json::Value::Null
            }
        }
    };
    let get = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let sum = |a: &str, b: &str| Some(get(&splink, a)? + get(&splink, b)?);
    let splink_wall = sum("train_wall_s", "predict_wall_s");
    let splink_cpu = sum("train_cpu_s", "predict_cpu_s");
    let ratios = json!({
        "wall_speedup": splink_wall.map(|s| s / wall),
        "cpu_speedup": splink_cpu.zip(get(&ours, "cpu_seconds")).map(|(s, o)| s / o),
        "memory_ratio": get(&splink, "peak_rss_mb").zip(get(&ours, "peak_memory_mib")).map(|(s, o)| s / o),
    });
    let result = json!({ "borderlens": ours, "splink": splink, "ratios": ratios });
    std::fs::write(
        dir.join("bench.json"),
        serde_json::to_string_pretty(&result)?,
    )
    .with_context(|| format!("cannot write {}", dir.join("bench.json").display()))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    outln!(
        "link benchmark: FEBRL-like data, {n} + {n} records (seed {}), {} threads; data and outputs in {}",
        a.seed,
        rayon::current_num_threads(),
        dir.display()
    );
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "measure",
        "borderlens",
        "Splink",
        "ratio (>1: borderlens better)",
    ]);
    let f = |v: Option<f64>, digits: usize| {
        v.map(|v| format!("{v:.digits$}"))
            .unwrap_or_else(|| "-".into())
    };
    let splink_rps = splink_wall.map(|w| records / w);
    t.add_row(vec![
        "wall seconds (train + predict)".to_string(),
        f(Some(wall), 2),
        f(splink_wall, 2),
        f(get(&result["ratios"], "wall_speedup"), 1),
    ]);
    t.add_row(vec![
        "records / s".to_string(),
        f(Some(records / wall), 0),
        f(splink_rps, 0),
        f(splink_rps.map(|s| records / wall / s), 1),
    ]);
    t.add_row(vec![
        "CPU seconds".to_string(),
        f(get(&ours, "cpu_seconds"), 2),
        f(splink_cpu, 2),
        f(get(&result["ratios"], "cpu_speedup"), 1),
    ]);
    t.add_row(vec![
        "peak memory MiB".to_string(),
        f(get(&ours, "peak_memory_mib"), 0),
        f(get(&splink, "peak_rss_mb"), 0),
        f(get(&result["ratios"], "memory_ratio"), 1),
    ]);
    for k in ["precision", "recall", "f1"] {
        t.add_row(vec![
            k.to_string(),
            f(get(&ours, k), 4),
            f(get(&splink, k), 4),
            String::new(),
        ]);
    }
    outln!("{t}");
    outln!(
        "borderlens wall includes reading and writing the files; Splink's is its training and prediction only (loading apart)."
    );
    Ok(())
}

/// Precision, recall and F1 of the linked pairs in `pairs.csv`, the truth being the entity in the
/// ids (`rec-K-org` ↔ `rec-K-dup-0`, `n` true pairs).
fn score_febrl_links(pairs: &Path, n: usize) -> anyhow::Result<(f64, f64, f64)> {
    let mut reader = csv::Reader::from_path(pairs)
        .with_context(|| format!("cannot read {}", pairs.display()))?;
    let (mut links, mut right) = (0usize, 0usize);
    for record in reader.records() {
        let record = record.with_context(|| format!("{}", pairs.display()))?;
        if record.get(4) != Some("1") {
            continue;
        }
        links += 1;
        let entity = |k: usize| record.get(k).and_then(borderlens_synth::entity_of);
        if entity(0).is_some() && entity(0) == entity(1) {
            right += 1;
        }
    }
    let precision = right as f64 / links.max(1) as f64;
    let recall = right as f64 / n.max(1) as f64;
    let f1 = 2.0 * right as f64 / (links + n).max(1) as f64;
    Ok((precision, recall, f1))
}

/// Splink 5 on the same files through `scripts/bench_splink.py` (FEBRL4 recipe, 2 threads).
fn run_splink(
    python: &str,
    left: &Path,
    right: &Path,
    dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let script = Path::new("scripts/bench_splink.py");
    if !script.exists() {
        bail!(
            "{} not found (run from the repository root)",
            script.display()
        );
    }
    let out = dir.join("splink.json");
    let log = dir.join("splink.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let status = Command::new(python)
        .arg(script)
        .args(["--dataset", "febrl4", "--threads", "2", "--left"])
        .arg(left)
        .arg("--right")
        .arg(right)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(log_file)
        .status()
        .with_context(|| format!("cannot run {python}"))?;
    if !status.success() {
        bail!("{python} {} failed ({status}), see {}; is splink installed? see scripts/bench_splink.md", script.display(), log.display());
    }
    let text =
        std::fs::read_to_string(&out).with_context(|| format!("cannot read {}", out.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    Ok(match value {
        serde_json::Value::Array(mut list) if !list.is_empty() => list.remove(0),
        other => other,
    })
}
