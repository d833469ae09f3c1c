//! SMTP throughput with durable commits: 50 concurrent clients over TLS sending 4 KiB
//! messages to local mailboxes, first on submission (465, XOAUTH2), then on the
//! operator interface (25, mutual TLS and the trust list). Every counted message got
//! its `250`, which the server sends only after the SQLite commit (WAL,
//! synchronous=FULL) that holds it.
//!
//! `cargo bench --bench smtp` (SMTP_BENCH_SECS to change the 10 s per phase).

#[path = "../tests/common/mod.rs"]
mod common;

use common::smtp as smtp_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use smtp_support::*;

const CLIENTS: usize = 50;
const MESSAGE_SIZE: usize = 4096;
const RECIPIENTS: usize = 20;

#[derive(Clone, Copy)]
enum Phase {
    Submission,
    Inbound,
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let secs: u64 = std::env::var("SMTP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let pki = Pki::new();
    let mut o = Options::new("a.mssante.test");
    o.trust = vec![("b.mssante.test".into(), pki.dn("operator2"))];
    o.smtp_extra =
        "save_sent = false\nmax_connections_per_peer = 500\nmax_messages_per_connection = 10000000"
            .into();
    let a = Instance::start(&pki, o).await;
    let sender = a.mailbox("house", IDNAT).await;
    let mut recipients = Vec::new();
    for i in 0..RECIPIENTS {
        recipients.push(a.mailbox(&format!("ward{i}"), OTHER_IDNAT).await);
    }
    let recipients = Arc::new(recipients);
    println!(
        "{CLIENTS} clients, {MESSAGE_SIZE}-byte messages, one local recipient each, {secs} s per phase"
    );
    for phase in [Phase::Submission, Phase::Inbound] {
        let sent = Arc::new(AtomicU64::new(0));
        let latency_us = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for c in 0..CLIENTS {
            let (sent, latency_us, stop) = (sent.clone(), latency_us.clone(), stop.clone());
            let recipients = recipients.clone();
            let (from, addr, tls) = match phase {
                Phase::Submission => (sender.clone(), a.submission_tls(), pki.client(None)),
                Phase::Inbound => (
                    format!("sender{c}@b.mssante.test"),
                    a.inbound(),
                    pki.client(Some("operator2")),
                ),
            };
            let token = a.token();
            tasks.push(tokio::spawn(async move {
                let mut s = match phase {
                    Phase::Submission => authenticated(addr, tls, &from, &token).await,
                    Phase::Inbound => {
                        let mut s = starttls(plain(addr).await, tls).await;
                        assert_eq!(s.cmd("EHLO mx.b.mssante.test").await.0, 250);
                        s
                    }
                };
                let mut n = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let to = &recipients[(c + n) % recipients.len()];
                    n += 1;
                    let body = dot_stuff(&message(&from, to, &format!("m{c}-{n}"), MESSAGE_SIZE));
                    let started = Instant::now();
                    // MAIL, RCPT and DATA pipelined (RFC 2920), then the content.
                    s.send(&format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n"))
                        .await;
                    for expected in [250, 250, 354] {
                        assert_eq!(s.reply().await.0, expected);
                    }
                    s.send(&body).await;
                    let (code, text) = s.reply().await;
                    assert_eq!(code, 250, "{text}");
                    sent.fetch_add(1, Ordering::Relaxed);
                    latency_us.fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
                }
                let _ = s.cmd("QUIT").await;
            }));
        }
        // Let every client connect and authenticate before measuring.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = sent.load(Ordering::Relaxed);
        let lat_before = latency_us.load(Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let count = sent.load(Ordering::Relaxed) - before;
        let lat = latency_us.load(Ordering::Relaxed) - lat_before;
        let elapsed = started.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let name = match phase {
            Phase::Submission => "submission (465, XOAUTH2)",
            Phase::Inbound => "inbound (25, mutual TLS)",
        };
        println!(
            "{name}: {count} messages in {elapsed:.1} s = {:.0} messages/s, mean latency {:.1} ms",
            count as f64 / elapsed,
            lat as f64 / count.max(1) as f64 / 1000.0
        );
    }
    let mut stored = 0;
    for r in recipients.iter() {
        stored += a.messages(r, "INBOX").await.len();
    }
    println!("stored in the recipients' INBOXes: {stored}");
    a.stop().await;
}
