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
        Some(TestSchema::named(admin_url, name))
    }

    /// A schema for the whole test process, e.g. a template store built once and kept in a
    /// static, named `p_{tag}_{pid}`. Statics are never dropped, so such a schema outlives its
    /// process: creating one first drops those of `tag` whose process is gone (on Linux, where
    /// `/proc` tells). The test database must belong to one machine's (one container's) test
    /// runs: process ids of another container would be taken for dead ones.
    ///
    /// # Panics
    /// As [`TestSchema::create`].
    pub fn for_process(tag: &str) -> Option<TestSchema> {
        let admin_url = database_url()?;
        let prefix = format!("p_{tag}_");
        if cfg!(target_os = "linux") {
            let stale: Vec<String> = schema_names(&admin_url, &prefix)
                .unwrap_or_default()
                .into_iter()
                .filter(|name| {
                    name[prefix.len()..]
                        .parse::<u32>()
                        .is_ok_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
                })
                .collect();
            for name in stale {
                let _ = super::drop_schema(&admin_url, &name);
            }
        }
        let name = format!("{prefix}{}", std::process::id());
        let _ = super::drop_schema(&admin_url, &name);
        Some(TestSchema::named(admin_url, name))
    }

    fn named(admin_url: String, name: String) -> TestSchema {
        super::create_schema(&admin_url, &name)
            .unwrap_or_else(|e| panic!("cannot create schema {name} in {DATABASE_URL_ENV}: {e}"));
        let url = super::schema_url(&admin_url, &name);
        TestSchema {
            admin_url,
            name,
            url,
        }
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
        let _ = super::drop_schema(&self.admin_url, &self.name);
    }
}

impl TestSchema {
    /// A fresh schema holding a copy of every row of `template` (a store's schema): the tests'
    /// way to start each test from one store built once, as the SQLite tests copy a file.
    ///
    /// The new schema is migrated by [`Store::connect`](crate::Store::connect) (tables,
    /// triggers, version), then each table's rows are copied in the order the tables were
    /// created (a table only references older ones), identities included, and each identity
    /// continues after the copied values.
    ///
    /// # Panics
    /// As [`TestSchema::create`], or when the copy fails.
    pub fn copy_of(template: &TestSchema) -> Option<TestSchema> {
        let schema = TestSchema::create()?;
        drop(
            crate::Store::connect(schema.url())
                .unwrap_or_else(|e| panic!("cannot migrate schema {}: {e}", schema.name)),
        );
        let (url, from, to) = (
            schema.admin_url.clone(),
            template.name.clone(),
            schema.name.clone(),
        );
        std::thread::spawn(move || copy_rows(&url, &from, &to))
            .join()
            .map_err(|_| "the copying thread panicked".to_string())
            .and_then(|copied| copied)
            .unwrap_or_else(|e| {
                panic!(
                    "cannot copy schema {} into {}: {e}",
                    template.name, schema.name
                )
            });
        Some(schema)
    }
}

fn copy_rows(url: &str, from: &str, to: &str) -> Result<(), String> {
    let message = |e: postgres::Error| crate::DbError::Postgres(e).to_string();
    let mut client = Client::connect(url, NoTls).map_err(message)?;
    let mut tx = client.transaction().map_err(message)?;
    let tables: Vec<String> = tx
        .query(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> 'schema_version'
             ORDER BY c.oid",
            &[&from],
        )
        .map_err(message)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for table in &tables {
        tx.batch_execute(&format!(
            "INSERT INTO {to}.\"{table}\" OVERRIDING SYSTEM VALUE SELECT * FROM {from}.\"{table}\""
        ))
        .map_err(message)?;
    }
    let identities: Vec<(String, String)> = tx
        .query(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = $1 AND is_identity = 'YES'",
            &[&to],
        )
        .map_err(message)?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    for (table, column) in identities {
        tx.batch_execute(&format!(
            "SELECT setval(pg_get_serial_sequence('{to}.\"{table}\"', '{column}'), \
             coalesce(max(\"{column}\"), 0) + 1, false) FROM {to}.\"{table}\""
        ))
        .map_err(message)?;
    }
    tx.commit().map_err(message)
}

/// The schemas whose names start with `prefix` (taken literally).
fn schema_names(url: &str, prefix: &str) -> Result<Vec<String>, String> {
    let (url, prefix) = (url.to_string(), prefix.to_string());
    std::thread::spawn(move || -> Result<Vec<String>, String> {
        let mut client =
            Client::connect(&url, NoTls).map_err(|e| crate::DbError::Postgres(e).to_string())?;
        let rows = client
            .query(
                "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname, $1)",
                &[&prefix],
            )
            .map_err(|e| crate::DbError::Postgres(e).to_string())?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    })
    .join()
    .map_err(|_| "the connection thread panicked".to_string())?
}
