//! SORT and THREAD (RFC 5256, RFC 5957): a search as SEARCH does it, then the matches
//! put in order by `sort` or in threads by `thread`.
//!
//! The header keys come from the store's `sort_keys` rows, so a large folder is ordered
//! without reading its headers; a message without a row (stored before the rows
//! existed, or under older rules) has its header read and its row written afterwards.

use std::num::{NonZeroU32, NonZeroU64};

use chrono::{DateTime, Utc};

use imap_codec::imap_types::core::{Charset, Tag, Vec1};
use imap_codec::imap_types::extensions::sort::SortCriterion;
use imap_codec::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_codec::imap_types::response::Data;
use imap_codec::imap_types::search::SearchKey;

use super::connection::ConnError;
use super::extended::search as extended;
use super::mime;
use super::search::{Hit, matching, refuse_charset, uses_modseq};
use super::session::Session;
use super::sort::{self, BaseSubject, KEYS_VERSION};
use super::state::{Selected, Transition};
use super::text;
use super::thread::{self, Item};
use super::view::View;
use crate::store::{SortFields, SortKeys, Store, StoreError};

/// A message the search kept.
struct Found {
    seq: u32,
    uid: u32,
    internal: i64,
    size: u32,
}

impl Found {
    fn number(&self, uid: bool) -> u32 {
        if uid { self.uid } else { self.seq }
    }
}

/// The keys of each found message, in the same order. A message expunged since the
/// search has no row any more and is left out, as SEARCH would have left it out.
async fn with_keys(
    store: &Store,
    folder_id: i64,
    found: Vec<Found>,
    fields: SortFields,
) -> Result<Vec<(Found, SortKeys)>, StoreError> {
    let (Some(first), Some(last)) = (found.first(), found.last()) else {
        return Ok(Vec::new());
    };
    let (first, last) = (first.uid, last.uid);
    let stored = store
        .sort_keys_in_range(folder_id, first, last, KEYS_VERSION, fields)
        .await?;
    let missing: Vec<u32> = found
        .iter()
        .filter(|f| {
            stored
                .binary_search_by_key(&f.uid, |s| s.0)
                .is_ok_and(|i| stored[i].2.is_none())
        })
        .map(|f| f.uid)
        .collect();
    let mut computed: Vec<(u32, i64, SortKeys)> = Vec::new();
    if let (Some(&from), Some(&to)) = (missing.first(), missing.last()) {
        let headers = store.headers_in_range(folder_id, from, to).await?;
        for (uid, header) in headers {
            if missing.binary_search(&uid).is_err() {
                continue;
            }
            let Ok(i) = stored.binary_search_by_key(&uid, |s| s.0) else {
                continue;
            };
            let keys = mime::parse(&header)
                .map(|m| sort::keys(&m))
                .unwrap_or_default();
            computed.push((uid, stored[i].1, keys));
        }
    }
    // Both lists are in UID order, as `found` is: one pass, the keys moved, not copied
    // (a 100,000-message SORT would otherwise copy a million strings).
    let mut out = Vec::with_capacity(found.len());
    let mut stored = stored.into_iter().peekable();
    let mut fresh = computed.iter().peekable();
    for f in found {
        while stored.next_if(|s| s.0 < f.uid).is_some() {}
        let Some((_, _, keys)) = stored.next_if(|s| s.0 == f.uid) else {
            continue;
        };
        let keys = match keys {
            Some(k) => k,
            None => {
                while fresh.next_if(|c| c.0 < f.uid).is_some() {}
                match fresh.next_if(|c| c.0 == f.uid) {
                    Some(c) => c.2.clone(),
                    None => continue,
                }
            }
        };
        out.push((f, keys));
    }
    if !computed.is_empty() {
        // The answer does not wait for the rows: they only spare the next command work.
        let store = store.clone();
        let rows = computed.into_iter().map(|(_, body, k)| (body, k)).collect();
        tokio::spawn(async move {
            if let Err(e) = store.put_sort_keys(KEYS_VERSION, rows).await {
                tracing::warn!(error = %e, "cannot store sort keys; they are computed again next time");
            }
        });
    }
    Ok(out)
}

impl Found {
    fn of(hit: &Hit<'_>) -> Found {
        Found {
            seq: u32::try_from(hit.position + 1).unwrap_or(u32::MAX),
            uid: hit.meta.uid,
            internal: hit.meta.internal_date.timestamp(),
            size: hit.meta.size,
        }
    }
}

/// The found messages with the values `criteria` compares, numbered by UID or sequence
/// number.
fn entries(
    criteria: &[SortCriterion],
    found: Vec<(Found, SortKeys)>,
    uid: bool,
) -> Vec<sort::Entry> {
    found
        .into_iter()
        .map(|(f, mut keys)| sort::Entry {
            values: criteria
                .iter()
                .map(|c| sort::value(&c.key, &mut keys, f.internal, f.size))
                .collect(),
            seq: f.seq,
            number: f.number(uid),
        })
        .collect()
}

