//! Search index benchmark: `cargo bench -p civitas-search` prints a markdown table.
//!
//! Measured, on catalog entries from `civitas-synth`:
//! - bulk indexing throughput for Nanjing's 172,654 directories, alone and with a SQLite "store"
//!   inserting the same rows at the same time;
//! - indexing throughput, size on disk, and the memory of a process that opens the index and
//!   searches it, at 1,000,000 directories;
//! - search latency (p50, p99) of a mix of 1 to 3 word Chinese and English queries, each asking
//!   for two facets and some for a filter, from several threads at once;
//! - the same queries on SQLite FTS5 over the same rows (text segmented by the same jieba),
//!   computing the same hits, total and facet counts in SQL.
//!
//! Figures are medians of repeated runs: the machine is shared and noisy.
//!
//! Environment variables: `CIVITAS_BENCH_DOCS` (default 1,000,000), `CIVITAS_BENCH_RUNS`
//! (default 3), `CIVITAS_BENCH_THREADS` (default 4), `CIVITAS_BENCH_QUERIES` (per thread and run,
//! default 500).

mod shared;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_core::NodeCode;
use civitas_core::catalog::{Resource, ResourceDraft};
use civitas_core::registry;
use civitas_search::{CatalogIndex, IndexOptions, SearchDocument, segment_for_query};
use civitas_synth::catalog::{self, CatalogConfig};
use jiff::Timestamp;
use shared::{
    Agreement, Answer, BenchQuery, Fts5, environment_number, fts_search, load_average, median,
    milliseconds, percentile,
};

const SEED: u64 = 2024;
const BATCH: usize = 5_000;
/// Set in a child process that only opens an index, searches and reports its memory.
const PROBE_VARIABLE: &str = "CIVITAS_BENCH_MEMORY_PROBE";

