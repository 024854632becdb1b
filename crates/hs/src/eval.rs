//! The evaluation harness behind `borderlens hs evaluate`: top-1 and top-3 at chapter, heading
//! and subheading, calibration (ECE, NLL) and the back-off bands, for each model that runs, on
//! UK descriptions held out by source and on CBP rulings; the mismatch score's ROC-AUC on
//! swapped codes and the known-wrong pairs; the readability check on the micro benchmark; the
//! published anchors beside.
//!
//! Nothing here is tuned on the CBP rulings: they are only scored.

use std::path::PathBuf;

use serde::Serialize;

use crate::data::{self, Labelled, Source};
use crate::lexical::{LexicalConfig, LexicalIndex};
use crate::model::{self, examples_of, held_out_scores, in_split, mismatch, HsModel, Status};
use crate::nomenclature::{Code, Nomenclature};
use crate::scoring::{
    expected_calibration_error, roc_auc, Calibration, LevelScores, Probabilities,
};
use crate::semantic::{CachedEncoder, Combined, SemanticIndex, TextEncoder};
use crate::vague::{VagueReport, XorShift};
use crate::HsError;

/// What to evaluate.
pub struct EvalOptions {
    /// Folder with `cross_atlas_validation.jsonl` (CBP rulings); `None` skips them.
    pub cbp_dir: Option<PathBuf>,
    /// Seed of the code swaps.
    pub seed: u64,
}

/// Top-k accuracies and calibration of one model on one test set.
#[derive(Clone, Debug, Serialize, Default)]
pub struct TopK {
    /// Descriptions scored.
    pub n: usize,
    /// Chapter top-1.
    pub chapter_top1: f64,
    /// Chapter top-3.
    pub chapter_top3: f64,
    /// Heading top-1.
    pub heading_top1: f64,
    /// Heading top-3.
    pub heading_top3: f64,
    /// Subheading top-1.
    pub hs6_top1: f64,
    /// Subheading top-3.
    pub hs6_top3: f64,
    /// Expected calibration error of the top-1 subheading probability (15 bins).
    pub ece: f64,
    /// Mean negative log-likelihood of the true subheading.
    pub nll: f64,
}

/// One back-off band: descriptions the rule put there and how often the code given was right.
#[derive(Clone, Debug, Serialize)]
pub struct Band {
    /// classified, needs_more_detail (heading), needs_more_detail (chapter), uncertain.
    pub band: String,
    /// Share of the descriptions.
    pub share: f64,
    /// Share of those whose code (at the band's level) is right.
    pub accuracy: Option<f64>,
}

/// One model on one test set.
#[derive(Clone, Debug, Serialize)]
pub struct ModelResult {
    /// lexical, semantic, combination.
    pub model: String,
    /// The figures.
    pub metrics: TopK,
    /// The back-off rule's bands.
    pub backoff: Vec<Band>,
}

/// A test set.
#[derive(Clone, Debug, Serialize)]
pub struct SetReport {
    /// Its name.
    pub name: String,
    /// What was indexed and what was held out.
    pub setup: String,
    /// The models that ran.
    pub results: Vec<ModelResult>,
    /// Models that did not run, with why.
    pub not_run: Vec<String>,
}

/// Mismatch figures.
#[derive(Clone, Debug, Serialize)]
pub struct MismatchReport {
    /// Where the pairs come from.
    pub setup: String,
    /// Correctly coded pairs.
    pub n: usize,
    /// ROC-AUC of the chapter mismatch: declared code swapped to another chapter vs correct.
    pub chapter_swap_auc: f64,
    /// ROC-AUC of the heading mismatch: swapped to another subheading of the same chapter.
    pub within_chapter_auc_heading: f64,
    /// ROC-AUC of the subheading mismatch on the same swaps.
    pub within_chapter_auc_hs6: f64,
    /// Swaps within the chapter scored (chapters with one subheading have none).
    pub within_chapter_n: usize,
    /// Chapter-mismatch threshold flagging at most 10% of correctly coded items.
    pub threshold: f64,
    /// Share of correctly coded items it flags.
    pub correct_flagged: f64,
    /// The same figures for the log-ratio form of the mismatch, ln(P(best) / P(declared)).
    pub log_ratio: ScoreFigures,
    /// Known-wrong UK pairs flagged at that threshold.
    pub wrong_pairs_flagged: usize,
    /// Known-wrong pairs read.
    pub wrong_pairs: usize,
    /// Each known-wrong pair.
    pub pairs: Vec<WrongPairResult>,
}

