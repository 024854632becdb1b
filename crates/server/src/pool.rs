//! A small pool of open stores, and running a job on one of them on a blocking thread.
//!
//! Why a pool rather than a `Store` per request: opening a store opens the file, sets WAL mode,
//! the busy timeout and foreign keys, and checks the schema version; each connection also keeps
//! its own cache of prepared statements. Reusing connections saves that work on every request.
//! SQLite lets one writer and any number of readers work at once (WAL), so a handful of
//! connections is enough: at most `MAX_CONNECTIONS` jobs run at once, each on its own pooled
//! connection, and further requests wait (asynchronously) for one to be free. A `Store` is `Send`
//! but not `Sync`: each is used by one
//! blocking thread at a time, taken out of the pool and put back. The pool holds boxed
//! [`Backend`]s: `Store`s on the SQLite file, or on PostgreSQL connections when the service runs there
//! (`ServeConfig::database_url`), where the same reasoning holds (a connection per thread).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use borderlens_app::JobError;

use borderlens_store::{Backend, Store, StoreError, DEFAULT_ACTOR};

use crate::error::ApiError;

/// Connections: at most this many jobs run at once, each on a connection of the pool, so that
/// connections are opened once and kept (a burst of requests waits for a free connection
/// instead of opening new ones: opening one re-reads the schema, and on PostgreSQL takes the
/// writers' lock to check the migrations; a load test at 200 submissions/s had grown from 4 to
/// 33 PostgreSQL connections, and past 100 the database refused them).
const MAX_CONNECTIONS: usize = 16;

/// Where the pool's connections go: an SQLite file or a PostgreSQL database.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    fn open(&self) -> Result<Box<dyn Backend>, StoreError> {
        Ok(match self {
            Target::Sqlite(path) => Box::new(Store::open(path)?),
            Target::Postgres(url) => Box::new(Store::connect(url)?),
        })
    }
}

pub(crate) struct StorePool {
    target: Target,
    idle: Mutex<Vec<Box<dyn Backend>>>,
    /// One permit per connection: a job holds one while it runs.
    permits: Arc<tokio::sync::Semaphore>,
}

impl StorePool {
    /// Opens (creating and migrating when needed) the store at `path`, and keeps that
    /// connection as the first idle one.
    pub(crate) fn open(path: &Path) -> Result<StorePool, StoreError> {
        StorePool::open_target(Target::Sqlite(path.to_path_buf()))
    }

    /// Opens (creating and migrating when needed) the store at `target`, and keeps that
    /// connection as the first idle one.
    pub(crate) fn open_target(target: Target) -> Result<StorePool, StoreError> {
        let first = target.open()?;
        Ok(StorePool {
            target,
            idle: Mutex::new(vec![first]),
            permits: Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS)),
        })
    }

    /// Runs `job` on a store whose audit actor is `actor` (the calling user, or the store's
    /// default for anonymous requests), then returns the store to the pool.
    pub(crate) fn with_store<T>(
        &self,
        actor: Option<&str>,
        job: impl FnOnce(&mut dyn Backend) -> Result<T, JobError>,
    ) -> Result<T, JobError> {
        let taken = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut store = match taken {
            Some(store) => store,
            None => self.target.open()?,
        };
        store.set_actor(actor.unwrap_or(DEFAULT_ACTOR));
        let out = job(store.as_mut());
        // A failed job's transaction was rolled back when it was dropped: the connection is
        // clean and can serve the next request.
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_CONNECTIONS {
            idle.push(store);
        }
        out
    }
}

/// Runs `job` on a pooled store on tokio's blocking threads. A job that has started runs to the
/// end even when the client goes away, so that what is committed is what a retry finds.
pub(crate) async fn blocking<T: Send + 'static>(
    pool: &Arc<StorePool>,
    actor: Option<String>,
    job: impl FnOnce(&mut dyn Backend) -> Result<T, JobError> + Send + 'static,
) -> Result<T, ApiError> {
    // Waiting for a permit is async (no thread is held); the permit moves into the blocking job
    // and is released when it ends, even if the client has gone away.
    let permit = Arc::clone(&pool.permits)
        .acquire_owned()
        .await
        .map_err(|e| ApiError::internal(&format!("connection pool closed: {e}")))?;
    let pool = Arc::clone(pool);
    tokio::task::spawn_blocking(move || {
        let out = pool.with_store(actor.as_deref(), job);
        drop(permit);
        out
    })
    .await
    .map_err(|e| ApiError::internal(&format!("job failed: {e}")))?
    .map_err(ApiError::from)
}
