//! This node's commits, told to the other nodes: a `NOTIFY` on the channel they
//! `LISTEN` on (`listener`), sent right after the commit from a connection of its own.
//!
//! Not from inside the write's transaction: PostgreSQL serializes the commits of every
//! transaction that sent a `NOTIFY` in a database (one lock, held through the commit's
//! WAL flush), which takes away the WAL flush concurrent commits otherwise share. With
//! 16 writers on the 2-core bench machine: about 1,200 commits/s without, 200 with.
//! Here the writes commit side by side, and their notifications go out in batches,
//! with `synchronous_commit` off (a notification is not data; nothing waits for disk).
//!
//! A write returns once its notification was handed to PostgreSQL, so a client told OK
//! on this node finds the change through any node at its next command, as before. The
//! cost: a node that dies between a commit and its notification leaves the other nodes'
//! sessions unaware of that one change until the next change to the folder or until they
//! select it again; the change itself is committed and nothing is lost.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

use super::CHANNEL;

/// How long to wait before trying again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// Notifications waiting to be sent, and the writes waiting for them.
pub(super) struct Notifier {
    pending: Mutex<Pending>,
    wake: Notify,
    /// How long a write waits for its notification to go out before it returns anyway.
    wait: Duration,
}

#[derive(Default)]
struct Pending {
    payloads: Vec<String>,
    sent: Vec<oneshot::Sender<()>>,
}

impl Notifier {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `payloads` and returns once they were sent (at most `wait`: the write has
    /// committed, and must not fail for a late notification; the log says so).
    pub(super) async fn send(&self, payloads: Vec<String>) {
        if payloads.is_empty() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending();
            pending.payloads.extend(payloads);
            pending.sent.push(tx);
        }
        self.wake.notify_one();
        if tokio::time::timeout(self.wait, rx).await.is_err() {
            tracing::warn!(
                "a change notification to the other nodes is late; their sessions may see the change later"
            );
        }
    }
}

/// Connects (so an unreachable database is an error at start, as for the pool) and
/// starts the sending task; it runs until the store aborts it.
pub(super) async fn start(
    options: PgConnectOptions,
    timeout: Duration,
) -> Result<(Arc<Notifier>, JoinHandle<()>), sqlx::Error> {
    let options = options.application_name("mssante-notifier");
    let connection = connect(&options, timeout).await?;
    let notifier = Arc::new(Notifier {
        pending: Mutex::new(Pending::default()),
        wake: Notify::new(),
        wait: timeout,
    });
    let task = tokio::spawn(run(notifier.clone(), connection, options, timeout));
    Ok((notifier, task))
}

async fn connect(
    options: &PgConnectOptions,
    timeout: Duration,
) -> Result<PgConnection, sqlx::Error> {
    let mut c = tokio::time::timeout(timeout, PgConnection::connect_with(options))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    sqlx::query("SET synchronous_commit = off")
        .execute(&mut c)
        .await?;
    Ok(c)
}

async fn run(
    notifier: Arc<Notifier>,
    connection: PgConnection,
    options: PgConnectOptions,
    timeout: Duration,
) {
    let mut connection = Some(connection);
    loop {
        notifier.wake.notified().await;
        let batch = std::mem::take(&mut *notifier.pending());
        if batch.payloads.is_empty() {
            continue;
        }
        // Until sent: the other nodes' sessions rely on hearing of every change.
        loop {
            let c = match connection.as_mut() {
                Some(c) => c,
                None => match connect(&options, timeout).await {
                    Ok(c) => connection.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect to send change notifications; trying again");
                        tokio::time::sleep(RETRY).await;
                        continue;
                    }
                },
            };
            let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(CHANNEL)
                .bind(&batch.payloads)
                .execute(c)
                .await;
            match sent {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "change notifications not sent; trying again on a new connection");
                    connection = None;
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        for sent in batch.sent {
            let _ = sent.send(());
        }
    }
}
