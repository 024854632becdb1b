//! The X-ray annotation desk: the hybrid loop of `borderlens_nii::review` over one library
//! folder, for the server's pages and the CLI alike.
//!
//! [`NiiDesk`] owns the library's one writer (a lock around every append, so two annotators
//! saving at once cannot interleave lines), the active detector (loaded once per model id), and
//! the state of the one retraining that may run at a time. Every read opens the library afresh,
//! so lines written by the CLI meanwhile are seen.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use borderlens_nii::consensus::AnnotatedObject;
use borderlens_nii::detector::train::TrainOptions;
use borderlens_nii::detector::{
    overlay_png, read_view, Detector, ViewDetections, ViewInput, DEFAULT_MIN_SCORE,
};
use borderlens_nii::guideline::{self, Guideline};
use borderlens_nii::library::{check_annotation_on, AnnotationRecord, AnnotationRole, Library};
use borderlens_nii::review::{
    self, actions_of, proposals_of, review_figures, shows_proposals, ModelEntry, RetrainStage,
    Retrained, Review, ReviewFigures, Row,
};
use borderlens_nii::ScanRecord;
use serde::Serialize;

use crate::{JobError, Progress};

/// Scans listed per desk page.
pub const DESK_QUEUE_MAX: usize = 200;

/// A review that took longer than this is counted as untimed (the annotator left the page open).
pub const MAX_REVIEW_SECONDS: f64 = 30.0 * 60.0;

/// How the desk runs.
#[derive(Clone, Debug)]
pub struct DeskConfig {
    /// the library folder annotated
    pub library: PathBuf,
    /// the held-out library every new model is evaluated on before it may replace the active
    /// one (retraining is refused without it)
    pub held_out: Option<PathBuf>,
    /// share of scans reviewed without the model's proposals (0 to 1)
    pub hidden_share: f64,
    /// salt of the shown/hidden split (another salt, another random split)
    pub salt: String,
    /// how a retraining trains
    pub train: TrainOptions,
}

impl DeskConfig {
    /// A desk over `library` with a 20 % hidden share and the detector's default training.
    pub fn new(library: PathBuf) -> DeskConfig {
        DeskConfig {
            library,
            held_out: None,
            hidden_share: 0.2,
            salt: "borderlens-review".into(),
            train: TrainOptions::default(),
        }
    }
}

/// One scan of the desk's queue.
#[derive(Clone, Debug, Serialize)]
pub struct DeskScan {
    /// the scan
    pub scan_id: String,
    /// bag, parcel or container
    pub cargo_type: String,
    /// `synthetic`, `projected`, `real` or `staged`
    pub share: String,
    /// views
    pub views: usize,
    /// whether the caller already reviewed it
    pub reviewed_by_you: bool,
    /// whether it is assigned to the caller (`nii assign`)
    pub assigned_to_you: bool,
    /// annotators it is assigned to (0: not assigned)
    pub assigned: usize,
    /// people who reviewed it
    pub reviewers: usize,
    /// whether its proposals are shown (false: the automation-bias arm)
    pub shown: bool,
}

/// The state of the desk's retraining.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RetrainState {
    /// who started the one running now
    pub running_for: Option<String>,
    /// what it is doing
    pub stage: String,
    /// the last one's outcome: the model registered, or why it failed
    pub last: Option<Result<ModelEntry, String>>,
}

/// What the desk page shows.
#[derive(Clone, Debug, Serialize)]
pub struct DeskView {
    /// the library's folder name
    pub library: String,
    /// scans in the library
    pub scans: usize,
    /// the scans, those the caller has not reviewed first
    pub queue: Vec<DeskScan>,
    /// every model version, newest first
    pub models: Vec<ModelEntry>,
    /// the active model
    pub active: Option<String>,
    /// the loop's figures
    pub figures: ReviewFigures,
    /// the share reviewed without proposals
    pub hidden_share: f64,
    /// the held-out library's folder name (none: retraining is off)
    pub held_out: Option<String>,
    /// the retraining
    pub retrain: RetrainState,
}

/// What the review page of one scan shows.
#[derive(Clone, Debug, Serialize)]
pub struct ScanReview {
    /// the scan
    pub scan_id: String,
    /// the view reviewed
    pub view: usize,
    /// its name
    pub view_name: String,
    /// views of the scan
    pub views: usize,
    /// the view's size, pixels
    pub width: u32,
    /// see `width`
    pub height: u32,
    /// the view's energies (`low`, `high`)
    pub energies: Vec<String>,
    /// bag, parcel or container
    pub cargo_type: String,
    /// what the sender declared, as declared
    pub declared_contents: Option<String>,
    /// whether the proposals are shown
    pub shown: bool,
    /// the model that proposed (none: no model is active)
    pub model_id: Option<String>,
    /// the proposals to show (empty when hidden)
    pub proposals: Vec<AnnotatedObject>,
    /// the caller's own latest review of this view under the same model (or, without a model,
    /// their latest objects): each object with the proposal it started from, so that saving
    /// again records the actions against the same proposals
    pub yours: Option<Vec<(Option<usize>, AnnotatedObject)>>,
    /// the classes offered: the guideline's, then any other the model proposes
    pub classes: Vec<String>,
    /// the guideline in force (its classes' definitions and example scans)
    pub guideline: Guideline,
}

