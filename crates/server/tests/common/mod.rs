//! What the server's black-box tests share: a store built once per test binary by the app's own
//! jobs (import, train, policy, select, users, tokens), on SQLite and on PostgreSQL, and a real
//! server over a fresh copy of it for each test.
//!
//! Each test runs on both stores: `on_both_stores!` makes a `sqlite` and a `postgres` test of
//! one test function. The PostgreSQL one uses the database `BORDERLENS_TEST_DATABASE_URL` names (a schema
//! per test, copied from a template schema) and prints "SKIPPED" without it, unless
//! `BORDERLENS_REQUIRE_POSTGRES=1` (CI), where it fails instead.
//!
//! The store behind a test is read through a connection of the test's own, on a thread of its
//! own ([`Served::with_store`]): what the server acknowledged must be committed for another
//! reader, and the PostgreSQL client must not run on the test's async thread.
#![allow(dead_code)] // each test binary uses its part

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use borderlens_app::{self as app, Role, Silent};
use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use borderlens_server::ServeConfig;
use borderlens_store::pg::testing::{self, TestSchema};
use borderlens_store::{open_any, Backend};
use chrono::NaiveDate;
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The bundled sample with goods descriptions (constructed: data/sample-described/README.md),
/// read through its mapping: the same declarations as data/sample, each with the sender's
/// description and on some a broker's cleaned one.
const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/sample-described/");
const POLICY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../data/policies/port-default.json"
);

/// Makes two tests of each named `async fn NAME(kind: StoreKind)`: `NAME::sqlite` and
/// `NAME::postgres`. The PostgreSQL one skips (or fails in CI) without a test database. A test
/// function left out of the list is dead code, which clippy refuses.
#[allow(unused_macros)] // browser.rs runs its round on each store itself
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name($crate::common::StoreKind::Sqlite).await
            }

            #[tokio::test]
            async fn postgres() {
                if $crate::common::postgres_available() {
                    super::$name($crate::common::StoreKind::Postgres).await
                }
            }
        }
    )*};
}

/// Which store a test serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

impl StoreKind {
    /// The kinds this run can test: SQLite, and PostgreSQL where a test database is given.
    pub fn available() -> Vec<StoreKind> {
        let mut kinds = vec![StoreKind::Sqlite];
        if postgres_available() {
            kinds.push(StoreKind::Postgres);
        }
        kinds
    }
}

/// Whether a PostgreSQL test database is given; prints "SKIPPED" when not, and panics when not
/// but `BORDERLENS_REQUIRE_POSTGRES=1`.
pub fn postgres_available() -> bool {
    testing::database_url().is_some()
}

pub fn password(role: Role) -> String {
    format!("password of the {}", role.name())
}

pub fn user_name(role: Role) -> String {
    format!("{}-1", role.name())
}

/// What a test binary's store holds.
pub struct Spec {
    /// Names the PostgreSQL template schema (`p_{tag}_{pid}`).
    pub tag: &'static str,
    /// Data lines taken from the head of the sample's first file (2020) ...
    pub train_lines: usize,
    /// ... and of its second (2021).
    pub valid_lines: usize,
    /// The model trained on 2020.
    pub model: &'static str,
    pub trees: usize,
    /// Days the bundled policy selects from with that model, if any.
    pub select: Option<(NaiveDate, NaiveDate)>,
}

/// The store of the page and browser tests: the start of the bundled sample with descriptions (early 2020 to
/// train on, the first days of 2021 to select from), a 20-tree model, and the bundled policy
/// applied to 2021-01-01..05.
pub static PAGES: Fixture = Fixture::new(Spec {
    tag: "pages",
    train_lines: 3000,
    valid_lines: 300,
    model: "pages",
    trees: 20,
    select: Some((day(2021, 1, 1), day(2021, 1, 5))),
});

const fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("not a date"),
    }
}

/// The store of a test binary, built on first use for each kind of store.
pub struct Fixture {
    spec: Spec,
    sqlite: OnceLock<Template>,
    postgres: OnceLock<Template>,
}

