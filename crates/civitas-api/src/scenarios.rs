//! Application scenarios through the API: publish definitions (validated against the scenario
//! consumer's grants), read them, run them as their front end, and list a citizen's runs.

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, header},
    routing::{get, post},
};
use civitas_core::{Code, access::SystemRef, authz::Action, registry::Principal};
use civitas_gateway::Gateway;
use civitas_ledger::record::{self, Record, ScenarioRunRecord};
use civitas_scenario::{
    CompiledScenario, Definition, DefinitionError, FailureKind, Format, RunOutcome, StepCall,
    StepExecutor, StepFailure, StepFuture, StepResponse,
};
use civitas_store::{GrantFilter, NewScenarioVersion, ScenarioRun, ScenarioVersion};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::{
    AppState, PageOf,
    auth::Caller,
    error::{ApiError, ApiResult, Problem},
    extract::{Json, Path, Query},
    paging,
};

/// The longest consent reference a run accepts: an id, which goes into the run's record.
pub const MAX_CONSENT_CHARACTERS: usize = 200;

/// Compiled scenarios by code, with the version they were compiled from.
pub type ScenarioCache = Arc<tokio::sync::RwLock<HashMap<String, (u32, Arc<CompiledScenario>)>>>;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/scenarios", get(list_scenarios))
        .route("/scenarios/{code}", get(get_scenario).put(publish))
        .route("/scenarios/{code}/versions", get(versions))
        .route("/scenarios/{code}/runs", post(run))
        .route("/scenario-runs", get(runs_of_citizen))
        .route("/scenario-runs/{id}", get(run_by_id))
}

/// Calls steps through the exchange gateway as the scenario's consumer system.
pub struct GatewayExecutor {
    pub gateway: Gateway,
    pub consumer: SystemRef,
}

impl StepExecutor for GatewayExecutor {
    fn call(&self, call: StepCall) -> StepFuture<'_> {
        Box::pin(async move {
            let path = format!(
                "/x/{}/{}/{}{}",
                call.service.organization, call.service.system, call.service.service, call.path
            );
            let (status, headers, body) = self
                .gateway
                .call_as(self.consumer.clone(), Method::GET, &path, Bytes::new())
                .await;
            gateway_answer(status.as_u16(), &headers, &body)
        })
    }
}

