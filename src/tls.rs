//! rustls configurations: TLS 1.2 and 1.3 only, forward-secret AEAD suites, and a client
//! certificate requested but not required (PSC users have none; applications do).
//!
//! Listeners take `TlsSource::current()` for every accepted connection, so a reload
//! (SIGHUP: new server certificate) or a CRL refresh applies to new connections while
//! established ones keep the configuration they started with.
//!
//! Client-certificate refusals: rustls aborts the handshake when a presented certificate
//! is expired, revoked, from a foreign CA or not for client authentication (we keep it that
//! way: a client that shows a bad certificate gets a TLS alert naming the problem rather
//! than a session without identity). The verifier is wrapped so that each refusal is
//! logged with the certificate's subject and counted; the protocol layer, which knows the
//! peer address, turns the handshake error into an audit row with `handshake_refusal`.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use rustls::client::WebPkiServerVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::certificate::{self, CertificateError, CertificateIdentity, Revocations};
use crate::config::TlsConfig;

/// A log filter directive for rustls's ClientHello parser. It warns on every handshake
/// whose SNI holds an IP address (clients configured with the server's address do that;
/// the name is ignored and the handshake goes on) and on the two other SNI oddities it
/// parses past or refuses. None of it is something an operator can act on, and a
/// handshake that does fail is still logged by the listener with rustls's error.
pub const QUIET_SNI_WARNINGS: &str = "rustls::msgs::handshake=error";

/// A CRL larger than this is refused (IGC-Santé CRLs are a few MiB at most).
const MAX_CRL_SIZE: usize = 64 * 1024 * 1024;
/// How long one CRL download may take.
const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read the private key from {path}: {reason}")]
    PrivateKey { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
    #[error("certificate revocation list {source_name}: {reason}")]
    Crl { source_name: String, reason: String },
    #[error("{0}")]
    CrlRefresh(String),
}

pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificates {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificates {
            path: path.display().to_string(),
            reason: "no certificate found".into(),
        });
    }
    Ok(certs)
}

pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::PrivateKey {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// The provider with only forward-secret AEAD suites (all of TLS 1.3's, ECDHE+GCM/ChaCha
/// for 1.2).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20"))
        }
    });
    Arc::new(p)
}

pub fn root_store(paths: &[impl AsRef<Path>]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for p in paths {
        for cert in load_certificates(p.as_ref())? {
            roots.add(cert)?;
        }
    }
    Ok(roots)
}

/// The CRLs in force: what rustls checks during the handshake, and the same entries as a
/// lookup table for `identify_checked`.
#[derive(Debug, Clone, Default)]
pub struct CrlSet {
    ders: Vec<CertificateRevocationListDer<'static>>,
    revocations: Revocations,
    /// The earliest nextUpdate among these CRLs.
    next_update: Option<DateTime<Utc>>,
}

impl CrlSet {
    /// Parses one CRL source's bytes: PEM (`X509 CRL`, several allowed) or a single DER.
    /// Anything unparsable is refused here, before it could reach a verifier.
    pub fn parse(source_name: &str, bytes: &[u8]) -> Result<Self, TlsError> {
        let crl_error = |reason: String| TlsError::Crl {
            source_name: source_name.to_owned(),
            reason,
        };
        let ders: Vec<CertificateRevocationListDer<'static>> =
            if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
                CertificateRevocationListDer::pem_slice_iter(bytes)
                    .collect::<Result<_, _>>()
                    .map_err(|e| crl_error(e.to_string()))?
            } else {
                vec![CertificateRevocationListDer::from(bytes.to_vec())]
            };
        if ders.is_empty() {
            return Err(crl_error("no CRL found".into()));
        }
        let mut revocations = Revocations::new();
        let mut next_update: Option<DateTime<Utc>> = None;
        for der in &ders {
            let next = revocations
                .add_crl(der)
                .map_err(|_| crl_error("not a valid X.509 CRL".into()))?;
            next_update = match (next_update, next) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(Self {
            ders,
            revocations,
            next_update,
        })
    }

    fn extend(&mut self, other: &CrlSet) {
        self.next_update = match (self.next_update, other.next_update) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.ders.extend(other.ders.iter().cloned());
        self.revocations.merge(&other.revocations);
    }

    pub fn revocations(&self) -> &Revocations {
        &self.revocations
    }

    pub fn is_empty(&self) -> bool {
        self.ders.is_empty()
    }

    /// The earliest nextUpdate among these CRLs (for the freshness metric).
    pub fn next_update(&self) -> Option<DateTime<Utc>> {
        self.next_update
    }
}

