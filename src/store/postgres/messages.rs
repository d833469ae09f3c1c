//! Messages in folders on PostgreSQL: append, delivery, flags, copy/move, expunge, reads.
//!
//! Every change to a folder first takes the folder's row lock (`lock_folder`, or the
//! `UPDATE … RETURNING` of `bump_folder`) and holds it to the commit: the changes to one
//! folder from every node run one after the other, as the SQLite writer runs them, so
//! a flag change never reads flags another node is changing, and UIDs and MODSEQs come
//! out in commit order. Rows of `mailboxes` (quota usage, by trigger) are locked after
//! folders, never before, so the two kinds of lock are always taken in the same order.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{PostgresStore, quota, transaction};
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

pub(super) fn meta_from_row(r: &PgRow) -> Result<MessageMeta, StoreError> {
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
pub(super) async fn put_body(c: &mut PgConnection, raw: &RawMessage) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO bodies (sha256, size, header, content) VALUES ($1, $2, $3, $4)
         ON CONFLICT (sha256) DO UPDATE SET size = excluded.size RETURNING id",
    )
    .bind(&raw.sha256[..])
    .bind(raw.len() as i64)
    .bind(&raw.header)
    .bind(&raw.content)
    .fetch_one(&mut *c)
    .await?;
    super::body_search::index_body(c, id, &raw.search).await?;
    super::structures::put_structures(c, crate::structure::VERSION, &[(id, &raw.structure)])
        .await?;
    Ok(id)
}

/// Takes the folder's row lock until the commit, without changing it.
async fn lock_folder(c: &mut PgConnection, folder_id: i64) -> Result<(), StoreError> {
    sqlx::query_scalar::<_, i64>("SELECT id FROM folders WHERE id = $1 FOR UPDATE")
        .bind(folder_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NoFolder)?;
    Ok(())
}

/// Takes the folder's next UIDs (if `uids` > 0) and next MODSEQ, under its row lock.
/// Returns (uidvalidity, first uid, modseq).
async fn bump_folder(
    c: &mut PgConnection,
    folder_id: i64,
    uids: u32,
) -> Result<(u32, u32, u64), StoreError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "UPDATE folders SET uidnext = uidnext + $1, highestmodseq = highestmodseq + 1
         WHERE id = $2 RETURNING uidvalidity, uidnext - $1, highestmodseq",
    )
    .bind(i64::from(uids))
    .bind(folder_id)
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

/// The columns of a new message that do not come from its folder.
struct NewRow<'a> {
    flags: &'a Flags,
    internal_date: i64,
    size: i64,
}

/// Takes the folder's next UID and MODSEQ and files one message there, in a single
/// statement: round trips, not rows, are what each write pays for here. The folder
/// row's lock is taken by the `UPDATE` and held to the commit. Returns, besides what
/// was appended, whether the mailbox has a quota to check. `$6` is the body's id, or
/// (with `FILE_NEW_BODY`) the body itself, its search text and structure are stored
/// first.
const FILE_STORED_BODY: &str = "WITH f AS (
        UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
         WHERE id = $1 RETURNING mailbox_id, uidvalidity, uidnext - 1 AS uid, highestmodseq),
     m AS (
        INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
        SELECT $1, f.uid, f.highestmodseq, $2, $3, $4, $5, $6 FROM f)
   SELECT f.uidvalidity, f.uid, f.highestmodseq,
          (x.quota_storage IS NOT NULL OR x.quota_messages IS NOT NULL) AS limited
     FROM f JOIN mailboxes x ON x.id = f.mailbox_id";

const FILE_NEW_BODY: &str = "WITH b AS (
        INSERT INTO bodies (sha256, size, header, content) VALUES ($6, $5, $7, $8)
        ON CONFLICT (sha256) DO UPDATE SET size = excluded.size RETURNING id),
     s AS (
        INSERT INTO body_search (body_id, header, body) SELECT id, $9, $10 FROM b
        ON CONFLICT (body_id) DO NOTHING),
     t AS (
        INSERT INTO body_structure (body_id, version, envelope, body, bodystructure)
        SELECT id, $11, $12, $13, $14 FROM b
        ON CONFLICT (body_id) DO NOTHING),
     f AS (
        UPDATE folders SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1
         WHERE id = $1 RETURNING mailbox_id, uidvalidity, uidnext - 1 AS uid, highestmodseq),
     m AS (
        INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
        SELECT $1, f.uid, f.highestmodseq, $2, $3, $4, $5, b.id FROM f, b)
   SELECT f.uidvalidity, f.uid, f.highestmodseq,
          (x.quota_storage IS NOT NULL OR x.quota_messages IS NOT NULL) AS limited
     FROM f JOIN mailboxes x ON x.id = f.mailbox_id";

