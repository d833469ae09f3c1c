//! Accepting connections: bind every configured address, apply the connection limits of
//! `crate::net`, and run one session task per connection on the server's task tracker.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::connection::{Connection, Stream};
use super::session::{self, Session};
use super::text;
use crate::auth::Authenticator;
use crate::server::{Context, accept_loop};

/// The addresses the IMAP listeners are bound to (port 0 in the configuration becomes
/// the port the system chose).
#[derive(Debug, Clone, Default)]
pub struct Listening {
    pub tls: Vec<SocketAddr>,
    pub starttls: Vec<SocketAddr>,
}

/// What every IMAP session shares.
pub(crate) struct Shared {
    pub(crate) context: Context,
    pub(crate) auth: Authenticator,
    pub(crate) shutdown: CancellationToken,
}

/// Binds the `[imap]` listeners and starts accepting on `tasks`; returns the bound
/// addresses.
pub async fn start(
    context: &Context,
    auth: Authenticator,
    shutdown: CancellationToken,
    tasks: &TaskTracker,
) -> anyhow::Result<Listening> {
    let shared = Arc::new(Shared {
        context: context.clone(),
        auth,
        shutdown,
    });
    let mut listening = Listening::default();
    for (addrs, implicit, out) in [
        (&context.config.imap.tls, true, &mut listening.tls),
        (
            &context.config.imap.starttls,
            false,
            &mut listening.starttls,
        ),
    ] {
        for addr in addrs {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding IMAP listener {addr}"))?;
            let bound = listener.local_addr()?;
            out.push(bound);
            tracing::info!(%bound, implicit_tls = implicit, "IMAP listening");
            let shared = shared.clone();
            tasks.spawn(accept_loop(
                listener,
                "IMAP",
                shared.shutdown.clone(),
                shared.context.abort.clone(),
                tasks.clone(),
                move |tcp, peer| {
                    let span = tracing::info_span!("imap", %peer, tls = implicit);
                    handle(tcp, peer, implicit, shared.clone()).instrument(span)
                },
            ));
        }
    }
    Ok(listening)
}

async fn handle(tcp: TcpStream, peer: SocketAddr, implicit_tls: bool, shared: Arc<Shared>) {
    let config = &shared.context.config;
    let admission = shared.context.net.admit(peer.ip());
    let stream = if implicit_tls {
        match session::handshake(&shared, tcp, peer).await {
            Some(s) => Stream::Tls(Box::new(s)),
            None => return,
        }
    } else {
        Stream::Plain(tcp)
    };
    let mut conn = Connection::new(
        stream,
        config.imap.max_line_length.as_usize(),
        config.imap.max_literal_size.as_usize(),
        config.session.write_timeout.0,
    );
    let admission = match admission {
        Ok(a) => a,
        Err(refused) => {
            tracing::info!(%refused, "connection refused");
            let _ = conn.send(&text::bye(&refused.to_string())).await;
            conn.close().await;
            crate::net::audit_refusal(&shared.context, "imap", peer, None, refused).await;
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
    shutdown: CancellationToken,
) {
    let shared = Arc::new(Shared {
        context: context.clone(),
        auth: context.auth.clone(),
        shutdown,
    });
    let config = &shared.context.config;
    let conn = Connection::new(
        Stream::Memory(stream),
        config.imap.max_line_length.as_usize(),
        config.imap.max_literal_size.as_usize(),
        config.session.write_timeout.0,
    );
    let Ok(admission) = shared.context.net.admit(peer.ip()) else {
        return;
    };
    let session = Session::new(shared.clone(), conn, peer, tls, admission);
    Box::pin(session.run()).await;
}