/// A step's result from the gateway's answer (`status`, `headers`, `body`), for the server's
/// executor and `civitas scenario test --gateway` alike. The gateway marks the answers it gives
/// itself (`Civitas-Refusal`); only the provider's own 404 says that the citizen is not in its
/// register. The gateway's 404s (`no_service` for a deactivated service, `path_not_allowed`) are
/// refusals, which must not make an applicant look unregistered, and a 2xx answer that is not
/// JSON is not data.
pub fn gateway_answer(
    status: u16,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<StepResponse, StepFailure> {
    let receipt = headers
        .get(civitas_gateway::RECEIPT_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok());
    let refusal = headers
        .get(civitas_gateway::REFUSAL_HEADER)
        .and_then(|value| value.to_str().ok());
    let parsed = serde_json::from_slice::<Value>(body);
    let detail = || {
        let detail = parsed
            .as_ref()
            .ok()
            .and_then(|body| body.get("detail"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match refusal {
            Some(code) => format!("{status} {code}: {detail}"),
            None => format!("{status}: {detail}"),
        }
    };
    match (status, refusal) {
        (200..=299, None) => match &parsed {
            Ok(body) => Ok(StepResponse {
                status,
                body: body.clone(),
                receipt,
            }),
            // Reading an empty or unreadable answer as JSON null would make the step found with
            // every output null.
            Err(error) => Err(StepFailure::new(
                FailureKind::Upstream,
                format!("the service answered {status} with a body that is not JSON: {error}"),
            )),
        },
        (404, None) => Ok(StepResponse {
            status: 404,
            body: parsed.unwrap_or(Value::Null),
            receipt,
        }),
        (504, _) => Err(StepFailure::new(FailureKind::Timeout, detail())),
        (401 | 403 | 429, _) | (400..=499, Some(_)) => {
            Err(StepFailure::new(FailureKind::Denied, detail()))
        }
        _ => Err(StepFailure::new(FailureKind::Upstream, detail())),
    }
}

fn system_ref(text: &str) -> Option<SystemRef> {
    let (organization, system) = text.split_once('/')?;
    Some(SystemRef {
        organization: organization.parse().ok()?,
        system: Code::parse(system).ok()?,
    })
}

fn definition_error(error: DefinitionError) -> ApiError {
    match error {
        DefinitionError::Syntax(syntax) => ApiError::invalid(
            syntax
                .path
                .clone()
                .filter(|path| !path.is_empty())
                .unwrap_or_else(|| "definition".to_owned()),
            syntax.to_string(),
        ),
        DefinitionError::Invalid(problems) => {
            let field = problems
                .first()
                .map(|p| p.place.clone())
                .unwrap_or_else(|| "definition".into());
            let message = problems
                .iter()
                .map(|problem| format!("{}: {}", problem.place, problem.message))
                .collect::<Vec<_>>()
                .join("; ");
            ApiError::invalid(field, message)
        }
    }
}

/// A published scenario.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScenarioView {
    pub code: String,
    pub version: u32,
    pub name: String,
    pub consumer: String,
    pub front_end: String,
    pub format: String,
    /// The definition exactly as published.
    pub definition: String,
    pub published_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub published_at: Timestamp,
}

impl From<ScenarioVersion> for ScenarioView {
    fn from(version: ScenarioVersion) -> ScenarioView {
        ScenarioView {
            code: version.code,
            version: version.version,
            name: version.name,
            consumer: version.consumer,
            front_end: version.front_end,
            format: version.format,
            definition: version.definition,
            published_by: version.published_by,
            published_at: version.published_at,
        }
    }
}

#[utoipa::path(put, path = "/api/v1/scenarios/{code}", tag = "scenarios",
    params(("code" = String, Path)),
    request_body(content = String, content_type = "application/yaml", description = "The definition in YAML (or JSON with application/json); see scenarios/README.md"),
    description = "Publishes a new version of a scenario. It is rejected, naming the place, when it does not parse, has no step or no rule, references an unknown input, step or output, or calls a service its consumer system has no valid grant for. A code belongs to the organization of its first version's consumer system: only that organization's data officers and admins (and platform admins) publish its versions (403 for anyone else), and a version whose consumer system is of another organization is refused (409).",
    responses((status = 201, body = ScenarioView), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn publish(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, axum::Json<ScenarioView>)> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::invalid("definition", "is not UTF-8 text"))?;
    let format = match headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        Some(value) if value.starts_with("application/json") => Format::Json,
        _ => Format::Yaml,
    };
    let definition = Definition::parse(text, format).map_err(definition_error)?;
    if definition.code.as_str() != code {
        return Err(ApiError::invalid(
            "code",
            format!("the definition is {}, the path {code}", definition.code),
        ));
    }
    let consumer = definition.consumer.clone();
    // A code belongs to the organization whose system consumed its first version: only those who
    // may manage that organization publish new versions, and a new version keeps it, so no other
    // organization can replace the rules a code's runs are decided by.
    let owner = match state.store.scenario_version(&code, Some(1)).await {
        Ok(first) => Some(
            system_ref(&first.consumer)
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad stored consumer")))?
                .organization,
        ),
        Err(civitas_store::StoreError::NotFound { .. }) => None,
        Err(error) => return Err(error.into()),
    };
    let permit = caller.permit(
        Action::ManageResources,
        Some(owner.as_ref().unwrap_or(&consumer.organization)),
    )?;
    if let Some(owner) = owner
        && owner != consumer.organization
    {
        return Err(ApiError::Conflict(format!(
            "scenario {code} belongs to organization {owner}, whose system consumed its first \
             version; a new version keeps a consumer system of {owner}"
        )));
    }
    // The services the consumer system may call now: those on resources it holds a valid grant for.
    let grants = crate::access::all_grants(
        &state,
        &GrantFilter {
            consumer_organization: Some(consumer.organization.clone()),
            consumer_system: Some(consumer.system.clone()),
            valid_at: Some(Timestamp::now()),
            ..GrantFilter::default()
        },
    )
    .await?;
    let granted_resources: std::collections::HashSet<String> =
        grants.iter().map(|g| g.resource.to_string()).collect();
    let services: HashMap<String, String> = state
        .store
        .services(None)
        .await?
        .into_iter()
        .filter(|service| service.active)
        .map(|service| {
            (
                format!("{}/{}", service.provider, service.draft.code),
                service.draft.resource.to_string(),
            )
        })
        .collect();
    let has_grant = |service: &civitas_scenario::ServiceRef| {
        services
            .get(&format!(
                "{}/{}/{}",
                service.organization, service.system, service.service
            ))
            .is_some_and(|resource| granted_resources.contains(resource))
    };
    let compiled = civitas_scenario::validate(&definition, &has_grant).map_err(definition_error)?;
    let version = state
        .store
        .publish_scenario(
            &permit,
            &NewScenarioVersion {
                code: definition.code.to_string(),
                name: definition.name.clone(),
                format: match format {
                    Format::Yaml => "yaml".into(),
                    Format::Json => "json".into(),
                },
                definition: text.to_owned(),
                consumer: consumer.to_string(),
                front_end: definition.front_end.to_string(),
            },
        )
        .await?;
    state
        .scenarios
        .write()
        .await
        .insert(version.code.clone(), (version.version, Arc::new(compiled)));
    state.audit_changed().await;
    Ok((StatusCode::CREATED, axum::Json(version.into())))
}

