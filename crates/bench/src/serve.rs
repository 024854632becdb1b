//! `borderlens bench serve`: a load test of the HTTP service on loopback.
//!
//! A store is prepared (the first `--declarations` items of the sample, a small model and its
//! scores, an officer with an API token): once as an SQLite file, copied for each `synchronous`
//! setting (NORMAL, FULL), and, with `--postgres URL`, once more in a fresh schema of that
//! PostgreSQL database (dropped at the end). Each is served by `borderlens serve` run as a child
//! process of this executable on `127.0.0.1:0`, and an
//! open-loop load generator sends requests at increasing constant rates: control-result
//! submissions, then score reads (`GET /api/v1/declarations/{id}/score`, or `/decision` where
//! the server has no score route). Open loop: request `i` of a step is due at `t0 + i / rate`
//! whether or not earlier requests were answered, and its latency is counted from that due time,
//! so a server that falls behind shows it in the latencies (no coordinated omission).
//!
//! After each backend the server is stopped and the store is read back: every submission
//! answered 201 must be stored, once, and nothing else but submissions whose answer was lost
//! (timeouts).

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use borderlens_app::{self as app, Progress, Role};
use borderlens_charts::lines::{lines_svg, Axes, Line, Reference};
use borderlens_domain::LabelKind;
use borderlens_ingest::ColumnMapping;
use borderlens_risk::model::TrainOptions;
use borderlens_store::pg::{is_postgres_url, redact_url};
use borderlens_store::{ItemFilter, Store, SYNCHRONOUS_ENV};
use serde::Serialize;
use serde_json::json;

use crate::{outln, BenchOptions};

/// The target: this many submissions per second ...
const TARGET_RATE: f64 = 1000.0;
/// ... with the 99th percentile of latency at or under this many milliseconds.
const TARGET_P99_MS: f64 = 50.0;
/// A step whose 99th percentile is above this, or with more than 1% of requests failed, is
/// saturated: the higher rates of that kind are skipped (they could only be worse).
const SATURATED_P99_MS: f64 = 1000.0;
/// The bench's user and the role it needs for both kinds of request.
const USER: &str = "bench-officer";

/// A store the service runs on, measured by the same steps: SQLite with a `synchronous`
/// setting, or PostgreSQL (`--postgres URL`, in a schema of its own).
#[derive(Clone, Debug)]
enum Backend {
    Sqlite { synchronous: String },
    Postgres,
}

impl Backend {
    fn name(&self) -> String {
        match self {
            Backend::Sqlite { synchronous } => format!("sqlite synchronous={synchronous}"),
            Backend::Postgres => "postgresql".to_string(),
        }
    }

    /// A short tag for file names and submission ids.
    fn tag(&self) -> &str {
        match self {
            Backend::Sqlite { synchronous } => synchronous,
            Backend::Postgres => "postgresql",
        }
    }
}

/// A fresh schema `bench_<unix-seconds>_<pid>` in a PostgreSQL database, dropped (with
/// everything in it) when this is dropped; the store connects with it as its search path.
struct PgSchema {
    admin_url: String,
    name: String,
    url: String,
}

impl PgSchema {
    fn create(admin_url: &str) -> anyhow::Result<PgSchema> {
        let name = format!("bench_{}_{}", unix_seconds(), std::process::id());
        borderlens_store::pg::create_schema(admin_url, &name)
            .with_context(|| format!("cannot create schema {name} in {}", redact_url(admin_url)))?;
        Ok(PgSchema {
            admin_url: admin_url.to_string(),
            url: borderlens_store::pg::schema_url(admin_url, &name),
            name,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Err(e) = borderlens_store::pg::drop_schema(&self.admin_url, &self.name) {
            eprintln!(
                "borderlens: cannot drop schema {} in {}: {e:#}",
                self.name,
                redact_url(&self.admin_url)
            );
        }
    }
}

/// Kinds of request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Submit,
    Read,
}

/// What one request came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    /// An HTTP answer with this status.
    Status(u16),
    /// No answer within the timeout after it was sent (a submission may or may not be stored).
    Timeout,
    /// Not sent: no connection was free before the timeout (nothing reached the server).
    NotSent,
    /// The connection failed.
    Transport,
}

#[derive(Clone, Copy, Debug)]
struct Sample {
    latency: Duration,
    outcome: Outcome,
}

