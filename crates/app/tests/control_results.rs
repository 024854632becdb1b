//! Control results through the typed path: each edge (JSON text, an HTTP body, answers typed as
//! text) builds one `Submission`, the job validates it and stores it serialised once. A retry of
//! a result stored by an earlier release must still be recognised as a duplicate, since
//! idempotency compares the SHA-256 of the stored text: the texts below are what the earlier
//! release stored for these inputs (`borderlens controls record --declaration D-1 --set ...`).
//!
//! Each test runs on SQLite and, when `BORDERLENS_TEST_DATABASE_URL` names one, on PostgreSQL.

use borderlens_app as app;
use borderlens_controls::{coerce, FormSchema, Submission};
use borderlens_domain::{ControlLabel, RecordStatus};
use borderlens_ingest::ColumnMapping;
use borderlens_store::pg::testing::TestSchema;
use borderlens_store::{Backend, NewControlResult, Store};
use chrono::FixedOffset;
use sha2::{Digest, Sha256};

const CSV: &str = "Declaration ID,Date,Office ID,Process Type,Import Type,Import Use,Payment Type,\
Mode of Transport,Declarant ID,Importer ID,Seller ID,Courier ID,HS6 Code,Country of Departure,\
Country of Origin,Tax Rate,Tax Type,Country of Origin Indicator,Net Mass,Item Price,Fraud,\
Critical Fraud
D-1,2021-01-05,30,B,11,21,11,10,ZZR1LT6,QLRUBN9,0VKY2BR,,440890,BE,BE,0.0,FEU1,G,108.0,372254.4,,
";

/// `--set` answers of a cocaine seizure, and what the earlier release sent and stored for them.
const COCAINE: [(&str, &str); 14] = [
    ("outcome", "Contraband"),
    ("contraband_type", "drugs"),
    ("drug_type", "cocaine"),
    ("drug_form", "powder"),
    ("purity_percent", "87.5"),
    ("quantity", "12"),
    ("quantity_unit", "kg"),
    ("concealment_method", "false_compartment"),
    ("inspection_method", "physical_full, sniffer_dog"),
    ("inspected_at", "2021-01-05T10:30:00+01:00"),
    ("place", "Terminal 3"),
    ("officer_id", "O17"),
    ("container_number", "csqu 305438 3"),
    (
        "remarks",
        "<script>alert(1)</script> \"bricks\"\nbehind panel",
    ),
];
const COCAINE_ID: &str = "cli-bd611497f135a11d";
const COCAINE_SENT: &str = r#"{"declaration_id":"D-1","schema_version":"1.0.0","submission_id":"cli-bd611497f135a11d","values":{"concealment_method":"false_compartment","container_number":"csqu 305438 3","contraband_type":"drugs","drug_form":"powder","drug_type":"cocaine","inspected_at":"2021-01-05T10:30:00+01:00","inspection_method":["physical_full","sniffer_dog"],"officer_id":"O17","outcome":"Contraband","place":"Terminal 3","purity_percent":87.5,"quantity":12,"quantity_unit":"kg","remarks":"<script>alert(1)</script> \"bricks\"\nbehind panel"}}"#;
const COCAINE_STORED: &str = r#"{"submission_id":"cli-bd611497f135a11d","declaration_id":"D-1","schema_version":"1.0.0","outcome":"contraband","inspected_at":"2021-01-05T10:30:00+01:00","anonymised":false,"values":{"concealment_method":"false_compartment","container_number":"CSQU3054383","contraband_type":"drugs","drug_form":"powder","drug_type":"cocaine","inspected_at":"2021-01-05T10:30:00+01:00","inspection_method":["physical_full","sniffer_dog"],"officer_id":"O17","outcome":"contraband","place":"Terminal 3","purity_percent":87.5,"quantity":12.0,"quantity_unit":"kg","remarks":"<script>alert(1)</script> \"bricks\"\nbehind panel"}}"#;
const COCAINE_SHA256: &str = "cdac21ac56bddbac341ca0fe1390fb48299d0d3357b274ccf74ea5fcb95d4e92";

