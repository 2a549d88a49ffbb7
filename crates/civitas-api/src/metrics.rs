//! Prometheus metrics of the API: request counts and latency histograms by route and status, and
//! the ledger scrub's progress and findings, read from the ledger at each scrape.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

type HistogramFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// The API's metric families, registered once at start.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    scrub_passes: Gauge,
    scrub_checked_bytes: Gauge,
    scrub_damage: Gauge,
}

impl ApiMetrics {
    pub fn register(registry: &mut Registry) -> ApiMetrics {
        let requests = Family::<RequestLabels, Counter>::default();
        let durations: HistogramFamily = Family::new_with_constructor(|| {
            // 100 µs up to about 3.3 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 16))
        });
        registry.register(
            "civitas_http_requests",
            "HTTP requests answered by the API",
            requests.clone(),
        );
        registry.register(
            "civitas_http_request_duration_seconds",
            "Time to answer an API request",
            durations.clone(),
        );
        let scrub_passes = Gauge::default();
        let scrub_checked_bytes = Gauge::default();
        let scrub_damage = Gauge::default();
        registry.register(
            "civitas_ledger_scrub_passes",
            "Passes the ledger scrub has completed over every record since the ledger was opened",
            scrub_passes.clone(),
        );
        registry.register(
            "civitas_ledger_scrub_checked_bytes",
            "Bytes of record frames the ledger scrub has checked since the ledger was opened",
            scrub_checked_bytes.clone(),
        );
        registry.register(
            "civitas_ledger_scrub_damage",
            "1 once the ledger scrub has found a record that fails its checksum or stored hashes, else 0",
            scrub_damage.clone(),
        );
        ApiMetrics {
            requests,
            durations,
            scrub_passes,
            scrub_checked_bytes,
            scrub_damage,
        }
    }

    /// Sets the scrub gauges from the ledger's scrub status (left at zero without a scrub).
    pub fn observe_scrub(&self, status: &civitas_ledger::ScrubStatus) {
        let saturating = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.scrub_passes.set(saturating(status.passes_completed));
        self.scrub_checked_bytes
            .set(saturating(status.bytes_checked));
        self.scrub_damage.set(i64::from(status.damage.is_some()));
    }
}

/// Middleware that counts and times every request under its route pattern (not its concrete
/// path, which would make one series per organization).
pub async fn record_request(
    State(metrics): State<ApiMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let labels = RequestLabels {
        route,
        method,
        status: response.status().as_u16(),
    };
    metrics
        .durations
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    metrics.requests.get_or_create(&labels).inc();
    response
}
