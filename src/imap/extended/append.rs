//! MULTIAPPEND (RFC 3502) and CATENATE (RFC 4469): APPEND with several messages, and
//! messages put together from literals and IMAP URLs of messages already stored.
//!
//! A single plain message stays with imap-codec. The set is stored in one transaction:
//! all or none, the quota counted across it, each message within APPENDLIMIT.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::flag::Flag;
use imap_codec::imap_types::response::{Code, CodeOther, StatusKind};

use super::reader::{Parse, Reader, Syntax};
use super::url::{self, MessageUrl};
use crate::imap::connection::ConnError;
use crate::imap::mime;
use crate::imap::selected::store_flags;
use crate::imap::session::Session;
use crate::imap::state::{Transition, User};
use crate::imap::text;
use crate::imap::view::View;
use crate::store::{NewMessage, StoreError};

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct AppendCommand {
    folder: String,
    messages: Vec<AppendMessage<'static>>,
}

/// Literal data stays borrowed from the message until the command is known to be ours:
/// a plain APPEND goes to imap-codec without a copy of its message.
#[derive(Debug, PartialEq, Eq)]
struct AppendMessage<'a> {
    flags: Vec<Flag<'static>>,
    date: Option<DateTime<Utc>>,
    content: Content<'a>,
}

