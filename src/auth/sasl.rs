//! SASL messages of the LPS interface: XOAUTH2, OAUTHBEARER (RFC 7628) and EXTERNAL
//! (RFC 4422), parsed from the decoded initial response.
//!
//! Everything here reads attacker-controlled bytes before any authentication, so every
//! parser is total: it returns a `SaslError` for any input, bounded by `MAX_MESSAGE`.

use std::fmt;

/// Largest decoded SASL message accepted. A PSC access token is about 1.5 KiB; this leaves
/// room for larger tokens while bounding what a client can make us hold and parse.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// Why a SASL message could not be understood. The `Display` text is the stable reason
/// recorded in the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    TooLarge,
    NotUtf8,
    MissingUser,
    MissingAuth,
    NotBearer,
    EmptyToken,
    BadToken,
    BadGs2Header,
    ChannelBinding,
    BadAuthzid,
    BadKeyValue,
}

impl SaslError {
    pub fn reason(self) -> &'static str {
        match self {
            SaslError::TooLarge => "SASL message too large",
            SaslError::NotUtf8 => "SASL message is not UTF-8",
            SaslError::MissingUser => "SASL message names no mailbox (user=)",
            SaslError::MissingAuth => "SASL message carries no auth= field",
            SaslError::NotBearer => "SASL auth= field is not a Bearer token",
            SaslError::EmptyToken => "SASL message carries an empty token",
            SaslError::BadToken => "SASL token contains characters outside base64url",
            SaslError::BadGs2Header => "malformed OAUTHBEARER GS2 header",
            SaslError::ChannelBinding => "channel binding is not supported",
            SaslError::BadAuthzid => "malformed authorisation identity",
            SaslError::BadKeyValue => "malformed SASL key-value pair",
        }
    }
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for SaslError {}

/// A bearer-token message (XOAUTH2 or OAUTHBEARER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerMessage {
    /// The mailbox address the client wants to open; None when OAUTHBEARER left the
    /// authorisation identity empty.
    pub mailbox: Option<String>,
    pub token: String,
}

/// An EXTERNAL message: the optional authorisation identity (a mailbox address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalMessage {
    pub mailbox: Option<String>,
}

fn bounded(message: &[u8]) -> Result<&str, SaslError> {
    if message.len() > MAX_MESSAGE {
        return Err(SaslError::TooLarge);
    }
    std::str::from_utf8(message).map_err(|_| SaslError::NotUtf8)
}

/// `auth=Bearer TOKEN`: the scheme is case-insensitive (RFC 7235), the token is a
/// b64token (RFC 6750).
fn bearer_token(value: &str) -> Result<String, SaslError> {
    let (scheme, rest) = value.split_once(' ').ok_or(SaslError::NotBearer)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(SaslError::NotBearer);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(SaslError::EmptyToken);
    }
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if !token.chars().all(b64token) {
        return Err(SaslError::BadToken);
    }
    Ok(token.to_owned())
}

fn mailbox_name(value: &str) -> Result<String, SaslError> {
    let value = value.trim();
    if value.is_empty() || value.chars().any(char::is_control) {
        return Err(SaslError::BadAuthzid);
    }
    Ok(value.to_owned())
}

/// XOAUTH2: `user=ADDRESS ^A auth=Bearer TOKEN ^A ^A`.
pub fn parse_xoauth2(message: &[u8]) -> Result<BearerMessage, SaslError> {
    let text = bounded(message)?;
    let mut user = None;
    let mut auth = None;
    for field in text.split('\x01').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').ok_or(SaslError::BadKeyValue)?;
        match key {
            "user" if user.is_none() => user = Some(value),
            "auth" if auth.is_none() => auth = Some(value),
            "user" | "auth" => return Err(SaslError::BadKeyValue),
            _ => {}
        }
    }
    let user = user.ok_or(SaslError::MissingUser)?;
    let mailbox = mailbox_name(user).map_err(|_| SaslError::MissingUser)?;
    let token = bearer_token(auth.ok_or(SaslError::MissingAuth)?)?;
    Ok(BearerMessage {
        mailbox: Some(mailbox),
        token,
    })
}

