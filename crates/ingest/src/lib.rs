//! Import of trade data into borderlens: reads trade files (CSV, with a column mapping) into
//! [`DeclarationItem`](borderlens_domain::DeclarationItem) records and reports every bad record
//! with its file, line, field and reason.
//!
//! - [`ColumnMapping`] says which header holds which field ([`ColumnMapping::kcs_default`] is the
//!   layout of the KCS synthetic datasets; [`ColumnMapping::from_json_file`] loads others).
//! - [`read_declarations`] checks the header ([`FileError`]) and returns a streaming
//!   [`DeclarationReader`]: one `Result<DeclarationItem, RecordError>` per record, so one bad
//!   record never stops the import of the others.
//!
//! Architecture invariant: this crate only turns bytes into domain records. It touches no
//! database (persisting is `borderlens-store`'s job, deduplication by key included) and scores
//! nothing (that is `borderlens-risk`). Declared values are kept verbatim (codes trimmed, free
//! text such as a goods description byte for byte), never corrected.
#![deny(missing_docs)]

mod error;
mod mapping;
mod reader;

pub use error::{FileError, RecordError, RecordProblem};
pub use mapping::{ColumnMapping, MappingError, MappingProblem, DEFAULT_DATE_FORMAT};
pub use reader::{read_declarations, DeclarationReader, WithLines};
