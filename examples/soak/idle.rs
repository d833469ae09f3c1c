//! The idle crowd: connections that authenticate, SELECT INBOX, enter IDLE and wait,
//! counting every `* n EXISTS` the server pushes, until told to send DONE.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::setup::Users;
use crate::wire;

/// What the idle connections have seen, shared with the main task.
#[derive(Default)]
pub struct Seen {
    /// Connections that reached IDLE.
    pub idling: AtomicU64,
    /// `* n EXISTS` lines received while idling.
    pub exists_lines: AtomicU64,
    pub errors: AtomicU64,
    /// Per connection: the last EXISTS count heard.
    pub last_exists: Vec<AtomicU32>,
}

pub struct Crowd {
    pub seen: Arc<Seen>,
    pub tasks: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

/// Connection `k` watches idle mailbox `k % mailboxes` from source address `k % addresses`
/// of 127.0.1.x: each mailbox is watched from several addresses, each address carries
/// many professionals, and no (address, mailbox) pair comes near its cap of 20.
pub fn mailbox_of(k: usize, users: &Users) -> usize {
    k % users.idle_mailboxes
}

pub fn open(
    n: usize,
    addresses: usize,
    users: &Users,
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    tokens: &std::collections::HashMap<String, String>,
) -> Crowd {
    let seen = Arc::new(Seen {
        last_exists: (0..n).map(|_| AtomicU32::new(0)).collect(),
        ..Seen::default()
    });
    let (stop, stop_rx) = watch::channel(false);
    // Logins in flight at once: well under the per-address unauthenticated cap (100)
    // and the verification slots (16) of each of the addresses.
    let ramp = Arc::new(Semaphore::new(addresses.clamp(1, 20) * 8));
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let (user, idnat) = users.idle(mailbox_of(k, users));
        let token = tokens.get(&idnat).cloned().unwrap_or_default();
        let (seen, tls, ramp, mut stop_rx) =
            (seen.clone(), tls.clone(), ramp.clone(), stop_rx.clone());
        let src = wire::source(1, k % addresses);
        tasks.push(tokio::spawn(async move {
            let permit = ramp.acquire_owned().await;
            let opened = async {
                let mut c = wire::imap_login(src, addr, &tls, &user, &token).await?;
                let r = c.imap("s", "SELECT INBOX").await?;
                let exists = r.iter().find_map(|l| exists_count(l)).unwrap_or(0);
                c.send(b"i IDLE\r\n").await?;
                let plus = c.line().await?;
                anyhow::ensure!(plus.starts_with('+'), "IDLE: {}", plus.trim_end());
                anyhow::Ok((c, exists))
            };
            let (mut c, exists) = match opened.await {
                Ok(x) => x,
                Err(e) => {
                    crate::report_error(&seen.errors, format_args!("idle {k} open: {e:#}"));
                    return;
                }
            };
            drop(permit);
            seen.last_exists[k].store(exists, Ordering::Relaxed);
            seen.idling.fetch_add(1, Ordering::Relaxed);
            let result = async {
                loop {
                    tokio::select! {
                        _ = stop_rx.changed() => break,
                        l = c.line_within(Duration::from_secs(24 * 3600)) => {
                            let l = l?;
                            if let Some(n) = exists_count(&l) {
                                seen.exists_lines.fetch_add(1, Ordering::Relaxed);
                                seen.last_exists[k].store(n, Ordering::Relaxed);
                            } else if l.starts_with("* BYE") {
                                anyhow::bail!("{}", l.trim_end());
                            }
                        }
                    }
                }
                c.send(b"DONE\r\n").await?;
                c.imap_until("i", "IDLE").await?;
                c.imap("z", "LOGOUT").await?;
                anyhow::Ok(())
            };
            if let Err(e) = result.await {
                crate::report_error(&seen.errors, format_args!("idle {k}: {e:#}"));
            }
        }));
    }
    Crowd { seen, tasks, stop }
}

impl Crowd {
    /// Every connection sends DONE and LOGOUT; waits for them.
    pub async fn close(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub fn exists_count(line: &str) -> Option<u32> {
    line.strip_prefix("* ")?
        .strip_suffix(" EXISTS\r\n")?
        .parse()
        .ok()
}
