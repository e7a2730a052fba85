//! Brute-force protection (SEC-6): per-action, per-key token buckets. Keys are
//! the client address and, where there is one, the account being targeted, so
//! neither one address nor many addresses against one account get far.
//!
//! The buckets live in this process's memory, bounded: keys are stored as
//! 64-bit hashes (whatever length the sender chose), buckets back at full
//! strength are dropped as the store fills, and should it still be full the
//! store starts again (at most `capacity` buckets are ever held). Counting
//! that must hold across instances, and survive such a restart, is per
//! account in the database (`accounts::guesses`); these buckets only slow a
//! flood from one place.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    SignIn,
    SignUp,
    PasswordReset,
    VerificationResend,
    CodeEntry,
    /// The contact form, open to everyone.
    Contact,
}

/// Seconds a limited client must wait; read by the 429 renderer.
#[derive(Debug, Default, Clone, Copy)]
pub struct RetryAfter(pub Option<u64>);

/// Buckets held at most, by default: a few megabytes.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Checks between two sweeps of full buckets.
const SWEEP_EVERY: u64 = 1024;

pub struct RateLimits {
    /// Replaced whole when the store has to start again.
    limiter: RwLock<DefaultKeyedRateLimiter<(Action, u64)>>,
    quota: Quota,
    clock: DefaultClock,
    hasher: RandomState,
    capacity: usize,
    checks: AtomicU64,
}

impl RateLimits {
    pub fn per_minute(n: u32) -> RateLimits {
        Self::bounded(n, DEFAULT_CAPACITY)
    }

    /// `n` attempts a minute per key, holding at most `capacity` buckets.
    pub fn bounded(n: u32, capacity: usize) -> RateLimits {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(n);
        RateLimits {
            limiter: RwLock::new(RateLimiter::keyed(quota)),
            quota,
            clock: DefaultClock::default(),
            hasher: RandomState::new(),
            capacity: capacity.max(1),
            checks: AtomicU64::new(0),
        }
    }

    fn limiter(&self) -> std::sync::RwLockReadGuard<'_, DefaultKeyedRateLimiter<(Action, u64)>> {
        // A panic while holding the lock cannot leave the buckets inconsistent.
        self.limiter.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Buckets held now.
    pub fn len(&self) -> usize {
        self.limiter().len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter().is_empty()
    }

    fn key(&self, key: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        for c in key.chars().flat_map(char::to_lowercase) {
            c.hash(&mut h);
        }
        h.finish()
    }

    /// Keeps the store within its capacity before a new bucket may be added.
    fn sweep(&self) {
        let n = self.checks.fetch_add(1, Ordering::Relaxed);
        if !n.is_multiple_of(SWEEP_EVERY) && self.len() < self.capacity {
            return;
        }
        self.limiter().retain_recent();
        if self.len() >= self.capacity {
            // Everything left was used within the last minute: a flood of new
            // keys. Starting again bounds memory; accounts stay guarded by the
            // database's counts.
            tracing::warn!(buckets = self.len(), "rate-limit store full; starting it again");
            let mut limiter = self.limiter.write().unwrap_or_else(|e| e.into_inner());
            *limiter = RateLimiter::keyed(self.quota);
        } else {
            self.limiter().shrink_to_fit();
        }
    }

    /// `Err(seconds)` when `key` has used up its attempts for `action`.
    pub fn check(&self, action: Action, key: &str) -> Result<(), u64> {
        self.sweep();
        match self.limiter().check_key(&(action, self.key(key))) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs().max(1))
            }
        }
    }

    /// Checks every key; all are charged so a limited account stays limited.
    pub fn check_all(&self, action: Action, keys: &[&str]) -> Result<(), u64> {
        let mut worst = None;
        for key in keys {
            if let Err(wait) = self.check(action, key) {
                worst = Some(worst.map_or(wait, |w: u64| w.max(wait)));
            }
        }
        worst.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_never_holds_more_than_its_capacity() {
        let limits = RateLimits::bounded(3, 500);
        for i in 0..20_000 {
            let key = format!("login:{i}-{}", "x".repeat(i % 300));
            let _ = limits.check(Action::SignIn, &key);
            assert!(limits.len() <= 500, "{} buckets after {i} keys", limits.len());
        }
        // Limits still apply to a key used again and again.
        let hits: Vec<bool> = (0..5).map(|_| limits.check(Action::SignIn, "203.0.113.7").is_ok()).collect();
        assert_eq!(hits, [true, true, true, false, false]);
        assert!(limits.check(Action::SignIn, "LOGIN:ADA").is_ok());
        assert_eq!(limits.key("login:ada"), limits.key("LOGIN:ADA"), "case does not make a new key");
    }
}
