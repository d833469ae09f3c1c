//! Client certificates over real TLS on loopback: which certificates give an identity,
//! which are refused and why, CRL refresh, server-certificate reload, protocol versions,
//! and binding certificates to applicative mailboxes from the CLI.

mod common;

use common::cli::mssante;
use common::config::Setup;
use common::tools;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mssante::auth::certificate::{
    self, CertificateError, CertificateIdentity, Revocations, identify, identity_from_pem_file,
};
use mssante::config::{HumanDuration, TlsConfig};
use mssante::tls::{self, ClientCertificate, TlsSource, handshake_refusal};
use mssante_conformance::pki;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector, client};

const APP_SUBJECT: &str =
    "CN=SIL-LABO-TEST,OU=1750012345,O=LABORATOIRE DE BIOLOGIE TEST,ST=Paris (75),C=FR";
const ISSUER: &str = "CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,OU=IGC-SANTE TEST,OU=0002 187512751,O=ASIP-SANTE,C=FR";
/// Bound on every wait, so a broken server fails the test instead of hanging it.
const WAIT: Duration = Duration::from_secs(20);

fn fresh_pki() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    pki::generate(dir.path()).unwrap();
    dir
}

fn tls_config(dir: &Path, crls: Vec<String>) -> TlsConfig {
    TlsConfig {
        certificate: dir.join("server.crt"),
        private_key: dir.join("server.key"),
        client_ca: vec![dir.join("ca.crt")],
        crls,
        crl_refresh: HumanDuration(Duration::from_secs(3600)),
    }
}

fn crl_path(dir: &Path) -> String {
    dir.join("organisations.crl").to_string_lossy().into_owned()
}

/// What the server saw for one connection.
#[derive(Debug)]
enum Seen {
    /// Handshake done; the identity if a certificate was presented.
    Accepted(Option<Result<CertificateIdentity, CertificateError>>),
    /// Handshake failed.
    Refused(std::io::Error),
}

type ConfigFn = Arc<dyn Fn() -> Arc<ServerConfig> + Send + Sync>;
type IdentifyFn = Arc<
    dyn Fn(&rustls::ServerConnection) -> Option<Result<CertificateIdentity, CertificateError>>
        + Send
        + Sync,
>;

/// A minimal TLS server: greets with `hello <CN or none>` then echoes lines.
/// An acceptor serving `config` that identifies each client certificate (dates and EKU
/// checked now, nothing else).
async fn identifying_acceptor(
    config: Arc<rustls::ServerConfig>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    acceptor(
        Arc::new(move || config.clone()),
        Arc::new(|conn: &rustls::ServerConnection| {
            conn.peer_certificates()
                .map(|chain| identify(chain, mssante::clock::SystemClock::now_utc()))
        }),
    )
    .await
}