/// The UIDs `key` finds in `view` now, in the order of `criteria` (mailbox order without):
/// an update context's fresh result (RFC 5267 §4.3).
pub(crate) async fn fresh_result(
    store: &Store,
    view: &View,
    key: &SearchKey<'_>,
    criteria: Option<&[SortCriterion]>,
    now: DateTime<Utc>,
) -> Result<Vec<u32>, StoreError> {
    let mut found = Vec::new();
    let visit = |hit: Hit<'_>| found.push(Found::of(&hit));
    let folder_id = view.folder.id;
    matching(store, folder_id, &view.uids, &view.recent, key, now, visit).await?;
    let Some(criteria) = criteria else {
        return Ok(found.iter().map(|f| f.uid).collect());
    };
    let fields = sort::fields(criteria);
    let keyed = if fields != SortFields::default() {
        with_keys(store, folder_id, found, fields).await?
    } else {
        found
            .into_iter()
            .map(|f| (f, SortKeys::default()))
            .collect()
    };
    Ok(sort::order(criteria, entries(criteria, keyed, true)))
}

impl Session {
    /// The search both commands start with, and the keys of what it found (those of
    /// `fields`; none when it is empty): `Ok(None)` when a refused charset was already
    /// answered.
    async fn found(
        &mut self,
        selected: &mut Selected,
        tag: &Tag<'static>,
        charset: &Charset<'static>,
        key: &SearchKey<'static>,
        fields: SortFields,
    ) -> Result<Option<Result<(Vec<(Found, SortKeys)>, u64), StoreError>>, ConnError> {
        if let Some(refusal) = refuse_charset(tag, Some(charset)) {
            self.conn.send(&refusal).await?;
            return Ok(None);
        }
        let folder_id = selected.view.folder.id;
        let store = self.shared.context.store.clone();
        let mut found = Vec::new();
        let mut highest = 0u64;
        let visit = |hit: Hit<'_>| {
            highest = highest.max(hit.meta.modseq);
            found.push(Found::of(&hit));
        };
        if let Err(e) = self.search_selected(selected, key, visit).await {
            return Ok(Some(Err(e)));
        }
        let keyed = if fields != SortFields::default() {
            with_keys(&store, folder_id, found, fields).await
        } else {
            Ok(found
                .into_iter()
                .map(|f| (f, SortKeys::default()))
                .collect())
        };
        Ok(Some(keyed.map(|k| (k, highest))))
    }

    pub(crate) async fn sort(
        &mut self,
        selected: &mut Selected,
        tag: Tag<'static>,
        criteria: Vec1<SortCriterion>,
        charset: Charset<'static>,
        search: Vec1<SearchKey<'static>>,
        uid: bool,
    ) -> Result<Transition, ConnError> {
        let returns = match self.take_returns(selected, &tag).await? {
            Ok(r) => r,
            Err(refused) => return Ok(refused),
        };
        let saving = returns.as_ref().is_some_and(|r| r.save);
        let criteria = criteria.into_inner();
        let key = SearchKey::And(search);
        let fields = sort::fields(&criteria);
        let found = self.found(selected, &tag, &charset, &key, fields).await?;
        let (found, highest) = match found {
            Some(Ok(f)) => f,
            failed => {
                if saving {
                    selected.view.saved.clear();
                }
                return match failed {
                    Some(Err(e)) => self.no_internal(&tag, "SORT failed", &e).await,
                    _ => Ok(Transition::None),
                };
            }
        };
        let ordered = sort::order(&criteria, entries(&criteria, found, uid));
        let modseq = uses_modseq(&key)
            .then(|| NonZeroU64::new(highest))
            .flatten();
        if let Some(r) = &returns {
            let uids = &selected.view.uids;
            let hits: Vec<extended::Hit> = ordered
                .iter()
                .filter_map(|n| {
                    let uid = if uid {
                        *n
                    } else {
                        *uids.get(usize::try_from(*n).ok()?.checked_sub(1)?)?
                    };
                    Some(extended::Hit { number: *n, uid })
                })
                .collect();
            let keep = (&key, Some(criteria.as_slice()));
            self.answer_extended(selected, &tag, uid, r, &hits, modseq, keep)
                .await?;
        } else {
            let numbers = ordered.into_iter().filter_map(NonZeroU32::new).collect();
            self.conn
                .send(&text::data(Data::Sort(numbers, modseq)))
                .await?;
        }
        let Selected { user, view } = selected;
        if let Some(t) = self.sync_or_defer(user, view, uid).await? {
            return Ok(t);
        }
        self.ok(&tag, "SORT completed").await
    }

    pub(crate) async fn thread(
        &mut self,
        selected: &mut Selected,
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
        let found = match self
            .found(selected, &tag, &charset, &key, sort::THREAD_FIELDS)
            .await?
        {
            None => return Ok(Transition::None),
            Some(Ok((f, _))) => f,
            Some(Err(e)) => return self.no_internal(&tag, "THREAD failed", &e).await,
        };
        let items: Vec<Item> = found
            .into_iter()
            .filter_map(|(f, k)| {
                Some(Item {
                    number: NonZeroU32::new(f.number(uid))?,
                    seq: f.seq,
                    sent: k.sent.unwrap_or(f.internal),
                    subject: BaseSubject {
                        key: k.subject,
                        reply_or_forward: k.reply,
                    },
                    message_id: k.message_id,
                    references: k.references,
                })
            })
            .collect();
        self.conn
            .send(&text::data(Data::Thread(threads(&items))))
            .await?;
        let Selected { user, view } = selected;
        if let Some(t) = self.sync_or_defer(user, view, uid).await? {
            return Ok(t);
        }
        self.ok(&tag, "THREAD completed").await
    }
}
