//! Every operation of the store, with what it promises whatever the backend: the one
//! place to read what the store does, and the list a new backend has to fill in.
//!
//! Most operations go straight to the backend (`operations!` writes them); the few that
//! first check their arguments, or need the time, are written out after their group.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::address::normalise_address;
use super::audit::{AuditEntry, AuditRecord};
use super::changes::Change;
use super::error::StoreError;
use super::lifecycle::{DeletedMailbox, Notice, SentNotice};
use super::queue::{Outgoing, QueueSettlement, QueuedMessage};
use super::quota::{Quota, QuotaLimit};
use super::search_text::{SearchText, TextScope};
use super::types::{
    Appended, Copied, Expunged, FlagOp, Flags, Folder, FolderChanges, FolderCounts, FolderSnapshot,
    Grant, Mailbox, MailboxKind, MessageMeta, NewMailbox, NewMessage, RawMessage, SortFields,
    SortKeys, StoreOutcome,
};
use super::usage::{Traffic, Usage};
use super::{Backend, Store};
use crate::structure::Structure;

/// Writes each listed operation as a method of `Store` that hands the call to the
/// backend in use. The `match` names every backend: one that lacks an operation, or
/// takes it with other arguments, does not compile.
macro_rules! operations {
    ($(
        $(#[$doc:meta])*
        fn $name:ident(&self $(, $arg:ident: $ty:ty)* $(,)?) -> $ret:ty;
    )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    match &self.backend {
                        Backend::Sqlite(b) => b.$name($($arg),*).await,
                        Backend::Postgres(b) => b.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

// ---- Mailboxes and their grants ----

impl Store {
    /// Deletes a mailbox, its folders and messages, and the bodies nothing else uses.
    /// The deletion is dated by the store's clock in the usage records.
    pub async fn delete_mailbox(&self, address: &str) -> Result<bool, StoreError> {
        let now = self.clock.now();
        match &self.backend {
            Backend::Sqlite(b) => b.delete_mailbox(address, now).await,
            Backend::Postgres(b) => b.delete_mailbox(address, now).await,
        }
    }

    /// Marks these mailboxes published where they were not; returns those that changed.
    /// The publication is dated by the store's clock in the usage records.
    ///
    /// Only the flag is compared: it records what the directory was told, so it must
    /// follow a successful push even if the mailbox changed since it was selected (the
    /// next run then corrects the directory).
    pub async fn mark_published(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let now = self.clock.now();
        match &self.backend {
            Backend::Sqlite(b) => b.mark_published(ids, now).await,
            Backend::Postgres(b) => b.mark_published(ids, now).await,
        }
    }

    /// Creates a mailbox with its default folders, in one transaction.
    pub async fn create_mailbox(&self, new: NewMailbox) -> Result<Mailbox, StoreError> {
        let address = normalise_address(&new.address)?;
        if new.kind == MailboxKind::Personal && new.owner.as_deref().is_none_or(str::is_empty) {
            return Err(StoreError::OwnerRequired);
        }
        let new = NewMailbox { address, ..new };
        let now = self.clock.now();
        match &self.backend {
            Backend::Sqlite(b) => b.create_mailbox(new, now).await,
            Backend::Postgres(b) => b.create_mailbox(new, now).await,
        }
    }

    /// Lets `grant` open the mailbox at `address`; a grant already there is no error.
    pub async fn add_grant(&self, address: &str, grant: Grant) -> Result<(), StoreError> {
        let now = self.clock.now();
        match &self.backend {
            Backend::Sqlite(b) => b.add_grant(address, grant, now).await,
            Backend::Postgres(b) => b.add_grant(address, grant, now).await,
        }
    }
}

operations! {
    /// The mailbox at `address`, as `normalise_address` writes it.
    fn mailbox(&self, address: &str) -> Option<Mailbox>;

    fn mailbox_by_id(&self, id: i64) -> Option<Mailbox>;

    /// Every mailbox, by address.
    fn mailboxes(&self) -> Vec<Mailbox>;

    /// Personal mailboxes whose holder is `idnat`.
    fn mailboxes_owned_by(&self, idnat: &str) -> Vec<Mailbox>;


    /// Takes `grant` away from the mailbox at `address`; false when it had no such grant.
    fn revoke_grant(&self, address: &str, grant: Grant) -> bool;

    /// Who besides its holder may open a mailbox, oldest grant first.
    fn grants(&self, mailbox_id: i64) -> Vec<Grant>;

    /// A counter that moves whenever access may have been taken away: a grant revoked, a
    /// certificate unbound, a mailbox deleted (by the CLI, the lifecycle jobs or any other
    /// process on this database) or its holder changed. The schema's triggers bump it in
    /// the same transaction as the change, so a session that read the counter before its
    /// access decision knows that decision still holds while the counter has not moved.
    fn access_epoch(&self) -> i64;

    /// Mailboxes on which `idnat` holds a grant.
    fn mailboxes_granted_to(&self, idnat: &str) -> Vec<Mailbox>;

    /// Mailboxes bound to a certificate, by subject+issuer or by its fingerprint.
    fn mailboxes_bound_to_certificate(
        &self,
        subject: &str,
        issuer: &str,
        fingerprint: &str,
    ) -> Vec<Mailbox>;

    /// Records a successful authentication (Référentiel #1 counts inactivity from it).
    fn record_authentication(&self, mailbox_id: i64, at: DateTime<Utc>) -> ();

    /// Puts a mailbox on hold (the lifecycle jobs leave it alone) or takes it off; false
    /// when there is no such mailbox.
    fn set_hold(&self, address: &str, hold: bool) -> bool;
}

// ---- Folders and subscriptions ----

/// A folder's name as stored: `INBOX` matches in any case, as IMAP requires.
fn stored_name(name: &str) -> &str {
    if name.eq_ignore_ascii_case("INBOX") {
        "INBOX"
    } else {
        name
    }
}

impl Store {
    /// A folder by name; `INBOX` matches in any case, as IMAP requires.
    pub async fn folder(&self, mailbox_id: i64, name: &str) -> Result<Option<Folder>, StoreError> {
        let name = stored_name(name);
        match &self.backend {
            Backend::Sqlite(b) => b.folder(mailbox_id, name).await,
            Backend::Postgres(b) => b.folder(mailbox_id, name).await,
        }
    }

    /// What SELECT shows of the folder `name` (`INBOX` in any case), read at one moment
    /// and in one round trip where the backend is a server; `\Noselect` names included.
    pub async fn folder_snapshot(
        &self,
        mailbox_id: i64,
        name: &str,
    ) -> Result<Option<FolderSnapshot>, StoreError> {
        let name = stored_name(name);
        match &self.backend {
            Backend::Sqlite(b) => b.folder_snapshot(mailbox_id, name).await,
            Backend::Postgres(b) => b.folder_snapshot(mailbox_id, name).await,
        }
    }

    /// Creates a folder with a UIDVALIDITY above every one this store issued before.
    pub async fn create_folder(&self, mailbox_id: i64, name: &str) -> Result<Folder, StoreError> {
        if name.is_empty() || name.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::FolderExists(name.to_owned()));
        }
        let now = self.clock.now();
        let folder = match &self.backend {
            Backend::Sqlite(b) => b.create_folder(mailbox_id, name, now).await,
            Backend::Postgres(b) => b.create_folder(mailbox_id, name, now).await,
        }?;
        self.announce(Change::Folders { mailbox_id }).await;
        Ok(folder)
    }

    /// Deletes a folder and its messages; bodies nothing else uses go too.
    pub async fn delete_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        let owner = self.folder_owner(folder_id).await?;
        match &self.backend {
            Backend::Sqlite(b) => b.delete_folder(folder_id).await,
            Backend::Postgres(b) => b.delete_folder(folder_id).await,
        }?;
        self.folders_changed(owner).await;
        Ok(())
    }

    /// Empties a folder that has children and makes it `\Noselect`: the name stays for
    /// them (RFC 3501 §6.3.4). Sessions that had it selected see it gone.
    pub async fn clear_folder(&self, folder_id: i64) -> Result<(), StoreError> {
        let owner = self.folder_owner(folder_id).await?;
        match &self.backend {
            Backend::Sqlite(b) => b.clear_folder(folder_id).await,
            Backend::Postgres(b) => b.clear_folder(folder_id).await,
        }?;
        self.folders_changed(owner).await;
        Ok(())
    }

    /// CREATE of a `\Noselect` name makes it a folder again; its UIDs go on from where
    /// they were, so the UIDVALIDITY the client knows stays true.
    pub async fn make_selectable(&self, folder_id: i64) -> Result<(), StoreError> {
        let owner = self.folder_owner(folder_id).await?;
        match &self.backend {
            Backend::Sqlite(b) => b.make_selectable(folder_id).await,
            Backend::Postgres(b) => b.make_selectable(folder_id).await,
        }?;
        self.folders_changed(owner).await;
        Ok(())
    }

    /// Renames a folder and every folder below it (`a` → `b` moves `a/x` to `b/x`).
    /// Renaming INBOX is the caller's business (IMAP moves its messages instead).
    pub async fn rename_folder(
        &self,
        mailbox_id: i64,
        from: &str,
        to: &str,
        delimiter: char,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.rename_folder(mailbox_id, from, to, delimiter).await,
            Backend::Postgres(b) => b.rename_folder(mailbox_id, from, to, delimiter).await,
        }?;
        self.announce(Change::Folders { mailbox_id }).await;
        Ok(())
    }

    /// Adds or removes `name` from the subscriptions; subscribing twice, or removing a
    /// name that is not there, changes nothing.
    pub async fn set_subscribed(
        &self,
        mailbox_id: i64,
        name: &str,
        subscribed: bool,
    ) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.set_subscribed(mailbox_id, name, subscribed).await,
            Backend::Postgres(b) => b.set_subscribed(mailbox_id, name, subscribed).await,
        }?;
        self.announce(Change::Subscriptions { mailbox_id }).await;
        Ok(())
    }

    /// The mailbox a folder belongs to, read before a change that may remove the folder,
    /// so that the change can be announced to that mailbox's sessions.
    async fn folder_owner(&self, folder_id: i64) -> Result<Option<i64>, StoreError> {
        Ok(self.folder_by_id(folder_id).await?.map(|f| f.mailbox_id))
    }

    async fn folders_changed(&self, owner: Option<i64>) {
        if let Some(mailbox_id) = owner {
            self.announce(Change::Folders { mailbox_id }).await;
        }
    }

    /// Tells the sessions (of every node) of a change to a mailbox's folder list or
    /// subscriptions, once it is committed.
    async fn announce(&self, change: Change) {
        match &self.backend {
            Backend::Sqlite(b) => b.announce(change),
            Backend::Postgres(b) => b.announce(change).await,
        }
    }
}

