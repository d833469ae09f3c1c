//! The issuer's endpoints (discovery) and signing keys (JWKS), fetched on demand, kept
//! through a PSC outage, and refetched when a key is unknown or the set has aged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::time::Instant;
use url::Url;

use super::http::temporary;
use super::jws::trim_slash;
use super::{Inner, Refusal, TokenError};

#[derive(Debug, Clone, Default)]
pub(super) struct Endpoints {
    pub(super) jwks_uri: Option<Url>,
    pub(super) introspection_endpoint: Option<Url>,
    pub(super) discovery: Option<Url>,
}

pub(super) struct VerifyingKey {
    pub(super) key: DecodingKey,
    /// The algorithm the JWKS ties this key to, if it says.
    pub(super) algorithm: Option<Algorithm>,
}

pub(super) struct KeySet {
    pub(super) by_kid: HashMap<String, Arc<VerifyingKey>>,
    pub(super) fetched_at: Instant,
}

/// Something fetched from PSC on demand and replaced when refetched. Fetches are
/// serialised; callers who waited while one ran take its outcome instead of repeating it,
/// so a burst of validations while PSC is down costs one request, not one each.
pub(super) struct Refreshed<T> {
    pub(super) value: RwLock<Option<Arc<T>>>,
    pub(super) attempts: AtomicU64,
    pub(super) fetch: tokio::sync::Mutex<FetchRecord>,
}

#[derive(Default)]
pub(super) struct FetchRecord {
    pub(super) last_attempt: Option<Instant>,
    pub(super) last_success: Option<Instant>,
    pub(super) last_error: Option<String>,
}

