//! What a NOTIFY session watches (RFC 5465): the client's event groups, its own hearing
//! of the store's changes, and what the client was last told of its mailbox: its
//! folders, its subscriptions and each watched folder's STATUS. `notify` compares what
//! it reads again with this and tells the difference.

use std::collections::{BTreeSet, HashMap};

use super::extended::notify::{Events, Group, Specifier};
use super::names::DELIMITER;
use crate::store::{Change, Folder, FolderCounts, Heard, Subscription};

/// What a client is told in a notification STATUS (RFC 5465 §5.1); HIGHESTMODSEQ too
/// once CONDSTORE is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Status {
    pub(crate) messages: u32,
    pub(crate) uidnext: u32,
    pub(crate) uidvalidity: u32,
    pub(crate) unseen: u32,
    pub(crate) highestmodseq: u64,
}

/// Changes heard and not yet told.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    pub(crate) folders: BTreeSet<i64>,
    pub(crate) names: bool,
    pub(crate) subscriptions: bool,
    /// Anything may have changed (a shared database's notifications were lost).
    pub(crate) any: bool,
    /// The session fell behind and changes were dropped: RFC 5465 §5.8.
    pub(crate) missed: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.folders.is_empty() && !self.names && !self.subscriptions && !self.any && !self.missed
    }
}

pub(crate) struct Watch {
    pub(crate) groups: Vec<Group>,
    pub(crate) changes: Subscription,
    pub(crate) mailbox_id: i64,
    /// The folders as the client last heard of them, by id.
    pub(crate) folders: HashMap<i64, Folder>,
    pub(crate) subscribed: BTreeSet<String>,
    /// The STATUS last told (or, when none was asked, read) of each watched folder.
    pub(crate) status: HashMap<i64, Status>,
    pub(crate) pending: Pending,
}

impl Watch {
    /// The group the selected folder follows, if the client named it.
    pub(crate) fn selected(&self) -> Option<&Group> {
        self.groups.iter().find(|g| g.mailboxes.selected())
    }

    /// The events a folder that is not the selected one is watched for: those of the
    /// first group naming it.
    pub(crate) fn events(&self, name: &str) -> Option<&Events> {
        let group = self.groups.iter().find(|g| match &g.mailboxes {
            Specifier::Selected | Specifier::SelectedDelayed => false,
            Specifier::Inboxes => name == "INBOX",
            Specifier::Personal => true,
            Specifier::Subscribed => self.subscribed.contains(name),
            Specifier::Subtree(roots) => roots.iter().any(|r| {
                name == r
                    || name
                        .strip_prefix(r.as_str())
                        .is_some_and(|rest| rest.starts_with(DELIMITER))
            }),
            Specifier::Mailboxes(names) => names.iter().any(|n| n == name),
        })?;
        group.events.as_ref()
    }

    /// Whether a folder's messages are watched (it gets STATUS responses).
    pub(crate) fn watched(&self, f: &Folder, selected: Option<i64>) -> bool {
        !f.noselect
            && Some(f.id) != selected
            && self.events(&f.name).is_some_and(|e| e.messages || e.flags)
    }

    /// Notes a change heard; true when it concerns this session's mailbox.
    fn note(&mut self, heard: Heard) -> bool {
        match heard {
            Heard::Missed => self.pending.missed = true,
            Heard::Change(Change::Any) => self.pending.any = true,
            Heard::Change(Change::Folder(c)) if self.folders.contains_key(&c.folder_id) => {
                self.pending.folders.insert(c.folder_id);
            }
            Heard::Change(Change::Folders { mailbox_id }) if mailbox_id == self.mailbox_id => {
                self.pending.names = true;
            }
            Heard::Change(Change::Subscriptions { mailbox_id })
                if mailbox_id == self.mailbox_id =>
            {
                self.pending.subscriptions = true;
            }
            Heard::Change(_) => return false,
        }
        true
    }

    /// Returns once something concerning this mailbox was heard. Cancel-safe: what was
    /// heard is kept.
    async fn heard(&mut self) {
        while self.pending.is_empty() {
            let h = self.changes.next().await;
            self.note(h);
        }
    }

    pub(crate) fn take_heard(&mut self) -> Pending {
        while let Some(h) = self.changes.try_next() {
            self.note(h);
        }
        std::mem::take(&mut self.pending)
    }
}

/// Returns once a session with NOTIFY on has something to tell; never otherwise.
pub(crate) async fn heard(watch: Option<&mut Watch>) {
    match watch {
        Some(w) => w.heard().await,
        None => std::future::pending().await,
    }
}

pub(crate) fn status_of(f: &Folder, counts: &FolderCounts) -> Status {
    Status {
        messages: counts.messages,
        uidnext: f.uidnext,
        uidvalidity: f.uidvalidity,
        unseen: counts.unseen,
        highestmodseq: f.highestmodseq,
    }
}
