//! Latency of one exchange decision with a node-sized load: 100,000 grants and 20 platform
//! policies, decided in-process over varied requests. Prints a markdown table.
//!
//! Run with `cargo bench -p civitas-access`. The target is a p99 of at most 20 µs in the steady
//! state of a gateway. Three ways of deciding are measured:
//!
//! - **cold**: the memo of policy outcomes is off, so every decision that reaches the platform
//!   policies evaluates Cedar;
//! - **first sight**: the memo is on but empty and each request is seen once, so every policy step
//!   misses and pays for the memo's key and insert on top of Cedar;
//! - **steady state**: a gateway's mix, 20,000 distinct requests repeated, after one warm-up pass
//!   over them.
//!
//! The machine the benchmark runs on is shared, so each way runs several rounds, interleaved, and
//! the table shows the median of the rounds' percentiles.

use std::hint::black_box;
use std::time::{Duration, Instant};

use civitas_access::{
    ConsumerFacts, DecisionRequest, Grant, GrantIndex, GrantedItem, ItemPolicy, LocalTime,
    MaskKind, PlatformPolicies, ResourceCode, ResourceFacts, ResourceKind, Sensitivity, SystemRef,
    decide,
};
use civitas_core::catalog::ClassificationCode;
use civitas_core::{Code, RegionCode, Uscc, registry::Level};
use jiff::{Timestamp, ToSpan};

const GRANTS: usize = 100_000;
const SYSTEMS: usize = 2_000;
const RESOURCES: usize = 5_000;
/// Distinct requests; the steady state repeats them.
const REQUEST_POOL: usize = 20_000;
/// Decisions measured per round of the cold and the steady-state runs.
const DECISIONS: usize = 100_000;
const ROUNDS: usize = 5;

/// A small deterministic generator (xorshift64*), so runs are comparable without a dependency.
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

/// Regions consumers and providers come from: mostly Nanjing's districts, some elsewhere in
/// Jiangsu, a few in other provinces (the ones `personal-stays-in-city` is about).
const REGIONS: &[&str] = &[
    "320102", "320104", "320105", "320106", "320111", "320113", "320114", "320115", "320116",
    "320117", "320118", "320100", "320100", "320100", "320200", "320500", "320000", "110000",
    "310000",
];
const LEVELS: &[Level] = &[
    Level::Municipal,
    Level::District,
    Level::District,
    Level::Street,
    Level::Provincial,
];
/// Item codes with their sensitivity and mask kind, the pool resources draw their items from.
const ITEMS: &[(&str, Sensitivity, Option<MaskKind>)] = &[
    (
        "id_number",
        Sensitivity::Personal,
        Some(MaskKind::CitizenId),
    ),
    ("name", Sensitivity::Personal, Some(MaskKind::Name)),
    ("mobile", Sensitivity::Personal, Some(MaskKind::Mobile)),
    ("address", Sensitivity::Personal, Some(MaskKind::Address)),
    ("bank_card", Sensitivity::Personal, Some(MaskKind::BankCard)),
    ("remark", Sensitivity::Personal, Some(MaskKind::FreeText)),
    ("birth_date", Sensitivity::Personal, None),
    ("license_no", Sensitivity::Sensitive, None),
    ("approval_status", Sensitivity::Internal, None),
    ("approved_at", Sensitivity::Internal, None),
    ("department", Sensitivity::Public, None),
    ("category", Sensitivity::Public, None),
    ("amount", Sensitivity::Sensitive, None),
    ("district", Sensitivity::Public, None),
    ("case_no", Sensitivity::Internal, None),
];

/// Timestamps take no calendar units, so days are counted in hours.
fn days(count: i64) -> jiff::Span {
    (count * 24).hours()
}

fn organization(number: usize, region: &str) -> Uscc {
    Uscc::from_parts('1', '1', region, &format!("{number:08}")).expect("generated codes are valid")
}

struct World {
    consumers: Vec<ConsumerFacts>,
    resources: Vec<ResourceFacts>,
    /// (consumer index, resource index) of every grant.
    pairs: Vec<(usize, usize)>,
    grants: Vec<Grant>,
}

