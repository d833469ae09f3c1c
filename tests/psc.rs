//! Pro Santé Connect authentication against the stand-in, in both validation modes, with
//! a real store: every refusal must land in the audit trail with its own reason.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::config::{Setup, mailbox};
use common::xoauth2_raw;
use mssante::auth::certificate::CertificateIdentity;
use mssante::auth::{
    AuthFailure, Authenticator, Identity, Mechanism, Peer, Protocol, PscValidator, TokenError,
};
use mssante::clock;
use mssante::config::Config;
use mssante::store::{AuditOutcome, Grant, MailboxKind, Store};
use mssante_conformance::psc_standin::{Flaw, PscStandIn, TokenSpec};
use tempfile::TempDir;

const HOUSE: &str = "899700000001";
const CUDDY: &str = "899700000002";
const WILSON: &str = "899700000003";

/// The authenticator alone, without a server: a stand-in, a store with one mailbox of
/// each kind, and the configuration they were built from.
struct Authentication {
    psc: PscStandIn,
    store: Store,
    auth: Authenticator,
    config: Config,
    _dir: TempDir,
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A configuration with this `[psc]` section and no listener (the certificate files
/// must exist, but nothing reads them).
fn config(dir: &TempDir, psc_section: &str) -> Config {
    std::fs::write(dir.path().join("server.crt"), "").unwrap();
    std::fs::write(dir.path().join("server.key"), "").unwrap();
    let mut setup = Setup::new("h.mssante.fr");
    setup.psc = psc_section.into();
    setup.load(dir.path())
}

fn labo_certificate() -> CertificateIdentity {
    CertificateIdentity {
        subject: "CN=LABO-SIL,OU=318751275100020,O=LABO,C=FR".into(),
        issuer: "CN=TEST AC IGC-SANTE ELEMENTAIRE ORGANISATIONS,O=ASIP-SANTE,C=FR".into(),
        common_name: Some("LABO-SIL".into()),
        organisational_unit: Some("318751275100020".into()),
        serial: "1234".into(),
        fingerprint: "00ff".repeat(16),
    }
}

/// A stand-in, a store with one mailbox of each kind, and an authenticator in `mode`.
async fn world_with(mode: &str, extra: &str) -> Authentication {
    let psc = PscStandIn::start(local()).await.unwrap();
    world_at(psc, mode, extra).await
}

async fn world_at(psc: PscStandIn, mode: &str, extra: &str) -> Authentication {
    let dir = tempfile::tempdir().unwrap();
    let config = config(&dir, &format!("{}{extra}", psc.config_toml(mode)));
    let store = Store::open(&config.server.data_dir, mssante::clock::system())
        .await
        .unwrap();
    mailbox(
        &store,
        "house@h.mssante.fr",
        MailboxKind::Personal,
        Some(HOUSE),
    )
    .await;
    mailbox(
        &store,
        "wilson@h.mssante.fr",
        MailboxKind::Personal,
        Some(WILSON),
    )
    .await;
    mailbox(
        &store,
        "secretariat@h.mssante.fr",
        MailboxKind::Organisational,
        None,
    )
    .await;
    mailbox(&store, "labo@h.mssante.fr", MailboxKind::Applicative, None).await;
    store
        .add_grant(
            "secretariat@h.mssante.fr",
            Grant::Idnat {
                idnat: CUDDY.into(),
            },
        )
        .await
        .unwrap();
    let cert = labo_certificate();
    store
        .add_grant(
            "labo@h.mssante.fr",
            Grant::CertificateSubject {
                subject: cert.subject,
                issuer: cert.issuer,
            },
        )
        .await
        .unwrap();
    let auth = Authenticator::new(&config, store.clone(), clock::system(), Default::default())
        .await
        .unwrap();
    Authentication {
        psc,
        store,
        auth,
        config,
        _dir: dir,
    }
}

async fn world(mode: &str) -> Authentication {
    world_with(mode, "").await
}

fn peer() -> Peer {
    Peer {
        protocol: Protocol::Imap,
        addr: "127.0.0.1:40000".parse().unwrap(),
        certificate: None,
    }
}

impl Authentication {
    async fn login(&self, address: &str, token: &str) -> Result<String, AuthFailure> {
        self.auth
            .authenticate(Mechanism::XOAuth2, &xoauth2_raw(address, token), &peer())
            .await
            .map(|a| a.mailbox.address)
    }

    async fn last_audit(&self) -> mssante::store::AuditRecord {
        self.store
            .audit_records(None, 1)
            .await
            .unwrap()
            .pop()
            .expect("an audit record")
    }

    /// Asserts a refusal with `reason`, its XOAUTH2 challenge, and the matching audit row.
    async fn assert_refused(&self, address: &str, token: &str, reason: &str) {
        match self.login(address, token).await {
            Err(AuthFailure::Refused {
                reason: r,
                challenge,
            }) => {
                assert_eq!(r, reason);
                let challenge: serde_json::Value =
                    serde_json::from_slice(&challenge.expect("a challenge")).unwrap();
                assert_eq!(challenge["status"], "401");
            }
            other => panic!("expected refusal `{reason}`, got {other:?}"),
        }
        let audit = self.last_audit().await;
        assert_eq!(audit.entry.outcome, AuditOutcome::Failure);
        assert_eq!(audit.entry.reason.as_deref(), Some(reason));
        assert_eq!(audit.entry.mechanism.as_deref(), Some("XOAUTH2"));
        assert_eq!(audit.entry.peer.as_deref(), Some("127.0.0.1:40000"));
        assert_eq!(audit.entry.protocol, "imap");
    }

    async fn assert_temporary(&self, token: &str) {
        match self.login("house@h.mssante.fr", token).await {
            Err(AuthFailure::Temporary { reason }) => {
                assert!(reason.starts_with("PSC unavailable"), "{reason}")
            }
            other => panic!("expected a temporary failure, got {other:?}"),
        }
        let audit = self.last_audit().await;
        assert_eq!(audit.entry.outcome, AuditOutcome::Temporary);
    }
}

async fn valid_token_is_accepted(mode: &str) {
    let w = world(mode).await;
    let token = w.psc.mint(&TokenSpec::valid(HOUSE));
    let done = w
        .auth
        .authenticate(
            Mechanism::XOAuth2,
            &xoauth2_raw("house@h.mssante.fr", &token),
            &peer(),
        )
        .await
        .unwrap();
    match &done.identity {
        Identity::Professional(p) => assert_eq!(p.idnat(), HOUSE),
        other => panic!("unexpected identity {other:?}"),
    }
    assert_eq!(done.mailbox.address, "house@h.mssante.fr");
    let audit = w.last_audit().await;
    assert_eq!(audit.entry.outcome, AuditOutcome::Success);
    assert_eq!(audit.entry.identity.as_deref(), Some(HOUSE));
    assert_eq!(audit.entry.mailbox.as_deref(), Some("house@h.mssante.fr"));
    assert!(audit.entry.reason.is_none());
    let mailbox = w
        .store
        .mailbox("house@h.mssante.fr")
        .await
        .unwrap()
        .unwrap();
    assert!(
        mailbox.last_authenticated_at.is_some(),
        "success recorded on the mailbox"
    );
}

#[tokio::test]
async fn valid_token_local() {
    valid_token_is_accepted("local").await;
}

#[tokio::test]
async fn valid_token_introspection() {
    valid_token_is_accepted("introspection").await;
}

/// Each flaw with the reason each mode gives it. Introspection cannot tell a token PSC
/// did not sign (unknown key, bad signature) from a revoked one: PSC just says inactive.
fn flaws(mode: &str) -> Vec<(Flaw, &'static str)> {
    let local = mode == "local";
    vec![
        (Flaw::Expired, "token expired"),
        (Flaw::NotYetValid, "token not yet valid"),
        (Flaw::ForeignIssuer, "issuer mismatch"),
        (
            Flaw::UnknownKey,
            if local {
                "unknown signing key"
            } else {
                "token inactive"
            },
        ),
        (Flaw::AlgNone, "unsigned token (alg none)"),
        (Flaw::Hs256WithPublicKey, "algorithm not allowed"),
        (Flaw::WrongAcr, "acr not accepted"),
        (Flaw::RefreshType, "token type is not Bearer"),
        (
            Flaw::BadSignature,
            if local {
                "bad signature"
            } else {
                "token inactive"
            },
        ),
    ]
}

async fn bad_tokens_are_refused(mode: &str) {
    let w = world(mode).await;
    // A first good login loads discovery and keys, as in a running server.
    w.login("house@h.mssante.fr", &w.psc.mint(&TokenSpec::valid(HOUSE)))
        .await
        .unwrap();
    let mut reasons = HashSet::new();
    for (flaw, reason) in flaws(mode) {
        let token = w.psc.mint(&TokenSpec::flawed(HOUSE, flaw));
        w.assert_refused("house@h.mssante.fr", &token, reason).await;
        reasons.insert(reason);
    }
    // Someone else's valid token does not open House's mailbox.
    let wilson = w.psc.mint(&TokenSpec::valid(WILSON));
    w.assert_refused(
        "house@h.mssante.fr",
        &wilson,
        "mailbox not owned by this professional",
    )
    .await;
    reasons.insert("mailbox not owned by this professional");
    w.assert_refused("nobody@h.mssante.fr", &wilson, "no such mailbox")
        .await;
    reasons.insert("no such mailbox");
    let expected = if mode == "local" { 11 } else { 10 };
    assert_eq!(reasons.len(), expected, "reasons are distinct: {reasons:?}");
    // The audit trail holds one row per attempt.
    let rows = w.store.audit_records(None, 100).await.unwrap();
    assert_eq!(rows.len(), 1 + flaws(mode).len() + 2);
}

#[tokio::test]
async fn bad_tokens_local() {
    bad_tokens_are_refused("local").await;
}

#[tokio::test]
async fn bad_tokens_introspection() {
    bad_tokens_are_refused("introspection").await;
}

#[tokio::test]
async fn azp_allow_list() {
    for mode in ["local", "introspection"] {
        let w = world_with(mode, "allowed_azp = [\"thunderbird\"]\n").await;
        let other = w.psc.mint(&TokenSpec::valid(HOUSE));
        w.assert_refused("house@h.mssante.fr", &other, "azp not allowed")
            .await;
        let tb = w.psc.mint(&TokenSpec::valid(HOUSE).with_azp("thunderbird"));
        assert_eq!(
            w.login("house@h.mssante.fr", &tb).await.unwrap(),
            "house@h.mssante.fr"
        );
    }
}

#[tokio::test]
async fn revoked_token_is_refused_by_introspection() {
    let w = world("introspection").await;
    let token = w.psc.mint(&TokenSpec::valid(HOUSE));
    w.psc.revoke(&token);
    w.assert_refused("house@h.mssante.fr", &token, "token inactive")
        .await;
}

#[tokio::test]
async fn key_rotation_is_picked_up_without_restart() {
    for mode in ["local", "introspection"] {
        let w = world_with(mode, "jwks_refetch_interval = \"0s\"\n").await;
        w.login("house@h.mssante.fr", &w.psc.mint(&TokenSpec::valid(HOUSE)))
            .await
            .unwrap();
        let old_kid = w.psc.current_kid();
        let new_kid = w.psc.rotate_key().await.unwrap();
        assert_ne!(old_kid, new_kid);
        let token = w.psc.mint(&TokenSpec::valid(HOUSE));
        assert_eq!(
            w.login("house@h.mssante.fr", &token).await.unwrap(),
            "house@h.mssante.fr",
            "{mode}"
        );
        if mode == "local" {
            assert_eq!(w.psc.jwks_fetches(), 2, "one refetch for the new kid");
        }
    }
}

#[tokio::test]
async fn a_key_psc_withdraws_stops_being_trusted_after_jwks_max_age() {
    let w = world_with(
        "local",
        "jwks_max_age = \"300ms\"\njwks_refetch_interval = \"0s\"\n",
    )
    .await;
    let old_kid = w.psc.current_kid();
    let first = w.psc.mint(&TokenSpec::valid(HOUSE));
    let second = w.psc.mint(&TokenSpec::valid(HOUSE));
    let third = w.psc.mint(&TokenSpec::valid(HOUSE));
    w.login("house@h.mssante.fr", &first).await.unwrap();
    w.psc.rotate_key().await.unwrap();
    assert!(w.psc.withdraw_key(&old_kid));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // PSC unreachable once the keys are due for a check: the keys known stay in use.
    w.psc.set_down(true);
    w.login("house@h.mssante.fr", &second).await.unwrap();
    w.psc.set_down(false);
    // PSC answers again, without the old key: a token it signed is refused.
    w.assert_refused("house@h.mssante.fr", &third, "unknown signing key")
        .await;
    let fresh = w.psc.mint(&TokenSpec::valid(HOUSE));
    w.login("house@h.mssante.fr", &fresh).await.unwrap();
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_once_per_interval() {
    let w = world("local").await;
    w.login("house@h.mssante.fr", &w.psc.mint(&TokenSpec::valid(HOUSE)))
        .await
        .unwrap();
    assert_eq!(w.psc.jwks_fetches(), 1);
    w.psc.rotate_key().await.unwrap();
    // The default interval (1m) has not passed: the new kid stays unknown, PSC is not asked.
    for _ in 0..5 {
        let token = w.psc.mint(&TokenSpec::valid(HOUSE));
        w.assert_refused("house@h.mssante.fr", &token, "unknown signing key")
            .await;
    }
    assert_eq!(w.psc.jwks_fetches(), 1);
}

#[tokio::test]
async fn unreachable_psc_is_a_temporary_failure() {
    // A port that was just closed: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let minter = PscStandIn::start(local()).await.unwrap();
    let token = minter.mint(&TokenSpec::valid(HOUSE));
    for mode in ["local", "introspection"] {
        let dir = tempfile::tempdir().unwrap();
        let section = format!(
            "[psc]\nissuer = \"http://{addr}/auth/realms/esante-wallet\"\nvalidation = \"{mode}\"\n\
             client_id = \"x\"\nclient_secret = \"y\"\nhttp_timeout = \"2s\"\n"
        );
        let config = config(&dir, &section);
        let store = Store::open(&config.server.data_dir, mssante::clock::system())
            .await
            .unwrap();
        mailbox(
            &store,
            "house@h.mssante.fr",
            MailboxKind::Personal,
            Some(HOUSE),
        )
        .await;
        let auth = Authenticator::new(&config, store.clone(), clock::system(), Default::default())
            .await
            .unwrap();
        let outcome = auth
            .authenticate(
                Mechanism::XOAuth2,
                &xoauth2_raw("house@h.mssante.fr", &token),
                &peer(),
            )
            .await;
        assert!(
            matches!(outcome, Err(AuthFailure::Temporary { .. })),
            "{mode}: {outcome:?}"
        );
        let audit = store.audit_records(None, 1).await.unwrap();
        assert_eq!(audit[0].entry.outcome, AuditOutcome::Temporary);
    }
}

#[tokio::test]
async fn psc_answering_5xx_is_temporary_then_recovers() {
    for mode in ["local", "introspection"] {
        let psc = PscStandIn::start(local()).await.unwrap();
        // Down from the start: the server must still start, and catch up later.
        psc.set_down(true);
        let w = world_at(psc, mode, "").await;
        let token = w.psc.mint(&TokenSpec::valid(HOUSE));
        w.assert_temporary(&token).await;
        w.psc.set_down(false);
        assert_eq!(
            w.login("house@h.mssante.fr", &token).await.unwrap(),
            "house@h.mssante.fr",
            "{mode}"
        );
        // Down again once discovery and keys are known: introspection cannot answer.
        if mode == "introspection" {
            w.psc.set_down(true);
            let fresh = w.psc.mint(&TokenSpec::valid(HOUSE));
            w.assert_temporary(&fresh).await;
        }
    }
}

#[tokio::test]
async fn introspection_timeout_is_temporary() {
    let w = world_with("introspection", "http_timeout = \"300ms\"\n").await;
    w.psc.set_introspection_delay(Duration::from_secs(3));
    let token = w.psc.mint(&TokenSpec::valid(HOUSE));
    w.assert_temporary(&token).await;
}

#[tokio::test]
async fn wallet_discovery_path_is_used_when_the_standard_one_is_missing() {
    for mode in ["local", "introspection"] {
        let psc = PscStandIn::start(local()).await.unwrap();
        psc.set_standard_discovery(false);
        let w = world_at(psc, mode, "").await;
        let token = w.psc.mint(&TokenSpec::valid(HOUSE));
        assert_eq!(
            w.login("house@h.mssante.fr", &token).await.unwrap(),
            "house@h.mssante.fr"
        );
        assert!(
            w.auth
                .psc()
                .discovery_url()
                .unwrap()
                .path()
                .ends_with("wallet-openid-configuration")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_validations_share_one_introspection() {
    let w = world("introspection").await;
    w.psc.set_introspection_delay(Duration::from_millis(200));
    let validator = PscValidator::new(&w.config.psc, clock::system(), Default::default()).unwrap();
    let token = Arc::new(w.psc.mint(&TokenSpec::valid(HOUSE)));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let validator = validator.clone();
            let token = Arc::clone(&token);
            tokio::spawn(async move { validator.validate(&token).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().idnat(), HOUSE);
    }
    assert_eq!(w.psc.introspection_calls(), 1);
    // And the answer is cached for later.
    validator.validate(&token).await.unwrap();
    assert_eq!(w.psc.introspection_calls(), 1);
}

#[tokio::test]
async fn temporary_failures_are_not_cached() {
    let w = world("introspection").await;
    let validator = PscValidator::new(&w.config.psc, clock::system(), Default::default()).unwrap();
    let token = w.psc.mint(&TokenSpec::valid(HOUSE));
    w.psc.set_down(true);
    assert!(matches!(
        validator.validate(&token).await,
        Err(TokenError::Temporary(_))
    ));
    w.psc.set_down(false);
    assert_eq!(validator.validate(&token).await.unwrap().idnat(), HOUSE);
}

#[tokio::test]
async fn access_rules() {
    let w = world("local").await;
    let cuddy = w.psc.mint(&TokenSpec::valid(CUDDY));
    let house = w.psc.mint(&TokenSpec::valid(HOUSE));
    // Organisational: the granted IdNat only.
    assert_eq!(
        w.login("secretariat@h.mssante.fr", &cuddy).await.unwrap(),
        "secretariat@h.mssante.fr"
    );
    w.assert_refused(
        "secretariat@h.mssante.fr",
        &house,
        "no access granted to this professional",
    )
    .await;
    // Personal: the owner only.
    w.assert_refused(
        "house@h.mssante.fr",
        &cuddy,
        "mailbox not owned by this professional",
    )
    .await;
    // Applicative: never with a PSC token.
    w.assert_refused(
        "labo@h.mssante.fr",
        &house,
        "applicative mailbox needs a client certificate",
    )
    .await;

    // may_send_as follows the same rules.
    let house_id = Identity::Professional(w.auth.psc().validate(&house).await.unwrap());
    for (address, allowed) in [
        ("house@h.mssante.fr", true),
        ("HOUSE@H.MSSANTE.FR", true),
        ("wilson@h.mssante.fr", false),
        ("labo@h.mssante.fr", false),
    ] {
        let may = w.auth.may_send_as(&house_id, address).await.unwrap();
        assert_eq!(may, allowed, "house as {address}");
    }
    let labo = w
        .auth
        .authenticate(
            Mechanism::External,
            b"",
            &Peer {
                certificate: Some(labo_certificate()),
                ..peer()
            },
        )
        .await
        .unwrap()
        .identity;
    assert!(matches!(labo, Identity::Application(_)));
    for (address, allowed) in [("labo@h.mssante.fr", true), ("house@h.mssante.fr", false)] {
        let may = w.auth.may_send_as(&labo, address).await.unwrap();
        assert_eq!(may, allowed, "labo as {address}");
    }
}

#[tokio::test]
async fn oauthbearer() {
    let w = world("local").await;
    let token = w.psc.mint(&TokenSpec::valid(HOUSE));
    let message = format!(
        "n,a=house@h.mssante.fr,\x01host=mail.h.mssante.fr\x01port=993\x01auth=Bearer {token}\x01\x01"
    );
    let done = w
        .auth
        .authenticate(Mechanism::OAuthBearer, message.as_bytes(), &peer())
        .await
        .unwrap();
    assert_eq!(done.mailbox.address, "house@h.mssante.fr");
    // No authorisation identity: the professional's personal mailbox.
    let message = format!("n,,\x01auth=Bearer {token}\x01\x01");
    let done = w
        .auth
        .authenticate(Mechanism::OAuthBearer, message.as_bytes(), &peer())
        .await
        .unwrap();
    assert_eq!(done.mailbox.address, "house@h.mssante.fr");
    // Refusal carries the RFC 7628 challenge.
    let bad = w.psc.mint(&TokenSpec::flawed(HOUSE, Flaw::Expired));
    let message = format!("n,a=house@h.mssante.fr,\x01auth=Bearer {bad}\x01\x01");
    match w
        .auth
        .authenticate(Mechanism::OAuthBearer, message.as_bytes(), &peer())
        .await
    {
        Err(AuthFailure::Refused {
            reason,
            challenge: Some(c),
        }) => {
            assert_eq!(reason, "token expired");
            let c: serde_json::Value = serde_json::from_slice(&c).unwrap();
            assert_eq!(c["status"], "invalid_token");
            assert!(
                c["openid-configuration"]
                    .as_str()
                    .unwrap()
                    .starts_with(w.psc.issuer().as_str())
            );
        }
        other => panic!("{other:?}"),
    }
    // Channel binding is refused as malformed, without a challenge.
    let message = format!("p=tls-unique,,\x01auth=Bearer {token}\x01\x01");
    match w
        .auth
        .authenticate(Mechanism::OAuthBearer, message.as_bytes(), &peer())
        .await
    {
        Err(AuthFailure::Refused {
            reason,
            challenge: None,
        }) => assert_eq!(reason, "channel binding is not supported"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_messages_are_refused_and_audited() {
    let w = world("local").await;
    for (message, reason) in [
        (&b"garbage"[..], "malformed SASL key-value pair"),
        (
            b"user=house@h.mssante.fr\x01\x01",
            "SASL message carries no auth= field",
        ),
        (
            b"user=house@h.mssante.fr\x01auth=Bearer not.a.jwt\x01\x01",
            "malformed token",
        ),
    ] {
        let outcome = w
            .auth
            .authenticate(Mechanism::XOAuth2, message, &peer())
            .await;
        match outcome {
            Err(AuthFailure::Refused { reason: r, .. }) => assert_eq!(r, reason),
            other => panic!("{other:?}"),
        }
        assert_eq!(w.last_audit().await.entry.reason.as_deref(), Some(reason));
    }
    let huge = xoauth2_raw("house@h.mssante.fr", &"a".repeat(20_000));
    let outcome = w
        .auth
        .authenticate(Mechanism::XOAuth2, &huge, &peer())
        .await;
    assert_eq!(outcome.unwrap_err().reason(), "SASL message too large");
}

#[tokio::test]
async fn external_with_a_certificate() {
    let w = world("local").await;
    let with_cert = Peer {
        certificate: Some(labo_certificate()),
        ..peer()
    };
    let done = w
        .auth
        .authenticate(Mechanism::External, b"", &with_cert)
        .await
        .unwrap();
    assert_eq!(done.mailbox.address, "labo@h.mssante.fr");
    assert_eq!(
        w.last_audit().await.entry.identity.as_deref(),
        Some(labo_certificate().subject.as_str())
    );
    let done = w
        .auth
        .authenticate(Mechanism::External, b"labo@h.mssante.fr", &with_cert)
        .await
        .unwrap();
    assert_eq!(done.mailbox.address, "labo@h.mssante.fr");
    for (peer, authzid, reason) in [
        (
            &with_cert,
            &b"house@h.mssante.fr"[..],
            "a certificate cannot open a personal or organisational mailbox",
        ),
        (
            &with_cert,
            b"secretariat@h.mssante.fr",
            "a certificate cannot open a personal or organisational mailbox",
        ),
        (&peer(), b"labo@h.mssante.fr", "no client certificate"),
    ] {
        match w
            .auth
            .authenticate(Mechanism::External, authzid, peer)
            .await
        {
            Err(AuthFailure::Refused {
                reason: r,
                challenge: None,
            }) => assert_eq!(r, reason),
            other => panic!("{other:?}"),
        }
        let audit = w.last_audit().await;
        assert_eq!(audit.entry.reason.as_deref(), Some(reason));
        assert_eq!(audit.entry.mechanism.as_deref(), Some("EXTERNAL"));
    }
    let stranger = Peer {
        certificate: Some(CertificateIdentity {
            subject: "CN=OTHER,C=FR".into(),
            fingerprint: "ab".into(),
            ..labo_certificate()
        }),
        ..peer()
    };
    assert_eq!(
        w.auth
            .authenticate(Mechanism::External, b"", &stranger)
            .await
            .unwrap_err()
            .reason(),
        "no mailbox bound to this certificate"
    );
}

#[tokio::test]
async fn authorization_code_flow_at_the_stand_in() {
    let w = world("local").await;
    let issuer = w.psc.issuer();
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let redirect = "http://127.0.0.1:9/callback";
    let answer = http
        .get(format!("{issuer}/protocol/openid-connect/auth"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "thunderbird"),
            ("redirect_uri", redirect),
            ("state", "s1"),
            ("login_hint", HOUSE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 302);
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let pairs: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(pairs["state"], "s1");
    let exchange = |code: String| {
        let http = http.clone();
        let issuer = issuer.clone();
        async move {
            http.post(format!("{issuer}/protocol/openid-connect/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", redirect),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let answer = exchange(pairs["code"].clone()).await;
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        w.login("house@h.mssante.fr", token).await.unwrap(),
        "house@h.mssante.fr"
    );
    // A code is good once.
    assert_eq!(exchange(pairs["code"].clone()).await.status(), 400);
}

#[tokio::test]
async fn wrong_client_credentials_are_never_an_acceptance() {
    let psc = PscStandIn::start(local()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        "[psc]\nissuer = \"{}\"\nvalidation = \"introspection\"\nclient_id = \"mssante-operator\"\nclient_secret = \"wrong\"\n",
        psc.issuer()
    );
    let config = config(&dir, &section);
    let validator = PscValidator::new(&config.psc, clock::system(), Default::default()).unwrap();
    let token = psc.mint(&TokenSpec::valid(HOUSE));
    match validator.validate(&token).await {
        Err(TokenError::Temporary(why)) => assert!(why.contains("401"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(psc.introspection_calls(), 1);
}
