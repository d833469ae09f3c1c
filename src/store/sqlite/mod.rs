//! The SQLite backend: one database file beside the server, the embedded default.
//!
//! Reads go to a pool of connections; writes go to one writer task that groups them into
//! shared transactions (see `writer`). A write that returned `Ok` is on disk: the database
//! runs in WAL mode with `synchronous=FULL`. Being the database's only writer, this
//! process also tells its sessions of every change itself, once the change is durable.

mod append;
mod audit;
pub(crate) mod backup;
mod body_search;
mod error;
mod imap_queries;
mod lifecycle;
mod mailboxes;
mod messages;
mod queue;
mod quota;
mod sort_keys;
mod structures;
mod usage;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use crate::store::CommitObserver;
use crate::store::changes::{Change, Changes, FolderChange, Subscription};
use crate::store::error::StoreError;

pub(crate) use error::store_error;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./schema/sqlite");

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
pub(crate) struct SqliteStore {
    read: SqlitePool,
    writer: mpsc::Sender<writer::Job>,
    changes: Changes,
    observe: Arc<OnceLock<CommitObserver>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub(crate) async fn open_file(path: &Path) -> Result<Self, StoreError> {
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
        let observe = Arc::new(OnceLock::new());
        tokio::spawn(writer::run(conn, rx, observe.clone()));
        Ok(SqliteStore {
            read,
            writer: tx,
            changes: Changes::new(),
            observe,
        })
    }

    /// Runs `f` on the writer's connection inside the next group commit; returns once
    /// that commit is durable.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
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

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    /// Tells `observe` of every commit from now on; only the first observer is kept.
    pub(crate) fn observe_commits(&self, observe: CommitObserver) {
        let _ = self.observe.set(observe);
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        self.changes.subscribe()
    }

    fn notify(&self, folder_id: i64, modseq: i64) {
        self.changes
            .publish_folder(FolderChange { folder_id, modseq });
    }

    /// Tells the sessions of a change to a mailbox's folder list or subscriptions.
    pub(crate) fn announce(&self, change: Change) {
        self.changes.publish(change);
    }

    /// Closes the readers, then the writer once the writes queued before have
    /// committed; returns when no connection has the files open, so they can be copied.
    pub(crate) async fn close(self) {
        self.read.close().await;
        let (ack, closed) = oneshot::channel();
        if self.writer.send(writer::Job::Close(ack)).await.is_ok() {
            let _ = closed.await;
        }
    }
}
