//! Access withdrawn while a session is open: a revoked grant, an unbound certificate or
//! a deleted mailbox ends the sessions that relied on it within about a second.
//!
//! The change may come from another process (the CLI, another node), so the session
//! watches the store's access counter (`Store::access_epoch`) rather than an in-process
//! channel: before a command when the last look is older than `CHECK_INTERVAL`, and on a
//! timer inside IDLE. When the counter moved, the access decision is made again for the
//! session's mailbox; a refusal ends the session with `BYE` and an audit record.

use std::time::Duration;

use tokio::time::Instant;

use super::connection::ConnError;
use super::session::{Session, State};
use super::text;
use crate::auth::{AccessRefusal, Authenticated, access};
use crate::store::{AuditEntry, AuditOutcome, Mailbox, Store, StoreError};

/// How stale a session's access decision may get. One indexed read of one row each
/// time, so a second costs little even with many sessions.
pub(crate) const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What the session last knew about the store's access counter.
pub(crate) struct AccessWatch {
    /// The counter read before the access decision this session relies on; `None` when
    /// it could not be read, so the next look decides again.
    epoch: Option<i64>,
    checked: Instant,
}

impl AccessWatch {
    pub(crate) fn new(epoch: Option<i64>) -> Self {
        AccessWatch {
            epoch,
            checked: Instant::now(),
        }
    }

    /// When the next look at the counter is due (for IDLE's timer).
    pub(crate) fn next_check(&self) -> Instant {
        self.checked + CHECK_INTERVAL
    }
}

/// The access decision again, for the mailbox the session opened. The mailbox is found
/// by id and must still have its address: a deleted mailbox whose id was reused by a new
/// one is not the mailbox the client opened.
async fn decide_again(
    store: &Store,
    auth: &Authenticated,
) -> Result<Result<Mailbox, AccessRefusal>, StoreError> {
    let Some(mailbox) = store.mailbox_by_id(auth.mailbox.id).await? else {
        return Ok(Err(AccessRefusal::NoSuchMailbox));
    };
    if mailbox.address != auth.mailbox.address {
        return Ok(Err(AccessRefusal::NoSuchMailbox));
    }
    Ok(access::may_open(store, &auth.identity, &mailbox)
        .await?
        .map(|()| mailbox))
}

impl Session {
    /// Whether the session may go on. When access was withdrawn, sends `BYE`, records
    /// why in the audit trail and moves to Logout. When the store cannot be read, the
    /// session goes on and the next look, a second later, tries again: the command
    /// itself needs the store anyway, and a passing fault should not close every session.
    pub(crate) async fn access_still_granted(&mut self) -> Result<bool, ConnError> {
        let store = self.shared.context.store.clone();
        let Some(user) = self.user_mut() else {
            return Ok(true);
        };
        if user.access.checked.elapsed() < CHECK_INTERVAL {
            return Ok(true);
        }
        // Whatever the outcome, the next look is a second away: IDLE's timer must not spin
        // on a store that cannot be read.
        user.access.checked = Instant::now();
        let epoch = match store.access_epoch().await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the access counter");
                return Ok(true);
            }
        };
        if user.access.epoch == Some(epoch) {
            return Ok(true);
        }
        let refusal = match decide_again(&store, &user.auth).await {
            Ok(Ok(mailbox)) => {
                user.auth.mailbox = mailbox;
                user.access = AccessWatch::new(Some(epoch));
                return Ok(true);
            }
            Ok(Err(refusal)) => refusal,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decide access again");
                return Ok(true);
            }
        };
        let identity = user.auth.identity.audit_name().to_owned();
        let mailbox = user.auth.mailbox.address.clone();
        tracing::info!(%identity, %mailbox, reason = refusal.reason(), "access withdrawn; session closed");
        let entry = AuditEntry {
            at: self.shared.context.clock.now(),
            protocol: "imap".into(),
            mechanism: None,
            identity: Some(identity),
            mailbox: Some(mailbox),
            peer: Some(self.peer.to_string()),
            outcome: AuditOutcome::Failure,
            reason: Some(format!(
                "session closed, access withdrawn: {}",
                refusal.reason()
            )),
        };
        if let Err(e) = store.audit(entry).await {
            tracing::error!(error = %e, "cannot record a withdrawn access in the audit trail");
        }
        self.state = State::Logout;
        self.conn
            .send(&text::bye_alert(
                "access to this mailbox was withdrawn, session closed",
            ))
            .await?;
        self.conn.flush().await?;
        Ok(false)
    }

    /// When IDLE should look at the access counter next.
    pub(crate) fn next_access_check(&self) -> Option<Instant> {
        match &self.state {
            State::Authenticated(u) | State::Selected(u, _) => Some(u.access.next_check()),
            _ => None,
        }
    }
}