/// Where the body of a message being filed is.
enum Body<'a> {
    Stored(i64),
    New(&'a RawMessage),
}

/// Files one message in `folder_id` (see `FILE_STORED_BODY`). The UID `u32::MAX` is
/// never given out, as `bump_folder` does not: a folder that reached it is full.
async fn file_one(
    c: &mut PgConnection,
    folder_id: i64,
    body: Body<'_>,
    row: NewRow<'_>,
) -> Result<(Appended, bool), StoreError> {
    let query = match body {
        Body::Stored(id) => sqlx::query_as(FILE_STORED_BODY)
            .bind(folder_id)
            .bind(i64::from(row.flags.system))
            .bind(row.flags.keywords_text())
            .bind(row.internal_date)
            .bind(row.size)
            .bind(id),
        Body::New(raw) => sqlx::query_as(FILE_NEW_BODY)
            .bind(folder_id)
            .bind(i64::from(row.flags.system))
            .bind(row.flags.keywords_text())
            .bind(row.internal_date)
            .bind(row.size)
            .bind(&raw.sha256[..])
            .bind(&raw.header)
            .bind(&raw.content)
            .bind(&raw.search.header)
            .bind(&raw.search.body)
            .bind(crate::structure::VERSION)
            .bind(&raw.structure.envelope)
            .bind(&raw.structure.body)
            .bind(&raw.structure.bodystructure),
    };
    let filed: Option<(i64, i64, i64, bool)> = query.fetch_optional(&mut *c).await?;
    let (validity, uid, modseq, limited) = filed.ok_or(StoreError::NoFolder)?;
    let uid = u32::try_from(uid).map_err(|_| StoreError::UidsExhausted)?;
    if uid == u32::MAX {
        return Err(StoreError::UidsExhausted);
    }
    let appended = Appended {
        folder_id,
        uidvalidity: stored(validity, "uidvalidity")?,
        uid,
        modseq: stored(modseq, "highestmodseq")?,
    };
    Ok((appended, limited))
}