/// Reads the CRLs that are local files (URLs need `TlsSource`, which fetches them).
pub fn load_file_crls(sources: &[String]) -> Result<CrlSet, TlsError> {
    let mut set = CrlSet::default();
    for source in sources {
        if source.contains("://") {
            return Err(TlsError::Crl {
                source_name: source.clone(),
                reason: "a CRL URL is fetched by the running server (TlsSource), not here".into(),
            });
        }
        set.extend(&read_crl_file(source)?);
    }
    Ok(set)
}

fn read_crl_file(source: &str) -> Result<CrlSet, TlsError> {
    let bytes = std::fs::read(source).map_err(|e| TlsError::Crl {
        source_name: source.to_owned(),
        reason: e.to_string(),
    })?;
    if bytes.len() > MAX_CRL_SIZE {
        return Err(TlsError::Crl {
            source_name: source.to_owned(),
            reason: format!("larger than {MAX_CRL_SIZE} bytes"),
        });
    }
    CrlSet::parse(source, &bytes)
}

async fn fetch_crl(http: &reqwest::Client, url: &str) -> Result<CrlSet, TlsError> {
    let crl_error = |reason: String| TlsError::Crl {
        source_name: url.to_owned(),
        reason,
    };
    let mut response = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .map_err(|e| crl_error(e.to_string()))?;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| crl_error(e.to_string()))?
    {
        if body.len() + chunk.len() > MAX_CRL_SIZE {
            return Err(crl_error(format!("larger than {MAX_CRL_SIZE} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    CrlSet::parse(url, &body)
}

/// The server side of every listener, with the CRLs that are local files.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<ServerConfig>, TlsError> {
    let crls = load_file_crls(&tls.crls)?;
    server_config_with_crls(tls, &crls, &Arc::new(AtomicU64::new(0)))
}

/// The server side with these CRLs; `refused` counts client certificates refused at the
/// handshake.
fn server_config_with_crls(
    tls: &TlsConfig,
    crls: &CrlSet,
    refused: &Arc<AtomicU64>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let chain = load_certificates(&tls.certificate)?;
    let key = load_private_key(&tls.private_key)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = if tls.client_ca.is_empty() {
        builder.with_no_client_auth()
    } else {
        let roots = root_store(&tls.client_ca)?;
        let mut verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .allow_unauthenticated();
        if !crls.is_empty() {
            // The configured CRLs are those of the CAs that issue end entities; a CA
            // without a configured CRL is not revocation-checked rather than locking out
            // every certificate it issued.
            verifier = verifier
                .with_crls(crls.ders.iter().cloned())
                .only_check_end_entity_revocation()
                .allow_unknown_revocation_status();
        }
        let inner = verifier
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
        builder.with_client_cert_verifier(Arc::new(AuditingVerifier {
            inner,
            refused: refused.clone(),
        }))
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// The client side for operator-to-operator SMTP: presents our certificate and trusts the
/// `client_ca` authorities (IGC-Santé) for the peer's server certificate.
pub fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, TlsError> {
    if tls.client_ca.is_empty() {
        return Err(TlsError::Verifier(
            "tls.client_ca is empty: no authority to verify other operators' servers".into(),
        ));
    }
    let provider = provider();
    let roots = Arc::new(root_store(&tls.client_ca)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| TlsError::Verifier(e.to_string()))?;
    let chain = load_certificates(&tls.certificate)?;
    let key = load_private_key(&tls.private_key)?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The classified reason when an accept failed because rustls refused the client's
/// certificate (the error `tokio_rustls::TlsAcceptor::accept` returned). The protocol
/// layer records it with the peer address: "client certificate refused: <reason>".
pub fn handshake_refusal(error: &std::io::Error) -> Option<CertificateError> {
    match error.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::InvalidCertificate(e) => Some(CertificateError::from_rustls(e)),
        _ => None,
    }
}

/// What a connection's client certificate amounts to after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientCertificate {
    /// None presented: the client authenticates with a PSC token, or not at all.
    Absent,
    /// Presented, verified by the handshake, and an AUTH_CLI identity: offer `EXTERNAL`.
    Verified(CertificateIdentity),
    /// Presented and verified by the handshake, but refused by `identify` (no clientAuth
    /// EKU, dates by the server clock, revoked by a CRL refreshed since): the session goes
    /// on without certificate identity and the refusal is audited.
    Refused(CertificateError),
}

impl ClientCertificate {
    pub fn identity(&self) -> Option<&CertificateIdentity> {
        match self {
            ClientCertificate::Verified(id) => Some(id),
            _ => None,
        }
    }

    /// The audit reason for a refusal, in the same words as a handshake refusal.
    pub fn refusal(&self) -> Option<String> {
        match self {
            ClientCertificate::Refused(e) => Some(refusal_reason(e)),
            _ => None,
        }
    }
}

/// "client certificate refused: <reason>", the audit trail's wording for both refusal paths.
pub fn refusal_reason(error: &CertificateError) -> String {
    format!("client certificate refused: {error}")
}

/// WebPkiClientVerifier plus a log line and a counter per refused certificate. The peer
/// address is not known here (rustls does not pass it), hence `handshake_refusal` for the
/// audit row.
#[derive(Debug)]
struct AuditingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    refused: Arc<AtomicU64>,
}

impl ClientCertVerifier for AuditingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let result = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        if let Err(e) = &result {
            self.refused.fetch_add(1, Ordering::Relaxed);
            let reason = match e {
                rustls::Error::InvalidCertificate(c) => {
                    CertificateError::from_rustls(c).to_string()
                }
                other => other.to_string(),
            };
            let subject = x509_parser::parse_x509_certificate(end_entity)
                .map(|(_, c)| certificate::dn_string(c.subject()))
                .unwrap_or_else(|_| "<unparsable>".into());
            tracing::warn!(%subject, %reason, "client certificate refused at the handshake");
        }
        result
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server certificate in force in a `TlsSource`, for the listeners with a TLS policy
/// of their own (autoconfig, admin): each handshake takes the certificate the IMAP and
/// SMTP listeners present at that moment, so a SIGHUP reload reaches them too.
#[derive(Debug)]
pub struct CertificateInForce(pub Arc<TlsSource>);

impl rustls::server::ResolvesServerCert for CertificateInForce {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0.current().cert_resolver.resolve(hello)
    }
}

/// The server configuration in force, swapped whole on reload or CRL refresh.
struct State {
    config: Arc<ServerConfig>,
    /// The last good CRL of each `tls.crls` source, in the same order.
    crls: Vec<CrlSet>,
    /// When each of `crls` was fetched.
    fetched: Vec<DateTime<Utc>>,
    merged: Arc<CrlSet>,
}

/// Where listeners get their TLS configuration: loaded at start, reloaded on SIGHUP
/// (server certificate, key, client CAs), CRLs refreshed every `tls.crl_refresh`.
pub struct TlsSource {
    tls: TlsConfig,
    /// Only built when a CRL source is a URL.
    http: Option<reqwest::Client>,
    state: RwLock<State>,
    /// Held while a reload or refresh rebuilds and swaps the configuration, so that one
    /// cannot install a configuration built from what the other just replaced.
    update: Mutex<()>,
    refused: Arc<AtomicU64>,
    /// Dates a CRL's nextUpdate is compared with.
    clock: SharedClock,
}

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSource")
            .field("certificate", &self.tls.certificate)
            .field("crls", &self.tls.crls)
            .finish_non_exhaustive()
    }
}

