use civitas_core::catalog::MaskKind;
use civitas_core::{Code, RegionCode, Uscc, registry::Level};

use super::*;
use crate::decision::{ConsumerFacts, ItemPolicy, LocalTime, MaskedItem, ResourceFacts};

fn check_rejected(id: &str, text: &str, expected_fragments: &[&str]) -> PolicyError {
    let error = PlatformPolicies::validate(id, text).expect_err(text);
    let message = error.to_string();
    for fragment in expected_fragments {
        assert!(
            message.contains(fragment),
            "message {message:?} lacks {fragment:?}"
        );
    }
    error
}

#[test]
fn the_shipped_schema_parses() {
    let (_schema, warnings) = Schema::from_cedarschema_str(SCHEMA_TEXT).unwrap();
    assert_eq!(warnings.count(), 0);
    assert_eq!(PlatformPolicies::schema_text(), SCHEMA_TEXT);
}

#[test]
fn accepts_forbid_policies_that_type_check() {
    let policies = [
        "forbid (principal, action, resource) when { !principal.in_city && !context.personal_items.isEmpty() };",
        "forbid (principal in Civitas::Organization::\"11320100000000017F\", action, resource);",
        "forbid (principal, action == Civitas::Action::\"play\", resource) unless { principal.level == \"municipal\" };",
        "@reason(\"audit finding 2026-14\")\nforbid (principal, action, resource is Civitas::Resource) when { resource.kind == \"file\" && context.bulk };",
    ];
    for text in policies {
        PlatformPolicies::validate("rule", text).unwrap_or_else(|error| panic!("{text}: {error}"));
    }
}

#[test]
fn rejects_a_permit_with_a_clear_message() {
    let error = check_rejected(
        "allow-all",
        "permit (principal, action, resource);",
        &["forbid-only", "grants are the permits"],
    );
    assert_eq!(
        error,
        PolicyError::NotForbid {
            id: "allow-all".to_owned()
        }
    );
}

#[test]
fn rejects_an_unknown_attribute_with_its_position() {
    let text = "forbid (principal, action, resource)\nwhen { principal.department == \"police\" };";
    let error = check_rejected("unknown-attribute", text, &["department", "line 2, column"]);
    let PolicyError::Schema { problems, .. } = &error else {
        panic!("expected a schema error, got {error:?}");
    };
    assert_eq!(problems[0].position.map(|position| position.line), Some(2));
}

#[test]
fn rejects_a_type_error() {
    check_rejected(
        "wrong-type",
        "forbid (principal, action, resource) when { context.hour == \"night\" };",
        &["line 1, column"],
    );
    check_rejected(
        "unknown-entity-type",
        "forbid (principal == Civitas::Person::\"alice\", action, resource);",
        &["Civitas::Person"],
    );
}

#[test]
fn rejects_reading_a_named_entity() {
    // Only the principal's and the resource's attributes are known for every exchange.
    check_rejected(
        "named-system",
        "forbid (principal, action, resource)\nwhen { Civitas::System::\"11320100000000017F/desk\".level == \"street\" };",
        &["entity literals cannot be dereferenced", "line 2, column"],
    );
    check_rejected(
        "named-resource-membership",
        "forbid (principal, action, resource)\nwhen { Civitas::Resource::\"320100-B01-000001\" in Civitas::Organization::\"11320100000000017F\" };",
        &["entity literals cannot be dereferenced"],
    );
    // Naming an entity without reading it is fine.
    PlatformPolicies::validate(
        "named-ok",
        "forbid (principal in Civitas::Organization::\"11320100000000017F\", action, resource == Civitas::Resource::\"320100-B01-000001\");",
    )
    .unwrap();
}

#[test]
fn rejects_a_syntax_error_with_its_position() {
    let text = "forbid (principal, action, resource)\n  whne { context.bulk };";
    let error = check_rejected("typo", text, &["syntax error", "line 2, column 3"]);
    assert_eq!(
        error.problems()[0].position,
        Some(Position { line: 2, column: 3 })
    );
}

#[test]
fn rejects_other_shapes() {
    check_rejected(
        "two",
        "forbid (principal, action, resource); forbid (principal, action, resource);",
        &["exactly one policy, found 2"],
    );
    check_rejected("empty", "", &["exactly one policy, found 0"]);
    check_rejected(
        "template",
        "forbid (principal == ?principal, action, resource);",
        &["template"],
    );
    check_rejected(
        "Bad Id",
        "forbid (principal, action, resource);",
        &["policy id \"Bad Id\" is not valid"],
    );
}

