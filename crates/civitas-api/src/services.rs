//! The gateway's side of the API: services on interface resources, mapping suggestions from
//! OpenAPI descriptions ([`from_openapi`]), system client certificates, per-grant usage, and the
//! personal-data access index.

mod from_openapi;

use std::collections::HashSet;

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
    routing::{get, post, put},
};
use civitas_core::{
    CitizenId, Code, Uscc,
    access::SystemRef,
    authz::Action,
    catalog::{ResourceCode, ResourceKind},
    service::{FieldMapping, Service, ServiceDraft, find_overlap},
};
use civitas_gateway::{
    SubjectAccess,
    limits::{Circuit, CircuitState},
};
use civitas_store::{
    CertificateState, ClientCertificate, GrantUsage, GrantUsageSummary, UsageFilter, UsageSide,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use self::from_openapi::MappingSuggestion;
use crate::{
    AppState,
    auth::Caller,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path, Query},
    paging,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/organizations/{org_code}/systems/{system_code}/services",
            get(list_services),
        )
        .route(
            "/organizations/{org_code}/systems/{system_code}/services/{service_code}",
            put(put_service).get(get_service).delete(deactivate_service),
        )
        .route("/services/mapping-from-openapi", post(mapping_from_openapi))
        .route(
            "/organizations/{org_code}/systems/{system_code}/certificates",
            post(issue_certificate).get(list_certificates),
        )
        .route("/certificates/{serial}", get(get_certificate))
        .route("/certificates/{serial}/revoke", post(revoke_certificate))
        .route("/ca.pem", get(ca_certificate))
        .route("/gateway/circuits", get(list_circuits))
        .route("/grants/{id}/usage", get(grant_usage))
        .route("/usage", get(usage_report))
        .route("/audit/subjects/{id_number}", get(subject_accesses))
}

fn system_ref(org: &str, system: &str) -> ApiResult<SystemRef> {
    Ok(SystemRef {
        organization: Uscc::parse(org).map_err(|e| ApiError::NotFound {
            kind: "organization",
            id: format!("{org} ({e})"),
        })?,
        system: Code::parse(system).map_err(|e| ApiError::NotFound {
            kind: "system",
            id: format!("{org}/{system} ({e})"),
        })?,
    })
}

#[utoipa::path(put, path = "/api/v1/organizations/{org_code}/systems/{system_code}/services/{service_code}", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path), ("service_code" = String, Path)),
    request_body = ServiceDraft,
    description = "Registers or replaces the service (the provider's data officers): its upstream, allowed methods and paths, timeout, and where each information item is in its JSON answers. A mapped field is delivered as a whole, so no mapping's path may lie inside another's or be the same path for another item (`$.a` and `$.a[*].b` overlap, `$.a.b` and `$.a.c` do not): such a draft is refused with 422 naming both. The code `video` names a provider system's video playback platform. Answers with the service as GET shows it.",
    responses((status = 200, body = ServiceView), (status = 201, body = ServiceView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn put_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system, code)): Path<(String, String, String)>,
    Json(draft): Json<ServiceDraft>,
) -> ApiResult<(StatusCode, axum::Json<ServiceView>)> {
    let provider = system_ref(&org, &system)?;
    if draft.code.as_str() != code {
        return Err(ApiError::invalid(
            "code",
            format!("the body names {}, the path {code}", draft.code),
        ));
    }
    let permit = caller.permit(Action::ManageResources, Some(&provider.organization))?;
    draft
        .validate()
        .map_err(|error| ApiError::invalid(error.field, error.message))?;
    let resource = match state.store.resource(&draft.resource).await {
        Ok(resource) if resource.active => resource,
        _ => {
            return Err(ApiError::invalid(
                "resource",
                format!("no active resource {}", draft.resource),
            ));
        }
    };
    if resource.draft.provider != provider.organization {
        return Err(ApiError::invalid(
            "resource",
            format!(
                "{} is published by {}, not by {}",
                draft.resource, resource.draft.provider, provider.organization
            ),
        ));
    }
    if draft.code.as_str() != "video" && resource.draft.kind != ResourceKind::Interface {
        return Err(ApiError::invalid(
            "resource",
            format!(
                "{} is a {} resource; services deliver interface resources",
                draft.resource, resource.draft.kind
            ),
        ));
    }
    if let Some(declared) = &resource.draft.provider_system
        && *declared != provider.system
    {
        return Err(ApiError::invalid(
            "resource",
            format!(
                "{} is provided by system {declared}, not {}",
                draft.resource, provider.system
            ),
        ));
    }
    let items: HashSet<&str> = resource
        .draft
        .items
        .iter()
        .map(|item| item.code.as_str())
        .collect();
    for (index, field) in draft.fields.iter().enumerate() {
        if !items.contains(field.item.as_str()) {
            return Err(ApiError::invalid(
                format!("fields[{index}].item"),
                format!("{} has no item {}", draft.resource, field.item),
            ));
        }
    }
    let (service, created) = state.store.put_service(&permit, &provider, &draft).await?;
    state.audit_changed().await;
    state.access_changed();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let show_upstream = may_see_upstreams(&caller, &provider.organization);
    Ok((status, axum::Json(ServiceView::new(service, show_upstream))))
}

