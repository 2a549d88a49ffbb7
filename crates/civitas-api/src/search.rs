//! Catalog search: `GET /api/v1/search`, the search index's feeder, and CKAN's `package_search`.

use std::collections::HashMap;

use axum::{Router, extract::State, routing::get};
use civitas_core::{
    NodeCode,
    catalog::{ClassificationCode, Resource},
    registry::Organization,
};
use civitas_search::{
    CatalogIndex, Facet, Paging, SearchDocument, SearchError, SearchRequest, SearchResponse, Sort,
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

/// The most filters a caller gives one search (each is a clause of its query); the index takes a
/// few more, for the ones the API adds.
const MAX_FILTERS: usize = 100;

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

fn ckan_facet(name: &str) -> Option<Facet> {
    CKAN_FACETS
        .iter()
        .find(|(known, _)| *known == name)
        .map(|&(_, facet)| facet)
}

/// CKAN names are lower case; facet values of codes are upper case.
fn from_ckan_value(facet: Facet, value: &str) -> String {
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

/// A parsed `fq`.
#[derive(Debug, Default, PartialEq)]
struct Fq {
    /// AND across facets, OR among the values of one facet, as the index filters.
    included: Vec<(Facet, String)>,
    /// Values no result has (`-field:value`).
    excluded: Vec<(Facet, String)>,
    /// The `metadata_modified:[FROM TO *]` clause, when there is one.
    modified: Option<ModifiedRange>,
}

/// `metadata_modified:[FROM TO *]`: CKAN's harvester sends it for the datasets changed since its
/// last run.
#[derive(Debug, PartialEq)]
struct ModifiedRange {
    /// `None` for `*`.
    from: Option<jiff::Timestamp>,
}

/// What a clause of an `fq` filters on.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FqField {
    Facet(Facet),
    Modified,
}

/// One clause of an `fq` as written, and what it says.
struct FqClause<'a> {
    text: &'a str,
    excluded: bool,
    field: FqField,
    value: &'a str,
}

/// Parses Solr-style `fq` as CKAN clients write it: `field:value` clauses (the value quoted when
/// it holds spaces) separated by spaces, all of which must hold; a `+` before a clause changes
/// nothing, a `-` excludes its value; `OR` joins clauses of one field, any of which may hold (as
/// ckanext-harvest's `organizations_filter_include` sends `organization:a OR organization:b`);
/// and `metadata_modified:[FROM TO *]`. Clauses of one field are alternatives even without `OR`,
/// since the index filters AND across facets and OR among the values of one. The message of an
/// error names the clause at fault.
fn parse_fq(fq: &str) -> Result<Fq, String> {
    let mut parsed = Fq::default();
    let mut clauses = 0;
    // The clause before the current one, and whether an `OR` follows it.
    let mut previous: Option<FqClause> = None;
    let mut joining = false;
    let mut rest = fq.trim_start();
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if &rest[..word_end] == "OR" {
            match &previous {
                None => return Err("fq cannot start with OR: OR joins two clauses".into()),
                Some(_) if joining => return Err("fq has OR twice in a row".into()),
                Some(before) if before.excluded => {
                    return Err(format!(
                        "OR cannot follow the excluded clause {:?}: exclude each value with a \
                         clause of its own",
                        before.text
                    ));
                }
                Some(_) => joining = true,
            }
            rest = rest[word_end..].trim_start();
            continue;
        }
        let (clause, remaining) = read_fq_clause(rest)?;
        clauses += 1;
        if clauses > MAX_FILTERS {
            return Err(format!("fq may hold at most {MAX_FILTERS} clauses"));
        }
        if joining {
            let before = previous.as_ref().expect("OR follows a clause");
            if clause.excluded {
                return Err(format!(
                    "OR cannot join the excluded clause {:?}: exclude each value with a clause \
                     of its own",
                    clause.text
                ));
            }
            if clause.field == FqField::Modified || before.field == FqField::Modified {
                return Err(format!(
                    "OR cannot join a metadata_modified range: {:?} OR {:?}",
                    before.text, clause.text
                ));
            }
            if clause.field != before.field {
                return Err(format!(
                    "OR joins clauses of one field, not {:?} OR {:?}",
                    before.text, clause.text
                ));
            }
            joining = false;
        }
        match clause.field {
            FqField::Modified => {
                if clause.excluded {
                    return Err(format!(
                        "a metadata_modified range cannot be excluded: {:?}",
                        clause.text
                    ));
                }
                if parsed.modified.is_some() {
                    return Err(format!(
                        "fq may hold one metadata_modified range, and {:?} is a second",
                        clause.text
                    ));
                }
                parsed.modified = Some(modified_range(clause.value)?);
            }
            FqField::Facet(facet) => {
                let value = (facet, from_ckan_value(facet, clause.value));
                if clause.excluded {
                    parsed.excluded.push(value);
                } else {
                    parsed.included.push(value);
                }
            }
        }
        previous = Some(clause);
        rest = remaining.trim_start();
    }
    if joining {
        return Err("fq cannot end with OR: OR joins two clauses".into());
    }
    Ok(parsed)
}

