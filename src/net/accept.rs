//! Listening and accepting, and the drain at shutdown.
//!
//! A `CancellationToken` (`shutdown`) tells every listener to stop accepting and every
//! session to finish; a `TaskTracker` tells when the last connection has drained.
//! Draining has a deadline (`[session] shutdown_timeout`): a peer that stops reading
//! must not keep the process from stopping, so the connections still open then are
//! dropped (`abort`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// Where a listener's connections end: `shutdown` stops accepting, each connection is a
/// task on `tasks`, and `abort` drops those still open at the deadline.
#[derive(Debug, Clone)]
pub(crate) struct Stop {
    pub(crate) shutdown: CancellationToken,
    pub(crate) abort: CancellationToken,
    pub(crate) tasks: TaskTracker,
    /// Where each listener counts its open connections.
    pub(crate) metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
#[error("binding {protocol} listener {name} {addr}")]
pub(crate) struct BindError {
    protocol: &'static str,
    name: &'static str,
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` and accepts on it until `stop.shutdown`, each connection served by
/// `serve` as its own task; returns the bound address (port 0 resolved).
pub(crate) async fn listen<F, Fut>(
    addr: SocketAddr,
    protocol: &'static str,
    name: &'static str,
    stop: &Stop,
    serve: F,
) -> Result<SocketAddr, BindError>
where
    F: FnMut(TcpStream, SocketAddr) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let bind_error = |source| BindError {
        protocol,
        name,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%bound, protocol, listener = name, "listening");
    stop.tasks
        .spawn(accept_loop(listener, protocol, name, stop.clone(), serve));
    Ok(bound)
}

/// Accepts connections until `shutdown`, each served as its own task on `tasks`, which
/// ends as soon as `abort` fires whatever it is waiting for. An accept error (out of file
/// descriptors and the like) pauses the loop rather than spin on it.
async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    name: &'static str,
    stop: Stop,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            _ = stop.shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((tcp, peer)) => {
                let _ = tcp.set_nodelay(true);
                let connection = serve(tcp, peer);
                let abort = stop.abort.clone();
                let open = stop.metrics.connection(protocol, name);
                stop.tasks.spawn(async move {
                    let _open = open;
                    tokio::select! {
                        _ = connection => {}
                        _ = abort.cancelled() => {
                            tracing::info!(%peer, protocol, "connection dropped at the shutdown deadline");
                        }
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, protocol, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Stops accepting, asks every connection to finish, and waits for them until `grace`;
/// then drops the connections still open and waits as long again for the rest (jobs
/// finishing a store write), after which it gives up: stopping must not depend on any
/// peer.
pub(crate) async fn drain(stop: &Stop, grace: Duration) {
    stop.shutdown.cancel();
    stop.tasks.close();
    if tokio::time::timeout(grace, stop.tasks.wait()).await.is_ok() {
        return;
    }
    tracing::warn!(
        open = stop.tasks.len(),
        "shutdown deadline reached: dropping the connections still open"
    );
    stop.abort.cancel();
    if tokio::time::timeout(grace, stop.tasks.wait())
        .await
        .is_err()
    {
        tracing::error!(
            open = stop.tasks.len(),
            "tasks still running after the shutdown deadline; stopping without them"
        );
    }
}
