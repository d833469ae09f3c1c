//! The SMTP command loop: greeting, EHLO, STARTTLS, AUTH, the mail transaction and its
//! limits, over the state kept in `session`.

use std::net::SocketAddr;
use std::sync::Arc;

use smtp_proto::{Error as ProtoError, Request};
use tokio::net::TcpStream;

use super::delivery;
use super::io::{Body, WireError, bare_reply, has_bare_line_ending};
use super::session::{MAX_COMMAND_LINE, Next, Refusal, Session, Transaction};
use super::{COMMAND_TIMEOUT, DATA_TIMEOUT, Interface, Shared, inbound, submission};
use crate::net::{Admission, HandshakeError, Stream};

/// smtp-proto's own limit for the other commands.
const MAX_PARSED_LINE: usize = smtp_proto::request::receiver::MAX_LINE_LENGTH;
/// Other commands from a client that has not proved who it is: RFC 5321 §4.5.3.1.4.
const MAX_UNAUTHENTICATED_LINE: usize = 512;
/// Unknown or refused commands tolerated before the connection is closed.
const MAX_ERRORS: u32 = 20;

pub(super) async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    interface: Interface,
    admission: Admission,
) {
    let mut session = Session::new(shared, Stream::Plain(tcp), peer, interface, admission);
    if interface == Interface::SubmissionTls && !session.handshake().await {
        return;
    }
    session.converse().await;
}

/// One session over an in-memory stream, for the fuzz targets. On port 465 the stream
/// stands for the TLS connection already established (no client certificate); elsewhere
/// it is clear text, and STARTTLS ends the session as a failed handshake would.
#[cfg(feature = "fuzzing")]
pub(super) async fn run_memory(
    shared: Arc<Shared>,
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    interface: Interface,
    admission: Admission,
) {
    let mut session = Session::new(shared, Stream::Memory(stream), peer, interface, admission);
    session.tls = interface == Interface::SubmissionTls;
    session.converse().await;
}

impl Session {
    /// From the greeting to the end of the connection, once TLS (if any) is up.
    async fn converse(mut self) {
        // A session waiting for its client stops at shutdown; one storing a message
        // finishes first, so its reply is the truth.
        self.wire.cancel_on(self.shared.shutdown.clone());
        let hostname = self.shared.context.config.server.hostname.clone();
        self.wire
            .queue(&bare_reply(220, &format!("{hostname} ESMTP mssante")));
        self.serve().await;
        self.wire.close().await;
    }

    /// TLS on the socket (at accept for 465, after STARTTLS otherwise); false if the
    /// handshake failed and the connection is over.
    async fn handshake(&mut self) -> bool {
        let context = &self.shared.context;
        if let Err(e) = self.wire.link.start_tls(&context.net, &context.tls).await {
            if let HandshakeError::Refused(reason) = e {
                self.audit_refusal(None, None, &reason).await;
            }
            return false;
        }
        let Some(connection) = self.wire.link.stream().and_then(Stream::tls_connection) else {
            return false;
        };
        self.certificate = context
            .tls
            .client_certificate(connection, context.clock.now());
        if let Some(reason) = self.certificate.refusal() {
            tracing::info!(%reason, "client certificate refused");
            self.audit_refusal(None, None, &reason).await;
        }
        self.tls = true;
        true
    }

