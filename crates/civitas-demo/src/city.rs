//! The demo city builder: a synthetic Nanjing written into a store, deterministically from a
//! seed, at Nanjing's scale or at a hundredth of it.
//!
//! What it writes: the 127 bodies of `civitas-synth` (the reference bodies keep the credit codes
//! the shipped scenarios name), the reference city of [`crate::reference`], information systems up
//! to 1,216, users of every role with API keys, 172,654 catalog directories (920 datasets, 77
//! interfaces, the rest files) and 168,642 cameras, a gateway service on every interface and a
//! video service for every body with cameras, and grants for the demo's consumer systems. Keys are
//! random (they are secrets); everything else follows from the seed.
//!
//! Everything goes through the store with the demo builder's permit, so it is audited like any
//! other change. The search index is the caller's: it follows the store.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context;
use civitas_core::{
    Code, Uscc,
    access::{GrantedItem, SystemRef},
    authz::Permit,
    catalog::{ResourceDraft, ResourceKind, Sensitivity, SharingType},
    registry::{KeyOwner, Role, UserName},
    service::{FieldMapping, ServiceDraft},
};
use civitas_store::{
    GrantTerms, NewApplication, NewOrganization, NewSystem, NewUser, Store, StoreError, WriteMode,
};
use civitas_synth::catalog::{self as synth_catalog, CatalogConfig};
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

use crate::catalog_services::{CatalogServices, InterfaceSpec};
use crate::citizens::Population;
use crate::reference::{self, ReferenceCity};
use crate::services::ProviderServices;

/// Directories on Nanjing's platform, of which 920 datasets and 77 interfaces.
pub const NANJING_DIRECTORIES: u64 = synth_catalog::NANJING_DIRECTORIES;
pub const NANJING_DATASETS: u64 = 920;
pub const NANJING_INTERFACES: u64 = 77;
/// Video interfaces (cameras) on Nanjing's platform.
pub const NANJING_VIDEOS: u64 = 168_642;
/// Information systems registered on Nanjing's platform.
pub const NANJING_SYSTEMS: u64 = 1_216;
/// Synthetic citizens the provider services serve.
pub const NANJING_CITIZENS: u64 = 100_000;
/// Cameras the city-operations system may play.
const GRANTED_CAMERAS: usize = 10;
/// Drafts written per store transaction.
const BATCH: usize = 5_000;

/// How big a city to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scale {
    /// Nanjing's numbers.
    Full,
    /// A hundredth of them, for tests; the 127 bodies and the reference city stay whole.
    Small,
}

impl Scale {
    fn divisor(self) -> u64 {
        match self {
            Scale::Full => 1,
            Scale::Small => 100,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Full => "full",
            Scale::Small => "small",
        }
    }
}

/// The numbers of a city of one scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CitySize {
    pub directories: u64,
    pub datasets: u64,
    pub interfaces: u64,
    pub videos: u64,
    pub systems: u64,
    pub citizens: u64,
}

impl CitySize {
    pub fn of(scale: Scale) -> CitySize {
        let divisor = scale.divisor();
        let reference_interfaces = reference::services().len() as u64;
        CitySize {
            directories: NANJING_DIRECTORIES / divisor,
            datasets: NANJING_DATASETS / divisor,
            // At least a few generated interfaces beside the reference ones.
            interfaces: (NANJING_INTERFACES / divisor).max(reference_interfaces + 3),
            videos: NANJING_VIDEOS / divisor,
            systems: NANJING_SYSTEMS / divisor,
            citizens: NANJING_CITIZENS / divisor,
        }
    }
}

/// One grant of a consumer system, with a call that uses it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GrantExample {
    pub grant: String,
    pub resource: String,
    pub resource_name: String,
    /// `GET` or `POST`.
    pub method: String,
    /// The gateway path of one working call, starting with `/x/`.
    pub path: String,
    /// Personal items the system receives in plaintext; its other personal items come masked.
    pub plaintext: Vec<String>,
    pub masked: Vec<String>,
}

