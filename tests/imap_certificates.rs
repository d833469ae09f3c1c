//! IGC-Santé ORG AUTH_CLI certificates over real IMAP: SASL EXTERNAL, bindings by subject
//! and by pin, and every refused certificate audited with its reason.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use mssante::auth::certificate::identity_from_pem_file;
use mssante::config::Config;
use mssante::server::{self, Running};
use mssante::store::{AuditOutcome, Grant, MailboxKind, NewMailbox, Store};
use mssante_conformance::psc_standin::PscStandIn;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

const LABO: &str = "labo@chu.mssante.fr";
const LABO_PINNED: &str = "labo-pinned@chu.mssante.fr";
const DPI: &str = "dpi@chu.mssante.fr";
const DOCTOR: &str = "dr.martin@chu.mssante.fr";

struct World {
    running: Running,
    certs: std::path::PathBuf,
    _psc: PscStandIn,
    _dir: tempfile::TempDir,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    mssante_conformance::pki::generate(&certs).unwrap();
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[server]
hostname = "mail.chu.test"
domains = ["chu.mssante.fr"]
data_dir = "data"

[tls]
certificate = "certs/server.crt"
private_key = "certs/server.key"
client_ca = "certs/ca.crt"
crls = ["certs/organisations.crl"]

[imap]
tls = ["127.0.0.1:0"]
starttls = []

[smtp]
submission_tls = []
submission_starttls = []
inbound = []

{}"#,
        psc.config_toml("local")
    );
    let config = Config::parse(&text, dir.path()).unwrap();
    let store = Store::open(&config.server.data_dir, mssante::clock::system())
        .await
        .unwrap();
    for (address, kind, owner) in [
        (LABO, MailboxKind::Applicative, None),
        (LABO_PINNED, MailboxKind::Applicative, None),
        (DPI, MailboxKind::Applicative, None),
        (
            DOCTOR,
            MailboxKind::Personal,
            Some("899700771191".to_owned()),
        ),
    ] {
        store
            .create_mailbox(NewMailbox {
                address: address.into(),
                kind,
                owner,
                display_name: None,
                created_at: mssante::clock::SystemClock::now_utc(),
                red_list: false,
                directory: Default::default(),
            })
            .await
            .unwrap();
    }
    let app = identity_from_pem_file(&certs.join("app.crt")).unwrap();
    let subject = Grant::CertificateSubject {
        subject: app.subject.clone(),
        issuer: app.issuer.clone(),
    };
    store.add_grant(LABO, subject).await.unwrap();
    let pin = Grant::CertificatePin {
        fingerprint: app.fingerprint.clone(),
    };
    store.add_grant(LABO_PINNED, pin).await.unwrap();
    let app2 = identity_from_pem_file(&certs.join("app2.crt")).unwrap();
    store
        .add_grant(
            DPI,
            Grant::CertificateSubject {
                subject: app2.subject,
                issuer: app2.issuer,
            },
        )
        .await
        .unwrap();
    let running = server::start(config, mssante::clock::system())
        .await
        .unwrap();
    World {
        running,
        certs,
        _psc: psc,
        _dir: dir,
    }
}

struct Client {
    stream: BufReader<TlsStream<TcpStream>>,
    tag: u32,
}

impl World {
    fn connector(&self, certificate: Option<&str>) -> TlsConnector {
        let roots = mssante::tls::root_store(&[self.certs.join("ca.crt")]).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(mssante::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match certificate {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain =
                    mssante::tls::load_certificates(&self.certs.join(format!("{name}.crt")))
                        .unwrap();
                let key = mssante::tls::load_private_key(&self.certs.join(format!("{name}.key")))
                    .unwrap();
                builder.with_client_auth_cert(chain, key).unwrap()
            }
        };
        TlsConnector::from(Arc::new(config))
    }

    /// Connects presenting `certificate`; None when the server refuses the handshake.
    async fn connect(&self, certificate: Option<&str>) -> Option<Client> {
        let tcp = TcpStream::connect(self.running.imap.tls[0]).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.connector(certificate).connect(name, tcp).await.ok()?;
        let mut client = Client {
            stream: BufReader::new(tls),
            tag: 0,
        };
        // TLS 1.3 reports a refused client certificate only at the first read.
        let greeting = client.line().await?;
        assert!(greeting.starts_with("* OK"), "{greeting}");
        Some(client)
    }

    async fn audit_reasons(&self) -> Vec<String> {
        let store = &self.running.context.store;
        store
            .audit_records(None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.entry.outcome == AuditOutcome::Failure)
            .filter_map(|r| r.entry.reason)
            .collect()
    }
}

