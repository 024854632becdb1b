//! Standard trade identifiers with check digits. Filled in by the identifier codec work.

/// An ISO 6346 freight container number.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ContainerNumber(String);

/// A UPU S10 postal item identifier.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct S10ItemId(String);

/// Why an identifier is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Placeholder.
    #[error("invalid identifier '{0}'")]
    Invalid(String),
}
