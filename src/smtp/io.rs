//! Bytes on the wire: bounded line reads, DATA and BDAT bodies, buffered replies.
//!
//! smtp-proto parses a command line once we have one; reading it is ours, because its
//! receiver caps a line at 4,096 bytes and drops the rest of a long SASL line, while
//! RFC 4954 lets an AUTH line carry at least 12,288 bytes. Replies accumulate and are
//! flushed only before the session would wait for the client, so a pipelined batch
//! (RFC 2920) gets its answers in one write.
//!
//! Line endings in a message are CRLF and nothing else (RFC 5321 §2.3.8). DATA ends only
//! at `CRLF . CRLF`: a server that also ended it at `LF . LF` or `CRLF . LF` would read
//! what follows as commands where the previous hop saw message text (SMTP smuggling).
//! A body holding a bare CR or a bare LF anywhere, in DATA or in BDAT chunks, is read
//! through its real end and refused with `554 5.5.2`; nothing of it is stored or
//! interpreted, and the session goes on with the next command.
//!
//! Every write has a deadline too (`crate::net::Link`): after a write failed or timed
//! out the wire is given up and nothing more is written to it.

use std::io;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::net::{Link, WriteError};

/// What a read can end in besides data.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed by the peer")]
    Closed,
    #[error("timed out waiting for the peer")]
    Timeout,
    #[error("the peer stopped reading")]
    WriteTimeout,
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The rest of the line was not read: the stream is out of step, only closing is left.
    #[error("line too long")]
    LineTooLong,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// How a DATA or BDAT body ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    Complete,
    /// Larger than allowed: read through its end and dropped.
    TooBig,
    /// A CR or LF outside a CRLF pair: read through its end and dropped.
    BareLineEnding,
}

/// Where DATA is within its current line; only `CRLF . CRLF` reaches `End`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataState {
    /// After a CRLF (or at the start of the body).
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    Mid,
    /// A CR inside a line, waiting for its LF.
    Cr,
    End,
}

/// What one byte of DATA adds to the body.
enum Emit {
    Nothing,
    Byte(u8),
    Crlf,
}

impl DataState {
    /// The next state, what to append, and false if the byte broke a CRLF pair.
    fn step(self, b: u8) -> (DataState, Emit, bool) {
        use DataState::*;
        match (self, b) {
            (LineStart, b'.') => (Dot, Emit::Nothing, true),
            (LineStart | Mid | Dot, b'\r') => {
                (if self == Dot { DotCr } else { Cr }, Emit::Nothing, true)
            }
            (LineStart | Mid | Dot, b'\n') => (Mid, Emit::Nothing, false),
            // Dot-stuffing: a leading dot is dropped, whatever follows it.
            (LineStart | Mid | Dot, _) => (Mid, Emit::Byte(b), true),
            (DotCr, b'\n') => (End, Emit::Nothing, true),
            (Cr, b'\n') => (LineStart, Emit::Crlf, true),
            (DotCr | Cr, b'\r') => (Cr, Emit::Nothing, false),
            (DotCr | Cr, _) => (Mid, Emit::Nothing, false),
            (End, _) => (End, Emit::Nothing, true),
        }
    }
}

/// Whether `data` holds a CR or LF that is not part of a CRLF pair.
pub fn has_bare_line_ending(data: &[u8]) -> bool {
    data.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => data.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || data[i - 1] != b'\r',
        _ => false,
    })
}

/// Room read from the socket at once for command lines: what an idle or unauthenticated
/// connection holds stays a few KiB.
const LINE_CHUNK: usize = 4 * 1024;
/// Room read at once for message bodies.
const BODY_CHUNK: usize = 16 * 1024;

/// A link with a read buffer and a reply buffer.
pub struct Wire {
    pub link: Link,
    buf: Vec<u8>,
    pos: usize,
    out: Vec<u8>,
    /// Ends any wait for the peer (server shutdown).
    cancel: Option<CancellationToken>,
}

impl From<WriteError> for WireError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Closed => WireError::Closed,
            WriteError::TimedOut => WireError::WriteTimeout,
            WriteError::Io(e) => WireError::Io(e),
        }
    }
}

impl Wire {
    pub fn new(link: Link) -> Self {
        Wire {
            link,
            buf: Vec::new(),
            pos: 0,
            out: Vec::with_capacity(512),
            cancel: None,
        }
    }

    /// Waits for the peer end with `WireError::ShuttingDown` once `cancel` fires.
    pub fn cancel_on(&mut self, cancel: CancellationToken) {
        self.cancel = Some(cancel);
    }

    /// Forgets unread bytes: what came before a TLS handshake must not be read after it
    /// (RFC 3207 §4.2).
    pub fn discard_buffered(&mut self) {
        self.buf.clear();
        self.pos = 0;
    }

