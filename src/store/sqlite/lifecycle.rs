//! What the lifecycle jobs read and change: candidates for each rule, the conditional
//! state changes, notices, deletion and the run lease.
//!
//! Every selection is one indexed query over "last activity"
//! (`COALESCE(last_authenticated_at, created_at)`, the expression the indexes are built
//! on), and every change is a conditional statement run in the writer, so the caller acts
//! only on the rows that really changed.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use super::mailboxes::mailbox_from_row;
use super::messages::{delete_orphan_bodies, file_in, put_body};
use super::usage::record_events;
use crate::store::error::StoreError;
use crate::store::lifecycle::{DeletedMailbox, Notice, SentNotice};
use crate::store::types::{Appended, Mailbox, RawMessage, from_unix};

/// The list of ids as a JSON array, for `IN (SELECT value FROM json_each(?))`: one bound
/// parameter whatever the number of ids.
fn id_list(ids: &[i64]) -> String {
    let mut s = String::with_capacity(ids.len() * 8 + 2);
    s.push('[');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&id.to_string());
    }
    s.push(']');
    s
}

impl SqliteStore {
    // ---- the run lease ----

    pub(crate) async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "INSERT INTO lifecycle_lease (name, holder, expires_at) VALUES (?1, ?2, ?3)
                     ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,
                         expires_at = excluded.expires_at
                     WHERE lifecycle_lease.holder = excluded.holder OR lifecycle_lease.expires_at <= ?4",
                )
                .bind(&name)
                .bind(&holder)
                .bind(until.timestamp())
                .bind(now.timestamp())
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    pub(crate) async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE lifecycle_lease SET expires_at = ? WHERE name = ? AND holder = ?",
                )
                .bind(until.timestamp())
                .bind(&name)
                .bind(&holder)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n > 0)
            })
        })
        .await
    }

    pub(crate) async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let (name, holder) = (name.to_owned(), holder.to_owned());
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query("DELETE FROM lifecycle_lease WHERE name = ? AND holder = ?")
                    .bind(&name)
                    .bind(&holder)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn lease_expiry(
        &self,
        name: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT expires_at FROM lifecycle_lease WHERE name = ?")
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
        sqlx::query(
            "SELECT * FROM mailboxes WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        )
        .bind(id_list(ids))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn red_listed_published(&self) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM mailboxes WHERE published = 1 AND red_list = 1 ORDER BY id",
        )
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn published_inactive(
        &self,
        active_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM mailboxes
                 WHERE published = 1
                   AND COALESCE(last_authenticated_at, created_at) <= ?
                   AND kind IN ('personal', 'organisational')
                   AND created_at <= ?",
        )
        .bind(active_before.timestamp())
        .bind(created_before.timestamp())
        .fetch_all(self.reader())
        .await?;
        // Sorted here: the index scan that finds them returns them by activity.
        ids.sort_unstable();
        Ok(ids)
    }

    pub(crate) async fn published_deletable(
        &self,
        active_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM mailboxes
                 WHERE published = 1
                   AND COALESCE(last_authenticated_at, created_at) <= ?
                   AND hold = 0",
        )
        .bind(active_before.timestamp())
        .fetch_all(self.reader())
        .await?;
        // Sorted here: the index scan that finds them returns them by activity.
        ids.sort_unstable();
        Ok(ids)
    }

    pub(crate) async fn publishable(
        &self,
        inactive_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let mut ids: Vec<i64> = sqlx::query_scalar(
            // Three indexed searches rather than one scan of every unpublished mailbox:
            // active again, young, or applicative (the ways out of the inactivity rule).
            "SELECT id FROM mailboxes
             WHERE published = 0 AND red_list = 0
               AND COALESCE(last_authenticated_at, created_at) > ?2
               AND NOT (hold = 0 AND COALESCE(last_authenticated_at, created_at) <= ?3)
             UNION
             SELECT id FROM mailboxes
             WHERE published = 0 AND red_list = 0
               AND kind IN ('personal', 'organisational') AND created_at > ?1
               AND NOT (hold = 0 AND COALESCE(last_authenticated_at, created_at) <= ?3)
             UNION
             SELECT id FROM mailboxes
             WHERE published = 0 AND red_list = 0 AND kind = 'applicative'
               AND NOT (hold = 0 AND COALESCE(last_authenticated_at, created_at) <= ?3)",
        )
        .bind(created_before.timestamp())
        .bind(inactive_before.timestamp())
        .bind(delete_before.timestamp())
        .fetch_all(self.reader())
        .await?;
        // Sorted here: the index scan that finds them returns them by activity.
        ids.sort_unstable();
        Ok(ids)
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
             WHERE COALESCE(m.last_authenticated_at, m.created_at) <= ?1
               AND COALESCE(m.last_authenticated_at, m.created_at) > ?2
               AND m.hold = 0
               AND NOT EXISTS (SELECT 1 FROM lifecycle_notices n
                               WHERE n.mailbox_id = m.id AND n.kind = ?3
                                 AND n.cycle = COALESCE(m.last_authenticated_at, m.created_at))",
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
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM mailboxes
                 WHERE COALESCE(last_authenticated_at, created_at) <= ? AND hold = 0",
        )
        .bind(active_before.timestamp())
        .fetch_all(self.reader())
        .await?;
        // Sorted here: the index scan that finds them returns them by activity.
        ids.sort_unstable();
        Ok(ids)
    }

    // ---- state changes ----

    pub(crate) async fn mark_published(
        &self,
        ids: &[i64],
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let list = id_list(ids);
        self.write(move |c| {
            Box::pin(async move {
                let changed: Vec<i64> = sqlx::query_scalar(
                    "UPDATE mailboxes SET published = 1, unpublished_at = NULL
                     WHERE id IN (SELECT value FROM json_each(?)) AND published = 0
                     RETURNING id",
                )
                .bind(&list)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &id_list(&changed), "published", now).await?;
                Ok(changed)
            })
        })
        .await
    }

    pub(crate) async fn mark_unpublished(
        &self,
        ids: &[i64],
        at: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let list = id_list(ids);
        self.write(move |c| {
            Box::pin(async move {
                let changed: Vec<i64> = sqlx::query_scalar(
                    "UPDATE mailboxes SET published = 0, unpublished_at = ?
                     WHERE id IN (SELECT value FROM json_each(?)) AND published = 1
                     RETURNING id",
                )
                .bind(at.timestamp())
                .bind(&list)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &id_list(&changed), "unpublished", at).await?;
                Ok(changed)
            })
        })
        .await
    }

    pub(crate) async fn send_notice(&self, notice: Notice) -> Result<bool, StoreError> {
        let raw = Arc::new(RawMessage::new(&notice.message));
        let delivered = self
            .write(move |c| Box::pin(async move { send_notice_in(c, &notice, &raw).await }))
            .await?;
        let sent = delivered.is_some();
        for a in delivered.into_iter().flatten() {
            self.notify(a.folder_id, a.modseq as i64);
        }
        Ok(sent)
    }

    pub(crate) async fn notices(&self, mailbox_id: i64) -> Result<Vec<SentNotice>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, cycle, sent_at FROM lifecycle_notices WHERE mailbox_id = ?
             ORDER BY sent_at, kind",
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
        let reason = reason.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let victims: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, address FROM mailboxes
                     WHERE COALESCE(last_authenticated_at, created_at) <= ?
                       AND hold = 0 AND published = 0
                     LIMIT ?",
                )
                .bind(active_before.timestamp())
                .bind(i64::from(limit))
                .fetch_all(&mut *c)
                .await?;
                if victims.is_empty() {
                    return Ok(Vec::new());
                }
                let list = id_list(&victims.iter().map(|(id, _)| *id).collect::<Vec<_>>());
                let bodies: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT m.body_id FROM messages m JOIN folders f ON f.id = m.folder_id
                     WHERE f.mailbox_id IN (SELECT value FROM json_each(?))",
                )
                .bind(&list)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &list, "deleted", at).await?;
                sqlx::query("DELETE FROM mailboxes WHERE id IN (SELECT value FROM json_each(?))")
                    .bind(&list)
                    .execute(&mut *c)
                    .await?;
                delete_orphan_bodies(c, &bodies).await?;
                for (_, address) in &victims {
                    sqlx::query(
                        "INSERT INTO audit (at, protocol, mailbox, outcome, reason)
                         VALUES (?, 'lifecycle', ?, 'success', ?)",
                    )
                    .bind(at.timestamp())
                    .bind(address)
                    .bind(&reason)
                    .execute(&mut *c)
                    .await?;
                }
                Ok(victims
                    .into_iter()
                    .map(|(id, address)| DeletedMailbox { id, address })
                    .collect())
            })
        })
        .await
    }
}

