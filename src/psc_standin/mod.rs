//! A Pro Santé Connect stand-in: the parts of the `esante-wallet` Keycloak realm that the
//! server talks to (discovery on both paths, JWKS, RFC 7662 introspection), on a loopback
//! port, plus a mint for good and deliberately bad access tokens.
//!
//! Tests, the `mssante dev` sandbox and the conformance suite use it so that every
//! refusal rule is exercised against real HTTP and real signatures.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

/// The realm path of PSC's issuer, kept so URLs look like the real ones.
pub const REALM_PATH: &str = "/auth/realms/esante-wallet";
/// The client credentials the stand-in accepts for introspection.
pub const CLIENT_ID: &str = "mssante-operator";
pub const CLIENT_SECRET: &str = "stand-in-secret";
/// The IdNat logged in by the authorization endpoint unless told otherwise.
pub const DEFAULT_LOGIN: &str = "899700771191";
/// The LPS client id put in `azp` unless a spec says otherwise.
pub const DEFAULT_AZP: &str = "test-lps";
/// Where a second process (`mssante dev token`) asks the sandbox's stand-in for a token,
/// under the issuer: `POST {issuer}/dev/token` with the form `idnat=…`. Loopback only,
/// and only once `enable_dev_mint` was called.
pub const DEV_TOKEN_PATH: &str = "/dev/token";

/// What is wrong with a minted token, on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flaw {
    /// Expired ten minutes ago (beyond any leeway).
    Expired,
    /// Valid from ten minutes from now.
    NotYetValid,
    /// Signed by the stand-in but naming another issuer.
    ForeignIssuer,
    /// Signed by a key whose `kid` is not in the JWKS.
    UnknownKey,
    /// `alg: none`, no signature.
    AlgNone,
    /// HS256 with the RSA public key (PEM) as the HMAC secret: the classic confusion.
    Hs256WithPublicKey,
    /// `acr` other than `eidas1`.
    WrongAcr,
    /// `typ: Refresh`, a refresh token presented as an access token.
    RefreshType,
    /// A valid token whose signature was altered.
    BadSignature,
}

/// What to mint.
#[derive(Debug, Clone)]
pub struct TokenSpec {
    pub idnat: String,
    pub azp: String,
    pub flaw: Option<Flaw>,
    /// Lifetime of a good token (PSC's is about two minutes).
    pub lifetime: Duration,
}

impl TokenSpec {
    /// A good access token for `idnat`.
    pub fn valid(idnat: &str) -> Self {
        TokenSpec {
            idnat: idnat.to_owned(),
            azp: DEFAULT_AZP.to_owned(),
            flaw: None,
            lifetime: Duration::from_secs(120),
        }
    }

    /// A token for `idnat` with `flaw`.
    pub fn flawed(idnat: &str, flaw: Flaw) -> Self {
        TokenSpec {
            flaw: Some(flaw),
            ..Self::valid(idnat)
        }
    }

    pub fn with_azp(mut self, azp: &str) -> Self {
        self.azp = azp.to_owned();
        self
    }

    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }
}

struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    n: String,
    e: String,
    public_pem: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    fn generate(kid: String) -> std::io::Result<Self> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|e| std::io::Error::other(format!("RSA key generation: {e}")))?;
        let private: Pkcs8V1Der<'static> = pair
            .as_der()
            .map_err(|e| std::io::Error::other(format!("RSA key encoding: {e}")))?;
        let encoding = EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
            .map_err(|e| std::io::Error::other(format!("RSA signing key: {e}")))?;
        let public = pair.public_key();
        let spki: PublicKeyX509Der<'static> = public
            .as_der()
            .map_err(|e| std::io::Error::other(format!("RSA public key encoding: {e}")))?;
        let n = public.modulus().big_endian_without_leading_zero().to_vec();
        let e = public.exponent().big_endian_without_leading_zero().to_vec();
        Ok(SigningKey {
            kid,
            encoding,
            decoding: DecodingKey::from_rsa_raw_components(&n, &e),
            n: URL_SAFE_NO_PAD.encode(&n),
            e: URL_SAFE_NO_PAD.encode(&e),
            public_pem: pem("PUBLIC KEY", spki.as_ref()),
        })
    }

    fn jwk(&self) -> Value {
        json!({"kid": self.kid, "kty": "RSA", "alg": "RS256", "use": "sig", "n": self.n, "e": self.e})
    }
}

