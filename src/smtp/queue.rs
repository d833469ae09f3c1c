//! The queue runner: sends queued mail to other operators, retries with exponential
//! back-off, and files a delivery status notification when it gives up.
//!
//! Delivery is at least once. A recipient is marked delivered only after the remote
//! server's `250` to the data, in one durable write; if the process dies (or shuts
//! down) between that `250` and the write, the recipient is still pending on restart
//! and the message is sent again: a duplicate, never a loss — as with every MTA.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::dsn::{self, FailedRecipient, Notice};
use super::outbound::{Client, Envelope, Outcome};
use crate::store::{QueueSettlement, QueuedMessage, RawMessage, Traffic};

/// Messages being attempted at once.
const PARALLEL: usize = 16;
/// How often the queue is scanned when nothing wakes the runner.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Due messages read per scan.
const BATCH: u32 = 256;

pub(crate) fn spawn_runner(shared: Arc<Shared>, tasks: &TaskTracker) {
    let config = &shared.context.config;
    let client = match crate::tls::client_config(&config.tls) {
        Ok(tls) => Some(Arc::new(Client {
            hostname: config.server.hostname.clone(),
            tls,
            trust: shared.trust.clone(),
            routes: config.smtp.routes.clone(),
            reply_timeout: config.smtp.queue_reply_timeout.0,
            data_timeout: config.smtp.queue_data_timeout.0,
            dns_servers: config.smtp.dns_servers.clone(),
        })),
        Err(e) => {
            tracing::error!(error = %e, "no TLS client configuration: queued mail will wait");
            None
        }
    };
    let runner_tasks = tasks.clone();
    tasks.spawn(async move {
        let in_flight = Arc::new(Mutex::new(HashSet::new()));
        let slots = Arc::new(Semaphore::new(PARALLEL));
        loop {
            if let Some(client) = &client {
                scan(&shared, client, &in_flight, &slots, &runner_tasks).await;
            }
            tokio::select! {
                _ = shared.shutdown.cancelled() => return,
                _ = shared.queued.notified() => {}
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            }
        }
    });
}

async fn scan(
    shared: &Arc<Shared>,
    client: &Arc<Client>,
    in_flight: &Arc<Mutex<HashSet<i64>>>,
    slots: &Arc<Semaphore>,
    tasks: &TaskTracker,
) {
    let now = shared.context.clock.now();
    let due = match shared.context.store.queue_due(now, BATCH).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the queue");
            return;
        }
    };
    for message in due {
        if !in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(message.id)
        {
            continue;
        }
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        let client = client.clone();
        let in_flight = in_flight.clone();
        tasks.spawn(async move {
            let id = message.id;
            tokio::select! {
                _ = shared.shutdown.cancelled() => {}
                _ = attempt(&shared, &client, message) => {}
            }
            in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&id);
            drop(permit);
        });
    }
}

