//! The executor every operation of the store is written over: one SQL text, one row mapping,
//! for SQLite and PostgreSQL alike.
//!
//! Why our own thin layer rather than a query builder (sea-query) or sqlx's `Any` driver: every
//! statement of the store is fixed text, and the two dialects differ in a handful of
//! expressions ([`Dialect`]); a builder would hide plain SQL behind an API without removing
//! the need for two drivers, and sqlx is asynchronous where the store is synchronous by design
//! (jobs run on blocking threads). What this layer does:
//!
//! - placeholders are `$1`, `$2`, ... in every statement; for SQLite they are rewritten to
//!   `?1`, `?2` (same positions) before preparing;
//! - parameters are [`Param`]s, bound to whatever type PostgreSQL inferred for the placeholder
//!   (an integer goes to `BIGINT`, `INTEGER` or `DOUBLE PRECISION`), so one value works in both;
//! - rows come back as [`Row`]s of owned [`Value`]s, read with [`Row::get`] into Rust types
//!   (a PostgreSQL `BOOLEAN` reads as SQLite's 0/1);
//! - statements are prepared once per connection and kept (SQLite's statement cache, a map of
//!   prepared statements on PostgreSQL): a statement sent as text is prepared again each time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;

use bytes::BytesMut;
use postgres::types::{IsNull, ToSql, Type};
use postgres::{GenericClient, Statement};
use rusqlite::types::{ToSqlOutput, ValueRef};

/// The SQL dialect of a connection, and the few expressions that differ between the two.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The current UTC time as ISO 8601 text with milliseconds (`2026-11-24T23:33:00.123Z`),
    /// the statement's start on both.
    pub(crate) fn now(self) -> &'static str {
        match self {
            Dialect::Sqlite => "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            Dialect::Postgres => {
                r#"to_char(statement_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
            }
        }
    }

    /// [`Dialect::now`] plus the number of seconds in the parameter `param` (e.g. `$1`).
    pub(crate) fn now_plus_seconds(self, param: &str) -> String {
        match self {
            Dialect::Sqlite => {
                format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || {param} || ' seconds')")
            }
            Dialect::Postgres => format!(
                r#"to_char((statement_timestamp() + make_interval(secs => {param}))
                       AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
            ),
        }
    }

    /// The larger of two values (`max(a, b)` is an aggregate on PostgreSQL).
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "greatest",
        }
    }

    /// A pattern match as SQLite's `LIKE` does it (ASCII case-insensitive, `%` and `_`
    /// wildcards, no escape character).
    pub(crate) fn like(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// What follows a [`Dialect::like`] pattern (no escape character on PostgreSQL either).
    pub(crate) fn like_escape(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => "ESCAPE ''",
        }
    }
}

/// A parameter of a statement, borrowed from the caller.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Bool(bool),
    Blob(&'a [u8]),
}

/// What can be a statement parameter.
pub(crate) trait ToParam {
    fn param(&self) -> Param<'_>;
}

/// `ToParam` for types that are one kind of parameter.
macro_rules! to_param {
    ($($ty:ty => |$v:ident| $param:expr;)*) => {
        $(impl ToParam for $ty {
            fn param(&self) -> Param<'_> {
                let $v = self;
                $param
            }
        })*
    };
}

