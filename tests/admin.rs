//! The admin listener as Prometheus and a load balancer see it: a scripted workload on
//! two operators (IMAP logins good and bad, APPEND, SMTP to a local and to a remote
//! mailbox, lifecycle runs), `/metrics` scraped before and after and parsed by the
//! Prometheus project's own Python parser, every counter checked against what the
//! workload did, and the usage records it left; readiness turning false when the
//! server drains.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use common::Client;
use common::smtp::*;
use common::tools;
use mssante_conformance::psc_standin::{Flaw, TokenSpec};

/// Every sample as `name{label="value",…}` (labels sorted) → value, as parsed by
/// `prometheus_client.parser`.
type Samples = BTreeMap<String, f64>;

const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        out["%s{%s}" % (s.name, labels)] = s.value
print(json.dumps(out))
"#;

/// Whether Python's `prometheus_client` is here: a visible skip on a workstation, a
/// failure in CI (`.ci/run` installs it).
fn parser_available() -> bool {
    let here = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !here {
        tools::skip("python3's prometheus_client is not installed");
    }
    here
}

async fn get(admin: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{admin}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

async fn scrape(admin: SocketAddr) -> Samples {
    let (status, text) = get(admin, "/metrics").await;
    assert_eq!(status, 200, "{text}");
    let mut python = Command::new("python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refused:\n{text}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn value(samples: &Samples, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

/// The samples whose value moved between two scrapes, and by how much.
fn moved(before: &Samples, after: &Samples, prefix: &str) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.clone(), v - value(before, k)))
        .filter(|(_, d)| *d != 0.0)
        .collect()
}

fn expected(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn two_operators(pki: &Pki) -> (Instance, Instance) {
    let mut oa = operator_a(pki);
    oa.sections = "[lifecycle]\ninterval = \"1s\"\n".into();
    start_operators(pki, operator_b(pki), oa).await
}

async fn imap_login(a: &Instance, pki: &Pki, address: &str, token: &str) -> (Client, String) {
    let mut c = Client::plain(a.imap_tls()).await;
    c.upgrade_config(pki.client(None)).await;
    c.line().await;
    let lines = c
        .cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            common::xoauth2(address, token)
        ))
        .await;
    let last = common::last(&lines).to_owned();
    (c, last)
}

