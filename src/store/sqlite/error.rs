//! SQLite's failures in the store's terms: which result codes mean "wait and try again",
//! "the disk is full" or "that row exists".

use crate::store::error::{BackendErrorKind, StoreError};

// SQLite primary result codes; extended codes keep them in the low byte.
const BUSY: i32 = 5;
const LOCKED: i32 = 6;
const NOMEM: i32 = 7;
const IOERR: i32 = 10;
const CORRUPT: i32 = 11;
const FULL: i32 = 13;
const CANTOPEN: i32 = 14;
const PROTOCOL: i32 = 15;
const NOTADB: i32 = 26;

/// An error of the SQLite driver (or of the pool, which is the same for every backend)
/// in the store's terms.
pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    StoreError::backend(kind(&e), e.to_string())
}

fn kind(e: &sqlx::Error) -> BackendErrorKind {
    match e {
        sqlx::Error::PoolTimedOut => BackendErrorKind::Busy,
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
            BackendErrorKind::Unavailable
        }
        sqlx::Error::Database(d) if d.is_unique_violation() => BackendErrorKind::Duplicate,
        sqlx::Error::Database(d) => {
            match d
                .code()
                .and_then(|code| code.parse::<i32>().ok())
                .map(|c| c & 0xff)
            {
                Some(BUSY | LOCKED) => BackendErrorKind::Busy,
                Some(FULL) => BackendErrorKind::Full,
                Some(NOMEM | IOERR | CANTOPEN | PROTOCOL) => BackendErrorKind::Unavailable,
                Some(CORRUPT | NOTADB) => BackendErrorKind::Corrupt,
                _ => BackendErrorKind::Other,
            }
        }
        _ => BackendErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A database error with SQLite's extended result code `code`.
    #[derive(Debug)]
    struct Coded(i32);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "code {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "coded"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(self.0.to_string().into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            // SQLITE_CONSTRAINT_UNIQUE and SQLITE_CONSTRAINT_PRIMARYKEY, as sqlx reads them.
            match self.0 {
                2067 | 1555 => ErrorKind::UniqueViolation,
                _ => ErrorKind::Other,
            }
        }
    }

    fn error(code: i32) -> StoreError {
        StoreError::from(sqlx::Error::Database(Box::new(Coded(code))))
    }

    #[test]
    fn result_codes_keep_their_meaning() {
        // busy, locked (and a BUSY_SNAPSHOT), out of memory, I/O error (IOERR_WRITE),
        // cannot open, protocol: transient
        for code in [5, 6, 517, 7, 10, 778, 14, 15] {
            let e = error(code);
            assert!(e.is_transient() && !e.is_out_of_space(), "{code}");
        }
        // full: transient, and said so
        let e = error(13);
        assert!(e.is_transient() && e.is_out_of_space());
        // constraint (a trigger's refusal), unique, corrupt, not a database, generic
        for code in [19, 2067, 1555, 11, 26, 1] {
            let e = error(code);
            assert!(!e.is_transient() && !e.is_out_of_space(), "{code}");
        }
        assert!(error(2067).is_duplicate() && !error(19).is_duplicate());
        for e in [sqlx::Error::PoolTimedOut, sqlx::Error::PoolClosed] {
            assert!(StoreError::from(e).is_transient());
        }
        assert!(!StoreError::from(sqlx::Error::RowNotFound).is_transient());
        assert_eq!(
            error(5).to_string(),
            "database error: error returned from database: code 5"
        );
    }
}
