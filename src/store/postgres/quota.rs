//! Mailbox quotas (RFC 9208) on PostgreSQL. Usage is kept by triggers
//! (schema/postgres/0001_init.sql), as on SQLite.

use sqlx::PgConnection;

use super::{PostgresStore, transaction};
use crate::store::error::StoreError;
use crate::store::quota::{Quota, QuotaLimit, QuotaRow};

const MAILBOX_QUOTA: &str =
    "SELECT quota_storage, quota_messages, used_bytes, used_messages FROM mailboxes WHERE id = $1";
const FOLDER_QUOTA: &str = "SELECT m.quota_storage, m.quota_messages, m.used_bytes, m.used_messages
      FROM folders f JOIN mailboxes m ON m.id = f.mailbox_id WHERE f.id = $1";

/// Refuses messages just added to `folder_id` that took its mailbox over a limit: the
/// transaction that added them rolls back. Checked after the insert, when the usage
/// trigger holds the mailbox row locked, so two nodes cannot both fill the last room;
/// the same rule as before the insert (`used + new > limit`).
pub(super) async fn check_usage(c: &mut PgConnection, folder_id: i64) -> Result<(), StoreError> {
    let row: Option<QuotaRow> = sqlx::query_as(FOLDER_QUOTA)
        .bind(folder_id)
        .fetch_optional(&mut *c)
        .await?;
    let quota = row.map(Quota::from_row).ok_or(StoreError::NoFolder)??;
    if quota.would_exceed(0, 0) {
        return Err(StoreError::OverQuota);
    }
    Ok(())
}

/// The mailbox a folder belongs to, inside a write.
pub(super) async fn mailbox_of_folder(
    c: &mut PgConnection,
    folder_id: i64,
) -> Result<i64, StoreError> {
    sqlx::query_scalar("SELECT mailbox_id FROM folders WHERE id = $1")
        .bind(folder_id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NoFolder)
}

impl PostgresStore {
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
        let address = address.trim();
        let storage = storage.column()?;
        let messages = messages.column()?;
        transaction!(self, |c| {
            async {
                let row: Option<QuotaRow> = sqlx::query_as(
                    "UPDATE mailboxes SET
                        quota_storage = CASE WHEN $1 THEN $2 ELSE quota_storage END,
                        quota_messages = CASE WHEN $3 THEN $4 ELSE quota_messages END
                      WHERE lower(address) = lower($5)
                      RETURNING quota_storage, quota_messages, used_bytes, used_messages",
                )
                .bind(storage.is_some())
                .bind(storage.flatten())
                .bind(messages.is_some())
                .bind(messages.flatten())
                .bind(address)
                .fetch_optional(&mut *c)
                .await?;
                row.map(Quota::from_row)
                    .ok_or_else(|| StoreError::NoMailbox(address.to_owned()))?
            }
            .await
        })
    }
}
