//! The token itself: the compact JWS header read against the algorithm allow-list, and
//! the claim rules both validation modes end in.

use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::Refusal;
use crate::auth::access::Professional;
use crate::config::PscConfig;

/// Largest token looked at (the SASL layer already bounds the whole message).
pub(super) const MAX_TOKEN: usize = 16 * 1024;

/// The claim rules shared by both modes.
pub(super) struct Rules {
    pub(super) issuer: String,
    pub(super) algorithms: Vec<Algorithm>,
    pub(super) accepted_acr: Vec<String>,
    pub(super) allowed_azp: Vec<String>,
    pub(super) leeway: i64,
}

#[derive(Debug, Deserialize)]
pub(super) struct Claims {
    pub(super) active: Option<bool>,
    pub(super) iss: Option<String>,
    pub(super) exp: Option<f64>,
    pub(super) nbf: Option<f64>,
    pub(super) typ: Option<String>,
    pub(super) acr: Option<String>,
    pub(super) azp: Option<String>,
    #[serde(rename = "SubjectNameID")]
    pub(super) subject_name_id: Option<String>,
    pub(super) preferred_username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct JoseHeader {
    pub(super) alg: String,
    pub(super) kid: Option<String>,
}

/// Seconds since the epoch from a JSON number, refusing what is not a finite number.
pub(super) fn seconds(value: f64) -> Option<i64> {
    // invariant: the cast saturates; only NaN needs refusing.
    value.is_finite().then_some(value as i64)
}

pub(super) fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

impl Rules {
    pub(super) fn new(config: &PscConfig) -> Self {
        let algorithms = config
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .collect();
        Rules {
            issuer: config.issuer.as_str().to_owned(),
            algorithms,
            accepted_acr: config.accepted_acr.clone(),
            allowed_azp: config.allowed_azp.clone(),
            leeway: i64::try_from(config.leeway.0.as_secs()).unwrap_or(60),
        }
    }

    /// The checks of DOMAIN.md, in the order that gives the most telling reason first.
    pub(super) fn check(&self, claims: &Claims, now: i64) -> Result<(Professional, i64), Refusal> {
        let exp = claims.exp.and_then(seconds).ok_or(Refusal::NoExpiry)?;
        if now > exp.saturating_add(self.leeway) {
            return Err(Refusal::Expired);
        }
        if let Some(nbf) = claims.nbf {
            let nbf = seconds(nbf).ok_or(Refusal::Malformed)?;
            if nbf > now.saturating_add(self.leeway) {
                return Err(Refusal::NotYetValid);
            }
        }
        if claims.iss.as_deref().map(trim_slash) != Some(trim_slash(&self.issuer)) {
            return Err(Refusal::IssuerMismatch);
        }
        if claims.typ.as_deref() != Some("Bearer") {
            return Err(Refusal::NotBearer);
        }
        match &claims.acr {
            Some(acr) if self.accepted_acr.contains(acr) => {}
            _ => return Err(Refusal::AcrNotAccepted),
        }
        if !self.allowed_azp.is_empty() {
            match &claims.azp {
                Some(azp) if self.allowed_azp.contains(azp) => {}
                _ => return Err(Refusal::AzpNotAllowed),
            }
        }
        let idnat = [&claims.subject_name_id, &claims.preferred_username]
            .into_iter()
            .flatten()
            .map(|s| s.trim())
            .find(|s| !s.is_empty())
            .ok_or(Refusal::NoIdentity)?;
        Ok((Professional::new(idnat.to_owned()), exp))
    }
}

/// A compact JWS split into its parts, with the header read.
pub(super) struct Jws<'a> {
    pub(super) header: JoseHeader,
    pub(super) algorithm: Algorithm,
    pub(super) payload: &'a str,
}

/// Reads the header and refuses any algorithm outside the allow-list before a key is
/// even looked up: `none` and HMAC never reach the verifier.
pub(super) fn read_jws<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Jws<'a>, Refusal> {
    if token.len() > MAX_TOKEN {
        return Err(Refusal::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let header = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed)?;
    let header: JoseHeader = serde_json::from_slice(&header).map_err(|_| Refusal::Malformed)?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(Refusal::Unsigned);
    }
    let algorithm = match Algorithm::from_str(&header.alg) {
        Ok(a)
            if allowed.contains(&a)
                && !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) =>
        {
            a
        }
        _ => return Err(Refusal::AlgorithmNotAllowed),
    };
    Ok(Jws {
        header,
        algorithm,
        payload,
    })
}

