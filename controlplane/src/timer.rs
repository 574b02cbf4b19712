//! Sans-IO time for the protocol cores: a monotonic [`Timestamp`], a single-slot [`Timer`] and a
//! keyed timer set [`Timers`].
//!
//! The cores never read a clock. The daemon picks an origin (an `std::time::Instant` taken at
//! start-up), converts every `Instant` it hands to a core with [`Timestamp::since`], asks each
//! core for its `next_deadline()`, sleeps until [`Timestamp::to_instant`] of that deadline and
//! then delivers a tick with the current time. Tests simply construct timestamps
//! ([`Timestamp::from_secs`], [`Timestamp::from_millis`]) and advance them by hand.
//!
//! Invariants:
//! * Time has millisecond resolution. It is enough for every protocol timer we run (the finest
//!   are IGMP's 100 ms Max Resp Code units) and it makes fixtures exact and human-readable:
//!   a `Timestamp` serialises as a plain integer of milliseconds.
//! * Adding a [`Duration`] rounds *up* to the next millisecond, so a timer never fires before
//!   the interval it was armed with has fully elapsed. Converting an elapsed `Duration` into a
//!   `Timestamp` rounds *down*, so "now" is never in the future. Together: after the daemon sleeps
//!   until a deadline's instant, `now >= deadline` holds and the timer fires on that tick.
//! * Arithmetic saturates; nothing here panics.
//!
//! ```
//! use std::time::Duration;
//! use controlplane::timer::{Timers, Timestamp};
//!
//! let mut timers = Timers::new();
//! let t0 = Timestamp::ZERO;
//! timers.set_after("hello", t0, Duration::from_secs(10));
//! timers.set_after("dead", t0, Duration::from_secs(35));
//! assert_eq!(timers.next_deadline(), Some(Timestamp::from_secs(10)));
//! assert_eq!(timers.pop_expired(Timestamp::from_secs(9)), None);
//! assert_eq!(timers.pop_expired(Timestamp::from_secs(10)), Some(("hello", Timestamp::from_secs(10))));
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::{Add, AddAssign};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// A point on the control plane's monotonic time line: milliseconds since an origin chosen by
/// the caller (the daemon's start, or zero in tests).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The origin.
    pub const ZERO: Timestamp = Timestamp(0);
    /// The latest representable time; used as "never" by callers that need a sentinel.
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    pub const fn from_millis(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    pub const fn from_secs(s: u64) -> Timestamp {
        Timestamp(s.saturating_mul(1000))
    }

    /// The timestamp `elapsed` after the origin, rounded down to the millisecond.
    pub fn from_duration(elapsed: Duration) -> Timestamp {
        Timestamp(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    /// Converts a real `Instant` into core time relative to `origin` (`now` before `origin`
    /// gives [`Timestamp::ZERO`]). Pure: the caller reads the clock.
    pub fn since(origin: Instant, now: Instant) -> Timestamp {
        Timestamp::from_duration(now.saturating_duration_since(origin))
    }

    /// The real `Instant` of this timestamp relative to `origin`. Where the platform's
    /// `Instant` cannot reach that far, it saturates at about 136 years out (still "never" for
    /// a sleeping daemon) rather than panicking.
    pub fn to_instant(self, origin: Instant) -> Instant {
        origin
            .checked_add(self.as_duration())
            .or_else(|| origin.checked_add(Duration::from_secs(u64::from(u32::MAX))))
            .unwrap_or(origin)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub const fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }

    /// Time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// `self + d`, with `d` rounded up to whole milliseconds; saturates at [`Timestamp::MAX`].
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_ceil_millis(d)))
    }

    /// `self - d` (rounded up to whole milliseconds), clamped at [`Timestamp::ZERO`].
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_ceil_millis(d)))
    }
}

fn duration_ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;

    fn add(self, d: Duration) -> Timestamp {
        self.saturating_add(d)
    }
}

