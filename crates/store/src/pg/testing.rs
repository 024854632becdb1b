//! Running tests against PostgreSQL: a fresh schema per test in the database that
//! `BORDERLENS_TEST_DATABASE_URL` names, dropped afterwards. For this crate's tests and the
//! server's; not part of the store's API.
#![doc(hidden)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use postgres::{Client, NoTls};

/// The database the PostgreSQL variants of the tests use (they skip without it).
pub const DATABASE_URL_ENV: &str = "BORDERLENS_TEST_DATABASE_URL";

/// Set to `1` (CI): a missing [`DATABASE_URL_ENV`] fails the PostgreSQL variants instead of
/// skipping them.
pub const REQUIRE_ENV: &str = "BORDERLENS_REQUIRE_POSTGRES";

/// The URL of the test database, or `None` after printing "SKIPPED" when there is none.
///
/// # Panics
/// When there is none and [`REQUIRE_ENV`] is `1`.
pub fn database_url() -> Option<String> {
    match std::env::var(DATABASE_URL_ENV) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            if std::env::var(REQUIRE_ENV).is_ok_and(|v| v.trim() == "1") {
                panic!("{REQUIRE_ENV}=1 but {DATABASE_URL_ENV} is not set: PostgreSQL tests cannot run");
            }
            eprintln!("SKIPPED (no {DATABASE_URL_ENV})");
            None
        }
    }
}

/// A fresh schema in the test database, dropped (with everything in it) when this is dropped.
/// Drop the stores connected to it first.
pub struct TestSchema {
    admin_url: String,
    name: String,
    url: String,
}

impl TestSchema {
    /// Creates a schema of a new name in the test database; `None` (skipped) without one.
    ///
    /// # Panics
    /// When the database cannot be reached or the schema cannot be created, or as
    /// [`database_url`] says.
    pub fn create() -> Option<TestSchema> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let admin_url = database_url()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!(
            "t_{}_{}_{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        run_sql(&admin_url, &format!("CREATE SCHEMA {name}"))
            .unwrap_or_else(|e| panic!("cannot create schema {name} in {DATABASE_URL_ENV}: {e}"));
        let separator = if admin_url.contains('?') { '&' } else { '?' };
        let url = format!("{admin_url}{separator}options=-c%20search_path%3D{name}");
        Some(TestSchema {
            admin_url,
            name,
            url,
        })
    }

    /// The URL of the test database with this schema as the search path.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = run_sql(
            &self.admin_url,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs `sql` on a connection of its own, on a thread of its own (so that it works from async
/// tests too: see `PgStore`).
fn run_sql(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || -> Result<(), String> {
        let mut client = Client::connect(&url, NoTls).map_err(|e| crate::error::pg_message(&e))?;
        client
            .batch_execute(&sql)
            .map_err(|e| crate::error::pg_message(&e))
    })
    .join()
    .map_err(|_| "the connection thread panicked".to_string())?
}