#[utoipa::path(get, path = "/api/v1/scenarios", tag = "scenarios",
    responses((status = 200, body = Vec<ScenarioView>)))]
async fn list_scenarios(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<ScenarioView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    Ok(axum::Json(
        state
            .store
            .latest_scenarios()
            .await?
            .into_iter()
            .map(Into::into)
            .collect(),
    ))
}

#[utoipa::path(get, path = "/api/v1/scenarios/{code}", tag = "scenarios",
    params(("code" = String, Path)),
    responses((status = 200, body = ScenarioView), (status = 404, body = Problem)))]
async fn get_scenario(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<ScenarioView>> {
    caller.permit(Action::ReadCatalog, None)?;
    Ok(axum::Json(
        state.store.scenario_version(&code, None).await?.into(),
    ))
}

#[utoipa::path(get, path = "/api/v1/scenarios/{code}/versions", tag = "scenarios",
    params(("code" = String, Path)),
    responses((status = 200, body = Vec<ScenarioView>), (status = 404, body = Problem)))]
async fn versions(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<Vec<ScenarioView>>> {
    caller.permit(Action::ReadCatalog, None)?;
    let versions = state.store.scenario_versions(&code).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound {
            kind: "scenario",
            id: code,
        });
    }
    Ok(axum::Json(versions.into_iter().map(Into::into).collect()))
}

/// The compiled latest version of a scenario, from the cache or compiled from the store.
async fn compiled(
    state: &AppState,
    code: &str,
) -> ApiResult<(ScenarioVersion, Arc<CompiledScenario>)> {
    let version = state.store.scenario_version(code, None).await?;
    if let Some((cached_version, compiled)) = state.scenarios.read().await.get(code)
        && *cached_version == version.version
    {
        return Ok((version, compiled.clone()));
    }
    let format = if version.format == "json" {
        Format::Json
    } else {
        Format::Yaml
    };
    let definition = Definition::parse(&version.definition, format)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
    // Grants were checked at publication; at run time the gateway checks them on every call.
    let compiled = Arc::new(
        civitas_scenario::validate(&definition, &|_| true)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?,
    );
    state
        .scenarios
        .write()
        .await
        .insert(code.to_owned(), (version.version, compiled.clone()));
    Ok((version, compiled))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The inputs the definition declares.
    #[schema(value_type = Object)]
    pub inputs: Value,
    /// The reference of the citizen's consent to this run (e.g. the app's consent record id), at
    /// most 200 characters.
    pub consent: String,
}

/// A run's answer: the outcome, values, the explanation, each step with its exchange's receipt,
/// and the run's own ledger record.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunResponse {
    pub run_id: String,
    pub scenario: String,
    pub version: u32,
    #[schema(value_type = Object)]
    pub result: RunOutcome,
    /// Ledger indexes of every exchange the run made (fetch receipts at /api/v1/ledger/receipts/{index}).
    pub receipts: Vec<u64>,
    /// The ledger index of the run's own record.
    pub ledger_index: u64,
}

