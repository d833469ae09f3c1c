//! Mailbox quotas (RFC 9208): the operator's limits and the usage they are checked
//! against.

use serde::Serialize;

use super::error::{StoreError, stored};

/// A mailbox's quota columns as every backend reads them: the storage and message
/// limits, then the bytes and messages used.
pub(crate) type QuotaRow = (Option<i64>, Option<i64>, i64, i64);

/// A mailbox's limits (`None`: no limit) and what it holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// Bytes, as the sum of the messages' RFC822.SIZE.
    pub quota_storage: Option<u64>,
    pub quota_messages: Option<u64>,
    pub used_bytes: u64,
    pub used_messages: u64,
}

impl Quota {
    /// Whether any limit applies: a mailbox without one has no quota root at all.
    pub fn is_limited(&self) -> bool {
        self.quota_storage.is_some() || self.quota_messages.is_some()
    }

    /// Whether adding `messages` messages of `bytes` in all would go past a limit.
    /// Reaching a limit exactly is allowed; going past it is not (RFC 9208 §4.3).
    pub fn would_exceed(&self, bytes: u64, messages: u64) -> bool {
        let past = |used: u64, more: u64, limit: Option<u64>| {
            limit.is_some_and(|l| used.saturating_add(more) > l)
        };
        past(self.used_bytes, bytes, self.quota_storage)
            || past(self.used_messages, messages, self.quota_messages)
    }
}

impl Quota {
    /// The quota in `row`. The limit columns only ever hold what
    /// `QuotaLimit::column` let through, and usage cannot go below zero: a negative
    /// limit is read as no limit, a negative usage is corruption.
    pub(crate) fn from_row(
        (storage, messages, bytes, count): QuotaRow,
    ) -> Result<Quota, StoreError> {
        Ok(Quota {
            quota_storage: storage.and_then(|v| u64::try_from(v).ok()),
            quota_messages: messages.and_then(|v| u64::try_from(v).ok()),
            used_bytes: stored(bytes, "used bytes")?,
            used_messages: stored(count, "used messages")?,
        })
    }
}

/// A change to one limit, as the operator asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// Leave the limit as it is.
    Keep,
    /// No limit any more.
    Clear,
    Set(u64),
}

impl QuotaLimit {
    /// The change as an update of its column: `None` leaves it, `Some(None)` clears
    /// it, `Some(Some(n))` sets it. Database integers are signed: a limit past
    /// `i64::MAX` is no real limit, and is refused rather than stored wrapped.
    pub(crate) fn column(self) -> Result<Option<Option<i64>>, StoreError> {
        Ok(match self {
            QuotaLimit::Keep => None,
            QuotaLimit::Clear => Some(None),
            QuotaLimit::Set(v) => Some(Some(
                i64::try_from(v).map_err(|_| StoreError::LimitTooLarge(v))?,
            )),
        })
    }
}
