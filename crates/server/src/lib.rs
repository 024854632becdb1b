//! The borderlens HTTP service (`borderlens serve`, axum on tokio): a versioned JSON API under
//! `/api/v1` with its OpenAPI 3.1 document, the officer pages rendered on the server, and who
//! may use which of them.
//!
//! - [`serve`] runs the service until Ctrl-C or SIGTERM; [`run`] does the same on a listener the
//!   caller bound (tests bind `127.0.0.1:0`); [`app`] is the router.
//! - [`routes`] is the one route table of the API: the router, the role check of every route
//!   and the OpenAPI document (`openapi.rs`) are all built from it. The table names the Rust
//!   type each route reads and answers; the document's schemas are generated from those types
//!   (schemars, JSON Schema 2020-12) into `components.schemas`. Handlers (`handlers.rs`)
//!   parse the request, call one `borderlens-app` job or view on a blocking thread and answer;
//!   a job's error becomes a status code and a JSON error in one place (`error.rs`).
//! - [`pages`] is the page table (`pages/`, one module per page: login, queue, declaration,
//!   control form, dashboard, audit log, the X-ray annotation desk): HTML rendered with maud,
//!   which escapes every interpolated value, from the app's views; the same table drives the pages' router and their
//!   guard (login redirect, 403 page, CSRF token of every form post). One style sheet and one
//!   script (`assets/`) that only enhance; charts are the `borderlens-charts` and
//!   `borderlens-monitor` SVGs, inlined.
//! - [`Permission`] (`roles.rs`) is the one role table: the routes, the pages and the parts of
//!   a page that show data of their own (the dashboard's monitoring sections) all ask it.
//! - `auth.rs`: who is calling (session cookie or bearer token), the role check of each route and
//!   page, the CSRF check of cookie requests that change state (constant-time comparison), and
//!   the client address for the login rate limit (`X-Forwarded-For` only from
//!   [`ServeConfig::trusted_proxies`]).
//! - `pool.rs`: a small pool of open stores, one `Box<dyn Backend>` each (a `borderlens_store::Store`
//!   on the SQLite file or on PostgreSQL, [`ServeConfig::database_url`]); each job runs on one
//!   of them, on a blocking thread, with the caller as the audit actor.
//!
//! Architecture invariant: this crate owns HTTP (routes, pages, status codes, JSON and HTML
//! errors, body limits, security headers), authentication (cookies, bearer tokens, CSRF) and
//! authorisation (which role may use which route or page). It holds no business logic and
//! touches no store operation: validation of control results, estimates, decisions, views,
//! password hashing, sessions, tokens, the login rate limit (counted in the store, so that it
//! holds across instances) and every read and write of the store's rooms (`Items`, `Registry`,
//! `Decisions`, `Controls`, `Accounts`, `Audit`) belong to `borderlens-app` jobs, which the CLI
//! calls too, so that both behave the same. The store is only opened here (and its errors
//! mapped to status codes).
#![deny(missing_docs)]

mod auth;
mod error;
pub mod federation;
mod handlers;
mod openapi;
mod pages;
mod pool;
mod roles;
mod routes;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use pages::{pages, Page};
pub use roles::Permission;
pub use routes::{routes, Access, Route, API_PREFIX};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "borderlens_session";
/// Header that carries a session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Largest request body accepted, in bytes (256 KiB); larger bodies are answered 413.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Largest declarations file accepted by `POST /api/v1/imports`, in bytes (64 MiB, about
/// 300,000 declaration items of the sample's layout); larger ones go through `borderlens import`.
pub const MAX_IMPORT_BYTES: usize = 64 * 1024 * 1024;
/// Default session lifetime: eight hours, one shift.
pub const DEFAULT_SESSION_SECONDS: u32 = 8 * 3600;

/// How to run the service.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The SQLite database file (created and migrated when needed), unless `database_url` is set.
    pub db: PathBuf,
    /// A PostgreSQL database (`postgres://…`) to serve instead of the SQLite file `db`
    /// (its schema created and migrated when needed).
    pub database_url: Option<String>,
    /// Whether the session cookie carries `Secure` (only sent over HTTPS, and over plain HTTP to
    /// `localhost`/`127.0.0.1`, which browsers treat as secure). On by default; turn it off
    /// only for plain-HTTP clients that are not browsers on the same machine.
    pub secure_cookies: bool,
    /// How long a login session lasts.
    pub session_seconds: u32,
    /// Reverse proxies (load balancers) whose `X-Forwarded-For` header is believed: a request
    /// from one of them is counted, for the login rate limit, under the client address the
    /// header names. From any other peer the header is ignored (anyone can send it). Empty by
    /// default: every client is its TCP peer.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The X-ray library the annotation desk serves (`/nii`), with its held-out library and
    /// settings; none: the desk's pages answer 404.
    pub nii_desk: Option<borderlens_app::DeskConfig>,
}

impl ServeConfig {
    /// Secure cookies, eight-hour sessions.
    pub fn new(db: PathBuf) -> ServeConfig {
        ServeConfig {
            db,
            database_url: None,
            secure_cookies: true,
            session_seconds: DEFAULT_SESSION_SECONDS,
            trusted_proxies: Vec::new(),
            nii_desk: None,
        }
    }
}

