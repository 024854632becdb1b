//! Selection of declarations for control, and what follows from it.
//!
//! - [`batch`]: batches of declarations (one day, or one office-day) with the item each is
//!   decided on, the name of a batch that arrives after its day was decided (`DATE late 2`),
//!   and each batch's seed.
//! - [`policy`]: a selection policy (capacity, risk targeting, random or uncertainty-driven
//!   exploration share, 100% campaigns, documentary band) turns scored candidates into lanes,
//!   each decision with its inclusion probability π and its stratum.
//! - [`estimate`]: Horvitz–Thompson estimates of the non-compliance rate with intervals, and the
//!   naive estimate they replace.
//! - [`simulate`]: the replay simulator that compares policies week by week.
//!
//! Architecture invariant: this crate decides and estimates; it never trains a model (the
//! simulator takes a [`simulate::Learner`] from its caller) and does no I/O.
#![deny(missing_docs)]

pub mod batch;
pub mod estimate;
pub mod policy;
pub mod simulate;
