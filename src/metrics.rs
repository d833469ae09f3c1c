//! What the server counts for its operator's Prometheus: one `Metrics` per process, built
//! by `server::start`, handed to every part through the `Context` (never a global, so
//! two servers in one test process count apart) and rendered by `admin` on `/metrics`.
//!
//! The crate is `prometheus-client`, the Prometheus project's own Rust client: metrics
//! live in a `Registry` value we own (no process-wide default registry, unlike the
//! `prometheus` crate or the `metrics` facade's global recorder), label sets are typed,
//! and it writes the OpenMetrics text format that Prometheus scrapes natively. Label
//! values are all `&'static str` from fixed sets, so no client can grow a family.
//!
//! Values that already live elsewhere (queue depth, certificate and CRL dates, PSC key
//! age) are not mirrored here on every change: `admin` reads them and sets the gauges
//! below when it is scraped.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels<const N: usize> = [(&'static str, &'static str); N];

/// Every metric of one server process.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Connections open now, by protocol (`IMAP`, `SMTP`) and listener (`tls`,
    /// `starttls`, `submission_tls`, `inbound`…).
    pub connections_open: Family<Labels<2>, Gauge>,
    /// Connections accepted since start, same labels.
    pub connections_accepted: Family<Labels<2>, Counter>,
    /// Sessions open now that have authenticated, same labels: a connection counts in
    /// `connections_open` from accept, here only from its successful AUTHENTICATE
    /// until it closes (or, for IMAP, logs out).
    pub sessions_authenticated: Family<Labels<2>, Gauge>,
    /// SASL attempts by protocol, mechanism, outcome (`success`, `failure`,
    /// `temporary`) and reason (one of `auth::REFUSAL_REASONS`).
    pub authentications: Family<Labels<4>, Counter>,
    /// Time to validate a PSC token, cache hits included.
    pub psc_validation_seconds: Histogram,
    /// PSC validations answered from the cache (`hit`) or not (`miss`).
    pub psc_cache: Family<Labels<1>, Counter>,
    /// Failed fetches from PSC by endpoint (`discovery`, `jwks`, `introspection`).
    pub psc_fetch_failures: Family<Labels<1>, Counter>,
    /// Age of the PSC signing keys in use (set at scrape; absent keys: -1).
    pub psc_keys_age_seconds: Gauge<f64, AtomicU64>,
    /// Messages an SMTP session answered `250` for, by interface (`submission`,
    /// `inbound`).
    pub messages_accepted: Family<Labels<1>, Counter>,
    /// Messages an IMAP APPEND stored.
    pub messages_appended: Counter,
    /// Copies filed in a local INBOX by SMTP (one per local recipient).
    pub messages_delivered_locally: Counter,
    /// Recipients another operator's server accepted (its `250`).
    pub messages_relayed: Counter,
    /// Recipients whose delivery attempt failed temporarily and will be retried.
    pub messages_deferred: Counter,
    /// Recipients given up on (a failure notice goes to the sender when asked for).
    pub messages_bounced: Counter,
    /// Messages waiting in the outbound queue (set at scrape).
    pub queue_depth: Gauge,
    /// Age of the oldest queued message, 0 when the queue is empty (set at scrape).
    pub queue_oldest_age_seconds: Gauge<f64, AtomicU64>,
    /// Time from a store transaction's start to its durable commit.
    pub store_commit_seconds: Histogram,
    /// Writes grouped in one store transaction.
    pub store_commit_batch_size: Histogram,
    /// Lifecycle runs by outcome (`applied`, `busy`, `failed`).
    pub lifecycle_runs: Family<Labels<1>, Counter>,
    /// Mailboxes the lifecycle runs acted on, by action (`published`, `unpublished`,
    /// `warned`, `deleted`, `failed`).
    pub lifecycle_mailboxes: Family<Labels<1>, Counter>,
    /// Seconds until the earliest nextUpdate of the CRLs in force (negative: stale;
    /// absent without CRLs; set at scrape).
    pub crl_next_update_seconds: Family<Labels<0>, Gauge<f64, AtomicU64>>,
    /// Seconds since the oldest CRL in force was fetched (absent without CRLs; set at
    /// scrape).
    pub crl_age_seconds: Family<Labels<0>, Gauge<f64, AtomicU64>>,
    /// Domains and certificates in the trust list in force.
    pub trust_domains: Gauge,
    pub trust_certificates: Gauge,
    /// When the trust list in force was loaded (Unix time; age = time() - this).
    pub trust_loaded_timestamp_seconds: Gauge,
    /// Days until the server certificate on disk expires (set at scrape).
    pub certificate_expiry_days: Family<Labels<0>, Gauge<f64, AtomicU64>>,
    /// 1 when `/health/ready` would answer 200 (set at scrape).
    pub ready: Gauge,
}

