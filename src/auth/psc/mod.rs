//! Pro Santé Connect access-token validation (DOMAIN.md "Pro Santé Connect").
//!
//! Two modes, chosen by `[psc] validation`:
//! - `local`: the JWT signature is checked against the issuer's JWKS, fetched lazily and
//!   refetched on an unknown `kid` at most once per `jwks_refetch_interval`, and once it is
//!   older than `jwks_max_age` so that withdrawn keys stop being trusted;
//! - `introspection`: RFC 7662 at the issuer, answers cached by SHA-256 of the token until
//!   the token's `exp`, concurrent questions about one token sharing one request.
//!
//! Both end in the same claim checks. Nothing is fetched at start-up, so the server starts
//! while PSC is down; a PSC that cannot answer gives `TokenError::Temporary`, never an
//! acceptance.
//!
//! `jws` reads the token and holds the claim rules; `keys` finds the issuer's endpoints
//! and signing keys; `introspection` asks the issuer; `cache` keeps accepted tokens until
//! they expire; `http` bounds what PSC may answer. This module ties them together.

mod cache;
mod http;
mod introspection;
mod jws;
mod keys;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[cfg(feature = "fuzzing")]
use base64::Engine as _;
#[cfg(feature = "fuzzing")]
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::Validation;
use sha2::{Digest, Sha256};
use url::Url;

use self::cache::TokenCache;
use self::jws::{Claims, Jws, MAX_TOKEN, Rules, early_refusal, read_jws, unverified_claims};
use self::keys::{Endpoints, KeySet, Refreshed};
use crate::auth::access::Professional;
use crate::clock::SharedClock;
use crate::config::{PscConfig, PscValidation};
use crate::metrics::Metrics;

/// Why a token was refused. `reason` is the stable text of the audit trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Malformed,
    Unsigned,
    AlgorithmNotAllowed,
    UnknownKey,
    BadSignature,
    NoExpiry,
    Expired,
    NotYetValid,
    IssuerMismatch,
    NotBearer,
    AcrNotAccepted,
    AzpNotAllowed,
    NoIdentity,
    Inactive,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed token",
            Refusal::Unsigned => "unsigned token (alg none)",
            Refusal::AlgorithmNotAllowed => "algorithm not allowed",
            Refusal::UnknownKey => "unknown signing key",
            Refusal::BadSignature => "bad signature",
            Refusal::NoExpiry => "token has no expiry",
            Refusal::Expired => "token expired",
            Refusal::NotYetValid => "token not yet valid",
            Refusal::IssuerMismatch => "issuer mismatch",
            Refusal::NotBearer => "token type is not Bearer",
            Refusal::AcrNotAccepted => "acr not accepted",
            Refusal::AzpNotAllowed => "azp not allowed",
            Refusal::NoIdentity => "token names no professional",
            Refusal::Inactive => "token inactive",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

/// The outcome of a validation that did not accept the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Refused(Refusal),
    /// PSC could not answer (down, timeout, 5xx, garbage): the client may retry later.
    Temporary(String),
}

impl From<Refusal> for TokenError {
    fn from(r: Refusal) -> Self {
        TokenError::Refused(r)
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenError::Refused(r) => f.write_str(r.reason()),
            TokenError::Temporary(why) => write!(f, "PSC unavailable: {why}"),
        }
    }
}

/// The validator could not be built (not a PSC problem: a local one).
#[derive(Debug, thiserror::Error)]
pub enum PscSetupError {
    #[error("cannot build the HTTP client for PSC: {0}")]
    Http(String),
}

type Outcome = Result<Professional, TokenError>;

/// Validates PSC access tokens; cheap to clone, shared by every connection.
#[derive(Clone)]
pub struct PscValidator {
    inner: Arc<Inner>,
}

impl fmt::Debug for PscValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PscValidator")
            .field("issuer", &self.inner.rules.issuer)
            .field("mode", &self.inner.mode)
            .finish_non_exhaustive()
    }
}

