//! One connection type for the ledger and the blob index, over either backend: SQLite (one file, the
//! default for one machine) or PostgreSQL (several coordinators over one database).
//!
//! The ledger's logic is written once against [`Connection`] in SQL both backends read the same way
//! (upserts with `ON CONFLICT`, `RETURNING`, sums cast to `BIGINT`). Everything that differs lives in
//! the backend: placeholders and parameter types, column types in the schema, isolation, and retrying a
//! transaction that lost a serialization race ([`Store::write`]).

pub mod postgres;
mod sqlite;

use std::sync::{Mutex, MutexGuard};

/// A backend's connection inside one transaction. Use it through the methods on `dyn Db`
/// ([`Connection`]), which read like rusqlite's.
pub trait Db {
    /// Runs one statement; the number of rows it changed.
    fn run(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize, DbError>;
    /// Runs one query and reads every row it returns.
    fn rows(&self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError>;
    /// Runs statements separated by `;`, without parameters (schema steps, savepoints).
    fn batch(&self, sql: &str) -> Result<(), DbError>;
    fn backend(&self) -> Backend;
}

/// What ledger and index functions take: a connection inside the caller's transaction.
pub type Connection<'a> = dyn Db + 'a;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The type of a parameter or column, as both backends store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Int,
    Bytes,
    Text,
}

/// A parameter as a statement binds it.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Null(Kind),
    Int(i64),
    Bytes(&'a [u8]),
    Text(&'a str),
}

impl Param<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Param::Null(kind) => *kind,
            Param::Int(_) => Kind::Int,
            Param::Bytes(_) => Kind::Bytes,
            Param::Text(_) => Kind::Text,
        }
    }
}

/// A value a statement can bind.
pub trait ToParam {
    fn to_param(&self) -> Param<'_>;
}

/// A type whose SQL kind is fixed, so a missing value (`None`) still binds with a type.
pub trait Typed {
    const KIND: Kind;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToParam for $t {
            fn to_param(&self) -> Param<'_> {
                Param::Int(i64::from(*self))
            }
        }
        impl Typed for $t {
            const KIND: Kind = Kind::Int;
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, bool);

impl ToParam for [u8] {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(self)
    }
}

impl<const N: usize> ToParam for [u8; N] {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(self)
    }
}

impl<const N: usize> Typed for [u8; N] {
    const KIND: Kind = Kind::Bytes;
}

impl ToParam for Vec<u8> {
    fn to_param(&self) -> Param<'_> {
        Param::Bytes(self)
    }
}

impl Typed for Vec<u8> {
    const KIND: Kind = Kind::Bytes;
}

impl ToParam for str {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl ToParam for String {
    fn to_param(&self) -> Param<'_> {
        Param::Text(self)
    }
}

impl Typed for String {
    const KIND: Kind = Kind::Text;
}

impl<T: ToParam + ?Sized> ToParam for &T {
    fn to_param(&self) -> Param<'_> {
        (**self).to_param()
    }
}

impl<T: Typed> Typed for &T {
    const KIND: Kind = T::KIND;
}

impl<T: ToParam + Typed> ToParam for Option<T> {
    fn to_param(&self) -> Param<'_> {
        match self {
            Some(v) => v.to_param(),
            None => Param::Null(T::KIND),
        }
    }
}

/// Parameters for a statement, in order: `params![worker.as_bytes(), amount]`.
macro_rules! params {
    ($($x:expr),* $(,)?) => {
        &[$(&$x as &dyn $crate::db::ToParam),*] as &[&dyn $crate::db::ToParam]
    };
}
pub(crate) use params;

/// A value read from a row.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    Null,
    Int(i64),
    Bytes(Vec<u8>),
    Text(String),
}

impl Value {
    fn name(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Int(_) => "an integer",
            Value::Bytes(_) => "bytes",
            Value::Text(_) => "text",
        }
    }
}

/// A type a column can be read as.
pub trait FromValue: Sized {
    fn from_value(value: &Value) -> Option<Self>;
    const EXPECTED: &'static str;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "an integer";
}

impl FromValue for u32 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => u32::try_from(*v).ok(),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "an integer from 0 to 2^32 - 1";
}

impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v != 0),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "a boolean";
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bytes(v) => Some(v.clone()),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "bytes";
}

impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
    const EXPECTED: &'static str = "text";
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Option<Self> {
        Some(value.clone())
    }
    const EXPECTED: &'static str = "a value";
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
    const EXPECTED: &'static str = T::EXPECTED;
}

/// A column's position in a row.
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

/// One row of a query's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    pub fn new(values: Vec<Value>) -> Self {
        Self { values }
    }

    pub fn get<I: RowIndex, T: FromValue>(&self, index: I) -> Result<T, DbError> {
        let index = index.index();
        let value = self.values.get(index).ok_or(DbError::NoColumn { index })?;
        T::from_value(value).ok_or(DbError::Type {
            index,
            expected: T::EXPECTED,
            found: value.name().to_owned(),
        })
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn into_values(self) -> Vec<Value> {
        self.values
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the query returned no rows")]
    NoRow,
    #[error("the query has no column {index}")]
    NoColumn { index: usize },
    #[error("column {index} holds {found} where {expected} was expected")]
    Type {
        index: usize,
        expected: &'static str,
        found: String,
    },
    #[error("database connection: {0}")]
    Connection(String),
}

/// A PostgreSQL error with the server's own words (tokio-postgres's `Display` says only "db error").
fn postgres_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({}): {}", db.severity(), db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl DbError {
    /// A unique or primary-key constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            }
            DbError::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// The transaction lost a race with another and may succeed if run again from the start
    /// (PostgreSQL's serialization failure or deadlock).
    pub fn is_retryable(&self) -> bool {
        match self {
            DbError::Postgres(e) => matches!(
                e.code(),
                Some(c) if *c == tokio_postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
                    || *c == tokio_postgres::error::SqlState::T_R_DEADLOCK_DETECTED
            ),
            _ => false,
        }
    }
}

/// An error type that may carry a [`DbError`], so [`Store::write`] can tell a lost race from a refusal.
pub trait DbFailure: From<DbError> {
    fn db_error(&self) -> Option<&DbError>;
}

impl DbFailure for DbError {
    fn db_error(&self) -> Option<&DbError> {
        Some(self)
    }
}

/// `Result<T, DbError>` → `Result<Option<T>, DbError>` for queries that may find nothing.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>, DbError>;
}

impl<T> OptionalExtension<T> for Result<T, DbError> {
    fn optional(self) -> Result<Option<T>, DbError> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRow) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl<'c> dyn Db + 'c {
    /// A statement to run once or many times. Both backends cache prepared statements by their text.
    pub fn prepare_cached<'s>(&'s self, sql: &'s str) -> Result<Statement<'s, 'c>, DbError> {
        Ok(Statement { db: self, sql })
    }

    pub fn prepare<'s>(&'s self, sql: &'s str) -> Result<Statement<'s, 'c>, DbError> {
        self.prepare_cached(sql)
    }

    pub fn execute(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize, DbError> {
        self.run(sql, params)
    }

    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        self.batch(sql)
    }

    /// The first row's answer through `f`; [`DbError::NoRow`] when there is none.
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: &[&dyn ToParam],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rows = self.rows(sql, params)?;
        f(rows.first().ok_or(DbError::NoRow)?)
    }
}

/// A statement bound to a connection, with rusqlite's calling shape.
pub struct Statement<'s, 'c> {
    db: &'s (dyn Db + 'c),
    sql: &'s str,
}

impl Statement<'_, '_> {
    pub fn execute(&mut self, params: &[&dyn ToParam]) -> Result<usize, DbError> {
        self.db.run(self.sql, params)
    }

    pub fn query_row<T>(
        &mut self,
        params: &[&dyn ToParam],
        f: impl FnOnce(&Row) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.db.query_row(self.sql, params, f)
    }