/// One entry of `demo-keys.json`: a user or a system and its API key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyEntry {
    /// `user` or `system`.
    pub kind: String,
    pub organization: String,
    pub organization_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_name: Option<String>,
    pub key: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<GrantExample>,
}

/// What a build wrote.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CityCounts {
    pub organizations: u64,
    pub systems: u64,
    pub users: u64,
    pub directories: u64,
    pub datasets: u64,
    pub interfaces: u64,
    pub files: u64,
    pub videos: u64,
    pub services: u64,
    pub grants: u64,
    pub citizens: u64,
    pub scenarios: u64,
}

/// A built city: its counts and its keys.
#[derive(Debug, Clone)]
pub struct BuiltCity {
    pub counts: CityCounts,
    pub keys: Vec<KeyEntry>,
    pub reference: ReferenceCity,
}

/// Progress of a build: a phase, and how far it is.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
}

/// Information systems every body may have beyond its publishing system:
/// (code, name suffix, consumes, provides).
const SYSTEM_KINDS: &[(&str, &str, bool, bool)] = &[
    ("oa", "协同办公系统", true, false),
    ("approval", "行政审批系统", true, true),
    ("service-hall", "政务服务受理系统", true, false),
    ("exchange", "数据共享前置系统", true, true),
    ("archive", "电子档案系统", false, true),
    ("enforcement", "监管执法系统", true, true),
    ("statistics", "统计分析系统", true, false),
    ("hotline", "12345热线工单系统", true, false),
    ("gis", "地理信息系统", false, true),
    ("video-platform", "视频监控平台", false, true),
    ("emergency", "应急指挥系统", true, false),
    ("credit", "信用信息系统", true, true),
];

/// The demo's own consumer systems beside the scenarios': (body name, code, name).
const DEMO_CONSUMERS: [(&str, &str, &str); 3] = [
    ("南京市政务服务管理办公室", "one-network", "一网通办平台"),
    ("玄武区城市管理局", "city-operations", "城市运行指挥系统"),
    (
        "南京市卫生健康委员会",
        "health-insight",
        "健康医疗大数据平台",
    ),
];

fn uscc(text: &str) -> Uscc {
    Uscc::parse(text).expect("a valid credit code")
}

fn code(text: &str) -> Code {
    Code::parse(text).expect("a valid code")
}

/// The bodies of the demo city: `civitas-synth`'s, with the reference bodies' credit codes.
pub fn organizations(seed: u64) -> Vec<civitas_synth::Organization> {
    let fixed: HashMap<&str, &str> = reference::BODIES
        .iter()
        .map(|(credit_code, name, _)| (*name, *credit_code))
        .collect();
    let mut organizations = civitas_synth::organizations(seed);
    let mut renamed = HashMap::new();
    for organization in &mut organizations {
        if let Some(credit_code) = fixed.get(organization.name.as_str()) {
            let new = uscc(credit_code);
            renamed.insert(organization.code.clone(), new.clone());
            organization.code = new;
        }
    }
    for organization in &mut organizations {
        if let Some(new) = organization
            .parent
            .as_ref()
            .and_then(|parent| renamed.get(parent))
        {
            organization.parent = Some(new.clone());
        }
    }
    organizations
}

/// A user name from an English body name: `nanjing-civil-affairs-bureau.officer`.
fn user_name(name_en: &str, role: &str) -> UserName {
    let mut slug = String::new();
    for word in name_en.split(|c: char| !c.is_ascii_alphanumeric()) {
        if word.is_empty() {
            continue;
        }
        if !slug.is_empty() {
            slug.push('-');
        }
        slug.push_str(&word.to_ascii_lowercase());
    }
    slug.truncate(48);
    let slug = slug.trim_end_matches('-');
    UserName::parse(&format!("{slug}.{role}")).expect("a valid user name")
}

