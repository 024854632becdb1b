//! `borderlens nii ...`: the X-ray reference library (generate, project threats, report,
//! agreement, verify), over `borderlens-nii`. Parsing and printing only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use borderlens_app::Progress;
use borderlens_nii::agreement::{agreement, AgreementInput, AgreementReport};
use borderlens_nii::anonymise::{Anonymiser, MaskRect};
use borderlens_nii::batch::{generate_into, project_into, BatchSummary, ProjectOptions};
use borderlens_nii::coco::{export_coco, import_coco, CocoExportOptions, CocoSource};
use borderlens_nii::dicos::{
    export_dicos, export_secondary_capture, import_dicos, DicomExportSummary,
};
use borderlens_nii::generate::{GeneratorParams, ThreatClass};
use borderlens_nii::import::{import_folder_with, ImportOptions};
use borderlens_nii::package::{
    export_package, import_package, ExportOptions, ImportSummary, Refusal,
};
use borderlens_nii::report::{quality_report, Count, QualityReport};
use borderlens_nii::tip::TipLimits;
use borderlens_nii::yolo::{export_yolo, import_yolo};
use borderlens_nii::{Library, LibraryError};
use clap::{Args, Subcommand};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use crate::output::outln;
use crate::progress::Bars;

#[derive(Subcommand)]
pub enum NiiCommand {
    /// Generate synthetic dual-energy scans (16-bit PNG, content-addressed) into a library
    /// folder, with their true boxes, masks, metadata and full provenance; seedable, on every
    /// core; Ctrl-C stops cleanly and the same command continues.
    Generate(GenerateArgs),
    /// Project threats (threat image projection) into scans of a library: new scans whose
    /// provenance says "projected", never counted as real.
    Tip(TipArgs),
    /// The quality report of a library: size, class balance (rare classes named), diversity,
    /// resolution, real/staged/synthetic/projected shares, annotation coverage, agreement,
    /// disputed share, privacy status; --charts writes SVG bar charts.
    Report(ReportArgs),
    /// Consensus and agreement of annotators from a JSON file: Krippendorff's α (boxes with
    /// 1 − IoU, labels nominal; per class and overall), pairwise F1 and mean IoU, disputed objects.
    Agreement(AgreementArgs),
    /// Read every image of a library back and check its hash, depth and size.
    Verify(VerifyArgs),
    /// The annotation guideline of a library: its threat and benign classes with definitions
    /// and example scans. --publish FILE (JSON: {"classes": [{"name", "kind", "definition",
    /// "examples"}]}) publishes a new version, checked in full first; --history lists them all.
    Guideline(GuidelineArgs),
    /// Assign scans to annotators: each scan without an assignment (or --scans, or every one
    /// with --reassign) to --k of --annotators, the load kept even (the library's assignments
    /// counted). Without --annotators: each annotator's progress (assigned, done). The desk
    /// shows each annotator their scans first.
    Assign(AssignArgs),
    /// Catalogue a library in the store (--db / --database-url): its scans' rows (ids,
    /// container numbers and postal item ids, purpose, outcome, provenance; no personal field)
    /// replace the library's previous ones, so that declarations naming a scan's container or
    /// parcel show the scan, and the scan its declarations. `serve` catalogues the library it
    /// serves at start; run this after the library changes.
    Catalogue(CatalogueArgs),
    /// Export scans as a scan package (manifest.json + images/<sha256>.png + annotations.json),
    /// the exchange format between administrations. Scans whose licence forbids redistribution
    /// or that are not anonymised are left out and listed (exit 1); --anonymise-key-file
    /// anonymises on the way out (keyed pseudonyms, free text removed, --mask regions set to
    /// air in every energy channel, a log kept with each scan).
    Export(ExportArgs),
    /// Import a scan package into a library: the whole package is checked first (hashes,
    /// images, bit depth, boxes, scans named by the annotations) and nothing is written unless
    /// all of it passes; importing the same package again changes nothing.
    ImportPackage(ImportPackageArgs),
    /// Export scans in the COCO object-detection format: annotations.json and one 8-bit PNG per
    /// view (images/<scan>-<view>.png, the high-energy transmission; the 16-bit originals stay
    /// in the library and the scan package). Scans not redistributable or not anonymised are
    /// left out and listed (exit 1).
    ExportCoco(ExportCocoArgs),
    /// Import a COCO file's boxes for scans already in the library as a new annotator source
    /// (a model's or another tool's), compared and merged by the consensus like a person's;
    /// the whole file is checked first; importing it again changes nothing.
    ImportCoco(ImportCocoArgs),
    /// Export scans in the YOLO format (Ultralytics, Darknet): images/<scan>-<view>.png (8-bit,
    /// as for COCO), labels/<scan>-<view>.txt (`class cx cy w h`, fractions of the image),
    /// classes.txt and data.yaml. Same boxes (--source), scans and refusals as export-coco.
    ExportYolo(ExportCocoArgs),
    /// Import a YOLO folder's boxes (classes.txt, labels/*.txt named <scan>-<view>.txt; an
    /// optional sixth column is the score) for scans already in the library as a new annotator
    /// source; every line is checked first (file, line and column named, exit 1); importing it
    /// again changes nothing.
    ImportYolo(ImportYoloArgs),
    /// Export scans as DICOS-structured DICOM objects (docs/nii.md, "DICOS and DICOM"): one
    /// DICOS digital X-ray image per view and energy (16-bit transmission, metadata in
    /// standard attributes, the full record in a private block) and one DICOS threat detection
    /// report per source and view (annotators OPERATOR, the model MACHINE, the consensus and
    /// the true objects GROUND TRUTH). Same refusals and anonymisation as `export` (exit 1 when
    /// a scan is left out). DICOS-structured, not conformant.
    ExportDicos(ExportDicosArgs),
    /// Export one plain DICOM secondary-capture image per view (the high-energy channel, 16-bit
    /// grayscale, air bright) that ordinary DICOM viewers open. Same refusals and anonymisation
    /// as `export`.
    ExportDicom(ExportArgs),
    /// Import a DICOS folder written by `export-dicos`: every file is checked first (SOP class,
    /// uncompressed 16-bit grayscale pixels, size, the record, every channel, report sources and
    /// boxes) and nothing is written unless all of it passes; importing it again changes nothing.
    ImportDicos(ImportDicosArgs),
    /// Import scans made elsewhere: a folder of 16-bit grayscale PNG or TIFF transmission images
    /// described by metadata.csv (one row per image: scan id, file, view, energy, then the
    /// scan's metadata, source real or staged, licence, redistributable), with the boxes people
    /// drew on them in an optional boxes.csv. Everything is checked first (image format, bit
    /// depth, size, decodable; rows; boxes inside their image) and nothing is written unless all
    /// of it passes: file, line and field named, exit 1. Importing again changes nothing.
    ImportScans(ImportScansArgs),
    /// Train the threat detector (a small convolutional network on the CPU) on a library's
    /// labelled views: boxes from the truth, the consensus or one annotator; seedable (same seed,
    /// same model); the model folder records the training set's digest, mix, classes and the
    /// figures on each --eval library. Ctrl-C stops and writes nothing.
    Train(crate::detector_cmds::TrainArgs),
    /// Figures of a detector on a labelled library it did not train on: AP@0.5 per class and
    /// mAP, the detection rate at 1 % and 5 % false alarms per view, the Grad-CAM pointing game,
    /// views per second.
    Evaluate(crate::detector_cmds::EvaluateArgs),
    /// Run a detector on scans: boxes, classes, scores and each view's alarm as JSON, and with
    /// --out one PNG per detection with its Grad-CAM heat map over the scan.
    Detect(crate::detector_cmds::DetectArgs),
    /// The hybrid loop's retraining, as the desk's button does it: train on the library's
    /// corrected set (people's boxes where they drew, the truth elsewhere; never a model's),
    /// evaluate the new model and the active one on the held-out library, register the new
    /// version in LIB/models/ and make it active only when it is not worse on mAP@0.5 and on
    /// the detection rate at 1 % false alarms. Ctrl-C stops and registers nothing.
    Retrain(crate::detector_cmds::RetrainArgs),
    /// The model versions of a library (LIB/models/) and the hybrid loop's figures: views
    /// reviewed with the proposals shown and hidden, views per hour, agreement with the model
    /// and with the truth, actions.
    Models(crate::detector_cmds::ModelsArgs),
}

