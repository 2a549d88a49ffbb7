//! The CKAN Action API v3 (the subset catalog clients use), at `/api/3/action/{name}` and
//! `/api/action/{name}`, with CKAN's envelope, error types and status codes, so that existing
//! tools such as `ckanapi` work unchanged. How our fields map onto a CKAN dataset dict is
//! documented in `docs/ckan.md`.

use axum::{
    Router,
    body::Bytes,
    extract::{Path, RawQuery, State, rejection::BytesRejection},
    http::{HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
    routing::any,
};
use civitas_core::{
    Uscc,
    catalog::{ClassificationCode, OpenType, Resource, ResourceCode},
    registry::{Organization, api_key_hash},
};
use civitas_store::{OrganizationFilter, PageRequest};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

use crate::{
    AppState,
    auth::Caller,
    auth::MaybeCaller,
    catalog::{visible_open_type, visible_to},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/3/action/{name}", any(action))
        .route("/api/action/{name}", any(action))
}

/// A CKAN error: its `__type`, HTTP status and message.
#[derive(Debug)]
pub struct CkanError {
    status: StatusCode,
    kind: &'static str,
    message: String,
    /// Per-field messages of a validation error.
    fields: Vec<(String, String)>,
}

impl CkanError {
    fn not_found(message: impl Into<String>) -> CkanError {
        CkanError {
            status: StatusCode::NOT_FOUND,
            kind: "Not Found Error",
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub(crate) fn validation(field: &str, message: impl Into<String>) -> CkanError {
        let message = message.into();
        CkanError {
            status: StatusCode::CONFLICT,
            kind: "Validation Error",
            message: format!("{field}: {message}"),
            fields: vec![(field.to_owned(), message)],
        }
    }

    fn authorization(message: impl Into<String>) -> CkanError {
        CkanError {
            status: StatusCode::FORBIDDEN,
            kind: "Authorization Error",
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub fn search_query(message: impl Into<String>) -> CkanError {
        CkanError {
            status: StatusCode::BAD_REQUEST,
            kind: "Search Query Error",
            message: format!("Search Query is invalid: {}", message.into()),
            fields: Vec::new(),
        }
    }

    fn internal(error: impl std::fmt::Display) -> CkanError {
        tracing::error!(%error, "internal error in the CKAN API");
        CkanError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "Internal Error",
            message: "internal error".into(),
            fields: Vec::new(),
        }
    }
}

impl From<civitas_store::StoreError> for CkanError {
    fn from(error: civitas_store::StoreError) -> CkanError {
        match error {
            civitas_store::StoreError::NotFound { .. } => CkanError::not_found("Not found"),
            other => CkanError::internal(other),
        }
    }
}

pub type CkanResult<T> = Result<T, CkanError>;

fn envelope(base: &str, action: &str, outcome: CkanResult<Value>) -> Response {
    let help = format!("{base}/api/3/action/help_show?name={action}");
    match outcome {
        Ok(result) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
            json!({ "help": help, "success": true, "result": result }).to_string(),
        )
            .into_response(),
        Err(error) => {
            let mut body = Map::new();
            body.insert("__type".into(), json!(error.kind));
            body.insert("message".into(), json!(error.message));
            for (field, message) in &error.fields {
                body.insert(field.clone(), json!([message]));
            }
            (
                error.status,
                [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
                json!({ "help": help, "success": false, "error": body }).to_string(),
            )
                .into_response()
        }
    }
}

/// The parameters of a call: the query string for GET, the JSON (or form) body for POST.
pub struct Params(Map<String, Value>);

impl Params {
    fn parse(
        method: &Method,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> CkanResult<Params> {
        let mut params = Map::new();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            params.insert(key.into_owned(), Value::String(value.into_owned()));
        }
        if method == Method::POST && !body.is_empty() {
            let form = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
            if form {
                for (key, value) in form_urlencoded::parse(body) {
                    params.insert(key.into_owned(), Value::String(value.into_owned()));
                }
            } else {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| CkanError::validation("body", format!("not valid JSON: {e}")))?;
                match value {
                    Value::Object(map) => params.extend(map),
                    _ => return Err(CkanError::validation("body", "must be a JSON object")),
                }
            }
        }
        Ok(Params(params))
    }

    pub fn text(&self, name: &str) -> Option<String> {
        match self.0.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    pub fn required(&self, name: &str) -> CkanResult<String> {
        self.text(name)
            .filter(|text| !text.is_empty())
            .ok_or_else(|| CkanError::validation(name, "Missing value"))
    }

    pub fn integer(&self, name: &str) -> CkanResult<Option<u64>> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(number)) => number
                .as_u64()
                .map(Some)
                .ok_or_else(|| CkanError::validation(name, "Invalid integer")),
            Some(Value::String(text)) if text.is_empty() => Ok(None),
            Some(Value::String(text)) => text
                .parse()
                .map(Some)
                .map_err(|_| CkanError::validation(name, "Invalid integer")),
            Some(_) => Err(CkanError::validation(name, "Invalid integer")),
        }
    }

    pub fn boolean(&self, name: &str) -> CkanResult<bool> {
        match self.0.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(value)) => Ok(*value),
            Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" | "" => Ok(false),
                _ => Err(CkanError::validation(name, "Invalid boolean")),
            },
            Some(_) => Err(CkanError::validation(name, "Invalid boolean")),
        }
    }

    /// A list given as a JSON array, or as a string holding one (CKAN clients send both).
    pub fn list(&self, name: &str) -> CkanResult<Vec<String>> {
        let value = match self.0.get(name) {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::String(text)) if text.trim_start().starts_with('[') => {
                serde_json::from_str(text)
                    .map_err(|_| CkanError::validation(name, "Invalid list"))?
            }
            Some(Value::String(text)) => return Ok(vec![text.clone()]),
            Some(other) => other.clone(),
        };
        match value {
            Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    Value::String(text) => Ok(text),
                    _ => Err(CkanError::validation(name, "Invalid list")),
                })
                .collect(),
            _ => Err(CkanError::validation(name, "Invalid list")),
        }
    }
}

