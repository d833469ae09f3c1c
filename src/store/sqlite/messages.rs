//! Messages in folders: append, delivery, flags, copy/move, expunge, reads.
//!
//! Every change takes the folder's next MODSEQ in the same transaction as the change
//! itself, and UIDs come from the folder row, so they are strictly increasing and never
//! handed out twice, whatever crashes in between.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::append::{AppendFailure, NewAppend, append_rows};
use super::{SqliteStore, quota, writer};
use crate::store::error::{StoreError, stored};
use crate::store::types::{
    Appended, Copied, Expunged, FlagOp, Flags, FolderCounts, MessageMeta, NewMessage, RawMessage,
    StoreOutcome, flag, from_unix,
};

macro_rules! meta_columns {
    () => {
        "uid, modseq, system_flags, keywords, internal_date, size, body_id"
    };
}

pub(super) fn meta_from_row(r: &SqliteRow) -> Result<MessageMeta, StoreError> {
    let keywords: String = r.try_get("keywords")?;
    Ok(MessageMeta {
        uid: stored(r.try_get("uid")?, "uid")?,
        modseq: stored(r.try_get("modseq")?, "modseq")?,
        flags: Flags::from_columns(r.try_get("system_flags")?, &keywords),
        internal_date: from_unix(r.try_get("internal_date")?),
        size: u32::try_from(r.try_get::<i64, _>("size")?).unwrap_or(u32::MAX),
        body_id: r.try_get("body_id")?,
    })
}

/// Stores a body, its search text and its structure, unless an identical one is there; returns its id.
pub(super) async fn put_body(
    c: &mut SqliteConnection,
    raw: &RawMessage,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bodies (sha256, size, header, content) VALUES (?, ?, ?, ?)
         ON CONFLICT (sha256) DO UPDATE SET size = excluded.size RETURNING id",
    )
    .bind(&raw.sha256[..])
    .bind(raw.len() as i64)
    .bind(&raw.header)
    .bind(&raw.content)
    .fetch_one(&mut *c)
    .await?;
    super::body_search::index_body(c, id, &raw.search).await?;
    super::structures::put_structure(c, id, crate::structure::VERSION, &raw.structure).await?;
    Ok(id)
}

/// Takes the folder's next UID (if `uids` > 0) and next MODSEQ.
/// Returns (uidvalidity, first uid, modseq).
async fn bump_folder(
    c: &mut SqliteConnection,
    folder_id: i64,
    uids: u32,
) -> Result<(u32, u32, u64), StoreError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "UPDATE folders SET uidnext = uidnext + ?, highestmodseq = highestmodseq + 1
         WHERE id = ? RETURNING uidvalidity, uidnext - ?, highestmodseq",
    )
    .bind(i64::from(uids))
    .bind(folder_id)
    .bind(i64::from(uids))
    .fetch_optional(&mut *c)
    .await?;
    let (validity, first, modseq) = row.ok_or(StoreError::NoFolder)?;
    let first = u32::try_from(first).map_err(|_| StoreError::UidsExhausted)?;
    if first.checked_add(uids).is_none() {
        return Err(StoreError::UidsExhausted);
    }
    Ok((
        stored(validity, "uidvalidity")?,
        first,
        stored(modseq, "highestmodseq")?,
    ))
}

/// One row of `messages`, before it is written.
struct NewRow<'a> {
    folder_id: i64,
    uid: u32,
    modseq: u64,
    flags: &'a Flags,
    internal_date: i64,
    size: i64,
    body_id: i64,
}

