//! HS readings: what an HS model read an item's goods descriptions as (issue 14). Derived
//! values, kept beside the declared code and never written over it; one per item and model,
//! written once (a reading is a pure function of the declared text and the model).
//!
//! The store knows nothing of the model: a reading is numbers, codes and an opaque JSON
//! document for the pages.

use borderlens_domain::{DeclarationItem, ItemKey};

use crate::audit::insert_audit;
use crate::error::Context;
use crate::sql::{DbError, Row};
use crate::{check_json, key_text, HsReadings, Lock, Store, StoreError};

/// The per-item signals of an HS reading: what training and scoring read for many items at
/// once (without the reading's JSON).
#[derive(Clone, PartialEq, Debug)]
pub struct HsSignals {
    /// The item read.
    pub key: ItemKey,
    /// The model's id (recipe version and file digest), e.g. `hs-lexical-1+0d59d2284ac7`.
    pub model: String,
    /// The model's recipe version.
    pub model_version: String,
    /// What the model made of the sender's text (`classified`, `too_vague`, ...).
    pub outcome: String,
    /// The best codes, best first, with their probabilities.
    pub suggestions: Vec<(String, f64)>,
    /// `1 − P(declared chapter | text)`; `None` when not read (review, no description, a
    /// declared code outside the nomenclature).
    pub chapter_mismatch: Option<f64>,
    /// `1 − P(declared heading | text)`, when the declared code has a heading.
    pub heading_mismatch: Option<f64>,
    /// `1 − P(declared subheading | text)`, when the declared code is a subheading.
    pub hs6_mismatch: Option<f64>,
    /// The chapter the text reads as best.
    pub reads_as_chapter: Option<String>,
    /// The heading the text reads as best.
    pub reads_as_heading: Option<String>,
    /// The 6-digit code the text reads as best.
    pub reads_as_hs6: Option<String>,
    /// Probability that the text is too vague to classify.
    pub vague_probability: Option<f64>,
    /// Whether the text is routed to an officer's review (too vague or unreadable).
    pub review: bool,
    /// How far the sender's and the cleaned texts read apart (0 to 1), when both exist.
    pub cleaned_disagreement: Option<f64>,
}

/// A reading to save: its signals and the whole reading as JSON (what the pages show).
#[derive(Clone, PartialEq, Debug)]
pub struct NewHsReading {
    /// The signals.
    pub signals: HsSignals,
    /// The reading as JSON (valid JSON; opaque to the store).
    pub reading_json: String,
}

/// A stored reading.
#[derive(Clone, PartialEq, Debug)]
pub struct StoredHsReading {
    /// The signals.
    pub signals: HsSignals,
    /// The reading as JSON, as saved.
    pub reading_json: String,
    /// When it was computed (UTC, ISO 8601).
    pub computed_at: String,
}

/// The signal columns, in [`read_signals`] order.
const SIGNAL_COLUMNS: &str = "declaration_id, item_no, model, model_version, outcome,
    suggestions_json, chapter_mismatch, heading_mismatch, hs6_mismatch, reads_as_chapter,
    reads_as_heading, reads_as_hs6, vague_probability, review, cleaned_disagreement";

fn read_signals(row: &Row) -> Result<HsSignals, DbError> {
    let suggestions: String = row.get(5)?;
    Ok(HsSignals {
        key: ItemKey {
            declaration_id: row.get(0)?,
            item_no: row.get(1)?,
        },
        model: row.get(2)?,
        model_version: row.get(3)?,
        outcome: row.get(4)?,
        // Written by `save_hs_readings` from the same type: valid by construction.
        suggestions: serde_json::from_str(&suggestions).unwrap_or_default(),
        chapter_mismatch: row.get(6)?,
        heading_mismatch: row.get(7)?,
        hs6_mismatch: row.get(8)?,
        reads_as_chapter: row.get(9)?,
        reads_as_heading: row.get(10)?,
        reads_as_hs6: row.get(11)?,
        vague_probability: row.get(12)?,
        review: row.get::<i64>(13)? != 0,
        cleaned_disagreement: row.get(14)?,
    })
}

/// Refuses a value that is not a probability, naming the item and the field.
fn check_probability(key: &ItemKey, field: &str, value: Option<f64>) -> Result<(), StoreError> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => Err(StoreError::Invalid {
            what: format!("HS reading of item {}: {field}", key_text(key)),
            reason: format!("{v} is not a probability (0 to 1)"),
        }),
        _ => Ok(()),
    }
}