/// ROC-AUCs and the operating point of one form of the mismatch score.
#[derive(Clone, Debug, Serialize)]
pub struct ScoreFigures {
    /// Chapter swaps.
    pub chapter_swap_auc: f64,
    /// Swaps within the chapter, heading level.
    pub within_chapter_auc_heading: f64,
    /// Swaps within the chapter, 6-digit level.
    pub within_chapter_auc_hs6: f64,
    /// Threshold flagging at most 10% of correctly coded items (chapter level).
    pub threshold: f64,
    /// Share of correctly coded items flagged.
    pub correct_flagged: f64,
    /// Known-wrong pairs flagged.
    pub wrong_pairs_flagged: usize,
}

/// The smallest threshold with at most 10% of `correct` strictly above it, and the share above.
fn operating_point(correct: &mut [f64]) -> (f64, f64) {
    correct.sort_by(|a, b| a.total_cmp(b));
    if correct.is_empty() {
        return (f64::INFINITY, 0.0);
    }
    let t = correct[((correct.len() as f64 * 0.9).ceil() as usize).min(correct.len()) - 1];
    (
        t,
        correct.iter().filter(|&&m| m > t).count() as f64 / correct.len() as f64,
    )
}

/// A known-wrong pair scored.
#[derive(Clone, Debug, Serialize)]
pub struct WrongPairResult {
    /// Description.
    pub text: String,
    /// Declared code.
    pub declared: String,
    /// Chapter mismatch.
    pub chapter_mismatch: Option<f64>,
    /// ln(P(best chapter) / P(declared chapter)).
    pub chapter_log_ratio: Option<f64>,
    /// Chapter the description reads as.
    pub reads_as: Option<String>,
    /// Flagged by 1 − P(declared).
    pub flagged: bool,
    /// Flagged by the log ratio.
    pub flagged_log_ratio: bool,
}

/// The readability check and the lexical model on the micro benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct MicroReport {
    /// Per language: cases, routed to review ("cannot read"), cases with an HS 2022 code, top-1
    /// and top-3 subheading hits among those.
    pub languages: Vec<(String, usize, usize, usize, usize, usize)>,
}

/// A published figure to compare with.
#[derive(Clone, Debug, Serialize)]
pub struct Anchor {
    /// What and where.
    pub what: &'static str,
    /// The figure.
    pub figure: &'static str,
}

/// Everything `hs evaluate` measures.
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    /// The model evaluated on CBP rulings and the micro benchmark.
    pub model: String,
    /// The encoder, when one ran.
    pub encoder: Option<String>,
    /// Test sets.
    pub sets: Vec<SetReport>,
    /// Why the CBP rulings were not scored, if they were not.
    pub cbp_missing: Option<String>,
    /// Mismatch figures per test set (the known-wrong pairs under each set's model and threshold).
    pub mismatch: Vec<MismatchReport>,
    /// Micro benchmark.
    pub micro: MicroReport,
    /// The vague detector's held-out figures (from training).
    pub vague: VagueReport,
    /// Published anchors.
    pub anchors: Vec<Anchor>,
}

/// The published figures the issue compares with.
pub fn anchors() -> Vec<Anchor> {
    vec![
        Anchor {
            what: "CBP rulings (ATLAS test split), 6-digit top-1: fine-tuned Llama-3.3-70B",
            figure: "57.5%",
        },
        Anchor {
            what: "CBP rulings, 6-digit top-1: GPT-5",
            figure: "55.5%",
        },
        Anchor {
            what: "CBP rulings, 6-digit top-1: sentence-embedding kNN over the nomenclature",
            figure: "15.9%",
        },
        Anchor {
            what: "CBP rulings, 6-digit top-1: TF-IDF",
            figure: "8.4%",
        },
        Anchor {
            what: "UK parcels, random 80/20, TF-IDF + linear SVM, chapter/heading/6-digit top-1",
            figure: "67.5/50.3/33.0%",
        },
        Anchor {
            what: "UK parcels, random 80/20, with the nomenclature, 6-digit top-3",
            figure: "56.5%",
        },
        Anchor {
            what: "Declared-code check, cosine to code centroids, chapter swaps ROC-AUC",
            figure: "0.968",
        },
    ]
}

