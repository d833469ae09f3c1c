//! Reads the IMAP sessions need beyond the message and folder basics.

use super::SqliteStore;
use crate::store::error::StoreError;

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
}
