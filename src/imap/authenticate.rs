//! The not-authenticated family: STARTTLS, AUTHENTICATE, and the refused LOGIN.
//!
//! No authentication at all before TLS. Mechanisms are those of the LPS API (XOAUTH2,
//! OAUTHBEARER, EXTERNAL with a client certificate); the decision belongs to
//! `crate::auth::Authenticator`, this file only speaks SASL-over-IMAP (RFC 3501, 4959).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use imap_codec::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_codec::imap_types::core::Tag;
use imap_codec::imap_types::response::{Code, CommandContinuationRequest, Response, StatusKind};
use imap_codec::{AuthenticateDataCodec, CommandCodec};

use super::connection::{ConnError, Incoming};
use super::session::{Session, audit_handshake, audit_mechanism};
use super::state::{State, Transition};
use super::text;
use crate::auth::{AuthFailure, Mechanism, Peer, Protocol};

/// Longest wait for the client's (non-error) SASL continuation.
const SASL_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What the client answered to a continuation request.
enum Reply {
    Data(Vec<u8>),
    /// Not base64: kept for EXTERNAL, which tolerates a clear-text address.
    Raw(Vec<u8>),
    Cancel,
    /// A new command arrived instead: it is handled after this one ends.
    Command,
    Nothing,
}

impl Session {
    pub(crate) async fn starttls(&mut self, tag: Tag<'static>) -> Result<Transition, ConnError> {
        if self.tls {
            self.conn
                .send(&text::tagged(
                    &tag,
                    StatusKind::Bad,
                    None,
                    "TLS is already active",
                ))
                .await?;
            return Ok(Transition::None);
        }
        self.conn
            .send(&text::tagged_ok(&tag, None, "begin TLS negotiation now"))
            .await?;
        self.conn.flush().await?;
        let context = &self.shared.context;
        if let Err(e) = self.conn.start_tls(&context.net, &context.tls).await {
            audit_handshake(&self.shared, self.peer, e).await;
            return Err(ConnError::Closed);
        }
        self.tls = true;
        self.note_certificate();
        Ok(Transition::None)
    }

    pub(crate) async fn login(&mut self, tag: Tag<'static>) -> Result<Transition, ConnError> {
        let (code, msg) = if self.tls {
            (
                text::code("CANNOT"),
                "LOGIN is disabled: use AUTHENTICATE XOAUTH2 with a Pro Santé Connect token",
            )
        } else {
            (
                text::code("PRIVACYREQUIRED"),
                "LOGIN is disabled: STARTTLS first",
            )
        };
        self.conn
            .send(&text::tagged(&tag, StatusKind::No, Some(code), msg))
            .await?;
        self.audit_refusal(None, Some("LOGIN"), "LOGIN is disabled")
            .await;
        Ok(Transition::None)
    }