struct Keys {
    /// Signs new tokens; always the last of `published`.
    published: Vec<Arc<SigningKey>>,
    /// Signs `Flaw::UnknownKey` tokens; never published.
    hidden: Arc<SigningKey>,
}

impl Keys {
    fn current(&self) -> Arc<SigningKey> {
        // invariant: `published` starts with one key and never loses its last (withdraw_key).
        Arc::clone(&self.published[self.published.len() - 1])
    }
}

struct StandInState {
    issuer: String,
    keys: RwLock<Keys>,
    next_kid: AtomicU64,
    revoked: Mutex<HashSet<String>>,
    introspections: AtomicUsize,
    jwks_fetches: AtomicUsize,
    down: AtomicBool,
    /// Discovery, JWKS and introspection answer 200 with a body that is not JSON.
    garbled: AtomicBool,
    standard_discovery: AtomicBool,
    introspection_delay: Mutex<Duration>,
    /// Who the authorization endpoint logs in by default.
    login: Mutex<String>,
    /// Authorization codes not yet exchanged.
    codes: Mutex<HashMap<String, CodeGrant>>,
    /// Refresh tokens handed out: token → (IdNat, client id).
    refresh: Mutex<HashMap<String, (String, String)>>,
    /// Who the login page offers, and how `login_hint` addresses map to IdNats.
    professionals: RwLock<Vec<DemoProfessional>>,
    /// Show the login page when `login_hint` names nobody known.
    interactive: AtomicBool,
    /// Serve `POST {realm}/dev/token` to loopback clients.
    dev_mint: AtomicBool,
}

/// An authorization code waiting for its exchange.
struct CodeGrant {
    idnat: String,
    client_id: String,
    redirect_uri: String,
    /// PKCE S256 challenge, when the client sent one.
    challenge: Option<String>,
}

/// A professional the sandbox knows: the login page lists them, and a `login_hint`
/// holding one of their mailbox addresses (Thunderbird sends the account's user name)
/// logs them in.
#[derive(Debug, Clone)]
pub struct DemoProfessional {
    pub idnat: String,
    pub name: String,
    pub mailboxes: Vec<String>,
}

