//! The civitas HTTP API: JSON under `/api/v1` described by OpenAPI 3.1, problem+json errors from
//! one table, Prometheus metrics, health and readiness probes.
//!
//! Only this crate (and the gateway) knows HTTP. Handlers authenticate the caller with the
//! [`auth::Caller`] extractor, ask the authorization table for a permit, and hand the permit to the
//! store, which records the change and its audit event together.

pub mod access;
pub mod audit;
pub mod auth;
pub mod catalog;
pub mod ckan;
mod dcat;
pub mod error;
pub mod extract;
mod fq;
pub mod ledger;
pub mod metrics;
mod openapi;
mod ops;
pub mod policies;
mod rdf;
pub mod registry;
pub mod scenarios;
pub mod search;
pub mod services;

use std::sync::Arc;

use axum::{Router, middleware};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use civitas_store::{Page, PageRequest, Store};
use serde::Serialize;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};
use utoipa::ToSchema;

pub use error::{ApiError, ApiResult, Problem};
pub use metrics::ApiMetrics;
pub use registry::NodeInfo;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub node: Arc<NodeInfo>,
    pub metrics: ApiMetrics,
    pub registry: Arc<prometheus_client::registry::Registry>,
    /// Woken after every catalog change, so that the search index follows at once instead of at
    /// its next poll.
    pub catalog_changes: Arc<tokio::sync::Notify>,
    /// The public base URL of the API, without a trailing slash; RDF identifiers start with it.
    pub public_url: Arc<str>,
    /// The data chain: audit events, exchanges and scenario runs.
    pub ledger: civitas_ledger::Ledger,
    pub access: AccessSettings,
    /// Woken after every grant or policy change, so that the gateway's cache follows at once.
    pub access_changes: Arc<tokio::sync::Notify>,
    /// The exchange gateway, for the calls the API makes through it and the keyed hashes of the
    /// personal-data access index.
    pub gateway: civitas_gateway::Gateway,
    /// The node's CA for system client certificates.
    pub certificate_authority: Arc<civitas_gateway::tls::CertificateAuthority>,
    /// The catalog's search index.
    pub search: civitas_search::CatalogIndex,
    /// Compiled application scenarios, by code.
    pub scenarios: scenarios::ScenarioCache,
    /// Serializes shipping audit events into the ledger, so that they land in the order they
    /// happened and each exactly once; holds where shipped events landed that the store has not
    /// noted yet (see [`ledger::ship_audit_events`]).
    pub audit_shipping: Arc<tokio::sync::Mutex<Vec<(i64, u64)>>>,
    /// API keys recently found valid.
    pub keys: auth::KeyCache,
}

impl AppState {
    /// Called by every handler after a change committed: appends the change's audit event (and
    /// any other still in the store's outbox) to the ledger before the handler answers. A failure
    /// leaves the events in the outbox, where the periodic shipper finds them again.
    pub async fn audit_changed(&self) {
        // The change may have revoked a key or deactivated its owner.
        self.keys.clear();
        // Once the store is another ledger's, that was logged when found, and the events wait
        // for the node that has the store.
        if let Err(error) = self.ship_audit_events().await
            && self.gateway.handed_over().is_none()
        {
            tracing::error!(
                error = format!("{error:#}"),
                "audit events wait in the outbox"
            );
        }
    }

    /// Moves every audit event from the store's outbox into the ledger; none once the store
    /// is found to be another node's ledger's (see `Gateway::handed_over`).
    pub async fn ship_audit_events(&self) -> anyhow::Result<usize> {
        if let Some(why) = self.gateway.handed_over() {
            anyhow::bail!("{why}");
        }
        let mut unnoted = self.audit_shipping.lock().await;
        ledger::ship_audit_events(&self.store, &self.ledger, &mut unnoted)
            .await
            .map_err(|error| self.gateway.note_if_handed_over(error))
    }

    /// Called after a grant or platform policy changed.
    pub fn access_changed(&self) {
        // `notify_one` keeps a permit when the gateway is busy, so no change is missed.
        self.access_changes.notify_one();
    }

    /// Called after a catalog change committed.
    pub fn catalog_changed(&self) {
        self.catalog_changes.notify_one();
    }
}

/// The node's rules for access.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// The longest validity an application may ask for, in days.
    pub max_valid_days: u32,
}

/// The whole HTTP API as one router.
pub fn router(state: AppState) -> Router {
    let api = registry::routes()
        .merge(audit::routes())
        .merge(catalog::routes())
        .merge(search::routes())
        .merge(access::routes())
        .merge(services::routes())
        .merge(policies::routes())
        .merge(scenarios::routes());
    Router::new()
        .nest("/api/v1", api)
        .merge(ops::routes())
        .merge(dcat::routes())
        .merge(ledger::routes())
        .merge(ckan::routes())
        .merge(openapi::routes())
        .fallback(ops::no_route)
        .method_not_allowed_fallback(ops::method_not_allowed)
        // axum's own default (2 MB) would refuse bodies that the API takes.
        .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_JSON_BODY))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::record_request,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(ops::panic_response))
        .with_state(state)
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

impl<T> From<Page<T>> for PageOf<T> {
    fn from(page: Page<T>) -> PageOf<T> {
        PageOf {
            items: page.items,
            next_cursor: page
                .next_cursor
                .map(|cursor| URL_SAFE_NO_PAD.encode(cursor.as_bytes())),
        }
    }
}

/// Turns `limit` and an opaque `cursor` from a query string into a store page request.
pub fn paging(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<PageRequest> {
    let limit = limit.unwrap_or(PageRequest::DEFAULT_LIMIT);
    if !(1..=PageRequest::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", PageRequest::MAX_LIMIT),
        ));
    }
    let after = cursor
        .map(|cursor| {
            URL_SAFE_NO_PAD
                .decode(cursor)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| ApiError::invalid("cursor", "not a cursor from a previous page"))
        })
        .transpose()?;
    Ok(PageRequest { limit, after })
}