/// Reads the clause at the start of `text` (which starts with no space), and what follows it.
fn read_fq_clause(text: &str) -> Result<(FqClause<'_>, &str), String> {
    let word_end = text.find(char::is_whitespace).unwrap_or(text.len());
    let (excluded, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() || body.starts_with(char::is_whitespace) || body.starts_with(['+', '-']) {
        return Err(format!(
            "'{}' must be followed by a clause, without a space",
            &text[..1]
        ));
    }
    let unreadable = || {
        format!(
            "cannot read fq clause {:?}: clauses are field:value",
            &text[..word_end]
        )
    };
    let field_end = body
        .find(|c: char| c == ':' || c.is_whitespace())
        .unwrap_or(body.len());
    let field_name = &body[..field_end];
    if field_name.is_empty() || !body[field_end..].starts_with(':') {
        return Err(unreadable());
    }
    let field = match field_name {
        "metadata_modified" => FqField::Modified,
        name => {
            FqField::Facet(ckan_facet(name).ok_or_else(|| format!("fq cannot filter on {name:?}"))?)
        }
    };
    let after = &body[field_end + 1..];
    let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
        let end = quoted
            .find('"')
            .ok_or_else(|| format!("unbalanced quote in fq clause {:?}", &text[..word_end]))?;
        (&quoted[..end], &quoted[end + 1..])
    } else if after.starts_with('[') {
        let end = after
            .find(']')
            .ok_or_else(|| format!("unbalanced bracket in fq clause {:?}", &text[..word_end]))?;
        (&after[..=end], &after[end + 1..])
    } else if after.starts_with('(') {
        return Err(format!(
            "fq takes no parentheses ({:?}): join clauses of one field with OR, as in \
             organization:a OR organization:b",
            &text[..word_end]
        ));
    } else {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        if end == 0 {
            return Err(format!("fq clause {:?} has no value", &text[..word_end]));
        }
        (&after[..end], &after[end..])
    };
    if !remaining.is_empty() && !remaining.starts_with(char::is_whitespace) {
        return Err(unreadable());
    }
    let is_range = value.starts_with('[');
    match field {
        FqField::Modified if !is_range => {
            return Err(format!(
                "metadata_modified takes a range, [FROM TO *], not {value:?}"
            ));
        }
        FqField::Facet(_) if is_range => {
            return Err(format!("{field_name} takes a value, not the range {value}"));
        }
        _ => {}
    }
    let clause = FqClause {
        text: &text[..text.len() - remaining.len()],
        excluded,
        field,
        value,
    };
    Ok((clause, remaining))
}