fn build_world(generator: &mut Generator, now: Timestamp) -> World {
    let consumers: Vec<ConsumerFacts> = (0..SYSTEMS)
        .map(|number| {
            let region = REGIONS[generator.below(REGIONS.len())];
            ConsumerFacts {
                system: SystemRef {
                    organization: organization(number / 4, region),
                    system: Code::parse(&format!("sys-{number}")).expect("valid code"),
                },
                region: RegionCode::parse(region).expect("known region"),
                level: LEVELS[generator.below(LEVELS.len())],
            }
        })
        .collect();
    let resources: Vec<ResourceFacts> = (0..RESOURCES)
        .map(|number| {
            let region = REGIONS[generator.below(12)];
            let kind = match generator.below(10) {
                0 => ResourceKind::Video,
                1 => ResourceKind::File,
                2..=4 => ResourceKind::Dataset,
                _ => ResourceKind::Interface,
            };
            let items = if kind == ResourceKind::Video {
                Vec::new()
            } else {
                let count = 4 + generator.below(ITEMS.len() - 4);
                let start = generator.below(ITEMS.len());
                (0..count)
                    .map(|offset| {
                        let (code, sensitivity, mask_kind) = ITEMS[(start + offset) % ITEMS.len()];
                        ItemPolicy {
                            code: code.to_owned(),
                            sensitivity,
                            mask_kind,
                        }
                    })
                    .collect()
            };
            let classification = ClassificationCode::parse(&format!("B0{}", 1 + number % 5))
                .expect("base classifications B01 to B05 exist");
            let region_code = RegionCode::parse(region).expect("known region");
            ResourceFacts {
                code: ResourceCode::new(region_code, classification, number as u32 + 1),
                kind,
                provider: organization(100_000 + number / 10, region),
                provider_region: RegionCode::parse(region).expect("known region"),
                items,
            }
        })
        .collect();

    let mut pairs = Vec::with_capacity(GRANTS);
    let mut grants = Vec::with_capacity(GRANTS);
    // 50 grants per system over distinct resources; a tenth of the pairs get a second grant.
    let mut number = 0;
    while grants.len() < GRANTS {
        let consumer_index = number % SYSTEMS;
        let resource_index = (number / SYSTEMS * 97 + consumer_index * 31) % RESOURCES;
        let copies = if generator.chance(10) { 2 } else { 1 };
        for _ in 0..copies {
            if grants.len() == GRANTS {
                break;
            }
            let resource = &resources[resource_index];
            // Seven in ten items of the resource are granted, one in five of those in plaintext.
            let mut items = Vec::new();
            for item in &resource.items {
                if generator.chance(70) {
                    items.push(GrantedItem {
                        code: item.code.clone(),
                        plaintext: generator.chance(20),
                    });
                }
            }
            let (valid_from, valid_until) = match generator.below(20) {
                0 => (now - days(400), now - days(30)),
                1 => (now + days(10), now + days(400)),
                _ => (now - days(100), now + days(265)),
            };
            let revoked_at = generator.chance(3).then(|| now - days(1));
            grants.push(Grant {
                id: format!("g-{:06}", grants.len()),
                application: Some(format!("a-{:06}", grants.len())),
                consumer: consumers[consumer_index].system.clone(),
                resource: resource.code.clone(),
                provider: resource.provider.clone(),
                items,
                valid_from,
                valid_until,
                calls_per_day: Some(10_000),
                requests_per_second: Some(50),
                revoked_at,
                revoked_by: revoked_at.map(|_| "admin".to_owned()),
                revoke_reason: revoked_at.map(|_| "purpose changed".to_owned()),
                created_at: valid_from,
            });
            pairs.push((consumer_index, resource_index));
        }
        number += 1;
    }
    World {
        consumers,
        resources,
        pairs,
        grants,
    }
}

