//! The session: the command loop over the states of `state`.
//!
//! `NotAuthenticated → Authenticated → Selected ⇄ Authenticated → Logout`. A command is
//! only dispatched to the family its state allows, with that state's data as its
//! argument; everything else gets `BAD`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_codec::CommandCodec;
use imap_codec::decode::Decoder;
use imap_codec::imap_types::IntoStatic;
use imap_codec::imap_types::auth::AuthMechanism;
use imap_codec::imap_types::command::{Command, CommandBody};
use imap_codec::imap_types::core::Atom;
use imap_codec::imap_types::response::{Code, Greeting, GreetingKind, StatusKind};
use tokio::time::Instant;

use super::Shared;
use super::capabilities::{self, Stage};
use super::connection::{ConnError, Connection, Incoming};
use super::extended;
use super::state::{AccessWatch, Selected, State, Transition, User};
use super::text;
use super::view::View;
use crate::auth::certificate::CertificateIdentity;
use crate::net::{Admission, HandshakeError, RateLimit, Stream};
use crate::tls::ClientCertificate;

pub(crate) struct Session {
    pub(crate) shared: Arc<Shared>,
    pub(crate) conn: Connection,
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
    /// The listener the connection came in on (`tls`, `starttls`), for the metrics.
    listener: &'static str,
    pub(crate) certificate_presented: bool,
    pub(crate) certificate: Option<CertificateIdentity>,
    /// This connection's place in the connection caps.
    pub(crate) admission: Admission,
    rate: RateLimit,
    started: Instant,
    /// The RETURN options of the searching command being dispatched, which imap-codec's
    /// command cannot carry (see `extended`).
    pub(crate) returns: Option<super::extended::search::Returns>,
    /// `ENABLE IMAP4rev2` was given (RFC 9051 §6.3.1): UTF-8 mailbox names, ESEARCH for
    /// SEARCH, no \Recent. Kept here rather than in `User`: once authenticated a session
    /// never leaves the authenticated states, and the name translation runs in every
    /// folder lookup.
    pub(crate) imap4rev2: bool,
}

/// A TLS handshake that ended without a connection: a client certificate refused during
/// it is audited here, where the peer address is known.
pub(crate) async fn audit_handshake(shared: &Shared, peer: SocketAddr, error: HandshakeError) {
    if let HandshakeError::Refused(reason) = error {
        audit_certificate_refusal(shared, peer, None, reason).await;
    }
}

impl Session {
    pub(crate) fn new(
        shared: Arc<Shared>,
        conn: Connection,
        peer: SocketAddr,
        tls: bool,
        admission: Admission,
    ) -> Self {
        let rate = RateLimit::new(shared.context.config.imap.max_commands_per_second);
        let mut s = Session {
            shared,
            conn,
            peer,
            tls,
            listener: if tls { "tls" } else { "starttls" },
            certificate_presented: false,
            certificate: None,
            admission,
            rate,
            started: Instant::now(),
            returns: None,
            imap4rev2: false,
        };
        s.note_certificate();
        s
    }

    /// Looks at the client certificate, if the TLS layer verified one.
    pub(crate) fn note_certificate(&mut self) {
        if let Some(server) = self.conn.stream().and_then(Stream::tls_connection) {
            let context = &self.shared.context;
            match context.tls.client_certificate(server, context.clock.now()) {
                ClientCertificate::Absent => {}
                ClientCertificate::Verified(identity) => {
                    self.certificate_presented = true;
                    self.certificate = Some(identity);
                }
                ClientCertificate::Refused(error) => {
                    self.certificate_presented = true;
                    let shared = self.shared.clone();
                    let peer = self.peer;
                    let subject = server
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
                        .map(|(_, cert)| crate::auth::certificate::dn_string(cert.subject()));
                    tokio::spawn(async move {
                        let reason = crate::tls::refusal_reason(&error);
                        audit_certificate_refusal(&shared, peer, subject, reason).await;
                    });
                }
            }
        }
    }

    /// What CAPABILITY lists before authentication.
    pub(crate) fn stage_before_login(&self) -> Stage {
        if self.tls {
            Stage::Tls {
                certificate: self.certificate_presented,
            }
        } else {
            Stage::Clear
        }
    }

    fn lifetime_left(&self) -> Duration {
        let max = self.shared.context.config.session.max_lifetime.0;
        max.saturating_sub(self.started.elapsed())
    }