/// Accumulates top-k, calibration and back-off figures.
#[derive(Default)]
struct Tally {
    n: usize,
    hits: [usize; 6],
    conf: Vec<(f64, bool)>,
    nll: f64,
    bands: [(usize, usize); 4],
}

impl Tally {
    fn add(&mut self, nom: &Nomenclature, p: &Probabilities, y: usize) {
        let h = nom.hs6_heading[y];
        let c = nom.heading_chapter[h];
        let t6 = Probabilities::top(&p.p6, 3);
        let t4 = Probabilities::top(&p.p4, 3);
        let t2 = Probabilities::top(&p.p2, 3);
        self.n += 1;
        let hit = [
            t2[0] == c,
            t2.contains(&c),
            t4[0] == h,
            t4.contains(&h),
            t6[0] == y,
            t6.contains(&y),
        ];
        for (k, ok) in hit.iter().enumerate() {
            self.hits[k] += *ok as usize;
        }
        self.conf.push((p.p6[t6[0]], t6[0] == y));
        self.nll -= p.p6[y].max(1e-300).ln();
        let (band, ok) = if p.p6[t6[0]] >= model::SURE {
            (0, t6[0] == y)
        } else if p.p4[t4[0]] >= model::SURE {
            (1, t4[0] == h)
        } else if p.p2[t2[0]] >= model::SURE {
            (2, t2[0] == c)
        } else {
            (3, false)
        };
        self.bands[band].0 += 1;
        self.bands[band].1 += ok as usize;
    }

    fn result(&self, name: &str) -> ModelResult {
        let n = self.n.max(1) as f64;
        let r = |k: usize| self.hits[k] as f64 / n;
        let names = [
            "classified (6-digit)",
            "needs more detail (heading)",
            "needs more detail (chapter)",
            "uncertain",
        ];
        ModelResult {
            model: name.into(),
            metrics: TopK {
                n: self.n,
                chapter_top1: r(0),
                chapter_top3: r(1),
                heading_top1: r(2),
                heading_top3: r(3),
                hs6_top1: r(4),
                hs6_top3: r(5),
                ece: expected_calibration_error(&self.conf, 15),
                nll: self.nll / n,
            },
            backoff: (0..4)
                .map(|b| Band {
                    band: names[b].into(),
                    share: self.bands[b].0 as f64 / n,
                    accuracy: (b < 3 && self.bands[b].0 > 0)
                        .then(|| self.bands[b].1 as f64 / self.bands[b].0 as f64),
                })
                .collect(),
        }
    }
}

/// Progress callback: (phase, done, total) → keep going?
pub type ProgressFn<'a> = dyn FnMut(&str, u64, u64) -> bool + 'a;

fn step(
    progress: &mut ProgressFn<'_>,
    phase: &str,
    done: usize,
    total: usize,
) -> Result<(), HsError> {
    if progress(phase, done as u64, total as u64) {
        Ok(())
    } else {
        Err(HsError::Interrupted)
    }
}

fn indexed(nom: &Nomenclature, rows: &[&Labelled]) -> Vec<(usize, usize)> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, l)| nom.hs6_idx(l.hs6).map(|y| (i, y)))
        .collect()
}

/// Calibrations fitted in the source-held-out split A, reused for the CBP rulings.
struct Fitted {
    lexical: Calibration,
    semantic: Option<Calibration>,
    combined: Option<Calibration>,
}

fn uk_split<E: TextEncoder + ?Sized>(
    name: &str,
    setup: &str,
    index_rows: &[&Labelled],
    held: &[&Labelled],
    encoder: Option<&E>,
    progress: &mut ProgressFn<'_>,
) -> Result<
    (
        SetReport,
        Fitted,
        LexicalIndex,
        Calibration,
        Vec<&'static str>,
    ),
    HsError,
