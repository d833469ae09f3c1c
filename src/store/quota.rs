//! Mailbox quotas (RFC 9208): the operator's limits and the usage they are checked
//! against.

use serde::Serialize;

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

/// A change to one limit, as the operator asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaLimit {
    /// Leave the limit as it is.
    Keep,
    /// No limit any more.
    Clear,
    Set(u64),
}