/// The `[FROM TO *]` of a `metadata_modified` clause, brackets included.
fn modified_range(range: &str) -> Result<ModifiedRange, String> {
    let inner = &range[1..range.len() - 1];
    let (from, to) = inner
        .split_once(" TO ")
        .ok_or_else(|| format!("cannot read the range {range}"))?;
    if !matches!(to.trim(), "*" | "NOW") {
        return Err("a metadata_modified range may only be open-ended: [FROM TO *]".into());
    }
    let from = match from.trim() {
        "*" => None,
        from => Some(
            from.parse::<jiff::Timestamp>()
                .map_err(|error| format!("metadata_modified from {from:?}: {error}"))?,
        ),
    };
    Ok(ModifiedRange { from })
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
    let mut filter = civitas_store::ResourceFilter {
        active: Some(true),
        modified_since: fq.modified.and_then(|range| range.from),
        ..Default::default()
    };
    let organization = |value: &str| {
        civitas_core::Uscc::parse(value)
            .map_err(|error| CkanError::search_query(format!("organization {value:?}: {error}")))
    };
    let group = |value: &str| {
        ClassificationCode::parse(value)
            .map_err(|error| CkanError::search_query(format!("group {value:?}: {error}")))
    };
    for (facet, value) in fq.included {
        match facet {
            Facet::Provider => filter.providers.push(organization(&value)?),
            Facet::Classification => filter.classifications.push(group(&value)?),
            Facet::OpenType if filter.open_type.is_none() => {
                filter.open_type = Some(
                    serde_json::from_value(json!(value))
                        .map_err(|_| CkanError::search_query(format!("no open type {value:?}")))?,
                );
            }
            _ => {
                return Err(CkanError::search_query(format!(
                    "with sort {sort:?}, fq filters on organization, groups, one open_type and \
                     metadata_modified"
                )));
            }
        }
    }
    for (facet, value) in fq.excluded {
        match facet {
            Facet::Provider => filter.excluded_providers.push(organization(&value)?),
            Facet::Classification => filter.excluded_classifications.push(group(&value)?),
            _ => {
                return Err(CkanError::search_query(format!(
                    "with sort {sort:?}, fq excludes organizations and groups only"
                )));
            }
        }
    }
    if let Some(open_type) = crate::catalog::visible_open_type(caller) {
        filter.open_type = Some(open_type);
    }
    let rows = params.integer("rows")?.unwrap_or(10).min(1000) as u32;
    let start = params.integer("start")?.unwrap_or(0);
    let count = state.store.count_resources(&filter).await?;
    let resources = if rows == 0 {
        Vec::new()
    } else {
        state
            .store
            .resources_at_offset(&filter, start, rows)
            .await?
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
    let mut filters = fq.included;
    // Exclusions only narrow what the filters let through, so anonymous callers still see open
    // data only.
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
        exclusions: fq.excluded,
        condition: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(fq: &str, included: &[(Facet, &str)], excluded: &[(Facet, &str)]) {
        let owned = |pairs: &[(Facet, &str)]| -> Vec<(Facet, String)> {
            pairs
                .iter()
                .map(|(facet, value)| (*facet, value.to_string()))
                .collect()
        };
        let parsed = parse_fq(fq).unwrap_or_else(|message| panic!("{fq}: {message}"));
        assert_eq!(parsed.included, owned(included), "{fq}");
        assert_eq!(parsed.excluded, owned(excluded), "{fq}");
    }

    fn check_error(fq: &str, fragment: &str) {
        let message = parse_fq(fq).expect_err(fq);
        assert!(message.contains(fragment), "{fq}: {message}");
    }

    const A: &str = "11320100MB0000011X";
    const B: &str = "11320100MB0000022X";

    #[test]
    fn clauses_signs_and_quotes() {
        check("", &[], &[]);
        check(
            "organization:a +tags:社保 tags:\"住房 公积金\"",
            &[
                (Facet::Provider, "A"),
                (Facet::Tag, "社保"),
                (Facet::Tag, "住房 公积金"),
            ],
            &[],
        );
        check(
            "  owner_org:a   groups:b01 ",
            &[(Facet::Provider, "A"), (Facet::Classification, "B01")],
            &[],
        );
    }

    #[test]
    fn or_joins_values_of_one_field() {
        let fq = format!("organization:{A} OR organization:{B}");
        check(&fq, &[(Facet::Provider, A), (Facet::Provider, B)], &[]);
        // As ckanext-harvest sends organization and group filters with a modified range.
        let fq = format!(
            "organization:{} OR owner_org:{} groups:b01 OR groups:t03 \
             metadata_modified:[2026-01-01T00:00:00Z TO *]",
            A.to_lowercase(),
            B.to_lowercase()
        );
        check(
            &fq,
            &[
                (Facet::Provider, A),
                (Facet::Provider, B),
                (Facet::Classification, "B01"),
                (Facet::Classification, "T03"),
            ],
            &[],
        );
        let parsed = parse_fq(&fq).unwrap();
        assert_eq!(
            parsed.modified,
            Some(ModifiedRange {
                from: Some("2026-01-01T00:00:00Z".parse().unwrap())
            })
        );
        assert_eq!(
            parse_fq("metadata_modified:[* TO NOW]").unwrap().modified,
            Some(ModifiedRange { from: None })
        );
    }

    #[test]
    fn minus_excludes() {
        let fq = format!("-organization:{A} -organization:{B} -groups:b01 kind:dataset");
        check(
            &fq,
            &[(Facet::Kind, "dataset")],
            &[
                (Facet::Provider, A),
                (Facet::Provider, B),
                (Facet::Classification, "B01"),
            ],
        );
        check(
            "organization:a OR organization:b -organization:c",
            &[(Facet::Provider, "A"), (Facet::Provider, "B")],
            &[(Facet::Provider, "C")],
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (fq, fragment) in [
            ("OR organization:a", "cannot start with OR"),
            ("organization:a OR", "cannot end with OR"),
            ("organization:a OR OR organization:b", "OR twice in a row"),
            (
                "organization:a OR groups:b01",
                "OR joins clauses of one field, not \"organization:a\" OR \"groups:b01\"",
            ),
            (
                "-organization:a OR -organization:b",
                "excluded clause \"-organization:a\"",
            ),
            (
                "organization:a OR -organization:b",
                "excluded clause \"-organization:b\"",
            ),
            (
                "organization:a OR metadata_modified:[* TO *]",
                "OR cannot join a metadata_modified range",
            ),
            ("-", "'-' must be followed by a clause"),
            ("- organization:a", "'-' must be followed by a clause"),
            ("organization:a +", "'+' must be followed by a clause"),
            ("--organization:a", "'-' must be followed by a clause"),
            ("organization", "cannot read fq clause \"organization\""),
            ("公积金 organization:a", "cannot read fq clause \"公积金\""),
            (":a", "cannot read fq clause \":a\""),
            ("organization: tags:a", "\"organization:\" has no value"),
            ("organization:\"a b", "unbalanced quote"),
            ("organization:\"a\"b", "cannot read fq clause"),
            (
                "metadata_modified:[2026-01-01T00:00:00Z TO *",
                "unbalanced bracket",
            ),
            ("metadata_modified:2026", "takes a range"),
            (
                "metadata_modified:[2026 TO *]",
                "metadata_modified from \"2026\"",
            ),
            (
                "metadata_modified:[* TO 2027-01-01T00:00:00Z]",
                "open-ended",
            ),
            ("-metadata_modified:[* TO *]", "cannot be excluded"),
            (
                "metadata_modified:[* TO *] metadata_modified:[* TO *]",
                "one metadata_modified range",
            ),
            ("tags:[a TO b]", "tags takes a value, not the range"),
            ("organization:(a OR b)", "no parentheses"),
            ("title:x", "cannot filter on \"title\""),
        ] {
            check_error(fq, fragment);
        }
    }

    #[test]
    fn every_clause_counts_toward_the_limit() {
        let at_limit = vec!["tags:x"; MAX_FILTERS].join(" OR ");
        assert_eq!(parse_fq(&at_limit).unwrap().included.len(), MAX_FILTERS);
        let over = vec!["-tags:x"; MAX_FILTERS + 1].join(" ");
        check_error(&over, &format!("at most {MAX_FILTERS} clauses"));
        let over = format!("{at_limit} metadata_modified:[* TO *]");
        check_error(&over, &format!("at most {MAX_FILTERS} clauses"));
    }
}