#[derive(Args)]
pub struct ExportCocoArgs {
    /// Library folder.
    #[arg(long)]
    lib: PathBuf,
    /// Folder to write (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Which boxes: `consensus` (the annotators' accepted consensus), `truth` (generated or
    /// projected objects) or an annotator's name.
    #[arg(long, default_value = "consensus")]
    source: String,
    /// Only these scans (comma-separated ids; default: every scan).
    #[arg(long, value_delimiter = ',')]
    scans: Option<Vec<String>>,
}

#[derive(Args)]
pub struct ImportYoloArgs {
    /// Library folder.
    #[arg(long)]
    lib: PathBuf,
    /// The YOLO folder (classes.txt and labels/).
    folder: PathBuf,
    /// Name of the annotator source the boxes are written as (e.g. `yolov8-run3`).
    #[arg(long)]
    source: String,
}

#[derive(Args)]
pub struct ImportCocoArgs {
    /// Library folder.
    #[arg(long)]
    lib: PathBuf,
    /// The COCO annotations file.
    file: PathBuf,
    /// Name of the annotator source the boxes are written as (e.g. `detector-v1`).
    #[arg(long)]
    source: String,
}

#[derive(Args)]
pub struct ExportArgs {
    /// Library folder.
    #[arg(long)]
    lib: PathBuf,
    /// Folder to write (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Only these scans (comma-separated ids; default: every scan).
    #[arg(long, value_delimiter = ',')]
    scans: Option<Vec<String>>,
    /// Anonymise with the key in this file (at least 16 bytes; e.g. `head -c 32 /dev/urandom > key`):
    /// names, addresses and phone numbers become keyed pseudonyms, free text is removed,
    /// annotators' names become pseudonyms.
    #[arg(long)]
    anonymise_key_file: Option<PathBuf>,
    /// Image region to mask in every view, x,y,w,h in pixels (repeat for several); needs
    /// --anonymise-key-file.
    #[arg(long = "mask", value_name = "X,Y,W,H")]
    masks: Vec<String>,
    /// Name of the exporting administration or unit, written in the manifest (`export` only).
    #[arg(long)]
    organisation: Option<String>,
}

