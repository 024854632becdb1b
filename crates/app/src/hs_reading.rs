//! The HS reading of a declaration item's goods description: what the shipped `hs` model reads
//! the sender's text as, beside the declared code, with the mismatch at chapter, heading and
//! 6-digit level and the disagreement of the sender's and the cleaned text (dual visibility,
//! issue 14), from the model compiled into the binary (loaded once per process). Readings are
//! stored as derived values per item and model version ([`annotate`], run by every import),
//! never written over the declared code; the pages and explanations read the stored reading
//! and compute one only for an item not read yet. Their numbers are the risk model's text
//! signals ([`text_signals`]).

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use borderlens_domain::{DeclarationItem, ItemKey};
use borderlens_risk::features::{TextSignalMap, TextSignals};
use borderlens_store::{Backend, HsSignals, NewHsReading};

use borderlens_hs::model::{Candidate, MODEL_VERSION, SURE};
use borderlens_hs::{Code, HsModel, Nomenclature, Status};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{GoodsText, JobError, Progress};

/// Threshold of the chapter mismatch `1 − P(declared chapter | text)` above which the declared
/// chapter "disagrees" with the description: the operating point `borderlens hs evaluate` finds
/// for the shipped model on the CBP rulings (the smallest threshold flagging at most 10% of
/// correctly coded items; 13 of the 14 known-wrong UK pairs are above it). Documented in
/// `docs/hs.md` ("Mismatch"); re-measure it when the shipped model changes.
pub const CHAPTER_MISMATCH_THRESHOLD: f64 = 0.979_806_223_886_875_8;

/// Suggestions shown (best 6-digit codes).
pub const HS_SUGGESTIONS: usize = 3;

/// Longest description the suggestion routes accept, in bytes (the model reads only the first
/// 1,024 bytes of any text; this bounds what a request may send).
pub const MAX_HS_TEXT_BYTES: usize = 64 * 1024;

/// The shipped model, loaded once per process.
pub fn hs_model() -> Result<&'static HsModel, JobError> {
    static MODEL: OnceLock<Result<HsModel, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| HsModel::shipped().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| JobError::Internal(format!("the shipped HS model cannot be loaded: {e}")))
}

/// What the model made of the description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HsOutcome {
    /// A 6-digit code is likely (P ≥ 0.5).
    Classified,
    /// Only the heading is likely: the description needs more detail.
    NeedsMoreDetailHeading,
    /// Only the chapter is likely: the description needs more detail.
    NeedsMoreDetailChapter,
    /// Not even a chapter is likely: an officer decides.
    Uncertain,
    /// Too vague to classify ("gift", "parts"): routed to review.
    TooVague,
    /// The model cannot read it (script, binary, unknown words): routed to review, no guess.
    CannotRead,
    /// No description was declared (or it is empty).
    NoDescription,
}

impl HsOutcome {
    /// Whether an officer must read the description: no code is read from it.
    pub fn routed_to_review(self) -> bool {
        matches!(self, HsOutcome::TooVague | HsOutcome::CannotRead)
    }
}

/// A code with its words in the HS 2022 nomenclature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HsCode {
    /// The code (6, 4 or 2 digits).
    pub code: String,
    /// Its words in the HS 2022 nomenclature; `None` for a code that is not in it.
    pub words: Option<String>,
}

/// A suggested code with its calibrated probability.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HsSuggestion {
    /// The code (6, 4 or 2 digits).
    pub code: String,
    /// Its words in the nomenclature.
    pub words: String,
    /// Calibrated probability that the description is of this code.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub probability: f64,
}

impl From<&Candidate> for HsSuggestion {
    fn from(c: &Candidate) -> HsSuggestion {
        HsSuggestion {
            code: c.code.clone(),
            words: c.text.clone(),
            probability: c.probability,
        }
    }
}

/// Whether the declared code agrees with the description at one level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HsVerdict {
    /// The declared code is what the description reads as (or, at chapter level, its mismatch
    /// is under the operating point).
    Agrees,
    /// The description reads as other goods: at chapter level, the mismatch is over the
    /// operating point; at heading and 6-digit level, another code is likely (P ≥ 0.5).
    Disagrees,
    /// Heading or 6-digit level only: the declared code is not the best reading, but no other
    /// code is likely either.
    Unsure,
}

