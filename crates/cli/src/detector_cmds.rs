//! `borderlens nii train | evaluate | detect`: the X-ray threat detector over
//! `borderlens_nii::detector`. Parsing and printing only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app::{self as app, Progress};
use borderlens_nii::coco::CocoSource;
use borderlens_nii::detector::eval::{evaluate, Evaluation};
use borderlens_nii::detector::train::TrainOptions;
use borderlens_nii::detector::{overlay_png, read_view, Detector, DEFAULT_MIN_SCORE};
use borderlens_nii::library::{AnnotationRecord, AnnotationRole};
use clap::Args;
use serde_json::json;

use crate::nii_cmds::{open, table};
use crate::output::outln;
use crate::progress::Bars;

#[derive(Args)]
pub struct TrainArgs {
    /// Library folder to train on.
    #[arg(long)]
    library: PathBuf,
    /// Model folder to write (detector.safetensors + detector.json); must not hold a model.
    #[arg(long)]
    out: PathBuf,
    /// Where the boxes come from: truth (generated and projected scans), consensus (the
    /// annotators' merged boxes), or an annotator's name.
    #[arg(long, default_value = "truth")]
    labels: String,
    /// Held-out library to evaluate on before saving (repeatable); its figures are kept with the
    /// model.
    #[arg(long = "eval")]
    eval: Vec<PathBuf>,
    #[command(flatten)]
    settings: TrainSettings,
}

/// How the detector trains, for `nii train` and `nii retrain`.
#[derive(Args)]
pub struct TrainSettings {
    /// Passes over the training views.
    #[arg(long, default_value_t = TrainOptions::default().epochs)]
    epochs: usize,
    /// Seed of the weights, the order of views and their flips (same seed, same model).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The network's input side, pixels (a multiple of 16).
    #[arg(long, default_value_t = TrainOptions::default().side)]
    side: usize,
    /// Channels of the network's first layer.
    #[arg(long, default_value_t = TrainOptions::default().width)]
    width: usize,
    /// Views per step.
    #[arg(long, default_value_t = TrainOptions::default().batch)]
    batch: usize,
    /// Peak learning rate (AdamW; linear warm-up, cosine decay).
    #[arg(long, default_value_t = TrainOptions::default().learning_rate)]
    learning_rate: f64,
    /// The trunk's deepest stride: 16 (two more layers, a receptive field over the largest
    /// threats) or 8 (the first models' network).
    #[arg(long, default_value_t = TrainOptions::default().deepest_stride)]
    deepest_stride: usize,
}

impl TrainSettings {
    /// The training options (flips, transposition and layer normalisation on), checked.
    fn options(&self) -> anyhow::Result<TrainOptions> {
        let options = TrainOptions {
            epochs: self.epochs,
            batch: self.batch,
            learning_rate: self.learning_rate,
            seed: self.seed,
            side: self.side,
            width: self.width,
            flips: true,
            transpose: true,
            norm: true,
            deepest_stride: self.deepest_stride,
        };
        options.validate().map_err(anyhow::Error::msg)?;
        Ok(options)
    }
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Labelled library the model did not train on.
    #[arg(long)]
    library: PathBuf,
    /// Where the true boxes come from: truth, consensus or an annotator's name.
    #[arg(long, default_value = "truth")]
    labels: String,
    /// Keep the figures in the model's detector.json.
    #[arg(long)]
    save: bool,
}

#[derive(Args)]
pub struct DetectArgs {
    /// Model folder.
    #[arg(long)]
    model: PathBuf,
    /// Library holding the scans.
    #[arg(long)]
    library: PathBuf,
    /// Scans to look at (ids); every view of each.
    #[arg(required = true)]
    scans: Vec<String>,
    /// Lowest score reported.
    #[arg(long, default_value_t = DEFAULT_MIN_SCORE)]
    min_score: f64,
    /// Folder for detections.json and one heat-map PNG per detection
    /// (<scan>-v<view>-<n>-<class>.png: the scan in grey, the Grad-CAM heat map, the box).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also store the detections (score at least --min-score; 0.3 is a reasonable start) in the
    /// library as the pre-annotation of the source `model:<model id>`, role machine: offered to
    /// annotators, never counted in the consensus, the agreement or the scan package.
    #[arg(long)]
    pre_annotate: bool,
}