/// One rate step, as reported.
#[derive(Clone, Debug, Serialize)]
struct Step {
    backend: String,
    kind: String,
    route: String,
    offered_per_s: f64,
    seconds: f64,
    requests: usize,
    ok: usize,
    /// Answers outside 2xx.
    errors: usize,
    /// Unanswered within the timeout, or never sent for want of a free connection.
    timeouts: usize,
    achieved_per_s: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    /// CPU seconds of the server process during the step, and as cores busy.
    server_cpu_s: Option<f64>,
    server_cores: Option<f64>,
    /// CPU seconds of this process (the load generator) during the step.
    client_cpu_s: Option<f64>,
    client_cores: Option<f64>,
    statuses: std::collections::BTreeMap<u16, usize>,
}

/// What reading the store back found.
#[derive(Clone, Debug, Serialize)]
struct Verification {
    submissions_sent: usize,
    answered_201: usize,
    answered_200_duplicate: usize,
    unanswered: usize,
    stored: usize,
    stored_of_unanswered: usize,
    missing_acknowledged: usize,
    unexpected: usize,
    ok: bool,
}

#[derive(Clone, Debug, Serialize)]
struct BackendReport {
    backend: String,
    steps: Vec<Step>,
    skipped: Vec<String>,
    verification: Option<Verification>,
    server_log: String,
}