impl StandInState {
    fn mint(&self, spec: &TokenSpec) -> String {
        let now = chrono::Utc::now().timestamp();
        let lifetime = i64::try_from(spec.lifetime.as_secs()).unwrap_or(120);
        let (iat, exp, nbf) = match spec.flaw {
            Some(Flaw::Expired) => (now - 900, now - 600, None),
            Some(Flaw::NotYetValid) => (now, now + 600 + lifetime, Some(now + 600)),
            _ => (now, now + lifetime, None),
        };
        let issuer = match spec.flaw {
            Some(Flaw::ForeignIssuer) => "https://auth.example.org/auth/realms/other".to_owned(),
            _ => self.issuer.clone(),
        };
        let mut claims = json!({
            "exp": exp, "iat": iat, "auth_time": iat,
            "jti": format!("{:032x}", rand::random::<u128>()),
            "iss": issuer,
            "sub": format!("{:032x}", rand::random::<u128>()),
            "typ": if spec.flaw == Some(Flaw::RefreshType) { "Refresh" } else { "Bearer" },
            "azp": spec.azp,
            "acr": if spec.flaw == Some(Flaw::WrongAcr) { "eidas2" } else { "eidas1" },
            "scope": "openid scope_all",
            "SubjectNameID": spec.idnat,
            "preferred_username": spec.idnat,
        });
        if let Some(nbf) = nbf {
            claims["nbf"] = json!(nbf);
        }
        let keys = read(&self.keys);
        let sign = |key: &SigningKey| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(key.kid.clone());
            // invariant: the key was generated here and RS256 signing with it cannot fail.
            jsonwebtoken::encode(&header, &claims, &key.encoding)
                .unwrap_or_else(|e| unreachable!("stand-in signing: {e}"))
        };
        match spec.flaw {
            Some(Flaw::UnknownKey) => sign(&keys.hidden),
            Some(Flaw::AlgNone) => {
                let header = json!({"alg": "none", "typ": "JWT", "kid": keys.current().kid});
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(header.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Some(Flaw::Hs256WithPublicKey) => {
                let current = keys.current();
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some(current.kid.clone());
                let secret = EncodingKey::from_secret(current.public_pem.as_bytes());
                // invariant: HMAC signing with any secret cannot fail.
                jsonwebtoken::encode(&header, &claims, &secret)
                    .unwrap_or_else(|e| unreachable!("stand-in signing: {e}"))
            }
            Some(Flaw::BadSignature) => {
                let token = sign(&keys.current());
                let (body, signature) = token.rsplit_once('.').unwrap_or((&token, ""));
                let mut sig = URL_SAFE_NO_PAD.decode(signature).unwrap_or_default();
                if let Some(b) = sig.first_mut() {
                    *b ^= 0x55;
                }
                format!("{body}.{}", URL_SAFE_NO_PAD.encode(sig))
            }
            _ => sign(&keys.current()),
        }
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running stand-in. Dropping it stops the server too.
pub struct PscStandIn {
    addr: SocketAddr,
    state: Arc<StandInState>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl PscStandIn {
    /// Starts on `addr` (use `127.0.0.1:0`) with one published RSA key.
    pub async fn start(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (first, hidden) = tokio::task::spawn_blocking(|| {
            Ok::<_, std::io::Error>((
                SigningKey::generate("stand-in-1".into())?,
                SigningKey::generate("never-published".into())?,
            ))
        })
        .await
        .map_err(std::io::Error::other)??;
        let state = Arc::new(StandInState {
            issuer: format!("http://{addr}{REALM_PATH}"),
            keys: RwLock::new(Keys {
                published: vec![Arc::new(first)],
                hidden: Arc::new(hidden),
            }),
            next_kid: AtomicU64::new(2),
            revoked: Mutex::new(HashSet::new()),
            introspections: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            garbled: AtomicBool::new(false),
            standard_discovery: AtomicBool::new(true),
            introspection_delay: Mutex::new(Duration::ZERO),
            login: Mutex::new(DEFAULT_LOGIN.to_owned()),
            codes: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
            professionals: RwLock::new(Vec::new()),
            interactive: AtomicBool::new(false),
            dev_mint: AtomicBool::new(false),
        });
        let router = Router::new()
            .route(
                &format!("{REALM_PATH}/.well-known/openid-configuration"),
                get(standard_discovery),
            )
            .route(
                &format!("{REALM_PATH}/.well-known/wallet-openid-configuration"),
                get(wallet_discovery),
            )
            .route(
                &format!("{REALM_PATH}/protocol/openid-connect/certs"),
                get(jwks),
            )
            .route(
                &format!("{REALM_PATH}/protocol/openid-connect/token/introspect"),
                post(introspect),
            )
            .route(
                &format!("{REALM_PATH}/protocol/openid-connect/auth"),
                get(authorize),
            )
            .route(
                &format!("{REALM_PATH}/protocol/openid-connect/token"),
                post(token),
            )
            .route(&format!("{REALM_PATH}{DEV_TOKEN_PATH}"), post(dev_token))
            .with_state(Arc::clone(&state));
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(signal)
            .await
            {
                tracing::warn!(error = %e, "PSC stand-in stopped");
            }
        });
        Ok(PscStandIn {
            addr,
            state,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/auth/realms/esante-wallet`.
    pub fn issuer(&self) -> Url {
        // invariant: built from a socket address and a constant path.
        Url::parse(&self.state.issuer).unwrap_or_else(|_| unreachable!("stand-in issuer URL"))
    }

    /// The `[psc]` section that points the server at this stand-in.
    pub fn config_toml(&self, validation: &str) -> String {
        format!(
            "[psc]\nissuer = \"{}\"\nvalidation = \"{validation}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
            self.state.issuer
        )
    }

    /// Mints a token as PSC would, with the flaw the spec asks for.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        self.state.mint(spec)
    }

    /// The IdNat the authorization endpoint logs in when the client sends no `login_hint`.
    pub fn set_login(&self, idnat: &str) {
        *lock(&self.state.login) = idnat.to_owned();
    }

    /// The professionals the login page offers and `login_hint` addresses resolve to.
    pub fn set_professionals(&self, professionals: Vec<DemoProfessional>) {
        *self
            .state
            .professionals
            .write()
            .unwrap_or_else(|p| p.into_inner()) = professionals;
    }

    /// Interactive: a `login_hint` naming nobody known gets a page to pick a
    /// professional. Otherwise (the default) the hint, or the configured login, is
    /// approved at once, which is what unattended clients need.
    pub fn set_interactive(&self, interactive: bool) {
        self.state.interactive.store(interactive, Ordering::SeqCst);
    }

    /// Serves `POST {issuer}/dev/token` (form `idnat=…`) to loopback clients, so that
    /// another process can mint tokens while the sandbox runs.
    pub fn enable_dev_mint(&self) {
        self.state.dev_mint.store(true, Ordering::SeqCst);
    }

    /// The public key new tokens are verified with (SPKI PEM), for servers that take a
    /// static key instead of the JWKS (e.g. Dovecot's `local_validation_key_dict`, as in the
    /// conformance run and the comparison in `bench/`).
    pub fn public_key_pem(&self) -> String {
        read(&self.state.keys).current().public_pem.clone()
    }

    /// From now on introspection says `active: false` for this token.
    pub fn revoke(&self, token: &str) {
        lock(&self.state.revoked).insert(token.to_owned());
    }

    /// Publishes a new RSA key under a new `kid` and signs new tokens with it; older keys
    /// stay published, as Keycloak keeps them during a rotation.
    pub async fn rotate_key(&self) -> std::io::Result<String> {
        let n = self.state.next_kid.fetch_add(1, Ordering::Relaxed);
        let kid = format!("stand-in-{n}");
        let key_kid = kid.clone();
        let key = tokio::task::spawn_blocking(move || SigningKey::generate(key_kid))
            .await
            .map_err(std::io::Error::other)??;
        self.state
            .keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .published
            .push(Arc::new(key));
        Ok(kid)
    }

    /// Stops publishing the key `kid`, as PSC does when it retires or revokes one. The key
    /// new tokens are signed with cannot be withdrawn; says whether a key was.
    pub fn withdraw_key(&self, kid: &str) -> bool {
        let mut keys = self.state.keys.write().unwrap_or_else(|p| p.into_inner());
        let current = keys.current().kid.clone();
        let before = keys.published.len();
        keys.published.retain(|k| k.kid != kid || k.kid == current);
        keys.published.len() < before
    }

    /// The `kid` new tokens are signed with.
    pub fn current_kid(&self) -> String {
        read(&self.state.keys).current().kid.clone()
    }

    /// Introspection requests received (whatever their answer).
    pub fn introspection_calls(&self) -> usize {
        self.state.introspections.load(Ordering::SeqCst)
    }

    /// JWKS requests received.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// While down, every endpoint answers 503.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// While set, discovery, JWKS and introspection answer `200 OK` with a body that is
    /// not JSON (a proxy's error page, a truncated answer).
    pub fn set_garbled(&self, garbled: bool) {
        self.state.garbled.store(garbled, Ordering::SeqCst);
    }

    /// Serve discovery only at PSC's own `wallet-openid-configuration` path (404 on the
    /// standard one), as the real PSC may.
    pub fn set_standard_discovery(&self, served: bool) {
        self.state
            .standard_discovery
            .store(served, Ordering::SeqCst);
    }

    /// Delay every introspection answer (to exercise timeouts and shared requests).
    pub fn set_introspection_delay(&self, delay: Duration) {
        *lock(&self.state.introspection_delay) = delay;
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for PscStandIn {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

type Shared = State<Arc<StandInState>>;

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "PSC stand-in is down").into_response()
}

/// What a garbled endpoint answers: `200 OK`, JSON announced, not JSON given.
fn garbled(state: &StandInState) -> Option<Response> {
    state.garbled.load(Ordering::SeqCst).then(|| {
        (
            [(header::CONTENT_TYPE, "application/json")],
            "<html><body>{\"keys\": [ truncated",
        )
            .into_response()
    })
}

fn discovery_document(state: &StandInState) -> Value {
    let i = &state.issuer;
    json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/protocol/openid-connect/auth"),
        "token_endpoint": format!("{i}/protocol/openid-connect/token"),
        "introspection_endpoint": format!("{i}/protocol/openid-connect/token/introspect"),
        "userinfo_endpoint": format!("{i}/protocol/openid-connect/userinfo"),
        "jwks_uri": format!("{i}/protocol/openid-connect/certs"),
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "acr_values_supported": ["eidas1"],
    })
}

async fn standard_discovery(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    if !state.standard_discovery.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    Json(discovery_document(&state)).into_response()
}

async fn wallet_discovery(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    Json(discovery_document(&state)).into_response()
}

async fn jwks(State(state): Shared) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if let Some(r) = garbled(&state) {
        return r;
    }
    let keys: Vec<Value> = read(&state.keys)
        .published
        .iter()
        .map(|k| k.jwk())
        .collect();
    Json(json!({ "keys": keys })).into_response()
}

#[derive(Deserialize)]
struct IntrospectionForm {
    token: Option<String>,
}

fn client_authenticated(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(encoded) = value.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(encoded.trim()) else {
        return false;
    };
    decoded == format!("{CLIENT_ID}:{CLIENT_SECRET}").as_bytes()
}

async fn introspect(
    State(state): Shared,
    headers: HeaderMap,
    Form(form): Form<IntrospectionForm>,
) -> Response {
    state.introspections.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let delay = *lock(&state.introspection_delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(r) = garbled(&state) {
        return r;
    }
    if !client_authenticated(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"esante-wallet\"")],
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let inactive = Json(json!({"active": false})).into_response();
    let Some(token) = form.token else {
        return inactive;
    };
    if lock(&state.revoked).contains(&token) {
        return inactive;
    }
    let Ok(header) = jsonwebtoken::decode_header(&token) else {
        return inactive;
    };
    if header.alg != Algorithm::RS256 {
        return inactive;
    }
    let key = {
        let keys = read(&state.keys);
        keys.published
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .cloned()
    };
    let Some(key) = key else {
        return inactive;
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    match jsonwebtoken::decode::<serde_json::Map<String, Value>>(&token, &key.decoding, &validation)
    {
        Ok(data) => {
            let mut answer = data.claims;
            answer.insert("active".into(), Value::Bool(true));
            answer.insert(
                "client_id".into(),
                answer.get("azp").cloned().unwrap_or(Value::Null),
            );
            answer.insert("token_type".into(), Value::String("Bearer".into()));
            Json(Value::Object(answer)).into_response()
        }
        Err(_) => inactive,
    }
}

#[derive(Deserialize)]
struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    login_hint: Option<String>,
    scope: Option<String>,
    acr_values: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
}

/// The IdNat a `login_hint` names: a known professional's IdNat or a mailbox address
/// only they open; otherwise the hint itself when it is not an address.
fn resolve_login(state: &StandInState, hint: &str) -> Option<String> {
    let hint = hint.trim();
    let known = read(&state.professionals);
    if let Some(p) = known.iter().find(|p| p.idnat == hint) {
        return Some(p.idnat.clone());
    }
    // A mailbox several professionals open (organisational) names nobody in particular.
    let mut holders = known
        .iter()
        .filter(|p| p.mailboxes.iter().any(|m| m.eq_ignore_ascii_case(hint)));
    if let (Some(p), None) = (holders.next(), holders.next()) {
        return Some(p.idnat.clone());
    }
    if hint.is_empty() || hint.contains('@') {
        None
    } else if state.interactive.load(Ordering::SeqCst) && !known.is_empty() {
        // Interactive with a list: only listed professionals log in.
        None
    } else {
        Some(hint.to_owned())
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page that lets a person pick a demo professional: each choice is the same
/// authorization request with `login_hint` set, which is then approved at once.
fn login_page(state: &StandInState, q: &AuthorizeQuery, client_id: &str) -> Response {
    let mut rows = String::new();
    for p in read(&state.professionals).iter() {
        let mut target = match Url::parse(&format!("{}/protocol/openid-connect/auth", state.issuer))
        {
            Ok(u) => u,
            Err(_) => continue,
        };
        {
            let mut pairs = target.query_pairs_mut();
            pairs.append_pair("response_type", "code");
            pairs.append_pair("client_id", client_id);
            for (k, v) in [
                ("redirect_uri", &q.redirect_uri),
                ("state", &q.state),
                ("scope", &q.scope),
                ("acr_values", &q.acr_values),
                ("code_challenge", &q.code_challenge),
                ("code_challenge_method", &q.code_challenge_method),
            ] {
                if let Some(v) = v {
                    pairs.append_pair(k, v);
                }
            }
            pairs.append_pair("login_hint", &p.idnat);
        }
        rows.push_str(&format!(
            "<li><a href=\"{}\"><strong>{}</strong><span>IdNat {} · {}</span></a></li>\n",
            html_escape(target.as_str()),
            html_escape(&p.name),
            html_escape(&p.idnat),
            html_escape(&p.mailboxes.join(", ")),
        ));
    }
    let page = format!(
        r#"<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8"><title>Pro Santé Connect (bac à sable)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;color:#1d2430}}
h1{{font-size:1.3rem}}ul{{list-style:none;padding:0}}li a{{display:block;border:1px solid #ccd;border-radius:.4rem;padding:.7rem 1rem;margin:.5rem 0;text-decoration:none;color:inherit}}
li a:hover{{background:#eef4fb}}span{{display:block;color:#556;font-size:.85rem}}p.note{{color:#a21515;font-size:.85rem}}</style></head>
<body><h1>Pro Santé Connect — stand-in</h1><p>Application <code>{client}</code> asks to act for a professional. Choose who you are:</p>
<ul>{rows}</ul><p class="note">Sandbox only: no card, no e-CPS, anyone can be anyone.</p></body></html>"#,
        client = html_escape(client_id),
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

/// The authorization endpoint. `login_hint` (an IdNat or a known mailbox address) is
/// approved at once; without one, the configured login is, unless the stand-in is
/// interactive, which shows a page to pick a professional. PKCE S256 is honoured when
/// the client sends a challenge (`plain` is refused).
async fn authorize(State(state): Shared, Query(q): Query<AuthorizeQuery>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let (Some("code"), Some(client_id), Some(redirect)) = (
        q.response_type.as_deref(),
        q.client_id.clone(),
        q.redirect_uri.clone(),
    ) else {
        return (
            StatusCode::BAD_REQUEST,
            "response_type=code, client_id and redirect_uri are required",
        )
            .into_response();
    };
    let Ok(mut target) = Url::parse(&redirect) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let challenge = match (
        q.code_challenge.as_deref(),
        q.code_challenge_method.as_deref(),
    ) {
        (None, _) => None,
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => Some(c.to_owned()),
        (Some(_), Some("S256")) => {
            return (
                StatusCode::BAD_REQUEST,
                "code_challenge must be 43 to 128 characters",
            )
                .into_response();
        }
        (Some(_), _) => {
            return (
                StatusCode::BAD_REQUEST,
                "code_challenge_method must be S256",
            )
                .into_response();
        }
    };
    let interactive = state.interactive.load(Ordering::SeqCst);
    let idnat = match q
        .login_hint
        .as_deref()
        .and_then(|h| resolve_login(&state, h))
    {
        Some(idnat) => idnat,
        None if interactive => return login_page(&state, &q, &client_id),
        None => lock(&state.login).clone(),
    };
    let code = format!("{:032x}", rand::random::<u128>());
    lock(&state.codes).insert(
        code.clone(),
        CodeGrant {
            idnat,
            client_id,
            redirect_uri: redirect,
            challenge,
        },
    );
    {
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &q.state {
            pairs.append_pair("state", s);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, target.to_string())]).into_response()
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

/// `authorization_code` (a code from `authorize`, once, same redirect URI, PKCE verifier
/// when a challenge was given) and `refresh_token` (as Thunderbird does on its next
/// start).
async fn token(State(state): Shared, Form(form): Form<TokenForm>) -> Response {
    if state.down.load(Ordering::SeqCst) {
        return unavailable();
    }
    let bad =
        |error: &str| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    let (idnat, client_id) = match form.grant_type.as_deref() {
        Some("authorization_code") => {
            let Some(grant) = form.code.and_then(|c| lock(&state.codes).remove(&c)) else {
                return bad("invalid_grant");
            };
            if form.redirect_uri.as_deref() != Some(grant.redirect_uri.as_str()) {
                return bad("invalid_grant");
            }
            if let Some(challenge) = &grant.challenge {
                let Some(verifier) = form.code_verifier.as_deref() else {
                    return bad("invalid_grant");
                };
                let digest = sha2::Sha256::digest(verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest) != *challenge {
                    return bad("invalid_grant");
                }
            }
            (grant.idnat, grant.client_id)
        }
        Some("refresh_token") => {
            let Some(found) = form
                .refresh_token
                .and_then(|r| lock(&state.refresh).get(&r).cloned())
            else {
                return bad("invalid_grant");
            };
            found
        }
        _ => return bad("unsupported_grant_type"),
    };
    let spec = TokenSpec::valid(&idnat).with_azp(&client_id);
    let token = state.mint(&spec);
    let refresh = format!("{:032x}", rand::random::<u128>());
    lock(&state.refresh).insert(refresh.clone(), (idnat, client_id));
    Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": spec.lifetime.as_secs(),
        "refresh_token": refresh,
        "refresh_expires_in": 1800,
        "scope": "openid scope_all",
    }))
    .into_response()
}

#[derive(Deserialize)]
struct DevTokenForm {
    idnat: Option<String>,
}

/// `POST {issuer}/dev/token`: a good token for `idnat`, for `mssante dev token`.
async fn dev_token(
    State(state): Shared,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    Form(form): Form<DevTokenForm>,
) -> Response {
    if !state.dev_mint.load(Ordering::SeqCst) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !peer.ip().is_loopback() {
        return (StatusCode::FORBIDDEN, "loopback clients only").into_response();
    }
    let Some(idnat) = form.idnat.filter(|i| !i.trim().is_empty()) else {
        return (StatusCode::BAD_REQUEST, "idnat is required").into_response();
    };
    let spec = TokenSpec::valid(idnat.trim());
    Json(json!({
        "access_token": state.mint(&spec),
        "token_type": "Bearer",
        "expires_in": spec.lifetime.as_secs(),
    }))
    .into_response()
}
