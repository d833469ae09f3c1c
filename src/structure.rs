//! What FETCH ENVELOPE, BODY and BODYSTRUCTURE say of a message (RFC 3501 §7.4.2),
//! worked out once, when its body is stored, and kept beside it in the form they take
//! on the wire: clients such as Apple Mail and Outlook ask for them for every message
//! they list, and reading and parsing each whole body again for that made listing a
//! large folder cost as much as downloading it.
//!
//! A change to what is computed here bumps [`VERSION`]: rows written by older rules are
//! computed again the first time a FETCH meets them, as are bodies stored before the
//! rows existed.

use imap_codec::ResponseCodec;
use imap_codec::encode::Encoder;
use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, MultiPartExtensionData, SinglePartExtensionData,
    SpecificFields,
};
use imap_codec::imap_types::core::{IString, Literal, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::MessageDataItem;
use imap_codec::imap_types::response::{Data, Response};
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

/// The rules that computed a stored [`Structure`]: one from other rules is not served.
pub const VERSION: i64 = 1;

/// ENVELOPE, BODY and BODYSTRUCTURE of one message, each the bytes that follow the item
/// name in a FETCH response (literals included, as imap-codec writes them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Structure {
    pub envelope: Vec<u8>,
    pub body: Vec<u8>,
    pub bodystructure: Vec<u8>,
}

impl Structure {
    /// The structure of a message as mail-parser read it; one it could not read is
    /// described as an empty text part with an empty envelope, so that a client asking
    /// for the items still gets them.
    pub fn of(m: Option<&Message<'_>>) -> Structure {
        let (envelope, body, bodystructure) = match m {
            Some(m) => (
                envelope(m),
                body_structure(m, false),
                body_structure(m, true),
            ),
            None => (empty_envelope(), empty_text(), empty_text()),
        };
        Structure {
            envelope: wire(MessageDataItem::Envelope(envelope), "ENVELOPE"),
            body: wire(MessageDataItem::Body(body), "BODY"),
            bodystructure: wire(
                MessageDataItem::BodyStructure(bodystructure),
                "BODYSTRUCTURE",
            ),
        }
    }

    /// Whether each item has its bytes: a row without them is computed again.
    pub fn is_complete(&self) -> bool {
        !self.envelope.is_empty() && !self.body.is_empty() && !self.bodystructure.is_empty()
    }
}

/// The bytes imap-codec writes for `item` after its name; empty if imap-codec ever
/// writes it otherwise (an empty item is computed again rather than served, see
/// `is_complete`).
fn wire(item: MessageDataItem<'static>, name: &str) -> Vec<u8> {
    items_bytes(Vec1::from(item))
        .and_then(|b| {
            b.strip_prefix(name.as_bytes())?
                .strip_prefix(b" ")
                .map(<[u8]>::to_vec)
        })
        .unwrap_or_default()
}

/// What imap-codec writes for `items` between the parentheses of a FETCH response,
/// cut out of a whole response, imap-codec's smallest unit of output.
pub(crate) fn items_bytes(items: Vec1<MessageDataItem<'static>>) -> Option<Vec<u8>> {
    let seq = std::num::NonZeroU32::MIN;
    let response = Response::Data(Data::Fetch { seq, items });
    let bytes = ResponseCodec::default().encode(&response).dump();
    bytes
        .strip_prefix(b"* 1 FETCH (")
        .and_then(|b| b.strip_suffix(b")\r\n"))
        .map(<[u8]>::to_vec)
}

/// A string value: quoted when possible, a literal otherwise; NUL bytes (which IMAP
/// strings cannot carry) become spaces.
pub(crate) fn istring(bytes: impl Into<Vec<u8>>) -> IString<'static> {
    let mut bytes: Vec<u8> = bytes.into();
    if bytes.contains(&0) {
        for b in &mut bytes {
            if *b == 0 {
                *b = b' ';
            }
        }
    }
    match IString::try_from(bytes) {
        Ok(s) => s,
        Err(_) => {
            // The empty byte string is always a valid literal.
            let empty = Literal::try_from(Vec::<u8>::new()).expect("empty literal"); // invariant: empty is valid
            IString::Literal(empty)
        }
    }
}

pub(crate) fn nstring(bytes: Option<impl Into<Vec<u8>>>) -> NString<'static> {
    NString(bytes.map(istring))
}

fn raw_header<'a>(m: &'a Message<'_>, name: &'static str) -> Option<&'a str> {
    m.header_raw(name).map(str::trim).filter(|s| !s.is_empty())
}

