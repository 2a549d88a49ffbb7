//! The catalog as DCAT-AP 3, in JSON-LD and Turtle, paged with Hydra. The mapping is documented
//! in `docs/dcat-ap.md`; both serializations come from one RDF graph (`rdf::Graph`).

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use civitas_core::{
    catalog::{OpenType, Resource, ResourceCode, ResourceKind, SharingType, UpdateCycle},
    registry::Organization,
};
use civitas_store::ResourceFilter;
use jiff::Timestamp;
use serde::Deserialize;

use crate::{
    AppState,
    auth::MaybeCaller,
    catalog::{visible_open_type, visible_to},
    error::{ApiError, ApiResult},
    extract::Query,
    rdf::{Graph, Term},
};

/// Datasets per catalog page.
pub const PAGE_SIZE: u32 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalog.jsonld", get(catalog_jsonld))
        .route("/catalog.ttl", get(catalog_turtle))
        .route("/dataset/{file}", get(dataset))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Syntax {
    JsonLd,
    Turtle,
}

impl Syntax {
    fn render(self, graph: &Graph) -> Response {
        match self {
            Syntax::JsonLd => (
                [(header::CONTENT_TYPE, "application/ld+json")],
                graph.to_jsonld().to_string(),
            )
                .into_response(),
            Syntax::Turtle => (
                [(header::CONTENT_TYPE, "text/turtle; charset=utf-8")],
                graph.to_turtle(),
            )
                .into_response(),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Syntax::JsonLd => "jsonld",
            Syntax::Turtle => "ttl",
        }
    }
}

#[derive(Debug, Deserialize)]
struct CatalogQuery {
    /// 1-based page number.
    page: Option<u64>,
    /// Only datasets changed at or after this RFC 3339 time.
    modified_since: Option<Timestamp>,
}

async fn catalog_jsonld(
    state: State<AppState>,
    caller: MaybeCaller,
    query: Query<CatalogQuery>,
) -> ApiResult<Response> {
    catalog(state, caller, query, Syntax::JsonLd).await
}

async fn catalog_turtle(
    state: State<AppState>,
    caller: MaybeCaller,
    query: Query<CatalogQuery>,
) -> ApiResult<Response> {
    catalog(state, caller, query, Syntax::Turtle).await
}

async fn catalog(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Query(query): Query<CatalogQuery>,
    syntax: Syntax,
) -> ApiResult<Response> {
    caller.permit_read()?;
    let page = query.page.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::invalid("page", "pages are numbered from 1"));
    }
    // Anonymous harvesters see open data only: the store filters the page and counts the total
    // alike, so full pages hold PAGE_SIZE datasets and the counts tell nothing of the others.
    let filter = ResourceFilter {
        active: Some(true),
        modified_since: query.modified_since,
        open_type: visible_open_type(&caller),
        ..ResourceFilter::default()
    };
    let offset = (page - 1)
        .checked_mul(u64::from(PAGE_SIZE))
        .filter(|offset| i64::try_from(*offset).is_ok())
        .ok_or_else(|| ApiError::invalid("page", "is too large"))?;
    let total = state.store.count_resources(&filter).await?;
    let resources: Vec<Resource> = state
        .store
        .resources_at_offset(&filter, offset, PAGE_SIZE)
        .await?
        .into_iter()
        .filter(|resource| visible_to(&caller, resource))
        .collect();
    let organizations = crate::catalog::providers_of(&state.store, &resources).await?;

    let base: &str = &state.public_url;
    let mut graph = Graph::default();
    let catalog = Term::iri(format!("{base}/catalog"));
    graph.add(&catalog, "rdf:type", Term::Name("dcat:Catalog"));
    graph.add(
        &catalog,
        "dct:title",
        Term::lang(format!("{} 政务数据共享目录", state.node.code), "zh"),
    );
    graph.add(
        &catalog,
        "dct:title",
        Term::lang(format!("{} government data catalog", state.node.code), "en"),
    );
    graph.add(
        &catalog,
        "dct:description",
        Term::lang("civitas 数据共享交换平台的资源目录", "zh"),
    );
    graph.add(
        &catalog,
        "dct:description",
        Term::lang(
            "Catalog of the civitas data sharing and exchange platform",
            "en",
        ),
    );
    let operator = Term::iri(format!("{base}/node"));
    graph.add(&catalog, "dct:publisher", operator.clone());
    graph.add(&operator, "rdf:type", Term::Name("foaf:Agent"));
    graph.add(&operator, "foaf:name", Term::text(state.node.code.clone()));
    graph.add(
        &catalog,
        "dcat:homepage",
        Term::iri(format!("{base}/docs/")),
    );
    graph.add(
        &catalog,
        "dct:language",
        Term::iri("http://publications.europa.eu/resource/authority/language/ZHO"),
    );
    for resource in &resources {
        let dataset = add_dataset(&mut graph, base, resource, &organizations);
        graph.add(&catalog, "dcat:dataset", dataset);
    }

    // Hydra paging: the view of this page within the whole collection.
    let pages = total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let extension = syntax.extension();
    let since = query
        .modified_since
        .map(|at| format!("&modified_since={at}"))
        .unwrap_or_default();
    let page_iri = |n: u64| Term::iri(format!("{base}/catalog.{extension}?page={n}{since}"));
    let view = page_iri(page);
    graph.add(&view, "rdf:type", Term::Name("hydra:PartialCollectionView"));
    graph.add(
        &view,
        "hydra:totalItems",
        Term::typed(total.to_string(), "xsd:integer"),
    );
    graph.add(
        &view,
        "hydra:itemsPerPage",
        Term::typed(PAGE_SIZE.to_string(), "xsd:integer"),
    );
    graph.add(&view, "hydra:first", page_iri(1));
    graph.add(&view, "hydra:last", page_iri(pages));
    if page > 1 {
        graph.add(&view, "hydra:previous", page_iri(page - 1));
    }
    if page < pages {
        graph.add(&view, "hydra:next", page_iri(page + 1));
    }
    Ok(syntax.render(&graph))
}

