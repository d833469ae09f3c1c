//! Commands per second on one connection, so one client cannot monopolise a core.

use std::time::Duration;

use tokio::time::Instant;

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
