//! The PostgreSQL backend: a database server that several `serve` nodes share.
//!
//! There is no writer task here: every write is its own transaction on a pooled
//! connection, and PostgreSQL shares the WAL flush between concurrent commits (group
//! commit is the server's job). A write that returned `Ok` is durable: every connection
//! runs with `synchronous_commit = on`, whatever the server's default. UIDs and MODSEQs
//! are taken from the folder row under its row lock (`UPDATE … RETURNING`), so writers
//! on every node queue on the folder and a rolled-back writer leaves no gap.
//!
//! A transaction PostgreSQL aborts for a serialization failure or a deadlock (two
//! MOVEs in opposite directions lock the same two folders) is run again, a few times,
//! before the caller hears `Busy`.
//!
//! Changes reach the sessions of every node: after each commit that changes a folder,
//! the node tells its own sessions directly and the other nodes with a `NOTIFY`
//! (`notifier`: not from inside the transaction, which would serialize every commit),
//! and each node `LISTEN`s (`listener`), skipping its own notifications, which carry
//! its stamp.

mod audit;
mod body_search;
mod error;
mod lifecycle;
mod listener;
mod mailboxes;
mod messages;
mod notifier;
mod queue;
mod quota;
mod sort_keys;
mod structures;
mod usage;

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::clock::SharedClock;
use crate::store::CommitObserver;
use crate::store::changes::{Change, Changes, FolderChange, Subscription};
use crate::store::error::{BackendErrorKind, StoreError};

pub(crate) use error::{is_postgres_error, store_error};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./schema/postgres");

/// Where the database is and how to use it, from `[store]`.
pub(crate) struct Settings {
    /// With its password: handed to the driver only.
    pub(crate) url: String,
    /// Host and port, for errors.
    pub(crate) host: String,
    pub(crate) pool_size: u32,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    /// How long a claim on an outbound message lasts unless renewed.
    pub(crate) queue_lease: Duration,
}

/// Times a transaction aborted by a serialization failure or deadlock is run again.
const RETRIES: u32 = 5;

/// The channel every node's commits are announced on.
const CHANNEL: &str = "mssante_changes";

#[derive(Clone)]
pub(crate) struct PostgresStore {
    pool: PgPool,
    /// This process among the nodes: stamps its notifications and its queue leases.
    node: Arc<str>,
    changes: Changes,
    /// Sends this node's changes to the other nodes.
    notifier: Arc<notifier::Notifier>,
    /// Seconds a claim on an outbound message lasts unless renewed (`queue`).
    lease_secs: i64,
    /// The notification listener and the queue lease renewal, stopped with the store.
    tasks: Arc<Tasks>,
    /// Hears of each committed transaction (how long it took; one write each).
    observe: Arc<OnceLock<CommitObserver>>,
}

