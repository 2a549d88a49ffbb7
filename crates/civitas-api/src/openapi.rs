//! The OpenAPI 3.1 description, generated from the handlers, and the human docs page.

use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    AppState, access, audit, catalog, error::Problem, ledger, policies, registry, scenarios,
    search, services,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "civitas",
        description = "The city data-sharing platform: registry, catalog, access, exchange gateway and ledger. \
Errors are RFC 9457 problem documents with a stable `code`. Authenticate with `Authorization: Bearer <API key>`.",
    ),
    paths(
        registry::node,
        registry::me,
        registry::login,
        registry::create_organization,
        registry::list_organizations,
        registry::get_organization,
        registry::update_organization,
        registry::deactivate_organization,
        registry::reactivate_organization,
        registry::create_system,
        registry::list_systems,
        registry::get_system,
        registry::update_system,
        registry::deactivate_system,
        registry::reactivate_system,
        registry::create_user,
        registry::list_users,
        registry::get_user,
        registry::update_user,
        registry::deactivate_user,
        registry::reactivate_user,
        registry::create_key,
        registry::list_keys,
        registry::get_key,
        registry::revoke_key,
        audit::list_events,
        catalog::create_resource,
        catalog::list_resources,
        catalog::get_resource,
        catalog::update_resource,
        catalog::deactivate_resource,
        catalog::reactivate_resource,
        catalog::resource_history,
        search::search,
        access::apply,
        access::list_applications,
        access::get_application,
        access::approve,
        access::reject,
        access::withdraw,
        access::list_grants,
        access::get_grant,
        access::revoke,
        access::grant_history,
        access::system_grants,
        access::resource_grants,
        policies::list_policies,
        policies::get_policy,
        policies::put_policy,
        policies::deactivate_policy,
        policies::schema,
        policies::explain_request,
        scenarios::publish,
        scenarios::list_scenarios,
        scenarios::get_scenario,
        scenarios::versions,
        scenarios::run,
        scenarios::runs_of_citizen,
        scenarios::run_by_id,
        services::put_service,
        services::get_service,
        services::list_services,
        services::deactivate_service,
        services::mapping_from_openapi,
        services::issue_certificate,
        services::revoke_certificate,
        services::ca_certificate,
        services::list_certificates,
        services::get_certificate,
        services::list_circuits,
        services::grant_usage,
        services::usage_report,
        services::subject_accesses,
        ledger::status,
        ledger::checkpoints,
        ledger::records,
        ledger::record_at,
        ledger::inclusion_proof,
        ledger::consistency_proof,
        ledger::receipt,
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("api_key" = [])),
    tags(
        (name = "registry", description = "The node, organizations, systems, users and API keys"),
        (name = "audit", description = "Who changed what"),
        (name = "scenarios", description = "Application scenarios: composite citizen services as data"),
        (name = "gateway", description = "Services, client certificates and the exchange gateway's records"),
        (name = "access", description = "Applications, approvals and grants"),
        (name = "ledger", description = "The data chain: signed checkpoints, records, proofs and receipts"),
        (name = "catalog", description = "Catalog resources with the national catalog guide's metadata"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs/problems", axum::routing::get(problems))
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", ApiDoc::openapi()))
}

/// Every problem type, where the `type` of a problem document (`/docs/problems#CODE`) points.
async fn problems() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        civitas_core::problems::page(),
    )
}
