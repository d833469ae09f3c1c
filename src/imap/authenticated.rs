//! The authenticated family: folders of the session's one mailbox (BAL), APPEND,
//! ENABLE, NAMESPACE and IDLE. Every folder lookup is scoped to
//! `Authenticated.mailbox`: no command can reach another mailbox.

use std::num::{NonZeroU32, NonZeroU64};

use chrono::{DateTime, Utc};
use imap_codec::IdleDoneCodec;
use imap_codec::imap_types::command::{Command, CommandBody, SelectParameter};
use imap_codec::imap_types::core::{Atom, IString, QuotedChar};
use imap_codec::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_codec::imap_types::extensions::enable::CapabilityEnable;
use imap_codec::imap_types::extensions::namespace::Namespace;
use imap_codec::imap_types::flag::FlagNameAttribute;
use imap_codec::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_codec::imap_types::response::{
    Code, CommandContinuationRequest, Data, Response, StatusKind,
};
use imap_codec::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::connection::{ConnError, Incoming};
use super::names::{self, DELIMITER};
use super::selected::{claim_recent, flags_fetch, store_flags};
use super::sequence;
use super::session::Session;
use super::state::{Transition, User};
use super::text;
use super::view::View;
use crate::store::{DEFAULT_FOLDERS, Folder, FolderSnapshot, StoreError};

impl Session {
    /// A folder of the session's mailbox (`mailbox_id`), by the name the client gave. A
    /// name that cannot be a folder is no folder; a store error is not "no such
    /// mailbox", which would invite the client to CREATE it.
    /// A `\Noselect` name is no folder to select, append to or copy into.
    pub(crate) async fn target_folder(
        &self,
        mailbox_id: i64,
        mailbox: &Mailbox<'_>,
    ) -> Result<Option<Folder>, StoreError> {
        Ok(self
            .named_folder(mailbox_id, mailbox)
            .await?
            .filter(|f| !f.noselect))
    }

    /// The folder row behind a name, `\Noselect` ones included (DELETE, RENAME, CREATE).
    async fn named_folder(
        &self,
        mailbox_id: i64,
        mailbox: &Mailbox<'_>,
    ) -> Result<Option<Folder>, StoreError> {
        let Some(name) = self.folder_name(mailbox) else {
            return Ok(None);
        };
        self.shared.context.store.folder(mailbox_id, &name).await
    }

    /// The stored name of the folder a client meant, in the session's name form.
    pub(crate) fn folder_name(&self, mailbox: &Mailbox<'_>) -> Option<String> {
        text::folder_name(mailbox).map(|n| names::to_store(&n, self.imap4rev2))
    }

    /// The folders as this session names them, so that LIST patterns (which the client
    /// writes in its own form) match and the names go out as they are.
    pub(crate) fn client_folders(&self, mut folders: Vec<Folder>) -> Vec<Folder> {
        if self.imap4rev2 {
            for f in &mut folders {
                f.name = names::from_modified_utf7(&f.name);
            }
        }
        folders
    }

    /// `sync_or_defer` when a folder is selected; otherwise there is nothing to report.
    pub(crate) async fn sync_selected(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        allow_expunge: bool,
    ) -> Result<Option<Transition>, ConnError> {
        match view {
            Some(view) => self.sync_or_defer(user, view, allow_expunge).await,
            None => Ok(None),
        }
    }