/// A review as sent from the page.
#[derive(Clone, Debug)]
pub struct ReviewSubmission {
    /// the view
    pub view: usize,
    /// the model whose proposals the page showed or hid
    pub model_id: Option<String>,
    /// the rows
    pub rows: Vec<Row>,
    /// seconds from the page's opening to the sending, as measured by the page's server
    pub seconds: Option<f64>,
}

/// What was stored.
#[derive(Clone, Debug, Serialize)]
pub struct SavedReview {
    /// the scan
    pub scan_id: String,
    /// objects kept
    pub objects: usize,
    /// the actions recorded
    pub actions: usize,
    /// seconds recorded (none: untimed)
    pub seconds: Option<f64>,
    /// the next scan the caller has not reviewed
    pub next: Option<String>,
}

/// One detection of the active model, with its Grad-CAM heat map.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ScanDetection {
    /// class name
    pub class: String,
    /// probability-like score in (0, 1)
    pub score: f64,
    /// box in the view's pixels: `[x0, y0, x1, y1]`
    pub bbox: [f64; 4],
    /// where the heat map is drawn over the scan, with the box, as a PNG
    pub heat_map: String,
    /// the heat map as a `G × G` grid of values in `[0, 1]`, row by row (`G`:
    /// `heat_map_grid_side`); the view's pixel `(x, y)` falls in cell
    /// `(⌊y·G/height⌋, ⌊x·G/width⌋)`
    pub heat_map_grid: Vec<f32>,
}

/// The active model's detections on one view.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ViewDetectionsReport {
    /// the view (index into the scan's views)
    pub view: usize,
    /// its name
    pub view_name: String,
    /// its width, pixels
    pub width: u32,
    /// its height, pixels
    pub height: u32,
    /// the view's alarm score: the highest detection score (0 when none)
    pub alarm: f64,
    /// detections, highest score first
    pub detections: Vec<ScanDetection>,
}

/// The active model's detections on every view of a scan (`borderlens nii detect`'s answer).
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct ScanDetections {
    /// the scan
    pub scan_id: String,
    /// the model that detected
    pub model_id: String,
    /// its classes
    pub classes: Vec<String>,
    /// side `G` of the heat-map grids
    pub heat_map_grid_side: usize,
    /// detections scoring below this are left out
    pub min_score: f64,
    /// per view
    pub views: Vec<ViewDetectionsReport>,
}

/// A scan's alarm for a page that shows it beside a declaration (issue 16): the highest view
/// alarm, and the strongest detection with where its heat map is drawn.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ScanAlarm {
    /// the model that detected
    pub model_id: String,
    /// the highest alarm score of the scan's views (0 when nothing was detected)
    pub alarm: f64,
    /// the strongest detection: class, score, view name, heat map PNG
    pub top: Option<(String, f64, String, String)>,
}

impl ScanDetections {
    /// The scan's alarm: the highest view alarm and the strongest detection.
    pub fn alarm(&self) -> ScanAlarm {
        let alarm = self.views.iter().map(|v| v.alarm).fold(0.0, f64::max);
        let top = self
            .views
            .iter()
            .flat_map(|v| v.detections.iter().map(move |d| (v, d)))
            .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
            .map(|(v, d)| {
                (
                    d.class.clone(),
                    d.score,
                    v.view_name.clone(),
                    d.heat_map.clone(),
                )
            });
        ScanAlarm {
            model_id: self.model_id.clone(),
            alarm,
            top,
        }
    }
}

/// The annotation desk over one library.
pub struct NiiDesk {
    config: DeskConfig,
    pub(crate) writer: Mutex<()>,
    model: Mutex<Option<Arc<Detector>>>,
    retrain: Mutex<RetrainState>,
    stop: AtomicBool,
    /// What the active model found on the views asked for lately ([`NiiDesk::detections`],
    /// [`NiiDesk::heat_png`]), newest last.
    found: Mutex<Vec<(FoundKey, Arc<ViewFound>)>>,
    /// Views the detector ran on since the desk opened.
    views_run: AtomicU64,
}

/// Views whose detections the desk keeps: a declaration page runs the detector on its scans'
/// views, then the browser asks for each heat map it shows; a view already run is not run
/// again (about 0.5 MB each, for a 512-pixel view).
const FOUND_KEPT: usize = 32;

/// A view's detections are the same for the same model and the same images: the model, the
/// scan, the view's index and the view itself (its images are content-addressed).
type FoundKey = (String, String, usize, String);

/// What the detector found on one view, and the Grad-CAM map of each detection.
struct ViewFound {
    input: ViewInput,
    found: ViewDetections,
    maps: Vec<Vec<f32>>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock leaves no half-written state here (every write is one
    // durable append): carry on with the data.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The scan with this id, or a 404-like refusal naming it.
pub(crate) fn record_of<'a>(
    library: &'a Library,
    scan_id: &str,
) -> Result<&'a ScanRecord, JobError> {
    library
        .get(scan_id)
        .ok_or_else(|| JobError::NotFound(format!("scan '{scan_id}' is not in the library")))
}

/// View `view` of a scan, read at `side` for the network (a refusal when it has no such view).
fn view_of(
    library: &Library,
    scan_id: &str,
    view: usize,
    side: usize,
) -> Result<ViewInput, JobError> {
    let record = record_of(library, scan_id)?;
    if view >= record.views.len() {
        return Err(JobError::NotFound(format!(
            "scan '{scan_id}' has no view {view}"
        )));
    }
    read_view(library, record, view, side).map_err(nii)
}

