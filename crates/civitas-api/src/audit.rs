//! Reading the audit trail.

use axum::{Router, extract::State, routing::get};
use civitas_core::authz::Action;
use civitas_store::{AuditEvent, AuditFilter};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{AppState, PageOf, auth::Caller, error::ApiResult, extract::Query, paging};

pub fn routes() -> Router<AppState> {
    Router::new().route("/audit/events", get(list_events))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// e.g. `organization`, `system`, `user`, `api_key`.
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub actor: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(EventQuery),
    description = "Changes made through the API, newest first: who did what to which object.",
    responses((status = 200, body = PageOf<AuditEventSchema>)))]
async fn list_events(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<EventQuery>,
) -> ApiResult<axum::Json<PageOf<AuditEvent>>> {
    caller.permit(Action::ReadAudit, None)?;
    let filter = AuditFilter {
        object_kind: query.object_kind,
        object_id: query.object_id,
        actor: query.actor,
    };
    let page = state
        .store
        .list_audit_events(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

/// The OpenAPI description of an audit event.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct AuditEventSchema {
    id: i64,
    #[schema(format = DateTime)]
    at: String,
    actor: String,
    /// `{object kind}.{verb}`, e.g. `organization.create`.
    action: String,
    object_kind: String,
    object_id: String,
    details: serde_json::Value,
    /// The event's index in the ledger, once appended.
    ledger_index: Option<u64>,
}
