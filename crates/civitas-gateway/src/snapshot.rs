//! What the gateway knows, in memory, so that no request waits for the store: system keys,
//! organizations, compiled services, grants, platform policies and revoked certificates. A
//! refresher follows the store's change sequences and applies changes within a second.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use civitas_access::{
    GrantIndex, PlatformPolicies, PolicyStatus,
    decision::{ItemPolicy, ResourceFacts},
};
use civitas_core::{
    RegionCode, Uscc,
    access::SystemRef,
    catalog::{MaskKind, Resource, Sensitivity},
    registry::Level,
    service::{PathPattern, Service},
};
use civitas_store::{OrganizationFilter, PageRequest, Store};
use http::Uri;
use jiff::Timestamp;

use crate::filter::FieldTree;

/// A service ready for calls.
#[derive(Debug)]
pub struct CompiledService {
    pub service: Service,
    /// `{org}/{system}/{code}`: the service's name in records, metrics and breakers.
    pub name: String,
    pub patterns: Vec<PathPattern>,
    pub tree: FieldTree,
    /// The upstream base, without a trailing slash.
    pub upstream: String,
    pub resource: ResourceFacts,
    /// Items whose values are citizen ID numbers (their mask kind says so).
    pub citizen_id_items: HashSet<String>,
    pub timeout: Duration,
}

impl CompiledService {
    pub fn compile(
        service: Service,
        resource: &Resource,
        provider_region: RegionCode,
    ) -> CompiledService {
        let draft = &resource.draft;
        let items: Vec<ItemPolicy> = draft
            .items
            .iter()
            .map(|item| ItemPolicy {
                code: item.code.clone(),
                sensitivity: item.sensitivity,
                mask_kind: (item.sensitivity == Sensitivity::Personal).then(|| {
                    item.mask.unwrap_or_else(|| {
                        civitas_core::catalog::guess_mask(&item.code, &item.name)
                    })
                }),
            })
            .collect();
        let citizen_id_items = items
            .iter()
            .filter(|item| {
                item.mask_kind == Some(MaskKind::CitizenId)
                    || civitas_core::catalog::guess_mask(&item.code, "") == MaskKind::CitizenId
            })
            .map(|item| item.code.clone())
            .collect();
        let name = format!("{}/{}", service.provider, service.draft.code);
        CompiledService {
            name,
            patterns: service
                .draft
                .paths
                .iter()
                .filter_map(|pattern| PathPattern::parse(pattern).ok())
                .collect(),
            tree: FieldTree::compile(&service.draft.fields),
            upstream: service.draft.upstream.trim_end_matches('/').to_owned(),
            resource: ResourceFacts {
                code: draft.code.clone(),
                kind: draft.kind,
                provider: draft.provider.clone(),
                provider_region,
                items,
            },
            citizen_id_items,
            timeout: Duration::from_millis(u64::from(service.draft.timeout_ms)),
            service,
        }
    }

    pub fn allows_path(&self, path: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|pattern| pattern.matches(path))
    }

    pub fn allows_method(&self, method: &str) -> bool {
        self.service
            .draft
            .methods
            .iter()
            .any(|allowed| allowed == method)
    }

    /// The upstream URI for `path_and_query` below the service.
    pub fn upstream_uri(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        format!("{}{}", self.upstream, path_and_query).parse()
    }
}

/// What the gateway knows about one organization.
#[derive(Debug, Clone)]
pub struct OrganizationFacts {
    pub region: RegionCode,
    pub level: Level,
}

pub struct Snapshot {
    /// Key hash → the system and when the key expires.
    pub keys: KeyMap,
    /// Active systems of active organizations: a client certificate of any other system is
    /// refused, as its keys are.
    pub active_systems: HashSet<SystemRef>,
    pub organizations: HashMap<Uscc, OrganizationFacts>,
    /// `{org}/{system}/{code}` → service.
    pub services: HashMap<String, Arc<CompiledService>>,
    pub grants: GrantIndex,
    pub policies: PlatformPolicies,
    pub revoked_certificates: HashSet<String>,
    positions: Positions,
}