> {
    let nom = Nomenclature::hs2022();
    let config = LexicalConfig::default();
    let index = LexicalIndex::build(nom, &examples_of(nom, index_rows), &config);
    let (fit, test): (Vec<&Labelled>, Vec<&Labelled>) = held
        .iter()
        .partition(|l| in_split(&l.text, "calibration", 0.5));
    let lexical = Calibration::fit(
        nom,
        &held_out_scores(&index, nom, &fit),
        &Calibration::start(1),
    );
    let mut tally = Tally::default();
    for (k, (i, y)) in indexed(nom, &test).into_iter().enumerate() {
        let s = index.level_scores(&test[i].text);
        tally.add(nom, &lexical.probabilities(nom, &[&s]), y);
        if k % 100 == 0 {
            step(progress, name, k, test.len())?;
        }
    }
    let mut results = vec![tally.result("lexical")];
    let mut not_run = Vec::new();
    let mut fitted = Fitted {
        lexical: lexical.clone(),
        semantic: None,
        combined: None,
    };
    match encoder {
        None => not_run.push("semantic and combination: no sentence encoder given (`hs evaluate --encoder DIR`, see docs/embed.md)".to_string()),
        Some(enc) => {
            let sem = SemanticIndex::build(enc, nom, &examples_of(nom, index_rows), &config, &mut |d, t| {
                let _ = progress("encoding", d as u64, t as u64);
            })?;
            let fit_pairs: Vec<(&str, usize)> =
                indexed(nom, &fit).into_iter().map(|(i, y)| (fit[i].text.as_str(), y)).collect();
            let test_pairs: Vec<(&str, usize)> =
                indexed(nom, &test).into_iter().map(|(i, y)| (test[i].text.as_str(), y)).collect();
            let texts: Vec<&str> = test_pairs.iter().map(|p| p.0).collect();
            let mut alone = Combined { encoder: enc, semantic: sem, lexical: None, calibration: lexical.clone() };
            alone.fit(nom, &fit_pairs)?;
            let mut t = Tally::default();
            for (p, (_, y)) in alone.probabilities(nom, &texts)?.iter().zip(&test_pairs) {
                t.add(nom, p, *y);
            }
            results.push(t.result("semantic"));
            let mut both = Combined { encoder: enc, semantic: alone.semantic, lexical: Some(&index), calibration: lexical.clone() };
            fitted.semantic = Some(alone.calibration.clone());
            both.fit(nom, &fit_pairs)?;
            let mut t = Tally::default();
            for (p, (_, y)) in both.probabilities(nom, &texts)?.iter().zip(&test_pairs) {
                t.add(nom, p, *y);
            }
            results.push(t.result("combination"));
            fitted.combined = Some(both.calibration.clone());
        }
    }
    let report = SetReport {
        name: name.into(),
        setup: format!(
            "{setup}; held-out source split by text hash: {} to fit the calibration, {} scored",
            fit.len(),
            test.len()
        ),
        results,
        not_run,
    };
    Ok((report, fitted, index, lexical, Vec::new()))
}