async fn insert_message(c: &mut SqliteConnection, row: NewRow<'_>) -> Result<(), StoreError> {
    let NewRow {
        folder_id,
        uid,
        modseq,
        flags,
        internal_date,
        size,
        body_id,
    } = row;
    sqlx::query(
        "INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(folder_id)
    .bind(i64::from(uid))
    .bind(modseq as i64)
    .bind(i64::from(flags.system))
    .bind(flags.keywords_text())
    .bind(internal_date)
    .bind(size)
    .bind(body_id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// One message row per folder for a body already stored.
pub(super) async fn file_in(
    c: &mut SqliteConnection,
    folders: &[i64],
    body_id: i64,
    size: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, StoreError> {
    let mut out = Vec::with_capacity(folders.len());
    for &folder_id in folders {
        let (uidvalidity, uid, modseq) = bump_folder(c, folder_id, 1).await?;
        let row = NewRow {
            folder_id,
            uid,
            modseq,
            flags: &Flags::default(),
            internal_date: now.timestamp(),
            size: size as i64,
            body_id,
        };
        insert_message(c, row).await?;
        out.push(Appended {
            folder_id,
            uidvalidity,
            uid,
            modseq,
        });
    }
    Ok(out)
}

/// Removes the given bodies if no message and no queued mail refers to them any more.
pub(super) async fn delete_orphan_bodies(
    c: &mut SqliteConnection,
    bodies: &[i64],
) -> Result<(), StoreError> {
    for id in bodies {
        sqlx::query(
            "DELETE FROM bodies WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = ?1)
               AND NOT EXISTS (SELECT 1 FROM queue WHERE body_id = ?1)",
        )
        .bind(id)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

impl SqliteStore {
    /// One message, batched by the writer with its neighbours (module `append`);
    /// `quota` says whether the mailbox's limits apply.
    pub(crate) async fn append(
        &self,
        folder_id: i64,
        message: &[u8],
        flags: Flags,
        internal_date: DateTime<Utc>,
        quota: bool,
    ) -> Result<Appended, StoreError> {
        let (job, rx) = writer::append(NewAppend {
            folder_id,
            raw: RawMessage::new(message),
            flags,
            internal_date: internal_date.timestamp(),
            quota,
        });
        let appended = self.submit_job(job, rx).await?;
        self.notify(folder_id, appended.modseq as i64);
        Ok(appended)
    }

    /// All in one write job, one row at a time so that each is checked against the
    /// limits with those before it counted; a refusal rolls the job back.
    pub(crate) async fn append_many(
        &self,
        folder_id: i64,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, StoreError> {
        let rows: Vec<NewAppend> = messages
            .into_iter()
            .map(|m| NewAppend {
                folder_id,
                raw: RawMessage::new(&m.message),
                flags: m.flags,
                internal_date: m.internal_date.timestamp(),
                quota: true,
            })
            .collect();
        let appended = self
            .write(move |c| {
                Box::pin(async move {
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        match append_rows(c, &[row]).await {
                            Ok(one) => out.extend(one),
                            Err(AppendFailure::Statement(e) | AppendFailure::Transaction(e)) => {
                                return Err(e);
                            }
                        }
                    }
                    Ok(out)
                })
            })
            .await?;
        if let Some(last) = appended.last() {
            self.notify(folder_id, last.modseq as i64);
        }
        Ok(appended)
    }

    pub(crate) async fn deliver(
        &self,
        folder_ids: Vec<i64>,
        message: Arc<RawMessage>,
        internal_date: DateTime<Utc>,
    ) -> Result<Vec<Appended>, StoreError> {
        let delivered = self
            .write(move |c| {
                Box::pin(async move {
                    let body_id = put_body(c, &message).await?;
                    file_in(c, &folder_ids, body_id, message.len(), internal_date).await
                })
            })
            .await?;
        for a in &delivered {
            self.notify(a.folder_id, a.modseq as i64);
        }
        Ok(delivered)
    }

    pub(crate) async fn messages(&self, folder_id: i64) -> Result<Vec<MessageMeta>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            meta_columns!(),
            " FROM messages WHERE folder_id = ? ORDER BY uid"
        ))
        .bind(folder_id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(meta_from_row)
        .collect()
    }

    pub(crate) async fn messages_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            meta_columns!(),
            " FROM messages WHERE folder_id = ? AND uid BETWEEN ? AND ? ORDER BY uid"
        ))
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(meta_from_row)
        .collect()
    }

    pub(crate) async fn changed_since(
        &self,
        folder_id: i64,
        modseq: u64,
    ) -> Result<Vec<MessageMeta>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            meta_columns!(),
            " FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid"
        ))
        .bind(folder_id)
        .bind(modseq as i64)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(meta_from_row)
        .collect()
    }

    pub(crate) async fn vanished_since(
        &self,
        folder_id: i64,
        modseq: u64,
    ) -> Result<Vec<u32>, StoreError> {
        let uids: Vec<i64> = sqlx::query_scalar(
            "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid",
        )
        .bind(folder_id)
        .bind(modseq as i64)
        .fetch_all(self.reader())
        .await?;
        Ok(uids
            .into_iter()
            .filter_map(|u| u32::try_from(u).ok())
            .collect())
    }

    pub(crate) async fn counts(&self, folder_id: i64) -> Result<FolderCounts, StoreError> {
        let (messages, unseen, deleted, size, deleted_size, recent): (
            i64,
            i64,
            i64,
            i64,
            i64,
            i64,
        ) = sqlx::query_as(
            "SELECT COUNT(*),
                    COALESCE(SUM((system_flags & ?) = 0), 0),
                    COALESCE(SUM((system_flags & ?) <> 0), 0),
                    COALESCE(SUM(size), 0),
                    COALESCE(SUM(CASE WHEN (system_flags & ?) <> 0 THEN size ELSE 0 END), 0),
                    COALESCE(SUM(uid >= (SELECT recent_from FROM folders WHERE id = ?)), 0)
             FROM messages WHERE folder_id = ?",
        )
        .bind(i64::from(flag::SEEN))
        .bind(i64::from(flag::DELETED))
        .bind(i64::from(flag::DELETED))
        .bind(folder_id)
        .bind(folder_id)
        .fetch_one(self.reader())
        .await?;
        Ok(FolderCounts {
            messages: u32::try_from(messages).unwrap_or(u32::MAX),
            unseen: u32::try_from(unseen).unwrap_or(u32::MAX),
            deleted: u32::try_from(deleted).unwrap_or(u32::MAX),
            size: stored(size, "folder size")?,
            deleted_size: stored(deleted_size, "deleted size")?,
            recent: u32::try_from(recent).unwrap_or(u32::MAX),
        })
    }

    pub(crate) async fn body(&self, body_id: i64) -> Result<Vec<u8>, StoreError> {
        let (mut header, content): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT header, content FROM bodies WHERE id = ?")
                .bind(body_id)
                .fetch_optional(self.reader())
                .await?
                .ok_or(StoreError::NoBody(body_id))?;
        header.extend_from_slice(&content);
        Ok(header)
    }

    pub(crate) async fn header(&self, body_id: i64) -> Result<Vec<u8>, StoreError> {
        sqlx::query_scalar("SELECT header FROM bodies WHERE id = ?")
            .bind(body_id)
            .fetch_optional(self.reader())
            .await?
            .ok_or(StoreError::NoBody(body_id))
    }

    pub(crate) async fn headers_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT m.uid, b.header FROM messages m JOIN bodies b ON b.id = m.body_id
             WHERE m.folder_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid",
        )
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch_all(self.reader())
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(u, h)| u32::try_from(u).ok().map(|u| (u, h)))
            .collect())
    }

    pub(crate) async fn store_flags(
        &self,
        folder_id: i64,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreOutcome, StoreError> {
        let outcome = self
            .write(move |c| {
                Box::pin(async move {
                    let mut outcome = StoreOutcome::default();
                    let mut modseq = None;
                    for uid in uids {
                        let row = sqlx::query(
                            "SELECT modseq, system_flags, keywords FROM messages WHERE folder_id = ? AND uid = ?",
                        )
                        .bind(folder_id)
                        .bind(i64::from(uid))
                        .fetch_optional(&mut *c)
                        .await?;
                        let Some(row) = row else { continue };
                        let current: i64 = row.try_get("modseq")?;
                        if unchanged_since.is_some_and(|u| current as u64 > u) {
                            outcome.modified.push(uid);
                            continue;
                        }
                        let keywords: String = row.try_get("keywords")?;
                        let mut f = Flags::from_columns(row.try_get("system_flags")?, &keywords);
                        if !f.apply(op, &flags) {
                            continue;
                        }
                        let m = match modseq {
                            Some(m) => m,
                            None => {
                                let (_, _, m) = bump_folder(c, folder_id, 0).await?;
                                modseq = Some(m);
                                m
                            }
                        };
                        sqlx::query(
                            "UPDATE messages SET system_flags = ?, keywords = ?, modseq = ?
                             WHERE folder_id = ? AND uid = ?",
                        )
                        .bind(i64::from(f.system))
                        .bind(f.keywords_text())
                        .bind(m as i64)
                        .bind(folder_id)
                        .bind(i64::from(uid))
                        .execute(&mut *c)
                        .await?;
                        outcome.changed.push((uid, m, f));
                    }
                    Ok(outcome)
                })
            })
            .await?;
        if let Some((_, m, _)) = outcome.changed.first() {
            self.notify(folder_id, *m as i64);
        }
        Ok(outcome)
    }

    pub(crate) async fn copy(
        &self,
        from_folder: i64,
        uids: Vec<u32>,
        to_folder: i64,
    ) -> Result<Copied, StoreError> {
        let (copied, modseq) = self
            .write(move |c| {
                Box::pin(async move { copy_in(c, from_folder, &uids, to_folder, true).await })
            })
            .await?;
        self.notify(to_folder, modseq as i64);
        Ok(copied)
    }

    pub(crate) async fn move_messages(
        &self,
        from_folder: i64,
        uids: Vec<u32>,
        to_folder: i64,
    ) -> Result<Copied, StoreError> {
        let (copied, to_modseq, from_modseq) = self
            .write(move |c| {
                Box::pin(async move {
                    let across = quota::mailbox_of_folder(c, from_folder).await?
                        != quota::mailbox_of_folder(c, to_folder).await?;
                    let (copied, to_modseq) =
                        copy_in(c, from_folder, &uids, to_folder, across).await?;
                    let moved: Vec<u32> = copied.pairs.iter().map(|(s, _)| *s).collect();
                    let (_, from_modseq) = expunge_in(c, from_folder, Some(&moved), false).await?;
                    Ok((copied, to_modseq, from_modseq))
                })
            })
            .await?;
        self.notify(to_folder, to_modseq as i64);
        self.notify(from_folder, from_modseq as i64);
        Ok(copied)
    }

    pub(crate) async fn expunge(
        &self,
        folder_id: i64,
        uids: Option<Vec<u32>>,
    ) -> Result<Expunged, StoreError> {
        let (gone, modseq) = self
            .write(move |c| {
                Box::pin(async move { expunge_in(c, folder_id, uids.as_deref(), true).await })
            })
            .await?;
        if !gone.is_empty() {
            self.notify(folder_id, modseq as i64);
        }
        Ok(Expunged { uids: gone, modseq })
    }
}

