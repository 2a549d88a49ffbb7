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

pub mod body;
mod deadline;
pub mod filter;
pub mod limits;
pub mod metrics;
pub mod snapshot;
pub mod tls;

use std::{
    cell::OnceCell,
    collections::BTreeSet,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use bytes::Bytes;
use civitas_access::{
    decide,
    decision::{ConsumerFacts, Decision, DecisionRequest, LocalTime, ResourceFacts},
};
use civitas_core::{CitizenId, RegionCode, access::SystemRef, catalog::ResourceKind};
use civitas_ledger::{
    Completions, Ledger,
    record::{
        self, Decision as RecordDecision, ExchangeRecord, Record, ScenarioRunRecord, Sha256Digest,
    },
};
use civitas_store::{GrantUsage, Page, PageRequest, ScenarioRun, Store, SubjectDelivery};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use jiff::Timestamp;
use prometheus_client::metrics::gauge::Gauge;
use serde_json::json;
use sha2::Sha256;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    body::{GatewayBody, TallyBody, full, sha256},
    deadline::Deadlines,
    filter::Treatment,
    limits::{Admission, CircuitBreakers, DailyCounts, DayCount, RateLimits},
    metrics::{ExchangeLabels, GatewayMetrics, ThreadLabels},
    snapshot::{CompiledService, Snapshot},
};

/// Headers of every answer that carried an exchange.
pub const EXCHANGE_ID_HEADER: &str = "civitas-exchange-id";
pub const RECEIPT_HEADER: &str = "civitas-receipt";
/// Optional request headers: the items wanted (comma-separated), and a bulk read's row count.
pub const ITEMS_HEADER: &str = "civitas-items";
pub const BULK_ROWS_HEADER: &str = "civitas-bulk-rows";

/// Ledger records per transaction of the store's indexes derived from the ledger: the store has
/// one writer, and a smaller transaction keeps the writes of requests in flight from waiting long
/// behind it.
const LEDGER_INDEX_BATCH: u64 = 200;

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
}

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A connection without a client certificate; the request may carry an API key.
    Anonymous,
    /// A client certificate from the node's CA, with its serial.
    Certificate(SystemRef, String),
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
}

type UpstreamClient = Client<HttpConnector, GatewayBody>;

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

/// Where a gateway event loop gets its connections.
enum Connections {
    /// It accepts them itself.
    Listener(TcpListener),
    /// [`Gateway::serve_threads`] hands them over, counted in `open` while they last.
    Handed {
        handed: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, std::net::SocketAddr)>,
        open: Gauge,
    },
}

/// Counts a handed connection out of its thread's open connections when the connection ends.
struct OpenConnection(Option<Gauge>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.dec();
        }
    }
}

impl Connections {
    /// The next connection; `None` once no more will come.
    async fn next(
        &mut self,
    ) -> Option<std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, OpenConnection)>>
    {
        match self {
            Connections::Listener(listener) => Some(
                listener
                    .accept()
                    .await
                    .map(|(stream, peer)| (stream, peer, OpenConnection(None))),
            ),
            Connections::Handed { handed, open } => {
                let (stream, peer) = handed.recv().await?;
                // Counted by the hand-over; from here the guard counts it out.
                let counted = OpenConnection(Some(open.clone()));
                Some(tokio::net::TcpStream::from_std(stream).map(|stream| (stream, peer, counted)))
            }
        }
    }
}

/// A pooled keep-alive client: connections made on the current runtime and driven by it.
fn new_upstream_client() -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(Duration::from_secs(3)));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
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

/// A problem answer of the gateway.
struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    retry_after: Option<Duration>,
}

