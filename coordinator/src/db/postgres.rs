//! [`Db`] over one PostgreSQL session (tokio-postgres).
//!
//! The ledger is synchronous code that runs one transaction per operation on a blocking thread. A
//! tokio-postgres client is runtime-agnostic: its futures only exchange messages with the connection
//! task, which runs on a thread of its own here. So a ledger call blocks on its query the way it blocks
//! on SQLite, from any thread, inside a runtime or not.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use futures::executor::block_on;
use rand::Rng;
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, NoTls, Statement};

use super::{
    Backend, Connection, Db, DbError, DbFailure, Kind, MAX_ATTEMPTS, Param, Row, ToParam, Value,
};

/// How long opening a session may take before the coordinator reports the database unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One PostgreSQL session, with its prepared statements.
pub struct Session {
    url: String,
    client: Client,
    /// Prepared statements by their text and parameter kinds.
    statements: RefCell<HashMap<(String, Vec<Kind>), Statement>>,
    written: Cell<u64>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("closed", &self.client.is_closed())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn connect(url: &str) -> Result<Self, DbError> {
        Ok(Self {
            url: url.to_owned(),
            client: open(url)?,
            statements: RefCell::default(),
            written: Cell::new(0),
        })
    }

    /// Opens a new session when the last one was closed (the server restarted, the network dropped).
    fn reopen_if_closed(&mut self) -> Result<(), DbError> {
        if self.client.is_closed() {
            tracing::warn!("PostgreSQL session closed; opening a new one");
            self.client = open(&self.url)?;
            self.statements.borrow_mut().clear();
        }
        Ok(())
    }

    pub(super) fn write<T, E: DbFailure>(
        &mut self,
        f: &mut impl FnMut(&Connection<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            self.reopen_if_closed()?;
            let out = self
                .batch("BEGIN ISOLATION LEVEL SERIALIZABLE")
                .map_err(E::from)
                .and_then(|()| f(&*self))
                .and_then(|v| self.batch("COMMIT").map(|()| v).map_err(E::from));
            match out {
                Ok(v) => return Ok(v),
                Err(e) => {
                    // After a failed COMMIT the server has already rolled back; this is then a no-op.
                    let _ = self.batch("ROLLBACK");
                    let retry = e.db_error().is_some_and(DbError::is_retryable);
                    if !retry || attempt >= MAX_ATTEMPTS {
                        return Err(e);
                    }
                    std::thread::sleep(backoff(attempt));
                }
            }
        }
    }

    pub(super) fn read<T, E: DbFailure>(
        &mut self,
        f: impl FnOnce(&Connection<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.reopen_if_closed()?;
        self.batch("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")?;
        let out = f(&*self);
        let end = self.batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
        let out = out?;
        end?;
        Ok(out)
    }

    pub(super) fn rows_written(&self) -> u64 {
        self.written.get()
    }

    fn statement(&self, sql: &str, kinds: &[Kind]) -> Result<Statement, DbError> {
        let key = (sql.to_owned(), kinds.to_vec());
        if let Some(s) = self.statements.borrow().get(&key) {
            return Ok(s.clone());
        }
        let types: Vec<Type> = kinds
            .iter()
            .map(|k| match k {
                Kind::Int => Type::INT8,
                Kind::Bytes => Type::BYTEA,
                Kind::Text => Type::TEXT,
            })
            .collect();
        let statement = block_on(self.client.prepare_typed(&placeholders(sql), &types))?;
        self.statements.borrow_mut().insert(key, statement.clone());
        Ok(statement)
    }
}

/// Waits between attempts of a transaction that lost a race: doubling from 2 ms, at most 256 ms, with
/// jitter so two losers do not collide again.
fn backoff(attempt: u32) -> Duration {
    let base = 2u64 << attempt.min(7);
    Duration::from_millis(rand::thread_rng().gen_range(base / 2..=base))
}

fn open(url: &str) -> Result<Client, DbError> {
    let mut config: tokio_postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("postgres".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = sent.send(Err(DbError::Connection(e.to_string())));
                    return;
                }
            };
            runtime.block_on(async move {
                match config.connect(NoTls).await {
                    Ok((client, connection)) => {
                        let _ = sent.send(Ok(client));
                        if let Err(e) = connection.await {
                            tracing::warn!(error = %e, "PostgreSQL session ended");
                        }
                    }
                    Err(e) => {
                        let _ = sent.send(Err(DbError::from(e)));
                    }
                }
            });
        })
        .map_err(|e| DbError::Connection(e.to_string()))?;
    received
        .recv()
        .map_err(|_| DbError::Connection("the session's thread ended before connecting".into()))?
}