/// System keys by hash: the system and when the key expires.
pub type KeyMap = HashMap<String, (SystemRef, Option<Timestamp>)>;

/// How far a snapshot has followed the store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions {
    pub access_sequence: u64,
    pub policy_sequence: u64,
    pub catalog_sequence: u64,
    pub credentials: String,
}

/// Who may call, as the store says after a change of keys, systems or organizations.
struct Credentials {
    keys: KeyMap,
    active_systems: HashSet<SystemRef>,
    organizations: HashMap<Uscc, OrganizationFacts>,
}

/// What changed in the store since some positions, fetched without touching the snapshot so
/// that no lock is held while the store is read.
pub struct Changes {
    positions: Positions,
    credentials: Option<Credentials>,
    grants: Vec<civitas_core::access::Grant>,
    revoked_certificates: Vec<String>,
    services: Option<HashMap<String, Arc<CompiledService>>>,
    policies: Option<PlatformPolicies>,
}

impl Changes {
    /// Whether the platform policies were loaded again.
    pub fn changes_policies(&self) -> bool {
        self.policies.is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.credentials.is_none()
            && self.grants.is_empty()
            && self.revoked_certificates.is_empty()
            && self.services.is_none()
            && self.policies.is_none()
    }
}

async fn organizations(store: &Store) -> anyhow::Result<HashMap<Uscc, OrganizationFacts>> {
    let mut organizations = HashMap::new();
    let mut page = PageRequest {
        limit: PageRequest::MAX_LIMIT,
        after: None,
    };
    loop {
        let found = store
            .list_organizations(&OrganizationFilter::default(), &page)
            .await?;
        for organization in found.items {
            organizations.insert(
                organization.code.clone(),
                OrganizationFacts {
                    region: organization.region,
                    level: organization.level,
                },
            );
        }
        match found.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(organizations),
        }
    }
}

/// The services in `new` whose field mappings overlap, by name with what overlaps, that are new
/// or changed since `old`: registered before overlapping mappings were refused, such a service
/// is filtered item by item, but its provider should register it again. Services are compiled
/// again on every catalog change, so an unchanged one is not warned of again.
fn overlapping_mappings_to_warn_of<'a>(
    old: &HashMap<String, Arc<CompiledService>>,
    new: &'a HashMap<String, Arc<CompiledService>>,
) -> Vec<(&'a str, String)> {
    let mut found: Vec<(&str, String)> = new
        .iter()
        .filter(|(name, service)| {
            old.get(*name)
                .is_none_or(|old| old.service.updated_at != service.service.updated_at)
        })
        .filter_map(|(name, service)| {
            let fields = &service.service.draft.fields;
            let overlap = civitas_core::service::find_overlap(fields)?;
            Some((name.as_str(), overlap.describe(fields)))
        })
        .collect();
    found.sort();
    found
}

async fn compile_services(
    store: &Store,
    organizations: &HashMap<Uscc, OrganizationFacts>,
) -> anyhow::Result<HashMap<String, Arc<CompiledService>>> {
    let services = store.services(None).await?;
    let codes: Vec<&str> = services.iter().map(|s| s.draft.resource.as_str()).collect();
    let resources: HashMap<String, Resource> = store
        .resources_by_code(&codes)
        .await?
        .into_iter()
        .map(|resource| (resource.draft.code.to_string(), resource))
        .collect();
    let mut compiled = HashMap::new();
    for service in services {
        if !service.active {
            continue;
        }
        let Some(resource) = resources.get(service.draft.resource.as_str()) else {
            continue;
        };
        if !resource.active {
            continue;
        }
        let provider_region = organizations
            .get(&resource.draft.provider)
            .map(|org| org.region)
            .unwrap_or_else(|| resource.draft.code.region());
        let service = CompiledService::compile(service, resource, provider_region);
        compiled.insert(service.name.clone(), Arc::new(service));
    }
    Ok(compiled)
}

