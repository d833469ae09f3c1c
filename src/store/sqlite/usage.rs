//! The usage records (`mailbox_events`, `traffic`) and the monthly figures read from
//! them and from the audit trail.

use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::usage::{Traffic, Usage};

/// Records `event` at `at` for the mailboxes whose ids are in the JSON list `ids`, in
/// the transaction that changes them (before a deletion, while their rows exist).
pub(super) async fn record_events(
    c: &mut SqliteConnection,
    ids: &str,
    event: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO mailbox_events (at, address, kind, event)
         SELECT ?, address, kind, ? FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))",
    )
    .bind(at.timestamp())
    .bind(event)
    .bind(ids)
    .execute(&mut *c)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn record_traffic(
        &self,
        at: DateTime<Utc>,
        t: Traffic,
    ) -> Result<(), StoreError> {
        let day = Traffic::day(at);
        let [submitted, received, relayed, delivered, bounced] = t.columns();
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO traffic (day, submitted, received, relayed, delivered, bounced)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (day) DO UPDATE SET
                        submitted = submitted + excluded.submitted,
                        received = received + excluded.received,
                        relayed = relayed + excluded.relayed,
                        delivered = delivered + excluded.delivered,
                        bounced = bounced + excluded.bounced",
                )
                .bind(day)
                .bind(submitted)
                .bind(received)
                .bind(relayed)
                .bind(delivered)
                .bind(bounced)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
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
            "SELECT kind, event, SUM(at < ?1), SUM(at >= ?1) FROM mailbox_events
             WHERE at < ?2 GROUP BY kind, event",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        // A mailbox's kind is that of its latest creation before the authentication.
        let active: Vec<(Option<String>, i64)> = sqlx::query_as(
            "SELECT (SELECT e.kind FROM mailbox_events e
                      WHERE e.address = a.mailbox AND e.event = 'created' AND e.at <= a.last
                      ORDER BY e.at DESC LIMIT 1), COUNT(*)
             FROM (SELECT mailbox, MAX(at) AS last FROM audit
                   WHERE at >= ? AND at < ? AND outcome = 'success' AND mailbox IS NOT NULL
                     AND mechanism IN ('XOAUTH2', 'OAUTHBEARER', 'EXTERNAL')
                   GROUP BY mailbox) AS a
             GROUP BY 1",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let mechanisms: Vec<(String, i64)> = sqlx::query_as(
            "SELECT mechanism, SUM(1 + repeated) FROM audit
             WHERE at >= ? AND at < ? AND outcome = 'success'
               AND mechanism IN ('XOAUTH2', 'OAUTHBEARER', 'EXTERNAL')
             GROUP BY mechanism",
        )
        .bind(start)
        .bind(end)
        .fetch_all(self.reader())
        .await?;
        let (submitted, received, relayed, delivered, bounced): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT COALESCE(SUM(submitted), 0), COALESCE(SUM(received), 0),
                        COALESCE(SUM(relayed), 0), COALESCE(SUM(delivered), 0),
                        COALESCE(SUM(bounced), 0)
                 FROM traffic WHERE day >= ? AND day < ?",
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
