//! The X-ray reference library of borderlens (non-intrusive inspection, NII).
//!
//! What this crate owns:
//! - the **scan model** ([`scan`]): a scan with views, each with one or two energies stored as
//!   16-bit transmission images; its metadata (ids validated as ISO 6346 / UPU S10), provenance
//!   (real, staged, synthetic with every generator parameter and seed, projected threats), licence
//!   and redistribution flag, and the true objects of generated or projected scans;
//! - the **library folder** ([`library`]): images stored losslessly as 16-bit PNG named by their
//!   SHA-256, a catalogue file (`catalogue.jsonl`) and annotators' boxes (`annotations.jsonl`),
//!   every file read back with checks that name the file, line and field at fault;
//! - the **synthetic generator** ([`generate`]): bags, parcels and containers with clutter and
//!   threat objects of known materials ([`materials`]), projected with Beer–Lambert, detector
//!   blur and Poisson noise, seedable, parameters explicit;
//! - **threat image projection** ([`tip`]) in transmission space;
//! - **consensus and agreement** of several annotators ([`consensus`], [`agreement`]), and the
//!   reviewer's decision on disputed objects as a source of its own
//!   ([`consensus::resolve_view`], which every consumer of "the consensus" goes through);
//! - the **annotation guideline** as data ([`guideline`]): threat and benign classes with
//!   definitions and example scans, versioned in the library folder;
//! - the **assignment** of scans to annotators ([`assignment`]): each scan to `k` of a team,
//!   the load even, with each annotator's progress;
//! - the **quality report** of a library ([`report`]);
//! - batch jobs on a library ([`batch`]): generate on every core, project into many scans;
//! - **anonymisation** ([`anonymise`]): keyed pseudonyms for the personal fields
//!   ([`scan::PERSONAL_FIELDS`]), free text removed, image regions masked, a log with the scan;
//! - the **scan package** ([`package`]), the exchange format between administrations: export
//!   (refusing scans not redistributable or not anonymised) and import (checked in full first,
//!   idempotent);
//! - **COCO** export and import ([`coco`]): 8-bit views and boxes for ordinary detection tools,
//!   and a tool's or model's boxes back as an annotator source; **YOLO** the same way ([`yolo`]);
//! - **DICOS and DICOM** ([`dicos`]): DICOS-structured images and threat detection reports,
//!   exported and imported through a scan package, and a plain secondary-capture export;
//! - **import of scans made elsewhere** ([`import`]): 16-bit PNG or TIFF transmission images with
//!   a metadata CSV and the boxes drawn on them, checked in full, imported as a package; on
//!   request 8-bit renderings (public sets), approximated back to transmission ([`rendering`])
//!   and marked so in the provenance;
//! - the **threat detector** ([`detector`]): a small convolutional network on candle (CPU),
//!   trained on a labelled library (deterministic for a seed), evaluated (AP@0.5, detection rate
//!   at a false-alarm rate per view, pointing game), explained by Grad-CAM heat maps;
//! - the **hybrid annotation loop** ([`review`]): the model's proposals as MACHINE lines, the
//!   annotator's recorded actions on them, the share reviewed without them (automation bias),
//!   and the model registry that promotes a retrained model only when it is not worse.
//!
//! Not in this crate yet (later slices of issue 15): the store catalogue (the library's catalogue
//! is a file in the library folder for now), foreign DICOM, polygons. The annotation
//! desk's and the library's pages and the detections routes are the server's, over
//! `borderlens-app`'s `NiiDesk`.
//!
//! Architecture invariant: no HTTP and no store; knows declarations only by the identifiers a
//! scan carries (container number, postal item id). Pixel data is handled as transmission per
//! energy, never as pseudo-colour.
#![deny(missing_docs)]

pub mod agreement;
pub mod anonymise;
pub mod assignment;
pub mod batch;
pub mod coco;
pub mod consensus;
pub mod detector;
pub mod dicos;
pub mod generate;
pub mod geometry;
pub mod guideline;
pub mod image;
pub mod import;
pub mod library;
pub mod materials;
pub mod package;
pub mod rendering;
pub mod report;
pub mod review;
pub mod scan;
pub mod tip;
pub mod yolo;

pub use geometry::BoxPx;
pub use image::Image16;
pub use library::{Library, LibraryError};
pub use scan::{Energy, ScanRecord};