to_param! {
    str => |v| Param::Text(v);
    String => |v| Param::Text(v);
    [u8] => |v| Param::Blob(v);
    i64 => |v| Param::Int(*v);
    u32 => |v| Param::Int(i64::from(*v));
    u8 => |v| Param::Int(i64::from(*v));
    u64 => |v| Param::Int(saturating(*v));
    usize => |v| Param::Int(i64::try_from(*v).unwrap_or(i64::MAX));
    f64 => |v| Param::Real(*v);
    bool => |v| Param::Bool(*v);
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn param(&self) -> Param<'_> {
        (**self).param()
    }
}
impl<T: ToParam> ToParam for Option<T> {
    fn param(&self) -> Param<'_> {
        self.as_ref().map_or(Param::Null, ToParam::param)
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Param::Null => ValueRef::Null,
            Param::Int(v) => ValueRef::Integer(v),
            Param::Real(v) => ValueRef::Real(v),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Bool(v) => ValueRef::Integer(i64::from(v)),
            Param::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

/// Binds to the type PostgreSQL inferred for the placeholder: one value serves both dialects.
impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let mismatch = |what: &str| -> Box<dyn StdError + Sync + Send> {
            format!("cannot bind {what} to a parameter of type {ty}").into()
        };
        match *self {
            Param::Null => Ok(IsNull::Yes),
            Param::Int(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::FLOAT8 => (v as f64).to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => v.to_string().to_sql(ty, out),
                _ => Err(mismatch("an integer")),
            },
            Param::Real(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (v as f32).to_sql(ty, out),
                _ => Err(mismatch("a real number")),
            },
            Param::Bool(v) => match *ty {
                Type::BOOL => v.to_sql(ty, out),
                Type::INT8 => i64::from(v).to_sql(ty, out),
                Type::INT4 => i32::from(v).to_sql(ty, out),
                _ => Err(mismatch("a boolean")),
            },
            Param::Text(v) => match *ty {
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                    v.to_sql(ty, out)
                }
                _ => Err(mismatch("text")),
            },
            Param::Blob(v) => match *ty {
                Type::BYTEA => v.to_sql(ty, out),
                _ => Err(mismatch("bytes")),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A value read from a row.
#[derive(Clone, PartialEq, Debug)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// One row of a result.
#[derive(Clone, PartialEq, Debug)]
pub(crate) struct Row(Vec<Value>);

impl Row {
    /// Column `index` as a `T`.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, DbError> {
        let value = self.0.get(index).unwrap_or(&Value::Null);
        T::from_value(value).map_err(|expected| DbError::Decode {
            column: index,
            reason: format!("expected {expected}, found {value:?}"),
        })
    }

    /// Column `index`, text parsed as a `T` (a word of a vocabulary); an unknown word is a
    /// [`DbError::Stored`] naming `table`, the row `id` and `column`.
    pub(crate) fn parsed<T>(
        &self,
        index: usize,
        table: &'static str,
        id: i64,
        column: &'static str,
    ) -> Result<T, DbError>
    where
        T: std::str::FromStr,
        T::Err: fmt::Display,
    {
        let text: String = self.get(index)?;
        text.parse().map_err(|e: T::Err| DbError::Stored {
            table,
            id,
            column,
            reason: e.to_string(),
        })
    }
}

/// What a column can be read as; the error names what was expected.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, &'static str>;
}

/// `FromValue` for types read from one kind of value (`$expected` names it in errors).
macro_rules! from_value {
    ($($ty:ty: $expected:literal, |$v:ident| $read:expr;)*) => {
        $(impl FromValue for $ty {
            fn from_value(value: &Value) -> Result<Self, &'static str> {
                let read = |$v: &Value| -> Option<$ty> { $read };
                read(value).ok_or($expected)
            }
        })*
    };
}

from_value! {
    i64: "an integer", |v| match v { Value::Int(v) => Some(*v), _ => None };
    u32: "a 32-bit count", |v| match v { Value::Int(v) => u32::try_from(*v).ok(), _ => None };
    u64: "a count", |v| match v { Value::Int(v) => u64::try_from(*v).ok(), _ => None };
    u8: "a small count", |v| match v { Value::Int(v) => u8::try_from(*v).ok(), _ => None };
    bool: "a boolean", |v| match v { Value::Int(0) => Some(false), Value::Int(1) => Some(true), _ => None };
    f64: "a number", |v| match v { Value::Real(v) => Some(*v), Value::Int(v) => Some(*v as f64), _ => None };
    String: "text", |v| match v { Value::Text(v) => Some(v.clone()), _ => None };
    Vec<u8>: "bytes", |v| match v { Value::Blob(v) => Some(v.clone()), _ => None };
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, &'static str> {
        match value {
            Value::Null => Ok(None),
            value => T::from_value(value).map(Some),
        }
    }
}