/// RFC 5801 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is malformed.
fn unescape_saslname(value: &str) -> Result<String, SaslError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(['=', ',']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with(',') {
            return Err(SaslError::BadAuthzid);
        } else if tail.starts_with("=2C") || tail.starts_with("=2c") {
            out.push(',');
        } else if tail.starts_with("=3D") || tail.starts_with("=3d") {
            out.push('=');
        } else {
            return Err(SaslError::BadAuthzid);
        }
        rest = &tail[3..];
    }
    out.push_str(rest);
    Ok(out)
}

/// OAUTHBEARER (RFC 7628): `gs2-header ^A key=value ^A … ^A ^A`.
pub fn parse_oauthbearer(message: &[u8]) -> Result<BearerMessage, SaslError> {
    let text = bounded(message)?;
    let (flag, rest) = text.split_once(',').ok_or(SaslError::BadGs2Header)?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => return Err(SaslError::ChannelBinding),
        _ => return Err(SaslError::BadGs2Header),
    }
    let (authzid, rest) = rest.split_once(',').ok_or(SaslError::BadGs2Header)?;
    let mailbox = match authzid {
        "" => None,
        a => match a.strip_prefix("a=") {
            Some(name) => Some(mailbox_name(&unescape_saslname(name)?)?),
            None => return Err(SaslError::BadGs2Header),
        },
    };
    let kvpairs = rest.strip_prefix('\x01').ok_or(SaslError::BadGs2Header)?;
    let mut auth = None;
    for field in kvpairs.split('\x01').filter(|f| !f.is_empty()) {
        let (key, value) = field.split_once('=').ok_or(SaslError::BadKeyValue)?;
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(SaslError::BadKeyValue);
        }
        if key == "auth" {
            if auth.is_some() {
                return Err(SaslError::BadKeyValue);
            }
            auth = Some(value);
        }
    }
    let token = bearer_token(auth.ok_or(SaslError::MissingAuth)?)?;
    Ok(BearerMessage { mailbox, token })
}

/// EXTERNAL: the authorisation identity, empty for "the mailbox bound to my certificate".
pub fn parse_external(message: &[u8]) -> Result<ExternalMessage, SaslError> {
    let text = bounded(message)?;
    if text.trim().is_empty() {
        return Ok(ExternalMessage { mailbox: None });
    }
    Ok(ExternalMessage {
        mailbox: Some(mailbox_name(text)?),
    })
}

/// The XOAUTH2 error challenge (Google's format, which Thunderbird expects).
pub fn xoauth2_challenge(scope: &str) -> Vec<u8> {
    serde_json::json!({"status": "401", "schemes": "bearer", "scope": scope})
        .to_string()
        .into_bytes()
}

