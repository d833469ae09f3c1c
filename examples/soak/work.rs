//! The working clients and the notifier.
//!
//! Each worker has its own mailbox, one IMAP session and one submission session, and
//! cycles through APPEND, SELECT, SEARCH, FETCH (headers, then a whole body), STORE,
//! a submitted message to the next worker, and EXPUNGE of its oldest messages to keep
//! its folder bounded. The notifier delivers one message to every idle mailbox each
//! round, through submission, a hundred recipients a message.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::setup::{Ports, Users};
use crate::wire::{self, Lines};

pub const KINDS: [&str; 8] = [
    "APPEND", "SELECT", "SEARCH", "FETCH", "STORE", "EXPUNGE", "SMTP", "login",
];

#[derive(Default)]
pub struct Counts {
    pub ops: [AtomicU64; 8],
    pub errors: AtomicU64,
}

impl Counts {
    fn done(&self, kind: usize) {
        self.ops[kind].fetch_add(1, Ordering::Relaxed);
    }
    pub fn total(&self) -> u64 {
        self.ops.iter().map(|o| o.load(Ordering::Relaxed)).sum()
    }
}

pub struct Crew {
    pub counts: Arc<Counts>,
    tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Crew {
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

struct Worker {
    w: usize,
    users: Users,
    ports: Ports,
    tls: Arc<rustls::ClientConfig>,
    token: String,
    counts: Arc<Counts>,
    think: Duration,
}

pub fn start(
    n: usize,
    users: &Users,
    ports: Ports,
    tls: Arc<rustls::ClientConfig>,
    tokens: &std::collections::HashMap<String, String>,
    think: Duration,
) -> Crew {
    let counts = Arc::new(Counts::default());
    let (stop, stop_rx) = watch::channel(false);
    let tasks = (0..n)
        .map(|w| {
            let worker = Worker {
                w,
                users: users.clone(),
                ports,
                tls: tls.clone(),
                token: tokens.get(&users.worker(w).1).cloned().unwrap_or_default(),
                counts: counts.clone(),
                think,
            };
            let stop_rx = stop_rx.clone();
            tokio::spawn(worker.run(stop_rx))
        })
        .collect();
    Crew {
        counts,
        tasks,
        stop,
    }
}

impl Worker {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        let src = wire::source(2, self.w % 10);
        let (me, _) = self.users.worker(self.w);
        let (next, _) = self.users.worker((self.w + 1) % self.users.workers);
        let body = wire::message(&me, &me, "Compte rendu patient", 4096);
        let mail = wire::message(&me, &next, "Resultats biologie", 4096);
        let mut cycle = 0u64;
        while !*stop.borrow() {
            let session = async {
                let mut imap =
                    wire::imap_login(src, self.ports.imaps, &self.tls, &me, &self.token).await?;
                let mut smtp =
                    wire::smtp_login(src, self.ports.smtps, &self.tls, &me, &self.token).await?;
                self.counts.done(7);
                loop {
                    if *stop.borrow() {
                        break;
                    }
                    cycle += 1;
                    self.cycle(&mut imap, &mut smtp, cycle, &me, &next, &body, &mail)
                        .await?;
                    if !self.think.is_zero() {
                        tokio::select! {
                            _ = tokio::time::sleep(self.think) => {}
                            _ = stop.changed() => {}
                        }
                    }
                }
                imap.imap("z", "LOGOUT").await?;
                let _ = smtp.smtp("QUIT").await;
                anyhow::Ok(())
            };
            if let Err(e) = session.await {
                crate::report_error(
                    &self.counts.errors,
                    format_args!("worker {}: {e:#}", self.w),
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn cycle(
        &self,
        imap: &mut Lines,
        smtp: &mut Lines,
        cycle: u64,
        me: &str,
        next: &str,
        body: &str,
        mail: &str,
    ) -> anyhow::Result<()> {
        let c = &self.counts;
        imap.append("a", body).await?;
        c.done(0);
        let r = imap.imap("b", "SELECT INBOX").await?;
        let exists = r
            .iter()
            .find_map(|l| crate::idle::exists_count(l))
            .unwrap_or(1)
            .max(1);
        c.done(1);
        imap.imap("c", "UID SEARCH UNSEEN SUBJECT \"patient\"")
            .await?;
        c.done(2);
        let from = exists.saturating_sub(9).max(1);
        imap.imap(
            "d",
            &format!("FETCH {from}:{exists} (UID FLAGS RFC822.SIZE BODY.PEEK[HEADER])"),
        )
        .await?;
        imap.imap("e", &format!("FETCH {exists} (BODY.PEEK[])"))
            .await?;
        c.done(3);
        c.done(3);
        imap.imap("f", &format!("STORE {exists} +FLAGS (\\Seen)"))
            .await?;
        c.done(4);
        wire::submit(smtp, me, &[next.to_owned()], mail).await?;
        c.done(6);
        if exists > 40 {
            imap.imap(
                "g",
                &format!("STORE 1:{} +FLAGS.SILENT (\\Deleted)", exists - 20),
            )
            .await?;
            c.done(4);
            imap.imap("h", "EXPUNGE").await?;
            c.done(5);
        }
        if cycle.is_multiple_of(50) {
            // Once in a while the poll a client without IDLE sends.
            imap.imap("n", "NOOP").await?;
        }
        Ok(())
    }
}

/// Deliveries to the idle mailboxes: `delivered[m]` messages have been accepted (`250`)
/// for mailbox `m`.
pub struct Notifier {
    pub delivered: Vec<AtomicU32>,
    pub rounds: AtomicU64,
    pub errors: AtomicU64,
}

impl Notifier {
    pub fn new(mailboxes: usize) -> Arc<Notifier> {
        Arc::new(Notifier {
            delivered: (0..mailboxes).map(|_| AtomicU32::new(0)).collect(),
            rounds: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        })
    }

    /// One message to every idle mailbox.
    pub async fn round(
        &self,
        users: &Users,
        addr: SocketAddr,
        tls: &Arc<rustls::ClientConfig>,
        token: &str,
    ) {
        let (me, _) = users.notifier();
        let run = async {
            let mut smtp = wire::smtp_login(wire::source(3, 0), addr, tls, &me, token).await?;
            for chunk in (0..users.idle_mailboxes).collect::<Vec<_>>().chunks(100) {
                let to: Vec<String> = chunk.iter().map(|m| users.idle(*m).0).collect();
                let body = wire::message(&me, &to[0], "Nouveau resultat disponible", 1024);
                wire::submit(&mut smtp, &me, &to, &body).await?;
                for m in chunk {
                    self.delivered[*m].fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = smtp.smtp("QUIT").await;
            anyhow::Ok(())
        };
        match run.await {
            Ok(()) => {
                self.rounds.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => crate::report_error(&self.errors, format_args!("notifier: {e:#}")),
        }
    }
}