impl<T> Refreshed<T> {
    pub(super) fn new() -> Self {
        Refreshed {
            value: RwLock::new(None),
            attempts: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchRecord::default()),
        }
    }

    pub(super) fn current(&self) -> Option<Arc<T>> {
        match self.value.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub(super) fn set(&self, value: T) {
        let value = Some(Arc::new(value));
        match self.value.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct RawJwkSet {
    pub(super) keys: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub(super) struct DiscoveryDocument {
    pub(super) jwks_uri: Option<Url>,
    pub(super) introspection_endpoint: Option<Url>,
}

impl Inner {
    /// The key for `kid`. The JWKS is fetched when `kid` is unknown (at most once per
    /// `jwks_refetch_interval` once a fetch has succeeded) and again once the keys are older
    /// than `jwks_max_age`, so a key PSC withdrew stops being trusted. While PSC cannot be
    /// reached, the keys fetched last stay in use: an outage must not lock everyone out.
    pub(super) async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, TokenError> {
        let lookup = |set: &Option<Arc<KeySet>>| set.as_ref()?.by_kid.get(kid).cloned();
        let fresh = |set: &Option<Arc<KeySet>>| {
            set.as_ref()
                .is_some_and(|s| s.fetched_at.elapsed() < self.max_age)
        };
        let current = self.keys.current();
        if let Some(key) = lookup(&current)
            && fresh(&current)
        {
            return Ok(key);
        }
        let seen = self.keys.attempts.load(Ordering::Acquire);
        let mut record = self.keys.fetch.lock().await;
        let current = self.keys.current();
        let known = lookup(&current);
        if let Some(key) = &known
            && fresh(&current)
        {
            return Ok(key.clone());
        }
        if self.keys.attempts.load(Ordering::Acquire) != seen {
            // A fetch ran while we waited: its outcome is ours.
            return match (&record.last_error, known) {
                (Some(_), Some(key)) => Ok(key),
                (Some(e), None) => Err(TokenError::Temporary(e.clone())),
                (None, _) => Err(Refusal::UnknownKey.into()),
            };
        }
        let within = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < self.refetch_interval);
        match &known {
            // Keys past their age, and PSC failed to answer a moment ago: keep them.
            Some(key) if record.last_error.is_some() && within(record.last_attempt) => {
                return Ok(key.clone());
            }
            None if record.last_error.is_none() && within(record.last_success) => {
                return Err(Refusal::UnknownKey.into());
            }
            _ => {}
        }
        let fetched = self.fetch_keys().await;
        self.keys.attempts.fetch_add(1, Ordering::AcqRel);
        record.last_attempt = Some(Instant::now());
        match fetched {
            Ok(set) => {
                record.last_success = record.last_attempt;
                record.last_error = None;
                let key = set.by_kid.get(kid).cloned();
                self.keys.set(set);
                key.ok_or(Refusal::UnknownKey.into())
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot fetch the PSC signing keys");
                self.count_fetch_failure("jwks");
                record.last_error = Some(e.clone());
                known.ok_or(TokenError::Temporary(e))
            }
        }
    }

    pub(super) async fn fetch_keys(&self) -> Result<KeySet, String> {
        let uri = match &self.configured_jwks {
            Some(u) => u.clone(),
            None => self
                .endpoints()
                .await?
                .jwks_uri
                .clone()
                .ok_or("the discovery document names no jwks_uri")?,
        };
        let body = self.get(&uri).await?;
        let set: RawJwkSet =
            serde_json::from_slice(&body).map_err(|e| temporary("JWKS is not valid JSON", e))?;
        let mut keys = KeySet {
            by_kid: HashMap::new(),
            fetched_at: Instant::now(),
        };
        // One key we cannot read (an encryption key, a new key type) must not hide the others.
        for jwk in set
            .keys
            .into_iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k).ok())
        {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let algorithm = match jwk.common.key_algorithm {
                Some(a) => match Algorithm::try_from(a) {
                    Ok(alg) => Some(alg),
                    Err(_) => continue,
                },
                None => None,
            };
            // Symmetric keys in a JWKS would let the key itself be used as an HMAC secret.
            if matches!(
                jwk.algorithm,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
            ) {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            keys.by_kid
                .insert(kid, Arc::new(VerifyingKey { key, algorithm }));
        }
        if keys.by_kid.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        Ok(keys)
    }

    /// Discovery at the issuer: the standard document first, then PSC's own path.
    pub(super) async fn endpoints(&self) -> Result<Arc<Endpoints>, String> {
        if let Some(e) = self.endpoints.current() {
            return Ok(e);
        }
        let seen = self.endpoints.attempts.load(Ordering::Acquire);
        let mut record = self.endpoints.fetch.lock().await;
        if let Some(e) = self.endpoints.current() {
            return Ok(e);
        }
        if self.endpoints.attempts.load(Ordering::Acquire) != seen
            && let Some(e) = &record.last_error
        {
            return Err(e.clone());
        }
        let found = self.discover().await;
        self.endpoints.attempts.fetch_add(1, Ordering::AcqRel);
        match found {
            Ok(e) => {
                record.last_error = None;
                record.last_success = Some(Instant::now());
                self.endpoints.set(e);
                self.endpoints
                    .current()
                    .ok_or_else(|| "discovery lost".into())
            }
            Err(e) => {
                tracing::warn!(error = %e, issuer = %self.issuer_url, "PSC discovery failed");
                self.count_fetch_failure("discovery");
                record.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    pub(super) async fn discover(&self) -> Result<Endpoints, String> {
        let base = trim_slash(self.issuer_url.as_str()).to_owned();
        let mut last = String::new();
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/wallet-openid-configuration",
        ] {
            let url = Url::parse(&format!("{base}{path}")).map_err(|e| e.to_string())?;
            match self.get(&url).await {
                Ok(body) => match serde_json::from_slice::<DiscoveryDocument>(&body) {
                    Ok(doc) => {
                        return Ok(Endpoints {
                            jwks_uri: doc.jwks_uri,
                            introspection_endpoint: doc.introspection_endpoint,
                            discovery: Some(url),
                        });
                    }
                    Err(e) => last = temporary(&format!("discovery at {url}"), e),
                },
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}
