//! The conformance suite against our own server: every applicable case must pass, and
//! the report (HTML + JSON) lands in `target/conformance/` for CI to publish.

mod common;

use common::tools;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mssante::config::Config;
use mssante::server;
use mssante::store::{DirectoryFields, Grant, MailboxKind, NewMailbox};
use mssante_conformance::psc_standin::PscStandIn;
use mssante_conformance::{self as conformance, ClientCertificate, Outcome, Report, Target};

const IDNAT: &str = "899700771191";
const MAILBOX: &str = "jean.dupont@sandbox.mssante.fr";
const APP_MAILBOX: &str = "labo@sandbox.mssante.fr";

fn mailbox(address: &str, kind: MailboxKind, owner: Option<&str>) -> NewMailbox {
    NewMailbox {
        address: address.into(),
        kind,
        owner: owner.map(str::to_owned),
        display_name: None,
        created_at: mssante::clock::SystemClock::now_utc(),
        red_list: false,
        directory: DirectoryFields::default(),
    }
}

fn report_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance")
}

/// Our server with every listener, trusting a fresh stand-in in `mode` ("local" or
/// "introspection"), run through the whole suite; the report is written as `name`.
async fn run_suite(mode: &str, name: &str) -> (Report, PathBuf, PathBuf) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    mssante_conformance::pki::generate(&certs).unwrap();
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    // The runner plays another operator on the inbound port, with operator2's
    // certificate listed for its domain.
    let operator2 =
        mssante::auth::certificate::identity_from_pem_file(&certs.join("operator2.crt"))
            .unwrap()
            .subject;
    std::fs::write(
        dir.path().join("listeblanchemssante.xml"),
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListeBlanche xmlns=\"https://listeblanche.mssante.fr/schema\">\n\
             <Domaine><Nom>operator2.mssante.fr</Nom><DNCertificatOperateur>{}</DNCertificatOperateur></Domaine>\n</ListeBlanche>\n",
            operator2.replace('&', "&amp;")
        ),
    )
    .unwrap();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[server]\nhostname = \"mail.sandbox.mssante.fr\"\ndomains = [\"sandbox.mssante.fr\"]\ndata_dir = \"data\"\n\
         [tls]\ncertificate = \"certs/server.crt\"\nprivate_key = \"certs/server.key\"\nclient_ca = \"certs/ca.crt\"\ncrls = [\"certs/organisations.crl\"]\n\
         [imap]\ntls = [\"127.0.0.1:0\"]\nstarttls = [\"127.0.0.1:0\"]\n\
         [smtp]\nsubmission_tls = [\"127.0.0.1:0\"]\nsubmission_starttls = [\"127.0.0.1:0\"]\ninbound = [\"127.0.0.1:0\"]\n\
         [trust]\nlist = \"listeblanchemssante.xml\"\n\
         [session]\nsasl_challenge_timeout = \"1s\"\nauth_failures_before_delay = 1000\n{}",
        psc.config_toml(mode)
    );
    let config = Config::parse(&text, dir.path()).unwrap();
    let running = server::start(config, mssante::clock::system())
        .await
        .unwrap();
    let store = &running.context.store;
    store
        .create_mailbox(mailbox(MAILBOX, MailboxKind::Personal, Some(IDNAT)))
        .await
        .unwrap();
    store
        .create_mailbox(mailbox(APP_MAILBOX, MailboxKind::Applicative, None))
        .await
        .unwrap();
    let app = mssante::auth::certificate::identity_from_pem_file(&certs.join("app.crt")).unwrap();
    store
        .add_grant(
            APP_MAILBOX,
            Grant::CertificateSubject {
                subject: app.subject,
                issuer: app.issuer,
            },
        )
        .await
        .unwrap();

    let mut target = Target::new(MAILBOX, IDNAT);
    target.imap = Some(running.imap.tls[0].to_string());
    target.imap_starttls = Some(running.imap.starttls[0].to_string());
    target.smtp = Some(running.smtp.submission_tls[0].to_string());
    target.smtp_starttls = Some(running.smtp.submission_starttls[0].to_string());
    target.inbound = Some(running.smtp.inbound[0].to_string());
    target.inbound_from = Some("conformance@operator2.mssante.fr".into());
    target.operator_certificate = Some(ClientCertificate {
        certificate: certs.join("operator2.crt"),
        key: certs.join("operator2.key"),
        mailbox: None,
    });
    target.ca = Some(certs.join("ca.crt"));
    target.certificate = Some(ClientCertificate {
        certificate: certs.join("app.crt"),
        key: certs.join("app.key"),
        mailbox: Some(APP_MAILBOX.into()),
    });
    target.bad_certificate = Some(ClientCertificate {
        certificate: certs.join("expired.crt"),
        key: certs.join("expired.key"),
        mailbox: Some(APP_MAILBOX.into()),
    });
    target.unanswered_challenge_wait = Duration::from_secs(10);

    let report = conformance::run(&psc, &target).await.unwrap();
    running.stop().await;
    let html = report_dir().join(name);
    let json = report.write(&html).unwrap();
    eprintln!("conformance report: {}", html.display());
    (report, html, json)
}

