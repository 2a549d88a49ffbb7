//! Prometheus metrics of the gateway: calls and latency by consumer, provider, service and
//! status, bytes delivered, how long calls wait for the ledger, the connections open on each
//! gateway thread, which services' circuits are open, and how many active platform policies no
//! longer validate.

use civitas_access::PlatformPolicies;
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
pub struct ExchangeLabels {
    pub consumer: String,
    pub provider: String,
    pub service: String,
    pub status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabels {
    pub service: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThreadLabels {
    pub thread: u32,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyStateLabels {
    /// `stale` or `unusable`, as `civitas_access::PolicyStatus` names them.
    pub state: &'static str,
}

type HistogramFamily = Family<ExchangeLabels, Histogram, fn() -> Histogram>;

#[derive(Clone)]
pub struct GatewayMetrics {
    pub exchanges: Family<ExchangeLabels, Counter>,
    pub durations: HistogramFamily,
    pub response_bytes: Family<ExchangeLabels, Counter>,
    /// How long each call waited for its exchange record's append: the share of the latency
    /// that durable evidence costs.
    pub ledger_waits: Histogram,
    /// Consumer connections open on each gateway thread.
    pub open_connections: Family<ThreadLabels, Gauge>,
    /// 1 while a service's circuit is open (or half-open), 0 once it closed again.
    pub open_circuits: Family<ServiceLabels, Gauge>,
    /// Active platform policies the gateway loaded that no longer validate, by how they fare.
    pub policies_not_valid: Family<PolicyStateLabels, Gauge>,
}

impl GatewayMetrics {
    pub fn register(registry: &mut Registry) -> GatewayMetrics {
        let metrics = GatewayMetrics {
            exchanges: Family::default(),
            durations: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0001, 2.0, 18))
            }),
            response_bytes: Family::default(),
            // From 50 µs to about a second in steps of √2: a group commit's wait mostly lies
            // between a tenth of a millisecond and a few, where doubling steps say little.
            ledger_waits: Histogram::new(exponential_buckets(
                0.00005,
                std::f64::consts::SQRT_2,
                30,
            )),
            open_connections: Family::default(),
            open_circuits: Family::default(),
            policies_not_valid: Family::default(),
        };
        registry.register(
            "civitas_gateway_exchanges",
            "Calls through the exchange gateway",
            metrics.exchanges.clone(),
        );
        registry.register(
            "civitas_gateway_exchange_duration_seconds",
            "Time from a call's arrival to its answer, ledger append included",
            metrics.durations.clone(),
        );
        registry.register(
            "civitas_gateway_response_bytes",
            "Bytes delivered to consumers",
            metrics.response_bytes.clone(),
        );
        registry.register(
            "civitas_gateway_ledger_wait_seconds",
            "Time a call waited for its exchange record to be appended to the ledger (durably, \
             unless it was an internal call)",
            metrics.ledger_waits.clone(),
        );
        registry.register(
            "civitas_gateway_open_connections",
            "Consumer connections open on each gateway thread",
            metrics.open_connections.clone(),
        );
        registry.register(
            "civitas_gateway_circuit_open",
            "Whether a service's circuit breaker is open: its calls fail fast until a probe succeeds",
            metrics.open_circuits.clone(),
        );
        registry.register(
            "civitas_gateway_policies_not_valid",
            "Active platform policies that no longer validate: stale ones are evaluated as \
             written, unusable ones refuse every exchange the policies decide until fixed or \
             deactivated",
            metrics.policies_not_valid.clone(),
        );
        metrics
    }

    /// Counts the policies the gateway now decides with that do not validate.
    pub fn observe_policies(&self, policies: &PlatformPolicies) {
        for state in ["stale", "unusable"] {
            let count = policies
                .not_valid()
                .filter(|(_, status)| status.as_str() == state)
                .count();
            self.policies_not_valid
                .get_or_create(&PolicyStateLabels { state })
                .set(count as i64);
        }
    }
}
