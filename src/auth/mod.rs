//! Identity and access: who is on the other end, and which mailboxes they may open.
//!
//! `Authenticator` is what IMAP and SMTP call: it parses the SASL message, validates the
//! PSC token or takes the verified certificate, decides access to the mailbox and records
//! every attempt in the audit trail.

pub mod access;
pub mod certificate;
pub mod epoch;
pub mod psc;
pub mod sasl;

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::certificate::CertificateIdentity;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{AuditEntry, AuditOutcome, Mailbox, Store, StoreError};

pub use access::{AccessRefusal, Application, Identity, Professional};
pub use epoch::AccessEpoch;
pub use psc::{PscValidator, Refusal, TokenError};
pub use sasl::SaslError;

/// The scope announced in error challenges: what a PSC client asks for.
const PSC_SCOPE: &str = "openid scope_all";

/// SASL mechanisms the LPS interface offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    XOAuth2,
    OAuthBearer,
    External,
}

impl Mechanism {
    /// Case-insensitive, as SASL mechanism names are.
    pub fn parse(name: &str) -> Option<Mechanism> {
        [
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
            Mechanism::External,
        ]
        .into_iter()
        .find(|m| m.name().eq_ignore_ascii_case(name))
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::XOAuth2 => "XOAUTH2",
            Mechanism::OAuthBearer => "OAUTHBEARER",
            Mechanism::External => "EXTERNAL",
        }
    }
}

/// Which interface the attempt came through (for the audit trail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Imap,
    Submission,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Imap => "imap",
            Protocol::Submission => "submission",
        }
    }
}

/// What the connection knows about the client.
#[derive(Debug, Clone)]
pub struct Peer {
    pub protocol: Protocol,
    pub addr: SocketAddr,
    /// Set only when the client presented a certificate that the TLS layer verified and
    /// `auth::certificate` turned into an identity.
    pub certificate: Option<CertificateIdentity>,
}

/// A successful authentication: the identity and the mailbox it opened.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub identity: Identity,
    pub mailbox: Mailbox,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthFailure {
    /// Refused. `challenge` is the mechanism's error challenge (raw bytes, not base64:
    /// the protocol layer base64-encodes) that the server sends before the final failure;
    /// None for EXTERNAL and malformed messages.
    Refused {
        reason: String,
        challenge: Option<Vec<u8>>,
    },
    /// The decision could not be made (PSC down, timeout, 5xx): IMAP `NO [UNAVAILABLE]`,
    /// SMTP `454 4.7.0`.
    Temporary { reason: String },
}

impl AuthFailure {
    pub fn reason(&self) -> &str {
        match self {
            AuthFailure::Refused { reason, .. } | AuthFailure::Temporary { reason } => reason,
        }
    }
}

/// The authenticator could not be built.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Psc(#[from] psc::PscSetupError),
}

/// Why an attempt did not succeed, before it becomes an `AuthFailure`.
enum Denial {
    Malformed(SaslError),
    NoCertificate,
    Token(Refusal),
    Access(AccessRefusal),
    PscUnavailable(String),
    StoreUnavailable(String),
}

/// The `reason` label of `mssante_authentications_total`: a fixed set, so the metric's
/// series stay few whatever clients send, coarser than the audit trail's reason text.
pub const REFUSAL_REASONS: [&str; 13] = [
    "none",
    "malformed",
    "no_certificate",
    "token_expired",
    "token_signature",
    "token_issuer",
    "token_claims",
    "token_inactive",
    "no_such_mailbox",
    "access_denied",
    "psc_unavailable",
    "store_unavailable",
    "audit_unavailable",
];