/// Why a call failed, for a build that has to say where it stopped.
fn at<T, E: Into<anyhow::Error>>(
    result: Result<T, E>,
    what: impl FnOnce() -> String,
) -> anyhow::Result<T> {
    result.map_err(Into::into).with_context(what)
}

/// Builds the city into `store`. The store must be empty of demo data; `services` and `catalog`
/// must be running, for the services' upstream addresses.
pub async fn build(
    store: &Store,
    seed: u64,
    scale: Scale,
    population: &Population,
    services: &ProviderServices,
    catalog: &CatalogServices,
    progress: &mut dyn FnMut(Progress),
) -> anyhow::Result<BuiltCity> {
    let permit = Permit::internal("civitas:demo");
    let size = CitySize::of(scale);
    let mut counts = CityCounts {
        citizens: population.len() as u64,
        ..CityCounts::default()
    };
    let mut keys = Vec::new();

    // Bodies.
    let bodies = organizations(seed);
    let names: HashMap<Uscc, &civitas_synth::Organization> = bodies
        .iter()
        .map(|body| (body.code.clone(), body))
        .collect();
    for (done, body) in bodies.iter().enumerate() {
        let new = NewOrganization {
            code: body.code.clone(),
            name: body.name.clone(),
            name_en: Some(body.name_en.clone()),
            level: body.level,
            region: body.region,
            parent: body.parent.clone(),
        };
        at(store.create_organization(&permit, &new).await, || {
            format!("creating {}", body.name)
        })?;
        progress(Progress {
            phase: "organizations",
            done: done as u64 + 1,
            total: bodies.len() as u64,
        });
    }
    counts.organizations = bodies.len() as u64;

    // The reference city: its systems, interfaces, services, grants and scenarios.
    let city = reference::install(store, services)
        .await
        .context("installing the reference city")?;
    counts.scenarios = reference::SCENARIOS.len() as u64;

    // Systems: each body's publishing system, the demo consumers, then the kinds in turn.
    let mut systems: BTreeMap<(String, String), (String, bool, bool)> = BTreeMap::new();
    for (credit_code, _, _) in reference::BODIES {
        let existing = store
            .list_systems(
                &uscc(credit_code),
                &civitas_store::SystemFilter::default(),
                &civitas_store::PageRequest {
                    limit: 1000,
                    after: None,
                },
            )
            .await?;
        for system in existing.items {
            systems.insert(
                (system.organization.to_string(), system.code.to_string()),
                (system.name.clone(), system.consumes, system.provides),
            );
        }
    }
    let reference_systems = systems.len() as u64;
    let mut planned: Vec<(Uscc, Code, String, bool, bool)> = Vec::new();
    let mut taken: HashSet<(String, String)> = systems.keys().cloned().collect();
    let mut plan = |planned: &mut Vec<_>,
                    organization: &Uscc,
                    system: Code,
                    name: String,
                    consumes: bool,
                    provides: bool| {
        if taken.insert((organization.to_string(), system.to_string())) {
            planned.push((organization.clone(), system, name, consumes, provides));
        }
    };
    for body in &bodies {
        plan(
            &mut planned,
            &body.code,
            synth_catalog::provider_system(body),
            format!("{}数据共享系统", body.name),
            true,
            true,
        );
    }
    let by_name: HashMap<&str, &civitas_synth::Organization> = bodies
        .iter()
        .map(|body| (body.name.as_str(), body))
        .collect();
    for (body_name, system, name) in DEMO_CONSUMERS {
        let body = by_name[body_name];
        plan(
            &mut planned,
            &body.code,
            code(system),
            name.to_owned(),
            true,
            false,
        );
    }
    'kinds: for (kind, suffix, consumes, provides) in SYSTEM_KINDS {
        for body in &bodies {
            if reference_systems + planned.len() as u64 >= size.systems {
                break 'kinds;
            }
            plan(
                &mut planned,
                &body.code,
                code(kind),
                format!("{}{suffix}", body.name),
                *consumes,
                *provides,
            );
        }
    }
    let total_systems = planned.len() as u64;
    for (done, (organization, system, name, consumes, provides)) in planned.into_iter().enumerate()
    {
        let new = NewSystem {
            code: system.clone(),
            name: name.clone(),
            description: String::new(),
            consumes,
            provides,
        };
        match store.create_system(&permit, &organization, &new).await {
            Ok(_) | Err(StoreError::Duplicate { .. }) => {}
            Err(error) => {
                return Err(error)
                    .with_context(|| format!("creating system {organization}/{system}"));
            }
        }
        systems.insert(
            (organization.to_string(), system.to_string()),
            (name, consumes, provides),
        );
        progress(Progress {
            phase: "systems",
            done: done as u64 + 1,
            total: total_systems,
        });
    }
    counts.systems = systems.len() as u64;

    // Users of every role, with keys.
    let mut users: Vec<(UserName, String, Role, Option<Uscc>)> = vec![
        (
            UserName::parse("demo-admin").expect("valid"),
            "演示平台管理员".into(),
            Role::PlatformAdmin,
            None,
        ),
        (
            UserName::parse("city-auditor").expect("valid"),
            "数据审计员".into(),
            Role::Auditor,
            Some(uscc(crate::services::MUNICIPAL_DATA_BUREAU_CREDIT_CODE)),
        ),
    ];
    for body in &bodies {
        for (role, suffix, label) in [
            (Role::OrgAdmin, "admin", "管理员"),
            (Role::DataOfficer, "officer", "数据专员"),
            (Role::Developer, "developer", "开发者"),
        ] {
            users.push((
                user_name(&body.name_en, suffix),
                format!("{}{label}", body.name),
                role,
                Some(body.code.clone()),
            ));
        }
    }
    let total_keys = (users.len() + systems.len()) as u64;
    let mut done_keys = 0;
    for (name, display_name, role, organization) in users {
        let new = NewUser {
            name: name.clone(),
            display_name,
            role,
            organization: organization.clone(),
            password_hash: None,
        };
        at(store.create_user(&permit, &new).await, || {
            format!("creating user {name}")
        })?;
        let issued = civitas_api::auth::issue_key(
            KeyOwner::User { name: name.clone() },
            "demo".into(),
            None,
        );
        store.create_api_key(&permit, &issued.record, None).await?;
        let (organization, organization_name) = match &organization {
            Some(code) => (code.to_string(), names[code].name.clone()),
            None => (String::new(), String::new()),
        };
        keys.push(KeyEntry {
            kind: "user".into(),
            organization,
            organization_name,
            user: Some(name.to_string()),
            role: Some(role.as_str().to_owned()),
            system: None,
            system_name: None,
            key: issued.secret,
            grants: Vec::new(),
        });
        counts.users += 1;
        done_keys += 1;
        progress(Progress {
            phase: "users and keys",
            done: done_keys,
            total: total_keys,
        });
    }
    for ((organization, system), (system_name, _, _)) in &systems {
        let key = if *organization == city.city_app.organization.as_str()
            && *system == city.city_app.system.as_str()
        {
            city.city_app_key.clone()
        } else {
            let issued = civitas_api::auth::issue_key(
                KeyOwner::System {
                    organization: uscc(organization),
                    system: code(system),
                },
                "demo".into(),
                None,
            );
            store.create_api_key(&permit, &issued.record, None).await?;
            issued.secret
        };
        keys.push(KeyEntry {
            kind: "system".into(),
            organization: organization.clone(),
            organization_name: names[&uscc(organization)].name.clone(),
            user: None,
            role: None,
            system: Some(system.clone()),
            system_name: Some(system_name.clone()),
            key,
            grants: Vec::new(),
        });
        done_keys += 1;
        progress(Progress {
            phase: "users and keys",
            done: done_keys,
            total: total_keys,
        });
    }

    // The catalog and the cameras, from one generator so that codes never collide.
    let reference_interfaces = reference::services().len() as u64;
    let generated_interfaces = size.interfaces - reference_interfaces;
    let config = CatalogConfig {
        datasets: size.datasets,
        interfaces: generated_interfaces,
        videos: size.videos,
        files: size.directories - size.datasets - size.interfaces,
        providers: bodies.clone(),
        mounted_per_mille: 30,
    };
    let total = config.total();
    let mut interfaces: Vec<ResourceDraft> = Vec::new();
    let mut first_camera: BTreeMap<Uscc, ResourceDraft> = BTreeMap::new();
    let mut cameras: Vec<ResourceDraft> = Vec::new();
    let mut batch = Vec::with_capacity(BATCH);
    let mut written = 0u64;
    for draft in synth_catalog::directories(seed, config) {
        match draft.kind {
            ResourceKind::Dataset => counts.datasets += 1,
            ResourceKind::Interface => {
                counts.interfaces += 1;
                interfaces.push(draft.clone());
            }
            ResourceKind::Video => {
                counts.videos += 1;
                first_camera
                    .entry(draft.provider.clone())
                    .or_insert_with(|| draft.clone());
                if cameras.len() < GRANTED_CAMERAS
                    && draft.sharing.sharing_type != SharingType::None
                {
                    cameras.push(draft.clone());
                }
            }
            ResourceKind::File => counts.files += 1,
        }
        batch.push(draft);
        if batch.len() == BATCH {
            written += write_batch(store, &permit, &mut batch).await?;
            progress(Progress {
                phase: "catalog",
                done: written,
                total,
            });
        }
    }
    written += write_batch(store, &permit, &mut batch).await?;
    progress(Progress {
        phase: "catalog",
        done: written,
        total,
    });
    counts.interfaces += reference_interfaces;
    counts.directories = counts.datasets + counts.interfaces + counts.files;

    // Services: one on every generated interface, a video service for every body with cameras.
    catalog.add_interfaces(interfaces.iter().map(|draft| InterfaceSpec {
        resource: draft.code.to_string(),
        items: draft.items.clone(),
    }));
    let services: Vec<(SystemRef, ServiceDraft)> = interfaces
        .iter()
        .map(|draft| {
            let system = draft
                .provider_system
                .clone()
                .expect("generated interfaces name their system");
            (
                SystemRef {
                    organization: draft.provider.clone(),
                    system,
                },
                interface_service(draft, catalog),
            )
        })
        .chain(first_camera.iter().map(|(provider, camera)| {
            let system = synth_catalog::provider_system(names[provider]);
            (
                SystemRef {
                    organization: provider.clone(),
                    system,
                },
                video_service(camera, catalog),
            )
        }))
        .collect();
    let total_services = services.len() as u64;
    for (done, (provider, service)) in services.iter().enumerate() {
        store.put_service(&permit, provider, service).await?;
        progress(Progress {
            phase: "services",
            done: done as u64 + 1,
            total: total_services,
        });
    }
    counts.services = total_services + reference_interfaces;

    // Grants for the demo's consumers.
    let grants =
        grant_demo_consumers(store, &permit, &bodies, population, &interfaces, &cameras).await?;
    let reference_grants = reference_grant_examples(store, population).await?;
    for entry in &mut keys {
        let (Some(system), "system") = (&entry.system, entry.kind.as_str()) else {
            continue;
        };
        let key = (entry.organization.clone(), system.clone());
        if let Some(examples) = grants.get(&key) {
            entry.grants.extend(examples.iter().cloned());
        }
        if let Some(examples) = reference_grants.get(&key) {
            entry.grants.extend(examples.iter().cloned());
        }
    }
    counts.grants = keys.iter().map(|entry| entry.grants.len() as u64).sum();
    Ok(BuiltCity {
        counts,
        keys,
        reference: city,
    })
}