/// Why a statement failed.
#[derive(Debug)]
pub enum DbError {
    /// SQLite's error.
    Sqlite(rusqlite::Error),
    /// PostgreSQL's error (the server's or the client's).
    Postgres(postgres::Error),
    /// A stored value that does not have the type the store expects.
    Decode {
        /// The column, from 0.
        column: usize,
        /// What was expected and found.
        reason: String,
    },
    /// A stored value that the store cannot read (e.g. a word outside its vocabulary).
    Stored {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A statement that must return a row returned none.
    NoRow,
}

impl DbError {
    /// Whether the statement gave up waiting for another connection's lock: SQLite's
    /// `SQLITE_BUSY` / `SQLITE_LOCKED` after the busy timeout, PostgreSQL's `lock_not_available`
    /// after `lock_timeout`. Nothing was written; the same request may succeed later.
    pub fn is_busy(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            DbError::Postgres(e) => {
                e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE)
            }
            _ => false,
        }
    }

    /// Whether a foreign key was violated (a row refers to a missing one).
    pub(crate) fn is_foreign_key_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY
            }
            DbError::Postgres(e) => {
                e.code() == Some(&postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
            }
            _ => false,
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite(e) => write!(f, "{e}"),
            // The server's severity, message and detail (the client's own `Display` says only
            // "db error" for those).
            DbError::Postgres(e) => match e.as_db_error() {
                Some(db) => {
                    write!(f, "{}: {}", db.severity(), db.message())?;
                    match db.detail() {
                        Some(detail) => write!(f, " ({detail})"),
                        None => Ok(()),
                    }
                }
                None => write!(f, "{e}"),
            },
            DbError::Decode { column, reason } => {
                write!(f, "unexpected value in column {}: {reason}", column + 1)
            }
            DbError::Stored {
                table,
                id,
                column,
                reason,
            } => write!(f, "table {table}, row {id}, column {column}: {reason}"),
            DbError::NoRow => write!(f, "the statement returned no row"),
        }
    }
}

impl StdError for DbError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            DbError::Sqlite(e) => Some(e),
            DbError::Postgres(e) => Some(e),
            _ => None,
        }
    }
}

impl From<rusqlite::Error> for DbError {
    fn from(e: rusqlite::Error) -> Self {
        DbError::Sqlite(e)
    }
}

impl From<postgres::Error> for DbError {
    fn from(e: postgres::Error) -> Self {
        DbError::Postgres(e)
    }
}

/// Runs statements on one connection or transaction.
pub(crate) trait Exec {
    /// Which SQL the connection speaks.
    fn dialect(&self) -> Dialect;
    /// The rows `sql` returns.
    fn query(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError>;
    /// Runs `sql`; the number of rows changed.
    fn execute(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<u64, DbError>;
}

impl dyn Exec + '_ {
    /// The first row of `sql`, if any.
    pub(crate) fn query_opt(
        &mut self,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first column of the first row of `sql`, which must return one.
    pub(crate) fn value<T: FromValue>(
        &mut self,
        sql: &str,
        params: &[&dyn ToParam],
    ) -> Result<T, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)?.get(0)
    }
}

/// A count or line number as an SQL integer (saturating: SQL integers are signed).
pub(crate) fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn params_of<'a>(params: &'a [&dyn ToParam]) -> Vec<Param<'a>> {
    params.iter().map(|p| p.param()).collect()
}

/// `sql` with `$N` placeholders as SQLite's `?N` (string literals and quoted names kept as
/// they are).
pub(crate) fn sqlite_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('?');
                continue;
            }
            None => {}
        }
        out.push(c);
    }
    out
}

