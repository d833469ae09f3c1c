//! The small HTTP/1.1 listener behind the admin endpoints and client autoconfiguration:
//! hyper (already in the tree through the PSC client), a handful of connections at once,
//! bounded header time, optional TLS, and a stop token of its own.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for a request's headers or a TLS handshake: a silent client does not
/// hold a slot.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("binding the {name} listener {addr}: {source}")]
pub struct BindError {
    name: &'static str,
    addr: SocketAddr,
    #[source]
    source: std::io::Error,
}

/// Binds `addr` and answers each request with `handle` until `stop`; at most
/// `max_connections` at once (more are closed at accept). Returns the bound address.
pub async fn serve<H, F>(
    addr: SocketAddr,
    name: &'static str,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    stop: CancellationToken,
    tasks: &TaskTracker,
    handle: H,
) -> Result<SocketAddr, BindError>
where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let bind_error = |source| BindError { name, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let handle = Arc::new(handle);
    let connections = tasks.clone();
    tasks.spawn(async move {
        let slots = Arc::new(Semaphore::new(max_connections));
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, listener = name, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, listener = name, "busy: connection closed");
                continue;
            };
            let (handle, tls, stop) = (handle.clone(), tls.clone(), stop.clone());
            connections.spawn(async move {
                tokio::select! {
                    _ = connection(tcp, peer, name, tls, handle) => {}
                    _ = stop.cancelled() => {}
                }
                drop(slot);
            });
        }
    });
    Ok(bound)
}

async fn connection<H, F>(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    name: &'static str,
    tls: Option<TlsAcceptor>,
    handle: Arc<H>,
) where
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let response = handle(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let served = match tls {
        None => http.serve_connection(TokioIo::new(tcp), service).await,
        Some(acceptor) => match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
            Ok(Err(e)) => {
                tracing::info!(%peer, listener = name, error = %e, "TLS handshake refused");
                return;
            }
            Err(_) => return,
        },
    };
    if let Err(e) = served {
        tracing::debug!(%peer, listener = name, error = %e, "connection ended with an error");
    }
}

/// A response of `status` with a body of `content_type`.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", body)
}

/// The request's body, or None past `limit` bytes or on a read error.
pub async fn body(req: Request<Incoming>, limit: usize) -> Option<Bytes> {
    Limited::new(req.into_body(), limit)
        .collect()
        .await
        .ok()
        .map(|b| b.to_bytes())
}
