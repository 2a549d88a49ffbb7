//! Rate limits and daily quotas per grant, and a circuit breaker per service. In memory, per
//! node: each node enforces them for the calls it carries. Daily counts are also flushed to the
//! store for usage reports, and reloaded on start so that a restart does not reset a quota.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use jiff::Timestamp;
use prometheus_client::metrics::{family::Family, gauge::Gauge};

use crate::metrics::ServiceLabels;

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
    /// Counts not yet written to the store, by the day they belong to: at midnight the day
    /// just ended keeps its own until the next flush.
    unflushed: Vec<(String, HashMap<String, DayCount>)>,
}

impl DailyInner {
    /// The unflushed counts of the current day.
    fn unflushed(&mut self) -> &mut HashMap<String, DayCount> {
        if self
            .unflushed
            .last()
            .is_none_or(|(day, _)| *day != self.day)
        {
            self.unflushed.push((self.day.clone(), HashMap::new()));
        }
        &mut self.unflushed.last_mut().expect("just pushed").1
    }
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
            count_of(inner.unflushed(), grant).denied += 1;
            return false;
        }
        total.calls += 1;
        count_of(inner.unflushed(), grant).calls += 1;
        true
    }

    pub fn add_bytes(&self, grant: &str, bytes: u64) {
        let mut inner = self.inner.lock().expect("daily counts lock");
        if let Some(total) = inner.totals.get_mut(grant) {
            total.bytes += bytes;
        }
        count_of(inner.unflushed(), grant).bytes += bytes;
    }

    /// Takes what has not been written to the store yet, by the day it belongs to.
    pub fn take_unflushed(&self) -> Vec<(String, HashMap<String, DayCount>)> {
        let mut inner = self.inner.lock().expect("daily counts lock");
        std::mem::take(&mut inner.unflushed)
    }

    /// Puts back counts taken by [`take_unflushed`](Self::take_unflushed) that could not be
    /// written, to be written with the next flush (adding to what was counted since).
    pub fn put_back(&self, taken: Vec<(String, HashMap<String, DayCount>)>) {
        let mut inner = self.inner.lock().expect("daily counts lock");
        for (day, counts) in taken {
            let at = match inner
                .unflushed
                .binary_search_by(|(other, _)| other.cmp(&day))
            {
                Ok(at) => at,
                Err(at) => {
                    inner.unflushed.insert(at, (day, HashMap::new()));
                    at
                }
            };
            let into = &mut inner.unflushed[at].1;
            for (grant, count) in counts {
                let sum = count_of(into, &grant);
                sum.calls += count.calls;
                sum.denied += count.denied;
                sum.bytes += count.bytes;
            }
        }
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

#[derive(Debug)]
struct Breaker {
    /// The upstream base the failures were counted against: a service pointed elsewhere
    /// starts afresh.
    upstream: String,
    consecutive_failures: u32,
    failing_since: Timestamp,
    open_until: Option<Instant>,
    probing: bool,
}

impl Breaker {
    /// How long calls keep failing fast: while the circuit is open, and while its one probe is
    /// out; `None` when a call may go ahead.
    fn wait(&self, now: Instant) -> Option<Duration> {
        match self.open_until {
            Some(until) if now < until => Some(until - now),
            Some(_) if self.probing => Some(Duration::from_secs(1)),
            _ => None,
        }
    }
}

/// Per-service circuit breakers: after repeated upstream failures calls fail fast with 503 until
/// a probe succeeds. Only services failing since their last success have a breaker; the others'
/// calls pass without taking the lock.
#[derive(Debug, Default)]
pub struct CircuitBreakers {
    breakers: Mutex<HashMap<String, Breaker>>,
    /// How many breakers `breakers` holds.
    tracked: AtomicUsize,
    /// 1 while a service's circuit is open or half-open, else 0.
    open: Family<ServiceLabels, Gauge>,
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

/// A circuit's state, as operators see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Circuit {
    /// Calls pass; failures are being counted.
    Closed,
    /// Calls fail fast.
    Open,
    /// The open period is over: the next call (or the one in flight) probes the upstream.
    HalfOpen,
}

/// A service that has failed since its last successful call, on this node.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CircuitState {
    /// `{org}/{system}/{code}`.
    pub service: String,
    pub upstream: String,
    pub state: Circuit,
    pub consecutive_failures: u32,
    /// When the first of these failures happened.
    pub failing_since: Timestamp,
    /// How long calls keep failing fast, while the circuit is open.
    pub retry_after_ms: Option<u64>,
}

