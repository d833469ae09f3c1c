//! FETCH: rows are read in runs of neighbouring UIDs (one range query per run, headers
//! in one query when only header fields are asked for), never one query per message
//! for metadata, and message bodies only when an item needs them.

use std::num::NonZeroU64;

use chrono::FixedOffset;
use imap_codec::imap_types::command::FetchModifier;
use imap_codec::imap_types::core::{NString, NString8, Tag, Vec1};
use imap_codec::imap_types::datetime::DateTime;
use imap_codec::imap_types::fetch::{
    Macro, MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName, Section,
};
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::sequence::SequenceSet;

use super::binary;
use super::connection::ConnError;
use super::mime;
use super::selected::fetch_flags;
use super::sequence;
use super::session::Session;
use super::state::{Selected, Transition};
use super::text;
use super::view::View;
use crate::store::{FlagOp, Flags, MessageMeta, StoreError, flag};
use crate::structure::{self, Structure};

/// Messages per store query.
const RUN: usize = 1000;

/// Why the FETCH responses stopped before the last message.
pub(crate) enum Stopped {
    Store(StoreError),
    /// A body was fetched but \Seen could not be set: it would look unread for ever.
    SetSeen(StoreError),
    Undecodable(binary::Undecodable),
}

#[derive(Default)]
struct Needs {
    header: bool,
    body: bool,
    parse: bool,
    /// ENVELOPE, BODY or BODYSTRUCTURE: read from what was stored with the body.
    structure: bool,
    sets_seen: bool,
    modseq: bool,
}

fn needs(items: &[MessageDataItemName<'_>]) -> Needs {
    let mut n = Needs::default();
    for item in items {
        match item {
            MessageDataItemName::Envelope
            | MessageDataItemName::Body
            | MessageDataItemName::BodyStructure => n.structure = true,
            MessageDataItemName::Rfc822Header => n.header = true,
            MessageDataItemName::Rfc822 | MessageDataItemName::Rfc822Text => {
                n.body = true;
                n.sets_seen = true;
            }
            MessageDataItemName::BodyExt { section, peek, .. } => {
                match section {
                    Some(Section::Header(None))
                    | Some(Section::HeaderFields(None, _))
                    | Some(Section::HeaderFieldsNot(None, _)) => n.header = true,
                    None | Some(Section::Text(None)) => n.body = true,
                    Some(_) => {
                        n.body = true;
                        n.parse = true;
                    }
                }
                if !peek {
                    n.sets_seen = true;
                }
            }
            MessageDataItemName::Binary { peek, .. } => {
                n.body = true;
                n.parse = true;
                if !peek {
                    n.sets_seen = true;
                }
            }
            MessageDataItemName::BinarySize { .. } => {
                n.body = true;
                n.parse = true;
            }
            MessageDataItemName::ModSeq => n.modseq = true,
            _ => {}
        }
    }
    n
}

/// One item of a FETCH response: as imap-codec writes it, or bytes written already
/// (a stored structure, a partial BINARY).
#[allow(clippy::large_enum_variant)] // a few per message, gone once its line is written
enum Piece {
    Item(MessageDataItem<'static>),
    Raw(Vec<u8>),
}

impl Piece {
    fn raw(name: &str, value: &[u8]) -> Piece {
        let mut bytes = Vec::with_capacity(name.len() + 1 + value.len());
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(value);
        Piece::Raw(bytes)
    }
}

/// A whole `* n FETCH (…)` line, its items in the order the client asked for them.
fn fetch_line(seq: std::num::NonZeroU32, pieces: Vec<Piece>) -> Vec<u8> {
    fn flush(items: &mut Vec<MessageDataItem<'static>>, line: &mut Vec<u8>) {
        let Ok(group) = Vec1::try_from(std::mem::take(items)) else {
            return;
        };
        if let Some(bytes) = structure::items_bytes(group) {
            separate(line);
            line.extend_from_slice(&bytes);
        }
    }
    fn separate(line: &mut Vec<u8>) {
        if !line.ends_with(b"(") {
            line.push(b' ');
        }
    }
    let mut line = format!("* {seq} FETCH (").into_bytes();
    let mut items = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Item(i) => items.push(i),
            Piece::Raw(bytes) => {
                flush(&mut items, &mut line);
                separate(&mut line);
                line.extend_from_slice(&bytes);
            }
        }
    }
    flush(&mut items, &mut line);
    line.extend_from_slice(b")\r\n");
    line
}

fn internal_date(d: chrono::DateTime<chrono::Utc>) -> Option<DateTime> {
    let fixed = d.with_timezone(&FixedOffset::east_opt(0)?);
    DateTime::try_from(fixed).ok()
}

