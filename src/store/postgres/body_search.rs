//! The body text index on PostgreSQL (schema/postgres/0004_body_search.sql): the
//! casemapped texts with `pg_trgm` GIN indexes, searched with LIKE. The index gives the
//! candidate rows; PostgreSQL checks LIKE on each, so the answer is exact.

use sqlx::PgConnection;

use super::{PostgresStore, transaction};
use crate::store::error::{StoreError, stored};
use crate::store::search_text::{SearchText, TextScope};

/// Bodies indexed per transaction.
const ROWS_PER_TRANSACTION: usize = 2048;

/// Indexes a body unless it has its row already (an identical body stored before).
pub(super) async fn index_body(
    c: &mut PgConnection,
    body_id: i64,
    text: &SearchText,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO body_search (body_id, header, body) VALUES ($1, $2, $3)
         ON CONFLICT (body_id) DO NOTHING",
    )
    .bind(body_id)
    .bind(&text.header)
    .bind(&text.body)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// A LIKE pattern matching `needle` anywhere, its own `%`, `_` and `\` escaped.
fn anywhere(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for ch in needle.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

impl PostgresStore {
    pub(crate) async fn text_search(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        needle: &str,
        scope: TextScope,
    ) -> Result<Vec<u32>, StoreError> {
        let sql = match scope {
            TextScope::Body => {
                "SELECT m.uid FROM messages m
                  WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3
                    AND m.body_id IN (SELECT body_id FROM body_search WHERE body LIKE $4)
                  ORDER BY m.uid"
            }
            TextScope::HeaderOrBody => {
                "SELECT m.uid FROM messages m
                  WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3
                    AND m.body_id IN (SELECT body_id FROM body_search
                                       WHERE header LIKE $4 OR body LIKE $4)
                  ORDER BY m.uid"
            }
        };
        let uids: Vec<i64> = sqlx::query_scalar(sql)
            .bind(folder_id)
            .bind(i64::from(from))
            .bind(i64::from(to))
            .bind(anywhere(needle))
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
              WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3
                AND NOT EXISTS (SELECT 1 FROM body_search s WHERE s.body_id = m.body_id)
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
        rows: Vec<(i64, SearchText)>,
    ) -> Result<(), StoreError> {
        for batch in rows.chunks(ROWS_PER_TRANSACTION) {
            // A body deleted in the meantime is skipped (the join); one indexed by
            // another session first keeps its row, made by the same rules.
            let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
            let headers: Vec<&str> = batch.iter().map(|(_, t)| t.header.as_str()).collect();
            let bodies: Vec<&str> = batch.iter().map(|(_, t)| t.body.as_str()).collect();
            transaction!(self, |c| {
                sqlx::query(
                    "INSERT INTO body_search (body_id, header, body)
                     SELECT v.body_id, v.header, v.body
                       FROM unnest($1::bigint[], $2::text[], $3::text[])
                            AS v(body_id, header, body)
                       JOIN bodies b ON b.id = v.body_id
                     ON CONFLICT (body_id) DO NOTHING",
                )
                .bind(&ids)
                .bind(&headers)
                .bind(&bodies)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::anywhere;

    #[test]
    fn like_wildcards_in_a_needle_are_escaped() {
        assert_eq!(anywhere("A%B_C\\D"), "%A\\%B\\_C\\\\D%");
    }
}
