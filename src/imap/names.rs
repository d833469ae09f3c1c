//! Folder names: the hierarchy delimiter, and which new names are acceptable (CREATE,
//! RENAME target).
//!
//! IMAP4rev1 mailbox names are 7-bit: other characters travel in modified UTF-7
//! (RFC 3501 §5.1.3). imap-codec hands names over as raw bytes and decodes no UTF-7, so
//! this strict validator sits here. A name accepted once is listed back to every client
//! for years: refusing odd names at creation keeps LIST, wildcards and the other clients'
//! UTF-7 decoders safe.

/// Separates the levels of a folder name (`Projects/2025`).
pub(crate) const DELIMITER: char = '/';

/// Why a folder name is refused; the text goes to the client after "invalid mailbox name".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("the name is empty")]
    Empty,
    #[error("a hierarchy level is empty (leading or doubled '/')")]
    EmptyLevel,
    #[error("'*' and '%' are LIST wildcards")]
    Wildcard,
    #[error("control characters are not allowed")]
    Control,
    #[error("non-ASCII characters must be sent in modified UTF-7 (RFC 3501 section 5.1.3)")]
    EightBit,
    #[error("'&' starts a modified UTF-7 sequence that does not end with '-'")]
    Unterminated,
    #[error("invalid modified UTF-7: {0}")]
    Utf7(&'static str),
}

