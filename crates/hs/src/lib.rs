//! `borderlens-hs`: goods descriptions and HS codes. Owns the HS 2022 nomenclature and its code
//! types, text normalisation, the lexical classifier shipped with the repository (its training,
//! file format and calibration), the vague-description detector, the readability check, the
//! mismatch between a declared code and a description (and between a sender's and a cleaned
//! description), the seam for sentence encoders ([`TextEncoder`]) with the semantic model and the
//! combination over it (trained and saved beside the encoder: [`CombinedModel`]), batch scoring of CSV files, and the evaluation harness.
//!
//! Must not touch: storage, HTTP, the risk model, declared values (a suggestion never replaces
//! a declared code; callers store it beside). Reads only the data shipped in `data/hs/` and, for
//! evaluation, a folder it is given; writes only the trained combination, into the encoder
//! folder it is given.

pub mod batch;
pub mod combined;
pub mod data;
pub mod eval;
mod io;
pub mod lexical;
pub mod model;
pub mod nomenclature;
pub mod scoring;
pub mod semantic;
pub mod text;
pub mod vague;

pub use combined::CombinedModel;
pub use model::{Check, Comparison, HsModel, Mismatch, Status, Suggestion};
pub use nomenclature::{Chapter, Code, Heading, Hs6, Nomenclature};
pub use semantic::TextEncoder;

/// What can go wrong; each message names the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum HsError {
    /// A code that does not parse or is not in HS 2022.
    #[error("{0}")]
    Code(String),
    /// Shipped or given data that cannot be read.
    #[error("{0}")]
    Data(String),
    /// A model file that cannot be used.
    #[error("{0}")]
    Model(String),
    /// Reading or writing a file.
    #[error("{0}")]
    Io(String),
    /// An encoder failed.
    #[error("encoder: {0}")]
    Encoder(String),
    /// Stopped on request (Ctrl-C).
    #[error("stopped on request")]
    Interrupted,
}
