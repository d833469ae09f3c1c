//! The mail store: the only code that speaks SQL, behind one backend-neutral type.
//!
//! The rest of the server holds a `Store` (cheap to clone) and nothing else of the store:
//! its operations take and return the types of this module, and fail with `StoreError`,
//! which carries no database library's type. Behind it sits one backend, chosen when the
//! store is opened; today that is SQLite (`sqlite/`: one file, WAL, a single writer task
//! with group commit, migrations in `schema/sqlite/`), and PostgreSQL goes beside it.
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
//! own commits in process; a shared database tells every process of everyone's.

mod address;
mod audit;
mod changes;
mod error;
mod lifecycle;
mod operations;
mod queue;
mod quota;
mod sqlite;
mod types;
mod usage;

use std::path::Path;
use std::sync::Arc;

use crate::clock::SharedClock;

pub use address::normalise_address;
pub use audit::{AuditEntry, AuditOutcome, AuditRecord};
pub use changes::{FolderChange, Subscription};
pub use error::{BackendErrorKind, StoreError};
pub use lifecycle::{DeletedMailbox, Notice, NoticeCopy, SentNotice};
pub use queue::{Outgoing, OutgoingRecipient, QueueSettlement, QueuedMessage, QueuedRecipient};
pub use quota::{Quota, QuotaLimit};
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

    /// Tells `observe` of every commit from now on (the server's store metrics); a
    /// store has one observer, the first set.
    pub fn observe_commits(&self, observe: CommitObserver) {
        match &self.backend {
            Backend::Sqlite(b) => b.observe_commits(observe),
        }
    }

    /// Changes to folders, for sessions that show them live (IMAP IDLE).
    pub fn subscribe(&self) -> Subscription {
        match &self.backend {
            Backend::Sqlite(b) => b.subscribe(),
        }
    }

    /// Closes the store; pending writes finish first.
    pub async fn close(self) {
        match self.backend {
            Backend::Sqlite(b) => b.close().await,
        }
    }
}