async fn write_batch(
    store: &Store,
    permit: &Permit,
    batch: &mut Vec<ResourceDraft>,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let (outcome, _) = store
        .write_resources(permit, batch, WriteMode::Upsert)
        .await?;
    if let Some((index, error)) = outcome.rejected.first() {
        anyhow::bail!(
            "the generated resource {} was refused: {error}",
            batch[*index].code
        );
    }
    let count = batch.len() as u64;
    batch.clear();
    Ok(count)
}

/// The gateway service of a generated interface: records of the catalog upstream.
pub fn interface_service(draft: &ResourceDraft, catalog: &CatalogServices) -> ServiceDraft {
    ServiceDraft {
        code: code(&draft.code.as_str().to_ascii_lowercase()),
        resource: draft.code.clone(),
        upstream: catalog.interface_upstream(draft.code.as_str()),
        methods: vec!["GET".into()],
        paths: vec!["/records".into(), "/records/{number}".into()],
        fields: draft
            .items
            .iter()
            .map(|item| FieldMapping {
                item: item.code.clone(),
                path: format!("$.records[*].{}", item.code),
            })
            .collect(),
        timeout_ms: 3000,
    }
}

/// The video service of a body with cameras: playback through the video platform.
pub fn video_service(camera: &ResourceDraft, catalog: &CatalogServices) -> ServiceDraft {
    ServiceDraft {
        code: code("video"),
        resource: camera.code.clone(),
        upstream: catalog.video_upstream(),
        methods: vec!["POST".into()],
        paths: Vec::new(),
        fields: Vec::new(),
        timeout_ms: 3000,
    }
}