    /// The folder commands, valid whether a folder is selected (`view`) or not.
    pub(crate) async fn mailbox_command(
        &mut self,
        user: &mut User,
        mut view: Option<&mut View>,
        c: Command<'static>,
    ) -> Result<Transition, ConnError> {
        let tag = c.tag;
        let mailbox_id = user.auth.mailbox.id;
        let store = self.shared.context.store.clone();
        // Changes to the selected folder are reported after any command, not only the
        // message commands (SELECT replaces the view, IDLE reports on its own).
        if !matches!(
            c.body,
            CommandBody::Select { .. } | CommandBody::Examine { .. } | CommandBody::Idle
        ) && let Some(t) = self.sync_selected(user, view.as_deref_mut(), true).await?
        {
            return Ok(t);
        }
        let is_subscribe = matches!(c.body, CommandBody::Subscribe { .. });
        let is_lsub = matches!(c.body, CommandBody::Lsub { .. });
        match c.body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => Box::pin(self.select(user, view, tag, mailbox, parameters, false)).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => Box::pin(self.select(user, view, tag, mailbox, parameters, true)).await,
            CommandBody::Create { mailbox } => {
                let Some(name) = self.folder_name(&mailbox) else {
                    return self.no(&tag, "invalid mailbox name").await;
                };
                let name = name.trim_end_matches(DELIMITER);
                if let Err(e) = names::check(name) {
                    return self.no(&tag, &format!("invalid mailbox name: {e}")).await;
                }
                match store.create_folder(mailbox_id, name).await {
                    Ok(_) => self.ok(&tag, "CREATE completed").await,
                    Err(StoreError::FolderExists(_)) => {
                        // A \Noselect name left by DELETE becomes a folder again.
                        match self.named_folder(mailbox_id, &mailbox).await {
                            Ok(Some(f)) if f.noselect => match store.make_selectable(f.id).await {
                                Ok(()) => self.ok(&tag, "CREATE completed").await,
                                Err(e) => self.no_internal(&tag, "CREATE failed", &e).await,
                            },
                            _ => self.no_already_exists(&tag, "mailbox already exists").await,
                        }
                    }
                    Err(e) => self.no_internal(&tag, "CREATE failed", &e).await,
                }
            }
            CommandBody::Delete { mailbox } => {
                let folder = match self.named_folder(mailbox_id, &mailbox).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return self.no_nonexistent(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                };
                if DEFAULT_FOLDERS.iter().any(|(n, _)| *n == folder.name) {
                    return self.no(&tag, "this mailbox cannot be deleted").await;
                }
                let prefix = format!("{}{DELIMITER}", folder.name);
                // Without the list, children cannot be ruled out: refuse rather than
                // leave them orphaned.
                let folders = match store.folders(mailbox_id).await {
                    Ok(f) => f,
                    Err(e) => return self.no_internal(&tag, "cannot list folders", &e).await,
                };
                let has_children = folders.iter().any(|f| f.name.starts_with(&prefix));
                // With children, the folder loses its messages and keeps its name for
                // them as \Noselect (RFC 3501 6.3.4); a \Noselect one goes with its last.
                let deleted = match (has_children, folder.noselect) {
                    (true, true) => {
                        return self
                            .no(&tag, "mailbox has children and no messages to delete")
                            .await;
                    }
                    (true, false) => store.clear_folder(folder.id).await,
                    (false, _) => store.delete_folder(folder.id).await,
                };
                if let Err(e) = deleted {
                    return self.no_internal(&tag, "DELETE failed", &e).await;
                }
                let unselect = view.is_some_and(|v| v.folder.id == folder.id);
                self.conn
                    .send(&text::tagged_ok(&tag, None, "DELETE completed"))
                    .await?;
                Ok(if unselect {
                    Transition::Unselect
                } else {
                    Transition::None
                })
            }
            CommandBody::Rename { from, to } => {
                let source = match self.named_folder(mailbox_id, &from).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return self.no_nonexistent(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                };
                let Some(to_name) = self.folder_name(&to) else {
                    return self.no(&tag, "invalid mailbox name").await;
                };
                let to_name = to_name.trim_end_matches(DELIMITER).to_owned();
                if let Err(e) = names::check(&to_name) {
                    return self.no(&tag, &format!("invalid mailbox name: {e}")).await;
                }
                let result = if source.name == "INBOX" {
                    // RFC 3501: renaming INBOX moves its messages and leaves it empty.
                    // A failed read must not pass for an empty INBOX: the client would
                    // be told its messages moved.
                    match store.create_folder(mailbox_id, &to_name).await {
                        Ok(target) => match store.folder_uids(source.id).await {
                            Ok(uids) => store
                                .move_messages(source.id, uids, target.id)
                                .await
                                .map(|_| ()),
                            Err(e) => Err(e),
                        },
                        Err(e) => Err(e),
                    }
                } else {
                    store
                        .rename_folder(mailbox_id, &source.name, &to_name, DELIMITER)
                        .await
                };
                match result {
                    Ok(()) => {
                        if let Some(v) = view {
                            v.dirty = true;
                        }
                        self.ok(&tag, "RENAME completed").await
                    }
                    Err(StoreError::FolderExists(_)) => {
                        self.no_already_exists(&tag, "target mailbox already exists")
                            .await
                    }
                    Err(e) => self.no_internal(&tag, "RENAME failed", &e).await,
                }
            }
            CommandBody::Subscribe { mailbox } | CommandBody::Unsubscribe { mailbox } => {
                let subscribe = is_subscribe;
                // SUBSCRIBE checks that the folder exists (RFC 3501 lets it); UNSUBSCRIBE
                // must not, or a deleted folder could never leave the list.
                let name = if subscribe {
                    match self.target_folder(mailbox_id, &mailbox).await {
                        Ok(Some(f)) => f.name,
                        Ok(None) => return self.no_nonexistent(&tag).await,
                        Err(e) => {
                            return self.no_internal(&tag, "cannot look a folder up", &e).await;
                        }
                    }
                } else {
                    match &mailbox {
                        Mailbox::Inbox => "INBOX".to_owned(),
                        other => match self.folder_name(other) {
                            Some(n) => n,
                            None => return self.no(&tag, "invalid mailbox name").await,
                        },
                    }
                };
                if let Err(e) = store.set_subscribed(mailbox_id, &name, subscribe).await {
                    return self.no_internal(&tag, "SUBSCRIBE failed", &e).await;
                }
                self.ok(&tag, "completed").await
            }
            CommandBody::List {
                reference,
                mailbox_wildcard,
            }
            | CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => {
                let lsub = is_lsub;
                self.list(&tag, mailbox_id, &reference, &mailbox_wildcard, lsub)
                    .await
            }
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                let folder = match self.target_folder(mailbox_id, &mailbox).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return self.no_nonexistent(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                };
                let items = match self.status_items(&folder, &item_names).await {
                    Ok(i) => i,
                    Err(e) => return self.no_internal(&tag, "STATUS failed", &e).await,
                };
                self.conn
                    .send(&text::data(Data::Status {
                        mailbox: text::echo(mailbox),
                        items: items.into(),
                    }))
                    .await?;
                self.ok(&tag, "STATUS completed").await
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => {
                let folder = match self.target_folder(mailbox_id, &mailbox).await {
                    Ok(Some(f)) => f,
                    Ok(None) => return self.no_such_target(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                };
                let bytes: &[u8] = match &message {
                    LiteralOrLiteral8::Literal(l) => l.data(),
                    LiteralOrLiteral8::Literal8(l) => l.data.as_ref(),
                };
                let when: DateTime<Utc> = date
                    .map(|d| d.as_ref().with_timezone(&Utc))
                    .unwrap_or_else(|| self.shared.context.clock.now());
                let flags = store_flags(&flags);
                let appended = match store.append(folder.id, bytes, flags.clone(), when).await {
                    Ok(a) => a,
                    Err(StoreError::OverQuota) => return self.no_over_quota(&tag).await,
                    Err(e) => return self.no_internal(&tag, "APPEND failed", &e).await,
                };
                self.shared.context.metrics.messages_appended.inc();
                drop(message);
                let code = match (
                    NonZeroU32::new(appended.uidvalidity),
                    NonZeroU32::new(appended.uid),
                ) {
                    (Some(v), Some(u)) => Some(Code::AppendUid {
                        uid_validity: v,
                        uid: u,
                    }),
                    _ => None,
                };
                if let Some(v) = view.as_deref_mut() {
                    self.own_append(v, std::slice::from_ref(&appended), &[&flags])
                        .await?;
                }
                if let Some(t) = self.sync_selected(user, view, true).await? {
                    return Ok(t);
                }
                self.conn
                    .send(&text::tagged_ok(&tag, code, "APPEND completed"))
                    .await?;
                Ok(Transition::None)
            }
            CommandBody::Namespace => {
                let personal = vec![Namespace {
                    prefix: text::istring(""),
                    delimiter: QuotedChar::try_from(DELIMITER).ok(),
                    extensions: Vec::new(),
                }];
                self.conn
                    .send(&text::data(Data::Namespace {
                        personal,
                        other: Vec::new(),
                        shared: Vec::new(),
                    }))
                    .await?;
                self.ok(&tag, "NAMESPACE completed").await
            }
            CommandBody::Enable { capabilities } => {
                let mut enabled = Vec::new();
                for cap in capabilities.as_ref() {
                    let name = cap.to_string().to_ascii_uppercase();
                    match name.as_str() {
                        "CONDSTORE" => {
                            user.condstore = true;
                            enabled.push(cap.clone());
                        }
                        "QRESYNC" => {
                            user.condstore = true;
                            user.qresync = true;
                            enabled.push(cap.clone());
                        }
                        "IMAP4REV2" => {
                            self.imap4rev2 = true;
                            // A rev2 session has no \Recent messages (RFC 9051 appendix E).
                            if let Some(v) = view.as_deref_mut() {
                                v.recent.clear();
                            }
                            enabled.push(cap.clone());
                        }
                        _ => {}
                    }
                }
                let enabled: Vec<CapabilityEnable<'static>> = enabled;
                self.conn
                    .send(&text::data(Data::Enabled {
                        capabilities: enabled,
                    }))
                    .await?;
                self.ok(&tag, "ENABLE completed").await
            }
            CommandBody::Idle => self.idle(user, view, tag).await,
            _ => self.bad(&tag, "unexpected command").await,
        }
    }