/// Runs the whole evaluation. `model` is the shipped (or loaded) model, scored on the CBP
/// rulings and the micro benchmark; `encoder`, when given, adds the semantic model and the
/// combination.
pub fn evaluate<E: TextEncoder + ?Sized>(
    model: &HsModel,
    encoder: Option<&E>,
    options: &EvalOptions,
    progress: &mut ProgressFn<'_>,
) -> Result<EvalReport, HsError> {
    // Three semantic indexes share most of their texts: encode each text once.
    let cached = encoder.map(CachedEncoder::new);
    let encoder = cached.as_ref();
    let nom = Nomenclature::hs2022();
    let files = data::uk_shipped(nom);
    let all: Vec<&Labelled> = files.iter().flat_map(|(r, _)| r.iter()).collect();
    let of =
        |s: Source| -> Vec<&Labelled> { all.iter().copied().filter(|l| l.source == s).collect() };
    let not =
        |s: Source| -> Vec<&Labelled> { all.iter().copied().filter(|l| l.source != s).collect() };

    let (set_a, fitted_a, index_a, cal_a, _) = uk_split(
        "UK extra references (held out by source)",
        "index: nomenclature + search references + brands; scored: extra references (real parcel descriptions)",
        &not(Source::ExtraReferences),
        &of(Source::ExtraReferences),
        encoder,
        progress,
    )?;
    let (set_b, _, index_b, cal_b, _) = uk_split(
        "UK search references (held out by source)",
        "index: nomenclature + extra references + brands; scored: search references (colloquial terms)",
        &not(Source::SearchReferences),
        &of(Source::SearchReferences),
        encoder,
        progress,
    )?;
    let mut sets = vec![set_a, set_b];

    // CBP rulings: the shipped model, and the semantic model on the same index data with the
    // calibrations fitted in split A.
    let mut cbp_missing = None;
    let mut cbp: Vec<Labelled> = Vec::new();
    match &options.cbp_dir {
        None => cbp_missing = Some("no CBP folder given".to_string()),
        Some(dir) => {
            let path = dir.join("cross_atlas_validation.jsonl");
            match data::read_cbp(nom, &path) {
                Ok((cbp_rows, report)) => {
                    cbp = cbp_rows.clone();
                    let mut t = Tally::default();
                    for (k, l) in cbp_rows.iter().enumerate() {
                        if let Some(y) = nom.hs6_idx(l.hs6) {
                            t.add(nom, &model.probabilities(&l.text), y);
                        }
                        if k % 50 == 0 {
                            step(progress, "CBP rulings", k, cbp_rows.len())?;
                        }
                    }
                    let mut results = vec![t.result("lexical")];
                    let mut not_run = Vec::new();
                    match encoder {
                        None => not_run.push(
                            "semantic and combination: no sentence encoder given (`hs evaluate --encoder DIR`)"
                                .to_string(),
                        ),
                        Some(enc) => {
                            let sem = SemanticIndex::build(
                                enc,
                                nom,
                                &examples_of(nom, &all),
                                &LexicalConfig::default(),
                                &mut |d, t| {
                                    let _ = progress("encoding", d as u64, t as u64);
                                },
                            )?;
                            let pairs: Vec<(&str, usize)> = cbp_rows
                                .iter()
                                .filter_map(|l| nom.hs6_idx(l.hs6).map(|y| (l.text.as_str(), y)))
                                .collect();
                            let texts: Vec<&str> = pairs.iter().map(|p| p.0).collect();
                            let alone = Combined {
                                encoder: enc,
                                semantic: sem,
                                lexical: None,
                                calibration: fitted_a
                                    .semantic
                                    .clone()
                                    .unwrap_or_else(|| fitted_a.lexical.clone()),
                            };
                            let mut t = Tally::default();
                            for (p, (_, y)) in alone.probabilities(nom, &texts)?.iter().zip(&pairs)
                            {
                                t.add(nom, p, *y);
                            }
                            results.push(t.result("semantic"));
                            let both = Combined {
                                encoder: enc,
                                semantic: alone.semantic,
                                lexical: Some(&model.index),
                                calibration: fitted_a
                                    .combined
                                    .clone()
                                    .unwrap_or_else(|| fitted_a.lexical.clone()),
                            };
                            let mut t = Tally::default();
                            for (p, (_, y)) in both.probabilities(nom, &texts)?.iter().zip(&pairs) {
                                t.add(nom, p, *y);
                            }
                            results.push(t.result("combination"));
                        }
                    }
                    sets.push(SetReport {
                        name: "CBP rulings (ATLAS validation split)".into(),
                        setup: format!(
                            "{}: {} rulings read, {} skipped; the shipped model (never trained or tuned on rulings)",
                            report.file,
                            report.rows,
                            report.skipped.len()
                        ),
                        results,
                        not_run,
                    });
                }
                Err(e) => cbp_missing = Some(e.to_string()),
            }
        }
    }

    let held_a: Vec<&Labelled> = of(Source::ExtraReferences)
        .into_iter()
        .filter(|l| !in_split(&l.text, "calibration", 0.5))
        .collect();
    let held_b: Vec<&Labelled> = of(Source::SearchReferences)
        .into_iter()
        .filter(|l| !in_split(&l.text, "calibration", 0.5))
        .collect();
    let mut mismatch = vec![
        mismatch_report(
            "UK extra references (scored half) under the index without them",
            &index_a,
            &cal_a,
            &held_a,
            options.seed,
            progress,
        )?,
        mismatch_report(
            "UK search references (scored half) under the index without them",
            &index_b,
            &cal_b,
            &held_b,
            options.seed,
            progress,
        )?,
    ];
    if !cbp.is_empty() {
        let rows: Vec<&Labelled> = cbp.iter().collect();
        mismatch.push(mismatch_report(
            "CBP rulings under the shipped model",
            &model.index,
            &model.calibration,
            &rows,
            options.seed,
            progress,
        )?);
    }
    let micro = micro_report(model);
    Ok(EvalReport {
        model: model.id(),
        encoder: encoder.map(|e| e.id()),
        sets,
        cbp_missing,
        mismatch,
        micro,
        vague: model.training.vague.clone(),
        anchors: anchors(),
    })
}

