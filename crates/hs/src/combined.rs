//! The combination of the shipped lexical model with a sentence encoder, as `hs suggest` and
//! `hs check` use it: trained by the same recipe as the lexical model (calibration fitted on
//! half of the extra references, scored by indexes built without them; the served indexes hold
//! every labelled description), saved beside the encoder so the encoding of the nomenclature
//! and the labelled descriptions (a minute or two on CPU) happens once per encoder and lexical
//! model.
//!
//! Readability and vagueness stay the lexical model's: a description the models cannot read is
//! routed to review before any encoder sees it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{self, Labelled};
use crate::io::{Reader, Writer};
use crate::lexical::{LexicalConfig, LexicalIndex};
use crate::model::{
    build_suggestion, calibration_split, examples_of, mismatch, Check, HsModel, Status, Suggestion,
};
use crate::nomenclature::{Code, Nomenclature};
use crate::scoring::{Calibration, Probabilities};
use crate::semantic::{CachedEncoder, Combined, SemanticIndex, TextEncoder};
use crate::text;
use crate::vague::VagueInput;
use crate::HsError;

/// Version of the combination's recipe; part of its file.
pub const COMBINED_VERSION: &str = "hs-combined-1";

#[derive(Serialize, Deserialize)]
struct Meta {
    recipe: String,
    lexical: String,
    encoder: String,
    dim: usize,
    calibration: Calibration,
}

/// The lexical model and an encoder, combined.
pub struct CombinedModel<'a, E: TextEncoder + ?Sized> {
    /// The lexical model (readability, vagueness, its index in the combination).
    pub lexical: &'a HsModel,
    /// The combination.
    pub combined: Combined<'a, E>,
}

