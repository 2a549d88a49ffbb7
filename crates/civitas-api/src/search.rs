//! Catalog search: `GET /api/v1/search`, the search index's feeder, and CKAN's `package_search`.

use std::collections::HashMap;

use axum::{Router, extract::State, routing::get};
use civitas_core::{
    NodeCode, Uscc,
    catalog::{ClassificationCode, OpenType, Resource},
    registry::Organization,
};
use civitas_search::{
    CatalogIndex, Condition, Facet, Paging, SearchDocument, SearchError, SearchRequest,
    SearchResponse, Sort,
};
use civitas_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json, value::RawValue};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::MaybeCaller,
    ckan::{CkanError, CkanResult, Params, package_dicts},
    error::{ApiError, ApiResult, Problem},
    fq::{Fq, parse_fq},
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/search", get(search))
}

/// What a hit carries, so that result lists render without reading the store.
pub fn payload(resource: &Resource, provider: &Organization) -> String {
    let draft = &resource.draft;
    json!({
        "code": draft.code,
        "name": draft.name,
        "name_en": draft.name_en,
        "kind": draft.kind,
        "classification": draft.classification,
        "classification_name": draft.classification.name(),
        "provider": { "code": provider.code, "name": provider.name, "level": provider.level },
        "sharing_type": draft.sharing.sharing_type,
        "open_type": draft.open_type,
        "update_cycle": draft.update_cycle,
        "tags": draft.tags,
        "origin_node": draft.origin_node,
        "version": resource.version,
        "updated_at": resource.updated_at,
    })
    .to_string()
}

