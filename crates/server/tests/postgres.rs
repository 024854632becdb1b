//! The service on PostgreSQL: the app's jobs (import, train, policy, select, users, tokens) build
//! a store in a fresh schema of the database `BORDERLENS_TEST_DATABASE_URL` names, and the real
//! server runs on it (`ServeConfig::database_url`). Without the variable the test prints
//! "SKIPPED" and passes, unless `BORDERLENS_REQUIRE_POSTGRES=1`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use borderlens_app::{self as app, Role, Silent};
use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use borderlens_server::ServeConfig;
use borderlens_store::pg::testing::TestSchema;
use borderlens_store::pg::PgStore;
use chrono::NaiveDate;
use reqwest::header::{AUTHORIZATION, SET_COOKIE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample/");
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/policies/port-default.json"
);

/// A declaration of the fixture (first data line of the sample).
const DECLARATION: &str = "97061800";

fn head(file: &str, lines: usize, out: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{SAMPLE}{file}")).unwrap();
    let head: Vec<&str> = text.lines().take(lines + 1).collect();
    std::fs::write(out, head.join("\n") + "\n").unwrap();
    out.to_path_buf()
}

fn password(role: Role) -> String {
    format!("password of the {}", role.name())
}

/// Builds the fixture with the app's jobs on PostgreSQL; returns one API token per role.
fn fixture(url: &str) -> BTreeMap<Role, String> {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![
        head("df_syn_train_eng.csv", 1000, &dir.path().join("train.csv")),
        head("df_syn_valid_eng.csv", 300, &dir.path().join("valid.csv")),
    ];
    let mut store = PgStore::connect(url).unwrap();
    let reports = app::import_files(
        &mut store,
        &files,
        &ColumnMapping::kcs_default(),
        true,
        &Silent,
    )
    .unwrap();
    assert!(reports.iter().all(|r| !r.has_problems()));
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.n_trees = 5;
    options.gbdt.early_stopping_rounds = None;
    app::train(
        &mut store,
        &app::TrainRequest {
            model: "pg".into(),
            until: NaiveDate::from_ymd_opt(2020, 12, 31).unwrap(),
            options,
            ipw: false,
        },
        &Silent,
    )
    .unwrap();
    let (policy, _) =
        app::save_policy(&mut store, &std::fs::read_to_string(POLICY).unwrap()).unwrap();
    app::select(
        &mut store,
        &app::SelectRequest {
            policy,
            model: "pg".into(),
            from: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
            to: NaiveDate::from_ymd_opt(2021, 1, 5).unwrap(),
            seed: 7,
            per_office: false,
        },
        &Silent,
    )
    .unwrap();
    let mut tokens = BTreeMap::new();
    for role in Role::ALL {
        let name = format!("{}-1", role.name());
        app::add_user(&mut store, &name, role, &password(role)).unwrap();
        tokens.insert(role, app::create_token(&mut store, &name).unwrap().token);
    }
    tokens
}

fn submission(submission_id: &str, remarks: &str) -> Value {
    json!({
        "submission_id": submission_id,
        "declaration_id": DECLARATION,
        "schema_version": "1.0.0",
        "values": {
            "outcome": "contraband", "contraband_type": "drugs", "drug_type": "cocaine",
            "drug_form": "powder", "packaging": "bricks_taped",
            "concealment_method": "false_compartment", "quantity": 12.5, "quantity_unit": "kg",
            "inspection_method": ["physical_full", "sniffer_dog"],
            "inspected_at": "2020-01-02T10:30:00+01:00", "place": "Terminal 3",
            "officer_id": "O17", "remarks": remarks
        }
    })
}

#[tokio::test]
async fn the_service_runs_on_postgresql() {
    let Some(schema) = TestSchema::create() else {
        return;
    };
    let url = schema.url().to_string();
    let tokens = tokio::task::spawn_blocking({
        let url = url.clone();
        move || fixture(&url)
    })
    .await
    .unwrap();

    let mut config = ServeConfig::new(PathBuf::from("unused-when-on-postgresql.db"));
    config.database_url = Some(url.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(borderlens_server::run(listener, config, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let bearer = |role: Role| format!("Bearer {}", tokens[&role]);

    // Who is calling: tokens are found by their digest in PostgreSQL.
    let me = client
        .get(format!("{base}/api/v1/me"))
        .header(AUTHORIZATION, bearer(Role::Analyst))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
    let me: Value = me.json().await.unwrap();
    assert_eq!(me["user"], "analyst-1");

    // A login opens a session stored there.
    let login = client
        .post(format!("{base}/api/v1/login"))
        .json(&json!({"user": "officer-1", "password": password(Role::Officer)}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.headers().get(SET_COOKIE).is_some());

    // Control results: new (201), retried (200, duplicate), reused id with other content (409).
    let post = |body: Value| {
        client
            .post(format!("{base}/api/v1/control-results"))
            .header(AUTHORIZATION, bearer(Role::Officer))
            .json(&body)
            .send()
    };
    let first = post(submission("pg-1", "found it")).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = post(submission("pg-1", "found it")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(
        (again["status"].as_str(), &again["id"]),
        (Some("duplicate"), &first["id"])
    );
    let conflict = post(submission("pg-1", "other")).await.unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);

    // The day's queue, from decisions, scores and results kept in PostgreSQL.
    let queue = client
        .get(format!("{base}/api/v1/queue"))
        .header(AUTHORIZATION, bearer(Role::Analyst))
        .send()
        .await
        .unwrap();
    assert_eq!(queue.status(), StatusCode::OK);

    let _ = stop.send(());
    server.await.unwrap().unwrap();

    // Acknowledged means committed: another connection sees the result, audited by the officer.
    // (A store is used off the async threads, as the server does.)
    tokio::task::spawn_blocking(move || {
        let store = PgStore::connect(&url).unwrap();
        assert_eq!(store.control_results().unwrap().len(), 1);
        let audit = store.audit_entries(50).unwrap();
        assert!(audit
            .iter()
            .any(|e| e.action == "control_result" && e.actor == "officer-1"));
        assert!(audit
            .iter()
            .any(|e| e.action == "login" && e.actor == "officer-1"));
    })
    .await
    .unwrap();
    drop(schema);
}
