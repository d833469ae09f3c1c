//! A real server on loopback ports with the PSC stand-in, a test PKI, and a raw IMAP
//! client over TCP/TLS that reads responses byte for byte (literals included).
#![allow(dead_code)]
//!
//! Every integration test starts what it needs from here: `world` (an IMAP server with
//! the PSC stand-in), `config` (the one writer of configuration files, and mailbox
//! seeding), `smtp` (SMTP instances, their PKI and clients), `tools` (real clients such
//! as swaks and Python, skipped visibly or required in CI), `database` (the store's
//! SQLite file, for tests that look inside it), `node` (a `serve` process of its own)
//! and `postgres` (the backend a test runs on: `on_both_backends!` runs it on SQLite and
//! on PostgreSQL).

// The binary's path is known to test targets only (not examples or benchmarks).
#[cfg(test)]
pub mod cli;
pub mod config;
pub mod database;
#[cfg(test)]
pub mod node;
pub mod postgres;
pub mod smtp;
pub mod tools;
pub mod writers;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use mssante::server::{self, Running};

use self::config::{Listeners, Setup};
use mssante::store::MailboxKind;
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub const HOUSE: &str = "899700000001";
pub const HOUSE_BAL: &str = "gregory.house@h.mssante.fr";
pub const CUDDY: &str = "899700000002";
pub const CUDDY_BAL: &str = "lisa.cuddy@h.mssante.fr";

pub struct World {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    pub psc: PscStandIn,
    pub running: Option<Running>,
    pub ca: CertificateDer<'static>,
    pub tls: SocketAddr,
    pub starttls: SocketAddr,
    pub dir: TempDir,
    /// The PostgreSQL database of a test on that backend; dropped last, after the server.
    pub db: Option<postgres::Database>,
}

/// An IMAP server with its own PSC stand-in. `extra`: settings as `imap.key = value`,
/// `smtp.key = value` or `session.key = value` lines; `tls.client_ca` asks for client
/// certificates from the test CA, `psc.introspection` validates by introspection.
pub async fn world(extra: &str) -> World {
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    world_with_psc(psc, extra).await
}

/// `world` trusting a stand-in the test prepared (slow, failing, with other keys).
pub async fn world_with_psc(psc: PscStandIn, extra: &str) -> World {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    std::fs::write(dir.path().join("cert.pem"), leaf.pem() + &ca.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let mut setup = Setup::new("h.mssante.fr");
    setup.certificate = "cert.pem".into();
    setup.private_key = "key.pem".into();
    // `tls.client_ca` in `extra`: ask for client certificates issued by the test CA.
    if extra.contains("tls.client_ca") {
        setup.client_ca = Some("ca.pem".into());
    }
    setup.listeners = Listeners::imap();
    setup.imap = section(extra, "imap");
    setup.smtp = section(extra, "smtp");
    setup.session = format!(
        "sasl_challenge_timeout = \"1s\"\n{}",
        section(extra, "session")
    );
    let mode = if extra.contains("psc.introspection") {
        "introspection"
    } else {
        "local"
    };
    setup.psc = psc.config_toml(mode);
    let (store, db) = postgres::store_section().await;
    setup.store = store;
    // Also on disk, for tests that run the CLI as a separate process on the same store.
    let config = setup.load(dir.path());
    let running = server::start(config, mssante::clock::system())
        .await
        .unwrap();
    for (address, owner) in [(HOUSE_BAL, HOUSE), (CUDDY_BAL, CUDDY)] {
        let store = &running.context.store;
        config::mailbox(store, address, MailboxKind::Personal, Some(owner)).await;
    }
    let ca_der = ca.der().clone();
    let tls = running.imap.tls[0];
    let starttls = running.imap.starttls[0];
    World {
        issuer: ca,
        psc,
        running: Some(running),
        ca: ca_der,
        tls,
        starttls,
        dir,
        db,
    }
}

/// Lines of `extra` written as `imap.key = value`, `smtp.key = value` or
/// `session.key = value`.
fn section(extra: &str, name: &str) -> String {
    extra
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{name}.")))
        .map(|l| format!("{l}\n"))
        .collect()
}

impl World {
    pub fn token(&self, idnat: &str) -> String {
        self.psc.mint(&TokenSpec::valid(idnat))
    }

    pub fn xoauth2(&self, address: &str, idnat: &str) -> String {
        xoauth2(address, &self.token(idnat))
    }

    /// A client certificate for an application (AUTH_CLI shape): DER chain and key.
    pub fn client_certificate(
        &self,
        name: &str,
    ) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "FR");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "LABO");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "318751275100020");
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let der = PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        (cert.der().clone(), der)
    }

    pub async fn connect_tls_with(
        &self,
        cert: (CertificateDer<'static>, PrivateKeyDer<'static>),
    ) -> Client {
        let mut c = Client::plain(self.tls).await;
        c.upgrade_with(&self.ca, Some(cert)).await;
        c
    }

    pub async fn connect_tls(&self) -> Client {
        let mut c = Client::plain(self.tls).await;
        c.upgrade(&self.ca).await;
        c
    }

    pub async fn connect_starttls(&self) -> Client {
        Client::plain(self.starttls).await
    }

    /// An organisational mailbox at `address`, granted to each of `idnats`.
    pub async fn organisational(&self, address: &str, idnats: &[&str]) {
        let store = &self.running.as_ref().unwrap().context.store;
        let now = mssante::clock::SystemClock::now_utc();
        store
            .create_mailbox(mssante::store::NewMailbox::new(
                address,
                MailboxKind::Organisational,
                None,
                now,
            ))
            .await
            .unwrap();
        for idnat in idnats {
            let grant = mssante::store::Grant::Idnat {
                idnat: (*idnat).into(),
            };
            store.add_grant(address, grant).await.unwrap();
        }
    }

    /// An implicit-TLS client authenticated on `address` as `idnat`, greeting consumed.
    pub async fn login(&self, address: &str, idnat: &str) -> Client {
        let mut c = self.connect_tls().await;
        c.line().await;
        let lines = c
            .cmd(&format!(
                "AUTHENTICATE XOAUTH2 {}",
                self.xoauth2(address, idnat)
            ))
            .await;
        assert!(last(&lines).contains("OK"), "{lines:?}");
        c
    }

    /// Runs `sql` on the server's database (its SQLite file, or its PostgreSQL
    /// database) from a connection of its own, as an operator's tool would.
    pub async fn execute(&self, sql: &'static str) {
        match &self.db {
            Some(db) => {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                    .await
                    .unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            None => database::run(&database::file(&self.dir.path().join("data")), sql).await,
        }
    }

    /// The one integer `sql` selects from the server's database (see `execute`).
    pub async fn count(&self, sql: &'static str) -> i64 {
        match &self.db {
            Some(db) => {
                let mut c = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
                    .await
                    .unwrap();
                sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
            }
            None => database::count(&database::file(&self.dir.path().join("data")), sql).await,
        }
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        self.psc.shutdown().await;
    }
}