/// A tobacco seizure, likewise.
const TOBACCO: [(&str, &str); 13] = [
    ("outcome", "contraband"),
    ("contraband_type", "tobacco"),
    ("tobacco_product", "cigarettes"),
    ("sticks", "200.0"),
    ("brand", "Marlboro"),
    ("quantity", "1e3"),
    ("quantity_unit", "sticks"),
    ("concealment_method", "none"),
    ("inspection_method", "[\"xray_scan\"]"),
    ("inspected_at", "2021-01-05T10:30:00Z"),
    ("place", "Gate 2"),
    ("officer_id", "O5"),
    ("postal_item_id", "rr 473 124 829 gb"),
];
const TOBACCO_ID: &str = "cli-7baec25d11d8e1a5";
const TOBACCO_SENT: &str = r#"{"declaration_id":"D-1","schema_version":"1.0.0","submission_id":"cli-7baec25d11d8e1a5","values":{"brand":"Marlboro","concealment_method":"none","contraband_type":"tobacco","inspected_at":"2021-01-05T10:30:00Z","inspection_method":["xray_scan"],"officer_id":"O5","outcome":"contraband","place":"Gate 2","postal_item_id":"rr 473 124 829 gb","quantity":1000.0,"quantity_unit":"sticks","sticks":200.0,"tobacco_product":"cigarettes"}}"#;
const TOBACCO_STORED: &str = r#"{"submission_id":"cli-7baec25d11d8e1a5","declaration_id":"D-1","schema_version":"1.0.0","outcome":"contraband","inspected_at":"2021-01-05T10:30:00+00:00","anonymised":false,"values":{"brand":"Marlboro","concealment_method":"none","contraband_type":"tobacco","inspected_at":"2021-01-05T10:30:00+00:00","inspection_method":["xray_scan"],"officer_id":"O5","outcome":"contraband","place":"Gate 2","postal_item_id":"RR473124829GB","quantity":1000.0,"quantity_unit":"sticks","sticks":200,"tobacco_product":"cigarettes"}}"#;
const TOBACCO_SHA256: &str = "539e0a4efc3e48cb5b18fe177089711bfa58b2efcd2f6df7058809a3e12cf1fc";

fn on_both_stores(test: fn(&mut dyn Backend)) {
    let fill = |store: &mut dyn Backend| {
        let report = app::import_bytes(
            store,
            "fixture.csv",
            CSV.as_bytes(),
            &ColumnMapping::kcs_default(),
            true,
            &app::Silent,
        )
        .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    };
    let dir = tempfile::tempdir().unwrap();
    let mut sqlite = Store::open(&dir.path().join("t.db")).unwrap();
    fill(&mut sqlite);
    test(&mut sqlite);
    if let Some(schema) = TestSchema::create() {
        let mut postgres = Store::connect(schema.url()).unwrap();
        fill(&mut postgres);
        test(&mut postgres);
        drop(postgres);
    }
}

fn sha256(text: &str) -> String {
    borderlens_domain::hex::encode(&Sha256::digest(text.as_bytes()))
}

/// A submission of answers typed as text, as `controls record --set` and the web form make it.
fn typed(id: &str, answers: &[(&str, &str)], offset: Option<FixedOffset>) -> Submission {
    let schema = FormSchema::builtin();
    Submission {
        submission_id: id.to_string(),
        declaration_id: "D-1".to_string(),
        schema_version: schema.version().to_string(),
        values: coerce(schema, answers.iter().copied(), offset).unwrap(),
    }
}

fn stored_text(store: &dyn Backend, submission_id: &str) -> String {
    store
        .control_results()
        .unwrap()
        .into_iter()
        .find(|r| r.result.submission_id == submission_id)
        .unwrap()
        .result
        .payload_json
}

