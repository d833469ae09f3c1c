//! SEARCH (RFC 3501 §6.4.4, UTF-8): flag, size, date and set keys from the store rows;
//! text keys over the message parsed by mail-parser, loaded only when a key needs it.
//! TEXT and BODY with a needle of three characters or more are answered by the store's
//! body text index (`store::search_text`), which keeps the same text casemapped: the
//! bodies are read only for shorter needles and for bodies not indexed yet, which are
//! indexed on the way.

use std::collections::BTreeSet;
use std::num::{NonZeroU32, NonZeroU64};

use chrono::{DateTime, NaiveDate, Utc};
use imap_codec::imap_types::core::{Charset, Tag, Vec1};
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::response::{Code, Data, StatusKind};
use imap_codec::imap_types::search::SearchKey;
use mail_parser::Message;

use super::connection::ConnError;
use super::extended::search as extended;
use super::mime;
use super::sequence;
use super::session::Session;
use super::state::{Selected, State, Transition};
use super::text;
use super::updates;
use crate::casemap::casemap;
use crate::store::search_text::{self, body_text};
use crate::store::{MessageMeta, Store, StoreError, TextScope, flag};

#[derive(Default, Clone, Copy)]
struct Needs {
    header: bool,
    body: bool,
}

fn needs(key: &SearchKey<'_>, n: &mut Needs) {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().for_each(|k| needs(k, n)),
        SearchKey::Not(k) => needs(k, n),
        SearchKey::Or(a, b) => {
            needs(a, n);
            needs(b, n);
        }
        SearchKey::Bcc(_)
        | SearchKey::Cc(_)
        | SearchKey::From(_)
        | SearchKey::To(_)
        | SearchKey::Subject(_)
        | SearchKey::Header(..)
        | SearchKey::SentBefore(_)
        | SearchKey::SentOn(_)
        | SearchKey::SentSince(_) => n.header = true,
        SearchKey::Body(_) | SearchKey::Text(_) => n.body = true,
        _ => {}
    }
}

pub(crate) fn uses_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().any(uses_modseq),
        SearchKey::Not(k) => uses_modseq(k),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::ModSequence { .. } => true,
        _ => false,
    }
}

/// One message as the search sees it.
struct Candidate<'a> {
    /// The server's clock when the search began: WITHIN's OLDER and YOUNGER count back
    /// from it (RFC 5032).
    now: DateTime<Utc>,
    seq: u32,
    meta: &'a MessageMeta,
    parsed: Option<Message<'a>>,
    uids: &'a [u32],
    recent: bool,
    /// The index's answers, when this message's body is indexed.
    indexed: Option<&'a [TextHits]>,
}

/// The UIDs the body text index found for one TEXT or BODY key.
struct TextHits {
    scope: TextScope,
    /// The needle as the client sent it.
    needle: Vec<u8>,
    uids: Vec<u32>,
}

/// Bodies a search indexes on its way, at most: a folder stored before the index was
/// added would otherwise have the text of every one of its bodies held in memory at once
/// by its first search. The rest are indexed by the searches after it.
const INDEXED_PER_SEARCH: usize = 1_000;

/// The TEXT and BODY keys of a search: those the index answers (scope and needle as
/// sent, deduplicated), and whether any is left to the scan.
fn text_keys(key: &SearchKey<'_>, indexable: &mut Vec<(TextScope, Vec<u8>)>, scan: &mut bool) {
    let mut add = |scope: TextScope, s: &imap_codec::imap_types::core::AString<'_>| {
        let needle = text::astring_bytes(s).into_owned();
        if search_text::needle(&needle).is_none() {
            *scan = true;
        } else if !indexable.iter().any(|(sc, n)| *sc == scope && *n == needle) {
            indexable.push((scope, needle));
        }
    };
    match key {
        SearchKey::And(keys) => keys
            .as_ref()
            .iter()
            .for_each(|k| text_keys(k, indexable, scan)),
        SearchKey::Not(k) => text_keys(k, indexable, scan),
        SearchKey::Or(a, b) => {
            text_keys(a, indexable, scan);
            text_keys(b, indexable, scan);
        }
        SearchKey::Body(s) => add(TextScope::Body, s),
        SearchKey::Text(s) => add(TextScope::HeaderOrBody, s),
        _ => {}
    }
}

