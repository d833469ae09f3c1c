//! What the server adds to a message before storing it: a `Received` trace header, and
//! on submission the `Message-ID` and `Date` a client left out (RFC 6409 §8). On
//! submission `Bcc:` is removed (RFC 6409 §8.1): the recipients would otherwise read who
//! else got the message. Nothing else is touched: the MSSanté headers (`X-MSS-*`) and
//! the body stay byte-identical.

use chrono::{DateTime, Utc};
use mail_parser::MessageParser;

/// Why a message cannot be accepted as it is.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("the message has no header section")]
    NoHeader,
}

/// How the message came in, for the trace header.
pub struct Trace<'a> {
    /// The name the client gave in EHLO/HELO.
    pub helo: &'a str,
    pub peer: std::net::IpAddr,
    pub hostname: &'a str,
    /// `ESMTPSA` (authenticated submission), `ESMTPS` (TLS between operators).
    pub with: &'a str,
    pub id: &'a str,
    /// Named when there is exactly one recipient (RFC 5321 §4.4 advises against more).
    pub recipient: Option<&'a str>,
    pub now: DateTime<Utc>,
}

/// The message as stored: added headers first, then the client's bytes unchanged.
pub fn prepare(
    data: &[u8],
    trace: &Trace<'_>,
    complete_headers: bool,
) -> Result<Vec<u8>, MessageError> {
    let parsed = MessageParser::default()
        .parse_headers(data)
        .ok_or(MessageError::NoHeader)?;
    if parsed.headers().is_empty() {
        return Err(MessageError::NoHeader);
    }
    let mut out = Vec::with_capacity(data.len() + 512);
    let helo: String = trace
        .helo
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    out.extend_from_slice(
        format!(
            "Received: from {helo} ([{}])\r\n\tby {} (mssante) with {} id {}",
            trace.peer, trace.hostname, trace.with, trace.id
        )
        .as_bytes(),
    );
    if let Some(r) = trace.recipient {
        out.extend_from_slice(format!("\r\n\tfor <{r}>").as_bytes());
    }
    out.extend_from_slice(format!("; {}\r\n", trace.now.to_rfc2822()).as_bytes());
    if complete_headers {
        if parsed.header_raw("Message-ID").is_none() {
            out.extend_from_slice(
                format!("Message-ID: <{}@{}>\r\n", trace.id, trace.hostname).as_bytes(),
            );
        }
        if parsed.header_raw("Date").is_none() {
            out.extend_from_slice(format!("Date: {}\r\n", trace.now.to_rfc2822()).as_bytes());
        }
    }
    if complete_headers {
        out.extend_from_slice(&without_header(data, b"bcc"));
    } else {
        out.extend_from_slice(data);
    }
    Ok(out)
}

/// `data` without the header fields called `name` (lower case), folded lines included.
fn without_header(data: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    let mut dropping = false;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        if line == b"\r\n" || line == b"\n" {
            // The end of the header section: the body is kept as it is.
            out.extend_from_slice(rest);
            break;
        }
        let folded = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !folded {
            let field = line.split(|&b| b == b':').next().unwrap_or_default();
            dropping = line.contains(&b':') && field.trim_ascii().eq_ignore_ascii_case(name);
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        rest = tail;
    }
    out
}

/// A fresh queue id: also the local part of a generated Message-ID.
pub fn new_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(now: DateTime<Utc>) -> Trace<'static> {
        Trace {
            helo: "client.example\r\nX-Evil: 1",
            peer: "127.0.0.1".parse().unwrap(),
            hostname: "mx.test",
            with: "ESMTPSA",
            id: "00000000000000ab",
            recipient: Some("a@b.fr"),
            now,
        }
    }

    #[test]
    fn adds_missing_headers_and_keeps_the_rest() {
        let now = crate::clock::SystemClock::now_utc();
        let original = b"From: a@b.fr\r\nX-MSS-INS:  1 2\t3 \r\nSubject: x\r\n\r\nbody\r\n";
        let out = prepare(original, &trace(now), true).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("Received: from client.exampleX-Evil:1 ([127.0.0.1])"));
        assert!(text.contains("Message-ID: <00000000000000ab@mx.test>\r\n"));
        assert!(text.contains("\r\nDate: "));
        assert!(out.ends_with(original));
    }

    #[test]
    fn bcc_is_removed_on_submission_only() {
        let original =
            b"From: a@b.fr\r\nBcc: x@y.fr,\r\n z@y.fr\r\nBCC : w@y.fr\r\nTo: t@y.fr\r\n\r\nBcc: body\r\n";
        let text = String::from_utf8(
            prepare(original, &trace(crate::clock::SystemClock::now_utc()), true).unwrap(),
        )
        .unwrap();
        assert!(
            text.ends_with("From: a@b.fr\r\nTo: t@y.fr\r\n\r\nBcc: body\r\n"),
            "{text}"
        );
        let kept = prepare(
            original,
            &trace(crate::clock::SystemClock::now_utc()),
            false,
        )
        .unwrap();
        assert!(kept.ends_with(original));
    }

    #[test]
    fn keeps_client_ids_and_dates() {
        let original = b"Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n";
        let text = String::from_utf8(
            prepare(original, &trace(crate::clock::SystemClock::now_utc()), true).unwrap(),
        )
        .unwrap();
        assert_eq!(text.matches("Message-ID").count(), 1);
        assert_eq!(text.matches("\nDate:").count(), 1);
        assert_eq!(
            prepare(b"", &trace(crate::clock::SystemClock::now_utc()), true),
            Err(MessageError::NoHeader)
        );
    }
}
