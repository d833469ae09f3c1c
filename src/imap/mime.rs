//! Body sections for FETCH (`BODY[1.2.HEADER]` and the like), from mail-parser's view
//! of the stored bytes. ENVELOPE and BODYSTRUCTURE are in `crate::structure`.

use std::num::NonZeroU32;

use imap_codec::imap_types::core::Vec1;
use imap_codec::imap_types::fetch::Section;
use mail_parser::{Message, PartType};

use crate::store::header_end;
use crate::structure::part_bytes;

pub(crate) fn parse(raw: &[u8]) -> Option<Message<'_>> {
    mail_parser::MessageParser::default().parse(raw)
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

    use crate::structure::{body_structure, envelope};

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
    }
}
