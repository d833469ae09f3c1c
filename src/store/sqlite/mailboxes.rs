//! Mailboxes, their grants and folders.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use super::messages::{delete_orphan_bodies, meta_from_row};
use super::usage::record_events;
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

macro_rules! m_mailbox_columns {
    () => {
        "m.id, m.address, m.kind, m.owner_idnat, m.display_name, m.created_at, \
         m.last_authenticated_at, m.published, m.unpublished_at, m.hold, \
         m.deletion_warned_at, m.red_list, m.description, m.responsible, m.service, \
         m.telephone, m.dematerialisation, m.contact_address"
    };
}

pub(super) fn mailbox_from_row(r: &SqliteRow) -> Result<Mailbox, StoreError> {
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

pub(super) fn folder_from_row(r: &SqliteRow) -> Result<Folder, StoreError> {
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

macro_rules! folder_columns {
    () => {
        "id, mailbox_id, name, special_use, uidvalidity, uidnext, highestmodseq, recent_from, \
         noselect"
    };
}

/// A folder row by id, or by mailbox and name (as stored).
enum FolderKey<'a> {
    Id(i64),
    Name(i64, &'a str),
}

/// The folder `key` names, read on `c`: the pool, or a transaction reading more.
async fn read_folder<'c, E>(c: E, key: FolderKey<'_>) -> Result<Option<Folder>, StoreError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let row = match key {
        FolderKey::Id(id) => {
            sqlx::query(concat!(
                "SELECT ",
                folder_columns!(),
                " FROM folders WHERE id = ?"
            ))
            .bind(id)
            .fetch_optional(c)
            .await?
        }
        FolderKey::Name(mailbox_id, name) => {
            sqlx::query(concat!(
                "SELECT ",
                folder_columns!(),
                " FROM folders WHERE mailbox_id = ? AND name = ?"
            ))
            .bind(mailbox_id)
            .bind(name)
            .fetch_optional(c)
            .await?
        }
    };
    row.as_ref().map(folder_from_row).transpose()
}

/// The UIDVALIDITY of a new folder: strictly above every one issued before in this
/// store, so a name used again never comes back with a UIDVALIDITY a client has seen
/// (schema/sqlite/0006_uidvalidity.sql). It follows the clock while folders are created less
/// than once a second, and runs ahead of it by one per folder when they come faster.
async fn next_uidvalidity(c: &mut SqliteConnection, now: DateTime<Utc>) -> Result<i64, StoreError> {
    let issued: i64 = sqlx::query_scalar(
        "UPDATE uidvalidity_issued SET last = MAX(last + 1, ?) WHERE id = 1 RETURNING last",
    )
    .bind(now.timestamp())
    .fetch_one(&mut *c)
    .await?;
    if !(1..=i64::from(u32::MAX)).contains(&issued) {
        return Err(StoreError::UidValidityExhausted(issued));
    }
    Ok(issued)
}

