//! `store copy`: moving an operator's SQLite store into an empty PostgreSQL database,
//! so that mail clients see the same folders, UIDVALIDITYs, UIDs, MODSEQs and flags
//! afterwards and have nothing to synchronise again.
//!
//! Every row of every table is copied as it is, ids included (foreign keys and the
//! clients' UIDs stay true without any mapping), then the identity sequences are moved
//! past the copied ids. The target is filled in one transaction: a copy that fails
//! half-way leaves the database empty, ready for another attempt. Triggers are off
//! meanwhile: they derive values (quota usage, the access epoch) that are copied as
//! they were. Rows stream through in batches, so memory does not grow with the store.
//!
//! The copy refuses while a server runs on the data folder (the copy would miss what it
//! accepts meanwhile) and, holding the folder's lock, keeps servers from starting until
//! done. It reads the source in one transaction, a snapshot, for the copy and for the
//! comparison that follows (`verify`).

mod rows;
mod tables;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::config::DatabaseUrl;
use crate::store::sqlite::backup::{self, BackupError};
use crate::store::{StoreError, postgres};

use tables::Table;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("no SQLite store at {}", .0.display())]
    NoDatabase(PathBuf),
    #[error(
        "a server is running on {}: stop it before copying its store (mail it accepted \
         during the copy would be missing from the copy)",
        .0.display()
    )]
    ServerRunning(PathBuf),
    #[error(transparent)]
    Lock(BackupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading the SQLite store: {0}")]
    Source(String),
    #[error("PostgreSQL at {host}: {message}")]
    Target { host: String, message: String },
    #[error(
        "the PostgreSQL database at {host} is not empty (table `{table}` has rows): \
         store copy only fills an empty database"
    )]
    NotEmpty { host: String, table: &'static str },
    #[error("the two stores' schemas differ: {0}")]
    Schema(String),
}

impl CopyError {
    fn source(e: sqlx::Error) -> Self {
        CopyError::Source(e.to_string())
    }

    /// A PostgreSQL error; its host is filled in by `at`.
    fn target(e: sqlx::Error) -> Self {
        CopyError::Target {
            host: String::new(),
            message: e.to_string(),
        }
    }

    /// Names the database's host in its errors (never the URL: it may hold a password).
    fn at(self, to: &DatabaseUrl) -> Self {
        match self {
            CopyError::Target { message, .. } => CopyError::Target {
                host: to.host(),
                message,
            },
            CopyError::NotEmpty { table, .. } => CopyError::NotEmpty {
                host: to.host(),
                table,
            },
            other => other,
        }
    }
}

/// What the comparison of the copy with its source found.
#[derive(Debug, Default)]
pub struct Verification {
    /// Rows compared in each table, in copy order.
    pub tables: Vec<(&'static str, u64)>,
    /// The first differences, described.
    pub differences: Vec<String>,
    /// Differences found beyond those described.
    pub more_differences: u64,
}

impl Verification {
    /// Whether the copy is identical to its source.
    pub fn identical(&self) -> bool {
        self.differences.is_empty()
    }

    /// Rows compared in `table`.
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|(t, _)| *t == table)
            .map_or(0, |(_, n)| *n)
    }
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (table, rows) in &self.tables {
            writeln!(f, "{table:<20} {rows:>12} rows")?;
        }
        if self.identical() {
            writeln!(
                f,
                "verified: {} mailboxes, {} folders, {} messages, {} bodies (SHA-256 checked) identical",
                self.rows("mailboxes"),
                self.rows("folders"),
                self.rows("messages"),
                self.rows("bodies")
            )
        } else {
            for d in &self.differences {
                writeln!(f, "DIFFERENT {d}")?;
            }
            if self.more_differences > 0 {
                writeln!(f, "… and {} more differences", self.more_differences)?;
            }
            Ok(())
        }
    }
}

/// Copies the SQLite store in `data_dir` into the empty PostgreSQL database `to`
/// (migrating it first), then compares the two. A copy that differs from its source is
/// an `Ok` whose `Verification` says where.
pub async fn copy_to_postgres(
    data_dir: &Path,
    to: &DatabaseUrl,
    connect_timeout: Duration,
) -> Result<Verification, CopyError> {
    async {
        let mut both = Both::open(data_dir, to, connect_timeout).await?;
        both.refuse_used().await?;
        both.transfer().await?;
        both.compare().await
    }
    .await
    .map_err(|e| e.at(to))
}