async fn dataset(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    caller.permit_read()?;
    let (code, syntax) = match file.rsplit_once('.') {
        Some((code, "jsonld")) => (code, Syntax::JsonLd),
        Some((code, "ttl")) => (code, Syntax::Turtle),
        _ => {
            return Err(ApiError::NoRoute(format!(
                "/dataset/{file}: ask for CODE.jsonld or CODE.ttl"
            )));
        }
    };
    let not_found = || ApiError::NotFound {
        kind: "resource",
        id: code.to_owned(),
    };
    let code = ResourceCode::parse(code).map_err(|_| not_found())?;
    let resource = state.store.resource(&code).await?;
    if !resource.active || !visible_to(&caller, &resource) {
        return Err(not_found());
    }
    let organizations =
        crate::catalog::providers_of(&state.store, std::slice::from_ref(&resource)).await?;
    let mut graph = Graph::default();
    add_dataset(&mut graph, &state.public_url, &resource, &organizations);
    Ok(syntax.render(&graph))
}

/// Adds a resource as a `dcat:Dataset` (with its publisher, contact point, distribution and
/// information items) and returns the dataset's node.
fn add_dataset(
    graph: &mut Graph,
    base: &str,
    resource: &Resource,
    organizations: &HashMap<String, Organization>,
) -> Term {
    let draft = &resource.draft;
    let dataset = Term::iri(format!("{base}/dataset/{}", draft.code));
    graph.add(&dataset, "rdf:type", Term::Name("dcat:Dataset"));
    graph.add(
        &dataset,
        "dct:identifier",
        Term::text(draft.code.to_string()),
    );
    graph.add(&dataset, "dct:title", Term::lang(draft.name.clone(), "zh"));
    if let Some(name_en) = &draft.name_en {
        graph.add(&dataset, "dct:title", Term::lang(name_en.clone(), "en"));
    }
    // dct:description is mandatory in DCAT-AP; the name stands in for a missing summary.
    let description = if draft.summary.trim().is_empty() {
        &draft.name
    } else {
        &draft.summary
    };
    graph.add(
        &dataset,
        "dct:description",
        Term::lang(description.clone(), "zh"),
    );
    graph.add(
        &dataset,
        "dct:modified",
        Term::typed(resource.updated_at.to_string(), "xsd:dateTime"),
    );
    if let Some(published_on) = draft.published_on {
        graph.add(
            &dataset,
            "dct:issued",
            Term::typed(published_on.to_string(), "xsd:date"),
        );
    }
    graph.add(
        &dataset,
        "dct:accrualPeriodicity",
        Term::iri(frequency(draft.update_cycle)),
    );
    graph.add(
        &dataset,
        "dct:accessRights",
        Term::iri(access_rights(draft.open_type)),
    );
    for tag in &draft.tags {
        graph.add(&dataset, "dcat:keyword", Term::lang(tag.clone(), "zh"));
    }
    let classification = Term::iri(format!("{base}/classification/{}", draft.classification));
    graph.add(&dataset, "dcat:theme", classification.clone());
    graph.add(&classification, "rdf:type", Term::Name("skos:Concept"));
    graph.add(
        &classification,
        "skos:notation",
        Term::text(draft.classification.to_string()),
    );
    graph.add(
        &classification,
        "skos:prefLabel",
        Term::lang(draft.classification.name(), "zh"),
    );
    graph.add(
        &classification,
        "skos:prefLabel",
        Term::lang(draft.classification.name_en(), "en"),
    );
    graph.add(
        &dataset,
        "dct:spatial",
        Term::iri(format!("{base}/region/{}", draft.code.region())),
    );

    let publisher = Term::iri(format!("{base}/organization/{}", draft.provider));
    graph.add(&dataset, "dct:publisher", publisher.clone());
    graph.add(&publisher, "rdf:type", Term::Name("foaf:Agent"));
    graph.add(
        &publisher,
        "dct:identifier",
        Term::text(draft.provider.to_string()),
    );
    let organization = organizations.get(draft.provider.as_str());
    if let Some(organization) = organization {
        graph.add(
            &publisher,
            "foaf:name",
            Term::lang(organization.name.clone(), "zh"),
        );
        if let Some(name_en) = &organization.name_en {
            graph.add(&publisher, "foaf:name", Term::lang(name_en.clone(), "en"));
        }
    }
    let contact = graph.blank();
    graph.add(&dataset, "dcat:contactPoint", contact.clone());
    graph.add(&contact, "rdf:type", Term::Name("vcard:Organization"));
    graph.add(
        &contact,
        "vcard:fn",
        Term::lang(
            organization
                .map(|o| o.name.clone())
                .unwrap_or_else(|| draft.provider.to_string()),
            "zh",
        ),
    );

    let distribution = graph.blank();
    graph.add(&dataset, "dcat:distribution", distribution.clone());
    graph.add(&distribution, "rdf:type", Term::Name("dcat:Distribution"));
    graph.add(
        &distribution,
        "dcat:accessURL",
        Term::iri(format!("{base}/api/v1/resources/{}", draft.code)),
    );
    graph.add(
        &distribution,
        "dct:accessRights",
        Term::iri(access_rights(draft.open_type)),
    );
    if let Some(format) = file_type(&draft.format) {
        graph.add(&distribution, "dct:format", Term::iri(format));
    }
    if !draft.format.is_empty() {
        graph.add(
            &distribution,
            "dct:description",
            Term::text(format!("format: {}", draft.format)),
        );
    }

    // The catalog guide's own fields, in the civitas extension vocabulary.
    graph.add(&dataset, "civ:kind", Term::text(kind(draft.kind)));
    graph.add(
        &dataset,
        "civ:sharingType",
        Term::text(draft.sharing.sharing_type.as_str()),
    );
    if draft.sharing.sharing_type == SharingType::Conditional
        && let Some(conditions) = &draft.sharing.conditions
    {
        graph.add(
            &dataset,
            "civ:sharingConditions",
            Term::lang(conditions.clone(), "zh"),
        );
    }
    if let Some(method) = draft.sharing.method {
        graph.add(&dataset, "civ:sharingMethod", Term::text(method.as_str()));
    }
    graph.add(
        &dataset,
        "civ:openType",
        Term::text(draft.open_type.as_str()),
    );
    graph.add(
        &dataset,
        "civ:version",
        Term::typed(resource.version.to_string(), "xsd:integer"),
    );
    if let Some(origin) = &draft.origin_node {
        graph.add(&dataset, "civ:originNode", Term::text(origin.to_string()));
    }
    if let Some(device) = &draft.device {
        graph.add(&dataset, "civ:device", Term::text(device.to_string()));
    }
    for item in &draft.items {
        let node = graph.blank();
        graph.add(&dataset, "civ:informationItem", node.clone());
        graph.add(&node, "rdf:type", Term::Name("civ:InformationItem"));
        graph.add(&node, "dct:identifier", Term::text(item.code.clone()));
        graph.add(&node, "dct:title", Term::lang(item.name.clone(), "zh"));
        graph.add(&node, "civ:dataType", Term::text(item.data_type.as_str()));
        graph.add(
            &node,
            "civ:sensitivity",
            Term::text(item.sensitivity.as_str()),
        );
    }
    for related in &draft.related {
        graph.add(
            &dataset,
            "dct:relation",
            Term::iri(format!("{base}/dataset/{related}")),
        );
    }
    dataset
}