/// One message row per folder for a body already stored. Several folders are locked
/// in id order first, so two deliveries to the same mailboxes never deadlock.
pub(super) async fn file_in(
    c: &mut PgConnection,
    folders: &[i64],
    body_id: i64,
    size: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Appended>, StoreError> {
    if folders.len() > 1 {
        sqlx::query("SELECT id FROM folders WHERE id = ANY($1) ORDER BY id FOR UPDATE")
            .bind(folders)
            .execute(&mut *c)
            .await?;
    }
    let mut out = Vec::with_capacity(folders.len());
    for &folder_id in folders {
        let row = NewRow {
            flags: &Flags::default(),
            internal_date: now.timestamp(),
            size: size as i64,
        };
        let (appended, _) = file_one(c, folder_id, Body::Stored(body_id), row).await?;
        out.push(appended);
    }
    Ok(out)
}

/// The (folder, modseq) pairs of appended messages, to tell the sessions of.
pub(super) fn changed_by(appended: &[Appended]) -> Vec<(i64, u64)> {
    appended.iter().map(|a| (a.folder_id, a.modseq)).collect()
}

/// Removes the given bodies if no message and no queued mail refers to them any more
/// (`delete_orphan_bodies` in the schema, which leaves them when another node files a
/// message with one of them meanwhile).
pub(super) async fn delete_orphan_bodies(
    c: &mut PgConnection,
    bodies: &[i64],
) -> Result<(), StoreError> {
    if bodies.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT delete_orphan_bodies($1)")
        .bind(bodies)
        .execute(&mut *c)
        .await?;
    Ok(())
}

async fn append_in(
    c: &mut PgConnection,
    folder_id: i64,
    raw: &RawMessage,
    flags: &Flags,
    internal_date: i64,
    check_quota: bool,
) -> Result<Appended, StoreError> {
    let row = NewRow {
        flags,
        internal_date,
        size: raw.len() as i64,
    };
    let (appended, limited) = file_one(c, folder_id, Body::New(raw), row).await?;
    if check_quota && limited {
        quota::check_usage(c, folder_id).await?;
    }
    Ok(appended)
}

impl PostgresStore {
    pub(crate) async fn append(
        &self,
        folder_id: i64,
        message: &[u8],
        flags: Flags,
        internal_date: DateTime<Utc>,
        check_quota: bool,
    ) -> Result<Appended, StoreError> {
        let raw = RawMessage::new(message);
        let appended = transaction!(self, |c| {
            async {
                let a = append_in(
                    c,
                    folder_id,
                    &raw,
                    &flags,
                    internal_date.timestamp(),
                    check_quota,
                )
                .await?;
                Ok::<_, StoreError>(a)
            }
            .await
        })?;
        self.notify(&[(folder_id, appended.modseq)]).await;
        Ok(appended)
    }

    /// All in one transaction; the limits are checked after each row, so a refusal
    /// rolls every one back.
    pub(crate) async fn append_many(
        &self,
        folder_id: i64,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, StoreError> {
        let raws: Vec<(RawMessage, Flags, i64)> = messages
            .into_iter()
            .map(|m| {
                (
                    RawMessage::new(&m.message),
                    m.flags,
                    m.internal_date.timestamp(),
                )
            })
            .collect();
        let appended = transaction!(self, |c| {
            async {
                let mut out = Vec::with_capacity(raws.len());
                for (raw, flags, date) in &raws {
                    out.push(append_in(c, folder_id, raw, flags, *date, true).await?);
                }
                Ok::<_, StoreError>(out)
            }
            .await
        })?;
        if let Some(last) = appended.last() {
            self.notify(&[(folder_id, last.modseq)]).await;
        }
        Ok(appended)
    }

    pub(crate) async fn deliver(
        &self,
        folder_ids: Vec<i64>,
        message: Arc<RawMessage>,
        internal_date: DateTime<Utc>,
    ) -> Result<Vec<Appended>, StoreError> {
        let delivered = transaction!(self, |c| {
            async {
                let body_id = put_body(c, &message).await?;
                let a = file_in(c, &folder_ids, body_id, message.len(), internal_date).await?;
                Ok::<_, StoreError>(a)
            }
            .await
        })?;
        self.notify(&changed_by(&delivered)).await;
        Ok(delivered)
    }

    pub(crate) async fn messages(&self, folder_id: i64) -> Result<Vec<MessageMeta>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            meta_columns!(),
            " FROM messages WHERE folder_id = $1 ORDER BY uid"
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
            " FROM messages WHERE folder_id = $1 AND uid BETWEEN $2 AND $3 ORDER BY uid"
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
            " FROM messages WHERE folder_id = $1 AND modseq > $2 ORDER BY uid"
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
            "SELECT uid FROM expunged WHERE folder_id = $1 AND modseq > $2 ORDER BY uid",
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
                    COUNT(*) FILTER (WHERE (system_flags & $1) = 0),
                    COUNT(*) FILTER (WHERE (system_flags & $2) <> 0),
                    COALESCE(SUM(size), 0)::bigint,
                    COALESCE(SUM(size) FILTER (WHERE (system_flags & $2) <> 0), 0)::bigint,
                    COUNT(*) FILTER (WHERE uid >= (SELECT recent_from FROM folders WHERE id = $3))
             FROM messages WHERE folder_id = $3",
        )
        .bind(i64::from(flag::SEEN))
        .bind(i64::from(flag::DELETED))
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
            sqlx::query_as("SELECT header, content FROM bodies WHERE id = $1")
                .bind(body_id)
                .fetch_optional(self.reader())
                .await?
                .ok_or(StoreError::NoBody(body_id))?;
        header.extend_from_slice(&content);
        Ok(header)
    }

    pub(crate) async fn header(&self, body_id: i64) -> Result<Vec<u8>, StoreError> {
        sqlx::query_scalar("SELECT header FROM bodies WHERE id = $1")
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
             WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
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
        let outcome = transaction!(self, |c| {
            async {
                let outcome =
                    store_flags_in(c, folder_id, &uids, op, &flags, unchanged_since).await?;
                Ok::<_, StoreError>(outcome)
            }
            .await
        })?;
        if let Some((_, m, _)) = outcome.changed.first() {
            self.notify(&[(folder_id, *m)]).await;
        }
        Ok(outcome)
    }

    pub(crate) async fn copy(
        &self,
        from_folder: i64,
        uids: Vec<u32>,
        to_folder: i64,
    ) -> Result<Copied, StoreError> {
        let (copied, modseq) = transaction!(self, |c| {
            async {
                let (copied, modseq) = copy_in(c, from_folder, &uids, to_folder, true).await?;
                Ok::<_, StoreError>((copied, modseq))
            }
            .await
        })?;
        self.notify(&[(to_folder, modseq)]).await;
        Ok(copied)
    }

    pub(crate) async fn move_messages(
        &self,
        from_folder: i64,
        uids: Vec<u32>,
        to_folder: i64,
    ) -> Result<Copied, StoreError> {
        let (copied, changed) = transaction!(self, |c| {
            async {
                let across = quota::mailbox_of_folder(c, from_folder).await?
                    != quota::mailbox_of_folder(c, to_folder).await?;
                let (copied, to_modseq) = copy_in(c, from_folder, &uids, to_folder, across).await?;
                let moved: Vec<u32> = copied.pairs.iter().map(|(s, _)| *s).collect();
                let (_, from_modseq) = expunge_in(c, from_folder, Some(&moved), false).await?;
                let changed = [(to_folder, to_modseq), (from_folder, from_modseq)];
                Ok::<_, StoreError>((copied, changed))
            }
            .await
        })?;
        self.notify(&changed).await;
        Ok(copied)
    }

    pub(crate) async fn expunge(
        &self,
        folder_id: i64,
        uids: Option<Vec<u32>>,
    ) -> Result<Expunged, StoreError> {
        let (gone, modseq) = transaction!(self, |c| {
            async {
                let (gone, modseq) = expunge_in(c, folder_id, uids.as_deref(), true).await?;
                Ok::<_, StoreError>((gone, modseq))
            }
            .await
        })?;
        if !gone.is_empty() {
            self.notify(&[(folder_id, modseq)]).await;
        }
        Ok(Expunged { uids: gone, modseq })
    }

    pub(crate) async fn folder_uids(&self, folder_id: i64) -> Result<Vec<u32>, StoreError> {
        let uids: Vec<i64> =
            sqlx::query_scalar("SELECT uid FROM messages WHERE folder_id = $1 ORDER BY uid")
                .bind(folder_id)
                .fetch_all(self.reader())
                .await?;
        Ok(uids
            .into_iter()
            .filter_map(|u| u32::try_from(u).ok())
            .collect())
    }
}