#[derive(Args)]
pub struct ExportDicosArgs {
    #[command(flatten)]
    export: ExportArgs,
    /// Leave out the model's proposals (MACHINE reports).
    #[arg(long)]
    no_model: bool,
}

#[derive(Args)]
pub struct ImportDicosArgs {
    /// Library folder (created when missing).
    #[arg(long)]
    lib: PathBuf,
    /// The folder written by `export-dicos` (sub-folders are read; files without the DICM
    /// prefix and dot files are skipped).
    folder: PathBuf,
}

#[derive(Args)]
pub struct ImportScansArgs {
    /// Library folder (created when missing).
    #[arg(long)]
    lib: PathBuf,
    /// The folder with metadata.csv (docs/nii.md, "Bringing your own scans").
    folder: PathBuf,
    /// Take 8-bit JPEG and PNG renderings too (public sets such as SIXray and PIDray):
    /// approximated back to transmission, a colour one giving both energies, and marked so in
    /// each scan's provenance. Without it they are refused.
    #[arg(long)]
    renderings: bool,
}

#[derive(Args)]
pub struct ImportPackageArgs {
    /// Library folder (created when missing).
    #[arg(long)]
    lib: PathBuf,
    /// The package folder.
    package: PathBuf,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Scans to generate (scans already in the library are skipped).
    #[arg(long)]
    count: u64,
    /// Seed of the run (scan i of seed s is always the same scan).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Library folder (created when missing).
    #[arg(long)]
    out: PathBuf,
    /// Generator parameters as JSON (every field of the `params` object of a scan's provenance;
    /// default: the built-in parameters). The flags below override it.
    #[arg(long)]
    params: Option<PathBuf>,
    /// Image width and height, pixels.
    #[arg(long)]
    size: Option<u32>,
    /// Clutter density range, objects per 10,000 px², e.g. 0.5,2.
    #[arg(long, value_delimiter = ',')]
    clutter_density: Option<Vec<f64>>,
    /// Largest threat rotation, degrees (0–180).
    #[arg(long)]
    max_rotation: Option<f64>,
    /// Largest IoU between two threats of a scan (0–1).
    #[arg(long)]
    max_overlap: Option<f64>,
    /// Probability that a scan holds a threat.
    #[arg(long)]
    threat_rate: Option<f64>,
    /// Threat classes to draw, comma-separated (default: all): knife, gun, blade, bottle,
    /// drug_bricks, cigarette_cartons, ammunition, ied, scissors.
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
}

#[derive(Args)]
pub struct TipArgs {
    /// Library folder.
    library: PathBuf,
    /// Projected scans to make.
    #[arg(long, default_value_t = 10)]
    count: usize,
    /// Seed of the choice of scans, threats, transforms, positions and noise.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Threat classes, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    classes: Option<Vec<String>>,
    /// Photons per pixel (low,high) of scans without a generator record; default: estimated
    /// from each scan's noise.
    #[arg(long, value_delimiter = ',')]
    i0: Option<Vec<f64>>,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Library folder.
    library: PathBuf,
    /// Folder for the SVG charts.
    #[arg(long)]
    charts: Option<PathBuf>,
    /// Also read every image back and check it (slower).
    #[arg(long)]
    verify: bool,
}

#[derive(Args)]
pub struct AgreementArgs {
    /// JSON file: {"iou_threshold": 0.5, "quorum": 2, "scans": [{"scan_id": "s1",
    /// "annotations": [{"annotator": "a", "objects": [{"label": "knife", "bbox": [x0, y0, x1, y1]}]}]}]}
    file: PathBuf,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// Library folder.
    library: PathBuf,
}

#[derive(Args)]
pub struct GuidelineArgs {
    /// Library folder.
    library: PathBuf,
    /// Publish a new version from this JSON file.
    #[arg(long)]
    publish: Option<PathBuf>,
    /// Every version, oldest first.
    #[arg(long, conflicts_with = "publish")]
    history: bool,
}

#[derive(Args)]
pub struct CatalogueArgs {
    /// Library folder.
    library: PathBuf,
}

/// `borderlens nii catalogue LIB`: the library's scans into the store.
pub fn catalogue(
    store: &mut dyn borderlens_store::Backend,
    a: &CatalogueArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = borderlens_app::catalogue_library(store, &a.library)?;
    if json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "catalogued {} scans of {} ({} with a container number, {} with a postal item id) in {:.1}s",
        report.scans,
        report.library,
        report.with_container,
        report.with_postal_item,
        report.seconds
    );
    outln!(
        "{} declarations in the store name one of their containers or parcels",
        report.linked_declarations
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct AssignArgs {
    /// Library folder.
    library: PathBuf,
    /// The team, comma-separated (the server's user names of the annotators).
    #[arg(long, value_delimiter = ',')]
    annotators: Vec<String>,
    /// Annotators per scan (default 2).
    #[arg(long)]
    k: Option<usize>,
    /// Only these scans (comma-separated ids); default every scan of the library.
    #[arg(long, value_delimiter = ',')]
    scans: Vec<String>,
    /// Assign again scans that have an assignment (the new one replaces it; both are kept).
    #[arg(long)]
    reassign: bool,
}

/// What `nii guideline --publish` reads.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GuidelineFile {
    classes: Vec<borderlens_nii::guideline::GuidelineClass>,
}

