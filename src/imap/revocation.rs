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
use super::session::Session;
use super::state::{AccessWatch, User};
use super::text;
use crate::auth::{AccessRefusal, Authenticated, access};
use crate::store::{AuditEntry, AuditOutcome, Mailbox, Store, StoreError};

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
    /// Whether `user`'s session may go on. When access was withdrawn, sends `BYE` and
    /// records why in the audit trail; the caller moves to Logout. When the store cannot
    /// be read, the session goes on and the decision stays due: the next command, or
    /// IDLE a second later, tries again. The command itself needs the store anyway, and
    /// a passing fault should not close every session.
    pub(crate) async fn access_still_granted(
        &mut self,
        user: &mut User,
    ) -> Result<bool, ConnError> {
        let store = self.shared.context.store.clone();
        let watch = self.shared.context.access_epoch.clone();
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
        self.conn
            .send(&text::bye_alert(
                "access to this mailbox was withdrawn, session closed",
            ))
            .await?;
        self.conn.flush().await?;
        Ok(false)
    }
}
