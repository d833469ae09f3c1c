//! UTF-8 in quoted strings, which IMAP4rev2 allows (RFC 9051 §4.3) and IMAP4rev1 does not.
//!
//! imap-codec reads a quoted string as 7-bit only (its UTF-8 form is a build feature that
//! would change what every IMAP4rev1 session accepts too). A session that enabled
//! IMAP4rev2 has each quoted string that carries 8-bit bytes rewritten as the literal it
//! is equivalent to before anything reads the message, so the readers stay as they are.

/// `bytes` (one complete message) with every quoted string holding 8-bit bytes made a
/// non-synchronising literal; `None` when there is none. Literals are passed over whole,
/// so a quote inside one is never taken for the start of a string.
pub(crate) fn quoted_to_literals(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.is_ascii() {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let mut changed = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                let end = literal_end(bytes, i).unwrap_or(i + 1);
                out.extend_from_slice(&bytes[i..end]);
                i = end;
            }
            b'"' => match quoted(bytes, i) {
                Some((text, end)) if !text.is_ascii() => {
                    out.extend_from_slice(format!("{{{}+}}\r\n", text.len()).as_bytes());
                    out.extend_from_slice(&text);
                    changed = true;
                    i = end;
                }
                Some((_, end)) => {
                    out.extend_from_slice(&bytes[i..end]);
                    i = end;
                }
                None => {
                    out.extend_from_slice(&bytes[i..]);
                    i = bytes.len();
                }
            },
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// Where the literal announced at `start` (`{n}` or `{n+}`, its line end, `n` bytes)
/// ends; `None` when `start` begins no literal.
fn literal_end(bytes: &[u8], start: usize) -> Option<usize> {
    let rest = &bytes[start + 1..];
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: usize = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let mut j = start + 1 + digits;
    if bytes.get(j) == Some(&b'+') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'}') {
        return None;
    }
    j += 1;
    if bytes.get(j) == Some(&b'\r') {
        j += 1;
    }
    if bytes.get(j) != Some(&b'\n') {
        return None;
    }
    Some((j + 1).saturating_add(n).min(bytes.len()))
}

/// The unescaped text of the quoted string at `start`, and where it ends; `None` when it
/// does not end on this line (the readers refuse it as they would have).
fn quoted(bytes: &[u8], start: usize) -> Option<(Vec<u8>, usize)> {
    let mut text = Vec::new();
    let mut j = start + 1;
    loop {
        match *bytes.get(j)? {
            b'"' => return Some((text, j + 1)),
            b'\\' => {
                let escaped = *bytes.get(j + 1)?;
                if !matches!(escaped, b'"' | b'\\') {
                    return None;
                }
                text.push(escaped);
                j += 2;
            }
            b'\r' | b'\n' => return None,
            b => {
                text.push(b);
                j += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::quoted_to_literals;

    #[test]
    fn rewrites_only_eight_bit_quoted_strings() {
        assert_eq!(quoted_to_literals(b"a1 SELECT \"Sent\"\r\n"), None);
        let out = quoted_to_literals("a1 CREATE \"Été \\\"x\\\"\"\r\n".as_bytes());
        assert_eq!(
            out.as_deref(),
            Some("a1 CREATE {9+}\r\nÉté \"x\"\r\n".as_bytes())
        );
        let out = quoted_to_literals("a1 RENAME \"Été\" \"a\"\r\n".as_bytes());
        assert_eq!(
            out.as_deref(),
            Some("a1 RENAME {5+}\r\nÉté \"a\"\r\n".as_bytes())
        );
    }

    #[test]
    fn leaves_literals_whole() {
        let message = "a1 APPEND INBOX {6}\r\n\"é\"\r\n\r\n".as_bytes();
        assert_eq!(quoted_to_literals(message), None);
        let message = "a1 SEARCH SUBJECT {4+}\r\n\"é\" TEXT \"ü\"\r\n".as_bytes();
        assert_eq!(
            quoted_to_literals(message).as_deref(),
            Some("a1 SEARCH SUBJECT {4+}\r\n\"é\" TEXT {2+}\r\nü\r\n".as_bytes())
        );
    }
}