/// The caller of a CKAN call: an API key in `Authorization` (raw or `Bearer`) or
/// `X-CKAN-API-Key`, or anonymous. A key that is given but not valid is an authorization error,
/// as in CKAN.
async fn ckan_caller(state: &AppState, headers: &HeaderMap) -> CkanResult<MaybeCaller> {
    let key = headers
        .get("x-ckan-api-key")
        .or_else(|| headers.get(header::AUTHORIZATION))
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            let value = value.trim();
            match value.split_once(' ') {
                Some((scheme, key)) if scheme.eq_ignore_ascii_case("bearer") => key.trim(),
                _ => value,
            }
        })
        .filter(|key| !key.is_empty());
    let Some(key) = key else {
        return Ok(MaybeCaller(None));
    };
    let authenticated = state
        .store
        .authenticate(&api_key_hash(key), Timestamp::now())
        .await
        .map_err(CkanError::internal)?
        .ok_or_else(|| CkanError::authorization("the API key is not valid"))?;
    Ok(MaybeCaller(Some(Caller {
        principal: authenticated.principal,
        key_id: authenticated.key_id,
    })))
}

async fn action(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let base = state.public_url.clone();
    let outcome = async {
        // A body past the API's limit, or one that stops short, is answered in CKAN's envelope
        // like every other mistake.
        let body = body.map_err(|rejection| CkanError {
            status: rejection.status(),
            kind: "Bad Request",
            message: match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => format!(
                    "the body is larger than the {} bytes allowed",
                    crate::extract::MAX_JSON_BODY
                ),
                _ => format!("the body could not be read: {}", rejection.body_text()),
            },
            fields: Vec::new(),
        })?;
        let params = Params::parse(&method, query.as_deref(), &headers, &body)?;
        let caller = ckan_caller(&state, &headers).await?;
        caller
            .permit_read()
            .map_err(|error| CkanError::authorization(error.to_string()))?;
        match name.as_str() {
            "status_show" => status_show(&state).await,
            "package_list" => package_list(&state, &caller, &params).await,
            "package_show" => package_show(&state, &caller, &params).await,
            "package_search" => crate::search::ckan_package_search(&state, &caller, &params).await,
            "resource_show" => resource_show(&state, &caller, &params).await,
            "organization_list" => organization_list(&state, &caller, &params).await,
            "organization_show" => organization_show(&state, &caller, &params).await,
            "group_list" => group_list(&state, &caller, &params).await,
            "group_show" => group_show(&state, &caller, &params).await,
            other => Err(CkanError {
                status: StatusCode::BAD_REQUEST,
                kind: "Bad Request",
                message: format!("Action name not known: {other}"),
                fields: Vec::new(),
            }),
        }
    }
    .await;
    envelope(&base, &name, outcome)
}