async fn copy_in(
    c: &mut SqliteConnection,
    from_folder: i64,
    uids: &[u32],
    to_folder: i64,
    check_quota: bool,
) -> Result<(Copied, u64), StoreError> {
    let mut rows = Vec::with_capacity(uids.len());
    for uid in uids {
        let row: Option<(i64, String, i64, i64, i64)> = sqlx::query_as(
            "SELECT system_flags, keywords, internal_date, size, body_id FROM messages
             WHERE folder_id = ? AND uid = ?",
        )
        .bind(from_folder)
        .bind(i64::from(*uid))
        .fetch_optional(&mut *c)
        .await?;
        if let Some(r) = row {
            rows.push((*uid, r));
        }
    }
    rows.sort_by_key(|(u, _)| *u);
    let count = u32::try_from(rows.len()).map_err(|_| StoreError::UidsExhausted)?;
    if check_quota {
        let bytes = rows
            .iter()
            .map(|(_, (_, _, _, size, _))| u64::try_from(*size).unwrap_or(0))
            .sum();
        quota::check_room(c, to_folder, bytes, u64::from(count)).await?;
    }
    let (uidvalidity, first, modseq) = bump_folder(c, to_folder, count).await?;
    let mut pairs = Vec::with_capacity(rows.len());
    for (i, (src, (system, keywords, date, size, body))) in rows.into_iter().enumerate() {
        let uid = first + i as u32;
        let flags = Flags::from_columns(system, &keywords);
        let row = NewRow {
            folder_id: to_folder,
            uid,
            modseq,
            flags: &flags,
            internal_date: date,
            size,
            body_id: body,
        };
        insert_message(c, row).await?;
        pairs.push((src, uid));
    }
    Ok((Copied { uidvalidity, pairs }, modseq))
}

