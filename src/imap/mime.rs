//! Message structure for FETCH: ENVELOPE, BODYSTRUCTURE and body sections, from
//! mail-parser's view of the stored bytes.

use std::num::NonZeroU32;

use imap_codec::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, MultiPartExtensionData, SinglePartExtensionData,
    SpecificFields,
};
use imap_codec::imap_types::core::{IString, NString, Vec1};
use imap_codec::imap_types::envelope::{Address, Envelope};
use imap_codec::imap_types::fetch::Section;
use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::text::{istring, nstring};
use crate::store::header_end;

pub(crate) fn parse(raw: &[u8]) -> Option<Message<'_>> {
    mail_parser::MessageParser::default().parse(raw)
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

fn part_bytes<'a>(m: &'a Message<'_>, p: &MessagePart<'_>) -> &'a [u8] {
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

/// The lines of a header section whose field names are (or with `not`, are not) in
/// `names`, followed by the blank line, as BODY[HEADER.FIELDS (...)] returns them.
pub(crate) fn header_fields(header: &[u8], names: &[Vec<u8>], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|b| *b == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            let name = line.split(|b| *b == b':').next().unwrap_or_default();
            let name = name.trim_ascii();
            let listed = names.iter().any(|n| n.eq_ignore_ascii_case(name));
            keep = listed != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The part a section path names: the message it belongs to and its index there.
fn find_part<'m, 'x>(m: &'m Message<'x>, path: &[NonZeroU32]) -> Option<(&'m Message<'x>, usize)> {
    let mut msg = m;
    let mut id = 0usize;
    for (i, n) in path.iter().enumerate() {
        let n = n.get() as usize;
        let cur = msg.parts.get(id)?;
        match &cur.body {
            PartType::Multipart(children) => id = *children.get(n - 1)? as usize,
            PartType::Message(nested) if i > 0 => {
                let root = nested.parts.first()?;
                msg = nested;
                match &root.body {
                    PartType::Multipart(children) => id = *children.get(n - 1)? as usize,
                    _ if n == 1 => id = 0,
                    _ => return None,
                }
            }
            _ if n == 1 && id == 0 => {}
            _ => return None,
        }
    }
    Some((msg, id))
}

/// The bytes of a message embedded in a `message/rfc822` part. mail-parser keeps the
/// whole outer message as an embedded message's `raw_message` when it parsed it in
/// place, with offsets into it; its root part says where it starts and ends.
fn embedded_bytes<'a>(nested: &'a Message<'_>) -> &'a [u8] {
    let own: &[u8] = nested.raw_message.as_ref();
    match nested.parts.first() {
        Some(root) => {
            let start = (root.offset_header as usize).min(own.len());
            let end = (root.offset_end as usize).clamp(start, own.len());
            &own[start..end]
        }
        None => own,
    }
}

/// The bytes of a BODY[section]; `None` when the section does not exist.
pub(crate) fn section(
    raw: &[u8],
    parsed: Option<&Message<'_>>,
    section: Option<&Section<'_>>,
) -> Option<Vec<u8>> {
    let names = |fields: &Vec1<imap_codec::imap_types::core::AString<'_>>| -> Vec<Vec<u8>> {
        fields
            .as_ref()
            .iter()
            .map(|f| super::text::astring_bytes(f).into_owned())
            .collect()
    };
    let split = header_end(raw);
    match section {
        None => Some(raw.to_vec()),
        Some(Section::Header(None)) => Some(raw[..split].to_vec()),
        Some(Section::Text(None)) => Some(raw[split..].to_vec()),
        Some(Section::HeaderFields(None, f)) => {
            Some(header_fields(&raw[..split], &names(f), false))
        }
        Some(Section::HeaderFieldsNot(None, f)) => {
            Some(header_fields(&raw[..split], &names(f), true))
        }
        Some(s) => {
            let m = parsed?;
            let path: &[NonZeroU32] = match s {
                Section::Part(p) | Section::Mime(p) => p.0.as_ref(),
                Section::Header(Some(p))
                | Section::Text(Some(p))
                | Section::HeaderFields(Some(p), _)
                | Section::HeaderFieldsNot(Some(p), _) => p.0.as_ref(),
                _ => return None,
            };
            let (msg, id) = find_part(m, path)?;
            let part = msg.parts.get(id)?;
            let own: &[u8] = msg.raw_message.as_ref();
            match s {
                Section::Part(_) => Some(part_bytes(msg, part).to_vec()),
                Section::Mime(_) => {
                    let start = (part.offset_header as usize).min(own.len());
                    let end = (part.offset_body as usize).clamp(start, own.len());
                    Some(own[start..end].to_vec())
                }
                _ => {
                    let PartType::Message(nested) = &part.body else {
                        return None;
                    };
                    let raw = embedded_bytes(nested);
                    let split = header_end(raw);
                    match s {
                        Section::Header(_) => Some(raw[..split].to_vec()),
                        Section::Text(_) => Some(raw[split..].to_vec()),
                        Section::HeaderFields(_, f) => {
                            Some(header_fields(&raw[..split], &names(f), false))
                        }
                        Section::HeaderFieldsNot(_, f) => {
                            Some(header_fields(&raw[..split], &names(f), true))
                        }
                        _ => None,
                    }
                }
            }
        }
    }
}

