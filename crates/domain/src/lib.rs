/*!
Domain types of borderlens: what a customs declaration item is, what a control found, and the
standard identifiers that link trade records.

Brief overview:
- [`DeclarationItem`] is one goods item of an import declaration, exactly as the trader declared it,
  plus the [`ControlLabel`] that an inspection produced (absent until the item is controlled).
- [`FieldRegistry`] lists the declared fields (name, business words, type, counterfactual and
  drift flags): ingest, store, explanations and drift read it instead of listing fields.
- [`Declaration`] is a declaration's items together, sorted by item number.
- [`Lane`], [`DecisionSource`], [`RecordStatus`] and [`LabelKind`] are the closed vocabularies
  (parsed once; an unknown word is an [`UnknownWord`] error), written as the same lower-case
  words everywhere (database, JSON, command line).
- [`HsCode`] is a validated 6-digit Harmonized System subheading.
- [`ContainerNumber`] (ISO 6346) and [`S10ItemId`] (UPU S10) are parsed with their check digits.
- [`hex::encode`] writes bytes (digests, tokens, pseudonyms) as lower-case hex digits.

Architecture invariant: this crate does no I/O and knows nothing about storage, models or HTTP.
Values are parsed once at the edge (`parse` returns `Result`) and never handled as raw strings again.
*/
#![deny(missing_docs)]

mod declaration;
mod declarations;
mod fields;
pub mod hex;
mod hs;
mod ids;
pub mod rng;
mod vocab;

pub use declaration::{ControlLabel, DeclarationItem, ItemKey};
pub use declarations::{Declaration, DeclarationError};
pub use fields::{
    check_free_text, check_text, control_character, DeclaredField, DeclaredValue, DuplicateField,
    FieldError, FieldRegistry, FieldType, ValueError, CONTAINER_NUMBER, CONTAINER_NUMBER_HEADER,
    GOODS_DESCRIPTION, GOODS_DESCRIPTION_CLEANED, GOODS_DESCRIPTION_CLEANED_HEADER,
    GOODS_DESCRIPTION_HEADER, MAX_TEXT_BYTES, PLAUSIBLE_YEARS, POSTAL_ITEM_ID,
    POSTAL_ITEM_ID_HEADER,
};
pub use hs::{HsCode, HsError};
pub use ids::{iso6346_check_digit, s10_check_digit, ContainerNumber, IdError, S10ItemId};
pub use vocab::{DecisionSource, LabelKind, Lane, RecordStatus, UnknownWord};
