//! Connections per peer address, so one client cannot take every session slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct PeerLimits {
    open: Mutex<HashMap<IpAddr, u32>>,
}

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
}