#[test]
fn the_examples_in_the_policy_guide_validate() {
    let guide = include_str!("../../POLICIES.md");
    let mut examples = 0;
    let mut rest = guide;
    while let Some(start) = rest.find("```cedar\n") {
        let after = &rest[start + "```cedar\n".len()..];
        let end = after.find("```").expect("code blocks are closed");
        let text = &after[..end];
        PlatformPolicies::validate("example", text)
            .unwrap_or_else(|error| panic!("{text}: {error}"));
        examples += 1;
        rest = &after[end..];
    }
    assert!(examples >= 2, "the guide shows its examples");
}

#[test]
fn insert_replace_and_remove() {
    let mut policies = PlatformPolicies::new(RegionCode::parse("320100").unwrap());
    assert!(policies.is_empty());
    let first = "forbid (principal, action, resource) when { context.bulk };";
    let second = "forbid (principal, action, resource) when { context.hour < 6 };";
    assert_eq!(policies.insert("night", first).unwrap(), None);
    assert_eq!(
        policies.insert("night", second).unwrap().as_deref(),
        Some(first)
    );
    assert_eq!(policies.len(), 1);
    assert_eq!(policies.get("night"), Some(second));
    assert!(policies.insert("broken", "forbid (").is_err());
    assert_eq!(policies.len(), 1);
    assert_eq!(policies.iter().collect::<Vec<_>>(), [("night", second)]);
    assert_eq!(policies.remove("night").as_deref(), Some(second));
    assert!(policies.remove("night").is_none());
    assert!(format!("{policies:?}").contains("320100"));
}

fn consumer(region: &str, level: Level) -> ConsumerFacts {
    ConsumerFacts {
        system: SystemRef {
            organization: Uscc::from_parts('1', '1', region, "00000001").unwrap(),
            system: Code::parse("sys").unwrap(),
        },
        region: RegionCode::parse(region).unwrap(),
        level,
    }
}

fn resource(kind: ResourceKind, provider_region: &str) -> ResourceFacts {
    let items = if kind == ResourceKind::Video {
        Vec::new()
    } else {
        vec![
            ItemPolicy {
                code: "id_number".to_owned(),
                sensitivity: Sensitivity::Personal,
                mask_kind: Some(MaskKind::CitizenId),
            },
            ItemPolicy {
                code: "amount".to_owned(),
                sensitivity: Sensitivity::Sensitive,
                mask_kind: None,
            },
            ItemPolicy {
                code: "district".to_owned(),
                sensitivity: Sensitivity::Public,
                mask_kind: None,
            },
        ]
    };
    ResourceFacts {
        code: ResourceCode::parse("320100-B01-000001").unwrap(),
        kind,
        provider: Uscc::from_parts('1', '1', provider_region, "00000009").unwrap(),
        provider_region: RegionCode::parse(provider_region).unwrap(),
        items,
    }
}

fn plan(plaintext_id: bool, masked_id: bool) -> ItemPlan {
    let mut plan = ItemPlan {
        deliver: vec!["amount".to_owned(), "district".to_owned()],
        ..ItemPlan::default()
    };
    if plaintext_id {
        plan.deliver.insert(0, "id_number".to_owned());
    } else if masked_id {
        plan.mask.push(MaskedItem {
            code: "id_number".to_owned(),
            kind: MaskKind::CitizenId,
        });
    }
    plan
}

/// A spread of requests over every fact the policies below read.
fn varied_requests() -> Vec<(DecisionRequest, ItemPlan)> {
    let mut requests = Vec::new();
    let consumers = [
        consumer("320102", Level::District),
        consumer("320100", Level::Street),
        consumer("320500", Level::Municipal),
        consumer("310000", Level::Provincial),
    ];
    let kinds = [
        ResourceKind::Dataset,
        ResourceKind::Video,
        ResourceKind::File,
    ];
    for consumer in &consumers {
        for kind in kinds {
            for provider_region in ["320118", "320102"] {
                for (hour, weekday) in [(3, 1), (10, 3), (19, 6)] {
                    for bulk in [false, true] {
                        for (plaintext_id, masked_id) in
                            [(false, false), (true, false), (false, true)]
                        {
                            requests.push((
                                DecisionRequest {
                                    consumer: consumer.clone(),
                                    resource: resource(kind, provider_region),
                                    requested_items: None,
                                    at: "2026-05-12T02:00:00Z".parse().unwrap(),
                                    local_time: LocalTime::new(hour, weekday).unwrap(),
                                    bulk,
                                    expected_rows: if bulk { 500_000 } else { 10 },
                                },
                                plan(plaintext_id, masked_id),
                            ));
                        }
                    }
                }
            }
        }
    }
    requests
}

