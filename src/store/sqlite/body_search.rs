//! The body text index on SQLite (schema/sqlite/0015_body_search.sql): an FTS5 table of
//! trigrams, whose rowid is the body's id.

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::error::{StoreError, stored};
use crate::store::search_text::{SearchText, TextScope};

/// Bodies indexed per write job, as for sort keys: one commit for many rows.
const ROWS_PER_JOB: usize = 2048;

/// Indexes a body unless it has its row already (an identical body stored before).
pub(super) async fn index_body(
    c: &mut SqliteConnection,
    body_id: i64,
    text: &SearchText,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO body_search (rowid, header, body)
         SELECT ?1, ?2, ?3
          WHERE EXISTS (SELECT 1 FROM bodies WHERE id = ?1)
            AND NOT EXISTS (SELECT 1 FROM body_search WHERE rowid = ?1)",
    )
    .bind(body_id)
    .bind(&text.header)
    .bind(&text.body)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// An FTS5 query for `needle` as one phrase: a string in double quotes, where only a
/// double quote is special (written twice). The trigram tokenizer makes the phrase
/// match where the needle is a substring.
fn phrase(needle: &str, scope: TextScope) -> String {
    let quoted = needle.replace('"', "\"\"");
    match scope {
        TextScope::Body => format!("body : \"{quoted}\""),
        TextScope::HeaderOrBody => format!("{{header body}} : \"{quoted}\""),
    }
}

impl SqliteStore {
    pub(crate) async fn text_search(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        needle: &str,
        scope: TextScope,
    ) -> Result<Vec<u32>, StoreError> {
        let uids: Vec<i64> = sqlx::query_scalar(
            "SELECT uid FROM messages
              WHERE folder_id = ? AND uid BETWEEN ? AND ?
                AND body_id IN (SELECT rowid FROM body_search WHERE body_search MATCH ?)
              ORDER BY uid",
        )
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .bind(phrase(needle, scope))
        .fetch_all(self.reader())
        .await?;
        uids.into_iter().map(|u| stored(u, "uid")).collect()
    }

    pub(crate) async fn unindexed_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
    ) -> Result<Vec<(u32, i64)>, StoreError> {
        let rows: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT m.uid, m.body_id FROM messages m
              WHERE m.folder_id = ? AND m.uid BETWEEN ? AND ?
                AND NOT EXISTS (SELECT 1 FROM body_search s WHERE s.rowid = m.body_id)
              ORDER BY m.uid",
        )
        .bind(folder_id)
        .bind(i64::from(from))
        .bind(i64::from(to))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|(u, b)| Ok((stored(u, "uid")?, b)))
            .collect()
    }

    pub(crate) async fn put_search_text(
        &self,
        mut rows: Vec<(i64, SearchText)>,
    ) -> Result<(), StoreError> {
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(ROWS_PER_JOB));
            let batch = std::mem::replace(&mut rows, rest);
            self.write(move |c| {
                Box::pin(async move {
                    for (body_id, text) in &batch {
                        index_body(c, *body_id, text).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_in_a_needle_are_doubled() {
        assert_eq!(phrase("A\"B", TextScope::Body), "body : \"A\"\"B\"");
        assert_eq!(
            phrase("ABC", TextScope::HeaderOrBody),
            "{header body} : \"ABC\""
        );
    }
}
