//! The outbound queue's messages: mail accepted for other operators' domains, kept
//! until their server takes it, a permanent failure, or `smtp.queue_max_lifetime`.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::types::RawMessage;

/// A message for remote recipients, as the SMTP session accepted it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The envelope sender (empty for a null reverse-path: never gets a DSN).
    pub sender: String,
    pub recipients: Vec<OutgoingRecipient>,
    /// DSN `ENVID` (RFC 3461).
    pub envid: Option<String>,
    /// DSN `RET=FULL`: return the whole message in a failure notice.
    pub ret_full: bool,
}

#[derive(Debug, Clone)]
pub struct OutgoingRecipient {
    pub address: String,
    pub domain: String,
    /// DSN `NOTIFY` as given (`NEVER`, `FAILURE,DELAY`…); None = default (failures).
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// A queued message with the recipients still waiting.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: i64,
    pub body_id: i64,
    pub sender: String,
    pub created_at: DateTime<Utc>,
    pub attempts: u32,
    pub envid: Option<String>,
    pub ret_full: bool,
    pub recipients: Vec<QueuedRecipient>,
}

#[derive(Debug, Clone)]
pub struct QueuedRecipient {
    pub id: i64,
    pub address: String,
    pub domain: String,
    pub notify: Option<String>,
    pub orcpt: Option<String>,
    pub last_error: Option<String>,
}

/// What one delivery attempt decided for a queued message.
#[derive(Debug, Clone)]
pub struct QueueSettlement {
    pub queue_id: i64,
    /// Recipients the remote server accepted (its `250` after the data).
    pub delivered: Vec<i64>,
    /// Recipients given up on, with the reason.
    pub failed: Vec<(i64, String)>,
    /// Recipients to try again, with the reason.
    pub deferred: Vec<(i64, String)>,
    /// When to try the deferred ones.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// A delivery status notification to file in these folders, in the same transaction.
    pub notice: Option<(Vec<i64>, Arc<RawMessage>)>,
    /// When the attempt ended: the delivery records and usage figures are dated by it.
    pub now: DateTime<Utc>,
}

impl QueueSettlement {
    /// An attempt on `queue_id` that ended at `now` and has decided nothing yet.
    pub fn new(queue_id: i64, now: DateTime<Utc>) -> Self {
        QueueSettlement {
            queue_id,
            delivered: Vec::new(),
            failed: Vec::new(),
            deferred: Vec::new(),
            next_attempt_at: None,
            notice: None,
            now,
        }
    }
}