/// What the index says of this message for a TEXT or BODY key, if it was asked.
fn indexed_match(c: &Candidate<'_>, scope: TextScope, needle: &[u8]) -> Option<bool> {
    let hits = c
        .indexed?
        .iter()
        .find(|h| h.scope == scope && h.needle == needle)?;
    Some(hits.uids.binary_search(&c.meta.uid).is_ok())
}

/// Substring match under `i;unicode-casemap` (RFC 5051), the comparator of I18NLEVEL=1.
fn contains(haystack: &str, needle: &[u8]) -> bool {
    casemap(haystack).contains(&casemap(&String::from_utf8_lossy(needle)))
}

fn header_text(m: &Message<'_>, name: &str) -> String {
    let mut out = String::new();
    for h in m.headers() {
        if h.name.as_str().eq_ignore_ascii_case(name) {
            if let Some(raw) = m
                .raw_message
                .get(h.offset_start as usize..h.offset_end as usize)
            {
                out.push_str(&String::from_utf8_lossy(raw));
                out.push(' ');
            }
            match &h.value {
                mail_parser::HeaderValue::Text(t) => out.push_str(t),
                mail_parser::HeaderValue::TextList(l) => l.iter().for_each(|t| {
                    out.push_str(t);
                    out.push(' ');
                }),
                mail_parser::HeaderValue::Address(a) => {
                    for addr in a.iter() {
                        if let Some(n) = &addr.name {
                            out.push_str(n);
                            out.push(' ');
                        }
                        if let Some(e) = &addr.address {
                            out.push_str(e);
                            out.push(' ');
                        }
                    }
                }
                _ => {}
            }
            out.push('\n');
        }
    }
    out
}

/// The day as written in `Date:`, in the sender's own time zone: RFC 3501 §6.4.4 says
/// SENTON and friends disregard time and time zone, so `Sun, 25 Mar 2007 01:00 +0200`
/// was sent on the 25th even though it was still the 24th in UTC.
fn sent_date(m: &Message<'_>) -> Option<NaiveDate> {
    let d = m.date()?;
    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
}

/// `now` less `seconds`.
fn within(now: DateTime<Utc>, seconds: NonZeroU32) -> DateTime<Utc> {
    now - chrono::Duration::seconds(i64::from(seconds.get()))
}

fn eval(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    let f = &c.meta.flags;
    let date = c.meta.internal_date.date_naive();
    match key {
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| eval(k, c)),
        SearchKey::Not(k) => !eval(k, c),
        SearchKey::Or(a, b) => eval(a, c) || eval(b, c),
        SearchKey::All => true,
        SearchKey::SequenceSet(set) => {
            let len = c.uids.len() as u32;
            sequence::contains(set, c.seq, len)
        }
        SearchKey::Uid(set) => {
            let largest = c.uids.last().copied().unwrap_or(0);
            sequence::contains(set, c.meta.uid, largest)
        }
        SearchKey::Answered => f.has(flag::ANSWERED),
        SearchKey::Unanswered => !f.has(flag::ANSWERED),
        SearchKey::Deleted => f.has(flag::DELETED),
        SearchKey::Undeleted => !f.has(flag::DELETED),
        SearchKey::Draft => f.has(flag::DRAFT),
        SearchKey::Undraft => !f.has(flag::DRAFT),
        SearchKey::Flagged => f.has(flag::FLAGGED),
        SearchKey::Unflagged => !f.has(flag::FLAGGED),
        SearchKey::Seen => f.has(flag::SEEN),
        SearchKey::Unseen => !f.has(flag::SEEN),
        SearchKey::Recent => c.recent,
        SearchKey::New => c.recent && !f.has(flag::SEEN),
        SearchKey::Old => !c.recent,
        SearchKey::Keyword(k) => f.keywords.iter().any(|w| w.eq_ignore_ascii_case(k.inner())),
        SearchKey::Unkeyword(k) => !f.keywords.iter().any(|w| w.eq_ignore_ascii_case(k.inner())),
        SearchKey::Older(n) => c.meta.internal_date <= within(c.now, *n),
        SearchKey::Younger(n) => c.meta.internal_date >= within(c.now, *n),
        SearchKey::Larger(n) => c.meta.size > *n,
        SearchKey::Smaller(n) => c.meta.size < *n,
        SearchKey::Before(d) => date < *d.as_ref(),
        SearchKey::On(d) => date == *d.as_ref(),
        SearchKey::Since(d) => date >= *d.as_ref(),
        SearchKey::SentBefore(d) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s < *d.as_ref()),
        SearchKey::SentOn(d) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s == *d.as_ref()),
        SearchKey::SentSince(d) => c
            .parsed
            .as_ref()
            .and_then(sent_date)
            .is_some_and(|s| s >= *d.as_ref()),
        SearchKey::From(s) => field(c, "From", s),
        SearchKey::To(s) => field(c, "To", s),
        SearchKey::Cc(s) => field(c, "Cc", s),
        SearchKey::Bcc(s) => field(c, "Bcc", s),
        SearchKey::Subject(s) => field(c, "Subject", s),
        SearchKey::Header(name, value) => {
            let name = String::from_utf8_lossy(&text::astring_bytes(name)).into_owned();
            let value = text::astring_bytes(value);
            c.parsed.as_ref().is_some_and(|m| {
                let t = header_text(m, &name);
                m.headers()
                    .iter()
                    .any(|h| h.name.as_str().eq_ignore_ascii_case(&name))
                    && (value.is_empty() || contains(&t, &value))
            })
        }
        SearchKey::Body(s) => {
            let needle = text::astring_bytes(s);
            indexed_match(c, TextScope::Body, &needle).unwrap_or_else(|| {
                c.parsed
                    .as_ref()
                    .is_some_and(|m| contains(&body_text(m), &needle))
            })
        }
        SearchKey::Text(s) => {
            let needle = text::astring_bytes(s);
            indexed_match(c, TextScope::HeaderOrBody, &needle).unwrap_or_else(|| {
                c.parsed.as_ref().is_some_and(|m| {
                    let header = search_text::header_text(m.raw_message.as_ref());
                    contains(&header, &needle) || contains(&body_text(m), &needle)
                })
            })
        }
        SearchKey::ModSequence { modseq, .. } => c.meta.modseq >= *modseq,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