async fn acceptor(
    config: ConfigFn,
    identify: IdentifyFn,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = TlsAcceptor::from(config());
            let tx = tx.clone();
            let identify = identify.clone();
            tokio::spawn(async move {
                let stream = match acceptor.accept(tcp).await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Seen::Refused(e));
                        return;
                    }
                };
                let identity = identify(stream.get_ref().1);
                let greeting = match &identity {
                    Some(Ok(id)) => id.common_name.clone().unwrap_or_default(),
                    _ => "none".into(),
                };
                let _ = tx.send(Seen::Accepted(identity));
                let (r, mut w) = tokio::io::split(stream);
                if w.write_all(format!("hello {greeting}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
                let mut lines = BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if w.write_all(format!("{line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn source_acceptor(source: Arc<TlsSource>) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let s = source.clone();
    acceptor(
        Arc::new(move || s.current()),
        Arc::new(move |conn| {
            match source.client_certificate(conn, mssante::clock::SystemClock::now_utc()) {
                ClientCertificate::Absent => None,
                ClientCertificate::Verified(id) => Some(Ok(id)),
                ClientCertificate::Refused(e) => Some(Err(e)),
            }
        }),
    )
    .await
}

fn client_config(dir: &Path, cert: Option<&str>) -> Arc<ClientConfig> {
    common::smtp::client_config(dir, cert, rustls::DEFAULT_VERSIONS)
}

async fn connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
) -> std::io::Result<client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(config)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// Connects with `cert` and returns what the server saw and the greeting the client read
/// (None when the connection failed).
async fn attempt(
    addr: SocketAddr,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    dir: &Path,
    cert: Option<&str>,
) -> (Seen, Option<String>) {
    attempt_with(addr, rx, client_config(dir, cert)).await
}

async fn attempt_with(
    addr: SocketAddr,
    rx: &mut mpsc::UnboundedReceiver<Seen>,
    config: Arc<ClientConfig>,
) -> (Seen, Option<String>) {
    let greeting = async {
        let stream = connect(addr, config).await.ok()?;
        let mut lines = BufReader::new(stream).lines();
        lines.next_line().await.ok().flatten()
    };
    let greeting = tokio::time::timeout(WAIT, greeting).await.unwrap();
    let seen = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    (seen, greeting)
}

fn accepted_identity(seen: Seen) -> CertificateIdentity {
    match seen {
        Seen::Accepted(Some(Ok(id))) => id,
        other => panic!("expected an identity, got {other:?}"),
    }
}

fn refusal(seen: Seen) -> CertificateError {
    match seen {
        Seen::Refused(e) => handshake_refusal(&e)
            .unwrap_or_else(|| panic!("handshake failed for another reason: {e}")),
        other => panic!("expected a handshake refusal, got {other:?}"),
    }
}

fn first_der(path: &Path) -> CertificateDer<'static> {
    tls::load_certificates(path).unwrap().remove(0)
}

#[tokio::test]
async fn auth_cli_certificate_gives_its_identity() {
    let dir = fresh_pki();
    let source = TlsSource::load(
        &tls_config(dir.path(), vec![crl_path(dir.path())]),
        mssante::clock::system(),
    )
    .await
    .unwrap();
    let (addr, mut rx) = source_acceptor(source).await;

    let (seen, greeting) = attempt(addr, &mut rx, dir.path(), Some("app")).await;
    let id = accepted_identity(seen);
    assert_eq!(greeting.as_deref(), Some("hello SIL-LABO-TEST"));
    assert_eq!(id.subject, APP_SUBJECT);
    assert_eq!(id.issuer, ISSUER);
    assert_eq!(id.common_name.as_deref(), Some("SIL-LABO-TEST"));
    assert_eq!(id.organisational_unit.as_deref(), Some("1750012345"));
    let der = first_der(&dir.path().join("app.crt"));
    assert_eq!(id.fingerprint, hex::encode(Sha256::digest(der.as_ref())));
    let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(
        id.serial,
        parsed
            .raw_serial_as_string()
            .replace(':', "")
            .trim_start_matches("00")
    );

    let (seen, greeting) = attempt(addr, &mut rx, dir.path(), Some("app2")).await;
    let id2 = accepted_identity(seen);
    assert_eq!(greeting.as_deref(), Some("hello DPI-HOPITAL-TEST"));
    assert_eq!(id2.organisational_unit.as_deref(), Some("1750098765"));
    assert_ne!(id2.fingerprint, id.fingerprint);
}

#[tokio::test]
async fn no_certificate_is_accepted_without_identity() {
    let dir = fresh_pki();
    let source = TlsSource::load(
        &tls_config(dir.path(), vec![crl_path(dir.path())]),
        mssante::clock::system(),
    )
    .await
    .unwrap();
    let (addr, mut rx) = source_acceptor(source).await;
    let (seen, greeting) = attempt(addr, &mut rx, dir.path(), None).await;
    assert!(matches!(seen, Seen::Accepted(None)), "{seen:?}");
    assert_eq!(greeting.as_deref(), Some("hello none"));
}

#[tokio::test]
async fn bad_certificates_are_refused_at_the_handshake_each_for_its_reason() {
    let dir = fresh_pki();
    let source = TlsSource::load(
        &tls_config(dir.path(), vec![crl_path(dir.path())]),
        mssante::clock::system(),
    )
    .await
    .unwrap();
    let (addr, mut rx) = source_acceptor(source.clone()).await;

    let tls12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    for versions in [rustls::DEFAULT_VERSIONS, tls12] {
        for (name, reason) in [
            ("expired", CertificateError::Expired),
            ("revoked", CertificateError::Revoked),
            ("foreign", CertificateError::UnknownIssuer),
            ("server-only", CertificateError::NotClientAuth),
        ] {
            let config = common::smtp::client_config(dir.path(), Some(name), versions);
            let (seen, greeting) = attempt_with(addr, &mut rx, config).await;
            assert_eq!(refusal(seen), reason, "{name} {versions:?}");
            assert_eq!(greeting, None, "{name} must not get a session");
        }
    }
    let config = common::smtp::client_config(dir.path(), Some("app"), tls12);
    let (seen, _) = attempt_with(addr, &mut rx, config).await;
    assert_eq!(accepted_identity(seen).subject, APP_SUBJECT);
    assert_eq!(source.refused_count(), 8);
    assert_eq!(CertificateError::Expired.to_string(), "certificate expired");
    assert_eq!(CertificateError::Revoked.to_string(), "certificate revoked");
}

#[tokio::test]
async fn plain_server_config_enforces_file_crls() {
    let dir = fresh_pki();
    let d = dir.path().to_path_buf();
    // Without CRLs the revoked certificate is just another valid one…
    let plain = tls::server_config(&tls_config(&d, vec![])).unwrap();
    let (addr, mut rx) = identifying_acceptor(plain).await;
    let (seen, _) = attempt(addr, &mut rx, &d, Some("revoked")).await;
    assert_eq!(
        accepted_identity(seen).common_name.as_deref(),
        Some("SIL-REVOQUE-TEST")
    );

    // …with the CRL it is refused, and the others still pass.
    let with_crl = tls::server_config(&tls_config(&d, vec![crl_path(&d)])).unwrap();
    let (addr, mut rx) = identifying_acceptor(with_crl).await;
    let (seen, _) = attempt(addr, &mut rx, &d, Some("revoked")).await;
    assert_eq!(refusal(seen), CertificateError::Revoked);
    let (seen, _) = attempt(addr, &mut rx, &d, Some("app")).await;
    assert_eq!(accepted_identity(seen).subject, APP_SUBJECT);
}

#[test]
fn identify_checks_dates_eku_and_revocation_itself() {
    let dir = fresh_pki();
    let d = dir.path();
    let chain = |name: &str| tls::load_certificates(&d.join(format!("{name}.crt"))).unwrap();
    let now = mssante::clock::SystemClock::now_utc();

    assert_eq!(identify(&chain("app"), now).unwrap().subject, APP_SUBJECT);
    assert_eq!(
        identify(&chain("expired"), now),
        Err(CertificateError::Expired)
    );
    assert_eq!(
        identify(&chain("app"), now - chrono::Duration::days(30)),
        Err(CertificateError::NotYetValid)
    );
    assert_eq!(
        identify(&chain("app"), now + chrono::Duration::days(3700)),
        Err(CertificateError::Expired)
    );
    assert_eq!(
        identify(&chain("server-only"), now),
        Err(CertificateError::NotClientAuth)
    );
    assert_eq!(identify(&[], now), Err(CertificateError::Missing));
    assert_eq!(
        identify(
            &[CertificateDer::from(vec![0x30, 0x03, 0x01, 0x01, 0xff])],
            now
        ),
        Err(CertificateError::Malformed)
    );

    let crls = tls::load_file_crls(&[crl_path(d)]).unwrap();
    assert_eq!(crls.revocations().len(), 1);
    assert_eq!(
        certificate::identify_checked(&chain("revoked"), now, crls.revocations()),
        Err(CertificateError::Revoked)
    );
    assert!(certificate::identify_checked(&chain("app"), now, crls.revocations()).is_ok());
    assert!(certificate::identify_checked(&chain("revoked"), now, &Revocations::new()).is_ok());

    let messages: Vec<String> = [
        CertificateError::Expired,
        CertificateError::NotYetValid,
        CertificateError::NotClientAuth,
        CertificateError::Revoked,
        CertificateError::Malformed,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        messages,
        [
            "certificate expired",
            "certificate not yet valid",
            "not a client-authentication certificate (EKU)",
            "certificate revoked",
            "malformed certificate"
        ]
    );
}

#[test]
fn renewed_certificate_keeps_subject_and_issuer_with_a_new_fingerprint() {
    let dir = fresh_pki();
    let app = identity_from_pem_file(&dir.path().join("app.crt")).unwrap();
    let renewed = identity_from_pem_file(&dir.path().join("app-renewed.crt")).unwrap();
    assert_eq!(app.subject, renewed.subject);
    assert_eq!(app.issuer, renewed.issuer);
    assert_ne!(app.fingerprint, renewed.fingerprint);
    assert_ne!(app.serial, renewed.serial);
    let now = mssante::clock::SystemClock::now_utc();
    let over_tls = identify(
        &tls::load_certificates(&dir.path().join("app-renewed.crt")).unwrap(),
        now,
    )
    .unwrap();
    assert_eq!(over_tls, renewed);
}

/// A clock the test moves.
#[derive(Debug, Clone)]
struct Hands(std::sync::Arc<std::sync::Mutex<chrono::DateTime<chrono::Utc>>>);

impl mssante::clock::Clock for Hands {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        *self.0.lock().unwrap()
    }
}

