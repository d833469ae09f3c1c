//! NOTIFY (RFC 5465): the command, and the unsolicited responses that tell the client
//! what it asked to hear of, between commands and in IDLE.
//!
//! A session with NOTIFY on holds a `Watch` (`watch`), with its own hearing of the
//! store's changes, so the selected folder's updates, which read the session's other
//! hearing, take nothing from it. A change heard is read again from the store and
//! compared with what the client was last told, so a client hears what differs, once,
//! whichever node made the change. Only the session's own mailbox is ever watched: it
//! is the one the identity was granted, and a withdrawn grant ends the session.

use std::collections::{BTreeSet, HashMap};

use imap_codec::imap_types::core::{QuotedChar, Tag};
use imap_codec::imap_types::fetch::MessageDataItemName;
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::response::{Data, StatusKind};
use imap_codec::imap_types::status::StatusDataItem;

use super::authenticated::{attribute, list_attributes};
use super::connection::{ConnError, encode};
use super::extended::notify::{BADEVENT, NotifyCommand, Refusal, Specifier};
use super::fetch::Stopped;
use super::names::DELIMITER;
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use super::view::View;
use super::watch::{Pending, Status, Watch, status_of};
use crate::store::{Folder, StoreError};

/// A name as an IMAP quoted string, for the extended data imap-codec does not write.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Why changes could not be told: the client is gone, or the store could not be read.
enum Failure {
    Conn(ConnError),
    Store(StoreError),
}