impl CircuitBreakers {
    pub fn new(open: Family<ServiceLabels, Gauge>) -> CircuitBreakers {
        CircuitBreakers {
            open,
            ..CircuitBreakers::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.breakers.lock().expect("breakers lock")
    }

    /// Forgets `service`'s breaker; the caller holds the lock.
    fn forget(&self, breakers: &mut HashMap<String, Breaker>, service: &str) {
        if let Some(breaker) = breakers.remove(service) {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
            if breaker.open_until.is_some() {
                self.set_open(service, false);
            }
        }
    }

    fn set_open(&self, service: &str, open: bool) {
        self.open
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .set(i64::from(open));
    }

    /// How long calls to `service` keep failing fast, without changing anything: `None` when
    /// a call may go ahead now (the circuit is closed, or its open period is over and no probe
    /// is out, so that the next admitted call probes).
    pub fn open_for(&self, service: &str, upstream: &str, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let breakers = self.lock();
        let breaker = breakers.get(service)?;
        if breaker.upstream != upstream {
            return None;
        }
        breaker.wait(now)
    }

    /// Whether a call to `service`, which forwards to `upstream`, may go ahead.
    pub fn admit(&self, service: &str, upstream: &str, now: Instant) -> Admission {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return Admission::Closed;
        }
        let mut breakers = self.lock();
        let Some(breaker) = breakers.get_mut(service) else {
            return Admission::Closed;
        };
        if breaker.upstream != upstream {
            self.forget(&mut breakers, service);
            return Admission::Closed;
        }
        match breaker.wait(now) {
            Some(wait) => Admission::Open(wait),
            None if breaker.open_until.is_none() => Admission::Closed,
            None => {
                breaker.probing = true;
                Admission::Probe
            }
        }
    }