/// The mismatch of the declared code at one level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HsLevelMismatch {
    /// `chapter`, `heading` or `hs6`.
    pub level: String,
    /// The declared code at this level, with its words.
    pub declared: HsCode,
    /// The code of this level the description reads as best, with its words.
    pub reads_as: HsCode,
    /// Probability of `reads_as`.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub reads_as_probability: f64,
    /// `1 − P(declared code of this level | description)`.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f64,
    /// The operating point `score` is compared with (chapter level only; see `docs/hs.md`).
    pub threshold: Option<f64>,
    /// Whether the declared code agrees with the description at this level.
    pub verdict: HsVerdict,
}

/// How far the sender's and the cleaned descriptions read apart: the total variation distance
/// of their code distributions (0 = same reading, 1 = disjoint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HsTextDisagreement {
    /// At chapter level.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub chapter: f64,
    /// At heading level.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub heading: f64,
    /// At 6-digit level.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub hs6: f64,
    /// The best 6-digit code the sender's text reads as.
    pub sender_reads_as: HsSuggestion,
    /// The best 6-digit code the cleaned text reads as.
    pub cleaned_reads_as: HsSuggestion,
}

/// The HS reading of an item's goods: derived by the shipped model from the sender's
/// description, shown beside the declared code and never written over it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HsReading {
    /// Always `derived`: nothing here was declared.
    pub kind: String,
    /// The model's id (recipe version and file digest), e.g. `hs-lexical-1+0d59d2284ac7`.
    pub model: String,
    /// The model's recipe version.
    pub model_version: String,
    /// The declared code as read for the comparison (its 6 digits, or its heading or chapter
    /// when the 6 digits are not an HS 2022 subheading), with its words; `None` when the
    /// declared code is not in HS 2022 at any level.
    pub declared: Option<HsCode>,
    /// What the model made of the sender's description.
    pub outcome: HsOutcome,
    /// The outcome in words.
    pub message: String,
    /// Whether the description is routed to an officer's review (too vague or unreadable): no
    /// code is read from it.
    pub routed_to_review: bool,
    /// The code the back-off settles on (6, 4 or 2 digits) with its probability, when one is
    /// likely.
    pub reads_as: Option<HsSuggestion>,
    /// The best three 6-digit codes (none when the text cannot be read).
    pub suggestions: Vec<HsSuggestion>,
    /// The declared code against the description at chapter, heading and 6-digit level (the
    /// levels the declared code has); empty when routed to review or without a description.
    pub mismatch: Vec<HsLevelMismatch>,
    /// Sender's against cleaned description, when both were declared and both can be read.
    pub sender_vs_cleaned: Option<HsTextDisagreement>,
}

/// The declared code as HS 2022 knows it: the 6 digits, else the heading, else the chapter.
fn declared_code(nom: &Nomenclature, hs6: &str) -> Option<Code> {
    let digits: String = hs6.chars().filter(char::is_ascii_digit).collect();
    [6, 4, 2]
        .into_iter()
        .filter(|&n| digits.len() >= n)
        .find_map(|n| nom.parse_code(&digits[..n]).ok())
}

/// The words of a code in the nomenclature.
fn words_of(nom: &Nomenclature, code: &str) -> Option<String> {
    let entries = match code.len() {
        2 => &nom.chapters,
        4 => &nom.headings,
        _ => &nom.subheadings,
    };
    entries
        .binary_search_by(|e| e.code.as_str().cmp(code))
        .ok()
        .map(|i| entries[i].text.clone())
}

fn hs_code(nom: &Nomenclature, code: String) -> HsCode {
    let words = words_of(nom, &code);
    HsCode { code, words }
}

/// The HS reading of an item's goods (declared code, sender's and cleaned description).
pub fn hs_reading(goods: &GoodsText) -> Result<HsReading, JobError> {
    let declared = declared_code(Nomenclature::hs2022(), &goods.hs6);
    read(
        declared,
        goods.description.as_deref(),
        goods.description_cleaned.as_deref(),
        HS_SUGGESTIONS,
    )
    .map(|(reading, _)| reading)
}