#[tokio::test]
async fn metrics_count_exactly_what_the_workload_did() {
    if !parser_available() {
        return;
    }
    let pki = Pki::new();
    let (a, b) = two_operators(&pki).await;
    let admin_a = a.running.admin.expect("admin listener of A");
    let admin_b = b.running.admin.expect("admin listener of B");
    let before = scrape(admin_a).await;
    let before_b = scrape(admin_b).await;

    let sender = a.mailbox("house", IDNAT).await;
    let local = a.mailbox("wilson", OTHER_IDNAT).await;
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;

    // IMAP: one good login and an APPEND, two refused logins.
    let token = a.token();
    let (mut good, answer) = imap_login(&a, &pki, &sender, &token).await;
    assert!(answer.contains("OK"), "{answer}");
    // Open and authenticated: one connection, one session; a connection still at its
    // greeting is open but not a session.
    let mut waiting = Client::plain(a.imap_tls()).await;
    waiting.upgrade_config(pki.client(None)).await;
    waiting.line().await;
    let during = scrape(admin_a).await;
    assert_eq!(
        value(
            &during,
            "mssante_connections_open{listener=\"tls\",protocol=\"IMAP\"}"
        ),
        2.0
    );
    assert_eq!(
        moved(&before, &during, "mssante_sessions_authenticated"),
        expected(&[(
            "mssante_sessions_authenticated{listener=\"tls\",protocol=\"IMAP\"}",
            1.0
        )])
    );
    waiting.cmd("LOGOUT").await;
    good.send(b"a9 APPEND INBOX {5+}\r\nhello\r\n").await;
    let lines = good.until("a9").await;
    assert!(common::last(&lines).contains("OK"), "{lines:?}");
    good.cmd("LOGOUT").await;
    for flaw in [Flaw::Expired, Flaw::BadSignature] {
        let bad = a.psc.mint(&TokenSpec::flawed(IDNAT, flaw));
        let (mut c, answer) = imap_login(&a, &pki, &sender, &bad).await;
        assert!(answer.contains("NO"), "{answer}");
        c.cmd("LOGOUT").await;
    }
    // SMTP submission with the same token (a PSC cache hit), one message to a local
    // and a remote mailbox.
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &token).await;
    assert_eq!(
        value(
            &scrape(admin_a).await,
            "mssante_sessions_authenticated{listener=\"submission_tls\",protocol=\"SMTP\"}"
        ),
        1.0
    );
    let (code, t) = s
        .mail(
            &sender,
            &[&remote, &local],
            &message(&sender, &remote, "counted", 500),
        )
        .await;
    assert_eq!(code, 250, "{t}");
    s.cmd("QUIT").await;
    eventually("delivery to B", || async {
        b.messages(&remote, "INBOX").await.len() == 1
    })
    .await;
    eventually("A's queue to empty", || async {
        a.store().queue_len().await.unwrap() == 0
    })
    .await;
    // The lifecycle runs every second on A: both new mailboxes get published, once.
    eventually("the lifecycle to publish A's mailboxes", || async {
        value(
            &moved(
                &before,
                &scrape(admin_a).await,
                "mssante_lifecycle_mailboxes_total",
            ),
            "mssante_lifecycle_mailboxes_total{action=\"published\"}",
        ) == 2.0
    })
    .await;
    eventually("A's connections to close", || async {
        scrape(admin_a)
            .await
            .iter()
            .filter(|(k, _)| {
                k.starts_with("mssante_connections_open")
                    || k.starts_with("mssante_sessions_authenticated")
            })
            .all(|(_, v)| *v == 0.0)
    })
    .await;

    let after = scrape(admin_a).await;
    let auth = |protocol: &str, outcome: &str, reason: &str| {
        format!(
            "mssante_authentications_total{{mechanism=\"XOAUTH2\",outcome=\"{outcome}\",protocol=\"{protocol}\",reason=\"{reason}\"}}"
        )
    };
    assert_eq!(
        moved(&before, &after, "mssante_authentications_total"),
        expected(&[
            (&auth("imap", "success", "none"), 1.0),
            (&auth("imap", "failure", "token_expired"), 1.0),
            (&auth("imap", "failure", "token_signature"), 1.0),
            (&auth("submission", "success", "none"), 1.0),
        ])
    );
    assert_eq!(
        moved(&before, &after, "mssante_connections_accepted_total"),
        expected(&[
            (
                "mssante_connections_accepted_total{listener=\"tls\",protocol=\"IMAP\"}",
                4.0
            ),
            (
                "mssante_connections_accepted_total{listener=\"submission_tls\",protocol=\"SMTP\"}",
                1.0
            ),
        ])
    );
    assert_eq!(
        moved(&before, &after, "mssante_psc_cache_total"),
        expected(&[
            ("mssante_psc_cache_total{result=\"hit\"}", 1.0),
            ("mssante_psc_cache_total{result=\"miss\"}", 3.0),
        ])
    );
    assert_eq!(
        moved(&before, &after, "mssante_psc_validation_seconds_count"),
        expected(&[("mssante_psc_validation_seconds_count{}", 4.0)])
    );
    assert_eq!(
        moved(&before, &after, "mssante_psc_fetch_failures"),
        expected(&[])
    );
    assert_eq!(
        moved(&before, &after, "mssante_messages_"),
        expected(&[
            (
                "mssante_messages_accepted_total{interface=\"submission\"}",
                1.0
            ),
            ("mssante_messages_appended_total{}", 1.0),
            ("mssante_messages_delivered_locally_total{}", 1.0),
            ("mssante_messages_relayed_total{}", 1.0),
        ])
    );
    let published = moved(&before, &after, "mssante_lifecycle_mailboxes_total");
    assert_eq!(
        published,
        expected(&[(
            "mssante_lifecycle_mailboxes_total{action=\"published\"}",
            2.0
        )])
    );
    assert!(value(&after, "mssante_lifecycle_runs_total{outcome=\"applied\"}") >= 1.0);
    assert_eq!(value(&after, "mssante_queue_depth{}"), 0.0);
    assert_eq!(value(&after, "mssante_queue_oldest_age_seconds{}"), 0.0);
    // Every acknowledged write went through a commit the store reported.
    assert!(
        value(&after, "mssante_store_commit_seconds_count{}")
            > value(&before, "mssante_store_commit_seconds_count{}")
    );
    assert!(value(&after, "mssante_psc_keys_age_seconds{}") >= 0.0);
    // The test PKI's server certificate is valid for years, not days.
    assert!(value(&after, "mssante_certificate_expiry_days{}") > 30.0);
    assert_eq!(value(&after, "mssante_ready{}"), 1.0);
    // A's trust list: B's domain with one certificate, loaded at start.
    assert_eq!(value(&after, "mssante_trust_domains{}"), 1.0);
    assert_eq!(value(&after, "mssante_trust_certificates{}"), 1.0);
    let loaded = value(&after, "mssante_trust_loaded_timestamp_seconds{}");
    let now = mssante::clock::SystemClock::now_utc().timestamp() as f64;
    assert!(loaded <= now && loaded > now - 600.0, "{loaded} {now}");
    // No CRL configured: no CRL figures rather than made-up ones.
    assert!(!after.keys().any(|k| k.starts_with("mssante_crl_")));
    // Every family an operator's dashboards and alerts are built on is there, at zero
    // if nothing happened yet (the CRL figures aside, checked absent above).
    let (_, text) = get(admin_a, "/metrics").await;
    for family in [
        "connections_open gauge",
        "connections_accepted counter",
        "sessions_authenticated gauge",
        "authentications counter",
        "psc_validation_seconds histogram",
        "psc_cache counter",
        "psc_fetch_failures counter",
        "psc_keys_age_seconds gauge",
        "messages_accepted counter",
        "messages_appended counter",
        "messages_delivered_locally counter",
        "messages_relayed counter",
        "messages_deferred counter",
        "messages_bounced counter",
        "queue_depth gauge",
        "queue_oldest_age_seconds gauge",
        "store_commit_seconds histogram",
        "store_commit_batch_size histogram",
        "lifecycle_runs counter",
        "lifecycle_mailboxes counter",
        "trust_domains gauge",
        "trust_certificates gauge",
        "trust_loaded_timestamp_seconds gauge",
        "certificate_expiry_days gauge",
        "ready gauge",
    ] {
        assert!(
            text.contains(&format!("# TYPE mssante_{family}\n")),
            "{family} in\n{text}"
        );
    }

    // The same workload in the durable records the monthly usage figures come from.
    let now = mssante::clock::SystemClock::now_utc();
    let day = chrono::Duration::days(1);
    let usage = a.store().usage(now - day, now + day).await.unwrap();
    assert_eq!(
        usage.messages,
        mssante::store::Traffic {
            submitted: 1,
            delivered: 1,
            relayed: 1,
            ..Default::default()
        }
    );
    assert_eq!(usage.authentications.psc_token, 2);
    assert_eq!(
        (
            usage.personal.created,
            usage.personal.published,
            usage.personal.active
        ),
        (2, 2, 1)
    );
    let usage_b = b.store().usage(now - day, now + day).await.unwrap();
    assert_eq!(
        usage_b.messages,
        mssante::store::Traffic {
            received: 1,
            delivered: 1,
            ..Default::default()
        }
    );

    // B received the relayed message on its operator interface.
    let after_b = scrape(admin_b).await;
    assert_eq!(
        moved(&before_b, &after_b, "mssante_messages_"),
        expected(&[
            (
                "mssante_messages_accepted_total{interface=\"inbound\"}",
                1.0
            ),
            ("mssante_messages_delivered_locally_total{}", 1.0),
        ])
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn readiness_turns_false_when_the_server_drains() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    let admin = a.running.admin.expect("admin listener");
    assert_eq!(get(admin, "/health/live").await, (200, "live\n".into()));
    assert_eq!(get(admin, "/health/ready").await, (200, "ready\n".into()));
    assert_eq!(get(admin, "/nothing").await.0, 404);
    a.running.begin_drain();
    let (status, text) = get(admin, "/health/ready").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("draining"), "{text}");
    assert_eq!(get(admin, "/health/live").await.0, 200);
    a.stop().await;
    // Once stopped, nothing answers any more.
    assert!(tokio::net::TcpStream::connect(admin).await.is_err());
}

