//! The memo of platform-policy outcomes never changes a decision: random requests are decided
//! with and without it, before and after the policies and the directory change, and from several
//! threads at once.

use civitas_access::{
    ConsumerFacts, Decision, DecisionRequest, Grant, GrantIndex, GrantedItem, ItemPolicy,
    LocalTime, MaskKind, PlatformPolicies, ResourceCode, ResourceFacts, ResourceKind, Sensitivity,
    SystemRef, decide,
};
use civitas_core::catalog::ClassificationCode;
use civitas_core::{Code, RegionCode, Uscc, registry::Level};
use jiff::{Timestamp, ToSpan};

/// xorshift64*: deterministic, so a failure can be replayed.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const REGIONS: &[&str] = &["320102", "320104", "320118", "320100", "320500", "310000"];
const LEVELS: &[Level] = &[
    Level::Municipal,
    Level::District,
    Level::Street,
    Level::Provincial,
];
const ITEMS: &[(&str, Sensitivity, Option<MaskKind>)] = &[
    (
        "id_number",
        Sensitivity::Personal,
        Some(MaskKind::CitizenId),
    ),
    ("name", Sensitivity::Personal, Some(MaskKind::Name)),
    ("mobile", Sensitivity::Personal, None),
    ("amount", Sensitivity::Sensitive, None),
    ("license_no", Sensitivity::Sensitive, None),
    ("status", Sensitivity::Internal, None),
    ("district", Sensitivity::Public, None),
];

fn now() -> Timestamp {
    "2026-05-12T02:00:00Z".parse().unwrap()
}

struct World {
    consumers: Vec<ConsumerFacts>,
    resources: Vec<ResourceFacts>,
    grants: GrantIndex,
}

fn world(generator: &mut Generator) -> World {
    let consumers: Vec<ConsumerFacts> = (0..30)
        .map(|number| {
            let region = REGIONS[generator.below(REGIONS.len())];
            ConsumerFacts {
                system: SystemRef {
                    organization: Uscc::from_parts('1', '1', region, &format!("{:08}", number / 3))
                        .unwrap(),
                    system: Code::parse(&format!("sys-{number}")).unwrap(),
                },
                region: RegionCode::parse(region).unwrap(),
                level: LEVELS[generator.below(LEVELS.len())],
            }
        })
        .collect();
    let resources: Vec<ResourceFacts> = (0..40)
        .map(|number| {
            let region = RegionCode::parse(REGIONS[generator.below(4)]).unwrap();
            let kind = [
                ResourceKind::Dataset,
                ResourceKind::Interface,
                ResourceKind::File,
                ResourceKind::Video,
            ][generator.below(4)];
            let items = if kind == ResourceKind::Video {
                Vec::new()
            } else {
                ITEMS
                    .iter()
                    .filter(|_| generator.chance(70))
                    .map(|(code, sensitivity, mask_kind)| ItemPolicy {
                        code: (*code).to_owned(),
                        sensitivity: *sensitivity,
                        mask_kind: *mask_kind,
                    })
                    .collect()
            };
            ResourceFacts {
                code: ResourceCode::new(
                    region,
                    ClassificationCode::parse("B01").unwrap(),
                    number + 1,
                ),
                kind,
                provider: Uscc::from_parts(
                    '1',
                    '1',
                    region.as_str(),
                    &format!("{:08}", 900 + number),
                )
                .unwrap(),
                provider_region: region,
                items,
            }
        })
        .collect();
    let mut grants = Vec::new();
    for consumer in &consumers {
        for resource in &resources {
            if !generator.chance(40) {
                continue;
            }
            let revoked_at = generator.chance(5).then(|| now() - 1.hour());
            let mut items = Vec::new();
            for item in &resource.items {
                if generator.chance(70) {
                    items.push(GrantedItem {
                        code: item.code.clone(),
                        plaintext: generator.chance(30),
                    });
                }
            }
            grants.push(Grant {
                id: format!("g-{}", grants.len()),
                application: None,
                consumer: consumer.system.clone(),
                resource: resource.code.clone(),
                provider: resource.provider.clone(),
                items,
                valid_from: now() - 240.hours(),
                valid_until: now() + 240.hours(),
                calls_per_day: None,
                requests_per_second: None,
                revoked_at,
                revoked_by: None,
                revoke_reason: None,
                created_at: now() - 240.hours(),
            });
        }
    }
    World {
        consumers,
        resources,
        grants: GrantIndex::from_grants(grants).unwrap(),
    }
}

