//! The text SEARCH compares, in the form the body text index holds it.
//!
//! SEARCH TEXT and BODY (RFC 3501 §6.4.4) match a substring under `i;unicode-casemap`
//! (RFC 5051): TEXT in the header section as received or in the decoded text parts,
//! BODY in the decoded text parts only. Scanning every body of a large folder for that
//! costs a read and a MIME parse per message, so each body's two texts are put, already
//! casemapped, in an index when the body is stored (SQLite: FTS5 with the `trigram`
//! tokenizer; PostgreSQL: `pg_trgm`), and a needle of three characters or more is looked
//! up there. The same functions make the index and the scan that short needles and
//! bodies stored before the index still take, so both give the same answer.
//!
//! A change to what is indexed here comes with a migration that empties the index:
//! bodies without an index row are indexed again the first time a search meets them.

use mail_parser::{Message, MessageParser, PartType};

use super::header_end;
use crate::casemap::casemap;

/// What the body text index holds of one body: its header section and its decoded
/// text parts, casemapped. A message mail-parser cannot read has both empty, and
/// matches nothing, as the scan finds nothing in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchText {
    pub(crate) header: String,
    pub(crate) body: String,
}

impl SearchText {
    pub fn of(message: &[u8]) -> SearchText {
        SearchText::of_parsed(message, MessageParser::default().parse(message).as_ref())
    }

    /// The same, from mail-parser's reading of `message`, for whoever parsed it already.
    pub fn of_parsed(message: &[u8], parsed: Option<&Message<'_>>) -> SearchText {
        let Some(parsed) = parsed else {
            return SearchText::default();
        };
        SearchText {
            header: indexed(&header_text(message)),
            body: indexed(&body_text(parsed)),
        }
    }
}

/// Where a needle is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextScope {
    /// The decoded text parts (SEARCH BODY).
    Body,
    /// The header section or the decoded text parts (SEARCH TEXT).
    HeaderOrBody,
}

/// The header section as SEARCH TEXT reads it: the bytes as received, invalid UTF-8
/// replaced.
pub(crate) fn header_text(message: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(&message[..header_end(message)])
}

/// The decoded text parts (QP and base64 undone, charsets converted), one after the
/// other: what SEARCH BODY reads.
pub(crate) fn body_text(m: &Message<'_>) -> String {
    let mut out = String::new();
    for p in &m.parts {
        match &p.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            _ => {}
        }
    }
    out
}

/// The index form of a text: casemapped, NUL (which PostgreSQL text cannot hold)
/// written as U+FFFD. A needle holding neither matches the one where it matches the
/// other; [`needle`] leaves the others to the scan.
fn indexed(s: &str) -> String {
    casemap(s).replace('\0', "\u{fffd}")
}

/// The index form of a needle when the index can answer it: three characters at least
/// (a trigram index finds nothing shorter), neither NUL nor U+FFFD.
pub fn needle(raw: &[u8]) -> Option<String> {
    let n = casemap(&String::from_utf8_lossy(raw));
    (n.chars().nth(2).is_some() && !n.contains(['\0', '\u{fffd}'])).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_parts_are_indexed_casemapped() {
        let raw = b"Subject: Bilan\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nUsOpc3VsdGF0cw==\r\n--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nd=E9j=E0 vu\r\n--b--\r\n";
        let t = SearchText::of(raw);
        assert!(t.header.starts_with("SUBJECT: BILAN"));
        assert!(t.body.contains("RE\u{301}SULTATS"), "{}", t.body);
        assert!(t.body.contains("DE\u{301}JA\u{300} VU"), "{}", t.body);
    }

    #[test]
    fn short_needles_and_replacement_characters_are_left_to_the_scan() {
        assert_eq!(needle(b"ab"), None);
        assert_eq!(needle("\u{e9}t".as_bytes()), Some("E\u{301}T".into()));
        assert_eq!(needle(b"a\0bc"), None);
        assert_eq!(needle(b"ab\xffc"), None);
        assert_eq!(needle(b"abc"), Some("ABC".into()));
    }

    #[test]
    fn nul_is_stored_as_a_replacement_character() {
        assert_eq!(indexed("a\0b"), "A\u{fffd}B");
    }
}
