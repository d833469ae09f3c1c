//! The outbound queue on PostgreSQL, worked by every node at once.
//!
//! A node takes due messages with a lease: `queue_due` marks them with its name and a
//! time (`[store] queue_lease` ahead) until which the other nodes leave them alone,
//! choosing among rows no other node is claiming at that moment (`FOR UPDATE SKIP
//! LOCKED`). While the node lives it renews its leases (`renew_leases`), however long
//! an attempt takes; `queue_settle` gives the lease back with the outcome. A node that
//! dies holding leases hands its messages over when they run out: another node then
//! tries them again. That is the documented at-least-once window: a node killed after
//! the remote server's `250` but before its settlement committed, the message goes out
//! again from another node.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::messages::{changed_by, delete_orphan_bodies, file_in, put_body};
use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::queue::{Outgoing, QueueSettlement, QueuedMessage, QueuedRecipient};
use crate::store::types::{Appended, RawMessage, from_unix};

/// Renews every lease `node` holds, every third of the lease, until aborted: a live
/// node keeps the messages it is sending, a dead one stops renewing and loses them.
pub(super) async fn renew_leases(
    pool: sqlx::PgPool,
    node: Arc<str>,
    lease_secs: i64,
    clock: crate::clock::SharedClock,
) {
    let every = std::time::Duration::from_secs(u64::try_from(lease_secs / 3).unwrap_or(1).max(1));
    loop {
        tokio::time::sleep(every).await;
        let until = clock.now().timestamp().saturating_add(lease_secs);
        if let Err(e) = sqlx::query(
            "UPDATE queue SET lease_until = $1 WHERE lease_holder = $2 AND lease_until < $1",
        )
        .bind(until)
        .bind(&*node)
        .execute(&pool)
        .await
        {
            tracing::warn!(error = %e, "could not renew this node's queue leases");
        }
    }
}

impl PostgresStore {
    pub(crate) async fn deliver_and_queue(
        &self,
        local_folders: Vec<i64>,
        outgoing: Outgoing,
        message: Arc<RawMessage>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Appended>, i64), StoreError> {
        let (appended, queue_id) = transaction!(self, |c| {
            async {
                let body_id = put_body(c, &message).await?;
                let appended = file_in(c, &local_folders, body_id, message.len(), now).await?;
                let queue_id: i64 = sqlx::query_scalar(
                    "INSERT INTO queue (body_id, sender, created_at, next_attempt_at, envid, ret_full)
                     VALUES ($1, $2, $3, $3, $4, $5) RETURNING id",
                )
                .bind(body_id)
                .bind(&outgoing.sender)
                .bind(now.timestamp())
                .bind(&outgoing.envid)
                .bind(outgoing.ret_full)
                .fetch_one(&mut *c)
                .await?;
                for r in &outgoing.recipients {
                    sqlx::query(
                        "INSERT INTO queue_recipients (queue_id, recipient, domain, notify, orcpt)
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(queue_id)
                    .bind(&r.address)
                    .bind(&r.domain)
                    .bind(&r.notify)
                    .bind(&r.orcpt)
                    .execute(&mut *c)
                    .await?;
                }
                Ok::<_, StoreError>((appended, queue_id))
            }
            .await
        })?;
        self.notify(&changed_by(&appended)).await;
        Ok((appended, queue_id))
    }

    /// Claims due messages for this node (see the module's comment): those no node
    /// holds, those whose lease ran out, and this node's own (its runner skips the ones
    /// it is still sending).
    pub(crate) async fn queue_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let node = self.node.clone();
        let rows = transaction!(self, |c| {
            sqlx::query(
                "UPDATE queue SET lease_holder = $1, lease_until = $2 + $3
                  WHERE id IN (SELECT id FROM queue
                                WHERE next_attempt_at <= $2
                                  AND (lease_until IS NULL OR lease_until <= $2
                                       OR lease_holder = $1)
                                ORDER BY next_attempt_at, id LIMIT $4
                                FOR UPDATE SKIP LOCKED)
                  RETURNING id, body_id, sender, created_at, attempts, envid, ret_full,
                            next_attempt_at",
            )
            .bind(&*node)
            .bind(now.timestamp())
            .bind(self.lease_secs)
            .bind(i64::from(limit))
            .fetch_all(&mut *c)
            .await
            .map_err(StoreError::from)
        })?;
        let mut claimed = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("next_attempt_at")?,
                    QueuedMessage {
                        id: r.try_get("id")?,
                        body_id: r.try_get("body_id")?,
                        sender: r.try_get("sender")?,
                        created_at: from_unix(r.try_get("created_at")?),
                        attempts: u32::try_from(r.try_get::<i64, _>("attempts")?)
                            .unwrap_or(u32::MAX),
                        envid: r.try_get("envid")?,
                        ret_full: r.try_get("ret_full")?,
                        recipients: Vec::new(),
                    },
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // RETURNING gives no order: oldest first, as the contract says.
        claimed.sort_by_key(|(due, m)| (*due, m.id));
        let ids: Vec<i64> = claimed.iter().map(|(_, m)| m.id).collect();
        let recipients = sqlx::query(
            "SELECT id, queue_id, recipient, domain, notify, orcpt, last_error FROM queue_recipients
              WHERE queue_id = ANY($1) AND status = 'pending' ORDER BY id",
        )
        .bind(&ids)
        .fetch_all(self.reader())
        .await?;
        let mut out: Vec<QueuedMessage> = claimed.into_iter().map(|(_, m)| m).collect();
        for q in &recipients {
            let queue_id: i64 = q.try_get("queue_id")?;
            if let Some(m) = out.iter_mut().find(|m| m.id == queue_id) {
                m.recipients.push(QueuedRecipient {
                    id: q.try_get("id")?,
                    address: q.try_get("recipient")?,
                    domain: q.try_get("domain")?,
                    notify: q.try_get("notify")?,
                    orcpt: q.try_get("orcpt")?,
                    last_error: q.try_get("last_error")?,
                });
            }
        }
        Ok(out)
    }

