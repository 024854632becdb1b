//! The dashboard's drift: its reference window leaves out the days the newest model was trained
//! on (never scored), which made its score look shifted ("major" drift) when nothing moved.

use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_monitor::drift::{AlertKind, DriftLevel};
use borderlens_risk::model::TrainOptions;
use borderlens_store::{Items, Store};

use super::*;
use crate::{ScoreRequest, Silent, TrainRequest};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_train_eng.csv"
);

fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, month, day).unwrap()
}

/// Every fourth row of the sample up to 2020-05-31 (about 4,000 items), a 5-tree model trained
/// until `until`, its scores saved from the day after to the end: the usual loop, where the
/// training days are never scored.
fn store_trained_until(until: NaiveDate, dir: &std::path::Path) -> Store {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let mut lines = text.lines();
    let mut kept = vec![lines.next().unwrap()];
    kept.extend(
        lines
            .enumerate()
            .filter(|(i, line)| i % 4 == 0 && line.split(',').nth(1) <= Some("2020-05-31"))
            .map(|(_, line)| line),
    );
    let csv = dir.join("spring.csv");
    std::fs::write(&csv, kept.join("\n") + "\n").unwrap();
    let mut store = Store::open(&dir.join("t.db")).unwrap();
    let reports = crate::import_files(
        &mut store,
        &[csv],
        &ColumnMapping::kcs_default(),
        true,
        &Silent,
    )
    .unwrap();
    assert!(!reports[0].has_problems());
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.n_trees = 5;
    options.gbdt.early_stopping_rounds = None;
    let train = TrainRequest {
        model: "m".into(),
        until,
        options,
        ipw: false,
        text_features: true,
        firm_history: true,
    };
    crate::train(&mut store, &train, &Silent).unwrap();
    let score = ScoreRequest {
        model: "m".into(),
        version: None,
        from: None,
        to: None,
        explain: false,
        top_reasons: 0,
        rate: 5,
    };
    crate::score(&mut store, &score, &Silent).unwrap();
    store
}

#[test]
fn dashboard_drift_leaves_the_models_training_days_out_of_its_reference_window() {
    let dir = tempfile::tempdir().unwrap();
    // The last day is 2020-05-31: current 05-04..05-31, the twelve weeks before from 02-10 to
    // 05-03. The model learnt until 03-31, so 02-10..03-31 has no saved score.
    let store = store_trained_until(date(3, 31), dir.path());
    assert_eq!(store.last_item_date().unwrap(), Some(date(5, 31)));
    let shown = dashboard(&store, "origin", DashboardParts::All).unwrap();
    let (reference, current) = shown.drift_periods.unwrap();
    assert_eq!(current, (date(5, 4), date(5, 31)));
    assert_eq!(
        reference,
        (date(4, 1), date(5, 3)),
        "starts after the training data"
    );
    let report = shown.drift.unwrap();
    let score = report.score.as_ref().expect("the score is compared");
    assert!(
        score.psi.bins.iter().all(|b| b.label != "missing"),
        "every compared item was scored: {:?}",
        score.psi.bins
    );
    // Same model, neighbouring weeks of the same data: no major shift of the score.
    assert_ne!(score.level, DriftLevel::Major, "{score:?}");
    assert!(
        report
            .alerts
            .iter()
            .all(|a| a.kind != AlertKind::ScoreDrift),
        "{:?}",
        report.alerts
    );

    // A model whose training data covers the whole window: the declared values are compared
    // over the usual window, the score not, and the dashboard says why.
    let dir = tempfile::tempdir().unwrap();
    let store = store_trained_until(date(5, 10), dir.path());
    let shown = dashboard(&store, "origin", DashboardParts::All).unwrap();
    let (reference, _) = shown.drift_periods.unwrap();
    assert_eq!(reference, (date(2, 10), date(5, 3)));
    let report = shown.drift.unwrap();
    assert!(report.score.is_none());
    assert!(!report.features.is_empty());
    assert!(
        shown
            .notes
            .iter()
            .any(|n| n.contains("score drift") && n.contains("2020-05-10")),
        "{:?}",
        shown.notes
    );
}

#[test]
fn a_results_only_dashboard_computes_no_monitoring_figure() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("t.db")).unwrap();
    let results = dashboard(&store, "origin", DashboardParts::Results).unwrap();
    assert!(results.estimates.is_none() && results.bias.is_none() && results.drift.is_none());
    assert!(results.evaluation.is_none() && results.hit_rates.is_empty());
    assert!(results.notes.is_empty(), "{:?}", results.notes);
    let all = dashboard(&store, "origin", DashboardParts::All).unwrap();
    assert!(!all.notes.is_empty(), "the full one says what is missing");
}