fn realistic_policies() -> PlatformPolicies {
    let blocked = consumer("320500", Level::Municipal).system.organization;
    let blocked_organization =
        format!("forbid (principal in Civitas::Organization::\"{blocked}\", action, resource);");
    PlatformPolicies::with_policies(
        RegionCode::parse("320100").unwrap(),
        [
            ("personal-stays-in-city", "forbid (principal, action, resource) when { !principal.in_city && !context.personal_items.isEmpty() };"),
            ("no-bulk-personal-off-hours", "forbid (principal, action == Civitas::Action::\"read\", resource) when { context.bulk && !context.personal_items.isEmpty() && (context.hour < 8 || context.hour >= 18 || context.weekday >= 6) };"),
            ("street-no-plaintext", "forbid (principal, action, resource) when { principal.level == \"street\" && !context.plaintext_items.isEmpty() };"),
            ("sensitive-in-province", "forbid (principal, action, resource) when { !(principal.region like \"32*\") && !context.sensitive_items.isEmpty() };"),
            ("video-in-city", "forbid (principal, action in [Civitas::Action::\"play\"], resource) unless { principal.in_city };"),
            ("gaochun-data", "forbid (principal, action, resource is Civitas::Resource) when { resource.provider_region == \"320118\" && resource.has_personal && !(principal.region like \"3201*\") };"),
            ("files-by-day", "forbid (principal, action, resource) when { resource.kind == \"file\" } unless { context.hour >= 8 && context.hour < 18 };"),
            ("big-exports", "forbid (principal, action, resource) when { context.expected_rows > 100000 && context.weekday >= 6 };"),
            ("blocked-org", blocked_organization.as_str()),
            // Overflows, so fails to evaluate, on bulk requests.
            ("overflow-on-bulk", "forbid (principal, action, resource) when { context.expected_rows * 100000000000000 < 0 };"),
        ],
    )
    .unwrap()
}

/// Failure messages are worded by whichever path evaluated; the failing policy is what counts.
fn without_message(outcome: PolicyOutcome) -> PolicyOutcome {
    match outcome {
        PolicyOutcome::Failed { policy_id, .. } => PolicyOutcome::Failed {
            policy_id,
            message: String::new(),
        },
        other => other,
    }
}

#[test]
fn fast_path_agrees_with_the_authorizer() {
    let mut policies = realistic_policies();
    assert!(policies.has_fast_path());
    // Without the memo every call takes the fast path.
    policies.set_memo_capacity(0);
    let (mut permitted, mut forbidden, mut failed) = (0, 0, 0);
    for (request, plan) in varied_requests() {
        let fast = without_message(policies.evaluate(&request, &plan, None, false));
        let exact = without_message(policies.evaluate(&request, &plan, None, true));
        assert_eq!(fast, exact, "{request:?} {plan:?}");
        match fast {
            PolicyOutcome::Permitted => permitted += 1,
            PolicyOutcome::Forbidden { .. } => forbidden += 1,
            PolicyOutcome::Failed { .. } => failed += 1,
        }
    }
    // The grid exercises every outcome.
    assert!(permitted > 0 && forbidden > 0 && failed > 0);
}

#[test]
fn cedar_inputs_conform_to_the_schema() {
    let policies = realistic_policies();
    for (request, plan) in varied_requests() {
        policies
            .cedar_input(
                &PolicyFacts::of(&request, &plan),
                ContextUse::ALL,
                Some(schema()),
            )
            .unwrap_or_else(|error| panic!("{request:?}: {error}"));
    }
}

