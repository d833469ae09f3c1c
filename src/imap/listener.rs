//! Accepting connections: the `[imap]` listeners through `crate::net`, which applies the
//! connection limits and runs the TLS handshake; then one session per connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::Instrument;

use super::Shared;
use super::connection::Connection;
use super::session::{self, Session};
use super::text;
use crate::context::Context;
use crate::net::{Stop, Stream};

/// The addresses the IMAP listeners are bound to (port 0 in the configuration becomes
/// the port the system chose).
#[derive(Debug, Clone, Default)]
pub struct Listening {
    pub tls: Vec<SocketAddr>,
    pub starttls: Vec<SocketAddr>,
}

/// Binds the `[imap]` listeners and starts accepting on `stop.tasks`; returns the bound
/// addresses.
pub(crate) async fn start(context: &Context, stop: &Stop) -> anyhow::Result<Listening> {
    let shared = Arc::new(Shared {
        context: context.clone(),
        shutdown: stop.shutdown.clone(),
    });
    let mut listening = Listening::default();
    for (addrs, implicit, name, out) in [
        (&context.config.imap.tls, true, "tls", &mut listening.tls),
        (
            &context.config.imap.starttls,
            false,
            "starttls",
            &mut listening.starttls,
        ),
    ] {
        for addr in addrs {
            let shared = shared.clone();
            let bound = crate::net::listen(*addr, "IMAP", name, stop, move |tcp, peer| {
                let span = tracing::info_span!("imap", %peer, tls = implicit);
                handle(tcp, peer, implicit, shared.clone()).instrument(span)
            })
            .await?;
            out.push(bound);
        }
    }
    Ok(listening)
}

async fn handle(tcp: TcpStream, peer: SocketAddr, implicit_tls: bool, shared: Arc<Shared>) {
    let context = &shared.context;
    // Counted before the handshake, which is the expensive part; told after it, when
    // the client can read a `* BYE`.
    let admission = context.net.admit(peer.ip());
    let stream = if implicit_tls {
        match context.net.handshake(&context.tls, tcp).await {
            Ok(s) => Stream::Tls(Box::new(s)),
            Err(e) => return session::audit_handshake(&shared, peer, e).await,
        }
    } else {
        Stream::Plain(tcp)
    };
    let mut conn = Connection::new(
        context.net.link(stream),
        context.config.imap.max_line_length.as_usize(),
        context.config.imap.max_literal_size.as_usize(),
    );
    let admission = match admission {
        Ok(a) => a,
        Err(refused) => {
            tracing::info!(%refused, "connection refused");
            let _ = conn.send(&text::bye(&refused.to_string())).await;
            conn.close().await;
            let (store, clock) = (&context.store, context.clock.as_ref());
            crate::net::audit_refusal(store, clock, "imap", peer, None, refused).await;
            return;
        }
    };
    let session = Session::new(shared.clone(), conn, peer, implicit_tls, admission);
    Box::pin(session.run()).await;
}

/// One session over an in-memory stream, for the fuzz targets: the connection limits,
/// connection layer and session of a real listener, without the socket. `tls` says
/// whether the stream stands for a TLS connection (no client certificate).
#[cfg(feature = "fuzzing")]
pub(crate) async fn serve_memory(
    context: &Context,
    stream: tokio::io::DuplexStream,
    peer: SocketAddr,
    tls: bool,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let shared = Arc::new(Shared {
        context: context.clone(),
        shutdown,
    });
    let config = &shared.context.config;
    let conn = Connection::new(
        shared.context.net.link(Stream::Memory(stream)),
        config.imap.max_line_length.as_usize(),
        config.imap.max_literal_size.as_usize(),
    );
    let Ok(admission) = shared.context.net.admit(peer.ip()) else {
        return;
    };
    let session = Session::new(shared.clone(), conn, peer, tls, admission);
    Box::pin(session.run()).await;
}
