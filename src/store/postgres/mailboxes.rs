//! Mailboxes, their grants and folders, on PostgreSQL.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::messages::{delete_orphan_bodies, meta_from_row};
use super::usage::record_events;
use super::{PostgresStore, transaction};
use crate::store::error::{BackendErrorKind, StoreError, stored};
use crate::store::types::{
    DEFAULT_FOLDERS, DirectoryFields, Folder, FolderChanges, FolderSnapshot, Grant, Mailbox,
    NewMailbox, flag, from_unix, uids_from,
};

macro_rules! mailbox_columns {
    () => {
        "id, address, kind, owner_idnat, display_name, created_at, last_authenticated_at, \
         published, unpublished_at, hold, deletion_warned_at, red_list, description, \
         responsible, service, telephone, dematerialisation, contact_address"
    };
}
pub(super) use mailbox_columns;

macro_rules! m_mailbox_columns {
    () => {
        "m.id, m.address, m.kind, m.owner_idnat, m.display_name, m.created_at, \
         m.last_authenticated_at, m.published, m.unpublished_at, m.hold, \
         m.deletion_warned_at, m.red_list, m.description, m.responsible, m.service, \
         m.telephone, m.dematerialisation, m.contact_address"
    };
}

macro_rules! folder_columns {
    () => {
        "id, mailbox_id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from, \
         noselect"
    };
}

pub(super) fn mailbox_from_row(r: &PgRow) -> Result<Mailbox, StoreError> {
    let kind: String = r.try_get("kind")?;
    Ok(Mailbox {
        id: r.try_get("id")?,
        address: r.try_get("address")?,
        kind: kind
            .parse()
            .map_err(|e: String| StoreError::backend(BackendErrorKind::Corrupt, e))?,
        owner: r.try_get("owner_idnat")?,
        display_name: r.try_get("display_name")?,
        created_at: from_unix(r.try_get("created_at")?),
        last_authenticated_at: r
            .try_get::<Option<i64>, _>("last_authenticated_at")?
            .map(from_unix),
        published: r.try_get("published")?,
        unpublished_at: r
            .try_get::<Option<i64>, _>("unpublished_at")?
            .map(from_unix),
        hold: r.try_get("hold")?,
        deletion_warned_at: r
            .try_get::<Option<i64>, _>("deletion_warned_at")?
            .map(from_unix),
        red_list: r.try_get("red_list")?,
        directory: DirectoryFields {
            description: r.try_get("description")?,
            responsible: r.try_get("responsible")?,
            service: r.try_get("service")?,
            telephone: r.try_get("telephone")?,
            dematerialisation: r.try_get("dematerialisation")?,
            contact_address: r.try_get("contact_address")?,
        },
    })
}

fn folder_from_row(r: &PgRow) -> Result<Folder, StoreError> {
    Ok(Folder {
        id: r.try_get("id")?,
        mailbox_id: r.try_get("mailbox_id")?,
        name: r.try_get("name")?,
        special_use: r.try_get("special_use")?,
        uidvalidity: stored(r.try_get("uidvalidity")?, "uidvalidity")?,
        uidnext: stored(r.try_get("uidnext")?, "uidnext")?,
        highestmodseq: stored(r.try_get("highestmodseq")?, "highestmodseq")?,
        recent_from: u32::try_from(r.try_get::<i64, _>("recent_from")?).unwrap_or(u32::MAX),
        noselect: r.try_get("noselect")?,
    })
}

/// The UIDVALIDITY of a new folder, strictly above every one issued before in this
/// store (see schema/sqlite/0006_uidvalidity.sql); the row lock orders the nodes.
async fn next_uidvalidity(c: &mut PgConnection, now: DateTime<Utc>) -> Result<i64, StoreError> {
    let issued: i64 = sqlx::query_scalar(
        "UPDATE uidvalidity_issued SET last = GREATEST(last + 1, $1) WHERE id = 1 RETURNING last",
    )
    .bind(now.timestamp())
    .fetch_one(&mut *c)
    .await?;
    if !(1..=i64::from(u32::MAX)).contains(&issued) {
        return Err(StoreError::UidValidityExhausted(issued));
    }
    Ok(issued)
}

