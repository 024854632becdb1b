//! Declarations of several items: selection decides on the riskiest one, and what explains,
//! shows and audits the decision describes that item. The bundled sample has one item per
//! declaration, so the test makes declarations of its rows. It runs on SQLite and, when
//! `BORDERLENS_TEST_DATABASE_URL` names a database, on PostgreSQL (skipped without it, unless
//! `BORDERLENS_REQUIRE_POSTGRES=1`).

use std::path::Path;

use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use borderlens_store::pg::testing::TestSchema;
use borderlens_store::Store;

use super::*;
use crate::views::{declaration, queue, QueueFilter};
use crate::{ScoreRequest, Silent, TrainRequest};

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/sample/df_syn_train_eng.csv"
);

fn day(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, day).unwrap()
}

fn key(declaration_id: &str, item_no: u32) -> ItemKey {
    ItemKey {
        declaration_id: declaration_id.to_string(),
        item_no,
    }
}

/// `item` as item `item_no` of declaration `declaration_id`, declared on `date`.
fn copy(item: &DeclarationItem, declaration_id: &str, item_no: u32, date: NaiveDate) -> Item {
    DeclarationItem {
        key: key(declaration_id, item_no),
        date,
        ..item.clone()
    }
}

type Item = DeclarationItem;

#[test]
fn multi_item_declarations_are_explained_by_their_decided_item_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("t.db")).unwrap();
    decided_item_is_explained_shown_and_audited(&mut store, dir.path());
}

#[test]
fn multi_item_declarations_are_explained_by_their_decided_item_on_postgresql() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::connect(schema.url()).unwrap();
    decided_item_is_explained_shown_and_audited(&mut store, dir.path());
    drop(store);
    drop(schema);
}

/// The first 2,500 rows of the sample (2020-01-01 to 17) and a 5-tree model trained until the
/// 14th.
fn sample_store(store: &mut dyn Backend, dir: &Path) {
    let text = std::fs::read_to_string(SAMPLE).unwrap();
    let head: Vec<&str> = text.lines().take(2501).collect();
    let csv = dir.join("head.csv");
    std::fs::write(&csv, head.join("\n") + "\n").unwrap();
    let reports =
        crate::import_files(store, &[csv], &ColumnMapping::kcs_default(), true, &Silent).unwrap();
    assert!(!reports[0].has_problems());
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.n_trees = 5;
    options.gbdt.early_stopping_rounds = None;
    crate::train(
        store,
        &TrainRequest {
            model: "m".into(),
            until: day(14),
            options,
            ipw: false,
            text_features: true,
            firm_history: true,
        },
        &Silent,
    )
    .unwrap();
}

fn is_fraud(item: &Item) -> bool {
    item.label.is_some_and(|l| l.fraud)
}

fn group<'a>(record: &'a borderlens_monitor::bias::AuditRecord, dimension: &str) -> &'a str {
    record
        .groups
        .iter()
        .find(|(d, _)| d == dimension)
        .map(|(_, g)| g.as_str())
        .unwrap()
}

/// The score of item `item_no` of `id` that select saved.
fn saved(store: &dyn Backend, id: &str, item_no: u32) -> f64 {
    store.scores_for(&key(id, item_no)).unwrap()[0].score
}

/// The explanation of item `item_no` of `id` on its own, as JSON.
fn alone(store: &dyn Backend, id: &str, item_no: u32) -> serde_json::Value {
    let request = ExplainRequest {
        model: "m".into(),
        version: Some(1),
        key: key(id, item_no),
        rate: 5,
    };
    serde_json::to_value(explain(store, &request).unwrap().0).unwrap()
}