/// How often a feeder of the search index looks in the store for changes nobody told it of
/// (the command line's, other replicas').
pub const FEED_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Feeds the search index from the store's catalog change sequence until `stopped`: first what
/// the index has not seen (everything, for a new index), then every change as it comes. Woken by
/// `changes` after the API's own writes, and polling otherwise so that writes of other processes
/// (the command line, other replicas) arrive too.
pub async fn feed_index(
    store: Store,
    index: CatalogIndex,
    node: NodeCode,
    changes: std::sync::Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut organizations: HashMap<String, Organization> = HashMap::new();
    loop {
        if let Err(error) = catch_up(&store, &index, &node, &mut organizations).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "search index feed failed; retrying"
            );
        }
        tokio::select! {
            _ = changes.notified() => {}
            _ = tokio::time::sleep(FEED_POLL_INTERVAL) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// Sends every change after the last one sent to the index (its `marked_seq`); returns how
/// many. The caller waits for them to be committed with `CatalogIndex::flush` or `close`.
pub async fn catch_up(
    store: &Store,
    index: &CatalogIndex,
    node: &NodeCode,
    organizations: &mut HashMap<String, Organization>,
) -> anyhow::Result<usize> {
    let mut fed = 0;
    loop {
        // Not `indexed_seq`, which moves only with commits: reading from there would send the
        // changes waiting for the next commit again, many times over during a bulk load.
        let after = index.marked_seq();
        let changes = store.resource_changes(after, 5000).await?;
        let Some((last, _)) = changes.last() else {
            return Ok(fed);
        };
        let last = *last;
        let resources: Vec<Resource> = changes.into_iter().map(|(_, resource)| resource).collect();
        fed += resources.len();
        feed(store, index, node, organizations, &resources, last).await?;
    }
}

/// Sends resources that a bulk write (an import) has just stored, whose changes are numbered
/// from `first` on in the order given, to the index: straight away when they are the changes
/// that come next for the index, and otherwise (another process wrote in between) by catching
/// up from the store, which holds them too.
pub async fn feed_written(
    store: &Store,
    index: &CatalogIndex,
    node: &NodeCode,
    organizations: &mut HashMap<String, Organization>,
    first: u64,
    resources: &[Resource],
) -> anyhow::Result<()> {
    if resources.is_empty() {
        return Ok(());
    }
    if index.marked_seq() + 1 == first {
        let last = first + resources.len() as u64 - 1;
        feed(store, index, node, organizations, resources, last).await
    } else {
        catch_up(store, index, node, organizations).await.map(drop)
    }
}

/// Sends the documents of `resources` (removing those deactivated) to the index, then marks
/// the change sequence indexed up to `last`.
async fn feed(
    store: &Store,
    index: &CatalogIndex,
    node: &NodeCode,
    organizations: &mut HashMap<String, Organization>,
    resources: &[Resource],
    last: u64,
) -> anyhow::Result<()> {
    // The providers are read again for every batch, not kept from earlier ones: an
    // organization renamed or moved to another level since would otherwise be indexed as it was.
    let providers: Vec<&str> = resources
        .iter()
        .map(|resource| resource.draft.provider.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for organization in store.organizations_by_code(&providers).await? {
        organizations.insert(organization.code.as_str().to_owned(), organization);
    }
    let mut documents = Vec::with_capacity(resources.len());
    for resource in resources {
        if !resource.active {
            index.delete(resource.draft.code.as_str())?;
            continue;
        }
        let Some(provider) = organizations.get(resource.draft.provider.as_str()) else {
            continue;
        };
        documents.push(SearchDocument::from_resource(
            resource,
            provider,
            node,
            payload(resource, provider),
        ));
    }
    index.upsert(documents).await?;
    index.mark_indexed(last)?;
    Ok(())
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> ApiError {
        match error {
            SearchError::Syntax { message } => ApiError::SearchSyntax(message),
            SearchError::InvalidRequest { message } => ApiError::invalid("query", message),
            other => ApiError::internal(other),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// The query: words (all must match, Chinese segmented, English stemmed), "phrases", -not,
    /// OR, parentheses, and field:value (see the docs). Empty matches everything.
    pub q: Option<String>,
    /// Facets to count (repeatable): provider, level, kind, sharing_type, open_type,
    /// classification, update_cycle, origin_node, tag.
    pub facet: Option<Vec<String>>,
    /// Filters `facet:value` (repeatable); AND across facets, OR within one.
    pub filter: Option<Vec<String>>,
    /// `relevance` (default) or `modified`.
    pub sort: Option<String>,
    /// Page size, 1 to 1000 (default 20).
    pub limit: Option<usize>,
    /// Offset paging (offset + limit at most 10,000)…
    pub offset: Option<usize>,
    /// …or the `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Highlighted snippets of name and summary (default true).
    pub snippets: Option<bool>,
    /// Values per facet (default 20).
    pub facet_limit: Option<usize>,
}

/// One search hit.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub code: String,
    pub score: Option<f32>,
    /// The entry's summary: names, kind, provider, sharing and open types, tags, version. The
    /// index stores it as JSON, which goes into the response as it is, not parsed and written
    /// again.
    #[schema(value_type = Object)]
    pub resource: Box<RawValue>,
    /// HTML: escaped text with matches in `<em>…</em>`.
    pub name_snippet: Option<String>,
    pub summary_snippet: Option<String>,
}

/// A facet value and how many matches have it.
#[derive(Debug, Serialize, ToSchema)]
pub struct FacetValue {
    pub value: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResults {
    pub total: u64,
    pub hits: Vec<SearchHit>,
    /// Counts per requested facet.
    pub facets: HashMap<String, Vec<FacetValue>>,
    pub next_cursor: Option<String>,
}

/// Anonymous callers see open data only, whatever open-type filter they asked for; any key sees
/// the whole catalog's metadata, as `catalog::visible_to` says.
fn open_data_only_for_anonymous(caller: &MaybeCaller, filters: &mut Vec<(Facet, String)>) {
    if caller.0.is_none() {
        filters.retain(|(facet, _)| *facet != Facet::OpenType);
        filters.push((Facet::OpenType, "open".into()));
    }
}

/// Each facet counts once, and the index refuses one requested twice, so a request names at most
/// as many facets as exist; more is refused before any is parsed further.
fn too_many_facets(parameter: &str) -> ApiError {
    ApiError::invalid(
        parameter,
        format!("at most {} facets, each once", Facet::ALL.len()),
    )
}

/// Turns the HTTP parameters into a search request; anonymous callers see open data only.
pub fn search_request(caller: &MaybeCaller, query: SearchQuery) -> ApiResult<SearchRequest> {
    let mut facets = Vec::new();
    let mut named = 0;
    for name in query.facet.unwrap_or_default() {
        for name in name.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            named += 1;
            if named > Facet::ALL.len() {
                return Err(too_many_facets("facet"));
            }
            let facet = Facet::parse(name)
                .ok_or_else(|| ApiError::invalid("facet", format!("unknown facet {name:?}")))?;
            if !facets.contains(&facet) {
                facets.push(facet);
            }
        }
    }
    let mut filters = Vec::new();
    let given = query.filter.unwrap_or_default();
    if given.len() > MAX_FILTERS {
        return Err(ApiError::invalid(
            "filter",
            format!("at most {MAX_FILTERS} filters"),
        ));
    }
    for filter in given {
        let (name, value) = filter
            .split_once(':')
            .ok_or_else(|| ApiError::invalid("filter", format!("{filter:?} is not facet:value")))?;
        let facet = Facet::parse(name.trim())
            .ok_or_else(|| ApiError::invalid("filter", format!("unknown facet {name:?}")))?;
        filters.push((facet, value.trim().to_owned()));
    }
    open_data_only_for_anonymous(caller, &mut filters);
    let sort = match query.sort.as_deref() {
        None | Some("relevance") => Sort::Relevance,
        Some("modified") => Sort::Modified,
        Some(other) => {
            return Err(ApiError::invalid(
                "sort",
                format!("{other:?} is not relevance or modified"),
            ));
        }
    };
    let limit = query.limit.unwrap_or(20);
    if !(1..=civitas_search::MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {}", civitas_search::MAX_LIMIT),
        ));
    }
    let paging = match (query.cursor, query.offset) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "cursor",
                "give a cursor or an offset, not both",
            ));
        }
        (Some(cursor), None) => Paging::Cursor {
            after: Some(cursor),
            limit,
        },
        (None, offset) => Paging::Offset {
            offset: offset.unwrap_or(0),
            limit,
        },
    };
    Ok(SearchRequest {
        query: query.q.unwrap_or_default(),
        filters,
        exclusions: Vec::new(),
        condition: None,
        facets,
        facet_limit: query.facet_limit.unwrap_or(20).clamp(1, 1000),
        sort,
        paging,
        snippets: query.snippets.unwrap_or(true),
    })
}