/// Twenty rules of the kind a city's platform admins write.
fn platform_policies(world: &World) -> Vec<(String, String)> {
    let blocked_system = &world.consumers[7].system;
    let blocked_organization = &world.consumers[11].system.organization;
    let resource = |number: usize| &world.resources[number].code;
    let policies = [
        (
            "personal-stays-in-city",
            "forbid (principal, action, resource)\nwhen { !principal.in_city && !context.personal_items.isEmpty() };".to_owned(),
        ),
        (
            "no-bulk-personal-off-hours",
            "forbid (principal, action == Civitas::Action::\"read\", resource)\nwhen { context.bulk && !context.personal_items.isEmpty() &&\n  (context.hour < 8 || context.hour >= 18 || context.weekday >= 6) };".to_owned(),
        ),
        (
            "street-no-plaintext",
            "forbid (principal, action, resource)\nwhen { principal.level == \"street\" && !context.plaintext_items.isEmpty() };".to_owned(),
        ),
        (
            "street-no-sensitive",
            "forbid (principal, action, resource)\nwhen { principal.level == \"street\" && !context.sensitive_items.isEmpty() };".to_owned(),
        ),
        (
            "video-in-city-only",
            "forbid (principal, action == Civitas::Action::\"play\", resource)\nwhen { !principal.in_city };".to_owned(),
        ),
        (
            "large-exports-daytime",
            "forbid (principal, action, resource)\nwhen { context.expected_rows > 100000 && (context.hour < 7 || context.hour >= 20) };".to_owned(),
        ),
        (
            "no-weekend-plaintext",
            "forbid (principal, action, resource)\nwhen { context.weekday >= 6 && !context.plaintext_items.isEmpty() };".to_owned(),
        ),
        (
            "street-no-bulk-files",
            "forbid (principal, action, resource)\nwhen { resource.kind == \"file\" && principal.level == \"street\" && context.bulk };".to_owned(),
        ),
        (
            "embargoed-resource",
            format!("forbid (principal, action, resource == Civitas::Resource::\"{}\");", resource(42)),
        ),
        (
            "blocked-system",
            format!("forbid (principal == Civitas::System::\"{blocked_system}\", action, resource);"),
        ),
        (
            "blocked-organization",
            format!("forbid (principal in Civitas::Organization::\"{blocked_organization}\", action, resource);"),
        ),
        (
            "plaintext-id-never-bulk",
            "forbid (principal, action, resource)\nwhen { context.plaintext_items.contains(\"id_number\") && context.bulk };".to_owned(),
        ),
        (
            "no-night-video-for-districts",
            "forbid (principal, action == Civitas::Action::\"play\", resource)\nwhen { context.hour < 6 && principal.level == \"district\" };".to_owned(),
        ),
        (
            "sensitive-stays-in-province",
            "forbid (principal, action, resource)\nwhen { !(principal.region like \"32*\") && !context.sensitive_items.isEmpty() };".to_owned(),
        ),
        (
            "row-cap",
            "forbid (principal, action, resource)\nwhen { context.expected_rows > 1000000 };".to_owned(),
        ),
        (
            "bulk-interfaces-in-city",
            "forbid (principal, action, resource)\nwhen { resource.kind == \"interface\" && context.bulk && !principal.in_city };".to_owned(),
        ),
        (
            "bank-cards-in-city",
            "forbid (principal, action, resource)\nwhen { context.plaintext_items.containsAny([\"bank_card\", \"id_number\"]) && !principal.in_city };".to_owned(),
        ),
        (
            "gaochun-data-stays-in-nanjing",
            "forbid (principal, action, resource)\nwhen { resource.provider_region == \"320118\" && resource.has_personal && !(principal.region like \"3201*\") };".to_owned(),
        ),
        (
            "decommissioned-resources",
            format!(
                "forbid (principal, action, resource)\nwhen {{ resource in [Civitas::Resource::\"{}\", Civitas::Resource::\"{}\", Civitas::Resource::\"{}\"] }};",
                resource(100),
                resource(200),
                resource(300)
            ),
        ),
        (
            "maintenance-window",
            "forbid (principal, action, resource)\nwhen { context.weekday == 7 && context.hour >= 2 && context.hour < 4 };".to_owned(),
        ),
    ];
    policies
        .into_iter()
        .map(|(id, text)| (id.to_owned(), text))
        .collect()
}

fn build_requests(
    generator: &mut Generator,
    world: &World,
    now: Timestamp,
) -> Vec<DecisionRequest> {
    (0..REQUEST_POOL)
        .map(|_| {
            // Nine in ten requests are for a pair that holds a grant; the rest hold none.
            let (consumer_index, resource_index) = if generator.chance(90) {
                world.pairs[generator.below(world.pairs.len())]
            } else {
                (generator.below(SYSTEMS), generator.below(RESOURCES))
            };
            let resource = world.resources[resource_index].clone();
            let requested_items = if generator.chance(40) && !resource.items.is_empty() {
                let mut codes: Vec<String> = resource
                    .items
                    .iter()
                    .filter(|_| generator.chance(50))
                    .map(|item| item.code.clone())
                    .collect();
                if generator.chance(10) {
                    codes.push("unknown_item".to_owned());
                }
                Some(codes)
            } else {
                None
            };
            let bulk = generator.chance(15);
            DecisionRequest {
                consumer: world.consumers[consumer_index].clone(),
                resource,
                requested_items,
                at: now + (generator.below(3600) as i64).seconds(),
                local_time: LocalTime::new(generator.below(24) as u8, 1 + generator.below(7) as u8)
                    .expect("generated local time is valid"),
                bulk,
                expected_rows: if bulk {
                    generator.below(2_000_000) as u64
                } else {
                    generator.below(100) as u64
                },
            }
        })
        .collect()
}