    /// CREATE or RENAME onto a name in use (RFC 5530 `[ALREADYEXISTS]`).
    async fn no_already_exists(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        msg: &str,
    ) -> Result<Transition, ConnError> {
        let code = Some(text::code("ALREADYEXISTS"));
        self.complete(tag, StatusKind::No, code, msg).await
    }

    pub(crate) async fn no_nonexistent(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
    ) -> Result<Transition, ConnError> {
        let code = Some(text::code("NONEXISTENT"));
        self.complete(tag, StatusKind::No, code, "no such mailbox")
            .await
    }

    /// The STATUS items `names` asks for (STATUS, and LIST-STATUS for each folder listed).
    pub(crate) async fn status_items(
        &self,
        folder: &Folder,
        names: &[StatusDataItemName],
    ) -> Result<Vec<StatusDataItem>, StoreError> {
        let counts = self.shared.context.store.counts(folder.id).await?;
        Ok(names
            .iter()
            .map(|n| match n {
                StatusDataItemName::Messages => StatusDataItem::Messages(counts.messages),
                StatusDataItemName::Recent => StatusDataItem::Recent(counts.recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(text::nz(folder.uidnext)),
                StatusDataItemName::UidValidity => {
                    StatusDataItem::UidValidity(text::nz(folder.uidvalidity))
                }
                StatusDataItemName::Unseen => StatusDataItem::Unseen(counts.unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(counts.deleted),
                StatusDataItemName::DeletedStorage => {
                    StatusDataItem::DeletedStorage(counts.deleted_size.div_ceil(1024))
                }
                StatusDataItemName::Size => StatusDataItem::Size(counts.size),
                StatusDataItemName::HighestModSeq => {
                    StatusDataItem::HighestModSeq(folder.highestmodseq)
                }
            })
            .collect())
    }

    async fn select(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        tag: imap_codec::imap_types::core::Tag<'static>,
        mailbox: Mailbox<'static>,
        parameters: Vec<SelectParameter>,
        read_only: bool,
    ) -> Result<Transition, ConnError> {
        let was_selected = view.is_some();
        let qresync_on = user.qresync;
        // RFC 9051 §7.1 takes `[CLOSED]` from QRESYNC.
        if was_selected && (qresync_on || self.imap4rev2) {
            self.conn
                .send(&text::untagged_ok(
                    Some(Code::Closed),
                    "previous mailbox closed",
                ))
                .await?;
        }
        let mut qresync = None;
        for p in &parameters {
            match p {
                SelectParameter::CondStore => user.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !qresync_on {
                        self.bad(&tag, "QRESYNC must be enabled first").await?;
                        return Ok(if was_selected {
                            Transition::Unselect
                        } else {
                            Transition::None
                        });
                    }
                    qresync = Some((*uid_validity, *mod_sequence_value, known_uids.clone()));
                }
            }
        }
        let not_selected = if was_selected {
            Transition::Unselect
        } else {
            Transition::None
        };
        let store = self.shared.context.store.clone();
        // Everything is read before the first untagged response, so that a failure is a
        // plain NO and never half a SELECT.
        let snapshot = match self.folder_name(&mailbox) {
            Some(name) => store.folder_snapshot(user.auth.mailbox.id, &name).await,
            None => Ok(None),
        };
        let snapshot = match snapshot {
            Ok(s) => s,
            Err(e) => {
                self.no_internal(&tag, "SELECT failed", &e).await?;
                return Ok(not_selected);
            }
        };
        // A `\Noselect` name is no folder to select.
        let Some(FolderSnapshot {
            folder,
            uids,
            first_unseen: unseen,
            keywords,
        }) = snapshot.filter(|s| !s.folder.noselect)
        else {
            self.no_nonexistent(&tag).await?;
            return Ok(not_selected);
        };
        let resync = qresync
            .as_ref()
            .filter(|(validity, ..)| validity.get() == folder.uidvalidity)
            .map(|(_, since, _)| since.get());
        let changes = match resync {
            Some(since) => {
                let loaded = async {
                    Ok::<_, StoreError>((
                        store.vanished_since(folder.id, since).await?,
                        store.changed_since(folder.id, since).await?,
                    ))
                }
                .await;
                match loaded {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.no_internal(&tag, "SELECT failed", &e).await?;
                        return Ok(not_selected);
                    }
                }
            }
            None => None,
        };
        tracing::debug!(folder = %folder.name, read_only, messages = uids.len(), "selected");
        // SELECT makes what it shows \Recent for this session alone; EXAMINE changes
        // nothing and shows what no session has been told of yet.
        // A rev2 session claims nothing: \Recent is gone from RFC 9051, and what it leaves
        // stays recent for the IMAP4rev1 sessions that still show it.
        let recent_from = match uids.last() {
            _ if self.imap4rev2 => u32::MAX,
            Some(&newest) if !read_only => claim_recent(&store, folder.id, newest).await,
            _ => folder.recent_from,
        };
        let view = View::new(folder.clone(), read_only, uids, recent_from, keywords);
        for r in view.flags_announcement() {
            self.conn.send(&r).await?;
        }
        let exists = u32::try_from(view.uids.len()).unwrap_or(u32::MAX);
        self.conn.send(&text::data(Data::Exists(exists))).await?;
        if !self.imap4rev2 {
            let recent = u32::try_from(view.recent.len()).unwrap_or(u32::MAX);
            self.conn.send(&text::data(Data::Recent(recent))).await?;
        }
        // RFC 9051 drops `OK [UNSEEN]` from SELECT: rev2 clients SEARCH UNSEEN instead.
        if let Some(first) = unseen.filter(|_| !self.imap4rev2)
            && let Ok(p) = view.uids.binary_search(&first)
        {
            self.conn
                .send(&text::untagged_ok(
                    Some(Code::Unseen(text::nz(p as u32 + 1))),
                    "first unseen",
                ))
                .await?;
        }
        self.conn
            .send(&text::untagged_ok(
                Some(Code::UidValidity(text::nz(folder.uidvalidity))),
                "UIDs valid",
            ))
            .await?;
        self.conn
            .send(&text::untagged_ok(
                Some(Code::UidNext(text::nz(folder.uidnext))),
                "predicted next UID",
            ))
            .await?;
        if self.imap4rev2 {
            // RFC 9051 §6.3.2: SELECT names the folder in a LIST response, in the form
            // the session uses.
            let name = names::from_modified_utf7(&folder.name);
            if let Some(mailbox) = text::mailbox(&name) {
                let list = Data::List {
                    items: Vec::new(),
                    delimiter: QuotedChar::try_from(DELIMITER).ok(),
                    mailbox,
                };
                self.conn.send(&text::data(list)).await?;
            }
        }
        match NonZeroU64::new(folder.highestmodseq) {
            Some(h) => {
                self.conn
                    .send(&text::untagged_ok(Some(Code::HighestModSeq(h)), "highest"))
                    .await?
            }
            None => {
                self.conn
                    .send(&text::untagged_ok(Some(Code::NoModSeq), "no MODSEQ"))
                    .await?
            }
        }
        if let Some((vanished, changed)) = changes {
            let known = qresync.and_then(|(_, _, known)| known);
            let largest = view.uids.last().copied().unwrap_or(0);
            let gone: Vec<u32> = vanished
                .into_iter()
                .filter(|u| {
                    known
                        .as_ref()
                        .is_none_or(|k| sequence::contains(k, *u, largest.max(*u)))
                })
                .collect();
            if let Some(vanished) = text::vanished_earlier(&gone) {
                self.conn.send(&vanished).await?;
            }
            for m in changed {
                let Ok(p) = view.uids.binary_search(&m.uid) else {
                    continue;
                };
                let recent = view.recent.contains(&m.uid);
                if let Some(data) = flags_fetch(p, Some(m.uid), &m.flags, recent, Some(m.modseq)) {
                    self.conn.send(&text::data(data)).await?;
                }
            }
        }
        let (code, msg) = if read_only {
            (Code::ReadOnly, "EXAMINE completed")
        } else {
            (Code::ReadWrite, "SELECT completed")
        };
        self.conn
            .send(&text::tagged_ok(&tag, Some(code), msg))
            .await?;
        Ok(Transition::Select(Box::new(view)))
    }

