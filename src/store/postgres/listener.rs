//! Every node's commits, heard by this node: one connection `LISTEN`s on the channel
//! the writes `NOTIFY` on, and passes the other nodes' changes to this node's sessions.
//!
//! Notifications sent while that connection is down are lost (PostgreSQL keeps none
//! for a listener that is not there). So when it drops, every session is told that
//! any folder may have changed, and again every `POLL` until the connection is back:
//! sessions re-read their folder from the database, which is slower but misses
//! nothing. The log says when this starts and ends.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use tokio::task::JoinHandle;

use super::CHANNEL;
use crate::store::changes::{Change, Changes, FolderChange};

/// How often sessions look for changes while notifications are not arriving.
const POLL: Duration = Duration::from_secs(1);

/// A notification's text: the sending node, the folder and its new MODSEQ.
pub(super) fn payload(node: &str, folder_id: i64, modseq: u64) -> String {
    format!("{node} {folder_id} {modseq}")
}

/// A mailbox-wide notification's text: the sending node, what changed (`folders` or
/// `subscriptions`) and the mailbox; `None` for a change that is not mailbox-wide.
pub(super) fn mailbox_payload(node: &str, change: Change) -> Option<String> {
    match change {
        Change::Folders { mailbox_id } => Some(format!("{node} folders {mailbox_id}")),
        Change::Subscriptions { mailbox_id } => Some(format!("{node} subscriptions {mailbox_id}")),
        Change::Folder(_) | Change::Any => None,
    }
}

fn parse(payload: &str) -> Option<(&str, Change)> {
    let mut parts = payload.split(' ');
    let node = parts.next()?;
    let what = parts.next()?;
    let number = parts.next()?.parse().ok()?;
    if parts.next().is_some() {
        return None;
    }
    let change = match what {
        "folders" => Change::Folders { mailbox_id: number },
        "subscriptions" => Change::Subscriptions { mailbox_id: number },
        folder => Change::Folder(FolderChange {
            folder_id: folder.parse().ok()?,
            modseq: number,
        }),
    };
    Some((node, change))
}

/// Starts listening before returning, so no change committed after the store opened
/// goes unheard; the task runs until the store aborts it.
pub(super) async fn start(
    options: PgConnectOptions,
    timeout: Duration,
    node: Arc<str>,
    changes: Changes,
) -> Result<JoinHandle<()>, sqlx::Error> {
    let options = options.application_name("mssante-listener");
    let listener = connect(&options, timeout).await?;
    Ok(tokio::spawn(run(listener, options, timeout, node, changes)))
}

/// A listener on a connection of its own: it never takes one of the pool's.
async fn connect(options: &PgConnectOptions, timeout: Duration) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_with(options.clone())
        .await?;
    let mut listener = PgListener::connect_with(&pool).await?;
    // A lost connection is reported (`Ok(None)`) rather than silently replaced: what
    // was sent meanwhile is gone, and the sessions must be told.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

async fn run(
    mut listener: PgListener,
    options: PgConnectOptions,
    timeout: Duration,
    node: Arc<str>,
    changes: Changes,
) {
    loop {
        let lost = match listener.try_recv().await {
            Ok(Some(n)) => {
                match parse(n.payload()) {
                    Some((from, change)) if from != &*node => changes.publish(change),
                    Some(_) => {}
                    // Not ours to read: some folder may have changed.
                    None => changes.publish_any(),
                }
                continue;
            }
            Ok(None) => "connection lost".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            reason = %lost,
            "change notifications from PostgreSQL lost: sessions poll for changes every {}s until they are back",
            POLL.as_secs()
        );
        drop(listener);
        listener = loop {
            changes.publish_any();
            tokio::time::sleep(POLL).await;
            match connect(&options, timeout).await {
                Ok(l) => break l,
                Err(e) => tracing::debug!(error = %e, "notification connection still down"),
            }
        };
        // Whatever was committed before the new LISTEN took effect is unheard.
        changes.publish_any();
        tracing::info!("change notifications from PostgreSQL restored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_read_back() {
        let p = payload("123-abcd", 42, 7);
        let (node, change) = parse(&p).unwrap();
        assert_eq!(node, "123-abcd");
        assert_eq!(
            change,
            Change::Folder(FolderChange {
                folder_id: 42,
                modseq: 7
            })
        );
        let p = mailbox_payload("n", Change::Folders { mailbox_id: 5 }).unwrap();
        assert_eq!(parse(&p).unwrap().1, Change::Folders { mailbox_id: 5 });
        let p = mailbox_payload("n", Change::Subscriptions { mailbox_id: 6 }).unwrap();
        assert_eq!(
            parse(&p).unwrap().1,
            Change::Subscriptions { mailbox_id: 6 }
        );
        assert!(parse("x 1").is_none());
        assert!(parse("x 1 2 3").is_none());
        assert!(parse("x y 1").is_none());
    }
}
