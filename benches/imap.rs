//! IMAP figures: resident memory per authenticated idle connection (1,000 and 5,000
//! connections, server process only: the clients run in a child process), and the time
//! of a first-sync header FETCH over a 100,000-message folder.
//!
//! `cargo bench --bench imap` (needs `ulimit -n` above 2 × 5,000 + margin).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mssante::store::Flags;
use mssante_conformance::psc_standin::TokenSpec;
use rustls::pki_types::CertificateDer;
use tokio::time::Instant;

const CHILD: &str = "MSSANTE_IMAP_BENCH_CLIENTS";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(spec) = std::env::var(CHILD) {
        runtime.block_on(clients(spec));
        return;
    }
    runtime.block_on(run());
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child: opens `n` connections, authenticates, selects INBOX, enters IDLE, says
/// "ready", and holds them until its stdin closes.
async fn clients(spec: String) {
    let parts: Vec<&str> = spec.split('|').collect();
    let addr: std::net::SocketAddr = parts[0].parse().unwrap();
    let ca = CertificateDer::from(std::fs::read(parts[1]).unwrap());
    let n: usize = parts[2].parse().unwrap();
    let token = parts[3].to_owned();
    let ca = Arc::new(ca);
    let mut held = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(100) {
        let mut batch = Vec::new();
        for _ in 0..100.min(n - chunk * 100) {
            let ca = ca.clone();
            let token = token.clone();
            batch.push(tokio::spawn(async move {
                let mut c = Client::plain(addr).await;
                c.upgrade(&ca).await;
                c.line().await;
                let r = c
                    .cmd(&format!(
                        "AUTHENTICATE XOAUTH2 {}",
                        xoauth2(HOUSE_BAL, &token)
                    ))
                    .await;
                assert!(last(&r).contains(" OK "), "{r:?}");
                c.cmd("SELECT INBOX").await;
                c.send(b"i IDLE\r\n").await;
                assert!(c.line().await.starts_with('+'));
                c
            }));
        }
        for b in batch {
            held.push(b.await.unwrap());
        }
    }
    println!("ready {}", held.len());
    let mut line = String::new();
    let _ = tokio::task::spawn_blocking(move || std::io::stdin().read_line(&mut line)).await;
    drop(held);
}

async fn run() {
    let w = world(
        "imap.max_connections_per_peer = 100000\nimap.max_commands_per_second = 100000\nsession.idle_timeout = \"1h\"",
    )
    .await;
    let ca_path = w.dir.path().join("ca.der");
    std::fs::write(&ca_path, w.ca.as_ref()).unwrap();
    let token = w
        .psc
        .mint(&TokenSpec::valid(HOUSE).with_lifetime(Duration::from_secs(3600)));

    println!("IMAP memory per authenticated idle connection (server RSS delta, in IDLE on INBOX):");
    for n in [1000usize, 5000] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss_kib();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(
                CHILD,
                format!("{}|{}|{n}|{token}", w.tls, ca_path.display()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        assert!(ready.starts_with("ready"), "child: {ready}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib();
        let per = (after.saturating_sub(before) as f64) * 1024.0 / n as f64;
        println!(
            "  {n:>5} connections: RSS {before} KiB -> {after} KiB, {:.1} KiB per connection",
            per / 1024.0
        );
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    }

    let store = w.running.as_ref().unwrap().context.store.clone();
    let mailbox = store.mailbox(CUDDY_BAL).await.unwrap().unwrap();
    let inbox = store.folder(mailbox.id, "INBOX").await.unwrap().unwrap();
    let total = 100_000usize;
    let started = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(1024));
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let message = format!(
                "Return-Path: <sender{i}@clinique.mssante.fr>\r\nReceived: from mx.clinique.mssante.fr by mail.h.mssante.fr; Mon, 23 Nov 2026 10:00:00 +0100\r\nFrom: Docteur {i} <sender{i}@clinique.mssante.fr>\r\nTo: Lisa Cuddy <lisa.cuddy@h.mssante.fr>\r\nSubject: Compte rendu patient {i}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0100\r\nMessage-ID: <{i}@clinique.mssante.fr>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nX-MSS-CODECDA: 11488-4\r\n\r\nCompte rendu numero {i}.\r\n"
            );
            store.append(inbox.id, message.as_bytes(), Flags::default(), mssante::clock::SystemClock::now_utc()).await.unwrap();
            drop(permit);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "\nfilled a {total}-message folder in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut c = w.login(CUDDY_BAL, CUDDY).await;
    let t = Instant::now();
    let r = c.cmd("SELECT INBOX").await;
    assert!(
        r.iter().any(|l| l.contains(&format!("* {total} EXISTS"))),
        "{r:?}"
    );
    println!(
        "SELECT INBOX ({total} messages): {:.3} s",
        t.elapsed().as_secs_f64()
    );
    for round in 1..=3 {
        let t = Instant::now();
        let r = c
            .cmd("UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (From To Subject Date Message-ID)])")
            .await;
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(r.len(), total + 1);
        println!(
            "UID FETCH 1:* (UID FLAGS RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER.FIELDS (...)]) over {total} messages, run {round}: {secs:.3} s"
        );
    }
    w.stop().await;
}
