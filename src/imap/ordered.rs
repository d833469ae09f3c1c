//! SORT and THREAD (RFC 5256, RFC 5957): a search as SEARCH does it, then the matches
//! put in order by `sort` or in threads by `thread`.

use std::num::{NonZeroU32, NonZeroU64};

use imap_codec::imap_types::core::{Charset, Tag, Vec1};
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::search::SearchKey;
use mail_parser::Message;

use super::connection::ConnError;
use super::search::{Hit, matching, refuse_charset, uses_modseq};
use super::session::{Session, State, Transition};
use super::sort::{self, base_subject, sent_date};
use super::text;
use super::thread::{self, Item};
use crate::store::StoreError;

/// The number a match is known by in the answer: UID or sequence number.
fn number(hit: &Hit<'_>, uid: bool) -> u32 {
    if uid {
        hit.meta.uid
    } else {
        u32::try_from(hit.position + 1).unwrap_or(u32::MAX)
    }
}

fn seq(hit: &Hit<'_>) -> u32 {
    u32::try_from(hit.position + 1).unwrap_or(u32::MAX)
}

/// Message-IDs as threading compares them: without the angle brackets mail-parser
/// already removed, and never empty.
fn ids(values: Option<&[std::borrow::Cow<'_, str>]>) -> Vec<String> {
    values
        .unwrap_or_default()
        .iter()
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What threading needs of one message (RFC 5256 §3, REFERENCES step 1: References,
/// or In-Reply-To when References has none).
fn thread_item(hit: &Hit<'_>, uid: bool) -> Option<Item> {
    let m: Option<&Message<'_>> = hit.parsed;
    let mut references = ids(m.and_then(|m| m.references().as_text_list()));
    if references.is_empty() {
        references = ids(m.and_then(|m| m.in_reply_to().as_text_list()));
        references.truncate(1);
    }
    Some(Item {
        number: NonZeroU32::new(number(hit, uid))?,
        seq: seq(hit),
        sent: sent_date(m, hit.meta.internal_date.timestamp()),
        subject: base_subject(m.and_then(Message::subject).unwrap_or_default()),
        message_id: m
            .and_then(Message::message_id)
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        references,
    })
}

impl Session {
    /// The search both commands start with: a refused charset is answered here
    /// (`Ok(None)`), a store error is handed back for the caller to name.
    async fn ordered_matches<T>(
        &mut self,
        tag: &Tag<'static>,
        charset: Option<&Charset<'static>>,
        key: &SearchKey<'static>,
        header: bool,
        mut make: impl FnMut(Hit<'_>) -> Option<T>,
    ) -> Result<Option<Result<(Vec<T>, u64), StoreError>>, ConnError> {
        if let Some(refusal) = refuse_charset(tag, charset) {
            self.conn.send(&refusal).await?;
            return Ok(None);
        }
        let State::Selected(user, view) = &mut self.state else {
            return Ok(None);
        };
        if uses_modseq(key) {
            user.condstore = true;
        }
        let uids = view.uids.clone();
        let recent = view.recent.clone();
        let folder_id = view.folder.id;
        let store = self.shared.context.store.clone();
        let mut out = Vec::new();
        let mut highest = 0u64;
        let visit = |hit: Hit<'_>| {
            highest = highest.max(hit.meta.modseq);
            out.extend(make(hit));
        };
        let result = matching(&store, folder_id, &uids, &recent, key, header, visit).await;
        Ok(Some(result.map(|()| (out, highest))))
    }

    pub(crate) async fn sort(
        &mut self,
        tag: Tag<'static>,
        criteria: Vec1<SortCriterion>,
        charset: Charset<'static>,
        search: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> Result<Transition, ConnError> {
        let criteria = criteria.into_inner();
        let key = SearchKey::And(search);
        let header = sort::needs_header(&criteria);
        let make = |hit: Hit<'_>| {
            let internal = hit.meta.internal_date.timestamp();
            Some(sort::Entry {
                values: criteria
                    .iter()
                    .map(|c| sort::value(&c.key, hit.parsed, internal, hit.meta.size))
                    .collect(),
                seq: seq(&hit),
                number: number(&hit, uid),
            })
        };
        let found = self
            .ordered_matches(&tag, Some(&charset), &key, header, make)
            .await?;
        let (entries, highest) = match found {
            None => return Ok(Transition::None),
            Some(Ok(f)) => f,
            Some(Err(e)) => return self.no_internal(&tag, "SORT failed", &e).await,
        };
        let numbers = sort::order(&criteria, entries)
            .into_iter()
            .filter_map(NonZeroU32::new)
            .collect();
        let modseq = uses_modseq(&key)
            .then(|| NonZeroU64::new(highest))
            .flatten();
        self.conn
            .send(&text::data(Data::Sort(numbers, modseq)))
            .await?;
        if let Some(t) = self.sync_or_defer(uid).await? {
            return Ok(t);
        }
        self.ok(&tag, "SORT completed").await
    }

    pub(crate) async fn thread(
        &mut self,
        tag: Tag<'static>,
        algorithm: ThreadingAlgorithm<'static>,
        charset: Charset<'static>,
        search: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> Result<Transition, ConnError> {
        let threads: fn(&[Item]) -> Vec<_> = match algorithm {
            ThreadingAlgorithm::OrderedSubject => thread::ordered_subject,
            ThreadingAlgorithm::References => thread::references,
            ThreadingAlgorithm::Other(_) => {
                return self.bad(&tag, "unknown threading algorithm").await;
            }
        };
        let key = SearchKey::And(search);
        let make = |hit: Hit<'_>| thread_item(&hit, uid);
        let found = self
            .ordered_matches(&tag, Some(&charset), &key, true, make)
            .await?;
        let items = match found {
            None => return Ok(Transition::None),
            Some(Ok((items, _))) => items,
            Some(Err(e)) => return self.no_internal(&tag, "THREAD failed", &e).await,
        };
        self.conn
            .send(&text::data(Data::Thread(threads(&items))))
            .await?;
        if let Some(t) = self.sync_or_defer(uid).await? {
            return Ok(t);
        }
        self.ok(&tag, "THREAD completed").await
    }
}
