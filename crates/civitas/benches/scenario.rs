//! Scenario benchmark (issue 7): `bench/scenario/run` (or `cargo bench -p civitas --bench
//! scenario -- [--seconds N] [--rounds N] [--rate N]`) prints a markdown table.
//!
//! The rental-withdrawal scenario end to end: a client posts runs to the scenario API of a real
//! server (`server::start`, what `civitas serve` runs), which calls five provider services
//! through the exchange gateway in process (authentication, grant decision, filtering, a ledger
//! record per step), each service answering after 2 ms, then appends the run's record to the
//! ledger and waits for it to be durable, which makes the steps' records durable too. The client drives open loop at a fixed rate (default 200 runs/s): a run
//! is sent every 1/rate seconds whether or not earlier ones have answered, and its latency is
//! measured from sending the request to having read the whole response. In the same round the
//! five upstream services are called directly at the same rate, and the slowest of them (by
//! median) is the reference of the ratio.
//!
//! The server, the provider services and the client each get their own runtime, as if they were
//! processes: the server's has a worker per core like `civitas serve`, the others one thread.
//! The citizens are a mix of applicants to approve, deny and send to review; every answer is
//! checked against the outcome the population's registers imply.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use civitas::{config::Config, server};
use civitas_demo::{
    Department, Population, Scenario, ServiceOptions, reference, start_provider_services_with,
};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

const UPSTREAM_LATENCY: Duration = Duration::from_millis(2);
const SCENARIO: Scenario = Scenario::HousingFundRentalWithdrawal;

struct Options {
    seconds: u64,
    rounds: usize,
    rate: u64,
    warmup_seconds: u64,
}

fn options() -> Options {
    let mut options = Options {
        seconds: 10,
        rounds: 3,
        rate: 200,
        warmup_seconds: 3,
    };
    // `cargo bench` passes `--bench`; under `cargo test` (no `--bench`) a short smoke run checks
    // that the benchmark still works without taking the test suite's time.
    if !std::env::args().any(|argument| argument == "--bench") {
        options = Options {
            seconds: 1,
            rounds: 1,
            rate: 20,
            warmup_seconds: 0,
        };
    }
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = |name: &str| -> u64 {
            arguments
                .next()
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match argument.as_str() {
            "--seconds" => options.seconds = value("--seconds"),
            "--rounds" => options.rounds = value("--rounds") as usize,
            "--rate" => options.rate = value("--rate"),
            "--warmup" => options.warmup_seconds = value("--warmup"),
            // `cargo bench` passes `--bench`; a filter argument means nothing here.
            _ => {}
        }
    }
    assert!(options.seconds > 0 && options.rounds > 0 && options.rate > 0);
    options
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request to send: the URL, the body (a POST when given) and the expected outcome.
#[derive(Clone)]
struct Call {
    url: String,
    key: Option<String>,
    body: Option<Bytes>,
    expected: Option<&'static str>,
    label: usize,
}

/// What one answered call measured.
struct Sample {
    label: usize,
    latency: Duration,
    /// How late the request left after its scheduled time.
    lateness: Duration,
    ok: bool,
    /// For scenario runs: the longest step (a gateway call, as the engine timed it).
    slowest_step: Option<Duration>,
    /// For scenario runs: the engine's own time for the run.
    engine: Option<Duration>,
}

async fn send(client: &HttpClient, call: &Call) -> (bool, Option<Duration>, Option<Duration>) {
    let mut request = hyper::Request::builder().uri(&call.url);
    if let Some(key) = &call.key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = match &call.body {
        Some(body) => request
            .method("POST")
            .header("content-type", "application/json")
            .body(Full::new(body.clone())),
        None => request.method("GET").body(Full::new(Bytes::new())),
    }
    .expect("a valid request");
    let Ok(response) = client.request(request).await else {
        return (false, None, None);
    };
    let status = response.status();
    let Ok(body) = response.into_body().collect().await else {
        return (false, None, None);
    };
    let Some(expected) = call.expected else {
        // A direct call: "not found" is one of the services' answers too.
        return (
            status.is_success() || status == hyper::StatusCode::NOT_FOUND,
            None,
            None,
        );
    };
    let body = body.to_bytes();
    let Ok(run) = serde_json::from_slice::<Value>(&body) else {
        return (false, None, None);
    };
    let outcome_ok = status.is_success() && run["result"]["outcome"] == expected;
    if !outcome_ok {
        eprintln!(
            "unexpected answer ({status}, expected {expected}): {}",
            String::from_utf8_lossy(&body)
        );
    }
    let slowest_step = run["result"]["steps"].as_array().and_then(|steps| {
        steps
            .iter()
            .filter_map(|step| step["duration_us"].as_u64())
            .max()
            .map(Duration::from_micros)
    });
    let engine = run["result"]["duration_us"]
        .as_u64()
        .map(Duration::from_micros);
    (outcome_ok, slowest_step, engine)
}

/// Sends `calls` in turn, one every `1 / rate` seconds for `seconds`, without waiting for
/// answers, and returns what every call measured.
async fn open_loop(client: &HttpClient, calls: &[Call], rate: u64, seconds: u64) -> Vec<Sample> {
    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let count = rate * seconds;
    let start = tokio::time::Instant::now() + Duration::from_millis(5);
    let mut tasks = Vec::with_capacity(count as usize);
    for index in 0..count {
        let scheduled = start + period * index as u32;
        tokio::time::sleep_until(scheduled).await;
        let call = calls[index as usize % calls.len()].clone();
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let lateness = sent.saturating_duration_since(scheduled.into_std());
            let (ok, slowest_step, engine) = send(&client, &call).await;
            Sample {
                label: call.label,
                latency: sent.elapsed(),
                lateness,
                ok,
                slowest_step,
                engine,
            }
        }));
    }
    let mut samples = Vec::with_capacity(tasks.len());
    for task in tasks {
        samples.push(task.await.expect("a call task"));
    }
    samples
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn milliseconds(durations: impl Iterator<Item = Duration>) -> Vec<f64> {
    durations.map(|d| d.as_secs_f64() * 1000.0).collect()
}

