//! PostgreSQL's failures in the store's terms, from its SQLSTATE codes.

use sqlx::postgres::PgDatabaseError;

use crate::store::error::{BackendErrorKind, StoreError};

/// What a transaction aborted for a serialization failure or a deadlock says in the
/// log: run again, it usually passes (`transaction!` does), and `Busy` if it keeps
/// failing.
const CONFLICT: &str = "transaction conflict";

/// Whether `e` came from PostgreSQL (not from the SQLite driver).
pub(crate) fn is_postgres_error(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.try_downcast_ref::<PgDatabaseError>().is_some())
}

pub(crate) fn store_error(e: sqlx::Error) -> StoreError {
    let code = e
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned());
    let kind = match code.as_deref() {
        Some(code) => kind(code),
        None => match &e {
            sqlx::Error::PoolTimedOut => BackendErrorKind::Busy,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => BackendErrorKind::Unavailable,
            _ => BackendErrorKind::Other,
        },
    };
    let conflict = matches!(code.as_deref(), Some("40001" | "40P01"));
    StoreError::backend(
        kind,
        if conflict {
            format!("{CONFLICT}: {e}")
        } else {
            e.to_string()
        },
    )
}

/// SQLSTATE classes and codes (PostgreSQL documentation, appendix A).
fn kind(code: &str) -> BackendErrorKind {
    match code {
        // unique violation
        "23505" => BackendErrorKind::Duplicate,
        // serialization failure, deadlock, lock not available, query canceled
        // (statement_timeout), too many connections
        "40001" | "40P01" | "55P03" | "57014" | "53300" => BackendErrorKind::Busy,
        // disk full
        "53100" => BackendErrorKind::Full,
        // out of memory, insufficient resources, admin/crash shutdown, cannot connect now,
        // read-only transaction (a standby after failover)
        "53200" | "53000" | "57P01" | "57P02" | "57P03" | "25006" => BackendErrorKind::Unavailable,
        // connection exceptions, I/O error
        c if c.starts_with("08") || c == "58030" => BackendErrorKind::Unavailable,
        // data corrupted, index corrupted
        "XX001" | "XX002" => BackendErrorKind::Corrupt,
        _ => BackendErrorKind::Other,
    }
}

/// Whether running the transaction again may succeed where it failed.
pub(crate) fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Backend { kind: BackendErrorKind::Busy, message } if message.starts_with(CONFLICT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_keep_their_meaning() {
        for (code, want) in [
            ("23505", BackendErrorKind::Duplicate),
            ("40001", BackendErrorKind::Busy),
            ("40P01", BackendErrorKind::Busy),
            ("57014", BackendErrorKind::Busy),
            ("53100", BackendErrorKind::Full),
            ("08006", BackendErrorKind::Unavailable),
            ("57P01", BackendErrorKind::Unavailable),
            ("XX001", BackendErrorKind::Corrupt),
            ("23503", BackendErrorKind::Other),
            ("42P01", BackendErrorKind::Other),
        ] {
            assert_eq!(kind(code), want, "{code}");
        }
        assert!(is_conflict(&StoreError::backend(
            BackendErrorKind::Busy,
            format!("{CONFLICT}: could not serialize access")
        )));
        assert!(!is_conflict(&StoreError::backend(
            BackendErrorKind::Busy,
            "pool timed out"
        )));
    }
}