/// The CRL age on `/metrics` counts from the last successful fetch: a refresh that
/// fails leaves it growing, for the operator's alert.
#[tokio::test]
async fn crls_are_dated_by_their_last_successful_fetch() {
    let dir = fresh_pki();
    let d = dir.path();
    let crl = d.join("live.crl");
    pki::write_crl(d, &[], &crl).unwrap();
    let t0 = mssante::clock::SystemClock::now_utc();
    let hands = Hands(std::sync::Arc::new(std::sync::Mutex::new(t0)));
    let source = TlsSource::load(
        &tls_config(d, vec![crl.to_string_lossy().into_owned()]),
        std::sync::Arc::new(hands.clone()),
    )
    .await
    .unwrap();
    assert_eq!(source.crls_fetched_at(), Some(t0));
    let t1 = t0 + chrono::Duration::hours(1);
    *hands.0.lock().unwrap() = t1;
    source.refresh_crls().await.unwrap();
    assert_eq!(source.crls_fetched_at(), Some(t1));
    std::fs::write(&crl, b"not a CRL").unwrap();
    *hands.0.lock().unwrap() = t1 + chrono::Duration::hours(1);
    assert!(source.refresh_crls().await.is_err());
    assert_eq!(source.crls_fetched_at(), Some(t1));
    let none = TlsSource::load(&tls_config(d, Vec::new()), mssante::clock::system())
        .await
        .unwrap();
    assert_eq!(none.crls_fetched_at(), None);
}