/// The most filter values a caller gives one search (`filter` parameters, or the values of a
/// CKAN `fq`), each a clause of its query; the index takes a few more, for the ones the API
/// adds.
pub(crate) const MAX_FILTERS: usize = 100;

/// Runs a search off the async threads: tantivy searches are CPU work.
pub async fn run_search(
    index: &CatalogIndex,
    request: SearchRequest,
) -> Result<SearchResponse, SearchError> {
    let index = index.clone();
    tokio::task::spawn_blocking(move || index.search(&request))
        .await
        .unwrap_or_else(|error| {
            Err(SearchError::IndexerStopped {
                message: error.to_string(),
            })
        })
}

#[utoipa::path(get, path = "/api/v1/search", tag = "catalog", params(SearchQuery),
    description = "Full-text search of the catalog in Chinese and English with facet counts, filters, sorting, paging and highlighted snippets. Without a key only open data is searched. A malformed query is a 400 search_syntax.",
    responses((status = 200, body = SearchResults), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn search(
    State(state): State<AppState>,
    caller: MaybeCaller,
    RepeatedQuery(query): RepeatedQuery,
) -> ApiResult<axum::Json<SearchResults>> {
    caller.permit_read()?;
    let request = search_request(&caller, query)?;
    let response = run_search(&state.search, request).await?;
    Ok(axum::Json(SearchResults {
        total: response.total,
        hits: response
            .hits
            .into_iter()
            .map(|hit| SearchHit {
                resource: RawValue::from_string(hit.payload)
                    .unwrap_or_else(|_| RawValue::NULL.to_owned()),
                code: hit.code,
                score: hit.score,
                name_snippet: hit.name_snippet,
                summary_snippet: hit.summary_snippet,
            })
            .collect(),
        facets: response
            .facets
            .into_iter()
            .map(|counts| {
                (
                    counts.facet.as_str().to_owned(),
                    counts
                        .values
                        .into_iter()
                        .map(|(value, count)| FacetValue { value, count })
                        .collect(),
                )
            })
            .collect(),
        next_cursor: response.next_cursor,
    }))
}

/// The search query string, where `facet` and `filter` may repeat.
pub struct RepeatedQuery(pub SearchQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RepeatedQuery {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let mut query = SearchQuery {
            q: None,
            facet: None,
            filter: None,
            sort: None,
            limit: None,
            offset: None,
            cursor: None,
            snippets: None,
            facet_limit: None,
        };
        let number = |name: &str, value: &str| {
            value
                .parse::<usize>()
                .map_err(|_| ApiError::invalid(name, format!("{value:?} is not a number")))
        };
        for (name, value) in
            form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
        {
            let value = value.into_owned();
            match name.as_ref() {
                "q" => query.q = Some(value),
                "facet" => query.facet.get_or_insert_with(Vec::new).push(value),
                "filter" => query.filter.get_or_insert_with(Vec::new).push(value),
                "sort" => query.sort = Some(value),
                "limit" => query.limit = Some(number("limit", &value)?),
                "offset" => query.offset = Some(number("offset", &value)?),
                "cursor" => query.cursor = Some(value),
                "facet_limit" => query.facet_limit = Some(number("facet_limit", &value)?),
                "snippets" => {
                    query.snippets = Some(match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => return Err(ApiError::invalid("snippets", "true or false")),
                    })
                }
                other => return Err(ApiError::invalid(other, "unknown parameter")),
            }
        }
        Ok(RepeatedQuery(query))
    }
}

