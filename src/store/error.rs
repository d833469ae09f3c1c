//! What can go wrong in the store, in terms every backend shares: the callers decide what
//! to tell a client from these variants alone, never from a database library's error.

use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database itself failed; `kind` is what the protocols act on, `message` is for
    /// the log.
    #[error("database error: {message}")]
    Backend {
        kind: BackendErrorKind,
        message: String,
    },
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("cannot create {}: {source}", .path.display())]
    CreateDir {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error("the store is shutting down")]
    Closed,
    #[error("no such mailbox: {0}")]
    NoMailbox(String),
    #[error("no such folder")]
    NoFolder,
    /// A message's content is gone (its last message was expunged in the meantime).
    #[error("body {0} is missing")]
    NoBody(i64),
    #[error("mailbox {0} already exists")]
    MailboxExists(String),
    #[error("folder {0} already exists")]
    FolderExists(String),
    /// The change would take a mailbox past one of its limits (RFC 9208 OVERQUOTA).
    #[error("the mailbox is over its quota")]
    OverQuota,
    #[error("`{0}` is not a mail address")]
    BadAddress(String),
    #[error("a personal mailbox needs its holder's IdNat (--owner)")]
    OwnerRequired,
    /// UIDs are 32 bits and never reused: a folder that has handed them all out takes
    /// no more messages.
    #[error("folder has run out of UIDs")]
    UidsExhausted,
    /// Every UIDVALIDITY up to 2³² − 1 has been issued in this store.
    #[error("no UIDVALIDITY left to issue after {0}")]
    UidValidityExhausted(i64),
    /// A quota limit the database cannot hold (a signed 64-bit column).
    #[error("limit {0} is too large")]
    LimitTooLarge(u64),
}

/// Why the database failed, as far as the callers care: whether waiting may help, and
/// whether the disk is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// Another writer holds the database, or no connection was free in time.
    Busy,
    /// The file system holding the database is full.
    Full,
    /// The database cannot be used for now: an I/O error, a file that cannot be opened,
    /// memory exhausted, a connection lost.
    Unavailable,
    /// A row with the same unique key is already there.
    Duplicate,
    /// The database holds, or handed back, something the store never wrote.
    Corrupt,
    /// Anything else: a fault that will repeat.
    Other,
}

/// A number read back from the database, which the store only ever writes in range: one
/// out of range means the rows were altered behind the store's back. It is reported as
/// corruption rather than read as 0, since a UID or MODSEQ of 0 would send clients into a
/// full resynchronisation or make them lose track of messages.
pub(crate) fn stored<T: TryFrom<i64>>(value: i64, column: &'static str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| {
        StoreError::backend(
            BackendErrorKind::Corrupt,
            format!("{column} {value} read back out of range"),
        )
    })
}

impl StoreError {
    /// A failure of the database with `kind`, described by `message` for the log.
    pub(crate) fn backend(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        StoreError::Backend {
            kind,
            message: message.into(),
        }
    }

    /// Errors that say nothing about the request and may clear up by themselves: the
    /// database busy, locked, out of space or memory, or the store shutting down.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Closed => true,
            StoreError::Backend { kind, .. } => matches!(
                kind,
                BackendErrorKind::Busy | BackendErrorKind::Full | BackendErrorKind::Unavailable
            ),
            _ => false,
        }
    }

    /// The database could not grow: the file system is full. Clients are told so (`452`
    /// in SMTP) rather than of an unspecified failure.
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                kind: BackendErrorKind::Full,
                ..
            }
        )
    }

    pub(crate) fn is_duplicate(&self) -> bool {
        matches!(
            self,
            StoreError::Backend {
                kind: BackendErrorKind::Duplicate,
                ..
            }
        )
    }
}