#[test]
fn a_retry_of_a_result_stored_by_the_earlier_release_is_a_duplicate() {
    on_both_stores(|store| {
        assert_eq!(sha256(COCAINE_STORED), COCAINE_SHA256);
        // Stored as the earlier release stored it.
        let first = store
            .record_control_result(&NewControlResult {
                submission_id: COCAINE_ID.to_string(),
                declaration_id: "D-1".to_string(),
                schema_version: "1.0.0".to_string(),
                outcome: "contraband".to_string(),
                label: Some(ControlLabel {
                    fraud: true,
                    critical: 2,
                }),
                payload_json: COCAINE_STORED.to_string(),
                source: "cli".to_string(),
            })
            .unwrap()
            .id();
        // Sent again through every edge: the command line, a JSON file, an HTTP body, the form.
        let schema = FormSchema::builtin();
        let body: serde_json::Value = serde_json::from_str(COCAINE_SENT).unwrap();
        let mut form: Vec<(&str, &str)> = COCAINE
            .iter()
            .copied()
            .filter(|(name, _)| *name != "inspection_method" && *name != "inspected_at")
            .collect();
        form.extend([
            ("inspection_method", "physical_full"),
            ("inspection_method", "sniffer_dog"),
            ("inspected_at", "2021-01-05T10:30"),
        ]);
        let retries = [
            app::record_control_submission(store, &typed(COCAINE_ID, &COCAINE, None), "cli"),
            app::record_control_result(store, COCAINE_SENT, "cli"),
            app::record_control_submission(
                store,
                &app::read_control_submission(body).unwrap(),
                "api",
            ),
            app::record_control_submission(
                store,
                &typed(COCAINE_ID, &form, FixedOffset::east_opt(3600)),
                "form",
            ),
        ];
        for retry in retries {
            let report = retry.unwrap();
            assert_eq!((report.status, report.id), (RecordStatus::Duplicate, first));
        }
        assert_eq!(store.control_results().unwrap().len(), 1);
        assert_eq!(schema.version(), "1.0.0");
    });
}

#[test]
fn the_stored_text_is_byte_for_byte_the_earlier_releases() {
    on_both_stores(|store| {
        let report =
            app::record_control_submission(store, &typed(TOBACCO_ID, &TOBACCO, None), "cli")
                .unwrap();
        assert_eq!(
            (report.status, report.label.as_deref()),
            (RecordStatus::Recorded, Some("fraud"))
        );
        let stored = stored_text(store, TOBACCO_ID);
        assert_eq!(stored, TOBACCO_STORED);
        assert_eq!(sha256(&stored), TOBACCO_SHA256);
        // What the earlier release sent for it is a retry of it.
        let again = app::record_control_result(store, TOBACCO_SENT, "cli").unwrap();
        assert_eq!(
            (again.status, again.id),
            (RecordStatus::Duplicate, report.id)
        );
        // And what is stored reads back typed, for the exchange document.
        let export = app::export_control_results(store, "NL", None).unwrap();
        assert_eq!((export.results, export.anonymised), (1, false));
        let document: serde_json::Value = serde_json::from_str(&export.json).unwrap();
        // Made, not yet shared: the audit log lists it once it is written.
        assert!(app::control_exports(store, 1000).unwrap().is_empty());
        app::audit_control_export(store, &export, "nl.json").unwrap();
        let shared = app::control_exports(store, 1000).unwrap();
        assert_eq!(shared.len(), 1);
        assert_eq!(
            (
                shared[0].sender.as_str(),
                shared[0].results,
                shared[0].anonymised,
                shared[0].destination.as_str()
            ),
            ("NL", 1, false, "nl.json")
        );
        assert_eq!(shared[0].sha256, sha256(&export.json));
        let exported = &document["results"][0];
        assert_eq!(exported["submission_id"], TOBACCO_ID);
        let stored: serde_json::Value = serde_json::from_str(TOBACCO_STORED).unwrap();
        assert_eq!(exported["values"], stored["values"]);
    });
}

#[test]
fn refused_submissions_name_every_problem_and_store_nothing() {
    on_both_stores(|store| {
        let body = serde_json::json!({
            "submission_id": 7, "declaration_id": "D-1", "schema_version": "1.0.0",
            "values": {"outcome": "lost"}, "priority": 1
        });
        let error = app::read_control_submission(body).unwrap_err();
        let app::JobError::Refused { errors, .. } = error else {
            panic!("{error}");
        };
        assert_eq!(
            errors.fields(),
            [
                "submission_id",
                "priority",
                "outcome",
                "inspection_method",
                "inspected_at",
                "place",
                "officer_id"
            ]
        );
        let error = app::record_control_result(store, "{\"submission_id\": ", "cli").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("control result refused: not valid JSON: "),
            "{error}"
        );
        let mut answers = TOBACCO.to_vec();
        answers.retain(|(name, _)| *name != "place");
        let error = app::record_control_submission(store, &typed("t-2", &answers, None), "cli")
            .unwrap_err();
        assert_eq!(error.to_string(), "control result refused: place: required");
        assert!(store.control_results().unwrap().is_empty());
    });
}
