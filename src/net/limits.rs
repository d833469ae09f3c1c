//! Connection caps. A connection is counted in the process total for its whole life; on
//! top of that it sits in its address's *unauthenticated* pool until it authenticates,
//! then in the pool of its (address, mailbox) pair. Hundreds of professionals behind
//! one NAT address therefore only compete for the short unauthenticated stage, and one
//! client cannot hold more than a mailbox's share of sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Net, canonical};

/// Why a connection, or its move to the authenticated pool, was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refused {
    #[error("too many connections to this server, try again later")]
    Server,
    #[error("too many unauthenticated connections from your address")]
    Unauthenticated,
    #[error("too many connections to this mailbox from your address")]
    Mailbox,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    total: u32,
    unauthenticated: HashMap<IpAddr, u32>,
    /// Keyed by address and the mailbox's normalised address.
    authenticated: HashMap<(IpAddr, String), u32>,
    /// Authentication checks in flight per address (see `throttle`).
    verifying: HashMap<IpAddr, u32>,
}

impl Counters {
    /// The counters are plain integers, consistent after any panic elsewhere: a
    /// poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Which pool a connection currently counts in.
#[derive(Debug)]
enum Pool {
    Unauthenticated,
    Mailbox(String),
    /// A trusted network: counted in the process total only.
    Exempt,
}

/// One connection's place in the counts, from accept to close; dropping it frees it.
#[derive(Debug)]
pub(crate) struct Admission {
    net: Arc<Net>,
    ip: IpAddr,
    pool: Pool,
}

impl Net {
    /// Counts a new connection from `ip`, or says why it is one too many.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refused> {
        let ip = canonical(ip);
        let trusted = self.is_trusted(ip);
        let mut state = self.limits.lock();
        if state.total >= self.settings.max_connections {
            return Err(Refused::Server);
        }
        let pool = if trusted {
            Pool::Exempt
        } else {
            let n = state.unauthenticated.entry(ip).or_insert(0);
            if *n >= self.settings.max_unauthenticated_per_address {
                if *n == 0 {
                    state.unauthenticated.remove(&ip);
                }
                return Err(Refused::Unauthenticated);
            }
            *n += 1;
            Pool::Unauthenticated
        };
        state.total += 1;
        Ok(Admission {
            net: self.clone(),
            ip,
            pool,
        })
    }
}

/// Records a refused connection in the audit trail: an operator looking at a
/// hospital's complaint sees which address hit which cap.
pub(crate) async fn audit_refusal(
    store: &crate::store::Store,
    clock: &dyn crate::clock::Clock,
    protocol: &str,
    peer: std::net::SocketAddr,
    mailbox: Option<String>,
    refused: Refused,
) {
    let entry = crate::store::AuditEntry {
        at: clock.now(),
        protocol: protocol.to_owned(),
        mechanism: None,
        identity: None,
        mailbox,
        peer: Some(peer.to_string()),
        outcome: crate::store::AuditOutcome::Failure,
        reason: Some(refused.to_string()),
    };
    if let Err(e) = store.audit(entry).await {
        tracing::error!(error = %e, "cannot record a refused connection");
    }
}

impl Admission {
    /// The connection authenticated on `mailbox`: it leaves the unauthenticated pool
    /// and joins the (address, mailbox) one, unless that is full.
    pub(crate) fn authenticated(&mut self, mailbox: &str) -> Result<(), Refused> {
        if matches!(self.pool, Pool::Exempt) {
            return Ok(());
        }
        let key = (self.ip, mailbox.to_ascii_lowercase());
        let max = self.net.settings.max_mailbox_connections_per_address;
        let mut state = self.net.limits.lock();
        if let Pool::Mailbox(current) = &self.pool
            && *current == key.1
        {
            return Ok(());
        }
        let n = state.authenticated.get(&key).copied().unwrap_or(0);
        if n >= max {
            return Err(Refused::Mailbox);
        }
        *state.authenticated.entry(key.clone()).or_insert(0) += 1;
        leave(&mut state, self.ip, &self.pool);
        self.pool = Pool::Mailbox(key.1);
        Ok(())
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut state = self.net.limits.lock();
        state.total = state.total.saturating_sub(1);
        leave(&mut state, self.ip, &self.pool);
    }
}

/// Takes one connection out of `pool`, forgetting counts that fall to zero.
fn leave(state: &mut State, ip: IpAddr, pool: &Pool) {
    match pool {
        Pool::Exempt => {}
        Pool::Unauthenticated => decrement(&mut state.unauthenticated, ip),
        Pool::Mailbox(mailbox) => decrement(&mut state.authenticated, (ip, mailbox.clone())),
    }
}

pub(super) fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(&key);
        }
    }
}

impl Counters {
    /// Takes one of `ip`'s `max` verification slots, if one is free.
    pub(super) fn start_verification(&self, ip: IpAddr, max: u32) -> bool {
        let mut state = self.lock();
        let n = state.verifying.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    pub(super) fn end_verification(&self, ip: IpAddr) {
        decrement(&mut self.lock().verifying, ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn net(session: &str) -> Arc<Net> {
        let text = format!(
            "[server]\nhostname = \"h\"\ndomains = [\"h.test\"]\ndata_dir = \"/nonexistent\"\n\
             [tls]\ncertificate = \"Cargo.toml\"\nprivate_key = \"Cargo.toml\"\n\
             [psc]\nissuer = \"https://psc.test\"\n[session]\n{session}"
        );
        let config = Config::parse(&text, std::path::Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("test configuration");
        Net::new(&config.session)
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn authenticating_frees_the_unauthenticated_slot() {
        let net =
            net("max_unauthenticated_per_address = 2\nmax_mailbox_connections_per_address = 2");
        let mut a = net.admit(A).unwrap();
        let _b = net.admit(A).unwrap();
        assert_eq!(net.admit(A).unwrap_err(), Refused::Unauthenticated);
        assert!(net.admit(B).is_ok());
        a.authenticated("X@h.test").unwrap();
        let mut c = net.admit(A).unwrap();
        c.authenticated("x@h.test").unwrap();
        let mut d = net.admit(A).unwrap();
        assert_eq!(d.authenticated("x@h.test").unwrap_err(), Refused::Mailbox);
        d.authenticated("y@h.test").unwrap();
        drop(a);
        let mut e = net.admit(A).unwrap();
        e.authenticated("x@h.test").unwrap();
    }

    #[test]
    fn trusted_networks_and_the_process_cap() {
        let net = net("trusted_networks = [\"192.0.2.0/31\", \"2001:db8::/32\"]\n\
             max_unauthenticated_per_address = 1\nmax_connections = 4");
        let held: Vec<_> = (0..3).map(|_| net.admit(A).unwrap()).collect();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let one_more = net.admit(mapped).unwrap();
        assert_eq!(net.admit(A).unwrap_err(), Refused::Server);
        drop(held);
        drop(one_more);
        let _b = net.admit(B).unwrap();
        assert_eq!(net.admit(B).unwrap_err(), Refused::Unauthenticated);
    }
}
