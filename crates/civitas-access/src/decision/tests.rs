use civitas_core::{Code, RegionCode, Uscc, registry::Level};
use jiff::{Timestamp, ToSpan};

use super::*;
use crate::policy::PlatformPolicies;

const NOW: &str = "2026-05-12T02:00:00Z";

fn now() -> Timestamp {
    NOW.parse().unwrap()
}

fn days(count: i64) -> jiff::Span {
    (count * 24).hours()
}

fn organization(number: u32, region: &str) -> Uscc {
    Uscc::from_parts('1', '1', region, &format!("{number:08}")).unwrap()
}

fn system(number: u32, region: &str, code: &str) -> SystemRef {
    SystemRef {
        organization: organization(number, region),
        system: Code::parse(code).unwrap(),
    }
}

fn resource_code(code: &str) -> ResourceCode {
    ResourceCode::parse(code).unwrap()
}

/// A district office of Xuanwu, inside Nanjing.
fn xuanwu_consumer() -> ConsumerFacts {
    ConsumerFacts {
        system: system(1, "320102", "case-desk"),
        region: RegionCode::parse("320102").unwrap(),
        level: Level::District,
    }
}

/// A provincial office in Shanghai, outside the city.
fn shanghai_consumer() -> ConsumerFacts {
    ConsumerFacts {
        system: system(2, "310000", "survey"),
        region: RegionCode::parse("310000").unwrap(),
        level: Level::Provincial,
    }
}

fn item(code: &str, sensitivity: Sensitivity, mask_kind: Option<MaskKind>) -> ItemPolicy {
    ItemPolicy {
        code: code.to_owned(),
        sensitivity,
        mask_kind,
    }
}

/// The household register: personal, sensitive, internal and public items.
fn household_register() -> ResourceFacts {
    ResourceFacts {
        code: resource_code("320100-B01-000001"),
        kind: ResourceKind::Dataset,
        provider: organization(9, "320100"),
        provider_region: RegionCode::parse("320100").unwrap(),
        items: vec![
            item(
                "id_number",
                Sensitivity::Personal,
                Some(MaskKind::CitizenId),
            ),
            item("name", Sensitivity::Personal, Some(MaskKind::Name)),
            item("address", Sensitivity::Personal, None),
            item("household_type", Sensitivity::Internal, None),
            item("district", Sensitivity::Public, None),
            item("license_no", Sensitivity::Sensitive, None),
        ],
    }
}

fn camera_stream() -> ResourceFacts {
    ResourceFacts {
        code: resource_code("320102-T01-000002"),
        kind: ResourceKind::Video,
        provider: organization(8, "320102"),
        provider_region: RegionCode::parse("320102").unwrap(),
        items: Vec::new(),
    }
}

fn granted(code: &str) -> GrantedItem {
    GrantedItem {
        code: code.to_owned(),
        plaintext: false,
    }
}

fn plaintext(code: &str) -> GrantedItem {
    GrantedItem {
        code: code.to_owned(),
        plaintext: true,
    }
}

fn grant(
    id: &str,
    consumer: &ConsumerFacts,
    resource: &ResourceFacts,
    items: Vec<GrantedItem>,
) -> Grant {
    Grant {
        id: id.to_owned(),
        application: None,
        consumer: consumer.system.clone(),
        resource: resource.code.clone(),
        provider: resource.provider.clone(),
        items,
        valid_from: now() - days(30),
        valid_until: now() + days(335),
        calls_per_day: None,
        requests_per_second: None,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        created_at: now() - days(31),
    }
}

fn request(consumer: ConsumerFacts, resource: ResourceFacts) -> DecisionRequest {
    DecisionRequest {
        consumer,
        resource,
        requested_items: None,
        at: now(),
        local_time: LocalTime::new(10, 2).unwrap(),
        bulk: false,
        expected_rows: 0,
    }
}

const PERSONAL_STAYS_IN_CITY: &str = "forbid (principal, action, resource)
when { !principal.in_city && !context.personal_items.isEmpty() };";

const NO_BULK_PERSONAL_OFF_HOURS: &str =
    "forbid (principal, action == Civitas::Action::\"read\", resource)