    async fn list(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'static>,
        mailbox_id: i64,
        reference: &Mailbox<'_>,
        pattern: &ListMailbox<'_>,
        lsub: bool,
    ) -> Result<Transition, ConnError> {
        let reference = match reference {
            Mailbox::Inbox => "INBOX".to_owned(),
            other => text::folder_name(other).unwrap_or_default(),
        };
        let pattern = match pattern {
            ListMailbox::Token(t) => String::from_utf8_lossy(t.as_ref()).into_owned(),
            ListMailbox::String(IString::Quoted(q)) => q.inner().to_owned(),
            ListMailbox::String(IString::Literal(l)) => {
                String::from_utf8_lossy(l.data()).into_owned()
            }
        };
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        if pattern.is_empty() && !lsub {
            let r = Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter,
                mailbox: Mailbox::try_from("").unwrap_or(Mailbox::Inbox),
            };
            self.conn.send(&text::data(r)).await?;
            self.conn
                .send(&text::tagged_ok(tag, None, "LIST completed"))
                .await?;
            return Ok(Transition::None);
        }
        let full = format!("{reference}{pattern}");
        let folders = match self.shared.context.store.folders(mailbox_id).await {
            Ok(f) => self.client_folders(f),
            Err(e) => return self.no_internal(tag, "LIST failed", &e).await,
        };
        if lsub {
            let subscribed = match self.shared.context.store.subscriptions(mailbox_id).await {
                Ok(s) => s
                    .iter()
                    .map(|n| names::to_client(n, self.imap4rev2))
                    .collect::<Vec<_>>(),
                Err(e) => return self.no_internal(tag, "LSUB failed", &e).await,
            };
            let existing: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
            for (name, noselect) in lsub_entries(&full, &subscribed, &existing) {
                let Some(mailbox) = text::mailbox(&name) else {
                    continue;
                };
                let items = if noselect {
                    vec![FlagNameAttribute::Noselect]
                } else {
                    Vec::new()
                };
                let r = Data::Lsub {
                    items,
                    delimiter,
                    mailbox,
                };
                self.conn.send(&text::data(r)).await?;
            }
            self.conn
                .send(&text::tagged_ok(tag, None, "LSUB completed"))
                .await?;
            return Ok(Transition::None);
        }
        for f in &folders {
            if !wildcard_match(&full, &f.name) {
                continue;
            }
            let items = list_attributes(f, &folders);
            let Some(mailbox) = text::mailbox(&f.name) else {
                continue;
            };
            let r = Data::List {
                items,
                delimiter,
                mailbox,
            };
            self.conn.send(&text::data(r)).await?;
        }
        self.conn
            .send(&text::tagged_ok(tag, None, "LIST completed"))
            .await?;
        Ok(Transition::None)
    }

    async fn idle(
        &mut self,
        user: &mut User,
        mut view: Option<&mut View>,
        tag: imap_codec::imap_types::core::Tag<'static>,
    ) -> Result<Transition, ConnError> {
        let plus = Response::CommandContinuationRequest(
            CommandContinuationRequest::basic(None, "idling").map_err(|_| ConnError::Closed)?,
        );
        if let Some(t) = self.sync_selected(user, view.as_deref_mut(), true).await? {
            return Ok(t);
        }
        self.conn.send(&plus).await?;
        self.conn.flush().await?;
        // An idling client sends nothing, so withdrawn access is watched for here.
        let mut access = self.shared.context.access_epoch.clone();
        loop {
            let limit = self.idle_limit();
            let shutdown = self.shared.shutdown.clone();
            let access_due = user.access.due(&self.shared.context.access_epoch);
            enum Event {
                Read(Result<Incoming, ConnError>),
                Change,
                Notify,
                AccessCheck,
                Shutdown,
            }
            let event = {
                let conn = &mut self.conn;
                let (changes, selected) = (&mut user.changes, view.as_deref_mut());
                let notify = user.notify.as_deref_mut();
                tokio::select! {
                    _ = super::watch::heard(notify) => Event::Notify,
                    _ = shutdown.cancelled() => Event::Shutdown,
                    r = conn.read(limit) => Event::Read(r),
                    _ = async {
                        match selected {
                            Some(v) => {
                                changes.wait(v.folder.id).await;
                                v.dirty = true;
                            }
                            None => std::future::pending::<()>().await,
                        }
                    } => Event::Change,
                    _ = super::state::check_due(access_due, &mut access) => Event::AccessCheck,
                }
            };
            match event {
                Event::Shutdown => {
                    self.conn.send(&text::bye("server shutting down")).await?;
                    return Ok(Transition::Logout);
                }
                Event::Change => {
                    // A failed read stays pending: the next change or DONE tries again.
                    if let Some(t) = self.sync_selected(user, view.as_deref_mut(), true).await? {
                        return Ok(t);
                    }
                    self.conn.flush().await?;
                }
                Event::Notify => {
                    if let Some(t) = self.notify_deliver(user, view.as_deref_mut(), true).await? {
                        return Ok(t);
                    }
                    self.conn.flush().await?;
                }
                Event::AccessCheck => {
                    if !self.access_still_granted(user).await? {
                        return Ok(Transition::Logout);
                    }
                }
                Event::Read(Err(ConnError::Timeout)) => {
                    self.conn
                        .send(&text::bye(
                            "session lifetime reached, please authenticate again",
                        ))
                        .await?;
                    return Ok(Transition::Logout);
                }
                Event::Read(Err(e)) => return Err(e),
                Event::Read(Ok(Incoming::Refused { .. })) => {
                    self.conn
                        .send(&text::tagged(&tag, StatusKind::Bad, None, "expected DONE"))
                        .await?;
                    return Ok(Transition::None);
                }
                Event::Read(Ok(Incoming::Message)) => {
                    let done = self
                        .conn
                        .message()
                        .decode_message(&IdleDoneCodec::default())
                        .is_ok();
                    if done {
                        if let Some(v) = view
                            && let Some(t) = self.sync_or_refuse(&tag, user, v, true).await?
                        {
                            return Ok(t);
                        }
                        self.conn
                            .send(&text::tagged_ok(&tag, None, "IDLE terminated"))
                            .await?;
                    } else {
                        self.conn
                            .send(&text::tagged(&tag, StatusKind::Bad, None, "expected DONE"))
                            .await?;
                    }
                    return Ok(Transition::None);
                }
            }
        }
    }
}

