//! `[session]`: what every connection of every protocol is held to.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::checker::{Checker, Scalar};
use super::units::HumanDuration;

#[derive(Debug, Clone, Serialize)]
pub struct SessionConfig {
    pub idle_timeout: HumanDuration,
    pub max_lifetime: HumanDuration,
    pub sasl_challenge_timeout: HumanDuration,
    /// Refusals of one (address, claimed mailbox) answered without a pause.
    pub auth_failures_before_delay: u32,
    /// Exempt from every per-address limit.
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub handshake_timeout: HumanDuration,
    /// From the greeting: a client still not authenticated then is disconnected.
    pub login_timeout: HumanDuration,
    /// Connections the process holds at once, every listener together.
    pub max_connections: u32,
    pub max_unauthenticated_per_address: u32,
    /// Authenticated connections per (address, mailbox).
    pub max_mailbox_connections_per_address: u32,
    /// Authentication checks (token signatures, PSC introspection calls) in flight per
    /// address.
    pub max_verifications_per_address: u32,
    /// How long one write to a client may wait for it to read: a peer that stops reading
    /// is disconnected rather than holding its task forever.
    pub write_timeout: HumanDuration,
    /// At shutdown, how long open connections get to finish; the rest are then dropped.
    pub shutdown_timeout: HumanDuration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub idle_timeout: Option<Scalar>,
    pub max_lifetime: Option<Scalar>,
    pub sasl_challenge_timeout: Option<Scalar>,
    pub auth_failures_before_delay: Option<i64>,
    pub trusted_networks: Option<Vec<String>>,
    pub handshake_timeout: Option<Scalar>,
    pub login_timeout: Option<Scalar>,
    pub max_connections: Option<i64>,
    pub max_unauthenticated_per_address: Option<i64>,
    pub max_mailbox_connections_per_address: Option<i64>,
    pub max_verifications_per_address: Option<i64>,
    pub write_timeout: Option<Scalar>,
    pub shutdown_timeout: Option<Scalar>,
}

impl SessionConfig {
    pub(super) fn check(
        s: Raw,
        legacy_per_address: Option<u32>,
        c: &Checker<'_>,
    ) -> Result<Self, ConfigError> {
        Ok(SessionConfig {
            idle_timeout: c.duration("session.idle_timeout", s.idle_timeout, "15m")?,
            max_lifetime: c.duration("session.max_lifetime", s.max_lifetime, "4h")?,
            sasl_challenge_timeout: c.duration(
                "session.sasl_challenge_timeout",
                s.sasl_challenge_timeout,
                "5s",
            )?,
            auth_failures_before_delay: c.count(
                "session.auth_failures_before_delay",
                s.auth_failures_before_delay,
                3,
            )?,
            trusted_networks: c.networks("session.trusted_networks", s.trusted_networks)?,
            handshake_timeout: c.duration(
                "session.handshake_timeout",
                s.handshake_timeout,
                "10s",
            )?,
            login_timeout: c.duration("session.login_timeout", s.login_timeout, "60s")?,
            max_connections: c.count("session.max_connections", s.max_connections, 10_000)?,
            max_unauthenticated_per_address: c.count(
                "session.max_unauthenticated_per_address",
                s.max_unauthenticated_per_address
                    .or(legacy_per_address.map(i64::from)),
                100,
            )?,
            max_mailbox_connections_per_address: c.count(
                "session.max_mailbox_connections_per_address",
                s.max_mailbox_connections_per_address,
                20,
            )?,
            max_verifications_per_address: c.count(
                "session.max_verifications_per_address",
                s.max_verifications_per_address,
                16,
            )?,
            write_timeout: c.duration("session.write_timeout", s.write_timeout, "60s")?,
            shutdown_timeout: c.duration("session.shutdown_timeout", s.shutdown_timeout, "30s")?,
        })
    }
}