    pub fn succeeded(&self, service: &str) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut breakers = self.lock();
        self.forget(&mut breakers, service);
    }

    pub fn failed(&self, service: &str, upstream: &str, now: Instant) {
        let mut breakers = self.lock();
        if breakers
            .get(service)
            .is_some_and(|breaker| breaker.upstream != upstream)
        {
            self.forget(&mut breakers, service);
        }
        let breaker = breakers.entry(service.to_owned()).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::Relaxed);
            Breaker {
                upstream: upstream.to_owned(),
                consecutive_failures: 0,
                failing_since: Timestamp::now(),
                open_until: None,
                probing: false,
            }
        });
        breaker.consecutive_failures += 1;
        if breaker.probing || breaker.consecutive_failures >= FAILURES_TO_OPEN {
            let opens = breaker.open_until.is_none();
            breaker.open_until = Some(now + OPEN_FOR);
            breaker.probing = false;
            if opens {
                self.set_open(service, true);
            }
        }
    }

    /// Every service failing since its last success, by name; breakers for which `current`
    /// says no (the service is gone or now forwards elsewhere) are dropped instead.
    pub fn states(&self, now: Instant, current: impl Fn(&str, &str) -> bool) -> Vec<CircuitState> {
        let mut breakers = self.lock();
        let stale: Vec<String> = breakers
            .iter()
            .filter(|(service, breaker)| !current(service, &breaker.upstream))
            .map(|(service, _)| service.clone())
            .collect();
        for service in stale {
            self.forget(&mut breakers, &service);
        }
        let mut states: Vec<CircuitState> = breakers
            .iter()
            .map(|(service, breaker)| {
                let (state, retry_after) = match breaker.open_until {
                    None => (Circuit::Closed, None),
                    Some(until) if now < until => (Circuit::Open, Some(until - now)),
                    Some(_) => (Circuit::HalfOpen, None),
                };
                CircuitState {
                    service: service.clone(),
                    upstream: breaker.upstream.clone(),
                    state,
                    consecutive_failures: breaker.consecutive_failures,
                    failing_since: breaker.failing_since,
                    retry_after_ms: retry_after
                        .map(|wait| u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1)),
                }
            })
            .collect();
        states.sort_by(|a, b| a.service.cmp(&b.service));
        states
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
        counts.add_bytes("g", 10);
        let unflushed = counts.take_unflushed();
        let by_day: Vec<(&str, &DayCount)> = unflushed
            .iter()
            .map(|(day, counts)| (day.as_str(), &counts["g"]))
            .collect();
        assert_eq!(
            by_day,
            [
                (
                    "2026-11-25",
                    &DayCount {
                        calls: 2,
                        denied: 1,
                        bytes: 0
                    }
                ),
                (
                    "2026-11-26",
                    &DayCount {
                        calls: 1,
                        denied: 0,
                        bytes: 10
                    }
                )
            ],
            "the day just ended keeps its own counts"
        );
        assert!(counts.take_unflushed().is_empty());

        // Counts that could not be written come back, with what was counted since.
        assert!(counts.admit("g", "2026-11-26", Some(2)));
        counts.put_back(unflushed);
        let again = counts.take_unflushed();
        let days: Vec<(&str, u64)> = again
            .iter()
            .map(|(day, counts)| (day.as_str(), counts["g"].calls))
            .collect();
        assert_eq!(days, [("2026-11-25", 2), ("2026-11-26", 2)]);
    }

    fn open_gauge(breakers: &CircuitBreakers, service: &str) -> i64 {
        breakers
            .open
            .get_or_create(&ServiceLabels {
                service: service.to_owned(),
            })
            .get()
    }

    #[test]
    fn breaker_opens_after_failures_and_closes_after_a_probe() {
        let breakers = CircuitBreakers::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            assert_eq!(breakers.admit("s", "http://u", start), Admission::Closed);
            assert_eq!(open_gauge(&breakers, "s"), 0);
            breakers.failed("s", "http://u", start);
        }
        assert!(matches!(
            breakers.admit("s", "http://u", start),
            Admission::Open(_)
        ));
        assert_eq!(open_gauge(&breakers, "s"), 1);
        assert_eq!(breakers.open_for("s", "http://u", start), Some(OPEN_FOR));
        assert_eq!(breakers.open_for("s", "http://elsewhere", start), None);
        let later = start + OPEN_FOR;
        assert_eq!(
            breakers.open_for("s", "http://u", later),
            None,
            "the next call may probe"
        );
        assert_eq!(breakers.admit("s", "http://u", later), Admission::Probe);
        assert!(
            matches!(breakers.admit("s", "http://u", later), Admission::Open(_)),
            "one probe at a time"
        );
        assert!(breakers.open_for("s", "http://u", later).is_some());
        breakers.succeeded("s");
        assert_eq!(breakers.admit("s", "http://u", later), Admission::Closed);
        assert_eq!(open_gauge(&breakers, "s"), 0);
        assert_eq!(breakers.tracked.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_failed_probe_opens_the_circuit_again() {
        let breakers = CircuitBreakers::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            breakers.failed("s", "http://u", start);
        }
        let later = start + OPEN_FOR;
        assert_eq!(breakers.admit("s", "http://u", later), Admission::Probe);
        breakers.failed("s", "http://u", later);
        assert_eq!(
            breakers.admit("s", "http://u", later),
            Admission::Open(OPEN_FOR)
        );
        assert_eq!(open_gauge(&breakers, "s"), 1);
    }

    #[test]
    fn a_service_pointed_elsewhere_starts_with_a_closed_circuit() {
        let breakers = CircuitBreakers::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            breakers.failed("s", "http://old", start);
        }
        assert_eq!(breakers.admit("s", "http://new", start), Admission::Closed);
        assert_eq!(open_gauge(&breakers, "s"), 0);
        // Failures against the new upstream count from one.
        breakers.failed("s", "http://new", start);
        let states = breakers.states(start, |_, _| true);
        assert_eq!(states.len(), 1);
        assert_eq!(
            (
                states[0].upstream.as_str(),
                states[0].consecutive_failures,
                states[0].state
            ),
            ("http://new", 1, Circuit::Closed)
        );
    }

    #[test]
    fn states_show_each_failing_service_and_forget_stale_ones() {
        let breakers = CircuitBreakers::default();
        let start = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            breakers.failed("org/b/open", "http://b", start);
        }
        breakers.failed("org/a/flaky", "http://a", start);
        breakers.failed("org/c/gone", "http://c", start);
        let states = breakers.states(start + Duration::from_secs(1), |service, _| {
            service != "org/c/gone"
        });
        let summary: Vec<_> = states
            .iter()
            .map(|state| {
                (
                    state.service.as_str(),
                    state.state,
                    state.consecutive_failures,
                    state.retry_after_ms,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                ("org/a/flaky", Circuit::Closed, 1, None),
                ("org/b/open", Circuit::Open, FAILURES_TO_OPEN, Some(4000)),
            ]
        );
        assert_eq!(breakers.tracked.load(Ordering::Relaxed), 2);
        let half_open = breakers.states(start + OPEN_FOR, |_, _| true);
        assert_eq!(half_open[1].state, Circuit::HalfOpen);
        assert_eq!(half_open[1].retry_after_ms, None);
    }
}