fn mismatch_report(
    setup: &str,
    index: &LexicalIndex,
    cal: &Calibration,
    test: &[&Labelled],
    seed: u64,
    progress: &mut ProgressFn<'_>,
) -> Result<MismatchReport, HsError> {
    let nom = Nomenclature::hs2022();
    let mut rng = XorShift(seed.wrapping_add(0x5eed));
    let n6 = nom.subheadings.len();
    let mut chapter_pairs = Vec::new();
    let mut heading_pairs = Vec::new();
    let mut hs6_pairs = Vec::new();
    let mut correct = Vec::new();
    let mut correct_r = Vec::new();
    let (mut chapter_r, mut heading_r, mut hs6_r) = (Vec::new(), Vec::new(), Vec::new());
    let mut within_n = 0;
    let probs = |text: &str| -> Probabilities {
        let s: LevelScores = index.level_scores(text);
        cal.probabilities(nom, &[&s])
    };
    for (k, l) in test.iter().enumerate() {
        let Some(y) = nom.hs6_idx(l.hs6) else {
            continue;
        };
        let p = probs(&l.text);
        let truth = mismatch(&p, Code::Hs6(l.hs6));
        correct.push(truth.chapter);
        correct_r.push(truth.chapter_log_ratio);
        chapter_pairs.push((truth.chapter, false));
        chapter_r.push((truth.chapter_log_ratio, false));
        let ch = nom.hs6_chapter(y);
        let other = loop {
            let c = (rng.next() % n6 as u64) as usize;
            if nom.hs6_chapter(c) != ch {
                break c;
            }
        };
        let swapped = mismatch(&p, Code::Hs6(nom.hs6_at(other)));
        chapter_pairs.push((swapped.chapter, true));
        chapter_r.push((swapped.chapter_log_ratio, true));
        let same: Vec<usize> = (0..n6)
            .filter(|&c| c != y && nom.hs6_chapter(c) == ch)
            .collect();
        if !same.is_empty() {
            let c = same[(rng.next() % same.len() as u64) as usize];
            let swapped = mismatch(&p, Code::Hs6(nom.hs6_at(c)));
            heading_pairs.push((truth.heading.unwrap_or(0.0), false));
            heading_pairs.push((swapped.heading.unwrap_or(0.0), true));
            hs6_pairs.push((truth.hs6.unwrap_or(0.0), false));
            hs6_pairs.push((swapped.hs6.unwrap_or(0.0), true));
            heading_r.push((truth.heading_log_ratio.unwrap_or(0.0), false));
            heading_r.push((swapped.heading_log_ratio.unwrap_or(0.0), true));
            hs6_r.push((truth.hs6_log_ratio.unwrap_or(0.0), false));
            hs6_r.push((swapped.hs6_log_ratio.unwrap_or(0.0), true));
            within_n += 1;
        }
        if k % 100 == 0 {
            step(progress, "mismatch", k, test.len())?;
        }
    }
    let (threshold, correct_flagged) = operating_point(&mut correct);
    let (threshold_r, correct_flagged_r) = operating_point(&mut correct_r);
    let (wrong, _) = data::wrong_pairs(nom);
    let readable = |t: &str| crate::text::readability(t, &|w| index.knows_word(w)).readable;
    let pairs: Vec<WrongPairResult> = wrong
        .iter()
        .map(|w| {
            if !readable(&w.text) {
                return WrongPairResult {
                    text: w.text.clone(),
                    declared: w.declared.to_string(),
                    chapter_mismatch: None,
                    chapter_log_ratio: None,
                    reads_as: None,
                    flagged: false,
                    flagged_log_ratio: false,
                };
            }
            let m = mismatch(&probs(&w.text), w.declared);
            WrongPairResult {
                text: w.text.clone(),
                declared: w.declared.to_string(),
                chapter_mismatch: Some(m.chapter),
                chapter_log_ratio: Some(m.chapter_log_ratio),
                reads_as: Some(m.best_chapter.0.to_string()),
                flagged: m.chapter > threshold,
                flagged_log_ratio: m.chapter_log_ratio > threshold_r,
            }
        })
        .collect();
    Ok(MismatchReport {
        setup: format!(
            "{setup}: {} descriptions, one swap per description, seed {seed}",
            correct.len()
        ),
        n: correct.len(),
        chapter_swap_auc: roc_auc(&chapter_pairs).unwrap_or(f64::NAN),
        within_chapter_auc_heading: roc_auc(&heading_pairs).unwrap_or(f64::NAN),
        within_chapter_auc_hs6: roc_auc(&hs6_pairs).unwrap_or(f64::NAN),
        within_chapter_n: within_n,
        threshold,
        correct_flagged,
        log_ratio: ScoreFigures {
            chapter_swap_auc: roc_auc(&chapter_r).unwrap_or(f64::NAN),
            within_chapter_auc_heading: roc_auc(&heading_r).unwrap_or(f64::NAN),
            within_chapter_auc_hs6: roc_auc(&hs6_r).unwrap_or(f64::NAN),
            threshold: threshold_r,
            correct_flagged: correct_flagged_r,
            wrong_pairs_flagged: pairs.iter().filter(|p| p.flagged_log_ratio).count(),
        },
        wrong_pairs_flagged: pairs.iter().filter(|p| p.flagged).count(),
        wrong_pairs: pairs.len(),
        pairs,
    })
}