impl AddAssign<Duration> for Timestamp {
    fn add_assign(&mut self, d: Duration) {
        *self = self.saturating_add(d);
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:03}s", self.0 / 1000, self.0 % 1000)
    }
}

/// One timer that is either stopped or armed to expire at a deadline. Embed it in the object it
/// belongs to (a group, a neighbour) when the object already has to be scanned anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timer(Option<Timestamp>);

impl Timer {
    /// A stopped timer.
    pub const STOPPED: Timer = Timer(None);

    /// A timer armed to expire `after` from `now`.
    pub fn started(now: Timestamp, after: Duration) -> Timer {
        Timer(Some(now + after))
    }

    /// (Re)arms the timer to expire `after` from `now`.
    pub fn start(&mut self, now: Timestamp, after: Duration) {
        self.0 = Some(now + after);
    }

    /// (Re)arms the timer to expire at `at`.
    pub fn start_at(&mut self, at: Timestamp) {
        self.0 = Some(at);
    }

    pub fn stop(&mut self) {
        self.0 = None;
    }

    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    pub fn deadline(&self) -> Option<Timestamp> {
        self.0
    }

    /// True if armed and the deadline has been reached (`now >= deadline`).
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.0.is_some_and(|at| now >= at)
    }

    /// If expired at `now`, stops the timer and returns true (so each expiry is seen once).
    pub fn take_expired(&mut self, now: Timestamp) -> bool {
        let expired = self.is_expired(now);
        if expired {
            self.0 = None;
        }
        expired
    }

    /// Time left until expiry; zero once expired; `None` when stopped.
    pub fn remaining(&self, now: Timestamp) -> Option<Duration> {
        self.0.map(|at| at.saturating_duration_since(now))
    }

    /// Lowers the deadline to `now + after` if that is earlier (or the timer is stopped), as
    /// protocols do when they query ("lower the timer to LMQT"): never extends a timer.
    pub fn lower_to(&mut self, now: Timestamp, after: Duration) {
        let at = now + after;
        if self.0.is_none_or(|cur| at < cur) {
            self.0 = Some(at);
        }
    }
}

/// Earliest of a set of optional deadlines; handy for `next_deadline()` implementations.
pub fn earliest<I: IntoIterator<Item = Option<Timestamp>>>(deadlines: I) -> Option<Timestamp> {
    deadlines.into_iter().flatten().min()
}

/// A set of timers identified by key `K`, at most one per key, ordered by deadline.
///
/// Invariant: `by_key` and `by_deadline` always hold exactly the same (key, deadline) pairs.
/// Ties between equal deadlines expire in key order, so the expiry order is deterministic.
#[derive(Clone, Debug)]
pub struct Timers<K: Ord + Clone> {
    by_key: BTreeMap<K, Timestamp>,
    by_deadline: BTreeSet<(Timestamp, K)>,
}

impl<K: Ord + Clone> Default for Timers<K> {
    fn default() -> Self {
        Timers { by_key: BTreeMap::new(), by_deadline: BTreeSet::new() }
    }
}

impl<K: Ord + Clone> Timers<K> {
    pub fn new() -> Self {
        Timers::default()
    }

    /// Arms (or re-arms) the timer `key` to expire at `at`; returns the previous deadline.
    pub fn set(&mut self, key: K, at: Timestamp) -> Option<Timestamp> {
        let previous = self.by_key.insert(key.clone(), at);
        if let Some(prev) = previous {
            self.by_deadline.remove(&(prev, key.clone()));
        }
        self.by_deadline.insert((at, key));
        previous
    }

    /// Arms (or re-arms) the timer `key` to expire `after` from `now`.
    pub fn set_after(&mut self, key: K, now: Timestamp, after: Duration) -> Option<Timestamp> {
        self.set(key, now + after)
    }