/// `GET path` over TLS to the admin listener with `client`; the status line, or None
/// when the connection was refused.
async fn get_tls(
    admin: SocketAddr,
    client: std::sync::Arc<rustls::ClientConfig>,
    path: &str,
) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().map(str::to_owned)
}

/// With `admin.client_ca` the listener speaks TLS and answers only a client that
/// presents a certificate from those CAs.
#[tokio::test]
async fn with_a_client_ca_only_certificate_holders_get_an_answer() {
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.admin_extra = format!("client_ca = {:?}", pki.path("ca.crt").to_string_lossy());
    let a = Instance::start(&pki, o).await;
    let admin = a.running.admin.expect("admin listener");
    assert_eq!(
        get_tls(admin, pki.client(Some("app")), "/health/live")
            .await
            .as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    assert_eq!(get_tls(admin, pki.client(None), "/health/live").await, None);
    // Plain HTTP gets no answer either.
    let plain = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{admin}/health/live"))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
    a.stop().await;
}

/// A node whose store does not answer must not get traffic.
#[tokio::test]
async fn readiness_turns_false_when_the_store_does_not_answer() {
    let pki = Pki::new();
    let a = Instance::start(&pki, Options::new("a.mssante.test")).await;
    let admin = a.running.admin.expect("admin listener");
    assert_eq!(get(admin, "/health/ready").await.0, 200);
    // The store's connections closed under the running server.
    a.store().clone().close().await;
    let (status, text) = get(admin, "/health/ready").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("store unreachable"), "{text}");
    assert!(!text.contains("draining"), "{text}");
    assert_eq!(get(admin, "/health/live").await.0, 200);
    assert_eq!(value(&scrape_raw(admin).await, "mssante_ready"), 0.0);
    a.stop().await;
}