/// The detector's detections on one view (score at least [`DEFAULT_MIN_SCORE`]).
fn detect_one(detector: &Detector, input: &ViewInput) -> Result<ViewDetections, JobError> {
    detector
        .detect(&[input], DEFAULT_MIN_SCORE)
        .map_err(nii)?
        .pop()
        .ok_or_else(|| JobError::Internal("the detector answered no view".into()))
}

pub(crate) fn folder_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// A failure of the library, the registry or the detector: the system's, not the request's.
pub(crate) fn nii(e: impl std::fmt::Display) -> JobError {
    JobError::Internal(e.to_string())
}

/// A request that cannot be met as sent (a row, a field, a folder named by the user).
pub(crate) fn invalid(e: impl std::fmt::Display) -> JobError {
    JobError::Invalid(e.to_string())
}

impl NiiDesk {
    /// Checks the settings and opens the library (and the held-out one) once, so that a bad
    /// folder fails at start.
    pub fn new(config: DeskConfig) -> Result<NiiDesk, JobError> {
        if !(0.0..=1.0).contains(&config.hidden_share) {
            return Err(JobError::Invalid(format!(
                "the hidden share must be from 0 to 1, not {}",
                config.hidden_share
            )));
        }
        config.train.validate().map_err(JobError::Invalid)?;
        Library::open(&config.library).map_err(invalid)?;
        review::Registry::open(&config.library).map_err(invalid)?;
        if let Some(held_out) = &config.held_out {
            Library::open(held_out).map_err(invalid)?;
        }
        Ok(NiiDesk {
            config,
            writer: Mutex::new(()),
            model: Mutex::new(None),
            retrain: Mutex::new(RetrainState::default()),
            stop: AtomicBool::new(false),
            found: Mutex::new(Vec::new()),
            views_run: AtomicU64::new(0),
        })
    }

    /// How many views the detector ran on since the desk opened (a view already run by the
    /// same model on the same images is served from what it found then).
    pub fn views_run(&self) -> u64 {
        self.views_run.load(Ordering::Relaxed)
    }

    /// What `detector` finds on view `view` of `record`, with every detection's Grad-CAM map:
    /// kept for the next ask ([`FOUND_KEPT`] views), run now when not kept.
    fn view_found(
        &self,
        detector: &Detector,
        library: &Library,
        record: &ScanRecord,
        view: usize,
    ) -> Result<Arc<ViewFound>, JobError> {
        let scan_id = &record.metadata.scan_id;
        let Some(images) = record.views.get(view) else {
            return Err(JobError::NotFound(format!(
                "scan '{scan_id}' has no view {view}"
            )));
        };
        let key: FoundKey = (
            detector.meta.model_id.clone(),
            scan_id.clone(),
            view,
            serde_json::to_string(images).map_err(|e| JobError::Internal(e.to_string()))?,
        );
        if let Some((_, found)) = lock(&self.found).iter().find(|(k, _)| *k == key) {
            return Ok(found.clone());
        }
        // Run without holding the lock: two asks at once may both run, and agree.
        let input = read_view(library, record, view, detector.meta.shape.side).map_err(nii)?;
        let found = detect_one(detector, &input)?;
        let maps = detector.grad_cam(&input, &found.detections).map_err(nii)?;
        self.views_run.fetch_add(1, Ordering::Relaxed);
        let found = Arc::new(ViewFound { input, found, maps });
        let mut kept = lock(&self.found);
        kept.retain(|(k, _)| *k != key);
        if kept.len() >= FOUND_KEPT {
            kept.remove(0);
        }
        kept.push((key, found.clone()));
        Ok(found)
    }