/// Reads the listed messages' flags in one query and writes the changed ones, with
/// the folder's new MODSEQ, in one more: a STORE over a range costs the same round
/// trips whatever its length, where a read and a write per message made the database
/// the bottleneck of flag changes.
async fn store_flags_in(
    c: &mut PgConnection,
    folder_id: i64,
    uids: &[u32],
    op: FlagOp,
    flags: &Flags,
    unchanged_since: Option<u64>,
) -> Result<StoreOutcome, StoreError> {
    lock_folder(c, folder_id).await?;
    let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "SELECT uid, modseq, system_flags, keywords FROM messages
          WHERE folder_id = $1 AND uid = ANY($2)",
    )
    .bind(folder_id)
    .bind(&wanted)
    .fetch_all(&mut *c)
    .await?;
    let mut current: HashMap<u32, (i64, i64, String)> = HashMap::with_capacity(rows.len());
    for (uid, modseq, system, keywords) in rows {
        current.insert(stored(uid, "uid")?, (modseq, system, keywords));
    }
    let mut outcome = StoreOutcome::default();
    let mut changed = Vec::new();
    for &uid in uids {
        let Some((modseq, system, keywords)) = current.remove(&uid) else {
            continue;
        };
        if unchanged_since.is_some_and(|u| modseq as u64 > u) {
            outcome.modified.push(uid);
            continue;
        }
        let mut f = Flags::from_columns(system, &keywords);
        if f.apply(op, flags) {
            changed.push((uid, f));
        }
    }
    if changed.is_empty() {
        return Ok(outcome);
    }
    let changed_uids: Vec<i64> = changed.iter().map(|(u, _)| i64::from(*u)).collect();
    let systems: Vec<i64> = changed.iter().map(|(_, f)| i64::from(f.system)).collect();
    let keywords: Vec<String> = changed.iter().map(|(_, f)| f.keywords_text()).collect();
    // The folder's next MODSEQ and the new flags in one statement.
    let modseq: Option<i64> = sqlx::query_scalar(
        "WITH f AS (
            UPDATE folders SET highestmodseq = highestmodseq + 1 WHERE id = $1
            RETURNING highestmodseq),
         u AS (
            UPDATE messages m SET system_flags = n.system_flags, keywords = n.keywords,
                   modseq = f.highestmodseq
              FROM f, unnest($2::bigint[], $3::bigint[], $4::text[]) AS n(uid, system_flags, keywords)
             WHERE m.folder_id = $1 AND m.uid = n.uid)
         SELECT highestmodseq FROM f",
    )
    .bind(folder_id)
    .bind(&changed_uids)
    .bind(&systems)
    .bind(&keywords)
    .fetch_optional(&mut *c)
    .await?;
    let modseq: u64 = stored(modseq.ok_or(StoreError::NoFolder)?, "highestmodseq")?;
    outcome.changed = changed.into_iter().map(|(u, f)| (u, modseq, f)).collect();
    Ok(outcome)
}