/// CPU seconds this process has used, all threads.
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(end_of_name) = stat.rfind(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = stat[end_of_name + 2..].split(' ').collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime, in clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Generated entries as index documents, in batches, without keeping them all in memory.
struct Corpus {
    drafts: catalog::Directories,
    providers: HashMap<civitas_core::Uscc, registry::Organization>,
    node: NodeCode,
    produced: u64,
}

impl Corpus {
    fn new(total: u64) -> Corpus {
        let organizations = civitas_synth::organizations(SEED);
        let providers = organizations
            .iter()
            .map(|o| (o.code.clone(), o.to_registry(Timestamp::UNIX_EPOCH)))
            .collect();
        Corpus {
            drafts: catalog::directories(SEED, CatalogConfig::scaled(total, organizations)),
            providers,
            node: NodeCode::parse("cn-js-nanjing").unwrap(),
            produced: 0,
        }
    }

    fn next_batch(&mut self) -> Option<Vec<SearchDocument>> {
        let batch: Vec<SearchDocument> = self
            .drafts
            .by_ref()
            .take(BATCH)
            .map(|draft| {
                self.produced += 1;
                document(draft, self.produced, &self.providers, &self.node)
            })
            .collect();
        (!batch.is_empty()).then_some(batch)
    }
}

fn document(
    draft: ResourceDraft,
    position: u64,
    providers: &HashMap<civitas_core::Uscc, registry::Organization>,
    node: &NodeCode,
) -> SearchDocument {
    // Entries modified over about three years, one every 90 seconds.
    let at = Timestamp::from_second(1_640_000_000 + position as i64 * 90).unwrap();
    let provider = &providers[&draft.provider];
    // What a result list shows, as the API would store it.
    let payload = serde_json::json!({
        "code": draft.code.as_str(),
        "name": draft.name,
        "name_en": draft.name_en,
        "kind": draft.kind,
        "provider": { "code": provider.code.as_str(), "name": provider.name },
        "summary": draft.summary,
        "sharing": draft.sharing.sharing_type,
        "open_type": draft.open_type,
        "update_cycle": draft.update_cycle,
        "tags": draft.tags,
        "updated_at": at.to_string(),
    })
    .to_string();
    let resource = Resource {
        draft,
        version: 1,
        active: true,
        created_at: at,
        updated_at: at,
    };
    SearchDocument::from_resource(&resource, provider, node, payload)
}

fn bench_options() -> IndexOptions {
    IndexOptions::default()
}

/// Indexes `total` generated entries through the bulk path; returns documents per second over
/// the time until everything is committed and searchable, and per CPU second of the process.
/// Generation and conversion happen on this thread while the indexer works, as a server would
/// read rows from its store.
fn bulk_index(
    runtime: &tokio::runtime::Runtime,
    directory: &Path,
    total: u64,
) -> (CatalogIndex, f64, f64) {
    let index = CatalogIndex::open_with(directory, bench_options()).unwrap();
    let mut corpus = Corpus::new(total);
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    runtime.block_on(async {
        while let Some(batch) = corpus.next_batch() {
            index.upsert(batch).await.unwrap();
        }
        index.mark_indexed(total).unwrap();
        index.flush().await.unwrap();
    });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    let cpu_rate = total as f64 / (process_cpu_seconds() - cpu_before);
    assert_eq!(index.document_count(), total);
    (index, rate, cpu_rate)
}

/// As [`bulk_index`], while a SQLite database takes the same rows, as the store would.
fn bulk_index_with_store(runtime: &tokio::runtime::Runtime, directory: &Path, total: u64) -> f64 {
    let index = CatalogIndex::open_with(&directory.join("index"), bench_options()).unwrap();
    let mut corpus = Corpus::new(total);
    let started = Instant::now();
    runtime.block_on(async {
        let store = shared::sqlite_pool(&directory.join("store.db"), 1).await;
        sqlx::query("CREATE TABLE resources (code TEXT PRIMARY KEY, document TEXT NOT NULL)")
            .execute(&store)
            .await
            .unwrap();
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<Vec<(String, String)>>(4);
        let writer = tokio::spawn(async move {
            while let Some(rows) = receiver.recv().await {
                let mut transaction = store.begin().await.unwrap();
                for (code, document) in rows {
                    sqlx::query("INSERT INTO resources (code, document) VALUES (?1, ?2)")
                        .bind(code)
                        .bind(document)
                        .execute(&mut *transaction)
                        .await
                        .unwrap();
                }
                transaction.commit().await.unwrap();
            }
        });
        while let Some(batch) = corpus.next_batch() {
            let rows = batch
                .iter()
                .map(|document| (document.code.clone(), document.payload.clone()))
                .collect();
            sender.send(rows).await.unwrap();
            index.upsert(batch).await.unwrap();
        }
        drop(sender);
        index.flush().await.unwrap();
        writer.await.unwrap();
    });
    let rate = total as f64 / started.elapsed().as_secs_f64();
    runtime.block_on(index.close()).unwrap();
    rate
}

fn directory_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .flatten()
        .map(|entry| {
            let metadata = entry.metadata().unwrap();
            if metadata.is_dir() {
                directory_bytes(&entry.path())
            } else {
                metadata.len()
            }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Queries

/// Latencies of every query of `threads` threads, each running the mix from its own start.
fn tantivy_latencies(
    index: &CatalogIndex,
    queries: &Arc<Vec<BenchQuery>>,
    threads: usize,
    per_thread: usize,
    snippets: bool,
) -> (Vec<Duration>, u64) {
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let index = index.clone();
            let queries = queries.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(per_thread);
                let mut hits = 0;
                for step in 0..per_thread {
                    let query = &queries[(thread * 7919 + step) % queries.len()];
                    let started = Instant::now();
                    let response = index.search(&query.request(snippets)).unwrap();
                    latencies.push(started.elapsed());
                    hits += response.total;
                }
                (latencies, hits)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut hits = 0;
    for handle in handles {
        let (latencies, thread_hits) = handle.join().unwrap();
        all.extend(latencies);
        hits += thread_hits;
    }
    all.sort();
    (all, hits)
}

// ---------------------------------------------------------------------------------------------
// SQLite FTS5

async fn build_fts(path: &Path, total: u64, connections: u32) -> Fts5 {
    let mut fts = Fts5::create(path, connections).await;
    let mut corpus = Corpus::new(total);
    while let Some(batch) = corpus.next_batch() {
        fts.insert(batch).await;
    }
    fts.finish().await;
    fts
}

fn fts_latencies(
    runtime: &tokio::runtime::Runtime,
    fts: &Fts5,
    queries: &Arc<Vec<BenchQuery>>,
    tasks: usize,
    per_task: usize,
) -> Vec<Duration> {
    let pool = fts.pool.clone();
    runtime.block_on(shared::concurrent_latencies(
        queries,
        tasks,
        per_task,
        move |query| {
            let pool = pool.clone();
            async move {
                fts_search(&pool, &query).await;
            }
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// Memory

/// In the child process: open the index like a restarted server, answer the query mix, report
/// the resident memory.
fn memory_probe(directory: &str) {
    let index = CatalogIndex::open(Path::new(directory)).unwrap();
    for query in &shared::query_mix(2_000) {
        index.search(&query.request(true)).unwrap();
    }
    let memory = shared::memory(None);
    println!(
        "memory {} {} {} {}",
        memory.resident,
        memory.anonymous,
        memory.file,
        index.document_count()
    );
}

fn probe_memory(directory: &Path) -> (u64, u64, u64) {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PROBE_VARIABLE, directory)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.starts_with("memory "))
        .unwrap_or_else(|| {
            panic!(
                "memory probe failed: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    let numbers: Vec<u64> = line
        .split(' ')
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (numbers[0], numbers[1], numbers[2])
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(directory) = std::env::var(PROBE_VARIABLE) {
        memory_probe(&directory);
        return;
    }
    if std::env::args().any(|argument| argument == "--list") {
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test` (no `--bench`) a small smoke run checks
    // that the benchmark still works without taking the test suite's time.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let (default_documents, default_runs, default_queries) = if smoke {
        (2_000, 1, 20)
    } else {
        (1_000_000, 3, 500)
    };
    let documents = environment_number("CIVITAS_BENCH_DOCS", default_documents);
    let runs = environment_number("CIVITAS_BENCH_RUNS", default_runs).max(1) as usize;
    let threads = environment_number("CIVITAS_BENCH_THREADS", 4).max(1) as usize;
    let per_thread = environment_number("CIVITAS_BENCH_QUERIES", default_queries).max(1) as usize;
    let nanjing = if smoke {
        documents.min(catalog::NANJING_DIRECTORIES)
    } else {
        catalog::NANJING_DIRECTORIES
    };
    let runtime = runtime();
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push((
        "machine: cores, load average (1, 5, 15 min) at start".to_owned(),
        format!(
            "{}, {}",
            std::thread::available_parallelism().map_or(0, |cores| cores.get()),
            load_average()
        ),
    ));
    // Load jieba's dictionary before anything is timed.
    segment_for_query("预热");

    let started = Instant::now();
    let generated = catalog::directories(
        SEED,
        CatalogConfig::scaled(documents, civitas_synth::organizations(SEED)),
    )
    .count();
    rows.push((
        format!("generate {generated} drafts (civitas-synth)"),
        format!("{:.2} s", started.elapsed().as_secs_f64()),
    ));

    let mut cpu_rates = Vec::new();
    let rates: Vec<f64> = (0..runs)
        .map(|_| {
            let directory = tempfile::tempdir().unwrap();
            let (index, rate, cpu_rate) = bulk_index(&runtime, directory.path(), nanjing);
            cpu_rates.push(cpu_rate);
            runtime.block_on(index.close()).unwrap();
            rate
        })
        .collect();
    eprintln!("bulk index {nanjing}: {rates:?} per cpu second {cpu_rates:?}");
    rows.push((
        format!("bulk index {nanjing} directories, alone"),
        format!(
            "{:.0} documents/s ({:.0} per CPU-second of the process, generation included)",
            median(rates),
            median(cpu_rates)
        ),
    ));
    let rates: Vec<f64> = (0..runs)
        .map(|_| {
            let directory = tempfile::tempdir().unwrap();
            bulk_index_with_store(&runtime, directory.path(), nanjing)
        })
        .collect();
    eprintln!("bulk index {nanjing} with store: {rates:?}");
    rows.push((
        format!("bulk index {nanjing} directories, SQLite store inserting the same rows"),
        format!("{:.0} documents/s", median(rates)),
    ));

    let directory = tempfile::tempdir().unwrap();
    let index_directory = directory.path().join("index");
    let (index, rate, cpu_rate) = bulk_index(&runtime, &index_directory, documents);
    rows.push((
        format!("bulk index {documents} directories (one run)"),
        format!("{rate:.0} documents/s ({cpu_rate:.0} per CPU-second)"),
    ));
    // Close to let merges finish, as after an import; the size on disk is then stable.
    runtime.block_on(index.close()).unwrap();
    drop(index);
    let bytes = directory_bytes(&index_directory);
    rows.push((
        format!("index size on disk, {documents} directories"),
        format!(
            "{:.0} MB ({:.0} bytes/directory)",
            bytes as f64 / 1e6,
            bytes as f64 / documents as f64
        ),
    ));
    let (total, anonymous, file) = probe_memory(&index_directory);
    rows.push((
        format!(
            "RSS of a process that opened the {documents}-directory index and ran 2,000 searches"
        ),
        format!(
            "{:.0} MB ({:.0} MB heap and other anonymous, {:.0} MB mapped index files)",
            total as f64 / 1e6,
            anonymous as f64 / 1e6,
            file as f64 / 1e6
        ),
    ));

    let index = CatalogIndex::open(&index_directory).unwrap();
    let queries = Arc::new(shared::query_mix(1_000));
    // Warm the page cache and the searcher.
    tantivy_latencies(&index, &queries, 1, queries.len(), true);
    let mut tantivy_p50 = Vec::new();
    let mut tantivy_p99 = Vec::new();
    let mut snippet_p50 = Vec::new();
    let mut snippet_p99 = Vec::new();
    let mut tantivy_matches = 0;
    for _ in 0..runs {
        let (latencies, matches) = tantivy_latencies(&index, &queries, threads, per_thread, false);
        tantivy_p50.push(milliseconds(percentile(&latencies, 0.50)));
        tantivy_p99.push(milliseconds(percentile(&latencies, 0.99)));
        tantivy_matches = matches;
        let (latencies, _) = tantivy_latencies(&index, &queries, threads, per_thread, true);
        snippet_p50.push(milliseconds(percentile(&latencies, 0.50)));
        snippet_p99.push(milliseconds(percentile(&latencies, 0.99)));
    }
    eprintln!("tantivy p50 {tantivy_p50:?} p99 {tantivy_p99:?}");
    let (tantivy_p50, tantivy_p99) = (median(tantivy_p50), median(tantivy_p99));
    rows.push((
        format!("search at {documents}, {threads} threads: p50 / p99 (tantivy, in process)"),
        format!("{tantivy_p50:.2} ms / {tantivy_p99:.2} ms"),
    ));
    rows.push((
        "same with highlighted snippets of 20 hits".to_owned(),
        format!(
            "{:.2} ms / {:.2} ms",
            median(snippet_p50),
            median(snippet_p99)
        ),
    ));

    let fts_path = directory.path().join("fts.db");
    let started = Instant::now();
    let fts = runtime.block_on(build_fts(&fts_path, documents, threads as u32));
    rows.push((
        format!("SQLite FTS5: load {documents} rows (segmentation included)"),
        format!(
            "{:.0} rows/s",
            documents as f64 / started.elapsed().as_secs_f64()
        ),
    ));
    let fts_bytes = ["fts.db", "fts.db-wal"]
        .iter()
        .filter_map(|name| std::fs::metadata(directory.path().join(name)).ok())
        .map(|metadata| metadata.len())
        .sum::<u64>();
    rows.push((
        format!("SQLite FTS5 database size, {documents} rows"),
        format!("{:.0} MB", fts_bytes as f64 / 1e6),
    ));
    // Both engines answer every query of the mix (which also warms FTS5's pages).
    let mut agreement = Agreement::default();
    for query in queries.iter() {
        let reference = Answer::of_index(&index.search(&query.request(false)).unwrap());
        agreement.add(&reference, &runtime.block_on(fts_search(&fts.pool, query)));
    }
    runtime.block_on(index.close()).unwrap();
    drop(index);
    let mut fts_p50 = Vec::new();
    let mut fts_p99 = Vec::new();
    for _ in 0..runs {
        let latencies = fts_latencies(&runtime, &fts, &queries, threads, per_thread);
        fts_p50.push(milliseconds(percentile(&latencies, 0.50)));
        fts_p99.push(milliseconds(percentile(&latencies, 0.99)));
    }
    eprintln!("fts p50 {fts_p50:?} p99 {fts_p99:?}; tantivy matches {tantivy_matches}");
    let (fts_p50, fts_p99) = (median(fts_p50), median(fts_p99));
    rows.push((
        format!("same queries on SQLite FTS5, {threads} connections: p50 / p99"),
        format!("{fts_p50:.2} ms / {fts_p99:.2} ms"),
    ));
    rows.push((
        "latency ratio FTS5 / tantivy: p50, p99".to_owned(),
        format!(
            "{:.1}x, {:.1}x",
            fts_p50 / tantivy_p50,
            fts_p99 / tantivy_p99
        ),
    ));
    rows.push((
        format!(
            "FTS5 agrees with the index on the {} queries of the mix",
            queries.len()
        ),
        agreement.summary(),
    ));
    runtime.block_on(fts.pool.close());
    rows.push(("load average at end".to_owned(), load_average()));

    println!("| measurement | result |");
    println!("| --- | --- |");
    for (measurement, result) in rows {
        println!("| {measurement} | {result} |");
    }
}