/// rusqlite's `?1`, `?2`… (and bare `?`) as PostgreSQL's `$1`, `$2`…, leaving quoted text alone.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    let mut next = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    next += 1;
                    digits = next.to_string();
                }
                out.push('$');
                out.push_str(&digits);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The ledger's SQLite schema text as PostgreSQL reads it: 64-bit integers, `BYTEA` for blobs,
/// identity columns where SQLite numbers rows itself, no SQLite table options.
pub fn ddl(sqlite: &str) -> String {
    let sql = sqlite
        .replace(") STRICT, WITHOUT ROWID;", ");")
        .replace(") STRICT;", ");")
        .replace(
            "INTEGER PRIMARY KEY,",
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,",
        );
    let mut out = String::with_capacity(sql.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(match word.as_str() {
            "INTEGER" => "BIGINT",
            "BLOB" => "BYTEA",
            w => w,
        });
        word.clear();
    };
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[derive(Debug)]
struct Bound<'a>(Param<'a>);

impl ToSql for Bound<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            Param::Null(_) => Ok(IsNull::Yes),
            Param::Int(v) => v.to_sql(ty, out),
            Param::Bytes(v) => v.to_sql(ty, out),
            Param::Text(v) => v.to_sql(ty, out),
        }
    }

    // The statement was prepared with each parameter's own type (`Session::statement`).
    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

impl Session {
    fn bound<'a>(params: &'a [&'a dyn ToParam]) -> (Vec<Kind>, Vec<Bound<'a>>) {
        let bound: Vec<Bound<'a>> = params.iter().map(|p| Bound(p.to_param())).collect();
        (bound.iter().map(|b| b.0.kind()).collect(), bound)
    }
}

impl Db for Session {
    fn run(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize, DbError> {
        let (kinds, bound) = Self::bound(params);
        let statement = self.statement(sql, &kinds)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as _).collect();
        let n = block_on(self.client.execute(&statement, &refs))?;
        self.written.set(self.written.get().saturating_add(n));
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn rows(&self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError> {
        let (kinds, bound) = Self::bound(params);
        let statement = self.statement(sql, &kinds)?;
        let refs: Vec<&(dyn ToSql + Sync)> = bound.iter().map(|b| b as _).collect();
        let rows = block_on(self.client.query(&statement, &refs))?;
        rows.iter().map(read_row).collect()
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(block_on(self.client.batch_execute(sql))?)
    }

    fn backend(&self) -> Backend {
        Backend::Postgres
    }
}

fn read_row(row: &tokio_postgres::Row) -> Result<Row, DbError> {
    let mut values = Vec::with_capacity(row.len());
    for (i, column) in row.columns().iter().enumerate() {
        let ty = column.type_();
        let value = if *ty == Type::INT8 {
            row.try_get::<_, Option<i64>>(i)?.map(Value::Int)
        } else if *ty == Type::INT4 {
            row.try_get::<_, Option<i32>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::INT2 {
            row.try_get::<_, Option<i16>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::BOOL {
            row.try_get::<_, Option<bool>>(i)?
                .map(|v| Value::Int(i64::from(v)))
        } else if *ty == Type::BYTEA {
            row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Bytes)
        } else if *ty == Type::TEXT || *ty == Type::VARCHAR || *ty == Type::NAME {
            row.try_get::<_, Option<String>>(i)?.map(Value::Text)
        } else {
            return Err(DbError::Type {
                index: i,
                expected: "BIGINT, BYTEA or TEXT (cast sums with CAST(… AS BIGINT))",
                found: ty.name().to_owned(),
            });
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(Row::new(values))
}

/// Creates a new, empty schema in the database at `url` and returns a URL whose sessions use it, so
/// that several ledgers (tests, one per case) share one server without sharing tables.
pub fn fresh_schema(url: &str, prefix: &str) -> Result<String, DbError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    );
    let session = Session::connect(url)?;
    session.batch(&format!("CREATE SCHEMA {name}"))?;
    Ok(
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-csearch_path%3D{name}")
        } else {
            format!("{url} options='-csearch_path={name}'")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_as_postgresql_numbers_them() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?12 AND d = '?3'"),
            "SELECT a FROM t WHERE b = $1 AND c = $12 AND d = '?3'"
        );
        assert_eq!(placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn the_schema_reads_as_postgresql_types() {
        let pg = ddl(
            "CREATE TABLE t (\n id INTEGER PRIMARY KEY,\n k BLOB NOT NULL, n INTEGER, s TEXT\n) STRICT;\n\
             CREATE TABLE u (a INTEGER_X BLOB) STRICT, WITHOUT ROWID;",
        );
        assert_eq!(
            pg,
            "CREATE TABLE t (\n id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n \
             k BYTEA NOT NULL, n BIGINT, s TEXT\n);\nCREATE TABLE u (a INTEGER_X BYTEA);"
        );
    }
}