    /// Until authentication, what is left of `[session] login_timeout`: an
    /// unauthenticated connection holds one of its address's scarce slots.
    fn login_left(&self, state: &State) -> Option<Duration> {
        match state {
            State::NotAuthenticated => {
                let max = self.shared.context.config.session.login_timeout.0;
                Some(max.saturating_sub(self.started.elapsed()))
            }
            _ => None,
        }
    }

    /// How long the next read may wait in `state`: inactivity, login and lifetime limits.
    pub(crate) fn read_limit(&self, state: &State) -> Duration {
        let idle = self.shared.context.config.session.idle_timeout.0;
        let limit = idle.min(self.lifetime_left());
        self.login_left(state).map_or(limit, |left| limit.min(left))
    }

    /// The read limit while idling: IDLE counts as activity, only the lifetime applies.
    pub(crate) fn idle_limit(&self) -> Duration {
        self.lifetime_left()
    }

    pub(crate) async fn run(mut self) {
        let mut state = State::NotAuthenticated;
        match self.run_inner(&mut state).await {
            Ok(()) => {}
            // Wherever the read happened (a command, a SASL reply): say why, then close.
            Err(e) => match e.oversize() {
                Some(why) => {
                    tracing::info!(error = %e, "connection closed");
                    let _ = self.conn.send(&text::bye(&why)).await;
                    self.audit_refusal(state.user(), None, &why).await;
                }
                None => tracing::debug!("connection ended"),
            },
        }
        self.conn.close().await;
    }

    async fn run_inner(&mut self, state: &mut State) -> Result<(), ConnError> {
        let caps = capabilities::list(self.stage_before_login(), self.conn.max_literal());
        let greeting = Greeting {
            kind: GreetingKind::Ok,
            code: Some(Code::Capability(caps)),
            text: text::text("mssante IMAP ready"),
        };
        self.conn.send_greeting(&greeting).await?;
        loop {
            if matches!(state, State::Logout) {
                return Ok(());
            }
            let limit = self.read_limit(state);
            let shutdown = self.shared.shutdown.clone();
            // With NOTIFY on, changes are told between commands, and withdrawn access
            // is watched for as in IDLE: the client may send nothing for a long time.
            let notifying = state.user().is_some_and(|u| u.notify.is_some());
            let access_due = state
                .user()
                .is_some_and(|u| u.access.due(&self.shared.context.access_epoch));
            let mut access = self.shared.context.access_epoch.clone();
            let incoming = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.conn.send(&text::bye("server shutting down")).await?;
                    return Ok(());
                }
                r = self.conn.read(limit) => r,
                _ = super::watch::heard(state.user_mut().and_then(|u| u.notify.as_deref_mut())) => {
                    self.between_commands(state).await?;
                    continue;
                }
                _ = super::state::check_due(access_due, &mut access), if notifying => {
                    if let Some(user) = state.user_mut()
                        && !self.access_still_granted(user).await?
                    {
                        return Ok(());
                    }
                    continue;
                }
            };
            let incoming = match incoming {
                Ok(i) => i,
                Err(ConnError::Timeout) => {
                    let why = if self.lifetime_left().is_zero() {
                        "session lifetime reached, please authenticate again"
                    } else if self.login_left(state).is_some_and(|left| left.is_zero()) {
                        "authentication time limit reached"
                    } else {
                        "inactivity time limit reached"
                    };
                    self.conn.send(&text::bye(why)).await?;
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
            // IMAP4rev2 strings may be UTF-8 (RFC 9051 §4.3): read them as literals.
            let rewritten = match incoming {
                Incoming::Message if self.imap4rev2 => {
                    extended::utf8::quoted_to_literals(self.conn.message().message_bytes())
                }
                _ => None,
            };
            if let Incoming::Message = incoming
                && let Some(e) = extended::decode(
                    rewritten
                        .as_deref()
                        .unwrap_or_else(|| self.conn.message().message_bytes()),
                    selection(state),
                )
            {
                self.rate.admit().await;
                Box::pin(self.extended(state, e)).await?;
                self.conn.flush().await?;
                continue;
            }
            match incoming {
                Incoming::Refused { tag: Some(tag) } => {
                    let r = text::tagged(&tag, StatusKind::No, Some(Code::TooBig), "too large");
                    self.conn.send(&r).await?;
                }
                Incoming::Refused { tag: None } => {
                    let r = untagged_bad("command too large");
                    self.conn.send(&r).await?;
                }
                Incoming::Message => {
                    let tag = || {
                        self.conn
                            .message()
                            .decode_tag()
                            .map(IntoStatic::into_static)
                    };
                    let decoded = match &rewritten {
                        Some(bytes) => match CommandCodec::default().decode(bytes) {
                            Ok(([], command)) => Ok(command.into_static()),
                            _ => Err(tag()),
                        },
                        None => self
                            .conn
                            .message()
                            .decode_message(&CommandCodec::default())
                            .map(IntoStatic::into_static)
                            .map_err(|_| tag()),
                    };
                    match decoded {
                        Ok(command) => {
                            self.rate.admit().await;
                            // Boxed: the large command futures are allocated only while a
                            // command runs, not for the whole life of an idle connection.
                            Box::pin(self.dispatch(state, command)).await?;
                        }
                        Err(Some(tag)) => {
                            if let Some(address) =
                                clear_text_external(self.conn.message().message_bytes())
                                && matches!(state, State::NotAuthenticated)
                            {
                                self.rate.admit().await;
                                let external = AuthMechanism::from(
                                    Atom::try_from("EXTERNAL").map_err(|_| ConnError::Closed)?,
                                );
                                let t = Box::pin(self.authenticate(tag, external, Some(address)))
                                    .await?;
                                self.apply(state, t);
                            } else {
                                let attempt =
                                    refused_login_attempt(self.conn.message().message_bytes())
                                        .filter(|_| matches!(state, State::NotAuthenticated));
                                let r = text::tagged(&tag, StatusKind::Bad, None, "syntax error");
                                self.conn.send(&r).await?;
                                if let Some(mechanism) = attempt {
                                    // Each one costs an audit write: no faster than the
                                    // commands that parse.
                                    self.rate.admit().await;
                                    self.audit_refusal(None, Some(&mechanism), "syntax error")
                                        .await;
                                }
                            }
                        }
                        Err(None) => {
                            self.conn.send(&untagged_bad("syntax error")).await?;
                        }
                    }
                }
            }
            self.conn.flush().await?;
        }
    }

