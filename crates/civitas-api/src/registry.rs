//! The registry endpoints: the node, organizations, systems, users, API keys and sign-in.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use civitas_core::{
    Code, RegionCode, Uscc,
    authz::Action,
    registry::{ApiKey, KeyOwner, Level, Organization, Principal, Role, System, User, UserName},
};
use civitas_store::{
    NewOrganization, NewSystem, NewUser, OrganizationFilter, OrganizationUpdate, SystemFilter,
    SystemUpdate, UserFilter, UserUpdate,
};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState, PageOf,
    auth::{self, Caller, MIN_PASSWORD_CHARS},
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path, Query},
    paging,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/node", get(node))
        .route("/me", get(me))
        .route("/login", post(login))
        .route(
            "/organizations",
            post(create_organization).get(list_organizations),
        )
        .route(
            "/organizations/{org_code}",
            get(get_organization)
                .patch(update_organization)
                .delete(deactivate_organization),
        )
        .route(
            "/organizations/{org_code}/reactivate",
            post(reactivate_organization),
        )
        .route(
            "/organizations/{org_code}/systems",
            post(create_system).get(list_systems),
        )
        .route(
            "/organizations/{org_code}/systems/{system_code}",
            get(get_system)
                .patch(update_system)
                .delete(deactivate_system),
        )
        .route(
            "/organizations/{org_code}/systems/{system_code}/reactivate",
            post(reactivate_system),
        )
        .route("/users", post(create_user).get(list_users))
        .route(
            "/users/{name}",
            get(get_user).patch(update_user).delete(deactivate_user),
        )
        .route("/users/{name}/reactivate", post(reactivate_user))
        .route("/keys", post(create_key).get(list_keys))
        .route("/keys/{id}", get(get_key).delete(revoke_key))
}

/// Deserializes a field that may be absent (`None`), null (`Some(None)`) or set (`Some(Some(_))`).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

fn org_code(text: &str) -> ApiResult<Uscc> {
    Uscc::parse(text).map_err(|error| ApiError::NotFound {
        kind: "organization",
        id: format!("{text} ({error})"),
    })
}

fn system_code(org: &Uscc, text: &str) -> ApiResult<Code> {
    Code::parse(text).map_err(|error| ApiError::NotFound {
        kind: "system",
        id: format!("{org}/{text} ({error})"),
    })
}

fn user_name(text: &str) -> ApiResult<UserName> {
    UserName::parse(text).map_err(|error| ApiError::NotFound {
        kind: "user",
        id: format!("{text} ({error})"),
    })
}

/// The node: its code and the public key that signs its ledger checkpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NodeInfo {
    /// The node's code, e.g. `cn-js-nanjing`.
    pub code: String,
    /// The node's Ed25519 public key, base64.
    pub public_key: String,
    /// The same key as a C2SP signed-note verifier key (`name+hash+base64key`).
    pub verifier_key: String,
    /// The city region whose systems count as inside the city.
    pub city_region: String,
    pub version: String,
}

#[utoipa::path(get, path = "/api/v1/node", tag = "registry",
    responses((status = 200, body = NodeInfo)))]
async fn node(State(state): State<AppState>) -> axum::Json<NodeInfo> {
    axum::Json(state.node.as_ref().clone())
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `user` or `system`.
    pub kind: &'static str,
    pub name: String,
    pub role: Option<Role>,
    pub organization: Option<String>,
    pub key_id: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "registry",
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
async fn me(caller: Caller) -> axum::Json<Me> {
    let me = match &caller.principal {
        Principal::User {
            name,
            role,
            organization,
        } => Me {
            kind: "user",
            name: name.to_string(),
            role: Some(*role),
            organization: organization.as_ref().map(Uscc::to_string),
            key_id: caller.key_id.clone(),
        },
        Principal::System {
            organization,
            system,
        } => Me {
            kind: "system",
            name: system.to_string(),
            role: None,
            organization: Some(organization.to_string()),
            key_id: caller.key_id.clone(),
        },
    };
    axum::Json(me)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub name: String,
    pub password: String,
}

/// A newly issued key. `key` is shown only in this answer; civitas keeps only its hash.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedKeyResponse {
    pub key: String,
    pub api_key: ApiKey,
}