/// Background tasks of a store, aborted when it closes or its last clone goes.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Tasks {
    fn stop(&self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Drop for Tasks {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `$body` (an expression using `$c: &mut PgConnection`, awaited inside) in one
/// transaction and commits it; runs it again from the start when PostgreSQL aborted it
/// for a serialization failure or a deadlock.
macro_rules! transaction {
    ($store:expr, |$c:ident| $body:expr) => {{
        let mut tries = 0u32;
        loop {
            let result: Result<_, $crate::store::error::StoreError> = async {
                let started = tokio::time::Instant::now();
                let mut tx = $store.pool_ref().begin().await?;
                let value = {
                    let $c: &mut sqlx::PgConnection = &mut *tx;
                    $body
                }?;
                tx.commit().await?;
                $store.committed(started.elapsed());
                Ok(value)
            }
            .await;
            match result {
                Err(e)
                    if tries < $crate::store::postgres::retries()
                        && $crate::store::postgres::is_conflict(&e) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 10))
                        .await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use transaction;

pub(crate) fn retries() -> u32 {
    RETRIES
}

pub(crate) fn is_conflict(e: &StoreError) -> bool {
    error::is_conflict(e)
}

impl PostgresStore {
    /// Connects, applies the migrations (one node at a time: sqlx holds an advisory
    /// lock while it migrates) and starts listening for the other nodes' changes.
    pub(crate) async fn connect(
        settings: &Settings,
        clock: SharedClock,
    ) -> Result<Self, StoreError> {
        let unreachable = |e: sqlx::Error| {
            let e = StoreError::from(e);
            let kind = match &e {
                StoreError::Backend { kind, .. } => *kind,
                _ => BackendErrorKind::Unavailable,
            };
            StoreError::backend(
                kind,
                format!("cannot use PostgreSQL at {}: {e}", settings.host),
            )
        };
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|_| {
                StoreError::backend(
                    BackendErrorKind::Other,
                    format!("the PostgreSQL URL for {} cannot be read", settings.host),
                )
            })?
            .application_name("mssante")
            .options([
                ("synchronous_commit", "on".to_owned()),
                (
                    "statement_timeout",
                    settings.statement_timeout.as_millis().to_string(),
                ),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .acquire_timeout(settings.connect_timeout)
            .connect_with(options.clone())
            .await
            .map_err(unreachable)?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        let node: Arc<str> = Arc::from(format!(
            "{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let changes = Changes::new();
        let listener = listener::start(
            options.clone(),
            settings.connect_timeout,
            node.clone(),
            changes.clone(),
        )
        .await
        .map_err(unreachable)?;
        let (notifier, sender) = notifier::start(options, settings.connect_timeout)
            .await
            .map_err(unreachable)?;
        let lease_secs = i64::try_from(settings.queue_lease.as_secs())
            .unwrap_or(i64::MAX)
            .max(1);
        let renewal = tokio::spawn(queue::renew_leases(
            pool.clone(),
            node.clone(),
            lease_secs,
            clock,
        ));
        Ok(PostgresStore {
            pool,
            node,
            changes,
            notifier,
            lease_secs,
            tasks: Arc::new(Tasks(vec![listener, sender, renewal])),
            observe: Arc::new(OnceLock::new()),
        })
    }

    /// Tells `observe` of every commit from now on; only the first observer is kept.
    pub(crate) fn observe_commits(&self, observe: CommitObserver) {
        let _ = self.observe.set(observe);
    }

    /// A transaction committed after `took`: PostgreSQL groups concurrent commits
    /// itself, so each is a batch of one write here.
    pub(crate) fn committed(&self, took: Duration) {
        if let Some(observe) = self.observe.get() {
            observe(took, 1);
        }
    }

    pub(crate) fn pool_ref(&self) -> &PgPool {
        &self.pool
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        self.changes.subscribe()
    }

    /// Tells this node's sessions of committed changes, and the other nodes: returns
    /// once the notification is with PostgreSQL, so the writer's client, told OK next,
    /// finds the change through any node.
    async fn notify(&self, changed: &[(i64, u64)]) {
        for &(folder_id, modseq) in changed {
            self.changes.publish_folder(FolderChange {
                folder_id,
                modseq: modseq as i64,
            });
        }
        let payloads = changed
            .iter()
            .map(|(folder, modseq)| listener::payload(&self.node, *folder, *modseq))
            .collect();
        self.notifier.send(payloads).await;
    }

    /// Tells this node's sessions and the other nodes of a change to a mailbox's folder
    /// list or subscriptions, as `notify` does for folders.
    pub(crate) async fn announce(&self, change: Change) {
        self.changes.publish(change);
        if let Some(p) = listener::mailbox_payload(&self.node, change) {
            self.notifier.send(vec![p]).await;
        }
    }

    /// Gives back the queue leases this node holds (a stopping node's attempts were
    /// cut short: the other nodes, or this one restarted, take them at once rather than
    /// when the leases run out), then closes every connection.
    pub(crate) async fn close(self) {
        self.tasks.stop();
        if let Err(e) = self.release_queue_leases().await {
            tracing::warn!(error = %e, "could not give back this node's queue leases; they expire on their own");
        }
        self.pool.close().await;
    }
}

/// One connection of its own to the database at `url`, schema migrated, for work that
/// outlasts any statement timeout (`store copy` fills a database in one transaction).
/// Commits are durable, as the store's own are.
pub(crate) async fn connect_migrated(
    url: &str,
    connect_timeout: Duration,
) -> Result<sqlx::PgConnection, sqlx::Error> {
    use sqlx::ConnectOptions as _;
    let options = PgConnectOptions::from_str(url)?
        .application_name("mssante store copy")
        .options([("synchronous_commit", "on"), ("statement_timeout", "0")]);
    let mut conn = tokio::time::timeout(connect_timeout, options.connect())
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)??;
    MIGRATOR.run(&mut conn).await?;
    Ok(conn)
}
