//! Rows as both databases give them, in one shape, so a row read from SQLite can be
//! written to PostgreSQL and compared with what PostgreSQL then gives back.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use super::tables::{Kind, Table};

/// One value of a row. SQLite's 0/1 booleans are read as `Bool`, so both sides of a
/// copy compare equal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    /// Bytes it takes, to bound a batch.
    fn weight(&self) -> usize {
        match self {
            Value::Text(t) => t.len(),
            Value::Blob(b) => b.len(),
            _ => 8,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Text(t) => write!(f, "{t:?}"),
            Value::Blob(b) => write!(f, "{} bytes", b.len()),
        }
    }
}

pub(super) type Values = Vec<Value>;

/// Rows per INSERT at most: PostgreSQL takes 65,535 parameters in a statement.
const BATCH_ROWS: usize = 1000;
/// Bytes per INSERT at most, so that large bodies go a few at a time.
const BATCH_BYTES: usize = 16 << 20;

/// Rows gathered for the next INSERT.
pub(super) struct Batch {
    rows: Vec<Values>,
    bytes: usize,
    limit: usize,
}

impl Batch {
    pub fn new(table: &Table) -> Self {
        Batch {
            rows: Vec::new(),
            bytes: 0,
            limit: BATCH_ROWS.min(65_535 / table.columns.len().max(1)),
        }
    }

    /// Adds `row`; whether the batch is now full.
    pub fn push(&mut self, row: Values) -> bool {
        self.bytes += row.iter().map(Value::weight).sum::<usize>();
        self.rows.push(row);
        self.rows.len() >= self.limit || self.bytes >= BATCH_BYTES
    }

    /// Writes the rows gathered to `table` and empties the batch.
    pub async fn flush(&mut self, table: &Table, c: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let mut insert = QueryBuilder::<Postgres>::new(format!(
            "INSERT INTO {} ({}) ",
            table.name,
            names.join(", ")
        ));
        let mut bad = None;
        insert.push_values(self.rows.drain(..), |mut b, row| {
            for (column, value) in table.columns.iter().zip(row) {
                match (column.kind, value) {
                    (Kind::Int8, Value::Int(i)) => b.push_bind(Some(i)),
                    (Kind::Int4, Value::Int(i)) => match i32::try_from(i) {
                        Ok(i) => b.push_bind(Some(i)),
                        Err(_) => {
                            bad = Some(format!(
                                "{}.{} = {i} is out of range",
                                table.name, column.name
                            ));
                            b.push_bind(None::<i32>)
                        }
                    },
                    (Kind::Bool, Value::Bool(v)) => b.push_bind(Some(v)),
                    (Kind::Text, Value::Text(t)) => b.push_bind(Some(t)),
                    (Kind::Blob, Value::Blob(v)) => b.push_bind(Some(v)),
                    (Kind::Int8, _) => b.push_bind(None::<i64>),
                    (Kind::Int4, _) => b.push_bind(None::<i32>),
                    (Kind::Bool, _) => b.push_bind(None::<bool>),
                    (Kind::Text, _) => b.push_bind(None::<String>),
                    (Kind::Blob, _) => b.push_bind(None::<Vec<u8>>),
                };
            }
        });
        if let Some(bad) = bad {
            return Err(sqlx::Error::Protocol(bad));
        }
        insert.build().execute(&mut *c).await?;
        self.bytes = 0;
        Ok(())
    }
}

/// `SELECT` of every column of `table` in primary key order. PostgreSQL orders text
/// the way SQLite does (by bytes) only when told to.
pub(super) fn select(table: &Table, postgres: bool) -> String {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
    let key: Vec<String> = table
        .key
        .iter()
        .map(|k| match table.column(k) {
            Some(c) if postgres && c.kind == Kind::Text => format!("{k} COLLATE \"C\""),
            _ => (*k).to_owned(),
        })
        .collect();
    format!(
        "SELECT {} FROM {} ORDER BY {}",
        columns.join(", "),
        table.name,
        key.join(", ")
    )
}

/// A SQLite row of `table` (read by `select`).
pub(super) fn from_sqlite(table: &Table, row: &SqliteRow) -> Result<Values, sqlx::Error> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let value = match column.kind {
            Kind::Int8 | Kind::Int4 => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            Kind::Bool => row
                .try_get::<Option<i64>, _>(i)?
                .map(|v| Value::Bool(v != 0)),
            Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            Kind::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(values)
}

/// A PostgreSQL row of `table` (read by `select`).
pub(super) fn from_postgres(table: &Table, row: &PgRow) -> Result<Values, sqlx::Error> {
    let mut values = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let value = match column.kind {
            Kind::Int8 => row.try_get::<Option<i64>, _>(i)?.map(Value::Int),
            Kind::Int4 => row
                .try_get::<Option<i32>, _>(i)?
                .map(|v| Value::Int(i64::from(v))),
            Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
            Kind::Text => row.try_get::<Option<String>, _>(i)?.map(Value::Text),
            Kind::Blob => row.try_get::<Option<Vec<u8>>, _>(i)?.map(Value::Blob),
        };
        values.push(value.unwrap_or(Value::Null));
    }
    Ok(values)
}
