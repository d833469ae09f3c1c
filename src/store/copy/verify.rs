//! The copy compared with its source, row by row: every table read from both sides in
//! primary key order, every value compared, and every body's bytes hashed again on
//! PostgreSQL. Memory stays at one row of each side whatever the store's size.

use std::cmp::Ordering;

use futures::TryStreamExt;
use sha2::Digest;
use sqlx::{PgConnection, SqliteConnection};

use super::rows::{self, Value, Values};
use super::tables::Table;
use super::{CopyError, Verification};

/// Differences described one by one; the rest are only counted.
const SHOWN: usize = 50;

pub(super) async fn compare(
    source: &mut SqliteConnection,
    target: &mut PgConnection,
    tables: &[Table],
) -> Result<Verification, CopyError> {
    let mut found = Verification::default();
    for table in tables {
        let mut ours =
            sqlx::query(sqlx::AssertSqlSafe(rows::select(table, false))).fetch(&mut *source);
        let mut theirs =
            sqlx::query(sqlx::AssertSqlSafe(rows::select(table, true))).fetch(&mut *target);
        let mut a = read_sqlite(table, &mut ours).await?;
        let mut b = read_postgres(table, &mut theirs).await?;
        let mut rows_seen = 0u64;
        loop {
            let order = match (&a, &b) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(x), Some(y)) => key_order(table, x, y),
            };
            match order {
                Ordering::Less => {
                    if let Some(x) = &a {
                        found.differ(format!(
                            "{}: {} is missing in PostgreSQL",
                            table.name,
                            key(table, x)
                        ));
                    }
                    rows_seen += 1;
                    a = read_sqlite(table, &mut ours).await?;
                }
                Ordering::Greater => {
                    if let Some(y) = &b {
                        found.differ(format!(
                            "{}: {} is only in PostgreSQL",
                            table.name,
                            key(table, y)
                        ));
                    }
                    b = read_postgres(table, &mut theirs).await?;
                }
                Ordering::Equal => {
                    if let (Some(x), Some(y)) = (&a, &b) {
                        compare_row(table, x, y, &mut found);
                    }
                    rows_seen += 1;
                    a = read_sqlite(table, &mut ours).await?;
                    b = read_postgres(table, &mut theirs).await?;
                }
            }
        }
        found.tables.push((table.name, rows_seen));
    }
    Ok(found)
}

type Rows<'c, R> = futures::stream::BoxStream<'c, Result<R, sqlx::Error>>;

async fn read_sqlite(
    table: &Table,
    s: &mut Rows<'_, sqlx::sqlite::SqliteRow>,
) -> Result<Option<Values>, CopyError> {
    match s.try_next().await.map_err(CopyError::source)? {
        Some(row) => Ok(Some(
            rows::from_sqlite(table, &row).map_err(CopyError::source)?,
        )),
        None => Ok(None),
    }
}

async fn read_postgres(
    table: &Table,
    s: &mut Rows<'_, sqlx::postgres::PgRow>,
) -> Result<Option<Values>, CopyError> {
    match s.try_next().await.map_err(CopyError::target)? {
        Some(row) => Ok(Some(
            rows::from_postgres(table, &row).map_err(CopyError::target)?,
        )),
        None => Ok(None),
    }
}

/// Two rows with the same key: every value the same, and a body's bytes still hashing
/// to its SHA-256.
fn compare_row(table: &Table, ours: &Values, theirs: &Values, found: &mut Verification) {
    for ((column, x), y) in table.columns.iter().zip(ours).zip(theirs) {
        if x != y {
            found.differ(format!(
                "{}: {}: {} is {x} in SQLite and {y} in PostgreSQL",
                table.name,
                key(table, ours),
                column.name
            ));
        }
    }
    if table.name == "bodies" {
        let value = |name: &str| {
            table
                .columns
                .iter()
                .position(|c| c.name == name)
                .and_then(|i| theirs.get(i))
        };
        if let (Some(Value::Blob(sha)), Some(Value::Blob(header)), Some(Value::Blob(content))) =
            (value("sha256"), value("header"), value("content"))
        {
            let mut hash = sha2::Sha256::new();
            hash.update(header);
            hash.update(content);
            if hash.finalize()[..] != sha[..] {
                found.differ(format!(
                    "bodies: {}: its bytes in PostgreSQL do not hash to its SHA-256",
                    key(table, theirs)
                ));
            }
        } else {
            found.differ(format!(
                "bodies: {}: no SHA-256, header or content",
                key(table, theirs)
            ));
        }
    }
}

/// The values of `row`'s primary key, in `table.key` order.
fn key_values<'r>(table: &Table, row: &'r Values) -> Vec<&'r Value> {
    table
        .key
        .iter()
        .filter_map(|k| table.columns.iter().position(|c| c.name == *k))
        .filter_map(|i| row.get(i))
        .collect()
}

/// Orders rows by key as both `select`s do: numbers by value, text by bytes.
fn key_order(table: &Table, x: &Values, y: &Values) -> Ordering {
    for (a, b) in key_values(table, x).into_iter().zip(key_values(table, y)) {
        let order = match (a, b) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Text(a), Value::Text(b)) => a.as_bytes().cmp(b.as_bytes()),
            (Value::Null, Value::Null) => Ordering::Equal,
            (Value::Null, _) => Ordering::Less,
            (_, Value::Null) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// `row`'s key for a message to the operator: `id=5`, `mailbox_id=1 name="Sent"`.
fn key(table: &Table, row: &Values) -> String {
    table
        .key
        .iter()
        .zip(key_values(table, row))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Verification {
    fn differ(&mut self, what: String) {
        if self.differences.len() < SHOWN {
            self.differences.push(what);
        } else {
            self.more_differences += 1;
        }
    }
}
