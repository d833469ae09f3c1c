//! The store's access counter (`Store::access_epoch`), read once a second for the whole
//! process rather than by every session.
//!
//! Withdrawn access must end open sessions within about a second, including sessions
//! that only IDLE. Ten thousand idle sessions each reading the counter every second
//! would be ten thousand reads a second for nothing; one reader that publishes the value
//! on a `watch` channel costs one read a second whatever the number of sessions, and an
//! idle session wakes only when the value moves.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::store::Store;

/// How stale the process's view of the counter may get.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// This process's latest reading of the access counter; `None` until the store answered.
#[derive(Clone, Debug)]
pub struct AccessEpoch(watch::Receiver<Option<i64>>);

impl AccessEpoch {
    /// Reads the counter now, then every `POLL_INTERVAL` until `shutdown`. A failed read
    /// keeps the last value: sessions then go on as they were, and the next read decides.
    pub async fn start(store: Store, shutdown: CancellationToken, tasks: &TaskTracker) -> Self {
        let first = match store.access_epoch().await {
            Ok(epoch) => Some(epoch),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the access counter");
                None
            }
        };
        let (tx, rx) = watch::channel(first);
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                match store.access_epoch().await {
                    Ok(epoch) => {
                        failing = false;
                        tx.send_if_modified(|seen| {
                            let moved = *seen != Some(epoch);
                            *seen = Some(epoch);
                            moved
                        });
                    }
                    // Said once per outage, not once a second.
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot read the access counter; open sessions keep their access until it can be read");
                    }
                    Err(_) => {}
                }
            }
        });
        AccessEpoch(rx)
    }

    /// The latest reading. Read before an access decision, it is never newer than the
    /// decision, so a withdrawal after the decision always shows as a moved counter.
    pub fn current(&self) -> Option<i64> {
        *self.0.borrow()
    }

    /// Waits until the reading moves; never returns once the reader has stopped
    /// (shutdown), so callers can keep it in a `select!` unconditionally.
    pub async fn moved(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}
