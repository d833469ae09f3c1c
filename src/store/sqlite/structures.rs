//! The FETCH structure of message bodies on SQLite (schema/sqlite/0016_body_structure.sql):
//! written with each new body, read with the messages of a folder, and written back by
//! whoever computed it for a body stored before the table.

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::structures::{self, StructureRow};
use crate::structure::Structure;

/// Bodies per write job: one commit for many rows.
const ROWS_PER_JOB: usize = 2048;

/// Stores a body's structure by rules `version`, replacing a row by other rules. A body
/// deleted in the meantime is skipped.
pub(super) async fn put_structure(
    c: &mut SqliteConnection,
    body_id: i64,
    version: i64,
    s: &Structure,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR REPLACE INTO body_structure (body_id, version, envelope, body, bodystructure)
         SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM bodies WHERE id = ?1)",
    )
    .bind(body_id)
    .bind(version)
    .bind(&s.envelope)
    .bind(&s.body)
    .bind(&s.bodystructure)
    .execute(&mut *c)
    .await?;
    Ok(())
}

impl SqliteStore {
    pub(crate) async fn structures_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        version: i64,
    ) -> Result<Vec<(u32, i64, Option<Structure>)>, StoreError> {
        let sql = format!(
            "SELECT {} FROM messages m LEFT JOIN body_structure s ON s.body_id = m.body_id
              WHERE m.folder_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid",
            structures::COLUMNS
        );
        let rows: Vec<StructureRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(folder_id)
            .bind(i64::from(from))
            .bind(i64::from(to))
            .fetch_all(self.reader())
            .await?;
        rows.into_iter()
            .map(|r| structures::from_row(r, version))
            .collect()
    }

    pub(crate) async fn put_structures(
        &self,
        version: i64,
        mut rows: Vec<(i64, Structure)>,
    ) -> Result<(), StoreError> {
        while !rows.is_empty() {
            let rest = rows.split_off(rows.len().min(ROWS_PER_JOB));
            let batch = std::mem::replace(&mut rows, rest);
            self.write(move |c| {
                Box::pin(async move {
                    for (body_id, s) in &batch {
                        put_structure(c, *body_id, version, s).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        Ok(())
    }
}
