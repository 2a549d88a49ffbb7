//! The exchange gateway: every call between department systems passes here. A consumer calls
//! `/x/{provider_org}/{provider_system}/{service}/{path…}`; the gateway authenticates the system
//! (API key or client certificate), resolves the service, decides with the access decision
//! function, enforces the grant's rate and daily quota, forwards over a pooled keep-alive client,
//! removes every field of a JSON answer whose item is not granted and masks personal items,
//! appends the exchange record to the ledger and waits for it to be durable, and only then
//! answers, with `Civitas-Exchange-Id` and `Civitas-Receipt` (the record's ledger index).
//!
//! Nothing on the request path waits for the store: keys, services, grants and policies are held
//! in memory ([`snapshot::Snapshot`]) and kept current by a refresher that follows the store's
//! change sequences; usage counts and the personal-data access index are written in the
//! background.
//!
//! One call's pipeline is in `exchange`, the serving threads in `serve`, the indexes derived from
//! the ledger (the personal-data access index and the subject report) in `indexes`, video
//! playback in `video`; this module holds the gateway's shared state and its upkeep.

pub mod body;
mod deadline;
mod exchange;
pub mod files;
pub mod filter;
mod indexes;
pub mod limits;
pub mod metrics;
mod problem;
mod serve;
pub mod snapshot;
pub mod tls;
mod video;

pub use indexes::SubjectAccess;

use std::{
    cell::OnceCell,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use civitas_core::{RegionCode, access::SystemRef};
use civitas_ledger::{Completions, Ledger};
use civitas_store::{GrantUsage, Store};
use http::{HeaderMap, Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use jiff::Timestamp;
use sha2::Sha256;
use tokio::sync::watch;

use crate::{
    body::{GatewayBody, full},
    deadline::Deadlines,
    limits::{CircuitBreakers, CircuitState, DailyCounts, DayCount, RateLimits},
    metrics::GatewayMetrics,
    problem::Problem,
    snapshot::Snapshot,
};

/// Headers of every answer that carried an exchange.
pub const EXCHANGE_ID_HEADER: &str = "civitas-exchange-id";
pub const RECEIPT_HEADER: &str = "civitas-receipt";
/// Set on every answer the gateway gives itself (a refusal, an unreachable or late upstream),
/// with the problem's code, and never on a provider's answer (the gateway does not relay
/// `civitas-` headers from upstream): a caller in the node tells the gateway's 404 `no_service`
/// from a provider's 404 by it.
pub const REFUSAL_HEADER: &str = "civitas-refusal";
/// The header that tells the upstream which system calls, `{org}/{system}`.
pub const CONSUMER_HEADER: &str = "civitas-consumer";
/// Optional request headers: the items wanted (comma-separated), and a bulk read's row count (one
/// whole number; any other value is refused with 400 `bad_header`, and recorded).
pub const ITEMS_HEADER: &str = "civitas-items";
pub const BULK_ROWS_HEADER: &str = "civitas-bulk-rows";

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub node_code: String,
    pub city_region: RegionCode,
    /// The node's offset from UTC, for local hours, weekdays and quota days (China: +08:00).
    pub utc_offset: jiff::tz::Offset,
    /// The key of the keyed hashes of citizen ID numbers in the personal-data access index.
    pub subject_key: [u8; 32],
    /// The key that signs video playback URLs.
    pub video_key: [u8; 32],
    /// Largest JSON answer the gateway filters; larger ones are refused rather than passed on
    /// unfiltered.
    pub max_json_bytes: usize,
    /// How long a video playback URL stays valid.
    pub playback_validity: Duration,
    /// Whether API keys are accepted (false when client certificates are required).
    pub accept_api_keys: bool,
    /// How long a consumer has to send a request's head (and finish a TLS handshake), counted
    /// from when the gateway starts waiting for it: a keep-alive connection idle that long is
    /// closed, so neither a slow sender nor a vanished peer holds a connection for long.
    pub header_timeout: Duration,
    /// TLS of calls to `https://` upstreams ([`tls::upstream_config`]).
    pub upstream_tls: Arc<rustls::ClientConfig>,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A connection without a client certificate; the request may carry an API key.
    Anonymous,
    /// A client certificate from the node's CA.
    Certificate(tls::ClientIdentity),
    /// A call made inside the node on behalf of a system (application scenarios).
    Internal(SystemRef),
}

#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    ledger: Ledger,
    config: GatewayConfig,
    snapshot: RwLock<Snapshot>,
    client: UpstreamClient,
    rates: RateLimits,
    daily: DailyCounts,
    breakers: CircuitBreakers,
    metrics: GatewayMetrics,
    today: std::sync::Mutex<Today>,
    /// The runtime [`Gateway::new`] ran on, for work that must outlive a gateway thread.
    background: tokio::runtime::Handle,
    /// Set, with the store's error, once this node finds the store handed over to another
    /// node's ledger: see [`Gateway::handed_over`].
    handed_over: std::sync::OnceLock<String>,
}