fn micro_report(model: &HsModel) -> MicroReport {
    let nom = Nomenclature::hs2022();
    let (cases, _) = data::micro_cases(nom);
    let mut languages: Vec<(String, usize, usize, usize, usize, usize)> = Vec::new();
    for c in &cases {
        let s = model.suggest(&c.text, 3);
        let routed = matches!(s.status, Status::CannotRead | Status::Empty) as usize;
        let code = c.hs6.map(|h| h.to_string());
        let coded = code.is_some() as usize;
        let top1 = s
            .candidates
            .first()
            .is_some_and(|x| Some(&x.code) == code.as_ref()) as usize;
        let top3 = s.candidates.iter().any(|x| Some(&x.code) == code.as_ref()) as usize;
        match languages.iter_mut().find(|l| l.0 == c.language) {
            Some(l) => {
                l.1 += 1;
                l.2 += routed;
                l.3 += coded;
                l.4 += top1;
                l.5 += top3;
            }
            None => languages.push((c.language.clone(), 1, routed, coded, top1, top3)),
        }
    }
    MicroReport { languages }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::tests::BagOfCharsTestEncoder;

    #[test]
    fn tally_counts_hits_and_bands() {
        let nom = Nomenclature::hs2022();
        let n6 = nom.subheadings.len();
        let mut p6 = vec![0.0; n6];
        p6[0] = 0.9;
        p6[1] = 0.1;
        let mut p4 = vec![0.0; nom.headings.len()];
        let mut p2 = vec![0.0; nom.chapters.len()];
        for (c, p) in p6.iter().enumerate() {
            p4[nom.hs6_heading[c]] += p;
            p2[nom.hs6_chapter(c)] += p;
        }
        let p = Probabilities { p6, p4, p2 };
        let mut t = Tally::default();
        t.add(nom, &p, 0);
        t.add(nom, &p, 1);
        let r = t.result("x");
        assert_eq!(r.metrics.hs6_top1, 0.5);
        assert_eq!(r.metrics.hs6_top3, 1.0);
        assert_eq!(r.backoff[0].share, 1.0);
        assert_eq!(r.backoff[0].accuracy, Some(0.5));
    }

    #[test]
    fn evaluation_runs_every_model_with_a_test_encoder() {
        // The test encoder only checks the plumbing (semantic and combination rows appear).
        let model = HsModel::shipped().unwrap();
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/data/hs"
        ));
        let options = EvalOptions {
            cbp_dir: dir.exists().then_some(dir),
            seed: 7,
        };
        let r = evaluate(
            &model,
            Some(&BagOfCharsTestEncoder),
            &options,
            &mut |_, _, _| true,
        )
        .unwrap();
        assert_eq!(r.sets[0].results.len(), 3);
        assert_eq!(r.sets[0].results[2].model, "combination");
        assert!(
            r.mismatch[1].chapter_swap_auc > 0.8,
            "{:?}",
            r.mismatch[1].chapter_swap_auc
        );
        assert_eq!(r.mismatch[0].wrong_pairs, 14);
        let th = r.micro.languages.iter().find(|l| l.0 == "th").unwrap();
        assert_eq!(th.2, th.1, "every Thai case is routed to review");
        let stopped = evaluate(
            &model,
            None::<&BagOfCharsTestEncoder>,
            &options,
            &mut |_, _, _| false,
        );
        assert!(matches!(stopped, Err(HsError::Interrupted)));
    }
}