/// The body of `send_notice`, on the writer's connection. `None` when nothing was sent.
async fn send_notice_in(
    c: &mut SqliteConnection,
    notice: &Notice,
    raw: &RawMessage,
) -> Result<Option<Vec<Appended>>, StoreError> {
    let state: Option<(i64, bool)> = sqlx::query_as(
        "SELECT COALESCE(last_authenticated_at, created_at), hold FROM mailboxes WHERE id = ?",
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
            "INSERT OR IGNORE INTO lifecycle_notices (mailbox_id, kind, cycle, sent_at)
             VALUES (?, ?, ?, ?)",
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
        sqlx::query_scalar("SELECT id FROM folders WHERE mailbox_id = ? AND name = 'INBOX'")
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
             VALUES (?, '', ?, ?) RETURNING id",
        )
        .bind(body_id)
        .bind(notice.at.timestamp())
        .bind(notice.at.timestamp())
        .fetch_one(&mut *c)
        .await?;
        for address in remote {
            let domain = address
                .rsplit_once('@')
                .map(|(_, d)| d.to_ascii_lowercase())
                .ok_or_else(|| StoreError::BadAddress(address.clone()))?;
            sqlx::query(
                "INSERT INTO queue_recipients (queue_id, recipient, domain) VALUES (?, ?, ?)",
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
            "UPDATE mailboxes SET deletion_warned_at = COALESCE(deletion_warned_at, ?) WHERE id = ?",
        )
        .bind(notice.at.timestamp())
        .bind(notice.mailbox_id)
        .execute(&mut *c)
        .await?;
    }
    Ok(Some(appended))
}

#[cfg(test)]
mod tests {
    use super::id_list;

    #[test]
    fn id_lists_are_json_arrays() {
        assert_eq!(id_list(&[]), "[]");
        assert_eq!(id_list(&[7]), "[7]");
        assert_eq!(id_list(&[1, -2, 30]), "[1,-2,30]");
    }
}
