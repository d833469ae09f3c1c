//! Mailbox quotas (RFC 9208) in SQLite. Usage is kept by triggers
//! (schema/sqlite/0011_quota.sql), so every check reads one row instead of summing the
//! mailbox.

use sqlx::SqliteConnection;

use super::SqliteStore;
use crate::store::error::StoreError;
use crate::store::quota::{Quota, QuotaLimit, QuotaRow};

const MAILBOX_QUOTA: &str =
    "SELECT quota_storage, quota_messages, used_bytes, used_messages FROM mailboxes WHERE id = ?";
const FOLDER_QUOTA: &str = "SELECT m.quota_storage, m.quota_messages, m.used_bytes, m.used_messages
      FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id WHERE f.id = ?";

/// The limits and usage of the mailbox holding `folder_id`, inside a write.
async fn quota_of_folder_in(c: &mut SqliteConnection, folder_id: i64) -> Result<Quota, StoreError> {
    let row: Option<QuotaRow> = sqlx::query_as(FOLDER_QUOTA)
        .bind(folder_id)
        .fetch_optional(&mut *c)
        .await?;
    row.map(Quota::from_row).ok_or(StoreError::NoFolder)?
}

/// Refuses, inside the transaction that would add them, messages that would take the
/// mailbox of `folder_id` over a limit (COPY, MOVE between mailboxes).
pub(super) async fn check_room(
    c: &mut SqliteConnection,
    folder_id: i64,
    bytes: u64,
    messages: u64,
) -> Result<(), StoreError> {
    if messages > 0
        && quota_of_folder_in(c, folder_id)
            .await?
            .would_exceed(bytes, messages)
    {
        return Err(StoreError::OverQuota);
    }
    Ok(())
}

/// The mailbox a folder belongs to, inside a write.
pub(super) async fn mailbox_of_folder(
    c: &mut SqliteConnection,
    folder_id: i64,
) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT mailbox_id FROM folders WHERE id = ?")
        .bind(folder_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NoFolder)
}

impl SqliteStore {
    pub(crate) async fn quota(&self, mailbox_id: i64) -> Result<Option<Quota>, StoreError> {
        let row: Option<QuotaRow> = sqlx::query_as(MAILBOX_QUOTA)
            .bind(mailbox_id)
            .fetch_optional(self.reader())
            .await?;
        row.map(Quota::from_row).transpose()
    }

    pub(crate) async fn quota_of_folder(
        &self,
        folder_id: i64,
    ) -> Result<Option<Quota>, StoreError> {
        let row: Option<QuotaRow> = sqlx::query_as(FOLDER_QUOTA)
            .bind(folder_id)
            .fetch_optional(self.reader())
            .await?;
        row.map(Quota::from_row).transpose()
    }

    pub(crate) async fn set_quota(
        &self,
        address: &str,
        storage: QuotaLimit,
        messages: QuotaLimit,
    ) -> Result<Quota, StoreError> {
        let address = address.trim().to_owned();
        let storage = storage.column()?;
        let messages = messages.column()?;
        self.write(move |c| {
            Box::pin(async move {
                let row: Option<QuotaRow> = sqlx::query_as(
                    "UPDATE mailboxes SET
                        quota_storage = CASE WHEN ? THEN ? ELSE quota_storage END,
                        quota_messages = CASE WHEN ? THEN ? ELSE quota_messages END
                      WHERE address = ?
                      RETURNING quota_storage, quota_messages, used_bytes, used_messages",
                )
                .bind(storage.is_some())
                .bind(storage.flatten())
                .bind(messages.is_some())
                .bind(messages.flatten())
                .bind(&address)
                .fetch_optional(&mut *c)
                .await?;
                row.map(Quota::from_row)
                    .ok_or(StoreError::NoMailbox(address))?
            })
        })
        .await
    }
}
