//! What every connection and job of one server process shares, built once by
//! `server::start` (or the fuzz harness) and cloned into each listener and task.

use std::sync::Arc;

use crate::auth::{AccessEpoch, Authenticator};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::net::Net;
use crate::store::Store;
use crate::tls::TlsSource;

/// What every connection and job shares.
#[derive(Clone, Debug)]
pub struct Context {
    pub config: Arc<Config>,
    pub store: Store,
    pub clock: SharedClock,
    /// TLS configuration for each accepted connection (`tls.current()`), reloaded on SIGHUP.
    pub tls: Arc<TlsSource>,
    /// PSC tokens and certificates for every protocol's SASL.
    pub auth: Authenticator,
    /// The store's access counter, watched for every open session at once.
    pub access_epoch: AccessEpoch,
    /// Connection caps, the TLS handshake, bounded writes and the
    /// authentication-failure policy, shared by every listener.
    pub net: Arc<Net>,
    /// What `/metrics` shows, counted by every part of this process.
    pub metrics: Arc<Metrics>,
}