async fn copy_in(
    c: &mut PgConnection,
    from_folder: i64,
    uids: &[u32],
    to_folder: i64,
    check_quota: bool,
) -> Result<(Copied, u64), StoreError> {
    let wanted: Vec<i64> = uids.iter().map(|&u| i64::from(u)).collect();
    let rows: Vec<(i64, i64, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT uid, system_flags, keywords, internal_date, size, body_id FROM messages
         WHERE folder_id = $1 AND uid = ANY($2) ORDER BY uid",
    )
    .bind(from_folder)
    .bind(&wanted)
    .fetch_all(&mut *c)
    .await?;
    let count = u32::try_from(rows.len()).map_err(|_| StoreError::UidsExhausted)?;
    let (uidvalidity, first, modseq) = bump_folder(c, to_folder, count).await?;
    let mut pairs = Vec::with_capacity(rows.len());
    let mut new_uids = Vec::with_capacity(rows.len());
    for (i, (src, ..)) in rows.iter().enumerate() {
        let uid = first + i as u32;
        pairs.push((stored(*src, "uid")?, uid));
        new_uids.push(i64::from(uid));
    }
    // One statement for the whole set: the copies keep their source's flags, date,
    // size and body, under the new UIDs and the one new MODSEQ.
    sqlx::query(
        "INSERT INTO messages (folder_id, uid, modseq, system_flags, keywords, internal_date, size, body_id)
         SELECT $1, n.uid, $2, n.system_flags, n.keywords, n.internal_date, n.size, n.body_id
           FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[])
             AS n(uid, system_flags, keywords, internal_date, size, body_id)",
    )
    .bind(to_folder)
    .bind(modseq as i64)
    .bind(&new_uids)
    .bind(rows.iter().map(|r| r.1).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.2.clone()).collect::<Vec<String>>())
    .bind(rows.iter().map(|r| r.3).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.4).collect::<Vec<i64>>())
    .bind(rows.iter().map(|r| r.5).collect::<Vec<i64>>())
    .execute(&mut *c)
    .await?;
    if check_quota && count > 0 {
        quota::check_usage(c, to_folder).await?;
    }
    Ok((Copied { uidvalidity, pairs }, modseq))
}

/// Deletes messages and remembers their UIDs for QRESYNC. With `only_deleted`, only
/// messages flagged \Deleted go (EXPUNGE); without, all listed ones (MOVE).
///
/// The flags are read after the folder's lock is taken, so they are those the last
/// writer left; then the deletion, the new MODSEQ (only when something went) and its
/// QRESYNC record are one statement.
async fn expunge_in(
    c: &mut PgConnection,
    folder_id: i64,
    uids: Option<&[u32]>,
    only_deleted: bool,
) -> Result<(Vec<u32>, u64), StoreError> {
    lock_folder(c, folder_id).await?;
    let wanted: Option<Vec<i64>> = uids.map(|list| list.iter().map(|&u| i64::from(u)).collect());
    let (modseq, gone, bodies): (Option<i64>, Vec<i64>, Vec<i64>) = sqlx::query_as(
        "WITH d AS (
            DELETE FROM messages WHERE folder_id = $1
               AND (NOT $2 OR (system_flags & $3) <> 0)
               AND ($4::bigint[] IS NULL OR uid = ANY($4))
            RETURNING uid, body_id),
         f AS (
            UPDATE folders SET highestmodseq = highestmodseq + 1
             WHERE id = $1 AND EXISTS (SELECT 1 FROM d)
            RETURNING highestmodseq),
         e AS (
            INSERT INTO expunged (folder_id, uid, modseq) SELECT $1, d.uid, f.highestmodseq FROM d, f
            ON CONFLICT (folder_id, uid) DO UPDATE SET modseq = excluded.modseq)
         SELECT (SELECT highestmodseq FROM f),
                ARRAY(SELECT uid FROM d ORDER BY uid),
                ARRAY(SELECT DISTINCT body_id FROM d ORDER BY body_id)",
    )
    .bind(folder_id)
    .bind(only_deleted)
    .bind(i64::from(flag::DELETED))
    .bind(wanted)
    .fetch_one(&mut *c)
    .await?;
    let Some(modseq) = modseq else {
        return Ok((Vec::new(), 0));
    };
    let modseq: u64 = stored(modseq, "highestmodseq")?;
    delete_orphan_bodies(c, &bodies).await?;
    let gone = gone
        .into_iter()
        .map(|u| stored(u, "uid"))
        .collect::<Result<Vec<u32>, _>>()?;
    Ok((gone, modseq))
}
