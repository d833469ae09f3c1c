//! The mail store: the only code that speaks SQL.
//!
//! Reads go to a pool of connections; writes go to one writer task that groups them into
//! shared transactions (see `writer`). A write that returned `Ok` is on disk: the database
//! runs in WAL mode with `synchronous=FULL`. The protocols see this narrow type only, so a
//! PostgreSQL backend can sit behind the same methods later.

mod audit;
mod imap_queries;
mod lifecycle;
mod mailboxes;
mod messages;
mod queue;
mod quota;
mod sort_keys;
mod types;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};
use tokio::sync::{broadcast, mpsc, oneshot};

pub use audit::{AuditEntry, AuditOutcome, AuditRecord};
pub use lifecycle::{DeletedMailbox, Notice, NoticeCopy, SentNotice};
pub use mailboxes::normalise_address;
pub use queue::{Outgoing, OutgoingRecipient, QueueSettlement, QueuedMessage, QueuedRecipient};
pub use quota::{Quota, QuotaLimit};
pub use types::*;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./schema/sqlite");

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("no such mailbox: {0}")]
    NoMailbox(String),
    #[error("no such folder")]
    NoFolder,
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    #[error("folder {0} already exists")]
    FolderExists(String),
    /// The change would take a mailbox past one of its limits (RFC 9208 OVERQUOTA).
    #[error("the mailbox is over its quota")]
    OverQuota,
    #[error("{0}")]
    Invalid(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(e))
    }
}

impl StoreError {
    /// Errors that say nothing about the request and may clear up by themselves: the
    /// database busy, locked, out of space or memory, or the store shutting down.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Closed => true,
            StoreError::Database(e) => match e.as_ref() {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(d) => d.code().is_some_and(|code| {
                    // SQLite primary result codes: BUSY, LOCKED, NOMEM, IOERR, FULL,
                    // CANTOPEN, PROTOCOL; extended codes keep them in the low byte.
                    let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or(0);
                    matches!(primary, 5 | 6 | 7 | 10 | 13 | 14 | 15)
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// The database could not grow: the file system is full (SQLITE_FULL). Clients are
    /// told so (`452` in SMTP) rather than of an unspecified failure.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, StoreError::Database(e) if e.as_database_error()
            .and_then(|d| d.code())
            .and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == 13))
    }

    fn is_unique_violation(&self) -> bool {
        matches!(self, StoreError::Database(e) if e.as_database_error().is_some_and(|d| d.is_unique_violation()))
    }
}

/// Something changed in a folder: sessions showing it re-read what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderChange {
    pub folder_id: i64,
    pub modseq: i64,
}

/// Connections kept for reads; WAL lets them run beside the writer.
const READ_CONNECTIONS: u32 = 8;
/// WAL pages between checkpoints (SQLite's default is 1,000). Each append dirties a few
/// index pages that the next appends dirty again; a checkpoint copies a page once however
/// often it was written, so a longer WAL means far less copying per message (a third
/// more appends per second with many writers). The WAL stays near 64 MiB.
const CHECKPOINT_PAGES: u32 = 16_000;
/// A WAL grown past this (readers holding back a checkpoint) is cut back when reset.
const WAL_KEPT_BYTES: u64 = 128 << 20;
/// Writes waiting for the writer before callers wait for room.
const WRITE_QUEUE: usize = 4096;

#[derive(Clone)]
pub struct Store {
    read: SqlitePool,
    writer: mpsc::Sender<writer::Job>,
    changes: broadcast::Sender<FolderChange>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `data_dir` and applies migrations.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Invalid(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        Self::open_file(&data_dir.join("mssante.db")).await
    }

    pub async fn open_file(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-16000")
            .log_statements(tracing::log::LevelFilter::Trace);
        // A multi-row append keeps a statement journal so SQLite can back it out alone;
        // in memory it costs no writes to a temporary file. Only the writer needs it.
        let mut conn = options
            .clone()
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", CHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", WAL_KEPT_BYTES.to_string())
            .connect()
            .await?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .min_connections(1)
            .connect_with(options.read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        tokio::spawn(writer::run(conn, rx));
        let (changes, _) = broadcast::channel(1024);
        Ok(Store {
            read,
            writer: tx,
            changes,
        })
    }

    /// Runs `f` on the writer's connection inside the next group commit; returns once
    /// that commit is durable.
    pub(crate) async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut SqliteConnection) -> BoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let (job, rx) = writer::job(f);
        self.submit_job(job, rx).await
    }

    async fn submit_job<T>(
        &self,
        job: writer::Job,
        rx: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.writer
            .send(job)
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    pub(crate) fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Changes to folders, for sessions that show them live (IMAP IDLE).
    pub fn subscribe(&self) -> broadcast::Receiver<FolderChange> {
        self.changes.subscribe()
    }

    fn notify(&self, folder_id: i64, modseq: i64) {
        let _ = self.changes.send(FolderChange { folder_id, modseq });
    }

    /// Closes the pool; pending writes finish first.
    pub async fn close(self) {
        self.read.close().await;
    }
}