#[utoipa::path(post, path = "/api/v1/scenarios/{code}/runs", tag = "scenarios",
    params(("code" = String, Path)), request_body = RunRequest,
    description = "Runs the scenario for a citizen who consented. Only the scenario's registered front-end system may call this, with its system key. A failed or timed-out step yields needs_review, never approve. The run is recorded in the ledger before the answer.",
    responses((status = 200, body = RunResponse), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path(code): Path<String>,
    Json(request): Json<RunRequest>,
) -> ApiResult<axum::Json<RunResponse>> {
    caller.permit(Action::RunScenarios, None)?;
    let (version, scenario) = compiled(&state, &code).await?;
    let front_end = system_ref(&version.front_end)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad front end")))?;
    let is_front_end = matches!(&caller.principal, Principal::System { organization, system } if *organization == front_end.organization && *system == front_end.system);
    if !is_front_end {
        return Err(ApiError::Forbidden(format!(
            "only the scenario's front end {front_end} may start runs"
        )));
    }
    if request.consent.trim().is_empty() {
        return Err(ApiError::invalid(
            "consent",
            "a run needs the reference of the citizen's consent",
        ));
    }
    // The reference goes into the run's ledger record, whose size is bounded: a long one is
    // refused here, before any step fetches the citizen's data.
    if request.consent.chars().count() > MAX_CONSENT_CHARACTERS {
        return Err(ApiError::invalid(
            "consent",
            format!(
                "the consent reference is at most {MAX_CONSENT_CHARACTERS} characters; send its id, not the consent itself"
            ),
        ));
    }
    let inputs = scenario
        .check_inputs(&request.inputs)
        .map_err(|error| ApiError::invalid(format!("inputs.{}", error.field), error.message))?;
    let consumer = system_ref(&version.consumer)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("bad consumer")))?;
    let executor = GatewayExecutor {
        gateway: state.gateway.clone(),
        consumer,
    };
    let now = Timestamp::now().to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::Offset::constant(8)));
    let outcome = scenario.run_checked(&inputs, &executor, &now).await;
    let subject = state.gateway.subject_hash(inputs.subject());
    let receipts: Vec<u64> = outcome
        .steps
        .iter()
        .filter_map(|step| step.receipt)
        .collect();
    let run_id = uuid::Uuid::now_v7().to_string();
    let run_record = |outcome: &RunOutcome| -> ApiResult<Vec<u8>> {
        // The run's durable ledger record is its only write: the store's list of runs is indexed
        // from the ledger (`Gateway::index_ledger`), and reads of it catch up first.
        Ok(record::encode(&Record::ScenarioRun(ScenarioRunRecord {
            at: Timestamp::now(),
            run_id: run_id.clone(),
            scenario: version.code.clone(),
            version: version.version,
            subject: subject.clone(),
            outcome: outcome.outcome.as_str().to_owned(),
            exchanges: receipts.clone(),
            details: json!({
                "consent": request.consent,
                "result": serde_json::to_value(outcome).map_err(ApiError::internal)?,
            }),
        })))
    };
    let mut outcome = outcome;
    let mut encoded = run_record(&outcome)?;
    if encoded.len() > record::MAX_RECORD_BYTES {
        // The steps were called and their exchanges recorded; the run must be recorded too, and
        // an answer without its record must not go out. The whole result does not fit, so the
        // run is recorded, and answered, as needing review, with what was too large left out.
        let size = encoded.len();
        tracing::warn!(
            scenario = %version.code,
            run_id = %run_id,
            bytes = size,
            "a run's result is too large for its ledger record; recorded as needs_review"
        );
        outcome.outcome = civitas_scenario::Outcome::NeedsReview;
        outcome.values.clear();
        outcome.explanation.clear();
        outcome.reason = Some(format!(
            "the run's result ({size} bytes) is larger than a run record holds ({} bytes); the \
             explanation and values are left out and a clerk decides",
            record::MAX_RECORD_BYTES
        ));
        encoded = run_record(&outcome)?;
        if encoded.len() > record::MAX_RECORD_BYTES {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a run record of {} bytes even without its explanation",
                encoded.len()
            )));
        }
    }
    let ledger_index = state.ledger.append(encoded).await.map_err(|error| {
        ApiError::Unavailable(format!("the run could not be recorded: {error}"))
    })?;
    Ok(axum::Json(RunResponse {
        run_id,
        scenario: version.code,
        version: version.version,
        result: outcome,
        receipts,
        ledger_index,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// The citizen's ID number; runs are found by its keyed hash.
    pub id_number: String,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Which runs a caller may read: a system only the runs of scenario versions it is the front end
/// of (`Some` with its `{org}/{system}`), since a run carries a citizen's computed personal
/// results and every system may start runs; people only with the audit trail's permission
/// (auditors and platform admins), who see every run (`None`).
fn run_reader(caller: &Caller) -> ApiResult<Option<String>> {
    match &caller.principal {
        Principal::System {
            organization,
            system,
        } => {
            caller.permit(Action::RunScenarios, None)?;
            Ok(Some(
                SystemRef {
                    organization: organization.clone(),
                    system: system.clone(),
                }
                .to_string(),
            ))
        }
        Principal::User { .. } => {
            caller.permit(Action::ReadAudit, None)?;
            Ok(None)
        }
    }
}

#[utoipa::path(get, path = "/api/v1/scenario-runs", tag = "scenarios", params(RunsQuery),
    description = "A citizen's runs, newest first (runs of the same microsecond by id), a page at a time, for the citizen's own view in a front-end app or for auditors. A system sees only the runs of scenarios it is the front end of: another system gets an empty page, like a citizen without runs. People need the audit trail's permission (auditors and platform admins).",
    responses((status = 200, body = PageOf<ScenarioRunSchema>), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn runs_of_citizen(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RunsQuery>,
) -> ApiResult<axum::Json<PageOf<ScenarioRun>>> {
    let front_end = run_reader(&caller)?;
    let id = civitas_core::CitizenId::parse(&query.id_number)
        .map_err(|e| ApiError::invalid("id_number", e))?;
    let page = paging(query.limit, query.cursor.as_deref())?;
    let subject = state.gateway.subject_hash(id.as_str());
    catch_up(&state).await?;
    let runs = state
        .store
        .scenario_runs_of(&subject, front_end.as_deref(), &page)
        .await?;
    Ok(axum::Json(PageOf::from(runs)))
}

#[utoipa::path(get, path = "/api/v1/scenario-runs/{id}", tag = "scenarios",
    description = "One run, for the front-end system of its scenario version, auditors and platform admins; any other caller is refused (403).",
    params(("id" = String, Path)),
    responses((status = 200, body = ScenarioRunSchema), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn run_by_id(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ScenarioRun>> {
    let front_end = run_reader(&caller)?;
    catch_up(&state).await?;
    let run = state.store.scenario_run(&id).await?;
    if let Some(front_end) = front_end {
        let version = state
            .store
            .scenario_version(&run.scenario, Some(run.version))
            .await?;
        if version.front_end != front_end {
            return Err(ApiError::Forbidden(format!(
                "only the front end of {} version {}, auditors and platform admins see its runs",
                run.scenario, run.version
            )));
        }
    }
    Ok(axum::Json(run))
}

/// Indexes the runs recorded in the ledger since the last time, so that a run is listed as soon
/// as it has been answered.
async fn catch_up(state: &AppState) -> ApiResult<()> {
    if let Some(why) = state.gateway.handed_over() {
        return Err(ApiError::Unavailable(why.to_owned()));
    }
    state
        .gateway
        .index_ledger()
        .await
        .map_err(ApiError::from_component)
}

/// The OpenAPI description of a recorded run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ScenarioRunSchema {
    id: String,
    scenario: String,
    version: u32,
    /// The keyed hash of the citizen's ID number, never the number.
    subject: String,
    /// The consent reference the front end gave.
    consent: String,
    /// `approve`, `deny` or `needs_review`.
    outcome: String,
    /// The whole result, as the run answered it.
    result: serde_json::Value,
    /// The run's record in the ledger.
    ledger_index: u64,
    #[schema(format = DateTime)]
    at: String,
}
