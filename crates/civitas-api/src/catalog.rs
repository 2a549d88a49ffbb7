//! Catalog resources through the REST API: publish, change, deactivate, read, list, history.

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    routing::{get, post},
};
use civitas_core::{
    Uscc,
    authz::{Action, Permit},
    catalog::{OpenType, Resource, ResourceCode, ResourceDraft, ResourceKind},
    registry::Organization,
};
use civitas_store::{ResourceFilter, ResourceVersion, StoreError, WriteMode};
use jiff::Timestamp;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState, PageOf,
    auth::{Caller, MaybeCaller},
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path, Query},
    paging,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/resources", post(create_resource).get(list_resources))
        .route(
            "/resources/{code}",
            get(get_resource)
                .put(update_resource)
                .delete(deactivate_resource),
        )
        .route("/resources/{code}/reactivate", post(reactivate_resource))
        .route("/resources/{code}/history", get(resource_history))
}

fn resource_code(text: &str) -> ApiResult<ResourceCode> {
    ResourceCode::parse(text).map_err(|error| ApiError::NotFound {
        kind: "resource",
        id: format!("{text} ({error})"),
    })
}

/// Checks the draft's own rules (422 naming the field) and asks for the permit to publish it for
/// its provider.
fn check_draft(caller: &Caller, draft: &ResourceDraft) -> ApiResult<Permit> {
    draft
        .validate()
        .map_err(|error| ApiError::invalid(error.field, error.message))?;
    caller.permit(Action::ManageResources, Some(&draft.provider))
}

/// Whether an anonymous or authenticated caller may see `resource`. Anonymous callers see the
/// open data only; everyone else sees the whole active catalog.
/// The providers of `resources`, by credit code, looked up in one query.
pub(crate) async fn providers_of(
    store: &civitas_store::Store,
    resources: &[Resource],
) -> civitas_store::Result<std::collections::HashMap<String, Organization>> {
    let mut codes: Vec<&str> = resources
        .iter()
        .map(|resource| resource.draft.provider.as_str())
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let organizations = store.organizations_by_code(&codes).await?;
    Ok(organizations
        .into_iter()
        .map(|organization| (organization.code.to_string(), organization))
        .collect())
}

/// The open type a caller's listings and counts are limited to: open data for anonymous
/// callers, whose counts must not tell how many other entries exist; none for any key. The same
/// rule as `visible_to`, for the store's filters.
pub fn visible_open_type(caller: &MaybeCaller) -> Option<OpenType> {
    caller.0.is_none().then_some(OpenType::Open)
}

pub fn visible_to(caller: &MaybeCaller, resource: &Resource) -> bool {
    match &caller.0 {
        Some(_) => true,
        None => resource.active && resource.draft.open_type == OpenType::Open,
    }
}

#[utoipa::path(post, path = "/api/v1/resources", tag = "catalog", request_body = ResourceDraft,
    description = "Publishes a resource. Data officers publish for their own organization only.",
    responses((status = 201, body = Resource), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_resource(
    State(state): State<AppState>,
    caller: Caller,
    Json(draft): Json<ResourceDraft>,
) -> ApiResult<(StatusCode, Tagged)> {
    let permit = check_draft(&caller, &draft)?;
    let (_, mut written) = state
        .store
        .write_resources(&permit, std::slice::from_ref(&draft), WriteMode::Create)
        .await?;
    state.audit_changed().await;
    state.catalog_changed();
    Ok((StatusCode::CREATED, tagged(written.remove(0))))
}

/// A resource with its version as a strong `ETag`, which a later `PUT` may send back in
/// `If-Match`.
type Tagged = ([(header::HeaderName, HeaderValue); 1], axum::Json<Resource>);

fn tagged(resource: Resource) -> Tagged {
    let etag = HeaderValue::from_str(&format!("\"{}\"", resource.version))
        .expect("a number in quotes is a header value");
    ([(header::ETAG, etag)], axum::Json(resource))
}

/// The version an update may replace: the one `If-Match` names (one of our `ETag`s, or `*`
/// for any), which must be `current`'s; without `If-Match`, `current`'s too, since the caller's
/// permission was checked against it. `None` when `If-Match` names another version.
fn version_to_replace(headers: &HeaderMap, current: &Resource) -> ApiResult<Option<u32>> {
    let Some(if_match) = headers.get(header::IF_MATCH) else {
        return Ok(Some(current.version));
    };
    let if_match = if_match
        .to_str()
        .map_err(|_| ApiError::invalid("If-Match", "must be entity tags in ASCII"))?;
    let matches = if_match.split(',').map(str::trim).any(|tag| {
        tag == "*"
            || tag
                .strip_prefix("W/")
                .unwrap_or(tag)
                .strip_prefix('"')
                .and_then(|tag| tag.strip_suffix('"'))
                .and_then(|version| version.parse::<u32>().ok())
                == Some(current.version)
    });
    Ok(matches.then_some(current.version))
}

#[utoipa::path(put, path = "/api/v1/resources/{code}", tag = "catalog", request_body = ResourceDraft,
    params(("code" = String, Path)),
    description = "Replaces a resource's metadata; the previous version stays in its history. Send the `ETag` of the version you changed in `If-Match` to be told (412) when someone changed it meanwhile. A deactivated resource is refused (409): reactivate it first.",
    responses((status = 200, body = Resource), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem), (status = 422, body = Problem)))]