    /// Queues a reply line (already terminated by CRLF).
    pub fn queue(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes the queued replies out, within the write timeout.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        let written = self.link.write(&self.out).await;
        self.out.clear();
        Ok(written?)
    }

    /// Reads more bytes, flushing queued replies first if the client is waiting for them.
    async fn fill(&mut self, timeout: Duration, chunk: usize) -> Result<(), WireError> {
        if !self.out.is_empty() {
            self.flush().await?;
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.buf.capacity() > 2 * chunk {
                // A body read grew it; a connection waiting for commands gives it back.
                self.buf = Vec::new();
            }
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let start = self.buf.len();
        self.buf.resize(start + chunk, 0);
        let read = match &self.cancel {
            None => tokio::time::timeout(timeout, self.link.read(&mut self.buf[start..])).await,
            Some(cancel) => tokio::select! {
                r = tokio::time::timeout(timeout, self.link.read(&mut self.buf[start..])) => r,
                _ = cancel.cancelled() => {
                    self.buf.truncate(start);
                    return Err(WireError::ShuttingDown);
                }
            },
        };
        let n = match read {
            Err(_) => {
                self.buf.truncate(start);
                return Err(WireError::Timeout);
            }
            Ok(Err(e)) => {
                self.buf.truncate(start);
                return Err(e.into());
            }
            Ok(Ok(n)) => n,
        };
        self.buf.truncate(start + n);
        if n == 0 {
            return Err(WireError::Closed);
        }
        Ok(())
    }

    /// Appends one line (through LF) to `out`. A line longer than `limit` bytes is not
    /// read to its end, which may never come: `WireError::LineTooLong`, and the
    /// connection can only be closed.
    ///
    /// `timeout` bounds the whole line, not each read: a client trickling one byte at a
    /// time (slowloris) would otherwise hold the connection for as many timeouts as the
    /// line has bytes, and past the login time limit.
    pub async fn read_line(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        timeout: Duration,
    ) -> Result<(), WireError> {
        let start = out.len();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let available = &self.buf[self.pos..];
            let newline = available.iter().position(|&b| b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            if out.len() - start + take > limit {
                out.truncate(start);
                return Err(WireError::LineTooLong);
            }
            out.extend_from_slice(&available[..take]);
            self.pos += take;
            if newline.is_some() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.fill(left, LINE_CHUNK).await?;
        }
    }

    /// Reads a DATA body through the `CRLF.CRLF` that ends it, removing dot-stuffing.
    /// Only that sequence ends the body; see the module doc for bare CR and LF.
    pub async fn read_data(
        &mut self,
        out: &mut Vec<u8>,
        limit: usize,
        timeout: Duration,
    ) -> Result<Body, WireError> {
        let mut state = DataState::LineStart;
        let mut too_big = false;
        let mut bare = false;
        loop {
            while self.pos < self.buf.len() {
                let b = self.buf[self.pos];
                self.pos += 1;
                let (next, emit, ok) = state.step(b);
                state = next;
                if !ok {
                    bare = true;
                    out.clear();
                }
                if state == DataState::End {
                    return Ok(if bare {
                        Body::BareLineEnding
                    } else if too_big {
                        Body::TooBig
                    } else {
                        Body::Complete
                    });
                }
                if bare || too_big {
                    continue;
                }
                let emit: &[u8] = match emit {
                    Emit::Nothing => continue,
                    Emit::Byte(b) => &[b],
                    Emit::Crlf => b"\r\n",
                };
                if out.len() + emit.len() > limit {
                    too_big = true;
                    out.clear();
                } else {
                    out.extend_from_slice(emit);
                }
            }
            self.fill(timeout, BODY_CHUNK).await?;
        }
    }

    /// Reads exactly `n` bytes (a BDAT chunk), appending them while `out` stays within
    /// `limit`; returns whether they fit.
    pub async fn read_chunk(
        &mut self,
        out: &mut Vec<u8>,
        mut n: usize,
        limit: usize,
        timeout: Duration,
    ) -> Result<bool, WireError> {
        let mut fits = out.len().saturating_add(n) <= limit;
        if !fits {
            out.clear();
        }
        while n > 0 {
            if self.pos == self.buf.len() {
                self.fill(timeout, BODY_CHUNK).await?;
            }
            let available = &self.buf[self.pos..];
            let take = available.len().min(n);
            if fits {
                out.extend_from_slice(&available[..take]);
            }
            self.pos += take;
            n -= take;
        }
        if out.len() > limit {
            fits = false;
            out.clear();
        }
        Ok(fits)
    }

    /// Flushes and closes the write side, each within its time limit; errors do not
    /// matter any more.
    pub async fn close(&mut self) {
        if self.flush().await.is_ok() {
            self.link.close().await;
        }
    }
}

/// One reply line, `code esc text`, or several joined with `-` continuations.
/// A reply without an enhanced status code: the greeting, whose first word must be the
/// server's name (RFC 5321 §4.2), and intermediate 3xx replies, which RFC 2034 leaves
/// without one.
pub fn bare_reply(code: u16, text: &str) -> Vec<u8> {
    format!("{code} {}\r\n", one_line(text)).into_bytes()
}

pub fn reply(code: u16, esc: [u8; 3], text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 16);
    // invariant: writing to a Vec cannot fail.
    let _ = smtp_proto::Response::new(code, esc[0], esc[1], esc[2], one_line(text)).write(&mut out);
    out
}