/// Runs the load test (see the module doc); fails when the store read back does not match the
/// answers.
pub fn serve(a: &BenchOptions, json: bool, bars: &dyn Progress) -> anyhow::Result<()> {
    let started = Instant::now();
    let time_limit = Duration::from_secs(a.max_seconds);
    let work = a
        .work
        .clone()
        .unwrap_or_else(|| PathBuf::from("target/bench-serve"));
    std::fs::create_dir_all(&work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut rates: Vec<u32> = a.rates.iter().copied().filter(|r| *r > 0).collect();
    rates.sort_unstable();
    rates.dedup();
    if rates.is_empty() {
        bail!("--rates needs at least one rate above 0");
    }
    if !(a.step_seconds > 0.0 && a.step_seconds <= 60.0) {
        bail!("--step-seconds must be above 0 and at most 60");
    }
    let kinds = a
        .kinds
        .iter()
        .map(|k| match k.as_str() {
            "submit" => Ok(Kind::Submit),
            "read" => Ok(Kind::Read),
            other => bail!("unknown kind '{other}': use submit, read"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut backends = a
        .synchronous
        .iter()
        .map(|s| match s.to_ascii_lowercase().as_str() {
            v @ ("normal" | "full") => Ok(Backend::Sqlite {
                synchronous: v.to_string(),
            }),
            other => bail!("unknown --synchronous '{other}': use normal, full"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Created first, so that a database that cannot be reached fails the bench at once; dropped
    // when this function returns, on error too (or once its backend is done).
    let mut pg_schema: Option<PgSchema> = None;
    if let Some(url) = &a.postgres {
        if !is_postgres_url(url) {
            bail!("--postgres needs a postgres:// or postgresql:// URL");
        }
        pg_schema = Some(PgSchema::create(url)?);
        backends.push(Backend::Postgres);
    }

    let csv = sample_csv(a, &work)?;
    let template = work.join("template.db");
    let mut sqlite_prepared: Option<(String, Vec<String>)> = None;
    if backends.iter().any(|b| matches!(b, Backend::Sqlite { .. })) {
        bars.start(
            &format!(
                "preparing an SQLite store: {} sample items, a model, a user",
                a.declarations
            ),
            None,
        );
        let prepared = prepare_sqlite(a, &csv, &template);
        bars.finish();
        sqlite_prepared = Some(prepared?);
    }
    let mut all_ids: Vec<String> = Vec::new();

    let exe = std::env::current_exe().context("cannot find the borderlens executable")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the load generator's runtime")?;
    let run_tag = format!("{}-{}", unix_seconds(), std::process::id());
    let mut reports = Vec::new();
    let mut read_route: Option<&'static str> = None;
    for backend in &backends {
        let tag = backend.tag();
        // Declared before the server, so dropped after it (also on error): the schema goes
        // once nothing uses it.
        let mut schema: Option<PgSchema> = None;
        let mut db: Option<PathBuf> = None;
        // The store arguments of `borderlens serve`, its environment, the token and the ids.
        let (store_args, env, token, ids) = match backend {
            Backend::Sqlite { synchronous } => {
                let path = work.join(format!("serve-{synchronous}.db"));
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                std::fs::copy(&template, &path)
                    .with_context(|| format!("cannot copy the store to {}", path.display()))?;
                let (token, ids) = sqlite_prepared
                    .clone()
                    .context("the SQLite store was not prepared")?;
                db = Some(path.clone());
                (
                    vec![OsString::from("--db"), path.into_os_string()],
                    vec![(SYNCHRONOUS_ENV, synchronous.as_str())],
                    token,
                    ids,
                )
            }
            Backend::Postgres => {
                let created = schema.insert(
                    pg_schema
                        .take()
                        .context("the PostgreSQL schema was not created")?,
                );
                bars.start(
                        &format!(
                            "preparing a PostgreSQL store (schema {}): {} sample items, a model, a user",
                            created.name, a.declarations
                        ),
                        None,
                    );
                let prepared = Store::connect(&created.url)
                    .with_context(|| format!("cannot open database {}", redact_url(&created.url)))
                    .and_then(|mut store| prepare(a, &csv, &mut store));
                bars.finish();
                let (token, ids) = prepared?;
                (
                    vec!["--database-url".into(), created.url.clone().into()],
                    Vec::new(),
                    token,
                    ids,
                )
            }
        };
        if all_ids.is_empty() {
            all_ids.clone_from(&ids);
        }
        let log = work.join(format!("server-{tag}.log"));
        let server = Server::start(&exe, &store_args, &env, &log)?;
        let client = Client::new(&server.addr, &token, a.connections)?;
        let route = match read_route {
            Some(r) => r,
            None => {
                let r = runtime.block_on(client.probe_read_route(&ids[0]))?;
                read_route = Some(r);
                r
            }
        };
        let mut report = BackendReport {
            backend: backend.name(),
            steps: Vec::new(),
            skipped: Vec::new(),
            verification: None,
            server_log: log.display().to_string(),
        };
        let mut sent: Vec<(String, Outcome)> = Vec::new();
        for &kind in &kinds {
            let label = match kind {
                Kind::Submit => "submit",
                Kind::Read => route,
            };
            // Warm-up (not reported): connections opened, caches and pool filled.
            let plan = Plan {
                kind,
                route,
                rate: 200.0,
                seconds: 0.5,
                timeout: Duration::from_millis(a.timeout_ms),
                tag: format!("{run_tag}-{tag}-warmup-{label}"),
            };
            let (_, warm_sent) = runtime.block_on(client.run(&plan, &ids));
            sent.extend(warm_sent);
            let mut saturated_at: Option<u32> = None;
            for &rate in &rates {
                if let Some(at) = saturated_at {
                    report
                        .skipped
                        .push(format!("{label} at {rate}/s: saturated at {at}/s"));
                    continue;
                }
                let needed =
                    Duration::from_secs_f64(a.step_seconds) + Duration::from_millis(a.timeout_ms);
                if started.elapsed() + needed > time_limit {
                    report.skipped.push(format!(
                        "{label} at {rate}/s: over --max-seconds {}",
                        a.max_seconds
                    ));
                    continue;
                }
                bars.start(&format!("{}: {label} at {rate}/s", backend.name()), None);
                let plan = Plan {
                    kind,
                    route,
                    rate: f64::from(rate),
                    seconds: a.step_seconds,
                    timeout: Duration::from_millis(a.timeout_ms),
                    tag: format!("{run_tag}-{tag}-{rate}"),
                };
                let server_before = cpu_seconds(&format!("/proc/{}/stat", server.pid()));
                let client_before = cpu_seconds("/proc/self/stat");
                let (samples, step_sent) = runtime.block_on(client.run(&plan, &ids));
                let server_cpu = cpu_seconds(&format!("/proc/{}/stat", server.pid()))
                    .zip(server_before)
                    .map(|(after, before)| after - before);
                let client_cpu = cpu_seconds("/proc/self/stat")
                    .zip(client_before)
                    .map(|(after, before)| after - before);
                bars.finish();
                sent.extend(step_sent);
                let step = summarise(
                    &backend.name(),
                    label,
                    &plan,
                    &samples,
                    server_cpu,
                    client_cpu,
                );
                if step.p99_ms > SATURATED_P99_MS
                    || (step.errors + step.timeouts) as f64 > 0.01 * step.requests as f64
                {
                    saturated_at = Some(rate);
                }
                if !json {
                    eprintln!(
                        "  {}: {label} at {rate}/s: {:.0}/s, p50 {:.1} ms, p99 {:.1} ms, {} errors, {} timeouts",
                        backend.name(),
                        step.achieved_per_s,
                        step.p50_ms,
                        step.p99_ms,
                        step.errors,
                        step.timeouts
                    );
                }
                report.steps.push(step);
            }
        }
        let stopped = server.stop();
        let store: Box<dyn borderlens_store::Backend> = match (&db, &schema) {
            (Some(db), _) => Box::new(
                Store::open(db)
                    .with_context(|| format!("cannot open database {}", db.display()))?,
            ),
            (None, Some(schema)) => Box::new(
                Store::connect(&schema.url)
                    .with_context(|| format!("cannot open database {}", redact_url(&schema.url)))?,
            ),
            (None, None) => bail!("no store to read back for {}", backend.name()),
        };
        report.verification = Some(verify(&*store, &run_tag, &sent)?);
        drop(store);
        drop(schema);
        if let Err(e) = stopped {
            eprintln!("borderlens: {e:#}");
        }
        reports.push(report);
    }
    let ids = all_ids;

    let target = target_verdict(&reports);
    let route = read_route.unwrap_or("decision");
    let result = json!({
        "what": "borderlens serve on loopback, open-loop load at increasing constant rates",
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "note": "the load generator (one thread) runs on the same cores as the server: its CPU is reported beside the server's",
        },
        "store": {
            "declaration_items": ids.len(),
            "postgresql": a.postgres.as_deref().map(|url| json!({
                "database": redact_url(url),
                "note": "a fresh schema bench_<unix-seconds>_<pid> of this database, prepared like the SQLite file, dropped at the end; the server's durability is the database's own settings (fsync, synchronous_commit)",
            })),
        },
        "read_route": format!("GET /api/v1/declarations/{{id}}/{route}"),
        "step_seconds": a.step_seconds,
        "timeout_ms": a.timeout_ms,
        "connections": a.connections,
        "backends": reports,
        "target": target,
        "wall_seconds": started.elapsed().as_secs_f64(),
    });
    let json_path = work.join("bench-serve.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&result)?)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    let svg_path = work.join("bench-serve.svg");
    std::fs::write(&svg_path, chart(&reports))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print_table(&reports, &result, &json_path, &svg_path)?;
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.verification.as_ref().is_some_and(|v| !v.ok))
        .map(|r| r.backend.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "the store read back does not match the answers ({}): see {}",
            failed.join(", "),
            json_path.display()
        );
    }
    Ok(())
}

/// Seconds since the Unix epoch, to tell runs apart in submission ids.
fn unix_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes the first `--declarations` items of the 2020 sample to `declarations.csv` in `work`.
fn sample_csv(a: &BenchOptions, work: &Path) -> anyhow::Result<PathBuf> {
    let sample = a.data.join("df_syn_train_eng.csv");
    let text = std::fs::read_to_string(&sample).with_context(|| {
        format!(
            "cannot read {} (run from the repository root or pass --data DIR)",
            sample.display()
        )
    })?;
    let n = a.declarations.max(10);
    let head: Vec<&str> = text.lines().take(n + 1).collect();
    let csv = work.join("declarations.csv");
    std::fs::write(&csv, head.join("\n") + "\n")
        .with_context(|| format!("cannot write {}", csv.display()))?;
    Ok(csv)
}

/// The SQLite template store, prepared by [`prepare`] in a new file `template`.
fn prepare_sqlite(
    a: &BenchOptions,
    csv: &Path,
    template: &Path,
) -> anyhow::Result<(String, Vec<String>)> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", template.display()));
    }
    let mut store = Store::open(template)
        .with_context(|| format!("cannot open database {}", template.display()))?;
    let prepared = prepare(a, csv, &mut store)?;
    drop(store); // checkpoints the WAL into the file that is copied
    Ok(prepared)
}

/// Fills an empty store: the declaration items of `csv` (see [`sample_csv`]), a 20-tree fraud
/// model trained on the first 60% of their dates, the scores of all of them, and an officer with
/// an API token. Returns the token and the declaration ids.
fn prepare(
    a: &BenchOptions,
    csv: &Path,
    store: &mut dyn borderlens_store::Backend,
) -> anyhow::Result<(String, Vec<String>)> {
    store.set_actor("bench");
    app::import_files(
        store,
        &[csv.to_path_buf()],
        &ColumnMapping::kcs_default(),
        true,
        &app::Silent,
    )?;
    let items = store.items(&ItemFilter {
        from: None,
        to: None,
        labelled_only: false,
    })?;
    if items.is_empty() {
        bail!("no declaration imported from {}", csv.display());
    }
    let mut dates: Vec<_> = items.iter().map(|i| i.date).collect();
    dates.sort_unstable();
    let until = dates[dates.len() * 6 / 10];
    let mut options = TrainOptions::standard(LabelKind::Fraud);
    options.gbdt.n_trees = 20;
    options.gbdt.early_stopping_rounds = None;
    app::train(
        store,
        &app::TrainRequest {
            model: "bench".into(),
            until,
            options,
            ipw: false,
            text_features: true,
            firm_history: true,
        },
        &app::Silent,
    )
    .context("training the bench model")?;
    app::score(
        store,
        &app::ScoreRequest {
            model: "bench".into(),
            version: None,
            from: dates.first().copied(),
            to: dates.last().copied(),
            explain: false,
            top_reasons: 0,
            rate: 5,
        },
        &app::Silent,
    )
    .context("scoring the bench declarations")?;
    app::add_user(store, USER, Role::Officer, "bench password, loopback only")?;
    let token = app::create_token(store, USER)?.token;
    let mut ids: Vec<String> = items
        .into_iter()
        .map(|i| i.key.declaration_id)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    // A fixed shuffle, so that consecutive requests touch scattered declarations.
    borderlens_domain::rng::Rng::new(a.seed).shuffle(&mut ids);
    Ok((token, ids))
}

/// `borderlens serve` as a child process, on a free loopback port.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// `store_args` name the store (`--db FILE` or `--database-url URL`).
    fn start(
        exe: &Path,
        store_args: &[OsString],
        env: &[(&str, &str)],
        log: &Path,
    ) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot write {}", log.display()))?;
        let mut command = Command::new(exe);
        command
            .args(store_args)
            .args(["serve", "--addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().context("cannot start borderlens serve")?;
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line);
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        match (read, addr) {
            (Ok(_), Some(addr)) => Ok(Server { child, addr }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                let logged = std::fs::read_to_string(log).unwrap_or_default();
                bail!(
                    "borderlens serve did not print its address: {}",
                    logged.trim()
                )
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful: requests in flight finish), SIGKILL after 15 s.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if let Some(status) = self.child.try_wait()? {
                if status.success() {
                    return Ok(());
                }
                bail!("borderlens serve exited with {status}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("borderlens serve did not stop within 15 s of SIGTERM: killed")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// User plus system CPU seconds of a process, from `/proc/PID/stat` (Linux; clock ticks of
/// 1/100 s, the kernel's USER_HZ).
fn cpu_seconds(stat: &str) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file are utime and stime; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// One step to run.
struct Plan {
    kind: Kind,
    route: &'static str,
    rate: f64,
    seconds: f64,
    timeout: Duration,
    /// Prefix of this step's submission ids.
    tag: String,
}

/// The load generator: one HTTP/1.1 client with keep-alive, at most `connections` requests in
/// flight (each on its own connection).
struct Client {
    http: reqwest::Client,
    base: String,
    authorization: String,
    slots: Arc<tokio::sync::Semaphore>,
}

impl Client {
    fn new(addr: &str, token: &str, connections: usize) -> anyhow::Result<Client> {
        let connections = connections.max(1);
        // reqwest is built with rustls and no provider of its own: install ring's.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(connections)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base: format!("http://{addr}"),
            authorization: format!("Bearer {token}"),
            slots: Arc::new(tokio::sync::Semaphore::new(connections)),
        })
    }

    /// `score` when the server answers `GET /api/v1/declarations/{id}/score`, else `decision`.
    async fn probe_read_route(&self, id: &str) -> anyhow::Result<&'static str> {
        let answer = self
            .http
            .get(format!("{}/api/v1/declarations/{id}/score", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .send()
            .await
            .context("the server does not answer")?;
        if answer.status().is_success() {
            return Ok("score");
        }
        let status = answer.status();
        let body = answer.text().await.unwrap_or_default();
        if !(status == reqwest::StatusCode::NOT_FOUND && body.contains("no route")) {
            eprintln!(
                "borderlens: GET /api/v1/declarations/{id}/score answered {status} ({}): reading /decision instead",
                body.chars().take(200).collect::<String>()
            );
        }
        let answer = self
            .http
            .get(format!("{}/api/v1/declarations/{id}/decision", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .send()
            .await
            .context("the server does not answer")?;
        if !answer.status().is_success() {
            bail!(
                "GET /api/v1/declarations/{id}/decision answered {}",
                answer.status()
            );
        }
        Ok("decision")
    }

    /// Runs one step: `rate × seconds` requests, request `i` due at `t0 + i / rate`. Returns
    /// every request's sample, and each submission's id with what it came to.
    async fn run(&self, plan: &Plan, ids: &[String]) -> (Vec<Sample>, Vec<(String, Outcome)>) {
        let n = (plan.rate * plan.seconds).round().max(1.0) as usize;
        let t0 = tokio::time::Instant::now() + Duration::from_millis(10);
        let mut tasks = Vec::with_capacity(n);
        let mut submission_ids = Vec::new();
        for i in 0..n {
            let due = t0 + Duration::from_secs_f64(i as f64 / plan.rate);
            tokio::time::sleep_until(due).await;
            let declaration = &ids[i % ids.len()];
            let request = match plan.kind {
                Kind::Submit => {
                    let submission_id = format!("bench-{}-{i}", plan.tag);
                    let body = submission(&submission_id, declaration);
                    submission_ids.push(submission_id);
                    self.http
                        .post(format!("{}/api/v1/control-results", self.base))
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .body(body)
                }
                Kind::Read => self.http.get(format!(
                    "{}/api/v1/declarations/{declaration}/{}",
                    self.base, plan.route
                )),
            }
            .header(reqwest::header::AUTHORIZATION, &self.authorization);
            let slots = Arc::clone(&self.slots);
            let deadline = due + plan.timeout;
            tasks.push(tokio::spawn(async move {
                let outcome = send(request, &slots, deadline).await;
                Sample {
                    latency: tokio::time::Instant::now().saturating_duration_since(due),
                    outcome,
                }
            }));
        }
        let mut samples = Vec::with_capacity(n);
        for task in tasks {
            samples.push(task.await.unwrap_or(Sample {
                latency: plan.timeout,
                outcome: Outcome::Transport,
            }));
        }
        let sent = submission_ids
            .into_iter()
            .zip(samples.iter().map(|s| s.outcome))
            .collect();
        (samples, sent)
    }
}

/// Sends `request` once a connection slot is free, reading the whole answer, unless `deadline`
/// passes first.
async fn send(
    request: reqwest::RequestBuilder,
    slots: &tokio::sync::Semaphore,
    deadline: tokio::time::Instant,
) -> Outcome {
    let Ok(Ok(_permit)) = tokio::time::timeout_at(deadline, slots.acquire()).await else {
        return Outcome::NotSent;
    };
    let exchange = async {
        let answer = request.send().await?;
        let status = answer.status().as_u16();
        answer.bytes().await?;
        Ok::<u16, reqwest::Error>(status)
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(Ok(status)) => Outcome::Status(status),
        Ok(Err(_)) => Outcome::Transport,
        Err(_) => Outcome::Timeout,
    }
}

/// A clean documentary check of `declaration`: valid for the built-in form.
fn submission(submission_id: &str, declaration: &str) -> String {
    json!({
        "submission_id": submission_id,
        "declaration_id": declaration,
        "schema_version": borderlens_controls_version(),
        "values": {
            "outcome": "no_irregularity",
            "inspection_method": ["documentary"],
            "inspected_at": "2020-01-22T09:00:00+09:00",
            "place": "bench terminal",
            "officer_id": "BENCH-1"
        }
    })
    .to_string()
}

fn borderlens_controls_version() -> &'static str {
    borderlens_controls::FormSchema::builtin().version()
}

/// The `q` quantile (nearest rank) of sorted latencies, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1000.0
}

fn summarise(
    backend: &str,
    label: &str,
    plan: &Plan,
    samples: &[Sample],
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
) -> Step {
    let mut latencies: Vec<Duration> = samples.iter().map(|s| s.latency).collect();
    latencies.sort_unstable();
    let mut statuses = std::collections::BTreeMap::new();
    let (mut ok, mut errors, mut timeouts) = (0, 0, 0);
    for s in samples {
        match s.outcome {
            Outcome::Status(code) => {
                *statuses.entry(code).or_insert(0) += 1;
                if (200..300).contains(&code) {
                    ok += 1;
                } else {
                    errors += 1;
                }
            }
            Outcome::Timeout | Outcome::NotSent => timeouts += 1,
            Outcome::Transport => errors += 1,
        }
    }
    // Throughput over the step: from the first due time to the last answer.
    let seconds = samples
        .iter()
        .enumerate()
        .map(|(i, s)| i as f64 / plan.rate + s.latency.as_secs_f64())
        .fold(plan.seconds, f64::max)
        .max(1e-9);
    let cores = |cpu: Option<f64>| cpu.map(|c| c / seconds);
    Step {
        backend: backend.to_string(),
        kind: label.to_string(),
        route: match plan.kind {
            Kind::Submit => "POST /api/v1/control-results".to_string(),
            Kind::Read => format!("GET /api/v1/declarations/{{id}}/{}", plan.route),
        },
        offered_per_s: plan.rate,
        seconds,
        requests: samples.len(),
        ok,
        errors,
        timeouts,
        achieved_per_s: ok as f64 / seconds,
        p50_ms: quantile_ms(&latencies, 0.50),
        p90_ms: quantile_ms(&latencies, 0.90),
        p99_ms: quantile_ms(&latencies, 0.99),
        max_ms: quantile_ms(&latencies, 1.0),
        server_cpu_s: server_cpu,
        server_cores: cores(server_cpu),
        client_cpu_s: client_cpu,
        client_cores: cores(client_cpu),
        statuses,
    }
}

/// Reads the store back: every submission answered 201 is stored; every stored submission of
/// this run was sent; of the unanswered ones, some may be stored (their answer was lost).
fn verify(
    store: &dyn borderlens_store::Backend,
    run_tag: &str,
    sent: &[(String, Outcome)],
) -> anyhow::Result<Verification> {
    let prefix = format!("bench-{run_tag}-");
    let stored: Vec<String> = store
        .control_results()?
        .into_iter()
        .map(|r| r.result.submission_id)
        .filter(|id| id.starts_with(&prefix))
        .collect();
    let stored_set: HashSet<&str> = stored.iter().map(String::as_str).collect();
    let mut v = Verification {
        submissions_sent: sent.len(),
        answered_201: 0,
        answered_200_duplicate: 0,
        unanswered: 0,
        stored: stored.len(),
        stored_of_unanswered: 0,
        missing_acknowledged: 0,
        unexpected: 0,
        ok: false,
    };
    let mut may_be_stored: HashSet<&str> = HashSet::new();
    for (id, outcome) in sent {
        match outcome {
            Outcome::Status(201) => {
                v.answered_201 += 1;
                may_be_stored.insert(id);
                if !stored_set.contains(id.as_str()) {
                    v.missing_acknowledged += 1;
                }
            }
            Outcome::Status(200) => v.answered_200_duplicate += 1,
            Outcome::Status(_) | Outcome::NotSent => {}
            Outcome::Timeout | Outcome::Transport => {
                v.unanswered += 1;
                may_be_stored.insert(id);
                if stored_set.contains(id.as_str()) {
                    v.stored_of_unanswered += 1;
                }
            }
        }
    }
    v.unexpected = stored
        .iter()
        .filter(|id| !may_be_stored.contains(id.as_str()))
        .count();
    v.ok = v.missing_acknowledged == 0
        && v.unexpected == 0
        && stored_set.len() == stored.len()
        && v.stored == v.answered_201 + v.stored_of_unanswered;
    Ok(v)
}

/// Whether a submission step at ≥ [`TARGET_RATE`] had every request answered 2xx with p99 ≤
/// [`TARGET_P99_MS`], per backend.
fn target_verdict(reports: &[BackendReport]) -> serde_json::Value {
    let per_backend: Vec<serde_json::Value> = reports
        .iter()
        .map(|r| {
            let best = r
                .steps
                .iter()
                .filter(|s| s.kind == "submit")
                .filter(|s| s.errors == 0 && s.timeouts == 0 && s.p99_ms <= TARGET_P99_MS)
                .map(|s| s.offered_per_s)
                .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
            json!({
                "backend": r.backend,
                "highest_submission_rate_meeting_p99": best,
                "met": best.is_some_and(|b| b >= TARGET_RATE),
            })
        })
        .collect();
    json!({
        "submissions_per_s": TARGET_RATE,
        "p99_ms": TARGET_P99_MS,
        "rule": "a submission step offered at least 1000/s with every request answered 2xx and p99 at most 50 ms",
        "backends": per_backend,
    })
}

/// p50 (dashed) and p99 (solid) latency against the offered rate, one colour per backend and
/// kind, log-log, with the target's 50 ms.
fn chart(reports: &[BackendReport]) -> String {
    let mut lines = Vec::new();
    let mut colour = 0;
    for r in reports {
        let mut kinds: Vec<&str> = r.steps.iter().map(|s| s.kind.as_str()).collect();
        kinds.dedup();
        for kind in kinds {
            let steps: Vec<&Step> = r.steps.iter().filter(|s| s.kind == kind).collect();
            for (q, dashed) in [("p99", false), ("p50", true)] {
                lines.push(Line {
                    name: format!("{q} {kind}, {}", r.backend.replace("synchronous=", "")),
                    points: steps
                        .iter()
                        .map(|s| {
                            (
                                s.offered_per_s,
                                if dashed { s.p50_ms } else { s.p99_ms }.max(0.01),
                            )
                        })
                        .collect(),
                    dashed,
                    colour,
                });
            }
            colour += 1;
        }
    }
    lines_svg(
        "borderlens serve: latency against offered load (loopback)",
        &Axes {
            x_label: "offered requests / s (open loop)".into(),
            y_label: "latency from scheduled send (ms)".into(),
            log_x: true,
            log_y: true,
        },
        &lines,
        &[Reference {
            y: TARGET_P99_MS,
            label: "target p99 ≤ 50 ms".into(),
        }],
    )
}

fn print_table(
    reports: &[BackendReport],
    result: &serde_json::Value,
    json_path: &Path,
    svg_path: &Path,
) -> anyhow::Result<()> {
    outln!(
        "serve benchmark: borderlens serve on loopback, {} declaration items, open-loop constant rates, {} s per step{}",
        result["store"]["declaration_items"],
        result["step_seconds"],
        match result["store"]["postgresql"]["database"].as_str() {
            Some(db) => format!("; PostgreSQL: a fresh schema of {db}"),
            None => "; PostgreSQL: not measured (--postgres URL)".to_string(),
        }
    );
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "store",
        "kind",
        "offered/s",
        "achieved/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "errors",
        "timeouts",
        "server cores",
        "client cores",
    ]);
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for r in reports {
        for s in &r.steps {
            t.add_row(vec![
                r.backend.replace("synchronous=", "sync="),
                s.kind.clone(),
                format!("{:.0}", s.offered_per_s),
                format!("{:.0}", s.achieved_per_s),
                format!("{:.1}", s.p50_ms),
                format!("{:.1}", s.p99_ms),
                format!("{:.1}", s.max_ms),
                s.errors.to_string(),
                s.timeouts.to_string(),
                f(s.server_cores, 2),
                f(s.client_cores, 2),
            ]);
        }
    }
    outln!("{t}");
    for r in reports {
        for skipped in &r.skipped {
            outln!("{}: skipped {skipped}", r.backend);
        }
        if let Some(v) = &r.verification {
            outln!(
                "{}: store read back: {} submissions stored = {} answered 201 + {} of {} unanswered; {} acknowledged missing, {} unexpected: {}",
                r.backend,
                v.stored,
                v.answered_201,
                v.stored_of_unanswered,
                v.unanswered,
                v.missing_acknowledged,
                v.unexpected,
                if v.ok { "ok" } else { "FAILED" }
            );
        }
    }
    for b in result["target"]["backends"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let best = b["highest_submission_rate_meeting_p99"]
            .as_f64()
            .map_or("none".to_string(), |v| format!("{v:.0}/s"));
        outln!(
            "target ≥ {TARGET_RATE:.0} submissions/s with p99 ≤ {TARGET_P99_MS:.0} ms, {}: {} (highest submission rate with every answer 2xx and p99 ≤ {TARGET_P99_MS:.0} ms: {best})",
            b["backend"].as_str().unwrap_or("?"),
            if b["met"].as_bool() == Some(true) { "MET" } else { "NOT MET" },
        );
    }
    outln!(
        "latency is measured from each request's scheduled send time (open loop); a request unanswered after {} ms counts as a timeout, at that latency; the load generator shares the machine's {} cores with the server (its CPU is in the last column)",
        result["timeout_ms"],
        result["machine"]["cpus"]
    );
    outln!(
        "report: {}; chart: {}",
        json_path.display(),
        svg_path.display()
    );
    Ok(())
}
