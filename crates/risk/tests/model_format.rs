//! Registry bytes of trained models (`RiskModel::to_bytes`) across commits: every format this
//! crate has ever written must still decode and score as it did when it was saved.
//!
//! The fixtures (`tests/fixtures/`, described in its README) are frozen: a model trained and saved
//! by an earlier commit, and the items, model rows, scores and contributions it gave then.

use borderlens_domain::{ControlLabel, DeclarationItem, HsCode, ItemKey};
use borderlens_risk::model::{RiskError, RiskModel, MODEL_FORMAT};
use chrono::NaiveDate;
use serde::Deserialize;

/// One declaration item of the fixture, field for field.
#[derive(Deserialize)]
struct FixtureItem {
    declaration_id: String,
    item_no: u32,
    date: String,
    office_id: String,
    process_type: String,
    import_type: String,
    import_use: String,
    payment_type: String,
    transport_mode: String,
    declarant_id: String,
    importer_id: String,
    seller_id: Option<String>,
    courier_id: Option<String>,
    hs6: String,
    departure_country: String,
    origin_country: String,
    tax_rate: f64,
    tax_type: String,
    origin_indicator: String,
    net_mass: f64,
    item_price: f64,
    /// `[fraud, critical]` when the item was controlled.
    label: Option<(bool, u8)>,
}

impl FixtureItem {
    fn item(&self) -> DeclarationItem {
        DeclarationItem {
            key: ItemKey {
                declaration_id: self.declaration_id.clone(),
                item_no: self.item_no,
            },
            date: NaiveDate::parse_from_str(&self.date, "%Y-%m-%d").unwrap(),
            office_id: self.office_id.clone(),
            process_type: self.process_type.clone(),
            import_type: self.import_type.clone(),
            import_use: self.import_use.clone(),
            payment_type: self.payment_type.clone(),
            transport_mode: self.transport_mode.clone(),
            declarant_id: self.declarant_id.clone(),
            importer_id: self.importer_id.clone(),
            seller_id: self.seller_id.clone(),
            courier_id: self.courier_id.clone(),
            hs6: HsCode::parse(&self.hs6).unwrap(),
            departure_country: self.departure_country.clone(),
            origin_country: self.origin_country.clone(),
            tax_rate: self.tax_rate,
            tax_type: self.tax_type.clone(),
            origin_indicator: self.origin_indicator.clone(),
            net_mass: self.net_mass,
            item_price: self.item_price,
            label: self
                .label
                .map(|(fraud, critical)| ControlLabel { fraud, critical }),
            extra: Default::default(),
        }
    }
}

/// What the fixture model gave when it was saved; every `f64` as the hex of its bits.
#[derive(Deserialize)]
struct Expected {
    /// The model was trained on `items[..training_items]`; the rest came later (unseen codes).
    training_items: usize,
    /// Items sorted by date: history and the items scored.
    items: Vec<FixtureItem>,
    /// Indices in `items` of the scored items (the last ones).
    scored: Vec<usize>,
    /// Model columns of each scored item.
    rows: Vec<Vec<String>>,
    /// Raw scores (log-odds) of each row.
    raw: Vec<String>,
    /// Calibrated probabilities of each row.
    scores: Vec<String>,
    /// TreeSHAP contributions of each row (one per column, expected value last).
    contributions: Vec<Vec<String>>,
}