    async fn serve(&mut self) {
        let mut line = Vec::with_capacity(512);
        loop {
            if self.errors >= MAX_ERRORS {
                self.audit_refusal(None, None, "too many errors, connection closed")
                    .await;
                self.say(421, [4, 7, 0], "Too many errors, closing the connection");
                return;
            }
            if line.capacity() > MAX_UNAUTHENTICATED_LINE * 2 {
                // An AUTH line may be long; the connection does not keep its room.
                line = Vec::with_capacity(MAX_UNAUTHENTICATED_LINE);
            }
            line.clear();
            let login_left = self.login_left();
            let wait = login_left.map_or(COMMAND_TIMEOUT, |left| left.min(COMMAND_TIMEOUT));
            let read = self.wire.read_line(&mut line, MAX_COMMAND_LINE, wait).await;
            match read {
                Ok(_) => {}
                Err(WireError::Timeout) if self.login_left().is_some_and(|l| l.is_zero()) => {
                    self.audit_refusal(None, None, "login time limit reached")
                        .await;
                    self.say(421, [4, 7, 0], "Authentication time limit reached");
                    return;
                }
                Err(e) => return self.ended(e).await,
            }
            match self.command(&line).await {
                Ok(Next::Continue) => {}
                Ok(Next::Close) => return,
                Err(e) => return self.ended(e).await,
            }
        }
    }

    /// The last word when a wait for the client ended without a command.
    async fn ended(&mut self, e: WireError) {
        match e {
            WireError::LineTooLong => self.line_too_long().await,
            WireError::ShuttingDown => {
                self.say(421, [4, 3, 2], "Server shutting down, try again later")
            }
            WireError::Timeout => self.say(421, [4, 4, 2], "Timeout waiting for the client"),
            // `net::Link` said so.
            WireError::WriteTimeout => {}
            e => tracing::debug!(error = %e, "connection ended"),
        }
    }

