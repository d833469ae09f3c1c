//! Change notifications: how a session showing a folder (IMAP IDLE, or any command)
//! learns that something changed it.
//!
//! Each backend feeds one `Changes` of its own: the SQLite backend after each of its
//! commits, since it is the only writer; a backend shared by several processes from
//! what the database tells it of everyone's commits. Sessions only ever see a
//! `Subscription`, so they do not care which.

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Something changed in a folder: sessions showing it re-read what they need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderChange {
    pub folder_id: i64,
    pub modseq: i64,
}

/// The folder id of a change that may have touched any folder: sent when changes may
/// have been missed (a shared database's notifications lost), so every session looks.
const ANY_FOLDER: i64 = i64::MIN;

/// Changes not yet taken by a slow subscriber; past that it hears that it missed some.
const BACKLOG: usize = 1024;

/// The changes of this process's sessions' folders, fanned out to every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    tx: broadcast::Sender<FolderChange>,
}

impl Changes {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Changes { tx }
    }

    /// Tells every subscriber; nobody listening is not an error.
    pub(crate) fn publish(&self, change: FolderChange) {
        let _ = self.tx.send(change);
    }

    /// Tells every subscriber that any folder may have changed: each re-reads its own.
    pub(crate) fn publish_any(&self) {
        self.publish(FolderChange {
            folder_id: ANY_FOLDER,
            modseq: 0,
        });
    }

    pub(crate) fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.tx.subscribe(),
        }
    }
}

/// One session's hearing of the changes. Missed changes (a subscriber too slow to keep
/// up) count as a change to every folder: the session re-reads rather than miss one.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<FolderChange>,
}

impl Subscription {
    /// Returns once `folder_id` may have changed; never, once no change can come any
    /// more (the store is gone).
    pub async fn wait(&mut self, folder_id: i64) {
        loop {
            match self.rx.recv().await {
                Ok(c) if c.folder_id == folder_id || c.folder_id == ANY_FOLDER => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// Takes every change heard so far, without waiting: whether `folder_id` may have
    /// changed among them.
    pub fn take(&mut self, folder_id: i64) -> bool {
        let mut changed = false;
        loop {
            match self.rx.try_recv() {
                Ok(c) if c.folder_id == folder_id || c.folder_id == ANY_FOLDER => changed = true,
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return changed,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(folder_id: i64) -> FolderChange {
        FolderChange {
            folder_id,
            modseq: 1,
        }
    }

    #[tokio::test]
    async fn a_subscriber_hears_of_its_folder_and_of_what_it_missed() {
        let changes = Changes::new();
        let mut s = changes.subscribe();
        assert!(!s.take(1));
        changes.publish(change(2));
        assert!(!s.take(1), "another folder");
        changes.publish(change(2));
        changes.publish(change(1));
        changes.publish(change(2));
        assert!(s.take(1));
        assert!(!s.take(1), "taken once");
        for _ in 0..=BACKLOG {
            changes.publish(change(2));
        }
        assert!(s.take(1), "missed changes may have been to any folder");

        changes.publish(change(2));
        changes.publish(change(1));
        s.wait(1).await;
        assert!(!s.take(1));

        changes.publish_any();
        assert!(s.take(1), "a change to any folder is one to this folder");
        changes.publish_any();
        s.wait(7).await;
    }
}
