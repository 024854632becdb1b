//! The hybrid annotation loop: the model proposes, a person corrects, the model retrains.
//!
//! - The active model's proposals on a scan are a MACHINE annotation line
//!   ([`pre_annotate`]), never a label.
//! - An annotator's correction is an ordinary annotator line that also carries a [`Review`]:
//!   the model and proposals it started from, whether the proposals were shown, and one
//!   [`Action`] per object (accept, move, relabel, delete, add), diffed from the rows of the form
//!   the annotator sent ([`actions_of`]), with the seconds the scan took.
//! - A configurable share of scans is reviewed *without* the proposals ([`shows_proposals`],
//!   decided by a keyed hash of the scan id, so the same scan is always in the same arm), so that
//!   automation bias (agreement with the machine when shown versus not) and the speed-up are
//!   measured on the same kind of scans ([`review_figures`]).
//! - The model registry (`LIB/models/`, [`Registry`]) keeps every version with its evaluation;
//!   [`retrain`] trains on the corrected set ([`CocoSource::Corrected`]), evaluates the new model
//!   *and* the active one on the same held-out library, and makes the new one active only when it
//!   is not worse on either the mAP@0.5 or the detection rate at 1 % false alarms.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::coco::CocoSource;
use crate::consensus::AnnotatedObject;
use crate::detector::eval::{evaluate, match_detections, Evaluation};
use crate::detector::train::{labelled_views, train_on_library, StepReport, TrainOptions};
use crate::detector::{read_view, Detector, DetectorError, DEFAULT_MIN_SCORE};
use crate::library::{
    append_line, fail, json_error, read_lines, AnnotationRecord, AnnotationRole, Library,
    LibraryError,
};

/// The models folder of a library.
pub const MODELS_DIR: &str = "models";
/// The registry file in it: one [`ModelEntry`] per line.
pub const REGISTRY_FILE: &str = "registry.jsonl";

/// Two boxes count as the same position when no corner moved more than this (pixels).
const SAME_BOX_PX: f64 = 0.5;

/// What an annotator did with one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// kept a proposal as it was
    Accept,
    /// kept a proposal's class and moved or resized its box
    Move,
    /// changed a proposal's class (the box may have moved too)
    Relabel,
    /// deleted a proposal
    Delete,
    /// drew an object no proposal had
    Add,
}

impl ActionKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [ActionKind; 5] = [
        ActionKind::Accept,
        ActionKind::Move,
        ActionKind::Relabel,
        ActionKind::Delete,
        ActionKind::Add,
    ];

    /// The kind as written: `accept`, `move`, `relabel`, `delete`, `add`.
    pub fn word(self) -> &'static str {
        match self {
            ActionKind::Accept => "accept",
            ActionKind::Move => "move",
            ActionKind::Relabel => "relabel",
            ActionKind::Delete => "delete",
            ActionKind::Add => "add",
        }
    }
}

/// One recorded action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// what was done
    pub kind: ActionKind,
    /// the proposal it was done to (index into [`Review::proposals`]; none for `add`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposal: Option<usize>,
    /// the object as kept (none for `delete`)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<AnnotatedObject>,
}

/// How an annotator line came out of the hybrid loop.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Review {
    /// the model whose proposals the scan was reviewed against (none: no model was active)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// whether the proposals were shown to the annotator (false: the automation-bias arm)
    pub shown: bool,
    /// the model's proposals on the view, shown or not
    pub proposals: Vec<AnnotatedObject>,
    /// what the annotator did, one action per object
    pub actions: Vec<Action>,
}

/// One object row of the annotation form as sent back.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// the proposal this row started from (none: the annotator added it)
    pub proposal: Option<usize>,
    /// the annotator ticked "delete"
    pub deleted: bool,
    /// the row's class and box as sent (none only on a deleted row: a deleted proposal's
    /// fields are not read)
    pub object: Option<AnnotatedObject>,
}

fn same_box(a: &crate::BoxPx, b: &crate::BoxPx) -> bool {
    (a.x0 - b.x0).abs() <= SAME_BOX_PX
        && (a.y0 - b.y0).abs() <= SAME_BOX_PX
        && (a.x1 - b.x1).abs() <= SAME_BOX_PX
        && (a.y1 - b.y1).abs() <= SAME_BOX_PX
}