fn failures(report: &Report) -> Vec<String> {
    report
        .cases
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
        .map(|c| format!("{}: {}", c.info.id, c.outcome.detail()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_passes_every_applicable_case() {
    let (report, html, json) = run_suite("local", "report.html").await;

    let failures = failures(&report);
    assert!(failures.is_empty(), "failed cases: {failures:#?}");

    // What must have run (not skipped) against an IMAP server with both ports and
    // certificates: a skipped case here would hide a gap.
    for id in [
        "imap-capabilities-tls",
        "imap-login-refused",
        "imap-xoauth2-sasl-ir",
        "imap-xoauth2-continuation",
        "imap-oauthbearer",
        "imap-xoauth2-expired",
        "imap-xoauth2-foreign-issuer",
        "imap-xoauth2-bad-signature",
        "imap-xoauth2-alg-none",
        "imap-xoauth2-hs256-confusion",
        "imap-xoauth2-unknown-kid",
        "imap-wrong-idnat",
        "imap-psc-unavailable",
        "imap-xoauth2-error-challenge",
        "imap-oauthbearer-error-challenge",
        "imap-challenge-unanswered",
        "imap-challenge-new-command",
        "imap-external-without-certificate",
        "imap-external-certificate",
        "imap-external-bad-certificate",
        "imap-starttls-capabilities",
        "imap-starttls-authenticate-before-tls",
        "imap-starttls-login-before-tls",
        "smtp-ehlo-tls",
        "smtp-xoauth2-sasl-ir",
        "smtp-xoauth2-continuation",
        "smtp-oauthbearer",
        "smtp-xoauth2-expired",
        "smtp-xoauth2-foreign-issuer",
        "smtp-xoauth2-bad-signature",
        "smtp-xoauth2-alg-none",
        "smtp-wrong-idnat",
        "smtp-psc-unavailable",
        "smtp-xoauth2-error-challenge",
        "smtp-sender-own-mailbox",
        "smtp-sender-other-refused",
        "smtp-external-certificate",
        "smtp-external-bad-certificate",
        "smtp-starttls-ehlo",
        "smtp-starttls-auth-before-tls",
        "smtp-operator-interface",
        "smtp-operator-interface-no-certificate",
    ] {
        let case = report
            .case(id)
            .unwrap_or_else(|| panic!("case {id} missing"));
        assert!(
            matches!(case.outcome, Outcome::Pass(_)),
            "{id}: {:?}",
            case.outcome
        );
        assert!(!case.transcript.is_empty(), "{id} has no transcript");
    }
    // Old TLS versions: refused, or skipped only because this machine cannot offer them.
    for id in [
        "imap-tls10-refused",
        "imap-tls11-refused",
        "smtp-tls11-refused",
    ] {
        let case = report.case(id).unwrap();
        match &case.outcome {
            Outcome::Pass(_) => {}
            // A machine whose OpenSSL cannot speak the old versions cannot test them;
            // a missing python3 is a gap in the machine, which CI must not have.
            Outcome::Skipped(why) if why.contains("python3") => {
                tools::skip(&format!("{id}: {why}"))
            }
            Outcome::Skipped(why) => assert!(why.contains("OpenSSL"), "{id} skipped: {why}"),
            Outcome::Fail(why) => panic!("{id}: {why}"),
        }
    }

    // No token in any transcript: every minted token is redacted.
    let text = report.to_json();
    assert!(text.contains("<token redacted>") || text.contains("token, redacted"));
    assert!(
        !text.contains(".eyJ"),
        "a JWT leaked into the report transcripts"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("imap-xoauth2-expired") && !page.contains("<script"));
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(parsed["summary"]["failed"], 0);

    // The report is handed to the ANS: it cites public documents, never our own notes,
    // and every case says where its rule comes from.
    for text in [&page, &std::fs::read_to_string(&json).unwrap()] {
        assert!(!text.contains("DOMAIN.md"), "the report cites DOMAIN.md");
    }
    assert!(page.contains("Requirement (public reference)"));
    let cases = parsed["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let reference = case["reference"].as_str().unwrap_or_default();
        assert!(
            reference.contains("ANS") || reference.contains("RFC"),
            "{} has no public reference: {reference:?}",
            case["id"]
        );
    }
}

/// The ANS application also exposes introspection: a server validating that way passes
/// the same cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_server_passes_with_introspection_too() {
    let (report, _, _) = run_suite("introspection", "report-introspection.html").await;
    let failures = failures(&report);
    assert!(failures.is_empty(), "failed cases: {failures:#?}");
    assert!(report.summary.passed >= 48, "{:?}", report.summary);
}

/// A target given no address: every case is reported skipped, and says which option is
/// missing, rather than failing or vanishing from the report.
#[tokio::test]
async fn cases_without_an_address_are_skipped_with_the_missing_option() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let report = conformance::run(&psc, &Target::new(MAILBOX, IDNAT))
        .await
        .unwrap();
    assert!(!report.cases.is_empty());
    for case in &report.cases {
        match &case.outcome {
            Outcome::Skipped(why) => assert!(why.starts_with("no --"), "{}: {why}", case.info.id),
            other => panic!("{}: {other:?}", case.info.id),
        }
    }
    let why = |id: &str| report.case(id).unwrap().outcome.detail().to_owned();
    assert_eq!(why("imap"), "no --imap address given");
    assert_eq!(
        why("imap-starttls-capabilities"),
        "no --imap-starttls address given"
    );
    assert_eq!(
        why("smtp-starttls-ehlo"),
        "no --smtp-starttls address given"
    );
}
