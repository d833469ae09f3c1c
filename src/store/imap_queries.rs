//! Reads the IMAP sessions need beyond the message and folder basics.

use super::{Store, StoreError, flag};

impl Store {
    /// Every UID of a folder, ascending: a session's sequence-number map, without the
    /// rest of each row (a 100,000-message folder is 400 KB, not megabytes).
    pub async fn folder_uids(&self, folder_id: i64) -> Result<Vec<u32>, StoreError> {
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

    /// The lowest UID without \Seen (SELECT's `[UNSEEN n]`).
    pub async fn first_unseen(&self, folder_id: i64) -> Result<Option<u32>, StoreError> {
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