/// What LIST says of an existing folder: whether it has children (CHILDREN, always
/// given), `\Noselect`, and its special use (RFC 6154).
pub(crate) fn list_attributes(f: &Folder, folders: &[Folder]) -> Vec<FlagNameAttribute<'static>> {
    let prefix = format!("{}{DELIMITER}", f.name);
    let children = folders.iter().any(|o| o.name.starts_with(&prefix));
    let mut items = vec![attribute(if children {
        "HasChildren"
    } else {
        "HasNoChildren"
    })];
    if f.noselect {
        items.push(Some(FlagNameAttribute::Noselect));
    }
    if let Some(special) = &f.special_use {
        items.push(attribute(special.trim_start_matches('\\')));
    }
    items.into_iter().flatten().collect()
}

pub(crate) fn attribute(name: &str) -> Option<FlagNameAttribute<'static>> {
    Atom::try_from(name.to_owned())
        .ok()
        .map(FlagNameAttribute::from)
}

/// LIST pattern matching: `*` matches anything, `%` anything but the delimiter.
/// INBOX matches case-insensitively.
/// What LSUB answers for `pattern` (RFC 3501 §6.3.9), in name order: each subscribed
/// name that matches, `\Noselect` when its folder no longer exists; and, for a
/// subscribed name that `%` stops short of, the parent level the pattern does match,
/// `\Noselect` unless that parent is itself subscribed.
fn lsub_entries(pattern: &str, subscribed: &[String], existing: &[&str]) -> Vec<(String, bool)> {
    let mut out = std::collections::BTreeMap::new();
    for name in subscribed {
        if wildcard_match(pattern, name) {
            out.insert(name.clone(), !existing.contains(&name.as_str()));
            continue;
        }
        if !pattern.contains('%') {
            continue;
        }
        for (i, _) in name.match_indices(DELIMITER) {
            let parent = &name[..i];
            if wildcard_match(pattern, parent) && !subscribed.iter().any(|s| s == parent) {
                out.entry(parent.to_owned()).or_insert(true);
            }
        }
    }
    out.into_iter().collect()
}

