//! Operations endpoints: liveness, readiness, metrics, and the answers for unknown routes and
//! panics.

use std::any::Any;

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};

use crate::{AppState, error::ApiError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// The process is up.
async fn healthz() -> &'static str {
    "ok\n"
}

/// The process can serve: the store answers and the ledger takes appends (after a failed write
/// or sync, the writer's or the checkpointer's, it refuses them all, and with them every change
/// and exchange that must be recorded), and the store is still this node's ledger's (see
/// `Gateway::handed_over`).
///
/// Damage the ledger scrub found in old records does not make the node unready: it still
/// records every new exchange, and taking it out of service would stop the city's exchanges
/// without repairing anything. The body names the damage, whether it is in the records or in
/// the hashes derived from them, and its repair; the metric `civitas_ledger_scrub_damage` is what
/// to alert on.
async fn readyz(State(state): State<AppState>) -> Result<String, ApiError> {
    state
        .store
        .ping()
        .await
        .map_err(|error| ApiError::Unavailable(format!("store unreachable: {error}")))?;
    if let Some(failure) = state.ledger.failure() {
        return Err(ApiError::Unavailable(format!(
            "the ledger refuses appends: {failure}"
        )));
    }
    if let Some(why) = state.gateway.handed_over() {
        return Err(ApiError::Unavailable(why.to_owned()));
    }
    let mut body = "ready\n".to_owned();
    if let Some(notice) = state
        .ledger
        .scrub_status()
        .and_then(|status| status.damage_notice())
    {
        body.push_str(&notice);
    }
    Ok(body)
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(status) = state.ledger.scrub_status() {
        state.metrics.observe_scrub(&status);
    }
    let mut text = String::new();
    if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &state.registry) {
        return ApiError::internal(anyhow::anyhow!("encoding metrics: {error}")).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::NoRoute(uri.path().to_owned())
}

pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed(method.to_string())
}

/// A panic in a handler is a bug: answer 500 as problem+json and log it, never crash the server.
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let message = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    let mut response =
        ApiError::internal(anyhow::anyhow!("handler panicked: {message}")).into_response();
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}