#[cfg(test)]
mod tuning {
    use super::*;
    /// Compares index settings by the held-out NLL of the calibration halves only (the scored
    /// halves and the CBP rulings are not looked at). `cargo test -p borderlens-hs tuning -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn settings_by_calibration_nll() {
        let nom = Nomenclature::hs2022();
        let files = data::uk_shipped(nom);
        let all: Vec<&Labelled> = files.iter().flat_map(|(r, _)| r.iter()).collect();
        let variants: Vec<(&str, LexicalConfig)> = vec![
            ("default", LexicalConfig::default()),
            (
                "all postings",
                LexicalConfig {
                    max_df_share: 1.0,
                    ..Default::default()
                },
            ),
            (
                "df 0.05",
                LexicalConfig {
                    max_df_share: 0.05,
                    ..Default::default()
                },
            ),
            (
                "word 0.8",
                LexicalConfig {
                    word_weight: 0.8,
                    ..Default::default()
                },
            ),
            (
                "examples 2",
                LexicalConfig {
                    example_weight: 2.0,
                    ..Default::default()
                },
            ),
            (
                "children 0.5",
                LexicalConfig {
                    child_weight: 0.5,
                    ..Default::default()
                },
            ),
            (
                "keep x2",
                LexicalConfig {
                    keep: [600, 1600, 6000],
                    ..Default::default()
                },
            ),
        ];
        for (name, config) in variants {
            let mut line = format!("{name:12}");
            for held_source in [Source::ExtraReferences, Source::SearchReferences] {
                let index_rows: Vec<&Labelled> = all
                    .iter()
                    .copied()
                    .filter(|l| l.source != held_source)
                    .collect();
                let fit: Vec<&Labelled> = all
                    .iter()
                    .copied()
                    .filter(|l| l.source == held_source && in_split(&l.text, "calibration", 0.5))
                    .collect();
                let index = LexicalIndex::build(nom, &examples_of(nom, &index_rows), &config);
                let cal = Calibration::fit(
                    nom,
                    &held_out_scores(&index, nom, &fit),
                    &Calibration::start(1),
                );
                let mut t = Tally::default();
                for l in &fit {
                    if let Some(y) = nom.hs6_idx(l.hs6) {
                        let s = index.level_scores(&l.text);
                        t.add(nom, &cal.probabilities(nom, &[&s]), y);
                    }
                }
                let r = t.result("x").metrics;
                line += &format!(
                    " | NLL {:.3} ch1 {:.3} 6d1 {:.3} entries {}",
                    cal.nll,
                    r.chapter_top1,
                    r.hs6_top1,
                    index.stored_entries()
                );
            }
            println!("{line}");
        }
    }
}
