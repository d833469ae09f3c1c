//! Access withdrawn while a session is open: a revoked grant, an unbound certificate or
//! a deleted mailbox ends the sessions that relied on it within about a second.
//!
//! The change may come from another process (the CLI, another node), so the session
//! watches the store's access counter as this process last read it (`AccessEpoch`, one
//! read a second for all sessions) rather than an in-process channel: before every
//! command, and while IDLE whenever the reading moves. When the counter moved, the access
//! decision is made again for the session's mailbox; a refusal ends the session with
//! `BYE` and an audit record.

use super::connection::ConnError;
use super::session::{Session, State};
use super::text;
use crate::auth::epoch::POLL_INTERVAL;
use crate::auth::{AccessEpoch, AccessRefusal, Authenticated, access};
use crate::store::{AuditEntry, AuditOutcome, Mailbox, Store, StoreError};

/// What the session last knew about the store's access counter.
pub(crate) struct AccessWatch {
    /// The counter as read before the access decision this session relies on; `None`
    /// when it had not been read, so the first reading decides again.
    epoch: Option<i64>,
}

impl AccessWatch {
    pub(crate) fn new(epoch: Option<i64>) -> Self {
        AccessWatch { epoch }
    }

    /// Whether the counter moved past the session's decision: the decision is due.
    fn due(&self, watch: &AccessEpoch) -> bool {
        matches!(watch.current(), Some(now) if self.epoch != Some(now))
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
    /// session goes on and the decision stays due: the next command, or IDLE a second
    /// later, tries again. The command itself needs the store anyway, and a passing fault
    /// should not close every session.
    pub(crate) async fn access_still_granted(&mut self) -> Result<bool, ConnError> {
        let store = self.shared.context.store.clone();
        let watch = self.shared.context.access_epoch.clone();
        let Some(user) = self.user_mut() else {
            return Ok(true);
        };
        if !user.access.due(&watch) {
            return Ok(true);
        }
        // Read before the decision: a withdrawal after it moves the counter past this.
        let epoch = watch.current();
        let refusal = match decide_again(&store, &user.auth).await {
            Ok(Ok(mailbox)) => {
                user.auth.mailbox = mailbox;
                user.access = AccessWatch::new(epoch);
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

    /// For IDLE: `Some(true)` when a decision is already due (the last one could not
    /// read the store), `Some(false)` when it is up to date, `None` before authentication.
    pub(crate) fn access_due(&self) -> Option<bool> {
        match &self.state {
            State::Authenticated(u) | State::Selected(u, _) => {
                Some(u.access.due(&self.shared.context.access_epoch))
            }
            _ => None,
        }
    }
}

/// Resolves when an idling session should decide its access again (`due` from
/// `Session::access_due`): a second from now when a decision is already due, else when
/// `watch` moves; never before authentication.
pub(crate) async fn check_due(due: Option<bool>, watch: &mut AccessEpoch) {
    match due {
        Some(true) => tokio::time::sleep(POLL_INTERVAL).await,
        Some(false) => watch.moved().await,
        None => std::future::pending().await,
    }
}