type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, GatewayBody>;

/// What a gateway thread keeps for its own calls (see [`Gateway::serve_threads`]).
struct ThreadOwn {
    /// Its pool of upstream connections.
    upstream: UpstreamClient,
    /// Its mailbox for the ledger's answers, which wakes the thread once for a whole group
    /// commit instead of once for each of its calls in the group.
    completions: Completions,
    /// Its calls' upstream deadlines, swept by one task of its own.
    deadlines: Arc<Deadlines>,
}

thread_local! {
    static THREAD_OWN: OnceCell<ThreadOwn> = const { OnceCell::new() };
}

/// What `read` takes from the current thread's own parts, if it is a gateway thread.
fn thread_own<T>(read: impl FnOnce(&ThreadOwn) -> T) -> Option<T> {
    THREAD_OWN.with(|own| own.get().map(read))
}

/// A pooled keep-alive client for `http://` and `https://` upstreams (see
/// [`tls::upstream_config`] for whom it trusts): connections made on the current runtime and
/// driven by it.
fn new_upstream_client(tls: &rustls::ClientConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls.clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(512)
        .build(connector)
}

/// The local date and the Unix seconds it spans.
struct Today {
    date: String,
    starts: i64,
    ends: i64,
}

impl Today {
    fn at(now: i64, offset: jiff::tz::Offset) -> Today {
        let date = offset
            .to_datetime(Timestamp::from_second(now).expect("now is a valid timestamp"))
            .date();
        let midnight = |date: jiff::civil::Date| {
            offset
                .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
                .map_or(i64::MAX, |at| at.as_second())
        };
        Today {
            date: date.to_string(),
            starts: midnight(date),
            ends: date.tomorrow().map_or(i64::MAX, midnight),
        }
    }
}

/// Lower-case hexadecimal, as the store keeps key hashes and the ledger subject hashes.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    text
}

/// The hash the store keeps of an API key: [`civitas_core::registry::api_key_hash`], without its
/// formatting of every byte (a test checks that they agree).
fn key_hash(key: &str) -> String {
    use sha2::Digest;
    hex(&Sha256::digest(key.as_bytes()))
}

impl Gateway {
    pub async fn new(
        store: Store,
        ledger: Ledger,
        config: GatewayConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> anyhow::Result<Gateway> {
        let snapshot = Snapshot::load(&store, config.city_region).await?;
        let client = new_upstream_client(&config.upstream_tls);
        let metrics = GatewayMetrics::register(registry);
        metrics.observe_policies(&snapshot.policies);
        let gateway = Gateway {
            inner: Arc::new(Inner {
                store,
                ledger,
                config,
                snapshot: RwLock::new(snapshot),
                client,
                rates: RateLimits::default(),
                daily: DailyCounts::default(),
                breakers: CircuitBreakers::new(metrics.open_circuits.clone()),
                metrics,
                today: std::sync::Mutex::new(Today {
                    date: String::new(),
                    starts: 0,
                    ends: 0,
                }),
                background: tokio::runtime::Handle::current(),
                handed_over: std::sync::OnceLock::new(),
            }),
        };
        gateway.load_today().await?;
        Ok(gateway)
    }

    /// Why this node no longer answers calls nor reads its ledger into the store, once it has
    /// found the store recorded as another node's ledger's (an operator handed it over with
    /// `civitas ledger adopt-store` while this node ran): the store's access index would miss
    /// the people whose data this node's calls delivered, and its audit events would land in a
    /// ledger the store no longer reads. `/readyz` answers 503 on both listeners, so that a load
    /// balancer turns to the node that has the store. Only stopping the node clears it; it will
    /// not start on that store again.
    pub fn handed_over(&self) -> Option<&str> {
        self.inner.handed_over.get().map(String::as_str)
    }

    /// Returns `error`, having noted it (and logged it, the first time) if it is the store's
    /// [`StoreError::LedgerNotOwned`](civitas_store::StoreError::LedgerNotOwned): see
    /// [`Gateway::handed_over`].
    pub fn note_if_handed_over(&self, error: anyhow::Error) -> anyhow::Error {
        if let Some(civitas_store::StoreError::LedgerNotOwned { .. }) = error.downcast_ref()
            && self.inner.handed_over.set(format!("{error:#}")).is_ok()
        {
            tracing::error!(
                error = format!("{error:#}"),
                "the store was handed over to another ledger: this node answers no more calls \
                 and reads nothing more into the store"
            );
        }
        error
    }

    /// Sends `request` upstream through this thread's pool of connections if it is a gateway
    /// thread (whose connections are driven on this thread), else through the gateway's shared
    /// one.
    fn send_upstream(
        &self,
        request: Request<GatewayBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        THREAD_OWN.with(|own| match own.get() {
            Some(own) => own.upstream.request(request),
            None => self.inner.client.request(request),
        })
    }

    /// Runs `future` for at most `limit`: on a gateway thread against the thread's own
    /// deadlines (see [`deadline`]), elsewhere with a tokio timer.
    async fn within<F: std::future::Future>(
        limit: Duration,
        future: F,
    ) -> Result<F::Output, deadline::Elapsed> {
        match thread_own(|own| own.deadlines.clone()) {
            Some(deadlines) => deadlines.within(limit, future).await,
            None => tokio::time::timeout(limit, future)
                .await
                .map_err(|_| deadline::Elapsed),
        }
    }

    fn today(&self) -> String {
        self.with_today(str::to_owned)
    }

    /// Calls `f` with the node's local date (`YYYY-MM-DD`), which is worked out once a day.
    fn with_today<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        let now = Timestamp::now().as_second();
        let mut today = self.inner.today.lock().expect("today lock");
        if !(today.starts..today.ends).contains(&now) {
            *today = Today::at(now, self.inner.config.utc_offset);
        }
        f(&today.date)
    }