impl Problem {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    fn body(&self, rule: Option<&str>) -> Bytes {
        let mut body = json!({
            "type": format!("/docs/problems#{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error").to_lowercase(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(rule) = rule {
            body["rule"] = json!(rule);
        }
        Bytes::from(body.to_string())
    }

    fn response(&self, rule: Option<&str>) -> Response<GatewayBody> {
        let mut response = Response::new(full(self.body(rule)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// What one exchange did, for its ledger record.
struct Exchange {
    id: String,
    started: Instant,
    at: Timestamp,
    consumer: SystemRef,
    service: Arc<CompiledService>,
    method: String,
    path: String,
    grant: Option<String>,
    rule: Option<String>,
    allowed: bool,
    request_bytes: u64,
    request_sha256: [u8; 32],
    items: BTreeSet<String>,
    masked: BTreeSet<String>,
    /// An internal call ([`Gateway::call_as`]): the record need only be in order when the call
    /// answers, since its caller's own durable record follows it.
    durable_later: bool,
    /// The citizen ID numbers the exchange concerns, in plaintext: only their keyed hashes are
    /// recorded ([`Gateway::exchange_record`]), each computed once.
    subjects: BTreeSet<String>,
}

fn empty_sha256() -> [u8; 32] {
    static EMPTY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| sha256(&[]));
    *EMPTY
}

/// What the store's indexes derived from the ledger need of a record: they read every record
/// the gateway writes, so this parses only the type and the subjects of exchange records
/// ([`record::decode`] would build and re-encode whole records); scenario runs, far fewer, are
/// then decoded whole.
#[derive(serde::Deserialize)]
struct IndexedView {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subjects: Vec<String>,
}

/// A ledger record the store's derived indexes take something from.
enum IndexedRecord {
    /// An exchange's subjects: the keyed hashes of the ID numbers it delivered data about.
    Exchange(Vec<String>),
    ScenarioRun,
}

impl IndexedView {
    /// The subjects of an exchange record with any, or that the record is a scenario run;
    /// `None` for every other record.
    fn read(bytes: &[u8]) -> Option<IndexedRecord> {
        let (&version, json) = bytes.split_first()?;
        if version != record::ENCODING_V1 {
            return None;
        }
        let view: IndexedView = serde_json::from_slice(json).ok()?;
        if view.kind == "scenario_run" {
            return Some(IndexedRecord::ScenarioRun);
        }
        if view.kind != "exchange" || view.subjects.is_empty() {
            return None;
        }
        Some(IndexedRecord::Exchange(view.subjects))
    }
}

/// One exchange's delivery of a person's data, as an audit of the person shows it: from the
/// exchange's ledger record, found through the personal-data access index.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectAccess {
    /// Keyed hash of the citizen ID number.
    pub subject: String,
    /// The exchange's record in the ledger (its bytes are at `/api/v1/ledger/records/{index}`).
    pub ledger_index: u64,
    /// The record's receipt: its leaf hash, a signed checkpoint covering it and the inclusion
    /// proof, which verify with the node's verifier key alone.
    pub receipt: civitas_ledger::Receipt,
    pub exchange_id: String,
    pub at: Timestamp,
    /// `{org}/{system}` of the system that received the data.
    pub consumer: String,
    pub provider: String,
    pub service: String,
    pub resource: String,
    pub grant: Option<String>,
}

/// The store's row of a scenario run, from the run's ledger record: its details hold the
/// citizen's consent reference and the whole result (records written before the result was
/// kept whole hold the values, rules and reason, which then stand as the result).
fn scenario_run_of(run: ScenarioRunRecord, ledger_index: u64) -> ScenarioRun {
    let mut details = run.details;
    let consent = match details.get_mut("consent").map(serde_json::Value::take) {
        Some(serde_json::Value::String(consent)) => consent,
        _ => String::new(),
    };
    let result = match details.get_mut("result").map(serde_json::Value::take) {
        Some(result) if !result.is_null() => result,
        _ => {
            if let Some(object) = details.as_object_mut() {
                object.remove("consent");
            }
            details
        }
    };
    ScenarioRun {
        id: run.run_id,
        scenario: run.scenario,
        version: run.version,
        subject: run.subject,
        consent,
        outcome: run.outcome,
        result,
        ledger_index,
        at: run.at,
    }
}

/// A new exchange id: a time-ordered UUID (version 7) whose 74 random bits come from a
/// per-thread SplitMix64 sequence seeded by the operating system, so that an id costs no system
/// call. Ids name exchanges; they are not secrets.
fn new_exchange_id() -> String {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0; 8];
            getrandom::fill(&mut seed).expect("the operating system provides randomness");
            u64::from_le_bytes(seed)
        });
    }
    fn next(state: &std::cell::Cell<u64>) -> u64 {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (first, second) = STATE.with(|state| (next(state), next(state)));
    let mut random = [0; 10];
    random[..8].copy_from_slice(&first.to_le_bytes());
    random[8..].copy_from_slice(&second.to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// The 32 bytes a subject hash in an exchange record spells in lower-case hexadecimal.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
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

/// Replaces every valid citizen ID number in `text` by its masked form, so that paths and
/// queries recorded in the ledger carry no plaintext ID numbers. Tokens are runs of ASCII
/// letters and digits; only those of an ID number's length are parsed.
fn redact_citizen_ids(text: &str, found: &mut BTreeSet<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let token_end = rest
            .find(|character: char| !character.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_end);
        match (token.len() == 18).then(|| CitizenId::parse(token)) {
            Some(Ok(id)) => {
                out.push_str(&civitas_access::mask::mask_citizen_id(id.as_str()));
                if !found.contains(id.as_str()) {
                    found.insert(id.as_str().to_owned());
                }
            }
            _ => out.push_str(token),
        }
        let separators_end = after
            .find(|character: char| character.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        out.push_str(&after[..separators_end]);
        rest = &after[separators_end..];
    }
    out
}

impl Gateway {
    pub async fn new(
        store: Store,
        ledger: Ledger,
        config: GatewayConfig,
        registry: &mut prometheus_client::registry::Registry,
    ) -> anyhow::Result<Gateway> {
        let snapshot = Snapshot::load(&store, config.city_region).await?;
        let client = new_upstream_client();
        let gateway = Gateway {
            inner: Arc::new(Inner {
                store,
                ledger,
                config,
                snapshot: RwLock::new(snapshot),
                client,
                rates: RateLimits::default(),
                daily: DailyCounts::default(),
                breakers: CircuitBreakers::default(),
                metrics: GatewayMetrics::register(registry),
                today: std::sync::Mutex::new(Today {
                    date: String::new(),
                    starts: 0,
                    ends: 0,
                }),
                background: tokio::runtime::Handle::current(),
            }),
        };
        gateway.load_today().await?;
        Ok(gateway)
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
        let usage = self.inner.store.grant_usage(None, Some(&day)).await?;
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

    /// Keeps the in-memory snapshot current, flushes usage counts, and feeds the personal-data
    /// access index, until `stopped` turns true. `changes` is woken by the API after access
    /// changes so they apply at once; otherwise the store is polled four times a second.
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
                _ = stopped.changed() => {
                    self.flush_usage().await;
                    return;
                }
            }
            if let Err(error) = self.refresh().await {
                tracing::warn!(error = format!("{error:#}"), "gateway refresh failed");
            }
            // Every tick, so that a busy gateway's index work comes in small slices rather than
            // one burst a second that the gateway threads would wait behind.
            if let Err(error) = self.index_ledger().await {
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
        self.inner
            .snapshot
            .write()
            .expect("snapshot lock")
            .apply(changes)
    }

    async fn flush_usage(&self) {
        let (day, unflushed) = self.inner.daily.take_unflushed();
        if unflushed.is_empty() {
            return;
        }
        let usage: Vec<GrantUsage> = unflushed
            .into_iter()
            .map(|(grant, count)| GrantUsage {
                grant,
                day: day.clone(),
                calls: count.calls,
                denied: count.denied,
                bytes: count.bytes,
            })
            .collect();
        if let Err(error) = self.inner.store.add_grant_usage(&usage).await {
            tracing::warn!(%error, "grant usage not written");
        }
    }

    /// Brings the store's indexes derived from the ledger up to the ledger's current size: the
    /// personal-data access index (the subjects of exchange records) and the scenario runs (from
    /// their run records), in transactions of [`LEDGER_INDEX_BATCH`] records. Both can always be
    /// rebuilt from the ledger; reading them after this call sees every durable record.
    pub async fn index_ledger(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let ledger = &self.inner.ledger;
        let mut next = store.ledger_index_next().await?;
        let size = ledger.size();
        while next < size {
            let end = (next + LEDGER_INDEX_BATCH).min(size);
            let records = {
                let ledger = ledger.clone();
                tokio::task::spawn_blocking(move || ledger.read_range(next..end)).await??
            };
            let mut deliveries = Vec::new();
            let mut runs = Vec::new();
            for (offset, bytes) in records.iter().enumerate() {
                let ledger_index = next + offset as u64;
                match IndexedView::read(bytes) {
                    Some(IndexedRecord::Exchange(subjects)) => {
                        deliveries.extend(subjects.iter().filter_map(|subject| {
                            Some(SubjectDelivery {
                                subject: unhex32(subject)?,
                                ledger_index,
                            })
                        }));
                    }
                    Some(IndexedRecord::ScenarioRun) => {
                        if let Ok(Record::ScenarioRun(run)) = record::decode(bytes) {
                            runs.push(scenario_run_of(run, ledger_index));
                        }
                    }
                    None => {}
                }
            }
            store.add_ledger_index(&deliveries, &runs, end).await?;
            next = end;
        }
        Ok(())
    }

    /// The keyed hash of a citizen ID number, in hexadecimal as exchange records hold it.
    pub fn subject_hash(&self, id_number: &str) -> String {
        hex(&self.subject_key_hash(id_number))
    }

    fn subject_key_hash(&self, id_number: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.config.subject_key)
            .expect("any key length");
        mac.update(id_number.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Which exchanges delivered data about the person with this ID number, oldest first, a
    /// page at a time, each with its receipt: found in the personal-data access index (brought
    /// up to the ledger first, so that every exchange acknowledged before the call is covered)
    /// and read from their ledger records.
    pub async fn subject_accesses(
        &self,
        id_number: &CitizenId,
        page: &PageRequest,
    ) -> anyhow::Result<Page<SubjectAccess>> {
        self.index_ledger().await?;
        let key_hash = self.subject_key_hash(id_number.as_str());
        let subject = hex(&key_hash);
        let Page { items, next_cursor } =
            self.inner.store.subject_deliveries(&key_hash, page).await?;
        let ledger = self.inner.ledger.clone();
        let records = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|index| Ok((index, ledger.read(index)?)))
                .collect::<civitas_ledger::Result<Vec<_>>>()
        })
        .await??;
        let mut accesses = Vec::with_capacity(records.len());
        for (ledger_index, bytes) in records {
            let Record::Exchange(exchange) = record::decode(&bytes)? else {
                anyhow::bail!(
                    "the access index names ledger record {ledger_index}, which is not an exchange"
                );
            };
            // The record's own list is the evidence; the index only points at it.
            if !exchange.subjects.contains(&subject) {
                anyhow::bail!(
                    "the access index names ledger record {ledger_index}, which does not list the subject"
                );
            }
            accesses.push(SubjectAccess {
                subject: subject.clone(),
                ledger_index,
                receipt: self.inner.ledger.receipt(ledger_index).await?,
                exchange_id: exchange.exchange_id,
                at: exchange.at,
                consumer: exchange.consumer,
                provider: exchange.provider,
                service: exchange.service,
                resource: exchange.resource,
                grant: exchange.grant,
            });
        }
        Ok(Page {
            items: accesses,
            next_cursor,
        })
    }

    /// Serves the gateway on `listener` (with TLS when `tls` is given) until `stopped` turns
    /// true; connections in flight finish their requests. `threads` threads serve it, each a
    /// single-threaded event loop with its own pool of upstream connections: a call is read,
    /// forwarded, filtered and answered on one thread, never handed between threads (which costs
    /// more than the gateway's own work on a busy machine).
    ///
    /// Connections are accepted here, on the caller's runtime, and each is handed to the thread
    /// with the fewest open. Threads that accept from one shared socket split connections
    /// unevenly: whichever is awake takes what arrives, so a burst of new keep-alive connections
    /// can land on one thread and leave another idle for as long as they last.
    pub async fn serve_threads(
        &self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut stopped: watch::Receiver<bool>,
        threads: usize,
    ) -> anyhow::Result<()> {
        let threads = threads.max(1);
        let mut finished = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for number in 0..threads {
            let (handing, handed) = tokio::sync::mpsc::unbounded_channel();
            let open = self
                .inner
                .metrics
                .open_connections
                .get_or_create(&ThreadLabels {
                    thread: number as u32,
                })
                .clone();
            inboxes.push((handing, open.clone()));
            let connections = Connections::Handed { handed, open };
            let (gateway, tls, stopped) = (self.clone(), tls.clone(), stopped.clone());
            let (done, finished_one) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("gateway-{number}"))
                .spawn(move || {
                    let served = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(anyhow::Error::from)
                        .and_then(|runtime| {
                            runtime.block_on(async move {
                                let (completions, delivery) = Completions::new();
                                tokio::spawn(delivery);
                                let deadlines = Arc::new(Deadlines::default());
                                tokio::spawn(deadlines.clone().sweep());
                                THREAD_OWN.with(|own| {
                                    own.get_or_init(|| ThreadOwn {
                                        upstream: new_upstream_client(),
                                        completions,
                                        deadlines,
                                    });
                                });
                                gateway.serve_connections(connections, tls, stopped).await
                            })
                        });
                    let _ = done.send(served);
                })?;
            finished.push(finished_one);
        }
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "gateway accept failed");
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            // Moved to the thread's own event loop, which registers it anew.
            let mut connection = match stream.into_std() {
                Ok(stream) => (stream, peer),
                Err(error) => {
                    tracing::warn!(%error, %peer, "handing a gateway connection over failed");
                    continue;
                }
            };
            // A thread that ended (its error is reported below) takes no more.
            while let Some(position) = (0..inboxes.len()).min_by_key(|&at| inboxes[at].1.get()) {
                let (handing, open) = &inboxes[position];
                open.inc();
                match handing.send(connection) {
                    Ok(()) => break,
                    Err(returned) => {
                        open.dec();
                        connection = returned.0;
                        inboxes.swap_remove(position);
                    }
                }
            }
            if inboxes.is_empty() {
                break;
            }
        }
        drop(inboxes);
        drop(listener);
        for finished_one in finished {
            finished_one
                .await
                .map_err(|_| anyhow::anyhow!("a gateway thread ended without an answer"))??;
        }
        Ok(())
    }

    /// Serves the gateway on `listener` from the current task's runtime; see
    /// [`Gateway::serve_threads`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        self.serve_connections(Connections::Listener(listener), tls, stopped)
            .await
    }

    async fn serve_connections(
        &self,
        mut connections: Connections,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        loop {
            let (stream, peer, open) = tokio::select! {
                next = connections.next() => match next {
                    Some(Ok(next)) => next,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "gateway accept failed");
                        continue;
                    }
                    None => break,
                },
                _ = stopped.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            match &tls {
                None => {
                    let connection = hyper::server::conn::http1::Builder::new().serve_connection(
                        TokioIo::new(stream),
                        connection_service(gateway, Caller::Anonymous),
                    );
                    let watched = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _open = open;
                        if let Err(error) = watched.await {
                            tracing::debug!(%error, "gateway connection ended");
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _open = open;
                        let stream = match acceptor.accept(stream).await {
                            Ok(stream) => stream,
                            Err(error) => {
                                tracing::debug!(%error, %peer, "TLS handshake refused");
                                return;
                            }
                        };
                        let caller = match stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                        {
                            Some(certificate) => match tls::identity_of(certificate) {
                                Ok((system, serial)) => Caller::Certificate(system, serial),
                                Err(error) => {
                                    tracing::debug!(%error, %peer, "client certificate without identity");
                                    return;
                                }
                            },
                            None => Caller::Anonymous,
                        };
                        let connection = hyper::server::conn::http1::Builder::new()
                            .serve_connection(
                                TokioIo::new(stream),
                                connection_service(gateway, caller),
                            );
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%error, "gateway connection ended");
                        }
                    });
                }
            }
        }
        drop(connections);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                tracing::warn!("gateway connections still open after 10 s; closing");
            }
        }
        Ok(())
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
            Caller::Certificate(system, serial) => {
                let snapshot = self.inner.snapshot.read().expect("snapshot lock");
                if snapshot.revoked_certificates.contains(serial) {
                    return Err(unauthenticated("the client certificate is revoked"));
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

    /// The whole pipeline for one call.
    pub async fn handle(
        &self,
        caller: Caller,
        request: Request<GatewayBody>,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let (parts, request_body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let Some(rest) = path.strip_prefix("/x/") else {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                format!("gateway paths are /x/ORG/SYSTEM/SERVICE/…, not {path}"),
            )
            .response(None);
        };
        let mut segments = rest.splitn(4, '/');
        let (Some(organization), Some(system), Some(service_code)) =
            (segments.next(), segments.next(), segments.next())
        else {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "gateway paths are /x/ORG/SYSTEM/SERVICE/…",
            )
            .response(None);
        };
        let service_path = format!("/{}", segments.next().unwrap_or(""));
        // An internal call's record need only be in order (see `call_as`).
        let durable_later = matches!(caller, Caller::Internal(_));
        let consumer = match self.authenticate(&caller, &parts.headers) {
            Ok(consumer) => consumer,
            Err(problem) => {
                let mut response = problem.response(None);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        };
        if service_code == "video"
            && parts.method == Method::POST
            && let Some(device) = service_path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix("/play"))
        {
            return self
                .play(
                    consumer,
                    organization,
                    system,
                    device,
                    started,
                    durable_later,
                )
                .await;
        }
        // `{org}/{system}/{code}`, the service's name, as the path spells it.
        let service_name = &rest[..organization.len() + system.len() + service_code.len() + 2];
        let Some(service) = self
            .inner
            .snapshot
            .read()
            .expect("snapshot lock")
            .service_named(service_name)
        else {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_service",
                format!("no active service {organization}/{system}/{service_code}"),
            )
            .response(None);
        };
        let mut subjects_plain = BTreeSet::new();
        let recorded_path = match &query {
            Some(query) => {
                redact_citizen_ids(&format!("{service_path}?{query}"), &mut subjects_plain)
            }
            None => redact_citizen_ids(&service_path, &mut subjects_plain),
        };
        let mut exchange = Exchange {
            id: new_exchange_id(),
            started,
            at: Timestamp::now(),
            consumer: consumer.clone(),
            service: service.clone(),
            method: parts.method.as_str().to_owned(),
            path: recorded_path,
            grant: None,
            rule: None,
            allowed: false,
            request_bytes: 0,
            request_sha256: empty_sha256(),
            items: BTreeSet::new(),
            masked: BTreeSet::new(),
            durable_later,
            subjects: subjects_plain,
        };

        if !service.allows_method(parts.method.as_str()) {
            exchange.rule = Some("method_not_allowed".into());
            let problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} does not allow {}", service.name, parts.method),
            );
            return self.refuse(exchange, problem).await;
        }
        if !service.allows_path(&service_path) {
            exchange.rule = Some("path_not_allowed".into());
            let problem = Problem::new(
                StatusCode::NOT_FOUND,
                "path_not_allowed",
                format!("{} offers no {service_path}", service.name),
            );
            return self.refuse(exchange, problem).await;
        }

        // Decide.
        let now = exchange.at;
        let requested_items = parts
            .headers
            .get(ITEMS_HEADER)
            .and_then(|value| value.to_str().ok())
            .map(|value| {
                value
                    .split(',')
                    .map(|item| item.trim().to_owned())
                    .filter(|item| !item.is_empty())
                    .collect()
            });
        let expected_rows = parts
            .headers
            .get(BULK_ROWS_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let decision = {
            let snapshot = self.inner.snapshot.read().expect("snapshot lock");
            snapshot
                .organizations
                .get(&consumer.organization)
                .map(|organization_facts| {
                    let request = DecisionRequest {
                        consumer: ConsumerFacts {
                            system: consumer.clone(),
                            region: organization_facts.region,
                            level: organization_facts.level,
                        },
                        resource: service.resource.clone(),
                        requested_items,
                        at: now,
                        local_time: LocalTime::at_offset(now, self.inner.config.utc_offset),
                        bulk: expected_rows.is_some(),
                        expected_rows: expected_rows.unwrap_or(0),
                    };
                    decide(&request, &snapshot.grants, &snapshot.policies)
                })
        };
        let Some(decision) = decision else {
            exchange.rule = Some("unknown_consumer".into());
            return self
                .refuse(
                    exchange,
                    Problem::new(
                        StatusCode::FORBIDDEN,
                        "denied",
                        "the calling system's organization is unknown",
                    ),
                )
                .await;
        };
        let (grant_id, deliver, mask) = match decision {
            Decision::Deny { reason, rule } => {
                exchange.rule = Some(rule.clone());
                let problem = Problem::new(
                    StatusCode::FORBIDDEN,
                    "denied",
                    format!(
                        "{} may not read {} ({reason}, decided by {rule})",
                        consumer, service.resource.code
                    ),
                );
                return self.refuse(exchange, problem).await;
            }
            Decision::Allow {
                grant_id,
                rule,
                deliver,
                mask,
                ..
            } => {
                exchange.grant = Some(grant_id.clone());
                exchange.rule = Some(rule);
                (grant_id, deliver, mask)
            }
        };

        // The grant's rate and daily quota.
        let (rate, quota) = {
            let snapshot = self.inner.snapshot.read().expect("snapshot lock");
            snapshot
                .grants
                .get(&grant_id)
                .map(|grant| (grant.requests_per_second, grant.calls_per_day))
                .unwrap_or((None, None))
        };
        if let Some(rate) = rate
            && let Err(wait) = self.inner.rates.take(&grant_id, rate, Instant::now())
        {
            exchange.rule = Some(format!("rate_limit:{grant_id}"));
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("grant {grant_id} allows {rate} requests per second"),
            );
            problem.retry_after = Some(wait);
            return self.refuse(exchange, problem).await;
        }
        if !self.with_today(|day| self.inner.daily.admit(&grant_id, day, quota)) {
            exchange.rule = Some(format!("quota:{grant_id}"));
            let local = self.inner.config.utc_offset.to_datetime(Timestamp::now());
            let seconds_left = 86_400
                - (i64::from(local.hour()) * 3600
                    + i64::from(local.minute()) * 60
                    + i64::from(local.second()));
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exhausted",
                format!("grant {grant_id} allows {} calls a day", quota.unwrap_or(0)),
            );
            problem.retry_after = Some(Duration::from_secs(seconds_left.max(1) as u64));
            return self.refuse(exchange, problem).await;
        }
        exchange.allowed = true;

        // The circuit breaker.
        let admission = self.inner.breakers.admit(&service.name, Instant::now());
        if let Admission::Open(wait) = admission {
            exchange.rule = Some("circuit_open".into());
            exchange.allowed = false;
            let mut problem = Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "circuit_open",
                format!(
                    "{} failed repeatedly; calls fail fast until a probe succeeds",
                    service.name
                ),
            );
            problem.retry_after = Some(wait);
            return self.refuse(exchange, problem).await;
        }

        // Forward.
        let upstream_path = match &query {
            Some(query) => format!("{service_path}?{query}"),
            None => service_path.clone(),
        };
        let uri = match service.upstream_uri(&upstream_path) {
            Ok(uri) => uri,
            Err(error) => {
                exchange.allowed = false;
                exchange.rule = Some("bad_path".into());
                return self
                    .refuse(
                        exchange,
                        Problem::new(StatusCode::BAD_REQUEST, "bad_path", error.to_string()),
                    )
                    .await;
            }
        };
        // A request without a body (most calls are GETs) needs no tally: its size and digest
        // are those of nothing, which the exchange starts with.
        let (upstream_body, request_tally) = if request_body.is_end_stream() {
            (body::empty(), None)
        } else {
            let (tallied, tally) = TallyBody::new(request_body);
            (tallied.boxed_unsync(), Some(tally))
        };
        let mut upstream_request = Request::builder().method(parts.method.clone()).uri(uri);
        for (name, value) in &parts.headers {
            if is_hop_by_hop(name) || *name == header::AUTHORIZATION || *name == header::HOST {
                continue;
            }
            upstream_request = upstream_request.header(name, value);
        }
        upstream_request = upstream_request
            .header("civitas-consumer", consumer.to_string())
            .header(EXCHANGE_ID_HEADER, exchange.id.as_str());
        let upstream_request = upstream_request
            .body(upstream_body)
            .expect("a valid upstream request");
        let sent = Instant::now();
        let outcome = Self::within(service.timeout, self.send_upstream(upstream_request)).await;
        if let Some(tally) = request_tally {
            let tally = tally.current();
            exchange.request_bytes = tally.bytes;
            exchange.request_sha256 = tally.sha256;
        }
        let upstream_response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.inner.breakers.failed(&service.name, Instant::now());
                exchange.rule = Some("upstream_refused".into());
                let problem = Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_refused",
                    format!("{} could not be reached: {error}", service.name),
                );
                return self.refuse(exchange, problem).await;
            }
            Err(deadline::Elapsed) => return self.timed_out(exchange, &service).await,
        };
        if upstream_response.status().is_server_error() {
            self.inner.breakers.failed(&service.name, Instant::now());
        } else {
            self.inner.breakers.succeeded(&service.name);
        }
        let (upstream_parts, upstream_body) = upstream_response.into_parts();
        let is_json = upstream_parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let mime = value.split(';').next().unwrap_or("").trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        let treatment_of = |item: &str| -> Treatment {
            if let Some(masked) = mask.iter().find(|masked| masked.code == item) {
                Treatment::Mask(masked.kind)
            } else if deliver.iter().any(|delivered| delivered == item) {
                Treatment::Deliver
            } else {
                Treatment::Drop
            }
        };
        if is_json {
            // The whole answer must arrive within the service's time limit.
            let limited =
                http_body_util::Limited::new(upstream_body, self.inner.config.max_json_bytes);
            let left = service.timeout.saturating_sub(sent.elapsed());
            let bytes = match Self::within(left, limited.collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Err(deadline::Elapsed) => return self.timed_out(exchange, &service).await,
                Ok(Err(error)) => {
                    exchange.rule = Some("upstream_body".into());
                    let problem = Problem::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_body",
                        format!(
                            "{}'s answer could not be read whole for filtering: {error}",
                            service.name
                        ),
                    );
                    return self.refuse(exchange, problem).await;
                }
            };
            let delivered_body = if bytes.is_empty() {
                bytes
            } else {
                let filtered = service.tree.filter_json(&bytes, &treatment_of, &|item| {
                    service.citizen_id_items.contains(item)
                });
                let (filtered, delivered) = match filtered {
                    Ok(filtered) => filtered,
                    Err(error) => {
                        exchange.rule = Some("upstream_malformed_json".into());
                        let problem = Problem::new(
                            StatusCode::BAD_GATEWAY,
                            "upstream_malformed_json",
                            format!("{} answered malformed JSON: {error}", service.name),
                        );
                        return self.refuse(exchange, problem).await;
                    }
                };
                exchange.items = delivered.items;
                exchange.masked = delivered.masked;
                exchange.subjects.extend(delivered.citizen_ids);
                Bytes::from(filtered)
            };
            let mut response = Response::new(full(delivered_body.clone()));
            *response.status_mut() = upstream_parts.status;
            copy_end_to_end_headers(&upstream_parts.headers, response.headers_mut());
            response.headers_mut().remove(header::CONTENT_LENGTH);
            return self
                .complete(
                    exchange,
                    response,
                    delivered_body.len() as u64,
                    sha256(&delivered_body),
                )
                .await;
        }

        // A non-JSON answer cannot be filtered field by field: it passes only when the grant
        // delivers every item of the resource as it is.
        let unfilterable = service
            .resource
            .items
            .iter()
            .any(|item| treatment_of(&item.code) != Treatment::Deliver);
        if unfilterable && upstream_parts.status.is_success() {
            exchange.allowed = false;
            exchange.rule = Some("unfilterable_answer".into());
            let problem = Problem::new(
                StatusCode::BAD_GATEWAY,
                "unfilterable_answer",
                format!(
                    "{} answered in a format that cannot be filtered to the granted items",
                    service.name
                ),
            );
            return self.refuse(exchange, problem).await;
        }
        exchange.items = service
            .resource
            .items
            .iter()
            .map(|item| item.code.clone())
            .collect();
        self.stream(exchange, upstream_parts, upstream_body).await
    }

    /// Appends an exchange's record before its answer: durably, or for an internal call only in
    /// order (see [`Gateway::call_as`]).
    async fn append_record(
        &self,
        exchange: &Exchange,
        record: ExchangeRecord,
    ) -> civitas_ledger::Result<u64> {
        let bytes = record::encode(&Record::Exchange(record));
        let ledger = &self.inner.ledger;
        let started = Instant::now();
        let appended = match (
            thread_own(|own| own.completions.clone()),
            exchange.durable_later,
        ) {
            (Some(via), false) => ledger.append_via(&via, bytes).await,
            (Some(via), true) => ledger.append_ordered_via(&via, bytes).await,
            (None, false) => ledger.append(bytes).await,
            (None, true) => ledger.append_ordered(bytes).await,
        };
        self.inner
            .metrics
            .ledger_waits
            .observe(started.elapsed().as_secs_f64());
        appended
    }

    /// The upstream did not answer whole within the service's time limit: 504, recorded.
    async fn timed_out(
        &self,
        mut exchange: Exchange,
        service: &CompiledService,
    ) -> Response<GatewayBody> {
        self.inner.breakers.failed(&service.name, Instant::now());
        exchange.rule = Some("upstream_timeout".into());
        let problem = Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "{} did not answer within {} ms",
                service.name,
                service.timeout.as_millis()
            ),
        );
        self.refuse(exchange, problem).await
    }

    /// Records a refusal (or failure) in the ledger and answers with the problem.
    async fn refuse(&self, mut exchange: Exchange, problem: Problem) -> Response<GatewayBody> {
        exchange.allowed = exchange.allowed && problem.status.is_success();
        let body = problem.body(exchange.rule.as_deref());
        let digest = sha256(&body);
        let mut response = problem.response(exchange.rule.as_deref());
        *response.body_mut() = full(body.clone());
        self.complete(exchange, response, body.len() as u64, digest)
            .await
    }

    /// Appends the exchange record, waits for it to be durable (for an internal call, only in
    /// order), and answers.
    async fn complete(
        &self,
        mut exchange: Exchange,
        mut response: Response<GatewayBody>,
        response_bytes: u64,
        response_sha256: [u8; 32],
    ) -> Response<GatewayBody> {
        let status = response.status();
        let record =
            self.exchange_record(&mut exchange, status, response_bytes, response_sha256, None);
        let index = match self.append_record(&exchange, record).await {
            Ok(index) => index,
            Err(error) => {
                // No exchange is acknowledged before its record is durable.
                tracing::error!(%error, "exchange record not appended; refusing the answer");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the exchange could not be recorded, so it is not delivered",
                )
                .response(None);
            }
        };
        if let Some(grant) = &exchange.grant
            && exchange.allowed
        {
            self.inner.daily.add_bytes(grant, response_bytes);
        }
        self.observe(&exchange, status, response_bytes);
        let headers = response.headers_mut();
        headers.insert(
            EXCHANGE_ID_HEADER,
            HeaderValue::from_str(&exchange.id).expect("a uuid is a header value"),
        );
        headers.insert(RECEIPT_HEADER, HeaderValue::from(index));
        response
    }

    /// Streams a non-JSON answer: the exchange record (with the request's digest) is made
    /// durable before the answer's headers go out, and a completion record with the answer's
    /// size and digest follows when the body has been sent.
    async fn stream(
        &self,
        mut exchange: Exchange,
        upstream_parts: http::response::Parts,
        upstream_body: Incoming,
    ) -> Response<GatewayBody> {
        let status = upstream_parts.status;
        let opening = self.exchange_record(
            &mut exchange,
            status,
            0,
            empty_sha256(),
            Some("stream_start"),
        );
        let index = match self.append_record(&exchange, opening).await {
            Ok(index) => index,
            Err(error) => {
                tracing::error!(%error, "exchange record not appended; refusing the answer");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the exchange could not be recorded, so it is not delivered",
                )
                .response(None);
            }
        };
        let (tallied, tally) = TallyBody::new(upstream_body);
        let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(tallied));
        *response.status_mut() = status;
        copy_end_to_end_headers(&upstream_parts.headers, response.headers_mut());
        response.headers_mut().insert(
            EXCHANGE_ID_HEADER,
            HeaderValue::from_str(&exchange.id).expect("a uuid is a header value"),
        );
        response
            .headers_mut()
            .insert(RECEIPT_HEADER, HeaderValue::from(index));
        let gateway = self.clone();
        // On the runtime the gateway was made on, which outlives the gateway's threads: a
        // completion record still being appended when they stop is not dropped with them.
        self.inner.background.spawn(async move {
            let tally = tally.finished().await;
            let completion = gateway.exchange_record(
                &mut exchange,
                status,
                tally.bytes,
                tally.sha256,
                Some("stream_complete"),
            );
            if let Err(error) = gateway
                .inner
                .ledger
                .append(record::encode(&Record::Exchange(completion)))
                .await
            {
                tracing::error!(%error, exchange = exchange.id, "stream completion record not appended");
            }
            if let Some(grant) = &exchange.grant {
                gateway.inner.daily.add_bytes(grant, tally.bytes);
            }
            gateway.observe(&exchange, status, tally.bytes);
        });
        response
    }

    /// The ledger record of `exchange`. Only keyed hashes of the subjects' ID numbers are
    /// recorded. Without a `phase` the record is the exchange's only one, and takes the
    /// exchange's rule, method, path and items instead of copying them.
    fn exchange_record(
        &self,
        exchange: &mut Exchange,
        status: StatusCode,
        response_bytes: u64,
        response_sha256: [u8; 32],
        phase: Option<&str>,
    ) -> ExchangeRecord {
        let only = phase.is_none();
        let take_or_clone = |text: &mut String| {
            if only {
                std::mem::take(text)
            } else {
                text.clone()
            }
        };
        let rule = match (phase, &mut exchange.rule) {
            (Some(phase), Some(rule)) => Some(format!("{rule};{phase}")),
            (Some(phase), None) => Some(phase.to_owned()),
            (None, rule) => rule.take(),
        };
        let method = take_or_clone(&mut exchange.method);
        let path = take_or_clone(&mut exchange.path);
        let (items, masked) = if only {
            (
                std::mem::take(&mut exchange.items).into_iter().collect(),
                std::mem::take(&mut exchange.masked).into_iter().collect(),
            )
        } else {
            (
                exchange.items.iter().cloned().collect(),
                exchange.masked.iter().cloned().collect(),
            )
        };
        let mut subjects: Vec<String> = exchange
            .subjects
            .iter()
            .map(|id| self.subject_hash(id))
            .collect();
        // The record lists them in order, as a set of hashes.
        subjects.sort_unstable();
        ExchangeRecord {
            at: exchange.at,
            exchange_id: exchange.id.clone(),
            consumer: exchange.consumer.to_string(),
            provider: exchange.service.service.provider.to_string(),
            service: exchange.service.service.draft.code.to_string(),
            resource: exchange.service.resource.code.to_string(),
            grant: exchange.grant.clone(),
            decision: if exchange.allowed {
                RecordDecision::Allow
            } else {
                RecordDecision::Deny
            },
            rule,
            method,
            path,
            status: status.as_u16(),
            request_bytes: exchange.request_bytes,
            response_bytes,
            request_sha256: Sha256Digest(exchange.request_sha256),
            response_sha256: Sha256Digest(response_sha256),
            latency_us: exchange.started.elapsed().as_micros() as u64,
            items,
            masked,
            subjects,
        }
    }

    fn observe(&self, exchange: &Exchange, status: StatusCode, response_bytes: u64) {
        let labels = ExchangeLabels {
            consumer: exchange.consumer.to_string(),
            provider: exchange.service.service.provider.to_string(),
            service: exchange.service.service.draft.code.to_string(),
            status: status.as_u16(),
        };
        let metrics = &self.inner.metrics;
        metrics.exchanges.get_or_create(&labels).inc();
        metrics
            .durations
            .get_or_create(&labels)
            .observe(exchange.started.elapsed().as_secs_f64());
        metrics
            .response_bytes
            .get_or_create(&labels)
            .inc_by(response_bytes);
    }

    /// `POST /x/{org}/{system}/video/{device}/play`: a short-lived signed playback URL for a
    /// granted camera. Video never passes through the gateway.
    async fn play(
        &self,
        consumer: SystemRef,
        organization: &str,
        system: &str,
        device: &str,
        started: Instant,
        durable_later: bool,
    ) -> Response<GatewayBody> {
        let not_found = |detail: String| {
            Problem::new(StatusCode::NOT_FOUND, "no_service", detail).response(None)
        };
        let resource = match self.inner.store.video_resource(device).await {
            Ok(resource) => resource,
            Err(civitas_store::StoreError::NotFound { .. }) => {
                return not_found(format!("no video resource for camera {device}"));
            }
            Err(error) => {
                tracing::error!(%error, "looking up a camera");
                return Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the catalog is unavailable",
                )
                .response(None);
            }
        };
        let provider_matches = resource.draft.provider.as_str() == organization
            && resource
                .draft
                .provider_system
                .as_ref()
                .is_none_or(|s| s.as_str() == system);
        let Some(video_service) = self.inner.snapshot.read().expect("snapshot lock").service(
            organization,
            system,
            "video",
        ) else {
            return not_found(format!("{organization}/{system} offers no video service"));
        };
        if !provider_matches {
            return not_found(format!(
                "camera {device} is not provided by {organization}/{system}"
            ));
        }
        let now = Timestamp::now();
        let facts = ResourceFacts {
            code: resource.draft.code.clone(),
            kind: ResourceKind::Video,
            provider: resource.draft.provider.clone(),
            provider_region: video_service.resource.provider_region,
            items: Vec::new(),
        };
        let mut exchange = Exchange {
            id: new_exchange_id(),
            started,
            at: now,
            consumer: consumer.clone(),
            service: Arc::new(CompiledService {
                resource: facts.clone(),
                ..CompiledService::compile(
                    video_service.service.clone(),
                    &resource,
                    video_service.resource.provider_region,
                )
            }),
            method: "POST".into(),
            path: format!("/{device}/play"),
            grant: None,
            rule: None,
            allowed: false,
            request_bytes: 0,
            request_sha256: empty_sha256(),
            items: BTreeSet::new(),
            masked: BTreeSet::new(),
            durable_later,
            subjects: BTreeSet::new(),
        };
        let decision = {
            let snapshot = self.inner.snapshot.read().expect("snapshot lock");
            snapshot
                .organizations
                .get(&consumer.organization)
                .map(|organization_facts| {
                    let request = DecisionRequest {
                        consumer: ConsumerFacts {
                            system: consumer.clone(),
                            region: organization_facts.region,
                            level: organization_facts.level,
                        },
                        resource: facts,
                        requested_items: None,
                        at: now,
                        local_time: LocalTime::at_offset(now, self.inner.config.utc_offset),
                        bulk: false,
                        expected_rows: 0,
                    };
                    decide(&request, &snapshot.grants, &snapshot.policies)
                })
        };
        let Some(decision) = decision else {
            return self
                .refuse(
                    exchange,
                    Problem::new(
                        StatusCode::FORBIDDEN,
                        "denied",
                        "the calling system's organization is unknown",
                    ),
                )
                .await;
        };
        match decision {
            Decision::Deny { reason, rule } => {
                exchange.rule = Some(rule.clone());
                let problem = Problem::new(
                    StatusCode::FORBIDDEN,
                    "denied",
                    format!(
                        "{consumer} may not play camera {device} ({reason}, decided by {rule})"
                    ),
                );
                self.refuse(exchange, problem).await
            }
            Decision::Allow { grant_id, rule, .. } => {
                exchange.grant = Some(grant_id);
                exchange.rule = Some(rule);
                exchange.allowed = true;
                let expires = now
                    + jiff::SignedDuration::try_from(self.inner.config.playback_validity)
                        .expect("a short duration");
                let expires_unix = expires.as_second();
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.config.video_key)
                    .expect("any key length");
                mac.update(format!("{device}|{consumer}|{expires_unix}").as_bytes());
                let signature: String = mac
                    .finalize()
                    .into_bytes()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let url = format!(
                    "{}/play/{device}?consumer={consumer}&expires={expires_unix}&signature={signature}",
                    video_service.upstream
                );
                let body = Bytes::from(
                    json!({ "device": device, "url": url, "expires_at": expires.to_string() })
                        .to_string(),
                );
                let digest = sha256(&body);
                let mut response = Response::new(full(body.clone()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                self.complete(exchange, response, body.len() as u64, digest)
                    .await
            }
        }
    }
}