/// Accepts `name` only if it is printable 7-bit ASCII without wildcards, with valid,
/// necessary modified UTF-7 sequences.
pub(crate) fn check(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    // A level with no name cannot be selected, listed by `%` or told apart from its
    // parent by clients that split on the separator.
    if name.split(DELIMITER).any(str::is_empty) {
        return Err(NameError::EmptyLevel);
    }
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' | b'%' => return Err(NameError::Wildcard),
            0x00..=0x1f | 0x7f => return Err(NameError::Control),
            0x80..=0xff => return Err(NameError::EightBit),
            b'&' => {
                let rest = &bytes[i + 1..];
                let Some(len) = rest.iter().position(|b| *b == b'-') else {
                    return Err(NameError::Unterminated);
                };
                // `&-` is '&' itself.
                if len > 0 {
                    check_shifted(&rest[..len])?;
                }
                i += len + 2;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The modified base64 between `&` and `-`: whole UTF-16 units with zero padding bits,
/// paired surrogates, and only characters that could not have been written directly.
/// Returns the characters it stands for.
fn check_shifted(encoded: &[u8]) -> Result<String, NameError> {
    let mut bits: u32 = 0;
    let mut nbits = 0u32;
    let mut units = Vec::with_capacity(encoded.len() * 6 / 16);
    for &c in encoded {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b',' => 63,
            _ => {
                return Err(NameError::Utf7(
                    "a character outside the modified base64 alphabet",
                ));
            }
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 16 {
            nbits -= 16;
            units.push(((bits >> nbits) & 0xffff) as u16);
            bits &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 || bits != 0 {
        return Err(NameError::Utf7(
            "the base64 does not end on a whole character",
        ));
    }
    let mut text = String::with_capacity(units.len());
    for c in char::decode_utf16(units.iter().copied()) {
        let c = c.map_err(|_| NameError::Utf7("an unpaired surrogate"))?;
        if c.is_control() {
            return Err(NameError::Control);
        }
        if (' '..='~').contains(&c) {
            return Err(NameError::Utf7("printable ASCII must be written directly"));
        }
        text.push(c);
    }
    Ok(text)
}

/// `name` (UTF-8) as IMAP4rev1 writes it: modified UTF-7 (RFC 3501 §5.1.3). IMAP URLs
/// carry names in UTF-8 (RFC 5092 §3.2); folders are kept as the protocol writes them.
pub(crate) fn to_modified_utf7(name: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let (mut bits, mut nbits) = (0u32, 0u32);
        for unit in pending.drain(..) {
            bits = (bits << 16) | u32::from(unit);
            nbits += 16;
            while nbits >= 6 {
                nbits -= 6;
                out.push(char::from(ALPHABET[((bits >> nbits) & 0x3f) as usize]));
            }
        }
        if nbits > 0 {
            out.push(char::from(
                ALPHABET[((bits << (6 - nbits)) & 0x3f) as usize],
            ));
        }
        out.push('-');
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// A stored name as an IMAP4rev2 session writes it: UTF-8 (RFC 9051 §5.1). Names are
/// stored as IMAP4rev1 writes them, checked by [`check`] on the way in; a sequence that
/// does not decode (a name stored before the check) is shown as it is.
pub(crate) fn from_modified_utf7(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(start) = rest.find('&') {
        out.push_str(&rest[..start]);
        let shifted = &rest[start + 1..];
        let Some(len) = shifted.find('-') else {
            out.push_str(&rest[start..]);
            return out;
        };
        if len == 0 {
            out.push('&');
        } else {
            match check_shifted(&shifted.as_bytes()[..len]) {
                Ok(text) => out.push_str(&text),
                Err(_) => out.push_str(&rest[start..start + len + 2]),
            }
        }
        rest = &shifted[len + 1..];
    }
    out.push_str(rest);
    out
}

/// A stored name as the session writes it: UTF-8 once IMAP4rev2 is enabled (`utf8`).
pub(crate) fn to_client(stored: &str, utf8: bool) -> String {
    if utf8 {
        from_modified_utf7(stored)
    } else {
        stored.to_owned()
    }
}

/// The stored name a client meant: an IMAP4rev2 session writes UTF-8 (`utf8`).
pub(crate) fn to_store(client: &str, utf8: bool) -> String {
    if utf8 {
        to_modified_utf7(client)
    } else {
        client.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_encoded_names() {
        for name in [
            "Patients",
            "Patients/Lupus",
            "R&-D",
            "&AMk-t&AOk-",
            "&Jjo-",
            "&ZeVnLIqe-",
            "&2D3eAA-",
        ] {
            assert_eq!(check(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn encodes_modified_utf7() {
        assert_eq!(to_modified_utf7("Été"), "&AMk-t&AOk-");
        assert_eq!(to_modified_utf7("R&D"), "R&-D");
        assert_eq!(to_modified_utf7("☺"), "&Jjo-");
        assert_eq!(to_modified_utf7("日本語"), "&ZeVnLIqe-");
        assert_eq!(to_modified_utf7("𝄞"), "&2DTdHg-");
        for name in ["Été", "☺", "日本語", "a𝄞b"] {
            assert_eq!(check(&to_modified_utf7(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn decodes_modified_utf7() {
        for name in [
            "Été",
            "R&D",
            "☺",
            "日本語",
            "a𝄞b",
            "Patients/Été 2025",
            "plain",
        ] {
            assert_eq!(from_modified_utf7(&to_modified_utf7(name)), name, "{name}");
        }
        // Not valid modified UTF-7: shown as stored.
        assert_eq!(from_modified_utf7("&Jjo"), "&Jjo");
        assert_eq!(from_modified_utf7("a&AGEAYgBj-b"), "a&AGEAYgBj-b");
    }

    #[test]
    fn refuses_what_rfc_3501_forbids() {
        assert_eq!(check(""), Err(NameError::Empty));
        assert_eq!(check("a//b"), Err(NameError::EmptyLevel));
        assert_eq!(check("/a"), Err(NameError::EmptyLevel));
        assert_eq!(check("a*b"), Err(NameError::Wildcard));
        assert_eq!(check("a%b"), Err(NameError::Wildcard));
        assert_eq!(check("a\tb"), Err(NameError::Control));
        assert_eq!(check("a\x7fb"), Err(NameError::Control));
        assert_eq!(check("Été"), Err(NameError::EightBit));
        assert_eq!(check("&Jjo"), Err(NameError::Unterminated));
        assert!(matches!(check("&AGEAYgBj-"), Err(NameError::Utf7(_))));
        assert_eq!(check("&AAA-"), Err(NameError::Control));
        assert!(matches!(check("&2D3-"), Err(NameError::Utf7(_))));
        assert!(matches!(check("&2D0-"), Err(NameError::Utf7(_))));
        assert!(matches!(check("&AC8-"), Err(NameError::Utf7(_))));
        assert!(matches!(check("&A-"), Err(NameError::Utf7(_))));
        assert!(matches!(check("&AM=-"), Err(NameError::Utf7(_))));
        // Padding bits must be zero: `AMl` would be U+00C9 with one stray bit.
        assert!(matches!(check("&AMl-"), Err(NameError::Utf7(_))));
    }
}