#[utoipa::path(post, path = "/api/v1/login", tag = "registry", request_body = LoginRequest,
    description = "Signs in with a password and issues a key for 12 hours. Deactivated users, and users of a deactivated organization, cannot sign in. Every refusal is the same 401 `invalid_credentials` and costs the same password check: an unknown name's password is checked against a dummy hash, so the time of the answer does not tell which names exist.",
    responses((status = 201, body = IssuedKeyResponse), (status = 401, body = Problem)))]
async fn login(
    State(state): State<AppState>,
    Json(request): Json<LoginRequest>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKeyResponse>)> {
    // Every refusal costs one password verification, whether the name is malformed, unknown or
    // deactivated (checked against a dummy hash) or the password wrong: the time of the answer
    // does not tell which names exist.
    let name = UserName::parse(&request.name).ok();
    let stored = match &name {
        Some(name) => state.store.password_hash(name).await?,
        None => None,
    };
    let verified = auth::verify_password(request.password, stored).await?;
    let (true, Some(name)) = (verified, name) else {
        return Err(ApiError::InvalidCredentials);
    };
    let now = Timestamp::now();
    let issued = auth::issue_key(
        KeyOwner::User { name: name.clone() },
        "session".into(),
        Some(auth::session_expiry(now)),
    );
    let permit = civitas_core::authz::Permit::internal("civitas:login");
    let api_key = state
        .store
        .create_api_key(&permit, &issued.record, None)
        .await?;
    state.audit_changed().await;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedKeyResponse {
            key: issued.secret,
            api_key,
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    /// Unified social credit code (GB 32100), validated with its check characters.
    #[schema(value_type = String, example = "11320100MB1234567X")]
    pub code: Uscc,
    pub name: String,
    pub name_en: Option<String>,
    pub level: Level,
    /// GB/T 2260 region code from the shipped table.
    #[schema(value_type = String, example = "320100")]
    pub region: RegionCode,
    #[schema(value_type = Option<String>)]
    pub parent: Option<Uscc>,
}

#[utoipa::path(post, path = "/api/v1/organizations", tag = "registry",
    request_body = CreateOrganization,
    responses((status = 201, body = Organization), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_organization(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateOrganization>,
) -> ApiResult<(StatusCode, axum::Json<Organization>)> {
    let permit = caller.permit(Action::ManageOrganizations, Some(&request.code))?;
    let organization = state
        .store
        .create_organization(
            &permit,
            &NewOrganization {
                code: request.code,
                name: request.name,
                name_en: request.name_en,
                level: request.level,
                region: request.region,
                parent: request.parent,
            },
        )
        .await?;
    state.audit_changed().await;
    Ok((StatusCode::CREATED, axum::Json(organization)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OrganizationQuery {
    pub level: Option<Level>,
    #[param(value_type = Option<String>)]
    pub region: Option<RegionCode>,
    #[param(value_type = Option<String>)]
    pub parent: Option<Uscc>,
    pub active: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/organizations", tag = "registry", params(OrganizationQuery),
    responses((status = 200, body = PageOf<Organization>)))]
async fn list_organizations(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<OrganizationQuery>,
) -> ApiResult<axum::Json<PageOf<Organization>>> {
    caller.permit(Action::ReadRegistry, None)?;
    let filter = OrganizationFilter {
        level: query.level,
        region: query.region,
        parent: query.parent,
        active: query.active,
    };
    let page = state
        .store
        .list_organizations(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}", tag = "registry",
    params(("org_code" = String, Path)),
    responses((status = 200, body = Organization), (status = 404, body = Problem)))]
async fn get_organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Organization>> {
    caller.permit(Action::ReadRegistry, None)?;
    Ok(axum::Json(
        state.store.organization(&org_code(&code)?).await?,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub name_en: Option<Option<String>>,
    pub level: Option<Level>,
    #[schema(value_type = Option<String>)]
    pub region: Option<RegionCode>,
    /// A new parent, or null for none.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub parent: Option<Option<Uscc>>,
}

#[utoipa::path(patch, path = "/api/v1/organizations/{org_code}", tag = "registry",
    params(("org_code" = String, Path)), request_body = UpdateOrganization,
    responses((status = 200, body = Organization), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Json(request): Json<UpdateOrganization>,
) -> ApiResult<axum::Json<Organization>> {
    let code = org_code(&code)?;
    // An organization's admin may rename it; moving it in the hierarchy is the platform's call.
    let moves = request.level.is_some() || request.region.is_some() || request.parent.is_some();
    let action = if moves {
        Action::ManageOrganizations
    } else {
        Action::UpdateOrganization
    };
    let permit = caller.permit(action, Some(&code))?;
    let update = OrganizationUpdate {
        name: request.name,
        name_en: request.name_en,
        level: request.level,
        region: request.region,
        parent: request.parent,
    };
    let organization = state
        .store
        .update_organization(&permit, &code, &update)
        .await?;
    state.audit_changed().await;
    // Its resources are indexed again, with its new name or level.
    state.catalog_changed();
    Ok(axum::Json(organization))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{org_code}", tag = "registry",
    description = "Deactivates the organization. Organizations are never deleted. Until it is reactivated, its systems' and users' keys stop working at once, its users cannot sign in, and no user is created in it or moved into it (422 naming `organization`).",
    params(("org_code" = String, Path)),
    responses((status = 200, body = Organization), (status = 404, body = Problem)))]
async fn deactivate_organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Organization>> {
    set_organization_active(state, caller, code, false).await
}

#[utoipa::path(post, path = "/api/v1/organizations/{org_code}/reactivate", tag = "registry",
    description = "Reactivates the organization: its systems' and users' keys work again, and its users sign in again (unless deactivated themselves).",
    params(("org_code" = String, Path)),
    responses((status = 200, body = Organization), (status = 404, body = Problem)))]
async fn reactivate_organization(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Organization>> {
    set_organization_active(state, caller, code, true).await
}

async fn set_organization_active(
    state: AppState,
    caller: Caller,
    code: String,
    active: bool,
) -> ApiResult<axum::Json<Organization>> {
    let code = org_code(&code)?;
    let permit = caller.permit(Action::ManageOrganizations, Some(&code))?;
    let organization = state
        .store
        .set_organization_active(&permit, &code, active)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(organization))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSystem {
    /// Unique within the organization.
    #[schema(value_type = String, example = "rental-portal")]
    pub code: Code,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Whether the system calls other departments' services.
    #[serde(default)]
    pub consumes: bool,
    /// Whether the system provides services to others.
    #[serde(default)]
    pub provides: bool,
}

#[utoipa::path(post, path = "/api/v1/organizations/{org_code}/systems", tag = "registry",
    params(("org_code" = String, Path)), request_body = CreateSystem,
    responses((status = 201, body = System), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn create_system(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Json(request): Json<CreateSystem>,
) -> ApiResult<(StatusCode, axum::Json<System>)> {
    let org = org_code(&org)?;
    let permit = caller.permit(Action::ManageSystems, Some(&org))?;
    let system = state
        .store
        .create_system(
            &permit,
            &org,
            &NewSystem {
                code: request.code,
                name: request.name,
                description: request.description,
                consumes: request.consumes,
                provides: request.provides,
            },
        )
        .await?;
    state.audit_changed().await;
    Ok((StatusCode::CREATED, axum::Json(system)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SystemQuery {
    pub consumes: Option<bool>,
    pub provides: Option<bool>,
    pub active: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems", tag = "registry",
    params(("org_code" = String, Path), SystemQuery),
    responses((status = 200, body = PageOf<System>), (status = 404, body = Problem)))]
async fn list_systems(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(query): Query<SystemQuery>,
) -> ApiResult<axum::Json<PageOf<System>>> {
    caller.permit(Action::ReadRegistry, None)?;
    let org = org_code(&org)?;
    let filter = SystemFilter {
        consumes: query.consumes,
        provides: query.provides,
        active: query.active,
    };
    let page = state
        .store
        .list_systems(
            &org,
            &filter,
            &paging(query.limit, query.cursor.as_deref())?,
        )
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/organizations/{org_code}/systems/{system_code}", tag = "registry",
    params(("org_code" = String, Path), ("system_code" = String, Path)),
    responses((status = 200, body = System), (status = 404, body = Problem)))]
async fn get_system(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
) -> ApiResult<axum::Json<System>> {
    caller.permit(Action::ReadRegistry, None)?;
    let org = org_code(&org)?;
    let system = system_code(&org, &system)?;
    Ok(axum::Json(state.store.system(&org, &system).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSystem {
    pub name: Option<String>,
    pub description: Option<String>,
    pub consumes: Option<bool>,
    pub provides: Option<bool>,
}

#[utoipa::path(patch, path = "/api/v1/organizations/{org_code}/systems/{system_code}", tag = "registry",
    params(("org_code" = String, Path), ("system_code" = String, Path)), request_body = UpdateSystem,
    responses((status = 200, body = System), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn update_system(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
    Json(request): Json<UpdateSystem>,
) -> ApiResult<axum::Json<System>> {
    let org = org_code(&org)?;
    let system = system_code(&org, &system)?;
    let permit = caller.permit(Action::ManageSystems, Some(&org))?;
    let update = SystemUpdate {
        name: request.name,
        description: request.description,
        consumes: request.consumes,
        provides: request.provides,
    };
    let system = state
        .store
        .update_system(&permit, &org, &system, &update)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(system))
}

#[utoipa::path(delete, path = "/api/v1/organizations/{org_code}/systems/{system_code}", tag = "registry",
    description = "Deactivates the system; its keys stop working at once.",
    params(("org_code" = String, Path), ("system_code" = String, Path)),
    responses((status = 200, body = System), (status = 404, body = Problem)))]
async fn deactivate_system(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
) -> ApiResult<axum::Json<System>> {
    set_system_active(state, caller, org, system, false).await
}

#[utoipa::path(post, path = "/api/v1/organizations/{org_code}/systems/{system_code}/reactivate", tag = "registry",
    params(("org_code" = String, Path), ("system_code" = String, Path)),
    responses((status = 200, body = System), (status = 404, body = Problem)))]
async fn reactivate_system(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, system)): Path<(String, String)>,
) -> ApiResult<axum::Json<System>> {
    set_system_active(state, caller, org, system, true).await
}

async fn set_system_active(
    state: AppState,
    caller: Caller,
    org: String,
    system: String,
    active: bool,
) -> ApiResult<axum::Json<System>> {
    let org = org_code(&org)?;
    let system = system_code(&org, &system)?;
    let permit = caller.permit(Action::ManageSystems, Some(&org))?;
    let system = state
        .store
        .set_system_active(&permit, &org, &system, active)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(system))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    #[schema(value_type = String, example = "wang.fang")]
    pub name: UserName,
    pub display_name: String,
    pub role: Role,
    /// Required for every role but `platform_admin`.
    #[schema(value_type = Option<String>)]
    pub organization: Option<Uscc>,
    /// At least 12 characters; omit for users who use only API keys.
    pub password: Option<String>,
}

fn check_password(password: &str) -> ApiResult<()> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(
            "password",
            format!("must have at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

/// The permit to manage a user with `role` in `organization`: platform admins and auditors are
/// managed by platform admins only, everyone else by their organization's admin.
///
/// An auditor reads the audit trail of every organization, so whoever makes someone an auditor,
/// or sets an auditor's password or keys, grants platform-wide reading: that is the platform's
/// call, not one organization's.
fn user_permit(
    caller: &Caller,
    role: Role,
    organization: Option<&Uscc>,
) -> ApiResult<civitas_core::authz::Permit> {
    match role {
        Role::PlatformAdmin => caller.permit(Action::ManageUsers, None),
        Role::Auditor => caller.permit(Action::ManageUsers, None).map_err(|_| {
            ApiError::Forbidden(
                "only a platform admin may manage auditors, who read every organization's records"
                    .into(),
            )
        }),
        Role::OrgAdmin | Role::DataOfficer | Role::Developer => {
            caller.permit(Action::ManageUsers, organization)
        }
    }
}

#[utoipa::path(post, path = "/api/v1/users", tag = "registry", request_body = CreateUser,
    description = "Creates a user (an organization's admin, in their organization). Auditors read every organization's records, so only platform admins create auditors and platform admins. The organization must exist and be active (422 naming `organization` otherwise).",
    responses((status = 201, body = User), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_user(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateUser>,
) -> ApiResult<(StatusCode, axum::Json<User>)> {
    let permit = user_permit(&caller, request.role, request.organization.as_ref())?;
    let password_hash = match request.password {
        Some(password) => {
            check_password(&password)?;
            Some(auth::hash_password(password).await?)
        }
        None => None,
    };
    let user = state
        .store
        .create_user(
            &permit,
            &NewUser {
                name: request.name,
                display_name: request.display_name,
                role: request.role,
                organization: request.organization,
                password_hash,
            },
        )
        .await?;
    state.audit_changed().await;
    Ok((StatusCode::CREATED, axum::Json(user)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    #[param(value_type = Option<String>)]
    pub organization: Option<Uscc>,
    pub role: Option<Role>,
    pub active: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "registry", params(UserQuery),
    responses((status = 200, body = PageOf<User>)))]
async fn list_users(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UserQuery>,
) -> ApiResult<axum::Json<PageOf<User>>> {
    caller.permit(Action::ReadRegistry, None)?;
    let filter = UserFilter {
        organization: query.organization,
        role: query.role,
        active: query.active,
    };
    let page = state
        .store
        .list_users(&filter, &paging(query.limit, query.cursor.as_deref())?)
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/users/{name}", tag = "registry",
    params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)))]
async fn get_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<User>> {
    caller.permit(Action::ReadRegistry, None)?;
    Ok(axum::Json(state.store.user(&user_name(&name)?).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub organization: Option<Option<Uscc>>,
    pub password: Option<String>,
}

#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "registry",
    description = "Changes the fields named, and only those. The caller must be allowed to manage the user both as they are and as they will be: making a user an auditor, or changing an auditor, is for platform admins only. A user is not moved into a deactivated organization (422 naming `organization`). A change of the user's role or organization by someone else between the check and the write is a 409: read the user again and retry.",
    params(("name" = String, Path)), request_body = UpdateUser,
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn update_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(request): Json<UpdateUser>,
) -> ApiResult<axum::Json<User>> {
    let name = user_name(&name)?;
    let current = state.store.user(&name).await?;
    // The caller must be allowed to manage the user both as they are and as they will be. The
    // store writes only while the user's role and organization are still those checked here.
    let permit = user_permit(&caller, current.role, current.organization.as_ref())?;
    let new_organization = match &request.organization {
        Some(organization) => organization.as_ref(),
        None => current.organization.as_ref(),
    };
    user_permit(
        &caller,
        request.role.unwrap_or(current.role),
        new_organization,
    )?;
    let password_hash = match request.password {
        Some(password) => {
            check_password(&password)?;
            Some(auth::hash_password(password).await?)
        }
        None => None,
    };
    let update = UserUpdate {
        display_name: request.display_name,
        role: request.role,
        organization: request.organization,
        password_hash,
    };
    let user = state.store.update_user(&permit, &current, &update).await?;
    state.audit_changed().await;
    Ok(axum::Json(user))
}

#[utoipa::path(delete, path = "/api/v1/users/{name}", tag = "registry",
    description = "Deactivates the user; their keys stop working at once. A change of the user's role or organization by someone else between the check and the write is a 409: read the user again and retry.",
    params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn deactivate_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_user_active(state, caller, name, false).await
}

#[utoipa::path(post, path = "/api/v1/users/{name}/reactivate", tag = "registry",
    description = "Reactivates the user. A change of the user's role or organization by someone else between the check and the write is a 409: read the user again and retry.",
    params(("name" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn reactivate_user(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<axum::Json<User>> {
    set_user_active(state, caller, name, true).await
}

async fn set_user_active(
    state: AppState,
    caller: Caller,
    name: String,
    active: bool,
) -> ApiResult<axum::Json<User>> {
    let name = user_name(&name)?;
    let current = state.store.user(&name).await?;
    // The store writes only while the user's role and organization are still those checked here.
    let permit = user_permit(&caller, current.role, current.organization.as_ref())?;
    let user = state
        .store
        .set_user_active(&permit, &current, active)
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(user))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// Whose key it is: `{"kind": "user", "name": …}` or
    /// `{"kind": "system", "organization": …, "system": …}`. Defaults to the caller.
    pub owner: Option<KeyOwner>,
    #[serde(default)]
    pub label: String,
    /// Days until the key expires; keys without it last until revoked.
    pub expires_in_days: Option<u32>,
}

/// The permit to manage keys of `owner`: one's own keys; another user's keys for whoever may
/// manage that user; a system's keys for whoever manages its organization's keys.
///
/// A user's key acts as that user, so issuing, reading or revoking another user's keys is
/// managing the user: a developer, who manages the organization's system keys, must not be able
/// to act as its org admin. With the permit comes the user it was checked against, for another
/// user's keys: the store issues or revokes such a key only while that user's role and
/// organization are still as read.
async fn key_permit(
    state: &AppState,
    caller: &Caller,
    owner: &KeyOwner,
) -> ApiResult<(civitas_core::authz::Permit, Option<User>)> {
    match owner {
        KeyOwner::User { name } => {
            if let Principal::User { name: own_name, .. } = &caller.principal
                && own_name == name
            {
                return Ok((caller.permit(Action::ManageOwnKeys, None)?, None));
            }
            let user = state.store.user(name).await?;
            let permit = user_permit(caller, user.role, user.organization.as_ref())?;
            Ok((permit, Some(user)))
        }
        KeyOwner::System { organization, .. } => {
            Ok((caller.permit(Action::ManageKeys, Some(organization))?, None))
        }
    }
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "registry", request_body = CreateKey,
    description = "Issues an API key: one's own; another user's for whoever manages that user (their organization's admin; for auditors and platform admins, a platform admin); a system's for whoever manages its organization's keys. A change of the owning user's role or organization by someone else between the check and the write is a 409: read the user again and retry.",
    responses((status = 201, body = IssuedKeyResponse), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<CreateKey>,
) -> ApiResult<(StatusCode, axum::Json<IssuedKeyResponse>)> {
    let owner = match (request.owner, &caller.principal) {
        (Some(owner), _) => owner,
        (None, Principal::User { name, .. }) => KeyOwner::User { name: name.clone() },
        (None, Principal::System { .. }) => {
            return Err(ApiError::invalid("owner", "name the owner of the key"));
        }
    };
    let (permit, checked) = key_permit(&state, &caller, &owner).await?;
    let expires_at = match request.expires_in_days {
        Some(0) => return Err(ApiError::invalid("expires_in_days", "must be at least 1")),
        Some(days) if days > 3660 => {
            return Err(ApiError::invalid("expires_in_days", "must be at most 3660"));
        }
        Some(days) => Some(Timestamp::now() + (i64::from(days) * 24).hours()),
        None => None,
    };
    let issued = auth::issue_key(owner, request.label, expires_at);
    let api_key = state
        .store
        .create_api_key(&permit, &issued.record, checked.as_ref())
        .await?;
    state.audit_changed().await;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedKeyResponse {
            key: issued.secret,
            api_key,
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KeyQuery {
    /// Keys of this user.
    pub user: Option<String>,
    /// Keys of this organization, its users' and its systems' (for its admins); with `system`:
    /// of that system only (for whoever manages the organization's keys).
    pub organization: Option<String>,
    pub system: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "registry", params(KeyQuery),
    description = "Lists key metadata (never the keys). Without filters: the caller's own keys. Another user's keys are listed for whoever manages that user (an auditor's or a platform admin's: a platform admin); an organization's keys as a whole, which include its users' keys, for its admins.",
    responses((status = 200, body = PageOf<ApiKey>)))]
async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<KeyQuery>,
) -> ApiResult<axum::Json<PageOf<ApiKey>>> {
    let organization = query
        .organization
        .as_deref()
        .map(Uscc::parse)
        .transpose()
        .map_err(|e| ApiError::invalid("organization", e))?;
    let (owner, organization) = match (query.user, organization, query.system) {
        (Some(user), None, None) => {
            let name = UserName::parse(&user).map_err(|e| ApiError::invalid("user", e))?;
            (Some(KeyOwner::User { name }), None)
        }
        (None, Some(organization), Some(system)) => {
            let system = Code::parse(&system).map_err(|e| ApiError::invalid("system", e))?;
            (
                Some(KeyOwner::System {
                    organization,
                    system,
                }),
                None,
            )
        }
        (None, Some(organization), None) => (None, Some(organization)),
        (None, None, None) => match &caller.principal {
            Principal::User { name, .. } => (Some(KeyOwner::User { name: name.clone() }), None),
            Principal::System {
                organization,
                system,
            } => (
                Some(KeyOwner::System {
                    organization: organization.clone(),
                    system: system.clone(),
                }),
                None,
            ),
        },
        _ => {
            return Err(ApiError::invalid(
                "query",
                "filter by user, by organization, or by organization and system",
            ));
        }
    };
    match (&owner, &organization) {
        (Some(owner), _) => {
            key_permit(&state, &caller, owner).await?;
        }
        // The organization's listing holds its users' keys too: it is for whoever manages them.
        (None, organization) => {
            caller.permit(Action::ManageUsers, organization.as_ref())?;
        }
    }
    let page = state
        .store
        .list_api_keys(
            owner.as_ref(),
            organization.as_ref(),
            &paging(query.limit, query.cursor.as_deref())?,
        )
        .await?;
    Ok(axum::Json(PageOf::from(page)))
}

#[utoipa::path(get, path = "/api/v1/keys/{id}", tag = "registry",
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)))]
async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKey>> {
    let key = state.store.api_key(&id).await?;
    key_permit(&state, &caller, &key.owner).await?;
    Ok(axum::Json(key))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "registry",
    description = "Revokes the key; it stops working at once. A key already revoked is a 409, and so is, for another user's key, a change of that user's role or organization by someone else between the check and the write: read the user again and retry.",
    params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ApiKey>> {
    let key = state.store.api_key(&id).await?;
    let (permit, checked) = key_permit(&state, &caller, &key.owner).await?;
    let key = state
        .store
        .revoke_api_key(&permit, &id, checked.as_ref())
        .await?;
    state.audit_changed().await;
    Ok(axum::Json(key))
}