operations! {
    /// A mailbox's folders, by name.
    fn folders(&self, mailbox_id: i64) -> Vec<Folder>;

    fn folder_by_id(&self, folder_id: i64) -> Option<Folder>;

    /// Takes the \Recent messages of `folder_id` below `upto` for one session: returns
    /// where the unannounced UIDs began, so the caller's recent messages are those from
    /// it up to `upto`; every other session will see them as not recent. Done by the
    /// writer, so two sessions never take the same message.
    fn claim_recent(&self, folder_id: i64, upto: u32) -> u32;

    /// The subscribed names of a mailbox, whether or not their folders exist.
    fn subscriptions(&self, mailbox_id: i64) -> Vec<String>;

}

// ---- Quotas ----

operations! {
    /// The limits and usage of a mailbox; `None` when there is no such mailbox.
    fn quota(&self, mailbox_id: i64) -> Option<Quota>;

    /// The limits and usage of the mailbox holding a folder (SMTP knows the INBOX).
    fn quota_of_folder(&self, folder_id: i64) -> Option<Quota>;

    /// Changes a mailbox's limits; returns them with the usage, or `NoMailbox`. A limit
    /// below the current usage is allowed: nothing is removed, new mail is refused.
    fn set_quota(&self, address: &str, storage: QuotaLimit, messages: QuotaLimit) -> Quota;
}

