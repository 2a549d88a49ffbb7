//! Rate limits and daily quotas per grant, and a circuit breaker per service. In memory, per
//! node: each node enforces them for the calls it carries. Daily counts are also flushed to the
//! store for usage reports, and reloaded on start so that a restart does not reset a quota.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A token bucket allowing `rate` requests per second with bursts of up to `rate`.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-grant token buckets.
#[derive(Debug, Default)]
pub struct RateLimits {
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimits {
    /// Takes a token of `grant`'s bucket (rate per second), or says how long until one is free.
    pub fn take(&self, grant: &str, rate: u32, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(rate.max(1));
        let mut buckets = self.buckets.lock().expect("rate limits lock");
        if !buckets.contains_key(grant) {
            buckets.insert(
                grant.to_owned(),
                Bucket {
                    tokens: rate,
                    updated: now,
                },
            );
        }
        let bucket = buckets.get_mut(grant).expect("just inserted");
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate))
        }
    }
}

/// Calls, denials and bytes of one grant on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCount {
    pub calls: u64,
    pub denied: u64,
    pub bytes: u64,
}

/// Per-grant counts of the current local day, with the part not yet written to the store.
#[derive(Debug, Default)]
pub struct DailyCounts {
    inner: Mutex<DailyInner>,
}

#[derive(Debug, Default)]
struct DailyInner {
    day: String,
    totals: HashMap<String, DayCount>,
    unflushed: HashMap<String, DayCount>,
}

impl DailyCounts {
    /// Starts the day `day` with totals read from the store.
    pub fn load(&self, day: &str, totals: HashMap<String, DayCount>) {
        let mut inner = self.inner.lock().expect("daily counts lock");
        inner.day = day.to_owned();
        inner.totals = totals;
        inner.unflushed.clear();
    }

    fn roll(inner: &mut DailyInner, day: &str) {
        if inner.day != day {
            inner.day = day.to_owned();
            inner.totals.clear();
            // Unflushed counts of the previous day stay, keyed by their day at flush time.
        }
    }

    /// Counts a call against `grant` if its quota allows; returns false when the quota for
    /// `day` is used up.
    pub fn admit(&self, grant: &str, day: &str, quota: Option<u64>) -> bool {
        let mut inner = self.inner.lock().expect("daily counts lock");
        DailyCounts::roll(&mut inner, day);
        let total = count_of(&mut inner.totals, grant);
        if quota.is_some_and(|quota| total.calls >= quota) {
            total.denied += 1;
            count_of(&mut inner.unflushed, grant).denied += 1;
            return false;
        }
        total.calls += 1;
        count_of(&mut inner.unflushed, grant).calls += 1;
        true
    }

    pub fn add_bytes(&self, grant: &str, bytes: u64) {
        let mut inner = self.inner.lock().expect("daily counts lock");
        if let Some(total) = inner.totals.get_mut(grant) {
            total.bytes += bytes;
        }
        count_of(&mut inner.unflushed, grant).bytes += bytes;
    }

    /// Takes what has not been written to the store yet, with the day it belongs to.
    pub fn take_unflushed(&self) -> (String, HashMap<String, DayCount>) {
        let mut inner = self.inner.lock().expect("daily counts lock");
        let day = inner.day.clone();
        (day, std::mem::take(&mut inner.unflushed))
    }
}

/// The count of `grant` in `counts`, added when missing; the grant's id is copied only then, as
/// every call counts.
fn count_of<'a>(counts: &'a mut HashMap<String, DayCount>, grant: &str) -> &'a mut DayCount {
    if !counts.contains_key(grant) {
        counts.insert(grant.to_owned(), DayCount::default());
    }
    counts.get_mut(grant).expect("just inserted")
}

/// How many failures in a row open a service's circuit, and how long it stays open.
pub const FAILURES_TO_OPEN: u32 = 5;
pub const OPEN_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// Per-service circuit breakers: after repeated upstream failures calls fail fast with 503 until
/// a probe succeeds.
#[derive(Debug, Default)]
pub struct CircuitBreakers {
    breakers: Mutex<HashMap<String, Breaker>>,
}

/// Whether a call may go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Closed,
    /// The circuit was open and this call is the one probe.
    Probe,
    /// Open: fail fast, retry after the duration.
    Open(Duration),
}

impl CircuitBreakers {
    pub fn admit(&self, service: &str, now: Instant) -> Admission {
        let mut breakers = self.breakers.lock().expect("breakers lock");
        let Some(breaker) = breakers.get_mut(service) else {
            return Admission::Closed;
        };
        match breaker.open_until {
            None => Admission::Closed,
            Some(until) if now < until => Admission::Open(until - now),
            Some(_) if breaker.probing => Admission::Open(Duration::from_secs(1)),
            Some(_) => {
                breaker.probing = true;
                Admission::Probe
            }
        }
    }

    pub fn succeeded(&self, service: &str) {
        let mut breakers = self.breakers.lock().expect("breakers lock");
        breakers.remove(service);
    }

    pub fn failed(&self, service: &str, now: Instant) {
        let mut breakers = self.breakers.lock().expect("breakers lock");
        let breaker = breakers.entry(service.to_owned()).or_default();
        breaker.consecutive_failures += 1;
        if breaker.probing || breaker.consecutive_failures >= FAILURES_TO_OPEN {
            breaker.open_until = Some(now + OPEN_FOR);
            breaker.probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refill_at_the_rate() {
        let limits = RateLimits::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert!(limits.take("g", 3, start).is_ok());
        }
        let wait = limits.take("g", 3, start).unwrap_err();
        assert!(wait <= Duration::from_millis(334), "{wait:?}");
        assert!(
            limits
                .take("g", 3, start + Duration::from_millis(340))
                .is_ok()
        );
    }

    #[test]
    fn quotas_count_per_day() {
        let counts = DailyCounts::default();
        assert!(counts.admit("g", "2026-11-25", Some(2)));
        assert!(counts.admit("g", "2026-11-25", Some(2)));
        assert!(!counts.admit("g", "2026-11-25", Some(2)));
        assert!(
            counts.admit("g", "2026-11-26", Some(2)),
            "a new day starts afresh"
        );
        let (_, unflushed) = counts.take_unflushed();
        assert_eq!(
            unflushed["g"],
            DayCount {
                calls: 3,
                denied: 1,
                bytes: 0
            }
        );
    }

    #[test]
    fn breaker_opens_after_failures_and_closes_after_a_probe() {
        let breakers = CircuitBreakers::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            assert_eq!(breakers.admit("s", start), Admission::Closed);
            breakers.failed("s", start);
        }
        assert!(matches!(breakers.admit("s", start), Admission::Open(_)));
        let later = start + OPEN_FOR;
        assert_eq!(breakers.admit("s", later), Admission::Probe);
        assert!(
            matches!(breakers.admit("s", later), Admission::Open(_)),
            "one probe at a time"
        );
        breakers.succeeded("s");
        assert_eq!(breakers.admit("s", later), Admission::Closed);
    }
}
