//! `borderlens hs ...`: HS code suggestions, declared-code checks, batch files, evaluation and
//! training, over `borderlens-hs`. Parsing and printing only.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use borderlens_app::Progress;
use borderlens_embed::SentenceEncoder;
use borderlens_hs::batch::{self, BatchOptions, Format};
use borderlens_hs::eval::{self, EvalOptions, EvalReport};
use borderlens_hs::{CombinedModel, HsModel, Nomenclature, Status, Suggestion};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use crate::output::outln;
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum HsCommand {
    /// Ranked HS 2022 codes for a goods description, with calibrated probabilities and the
    /// back-off ("needs more detail" when only the heading or chapter is likely).
    Suggest(SuggestArgs),
    /// Check a declared code against a description: mismatch at chapter, heading and 6 digits.
    Check(CheckArgs),
    /// Compare a sender's description with a cleaned one (broker, postal operator).
    Compare(CompareArgs),
    /// Suggestions (and mismatch) for every row of a CSV file, streamed to CSV or JSON Lines.
    Batch(BatchArgs),
    /// Top-1/top-3 at chapter, heading and 6 digits on UK descriptions held out by source and
    /// on CBP rulings; mismatch ROC-AUC; readability; beside the published anchors.
    Evaluate(EvaluateArgs),
    /// Train the lexical model and the vague detector from the shipped data (deterministic).
    Train(TrainArgs),
}

#[derive(Args)]
pub struct ModelArg {
    /// Model file (default: the model shipped inside this build).
    #[arg(long)]
    model: Option<PathBuf>,
}

impl ModelArg {
    fn load(&self) -> anyhow::Result<HsModel> {
        Ok(match &self.model {
            Some(p) => HsModel::load(p)?,
            None => HsModel::shipped().context("the shipped HS model")?,
        })
    }
}

/// A description from the command line, or from standard input when it is `-` (for texts too
/// long for an argument); what is read is capped at 16 MB (the models read the first 1,024 bytes).
fn description(text: &str) -> anyhow::Result<String> {
    if text != "-" {
        return Ok(text.to_string());
    }
    use std::io::Read;
    let mut buf = Vec::new();
    std::io::stdin()
        .take(16 << 20)
        .read_to_end(&mut buf)
        .context("cannot read the description from standard input")?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// The sentence encoder, when asked for.
#[derive(Args)]
pub struct EncoderArg {
    /// Folder of the all-MiniLM-L6-v2 sentence encoder (`scripts/install-minilm.sh` puts it in
    /// models/all-MiniLM-L6-v2): adds the semantic model and answers with the combination. The
    /// first run encodes the nomenclature and the labelled descriptions (minutes on CPU) and
    /// saves the combination in DIR/borderlens/.
    #[arg(long, value_name = "DIR")]
    encoder: Option<PathBuf>,
}

impl EncoderArg {
    fn load(&self) -> anyhow::Result<Option<SentenceEncoder>> {
        self.encoder
            .as_ref()
            .map(|d| SentenceEncoder::load(d).context("the sentence encoder (--encoder)"))
            .transpose()
    }
}

/// The lexical model combined with the encoder, loaded from DIR/borderlens/ or trained there.
fn combined<'a>(
    model: &'a HsModel,
    encoder: &'a SentenceEncoder,
    bars: &Bars,
) -> anyhow::Result<CombinedModel<'a, SentenceEncoder>> {
    let mut started = false;
    let (m, _) = CombinedModel::load_or_train(
        model,
        encoder,
        &encoder.dir().join("borderlens"),
        &mut |done, total| {
            if !started {
                bars.start(
                    "encoding the nomenclature and the labelled descriptions (once per encoder)",
                    Some(total as u64),
                );
                started = true;
            }
            bars.advance(done as u64);
        },
    )?;
    bars.finish();
    Ok(m)
}

#[derive(Args)]
pub struct SuggestArgs {
    /// The goods description (`-`: read it from standard input).
    text: String,
    /// Candidates to list.
    #[arg(short = 'k', long, default_value_t = 5)]
    k: usize,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    encoder: EncoderArg,
}

#[derive(Args)]
pub struct CheckArgs {
    /// The declared code: 2, 4, 6, 8 or 10 digits, dots allowed (3920.62.0000).
    #[arg(long)]
    declared: String,
    /// The goods description (`-`: read it from standard input).
    text: String,
    /// Candidates to list.
    #[arg(short = 'k', long, default_value_t = 3)]
    k: usize,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    encoder: EncoderArg,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The sender's description.
    sender: String,
    /// The cleaned description.
    cleaned: String,
    #[command(flatten)]
    model: ModelArg,
}

