//! The reference bodies of the demo city and everything the shipped application scenarios need:
//! the six providing departments and the data bureau with their systems, one interface resource
//! and one gateway service per provider service (with field mappings), the scenarios' consumer
//! systems with their grants, the city app's key, and the three shipped scenarios published.
//!
//! Installed through the store directly (the demo builder and the tests), with the permit of the
//! demo builder; every change is audited like any other.

use std::collections::HashMap;

use anyhow::Context;
use civitas_core::{
    Code, RegionCode, Uscc,
    access::{GrantedItem, SystemRef},
    authz::Permit,
    catalog::{
        DataType, InformationItem, MaskKind, OpenType, ResourceCode, ResourceDraft, ResourceKind,
        Sensitivity, Sharing, SharingMethod, SharingType, UpdateCycle,
    },
    registry::{KeyOwner, Level},
    service::{FieldMapping, ServiceDraft},
};
use civitas_store::{
    GrantTerms, NewApplication, NewOrganization, NewScenarioVersion, NewSystem, Store, StoreError,
    WriteMode,
};
use jiff::{Timestamp, ToSpan};

use crate::services::{Department, MUNICIPAL_DATA_BUREAU_CREDIT_CODE, ProviderServices};

/// The shipped scenario definitions, as published.
pub const SCENARIOS: [(&str, &str); 3] = [
    (
        "housing-fund-rental-withdrawal",
        include_str!("../../../scenarios/housing-fund-rental-withdrawal.yaml"),
    ),
    (
        "elderly-care-allowance",
        include_str!("../../../scenarios/elderly-care-allowance.yaml"),
    ),
    (
        "newborn-registration",
        include_str!("../../../scenarios/newborn-registration.yaml"),
    ),
];

/// What an installed reference city hands back.
#[derive(Debug, Clone)]
pub struct ReferenceCity {
    /// The city app: the front end of the shipped scenarios.
    pub city_app: SystemRef,
    /// Its system key (shown once; the demo writes it to demo-keys.json).
    pub city_app_key: String,
}

/// One item of a provider service: code, Chinese name, type, sensitivity, mask, JSON path.
type ItemSpec = (
    &'static str,
    &'static str,
    DataType,
    Sensitivity,
    Option<MaskKind>,
    &'static str,
);

struct ServiceSpec {
    department: Department,
    code: &'static str,
    resource: &'static str,
    name: &'static str,
    name_en: &'static str,
    path: &'static str,
    items: &'static [ItemSpec],
}

use DataType::{Boolean, Date, Decimal, String as Text};
use Sensitivity::{Internal, Personal, Public};