// ---- Messages ----

impl Store {
    /// Appends one message, or refuses it with `OverQuota` if it would take the mailbox
    /// over a limit; returns once it is durable.
    pub async fn append(
        &self,
        folder_id: i64,
        message: &[u8],
        flags: Flags,
        internal_date: DateTime<Utc>,
    ) -> Result<Appended, StoreError> {
        self.append_one(folder_id, message, flags, internal_date, true)
            .await
    }

    /// Appends several messages to one folder in one transaction (MULTIAPPEND): all are
    /// stored or none, each checked against the mailbox's limits after those before it,
    /// so `OverQuota` refuses the whole set. UIDs follow the order given.
    pub async fn append_many(
        &self,
        folder_id: i64,
        messages: Vec<NewMessage>,
    ) -> Result<Vec<Appended>, StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => b.append_many(folder_id, messages).await,
            Backend::Postgres(b) => b.append_many(folder_id, messages).await,
        }
    }

    /// Appends a message that SMTP accepted: the limits were checked at RCPT, when the
    /// recipient alone could still be refused; after the data, refusing would bounce a
    /// message the sender was told would be taken, so it may take the mailbox over.
    pub async fn append_delivered(
        &self,
        folder_id: i64,
        message: &[u8],
        flags: Flags,
        internal_date: DateTime<Utc>,
    ) -> Result<Appended, StoreError> {
        self.append_one(folder_id, message, flags, internal_date, false)
            .await
    }

    /// One message, its mailbox's limits checked first when `check_quota`.
    async fn append_one(
        &self,
        folder_id: i64,
        message: &[u8],
        flags: Flags,
        internal_date: DateTime<Utc>,
        check_quota: bool,
    ) -> Result<Appended, StoreError> {
        match &self.backend {
            Backend::Sqlite(b) => {
                b.append(folder_id, message, flags, internal_date, check_quota)
                    .await
            }
            Backend::Postgres(b) => {
                b.append(folder_id, message, flags, internal_date, check_quota)
                    .await
            }
        }
    }
}

