//! The audit trail: one row per authentication decision, success or refusal.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

use super::types::from_unix;
use super::{Store, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    Failure,
    /// The decision could not be made (PSC unreachable): the client may retry.
    Temporary,
}

impl AuditOutcome {
    fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Failure => "failure",
            AuditOutcome::Temporary => "temporary",
        }
    }

    fn parse(s: &str) -> Self {
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

/// A recorded decision.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(flatten)]
    pub entry: AuditEntry,
}

impl Store {
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO audit (at, protocol, mechanism, identity, mailbox, peer, outcome, reason)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(entry.at.timestamp())
                .bind(&entry.protocol)
                .bind(&entry.mechanism)
                .bind(&entry.identity)
                .bind(&entry.mailbox)
                .bind(&entry.peer)
                .bind(entry.outcome.as_str())
                .bind(&entry.reason)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The most recent records, newest last; `mailbox` narrows to one mailbox.
    pub async fn audit_records(
        &self,
        mailbox: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, at, protocol, mechanism, identity, mailbox, peer, outcome, reason
               FROM audit WHERE (?1 IS NULL OR mailbox = ?1) ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )
        .bind(mailbox)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let outcome: String = r.try_get("outcome")?;
                Ok(AuditRecord {
                    id: r.try_get("id")?,
                    entry: AuditEntry {
                        at: from_unix(r.try_get("at")?),
                        protocol: r.try_get("protocol")?,
                        mechanism: r.try_get("mechanism")?,
                        identity: r.try_get("identity")?,
                        mailbox: r.try_get("mailbox")?,
                        peer: r.try_get("peer")?,
                        outcome: AuditOutcome::parse(&outcome),
                        reason: r.try_get("reason")?,
                    },
                })
            })
            .collect()
    }
}
