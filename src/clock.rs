//! Time as a dependency, so lifecycle rules can be tested at any date.

use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl SystemClock {
    /// The machine's time, for what stands outside the server and is handed no clock:
    /// the operator commands' own records, tests and benchmarks acting as the world.
    #[allow(clippy::disallowed_methods)]
    pub fn now_utc() -> DateTime<Utc> {
        Utc::now()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Self::now_utc()
    }
}

/// A clock stopped at one instant: `jobs run --at`, and tests.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub DateTime<Utc>);

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        self.0
    }
}

pub type SharedClock = Arc<dyn Clock>;

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}
