//! Readiness, and the gauges read from elsewhere when `/metrics` is scraped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::context::Context;

/// How long readiness waits for the store to answer a read.
const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness needs that the `Context` does not hold: whether every listener is
/// bound, and whether the server is draining.
#[derive(Debug)]
pub struct Health {
    bound: AtomicBool,
    draining: CancellationToken,
}

impl Health {
    /// `draining` is the server's shutdown token: once cancelled, the node takes no new
    /// connections and must not be sent any.
    pub fn new(draining: CancellationToken) -> Self {
        Health {
            bound: AtomicBool::new(false),
            draining,
        }
    }

    /// Every configured IMAP and SMTP listener is bound.
    pub fn listeners_bound(&self) {
        self.bound.store(true, Ordering::Release);
    }

    /// Ready for traffic, or the reasons not: draining, listeners not yet bound, the
    /// store not answering a read, or PSC token validation impossible (local validation
    /// with no signing keys held and the last fetch failed; keys fetched once are kept
    /// through a PSC outage, so an outage alone does not make a node unready).
    pub async fn check(&self, context: &Context) -> Result<(), Vec<&'static str>> {
        let mut why = Vec::new();
        if self.draining.is_cancelled() {
            why.push("draining");
        }
        if !self.bound.load(Ordering::Acquire) {
            why.push("listeners not bound");
        }
        match tokio::time::timeout(STORE_PROBE_TIMEOUT, context.store.access_epoch()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "readiness: the store does not answer");
                why.push("store unreachable");
            }
            Err(_) => why.push("store unreachable"),
        }
        if context.auth.psc().keys_unavailable() {
            why.push("PSC signing keys unavailable");
        }
        if why.is_empty() { Ok(()) } else { Err(why) }
    }
}

/// Sets the gauges whose values live elsewhere: queue depth and oldest age, PSC key age,
/// CRL age and freshness, server certificate expiry, readiness.
pub(super) async fn refresh_gauges(context: &Context, ready: bool) {
    let m = &context.metrics;
    let now = context.clock.now();
    m.ready.set(i64::from(ready));
    match context.store.queue_len().await {
        Ok(n) => {
            m.queue_depth.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue length"),
    }
    match context.store.queue_oldest().await {
        Ok(oldest) => {
            let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1e3);
            m.queue_oldest_age_seconds.set(age);
        }
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read the queue's oldest message"),
    }
    m.psc_keys_age_seconds.set(
        context
            .auth
            .psc()
            .keys_age()
            .map_or(-1.0, |age| age.as_secs_f64()),
    );
    if let Some(next) = context.tls.crls().next_update() {
        m.crl_next_update_seconds
            .get_or_create(&[])
            .set((next - now).num_milliseconds() as f64 / 1e3);
    }
    if let Some(fetched) = context.tls.crls_fetched_at() {
        m.crl_age_seconds
            .get_or_create(&[])
            .set((now - fetched).num_milliseconds().max(0) as f64 / 1e3);
    }
    match certificate_not_after(&context.config.tls.certificate) {
        Some(not_after) => {
            m.certificate_expiry_days
                .get_or_create(&[])
                .set((not_after - now.timestamp()) as f64 / 86_400.0);
        }
        None => tracing::warn!("metrics: cannot read the server certificate's expiry"),
    }
}

/// The notAfter (Unix time) of the first certificate in the PEM file the listeners load
/// (and reload on SIGHUP).
fn certificate_not_after(path: &std::path::Path) -> Option<i64> {
    let chain = crate::tls::load_certificates(path).ok()?;
    let first = chain.first()?;
    let (_, cert) = x509_parser::parse_x509_certificate(first).ok()?;
    Some(cert.validity().not_after.timestamp())
}