pub(super) fn unverified_claims(payload: &str) -> Option<Claims> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Date checks on claims nobody verified yet: safe to refuse on, never to accept on.
pub(super) fn early_refusal(claims: &Claims, now: i64, leeway: i64) -> Result<(), Refusal> {
    if let Some(exp) = claims.exp.and_then(seconds)
        && now > exp.saturating_add(leeway)
    {
        return Err(Refusal::Expired);
    }
    if let Some(nbf) = claims.nbf.and_then(seconds)
        && nbf > now.saturating_add(leeway)
    {
        return Err(Refusal::NotYetValid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        Rules {
            issuer: "https://psc.example/auth/realms/esante-wallet".into(),
            algorithms: vec![Algorithm::RS256],
            accepted_acr: vec!["eidas1".into()],
            allowed_azp: vec![],
            leeway: 30,
        }
    }

    fn claims(json: serde_json::Value) -> Claims {
        serde_json::from_value(json).unwrap()
    }

    fn good() -> serde_json::Value {
        serde_json::json!({
            "iss": "https://psc.example/auth/realms/esante-wallet",
            "exp": 1000, "nbf": 900, "typ": "Bearer", "acr": "eidas1", "azp": "lps",
            "SubjectNameID": "899700771191", "preferred_username": "other"
        })
    }

    fn with(key: &str, value: serde_json::Value) -> Claims {
        let mut v = good();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(key);
        } else {
            v[key] = value;
        }
        claims(v)
    }

    #[test]
    fn claim_checks() {
        let r = rules();
        let (p, exp) = r.check(&claims(good()), 950).unwrap();
        assert_eq!((p.idnat(), exp), ("899700771191", 1000));
        // Leeway on both sides, and no further.
        assert!(r.check(&claims(good()), 1030).is_ok());
        assert_eq!(
            r.check(&claims(good()), 1031).unwrap_err(),
            Refusal::Expired
        );
        assert!(r.check(&claims(good()), 870).is_ok());
        assert_eq!(
            r.check(&claims(good()), 869).unwrap_err(),
            Refusal::NotYetValid
        );
        let refused = |c: Claims| r.check(&c, 950).unwrap_err();
        assert_eq!(
            refused(with("exp", serde_json::Value::Null)),
            Refusal::NoExpiry
        );
        assert_eq!(
            refused(with("iss", "https://evil.example".into())),
            Refusal::IssuerMismatch
        );
        assert_eq!(refused(with("typ", "Refresh".into())), Refusal::NotBearer);
        assert_eq!(
            refused(with("typ", serde_json::Value::Null)),
            Refusal::NotBearer
        );
        assert_eq!(
            refused(with("acr", "eidas2".into())),
            Refusal::AcrNotAccepted
        );
        let mut v = good();
        v.as_object_mut().unwrap().remove("SubjectNameID");
        assert_eq!(r.check(&claims(v.clone()), 950).unwrap().0.idnat(), "other");
        v.as_object_mut().unwrap().remove("preferred_username");
        assert_eq!(r.check(&claims(v), 950).unwrap_err(), Refusal::NoIdentity);
        let mut r = rules();
        r.allowed_azp = vec!["thunderbird".into()];
        assert_eq!(
            r.check(&claims(good()), 950).unwrap_err(),
            Refusal::AzpNotAllowed
        );
        r.allowed_azp.push("lps".into());
        assert!(r.check(&claims(good()), 950).is_ok());
    }

    #[test]
    fn header_allow_list() {
        let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = |alg: &str| {
            format!(
                "{}.{}.sig",
                enc(serde_json::json!({"alg": alg, "kid": "k"})),
                enc(good())
            )
        };
        assert!(read_jws(&token("RS256"), &[Algorithm::RS256]).is_ok());
        assert_eq!(
            read_jws(&token("none"), &[Algorithm::RS256]).err(),
            Some(Refusal::Unsigned)
        );
        for alg in ["HS256", "HS512", "RS512", "nonsense"] {
            assert_eq!(
                read_jws(&token(alg), &[Algorithm::RS256]).err(),
                Some(Refusal::AlgorithmNotAllowed),
                "{alg}"
            );
        }
        // HMAC stays refused even if it slipped into the list.
        assert_eq!(
            read_jws(&token("HS256"), &[Algorithm::HS256]).err(),
            Some(Refusal::AlgorithmNotAllowed)
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.b.c",
            &format!("{}.x.y", URL_SAFE_NO_PAD.encode("not json")),
        ] {
            assert_eq!(
                read_jws(bad, &[Algorithm::RS256]).err(),
                Some(Refusal::Malformed),
                "{bad}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn token_parsing_never_panics(token in "[A-Za-z0-9_.=-]{0,300}", raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = read_jws(&token, &[Algorithm::RS256]);
            let _ = unverified_claims(&token);
            let text = String::from_utf8_lossy(&raw);
            let _ = read_jws(&text, &[Algorithm::RS256]);
            let encoded = format!("{}.{}.x", URL_SAFE_NO_PAD.encode(&raw), URL_SAFE_NO_PAD.encode(&raw));
            let _ = read_jws(&encoded, &[Algorithm::RS256]);
            if let Ok(c) = serde_json::from_slice::<Claims>(&raw) {
                let _ = rules().check(&c, 0);
            }
        }
    }
}