    /// Lowers the timer `key` to `now + after` if it is not armed or would expire later.
    pub fn lower_to(&mut self, key: K, now: Timestamp, after: Duration) {
        let at = now + after;
        if self.by_key.get(&key).is_none_or(|cur| at < *cur) {
            self.set(key, at);
        }
    }

    /// Stops the timer `key`; returns its deadline if it was armed.
    pub fn cancel(&mut self, key: &K) -> Option<Timestamp> {
        let at = self.by_key.remove(key)?;
        self.by_deadline.remove(&(at, key.clone()));
        Some(at)
    }

    /// Keeps only the timers for which `keep` returns true (e.g. drop every timer of a
    /// neighbour that went away).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, Timestamp) -> bool) {
        let by_deadline = &mut self.by_deadline;
        self.by_key.retain(|k, at| {
            let kept = keep(k, *at);
            if !kept {
                by_deadline.remove(&(*at, k.clone()));
            }
            kept
        });
    }

    pub fn deadline(&self, key: &K) -> Option<Timestamp> {
        self.by_key.get(key).copied()
    }

    pub fn is_armed(&self, key: &K) -> bool {
        self.by_key.contains_key(key)
    }

    /// Time left on `key` (zero if already due), `None` if not armed.
    pub fn remaining(&self, key: &K, now: Timestamp) -> Option<Duration> {
        self.deadline(key).map(|at| at.saturating_duration_since(now))
    }

    /// The earliest deadline of all armed timers.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.by_deadline.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer whose deadline is `<= now`. Call it in a loop:
    /// handling one expiry may arm or cancel others, which this sees on the next call.
    pub fn pop_expired(&mut self, now: Timestamp) -> Option<(K, Timestamp)> {
        let (at, _) = self.by_deadline.first()?;
        if *at > now {
            return None;
        }
        let (at, key) = self.by_deadline.pop_first()?;
        self.by_key.remove(&key);
        Some((key, at))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// Armed timers in deadline order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, Timestamp)> {
        self.by_deadline.iter().map(|(at, k)| (k, *at))
    }

    pub fn clear(&mut self) {
        self.by_key.clear();
        self.by_deadline.clear();
    }
}