operations! {
    /// Delivers one message to several folders in one transaction, the body stored once.
    fn deliver(
        &self,
        folder_ids: Vec<i64>,
        message: Arc<RawMessage>,
        internal_date: DateTime<Utc>,
    ) -> Vec<Appended>;

    /// All messages of a folder in UID order (the session's sequence-number map).
    fn messages(&self, folder_id: i64) -> Vec<MessageMeta>;

    /// Messages with `from <= uid <= to`, in UID order.
    fn messages_in_range(&self, folder_id: i64, from: u32, to: u32) -> Vec<MessageMeta>;

    /// Messages changed after `modseq` (CONDSTORE CHANGEDSINCE, QRESYNC).
    fn changed_since(&self, folder_id: i64, modseq: u64) -> Vec<MessageMeta>;

    /// UIDs expunged after `modseq` (QRESYNC VANISHED).
    fn vanished_since(&self, folder_id: i64, modseq: u64) -> Vec<u32>;

    /// What a session showing the folder missed: the folder, the messages changed after
    /// `modseq` and, with `expunged_since`, the UIDs expunged after it, read at one
    /// moment (in one round trip where the backend is a server); `None` when the folder
    /// is gone.
    fn folder_changes(
        &self,
        folder_id: i64,
        modseq: u64,
        expunged_since: Option<u64>,
    ) -> Option<FolderChanges>;


    /// Per-folder counters for STATUS and SELECT.
    fn counts(&self, folder_id: i64) -> FolderCounts;

    /// The whole message.
    fn body(&self, body_id: i64) -> Vec<u8>;

    /// The header section only, without reading the body.
    fn header(&self, body_id: i64) -> Vec<u8>;

    /// Headers of many messages at once, for first-sync FETCHes: (uid, header).
    fn headers_in_range(&self, folder_id: i64, from: u32, to: u32) -> Vec<(u32, Vec<u8>)>;

    /// Changes flags on the given UIDs. With `unchanged_since`, messages modified after
    /// that MODSEQ are left alone and reported (CONDSTORE).
    fn store_flags(
        &self,
        folder_id: i64,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Flags,
        unchanged_since: Option<u64>,
    ) -> StoreOutcome;

    /// Copies messages (flags kept) to another folder; UIDs in ascending order. Refused
    /// with `OverQuota`, nothing copied, if the copies would take the mailbox over a limit.
    fn copy(&self, from_folder: i64, uids: Vec<u32>, to_folder: i64) -> Copied;

    /// Moves messages: a copy and an expunge in one transaction (RFC 6851). Within one
    /// mailbox the usage does not change, so only a move into another mailbox can be
    /// refused with `OverQuota`.
    fn move_messages(&self, from_folder: i64, uids: Vec<u32>, to_folder: i64) -> Copied;

    /// Removes messages flagged \Deleted (all, or only among `uids`).
    fn expunge(&self, folder_id: i64, uids: Option<Vec<u32>>) -> Expunged;

    /// Every UID of a folder, ascending: a session's sequence-number map, without the
    /// rest of each row (a 100,000-message folder is 400 KB, not megabytes).
    fn folder_uids(&self, folder_id: i64) -> Vec<u32>;
}