async fn status_show(state: &AppState) -> CkanResult<Value> {
    Ok(json!({
        "site_title": format!("civitas {}", state.node.code),
        "site_url": state.public_url.as_ref(),
        "site_description": "civitas data sharing and exchange platform",
        "ckan_version": "2.10.0",
        "civitas_version": state.node.version,
        "error_emails_to": null,
        "locale_default": "zh_Hans_CN",
        "extensions": ["civitas"],
    }))
}

/// CKAN names are lower-case; resource codes and credit codes are matched case-insensitively.
pub fn ckan_name(code: &str) -> String {
    code.to_ascii_lowercase()
}

fn parse_resource_code(text: &str) -> Option<ResourceCode> {
    ResourceCode::parse(&text.to_ascii_uppercase()).ok()
}

fn parse_organization(text: &str) -> Option<Uscc> {
    Uscc::parse(&text.to_ascii_uppercase()).ok()
}

fn ckan_time(at: Timestamp) -> String {
    // CKAN writes naive UTC timestamps with microseconds.
    at.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

pub fn organization_dict(
    base: &str,
    organization: &Organization,
    package_count: Option<u64>,
) -> Value {
    let mut dict = json!({
        "id": organization.code.as_str(),
        "name": ckan_name(organization.code.as_str()),
        "title": organization.name,
        "display_name": organization.name,
        "description": organization.name_en.clone().unwrap_or_default(),
        "image_url": "",
        "image_display_url": "",
        "created": ckan_time(organization.created_at),
        "is_organization": true,
        "approval_status": "approved",
        "state": if organization.active { "active" } else { "deleted" },
        "type": "organization",
        "extras": [
            { "key": "level", "value": organization.level.as_str() },
            { "key": "region", "value": organization.region.as_str() },
            { "key": "name_en", "value": organization.name_en.clone().unwrap_or_default() },
        ],
        "url": format!("{base}/api/v1/organizations/{}", organization.code),
    });
    if let Some(count) = package_count {
        dict["package_count"] = json!(count);
    }
    dict
}

fn group_dict(classification: ClassificationCode) -> Value {
    json!({
        "id": classification.to_string(),
        "name": ckan_name(&classification.to_string()),
        "title": classification.name(),
        "display_name": classification.name(),
        "description": classification.name_en(),
        "is_organization": false,
        "state": "active",
        "type": "group",
        "extras": [{ "key": "class", "value": classification.class().as_str() }],
    })
}

/// The CKAN dataset dict of a resource; see `docs/ckan.md` for the mapping.
pub fn package_dict(base: &str, resource: &Resource, organization: Option<&Organization>) -> Value {
    let draft = &resource.draft;
    let code = draft.code.as_str();
    let distribution = json!({
        "id": format!("{code}-access"),
        "package_id": code,
        "name": draft.name,
        "description": draft.summary,
        "format": draft.format.to_ascii_uppercase(),
        "url": format!("{base}/api/v1/resources/{code}"),
        "state": "active",
        "position": 0,
        "created": ckan_time(resource.created_at),
        "last_modified": ckan_time(resource.updated_at),
        "resource_type": draft.kind.as_str(),
    });
    let extras = [
        ("kind", draft.kind.as_str().to_owned()),
        ("classification", draft.classification.to_string()),
        (
            "sharing_type",
            draft.sharing.sharing_type.as_str().to_owned(),
        ),
        (
            "sharing_conditions",
            draft.sharing.conditions.clone().unwrap_or_default(),
        ),
        (
            "sharing_method",
            draft
                .sharing
                .method
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
        ),
        ("open_type", draft.open_type.as_str().to_owned()),
        ("update_cycle", draft.update_cycle.as_str().to_owned()),
        (
            "published_on",
            draft
                .published_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "origin_node",
            draft
                .origin_node
                .as_ref()
                .map(|n| n.to_string())
                .unwrap_or_default(),
        ),
        (
            "provider_system",
            draft
                .provider_system
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
        (
            "device",
            draft
                .device
                .as_ref()
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        (
            "information_items",
            serde_json::to_string(&draft.items).expect("items serialize"),
        ),
        ("version", resource.version.to_string()),
    ];
    json!({
        "id": code,
        "name": ckan_name(code),
        "title": draft.name,
        "title_en": draft.name_en,
        "notes": draft.summary,
        "type": "dataset",
        "state": if resource.active { "active" } else { "deleted" },
        "private": false,
        "isopen": draft.open_type == OpenType::Open,
        "owner_org": draft.provider.as_str(),
        "organization": organization.map(|org| organization_dict(base, org, None)),
        "author": null,
        "maintainer": organization.map(|org| org.name.clone()),
        "license_id": null,
        "url": format!("{base}/dataset/{code}.jsonld"),
        "version": resource.version.to_string(),
        "metadata_created": ckan_time(resource.created_at),
        "metadata_modified": ckan_time(resource.updated_at),
        "num_tags": draft.tags.len(),
        "tags": draft.tags.iter().map(|tag| json!({ "name": tag, "display_name": tag, "state": "active" })).collect::<Vec<_>>(),
        "groups": [group_dict(draft.classification)],
        "num_resources": 1,
        "resources": [distribution],
        "extras": extras.iter().filter(|(_, value)| !value.is_empty()).map(|(key, value)| json!({ "key": key, "value": value })).collect::<Vec<_>>(),
        "relationships_as_subject": draft.related.iter().map(|related| json!({ "object": related.as_str(), "type": "links_to" })).collect::<Vec<_>>(),
    })
}

/// Package dicts for resources, with their organizations looked up in one query.
pub async fn package_dicts(state: &AppState, resources: &[Resource]) -> CkanResult<Vec<Value>> {
    let organizations = crate::catalog::providers_of(&state.store, resources).await?;
    Ok(resources
        .iter()
        .map(|resource| {
            package_dict(
                &state.public_url,
                resource,
                organizations.get(resource.draft.provider.as_str()),
            )
        })
        .collect())
}

async fn visible_resource(
    state: &AppState,
    caller: &MaybeCaller,
    id: &str,
) -> CkanResult<Resource> {
    let code = parse_resource_code(id).ok_or_else(|| CkanError::not_found("Not found"))?;
    let resource = state.store.resource(&code).await?;
    if !resource.active || !visible_to(caller, &resource) {
        return Err(CkanError::not_found("Not found"));
    }
    Ok(resource)
}

async fn package_show(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let id = params.required("id")?;
    let resource = visible_resource(state, caller, &id).await?;
    Ok(package_dicts(state, std::slice::from_ref(&resource))
        .await?
        .remove(0))
}

async fn resource_show(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let id = params.required("id")?;
    let code = id.strip_suffix("-access").unwrap_or(&id);
    let resource = visible_resource(state, caller, code).await?;
    let package = package_dicts(state, std::slice::from_ref(&resource))
        .await?
        .remove(0);
    Ok(package["resources"][0].clone())
}

async fn package_list(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let limit = params.integer("limit")?;
    let offset = params.integer("offset")?.unwrap_or(0) as usize;
    let codes = match &caller.0 {
        Some(_) => state.store.active_resource_codes().await?,
        None => state.store.open_resource_codes().await?,
    };
    let names = codes
        .iter()
        .skip(offset)
        .take(limit.map(|l| l as usize).unwrap_or(usize::MAX))
        .map(|code| Value::String(ckan_name(code)))
        .collect();
    Ok(Value::Array(names))
}

async fn all_organizations(state: &AppState) -> CkanResult<Vec<Organization>> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    let filter = OrganizationFilter {
        active: Some(true),
        ..OrganizationFilter::default()
    };
    loop {
        let organizations = state.store.list_organizations(&filter, &page).await?;
        all.extend(organizations.items);
        match organizations.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(all),
        }
    }
}

async fn organization_list(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let all_fields = params.boolean("all_fields")?;
    let organizations = all_organizations(state).await?;
    let counts = state
        .store
        .resource_counts_by_provider(visible_open_type(caller))
        .await?;
    let limit = params
        .integer("limit")?
        .map(|l| l as usize)
        .unwrap_or(usize::MAX);
    let offset = params.integer("offset")?.unwrap_or(0) as usize;
    let items = organizations.iter().skip(offset).take(limit);
    Ok(if all_fields {
        items
            .map(|org| {
                organization_dict(
                    &state.public_url,
                    org,
                    Some(counts.get(org.code.as_str()).copied().unwrap_or(0)),
                )
            })
            .collect()
    } else {
        items
            .map(|org| json!(ckan_name(org.code.as_str())))
            .collect()
    })
}

async fn organization_show(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let id = params.required("id")?;
    let code = parse_organization(&id).ok_or_else(|| CkanError::not_found("Not found"))?;
    let organization = state.store.organization(&code).await?;
    let counts = state
        .store
        .resource_counts_by_provider(visible_open_type(caller))
        .await?;
    let mut dict = organization_dict(
        &state.public_url,
        &organization,
        Some(counts.get(organization.code.as_str()).copied().unwrap_or(0)),
    );
    if params.boolean("include_datasets")? {
        let filter = civitas_store::ResourceFilter {
            providers: vec![code],
            active: Some(true),
            open_type: visible_open_type(caller),
            ..Default::default()
        };
        let resources: Vec<Resource> = state
            .store
            .resources_at_offset(&filter, 0, 1000)
            .await?
            .into_iter()
            .filter(|resource| visible_to(caller, resource))
            .collect();
        dict["packages"] = Value::Array(package_dicts(state, &resources).await?);
    }
    Ok(dict)
}

async fn group_list(state: &AppState, caller: &MaybeCaller, params: &Params) -> CkanResult<Value> {
    let all_fields = params.boolean("all_fields")?;
    let counts = state
        .store
        .resource_counts_by_classification(visible_open_type(caller))
        .await?;
    let mut classifications: Vec<ClassificationCode> = ClassificationCode::guide().collect();
    for code in counts.keys() {
        if let Ok(code) = ClassificationCode::parse(code)
            && !classifications.contains(&code)
        {
            classifications.push(code);
        }
    }
    classifications.sort();
    Ok(classifications
        .into_iter()
        .map(|code| {
            if all_fields {
                let mut dict = group_dict(code);
                dict["package_count"] = json!(counts.get(&code.to_string()).copied().unwrap_or(0));
                dict
            } else {
                json!(ckan_name(&code.to_string()))
            }
        })
        .collect())
}

async fn group_show(state: &AppState, caller: &MaybeCaller, params: &Params) -> CkanResult<Value> {
    let id = params.required("id")?;
    let code = ClassificationCode::parse(&id.to_ascii_uppercase())
        .map_err(|_| CkanError::not_found("Not found"))?;
    let counts = state
        .store
        .resource_counts_by_classification(visible_open_type(caller))
        .await?;
    let mut dict = group_dict(code);
    dict["package_count"] = json!(counts.get(&code.to_string()).copied().unwrap_or(0));
    Ok(dict)
}
