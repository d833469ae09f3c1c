//! Connection caps and the authentication-failure policy, seen from clients on loopback:
//! a hospital behind one NAT address, a flood of unauthenticated connections, trusted
//! networks, and refused tokens that must not hold up anyone else's valid one.

mod common;

use common::smtp as smtp_support;

use std::time::Duration;

use tokio::time::Instant;

use common::{Client, HOUSE, HOUSE_BAL, World, last, world, xoauth2};
use futures::StreamExt as _;
use mssante::store::{AuditOutcome, MailboxKind, NewMailbox};
use mssante_conformance::psc_standin::{Flaw, TokenSpec};

/// A mailbox per professional `i`, owned by a distinct IdNat; returns (address, IdNat).
async fn professionals(w: &World, n: usize) -> Vec<(String, String)> {
    let store = &w.running.as_ref().unwrap().context.store;
    let mut out = Vec::new();
    for i in 0..n {
        let address = format!("dr{i}@h.mssante.fr");
        let idnat = format!("8997{:08}", 10_000 + i);
        store
            .create_mailbox(NewMailbox::new(
                &address,
                MailboxKind::Personal,
                Some(idnat.clone()),
                mssante::clock::SystemClock::now_utc(),
            ))
            .await
            .unwrap();
        out.push((address, idnat));
    }
    out
}

/// An expired token, the error challenge, the empty reply, and the tagged NO.
async fn refused_login(c: &mut Client, w: &World) {
    let expired = w.psc.mint(&TokenSpec::flawed(HOUSE, Flaw::Expired));
    let tag = c.next_tag();
    let line = format!(
        "{tag} AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2(HOUSE_BAL, &expired)
    );
    c.send(line.as_bytes()).await;
    assert!(c.line().await.starts_with("+ "));
    c.send(b"\r\n").await;
    let r = c.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
}

/// Security issue #5: 300 doctors behind one NAT address, each client keeping 3-4 IMAP
/// sessions open, with the default limits. The test process's RLIMIT_NOFILE (20,000
/// here) holds both ends of every connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hospital_behind_one_address_keeps_over_a_thousand_sessions() {
    let hospital = world("").await;
    let doctors = professionals(&hospital, 300).await;
    let tokens: Vec<String> = doctors
        .iter()
        .map(|(_, idnat)| hospital.token(idnat))
        .collect();
    let w = &hospital;
    let logins = (0..1050).map(|i| {
        let (address, _) = &doctors[i % doctors.len()];
        let token = tokens[i % tokens.len()].clone();
        async move {
            let mut c = w.connect_tls().await;
            c.line().await;
            let r = c
                .cmd(&format!(
                    "AUTHENTICATE XOAUTH2 {}",
                    xoauth2(address, &token)
                ))
                .await;
            (c, r)
        }
    });
    // Clients start in bursts, as mail clients opening their connections do.
    let mut sessions: Vec<(Client, Vec<String>)> = futures::stream::iter(logins)
        .buffer_unordered(40)
        .collect()
        .await;
    for (_, r) in &sessions {
        assert!(last(r).contains(" OK "), "{r:?}");
    }
    for (c, _) in &mut sessions {
        let r = c.cmd("NOOP").await;
        assert!(last(&r).contains(" OK "), "{r:?}");
    }
    drop(sessions);
    hospital.stop().await;
}