    /// Tells a NOTIFY client what changed while no command runs.
    async fn between_commands(&mut self, state: &mut State) -> Result<(), ConnError> {
        let transition = match state {
            State::Authenticated(user) => self.notify_deliver(user, None, true).await?,
            State::Selected(s) => {
                let view = Some(&mut *s.view);
                self.notify_deliver(&mut s.user, view, true).await?
            }
            State::NotAuthenticated | State::Logout => None,
        };
        if let Some(t) = transition {
            self.apply(state, t);
        }
        self.conn.flush().await
    }

    /// Runs a message `extended::decode` recognised.
    pub(crate) async fn extended(
        &mut self,
        state: &mut State,
        extended: extended::Extended,
    ) -> Result<(), ConnError> {
        match extended {
            extended::Extended::Search(e) => self.extended_search(state, e).await,
            extended::Extended::Folder(parsed) => self.extended_folder(state, parsed).await,
        }
    }

    /// Runs a folder command read here, in the authenticated states only.
    async fn extended_folder(
        &mut self,
        state: &mut State,
        parsed: extended::Parsed,
    ) -> Result<(), ConnError> {
        if let Some(user) = state.user_mut()
            && !self.access_still_granted(user).await?
        {
            *state = State::Logout;
            return Ok(());
        }
        let (user, mut view) = match state {
            State::Authenticated(user) => (user, None),
            State::Selected(s) => (&mut s.user, Some(&mut *s.view)),
            State::NotAuthenticated | State::Logout => {
                self.bad(&parsed.tag, "authenticate first").await?;
                return Ok(());
            }
        };
        let transition = match self.sync_selected(user, view.as_deref_mut(), true).await? {
            Some(t) => t,
            None => match parsed.command {
                extended::FolderCommand::List(c) => {
                    self.list_extended(&parsed.tag, user, c).await?
                }
                extended::FolderCommand::Append(c) => {
                    self.append_extended(&parsed.tag, user, view, c).await?
                }
                extended::FolderCommand::Notify(c) => {
                    self.notify(&parsed.tag, user, view, c).await?
                }
            },
        };
        self.apply(state, transition);
        Ok(())
    }

