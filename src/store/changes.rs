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
    /// The folder's HIGHESTMODSEQ once the change committed. Every change takes the next
    /// MODSEQ under the folder's lock, so a session that has read the folder up to this
    /// MODSEQ knows the change already.
    pub modseq: i64,
}

/// What a commit changed, as sessions hear it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The messages of a folder (new, expunged, flags) or its state.
    Folder(FolderChange),
    /// A mailbox's folder list: a folder created, deleted, renamed, made `\Noselect`
    /// or selectable again. Sessions that list folders to the client (IMAP NOTIFY)
    /// read the list again and say what differs.
    Folders { mailbox_id: i64 },
    /// A mailbox's subscriptions.
    Subscriptions { mailbox_id: i64 },
    /// Anything may have changed: sent when changes may have been missed (a shared
    /// database's notifications lost), so every session looks again.
    Any,
}

impl Change {
    /// Whether a session showing `folder_id` must look at it again.
    fn touches(&self, folder_id: i64) -> bool {
        match self {
            Change::Folder(c) => c.folder_id == folder_id,
            Change::Any => true,
            Change::Folders { .. } | Change::Subscriptions { .. } => false,
        }
    }
}

/// What a subscriber heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    Change(Change),
    /// The subscriber fell behind and changes were dropped.
    Missed,
}

/// Changes not yet taken by a slow subscriber; past that it hears that it missed some.
const BACKLOG: usize = 1024;

/// The changes of this process's sessions' folders, fanned out to every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    tx: broadcast::Sender<Change>,
}

impl Changes {
    pub(crate) fn new() -> Self {
        let (tx, _) = broadcast::channel(BACKLOG);
        Changes { tx }
    }

    /// Tells every subscriber; nobody listening is not an error.
    pub(crate) fn publish(&self, change: Change) {
        let _ = self.tx.send(change);
    }

    pub(crate) fn publish_folder(&self, change: FolderChange) {
        self.publish(Change::Folder(change));
    }

    /// Tells every subscriber that anything may have changed: each re-reads its own.
    pub(crate) fn publish_any(&self) {
        self.publish(Change::Any);
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
    rx: broadcast::Receiver<Change>,
}

impl Subscription {
    /// Returns once `folder_id` may have changed; never, once no change can come any
    /// more (the store is gone).
    pub async fn wait(&mut self, folder_id: i64) {
        loop {
            match self.rx.recv().await {
                Ok(c) if c.touches(folder_id) => return,
                Ok(_) => continue,
                Err(RecvError::Lagged(_)) => return,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }

    /// Takes every change heard so far, without waiting: whether `folder_id` may have
    /// changed among them after `known_modseq`. A change at or below it was committed
    /// before the folder was read up to it (a session's own write, heard after it
    /// reported it): nothing to read again.
    pub fn take(&mut self, folder_id: i64, known_modseq: u64) -> bool {
        let mut changed = false;
        loop {
            match self.rx.try_recv() {
                Ok(Change::Folder(c))
                    if c.folder_id == folder_id
                        && u64::try_from(c.modseq).is_ok_and(|m| m <= known_modseq) => {}
                Ok(c) if c.touches(folder_id) => changed = true,
                Ok(_) => {}
                Err(TryRecvError::Lagged(_)) => changed = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => return changed,
            }
        }
    }

    /// The next change, once there is one; never, once no change can come any more.
    pub async fn next(&mut self) -> Heard {
        match self.rx.recv().await {
            Ok(c) => Heard::Change(c),
            Err(RecvError::Lagged(_)) => Heard::Missed,
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }

    /// The next change already heard, without waiting.
    pub fn try_next(&mut self) -> Option<Heard> {
        match self.rx.try_recv() {
            Ok(c) => Some(Heard::Change(c)),
            Err(TryRecvError::Lagged(_)) => Some(Heard::Missed),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(folder_id: i64) -> Change {
        Change::Folder(FolderChange {
            folder_id,
            modseq: 1,
        })
    }

    #[tokio::test]
    async fn a_subscriber_hears_of_its_folder_and_of_what_it_missed() {
        let changes = Changes::new();
        let mut s = changes.subscribe();
        assert!(!s.take(1, 0));
        changes.publish(change(2));
        assert!(!s.take(1, 0), "another folder");
        changes.publish(change(2));
        changes.publish(change(1));
        changes.publish(change(2));
        assert!(s.take(1, 0));
        assert!(!s.take(1, 0), "taken once");
        for _ in 0..=BACKLOG {
            changes.publish(change(2));
        }
        assert!(s.take(1, 0), "missed changes may have been to any folder");

        changes.publish(change(2));
        changes.publish(change(1));
        s.wait(1).await;
        assert!(!s.take(1, 0));

        changes.publish_any();
        assert!(s.take(1, 0), "a change to any folder is one to this folder");
        changes.publish_any();
        s.wait(7).await;

        changes.publish(Change::Folders { mailbox_id: 1 });
        assert!(!s.take(1, 0), "a folder list is no folder's messages");
    }

    #[test]
    fn a_change_the_session_has_read_up_to_is_not_one_to_read_again() {
        let changes = Changes::new();
        let mut s = changes.subscribe();
        let at = |modseq| {
            Change::Folder(FolderChange {
                folder_id: 1,
                modseq,
            })
        };
        changes.publish(at(5));
        changes.publish(at(4));
        assert!(!s.take(1, 5), "known up to 5");
        changes.publish(at(5));
        changes.publish(at(6));
        assert!(s.take(1, 5), "6 is after what the session read");
        changes.publish(at(6));
        changes.publish_any();
        assert!(s.take(1, 6), "anything may have changed");
    }

    #[tokio::test]
    async fn every_change_is_heard_in_order_and_a_lag_says_so() {
        let changes = Changes::new();
        let mut s = changes.subscribe();
        assert_eq!(s.try_next(), None);
        changes.publish(Change::Subscriptions { mailbox_id: 3 });
        changes.publish(change(2));
        assert_eq!(
            s.next().await,
            Heard::Change(Change::Subscriptions { mailbox_id: 3 })
        );
        assert_eq!(s.try_next(), Some(Heard::Change(change(2))));
        for _ in 0..=BACKLOG {
            changes.publish(change(2));
        }
        assert_eq!(s.try_next(), Some(Heard::Missed));
    }
}
