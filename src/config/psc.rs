//! `[psc]`: how Pro Santé Connect access tokens are checked.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::Url;

use super::checker::{Checker, Scalar};
use super::units::HumanDuration;
use super::{ConfigError, invalid};

/// How PSC access tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PscValidation {
    /// Signature against the issuer's JWKS, claims checked here.
    Local,
    /// RFC 7662 introspection at the issuer.
    Introspection,
}

#[derive(Debug, Clone, Serialize)]
pub struct PscConfig {
    pub issuer: Url,
    pub validation: PscValidation,
    pub jwks_uri: Option<Url>,
    pub introspection_endpoint: Option<Url>,
    pub client_id: Option<String>,
    #[serde(serialize_with = "mask_secret")]
    pub client_secret: Option<String>,
    pub accepted_acr: Vec<String>,
    pub allowed_azp: Vec<String>,
    pub algorithms: Vec<String>,
    pub http_timeout: HumanDuration,
    pub leeway: HumanDuration,
    pub jwks_refetch_interval: HumanDuration,
    pub jwks_max_age: HumanDuration,
    pub introspection_cache_size: u64,
}

fn mask_secret<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str("********"),
        None => s.serialize_none(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub issuer: String,
    pub validation: Option<String>,
    pub jwks_uri: Option<String>,
    pub introspection_endpoint: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub accepted_acr: Option<Vec<String>>,
    pub allowed_azp: Option<Vec<String>>,
    pub algorithms: Option<Vec<String>>,
    pub http_timeout: Option<Scalar>,
    pub leeway: Option<Scalar>,
    pub jwks_refetch_interval: Option<Scalar>,
    pub jwks_max_age: Option<Scalar>,
    pub introspection_cache_size: Option<i64>,
}

impl PscConfig {
    pub(super) fn check(p: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let validation = match p.validation.as_deref() {
            None | Some("local") => PscValidation::Local,
            Some("introspection") => PscValidation::Introspection,
            Some(other) => {
                return Err(invalid(
                    "psc.validation",
                    format!("`{other}`: expected \"local\" or \"introspection\""),
                ));
            }
        };
        let algorithms = p.algorithms.unwrap_or_else(|| vec!["RS256".into()]);
        if algorithms.is_empty() {
            return Err(invalid("psc.algorithms", "list at least one algorithm"));
        }
        for a in &algorithms {
            if !matches!(
                a.as_str(),
                "RS256"
                    | "RS384"
                    | "RS512"
                    | "PS256"
                    | "PS384"
                    | "PS512"
                    | "ES256"
                    | "ES384"
                    | "EdDSA"
            ) {
                return Err(invalid(
                    "psc.algorithms",
                    format!(
                        "`{a}` is not an accepted signature algorithm (`none` and HMAC are never allowed)"
                    ),
                ));
            }
        }
        if validation == PscValidation::Introspection
            && (p.client_id.is_none() || p.client_secret.is_none())
        {
            return Err(invalid(
                "psc.client_id",
                "introspection needs psc.client_id and psc.client_secret",
            ));
        }
        Ok(PscConfig {
            issuer: c.url("psc.issuer", &p.issuer)?,
            validation,
            jwks_uri: p.jwks_uri.map(|u| c.url("psc.jwks_uri", &u)).transpose()?,
            introspection_endpoint: p
                .introspection_endpoint
                .map(|u| c.url("psc.introspection_endpoint", &u))
                .transpose()?,
            client_id: p.client_id,
            client_secret: p.client_secret,
            accepted_acr: p.accepted_acr.unwrap_or_else(|| vec!["eidas1".into()]),
            allowed_azp: p.allowed_azp.unwrap_or_default(),
            algorithms,
            http_timeout: c.duration("psc.http_timeout", p.http_timeout, "5s")?,
            leeway: {
                let l = c.duration("psc.leeway", p.leeway, "60s")?;
                if l.0 > Duration::from_secs(60) {
                    return Err(invalid("psc.leeway", "must be at most 60s"));
                }
                l
            },
            jwks_refetch_interval: c.duration(
                "psc.jwks_refetch_interval",
                p.jwks_refetch_interval,
                "1m",
            )?,
            jwks_max_age: c.duration("psc.jwks_max_age", p.jwks_max_age, "10m")?,
            introspection_cache_size: u64::from(c.count(
                "psc.introspection_cache_size",
                p.introspection_cache_size,
                100_000,
            )?),
        })
    }
}