/// Everything FETCH derives from a stored message, for the MIME fuzz target: ENVELOPE,
/// BODY and BODYSTRUCTURE, header fields and the sections along `path`, each encoded as
/// the FETCH response a client would get. Returns the number of bytes encoded.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_structure(raw: &[u8], path: &[u8]) -> usize {
    use imap_codec::ResponseCodec;
    use imap_codec::encode::Encoder;
    use imap_codec::imap_types::core::AString;
    use imap_codec::imap_types::fetch::{MessageDataItem, Part};
    use imap_codec::imap_types::response::Data;

    let parsed = parse(raw);
    let mut items = Vec::new();
    if let Some(m) = &parsed {
        items.push(MessageDataItem::Envelope(envelope(m)));
        items.push(MessageDataItem::BodyStructure(body_structure(m, true)));
        items.push(MessageDataItem::Body(body_structure(m, false)));
    }
    let path: Vec<NonZeroU32> = path
        .iter()
        .take(8)
        .filter_map(|b| NonZeroU32::new(u32::from(*b % 8)))
        .collect();
    let fields = || -> Vec1<AString<'static>> {
        let subject = AString::try_from("Subject").unwrap_or_else(|_| unreachable!("atom"));
        let from = AString::try_from("From").unwrap_or_else(|_| unreachable!("atom"));
        Vec1::try_from(vec![subject, from]).unwrap_or_else(|_| unreachable!("two fields"))
    };
    let mut sections = vec![
        None,
        Some(Section::Header(None)),
        Some(Section::Text(None)),
        Some(Section::HeaderFields(None, fields())),
        Some(Section::HeaderFieldsNot(None, fields())),
    ];
    if let Ok(p) = Vec1::try_from(path) {
        let p = Part(p);
        sections.extend([
            Some(Section::Part(p.clone())),
            Some(Section::Mime(p.clone())),
            Some(Section::Header(Some(p.clone()))),
            Some(Section::Text(Some(p.clone()))),
            Some(Section::HeaderFields(Some(p.clone()), fields())),
            Some(Section::HeaderFieldsNot(Some(p), fields())),
        ]);
    }
    for s in sections {
        let data = section(raw, parsed.as_ref(), s.as_ref()).unwrap_or_default();
        items.push(MessageDataItem::BodyExt {
            section: s,
            origin: None,
            data: super::text::literal(data),
        });
    }
    let Ok(items) = Vec1::try_from(items) else {
        return 0;
    };
    let response = super::text::data(Data::Fetch {
        seq: super::text::nz(1),
        items,
    });
    ResponseCodec::default().encode(&response).dump().len()
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
        let m = parse(
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
    fn fields_and_parts() {
        let split = header_end(MULTI);
        let h = header_fields(&MULTI[..split], &[b"subject".to_vec()], false);
        assert_eq!(h, b"Subject: hi\r\n\r\n");
        let m = parse(MULTI).unwrap();
        let one = [NonZeroU32::new(1).unwrap()];
        let part = section(
            MULTI,
            Some(&m),
            Some(&Section::Part(imap_codec::imap_types::fetch::Part(
                Vec1::from(one[0]),
            ))),
        )
        .unwrap();
        assert!(part.starts_with(b"hello"));
        match body_structure(&m, true) {
            BodyStructure::Multi { bodies, .. } => assert_eq!(bodies.as_ref().len(), 2),
            other => panic!("{other:?}"),
        }
        let env = envelope(&m);
        assert_eq!(env.from.len(), 1);
    }
}
