//! The access workflow: applications, their review, grants, and their revocation.

use std::collections::HashSet;

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use civitas_core::{
    Code, Uscc,
    access::{Application, ApplicationState, Grant, GrantedItem, SystemRef},
    authz::{Action, Permit},
    catalog::{ResourceCode, Sensitivity, SharingType},
};
use civitas_store::{
    ApplicationFilter, AuditEvent, GrantFilter, GrantTerms, NewApplication, PageRequest,
};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState, PageOf,
    auth::Caller,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path, Query},
    paging,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/applications", post(apply).get(list_applications))
        .route("/applications/{id}", get(get_application))
        .route("/applications/{id}/approve", post(approve))
        .route("/applications/{id}/reject", post(reject))
        .route("/applications/{id}/withdraw", post(withdraw))
        .route("/grants", get(list_grants))
        .route("/grants/{id}", get(get_grant))
        .route("/grants/{id}/revoke", post(revoke))
        .route("/grants/{id}/history", get(grant_history))
        .route(
            "/organizations/{org_code}/systems/{system_code}/grants",
            get(system_grants),
        )
        .route("/resources/{code}/grants", get(resource_grants))
}

/// Whether the caller may see access records between `consumer` and `provider`: people of
/// either organization, auditors and platform admins.
pub(crate) fn check_read(caller: &Caller, consumer: &Uscc, provider: &Uscc) -> ApiResult<()> {
    if caller.permit(Action::ReadAccess, Some(consumer)).is_ok()
        || caller.permit(Action::ReadAccess, Some(provider)).is_ok()
        || caller.permit(Action::ReadAudit, None).is_ok()
    {
        return Ok(());
    }
    Err(ApiError::Forbidden(
        "only the consumer's and the provider's people, auditors and platform admins see this"
            .into(),
    ))
}

pub(crate) fn text_field(field: &str, value: &str, max_chars: usize) -> ApiResult<()> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid(field, "must not be empty"));
    }
    capped(field, value, max_chars)
}

