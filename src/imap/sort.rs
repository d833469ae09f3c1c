//! The sort keys of RFC 5256 and RFC 5957, computed from mail-parser's view of a header,
//! and the order they make: pure functions, so the rules can be checked without a server.

use std::cmp::Ordering;

use imap_codec::imap_types::extensions::sort::{SortCriterion, SortKey};
use mail_parser::{Address, Message};

use crate::casemap::casemap;
use crate::store::{SortFields, SortKeys};

/// The base subject of RFC 5256 §2.1, with whether a reply or forward marker was taken
/// off: THREAD=REFERENCES prefers an original over a reply when merging by subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseSubject {
    /// Upper-cased, so that equal subjects compare equal whatever their case.
    pub(crate) key: String,
    pub(crate) reply_or_forward: bool,
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Tabs, folding and runs of white space become one space (§2.1 step 1); encoded words
/// were already decoded by mail-parser.
fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    if space {
        out.push(' ');
    }
    out
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.is_char_boundary(s.len() - suffix.len())
        && s[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP`: the length it spans at the start of `s`.
fn blob_len(s: &str) -> Option<usize> {
    let rest = s.strip_prefix('[')?;
    let close = rest.find([']', '['])?;
    if rest.as_bytes().get(close) != Some(&b']') {
        return None;
    }
    let mut end = 1 + close + 1;
    while s[end..].starts_with(is_wsp) {
        end += 1;
    }
    Some(end)
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"`: the length it spans.
fn refwd_len(s: &str) -> Option<usize> {
    let mut at = if starts_with_ci(s, "re") {
        2
    } else if starts_with_ci(s, "fwd") {
        3
    } else if starts_with_ci(s, "fw") {
        2
    } else {
        return None;
    };
    while s[at..].starts_with(is_wsp) {
        at += 1;
    }
    if let Some(b) = blob_len(&s[at..]) {
        at += b;
    }
    s[at..].starts_with(':').then_some(at + 1)
}

/// `subj-leader = (*subj-blob subj-refwd) / WSP`: the length it spans.
fn leader_len(s: &str) -> Option<usize> {
    if s.starts_with(is_wsp) {
        return Some(1);
    }
    let mut at = 0;
    loop {
        if let Some(r) = refwd_len(&s[at..]) {
            return Some(at + r);
        }
        at += blob_len(&s[at..])?;
    }
}

/// RFC 5256 §2.1, steps 2 to 6.
pub(crate) fn base_subject(subject: &str) -> BaseSubject {
    let mut s = collapse_whitespace(subject);
    let mut reply_or_forward = false;
    loop {
        // Step 2: trailers.
        loop {
            if s.ends_with(is_wsp) {
                s.pop();
            } else if ends_with_ci(&s, "(fwd)") {
                s.truncate(s.len() - 5);
                reply_or_forward = true;
            } else {
                break;
            }
        }
        // Steps 3 to 5: leaders, and a blob in front of a non-empty rest.
        loop {
            let mut changed = false;
            while let Some(n) = leader_len(&s) {
                if s[..n].contains(':') {
                    reply_or_forward = true;
                }
                s.drain(..n);
                changed = true;
            }
            if let Some(n) = blob_len(&s)
                && !s[n..].trim_matches(is_wsp).is_empty()
            {
                s.drain(..n);
                changed = true;
            }
            if !changed {
                break;
            }
        }
        // Step 6: `[fwd: ... ]`.
        if starts_with_ci(&s, "[fwd:") && s.ends_with(']') {
            s = s[5..s.len() - 1].to_owned();
            reply_or_forward = true;
            continue;
        }
        break;
    }
    BaseSubject {
        key: casemap(&s),
        reply_or_forward,
    }
}

/// The sent date of RFC 5256 §2.2 in Unix seconds, UTC, when `Date:` can be read;
/// INTERNALDATE stands in otherwise.
fn sent_date(m: &Message<'_>) -> Option<i64> {
    m.date().filter(|d| d.is_valid()).map(|d| d.to_timestamp())
}

/// The local part of the first address (RFC 5256: the addr-mailbox), for FROM, TO, CC.
fn first_mailbox(a: Option<&Address<'_>>) -> String {
    let Some(address) = a
        .and_then(Address::first)
        .and_then(|f| f.address.as_deref())
    else {
        return String::new();
    };
    let local = address.rsplit_once('@').map_or(address, |(l, _)| l);
    casemap(local)
}

/// RFC 5957 §3: the display name of the first address, or its addr-spec when it has none.
fn first_display(a: Option<&Address<'_>>) -> String {
    let Some(first) = a.and_then(Address::first) else {
        return String::new();
    };
    let name = first
        .name
        .as_deref()
        .map(collapse_whitespace)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty());
    match name {
        Some(n) => casemap(&n),
        None => casemap(first.address.as_deref().unwrap_or("")),
    }
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

/// Bumped whenever the rules below change, so that stored keys are computed again
/// (2: keys in `i;unicode-casemap` form, RFC 5051).
pub(crate) const KEYS_VERSION: i64 = 2;

/// Everything SORT and THREAD read of a header (RFC 5256 §3, REFERENCES step 1:
/// References, or the first of In-Reply-To when References has none).
pub(crate) fn keys(m: &Message<'_>) -> SortKeys {
    let subject = base_subject(m.subject().unwrap_or_default());
    let mut references = ids(m.references().as_text_list());
    if references.is_empty() {
        references = ids(m.in_reply_to().as_text_list());
        references.truncate(1);
    }
    SortKeys {
        sent: sent_date(m),
        subject: subject.key,
        reply: subject.reply_or_forward,
        from_mailbox: first_mailbox(m.from()),
        to_mailbox: first_mailbox(m.to()),
        cc_mailbox: first_mailbox(m.cc()),
        display_from: first_display(m.from()),
        display_to: first_display(m.to()),
        message_id: m
            .message_id()
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned),
        references,
    }
}