/// The reading of a sender's text (with `k` suggestions) against a declared code, and against a
/// cleaned text when there is one; with the model's own suggestion.
fn read(
    declared: Option<Code>,
    sender: Option<&str>,
    cleaned: Option<&str>,
    k: usize,
) -> Result<(HsReading, borderlens_hs::Suggestion), JobError> {
    let model = hs_model()?;
    let nom = Nomenclature::hs2022();
    let (suggestion, probabilities) = model.suggest_with_probabilities(sender.unwrap_or(""), k);
    let outcome = match suggestion.status {
        Status::Classified => HsOutcome::Classified,
        Status::NeedsMoreDetail if suggestion.code.as_ref().is_some_and(|c| c.len() == 2) => {
            HsOutcome::NeedsMoreDetailChapter
        }
        Status::NeedsMoreDetail => HsOutcome::NeedsMoreDetailHeading,
        Status::Uncertain => HsOutcome::Uncertain,
        Status::TooVague => HsOutcome::TooVague,
        Status::CannotRead => HsOutcome::CannotRead,
        Status::Empty => HsOutcome::NoDescription,
    };
    let message = match outcome {
        HsOutcome::NoDescription => "no goods description was declared: nothing to read".into(),
        HsOutcome::TooVague | HsOutcome::CannotRead => {
            format!("{}: routed to review, no code is read", suggestion.message)
        }
        _ => suggestion.message.clone(),
    };
    let reads_as = match (&suggestion.code, suggestion.probability) {
        (Some(code), Some(probability)) => Some(HsSuggestion {
            code: code.clone(),
            words: words_of(nom, code).unwrap_or_default(),
            probability,
        }),
        _ => None,
    };
    let mismatch = match (&probabilities, declared) {
        (Some(p), Some(code)) if !outcome.routed_to_review() => level_mismatches(nom, p, code),
        _ => Vec::new(),
    };
    let sender_vs_cleaned = match (sender, cleaned) {
        (Some(_), Some(cleaned)) => {
            // As `HsModel::compare`, without reading the sender's text a second time (an
            // import reads every item: this is a third of its model time when both exist).
            let (other, other_probabilities) = model.suggest_with_probabilities(cleaned, 1);
            let d = probabilities
                .as_ref()
                .zip(other_probabilities.as_ref())
                .map(|(a, b)| borderlens_hs::model::disagreement(a, b));
            match (d, suggestion.candidates.first(), other.candidates.first()) {
                (Some(d), Some(a), Some(b)) => Some(HsTextDisagreement {
                    chapter: d.chapter,
                    heading: d.heading,
                    hs6: d.hs6,
                    sender_reads_as: a.into(),
                    cleaned_reads_as: b.into(),
                }),
                _ => None,
            }
        }
        _ => None,
    };
    let reading = HsReading {
        kind: "derived".into(),
        model: model.id(),
        model_version: MODEL_VERSION.into(),
        declared: declared.map(|c| hs_code(nom, c.to_string())),
        outcome,
        message,
        routed_to_review: outcome.routed_to_review(),
        reads_as,
        suggestions: suggestion
            .candidates
            .iter()
            .map(HsSuggestion::from)
            .collect(),
        mismatch,
        sender_vs_cleaned,
    };
    Ok((reading, suggestion))
}

/// The mismatch rows of a declared code under the description's probabilities.
fn level_mismatches(
    nom: &Nomenclature,
    p: &borderlens_hs::scoring::Probabilities,
    declared: Code,
) -> Vec<HsLevelMismatch> {
    let m = borderlens_hs::model::mismatch(p, declared);
    let mut rows = vec![HsLevelMismatch {
        level: "chapter".into(),
        declared: hs_code(nom, declared.chapter().to_string()),
        reads_as: hs_code(nom, m.best_chapter.0.to_string()),
        reads_as_probability: m.best_chapter.1,
        score: m.chapter,
        threshold: Some(CHAPTER_MISMATCH_THRESHOLD),
        verdict: if m.chapter > CHAPTER_MISMATCH_THRESHOLD {
            HsVerdict::Disagrees
        } else {
            HsVerdict::Agrees
        },
    }];
    let sure_rule = |declared: String, best: String, best_p: f64| {
        if declared == best {
            HsVerdict::Agrees
        } else if best_p >= SURE {
            HsVerdict::Disagrees
        } else {
            HsVerdict::Unsure
        }
    };
    if let (Some(h), Some(score)) = (declared.heading(), m.heading) {
        let best = m.best_heading.0.to_string();
        rows.push(HsLevelMismatch {
            level: "heading".into(),
            verdict: sure_rule(h.to_string(), best.clone(), m.best_heading.1),
            declared: hs_code(nom, h.to_string()),
            reads_as: hs_code(nom, best),
            reads_as_probability: m.best_heading.1,
            score,
            threshold: None,
        });
    }
    if let (Some(s), Some(score)) = (declared.hs6(), m.hs6) {
        let best = m.best_hs6.0.to_string();
        rows.push(HsLevelMismatch {
            level: "hs6".into(),
            verdict: sure_rule(s.to_string(), best.clone(), m.best_hs6.1),
            declared: hs_code(nom, s.to_string()),
            reads_as: hs_code(nom, best),
            reads_as_probability: m.best_hs6.1,
            score,
            threshold: None,
        });
    }
    rows
}