/// The gauges of `/metrics` by name, read without the Python parser (this test needs
/// only one value).
async fn scrape_raw(admin: SocketAddr) -> Samples {
    let (_, text) = get(admin, "/metrics").await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
        .collect()
}

/// With a CRL configured, its figures are the list's own: seconds until its nextUpdate
/// (the test PKI writes midnight UTC of its generation day plus ten years) and seconds
/// since the server loaded it at start.
#[tokio::test]
async fn crl_figures_come_from_the_list_in_force() {
    if !parser_available() {
        return;
    }
    let t0 = mssante::clock::SystemClock::now_utc();
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.crls = true;
    let a = Instance::start(&pki, o).await;
    let samples = scrape(a.running.admin.expect("admin listener")).await;
    let t1 = mssante::clock::SystemClock::now_utc();
    let span = (t1 - t0).num_milliseconds() as f64 / 1e3;
    let next = value(&samples, "mssante_crl_next_update_seconds{}");
    // Written between t0 and t1 (one of their days, should midnight fall in between),
    // scraped between t0 and t1.
    let next_update_of = |t: chrono::DateTime<chrono::Utc>| {
        let midnight = t.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        (midnight + chrono::Duration::days(3650)).timestamp() as f64
    };
    let from = |t: chrono::DateTime<chrono::Utc>| t.timestamp_millis() as f64 / 1e3;
    assert!(
        [next_update_of(t0), next_update_of(t1)]
            .iter()
            .any(|n| next >= n - from(t1) - 1.0 && next <= n - from(t0) + 1.0),
        "{next} s until the next update, PKI written and scraped within {span} s"
    );
    let age = value(&samples, "mssante_crl_age_seconds{}");
    assert!(
        samples.contains_key("mssante_crl_age_seconds{}") && (0.0..=span + 1.0).contains(&age),
        "{age} s since the CRL was loaded, server started and scraped within {span} s"
    );
    a.stop().await;
}