    /// Asks a running retraining to stop (it keeps nothing); the server calls this when it
    /// shuts down.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn config(&self) -> &DeskConfig {
        &self.config
    }

    pub(crate) fn library(&self) -> Result<Library, JobError> {
        Library::open(&self.config.library).map_err(nii)
    }

    fn active(&self) -> Result<Option<Arc<Detector>>, JobError> {
        let registry = review::Registry::open(&self.config.library).map_err(nii)?;
        let Some(entry) = registry.active() else {
            return Ok(None);
        };
        let mut cached = lock(&self.model);
        if let Some(d) = cached
            .as_ref()
            .filter(|d| d.meta.model_id == entry.model_id)
        {
            return Ok(Some(d.clone()));
        }
        let detector = Arc::new(
            Detector::load(&registry.model_dir(&entry.model_id)).map_err(|e| {
                JobError::Internal(format!("the active model {}: {e}", entry.model_id))
            })?,
        );
        *cached = Some(detector.clone());
        Ok(Some(detector))
    }

    fn shown(&self, scan_id: &str) -> bool {
        shows_proposals(scan_id, self.config.hidden_share, &self.config.salt)
    }

    /// The desk: the queue (scans the caller has not reviewed first, those assigned to them
    /// ahead of the others; at most [`DESK_QUEUE_MAX`]), the model versions, the loop's figures
    /// and the retraining.
    pub fn desk(&self, user: &str) -> Result<DeskView, JobError> {
        let library = self.library()?;
        let registry = review::Registry::open(&self.config.library).map_err(nii)?;
        let mut reviewers: std::collections::HashMap<&str, BTreeSet<&str>> = Default::default();
        for line in library.annotations() {
            if line.role == AnnotationRole::Annotator {
                reviewers
                    .entry(line.scan_id.as_str())
                    .or_default()
                    .insert(line.annotator.as_str());
            }
        }
        let assignments = borderlens_nii::assignment::current(&library).map_err(nii)?;
        let mut queue: Vec<DeskScan> = library
            .records()
            .iter()
            .map(|r| {
                let who = reviewers.get(r.metadata.scan_id.as_str());
                let assigned = assignments.get(&r.metadata.scan_id);
                DeskScan {
                    assigned_to_you: assigned
                        .is_some_and(|a| a.annotators.iter().any(|n| n == user)),
                    assigned: assigned.map_or(0, |a| a.annotators.len()),
                    scan_id: r.metadata.scan_id.clone(),
                    cargo_type: r.metadata.cargo_type.word().to_string(),
                    share: r.provenance.share().to_string(),
                    views: r.views.len(),
                    reviewed_by_you: who.is_some_and(|w| w.contains(user)),
                    reviewers: who.map_or(0, |w| w.len()),
                    shown: self.shown(&r.metadata.scan_id),
                }
            })
            .collect();
        // Yours to do first, then the rest not done by you, then what you did; stable:
        // catalogue order within each group.
        queue.sort_by_key(|s| (s.reviewed_by_you, !s.assigned_to_you));
        queue.truncate(DESK_QUEUE_MAX);
        let mut models = registry.entries().to_vec();
        models.reverse();
        Ok(DeskView {
            library: folder_name(&self.config.library),
            scans: library.records().len(),
            queue,
            models,
            active: registry.active().map(|e| e.model_id.clone()),
            figures: review_figures(&library),
            hidden_share: self.config.hidden_share,
            held_out: self.config.held_out.as_deref().map(folder_name),
            retrain: lock(&self.retrain).clone(),
        })
    }

    /// The review page of a scan's first view: the active model's proposals (run and stored as
    /// its MACHINE line when the scan has none from that model yet), shown or hidden.
    pub fn scan(&self, scan_id: &str, user: &str) -> Result<ScanReview, JobError> {
        let view = 0;
        let detector = self.active()?;
        let mut library = self.library()?;
        record_of(&library, scan_id)?;
        let mut proposals = Vec::new();
        if let Some(d) = &detector {
            let id = &d.meta.model_id;
            match proposals_of(&library, id, scan_id, view) {
                Some(p) => proposals = p.to_vec(),
                None => {
                    let lines = review::pre_annotate(&library, d, scan_id).map_err(nii)?;
                    proposals = lines
                        .iter()
                        .find(|l| l.view == view)
                        .map(|l| l.objects.clone())
                        .unwrap_or_default();
                    let _writer = lock(&self.writer);
                    // another page may have stored them meanwhile
                    let mut fresh = self.library()?;
                    if proposals_of(&fresh, id, scan_id, view).is_none() {
                        for line in lines {
                            fresh.add_annotation(line).map_err(nii)?;
                        }
                    }
                    library = fresh;
                }
            }
        }
        let record = record_of(&library, scan_id)?;
        let image = &record.views[view].channels[0].image;
        let shown = self.shown(scan_id);
        let model_id = detector.as_ref().map(|d| d.meta.model_id.clone());
        let yours = library
            .annotations()
            .iter()
            .rev()
            .find(|l| {
                l.scan_id == scan_id
                    && l.view == view
                    && l.annotator == user
                    && l.role == AnnotationRole::Annotator
            })
            .and_then(|l| match &l.review {
                // reviewed under this model: the kept objects with their proposals
                Some(r) if r.model_id == model_id => Some(
                    r.actions
                        .iter()
                        .filter_map(|a| {
                            let proposal = if shown { a.proposal } else { None };
                            a.object.clone().map(|o| (proposal, o))
                        })
                        .collect(),
                ),
                // under another model: its proposals are fresh, the earlier review not shown
                Some(_) => None,
                None if model_id.is_none() => {
                    Some(l.objects.iter().map(|o| (None, o.clone())).collect())
                }
                None => None,
            });
        let guideline = guideline::current(&library).map_err(nii)?;
        let mut classes = guideline.names();
        for c in detector.iter().flat_map(|d| d.meta.classes.iter()) {
            if !classes.contains(c) {
                classes.push(c.clone());
            }
        }
        Ok(ScanReview {
            scan_id: scan_id.to_string(),
            view,
            view_name: record.views[view].name.clone(),
            views: record.views.len(),
            width: image.width,
            height: image.height,
            energies: record.views[view]
                .channels
                .iter()
                .map(|c| c.energy.word().to_string())
                .collect(),
            cargo_type: record.metadata.cargo_type.word().to_string(),
            declared_contents: record.metadata.declared_contents.clone(),
            shown,
            model_id,
            proposals: if shown { proposals } else { Vec::new() },
            yours,
            classes,
            guideline,
        })
    }

    fn active_or_refuse(&self) -> Result<Arc<Detector>, JobError> {
        self.active()?.ok_or_else(|| {
            JobError::NotFound(
                "no detector is active for this library yet: retrain from the desk or run \
                 borderlens nii retrain"
                    .into(),
            )
        })
    }

    /// The active model's detections on every view of a scan (score at least
    /// [`DEFAULT_MIN_SCORE`]), each with its Grad-CAM heat map as a grid; `heat_map(view, n)`
    /// names where detection `n` of `view` is drawn as a PNG ([`NiiDesk::heat_png`]).
    pub fn detections(
        &self,
        scan_id: &str,
        heat_map: &dyn Fn(usize, usize) -> String,
    ) -> Result<ScanDetections, JobError> {
        let detector = self.active_or_refuse()?;
        let library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let mut views = Vec::with_capacity(record.views.len());
        for view in 0..record.views.len() {
            let kept = self.view_found(&detector, &library, record, view)?;
            let ViewFound { input, found, maps } = &*kept;
            views.push(ViewDetectionsReport {
                view,
                view_name: record.views[view].name.clone(),
                width: input.width,
                height: input.height,
                alarm: found.alarm,
                detections: found
                    .detections
                    .iter()
                    .zip(maps)
                    .enumerate()
                    .map(|(n, (d, map))| ScanDetection {
                        class: d.class.clone(),
                        score: d.score,
                        bbox: [d.bbox.x0, d.bbox.y0, d.bbox.x1, d.bbox.y1],
                        heat_map: heat_map(view, n),
                        heat_map_grid: map.clone(),
                    })
                    .collect(),
            });
        }
        Ok(ScanDetections {
            scan_id: scan_id.to_string(),
            model_id: detector.meta.model_id.clone(),
            classes: detector.meta.classes.clone(),
            heat_map_grid_side: detector.meta.shape.grid(),
            min_score: DEFAULT_MIN_SCORE,
            views,
        })
    }

    /// Detection `n` of `view` (in the order of [`NiiDesk::detections`], which is the order of
    /// the model's proposals on the desk) as a PNG: the view in grey, the Grad-CAM heat map
    /// blended in, the box outlined.
    pub fn heat_png(&self, scan_id: &str, view: usize, n: usize) -> Result<Vec<u8>, JobError> {
        let detector = self.active_or_refuse()?;
        let library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let kept = self.view_found(&detector, &library, record, view)?;
        let ViewFound { input, found, maps } = &*kept;
        let (Some(detection), Some(map)) = (found.detections.get(n), maps.get(n)) else {
            return Err(JobError::NotFound(format!(
                "model {} makes {} detection(s) on scan '{scan_id}' view {view}, not {}",
                detector.meta.model_id,
                found.detections.len(),
                n + 1
            )));
        };
        overlay_png(
            input,
            map,
            detector.meta.shape.grid(),
            Some(&detection.bbox),
        )
        .map_err(nii)
    }

    /// A view as a PNG (the high-energy or only channel in grey, 8-bit RGB).
    pub fn view_png(&self, scan_id: &str, view: usize) -> Result<Vec<u8>, JobError> {
        let input = view_of(&self.library()?, scan_id, view, 8)?;
        // no heat map: an empty 1 × 1 map
        overlay_png(&input, &[0.0], 1, None).map_err(|e| JobError::Internal(e.to_string()))
    }

    /// Stores a review: the rows diffed against the proposals of the model the page named
    /// (from its MACHINE line), as one annotator line with its [`Review`]. Checked in full
    /// before anything is written; an error names the row or field.
    pub fn save(
        &self,
        scan_id: &str,
        user: &str,
        submission: ReviewSubmission,
    ) -> Result<SavedReview, JobError> {
        let _writer = lock(&self.writer);
        let mut library = self.library()?;
        let record = record_of(&library, scan_id)?;
        let proposals: Vec<AnnotatedObject> = match &submission.model_id {
            Some(id) => proposals_of(&library, id, scan_id, submission.view)
                .ok_or_else(|| {
                    JobError::Invalid(format!(
                        "model {id} made no proposal on scan '{scan_id}' view {}: reload the page",
                        submission.view
                    ))
                })?
                .to_vec(),
            None => Vec::new(),
        };
        let shown = self.shown(scan_id);
        if !shown && submission.rows.iter().any(|r| r.proposal.is_some()) {
            return Err(JobError::Invalid(
                "this scan is reviewed without the model's proposals, but the form names one"
                    .into(),
            ));
        }
        // Hidden proposals were never seen: every object is the annotator's own addition (the
        // proposals are still kept, to measure the agreement without them).
        let seen: &[AnnotatedObject] = if shown { &proposals } else { &[] };
        let (actions, objects) = actions_of(seen, &submission.rows).map_err(invalid)?;
        let seconds = submission
            .seconds
            .filter(|s| s.is_finite() && (0.0..=MAX_REVIEW_SECONDS).contains(s));
        // The guideline the annotator worked under is recorded with the line.
        let guideline_version = guideline::current(&library).map_err(nii)?.version;
        let line = AnnotationRecord {
            scan_id: scan_id.to_string(),
            annotator: user.to_string(),
            role: AnnotationRole::Annotator,
            view: submission.view,
            objects,
            seconds,
            guideline: Some(guideline_version),
            review: Some(Review {
                model_id: submission.model_id.clone(),
                shown,
                proposals,
                actions,
            }),
        };
        check_annotation_on(record, &line)
            .map_err(|(field, reason)| JobError::Invalid(format!("{field}: {reason}")))?;
        let saved = SavedReview {
            scan_id: scan_id.to_string(),
            objects: line.objects.len(),
            actions: line.review.as_ref().map_or(0, |r| r.actions.len()),
            seconds,
            next: None,
        };
        library.add_annotation(line).map_err(nii)?;
        let mut done: BTreeSet<&str> = BTreeSet::new();
        for l in library.annotations() {
            if l.annotator == user && l.role == AnnotationRole::Annotator {
                done.insert(l.scan_id.as_str());
            }
        }
        // The caller's assigned scans first, as on the desk.
        let assignments = borderlens_nii::assignment::current(&library).map_err(nii)?;
        let mine = |id: &str| {
            assignments
                .get(id)
                .is_some_and(|a| a.annotators.iter().any(|n| n == user))
        };
        let open: Vec<&str> = library
            .records()
            .iter()
            .map(|r| r.metadata.scan_id.as_str())
            .filter(|id| !done.contains(id))
            .collect();
        let next = open
            .iter()
            .find(|id| mine(id))
            .or(open.first())
            .map(|id| id.to_string());
        Ok(SavedReview { next, ..saved })
    }

    /// Whether a retraining is running.
    pub fn retraining(&self) -> bool {
        lock(&self.retrain).running_for.is_some()
    }

    /// Claims the one retraining slot for `user`; refused while one runs or without a held-out
    /// library. Then [`NiiDesk::retrain`] runs it (the server starts it on a worker thread).
    pub fn claim_retrain(&self, user: &str) -> Result<(), JobError> {
        if self.config.held_out.is_none() {
            return Err(JobError::Invalid(
                "retraining needs a held-out library to evaluate the new model on before it may \
                 replace the active one (serve --nii-held-out LIB)"
                    .into(),
            ));
        }
        let mut state = lock(&self.retrain);
        if let Some(who) = &state.running_for {
            return Err(JobError::Invalid(format!(
                "a retraining started by {who} is running: wait for it"
            )));
        }
        state.running_for = Some(user.to_string());
        state.stage = "starting".into();
        Ok(())
    }

    /// Retrains on the corrected set, evaluates the new model and the active one on the
    /// held-out library, registers the new one (active only when not worse). Call after
    /// [`NiiDesk::claim_retrain`]; the slot is released whatever happens.
    pub fn retrain(&self, user: &str, progress: &dyn Progress) -> Result<Retrained, JobError> {
        // A panic must not hold the slot until a restart: it becomes this retraining's error.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.retrain_inner(user, progress)
        }))
        .unwrap_or_else(|_| {
            Err(JobError::Internal(
                "the retraining failed unexpectedly (see the server's log): nothing was \
                 registered"
                    .into(),
            ))
        });
        let mut state = lock(&self.retrain);
        state.running_for = None;
        state.stage = String::new();
        state.last = Some(match &outcome {
            Ok(r) => Ok(r.entry.clone()),
            Err(e) => Err(e.to_string()),
        });
        outcome
    }

    fn retrain_inner(&self, user: &str, progress: &dyn Progress) -> Result<Retrained, JobError> {
        let Some(held_out) = &self.config.held_out else {
            return Err(JobError::Invalid("no held-out library".into()));
        };
        let library = self.library()?;
        let held_out = Library::open(held_out).map_err(nii)?;
        let phases = Phases::new(progress);
        let report = |s: RetrainStage| {
            let (name, done, total) = match s {
                RetrainStage::Reading(d, t) => ("reading the corrected set", d, t),
                RetrainStage::Training(r) => ("training", r.step as u64, r.steps as u64),
                RetrainStage::Evaluating(0, d, t) => ("evaluating the new model", d, t),
                RetrainStage::Evaluating(_, d, t) => ("evaluating the active model", d, t),
            };
            phases.at(name, done, total);
            lock(&self.retrain).stage = format!("{name}: {done} of {total}");
        };
        let stop = || progress.interrupted() || self.stop.load(Ordering::SeqCst);
        let outcome = review::retrain(
            &library,
            &held_out,
            &self.config.train,
            user,
            &report,
            &stop,
        )
        .map_err(nii)?;
        phases.end();
        outcome.ok_or(JobError::Interrupted)
    }
}

