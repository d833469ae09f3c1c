//! The operator's monthly usage figures for the national agency, computed from durable
//! records only (mailbox events, the audit trail, daily traffic counts), so that any
//! past month can be reported again with the same numbers.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::types::MailboxKind;

/// Mail carried, to be added to the day of `at` (`Store::record_traffic`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// Messages accepted on submission.
    pub submitted: u64,
    /// Messages accepted from other operators.
    pub received: u64,
    /// Recipients another operator's server accepted.
    pub relayed: u64,
    /// Copies filed in local inboxes by SMTP.
    pub delivered: u64,
    /// Recipients given up on.
    pub bounced: u64,
}

/// One kind of mailbox over the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindFigures {
    /// Existing at the end of the period.
    pub existing: u64,
    pub created: u64,
    pub deleted: u64,
    pub published: u64,
    pub unpublished: u64,
    /// With at least one successful authentication in the period.
    pub active: u64,
}

/// Successful authentications by how the holder proved who they are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Authentications {
    /// XOAUTH2 or OAUTHBEARER with a Pro Santé Connect token.
    pub psc_token: u64,
    /// EXTERNAL with an IGC-Santé client certificate.
    pub client_certificate: u64,
}

/// The figures for `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub personal: KindFigures,
    pub organisational: KindFigures,
    pub applicative: KindFigures,
    pub authentications: Authentications,
    pub messages: Traffic,
}

impl Usage {
    pub fn kind(&self, kind: MailboxKind) -> &KindFigures {
        match kind {
            MailboxKind::Personal => &self.personal,
            MailboxKind::Organisational => &self.organisational,
            MailboxKind::Applicative => &self.applicative,
        }
    }

    pub(crate) fn kind_mut(&mut self, kind: MailboxKind) -> &mut KindFigures {
        match kind {
            MailboxKind::Personal => &mut self.personal,
            MailboxKind::Organisational => &mut self.organisational,
            MailboxKind::Applicative => &mut self.applicative,
        }
    }
}
