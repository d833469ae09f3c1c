//! The sort keys of message bodies on PostgreSQL (see the SQLite backend's `sort_keys`).

use sqlx::Row;

use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::types::{SortFields, SortKeys};

/// Rows per transaction: a first SORT over a large folder writes thousands.
const ROWS_PER_TRANSACTION: usize = 8192;

impl PostgresStore {
    pub(crate) async fn sort_keys_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        version: i64,
        fields: SortFields,
    ) -> Result<Vec<(u32, i64, Option<SortKeys>)>, StoreError> {
        let sql = format!(
            "SELECT m.uid, m.body_id, k.version, {}
               FROM messages m LEFT JOIN sort_keys k ON k.body_id = m.body_id
              WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
            fields.columns("false", "NULL::bigint", "NULL::text")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(folder_id)
            .bind(i64::from(from))
            .bind(i64::from(to))
            .fetch_all(self.reader())
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Ok(uid) = u32::try_from(r.try_get::<i64, _>("uid")?) else {
                continue;
            };
            let body_id: i64 = r.try_get("body_id")?;
            let stored: Option<i64> = r.try_get("version")?;
            let keys = if stored == Some(version) {
                let refs: String = r.try_get("refs")?;
                Some(SortKeys {
                    sent: r.try_get("sent")?,
                    subject: r.try_get("subject")?,
                    reply: r.try_get("reply")?,
                    from_mailbox: r.try_get("from_mailbox")?,
                    to_mailbox: r.try_get("to_mailbox")?,
                    cc_mailbox: r.try_get("cc_mailbox")?,
                    display_from: r.try_get("display_from")?,
                    display_to: r.try_get("display_to")?,
                    message_id: r.try_get("message_id")?,
                    references: refs.split_whitespace().map(str::to_owned).collect(),
                })
            } else {
                None
            };
            out.push((uid, body_id, keys));
        }
        Ok(out)
    }

    pub(crate) async fn put_sort_keys(
        &self,
        version: i64,
        keys: Vec<(i64, SortKeys)>,
    ) -> Result<(), StoreError> {
        for batch in keys.chunks(ROWS_PER_TRANSACTION) {
            // Columns as arrays: one statement per batch whatever its length.
            let mut body_ids = Vec::with_capacity(batch.len());
            let mut sent = Vec::with_capacity(batch.len());
            let mut subject = Vec::with_capacity(batch.len());
            let mut reply = Vec::with_capacity(batch.len());
            let mut from_mailbox = Vec::with_capacity(batch.len());
            let mut to_mailbox = Vec::with_capacity(batch.len());
            let mut cc_mailbox = Vec::with_capacity(batch.len());
            let mut display_from = Vec::with_capacity(batch.len());
            let mut display_to = Vec::with_capacity(batch.len());
            let mut message_id = Vec::with_capacity(batch.len());
            let mut refs = Vec::with_capacity(batch.len());
            // One row per body: ON CONFLICT cannot change a row twice in one statement,
            // and two messages of a folder may share a body.
            let mut seen = std::collections::HashSet::with_capacity(batch.len());
            for (id, k) in batch {
                if !seen.insert(*id) {
                    continue;
                }
                body_ids.push(*id);
                sent.push(k.sent);
                subject.push(k.subject.clone());
                reply.push(k.reply);
                from_mailbox.push(k.from_mailbox.clone());
                to_mailbox.push(k.to_mailbox.clone());
                cc_mailbox.push(k.cc_mailbox.clone());
                display_from.push(k.display_from.clone());
                display_to.push(k.display_to.clone());
                message_id.push(k.message_id.clone());
                refs.push(k.references.join(" "));
            }
            // A body deleted in the meantime is skipped (the join), and a body whose
            // keys another session wrote first gets these, computed by the same rules.
            transaction!(self, |c| {
                sqlx::query(
                    "INSERT INTO sort_keys (body_id, version, sent, subject, reply,
                        from_mailbox, to_mailbox, cc_mailbox, display_from, display_to,
                        message_id, refs)
                     SELECT v.body_id, $1, v.sent, v.subject, v.reply, v.from_mailbox,
                            v.to_mailbox, v.cc_mailbox, v.display_from, v.display_to,
                            v.message_id, v.refs
                       FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bool[],
                                   $6::text[], $7::text[], $8::text[], $9::text[],
                                   $10::text[], $11::text[], $12::text[])
                            AS v(body_id, sent, subject, reply, from_mailbox, to_mailbox,
                                 cc_mailbox, display_from, display_to, message_id, refs)
                       JOIN bodies b ON b.id = v.body_id
                     ON CONFLICT (body_id) DO UPDATE SET version = excluded.version,
                        sent = excluded.sent, subject = excluded.subject,
                        reply = excluded.reply, from_mailbox = excluded.from_mailbox,
                        to_mailbox = excluded.to_mailbox, cc_mailbox = excluded.cc_mailbox,
                        display_from = excluded.display_from, display_to = excluded.display_to,
                        message_id = excluded.message_id, refs = excluded.refs",
                )
                .bind(version)
                .bind(&body_ids)
                .bind(&sent)
                .bind(&subject)
                .bind(&reply)
                .bind(&from_mailbox)
                .bind(&to_mailbox)
                .bind(&cc_mailbox)
                .bind(&display_from)
                .bind(&display_to)
                .bind(&message_id)
                .bind(&refs)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
            })?;
        }
        Ok(())
    }
}
