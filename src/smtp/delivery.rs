//! Where each recipient goes (a local folder or the outbound queue) and the one durable
//! write that accepts a message: `250` is sent only after it returned.

use std::sync::Arc;

use super::message::{self, Trace};
use super::session::{Recipient, Refusal, Session, Transaction};
use crate::store::{Flags, Outgoing, OutgoingRecipient, RawMessage, Traffic, flag};

/// RCPT TO: local mailboxes anywhere, unless full (their quota, with the `SIZE=` of MAIL
/// FROM); trust-space domains on submission only.
pub(super) async fn resolve(
    s: &Session,
    to: &smtp_proto::RcptTo<String>,
) -> Result<Recipient, Refusal> {
    let address = crate::store::normalise_address(&to.address)
        .map_err(|_| Refusal::new(501, [5, 1, 3], "Bad recipient address syntax"))?;
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .unwrap_or_default();
    let store = &s.shared.context.store;
    if s.shared.context.config.is_local_domain(&domain) {
        let unavailable =
            |e: crate::store::StoreError| Refusal::internal("cannot look a recipient up", &e);
        let Some((address, folder)) = store.inbox_of(&address).await.map_err(unavailable)? else {
            s.audit_refusal(None, Some(address.clone()), "no such mailbox here")
                .await;
            return Err(Refusal::new(
                550,
                [5, 1, 1],
                format!("{address}: no such mailbox here"),
            ));
        };
        let quota = store
            .quota_of_folder(folder)
            .await
            .map_err(unavailable)?
            .unwrap_or_default();
        let declared = s.transaction.as_ref().map_or(0, |t| t.declared_size);
        // A message has at least one byte: a mailbox at its storage limit is full even
        // when the client announced no size.
        let bytes = u64::try_from(declared).unwrap_or(u64::MAX).max(1);
        if quota.would_exceed(bytes, 1) {
            s.audit_refusal(None, Some(address.clone()), "mailbox full (over its quota)")
                .await;
            return Err(Refusal::new(552, [5, 2, 2], "Mailbox full"));
        }
        return Ok(Recipient::Local { address, folder });
    }
    if !s.interface.is_submission() {
        let reason = format!("relaying denied: {domain} is not hosted here");
        s.audit_refusal(None, Some(address.clone()), &reason).await;
        return Err(Refusal::new(550, [5, 7, 1], reason));
    }
    if s.shared.trust.has_domain(&domain) {
        return Ok(Recipient::Remote(OutgoingRecipient {
            address,
            domain,
            notify: notify_text(to.flags),
            orcpt: to.orcpt.clone(),
        }));
    }
    let reason = format!("relaying denied: {domain} is not in the MSSanté trust space");
    s.audit_refusal(None, Some(address), &reason).await;
    Err(Refusal::new(
        550,
        [5, 7, 1],
        format!("{domain} is not in the MSSanté trust space"),
    ))
}

/// DSN `NOTIFY` as the queue keeps it.
fn notify_text(flags: u64) -> Option<String> {
    if flags & smtp_proto::RCPT_NOTIFY_NEVER != 0 {
        return Some("NEVER".into());
    }
    let names: Vec<&str> = [
        (smtp_proto::RCPT_NOTIFY_SUCCESS, "SUCCESS"),
        (smtp_proto::RCPT_NOTIFY_FAILURE, "FAILURE"),
        (smtp_proto::RCPT_NOTIFY_DELAY, "DELAY"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, n)| n)
    .collect();
    (!names.is_empty()).then(|| names.join(","))
}

/// Stores the message for every recipient in one transaction; returns its id.
pub(super) async fn accept(s: &Session, tx: Transaction, body: Vec<u8>) -> Result<String, Refusal> {
    let context = &s.shared.context;
    let now = context.clock.now();
    let id = message::new_id();
    let submission = s.interface.is_submission();
    let single = match tx.recipients.as_slice() {
        [one] => Some(one.address().to_owned()),
        _ => None,
    };
    let trace = Trace {
        helo: s.helo.as_deref().unwrap_or("unknown"),
        peer: s.peer.ip(),
        hostname: &context.config.server.hostname,
        with: if submission { "ESMTPSA" } else { "ESMTPS" },
        id: &id,
        recipient: single.as_deref(),
        now,
    };
    let prepared = message::prepare(&body, &trace, submission)
        .map_err(|e| Refusal::new(554, [5, 6, 0], e.to_string()))?;
    drop(body);
    let mut local = Vec::new();
    let mut remote = Vec::new();
    for r in tx.recipients {
        match r {
            Recipient::Local { folder, .. } => local.push(folder),
            Recipient::Remote(o) => remote.push(o),
        }
    }
    let local_copies = local.len() as u64;
    let stored = if remote.is_empty() && local.len() == 1 {
        // One folder: the store's single-statement append is the same transaction with
        // fewer round trips to the database thread.
        context
            .store
            .append_delivered(local[0], &prepared, Flags::default(), now)
            .await
            .map(|_| ())
    } else if remote.is_empty() {
        let raw = Arc::new(RawMessage::new(&prepared));
        context.store.deliver(local, raw, now).await.map(|_| ())
    } else {
        let raw = Arc::new(RawMessage::new(&prepared));
        let outgoing = Outgoing {
            sender: tx.sender,
            recipients: remote,
            envid: tx.envid,
            ret_full: tx.ret_full,
        };
        let queued = context
            .store
            .deliver_and_queue(local, outgoing, raw, now)
            .await;
        if queued.is_ok() {
            s.shared.queued.notify_one();
        }
        queued.map(|_| ())
    };
    if let Err(e) = stored {
        return Err(Refusal::internal("cannot store a message", &e));
    }
    tracing::info!(%id, "message accepted");
    let interface = if submission { "submission" } else { "inbound" };
    let metrics = &context.metrics;
    metrics
        .messages_accepted
        .get_or_create(&[("interface", interface)])
        .inc();
    metrics.messages_delivered_locally.inc_by(local_copies);
    // For the monthly usage figures. The message is already stored: a failure here is
    // logged and the figures undercount, the client is not refused.
    let traffic = Traffic {
        submitted: u64::from(submission),
        received: u64::from(!submission),
        delivered: local_copies,
        ..Traffic::default()
    };
    if let Err(e) = context.store.record_traffic(now, traffic).await {
        tracing::error!(error = %e, %id, "cannot count an accepted message in the usage figures");
    }
    if submission && context.config.smtp.save_sent {
        save_sent(s, &prepared, now).await;
    }
    Ok(id)
}

/// A copy in the sender's Sent folder; the message is already delivered, so a failure
/// here is logged, not reported.
async fn save_sent(s: &Session, message: &[u8], now: chrono::DateTime<chrono::Utc>) {
    let Some(authenticated) = &s.authenticated else {
        return;
    };
    let store = &s.shared.context.store;
    let folders = match store.folders(authenticated.mailbox.id).await {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot find the Sent folder");
            return;
        }
    };
    let Some(sent) = folders
        .iter()
        .find(|f| f.special_use.as_deref() == Some("\\Sent"))
    else {
        tracing::warn!(mailbox = %authenticated.mailbox.address, "no Sent folder");
        return;
    };
    if let Err(e) = store
        .append(sent.id, message, Flags::new(flag::SEEN), now)
        .await
    {
        tracing::error!(error = %e, "cannot file a copy in Sent");
    }
}
