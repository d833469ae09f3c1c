//! The selected state: how other sessions' changes reach the session's `View` of the
//! folder, and the commands that work on messages (STORE, COPY, MOVE, EXPUNGE ...).
//!
//! Changes are learnt from the store's notifications and read back by MODSEQ, and
//! reported only where RFC 3501 §7.4.1 allows: never an EXPUNGE during FETCH, STORE or
//! SEARCH.

use std::num::{NonZeroU32, NonZeroU64};

use imap_codec::imap_types::command::{Command, CommandBody, StoreModifier};
use imap_codec::imap_types::core::{Atom, Vec1};
use imap_codec::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::flag::{Flag, FlagFetch, StoreResponse, StoreType};
use imap_codec::imap_types::response::{Code, Data, StatusKind};

use super::connection::ConnError;
use super::ordered;
use super::sequence;
use super::session::Session;
use super::state::{Selected, Transition, User};
use super::text;
use super::updates;
use super::view::View;
use crate::incident::Incident;
use crate::store::{Appended, Expunged, FlagOp, Flags, FolderChanges, Store, StoreError, flag};

/// Makes the messages up to `newest` \Recent in this read-write session and in no
/// other; returns the first UID that became so. \Recent is advisory: when the store
/// cannot be written, the session sees nothing as recent rather than failing.
pub(crate) async fn claim_recent(store: &Store, folder_id: i64, newest: u32) -> u32 {
    match store
        .claim_recent(folder_id, newest.saturating_add(1))
        .await
    {
        Ok(from) => from,
        Err(e) => {
            tracing::warn!(error = %e, "cannot record which messages are recent");
            u32::MAX
        }
    }
}

/// `* n FETCH ([UID u] FLAGS (…) [MODSEQ (m)])`: how a client hears a message's flags,
/// whether it asked (STORE) or not (another session changed them).
pub(crate) fn flags_fetch(
    position: usize,
    uid: Option<u32>,
    flags: &Flags,
    recent: bool,
    modseq: Option<u64>,
) -> Option<Data<'static>> {
    let mut items = Vec::with_capacity(3);
    if let Some(uid) = uid {
        items.push(MessageDataItem::Uid(text::nz(uid)));
    }
    items.push(MessageDataItem::Flags(fetch_flags(flags, recent)));
    if let Some(ms) = modseq.and_then(NonZeroU64::new) {
        items.push(MessageDataItem::ModSeq(ms));
    }
    Some(Data::Fetch {
        seq: text::nz(u32::try_from(position + 1).unwrap_or(u32::MAX)),
        items: Vec1::try_from(items).ok()?,
    })
}

pub(crate) fn fetch_flags(f: &Flags, recent: bool) -> Vec<FlagFetch<'static>> {
    let mut out = Vec::new();
    if recent {
        out.push(FlagFetch::Recent);
    }
    for (bit, fl) in [
        (flag::SEEN, Flag::Seen),
        (flag::ANSWERED, Flag::Answered),
        (flag::FLAGGED, Flag::Flagged),
        (flag::DELETED, Flag::Deleted),
        (flag::DRAFT, Flag::Draft),
    ] {
        if f.has(bit) {
            out.push(FlagFetch::Flag(fl));
        }
    }
    for k in &f.keywords {
        if let Ok(a) = Atom::try_from(k.clone()) {
            out.push(FlagFetch::Flag(Flag::Keyword(a)));
        }
    }
    out
}