    async fn command(&mut self, line: &[u8]) -> Result<Next, WireError> {
        let word_end = line
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(line.len());
        if line[..word_end].eq_ignore_ascii_case(b"AUTH") {
            return self.auth(&line[word_end..]).await;
        }
        if !self.identified() && line.len() > MAX_UNAUTHENTICATED_LINE {
            self.line_too_long().await;
            return Ok(Next::Close);
        }
        if line.len() > MAX_PARSED_LINE {
            self.errors += 1;
            self.say(500, [5, 5, 2], "Line too long");
            return Ok(Next::Continue);
        }
        if let Some(next) = self.overflowing_size(line) {
            return Ok(next);
        }
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r.into_owned(),
            Err(e) => {
                let r = parse_refusal(&e);
                self.refuse(&r);
                return Ok(Next::Continue);
            }
        };
        match request {
            Request::Ehlo { host } => self.ehlo(host, true),
            Request::Helo { host } => self.ehlo(host, false),
            Request::Lhlo { .. } => self.say(500, [5, 5, 1], "LHLO is for LMTP"),
            Request::StartTls => return self.starttls().await,
            Request::Mail { from } => {
                if let Err(r) = self.mail(from).await {
                    self.refuse(&r);
                    if r.code == 421 {
                        return Ok(Next::Close);
                    }
                }
            }
            Request::Rcpt { to } => {
                if let Err(r) = self.rcpt(to).await {
                    self.refuse(&r);
                }
            }
            Request::Data => self.data().await?,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await?,
            Request::Rset => {
                self.transaction = None;
                self.say(250, [2, 0, 0], "OK");
            }
            Request::Noop { .. } => self.say(250, [2, 0, 0], "OK"),
            Request::Quit => {
                self.say(221, [2, 0, 0], "Bye");
                return Ok(Next::Close);
            }
            Request::Vrfy { .. } => self.say(252, [2, 5, 0], "Cannot verify, send some mail"),
            Request::Help { .. } => self.say(214, [2, 0, 0], "See RFC 5321"),
            Request::Auth { .. } => {
                // invariant: AUTH lines are handled before parsing.
                self.say(500, [5, 5, 1], "Unexpected AUTH")
            }
            other => {
                self.errors += 1;
                self.say(502, [5, 5, 1], &format!("{} not implemented", other.name()));
            }
        }
        Ok(Next::Continue)
    }

    /// smtp-proto reads a `SIZE=` or BDAT size past `usize::MAX` as a small number
    /// (it wraps to the digits after the overflow): such a MAIL would pass the size
    /// check, and such a BDAT would leave the rest of its chunk to be read as commands.
    fn overflowing_size(&mut self, line: &[u8]) -> Option<Next> {
        let text = String::from_utf8_lossy(line);
        let mut words = text.split_ascii_whitespace();
        let verb = words.next()?;
        let overflows = |v: &str| {
            !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && v.parse::<usize>().is_err()
        };
        let limit = self.shared.context.config.smtp.max_message_size.0;
        if verb.eq_ignore_ascii_case("MAIL") {
            let size = words.find_map(|w| {
                w.get(..5)
                    .filter(|k| k.eq_ignore_ascii_case("SIZE="))
                    .and_then(|_| w.get(5..))
            })?;
            if overflows(size) {
                self.refuse(&Refusal::new(
                    552,
                    [5, 3, 4],
                    format!("Message too big: the limit is {limit} bytes"),
                ));
                return Some(Next::Continue);
            }
        } else if verb.eq_ignore_ascii_case("BDAT") && words.next().is_some_and(overflows) {
            // The chunk cannot be skipped: nothing after it can be read in step.
            self.refuse(&Refusal::new(
                552,
                [5, 3, 4],
                format!("Chunk too big: the limit is {limit} bytes, closing the connection"),
            ));
            return Some(Next::Close);
        }
        None
    }

    /// A line over the limit: the rest of it is never read, so the session ends here.
    async fn line_too_long(&mut self) {
        self.audit_refusal(None, None, "command line too long, connection closed")
            .await;
        self.say(500, [5, 5, 2], "Line too long, closing the connection");
    }

    fn ehlo(&mut self, host: String, extended: bool) {
        self.helo = Some(host);
        self.transaction = None;
        let hostname = &self.shared.context.config.server.hostname;
        if !extended {
            let text = format!("{hostname} greets you");
            self.say(250, [2, 0, 0], &text);
            return;
        }
        let mut lines = vec![format!("{hostname} greets {}", self.peer.ip())];
        if !self.tls {
            lines.push("STARTTLS".into());
        } else if self.interface.is_submission() && self.authenticated.is_none() {
            let mut auth = String::from("AUTH XOAUTH2 OAUTHBEARER");
            if self.certificate.identity().is_some() {
                auth.push_str(" EXTERNAL");
            }
            lines.push(auth);
        }
        lines.push(format!(
            "SIZE {}",
            self.shared.context.config.smtp.max_message_size.0
        ));
        for ext in [
            "8BITMIME",
            "PIPELINING",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "CHUNKING",
            "DSN",
        ] {
            lines.push(ext.into());
        }
        let last = lines.len() - 1;
        let mut out = Vec::with_capacity(256);
        for (i, l) in lines.iter().enumerate() {
            out.extend_from_slice(if i == last { b"250 " } else { b"250-" });
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        self.wire.queue(&out);
    }

    async fn starttls(&mut self) -> Result<Next, WireError> {
        if self.tls {
            self.say(503, [5, 5, 1], "TLS already active");
            return Ok(Next::Continue);
        }
        self.say(220, [2, 0, 0], "Ready to start TLS");
        self.wire.flush().await?;
        // Anything pipelined after STARTTLS was sent in clear text: never act on it.
        self.wire.discard_buffered();
        if !self.handshake().await {
            return Ok(Next::Close);
        }
        self.helo = None;
        self.transaction = None;
        Ok(Next::Continue)
    }

    async fn auth(&mut self, args: &[u8]) -> Result<Next, WireError> {
        if !self.interface.is_submission() {
            self.audit_refusal(None, None, "AUTH on the operator interface")
                .await;
            self.errors += 1;
            self.say(502, [5, 5, 1], "AUTH is not offered on this interface");
            return Ok(Next::Continue);
        }
        if !self.tls {
            self.audit_refusal(None, None, "AUTH before STARTTLS").await;
            self.errors += 1;
            self.say(530, [5, 7, 0], "Must issue a STARTTLS command first");
            return Ok(Next::Continue);
        }
        if self.authenticated.is_some() {
            self.say(503, [5, 5, 1], "Already authenticated");
            return Ok(Next::Continue);
        }
        if self.transaction.is_some() {
            self.say(503, [5, 5, 1], "AUTH not allowed during a mail transaction");
            return Ok(Next::Continue);
        }
        submission::auth(self, args).await
    }

    async fn mail(&mut self, from: smtp_proto::MailFrom<String>) -> Result<(), Refusal> {
        if !self.tls {
            self.audit_refusal(None, Some(from.address.clone()), "MAIL before STARTTLS")
                .await;
            return Err(Refusal::new(
                530,
                [5, 7, 0],
                "Must issue a STARTTLS command first",
            ));
        }
        if self.helo.is_none() {
            return Err(Refusal::new(503, [5, 5, 1], "Send EHLO first"));
        }
        if self.transaction.is_some() {
            return Err(Refusal::new(503, [5, 5, 1], "Nested MAIL command"));
        }
        let config = &self.shared.context.config.smtp;
        if self.messages >= config.max_messages_per_connection {
            return Err(Refusal::new(
                421,
                [4, 7, 0],
                "Too many messages on this connection, reconnect",
            ));
        }
        if from.size > config.max_message_size.as_usize() {
            return Err(Refusal::new(
                552,
                [5, 3, 4],
                format!(
                    "Message too big: the limit is {} bytes",
                    config.max_message_size.0
                ),
            ));
        }
        let sender = if self.interface.is_submission() {
            submission::check_sender(self, &from.address).await?
        } else {
            inbound::check_sender(self, &from.address).await?
        };
        self.transaction = Some(Transaction {
            sender,
            envid: from.env_id,
            ret_full: from.flags & smtp_proto::MAIL_RET_FULL != 0,
            recipients: Vec::new(),
            declared_size: from.size,
            chunks: Vec::new(),
            chunks_fit: true,
            chunks_refused: false,
        });
        self.say(250, [2, 1, 0], "Sender OK");
        Ok(())
    }

    async fn rcpt(&mut self, to: smtp_proto::RcptTo<String>) -> Result<(), Refusal> {
        let Some(tx) = &self.transaction else {
            return Err(Refusal::new(503, [5, 5, 1], "Need MAIL before RCPT"));
        };
        let max = self.shared.context.config.smtp.max_recipients as usize;
        if tx.recipients.len() >= max {
            return Err(Refusal::new(
                452,
                [4, 5, 3],
                format!("Too many recipients (at most {max} per message)"),
            ));
        }
        let recipient = delivery::resolve(self, &to).await?;
        let Some(tx) = &mut self.transaction else {
            return Err(Refusal::new(503, [5, 5, 1], "Need MAIL before RCPT"));
        };
        if !tx
            .recipients
            .iter()
            .any(|r| r.address() == recipient.address())
        {
            tx.recipients.push(recipient);
        }
        self.say(250, [2, 1, 5], "Recipient OK");
        Ok(())
    }

    async fn data(&mut self) -> Result<(), WireError> {
        match &self.transaction {
            None => {
                self.say(503, [5, 5, 1], "Need MAIL before DATA");
                return Ok(());
            }
            Some(tx) if tx.recipients.is_empty() => {
                self.say(554, [5, 5, 1], "No valid recipients");
                return Ok(());
            }
            Some(tx) if !tx.chunks.is_empty() => {
                self.say(503, [5, 5, 1], "DATA cannot follow BDAT");
                return Ok(());
            }
            Some(_) => {}
        }
        self.wire
            .queue(&bare_reply(354, "End data with <CR><LF>.<CR><LF>"));
        let limit = self.shared.context.config.smtp.max_message_size.as_usize();
        let mut body = Vec::with_capacity(8 * 1024);
        let ended = self.wire.read_data(&mut body, limit, DATA_TIMEOUT).await?;
        self.finish(body, ended).await;
        Ok(())
    }

    async fn bdat(&mut self, size: usize, last: bool) -> Result<(), WireError> {
        let limit = self.shared.context.config.smtp.max_message_size.as_usize();
        let Some(tx) = &mut self.transaction else {
            // The chunk must still be read so the next command is found.
            self.wire
                .read_chunk(&mut Vec::new(), size, 0, DATA_TIMEOUT)
                .await?;
            self.say(503, [5, 5, 1], "Need MAIL before BDAT");
            return Ok(());
        };
        if tx.recipients.is_empty() {
            tx.chunks_refused = true;
        }
        if tx.chunks_fit && !tx.chunks_refused {
            tx.chunks_fit = self
                .wire
                .read_chunk(&mut tx.chunks, size, limit, DATA_TIMEOUT)
                .await?;
        } else {
            self.wire
                .read_chunk(&mut Vec::new(), size, 0, DATA_TIMEOUT)
                .await?;
        }
        let refused = tx.chunks_refused;
        let fits = tx.chunks_fit;
        if !last {
            if refused {
                self.say(554, [5, 5, 1], "No valid recipients");
            } else if !fits {
                self.say(552, [5, 3, 4], "Message too big");
            } else {
                self.say(250, [2, 0, 0], &format!("{size} octets received"));
            }
            return Ok(());
        }
        if refused {
            self.transaction = None;
            self.say(554, [5, 5, 1], "No valid recipients");
            return Ok(());
        }
        let body = std::mem::take(&mut tx.chunks);
        let ended = if !fits {
            Body::TooBig
        } else if has_bare_line_ending(&body) {
            Body::BareLineEnding
        } else {
            Body::Complete
        };
        self.finish(body, ended).await;
        Ok(())
    }

    /// The end of DATA or the last BDAT: store, then answer. The transaction ends
    /// either way.
    async fn finish(&mut self, body: Vec<u8>, ended: Body) {
        let Some(tx) = self.transaction.take() else {
            return;
        };
        match ended {
            Body::Complete => {}
            Body::TooBig => {
                let limit = self.shared.context.config.smtp.max_message_size.0;
                self.say(
                    552,
                    [5, 3, 4],
                    &format!("Message too big: the limit is {limit} bytes"),
                );
                return;
            }
            Body::BareLineEnding => {
                let reason = "bare CR or LF in the message: lines must end with CRLF";
                self.audit_refusal(None, Some(tx.sender.clone()), reason)
                    .await;
                self.refuse(&Refusal::new(554, [5, 5, 2], reason));
                return;
            }
        }
        if self.interface.is_submission()
            && self.shared.context.config.smtp.check_from_header
            && let Err(r) = submission::check_from_header(self, &body).await
        {
            self.refuse(&r);
            return;
        }
        match delivery::accept(self, tx, body).await {
            Ok(id) => {
                self.messages += 1;
                self.say(250, [2, 0, 0], &format!("OK id={id}"));
            }
            Err(r) => self.refuse(&r),
        }
    }
}

fn parse_refusal(e: &ProtoError) -> Refusal {
    match e {
        ProtoError::UnknownCommand => Refusal::new(500, [5, 5, 1], "Command unrecognized"),
        ProtoError::InvalidSenderAddress => {
            Refusal::new(501, [5, 1, 7], "Bad sender address syntax")
        }
        ProtoError::InvalidRecipientAddress => {
            Refusal::new(501, [5, 1, 3], "Bad recipient address syntax")
        }
        ProtoError::SyntaxError { syntax } => {
            Refusal::new(501, [5, 5, 2], format!("Syntax: {syntax}"))
        }
        ProtoError::InvalidParameter { param } => {
            Refusal::new(501, [5, 5, 4], format!("Invalid parameter {param}"))
        }
        ProtoError::UnsupportedParameter { param } => {
            Refusal::new(555, [5, 5, 4], format!("Unsupported parameter {param}"))
        }
        ProtoError::ResponseTooLong | ProtoError::NeedsMoreData { .. } => {
            Refusal::new(500, [5, 5, 2], "Line too long")
        }
        ProtoError::InvalidResponse { .. } => Refusal::new(500, [5, 5, 1], "Command unrecognized"),
    }
}