// ---- Sort keys ----

operations! {
    /// (uid, body id, keys) of the messages with UIDs in `from..=to`, by UID, with only
    /// the `fields` asked for filled in; keys are `None` where none were stored by rules
    /// `version`.
    fn sort_keys_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        version: i64,
        fields: SortFields,
    ) -> Vec<(u32, i64, Option<SortKeys>)>;

    /// Stores keys computed by rules `version`, replacing older ones. A body deleted in
    /// the meantime is skipped: its keys are of no use any more.
    fn put_sort_keys(&self, version: i64, keys: Vec<(i64, SortKeys)>) -> ();
}

// ---- The FETCH structure of bodies ----

operations! {
    /// (uid, body id, structure) of the messages with UIDs in `from..=to`, by UID; the
    /// structure is `None` where none was stored by rules `version`.
    fn structures_in_range(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        version: i64,
    ) -> Vec<(u32, i64, Option<Structure>)>;

    /// Stores structures computed by rules `version`, replacing older ones. A body
    /// deleted in the meantime is skipped.
    fn put_structures(&self, version: i64, rows: Vec<(i64, Structure)>) -> ();
}

// ---- The body text index ----

operations! {
    /// UIDs in `from..=to` whose body holds `needle` (in the form `search_text::needle`
    /// gives) where `scope` says, by the index: bodies it has no row for are not found.
    fn text_search(
        &self,
        folder_id: i64,
        from: u32,
        to: u32,
        needle: &str,
        scope: TextScope,
    ) -> Vec<u32>;

    /// (uid, body id) of the messages in `from..=to` whose body has no index row yet.
    fn unindexed_in_range(&self, folder_id: i64, from: u32, to: u32) -> Vec<(u32, i64)>;

    /// Indexes bodies stored before the index, by body id. A body deleted in the
    /// meantime, or indexed already, is skipped.
    fn put_search_text(&self, rows: Vec<(i64, SearchText)>) -> ();
}

// ---- The outbound queue ----

