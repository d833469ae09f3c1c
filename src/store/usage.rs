//! The operator's monthly usage figures for the national agency, computed from durable
//! records only (mailbox events, the audit trail, daily traffic counts), so that any
//! past month can be reported again with the same numbers.

use std::str::FromStr;

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

impl Traffic {
    /// The day `at` is counted in: its UTC midnight, in Unix seconds, the `traffic` key.
    pub(crate) fn day(at: DateTime<Utc>) -> i64 {
        at.timestamp().div_euclid(86_400) * 86_400
    }

    /// The counts as `traffic` columns (submitted, received, relayed, delivered,
    /// bounced): signed 64-bit, a count past its range kept at the largest.
    pub(crate) fn columns(&self) -> [i64; 5] {
        [
            self.submitted,
            self.received,
            self.relayed,
            self.delivered,
            self.bounced,
        ]
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
    }
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

    /// The figures from what every backend reads the same way: mailbox events by
    /// (kind, event) with how many came before `from` and how many within; active
    /// mailboxes by kind; successful authentications by mechanism; the traffic sums.
    /// Only the SQL differs between backends, not how its answers are counted.
    pub(crate) fn from_records(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        events: &[(String, String, i64, i64)],
        active: &[(Option<String>, i64)],
        mechanisms: &[(String, i64)],
        traffic: [i64; 5],
    ) -> Usage {
        let mut usage = Usage {
            from,
            to,
            personal: KindFigures::default(),
            organisational: KindFigures::default(),
            applicative: KindFigures::default(),
            authentications: Authentications::default(),
            messages: Traffic::default(),
        };
        for (kind, event, _, within) in events {
            let Ok(kind) = MailboxKind::from_str(kind) else {
                continue;
            };
            let f = usage.kind_mut(kind);
            match event.as_str() {
                "created" => f.created = count(*within),
                "deleted" => f.deleted = count(*within),
                "published" => f.published = count(*within),
                "unpublished" => f.unpublished = count(*within),
                _ => {}
            }
        }
        for kind in [
            MailboxKind::Personal,
            MailboxKind::Organisational,
            MailboxKind::Applicative,
        ] {
            let until_end = |wanted: &str| -> u64 {
                events
                    .iter()
                    .filter(|(k, e, _, _)| k == kind.as_str() && e == wanted)
                    .map(|(_, _, before, within)| count(*before) + count(*within))
                    .sum()
            };
            usage.kind_mut(kind).existing =
                until_end("created").saturating_sub(until_end("deleted"));
        }
        for (kind, n) in active {
            if let Some(Ok(kind)) = kind.as_deref().map(MailboxKind::from_str) {
                usage.kind_mut(kind).active = count(*n);
            }
        }
        for (mechanism, n) in mechanisms {
            match mechanism.as_str() {
                "EXTERNAL" => usage.authentications.client_certificate += count(*n),
                _ => usage.authentications.psc_token += count(*n),
            }
        }
        let [submitted, received, relayed, delivered, bounced] = traffic.map(count);
        usage.messages = Traffic {
            submitted,
            received,
            relayed,
            delivered,
            bounced,
        };
        usage
    }
}

/// A count as the database sums it; never negative.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