fn personal_items(draft: &ResourceDraft) -> Vec<String> {
    draft
        .items
        .iter()
        .filter(|item| item.sensitivity == Sensitivity::Personal)
        .map(|item| item.code.clone())
        .collect()
}

/// Grants the demo consumers every shareable generated interface (in turn), some cameras, and
/// the population register with masking; returns a working example per grant.
async fn grant_demo_consumers(
    store: &Store,
    permit: &Permit,
    bodies: &[civitas_synth::Organization],
    population: &Population,
    interfaces: &[ResourceDraft],
    cameras: &[ResourceDraft],
) -> anyhow::Result<HashMap<(String, String), Vec<GrantExample>>> {
    let by_name: HashMap<&str, &civitas_synth::Organization> = bodies
        .iter()
        .map(|body| (body.name.as_str(), body))
        .collect();
    let consumers: Vec<SystemRef> = DEMO_CONSUMERS
        .iter()
        .map(|(body, system, _)| SystemRef {
            organization: by_name[body].code.clone(),
            system: code(system),
        })
        .collect();
    let now = Timestamp::now();
    let mut examples: HashMap<(String, String), Vec<GrantExample>> = HashMap::new();
    let mut grant = async |consumer: &SystemRef,
                           draft: &ResourceDraft,
                           plaintext: bool,
                           method: &str,
                           path: String|
           -> anyhow::Result<()> {
        let id = format!(
            "demo-{}-{}",
            consumer.system,
            draft.code.as_str().to_ascii_lowercase()
        );
        let personal = personal_items(draft);
        let items: Vec<String> = draft.items.iter().map(|item| item.code.clone()).collect();
        let application = NewApplication {
            id: id.clone(),
            consumer: consumer.clone(),
            resource: draft.code.clone(),
            provider: draft.provider.clone(),
            items: items.clone(),
            purpose: "演示城市：跨部门业务协同".into(),
            legal_basis: "《南京市政务数据管理暂行办法》".into(),
            valid_days: 3650,
            expected_calls_per_day: Some(10_000),
            applicant: "civitas:demo".into(),
        };
        let terms = GrantTerms {
            id: format!("{id}-grant"),
            items: items
                .iter()
                .map(|item| GrantedItem {
                    code: item.clone(),
                    plaintext: plaintext || !personal.contains(item),
                })
                .collect(),
            valid_from: now,
            valid_until: now + (3650 * 24).hours(),
            calls_per_day: Some(100_000),
            requests_per_second: Some(200),
        };
        store
            .create_application(permit, &application, Some(&terms))
            .await?;
        let (plaintext_items, masked) = if plaintext {
            (personal, Vec::new())
        } else {
            (Vec::new(), personal)
        };
        examples
            .entry((
                consumer.organization.to_string(),
                consumer.system.to_string(),
            ))
            .or_default()
            .push(GrantExample {
                grant: terms.id,
                resource: draft.code.to_string(),
                resource_name: draft.name.clone(),
                method: method.into(),
                path,
                plaintext: plaintext_items,
                masked,
            });
        Ok(())
    };
    let shareable = interfaces
        .iter()
        .filter(|draft| draft.sharing.sharing_type != SharingType::None);
    for (turn, draft) in shareable.enumerate() {
        let consumer = &consumers[turn % consumers.len()];
        let system = draft
            .provider_system
            .as_ref()
            .expect("generated interfaces name their system");
        let path = format!(
            "/x/{}/{system}/{}/records?page=1",
            draft.provider,
            draft.code.as_str().to_ascii_lowercase()
        );
        // Every third grant delivers personal items in plaintext; the others mask them.
        grant(consumer, draft, turn % 3 == 2, "GET", path).await?;
    }
    let operations = &consumers[1];
    for camera in cameras {
        let body = &bodies
            .iter()
            .find(|body| body.code == camera.provider)
            .expect("a provider");
        let system = synth_catalog::provider_system(body);
        let device = camera.device.as_ref().expect("cameras have device codes");
        let path = format!("/x/{}/{system}/video/{device}/play", camera.provider);
        grant(operations, camera, false, "POST", path).await?;
    }

    // The population register, masked, for the one-network platform.
    let persons = reference::services()
        .into_iter()
        .find(|service| service.code == "persons")
        .expect("persons");
    let resource = store
        .resource(&civitas_core::catalog::ResourceCode::parse(
            persons.resource,
        )?)
        .await?;
    let citizen = population.citizen(0);
    let path = format!(
        "/x/{}/{}/{}{}",
        persons.provider.organization,
        persons.provider.system,
        persons.code,
        persons.path.replace("{id_number}", citizen.id_number())
    );
    grant(&consumers[0], &resource.draft, false, "GET", path).await?;
    Ok(examples)
}

