//! [`Db`] over a rusqlite connection (or transaction, which derefs to one).

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Backend, Db, DbError, Param, Row, ToParam, Value};

struct Bound<'a>(Param<'a>);

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self.0 {
            Param::Null(_) => ValueRef::Null,
            Param::Int(v) => ValueRef::Integer(v),
            Param::Bytes(v) => ValueRef::Blob(v),
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
        }))
    }
}

fn bind<'a>(params: &'a [&'a dyn ToParam]) -> impl Iterator<Item = Bound<'a>> {
    params.iter().map(|p| Bound(p.to_param()))
}

impl Db for rusqlite::Connection {
    fn run(&self, sql: &str, params: &[&dyn ToParam]) -> Result<usize, DbError> {
        Ok(self
            .prepare_cached(sql)?
            .execute(rusqlite::params_from_iter(bind(params)))?)
    }

    fn rows(&self, sql: &str, params: &[&dyn ToParam]) -> Result<Vec<Row>, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        let width = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(bind(params)))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(width);
            for i in 0..width {
                values.push(match row.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Blob(v) => Value::Bytes(v.to_vec()),
                    ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                    ValueRef::Real(_) => {
                        return Err(DbError::Type {
                            index: i,
                            expected: "an integer, bytes or text",
                            found: "a real number".to_owned(),
                        });
                    }
                });
            }
            out.push(Row::new(values));
        }
        Ok(out)
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }

    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
}