pub(crate) fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('%') => {
                let stop = n.iter().position(|c| *c == DELIMITER).unwrap_or(n.len());
                (0..=stop).any(|i| go(&p[1..], &n[i..]))
            }
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    // `get`: an IMAP4rev2 pattern is UTF-8, and its fifth byte may be inside a character.
    let (pattern, name) = match pattern.get(..5).zip(pattern.get(5..)) {
        Some((inbox, rest)) if name == "INBOX" && inbox.eq_ignore_ascii_case("INBOX") => {
            (format!("INBOX{rest}"), name.to_owned())
        }
        _ => (pattern.to_owned(), name.to_owned()),
    };
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Patterns are short; cap the backtracking work anyway.
    if p.iter().filter(|c| **c == '*' || **c == '%').count() > 8 {
        return false;
    }
    go(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn list_patterns() {
        assert!(wildcard_match("*", "INBOX"));
        assert!(wildcard_match("inbox", "INBOX"));
        assert!(wildcard_match("%", "Sent"));
        assert!(!wildcard_match("%", "a/b"));
        assert!(wildcard_match("a/%", "a/b"));
        assert!(wildcard_match("*", "a/b"));
        assert!(!wildcard_match("Trash", "Sent"));
        assert!(wildcard_match("日本語/%", "日本語/R&D"));
        assert!(!wildcard_match("Été", "INBOX"));
    }
}
