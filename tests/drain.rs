//! SIGTERM while the server is busy, as systemd stops it: 50 IMAP sessions appending and
//! 20 SMTP sessions in transactions, plus a peer that stopped reading. Every session is
//! told (`* BYE`, `421`), the process exits within `[session] shutdown_timeout` + 1 s,
//! and every message acknowledged before is in the store.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Client;
use common::cli::{command, terminate};
use common::smtp::*;
use mssante_conformance::psc_standin::{PscStandIn, TokenSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Default)]
struct Seen {
    /// Subjects acknowledged (`APPEND` OK, `250` after DATA).
    acked: Vec<String>,
    /// Sessions told the server was going away.
    told: usize,
}

/// Appends until the server says `* BYE` and closes.
async fn imap_session(
    addr: SocketAddr,
    pki: Arc<Pki>,
    login: String,
    n: usize,
    seen: Arc<Mutex<Seen>>,
) {
    let mut c = Client::plain(addr).await;
    c.upgrade_config(pki.client(None)).await;
    c.line().await;
    let lines = c.cmd(&format!("AUTHENTICATE XOAUTH2 {login}")).await;
    assert!(common::last(&lines).contains("OK"), "{lines:?}");
    for i in 0.. {
        let id = format!("imap{n}-{i}");
        let message = format!("Subject: {id}\r\n\r\nbody\r\n");
        let tag = c.next_tag();
        c.send(format!("{tag} APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes())
            .await;
        loop {
            let line = c.line().await;
            if line.is_empty() {
                return;
            }
            if line.starts_with("* BYE") {
                seen.lock().unwrap().told += 1;
            } else if line.starts_with(&format!("{tag} OK")) {
                seen.lock().unwrap().acked.push(id.clone());
                break;
            } else if line.starts_with(&format!("{tag} ")) {
                break;
            }
        }
    }
}

/// Sends messages until the server answers `421`.
async fn smtp_session(
    addr: SocketAddr,
    pki: Arc<Pki>,
    from: String,
    token: String,
    n: usize,
    seen: Arc<Mutex<Seen>>,
) {
    let s = authenticated(addr, pki.client(None), &from, &token).await;
    let mut io = BufReader::new(s.io.into_inner());
    let reply = async |io: &mut BufReader<_>| -> Option<u16> {
        loop {
            let mut line = String::new();
            match io.read_line(&mut line).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
            if line.len() >= 4 && line.as_bytes()[3] != b'-' {
                return line[..3].parse().ok();
            }
        }
    };
    for i in 0.. {
        let id = format!("smtp{n}-{i}");
        let mut ok = true;
        for command in [
            format!("MAIL FROM:<{from}>"),
            format!("RCPT TO:<{from}>"),
            "DATA".into(),
        ] {
            if io
                .get_mut()
                .write_all(format!("{command}\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
            match reply(&mut io).await {
                Some(250 | 354) => {}
                Some(421) => {
                    seen.lock().unwrap().told += 1;
                    return;
                }
                _ => ok = false,
            }
            if !ok {
                return;
            }
        }
        let body = dot_stuff(&message(&from, &from, &id, 300));
        if io.get_mut().write_all(body.as_bytes()).await.is_err() {
            return;
        }
        match reply(&mut io).await {
            Some(250) => seen.lock().unwrap().acked.push(id),
            Some(421) => {
                seen.lock().unwrap().told += 1;
                return;
            }
            _ => return,
        }
    }
}

fn subject(message: &[u8]) -> Option<String> {
    String::from_utf8_lossy(message)
        .lines()
        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
}

#[tokio::test]
async fn sigterm_drains_busy_sessions_within_the_shutdown_timeout() {
    let pki = Arc::new(Pki::new());
    let psc = PscStandIn::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (imap, submission, inbound) = (free_port(), free_port(), free_port());
    let mut o = Options::new("a.mssante.test");
    o.listeners = Listeners {
        imap_tls: on_port(imap),
        submission_tls: on_port(submission),
        inbound: on_port(inbound),
        ..Listeners::all()
    };
    o.session_extra = format!(
        "shutdown_timeout = \"{}s\"\ntrusted_networks = [\"127.0.0.0/8\"]\nwrite_timeout = \"10m\"",
        SHUTDOWN_TIMEOUT.as_secs()
    );
    let config = write_config(&pki, dir.path(), &psc, &o, "");
    let address = "house@a.mssante.test";
    {
        let store = mssante::store::Store::open(&dir.path().join("data"), mssante::clock::system())
            .await
            .unwrap();
        create_mailbox(&store, address, IDNAT).await;
        store.close().await;
    }
    let child = command(&config, &["serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let imap_addr: SocketAddr = format!("127.0.0.1:{imap}").parse().unwrap();
    let submission_addr: SocketAddr = format!("127.0.0.1:{submission}").parse().unwrap();
    eventually("the server to listen", || async {
        tokio::net::TcpStream::connect(submission_addr)
            .await
            .is_ok()
    })
    .await;
    let token = psc.mint(&TokenSpec::valid(IDNAT).with_lifetime(Duration::from_secs(600)));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut sessions = Vec::new();
    for n in 0..50 {
        let login = common::xoauth2(address, &token);
        sessions.push(tokio::spawn(imap_session(
            imap_addr,
            pki.clone(),
            login,
            n,
            seen.clone(),
        )));
    }
    for n in 0..20 {
        sessions.push(tokio::spawn(smtp_session(
            submission_addr,
            pki.clone(),
            address.to_owned(),
            token.clone(),
            n,
            seen.clone(),
        )));
    }
    // A peer on the operator interface that pipelines and never reads.
    let stalled = tokio::spawn(async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut s = socket
            .connect(format!("127.0.0.1:{inbound}").parse().unwrap())
            .await
            .unwrap();
        let batch = "NOOP\r\n".repeat(10_000);
        while s.write_all(batch.as_bytes()).await.is_ok() {}
    });
    eventually(
        "every session to have had a message acknowledged",
        || async {
            let seen = seen.lock().unwrap();
            (0..50).all(|n| {
                seen.acked
                    .iter()
                    .any(|id| id.starts_with(&format!("imap{n}-")))
            }) && (0..20).all(|n| {
                seen.acked
                    .iter()
                    .any(|id| id.starts_with(&format!("smtp{n}-")))
            })
        },
    )
    .await;

    let sent = tokio::time::Instant::now();
    let status = terminate(child).await;
    let took = sent.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took <= SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "stopped in {took:?}"
    );
    for s in sessions {
        tokio::time::timeout(WAIT, s)
            .await
            .expect("sessions end")
            .unwrap();
    }
    stalled.abort();

    let (told, acked) = {
        let seen = seen.lock().unwrap();
        (seen.told, seen.acked.clone())
    };
    assert_eq!(told, 70, "every session got BYE or 421");
    let store = mssante::store::Store::open(&dir.path().join("data"), mssante::clock::system())
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = folder_messages(&store, address, "INBOX")
        .await
        .iter()
        .filter_map(|m| subject(m))
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "{id} was acknowledged, then lost");
    }
    store.close().await;
    psc.shutdown().await;
}