    async fn load_today(&self) -> anyhow::Result<()> {
        let day = self.today();
        let usage = self.inner.store.usage_on(&day).await?;
        let totals = usage
            .into_iter()
            .map(|usage| {
                (
                    usage.grant,
                    DayCount {
                        calls: usage.calls,
                        denied: usage.denied,
                        bytes: usage.bytes,
                    },
                )
            })
            .collect();
        self.inner.daily.load(&day, totals);
        Ok(())
    }

    /// Keeps the in-memory snapshot current, flushes usage counts each second, and feeds the
    /// personal-data access index, until `stopped` turns true. `changes` is woken by the API
    /// after access changes so they apply at once; otherwise the store is polled four times a
    /// second. Calls still finishing when it stops are counted after it: whoever stops the
    /// gateway calls [`flush_usage`](Self::flush_usage) once the gateway's threads are done.
    pub async fn maintain(
        &self,
        changes: Arc<tokio::sync::Notify>,
        mut stopped: watch::Receiver<bool>,
    ) {
        let mut poll = tokio::time::interval(Duration::from_millis(250));
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = Instant::now();
        loop {
            tokio::select! {
                _ = poll.tick() => {}
                _ = changes.notified() => {}
                _ = stopped.changed() => return,
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(error = format!("{error:#}"), "gateway refresh failed");
            }
            // Every tick, so that a busy gateway's index work comes in small slices rather than
            // one burst a second that the gateway threads would wait behind.
            if let Err(error) = self.index_ledger().await
                && self.handed_over().is_none()
            {
                tracing::warn!(error = format!("{error:#}"), "ledger index update failed");
            }
            if last_flush.elapsed() >= Duration::from_secs(1) {
                self.flush_usage().await;
                last_flush = Instant::now();
            }
        }
    }

