//! Brute-force protection (SEC-6): per-action, per-key limits. Keys are the
//! client address and, where there is one, the account being targeted, so
//! neither one address nor many addresses against one account get far.
//!
//! Two layers. Every instance first checks token buckets in its own memory,
//! bounded: keys are stored as 64-bit hashes (whatever length the sender
//! chose), buckets back at full strength are dropped as the store fills, and
//! should it still be full the store starts again (at most `capacity` buckets
//! are ever held). They turn a flood from one place away without touching the
//! database. What passes is then counted in the database
//! ([`SharedWindows`]), which every instance of the site shares: a sliding
//! minute estimated from this minute's and the last minute's counts, so
//! attempts spread over several instances are limited as if one served them
//! all. The database holds keyed hashes of the keys (never an address or a
//! login in clear) and only the last two minutes' counts. Guessing one
//! account's password or codes is further counted per account, over hours,
//! in `accounts::guesses`.

use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::db::schema::rate_windows;
use crate::db::{Conn, Db, DbError};

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

impl Action {
    /// The name stored with the shared counts.
    fn name(self) -> &'static str {
        match self {
            Action::SignIn => "sign_in",
            Action::SignUp => "sign_up",
            Action::PasswordReset => "password_reset",
            Action::VerificationResend => "verification_resend",
            Action::CodeEntry => "code_entry",
            Action::Contact => "contact",
        }
    }
}

/// Seconds a limited client must wait; read by the 429 renderer.
#[derive(Debug, Default, Clone, Copy)]
pub struct RetryAfter(pub Option<u64>);

/// Buckets held at most, by default: a few megabytes.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Checks between two sweeps of full buckets.
const SWEEP_EVERY: u64 = 1024;

/// This instance's buckets.
struct LocalBuckets {
    /// Replaced whole when the store has to start again.
    limiter: RwLock<DefaultKeyedRateLimiter<(Action, u64)>>,
    quota: Quota,
    clock: DefaultClock,
    hasher: RandomState,
    capacity: usize,
    checks: AtomicU64,
}

impl LocalBuckets {
    /// `n` attempts a minute per key, holding at most `capacity` buckets.
    fn bounded(n: u32, capacity: usize) -> LocalBuckets {
        let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(n);
        LocalBuckets {
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
    fn len(&self) -> usize {
        self.limiter().len()
    }

    fn is_empty(&self) -> bool {
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
    fn check(&self, action: Action, key: &str) -> Result<(), u64> {
        self.sweep();
        match self.limiter().check_key(&(action, self.key(key))) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait: Duration = not_until.wait_time_from(self.clock.now());
                Err(wait.as_secs().max(1))
            }
        }
    }
}

/// The limits every request that guesses passes through: this instance's
/// buckets, then the counts shared through the database when there is one.
pub struct RateLimits {
    local: LocalBuckets,
    shared: Option<SharedWindows>,
}

impl RateLimits {
    /// `n` attempts a minute per key, counted in this process only (tools
    /// and tests that run one instance without a database).
    pub fn per_minute(n: u32) -> RateLimits {
        RateLimits { local: LocalBuckets::bounded(n, DEFAULT_CAPACITY), shared: None }
    }

    /// `n` attempts a minute per key, holding at most `capacity` buckets here.
    pub fn bounded(n: u32, capacity: usize) -> RateLimits {
        RateLimits { local: LocalBuckets::bounded(n, capacity), shared: None }
    }

    /// `n` attempts a minute per key across every instance that shares `db`;
    /// `secret` (the site's, the same in every instance) keys the hashes
    /// stored there.
    pub fn shared(n: u32, db: Db, secret: &[u8]) -> RateLimits {
        RateLimits {
            local: LocalBuckets::bounded(n, DEFAULT_CAPACITY),
            shared: Some(SharedWindows::new(n, db, secret)),
        }
    }

    /// Buckets held in this instance now.
    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// `Err(seconds)` when any of `keys` has used up its attempts for
    /// `action`. Every key is charged, so a limited account stays limited
    /// whichever address tries next.
    pub async fn check_all(&self, action: Action, keys: &[&str]) -> Result<(), u64> {
        // Every key is checked (and charged) before the worst wait is taken.
        let waits: Vec<u64> = keys.iter().filter_map(|key| self.local.check(action, key).err()).collect();
        if let Some(wait) = waits.into_iter().max() {
            // A flood this instance already turned away costs the database nothing.
            return Err(wait);
        }
        match &self.shared {
            Some(shared) => shared.check(action, keys).await,
            None => Ok(()),
        }
    }
}

/// Checks between two removals of past minutes' counts, per instance.
const EXPIRE_EVERY: u64 = 256;

/// Attempt counts per action, hashed key and minute, in the database every
/// instance shares.
pub struct SharedWindows {
    per_minute: i64,
    db: Db,
    key: [u8; 32],
    checks: AtomicU64,
}

impl SharedWindows {
    fn new(per_minute: u32, db: Db, secret: &[u8]) -> SharedWindows {
        use sha2::Digest;
        let mut hasher = Sha256::new();
        hasher.update(b"lyceum rate-limit keys\0");
        hasher.update(secret);
        SharedWindows {
            per_minute: i64::from(per_minute.max(1)),
            db,
            key: hasher.finalize().into(),
            checks: AtomicU64::new(0),
        }
    }

