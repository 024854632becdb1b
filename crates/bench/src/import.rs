//! `borderlens bench import`: whether an import streams. A file of `--records` items with goods
//! descriptions is written from the described sample's rows (fresh declaration ids, the rest
//! as declared, descriptions included) and imported by `borderlens import` in a child process
//! into a fresh SQLite database, once with a tenth of the items and once with all of them. The
//! child's peak resident memory (VmHWM, read from /proc while it runs) of both runs is compared:
//! a streaming import holds about the same memory for ten times the items, one that reads the
//! whole file first holds about ten times as much.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use borderlens_app::Progress;
use serde_json::json;

use crate::{outln, BenchOptions};

/// The sample file whose rows the generated items copy (shipped in the repository).
const TEMPLATE: &str = "data/sample-described/df_syn_train_eng.csv";
/// Header of the declaration id in the template (KCS layout).
const ID_HEADER: &str = "Declaration ID";
/// Header of the sender's description in the template.
const DESCRIPTION_HEADER: &str = "Goods Description";

/// One import run, as measured.
struct Run {
    items: usize,
    seconds: f64,
    peak_mib: Option<f64>,
    imported: serde_json::Value,
}

/// Runs the import benchmark (see the module doc).
pub fn import(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let n = a.records;
    if n < 10 {
        bail!("--records must be at least 10 (a tenth of them is imported first)");
    }
    let template = a.file.clone().unwrap_or_else(|| PathBuf::from(TEMPLATE));
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-import"));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mapping = work.join("mapping.json");
    std::fs::write(&mapping, borderlens_app::described_mapping().to_json())
        .with_context(|| format!("cannot write {}", mapping.display()))?;
    let mut runs = Vec::new();
    let mut described_share = 0.0;
    for items in [n / 10, n] {
        let file = work.join(format!("described-{items}.csv"));
        if !file.exists() {
            described_share = write_items(&template, &file, items, bars)?;
        } else if described_share == 0.0 {
            described_share = share_described(&file)?;
        }
        let db = work.join(format!("import-{items}.db"));
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
        bars.start(&format!("importing {items} items (child process)"), None);
        let run = import_once(&db, &mapping, &file, items, bars);
        bars.finish();
        runs.push(run?);
    }
    let (small, large) = (&runs[0], &runs[1]);
    let ratio = small
        .peak_mib
        .zip(large.peak_mib)
        .map(|(s, l)| l / s.max(f64::MIN_POSITIVE));
    let result = json!({
        "template": template.display().to_string(),
        "items_with_a_description": described_share,
        "runs": runs.iter().map(|r| json!({
            "items": r.items,
            "seconds": r.seconds,
            "items_per_second": r.items as f64 / r.seconds.max(1e-9),
            "peak_memory_mib": r.peak_mib,
            "report": r.imported,
        })).collect::<Vec<_>>(),
        "peak_memory_ratio": ratio,
        "items_ratio": large.items as f64 / small.items as f64,
    });
    std::fs::write(
        work.join("bench-import.json"),
        serde_json::to_string_pretty(&result)?,
    )
    .with_context(|| format!("cannot write {}", work.join("bench-import.json").display()))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&result)?);
        return Ok(());
    }
    outln!(
        "import benchmark: items copied from {} ({:.0}% with a goods description), SQLite, one child process per run; files in {}",
        template.display(),
        100.0 * described_share,
        work.display()
    );
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec!["items", "seconds", "items/s", "peak memory (MiB)"]);
    for r in &runs {
        t.add_row(vec![
            r.items.to_string(),
            format!("{:.1}", r.seconds),
            format!("{:.0}", r.items as f64 / r.seconds.max(1e-9)),
            r.peak_mib.map_or("-".into(), |m| format!("{m:.0}")),
        ]);
    }
    outln!("{t}");
    match ratio {
        Some(r) => outln!(
            "{}× the items held {r:.2}× the peak memory ({})",
            large.items / small.items.max(1),
            if r < 2.0 {
                "the import streams"
            } else {
                "the import does NOT stream"
            }
        ),
        None => outln!("peak memory not measured (no /proc on this system)"),
    }
    Ok(())
}