/// An SQLite connection (or a transaction's, which dereferences to one).
pub(crate) struct SqliteExec<'a>(pub(crate) &'a rusqlite::Connection);

impl Exec for SqliteExec<'_> {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn query(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError> {
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let columns = statement.column_count();
        let params = params_of(params);
        let mut rows = statement.query(rusqlite::params_from_iter(params.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for index in 0..columns {
                values.push(match row.get_ref(index)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(v) => {
                        Value::Text(String::from_utf8(v.to_vec()).map_err(|e| DbError::Decode {
                            column: index,
                            reason: e.to_string(),
                        })?)
                    }
                    ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<u64, DbError> {
        let mut statement = self.0.prepare_cached(&sqlite_placeholders(sql))?;
        let params = params_of(params);
        Ok(statement.execute(rusqlite::params_from_iter(params.iter()))? as u64)
    }
}

/// Statements prepared on one PostgreSQL connection, by their text.
#[derive(Default)]
pub(crate) struct Prepared(RefCell<HashMap<String, Statement>>);

/// Statements kept per connection at most; past it the map starts again (statements of the
/// store are a fixed set, so it is reached only by bulk statements of many sizes).
const PREPARED_CAP: usize = 512;

impl Prepared {
    fn get(&self, client: &mut impl GenericClient, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.0.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql)?;
        let mut map = self.0.borrow_mut();
        if map.len() >= PREPARED_CAP {
            map.clear();
        }
        map.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// A PostgreSQL connection or transaction, with its connection's prepared statements.
pub(crate) struct PgExec<'a, C> {
    pub(crate) client: &'a mut C,
    pub(crate) prepared: &'a Prepared,
}

impl<C: GenericClient> Exec for PgExec<'_, C> {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn query(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError> {
        let statement = self.prepared.get(self.client, sql)?;
        let params = params_of(params);
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.client.query(&statement, &refs)?;
        rows.iter().map(pg_row).collect()
    }

    fn execute(&mut self, sql: &str, params: &[&dyn ToParam]) -> Result<u64, DbError> {
        let statement = self.prepared.get(self.client, sql)?;
        let params = params_of(params);
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        Ok(self.client.execute(&statement, &refs)?)
    }
}

/// A PostgreSQL row as [`Value`]s, by the column types the store's schema uses.
fn pg_row(row: &postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (index, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = match *ty {
            Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Int),
            Type::INT4 => row
                .try_get::<_, Option<i32>>(index)?
                .map(|v| Value::Int(i64::from(v))),
            Type::INT2 => row
                .try_get::<_, Option<i16>>(index)?
                .map(|v| Value::Int(i64::from(v))),
            Type::BOOL => row
                .try_get::<_, Option<bool>>(index)?
                .map(|v| Value::Int(i64::from(v))),
            Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
            Type::FLOAT4 => row
                .try_get::<_, Option<f32>>(index)?
                .map(|v| Value::Real(f64::from(v))),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => {
                row.try_get::<_, Option<String>>(index)?.map(Value::Text)
            }
            Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(index)?.map(Value::Blob),
            _ => {
                return Err(DbError::Decode {
                    column: index,
                    reason: format!("column type {ty} is not one the store reads (cast it)"),
                })
            }
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row(values))
}

#[cfg(test)]
mod tests {
    use super::sqlite_placeholders;

    #[test]
    fn placeholders_are_rewritten_outside_quotes_only() {
        assert_eq!(
            sqlite_placeholders("SELECT $1, '$2', \"$3\", $10 WHERE a = $2"),
            "SELECT ?1, '$2', \"$3\", ?10 WHERE a = ?2"
        );
        assert_eq!(
            sqlite_placeholders("LIKE '$argon2id$%'"),
            "LIKE '$argon2id$%'"
        );
    }
}