fn field(
    c: &Candidate<'_>,
    name: &str,
    needle: &imap_codec::imap_types::core::AString<'_>,
) -> bool {
    c.parsed
        .as_ref()
        .is_some_and(|m| contains(&header_text(m, name), &text::astring_bytes(needle)))
}

/// What a command that searches first (SEARCH, SORT, THREAD) sees of one match.
pub(crate) struct Hit<'a> {
    /// Position in the view: the sequence number minus one.
    pub(crate) position: usize,
    pub(crate) meta: &'a MessageMeta,
}

/// The charset named in SEARCH, SORT or THREAD, refused unless it is one the server
/// reads: `Some` is the `NO [BADCHARSET (…)]` to answer with.
pub(crate) fn refuse_charset(
    tag: &Tag<'_>,
    charset: Option<&Charset<'_>>,
) -> Option<imap_codec::imap_types::response::Response<'static>> {
    let name = charset?.as_ref().to_ascii_uppercase();
    if name == "UTF-8" || name == "US-ASCII" {
        return None;
    }
    let allowed = ["UTF-8", "US-ASCII"]
        .into_iter()
        .filter_map(|c| Charset::try_from(c).ok())
        .collect();
    Some(text::tagged(
        tag,
        StatusKind::No,
        Some(Code::BadCharset { allowed }),
        "only UTF-8 and US-ASCII are supported",
    ))
}