#[tokio::test]
async fn crl_refresh_applies_new_lists_and_keeps_the_previous_one_when_malformed() {
    let dir = fresh_pki();
    let d = dir.path();
    let crl = d.join("live.crl");
    pki::write_crl(d, &[], &crl).unwrap();
    let source = TlsSource::load(
        &tls_config(d, vec![crl.to_string_lossy().into_owned()]),
        mssante::clock::system(),
    )
    .await
    .unwrap();
    let (addr, mut rx) = source_acceptor(source.clone()).await;

    let (seen, _) = attempt(addr, &mut rx, d, Some("revoked")).await;
    assert!(
        matches!(seen, Seen::Accepted(Some(Ok(_)))),
        "not yet revoked: {seen:?}"
    );

    pki::write_crl(d, &["revoked"], &crl).unwrap();
    source.refresh_crls().await.unwrap();
    let (seen, _) = attempt(addr, &mut rx, d, Some("revoked")).await;
    assert_eq!(refusal(seen), CertificateError::Revoked);

    std::fs::write(
        &crl,
        "-----BEGIN X509 CRL-----\nbm90IGEgQ1JM\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = source.refresh_crls().await.unwrap_err();
    assert!(err.to_string().contains("live.crl"), "{err}");
    assert_eq!(source.crls().revocations().len(), 1);
    let (seen, _) = attempt(addr, &mut rx, d, Some("revoked")).await;
    assert_eq!(refusal(seen), CertificateError::Revoked);
    let (seen, _) = attempt(addr, &mut rx, d, Some("app")).await;
    assert_eq!(accepted_identity(seen).subject, APP_SUBJECT);

    std::fs::write(&crl, b"\x30\x82garbage").unwrap();
    assert!(source.refresh_crls().await.is_err());
    assert_eq!(source.crls().revocations().len(), 1);
}

#[tokio::test]
async fn crl_from_a_url_is_fetched_and_a_failed_fetch_keeps_it() {
    let dir = fresh_pki();
    let d = dir.path().to_path_buf();
    let body = Arc::new(std::sync::Mutex::new(Some(
        std::fs::read(d.join("organisations.crl")).unwrap(),
    )));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = body.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                use tokio::io::AsyncReadExt;
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let current = served.lock().unwrap().clone();
            let response = match current {
                Some(b) => {
                    let mut r = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", b.len()).into_bytes();
                    r.extend_from_slice(&b);
                    r
                }
                None => b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec(),
            };
            let _ = tcp.write_all(&response).await;
        }
    });
    let url = format!("http://127.0.0.1:{port}/organisations.crl");
    let source = TlsSource::load(&tls_config(&d, vec![url.clone()]), mssante::clock::system())
        .await
        .unwrap();
    assert_eq!(source.crls().revocations().len(), 1);
    let (addr, mut rx) = source_acceptor(source.clone()).await;
    let (seen, _) = attempt(addr, &mut rx, &d, Some("revoked")).await;
    assert_eq!(refusal(seen), CertificateError::Revoked);

    *body.lock().unwrap() = None;
    let err = source.refresh_crls().await.unwrap_err();
    assert!(err.to_string().contains(&url), "{err}");
    let (seen, _) = attempt(addr, &mut rx, &d, Some("revoked")).await;
    assert_eq!(refusal(seen), CertificateError::Revoked);
}