/// Whether the caller may see the upstreams of `provider`'s services: internal addresses,
/// possibly with credentials in them, are for the provider's people who manage its services,
/// auditors and platform admins, not for everyone who reads the catalog.
fn may_see_upstreams(caller: &Caller, provider: &Uscc) -> bool {
    caller
        .permit(Action::ManageResources, Some(provider))
        .is_ok()
        || caller.permit(Action::ReadAudit, None).is_ok()
}

/// A service as it is read through the API: `upstream` only for those who
/// [may see it](may_see_upstreams), absent for everyone else.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServiceView {
    pub provider: SystemRef,
    #[schema(value_type = String)]
    pub code: Code,
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// Base URL of the upstream; only for the provider's people who manage its services,
    /// auditors and platform admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub methods: Vec<String>,
    pub paths: Vec<String>,
    pub fields: Vec<FieldMapping>,
    /// Present when two of `fields` overlap, which registration refuses, in a service stored
    /// before it did: the first field at fault and what it overlaps, as a registration would
    /// be told, e.g. `fields[1].path: "$.holder.id_number" lies inside "$.holder" (fields[0],
    /// item name)`. The gateway delivers each value of such a service as strictly as the
    /// strictest item whose field holds it; register the service again without the overlap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    pub timeout_ms: u32,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: jiff::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: jiff::Timestamp,
}

impl ServiceView {
    fn new(service: Service, show_upstream: bool) -> ServiceView {
        let ServiceDraft {
            code,
            resource,
            upstream,
            methods,
            paths,
            fields,
            timeout_ms,
        } = service.draft;
        let overlap = find_overlap(&fields).map(|overlap| {
            format!(
                "fields[{}].path: {}",
                overlap.inner,
                overlap.describe(&fields)
            )
        });
        ServiceView {
            provider: service.provider,
            code,
            resource,
            upstream: show_upstream.then_some(upstream),
            methods,
            paths,
            fields,
            overlap,
            timeout_ms,
            active: service.active,
            created_at: service.created_at,
            updated_at: service.updated_at,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems/{system_code}/services/{service_code}", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path), ("service_code" = String, Path)),
    description = "The service. Its `upstream` is shown only to the provider's people who manage its services, auditors and platform admins. A service stored before overlapping field mappings were refused says which of its fields overlap in `overlap`, absent otherwise: its provider should register it again without the overlap.",
    responses((status = 200, body = ServiceView), (status = 404, body = Problem)))]
async fn get_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system, code)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<ServiceView>> {
    caller.permit(Action::ReadCatalog, None)?;
    let provider = system_ref(&org, &system)?;
    let code = Code::parse(&code).map_err(|e| ApiError::NotFound {
        kind: "service",
        id: e.to_string(),
    })?;
    let service = state.store.service(&provider, &code).await?;
    let show_upstream = may_see_upstreams(&caller, &provider.organization);
    Ok(axum::Json(ServiceView::new(service, show_upstream)))
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems/{system_code}/services", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path)),
    description = "The system's services. Their `upstream` is shown only to the provider's people who manage its services, auditors and platform admins; `overlap` names the overlapping field mappings of a service stored before they were refused.",
    responses((status = 200, body = Vec<ServiceView>)))]