impl Client {
    async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(10), self.stream.read_line(&mut line)).await
        {
            Ok(Ok(n)) if n > 0 => Some(line.trim_end().to_owned()),
            _ => None,
        }
    }

    async fn command(&mut self, command: &str) -> Vec<String> {
        self.tag += 1;
        let tag = format!("c{}", self.tag);
        let line = format!("{tag} {command}\r\n");
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let line = self.line().await.expect("the server answered");
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    async fn external(&mut self, mailbox: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(mailbox);
        self.command(&format!("AUTHENTICATE EXTERNAL {b64}"))
            .await
            .pop()
            .unwrap()
    }
}

async fn external_as(world: &World, certificate: &str, mailbox: &str) -> String {
    let mut client = world.connect(Some(certificate)).await.unwrap();
    client.external(mailbox).await
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_cli_certificates_open_only_their_applicative_mailboxes() {
    let world = world().await;

    let mut client = world.connect(Some("app")).await.unwrap();
    let caps = client.command("CAPABILITY").await.join("\n");
    assert!(caps.contains("AUTH=EXTERNAL"), "{caps}");
    let done = client.external(LABO).await;
    assert!(done.contains("OK"), "{done}");
    let select = client.command("SELECT INBOX").await;
    assert!(select.last().unwrap().contains("OK"), "{select:?}");

    // An empty authorisation identity opens the single mailbox bound to the certificate.
    let mut client = world.connect(Some("app2")).await.unwrap();
    let done = client
        .command("AUTHENTICATE EXTERNAL =")
        .await
        .pop()
        .unwrap();
    assert!(
        done.contains("OK"),
        "the only mailbox bound to app2: {done}"
    );

    let refused = external_as(&world, "app", DOCTOR).await;
    assert!(refused.contains("NO"), "a personal mailbox: {refused}");
    let refused = external_as(&world, "app", DPI).await;
    assert!(
        refused.contains("NO"),
        "bound to another application: {refused}"
    );

    // A renewed certificate (same subject and issuer, new key) keeps a subject binding
    // working and is refused where the old certificate was pinned.
    let ok = external_as(&world, "app-renewed", LABO).await;
    assert!(ok.contains("OK"), "subject binding survives renewal: {ok}");
    let refused = external_as(&world, "app-renewed", LABO_PINNED).await;
    assert!(
        refused.contains("NO"),
        "a pin names one certificate: {refused}"
    );
    let ok = external_as(&world, "app", LABO_PINNED).await;
    assert!(ok.contains("OK"), "the pinned certificate itself: {ok}");

    let reasons = world.audit_reasons().await;
    for expected in [
        "a certificate cannot open a personal or organisational mailbox",
        "certificate not bound to this mailbox",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected}: {reasons:?}"
        );
    }
    world.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn external_is_offered_only_with_a_certificate() {
    let world = world().await;
    let mut client = world.connect(None).await.unwrap();
    let caps = client.command("CAPABILITY").await.join("\n");
    assert!(
        caps.contains("AUTH=XOAUTH2") && !caps.contains("AUTH=EXTERNAL"),
        "{caps}"
    );
    let refused = client.external(LABO).await;
    assert!(
        refused.contains("NO") || refused.contains("BAD"),
        "{refused}"
    );
    world.running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_certificates_are_refused_and_audited() {
    let world = world().await;
    for (name, reason) in [
        ("expired", "client certificate refused: certificate expired"),
        ("revoked", "client certificate refused: certificate revoked"),
        (
            "foreign",
            "client certificate refused: certificate from an untrusted authority",
        ),
        (
            "server-only",
            "client certificate refused: not a client-authentication certificate (EKU)",
        ),
    ] {
        assert!(
            world.connect(Some(name)).await.is_none(),
            "{name} must not get a session"
        );
        // The server records the refusal after the alert has gone out: wait for the row.
        let mut reasons = Vec::new();
        for _ in 0..200 {
            reasons = world.audit_reasons().await;
            if reasons.iter().any(|r| r == reason) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            reasons.iter().any(|r| r == reason),
            "{name}: no audit row `{reason}` in {reasons:?}"
        );
    }
    let rows = world
        .running
        .context
        .store
        .audit_records(None, 100)
        .await
        .unwrap();
    let refusals: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.entry
                .reason
                .as_deref()
                .is_some_and(|x| x.starts_with("client certificate refused"))
        })
        .collect();
    assert_eq!(refusals.len(), 4, "one audit row per refused certificate");
    assert!(refusals.iter().all(|r| r.entry.peer.is_some()));
    world.running.stop().await;
}