/// A long job's phases on a [`Progress`]: a phase starts the first time it is named, and the
/// one before is finished then.
struct Phases<'a> {
    progress: &'a dyn Progress,
    current: Mutex<&'static str>,
}

impl<'a> Phases<'a> {
    fn new(progress: &'a dyn Progress) -> Phases<'a> {
        Phases {
            progress,
            current: Mutex::new(""),
        }
    }

    /// `done` of `total` units of phase `name`.
    fn at(&self, name: &'static str, done: u64, total: u64) {
        let mut current = lock(&self.current);
        if *current != name {
            if !current.is_empty() {
                self.progress.finish();
            }
            self.progress.start(name, Some(total));
            *current = name;
        }
        self.progress.advance(done);
    }

    /// Finishes the last phase, if one started.
    fn end(&self) {
        if !lock(&self.current).is_empty() {
            self.progress.finish();
        }
    }
}

/// Trains the detector on `library` under `source` (reading, then training, shown on
/// `progress`, which can interrupt: `Ok(None)`). The one training job of `nii train` and
/// `bench nii-detector`; `nii retrain` and the desk train through [`NiiDesk::retrain`].
pub fn train_detector(
    library: &Library,
    source: &borderlens_nii::coco::CocoSource,
    options: &TrainOptions,
    progress: &dyn Progress,
) -> Result<Option<Detector>, borderlens_nii::detector::DetectorError> {
    let phases = Phases::new(progress);
    let trained = borderlens_nii::detector::train::train_on_library(
        library,
        source,
        options,
        &|done, total| phases.at("reading the training views", done, total),
        &|s| phases.at("training", s.step as u64, s.steps as u64),
        &|| progress.interrupted(),
    );
    phases.end();
    trained
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use borderlens_nii::batch::generate_into;
    use borderlens_nii::generate::{GeneratorParams, ThreatClass};
    use borderlens_nii::BoxPx;

    pub(crate) fn desk(dir: &Path, hidden_share: f64) -> NiiDesk {
        let params = GeneratorParams {
            width: 96,
            height: 96,
            cargo_mix: [1.0, 0.0, 0.0],
            clutter_density: [0.3, 0.6],
            threat_rate: 0.9,
            max_threats: 1,
            threat_mix: vec![(ThreatClass::Gun, 1.0), (ThreatClass::Bottle, 1.0)],
            mm_per_pixel: 4.0,
            ..GeneratorParams::default()
        };
        for (name, seed) in [("lib", 1), ("held", 2)] {
            let mut library = Library::create(&dir.join(name)).unwrap();
            generate_into(&mut library, &params, seed, 12, &|_| {}, &|| false).unwrap();
        }
        let mut config = DeskConfig::new(dir.join("lib"));
        config.held_out = Some(dir.join("held"));
        config.hidden_share = hidden_share;
        // the first network: the deeper trunk and transposition learn too slowly in three
        // passes over a dozen tiny views to propose anything
        config.train = TrainOptions {
            epochs: 3,
            batch: 4,
            side: 32,
            width: 4,
            deepest_stride: 8,
            transpose: false,
            ..TrainOptions::default()
        };
        NiiDesk::new(config).unwrap()
    }

    pub(super) fn row(proposal: Option<usize>, x0: f64) -> Row {
        Row {
            proposal,
            deleted: false,
            object: Some(AnnotatedObject {
                label: "gun".into(),
                bbox: BoxPx::new(x0, 1.0, x0 + 10.0, 11.0).unwrap(),
                score: 1.0,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    /// Before any model: no proposals, a review of added objects; an idle page counts as
    /// untimed; a box outside the view is refused naming its field, and nothing is written.
    #[test]
    fn reviews_without_a_model_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        let id = desk.desk("ann").unwrap().queue[0].scan_id.clone();
        let page = desk.scan(&id, "ann").unwrap();
        assert!(page.model_id.is_none() && page.proposals.is_empty() && page.shown);
        let saved = desk
            .save(
                &id,
                "ann",
                ReviewSubmission {
                    view: 0,
                    model_id: None,
                    rows: vec![row(None, 2.0)],
                    seconds: Some(MAX_REVIEW_SECONDS + 1.0),
                },
            )
            .unwrap();
        assert_eq!((saved.objects, saved.actions, saved.seconds), (1, 1, None));
        assert_ne!(saved.next.as_deref(), Some(id.as_str()));
        let view = desk.desk("ann").unwrap();
        assert!(view.queue.last().unwrap().reviewed_by_you);
        assert_eq!(view.figures.shown.views, 1);
        assert_eq!(view.figures.shown.timed, 0);
        let err = desk
            .save(
                &id,
                "ann",
                ReviewSubmission {
                    view: 0,
                    model_id: None,
                    rows: vec![row(None, 90.0)],
                    seconds: Some(5.0),
                },
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("objects[0].bbox"), "{err}");
        let library = Library::open(&dir.path().join("lib")).unwrap();
        assert_eq!(
            library.annotations().len(),
            1,
            "the refused review wrote nothing"
        );
        // The line records the guideline it was drawn under: the built-in version 0, then the
        // version published since.
        assert_eq!(library.annotations()[0].guideline, Some(0));
        let published =
            guideline::publish(&library, guideline::default_guideline().classes).unwrap();
        assert_eq!(published.version, 1);
        let other = saved.next.clone().unwrap();
        desk.save(
            &other,
            "ann",
            ReviewSubmission {
                view: 0,
                model_id: None,
                rows: vec![row(None, 2.0)],
                seconds: Some(3.0),
            },
        )
        .unwrap();
        let library = Library::open(&dir.path().join("lib")).unwrap();
        assert_eq!(library.annotations()[1].guideline, Some(1));
    }

    /// Scans assigned to the caller come first, marked; others see them assigned elsewhere.
    #[test]
    fn the_scans_assigned_to_an_annotator_come_first_on_their_desk() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        let before = desk.desk("ann").unwrap().queue;
        assert!(before.iter().all(|s| !s.assigned_to_you && s.assigned == 0));
        let last = before.last().unwrap().scan_id.clone();
        let library = Library::open(&dir.path().join("lib")).unwrap();
        let team = ["ann".to_string(), "bob".to_string()];
        borderlens_nii::assignment::assign(
            &library,
            &team,
            2,
            Some(std::slice::from_ref(&last)),
            false,
            "lead",
        )
        .unwrap();
        let mine = desk.desk("ann").unwrap().queue;
        assert_eq!(mine[0].scan_id, last);
        assert!(mine[0].assigned_to_you && mine[0].assigned == 2);
        assert!(mine[1..].iter().all(|s| !s.assigned_to_you));
        let theirs = desk.desk("cho").unwrap().queue;
        let it = theirs.iter().find(|s| s.scan_id == last).unwrap();
        assert!(!it.assigned_to_you && it.assigned == 2);
        assert_ne!(
            theirs[0].scan_id, last,
            "not assigned to cho: catalogue order"
        );
    }

    /// With a model and every scan hidden: the page shows no proposal though the model ran
    /// (its MACHINE line is stored), a row that names a proposal is refused, and the review
    /// keeps the proposals for the agreement without listing them as actions.
    #[test]
    fn hidden_scans_keep_proposals_out_of_sight_and_out_of_the_actions() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 1.0);
        desk.claim_retrain("ann").unwrap();
        assert!(desk
            .claim_retrain("other")
            .unwrap_err()
            .to_string()
            .contains("running"));
        let trained = desk.retrain("ann", &crate::Silent).unwrap();
        assert!(!desk.retraining());
        let id = desk.desk("ann").unwrap().queue[0].scan_id.clone();
        let page = desk.scan(&id, "ann").unwrap();
        assert!(!page.shown && page.proposals.is_empty());
        assert_eq!(
            page.model_id.as_deref(),
            Some(trained.entry.model_id.as_str())
        );
        let library = Library::open(&dir.path().join("lib")).unwrap();
        let machine = proposals_of(&library, &trained.entry.model_id, &id, 0)
            .expect("the model's proposals are stored")
            .to_vec();
        let submission = |rows| ReviewSubmission {
            view: 0,
            model_id: page.model_id.clone(),
            rows,
            seconds: Some(12.0),
        };
        let err = desk
            .save(&id, "ann", submission(vec![row(Some(0), 2.0)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("without the model's proposals"), "{err}");
        desk.save(&id, "ann", submission(vec![row(None, 2.0)]))
            .unwrap();
        let library = Library::open(&dir.path().join("lib")).unwrap();
        let review = library
            .annotations()
            .last()
            .unwrap()
            .review
            .clone()
            .unwrap();
        assert!(!review.shown);
        assert_eq!(review.proposals, machine);
        assert_eq!(review.actions.len(), 1);
        assert_eq!(review_figures(&library).hidden.views, 1);
    }

    /// A declaration page asks for a scan's detections, then the browser for each heat map: the
    /// detector runs once per view, and the heat maps are those of the detections.
    #[test]
    fn detections_and_their_heat_maps_run_the_detector_once_per_view() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        assert!(desk.detections("x", &|_, _| String::new()).is_err());
        desk.claim_retrain("ann").unwrap();
        desk.retrain("ann", &crate::Silent).unwrap();
        let library = Library::open(&dir.path().join("lib")).unwrap();
        let ids: Vec<String> = library
            .records()
            .iter()
            .map(|r| r.metadata.scan_id.clone())
            .collect();
        let before = desk.views_run();
        let mut views = 0;
        let mut maps = 0;
        for id in &ids {
            let found = desk.detections(id, &|_, _| String::new()).unwrap();
            views += found.views.len() as u64;
            for v in &found.views {
                for n in 0..v.detections.len() {
                    let png = desk.heat_png(id, v.view, n).unwrap();
                    assert!(png.starts_with(b"\x89PNG"));
                    maps += 1;
                }
                let beyond = desk.heat_png(id, v.view, v.detections.len());
                assert!(beyond.unwrap_err().to_string().contains("detection(s)"));
            }
            // Asked again: the same detections.
            let again = desk.detections(id, &|_, _| String::new()).unwrap();
            assert_eq!(
                serde_json::to_value(&again).unwrap(),
                serde_json::to_value(&found).unwrap()
            );
        }
        assert!(maps > 0, "no detection to draw");
        // Twelve scans: within what the desk keeps.
        assert_eq!(desk.views_run() - before, views);
    }
}

#[cfg(test)]
mod rereview {
    use super::tests_support::*;
    use super::*;

    /// Opening a scan one reviewed before under the same model gives one's objects still tied
    /// to their proposals, so that saving them again records the same actions.
    #[test]
    fn a_second_review_keeps_the_proposals_it_started_from() {
        let dir = tempfile::tempdir().unwrap();
        let desk = desk(dir.path(), 0.0);
        desk.claim_retrain("ann").unwrap();
        desk.retrain("ann", &crate::Silent).unwrap();
        let scans = desk.desk("ann").unwrap().queue;
        let (id, page) = scans
            .iter()
            .map(|s| (s.scan_id.clone(), desk.scan(&s.scan_id, "ann").unwrap()))
            .find(|(_, p)| !p.proposals.is_empty())
            .expect("a scan with a proposal");
        let mut rows: Vec<Row> = page
            .proposals
            .iter()
            .enumerate()
            .map(|(i, p)| Row {
                proposal: Some(i),
                deleted: i == 0,
                object: Some(p.clone()),
            })
            .collect();
        rows.push(row(None, 2.0));
        let submission = |rows: Vec<Row>| ReviewSubmission {
            view: 0,
            model_id: page.model_id.clone(),
            rows,
            seconds: Some(3.0),
        };
        desk.save(&id, "ann", submission(rows)).unwrap();
        let again = desk.scan(&id, "ann").unwrap();
        let yours = again.yours.clone().expect("the earlier review");
        let rows: Vec<Row> = yours
            .into_iter()
            .map(|(proposal, o)| Row {
                proposal,
                deleted: false,
                object: Some(o),
            })
            .collect();
        desk.save(&id, "ann", submission(rows)).unwrap();
        let library = Library::open(&dir.path().join("lib")).unwrap();
        let kinds = |n: usize| -> Vec<(ActionKindWord, Option<usize>)> {
            let lines: Vec<_> = library
                .annotations()
                .iter()
                .filter(|l| l.review.is_some())
                .collect();
            let mut k: Vec<_> = lines[n]
                .review
                .as_ref()
                .unwrap()
                .actions
                .iter()
                .map(|a| (a.kind.word(), a.proposal))
                .collect();
            k.sort();
            k
        };
        assert_eq!(kinds(0), kinds(1));
        assert!(kinds(1).contains(&("delete", Some(0))));
        assert!(kinds(1).contains(&("add", None)));
    }

    type ActionKindWord = &'static str;
}