    /// Every row through `f`, in the order the query returns them.
    pub fn query_map<T>(
        &mut self,
        params: &[&dyn ToParam],
        mut f: impl FnMut(&Row) -> Result<T, DbError>,
    ) -> Result<std::vec::IntoIter<Result<T, DbError>>, DbError> {
        let rows = self.db.rows(self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }

    pub fn query(&mut self, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError> {
        self.db.rows(self.sql, params)
    }

    pub fn exists(&mut self, params: &[&dyn ToParam]) -> Result<bool, DbError> {
        Ok(!self.db.rows(self.sql, params)?.is_empty())
    }
}

/// Where a ledger or index keeps its tables: one SQLite connection, or one PostgreSQL session.
///
/// Each handle serializes its own transactions behind a mutex (SQLite allows one writer anyway, and
/// one session per coordinator keeps PostgreSQL's connection count at the number of coordinators).
/// Between coordinators, PostgreSQL's SERIALIZABLE isolation decides, and [`Store::write`] runs a
/// transaction again when it lost.
#[derive(Debug)]
pub enum Store {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(Mutex<postgres::Session>),
}

/// How often a PostgreSQL transaction that lost a serialization race is run again before the error
/// reaches the caller.
pub const MAX_ATTEMPTS: u32 = 20;

/// The advisory lock key schema creation holds on PostgreSQL.
const SCHEMA_LOCK: i64 = 0x6475_616c_7269_6700;

impl Store {
    pub fn sqlite(conn: rusqlite::Connection) -> Self {
        Store::Sqlite(Mutex::new(conn))
    }

    pub fn postgres(url: &str) -> Result<Self, DbError> {
        Ok(Store::Postgres(Mutex::new(postgres::Session::connect(
            url,
        )?)))
    }

    pub fn backend(&self) -> Backend {
        match self {
            Store::Sqlite(_) => Backend::Sqlite,
            Store::Postgres(_) => Backend::Postgres,
        }
    }

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // A panic inside a transaction drops it, which rolls it back: the connection is still sound.
        m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one write transaction, committed if `f` succeeds and rolled back otherwise. On
    /// PostgreSQL it runs SERIALIZABLE: a transaction that lost a race with another coordinator's is
    /// rolled back and `f` runs again, up to [`MAX_ATTEMPTS`] times, so `f` must not act outside the
    /// transaction.
    pub fn write<T, E: DbFailure>(
        &self,
        mut f: impl FnMut(&Connection<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Store::Sqlite(conn) => {
                let mut conn = Self::lock(conn);
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(DbError::from)?;
                let out = f(&*tx)?;
                tx.commit().map_err(DbError::from)?;
                Ok(out)
            }
            Store::Postgres(session) => {
                let mut session = Self::lock(session);
                session.write(&mut f)
            }
        }
    }

    /// Runs `f` in one read transaction, so it sees a single consistent state.
    pub fn read<T, E: DbFailure>(
        &self,
        f: impl FnOnce(&Connection<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        match self {
            Store::Sqlite(conn) => {
                let mut conn = Self::lock(conn);
                let tx = conn
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)
                    .map_err(DbError::from)?;
                f(&*tx)
            }
            Store::Postgres(session) => {
                let mut session = Self::lock(session);
                session.read(f)
            }
        }
    }

    /// Runs `f` holding a lock over the whole database, so two coordinators starting at once on an
    /// empty PostgreSQL database do not both create its tables or apply its genesis (a session advisory
    /// lock; SQLite's write transaction is already exclusive).
    pub fn exclusive<T, E: DbFailure>(&self, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        match self {
            Store::Sqlite(_) => f(),
            Store::Postgres(session) => {
                Self::lock(session).batch(&format!("SELECT pg_advisory_lock({SCHEMA_LOCK})"))?;
                let out = f();
                let unlocked =
                    Self::lock(session).batch(&format!("SELECT pg_advisory_unlock({SCHEMA_LOCK})"));
                let out = out?;
                unlocked?;
                Ok(out)
            }
        }
    }

    /// Runs `f` on the SQLite connection outside any transaction (pragmas); `None` on PostgreSQL.
    pub fn with_sqlite<T>(&self, f: impl FnOnce(&mut rusqlite::Connection) -> T) -> Option<T> {
        match self {
            Store::Sqlite(conn) => Some(f(&mut Self::lock(conn))),
            Store::Postgres(_) => None,
        }
    }

    /// Rows inserted, updated or deleted through this handle since it was opened.
    pub fn rows_written(&self) -> u64 {
        match self {
            Store::Sqlite(conn) => Self::lock(conn).total_changes(),
            Store::Postgres(session) => Self::lock(session).rows_written(),
        }
    }
}

/// Set to a PostgreSQL URL, the ledger and index suites run there (each ledger or index in a schema of
/// its own) instead of in SQLite. `scripts/with-postgres` starts a throwaway server and sets it.
#[cfg(test)]
pub(crate) fn test_postgres() -> Option<String> {
    std::env::var("DUALRIG_TEST_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
}