/// Requests drawn from a small space of facts, so that many of them repeat what the memo has
/// seen, and some are new.
fn requests(generator: &mut Generator, world: &World, count: usize) -> Vec<DecisionRequest> {
    (0..count)
        .map(|_| {
            let resource = world.resources[generator.below(world.resources.len())].clone();
            let requested_items = generator.chance(30).then(|| {
                let mut codes: Vec<String> = resource
                    .items
                    .iter()
                    .filter(|_| generator.chance(50))
                    .map(|item| item.code.clone())
                    .collect();
                if generator.chance(20) {
                    codes.push("no_such_item".to_owned());
                }
                codes
            });
            let bulk = generator.chance(20);
            DecisionRequest {
                consumer: world.consumers[generator.below(world.consumers.len())].clone(),
                resource,
                requested_items,
                at: now() + (generator.below(7_200) as i64).seconds(),
                local_time: LocalTime::new(
                    [3, 9, 14, 20][generator.below(4)],
                    [1, 3, 6, 7][generator.below(4)],
                )
                .unwrap(),
                bulk,
                expected_rows: [0, 50, 200_000, 5_000_000][generator.below(4)],
            }
        })
        .collect()
}

const POLICIES: &[(&str, &str)] = &[
    (
        "personal-stays-in-city",
        "forbid (principal, action, resource) when { !principal.in_city && !context.personal_items.isEmpty() };",
    ),
    (
        "no-bulk-personal-off-hours",
        "forbid (principal, action == Civitas::Action::\"read\", resource) when { context.bulk && !context.personal_items.isEmpty() && (context.hour < 8 || context.hour >= 18 || context.weekday >= 6) };",
    ),
    (
        "street-no-plaintext",
        "forbid (principal, action, resource) when { principal.level == \"street\" && !context.plaintext_items.isEmpty() };",
    ),
    (
        "sensitive-in-province",
        "forbid (principal, action, resource) when { !(principal.region like \"32*\") && !context.sensitive_items.isEmpty() };",
    ),
    (
        "video-in-city",
        "forbid (principal, action == Civitas::Action::\"play\", resource) unless { principal.in_city };",
    ),
    (
        "files-by-day",
        "forbid (principal, action, resource) when { resource.kind == \"file\" } unless { context.hour >= 8 && context.hour < 18 };",
    ),
    (
        "mobile-never-plaintext",
        "forbid (principal, action, resource) when { context.plaintext_items.contains(\"mobile\") && context.items.contains(\"name\") };",
    ),
    // Overflows, so fails to evaluate, on the largest exports.
    (
        "overflows-on-huge-exports",
        "forbid (principal, action, resource) when { context.expected_rows * 10000000000000 < 0 };",
    ),
];

/// Decides every request with both and checks they agree; returns how many were allowed.
fn assert_same(
    requests: &[DecisionRequest],
    grants: &GrantIndex,
    with_memo: &PlatformPolicies,
    without_memo: &PlatformPolicies,
    stage: &str,
) -> usize {
    let mut allowed = 0;
    for request in requests {
        let expected = decide(request, grants, without_memo);
        let decided = decide(request, grants, with_memo);
        assert_eq!(decided, expected, "{stage}: {request:?}");
        allowed += usize::from(decided.is_allow());
    }
    allowed
}