/// Loads the active policies as stored. None is left out: one that no longer validates (after an
/// upgrade of Cedar or of the schema) is still evaluated where it parses, and refuses every
/// exchange the policies decide where it does not (see `PlatformPolicies::from_stored`), since
/// leaving it out would let through what it forbids. Each such policy is logged as an error.
async fn load_policies(store: &Store, city: RegionCode) -> anyhow::Result<PlatformPolicies> {
    let active: Vec<_> = store
        .policies()
        .await?
        .into_iter()
        .filter(|policy| policy.active)
        .collect();
    // All at once: inserting them one by one recompiles all before each, in quadratic time.
    let policies = PlatformPolicies::from_stored(
        city,
        active
            .iter()
            .map(|policy| (policy.id.as_str(), policy.text.as_str())),
    );
    for (id, status) in policies.not_valid() {
        match status {
            PolicyStatus::Unusable(error) => tracing::error!(
                policy = %id,
                %error,
                "platform policy cannot be read: every exchange the policies decide is refused until it is fixed or deactivated"
            ),
            PolicyStatus::Stale(error) => tracing::error!(
                policy = %id,
                %error,
                "platform policy no longer validates: it is evaluated as written, and an exchange where it fails is refused; fix or deactivate it"
            ),
            PolicyStatus::Valid => {}
        }
    }
    Ok(policies)
}

/// Reads what changed in the store after `from`.
pub async fn fetch_changes(
    store: &Store,
    from: &Positions,
    city: RegionCode,
) -> anyhow::Result<Changes> {
    let positions = Positions {
        access_sequence: store.access_sequence().await?,
        policy_sequence: store.policy_sequence().await?,
        catalog_sequence: store.catalog_sequence().await?,
        credentials: store.credentials_fingerprint().await?,
    };
    let mut changes = Changes {
        positions: positions.clone(),
        credentials: None,
        grants: Vec::new(),
        revoked_certificates: Vec::new(),
        services: None,
        policies: None,
    };
    if positions == *from {
        return Ok(changes);
    }
    let credentials_changed = positions.credentials != from.credentials;
    let organizations = organizations(store).await?;
    if credentials_changed {
        let keys = store
            .system_key_hashes(Timestamp::now())
            .await?
            .into_iter()
            .map(|(hash, organization, system, expires_at)| {
                (
                    hash,
                    (
                        SystemRef {
                            organization,
                            system,
                        },
                        expires_at,
                    ),
                )
            })
            .collect();
        changes.credentials = Some(Credentials {
            keys,
            active_systems: store.active_systems().await?.into_iter().collect(),
            organizations: organizations.clone(),
        });
    }
    if positions.access_sequence != from.access_sequence {
        let mut cursor = from.access_sequence;
        loop {
            let batch = store.grant_changes(cursor, 10_000).await?;
            let Some((last, _)) = batch.last() else { break };
            cursor = *last;
            changes
                .grants
                .extend(batch.into_iter().map(|(_, grant)| grant));
        }
        changes.revoked_certificates = store
            .revoked_certificate_changes(from.access_sequence)
            .await?
            .into_iter()
            .map(|(_, serial)| serial)
            .collect();
    }
    let services_changed = positions.access_sequence != from.access_sequence
        && !store
            .service_changes(from.access_sequence)
            .await?
            .is_empty();
    if services_changed
        || positions.catalog_sequence != from.catalog_sequence
        || credentials_changed
    {
        changes.services = Some(compile_services(store, &organizations).await?);
    }
    if positions.policy_sequence != from.policy_sequence {
        changes.policies = Some(load_policies(store, city).await?);
    }
    Ok(changes)
}

impl Snapshot {
    pub fn service(
        &self,
        organization: &str,
        system: &str,
        code: &str,
    ) -> Option<Arc<CompiledService>> {
        self.services
            .get(&format!("{organization}/{system}/{code}"))
            .cloned()
    }