#[test]
fn granted_items_reach_the_context() {
    let policies = PlatformPolicies::with_policies(
        RegionCode::parse("320100").unwrap(),
        [(
            "no-plaintext-ids",
            "forbid (principal, action, resource) when { context.plaintext_items.contains(\"id_number\") };",
        )],
    )
    .unwrap();
    let request = varied_requests().remove(0).0;
    assert_eq!(
        policies.evaluate(&request, &plan(true, false), None, false),
        PolicyOutcome::Forbidden {
            policy_id: "no-plaintext-ids".to_owned()
        }
    );
    assert_eq!(
        policies.evaluate(&request, &plan(false, true), None, false),
        PolicyOutcome::Permitted
    );
}

#[test]
fn the_directory_changes_no_outcome() {
    let requests = varied_requests();
    let without_directory = realistic_policies();
    let mut with_directory = realistic_policies();
    with_directory
        .set_directory(
            requests.iter().map(|(request, _)| request.consumer.clone()),
            requests.iter().map(|(request, _)| request.resource.clone()),
        )
        .unwrap();
    // A directory that is out of date: every system's level and every resource's kind differ
    // from what the requests carry, so the requests' own facts must be used.
    let mut stale_directory = realistic_policies();
    stale_directory
        .set_directory(
            requests.iter().map(|(request, _)| ConsumerFacts {
                level: Level::National,
                ..request.consumer.clone()
            }),
            requests.iter().map(|(request, _)| ResourceFacts {
                kind: ResourceKind::Interface,
                ..request.resource.clone()
            }),
        )
        .unwrap();
    for (request, plan) in &requests {
        let expected = without_message(without_directory.evaluate(request, plan, None, true));
        for policies in [&with_directory, &stale_directory] {
            assert_eq!(
                without_message(policies.evaluate(request, plan, None, false)),
                expected
            );
            assert_eq!(
                without_message(policies.evaluate(request, plan, None, true)),
                expected
            );
        }
    }
}

#[test]
fn the_memo_answers_as_cedar_does() {
    let policies = realistic_policies();
    let requests = varied_requests();
    for _ in 0..2 {
        for (request, plan) in &requests {
            let exact = without_message(policies.evaluate(request, plan, None, true));
            assert_eq!(
                without_message(policies.evaluate(request, plan, None, false)),
                exact
            );
        }
    }
    // The policies do not read `context.items`, so requests whose facts differ only there share
    // an entry. Each distinct key misses once.
    let stats = policies.memo_stats();
    assert!(
        stats.entries > 0 && stats.entries < requests.len(),
        "{stats:?}"
    );
    assert_eq!(stats.misses, stats.entries as u64);
    assert_eq!(stats.hits + stats.misses, 2 * requests.len() as u64);
}

#[test]
fn the_memo_key_covers_every_fact() {
    let (request, base_plan) = varied_requests().remove(0);
    let key = |request: &DecisionRequest, plan: &ItemPlan| {
        let mut encoded = Vec::new();
        PolicyFacts::of(request, plan).encode(ContextUse::ALL, &mut encoded);
        encoded
    };
    let base = key(&request, &base_plan);
    let mut other_system = request.clone();
    other_system.consumer.system.system = Code::parse("other").unwrap();
    let mut other_level = request.clone();
    other_level.consumer.level = Level::Street;
    let mut other_region = request.clone();
    other_region.consumer.region = RegionCode::parse("320104").unwrap();
    let mut other_resource = request.clone();
    other_resource.resource.code = ResourceCode::parse("320100-B01-000002").unwrap();
    let mut other_provider_region = request.clone();
    other_provider_region.resource.provider_region = RegionCode::parse("320104").unwrap();
    let mut other_kind = request.clone();
    other_kind.resource.kind = ResourceKind::File;
    let mut without_personal = request.clone();
    without_personal.resource.items[0].sensitivity = Sensitivity::Internal;
    let mut other_hour = request.clone();
    other_hour.local_time = LocalTime::new(11, request.local_time.weekday()).unwrap();
    let mut other_weekday = request.clone();
    other_weekday.local_time = LocalTime::new(request.local_time.hour(), 7).unwrap();
    let mut bulk = request.clone();
    bulk.bulk = !request.bulk;
    let mut rows = request.clone();
    rows.expected_rows += 1;
    let variants = [
        other_system,
        other_level,
        other_region,
        other_resource,
        other_provider_region,
        other_kind,
        without_personal,
        other_hour,
        other_weekday,
        bulk,
        rows,
    ];
    for variant in &variants {
        assert_ne!(key(variant, &base_plan), base, "{variant:?}");
    }
    // The same items, delivered differently: plaintext, masked, or not at all.
    for other_plan in [plan(true, false), plan(false, true), ItemPlan::default()] {
        if other_plan != base_plan {
            assert_ne!(key(&request, &other_plan), base);
        }
    }
    // What policies cannot see does not matter.
    let mut other_time = request.clone();
    other_time.at += jiff::SignedDuration::from_secs(60);
    assert_eq!(key(&other_time, &base_plan), base);
}

