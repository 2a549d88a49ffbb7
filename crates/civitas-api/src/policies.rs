//! Platform-wide policies in Cedar, and `POST /api/v1/policy/explain`: what the gateway would
//! decide for a request, and why.

use axum::{
    Router,
    extract::State,
    http::StatusCode,
    routing::{get, post},
};
use civitas_access::{
    GrantIndex, PlatformPolicies, PolicyStatus,
    decision::{ConsumerFacts, DecisionRequest, Explanation, ItemPolicy, LocalTime, ResourceFacts},
    explain,
};
use civitas_core::{
    Code,
    access::{PlatformPolicy, SystemRef},
    authz::Action,
    catalog::{ResourceCode, Sensitivity, guess_mask},
};
use civitas_store::GrantFilter;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    AppState,
    access::{all_grants, check_read, text_field},
    auth::Caller,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/policies", get(list_policies))
        .route(
            "/policies/{id}",
            get(get_policy).put(put_policy).delete(deactivate_policy),
        )
        .route("/policies/schema", get(schema))
        .route("/policy/explain", post(explain_request))
}

fn policy_id(text: &str) -> ApiResult<Code> {
    Code::parse(text).map_err(|error| ApiError::invalid("id", error))
}

/// How a stored policy fares with the node's Cedar and schema today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PolicyValidity {
    /// It validates: the gateway evaluates it.
    Valid,
    /// It parses but no longer type-checks against the schema (after an upgrade of Cedar or of
    /// the schema). While it is active, the gateway evaluates it as written and refuses every
    /// exchange where it fails to evaluate.
    Stale,
    /// It cannot be read as one forbid policy. While it is active, the gateway refuses every
    /// exchange a grant allows, naming it.
    Unusable,
}

/// A stored platform policy, with whether it still validates. Policies are checked when they
/// are written, so one that is not valid was left so by an upgrade: fix it or deactivate it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    #[serde(flatten)]
    pub policy: PlatformPolicy,
    pub validity: PolicyValidity,
    /// What is wrong with it, with lines and columns where known; null when it is valid.
    pub problem: Option<String>,
}

impl PolicyView {
    fn of(policy: PlatformPolicy) -> PolicyView {
        let status = PlatformPolicies::check_stored(policy.id.as_str(), &policy.text);
        let validity = match status {
            PolicyStatus::Valid => PolicyValidity::Valid,
            PolicyStatus::Stale(_) => PolicyValidity::Stale,
            PolicyStatus::Unusable(_) => PolicyValidity::Unusable,
        };
        PolicyView {
            policy,
            validity,
            problem: status.error().map(ToString::to_string),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/policies", tag = "access",
    description = "Every stored platform policy, active or not, each with whether it still validates against the node's Cedar schema (`validity`, and `problem` when it does not).",
    responses((status = 200, body = Vec<PolicyView>)))]
async fn list_policies(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<PolicyView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let policies = state.store.policies().await?;
    Ok(axum::Json(
        policies.into_iter().map(PolicyView::of).collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "access",
    params(("id" = String, Path)),
    description = "A stored platform policy, with whether it still validates against the node's Cedar schema.",
    responses((status = 200, body = PolicyView), (status = 404, body = Problem)))]
async fn get_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PolicyView>> {
    caller.permit(Action::ReadCatalog, None)?;
    let id = Code::parse(&id).map_err(|e| ApiError::NotFound {
        kind: "policy",
        id: format!("{id} ({e})"),
    })?;
    Ok(axum::Json(PolicyView::of(state.store.policy(&id).await?)))
}

#[utoipa::path(get, path = "/api/v1/policies/schema", tag = "access",
    description = "The Cedar schema platform policies are checked against.",
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn schema() -> &'static str {
    PlatformPolicies::schema_text()
}

/// The longest policy text taken: far more than one `forbid` policy needs.
const MAX_POLICY_CHARS: usize = 10_000;

/// The most policies one explanation may try instead of the active ones.
const MAX_TRIAL_POLICIES: usize = 200;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    pub description: String,
    /// One Cedar `forbid` policy over the civitas schema (see /api/v1/policies/schema).
    pub text: String,
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_true() -> bool {
    true
}

#[utoipa::path(put, path = "/api/v1/policies/{id}", tag = "access",
    params(("id" = String, Path)), request_body = PolicyRequest,
    description = "Creates or replaces a platform policy (platform admins). The policy is checked against the Cedar schema of civitas entities first; one that does not parse or type-check is refused with its line and column.",
    responses((status = 200, body = PolicyView), (status = 201, body = PolicyView), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn put_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(request): Json<PolicyRequest>,
) -> ApiResult<(StatusCode, axum::Json<PolicyView>)> {
    let permit = caller.permit(Action::ManagePolicies, None)?;
    let id = policy_id(&id)?;
    text_field("description", &request.description, 2000)?;
    text_field("text", &request.text, MAX_POLICY_CHARS)?;
    PlatformPolicies::validate(id.as_str(), &request.text)
        .map_err(|error| ApiError::invalid("text", error))?;
    let (policy, created) = state
        .store
        .put_policy(
            &permit,
            &id,
            &request.description,
            &request.text,
            request.active,
        )
        .await?;
    state.audit_changed().await;
    // The gateway decides with the policies: wake it rather than leave it to its next poll.
    state.access_changed();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(PolicyView::of(policy))))
}