operations! {
    /// Stores the body once, delivers to the local folders and queues the remote
    /// recipients, all in one durable transaction.
    fn deliver_and_queue(
        &self,
        local_folders: Vec<i64>,
        outgoing: Outgoing,
        message: Arc<RawMessage>,
        now: DateTime<Utc>,
    ) -> (Vec<Appended>, i64);

    /// Queued messages whose next attempt is due, oldest first, with their pending
    /// recipients.
    fn queue_due(&self, now: DateTime<Utc>, limit: u32) -> Vec<QueuedMessage>;

    /// A local recipient's canonical address and INBOX folder, in one read: RCPT runs
    /// this for every recipient of every message.
    fn inbox_of(&self, address: &str) -> Option<(String, i64)>;

    /// How many messages wait in the queue.
    fn queue_len(&self) -> u64;

    /// Adds `traffic` to the counts of the day (UTC) of `at`, for the usage figures.
    fn record_traffic(&self, at: DateTime<Utc>, traffic: Traffic) -> ();

    /// The usage figures for `[from, to)`: mailboxes by kind (existing at `to`,
    /// created, deleted, published, unpublished, active), successful authentications by
    /// mechanism, and the mail carried (whole days: `from` and `to` at 00:00 UTC).
    fn usage(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Usage;

    /// When the oldest message still in the queue was accepted; None when it is empty.
    fn queue_oldest(&self) -> Option<DateTime<Utc>>;

    /// Records an attempt's outcome; a message with no pending recipient left leaves the
    /// queue (and its body, unless a folder holds it).
    fn queue_settle(&self, s: QueueSettlement) -> ();
}

// ---- The audit trail ----

operations! {
    /// Records a decision, or counts it on the recent row of an identical one.
    fn audit(&self, entry: AuditEntry) -> ();

    /// The most recent records, newest last; `mailbox` narrows to one mailbox.
    fn audit_records(&self, mailbox: Option<&str>, limit: u32) -> Vec<AuditRecord>;
}

// ---- Lifecycle: the run lease, candidates, state changes and notices ----

operations! {
    /// Takes the lease `name` for `holder` until `until` unless another holder has it and
    /// it has not expired at `now`. True when this holder now has it.
    fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> bool;

    /// Extends a lease this holder has; false when it was lost (expired and taken).
    fn renew_lease(&self, name: &str, holder: &str, until: DateTime<Utc>) -> bool;

    /// Gives a lease back (if this holder still has it).
    fn release_lease(&self, name: &str, holder: &str) -> ();

    /// When the current holder's lease runs out, if anyone holds it.
    fn lease_expiry(&self, name: &str) -> Option<DateTime<Utc>>;

    /// The mailboxes with these ids, in id order (missing ones are left out).
    fn mailboxes_by_ids(&self, ids: &[i64]) -> Vec<Mailbox>;

    /// Published mailboxes that were red-listed afterwards.
    fn red_listed_published(&self) -> Vec<i64>;

    /// Published personal and organisational mailboxes created at or before
    /// `created_before` whose last activity is at or before `active_before`.
    fn published_inactive(
        &self,
        active_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
    ) -> Vec<i64>;

    /// Published mailboxes, of any kind, not on hold, whose last activity is at or
    /// before `active_before` (about to be deleted).
    fn published_deletable(&self, active_before: DateTime<Utc>) -> Vec<i64>;

    /// Unpublished, not red-listed mailboxes that no rule keeps out of the directory:
    /// not (personal or organisational, created at or before `created_before` and
    /// inactive since `inactive_before`), and not due for deletion
    /// (inactive since `delete_before` and not on hold).
    fn publishable(
        &self,
        inactive_before: DateTime<Utc>,
        created_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Vec<i64>;

    /// Mailboxes not on hold whose last activity lies in `(delete_before, warn_before]`
    /// and that have no `kind` notice for that activity yet: (id, cycle).
    fn deletion_warnings_due(
        &self,
        kind: &str,
        warn_before: DateTime<Utc>,
        delete_before: DateTime<Utc>,
    ) -> Vec<(i64, i64)>;

    /// Mailboxes not on hold whose last activity is at or before `active_before`.
    fn deletable(&self, active_before: DateTime<Utc>) -> Vec<i64>;


    /// Marks these mailboxes unpublished at `at` where they were published; returns
    /// those that changed (see `mark_published` for why only the flag is compared).
    fn mark_unpublished(&self, ids: &[i64], at: DateTime<Utc>) -> Vec<i64>;

    /// Files a notice in the mailbox's INBOX, its local copies, and queues its remote
    /// copies, all in one transaction with the record that it was sent. Returns false,
    /// changing nothing, when every kind was already sent for this cycle, the mailbox is
    /// gone, or (for a deletion warning) it was used or put on hold since.
    fn send_notice(&self, notice: Notice) -> bool;

    /// Notices sent to a mailbox, oldest first.
    fn notices(&self, mailbox_id: i64) -> Vec<SentNotice>;

    /// Deletes up to `limit` mailboxes that are not on hold, not published, and inactive
    /// since `active_before`, with their mail and the bodies nothing else uses, and
    /// records an audit entry for each, in one transaction. Call again until it returns
    /// fewer than `limit`.
    fn delete_inactive(
        &self,
        active_before: DateTime<Utc>,
        at: DateTime<Utc>,
        reason: &str,
        limit: u32,
    ) -> Vec<DeletedMailbox>;
}
