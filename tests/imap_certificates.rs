//! IGC-Santé ORG AUTH_CLI certificates over real IMAP: SASL EXTERNAL, bindings by subject
//! and by pin, and every refused certificate audited with its reason.

use std::time::Duration;

use base64::Engine as _;
use mssante::store::{AuditOutcome, Grant, MailboxKind};

mod common;
use common::Client;
use common::config::{grant_certificate, mailbox};
use common::smtp::{Instance, Options, Pki};

const LABO: &str = "labo@chu.mssante.fr";
const LABO_PINNED: &str = "labo-pinned@chu.mssante.fr";
const DPI: &str = "dpi@chu.mssante.fr";
const DOCTOR: &str = "dr.martin@chu.mssante.fr";

/// A server checking client certificates against the test IGC-Santé PKI and its CRL,
/// with three applicative mailboxes: LABO bound to `app` by subject, LABO_PINNED to
/// `app` by pin, DPI to `app2`; and one personal mailbox.
struct Hospital {
    pki: Pki,
    server: Instance,
}

async fn world() -> Hospital {
    let pki = Pki::new();
    let options = Options {
        crls: true,
        ..Options::new("chu.mssante.fr")
    };
    let server = Instance::start(&pki, options).await;
    let store = server.store();
    for address in [LABO, LABO_PINNED, DPI] {
        mailbox(store, address, MailboxKind::Applicative, None).await;
    }
    mailbox(store, DOCTOR, MailboxKind::Personal, Some("899700771191")).await;
    grant_certificate(store, LABO, &pki.path("app.crt")).await;
    grant_certificate(store, DPI, &pki.path("app2.crt")).await;
    let app = mssante::auth::certificate::identity_from_pem_file(&pki.path("app.crt")).unwrap();
    let pin = Grant::CertificatePin {
        fingerprint: app.fingerprint,
    };
    store.add_grant(LABO_PINNED, pin).await.unwrap();
    Hospital { pki, server }
}

impl Hospital {
    /// Connects presenting `certificate`, greeting read; None when the server refuses
    /// the handshake.
    async fn connect(&self, certificate: Option<&str>) -> Option<Client> {
        let mut client = Client::plain(self.server.imap_tls()).await;
        if !client
            .try_upgrade_config(self.pki.client(certificate))
            .await
        {
            return None;
        }
        let greeting = client.line().await;
        if greeting.is_empty() {
            return None;
        }
        assert!(greeting.starts_with("* OK"), "{greeting}");
        Some(client)
    }

    async fn audit_reasons(&self) -> Vec<String> {
        self.server
            .store()
            .audit_records(None, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.entry.outcome == AuditOutcome::Failure)
            .filter_map(|r| r.entry.reason)
            .collect()
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// AUTHENTICATE EXTERNAL for `mailbox`; the tagged answer.
async fn external(client: &mut Client, mailbox: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(mailbox);
    let lines = client.cmd(&format!("AUTHENTICATE EXTERNAL {b64}")).await;
    common::last(&lines).to_owned()
}

async fn external_as(world: &Hospital, certificate: &str, mailbox: &str) -> String {
    let mut client = world.connect(Some(certificate)).await.unwrap();
    external(&mut client, mailbox).await
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_cli_certificates_open_only_their_applicative_mailboxes() {
    let world = world().await;

    let mut client = world.connect(Some("app")).await.unwrap();
    let caps = client.cmd("CAPABILITY").await.join("\n");
    assert!(caps.contains("AUTH=EXTERNAL"), "{caps}");
    let done = external(&mut client, LABO).await;
    assert!(done.contains("OK"), "{done}");
    let select = client.cmd("SELECT INBOX").await;
    assert!(select.last().unwrap().contains("OK"), "{select:?}");

    // An empty authorisation identity opens the single mailbox bound to the certificate.
    let mut client = world.connect(Some("app2")).await.unwrap();
    let done = common::last(&client.cmd("AUTHENTICATE EXTERNAL =").await).to_owned();
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
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn external_is_offered_only_with_a_certificate() {
    let world = world().await;
    let mut client = world.connect(None).await.unwrap();
    let caps = client.cmd("CAPABILITY").await.join("\n");
    assert!(
        caps.contains("AUTH=XOAUTH2") && !caps.contains("AUTH=EXTERNAL"),
        "{caps}"
    );
    let refused = external(&mut client, LABO).await;
    assert!(
        refused.contains("NO") || refused.contains("BAD"),
        "{refused}"
    );
    world.stop().await;
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
    let rows = world.server.store().audit_records(None, 100).await.unwrap();
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
    world.stop().await;
}