async fn list_services(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
) -> ApiResult<axum::Json<Vec<ServiceView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let provider = system_ref(&org, &system)?;
    state
        .store
        .system(&provider.organization, &provider.system)
        .await?;
    let show_upstream = may_see_upstreams(&caller, &provider.organization);
    let services = state.store.services(Some(&provider)).await?;
    Ok(axum::Json(
        services
            .into_iter()
            .map(|service| ServiceView::new(service, show_upstream))
            .collect(),
    ))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{org_code}/systems/{system_code}/services/{service_code}", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path), ("service_code" = String, Path)),
    description = "Deactivates the service; the gateway refuses calls to it within a second. Answers with the service as GET shows it, `overlap` included.",
    responses((status = 200, body = ServiceView), (status = 404, body = Problem)))]
async fn deactivate_service(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system, code)): Path<(String, String, String)>,
) -> ApiResult<axum::Json<ServiceView>> {
    let provider = system_ref(&org, &system)?;
    let permit = caller.permit(Action::ManageResources, Some(&provider.organization))?;
    let code = Code::parse(&code).map_err(|e| ApiError::NotFound {
        kind: "service",
        id: e.to_string(),
    })?;
    let service = state
        .store
        .deactivate_service(&permit, &provider, &code)
        .await?;
    state.audit_changed().await;
    state.access_changed();
    let show_upstream = may_see_upstreams(&caller, &provider.organization);
    Ok(axum::Json(ServiceView::new(service, show_upstream)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingRequest {
    /// The interface resource whose items to map.
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// The service's OpenAPI (3.x) description, as JSON.
    pub openapi: Value,
}

#[utoipa::path(post, path = "/api/v1/services/mapping-from-openapi", tag = "gateway", request_body = MappingRequest,
    description = "Suggests a service's path patterns and field mappings from its OpenAPI 3.x description. Only GET operations are read, and of each the JSON answers (`application/json`, with parameters or not, and `application/*+json` but not `application/problem+json`) of every 2XX status, or of `default` when there is none. A property maps to the item whose code equals its name, or the one named by an `x-civitas-item` extension; every branch of `allOf`, `oneOf` and `anyOf` is read, and references within the description (`#/…`) are followed. A schema that refers back to one it lies inside of is read once, as field paths cannot repeat. Where the operations' answers put one item's field inside another's (or give one field to two items), the outer mapping is kept and the inner one listed in `left_out`, since a service may not register both. What could not be used (a reference to another file or to nothing, a path template that is no path pattern, the deeper levels of a recursive schema) is listed in `warnings` with where it is. A description whose answers need more than 20000 schemas walked, or nest them more than 64 deep, is refused (422). Review the suggestion, then register the service.",
    responses((status = 200, body = MappingSuggestion), (status = 422, body = Problem)))]
async fn mapping_from_openapi(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<MappingRequest>,
) -> ApiResult<axum::Json<MappingSuggestion>> {
    caller.permit(Action::ReadCatalog, None)?;
    // As registering the service would: a suggestion for a resource no service may deliver
    // would only be refused then.
    let resource = match state.store.resource(&request.resource).await {
        Ok(resource) if resource.active => resource,
        _ => {
            return Err(ApiError::invalid(
                "resource",
                format!("no active resource {}", request.resource),
            ));
        }
    };
    if resource.draft.kind != ResourceKind::Interface {
        return Err(ApiError::invalid(
            "resource",
            format!(
                "{} is a {} resource; services deliver interface resources",
                request.resource, resource.draft.kind
            ),
        ));
    }
    let items: Vec<String> = resource
        .draft
        .items
        .iter()
        .map(|item| item.code.clone())
        .collect();
    // The walk is bounded, but a large description can take it to its bound: a blocking thread
    // spends the milliseconds that costs.
    let suggestion =
        tokio::task::spawn_blocking(move || from_openapi::suggest(&request.openapi, &items))
            .await
            .map_err(ApiError::internal)??;
    Ok(axum::Json(suggestion))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateRequest {
    /// A PKCS#10 certificate signing request (PEM) for the system's own key. Without it the CA
    /// makes a key pair and returns the private key once.
    pub csr: Option<String>,
    /// Days of validity (default 365, at most 825).
    pub valid_days: Option<u32>,
}

/// A client certificate for a system.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificateResponse {
    pub serial: String,
    pub certificate: String,
    /// Only when the CA made the key pair; shown once.
    pub private_key: Option<String>,
    pub ca_certificate: String,
    #[schema(value_type = String, format = DateTime)]
    pub not_after: jiff::Timestamp,
}

#[utoipa::path(post, path = "/api/v1/organizations/{org_code}/systems/{system_code}/certificates", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path)), request_body = CertificateRequest,
    description = "Issues a client certificate naming the system, for mutual TLS with the gateway.",
    responses((status = 201, body = CertificateResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn issue_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
    Json(request): Json<CertificateRequest>,
) -> ApiResult<(StatusCode, axum::Json<CertificateResponse>)> {
    let system = system_ref(&org, &system)?;
    let permit = caller.permit(Action::ManageKeys, Some(&system.organization))?;
    let existing = state
        .store
        .system(&system.organization, &system.system)
        .await?;
    if !existing.active {
        return Err(ApiError::Conflict(format!(
            "system {system} is deactivated"
        )));
    }
    let valid_days = request.valid_days.unwrap_or(365);
    if !(1..=825).contains(&valid_days) {
        return Err(ApiError::invalid("valid_days", "must be between 1 and 825"));
    }
    let ca = state.certificate_authority.clone();
    let system_for_ca = system.clone();
    let csr = request.csr.clone();
    let issued = tokio::task::spawn_blocking(move || {
        ca.issue_client(&system_for_ca, csr.as_deref(), valid_days)
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|error| ApiError::invalid("csr", format!("{error:#}")))?;
    state
        .store
        .record_client_certificate(&permit, &issued.serial, &system, issued.not_after)
        .await?;
    state.audit_changed().await;
    state.access_changed();
    Ok((
        StatusCode::CREATED,
        axum::Json(CertificateResponse {
            serial: issued.serial,
            certificate: issued.certificate_pem,
            private_key: issued.private_key_pem,
            ca_certificate: state.certificate_authority.certificate_pem().to_owned(),
            not_after: issued.not_after,
        }),
    ))
}

/// Whoever manages the keys of `organization`'s systems, or an auditor, may read its
/// certificates.
fn read_certificates_permit(caller: &Caller, organization: &Uscc) -> ApiResult<()> {
    if caller
        .permit(Action::ManageKeys, Some(organization))
        .is_err()
    {
        caller.permit(Action::ReadAudit, None)?;
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct CertificateQuery {
    /// `active` (neither revoked nor expired), `expired` or `revoked`; all when absent.
    pub state: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems/{system_code}/certificates", tag = "gateway",
    params(("org_code" = String, Path), ("system_code" = String, Path), CertificateQuery),
    description = "The client certificates issued to the system, newest first (serials, validity \
        and revocation; never keys).",
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn list_certificates(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
    Query(query): Query<CertificateQuery>,
) -> ApiResult<axum::Json<crate::PageOf<ClientCertificate>>> {
    let system = system_ref(&org, &system)?;
    read_certificates_permit(&caller, &system.organization)?;
    let wanted = match query.state.as_deref() {
        None => None,
        Some("active") => Some(CertificateState::Active),
        Some("expired") => Some(CertificateState::Expired),
        Some("revoked") => Some(CertificateState::Revoked),
        Some(other) => {
            return Err(ApiError::invalid(
                "state",
                format!("{other:?} is not active, expired or revoked"),
            ));
        }
    };
    let page = paging(query.limit, query.cursor.as_deref())?;
    state
        .store
        .system(&system.organization, &system.system)
        .await?;
    let found = state
        .store
        .list_client_certificates(&system, wanted, jiff::Timestamp::now(), &page)
        .await?;
    Ok(axum::Json(crate::PageOf::from(found)))
}

#[utoipa::path(get, path = "/api/v1/certificates/{serial}", tag = "gateway",
    params(("serial" = String, Path)),
    responses((status = 200, body = serde_json::Value), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn get_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
) -> ApiResult<axum::Json<ClientCertificate>> {
    let certificate = state.store.client_certificate(&serial).await?;
    read_certificates_permit(&caller, &certificate.system.organization)?;
    Ok(axum::Json(certificate))
}

#[utoipa::path(post, path = "/api/v1/certificates/{serial}/revoke", tag = "gateway",
    params(("serial" = String, Path)),
    description = "Revokes a client certificate; the gateway refuses it within a second.",
    responses((status = 200, body = serde_json::Value), (status = 409, body = Problem)))]
async fn revoke_certificate(
    State(state): State<AppState>,
    caller: Caller,
    Path(serial): Path<String>,
) -> ApiResult<axum::Json<ClientCertificate>> {
    let certificate = state.store.client_certificate(&serial).await?;
    let permit = caller.permit(Action::ManageKeys, Some(&certificate.system.organization))?;
    let certificate = state
        .store
        .revoke_client_certificate(&permit, &serial)
        .await?;
    state.audit_changed().await;
    state.access_changed();
    Ok(axum::Json(certificate))
}

#[utoipa::path(get, path = "/api/v1/ca.pem", tag = "gateway",
    description = "The node's CA certificate, which signs system client certificates, the gateway's \
        server certificate and the client certificate the gateway presents to provider upstreams \
        (named `urn:civitas:node:{node}:gateway`): a provider's upstream that requires client \
        certificates trusts this one.",
    responses((status = 200, content_type = "application/x-pem-file", body = String)))]
async fn ca_certificate(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        state.certificate_authority.certificate_pem().to_owned(),
    )
}

/// A circuit as the API shows it: the gateway's [`CircuitState`], with `upstream` only for those
/// who [may see the provider's upstreams](may_see_upstreams).
#[derive(Debug, Serialize)]
pub struct CircuitView {
    /// `{org}/{system}/{code}`.
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    pub state: Circuit,
    pub consecutive_failures: u32,
    pub failing_since: jiff::Timestamp,
    pub retry_after_ms: Option<u64>,
}

#[utoipa::path(get, path = "/api/v1/gateway/circuits", tag = "gateway",
    description = "Services whose calls through this node's gateway have failed since their last \
        successful call, by name: `state` is `open` while calls fail fast (for `retry_after_ms`), \
        `half_open` when the next call probes the upstream, and `closed` while failures are \
        counted toward opening. Each node keeps its own breakers; the metric \
        `civitas_gateway_circuit_open` gives every node's. A circuit's `upstream` is shown only \
        to the provider's people who manage its services, auditors and platform admins.",
    responses((status = 200, body = serde_json::Value), (status = 401, body = Problem)))]
