//! The outbound queue: mail accepted for other operators' domains, kept until their
//! server takes it, a permanent failure, or `smtp.queue_max_lifetime`.
//!
//! A message is queued in the same transaction that stores its body and delivers its
//! local copies, so a `250` covers every recipient at once; a recipient is marked
//! delivered only after the remote server's `250`, in the transaction that also files
//! any delivery status notification.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use super::messages::{delete_orphan_bodies, file_in, put_body};
use crate::store::error::StoreError;
use crate::store::queue::{Outgoing, QueueSettlement, QueuedMessage, QueuedRecipient};
use crate::store::types::{Appended, RawMessage, from_unix};

impl SqliteStore {
    pub(crate) async fn deliver_and_queue(
        &self,
        local_folders: Vec<i64>,
        outgoing: Outgoing,
        message: Arc<RawMessage>,
        now: DateTime<Utc>,
    ) -> Result<(Vec<Appended>, i64), StoreError> {
        let (appended, queue_id) = self
            .write(move |c| {
                Box::pin(async move {
                    let body_id = put_body(c, &message).await?;
                    let appended = file_in(c, &local_folders, body_id, message.len(), now).await?;
                    let queue_id: i64 = sqlx::query_scalar(
                        "INSERT INTO queue (body_id, sender, created_at, next_attempt_at, envid, ret_full)
                         VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(body_id)
                    .bind(&outgoing.sender)
                    .bind(now.timestamp())
                    .bind(now.timestamp())
                    .bind(&outgoing.envid)
                    .bind(outgoing.ret_full)
                    .fetch_one(&mut *c)
                    .await?;
                    for r in &outgoing.recipients {
                        sqlx::query(
                            "INSERT INTO queue_recipients (queue_id, recipient, domain, notify, orcpt)
                             VALUES (?, ?, ?, ?, ?)",
                        )
                        .bind(queue_id)
                        .bind(&r.address)
                        .bind(&r.domain)
                        .bind(&r.notify)
                        .bind(&r.orcpt)
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok((appended, queue_id))
                })
            })
            .await?;
        for a in &appended {
            self.notify(a.folder_id, a.modseq as i64);
        }
        Ok((appended, queue_id))
    }

    pub(crate) async fn queue_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, body_id, sender, created_at, attempts, envid, ret_full FROM queue
             WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?",
        )
        .bind(now.timestamp())
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let recipients = sqlx::query(
                "SELECT id, recipient, domain, notify, orcpt, last_error FROM queue_recipients
                 WHERE queue_id = ? AND status = 'pending' ORDER BY id",
            )
            .bind(id)
            .fetch_all(self.reader())
            .await?
            .iter()
            .map(|q| {
                Ok(QueuedRecipient {
                    id: q.try_get("id")?,
                    address: q.try_get("recipient")?,
                    domain: q.try_get("domain")?,
                    notify: q.try_get("notify")?,
                    orcpt: q.try_get("orcpt")?,
                    last_error: q.try_get("last_error")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
            out.push(QueuedMessage {
                id,
                body_id: r.try_get("body_id")?,
                sender: r.try_get("sender")?,
                created_at: from_unix(r.try_get("created_at")?),
                attempts: u32::try_from(r.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
                envid: r.try_get("envid")?,
                ret_full: r.try_get("ret_full")?,
                recipients,
            });
        }
        Ok(out)
    }

    pub(crate) async fn inbox_of(
        &self,
        address: &str,
    ) -> Result<Option<(String, i64)>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT m.address, f.id FROM mailboxes m
             JOIN folders f ON f.mailbox_id = m.id AND f.name = 'INBOX'
             WHERE m.address = ?",
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
        let appended = self
            .write(move |c| {
                Box::pin(async move {
                    for id in &s.delivered {
                        sqlx::query(
                            "UPDATE queue_recipients SET status = 'delivered', last_error = NULL
                             WHERE id = ? AND queue_id = ?",
                        )
                        .bind(id)
                        .bind(s.queue_id)
                        .execute(&mut *c)
                        .await?;
                    }
                    for (id, why) in &s.failed {
                        sqlx::query(
                            "UPDATE queue_recipients SET status = 'failed', last_error = ?
                             WHERE id = ? AND queue_id = ?",
                        )
                        .bind(why)
                        .bind(id)
                        .bind(s.queue_id)
                        .execute(&mut *c)
                        .await?;
                    }
                    for (id, why) in &s.deferred {
                        sqlx::query(
                            "UPDATE queue_recipients SET last_error = ? WHERE id = ? AND queue_id = ?",
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
                        "SELECT COUNT(*) FROM queue_recipients WHERE queue_id = ? AND status = 'pending'",
                    )
                    .bind(s.queue_id)
                    .fetch_one(&mut *c)
                    .await?;
                    if pending == 0 {
                        let body: Option<i64> =
                            sqlx::query_scalar("DELETE FROM queue WHERE id = ? RETURNING body_id")
                                .bind(s.queue_id)
                                .fetch_optional(&mut *c)
                                .await?;
                        if let Some(body) = body {
                            delete_orphan_bodies(c, &[body]).await?;
                        }
                    } else {
                        let next = s.next_attempt_at.unwrap_or(now);
                        sqlx::query(
                            "UPDATE queue SET attempts = attempts + 1, next_attempt_at = ? WHERE id = ?",
                        )
                        .bind(next.timestamp())
                        .bind(s.queue_id)
                        .execute(&mut *c)
                        .await?;
                    }
                    Ok(appended)
                })
            })
            .await?;
        for a in &appended {
            self.notify(a.folder_id, a.modseq as i64);
        }
        Ok(())
    }
}