/// Writes `items` rows copied in turn from `template`, each with a fresh declaration id, and
/// answers the share of them with a sender's description.
fn write_items(
    template: &Path,
    out: &Path,
    items: usize,
    bars: &dyn Progress,
) -> anyhow::Result<f64> {
    let shown = template.display();
    let mut reader = csv::Reader::from_path(template).with_context(|| {
        format!("cannot read {shown} (run from the repository root, or pass --file)")
    })?;
    let headers = reader
        .headers()
        .with_context(|| format!("{shown}: no header"))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{shown}: no column '{name}'"))
    };
    let (id, description) = (column(ID_HEADER)?, column(DESCRIPTION_HEADER)?);
    let rows: Vec<csv::StringRecord> = reader
        .records()
        .enumerate()
        .map(|(k, r)| r.with_context(|| format!("{shown}, line {}", k + 2)))
        .collect::<anyhow::Result<_>>()?;
    if rows.is_empty() {
        bail!("{shown}: no rows");
    }
    let partial = out.with_extension("partial");
    let mut writer = csv::Writer::from_path(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    writer.write_record(&headers)?;
    bars.start(
        &format!("writing {items} described items"),
        Some(items as u64),
    );
    let mut described = 0usize;
    for i in 0..items {
        if bars.interrupted() {
            bail!("interrupted: {} left incomplete", partial.display());
        }
        let row = &rows[i % rows.len()];
        if !row.get(description).unwrap_or("").trim().is_empty() {
            described += 1;
        }
        let fresh = format!("B{i:09}");
        let record: Vec<&str> = row
            .iter()
            .enumerate()
            .map(|(c, v)| if c == id { fresh.as_str() } else { v })
            .collect();
        writer.write_record(&record)?;
        if i % 10_000 == 0 {
            bars.advance(i as u64);
        }
    }
    writer.flush()?;
    drop(writer);
    bars.finish();
    std::fs::rename(&partial, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(described as f64 / items as f64)
}

/// Share of the rows of a generated file with a sender's description (a file kept from an
/// earlier run).
fn share_described(file: &Path) -> anyhow::Result<f64> {
    let mut reader =
        csv::Reader::from_path(file).with_context(|| format!("cannot read {}", file.display()))?;
    let description = reader
        .headers()?
        .iter()
        .position(|h| h == DESCRIPTION_HEADER)
        .with_context(|| format!("{}: no column '{DESCRIPTION_HEADER}'", file.display()))?;
    let (mut rows, mut described) = (0usize, 0usize);
    for record in reader.records() {
        let record = record.with_context(|| format!("{}, line {}", file.display(), rows + 2))?;
        rows += 1;
        if !record.get(description).unwrap_or("").trim().is_empty() {
            described += 1;
        }
    }
    Ok(described as f64 / rows.max(1) as f64)
}

/// Imports `file` into `db` with `borderlens import` in a child process, sampling its peak
/// resident memory while it runs.
fn import_once(
    db: &Path,
    mapping: &Path,
    file: &Path,
    items: usize,
    bars: &dyn Progress,
) -> anyhow::Result<Run> {
    let exe = std::env::current_exe().context("cannot find the borderlens executable")?;
    let (out_file, err_file) = (db.with_extension("out.json"), db.with_extension("err.txt"));
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("--json")
        .arg("--db")
        .arg(db)
        .arg("import")
        .arg("--mapping")
        .arg(mapping)
        .arg(file)
        // To files, not pipes: a long report (many rejected rows of a --file) would fill a pipe
        // that is read only after the child exits, and both would wait for ever.
        .stdout(
            std::fs::File::create(&out_file)
                .with_context(|| format!("cannot write {}", out_file.display()))?,
        )
        .stderr(
            std::fs::File::create(&err_file)
                .with_context(|| format!("cannot write {}", err_file.display()))?,
        )
        .spawn()
        .context("cannot run borderlens import")?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    let mut peak: Option<f64> = None;
    // VmHWM is the peak so far: the last reading before the child exits is its peak, give or
    // take the final sampling interval.
    let status = loop {
        if let Some(kib) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|s| vm_hwm_kib(&s))
        {
            peak = Some(peak.unwrap_or(0.0).max(kib / 1024.0));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if bars.interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            bail!("interrupted");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!(
            "borderlens import of {} failed: {}",
            file.display(),
            std::fs::read_to_string(&err_file).unwrap_or_default()
        );
    }
    let stdout =
        std::fs::read(&out_file).with_context(|| format!("cannot read {}", out_file.display()))?;
    let imported: serde_json::Value =
        serde_json::from_slice(&stdout).context("borderlens import printed no JSON report")?;
    Ok(Run {
        items,
        seconds,
        peak_mib: peak,
        imported,
    })
}

/// The `VmHWM:` line of /proc/PID/status, in KiB.
fn vm_hwm_kib(status: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_from_the_status_file() {
        let status = "Name:\tborderlens\nVmPeak:\t  900 kB\nVmHWM:\t  20480 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(20480.0));
        assert_eq!(vm_hwm_kib("Name:\tx\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM:\tlots kB\n"), None);
    }
}