async fn list_circuits(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<CircuitView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let circuits = state
        .gateway
        .circuits()
        .into_iter()
        .map(|circuit: CircuitState| {
            // The service's name starts with its provider's code; a name that does not parse
            // names no provider the caller could be one of.
            let show_upstream = circuit
                .service
                .split('/')
                .next()
                .and_then(|provider| Uscc::parse(provider).ok())
                .is_some_and(|provider| may_see_upstreams(&caller, &provider));
            CircuitView {
                service: circuit.service,
                upstream: show_upstream.then_some(circuit.upstream),
                state: circuit.state,
                consecutive_failures: circuit.consecutive_failures,
                failing_since: circuit.failing_since,
                retry_after_ms: circuit.retry_after_ms,
            }
        })
        .collect();
    Ok(axum::Json(circuits))
}

/// A span of days, each `YYYY-MM-DD` in the node's time zone, both inclusive.
#[derive(Debug, Deserialize, IntoParams)]
pub struct DayRange {
    /// First day; open when absent.
    pub from: Option<String>,
    /// Last day; open when absent.
    pub to: Option<String>,
}

impl DayRange {
    /// The days as given, once each is a date and `from` is not after `to`.
    fn checked(&self) -> ApiResult<(Option<String>, Option<String>)> {
        let day = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(|text| {
                    jiff::civil::Date::strptime("%Y-%m-%d", text).map_err(|_| {
                        ApiError::invalid(field, format!("{text:?} is not a day (YYYY-MM-DD)"))
                    })
                })
                .transpose()
        };
        let (from, to) = (day("from", &self.from)?, day("to", &self.to)?);
        if let (Some(from), Some(to)) = (from, to)
            && from > to
        {
            return Err(ApiError::invalid("to", "must not be before from"));
        }
        Ok((
            from.map(|day| day.to_string()),
            to.map(|day| day.to_string()),
        ))
    }
}