/// One message's value for one sort key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Value {
    Number(i64),
    Text(String),
}

/// The header fields `criteria` compare; none (the default) when they all come from
/// the message row (ARRIVAL, SIZE).
pub(crate) fn fields(criteria: &[SortCriterion]) -> SortFields {
    let mut f = SortFields::default();
    for c in criteria {
        match c.key {
            SortKey::Arrival | SortKey::Size => {}
            SortKey::Date => f.sent = true,
            SortKey::Subject => f.subject = true,
            SortKey::From => f.from_mailbox = true,
            SortKey::To => f.to_mailbox = true,
            SortKey::Cc => f.cc_mailbox = true,
            SortKey::DisplayFrom => f.display_from = true,
            SortKey::DisplayTo => f.display_to = true,
        }
    }
    f
}

/// What THREAD reads: the sent date, the base subject and the references.
pub(crate) const THREAD_FIELDS: SortFields = SortFields {
    sent: true,
    subject: true,
    from_mailbox: false,
    to_mailbox: false,
    cc_mailbox: false,
    display_from: false,
    display_to: false,
    threading: true,
};

/// The value of `key` for a message; `keys` holds what [`fields`] asked for.
/// A string is moved out of `keys`, not copied (a large SORT has a value per message): a
/// criterion named twice compares empty strings the second time, which orders nothing
/// differently, as the first found the two messages equal on it already.
pub(crate) fn value(key: &SortKey, keys: &mut SortKeys, internal_date: i64, size: u32) -> Value {
    let text = |s: &mut String| Value::Text(std::mem::take(s));
    match key {
        SortKey::Arrival => Value::Number(internal_date),
        SortKey::Size => Value::Number(i64::from(size)),
        SortKey::Date => Value::Number(keys.sent.unwrap_or(internal_date)),
        SortKey::Subject => text(&mut keys.subject),
        SortKey::From => text(&mut keys.from_mailbox),
        SortKey::To => text(&mut keys.to_mailbox),
        SortKey::Cc => text(&mut keys.cc_mailbox),
        SortKey::DisplayFrom => text(&mut keys.display_from),
        SortKey::DisplayTo => text(&mut keys.display_to),
    }
}

/// A message to be sorted: its values, one per criterion, and its sequence number,
/// which breaks ties (RFC 5256 §3: the order the messages have in the mailbox).
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) values: Vec<Value>,
    pub(crate) seq: u32,
    pub(crate) number: u32,
}