/// The actions that turn `proposals` into the rows sent back, and the objects kept. A proposal
/// with no row was deleted (a form that lost a row cannot keep an object silently). An error
/// names the row: a proposal index out of range or used twice.
pub fn actions_of(
    proposals: &[AnnotatedObject],
    rows: &[Row],
) -> Result<(Vec<Action>, Vec<AnnotatedObject>), String> {
    let mut used = vec![false; proposals.len()];
    let mut actions = Vec::new();
    let mut kept = Vec::new();
    for (n, row) in rows.iter().enumerate() {
        let object = match (&row.object, row.deleted) {
            (Some(o), _) => AnnotatedObject {
                score: 1.0,
                ..o.clone()
            },
            (None, true) => AnnotatedObject {
                label: String::new(),
                bbox: crate::BoxPx::new(0.0, 0.0, 1.0, 1.0).map_err(|e| e.to_string())?,
                score: 1.0,
            },
            (None, false) => return Err(format!("row {}: no class or box", n + 1)),
        };
        let Some(p) = row.proposal else {
            if !row.deleted {
                actions.push(Action {
                    kind: ActionKind::Add,
                    proposal: None,
                    object: Some(object.clone()),
                });
                kept.push(object);
            }
            continue;
        };
        let Some(proposal) = proposals.get(p) else {
            return Err(format!(
                "row {}: proposal {p} does not exist (the scan has {})",
                n + 1,
                proposals.len()
            ));
        };
        if std::mem::replace(&mut used[p], true) {
            return Err(format!("row {}: proposal {p} appears twice", n + 1));
        }
        if row.deleted {
            actions.push(Action {
                kind: ActionKind::Delete,
                proposal: Some(p),
                object: None,
            });
            continue;
        }
        let kind = if object.label != proposal.label {
            ActionKind::Relabel
        } else if !same_box(&object.bbox, &proposal.bbox) {
            ActionKind::Move
        } else {
            ActionKind::Accept
        };
        actions.push(Action {
            kind,
            proposal: Some(p),
            object: Some(object.clone()),
        });
        kept.push(object);
    }
    for (p, used) in used.iter().enumerate() {
        if !used {
            actions.push(Action {
                kind: ActionKind::Delete,
                proposal: Some(p),
                object: None,
            });
        }
    }
    Ok((actions, kept))
}