/// The XOAUTH2 initial response, base64 as it goes on the wire.
pub fn xoauth2(address: &str, token: &str) -> String {
    B64.encode(xoauth2_raw(address, token))
}

/// The XOAUTH2 initial response before base64, as the authenticator takes it.
pub fn xoauth2_raw(address: &str, token: &str) -> Vec<u8> {
    format!("user={address}\x01auth=Bearer {token}\x01\x01").into_bytes()
}

pub fn last(lines: &[String]) -> &str {
    lines.last().map(String::as_str).unwrap_or("")
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

pub struct Client {
    io: Io,
    buf: Vec<u8>,
    tag: u32,
}

const READ_TIMEOUT: Duration = Duration::from_secs(20);

impl Client {
    pub async fn plain(addr: SocketAddr) -> Client {
        Client::over(TcpStream::connect(addr).await.unwrap())
    }

    /// A client on a socket set up by the test (small buffers and the like).
    pub fn over(s: TcpStream) -> Client {
        Client {
            io: Io::Plain(s),
            buf: Vec::new(),
            tag: 0,
        }
    }

    /// Reads whatever arrives until the server closes the connection (end of stream or
    /// reset); false if it still has not after `limit`.
    pub async fn drained_until_closed(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut chunk = vec![0u8; 256 * 1024];
        loop {
            let read = async {
                match &mut self.io {
                    Io::Plain(s) => s.read(&mut chunk).await,
                    Io::Tls(s) => s.read(&mut chunk).await,
                    Io::Gone => Ok(0),
                }
            };
            match tokio::time::timeout_at(deadline, read).await {
                Err(_) => return false,
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => {}
            }
        }
    }

    pub async fn upgrade(&mut self, ca: &CertificateDer<'static>) {
        self.upgrade_with(ca, None).await
    }

    pub async fn upgrade_with(
        &mut self,
        ca: &CertificateDer<'static>,
        client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        self.upgrade_config(Arc::new(config)).await
    }

    /// TLS with a prepared client configuration (the benchmark shares one).
    pub async fn upgrade_config(&mut self, config: Arc<rustls::ClientConfig>) {
        assert!(
            self.try_upgrade_config(config).await,
            "TLS handshake failed"
        );
    }

    /// TLS with a prepared client configuration; false if the handshake failed. (With
    /// TLS 1.3 a refused client certificate shows only at the first read.)
    pub async fn try_upgrade_config(&mut self, config: Arc<rustls::ClientConfig>) -> bool {
        let connector = TlsConnector::from(config);
        let Io::Plain(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
            panic!("not a plain connection")
        };
        self.buf.clear();
        match connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
        {
            Ok(tls) => {
                self.io = Io::Tls(Box::new(tls));
                true
            }
            Err(_) => false,
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        match &mut self.io {
            Io::Plain(s) => s.write_all(bytes).await.unwrap(),
            Io::Tls(s) => {
                s.write_all(bytes).await.unwrap();
                s.flush().await.unwrap();
            }
            Io::Gone => panic!("gone"),
        }
    }

    /// Reads more bytes; false at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = vec![0u8; 64 * 1024];
        let read = async {
            match &mut self.io {
                Io::Plain(s) => s.read(&mut chunk).await,
                Io::Tls(s) => s.read(&mut chunk).await,
                Io::Gone => Ok(0),
            }
        };
        let n = tokio::time::timeout(READ_TIMEOUT, read)
            .await
            .expect("server answered in time")
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    /// One response line, literals included; empty at end of stream.
    pub async fn raw_line(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let Some(pos) = self.buf.iter().position(|b| *b == b'\n') else {
                if !self.fill().await {
                    out.extend(std::mem::take(&mut self.buf));
                    return out;
                }
                continue;
            };
            let line: Vec<u8> = self.buf.drain(..=pos).collect();
            out.extend_from_slice(&line);
            // A literal announcement at the end of the line: `{n}\r\n`.
            let text = String::from_utf8_lossy(&line);
            let trimmed = text.trim_end();
            if trimmed.ends_with('}')
                && let Some(open) = trimmed.rfind('{')
                && let Ok(n) = trimmed[open + 1..trimmed.len() - 1].parse::<usize>()
            {
                while self.buf.len() < n {
                    assert!(self.fill().await, "literal cut short");
                }
                out.extend(self.buf.drain(..n));
                continue;
            }
            return out;
        }
    }

    pub async fn line(&mut self) -> String {
        String::from_utf8_lossy(&self.raw_line().await).into_owned()
    }

    pub fn next_tag(&mut self) -> String {
        self.tag += 1;
        format!("a{}", self.tag)
    }

    /// Sends a command with a fresh tag; returns every line up to the tagged answer.
    pub async fn cmd(&mut self, command: &str) -> Vec<String> {
        let tag = self.next_tag();
        self.send(format!("{tag} {command}\r\n").as_bytes()).await;
        self.until(&tag).await
    }

    /// APPENDs `message` to `folder`, `options` (flags, date) written before the literal;
    /// the answer must be OK.
    pub async fn append(&mut self, folder: &str, options: &str, message: &str) {
        let tag = self.next_tag();
        let line = format!("{tag} APPEND {folder} {options} {{{}+}}\r\n", message.len());
        self.send(line.as_bytes()).await;
        self.send(message.as_bytes()).await;
        self.send(b"\r\n").await;
        let r = self.until(&tag).await;
        assert!(last(&r).contains(" OK "), "{r:?}");
    }

    pub async fn until(&mut self, tag: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let l = self.line().await;
            assert!(!l.is_empty(), "connection closed; so far: {lines:?}");
            let done = l.starts_with(&format!("{tag} "));
            lines.push(l);
            if done {
                return lines;
            }
        }
    }

    /// Whether the server closed the connection (after reading what is left).
    pub async fn closed(&mut self) -> bool {
        loop {
            let l = self.raw_line().await;
            if l.is_empty() {
                return true;
            }
        }
    }
}

impl Client {
    /// Sends `bytes` (a command with literals, whole) under a fresh tag; returns every line
    /// up to the tagged answer.
    pub async fn raw_cmd(&mut self, bytes: &[u8]) -> Vec<String> {
        let tag = self.next_tag();
        let mut command = format!("{tag} ").into_bytes();
        command.extend_from_slice(bytes);
        self.send(&command).await;
        self.until(&tag).await
    }
}

/// The untagged lines of an answer, without their CRLF.
pub fn untagged_lines(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter(|l| l.starts_with("* "))
        .map(|l| l.trim_end())
        .collect()
}

/// Sends SIGHUP to this test process, as `systemctl reload` does to the server, and
/// waits until `tls` has put a new configuration in force.
pub async fn reload_by_sighup(tls: &mssante::tls::TlsSource) {
    let before = tls.current();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::timeout(Duration::from_secs(30), async {
        while Arc::ptr_eq(&before, &tls.current()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("SIGHUP did not reload the TLS configuration");
}