#[derive(Debug, PartialEq, Eq)]
enum Content<'a> {
    Literal(Cow<'a, [u8]>),
    /// CATENATE: the parts in order.
    Catenate(Vec<CatPart<'a>>),
}

#[derive(Debug, PartialEq, Eq)]
enum CatPart<'a> {
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

/// Why a message could not be put together.
enum Refusal {
    /// `[BADURL url]`: the URL names nothing this session can read.
    BadUrl(String),
    /// `[TOOBIG]`: over APPENDLIMIT, or the whole set over what one command may carry.
    TooBig,
    Store(StoreError),
}

/// `a:b,c` for UIDs in ascending order (the APPENDUID of RFC 4315 for several).
fn uid_ranges(uids: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < uids.len() {
        let start = uids[i];
        let mut end = start;
        while i + 1 < uids.len() && uids[i + 1] == end.wrapping_add(1) {
            end = uids[i + 1];
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&if start == end {
            start.to_string()
        } else {
            format!("{start}:{end}")
        });
        i += 1;
    }
    out
}

impl Session {
    pub(crate) async fn append_extended(
        &mut self,
        tag: &Tag<'static>,
        user: &mut User,
        mut view: Option<&mut View>,
        c: AppendCommand,
    ) -> Result<Transition, ConnError> {
        let mailbox_id = user.auth.mailbox.id;
        let store = self.shared.context.store.clone();
        let folder = match store.folder(mailbox_id, &c.folder).await {
            Ok(Some(f)) if !f.noselect => f,
            Ok(_) => return self.no_such_target(tag).await,
            Err(e) => return self.no_internal(tag, "cannot look a folder up", &e).await,
        };
        let now = self.shared.context.clock.now();
        let mut messages = Vec::with_capacity(c.messages.len());
        let mut total = 0usize;
        for m in c.messages {
            let bytes = match self.assemble(mailbox_id, m.content).await {
                Ok(b) => b,
                Err(Refusal::BadUrl(u)) => {
                    // Only printable ASCII other than `]` can go back inside the code.
                    let u: String = u
                        .chars()
                        .map(|c| {
                            if c.is_ascii_graphic() && c != ']' {
                                c
                            } else {
                                '?'
                            }
                        })
                        .collect();
                    let code =
                        Code::Other(CodeOther::unvalidated(format!("BADURL {u}").into_bytes()));
                    return self
                        .complete(
                            tag,
                            StatusKind::No,
                            Some(code),
                            "CATENATE cannot read that URL",
                        )
                        .await;
                }
                Err(Refusal::TooBig) => return self.no_too_big(tag).await,
                Err(Refusal::Store(e)) => return self.no_internal(tag, "APPEND failed", &e).await,
            };
            total = total.saturating_add(bytes.len());
            let limit = usize::try_from(self.conn.max_literal()).unwrap_or(usize::MAX);
            if bytes.len() > limit || total > self.conn.max_message() {
                return self.no_too_big(tag).await;
            }
            if bytes.is_empty() {
                return self.no(tag, "an empty message cannot be appended").await;
            }
            messages.push(NewMessage {
                message: bytes,
                flags: store_flags(&m.flags),
                internal_date: m.date.unwrap_or(now),
            });
        }
        let count = messages.len();
        let appended = match store.append_many(folder.id, messages).await {
            Ok(a) => a,
            Err(StoreError::OverQuota) => return self.no_over_quota(tag).await,
            Err(e) => return self.no_internal(tag, "APPEND failed", &e).await,
        };
        self.shared
            .context
            .metrics
            .messages_appended
            .inc_by(count as u64);
        let uids: Vec<u32> = appended.iter().map(|a| a.uid).collect();
        let code = appended.first().map(|a| {
            Code::Other(CodeOther::unvalidated(
                format!("APPENDUID {} {}", a.uidvalidity, uid_ranges(&uids)).into_bytes(),
            ))
        });
        if let Some(v) = view.as_deref_mut() {
            v.dirty = true;
        }
        if let Some(t) = self.sync_selected(user, view, true).await? {
            return Ok(t);
        }
        self.conn
            .send(&text::tagged_ok(tag, code, "APPEND completed"))
            .await?;
        Ok(Transition::None)
    }

    async fn no_too_big(&mut self, tag: &Tag<'static>) -> Result<Transition, ConnError> {
        self.complete(tag, StatusKind::No, Some(Code::TooBig), "message too large")
            .await
    }

    /// The bytes of one message: its literal, or its CATENATE parts joined.
    async fn assemble(
        &self,
        mailbox_id: i64,
        content: Content<'static>,
    ) -> Result<Vec<u8>, Refusal> {
        let parts = match content {
            Content::Literal(bytes) => return Ok(bytes.into_owned()),
            Content::Catenate(parts) => parts,
        };
        let limit = usize::try_from(self.conn.max_literal()).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for part in parts {
            match part {
                CatPart::Text(t) => out.extend_from_slice(&t),
                CatPart::Url(u) => {
                    let Some(parsed) = url::parse(&u) else {
                        return Err(Refusal::BadUrl(u));
                    };
                    match self.url_data(mailbox_id, &parsed).await {
                        Ok(Some(data)) => out.extend_from_slice(&data),
                        Ok(None) => return Err(Refusal::BadUrl(u)),
                        Err(e) => return Err(Refusal::Store(e)),
                    }
                }
            }
            if out.len() > limit {
                return Err(Refusal::TooBig);
            }
        }
        Ok(out)
    }

    /// What a URL names in the session's own mailbox; `None` when it names nothing:
    /// no such folder or message, another UIDVALIDITY, no such section.
    async fn url_data(
        &self,
        mailbox_id: i64,
        u: &MessageUrl,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let store = &self.shared.context.store;
        let Some(folder) = store
            .folder(mailbox_id, &u.folder)
            .await?
            .filter(|f| !f.noselect)
        else {
            return Ok(None);
        };
        if u.uidvalidity.is_some_and(|v| v != folder.uidvalidity) {
            return Ok(None);
        }
        let metas = store.messages_in_range(folder.id, u.uid, u.uid).await?;
        let Some(meta) = metas.first() else {
            return Ok(None);
        };
        let body = store.body(meta.body_id).await?;
        let data = match &u.section {
            None => Some(body),
            Some(section) => {
                let parsed = mime::parse(&body);
                mime::section(&body, parsed.as_ref(), Some(section))
            }
        };
        Ok(data.map(|d| match u.partial {
            None => d,
            Some((offset, length)) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(d.len());
                let end = length.map_or(d.len(), |n| {
                    start
                        .saturating_add(usize::try_from(n).unwrap_or(usize::MAX))
                        .min(d.len())
                });
                d[start..end].to_vec()
            }
        }))
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

    #[test]
    fn uid_sets() {
        assert_eq!(uid_ranges(&[4]), "4");
        assert_eq!(uid_ranges(&[4, 5, 6, 9, 11, 12]), "4:6,9,11:12");
    }
}