    /// Applies the store's changes to the snapshot now. The store is read without holding the
    /// snapshot's lock; the write lock is held only to apply what was read.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let from = self
            .inner
            .snapshot
            .read()
            .expect("snapshot lock")
            .positions()
            .clone();
        let changes =
            snapshot::fetch_changes(&self.inner.store, &from, self.inner.config.city_region)
                .await?;
        if changes.is_empty()
            && from
                == *self
                    .inner
                    .snapshot
                    .read()
                    .expect("snapshot lock")
                    .positions()
        {
            return Ok(());
        }
        let policies_changed = changes.changes_policies();
        let mut snapshot = self.inner.snapshot.write().expect("snapshot lock");
        snapshot.apply(changes);
        if policies_changed {
            self.inner.metrics.observe_policies(&snapshot.policies);
        }
        Ok(())
    }

    /// Every service whose calls have failed on this node since its last successful one: open
    /// circuits, half-open ones and closed ones counting failures. Services since deactivated
    /// or pointed at another upstream are left out (and their breakers forgotten).
    pub fn circuits(&self) -> Vec<CircuitState> {
        let snapshot = self.inner.snapshot.read().expect("snapshot lock");
        self.inner
            .breakers
            .states(Instant::now(), |name, upstream| {
                snapshot
                    .service_named(name)
                    .is_some_and(|service| service.upstream == upstream)
            })
    }

    /// Writes the usage counted since the last flush to the store; what cannot be written is
    /// kept for the next.
    pub async fn flush_usage(&self) {
        let taken = self.inner.daily.take_unflushed();
        let usage: Vec<GrantUsage> = taken
            .iter()
            .flat_map(|(day, counts)| {
                counts.iter().map(move |(grant, count)| GrantUsage {
                    grant: grant.clone(),
                    day: day.clone(),
                    calls: count.calls,
                    denied: count.denied,
                    bytes: count.bytes,
                })
            })
            .collect();
        if usage.is_empty() {
            return;
        }
        if let Err(error) = self.inner.store.add_grant_usage(&usage).await {
            tracing::warn!(%error, "grant usage not written; kept for the next flush");
            self.inner.daily.put_back(taken);
        }
    }

    /// Calls a service through the whole pipeline on behalf of `consumer`, from inside the node
    /// (application scenarios). Returns the status, headers and the (filtered) body. The
    /// exchange's ledger record is in order but not yet durable when this returns: the caller
    /// appends a durable record of its own afterwards (a scenario's run record), which makes this
    /// one durable too, before it acknowledges anything that rests on the call.
    pub async fn call_as(
        &self,
        consumer: SystemRef,
        method: Method,
        path_and_query: &str,
        body: Bytes,
    ) -> (StatusCode, HeaderMap, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .body(full(body))
            .expect("a valid request");
        let response = self.handle(Caller::Internal(consumer), request).await;
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (parts.status, parts.headers, bytes)
    }

    fn authenticate(&self, caller: &Caller, headers: &HeaderMap) -> Result<SystemRef, Problem> {
        let unauthenticated =
            |detail: &str| Problem::new(StatusCode::UNAUTHORIZED, "unauthenticated", detail);
        match caller {
            Caller::Internal(system) => Ok(system.clone()),
            Caller::Certificate(tls::ClientIdentity {
                system,
                serial,
                not_after,
            }) => {
                // Checked at the handshake too, but a keep-alive connection can outlive it.
                if Timestamp::now() > *not_after {
                    return Err(unauthenticated(&format!(
                        "the client certificate expired at {not_after}"
                    )));
                }
                let snapshot = self.inner.snapshot.read().expect("snapshot lock");
                if snapshot.revoked_certificates.contains(serial) {
                    return Err(unauthenticated("the client certificate is revoked"));
                }
                if !snapshot.active_systems.contains(system) {
                    return Err(unauthenticated(
                        "the client certificate's system or its organization is deactivated",
                    ));
                }
                Ok(system.clone())
            }
            Caller::Anonymous => {
                if !self.inner.config.accept_api_keys {
                    return Err(unauthenticated(
                        "present a client certificate issued by this node",
                    ));
                }
                let key = headers
                    .get(header::AUTHORIZATION)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.split_once(' '))
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .map(|(_, key)| key.trim())
                    .ok_or_else(|| {
                        unauthenticated("send a system API key: Authorization: Bearer <key>")
                    })?;
                let hash = key_hash(key);
                let snapshot = self.inner.snapshot.read().expect("snapshot lock");
                match snapshot.keys.get(&hash) {
                    Some((system, expires_at))
                        if expires_at.is_none_or(|at| at > Timestamp::now()) =>
                    {
                        Ok(system.clone())
                    }
                    _ => Err(unauthenticated("the API key is not a valid system key")),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_the_stores() {
        for key in ["", "cvk_bench-admin-key-0123456789", "密钥"] {
            assert_eq!(key_hash(key), civitas_core::registry::api_key_hash(key));
        }
    }

    #[test]
    fn the_local_day_and_its_bounds() {
        let offset = jiff::tz::Offset::constant(8);
        // 2026-11-25T15:59:59Z is 23:59:59 in China; a second later is the next day.
        let evening = Timestamp::from_second(1_795_622_399).unwrap();
        let today = Today::at(evening.as_second(), offset);
        assert_eq!(today.date, "2026-11-25");
        assert_eq!(today.ends, evening.as_second() + 1);
        assert_eq!(today.ends - today.starts, 86_400);
        assert_eq!(Today::at(today.ends, offset).date, "2026-11-26");
    }
}