/// The reading of an item and its signals as stored (the signals are what the risk model reads).
pub fn reading_of_item(item: &DeclarationItem) -> Result<(HsReading, HsSignals), JobError> {
    let goods = GoodsText::of(item);
    let declared = declared_code(Nomenclature::hs2022(), &goods.hs6);
    let (reading, suggestion) = read(
        declared,
        goods.description.as_deref(),
        goods.description_cleaned.as_deref(),
        HS_SUGGESTIONS,
    )?;
    let level = |name: &str| reading.mismatch.iter().find(|m| m.level == name);
    let probability = |p: f64| p.clamp(0.0, 1.0);
    let signals = HsSignals {
        key: item.key.clone(),
        model: reading.model.clone(),
        model_version: reading.model_version.clone(),
        outcome: serde_json::to_value(reading.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        suggestions: reading
            .suggestions
            .iter()
            .map(|s| (s.code.clone(), probability(s.probability)))
            .collect(),
        chapter_mismatch: level("chapter").map(|m| probability(m.score)),
        heading_mismatch: level("heading").map(|m| probability(m.score)),
        hs6_mismatch: level("hs6").map(|m| probability(m.score)),
        reads_as_chapter: level("chapter").map(|m| m.reads_as.code.clone()),
        reads_as_heading: level("heading").map(|m| m.reads_as.code.clone()),
        reads_as_hs6: level("hs6").map(|m| m.reads_as.code.clone()),
        vague_probability: suggestion.vague_probability.map(probability),
        review: reading.routed_to_review,
        cleaned_disagreement: reading
            .sender_vs_cleaned
            .as_ref()
            .map(|d| probability(d.chapter)),
    };
    Ok((reading, signals))
}

/// The HS reading of a stored item: the one stored for the shipped model when there is one
/// (no model runs), else computed now (an item imported before readings were stored, or not
/// annotated yet).
pub fn item_hs_reading(store: &dyn Backend, item: &DeclarationItem) -> Result<HsReading, JobError> {
    let model = hs_model()?.id();
    if let Some(stored) = store.hs_reading(&item.key, &model)? {
        if let Ok(reading) = serde_json::from_str::<HsReading>(&stored.reading_json) {
            return Ok(reading);
        }
    }
    Ok(reading_of_item(item)?.0)
}

/// Items read per transaction by [`annotate`].
const ANNOTATE_BATCH: usize = 2_000;

/// What [`annotate`] did.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct AnnotateReport {
    /// The HS model's id (recipe version and file digest) the readings are by.
    pub model: String,
    /// Items read and stored now.
    pub read: u64,
    /// Readings by this model stored in all (those read now included).
    pub stored: u64,
    /// Readings by other models (earlier versions), by model id: kept, never replaced.
    pub other_models: Vec<(String, u64)>,
    /// Seconds taken.
    pub seconds: f64,
}