struct Inner {
    mode: PscValidation,
    rules: Rules,
    clock: SharedClock,
    http: reqwest::Client,
    issuer_url: Url,
    client_id: Option<String>,
    client_secret: Option<String>,
    configured_jwks: Option<Url>,
    configured_introspection: Option<Url>,
    refetch_interval: Duration,
    max_age: Duration,
    endpoints: Refreshed<Endpoints>,
    keys: Refreshed<KeySet>,
    cache: Mutex<TokenCache>,
    flights: Mutex<HashMap<[u8; 32], Shared<BoxFuture<'static, Outcome>>>>,
    metrics: Arc<Metrics>,
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl PscValidator {
    /// Builds the validator. Contacts nobody: discovery and keys come on first use.
    /// Validations, cache hits and failed fetches are counted in `metrics`.
    pub fn new(
        config: &PscConfig,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PscSetupError> {
        let mut http = reqwest::Client::builder()
            .timeout(config.http_timeout.0)
            .connect_timeout(config.http_timeout.0)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mssante/", env!("CARGO_PKG_VERSION")));
        if crate::config::is_loopback_host(&config.issuer) {
            // A local PSC (tests, the sandbox) is never behind the system's proxy.
            http = http.no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| PscSetupError::Http(e.to_string()))?;
        let capacity = usize::try_from(config.introspection_cache_size).unwrap_or(usize::MAX);
        Ok(PscValidator {
            inner: Arc::new(Inner {
                mode: config.validation,
                rules: Rules::new(config),
                clock,
                http,
                issuer_url: config.issuer.clone(),
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                configured_jwks: config.jwks_uri.clone(),
                configured_introspection: config.introspection_endpoint.clone(),
                refetch_interval: config.jwks_refetch_interval.0,
                max_age: config.jwks_max_age.0,
                endpoints: Refreshed::new(),
                keys: Refreshed::new(),
                cache: Mutex::new(TokenCache::new(capacity)),
                flights: Mutex::new(HashMap::new()),
                metrics,
            }),
        })
    }

    /// Checks an access token and says which professional it names.
    pub async fn validate(&self, token: &str) -> Result<Professional, TokenError> {
        let started = tokio::time::Instant::now();
        let outcome = self.validate_uncounted(token).await;
        self.inner
            .metrics
            .psc_validation_seconds
            .observe(started.elapsed().as_secs_f64());
        outcome
    }

    async fn validate_uncounted(&self, token: &str) -> Result<Professional, TokenError> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN {
            return Err(Refusal::Malformed.into());
        }
        let now = inner.clock.now().timestamp();
        let hash = token_hash(token);
        // A token seen and accepted before stays accepted until its exp: nothing in the
        // checks below can change their verdict meanwhile.
        if let Some(p) = inner.cached(&hash, now) {
            inner.count_cache("hit");
            return Ok(p);
        }
        inner.count_cache("miss");
        let jws = read_jws(token, &inner.rules.algorithms);
        match inner.mode {
            PscValidation::Local => {
                let jws = jws?;
                let outcome = inner.validate_local(token, &jws).await;
                if let Ok((p, exp)) = &outcome {
                    inner.remember(hash, p.clone(), *exp);
                }
                outcome.map(|(p, _)| p)
            }
            PscValidation::Introspection => {
                // A JWT whose own header or dates already condemn it is refused without
                // asking PSC; anything else (even an opaque token) is PSC's to judge.
                match jws {
                    Err(r @ (Refusal::AlgorithmNotAllowed | Refusal::Unsigned)) => {
                        return Err(r.into());
                    }
                    Err(_) => {}
                    Ok(jws) => {
                        if let Some(claims) = unverified_claims(jws.payload) {
                            early_refusal(&claims, now, inner.rules.leeway)?;
                        }
                    }
                }
                Inner::introspect_shared(inner, token, hash).await
            }
        }
    }

    /// The discovery document's address, once discovery succeeded (for OAUTHBEARER's
    /// error challenge).
    pub fn discovery_url(&self) -> Option<Url> {
        self.inner
            .endpoints
            .current()
            .and_then(|e| e.discovery.clone())
    }

    /// Number of cached validation outcomes (for metrics and tests).
    pub fn cached_tokens(&self) -> usize {
        lock(&self.inner.cache).len()
    }

    /// How old the signing keys in use are; None before the first successful fetch.
    pub fn keys_age(&self) -> Option<Duration> {
        self.inner.keys.current().map(|k| k.fetched_at.elapsed())
    }

    /// Local validation is impossible right now: no signing keys are held and the last
    /// attempt to fetch them failed. (Keys once fetched are kept through an outage, and
    /// introspection needs none.)
    pub fn keys_unavailable(&self) -> bool {
        if self.inner.mode != PscValidation::Local || self.inner.keys.current().is_some() {
            return false;
        }
        // A fetch in progress holds the record: not known to have failed (yet).
        self.inner
            .keys
            .fetch
            .try_lock()
            .is_ok_and(|record| record.last_error.is_some())
    }
}

impl Inner {
    fn count_cache(&self, result: &'static str) {
        self.metrics
            .psc_cache
            .get_or_create(&[("result", result)])
            .inc();
    }

    fn count_fetch_failure(&self, endpoint: &'static str) {
        self.metrics
            .psc_fetch_failures
            .get_or_create(&[("endpoint", endpoint)])
            .inc();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Inner {
    async fn validate_local(
        &self,
        token: &str,
        jws: &Jws<'_>,
    ) -> Result<(Professional, i64), TokenError> {
        let kid = jws.header.kid.as_deref().ok_or(Refusal::UnknownKey)?;
        let key = self.key(kid).await?;
        if key.algorithm.is_some_and(|a| a != jws.algorithm) {
            return Err(Refusal::AlgorithmNotAllowed.into());
        }
        let mut validation = Validation::new(jws.algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    Refusal::AlgorithmNotAllowed
                }
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidKeyFormat
                | ErrorKind::InvalidRsaKey(_) => Refusal::BadSignature,
                _ => Refusal::Malformed,
            }
        })?;
        let now = self.clock.now().timestamp();
        Ok(self.rules.check(&data.claims, now)?)
    }
}

/// The checks a token's payload goes through once its signature is verified, for the
/// fuzz target: a fuzzer cannot forge signatures, so `validate` alone would never let
/// it past them. The payload is read as `jsonwebtoken` and introspection read it, then
/// put through the early refusal and the claim rules of `config` as of `now`. Returns
/// (read from the token form too, passes the early refusal, passes the claim rules),
/// `None` when it is not claims.
#[cfg(feature = "fuzzing")]
pub(crate) fn fuzz_claims(
    config: &PscConfig,
    payload: &[u8],
    now: i64,
) -> Option<(bool, bool, bool)> {
    let rules = Rules::new(config);
    let encoded = URL_SAFE_NO_PAD.encode(payload);
    let from_token = unverified_claims(&encoded);
    let claims = serde_json::from_slice::<Claims>(payload).ok()?;
    let early = early_refusal(&claims, now, rules.leeway).is_ok();
    Some((
        from_token.is_some(),
        early,
        rules.check(&claims, now).is_ok(),
    ))
}