    /// The service named `{org}/{system}/{code}`, as a call's path spells it.
    pub fn service_named(&self, name: &str) -> Option<Arc<CompiledService>> {
        self.services.get(name).cloned()
    }

    pub fn positions(&self) -> &Positions {
        &self.positions
    }

    /// A snapshot of nothing, before the store's first change.
    fn empty(city: RegionCode) -> Snapshot {
        Snapshot {
            keys: HashMap::new(),
            active_systems: HashSet::new(),
            organizations: HashMap::new(),
            services: HashMap::new(),
            grants: GrantIndex::new(),
            policies: PlatformPolicies::new(city),
            revoked_certificates: HashSet::new(),
            positions: Positions {
                credentials: "none".into(),
                ..Positions::default()
            },
        }
    }

    /// Loads everything from the store.
    pub async fn load(store: &Store, city: RegionCode) -> anyhow::Result<Snapshot> {
        let mut snapshot = Snapshot::empty(city);
        // From nothing: every part of the store counts as changed ("none" never matches a
        // credentials fingerprint, which makes services load too).
        let from = snapshot.positions.clone();
        let mut all = fetch_changes(store, &from, city).await?;
        if all.policies.is_none() {
            all.policies = Some(load_policies(store, city).await?);
        }
        snapshot.apply(all);
        Ok(snapshot)
    }

    /// Applies fetched changes.
    pub fn apply(&mut self, changes: Changes) {
        if let Some(credentials) = changes.credentials {
            self.keys = credentials.keys;
            self.active_systems = credentials.active_systems;
            self.organizations = credentials.organizations;
        }
        for grant in changes.grants {
            // A grant the decision function cannot take (the store should never hold one) is
            // left out, so that its calls are denied, rather than stop every later change.
            let id = grant.id.clone();
            if let Err(error) = self.grants.upsert(grant) {
                self.grants.remove(&id);
                tracing::error!(grant = %id, %error, "grant left out of the gateway");
            }
        }
        self.revoked_certificates
            .extend(changes.revoked_certificates);
        if let Some(services) = changes.services {
            for (service, overlap) in overlapping_mappings_to_warn_of(&self.services, &services) {
                tracing::warn!(
                    service,
                    overlap,
                    "a stored service maps a field inside another; register it again without the overlap"
                );
            }
            self.services = services;
        }
        if let Some(policies) = changes.policies {
            self.policies = policies;
        }
        self.positions = changes.positions;
    }
}

#[cfg(test)]
mod tests {
    use civitas_core::{
        Code,
        access::{Grant, GrantedItem},
        catalog::ResourceCode,
    };

    use super::*;

    fn grant(id: &str, items: &[&str]) -> Grant {
        let provider: Uscc = "11320100MB0000019F".parse().unwrap();
        Grant {
            id: id.into(),
            application: None,
            consumer: SystemRef {
                organization: "11320100MB0000027A".parse().unwrap(),
                system: Code::parse("portal").unwrap(),
            },
            resource: ResourceCode::parse("320100-B01-000001").unwrap(),
            provider,
            items: items
                .iter()
                .map(|code| GrantedItem {
                    code: (*code).into(),
                    plaintext: false,
                })
                .collect(),
            valid_from: Timestamp::from_second(0).unwrap(),
            valid_until: Timestamp::from_second(4_000_000_000).unwrap(),
            calls_per_day: None,
            requests_per_second: None,
            revoked_at: None,
            revoked_by: None,
            revoke_reason: None,
            created_at: Timestamp::from_second(0).unwrap(),
        }
    }

    fn changes(access_sequence: u64, grants: Vec<Grant>) -> Changes {
        Changes {
            positions: Positions {
                access_sequence,
                ..Positions::default()
            },
            credentials: None,
            grants,
            revoked_certificates: Vec::new(),
            services: None,
            policies: None,
        }
    }