impl From<ConnError> for Failure {
    fn from(e: ConnError) -> Self {
        Failure::Conn(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl Session {
    /// NOTIFY SET and NOTIFY NONE.
    pub(crate) async fn notify(
        &mut self,
        tag: &Tag<'static>,
        user: &mut User,
        view: Option<&mut View>,
        command: Result<NotifyCommand, Refusal>,
    ) -> Result<Transition, ConnError> {
        let (status, groups) = match command {
            Err(Refusal::BadEvent) => {
                let code = Some(text::code(BADEVENT));
                return self
                    .complete(tag, StatusKind::No, code, "event not supported")
                    .await;
            }
            Err(Refusal::Invalid(why)) => return self.bad(tag, why).await,
            Ok(NotifyCommand::None) => {
                user.notify = None;
                return self.ok(tag, "NOTIFY completed").await;
            }
            Ok(NotifyCommand::Set { status, groups }) => (status, groups),
        };
        // Heard from before the reads, so no change falls between them and the watch.
        let changes = self.shared.context.store.subscribe();
        let mut watch = Watch {
            groups,
            changes,
            mailbox_id: user.auth.mailbox.id,
            folders: HashMap::new(),
            subscribed: BTreeSet::new(),
            status: HashMap::new(),
            pending: Pending::default(),
        };
        let selected = view.map(|v| v.folder.id);
        let read = self.read_watched(&mut watch).await;
        let told = match read {
            Ok(told) => told,
            Err(e) => return self.no_internal(tag, "NOTIFY failed", &e).await,
        };
        if status {
            for f in told.into_iter().filter(|f| Some(f.id) != selected) {
                if let Some(s) = watch.status.get(&f.id).copied() {
                    self.send_status(&f.name, s, user.condstore).await?;
                }
            }
        }
        user.notify = Some(Box::new(watch));
        self.ok(tag, "NOTIFY completed").await
    }

    /// Reads the mailbox's folders, subscriptions and the STATUS of every watched folder
    /// into `watch`; returns the watched folders, by name. The selected folder's STATUS
    /// is read too: once another is selected, its changes are told against it.
    async fn read_watched(&self, watch: &mut Watch) -> Result<Vec<Folder>, StoreError> {
        let store = &self.shared.context.store;
        let folders = store.folders(watch.mailbox_id).await?;
        watch.subscribed = store
            .subscriptions(watch.mailbox_id)
            .await?
            .into_iter()
            .collect();
        let mut watched = Vec::new();
        for f in &folders {
            if watch.watched(f, None) {
                let counts = store.counts(f.id).await?;
                watch.status.insert(f.id, status_of(f, &counts));
                watched.push(f.clone());
            }
        }
        watch.folders = folders.into_iter().map(|f| (f.id, f)).collect();
        Ok(watched)
    }

    async fn send_status(
        &mut self,
        name: &str,
        s: Status,
        condstore: bool,
    ) -> Result<(), ConnError> {
        let Some(mailbox) = text::mailbox(name) else {
            return Ok(());
        };
        let mut items = vec![
            StatusDataItem::Messages(s.messages),
            StatusDataItem::UidNext(text::nz(s.uidnext)),
            StatusDataItem::UidValidity(text::nz(s.uidvalidity)),
            StatusDataItem::Unseen(s.unseen),
        ];
        if condstore {
            items.push(StatusDataItem::HighestModSeq(s.highestmodseq));
        }
        self.conn
            .send(&text::data(Data::Status {
                mailbox,
                items: items.into(),
            }))
            .await
    }

    /// `* LIST (attributes) "/" name`, with `("OLDNAME" (old))` after a rename.
    async fn send_list(
        &mut self,
        name: &str,
        items: Vec<FlagNameAttribute<'static>>,
        old: Option<&str>,
    ) -> Result<(), ConnError> {
        let Some(mailbox) = text::mailbox(name) else {
            return Ok(());
        };
        let line = text::data(Data::List {
            items,
            delimiter: QuotedChar::try_from(DELIMITER).ok(),
            mailbox,
        });
        let mut bytes = encode(&line);
        if let Some(old) = old
            && bytes.ends_with(b"\r\n")
        {
            // imap-codec writes no extended data (RFC 5258 §9): it ends the line.
            bytes.truncate(bytes.len() - 2);
            bytes.extend_from_slice(format!(" (\"OLDNAME\" ({}))\r\n", quoted(old)).as_bytes());
        }
        self.conn.send_raw(&bytes).await
    }

    /// Tells the client what it asked to hear of that changed since it was last told.
    /// `allow_expunge`: whether EXPUNGE may be sent now (no command under way, or one
    /// that allows it); SELECTED-DELAYED keeps them for a command in any case.
    /// `Some` when the session must change state (the selected folder is gone).
    pub(crate) async fn notify_deliver(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        allow_expunge: bool,
    ) -> Result<Option<Transition>, ConnError> {
        let Some(mut watch) = user.notify.take() else {
            return Ok(None);
        };
        let pending = watch.take_heard();
        if pending.missed {
            // RFC 5465 §5.8: the client is told, and hears nothing more until it asks.
            self.conn
                .send(&text::untagged_ok(
                    Some(text::code("NOTIFICATIONOVERFLOW")),
                    "too many changes at once, notifications stopped",
                ))
                .await?;
            return Ok(None);
        }
        let selected_id = view.as_ref().map(|v| v.folder.id);
        let result = self
            .tell_changes(&mut watch, &pending, selected_id, user.condstore)
            .await;
        match result {
            Ok(()) => {}
            Err(Failure::Conn(e)) => return Err(e),
            Err(Failure::Store(e)) => {
                // Told against what the client last heard: the next change of the
                // same kind tells what this one could not.
                tracing::warn!(error = %e, "cannot read the changes NOTIFY reports");
            }
        }
        let transition = match view {
            Some(v) => {
                self.notify_selected(user, &watch, v, &pending, allow_expunge)
                    .await?
            }
            None => None,
        };
        if transition.is_none() {
            user.notify = Some(watch);
        }
        Ok(transition)
    }

    /// Folder names, subscriptions and the STATUS of the folders other than the selected.
    async fn tell_changes(
        &mut self,
        watch: &mut Watch,
        pending: &Pending,
        selected: Option<i64>,
        condstore: bool,
    ) -> Result<(), Failure> {
        let store = self.shared.context.store.clone();
        if pending.names || pending.any {
            let now = store.folders(watch.mailbox_id).await?;
            let mut fresh: HashMap<i64, Folder> = HashMap::new();
            for f in &now {
                let names = |n: &str| watch.events(n).is_some_and(|e| e.names);
                match watch.folders.get(&f.id) {
                    None if names(&f.name) => {
                        self.send_list(&f.name, list_attributes(f, &now), None)
                            .await?;
                    }
                    Some(old) if old.name != f.name && (names(&f.name) || names(&old.name)) => {
                        self.send_list(&f.name, list_attributes(f, &now), Some(&old.name))
                            .await?;
                    }
                    Some(old) if old.noselect != f.noselect && names(&f.name) => {
                        self.send_list(&f.name, list_attributes(f, &now), None)
                            .await?;
                    }
                    _ => {}
                }
                fresh.insert(f.id, f.clone());
            }
            let mut gone: Vec<&Folder> = watch
                .folders
                .values()
                .filter(|f| !fresh.contains_key(&f.id))
                .collect();
            gone.sort_by(|a, b| a.name.cmp(&b.name));
            for f in gone {
                if watch.events(&f.name).is_some_and(|e| e.names) {
                    let items = attribute("NonExistent").into_iter().collect();
                    self.send_list(&f.name, items, None).await?;
                }
            }
            watch.status.retain(|id, _| fresh.contains_key(id));
            watch.folders = fresh;
        }
        if pending.subscriptions || pending.any {
            let now: BTreeSet<String> = store
                .subscriptions(watch.mailbox_id)
                .await?
                .into_iter()
                .collect();
            let told = |n: &str| watch.events(n).is_some_and(|e| e.subscriptions);
            let added: Vec<String> = now.difference(&watch.subscribed).cloned().collect();
            let removed: Vec<String> = watch.subscribed.difference(&now).cloned().collect();
            // Whether a name matches SUBSCRIBED is read before the list changes for a
            // removal, after it for an addition: each is told to those watching it.
            let removed: Vec<String> = removed.into_iter().filter(|n| told(n)).collect();
            watch.subscribed = now;
            for name in removed {
                self.send_list(&name, Vec::new(), None).await?;
            }
            for name in added {
                if watch.events(&name).is_some_and(|e| e.subscriptions) {
                    let items = attribute("Subscribed").into_iter().collect();
                    self.send_list(&name, items, None).await?;
                }
            }
        }
        let mut folders: Vec<Folder> = watch
            .folders
            .values()
            .filter(|f| watch.watched(f, selected))
            .cloned()
            .collect();
        folders.sort_by(|a, b| a.name.cmp(&b.name));
        for f in folders {
            let known = watch.status.get(&f.id).copied();
            let look = pending.any || pending.folders.contains(&f.id) || known.is_none();
            if !look {
                continue;
            }
            let Some(now) = store.folder_by_id(f.id).await? else {
                continue;
            };
            let counts = store.counts(f.id).await?;
            let status = status_of(&now, &counts);
            watch.status.insert(f.id, status);
            let (Some(known), Some(events)) = (known, watch.events(&f.name)) else {
                continue;
            };
            let messages = (known.messages, known.uidnext, known.uidvalidity)
                != (status.messages, status.uidnext, status.uidvalidity);
            let flags =
                (known.unseen, known.highestmodseq) != (status.unseen, status.highestmodseq);
            if (messages && events.messages) || (flags && events.flags) {
                self.send_status(&f.name, status, condstore).await?;
            }
        }
        Ok(())
    }

    /// The selected folder, when a SELECTED or SELECTED-DELAYED group names it: its
    /// EXISTS, EXPUNGE and FETCH responses, and the new messages' fetch attributes.
    async fn notify_selected(
        &mut self,
        user: &mut User,
        watch: &Watch,
        view: &mut View,
        pending: &Pending,
        allow_expunge: bool,
    ) -> Result<Option<Transition>, ConnError> {
        let Some(group) = watch.selected() else {
            return Ok(None);
        };
        let Some(events) = &group.events else {
            return Ok(None);
        };
        if !events.messages || !(pending.any || pending.folders.contains(&view.folder.id)) {
            return Ok(None);
        }
        let delayed = matches!(group.mailboxes, Specifier::SelectedDelayed);
        let before = view.uids.last().copied().unwrap_or(0);
        view.dirty = true;
        if let Some(t) = self
            .sync_or_defer(user, view, allow_expunge && !delayed)
            .await?
        {
            return Ok(Some(t));
        }
        if events.fetch.is_empty() {
            return Ok(None);
        }
        let positions: Vec<usize> = (0..view.uids.len())
            .filter(|p| view.uids[*p] > before)
            .collect();
        if positions.is_empty() {
            return Ok(None);
        }
        let mut items: Vec<MessageDataItemName<'static>> = events.fetch.clone();
        if !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        match self.fetch_messages(view, &positions, &items, None).await? {
            Ok(()) => {}
            Err(Stopped::Store(e) | Stopped::SetSeen(e)) => {
                tracing::warn!(error = %e, "cannot fetch the new messages NOTIFY reports");
            }
            Err(Stopped::Undecodable(_)) => {
                tracing::info!("a new message's part cannot be decoded for NOTIFY");
            }
        }
        Ok(None)
    }
}
