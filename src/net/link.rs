//! A stream with bounded writes. Every write waits at most the write timeout for the
//! peer to read: a peer that stops reading (its window full) would otherwise hold its
//! task forever, and with it the server's shutdown. After a write failed or timed out
//! the stream is given up: nothing more, a goodbye or TLS close_notify included, could
//! reach the peer in step.
//!
//! Reads have no limit here: how long to wait for the peer is each protocol's rule
//! (command, login, DATA and idle timeouts).

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Net;
use super::handshake::HandshakeError;
use super::stream::Stream;
use crate::tls::TlsSource;

/// Closing (TLS close_notify, FIN) is a courtesy: it never waits longer than this.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a write did not go through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteError {
    /// An earlier write failed, or the stream is gone.
    #[error("the connection was given up")]
    Closed,
    #[error("the peer stopped reading")]
    TimedOut,
    #[error("{0}")]
    Io(#[from] io::Error),
}

pub(crate) struct Link {
    /// `None` once given up, or while a STARTTLS handshake owns the socket.
    stream: Option<Stream>,
    write_timeout: Duration,
}

impl Net {
    /// A link for an accepted connection, with `[session] write_timeout`.
    pub(crate) fn link(&self, stream: Stream) -> Link {
        Link::new(stream, self.settings.write_timeout)
    }
}

impl Link {
    pub(crate) fn new(stream: Stream, write_timeout: Duration) -> Self {
        Link {
            stream: Some(stream),
            write_timeout,
        }
    }

    pub(crate) fn stream(&self) -> Option<&Stream> {
        self.stream.as_ref()
    }

    /// Reads what the peer sent; 0 at its end, or when the stream was given up.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.stream.as_mut() {
            Some(stream) => stream.read(buf).await,
            None => Ok(0),
        }
    }

    /// Writes `data` and flushes, within the write timeout.
    pub(crate) async fn write(&mut self, data: &[u8]) -> Result<(), WriteError> {
        let stream = self.stream.as_mut().ok_or(WriteError::Closed)?;
        let written = tokio::time::timeout(self.write_timeout, async {
            if !data.is_empty() {
                stream.write_all(data).await?;
            }
            stream.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.stream = None;
                Err(e.into())
            }
            Err(_) => {
                tracing::info!(
                    timeout = ?self.write_timeout,
                    "the peer stopped reading: connection dropped"
                );
                self.stream = None;
                Err(WriteError::TimedOut)
            }
        }
    }

    /// Closes the write side, best effort and briefly.
    pub(crate) async fn close(&mut self) {
        if let Some(stream) = self.stream.as_mut() {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
        }
    }

    /// STARTTLS: the TLS handshake on the plain socket, which then carries TLS. Whatever
    /// happens, the plain stream is not used again: on failure the link is given up.
    pub(crate) async fn start_tls(
        &mut self,
        net: &Net,
        tls: &TlsSource,
    ) -> Result<(), HandshakeError> {
        let Some(Stream::Plain(tcp)) = self.stream.take() else {
            return Err(HandshakeError::Failed(io::ErrorKind::NotConnected.into()));
        };
        let stream = net.handshake(tls, tcp).await?;
        self.stream = Some(Stream::Tls(Box::new(stream)));
        Ok(())
    }

    /// The plain socket, taken out for a TLS handshake (ours as a client, or STARTTLS).
    pub(crate) fn take_plain(&mut self) -> Option<TcpStream> {
        match self.stream.take() {
            Some(Stream::Plain(tcp)) => Some(tcp),
            other => {
                self.stream = other;
                None
            }
        }
    }

    /// The stream after a handshake done elsewhere (outbound STARTTLS).
    pub(crate) fn set_stream(&mut self, stream: Stream) {
        self.stream = Some(stream);
    }
}