    pub(crate) async fn authenticate(
        &mut self,
        tag: Tag<'static>,
        mechanism: AuthMechanism<'static>,
        initial: Option<Vec<u8>>,
    ) -> Result<Transition, ConnError> {
        let asked = audit_mechanism(mechanism.as_ref().as_bytes());
        if !self.tls {
            self.conn
                .send(&text::tagged(
                    &tag,
                    StatusKind::No,
                    Some(text::code("PRIVACYREQUIRED")),
                    "STARTTLS first",
                ))
                .await?;
            self.audit_refusal(None, Some(&asked), "authentication before TLS")
                .await;
            return Ok(Transition::None);
        }
        let mech = Mechanism::parse(mechanism.as_ref());
        let (mech, refusal) = match mech {
            Some(Mechanism::External) if !self.certificate_presented => {
                (None, "EXTERNAL without a client certificate")
            }
            m => (m, "unsupported mechanism"),
        };
        let Some(mech) = mech else {
            self.conn
                .send(&text::tagged(
                    &tag,
                    StatusKind::No,
                    Some(text::code("CANNOT")),
                    "unsupported authentication mechanism",
                ))
                .await?;
            self.audit_refusal(None, Some(&asked), refusal).await;
            return Ok(Transition::None);
        };
        // Whether the client sent its response inline (SASL-IR) or waited for `+`.
        tracing::debug!(
            mechanism = mech.name(),
            initial_response_inline = initial.is_some(),
            "AUTHENTICATE"
        );

        let response = match initial {
            Some(r) => r,
            None => {
                let empty = Response::CommandContinuationRequest(
                    CommandContinuationRequest::base64(Vec::new()),
                );
                self.conn.send(&empty).await?;
                self.conn.flush().await?;
                // Within what is left of the login timeout.
                let wait = SASL_REPLY_TIMEOUT.min(self.read_limit(&State::NotAuthenticated));
                match self.sasl_reply(wait).await? {
                    Reply::Data(d) => d,
                    Reply::Raw(r) if mech == Mechanism::External => r,
                    Reply::Raw(_) => {
                        self.conn
                            .send(&text::tagged(&tag, StatusKind::Bad, None, "invalid base64"))
                            .await?;
                        self.audit_refusal(None, Some(mech.name()), "SASL response is not base64")
                            .await;
                        return Ok(Transition::None);
                    }
                    Reply::Cancel => {
                        self.conn
                            .send(&text::tagged(
                                &tag,
                                StatusKind::Bad,
                                None,
                                "authentication cancelled",
                            ))
                            .await?;
                        self.audit_refusal(None, Some(mech.name()), "cancelled by the client")
                            .await;
                        return Ok(Transition::None);
                    }
                    Reply::Command | Reply::Nothing => {
                        self.conn
                            .send(&text::tagged(
                                &tag,
                                StatusKind::Bad,
                                None,
                                "no SASL response received",
                            ))
                            .await?;
                        self.audit_refusal(None, Some(mech.name()), "no SASL response")
                            .await;
                        return Ok(Transition::None);
                    }
                }
            }
        };

        let peer = Peer {
            protocol: Protocol::Imap,
            addr: self.peer,
            certificate: self.certificate.clone(),
        };
        // Read before the decision: a withdrawal after it moves the counter past this.
        let epoch = self.shared.context.access_epoch.current();
        let net = self.shared.context.net.clone();
        let verdict = net
            .authenticate(&self.shared.context.auth, mech, &response, &peer)
            .await;
        match verdict.result {
            Ok(authenticated) => {
                if let Err(refused) = self.admission.authenticated(&authenticated.mailbox.address) {
                    tracing::info!(%refused, mailbox = %authenticated.mailbox.address, "connection refused");
                    self.conn.send(&text::bye(&refused.to_string())).await?;
                    let mailbox = Some(authenticated.mailbox.address.clone());
                    let context = &self.shared.context;
                    crate::net::audit_refusal(
                        &context.store,
                        context.clock.as_ref(),
                        "imap",
                        self.peer,
                        mailbox,
                        refused,
                    )
                    .await;
                    return Ok(Transition::Logout);
                }
                tracing::info!(mailbox = %authenticated.mailbox.address, mechanism = mech.name(), "authenticated");
                let caps = super::capabilities::list(
                    super::capabilities::Stage::Authenticated,
                    self.conn.max_literal(),
                );
                self.conn
                    .send(&text::tagged_ok(
                        &tag,
                        Some(Code::Capability(caps)),
                        "authenticated",
                    ))
                    .await?;
                Ok(Transition::Authenticate(Box::new(authenticated), epoch))
            }
            Err(AuthFailure::Temporary { reason }) => {
                tracing::warn!(%reason, "authentication could not be decided");
                self.conn
                    .send(&text::tagged(
                        &tag,
                        StatusKind::No,
                        Some(text::code("UNAVAILABLE")),
                        "authentication temporarily unavailable, try again later",
                    ))
                    .await?;
                Ok(Transition::None)
            }
            Err(AuthFailure::Refused { reason, challenge }) => {
                tracing::info!(%reason, mechanism = mech.name(), "authentication refused");
                let mut replay = false;
                if let Some(challenge) = challenge {
                    let r = Response::CommandContinuationRequest(
                        CommandContinuationRequest::base64(challenge),
                    );
                    self.conn.send(&r).await?;
                    self.conn.flush().await?;
                    let wait = self.shared.context.config.session.sasl_challenge_timeout.0;
                    replay = matches!(self.sasl_reply(wait).await?, Reply::Command);
                }
                self.pause(verdict.pause).await;
                self.conn
                    .send(&text::tagged(
                        &tag,
                        StatusKind::No,
                        Some(text::code("AUTHENTICATIONFAILED")),
                        "authentication failed",
                    ))
                    .await?;
                if replay {
                    self.conn.replay();
                }
                Ok(Transition::None)
            }
        }
    }

    /// Reads one SASL reply line; a timeout or a closed wait yields `Nothing`.
    async fn sasl_reply(&mut self, wait: std::time::Duration) -> Result<Reply, ConnError> {
        let incoming = match self.conn.read(wait).await {
            Ok(i) => i,
            Err(ConnError::Timeout) => return Ok(Reply::Nothing),
            Err(e) => return Err(e),
        };
        if let Incoming::Refused { .. } = incoming {
            return Ok(Reply::Nothing);
        }
        let message = self.conn.message();
        let raw = message.message_bytes();
        if raw == b"*\r\n" || raw == b"*\n" {
            return Ok(Reply::Cancel);
        }
        if message.decode_message(&CommandCodec::default()).is_ok() {
            return Ok(Reply::Command);
        }
        match message.decode_message(&AuthenticateDataCodec::default()) {
            Ok(AuthenticateData::Continue(data)) => Ok(Reply::Data(data.declassify().to_vec())),
            Ok(AuthenticateData::Cancel) => Ok(Reply::Cancel),
            Err(_) => {
                let line = raw
                    .strip_suffix(b"\r\n")
                    .or_else(|| raw.strip_suffix(b"\n"))
                    .unwrap_or(raw);
                match B64.decode(line) {
                    Ok(d) => Ok(Reply::Data(d)),
                    Err(_) => Ok(Reply::Raw(line.to_vec())),
                }
            }
        }
    }
}
