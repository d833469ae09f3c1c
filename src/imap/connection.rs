//! Bytes in, complete IMAP messages out; responses in, bytes out.
//!
//! imap-codec's `Fragmentizer` splits the stream into lines and literals, so a refused
//! literal can be skipped without ever reading its bytes as commands. This layer enforces
//! the line and literal limits, answers synchronizing literals with `+`, and puts a
//! timeout on every read; writes are bounded by `crate::net::Link`.
//!
//! Before authentication anybody can connect, so a connection may hold no more than
//! [`UNAUTHENTICATED_MAX_MESSAGE`] of one message: a larger line or literal ends the
//! connection (`* BYE`) without its bytes being read, and a synchronizing literal gets no
//! `+`. The configured limits apply once the session is authenticated.

use std::io;
use std::time::Duration;

use imap_codec::fragmentizer::{FragmentInfo, Fragmentizer, LiteralAnnouncement};
use imap_codec::imap_types::core::LiteralMode;
use imap_codec::imap_types::response::{CommandContinuationRequest, Response, StatusKind};
use imap_codec::{GreetingCodec, ResponseCodec, encode::Encoder};

use super::text;
use crate::net::{HandshakeError, Link, Net, Stream, WriteError};
use crate::tls::TlsSource;

/// Responses are written out once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;
/// Buffers above this size are given back after each command.
const KEEP_CAPACITY: usize = 4 * 1024;
const READ_CHUNK: usize = 16 * 1024;
/// The most one message (lines and literals together) may hold before authentication:
/// room for a SASL initial response or continuation carrying a PSC token (a few KiB in
/// base64; RFC 4954 suggests allowing 12,288 bytes), so that thousands of idle,
/// unauthenticated connections cannot pin memory.
pub(crate) const UNAUTHENTICATED_MAX_MESSAGE: usize = 16 * 1024;

/// Why the connection cannot go on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("the client closed the connection")]
    Closed,
    #[error("no data within the time limit")]
    Timeout,
    #[error("line longer than {0} bytes")]
    LineTooLong(usize),
    /// Before authentication only: the literal is refused unread.
    #[error("literal larger than {0} bytes before authentication")]
    LiteralTooLarge(usize),
}

impl From<WriteError> for ConnError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Closed => ConnError::Closed,
            WriteError::TimedOut => ConnError::Timeout,
            WriteError::Io(e) => ConnError::Io(e),
        }
    }
}

impl ConnError {
    /// The `* BYE` text for the errors the client caused by sending too much; `None` for
    /// the others (closed, timed out, i/o), where nothing useful can be said.
    pub(crate) fn oversize(&self) -> Option<String> {
        match self {
            ConnError::LineTooLong(n) => Some(format!("command line longer than {n} bytes")),
            ConnError::LiteralTooLarge(n) => Some(format!(
                "literal larger than {n} bytes before authentication"
            )),
            _ => None,
        }
    }
}

/// A response as the bytes `send` would write, to be extended before `send_raw`.
pub(crate) fn encode(response: &Response<'_>) -> Vec<u8> {
    ResponseCodec::default().encode(response).dump()
}

/// What a read produced.
pub(crate) enum Incoming {
    /// A complete message is in the fragmentizer: decode it with `message()`.
    Message,
    /// A complete message that went over the size limit or could not be framed safely;
    /// its tag if it had one.
    Refused {
        tag: Option<imap_codec::imap_types::core::Tag<'static>>,
    },
}

pub(crate) struct Connection {
    link: Link,
    frag: Fragmentizer,
    out: Vec<u8>,
    max_line: usize,
    max_literal: u32,
    max_message: u32,
    /// End of the last complete fragment of the current message (line length check).
    fragment_end: usize,
    in_literal: bool,
    /// The message held in the fragmentizer has not been handled yet.
    replay: bool,
    /// Until the session authenticates, [`UNAUTHENTICATED_MAX_MESSAGE`] bounds everything.
    authenticated: bool,
}