/// CKAN's facet names and ours.
const CKAN_FACETS: [(&str, Facet); 11] = [
    ("organization", Facet::Provider),
    ("owner_org", Facet::Provider),
    ("tags", Facet::Tag),
    ("groups", Facet::Classification),
    ("kind", Facet::Kind),
    ("type", Facet::Kind),
    ("level", Facet::Level),
    ("sharing_type", Facet::SharingType),
    ("open_type", Facet::OpenType),
    ("update_cycle", Facet::UpdateCycle),
    ("origin_node", Facet::OriginNode),
];

pub(crate) fn ckan_facet(name: &str) -> Option<Facet> {
    CKAN_FACETS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, facet)| facet)
}

/// CKAN names are lower case; facet values of codes are upper case.
pub(crate) fn from_ckan_value(facet: Facet, value: &str) -> String {
    match facet {
        Facet::Provider | Facet::Classification => value.to_ascii_uppercase(),
        _ => value.to_owned(),
    }
}

fn to_ckan_value(facet: Facet, value: &str) -> String {
    match facet {
        Facet::Provider | Facet::Classification => value.to_ascii_lowercase(),
        _ => value.to_owned(),
    }
}

/// `package_search` with `sort=id asc` (or `name asc`: names are the codes in lower case), as
/// CKAN's harvester walks a catalog: every active dataset in code order, `start` going as far as
/// the catalog does (past the search index's window), optionally only those modified since a
/// time (`fq=metadata_modified:[2026-01-01T00:00:00Z TO *]`), of some organizations or groups
/// (`organization:a OR organization:b`) or not of some (`-organization:a -organization:b`).
/// Served from the store; `q` and facets belong to searches and are refused here.
async fn harvest_listing(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
    query: &str,
    sort: &str,
) -> CkanResult<Value> {
    if !query.trim().is_empty() {
        return Err(CkanError::search_query(format!(
            "sort {sort:?} lists the catalog and takes no q; search with \"score desc\""
        )));
    }
    if !params.list("facet.field")?.is_empty() {
        return Err(CkanError::search_query(format!(
            "sort {sort:?} lists the catalog and counts no facets"
        )));
    }
    let fq = match params.text("fq") {
        Some(fq) => parse_fq(&fq).map_err(CkanError::search_query)?,
        None => Fq::default(),
    };
    let mut listing = Listing::default();
    for clause in &fq.clauses {
        listing.take(&clause.condition, &clause.text, sort)?;
    }
    if let Some(open_type) = crate::catalog::visible_open_type(caller) {
        listing.open_types.push(open_type);
    }
    let rows = params.integer("rows")?.unwrap_or(10).min(1000) as u32;
    let start = params.integer("start")?.unwrap_or(0);
    let (count, resources) = match listing.filter() {
        None => (0, Vec::new()),
        Some(mut filter) => {
            filter.modified_since = fq.modified.and_then(|range| range.from);
            let count = state.store.count_resources(&filter).await?;
            let resources = if rows == 0 {
                Vec::new()
            } else {
                state
                    .store
                    .resources_at_offset(&filter, start, rows)
                    .await?
            };
            (count, resources)
        }
    };
    let results = package_dicts(state, &resources).await?;
    Ok(json!({
        "count": count,
        "sort": sort,
        "facets": {},
        "search_facets": {},
        "results": results,
    }))
}

