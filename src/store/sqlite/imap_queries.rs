//! Reads the IMAP sessions need beyond the message and folder basics.

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::types::flag;

impl SqliteStore {
    pub(crate) async fn folder_uids(&self, folder_id: i64) -> Result<Vec<u32>, StoreError> {
        let uids: Vec<i64> =
            sqlx::query_scalar("SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid")
                .bind(folder_id)
                .fetch_all(self.reader())
                .await?;
        Ok(uids
            .into_iter()
            .filter_map(|u| u32::try_from(u).ok())
            .collect())
    }

    pub(crate) async fn first_unseen(&self, folder_id: i64) -> Result<Option<u32>, StoreError> {
        let uid: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(uid) FROM messages WHERE folder_id = ? AND (system_flags & ?) = 0",
        )
        .bind(folder_id)
        .bind(i64::from(flag::SEEN))
        .fetch_one(self.reader())
        .await?;
        Ok(uid.and_then(|u| u32::try_from(u).ok()))
    }
}