/// Copies `name`'s certificate and key to the paths the configuration names.
fn install_server_cert(pki_dir: &Path, live: &Path, name: &str) {
    std::fs::copy(pki_dir.join(format!("{name}.crt")), live.join("server.crt")).unwrap();
    std::fs::copy(pki_dir.join(format!("{name}.key")), live.join("server.key")).unwrap();
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_connections_only() {
    let dir = fresh_pki();
    let d = dir.path();
    let live = tempfile::tempdir().unwrap();
    install_server_cert(d, live.path(), "server");
    let mut config = tls_config(d, vec![]);
    config.certificate = live.path().join("server.crt");
    config.private_key = live.path().join("server.key");
    let source = TlsSource::load(&config, mssante::clock::system())
        .await
        .unwrap();
    let (addr, mut rx) = source_acceptor(source.clone()).await;

    let old = connect(addr, client_config(d, Some("app"))).await.unwrap();
    assert_eq!(common::smtp::server_cn(&old), "localhost");
    let mut old = BufReader::new(old);
    let mut line = String::new();
    old.read_line(&mut line).await.unwrap();
    assert_eq!(line, "hello SIL-LABO-TEST\n");
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();

    install_server_cert(d, live.path(), "operator2");
    source.reload().unwrap();
    let new = connect(addr, client_config(d, None)).await.unwrap();
    assert_eq!(common::smtp::server_cn(&new), "operator2.localhost");
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();

    // The connection made before the reload still works.
    old.get_mut().write_all(b"still here\n").await.unwrap();
    line.clear();
    tokio::time::timeout(WAIT, old.read_line(&mut line))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(line, "still here\n");

    // A broken key is refused and the current configuration stays.
    std::fs::write(live.path().join("server.key"), "not a key").unwrap();
    assert!(source.reload().is_err());
    let after = connect(addr, client_config(d, None)).await.unwrap();
    assert_eq!(common::smtp::server_cn(&after), "operator2.localhost");
}

#[tokio::test]
async fn sighup_reloads_the_running_server() {
    let dir = fresh_pki();
    let d = dir.path();
    let live = tempfile::tempdir().unwrap();
    install_server_cert(d, live.path(), "server");
    std::fs::copy(d.join("ca.crt"), live.path().join("ca.crt")).unwrap();
    let config_path = write_config(live.path());
    let config = mssante::config::Config::load(&config_path).unwrap();
    let running = mssante::server::start(config, mssante::clock::system())
        .await
        .unwrap();
    let source = running.context.tls.clone();
    install_server_cert(d, live.path(), "operator2");
    common::reload_by_sighup(&source).await;

    let (addr, _rx) = source_acceptor(source).await;
    let stream = connect(addr, client_config(d, None)).await.unwrap();
    assert_eq!(common::smtp::server_cn(&stream), "operator2.localhost");
    running.stop().await;
}

/// Runs Python's `ssl` client pinned to one protocol version against `addr`; returns its
/// report (`ok TLSv1.2` or `refused …`).
fn python_handshake(addr: SocketAddr, ca: &Path, version: &str, cert: Option<&Path>) -> String {
    let load_cert = match cert {
        Some(c) => format!(
            "ctx.load_cert_chain({:?}, {:?})",
            c.with_extension("crt").to_string_lossy(),
            c.with_extension("key").to_string_lossy()
        ),
        None => String::new(),
    };
    let script = format!(
        r#"
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations({ca:?})
ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
ctx.minimum_version = ssl.TLSVersion.{version}
ctx.maximum_version = ssl.TLSVersion.{version}
{load_cert}
try:
    with socket.create_connection(("127.0.0.1", {port}), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            print("ok", tls.version())
except (ssl.SSLError, OSError) as e:
    print("refused", e)
"#,
        ca = ca.to_string_lossy(),
        port = addr.port(),
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_0_and_1_1_are_refused_and_1_2_accepted() {
    if !tools::available("python3") {
        return;
    }
    let dir = fresh_pki();
    let ca = dir.path().join("ca.crt");
    let source = TlsSource::load(&tls_config(dir.path(), vec![]), mssante::clock::system())
        .await
        .unwrap();
    let (addr, mut rx) = source_acceptor(source).await;

    for version in ["TLSv1", "TLSv1_1"] {
        let (ca, v) = (ca.clone(), version.to_owned());
        let report = tokio::task::spawn_blocking(move || python_handshake(addr, &ca, &v, None))
            .await
            .unwrap();
        assert!(report.starts_with("refused"), "{version}: {report}");
        // The server saw the ClientHello and refused the version itself.
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Seen::Refused(e) => {
                let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
                assert!(
                    matches!(inner, Some(rustls::Error::PeerIncompatible(_))),
                    "{version}: {e:?}"
                );
            }
            other => panic!("{version}: {other:?}"),
        }
    }

    // OpenSSL clients (what most LPS use) get in with 1.2 and 1.3, with or without an
    // AUTH_CLI certificate.
    let app = dir.path().join("app.crt");
    for (version, expected) in [("TLSv1_2", "ok TLSv1.2"), ("TLSv1_3", "ok TLSv1.3")] {
        for cert in [None, Some(app.clone())] {
            let (ca, v, c) = (ca.clone(), version.to_owned(), cert.clone());
            let report =
                tokio::task::spawn_blocking(move || python_handshake(addr, &ca, &v, c.as_deref()))
                    .await
                    .unwrap();
            assert_eq!(report, expected);
            let seen = tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap();
            match (cert, seen) {
                (None, Seen::Accepted(None)) => {}
                (Some(_), Seen::Accepted(Some(Ok(id)))) => {
                    assert_eq!(id.subject, APP_SUBJECT, "{version}")
                }
                (cert, seen) => panic!("{version} {cert:?}: {seen:?}"),
            }
        }
    }
}

#[tokio::test]
async fn client_config_presents_our_certificate_to_another_operator() {
    let dir = fresh_pki();
    let d = dir.path();
    // We are operator2; the peer is the server of `tls_config`.
    let peer = TlsSource::load(&tls_config(d, vec![crl_path(d)]), mssante::clock::system())
        .await
        .unwrap();
    let (addr, mut rx) = source_acceptor(peer).await;
    let mut ours = tls_config(d, vec![]);
    ours.certificate = d.join("operator2.crt");
    ours.private_key = d.join("operator2.key");
    let stream = connect(addr, tls::client_config(&ours).unwrap())
        .await
        .unwrap();
    assert_eq!(common::smtp::server_cn(&stream), "localhost");
    let seen = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    let id = accepted_identity(seen);
    assert_eq!(
        id.subject,
        "CN=operator2.localhost,OU=318751275100038,O=OPERATEUR MSSANTE TEST 2,ST=Paris (75),C=FR"
    );
}

// ---- CLI -------------------------------------------------------------------------------

fn checked_in(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("certs")
        .join(name)
}

/// A configuration with no listener whose certificate, key and client CA are the ones
/// installed in `dir`, or else the checked-in test ones.
fn write_config(dir: &Path) -> PathBuf {
    let live_or_checked_in = |name: &str| {
        let live = dir.join(name);
        if live.exists() {
            live
        } else {
            checked_in(name)
        }
    };
    let mut setup = Setup::new("test.mssante.fr");
    setup.data_dir = dir.join("data");
    setup.certificate = live_or_checked_in("server.crt");
    setup.private_key = live_or_checked_in("server.key");
    setup.client_ca = Some(live_or_checked_in("ca.crt"));
    setup.write(dir)
}

fn grants(config: &Path, address: &str) -> Vec<serde_json::Value> {
    let (ok, out, err) = mssante(config, &["mailbox", "show", address, "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["grants"].as_array().unwrap().clone()
}

#[test]
fn cli_binds_a_certificate_by_subject_or_by_pin() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let app = checked_in("app.crt");
    let app = app.to_str().unwrap();
    let box_ = "sil@test.mssante.fr";
    let (ok, _, err) = mssante(
        &config,
        &["mailbox", "create", box_, "--kind", "applicative"],
    );
    assert!(ok, "{err}");

    let (ok, _, err) = mssante(&config, &["mailbox", "grant", box_, "--certificate", app]);
    assert!(ok, "{err}");
    assert_eq!(
        grants(&config, box_),
        vec![
            serde_json::json!({"type": "certificate_subject", "subject": APP_SUBJECT, "issuer": ISSUER})
        ]
    );

    // A renewal has the same subject: revoking with it removes the binding.
    let renewed = checked_in("app-renewed.crt");
    let (ok, _, err) = mssante(
        &config,
        &[
            "mailbox",
            "revoke",
            box_,
            "--certificate",
            renewed.to_str().unwrap(),
        ],
    );
    assert!(ok, "{err}");
    assert!(grants(&config, box_).is_empty());

    let (ok, _, err) = mssante(
        &config,
        &["mailbox", "grant", box_, "--certificate", app, "--pin"],
    );
    assert!(ok, "{err}");
    let fingerprint = hex::encode(Sha256::digest(first_der(&checked_in("app.crt")).as_ref()));
    assert_eq!(
        grants(&config, box_),
        vec![serde_json::json!({"type": "certificate_pin", "fingerprint": fingerprint})]
    );
    // The renewal is a different certificate: it holds no pin here.
    let (ok, _, _) = mssante(
        &config,
        &[
            "mailbox",
            "revoke",
            box_,
            "--certificate",
            renewed.to_str().unwrap(),
            "--pin",
        ],
    );
    assert!(!ok);
    // A fingerprint typed with colons and in capitals is the same pin.
    let typed = fingerprint
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let (ok, _, err) = mssante(
        &config,
        &["mailbox", "revoke", box_, "--certificate", &typed],
    );
    assert!(ok, "{err}");
    assert!(grants(&config, box_).is_empty());

    // Certificates open applicative mailboxes only; IdNat grants still parse.
    let org = "secretariat@test.mssante.fr";
    let (ok, _, err) = mssante(
        &config,
        &["mailbox", "create", org, "--kind", "organisational"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = mssante(&config, &["mailbox", "grant", org, "--certificate", app]);
    assert!(!ok);
    assert!(err.contains("applicative mailboxes only"), "{err}");
    let (ok, _, err) = mssante(
        &config,
        &["mailbox", "grant", org, "--idnat", "899700771191"],
    );
    assert!(ok, "{err}");
    assert_eq!(
        grants(&config, org),
        vec![serde_json::json!({"type": "idnat", "idnat": "899700771191"})]
    );

    // Not client certificates, or not certificates at all.
    let (ok, _, err) = mssante(
        &config,
        &[
            "mailbox",
            "grant",
            box_,
            "--certificate",
            checked_in("server-only.crt").to_str().unwrap(),
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("not a client-authentication certificate (EKU)"),
        "{err}"
    );
    let (ok, _, err) = mssante(
        &config,
        &[
            "mailbox",
            "grant",
            box_,
            "--certificate",
            "no-such-file.crt",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("neither a certificate file nor a SHA-256 fingerprint"),
        "{err}"
    );
}

// `mssante dev pki` is a command of the default build only.
#[cfg(feature = "conformance")]
#[test]
fn dev_pki_writes_a_usable_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pki");
    let (ok, stdout, err) = mssante(
        &dir.path().join("unused.toml"),
        &["dev", "pki", "--out", out.to_str().unwrap()],
    );
    assert!(ok, "{err}");
    assert!(stdout.contains("not for production"));
    assert_eq!(
        tls::load_certificates(&out.join("ca.crt")).unwrap().len(),
        2
    );
    for name in pki::leaf_names() {
        assert_eq!(
            tls::load_certificates(&out.join(format!("{name}.crt")))
                .unwrap()
                .len(),
            2,
            "{name}"
        );
        tls::load_private_key(&out.join(format!("{name}.key"))).unwrap();
    }
    assert_eq!(
        tls::load_file_crls(&[crl_path(&out)])
            .unwrap()
            .revocations()
            .len(),
        1
    );
    tls::load_certificates(&out.join("foreign-ca.crt")).unwrap();
}

#[tokio::test]
async fn identity_uses_the_server_clock_after_the_handshake() {
    let dir = fresh_pki();
    let source = TlsSource::load(
        &tls_config(dir.path(), vec![crl_path(dir.path())]),
        mssante::clock::system(),
    )
    .await
    .unwrap();
    // rustls checks dates with the system time; the identity with the injected clock,
    // here eleven years on, when the certificate has expired.
    let later = mssante::clock::SystemClock::now_utc() + chrono::Duration::days(11 * 365);
    let s = source.clone();
    let (addr, mut rx) = acceptor(
        Arc::new(move || s.current()),
        Arc::new(move |conn| {
            let verdict = source.client_certificate(conn, later);
            assert_eq!(
                verdict.refusal().as_deref(),
                Some("client certificate refused: certificate expired")
            );
            assert_eq!(verdict.identity(), None);
            match verdict {
                ClientCertificate::Refused(e) => Some(Err(e)),
                other => panic!("{other:?}"),
            }
        }),
    )
    .await;
    let (seen, greeting) = attempt(addr, &mut rx, dir.path(), Some("app")).await;
    assert!(
        matches!(seen, Seen::Accepted(Some(Err(CertificateError::Expired)))),
        "{seen:?}"
    );
    assert_eq!(greeting.as_deref(), Some("hello none"));
}