impl<'a, E: TextEncoder + ?Sized> CombinedModel<'a, E> {
    /// Trains the combination (deterministic for an encoder): the calibration's six weights
    /// are fitted on the half of the extra references the lexical model's calibration was
    /// fitted on, scored by a lexical and a semantic index without the extra references; the
    /// served semantic index holds the nomenclature and every labelled description.
    pub fn train(
        lexical: &'a HsModel,
        encoder: &'a E,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<CombinedModel<'a, E>, HsError> {
        let nom = Nomenclature::hs2022();
        let files = data::uk_shipped(nom);
        let all: Vec<&Labelled> = files.iter().flat_map(|(r, _)| r.iter()).collect();
        let (index_rows, fit_rows) = calibration_split(&all);
        let config = LexicalConfig::default();
        let cached = CachedEncoder::new(encoder);
        let fit_lexical = LexicalIndex::build(nom, &examples_of(nom, &index_rows), &config);
        let fit_semantic = SemanticIndex::build(
            &cached,
            nom,
            &examples_of(nom, &index_rows),
            &config,
            progress,
        )?;
        let held: Vec<(&str, usize)> = fit_rows
            .iter()
            .filter_map(|l| nom.hs6_idx(l.hs6).map(|y| (l.text.as_str(), y)))
            .collect();
        let mut fitting = Combined {
            encoder: &cached,
            semantic: fit_semantic,
            lexical: Some(&fit_lexical),
            calibration: Calibration::start(2),
        };
        fitting.fit(nom, &held)?;
        let calibration = fitting.calibration;
        let semantic =
            SemanticIndex::build(&cached, nom, &examples_of(nom, &all), &config, progress)?;
        Ok(CombinedModel {
            lexical,
            combined: Combined {
                encoder,
                semantic,
                lexical: Some(&lexical.index),
                calibration,
            },
        })
    }

    /// The id: lexical model, encoder and recipe.
    pub fn id(&self) -> String {
        format!(
            "{COMBINED_VERSION}({} + {})",
            self.lexical.id(),
            self.combined.encoder.id()
        )
    }

    /// The saved file (the format of the lexical model's: magic, version, digest, body).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.json(&Meta {
            recipe: COMBINED_VERSION.into(),
            lexical: self.lexical.id(),
            encoder: self.combined.encoder.id(),
            dim: self.combined.encoder.dim(),
            calibration: self.combined.calibration.clone(),
        });
        self.combined.semantic.write(&mut w);
        w.finish().0
    }

    /// Reads a saved combination; refuses one made for another lexical model, encoder or recipe.
    pub fn from_bytes(
        lexical: &'a HsModel,
        encoder: &'a E,
        bytes: &[u8],
    ) -> Result<CombinedModel<'a, E>, HsError> {
        let (mut r, _) = Reader::open(bytes)?;
        let meta: Meta = r.json()?;
        let want = (COMBINED_VERSION, lexical.id(), encoder.id(), encoder.dim());
        if (
            meta.recipe.as_str(),
            meta.lexical.clone(),
            meta.encoder.clone(),
            meta.dim,
        ) != want
        {
            return Err(HsError::Model(format!(
                "made for {} ({} + {}, {} numbers), not {} ({} + {}, {} numbers)",
                meta.recipe, meta.lexical, meta.encoder, meta.dim, want.0, want.1, want.2, want.3
            )));
        }
        let semantic = SemanticIndex::read(&mut r, meta.encoder, meta.dim)?;
        if !r.at_end() || meta.calibration.models() != 2 {
            return Err(HsError::Model(
                "trailing bytes or a calibration of the wrong size".into(),
            ));
        }
        Ok(CombinedModel {
            lexical,
            combined: Combined {
                encoder,
                semantic,
                lexical: Some(&lexical.index),
                calibration: meta.calibration,
            },
        })
    }

    /// The file name for this lexical model and encoder (ids kept to file-name characters).
    pub fn file_name(lexical: &HsModel, encoder: &E) -> String {
        let clean = |s: String| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        format!(
            "{}--{}--{}.bin",
            COMBINED_VERSION,
            clean(lexical.id()),
            clean(encoder.id())
        )
    }

    /// Loads the combination saved in `folder`, or trains it and saves it there (a file that
    /// cannot be written is not an error: the next run trains again). Returns whether it was
    /// trained.
    pub fn load_or_train(
        lexical: &'a HsModel,
        encoder: &'a E,
        folder: &Path,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<(CombinedModel<'a, E>, bool), HsError> {
        let path = folder.join(Self::file_name(lexical, encoder));
        if let Ok(bytes) = std::fs::read(&path) {
            // A stale or damaged file is replaced, not trusted.
            if let Ok(m) = Self::from_bytes(lexical, encoder, &bytes) {
                return Ok((m, false));
            }
        }
        let m = Self::train(lexical, encoder, progress)?;
        // Written beside and renamed: a reader never sees half a file (which it would refuse
        // by its digest and train again, for minutes).
        let partial = path.with_extension("partial");
        let _ = std::fs::create_dir_all(folder)
            .and_then(|_| std::fs::write(&partial, m.to_bytes()))
            .and_then(|_| std::fs::rename(&partial, &path));
        Ok((m, true))
    }

    /// Calibrated probabilities of a (capped) description.
    pub fn probabilities(&self, description: &str) -> Result<Probabilities, HsError> {
        let (capped, _) = text::cap(description);
        let mut p = self
            .combined
            .probabilities(Nomenclature::hs2022(), &[capped])?;
        p.pop()
            .ok_or_else(|| HsError::Encoder("no probabilities".into()))
    }

    /// As [`HsModel::suggest_with_probabilities`], with the combination's probabilities.
    pub fn suggest_with_probabilities(
        &self,
        description: &str,
        k: usize,
    ) -> Result<(Suggestion, Option<Probabilities>), HsError> {
        let (lexical, p) = self.lexical.suggest_with_probabilities(description, k);
        if p.is_none() || matches!(lexical.status, Status::CannotRead | Status::Empty) {
            return Ok((lexical, None));
        }
        let (capped, _) = text::cap(description);
        let p = self.probabilities(capped)?;
        let vague = self.lexical.vague.probability(&VagueInput::new(capped));
        let s = build_suggestion(&p, k, vague, lexical.readability, self.id());
        Ok((s, Some(p)))
    }

    /// Ranked suggestions (see [`HsModel::suggest`]).
    pub fn suggest(&self, description: &str, k: usize) -> Result<Suggestion, HsError> {
        Ok(self.suggest_with_probabilities(description, k)?.0)
    }

    /// A declared code checked against a description (see [`HsModel::check`]).
    pub fn check(&self, declared: Code, description: &str, k: usize) -> Result<Check, HsError> {
        let (suggestion, p) = self.suggest_with_probabilities(description, k)?;
        Ok(Check {
            declared,
            suggestion,
            mismatch: p.map(|p| mismatch(&p, declared)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::semantic::tests::BagOfCharsTestEncoder;

    #[test]
    fn trains_saves_loads_and_refuses_another_encoder() {
        let lexical = HsModel::shipped().unwrap();
        let dir = std::env::temp_dir().join(format!("borderlens-combined-{}", std::process::id()));
        // A folder left by an earlier failed run of a process with the same id starts afresh.
        let _ = std::fs::remove_dir_all(&dir);
        let (m, trained) =
            CombinedModel::load_or_train(&lexical, &BagOfCharsTestEncoder, &dir, &mut |_, _| {})
                .unwrap();
        assert!(trained);
        assert_eq!(m.combined.calibration.models(), 2);
        assert!(m.combined.calibration.fitted_on > 100);
        let (again, trained) =
            CombinedModel::load_or_train(&lexical, &BagOfCharsTestEncoder, &dir, &mut |_, _| {})
                .unwrap();
        assert!(!trained, "the saved file is used");
        assert_eq!(again.combined.calibration, m.combined.calibration);
        let text = "frozen boneless beef";
        let (a, b) = (
            m.probabilities(text).unwrap(),
            again.probabilities(text).unwrap(),
        );
        assert_eq!(a.p6, b.p6);
        let s = m.suggest(text, 3).unwrap();
        assert!(s.model.starts_with(COMBINED_VERSION), "{}", s.model);
        assert_eq!(s.candidates.len(), 3);
        // Unreadable input is routed to review before the encoder runs.
        let s = m.suggest("", 3).unwrap();
        assert_eq!(s.status, Status::Empty);
        let c = m
            .check(Code::Hs6(crate::Hs6(20130)), "ข้อความภาษาไทยเท่านั้น", 3)
            .unwrap();
        assert!(c.mismatch.is_none());
        // Another lexical model id: the file is refused.
        let mut other = lexical.clone();
        other.digest = "0".repeat(64);
        let e = CombinedModel::from_bytes(&other, &BagOfCharsTestEncoder, &m.to_bytes());
        assert!(e.err().unwrap().to_string().contains("made for"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
