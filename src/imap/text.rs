//! Building response values from our own data without ever panicking on odd bytes.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_codec::imap_types::core::{AString, IString, Literal, NString, Text};
use imap_codec::imap_types::mailbox::Mailbox;
use imap_codec::imap_types::response::{Code, CodeOther, Data, Response, Status};

pub(crate) use crate::structure::{istring, nstring};

/// Response text: never empty, no CR/LF, printable.
pub(crate) fn text(s: &str) -> Text<'static> {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    let cleaned = if cleaned.is_empty() || cleaned.starts_with('[') {
        format!("- {cleaned}")
    } else {
        cleaned.to_owned()
    };
    Text::try_from(cleaned).unwrap_or_else(|_| {
        Text::try_from("-").expect("fixed text") // invariant: printable ASCII is valid text
    })
}

/// A response code imap-types does not model (AUTHENTICATIONFAILED, UNAVAILABLE, ...).
/// Only called with our own fixed atoms.
pub(crate) fn code(atom: &'static str) -> Code<'static> {
    Code::Other(CodeOther::unvalidated(atom.as_bytes()))
}

pub(crate) fn tagged_ok(
    tag: &imap_codec::imap_types::core::Tag<'_>,
    code: Option<Code<'static>>,
    msg: &str,
) -> Response<'static> {
    tagged(
        tag,
        imap_codec::imap_types::response::StatusKind::Ok,
        code,
        msg,
    )
}

pub(crate) fn tagged(
    tag: &imap_codec::imap_types::core::Tag<'_>,
    kind: imap_codec::imap_types::response::StatusKind,
    code: Option<Code<'static>>,
    msg: &str,
) -> Response<'static> {
    Response::Status(Status::Tagged(imap_codec::imap_types::response::Tagged {
        tag: tag.clone().into_static_tag(),
        body: imap_codec::imap_types::response::StatusBody {
            kind,
            code,
            text: text(msg),
        },
    }))
}

pub(crate) fn untagged_ok(code: Option<Code<'static>>, msg: &str) -> Response<'static> {
    Response::Status(Status::Untagged(
        imap_codec::imap_types::response::StatusBody {
            kind: imap_codec::imap_types::response::StatusKind::Ok,
            code,
            text: text(msg),
        },
    ))
}

pub(crate) fn bye(msg: &str) -> Response<'static> {
    Response::Status(Status::Bye(imap_codec::imap_types::response::Bye {
        code: None,
        text: text(msg),
    }))
}

/// `BYE [ALERT]`: the client must show the text to the user (RFC 3501 §7.1).
pub(crate) fn bye_alert(msg: &str) -> Response<'static> {
    Response::Status(Status::Bye(imap_codec::imap_types::response::Bye {
        code: Some(Code::Alert),
        text: text(msg),
    }))
}

pub(crate) fn data(d: Data<'static>) -> Response<'static> {
    Response::Data(d)
}

/// `* VANISHED (EARLIER) uids` (RFC 7162 §3.2.10), for a resync or a `FETCH (VANISHED)`;
/// nothing when no UID went.
pub(crate) fn vanished_earlier(uids: &[u32]) -> Option<Response<'static>> {
    super::sequence::uid_set(uids).map(|set| {
        data(Data::Vanished {
            earlier: true,
            known_uids: set,
        })
    })
}

trait StaticTag {
    fn into_static_tag(self) -> imap_codec::imap_types::core::Tag<'static>;
}

impl StaticTag for imap_codec::imap_types::core::Tag<'_> {
    fn into_static_tag(self) -> imap_codec::imap_types::core::Tag<'static> {
        use imap_codec::imap_types::IntoStatic;
        self.into_static()
    }
}

/// A literal, always (message bodies), so large values never go through quoting checks.
pub(crate) fn literal(mut bytes: Vec<u8>) -> NString<'static> {
    if bytes.contains(&0) {
        for b in &mut bytes {
            if *b == 0 {
                *b = b' ';
            }
        }
    }
    match Literal::try_from(bytes) {
        Ok(l) => NString(Some(IString::Literal(l))),
        Err(_) => NString(None),
    }
}

/// A mailbox name as the client sees it; names come from the store, which only holds
/// names that arrived as valid IMAP strings.
pub(crate) fn mailbox(name: &str) -> Option<Mailbox<'static>> {
    if name.eq_ignore_ascii_case("INBOX") {
        return Some(Mailbox::Inbox);
    }
    Some(Mailbox::from(AString::try_from(name.to_owned()).ok()?))
}

/// A name the client gave, to be written back (STATUS, QUOTAROOT): a literal it sent
/// non-synchronising goes back as a synchronising one, the only kind a server writes.
pub(crate) fn echo(m: Mailbox<'static>) -> Mailbox<'static> {
    match m {
        Mailbox::Other(o) => {
            let plain = match o.inner() {
                AString::String(IString::Literal(l)) => Literal::try_from(l.data().to_vec()).ok(),
                _ => None,
            };
            match plain {
                Some(l) => Mailbox::from(AString::String(IString::Literal(l))),
                None => Mailbox::Other(o),
            }
        }
        inbox => inbox,
    }
}

/// The folder name a client meant.
pub(crate) fn folder_name(m: &Mailbox<'_>) -> Option<String> {
    match m {
        Mailbox::Inbox => Some("INBOX".to_owned()),
        Mailbox::Other(o) => {
            let bytes: &[u8] = match o.inner() {
                AString::Atom(a) => a.inner().as_bytes(),
                AString::String(IString::Quoted(q)) => q.inner().as_bytes(),
                AString::String(IString::Literal(l)) => l.data(),
            };
            String::from_utf8(bytes.to_vec()).ok()
        }
    }
}

pub(crate) fn astring_bytes<'a>(s: &'a AString<'_>) -> Cow<'a, [u8]> {
    match s {
        AString::Atom(a) => Cow::Borrowed(a.inner().as_bytes()),
        AString::String(IString::Quoted(q)) => Cow::Borrowed(q.inner().as_bytes()),
        AString::String(IString::Literal(l)) => Cow::Borrowed(l.data()),
    }
}

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}