fn bits(hex: &str) -> f64 {
    f64::from_bits(u64::from_str_radix(hex, 16).unwrap())
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn expected() -> Expected {
    serde_json::from_slice(&fixture("model-expected.json")).unwrap()
}

/// Checks that `model` turns the fixture's items into the same rows, scores and contributions as
/// the model did when it was saved: rows, raw scores and probabilities bit for bit; contributions
/// within 1e-12 log-odds (their quadrature's evaluation order is an implementation detail).
fn assert_scores_as_saved(model: &RiskModel, expected: &Expected) {
    let items: Vec<DeclarationItem> = expected.items.iter().map(FixtureItem::item).collect();
    assert!(expected
        .scored
        .iter()
        .any(|&i| i >= expected.training_items));
    let mut wanted = vec![false; items.len()];
    for &i in &expected.scored {
        wanted[i] = true;
    }
    let (data, index) = model.design(&items, &wanted);
    assert_eq!(index, expected.scored);
    let scores = model.score(&data);
    for (r, &item) in index.iter().enumerate() {
        let row = data.row(r);
        let id = &items[item].key.declaration_id;
        assert_eq!(row.len(), expected.rows[r].len(), "{id}: number of columns");
        for (column, (&value, hex)) in row.iter().zip(&expected.rows[r]).enumerate() {
            let saved = bits(hex);
            assert!(
                value.to_bits() == saved.to_bits() || (value.is_nan() && saved.is_nan()),
                "{id}, column {column}: {value} now, {saved} when saved"
            );
        }
        let raw = model.booster.predict_raw(&row);
        assert_eq!(raw.to_bits(), bits(&expected.raw[r]).to_bits(), "{id}: raw");
        let saved = bits(&expected.scores[r]);
        assert_eq!(scores[r].to_bits(), saved.to_bits(), "{id}: score");
        assert_eq!(model.score_row(&row).to_bits(), saved.to_bits(), "{id}");
        let contributions = model.booster.contributions(&row);
        assert_eq!(contributions.len(), expected.contributions[r].len());
        for (column, (&now, hex)) in contributions
            .iter()
            .zip(&expected.contributions[r])
            .enumerate()
        {
            let saved = bits(hex);
            assert!(
                (now - saved).abs() <= 1e-12,
                "{id}, contribution {column}: {now} now, {saved} when saved"
            );
        }
    }
}

/// A model saved before model bytes carried a format version (plain JSON of the model's structs,
/// `model-unversioned.json`, saved by commit 4216c0e) loads and scores exactly as it did.
///
/// A model saved today must still load and score identically in every later commit: never
/// regenerate the fixture to make this test pass; fix the code (or add a decoder for the old
/// format) instead.
#[test]
fn unversioned_model_bytes_still_load_and_score_identically() {
    let model = RiskModel::from_bytes(&fixture("model-unversioned.json")).unwrap();
    assert_scores_as_saved(&model, &expected());
}

/// A model saved in format version 1 (`{"format":1,"model":{..}}`, `model-v1.json`, the same
/// model as `model-unversioned.json`, saved by the commit that introduced versions) loads and
/// scores exactly as it did.
///
/// A model saved today must still load and score identically in every later commit: never
/// regenerate the fixture to make this test pass; fix the code (or add a decoder for the old
/// format) instead.
#[test]
fn format_1_model_bytes_still_load_and_score_identically() {
    let bytes = fixture("model-v1.json");
    assert!(bytes.starts_with(br#"{"format":1,"model":{"#));
    let model = RiskModel::from_bytes(&bytes).unwrap();
    assert_scores_as_saved(&model, &expected());
    let unversioned = RiskModel::from_bytes(&fixture("model-unversioned.json")).unwrap();
    assert_eq!(model, unversioned);
}

/// Bytes of a later format version are refused with an error that names the version, rather
/// than read as if they were a format this build knows.
#[test]
fn a_newer_format_version_is_refused_naming_it() {
    let bytes = fixture("model-v1.json");
    let newer = [
        br#"{"format":7,"#.as_slice(),
        &bytes[br#"{"format":1,"#.len()..],
    ]
    .concat();
    let error = RiskModel::from_bytes(&newer).unwrap_err();
    assert!(matches!(error, RiskError::NewerFormat(7)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("format version 7"), "{message}");
    assert!(
        message.contains(&format!("up to version {MODEL_FORMAT}")),
        "{message}"
    );
}
