//! The store behind the page tests: the start of the bundled sample (early 2020 to train on, the
//! first days of 2021 to select from), a 20-tree model, the bundled selection policy applied to
//! 2021-01-01..05, and one user per role. Built once per test binary; each test serves a copy.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::OnceLock;

use borderlens_app::{self as app, Role, Silent};
use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use borderlens_server::ServeConfig;
use borderlens_store::Store;
use chrono::NaiveDate;
use tempfile::TempDir;
use tokio::sync::oneshot;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample/");
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/policies/port-default.json"
);

pub fn password(role: Role) -> String {
    format!("password of the {}", role.name())
}

pub fn user_name(role: Role) -> String {
    format!("{}-1", role.name())
}

pub struct Template {
    _dir: TempDir,
    pub db: PathBuf,
}

fn head(file: &str, lines: usize, out: &std::path::Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{SAMPLE}{file}")).unwrap();
    let head: Vec<&str> = text.lines().take(lines + 1).collect();
    std::fs::write(out, head.join("\n") + "\n").unwrap();
    out.to_path_buf()
}

pub fn template() -> &'static Template {
    static TEMPLATE: OnceLock<Template> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let dir = TempDir::new().unwrap();
        let files = vec![
            head("df_syn_train_eng.csv", 3000, &dir.path().join("train.csv")),
            head("df_syn_valid_eng.csv", 300, &dir.path().join("valid.csv")),
        ];
        let db = dir.path().join("template.db");
        let mut store = Store::open(&db).unwrap();
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
        options.gbdt.n_trees = 20;
        options.gbdt.early_stopping_rounds = None;
        app::train(
            &mut store,
            &app::TrainRequest {
                model: "pages".into(),
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
                model: "pages".into(),
                from: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
                to: NaiveDate::from_ymd_opt(2021, 1, 5).unwrap(),
                seed: 7,
                per_office: false,
            },
            &Silent,
        )
        .unwrap();
        for role in Role::ALL {
            app::add_user(&mut store, &user_name(role), role, &password(role)).unwrap();
        }
        drop(store); // checkpoints the WAL into the file, which the tests copy
        Template { _dir: dir, db }
    })
}

/// A running server over a fresh copy of the template store.
pub struct Served {
    pub base: String,
    pub db: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), borderlens_server::ServeError>>>,
    _dir: TempDir,
}

pub async fn serve() -> Served {
    let dir = TempDir::new().unwrap();
    let db = dir.path().join("borderlens.db");
    std::fs::copy(&template().db, &db).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(borderlens_server::run(
        listener,
        ServeConfig::new(db.clone()),
        async {
            let _ = stopped.await;
        },
    ));
    Served {
        base: format!("http://{addr}"),
        db,
        stop: Some(stop),
        server: Some(server),
        _dir: dir,
    }
}

impl Served {
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    /// A second connection to the served store.
    pub fn store(&self) -> Store {
        Store::open(&self.db).unwrap()
    }
}
