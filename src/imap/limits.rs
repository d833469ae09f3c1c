//! Guard rails shared by all connections: connections per peer address, failed
//! authentications per peer (back-off), and commands per second per connection.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// Peers remembered for back-off before the oldest are forgotten.
const MAX_TRACKED_PEERS: usize = 100_000;
/// Longest pause before answering a failed authentication.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Failures older than this no longer count.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Default)]
pub(crate) struct PeerLimits {
    connections: Mutex<HashMap<IpAddr, u32>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

/// Holds one of a peer's connection slots; gives it back when dropped.
pub(crate) struct ConnectionSlot {
    limits: Arc<PeerLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.limits.connections.lock()
            && let Some(n) = map.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

impl PeerLimits {
    /// A slot for one more connection from `ip`, unless it already has `max`.
    pub(crate) fn connect(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnectionSlot> {
        let mut map = self.connections.lock().ok()?;
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    /// Records a failed authentication and says how long to wait before answering it.
    pub(crate) fn failed(&self, ip: IpAddr, free: u32) -> Duration {
        let Ok(mut map) = self.failures.lock() else {
            return MAX_DELAY;
        };
        let now = Instant::now();
        if map.len() >= MAX_TRACKED_PEERS {
            map.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_MEMORY);
            if map.len() >= MAX_TRACKED_PEERS {
                map.clear();
            }
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_MEMORY {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        delay_for(entry.0, free)
    }

    /// The pause owed before a peer's next authentication attempt is even looked at.
    pub(crate) fn pending_delay(&self, ip: IpAddr, free: u32) -> Duration {
        let Ok(map) = self.failures.lock() else {
            return MAX_DELAY;
        };
        match map.get(&ip) {
            Some((n, at)) if Instant::now().duration_since(*at) < FAILURE_MEMORY => {
                delay_for(*n, free)
            }
            _ => Duration::ZERO,
        }
    }

    pub(crate) fn succeeded(&self, ip: IpAddr) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&ip);
        }
    }
}

/// No delay for the first `free` failures, then 1 s, 2 s, 4 s ... up to `MAX_DELAY`.
fn delay_for(failures: u32, free: u32) -> Duration {
    if failures <= free {
        return Duration::ZERO;
    }
    let exp = (failures - free - 1).min(5);
    Duration::from_secs(1u64 << exp).min(MAX_DELAY)
}

/// Commands per second on one connection: over the rate, commands wait their turn.
#[derive(Debug)]
pub(crate) struct RateLimit {
    per_second: u32,
    window: Instant,
    count: u32,
}

impl RateLimit {
    pub(crate) fn new(per_second: u32) -> Self {
        RateLimit {
            per_second: per_second.max(1),
            window: Instant::now(),
            count: 0,
        }
    }

    /// Waits if this command would exceed the rate.
    pub(crate) async fn admit(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.window) >= Duration::from_secs(1) {
            self.window = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count > self.per_second {
            let next = self.window + Duration::from_secs(1);
            tokio::time::sleep_until(next).await;
            self.window = next;
            self.count = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(delay_for(3, 3), Duration::ZERO);
        assert_eq!(delay_for(4, 3), Duration::from_secs(1));
        assert_eq!(delay_for(5, 3), Duration::from_secs(2));
        assert_eq!(delay_for(100, 3), MAX_DELAY);
    }

    #[test]
    fn slots_are_returned() {
        let limits = Arc::new(PeerLimits::default());
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let a = limits.connect(ip, 2).unwrap();
        let _b = limits.connect(ip, 2).unwrap();
        assert!(limits.connect(ip, 2).is_none());
        drop(a);
        assert!(limits.connect(ip, 2).is_some());
    }
}