#[test]
fn the_memo_never_changes_a_decision() {
    let mut generator = Generator(0x00C1_717A_5000_0001);
    let world = world(&mut generator);
    let pool = requests(&mut generator, &world, 600);
    // Three passes over the pool in random order, so most decisions are repeats.
    let draws: Vec<DecisionRequest> = (0..1_800)
        .map(|_| pool[generator.below(pool.len())].clone())
        .collect();
    let city = RegionCode::parse("320100").unwrap();
    let mut with_memo = PlatformPolicies::with_policies(city, POLICIES.iter().copied()).unwrap();
    let mut without_memo = with_memo.clone();
    without_memo.set_memo_capacity(0);

    let allowed = assert_same(&draws, &world.grants, &with_memo, &without_memo, "initial");
    let denied_by_policy = draws
        .iter()
        .filter(|request| {
            decide(request, &world.grants, &without_memo)
                .rule()
                .starts_with("policy:")
        })
        .count();
    assert!(
        allowed > 100 && denied_by_policy > 100,
        "the mix exercises both outcomes"
    );
    let stats = with_memo.memo_stats();
    assert!(stats.hits > stats.misses, "{stats:?}");
    assert_eq!(without_memo.memo_stats().capacity, 0);

    // Every change reaches both, and the memo must not answer from before it.
    type Change = Box<dyn Fn(&mut PlatformPolicies)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "a new policy",
            Box::new(|policies| {
                policies
                    .insert(
                        "afternoons-closed",
                        "forbid (principal, action, resource) when { context.hour >= 12 && context.hour < 18 };",
                    )
                    .unwrap();
            }),
        ),
        (
            "a policy replaced",
            Box::new(|policies| {
                policies
                    .insert(
                        "afternoons-closed",
                        "forbid (principal, action, resource) when { context.hour >= 19 };",
                    )
                    .unwrap();
            }),
        ),
        (
            "a policy removed",
            Box::new(|policies| {
                policies.remove("personal-stays-in-city").unwrap();
            }),
        ),
    ];
    for (stage, change) in &changes {
        change(&mut with_memo);
        change(&mut without_memo);
        assert_same(&draws, &world.grants, &with_memo, &without_memo, stage);
    }

    // The directory changes no outcome (policies cannot read what only it knows), but the memo
    // starts over anyway.
    for policies in [&mut with_memo, &mut without_memo] {
        policies
            .set_directory(
                world.consumers.iter().cloned(),
                world.resources.iter().cloned(),
            )
            .unwrap();
    }
    assert_eq!(with_memo.memo_stats().entries, 0);
    assert_same(
        &draws,
        &world.grants,
        &with_memo,
        &without_memo,
        "directory",
    );
    // A stale directory: every system's level differs, so requests build their own entities.
    for policies in [&mut with_memo, &mut without_memo] {
        policies
            .set_directory(
                world.consumers.iter().map(|consumer| ConsumerFacts {
                    level: Level::National,
                    ..consumer.clone()
                }),
                world.resources.iter().cloned(),
            )
            .unwrap();
    }
    assert_same(
        &draws,
        &world.grants,
        &with_memo,
        &without_memo,
        "stale directory",
    );
}

#[test]
fn threads_share_one_memo() {
    let mut generator = Generator(0x00C1_717A_5000_0002);
    let world = world(&mut generator);
    let pool = requests(&mut generator, &world, 400);
    let city = RegionCode::parse("320100").unwrap();
    let with_memo = PlatformPolicies::with_policies(city, POLICIES.iter().copied()).unwrap();
    let mut without_memo = with_memo.clone();
    without_memo.set_memo_capacity(0);
    let expected: Vec<Decision> = pool
        .iter()
        .map(|request| decide(request, &world.grants, &without_memo))
        .collect();

    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let (pool, expected, grants, policies) = (&pool, &expected, &world.grants, &with_memo);
            scope.spawn(move || {
                let mut generator = Generator(0x5EED + thread);
                for _ in 0..2_000 {
                    let number = generator.below(pool.len());
                    assert_eq!(decide(&pool[number], grants, policies), expected[number]);
                }
            });
        }
    });
    // Only requests a grant allows reach the policies; each distinct one is remembered once.
    let reaching = pool
        .iter()
        .zip(&expected)
        .filter(|(_, decision)| decision.is_allow() || decision.rule().starts_with("policy:"))
        .count();
    let stats = with_memo.memo_stats();
    assert!(stats.hits > stats.misses, "{stats:?}");
    assert!(stats.entries > 0 && stats.entries <= reaching, "{stats:?}");
}
