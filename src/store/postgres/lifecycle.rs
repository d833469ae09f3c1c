//! What the lifecycle jobs read and change on PostgreSQL: candidates for each rule, the
//! conditional state changes, notices, deletion and the run lease (see the SQLite
//! backend's `lifecycle` for the reasoning; the queries are the same).

use super::usage::record_events;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::mailboxes::{mailbox_columns, mailbox_from_row};
use super::messages::{changed_by, delete_orphan_bodies, file_in, put_body};
use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::lifecycle::{DeletedMailbox, Notice, SentNotice};
use crate::store::types::{Appended, Mailbox, RawMessage, from_unix};

impl PostgresStore {
    // ---- the run lease ----

    pub(crate) async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        transaction!(self, |c| {
            sqlx::query(
                "INSERT INTO lifecycle_lease (name, holder, expires_at) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                     expires_at = excluded.expires_at
                 WHERE lifecycle_lease.holder = excluded.holder OR lifecycle_lease.expires_at <= $4",
            )
            .bind(name)
            .bind(holder)
            .bind(until.timestamp())
            .bind(now.timestamp())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(StoreError::from)
        })
    }

    pub(crate) async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        transaction!(self, |c| {
            sqlx::query(
                "UPDATE lifecycle_lease SET expires_at = $1 WHERE name = $2 AND holder = $3",
            )
            .bind(until.timestamp())
            .bind(name)
            .bind(holder)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(StoreError::from)
        })
    }

    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        transaction!(self, |c| {
            sqlx::query("DELETE FROM lifecycle_lease WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }

    pub(crate) async fn lease_expiry(
        &self,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM lifecycle_lease WHERE name = $1")
                .bind(name)
                .fetch_optional(self.reader())
                .await?;
        Ok(at.map(from_unix))
    }

    // ---- candidates ----

    pub(crate) async fn mailboxes_by_ids(&self, ids: &[i64]) -> Result<Vec<Mailbox>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE id = ANY($1) ORDER BY id"
        ))
        .bind(ids)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn red_listed_published(&self) -> Result<Vec<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM mailboxes WHERE published AND red_list ORDER BY id")
                .fetch_all(self.reader())
                .await?,
        )
    }

    pub(crate) async fn published_inactive(
        &self,
        active_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM mailboxes
              WHERE published
                AND COALESCE(last_authenticated_at, created_at) <= $1
                AND kind IN ('personal', 'organisational')
                AND created_at <= $2
              ORDER BY id",
        )
        .bind(active_before.timestamp())
        .bind(created_before.timestamp())
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn published_deletable(
        &self,
        active_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM mailboxes
              WHERE published AND COALESCE(last_authenticated_at, created_at) <= $1
                AND NOT hold
              ORDER BY id",
        )
        .bind(active_before.timestamp())
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn publishable(
        &self,
        inactive_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM mailboxes
             WHERE NOT published AND NOT red_list
               AND COALESCE(last_authenticated_at, created_at) > $2
               AND NOT (NOT hold AND COALESCE(last_authenticated_at, created_at) <= $3)
             UNION
             SELECT id FROM mailboxes
             WHERE NOT published AND NOT red_list
               AND kind IN ('personal', 'organisational') AND created_at > $1
               AND NOT (NOT hold AND COALESCE(last_authenticated_at, created_at) <= $3)
             UNION
             SELECT id FROM mailboxes
             WHERE NOT published AND NOT red_list AND kind = 'applicative'
               AND NOT (NOT hold AND COALESCE(last_authenticated_at, created_at) <= $3)
             ORDER BY id",
        )
        .bind(created_before.timestamp())
        .bind(inactive_before.timestamp())
        .bind(delete_before.timestamp())
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn deletion_warnings_due(
        &self,
        kind: &str,
        warn_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT m.id, COALESCE(m.last_authenticated_at, m.created_at) AS cycle
             FROM mailboxes m
             WHERE COALESCE(m.last_authenticated_at, m.created_at) <= $1
               AND COALESCE(m.last_authenticated_at, m.created_at) > $2
               AND NOT m.hold
               AND NOT EXISTS (SELECT 1 FROM lifecycle_notices n
                               WHERE n.mailbox_id = m.id AND n.kind = $3
                                 AND n.cycle = COALESCE(m.last_authenticated_at, m.created_at))
             ORDER BY m.id",
        )
        .bind(warn_before.timestamp())
        .bind(delete_before.timestamp())
        .bind(kind)
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn deletable(
        &self,
        active_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM mailboxes
              WHERE COALESCE(last_authenticated_at, created_at) <= $1 AND NOT hold
              ORDER BY id",
        )
        .bind(active_before.timestamp())
        .fetch_all(self.reader())
        .await?)
    }

    // ---- state changes ----

    pub(crate) async fn mark_published(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut changed: Vec<i64> = transaction!(self, |c| {
            async {
                let changed: Vec<i64> = sqlx::query_scalar(
                    "UPDATE mailboxes SET published = TRUE, unpublished_at = NULL
                      WHERE id = ANY($1) AND NOT published RETURNING id",
                )
                .bind(ids)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &changed, "published", now).await?;
                Ok::<_, StoreError>(changed)
            }
            .await
        })?;
        changed.sort_unstable();
        Ok(changed)
    }

    pub(crate) async fn mark_unpublished(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut changed: Vec<i64> = transaction!(self, |c| {
            async {
                let changed: Vec<i64> = sqlx::query_scalar(
                    "UPDATE mailboxes SET published = FALSE, unpublished_at = $1
                      WHERE id = ANY($2) AND published RETURNING id",
                )
                .bind(at.timestamp())
                .bind(ids)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &changed, "unpublished", at).await?;
                Ok::<_, StoreError>(changed)
            }
            .await
        })?;
        changed.sort_unstable();
        Ok(changed)
    }

    pub(crate) async fn send_notice(&self, notice: Notice) -> Result<bool, StoreError> {
        let raw = Arc::new(RawMessage::new(&notice.message));
        let delivered = transaction!(self, |c| {
            async {
                let delivered = send_notice_in(c, &notice, &raw).await?;
                Ok::<_, StoreError>(delivered)
            }
            .await
        })?;
        let sent = delivered.is_some();
        if let Some(appended) = delivered {
            self.notify(&changed_by(&appended)).await;
        }
        Ok(sent)
    }

    pub(crate) async fn notices(&self, mailbox_id: i64) -> Result<Vec<SentNotice>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, cycle, sent_at FROM lifecycle_notices WHERE mailbox_id = $1
             ORDER BY sent_at, kind COLLATE \"C\"",
        )
        .bind(mailbox_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SentNotice {
                    kind: r.try_get("kind")?,
                    cycle: r.try_get("cycle")?,
                    sent_at: from_unix(r.try_get("sent_at")?),
                })
            })
            .collect()
    }

    pub(crate) async fn delete_inactive(
        &self,
        active_before: DateTime<Utc>,
        at: DateTime<Utc>,
        reason: &str,
        limit: u32,
    ) -> Result<Vec<DeletedMailbox>, StoreError> {
        transaction!(self, |c| {
            async {
                let victims: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, address FROM mailboxes
                     WHERE COALESCE(last_authenticated_at, created_at) <= $1
                       AND NOT hold AND NOT published
                     ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                )
                .bind(active_before.timestamp())
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?;
                if victims.is_empty() {
                    return Ok(Vec::new());
                }
                let ids: Vec<i64> = victims.iter().map(|(id, _)| *id).collect();
                let bodies: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT m.body_id FROM messages m JOIN folders f ON f.id = m.folder_id
                     WHERE f.mailbox_id = ANY($1)",
                )
                .bind(&ids)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &ids, "deleted", at).await?;
                sqlx::query("DELETE FROM mailboxes WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *c)
                    .await?;
                delete_orphan_bodies(c, &bodies).await?;
                for (_, address) in &victims {
                    sqlx::query(
                        "INSERT INTO audit (at, protocol, mailbox, outcome, reason)
                         VALUES ($1, 'lifecycle', $2, 'success', $3)",
                    )
                    .bind(at.timestamp())
                    .bind(address)
                    .bind(reason)
                    .execute(&mut *c)
                    .await?;
                }
                Ok::<_, StoreError>(
                    victims
                        .into_iter()
                        .map(|(id, address)| DeletedMailbox { id, address })
                        .collect(),
                )
            }
            .await
        })
    }
}

