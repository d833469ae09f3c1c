//! The mail store: the only code that speaks SQL, behind one backend-neutral type.
//!
//! The rest of the server holds a `Store` (cheap to clone) and nothing else of the store:
//! its operations take and return the types of this module, and fail with `StoreError`,
//! which carries no database library's type. Behind it sits one backend, chosen when the
//! store is opened (`[store] backend`): SQLite (`sqlite/`: one file, WAL, a single writer
//! task with group commit, migrations in `schema/sqlite/`), the embedded default, or
//! PostgreSQL (`postgres/`: a server several `serve` nodes share, migrations in
//! `schema/postgres/`).
//!
//! The backends are the variants of an enum, `Backend`, not implementations of a trait:
//! every operation is an `async fn`, and an enum dispatches them statically (no boxed
//! future per call, on the paths every IMAP command and SMTP delivery takes) while the
//! exhaustive `match` in each operation (written once, by the `operations!` macro in
//! `operations.rs`) refuses to compile until a new backend has every operation. A trait
//! would give the same completeness check but needs either `dyn` (boxing each future) or
//! a type parameter on `Store` that would spread to every holder of one. What belongs to
//! no backend (validating an address, the clock, the contract of each operation) is
//! written here once.
//!
//! Change notifications come from the backend too (`changes.rs`): SQLite publishes its
//! own commits in process; PostgreSQL tells every node of everyone's (LISTEN/NOTIFY).

mod address;
mod audit;
mod changes;
pub mod copy;
mod error;
mod lifecycle;
mod operations;
mod postgres;
mod queue;
mod quota;
pub(crate) mod search_text;
mod sqlite;
mod structures;
mod types;
mod usage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::config::{Config, StoreBackend};

pub use address::normalise_address;
pub use audit::{AuditEntry, AuditOutcome, AuditRecord};
pub use changes::{Change, FolderChange, Heard, Subscription};
pub use error::{BackendErrorKind, StoreError};
pub use lifecycle::{DeletedMailbox, Notice, NoticeCopy, SentNotice};
pub use queue::{Outgoing, OutgoingRecipient, QueueSettlement, QueuedMessage, QueuedRecipient};
pub use quota::{Quota, QuotaLimit};
pub use search_text::{SearchText, TextScope};
pub use sqlite::backup::{BackupError, ServingLock, backup, restore};
pub use types::*;
pub use usage::{Authentications, KindFigures, Traffic, Usage};

/// Told of each durable commit: how long the transaction took, and how many writes it
/// grouped (metrics; see `Store::observe_commits`).
pub type CommitObserver = Arc<dyn Fn(std::time::Duration, usize) + Send + Sync>;

/// The mail store, whatever the database behind it.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// When things happen that the caller does not date itself (a folder's UIDVALIDITY,
    /// a grant's creation).
    clock: SharedClock,
}

/// The databases a store can live in.
#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PostgresStore),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir` and applies its
    /// migrations. The store dates what its callers do not date themselves with
    /// `clock`: the server's own, so a test's or a `jobs run --at`'s fixed time holds
    /// for the store too.
    pub async fn open(data_dir: &Path, clock: SharedClock) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::CreateDir {
            path: data_dir.to_owned(),
            source: Arc::new(e),
        })?;
        Self::open_file(&data_dir.join("mssante.db"), clock).await
    }

    /// Opens (creating if needed) the SQLite database file `path`.
    pub async fn open_file(path: &Path, clock: SharedClock) -> Result<Self, StoreError> {
        Ok(Store {
            backend: Backend::Sqlite(sqlite::SqliteStore::open_file(path).await?),
            clock,
        })
    }

    /// Opens the store `[store]` names: the SQLite file in `[server] data_dir`, or the
    /// PostgreSQL database at `url` (connecting, migrating, and listening for the other
    /// nodes' changes). An unreachable database is an error naming its host, never the
    /// password.
    pub async fn open_configured(config: &Config, clock: SharedClock) -> Result<Self, StoreError> {
        let store = &config.store;
        match (store.backend, &store.url) {
            (StoreBackend::Sqlite, _) => Self::open(&config.server.data_dir, clock).await,
            (StoreBackend::Postgres, Some(url)) => {
                let settings = postgres::Settings {
                    url: url.expose().to_owned(),
                    host: url.host(),
                    pool_size: store.pool_size,
                    connect_timeout: store.connect_timeout.0,
                    statement_timeout: store.statement_timeout.0,
                    queue_lease: store.queue_lease.0,
                };
                Ok(Store {
                    backend: Backend::Postgres(
                        postgres::PostgresStore::connect(&settings, clock.clone()).await?,
                    ),
                    clock,
                })
            }
            // The configuration checker refuses postgres without a URL.
            (StoreBackend::Postgres, None) => Err(StoreError::backend(
                BackendErrorKind::Other,
                "[store] backend = \"postgres\" needs store.url or store.url_file",
            )),
        }
    }

    /// Which database the configuration names, for messages: the SQLite file, or the
    /// PostgreSQL URL with its password masked.
    pub fn describe(config: &Config) -> String {
        match (config.store.backend, &config.store.url) {
            (StoreBackend::Postgres, Some(url)) => format!("PostgreSQL at {url}"),
            _ => config.database_path().display().to_string(),
        }
    }

    /// `open_configured`, tried again while the database does not answer (it may be
    /// starting beside this server): each failure is logged with its reason, and the
    /// wait doubles up to `MAX_OPEN_WAIT`. Errors that waiting cannot cure (a refused
    /// password, a failed migration) are returned at once.
    pub async fn open_retrying(config: &Config, clock: SharedClock) -> Result<Self, StoreError> {
        let mut wait = Duration::from_millis(500);
        loop {
            match Self::open_configured(config, clock.clone()).await {
                Err(e) if e.is_transient() => {
                    tracing::warn!(
                        error = %e,
                        retry_in = ?wait,
                        "the store does not answer yet; trying again"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_OPEN_WAIT);
                }
                other => return other,
            }
        }
    }

    /// Tells `observe` of every commit from now on (the server's store metrics); a
    /// store has one observer, the first set.
    pub fn observe_commits(&self, observe: CommitObserver) {
        match &self.backend {
            Backend::Sqlite(b) => b.observe_commits(observe),
            Backend::Postgres(b) => b.observe_commits(observe),
        }
    }

    /// Changes to folders, for sessions that show them live (IMAP IDLE).
    pub fn subscribe(&self) -> Subscription {
        match &self.backend {
            Backend::Sqlite(b) => b.subscribe(),
            Backend::Postgres(b) => b.subscribe(),
        }
    }

    /// Closes the store; pending writes finish first.
    pub async fn close(self) {
        match self.backend {
            Backend::Sqlite(b) => b.close().await,
            Backend::Postgres(b) => b.close().await,
        }
    }
}

/// Longest wait between two attempts of `open_retrying`.
const MAX_OPEN_WAIT: Duration = Duration::from_secs(30);

/// A database error in the store's terms, whichever driver it came from.
impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if postgres::is_postgres_error(&e) {
            postgres::store_error(e)
        } else {
            sqlite::store_error(e)
        }
    }
}
