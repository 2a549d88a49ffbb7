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

/// What scrub damage is in: `records` or `derived` (`civitas_ledger::DamageKind`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DamageLabels {
    kind: &'static str,
}

/// The API's metric families, registered once at start.
#[derive(Clone)]
pub struct ApiMetrics {
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    scrub_passes: Gauge,
    scrub_checked_bytes: Gauge,
    scrub_damage: Family<DamageLabels, Gauge>,
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
        let scrub_damage = Family::<DamageLabels, Gauge>::default();
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
            "1 once the ledger scrub has found damage of this kind (`records`: a record's frame, or records that no longer give the signed root; `derived`: the hashes derived from intact records), else 0",
            scrub_damage.clone(),
        );
        // Both series exist from the start, so that an alert on either sees a 0 before a 1.
        for kind in civitas_ledger::DamageKind::ALL {
            scrub_damage
                .get_or_create(&DamageLabels {
                    kind: kind.as_str(),
                })
                .set(0);
        }
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
        let found = status.damage.as_ref().map(|damage| damage.problem.kind());
        for kind in civitas_ledger::DamageKind::ALL {
            self.scrub_damage
                .get_or_create(&DamageLabels {
                    kind: kind.as_str(),
                })
                .set(i64::from(found == Some(kind)));
        }
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
