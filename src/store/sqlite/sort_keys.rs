//! The sort keys of message bodies (schema/sqlite/0012_sort_keys.sql): read with the messages
//! of a folder, written back by whoever computed them.

use sqlx::Row;

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::{SortFields, SortKeys};

/// Rows per multi-row insert: twelve values each, far below SQLite's bound variables.
const INSERT_ROWS: usize = 64;

impl SqliteStore {
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
              WHERE m.folder_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid",
            fields.columns("0", "NULL", "NULL")
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
                    reply: r.try_get::<i64, _>("reply")? != 0,
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
        // One transaction per many statements: a commit per statement would make a
        // first SORT over a large folder wait on thousands of fsyncs.
        for batch in keys.chunks(INSERT_ROWS * 128) {
            let batch = batch.to_vec();
            self.write(move |c| {
                Box::pin(async move {
                    for chunk in batch.chunks(INSERT_ROWS) {
                        insert(c, version, chunk).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }
}

async fn insert(
    c: &mut sqlx::SqliteConnection,
    version: i64,
    chunk: &[(i64, SortKeys)],
) -> Result<(), StoreError> {
    let mut sql = String::from(
        "INSERT OR REPLACE INTO sort_keys (body_id, version, sent, subject, reply,
            from_mailbox, to_mailbox, cc_mailbox, display_from, display_to, message_id, refs)
         SELECT v.* FROM (VALUES ",
    );
    for i in 0..chunk.len() {
        sql.push_str(if i == 0 { "" } else { "," });
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    sql.push_str(") v JOIN bodies b ON b.id = v.column1");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (body_id, k) in chunk {
        q = q
            .bind(*body_id)
            .bind(version)
            .bind(k.sent)
            .bind(&k.subject)
            .bind(i64::from(k.reply))
            .bind(&k.from_mailbox)
            .bind(&k.to_mailbox)
            .bind(&k.cc_mailbox)
            .bind(&k.display_from)
            .bind(&k.display_to)
            .bind(&k.message_id)
            .bind(k.references.join(" "));
    }
    q.execute(&mut *c).await?;
    Ok(())
}