impl TlsSource {
    /// Loads everything; fails if any CRL cannot be had, because starting without a CRL the
    /// operator configured would silently accept revoked certificates.
    pub async fn load(tls: &TlsConfig, clock: SharedClock) -> Result<Arc<Self>, TlsError> {
        let http = if tls.crls.iter().any(|s| s.contains("://")) {
            Some(
                reqwest::Client::builder()
                    .timeout(CRL_FETCH_TIMEOUT)
                    .build()
                    .map_err(|e| TlsError::Verifier(format!("HTTP client for CRLs: {e}")))?,
            )
        } else {
            None
        };
        let mut crls = Vec::with_capacity(tls.crls.len());
        for source in &tls.crls {
            let set = fetch_source(http.as_ref(), source).await?;
            warn_if_stale(source, &set, clock.now());
            crls.push(set);
        }
        let merged = Arc::new(merge(&crls));
        let refused = Arc::new(AtomicU64::new(0));
        let config = server_config_with_crls(tls, &merged, &refused)?;
        Ok(Arc::new(Self {
            tls: tls.clone(),
            http,
            state: RwLock::new(State {
                config,
                fetched: vec![clock.now(); crls.len()],
                crls,
                merged,
            }),
            update: Mutex::new(()),
            refused,
            clock,
        }))
    }

