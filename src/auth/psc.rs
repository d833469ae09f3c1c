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

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use url::Url;

use crate::auth::access::Professional;
use crate::clock::SharedClock;
use crate::config::{PscConfig, PscValidation};

/// Largest discovery, JWKS or introspection answer read from PSC.
const MAX_ANSWER: usize = 256 * 1024;
/// Largest token looked at (the SASL layer already bounds the whole message).
const MAX_TOKEN: usize = 16 * 1024;

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
}

/// The claim rules shared by both modes.
struct Rules {
    issuer: String,
    algorithms: Vec<Algorithm>,
    accepted_acr: Vec<String>,
    allowed_azp: Vec<String>,
    leeway: i64,
}

#[derive(Debug, Clone, Default)]
struct Endpoints {
    jwks_uri: Option<Url>,
    introspection_endpoint: Option<Url>,
    discovery: Option<Url>,
}

struct VerifyingKey {
    key: DecodingKey,
    /// The algorithm the JWKS ties this key to, if it says.
    algorithm: Option<Algorithm>,
}

struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    fetched_at: Instant,
}

/// Something fetched from PSC on demand and replaced when refetched. Fetches are
/// serialised; callers who waited while one ran take its outcome instead of repeating it,
/// so a burst of validations while PSC is down costs one request, not one each.
struct Refreshed<T> {
    value: RwLock<Option<Arc<T>>>,
    attempts: AtomicU64,
    fetch: tokio::sync::Mutex<FetchRecord>,
}

#[derive(Default)]
struct FetchRecord {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
    last_error: Option<String>,
}

impl<T> Refreshed<T> {
    fn new() -> Self {
        Refreshed {
            value: RwLock::new(None),
            attempts: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchRecord::default()),
        }
    }

    fn current(&self) -> Option<Arc<T>> {
        match self.value.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, value: T) {
        let value = Some(Arc::new(value));
        match self.value.write() {
            Ok(mut v) => *v = value,
            Err(poisoned) => *poisoned.into_inner() = value,
        }
    }
}

/// Cached validation outcomes by SHA-256 of the token, each kept until the token's `exp`.
/// Bounded: when full, expired entries go first, then those expiring soonest.
struct TokenCache {
    capacity: usize,
    entries: HashMap<[u8; 32], (Professional, i64)>,
    by_expiry: BTreeSet<(i64, [u8; 32])>,
}

impl TokenCache {
    fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    fn get(&mut self, hash: &[u8; 32], now: i64) -> Option<Professional> {
        let (professional, exp) = self.entries.get(hash)?;
        if *exp >= now {
            return Some(professional.clone());
        }
        let exp = *exp;
        self.entries.remove(hash);
        self.by_expiry.remove(&(exp, *hash));
        None
    }

    fn insert(&mut self, hash: [u8; 32], professional: Professional, exp: i64, now: i64) {
        if self.capacity == 0 || exp < now {
            return;
        }
        if let Some((_, old)) = self.entries.remove(&hash) {
            self.by_expiry.remove(&(old, hash));
        }
        while self.entries.len() >= self.capacity {
            let Some((_, h)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&h);
        }
        self.entries.insert(hash, (professional, exp));
        self.by_expiry.insert((exp, hash));
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

/// The claims looked at, from the JWT payload or the introspection answer.
#[derive(Debug, Deserialize)]
struct Claims {
    active: Option<bool>,
    iss: Option<String>,
    exp: Option<f64>,
    nbf: Option<f64>,
    typ: Option<String>,
    acr: Option<String>,
    azp: Option<String>,
    #[serde(rename = "SubjectNameID")]
    subject_name_id: Option<String>,
    preferred_username: Option<String>,
}

#[derive(Debug, Deserialize)]
struct JoseHeader {
    alg: String,
    kid: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawJwkSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct DiscoveryDocument {
    jwks_uri: Option<Url>,
    introspection_endpoint: Option<Url>,
}

/// Seconds since the epoch from a JSON number, refusing what is not a finite number.
fn seconds(value: f64) -> Option<i64> {
    // invariant: the cast saturates; only NaN needs refusing.
    value.is_finite().then_some(value as i64)
}

fn trim_slash(s: &str) -> &str {
    s.strip_suffix('/').unwrap_or(s)
}

impl Rules {
    fn new(config: &PscConfig) -> Self {
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
    fn check(&self, claims: &Claims, now: i64) -> Result<(Professional, i64), Refusal> {
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
struct Jws<'a> {
    header: JoseHeader,
    algorithm: Algorithm,
    payload: &'a str,
}

/// Reads the header and refuses any algorithm outside the allow-list before a key is
/// even looked up: `none` and HMAC never reach the verifier.
fn read_jws<'a>(token: &'a str, allowed: &[Algorithm]) -> Result<Jws<'a>, Refusal> {
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

fn unverified_claims(payload: &str) -> Option<Claims> {
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn temporary(what: &str, e: impl fmt::Display) -> String {
    format!("{what}: {e}")
}

/// Reads at most `MAX_ANSWER` bytes of a response body.
async fn bounded_body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err(format!("answer larger than {MAX_ANSWER} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "unreachable".into()
    } else {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            text.push_str(": ");
            text.push_str(&s.to_string());
            source = s.source();
        }
        text
    }
}

impl PscValidator {
    /// Builds the validator. Contacts nobody: discovery and keys come on first use.
    pub fn new(config: &PscConfig, clock: SharedClock) -> Result<Self, PscSetupError> {
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
            }),
        })
    }