/// The body of `send_notice`, in its transaction. `None` when nothing was sent.
async fn send_notice_in(
    c: &mut PgConnection,
    notice: &Notice,
    raw: &RawMessage,
) -> Result<Option<Vec<Appended>>, StoreError> {
    let state: Option<(i64, bool)> = sqlx::query_as(
        "SELECT COALESCE(last_authenticated_at, created_at), hold FROM mailboxes WHERE id = $1",
    )
    .bind(notice.mailbox_id)
    .fetch_optional(&mut *c)
    .await?;
    let Some((activity, hold)) = state else {
        return Ok(None);
    };
    if notice.deletion_warning && (activity != notice.cycle || hold) {
        return Ok(None);
    }
    let mut recorded = 0;
    for kind in &notice.kinds {
        recorded += sqlx::query(
            "INSERT INTO lifecycle_notices (mailbox_id, kind, cycle, sent_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(notice.mailbox_id)
        .bind(kind)
        .bind(notice.cycle)
        .bind(notice.at.timestamp())
        .execute(&mut *c)
        .await?
        .rows_affected();
    }
    if recorded == 0 {
        return Ok(None);
    }
    let inbox: i64 =
        sqlx::query_scalar("SELECT id FROM folders WHERE mailbox_id = $1 AND name = 'INBOX'")
            .bind(notice.mailbox_id)
            .fetch_optional(&mut *c)
            .await?
            .ok_or(StoreError::NoFolder)?;
    let body_id = put_body(c, raw).await?;
    let (folders, remote) = notice.destinations(inbox);
    let appended = file_in(c, &folders, body_id, raw.len(), notice.at).await?;
    if !remote.is_empty() {
        // The null reverse path: an automatic notice must not bounce back (RFC 3834).
        let queue_id: i64 = sqlx::query_scalar(
            "INSERT INTO queue (body_id, sender, created_at, next_attempt_at)
             VALUES ($1, '', $2, $2) RETURNING id",
        )
        .bind(body_id)
        .bind(notice.at.timestamp())
        .fetch_one(&mut *c)
        .await?;
        for address in remote {
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .ok_or_else(|| StoreError::BadAddress(address.clone()))?;
            sqlx::query(
                "INSERT INTO queue_recipients (queue_id, recipient, domain) VALUES ($1, $2, $3)",
            )
            .bind(queue_id)
            .bind(&address)
            .bind(domain)
            .execute(&mut *c)
            .await?;
        }
    }
    if notice.deletion_warning {
        sqlx::query(
            "UPDATE mailboxes SET deletion_warned_at = COALESCE(deletion_warned_at, $1)
              WHERE id = $2",
        )
        .bind(notice.at.timestamp())
        .bind(notice.mailbox_id)
        .execute(&mut *c)
        .await?;
    }
    Ok(Some(appended))
}