fn kind(kind: ResourceKind) -> &'static str {
    kind.as_str()
}

/// The EU frequency vocabulary term for an update cycle.
fn frequency(cycle: UpdateCycle) -> String {
    let term = match cycle {
        UpdateCycle::Realtime => "CONT",
        UpdateCycle::Daily => "DAILY",
        UpdateCycle::Weekly => "WEEKLY",
        UpdateCycle::Monthly => "MONTHLY",
        UpdateCycle::Quarterly => "QUARTERLY",
        UpdateCycle::HalfYearly => "BIANNUAL",
        UpdateCycle::Yearly => "ANNUAL",
        UpdateCycle::Irregular => "IRREG",
    };
    format!("http://publications.europa.eu/resource/authority/frequency/{term}")
}

/// The EU access-right vocabulary term for an open type: the public's access.
fn access_rights(open_type: OpenType) -> String {
    let term = match open_type {
        OpenType::Open => "PUBLIC",
        OpenType::Conditional => "RESTRICTED",
        OpenType::Closed => "NON_PUBLIC",
    };
    format!("http://publications.europa.eu/resource/authority/access-right/{term}")
}

/// The EU file-type vocabulary term for common formats.
fn file_type(format: &str) -> Option<String> {
    let term = match format.to_ascii_lowercase().as_str() {
        "json" => "JSON",
        "csv" => "CSV",
        "xlsx" => "XLSX",
        "xls" => "XLS",
        "xml" => "XML",
        "pdf" => "PDF",
        "zip" => "ZIP",
        "shp" => "SHP",
        "geojson" => "GEOJSON",
        _ => return None,
    };
    Some(format!(
        "http://publications.europa.eu/resource/authority/file-type/{term}"
    ))
}