/// p50 and p99 of a set of samples, in milliseconds.
fn p50_p99(mut values: Vec<f64>) -> (f64, f64) {
    (percentile(&mut values, 50.0), percentile(&mut values, 99.0))
}

struct Round {
    scenario_p50: f64,
    scenario_p99: f64,
    scenario_max: f64,
    engine_p50: f64,
    step_p50: f64,
    step_p99: f64,
    achieved_rate: f64,
    lateness_p99: f64,
    failures: usize,
    runs: usize,
    upstream_p50: f64,
    upstream_p99: f64,
    slowest_upstream: &'static str,
}

/// p50 and p99 of `fdatasync` after a small write in `dir`, in milliseconds: the floor under every
/// durable ledger append and store commit, and on a shared machine the most variable part.
fn fdatasync_latency(dir: &std::path::Path) -> (f64, f64) {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).expect("a probe file");
    let mut samples = Vec::new();
    for _ in 0..200 {
        file.write_all(&[b'x'; 300]).expect("a write");
        let started = Instant::now();
        file.sync_data().expect("fdatasync");
        samples.push(started.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(file);
    let _ = std::fs::remove_file(path);
    p50_p99(samples)
}

fn main() {
    let options = options();
    let data = tempfile::tempdir().expect("a temporary directory");

    // The server, like `civitas serve`: a multi-threaded runtime with a worker per core.
    let server_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("server")
        .build()
        .expect("the server runtime");
    let services_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("upstreams")
        .build()
        .expect("the upstreams' runtime");
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the client runtime");

    let today = jiff::Zoned::now().date();
    let population = Arc::new(Population::generate(20260101, 20_000, today).expect("citizens"));
    let services = services_runtime
        .block_on(start_provider_services_with(
            population.clone(),
            "127.0.0.1".parse().unwrap(),
            &ServiceOptions::default().with_latency(UPSTREAM_LATENCY),
        ))
        .expect("the provider services start");
    let settings = Config {
        data_dir: Some(data.path().to_path_buf()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..Config::default()
    }
    .resolve()
    .expect("settings");
    let running = server_runtime
        .block_on(server::start(
            &settings,
            Some("cvk_bench-admin-0123456789".into()),
        ))
        .expect("the server starts");
    let city = server_runtime
        .block_on(reference::install(running.store(), &services))
        .expect("the reference city installs");
    // The gateway follows the store within a second.
    std::thread::sleep(Duration::from_millis(1500));

    // Applicants with every outcome, taking turns: approve, deny, review.
    let examples = population.examples(SCENARIO, 40);
    let api = format!(
        "http://{}/api/v1/scenarios/{}/runs",
        running.api_addr,
        SCENARIO.code()
    );
    let mut runs = Vec::new();
    let lists = [
        ("approve", &examples.approve),
        ("deny", &examples.deny),
        ("needs_review", &examples.needs_review),
    ];
    let longest = lists.iter().map(|(_, list)| list.len()).max().unwrap_or(0);
    for index in 0..longest {
        for (expected, list) in lists {
            if list.is_empty() {
                continue;
            }
            let example = &list[index % list.len()];
            let body = json!({
                "inputs": { "id_number": example.id_number, "name": example.name, "months": 3 },
                "consent": format!("bench-consent-{index}"),
            });
            runs.push(Call {
                url: api.clone(),
                key: Some(city.city_app_key.clone()),
                body: Some(Bytes::from(body.to_string())),
                expected: Some(expected),
                label: 0,
            });
        }
    }
    let mix: Vec<String> = lists
        .iter()
        .map(|(outcome, list)| format!("{outcome} {}", list.len()))
        .collect();

    // The five services the scenario calls, directly, with the same applicants.
    let upstreams: [(&'static str, Department, &str); 5] = [
        ("persons", Department::PublicSecurity, "/persons/{id}"),
        ("households", Department::PublicSecurity, "/households/{id}"),
        ("insurance", Department::HumanResources, "/insurance/{id}"),
        (
            "properties",
            Department::NaturalResources,
            "/properties?owner={id}",
        ),
        ("accounts", Department::HousingFund, "/accounts/{id}"),
    ];
    let mut direct = Vec::new();
    for (index, example) in examples.approve.iter().chain(&examples.deny).enumerate() {
        let (_, department, path) = upstreams[index % upstreams.len()];
        direct.push(Call {
            url: format!(
                "{}{}",
                services.base_url(department),
                path.replace("{id}", &example.id_number)
            ),
            key: None,
            body: None,
            expected: None,
            label: index % upstreams.len(),
        });
    }
    // Round-robin over the services whatever the number of applicants.
    direct.truncate(direct.len() / upstreams.len() * upstreams.len());

    let client: HttpClient = {
        let _guard = client_runtime.enter();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector)
    };

    eprintln!(
        "warming up for {} s at {} runs/s ({} applicants: {})",
        options.warmup_seconds,
        options.rate,
        runs.len(),
        mix.join(", ")
    );
    let warmup = client_runtime.block_on(open_loop(
        &client,
        &runs,
        options.rate,
        options.warmup_seconds,
    ));
    let warmup_failures = warmup.iter().filter(|sample| !sample.ok).count();
    assert!(
        warmup_failures == 0,
        "{warmup_failures} of {} warm-up runs failed or decided otherwise than the registers say",
        warmup.len()
    );
    client_runtime.block_on(open_loop(&client, &direct, options.rate, 1));
    let fsync_before = fdatasync_latency(data.path());

    let mut rounds = Vec::new();
    for round in 0..options.rounds {
        let samples =
            client_runtime.block_on(open_loop(&client, &runs, options.rate, options.seconds));
        let direct_samples =
            client_runtime.block_on(open_loop(&client, &direct, options.rate, options.seconds));
        let (scenario_p50, scenario_p99) = p50_p99(milliseconds(samples.iter().map(|s| s.latency)));
        let scenario_max = samples
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .fold(0.0, f64::max);
        let (engine_p50, _) = p50_p99(milliseconds(samples.iter().filter_map(|s| s.engine)));
        let (step_p50, step_p99) =
            p50_p99(milliseconds(samples.iter().filter_map(|s| s.slowest_step)));
        let (_, lateness_p99) = p50_p99(milliseconds(samples.iter().map(|s| s.lateness)));
        let failures = samples.iter().filter(|s| !s.ok).count()
            + direct_samples.iter().filter(|s| !s.ok).count();
        // The slowest upstream: the one with the highest median.
        let (slowest, (upstream_p50, upstream_p99)) = (0..upstreams.len())
            .map(|label| {
                (
                    label,
                    p50_p99(milliseconds(
                        direct_samples
                            .iter()
                            .filter(|s| s.label == label)
                            .map(|s| s.latency),
                    )),
                )
            })
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0))
            .expect("five upstreams");
        let achieved_rate = samples.len() as f64 / options.seconds as f64;
        eprintln!(
            "round {}: scenario p50 {scenario_p50:.2} ms p99 {scenario_p99:.2} ms; slowest upstream ({}) p50 {upstream_p50:.2} ms p99 {upstream_p99:.2} ms; {failures} failures",
            round + 1,
            upstreams[slowest].0
        );
        rounds.push(Round {
            scenario_p50,
            scenario_p99,
            scenario_max,
            engine_p50,
            step_p50,
            step_p99,
            achieved_rate,
            lateness_p99,
            failures,
            runs: samples.len(),
            upstream_p50,
            upstream_p99,
            slowest_upstream: upstreams[slowest].0,
        });
    }
    let fsync_after = fdatasync_latency(data.path());
    let ledger_size = server_runtime.block_on(async {
        let response = reqwest::get(format!("http://{}/api/v1/ledger", running.api_addr))
            .await
            .ok()?;
        let value: Value = response.json().await.ok()?;
        value["size"].as_u64()
    });
    server_runtime
        .block_on(running.shutdown())
        .expect("the server stops");
    drop(services);

    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let scenario_p50 = med(&|r| r.scenario_p50);
    let scenario_p99 = med(&|r| r.scenario_p99);
    let upstream_p50 = med(&|r| r.upstream_p50);
    let upstream_p99 = med(&|r| r.upstream_p99);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!(
        "\n## Scenario benchmark: {} ({cores} cores, load average {})\n",
        SCENARIO.code(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "Open loop at {} runs/s for {} s per round, median of {} rounds; scenario API → gateway → \
         five upstream services each answering after {} ms; applicants: {}. Latency from sending \
         the request to reading the whole answer.\n",
        options.rate,
        options.seconds,
        rounds.len(),
        UPSTREAM_LATENCY.as_millis(),
        mix.join(", ")
    );
    println!("| measure | p50 ms | p99 ms | target |");
    println!("|---|---:|---:|---|");
    println!(
        "| scenario run, end to end | {scenario_p50:.2} | {scenario_p99:.2} | p50 ≤ 5, p99 ≤ 15 |"
    );
    println!(
        "| slowest step inside the run (gateway + upstream, engine's timing) | {:.2} | {:.2} | |",
        med(&|r| r.step_p50),
        med(&|r| r.step_p99)
    );
    println!(
        "| slowest single upstream call, direct ({}) | {upstream_p50:.2} | {upstream_p99:.2} | |",
        rounds[0].slowest_upstream
    );
    println!(
        "| ratio scenario / slowest upstream | {:.2} | {:.2} | |",
        scenario_p50 / upstream_p50,
        scenario_p99 / upstream_p99
    );
    println!("\nPer round:\n");
    println!(
        "| round | runs | achieved runs/s | failures | p50 ms | p99 ms | max ms | engine p50 ms | upstream p50 ms | upstream p99 ms | send lateness p99 ms |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (index, round) in rounds.iter().enumerate() {
        println!(
            "| {} | {} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            index + 1,
            round.runs,
            round.achieved_rate,
            round.failures,
            round.scenario_p50,
            round.scenario_p99,
            round.scenario_max,
            round.engine_p50,
            round.upstream_p50,
            round.upstream_p99,
            round.lateness_p99
        );
    }
    let verdict = |held: bool| if held { "met" } else { "MISSED" };
    println!(
        "\n- p50 {scenario_p50:.2} ms ≤ 5 ms: **{}**; p99 {scenario_p99:.2} ms ≤ 15 ms: **{}**",
        verdict(scenario_p50 <= 5.0),
        verdict(scenario_p99 <= 15.0)
    );
    println!(
        "- fdatasync on the data dir's disk, p50/p99: {:.2}/{:.2} ms before the rounds, {:.2}/{:.2} ms \
         after; a run waits for one: its own record's, which carries the steps' exchange records \
         written before it",
        fsync_before.0, fsync_before.1, fsync_after.0, fsync_after.1
    );
    println!(
        "- every run: API-key authentication of the city app, five gateway exchanges (grant \
         decision, JSON filtering, a ledger record each), the rules and the run's own durable \
         ledger record (the store lists runs from the ledger); ledger records at the end: {}",
        ledger_size.map_or("?".to_owned(), |size| size.to_string())
    );
}