#[test]
fn finds_the_context_attributes_a_policy_reads() {
    let reads = |text: &str| {
        let policy = parse_platform_policy("rule", text).unwrap_or_else(|error| panic!("{error}"));
        let used = ContextUse::of(&policy);
        ContextUse::ATTRIBUTES
            .iter()
            .copied()
            .filter(|attribute| used.reads(attribute))
            .collect::<Vec<_>>()
    };
    let table: &[(&str, &[&str])] = &[
        ("forbid (principal, action, resource);", &[]),
        (
            "forbid (principal, action, resource) when { principal.in_city };",
            &[],
        ),
        (
            "forbid (principal, action, resource) when { context.bulk } unless { context.hour < 8 };",
            &["hour", "bulk"],
        ),
        (
            "forbid (principal, action, resource) when { context[\"expected_rows\"] > 10 };",
            &["expected_rows"],
        ),
        (
            "forbid (principal, action, resource) when { context has weekday };",
            &["weekday"],
        ),
        (
            "forbid (principal, action, resource) when { if context.bulk then context.items.contains(\"name\") else [context.personal_items, context.sensitive_items].contains(context.plaintext_items) };",
            &[
                "items",
                "personal_items",
                "plaintext_items",
                "sensitive_items",
                "bulk",
            ],
        ),
        (
            "forbid (principal, action, resource) when { resource is Civitas::Resource && !(principal.region like \"32*\") && {a: context.weekday}.a == 7 };",
            &["weekday"],
        ),
    ];
    for (text, expected) in table {
        assert_eq!(reads(text), *expected, "{text}");
    }
    // The context as a whole: every attribute matters.
    let whole = "forbid (principal, action, resource) when { context == {items: [], personal_items: [], plaintext_items: [], sensitive_items: [], hour: 1, weekday: 1, bulk: false, expected_rows: 0} };";
    let policy = Policy::parse(None, whole).unwrap();
    assert_eq!(ContextUse::of(&policy), ContextUse::ALL);
    let passed_on = "forbid (principal, action, resource) when { [context].contains(context) };";
    assert_eq!(
        ContextUse::of(&Policy::parse(None, passed_on).unwrap()),
        ContextUse::ALL
    );
}

#[test]
fn attributes_no_policy_reads_are_not_part_of_the_memo_key() {
    // The policies read no row count: requests that differ only in it share an entry.
    let policies = PlatformPolicies::with_policies(
        RegionCode::parse("320100").unwrap(),
        [(
            "bulk-at-night",
            "forbid (principal, action, resource) when { context.bulk && context.hour < 6 };",
        )],
    )
    .unwrap();
    let (request, plan) = varied_requests().remove(0);
    for rows in [1, 10, 1_000_000] {
        let request = DecisionRequest {
            expected_rows: rows,
            ..request.clone()
        };
        policies.evaluate(&request, &plan, None, false);
    }
    let stats = policies.memo_stats();
    assert_eq!((stats.entries, stats.misses, stats.hits), (1, 1, 2));
}