/// Latency buckets from 100 µs to about 6.5 s, by doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mssante");
        let m = Metrics {
            registry: Registry::default(),
            connections_open: Family::default(),
            connections_accepted: Family::default(),
            sessions_authenticated: Family::default(),
            authentications: Family::default(),
            psc_validation_seconds: latency(),
            psc_cache: Family::default(),
            psc_fetch_failures: Family::default(),
            psc_keys_age_seconds: Gauge::default(),
            messages_accepted: Family::default(),
            messages_appended: Counter::default(),
            messages_delivered_locally: Counter::default(),
            messages_relayed: Counter::default(),
            messages_deferred: Counter::default(),
            messages_bounced: Counter::default(),
            queue_depth: Gauge::default(),
            queue_oldest_age_seconds: Gauge::default(),
            store_commit_seconds: latency(),
            store_commit_batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            lifecycle_runs: Family::default(),
            lifecycle_mailboxes: Family::default(),
            crl_next_update_seconds: Family::default(),
            crl_age_seconds: Family::default(),
            trust_domains: Gauge::default(),
            trust_certificates: Gauge::default(),
            trust_loaded_timestamp_seconds: Gauge::default(),
            certificate_expiry_days: Family::default(),
            ready: Gauge::default(),
        };
        let r = &mut registry;
        r.register(
            "connections_open",
            "Connections open now",
            m.connections_open.clone(),
        );
        r.register(
            "connections_accepted",
            "Connections accepted since start",
            m.connections_accepted.clone(),
        );
        r.register(
            "sessions_authenticated",
            "Authenticated sessions open now",
            m.sessions_authenticated.clone(),
        );
        r.register(
            "authentications",
            "SASL authentication attempts",
            m.authentications.clone(),
        );
        r.register(
            "psc_validation_seconds",
            "Time to validate a PSC access token",
            m.psc_validation_seconds.clone(),
        );
        r.register(
            "psc_cache",
            "PSC validations answered from the cache or not",
            m.psc_cache.clone(),
        );
        r.register(
            "psc_fetch_failures",
            "Failed requests to PSC",
            m.psc_fetch_failures.clone(),
        );
        r.register(
            "psc_keys_age_seconds",
            "Age of the PSC signing keys in use (-1: none yet)",
            m.psc_keys_age_seconds.clone(),
        );
        r.register(
            "messages_accepted",
            "Messages accepted by SMTP",
            m.messages_accepted.clone(),
        );
        r.register(
            "messages_appended",
            "Messages stored by IMAP APPEND",
            m.messages_appended.clone(),
        );
        r.register(
            "messages_delivered_locally",
            "Copies filed in local inboxes by SMTP",
            m.messages_delivered_locally.clone(),
        );
        r.register(
            "messages_relayed",
            "Recipients accepted by another operator's server",
            m.messages_relayed.clone(),
        );
        r.register(
            "messages_deferred",
            "Recipients whose delivery will be retried",
            m.messages_deferred.clone(),
        );
        r.register(
            "messages_bounced",
            "Recipients given up on",
            m.messages_bounced.clone(),
        );
        r.register(
            "queue_depth",
            "Messages in the outbound queue",
            m.queue_depth.clone(),
        );
        r.register(
            "queue_oldest_age_seconds",
            "Age of the oldest message in the outbound queue",
            m.queue_oldest_age_seconds.clone(),
        );
        r.register(
            "store_commit_seconds",
            "Time from a store transaction's start to its durable commit",
            m.store_commit_seconds.clone(),
        );
        r.register(
            "store_commit_batch_size",
            "Writes grouped in one store transaction",
            m.store_commit_batch_size.clone(),
        );
        r.register(
            "lifecycle_runs",
            "Runs of the lifecycle jobs",
            m.lifecycle_runs.clone(),
        );
        r.register(
            "lifecycle_mailboxes",
            "Mailboxes the lifecycle jobs acted on",
            m.lifecycle_mailboxes.clone(),
        );
        r.register(
            "crl_next_update_seconds",
            "Seconds until the earliest nextUpdate of the CRLs in force",
            m.crl_next_update_seconds.clone(),
        );
        r.register(
            "crl_age_seconds",
            "Seconds since the oldest CRL in force was fetched",
            m.crl_age_seconds.clone(),
        );
        r.register(
            "trust_domains",
            "Operator domains in the trust list in force",
            m.trust_domains.clone(),
        );
        r.register(
            "trust_certificates",
            "Operator certificates in the trust list in force",
            m.trust_certificates.clone(),
        );
        r.register(
            "trust_loaded_timestamp_seconds",
            "When the trust list in force was loaded (Unix time)",
            m.trust_loaded_timestamp_seconds.clone(),
        );
        r.register(
            "certificate_expiry_days",
            "Days until the server certificate expires",
            m.certificate_expiry_days.clone(),
        );
        r.register(
            "ready",
            "1 when the server is ready for traffic",
            m.ready.clone(),
        );
        // The endpoints are a fixed set: each starts at zero, so an alert on the
        // failure rate has a series before the first failure.
        for endpoint in ["discovery", "jwks", "introspection"] {
            drop(
                m.psc_fetch_failures
                    .get_or_create(&[("endpoint", endpoint)]),
            );
        }
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Counts one opened connection until the returned guard is dropped.
    pub fn connection(
        self: &std::sync::Arc<Self>,
        protocol: &'static str,
        listener: &'static str,
    ) -> ConnectionGuard {
        let labels = [("protocol", protocol), ("listener", listener)];
        self.connections_accepted.get_or_create(&labels).inc();
        self.connections_open.get_or_create(&labels).inc();
        ConnectionGuard {
            metrics: self.clone(),
            labels,
            family: Open::Connections,
        }
    }

    /// Counts one authenticated session until the returned guard is dropped.
    pub fn session(
        self: &std::sync::Arc<Self>,
        protocol: &'static str,
        listener: &'static str,
    ) -> ConnectionGuard {
        let labels = [("protocol", protocol), ("listener", listener)];
        self.sessions_authenticated.get_or_create(&labels).inc();
        ConnectionGuard {
            metrics: self.clone(),
            labels,
            family: Open::Sessions,
        }
    }

    /// Records one SASL attempt.
    pub fn authentication(
        &self,
        protocol: &'static str,
        mechanism: &'static str,
        outcome: &'static str,
        reason: &'static str,
    ) {
        self.authentications
            .get_or_create(&[
                ("protocol", protocol),
                ("mechanism", mechanism),
                ("outcome", outcome),
                ("reason", reason),
            ])
            .inc();
    }

    /// A trust list of `domains` and `certificates` put in force at `at`.
    pub fn trust_list(
        &self,
        domains: usize,
        certificates: usize,
        at: chrono::DateTime<chrono::Utc>,
    ) {
        self.trust_domains
            .set(i64::try_from(domains).unwrap_or(i64::MAX));
        self.trust_certificates
            .set(i64::try_from(certificates).unwrap_or(i64::MAX));
        self.trust_loaded_timestamp_seconds.set(at.timestamp());
    }

    /// Records one store commit of `batch` writes that took `took`.
    pub fn store_commit(&self, took: Duration, batch: usize) {
        self.store_commit_seconds.observe(took.as_secs_f64());
        self.store_commit_batch_size.observe(batch as f64);
    }
}

