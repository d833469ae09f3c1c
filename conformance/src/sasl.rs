//! The SASL messages the cases send (with how the transcript shows them, token
//! redacted) and the error challenges they read back.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use crate::wire::{Endpoint, Recorder};

/// The SASL XOAUTH2 initial response and how the transcript shows it.
pub(crate) fn xoauth2(user: &str, token: &str, label: &str) -> (String, String) {
    (
        B64.encode(format!("user={user}\x01auth=Bearer {token}\x01\x01")),
        format!("base64(\"user={user}^Aauth=Bearer <{label}>^A^A\")"),
    )
}

/// The SASL OAUTHBEARER initial response (RFC 7628) and how the transcript shows it.
pub(crate) fn oauthbearer(
    user: &str,
    endpoint: &Endpoint,
    token: &str,
    label: &str,
) -> (String, String) {
    let (host, port) = endpoint.host_port();
    (
        B64.encode(format!(
            "n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01"
        )),
        format!("base64(\"n,a={user},^Ahost={host}^Aport={port}^Aauth=Bearer <{label}>^A^A\")"),
    )
}

/// The SASL EXTERNAL message: the mailbox to open, or `=` (empty) for the one bound to
/// the certificate.
pub(crate) fn external_authz(mailbox: Option<&str>) -> String {
    mailbox
        .map(|m| B64.encode(m))
        .unwrap_or_else(|| "=".to_owned())
}

/// The `status` of an error challenge as the exchange saw it (`None`: none was sent;
/// `Some(None)`: not base64 JSON), or why there is none to compare.
pub(crate) fn challenge_status(
    challenge: &Option<Option<serde_json::Value>>,
) -> Result<String, &'static str> {
    match challenge {
        None => Err("no error challenge was sent"),
        Some(None) => Err("the challenge is not base64 JSON"),
        Some(Some(json)) => Ok(json
            .get("status")
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| s.to_string())
            })
            .unwrap_or_default()),
    }
}

/// Decodes a base64 error challenge as JSON, noting it in the transcript.
pub(crate) fn decode_challenge(rec: &Recorder, b64: &str) -> Option<serde_json::Value> {
    let b64 = b64.trim();
    match B64.decode(b64) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            rec.note(&format!("challenge decodes to: {text}"));
            serde_json::from_slice(&bytes).ok()
        }
        Err(_) => {
            rec.note("challenge is not base64");
            None
        }
    }
}