fn print_guideline(g: &borderlens_nii::guideline::Guideline) -> anyhow::Result<()> {
    if g.version == 0 {
        outln!("guideline version 0 (built in: none published yet)");
    } else {
        outln!(
            "guideline version {} (published {})",
            g.version,
            g.published
        );
    }
    for c in &g.classes {
        outln!("  {} ({}): {}", c.name, c.kind.word(), c.definition);
        if !c.examples.is_empty() {
            outln!("    examples: {}", c.examples.join(", "));
        }
    }
    Ok(())
}

fn classes(words: &Option<Vec<String>>) -> anyhow::Result<Vec<ThreatClass>> {
    words
        .iter()
        .flatten()
        .map(|w| ThreatClass::parse(w.trim()).map_err(anyhow::Error::msg))
        .collect()
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub(crate) fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED);
    t.set_header(header.to_vec());
    t
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.3}"))
}

fn params_from(a: &GenerateArgs) -> anyhow::Result<GeneratorParams> {
    let mut p = match &a.params {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not generator parameters", path.display()))?
        }
        None => GeneratorParams::default(),
    };
    if let Some(s) = a.size {
        p.width = s;
        p.height = s;
    }
    if let Some(v) = &a.clutter_density {
        let [low, high] = v[..] else {
            bail!("--clutter-density takes two numbers, low,high (e.g. 0.5,2)");
        };
        p.clutter_density = [low, high];
    }
    if let Some(v) = a.max_rotation {
        p.max_rotation_deg = v;
    }
    if let Some(v) = a.max_overlap {
        p.max_overlap = v;
    }
    if let Some(v) = a.threat_rate {
        p.threat_rate = v;
    }
    let chosen = classes(&a.classes)?;
    if !chosen.is_empty() {
        p.threat_mix = chosen.into_iter().map(|c| (c, 1.0)).collect();
    }
    p.validate()
        .map_err(anyhow::Error::msg)
        .context("generator parameters")?;
    Ok(p)
}

fn summary_out(what: &str, s: &BatchSummary, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        print_json(s)?;
    } else {
        outln!(
            "{what}: {} written, {} already there, {} not possible, {:.1} s{}",
            s.written,
            s.skipped,
            s.failed.len(),
            s.seconds,
            if s.interrupted {
                " (stopped; run the same command again to continue)"
            } else {
                ""
            }
        );
        for f in &s.failed {
            outln!("  {f}");
        }
    }
    Ok(if s.interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}

/// Opens a library; a torn last line (left by a crash mid-write) is not read and is said on
/// stderr (`nii verify` lists it and exits 1).
pub(crate) fn open(path: &Path) -> anyhow::Result<Library> {
    let library = Library::open(path)?;
    warn_recovered(&library);
    Ok(library)
}

fn warn_recovered(library: &Library) {
    for r in library.recovered() {
        eprintln!("borderlens: warning: {r}");
    }
}