/// Reads, with the shipped HS model, every stored item that has a goods description and no
/// reading by this model yet (new items, or items read by another model version), and stores
/// the readings as derived values, [`ANNOTATE_BATCH`] items per transaction. The declared code
/// and texts are never changed. Interrupting keeps the batches already stored.
pub fn annotate(
    store: &mut dyn Backend,
    progress: &dyn Progress,
) -> Result<AnnotateReport, JobError> {
    let started = Instant::now();
    let model = hs_model()?.id();
    progress.start(&format!("reading goods descriptions ({model})"), None);
    let mut read = 0u64;
    // The items of a batch of which no reading was saved: another import or `annotate` running
    // beside this one read them first, and the next listing moves on. The same items listed
    // again after saving nothing would be listed for ever: that is an error.
    let mut unsaved: Option<Vec<ItemKey>> = None;
    loop {
        if progress.interrupted() {
            progress.finish();
            return Err(JobError::Interrupted);
        }
        let items = store.items_without_hs_reading(&model, ANNOTATE_BATCH)?;
        if items.is_empty() {
            break;
        }
        let keys: Vec<ItemKey> = items.iter().map(|i| i.key.clone()).collect();
        if unsaved.as_ref() == Some(&keys) {
            return Err(JobError::Internal(format!(
                "HS readings of {} items by {model} were not saved",
                items.len()
            )));
        }
        let readings = read_items(&items)?;
        let saved = store.save_hs_readings(&readings)?;
        unsaved = (saved == 0).then_some(keys);
        read += saved as u64;
        progress.advance(read);
    }
    progress.finish();
    let counts = store.hs_read_models()?;
    let stored = counts
        .iter()
        .find(|(m, _)| *m == model)
        .map_or(0, |(_, n)| *n);
    Ok(AnnotateReport {
        other_models: counts.into_iter().filter(|(m, _)| *m != model).collect(),
        model,
        read,
        stored,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The readings of `items`, on every core (the model is shared, read-only).
fn read_items(items: &[DeclarationItem]) -> Result<Vec<NewHsReading>, JobError> {
    use rayon::prelude::*;
    items
        .par_iter()
        .map(|item| {
            let (reading, signals) = reading_of_item(item)?;
            let reading_json = serde_json::to_string(&reading)
                .map_err(|e| JobError::Internal(format!("HS reading as JSON: {e}")))?;
            Ok(NewHsReading {
                signals,
                reading_json,
            })
        })
        .collect()
}

/// The risk model's view of a reading.
pub fn to_text_signals(s: &HsSignals) -> TextSignals {
    TextSignals {
        chapter_mismatch: s.chapter_mismatch,
        heading_mismatch: s.heading_mismatch,
        hs6_mismatch: s.hs6_mismatch,
        reads_as: [
            s.reads_as_chapter.clone(),
            s.reads_as_heading.clone(),
            s.reads_as_hs6.clone(),
        ],
        vagueness: s.vague_probability,
        review: s.review,
        cleaned_disagreement: s.cleaned_disagreement,
    }
}

/// The text signals of `items` by HS model `hs_model` (an id): the stored readings, and for an
/// item with a description but no stored reading, one computed now when `hs_model` is the
/// shipped model. Refuses another model's id when the store holds none of its readings (a risk
/// model trained on readings of an HS model this build does not ship: retrain it).
pub fn text_signals(
    store: &dyn Backend,
    hs_model_id: &str,
    items: &[DeclarationItem],
) -> Result<TextSignalMap, JobError> {
    // A few items (one explanation): one lookup each; many: every reading of the model at once.
    let stored: HashMap<ItemKey, HsSignals> = if items.len() <= 16 {
        let mut stored = HashMap::new();
        for item in items {
            if let Some(r) = store.hs_reading(&item.key, hs_model_id)? {
                stored.insert(item.key.clone(), r.signals);
            }
        }
        stored
    } else {
        store
            .hs_signals(hs_model_id)?
            .into_iter()
            .map(|s| (s.key.clone(), s))
            .collect()
    };
    let shipped = hs_model()?.id();
    let mut map = TextSignalMap::with_capacity(stored.len());
    let mut missing = Vec::new();
    for item in items {
        match stored.get(&item.key) {
            Some(s) => {
                map.insert(item.key.clone(), to_text_signals(s));
            }
            None if GoodsText::of(item).description.is_some()
                || GoodsText::of(item).description_cleaned.is_some() =>
            {
                missing.push(item.clone());
            }
            None => {}
        }
    }
    if !missing.is_empty() {
        if hs_model_id != shipped {
            return Err(JobError::Invalid(format!(
                "the risk model reads goods descriptions as HS model {hs_model_id} read them, and \
                 {} items have no reading by it; this build ships HS model {shipped}: retrain the \
                 risk model (`borderlens train`)",
                missing.len()
            )));
        }
        for reading in read_items(&missing)? {
            map.insert(
                reading.signals.key.clone(),
                to_text_signals(&reading.signals),
            );
        }
    }
    Ok(map)
}

/// What `POST /api/v1/hs/suggest` and `borderlens`'s callers get for a free text.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct HsSuggestReport {
    /// The model's id.
    pub model: String,
    /// What the model made of the text.
    pub outcome: HsOutcome,
    /// The outcome in words.
    pub message: String,
    /// Whether the text is routed to review (too vague or unreadable).
    pub routed_to_review: bool,
    /// The code the back-off settles on, when one is likely.
    pub reads_as: Option<HsSuggestion>,
    /// The best `k` 6-digit codes.
    pub suggestions: Vec<HsSuggestion>,
    /// Probability that the text is too vague (none when it cannot be read).
    pub vague_probability: Option<f64>,
    /// Whether the text was cut to the 1,024 bytes the model reads.
    pub truncated: bool,
}

/// Checks a free text of at most [`MAX_HS_TEXT_BYTES`]; the error names `field`.
fn check_text(field: &str, text: &str) -> Result<(), JobError> {
    if text.trim().is_empty() {
        return Err(JobError::Invalid(format!(
            "{field}: empty: write what the goods are"
        )));
    }
    if text.len() > MAX_HS_TEXT_BYTES {
        return Err(JobError::Invalid(format!(
            "{field}: {} bytes, over the {} KiB a description may have (the model reads the first 1,024 bytes)",
            text.len(),
            MAX_HS_TEXT_BYTES / 1024
        )));
    }
    Ok(())
}

/// Suggests HS codes for a free text: the `k` best 6-digit codes (1 to 20), the back-off
/// outcome. Refuses an empty or over-long text (naming `text`) and a `k` out of range.
pub fn hs_suggest(text: &str, k: usize) -> Result<HsSuggestReport, JobError> {
    check_text("text", text)?;
    if !(1..=20).contains(&k) {
        return Err(JobError::Invalid(format!("k: {k}: must be 1 to 20")));
    }
    let (r, s) = read(None, Some(text), None, k)?;
    Ok(HsSuggestReport {
        model: r.model,
        outcome: r.outcome,
        message: r.message,
        routed_to_review: r.routed_to_review,
        reads_as: r.reads_as,
        suggestions: r.suggestions,
        vague_probability: s.vague_probability,
        truncated: s.readability.truncated,
    })
}

/// What `POST /api/v1/hs/check` answers: the reading of a text against a declared code.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct HsCheckReport {
    /// The declared code, normalised (6, 4 or 2 digits), with its words.
    pub declared: HsCode,
    /// The reading (suggestions, outcome, mismatch at each level the code has).
    pub reading: HsReading,
}

/// Checks a declared code (2, 4, 6, 8 or 10 digits, dots allowed) against a free text. Refuses a
/// code that is not in HS 2022 (naming `declared`) and an empty or over-long text (naming
/// `text`).
pub fn hs_check(declared: &str, text: &str) -> Result<HsCheckReport, JobError> {
    let nom = Nomenclature::hs2022();
    let code = nom
        .parse_code(declared)
        .map_err(|e| JobError::Invalid(format!("declared: {e}")))?;
    check_text("text", text)?;
    Ok(HsCheckReport {
        declared: hs_code(nom, code.to_string()),
        reading: read(Some(code), Some(text), None, HS_SUGGESTIONS)?.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goods(hs6: &str, sender: Option<&str>, cleaned: Option<&str>) -> GoodsText {
        GoodsText {
            hs6: hs6.into(),
            description: sender.map(str::to_string),
            description_cleaned: cleaned.map(str::to_string),
        }
    }

    #[test]
    fn a_description_of_other_goods_disagrees_at_chapter_level() {
        // Declared as knitted garments (ch. 61), described as insulated copper wire (ch. 85).
        let r = hs_reading(&goods("611249", Some("insulated copper wire"), None)).unwrap();
        assert_eq!(r.kind, "derived");
        assert!(r.model.starts_with(MODEL_VERSION), "{}", r.model);
        assert_eq!(r.declared.as_ref().unwrap().code, "611249");
        assert!(r.declared.as_ref().unwrap().words.is_some());
        assert_eq!(r.suggestions.len(), HS_SUGGESTIONS);
        let chapter = &r.mismatch[0];
        assert_eq!(chapter.level, "chapter");
        assert_eq!(chapter.reads_as.code, "85", "{r:#?}");
        assert_eq!(chapter.verdict, HsVerdict::Disagrees, "{r:#?}");
        assert_eq!(r.mismatch.len(), 3);
    }

    #[test]
    fn a_matching_description_agrees() {
        let r = hs_reading(&goods("854411", Some("insulated copper wire"), None)).unwrap();
        assert_eq!(r.mismatch[0].verdict, HsVerdict::Agrees, "{r:#?}");
        assert!(r.mismatch[0].score < CHAPTER_MISMATCH_THRESHOLD);
    }

    #[test]
    fn no_description_vague_and_unreadable_texts_make_no_guess() {
        let none = hs_reading(&goods("611249", None, None)).unwrap();
        assert_eq!(none.outcome, HsOutcome::NoDescription);
        assert!(none.mismatch.is_empty() && none.suggestions.is_empty());
        let thai = hs_reading(&goods("611249", Some("เสื้อยืดผ้าฝ้าย"), None)).unwrap();
        assert_eq!(thai.outcome, HsOutcome::CannotRead);
        assert!(thai.routed_to_review && thai.mismatch.is_empty() && thai.reads_as.is_none());
        assert!(
            thai.message.contains("routed to review"),
            "{}",
            thai.message
        );
        let binary = hs_reading(&goods("611249", Some("\u{0}\u{1}\u{fffd}"), None)).unwrap();
        assert_eq!(binary.outcome, HsOutcome::CannotRead);
        let gift = hs_reading(&goods("611249", Some("gift"), None)).unwrap();
        assert!(gift.routed_to_review, "{gift:#?}");
        assert!(gift.mismatch.is_empty());
    }

    #[test]
    fn sender_and_cleaned_texts_are_compared_when_both_exist() {
        let r = hs_reading(&goods(
            "611249",
            Some("insulated copper wire"),
            Some("Women's or girls' swimwear of synthetic fibres, knitted"),
        ))
        .unwrap();
        let d = r.sender_vs_cleaned.expect("both texts read");
        assert!(d.chapter > 0.5, "{d:#?}");
        assert_ne!(d.sender_reads_as.code, d.cleaned_reads_as.code);
    }

    #[test]
    fn a_declared_code_outside_hs_2022_is_read_at_its_heading() {
        // 851712 is an HS 2017 subheading; its heading 8517 is in HS 2022.
        let r = hs_reading(&goods("851712", Some("mobile phone"), None)).unwrap();
        assert_eq!(r.declared.unwrap().code, "8517");
        assert_eq!(r.mismatch.len(), 2);
        assert!(hs_reading(&goods("", Some("mobile phone"), None))
            .unwrap()
            .mismatch
            .is_empty());
    }

    #[test]
    fn the_routes_refuse_bad_input_naming_the_field() {
        let err = |r: Result<HsSuggestReport, JobError>| r.unwrap_err().to_string();
        assert!(err(hs_suggest("", 3)).starts_with("text:"));
        assert!(err(hs_suggest(&"a".repeat(1 << 20), 3)).starts_with("text:"));
        assert!(err(hs_suggest("insulated copper wire", 0)).starts_with("k:"));
        let check = |d: &str, t: &str| hs_check(d, t).unwrap_err().to_string();
        assert!(check("999999", "insulated copper wire").starts_with("declared:"));
        assert!(check("abc", "insulated copper wire").starts_with("declared:"));
        assert!(check("8544", " ").starts_with("text:"));
        let ok = hs_check("8544.11", "insulated copper wire").unwrap();
        assert_eq!(ok.declared.code, "854411");
        assert_eq!(ok.reading.mismatch.len(), 3);
        let s = hs_suggest("insulated copper wire", 5).unwrap();
        assert_eq!(s.suggestions.len(), 5);
        assert!(s.suggestions[0].code.starts_with("85"), "{s:#?}");
    }

    #[test]
    fn an_import_stores_each_reading_once_and_the_risk_signals_read_the_stored_ones() {
        // The first 300 rows of the described sample; row 218 is the planted 27011547
        // (declared 850870, the sender's text is of plastic caps, chapter 39).
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample-described");
        let text = std::fs::read_to_string(format!("{root}/df_syn_train_eng.csv")).unwrap();
        let head: String = text.lines().take(301).map(|l| format!("{l}\n")).collect();
        let mapping = borderlens_ingest::ColumnMapping::from_json_file(std::path::Path::new(
            &format!("{root}/mapping.json"),
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = borderlens_store::Store::open(&dir.path().join("t.db")).unwrap();
        let report = crate::import_bytes(
            &mut store,
            "head.csv",
            head.as_bytes(),
            &mapping,
            true,
            &crate::Silent,
        )
        .unwrap();
        assert!(!report.has_problems(), "{report:?}");
        assert!(
            (290..=300).contains(&report.descriptions_read),
            "{report:?}"
        );
        let store: &mut dyn Backend = &mut store;
        let again = annotate(store, &crate::Silent).unwrap();
        assert_eq!((again.read, again.stored), (0, report.descriptions_read));
        let model = hs_model().unwrap().id();
        let key = ItemKey {
            declaration_id: "27011547".into(),
            item_no: 1,
        };
        let item = store.item(&key).unwrap().unwrap();
        assert_eq!(item.hs6.as_str(), "850870", "the declared code is kept");
        let stored = store.hs_reading(&key, &model).unwrap().unwrap();
        assert_eq!(stored.signals.reads_as_chapter.as_deref(), Some("39"));
        assert!(stored.signals.chapter_mismatch.unwrap() > CHAPTER_MISMATCH_THRESHOLD);
        // The page reads the stored reading: the same as computing it now.
        assert_eq!(
            item_hs_reading(store, &item).unwrap(),
            reading_of_item(&item).unwrap().0
        );
        let items = store.items(&Default::default()).unwrap();
        let signals = text_signals(store, &model, &items).unwrap();
        assert_eq!(signals.len() as u64, report.descriptions_read);
        assert_eq!(signals[&key].reads_as[0].as_deref(), Some("39"));
        // Readings of an HS model this build does not ship cannot be made up: refused.
        let err = text_signals(store, "hs-lexical-0+000000000000", &items).unwrap_err();
        assert!(err.to_string().contains("retrain"), "{err}");
    }

    #[test]
    fn a_reading_that_fails_after_the_import_keeps_the_files_report_and_its_items() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample-described");
        let text = std::fs::read_to_string(format!("{root}/df_syn_train_eng.csv")).unwrap();
        let head: String = text.lines().take(51).map(|l| format!("{l}\n")).collect();
        let mapping = borderlens_ingest::ColumnMapping::from_json_file(std::path::Path::new(
            &format!("{root}/mapping.json"),
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let mut store = borderlens_store::Store::open(&db).unwrap();
        // The readings cannot be saved (as on a full disk): a trigger refuses them.
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER planted_failure BEFORE INSERT ON hs_readings
                 BEGIN SELECT RAISE(ABORT, 'planted failure'); END;",
            )
            .unwrap();
        let report = crate::import_bytes(
            &mut store,
            "head.csv",
            head.as_bytes(),
            &mapping,
            false,
            &crate::Silent,
        )
        .unwrap();
        assert_eq!(report.inserted, 50, "{report:?}");
        assert_eq!(report.descriptions_read, 0);
        let error = report.descriptions_error.as_deref().unwrap();
        assert!(
            error.contains("planted failure") && error.contains("annotate"),
            "{error}"
        );
        assert!(report.has_problems());
        use borderlens_store::Items as _;
        assert_eq!(store.count_items().unwrap(), 50, "the items stay stored");
    }

    proptest::proptest! {
        #[test]
        fn any_text_and_code_get_an_answer(text in "\\PC{0,80}", code in "[0-9]{0,10}") {
            let r = hs_reading(&goods(&code, Some(&text), Some(&text))).unwrap();
            for m in &r.mismatch {
                proptest::prop_assert!((0.0..=1.0 + 1e-9).contains(&m.score));
            }
        }
    }
}