pub(crate) fn store_flags(flags: &[Flag<'_>]) -> Flags {
    let mut f = Flags::default();
    for fl in flags {
        match fl {
            Flag::Seen => f.system |= flag::SEEN,
            Flag::Answered => f.system |= flag::ANSWERED,
            Flag::Flagged => f.system |= flag::FLAGGED,
            Flag::Deleted => f.system |= flag::DELETED,
            Flag::Draft => f.system |= flag::DRAFT,
            Flag::Keyword(a) => {
                f.keywords.insert(a.inner().to_owned());
            }
            // \Recent and unknown system flags cannot be stored.
            Flag::Extension(_) => {}
        }
    }
    f
}

pub(crate) fn uidplus_set(uids: &[u32]) -> Option<UidSet> {
    let elems: Vec<UidElement> = uids
        .iter()
        .filter_map(|u| NonZeroU32::new(*u).map(UidElement::Single))
        .collect();
    Vec1::try_from(elems).ok().map(UidSet)
}

/// How far a sync got.
#[must_use]
pub(crate) enum Synced {
    /// The client has heard of every change up to now.
    Done,
    /// The store could not be read: nothing was reported and nothing advanced, so the
    /// same changes are read again next time and sequence numbers stay in step.
    Failed(Incident),
    /// The folder no longer exists (another session deleted it).
    Gone,
}

impl Session {
    /// Reports what other sessions (and this one) changed in the selected folder.
    ///
    /// The view only advances past what the client was told: a read that fails leaves
    /// the MODSEQs where they were, or a transient database error would swallow an
    /// EXPUNGE and the client's sequence numbers would point at other messages.
    pub(crate) async fn sync(
        &mut self,
        user: &mut User,
        view: &mut View,
        allow_expunge: bool,
    ) -> Result<Synced, ConnError> {
        if user.changes.take(view.folder.id, view.known_modseq) {
            view.dirty = true;
        }
        if !view.dirty {
            return Ok(Synced::Done);
        }
        let store = &self.shared.context.store.clone();
        let failed = |e: StoreError| {
            Ok(Synced::Failed(Incident::store(
                "cannot sync the selected folder",
                &e,
            )))
        };
        // Everything is read before anything is told, at one moment.
        let expunged_since = allow_expunge.then_some(view.expunged_modseq);
        let read = store
            .folder_changes(view.folder.id, view.known_modseq, expunged_since)
            .await;
        let FolderChanges {
            folder,
            vanished,
            changed,
        } = match read {
            Ok(Some(c)) if !c.folder.noselect => c,
            Ok(_) => return Ok(Synced::Gone),
            Err(e) => return failed(e),
        };
        let highest = folder.highestmodseq;
        let mut still_dirty = false;
        if allow_expunge {
            self.report_gone(user, view, &vanished).await?;
            view.expunged_modseq = highest;
        } else {
            still_dirty = true;
        }
        let last = view.uids.last().copied().unwrap_or(0);
        let mut added = Vec::new();
        let mut updates = Vec::new();
        let mut learnt = false;
        for m in &changed {
            learnt |= view.learn_keywords(&m.flags);
        }
        if learnt {
            for r in view.flags_announcement() {
                self.conn.send(&r).await?;
            }
        }
        for m in changed {
            if m.uid > last {
                added.push(m.uid);
            } else if let Ok(p) = view.uids.binary_search(&m.uid) {
                if view.reported.get(&m.uid) == Some(&m.modseq) {
                    continue;
                }
                updates.push((p, m));
            }
        }
        self.report_added(view, added, folder.recent_from).await?;
        for (p, m) in updates {
            let modseq = user.condstore.then_some(m.modseq);
            let recent = view.recent.contains(&m.uid);
            if let Some(data) = flags_fetch(p, Some(m.uid), &m.flags, recent, modseq) {
                self.conn.send(&text::data(data)).await?;
            }
        }
        let now = self.shared.context.clock.now();
        for i in 0..view.contexts.len() {
            let c = &view.contexts[i];
            let fresh = ordered::fresh_result(store, view, &c.key, c.sort.as_deref(), now).await;
            match fresh {
                Ok(fresh) => {
                    if let Some(r) = updates::change(&mut view.contexts[i], fresh, &view.uids) {
                        self.conn.send_raw(&r).await?;
                    }
                }
                // The context is behind: the next sync tries again.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot update a search kept updated");
                    still_dirty = true;
                }
            }
        }
        view.known_modseq = highest;
        view.reported.clear();
        view.dirty = still_dirty;
        Ok(Synced::Done)
    }

    /// Tells the client that the messages `gone` (UIDs, ascending) were expunged; those
    /// it never heard of are left out.
    async fn report_gone(
        &mut self,
        user: &User,
        view: &mut View,
        gone: &[u32],
    ) -> Result<(), ConnError> {
        let mut positions: Vec<usize> = gone
            .iter()
            .filter_map(|u| view.uids.binary_search(u).ok())
            .collect();
        positions.sort_unstable();
        if positions.is_empty() {
            return Ok(());
        }
        let leaving: Vec<u32> = positions.iter().map(|p| view.uids[*p]).collect();
        for r in updates::before_expunge(&mut view.contexts, &leaving, &view.uids) {
            self.conn.send_raw(&r).await?;
        }
        if user.qresync
            && let Some(set) = sequence::uid_set(&leaving)
        {
            self.conn
                .send(&text::data(Data::Vanished {
                    earlier: false,
                    known_uids: set,
                }))
                .await?;
        }
        for p in positions.iter().rev() {
            let gone = view.uids.remove(*p);
            view.recent.remove(&gone);
            if !user.qresync {
                self.conn
                    .send(&text::data(Data::Expunge(text::nz(*p as u32 + 1))))
                    .await?;
            }
        }
        Ok(())
    }

    /// Tells the client of new messages (UIDs above the view's, ascending): `EXISTS`,
    /// and `RECENT` with those this session claims, or in a read-only view those from
    /// `read_only_recent_from` (the folder's, as read).
    async fn report_added(
        &mut self,
        view: &mut View,
        added: Vec<u32>,
        read_only_recent_from: u32,
    ) -> Result<(), ConnError> {
        let Some(&newest) = added.last() else {
            return Ok(());
        };
        let recent_from = if self.imap4rev2 {
            u32::MAX
        } else if view.read_only {
            read_only_recent_from
        } else {
            claim_recent(&self.shared.context.store, view.folder.id, newest).await
        };
        view.recent
            .extend(added.iter().copied().filter(|u| *u >= recent_from));
        view.uids.extend(added);
        let n = u32::try_from(view.uids.len()).unwrap_or(u32::MAX);
        self.conn.send(&text::data(Data::Exists(n))).await?;
        if !self.imap4rev2 {
            let recent = u32::try_from(view.recent.len()).unwrap_or(u32::MAX);
            self.conn.send(&text::data(Data::Recent(recent))).await?;
        }
        Ok(())
    }

    /// After the session's own EXPUNGE: reports what went from what the store returned
    /// when nothing else changed the folder since the last sync (`View::only_own_change`),
    /// or leaves it to the sync to read. An EXPUNGE that removed nothing says nothing of
    /// the others' changes, and promises the client an up-to-date folder: it reads.
    async fn own_expunge(
        &mut self,
        user: &User,
        view: &mut View,
        expunged: &Expunged,
    ) -> Result<(), ConnError> {
        if !expunged.uids.is_empty() && view.only_own_change(expunged.modseq) {
            self.report_gone(user, view, &expunged.uids).await?;
            view.caught_up(expunged.modseq);
        } else {
            view.dirty = true;
        }
        Ok(())
    }

    /// After the session's own APPEND of messages `appended` (in one transaction, in
    /// UID order) with `flags`: reports them to a session showing their folder, as
    /// `own_expunge` does. A read-only view needs the folder's \Recent mark, so it
    /// reads; an APPEND to another folder says nothing of this one, which is read as
    /// after a COPY.
    pub(crate) async fn own_append(
        &mut self,
        view: &mut View,
        appended: &[Appended],
        flags: &[&Flags],
    ) -> Result<(), ConnError> {
        let (Some(first), Some(last)) = (appended.first(), appended.last()) else {
            return Ok(());
        };
        let newer = view.uids.last().is_none_or(|&u| first.uid > u);
        // One MODSEQ per message, taken one after the other under the folder's lock.
        let in_step = last.modseq.checked_sub(first.modseq) == Some(appended.len() as u64 - 1);
        let own = first.folder_id == view.folder.id
            && newer
            && in_step
            && view.only_own_change(first.modseq);
        if !(own && (!view.read_only || self.imap4rev2)) {
            view.dirty = true;
            return Ok(());
        }
        let mut learnt = false;
        for f in flags {
            learnt |= view.learn_keywords(f);
        }
        if learnt {
            for r in view.flags_announcement() {
                self.conn.send(&r).await?;
            }
        }
        let added = appended.iter().map(|a| a.uid).collect();
        self.report_added(view, added, u32::MAX).await?;
        view.caught_up(last.modseq);
        Ok(())
    }

    /// Syncs before a tagged reply that promises the client is up to date (NOOP, CHECK,
    /// EXPUNGE, MOVE, IDLE). `Some` is the reply already given in its place:
    /// `NO [UNAVAILABLE]` when the store could not be read, `BYE` when the folder is gone.
    pub(crate) async fn sync_or_refuse(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        user: &mut User,
        view: &mut View,
        allow_expunge: bool,
    ) -> Result<Option<Transition>, ConnError> {
        match self.sync(user, view, allow_expunge).await? {
            Synced::Done => Ok(None),
            Synced::Failed(incident) => {
                let code = Some(text::code("UNAVAILABLE"));
                self.complete(tag, StatusKind::No, code, &incident.text())
                    .await
                    .map(Some)
            }
            Synced::Gone => self.folder_gone().await.map(Some),
        }
    }

    /// Syncs after a command whose own results are already reported (STORE, COPY,
    /// APPEND) or that does not depend on the view: if the store cannot be read now,
    /// the changes wait for the next command (the failure is logged), because a `NO`
    /// would invite the client to repeat a command that worked. `Some` after `BYE`.
    pub(crate) async fn sync_or_defer(
        &mut self,
        user: &mut User,
        view: &mut View,
        allow_expunge: bool,
    ) -> Result<Option<Transition>, ConnError> {
        match self.sync(user, view, allow_expunge).await? {
            Synced::Done | Synced::Failed(_) => Ok(None),
            Synced::Gone => self.folder_gone().await.map(Some),
        }
    }

    /// The selected folder was deleted under this session: its UIDs mean nothing any
    /// more, so the session ends as RFC 3501 §7.1.5 allows.
    async fn folder_gone(&mut self) -> Result<Transition, ConnError> {
        self.conn
            .send(&text::bye("the selected mailbox was deleted"))
            .await?;
        Ok(Transition::Logout)
    }

    pub(crate) async fn selected_command(
        &mut self,
        selected: &mut Selected,
        c: Command<'static>,
    ) -> Result<Transition, ConnError> {
        let tag = c.tag;
        let (user, view) = (&mut selected.user, &mut *selected.view);
        let folder_id = view.folder.id;
        let read_only = view.read_only;
        let store = self.shared.context.store.clone();
        let moving = matches!(c.body, CommandBody::Move { .. });
        match c.body {
            CommandBody::Check => {
                if let Some(t) = self.sync_or_refuse(&tag, user, view, true).await? {
                    return Ok(t);
                }
                self.ok(&tag, "CHECK completed").await
            }
            CommandBody::Close | CommandBody::Unselect => {
                let closing = matches!(c.body, CommandBody::Close);
                // The client takes CLOSE to have removed its \Deleted messages: if that
                // failed it must hear so, and the folder stays selected.
                if closing
                    && !read_only
                    && let Err(e) = store.expunge(folder_id, None).await
                {
                    return self.no_internal(&tag, "CLOSE cannot expunge", &e).await;
                }
                self.conn
                    .send(&text::tagged_ok(&tag, None, "mailbox closed"))
                    .await?;
                Ok(Transition::Unselect)
            }
            CommandBody::Expunge | CommandBody::ExpungeUid { .. } => {
                if read_only {
                    return self.no(&tag, "mailbox is read-only").await;
                }
                let only = match &c.body {
                    CommandBody::ExpungeUid { sequence_set } => {
                        let uids = &view.uids;
                        let positions =
                            sequence::resolve(sequence_set, uids, true).unwrap_or_default();
                        Some(positions.iter().map(|p| uids[*p]).collect::<Vec<u32>>())
                    }
                    _ => None,
                };
                let expunged = match store.expunge(folder_id, only).await {
                    Ok(e) => e,
                    Err(e) => return self.no_internal(&tag, "EXPUNGE failed", &e).await,
                };
                self.own_expunge(user, view, &expunged).await?;
                if let Some(t) = self.sync_or_refuse(&tag, user, view, true).await? {
                    return Ok(t);
                }
                self.ok(&tag, "EXPUNGE completed").await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                if read_only {
                    return self.no(&tag, "mailbox is read-only").await;
                }
                let Some(positions) = sequence::resolve(&sequence_set, &view.uids, uid) else {
                    return self.bad(&tag, "invalid message sequence number").await;
                };
                let uids: Vec<u32> = positions.iter().map(|p| view.uids[*p]).collect();
                let op = match kind {
                    StoreType::Add => FlagOp::Add,
                    StoreType::Remove => FlagOp::Remove,
                    StoreType::Replace => FlagOp::Replace,
                };
                let unchanged_since = modifiers
                    .iter()
                    .map(|StoreModifier::UnchangedSince(u)| *u)
                    .next();
                if unchanged_since.is_some() {
                    user.condstore = true;
                }
                let outcome = match store
                    .store_flags(folder_id, uids, op, store_flags(&flags), unchanged_since)
                    .await
                {
                    Ok(o) => o,
                    Err(e) => return self.no_internal(&tag, "STORE failed", &e).await,
                };
                let condstore = user.condstore;
                let mut responses = Vec::new();
                let mut learnt = false;
                for (u, modseq, f) in &outcome.changed {
                    learnt |= view.learn_keywords(f);
                    view.reported.insert(*u, *modseq);
                    if response == StoreResponse::Silent && !condstore {
                        continue;
                    }
                    let Ok(p) = view.uids.binary_search(u) else {
                        continue;
                    };
                    responses.extend(flags_fetch(
                        p,
                        uid.then_some(*u),
                        f,
                        view.recent.contains(u),
                        condstore.then_some(*modseq),
                    ));
                }
                let modified: Vec<u32> = if uid {
                    outcome.modified.clone()
                } else {
                    outcome
                        .modified
                        .iter()
                        .filter_map(|u| view.uids.binary_search(u).ok().map(|p| p as u32 + 1))
                        .collect()
                };
                if learnt {
                    for r in view.flags_announcement() {
                        self.conn.send(&r).await?;
                    }
                }
                for r in responses {
                    self.conn.send(&text::data(r)).await?;
                }
                // Every changed message took the write's one MODSEQ, and the client has
                // heard of each (or asked not to).
                if let Some(&(_, modseq, _)) = outcome.changed.first() {
                    if view.only_own_change(modseq) {
                        view.caught_up(modseq);
                    } else {
                        view.dirty = true;
                    }
                }
                if let Some(t) = self.sync_or_defer(user, view, uid).await? {
                    return Ok(t);
                }
                match sequence::uid_set(&modified) {
                    Some(set) if !modified.is_empty() => {
                        self.conn
                            .send(&text::tagged_ok(
                                &tag,
                                Some(Code::Modified(set)),
                                "conditional STORE failed for some messages",
                            ))
                            .await?
                    }
                    _ => {
                        self.conn
                            .send(&text::tagged_ok(&tag, None, "STORE completed"))
                            .await?
                    }
                }
                Ok(Transition::None)
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            }
            | CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => {
                if moving && read_only {
                    return self.no(&tag, "mailbox is read-only").await;
                }
                let Some(positions) = sequence::resolve(&sequence_set, &view.uids, uid) else {
                    return self.bad(&tag, "invalid message sequence number").await;
                };
                let uids: Vec<u32> = positions.iter().map(|p| view.uids[*p]).collect();
                let target = match self.target_folder(user.auth.mailbox.id, &mailbox).await {
                    Ok(Some(t)) => t,
                    Ok(None) => return self.no_such_target(&tag).await,
                    Err(e) => return self.no_internal(&tag, "cannot look a folder up", &e).await,
                };
                let result = if moving {
                    store.move_messages(folder_id, uids, target.id).await
                } else {
                    store.copy(folder_id, uids, target.id).await
                };
                let copied = match result {
                    Ok(c) => c,
                    Err(StoreError::OverQuota) => return self.no_over_quota(&tag).await,
                    Err(e) => return self.no_internal(&tag, "COPY or MOVE failed", &e).await,
                };
                let src: Vec<u32> = copied.pairs.iter().map(|(s, _)| *s).collect();
                let dst: Vec<u32> = copied.pairs.iter().map(|(_, d)| *d).collect();
                let code = match (
                    NonZeroU32::new(copied.uidvalidity),
                    uidplus_set(&src),
                    uidplus_set(&dst),
                ) {
                    (Some(v), Some(s), Some(d)) => Some(Code::CopyUid {
                        uid_validity: v,
                        source: s,
                        destination: d,
                    }),
                    _ => None,
                };
                view.dirty = true;
                if moving {
                    self.conn.send(&text::untagged_ok(code, "moved")).await?;
                    if let Some(t) = self.sync_or_refuse(&tag, user, view, true).await? {
                        return Ok(t);
                    }
                    self.conn
                        .send(&text::tagged_ok(&tag, None, "MOVE completed"))
                        .await?;
                } else {
                    if let Some(t) = self.sync_or_defer(user, view, uid).await? {
                        return Ok(t);
                    }
                    self.conn
                        .send(&text::tagged_ok(&tag, code, "COPY completed"))
                        .await?;
                }
                Ok(Transition::None)
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                Box::pin(self.fetch(
                    selected,
                    tag,
                    sequence_set,
                    macro_or_item_names,
                    uid,
                    modifiers,
                ))
                .await
            }
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => Box::pin(self.search(selected, tag, charset, criteria, uid)).await,
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                Box::pin(self.sort(selected, tag, sort_criteria, charset, search_criteria, uid))
                    .await
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                Box::pin(self.thread(selected, tag, algorithm, charset, search_criteria, uid)).await
            }
            _ => self.bad(&tag, "unexpected command").await,
        }
    }

    /// Ends a command with its tagged status; the session carries on.
    pub(crate) async fn complete(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        kind: StatusKind,
        code: Option<Code<'static>>,
        msg: &str,
    ) -> Result<Transition, ConnError> {
        self.conn.send(&text::tagged(tag, kind, code, msg)).await?;
        Ok(Transition::None)
    }

    pub(crate) async fn ok(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        msg: &str,
    ) -> Result<Transition, ConnError> {
        self.complete(tag, StatusKind::Ok, None, msg).await
    }

    pub(crate) async fn no(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        msg: &str,
    ) -> Result<Transition, ConnError> {
        self.complete(tag, StatusKind::No, None, msg).await
    }

    /// A command failed on a store error. The client gets a fixed text and a reference;
    /// the error itself, which may name tables or files, goes to the log.
    pub(crate) async fn no_internal(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        during: &str,
        error: &StoreError,
    ) -> Result<Transition, ConnError> {
        let incident = Incident::store(during, error);
        let code = if incident.transient() {
            "UNAVAILABLE"
        } else {
            "SERVERBUG"
        };
        self.complete(
            tag,
            StatusKind::No,
            Some(text::code(code)),
            &incident.text(),
        )
        .await
    }

    /// The target of APPEND, COPY or MOVE does not exist: `[TRYCREATE]` tells the client
    /// it may CREATE it and try again (RFC 3501 §6.3.11).
    pub(crate) async fn no_such_target(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
    ) -> Result<Transition, ConnError> {
        self.complete(
            tag,
            StatusKind::No,
            Some(Code::TryCreate),
            "no such mailbox",
        )
        .await
    }

    pub(crate) async fn bad(
        &mut self,
        tag: &imap_codec::imap_types::core::Tag<'_>,
        msg: &str,
    ) -> Result<Transition, ConnError> {
        self.complete(tag, StatusKind::Bad, None, msg).await
    }
}