fn compare(criteria: &[SortCriterion], a: &Entry, b: &Entry) -> Ordering {
    for (i, c) in criteria.iter().enumerate() {
        let o = a.values.get(i).cmp(&b.values.get(i));
        let o = if c.reverse { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.seq.cmp(&b.seq)
}

/// The numbers (sequence numbers or UIDs) in the order the criteria give.
pub(crate) fn order(criteria: &[SortCriterion], mut entries: Vec<Entry>) -> Vec<u32> {
    entries.sort_by(|a, b| compare(criteria, a, b));
    entries.into_iter().map(|e| e.number).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(s: &str) -> String {
        base_subject(s).key
    }

    #[test]
    fn leaders_and_trailers_are_removed() {
        assert_eq!(base("Re: hello"), "HELLO");
        assert_eq!(base("RE: re: Fwd: hello"), "HELLO");
        assert_eq!(base("Fw: hello (fwd)"), "HELLO");
        assert_eq!(base("Re [list]: hello"), "HELLO");
        assert_eq!(base("[list] Re: hello"), "HELLO");
        assert_eq!(base("[list] [other] hello"), "HELLO");
        assert_eq!(base("  hello   world  "), "HELLO WORLD");
        assert_eq!(base("hello\t\r\n world"), "HELLO WORLD");
        assert_eq!(base("hello (fwd) (FWD)"), "HELLO");
    }

    #[test]
    fn a_blob_alone_is_the_subject() {
        assert_eq!(base("[list]"), "[LIST]");
        assert_eq!(base("Re: [list]"), "[LIST]");
    }

    #[test]
    fn fwd_wrapper_is_unwrapped_and_repeated() {
        assert_eq!(base("[Fwd: Re: hello]"), "HELLO");
        assert_eq!(base("[fwd: [Fwd: hello] (fwd)]"), "HELLO");
        assert!(base_subject("[Fwd: hello]").reply_or_forward);
    }

    #[test]
    fn replies_are_told_from_originals() {
        assert!(base_subject("Re: hello").reply_or_forward);
        assert!(base_subject("hello (fwd)").reply_or_forward);
        assert!(!base_subject("hello").reply_or_forward);
        assert!(!base_subject("[list] hello").reply_or_forward);
        assert!(!base_subject("Reply: hello").reply_or_forward);
        assert_eq!(base("Reply: hello"), "REPLY: HELLO");
    }

    #[test]
    fn empty_and_odd_subjects_do_not_panic() {
        assert_eq!(base(""), "");
        assert_eq!(base("Re:"), "");
        assert_eq!(base("["), "[");
        assert_eq!(base("[fwd:]"), "");
        // Keys are in i;unicode-casemap form: titlecase, accents decomposed.
        assert_eq!(base("é Re: ü"), "E\u{301} RE: U\u{308}");
        assert_eq!(base("Ré: x"), "RE\u{301}: X");
    }

    #[test]
    fn encoded_words_are_decoded_before_extraction() {
        let raw = b"Subject: =?UTF-8?Q?Re=3A_R=C3=A9sultats?=\r\n\r\n";
        let m = mail_parser::MessageParser::default().parse(&raw[..]);
        let subject = m.as_ref().and_then(Message::subject).unwrap_or_default();
        assert_eq!(base(subject), "RE\u{301}SULTATS");
    }

    #[test]
    fn address_keys() {
        let raw = b"From: \"House, Gregory\" <gregory.house@h.mssante.fr>, x@y\r\nTo: lisa.cuddy@h.mssante.fr\r\nDate: Sun, 25 Mar 2007 01:00:00 +0200\r\n\r\n";
        let m = mail_parser::MessageParser::default().parse(&raw[..]);
        let k = m.as_ref().map(keys).unwrap_or_default();
        assert_eq!(
            value(&SortKey::From, &mut k.clone(), 0, 0),
            Value::Text("GREGORY.HOUSE".into())
        );
        assert_eq!(
            value(&SortKey::DisplayFrom, &mut k.clone(), 0, 0),
            Value::Text("HOUSE, GREGORY".into())
        );
        assert_eq!(
            value(&SortKey::DisplayTo, &mut k.clone(), 0, 0),
            Value::Text("LISA.CUDDY@H.MSSANTE.FR".into())
        );
        assert_eq!(
            value(&SortKey::Cc, &mut k.clone(), 0, 0),
            Value::Text(String::new())
        );
        // 2007-03-24T23:00:00Z
        assert_eq!(
            value(&SortKey::Date, &mut k.clone(), 7, 0),
            Value::Number(1_174_777_200)
        );
        let undated = SortKeys::default();
        assert_eq!(
            value(&SortKey::Date, &mut undated.clone(), 7, 0),
            Value::Number(7)
        );
    }

    #[test]
    fn references_fall_back_to_in_reply_to() {
        let parse = |raw: &'static [u8]| {
            mail_parser::MessageParser::default()
                .parse(raw)
                .map(|m| keys(&m))
                .unwrap_or_default()
        };
        let k = parse(b"Message-ID: <c@x>\r\nIn-Reply-To: <a@x> <b@x>\r\n\r\n");
        assert_eq!(k.message_id.as_deref(), Some("c@x"));
        assert_eq!(k.references, ["a@x"]);
        let k = parse(b"References: <a@x>\r\n <b@x>\r\nIn-Reply-To: <z@x>\r\n\r\n");
        assert_eq!(k.references, ["a@x", "b@x"]);
        assert_eq!(k.message_id, None);
        assert_eq!(k.sent, None);
    }

    #[test]
    fn reverse_applies_per_key_and_ties_keep_mailbox_order() {
        let criteria = [
            SortCriterion {
                reverse: true,
                key: SortKey::Size,
            },
            SortCriterion {
                reverse: false,
                key: SortKey::Arrival,
            },
        ];
        let e = |seq: u32, size: i64, at: i64| Entry {
            values: vec![Value::Number(size), Value::Number(at)],
            seq,
            number: seq * 10,
        };
        let entries = vec![e(1, 5, 2), e(2, 9, 1), e(3, 5, 1), e(4, 5, 1)];
        assert_eq!(order(&criteria, entries), [20, 30, 40, 10]);
    }
}