fn decided_item_is_explained_shown_and_audited(store: &mut dyn Backend, dir: &Path) {
    sample_store(store, dir);
    // Rows of the 16th and 17th, riskiest first: frauds from the top, compliant ones from the
    // bottom, become the items of new declarations of the 18th (and one of the 19th).
    let scored = crate::score(
        store,
        &ScoreRequest {
            model: "m".into(),
            version: None,
            from: Some(day(16)),
            to: Some(day(17)),
            explain: false,
            top_reasons: 0,
            rate: 5,
        },
        &Silent,
    )
    .unwrap();
    let rows: Vec<Item> = scored
        .items
        .iter()
        .map(|s| {
            store
                .item(&key(&s.declaration_id, s.item_no))
                .unwrap()
                .unwrap()
        })
        .collect();
    let high: Vec<&Item> = rows.iter().filter(|i| is_fraud(i)).take(4).collect();
    let low: Vec<&Item> = rows.iter().rev().filter(|i| !is_fraud(i)).collect();
    // Item 1 of A (and of D) differs from item 2 in what the audit groups by.
    let unlike = |h: &Item| {
        *low.iter()
            .find(|l| l.origin_country != h.origin_country && l.declarant_id != h.declarant_id)
            .expect("a compliant row unlike the fraud")
    };
    let (a1, a2) = (unlike(high[0]), high[0]);
    let (d1, d2) = (unlike(high[3]), high[3]);
    let multi = vec![
        copy(a1, "MULTI-A", 1, day(18)),
        copy(a2, "MULTI-A", 2, day(18)),
        copy(low[1], "MULTI-B", 1, day(18)),
        copy(high[1], "MULTI-B", 2, day(18)),
        copy(low[2], "MULTI-B", 3, day(18)),
        copy(high[2], "MULTI-C", 1, day(18)),
        copy(low[3], "MULTI-C", 2, day(18)),
        copy(d1, "MULTI-D", 1, day(19)),
        copy(d2, "MULTI-D", 2, day(19)),
    ];
    store
        .import("multi.csv", multi.iter().cloned().zip(2u64..))
        .unwrap();
    let (policy, _) = save_policy(
        store,
        r#"{"name": "all-red", "capacity": {"count": 3}, "explore_share": 0.0,
            "exploration": {"kind": "none"}}"#,
    )
    .unwrap();
    select(
        store,
        &SelectRequest {
            policy,
            model: "m".into(),
            from: day(18),
            to: day(18),
            seed: 1,
            per_office: false,
        },
        &Silent,
    )
    .unwrap();
    // The scores select saved: the riskiest item of A and B is item 2, of C item 1.
    let saved = |id: &str, item_no| saved(store, id, item_no);
    assert!(saved("MULTI-A", 2) > saved("MULTI-A", 1));
    assert!(saved("MULTI-B", 2) > saved("MULTI-B", 1).max(saved("MULTI-B", 3)));
    assert!(saved("MULTI-C", 1) > saved("MULTI-C", 2));

    // The decision names its item; its score is that item's.
    for (id, decided) in [("MULTI-A", 2), ("MULTI-B", 2), ("MULTI-C", 1)] {
        let decisions = store.decisions_for(id).unwrap();
        assert_eq!(decisions.len(), 1, "{id}");
        assert_eq!(decisions[0].decision.item_no, Some(decided), "{id}");
        assert_eq!(decisions[0].decision.lane, Lane::Red, "{id}");
        assert_eq!(
            decisions[0].decision.score,
            Some(saved(id, decided)),
            "{id}"
        );
    }

    // explain-decision explains item 2 of A: its score, contributions, counterfactual, declared
    // values and label, as explaining that item alone does.
    let trace = explain_decision(store, "MULTI-A").unwrap();
    assert_eq!(
        (trace.item_no, trace.decided_item, trace.items),
        (2, Some(2), 2)
    );
    assert_eq!(trace.decisions[0].item_no, Some(2));
    assert_eq!(trace.label, label_words(a2.label));
    assert_ne!(trace.label, label_words(a1.label));
    let explanation = trace.explanation.as_ref().unwrap();
    assert_eq!(explanation.item_no, 2);
    assert_eq!(
        serde_json::to_value(explanation).unwrap(),
        alone(store, "MULTI-A", 2)
    );
    assert_ne!(
        serde_json::to_value(explanation).unwrap(),
        alone(store, "MULTI-A", 1)
    );
    assert!((explanation.score - saved("MULTI-A", 2)).abs() < 1e-9);
    assert_eq!(
        explanation
            .declared
            .get("origin_country")
            .map(String::as_str),
        Some(a2.origin_country.as_str()),
        "{:?}",
        explanation.declared
    );
    // A derived value is shown with the declared values it comes from.
    let price = explanation
        .contributions
        .iter()
        .find(|c| c.feature == "log_item_price")
        .unwrap();
    assert_eq!(
        price.declared.as_deref(),
        Some(format!("item price {}", a2.item_price).as_str())
    );
    assert!(
        price
            .in_words()
            .contains(&format!("[declared: item price {}]", a2.item_price)),
        "{}",
        price.in_words()
    );
    // A history value says how many past controls or declarations it rests on.
    let value_of = |feature: &str| {
        explanation
            .contributions
            .iter()
            .find(|c| c.feature == feature)
            .unwrap()
    };
    let rate = value_of("importer_past_fraud_rate");
    let controls: u64 = value_of("importer_past_controls").value.parse().unwrap();
    let basis = rate.history.as_ref().expect("history basis of a past rate");
    assert_eq!(
        (basis.count, basis.counted.as_str()),
        (controls, "past controls")
    );
    assert_eq!(basis.few, controls < 10);
    assert!(
        rate.in_words()
            .contains(&format!("[from {controls} past control")),
        "{}",
        rate.in_words()
    );
    let declarations: u64 = value_of("importer_past_declarations")
        .value
        .parse()
        .unwrap();
    assert_eq!(
        value_of("importer_days_known")
            .history
            .as_ref()
            .unwrap()
            .count,
        declarations
    );
    assert!(price.history.is_none());
    let trace_b = explain_decision(store, "MULTI-B").unwrap();
    assert_eq!((trace_b.item_no, trace_b.items), (2, 3));
    assert_eq!(
        serde_json::to_value(trace_b.explanation).unwrap(),
        alone(store, "MULTI-B", 2)
    );
    let trace_c = explain_decision(store, "MULTI-C").unwrap();
    assert_eq!((trace_c.item_no, trace_c.items), (1, 2));

    // The declaration view: the trace of item 2, its derived values and its conflicts.
    let mut disagreeing = copy(a2, "MULTI-A", 2, day(18));
    disagreeing.item_price += 1.0;
    let outcome = store.import("later.csv", [(disagreeing, 2)]).unwrap();
    assert_eq!(outcome.conflicts.len(), 1);
    let view = declaration(store, "MULTI-A").unwrap();
    assert_eq!(view.trace.item_no, 2);
    assert_eq!(
        serde_json::to_value(&view.trace.explanation).unwrap(),
        alone(store, "MULTI-A", 2)
    );
    let contributions = &explanation.contributions;
    assert_eq!(view.derived.len(), contributions.len());
    assert!(view
        .derived
        .iter()
        .zip(contributions)
        .all(|(d, c)| d.value == c.value
            && d.log_odds == c.log_odds
            && d.history.as_ref().map(|h| &h.words) == c.history.as_ref().map(|h| &h.words)));
    assert!(view.derived.iter().any(|d| d.history.is_some()));
    assert_eq!(view.conflicts.len(), 1);
    assert_eq!(view.conflicts[0].source, "later.csv line 2");

    // The queue shows the decided item and its saved reasons.
    let day_queue = queue(
        store,
        &QueueFilter {
            day: Some("2020-01-18".into()),
            ..QueueFilter::default()
        },
    )
    .unwrap();
    let row = day_queue
        .rows
        .iter()
        .find(|r| r.declaration_id == "MULTI-A")
        .unwrap();
    assert_eq!(row.origin, a2.origin_country);
    assert_eq!(row.hs6, a2.hs6.to_string());

    // Pages of one row, in the order of the whole queue; a page past the last shows the last.
    let day_filter = |search: Option<&str>, page_size: Option<usize>, page: usize| QueueFilter {
        day: Some("2020-01-18".into()),
        search: search.map(str::to_string),
        page_size,
        page,
        ..QueueFilter::default()
    };
    let all = &day_queue.rows;
    assert!(all.len() >= 2, "{}", all.len());
    assert_eq!((day_queue.matching, day_queue.pages), (all.len(), 1));
    for page in 1..=all.len() {
        let one = queue(store, &day_filter(None, Some(1), page)).unwrap();
        assert_eq!(
            (one.page, one.pages, one.matching),
            (page, all.len(), all.len())
        );
        assert_eq!(one.rows.len(), 1);
        assert_eq!(one.rows[0].declaration_id, all[page - 1].declaration_id);
    }
    let past = queue(store, &day_filter(None, Some(1), all.len() + 5)).unwrap();
    assert_eq!(past.page, all.len());
    // Search by declaration id (any case) or importer id.
    let found = queue(store, &day_filter(Some(" multi-a "), None, 1)).unwrap();
    assert!(found.rows.iter().any(|r| r.declaration_id == "MULTI-A"));
    assert!(found
        .rows
        .iter()
        .all(|r| r.declaration_id.to_lowercase().contains("multi-a")));
    let by_importer = queue(store, &day_filter(Some(&a2.importer_id), None, 1)).unwrap();
    assert!(by_importer
        .rows
        .iter()
        .any(|r| r.declaration_id == "MULTI-A"));
    assert!(by_importer.rows.iter().all(
        |r| r.importer.contains(&a2.importer_id) || r.declaration_id.contains(&a2.importer_id)
    ));
    let none = queue(store, &day_filter(Some("no such declaration"), None, 1)).unwrap();
    assert_eq!((none.rows.len(), none.matching, none.pages), (0, 0, 1));
    // Bad paging and search are refused, naming what is wrong.
    let error = queue(store, &day_filter(None, Some(0), 1)).unwrap_err();
    assert!(error.to_string().contains("page size 0"), "{error}");
    let long = "x".repeat(crate::QUEUE_SEARCH_MAX + 1);
    let error = queue(store, &day_filter(Some(&long), None, 1)).unwrap_err();
    assert!(error.to_string().contains("search"), "{error}");
    assert_eq!(
        row.reasons,
        store.scores_for(&key("MULTI-A", 2)).unwrap()[0].reasons
    );

    // A decision recorded without its item (before schema version 6): item 1 stands for it.
    store
        .record_decisions(&[NewDecision {
            declaration_id: "MULTI-D".into(),
            item_no: None,
            batch: "2020-01-19".into(),
            policy_name: "all-red".into(),
            policy_version: 1,
            model_name: Some("m".into()),
            model_version: Some(1),
            score: None,
            pi: 1.0,
            stratum: "risk".into(),
            lane: Lane::Red,
            source: DecisionSource::Risk,
            reasons: Vec::new(),
        }])
        .unwrap();
    let trace_d = explain_decision(store, "MULTI-D").unwrap();
    assert_eq!(
        (trace_d.item_no, trace_d.decided_item, trace_d.items),
        (1, None, 2)
    );
    assert_eq!(trace_d.explanation.as_ref().unwrap().item_no, 1);
    assert_eq!(trace_d.label, label_words(d1.label));

    // The bias audit groups and labels each declaration by its decided item.
    let records = crate::monitoring::audit_records(store).unwrap();
    let record = |id: &str| {
        records
            .iter()
            .find(|(d, _)| d == id)
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    let a = record("MULTI-A");
    assert_eq!(group(&a, "origin country"), a2.origin_country);
    assert_eq!(group(&a, "declarant"), a2.declarant_id);
    assert_eq!(group(&a, "office"), a2.office_id);
    assert!(a.selected);
    assert_eq!(a.outcome, Some(true));
    let d = record("MULTI-D");
    assert_eq!(group(&d, "origin country"), d1.origin_country);
    assert_eq!(d.outcome, Some(false));
    assert!(crate::bias_audit(store, &Default::default()).is_ok());

    // An override keeps the decided item.
    let overridden = override_decision(store, "MULTI-A", Lane::Green, "known trader").unwrap();
    assert_eq!(overridden.decision.item_no, Some(2));
    let trace = explain_decision(store, "MULTI-A").unwrap();
    assert_eq!((trace.item_no, trace.decisions[1].item_no), (2, Some(2)));
    let a = crate::monitoring::audit_records(store)
        .unwrap()
        .into_iter()
        .find(|(d, _)| d == "MULTI-A")
        .unwrap()
        .1;
    assert_eq!(group(&a, "origin country"), a2.origin_country);
    assert!(!a.selected);
}

