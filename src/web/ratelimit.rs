//! Brute-force protection (SEC-6): per-action, per-key token buckets. Keys are
//! the client address and, where there is one, the account being targeted, so
//! neither one address nor many addresses against one account get far.

use std::num::NonZeroU32;
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

pub struct RateLimits {
    limiter: DefaultKeyedRateLimiter<(Action, String)>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn per_minute(n: u32) -> RateLimits {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        RateLimits { limiter: RateLimiter::keyed(Quota::per_minute(n)), clock: DefaultClock::default() }
    }

    /// `Err(seconds)` when `key` has used up its attempts for `action`.
    pub fn check(&self, action: Action, key: &str) -> Result<(), u64> {
        match self.limiter.check_key(&(action, key.to_lowercase())) {
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