    #[test]
    fn a_grant_the_index_refuses_is_left_out_and_the_rest_applies() {
        let mut snapshot = Snapshot::empty(RegionCode::parse("320100").unwrap());
        snapshot.apply(changes(1, vec![grant("g1", &["name"])]));
        assert!(snapshot.grants.get("g1").is_some());
        // g1 changes into something the index refuses; g2 comes after it in the same changes.
        snapshot.apply(changes(
            2,
            vec![grant("g1", &["name", "name"]), grant("g2", &["balance"])],
        ));
        assert!(
            snapshot.grants.get("g1").is_none(),
            "its earlier version is not kept either"
        );
        assert!(snapshot.grants.get("g2").is_some());
        assert_eq!(snapshot.positions().access_sequence, 2);
    }

    /// Services named by code, each compiled from its field mappings and the second it was
    /// last updated at.
    fn services(
        services: &[(&str, serde_json::Value, i64)],
    ) -> HashMap<String, Arc<CompiledService>> {
        let resource: Resource = serde_json::from_value(serde_json::json!({
            "code": "320100-B01-000001", "kind": "interface", "classification": "B01",
            "name": "住房公积金账户信息", "provider": "11320100MB0000019F",
            "provider_system": "fund-core",
            "items": [
                { "code": "name", "name": "姓名", "data_type": "string", "sensitivity": "internal" },
                { "code": "id_number", "name": "公民身份号码", "data_type": "string",
                  "sensitivity": "personal" }
            ],
            "sharing": { "type": "unconditional", "method": "interface" },
            "open_type": "closed", "update_cycle": "realtime",
            "version": 1, "active": true,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        services
            .iter()
            .map(|(code, fields, updated)| {
                let service: Service = serde_json::from_value(serde_json::json!({
                    "provider": { "organization": "11320100MB0000019F", "system": "fund-core" },
                    "code": code, "resource": "320100-B01-000001",
                    "upstream": "http://127.0.0.1:1", "methods": ["GET"],
                    "paths": ["/accounts/{id}"], "timeout_ms": 300, "fields": fields,
                    "active": true, "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": Timestamp::from_second(*updated).unwrap()
                }))
                .unwrap();
                let compiled = CompiledService::compile(
                    service,
                    &resource,
                    RegionCode::parse("320100").unwrap(),
                );
                (compiled.name.clone(), Arc::new(compiled))
            })
            .collect()
    }

    #[test]
    fn overlapping_mappings_are_warned_of_when_new_or_changed() {
        let overlapping = serde_json::json!([
            { "item": "name", "path": "$.holder" },
            { "item": "id_number", "path": "$.holder.id_number" }
        ]);
        let apart = serde_json::json!([
            { "item": "name", "path": "$.name" },
            { "item": "id_number", "path": "$.id_number" }
        ]);
        let warned = |old: &HashMap<String, Arc<CompiledService>>,
                      new: &HashMap<String, Arc<CompiledService>>| {
            overlapping_mappings_to_warn_of(old, new)
                .into_iter()
                .map(|(name, overlap)| format!("{name}: {overlap}"))
                .collect::<Vec<_>>()
        };
        let first = services(&[
            ("accounts", overlapping.clone(), 1),
            ("holders", overlapping.clone(), 1),
            ("plain", apart.clone(), 1),
        ]);
        let overlap = r#""$.holder.id_number" lies inside "$.holder" (fields[0], item name)"#;
        assert_eq!(
            warned(&HashMap::new(), &first),
            [
                format!("11320100MB0000019F/fund-core/accounts: {overlap}"),
                format!("11320100MB0000019F/fund-core/holders: {overlap}"),
            ]
        );
        assert_eq!(
            warned(&first, &first),
            Vec::<String>::new(),
            "nothing changed"
        );
        // Changed: one still overlapping, one mended.
        let second = services(&[
            ("accounts", overlapping, 2),
            ("holders", apart.clone(), 2),
            ("plain", apart, 1),
        ]);
        assert_eq!(
            warned(&first, &second),
            [format!("11320100MB0000019F/fund-core/accounts: {overlap}")]
        );
    }
}