impl HsReadings for Store {
    fn save_hs_readings(&mut self, readings: &[NewHsReading]) -> Result<usize, StoreError> {
        for reading in readings {
            let s = &reading.signals;
            check_json(
                &format!("HS reading of item {}", key_text(&s.key)),
                &reading.reading_json,
            )?;
            if s.model.trim().is_empty() || s.model_version.trim().is_empty() {
                return Err(StoreError::Invalid {
                    what: format!("HS reading of item {}: model", key_text(&s.key)),
                    reason: "empty".to_string(),
                });
            }
            for (field, value) in [
                ("chapter_mismatch", s.chapter_mismatch),
                ("heading_mismatch", s.heading_mismatch),
                ("hs6_mismatch", s.hs6_mismatch),
                ("vague_probability", s.vague_probability),
                ("cleaned_disagreement", s.cleaned_disagreement),
            ] {
                check_probability(&s.key, field, value)?;
            }
            for (code, p) in &s.suggestions {
                check_probability(&s.key, &format!("suggestion {code}"), Some(*p))?;
            }
        }
        let what = || "saving HS readings".to_string();
        self.write(Lock::Writers, what, |exec, actor| {
            let now: String = exec
                .value(&format!("SELECT {}", exec.dialect().now()), &[])
                .ctx(what)?;
            let mut saved = 0usize;
            let mut models: Vec<&str> = Vec::new();
            for reading in readings {
                let s = &reading.signals;
                // Serialising pairs of text and finite numbers cannot fail.
                let suggestions = serde_json::to_string(&s.suggestions).unwrap_or_default();
                let inserted = exec
                    .execute(
                        "INSERT INTO hs_readings (declaration_id, item_no, model, model_version,
                             outcome, suggestions_json, chapter_mismatch, heading_mismatch,
                             hs6_mismatch, reads_as_chapter, reads_as_heading, reads_as_hs6,
                             vague_probability, review, cleaned_disagreement, reading_json,
                             computed_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                             $15, $16, $17)
                         ON CONFLICT (declaration_id, item_no, model) DO NOTHING",
                        &[
                            &s.key.declaration_id,
                            &s.key.item_no,
                            &s.model,
                            &s.model_version,
                            &s.outcome,
                            &suggestions,
                            &s.chapter_mismatch,
                            &s.heading_mismatch,
                            &s.hs6_mismatch,
                            &s.reads_as_chapter,
                            &s.reads_as_heading,
                            &s.reads_as_hs6,
                            &s.vague_probability,
                            &i64::from(s.review),
                            &s.cleaned_disagreement,
                            &reading.reading_json,
                            &now,
                        ],
                    )
                    .map_err(|source| {
                        if source.is_foreign_key_violation() {
                            StoreError::Invalid {
                                what: format!("HS reading of item {}", key_text(&s.key)),
                                reason: "the item is not in the store".to_string(),
                            }
                        } else {
                            StoreError::Sql {
                                what: format!("{}: item {}", what(), key_text(&s.key)),
                                source,
                            }
                        }
                    })?;
                saved += inserted as usize;
                if !models.contains(&s.model.as_str()) {
                    models.push(&s.model);
                }
            }
            if saved > 0 {
                let detail = serde_json::json!({"readings": saved, "models": models});
                insert_audit(
                    exec,
                    actor,
                    "save_hs_readings",
                    &models.join(","),
                    &detail.to_string(),
                )?;
            }
            Ok(saved)
        })
    }

    fn hs_reading(
        &self,
        key: &ItemKey,
        model: &str,
    ) -> Result<Option<StoredHsReading>, StoreError> {
        self.read(|exec| {
            exec.query_opt(
                &format!(
                    "SELECT {SIGNAL_COLUMNS}, reading_json, computed_at FROM hs_readings
                     WHERE declaration_id = $1 AND item_no = $2 AND model = $3"
                ),
                &[&key.declaration_id, &key.item_no, &model],
            )?
            .map(|row| {
                Ok(StoredHsReading {
                    signals: read_signals(&row)?,
                    reading_json: row.get(15)?,
                    computed_at: row.get(16)?,
                })
            })
            .transpose()
        })
        .ctx(|| {
            format!(
                "reading the HS reading of item {} by model '{model}'",
                key_text(key)
            )
        })
    }

    fn hs_signals(&self, model: &str) -> Result<Vec<HsSignals>, StoreError> {
        self.read(|exec| {
            exec.query(
                &format!(
                    "SELECT {SIGNAL_COLUMNS} FROM hs_readings WHERE model = $1
                     ORDER BY declaration_id, item_no"
                ),
                &[&model],
            )?
            .iter()
            .map(read_signals)
            .collect()
        })
        .ctx(|| format!("reading the HS readings of model '{model}'"))
    }

    fn items_without_hs_reading(
        &self,
        model: &str,
        limit: usize,
    ) -> Result<Vec<DeclarationItem>, StoreError> {
        self.read_items(
            || format!("reading the items with a description not read by model '{model}'"),
            "SELECT {columns} FROM declaration_items AS i
                 WHERE (i.goods_description IS NOT NULL OR i.goods_description_cleaned IS NOT NULL)
                   AND NOT EXISTS (SELECT 1 FROM hs_readings AS r
                       WHERE r.declaration_id = i.declaration_id AND r.item_no = i.item_no
                         AND r.model = $1)
                 ORDER BY i.declaration_id, i.item_no
                 LIMIT $2",
            &[&model, &limit],
        )
    }

    fn hs_read_models(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.read(|exec| {
            exec.query(
                "SELECT model, count(*) FROM hs_readings GROUP BY model ORDER BY model",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect::<Result<Vec<_>, DbError>>()
        })
        .ctx(|| "counting the HS readings per model".to_string())
    }
}
