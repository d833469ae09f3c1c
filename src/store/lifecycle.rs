//! What the lifecycle jobs hand the store and get back: notices and deleted mailboxes.

use chrono::{DateTime, Utc};

/// A notice to file in a mailbox's INBOX, with copies for its holder.
#[derive(Debug, Clone)]
pub struct Notice {
    pub mailbox_id: i64,
    /// What the notice is; each (kind, cycle) is sent at most once per mailbox. Several
    /// kinds let one message stand for thresholds that fell due together.
    pub kinds: Vec<String>,
    /// The activity instant the notice is about (Unix seconds); 0 when it is not tied
    /// to inactivity.
    pub cycle: i64,
    /// Only send while the mailbox is still inactive since `cycle` and not on hold:
    /// an authentication or a hold placed since the candidate was read cancels it.
    pub deletion_warning: bool,
    pub message: Vec<u8>,
    pub copies: Vec<NoticeCopy>,
    pub at: DateTime<Utc>,
}

impl Notice {
    /// Where the notice goes: the folders to file it in, `inbox` first and each once,
    /// and the addresses to queue it for.
    pub(crate) fn destinations(&self, inbox: i64) -> (Vec<i64>, Vec<String>) {
        let mut folders = vec![inbox];
        let mut remote = Vec::new();
        for copy in &self.copies {
            match copy {
                NoticeCopy::Local { folder_id } if !folders.contains(folder_id) => {
                    folders.push(*folder_id)
                }
                NoticeCopy::Local { .. } => {}
                NoticeCopy::Remote { address } => remote.push(address.clone()),
            }
        }
        (folders, remote)
    }
}

/// Where else a notice goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeCopy {
    /// A mailbox hosted here: filed in that folder (its INBOX).
    Local { folder_id: i64 },
    /// Elsewhere: left in the outbound queue for the SMTP client.
    Remote { address: String },
}

/// A notice already sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentNotice {
    pub kind: String,
    pub cycle: i64,
    pub sent_at: DateTime<Utc>,
}

/// A mailbox removed by the deletion job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedMailbox {
    pub id: i64,
    pub address: String,
}
