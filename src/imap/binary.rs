//! BINARY (RFC 3516): a part's content with its transfer encoding undone, and the
//! answer for a partial `BINARY[…]<o.n>`, whose `<origin>` imap-codec cannot write.

use std::num::NonZeroU32;

use base64::Engine;
use imap_codec::imap_types::core::{NString8, Vec1};
use imap_codec::imap_types::extensions::binary::Literal8;
use imap_codec::imap_types::fetch::{Part, Section};
use mail_parser::Message;

use super::mime;
use super::text;

/// Why a part cannot be given decoded. Either fails the FETCH: a client handed an
/// empty or cut part would take it for the attachment's content.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Undecodable {
    /// No Content-Transfer-Encoding this server can undo: `[UNKNOWN-CTE]` (RFC 3516).
    UnknownCte,
    /// The part says base64 and is not.
    Damaged,
}

/// The decoded content of `BINARY[section]`; `Ok(None)` when there is no such part. The
/// whole message (`BINARY[]`) is given as stored.
pub(crate) fn content(
    raw: &[u8],
    parsed: Option<&Message<'_>>,
    section: &[NonZeroU32],
) -> Result<Option<Vec<u8>>, Undecodable> {
    let Ok(path) = Vec1::try_from(section.to_vec()) else {
        return Ok(Some(raw.to_vec()));
    };
    let part = Part(path);
    let Some(body) = mime::section(raw, parsed, Some(&Section::Part(part.clone()))) else {
        return Ok(None);
    };
    let header = mime::section(raw, parsed, Some(&Section::Mime(part))).unwrap_or_default();
    decode(transfer_encoding(&header).as_deref(), &body).map(Some)
}

/// The Content-Transfer-Encoding a MIME header names, lower-cased; `None` without one.
fn transfer_encoding(header: &[u8]) -> Option<String> {
    let field = mime::header_fields(header, &[b"Content-Transfer-Encoding".to_vec()], false);
    let text = String::from_utf8_lossy(&field);
    let (_, value) = text.split_once(':')?;
    let value = value.split(';').next().unwrap_or_default().trim();
    Some(value.to_ascii_lowercase())
}

fn decode(cte: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Undecodable> {
    match cte {
        None | Some("7bit" | "8bit" | "binary" | "") => Ok(body.to_vec()),
        Some("base64") => {
            let clean: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
                    .with_decode_allow_trailing_bits(true),
            );
            engine.decode(&clean).map_err(|_| Undecodable::Damaged)
        }
        Some("quoted-printable") => Ok(quoted_printable(body)),
        Some(_) => Err(Undecodable::UnknownCte),
    }
}

/// RFC 2045 §6.7: `=XX` is a byte, `=` at a line end is a soft break; trailing
/// whitespace on a line is padding. A malformed `=` is kept as it is.
fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    // Whether the line before ended in a soft break (none before the first line).
    let mut joined = true;
    for line in body.split(|b| *b == b'\n') {
        if !joined {
            out.extend_from_slice(b"\r\n");
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let end = line
            .iter()
            .rposition(|b| !matches!(b, b' ' | b'\t'))
            .map_or(0, |i| i + 1);
        let line = &line[..end];
        joined = false;
        let mut i = 0;
        while i < line.len() {
            if line[i] != b'=' {
                out.push(line[i]);
                i += 1;
                continue;
            }
            if i + 1 == line.len() {
                joined = true;
                break;
            }
            let hex = line
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(b) => {
                    out.push(b);
                    i += 3;
                }
                None => {
                    out.push(b'=');
                    i += 1;
                }
            }
        }
    }
    out
}

/// The value of a BINARY answer: a literal8 (`~{n}`) when the data holds NUL, which no
/// plain literal may carry, else a plain literal.
pub(crate) fn value(data: Vec<u8>) -> NString8<'static> {
    if data.contains(&0) {
        NString8::Literal8(Literal8 {
            data: data.into(),
            mode: imap_codec::imap_types::core::LiteralMode::Sync,
        })
    } else {
        NString8::NString(text::literal(data))
    }
}

/// `BINARY[section]<origin> {n}` and the data, for a partial fetch.
pub(crate) fn partial_item(section: &[NonZeroU32], origin: u32, data: &[u8]) -> Vec<u8> {
    let path: Vec<String> = section.iter().map(ToString::to_string).collect();
    let tilde = if data.contains(&0) { "~" } else { "" };
    let mut out = format!(
        "BINARY[{}]<{origin}> {tilde}{{{}}}\r\n",
        path.join("."),
        data.len()
    )
    .into_bytes();
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_transfer_encodings() {
        assert_eq!(
            decode(Some("base64"), b"JVBE\r\nRi0xLjQK\r\n"),
            Ok(b"%PDF-1.4\n".to_vec())
        );
        assert_eq!(decode(Some("7bit"), b"a=3D"), Ok(b"a=3D".to_vec()));
        assert_eq!(decode(None, b"x"), Ok(b"x".to_vec()));
        assert_eq!(
            decode(Some("x-uuencode"), b"x"),
            Err(Undecodable::UnknownCte)
        );
        assert_eq!(decode(Some("base64"), b"A*=="), Err(Undecodable::Damaged));
        assert_eq!(
            decode(
                Some("quoted-printable"),
                b"caf=C3=A9 =\r\nsoft  \r\nhard=\r\n=ZZ\r\n"
            ),
            Ok(b"caf\xc3\xa9 soft\r\nhard=ZZ\r\n".to_vec())
        );
    }

    #[test]
    fn reads_the_encoding_from_the_mime_header() {
        let h = b"Content-Type: text/plain\r\nContent-Transfer-Encoding: Base64 \r\n\r\n";
        assert_eq!(transfer_encoding(h).as_deref(), Some("base64"));
        assert_eq!(transfer_encoding(b"Content-Type: text/plain\r\n\r\n"), None);
    }

    #[test]
    fn partial_answers_carry_their_origin() {
        let one = [NonZeroU32::MIN];
        assert_eq!(
            partial_item(&one, 3, b"abc"),
            b"BINARY[1]<3> {3}\r\nabc".to_vec()
        );
        assert_eq!(
            partial_item(&[], 0, b"a\0"),
            b"BINARY[]<0> ~{2}\r\na\0".to_vec()
        );
    }
}
