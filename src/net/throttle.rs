//! The authentication-failure policy.
//!
//! Bearer tokens and certificates cannot be guessed, so making every attempt from an
//! address wait after some failures buys nothing, and it stalls the hundreds of
//! professionals behind a hospital's NAT address the moment one of them has a stale
//! token. What needs protecting is the work an attempt costs (signature checks, calls to
//! PSC introspection), so:
//!
//! - an address has a fixed number of verifications in flight; beyond it an attempt
//!   waits its turn, and is answered "try again later" if the wait is long;
//! - nothing is ever paused *before* it is looked at: a valid token or certificate is
//!   answered as soon as it is checked;
//! - a refused attempt is answered after a short pause, on its own connection only, that
//!   grows with the recent failures of the same (address, claimed mailbox or identity).
//!
//! Trusted networks are exempt from the per-address verification cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::{Net, VERIFICATION_QUEUE_WAIT, canonical};
use crate::auth::{AuthFailure, Authenticated, Authenticator, Mechanism, Peer, sasl};

/// (address, claimed identity) pairs remembered before the stale ones are forgotten.
const MAX_TRACKED: usize = 100_000;
/// Failures older than this no longer count.
const FAILURE_MEMORY: Duration = Duration::from_secs(15 * 60);
/// Longest pause before a refusal is answered.
const MAX_PAUSE: Duration = Duration::from_secs(5);

/// What an attempt came to, and how long its connection waits before saying so.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) result: Result<Authenticated, AuthFailure>,
    /// Zero unless the attempt was refused.
    pub(crate) pause: Duration,
}

#[derive(Debug, Default)]
pub(super) struct Throttle {
    failures: Mutex<HashMap<(IpAddr, String), (u32, Instant)>>,
}

impl Throttle {
    /// Plain counters: a poisoned lock still holds usable values.
    fn lock(&self) -> MutexGuard<'_, HashMap<(IpAddr, String), (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one failure for `key`; returns how many it has now.
    fn failed(&self, key: (IpAddr, String)) -> u32 {
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_MEMORY);
            if map.len() >= MAX_TRACKED {
                map.clear();
            }
        }
        let entry = map.entry(key).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        entry.0
    }

    fn succeeded(&self, key: &(IpAddr, String)) {
        self.lock().remove(key);
    }
}

/// No pause for the first `free` failures, then 1 s, 2 s, 3 s … up to `MAX_PAUSE`.
fn pause_for(failures: u32, free: u32) -> Duration {
    Duration::from_secs(u64::from(failures.saturating_sub(free))).min(MAX_PAUSE)
}

/// Who the attempt claims to be, read without any verification: the mailbox named in
/// the SASL message, else the certificate's subject. Empty when it names nobody.
fn claimed(mechanism: Mechanism, response: &[u8], peer: &Peer) -> String {
    let named = match mechanism {
        Mechanism::XOAuth2 => sasl::parse_xoauth2(response).ok().and_then(|m| m.mailbox),
        Mechanism::OAuthBearer => sasl::parse_oauthbearer(response)
            .ok()
            .and_then(|m| m.mailbox),
        Mechanism::External => sasl::parse_external(response).ok().and_then(|m| m.mailbox),
    };
    named
        .map(|m| m.to_ascii_lowercase())
        .or_else(|| peer.certificate.as_ref().map(|c| c.subject.clone()))
        .unwrap_or_default()
}

/// Gives the address's verification slot back however the attempt ends.
struct Verifying<'a> {
    net: &'a Net,
    ip: IpAddr,
}

impl Drop for Verifying<'_> {
    fn drop(&mut self) {
        self.net.limits.end_verification(self.ip);
        self.net.verification_done.notify_waiters();
    }
}

impl Net {
    /// Runs one SASL attempt under the policy: waits for a verification slot of the
    /// peer's address, asks `auth`, and on refusal says how long to pause.
    pub(crate) async fn authenticate(
        &self,
        auth: &Authenticator,
        mechanism: Mechanism,
        response: &[u8],
        peer: &Peer,
    ) -> Verdict {
        let ip = canonical(peer.addr.ip());
        let _slot = if self.is_trusted(ip) {
            None
        } else {
            match self.verification_slot(ip).await {
                Some(slot) => Some(slot),
                None => {
                    tracing::info!("too many authentications in progress from this address");
                    return Verdict {
                        result: Err(AuthFailure::Temporary {
                            reason: "too many authentications in progress from your address"
                                .to_owned(),
                        }),
                        pause: Duration::ZERO,
                    };
                }
            }
        };
        let key = (ip, claimed(mechanism, response, peer));
        let result = auth.authenticate(mechanism, response, peer).await;
        let pause = match &result {
            Ok(_) => {
                self.throttle.succeeded(&key);
                Duration::ZERO
            }
            Err(AuthFailure::Refused { .. }) => pause_for(
                self.throttle.failed(key),
                self.settings.failures_before_pause,
            ),
            Err(AuthFailure::Temporary { .. }) => Duration::ZERO,
        };
        Verdict { result, pause }
    }

    /// One of `ip`'s verification slots, waiting up to `VERIFICATION_QUEUE_WAIT` for one.
    async fn verification_slot(&self, ip: IpAddr) -> Option<Verifying<'_>> {
        let max = self.settings.max_verifications_per_address;
        let deadline = Instant::now() + VERIFICATION_QUEUE_WAIT;
        loop {
            // Registered before looking, so a slot freed in between still wakes us.
            let freed = self.verification_done.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.limits.start_verification(ip, max) {
                return Some(Verifying { net: self, ip });
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_pause_after_the_free_ones_and_cap() {
        assert_eq!(pause_for(3, 3), Duration::ZERO);
        assert_eq!(pause_for(4, 3), Duration::from_secs(1));
        assert_eq!(pause_for(6, 3), Duration::from_secs(3));
        assert_eq!(pause_for(100, 3), MAX_PAUSE);
    }

    #[test]
    fn failures_are_counted_per_claimed_identity() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let x = (ip, "x@h.test".to_owned());
        let y = (ip, "y@h.test".to_owned());
        assert_eq!(t.failed(x.clone()), 1);
        assert_eq!(t.failed(x.clone()), 2);
        assert_eq!(t.failed(y.clone()), 1);
        t.succeeded(&x);
        assert_eq!(t.failed(x), 1);
    }
}