/// Which gauge a `ConnectionGuard` holds one of.
#[derive(Debug, Clone, Copy)]
enum Open {
    Connections,
    Sessions,
}

/// One open connection in `connections_open`, or one authenticated session in
/// `sessions_authenticated`.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: std::sync::Arc<Metrics>,
    labels: Labels<2>,
    family: Open,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let family = match self.family {
            Open::Connections => &self.metrics.connections_open,
            Open::Sessions => &self.metrics.sessions_authenticated,
        };
        family.get_or_create(&self.labels).dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_counted_while_open() {
        let m = std::sync::Arc::new(Metrics::new());
        let guard = m.connection("IMAP", "tls");
        let session = m.session("IMAP", "tls");
        m.authentication("imap", "XOAUTH2", "failure", "token_expired");
        let text = m.render().unwrap();
        assert!(
            text.contains("mssante_connections_open{protocol=\"IMAP\",listener=\"tls\"} 1"),
            "{text}"
        );
        assert!(text.contains("reason=\"token_expired\"} 1"), "{text}");
        assert!(
            text.contains("mssante_sessions_authenticated{protocol=\"IMAP\",listener=\"tls\"} 1"),
            "{text}"
        );
        drop(session);
        drop(guard);
        let text = m.render().unwrap();
        assert!(
            text.contains("mssante_sessions_authenticated{protocol=\"IMAP\",listener=\"tls\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mssante_connections_open{protocol=\"IMAP\",listener=\"tls\"} 0"),
            "{text}"
        );
        assert!(
            text.contains(
                "mssante_connections_accepted_total{protocol=\"IMAP\",listener=\"tls\"} 1"
            )
        );
    }
}