/// What the clauses of a listing's `fq` ask of the store, which filters on organizations,
/// groups and one open type: each clause one field's values (any of them) or their exclusion.
#[derive(Default)]
struct Listing {
    /// The organizations a dataset may be of: those every clause on organizations allows.
    providers: Option<Vec<Uscc>>,
    /// The groups a dataset may be of, likewise.
    classifications: Option<Vec<ClassificationCode>>,
    /// Open types a dataset must have, all at once.
    open_types: Vec<OpenType>,
    excluded_providers: Vec<Uscc>,
    excluded_classifications: Vec<ClassificationCode>,
}

impl Listing {
    /// Adds what `condition`, of the clause written `clause`, asks; a condition the store cannot
    /// filter on is refused, naming the clause.
    fn take(&mut self, condition: &Condition, clause: &str, sort: &str) -> CkanResult<()> {
        // A value that is no credit code (no classification code) names no organization (group)
        // of the catalog: as in a search, and as CKAN answers a name it does not know, it lets
        // no dataset through and excludes none.
        let organizations = |values: Vec<&str>| -> Vec<Uscc> {
            values
                .into_iter()
                .filter_map(|value| Uscc::parse(value).ok())
                .collect()
        };
        let groups = |values: Vec<&str>| -> Vec<ClassificationCode> {
            values
                .into_iter()
                .filter_map(|value| ClassificationCode::parse(value).ok())
                .collect()
        };
        let (excluded, values) = match condition {
            Condition::All(parts) => {
                for part in parts {
                    self.take(part, clause, sort)?;
                }
                return Ok(());
            }
            Condition::Not(inner) => (true, inner.one_facet_values()),
            other => (false, other.one_facet_values()),
        };
        match (excluded, values) {
            (false, Some((Facet::Provider, values))) => {
                narrow(&mut self.providers, organizations(values));
            }
            (false, Some((Facet::Classification, values))) => {
                narrow(&mut self.classifications, groups(values));
            }
            (false, Some((Facet::OpenType, values))) if values.len() == 1 => {
                let open_type = OpenType::parse(values[0]).map_err(|_| {
                    CkanError::search_query(format!("no open type {:?}", values[0]))
                })?;
                self.open_types.push(open_type);
            }
            (true, Some((Facet::Provider, values))) => {
                self.excluded_providers.extend(organizations(values));
            }
            (true, Some((Facet::Classification, values))) => {
                self.excluded_classifications.extend(groups(values));
            }
            (true, _) => {
                return Err(CkanError::search_query(format!(
                    "with sort {sort:?}, fq excludes organizations and groups only, not {clause:?}"
                )));
            }
            (false, _) => {
                return Err(CkanError::search_query(format!(
                    "with sort {sort:?}, fq filters on organization, groups, one open_type and \
                     metadata_modified, each clause one field's values (joined by OR) or their \
                     exclusion, not {clause:?}"
                )));
            }
        }
        Ok(())
    }