impl Denial {
    /// One of `REFUSAL_REASONS`.
    fn label(&self) -> &'static str {
        match self {
            Denial::Malformed(_) => "malformed",
            Denial::NoCertificate => "no_certificate",
            Denial::Token(r) => match r {
                Refusal::Expired | Refusal::NotYetValid => "token_expired",
                Refusal::Unsigned
                | Refusal::AlgorithmNotAllowed
                | Refusal::UnknownKey
                | Refusal::BadSignature => "token_signature",
                Refusal::IssuerMismatch => "token_issuer",
                Refusal::Malformed
                | Refusal::NoExpiry
                | Refusal::NotBearer
                | Refusal::AcrNotAccepted
                | Refusal::AzpNotAllowed
                | Refusal::NoIdentity => "token_claims",
                Refusal::Inactive => "token_inactive",
            },
            Denial::Access(r) => match r {
                AccessRefusal::NoSuchMailbox
                | AccessRefusal::NoMailboxNamed
                | AccessRefusal::NoMailboxBound
                | AccessRefusal::SeveralMailboxesBound
                | AccessRefusal::NoPersonalMailbox
                | AccessRefusal::SeveralPersonalMailboxes => "no_such_mailbox",
                AccessRefusal::NotOwner
                | AccessRefusal::NotGranted
                | AccessRefusal::ApplicativeNeedsCertificate
                | AccessRefusal::CertificateOnPersonal
                | AccessRefusal::CertificateNotBound => "access_denied",
            },
            Denial::PscUnavailable(_) => "psc_unavailable",
            Denial::StoreUnavailable(_) => "store_unavailable",
        }
    }

    fn reason(&self) -> String {
        match self {
            Denial::Malformed(e) => e.reason().to_owned(),
            Denial::NoCertificate => "no client certificate".to_owned(),
            Denial::Token(r) => r.reason().to_owned(),
            Denial::Access(r) => r.reason().to_owned(),
            Denial::PscUnavailable(why) => format!("PSC unavailable: {why}"),
            Denial::StoreUnavailable(why) => format!("mailbox store unavailable: {why}"),
        }
    }
}

impl From<StoreError> for Denial {
    fn from(e: StoreError) -> Self {
        Denial::StoreUnavailable(e.to_string())
    }
}

/// Checks SASL attempts against PSC, certificates and the access rules; cheap to clone.
#[derive(Clone, Debug)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    clock: SharedClock,
    psc: PscValidator,
    issuer: String,
    metrics: Arc<Metrics>,
}

/// What one attempt found out, whatever its outcome, for the audit row.
#[derive(Default)]
struct Trail {
    identity: Option<String>,
    mailbox: Option<String>,
}

impl Authenticator {
    /// Builds the authenticator without contacting PSC: the server starts while PSC is down.
    /// Every attempt is counted in `metrics` (`mssante_authentications_total`).
    pub async fn new(
        config: &Config,
        store: Store,
        clock: SharedClock,
        metrics: Arc<Metrics>,
    ) -> Result<Self, AuthError> {
        let psc = PscValidator::new(&config.psc, clock.clone(), metrics.clone())?;
        Ok(Authenticator {
            inner: Arc::new(Inner {
                store,
                clock,
                psc,
                issuer: config.psc.issuer.as_str().to_owned(),
                metrics,
            }),
        })
    }

    /// The token validator, for callers that check a token outside SASL.
    pub fn psc(&self) -> &PscValidator {
        &self.inner.psc
    }