when {
  context.bulk && !context.personal_items.isEmpty() &&
  (context.hour < 8 || context.hour >= 18 || context.weekday >= 6)
};";

const VIDEO_IN_CITY_ONLY: &str = "forbid (principal, action == Civitas::Action::\"play\", resource)
unless { principal.in_city };";

/// Multiplies to overflow for huge row counts, so that evaluation fails at run time.
const OVERFLOWS_ON_HUGE_EXPORTS: &str = "forbid (principal, action, resource)
when { context.expected_rows * 1000000000000 < 0 };";

fn nanjing_policies() -> PlatformPolicies {
    PlatformPolicies::with_policies(
        RegionCode::parse("320100").unwrap(),
        [
            ("personal-stays-in-city", PERSONAL_STAYS_IN_CITY),
            ("no-bulk-personal-off-hours", NO_BULK_PERSONAL_OFF_HOURS),
            ("video-in-city-only", VIDEO_IN_CITY_ONLY),
            ("overflows-on-huge-exports", OVERFLOWS_ON_HUGE_EXPORTS),
        ],
    )
    .unwrap()
}

fn allow(grant_id: &str, deliver: &[&str], mask: &[(&str, MaskKind)], drop: &[&str]) -> Decision {
    Decision::Allow {
        grant_id: grant_id.to_owned(),
        rule: format!("grant:{grant_id}"),
        deliver: deliver.iter().map(|code| code.to_string()).collect(),
        mask: mask
            .iter()
            .map(|(code, kind)| MaskedItem {
                code: code.to_string(),
                kind: *kind,
            })
            .collect(),
        drop: drop.iter().map(|code| code.to_string()).collect(),
    }
}

fn deny(reason: DenyReason, rule: &str) -> Decision {
    Decision::Deny {
        reason,
        rule: rule.to_owned(),
    }
}

struct Case {
    name: &'static str,
    grants: Vec<Grant>,
    request: DecisionRequest,
    expected: Decision,
}

fn check(case: Case) {
    let index = GrantIndex::from_grants(case.grants).unwrap();
    let policies = nanjing_policies();
    let decision = decide(&case.request, &index, &policies);
    assert_eq!(decision, case.expected, "case {}", case.name);
    // An explanation never disagrees with the decision it explains.
    let explanation = explain(&case.request, &index, &policies);
    assert_eq!(
        explanation.decision, case.expected,
        "explained case {}",
        case.name
    );
}