/// Keeps peer-supplied text on one line: in a reply, or in a DSN field.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting_and_data_replies_carry_no_enhanced_code() {
        assert_eq!(
            bare_reply(220, "mx.example ESMTP"),
            b"220 mx.example ESMTP\r\n"
        );
        assert_eq!(bare_reply(354, "go\r\nahead"), b"354 go  ahead\r\n");
        assert_eq!(reply(250, [2, 1, 0], "OK"), b"250 2.1.0 OK\r\n");
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn pair(input: &'static [u8]) -> Wire {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(input).await.unwrap();
            let _ = c.shutdown().await;
            let mut sink = Vec::new();
            let _ = c.read_to_end(&mut sink).await;
        });
        let (s, _) = listener.accept().await.unwrap();
        Wire::new(Link::new(crate::net::Stream::Plain(s), T))
    }

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn lines_and_long_lines() {
        let mut w = pair(b"EHLO a\r\nNOOP\r\nXXXXXXXXXXXXXXXXXXXX\r\n").await;
        let mut l = Vec::new();
        w.read_line(&mut l, 10, T).await.unwrap();
        assert_eq!(l, b"EHLO a\r\n");
        l.clear();
        w.read_line(&mut l, 10, T).await.unwrap();
        assert_eq!(l, b"NOOP\r\n");
        l.clear();
        assert!(matches!(
            w.read_line(&mut l, 10, T).await,
            Err(WireError::LineTooLong)
        ));
        assert!(l.is_empty());
    }

    #[tokio::test]
    async fn data_unstuffing_and_limit() {
        let mut w = pair(b"a\r\n..b\r\n.\r\nNOOP\r\n0123456789\r\n.\r\n").await;
        let mut d = Vec::new();
        assert_eq!(w.read_data(&mut d, 100, T).await.unwrap(), Body::Complete);
        assert_eq!(d, b"a\r\n.b\r\n");
        let mut l = Vec::new();
        w.read_line(&mut l, 100, T).await.unwrap();
        assert_eq!(l, b"NOOP\r\n");
        let mut d = Vec::new();
        assert_eq!(w.read_data(&mut d, 5, T).await.unwrap(), Body::TooBig);
    }

    /// Only CRLF.CRLF ends DATA; every other ending is part of a refused body.
    #[tokio::test]
    async fn data_ends_only_at_crlf_dot_crlf() {
        for input in [
            &b"a\n.\nMAIL FROM:<x>\r\n.\r\nNOOP\r\n"[..],
            b"a\r\n.\nMAIL FROM:<x>\r\n.\r\nNOOP\r\n",
            b"a\n.\r\nMAIL FROM:<x>\r\n.\r\nNOOP\r\n",
            b"a\r.\r\nMAIL FROM:<x>\r\n.\r\nNOOP\r\n",
            b"a\r\n.\r.\r\n.\r\nNOOP\r\n",
            b"\n.\r\n.\r\nNOOP\r\n",
        ] {
            let mut w = pair(input).await;
            let mut d = Vec::new();
            let ended = w.read_data(&mut d, 100, T).await.unwrap();
            assert_eq!(ended, Body::BareLineEnding, "{input:?}");
            assert!(d.is_empty());
            let mut l = Vec::new();
            w.read_line(&mut l, 100, T).await.unwrap();
            assert_eq!(l, b"NOOP\r\n", "{input:?}");
        }
        let mut w = pair(b".\r\n").await;
        let mut d = Vec::new();
        assert_eq!(w.read_data(&mut d, 100, T).await.unwrap(), Body::Complete);
        assert!(d.is_empty());
    }

    #[test]
    fn bare_line_endings() {
        assert!(!has_bare_line_ending(b"a\r\nb\r\n"));
        assert!(has_bare_line_ending(b"a\nb"));
        assert!(has_bare_line_ending(b"\nb"));
        assert!(has_bare_line_ending(b"a\r"));
        assert!(has_bare_line_ending(b"a\r\r\n"));
    }

    #[tokio::test]
    async fn chunks() {
        let mut w = pair(b"0123456789NOOP\r\n").await;
        let mut d = Vec::new();
        assert!(w.read_chunk(&mut d, 4, 100, T).await.unwrap());
        assert!(!w.read_chunk(&mut d, 6, 8, T).await.unwrap());
        let mut l = Vec::new();
        w.read_line(&mut l, 100, T).await.unwrap();
        assert_eq!(l, b"NOOP\r\n");
    }
}