const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        department: Department::PublicSecurity,
        code: "persons",
        resource: "320100-B01-900001",
        name: "人口基础信息核验",
        name_en: "Population register: identity",
        path: "/persons/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            (
                "name",
                "姓名",
                Text,
                Personal,
                Some(MaskKind::Name),
                "$.name",
            ),
            ("gender", "性别", Text, Internal, None, "$.gender"),
            (
                "birth_date",
                "出生日期",
                Date,
                Personal,
                Some(MaskKind::Generic),
                "$.birth_date",
            ),
            ("status", "人口状态", Text, Internal, None, "$.status"),
            ("nationality", "国籍", Text, Public, None, "$.nationality"),
        ],
    },
    ServiceSpec {
        department: Department::PublicSecurity,
        code: "households",
        resource: "320100-B01-900002",
        name: "户籍登记信息",
        name_en: "Household registration",
        path: "/households/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            (
                "household_id",
                "户号",
                Text,
                Internal,
                None,
                "$.household_id",
            ),
            ("region", "户籍所在区", Text, Internal, None, "$.region"),
            (
                "address",
                "户籍地址",
                Text,
                Personal,
                Some(MaskKind::Address),
                "$.address",
            ),
            ("relation", "与户主关系", Text, Internal, None, "$.relation"),
            (
                "registered_on",
                "登记日期",
                Date,
                Internal,
                None,
                "$.registered_on",
            ),
        ],
    },
    ServiceSpec {
        department: Department::HumanResources,
        code: "insurance",
        resource: "320100-T03-900001",
        name: "社会保险参保缴费信息",
        name_en: "Social insurance enrolment and contributions",
        path: "/insurance/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            ("status", "参保状态", Text, Internal, None, "$.status"),
            ("city", "参保地", Text, Internal, None, "$.city"),
            ("employer", "参保单位", Text, Internal, None, "$.employer"),
            (
                "paid_month",
                "缴费月份",
                Text,
                Internal,
                None,
                "$.months[*].month",
            ),
            (
                "paid",
                "是否缴费",
                Boolean,
                Internal,
                None,
                "$.months[*].paid",
            ),
        ],
    },
    ServiceSpec {
        department: Department::HousingFund,
        code: "accounts",
        resource: "320100-D01-900001",
        name: "住房公积金账户及缴存信息",
        name_en: "Housing provident fund accounts and deposits",
        path: "/accounts/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            (
                "name",
                "姓名",
                Text,
                Personal,
                Some(MaskKind::Name),
                "$.name",
            ),
            (
                "account_no",
                "公积金账号",
                Text,
                Personal,
                Some(MaskKind::BankCard),
                "$.account_no",
            ),
            ("status", "账户状态", Text, Internal, None, "$.status"),
            ("balance", "账户余额", Decimal, Internal, None, "$.balance"),
            (
                "monthly_deposit",
                "月缴存额",
                Decimal,
                Internal,
                None,
                "$.monthly_deposit",
            ),
            (
                "deposit_month",
                "缴存月份",
                Text,
                Internal,
                None,
                "$.deposits[*].month",
            ),
            (
                "deposit_amount",
                "缴存金额",
                Decimal,
                Internal,
                None,
                "$.deposits[*].amount",
            ),
        ],
    },
    ServiceSpec {
        department: Department::NaturalResources,
        code: "properties",
        resource: "320100-B03-900001",
        name: "不动产登记信息",
        name_en: "Real estate registration",
        path: "/properties",
        items: &[
            (
                "owner",
                "权利人身份证号",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.owner",
            ),
            (
                "certificate_no",
                "不动产权证号",
                Text,
                Internal,
                None,
                "$.properties[*].certificate_no",
            ),
            (
                "region",
                "不动产所在区",
                Text,
                Internal,
                None,
                "$.properties[*].region",
            ),
            (
                "address",
                "坐落",
                Text,
                Personal,
                Some(MaskKind::Address),
                "$.properties[*].address",
            ),
            (
                "area_m2",
                "建筑面积",
                Decimal,
                Internal,
                None,
                "$.properties[*].area_m2",
            ),
            (
                "registered_on",
                "登记日期",
                Date,
                Internal,
                None,
                "$.properties[*].registered_on",
            ),
        ],
    },
    ServiceSpec {
        department: Department::CivilAffairs,
        code: "elderly",
        resource: "320100-T03-900002",
        name: "养老服务对象信息",
        name_en: "Elderly care register",
        path: "/elderly/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            (
                "receiving_allowance",
                "是否已享受高龄津贴",
                Boolean,
                Internal,
                None,
                "$.receiving_allowance",
            ),
            (
                "living_alone",
                "是否独居",
                Boolean,
                Personal,
                Some(MaskKind::Generic),
                "$.living_alone",
            ),
            (
                "disability_level",
                "残疾等级",
                Text,
                Personal,
                Some(MaskKind::Generic),
                "$.disability_level",
            ),
        ],
    },
    ServiceSpec {
        department: Department::CivilAffairs,
        code: "marriages",
        resource: "320100-B01-900003",
        name: "婚姻登记信息",
        name_en: "Marriage registration",
        path: "/marriages/{id_number}",
        items: &[
            (
                "id_number",
                "公民身份号码",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.id_number",
            ),
            (
                "status",
                "婚姻状况",
                Text,
                Personal,
                Some(MaskKind::Generic),
                "$.status",
            ),
            (
                "spouse_id_number",
                "配偶身份证号",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.spouse_id_number",
            ),
            (
                "registered_on",
                "登记日期",
                Date,
                Internal,
                None,
                "$.registered_on",
            ),
        ],
    },
    ServiceSpec {
        department: Department::Health,
        code: "births",
        resource: "320100-T02-900001",
        name: "出生医学证明信息",
        name_en: "Medical birth certificates",
        path: "/births/{certificate_no}",
        items: &[
            (
                "certificate_no",
                "出生医学证明编号",
                Text,
                Internal,
                None,
                "$.certificate_no",
            ),
            (
                "child_name",
                "新生儿姓名",
                Text,
                Personal,
                Some(MaskKind::Name),
                "$.child_name",
            ),
            ("gender", "性别", Text, Internal, None, "$.gender"),
            (
                "born_on",
                "出生日期",
                Date,
                Personal,
                Some(MaskKind::Generic),
                "$.born_on",
            ),
            ("hospital", "接生机构", Text, Public, None, "$.hospital"),
            (
                "mother_id_number",
                "母亲身份证号",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.mother_id_number",
            ),
            (
                "father_id_number",
                "父亲身份证号",
                Text,
                Personal,
                Some(MaskKind::CitizenId),
                "$.father_id_number",
            ),
        ],
    },
];

