//! What the SMTP tests and benchmark share: a server instance on loopback with its PKI,
//! PSC stand-in, trust list and mailboxes, and a small raw SMTP client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mssante::config::Config;
use mssante::server::Running;
use mssante::store::{MailboxKind, Store};
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub use super::config::Listeners;
use super::config::Setup;
use super::postgres::Database;

/// Bound on every wait, so a broken server fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(30);
pub const IDNAT: &str = "899700771191";
pub const OTHER_IDNAT: &str = "899700000042";

/// A test PKI shaped like IGC-Santé, in a temporary folder.
pub struct Pki {
    pub dir: TempDir,
}

impl Pki {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        mssante_conformance::pki::generate(dir.path()).unwrap();
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The subject DN of `<name>.crt`, as the trust list writes it.
    pub fn dn(&self, name: &str) -> String {
        mssante::auth::certificate::identity_from_pem_file(&self.path(&format!("{name}.crt")))
            .unwrap()
            .subject
    }

    /// A client trusting the test CA, presenting `<cert>.crt` if given.
    pub fn client(&self, cert: Option<&str>) -> Arc<ClientConfig> {
        client_config(self.dir.path(), cert, rustls::DEFAULT_VERSIONS)
    }
}

/// A client trusting `dir/ca.crt` and speaking `versions`, presenting `dir/<cert>.crt`
/// (with its `.key`) if given.
pub fn client_config(
    dir: &Path,
    cert: Option<&str>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let roots = mssante::tls::root_store(&[dir.join("ca.crt")]).unwrap();
    let builder = ClientConfig::builder_with_provider(mssante::tls::provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match cert {
        None => builder.with_no_client_auth(),
        Some(name) => builder
            .with_client_auth_cert(
                mssante::tls::load_certificates(&dir.join(format!("{name}.crt"))).unwrap(),
                mssante::tls::load_private_key(&dir.join(format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
    })
}

/// `listeblanchemssante.xml` with these (domain, DN) entries.
pub fn trust_xml(entries: &[(&str, &str)]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListeBlanche xmlns=\"https://listeblanche.mssante.fr/schema\">\n",
    );
    for (domain, dn) in entries {
        xml.push_str(&format!(
            "  <Domaine>\n    <Nom>{domain}</Nom>\n    <DNCertificatOperateur>{}</DNCertificatOperateur>\n  </Domaine>\n",
            dn.replace('&', "&amp;")
        ));
    }
    xml.push_str("</ListeBlanche>\n");
    xml
}

/// How to set up one server.
pub struct Options {
    pub domain: String,
    /// `server` or `operator2`: the certificate this instance presents.
    pub certificate: &'static str,
    pub trust: Vec<(String, String)>,
    pub routes: Vec<(String, String)>,
    /// Which listeners it opens, where (default: all, each on a free port).
    pub listeners: Listeners,
    /// Extra `[smtp]` keys.
    pub smtp_extra: String,
    /// Extra `[session]` keys.
    pub session_extra: String,
    /// How the PSC stand-in's tokens are checked: `local` or `introspection`.
    pub psc_validation: &'static str,
    /// Check client certificates against the PKI's organisations CRL.
    pub crls: bool,
    /// Whole extra sections (`[lifecycle]` …), at the end of the file.
    pub sections: String,
    /// Extra `[admin]` keys (it listens on port 0 of loopback).
    pub admin_extra: String,
}

impl Options {
    pub fn new(domain: &str) -> Self {
        Options {
            domain: domain.into(),
            certificate: "server",
            trust: Vec::new(),
            routes: Vec::new(),
            listeners: Listeners::all(),
            smtp_extra: "save_sent = true".into(),
            session_extra: String::new(),
            psc_validation: "local",
            crls: false,
            sections: String::new(),
            admin_extra: String::new(),
        }
    }
}

/// Operator A: a.mssante.test presenting `server.crt`, trusting B's `operator2.crt`.
pub fn operator_a(pki: &Pki) -> Options {
    let mut oa = Options::new("a.mssante.test");
    oa.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
    oa
}

/// Operator B: b.mssante.test presenting `operator2.crt`, trusting A's `server.crt`.
pub fn operator_b(pki: &Pki) -> Options {
    let mut ob = Options::new("b.mssante.test");
    ob.certificate = "operator2";
    ob.trust = vec![("a.mssante.test".into(), pki.dn("server"))];
    ob
}

/// B started on `ob`, then A on `oa` with its route for B's domain at B's inbound
/// listener: (A, B).
pub async fn start_operators(pki: &Pki, ob: Options, mut oa: Options) -> (Instance, Instance) {
    let b = Instance::start(pki, ob).await;
    oa.routes = vec![("b.mssante.test".into(), b.inbound().to_string())];
    let a = Instance::start(pki, oa).await;
    (a, b)
}

/// A loopback port free now: for a listener of a `serve` process whose address the test
/// must know before the process starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `127.0.0.1:port`, for a listener of `Options::listeners`.
pub fn on_port(port: u16) -> Option<String> {
    Some(format!("127.0.0.1:{port}"))
}

/// Writes the configuration file for an instance in `dir`; returns its path.
/// `store` is the `[store]` section (empty for SQLite in `data`).
pub fn write_config(pki: &Pki, dir: &Path, psc: &PscStandIn, o: &Options, store: &str) -> PathBuf {
    let mut setup = Setup::new(&o.domain);
    setup.store = store.into();
    setup.hostname = format!("mx.{}", o.domain);
    setup.data_dir = dir.join("data");
    setup.certificate = pki.path(&format!("{}.crt", o.certificate));
    setup.private_key = pki.path(&format!("{}.key", o.certificate));
    setup.client_ca = Some(pki.path("ca.crt"));
    if o.crls {
        setup.crls = vec![pki.path("organisations.crl")];
    }
    setup.listeners = o.listeners.clone();
    setup.smtp = format!(
        "max_message_size = 65536\nmax_recipients = 60\n\
         queue_retry_initial = \"200ms\"\nqueue_retry_max = \"1s\"\n{}",
        o.smtp_extra
    );
    setup.routes = o.routes.clone();
    setup.session = format!("sasl_challenge_timeout = \"2s\"\n{}", o.session_extra);
    if !o.trust.is_empty() {
        let entries: Vec<(&str, &str)> = o
            .trust
            .iter()
            .map(|(d, n)| (d.as_str(), n.as_str()))
            .collect();
        let list = dir.join("listeblanchemssante.xml");
        std::fs::write(&list, trust_xml(&entries)).unwrap();
        setup.trust_list = Some(list);
    }
    setup.psc = psc.config_toml(o.psc_validation);
    setup.sections = o.sections.clone();
    setup.admin = o.admin_extra.clone();
    setup.write(dir)
}

/// One running server with its own data folder (and database, on PostgreSQL) and PSC
/// stand-in.
pub struct Instance {
    pub running: Running,
    pub psc: PscStandIn,
    pub dir: TempDir,
    pub domain: String,
    /// Dropped after the server.
    pub db: Option<Database>,
}

/// What a stopped instance leaves for the next one to start on.
pub struct Kept {
    pub dir: TempDir,
    pub db: Option<Database>,
}

impl Instance {
    pub async fn start(pki: &Pki, o: Options) -> Instance {
        let (_, db) = super::postgres::store_section().await;
        let kept = Kept {
            dir: tempfile::tempdir().unwrap(),
            db,
        };
        Self::start_in(pki, o, kept).await
    }

    /// Starts on the data of a previous instance (a restart).
    pub async fn start_in(pki: &Pki, o: Options, kept: Kept) -> Instance {
        let Kept { dir, db } = kept;
        let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let store = db.as_ref().map(Database::store_toml).unwrap_or_default();
        let path = write_config(pki, dir.path(), &psc, &o, &store);
        let config = Config::load(&path).unwrap();
        let running = mssante::server::start(config, mssante::clock::system())
            .await
            .unwrap();
        Instance {
            running,
            psc,
            dir,
            domain: o.domain,
            db,
        }
    }

    pub fn store(&self) -> &Store {
        &self.running.context.store
    }

    pub fn submission_tls(&self) -> SocketAddr {
        self.running.smtp.submission_tls[0]
    }

    pub fn submission_starttls(&self) -> SocketAddr {
        self.running.smtp.submission_starttls[0]
    }

    pub fn imap_tls(&self) -> SocketAddr {
        self.running.imap.tls[0]
    }

    pub fn imap_starttls(&self) -> SocketAddr {
        self.running.imap.starttls[0]
    }

    pub fn inbound(&self) -> SocketAddr {
        self.running.smtp.inbound[0]
    }

    pub fn address(&self, local: &str) -> String {
        format!("{local}@{}", self.domain)
    }

    /// A personal mailbox owned by `idnat`.
    pub async fn mailbox(&self, local: &str, idnat: &str) -> String {
        create_mailbox(self.store(), &self.address(local), idnat).await
    }

    pub fn token(&self) -> String {
        self.psc.mint(&TokenSpec::valid(IDNAT))
    }

    /// Every message of a mailbox's folder, whole.
    pub async fn messages(&self, address: &str, folder: &str) -> Vec<Vec<u8>> {
        folder_messages(self.store(), address, folder).await
    }

    /// Audited decisions matching `keep`, counting each row's repeats: identical
    /// decisions close together share a row.
    pub async fn audited(&self, keep: impl Fn(&mssante::store::AuditEntry) -> bool) -> u32 {
        let audit = self.store().audit_records(None, 100).await.unwrap();
        audit
            .iter()
            .filter(|r| keep(&r.entry))
            .map(|r| 1 + r.repeated)
            .sum()
    }

    pub async fn stop(self) {
        self.running.stop().await;
        self.psc.shutdown().await;
    }

    /// Stops, keeping the data folder (and database) for `start_in`.
    pub async fn stop_keeping_data(self) -> Kept {
        self.running.stop().await;
        self.psc.shutdown().await;
        Kept {
            dir: self.dir,
            db: self.db,
        }
    }
}

/// A personal mailbox owned by `idnat`; its address.
pub async fn create_mailbox(store: &Store, address: &str, idnat: &str) -> String {
    super::config::mailbox(store, address, MailboxKind::Personal, Some(idnat)).await;
    address.to_owned()
}

pub async fn folder_messages(store: &Store, address: &str, folder: &str) -> Vec<Vec<u8>> {
    let mailbox = store.mailbox(address).await.unwrap().unwrap();
    let folder = store.folder(mailbox.id, folder).await.unwrap().unwrap();
    let mut out = Vec::new();
    for m in store.messages(folder.id).await.unwrap() {
        out.push(store.body(m.body_id).await.unwrap());
    }
    out
}

/// Waits until `check` holds, polling.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub use super::xoauth2;

/// A message with MSSanté headers, `size` bytes of body at least.
pub fn message(from: &str, to: &str, subject: &str, size: usize) -> String {
    let mut m = format!(
        "From: <{from}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nX-MSS-CODECDA: 11488-4\r\nX-MSS-INS:  1 84 12 75 123 456 78\t\r\n\r\n"
    );
    let line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n";
    while m.len() < size {
        m.push_str(line);
    }
    m
}

/// A raw SMTP client: write lines, read replies.
pub struct Smtp<S> {
    pub io: BufReader<S>,
}

pub type Plain = Smtp<TcpStream>;
pub type Tls = Smtp<tokio_rustls::client::TlsStream<TcpStream>>;

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    pub async fn send(&mut self, text: &str) {
        self.io.get_mut().write_all(text.as_bytes()).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
        self.io.get_mut().flush().await.unwrap();
    }

    /// One reply: code and text of every line joined with `\n`.
    pub async fn reply(&mut self) -> (u16, String) {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.io.read_line(&mut line))
                .await
                .expect("reply timed out")
                .unwrap();
            assert!(n > 0, "connection closed; got so far {lines:?}");
            let code: u16 = line[..3].parse().unwrap();
            lines.push(line[4..].trim_end().to_owned());
            if line.as_bytes()[3] != b'-' {
                return (code, lines.join("\n"));
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(&format!("{line}\r\n")).await;
        self.reply().await
    }

    /// Connection closed by the server?
    pub async fn closed(&mut self) -> bool {
        let mut line = String::new();
        matches!(
            tokio::time::timeout(WAIT, self.io.read_line(&mut line)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

pub async fn plain(addr: SocketAddr) -> Plain {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut s = Smtp {
        io: BufReader::new(tcp),
    };
    let (code, text) = s.reply().await;
    assert_eq!(code, 220);
    // RFC 5321 §4.2: the server's name comes first, no enhanced status code before it.
    assert!(text.starts_with("mx."), "greeting: {text}");
    s
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").unwrap()
}

/// The common name of the certificate the server presented on `stream`.
pub fn server_cn(stream: &tokio_rustls::client::TlsStream<TcpStream>) -> String {
    let der = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

/// Implicit TLS (465), greeting read.
pub async fn implicit(addr: SocketAddr, tls: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let stream = TlsConnector::from(tls)
        .connect(server_name(), tcp)
        .await
        .unwrap();
    let mut s = Smtp {
        io: BufReader::new(stream),
    };
    let (code, _) = s.reply().await;
    assert_eq!(code, 220);
    s
}

/// EHLO, STARTTLS and the handshake on a plain connection.
pub async fn starttls(mut s: Plain, tls: Arc<ClientConfig>) -> Tls {
    assert_eq!(s.cmd("EHLO client.test").await.0, 250);
    assert_eq!(s.cmd("STARTTLS").await.0, 220);
    let tcp = s.io.into_inner();
    let stream = TlsConnector::from(tls)
        .connect(server_name(), tcp)
        .await
        .unwrap();
    Smtp {
        io: BufReader::new(stream),
    }
}

/// Implicit TLS, EHLO and AUTH XOAUTH2 as `address`.
pub async fn authenticated(
    addr: SocketAddr,
    tls: Arc<ClientConfig>,
    address: &str,
    token: &str,
) -> Tls {
    let mut s = implicit(addr, tls).await;
    assert_eq!(s.cmd("EHLO client.test").await.0, 250);
    let (code, text) = s
        .cmd(&format!("AUTH XOAUTH2 {}", xoauth2(address, token)))
        .await;
    assert_eq!(code, 235, "{text}");
    s
}

impl<S: AsyncRead + AsyncWrite + Unpin> Smtp<S> {
    /// One whole transaction; returns the final reply.
    pub async fn mail(&mut self, from: &str, to: &[&str], body: &str) -> (u16, String) {
        let (code, text) = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if code != 250 {
            return (code, text);
        }
        for r in to {
            let (code, text) = self.cmd(&format!("RCPT TO:<{r}>")).await;
            if code != 250 {
                return (code, text);
            }
        }
        let (code, text) = self.cmd("DATA").await;
        if code != 354 {
            return (code, text);
        }
        self.send(&dot_stuff(body)).await;
        self.reply().await
    }
}

pub fn dot_stuff(body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 8);
    for line in body.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// A port that stays the test's own while the server behind it comes and goes. Closed,
/// it accepts and drops every connection (the sender's attempt fails); holding, it
/// accepts and never says a word; open, it forwards to the server's address. A port
/// freed for a server to bind later could meanwhile be taken by another test's
/// listener; this one cannot.
pub struct Gate {
    pub addr: SocketAddr,
    mode: Arc<std::sync::Mutex<GateMode>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy)]
enum GateMode {
    Closed,
    Holding,
    Open(SocketAddr),
}

impl Gate {
    /// A closed gate on a free loopback port.
    pub async fn new() -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(std::sync::Mutex::new(GateMode::Closed));
        let now = mode.clone();
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                let current = *now.lock().unwrap();
                match current {
                    GateMode::Closed => {}
                    GateMode::Holding => held.push(client),
                    GateMode::Open(server) => {
                        tokio::spawn(async move {
                            if let Ok(mut up) = TcpStream::connect(server).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                            }
                        });
                    }
                }
            }
        });
        Gate { addr, mode, task }
    }

    /// From now on, connections go through to `server`.
    pub fn open(&self, server: SocketAddr) {
        *self.mode.lock().unwrap() = GateMode::Open(server);
    }

    /// From now on, connections are held open and never answered.
    pub fn hold(&self) {
        *self.mode.lock().unwrap() = GateMode::Holding;
    }

    /// From now on, connections are dropped.
    pub fn close(&self) {
        *self.mode.lock().unwrap() = GateMode::Closed;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}