/// Whether the proposals are shown on `scan_id` when a share `hidden_share` of scans is
/// reviewed without them. Decided by SHA-256 of `salt` and the scan id, so a scan stays in its
/// arm across page loads and annotators, and the arms are a random split of the scans.
pub fn shows_proposals(scan_id: &str, hidden_share: f64, salt: &str) -> bool {
    if hidden_share <= 0.0 {
        return true;
    }
    let digest = Sha256::digest(format!("{salt}\u{0}{scan_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let u = u64::from_be_bytes(first) as f64 / (u64::MAX as f64 + 1.0);
    u >= hidden_share
}

/// F1 of two object lists (same class, IoU ≥ 0.5, each object matched once); 1 when both are
/// empty.
pub fn f1_agreement(a: &[AnnotatedObject], b: &[AnnotatedObject]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let mut labels: Vec<&str> = a.iter().chain(b).map(|o| o.label.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    let index = |l: &str| labels.binary_search(&l).unwrap_or(0);
    let dets: Vec<_> = a
        .iter()
        .map(|o| (index(&o.label), o.score, o.bbox))
        .collect();
    let truth: Vec<_> = b.iter().map(|o| (index(&o.label), o.bbox)).collect();
    let matched = match_detections(&dets, &truth).iter().flatten().count();
    2.0 * matched as f64 / (a.len() + b.len()) as f64
}

/// The figures of one arm of the loop (proposals shown, or hidden).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    /// reviewed views
    pub views: usize,
    /// of which with a recorded time
    pub timed: usize,
    /// median seconds per view
    pub median_seconds: Option<f64>,
    /// views per annotator-hour: 3600 over the mean seconds per view
    pub views_per_hour: Option<f64>,
    /// mean F1 agreement of the annotator's objects with the model's proposals
    pub agreement_with_model: Option<f64>,
    /// mean F1 agreement with the true objects, on views whose truth is known
    pub agreement_with_truth: Option<f64>,
    /// views whose truth is known
    pub views_with_truth: usize,
    /// actions by kind
    pub actions: BTreeMap<String, usize>,
}

/// What the loop has measured so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReviewFigures {
    /// views reviewed with the proposals shown
    pub shown: ArmFigures,
    /// views reviewed with the proposals hidden
    pub hidden: ArmFigures,
    /// agreement with the model when shown minus when hidden: how much more annotators agree
    /// with the machine when they see it (automation bias when the agreement with the truth
    /// does not rise with it)
    pub automation_bias: Option<f64>,
    /// views per hour shown over hidden
    pub speed_up: Option<f64>,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// The figures of every reviewed line of `library` (the latest line per annotator and view).
pub fn review_figures(library: &Library) -> ReviewFigures {
    let mut latest: BTreeMap<(&str, usize, &str), &AnnotationRecord> = BTreeMap::new();
    for line in library.annotations() {
        if line.review.is_some() && line.role == AnnotationRole::Annotator {
            latest.insert(
                (line.scan_id.as_str(), line.view, line.annotator.as_str()),
                line,
            );
        }
    }
    /// seconds, agreement with the model, agreement with the truth, and the figures, of an arm
    type Arm = (Vec<f64>, Vec<f64>, Vec<f64>, ArmFigures);
    let mut arms: [Arm; 2] = Default::default();
    for line in latest.values() {
        let Some(review) = &line.review else { continue };
        let (seconds, with_model, with_truth, arm) = &mut arms[usize::from(!review.shown)];
        arm.views += 1;
        if let Some(s) = line.seconds.filter(|s| s.is_finite() && *s >= 0.0) {
            seconds.push(s);
        }
        if review.model_id.is_some() {
            with_model.push(f1_agreement(&line.objects, &review.proposals));
        }
        if let Some(record) = library.get(&line.scan_id) {
            if record.provenance.knows_truth() {
                let truth = crate::coco::objects_of(record, line.view, &CocoSource::Truth, None);
                with_truth.push(f1_agreement(&line.objects, &truth));
            }
        }
        for action in &review.actions {
            *arm.actions
                .entry(action.kind.word().to_string())
                .or_default() += 1;
        }
    }
    let [shown, hidden] = arms.map(|(mut seconds, with_model, with_truth, mut arm)| {
        arm.timed = seconds.len();
        arm.views_per_hour = mean(&seconds).filter(|m| *m > 0.0).map(|m| 3600.0 / m);
        arm.median_seconds = median(&mut seconds);
        arm.agreement_with_model = mean(&with_model);
        arm.views_with_truth = with_truth.len();
        arm.agreement_with_truth = mean(&with_truth);
        arm
    });
    ReviewFigures {
        automation_bias: shown
            .agreement_with_model
            .zip(hidden.agreement_with_model)
            .map(|(s, h)| s - h),
        speed_up: shown
            .views_per_hour
            .zip(hidden.views_per_hour)
            .map(|(s, h)| s / h),
        shown,
        hidden,
    }
}

/// The headline figures of a model on the held-out set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Figures {
    /// mAP@0.5
    pub map50: Option<f64>,
    /// detection rate at 1 % false alarms per view
    pub detection_rate_1: Option<f64>,
    /// detection rate at 5 % false alarms per view
    pub detection_rate_5: Option<f64>,
    /// Grad-CAM pointing game
    pub pointing_game: Option<f64>,
}

impl Figures {
    /// The headline figures of an evaluation.
    pub fn of(e: &Evaluation) -> Figures {
        let rate = |target: f64| {
            e.operating_points
                .iter()
                .find(|p| (p.false_alarm_target - target).abs() < 1e-9)
                .map(|p| p.detection_rate)
        };
        Figures {
            map50: e.map50,
            detection_rate_1: rate(0.01),
            detection_rate_5: rate(0.05),
            pointing_game: e.pointing_game.rate,
        }
    }
}

/// One model version of the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// the model (its folder is `models/<model_id>/`)
    pub model_id: String,
    /// when it was registered (UTC, RFC 3339)
    pub registered: String,
    /// who asked for it
    pub by: String,
    /// the label source it was trained on
    pub label_source: String,
    /// SHA-256 of its training set
    pub training_digest: String,
    /// views it was trained on
    pub training_views: usize,
    /// seconds of training
    pub training_seconds: f64,
    /// the held-out set both models were evaluated on, and its digest
    pub evaluated_on: String,
    /// the held-out set's digest
    pub evaluation_digest: String,
    /// its figures there
    pub figures: Figures,
    /// the model active when it was registered, with its figures on the same set, measured in
    /// the same run
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_with: Option<(String, Figures)>,
    /// whether it became the active model
    pub promoted: bool,
    /// why (or why not)
    pub reason: String,
}

