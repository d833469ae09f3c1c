//! The FETCH structure of message bodies on PostgreSQL (see the SQLite backend's
//! `structures`).

use sqlx::PgConnection;

use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::structures::{self, StructureRow};
use crate::structure::Structure;

/// Rows per transaction, as for sort keys.
const ROWS_PER_TRANSACTION: usize = 2048;

/// The statement that stores structures, one per array element; a body deleted in the
/// meantime is skipped (the join), a row by other rules replaced.
const PUT: &str = "INSERT INTO body_structure (body_id, version, envelope, body, bodystructure)
     SELECT v.body_id, $1, v.envelope, v.body, v.bodystructure
       FROM unnest($2::bigint[], $3::bytea[], $4::bytea[], $5::bytea[])
            AS v(body_id, envelope, body, bodystructure)
       JOIN bodies b ON b.id = v.body_id
     ON CONFLICT (body_id) DO UPDATE SET version = excluded.version,
        envelope = excluded.envelope, body = excluded.body,
        bodystructure = excluded.bodystructure";

/// Stores `rows` in one statement. One row per body: ON CONFLICT cannot change a row
/// twice in one statement, and two messages of a folder may share a body.
pub(super) async fn put_structures(
    c: &mut PgConnection,
    version: i64,
    rows: &[(i64, &Structure)],
) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    let mut envelopes = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    let mut structures = Vec::with_capacity(rows.len());
    for (id, s) in rows {
        if seen.insert(*id) {
            ids.push(*id);
            envelopes.push(s.envelope.as_slice());
            bodies.push(s.body.as_slice());
            structures.push(s.bodystructure.as_slice());
        }
    }
    sqlx::query(PUT)
        .bind(version)
        .bind(&ids)
        .bind(&envelopes)
        .bind(&bodies)
        .bind(&structures)
        .execute(&mut *c)
        .await?;
    Ok(())
}

impl PostgresStore {
    pub(crate) async fn structures_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        version: i64,
    ) -> Result<Vec<(u32, i64, Option<Structure>)>, StoreError> {
        let sql = format!(
            "SELECT {} FROM messages m LEFT JOIN body_structure s ON s.body_id = m.body_id
              WHERE m.folder_id = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
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
        rows: Vec<(i64, Structure)>,
    ) -> Result<(), StoreError> {
        for batch in rows.chunks(ROWS_PER_TRANSACTION) {
            let batch: Vec<(i64, &Structure)> = batch.iter().map(|(id, s)| (*id, s)).collect();
            transaction!(self, |c| put_structures(c, version, &batch).await)?;
        }
        Ok(())
    }
}
