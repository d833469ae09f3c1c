//! MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469): APPEND with several messages, and
//! messages put together from literals and IMAP URLs of messages already stored.
//!
//! A single plain message stays with imap-codec. The set is stored in one transaction:
//! all or none, the quota counted across it, each message within APPENDLIMIT.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::flag::Flag;

use super::reader::{Parse, Reader, Syntax};

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AppendCommand {
    pub(crate) folder: String,
    pub(crate) messages: Vec<AppendMessage<'static>>,
}

/// Literal data stays borrowed from the message until the command is known to be ours:
/// a plain APPEND goes to imap-codec without a copy of its message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AppendMessage<'a> {
    pub(crate) flags: Vec<Flag<'static>>,
    pub(crate) date: Option<DateTime<Utc>>,
    pub(crate) content: Content<'a>,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Content<'a> {
    Literal(Cow<'a, [u8]>),
    /// CATENATE: the parts in order.
    Catenate(Vec<CatPart<'a>>),
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CatPart<'a> {
    Text(Cow<'a, [u8]>),
    Url(String),
}

impl AppendMessage<'_> {
    fn into_owned(self) -> AppendMessage<'static> {
        let content = match self.content {
            Content::Literal(l) => Content::Literal(Cow::Owned(l.into_owned())),
            Content::Catenate(parts) => Content::Catenate(
                parts
                    .into_iter()
                    .map(|p| match p {
                        CatPart::Text(t) => CatPart::Text(Cow::Owned(t.into_owned())),
                        CatPart::Url(u) => CatPart::Url(u),
                    })
                    .collect(),
            ),
        };
        AppendMessage {
            flags: self.flags,
            date: self.date,
            content,
        }
    }
}

/// Reads what follows `APPEND`; `Ok(None)` for one plain message, which imap-codec reads.
pub(crate) fn parse(r: &mut Reader<'_>) -> Parse<Option<AppendCommand>> {
    r.sp()?;
    let folder = super::reader::folder_name(&r.astring()?).ok_or(Syntax)?;
    let mut messages = Vec::new();
    while !r.at_end() {
        messages.push(message(r)?);
    }
    r.end()?;
    let ours = messages.len() > 1
        || messages
            .iter()
            .any(|m| matches!(m.content, Content::Catenate(_)));
    if messages.is_empty() {
        return Err(Syntax);
    }
    Ok(ours.then(|| AppendCommand {
        folder,
        messages: messages
            .into_iter()
            .map(AppendMessage::into_owned)
            .collect(),
    }))
}

fn message<'a>(r: &mut Reader<'a>) -> Parse<AppendMessage<'a>> {
    r.sp()?;
    let mut flags = Vec::new();
    if r.peek() == Some(b'(') {
        flags = r.list(true, flag)?;
        r.sp()?;
    }
    let mut date = None;
    if r.peek() == Some(b'"') {
        date = Some(date_time(&r.quoted()?)?);
        r.sp()?;
    }
    let content = if r.at_literal() {
        Content::Literal(Cow::Borrowed(r.literal()?))
    } else if r.keyword("CATENATE") {
        r.sp()?;
        Content::Catenate(r.list(false, cat_part)?)
    } else {
        return Err(Syntax);
    };
    Ok(AppendMessage {
        flags,
        date,
        content,
    })
}

fn flag(r: &mut Reader<'_>) -> Parse<Flag<'static>> {
    let system = r.take(b'\\');
    let atom = std::str::from_utf8(r.atom()?).map_err(|_| Syntax)?;
    let name = if system {
        format!("\\{atom}")
    } else {
        atom.to_owned()
    };
    Flag::try_from(name.as_str())
        .map(IntoStatic::into_static)
        .map_err(|_| Syntax)
}

/// `dd-Mon-yyyy hh:mm:ss +zzzz` (RFC 3501 `date-time`), the day maybe space-padded.
fn date_time(quoted: &[u8]) -> Parse<DateTime<Utc>> {
    let s = std::str::from_utf8(quoted).map_err(|_| Syntax)?;
    DateTime::parse_from_str(s.trim_start(), "%d-%b-%Y %H:%M:%S %z")
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| Syntax)
}

fn cat_part<'a>(r: &mut Reader<'a>) -> Parse<CatPart<'a>> {
    if r.keyword("TEXT") {
        r.sp()?;
        Ok(CatPart::Text(Cow::Borrowed(r.literal()?)))
    } else if r.keyword("URL") {
        r.sp()?;
        let u = r.astring()?;
        Ok(CatPart::Url(
            String::from_utf8(u.into_owned()).map_err(|_| Syntax)?,
        ))
    } else {
        Err(Syntax)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &[u8]) -> Parse<Option<AppendCommand>> {
        let mut r = Reader::new(line);
        assert!(r.keyword("APPEND"));
        parse(&mut r)
    }

    #[test]
    fn one_plain_message_stays_with_imap_codec() {
        assert_eq!(parsed(b"APPEND INBOX (\\Seen) {3}\r\nabc\r\n"), Ok(None));
        assert_eq!(parsed(b"APPEND INBOX ~{3}\r\na\0c\r\n"), Ok(None));
    }

    #[test]
    fn reads_several_messages() {
        let c = parsed(
            b"APPEND Sent (\\Seen $label1) \" 5-Mar-2026 10:00:00 +0100\" {3+}\r\nabc {2}\r\nde\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.folder, "Sent");
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].flags.len(), 2);
        assert_eq!(
            c.messages[0].date.map(|d| d.to_rfc3339()),
            Some("2026-03-05T09:00:00+00:00".to_owned())
        );
        assert_eq!(
            c.messages[0].content,
            Content::Literal(Cow::Borrowed(b"abc"))
        );
        assert_eq!(
            c.messages[1].content,
            Content::Literal(Cow::Borrowed(b"de"))
        );
        assert_eq!(c.messages[1].date, None);
    }

    #[test]
    fn reads_catenate() {
        let c = parsed(
            b"APPEND inbox CATENATE (URL \"/INBOX;UIDVALIDITY=1/;UID=2/;SECTION=1\" TEXT {2}\r\n\r\n)\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.folder, "INBOX");
        assert_eq!(
            c.messages[0].content,
            Content::Catenate(vec![
                CatPart::Url("/INBOX;UIDVALIDITY=1/;UID=2/;SECTION=1".into()),
                CatPart::Text(Cow::Borrowed(b"\r\n")),
            ])
        );
    }

    #[test]
    fn refuses_broken_appends() {
        for line in [
            &b"APPEND INBOX\r\n"[..],
            b"APPEND INBOX {3}\r\nabc {5}\r\nab\r\n",
            b"APPEND INBOX CATENATE ()\r\n",
            b"APPEND INBOX CATENATE (FOO {1}\r\na)\r\n",
            b"APPEND INBOX \"31-Feb-2026 10:00:00 +0000\" {1}\r\na {1}\r\nb\r\n",
            b"APPEND INBOX {1}\r\na{1}\r\nb\r\n",
        ] {
            assert!(parsed(line).is_err(), "{}", String::from_utf8_lossy(line));
        }
    }
}