/// Compares the SQLite store in `data_dir` with the PostgreSQL database `to`, as
/// `copy_to_postgres` does after copying.
pub async fn verify(
    data_dir: &Path,
    to: &DatabaseUrl,
    connect_timeout: Duration,
) -> Result<Verification, CopyError> {
    async {
        Both::open(data_dir, to, connect_timeout)
            .await?
            .compare()
            .await
    }
    .await
    .map_err(|e| e.at(to))
}

/// The two stores, open.
struct Both {
    /// The data folder's lock, held exclusively: no server writes to the source.
    _lock: std::fs::File,
    /// In a read transaction (`BEGIN` done): one snapshot throughout.
    source: SqliteConnection,
    target: PgConnection,
    tables: Vec<Table>,
}

impl Both {
    async fn open(
        data_dir: &Path,
        to: &DatabaseUrl,
        connect_timeout: Duration,
    ) -> Result<Self, CopyError> {
        let database = data_dir.join("mssante.db");
        if !database.is_file() {
            return Err(CopyError::NoDatabase(database));
        }
        let lock = backup::lock_exclusively(data_dir).map_err(|e| match e {
            BackupError::ServerRunning(dir) => CopyError::ServerRunning(dir),
            other => CopyError::Lock(other),
        })?;
        // An older store is brought to the schema the copy expects, as `serve` would.
        crate::store::Store::open_file(&database, crate::clock::system())
            .await?
            .close()
            .await;
        let mut source = backup::connect(&database, false)
            .await
            .map_err(CopyError::Lock)?;
        sqlx::query("BEGIN")
            .execute(&mut source)
            .await
            .map_err(CopyError::source)?;
        let mut target = postgres::connect_migrated(to.expose(), connect_timeout)
            .await
            .map_err(CopyError::target)?;
        let tables = tables::describe(&mut source, &mut target).await?;
        Ok(Both {
            _lock: lock,
            source,
            target,
            tables,
        })
    }

    /// Refuses a target that holds anything of a store.
    async fn refuse_used(&mut self) -> Result<(), CopyError> {
        for table in self.tables.iter().filter(|t| !t.singleton) {
            let used: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                table.name
            )))
            .fetch_one(&mut self.target)
            .await
            .map_err(CopyError::target)?;
            if used {
                return Err(CopyError::NotEmpty {
                    host: String::new(),
                    table: table.name,
                });
            }
        }
        Ok(())
    }

    /// Copies every table, in one transaction on the target.
    async fn transfer(&mut self) -> Result<(), CopyError> {
        let mut tx = self.target.begin().await.map_err(CopyError::target)?;
        for table in &self.tables {
            let run = |sql: String| sqlx::query(sqlx::AssertSqlSafe(sql));
            run(format!("ALTER TABLE {} DISABLE TRIGGER USER", table.name))
                .execute(&mut *tx)
                .await
                .map_err(CopyError::target)?;
            if table.singleton {
                run(format!("DELETE FROM {}", table.name))
                    .execute(&mut *tx)
                    .await
                    .map_err(CopyError::target)?;
            }
            let mut batch = rows::Batch::new(table);
            let mut source = sqlx::query(sqlx::AssertSqlSafe(rows::select(table, false)))
                .fetch(&mut self.source);
            while let Some(row) = source.try_next().await.map_err(CopyError::source)? {
                let full = batch.push(rows::from_sqlite(table, &row).map_err(CopyError::source)?);
                if full {
                    batch
                        .flush(table, &mut tx)
                        .await
                        .map_err(CopyError::target)?;
                }
            }
            batch
                .flush(table, &mut tx)
                .await
                .map_err(CopyError::target)?;
            drop(source);
            run(format!("ALTER TABLE {} ENABLE TRIGGER USER", table.name))
                .execute(&mut *tx)
                .await
                .map_err(CopyError::target)?;
            if let Some(id) = &table.identity {
                // The next id PostgreSQL hands out comes after every copied one.
                run(format!(
                    "SELECT setval(pg_get_serial_sequence('{t}', '{id}'), \
                     COALESCE(MAX({id}), 0) + 1, false) FROM {t}",
                    t = table.name
                ))
                .execute(&mut *tx)
                .await
                .map_err(CopyError::target)?;
            }
            tracing::info!(table = table.name, "copied");
        }
        tx.commit().await.map_err(CopyError::target)
    }

    async fn compare(mut self) -> Result<Verification, CopyError> {
        verify::compare(&mut self.source, &mut self.target, &self.tables).await
    }
}