/// Refuses a text longer than `max_chars` characters.
fn capped(field: &str, value: &str, max_chars: usize) -> ApiResult<()> {
    if value.chars().count() > max_chars {
        return Err(ApiError::invalid(
            field,
            format!("must have at most {max_chars} characters"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The consumer system that will call the service.
    pub consumer: SystemRef,
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// The information items wanted; all of the resource's items when absent.
    pub items: Option<Vec<String>>,
    pub purpose: String,
    /// The law or regulation that allows the use, e.g. 《住房公积金管理条例》第二十四条.
    pub legal_basis: String,
    /// How long access is needed, in days (capped by the node's configuration).
    pub valid_days: u32,
    pub expected_calls_per_day: Option<u64>,
}

/// An application, and the grant its approval created.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApplicationOutcome {
    pub application: Application,
    pub grant: Option<Grant>,
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[utoipa::path(post, path = "/api/v1/applications", tag = "access", request_body = ApplyRequest,
    description = "Applies for access. Unconditionally shared resources are approved at once; conditional ones wait for the provider's data officers; resources that are not shared cannot be applied for.",
    responses((status = 201, body = ApplicationOutcome), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn apply(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ApplyRequest>,
) -> ApiResult<(StatusCode, axum::Json<ApplicationOutcome>)> {
    let permit = caller.permit(Action::ApplyForAccess, Some(&request.consumer.organization))?;
    text_field("purpose", &request.purpose, 2000)?;
    text_field("legal_basis", &request.legal_basis, 2000)?;
    let max_days = state.access.max_valid_days;
    if request.valid_days == 0 || request.valid_days > max_days {
        return Err(ApiError::invalid(
            "valid_days",
            format!("must be between 1 and {max_days} (this node's cap)"),
        ));
    }
    let resource = match state.store.resource(&request.resource).await {
        Ok(resource) if resource.active => resource,
        Ok(_) | Err(civitas_store::StoreError::NotFound { .. }) => {
            return Err(ApiError::invalid(
                "resource",
                format!("no active resource {}", request.resource),
            ));
        }
        Err(other) => return Err(other.into()),
    };
    let draft = &resource.draft;
    if draft.sharing.sharing_type == SharingType::None {
        return Err(ApiError::invalid(
            "resource",
            format!(
                "{} is not shared (sharing type none), so it cannot be applied for",
                draft.code
            ),
        ));
    }
    let consumer = state
        .store
        .system(&request.consumer.organization, &request.consumer.system)
        .await
        .map_err(|_| ApiError::invalid("consumer", format!("no system {}", request.consumer)))?;
    if !consumer.consumes {
        return Err(ApiError::invalid(
            "consumer",
            format!(
                "system {} is not registered as a consumer",
                request.consumer
            ),
        ));
    }
    let known: HashSet<&str> = draft.items.iter().map(|item| item.code.as_str()).collect();
    let items = match request.items {
        Some(items) => {
            if items.is_empty() && !draft.items.is_empty() {
                return Err(ApiError::invalid("items", "name at least one item"));
            }
            for (index, item) in items.iter().enumerate() {
                if !known.contains(item.as_str()) {
                    return Err(ApiError::invalid(
                        format!("items[{index}]"),
                        format!("resource {} has no item {item}", draft.code),
                    ));
                }
                if items[..index].contains(item) {
                    return Err(ApiError::invalid(
                        format!("items[{index}]"),
                        format!("{item} is named twice"),
                    ));
                }
            }
            items
        }
        None => draft.items.iter().map(|item| item.code.clone()).collect(),
    };
    let new = NewApplication {
        id: new_id(),
        consumer: request.consumer,
        resource: draft.code.clone(),
        provider: draft.provider.clone(),
        items: items.clone(),
        purpose: request.purpose,
        legal_basis: request.legal_basis,
        valid_days: request.valid_days,
        expected_calls_per_day: request.expected_calls_per_day,
        applicant: permit.actor().to_owned(),
    };
    let automatic = (draft.sharing.sharing_type == SharingType::Unconditional).then(|| {
        let now = Timestamp::now();
        GrantTerms {
            id: new_id(),
            items: items
                .iter()
                .map(|code| GrantedItem {
                    code: code.clone(),
                    plaintext: false,
                })
                .collect(),
            valid_from: now,
            valid_until: now + (i64::from(request.valid_days) * 24).hours(),
            calls_per_day: None,
            requests_per_second: None,
        }
    });
    let (application, grant) = state
        .store
        .create_application(&permit, &new, automatic.as_ref())
        .await?;
    state.audit_changed().await;
    if grant.is_some() {
        state.access_changed();
    }
    Ok((
        StatusCode::CREATED,
        axum::Json(ApplicationOutcome { application, grant }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ApplicationQuery {
    /// Applications to this provider organization: its review queue.
    #[param(value_type = Option<String>)]
    pub provider: Option<Uscc>,
    /// Applications of this consumer organization.
    #[param(value_type = Option<String>)]
    pub consumer_organization: Option<Uscc>,
    #[param(value_type = Option<String>)]
    pub consumer_system: Option<Code>,
    #[param(value_type = Option<String>)]
    pub resource: Option<ResourceCode>,
    pub state: Option<ApplicationState>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/applications", tag = "access", params(ApplicationQuery),
    description = "Lists applications. People see those of their organization (as provider or consumer); auditors and platform admins see all. A data officer's queue: `?provider=ORG&state=pending`.",
    responses((status = 200, body = PageOf<Application>)))]
async fn list_applications(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ApplicationQuery>,
) -> ApiResult<axum::Json<PageOf<Application>>> {
    let mut filter = ApplicationFilter {
        provider: query.provider,
        consumer_organization: query.consumer_organization,
        consumer_system: query.consumer_system,
        resource: query.resource,
        state: query.state,
    };
    if caller.permit(Action::ReadAudit, None).is_err() {
        // Everyone else sees their own organization's side only.
        let own =
            caller.principal.organization().cloned().ok_or_else(|| {
                ApiError::Forbidden("no organization to list applications of".into())
            })?;
        caller.permit(Action::ReadAccess, Some(&own))?;
        match (&filter.provider, &filter.consumer_organization) {
            (Some(provider), _) if *provider == own => {}
            (_, Some(consumer)) if *consumer == own => {}
            (None, None) => filter.consumer_organization = Some(own),
            _ => {
                return Err(ApiError::Forbidden(
                    "filter by your own organization as provider or consumer".into(),
                ));
            }
        }
    }
    let page = state
        .store
        .list_applications(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/applications/{id}", tag = "access",
    params(("id" = String, Path)),
    responses((status = 200, body = Application), (status = 404, body = Problem)))]
async fn get_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Application>> {
    let application = state.store.application(&id).await?;
    check_read(
        &caller,
        &application.consumer.organization,
        &application.provider,
    )?;
    Ok(axum::Json(application))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// Narrow the items to these (a subset of those applied for).
    pub items: Option<Vec<String>>,
    /// Narrow the validity (at most what was applied for).
    pub valid_days: Option<u32>,
    pub calls_per_day: Option<u64>,
    pub requests_per_second: Option<u32>,
    /// Personal items delivered in plaintext; all other personal items are masked.
    #[serde(default)]
    pub plaintext_items: Vec<String>,
    pub note: Option<String>,
}

async fn reviewable(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> ApiResult<(Application, Permit)> {
    let application = state.store.application(id).await?;
    let permit = caller.permit(Action::ReviewApplications, Some(&application.provider))?;
    Ok((application, permit))
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/approve", tag = "access",
    params(("id" = String, Path)), request_body = ApproveRequest,
    description = "Approves a pending application (the provider's data officers), optionally narrowing items, validity or quota; creates the grant.",
    responses((status = 200, body = ApplicationOutcome), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<ApproveRequest>,
) -> ApiResult<axum::Json<ApplicationOutcome>> {
    let (application, permit) = reviewable(&state, &caller, &id).await?;
    if application.state != ApplicationState::Pending {
        return Err(ApiError::Conflict(format!(
            "application {id} is {}, only pending applications can be approved",
            application.state
        )));
    }
    let items = match request.items {
        Some(items) => {
            for (index, item) in items.iter().enumerate() {
                if !application.items.contains(item) {
                    return Err(ApiError::invalid(
                        format!("items[{index}]"),
                        format!("{item} was not applied for; an approval can only narrow"),
                    ));
                }
                if items[..index].contains(item) {
                    return Err(ApiError::invalid(
                        format!("items[{index}]"),
                        format!("{item} is named twice"),
                    ));
                }
            }
            if items.is_empty() && !application.items.is_empty() {
                return Err(ApiError::invalid(
                    "items",
                    "grant at least one item, or reject",
                ));
            }
            items
        }
        None => application.items.clone(),
    };
    let valid_days = request.valid_days.unwrap_or(application.valid_days);
    if valid_days == 0 || valid_days > application.valid_days {
        return Err(ApiError::invalid(
            "valid_days",
            format!(
                "must be between 1 and the {} days applied for",
                application.valid_days
            ),
        ));
    }
    if request.requests_per_second == Some(0) || request.calls_per_day == Some(0) {
        return Err(ApiError::invalid(
            "calls_per_day",
            "a quota of zero grants nothing; reject instead",
        ));
    }
    if let Some(note) = &request.note {
        capped("note", note, 2000)?;
    }
    let resource = state.store.resource(&application.resource).await?;
    for (index, item) in request.plaintext_items.iter().enumerate() {
        let personal = resource
            .draft
            .items
            .iter()
            .any(|known| known.code == *item && known.sensitivity == Sensitivity::Personal);
        if !items.contains(item) || !personal {
            return Err(ApiError::invalid(
                format!("plaintext_items[{index}]"),
                format!("{item} is not a granted personal item"),
            ));
        }
    }
    let now = Timestamp::now();
    let terms = GrantTerms {
        id: new_id(),
        items: items
            .iter()
            .map(|code| GrantedItem {
                code: code.clone(),
                plaintext: request.plaintext_items.contains(code),
            })
            .collect(),
        valid_from: now,
        valid_until: now + (i64::from(valid_days) * 24).hours(),
        calls_per_day: request.calls_per_day,
        requests_per_second: request.requests_per_second,
    };
    let (application, grant) = state
        .store
        .approve_application(&permit, &id, &terms, request.note.as_deref())
        .await?;
    state.audit_changed().await;
    state.access_changed();
    Ok(axum::Json(ApplicationOutcome {
        application,
        grant: Some(grant),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/reject", tag = "access",
    params(("id" = String, Path)), request_body = ReasonRequest,
    responses((status = 200, body = Application), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<ReasonRequest>,
) -> ApiResult<axum::Json<Application>> {
    text_field("reason", &request.reason, 2000)?;
    let (_, permit) = reviewable(&state, &caller, &id).await?;
    let application = state
        .store
        .close_application(&permit, &id, ApplicationState::Rejected, &request.reason)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(application))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WithdrawRequest {
    pub reason: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/applications/{id}/withdraw", tag = "access",
    params(("id" = String, Path)), request_body = WithdrawRequest,
    description = "Withdraws a pending application (its consumer organization's developers and admins).",
    responses((status = 200, body = Application), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<WithdrawRequest>,
) -> ApiResult<axum::Json<Application>> {
    if let Some(reason) = &request.reason {
        capped("reason", reason, 2000)?;
    }
    let application = state.store.application(&id).await?;
    let permit = caller.permit(
        Action::ApplyForAccess,
        Some(&application.consumer.organization),
    )?;
    let reason = request
        .reason
        .unwrap_or_else(|| "withdrawn by the applicant".to_owned());
    let application = state
        .store
        .close_application(&permit, &id, ApplicationState::Withdrawn, &reason)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(application))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    #[param(value_type = Option<String>)]
    pub consumer_organization: Option<Uscc>,
    #[param(value_type = Option<String>)]
    pub consumer_system: Option<Code>,
    #[param(value_type = Option<String>)]
    pub provider: Option<Uscc>,
    #[param(value_type = Option<String>)]
    pub resource: Option<ResourceCode>,
    /// Only grants valid now.
    pub valid: Option<bool>,
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/grants", tag = "access", params(GrantQuery),
    responses((status = 200, body = PageOf<Grant>)))]
async fn list_grants(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<GrantQuery>,
) -> ApiResult<axum::Json<PageOf<Grant>>> {
    let mut filter = GrantFilter {
        consumer_organization: query.consumer_organization,
        consumer_system: query.consumer_system,
        provider: query.provider,
        resource: query.resource,
        valid_at: query.valid.unwrap_or(false).then(Timestamp::now),
    };
    if caller.permit(Action::ReadAudit, None).is_err() {
        let own = caller
            .principal
            .organization()
            .cloned()
            .ok_or_else(|| ApiError::Forbidden("no organization to list grants of".into()))?;
        caller.permit(Action::ReadAccess, Some(&own))?;
        match (&filter.provider, &filter.consumer_organization) {
            (Some(provider), _) if *provider == own => {}
            (_, Some(consumer)) if *consumer == own => {}
            (None, None) => filter.consumer_organization = Some(own),
            _ => {
                return Err(ApiError::Forbidden(
                    "filter by your own organization as provider or consumer".into(),
                ));
            }
        }
    }
    let page = state
        .store
        .list_grants(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/grants/{id}", tag = "access",
    params(("id" = String, Path)),
    responses((status = 200, body = Grant), (status = 404, body = Problem)))]
async fn get_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Grant>> {
    let grant = state.store.grant(&id).await?;
    check_read(&caller, &grant.consumer.organization, &grant.provider)?;
    Ok(axum::Json(grant))
}

#[utoipa::path(post, path = "/api/v1/grants/{id}/revoke", tag = "access",
    params(("id" = String, Path)), request_body = ReasonRequest,
    description = "Revokes a grant (the provider's data officers or a platform admin); the gateway stops honouring it within a second.",
    responses((status = 200, body = Grant), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<ReasonRequest>,
) -> ApiResult<axum::Json<Grant>> {
    text_field("reason", &request.reason, 2000)?;
    let grant = state.store.grant(&id).await?;
    let permit = caller.permit(Action::ReviewApplications, Some(&grant.provider))?;
    let grant = state
        .store
        .revoke_grant(&permit, &id, &request.reason)
        .await?;
    state.audit_changed().await;
    state.access_changed();
    Ok(axum::Json(grant))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/grants/{id}/history", tag = "access",
    params(("id" = String, Path), HistoryQuery),
    description = "Every recorded event of the grant and of the application that created it, as one sequence, oldest first, each with its ledger index; a page at a time.",
    responses((status = 200, body = PageOf<crate::audit::AuditEventSchema>), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn grant_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<axum::Json<PageOf<AuditEvent>>> {
    let grant = state.store.grant(&id).await?;
    check_read(&caller, &grant.consumer.organization, &grant.provider)?;
    let page = paging(query.limit, query.cursor.as_deref())?;
    let mut objects = vec![("grant", grant.id.as_str())];
    if let Some(application) = &grant.application {
        objects.push(("application", application.as_str()));
    }
    let events = state.store.audit_events_about(&objects, &page).await?;
    Ok(axum::Json(PageOf::from(events)))
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems/{system_code}/grants", tag = "access",
    params(("org_code" = String, Path), ("system_code" = String, Path)),
    description = "What a system may read now: its valid grants.",
    responses((status = 200, body = Vec<Grant>)))]
async fn system_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<Grant>>> {
    let org = Uscc::parse(&org).map_err(|e| ApiError::NotFound {
        kind: "organization",
        id: format!("{org} ({e})"),
    })?;
    let system = Code::parse(&system).map_err(|e| ApiError::NotFound {
        kind: "system",
        id: format!("{system} ({e})"),
    })?;
    if caller.permit(Action::ReadAccess, Some(&org)).is_err() {
        caller.permit(Action::ReadAudit, None)?;
    }
    state.store.system(&org, &system).await?;
    let filter = GrantFilter {
        consumer_organization: Some(org),
        consumer_system: Some(system),
        valid_at: Some(Timestamp::now()),
        ..GrantFilter::default()
    };
    all_grants(&state, &filter).await.map(axum::Json)
}

#[utoipa::path(get, path = "/api/v1/resources/{code}/grants", tag = "access",
    params(("code" = String, Path)),
    description = "Who may read a resource now: its valid grants.",
    responses((status = 200, body = Vec<Grant>)))]
async fn resource_grants(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<Grant>>> {
    let code = ResourceCode::parse(&code).map_err(|e| ApiError::NotFound {
        kind: "resource",
        id: format!("{code} ({e})"),
    })?;
    let resource = state.store.resource(&code).await?;
    if caller
        .permit(Action::ReadAccess, Some(&resource.draft.provider))
        .is_err()
    {
        caller.permit(Action::ReadAudit, None)?;
    }
    let filter = GrantFilter {
        resource: Some(code),
        valid_at: Some(Timestamp::now()),
        ..GrantFilter::default()
    };
    all_grants(&state, &filter).await.map(axum::Json)
}

pub(crate) async fn all_grants(state: &AppState, filter: &GrantFilter) -> ApiResult<Vec<Grant>> {
    let mut grants = Vec::new();
    let mut page = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    loop {
        let found = state.store.list_grants(filter, &page).await?;
        grants.extend(found.items);
        match found.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(grants),
        }
    }
}
