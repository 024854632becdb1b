/*!
The jobs and views of borderlens, one function each, shared by the CLI and the server so that both
behave the same:

- `jobs.rs`: [`import_files`] (and [`import_bytes`] for uploads), [`train`], [`evaluate`],
  [`score`], [`explain`] (one declaration from the history of its own importer, declarant, seller
  and HS code, `jobs::item_history`), [`importance`], [`anomaly`], [`export_features`];
- `decisions.rs`, the selection loop: policies ([`save_policy`]), [`select`] with π,
  [`override_decision`], control results ([`record_control_result`], bulk import, exchange
  export), Horvitz–Thompson [`estimates`], [`explain_decision`];
- `monitoring.rs`: [`bias_audit`], [`drift_report`], [`hit_rate_series`]; `simulation.rs`:
  [`simulate`], with the risk model as the simulator's learner ([`RiskLearner`]);
- `linking.rs`: record linkage of CSV files ([`link_files`]: tables in, clusters, pairs,
  settings and model out) and [`explain_link`] of a finished run;
- `users.rs`: users and roles, argon2id password hashes, API tokens, login sessions and the
  login rate limit ([`add_user`], [`create_token`], [`login`], [`session_caller`],
  [`token_caller`]), counted in the store so that it holds across server instances;
- `sample.rs`: [`describe_sample`], the sample declarations with goods descriptions
  (constructed data, made by `borderlens_synth::described`);
- `hs_reading.rs`: the HS reading of an item's goods description ([`hs_reading`]: what the
  shipped `borderlens-hs` model reads the sender's text as, the mismatch with the declared code
  at chapter, heading and 6-digit level, the sender-vs-cleaned disagreement), stored per item
  and HS model version as derived values by [`annotate`] (every import runs it), read back by
  the pages ([`item_hs_reading`]) and turned into the risk model's text signals
  ([`text_signals`]); [`hs_suggest`] and [`hs_check`] for free texts;
- `nii_desk.rs`: the X-ray annotation desk ([`NiiDesk`]) over a library folder: the active
  detector's proposals, reviews with their recorded actions, the share reviewed without
  proposals, and the retraining that registers a new model only when it is not worse;
- `views.rs`: what the pages show ([`queue`], [`declaration`], [`dashboard`], [`audit_log`]);
- `cache.rs`: models by the SHA-256 of their bytes, dashboards until the store's newest audit
  entry changes.

They compose the library crates: `store` (what is kept), `ingest` (what comes in), `risk` (the
numbers), `selection`, `controls`, `monitor`, `linkage`, `charts` and `hs`. Every job takes the store
as `&dyn Backend` or `&mut dyn Backend` (`borderlens_store`: one `Store` type on SQLite or
PostgreSQL, its operations grouped by room in the traits `Items`, `Registry`, `Decisions`,
`Controls`, `Accounts` and `Audit`; `Backend` is all of them), so a job runs alike on either
database and writes only through the store's operations, which audit every write.

Reports and views are plain serialisable structs: this crate is the boundary where engine types
become the JSON that `--json` prints and the API serves.

Architecture invariant: no printing, no argument parsing, no HTTP, no HTML and no SQL here; files
are read and written only where a job is about files (imports, feature exports, linkage inputs
and outputs, the described sample). Long jobs take a [`Progress`] so the caller draws bars and can interrupt; an
interrupted job keeps nothing.
*/
#![deny(missing_docs)]

mod cache;
mod decisions;
mod federation;
mod hs_reading;
mod jobs;
mod linking;
mod monitoring;
mod nii_catalogue;
mod nii_desk;
mod nii_library;
mod pooled;
mod reports;
mod sample;
mod simulation;
mod users;
mod views;

