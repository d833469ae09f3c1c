//! `[smtp]`: submission and inbound listeners, message limits and the outbound queue.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::checker::{Checker, Scalar};
use super::units::{ByteSize, HumanDuration};
use super::{ConfigError, invalid};

/// `smtp.max_message_size`, and the IMAP APPEND limit unless `imap.max_literal_size` is set.
pub(super) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 20 * 1024 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct SmtpConfig {
    pub submission_tls: Vec<SocketAddr>,
    pub submission_starttls: Vec<SocketAddr>,
    pub inbound: Vec<SocketAddr>,
    pub max_message_size: ByteSize,
    pub max_recipients: u32,
    pub max_messages_per_connection: u32,
    /// Store a copy of submitted mail in the sender's Sent folder.
    pub save_sent: bool,
    /// Refuse submitted mail whose `From:` names a mailbox the identity may not send as.
    pub check_from_header: bool,
    /// Static next hops for remote domains (`domain = "host:port"`), before MX lookup.
    pub routes: BTreeMap<String, String>,
    pub queue_max_lifetime: HumanDuration,
    pub queue_retry_initial: HumanDuration,
    /// The longest wait between two attempts (the back-off doubles up to it).
    pub queue_retry_max: HumanDuration,
    /// How long a remote operator may keep a delivery waiting for a reply to a command,
    /// or for room to write (RFC 5321 §4.5.3.2 suggests 5 minutes).
    pub queue_reply_timeout: HumanDuration,
    /// How long it may take to answer the final dot of DATA (RFC 5321: 10 minutes).
    pub queue_data_timeout: HumanDuration,
    /// DNS servers for MX lookups; empty: the system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<SocketAddr>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Raw {
    pub submission_tls: Option<Vec<String>>,
    pub submission_starttls: Option<Vec<String>>,
    pub inbound: Option<Vec<String>>,
    pub max_message_size: Option<Scalar>,
    pub max_recipients: Option<i64>,
    pub max_messages_per_connection: Option<i64>,
    pub max_connections_per_peer: Option<i64>,
    pub save_sent: Option<bool>,
    pub check_from_header: Option<bool>,
    pub routes: Option<BTreeMap<String, String>>,
    pub queue_max_lifetime: Option<Scalar>,
    pub queue_retry_initial: Option<Scalar>,
    pub queue_retry_max: Option<Scalar>,
    pub queue_reply_timeout: Option<Scalar>,
    pub queue_data_timeout: Option<Scalar>,
    pub dns_servers: Option<Vec<String>>,
}

impl SmtpConfig {
    pub(super) fn check(s: Raw, c: &Checker<'_>) -> Result<Self, ConfigError> {
        let routes = s.routes.unwrap_or_default();
        for (domain, hop) in &routes {
            if hop
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid(
                    format!("smtp.routes.{domain}"),
                    format!("`{hop}` is not HOST:PORT"),
                ));
            }
        }
        Ok(SmtpConfig {
            submission_tls: c.listeners(
                "smtp.submission_tls",
                s.submission_tls,
                &["0.0.0.0:465"],
            )?,
            submission_starttls: c.listeners(
                "smtp.submission_starttls",
                s.submission_starttls,
                &["0.0.0.0:587"],
            )?,
            inbound: c.listeners("smtp.inbound", s.inbound, &["0.0.0.0:25"])?,
            max_message_size: c.size(
                "smtp.max_message_size",
                s.max_message_size,
                DEFAULT_MAX_MESSAGE_SIZE,
            )?,
            max_recipients: c.count("smtp.max_recipients", s.max_recipients, 100)?,
            max_messages_per_connection: c.count(
                "smtp.max_messages_per_connection",
                s.max_messages_per_connection,
                1000,
            )?,
            save_sent: s.save_sent.unwrap_or(false),
            check_from_header: s.check_from_header.unwrap_or(true),
            routes: routes
                .into_iter()
                .map(|(d, h)| (d.to_ascii_lowercase(), h))
                .collect(),
            queue_max_lifetime: c.duration(
                "smtp.queue_max_lifetime",
                s.queue_max_lifetime,
                "5d",
            )?,
            queue_retry_initial: c.duration(
                "smtp.queue_retry_initial",
                s.queue_retry_initial,
                "5m",
            )?,
            queue_retry_max: c.duration("smtp.queue_retry_max", s.queue_retry_max, "1h")?,
            queue_reply_timeout: c.duration(
                "smtp.queue_reply_timeout",
                s.queue_reply_timeout,
                "5m",
            )?,
            queue_data_timeout: c.duration(
                "smtp.queue_data_timeout",
                s.queue_data_timeout,
                "10m",
            )?,
            dns_servers: c.listeners("smtp.dns_servers", s.dns_servers, &[])?,
        })
    }
}
