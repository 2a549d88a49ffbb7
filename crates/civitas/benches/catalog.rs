//! The catalog benchmark: `bench/catalog/run` (or `cargo bench -p civitas --bench catalog`)
//! prints a markdown table.
//!
//! On directories from `civitas-synth` (Chinese names from templates over real department and
//! topic vocabulary, published by the 127 bodies of a synthetic Nanjing, registered first with
//! the systems their interfaces name), it measures what a city would see:
//!
//! - `civitas catalog import FILE.jsonl`, the release binary spawned on a fresh SQLite data dir,
//!   for Nanjing's 172,654 directories: directories per second from the start of the command
//!   until it exits with everything stored and searchable (the index committed);
//! - the same import of 1,000,000 directories, then `civitas serve` on that data dir: its
//!   start-up time and resident memory (`VmRSS`, `VmHWM` from `/proc/PID/status`) after loading
//!   and after the queries;
//! - search latency through `GET /api/v1/search` from a concurrent client (tasks on keep-alive
//!   connections, an admin key), on a mix of 1 to 3 word Chinese and English queries each asking
//!   for two facets (three in ten also filtering), with the API's default snippets and without;
//! - the same queries on SQLite FTS5 over the same rows (read back from the server's store and
//!   segmented by the same jieba analyzers), in the same run, with the same answers checked
//!   (totals and facet counts), and the latency ratio.
//!
//! Figures are medians of repeated runs, interleaved between the engines: the machine is shared
//! and noisy.
//!
//! Environment variables: `CIVITAS_BENCH_DOCS` (the search case, default 1,000,000),
//! `CIVITAS_BENCH_IMPORT_DOCS` (the import case, default 172,654), `CIVITAS_BENCH_RUNS`
//! (default 3), `CIVITAS_BENCH_TASKS` (concurrent client tasks and FTS5 connections, default
//! 4), `CIVITAS_BENCH_QUERIES` (per task and run, default 500), `CIVITAS_BENCH_FTS_QUERIES` (the
//! same for FTS5, default 100: it takes up to seconds on broad words), `CIVITAS_BENCH_CHECKED`
//! (queries whose answers are compared, default 300), `CIVITAS_BENCH_DIR` (where the
//! data dirs go, default a temporary directory), `CIVITAS_BENCH_BINARY` (default the `civitas`
//! built with this benchmark).

#[path = "../../civitas-search/benches/shared/mod.rs"]
mod shared;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas::catalog_io::{DraftWriter, Format};
use civitas_core::authz::Permit;
use civitas_core::registry::Organization;
use civitas_core::{Code, NodeCode, Uscc};
use civitas_search::SearchDocument;
use civitas_store::{NewOrganization, NewSystem, Store, StoreUrl};
use civitas_synth::catalog::{self, CatalogConfig};
use serde_json::Value;
use shared::{
    Agreement, Answer, BenchQuery, Fts5, Memory, environment_number, fts_search, load_average,
    median, megabytes, milliseconds, percentile,
};

const SEED: u64 = 2024;
const ADMIN_KEY: &str = "cvk_catalog-bench-admin-key-0123456789";
/// The node code the server runs with (the default), the origin of local entries.
const NODE: &str = "cn-js-nanjing";

fn runtime() -> tokio::runtime::Runtime {
    // One worker: the client waits on sockets and SQLite's own threads, and leaves the cores
    // to the server.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn binary() -> PathBuf {
    std::env::var_os("CIVITAS_BENCH_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_civitas")))
}

fn file_bytes(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |metadata| metadata.len())
}

// ---------------------------------------------------------------------------------------------
// Data

/// A generated catalog in JSON Lines, and the systems its interfaces name.
struct Catalog {
    path: PathBuf,
    rows: u64,
    systems: BTreeSet<(String, String)>,
}

/// Writes `total` generated directories with the import's own writer.
fn write_catalog(path: &Path, total: u64) -> Catalog {
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        DraftWriter::new(BufWriter::with_capacity(1 << 20, file), Format::Jsonl).unwrap();
    let mut systems = BTreeSet::new();
    let config = CatalogConfig::scaled(total, civitas_synth::organizations(SEED));
    let mut rows = 0;
    for draft in catalog::directories(SEED, config) {
        if let Some(system) = &draft.provider_system {
            systems.insert((draft.provider.to_string(), system.to_string()));
        }
        writer.write(&draft).unwrap();
        rows += 1;
    }
    writer.finish().unwrap();
    Catalog {
        path: path.to_owned(),
        rows,
        systems,
    }
}