    /// The stored form of a key: 64 bits of a keyed hash of its lowercase form.
    fn hash(&self, key: &str) -> i64 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(key.to_lowercase().as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(first)
    }

    async fn check(&self, action: Action, keys: &[&str]) -> Result<(), u64> {
        let hashes: Vec<i64> = keys.iter().map(|k| self.hash(k)).collect();
        let expire = self.checks.fetch_add(1, Ordering::Relaxed).is_multiple_of(EXPIRE_EVERY);
        let per_minute = self.per_minute;
        let counted = self
            .db
            .run(move |conn| {
                let now = crate::db::now();
                if expire {
                    expire_windows(conn, now)?;
                }
                hashes.iter().map(|h| count(conn, action, *h, now)).collect::<Result<Vec<_>, DbError>>()
            })
            .await;
        match counted {
            Ok(counts) => {
                let waits = counts.iter().filter_map(|c| c.wait(per_minute));
                waits.max().map_or(Ok(()), Err)
            }
            Err(e) => {
                // The request that follows needs the database too and will
                // say so; this layer does not turn it into a refusal.
                tracing::warn!(error = %e, "shared rate-limit counts unavailable; this instance's limits apply");
                Ok(())
            }
        }
    }
}

/// One key's attempts in this minute (this one included) and the last.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counted {
    pub this_minute: i64,
    pub last_minute: i64,
    /// Seconds into this minute.
    pub into: i64,
}

impl Counted {
    /// Attempts in the sliding minute that ends now, the last minute's
    /// counted for the part of it still inside.
    fn estimate(&self) -> f64 {
        self.this_minute as f64 + self.last_minute as f64 * (60 - self.into) as f64 / 60.0
    }

    /// Seconds to wait when the estimate is over `per_minute`: until enough
    /// of the last minute has slid out, or the next minute when this one
    /// alone is full.
    pub fn wait(&self, per_minute: i64) -> Option<u64> {
        if self.estimate() <= per_minute as f64 {
            return None;
        }
        let left = 60 - self.into;
        if self.this_minute > per_minute || self.last_minute == 0 {
            return Some(left.max(1) as u64);
        }
        // estimate(t) = this + last * (60 - t) / 60 falls to per_minute at t*.
        let t = 60.0 - (per_minute - self.this_minute) as f64 * 60.0 / self.last_minute as f64;
        Some(((t - self.into as f64).ceil() as i64).clamp(1, left.max(1)) as u64)
    }
}

fn minute_of(t: NaiveDateTime) -> (i64, i64) {
    let secs = t.and_utc().timestamp();
    (secs.div_euclid(60), secs.rem_euclid(60))
}

/// Counts an attempt for `key_hash` now and reads the two minutes' counts.
fn count(conn: &mut Conn, action: Action, key_hash: i64, now: NaiveDateTime) -> Result<Counted, DbError> {
    let (minute, into) = minute_of(now);
    let this =
        rate_windows::table.filter(rate_windows::action.eq(action.name())).filter(rate_windows::key_hash.eq(key_hash));
    let bumped = diesel::update(this.filter(rate_windows::minute.eq(minute)))
        .set(rate_windows::hits.eq(rate_windows::hits + 1))
        .execute(conn)?;
    if bumped == 0 {
        let inserted = diesel::insert_into(rate_windows::table)
            .values((
                rate_windows::action.eq(action.name()),
                rate_windows::key_hash.eq(key_hash),
                rate_windows::minute.eq(minute),
                rate_windows::hits.eq(1),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            // Another instance counted this key's first attempt of the minute
            // at the same moment: count on its row.
            Err(e) if crate::db::is_unique_violation(&e) => {
                diesel::update(this.filter(rate_windows::minute.eq(minute)))
                    .set(rate_windows::hits.eq(rate_windows::hits + 1))
                    .execute(conn)?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    let rows: Vec<(i64, i32)> = this
        .filter(rate_windows::minute.ge(minute - 1))
        .select((rate_windows::minute, rate_windows::hits))
        .load(conn)?;
    let hits = |m: i64| rows.iter().filter(|(w, _)| *w == m).map(|(_, h)| i64::from(*h)).sum::<i64>();
    Ok(Counted { this_minute: hits(minute), last_minute: hits(minute - 1), into })
}

/// Removes the counts of minutes no estimate reads any more.
pub fn expire_windows(conn: &mut Conn, now: NaiveDateTime) -> Result<usize, DbError> {
    let (minute, _) = minute_of(now);
    Ok(diesel::delete(rate_windows::table.filter(rate_windows::minute.lt(minute - 1))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_never_holds_more_than_its_capacity() {
        let limits = LocalBuckets::bounded(3, 500);
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

    #[test]
    fn the_sliding_minute_counts_the_last_minute_for_the_part_still_inside() {
        let at = |this_minute, last_minute, into| Counted { this_minute, last_minute, into };
        // Fresh: five a minute allowed, the sixth waits for the next minute.
        assert_eq!(at(5, 0, 10).wait(5), None);
        assert_eq!(at(6, 0, 10).wait(5), Some(50));
        // Half-way through, five from the last minute weigh 2.5.
        assert_eq!(at(2, 5, 30).wait(5), None);
        assert_eq!(at(3, 5, 30).wait(5), Some(6), "3 + 5 × 24/60 = 5 at 36 s");
        // A full last minute right at the turn of the minute still counts whole.
        assert_eq!(at(1, 5, 0).wait(5), Some(12));
    }
}
