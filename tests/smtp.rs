//! SMTP over real TLS on loopback: submission on both ports with Python's smtplib, swaks
//! and a raw client, every refusal, local delivery through the store, two operators
//! exchanging mail through the trust space, the outbound queue, DSNs, and a server
//! killed with SIGKILL in the middle of a delivery storm.

mod common;

use common::smtp as smtp_support;
use common::tools;
use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mssante::store::AuditOutcome;
use smtp_support::*;

const SMTPLIB: &str = r#"
import base64, smtplib, ssl, sys
mode, port, ca, user, token, rcpt, subject = sys.argv[1:8]
ctx = ssl.create_default_context(cafile=ca)
if mode == "tls":
    s = smtplib.SMTP_SSL("127.0.0.1", int(port), context=ctx, timeout=30)
else:
    s = smtplib.SMTP("127.0.0.1", int(port), timeout=30)
    s.ehlo("lps.test")
    print("before-tls-auth", s.has_extn("auth"))
    s.starttls(context=ctx)
s.ehlo("lps.test")
print("auth", s.esmtp_features.get("auth", "").strip())
ir = base64.b64encode(("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode()).decode()
code, msg = s.docmd("AUTH", "XOAUTH2 " + ir)
print("auth-code", code)
msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nX-MSS-INS:  1 84 12\t75\r\n\r\nHello .\r\n.leading dot\r\n" % (user, rcpt, subject))
refused = s.sendmail(user, [rcpt], msg)
print("refused", len(refused))
s.quit()
"#;

const IMAPLIB: &str = r#"
import imaplib, ssl, sys
port, ca, user, token = sys.argv[1:5]
ctx = ssl.create_default_context(cafile=ca)
m = imaplib.IMAP4_SSL("127.0.0.1", int(port), ssl_context=ctx, timeout=30)
m.authenticate("XOAUTH2", lambda _: ("user=%s\x01auth=Bearer %s\x01\x01" % (user, token)).encode())
m.select("INBOX")
typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT X-MSS-INS)])")
for part in data:
    if isinstance(part, tuple):
        print(repr(part[1].decode()))
m.logout()
"#;