/// `#[serde(with = "crate::timer::serde_millis")]` for `Duration` fields: whole milliseconds
/// as a plain integer (sub-millisecond parts round up, like [`Timestamp`] arithmetic).
pub mod serde_millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(super::duration_ceil_millis(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// Like [`serde_millis`] for `Option<Duration>` (`null` when absent).
pub mod serde_millis_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::duration_ceil_millis(*d)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_rounds_up_and_converting_rounds_down() {
        let t = Timestamp::from_millis(1000);
        assert_eq!(t + Duration::from_micros(1), Timestamp::from_millis(1001));
        assert_eq!(t + Duration::from_millis(31_250), Timestamp::from_millis(32_250));
        assert_eq!(
            Timestamp::from_duration(Duration::from_micros(1_999)),
            Timestamp::from_millis(1)
        );
        assert_eq!(Timestamp::MAX + Duration::from_secs(1), Timestamp::MAX);
        assert_eq!(Timestamp::from_secs(1).saturating_sub(Duration::from_secs(5)), Timestamp::ZERO);
    }

    #[test]
    fn instant_round_trip_fires_on_wakeup() {
        let origin = Instant::now();
        let deadline = Timestamp::ZERO + Duration::from_nanos(2_500_001);
        // The daemon sleeps until `to_instant` and converts back: the timer must be due.
        let woke = deadline.to_instant(origin);
        assert!(Timestamp::since(origin, woke) >= deadline);
        assert_eq!(Timestamp::since(woke, origin), Timestamp::ZERO);
        assert!(Timestamp::MAX.to_instant(origin) > origin, "never is in the future");
    }

    #[test]
    fn serde_is_plain_millis() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Cfg {
            #[serde(with = "serde_millis")]
            every: Duration,
            #[serde(with = "serde_millis_opt")]
            maybe: Option<Duration>,
        }
        let json = serde_json::to_string(&Timestamp::from_millis(1500)).unwrap();
        assert_eq!(json, "1500");
        let t: Timer = serde_json::from_str("null").unwrap();
        assert_eq!(t, Timer::STOPPED);
        assert_eq!(Timestamp::from_millis(1500).to_string(), "1.500s");

        let cfg = Cfg { every: Duration::from_millis(31_250), maybe: None };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(json, r#"{"every":31250,"maybe":null}"#);
        assert_eq!(serde_json::from_str::<Cfg>(&json).unwrap(), cfg);
    }

    #[test]
    fn single_timer_lifecycle() {
        let mut t = Timer::STOPPED;
        let t0 = Timestamp::from_secs(5);
        assert!(!t.is_expired(t0));
        assert_eq!(t.remaining(t0), None);
        t.start(t0, Duration::from_secs(10));
        assert_eq!(t.remaining(t0), Some(Duration::from_secs(10)));
        t.lower_to(t0, Duration::from_secs(20));
        assert_eq!(t.deadline(), Some(Timestamp::from_secs(15)), "lower never extends");
        t.lower_to(t0, Duration::from_secs(2));
        assert_eq!(t.deadline(), Some(Timestamp::from_secs(7)));
        assert!(!t.take_expired(Timestamp::from_millis(6_999)));
        assert!(t.take_expired(Timestamp::from_secs(7)));
        assert!(!t.is_running());
        assert!(!t.take_expired(Timestamp::from_secs(8)), "an expiry is reported once");
    }

    #[test]
    fn keyed_timers_expire_in_order_and_rearm() {
        let mut timers = Timers::new();
        let t0 = Timestamp::ZERO;
        timers.set_after(3u8, t0, Duration::from_secs(3));
        timers.set_after(1u8, t0, Duration::from_secs(1));
        timers.set_after(2u8, t0, Duration::from_secs(1));
        assert_eq!(timers.len(), 3);
        // Re-arming moves the deadline rather than adding a second entry.
        assert_eq!(
            timers.set_after(1u8, t0, Duration::from_secs(5)),
            Some(Timestamp::from_secs(1))
        );
        assert_eq!(timers.len(), 3);
        assert_eq!(timers.next_deadline(), Some(Timestamp::from_secs(1)));
        let now = Timestamp::from_secs(3);
        assert_eq!(timers.pop_expired(now), Some((2, Timestamp::from_secs(1))));
        assert_eq!(timers.pop_expired(now), Some((3, Timestamp::from_secs(3))));
        assert_eq!(timers.pop_expired(now), None);
        assert_eq!(timers.remaining(&1, now), Some(Duration::from_secs(2)));
        timers.lower_to(1, now, Duration::from_secs(10));
        assert_eq!(timers.deadline(&1), Some(Timestamp::from_secs(5)));
        timers.lower_to(1, now, Duration::from_secs(1));
        assert_eq!(timers.deadline(&1), Some(Timestamp::from_secs(4)));
        assert_eq!(timers.cancel(&1), Some(Timestamp::from_secs(4)));
        assert!(timers.is_empty());
        assert_eq!(timers.next_deadline(), None);
    }

    #[test]
    fn retain_keeps_both_indexes_in_step() {
        let mut timers = Timers::new();
        for k in 0u32..10 {
            timers.set(k, Timestamp::from_secs(u64::from(10 - k)));
        }
        timers.retain(|k, _| k % 2 == 0);
        assert_eq!(timers.len(), 5);
        let order: Vec<u32> = timers.iter().map(|(k, _)| *k).collect();
        assert_eq!(order, vec![8, 6, 4, 2, 0]);
        let mut popped = Vec::new();
        while let Some((k, _)) = timers.pop_expired(Timestamp::MAX) {
            popped.push(k);
        }
        assert_eq!(popped, order);
        assert!(timers.is_empty());
    }
}