    /// The configuration for a connection being accepted now.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .clone()
    }

    /// The CRLs in force.
    pub fn crls(&self) -> Arc<CrlSet> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .merged
            .clone()
    }

    /// When the oldest of the CRLs in force was fetched (a source whose refresh fails
    /// keeps its CRL, and this date); None without CRLs.
    pub fn crls_fetched_at(&self) -> Option<DateTime<Utc>> {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .fetched
            .iter()
            .min()
            .copied()
    }

    /// The identity of a verified client chain, also checked against the CRLs in force.
    pub fn identify(
        &self,
        chain: &[CertificateDer<'_>],
        now: DateTime<Utc>,
    ) -> Result<CertificateIdentity, CertificateError> {
        certificate::identify_checked(chain, now, self.crls().revocations())
    }

    /// The client certificate of an accepted connection (`tls_stream.get_ref().1`).
    pub fn client_certificate(
        &self,
        connection: &rustls::ServerConnection,
        now: DateTime<Utc>,
    ) -> ClientCertificate {
        match connection.peer_certificates() {
            None | Some([]) => ClientCertificate::Absent,
            Some(chain) => match self.identify(chain, now) {
                Ok(id) => ClientCertificate::Verified(id),
                Err(e) => ClientCertificate::Refused(e),
            },
        }
    }

    /// How many client certificates the handshake refused since start.
    pub fn refused_count(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Reads the server certificate, key and client CAs again (SIGHUP). On error the
    /// previous configuration stays in force. Established connections are untouched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let merged = self.crls();
        let config = server_config_with_crls(&self.tls, &merged, &self.refused)?;
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .config = config;
        Ok(())
    }

    /// Reads every CRL source again. A source that fails (unreachable, malformed) keeps its
    /// previous CRL; the others are updated. Returns an error naming the failed sources.
    pub async fn refresh_crls(&self) -> Result<(), TlsError> {
        let mut fresh = Vec::with_capacity(self.tls.crls.len());
        let mut failures = Vec::new();
        for source in &self.tls.crls {
            match fetch_source(self.http.as_ref(), source).await {
                Ok(set) => {
                    warn_if_stale(source, &set, self.clock.now());
                    fresh.push(Some(set));
                }
                Err(e) => {
                    tracing::warn!(source = %source, error = %e, "CRL refresh failed; keeping the previous CRL");
                    failures.push(e.to_string());
                    fresh.push(None);
                }
            }
        }
        if !failures.is_empty() && fresh.iter().all(Option::is_none) {
            return Err(TlsError::CrlRefresh(failures.join("; ")));
        }
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let (previous, previously_fetched) = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            (state.crls.clone(), state.fetched.clone())
        };
        let now = self.clock.now();
        let (crls, fetched): (Vec<CrlSet>, Vec<DateTime<Utc>>) = fresh
            .into_iter()
            .zip(previous.into_iter().zip(previously_fetched))
            .map(|(new, (old, old_at))| match new {
                Some(new) => (new, now),
                None => (old, old_at),
            })
            .unzip();
        let merged = Arc::new(merge(&crls));
        let config = server_config_with_crls(&self.tls, &merged, &self.refused)?;
        {
            let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
            state.config = config;
            state.crls = crls;
            state.fetched = fetched;
            state.merged = merged;
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(TlsError::CrlRefresh(failures.join("; ")))
        }
    }

    /// Refreshes the CRLs every `tls.crl_refresh` until `shutdown`.
    pub fn spawn_crl_refresh(self: &Arc<Self>, shutdown: CancellationToken, tasks: &TaskTracker) {
        let period = self.tls.crl_refresh.0;
        if self.tls.crls.is_empty() || period.is_zero() {
            return;
        }
        let source = self.clone();
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {
                        if source.refresh_crls().await.is_ok() {
                            tracing::debug!("CRLs refreshed");
                        }
                    }
                }
            }
        });
    }
}

async fn fetch_source(http: Option<&reqwest::Client>, source: &str) -> Result<CrlSet, TlsError> {
    if source.contains("://") {
        let http = http.ok_or_else(|| TlsError::Crl {
            source_name: source.to_owned(),
            reason: "no HTTP client".into(),
        })?;
        fetch_crl(http, source).await
    } else {
        // A national CRL is megabytes of DER to parse: keep it off the async workers.
        let owned = source.to_owned();
        tokio::task::spawn_blocking(move || read_crl_file(&owned))
            .await
            .map_err(|e| TlsError::Crl {
                source_name: source.to_owned(),
                reason: e.to_string(),
            })?
    }
}

/// rustls does not refuse a CRL past its nextUpdate (a late CRL still lists what it
/// lists); the operator should still know the publisher stopped refreshing it.
fn warn_if_stale(source: &str, set: &CrlSet, now: DateTime<Utc>) {
    if let Some(next) = set.next_update
        && next < now
    {
        tracing::warn!(source = %source, next_update = %next, "CRL is past its nextUpdate");
    }
}

fn merge(sets: &[CrlSet]) -> CrlSet {
    let mut merged = CrlSet::default();
    for s in sets {
        merged.extend(s);
    }
    merged
}