async fn create_mailbox_in(
    c: &mut PgConnection,
    new: &NewMailbox,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO mailboxes (address, kind, owner_idnat, display_name, created_at,
            red_list, description, responsible, service, telephone,
            dematerialisation, contact_address)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(&new.address)
    .bind(new.kind.as_str())
    .bind(&new.owner)
    .bind(&new.display_name)
    .bind(new.created_at.timestamp())
    .bind(new.red_list)
    .bind(&new.directory.description)
    .bind(&new.directory.responsible)
    .bind(&new.directory.service)
    .bind(&new.directory.telephone)
    .bind(new.directory.dematerialisation)
    .bind(&new.directory.contact_address)
    .fetch_one(&mut *c)
    .await?;
    for (name, special) in DEFAULT_FOLDERS.iter() {
        let uidvalidity = next_uidvalidity(c, now).await?;
        sqlx::query(
            "INSERT INTO folders (mailbox_id, name, special_use, uidvalidity)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(name)
        .bind(special)
        .bind(uidvalidity)
        .execute(&mut *c)
        .await?;
        // The folders every client expects to see start subscribed.
        sqlx::query("INSERT INTO subscriptions (mailbox_id, name) VALUES ($1, $2)")
            .bind(id)
            .bind(name)
            .execute(&mut *c)
            .await?;
    }
    record_events(c, &[id], "created", new.created_at).await?;
    Ok(id)
}

/// Grants as columns: (idnat, subject, issuer, fingerprint).
fn grant_columns(
    grant: &Grant,
) -> (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    match grant {
        Grant::Idnat { idnat } => (Some(idnat.clone()), None, None, None),
        Grant::CertificateSubject { subject, issuer } => {
            (None, Some(subject.clone()), Some(issuer.clone()), None)
        }
        Grant::CertificatePin { fingerprint } => {
            (None, None, None, Some(fingerprint.to_ascii_lowercase()))
        }
    }
}

impl PostgresStore {
    pub(crate) async fn create_mailbox(
        &self,
        new: NewMailbox,
        now: DateTime<Utc>,
    ) -> Result<Mailbox, StoreError> {
        let result = transaction!(self, |c| create_mailbox_in(c, &new, now).await);
        match result {
            Ok(id) => self
                .mailbox_by_id(id)
                .await?
                .ok_or(StoreError::NoMailbox(new.address)),
            Err(e) if e.is_duplicate() => Err(StoreError::MailboxExists(new.address)),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE lower(address) = lower($1)"
        ))
        .bind(address.trim())
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(mailbox_from_row).transpose()
    }

    pub(crate) async fn mailbox_by_id(&self, id: i64) -> Result<Option<Mailbox>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(mailbox_from_row).transpose()
    }

    pub(crate) async fn mailboxes(&self) -> Result<Vec<Mailbox>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes ORDER BY lower(address)"
        ))
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn mailboxes_owned_by(&self, idnat: &str) -> Result<Vec<Mailbox>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE owner_idnat = $1 ORDER BY lower(address)"
        ))
        .bind(idnat)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn delete_mailbox(
        &self,
        address: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let address = address.trim();
        transaction!(self, |c| {
            async {
                let Some(id): Option<i64> = sqlx::query_scalar(
                    "SELECT id FROM mailboxes WHERE lower(address) = lower($1) FOR UPDATE",
                )
                .bind(address)
                .fetch_optional(&mut *c)
                .await?
                else {
                    return Ok(false);
                };
                let bodies: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT m.body_id FROM messages m JOIN folders f ON f.id = m.folder_id
                     WHERE f.mailbox_id = $1",
                )
                .bind(id)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &[id], "deleted", now).await?;
                sqlx::query("DELETE FROM mailboxes WHERE id = $1")
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                delete_orphan_bodies(c, &bodies).await?;
                Ok::<_, StoreError>(true)
            }
            .await
        })
    }

    pub(crate) async fn add_grant(
        &self,
        address: &str,
        grant: Grant,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mailbox = self
            .mailbox(address)
            .await?
            .ok_or_else(|| StoreError::NoMailbox(address.to_owned()))?;
        let (idnat, subject, issuer, pin) = grant_columns(&grant);
        // ON CONFLICT cannot name the three partial unique indexes at once; a grant
        // already there is no error, as the contract says.
        let result = transaction!(self, |c| {
            sqlx::query(
                "INSERT INTO grants (mailbox_id, idnat, cert_subject, cert_issuer,
                    cert_fingerprint, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(mailbox.id)
            .bind(&idnat)
            .bind(&subject)
            .bind(&issuer)
            .bind(&pin)
            .bind(now.timestamp())
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
        });
        match result {
            Err(e) if e.is_duplicate() => Ok(()),
            other => other,
        }
    }

    pub(crate) async fn revoke_grant(
        &self,
        address: &str,
        grant: Grant,
    ) -> Result<bool, StoreError> {
        let mailbox = self
            .mailbox(address)
            .await?
            .ok_or_else(|| StoreError::NoMailbox(address.to_owned()))?;
        let (idnat, subject, issuer, pin) = grant_columns(&grant);
        transaction!(self, |c| {
            sqlx::query(
                "DELETE FROM grants WHERE mailbox_id = $1
                   AND (($2::text IS NOT NULL AND idnat = $2)
                     OR ($3::text IS NOT NULL AND cert_subject = $3 AND cert_issuer = $4)
                     OR ($5::text IS NOT NULL AND cert_fingerprint = $5))",
            )
            .bind(mailbox.id)
            .bind(&idnat)
            .bind(&subject)
            .bind(&issuer)
            .bind(&pin)
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected() > 0)
            .map_err(StoreError::from)
        })
    }

    pub(crate) async fn grants(&self, mailbox_id: i64) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(
            "SELECT idnat, cert_subject, cert_issuer, cert_fingerprint FROM grants
             WHERE mailbox_id = $1 ORDER BY id",
        )
        .bind(mailbox_id)
        .fetch_all(self.reader())
        .await?;
        rows.iter()
            .map(|r| {
                let idnat: Option<String> = r.try_get("idnat")?;
                let subject: Option<String> = r.try_get("cert_subject")?;
                let issuer: Option<String> = r.try_get("cert_issuer")?;
                let pin: Option<String> = r.try_get("cert_fingerprint")?;
                Ok(match (idnat, subject, issuer, pin) {
                    (Some(idnat), ..) => Grant::Idnat { idnat },
                    (None, Some(subject), Some(issuer), _) => {
                        Grant::CertificateSubject { subject, issuer }
                    }
                    (.., Some(fingerprint)) => Grant::CertificatePin { fingerprint },
                    _ => {
                        return Err(StoreError::backend(
                            BackendErrorKind::Corrupt,
                            "grant row without a holder",
                        ));
                    }
                })
            })
            .collect()
    }

    pub(crate) async fn access_epoch(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT epoch FROM access_epoch WHERE id = 1")
                .fetch_one(self.reader())
                .await?,
        )
    }

    pub(crate) async fn mailboxes_granted_to(
        &self,
        idnat: &str,
    ) -> Result<Vec<Mailbox>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            m_mailbox_columns!(),
            " FROM mailboxes m JOIN grants g ON g.mailbox_id = m.id
             WHERE g.idnat = $1 ORDER BY lower(m.address)"
        ))
        .bind(idnat)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn mailboxes_bound_to_certificate(
        &self,
        subject: &str,
        issuer: &str,
        fingerprint: &str,
    ) -> Result<Vec<Mailbox>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE id IN (SELECT mailbox_id FROM grants
                 WHERE (cert_subject = $1 AND cert_issuer = $2) OR cert_fingerprint = $3)
             ORDER BY lower(address)"
        ))
        .bind(subject)
        .bind(issuer)
        .bind(fingerprint.to_ascii_lowercase())
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(mailbox_from_row)
        .collect()
    }

    pub(crate) async fn record_authentication(
        &self,
        mailbox_id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        transaction!(self, |c| {
            sqlx::query(
                "UPDATE mailboxes SET
                    last_authenticated_at = GREATEST(COALESCE(last_authenticated_at, 0), $1),
                    deletion_warned_at = NULL
                 WHERE id = $2",
            )
            .bind(at.timestamp())
            .bind(mailbox_id)
            .execute(&mut *c)
            .await
            .map(|_| ())
            .map_err(StoreError::from)
        })
    }

    pub(crate) async fn set_hold(&self, address: &str, hold: bool) -> Result<bool, StoreError> {
        let address = address.trim();
        transaction!(self, |c| {
            sqlx::query("UPDATE mailboxes SET hold = $1 WHERE lower(address) = lower($2)")
                .bind(hold)
                .bind(address)
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected() > 0)
                .map_err(StoreError::from)
        })
    }

    // ---- folders ----

    pub(crate) async fn folders(&self, mailbox_id: i64) -> Result<Vec<Folder>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            folder_columns!(),
            " FROM folders WHERE mailbox_id = $1 ORDER BY name COLLATE \"C\""
        ))
        .bind(mailbox_id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(folder_from_row)
        .collect()
    }

    pub(crate) async fn folder(
        &self,
        mailbox_id: i64,
        name: &str,
    ) -> Result<Option<Folder>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            folder_columns!(),
            " FROM folders WHERE mailbox_id = $1 AND name = $2"
        ))
        .bind(mailbox_id)
        .bind(name)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(folder_from_row).transpose()
    }

    pub(crate) async fn folder_by_id(&self, folder_id: i64) -> Result<Option<Folder>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            folder_columns!(),
            " FROM folders WHERE id = $1"
        ))
        .bind(folder_id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(folder_from_row).transpose()
    }

    /// One statement, so the UIDs and marks are those of the folder row it returns.
    pub(crate) async fn folder_snapshot(
        &self,
        mailbox_id: i64,
        name: &str,
    ) -> Result<Option<FolderSnapshot>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            folder_columns!(),
            ",
                ARRAY(SELECT uid FROM messages WHERE folder_id = f.id ORDER BY uid) AS uids,
                (SELECT MIN(uid) FROM messages
                  WHERE folder_id = f.id AND (system_flags & $3) = 0) AS first_unseen,
                ARRAY(SELECT DISTINCT keywords FROM messages
                       WHERE folder_id = f.id AND keywords <> '') AS keywords
             FROM folders f WHERE mailbox_id = $1 AND name = $2"
        ))
        .bind(mailbox_id)
        .bind(name)
        .bind(i64::from(flag::SEEN))
        .fetch_optional(self.reader())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let keywords: Vec<String> = row.try_get("keywords")?;
        Ok(Some(FolderSnapshot::from_columns(
            folder_from_row(&row)?,
            row.try_get("uids")?,
            row.try_get("first_unseen")?,
            &keywords,
        )?))
    }

    /// One statement, so of one snapshot: a row per changed message, each with the
    /// folder's columns and the expunged UIDs (as an array, read once), or one row
    /// without a message when none changed.
    pub(crate) async fn folder_changes(
        &self,
        folder_id: i64,
        modseq: u64,
        expunged_since: Option<u64>,
    ) -> Result<Option<FolderChanges>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT f.*,
                m.uid, m.modseq, m.system_flags, m.keywords, m.internal_date, m.size, m.body_id
             FROM (SELECT ",
            folder_columns!(),
            ",
                    ARRAY(SELECT uid FROM expunged
                           WHERE folder_id = $1 AND $3::bigint IS NOT NULL AND modseq > $3
                           ORDER BY uid) AS vanished
                     FROM folders WHERE id = $1) f
             LEFT JOIN messages m ON m.folder_id = f.id AND m.modseq > $2
             ORDER BY m.uid"
        ))
        .bind(folder_id)
        .bind(modseq as i64)
        .bind(expunged_since.map(|m| m as i64))
        .fetch_all(self.reader())
        .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let vanished: Vec<i64> = first.try_get("vanished")?;
        let mut changed = Vec::with_capacity(rows.len());
        for r in &rows {
            if r.try_get::<Option<i64>, _>("uid")?.is_some() {
                changed.push(meta_from_row(r)?);
            }
        }
        Ok(Some(FolderChanges {
            folder: folder_from_row(first)?,
            vanished: uids_from(vanished)?,
            changed,
        }))
    }

    pub(crate) async fn create_folder(
        &self,
        mailbox_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Folder, StoreError> {
        let result = transaction!(self, |c| {
            async {
                let uidvalidity = next_uidvalidity(c, now).await?;
                let row = sqlx::query(concat!(
                    "INSERT INTO folders (mailbox_id, name, uidvalidity) VALUES ($1, $2, $3)
                     RETURNING ",
                    folder_columns!()
                ))
                .bind(mailbox_id)
                .bind(name)
                .bind(uidvalidity)
                .fetch_one(&mut *c)
                .await?;
                folder_from_row(&row)
            }
            .await
        });
        match result {
            Err(e) if e.is_duplicate() => Err(StoreError::FolderExists(name.to_owned())),
            other => other,
        }
    }

    pub(crate) async fn delete_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        transaction!(self, |c| drop_folder_messages(
            c,
            folder_id,
            &["DELETE FROM folders WHERE id = $1"]
        )
        .await)
    }

    /// Emptying the folder is a change like any other: it takes the next MODSEQ, so a
    /// session that counts MODSEQs knows something besides its own write happened.
    pub(crate) async fn clear_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        let modseq = transaction!(self, |c| {
            async {
                drop_folder_messages(
                    c,
                    folder_id,
                    &[
                        "DELETE FROM messages WHERE folder_id = $1",
                        "UPDATE folders SET noselect = TRUE, highestmodseq = highestmodseq + 1
                          WHERE id = $1",
                    ],
                )
                .await?;
                let modseq: i64 =
                    sqlx::query_scalar("SELECT highestmodseq FROM folders WHERE id = $1")
                        .bind(folder_id)
                        .fetch_one(&mut *c)
                        .await?;
                stored::<u64>(modseq, "highestmodseq")
            }
            .await
        })?;
        self.notify(&[(folder_id, modseq)]).await;
        Ok(())
    }

    pub(crate) async fn make_selectable(&self, folder_id: i64) -> Result<(), StoreError> {
        transaction!(self, |c| {
            sqlx::query("UPDATE folders SET noselect = FALSE WHERE id = $1")
                .bind(folder_id)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }

    pub(crate) async fn rename_folder(
        &self,
        mailbox_id: i64,
        from: &str,
        to: &str,
        delimiter: char,
    ) -> Result<(), StoreError> {
        let result = transaction!(self, |c| {
            async {
                let n =
                    sqlx::query("UPDATE folders SET name = $1 WHERE mailbox_id = $2 AND name = $3")
                        .bind(to)
                        .bind(mailbox_id)
                        .bind(from)
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                if n == 0 {
                    return Err(StoreError::NoFolder);
                }
                let prefix = format!("{from}{delimiter}");
                let children: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, name FROM folders WHERE mailbox_id = $1 AND left(name, $2) = $3",
                )
                .bind(mailbox_id)
                .bind(prefix.chars().count() as i32)
                .bind(&prefix)
                .fetch_all(&mut *c)
                .await?;
                for (id, name) in children {
                    let renamed = format!("{to}{delimiter}{}", &name[prefix.len()..]);
                    sqlx::query("UPDATE folders SET name = $1 WHERE id = $2")
                        .bind(renamed)
                        .bind(id)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(())
            }
            .await
        });
        match result {
            Err(e) if e.is_duplicate() => Err(StoreError::FolderExists(to.to_owned())),
            other => other,
        }
    }

    /// One statement, no explicit transaction: the `FOR UPDATE` in the `WITH` makes two
    /// sessions on two nodes take turns and hands the later one the value the earlier
    /// one wrote. No row back means nothing older than `upto` was left to claim (or
    /// the folder is gone): none of the session's new messages is recent to it.
    pub(crate) async fn claim_recent(&self, folder_id: i64, upto: u32) -> Result<u32, StoreError> {
        let started = tokio::time::Instant::now();
        let from: Option<i64> = sqlx::query_scalar(
            "WITH old AS (SELECT id, recent_from FROM folders WHERE id = $1 FOR UPDATE)
             UPDATE folders f SET recent_from = $2 FROM old
              WHERE f.id = old.id AND old.recent_from < $2
             RETURNING old.recent_from",
        )
        .bind(folder_id)
        .bind(i64::from(upto))
        .fetch_optional(self.pool_ref())
        .await?;
        self.committed(started.elapsed());
        Ok(from.map_or(upto, |f| u32::try_from(f).unwrap_or(u32::MAX)))
    }

    pub(crate) async fn subscriptions(&self, mailbox_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT name FROM subscriptions WHERE mailbox_id = $1 ORDER BY name COLLATE \"C\"",
        )
        .bind(mailbox_id)
        .fetch_all(self.reader())
        .await?)
    }

    pub(crate) async fn set_subscribed(
        &self,
        mailbox_id: i64,
        name: &str,
        subscribed: bool,
    ) -> Result<(), StoreError> {
        let sql = if subscribed {
            "INSERT INTO subscriptions (mailbox_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        } else {
            "DELETE FROM subscriptions WHERE mailbox_id = $1 AND name = $2"
        };
        transaction!(self, |c| {
            sqlx::query(sql)
                .bind(mailbox_id)
                .bind(name)
                .execute(&mut *c)
                .await
                .map(|_| ())
                .map_err(StoreError::from)
        })
    }
}

/// Runs `statements` (each bound to the folder's id; the last must touch the folder row)
/// and then deletes the bodies the folder's messages used that nothing else uses.
async fn drop_folder_messages(
    c: &mut PgConnection,
    folder_id: i64,
    statements: &[&'static str],
) -> Result<(), StoreError> {
    let bodies: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT body_id FROM messages WHERE folder_id = $1")
            .bind(folder_id)
            .fetch_all(&mut *c)
            .await?;
    let mut touched = 0;
    for statement in statements {
        touched = sqlx::query(*statement)
            .bind(folder_id)
            .execute(&mut *c)
            .await?
            .rows_affected();
    }
    if touched == 0 {
        return Err(StoreError::NoFolder);
    }
    delete_orphan_bodies(c, &bodies).await
}