struct Template {
    place: Place,
    tokens: BTreeMap<Role, String>,
}

/// Where a store lives; dropping it removes it, unless it is another server's.
enum Place {
    Sqlite {
        _dir: TempDir,
        db: PathBuf,
    },
    Postgres(TestSchema),
    /// Another server's store (what `open_any` opens).
    Shared(String),
}

impl Place {
    /// What `open_any` opens.
    fn target(&self) -> String {
        match self {
            Place::Sqlite { db, .. } => db.display().to_string(),
            Place::Postgres(schema) => schema.url().to_string(),
            Place::Shared(target) => target.clone(),
        }
    }
}

/// Starts the real server with `config` on a free loopback port.
async fn start(
    kind: StoreKind,
    config: ServeConfig,
    tokens: &'static BTreeMap<Role, String>,
    place: Place,
) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(borderlens_server::run(listener, config.clone(), async {
        let _ = stopped.await;
    }));
    Served {
        base: format!("http://{addr}"),
        kind,
        tokens,
        config,
        stop: Some(stop),
        server: Some(server),
        place,
    }
}

/// The described sample's mapping file.
fn described_mapping() -> ColumnMapping {
    ColumnMapping::from_json_file(Path::new(&format!("{SAMPLE}mapping.json"))).unwrap()
}

/// The first `lines` records of a sample file (the described sample has no line break inside a
/// description: one record a line).
fn head(file: &str, lines: usize, out: &Path) -> PathBuf {
    let text = std::fs::read_to_string(format!("{SAMPLE}{file}")).unwrap();
    let head: Vec<&str> = text.lines().take(lines + 1).collect();
    std::fs::write(out, head.join("\n") + "\n").unwrap();
    out.to_path_buf()
}