/// The per-connection service: every request of the connection goes through [`Gateway::handle`]
/// with the connection's caller.
fn connection_service(
    gateway: Gateway,
    caller: Caller,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<GatewayBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<GatewayBody>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let gateway = gateway.clone();
        let caller = caller.clone();
        async move {
            let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
            Ok(gateway.handle(caller, request).await)
        }
    })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !is_hop_by_hop(name) {
            to.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civitas_ledger::record::AdminRecord;

    #[test]
    fn key_hashes_are_the_stores() {
        for key in ["", "cvk_bench-admin-key-0123456789", "密钥"] {
            assert_eq!(key_hash(key), civitas_core::registry::api_key_hash(key));
        }
    }

    #[test]
    fn exchange_ids_are_distinct_time_ordered_uuids() {
        let ids: BTreeSet<String> = (0..10_000).map(|_| new_exchange_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
            let (seconds, _) = uuid.get_timestamp().unwrap().to_unix();
            assert!(seconds.abs_diff(Timestamp::now().as_second() as u64) < 60);
        }
    }

    #[test]
    fn citizen_ids_in_paths_are_redacted() {
        let check = |text: &str, expected: &str, ids: &[&str]| {
            let mut found = BTreeSet::new();
            assert_eq!(redact_citizen_ids(text, &mut found), expected);
            assert_eq!(found.iter().map(String::as_str).collect::<Vec<_>>(), ids);
        };
        check("", "", &[]);
        check(
            "/persons/11010519491231002X",
            "/persons/110105********002X",
            &["11010519491231002X"],
        );
        check(
            "/p?owner=11010519491231002x&again=11010519491231002X/",
            "/p?owner=110105********002X&again=110105********002X/",
            &["11010519491231002X"],
        );
        // Not ID numbers: a wrong check character, a longer token, a birth date that is none.
        check(
            "//110105194912310021/11010519491231002X9/110105194913310023",
            "//110105194912310021/11010519491231002X9/110105194913310023",
            &[],
        );
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

    #[test]
    fn the_index_reads_the_subjects_of_exchange_records_only() {
        let exchange = ExchangeRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            exchange_id: "e".into(),
            consumer: "c/s".into(),
            provider: "p/s".into(),
            service: "svc".into(),
            resource: "320100-B01-000001".into(),
            grant: Some("g".into()),
            decision: RecordDecision::Allow,
            rule: None,
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            request_bytes: 0,
            response_bytes: 0,
            request_sha256: Sha256Digest([0; 32]),
            response_sha256: Sha256Digest([0; 32]),
            latency_us: 1,
            items: vec!["name".into()],
            masked: vec![],
            subjects: vec!["aa".into(), "bb".into()],
        };
        let Some(IndexedRecord::Exchange(subjects)) =
            IndexedView::read(&record::encode(&Record::Exchange(exchange.clone())))
        else {
            panic!("an exchange with subjects")
        };
        assert_eq!(subjects, ["aa", "bb"]);
        let without = ExchangeRecord {
            subjects: vec![],
            ..exchange
        };
        assert!(IndexedView::read(&record::encode(&Record::Exchange(without))).is_none());
        let admin = Record::Admin(AdminRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            actor: "user:alice".into(),
            action: "organization.create".into(),
            object_kind: "organization".into(),
            object_id: "x".into(),
            details: json!({"subjects": ["aa"], "consumer": "c/s"}),
        });
        assert!(IndexedView::read(&record::encode(&admin)).is_none());
    }

    #[test]
    fn subject_hashes_read_back_from_their_hexadecimal() {
        let bytes: [u8; 32] = std::array::from_fn(|at| (at * 37 + 5) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        let text = hex(&bytes);
        assert_eq!(unhex32(&text[..62]), None, "too short");
        assert_eq!(
            unhex32(&text.to_uppercase()),
            None,
            "records spell hashes in lower case"
        );
        assert_eq!(unhex32(&format!("{}g", &text[..63])), None);
    }

    #[test]
    fn scenario_run_records_give_the_stores_rows() {
        let run = ScenarioRunRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            run_id: "r-1".into(),
            scenario: "rental".into(),
            version: 2,
            subject: "ab12".into(),
            outcome: "approve".into(),
            exchanges: vec![3, 4],
            details: json!({
                "consent": "c-9",
                "result": { "outcome": "approve", "values": { "amount": 4500 } },
            }),
        };
        let bytes = record::encode(&Record::ScenarioRun(run.clone()));
        assert!(matches!(
            IndexedView::read(&bytes),
            Some(IndexedRecord::ScenarioRun)
        ));
        let row = scenario_run_of(run.clone(), 7);
        assert_eq!(
            (row.id.as_str(), row.scenario.as_str(), row.version),
            ("r-1", "rental", 2)
        );
        assert_eq!(
            (
                row.subject.as_str(),
                row.consent.as_str(),
                row.outcome.as_str()
            ),
            ("ab12", "c-9", "approve")
        );
        assert_eq!(row.result["values"]["amount"], 4500);
        assert_eq!((row.ledger_index, row.at), (7, run.at));
        // Records from before the result was kept whole: their details stand as the result.
        let older = ScenarioRunRecord {
            details: json!({ "consent": "c-1", "values": {}, "reason": "a rule did not hold" }),
            ..run
        };
        let row = scenario_run_of(older, 8);
        assert_eq!(row.consent, "c-1");
        assert_eq!(
            row.result,
            json!({ "values": {}, "reason": "a rule did not hold" })
        );
    }
}