/// The OAUTHBEARER error challenge (RFC 7628 §3.2.2), pointing at the issuer's discovery
/// document so a client can find where to obtain a new token.
pub fn oauthbearer_challenge(scope: &str, openid_configuration: &str) -> Vec<u8> {
    serde_json::json!({
        "status": "invalid_token",
        "scope": scope,
        "openid-configuration": openid_configuration,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn xoauth2() {
        let m =
            parse_xoauth2(b"user=dr.house@hopital.mssante.fr\x01auth=Bearer abc.def-ghi_\x01\x01")
                .unwrap();
        assert_eq!(m.mailbox.as_deref(), Some("dr.house@hopital.mssante.fr"));
        assert_eq!(m.token, "abc.def-ghi_");
        // Scheme case and missing trailing separators are tolerated.
        let m = parse_xoauth2(b"user=a@b.fr\x01auth=bearer  tok").unwrap();
        assert_eq!(m.token, "tok");
        assert_eq!(
            parse_xoauth2(b"auth=Bearer t\x01\x01"),
            Err(SaslError::MissingUser)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01\x01"),
            Err(SaslError::MissingAuth)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01auth=Basic dXNlcg==\x01\x01"),
            Err(SaslError::NotBearer)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01auth=Bearer \x01\x01"),
            Err(SaslError::EmptyToken)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01auth=Bearer a b\x01\x01"),
            Err(SaslError::BadToken)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01garbage\x01\x01"),
            Err(SaslError::BadKeyValue)
        );
        assert_eq!(
            parse_xoauth2(b"user=a@b.fr\x01user=c@d.fr\x01auth=Bearer t\x01\x01"),
            Err(SaslError::BadKeyValue)
        );
        assert_eq!(
            parse_xoauth2(b"user=\xff\x01auth=Bearer t"),
            Err(SaslError::NotUtf8)
        );
    }

    #[test]
    fn oauthbearer() {
        let m = parse_oauthbearer(
            b"n,a=dr.house@hopital.mssante.fr,\x01host=imap.example\x01port=993\x01auth=Bearer tok\x01\x01",
        )
        .unwrap();
        assert_eq!(m.mailbox.as_deref(), Some("dr.house@hopital.mssante.fr"));
        assert_eq!(m.token, "tok");
        let m = parse_oauthbearer(b"y,,\x01auth=Bearer tok\x01\x01").unwrap();
        assert_eq!(m.mailbox, None);
        let m = parse_oauthbearer(b"n,a=we=2Cird=3Dname@x.fr,\x01auth=Bearer t\x01\x01").unwrap();
        assert_eq!(m.mailbox.as_deref(), Some("we,ird=name@x.fr"));
        assert_eq!(
            parse_oauthbearer(b"p=tls-unique,,\x01auth=Bearer t\x01\x01"),
            Err(SaslError::ChannelBinding)
        );
        assert_eq!(
            parse_oauthbearer(b"x,,\x01auth=Bearer t\x01\x01"),
            Err(SaslError::BadGs2Header)
        );
        assert_eq!(
            parse_oauthbearer(b"n,u=a,\x01auth=Bearer t\x01\x01"),
            Err(SaslError::BadGs2Header)
        );
        assert_eq!(
            parse_oauthbearer(b"n,a=a=2,\x01auth=Bearer t\x01\x01"),
            Err(SaslError::BadAuthzid)
        );
        assert_eq!(
            parse_oauthbearer(b"n,a=a=41,\x01auth=Bearer t\x01\x01"),
            Err(SaslError::BadAuthzid)
        );
        assert_eq!(
            parse_oauthbearer(b"n,,auth=Bearer t\x01\x01"),
            Err(SaslError::BadGs2Header)
        );
        assert_eq!(
            parse_oauthbearer(b"n,,\x01host=x\x01\x01"),
            Err(SaslError::MissingAuth)
        );
        assert_eq!(
            parse_oauthbearer(b"n,,\x01ho-st=x\x01auth=Bearer t\x01"),
            Err(SaslError::BadKeyValue)
        );
        assert_eq!(parse_oauthbearer(b"n"), Err(SaslError::BadGs2Header));
    }

    #[test]
    fn external() {
        assert_eq!(parse_external(b"").unwrap().mailbox, None);
        assert_eq!(
            parse_external(b"labo@x.mssante.fr")
                .unwrap()
                .mailbox
                .as_deref(),
            Some("labo@x.mssante.fr")
        );
        assert_eq!(parse_external(b"a\x00b"), Err(SaslError::BadAuthzid));
    }

    #[test]
    fn size_limit() {
        let mut big = b"user=a@b.fr\x01auth=Bearer ".to_vec();
        big.resize(MAX_MESSAGE + 1, b'a');
        assert_eq!(parse_xoauth2(&big), Err(SaslError::TooLarge));
        assert_eq!(parse_oauthbearer(&big), Err(SaslError::TooLarge));
        assert_eq!(parse_external(&big), Err(SaslError::TooLarge));
    }

    #[test]
    fn challenges_are_json() {
        let v: serde_json::Value = serde_json::from_slice(&xoauth2_challenge("openid")).unwrap();
        assert_eq!(v["status"], "401");
        let v: serde_json::Value = serde_json::from_slice(&oauthbearer_challenge(
            "openid",
            "https://x/.well-known/openid-configuration",
        ))
        .unwrap();
        assert_eq!(v["status"], "invalid_token");
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse_xoauth2(&bytes);
            let _ = parse_oauthbearer(&bytes);
            let _ = parse_external(&bytes);
        }

        #[test]
        fn never_panics_near_valid(prefix in "(n|y|p=x),(a=[a-z=,23CD]{0,8})?,", body in "[\\x01a-z= A-Za-z0-9.]{0,64}") {
            let message = format!("{prefix}{body}");
            let _ = parse_oauthbearer(message.as_bytes());
            let _ = parse_xoauth2(message.as_bytes());
        }
    }
}
