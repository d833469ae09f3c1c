//! What IMAP and SMTP share about the connections they accept: listening and accepting
//! (`accept`), how many connections a process, an address and a mailbox may hold
//! (`limits`), the TLS handshake and its time limit (`handshake`), the stream under a
//! connection (`stream`) and its bounded writes (`link`), how authentication attempts
//! are paced (`throttle`, `rate`), and the drain at shutdown. One implementation, so an
//! address behind which a whole hospital sits is treated the same way on every port.
//! What is said on the wire (lines, literals, DATA) is each protocol's.
//!
//! `Net` lives in the server's `Context`; each connection holds an `Admission` from
//! accept to close, and every SASL attempt goes through `Net::authenticate`.

mod accept;
mod handshake;
mod limits;
mod link;
mod rate;
mod stream;
mod throttle;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::config::SessionConfig;

pub(crate) use accept::{Stop, drain, listen};
pub(crate) use handshake::HandshakeError;
pub(crate) use limits::{Admission, audit_refusal};
pub(crate) use link::{Link, WriteError};
pub(crate) use rate::RateLimit;
pub(crate) use stream::Stream;

/// Connection caps, the handshake and write time limits, and the authentication-failure
/// policy of one server process.
#[derive(Debug)]
pub struct Net {
    settings: Settings,
    limits: limits::Counters,
    throttle: throttle::Throttle,
    /// Woken each time an address gives a verification slot back.
    verification_done: tokio::sync::Notify,
}

/// The `[session]` values the network layer needs, copied once.
#[derive(Debug, Clone)]
struct Settings {
    trusted: Vec<IpNet>,
    max_connections: u32,
    max_unauthenticated_per_address: u32,
    max_mailbox_connections_per_address: u32,
    max_verifications_per_address: u32,
    failures_before_pause: u32,
    handshake_timeout: Duration,
    write_timeout: Duration,
}

impl Net {
    pub fn new(session: &SessionConfig) -> Arc<Net> {
        Arc::new(Net {
            settings: Settings {
                trusted: session.trusted_networks.clone(),
                max_connections: session.max_connections,
                max_unauthenticated_per_address: session.max_unauthenticated_per_address,
                max_mailbox_connections_per_address: session.max_mailbox_connections_per_address,
                max_verifications_per_address: session.max_verifications_per_address,
                failures_before_pause: session.auth_failures_before_delay,
                handshake_timeout: session.handshake_timeout.0,
                write_timeout: session.write_timeout.0,
            },
            limits: limits::Counters::default(),
            throttle: throttle::Throttle::default(),
            verification_done: tokio::sync::Notify::new(),
        })
    }

    /// Addresses of `[session] trusted_networks` (the hospital's own relays, a load
    /// balancer) are exempt from every per-address cap.
    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.settings.trusted.iter().any(|n| n.contains(&ip))
    }
}

/// An IPv4 client reaching a dual-stack socket shows up as `::ffff:a.b.c.d`; caps and
/// trusted networks are about the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Longest a SASL attempt waits for one of its address's verification slots before it
/// is answered "try again later".
const VERIFICATION_QUEUE_WAIT: Duration = Duration::from_secs(10);