#[derive(Args)]
pub struct BatchArgs {
    /// CSV file with a header.
    file: PathBuf,
    /// Header of the description column.
    #[arg(long, default_value = "description")]
    column: String,
    /// Header of a declared-code column: adds the mismatch.
    #[arg(long)]
    declared_column: Option<String>,
    /// Header of a cleaned-description column: adds the sender-vs-cleaned disagreement.
    #[arg(long)]
    cleaned_column: Option<String>,
    /// Output file; `.jsonl` writes JSON Lines, anything else CSV (default: CSV on stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Candidates per row.
    #[arg(short = 'k', long, default_value_t = 3)]
    k: usize,
    #[command(flatten)]
    model: ModelArg,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// Folder with cross_atlas_validation.jsonl (CBP rulings).
    #[arg(long, default_value = "../shared/data/hs")]
    data: PathBuf,
    /// Seed of the code swaps of the mismatch figures.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[command(flatten)]
    model: ModelArg,
    #[command(flatten)]
    encoder: EncoderArg,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Where to write the model (the repository's is crates/hs/model/hs-lexical.bin).
    #[arg(long, default_value = "hs-lexical.bin")]
    out: PathBuf,
    /// Seed of the vague detector's training order.
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn unreadable(s: &Suggestion) -> bool {
    matches!(s.status, Status::CannotRead | Status::Empty)
}

fn print_suggestion(s: &Suggestion) -> anyhow::Result<()> {
    outln!("{}", s.message);
    if s.candidates.is_empty() {
        return Ok(());
    }
    let mut t = table(&["code", "probability", "text"]);
    for c in &s.candidates {
        t.add_row(vec![
            c.code.clone(),
            pct(c.probability),
            c.text.chars().take(70).collect(),
        ]);
    }
    outln!("{t}");
    let line = |cs: &[borderlens_hs::model::Candidate]| {
        cs.iter()
            .map(|c| format!("{} {}", c.code, pct(c.probability)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    outln!("headings: {}", line(&s.headings));
    outln!("chapters: {}", line(&s.chapters));
    if let Some(v) = s.vague_probability {
        outln!("vague: {}", pct(v));
    }
    outln!("model: {}", s.model);
    Ok(())
}

pub fn run(command: &HsCommand, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    match command {
        HsCommand::Suggest(a) => {
            let model = a.model.load()?;
            let text = description(&a.text)?;
            let k = a.k.clamp(1, 100);
            let s = match a.encoder.load()? {
                Some(enc) => combined(&model, &enc, bars)?.suggest(&text, k)?,
                None => model.suggest(&text, k),
            };
            if json {
                print_json(&s)?;
            } else {
                print_suggestion(&s)?;
            }
            Ok(if unreadable(&s) {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        HsCommand::Check(a) => {
            let model = a.model.load()?;
            let declared = Nomenclature::hs2022().parse_code(&a.declared)?;
            let text = description(&a.text)?;
            let k = a.k.clamp(1, 100);
            let c = match a.encoder.load()? {
                Some(enc) => combined(&model, &enc, bars)?.check(declared, &text, k)?,
                None => model.check(declared, &text, k),
            };
            if json {
                print_json(&c)?;
            } else {
                outln!("declared: {}", c.declared);
                match &c.mismatch {
                    None => outln!("no mismatch: {}", c.suggestion.message),
                    Some(m) => {
                        let mut t = table(&["level", "mismatch (1 − P(declared))", "reads as"]);
                        t.add_row(vec![
                            "chapter".into(),
                            format!("{:.3}", m.chapter),
                            format!("{} {}", m.best_chapter.0, pct(m.best_chapter.1)),
                        ]);
                        if let Some(h) = m.heading {
                            t.add_row(vec![
                                "heading".into(),
                                format!("{h:.3}"),
                                format!("{} {}", m.best_heading.0, pct(m.best_heading.1)),
                            ]);
                        }
                        if let Some(s) = m.hs6 {
                            t.add_row(vec![
                                "6-digit".into(),
                                format!("{s:.3}"),
                                format!("{} {}", m.best_hs6.0, pct(m.best_hs6.1)),
                            ]);
                        }
                        outln!("{t}");
                        print_suggestion(&c.suggestion)?;
                    }
                }
            }
            Ok(if c.mismatch.is_none() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        HsCommand::Compare(a) => {
            let model = a.model.load()?;
            let c = model.compare(&a.sender, &a.cleaned);
            if json {
                print_json(&c)?;
            } else {
                outln!("sender:  {}", c.sender.message);
                outln!("cleaned: {}", c.cleaned.message);
                match &c.disagreement {
                    Some(d) => outln!(
                        "disagreement (total variation): chapter {:.3}, heading {:.3}, 6-digit {:.3}",
                        d.chapter,
                        d.heading,
                        d.hs6
                    ),
                    None => outln!("no disagreement score: a description cannot be read"),
                }
            }
            Ok(if c.disagreement.is_none() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        HsCommand::Batch(a) => {
            let model = a.model.load()?;
            let input =
                File::open(&a.file).with_context(|| format!("cannot open {}", a.file.display()))?;
            let format = match a
                .out
                .as_ref()
                .and_then(|p| p.extension())
                .and_then(|e| e.to_str())
            {
                Some("jsonl") | Some("ndjson") => Format::Jsonl,
                _ => Format::Csv,
            };
            let options = BatchOptions {
                column: a.column.clone(),
                declared_column: a.declared_column.clone(),
                cleaned_column: a.cleaned_column.clone(),
                k: a.k.clamp(1, 100),
                format,
            };
            bars.start("hs batch: rows", None);
            let mut tick = |rows: u64| {
                bars.advance(rows);
                !bars.interrupted()
            };
            let reader = BufReader::new(input);
            let summary = match &a.out {
                Some(path) => {
                    let out = File::create(path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    batch::run(&model, reader, BufWriter::new(out), &options, &mut tick)
                }
                None => batch::run(
                    &model,
                    reader,
                    BufWriter::new(std::io::stdout().lock()),
                    &options,
                    &mut tick,
                ),
            }
            .with_context(|| format!("{}", a.file.display()))?;
            bars.finish();
            if json || a.out.is_some() {
                if json {
                    print_json(&summary)?;
                } else {
                    eprintln!(
                        "{} rows: {} classified, {} need more detail, {} uncertain, {} too vague, {} cannot be read, {} bad codes, {} bad rows",
                        summary.rows,
                        summary.classified,
                        summary.needs_more_detail,
                        summary.uncertain,
                        summary.too_vague,
                        summary.cannot_read,
                        summary.bad_codes,
                        summary.bad_rows
                    );
                }
            }
            Ok(if summary.bad_codes + summary.bad_rows > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        HsCommand::Evaluate(a) => {
            let model = a.model.load()?;
            let options = EvalOptions {
                cbp_dir: Some(a.data.clone()),
                seed: a.seed,
            };
            let encoder = a.encoder.load()?;
            let mut phase = String::new();
            let report =
                eval::evaluate(&model, encoder.as_ref(), &options, &mut |p, done, total| {
                    if p != phase {
                        bars.finish();
                        bars.start(p, Some(total));
                        phase = p.to_string();
                    }
                    bars.advance(done);
                    !bars.interrupted()
                })?;
            bars.finish();
            if json {
                print_json(&report)?;
            } else {
                print_evaluation(&report)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        HsCommand::Train(a) => {
            let started = Instant::now();
            bars.start("training the HS model", None);
            let model = HsModel::train(a.seed)?;
            bars.finish();
            model.save(&a.out)?;
            let size = std::fs::metadata(&a.out).map(|m| m.len()).unwrap_or(0);
            let seconds = started.elapsed().as_secs_f64();
            if json {
                print_json(&serde_json::json!({
                    "model": model.id(), "file": a.out, "bytes": size, "seconds": seconds,
                    "calibration": model.calibration, "training": model.training,
                }))?;
            } else {
                outln!(
                    "model {} written to {} ({} bytes) in {seconds:.1} s",
                    model.id(),
                    a.out.display(),
                    size
                );
                for f in &model.training.files {
                    outln!(
                        "{}: {} rows, {} kept, {} skipped",
                        f.file,
                        f.rows,
                        f.kept,
                        f.skipped
                    );
                    for s in &f.first_skipped {
                        outln!("    {s}");
                    }
                }
                let cal = &model.calibration;
                outln!(
                    "calibration: chapter {:?}, heading {:?}, 6-digit {:?}, held-out NLL {:.3}, fitted on {}",
                    cal.chapter, cal.heading, cal.hs6, cal.nll, model.training.calibration_source
                );
                let v = &model.training.vague;
                outln!(
                    "vague detector (held out: {} vague, {} specific): ROC-AUC {:.3}, precision {:.3}, recall {:.3} at 0.5",
                    v.held_out.0, v.held_out.1, v.auc, v.precision, v.recall
                );
            }
            if !a.out.exists() {
                bail!("{} was not written", a.out.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_evaluation(r: &EvalReport) -> anyhow::Result<()> {
    outln!("model {}", r.model);
    if let Some(e) = &r.encoder {
        outln!("encoder {e}");
    }
    for set in &r.sets {
        outln!("\n{}\n  {}", set.name, set.setup);
        let mut t = table(&[
            "model", "n", "ch top1", "ch top3", "hd top1", "hd top3", "6d top1", "6d top3", "ECE",
            "NLL",
        ]);
        for m in &set.results {
            let x = &m.metrics;
            t.add_row(vec![
                m.model.clone(),
                x.n.to_string(),
                pct(x.chapter_top1),
                pct(x.chapter_top3),
                pct(x.heading_top1),
                pct(x.heading_top3),
                pct(x.hs6_top1),
                pct(x.hs6_top3),
                format!("{:.3}", x.ece),
                format!("{:.2}", x.nll),
            ]);
        }
        outln!("{t}");
        for m in &set.results {
            let bands: Vec<String> = m
                .backoff
                .iter()
                .map(|b| match b.accuracy {
                    Some(a) => format!("{} {} (right {})", b.band, pct(b.share), pct(a)),
                    None => format!("{} {}", b.band, pct(b.share)),
                })
                .collect();
            outln!("  back-off ({}): {}", m.model, bands.join("; "));
        }
        for n in &set.not_run {
            outln!("  not run: {n}");
        }
    }
    if let Some(why) = &r.cbp_missing {
        outln!("\nCBP rulings not scored: {why}");
    }
    for m in &r.mismatch {
        outln!("\nmismatch: {}", m.setup);
        let mut t = table(&[
            "score",
            "chapter swaps AUC",
            "within-chapter AUC (heading)",
            "within-chapter AUC (6-digit)",
            "threshold (≤10% of correct)",
            "correct flagged",
            "known-wrong flagged",
        ]);
        t.add_row(vec![
            "1 − P(declared)".to_string(),
            format!("{:.4}", m.chapter_swap_auc),
            format!("{:.4}", m.within_chapter_auc_heading),
            format!("{:.4}", m.within_chapter_auc_hs6),
            format!("{:.4}", m.threshold),
            pct(m.correct_flagged),
            format!("{} of {}", m.wrong_pairs_flagged, m.wrong_pairs),
        ]);
        let l = &m.log_ratio;
        t.add_row(vec![
            "ln P(best)/P(declared)".to_string(),
            format!("{:.4}", l.chapter_swap_auc),
            format!("{:.4}", l.within_chapter_auc_heading),
            format!("{:.4}", l.within_chapter_auc_hs6),
            format!("{:.4}", l.threshold),
            pct(l.correct_flagged),
            format!("{} of {}", l.wrong_pairs_flagged, m.wrong_pairs),
        ]);
        outln!("{t}");
    }
    if let Some(m) = r.mismatch.first() {
        let mut t = table(&[
            "known-wrong description",
            "declared",
            "reads as",
            "1 − P",
            "ln ratio",
            "flagged (1 − P / ratio)",
        ]);
        for p in &m.pairs {
            t.add_row(vec![
                p.text.chars().take(40).collect(),
                p.declared.clone(),
                p.reads_as.clone().unwrap_or_else(|| "cannot read".into()),
                p.chapter_mismatch
                    .map(|v| format!("{v:.3}"))
                    .unwrap_or_default(),
                p.chapter_log_ratio
                    .map(|v| format!("{v:.2}"))
                    .unwrap_or_default(),
                format!(
                    "{} / {}",
                    if p.flagged { "yes" } else { "no" },
                    if p.flagged_log_ratio { "yes" } else { "no" }
                ),
            ]);
        }
        outln!("known-wrong pairs under the first model above:\n{t}");
    }
    let mut t = table(&[
        "micro benchmark language",
        "cases",
        "routed to review",
        "with an HS 2022 code",
        "6d top1",
        "6d top3",
    ]);
    for (lang, n, routed, coded, top1, top3) in &r.micro.languages {
        t.add_row(vec![
            lang.clone(),
            n.to_string(),
            routed.to_string(),
            coded.to_string(),
            top1.to_string(),
            top3.to_string(),
        ]);
    }
    outln!("\n{t}");
    let v = &r.vague;
    outln!(
        "vague detector (held out: {} vague, {} specific): ROC-AUC {:.3}, precision {:.3}, recall {:.3} at 0.5",
        v.held_out.0,
        v.held_out.1,
        v.auc,
        v.precision,
        v.recall
    );
    outln!("\npublished anchors (other systems, same tasks):");
    for a in &r.anchors {
        outln!("  {}: {}", a.what, a.figure);
    }
    Ok(())
}