#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "access",
    params(("id" = String, Path)),
    description = "Deactivates a platform policy; policies are kept for the record. A policy that no longer validates (see `validity`) can always be deactivated.",
    responses((status = 200, body = PolicyView), (status = 404, body = Problem)))]
async fn deactivate_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PolicyView>> {
    let permit = caller.permit(Action::ManagePolicies, None)?;
    let id = Code::parse(&id).map_err(|e| ApiError::NotFound {
        kind: "policy",
        id: format!("{id} ({e})"),
    })?;
    let current = state.store.policy(&id).await?;
    let (policy, _) = state
        .store
        .put_policy(&permit, &id, &current.description, &current.text, false)
        .await?;
    state.audit_changed().await;
    state.access_changed();
    Ok(axum::Json(PolicyView::of(policy)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    pub consumer: SystemRef,
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// The items asked for; all the grant allows when absent.
    pub items: Option<Vec<String>>,
    /// When the exchange would happen; now when absent.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub at: Option<Timestamp>,
    /// Rows of a bulk read; absent for an ordinary call.
    pub expected_rows: Option<u64>,
    /// Policies to try instead of the active ones, as (id, Cedar text): to test a policy before
    /// publishing it.
    pub policies: Option<Vec<(String, String)>>,
}

/// What would be decided, and every step that led there.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplainResponse {
    #[schema(value_type = Object)]
    pub explanation: Explanation,
}

#[utoipa::path(post, path = "/api/v1/policy/explain", tag = "access", request_body = ExplainRequest,
    description = "What the gateway would decide for this request, and why: the grants considered, each item's fate, each platform policy evaluated. The explanation shows the grants between the consumer's organization and the resource's provider, so only those who may read them get it: people of either organization, auditors and platform admins; anyone else is refused (403).",
    responses((status = 200, body = ExplainResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn explain_request(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<ExplainRequest>,
) -> ApiResult<axum::Json<ExplainResponse>> {
    caller.permit(Action::ReadCatalog, None)?;
    let resource =
        state.store.resource(&request.resource).await.map_err(|_| {
            ApiError::invalid("resource", format!("no resource {}", request.resource))
        })?;
    let consumer_organization = state
        .store
        .organization(&request.consumer.organization)
        .await
        .map_err(|_| {
            ApiError::invalid(
                "consumer",
                format!("no organization {}", request.consumer.organization),
            )
        })?;
    // The explanation names the grants, their items and masking: it is access records between
    // the two organizations. Without the grants it would still tell whether one exists.
    check_read(
        &caller,
        &request.consumer.organization,
        &resource.draft.provider,
    )?;
    let provider = state.store.organization(&resource.draft.provider).await?;
    let filter = GrantFilter {
        consumer_organization: Some(request.consumer.organization.clone()),
        consumer_system: Some(request.consumer.system.clone()),
        resource: Some(request.resource.clone()),
        ..GrantFilter::default()
    };
    let grants = all_grants(&state, &filter).await?;
    let index = GrantIndex::from_grants(grants).map_err(ApiError::internal)?;
    let city =
        civitas_core::RegionCode::parse(&state.node.city_region).map_err(ApiError::internal)?;
    let policies = match request.policies {
        Some(trial) => {
            // Trial policies are checked as a submitted policy is: each is parsed and
            // type-checked, which costs time in its length and in their number.
            if trial.len() > MAX_TRIAL_POLICIES {
                return Err(ApiError::invalid(
                    "policies",
                    format!("try at most {MAX_TRIAL_POLICIES} policies at once"),
                ));
            }
            for (index, (_, text)) in trial.iter().enumerate() {
                text_field(&format!("policies[{index}]"), text, MAX_POLICY_CHARS)?;
            }
            PlatformPolicies::with_policies(
                city,
                trial.iter().map(|(id, text)| (id.as_str(), text.as_str())),
            )
            .map_err(|error| ApiError::invalid("policies", error))?
        }
        None => {
            // Loaded as the gateway loads them, so that a stored policy that no longer
            // validates is explained as the gateway decides with it.
            let active: Vec<PlatformPolicy> = state
                .store
                .policies()
                .await?
                .into_iter()
                .filter(|policy| policy.active)
                .collect();
            PlatformPolicies::from_stored(
                city,
                active
                    .iter()
                    .map(|policy| (policy.id.as_str(), policy.text.as_str())),
            )
        }
    };
    let at = request.at.unwrap_or_else(Timestamp::now);
    let decision_request = DecisionRequest {
        consumer: ConsumerFacts {
            system: request.consumer.clone(),
            region: consumer_organization.region,
            level: consumer_organization.level,
        },
        resource: ResourceFacts {
            code: resource.draft.code.clone(),
            kind: resource.draft.kind,
            provider: resource.draft.provider.clone(),
            provider_region: provider.region,
            items: resource
                .draft
                .items
                .iter()
                .map(|item| ItemPolicy {
                    code: item.code.clone(),
                    sensitivity: item.sensitivity,
                    mask_kind: (item.sensitivity == Sensitivity::Personal).then(|| {
                        item.mask
                            .unwrap_or_else(|| guess_mask(&item.code, &item.name))
                    }),
                })
                .collect(),
        },
        requested_items: request.items,
        at,
        local_time: LocalTime::at_offset(at, jiff::tz::Offset::constant(8)),
        bulk: request.expected_rows.is_some(),
        expected_rows: request.expected_rows.unwrap_or(0),
    };
    Ok(axum::Json(ExplainResponse {
        explanation: explain(&decision_request, &index, &policies),
    }))
}
