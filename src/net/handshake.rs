//! The server side of a TLS handshake, at accept (implicit TLS) or after STARTTLS: one
//! time limit, `[session] handshake_timeout`, and one reading of its failures for every
//! protocol. The peer address is not known to rustls, so a refused client certificate
//! comes back as its audit reason for the protocol to record with the address.

use std::io;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::Net;
use crate::tls::TlsSource;

/// An accepted TLS connection.
pub(crate) type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

/// Why there is no TLS connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    /// rustls refused the client's certificate: "client certificate refused: <reason>",
    /// the audit trail's wording.
    #[error("{0}")]
    Refused(String),
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
    #[error("TLS handshake timed out")]
    TimedOut,
}

impl Net {
    /// Runs the handshake on `tcp` with the configuration current now (a SIGHUP reload
    /// applies to the next connection), within `[session] handshake_timeout`: a peer
    /// that connects and says nothing holds one of its address's scarce unauthenticated
    /// slots.
    pub(crate) async fn handshake(
        &self,
        tls: &TlsSource,
        tcp: TcpStream,
    ) -> Result<ServerTls, HandshakeError> {
        let acceptor = TlsAcceptor::from(tls.current());
        let limit = self.settings.handshake_timeout;
        let error = match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => match crate::tls::handshake_refusal(&e) {
                Some(refusal) => HandshakeError::Refused(crate::tls::refusal_reason(&refusal)),
                None => HandshakeError::Failed(e),
            },
            Err(_) => HandshakeError::TimedOut,
        };
        tracing::info!(%error, "no TLS connection");
        Err(error)
    }
}