pub(crate) fn envelope(m: &Message<'_>) -> Envelope<'static> {
    let from = addresses(m.from());
    let sender = match addresses(m.sender()) {
        s if s.is_empty() => from.clone(),
        s => s,
    };
    let reply_to = match addresses(m.reply_to()) {
        r if r.is_empty() => from.clone(),
        r => r,
    };
    Envelope {
        date: nstring(raw_header(m, "Date")),
        subject: nstring(raw_header(m, "Subject")),
        from,
        sender,
        reply_to,
        to: addresses(m.to()),
        cc: addresses(m.cc()),
        bcc: addresses(m.bcc()),
        in_reply_to: nstring(raw_header(m, "In-Reply-To")),
        message_id: nstring(raw_header(m, "Message-ID")),
    }
}

fn address(name: Option<&str>, email: Option<&str>) -> Address<'static> {
    let (local, host) = match email.and_then(|e| e.rsplit_once('@')) {
        Some((l, h)) => (Some(l), Some(h)),
        None => (email, None),
    };
    // An obsolete source route (`<@route:user@domain>`) goes in its own field.
    let (adl, local) = match local.and_then(|l| l.strip_prefix('@').and(l.split_once(':'))) {
        Some((route, l)) => (Some(route), Some(l)),
        None => (None, local),
    };
    Address {
        name: nstring(name),
        adl: nstring(adl),
        mailbox: nstring(local),
        host: nstring(host),
    }
}

fn addresses(a: Option<&mail_parser::Address<'_>>) -> Vec<Address<'static>> {
    let mut out = Vec::new();
    match a {
        None => {}
        Some(mail_parser::Address::List(list)) => {
            for addr in list {
                out.push(address(addr.name.as_deref(), addr.address.as_deref()));
            }
        }
        Some(mail_parser::Address::Group(groups)) => {
            for g in groups {
                if let Some(name) = g.name.as_deref() {
                    // RFC 3501 group syntax: start marker, members, end marker.
                    out.push(Address {
                        name: NString(None),
                        adl: NString(None),
                        mailbox: nstring(Some(name)),
                        host: NString(None),
                    });
                }
                // A comment alone (`group2: (foo) ;`) is not a member.
                for addr in g.addresses.iter().filter(|a| a.address.is_some()) {
                    out.push(address(addr.name.as_deref(), addr.address.as_deref()));
                }
                if g.name.is_some() {
                    out.push(Address {
                        name: NString(None),
                        adl: NString(None),
                        mailbox: NString(None),
                        host: NString(None),
                    });
                }
            }
        }
    }
    out
}

pub(crate) fn part_bytes<'a>(m: &'a Message<'_>, p: &MessagePart<'_>) -> &'a [u8] {
    let raw: &[u8] = m.raw_message.as_ref();
    let start = (p.offset_body as usize).min(raw.len());
    let end = (p.offset_end as usize).clamp(start, raw.len());
    &raw[start..end]
}

fn params(
    attrs: Option<&[mail_parser::Attribute<'_>]>,
) -> Vec<(IString<'static>, IString<'static>)> {
    attrs
        .unwrap_or_default()
        .iter()
        .map(|a| (istring(a.name.as_bytes()), istring(a.value.as_bytes())))
        .collect()
}

/// Lines of a body part; a last line without its line break (the break before a MIME
/// boundary belongs to the boundary) still counts.
fn lines(bytes: &[u8]) -> u32 {
    let breaks = bytes.iter().filter(|b| **b == b'\n').count();
    let tail = usize::from(bytes.last().is_some_and(|b| *b != b'\n'));
    u32::try_from(breaks + tail).unwrap_or(u32::MAX)
}

/// BODYSTRUCTURE (extended) or BODY (not).
pub(crate) fn body_structure(m: &Message<'_>, extended: bool) -> BodyStructure<'static> {
    part_structure(m, 0, extended, 0, &mut vec![false; m.parts.len()])
}

/// `seen` marks the parts of `m` already described: a damaged message can leave
/// mail-parser with parts listed as children of several multiparts, or of themselves,
/// and describing them each time would grow exponentially with the nesting (one
/// 419-byte message took a minute). Each part is described once; a repeat is empty.
fn part_structure(
    m: &Message<'_>,
    id: usize,
    extended: bool,
    depth: u32,
    seen: &mut [bool],
) -> BodyStructure<'static> {
    let (Some(p), Some(false)) = (m.parts.get(id), seen.get(id).copied()) else {
        return empty_text();
    };
    seen[id] = true;
    let ct = p.content_type();
    let ctype = ct
        .map(|c| c.ctype().to_ascii_lowercase())
        .unwrap_or_else(|| "text".into());
    let subtype = ct
        .and_then(|c| c.subtype())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| {
            if ctype == "text" {
                "plain".into()
            } else {
                "octet-stream".into()
            }
        });
    if let PartType::Multipart(children) = &p.body
        && depth < 32
    {
        let bodies: Vec<BodyStructure<'static>> = children
            .iter()
            .map(|c| part_structure(m, *c as usize, extended, depth + 1, seen))
            .collect();
        let Ok(bodies) = Vec1::try_from(bodies) else {
            return empty_text();
        };
        let subtype = if ctype == "multipart" {
            subtype
        } else {
            "mixed".into()
        };
        return BodyStructure::Multi {
            bodies,
            subtype: istring(subtype),
            extension_data: extended.then(|| MultiPartExtensionData {
                parameter_list: params(ct.and_then(|c| c.attributes())),
                tail: None,
            }),
        };
    }
    let bytes = part_bytes(m, p);
    let mut parameter_list = params(ct.and_then(|c| c.attributes()));
    if ct.is_none() {
        parameter_list.push((istring("charset"), istring("us-ascii")));
    }
    let basic = BasicFields {
        parameter_list,
        id: nstring(p.content_id()),
        description: nstring(p.content_description()),
        content_transfer_encoding: istring(
            p.content_transfer_encoding()
                .map(str::to_ascii_uppercase)
                .unwrap_or_else(|| "7BIT".into()),
        ),
        size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
    };
    let specific = match (&p.body, ctype.as_str()) {
        (PartType::Message(nested), _) if depth < 32 => SpecificFields::Message {
            envelope: Box::new(envelope(nested)),
            body_structure: Box::new(part_structure(
                nested,
                0,
                extended,
                depth + 1,
                &mut vec![false; nested.parts.len()],
            )),
            number_of_lines: lines(bytes),
        },
        (_, "text") => SpecificFields::Text {
            subtype: istring(subtype),
            number_of_lines: lines(bytes),
        },
        _ => SpecificFields::Basic {
            r#type: istring(ctype),
            subtype: istring(subtype),
        },
    };
    let extension_data = extended.then(|| SinglePartExtensionData {
        md5: NString(None),
        tail: Some(Disposition {
            disposition: p.content_disposition().map(|d| {
                (
                    istring(d.ctype().to_ascii_lowercase()),
                    params(d.attributes()),
                )
            }),
            tail: None,
        }),
    });
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data,
    }
}

