//! The hot write: appends as data, many to a statement. A row inserted into the view
//! `message_appends` is turned by its INSTEAD OF trigger (schema/sqlite/0004_append.sql)
//! into a body, a message row and the folder's next UID and MODSEQ, and the rows just
//! inserted are read back by their rowids in the same round trip.

use sqlx::SqliteConnection;

use crate::store::error::{BackendErrorKind, StoreError, stored};
use crate::store::types::{Appended, Flags, RawMessage};

/// One message for one folder, as the writer batches it with its neighbours.
pub(super) struct NewAppend {
    pub(super) folder_id: i64,
    pub(super) raw: RawMessage,
    pub(super) flags: Flags,
    pub(super) internal_date: i64,
    /// Refuse the message if it would take its mailbox over a limit.
    pub(super) quota: bool,
}

/// Why a group of appends was not made.
pub(super) enum AppendFailure {
    /// The statement failed and SQLite backed it out; the transaction goes on.
    Statement(StoreError),
    /// What was written cannot be trusted: the whole transaction must be rolled back.
    Transaction(StoreError),
}

/// Whether SQLite backed out only the failed statement. Constraint failures (the append
/// trigger's own refusals among them), oversized or mistyped values are; after an I/O
/// error, a full disk or anything else, SQLite may have rolled back the whole transaction,
/// and carrying on would commit the rest of the batch piecemeal.
fn statement_local(e: &sqlx::Error) -> bool {
    const TOOBIG: i64 = 18;
    const CONSTRAINT: i64 = 19;
    const MISMATCH: i64 = 20;
    const RANGE: i64 = 25;
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i64>().ok())
        .is_some_and(|code| matches!(code & 0xff, TOOBIG | CONSTRAINT | MISMATCH | RANGE))
}

/// Appends `rows` in one statement (see schema/sqlite/0004_append.sql), all or none, and reads
/// back the UID and MODSEQ each was given, in the same round trip.
///
/// The new message rows are the last `rows.len()` ids of the table: SQLite gives a new
/// row the largest id plus one, and only the writer inserts. Each row read back is
/// checked against the append it answers (folder and body digest) before anyone is told.
pub(super) async fn append_rows(
    c: &mut SqliteConnection,
    rows: &[&NewAppend],
) -> Result<Vec<Appended>, AppendFailure> {
    let mut sql = String::from(
        "INSERT INTO message_appends (folder_id, sha256, size, header, content, system_flags,
            keywords, internal_date, quota, search_header, search_body, structure_version,
            envelope, body, bodystructure) VALUES ",
    );
    for i in 0..rows.len() {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        });
    }
    sql.push_str(&format!(
        "; SELECT m.folder_id, b.sha256, f.uidvalidity, m.uid, m.modseq
             FROM messages m JOIN folders f ON f.id = m.folder_id JOIN bodies b ON b.id = m.body_id
            WHERE m.id > (SELECT max(id) FROM messages) - {} ORDER BY m.id",
        rows.len()
    ));
    let mut query = sqlx::query_as::<_, (i64, Vec<u8>, i64, i64, i64)>(sqlx::AssertSqlSafe(sql));
    for row in rows {
        query = query
            .bind(row.folder_id)
            .bind(&row.raw.sha256[..])
            .bind(row.raw.len() as i64)
            .bind(&row.raw.header)
            .bind(&row.raw.content)
            .bind(i64::from(row.flags.system))
            .bind(row.flags.keywords_text())
            .bind(row.internal_date)
            .bind(row.quota)
            .bind(&row.raw.search.header)
            .bind(&row.raw.search.body)
            .bind(crate::structure::VERSION)
            .bind(&row.raw.structure.envelope)
            .bind(&row.raw.structure.body)
            .bind(&row.raw.structure.bodystructure);
    }
    let read = query.fetch_all(&mut *c).await.map_err(|e| {
        let local = statement_local(&e);
        let err = match e.as_database_error().map(|d| d.message().to_owned()) {
            Some(m) if m == "no such folder" => StoreError::NoFolder,
            Some(m) if m == "folder has run out of UIDs" => StoreError::UidsExhausted,
            Some(m) if m == "over quota" => StoreError::OverQuota,
            _ => StoreError::from(e),
        };
        if local {
            AppendFailure::Statement(err)
        } else {
            AppendFailure::Transaction(err)
        }
    })?;
    let matches = read.len() == rows.len()
        && read
            .iter()
            .zip(rows)
            .all(|(got, want)| got.0 == want.folder_id && got.1 == want.raw.sha256);
    if !matches {
        return Err(AppendFailure::Transaction(StoreError::backend(
            BackendErrorKind::Corrupt,
            "appended rows did not read back as written",
        )));
    }
    read.into_iter()
        .map(|(folder_id, _, uidvalidity, uid, modseq)| {
            Ok(Appended {
                folder_id,
                uidvalidity: stored(uidvalidity, "uidvalidity")?,
                uid: stored(uid, "uid")?,
                modseq: stored(modseq, "modseq")?,
            })
        })
        .collect::<Result<_, StoreError>>()
        .map_err(AppendFailure::Transaction)
}
