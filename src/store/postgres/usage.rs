//! The usage records (`mailbox_events`, `traffic`) and the monthly figures read from
//! them and from the audit trail; the same records and figures as SQLite's.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::types::MailboxKind;
use crate::store::usage::{Traffic, Usage};

/// Records `event` at `at` for the mailboxes `ids`, in the transaction that changes
/// them (before a deletion, while their rows exist).
pub(super) async fn record_events(
    c: &mut PgConnection,
    ids: &[i64],
    event: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mailbox_events (at, address, kind, event)
         SELECT $1, address, kind, $2 FROM mailboxes WHERE id = ANY($3)",
    )
    .bind(at.timestamp())
    .bind(event)
    .bind(ids)
    .execute(&mut *c)
    .await?;
    Ok(())
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl PostgresStore {
    pub(crate) async fn record_traffic(
        &self,
        at: DateTime<Utc>,
        t: Traffic,
    ) -> Result<(), StoreError> {
        let day = at.timestamp().div_euclid(86_400) * 86_400;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        transaction!(self, |c| {
            sqlx::query(
                "INSERT INTO traffic AS t (day, submitted, received, relayed, delivered, bounced)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (day) DO UPDATE SET
                    submitted = t.submitted + excluded.submitted,
                    received = t.received + excluded.received,
                    relayed = t.relayed + excluded.relayed,
                    delivered = t.delivered + excluded.delivered,
                    bounced = t.bounced + excluded.bounced",
            )
            .bind(day)
            .bind(n(t.submitted))
            .bind(n(t.received))
            .bind(n(t.relayed))
            .bind(n(t.delivered))
            .bind(n(t.bounced))
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
        })
    }

    pub(crate) async fn usage(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Usage, StoreError> {
        let (start, end) = (from.timestamp(), to.timestamp());
        let mut usage = Usage {
            from,
            to,
            personal: Default::default(),
            organisational: Default::default(),
            applicative: Default::default(),
            authentications: Default::default(),
            messages: Default::default(),
        };
        // Every event up to the end: those before it make the count at the end, those
        // from the start the period's own.
        let events: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT kind, event, COUNT(*) FILTER (WHERE at < $1), COUNT(*) FILTER (WHERE at >= $1)
             FROM mailbox_events WHERE at < $2 GROUP BY kind, event",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        for (kind, event, _, within) in &events {
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
        // A mailbox's kind is that of its latest creation before the authentication.
        let active: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT (SELECT e.kind FROM mailbox_events e
                      WHERE e.address = a.mailbox AND e.event = 'created' AND e.at <= a.last
                      ORDER BY e.at DESC LIMIT 1) AS kind, COUNT(*)
             FROM (SELECT mailbox, MAX(at) AS last FROM audit
                   WHERE at >= $1 AND at < $2 AND outcome = 'success' AND mailbox IS NOT NULL
                     AND mechanism IN ('XOAUTH2', 'OAUTHBEARER', 'EXTERNAL')
                   GROUP BY mailbox) AS a
             GROUP BY 1",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        for (kind, n) in active {
            if let Some(Ok(kind)) = kind.as_deref().map(MailboxKind::from_str) {
                usage.kind_mut(kind).active = count(n);
            }
        }
        let mechanisms: Vec<(String, i64)> = sqlx::query_as(
            "SELECT mechanism, SUM(1 + repeated)::BIGINT FROM audit
             WHERE at >= $1 AND at < $2 AND outcome = 'success'
               AND mechanism IN ('XOAUTH2', 'OAUTHBEARER', 'EXTERNAL')
             GROUP BY mechanism",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        for (mechanism, n) in mechanisms {
            match mechanism.as_str() {
                "EXTERNAL" => usage.authentications.client_certificate += count(n),
                _ => usage.authentications.psc_token += count(n),
            }
        }
        let (submitted, received, relayed, delivered, bounced): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT COALESCE(SUM(submitted), 0)::BIGINT, COALESCE(SUM(received), 0)::BIGINT,
                        COALESCE(SUM(relayed), 0)::BIGINT, COALESCE(SUM(delivered), 0)::BIGINT,
                        COALESCE(SUM(bounced), 0)::BIGINT
                 FROM traffic WHERE day >= $1 AND day < $2",
            )
            .bind(start)
            .bind(end)
            .fetch_one(self.reader())
            .await?;
        usage.messages = Traffic {
            submitted: count(submitted),
            received: count(received),
            relayed: count(relayed),
            delivered: count(delivered),
            bounced: count(bounced),
        };
        Ok(usage)
    }
}