pub fn run(command: &NiiCommand, actor: &str, json: bool, bars: &Bars) -> anyhow::Result<ExitCode> {
    match command {
        NiiCommand::Train(a) => crate::detector_cmds::train(a, json, bars),
        NiiCommand::Evaluate(a) => crate::detector_cmds::evaluate_cmd(a, json, bars),
        NiiCommand::Detect(a) => crate::detector_cmds::detect(a, json),
        NiiCommand::Retrain(a) => crate::detector_cmds::retrain(a, actor, json, bars),
        NiiCommand::Models(a) => crate::detector_cmds::models(a, json),
        NiiCommand::Generate(a) => {
            let params = params_from(a)?;
            let mut library = Library::create(&a.out)?;
            warn_recovered(&library);
            bars.start("generating scans", Some(a.count));
            let result = generate_into(
                &mut library,
                &params,
                a.seed,
                a.count,
                &|done| bars.advance(done),
                &|| bars.interrupted(),
            );
            bars.finish();
            let s = result?;
            if !json && s.written > 0 {
                outln!(
                    "{:.1} scans/s ({}×{} dual-energy, PNG written and hashed)",
                    s.written as f64 / s.seconds.max(1e-9),
                    params.width,
                    params.height
                );
            }
            summary_out(&format!("library {}", a.out.display()), &s, json)
        }
        NiiCommand::Tip(a) => {
            let mut library = open(&a.library)?;
            let i0 = match a.i0.as_deref() {
                None => None,
                Some(&[low, high]) if [low, high].iter().all(|x| x.is_finite() && *x > 0.0) => {
                    Some([low, high])
                }
                Some(_) => {
                    bail!("--i0 must be two positive numbers (photons per pixel, low,high)")
                }
            };
            let options = ProjectOptions {
                count: a.count,
                seed: a.seed,
                classes: classes(&a.classes)?,
                limits: TipLimits::default(),
                i0,
            };
            bars.start("projecting threats", Some(a.count as u64));
            let result = project_into(&mut library, &options, &|done| bars.advance(done), &|| {
                bars.interrupted()
            });
            bars.finish();
            summary_out(&format!("library {}", a.library.display()), &result?, json)
        }
        NiiCommand::Report(a) => {
            let library = open(&a.library)?;
            if a.verify {
                let problems = library.verify();
                if !problems.is_empty() {
                    for p in &problems {
                        eprintln!("borderlens: {p}");
                    }
                    bail!("{} image(s) failed the check", problems.len());
                }
            }
            let report = quality_report(&library);
            if let Some(dir) = &a.charts {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                for (name, svg) in report.charts() {
                    let path = dir.join(&name);
                    std::fs::write(&path, svg)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                }
            }
            if json {
                print_json(&report)?;
            } else {
                print_report(&report, &a.library, a.charts.as_deref())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        NiiCommand::Agreement(a) => {
            let file = &a.file;
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let input: AgreementInput = serde_json::from_str(&text)
                .with_context(|| format!("{}: not an agreement input", file.display()))?;
            input
                .validate()
                .map_err(|e| anyhow::anyhow!("{}: field {e}", file.display()))?;
            let report = agreement(&input);
            if json {
                print_json(&report)?;
            } else {
                print_agreement(&report)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        NiiCommand::Export(a) => export(a, json),
        NiiCommand::ImportPackage(a) => {
            import_into(&a.lib, &a.package, "package", json, import_package)
        }
        NiiCommand::ImportDicos(a) => {
            import_into(&a.lib, &a.folder, "DICOS folder", json, import_dicos)
        }
        NiiCommand::ImportScans(a) => {
            let options = ImportOptions {
                renderings: a.renderings,
            };
            import_into(&a.lib, &a.folder, "folder", json, |library, dir| {
                import_folder_with(library, dir, options)
            })
        }
        NiiCommand::ExportDicos(a) => {
            no_organisation(&a.export)?;
            let mut options = export_options(&a.export)?;
            options.include_machine = !a.no_model;
            let library = open(&a.export.lib)?;
            let s = export_dicos(&library, &options, &a.export.out)?;
            print_dicom_export(&s, "DICOS", json)
        }
        NiiCommand::ExportDicom(a) => {
            no_organisation(a)?;
            let options = export_options(a)?;
            let library = open(&a.lib)?;
            let s = export_secondary_capture(&library, &options, &a.out)?;
            print_dicom_export(&s, "DICOM secondary capture", json)
        }
        NiiCommand::ExportCoco(a) => {
            let library = open(&a.lib)?;
            let options = CocoExportOptions {
                scans: a.scans.clone(),
                source: CocoSource::parse(&a.source),
            };
            let s = export_coco(&library, &options, &a.out)?;
            let line = s.folder.as_ref().map(|p| {
                format!(
                    "COCO {}: {} scans, {} images (8-bit), {} boxes ({}), {} categories",
                    p.display(),
                    s.scans,
                    s.images,
                    s.annotations,
                    s.source,
                    s.categories
                )
            });
            export_outcome(&s, json, line, &s.refused)
        }
        NiiCommand::ExportYolo(a) => {
            let library = open(&a.lib)?;
            let options = CocoExportOptions {
                scans: a.scans.clone(),
                source: CocoSource::parse(&a.source),
            };
            let s = export_yolo(&library, &options, &a.out)?;
            let line = s.folder.as_ref().map(|p| {
                format!(
                    "YOLO {}: {} scans, {} images (8-bit) with their label files, {} boxes ({}), {} classes",
                    p.display(),
                    s.scans,
                    s.images,
                    s.boxes,
                    s.source,
                    s.classes
                )
            });
            export_outcome(&s, json, line, &s.refused)
        }
        NiiCommand::ImportYolo(a) => {
            let mut library = open(&a.lib)?;
            match import_yolo(&mut library, &a.folder, &a.source) {
                Ok(s) => {
                    if json {
                        print_json(&s)?;
                    } else {
                        outln!(
                            "YOLO {} into {} as '{}': {} label files, {} boxes; {} lines added, {} already there",
                            a.folder.display(),
                            a.lib.display(),
                            s.source,
                            s.images,
                            s.annotations,
                            s.lines_added,
                            s.lines_present
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                // Input that fails its checks (a file of the folder, or the folder itself) is
                // refused input: nothing was written. Other errors are errors (exit 2).
                Err(e) if !e.file.starts_with(&a.folder) => Err(e.into()),
                Err(e) => refused_input("YOLO folder", &e, json),
            }
        }
        NiiCommand::ImportCoco(a) => {
            let mut library = open(&a.lib)?;
            match import_coco(&mut library, &a.file, &a.source) {
                Ok(s) => {
                    if json {
                        print_json(&s)?;
                    } else {
                        outln!(
                            "COCO {} into {} as '{}': {} images, {} boxes; {} lines added, {} already there",
                            a.file.display(),
                            a.lib.display(),
                            s.source,
                            s.images,
                            s.annotations,
                            s.lines_added,
                            s.lines_present
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                // A file that fails its checks is refused input: nothing was written. Other
                // errors (the library cannot be written) are errors (exit 2).
                Err(e) if e.file != a.file => Err(e.into()),
                Err(e) => refused_input("COCO file", &e, json),
            }
        }
        NiiCommand::Catalogue(_) => {
            bail!("nii catalogue needs the store: it is run by the dispatcher")
        }
        NiiCommand::Assign(a) => {
            use borderlens_nii::assignment;
            let library = open(&a.library)?;
            if !a.annotators.is_empty() {
                let k = a.k.unwrap_or(2);
                let scans = (!a.scans.is_empty()).then_some(a.scans.as_slice());
                let planned = match assignment::plan(
                    &library,
                    &a.annotators,
                    k,
                    scans,
                    a.reassign,
                    actor,
                ) {
                    Ok(planned) => planned,
                    Err((field, reason)) => {
                        eprintln!(
                                "borderlens: assignment refused, nothing written: field {field}: {reason}"
                            );
                        return Ok(ExitCode::from(1));
                    }
                };
                let done = assignment::write(&library, planned)?;
                if json {
                    print_json(&done)?;
                    return Ok(ExitCode::SUCCESS);
                }
                outln!("{} scans assigned, {k} annotators each", done.len());
            } else if !a.scans.is_empty() || a.reassign || a.k.is_some() {
                anyhow::bail!("--k, --scans and --reassign need --annotators");
            }
            let progress = assignment::progress(&library)?;
            if json {
                print_json(&progress)?;
                return Ok(ExitCode::SUCCESS);
            }
            if progress.is_empty() {
                outln!("no scan is assigned yet: nii assign LIB --annotators a,b,c --k 2");
                return Ok(ExitCode::SUCCESS);
            }
            let mut t = table(&["annotator", "assigned", "done", "to do"]);
            for p in &progress {
                t.add_row(vec![
                    p.annotator.clone(),
                    p.assigned.to_string(),
                    p.done.to_string(),
                    (p.assigned - p.done).to_string(),
                ]);
            }
            outln!("{t}");
            Ok(ExitCode::SUCCESS)
        }
        NiiCommand::Guideline(a) => {
            use borderlens_nii::guideline;
            let library = Library::open(&a.library)?;
            if let Some(file) = &a.publish {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let parsed: GuidelineFile = match serde_json::from_str(&text) {
                    Ok(parsed) => parsed,
                    Err(e) => {
                        eprintln!(
                            "borderlens: guideline refused, nothing published: {}:{}:{}: {e}",
                            file.display(),
                            e.line(),
                            e.column()
                        );
                        return Ok(ExitCode::from(1));
                    }
                };
                if let Err((field, reason)) = guideline::check_classes(&parsed.classes, &library) {
                    eprintln!(
                        "borderlens: guideline refused, nothing published: {}: field {field}: {reason}",
                        file.display()
                    );
                    return Ok(ExitCode::from(1));
                }
                let published = guideline::publish(&library, parsed.classes)?;
                if json {
                    print_json(&published)?;
                } else {
                    print_guideline(&published)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            let versions = if a.history {
                guideline::history(&library)?
            } else {
                vec![guideline::current(&library)?]
            };
            if json {
                print_json(&versions)?;
            } else {
                for g in &versions {
                    print_guideline(g)?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        NiiCommand::Verify(a) => {
            let library = Library::open(&a.library)?;
            let mut problems: Vec<String> =
                library.verify().iter().map(|p| p.to_string()).collect();
            problems.extend(library.recovered().iter().map(|r| r.to_string()));
            if json {
                print_json(&serde_json::json!({
                    "scans": library.records().len(),
                    "problems": problems,
                    "recovered": library.recovered(),
                }))?;
            } else {
                for p in &problems {
                    outln!("{p}");
                }
                outln!(
                    "{} scans, {} problem(s)",
                    library.records().len(),
                    problems.len()
                );
            }
            Ok(if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// `import-package`, `import-dicos` and `import-scans`: import `input` with `import`, and say what was stored
/// when a write failed midway (the imports are idempotent: the same command finishes the job).
fn import_into(
    lib: &Path,
    input: &Path,
    what: &str,
    json: bool,
    import: impl FnOnce(&mut Library, &Path) -> Result<ImportSummary, LibraryError>,
) -> anyhow::Result<ExitCode> {
    let mut library = Library::create(lib)?;
    warn_recovered(&library);
    let before = (library.records().len(), library.annotations().len());
    match import(&mut library, input) {
        Ok(s) => {
            if json {
                print_json(&s)?;
            } else {
                outln!(
                        "{what} {} into {}: {} scans added, {} already there; {} annotations added, {} already there",
                        input.display(),
                        lib.display(),
                        s.scans_added,
                        s.scans_present,
                        s.annotations_added,
                        s.annotations_present
                    );
            }
            Ok(ExitCode::SUCCESS)
        }
        // A package that fails its checks is rejected input: nothing was written. A
        // failure while writing (a disk full, a file changed under the import) may
        // come after some scans were stored: say what was, and that the same command
        // finishes the job (the import is idempotent).
        Err(e) => {
            let after = (library.records().len(), library.annotations().len());
            if after == before {
                return refused_input(what, &e, json);
            }
            Err(anyhow::anyhow!(
                "{e}: the import stopped after storing {} scans and {} annotation \
                     lines; run the same command again to finish it",
                after.0 - before.0,
                after.1 - before.1
            ))
        }
    }
}

/// `--organisation` is written in a package's manifest; a DICOM export has no place for it.
fn no_organisation(a: &ExportArgs) -> anyhow::Result<()> {
    if a.organisation.is_some() {
        bail!("--organisation is written in a scan package's manifest; DICOS and DICOM exports have no place for it");
    }
    Ok(())
}

/// The export options of `export`, `export-dicos` and `export-dicom`.
fn export_options(a: &ExportArgs) -> anyhow::Result<ExportOptions> {
    let masks = a
        .masks
        .iter()
        .map(|m| MaskRect::parse(m).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let anonymiser = match &a.anonymise_key_file {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("cannot read the key file {}", path.display()))?;
            Some(
                Anonymiser::new(Anonymiser::key_from_file_bytes(&bytes), masks)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{}", path.display()))?,
            )
        }
        None if !masks.is_empty() => {
            bail!("--mask needs --anonymise-key-file: masking is part of anonymising, and its log names the key")
        }
        None => None,
    };
    Ok(ExportOptions {
        scans: a.scans.clone(),
        anonymiser,
        organisation: a.organisation.clone(),
        include_machine: false,
    })
}

/// What every export prints, and its exit status: the summary `line` (`None`: nothing could be
/// exported, nothing was written) and each scan left out with its reason, or the summary as
/// JSON; 0 when every selected scan left, 1 otherwise.
fn export_outcome(
    summary: &impl serde::Serialize,
    json: bool,
    line: Option<String>,
    refused: &[Refusal],
) -> anyhow::Result<ExitCode> {
    if json {
        print_json(summary)?;
    } else {
        match &line {
            Some(l) => outln!("{l}"),
            None => outln!("no scan could be exported; nothing written"),
        }
        for r in refused {
            outln!("  {r}");
        }
    }
    Ok(if refused.is_empty() && line.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_dicom_export(s: &DicomExportSummary, what: &str, json: bool) -> anyhow::Result<ExitCode> {
    let line = s.folder.as_ref().map(|p| {
        format!(
            "{what} export {}: {} scans ({} anonymised), {} image objects, {} threat detection reports ({:.1} MB)",
            p.display(),
            s.scans,
            s.anonymised,
            s.images,
            s.reports,
            s.bytes as f64 / 1e6
        )
    });
    export_outcome(s, json, line, &s.refused)
}

fn export(a: &ExportArgs, json: bool) -> anyhow::Result<ExitCode> {
    let options = export_options(a)?;
    let library = open(&a.lib)?;
    let s = export_package(&library, &options, &a.out)?;
    let line = s.package.as_ref().map(|p| {
        format!(
            "package {}: {} scans ({} anonymised, {} regions masked), {} images ({:.1} MB), {} annotations",
            p.display(),
            s.scans,
            s.anonymised,
            s.masked_regions,
            s.images,
            s.image_bytes as f64 / 1e6,
            s.annotations
        )
    });
    export_outcome(&s, json, line, &s.refused)
}

fn counts_line(items: &[Count]) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    items
        .iter()
        .map(|c| format!("{} {} ({:.0}%)", c.name, c.count, 100.0 * c.share))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_report(r: &QualityReport, lib: &Path, charts: Option<&Path>) -> anyhow::Result<()> {
    outln!("quality report of {}", lib.display());
    let mut t = table(&["attribute", "value"]);
    t.add_row(vec![
        "size".to_string(),
        format!("{} scans, {} images", r.scans, r.images),
    ]);
    t.add_row(vec!["provenance".to_string(), counts_line(&r.provenance)]);
    t.add_row(vec![
        "counts as real".to_string(),
        format!("{} scans", r.counts_as_real),
    ]);
    if r.from_renderings > 0 {
        t.add_row(vec![
            "approximated".to_string(),
            format!(
                "{} scans from 8-bit renderings (pixels not the scanner's)",
                r.from_renderings
            ),
        ]);
    }
    t.add_row(vec![
        "class balance".to_string(),
        counts_line(&r.balance.classes),
    ]);
    t.add_row(vec![
        "rare classes".to_string(),
        if r.balance.rare.is_empty() {
            "none".to_string()
        } else {
            r.balance.rare.join(", ")
        },
    ]);
    t.add_row(vec![
        "imbalance (max/min)".to_string(),
        opt(r.balance.imbalance_ratio),
    ]);
    t.add_row(vec![
        "scans with / without threat".to_string(),
        format!(
            "{} / {}",
            r.balance.scans_with_threat, r.balance.scans_without_threat
        ),
    ]);
    let d = &r.diversity;
    t.add_row(vec!["cargo".to_string(), counts_line(&d.cargo)]);
    t.add_row(vec![
        "clutter density".to_string(),
        counts_line(&d.clutter_density),
    ]);
    t.add_row(vec![
        "clutter materials".to_string(),
        counts_line(&d.clutter_materials),
    ]);
    t.add_row(vec!["orientation".to_string(), counts_line(&d.orientation)]);
    t.add_row(vec![
        "threat materials".to_string(),
        counts_line(&d.threat_materials),
    ]);
    t.add_row(vec!["scanners".to_string(), counts_line(&d.scanners)]);
    t.add_row(vec!["locations".to_string(), counts_line(&d.locations)]);
    t.add_row(vec![
        "image sizes".to_string(),
        counts_line(&r.resolution.sizes),
    ]);
    t.add_row(vec![
        "mm per pixel".to_string(),
        counts_line(&r.resolution.mm_per_pixel),
    ]);
    t.add_row(vec![
        "dual energy".to_string(),
        format!("{} of {} scans", r.resolution.dual_energy, r.scans),
    ]);
    let an = &r.annotation;
    t.add_row(vec![
        "annotation coverage".to_string(),
        format!(
            "{} scans ({:.1}%), {} by 2+ annotators, {} annotators; exact truth on {} scans",
            an.scans_annotated,
            100.0 * an.coverage,
            an.scans_multi_annotated,
            an.annotators,
            an.scans_with_truth
        ),
    ]);
    t.add_row(vec![
        "annotation time".to_string(),
        format!(
            "median {} s, {} images per hour",
            opt(an.median_seconds),
            opt(an.images_per_hour)
        ),
    ]);
    match &r.agreement {
        Some(a) => {
            t.add_row(vec![
                "agreement".to_string(),
                format!(
                    "α boxes {}, α labels {}, mean F1 {}, mean IoU {}",
                    opt(a.alpha_boxes),
                    opt(a.alpha_labels),
                    opt(a.mean_f1),
                    opt(a.mean_iou)
                ),
            ]);
            t.add_row(vec![
                "disputed".to_string(),
                format!(
                    "{} of {} objects ({:.1}%), {} not yet decided by a reviewer",
                    a.disputed,
                    a.objects,
                    100.0 * a.disputed_share,
                    a.open
                ),
            ]);
        }
        None => {
            t.add_row(vec![
                "agreement".to_string(),
                "no scan annotated by two or more annotators".to_string(),
            ]);
        }
    }
    let p = &r.privacy;
    t.add_row(vec![
        "privacy".to_string(),
        format!(
            "{} redistributable, {} not; licences: {}; {} anonymised, {} to anonymise before sharing (personal metadata, or real/staged never anonymised)",
            p.redistributable,
            p.not_redistributable,
            counts_line(&p.licences),
            p.anonymised,
            p.to_anonymise
        ),
    ]);
    outln!("{t}");
    if let Some(dir) = charts {
        outln!("charts written to {}", dir.display());
    }
    Ok(())
}

fn print_agreement(r: &AgreementReport) -> anyhow::Result<()> {
    outln!(
        "{} scans, {} annotators, {} merged objects ({} accepted, {} disputed), IoU threshold {}",
        r.scans,
        r.annotators.len(),
        r.objects,
        r.accepted,
        r.disputed,
        r.iou_threshold
    );
    outln!(
        "Krippendorff's α: boxes (1 − IoU) {}, labels (nominal) {}",
        opt(r.alpha_boxes),
        opt(r.alpha_labels)
    );
    let mut t = table(&["class", "objects", "α boxes", "α labels"]);
    for c in &r.per_class {
        t.add_row(vec![
            c.class.clone(),
            c.units.to_string(),
            opt(c.alpha_boxes),
            opt(c.alpha_labels),
        ]);
    }
    outln!("{t}");
    let mut t = table(&["annotators", "scans", "matched", "F1", "mean IoU"]);
    for p in &r.pairwise {
        t.add_row(vec![
            format!("{} – {}", p.a, p.b),
            p.scans.to_string(),
            p.matched.to_string(),
            opt(p.f1),
            opt(p.mean_iou),
        ]);
    }
    outln!("{t}");
    if !r.disputes.is_empty() {
        let mut t = table(&["scan", "label", "box", "score", "why"]);
        for d in &r.disputes {
            let b = d.object.bbox;
            t.add_row(vec![
                d.scan_id.clone(),
                d.object.label.clone(),
                format!("[{:.1}, {:.1}, {:.1}, {:.1}]", b.x0, b.y0, b.x1, b.y1),
                format!("{:.2}", d.object.score),
                d.object.disputes.join("; "),
            ]);
        }
        outln!("review queue:\n{t}");
    }
    Ok(())
}

/// Reports input refused whole by its checks (nothing was written): the error, as JSON too
/// with `--json`; exit status 1.
fn refused_input(
    what: &str,
    e: &borderlens_nii::LibraryError,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if json {
        print_json(&serde_json::json!({
            "rejected": e.to_string(),
            "file": e.file,
            "field": e.field,
            "reason": e.reason,
        }))?;
    }
    eprintln!("borderlens: {what} refused, nothing imported: {e}");
    Ok(ExitCode::from(1))
}
