//! The IMAP URLs CATENATE takes (RFC 4469 §5, RFC 5092): a message, or a part of one, in
//! a folder of the session's own mailbox. Only the absolute-path form
//! (`/INBOX;UIDVALIDITY=1/;UID=20/;SECTION=1.2`) is read: an `imap://` URL could name
//! another server or user, and this server has nothing else to offer.

use std::num::NonZeroU32;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::{Part, Section};

use crate::imap::names;

/// A message (or part) a URL names.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MessageUrl {
    /// The folder, as the protocol writes it (modified UTF-7).
    pub(crate) folder: String,
    pub(crate) uidvalidity: Option<u32>,
    pub(crate) uid: u32,
    pub(crate) section: Option<Section<'static>>,
    /// `;PARTIAL=offset[.length]`.
    pub(crate) partial: Option<(u32, Option<u32>)>,
}

/// Reads `url`; `None` for anything this server cannot resolve (`[BADURL]`).
pub(crate) fn parse(url: &str) -> Option<MessageUrl> {
    let rest = url.strip_prefix('/')?;
    let (mailbox, rest) = rest.split_once("/;UID=")?;
    let (mailbox, uidvalidity) = match mailbox.split_once(";UIDVALIDITY=") {
        Some((m, v)) => (m, Some(nz_number(v)?)),
        None => (mailbox, None),
    };
    let mailbox = String::from_utf8(percent_decode(mailbox)?).ok()?;
    if mailbox.is_empty() {
        return None;
    }
    let folder = if mailbox.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_owned()
    } else {
        names::to_modified_utf7(&mailbox)
    };
    let (uid, rest) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let uid = nz_number(uid)?;
    let (section, partial) = match rest.strip_prefix("/;SECTION=") {
        Some(s) => match s.split_once("/;PARTIAL=") {
            Some((s, p)) => (Some(s), Some(p)),
            None => (Some(s), None),
        },
        None if rest.is_empty() => (None, None),
        None => (None, Some(rest.strip_prefix("/;PARTIAL=")?)),
    };
    let section = match section {
        Some(s) => Some(parse_section(&String::from_utf8(percent_decode(s)?).ok()?)?),
        None => None,
    };
    let partial = match partial {
        Some(p) => Some(match p.split_once('.') {
            Some((o, n)) => (number(o)?, Some(nz_number(n)?)),
            None => (number(p)?, None),
        }),
        None => None,
    };
    Some(MessageUrl {
        folder,
        uidvalidity,
        uid,
        section,
        partial,
    })
}

fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn nz_number(s: &str) -> Option<u32> {
    number(s).filter(|n| *n > 0)
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_graphic() => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `1.2`, `1.2.HEADER`, `TEXT`, `3.MIME`… (RFC 3501 §6.4.5); HEADER.FIELDS lists are
/// not taken in URLs here.
fn parse_section(s: &str) -> Option<Section<'static>> {
    let mut numbers = Vec::new();
    let mut words = s.split('.').peekable();
    while let Some(n) = words.peek().and_then(|w| nz_number(w)) {
        numbers.push(NonZeroU32::new(n)?);
        words.next();
    }
    let part = Vec1::try_from(numbers).ok().map(Part);
    let word = words.next().map(str::to_ascii_uppercase);
    if words.next().is_some() {
        return None;
    }
    match (word.as_deref(), part) {
        (None, Some(p)) => Some(Section::Part(p)),
        (Some("HEADER"), p) => Some(Section::Header(p)),
        (Some("TEXT"), p) => Some(Section::Text(p)),
        (Some("MIME"), Some(p)) => Some(Section::Mime(p)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(n: &[u32]) -> Part {
        let v: Vec<NonZeroU32> = n.iter().filter_map(|n| NonZeroU32::new(*n)).collect();
        Part(Vec1::try_from(v).unwrap())
    }

    #[test]
    fn reads_relative_urls() {
        assert_eq!(
            parse("/INBOX;UIDVALIDITY=785799047/;UID=113330/;SECTION=1.5.9").unwrap(),
            MessageUrl {
                folder: "INBOX".into(),
                uidvalidity: Some(785799047),
                uid: 113330,
                section: Some(Section::Part(part(&[1, 5, 9]))),
                partial: None,
            }
        );
        let u = parse("/%C3%89t%C3%A9/;UID=2/;SECTION=2.HEADER/;PARTIAL=0.10").unwrap();
        assert_eq!(u.folder, "&AMk-t&AOk-");
        assert_eq!(u.section, Some(Section::Header(Some(part(&[2])))));
        assert_eq!(u.partial, Some((0, Some(10))));
        let u = parse("/inbox/;UID=7/;PARTIAL=5").unwrap();
        assert_eq!(
            (u.folder.as_str(), u.section, u.partial),
            ("INBOX", None, Some((5, None)))
        );
        assert_eq!(
            parse("/INBOX/;UID=1/;SECTION=TEXT").unwrap().section,
            Some(Section::Text(None))
        );
    }

    #[test]
    fn refuses_what_it_cannot_resolve() {
        for url in [
            "imap://house@h.mssante.fr/INBOX/;UID=1",
            "/INBOX/;UID=0",
            "/INBOX/;UID=x",
            "/INBOX",
            "//;UID=1",
            "/INBOX/;UID=1/;SECTION=1.HEADER.FIELDS%20(TO)",
            "/INBOX/;UID=1/;SECTION=MIME",
            "/INBOX/;UID=1/junk",
            "/IN%ZZBOX/;UID=1",
            "/INBOX;UIDVALIDITY=0/;UID=1",
        ] {
            assert_eq!(parse(url), None, "{url}");
        }
    }
}
