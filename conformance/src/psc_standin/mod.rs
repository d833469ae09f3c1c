//! A Pro Santé Connect stand-in: the parts of the `esante-wallet` Keycloak realm that the
//! server talks to (discovery on both paths, JWKS, RFC 7662 introspection), on a loopback
//! port, plus a mint for good and deliberately bad access tokens.
//!
//! Tests, the `mssante dev` sandbox and the conformance suite use it so that every
//! refusal rule is exercised against real HTTP and real signatures.
//!
//! Here, the running stand-in and the knobs tests turn; the keys and the mint are in
//! [`keys`], the OpenID Connect endpoints in [`oidc`], the authorization endpoint and its
//! login page in [`login`].

mod keys;
mod login;
mod oidc;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

pub use keys::{Flaw, TokenSpec};
use keys::{Keys, SigningKey};

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

impl StandInState {
    fn mint(&self, spec: &TokenSpec) -> String {
        read(&self.keys).mint(&self.issuer, spec)
    }
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

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
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
        let keys = tokio::task::spawn_blocking(Keys::generate)
            .await
            .map_err(std::io::Error::other)??;
        let state = Arc::new(StandInState {
            issuer: format!("http://{addr}{REALM_PATH}"),
            keys: RwLock::new(keys),
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
        let router = oidc::routes()
            .merge(login::routes())
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
        *write(&self.state.professionals) = professionals;
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
        write(&self.state.keys).publish(key);
        Ok(kid)
    }

    /// Stops publishing the key `kid`, as PSC does when it retires or revokes one. The key
    /// new tokens are signed with cannot be withdrawn; says whether a key was.
    pub fn withdraw_key(&self, kid: &str) -> bool {
        write(&self.state.keys).withdraw(kid)
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