    /// `response` is the client's decoded SASL initial response (bytes after base64).
    /// Parses it for the mechanism, validates the token or certificate, decides access to
    /// the requested mailbox, records the audit row (success or refusal, with reason,
    /// peer, mechanism, identity, mailbox) and, on success, `last_authenticated_at`.
    pub async fn authenticate(
        &self,
        mechanism: Mechanism,
        response: &[u8],
        peer: &Peer,
    ) -> Result<Authenticated, AuthFailure> {
        let mut trail = Trail::default();
        let outcome = self.attempt(mechanism, response, peer, &mut trail).await;
        let (outcome_label, reason_label) = match &outcome {
            Ok(_) => ("success", "none"),
            Err(d @ (Denial::PscUnavailable(_) | Denial::StoreUnavailable(_))) => {
                ("temporary", d.label())
            }
            Err(d) => ("failure", d.label()),
        };
        let count = |outcome: &'static str, reason: &'static str| {
            self.inner.metrics.authentication(
                peer.protocol.name(),
                mechanism.name(),
                outcome,
                reason,
            );
        };
        let now = self.inner.clock.now();
        let audit_outcome = match &outcome {
            Ok(_) => AuditOutcome::Success,
            Err(Denial::PscUnavailable(_) | Denial::StoreUnavailable(_)) => AuditOutcome::Temporary,
            Err(_) => AuditOutcome::Failure,
        };
        let reason = outcome.as_ref().err().map(Denial::reason);
        let entry = AuditEntry {
            at: now,
            protocol: peer.protocol.name().to_owned(),
            mechanism: Some(mechanism.name().to_owned()),
            identity: trail.identity,
            mailbox: trail.mailbox,
            peer: Some(peer.addr.to_string()),
            outcome: audit_outcome,
            reason: reason.clone(),
        };
        let audited = self.inner.store.audit(entry).await;
        match outcome {
            Ok(done) => {
                // A success that cannot be recorded is not granted: the audit trail and the
                // inactivity clock of the mailbox lifecycle both depend on these writes.
                if let Err(e) = audited {
                    tracing::error!(error = %e, "cannot record an authentication");
                    count("temporary", "audit_unavailable");
                    return Err(AuthFailure::Temporary {
                        reason: format!("audit trail unavailable: {e}"),
                    });
                }
                if let Err(e) = self
                    .inner
                    .store
                    .record_authentication(done.mailbox.id, now)
                    .await
                {
                    tracing::error!(error = %e, "cannot record an authentication");
                    count("temporary", "store_unavailable");
                    return Err(AuthFailure::Temporary {
                        reason: format!("mailbox store unavailable: {e}"),
                    });
                }
                count(outcome_label, reason_label);
                tracing::info!(mechanism = mechanism.name(), identity = done.identity.audit_name(),
                    mailbox = %done.mailbox.address, "authenticated");
                Ok(done)
            }
            Err(denial) => {
                count(outcome_label, reason_label);
                if let Err(e) = audited {
                    tracing::error!(error = %e, "cannot record a refused authentication");
                }
                let reason = reason.unwrap_or_default();
                tracing::info!(mechanism = mechanism.name(), %reason, "authentication refused");
                Err(match denial {
                    Denial::PscUnavailable(_) | Denial::StoreUnavailable(_) => {
                        AuthFailure::Temporary { reason }
                    }
                    Denial::Malformed(_) => AuthFailure::Refused {
                        reason,
                        challenge: None,
                    },
                    _ => AuthFailure::Refused {
                        reason,
                        challenge: self.challenge(mechanism),
                    },
                })
            }
        }
    }

    fn challenge(&self, mechanism: Mechanism) -> Option<Vec<u8>> {
        match mechanism {
            Mechanism::XOAuth2 => Some(sasl::xoauth2_challenge(PSC_SCOPE)),
            Mechanism::OAuthBearer => {
                let discovery = self.inner.psc.discovery_url().map_or_else(
                    || {
                        format!(
                            "{}/.well-known/openid-configuration",
                            self.inner.issuer.trim_end_matches('/')
                        )
                    },
                    |u| u.to_string(),
                );
                Some(sasl::oauthbearer_challenge(PSC_SCOPE, &discovery))
            }
            Mechanism::External => None,
        }
    }