fn python(script: &str, args: &[String]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

async fn one_instance() -> (Pki, Instance) {
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
    let a = Instance::start(&pki, o).await;
    (pki, a)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

on_both_backends! {
#[tokio::test]
async fn smtplib_submits_on_both_ports_and_mail_lands_in_the_inbox() {
    if !tools::available("python3") {
        return;
    }
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    for (mode, addr, subject) in [
        ("tls", a.submission_tls(), "over 465"),
        ("starttls", a.submission_starttls(), "over 587"),
    ] {
        let args = vec![
            mode.to_string(),
            addr.port().to_string(),
            pki.path("ca.crt").to_string_lossy().into_owned(),
            sender.clone(),
            a.token(),
            rcpt.clone(),
            subject.to_string(),
        ];
        let out = tokio::task::spawn_blocking(move || python(SMTPLIB, &args))
            .await
            .unwrap();
        assert!(out.contains("auth XOAUTH2 OAUTHBEARER"), "{out}");
        assert!(out.contains("auth-code 235"), "{out}");
        assert!(out.contains("refused 0"), "{out}");
        if mode == "starttls" {
            assert!(out.contains("before-tls-auth False"), "{out}");
        }
    }
    let inbox = a.messages(&rcpt, "INBOX").await;
    assert_eq!(inbox.len(), 2);
    for (m, subject) in inbox.iter().zip(["over 465", "over 587"]) {
        let t = text(m);
        assert!(
            t.starts_with("Received: from lps.test ([127.0.0.1])"),
            "{t}"
        );
        assert!(t.contains("with ESMTPSA"));
        // The MSSanté header is passed byte for byte, spacing and tab included.
        assert!(t.contains("\r\nX-MSS-INS:  1 84 12\t75\r\n"), "{t}");
        assert!(t.contains(&format!("Subject: {subject}\r\n")));
        // RFC 6409: the server completes what the client left out.
        assert!(t.contains("\r\nMessage-ID: <"), "{t}");
        assert!(t.contains("\r\nDate: "), "{t}");
        // Dot-stuffing undone.
        assert!(t.ends_with("Hello .\r\n.leading dot\r\n"), "{t}");
    }
    // save_sent = true: the sender keeps a copy.
    assert_eq!(a.messages(&sender, "Sent").await.len(), 2);
    // The recipient reads both over IMAP.
    let args = vec![
        a.imap_tls().port().to_string(),
        pki.path("ca.crt").to_string_lossy().into_owned(),
        rcpt.clone(),
        a.psc
            .mint(&mssante_conformance::psc_standin::TokenSpec::valid(
                OTHER_IDNAT,
            )),
    ];
    let out = tokio::task::spawn_blocking(move || python(IMAPLIB, &args))
        .await
        .unwrap();
    assert!(out.contains("Subject: over 465"), "{out}");
    assert!(out.contains("Subject: over 587"), "{out}");
    assert!(out.contains(r"X-MSS-INS:  1 84 12\t75"), "{out}");
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn swaks_talks_to_both_interfaces() {
    if !tools::available("swaks") {
        return;
    }
    let (pki, a) = one_instance().await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    // Submission without TLS: swaks must not be offered AUTH, and MAIL is refused.
    let starttls = a.submission_starttls();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", starttls.port())])
            .args([
                "--from",
                "house@a.mssante.test",
                "--to",
                "wilson@a.mssante.test",
            ])
            .args(["--timeout", "20"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let transcript = text(&out.stdout);
    assert!(!out.status.success(), "{transcript}");
    assert!(transcript.contains("530 5.7.0"), "{transcript}");
    assert!(transcript.contains("STARTTLS"), "{transcript}");
    assert!(!transcript.contains("AUTH XOAUTH2"), "{transcript}");
    // The operator interface: STARTTLS with operator2's certificate, listed for
    // b.mssante.test; pipelined.
    let inbound = a.inbound();
    let cert = pki.path("operator2.crt");
    let key = pki.path("operator2.key");
    let rcpt2 = rcpt.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", inbound.port())])
            .args(["--tls", "--tls-cert"])
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .args(["--from", "cuddy@b.mssante.test", "--to", &rcpt2])
            .args([
                "--header",
                "X-MSS-MES: ACK",
                "--pipeline",
                "--timeout",
                "20",
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let transcript = text(&out.stdout);
    assert!(out.status.success(), "{transcript}\n{}", text(&out.stderr));
    let inbox = a.messages(&rcpt, "INBOX").await;
    assert_eq!(inbox.len(), 1);
    let t = text(&inbox[0]);
    assert!(t.contains("with ESMTPS"), "{t}");
    assert!(t.contains("X-MSS-MES: ACK"), "{t}");
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn no_auth_and_no_mail_before_tls_and_no_mail_before_auth() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut s = plain(a.submission_starttls()).await;
    let (code, ehlo) = s.cmd("EHLO client.test").await;
    assert_eq!(code, 250);
    assert!(ehlo.contains("STARTTLS"));
    assert!(!ehlo.contains("AUTH"), "{ehlo}");
    let (code, t) = s
        .cmd(&format!("AUTH XOAUTH2 {}", xoauth2(&sender, &a.token())))
        .await;
    assert_eq!(code, 530, "{t}");
    assert!(t.starts_with("5.7.0"));
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 530);
    // A command pipelined after STARTTLS in clear text is never executed.
    s.send("STARTTLS\r\nNOOP\r\n").await;
    assert_eq!(s.reply().await.0, 220);
    let tcp = s.io.into_inner();
    let tls = tokio_rustls::TlsConnector::from(pki.client(None))
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut s = Smtp {
        io: tokio::io::BufReader::new(tls),
    };
    let (code, ehlo) = s.cmd("EHLO client.test").await;
    assert_eq!(code, 250, "the NOOP must have been discarded: {ehlo}");
    assert!(ehlo.contains("AUTH XOAUTH2 OAUTHBEARER"), "{ehlo}");
    assert!(!ehlo.contains("EXTERNAL"), "no client certificate: {ehlo}");
    for ext in [
        "SIZE 65536",
        "8BITMIME",
        "PIPELINING",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "DSN",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing: {ehlo}");
    }
    let (code, t) = s.cmd(&format!("MAIL FROM:<{sender}>")).await;
    assert_eq!((code, t.as_str()), (530, "5.7.0 Authentication required"));
    // With a client certificate, EXTERNAL is offered too.
    let mut s = implicit(a.submission_tls(), pki.client(Some("app"))).await;
    let (_, ehlo) = s.cmd("EHLO client.test").await;
    assert!(ehlo.contains("AUTH XOAUTH2 OAUTHBEARER EXTERNAL"), "{ehlo}");
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_bad_token_gets_the_challenge_then_535_and_is_audited() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO client.test").await;
    let (code, challenge) = s
        .cmd(&format!("AUTH XOAUTH2 {}", xoauth2(&sender, "not-a-token")))
        .await;
    assert_eq!(code, 334);
    let json = String::from_utf8(BASE64.decode(challenge.trim()).unwrap()).unwrap();
    assert!(json.contains("\"status\":\"401\""), "{json}");
    let (code, t) = s.cmd("").await;
    assert_eq!(code, 535);
    assert!(t.starts_with("5.7.8"), "{t}");
    // Without an initial response: 334, then the response, then the same round trip;
    // a client that never answers the challenge gets 535 after the timeout.
    let (code, _) = s.cmd("AUTH XOAUTH2").await;
    assert_eq!(code, 334);
    let (code, _) = s.cmd(&xoauth2(&sender, "still-not-a-token")).await;
    assert_eq!(code, 334);
    let (code, _) = s.reply().await;
    assert_eq!(code, 535);
    // A line longer than smtp-proto's 4,096 bytes is read whole (RFC 4954: 12,288).
    let long = "x".repeat(9000);
    let (code, t) = s
        .cmd(&format!("AUTH XOAUTH2 {}", xoauth2(&sender, &long)))
        .await;
    assert_eq!(code, 334, "{t}");
    assert_eq!(s.cmd("").await.0, 535);
    let refusals = a
        .audited(|e| e.protocol == "submission" && e.outcome == AuditOutcome::Failure)
        .await;
    assert!(refusals >= 3, "{refusals}");
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn psc_down_is_a_temporary_failure() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let token = a.token();
    a.psc.set_down(true);
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO client.test").await;
    let (code, t) = s
        .cmd(&format!("AUTH XOAUTH2 {}", xoauth2(&sender, &token)))
        .await;
    assert_eq!(code, 454, "{t}");
    // What failed (an HTTP or database error) is for the log, not the client.
    assert_eq!(t, "4.7.0 Temporary authentication failure, try again later");
    a.psc.set_down(false);
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn sender_and_recipient_policy() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let other = a.mailbox("cuddy", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    // Not a mailbox this professional may send as.
    let (code, t) = s.cmd(&format!("MAIL FROM:<{other}>")).await;
    assert_eq!(code, 550, "{t}");
    assert!(t.starts_with("5.7.1") && t.contains("may send as"), "{t}");
    assert_eq!(s.cmd("MAIL FROM:<>").await.0, 550);
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
    let (code, t) = s.cmd("RCPT TO:<nobody@a.mssante.test>").await;
    assert_eq!(code, 550);
    assert!(t.starts_with("5.1.1"), "{t}");
    let (code, t) = s.cmd("RCPT TO:<someone@gmail.com>").await;
    assert_eq!(code, 550);
    assert!(t.starts_with("5.7.1") && t.contains("trust space"), "{t}");
    // A trust-space domain is accepted (and queued).
    assert_eq!(s.cmd("RCPT TO:<x@b.mssante.test>").await.0, 250);
    for i in 0..59 {
        let local = a.mailbox(&format!("r{i}"), OTHER_IDNAT).await;
        assert_eq!(s.cmd(&format!("RCPT TO:<{local}>")).await.0, 250);
    }
    let (code, t) = s.cmd("RCPT TO:<cuddy@a.mssante.test>").await;
    assert_eq!(code, 452, "{t}");
    assert_eq!(s.cmd("RSET").await.0, 250);
    assert_eq!(s.cmd("DATA").await.0, 503);
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn size_limits() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let (code, t) = s.cmd(&format!("MAIL FROM:<{sender}> SIZE=70000")).await;
    assert_eq!(code, 552, "{t}");
    assert!(t.starts_with("5.3.4"));
    let (code, t) = s
        .mail(&sender, &[&rcpt], &message(&sender, &rcpt, "big", 70_000))
        .await;
    assert_eq!(code, 552, "{t}");
    assert!(t.starts_with("5.3.4"));
    // BDAT: the chunks add up past the limit.
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
    assert_eq!(s.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
    let chunk = "a".repeat(40_000);
    s.send(&format!("BDAT 40000\r\n{chunk}")).await;
    assert_eq!(s.reply().await.0, 250);
    s.send(&format!("BDAT 40000 LAST\r\n{chunk}")).await;
    let (code, t) = s.reply().await;
    assert_eq!(code, 552, "{t}");
    // The session goes on, and nothing was stored.
    assert_eq!(s.cmd("NOOP").await.0, 250);
    assert!(a.messages(&rcpt, "INBOX").await.is_empty());
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn pipelined_commands_and_bdat() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    // Everything up to DATA in one write (RFC 2920).
    s.send(&format!(
        "EHLO client.test\r\nAUTH XOAUTH2 {}\r\nMAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nRCPT TO:<nobody@a.mssante.test>\r\nDATA\r\n",
        xoauth2(&sender, &a.token())
    ))
    .await;
    let codes: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..6 {
            v.push(s.reply().await.0);
        }
        v
    };
    assert_eq!(codes, vec![250, 235, 250, 250, 550, 354]);
    s.send(&dot_stuff(&message(&sender, &rcpt, "pipelined", 100)))
        .await;
    assert_eq!(s.reply().await.0, 250);
    // CHUNKING: two chunks, the second LAST; binary-safe, no dot-stuffing.
    let body = message(&sender, &rcpt, "chunked", 10);
    let (one, two) = body.split_at(body.len() / 2);
    s.send(&format!(
        "MAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nBDAT {}\r\n{one}BDAT {} LAST\r\n{two}",
        one.len(),
        two.len()
    ))
    .await;
    for _ in 0..4 {
        assert_eq!(s.reply().await.0, 250);
    }
    assert_eq!(s.cmd("QUIT").await.0, 221);
    let inbox = a.messages(&rcpt, "INBOX").await;
    assert_eq!(inbox.len(), 2);
    assert!(text(&inbox[1]).ends_with(&body));
    a.stop().await;
}
}

#[tokio::test]
async fn fifty_local_recipients_share_one_stored_body() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut recipients = Vec::new();
    for i in 0..50 {
        recipients.push(a.mailbox(&format!("ward{i}"), OTHER_IDNAT).await);
    }
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let to: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let (code, t) = s
        .mail(
            &sender,
            &to,
            &message(&sender, "ward@a.mssante.test", "to all", 4096),
        )
        .await;
    assert_eq!(code, 250, "{t}");
    let store = a.store();
    let mut bodies = std::collections::HashSet::new();
    for r in &recipients {
        let mailbox = store.mailbox(r).await.unwrap().unwrap();
        let inbox = store.folder(mailbox.id, "INBOX").await.unwrap().unwrap();
        let messages = store.messages(inbox.id).await.unwrap();
        assert_eq!(messages.len(), 1, "{r}");
        bodies.insert(messages[0].body_id);
    }
    assert_eq!(bodies.len(), 1, "one body for 50 recipients");
    // Count the rows of `bodies` in the database file itself (the Sent copy is the
    // same bytes, so it shares the row too).
    let db = a.dir.path().join("data").join("mssante.db");
    let url = format!("sqlite://{}?mode=ro", db.to_string_lossy());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM bodies")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    pool.close().await;
    a.stop().await;
}

/// A (server.crt) and B (operator2.crt), each listing the other in its trust list;
/// A's route for B's domain points at B's inbound port.
async fn two_operators(pki: &Pki, b_lists_a: bool) -> (Instance, Instance) {
    let mut ob = operator_b(pki);
    if !b_lists_a {
        ob.trust = vec![("a.mssante.test".into(), pki.dn("app2"))];
    }
    start_operators(pki, ob, operator_a(pki)).await
}

on_both_backends! {
#[tokio::test]
async fn two_operators_exchange_mail_through_the_trust_space() {
    let pki = Pki::new();
    let (a, b) = two_operators(&pki, true).await;
    let sender = a.mailbox("house", IDNAT).await;
    let local = a.mailbox("wilson", OTHER_IDNAT).await;
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let (code, t) = s
        .mail(
            &sender,
            &[&remote, &local],
            &message(&sender, &remote, "across", 2000),
        )
        .await;
    assert_eq!(code, 250, "{t}");
    // The local copy is there at once; the remote one once the queue ran.
    assert_eq!(a.messages(&local, "INBOX").await.len(), 1);
    eventually("delivery to B", || async {
        b.messages(&remote, "INBOX").await.len() == 1
    })
    .await;
    eventually("A's queue to empty", || async {
        a.store().queue_len().await.unwrap() == 0
    })
    .await;
    let got = text(&b.messages(&remote, "INBOX").await[0]);
    assert!(
        got.contains("X-MSS-INS:  1 84 12 75 123 456 78\t\r\n"),
        "{got}"
    );
    assert_eq!(got.matches("Received: ").count(), 2, "{got}");
    // No failure notice went back.
    assert_eq!(a.messages(&sender, "INBOX").await.len(), 0);
    a.stop().await;
    b.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn the_operator_interface_refuses_unlisted_peers() {
    let pki = Pki::new();
    let (a, b) = two_operators(&pki, true).await;
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;
    // No STARTTLS: MAIL is refused.
    let mut s = plain(b.inbound()).await;
    s.cmd("EHLO mx.a.mssante.test").await;
    assert_eq!(s.cmd("MAIL FROM:<house@a.mssante.test>").await.0, 530);
    // TLS without a client certificate.
    let mut s = starttls(plain(b.inbound()).await, pki.client(None)).await;
    s.cmd("EHLO mx.a.mssante.test").await;
    let (code, t) = s.cmd("MAIL FROM:<house@a.mssante.test>").await;
    assert_eq!(code, 550, "{t}");
    assert!(t.starts_with("5.7.1"));
    // A valid IGC-Santé certificate that the trust list does not name for the domain.
    let mut s = starttls(plain(b.inbound()).await, pki.client(Some("operator2"))).await;
    s.cmd("EHLO mx.a.mssante.test").await;
    let (code, t) = s.cmd("MAIL FROM:<house@a.mssante.test>").await;
    assert_eq!(code, 550, "{t}");
    assert!(t.contains("not listed for a.mssante.test"), "{t}");
    // The listed certificate is accepted; relaying to a non-local domain is not.
    let mut s = starttls(plain(b.inbound()).await, pki.client(Some("server"))).await;
    s.cmd("EHLO mx.a.mssante.test").await;
    assert_eq!(s.cmd("MAIL FROM:<house@a.mssante.test>").await.0, 250);
    let (code, t) = s.cmd("RCPT TO:<x@c.mssante.test>").await;
    assert_eq!(code, 550, "{t}");
    assert!(t.starts_with("5.7.1"));
    assert_eq!(s.cmd(&format!("RCPT TO:<{remote}>")).await.0, 250);
    assert_eq!(s.cmd("QUIT").await.0, 221);
    let audit = b.store().audit_records(None, 100).await.unwrap();
    let inbound: Vec<_> = audit
        .iter()
        .filter(|r| r.entry.protocol == "inbound")
        .collect();
    assert!(inbound.len() >= 3, "{audit:?}");
    assert!(
        inbound
            .iter()
            .all(|r| r.entry.outcome == AuditOutcome::Failure)
    );
    a.stop().await;
    b.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_permanent_refusal_sends_a_dsn_to_the_sender() {
    let pki = Pki::new();
    // B does not list A's certificate: its inbound interface answers 550 5.7.1.
    let (a, b) = two_operators(&pki, false).await;
    let sender = a.mailbox("house", IDNAT).await;
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let (code, _) = s
        .cmd(&format!("MAIL FROM:<{sender}> RET=HDRS ENVID=env42"))
        .await;
    assert_eq!(code, 250);
    assert_eq!(s.cmd(&format!("RCPT TO:<{remote}>")).await.0, 250);
    assert_eq!(s.cmd("DATA").await.0, 354);
    s.send(&dot_stuff(&message(&sender, &remote, "refused", 100)))
        .await;
    assert_eq!(s.reply().await.0, 250);
    eventually("the failure notice", || async {
        a.messages(&sender, "INBOX").await.len() == 1
    })
    .await;
    let dsn = a.messages(&sender, "INBOX").await.remove(0);
    let parsed = mail_parser::MessageParser::default().parse(&dsn).unwrap();
    let t = text(&dsn);
    assert!(t.contains("multipart/report"), "{t}");
    assert!(t.contains("delivery-status"), "{t}");
    assert!(
        t.contains(&format!("Final-Recipient: rfc822; {remote}")),
        "{t}"
    );
    assert!(t.contains("Status: 5.7.1"), "{t}");
    assert!(t.contains("Original-Envelope-Id: env42"), "{t}");
    assert!(t.contains("Subject: refused"), "headers returned: {t}");
    assert!(!t.contains("Lorem ipsum"), "RET=HDRS: no body: {t}");
    assert_eq!(
        parsed.subject(),
        Some("Undelivered Mail Returned to Sender")
    );
    assert!(b.messages(&remote, "INBOX").await.is_empty());
    assert_eq!(a.store().queue_len().await.unwrap(), 0);
    a.stop().await;
    b.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn a_queued_message_goes_out_when_the_remote_comes_back() {
    let pki = Pki::new();
    // B's address, closed while A tries.
    let gate = Gate::new().await;
    let b_addr = gate.addr.to_string();
    let mut oa = Options::new("a.mssante.test");
    oa.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
    oa.routes = vec![("b.mssante.test".into(), b_addr.clone())];
    let a = Instance::start(&pki, oa).await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let (code, t) = s
        .mail(
            &sender,
            &["cameron@b.mssante.test"],
            &message(&sender, "cameron@b.mssante.test", "later", 500),
        )
        .await;
    assert_eq!(code, 250, "{t}");
    // Let a few attempts fail.
    eventually("a failed attempt", || async {
        let due = a
            .store()
            .queue_due(
                mssante::clock::SystemClock::now_utc() + chrono::Duration::days(1),
                10,
            )
            .await
            .unwrap();
        due.first().is_some_and(|m| m.attempts >= 1)
    })
    .await;
    let b = Instance::start(&pki, operator_b(&pki)).await;
    gate.open(b.inbound());
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;
    eventually("delivery once B is up", || async {
        b.messages(&remote, "INBOX").await.len() == 1
    })
    .await;
    eventually("A's queue to empty", || async {
        a.store().queue_len().await.unwrap() == 0
    })
    .await;
    assert!(a.messages(&sender, "INBOX").await.is_empty(), "no DSN");
    a.stop().await;
    b.stop().await;
}
}

/// The real binary, killed with SIGKILL while 8 clients submit as fast as they can,
/// then restarted: every message that got its 250 is stored exactly once, and none
/// is stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_message_lost_or_duplicated_across_sigkill() {
    let pki = Pki::new();
    let psc = mssante_conformance::psc_standin::PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut o = Options::new("a.mssante.test");
    o.listeners = Listeners {
        submission_tls: on_port(port),
        submission_starttls: None,
        inbound: None,
        ..Listeners::all()
    };
    let config_path = write_config(&pki, dir.path(), &psc, &o, "");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // Mailboxes go in before the server starts.
    {
        let store = mssante::store::Store::open(&dir.path().join("data"), mssante::clock::system())
            .await
            .unwrap();
        create_mailbox(&store, "house@a.mssante.test", IDNAT).await;
        create_mailbox(&store, "wilson@a.mssante.test", OTHER_IDNAT).await;
        store.close().await;
    }
    let spawn = || {
        common::cli::command(&config_path, &["serve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_up = || async {
        eventually("the server to listen", || async {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        })
        .await;
    };
    let mut child = spawn();
    wait_up().await;
    let token = psc.mint(
        &mssante_conformance::psc_standin::TokenSpec::valid(IDNAT)
            .with_lifetime(Duration::from_secs(600)),
    );
    let acked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..8 {
        let acked = acked.clone();
        let stop = stop.clone();
        let tls = pki.client(None);
        let token = token.clone();
        clients.push(tokio::spawn(async move {
            let tcp = match tokio::net::TcpStream::connect(addr).await {
                Ok(t) => t,
                Err(_) => return,
            };
            let Ok(stream) = tokio_rustls::TlsConnector::from(tls)
                .connect(
                    rustls_pki_types::ServerName::try_from("localhost").unwrap(),
                    tcp,
                )
                .await
            else {
                return;
            };
            let mut s = Smtp {
                io: tokio::io::BufReader::new(stream),
            };
            // Errors mean the server died: stop without counting.
            let _ = tokio::spawn(async move {
                s.reply().await;
                s.cmd("EHLO storm").await;
                s.cmd(&format!(
                    "AUTH XOAUTH2 {}",
                    xoauth2("house@a.mssante.test", &token)
                ))
                .await;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("storm-{c}-{n}");
                    n += 1;
                    let body = message("house@a.mssante.test", "wilson@a.mssante.test", &id, 512);
                    let (code, _) = s
                        .mail("house@a.mssante.test", &["wilson@a.mssante.test"], &body)
                        .await;
                    if code == 250 {
                        acked.lock().unwrap().push(id);
                    }
                }
            })
            .await;
        }));
    }
    // Let the storm run, then kill the server in the middle of it.
    eventually("some acknowledged messages", || {
        let n = acked.lock().unwrap().len();
        async move { n >= 200 }
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    // Restart, check the server comes back, then stop it and count.
    let mut child = spawn();
    wait_up().await;
    let mut s = implicit(addr, pki.client(None)).await;
    assert_eq!(s.cmd("QUIT").await.0, 221);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    let store = mssante::store::Store::open(&dir.path().join("data"), mssante::clock::system())
        .await
        .unwrap();
    let stored = folder_messages(&store, "wilson@a.mssante.test", "INBOX").await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for m in &stored {
        let t = text(m);
        let subject = t
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap()
            .to_owned();
        *counts.entry(subject).or_default() += 1;
    }
    for id in &acked {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "acknowledged {id} stored {:?} times",
            counts.get(id)
        );
    }
    assert!(
        counts.values().all(|&n| n == 1),
        "a message was stored twice"
    );
    assert!(stored.len() >= acked.len());
    assert!(
        stored.len() <= acked.len() + 8,
        "at most one unacknowledged message per client"
    );
    eprintln!("acknowledged {}, stored {}", acked.len(), stored.len());
    store.close().await;
    psc.shutdown().await;
}

on_both_backends! {
#[tokio::test]
async fn oauthbearer_and_external_authenticate_too() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    // OAUTHBEARER (RFC 7628), initial response after the 334.
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO client.test").await;
    assert_eq!(s.cmd("AUTH OAUTHBEARER").await.0, 334);
    let ir = BASE64.encode(format!(
        "n,a={sender},\x01host=localhost\x01port=465\x01auth=Bearer {}\x01\x01",
        a.token()
    ));
    let (code, t) = s.cmd(&ir).await;
    assert_eq!(code, 235, "{t}");
    assert_eq!(
        s.mail(&sender, &[&rcpt], &message(&sender, &rcpt, "bearer", 10))
            .await
            .0,
        250
    );
    // EXTERNAL: an applicative mailbox bound to the lab's AUTH_CLI certificate.
    let lab = "sil-labo@a.mssante.test";
    a.store()
        .create_mailbox(mssante::store::NewMailbox::new(
            lab,
            mssante::store::MailboxKind::Applicative,
            None,
            mssante::clock::SystemClock::now_utc(),
        ))
        .await
        .unwrap();
    let id = mssante::auth::certificate::identity_from_pem_file(&pki.path("app.crt")).unwrap();
    a.store()
        .add_grant(
            lab,
            mssante::store::Grant::CertificateSubject {
                subject: id.subject,
                issuer: id.issuer,
            },
        )
        .await
        .unwrap();
    let mut s = implicit(a.submission_tls(), pki.client(Some("app"))).await;
    s.cmd("EHLO lab.test").await;
    let (code, t) = s.cmd("AUTH EXTERNAL =").await;
    assert_eq!(code, 235, "{t}");
    // The certificate opens only its own mailbox.
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 550);
    assert_eq!(
        s.mail(lab, &[&rcpt], &message(lab, &rcpt, "from the lab", 10))
            .await
            .0,
        250
    );
    assert_eq!(a.messages(&rcpt, "INBOX").await.len(), 2);
    // Without a certificate, EXTERNAL fails (no challenge for EXTERNAL).
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO lab.test").await;
    assert_eq!(s.cmd("AUTH EXTERNAL =").await.0, 535);
    a.stop().await;
}
}

on_both_backends! {
#[tokio::test]
async fn connection_limit_and_shutdown() {
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.smtp_extra = "max_messages_per_connection = 1".into();
    // `one` leaves the unauthenticated pool when it authenticates; `two` fills it.
    o.session_extra = "max_unauthenticated_per_address = 1".into();
    let a = Instance::start(&pki, o).await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut one = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let mut two = plain(a.submission_starttls()).await;
    let mut three = tokio::io::BufReader::new(
        tokio::net::TcpStream::connect(a.submission_starttls())
            .await
            .unwrap(),
    );
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut three, &mut line)
        .await
        .unwrap();
    assert!(line.starts_with("421 4.7.0"), "{line}");
    // One message per connection: the second MAIL closes it.
    assert_eq!(
        one.mail(&sender, &[&rcpt], &message(&sender, &rcpt, "one", 10))
            .await
            .0,
        250
    );
    let (code, _) = one.cmd(&format!("MAIL FROM:<{sender}>")).await;
    assert_eq!(code, 421);
    assert!(one.closed().await);
    // Shutdown: a waiting session is told and closed, and stop() returns.
    assert_eq!(two.cmd("EHLO client.test").await.0, 250);
    let stopping = tokio::spawn(a.running.stop());
    let (code, t) = two.reply().await;
    assert_eq!(code, 421, "{t}");
    assert!(t.starts_with("4.3.2"));
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    a.psc.shutdown().await;
}
}

on_both_backends! {
#[tokio::test]
async fn the_queue_survives_a_restart_and_expires_with_a_dsn() {
    let pki = Pki::new();
    let gate = Gate::new().await;
    let closed = gate.addr.to_string();
    let options = |lifetime: &str| {
        let mut o = Options::new("a.mssante.test");
        o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
        o.routes = vec![("b.mssante.test".into(), closed.clone())];
        o.smtp_extra = format!("save_sent = false\nqueue_max_lifetime = \"{lifetime}\"");
        o
    };
    let a = Instance::start(&pki, options("1h")).await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let (code, _) = s
        .mail(
            &sender,
            &["cameron@b.mssante.test"],
            &message(&sender, "cameron@b.mssante.test", "expiring", 300),
        )
        .await;
    assert_eq!(code, 250);
    drop(s);
    let dir = a.stop_keeping_data().await;
    // Restarted with a lifetime already over: the runner finds the queued message on
    // its first scan, fails to connect, and gives up with a notice.
    let a = Instance::start_in(&pki, options("1s"), dir).await;
    eventually("the expiry notice", || async {
        a.messages(&sender, "INBOX").await.len() == 1
    })
    .await;
    let t = text(&a.messages(&sender, "INBOX").await[0]);
    assert!(t.contains("Status: 4.4.7"), "{t}");
    assert!(
        t.contains("Final-Recipient: rfc822; cameron@b.mssante.test"),
        "{t}"
    );
    assert!(t.contains("delivery time expired"), "{t}");
    assert_eq!(a.store().queue_len().await.unwrap(), 0);
    a.stop().await;
}
}

/// SMTP smuggling: `LF . LF` inside DATA followed by a second transaction. The second
/// transaction must never run, and the body with its bare LF is refused whole.
fn smuggling_payload(sender: &str, rcpt: &str) -> String {
    format!(
        "From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: x\r\n\r\nhello\n.\nMAIL FROM:<{sender}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\nFrom: <ceo@elsewhere.example>\r\nTo: <{rcpt}>\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
    )
}

async fn smuggling_is_refused<S>(s: &mut Smtp<S>, sender: &str, rcpt: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
    assert_eq!(s.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
    assert_eq!(s.cmd("DATA").await.0, 354);
    s.send(&smuggling_payload(sender, rcpt)).await;
    let (code, t) = s.reply().await;
    assert_eq!(code, 554, "{t}");
    assert!(t.starts_with("5.5.2"), "{t}");
    // The next reply is the NOOP's: nothing of the body was read as commands.
    let (code, t) = s.cmd("NOOP").await;
    assert_eq!((code, t.as_str()), (250, "2.0.0 OK"));
    // The same rule for BDAT.
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
    assert_eq!(s.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
    let body = "Subject: y\r\n\r\nbare\rCR\r\n";
    s.send(&format!("BDAT {} LAST\r\n{body}", body.len())).await;
    let (code, t) = s.reply().await;
    assert_eq!(code, 554, "{t}");
}

on_both_backends! {
#[tokio::test]
async fn bare_lf_never_ends_data_on_submission_or_inbound() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    smuggling_is_refused(&mut s, &sender, &rcpt).await;
    // The operator interface: operator2 is listed for b.mssante.test.
    let mut s = starttls(plain(a.inbound()).await, pki.client(Some("operator2"))).await;
    assert_eq!(s.cmd("EHLO mx.b.mssante.test").await.0, 250);
    smuggling_is_refused(&mut s, "cuddy@b.mssante.test", &rcpt).await;
    assert!(a.messages(&rcpt, "INBOX").await.is_empty());
    assert!(a.messages(&sender, "Sent").await.is_empty());
    let bare = a
        .audited(|e| e.reason.as_deref().is_some_and(|r| r.contains("bare CR")))
        .await;
    assert!(bare >= 4, "{bare}");
    a.stop().await;
}
}

on_both_backends! {
/// A client that has not authenticated gets a few KiB of room: an endless line, an
/// overlong command or SASL response is answered and the connection closed at once,
/// without waiting for a line end that may never come.
#[tokio::test]
async fn oversized_lines_before_authentication_close_the_connection() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let endless = "A".repeat(20_000);
    let expect_closed = |what: &'static str| {
        move |(code, t): (u16, String)| {
            assert_eq!(code, 500, "{what}: {t}");
            assert!(t.starts_with("5.5.2"), "{what}: {t}");
        }
    };
    // No line end at all, on the implicit TLS port.
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.send(&endless).await;
    expect_closed("endless line")(s.reply().await);
    assert!(s.closed().await);
    // A command line over 512 bytes before AUTH (AUTH lines may be longer).
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    let (code, t) = s.cmd(&format!("EHLO {}", "h".repeat(600))).await;
    expect_closed("long EHLO")((code, t));
    assert!(s.closed().await);
    // A SASL response past the AUTH line limit.
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO client.test").await;
    assert_eq!(s.cmd("AUTH XOAUTH2").await.0, 334);
    s.send(&endless).await;
    expect_closed("SASL response")(s.reply().await);
    assert!(s.closed().await);
    // Before STARTTLS on the operator interface.
    let mut s = plain(a.inbound()).await;
    s.send(&endless).await;
    expect_closed("inbound")(s.reply().await);
    assert!(s.closed().await);
    // Authenticated, long lines are still answered without closing.
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    assert_eq!(s.cmd(&format!("NOOP {}", "n".repeat(600))).await.0, 250);
    let closed = a
        .audited(|e| {
            e.reason.as_deref() == Some("command line too long, connection closed")
                && e.peer
                    .as_deref()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
        })
        .await;
    assert!(closed >= 4, "{closed}");
    a.stop().await;
}
}

on_both_backends! {
/// A queued message holding bare CR and LF (stored before the CRLF rule, or by IMAP
/// APPEND) reaches the next operator with CRLF line endings only.
#[tokio::test]
async fn queued_messages_are_relayed_with_canonical_line_endings() {
    let pki = Pki::new();
    let (a, b) = two_operators(&pki, true).await;
    let sender = a.mailbox("house", IDNAT).await;
    let remote = b.mailbox("cameron", OTHER_IDNAT).await;
    let raw = format!(
        "From: <{sender}>\nX-Injected: yes\r\nTo: <{remote}>\r\nSubject: bare\r\n\r\nA\r.\r\nnext\n.\nend\r\n"
    );
    let outgoing = mssante::store::Outgoing {
        sender: sender.clone(),
        recipients: vec![mssante::store::OutgoingRecipient {
            address: remote.clone(),
            domain: "b.mssante.test".into(),
            notify: None,
            orcpt: None,
        }],
        envid: None,
        ret_full: false,
    };
    a.store()
        .deliver_and_queue(
            Vec::new(),
            outgoing,
            Arc::new(mssante::store::RawMessage::new(raw.as_bytes())),
            mssante::clock::SystemClock::now_utc(),
        )
        .await
        .unwrap();
    eventually("delivery to B", || async {
        b.messages(&remote, "INBOX").await.len() == 1
    })
    .await;
    let got = b.messages(&remote, "INBOX").await.remove(0);
    let t = text(&got);
    assert!(
        t.ends_with(&format!(
            "From: <{sender}>\r\nX-Injected: yes\r\nTo: <{remote}>\r\nSubject: bare\r\n\r\nA\r\n.\r\nnext\r\n.\r\nend\r\n"
        )),
        "{t:?}"
    );
    assert!(
        !got.windows(2)
            .enumerate()
            .any(|(i, w)| (w[1] == b'\n' && w[0] != b'\r')
                || (w[0] == b'\r' && w[1] != b'\n')
                || (i == 0 && w[0] == b'\n')),
        "{t:?}"
    );
    a.stop().await;
    b.stop().await;
}
}

on_both_backends! {
/// EXTERNAL refusals all read the same: an unbound certificate, an unknown mailbox
/// and a personal one are told apart only in the audit trail.
#[tokio::test]
async fn external_refusals_do_not_tell_which_mailboxes_exist() {
    let (pki, a) = one_instance().await;
    let personal = a.mailbox("house", IDNAT).await;
    let mut replies = Vec::new();
    for authzid in [
        None,
        Some("nobody@a.mssante.test".to_string()),
        Some(personal.clone()),
    ] {
        let mut s = implicit(a.submission_tls(), pki.client(Some("app"))).await;
        s.cmd("EHLO lab.test").await;
        let arg = authzid.map_or("=".to_string(), |z| BASE64.encode(z));
        let (code, t) = s.cmd(&format!("AUTH EXTERNAL {arg}")).await;
        assert_eq!(code, 535, "{t}");
        replies.push(t);
    }
    assert!(replies.iter().all(|r| r == &replies[0]), "{replies:?}");
    assert_eq!(replies[0], "5.7.8 Authentication credentials invalid");
    let audit = a.store().audit_records(None, 100).await.unwrap();
    let reasons: std::collections::HashSet<_> = audit
        .iter()
        .filter(|r| r.entry.outcome == AuditOutcome::Failure)
        .filter_map(|r| r.entry.reason.clone())
        .collect();
    assert!(reasons.len() >= 3, "the detail is audited: {audit:?}");
    a.stop().await;
}
}

on_both_backends! {
/// A SIZE= or BDAT size past 2^64 is not read as a small number.
#[tokio::test]
async fn sizes_past_two_to_the_64_are_too_big() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    for size in ["99999999999999999999999", "18446744073709551616", "65537"] {
        let (code, t) = s.cmd(&format!("MAIL FROM:<{sender}> SIZE={size}")).await;
        assert_eq!(code, 552, "SIZE={size}: {t}");
        assert!(t.starts_with("5.3.4"), "{t}");
    }
    assert_eq!(
        s.cmd(&format!("MAIL FROM:<{sender}> SIZE=65536")).await.0,
        250
    );
    assert_eq!(s.cmd(&format!("RCPT TO:<{rcpt}>")).await.0, 250);
    // A chunk that big cannot be skipped: the connection ends.
    let (code, t) = s.cmd("BDAT 99999999999999999999999 LAST").await;
    assert_eq!(code, 552, "{t}");
    assert!(s.closed().await);
    assert!(a.messages(&rcpt, "INBOX").await.is_empty());
    a.stop().await;
}
}

on_both_backends! {
/// Submission checks the author in From: against the identity, like MAIL FROM, and
/// removes Bcc: before anyone receives the message.
#[tokio::test]
async fn from_header_is_checked_and_bcc_removed() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let other = a.mailbox("cuddy", OTHER_IDNAT).await;
    let rcpt = a.mailbox("wilson", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let forged = message(&other, &rcpt, "forged", 10);
    let (code, t) = s.mail(&sender, &[&rcpt], &forged).await;
    assert_eq!(code, 550, "{t}");
    assert!(t.starts_with("5.7.1") && t.contains("From: header"), "{t}");
    let no_from = "Subject: anonymous\r\n\r\nbody\r\n";
    assert_eq!(s.mail(&sender, &[&rcpt], no_from).await.0, 550);
    let bcc = format!(
        "From: House <{sender}>\r\nTo: <{rcpt}>\r\nBcc: <{other}>,\r\n <secret@a.mssante.test>\r\nSubject: hidden\r\n\r\nbody\r\n"
    );
    let (code, t) = s.mail(&sender, &[&rcpt, &other], &bcc).await;
    assert_eq!(code, 250, "{t}");
    for who in [&rcpt, &other] {
        let inbox = a.messages(who, "INBOX").await;
        assert_eq!(inbox.len(), 1, "{who}");
        let t = text(&inbox[0]);
        assert!(!t.to_ascii_lowercase().contains("bcc:"), "{t}");
        assert!(!t.contains("secret@"), "{t}");
        assert!(t.contains("Subject: hidden\r\n"), "{t}");
    }
    let audit = a.store().audit_records(None, 100).await.unwrap();
    assert!(
        audit.iter().any(|r| r
            .entry
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("From: header"))
            && r.entry.peer.is_some()
            && r.entry.identity.is_some()),
        "{audit:?}"
    );
    a.stop().await;
    // check_from_header = false lets the client choose its From:.
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.smtp_extra = "check_from_header = false".into();
    let a = Instance::start(&pki, o).await;
    let sender = a.mailbox("house", IDNAT).await;
    let other = a.mailbox("cuddy", OTHER_IDNAT).await;
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    let forged = message(&other, &other, "allowed", 10);
    assert_eq!(s.mail(&sender, &[&other], &forged).await.0, 250);
    a.stop().await;
}
}

on_both_backends! {
/// Every refusal of a peer leaves an audit entry naming the peer address.
#[tokio::test]
async fn refusals_are_audited_with_the_peer() {
    let (pki, a) = one_instance().await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut s = implicit(a.submission_tls(), pki.client(None)).await;
    s.cmd("EHLO client.test").await;
    assert_eq!(s.cmd("AUTH PLAIN AGFAYg==").await.0, 504);
    assert_eq!(s.cmd("AUTH LOGIN").await.0, 504);
    assert_eq!(s.cmd("AUTH XOAUTH2 !!!notbase64").await.0, 501);
    assert_eq!(s.cmd("AUTH XOAUTH2 a b c").await.0, 501);
    assert_eq!(s.cmd("AUTH EXTERNAL =").await.0, 535);
    let mut s = authenticated(a.submission_tls(), pki.client(None), &sender, &a.token()).await;
    assert_eq!(s.cmd(&format!("MAIL FROM:<{sender}>")).await.0, 250);
    assert_eq!(s.cmd("RCPT TO:<someone@gmail.com>").await.0, 550);
    // The operator interface before STARTTLS.
    let mut s = plain(a.inbound()).await;
    s.cmd("EHLO mx.b.mssante.test").await;
    assert_eq!(s.cmd("MAIL FROM:<cuddy@b.mssante.test>").await.0, 530);
    let audit = a.store().audit_records(None, 100).await.unwrap();
    for (protocol, reason) in [
        ("submission", "unsupported mechanism PLAIN"),
        ("submission", "unsupported mechanism LOGIN"),
        ("submission", "invalid base64"),
        ("submission", "AUTH syntax error"),
        ("submission", "certificate"),
        ("submission", "relaying denied: gmail.com"),
        ("inbound", "MAIL before STARTTLS"),
    ] {
        assert!(
            audit.iter().any(|r| r.entry.protocol == protocol
                && r.entry.outcome == AuditOutcome::Failure
                && r.entry
                    .reason
                    .as_deref()
                    .is_some_and(|t| t.contains(reason))
                && r.entry
                    .peer
                    .as_deref()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))),
            "{reason}: {audit:#?}"
        );
    }
    a.stop().await;
}
}
