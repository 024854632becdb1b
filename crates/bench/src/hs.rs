//! `borderlens bench hs`: throughput of the lexical HS model on real descriptions (the shipped
//! UK references, and the CBP rulings when the folder has them), one thread and all threads,
//! for the whole suggestion (readability, scores, calibrated probabilities, vague detector,
//! top-k) and for the declared-code check.

use std::time::Instant;

use anyhow::Context;
use borderlens_app::Progress;
use borderlens_hs::{data, HsModel, Nomenclature};
use rayon::prelude::*;
use serde_json::json;

use crate::{outln, BenchOptions};

/// Runs the benchmark: `records` descriptions (the real ones repeated), best of `repeat` runs.
pub fn hs(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let _ = bars;
    let nom = Nomenclature::hs2022();
    let started = Instant::now();
    let model = HsModel::shipped().context("the shipped HS model")?;
    let load_seconds = started.elapsed().as_secs_f64();
    let mut texts: Vec<(String, String)> = data::uk_shipped(nom)
        .into_iter()
        .flat_map(|(rows, _)| rows.into_iter().map(|l| (l.text, l.hs6.to_string())))
        .collect();
    let cbp = a.data.join("cross_atlas_validation.jsonl");
    if let Ok((rows, _)) = data::read_cbp(nom, &cbp) {
        texts.extend(rows.into_iter().map(|l| (l.text, l.hs6.to_string())));
    }
    let distinct = texts.len();
    let n = a.records.max(1);
    let sample: Vec<&(String, String)> = texts.iter().cycle().take(n).collect();
    let codes: Vec<borderlens_hs::Code> = sample
        .iter()
        .map(|(_, c)| nom.parse_code(c))
        .collect::<Result<_, _>>()?;
    let repeat = a.repeat.max(1);
    let best = |f: &dyn Fn() -> usize| crate::best_seconds(repeat, f);
    let one = best(&|| {
        sample
            .iter()
            .map(|(t, _)| model.suggest(t, 3).candidates.len())
            .sum()
    });
    // CPU time of this thread (Linux: user + system clock ticks of /proc/thread-self/stat, at
    // the usual 100 per second): on a machine shared with other jobs, descriptions per
    // CPU-second say what the model costs. `None` where the file is missing.
    let cpu_ns = || -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks * 10_000_000)
    };
    let cpu_rate = (|| {
        let before = cpu_ns()?;
        let k: usize = sample
            .iter()
            .map(|(t, _)| model.suggest(t, 3).candidates.len())
            .sum();
        std::hint::black_box(k);
        let spent = cpu_ns()?.checked_sub(before)? as f64 / 1e9;
        (spent > 0.0).then(|| n as f64 / spent)
    })();
    let all = best(&|| {
        sample
            .par_iter()
            .map(|(t, _)| model.suggest(t, 3).candidates.len())
            .sum()
    });
    let check = best(&|| {
        sample
            .par_iter()
            .zip(&codes)
            .map(|((t, _), c)| model.check(*c, t, 3).mismatch.is_some() as usize)
            .sum()
    });
    let threads = rayon::current_num_threads();
    let rate = |s: f64| n as f64 / s;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "model": model.id(),
                "descriptions": n,
                "distinct": distinct,
                "threads": threads,
                "load_seconds": load_seconds,
                "suggest_per_second_1_thread": rate(one),
                "suggest_per_cpu_second": cpu_rate,
                "suggest_per_second_all_threads": rate(all),
                "check_per_second_all_threads": rate(check),
            }))?
        );
    } else {
        outln!(
            "model {} loaded in {:.3} s; {n} descriptions ({distinct} distinct, real), best of {repeat}",
            model.id(),
            load_seconds
        );
        outln!(
            "suggest, 1 thread:        {:>9.0} descriptions/s",
            rate(one)
        );
        if let Some(r) = cpu_rate {
            outln!("suggest, per CPU-second:  {r:>9.0} descriptions (this thread's CPU time, 10 ms ticks)");
        }
        outln!(
            "suggest, {threads} threads:       {:>9.0} descriptions/s",
            rate(all)
        );
        outln!(
            "check (mismatch), {threads} thr.: {:>9.0} descriptions/s",
            rate(check)
        );
    }
    Ok(())
}