    async fn attempt(
        &self,
        mechanism: Mechanism,
        response: &[u8],
        peer: &Peer,
        trail: &mut Trail,
    ) -> Result<Authenticated, Denial> {
        let (identity, mailbox) = match mechanism {
            Mechanism::XOAuth2 | Mechanism::OAuthBearer => {
                let message = match mechanism {
                    Mechanism::XOAuth2 => sasl::parse_xoauth2(response),
                    _ => sasl::parse_oauthbearer(response),
                }
                .map_err(Denial::Malformed)?;
                trail.mailbox = message.mailbox.clone();
                let professional =
                    self.inner
                        .psc
                        .validate(&message.token)
                        .await
                        .map_err(|e| match e {
                            TokenError::Refused(r) => Denial::Token(r),
                            TokenError::Temporary(why) => Denial::PscUnavailable(why),
                        })?;
                (Identity::Professional(professional), message.mailbox)
            }
            Mechanism::External => {
                let message = sasl::parse_external(response).map_err(Denial::Malformed)?;
                trail.mailbox = message.mailbox.clone();
                let certificate = peer.certificate.clone().ok_or(Denial::NoCertificate)?;
                (
                    Identity::Application(Application::new(certificate)),
                    message.mailbox,
                )
            }
        };
        trail.identity = Some(identity.audit_name().to_owned());
        let mailbox = access::open(&self.inner.store, &identity, mailbox.as_deref())
            .await?
            .map_err(Denial::Access)?;
        trail.mailbox = Some(mailbox.address.clone());
        Ok(Authenticated { identity, mailbox })
    }

    /// May this identity send as (MAIL FROM) this address? (same rules as opening it)
    pub async fn may_send_as(
        &self,
        identity: &Identity,
        address: &str,
    ) -> Result<bool, StoreError> {
        Ok(access::open(&self.inner.store, identity, Some(address))
            .await?
            .is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanism_names() {
        for m in [
            Mechanism::XOAuth2,
            Mechanism::OAuthBearer,
            Mechanism::External,
        ] {
            assert_eq!(Mechanism::parse(m.name()), Some(m));
            assert_eq!(Mechanism::parse(&m.name().to_ascii_lowercase()), Some(m));
        }
        assert_eq!(Mechanism::parse("PLAIN"), None);
    }

    /// The metric's reason label comes from the fixed set, whatever the refusal.
    #[test]
    fn every_denial_has_a_listed_reason_label() {
        let mut denials = vec![
            Denial::Malformed(SaslError::BadToken),
            Denial::NoCertificate,
            Denial::PscUnavailable("down".into()),
            Denial::StoreUnavailable("locked".into()),
        ];
        denials.extend(
            [
                Refusal::Malformed,
                Refusal::Unsigned,
                Refusal::AlgorithmNotAllowed,
                Refusal::UnknownKey,
                Refusal::BadSignature,
                Refusal::NoExpiry,
                Refusal::Expired,
                Refusal::NotYetValid,
                Refusal::IssuerMismatch,
                Refusal::NotBearer,
                Refusal::AcrNotAccepted,
                Refusal::AzpNotAllowed,
                Refusal::NoIdentity,
                Refusal::Inactive,
            ]
            .map(Denial::Token),
        );
        denials.extend(
            [
                AccessRefusal::NoSuchMailbox,
                AccessRefusal::NotOwner,
                AccessRefusal::NotGranted,
                AccessRefusal::ApplicativeNeedsCertificate,
                AccessRefusal::CertificateOnPersonal,
                AccessRefusal::CertificateNotBound,
                AccessRefusal::NoMailboxNamed,
                AccessRefusal::NoMailboxBound,
                AccessRefusal::SeveralMailboxesBound,
                AccessRefusal::NoPersonalMailbox,
                AccessRefusal::SeveralPersonalMailboxes,
            ]
            .map(Denial::Access),
        );
        let mut used: Vec<&str> = denials.iter().map(Denial::label).collect();
        for label in &used {
            assert!(REFUSAL_REASONS.contains(label), "{label}");
        }
        used.extend(["none", "audit_unavailable"]);
        for label in REFUSAL_REASONS {
            assert!(used.contains(&label), "{label} is never given");
        }
    }
}