/// Policies nested thousands deep overflowed the stack in Cedar's parser (aborting the whole
/// process), and nested `if`s made its type checker run for hours. Both are refused by a scan
/// of the text before Cedar sees it, and what passes the scan is handled without trouble, on a
/// test thread's stack (2 MiB, like a tokio worker's).
#[test]
fn refuses_policies_nested_too_deeply_for_cedar() {
    let when = |body: String| format!("forbid (principal, action, resource) when {{ {body} }};");
    let chained = |depth: usize| {
        [
            when(format!("true{}", " && true".repeat(depth / 2))),
            when(format!("context.hour{} > 1", " + 1".repeat(depth))),
            when(format!("principal{} == 1", ".a".repeat(depth))),
        ]
    };
    let bracketed = |depth: usize| {
        [
            when(format!("{}true{}", "(".repeat(depth), ")".repeat(depth))),
            when(format!("{}1{} == 1", "[".repeat(depth), "]".repeat(depth))),
            when(format!(
                "{}1{} == 1",
                "{a: ".repeat(depth),
                "}".repeat(depth)
            )),
        ]
    };
    for text in chained(5_000).into_iter().chain(bracketed(5_000)) {
        let error = PlatformPolicies::validate("deep", &text).expect_err(&text[..80]);
        assert!(matches!(error, PolicyError::TooComplex { .. }), "{error}");
        assert!(error.to_string().contains("too complex"), "{error}");
    }
    // Just below the limit, Cedar answers (accepts or refuses by the schema) without trouble.
    for text in chained(240).into_iter().chain(bracketed(30)) {
        let _ =
            PlatformPolicies::with_policies(RegionCode::parse("320100").unwrap(), [("deep", text)]);
    }
    let ifs = when(format!(
        "{}true{}",
        "if true then ".repeat(40),
        " else false".repeat(40)
    ));
    let started = std::time::Instant::now();
    let error = PlatformPolicies::validate("ifs", &ifs).unwrap_err();
    assert!(matches!(error, PolicyError::TooComplex { .. }), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // Strings and comments do not count.
    let commented = format!(
        "// {}\nforbid (principal, action, resource) when {{ principal.code == \"{}\\\"\" }};",
        "((((".repeat(200),
        "&&&&".repeat(200)
    );
    PlatformPolicies::validate("commented", &commented).unwrap();
}

/// Loading thousands of policies took time quadratic in their number (every one recompiled
/// all before it), and chaining them all into one expression overflowed the stack.
#[test]
fn many_policies_load_at_once_and_decide() {
    let texts: Vec<(String, String)> = (0..2_000)
        .map(|number| {
            (
                format!("rule-{number:04}"),
                format!(
                    "forbid (principal, action, resource) when {{ context.expected_rows == {} }};",
                    number + 1_000
                ),
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let policies =
        PlatformPolicies::with_policies(RegionCode::parse("320100").unwrap(), texts).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let (mut request, plan) = varied_requests().swap_remove(0);
    request.resource = resource(ResourceKind::Dataset, "320102");
    request.expected_rows = 1_500;
    assert_eq!(
        policies.evaluate(&request, &plan, None, false),
        PolicyOutcome::Forbidden {
            policy_id: "rule-0500".to_owned()
        }
    );
    request.expected_rows = 7;
    assert_eq!(
        policies.evaluate(&request, &plan, None, false),
        PolicyOutcome::Permitted
    );
}

/// Reads `level` as the number it is not: Cedar compares a string with a number as unequal, so
/// the policy evaluates, but strict validation refuses the comparison.
const STALE_BUT_EVALUATES: &str =
    "forbid (principal, action, resource) when { principal.level != 1 && context.bulk };";

/// Reads an attribute the schema does not have: refused by validation, and an error when
/// evaluated.
const STALE_AND_FAILS: &str =
    "forbid (principal, action, resource) when { principal.department == \"police\" };";

fn city() -> RegionCode {
    RegionCode::parse("320100").unwrap()
}

#[test]
fn a_stored_policy_that_no_longer_type_checks_is_evaluated_as_written() {
    // What an upgrade of the schema can leave in the store: the write path refuses these.
    for text in [STALE_BUT_EVALUATES, STALE_AND_FAILS] {
        let error = PlatformPolicies::validate("stale", text).expect_err(text);
        assert!(matches!(error, PolicyError::Schema { .. }), "{error:?}");
        assert!(PlatformPolicies::with_policies(city(), [("stale", text)]).is_err());
        assert_eq!(
            PlatformPolicies::check_stored("stale", text),
            PolicyStatus::Stale(error)
        );
    }

    let mut policies = PlatformPolicies::from_stored(
        city(),
        [
            ("bulk-by-level", STALE_BUT_EVALUATES),
            ("by-department", STALE_AND_FAILS),
        ],
    );
    assert_eq!(policies.len(), 2);
    assert_eq!(
        policies.status("bulk-by-level").map(PolicyStatus::as_str),
        Some("stale")
    );
    assert_eq!(
        policies.not_valid().map(|(id, _)| id).collect::<Vec<_>>(),
        ["bulk-by-level", "by-department"]
    );
    for memo in [true, false] {
        if !memo {
            policies.set_memo_capacity(0);
        }
        let (mut forbidden, mut failed) = (0, 0);
        for (request, plan) in varied_requests() {
            let outcome = policies.evaluate(&request, &plan, None, false);
            // Every exchange is decided by one of them; none goes through unchecked.
            match &outcome {
                PolicyOutcome::Forbidden { policy_id } => {
                    assert!(request.bulk, "{request:?}");
                    assert_eq!(policy_id, "bulk-by-level");
                    forbidden += 1;
                }
                PolicyOutcome::Failed { policy_id, message } => {
                    assert!(!request.bulk, "{request:?}");
                    assert_eq!(policy_id, "by-department");
                    assert!(message.contains("department"), "{message}");
                    failed += 1;
                }
                PolicyOutcome::Permitted => panic!("permitted: {request:?}"),
            }
            let exact = policies.evaluate(&request, &plan, None, true);
            assert_eq!(without_message(outcome), without_message(exact));
        }
        assert!(forbidden > 0 && failed > 0);
    }

    // Alone, the policy that evaluates forbids exactly what it says.
    let alone = PlatformPolicies::from_stored(city(), [("bulk-by-level", STALE_BUT_EVALUATES)]);
    for (request, plan) in varied_requests() {
        let expected = if request.bulk {
            PolicyOutcome::Forbidden {
                policy_id: "bulk-by-level".to_owned(),
            }
        } else {
            PolicyOutcome::Permitted
        };
        assert_eq!(alone.evaluate(&request, &plan, None, false), expected);
    }
}

#[test]
fn a_stored_policy_that_does_not_parse_refuses_every_exchange() {
    let unreadable = [
        ("syntax", "forbid (principal, action, resource) when {"),
        ("permit", "permit (principal, action, resource);"),
        (
            "two",
            "forbid (principal, action, resource); forbid (principal, action, resource);",
        ),
    ];
    for (id, text) in unreadable {
        let status = PlatformPolicies::check_stored(id, text);
        assert_eq!(status.as_str(), "unusable", "{text}");
        assert_eq!(
            status.error(),
            PlatformPolicies::validate(id, text).err().as_ref()
        );

        // A readable policy beside it that forbids nothing does not help.
        let policies = PlatformPolicies::from_stored(
            city(),
            [
                (id, text),
                (
                    "files-by-day",
                    "forbid (principal, action, resource) when { resource.kind == \"file\" } unless { context.hour >= 8 && context.hour < 18 };",
                ),
            ],
        );
        assert_eq!(policies.len(), 2);
        for (request, plan) in varied_requests() {
            let PolicyOutcome::Failed { policy_id, message } =
                policies.evaluate(&request, &plan, None, false)
            else {
                panic!("not refused: {request:?}");
            };
            assert_eq!(policy_id, id);
            assert!(message.contains("fixes or deactivates it"), "{message}");
        }

        // An explanation names it as failing, beside what the readable policy says.
        let (request, plan) = varied_requests().swap_remove(0);
        let mut trace = Vec::new();
        let outcome = policies.evaluate(&request, &plan, Some(&mut trace), false);
        assert!(
            matches!(outcome, PolicyOutcome::Failed { .. }),
            "{outcome:?}"
        );
        let ids: Vec<&str> = trace.iter().map(|step| step.policy_id.as_str()).collect();
        let mut expected = vec![id, "files-by-day"];
        expected.sort_unstable();
        assert_eq!(ids, expected);
        let step = trace.iter().find(|step| step.policy_id == id).unwrap();
        assert!(
            step.applies && !step.matched && step.error.is_some(),
            "{step:?}"
        );

        // Deactivated (no longer loaded), exchanges are decided again.
        let without = PlatformPolicies::from_stored(
            city(),
            [(
                "files-by-day",
                "forbid (principal, action, resource) when { resource.kind == \"file\" } unless { context.hour >= 8 && context.hour < 18 };",
            )],
        );
        assert!(varied_requests().iter().any(|(request, plan)| {
            without.evaluate(request, plan, None, false) == PolicyOutcome::Permitted
        }));
    }
}
