//! Validation outcomes kept until the token expires, so a mail client reconnecting every
//! few minutes costs PSC one question per token, not one per connection.

use std::collections::{BTreeSet, HashMap};

use super::{Inner, lock};
use crate::auth::access::Professional;

/// Cached validation outcomes by SHA-256 of the token, each kept until the token's `exp`.
/// Bounded: when full, expired entries go first, then those expiring soonest.
pub(super) struct TokenCache {
    pub(super) capacity: usize,
    pub(super) entries: HashMap<[u8; 32], (Professional, i64)>,
    pub(super) by_expiry: BTreeSet<(i64, [u8; 32])>,
}

impl TokenCache {
    pub(super) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    pub(super) fn get(&mut self, hash: &[u8; 32], now: i64) -> Option<Professional> {
        let (professional, exp) = self.entries.get(hash)?;
        if *exp >= now {
            return Some(professional.clone());
        }
        let exp = *exp;
        self.entries.remove(hash);
        self.by_expiry.remove(&(exp, *hash));
        None
    }

    pub(super) fn insert(
        &mut self,
        hash: [u8; 32],
        professional: Professional,
        exp: i64,
        now: i64,
    ) {
        if self.capacity == 0 || exp < now {
            return;
        }
        if let Some((_, old)) = self.entries.remove(&hash) {
            self.by_expiry.remove(&(old, hash));
        }
        while self.entries.len() >= self.capacity {
            let Some((_, h)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&h);
        }
        self.entries.insert(hash, (professional, exp));
        self.by_expiry.insert((exp, hash));
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl Inner {
    pub(super) fn cached(&self, hash: &[u8; 32], now: i64) -> Option<Professional> {
        lock(&self.cache).get(hash, now)
    }

    pub(super) fn remember(&self, hash: [u8; 32], professional: Professional, exp: i64) {
        let now = self.clock.now().timestamp();
        lock(&self.cache).insert(hash, professional, exp, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_is_bounded_and_expires() {
        let mut c = TokenCache::new(2);
        let p = |s: &str| Professional::new(s.into());
        c.insert([1; 32], p("a"), 100, 0);
        c.insert([2; 32], p("b"), 200, 0);
        c.insert([3; 32], p("c"), 300, 0);
        assert_eq!(c.len(), 2);
        assert!(
            c.get(&[1; 32], 0).is_none(),
            "the soonest to expire went first"
        );
        assert_eq!(c.get(&[3; 32], 0).unwrap().idnat(), "c");
        assert!(
            c.get(&[2; 32], 201).is_none(),
            "expired entries are not served"
        );
        assert_eq!(c.len(), 1);
        c.insert([4; 32], p("d"), 10, 20);
        assert!(c.get(&[4; 32], 20).is_none(), "already expired: not kept");
    }
}