/// Registers the publishing bodies (parents first, as generated) and their systems in the store
/// of a new data dir, as an administrator would before the first import.
async fn register_providers(data_dir: &Path, catalog: &Catalog) {
    let store = Store::connect(&StoreUrl::Sqlite(data_dir.join("civitas.db")))
        .await
        .unwrap();
    let permit = Permit::internal("civitas:bench");
    for organization in civitas_synth::organizations(SEED) {
        store
            .create_organization(
                &permit,
                &NewOrganization {
                    code: organization.code,
                    name: organization.name,
                    name_en: Some(organization.name_en),
                    level: organization.level,
                    region: organization.region,
                    parent: organization.parent,
                },
            )
            .await
            .unwrap();
    }
    for (organization, system) in &catalog.systems {
        store
            .create_system(
                &permit,
                &Uscc::parse(organization).unwrap(),
                &NewSystem {
                    code: Code::parse(system).unwrap(),
                    name: format!("{system} 业务系统"),
                    description: String::new(),
                    consumes: false,
                    provides: true,
                },
            )
            .await
            .unwrap();
    }
    store.close().await;
}

/// Runs `civitas catalog import` on `data_dir`; returns its wall-clock time.
fn import(data_dir: &Path, catalog: &Catalog) -> Duration {
    let started = Instant::now();
    let output = Command::new(binary())
        .arg("catalog")
        .arg("import")
        .arg(&catalog.path)
        .arg("--data-dir")
        .arg(data_dir)
        .env("CIVITAS_LOG", "warn")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the import failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected = format!(
        "{} created, 0 updated, 0 unchanged, 0 rejected",
        catalog.rows
    );
    assert!(stdout.contains(&expected), "unexpected import: {stdout}");
    let indexed = format!("search index updated with {} changes", catalog.rows);
    assert!(stdout.contains(&indexed), "unexpected indexing: {stdout}");
    eprintln!("{}", stdout.trim());
    took
}

/// A fresh data dir with the providers registered and `catalog` imported; the import's time.
fn imported_data_dir(
    runtime: &tokio::runtime::Runtime,
    data_dir: &Path,
    catalog: &Catalog,
) -> Duration {
    if data_dir.exists() {
        std::fs::remove_dir_all(data_dir).unwrap();
    }
    std::fs::create_dir_all(data_dir).unwrap();
    runtime.block_on(register_providers(data_dir, catalog));
    import(data_dir, catalog)
}

// ---------------------------------------------------------------------------------------------
// The server

struct Server {
    child: Child,
    base: String,
    started_in: Duration,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let started = Instant::now();
        let log = std::fs::File::create(data_dir.join("bench-server.log")).unwrap();
        let mut child = Command::new(binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0", "--gateway-listen", "127.0.0.1:0"])
            .args(["--log", "warn", "--log-format", "json"])
            .env("CIVITAS_BOOTSTRAP_TOKEN", ADMIN_KEY)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                panic!(
                    "the server exited before serving; see {}",
                    data_dir.join("bench-server.log").display()
                );
            };
            let line = line.unwrap();
            if let Some(rest) = line.split("serving the API on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep reading what the server prints, so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            base,
            started_in: started.elapsed(),
            child,
        }
    }

    fn memory(&self) -> Memory {
        shared::memory(Some(self.child.id()))
    }

    /// Asks for a graceful stop (SIGTERM) and waits.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client(tasks: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(tasks)
        .tcp_nodelay(true)
        .build()
        .unwrap()
}

async fn http_search(
    client: &reqwest::Client,
    base: &str,
    query: &BenchQuery,
    snippets: bool,
) -> bytes::Bytes {
    let response = client
        .get(format!(
            "{base}/api/v1/search?{}",
            query.query_string(snippets)
        ))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "search failed: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body
}