/// The decision rule: a new model replaces the active one only when it is not worse on either
/// headline figure, both measured on the same set.
pub fn promote(new: &Figures, active: Option<&Figures>) -> (bool, String) {
    let Some(old) = active else {
        return (true, "no model was active".into());
    };
    let worse = |n: Option<f64>, o: Option<f64>| match (n, o) {
        (Some(n), Some(o)) => n + 1e-12 < o,
        (None, Some(_)) => true,
        _ => false,
    };
    let f = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.3}"));
    if worse(new.map50, old.map50) {
        return (
            false,
            format!(
                "mAP@0.5 {} is below the active model's {}",
                f(new.map50),
                f(old.map50)
            ),
        );
    }
    if worse(new.detection_rate_1, old.detection_rate_1) {
        return (
            false,
            format!(
                "detection rate at 1 % false alarms {} is below the active model's {}",
                f(new.detection_rate_1),
                f(old.detection_rate_1)
            ),
        );
    }
    (
        true,
        format!(
            "not worse than the active model (mAP@0.5 {} vs {}, detection rate at 1 % false \
             alarms {} vs {})",
            f(new.map50),
            f(old.map50),
            f(new.detection_rate_1),
            f(old.detection_rate_1)
        ),
    )
}

/// The model registry of a library: `LIB/models/registry.jsonl` and one folder per model.
pub struct Registry {
    dir: PathBuf,
    entries: Vec<ModelEntry>,
}

impl Registry {
    /// Reads the registry of the library at `root` (empty when none was written). A torn last
    /// line (a crash in the middle of a registration) is not read; the next registration sets
    /// it aside.
    pub fn open(root: &Path) -> Result<Registry, LibraryError> {
        let dir = root.join(MODELS_DIR);
        let path = dir.join(REGISTRY_FILE);
        let (lines, _torn) = read_lines(&path)?;
        let mut entries = Vec::with_capacity(lines.len());
        for (line, text) in lines {
            let entry: ModelEntry =
                serde_json::from_str(&text).map_err(|e| json_error(&path, line, &e))?;
            if !dir.join(&entry.model_id).is_dir() {
                return Err(fail(
                    &path,
                    Some(line),
                    Some("model_id"),
                    format!("model folder {} is missing", entry.model_id),
                ));
            }
            entries.push(entry);
        }
        Ok(Registry { dir, entries })
    }

    /// Every version, oldest first.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The active model: the latest promoted one.
    pub fn active(&self) -> Option<&ModelEntry> {
        self.entries.iter().rev().find(|e| e.promoted)
    }

    /// The folder of a model.
    pub fn model_dir(&self, model_id: &str) -> PathBuf {
        self.dir.join(model_id)
    }

    /// Loads the active model, if any.
    pub fn load_active(&self) -> Result<Option<Detector>, DetectorError> {
        self.active()
            .map(|e| Detector::load(&self.model_dir(&e.model_id)))
            .transpose()
    }

