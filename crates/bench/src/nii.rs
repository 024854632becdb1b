//! `borderlens bench nii`: scans per second of the synthetic dual-energy generator at the
//! library's default parameters (512 × 512 unless `--size`), in three stages so the cost of each
//! is visible: drawing the scan (objects, Beer–Lambert, blur, Poisson noise), then also encoding
//! both channels and the mask as 16-bit / 8-bit PNG with their SHA-256, then the whole
//! `borderlens nii generate` job into a fresh library folder (files written). One thread and all
//! threads; best of `repeat` runs for the in-memory stages.

use borderlens_app::Progress;
use borderlens_nii::batch::generate_into;
use borderlens_nii::generate::{generate_scan, GeneratorParams};
use borderlens_nii::library::prepare;
use borderlens_nii::Library;
use rayon::prelude::*;
use serde_json::json;

use crate::{outln, BenchOptions};

/// Runs the benchmark on `scans` scans of seed `seed`.
pub fn nii(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let n = a.scans.max(1) as u64;
    let params = GeneratorParams {
        width: a.size,
        height: a.size,
        ..GeneratorParams::default()
    };
    params.validate().map_err(anyhow::Error::msg)?;
    let repeat = a.repeat.max(1);
    let best = |f: &dyn Fn() -> usize| crate::best_seconds(repeat, f);
    let seed = a.seed;
    let one_n = (n / 4).max(1);
    bars.start("generate, 1 thread", None);
    let draw_one = best(&|| {
        (0..one_n)
            .map(|i| generate_scan(&params, seed, i).truth.len())
            .sum()
    });
    bars.finish();
    bars.start("generate, all threads", None);
    let draw_all = best(&|| {
        (0..n)
            .into_par_iter()
            .map(|i| generate_scan(&params, seed, i).truth.len())
            .sum()
    });
    bars.finish();
    bars.start("generate + PNG + SHA-256", None);
    let encode_all = best(&|| {
        (0..n)
            .into_par_iter()
            .map(|i| {
                prepare(generate_scan(&params, seed, i))
                    .map(|p| p.blobs.len())
                    .unwrap_or(0)
            })
            .sum()
    });
    bars.finish();
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("target/bench-nii"));
    let folder = work.join(format!("library-{seed}-{}", std::process::id()));
    if folder.exists() {
        std::fs::remove_dir_all(&folder)?;
    }
    let mut library = Library::create(&folder)?;
    let cpu_before = process_cpu_seconds();
    bars.start("generate into a library folder", Some(n));
    let summary = generate_into(
        &mut library,
        &params,
        seed,
        n,
        &|d| bars.advance(d),
        &|| bars.interrupted(),
    )?;
    let cpu_after = process_cpu_seconds();
    bars.finish();
    let bytes: u64 = walk_bytes(&folder.join("images"));
    let cpu_full = cpu_after.zip(cpu_before).map(|(a, b)| a - b);
    let written = summary.written as f64;
    let full = summary.seconds;
    std::fs::remove_dir_all(&folder)?;
    let threads = rayon::current_num_threads();
    let rate = |count: f64, s: f64| count / s.max(1e-9);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "scans": n,
                "width": params.width,
                "height": params.height,
                "energies": 2,
                "threads": threads,
                "generate_per_second_1_thread": rate(one_n as f64, draw_one),
                "generate_per_second_all_threads": rate(n as f64, draw_all),
                "generate_png_sha256_per_second_all_threads": rate(n as f64, encode_all),
                "library_per_second_all_threads": rate(written, full),
                "library_bytes_per_scan": if written > 0.0 { bytes as f64 / written } else { 0.0 },
                "library_cpu_seconds": cpu_full,
                "library_per_cpu_second": cpu_full.filter(|c| *c > 0.0).map(|c| written / c),
                "interrupted": summary.interrupted,
            }))?
        );
    } else {
        outln!(
            "{n} scans of {}×{} dual-energy (seed {seed}), best of {repeat}; {threads} threads",
            params.width,
            params.height
        );
        outln!(
            "generate, 1 thread:                {:>7.1} scans/s",
            rate(one_n as f64, draw_one)
        );
        outln!(
            "generate, {threads} threads:               {:>7.1} scans/s",
            rate(n as f64, draw_all)
        );
        outln!(
            "+ PNG + SHA-256, {threads} threads:        {:>7.1} scans/s",
            rate(n as f64, encode_all)
        );
        outln!(
            "into a library folder, {threads} threads: {:>7.1} scans/s ({:.0} kB of PNG per scan)",
            rate(written, full),
            if written > 0.0 {
                bytes as f64 / written / 1000.0
            } else {
                0.0
            }
        );
        if let Some(c) = cpu_full.filter(|c| *c > 0.0) {
            outln!(
                "into a library folder, per CPU-second:  {:>7.1} scans (process CPU time; on a shared machine this says what a scan costs)",
                written / c
            );
        }
    }
    Ok(())
}

/// CPU time (user + system) of this process so far, seconds (Linux: `/proc/self/stat`, at the
/// usual 100 clock ticks per second); `None` where the file is missing.
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

fn walk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                walk_bytes(&p)
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}