/// When to try again after `attempts` failed attempts.
pub fn backoff(initial: Duration, max: Duration, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.min(20)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

async fn attempt(shared: &Shared, client: &Client, message: QueuedMessage) {
    let context = &shared.context;
    let body = match context.store.body(message.body_id).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, queue = message.id, "cannot read a queued body");
            return;
        }
    };
    let mut by_domain: BTreeMap<&str, Vec<_>> = BTreeMap::new();
    for r in &message.recipients {
        by_domain
            .entry(r.domain.as_str())
            .or_default()
            .push(r.clone());
    }
    let mut outcomes = Vec::new();
    for (domain, recipients) in &by_domain {
        let envelope = Envelope {
            domain,
            sender: &message.sender,
            recipients,
            envid: message.envid.as_deref(),
            ret_full: message.ret_full,
            body: &body,
        };
        outcomes.extend(client.send(&envelope).await);
    }
    let now = context.clock.now();
    let expired = now
        .signed_duration_since(message.created_at)
        .to_std()
        .unwrap_or_default()
        >= context.config.smtp.queue_max_lifetime.0;
    let mut settlement = QueueSettlement::new(message.id, now);
    let mut failed = Vec::new();
    for (id, outcome) in outcomes {
        let Some(r) = message.recipients.iter().find(|r| r.id == id) else {
            continue;
        };
        match outcome {
            Outcome::Delivered => {
                tracing::info!(queue = message.id, recipient = %r.address, "delivered to the remote operator");
                settlement.delivered.push(id);
            }
            Outcome::Permanent(status, why) => {
                tracing::info!(queue = message.id, recipient = %r.address, reason = %why, "delivery failed");
                settlement.failed.push((id, why.clone()));
                failed.push((r.clone(), status, why));
            }
            Outcome::Temporary(why) if expired => {
                tracing::info!(queue = message.id, recipient = %r.address, reason = %why, "delivery expired");
                let why = format!("delivery time expired; last error: {why}");
                settlement.failed.push((id, why.clone()));
                failed.push((r.clone(), "4.4.7".to_owned(), why));
            }
            Outcome::Temporary(why) => {
                tracing::info!(queue = message.id, recipient = %r.address, reason = %why, "delivery deferred");
                settlement.deferred.push((id, why));
            }
        }
    }
    let smtp = &context.config.smtp;
    let wait = backoff(
        smtp.queue_retry_initial.0,
        smtp.queue_retry_max.0,
        message.attempts,
    );
    settlement.next_attempt_at =
        Some(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::hours(1)));
    settlement.notice = notice(shared, &message, &failed, &body, now).await;
    let counts = (
        settlement.delivered.len() as u64,
        settlement.deferred.len() as u64,
        settlement.failed.len() as u64,
    );
    match context.store.queue_settle(settlement).await {
        Ok(()) => {
            let (relayed, deferred, bounced) = counts;
            context.metrics.messages_relayed.inc_by(relayed);
            context.metrics.messages_deferred.inc_by(deferred);
            context.metrics.messages_bounced.inc_by(bounced);
            if relayed + bounced > 0 {
                let traffic = Traffic {
                    relayed,
                    bounced,
                    ..Traffic::default()
                };
                if let Err(e) = context.store.record_traffic(now, traffic).await {
                    tracing::error!(error = %e, queue = message.id, "cannot count a delivery attempt in the usage figures");
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, queue = message.id, "cannot record a delivery attempt")
        }
    }
}

/// The failure notice for the sender, if one is due and the sender has a mailbox here.
async fn notice(
    shared: &Shared,
    message: &QueuedMessage,
    failed: &[(crate::store::QueuedRecipient, String, String)],
    body: &[u8],
    now: DateTime<Utc>,
) -> Option<(Vec<i64>, Arc<RawMessage>)> {
    if message.sender.is_empty() {
        return None;
    }
    let reported: Vec<FailedRecipient> = failed
        .iter()
        .filter(|(r, _, _)| wants_failure_notice(r.notify.as_deref()))
        .map(|(r, status, why)| FailedRecipient {
            address: r.address.clone(),
            orcpt: r.orcpt.clone(),
            status: status.clone(),
            diagnostic: why.clone(),
        })
        .collect();
    if reported.is_empty() {
        return None;
    }
    let store = &shared.context.store;
    let mailbox = store.mailbox(&message.sender).await.ok().flatten()?;
    let inbox = store.folder(mailbox.id, "INBOX").await.ok().flatten()?;
    let bytes = dsn::failure_notice(&Notice {
        hostname: &shared.context.config.server.hostname,
        sender: &message.sender,
        envid: message.envid.as_deref(),
        arrival: message.created_at,
        now,
        failed: &reported,
        original: body,
        ret_full: message.ret_full,
    })
    .map_err(|e| tracing::error!(error = %e, "cannot build a failure notice"))
    .ok()?;
    Some((vec![inbox.id], Arc::new(RawMessage::new(&bytes))))
}

/// RFC 3461: no NOTIFY means failures are reported; NEVER or a list without FAILURE
/// means not.
fn wants_failure_notice(notify: Option<&str>) -> bool {
    notify.is_none_or(|n| {
        n.split(',')
            .any(|w| w.trim().eq_ignore_ascii_case("FAILURE"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let i = Duration::from_secs(300);
        let max = Duration::from_secs(3600);
        assert_eq!(backoff(i, max, 0), i);
        assert_eq!(backoff(i, max, 1), i * 2);
        assert_eq!(backoff(i, max, 3), i * 8);
        assert_eq!(backoff(i, max, 50), max);
    }

    #[test]
    fn notify_rules() {
        assert!(wants_failure_notice(None));
        assert!(wants_failure_notice(Some("SUCCESS,FAILURE")));
        assert!(!wants_failure_notice(Some("NEVER")));
        assert!(!wants_failure_notice(Some("DELAY")));
    }
}