/// The settings of [`describe_sample`] (seed and rates).
pub use borderlens_synth::described::DescribeOptions;
pub use decisions::*;
pub use federation::{
    federate_stats, federate_train, federation_sessions, privacy_budget, AbortSession,
    FederateReport, FederateRequest, FederationNode, FinishSession, Finished, LocalNodes,
    NodeIdentity, NodeLinks, NodeOutcome, OpenSession, PooledNodesReport, PooledNodesSegment,
    PrivacyBudget, SessionPrivacy, SessionSummary, DEFAULT_DELTA,
};
pub use hs_reading::{
    annotate, hs_check, hs_model, hs_reading, hs_suggest, item_hs_reading, reading_of_item,
    text_signals, to_text_signals, AnnotateReport, HsCheckReport, HsCode, HsLevelMismatch,
    HsOutcome, HsReading, HsSuggestReport, HsSuggestion, HsTextDisagreement, HsVerdict,
    CHAPTER_MISMATCH_THRESHOLD, HS_SUGGESTIONS, MAX_HS_TEXT_BYTES,
};
pub use jobs::{
    anomaly, evaluate, explain, export_features, export_items, import_bytes, import_files,
    importance, score, train, AnomalyRequest, EvaluateRequest, ExplainRequest, ExportRequest,
    ScoreRequest, TrainRequest,
};
pub use linking::{
    explain_link, link_files, link_parties, party_links, process_usage, read_table, LinkReport,
    LinkRequest, LinkSeconds, PairReport, SavedPartyLinks,
};
pub use monitoring::{bias_audit, drift_report, hit_rate_series, DriftRequest};
pub use nii_catalogue::{
    catalogue_if_changed, catalogue_library, catalogued, declarations_of_scan, library_key,
    scans_of_declaration, transport_ids, CatalogueReport, DeclarationScan, ScanDeclaration,
    TransportId, SCAN_DECLARATIONS_SHOWN,
};
pub use nii_desk::{
    train_detector, DeskConfig, DeskScan, DeskView, NiiDesk, RetrainState, ReviewSubmission,
    SavedReview, ScanAlarm, ScanDetection, ScanDetections, ScanReview, ViewDetectionsReport,
    DESK_QUEUE_MAX, MAX_REVIEW_SECONDS,
};
pub use nii_library::{
    scan_filter_fields, BrowsedScan, DisputeQueue, DisputeReview, DisputedView, FilterField, Layer,
    LibraryPage, ReviewDecision, ScanFilter, ScanViewer, ViewerView, BROWSE_PAGE, OTHER_FILTERS,
};
pub use pooled::{
    declaration_context, pooled_chart, pooled_statistics, PooledReport, PooledSegment,
    PooledSource, Tally, WeightedRate, OWN, POOLED_DIMENSIONS,
};
pub use reports::*;
pub use sample::{
    describe_sample, described_mapping, sample_parties, DescribeSampleReport,
    DescribeSampleRequest, DescribedFileReport, PartiesSampleReport, MAPPING_FILE, PARTIES_FILE,
    PARTIES_TRUTH_FILE, SAMPLE_FILES, TRUTH_FILE,
};
pub use simulation::{simulate, RiskLearner, SimulateRequest};
pub use users::{
    add_user, create_token, list_tokens, login, login_at, login_keys, logout, new_secret,
    revoke_token, secret_digest, session_caller, set_password, token_caller, Caller, LoginOutcome,
    NewSession, NewToken, RevokeReport, Role, TokenInfo, UserReport, LOGIN_MAX_FAILURES,
    LOGIN_WINDOW, MAX_PASSWORD_BYTES, MAX_USER_NAME_CHARS, MIN_PASSWORD_CHARS, MIN_TOKEN_ID_DIGITS,
    TOKEN_ID_DIGITS,
};
pub use views::{
    audit_log, dashboard, declaration, declaration_exists, declaration_scores, queue, ConflictView,
    Dashboard, DashboardParts, DeclarationView, DerivedValue, ItemScore, LinkedPartyView, Queue,
    QueueFilter, QueueRow, QueueSort, RecentResult, RelatedRow, LANES, QUEUE_PAGE_SIZE_MAX,
    QUEUE_SEARCH_MAX,
};

/// Progress reporting and interruption for long jobs.
pub trait Progress {
    /// A phase starts; `total` units of work when known.
    fn start(&self, phase: &str, total: Option<u64>);
    /// `done` units of the current phase are finished.
    fn advance(&self, done: u64);
    /// The phase is over.
    fn finish(&self);
    /// Whether the user asked to stop (Ctrl-C).
    fn interrupted(&self) -> bool;
}

/// A [`Progress`] that shows nothing and never interrupts (tests, server).
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &str, _: Option<u64>) {}
    fn advance(&self, _: u64) {}
    fn finish(&self) {}
    fn interrupted(&self) -> bool {
        false
    }
}

/// What can go wrong in a job; messages name the file, record, model or date at fault.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] borderlens_store::StoreError),
    /// The risk engine refused.
    #[error(transparent)]
    Risk(#[from] borderlens_risk::model::RiskError),
    /// A named thing does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be met as asked.
    #[error("{0}")]
    Invalid(String),
    /// Input refused by validation, with every problem naming its field.
    #[error("{what} refused: {errors}")]
    Refused {
        /// What was refused, e.g. `control result`.
        what: String,
        /// The problems, each with its field.
        errors: borderlens_controls::ValidationErrors,
    },
    /// Writing an output file failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The system failed, not the request (e.g. the operating system's random source).
    #[error("{0}")]
    Internal(String),
    /// The user interrupted; nothing of the job was kept.
    #[error("interrupted: nothing was saved")]
    Interrupted,
    /// The user interrupted an import of several files, each committed on its own, after some
    /// were saved.
    #[error("interrupted: saved {}; not saved: {}", saved.join(", "), not_saved.join(", "))]
    ImportInterrupted {
        /// The files committed, in order.
        saved: Vec<String>,
        /// The files not imported (refused, interrupted or not started), in order.
        not_saved: Vec<String>,
    },
}