/// The messages of the view that match `key`, in mailbox order, each handed to
/// `visit`. A message that cannot be read is an error, never a non-match: the client would act
/// on a wrong answer.
pub(crate) async fn matching(
    store: &Store,
    folder_id: i64,
    uids: &[u32],
    recent: &BTreeSet<u32>,
    key: &SearchKey<'_>,
    now: DateTime<Utc>,
    mut visit: impl FnMut(Hit<'_>),
) -> Result<(), StoreError> {
    let mut need = Needs::default();
    needs(key, &mut need);
    let (Some(first), Some(last)) = (uids.first().copied(), uids.last().copied()) else {
        return Ok(());
    };
    let metas = store.messages_in_range(folder_id, first, last).await?;
    let mut indexable = Vec::new();
    let mut scan = false;
    text_keys(key, &mut indexable, &mut scan);
    // Bodies not indexed yet are read; read before the index is asked, so one indexed
    // in between is read rather than missed.
    let unindexed = if indexable.is_empty() {
        Vec::new()
    } else {
        store.unindexed_in_range(folder_id, first, last).await?
    };
    let mut hits = Vec::with_capacity(indexable.len());
    for (scope, needle) in indexable {
        let Some(folded) = search_text::needle(&needle) else {
            continue;
        };
        let uids = store
            .text_search(folder_id, first, last, &folded, scope)
            .await?;
        hits.push(TextHits {
            scope,
            needle,
            uids,
        });
    }
    let read_all_bodies = need.body && (scan || hits.is_empty());
    let headers = if need.header && !read_all_bodies {
        store.headers_in_range(folder_id, first, last).await?
    } else {
        Vec::new()
    };
    let mut indexing = Vec::new();
    let mut hi = 0;
    for (i, u) in uids.iter().enumerate() {
        let Ok(mi) = metas.binary_search_by_key(u, |m| m.uid) else {
            continue;
        };
        let meta = &metas[mi];
        let is_unindexed = unindexed.binary_search_by_key(u, |x| x.0).is_ok();
        let content: Option<Vec<u8>> = if read_all_bodies || (need.body && is_unindexed) {
            let body = store.body(meta.body_id).await?;
            if is_unindexed && indexing.len() < INDEXED_PER_SEARCH {
                indexing.push((meta.body_id, search_text::SearchText::of(&body)));
            }
            Some(body)
        } else if need.header {
            while hi < headers.len() && headers[hi].0 < *u {
                hi += 1;
            }
            headers.get(hi).filter(|h| h.0 == *u).map(|h| h.1.clone())
        } else {
            None
        };
        let parsed = content.as_deref().and_then(mime::parse);
        let candidate = Candidate {
            now,
            seq: i as u32 + 1,
            meta,
            parsed,
            uids,
            recent: recent.contains(u),
            indexed: (!is_unindexed).then_some(hits.as_slice()),
        };
        if eval(key, &candidate) {
            visit(Hit { position: i, meta });
        }
    }
    if !indexing.is_empty() {
        // The answer does not wait for the rows: they only spare the next search work.
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = store.put_search_text(indexing).await {
                tracing::warn!(error = %e, "cannot index bodies; they are read again next time");
            }
        });
    }
    Ok(())
}

