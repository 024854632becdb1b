//! Tries detector settings on libraries already generated (not part of the tests): trains on
//! `TRAIN` (or loads the model folder `MODEL`), evaluates on each of `TEST` (comma-separated),
//! and prints the issue's figures with two diagnostics the evaluation does not report: AP when
//! the class is ignored (is the box found at all?) and AP at IoU 0.3 (is it found but badly
//! sized?). Settings from the environment, defaults as `nii train`: `EPOCHS`, `BATCH`, `LR`,
//! `SEED`, `SIDE`, `WIDTH`, `DEEPEST` (8 or 16), `NORM`, `TRANSPOSE`; `SAVE=DIR` keeps the model.
//!
//! ```sh
//! borderlens bench nii-detector --scans 1500 --test-scans 600 --work /tmp/det/base
//! TRAIN=/tmp/det/base/train TEST=/tmp/det/base/held-out,/tmp/det/base/projected \
//!   EPOCHS=25 SEED=42 cargo run --release -p borderlens-nii --example detector_sweep
//! ```
use std::path::PathBuf;

use borderlens_nii::coco::CocoSource;
use borderlens_nii::detector::eval::{average_precision, evaluate};
use borderlens_nii::detector::input::read_view;
use borderlens_nii::detector::train::{labelled_views, train_on_library, TrainOptions};
use borderlens_nii::geometry::BoxPx;
use borderlens_nii::library::Library;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One view's detections `(class, score, box)` and true objects `(class, box)`.
type ViewFound = (Vec<(usize, f64, BoxPx)>, Vec<(usize, BoxPx)>);

/// AP over every class at once (`any_class`) or per class, at `iou`, from one set's detections.
fn diagnostic_ap(per_view: &[ViewFound], classes: usize, iou: f64, any_class: bool) -> f64 {
    let groups: Vec<Option<usize>> = if any_class {
        vec![None]
    } else {
        (0..classes).map(Some).collect()
    };
    let mut aps = Vec::new();
    for g in groups {
        let mut scored = Vec::new();
        let mut objects = 0;
        for (dets, truth) in per_view {
            let truth: Vec<&BoxPx> = truth
                .iter()
                .filter(|t| g.is_none_or(|k| t.0 == k))
                .map(|t| &t.1)
                .collect();
            objects += truth.len();
            let mut dets: Vec<&(usize, f64, BoxPx)> =
                dets.iter().filter(|d| g.is_none_or(|k| d.0 == k)).collect();
            dets.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut taken = vec![false; truth.len()];
            for d in dets {
                let mut best: Option<(usize, f64)> = None;
                for (j, t) in truth.iter().enumerate() {
                    let v = d.2.iou(t);
                    if !taken[j] && v >= iou && best.is_none_or(|(_, b)| v > b) {
                        best = Some((j, v));
                    }
                }
                if let Some((j, _)) = best {
                    taken[j] = true;
                }
                scored.push((d.1, best.is_some()));
            }
        }
        if let Some(ap) = average_precision(&mut scored, objects) {
            aps.push(ap);
        }
    }
    aps.iter().sum::<f64>() / aps.len().max(1) as f64
}

fn train_with(
    train_dir: &std::path::Path,
    options: &TrainOptions,
) -> Result<borderlens_nii::detector::Detector, Box<dyn std::error::Error>> {
    let library = Library::open(train_dir)?;
    let started = std::time::Instant::now();
    let last = std::cell::Cell::new(0usize);
    let trained = train_on_library(
        &library,
        &CocoSource::Truth,
        options,
        &|_, _| {},
        &|r| {
            let tenth = r.step * 10 / r.steps;
            if tenth > last.get() {
                last.set(tenth);
                eprintln!(
                    "step {}/{} epoch {} loss {:.3} ({:.0} s)",
                    r.step,
                    r.steps,
                    r.epoch,
                    r.loss,
                    started.elapsed().as_secs_f64()
                );
            }
        },
        &|| false,
    )?
    .ok_or("stopped")?;
    Ok(trained)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let train_dir = PathBuf::from(std::env::var("TRAIN").unwrap_or_default());
    let tests: Vec<PathBuf> = std::env::var("TEST")?
        .split(',')
        .map(PathBuf::from)
        .collect();
    let defaults = TrainOptions::default();
    let options = TrainOptions {
        epochs: env("EPOCHS", defaults.epochs),
        batch: env("BATCH", defaults.batch),
        learning_rate: env("LR", defaults.learning_rate),
        seed: env("SEED", defaults.seed),
        side: env("SIDE", defaults.side),
        width: env("WIDTH", defaults.width),
        deepest_stride: env("DEEPEST", defaults.deepest_stride),
        norm: env("NORM", defaults.norm),
        transpose: env("TRANSPOSE", defaults.transpose),
        ..defaults
    };
    let mut trained = match std::env::var("MODEL") {
        Ok(dir) => borderlens_nii::detector::Detector::load(std::path::Path::new(&dir))?,
        Err(_) => train_with(&train_dir, &options)?,
    };
    if let Ok(out) = std::env::var("SAVE") {
        trained.save(std::path::Path::new(&out))?;
    }
    println!(
        "options {:?}\ntrained {} views in {:.0} s; loss by epoch {:?}",
        trained.meta.training.options,
        trained.meta.training.views,
        trained.meta.training.seconds,
        trained
            .meta
            .training
            .loss_by_epoch
            .iter()
            .map(|l| format!("{l:.3}"))
            .collect::<Vec<_>>()
    );
    let classes = trained.meta.classes.clone();
    for dir in &tests {
        let lib = Library::open(dir)?;
        let e = evaluate(
            &trained,
            &lib,
            &CocoSource::Truth,
            &dir.display().to_string(),
            &|_, _| {},
            &|| false,
        )?
        .ok_or("stopped")?;
        let per_class: Vec<String> = e
            .per_class
            .iter()
            .map(|c| format!("{} {:.3}", c.class, c.ap.unwrap_or(f64::NAN)))
            .collect();
        let points: Vec<String> = e
            .operating_points
            .iter()
            .map(|p| {
                format!(
                    "{:.0}%: {:.3} (objects {:.3})",
                    p.false_alarm_target * 100.0,
                    p.detection_rate,
                    p.object_recall
                )
            })
            .collect();
        // the diagnostics: detections again, down to 0.01
        let views = labelled_views(&lib, &CocoSource::Truth);
        let mut per_view = Vec::new();
        for v in &views {
            let input = read_view(&lib, v.record, v.view, trained.meta.shape.side)?;
            let found = trained.detect(&[&input], 0.01)?.remove(0);
            let dets = found
                .detections
                .iter()
                .map(|d| (d.class_index, d.score, d.bbox))
                .collect();
            let truth = v
                .objects
                .iter()
                .filter_map(|o| Some((classes.iter().position(|c| c == &o.label)?, o.bbox)))
                .collect();
            per_view.push((dets, truth));
        }
        println!(
            "{}\n  mAP@0.5 {:.3} | {}\n  detection rate {} | pointing {:?}\n  any-class AP@0.5 {:.3}, mAP@0.3 {:.3}, any-class AP@0.3 {:.3}",
            dir.display(),
            e.map50.unwrap_or(f64::NAN),
            per_class.join(", "),
            points.join(", "),
            e.pointing_game.rate,
            diagnostic_ap(&per_view, classes.len(), 0.5, true),
            diagnostic_ap(&per_view, classes.len(), 0.3, false),
            diagnostic_ap(&per_view, classes.len(), 0.3, true),
        );
    }
    Ok(())
}