    pub(crate) async fn dispatch(
        &mut self,
        state: &mut State,
        command: Command<'static>,
    ) -> Result<(), ConnError> {
        let name = command.name();
        tracing::debug!(command = name, "command");
        if let Some(user) = state.user_mut()
            && !self.access_still_granted(user).await?
        {
            *state = State::Logout;
            return Ok(());
        }
        let transition = match state {
            State::NotAuthenticated => self.not_authenticated(command).await?,
            State::Authenticated(user) => self.authenticated(user, None, command).await?,
            State::Selected(s) => {
                if needs_selection(&command.body) {
                    self.selected_command(s, command).await?
                } else {
                    let view = Some(&mut *s.view);
                    self.authenticated(&mut s.user, view, command).await?
                }
            }
            State::Logout => Transition::None,
        };
        self.apply(state, transition);
        Ok(())
    }

    async fn not_authenticated(&mut self, c: Command<'static>) -> Result<Transition, ConnError> {
        match c.body {
            CommandBody::Capability | CommandBody::Noop | CommandBody::Logout => {
                self.any_state(c, self.stage_before_login(), None).await
            }
            CommandBody::StartTLS => self.starttls(c.tag).await,
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                Box::pin(self.authenticate(
                    c.tag,
                    mechanism,
                    initial_response.map(|s| s.declassify().to_vec()),
                ))
                .await
            }
            CommandBody::Login { .. } => self.login(c.tag).await,
            CommandBody::Id { .. } if self.tls => {
                self.any_state(c, self.stage_before_login(), None).await
            }
            _ => {
                let msg = if self.tls {
                    "authenticate first"
                } else {
                    "STARTTLS first"
                };
                self.bad(&c.tag, msg).await
            }
        }
    }

    /// The authenticated family, also valid while a folder is selected (`view`).
    async fn authenticated(
        &mut self,
        user: &mut User,
        view: Option<&mut View>,
        c: Command<'static>,
    ) -> Result<Transition, ConnError> {
        match &c.body {
            CommandBody::Capability
            | CommandBody::Noop
            | CommandBody::Logout
            | CommandBody::Id { .. } => {
                let selected = view.map(|v| (user, v));
                self.any_state(c, Stage::Authenticated, selected).await
            }
            CommandBody::StartTLS
            | CommandBody::Authenticate { .. }
            | CommandBody::Login { .. } => self.bad(&c.tag, "already authenticated").await,
            CommandBody::Select { .. }
            | CommandBody::Examine { .. }
            | CommandBody::Create { .. }
            | CommandBody::Delete { .. }
            | CommandBody::Rename { .. }
            | CommandBody::Subscribe { .. }
            | CommandBody::Unsubscribe { .. }
            | CommandBody::List { .. }
            | CommandBody::Lsub { .. }
            | CommandBody::Status { .. }
            | CommandBody::Append { .. }
            | CommandBody::Namespace
            | CommandBody::Enable { .. }
            | CommandBody::Idle => self.mailbox_command(user, view, c).await,
            CommandBody::GetQuota { .. }
            | CommandBody::GetQuotaRoot { .. }
            | CommandBody::SetQuota { .. } => self.quota_command(user, c).await,
            body if needs_selection(body) => self.bad(&c.tag, "no mailbox selected").await,
            _ => self.bad(&c.tag, "command not supported").await,
        }
    }

    pub(crate) fn apply(&mut self, state: &mut State, t: Transition) {
        let current = std::mem::replace(state, State::Logout);
        *state = match (current, t) {
            (s, Transition::None) => s,
            (_, Transition::Logout) => State::Logout,
            (State::NotAuthenticated, Transition::Authenticate(auth, epoch)) => {
                self.conn.set_authenticated();
                State::Authenticated(User {
                    auth: *auth,
                    condstore: false,
                    qresync: false,
                    changes: self.shared.context.store.subscribe(),
                    access: AccessWatch::new(epoch),
                    notify: None,
                    _counted: self.shared.context.metrics.session("IMAP", self.listener),
                })
            }
            (State::Authenticated(user), Transition::Select(view)) => {
                State::Selected(Selected { user, view })
            }
            (State::Selected(s), Transition::Select(view)) => {
                State::Selected(Selected { user: s.user, view })
            }
            (State::Selected(s), Transition::Unselect) => State::Authenticated(s.user),
            (s, _) => {
                tracing::error!("refused an illegal session transition");
                s
            }
        };
    }

    /// Records a refusal in the audit trail with the peer address (and the user, once
    /// authenticated): every refused attempt must be visible there, not only those the
    /// authenticator decides.
    pub(crate) async fn audit_refusal(
        &self,
        user: Option<&User>,
        mechanism: Option<&str>,
        reason: &str,
    ) {
        let who = match user {
            Some(u) => Who {
                identity: Some(u.auth.identity.audit_name().to_owned()),
                mailbox: Some(u.auth.mailbox.address.clone()),
            },
            None => Who::default(),
        };
        let mechanism = mechanism.map(str::to_owned);
        audit_refusal(&self.shared, self.peer, mechanism, who, reason.to_owned()).await;
    }

    /// Waits `delay` unless the server is shutting down.
    pub(crate) async fn pause(&self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        tokio::select! {
            _ = self.shared.shutdown.cancelled() => {}
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// `AUTHENTICATE EXTERNAL <address>` with the address in clear text where base64 was
/// expected: some LPS send it so, and DOMAIN.md asks to tolerate it. Returns the address.
fn clear_text_external(line: &[u8]) -> Option<Vec<u8>> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|b| *b == b' ');
    let (_tag, command, mechanism, argument) =
        (words.next()?, words.next()?, words.next()?, words.next()?);
    let fits = words.next().is_none()
        && command.eq_ignore_ascii_case(b"AUTHENTICATE")
        && mechanism.eq_ignore_ascii_case(b"EXTERNAL")
        && argument.contains(&b'@')
        && argument.iter().all(|b| b.is_ascii_graphic());
    fits.then(|| argument.to_vec())
}