fn http_answer(query: &BenchQuery, body: &[u8]) -> Answer {
    let value: Value = serde_json::from_slice(body).unwrap();
    Answer {
        total: value["total"].as_u64().unwrap(),
        hits: value["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|hit| hit["code"].as_str().unwrap().to_owned())
            .collect(),
        facets: query
            .facets
            .iter()
            .map(|facet| {
                value["facets"][facet.as_str()]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|count| {
                        (
                            count["value"].as_str().unwrap().to_owned(),
                            count["count"].as_u64().unwrap(),
                        )
                    })
                    .collect()
            })
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------------
// FTS5 over the store's rows

/// Builds the FTS5 database from the rows of the data dir's store, each as the server indexes it.
async fn build_fts(data_dir: &Path, path: &Path, connections: u32) -> Fts5 {
    let store = Store::connect(&StoreUrl::Sqlite(data_dir.join("civitas.db")))
        .await
        .unwrap();
    let node = NodeCode::parse(NODE).unwrap();
    let mut providers: HashMap<String, Organization> = HashMap::new();
    let mut fts = Fts5::create(path, connections).await;
    let mut after = 0;
    loop {
        let changes = store.resource_changes(after, 5_000).await.unwrap();
        let Some((last, _)) = changes.last() else {
            break;
        };
        after = *last;
        let unknown: Vec<String> = changes
            .iter()
            .map(|(_, resource)| resource.draft.provider.to_string())
            .filter(|code| !providers.contains_key(code))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            let codes: Vec<&str> = unknown.iter().map(String::as_str).collect();
            for organization in store.organizations_by_code(&codes).await.unwrap() {
                providers.insert(organization.code.to_string(), organization);
            }
        }
        let batch = changes
            .iter()
            .filter(|(_, resource)| resource.active)
            .map(|(_, resource)| {
                let provider = &providers[resource.draft.provider.as_str()];
                SearchDocument::from_resource(
                    resource,
                    provider,
                    &node,
                    civitas_api::search::payload(resource, provider),
                )
            })
            .collect();
        fts.insert(batch).await;
    }
    store.close().await;
    fts.finish().await;
    fts
}

// ---------------------------------------------------------------------------------------------

/// p50 and p99 of each run, in milliseconds.
#[derive(Default)]
struct Percentiles {
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Percentiles {
    fn add(&mut self, sorted: &[Duration]) {
        self.p50.push(milliseconds(percentile(sorted, 0.50)));
        self.p99.push(milliseconds(percentile(sorted, 0.99)));
    }

    fn medians(&self) -> (f64, f64) {
        (median(self.p50.clone()), median(self.p99.clone()))
    }

    fn show(&self) -> String {
        let (p50, p99) = self.medians();
        format!("{p50:.2} ms / {p99:.2} ms")
    }
}

fn memory_text(memory: Memory) -> String {
    format!(
        "VmRSS {:.0} MB (heap and other anonymous {:.0} MB, mapped files {:.0} MB), VmHWM {:.0} MB",
        megabytes(memory.resident),
        megabytes(memory.anonymous),
        megabytes(memory.file),
        megabytes(memory.peak)
    )
}

fn main() {
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` (no `--bench`) a small smoke run checks
    // that the benchmark still works without taking the test suite's time.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let scale = |full: u64, small: u64| if smoke { small } else { full };
    let documents = environment_number("CIVITAS_BENCH_DOCS", scale(1_000_000, 2_000));
    let import_documents = environment_number(
        "CIVITAS_BENCH_IMPORT_DOCS",
        scale(catalog::NANJING_DIRECTORIES, 1_000),
    );
    let runs = environment_number("CIVITAS_BENCH_RUNS", scale(3, 1)).max(1) as usize;
    let tasks = environment_number("CIVITAS_BENCH_TASKS", 4).max(1) as usize;
    let per_task = environment_number("CIVITAS_BENCH_QUERIES", scale(500, 20)).max(1) as usize;
    // FTS5 takes up to seconds on broad words at a million rows: fewer of its queries are timed.
    let fts_per_task = environment_number("CIVITAS_BENCH_FTS_QUERIES", scale(100, 10))
        .clamp(1, per_task as u64) as usize;
    let checked = environment_number("CIVITAS_BENCH_CHECKED", scale(300, 20)).max(1) as usize;
    let temporary = tempfile::tempdir_in(
        std::env::var_os("CIVITAS_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from),
    )
    .unwrap();
    let work = temporary.path();
    let runtime = runtime();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |measurement: String, result: String| {
        eprintln!("{measurement}: {result}");
        rows.push((measurement, result));
    };
    row(
        "machine: cores, load average (1, 5, 15 min) at start".to_owned(),
        format!("{}, {}", shared::cores(), load_average()),
    );
    assert!(
        binary().exists(),
        "{} is missing: build it with `cargo build --release -p civitas`",
        binary().display()
    );

    // Import of Nanjing's catalog.
    let started = Instant::now();
    let nanjing = write_catalog(&work.join("nanjing.jsonl"), import_documents);
    row(
        format!("generate {import_documents} directories as JSON Lines (civitas-synth)"),
        format!(
            "{:.1} s, {:.0} MB, {} providers, {} provider systems",
            started.elapsed().as_secs_f64(),
            megabytes(file_bytes(&nanjing.path)),
            civitas_synth::organizations(SEED).len(),
            nanjing.systems.len()
        ),
    );
    let rates: Vec<f64> = (0..runs)
        .map(|_| {
            let took = imported_data_dir(&runtime, &work.join("nanjing"), &nanjing);
            import_documents as f64 / took.as_secs_f64()
        })
        .collect();
    eprintln!("import {import_documents}: {rates:?} directories/s");
    row(
        format!(
            "`civitas catalog import` of {import_documents} directories into a new SQLite data dir, until stored and searchable ({runs} runs)"
        ),
        format!(
            "{:.0} directories/s (median; runs {})",
            median(rates.clone()),
            rates
                .iter()
                .map(|rate| format!("{rate:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    std::fs::remove_dir_all(work.join("nanjing")).unwrap();
    std::fs::remove_file(&nanjing.path).unwrap();

    // The search case.
    let large = write_catalog(&work.join("large.jsonl"), documents);
    let data_dir = work.join("large");
    let took = imported_data_dir(&runtime, &data_dir, &large);
    std::fs::remove_file(&large.path).unwrap();
    row(
        format!("`civitas catalog import` of {documents} directories (one run)"),
        format!(
            "{:.0} directories/s ({:.1} s)",
            documents as f64 / took.as_secs_f64(),
            took.as_secs_f64()
        ),
    );
    row(
        format!("data dir with {documents} directories: store, search index"),
        format!(
            "{:.0} MB, {:.0} MB",
            megabytes(
                ["civitas.db", "civitas.db-wal"]
                    .iter()
                    .map(|name| file_bytes(&data_dir.join(name)))
                    .sum()
            ),
            megabytes(civitas::demo::disk_usage(&data_dir.join("index")))
        ),
    );

    let started = Instant::now();
    let fts_path = work.join("fts.db");
    let fts = runtime.block_on(build_fts(&data_dir, &fts_path, tasks as u32));
    assert_eq!(fts.rows() as u64, documents);
    row(
        format!(
            "SQLite FTS5 over the same {documents} rows: build (jieba segmentation included), size"
        ),
        format!(
            "{:.0} rows/s, {:.0} MB",
            documents as f64 / started.elapsed().as_secs_f64(),
            megabytes(file_bytes(&fts_path) + file_bytes(&work.join("fts.db-wal")))
        ),
    );

    let server = Server::start(&data_dir);
    // Let the start-up tasks (outbox, index feeder) settle.
    std::thread::sleep(Duration::from_secs(1));
    let loaded = server.memory();
    row(
        format!("`civitas serve` with {documents} directories: start-up until serving"),
        format!("{:.2} s", server.started_in.as_secs_f64()),
    );
    row(
        "server memory after start-up".to_owned(),
        memory_text(loaded),
    );

    let queries = Arc::new(shared::query_mix(1_000));
    let client = client(tasks);
    let base = server.base.clone();
    // Every query once through the API and on FTS5: the answers must agree, and both engines'
    // pages get warm.
    let mut agreement = Agreement::default();
    runtime.block_on(async {
        for query in queries.iter().take(checked) {
            let reference = http_answer(query, &http_search(&client, &base, query, false).await);
            agreement.add(&reference, &fts_search(&fts.pool, query).await);
        }
    });
    let mut terms = [0usize; 3];
    for query in queries.iter() {
        terms[query.words.len() - 1] += 1;
    }
    let mut with_snippets = Percentiles::default();
    let mut without_snippets = Percentiles::default();
    let mut sequential = Percentiles::default();
    let mut sqlite = Percentiles::default();
    for run in 0..runs {
        // One client alone: the time a query takes without waiting for others.
        let latencies = runtime.block_on(shared::concurrent_latencies(&queries, 1, per_task, {
            let client = client.clone();
            let base = base.clone();
            move |query| {
                let client = client.clone();
                let base = base.clone();
                async move {
                    std::hint::black_box(http_search(&client, &base, &query, false).await);
                }
            }
        }));
        sequential.add(&latencies);
        for snippets in [true, false] {
            let client = client.clone();
            let base = base.clone();
            let latencies = runtime.block_on(shared::concurrent_latencies(
                &queries,
                tasks,
                per_task,
                move |query| {
                    let client = client.clone();
                    let base = base.clone();
                    async move {
                        std::hint::black_box(http_search(&client, &base, &query, snippets).await);
                    }
                },
            ));
            if snippets {
                with_snippets.add(&latencies);
            } else {
                without_snippets.add(&latencies);
            }
        }
        let pool = fts.pool.clone();
        let latencies = runtime.block_on(shared::concurrent_latencies(
            &queries,
            tasks,
            fts_per_task,
            move |query| {
                let pool = pool.clone();
                async move {
                    std::hint::black_box(fts_search(&pool, &query).await);
                }
            },
        ));
        sqlite.add(&latencies);
        eprintln!(
            "run {run}: api {:?} / {:?}, without snippets {:?} / {:?}, fts5 {:?} / {:?}",
            with_snippets.p50,
            with_snippets.p99,
            without_snippets.p50,
            without_snippets.p99,
            sqlite.p50,
            sqlite.p99
        );
    }
    let after_queries = server.memory();
    server.stop();

    row(
        "query mix".to_owned(),
        format!(
            "{} queries of 1, 2, 3 words: {}, {}, {}; each with two facets, 10 values each; 30% with a filter; first page of 20 hits by relevance",
            queries.len(),
            terms[0],
            terms[1],
            terms[2]
        ),
    );
    row(
        format!(
            "search through `GET /api/v1/search` at {documents} directories, {tasks} concurrent keep-alive clients, {} queries a run: p50 / p99",
            tasks * per_task
        ),
        with_snippets.show(),
    );
    row(
        "same, without snippets (`snippets=false`)".to_owned(),
        without_snippets.show(),
    );
    row(
        format!("same, without snippets, one client alone ({per_task} queries a run)"),
        sequential.show(),
    );
    row(
        format!(
            "same queries on SQLite FTS5 in the benchmark's process (no HTTP), {tasks} connections, {} queries a run: p50 / p99",
            tasks * fts_per_task
        ),
        sqlite.show(),
    );
    let (fts_p50, fts_p99) = sqlite.medians();
    let (api_p50, api_p99) = without_snippets.medians();
    let (snippet_p50, snippet_p99) = with_snippets.medians();
    row(
        "latency ratio FTS5 / civitas API: p50, p99 (without snippets; with)".to_owned(),
        format!(
            "{:.1}x, {:.1}x ({:.1}x, {:.1}x)",
            fts_p50 / api_p50,
            fts_p99 / api_p99,
            fts_p50 / snippet_p50,
            fts_p99 / snippet_p99
        ),
    );
    row(
        format!(
            "FTS5 answers to the first {} queries of the mix agree with the API's",
            agreement.queries
        ),
        agreement.summary(),
    );
    row(
        "server memory after the queries".to_owned(),
        memory_text(after_queries),
    );
    runtime.block_on(fts.pool.close());
    row("load average at end".to_owned(), load_average());

    println!("| measurement | result |");
    println!("| --- | --- |");
    for (measurement, result) in rows {
        println!("| {measurement} | {result} |");
    }
}
