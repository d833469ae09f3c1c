//! Connections per peer address, so one client cannot take every session slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub struct PeerLimits {
    open: Mutex<HashMap<IpAddr, u32>>,
    /// Failed authentications per address, and when the last one happened.
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Failures older than this are forgotten.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Longest pause imposed before answering a failed authentication.
const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);

/// Holds one connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<PeerLimits>,
    ip: IpAddr,
}

impl PeerLimits {
    /// A slot for `ip`, or None when it already has `max` connections.
    pub fn connect(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<Slot> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(Slot {
            limits: self.clone(),
            ip,
        })
    }
}

impl PeerLimits {
    /// Records a failed authentication from `ip`; returns how long to wait before
    /// answering it: nothing for the first `free` failures, then one more second per
    /// failure, whichever connection they come through.
    pub fn auth_failed(&self, ip: IpAddr, free: u32) -> Duration {
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if failures.len() > 10_000 {
            failures.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_MEMORY);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        Duration::from_secs(u64::from(entry.0.saturating_sub(free))).min(MAX_FAILURE_DELAY)
    }

    /// A success from `ip` clears its failures.
    pub fn auth_succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&ip);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .limits
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_and_freed() {
        let limits = Arc::new(PeerLimits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limits.connect(ip, 2).unwrap();
        let _b = limits.connect(ip, 2).unwrap();
        assert!(limits.connect(ip, 2).is_none());
        assert!(limits.connect("127.0.0.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(limits.connect(ip, 2).is_some());
    }

    #[test]
    fn failures_slow_down_after_the_free_ones() {
        let limits = PeerLimits::default();
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(limits.auth_failed(ip, 2), Duration::ZERO);
        assert_eq!(limits.auth_failed(ip, 2), Duration::ZERO);
        assert_eq!(limits.auth_failed(ip, 2), Duration::from_secs(1));
        assert_eq!(limits.auth_failed(ip, 2), Duration::from_secs(2));
        limits.auth_succeeded(ip);
        assert_eq!(limits.auth_failed(ip, 2), Duration::ZERO);
    }
}