fn empty_text() -> BodyStructure<'static> {
    BodyStructure::Single {
        body: Body {
            basic: BasicFields {
                parameter_list: vec![(istring("charset"), istring("us-ascii"))],
                id: NString(None),
                description: NString(None),
                content_transfer_encoding: istring("7BIT"),
                size: 0,
            },
            specific: SpecificFields::Text {
                subtype: istring("plain"),
                number_of_lines: 0,
            },
        },
        extension_data: None,
    }
}

fn empty_envelope() -> Envelope<'static> {
    Envelope {
        date: NString(None),
        subject: NString(None),
        from: Vec::new(),
        sender: Vec::new(),
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        bcc: Vec::new(),
        in_reply_to: NString(None),
        message_id: NString(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(a: &[Address<'_>]) -> String {
        a.iter()
            .map(|a| {
                let n = |s: &NString<'_>| match &s.0 {
                    Some(v) => format!("\"{}\"", String::from_utf8_lossy(v.as_ref())),
                    None => "NIL".to_owned(),
                };
                format!(
                    "({} {} {} {})",
                    n(&a.name),
                    n(&a.adl),
                    n(&a.mailbox),
                    n(&a.host)
                )
            })
            .collect()
    }

    #[test]
    fn envelope_groups_and_source_routes() {
        let m = mail_parser::MessageParser::default().parse(
            b"From: a@x.fr\r\nCc: group:;, group2: (foo) ;\r\nTo: <@route:user@domain>\r\n\r\nx\r\n",
        )
        .unwrap();
        let env = envelope(&m);
        assert_eq!(
            encoded(&env.cc),
            "(NIL NIL \"group\" NIL)(NIL NIL NIL NIL)(NIL NIL \"group2\" NIL)(NIL NIL NIL NIL)"
        );
        assert_eq!(encoded(&env.to), "(NIL \"@route\" \"user\" \"domain\")");
    }

    const MULTI: &[u8] = b"From: A <a@x.fr>\r\nTo: b@y.fr\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";

    #[test]
    fn the_items_as_they_go_on_the_wire() {
        let m = mail_parser::MessageParser::default().parse(MULTI);
        let s = Structure::of(m.as_ref());
        assert_eq!(
            String::from_utf8_lossy(&s.envelope),
            "(NIL \"hi\" ((\"A\" NIL \"a\" \"x.fr\")) ((\"A\" NIL \"a\" \"x.fr\")) \
             ((\"A\" NIL \"a\" \"x.fr\")) ((NIL NIL \"b\" \"y.fr\")) NIL NIL NIL NIL)"
        );
        assert_eq!(
            String::from_utf8_lossy(&s.body),
            "((\"TEXT\" \"plain\" NIL NIL NIL \"7BIT\" 5 1)\
             (\"application\" \"pdf\" NIL NIL NIL \"BASE64\" 4) \"mixed\")"
        );
        assert!(s.bodystructure.starts_with(b"((\"TEXT\" \"plain\""));
        assert!(s.is_complete());
    }

    #[test]
    fn an_unreadable_message_is_an_empty_text_part() {
        let s = Structure::of(None);
        assert_eq!(
            String::from_utf8_lossy(&s.envelope),
            "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
        assert_eq!(
            String::from_utf8_lossy(&s.body),
            "(\"TEXT\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7BIT\" 0 0)"
        );
    }
}