/// Unauthenticated connections flooding the STARTTLS port take the address's
/// unauthenticated slots and nothing more: sessions already open go on, the refusal is
/// audited with the peer, and once the flood is disconnected by the login timeout a
/// login on the other port goes through.
#[tokio::test]
async fn an_unauthenticated_flood_costs_only_the_unauthenticated_slots() {
    let w =
        world("session.max_unauthenticated_per_address = 10\nsession.login_timeout = \"2s\"").await;
    let mut open = w.login(HOUSE_BAL, HOUSE).await;
    let mut flood = Vec::new();
    for _ in 0..10 {
        let mut c = w.connect_starttls().await;
        assert!(c.line().await.starts_with("* OK"));
        flood.push(c);
    }
    // The eleventh unauthenticated connection, on the other port: told why.
    let mut refused = w.connect_tls().await;
    let l = refused.line().await;
    assert_eq!(
        l,
        "* BYE too many unauthenticated connections from your address\r\n"
    );
    assert!(refused.closed().await);
    let r = open.cmd("NOOP").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    // Audited with the peer (written just after the connection is closed).
    let store = w.running.as_ref().unwrap().context.store.clone();
    smtp_support::eventually("the refusal is audited", || {
        let store = store.clone();
        async move {
            let audit = store.audit_records(None, 100).await.unwrap();
            audit.iter().any(|r| {
                r.entry.outcome == AuditOutcome::Failure
                    && r.entry.protocol == "imap"
                    && r.entry.reason.as_deref()
                        == Some("too many unauthenticated connections from your address")
                    && r.entry
                        .peer
                        .as_deref()
                        .is_some_and(|p| p.starts_with("127.0.0.1:"))
            })
        }
    })
    .await;
    // The flood is disconnected at the login timeout; the slots come back.
    for c in &mut flood {
        let l = c.line().await;
        assert_eq!(l, "* BYE authentication time limit reached\r\n");
        assert!(c.closed().await);
    }
    drop(flood);
    let started = Instant::now();
    loop {
        let mut c = w.connect_tls().await;
        let greeting = c.line().await;
        if greeting.starts_with("* OK") {
            let r = c
                .cmd(&format!(
                    "AUTHENTICATE XOAUTH2 {}",
                    w.xoauth2(HOUSE_BAL, HOUSE)
                ))
                .await;
            assert!(last(&r).contains(" OK "), "{r:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{greeting}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w.stop().await;
}

#[tokio::test]
async fn a_trusted_network_is_exempt_from_the_address_caps() {
    let w = world(
        "session.max_unauthenticated_per_address = 2\n\
         session.max_mailbox_connections_per_address = 1\n\
         session.trusted_networks = [\"127.0.0.0/8\", \"::1/128\"]",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut c = w.connect_starttls().await;
        let l = c.line().await;
        assert!(l.starts_with("* OK"), "{l}");
        held.push(c);
    }
    for _ in 0..3 {
        let mut c = w.login(HOUSE_BAL, HOUSE).await;
        let r = c.cmd("NOOP").await;
        assert!(last(&r).contains(" OK "), "{r:?}");
        held.push(c);
    }
    w.stop().await;
}

/// Dovecot's `mail_max_userip_connections`: one mailbox from one address is capped,
/// another mailbox from the same address is not affected.
#[tokio::test]
async fn sessions_per_mailbox_and_address_are_capped() {
    let w = world("session.max_mailbox_connections_per_address = 2").await;
    let _a = w.login(HOUSE_BAL, HOUSE).await;
    let _b = w.login(HOUSE_BAL, HOUSE).await;
    let mut c = w.connect_tls().await;
    c.line().await;
    c.send(format!("t AUTHENTICATE XOAUTH2 {}\r\n", w.xoauth2(HOUSE_BAL, HOUSE)).as_bytes())
        .await;
    let l = c.line().await;
    assert_eq!(
        l,
        "* BYE too many connections to this mailbox from your address\r\n"
    );
    assert!(c.closed().await);
    let mut other = w.login(common::CUDDY_BAL, common::CUDDY).await;
    let r = other.cmd("NOOP").await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    w.stop().await;
}

/// Hardening issue #1, the measured scenario: six refused tokens from one address, then
/// nine other professionals log in from the same address. None of them may wait for the
/// refusals (the bound is generous: it tells "not delayed" from "delayed seconds").
#[tokio::test]
async fn refused_tokens_do_not_delay_valid_logins_from_the_same_address() {
    let w = world("").await;
    let others = professionals(&w, 9).await;
    let mut bad = w.connect_tls().await;
    bad.line().await;
    for _ in 0..6 {
        refused_login(&mut bad, &w).await;
    }
    for (address, idnat) in &others {
        let token = w.token(idnat);
        let started = Instant::now();
        let mut c = w.connect_tls().await;
        c.line().await;
        let r = c
            .cmd(&format!(
                "AUTHENTICATE XOAUTH2 {}",
                xoauth2(address, &token)
            ))
            .await;
        assert!(last(&r).contains(" OK "), "{r:?}");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{address} waited {took:?}");
    }
    // The refusals themselves are answered after a pause, on their own connection.
    let started = Instant::now();
    refused_login(&mut bad, &w).await;
    assert!(started.elapsed() >= Duration::from_millis(900));
    w.stop().await;
}

/// One policy for both protocols: refusals for a mailbox through IMAP pause the next
/// refusal for it through SMTP submission, while a valid AUTH for another mailbox from
/// the same address is answered at once; and unauthenticated connections are counted
/// across IMAP and SMTP ports together.
#[tokio::test]
async fn imap_and_smtp_share_one_failure_policy_and_one_count() {
    use smtp_support::{IDNAT, Instance, OTHER_IDNAT, Options, Pki};
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.session_extra = "auth_failures_before_delay = 1\nmax_unauthenticated_per_address = 2".into();
    let a = Instance::start(&pki, o).await;
    let victim = a.mailbox("house", IDNAT).await;
    let other = a.mailbox("wilson", OTHER_IDNAT).await;
    let expired = a.psc.mint(&TokenSpec::flawed(IDNAT, Flaw::Expired));

    // One refusal through IMAP: the free one.
    let mut imap = Client::plain(a.imap_tls()).await;
    imap.upgrade_config(pki.client(None)).await;
    imap.line().await;
    let started = Instant::now();
    let tag = imap.next_tag();
    let line = format!(
        "{tag} AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2(&victim, &expired)
    );
    imap.send(line.as_bytes()).await;
    assert!(imap.line().await.starts_with("+ "));
    imap.send(b"\r\n").await;
    let r = imap.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    assert!(started.elapsed() < Duration::from_millis(900));

    // The second, through SMTP: paused, because the count is shared.
    let mut smtp = smtp_support::implicit(a.submission_tls(), pki.client(None)).await;
    assert_eq!(smtp.cmd("EHLO client.test").await.0, 250);
    let started = Instant::now();
    let (code, _) = smtp
        .cmd(&format!(
            "AUTH XOAUTH2 {}",
            smtp_support::xoauth2(&victim, &expired)
        ))
        .await;
    assert_eq!(code, 334);
    let (code, text) = smtp.cmd("").await;
    assert_eq!(code, 535, "{text}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Someone else from the same address: answered without waiting.
    let started = Instant::now();
    let token = a.psc.mint(&TokenSpec::valid(OTHER_IDNAT));
    let (code, text) = smtp
        .cmd(&format!(
            "AUTH XOAUTH2 {}",
            smtp_support::xoauth2(&other, &token)
        ))
        .await;
    assert_eq!(code, 235, "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));

    // Unauthenticated: the IMAP connection and one SMTP connection fill the address's
    // two slots; the next SMTP connection is refused.
    let _second = smtp_support::plain(a.submission_starttls()).await;
    let mut third = smtp_support::Smtp {
        io: tokio::io::BufReader::new(
            tokio::net::TcpStream::connect(a.submission_starttls())
                .await
                .unwrap(),
        ),
    };
    let (code, text) = third.reply().await;
    assert_eq!(code, 421);
    assert_eq!(
        text,
        "4.7.0 too many unauthenticated connections from your address"
    );
    a.stop().await;
}

/// The same policy the other way round: refusals through SMTP submission pause the
/// next refusal for that mailbox through IMAP, and a valid login for another mailbox
/// from the same address is answered at once.
#[tokio::test]
async fn smtp_refusals_count_toward_the_pause_seen_on_imap() {
    use smtp_support::{IDNAT, Instance, OTHER_IDNAT, Options, Pki};
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.session_extra = "auth_failures_before_delay = 1".into();
    let a = Instance::start(&pki, o).await;
    let victim = a.mailbox("house", IDNAT).await;
    let other = a.mailbox("wilson", OTHER_IDNAT).await;
    let expired = a.psc.mint(&TokenSpec::flawed(IDNAT, Flaw::Expired));

    // One refusal through SMTP: the free one.
    let mut smtp = smtp_support::implicit(a.submission_tls(), pki.client(None)).await;
    assert_eq!(smtp.cmd("EHLO client.test").await.0, 250);
    let started = Instant::now();
    let (code, _) = smtp
        .cmd(&format!(
            "AUTH XOAUTH2 {}",
            smtp_support::xoauth2(&victim, &expired)
        ))
        .await;
    assert_eq!(code, 334);
    let (code, text) = smtp.cmd("").await;
    assert_eq!(code, 535, "{text}");
    assert!(started.elapsed() < Duration::from_millis(900));

    // The second, through IMAP: paused, because the count is shared.
    let mut imap = Client::plain(a.imap_tls()).await;
    imap.upgrade_config(pki.client(None)).await;
    imap.line().await;
    let started = Instant::now();
    let tag = imap.next_tag();
    let line = format!(
        "{tag} AUTHENTICATE XOAUTH2 {}\r\n",
        xoauth2(&victim, &expired)
    );
    imap.send(line.as_bytes()).await;
    assert!(imap.line().await.starts_with("+ "));
    imap.send(b"\r\n").await;
    let r = imap.until(&tag).await;
    assert!(last(&r).contains("NO [AUTHENTICATIONFAILED]"), "{r:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));

    // Someone else from the same address: answered without waiting.
    let started = Instant::now();
    let token = a.psc.mint(&TokenSpec::valid(OTHER_IDNAT));
    let r = imap
        .cmd(&format!("AUTHENTICATE XOAUTH2 {}", xoauth2(&other, &token)))
        .await;
    assert!(last(&r).contains(" OK "), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    a.stop().await;
}

/// Connects to `addr` and, once `before` has run, sends nothing more: how long until
/// the server closes the connection (at most `limit`, else `None`).
async fn silence_until_closed<F, Fut>(
    addr: std::net::SocketAddr,
    before: F,
    limit: Duration,
) -> Option<Duration>
where
    F: FnOnce(tokio::net::TcpStream) -> Fut,
    Fut: std::future::Future<Output = tokio::net::TcpStream>,
{
    use tokio::io::AsyncReadExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tcp = before(tcp).await;
    let started = Instant::now();
    let mut sink = [0u8; 512];
    loop {
        match tokio::time::timeout_at(started + limit, tcp.read(&mut sink)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Writes `line` and reads until `expect` has been seen (a greeting or a reply).
async fn say(mut tcp: tokio::net::TcpStream, line: &str, expect: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(line.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 512];
    while !String::from_utf8_lossy(&seen).contains(expect) {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut chunk))
            .await
            .expect("the server answered")
            .unwrap();
        assert!(n > 0, "closed before {expect:?}: {seen:?}");
        seen.extend_from_slice(&chunk[..n]);
    }
    tcp
}

/// One TLS handshake limit for every port: a client that connects (or says STARTTLS)
/// and then sends no handshake is disconnected after `[session] handshake_timeout`, on
/// IMAP and SMTP alike, implicit TLS or STARTTLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tls_port_has_the_same_handshake_time_limit() {
    use smtp_support::{Instance, Options, Pki};
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.session_extra = "handshake_timeout = \"1s\"".into();
    let a = Instance::start(&pki, o).await;
    let limit = Duration::from_secs(10);
    let (imap_tls, smtp_tls, imap_starttls, smtp_starttls) = tokio::join!(
        silence_until_closed(a.imap_tls(), |t| async { t }, limit),
        silence_until_closed(a.submission_tls(), |t| async { t }, limit),
        silence_until_closed(
            a.imap_starttls(),
            |t| async {
                let t = say(t, "", "* OK").await;
                say(t, "a STARTTLS\r\n", "a OK").await
            },
            limit,
        ),
        silence_until_closed(
            a.submission_starttls(),
            |t| async {
                let t = say(t, "", "220 ").await;
                let t = say(t, "EHLO client.test\r\n", "250 ").await;
                say(t, "STARTTLS\r\n", "220 ").await
            },
            limit,
        ),
    );
    for (port, cut) in [
        ("IMAP implicit TLS", imap_tls),
        ("SMTP implicit TLS", smtp_tls),
        ("IMAP STARTTLS", imap_starttls),
        ("SMTP STARTTLS", smtp_starttls),
    ] {
        let cut = cut.unwrap_or_else(|| panic!("{port}: still open after {limit:?}"));
        assert!(
            cut >= Duration::from_millis(900) && cut < Duration::from_secs(4),
            "{port}: closed after {cut:?}"
        );
    }
    a.stop().await;
}

/// The per-address cap of unauthenticated connections, seen from IMAP while SMTP holds
/// the address's slot: one count for both protocols, whichever port comes first.
#[tokio::test]
async fn an_smtp_connection_takes_the_slot_an_imap_one_needs() {
    use smtp_support::{Instance, Options, Pki};
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.session_extra = "max_unauthenticated_per_address = 1".into();
    let a = Instance::start(&pki, o).await;
    let held = smtp_support::plain(a.submission_starttls()).await;
    let mut imap = Client::plain(a.imap_tls()).await;
    imap.upgrade_config(pki.client(None)).await;
    assert_eq!(
        imap.line().await,
        "* BYE too many unauthenticated connections from your address\r\n"
    );
    assert!(imap.closed().await);
    // On SMTP's implicit TLS port nothing can be said before the handshake: closed.
    let mut refused = tokio::net::TcpStream::connect(a.submission_tls())
        .await
        .unwrap();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read(&mut refused, &mut byte),
    )
    .await
    .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The slot comes back when the SMTP client leaves.
    drop(held);
    let started = Instant::now();
    loop {
        let mut c = Client::plain(a.imap_tls()).await;
        c.upgrade_config(pki.client(None)).await;
        let greeting = c.line().await;
        if greeting.starts_with("* OK") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{greeting}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.stop().await;
}

/// The work an address can cost is capped, not its answers delayed: with two checks in
/// flight per address and a PSC introspection taking a second, four logins from one
/// address at once go through in two waves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_in_flight_per_address_are_capped() {
    let w = world("psc.introspection\nsession.max_verifications_per_address = 2").await;
    let doctors = professionals(&w, 4).await;
    w.psc.set_introspection_delay(Duration::from_secs(1));
    let w = &w;
    let started = Instant::now();
    let logins = doctors.iter().map(|(address, idnat)| async move {
        let mut c = w.connect_tls().await;
        c.line().await;
        c.cmd(&format!(
            "AUTHENTICATE XOAUTH2 {}",
            w.xoauth2(address, idnat)
        ))
        .await
    });
    for r in futures::future::join_all(logins).await {
        assert!(last(&r).contains(" OK "), "{r:?}");
    }
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

/// Slowloris on the SMTP ports: a client that sends an endless command line one byte at
/// a time, never identifying itself, is cut at the login time limit on submission and
/// on the operator interface alike, however regularly its bytes arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_command_line_is_cut_at_the_login_time_limit() {
    use smtp_support::{Instance, Options, Pki};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.session_extra = "login_timeout = \"2s\"".into();
    let a = Instance::start(&pki, o).await;
    for (port, addr) in [
        ("submission", a.submission_starttls()),
        ("inbound", a.inbound()),
    ] {
        let mut s = smtp_support::plain(addr).await;
        let started = Instant::now();
        // A byte every 300 ms, well inside any per-read wait, for up to 8 s.
        let mut cut = None;
        for b in b"EHLO slowloris.example.org.xxxx".iter().cycle().take(27) {
            let mut byte = [0u8; 1];
            let sent = s.io.get_mut().write_all(std::slice::from_ref(b)).await;
            let read = tokio::time::timeout(Duration::from_millis(300), s.io.read(&mut byte)).await;
            match (sent, read) {
                (Err(_), _) | (_, Ok(Ok(0))) | (_, Ok(Err(_))) => {
                    cut = Some(started.elapsed());
                    break;
                }
                (_, Ok(Ok(_))) => {
                    // The 421 before the close: read on until the end.
                    let mut rest = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(5), s.io.read_to_end(&mut rest))
                            .await;
                    let text = String::from_utf8_lossy(&[&byte[..], &rest].concat()).into_owned();
                    assert!(text.starts_with("421 4.7.0"), "{port}: {text}");
                    cut = Some(started.elapsed());
                    break;
                }
                (Ok(()), Err(_)) => {}
            }
        }
        let cut = cut.unwrap_or_else(|| panic!("{port}: still open after 8 s of trickling"));
        assert!(
            cut >= Duration::from_millis(1500),
            "{port}: cut after {cut:?}"
        );
    }
    a.stop().await;
}
