//! The admin HTTP listener (`[admin] listen`): `/metrics` for Prometheus, and
//! `/health/live` and `/health/ready` for whatever decides whether this node gets
//! traffic (a load balancer, systemd's watchdog, an orchestrator).
//!
//! HTTP/1.1 on `hyper`, which the PSC client (reqwest) already brings: three read-only
//! routes need no framework. On a loopback address it is plain HTTP; elsewhere TLS with a
//! client certificate required (`AdminConfig`).
//!
//! The admin listener keeps answering while the server drains, so that readiness can be
//! seen to turn false; it stops after the drain (`Running::stop`).

mod health;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;

pub use health::Health;

/// Connections the admin listener serves at once: a scraper and a probe or two.
const MAX_CONNECTIONS: usize = 16;

/// Longest wait for a request's headers: a silent client does not hold a slot.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("binding the admin listener {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin listener TLS: {0}")]
    Tls(String),
}

/// Binds `[admin] listen` (if set) and serves until `stop`; returns the bound address.
pub async fn start(
    context: &Context,
    health: Arc<Health>,
    stop: CancellationToken,
    tasks: &TaskTracker,
) -> Result<Option<SocketAddr>, AdminError> {
    let Some(addr) = context.config.admin.listen else {
        return Ok(None);
    };
    let tls = if context.config.admin.uses_tls() {
        Some(acceptor(context)?)
    } else {
        None
    };
    let bind_error = |source| AdminError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%bound, tls = tls.is_some(), "admin listener: /metrics, /health/live, /health/ready");
    let shared = Arc::new(Shared {
        context: context.clone(),
        health,
    });
    let connections = tasks.clone();
    tasks.spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let (tcp, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                tracing::warn!(%peer, "admin listener busy: connection closed");
                continue;
            };
            let (shared, tls, stop) = (shared.clone(), tls.clone(), stop.clone());
            connections.spawn(async move {
                tokio::select! {
                    _ = serve_connection(tcp, peer, tls, shared) => {}
                    _ = stop.cancelled() => {}
                }
                drop(slot);
            });
        }
    });
    Ok(Some(bound))
}

struct Shared {
    context: Context,
    health: Arc<Health>,
}

async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let service = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(route(&shared, &req).await) }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true);
    let served = match tls {
        None => http.serve_connection(TokioIo::new(tcp), service).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(tcp)).await;
            match handshake {
                Ok(Ok(stream)) => http.serve_connection(TokioIo::new(stream), service).await,
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %e, "admin TLS handshake refused");
                    return;
                }
                Err(_) => return,
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(%peer, error = %e, "admin connection ended with an error");
    }
}

async fn route(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/metrics" => metrics(shared).await,
        "/health/live" => text(StatusCode::OK, "live\n"),
        "/health/ready" => match shared.health.check(&shared.context).await {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("not ready: {}\n", why.join(", ")),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let ready = shared.health.check(&shared.context).await.is_ok();
    health::refresh_gauges(&shared.context, ready).await;
    match shared.context.metrics.render() {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            if let Ok(v) = hyper::header::HeaderValue::from_str(
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ) {
                response
                    .headers_mut()
                    .insert(hyper::header::CONTENT_TYPE, v);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n")
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// TLS with the server's certificate, a client certificate from `admin.client_ca`
/// required.
fn acceptor(context: &Context) -> Result<TlsAcceptor, AdminError> {
    let err = |e: &dyn std::fmt::Display| AdminError::Tls(e.to_string());
    let provider = crate::tls::provider();
    let roots = crate::tls::root_store(&context.config.admin.client_ca).map_err(|e| err(&e))?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| err(&e))?;
    let certs =
        crate::tls::load_certificates(&context.config.tls.certificate).map_err(|e| err(&e))?;
    let key = crate::tls::load_private_key(&context.config.tls.private_key).map_err(|e| err(&e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| err(&e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