/// The organizations and their English names.
/// (credit code, Chinese name, English name) of the reference bodies: the demo city's
/// organizations with these names take these codes, which the scenario definitions name.
pub const BODIES: [(&str, &str, &str); 7] = [
    (
        "11320100013201004T",
        "南京市公安局",
        "Nanjing Public Security Bureau",
    ),
    (
        "11320100013201012M",
        "南京市人力资源和社会保障局",
        "Nanjing Human Resources and Social Security Bureau",
    ),
    (
        "11320100013201020G",
        "南京住房公积金管理中心",
        "Nanjing Housing Provident Fund Management Center",
    ),
    (
        "11320100013201039D",
        "南京市规划和自然资源局",
        "Nanjing Planning and Natural Resources Bureau",
    ),
    (
        "113201000132010478",
        "南京市民政局",
        "Nanjing Civil Affairs Bureau",
    ),
    (
        "113201000132010553",
        "南京市卫生健康委员会",
        "Nanjing Health Commission",
    ),
    (
        MUNICIPAL_DATA_BUREAU_CREDIT_CODE,
        "南京市数据局",
        "Nanjing Municipal Data Bureau",
    ),
];

/// A reference provider service, as the demo's key file describes it.
#[derive(Debug, Clone)]
pub struct ReferenceService {
    pub provider: SystemRef,
    pub code: &'static str,
    pub resource: &'static str,
    /// The path under the service, with `{id_number}` or `{certificate_no}` in it.
    pub path: &'static str,
    pub items: Vec<&'static str>,
    pub personal_items: Vec<&'static str>,
}

/// Every reference provider service.
pub fn services() -> Vec<ReferenceService> {
    SERVICES
        .iter()
        .map(|spec| ReferenceService {
            provider: SystemRef {
                organization: uscc(spec.department.credit_code()),
                system: code(spec.department.system_code()),
            },
            code: spec.code,
            resource: spec.resource,
            path: if spec.path == "/properties" {
                "/properties?owner={id_number}"
            } else {
                spec.path
            },
            items: spec.items.iter().map(|item| item.0).collect(),
            personal_items: spec
                .items
                .iter()
                .filter(|item| item.3 == Personal)
                .map(|item| item.0)
                .collect(),
        })
        .collect()
}

fn code(text: &str) -> Code {
    Code::parse(text).expect("a valid code")
}

fn uscc(text: &str) -> Uscc {
    Uscc::parse(text).expect("a valid credit code")
}