    /// Lets go of every message this node has claimed and not settled.
    pub(super) async fn release_queue_leases(&self) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE queue SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1",
        )
        .bind(&*self.node)
        .execute(self.reader())
        .await?;
        Ok(())
    }

    pub(crate) async fn inbox_of(
        &self,
        address: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT m.address, f.id FROM mailboxes m
             JOIN folders f ON f.mailbox_id = m.id AND f.name = 'INBOX'
             WHERE lower(m.address) = lower($1)",
        )
        .bind(address)
        .fetch_optional(self.reader())
        .await?;
        Ok(row)
    }

    pub(crate) async fn queue_len(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue")
            .fetch_one(self.reader())
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(crate) async fn queue_oldest(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> = sqlx::query_scalar("SELECT MIN(created_at) FROM queue")
            .fetch_one(self.reader())
            .await?;
        Ok(at.map(from_unix))
    }

    pub(crate) async fn queue_settle(&self, s: QueueSettlement) -> Result<(), StoreError> {
        let appended = transaction!(self, |c| {
            async {
                for id in &s.delivered {
                    sqlx::query(
                        "UPDATE queue_recipients SET status = 'delivered', last_error = NULL
                         WHERE id = $1 AND queue_id = $2",
                    )
                    .bind(id)
                    .bind(s.queue_id)
                    .execute(&mut *c)
                    .await?;
                }
                for (id, why) in &s.failed {
                    sqlx::query(
                        "UPDATE queue_recipients SET status = 'failed', last_error = $1
                         WHERE id = $2 AND queue_id = $3",
                    )
                    .bind(why)
                    .bind(id)
                    .bind(s.queue_id)
                    .execute(&mut *c)
                    .await?;
                }
                for (id, why) in &s.deferred {
                    sqlx::query(
                        "UPDATE queue_recipients SET last_error = $1 WHERE id = $2 AND queue_id = $3",
                    )
                    .bind(why)
                    .bind(id)
                    .bind(s.queue_id)
                    .execute(&mut *c)
                    .await?;
                }
                let now = s.now;
                let mut appended = Vec::new();
                if let Some((folders, notice)) = &s.notice {
                    let body_id = put_body(c, notice).await?;
                    appended = file_in(c, folders, body_id, notice.len(), now).await?;
                }
                let pending: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM queue_recipients WHERE queue_id = $1 AND status = 'pending'",
                )
                .bind(s.queue_id)
                .fetch_one(&mut *c)
                .await?;
                if pending == 0 {
                    let body: Option<i64> =
                        sqlx::query_scalar("DELETE FROM queue WHERE id = $1 RETURNING body_id")
                            .bind(s.queue_id)
                            .fetch_optional(&mut *c)
                            .await?;
                    if let Some(body) = body {
                        delete_orphan_bodies(c, &[body]).await?;
                    }
                } else {
                    let next = s.next_attempt_at.unwrap_or(now);
                    sqlx::query(
                        "UPDATE queue SET attempts = attempts + 1, next_attempt_at = $1,
                            lease_holder = NULL, lease_until = NULL
                         WHERE id = $2",
                    )
                    .bind(next.timestamp())
                    .bind(s.queue_id)
                    .execute(&mut *c)
                    .await?;
                }
                Ok::<_, StoreError>(appended)
            }
            .await
        })?;
        self.notify(&changed_by(&appended)).await;
        Ok(())
    }
}