#[test]
fn decisions() {
    let xuanwu = xuanwu_consumer();
    let shanghai = shanghai_consumer();
    let register = household_register();
    let all_items = || {
        vec![
            granted("id_number"),
            granted("name"),
            granted("address"),
            granted("household_type"),
            granted("district"),
            granted("license_no"),
        ]
    };
    let expired = Grant {
        valid_from: now() - days(400),
        valid_until: now() - days(35),
        ..grant("g-old", &xuanwu, &register, all_items())
    };
    let future = Grant {
        valid_from: now() + days(10),
        ..grant("g-future", &xuanwu, &register, all_items())
    };
    let revoked = Grant {
        revoked_at: Some(now() - 1.hour()),
        ..grant("g-revoked", &xuanwu, &register, all_items())
    };
    let revocation_scheduled = Grant {
        revoked_at: Some(now() + 1.hour()),
        ..grant("g-ending", &xuanwu, &register, vec![granted("district")])
    };
    let with_items = |items: &[&str]| DecisionRequest {
        requested_items: Some(items.iter().map(|code| code.to_string()).collect()),
        ..request(xuanwu.clone(), register.clone())
    };

    let cases = vec![
        Case {
            name: "no grant",
            grants: vec![grant("g-other", &shanghai, &register, all_items())],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::NoGrant, "no_grant"),
        },
        Case {
            name: "expired",
            grants: vec![expired.clone()],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::GrantExpired, "grant_expired:g-old"),
        },
        Case {
            name: "not yet valid",
            grants: vec![future.clone()],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::GrantNotYetValid, "grant_not_yet_valid:g-future"),
        },
        Case {
            name: "revoked",
            grants: vec![revoked.clone()],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::GrantRevoked, "grant_revoked:g-revoked"),
        },
        Case {
            name: "of several invalid grants the most recent is named",
            grants: vec![expired.clone(), future.clone()],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::GrantNotYetValid, "grant_not_yet_valid:g-future"),
        },
        Case {
            name: "a revocation scheduled ahead does not stop the grant yet",
            grants: vec![revocation_scheduled],
            request: request(xuanwu.clone(), register.clone()),
            expected: allow(
                "g-ending",
                &["district"],
                &[],
                &[
                    "id_number",
                    "name",
                    "address",
                    "household_type",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "items the grant does not cover are dropped; personal ones masked",
            grants: vec![grant(
                "g-1",
                &xuanwu,
                &register,
                vec![granted("name"), granted("district")],
            )],
            request: request(xuanwu.clone(), register.clone()),
            expected: allow(
                "g-1",
                &["district"],
                &[("name", MaskKind::Name)],
                &["id_number", "address", "household_type", "license_no"],
            ),
        },
        Case {
            name: "a personal item without a mask kind is masked as generic",
            grants: vec![grant("g-1", &xuanwu, &register, vec![granted("address")])],
            request: request(xuanwu.clone(), register.clone()),
            expected: allow(
                "g-1",
                &[],
                &[("address", MaskKind::Generic)],
                &[
                    "id_number",
                    "name",
                    "household_type",
                    "district",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "plaintext personal items are delivered as they are",
            grants: vec![grant(
                "g-1",
                &xuanwu,
                &register,
                vec![
                    plaintext("id_number"),
                    granted("name"),
                    plaintext("district"),
                ],
            )],
            request: with_items(&["id_number", "name", "district"]),
            expected: allow(
                "g-1",
                &["id_number", "district"],
                &[("name", MaskKind::Name)],
                &["address", "household_type", "license_no"],
            ),
        },
        Case {
            name: "requested items not granted or unknown are dropped",
            grants: vec![grant(
                "g-1",
                &xuanwu,
                &register,
                vec![granted("district"), granted("name")],
            )],
            request: with_items(&["district", "address", "no_such_item"]),
            expected: allow(
                "g-1",
                &["district"],
                &[],
                &[
                    "id_number",
                    "name",
                    "address",
                    "household_type",
                    "license_no",
                    "no_such_item",
                ],
            ),
        },
        Case {
            name: "nothing requested is granted",
            grants: vec![grant("g-1", &xuanwu, &register, vec![granted("district")])],
            request: with_items(&["address", "id_number"]),
            expected: deny(DenyReason::ItemsNotGranted, "items_not_granted"),
        },
        Case {
            name: "a grant covering no item of the resource",
            grants: vec![grant(
                "g-1",
                &xuanwu,
                &register,
                vec![granted("retired_item")],
            )],
            request: request(xuanwu.clone(), register.clone()),
            expected: deny(DenyReason::ItemsNotGranted, "items_not_granted"),
        },
        Case {
            name: "the widest valid grant wins",
            grants: vec![
                grant("g-narrow", &xuanwu, &register, vec![granted("district")]),
                grant(
                    "g-wide",
                    &xuanwu,
                    &register,
                    vec![granted("district"), granted("household_type")],
                ),
                expired.clone(),
            ],
            request: request(xuanwu.clone(), register.clone()),
            expected: allow(
                "g-wide",
                &["household_type", "district"],
                &[],
                &["id_number", "name", "address", "license_no"],
            ),
        },
        Case {
            name: "between equally wide grants, plaintext wins",
            grants: vec![
                grant("g-a", &xuanwu, &register, vec![granted("name")]),
                grant("g-b", &xuanwu, &register, vec![plaintext("name")]),
            ],
            request: with_items(&["name"]),
            expected: allow(
                "g-b",
                &["name"],
                &[],
                &[
                    "id_number",
                    "address",
                    "household_type",
                    "district",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "an expired wide grant loses to a valid narrow one",
            grants: vec![
                expired.clone(),
                grant("g-narrow", &xuanwu, &register, vec![granted("district")]),
            ],
            request: request(xuanwu.clone(), register.clone()),
            expected: allow(
                "g-narrow",
                &["district"],
                &[],
                &[
                    "id_number",
                    "name",
                    "address",
                    "household_type",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "a forbid policy names its id",
            grants: vec![grant(
                "g-sh",
                &shanghai,
                &register,
                vec![granted("name"), granted("district")],
            )],
            request: request(shanghai.clone(), register.clone()),
            expected: deny(
                DenyReason::ForbiddenByPolicy,
                "policy:personal-stays-in-city",
            ),
        },
        Case {
            name: "the same consumer may read what is not personal",
            grants: vec![grant(
                "g-sh",
                &shanghai,
                &register,
                vec![granted("name"), granted("district")],
            )],
            request: DecisionRequest {
                requested_items: Some(vec!["district".to_owned()]),
                ..request(shanghai.clone(), register.clone())
            },
            expected: allow(
                "g-sh",
                &["district"],
                &[],
                &[
                    "id_number",
                    "name",
                    "address",
                    "household_type",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "bulk personal reads at night are forbidden",
            grants: vec![grant("g-1", &xuanwu, &register, vec![granted("name")])],
            request: DecisionRequest {
                bulk: true,
                local_time: LocalTime::new(22, 3).unwrap(),
                ..request(xuanwu.clone(), register.clone())
            },
            expected: deny(
                DenyReason::ForbiddenByPolicy,
                "policy:no-bulk-personal-off-hours",
            ),
        },
        Case {
            name: "bulk personal reads in working hours are allowed",
            grants: vec![grant("g-1", &xuanwu, &register, vec![granted("name")])],
            request: DecisionRequest {
                bulk: true,
                local_time: LocalTime::new(9, 3).unwrap(),
                ..request(xuanwu.clone(), register.clone())
            },
            expected: allow(
                "g-1",
                &[],
                &[("name", MaskKind::Name)],
                &[
                    "id_number",
                    "address",
                    "household_type",
                    "district",
                    "license_no",
                ],
            ),
        },
        Case {
            name: "when several policies forbid, the smallest id is named",
            grants: vec![grant("g-sh", &shanghai, &register, vec![granted("name")])],
            request: DecisionRequest {
                bulk: true,
                local_time: LocalTime::new(23, 6).unwrap(),
                ..request(shanghai.clone(), register.clone())
            },
            expected: deny(
                DenyReason::ForbiddenByPolicy,
                "policy:no-bulk-personal-off-hours",
            ),
        },
        Case {
            name: "a policy that fails to evaluate refuses the exchange",
            grants: vec![grant("g-1", &xuanwu, &register, vec![granted("district")])],
            request: DecisionRequest {
                expected_rows: 10_000_000_000,
                ..request(xuanwu.clone(), register.clone())
            },
            expected: deny(DenyReason::PolicyFailed, "policy:overflows-on-huge-exports"),
        },
        Case {
            name: "a video without items is granted whole",
            grants: vec![grant("g-video", &xuanwu, &camera_stream(), Vec::new())],
            request: request(xuanwu.clone(), camera_stream()),
            expected: allow("g-video", &[], &[], &[]),
        },
        Case {
            name: "play-only policies apply to video",
            grants: vec![grant("g-video", &shanghai, &camera_stream(), Vec::new())],
            request: request(shanghai.clone(), camera_stream()),
            expected: deny(DenyReason::ForbiddenByPolicy, "policy:video-in-city-only"),
        },
    ];
    for case in cases {
        check(case);
    }
}

#[test]
fn without_platform_policies_grants_alone_decide() {
    let shanghai = shanghai_consumer();
    let register = household_register();
    let index = GrantIndex::from_grants(vec![grant(
        "g-sh",
        &shanghai,
        &register,
        vec![granted("name")],
    )])
    .unwrap();
    let policies = PlatformPolicies::new(RegionCode::parse("320100").unwrap());
    let decision = decide(&request(shanghai, register), &index, &policies);
    assert_eq!(decision.rule(), "grant:g-sh");
}

#[test]
fn explanation_records_every_step() {
    let xuanwu = xuanwu_consumer();
    let register = household_register();
    let index = GrantIndex::from_grants(vec![
        grant("g-narrow", &xuanwu, &register, vec![granted("district")]),
        grant(
            "g-wide",
            &xuanwu,
            &register,
            vec![granted("district"), granted("name")],
        ),
        Grant {
            revoked_at: Some(now() - days(1)),
            ..grant(
                "g-revoked",
                &xuanwu,
                &register,
                vec![plaintext("id_number")],
            )
        },
    ])
    .unwrap();
    let policies = nanjing_policies();
    let explanation = explain(&request(xuanwu, register), &index, &policies);

    assert_eq!(explanation.decision.rule(), "grant:g-wide");
    let candidates: Vec<(&str, GrantStatus, bool)> = explanation
        .grant_candidates
        .iter()
        .map(|candidate| {
            (
                candidate.grant_id.as_str(),
                candidate.status,
                candidate.chosen,
            )
        })
        .collect();
    assert_eq!(
        candidates,
        [
            ("g-narrow", GrantStatus::Valid, false),
            ("g-revoked", GrantStatus::Revoked, false),
            ("g-wide", GrantStatus::Valid, true),
        ]
    );
    let name = explanation
        .items
        .iter()
        .find(|step| step.code == "name")
        .unwrap();
    assert_eq!(name.outcome, ItemOutcome::Mask);
    assert_eq!(name.mask_kind, Some(MaskKind::Name));
    let policy_ids: Vec<&str> = explanation
        .policies
        .iter()
        .map(|step| step.policy_id.as_str())
        .collect();
    assert_eq!(
        policy_ids,
        [
            "no-bulk-personal-off-hours",
            "overflows-on-huge-exports",
            "personal-stays-in-city",
            "video-in-city-only"
        ]
    );
    assert!(explanation.policies.iter().all(|step| !step.matched));
    let video_rule = explanation
        .policies
        .iter()
        .find(|step| step.policy_id == "video-in-city-only")
        .unwrap();
    assert!(!video_rule.applies, "a play rule does not apply to a read");
    assert!(!explanation.steps.is_empty());

    let json = serde_json::to_value(&explanation).unwrap();
    assert_eq!(json["decision"]["outcome"], "allow");
    assert_eq!(json["decision"]["mask"][0]["kind"], "name");
    assert_eq!(json["grant_candidates"][1]["status"], "revoked");
    let back: Explanation = serde_json::from_value(json).unwrap();
    assert_eq!(back, explanation);
}

#[test]
fn explanation_names_the_matching_policy() {
    let shanghai = shanghai_consumer();
    let register = household_register();
    let index = GrantIndex::from_grants(vec![grant(
        "g-sh",
        &shanghai,
        &register,
        vec![granted("name")],
    )])
    .unwrap();
    let explanation = explain(&request(shanghai, register), &index, &nanjing_policies());
    assert_eq!(explanation.decision.rule(), "policy:personal-stays-in-city");
    let matched: Vec<&str> = explanation
        .policies
        .iter()
        .filter(|step| step.matched)
        .map(|step| step.policy_id.as_str())
        .collect();
    assert_eq!(matched, ["personal-stays-in-city"]);
}

#[test]
fn index_keeps_up_with_changes() {
    let xuanwu = xuanwu_consumer();
    let shanghai = shanghai_consumer();
    let register = household_register();
    let video = camera_stream();
    let mut index = GrantIndex::from_grants(vec![
        grant("g-1", &xuanwu, &register, vec![granted("name")]),
        grant("g-2", &xuanwu, &video, Vec::new()),
        grant("g-3", &shanghai, &register, vec![granted("district")]),
    ])
    .unwrap();
    assert_eq!(index.len(), 3);
    assert_eq!(index.grants_for(&xuanwu.system, &register.code).count(), 1);

    let ids = |grants: Vec<&Grant>| {
        grants
            .iter()
            .map(|grant| grant.id.clone())
            .collect::<Vec<_>>()
    };
    // Ordered by resource code: the register's 320100-… sorts before the camera's 320102-….
    assert_eq!(
        ids(index.readable_by(&xuanwu.system, now())),
        ["g-1", "g-2"]
    );
    // Ordered by consumer: the Shanghai office's code sorts first.
    assert_eq!(ids(index.readers_of(&register.code, now())), ["g-3", "g-1"]);

    // Replacing a grant may move it to another consumer.
    let moved = grant("g-1", &shanghai, &register, vec![granted("name")]);
    let replaced = index.upsert(moved).unwrap().unwrap();
    assert_eq!(replaced.consumer, xuanwu.system);
    assert_eq!(index.len(), 3);
    assert_eq!(index.grants_for(&xuanwu.system, &register.code).count(), 0);
    assert_eq!(
        index.grants_for(&shanghai.system, &register.code).count(),
        2
    );

    let revoked = index.revoke("g-3", now()).unwrap();
    assert_eq!(revoked.revoked_at, Some(now()));
    // Revoking again later keeps the earlier time.
    index.revoke("g-3", now() + days(1)).unwrap();
    assert_eq!(index.get("g-3").unwrap().revoked_at, Some(now()));
    assert_eq!(ids(index.readers_of(&register.code, now())), ["g-1"]);
    assert_eq!(
        index.revoke("g-9", now()).unwrap_err(),
        GrantError::UnknownGrant {
            id: "g-9".to_owned()
        }
    );

    assert!(index.remove("g-2").is_some());
    assert!(index.remove("g-2").is_none());
    assert_eq!(index.readable_by(&xuanwu.system, now()).len(), 0);
    // A freed slot is reused.
    index
        .upsert(grant("g-4", &xuanwu, &video, Vec::new()))
        .unwrap();
    assert_eq!(index.len(), 3);
    assert_eq!(index.iter().count(), 3);
}

#[test]
fn index_rejects_bad_grants() {
    let xuanwu = xuanwu_consumer();
    let register = household_register();
    let good = grant("g-1", &xuanwu, &register, vec![granted("name")]);
    let table: Vec<(Vec<Grant>, GrantError)> = vec![
        (
            vec![good.clone(), good.clone()],
            GrantError::DuplicateId {
                id: "g-1".to_owned(),
            },
        ),
        (
            vec![Grant {
                valid_until: good.valid_from,
                ..good.clone()
            }],
            GrantError::EmptyValidity {
                id: "g-1".to_owned(),
            },
        ),
        (
            vec![Grant {
                items: vec![granted("name"), plaintext("name")],
                ..good.clone()
            }],
            GrantError::DuplicateItem {
                id: "g-1".to_owned(),
                item: "name".to_owned(),
            },
        ),
        (
            vec![Grant {
                id: String::new(),
                ..good.clone()
            }],
            GrantError::EmptyId,
        ),
    ];
    for (grants, expected) in table {
        assert_eq!(GrantIndex::from_grants(grants).unwrap_err(), expected);
    }
}

#[test]
fn local_time_is_validated_and_computed_from_an_offset() {
    assert!(LocalTime::new(24, 1).is_err());
    assert!(LocalTime::new(0, 0).is_err());
    assert!(LocalTime::new(0, 8).is_err());
    // 2026-05-12T02:00Z is 10:00 on Tuesday in China.
    let local = LocalTime::at_offset(now(), jiff::tz::offset(8));
    assert_eq!((local.hour(), local.weekday()), (10, 2));
    let late = LocalTime::at_offset("2026-05-16T17:30:00Z".parse().unwrap(), jiff::tz::offset(8));
    assert_eq!((late.hour(), late.weekday()), (1, 7));
    let parsed: Result<LocalTime, _> = serde_json::from_str(r#"{"hour": 25, "weekday": 1}"#);
    assert!(parsed.is_err());
}

#[test]
fn requests_and_grants_round_trip_through_json() {
    let xuanwu = xuanwu_consumer();
    let register = household_register();
    let request = request(xuanwu.clone(), register.clone());
    let json = serde_json::to_string(&request).unwrap();
    assert_eq!(
        serde_json::from_str::<DecisionRequest>(&json).unwrap(),
        request
    );

    // Grants arrive as the store and the API write them: the core type's JSON.
    let grant_json = serde_json::json!({
        "id": "g-1",
        "consumer": {"organization": xuanwu.system.organization.as_str(), "system": "case-desk"},
        "resource": "320100-B01-000001",
        "provider": register.provider.as_str(),
        "items": [{"code": "name"}, {"code": "id_number", "plaintext": true}],
        "valid_from": "2026-01-01T00:00:00Z",
        "valid_until": "2027-01-01T00:00:00Z",
        "created_at": "2025-12-30T00:00:00Z"
    });
    let grant: Grant = serde_json::from_value(grant_json).unwrap();
    assert!(!grant.items[0].plaintext, "plaintext defaults to false");
    assert!(grant.items[1].plaintext);
    assert_eq!(grant.revoked_at, None);
    assert_eq!(grant.resource, register.code);
    assert_eq!(
        granted_item(&grant, "id_number").map(|item| item.plaintext),
        Some(true)
    );
    assert_eq!(granted_item(&grant, "address"), None);

    assert_eq!(
        xuanwu.system.to_string(),
        format!("{}/case-desk", xuanwu.system.organization)
    );
}

#[test]
fn grant_status_follows_the_period_and_revocation() {
    let xuanwu = xuanwu_consumer();
    let register = household_register();
    let grant = grant("g-1", &xuanwu, &register, vec![granted("name")]);
    assert_eq!(grant_status(&grant, now()), GrantStatus::Valid);
    assert_eq!(
        grant_status(&grant, grant.valid_from - 1.second()),
        GrantStatus::NotYetValid
    );
    assert_eq!(grant_status(&grant, grant.valid_from), GrantStatus::Valid);
    assert_eq!(
        grant_status(&grant, grant.valid_until),
        GrantStatus::Expired
    );
    let revoked = Grant {
        revoked_at: Some(now()),
        ..grant.clone()
    };
    assert_eq!(
        grant_status(&revoked, now() - 1.second()),
        GrantStatus::Valid,
        "a revocation takes effect at its time"
    );
    assert_eq!(grant_status(&revoked, now()), GrantStatus::Revoked);
    // Revoked wins over the period.
    assert_eq!(
        grant_status(&revoked, grant.valid_until + days(1)),
        GrantStatus::Revoked
    );
}

/// A consumer names the items it asks for, and the list can be long (a gateway header of
/// hundreds of kilobytes). Planning compared every requested code with every unknown one
/// listed so far, so tens of thousands of codes took seconds; it is linear now, and a long
/// list decides as the same items in a short one do.
#[test]
fn a_long_list_of_requested_items_is_planned_in_linear_time() {
    let consumer = xuanwu_consumer();
    let resource = household_register();
    let grants = GrantIndex::from_grants(vec![grant(
        "g-1",
        &consumer,
        &resource,
        vec![granted("id_number"), granted("district")],
    )])
    .unwrap();
    let policies = PlatformPolicies::new(RegionCode::parse("320100").unwrap());
    let mut codes: Vec<String> = (0..100_000).map(|number| format!("x{number}")).collect();
    codes.extend([
        "district".to_owned(),
        "x7".to_owned(),
        "id_number".to_owned(),
    ]);
    let mut long = request(consumer.clone(), resource.clone());
    long.requested_items = Some(codes);
    let started = std::time::Instant::now();
    let decision = decide(&long, &grants, &policies);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Decision::Allow {
        deliver,
        mask,
        drop,
        ..
    } = &decision
    else {
        panic!("{decision:?}");
    };
    assert_eq!(deliver, &["district"]);
    assert_eq!(mask.len(), 1);
    // Every unknown code is listed once.
    assert_eq!(drop.len(), 4 + 100_000);
    let mut short = request(consumer, resource);
    short.requested_items = Some(vec!["district".to_owned(), "id_number".to_owned()]);
    let Decision::Allow {
        deliver: short_deliver,
        mask: short_mask,
        ..
    } = decide(&short, &grants, &policies)
    else {
        panic!("the short request is allowed");
    };
    assert_eq!((&short_deliver, &short_mask), (deliver, mask));
}