/// Creates what does not exist yet, so that a second install (a demo restart) is cheap.
async fn ensure_organization(
    store: &Store,
    permit: &Permit,
    code_text: &str,
    name: &str,
    name_en: &str,
) -> anyhow::Result<()> {
    let new = NewOrganization {
        code: uscc(code_text),
        name: name.to_owned(),
        name_en: Some(name_en.to_owned()),
        level: Level::Municipal,
        region: RegionCode::parse("320100").expect("Nanjing"),
        parent: None,
    };
    match store.create_organization(permit, &new).await {
        Ok(_) | Err(StoreError::Duplicate { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn ensure_system(
    store: &Store,
    permit: &Permit,
    organization: &str,
    system: &str,
    name: &str,
    consumes: bool,
    provides: bool,
) -> anyhow::Result<()> {
    let new = NewSystem {
        code: code(system),
        name: name.to_owned(),
        description: String::new(),
        consumes,
        provides,
    };
    match store.create_system(permit, &uscc(organization), &new).await {
        Ok(_) | Err(StoreError::Duplicate { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

fn resource_draft(spec: &ServiceSpec) -> ResourceDraft {
    let resource_code = ResourceCode::parse(spec.resource).expect("a valid resource code");
    ResourceDraft {
        classification: resource_code.classification(),
        code: resource_code,
        kind: ResourceKind::Interface,
        name: spec.name.to_owned(),
        name_en: Some(spec.name_en.to_owned()),
        provider: uscc(spec.department.credit_code()),
        provider_system: Some(code(spec.department.system_code())),
        summary: format!(
            "{}的{}接口，经数据共享交换平台按授权调用。",
            spec.department.body_name(),
            spec.name
        ),
        format: "json".into(),
        items: spec
            .items
            .iter()
            .map(
                |(code, name, data_type, sensitivity, mask, _)| InformationItem {
                    code: (*code).to_owned(),
                    name: (*name).to_owned(),
                    data_type: *data_type,
                    sensitivity: *sensitivity,
                    mask: *mask,
                },
            )
            .collect(),
        sharing: Sharing {
            sharing_type: SharingType::Conditional,
            conditions: Some("仅用于经授权的政务服务事项，须说明用途与法律依据".into()),
            method: Some(SharingMethod::Interface),
        },
        open_type: OpenType::Closed,
        update_cycle: UpdateCycle::Realtime,
        published_on: None,
        related: Vec::new(),
        tags: vec!["政务服务".into(), "一件事".into()],
        origin_node: None,
        device: None,
    }
}

/// Points every reference service at the provider services' current addresses (they listen on
/// new ports at every start).
pub async fn point_services(store: &Store, services: &ProviderServices) -> anyhow::Result<()> {
    let permit = Permit::internal("civitas:demo");
    for spec in SERVICES {
        let provider = SystemRef {
            organization: uscc(spec.department.credit_code()),
            system: code(spec.department.system_code()),
        };
        let pattern = spec.path.to_owned();
        let draft = ServiceDraft {
            code: code(spec.code),
            resource: ResourceCode::parse(spec.resource).expect("valid"),
            upstream: services.base_url(spec.department),
            methods: vec!["GET".into()],
            paths: vec![
                pattern
                    .split('?')
                    .next()
                    .unwrap_or_default()
                    .replace("{id_number}", "{id}")
                    .replace("{certificate_no}", "{id}"),
            ],
            fields: spec
                .items
                .iter()
                .map(|(item, _, _, _, _, path)| FieldMapping {
                    item: (*item).to_owned(),
                    path: (*path).to_owned(),
                })
                .collect(),
            timeout_ms: 3000,
        };
        store.put_service(&permit, &provider, &draft).await?;
    }
    Ok(())
}

/// The scenarios' consumer systems and the services each calls.
fn scenario_consumers() -> Vec<(SystemRef, &'static str, Vec<&'static str>)> {
    vec![
        (
            SystemRef {
                organization: uscc("11320100013201020G"),
                system: code("rental-withdrawal"),
            },
            "住房公积金租房提取",
            vec![
                "persons",
                "households",
                "insurance",
                "properties",
                "accounts",
            ],
        ),
        (
            SystemRef {
                organization: uscc("113201000132010478"),
                system: code("elderly-allowance"),
            },
            "高龄津贴发放",
            vec!["persons", "households", "elderly"],
        ),
        (
            SystemRef {
                organization: uscc("11320100013201004T"),
                system: code("newborn-registration"),
            },
            "出生一件事",
            vec!["births", "persons", "marriages", "households"],
        ),
    ]
}

/// Installs the reference city into `store`: what already exists is kept, the services are
/// pointed at `services`, and the city app gets a new key.
pub async fn install(store: &Store, services: &ProviderServices) -> anyhow::Result<ReferenceCity> {
    let permit = Permit::internal("civitas:demo");
    for (credit_code, name, name_en) in BODIES {
        ensure_organization(store, &permit, credit_code, name, name_en).await?;
    }
    for department in Department::ALL {
        ensure_system(
            store,
            &permit,
            department.credit_code(),
            department.system_code(),
            &format!("{}业务系统", department.body_name()),
            false,
            true,
        )
        .await?;
    }
    ensure_system(
        store,
        &permit,
        MUNICIPAL_DATA_BUREAU_CREDIT_CODE,
        "city-app",
        "我的南京 App",
        true,
        false,
    )
    .await?;
    for (consumer, name, _) in scenario_consumers() {
        ensure_system(
            store,
            &permit,
            consumer.organization.as_str(),
            consumer.system.as_str(),
            name,
            true,
            false,
        )
        .await?;
    }
    let drafts: Vec<ResourceDraft> = SERVICES.iter().map(resource_draft).collect();
    store
        .write_resources(&permit, &drafts, WriteMode::Upsert)
        .await?;
    point_services(store, services).await?;

    // Grants: each scenario consumer reads every item of the services it calls, in plaintext,
    // because its rules compare names, ID numbers and dates.
    let now = Timestamp::now();
    let resource_of: HashMap<&str, &ServiceSpec> =
        SERVICES.iter().map(|spec| (spec.code, spec)).collect();
    for (consumer, _, calls) in scenario_consumers() {
        let existing = store
            .list_grants(
                &civitas_store::GrantFilter {
                    consumer_organization: Some(consumer.organization.clone()),
                    consumer_system: Some(consumer.system.clone()),
                    valid_at: Some(now),
                    ..Default::default()
                },
                &civitas_store::PageRequest {
                    limit: 1000,
                    after: None,
                },
            )
            .await?;
        for service in calls {
            let spec = resource_of[service];
            if existing
                .items
                .iter()
                .any(|grant| grant.resource.as_str() == spec.resource)
            {
                continue;
            }
            let items: Vec<String> = spec.items.iter().map(|item| item.0.to_owned()).collect();
            let application = NewApplication {
                id: format!("demo-{}-{}", consumer.system, spec.code),
                consumer: consumer.clone(),
                resource: ResourceCode::parse(spec.resource)?,
                provider: uscc(spec.department.credit_code()),
                items: items.clone(),
                purpose: "应用场景核验：按场景定义调用，逐次记入数据链".into(),
                legal_basis: "《江苏省公共数据管理办法》".into(),
                valid_days: 3650,
                expected_calls_per_day: Some(100_000),
                applicant: "civitas:demo".into(),
            };
            let terms = GrantTerms {
                id: format!("demo-grant-{}-{}", consumer.system, spec.code),
                items: items
                    .iter()
                    .map(|code| GrantedItem {
                        code: code.clone(),
                        plaintext: true,
                    })
                    .collect(),
                valid_from: now,
                valid_until: now + (3650 * 24).hours(),
                calls_per_day: None,
                requests_per_second: None,
            };
            match store.create_application(&permit, &application, None).await {
                Ok(_) => {
                    store
                        .approve_application(&permit, &application.id, &terms, Some("演示城市"))
                        .await?;
                }
                Err(StoreError::Duplicate { .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    // The shipped scenarios, published when absent.
    for (code, text) in SCENARIOS {
        if store.scenario_version(code, None).await.is_ok() {
            continue;
        }
        let definition = civitas_scenario::Definition::from_yaml(text)
            .with_context(|| format!("scenario {code}"))?;
        civitas_scenario::validate(&definition, &|_| true)
            .map_err(|error| anyhow::anyhow!("scenario {code}: {error}"))?;
        store
            .publish_scenario(
                &permit,
                &NewScenarioVersion {
                    code: code.to_owned(),
                    name: definition.name.clone(),
                    format: "yaml".into(),
                    definition: text.to_owned(),
                    consumer: definition.consumer.to_string(),
                    front_end: definition.front_end.to_string(),
                },
            )
            .await?;
    }

    // The city app's key.
    let city_app = SystemRef {
        organization: uscc(MUNICIPAL_DATA_BUREAU_CREDIT_CODE),
        system: code("city-app"),
    };
    let issued = civitas_api::auth::issue_key(
        KeyOwner::System {
            organization: city_app.organization.clone(),
            system: city_app.system.clone(),
        },
        "demo".into(),
        None,
    );
    store.create_api_key(&permit, &issued.record, None).await?;
    Ok(ReferenceCity {
        city_app,
        city_app_key: issued.secret,
    })
}

#[cfg(test)]
mod tests {
    use civitas_core::service::find_overlap;

    use super::*;

    /// The gateway delivers a mapped field whole, so no shipped service may map a field inside
    /// another's (registration through the API refuses that; the demo writes to the store).
    #[test]
    fn no_reference_service_maps_a_field_inside_another() {
        for spec in SERVICES {
            let fields: Vec<FieldMapping> = spec
                .items
                .iter()
                .map(|(item, _, _, _, _, path)| FieldMapping {
                    item: (*item).to_owned(),
                    path: (*path).to_owned(),
                })
                .collect();
            assert_eq!(find_overlap(&fields), None, "{}", spec.code);
        }
    }
}