/// Runs `f` on a connection of its own to `target`, on a thread of its own.
fn on_own_thread<R: Send>(target: &str, f: impl FnOnce(&mut dyn Backend) -> R + Send) -> R {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut store = open_any(target).unwrap();
                f(&mut *store)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Fixture {
    pub const fn new(spec: Spec) -> Fixture {
        Fixture {
            spec,
            sqlite: OnceLock::new(),
            postgres: OnceLock::new(),
        }
    }

    fn template(&self, kind: StoreKind) -> &Template {
        match kind {
            StoreKind::Sqlite => self.sqlite.get_or_init(|| {
                let dir = TempDir::new().unwrap();
                let db = dir.path().join("template.db");
                let place = Place::Sqlite { _dir: dir, db };
                self.build(place)
            }),
            StoreKind::Postgres => self.postgres.get_or_init(|| {
                let schema = TestSchema::for_process(self.spec.tag)
                    .expect("a PostgreSQL test runs only with a test database");
                self.build(Place::Postgres(schema))
            }),
        }
    }

    /// Builds the store with the app's jobs; the SQLite connection is closed at the end, which
    /// checkpoints the WAL into the file the tests copy.
    fn build(&self, place: Place) -> Template {
        let spec = &self.spec;
        let files = TempDir::new().unwrap();
        let mut paths = vec![head(
            "df_syn_train_eng.csv",
            spec.train_lines,
            &files.path().join("train.csv"),
        )];
        if spec.valid_lines > 0 {
            paths.push(head(
                "df_syn_valid_eng.csv",
                spec.valid_lines,
                &files.path().join("valid.csv"),
            ));
        }
        let tokens = on_own_thread(&place.target(), |store| {
            let reports =
                app::import_files(store, &paths, &described_mapping(), true, &Silent).unwrap();
            assert!(reports.iter().all(|r| !r.has_problems()));
            let mut options = TrainOptions::standard(LabelKind::Fraud);
            options.gbdt.n_trees = spec.trees;
            options.gbdt.early_stopping_rounds = None;
            app::train(
                store,
                &app::TrainRequest {
                    model: spec.model.into(),
                    until: NaiveDate::from_ymd_opt(2020, 12, 31).unwrap(),
                    options,
                    ipw: false,
                    text_features: true,
                    firm_history: true,
                },
                &Silent,
            )
            .unwrap();
            let (policy, _) =
                app::save_policy(store, &std::fs::read_to_string(POLICY).unwrap()).unwrap();
            if let Some((from, to)) = spec.select {
                app::select(
                    store,
                    &app::SelectRequest {
                        policy,
                        model: spec.model.into(),
                        from,
                        to,
                        seed: 7,
                        per_office: false,
                    },
                    &Silent,
                )
                .unwrap();
            }
            let mut tokens = BTreeMap::new();
            for role in Role::ALL {
                app::add_user(store, &user_name(role), role, &password(role)).unwrap();
                let token = app::create_token(store, &user_name(role)).unwrap().token;
                tokens.insert(role, token);
            }
            tokens
        });
        Template { place, tokens }
    }

    /// A running server over a fresh copy of this fixture's store of `kind`.
    pub async fn serve(&'static self, kind: StoreKind) -> Served {
        self.serve_with(kind, |_| {}).await
    }

    /// As [`Fixture::serve`], with the configuration changed by `configure`.
    pub async fn serve_with(
        &'static self,
        kind: StoreKind,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Served {
        let template = self.template(kind);
        let dir = TempDir::new().unwrap();
        let (place, mut config) = match &template.place {
            Place::Sqlite { db: from, .. } => {
                let db = dir.path().join("borderlens.db");
                std::fs::copy(from, &db).unwrap();
                let config = ServeConfig::new(db.clone());
                (Place::Sqlite { _dir: dir, db }, config)
            }
            Place::Postgres(from) => {
                let schema = std::thread::scope(|scope| {
                    scope.spawn(|| TestSchema::copy_of(from)).join().unwrap()
                })
                .expect("a PostgreSQL test runs only with a test database");
                let mut config = ServeConfig::new(dir.path().join("unused.db"));
                config.database_url = Some(schema.url().to_string());
                (Place::Postgres(schema), config)
            }
            Place::Shared(_) => unreachable!("templates own their store"),
        };
        configure(&mut config);
        start(kind, config, &template.tokens, place).await
    }
}

/// A running server over its own store.
pub struct Served {
    pub base: String,
    pub kind: StoreKind,
    tokens: &'static BTreeMap<Role, String>,
    config: ServeConfig,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), borderlens_server::ServeError>>>,
    // Last: the store is removed after the server has stopped.
    place: Place,
}

impl Served {
    /// The API token of `role`'s user.
    pub fn api_token(&self, role: Role) -> String {
        self.tokens[&role].clone()
    }

    /// A second server over the same store, as another instance behind a load balancer would
    /// be. Stopping it leaves the store alone.
    pub async fn another_instance(&self) -> Served {
        let place = Place::Shared(self.place.target());
        start(self.kind, self.config.clone(), self.tokens, place).await
    }

    /// Runs `f` on a second connection to the served store, on a thread of its own.
    pub fn with_store<R: Send>(&self, f: impl FnOnce(&mut dyn Backend) -> R + Send) -> R {
        on_own_thread(&self.place.target(), f)
    }

    /// Holds the store's writer lock on a connection of its own, as a long import does, until
    /// the returned guard is dropped: SQLite's `BEGIN IMMEDIATE`, PostgreSQL's writers' advisory
    /// lock (the store's own, `pg_advisory_xact_lock` of the schema).
    pub fn hold_write_lock(&self) -> WriteLock {
        let target = self.place.target();
        let (locked, is_locked) = std::sync::mpsc::channel::<()>();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            if borderlens_store::pg::is_postgres_url(&target) {
                let mut client = postgres::Client::connect(&target, postgres::NoTls).unwrap();
                let mut tx = client.transaction().unwrap();
                tx.batch_execute(
                    "SELECT pg_advisory_xact_lock(hashtext(coalesce(current_schema(), '')))",
                )
                .unwrap();
                locked.send(()).unwrap();
                let _ = released.recv();
                tx.rollback().unwrap();
            } else {
                let mut conn = rusqlite::Connection::open(&target).unwrap();
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .unwrap();
                locked.send(()).unwrap();
                let _ = released.recv();
                tx.rollback().unwrap();
            }
        });
        is_locked.recv().unwrap();
        WriteLock {
            release: Some(release),
            holder: Some(holder),
        }
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// The store's writer lock, held by another connection until dropped ([`Served::hold_write_lock`]).
pub struct WriteLock {
    release: Option<std::sync::mpsc::Sender<()>>,
    holder: Option<std::thread::JoinHandle<()>>,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(holder) = self.holder.take() {
            if let Err(panic) = holder.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

/// A planted misdeclaration of the described sample (`truth/descriptions.csv`, line 218 of
/// `df_syn_train_eng.csv`, `misdeclared` 1, `fraud` 1): declared 850870 (parts of vacuum
/// cleaners, which the broker's cleaned text repeats), while the sender wrote what is in the
/// parcel: plastic closures (true code 392350). In every fixture (line 218 < 300).
pub const PLANTED: &str = "27011547";
/// Its declared code.
pub const PLANTED_HS6: &str = "850870";
/// The sender's description.
pub const PLANTED_TEXT: &str = "stoppers, lids and bottle caps, plastic";
/// What the shipped HS model reads the sender's text as (`borderlens hs check --declared 850870
/// "stoppers, lids and bottle caps, plastic"`: 392350 at 95.6%, chapter mismatch 1.000).
pub const PLANTED_READS_AS: &str = "392350";

/// A small X-ray library (12 generated bags, 96 × 96, guns and bottles) and a held-out one
/// (8 bags of another seed) under `dir`, and the desk's settings over them: half the scans
/// reviewed without proposals, a retraining of three passes at 32 × 32 (a second or so).
pub fn nii_desk(dir: &Path) -> app::DeskConfig {
    use borderlens_nii::batch::generate_into;
    use borderlens_nii::generate::{GeneratorParams, ThreatClass};
    use borderlens_nii::Library;
    let params = GeneratorParams {
        width: 96,
        height: 96,
        cargo_mix: [1.0, 0.0, 0.0],
        clutter_density: [0.3, 0.6],
        threat_rate: 0.9,
        max_threats: 1,
        threat_mix: vec![(ThreatClass::Gun, 1.0), (ThreatClass::Bottle, 1.0)],
        mm_per_pixel: 4.0,
        ..GeneratorParams::default()
    };
    for (name, seed, count) in [("library", 5, 12), ("held-out", 6, 8)] {
        let mut library = Library::create(&dir.join(name)).unwrap();
        generate_into(&mut library, &params, seed, count, &|_| {}, &|| false).unwrap();
    }
    let mut desk = app::DeskConfig::new(dir.join("library"));
    desk.held_out = Some(dir.join("held-out"));
    desk.hidden_share = 0.5;
    desk.train = nii_train_options();
    desk
}

/// A retraining of three passes at 32 × 32 (a second or so): enough for a test's detector
/// with the first network (the deeper trunk and transposition learn too slowly in three
/// passes over a dozen tiny views to propose anything).
pub fn nii_train_options() -> borderlens_nii::detector::train::TrainOptions {
    borderlens_nii::detector::train::TrainOptions {
        epochs: 3,
        batch: 4,
        side: 32,
        width: 4,
        deepest_stride: 8,
        transpose: false,
        ..Default::default()
    }
}

/// The scan ids of the desk's library, in catalogue order.
pub fn nii_scans(desk: &app::DeskConfig) -> Vec<String> {
    borderlens_nii::Library::open(&desk.library)
        .unwrap()
        .records()
        .iter()
        .map(|r| r.metadata.scan_id.clone())
        .collect()
}