#[utoipa::path(get, path = "/api/v1/grants/{id}/usage", tag = "access",
    params(("id" = String, Path), DayRange),
    description = "Calls, denials and bytes delivered under the grant, per day (newest first; counts reach the store within a second or two).",
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn grant_usage(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(days): Query<DayRange>,
) -> ApiResult<axum::Json<Vec<GrantUsage>>> {
    let (from, to) = days.checked()?;
    let grant = state.store.grant(&id).await?;
    if caller
        .permit(Action::ReadAccess, Some(&grant.consumer.organization))
        .is_err()
        && caller
            .permit(Action::ReadAccess, Some(&grant.provider))
            .is_err()
    {
        caller.permit(Action::ReadAudit, None)?;
    }
    Ok(axum::Json(
        state
            .store
            .grant_usage(&id, from.as_deref(), to.as_deref())
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct UsageQuery {
    /// The organization whose grants to report.
    pub organization: String,
    /// `provider`: grants on its resources (the default); `consumer`: grants to its systems.
    pub side: Option<String>,
    /// Only grants on this resource.
    pub resource: Option<String>,
    /// First day (`YYYY-MM-DD`, inclusive); open when absent.
    pub from: Option<String>,
    /// Last day (`YYYY-MM-DD`, inclusive); open when absent.
    pub to: Option<String>,
    /// Grants per page, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Usage of an organization's grants over a span of days.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReportView {
    pub organization: String,
    /// `provider` or `consumer`.
    pub side: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Over every grant the report covers, not only this page: grants with any call, calls,
    /// denials and bytes delivered.
    pub grants: u64,
    pub calls: u64,
    pub denied: u64,
    pub bytes: u64,
    /// Grants by id, each summed over the days.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<GrantUsageSummary>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "access", params(UsageQuery),
    description = "Calls, denials and bytes delivered under the grants an organization provides \
        (or, with `side=consumer`, holds), summed per grant over the days asked for, with totals. \
        Per-day figures of one grant are at `/api/v1/grants/{id}/usage`.",
    responses((status = 200, body = UsageReportView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn usage_report(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UsageQuery>,
) -> ApiResult<axum::Json<UsageReportView>> {
    let organization =
        Uscc::parse(&query.organization).map_err(|e| ApiError::invalid("organization", e))?;
    let side = match query.side.as_deref().unwrap_or("provider") {
        "provider" => UsageSide::Provider,
        "consumer" => UsageSide::Consumer,
        other => {
            return Err(ApiError::invalid(
                "side",
                format!("{other:?} is not provider or consumer"),
            ));
        }
    };
    let resource = query
        .resource
        .as_deref()
        .map(ResourceCode::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("resource", e))?;
    let (from, to) = DayRange {
        from: query.from,
        to: query.to,
    }
    .checked()?;
    let page = paging(query.limit, query.cursor.as_deref())?;
    if caller
        .permit(Action::ReadAccess, Some(&organization))
        .is_err()
    {
        caller.permit(Action::ReadAudit, None)?;
    }
    let filter = UsageFilter {
        organization,
        side,
        resource,
        from,
        to,
    };
    let report = state.store.usage_report(&filter, &page).await?;
    let crate::PageOf { items, next_cursor } = crate::PageOf::from(report.page);
    Ok(axum::Json(UsageReportView {
        organization: filter.organization.to_string(),
        side: filter.side.as_str().to_owned(),
        from: filter.from,
        to: filter.to,
        grants: report.grants,
        calls: report.calls,
        denied: report.denied,
        bytes: report.bytes,
        items,
        next_cursor,
    }))
}

/// Which systems received a person's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectReport {
    /// The keyed hash the index is kept by; the ID number itself is never stored.
    pub subject: String,
    /// Oldest first.
    #[schema(value_type = Vec<Object>)]
    pub accesses: Vec<SubjectAccess>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubjectQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/audit/subjects/{id_number}", tag = "audit",
    params(("id_number" = String, Path, description = "A citizen ID number (GB 11643)"), SubjectQuery),
    description = "Which systems received this person's data, when, under which grant, with the ledger index and receipt of each exchange (the record's bytes, which its receipt verifies, are at /api/v1/ledger/records/{index}), oldest first, a page at a time. When the exchange concerned more people than its record lists, `listed_at` is the index of its exchange_subjects record that lists this person. Auditors only.",
    responses((status = 200, body = SubjectReport), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn subject_accesses(
    State(state): State<AppState>,
    caller: Caller,
    Path(id_number): Path<String>,
    Query(query): Query<SubjectQuery>,
) -> ApiResult<axum::Json<SubjectReport>> {
    caller.permit(Action::ReadAudit, None)?;
    let id = CitizenId::parse(&id_number).map_err(|error| ApiError::invalid("id_number", error))?;
    let page = paging(query.limit, query.cursor.as_deref())?;
    let (subject, found) = state
        .gateway
        .subject_accesses(&id, &page)
        .await
        .map_err(ApiError::from_component)?;
    let crate::PageOf { items, next_cursor } = crate::PageOf::from(found);
    Ok(axum::Json(SubjectReport {
        subject,
        accesses: items,
        next_cursor,
    }))
}
