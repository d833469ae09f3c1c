//! The audit trail's records: one per authentication decision, success or refusal,
//! except that identical decisions close together share a record with a repeat count.

use chrono::{DateTime, Utc};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    Failure,
    /// The decision could not be made (PSC unreachable): the client may retry.
    Temporary,
}

impl AuditOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Temporary => "temporary",
        }
    }

    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "success" => AuditOutcome::Success,
            "temporary" => AuditOutcome::Temporary,
            _ => AuditOutcome::Failure,
        }
    }
}

/// One decision to record.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// `imap`, `submission`, `inbound`, `cli`, …
    pub protocol: String,
    pub mechanism: Option<String>,
    /// IdNat, or certificate subject.
    pub identity: Option<String>,
    pub mailbox: Option<String>,
    pub peer: Option<String>,
    pub outcome: AuditOutcome,
    pub reason: Option<String>,
}

/// An audit row as every backend reads it: id, at, protocol, mechanism, identity,
/// mailbox, peer, outcome, reason, repeated.
pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
    i64,
);

/// A recorded decision.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
    /// Identical decisions (same protocol, mechanism, identity, mailbox, peer address,
    /// outcome and reason) folded into this row after the first: each came within
    /// `COALESCE_WINDOW_SECS` of it with no other decision for that address in between.
    pub repeated: u32,
}

/// How long after a row identical decisions are folded into it rather than written as
/// rows of their own: long enough that a flood costs one row a minute per distinct
/// decision, short enough that the trail still dates each burst.
pub(crate) const COALESCE_WINDOW_SECS: i64 = 60;

impl AuditRecord {
    pub(crate) fn from_row(
        (id, at, protocol, mechanism, identity, mailbox, peer, outcome, reason, repeated): AuditRow,
    ) -> AuditRecord {
        AuditRecord {
            id,
            entry: AuditEntry {
                at: super::types::from_unix(at),
                protocol,
                mechanism,
                identity,
                mailbox,
                peer,
                outcome: AuditOutcome::parse(&outcome),
                reason,
            },
            repeated: u32::try_from(repeated).unwrap_or(u32::MAX),
        }
    }
}