    /// Saves `detector` in its folder (named by its model id, which saving sets) and appends
    /// its entry with that id; the entry's line is written last, so a crash leaves an unlisted
    /// folder, never a listed model without weights.
    ///
    /// Weights identical to a listed model's (the same corrected set, settings and seed) are
    /// not registered again: the listed entry is returned unchanged, and its folder is never
    /// touched.
    pub fn register(
        &mut self,
        detector: &mut Detector,
        mut entry: ModelEntry,
    ) -> Result<ModelEntry, DetectorError> {
        let io =
            |path: &Path, e: std::io::Error| DetectorError::new(format!("{}: {e}", path.display()));
        fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        // Written to a folder of this run's own first: the id is known only once the weights
        // are.
        let staging = self.dir.join(format!(
            ".staging-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        detector.save(&staging)?;
        entry.model_id = detector.meta.model_id.clone();
        if let Some(listed) = self.entries.iter().find(|e| e.model_id == entry.model_id) {
            fs::remove_dir_all(&staging).map_err(|e| io(&staging, e))?;
            return Ok(listed.clone());
        }
        let dir = self.model_dir(&entry.model_id);
        if dir.exists() {
            // not listed: a folder left by a crash before its entry
            fs::remove_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        fs::rename(&staging, &dir).map_err(|e| io(&dir, e))?;
        crate::library::sync_dir(&self.dir).map_err(|e| DetectorError::new(e.to_string()))?;
        let line = serde_json::to_string(&entry)
            .map_err(|e| DetectorError::new(format!("registry entry: {e}")))?;
        append_line(&self.dir.join(REGISTRY_FILE), &line)
            .map_err(|e| DetectorError::new(e.to_string()))?;
        self.entries.push(entry.clone());
        Ok(entry)
    }
}

/// The label source a held-out library is judged by: the truth when it knows any, else the
/// annotators' consensus.
pub fn evaluation_source(library: &Library) -> CocoSource {
    if labelled_views(library, &CocoSource::Truth).is_empty() {
        CocoSource::Consensus
    } else {
        CocoSource::Truth
    }
}

/// Takes an exclusive advisory lock on `file` without waiting: `Ok(false)` when another open
/// file description holds it. Released when the file is closed or the process ends.
#[cfg(unix)]
pub fn try_lock(file: &fs::File) -> std::io::Result<bool> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock takes a file descriptor we own for the call's duration, and flags.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Without flock(2) there is no cross-process lock: one process at a time is the caller's
/// concern (the desk holds its own slot).
#[cfg(not(unix))]
pub fn try_lock(_: &fs::File) -> std::io::Result<bool> {
    Ok(true)
}

/// What [`retrain`] reports while it works.
#[derive(Clone, Copy, Debug)]
pub enum RetrainStage {
    /// reading the training views (done, total)
    Reading(u64, u64),
    /// a training step
    Training(StepReport),
    /// evaluating a model on the held-out set (which model: 0 new, 1 active; done, total)
    Evaluating(usize, u64, u64),
}

/// The outcome of a retraining.
#[derive(Clone, Debug, Serialize)]
pub struct Retrained {
    /// the registry entry written
    pub entry: ModelEntry,
    /// the new model's full evaluation
    pub evaluation: Evaluation,
}

/// Retrains on the corrected set of `library`, evaluates the new model and the active one on
/// `held_out`, registers the new one (active only when [`promote`] says so). `Ok(None)` when
/// stopped; then nothing is written.
pub fn retrain(
    library: &Library,
    held_out: &Library,
    options: &TrainOptions,
    by: &str,
    progress: &dyn Fn(RetrainStage),
    stop: &dyn Fn() -> bool,
) -> Result<Option<Retrained>, DetectorError> {
    // One retraining per library at a time, across processes (the desk and `nii retrain`):
    // an advisory lock held until this function returns, released by the system on a crash.
    let models = library.root().join(MODELS_DIR);
    fs::create_dir_all(&models)
        .map_err(|e| DetectorError::new(format!("{}: {e}", models.display())))?;
    let lock_path = models.join(".retrain.lock");
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| DetectorError::new(format!("{}: {e}", lock_path.display())))?;
    if !try_lock(&lock).map_err(|e| DetectorError::new(format!("{}: {e}", lock_path.display())))? {
        return Err(DetectorError::new(format!(
            "another retraining of {} is running (it holds {}): wait for it",
            library.root().display(),
            lock_path.display()
        )));
    }
    let mut registry =
        Registry::open(library.root()).map_err(|e| DetectorError::new(e.to_string()))?;
    let active = registry.load_active()?;
    let Some(mut detector) = train_on_library(
        library,
        &CocoSource::Corrected,
        options,
        &|done, total| progress(RetrainStage::Reading(done, total)),
        &|step| progress(RetrainStage::Training(step)),
        stop,
    )?
    else {
        return Ok(None);
    };
    let source = evaluation_source(held_out);
    let set = held_out
        .root()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "held-out".into());
    let Some(evaluation) = evaluate(
        &detector,
        held_out,
        &source,
        &set,
        &|d, t| progress(RetrainStage::Evaluating(0, d, t)),
        stop,
    )?
    else {
        return Ok(None);
    };
    let compared_with = match &active {
        Some(active) => {
            let Some(e) = evaluate(
                active,
                held_out,
                &source,
                &set,
                &|d, t| progress(RetrainStage::Evaluating(1, d, t)),
                stop,
            )?
            else {
                return Ok(None);
            };
            Some((active.meta.model_id.clone(), Figures::of(&e)))
        }
        None => None,
    };
    let figures = Figures::of(&evaluation);
    let (promoted, reason) = promote(&figures, compared_with.as_ref().map(|(_, f)| f));
    detector.meta.evaluations.push(evaluation.clone());
    let entry = ModelEntry {
        // set by the registry once the weights are written
        model_id: String::new(),
        registered: crate::package::now_utc(),
        by: by.to_string(),
        label_source: detector.meta.training.label_source.clone(),
        training_digest: detector.meta.training.digest.clone(),
        training_views: detector.meta.training.views,
        training_seconds: detector.meta.training.seconds,
        evaluated_on: format!("{set} ({})", source.word()),
        evaluation_digest: evaluation.digest.clone(),
        figures,
        compared_with,
        promoted,
        reason,
    };
    if stop() {
        return Ok(None);
    }
    let entry = registry.register(&mut detector, entry)?;
    drop(lock);
    Ok(Some(Retrained { entry, evaluation }))
}

/// The MACHINE lines of `detector` on every view of a scan (not stored; the caller appends them).
pub fn pre_annotate(
    library: &Library,
    detector: &Detector,
    scan_id: &str,
) -> Result<Vec<AnnotationRecord>, DetectorError> {
    let record = library
        .get(scan_id)
        .ok_or_else(|| DetectorError::new(format!("scan '{scan_id}' is not in the library")))?;
    let mut out = Vec::with_capacity(record.views.len());
    for view in 0..record.views.len() {
        let input = read_view(library, record, view, detector.meta.shape.side)
            .map_err(|e| DetectorError::new(e.to_string()))?;
        let found = detector.detect(&[&input], DEFAULT_MIN_SCORE)?;
        let objects = found
            .iter()
            .flat_map(|v| &v.detections)
            .map(|d| d.as_object())
            .collect();
        out.push(AnnotationRecord {
            scan_id: scan_id.to_string(),
            annotator: machine_name(&detector.meta.model_id),
            role: AnnotationRole::Machine,
            view,
            objects,
            seconds: None,
            guideline: None,
            review: None,
        });
    }
    Ok(out)
}

/// The annotator name of a model's MACHINE lines: `model:<model id>`.
pub fn machine_name(model_id: &str) -> String {
    format!("model:{model_id}")
}

/// The proposals of `model_id` on a view, from its MACHINE line (the latest one).
pub fn proposals_of<'a>(
    library: &'a Library,
    model_id: &str,
    scan_id: &str,
    view: usize,
) -> Option<&'a [AnnotatedObject]> {
    let name = machine_name(model_id);
    library
        .annotations()
        .iter()
        .rev()
        .find(|l| {
            l.role == AnnotationRole::Machine
                && l.scan_id == scan_id
                && l.view == view
                && l.annotator == name
        })
        .map(|l| l.objects.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxPx;

    fn obj(label: &str, x0: f64, y0: f64, x1: f64, y1: f64) -> AnnotatedObject {
        AnnotatedObject {
            label: label.into(),
            bbox: BoxPx::new(x0, y0, x1, y1).unwrap(),
            score: 0.8,
        }
    }

    fn row(proposal: Option<usize>, deleted: bool, object: AnnotatedObject) -> Row {
        Row {
            proposal,
            deleted,
            object: Some(object),
        }
    }

    /// Every kind of action comes out of the rows, in row order, and a proposal without a row
    /// counts as deleted.
    #[test]
    fn actions_follow_the_rows() {
        let proposals = vec![
            obj("knife", 10.0, 10.0, 20.0, 20.0),
            obj("gun", 30.0, 30.0, 50.0, 50.0),
            obj("knife", 60.0, 60.0, 70.0, 70.0),
            obj("bottle", 5.0, 60.0, 15.0, 80.0),
            obj("gun", 80.0, 5.0, 95.0, 20.0),
        ];
        let rows = vec![
            row(Some(0), false, obj("knife", 10.2, 10.0, 20.0, 20.4)),
            row(Some(1), false, obj("gun", 32.0, 30.0, 50.0, 52.0)),
            row(Some(2), false, obj("blade", 60.0, 60.0, 70.0, 70.0)),
            row(Some(3), true, obj("bottle", 5.0, 60.0, 15.0, 80.0)),
            row(None, false, obj("gun", 1.0, 1.0, 9.0, 9.0)),
            row(None, true, obj("gun", 2.0, 2.0, 9.0, 9.0)),
        ];
        let (actions, kept) = actions_of(&proposals, &rows).unwrap();
        let kinds: Vec<(ActionKind, Option<usize>)> =
            actions.iter().map(|a| (a.kind, a.proposal)).collect();
        assert_eq!(
            kinds,
            vec![
                (ActionKind::Accept, Some(0)),
                (ActionKind::Move, Some(1)),
                (ActionKind::Relabel, Some(2)),
                (ActionKind::Delete, Some(3)),
                (ActionKind::Add, None),
                (ActionKind::Delete, Some(4)),
            ]
        );
        assert_eq!(kept.len(), 4);
        assert!(
            kept.iter().all(|o| o.score == 1.0),
            "a person's boxes score 1"
        );
        assert_eq!(kept[2].label, "blade");
    }

    #[test]
    fn a_deleted_proposal_needs_no_fields() {
        let proposals = vec![obj("knife", 10.0, 10.0, 20.0, 20.0)];
        let rows = [Row {
            proposal: Some(0),
            deleted: true,
            object: None,
        }];
        let (actions, kept) = actions_of(&proposals, &rows).unwrap();
        assert_eq!(actions[0].kind, ActionKind::Delete);
        assert!(kept.is_empty());
        let rows = [Row {
            proposal: Some(0),
            deleted: false,
            object: None,
        }];
        assert!(actions_of(&proposals, &rows).unwrap_err().contains("row 1"));
    }

    #[test]
    fn actions_refuse_unknown_or_repeated_proposals() {
        let proposals = vec![obj("knife", 10.0, 10.0, 20.0, 20.0)];
        let o = obj("knife", 10.0, 10.0, 20.0, 20.0);
        let err = actions_of(&proposals, &[row(Some(3), false, o.clone())]).unwrap_err();
        assert!(err.contains("row 1") && err.contains("proposal 3"), "{err}");
        let err = actions_of(
            &proposals,
            &[row(Some(0), false, o.clone()), row(Some(0), true, o)],
        )
        .unwrap_err();
        assert!(err.contains("row 2") && err.contains("twice"), "{err}");
    }

    /// The hidden arm holds about the share asked for, is stable for a scan, and depends on the
    /// salt.
    #[test]
    fn hidden_share_splits_scans() {
        let ids: Vec<String> = (0..4000).map(|i| format!("SCAN-{i}")).collect();
        let hidden = ids
            .iter()
            .filter(|id| !shows_proposals(id, 0.25, "desk"))
            .count();
        let share = hidden as f64 / ids.len() as f64;
        assert!((share - 0.25).abs() < 0.03, "hidden share {share}");
        assert!(ids.iter().all(|id| shows_proposals(id, 0.0, "desk")));
        assert!(ids.iter().all(|id| !shows_proposals(id, 1.0, "desk")));
        let moved = ids
            .iter()
            .filter(|id| shows_proposals(id, 0.25, "desk") != shows_proposals(id, 0.25, "other"))
            .count();
        assert!(moved > 500, "the salt changes the split ({moved} moved)");
    }

    #[test]
    fn f1_counts_class_and_overlap() {
        let a = vec![
            obj("knife", 0.0, 0.0, 10.0, 10.0),
            obj("gun", 20.0, 20.0, 30.0, 30.0),
        ];
        assert_eq!(f1_agreement(&a, &a), 1.0);
        assert_eq!(f1_agreement(&[], &[]), 1.0);
        assert_eq!(f1_agreement(&a, &[]), 0.0);
        let b = vec![
            obj("knife", 1.0, 0.0, 11.0, 10.0),
            obj("knife", 20.0, 20.0, 30.0, 30.0),
        ];
        // one knife matches; the second box has the wrong class
        assert!((f1_agreement(&a, &b) - 0.5).abs() < 1e-12);
    }

    fn small_library(dir: &Path, seed: u64, count: u64) -> Library {
        use crate::generate::{GeneratorParams, ThreatClass};
        let params = GeneratorParams {
            width: 96,
            height: 96,
            cargo_mix: [1.0, 0.0, 0.0],
            clutter_density: [0.3, 0.6],
            threat_rate: 0.7,
            max_threats: 1,
            threat_mix: vec![(ThreatClass::Gun, 1.0), (ThreatClass::Bottle, 1.0)],
            mm_per_pixel: 4.0,
            ..GeneratorParams::default()
        };
        let mut library = Library::create(dir).unwrap();
        crate::batch::generate_into(&mut library, &params, seed, count, &|_| {}, &|| false)
            .unwrap();
        library
    }

    fn tiny() -> TrainOptions {
        TrainOptions {
            epochs: 1,
            batch: 4,
            side: 32,
            width: 4,
            ..TrainOptions::default()
        }
    }

    /// The first retraining becomes active; the next one is compared with it on the same set,
    /// measured in the same run, and the registry read back says the same.
    #[test]
    fn retraining_registers_and_compares_versions() {
        let dir = tempfile::tempdir().unwrap();
        let library = small_library(&dir.path().join("lib"), 5, 12);
        let held_out = small_library(&dir.path().join("held"), 6, 8);
        let first = retrain(&library, &held_out, &tiny(), "ann-1", &|_| {}, &|| false)
            .unwrap()
            .unwrap();
        assert!(first.entry.promoted, "{}", first.entry.reason);
        assert!(first.entry.compared_with.is_none());
        assert_eq!(first.entry.label_source, "corrected");
        assert_eq!(first.entry.evaluated_on, "held (truth)");
        let options = TrainOptions { seed: 2, ..tiny() };
        let second = retrain(&library, &held_out, &options, "ann-2", &|_| {}, &|| false)
            .unwrap()
            .unwrap();
        let (against, figures) = second.entry.compared_with.clone().unwrap();
        assert_eq!(against, first.entry.model_id);
        assert_eq!(
            figures, first.entry.figures,
            "the same set, the same figures"
        );
        let registry = Registry::open(library.root()).unwrap();
        assert_eq!(registry.entries().len(), 2);
        let active = if second.entry.promoted {
            &second.entry.model_id
        } else {
            &first.entry.model_id
        };
        assert_eq!(&registry.active().unwrap().model_id, active);
        assert_eq!(
            &registry.load_active().unwrap().unwrap().meta.model_id,
            active
        );
        // The same corrected set, settings and seed: the same weights, not registered twice,
        // and the listed model's folder untouched.
        let again = retrain(&library, &held_out, &tiny(), "ann-3", &|_| {}, &|| false)
            .unwrap()
            .unwrap();
        assert_eq!(again.entry, first.entry);
        assert_eq!(Registry::open(library.root()).unwrap().entries().len(), 2);
        assert!(registry
            .model_dir(&first.entry.model_id)
            .join("detector.json")
            .is_file());
        // Stopped: nothing registered.
        let stopped = retrain(&library, &held_out, &tiny(), "ann-1", &|_| {}, &|| true).unwrap();
        assert!(stopped.is_none());
        assert_eq!(Registry::open(library.root()).unwrap().entries().len(), 2);
        // A retraining holding the library's lock refuses another (another process's, here
        // another handle's).
        let held = fs::File::open(library.root().join(MODELS_DIR).join(".retrain.lock")).unwrap();
        assert!(try_lock(&held).unwrap());
        let err = retrain(&library, &held_out, &options, "ann-2", &|_| {}, &|| false)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another retraining"), "{err}");
        drop(held);
    }

    /// The corrected set takes people's boxes where they drew, the truth elsewhere; a machine
    /// line is never a label.
    #[test]
    fn corrected_set_prefers_people_over_truth_and_ignores_machines() {
        let dir = tempfile::tempdir().unwrap();
        let mut library = small_library(dir.path(), 5, 4);
        let ids: Vec<String> = library
            .records()
            .iter()
            .map(|r| r.metadata.scan_id.clone())
            .collect();
        let drawn = obj("knife", 1.0, 1.0, 20.0, 20.0);
        let line = |scan: &str, role, who: &str, objects: Vec<AnnotatedObject>| AnnotationRecord {
            scan_id: scan.into(),
            annotator: who.into(),
            role,
            view: 0,
            objects,
            seconds: None,
            guideline: None,
            review: None,
        };
        library
            .add_annotation(line(
                &ids[0],
                AnnotationRole::Annotator,
                "ann-1",
                vec![drawn.clone()],
            ))
            .unwrap();
        library
            .add_annotation(line(
                &ids[1],
                AnnotationRole::Machine,
                "model:x",
                vec![drawn],
            ))
            .unwrap();
        let views = labelled_views(&library, &CocoSource::Corrected);
        assert_eq!(views.len(), 4);
        let labels = |i: usize| -> Vec<String> {
            views
                .iter()
                .find(|v| v.record.metadata.scan_id == ids[i])
                .unwrap()
                .objects
                .iter()
                .map(|o| o.label.clone())
                .collect()
        };
        assert_eq!(labels(0), vec!["knife".to_string()]);
        let truth1: Vec<String> = library
            .get(&ids[1])
            .unwrap()
            .truth
            .iter()
            .map(|t| t.class.clone())
            .collect();
        assert_eq!(labels(1), truth1, "the machine's knife is not a label");
    }

    #[test]
    fn promotion_needs_both_figures_not_worse() {
        let f = |m: f64, r: f64| Figures {
            map50: Some(m),
            detection_rate_1: Some(r),
            detection_rate_5: None,
            pointing_game: None,
        };
        assert!(promote(&f(0.1, 0.1), None).0);
        assert!(promote(&f(0.5, 0.5), Some(&f(0.5, 0.5))).0);
        assert!(promote(&f(0.6, 0.5), Some(&f(0.5, 0.5))).0);
        let (ok, why) = promote(&f(0.6, 0.4), Some(&f(0.5, 0.5)));
        assert!(!ok && why.contains("1 %"), "{why}");
        let (ok, why) = promote(&f(0.4, 0.9), Some(&f(0.5, 0.5)));
        assert!(!ok && why.contains("mAP"), "{why}");
    }
}
