//! The byte stream under a connection: TCP, TLS on either side, or (for the fuzz
//! targets) an in-memory pipe. One type for IMAP, SMTP and the outbound SMTP client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A plain or TLS stream, either side.
pub(crate) enum Stream {
    Plain(TcpStream),
    /// Accepted by us: implicit TLS, or after STARTTLS.
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Opened by us (outbound SMTP).
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// An in-memory pipe in place of the socket (the fuzz targets' sessions).
    #[cfg(feature = "fuzzing")]
    Memory(tokio::io::DuplexStream),
}

impl Stream {
    /// The server side of an accepted TLS connection: the client certificate is there.
    pub(crate) fn tls_connection(&self) -> Option<&rustls::ServerConnection> {
        match self {
            Stream::Tls(s) => Some(s.get_ref().1),
            _ => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            #[cfg(feature = "fuzzing")]
            Stream::Memory(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            #[cfg(feature = "fuzzing")]
            Stream::Memory(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
            #[cfg(feature = "fuzzing")]
            Stream::Memory(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            #[cfg(feature = "fuzzing")]
            Stream::Memory(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