    /// The store's filter of active datasets; `None` when no dataset can pass (two
    /// organizations, or two open types, at once).
    fn filter(self) -> Option<civitas_store::ResourceFilter> {
        let open_type = match self.open_types.split_first() {
            None => None,
            Some((first, rest)) if rest.iter().all(|other| other == first) => Some(*first),
            Some(_) => return None,
        };
        if self.providers.as_ref().is_some_and(Vec::is_empty)
            || self.classifications.as_ref().is_some_and(Vec::is_empty)
        {
            return None;
        }
        Some(civitas_store::ResourceFilter {
            active: Some(true),
            providers: self.providers.unwrap_or_default(),
            classifications: self.classifications.unwrap_or_default(),
            excluded_providers: self.excluded_providers,
            excluded_classifications: self.excluded_classifications,
            open_type,
            ..Default::default()
        })
    }
}

/// Narrows the values a dataset may have to those of a clause, any of which it must have.
fn narrow<T: PartialEq>(allowed: &mut Option<Vec<T>>, values: Vec<T>) {
    *allowed = Some(match allowed.take() {
        None => values,
        Some(before) => before
            .into_iter()
            .filter(|value| values.contains(value))
            .collect(),
    });
}

/// `package_search`: `q`, `fq`, `rows` (capped at 1000), `start`, `sort`, `facet.field`,
/// `facet.limit`, `include_private`; CKAN's result shape with `facets` and `search_facets`.
pub async fn ckan_package_search(
    state: &AppState,
    caller: &MaybeCaller,
    params: &Params,
) -> CkanResult<Value> {
    let query = params.text("q").unwrap_or_default();
    let query = if query.trim() == "*:*" {
        String::new()
    } else {
        query
    };
    if let Some(sort @ ("id asc" | "name asc")) = params.text("sort").as_deref().map(str::trim) {
        return harvest_listing(state, caller, params, &query, sort).await;
    }
    let fq = match params.text("fq") {
        Some(fq) => parse_fq(&fq).map_err(CkanError::search_query)?,
        None => Fq::default(),
    };
    if fq.modified.is_some() {
        return Err(CkanError::search_query(
            "fq filters on metadata_modified only in a listing, with sort \"id asc\"",
        ));
    }
    // The fq is a condition beside the filters, which it can only narrow: an anonymous caller's
    // open-data filter holds whatever it says (`open_type:closed OR tags:x`,
    // `NOT open_type:open`).
    let mut filters = Vec::new();
    open_data_only_for_anonymous(caller, &mut filters);
    let rows = params.integer("rows")?.unwrap_or(10).min(1000) as usize;
    let start = params.integer("start")?.unwrap_or(0) as usize;
    let sort = match params.text("sort").as_deref().map(str::trim) {
        None
        | Some("")
        | Some("score desc")
        | Some("score desc, metadata_modified desc")
        | Some("relevance asc") => Sort::Relevance,
        Some("metadata_modified desc") | Some("metadata_modified desc, score desc") => {
            Sort::Modified
        }
        Some(other) => {
            return Err(CkanError::search_query(format!(
                "sort {other:?} is not supported; use \"score desc\", \"metadata_modified desc\" \
                 or, to walk the whole catalog, \"id asc\""
            )));
        }
    };
    // Names are answered as asked, each once; two names of one facet (`organization`,
    // `owner_org`) share its counts, which the index counts once.
    let requested = params.list("facet.field")?;
    if requested.len() > CKAN_FACETS.len() {
        return Err(CkanError::validation(
            "facet.field",
            format!("at most {} facet fields, each once", CKAN_FACETS.len()),
        ));
    }
    let mut facet_names: Vec<String> = Vec::new();
    let mut facets = Vec::new();
    for name in requested {
        if facet_names.contains(&name) {
            continue;
        }
        let facet = ckan_facet(&name)
            .ok_or_else(|| CkanError::search_query(format!("unknown facet field {name:?}")))?;
        if !facets.contains(&facet) {
            facets.push(facet);
        }
        facet_names.push(name);
    }
    // A negative limit is CKAN's "all of them"; the index answers at most 1000 values.
    let facet_limit = match params.text("facet.limit").as_deref().map(str::trim) {
        Some(negative) if negative.starts_with('-') && negative[1..].parse::<u64>().is_ok() => 1000,
        _ => match params.integer("facet.limit")? {
            Some(limit) => (limit as usize).clamp(1, 1000),
            None => 50,
        },
    };
    if start
        .checked_add(rows)
        .is_none_or(|end| end > civitas_search::MAX_OFFSET_WINDOW)
    {
        return Err(CkanError::search_query(format!(
            "start + rows may reach {} at most; use /api/v1/search with cursors to walk further",
            civitas_search::MAX_OFFSET_WINDOW
        )));
    }
    let request = SearchRequest {
        query,
        filters,
        exclusions: Vec::new(),
        condition: fq.condition(),
        facets,
        facet_limit,
        sort,
        paging: Paging::Offset {
            offset: start,
            limit: rows.max(1),
        },
        snippets: false,
    };
    let response = run_search(&state.search, request)
        .await
        .map_err(|error| match error {
            SearchError::Syntax { message } | SearchError::InvalidRequest { message } => {
                CkanError::search_query(message)
            }
            other => CkanError::from(civitas_store::StoreError::Corrupt(other.to_string())),
        })?;
    let codes: Vec<&str> = if rows == 0 {
        Vec::new()
    } else {
        response.hits.iter().map(|hit| hit.code.as_str()).collect()
    };
    let mut resources = state.store.resources_by_code(&codes).await?;
    // The index follows the store with a lag (and not at all once its feeder stopped): a hit
    // may name a resource deactivated or closed since, which is answered only if the caller
    // may still see it now.
    resources.retain(|resource| resource.active && crate::catalog::visible_to(caller, resource));
    let order: HashMap<&str, usize> = codes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
    resources.sort_by_key(|resource| {
        order
            .get(resource.draft.code.as_str())
            .copied()
            .unwrap_or(usize::MAX)
    });
    let results = package_dicts(state, &resources).await?;
    let mut facet_counts = serde_json::Map::new();
    let mut search_facets = serde_json::Map::new();
    for name in &facet_names {
        let Some(counts) = ckan_facet(name)
            .and_then(|facet| response.facets.iter().find(|counts| counts.facet == facet))
        else {
            continue;
        };
        let mut plain = serde_json::Map::new();
        let mut items = Vec::new();
        for (value, count) in &counts.values {
            let value = to_ckan_value(counts.facet, value);
            plain.insert(value.clone(), json!(count));
            items.push(json!({ "name": value, "display_name": value, "count": count }));
        }
        facet_counts.insert(name.clone(), Value::Object(plain));
        search_facets.insert(name.clone(), json!({ "title": name, "items": items }));
    }
    Ok(json!({
        "count": response.total,
        "sort": params.text("sort").unwrap_or_else(|| "score desc, metadata_modified desc".into()),
        "facets": facet_counts,
        "search_facets": search_facets,
        "results": results,
    }))
}