pub(crate) fn untagged_bad(msg: &str) -> imap_codec::imap_types::response::Response<'static> {
    use imap_codec::imap_types::response::{Response, Status, StatusBody};
    Response::Status(Status::Untagged(StatusBody {
        kind: StatusKind::Bad,
        code: None,
        text: text::text(msg),
    }))
}

/// Records a client certificate the server would not accept (the session goes on, or the
/// handshake failed); the audit trail must show every refusal.
async fn audit_certificate_refusal(
    shared: &Shared,
    peer: SocketAddr,
    subject: Option<String>,
    reason: String,
) {
    let who = Who {
        identity: subject,
        mailbox: None,
    };
    audit_refusal(shared, peer, Some("EXTERNAL".into()), who, reason).await;
}

/// Who the refused client was, when the session knows.
#[derive(Default)]
struct Who {
    identity: Option<String>,
    mailbox: Option<String>,
}

/// Records a refusal the authenticator never saw (it records its own decisions).
async fn audit_refusal(
    shared: &Shared,
    peer: SocketAddr,
    mechanism: Option<String>,
    who: Who,
    reason: String,
) {
    let entry = crate::store::AuditEntry {
        at: shared.context.clock.now(),
        protocol: "imap".into(),
        mechanism,
        identity: who.identity,
        mailbox: who.mailbox,
        peer: Some(peer.to_string()),
        outcome: crate::store::AuditOutcome::Failure,
        reason: Some(reason),
    };
    if let Err(e) = shared.context.store.audit(entry).await {
        tracing::error!(error = %e, "cannot record a refusal in the audit trail");
    }
}

/// The mechanism named by an `AUTHENTICATE` line (or `LOGIN`) that did not parse, for the
/// audit trail; `None` for other commands.
fn refused_login_attempt(line: &[u8]) -> Option<String> {
    let mut words = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty());
    let (_tag, command) = (words.next()?, words.next()?);
    if command.eq_ignore_ascii_case(b"LOGIN") {
        return Some("LOGIN".into());
    }
    if !command.eq_ignore_ascii_case(b"AUTHENTICATE") {
        return None;
    }
    Some(audit_mechanism(words.next().unwrap_or_default()))
}

/// A mechanism name as the client sent it, cut short and made printable: it goes into
/// the audit trail.
pub(crate) fn audit_mechanism(name: &[u8]) -> String {
    name.iter()
        .take(32)
        .map(|b| {
            if b.is_ascii_graphic() {
                char::from(b.to_ascii_uppercase())
            } else {
                '?'
            }
        })
        .collect()
}

/// The commands that act on the selected folder (RFC 3501 §6.4 and its extensions).
fn needs_selection(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Check
            | CommandBody::Close
            | CommandBody::Unselect
            | CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Search { .. }
            | CommandBody::Sort { .. }
            | CommandBody::Thread { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
    )
}

/// What `$` reads of the selected folder (RFC 5182), when one is selected.
fn selection(state: &State) -> Option<extended::Selection<'_>> {
    match state {
        State::Selected(s) => Some(extended::Selection {
            saved: &s.view.saved,
            uids: &s.view.uids,
        }),
        _ => None,
    }
}