/// Why the service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store cannot be opened or migrated.
    #[error(transparent)]
    Store(#[from] borderlens_store::StoreError),
    /// The X-ray library of the desk cannot be opened, or its settings are wrong.
    #[error("X-ray desk: {0}")]
    Desk(borderlens_app::JobError),
    /// The address cannot be bound, or serving failed.
    #[error("{what}: {source}")]
    Io {
        /// what was being done, e.g. `cannot listen on 127.0.0.1:8080`
        what: String,
        /// the cause
        source: std::io::Error,
    },
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) pool: Arc<pool::StorePool>,
    pub(crate) config: Arc<ServeConfig>,
    pub(crate) openapi: Arc<String>,
    /// The X-ray annotation desk, when the server serves a library.
    pub(crate) desk: Option<Arc<borderlens_app::NiiDesk>>,
    /// The served library's name in the store's X-ray catalogue (`app::library_key`): a
    /// declaration's scans in it link to the viewer.
    pub(crate) nii_library: Option<String>,
}

/// The router of the service over the store in `config.db` (or `config.database_url`), which is
/// opened (and migrated) once here so that a bad store fails at start, not at the first request.
pub fn app(config: ServeConfig) -> Result<Router, ServeError> {
    Ok(build(config)?.0)
}

/// The router and the desk (which the caller stops when the service shuts down).
fn build(
    config: ServeConfig,
) -> Result<(Router, Option<Arc<borderlens_app::NiiDesk>>), ServeError> {
    let pool = match &config.database_url {
        Some(url) => pool::StorePool::open_target(pool::Target::Postgres(url.clone()))?,
        None => pool::StorePool::open(&config.db)?,
    };
    let desk = match &config.nii_desk {
        Some(desk) => Some(Arc::new(
            borderlens_app::NiiDesk::new(desk.clone()).map_err(ServeError::Desk)?,
        )),
        None => None,
    };
    // The served library is catalogued in the store at start when its rows changed, so that
    // declarations find its scans by container number or postal item id (`borderlens nii
    // catalogue` does it again after the library changes). A catalogue that cannot be written
    // now (a long import holds the writers' lock) is said and left as it was: the service
    // starts. (On a thread of its own: the router may be built inside an async runtime, where
    // the PostgreSQL client, which blocks, may not run.)
    let nii_library = config.nii_desk.as_ref().map(|desk| {
        let outcome = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    pool.with_store(None, |store| {
                        borderlens_app::catalogue_if_changed(store, &desk.library)
                    })
                })
                .join()
        });
        if let Ok(Err(e)) = outcome {
            eprintln!(
                "borderlens-server: the X-ray catalogue of {} was not updated: {e}",
                desk.library.display()
            );
        }
        borderlens_app::library_key(&desk.library)
    });
    let state = AppState {
        pool: Arc::new(pool),
        config: Arc::new(config),
        openapi: Arc::new(openapi::document(&routes()).to_string()),
        desk: desk.clone(),
        nii_library,
    };
    Ok((routes::router(state), desk))
}

/// Asks the desk's retraining, if one runs, to stop: it keeps nothing, and the runtime (which
/// waits for its blocking threads) can end.
fn stop_desk(desk: Option<&Arc<borderlens_app::NiiDesk>>) {
    if let Some(desk) = desk {
        desk.shutdown();
    }
}

/// Serves `config` on `listener` until `shutdown` completes, then finishes the requests in
/// flight and returns.
pub async fn run(
    listener: TcpListener,
    config: ServeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (router, desk) = build(config)?;
    let served = serve_router(listener, router, shutdown).await;
    stop_desk(desk.as_ref());
    served
}

async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|source| ServeError::Io {
        what: "serving HTTP".to_string(),
        source,
    })
}

/// Opens the store, binds `addr`, calls `on_listening` with the address bound (the port chosen
/// when `addr` has port 0), and serves until Ctrl-C or SIGTERM; requests in flight are
/// finished first.
pub fn serve(
    config: ServeConfig,
    addr: SocketAddr,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    runtime()?.block_on(async move {
        let (router, desk) = build(config)?;
        let (listener, local) = bind(addr).await?;
        on_listening(local);
        let served = serve_router(listener, router, shutdown_signal()).await;
        stop_desk(desk.as_ref());
        served
    })
}

/// The multi-threaded runtime `serve` and `federation::serve_node` run on.
fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        // TLS handshakes of federation nodes are bounded in time.
        .enable_time()
        .build()
        .map_err(|source| ServeError::Io {
            what: "cannot start the async runtime".to_string(),
            source,
        })
}

/// Binds `addr`; the listener and the address bound (the port chosen when `addr` has port 0).
async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Io {
            what: format!("cannot listen on {addr}"),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Io {
        what: format!("cannot read the address bound for {addr}"),
        source,
    })?;
    Ok((listener, local))
}

/// Completes on Ctrl-C (SIGINT) or, on Unix, SIGTERM (what service managers send).
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No handler could be installed: never complete on this branch.
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