impl SqliteStore {
    /// `new.address` is already normalised; `now` dates the folders' UIDVALIDITY.
    pub(crate) async fn create_mailbox(
        &self,
        new: NewMailbox,
        now: DateTime<Utc>,
    ) -> Result<Mailbox, StoreError> {
        let address = new.address.clone();
        let result = self
            .write(move |c| {
                Box::pin(async move {
                    let created = new.created_at.timestamp();
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO mailboxes (address, kind, owner_idnat, display_name, created_at,
                            red_list, description, responsible, service, telephone,
                            dematerialisation, contact_address)
                         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    )
                    .bind(&new.address)
                    .bind(new.kind.as_str())
                    .bind(&new.owner)
                    .bind(&new.display_name)
                    .bind(created)
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
                        sqlx::query(
                            "INSERT INTO folders (mailbox_id, name, special_use, uidvalidity)
                             VALUES (?, ?, ?, ?)",
                        )
                        .bind(id)
                        .bind(name)
                        .bind(special)
                        .bind(next_uidvalidity(c, now).await?)
                        .execute(&mut *c)
                        .await?;
                        // The folders every client expects to see start subscribed.
                        sqlx::query("INSERT INTO subscriptions (mailbox_id, name) VALUES (?, ?)")
                            .bind(id)
                            .bind(name)
                            .execute(&mut *c)
                            .await?;
                    }
                    record_events(c, &format!("[{id}]"), "created", new.created_at).await?;
                    Ok(id)
                })
            })
            .await;
        match result {
            Ok(_) => self
                .mailbox(&address)
                .await?
                .ok_or(StoreError::NoMailbox(address)),
            Err(e) if e.is_duplicate() => Err(StoreError::MailboxExists(address)),
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn mailbox(&self, address: &str) -> Result<Option<Mailbox>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            mailbox_columns!(),
            " FROM mailboxes WHERE address = ?"
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
            " FROM mailboxes WHERE id = ?"
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
            " FROM mailboxes ORDER BY address"
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
            " FROM mailboxes WHERE owner_idnat = ? ORDER BY address"
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
        let address = address.trim().to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let Some(id): Option<i64> =
                    sqlx::query_scalar("SELECT id FROM mailboxes WHERE address = ?")
                        .bind(&address)
                        .fetch_optional(&mut *c)
                        .await?
                else {
                    return Ok(false);
                };
                let bodies: Vec<i64> = sqlx::query_scalar(
                    "SELECT DISTINCT m.body_id FROM messages m JOIN folders f ON f.id = m.folder_id
                     WHERE f.mailbox_id = ?",
                )
                .bind(id)
                .fetch_all(&mut *c)
                .await?;
                record_events(c, &format!("[{id}]"), "deleted", now).await?;
                sqlx::query("DELETE FROM mailboxes WHERE id = ?")
                    .bind(id)
                    .execute(&mut *c)
                    .await?;
                delete_orphan_bodies(c, &bodies).await?;
                Ok(true)
            })
        })
        .await
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
        let result = self
            .write(move |c| {
                Box::pin(async move {
                    let (idnat, subject, issuer, pin) = match grant {
                        Grant::Idnat { idnat } => (Some(idnat), None, None, None),
                        Grant::CertificateSubject { subject, issuer } => {
                            (None, Some(subject), Some(issuer), None)
                        }
                        Grant::CertificatePin { fingerprint } => {
                            (None, None, None, Some(fingerprint.to_ascii_lowercase()))
                        }
                    };
                    sqlx::query(
                        "INSERT INTO grants (mailbox_id, idnat, cert_subject, cert_issuer,
                            cert_fingerprint, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    )
                    .bind(mailbox.id)
                    .bind(idnat)
                    .bind(subject)
                    .bind(issuer)
                    .bind(pin)
                    .bind(now.timestamp())
                    .execute(&mut *c)
                    .await?;
                    Ok(())
                })
            })
            .await;
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
        self.write(move |c| {
            Box::pin(async move {
                let q = match &grant {
                    Grant::Idnat { idnat } => {
                        sqlx::query("DELETE FROM grants WHERE mailbox_id = ? AND idnat = ?")
                            .bind(mailbox.id)
                            .bind(idnat.clone())
                    }
                    Grant::CertificateSubject { subject, issuer } => sqlx::query(
                        "DELETE FROM grants WHERE mailbox_id = ? AND cert_subject = ? AND cert_issuer = ?",
                    )
                    .bind(mailbox.id)
                    .bind(subject.clone())
                    .bind(issuer.clone()),
                    Grant::CertificatePin { fingerprint } => sqlx::query(
                        "DELETE FROM grants WHERE mailbox_id = ? AND cert_fingerprint = ?",
                    )
                    .bind(mailbox.id)
                    .bind(fingerprint.to_ascii_lowercase()),
                };
                Ok(q.execute(&mut *c).await?.rows_affected() > 0)
            })
        })
        .await
    }

    pub(crate) async fn grants(&self, mailbox_id: i64) -> Result<Vec<Grant>, StoreError> {
        let rows = sqlx::query(
            "SELECT idnat, cert_subject, cert_issuer, cert_fingerprint FROM grants
             WHERE mailbox_id = ? ORDER BY id",
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
             WHERE g.idnat = ? ORDER BY m.address"
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
            "SELECT DISTINCT ",
            m_mailbox_columns!(),
            " FROM mailboxes m JOIN grants g ON g.mailbox_id = m.id
             WHERE (g.cert_subject = ? AND g.cert_issuer = ?) OR g.cert_fingerprint = ?
             ORDER BY m.address"
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
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE mailboxes SET last_authenticated_at = MAX(COALESCE(last_authenticated_at, 0), ?),
                        deletion_warned_at = NULL WHERE id = ?",
                )
                .bind(at.timestamp())
                .bind(mailbox_id)
                .execute(&mut *c)
                .await?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn set_hold(&self, address: &str, hold: bool) -> Result<bool, StoreError> {
        let address = address.trim().to_owned();
        self.write(move |c| {
            Box::pin(async move {
                Ok(
                    sqlx::query("UPDATE mailboxes SET hold = ? WHERE address = ?")
                        .bind(hold)
                        .bind(&address)
                        .execute(&mut *c)
                        .await?
                        .rows_affected()
                        > 0,
                )
            })
        })
        .await
    }

    // ---- folders ----

    pub(crate) async fn folders(&self, mailbox_id: i64) -> Result<Vec<Folder>, StoreError> {
        sqlx::query(concat!(
            "SELECT ",
            folder_columns!(),
            " FROM folders WHERE mailbox_id = ? ORDER BY name"
        ))
        .bind(mailbox_id)
        .fetch_all(self.reader())
        .await?
        .iter()
        .map(folder_from_row)
        .collect()
    }

    /// `name` as stored: INBOX already in capitals.
    pub(crate) async fn folder(
        &self,
        mailbox_id: i64,
        name: &str,
    ) -> Result<Option<Folder>, StoreError> {
        read_folder(self.reader(), FolderKey::Name(mailbox_id, name)).await
    }

    pub(crate) async fn folder_by_id(&self, folder_id: i64) -> Result<Option<Folder>, StoreError> {
        read_folder(self.reader(), FolderKey::Id(folder_id)).await
    }

    /// In one read transaction, so the UIDs and marks are those of the folder row read.
    pub(crate) async fn folder_snapshot(
        &self,
        mailbox_id: i64,
        name: &str,
    ) -> Result<Option<FolderSnapshot>, StoreError> {
        let mut tx = self.reader().begin().await?;
        let Some(folder) = read_folder(&mut *tx, FolderKey::Name(mailbox_id, name)).await? else {
            return Ok(None);
        };
        let folder_id = folder.id;
        let uids: Vec<i64> =
            sqlx::query_scalar("SELECT uid FROM messages WHERE folder_id = ? ORDER BY uid")
                .bind(folder_id)
                .fetch_all(&mut *tx)
                .await?;
        let first_unseen: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(uid) FROM messages WHERE folder_id = ? AND (system_flags & ?) = 0",
        )
        .bind(folder_id)
        .bind(i64::from(flag::SEEN))
        .fetch_one(&mut *tx)
        .await?;
        let keywords: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT keywords FROM messages WHERE folder_id = ? AND keywords <> ''",
        )
        .bind(folder_id)
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(Some(FolderSnapshot::from_columns(
            folder,
            uids,
            first_unseen,
            &keywords,
        )?))
    }

    /// In one read transaction, so nothing read is newer than the folder row read.
    pub(crate) async fn folder_changes(
        &self,
        folder_id: i64,
        modseq: u64,
        expunged_since: Option<u64>,
    ) -> Result<Option<FolderChanges>, StoreError> {
        let mut tx = self.reader().begin().await?;
        let Some(folder) = read_folder(&mut *tx, FolderKey::Id(folder_id)).await? else {
            return Ok(None);
        };
        let vanished: Vec<i64> = match expunged_since {
            Some(since) => {
                sqlx::query_scalar(
                    "SELECT uid FROM expunged WHERE folder_id = ? AND modseq > ? ORDER BY uid",
                )
                .bind(folder_id)
                .bind(since as i64)
                .fetch_all(&mut *tx)
                .await?
            }
            None => Vec::new(),
        };
        let changed = sqlx::query(
            "SELECT uid, modseq, system_flags, keywords, internal_date, size, body_id
               FROM messages WHERE folder_id = ? AND modseq > ? ORDER BY uid",
        )
        .bind(folder_id)
        .bind(modseq as i64)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(meta_from_row)
        .collect::<Result<Vec<_>, _>>()?;
        tx.rollback().await?;
        Ok(Some(FolderChanges {
            folder,
            vanished: uids_from(vanished)?,
            changed,
        }))
    }

    /// `now` dates the folder's UIDVALIDITY.
    pub(crate) async fn create_folder(
        &self,
        mailbox_id: i64,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Folder, StoreError> {
        let owned = name.to_owned();
        let result = self
            .write(move |c| {
                Box::pin(async move {
                    let uidvalidity = next_uidvalidity(c, now).await?;
                    let row = sqlx::query(concat!(
                        "INSERT INTO folders (mailbox_id, name, uidvalidity) VALUES (?, ?, ?)
                         RETURNING ",
                        folder_columns!(),
                        ""
                    ))
                    .bind(mailbox_id)
                    .bind(&owned)
                    .bind(uidvalidity)
                    .fetch_one(&mut *c)
                    .await?;
                    folder_from_row(&row)
                })
            })
            .await;
        match result {
            Err(e) if e.is_duplicate() => Err(StoreError::FolderExists(name.to_owned())),
            other => other,
        }
    }

    pub(crate) async fn delete_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        self.write(move |c| {
            Box::pin(drop_folder_messages(
                c,
                folder_id,
                &["DELETE FROM folders WHERE id = ?"],
            ))
        })
        .await
    }

    /// Emptying the folder is a change like any other: it takes the next MODSEQ, so a
    /// session that counts MODSEQs knows something besides its own write happened.
    pub(crate) async fn clear_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        let modseq = self
            .write(move |c| {
                Box::pin(async move {
                    drop_folder_messages(
                        c,
                        folder_id,
                        &[
                            "DELETE FROM messages WHERE folder_id = ?",
                            "UPDATE folders SET noselect = 1, highestmodseq = highestmodseq + 1
                              WHERE id = ?",
                        ],
                    )
                    .await?;
                    let modseq: i64 =
                        sqlx::query_scalar("SELECT highestmodseq FROM folders WHERE id = ?")
                            .bind(folder_id)
                            .fetch_one(&mut *c)
                            .await?;
                    Ok(modseq)
                })
            })
            .await?;
        self.notify(folder_id, modseq);
        Ok(())
    }

    pub(crate) async fn make_selectable(&self, folder_id: i64) -> Result<(), StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                sqlx::query("UPDATE folders SET noselect = 0 WHERE id = ?")
                    .bind(folder_id)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }

    pub(crate) async fn rename_folder(
        &self,
        mailbox_id: i64,
        from: &str,
        to: &str,
        delimiter: char,
    ) -> Result<(), StoreError> {
        let target = to.to_owned();
        let (from, to) = (from.to_owned(), to.to_owned());
        let result = self
            .write(move |c| {
                Box::pin(async move {
                    let n = sqlx::query("UPDATE folders SET name = ? WHERE mailbox_id = ? AND name = ?")
                        .bind(&to)
                        .bind(mailbox_id)
                        .bind(&from)
                        .execute(&mut *c)
                        .await?
                        .rows_affected();
                    if n == 0 {
                        return Err(StoreError::NoFolder);
                    }
                    let prefix = format!("{from}{delimiter}");
                    let children: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT id, name FROM folders WHERE mailbox_id = ? AND substr(name, 1, ?) = ?",
                    )
                    .bind(mailbox_id)
                    .bind(prefix.len() as i64)
                    .bind(&prefix)
                    .fetch_all(&mut *c)
                    .await?;
                    for (id, name) in children {
                        let renamed = format!("{to}{delimiter}{}", &name[prefix.len()..]);
                        sqlx::query("UPDATE folders SET name = ? WHERE id = ?")
                            .bind(renamed)
                            .bind(id)
                            .execute(&mut *c)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await;
        match result {
            Err(e) if e.is_duplicate() => Err(StoreError::FolderExists(target)),
            other => other,
        }
    }

    pub(crate) async fn claim_recent(&self, folder_id: i64, upto: u32) -> Result<u32, StoreError> {
        self.write(move |c| {
            Box::pin(async move {
                let from: i64 = sqlx::query_scalar("SELECT recent_from FROM folders WHERE id = ?")
                    .bind(folder_id)
                    .fetch_optional(&mut *c)
                    .await?
                    .unwrap_or(i64::from(upto));
                if from < i64::from(upto) {
                    sqlx::query("UPDATE folders SET recent_from = ? WHERE id = ?")
                        .bind(i64::from(upto))
                        .bind(folder_id)
                        .execute(&mut *c)
                        .await?;
                }
                Ok(u32::try_from(from).unwrap_or(u32::MAX))
            })
        })
        .await
    }

    pub(crate) async fn subscriptions(&self, mailbox_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM subscriptions WHERE mailbox_id = ? ORDER BY name")
                .bind(mailbox_id)
                .fetch_all(self.reader())
                .await?,
        )
    }

    pub(crate) async fn set_subscribed(
        &self,
        mailbox_id: i64,
        name: &str,
        subscribed: bool,
    ) -> Result<(), StoreError> {
        let name = name.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let sql = if subscribed {
                    "INSERT OR IGNORE INTO subscriptions (mailbox_id, name) VALUES (?, ?)"
                } else {
                    "DELETE FROM subscriptions WHERE mailbox_id = ? AND name = ?"
                };
                sqlx::query(sql)
                    .bind(mailbox_id)
                    .bind(name)
                    .execute(&mut *c)
                    .await?;
                Ok(())
            })
        })
        .await
    }
}

/// Runs `statements` (each bound to the folder's id; the last must touch the folder row)
/// and then deletes the bodies the folder's messages used that nothing else uses.
async fn drop_folder_messages(
    c: &mut SqliteConnection,
    folder_id: i64,
    statements: &[&'static str],
) -> Result<(), StoreError> {
    let bodies: Vec<i64> =
        sqlx::query_scalar("SELECT DISTINCT body_id FROM messages WHERE folder_id = ?")
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
