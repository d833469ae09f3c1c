//! The usage records (`mailbox_events`, `traffic`) and the monthly figures read from
//! them and from the audit trail; the same records and figures as SQLite's.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
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

impl PostgresStore {
    pub(crate) async fn record_traffic(
        &self,
        at: DateTime<Utc>,
        t: Traffic,
    ) -> Result<(), StoreError> {
        let day = Traffic::day(at);
        let [submitted, received, relayed, delivered, bounced] = t.columns();
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
            .bind(submitted)
            .bind(received)
            .bind(relayed)
            .bind(delivered)
            .bind(bounced)
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
        // A mailbox's kind is that of its latest creation before the authentication.
        // One join of the month's mailboxes with the creations, not a lookup per
        // mailbox as SQLite does: PostgreSQL runs a correlated subquery once per row
        // at a cost that dominated the report (see schema/postgres/0003_usage_indexes.sql).
        let active: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT kind, COUNT(*) FROM (
               SELECT DISTINCT ON (a.mailbox) e.kind
               FROM (SELECT mailbox, MAX(at) AS last FROM audit
                     WHERE at >= $1 AND at < $2 AND outcome = 'success' AND mailbox IS NOT NULL
                       AND mechanism IN ('XOAUTH2', 'OAUTHBEARER', 'EXTERNAL')
                     GROUP BY mailbox) AS a
               JOIN mailbox_events e
                 ON e.address = a.mailbox AND e.event = 'created' AND e.at <= a.last
               ORDER BY a.mailbox, e.at DESC) AS k
             GROUP BY kind",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
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
        Ok(Usage::from_records(
            from,
            to,
            &events,
            &active,
            &mechanisms,
            [submitted, received, relayed, delivered, bounced],
        ))
    }
}