impl Connection {
    pub(crate) fn new(link: Link, max_line: usize, max_literal: usize) -> Self {
        let max_literal = u32::try_from(max_literal).unwrap_or(u32::MAX / 2);
        let max_message = max_literal
            .saturating_add(u32::try_from(max_line.saturating_mul(4)).unwrap_or(u32::MAX / 2));
        Connection {
            link,
            frag: Fragmentizer::new(max_message),
            out: Vec::new(),
            max_line,
            max_literal,
            max_message,
            fragment_end: 0,
            in_literal: false,
            replay: false,
            authenticated: false,
        }
    }

    /// The largest literal an authenticated session may send (APPENDLIMIT).
    pub(crate) fn max_literal(&self) -> u32 {
        self.max_literal
    }

    /// The most one command may carry, literals included.
    pub(crate) fn max_message(&self) -> usize {
        usize::try_from(self.max_message).unwrap_or(usize::MAX)
    }

    /// The session authenticated: the configured line and literal limits apply from now on.
    pub(crate) fn set_authenticated(&mut self) {
        self.authenticated = true;
    }

    /// The longest line accepted now.
    fn line_limit(&self) -> usize {
        if self.authenticated {
            self.max_line
        } else {
            self.max_line.min(UNAUTHENTICATED_MAX_MESSAGE)
        }
    }

    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.link.stream()
    }

    /// STARTTLS: the handshake on the plain socket. Bytes the client pipelined after
    /// STARTTLS are dropped: they were sent in clear text.
    pub(crate) async fn start_tls(
        &mut self,
        net: &Net,
        tls: &TlsSource,
    ) -> Result<(), HandshakeError> {
        self.frag = Fragmentizer::new(self.max_message);
        self.fragment_end = 0;
        self.in_literal = false;
        self.replay = false;
        self.link.start_tls(net, tls).await
    }

    /// The message that `read` reported complete.
    pub(crate) fn message(&self) -> &Fragmentizer {
        &self.frag
    }

    /// Handle the current message again on the next `read` (a command that arrived where
    /// a SASL reply was expected).
    pub(crate) fn replay(&mut self) {
        self.replay = true;
    }

    /// Reads until a complete message is framed, within `limit`.
    pub(crate) async fn read(&mut self, limit: Duration) -> Result<Incoming, ConnError> {
        if std::mem::take(&mut self.replay) {
            return Ok(Incoming::Message);
        }
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(info) = self.frag.progress() else {
                if !self.in_literal {
                    let held = self.frag.message_bytes().len();
                    let partial = held - self.fragment_end.min(held);
                    let too_much = partial > self.line_limit()
                        || (!self.authenticated && held > UNAUTHENTICATED_MAX_MESSAGE);
                    if too_much {
                        return Err(ConnError::LineTooLong(self.line_limit()));
                    }
                }
                if self.frag.message_bytes().is_empty() {
                    // Nothing half-read and nothing queued (`progress` consumed it all):
                    // give the buffers back while the client is quiet.
                    self.frag = Fragmentizer::new(self.max_message);
                }
                self.fill(deadline).await?;
                continue;
            };
            match info {
                FragmentInfo::Line {
                    start,
                    end,
                    announcement,
                    ..
                } => {
                    if end - start > self.line_limit().saturating_add(2)
                        || (!self.authenticated && end > UNAUTHENTICATED_MAX_MESSAGE)
                    {
                        return Err(ConnError::LineTooLong(self.line_limit()));
                    }
                    self.fragment_end = end;
                    if let Some(LiteralAnnouncement { mode, length }) = announcement {
                        let length_bytes = usize::try_from(length).unwrap_or(usize::MAX);
                        if !self.authenticated
                            && end.saturating_add(length_bytes) > UNAUTHENTICATED_MAX_MESSAGE
                        {
                            return Err(ConnError::LiteralTooLarge(UNAUTHENTICATED_MAX_MESSAGE));
                        }
                        self.in_literal = true;
                        if length > self.max_literal {
                            use imap_codec::imap_types::IntoStatic;
                            let tag = self.frag.decode_tag().map(IntoStatic::into_static);
                            match (mode, tag) {
                                (LiteralMode::Sync, Some(tag)) => {
                                    // The client waits for `+`: refuse, it sends nothing.
                                    let r = text::tagged(
                                        &tag,
                                        StatusKind::No,
                                        Some(imap_codec::imap_types::response::Code::TooBig),
                                        "literal too large",
                                    );
                                    self.frag.skip_message();
                                    self.fragment_end = 0;
                                    self.in_literal = false;
                                    self.send(&r).await?;
                                    self.flush().await?;
                                }
                                _ => {
                                    // The bytes follow anyway: read past them, answer after.
                                    self.frag.poison_message();
                                }
                            }
                            continue;
                        }
                        if mode == LiteralMode::Sync {
                            let plus = Response::CommandContinuationRequest(
                                CommandContinuationRequest::basic(None, "Ready")
                                    .map_err(|_| io::Error::other("continuation"))?,
                            );
                            self.send(&plus).await?;
                            self.flush().await?;
                        }
                        continue;
                    }
                }
                FragmentInfo::Literal { end, .. } => {
                    self.fragment_end = end;
                    self.in_literal = false;
                }
            }
            if !self.frag.is_message_complete() {
                continue;
            }
            self.fragment_end = 0;
            self.in_literal = false;
            if self.frag.is_max_message_size_exceeded() || self.frag.is_message_poisoned() {
                use imap_codec::imap_types::IntoStatic;
                return Ok(Incoming::Refused {
                    tag: self.frag.decode_tag().map(IntoStatic::into_static),
                });
            }
            return Ok(Incoming::Message);
        }
    }

    async fn fill(&mut self, deadline: tokio::time::Instant) -> Result<(), ConnError> {
        let mut buf = vec![0u8; if self.in_literal { READ_CHUNK } else { 2048 }];
        let n = tokio::time::timeout_at(deadline, self.link.read(&mut buf))
            .await
            .map_err(|_| ConnError::Timeout)??;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        self.frag.enqueue_bytes(&buf[..n]);
        Ok(())
    }

    /// Queues a response; writes out when enough is buffered.
    pub(crate) async fn send(&mut self, response: &Response<'_>) -> Result<(), ConnError> {
        for fragment in ResponseCodec::default().encode(response) {
            match fragment {
                imap_codec::encode::Fragment::Line { data }
                | imap_codec::encode::Fragment::Literal { data, .. } => {
                    if self.out.is_empty() && data.len() > FLUSH_AT {
                        self.write_raw(&data).await?;
                    } else {
                        self.out.extend_from_slice(&data);
                    }
                }
            }
        }
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    /// Queues a response we wrote ourselves, for what imap-codec cannot write (ESEARCH,
    /// LIST extended data, the origin of a partial BINARY answer).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.out.extend_from_slice(bytes);
        if self.out.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    pub(crate) async fn send_greeting(
        &mut self,
        greeting: &imap_codec::imap_types::response::Greeting<'_>,
    ) -> Result<(), ConnError> {
        let bytes = GreetingCodec::default().encode(greeting).dump();
        self.out.extend_from_slice(&bytes);
        self.flush().await
    }

    async fn write_raw(&mut self, data: &[u8]) -> Result<(), ConnError> {
        Ok(self.link.write(data).await?)
    }

    /// Writes out what is queued (and flushes the stream even when nothing is).
    pub(crate) async fn flush(&mut self) -> Result<(), ConnError> {
        let out = std::mem::take(&mut self.out);
        let result = self.write_raw(&out).await;
        self.out = out;
        self.out.clear();
        if self.out.capacity() > KEEP_CAPACITY {
            self.out = Vec::new();
        }
        result
    }

    /// Flushes and closes the write side, best effort.
    pub(crate) async fn close(&mut self) {
        if self.flush().await.is_ok() {
            self.link.close().await;
        }
    }
}