fn partial(data: Vec<u8>, range: Option<(u32, std::num::NonZeroU32)>) -> (Vec<u8>, Option<u32>) {
    match range {
        None => (data, None),
        Some((start, len)) => {
            let s = (start as usize).min(data.len());
            let e = s.saturating_add(len.get() as usize).min(data.len());
            (data[s..e].to_vec(), Some(start))
        }
    }
}

impl Session {
    /// RFC 3516: a part whose transfer encoding cannot be undone fails the FETCH.
    async fn no_undecodable(
        &mut self,
        tag: &Tag<'static>,
        why: binary::Undecodable,
    ) -> Result<Transition, ConnError> {
        let (code, text) = match why {
            binary::Undecodable::UnknownCte => (
                text::code("UNKNOWN-CTE"),
                "unknown Content-Transfer-Encoding",
            ),
            binary::Undecodable::Damaged => (text::code("PARSE"), "the part's base64 is damaged"),
        };
        self.complete(
            tag,
            imap_codec::imap_types::response::StatusKind::No,
            Some(code),
            text,
        )
        .await
    }

    pub(crate) async fn fetch(
        &mut self,
        selected: &mut Selected,
        tag: Tag<'static>,
        set: SequenceSet,
        names: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: Vec<FetchModifier>,
    ) -> Result<Transition, ConnError> {
        let mut items = match names {
            MacroOrMessageDataItemNames::Macro(m) => {
                let mut v = vec![
                    MessageDataItemName::Flags,
                    MessageDataItemName::InternalDate,
                    MessageDataItemName::Rfc822Size,
                ];
                match m {
                    Macro::Fast => {}
                    Macro::All => v.push(MessageDataItemName::Envelope),
                    _ => {
                        v.push(MessageDataItemName::Envelope);
                        v.push(MessageDataItemName::Body);
                    }
                }
                v
            }
            MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
        };
        if uid && !items.contains(&MessageDataItemName::Uid) {
            items.insert(0, MessageDataItemName::Uid);
        }
        let mut changed_since = None;
        let mut vanished = false;
        for m in &modifiers {
            match m {
                FetchModifier::ChangedSince(v) => changed_since = Some(v.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        let (user, view) = (&mut selected.user, &mut *selected.view);
        if vanished && (!uid || !user.qresync || changed_since.is_none()) {
            return self
                .bad(&tag, "VANISHED needs UID FETCH, QRESYNC and CHANGEDSINCE")
                .await;
        }
        if changed_since.is_some() {
            user.condstore = true;
            if !items.contains(&MessageDataItemName::ModSeq) {
                items.push(MessageDataItemName::ModSeq);
            }
        }
        let Some(positions) = sequence::resolve(&set, &view.uids, uid) else {
            return self.bad(&tag, "invalid message sequence number").await;
        };
        tracing::debug!(folder = %view.folder.name, uid, messages = positions.len(), "fetch");
        if vanished && let Some(since) = changed_since {
            let largest = positions.last().map_or(0, |p| view.uids[*p]);
            let store = &self.shared.context.store;
            let vanished = match store.vanished_since(view.folder.id, since).await {
                Ok(v) => v,
                Err(e) => return self.no_internal(&tag, "FETCH VANISHED failed", &e).await,
            };
            let gone: Vec<u32> = vanished
                .into_iter()
                .filter(|u| sequence::contains(&set, *u, largest.max(*u)))
                .collect();
            if let Some(vanished) = text::vanished_earlier(&gone) {
                self.conn.send(&vanished).await?;
            }
        }
        match self
            .fetch_messages(view, &positions, &items, changed_since)
            .await?
        {
            Ok(()) => {}
            Err(Stopped::Store(e)) => return self.no_internal(&tag, "FETCH failed", &e).await,
            Err(Stopped::SetSeen(e)) => {
                return self.no_internal(&tag, "FETCH cannot set \\Seen", &e).await;
            }
            Err(Stopped::Undecodable(why)) => return self.no_undecodable(&tag, why).await,
        }
        if let Some(t) = self
            .sync_or_defer(&mut selected.user, &mut selected.view, uid)
            .await?
        {
            return Ok(t);
        }
        self.ok(&tag, "FETCH completed").await
    }

    /// The FETCH responses of the messages at `positions` of `view`: what FETCH sends,
    /// and what NOTIFY sends of new messages (RFC 5465 §5.2).
    pub(crate) async fn fetch_messages(
        &mut self,
        view: &mut View,
        positions: &[usize],
        items: &[MessageDataItemName<'static>],
        changed_since: Option<u64>,
    ) -> Result<Result<(), Stopped>, ConnError> {
        let mut need = needs(items);
        if view.read_only {
            need.sets_seen = false;
        }
        let folder_id = view.folder.id;
        let uids: Vec<u32> = positions.iter().map(|p| view.uids[*p]).collect();
        let recent_uids: std::collections::BTreeSet<u32> = uids
            .iter()
            .copied()
            .filter(|u| view.recent.contains(u))
            .collect();
        let store = self.shared.context.store.clone();

        for run in sequence::runs(positions, RUN) {
            let run_uids = &uids[run.clone()];
            let (Some(first), Some(last)) = (run_uids.first(), run_uids.last()) else {
                continue;
            };
            let metas = match store.messages_in_range(folder_id, *first, *last).await {
                Ok(m) => m,
                Err(e) => return Ok(Err(Stopped::Store(e))),
            };
            let mut metas: Vec<MessageMeta> = metas;
            let headers = if need.header && !need.body {
                match store.headers_in_range(folder_id, *first, *last).await {
                    Ok(h) => h,
                    Err(e) => return Ok(Err(Stopped::Store(e))),
                }
            } else {
                Vec::new()
            };
            if need.sets_seen {
                let unseen: Vec<u32> = metas
                    .iter()
                    .filter(|m| !m.flags.has(flag::SEEN))
                    .map(|m| m.uid)
                    .collect();
                // A body fetched without \Seen set would look unread for ever after:
                // the client must hear that the FETCH did not complete.
                let outcome = if unseen.is_empty() {
                    None
                } else {
                    match store
                        .store_flags(folder_id, unseen, FlagOp::Add, Flags::new(flag::SEEN), None)
                        .await
                    {
                        Ok(o) => Some(o),
                        Err(e) => return Ok(Err(Stopped::SetSeen(e))),
                    }
                };
                if let Some(outcome) = outcome {
                    for (u, modseq, f) in &outcome.changed {
                        view.reported.insert(*u, *modseq);
                        view.dirty = true;
                        if let Some(m) = metas.iter_mut().find(|m| m.uid == *u) {
                            m.flags = f.clone();
                            m.modseq = *modseq;
                        }
                    }
                }
            }
            let structures = if need.structure {
                match store
                    .structures_in_range(folder_id, *first, *last, structure::VERSION)
                    .await
                {
                    Ok(s) => s,
                    Err(e) => return Ok(Err(Stopped::Store(e))),
                }
            } else {
                Vec::new()
            };
            // Bodies stored before their structure was kept get it now, once.
            let mut computed: Vec<(i64, Structure)> = Vec::new();
            let (mut hi, mut si) = (0, 0);
            for (i, pos) in positions[run.clone()].iter().enumerate() {
                let u = run_uids[i];
                let Ok(mi) = metas.binary_search_by_key(&u, |m| m.uid) else {
                    continue;
                };
                let meta = &metas[mi];
                if changed_since.is_some_and(|c| meta.modseq <= c) {
                    continue;
                }
                let header: Option<Vec<u8>> = if need.body {
                    None
                } else if need.header {
                    while hi < headers.len() && headers[hi].0 < u {
                        hi += 1;
                    }
                    headers.get(hi).filter(|h| h.0 == u).map(|h| h.1.clone())
                } else {
                    None
                };
                let stored_structure = if need.structure {
                    while si < structures.len() && structures[si].0 < u {
                        si += 1;
                    }
                    structures
                        .get(si)
                        .filter(|s| s.0 == u)
                        .and_then(|s| s.2.as_ref())
                        .filter(|s| s.is_complete())
                } else {
                    None
                };
                let missing_structure = need.structure && stored_structure.is_none();
                let body = if need.body || missing_structure {
                    // A message left out would read as one with no FETCH data, and a
                    // client would cache it as such: the command fails instead.
                    match store.body(meta.body_id).await {
                        Ok(b) => Some(b),
                        Err(e) => return Ok(Err(Stopped::Store(e))),
                    }
                } else {
                    None
                };
                let raw: Option<&[u8]> = body.as_deref().or(header.as_deref());
                let parsed = if need.parse || missing_structure {
                    raw.and_then(mime::parse)
                } else {
                    None
                };
                let fresh = missing_structure.then(|| Structure::of(parsed.as_ref()));
                let structure = stored_structure.or(fresh.as_ref());
                let flags_changed = need.sets_seen;
                let recent = recent_uids.contains(&meta.uid);
                let mut out = Vec::with_capacity(items.len() + 1);
                for item in items {
                    let value = match item {
                        MessageDataItemName::Uid => Some(MessageDataItem::Uid(text::nz(meta.uid))),
                        MessageDataItemName::Flags => {
                            Some(MessageDataItem::Flags(fetch_flags(&meta.flags, recent)))
                        }
                        MessageDataItemName::InternalDate => {
                            internal_date(meta.internal_date).map(MessageDataItem::InternalDate)
                        }
                        MessageDataItemName::Rfc822Size => {
                            Some(MessageDataItem::Rfc822Size(meta.size))
                        }
                        MessageDataItemName::ModSeq => {
                            NonZeroU64::new(meta.modseq).map(MessageDataItem::ModSeq)
                        }
                        MessageDataItemName::Envelope => {
                            out.extend(structure.map(|s| Piece::raw("ENVELOPE", &s.envelope)));
                            None
                        }
                        MessageDataItemName::BodyStructure => {
                            out.extend(
                                structure.map(|s| Piece::raw("BODYSTRUCTURE", &s.bodystructure)),
                            );
                            None
                        }
                        MessageDataItemName::Body => {
                            out.extend(structure.map(|s| Piece::raw("BODY", &s.body)));
                            None
                        }
                        MessageDataItemName::Rfc822 => {
                            raw.map(|r| MessageDataItem::Rfc822(text::literal(r.to_vec())))
                        }
                        MessageDataItemName::Rfc822Header => raw.map(|r| {
                            let split = crate::store::header_end(r);
                            MessageDataItem::Rfc822Header(text::literal(r[..split].to_vec()))
                        }),
                        MessageDataItemName::Rfc822Text => raw.map(|r| {
                            let split = crate::store::header_end(r);
                            MessageDataItem::Rfc822Text(text::literal(r[split..].to_vec()))
                        }),
                        MessageDataItemName::BodyExt {
                            section,
                            partial: range,
                            ..
                        } => {
                            let data = raw
                                .and_then(|r| mime::section(r, parsed.as_ref(), section.as_ref()));
                            let (data, origin) = match data {
                                Some(d) => {
                                    let (d, o) = partial(d, *range);
                                    (text::literal(d), o)
                                }
                                None => (text::literal(Vec::new()), range.map(|r| r.0)),
                            };
                            Some(MessageDataItem::BodyExt {
                                section: section.clone(),
                                origin,
                                data,
                            })
                        }
                        MessageDataItemName::Binary {
                            section,
                            partial: range,
                            ..
                        } => {
                            let data = match raw
                                .map(|r| binary::content(r, parsed.as_ref(), section))
                                .transpose()
                            {
                                Ok(data) => data,
                                Err(why) => return Ok(Err(Stopped::Undecodable(why))),
                            };
                            let data = data.flatten();
                            match (range, data) {
                                (Some(range), data) => {
                                    let (d, origin) =
                                        partial(data.unwrap_or_default(), Some(*range));
                                    // Written by us: imap-codec has no `<origin>`.
                                    out.push(Piece::Raw(binary::partial_item(
                                        section,
                                        origin.unwrap_or(range.0),
                                        &d,
                                    )));
                                    None
                                }
                                (None, data) => Some(MessageDataItem::Binary {
                                    section: section.clone(),
                                    value: data
                                        .map_or(NString8::NString(NString(None)), binary::value),
                                }),
                            }
                        }
                        MessageDataItemName::BinarySize { section } => {
                            let data = match raw
                                .map(|r| binary::content(r, parsed.as_ref(), section))
                                .transpose()
                            {
                                Ok(data) => data,
                                Err(why) => return Ok(Err(Stopped::Undecodable(why))),
                            };
                            Some(MessageDataItem::BinarySize {
                                section: section.clone(),
                                size: data
                                    .flatten()
                                    .map_or(0, |d| u32::try_from(d.len()).unwrap_or(u32::MAX)),
                            })
                        }
                    };
                    out.extend(value.map(Piece::Item));
                }
                if flags_changed && !items.contains(&MessageDataItemName::Flags) {
                    out.push(Piece::Item(MessageDataItem::Flags(fetch_flags(
                        &meta.flags,
                        recent,
                    ))));
                }
                if let Some(fresh) = fresh {
                    computed.push((meta.body_id, fresh));
                }
                let seq = text::nz(*pos as u32 + 1);
                if out.iter().any(|p| matches!(p, Piece::Raw(_))) {
                    self.conn.send_raw(&fetch_line(seq, out)).await?;
                } else {
                    let items: Vec<MessageDataItem<'static>> = out
                        .into_iter()
                        .filter_map(|p| match p {
                            Piece::Item(i) => Some(i),
                            Piece::Raw(_) => None,
                        })
                        .collect();
                    if let Ok(items) = Vec1::try_from(items) {
                        self.conn
                            .send(&text::data(Data::Fetch { seq, items }))
                            .await?;
                    }
                }
            }
            if !computed.is_empty() {
                // The answer does not wait for the rows: they only spare the next FETCH.
                let store = store.clone();
                tokio::spawn(async move {
                    if let Err(e) = store.put_structures(structure::VERSION, computed).await {
                        tracing::warn!(error = %e, "cannot keep message structures; they are computed again next time");
                    }
                });
            }
        }
        Ok(Ok(()))
    }
}
