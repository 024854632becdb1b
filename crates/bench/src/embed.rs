//! `borderlens bench embed`: throughput of the all-MiniLM-L6-v2 sentence encoder (crate
//! `embed`) on CPU, on real descriptions (the shipped UK references, and the CBP rulings when
//! the folder has them): encoding in batches (as the semantic index and the evaluation do),
//! one description per call (as `hs suggest` does), and the whole combined suggestion when
//! the combination is already saved beside the encoder.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use borderlens_app::Progress;
use borderlens_embed::SentenceEncoder;
use borderlens_hs::semantic::encode_all;
use borderlens_hs::{data, CombinedModel, HsModel, Nomenclature};
use serde_json::json;

use crate::{outln, BenchOptions};

/// Descriptions encoded at most (`--records` beyond this is cut): at a few hundred per second
/// the default `--records` of the other benchmarks would take minutes per repetition.
pub const MAX_EMBED_RECORDS: usize = 5_000;

/// Runs the benchmark with the encoder in `dir` (default: where `locate_and_load` finds it).
pub fn embed(
    a: &BenchOptions,
    dir: Option<&PathBuf>,
    json: bool,
    bars: &dyn Progress,
) -> anyhow::Result<()> {
    let nom = Nomenclature::hs2022();
    let started = Instant::now();
    let enc = match dir {
        Some(d) => SentenceEncoder::load(d),
        None => SentenceEncoder::locate_and_load(),
    }
    .context("the sentence encoder")?;
    let load_seconds = started.elapsed().as_secs_f64();
    let mut texts: Vec<String> = data::uk_shipped(nom)
        .into_iter()
        .flat_map(|(rows, _)| rows.into_iter().map(|l| l.text))
        .collect();
    if let Ok((rows, _)) = data::read_cbp(nom, &a.data.join("cross_atlas_validation.jsonl")) {
        texts.extend(rows.into_iter().map(|l| l.text));
    }
    // Spread over the sources (UK references, search terms, brands, rulings): every k-th.
    let n = a.records.clamp(1, MAX_EMBED_RECORDS);
    let stride = (texts.len() / n).max(1);
    let sample: Vec<&str> = texts
        .iter()
        .step_by(stride)
        .cycle()
        .take(n)
        .map(|s| s.as_str())
        .collect();
    let mean_bytes = sample.iter().map(|t| t.len()).sum::<usize>() as f64 / n as f64;
    let mean_tokens = sample
        .iter()
        .map(|t| enc.tokens(t).map(|v| v.len()).unwrap_or(0))
        .sum::<usize>() as f64
        / n as f64;
    // CPU time of the whole process, every thread (Linux: user + system clock ticks of
    // /proc/self/stat, at the usual 100 per second): on a machine shared with other jobs the
    // wall-clock rate says more about the load than about the encoder; descriptions per
    // CPU-second say what the encoder costs. `None` where the file is missing.
    let cpu_seconds = || -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some(ticks as f64 / 100.0)
    };
    let repeat = a.repeat.max(1);
    let cpu_before = cpu_seconds();
    let mut best_batched = f64::INFINITY;
    for r in 0..repeat {
        bars.start(
            &format!("encoding, run {} of {repeat}", r + 1),
            Some(n as u64),
        );
        let t = Instant::now();
        let vs = encode_all(&enc, &sample, 64, &mut |done, _| bars.advance(done as u64))?;
        best_batched = best_batched.min(t.elapsed().as_secs_f64());
        bars.finish();
        std::hint::black_box(vs);
        if bars.interrupted() {
            anyhow::bail!("stopped on request");
        }
    }
    let per_cpu_second = cpu_before
        .zip(cpu_seconds())
        .map(|(b, a)| a - b)
        .filter(|spent| *spent > 0.0)
        .map(|spent| (n * repeat) as f64 / spent);
    let singles = sample.len().min(500);
    let t = Instant::now();
    for text in &sample[..singles] {
        std::hint::black_box(enc.encode(&[text])?);
    }
    let single_seconds = t.elapsed().as_secs_f64();
    // The whole combined suggestion, when the combination is saved (`hs suggest --encoder`
    // saves it on first use); training it here would measure the training.
    let lexical = HsModel::shipped().context("the shipped HS model")?;
    let saved = enc
        .dir()
        .join("borderlens")
        .join(CombinedModel::file_name(&lexical, &enc));
    let combined_rate = match std::fs::read(&saved) {
        Ok(bytes) => {
            let m = CombinedModel::from_bytes(&lexical, &enc, &bytes)
                .with_context(|| format!("{}", saved.display()))?;
            let t = Instant::now();
            for text in &sample[..singles] {
                std::hint::black_box(m.suggest(text, 3)?);
            }
            Some(singles as f64 / t.elapsed().as_secs_f64())
        }
        Err(_) => None,
    };
    let batched_rate = n as f64 / best_batched;
    let single_rate = singles as f64 / single_seconds;
    let threads = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(1);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "encoder": enc.id(),
                "descriptions": n,
                "mean_bytes": mean_bytes,
                "mean_tokens": mean_tokens,
                "cpus": threads,
                "load_seconds": load_seconds,
                "encode_batched_per_second": batched_rate,
                "encode_batched_per_cpu_second": per_cpu_second,
                "encode_one_at_a_time_per_second": single_rate,
                "combined_suggest_one_at_a_time_per_second": combined_rate,
                "combined_model_file": saved,
            }))?
        );
    } else {
        outln!(
            "encoder {} loaded in {load_seconds:.2} s; {n} real descriptions (mean {mean_bytes:.0} bytes, {mean_tokens:.1} tokens), {threads} CPUs, best of {repeat}",
            enc.id()
        );
        outln!("encode, batches of 64 (sorted by length): {batched_rate:>7.0} descriptions/s");
        if let Some(r) = per_cpu_second {
            outln!("encode, batches, per CPU-second (all threads): {r:>7.0} descriptions");
        }
        outln!("encode, one description per call:         {single_rate:>7.0} descriptions/s ({singles} descriptions)");
        match combined_rate {
            Some(r) => outln!(
                "combined suggest (lexical + semantic), one per call: {r:>7.0} descriptions/s"
            ),
            None => outln!(
                "combined suggest: not measured, no saved combination at {} (run `borderlens hs suggest --encoder {} TEXT` once)",
                saved.display(),
                enc.dir().display()
            ),
        }
    }
    Ok(())
}
