//! One SMTP connection's state: who the peer is and what it proved, the mail
//! transaction in progress, and what every rule needs from them (audit, refusals, the
//! login time left). The command loop is in `commands`; which rules apply (AUTH or
//! client certificate, who may send, who may receive) depends on the interface and
//! lives in `submission`, `inbound` and `delivery`, which all work on this state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::io::{Wire, reply};
use super::{Interface, Shared};
use crate::auth::Authenticated;
use crate::net::{Admission, Stream};
use crate::store::OutgoingRecipient;
use crate::tls::ClientCertificate;

/// Longest command line; RFC 4954 §4 asks at least 12,288 octets for an AUTH line.
pub(super) const MAX_COMMAND_LINE: usize = 12_288 + 512;

/// A refusal: the reply to send instead of going on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refusal {
    pub code: u16,
    pub esc: [u8; 3],
    pub text: String,
}

impl Refusal {
    pub fn new(code: u16, esc: [u8; 3], text: impl Into<String>) -> Self {
        Refusal {
            code,
            esc,
            text: text.into(),
        }
    }

    /// The store failed: `451 4.3.0` with the reference of the log entry, so the client
    /// may retry and the operator can find the detail; `452 4.3.1` when the disk is full
    /// (RFC 5321 §4.2.3, RFC 3463 "mail system full").
    pub fn internal(during: &str, error: &crate::store::StoreError) -> Self {
        let incident = crate::incident::Incident::store(during, error);
        if incident.out_of_space() {
            Refusal::new(452, [4, 3, 1], incident.text())
        } else {
            Refusal::new(451, [4, 3, 0], incident.text())
        }
    }
}

/// MAIL accepted, recipients being added.
pub(super) struct Transaction {
    pub sender: String,
    pub envid: Option<String>,
    pub ret_full: bool,
    pub recipients: Vec<Recipient>,
    /// The `SIZE=` of MAIL FROM (0 when none was given), weighed against quotas at RCPT.
    pub declared_size: usize,
    /// BDAT chunks received so far.
    pub chunks: Vec<u8>,
    pub chunks_fit: bool,
    /// A BDAT chunk arrived with no valid recipient: the rest is read and refused.
    pub chunks_refused: bool,
}

pub(super) struct Session {
    pub shared: Arc<Shared>,
    pub wire: Wire,
    pub peer: SocketAddr,
    pub interface: Interface,
    pub tls: bool,
    pub certificate: ClientCertificate,
    pub helo: Option<String>,
    pub authenticated: Option<Authenticated>,
    /// Counts this session in `sessions_authenticated` once it has authenticated.
    pub counted: Option<crate::metrics::ConnectionGuard>,
    /// Envelope senders already allowed for this session's identity: a client sending
    /// many messages is checked once per address while access stays unchanged.
    pub allowed_senders: AllowedSenders,
    pub transaction: Option<Transaction>,
    /// This connection's place in the connection caps.
    pub admission: Admission,
    pub started: Instant,
    /// Messages accepted on this connection.
    pub messages: u32,
    /// Refused commands so far (see `commands::MAX_ERRORS`).
    pub errors: u32,
}

/// Whether to go on reading commands.
pub(super) enum Next {
    Continue,
    Close,
}

/// A recipient accepted by RCPT.
#[derive(Debug, Clone)]
pub(super) enum Recipient {
    /// A mailbox here: its INBOX.
    Local { address: String, folder: i64 },
    /// Another operator's domain in the trust space.
    Remote(OutgoingRecipient),
}

impl Recipient {
    pub fn address(&self) -> &str {
        match self {
            Recipient::Local { address, .. } => address,
            Recipient::Remote(r) => &r.address,
        }
    }
}

/// Senders already allowed in a session, kept only while the store's access counter
/// stays where it was before they were allowed: a grant revoked by any process refuses
/// the next transaction of an open session, not only the next session.
#[derive(Debug, Default)]
pub(super) struct AllowedSenders {
    pub epoch: Option<i64>,
    pub addresses: Vec<String>,
}

impl Session {
    pub(super) fn new(
        shared: Arc<Shared>,
        stream: Stream,
        peer: SocketAddr,
        interface: Interface,
        admission: Admission,
    ) -> Self {
        let wire = Wire::new(shared.context.net.link(stream));
        Session {
            shared,
            wire,
            peer,
            interface,
            tls: false,
            certificate: ClientCertificate::Absent,
            helo: None,
            authenticated: None,
            counted: None,
            allowed_senders: Default::default(),
            transaction: None,
            admission,
            started: Instant::now(),
            messages: 0,
            errors: 0,
        }
    }

    pub(super) fn say(&mut self, code: u16, esc: [u8; 3], text: &str) {
        self.wire.queue(&reply(code, esc, text));
    }

    pub(super) fn refuse(&mut self, r: &Refusal) {
        if r.code >= 500 {
            self.errors += 1;
        }
        self.wire.queue(&reply(r.code, r.esc, &r.text));
    }

    /// Records a refused attempt in the audit trail (`submission` or `inbound`).
    pub(super) async fn audit_refusal(
        &self,
        identity: Option<String>,
        mailbox: Option<String>,
        reason: &str,
    ) {
        let protocol = self.interface.audit_name();
        let identity = identity
            .or_else(|| {
                self.authenticated
                    .as_ref()
                    .map(|a| a.identity.audit_name().to_owned())
            })
            .or_else(|| self.certificate.identity().map(|id| id.subject.clone()));
        let entry = crate::store::AuditEntry {
            at: self.shared.context.clock.now(),
            protocol: protocol.to_owned(),
            mechanism: None,
            identity,
            mailbox,
            peer: Some(self.peer.to_string()),
            outcome: crate::store::AuditOutcome::Failure,
            reason: Some(reason.to_owned()),
        };
        if let Err(e) = self.shared.context.store.audit(entry).await {
            tracing::error!(error = %e, "cannot record a refusal");
        }
    }

    /// Whether the peer has proved who it is: AUTH on submission, a certificate verified
    /// to the IGC-Santé roots on the operator interface.
    pub(super) fn identified(&self) -> bool {
        match self.interface {
            Interface::Inbound => self.certificate.identity().is_some(),
            _ => self.authenticated.is_some(),
        }
    }

    /// Until the peer has proved who it is (AUTH on submission, a verified certificate
    /// on the operator interface): what is left of `[session] login_timeout`. Such a
    /// connection holds one of its address's scarce unauthenticated slots, so it must
    /// not be kept open by a client that trickles bytes and never identifies itself.
    pub(super) fn login_left(&self) -> Option<Duration> {
        if self.identified() {
            return None;
        }
        let max = self.shared.context.config.session.login_timeout.0;
        Some(max.saturating_sub(self.started.elapsed()))
    }
}