fn percentile(sorted_nanoseconds: &[u64], fraction: f64) -> f64 {
    let rank = ((sorted_nanoseconds.len() as f64 * fraction).ceil() as usize)
        .clamp(1, sorted_nanoseconds.len());
    sorted_nanoseconds[rank - 1] as f64 / 1_000.0
}

/// The percentiles of one round, in µs, and its throughput.
#[derive(Clone, Copy, Default)]
struct Summary {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
    per_second: f64,
}

impl Summary {
    fn of(mut nanoseconds: Vec<u64>, run_time: Duration) -> Summary {
        nanoseconds.sort_unstable();
        Summary {
            p50: percentile(&nanoseconds, 0.50),
            p99: percentile(&nanoseconds, 0.99),
            p999: percentile(&nanoseconds, 0.999),
            max: percentile(&nanoseconds, 1.0),
            per_second: nanoseconds.len() as f64 / run_time.as_secs_f64(),
        }
    }

    /// The median of each figure over the rounds.
    fn median(rounds: &[Summary]) -> Summary {
        let median_of = |figure: fn(&Summary) -> f64| {
            let mut values: Vec<f64> = rounds.iter().map(figure).collect();
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Summary {
            p50: median_of(|summary| summary.p50),
            p99: median_of(|summary| summary.p99),
            p999: median_of(|summary| summary.p999),
            max: median_of(|summary| summary.max),
            per_second: median_of(|summary| summary.per_second),
        }
    }
}

/// Wall-clock and thread-CPU summaries of one round.
struct Round {
    wall: Summary,
    cpu: Summary,
    allowed: usize,
}

/// Decides `requests` in order, timing each decision.
fn run(
    requests: &[&DecisionRequest],
    grants: &GrantIndex,
    policies: &PlatformPolicies,
    clock_overhead: u64,
) -> Round {
    let mut wall_nanoseconds = Vec::with_capacity(requests.len());
    let mut cpu_nanoseconds = Vec::with_capacity(requests.len());
    let mut allowed = 0usize;
    let run_started = Instant::now();
    for request in requests {
        let cpu_started = thread_cpu_nanoseconds();
        let started = Instant::now();
        let decision = decide(black_box(request), grants, policies);
        let elapsed = started.elapsed();
        let cpu_elapsed = thread_cpu_nanoseconds() - cpu_started;
        allowed += usize::from(decision.is_allow());
        black_box(decision);
        wall_nanoseconds.push(elapsed.as_nanos() as u64);
        cpu_nanoseconds.push(cpu_elapsed.saturating_sub(clock_overhead));
    }
    let run_time = run_started.elapsed();
    Round {
        wall: Summary::of(wall_nanoseconds, run_time),
        cpu: Summary::of(cpu_nanoseconds, run_time),
        allowed,
    }
}

fn main() {
    let now: Timestamp = "2026-05-12T02:00:00Z".parse().expect("valid timestamp");
    let mut generator = Generator(0x5EED_C1F1_7A5E_0001);
    let world = build_world(&mut generator, now);
    let load_before = load_average();

    let started = Instant::now();
    let grants = GrantIndex::from_grants(world.grants.clone()).expect("generated grants are valid");
    let index_time = started.elapsed();
    let nanjing = RegionCode::parse("320100").expect("nanjing is in the table");
    let mut policies = PlatformPolicies::with_policies(nanjing, platform_policies(&world))
        .expect("the benchmark policies are valid");
    // The gateway registers the systems and resources it knows. One resource in ten is left out,
    // so that the path that builds Cedar entities per exchange is part of the measurement.
    let started = Instant::now();
    policies
        .set_directory(
            world.consumers.iter().cloned(),
            world
                .resources
                .iter()
                .enumerate()
                .filter(|(number, _)| number % 10 != 0)
                .map(|(_, resource)| resource.clone()),
        )
        .expect("the directory builds");
    let directory_time = started.elapsed();
    let requests = build_requests(&mut generator, &world, now);
    let repeated: Vec<&DecisionRequest> = requests.iter().cycle().take(DECISIONS).collect();
    let first_sight: Vec<&DecisionRequest> = requests.iter().collect();

    let mut cold_policies = policies.clone();
    cold_policies.set_memo_capacity(0);
    // Warms caches and the allocator, and checks that the memo changes no decision.
    for request in &requests {
        assert_eq!(
            decide(request, &grants, &cold_policies),
            decide(request, &grants, &policies),
            "the memo changed a decision"
        );
    }

    let clock_overhead = thread_cpu_clock_overhead();
    let (mut cold, mut fresh, mut steady) = (Vec::new(), Vec::new(), Vec::new());
    let mut allowed = 0;
    let mut hit_rate = 0.0;
    for _ in 0..ROUNDS {
        cold.push(run(&repeated, &grants, &cold_policies, clock_overhead));

        let mut memo_policies = policies.clone();
        // A clone's memo starts empty: every request is new to it.
        fresh.push(run(&first_sight, &grants, &memo_policies, clock_overhead));
        // One warm-up pass has happened; measure the repeated mix.
        let before = memo_policies.memo_stats();
        let round = run(&repeated, &grants, &memo_policies, clock_overhead);
        let after = memo_policies.memo_stats();
        let (hits, misses) = (after.hits - before.hits, after.misses - before.misses);
        hit_rate = hits as f64 * 100.0 / (hits + misses).max(1) as f64;
        allowed = round.allowed;
        steady.push(round);
        memo_policies.set_memo_capacity(0);
    }

    println!(
        "decide(): {} grants indexed in {:.0} ms, {} platform policies, directory of {} systems and {} resources built in {:.0} ms; {} distinct requests ({:.0}% allowed); median of {ROUNDS} interleaved rounds",
        grants.len(),
        index_time.as_secs_f64() * 1_000.0,
        policies.len(),
        SYSTEMS,
        RESOURCES - RESOURCES / 10,
        directory_time.as_secs_f64() * 1_000.0,
        REQUEST_POOL,
        allowed as f64 * 100.0 / DECISIONS as f64
    );
    println!();
    println!("| decisions | clock | p50 (µs) | p99 (µs) | p999 (µs) | max (µs) | decisions/s |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let rows = [
        (format!("cold: memo off, {DECISIONS} per round"), &cold),
        (
            format!("first sight: empty memo, {REQUEST_POOL} distinct"),
            &fresh,
        ),
        (
            format!("steady state: {REQUEST_POOL} distinct repeated, {DECISIONS} per round"),
            &steady,
        ),
    ];
    for (name, rounds) in rows {
        let walls: Vec<Summary> = rounds.iter().map(|round| round.wall).collect();
        let cpus: Vec<Summary> = rounds.iter().map(|round| round.cpu).collect();
        for (clock, summary) in [
            ("wall", Summary::median(&walls)),
            ("thread CPU", Summary::median(&cpus)),
        ] {
            println!(
                "| {name} | {clock} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
                summary.p50, summary.p99, summary.p999, summary.max, summary.per_second
            );
        }
    }
    println!();
    println!(
        "Steady-state memo hit rate {hit_rate:.1}% of the decisions that reach the platform policies. Load average {load_before} before, {} after, on {} CPUs. Wall time includes time the machine spent on other processes; thread CPU time excludes it. decisions/s is wall-clock throughput of one thread, timing calls included.",
        load_average(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );
}

/// CPU time this thread has used, in nanoseconds.
fn thread_cpu_nanoseconds() -> u64 {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable timespec and the clock id is a constant Linux knows.
    let result = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    assert_eq!(result, 0, "the thread CPU clock is readable");
    time.tv_sec as u64 * 1_000_000_000 + time.tv_nsec as u64
}

/// The median cost of reading the thread CPU clock, subtracted from each sample.
fn thread_cpu_clock_overhead() -> u64 {
    let mut samples: Vec<u64> = (0..10_000)
        .map(|_| {
            let started = thread_cpu_nanoseconds();
            thread_cpu_nanoseconds() - started
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// The one-minute load average, to judge how busy the machine was.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}