    /// Checks an access token and says which professional it names.
    pub async fn validate(&self, token: &str) -> Result<Professional, TokenError> {
        let inner = &self.inner;
        if token.len() > MAX_TOKEN {
            return Err(Refusal::Malformed.into());
        }
        let now = inner.clock.now().timestamp();
        let hash = token_hash(token);
        // A token seen and accepted before stays accepted until its exp: nothing in the
        // checks below can change their verdict meanwhile.
        if let Some(p) = inner.cached(&hash, now) {
            return Ok(p);
        }
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
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Date checks on claims nobody verified yet: safe to refuse on, never to accept on.
fn early_refusal(claims: &Claims, now: i64, leeway: i64) -> Result<(), Refusal> {
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

impl Inner {
    fn cached(&self, hash: &[u8; 32], now: i64) -> Option<Professional> {
        lock(&self.cache).get(hash, now)
    }

    fn remember(&self, hash: [u8; 32], professional: Professional, exp: i64) {
        let now = self.clock.now().timestamp();
        lock(&self.cache).insert(hash, professional, exp, now);
    }

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

    /// The key for `kid`. The JWKS is fetched when `kid` is unknown (at most once per
    /// `jwks_refetch_interval` once a fetch has succeeded) and again once the keys are older
    /// than `jwks_max_age`, so a key PSC withdrew stops being trusted. While PSC cannot be
    /// reached, the keys fetched last stay in use: an outage must not lock everyone out.
    async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, TokenError> {
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
                record.last_error = Some(e.clone());
                known.ok_or(TokenError::Temporary(e))
            }
        }
    }

    async fn fetch_keys(&self) -> Result<KeySet, String> {
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
    async fn endpoints(&self) -> Result<Arc<Endpoints>, String> {
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
                record.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn discover(&self) -> Result<Endpoints, String> {
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

    async fn get(&self, url: &Url) -> Result<Vec<u8>, String> {
        let response = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("GET {url}: {}", describe(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("GET {url}: answered {status}"));
        }
        bounded_body(response)
            .await
            .map_err(|e| format!("GET {url}: {e}"))
    }

    /// One introspection per token at a time: concurrent callers share the request, and
    /// its answer lands in the cache before the request is forgotten, so a caller arriving
    /// afterwards finds it there.
    async fn introspect_shared(self: &Arc<Self>, token: &str, hash: [u8; 32]) -> Outcome {
        let flight = {
            let mut flights = lock(&self.flights);
            if let Some(f) = flights.get(&hash) {
                f.clone()
            } else {
                if let Some(p) = self.cached(&hash, self.clock.now().timestamp()) {
                    return Ok(p);
                }
                let inner = Arc::clone(self);
                let token = token.to_owned();
                // Spawned so the request completes and fills the cache even if every
                // waiting client goes away.
                let task = tokio::spawn(async move {
                    let outcome = inner.introspect(&token).await;
                    if let Ok((p, exp)) = &outcome {
                        inner.remember(hash, p.clone(), *exp);
                    }
                    lock(&inner.flights).remove(&hash);
                    outcome.map(|(p, _)| p)
                });
                let flight = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(TokenError::Temporary(format!(
                            "introspection task failed: {e}"
                        )))
                    })
                }
                .boxed()
                .shared();
                flights.insert(hash, flight.clone());
                flight
            }
        };
        flight.await
    }

    async fn introspect(&self, token: &str) -> Result<(Professional, i64), TokenError> {
        let endpoint = match &self.configured_introspection {
            Some(u) => u.clone(),
            None => self
                .endpoints()
                .await
                .map_err(TokenError::Temporary)?
                .introspection_endpoint
                .clone()
                .ok_or_else(|| {
                    TokenError::Temporary(
                        "the discovery document names no introspection_endpoint".into(),
                    )
                })?,
        };
        let (Some(id), Some(secret)) = (&self.client_id, &self.client_secret) else {
            return Err(TokenError::Temporary(
                "psc.client_id and psc.client_secret are not set".into(),
            ));
        };
        let response = self
            .http
            .post(endpoint.clone())
            .basic_auth(id, Some(secret))
            .header("accept", "application/json")
            .form(&[("token", token), ("token_type_hint", "access_token")])
            .send()
            .await
            .map_err(|e| TokenError::Temporary(format!("introspection: {}", describe(&e))))?;
        let status = response.status();
        if !status.is_success() {
            return Err(TokenError::Temporary(format!(
                "introspection answered {status}"
            )));
        }
        let body = bounded_body(response)
            .await
            .map_err(|e| TokenError::Temporary(format!("introspection: {e}")))?;
        let claims: Claims = serde_json::from_slice(&body).map_err(|e| {
            TokenError::Temporary(temporary("introspection answer is not valid", e))
        })?;
        if claims.active != Some(true) {
            return Err(Refusal::Inactive.into());
        }
        let now = self.clock.now().timestamp();
        Ok(self.rules.check(&claims, now)?)
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

    #[test]
    fn cache_is_bounded_and_expires() {
        let mut c = TokenCache::new(2);
        let p = |s: &str| Professional::new(s.into());
        c.insert([1; 32], p("a"), 100, 0);
        c.insert([2; 32], p("b"), 200, 0);
        c.insert([3; 32], p("c"), 300, 0);
        assert_eq!(c.len(), 2);
        assert!(
            c.get(&[1; 32], 0).is_none(),
            "the soonest to expire went first"
        );
        assert_eq!(c.get(&[3; 32], 0).unwrap().idnat(), "c");
        assert!(
            c.get(&[2; 32], 201).is_none(),
            "expired entries are not served"
        );
        assert_eq!(c.len(), 1);
        c.insert([4; 32], p("d"), 10, 20);
        assert!(c.get(&[4; 32], 20).is_none(), "already expired: not kept");
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
