//! The admin HTTP listener (`[admin] listen`): `/metrics` for Prometheus, and
//! `/health/live` and `/health/ready` for whatever decides whether this node gets
//! traffic (a load balancer, an orchestrator, a monitoring probe).
//!
//! HTTP/1.1 through `crate::web` (hyper, which the PSC client already brings): three
//! read-only routes need no framework. On a loopback address it is plain HTTP; elsewhere
//! TLS with a client certificate required (`AdminConfig`).
//!
//! The admin listener keeps answering while the server drains, so that readiness can be
//! seen to turn false; it stops after the drain (`Running::stop`).

mod health;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::Context;
use crate::web::text;

pub use health::Health;

/// Connections the admin listener serves at once: a scraper and a probe or two.
const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Bind(#[from] crate::web::BindError),
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
    let shared = Arc::new(Shared {
        context: context.clone(),
        health,
    });
    let uses_tls = tls.is_some();
    let bound = crate::web::serve(
        addr,
        "admin",
        tls,
        MAX_CONNECTIONS,
        stop,
        tasks,
        move |req| {
            let shared = shared.clone();
            async move { route(&shared, &req).await }
        },
    )
    .await?;
    tracing::info!(%bound, tls = uses_tls, "admin listener: /metrics, /health/live, /health/ready");
    Ok(Some(bound))
}

struct Shared {
    context: Context,
    health: Arc<Health>,
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
                format!("not ready: {}\n", why.join(", ")),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

async fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let ready = shared.health.check(&shared.context).await.is_ok();
    health::refresh_gauges(&shared.context, ready).await;
    match shared.context.metrics.render() {
        Ok(body) => crate::web::response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            text(StatusCode::INTERNAL_SERVER_ERROR, "cannot render metrics\n")
        }
    }
}
/// TLS with the server's certificate in force (reloaded on SIGHUP), a client
/// certificate from `admin.client_ca` required.
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
    let in_force = crate::tls::CertificateInForce(context.tls.clone());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(in_force));
    Ok(TlsAcceptor::from(Arc::new(config)))
}