async fn update_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    headers: HeaderMap,
    Json(draft): Json<ResourceDraft>,
) -> ApiResult<Tagged> {
    let code = resource_code(&code)?;
    if draft.code != code {
        return Err(ApiError::invalid(
            "code",
            format!("the body is about {}, the path about {code}", draft.code),
        ));
    }
    let current = state.store.resource(&code).await?;
    // Both the current and the new provider's officers must agree to move a resource.
    caller.permit(Action::ManageResources, Some(&current.draft.provider))?;
    let permit = check_draft(&caller, &draft)?;
    let Some(expected) = version_to_replace(&headers, &current)? else {
        return Err(ApiError::PreconditionFailed(format!(
            "resource {code} is at version {}, which If-Match does not name",
            current.version
        )));
    };
    let written = state
        .store
        .update_resource(&permit, &draft, expected)
        .await
        .map_err(|error| match error {
            // Changed since `current` was read, which the caller's permission was checked
            // against: only a precondition the caller set is a 412.
            StoreError::Stale { .. } if !headers.contains_key(header::IF_MATCH) => {
                ApiError::Conflict(format!(
                    "resource {code} changed while this update was checked; read it and retry"
                ))
            }
            other => other.into(),
        })?;
    let Some(resource) = written else {
        // Nothing to write: the draft is what is stored.
        return Ok(tagged(current));
    };
    state.audit_changed().await;
    state.catalog_changed();
    Ok(tagged(resource))
}

#[utoipa::path(delete, path = "/api/v1/resources/{code}", tag = "catalog",
    params(("code" = String, Path)),
    description = "Deactivates a resource. Resources are never deleted; their history stays.",
    responses((status = 200, body = Resource), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn deactivate_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Resource>> {
    set_active(state, caller, code, false).await
}

#[utoipa::path(post, path = "/api/v1/resources/{code}/reactivate", tag = "catalog",
    params(("code" = String, Path)),
    responses((status = 200, body = Resource), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reactivate_resource(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Resource>> {
    set_active(state, caller, code, true).await
}

async fn set_active(
    state: AppState,
    caller: Caller,
    code: String,
    active: bool,
) -> ApiResult<axum::Json<Resource>> {
    let code = resource_code(&code)?;
    let current = state.store.resource(&code).await?;
    let permit = caller.permit(Action::ManageResources, Some(&current.draft.provider))?;
    let resource = state
        .store
        .set_resource_active(&permit, &code, active)
        .await?;
    state.audit_changed().await;
    state.catalog_changed();
    Ok(axum::Json(resource))
}

#[utoipa::path(get, path = "/api/v1/resources/{code}", tag = "catalog",
    params(("code" = String, Path)),
    description = "A resource. Without a key only open resources are visible.",
    responses((status = 200, body = Resource), (status = 404, body = Problem)))]
async fn get_resource(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(code): Path<String>,
) -> ApiResult<Tagged> {
    caller.permit_read()?;
    let code = resource_code(&code)?;
    let resource = state.store.resource(&code).await?;
    if !visible_to(&caller, &resource) {
        return Err(ApiError::NotFound {
            kind: "resource",
            id: code.to_string(),
        });
    }
    Ok(tagged(resource))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ResourceQuery {
    #[param(value_type = Option<String>)]
    pub provider: Option<Uscc>,
    pub kind: Option<ResourceKind>,
    /// Deactivated resources are listed only when asked for with `active=false`.
    pub active: Option<bool>,
    /// Only resources changed at or after this RFC 3339 time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub modified_since: Option<Timestamp>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/resources", tag = "catalog", params(ResourceQuery),
    description = "Lists resources in code order. For full-text search use /api/v1/search.",
    responses((status = 200, body = PageOf<Resource>)))]
async fn list_resources(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ResourceQuery>,
) -> ApiResult<axum::Json<PageOf<Resource>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let filter = ResourceFilter {
        providers: query.provider.into_iter().collect(),
        kind: query.kind,
        active: Some(query.active.unwrap_or(true)),
        modified_since: query.modified_since,
        ..ResourceFilter::default()
    };
    let page = state
        .store
        .list_resources(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

/// One version of a resource.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct VersionView {
    pub version: u32,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Timestamp,
    pub changed_by: String,
    pub resource: ResourceDraft,
}

#[utoipa::path(get, path = "/api/v1/resources/{code}/history", tag = "catalog",
    params(("code" = String, Path)),
    description = "Every version of the resource, oldest first, with who changed it and when.",
    responses((status = 200, body = Vec<VersionView>), (status = 404, body = Problem)))]
async fn resource_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<VersionView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let code = resource_code(&code)?;
    let versions = state.store.resource_history(&code).await?;
    Ok(axum::Json(
        versions
            .into_iter()
            .map(|version: ResourceVersion| VersionView {
                version: version.version,
                active: version.active,
                changed_at: version.changed_at,
                changed_by: version.changed_by,
                resource: version.draft,
            })
            .collect(),
    ))
}