/// Working examples for the grants the reference city gave its scenario consumers.
async fn reference_grant_examples(
    store: &Store,
    population: &Population,
) -> anyhow::Result<HashMap<(String, String), Vec<GrantExample>>> {
    let services = reference::services();
    let example = population.examples(crate::Scenario::HousingFundRentalWithdrawal, 1);
    let citizen_id = example
        .approve
        .first()
        .map(|example| example.id_number.clone())
        .unwrap_or_else(|| population.citizen(0).id_number().to_owned());
    let newborn = population.examples(crate::Scenario::NewbornRegistration, 1);
    let certificate = newborn
        .approve
        .first()
        .and_then(|example| example.certificate_no.clone())
        .unwrap_or_default();
    let mut examples: HashMap<(String, String), Vec<GrantExample>> = HashMap::new();
    let grants = store
        .list_grants(
            &civitas_store::GrantFilter {
                valid_at: Some(Timestamp::now()),
                ..Default::default()
            },
            &civitas_store::PageRequest {
                limit: 1000,
                after: None,
            },
        )
        .await?;
    for grant in grants.items {
        let Some(service) = services
            .iter()
            .find(|service| service.resource == grant.resource.as_str())
        else {
            continue;
        };
        if service.path.contains("{certificate_no}") && certificate.is_empty() {
            continue;
        }
        let path = format!(
            "/x/{}/{}/{}{}",
            service.provider.organization,
            service.provider.system,
            service.code,
            service
                .path
                .replace("{id_number}", &citizen_id)
                .replace("{certificate_no}", &certificate)
        );
        let plaintext: Vec<String> = service
            .personal_items
            .iter()
            .filter(|item| {
                grant
                    .items
                    .iter()
                    .any(|granted| granted.code == **item && granted.plaintext)
            })
            .map(|item| (*item).to_owned())
            .collect();
        let masked = service
            .personal_items
            .iter()
            .filter(|item| !plaintext.iter().any(|p| p == *item))
            .filter(|item| grant.items.iter().any(|granted| granted.code == **item))
            .map(|item| (*item).to_owned())
            .collect();
        let resource = store.resource(&grant.resource).await?;
        examples
            .entry((
                grant.consumer.organization.to_string(),
                grant.consumer.system.to_string(),
            ))
            .or_default()
            .push(GrantExample {
                grant: grant.id.clone(),
                resource: grant.resource.to_string(),
                resource_name: resource.draft.name,
                method: "GET".into(),
                path,
                plaintext,
                masked,
            });
    }
    Ok(examples)
}