impl Session {
    /// Runs `key` over the selected folder as this session sees it, calling `visit` for
    /// each match; a MODSEQ key turns CONDSTORE on (RFC 7162 §3.1). SEARCH, SORT and
    /// THREAD all start here.
    pub(crate) async fn search_selected(
        &self,
        selected: &mut Selected,
        key: &SearchKey<'_>,
        visit: impl FnMut(Hit<'_>),
    ) -> Result<(), StoreError> {
        let Selected { user, view } = selected;
        if uses_modseq(key) {
            user.condstore = true;
        }
        let store = &self.shared.context.store;
        let now = self.shared.context.clock.now();
        let folder_id = view.folder.id;
        matching(store, folder_id, &view.uids, &view.recent, key, now, visit).await
    }

    pub(crate) async fn search(
        &mut self,
        selected: &mut Selected,
        tag: Tag<'static>,
        charset: Option<Charset<'static>>,
        criteria: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> Result<Transition, ConnError> {
        let returns = match self.take_returns(selected, &tag).await? {
            Ok(r) => r,
            Err(refused) => return Ok(refused),
        };
        // RFC 9051 has no SEARCH response: a plain SEARCH is `RETURN (ALL)` (§6.4.4).
        let returns = match returns {
            None if self.imap4rev2 => Some(extended::Returns {
                all: true,
                ..Default::default()
            }),
            r => r,
        };
        let saving = returns.as_ref().is_some_and(|r| r.save);
        if let Some(refusal) = refuse_charset(&tag, charset.as_ref()) {
            if saving {
                selected.view.saved.clear();
            }
            self.conn.send(&refusal).await?;
            return Ok(Transition::None);
        }
        let key = SearchKey::And(criteria);
        let modseq_key = uses_modseq(&key);
        let mut found = Vec::new();
        let mut highest = 0u64;
        let visit = |hit: Hit<'_>| {
            highest = highest.max(hit.meta.modseq);
            let number = if uid {
                hit.meta.uid
            } else {
                hit.position as u32 + 1
            };
            found.push(extended::Hit {
                number,
                uid: hit.meta.uid,
            });
        };
        if let Err(e) = self.search_selected(selected, &key, visit).await {
            if saving {
                selected.view.saved.clear();
            }
            return self.no_internal(&tag, "SEARCH failed", &e).await;
        }
        let modseq = if modseq_key {
            NonZeroU64::new(highest)
        } else {
            None
        };
        match &returns {
            None => {
                let numbers = found
                    .iter()
                    .filter_map(|h| NonZeroU32::new(h.number))
                    .collect();
                self.conn
                    .send(&text::data(Data::Search(numbers, modseq)))
                    .await?;
            }
            Some(r) => {
                let keep = (&key, None);
                self.answer_extended(selected, &tag, uid, r, &found, modseq, keep)
                    .await?
            }
        }
        let Selected { user, view } = selected;
        if let Some(t) = self.sync_or_defer(user, view, uid).await? {
            return Ok(t);
        }
        self.ok(&tag, "SEARCH completed").await
    }

    /// The ESEARCH answer of a SEARCH or SORT with RETURN options, what SAVE keeps, and
    /// the search (`keep`: its key and SORT's criteria) kept updated for UPDATE.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn answer_extended(
        &mut self,
        selected: &mut Selected,
        tag: &Tag<'static>,
        uid: bool,
        returns: &extended::Returns,
        found: &[extended::Hit],
        modseq: Option<NonZeroU64>,
        keep: (&SearchKey<'static>, Option<&[SortCriterion]>),
    ) -> Result<(), ConnError> {
        let view = &mut selected.view;
        if returns.save {
            view.saved = extended::to_save(returns, found);
        }
        let modseq = modseq.map(NonZeroU64::get);
        if let Some(bytes) = extended::esearch(tag, uid, returns, found, modseq) {
            self.conn.send_raw(&bytes).await?;
        }
        if returns.update {
            if view.contexts.len() >= updates::MAX_CONTEXTS {
                let refusal = format!(
                    "* NO [NOUPDATE \"{}\"] too many searches kept updated\r\n",
                    tag.inner()
                );
                self.conn.send_raw(refusal.as_bytes()).await?;
            } else {
                let (key, sort) = keep;
                view.contexts.push(updates::Context {
                    tag: tag.inner().to_owned(),
                    uid,
                    key: key.clone(),
                    sort: sort.map(<[SortCriterion]>::to_vec),
                    result: found.iter().map(|h| h.uid).collect(),
                });
            }
        }
        Ok(())
    }

    /// The RETURN options of the searching command being run. A second UPDATE under the
    /// tag of a live context is refused (RFC 5267 §4.3), the tag being what tells the
    /// client's contexts apart: `Err` once answered.
    pub(crate) async fn take_returns(
        &mut self,
        selected: &Selected,
        tag: &Tag<'static>,
    ) -> Result<Result<Option<extended::Returns>, Transition>, ConnError> {
        let returns = self.returns.take();
        let updating = returns.as_ref().is_some_and(|r| r.update);
        if updating && selected.view.contexts.iter().any(|c| c.tag == tag.inner()) {
            return self
                .bad(tag, "tag already names a search kept updated")
                .await
                .map(Err);
        }
        Ok(Ok(returns))
    }

    /// Runs what `extended::decode` made of a searching command or a `$`.
    pub(crate) async fn extended_search(
        &mut self,
        state: &mut State,
        e: extended::Extended,
    ) -> Result<(), ConnError> {
        match e {
            extended::Extended::Command { command, returns } => {
                self.returns = returns;
                let done = self.dispatch(state, command).await;
                self.returns = None;
                done
            }
            extended::Extended::Nothing { tag, name } => {
                self.ok(&tag, &format!("{name} completed, no message"))
                    .await?;
                Ok(())
            }
            extended::Extended::Bad { tag, saving, why } => {
                if saving && let State::Selected(s) = state {
                    s.view.saved.clear();
                }
                self.bad(&tag, why).await?;
                Ok(())
            }
            extended::Extended::CancelUpdate { tag, tags } => {
                let State::Selected(s) = state else {
                    self.bad(&tag, "no mailbox selected").await?;
                    return Ok(());
                };
                let contexts = &mut s.view.contexts;
                let known = |t: &Vec<u8>| contexts.iter().any(|c| c.tag.as_bytes() == t);
                if !tags.iter().all(known) {
                    self.bad(&tag, "no search kept updated under that tag")
                        .await?;
                    return Ok(());
                }
                contexts.retain(|c| !tags.iter().any(|t| c.tag.as_bytes() == t));
                self.ok(&tag, "CANCELUPDATE completed").await?;
                Ok(())
            }
        }
    }
}
