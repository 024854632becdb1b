//! `borderlens bench link`: borderlens against Splink on generated FEBRL-like data with known
//! matches, in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use borderlens_app::Progress;
use serde_json::json;

use crate::{outln, BenchOptions};

/// `borderlens bench link`: FEBRL-like data of `--records` per side (generated once, kept in
/// `--work`), linked by borderlens with inferred settings in a child process (so that its peak
/// memory is the linkage's alone), then by Splink 5 with its FEBRL4 example settings
/// (`scripts/bench_splink.py`), in the same run; F1 against the truth in the ids.
pub fn link(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
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
                // Said in the report too, not only on stderr: a table of dashes is no answer.
                eprintln!("borderlens: Splink side skipped: {e:#}");
                json!({ "skipped": format!("{e:#}") })
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

/// `scripts/bench_splink.py`, built into the executable so that the benchmark runs from any
/// folder.
const SPLINK_SCRIPT: &str = include_str!("../../../scripts/bench_splink.py");

/// Splink 5 on the same files through `scripts/bench_splink.py` (FEBRL4 recipe, 2 threads),
/// written into `dir` first.
fn run_splink(
    python: &str,
    left: &Path,
    right: &Path,
    dir: &Path,
) -> anyhow::Result<serde_json::Value> {
    let script = dir.join("bench_splink.py");
    std::fs::write(&script, SPLINK_SCRIPT)
        .with_context(|| format!("cannot write {}", script.display()))?;
    let out = dir.join("splink.json");
    let log = dir.join("splink.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot write {}", log.display()))?;
    let status = Command::new(python)
        .arg(&script)
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