/// The field at fault and the reason of a refused override reason.
fn refused_reason(reason: &str) -> String {
    match check_override_reason(reason) {
        Err(JobError::Refused { errors, .. }) => {
            assert_eq!(errors.0.len(), 1, "{reason:?}");
            assert_eq!(errors.0[0].field, "reason", "{reason:?}");
            errors.0[0].reason.clone()
        }
        other => panic!("{reason:?} is not refused: {other:?}"),
    }
}

#[test]
fn override_reasons_need_visible_words_and_no_control_characters() {
    // NULs and other control characters: refused, named (a NUL made PostgreSQL fail: 500).
    for reason in [
        "\0\0\0\0\0\0",
        "tip from\0 the police",
        "esc \u{1b}[31m red",
    ] {
        assert!(
            refused_reason(reason).contains("control character U+00"),
            "{reason:?}"
        );
    }
    // Nothing, one character, or characters that show nothing (zero-width, joiners, BOM).
    assert!(refused_reason("").contains("mandatory"));
    assert!(refused_reason(" \t\n ").contains("mandatory"));
    assert!(
        refused_reason("\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}\u{200B}").contains("mandatory")
    );
    assert!(refused_reason("x").contains("1 visible characters, at least 5"));
    assert!(refused_reason("\u{FEFF}a\u{200D}b\u{2060}c\u{00AD}d\u{200B}").contains("4 visible"));
    assert!(refused_reason(&"x".repeat(1001)).contains("at most 1000"));
    // Kept as typed inside, trimmed of white space and invisible characters at both ends;
    // line breaks and tabs are text.
    assert_eq!(
        check_override_reason("\u{200B} tip from the port police\r\n(2nd line)\t \u{FEFF}")
            .unwrap(),
        "tip from the port police\r\n(2nd line)"
    );
    assert_eq!(check_override_reason("AEO ok").unwrap(), "AEO ok");
    assert_eq!(
        check_override_reason("Zollfahndung: Hinweis").unwrap(),
        "Zollfahndung: Hinweis"
    );
}