/// Points the generated interface and video services at `catalog` (it listens on a new port at
/// every start) and tells it which interfaces to answer for. Returns how many services it moved.
pub async fn point_catalog_services(
    store: &Store,
    catalog: &CatalogServices,
) -> anyhow::Result<usize> {
    let permit = Permit::internal("civitas:demo");
    let mut moved = 0;
    let mut interface_resources = Vec::new();
    for service in store.services(None).await? {
        if !service.active {
            continue;
        }
        let mut draft = service.draft.clone();
        if draft.code.as_str() == "video" && draft.upstream.ends_with("/video") {
            draft.upstream = catalog.video_upstream();
        } else if draft.upstream.contains("/interfaces/") {
            draft.upstream = catalog.interface_upstream(draft.resource.as_str());
            interface_resources.push(draft.resource.as_str().to_owned());
        } else {
            continue;
        }
        if draft != service.draft {
            store
                .put_service(&permit, &service.provider, &draft)
                .await?;
            moved += 1;
        }
    }
    let codes: Vec<&str> = interface_resources.iter().map(String::as_str).collect();
    let resources = store.resources_by_code(&codes).await?;
    catalog.add_interfaces(resources.into_iter().map(|resource| InterfaceSpec {
        resource: resource.draft.code.to_string(),
        items: resource.draft.items,
    }));
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_bodies_keep_their_codes() {
        let bodies = organizations(7);
        assert_eq!(bodies.len(), 127);
        for (credit_code, name, _) in reference::BODIES {
            let body = bodies.iter().find(|body| body.name == name).expect(name);
            assert_eq!(body.code.as_str(), credit_code);
        }
        let codes: HashSet<&str> = bodies.iter().map(|body| body.code.as_str()).collect();
        assert_eq!(codes.len(), 127, "credit codes stay distinct");
        for body in &bodies {
            if let Some(parent) = &body.parent {
                assert!(
                    codes.contains(parent.as_str()),
                    "{} has a parent in the city",
                    body.name
                );
            }
        }
    }

    #[test]
    fn user_names_are_valid_and_distinct() {
        let bodies = organizations(7);
        let names: HashSet<String> = bodies
            .iter()
            .map(|body| user_name(&body.name_en, "officer").to_string())
            .collect();
        assert_eq!(names.len(), bodies.len());
        assert_eq!(
            user_name("Nanjing Civil Affairs Bureau", "officer").to_string(),
            "nanjing-civil-affairs-bureau.officer"
        );
    }

    #[test]
    fn sizes_scale() {
        let full = CitySize::of(Scale::Full);
        assert_eq!(
            (
                full.directories,
                full.datasets,
                full.interfaces,
                full.videos
            ),
            (172_654, 920, 77, 168_642)
        );
        let small = CitySize::of(Scale::Small);
        assert_eq!(small.directories, 1_726);
        assert!(small.interfaces > reference::services().len() as u64);
    }
}