fn set_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn evaluate_on(
    detector: &Detector,
    path: &Path,
    labels: &CocoSource,
    bars: &Bars,
) -> anyhow::Result<Option<Evaluation>> {
    let library = open(path)?;
    let name = set_name(path);
    bars.start(&format!("evaluating on {name}"), None);
    let result = evaluate(
        detector,
        &library,
        labels,
        &name,
        &|done, _| bars.advance(done),
        &|| bars.interrupted(),
    );
    bars.finish();
    Ok(result?)
}

fn f3(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

fn print_evaluation(e: &Evaluation) -> anyhow::Result<()> {
    outln!(
        "{}: {} views ({} with a threat, {} without), labels '{}'; mAP@0.5 {}",
        e.set,
        e.views,
        e.threat_views,
        e.clean_views,
        e.label_source,
        f3(e.map50)
    );
    let mut t = table(&["class", "objects", "detections", "AP@0.5"]);
    for c in &e.per_class {
        t.add_row([
            c.class.clone(),
            c.objects.to_string(),
            c.detections.to_string(),
            f3(c.ap),
        ]);
    }
    outln!("{t}");
    for o in &e.operating_points {
        outln!(
            "at {:.0} % false alarms per view (alarm above {:.3}; reached {:.1} %): {:.1} % of views with a threat alarm, {:.1} % of objects found",
            o.false_alarm_target * 100.0,
            o.threshold,
            o.false_alarm_rate * 100.0,
            o.detection_rate * 100.0,
            o.object_recall * 100.0
        );
    }
    outln!(
        "Grad-CAM pointing game: {} of {} true positives above {:.3} ({})",
        e.pointing_game.hits,
        e.pointing_game.total,
        e.pointing_game.min_score,
        f3(e.pointing_game.rate)
    );
    if e.unknown_class_objects > 0 {
        outln!(
            "{} true object(s) of classes the model does not know were not counted",
            e.unknown_class_objects
        );
    }
    outln!(
        "{:.1} views/s through the network, {:.1} views/s from PNG to detections",
        e.network_views_per_second,
        e.end_to_end_views_per_second
    );
    Ok(())
}

#[derive(Args)]
pub struct RetrainArgs {
    /// Library folder whose corrected set is trained on (its models are in LIB/models/).
    #[arg(long)]
    library: PathBuf,
    /// Held-out library both the new and the active model are evaluated on.
    #[arg(long)]
    held_out: PathBuf,
    #[command(flatten)]
    settings: TrainSettings,
}

#[derive(Args)]
pub struct ModelsArgs {
    /// Library folder.
    #[arg(long)]
    library: PathBuf,
}

fn figures_cells(f: &borderlens_nii::review::Figures) -> [String; 4] {
    [
        f3(f.map50),
        f3(f.detection_rate_1),
        f3(f.detection_rate_5),
        f3(f.pointing_game),
    ]
}

/// `actor` (the global `--actor`) is written in the registry as who asked.
pub fn retrain(a: &RetrainArgs, actor: &str, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    let mut config = app::DeskConfig::new(a.library.clone());
    config.held_out = Some(a.held_out.clone());
    config.train = a.settings.options()?;
    let desk = app::NiiDesk::new(config)?;
    desk.claim_retrain(actor)?;
    let retrained = match desk.retrain(actor, bars) {
        Ok(r) => r,
        Err(app::JobError::Interrupted) => {
            eprintln!("borderlens: interrupted; no model registered");
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(e).context("retraining"),
    };
    let e = &retrained.entry;
    if json {
        outln!("{}", serde_json::to_string_pretty(&retrained)?);
    } else {
        outln!(
            "model {} registered in {}: trained on {} views ({}) in {:.0} s",
            e.model_id,
            a.library.join(borderlens_nii::review::MODELS_DIR).display(),
            e.training_views,
            e.label_source,
            e.training_seconds
        );
        let mut t = table(&["model", "mAP@0.5", "1 % FA", "5 % FA", "pointing"]);
        let [m, r1, r5, p] = figures_cells(&e.figures);
        t.add_row(vec![format!("{} (new)", e.model_id), m, r1, r5, p]);
        if let Some((id, f)) = &e.compared_with {
            let [m, r1, r5, p] = figures_cells(f);
            t.add_row(vec![format!("{id} (active)"), m, r1, r5, p]);
        }
        outln!("on {}:\n{t}", e.evaluated_on);
        outln!(
            "{}: {}",
            if e.promoted {
                "now active"
            } else {
                "kept, not active"
            },
            e.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn models(a: &ModelsArgs, json: bool) -> anyhow::Result<ExitCode> {
    let library = open(&a.library)?;
    let registry = borderlens_nii::review::Registry::open(&a.library)?;
    let figures = borderlens_nii::review::review_figures(&library);
    let active = registry.active().map(|e| e.model_id.clone());
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "active": active,
                "models": registry.entries(),
                "review": figures,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut t = table(&[
        "model",
        "status",
        "registered",
        "views",
        "mAP@0.5",
        "1 % FA",
        "5 % FA",
        "pointing",
    ]);
    for e in registry.entries().iter().rev() {
        let status = if active.as_deref() == Some(e.model_id.as_str()) {
            "active"
        } else if e.promoted {
            "replaced"
        } else {
            "kept"
        };
        let [m, r1, r5, p] = figures_cells(&e.figures);
        t.add_row(vec![
            e.model_id.clone(),
            status.to_string(),
            e.registered.clone(),
            e.training_views.to_string(),
            m,
            r1,
            r5,
            p,
        ]);
    }
    outln!("{t}");
    let mut t = table(&[
        "proposals",
        "views",
        "median s",
        "views/hour",
        "agree model",
        "agree truth",
        "actions",
    ]);
    for (name, arm) in [("shown", &figures.shown), ("hidden", &figures.hidden)] {
        t.add_row(vec![
            name.to_string(),
            arm.views.to_string(),
            arm.median_seconds.map_or("–".into(), |v| format!("{v:.1}")),
            arm.views_per_hour.map_or("–".into(), |v| format!("{v:.1}")),
            f3(arm.agreement_with_model),
            f3(arm.agreement_with_truth),
            arm.actions
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    outln!("{t}");
    outln!(
        "automation bias (agreement with the model shown minus hidden) {}; speed-up {}",
        f3(figures.automation_bias),
        f3(figures.speed_up)
    );
    Ok(ExitCode::SUCCESS)
}

pub fn train(a: &TrainArgs, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    if a.out.join(borderlens_nii::detector::META_FILE).exists() {
        bail!(
            "{} already holds a model: choose a new folder (a model is never overwritten)",
            a.out.display()
        );
    }
    let options = a.settings.options()?;
    let labels = CocoSource::parse(&a.labels);
    let library = open(&a.library)?;
    // Held-out libraries are opened first, so that a wrong path fails before training.
    let held_out: Vec<PathBuf> = a.eval.clone();
    for p in &held_out {
        open(p)?;
    }
    let trained = app::train_detector(&library, &labels, &options, bars);
    let Some(mut detector) =
        trained.with_context(|| format!("training on {}", a.library.display()))?
    else {
        eprintln!("borderlens: interrupted; no model written");
        return Ok(ExitCode::from(130));
    };
    for p in &held_out {
        let Some(e) = evaluate_on(&detector, p, &labels, bars)? else {
            eprintln!("borderlens: interrupted; no model written");
            return Ok(ExitCode::from(130));
        };
        detector.meta.evaluations.push(e);
    }
    detector.save(&a.out)?;
    let m = &detector.meta;
    if json {
        outln!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        outln!(
            "model {} written to {}: {} classes, trained on {} views of {} scans ({} objects; mix {}; labels '{}') in {:.0} s",
            m.model_id,
            a.out.display(),
            m.classes.len(),
            m.training.views,
            m.training.scans,
            m.training.objects.iter().map(|o| o.1).sum::<usize>(),
            m.training
                .mix
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            m.training.label_source,
            m.training.seconds
        );
        outln!("training set digest {}", m.training.digest);
        for e in &m.evaluations {
            print_evaluation(e)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn evaluate_cmd(a: &EvaluateArgs, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    let mut detector = Detector::load(&a.model)?;
    let labels = CocoSource::parse(&a.labels);
    let Some(e) = evaluate_on(&detector, &a.library, &labels, bars)? else {
        eprintln!("borderlens: interrupted");
        return Ok(ExitCode::from(130));
    };
    if e.digest == detector.meta.training.digest {
        eprintln!(
            "borderlens: warning: {} is the model's own training set; these figures say nothing about new scans",
            a.library.display()
        );
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&e)?);
    } else {
        print_evaluation(&e)?;
    }
    if a.save {
        detector.meta.evaluations.push(e);
        detector.save(&a.model)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A file-name-safe form of a scan id or class.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn detect(a: &DetectArgs, json: bool) -> anyhow::Result<ExitCode> {
    if !(a.min_score.is_finite() && (0.0..1.0).contains(&a.min_score)) {
        bail!("--min-score must be in [0, 1)");
    }
    let detector = Detector::load(&a.model)?;
    let mut library = open(&a.library)?;
    for id in &a.scans {
        if library.get(id).is_none() {
            bail!("scan '{id}' is not in {}", a.library.display());
        }
    }
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    }
    let grid = detector.meta.shape.grid();
    let source = borderlens_nii::review::machine_name(&detector.meta.model_id);
    let mut results = Vec::new();
    let mut pre_annotations = Vec::new();
    for id in &a.scans {
        let Some(record) = library.get(id) else {
            continue;
        };
        for view in 0..record.views.len() {
            let input = read_view(&library, record, view, detector.meta.shape.side)?;
            let found = detector
                .detect(&[&input], a.min_score)?
                .pop()
                .unwrap_or_else(|| borderlens_nii::detector::ViewDetections {
                    alarm: 0.0,
                    detections: Vec::new(),
                });
            let maps = detector.grad_cam(&input, &found.detections)?;
            let mut dets = Vec::new();
            for (n, (d, map)) in found.detections.iter().zip(&maps).enumerate() {
                let heat_map = match &a.out {
                    Some(out) => {
                        let name = format!("{}-v{view}-{n}-{}.png", safe(id), safe(&d.class));
                        let png = overlay_png(&input, map, grid, Some(&d.bbox))?;
                        std::fs::write(out.join(&name), png).with_context(|| {
                            format!("cannot write {}", out.join(&name).display())
                        })?;
                        Some(name)
                    }
                    None => None,
                };
                dets.push(json!({
                    "class": d.class,
                    "score": d.score,
                    "bbox": [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1],
                    "heat_map": heat_map,
                    "heat_map_grid": map,
                }));
            }
            if a.pre_annotate {
                pre_annotations.push(AnnotationRecord {
                    scan_id: id.clone(),
                    annotator: source.clone(),
                    role: AnnotationRole::Machine,
                    view,
                    objects: found.detections.iter().map(|d| d.as_object()).collect(),
                    seconds: None,
                    guideline: None,
                    review: None,
                });
            }
            results.push(json!({
                "scan_id": id,
                "view": view,
                "view_name": record.views[view].name,
                "alarm": found.alarm,
                "detections": dets,
            }));
        }
    }
    let annotated = pre_annotations.len();
    // Every line is checked before the first is written: all or nothing.
    for record in &pre_annotations {
        if let Some(scan) = library.get(&record.scan_id) {
            borderlens_nii::library::check_annotation_on(scan, record).map_err(
                |(field, reason)| {
                    anyhow::anyhow!(
                    "pre-annotation of scan '{}' view {}: field {field}: {reason}; nothing stored",
                    record.scan_id,
                    record.view
                )
                },
            )?;
        }
    }
    for record in pre_annotations {
        library
            .add_annotation(record)
            .context("storing the pre-annotations")?;
    }
    let doc = json!({
        "model_id": detector.meta.model_id,
        "classes": detector.meta.classes,
        "heat_map_grid_side": grid,
        "min_score": a.min_score,
        "views": results,
    });
    if let Some(out) = &a.out {
        let path = out.join("detections.json");
        std::fs::write(&path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        outln!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let mut t = table(&[
            "scan",
            "view",
            "alarm",
            "class",
            "score",
            "box x0,y0,x1,y1",
            "heat map",
        ]);
        for v in &results {
            let dets = v["detections"].as_array().cloned().unwrap_or_default();
            if dets.is_empty() {
                t.add_row([
                    v["scan_id"].as_str().unwrap_or("").to_string(),
                    v["view_name"].as_str().unwrap_or("").to_string(),
                    format!("{:.3}", v["alarm"].as_f64().unwrap_or(0.0)),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                ]);
            }
            for d in dets {
                let b: Vec<String> = d["bbox"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|v| format!("{:.0}", v.as_f64().unwrap_or(0.0)))
                            .collect()
                    })
                    .unwrap_or_default();
                t.add_row([
                    v["scan_id"].as_str().unwrap_or("").to_string(),
                    v["view_name"].as_str().unwrap_or("").to_string(),
                    format!("{:.3}", v["alarm"].as_f64().unwrap_or(0.0)),
                    d["class"].as_str().unwrap_or("").to_string(),
                    format!("{:.3}", d["score"].as_f64().unwrap_or(0.0)),
                    b.join(","),
                    d["heat_map"].as_str().unwrap_or("-").to_string(),
                ]);
            }
        }
        outln!("model {}", detector.meta.model_id);
        outln!("{t}");
        if let Some(out) = &a.out {
            outln!("detections and heat maps written to {}", out.display());
        }
        if a.pre_annotate {
            outln!("{annotated} view(s) pre-annotated as '{source}' (role machine)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