/// Deletes messages and remembers their UIDs for QRESYNC. With `only_deleted`, only
/// messages flagged \Deleted go (EXPUNGE); without, all listed ones (MOVE).
async fn expunge_in(
    c: &mut SqliteConnection,
    folder_id: i64,
    uids: Option<&[u32]>,
    only_deleted: bool,
) -> Result<(Vec<u32>, u64), StoreError> {
    let candidates: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT uid, body_id FROM messages WHERE folder_id = ? AND (? = 0 OR (system_flags & ?) <> 0)
         ORDER BY uid",
    )
    .bind(folder_id)
    .bind(only_deleted)
    .bind(i64::from(flag::DELETED))
    .fetch_all(&mut *c)
    .await?;
    let wanted: Option<std::collections::HashSet<u32>> =
        uids.map(|list| list.iter().copied().collect());
    let chosen: Vec<(u32, i64)> = candidates
        .into_iter()
        .filter_map(|(u, b)| u32::try_from(u).ok().map(|u| (u, b)))
        .filter(|(u, _)| wanted.as_ref().is_none_or(|set| set.contains(u)))
        .collect();
    if chosen.is_empty() {
        return Ok((Vec::new(), 0));
    }
    let (_, _, modseq) = bump_folder(c, folder_id, 0).await?;
    let mut bodies = Vec::with_capacity(chosen.len());
    for (uid, body) in &chosen {
        sqlx::query("DELETE FROM messages WHERE folder_id = ? AND uid = ?")
            .bind(folder_id)
            .bind(i64::from(*uid))
            .execute(&mut *c)
            .await?;
        sqlx::query("INSERT OR REPLACE INTO expunged (folder_id, uid, modseq) VALUES (?, ?, ?)")
            .bind(folder_id)
            .bind(i64::from(*uid))
            .bind(modseq as i64)
            .execute(&mut *c)
            .await?;
        bodies.push(*body);
    }
    bodies.sort_unstable();
    bodies.dedup();
    delete_orphan_bodies(c, &bodies).await?;
    Ok((chosen.into_iter().map(|(u, _)| u).collect(), modseq))
}
