//! Slowloris on every listener: many connections, each sending one byte every ten
//! seconds of something that never completes (a TLS ClientHello on the implicit-TLS
//! ports, an endless command line on the clear-text ones), reconnecting as soon as the
//! server cuts it. Meanwhile a probe logs in and works as a normal client would.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::setup::{Ports, Users};
use crate::wire;

pub const BYTE_EVERY: Duration = Duration::from_secs(10);

#[derive(Default, Debug, Clone)]
pub struct ListenerFigures {
    pub name: &'static str,
    pub opened: u64,
    pub connect_failed: u64,
    /// Lifetimes of the connections the server closed, in seconds.
    pub cut: Vec<f64>,
    /// Connections still open when the attack stopped, and the oldest of them.
    pub still_open: u64,
    pub oldest_open: f64,
}

#[derive(Default, Debug, Clone)]
pub struct ProbeFigures {
    pub ok: u64,
    pub failed: u64,
    pub max_ms: f64,
    pub failures: Vec<String>,
}

/// The bytes a connection trickles: the start of a TLS record, or an unending command.
fn payload(tls: bool, smtp: bool, i: usize) -> u8 {
    const HELLO: [u8; 9] = [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc];
    const EHLO: &[u8] = b"EHLO slow";
    const IMAP: &[u8] = b"a1 CAPABILITY";
    let head: &[u8] = match (tls, smtp) {
        (true, _) => &HELLO,
        (false, true) => EHLO,
        (false, false) => IMAP,
    };
    head.get(i).copied().unwrap_or(b'x')
}

async fn attacker(
    name: &'static str,
    addr: SocketAddr,
    src: std::net::Ipv4Addr,
    tls: bool,
    smtp: bool,
    figures: Arc<Mutex<ListenerFigures>>,
    mut stop: watch::Receiver<bool>,
) {
    let _ = name;
    while !*stop.borrow() {
        let mut tcp = match wire::connect_from(src, addr).await {
            Ok(t) => t,
            Err(_) => {
                if let Ok(mut f) = figures.lock() {
                    f.connect_failed += 1;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if let Ok(mut f) = figures.lock() {
            f.opened += 1;
        }
        let opened = Instant::now();
        let mut sent = 0usize;
        let mut sink = [0u8; 512];
        let mut next_byte = Instant::now();
        let cut = loop {
            tokio::select! {
                _ = stop.changed() => break false,
                _ = tokio::time::sleep_until(next_byte) => {
                    if tcp.write_all(&[payload(tls, smtp, sent)]).await.is_err() {
                        break true;
                    }
                    sent += 1;
                    next_byte += BYTE_EVERY;
                }
                r = tcp.read(&mut sink) => {
                    // Greetings and refusals are read and ignored; the end is what counts.
                    if !matches!(r, Ok(n) if n > 0) {
                        break true;
                    }
                }
            }
        };
        let lived = opened.elapsed().as_secs_f64();
        if let Ok(mut f) = figures.lock() {
            if cut {
                f.cut.push(lived);
            } else {
                f.still_open += 1;
                f.oldest_open = f.oldest_open.max(lived);
            }
        }
        if !cut {
            return;
        }
    }
}

pub struct Attack {
    pub figures: Vec<Arc<Mutex<ListenerFigures>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// `per_listener` connections on each listener, from addresses of 127.0.(20+i).x with
/// at most 50 connections each, below the unauthenticated cap of an address (100).
pub fn start(ports: &Ports, per_listener: usize) -> Attack {
    let (stop, stop_rx) = watch::channel(false);
    let mut figures = Vec::new();
    let mut tasks = Vec::new();
    for (i, (name, addr)) in ports.all().into_iter().enumerate() {
        let tls = i == 0 || i == 2;
        let smtp = i >= 2;
        let f = Arc::new(Mutex::new(ListenerFigures {
            name,
            ..Default::default()
        }));
        figures.push(f.clone());
        for k in 0..per_listener {
            let src = wire::source(20 + i as u8, k / 50);
            tasks.push(tokio::spawn(attacker(
                name,
                addr,
                src,
                tls,
                smtp,
                f.clone(),
                stop_rx.clone(),
            )));
        }
    }
    Attack {
        figures,
        tasks,
        stop,
    }
}

impl Attack {
    pub async fn stop(self) -> Vec<ListenerFigures> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.figures
            .iter()
            .filter_map(|f| f.lock().ok().map(|f| f.clone()))
            .collect()
    }
}

/// A normal professional during the attack: IMAP login, SELECT, NOOP, LOGOUT, then a
/// submitted message, every `every`, from an address the attack does not use.
pub async fn probe(
    users: Users,
    ports: Ports,
    tls: Arc<rustls::ClientConfig>,
    token: String,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> ProbeFigures {
    let mut figures = ProbeFigures::default();
    let (me, _) = users.probe();
    let src = wire::source(4, 0);
    while !*stop.borrow() {
        let t0 = Instant::now();
        let one = async {
            let mut c = wire::imap_login(src, ports.imaps, &tls, &me, &token).await?;
            c.imap("b", "SELECT INBOX").await?;
            c.imap("c", "NOOP").await?;
            c.imap("d", "LOGOUT").await?;
            let mut s = wire::smtp_login(src, ports.smtps, &tls, &me, &token).await?;
            let body = wire::message(&me, &me, "Sonde", 1024);
            wire::submit(&mut s, &me, std::slice::from_ref(&me), &body).await?;
            let _ = s.smtp("QUIT").await;
            anyhow::Ok(())
        };
        match tokio::time::timeout(Duration::from_secs(60), one).await {
            Ok(Ok(())) => {
                figures.ok += 1;
                figures.max_ms = figures.max_ms.max(t0.elapsed().as_secs_f64() * 1000.0);
            }
            Ok(Err(e)) => {
                figures.failed += 1;
                figures.failures.push(format!("{e:#}"));
            }
            Err(_) => {
                figures.failed += 1;
                figures.failures.push("no answer within 60 s".to_owned());
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
    figures
}
