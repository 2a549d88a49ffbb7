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

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_core::NodeCode;
use civitas_core::catalog::{Resource, ResourceDraft};
use civitas_core::registry;
use civitas_search::{
    CatalogIndex, Facet, IndexOptions, Paging, SearchDocument, SearchRequest, segment_for_index,
    segment_for_query,
};
use civitas_synth::catalog::{self, CatalogConfig};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

const SEED: u64 = 2024;
const BATCH: usize = 5_000;
const PAGE: usize = 20;
const FACET_LIMIT: usize = 10;
/// Set in a child process that only opens an index, searches and reports its memory.
const PROBE_VARIABLE: &str = "CIVITAS_BENCH_MEMORY_PROBE";

fn environment_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number")),
        Err(_) => default,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

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

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
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
        let store = sqlite_pool(&directory.join("store.db"), 1).await;
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

async fn sqlite_pool(path: &Path, connections: u32) -> SqlitePool {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal);
    SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .connect_with(options)
        .await
        .unwrap()
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

#[derive(Clone)]
struct BenchQuery {
    words: Vec<String>,
    facets: [Facet; 2],
    filter: Option<(Facet, &'static str)>,
}

const FILTERS: &[(Facet, &str)] = &[
    (Facet::Kind, "file"),
    (Facet::SharingType, "conditional"),
    (Facet::OpenType, "open"),
    (Facet::Level, "district"),
    (Facet::Classification, "T03"),
    (Facet::UpdateCycle, "daily"),
];

/// 1 to 3 words drawn from the generator's vocabulary: mostly Chinese (a topic or tag, then a
/// district or department, then another tag), a third English.
fn query_mix(count: usize) -> Vec<BenchQuery> {
    let vocabulary = catalog::search_vocabulary();
    let districts: Vec<&str> = vocabulary
        .chinese
        .iter()
        .copied()
        .filter(|word| word.ends_with('区') && word.chars().count() <= 4)
        .collect();
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);
    (0..count)
        .map(|_| {
            let length = match random.below(20) {
                0..10 => 1,
                10..17 => 2,
                _ => 3,
            };
            let english = random.below(3) == 0;
            let words = (0..length)
                .map(|position| {
                    if english {
                        random.pick(&vocabulary.english).clone()
                    } else if position == 1 && random.below(2) == 0 {
                        (*random.pick(&districts)).to_owned()
                    } else {
                        (*random.pick(&vocabulary.chinese)).to_owned()
                    }
                })
                .collect();
            let first = *random.pick(&Facet::ALL);
            let mut second = *random.pick(&Facet::ALL);
            while second == first {
                second = *random.pick(&Facet::ALL);
            }
            let filter = (random.below(10) < 3).then(|| *random.pick(FILTERS));
            BenchQuery {
                words,
                facets: [first, second],
                filter,
            }
        })
        .collect()
}

fn request(query: &BenchQuery, snippets: bool) -> SearchRequest {
    SearchRequest {
        query: query.words.join(" "),
        filters: query
            .filter
            .iter()
            .map(|(facet, value)| (*facet, (*value).to_owned()))
            .collect(),
        facets: query.facets.to_vec(),
        facet_limit: FACET_LIMIT,
        paging: Paging::Offset {
            offset: 0,
            limit: PAGE,
        },
        snippets,
        ..SearchRequest::default()
    }
}

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
                    let response = index.search(&request(query, snippets)).unwrap();
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

const FTS_COLUMNS: &str = "name, name_en, summary, tags, items, provider_name";
/// The same field weights as the index.
const FTS_RANK: &str = "bm25(fts, 3.0, 2.0, 1.5, 1.0, 0.7, 0.7)";

async fn build_fts(path: &Path, total: u64) -> SqlitePool {
    let pool = sqlite_pool(path, 4).await;
    for statement in [
        "CREATE TABLE directories (id INTEGER PRIMARY KEY, code TEXT NOT NULL, provider TEXT, level TEXT, kind TEXT, sharing_type TEXT, open_type TEXT, classification TEXT, update_cycle TEXT, origin_node TEXT, modified_at INTEGER, payload TEXT)".to_owned(),
        "CREATE TABLE tags (id INTEGER NOT NULL, tag TEXT NOT NULL)".to_owned(),
        format!("CREATE VIRTUAL TABLE fts USING fts5({FTS_COLUMNS}, content='', tokenize='porter unicode61')"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.unwrap();
    }
    let mut corpus = Corpus::new(total);
    let mut id: i64 = 0;
    while let Some(batch) = corpus.next_batch() {
        // Segmentation is CPU work: done off the runtime's threads.
        let rows = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .map(|document| {
                    let text = [
                        segment_for_index(&document.name),
                        document.name_en.clone().unwrap_or_default(),
                        segment_for_index(&document.summary),
                        segment_for_index(&document.tags.join(" ")),
                        segment_for_index(&document.items.join(" ")),
                        segment_for_index(&document.provider_name),
                    ];
                    (document, text)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let mut transaction = pool.begin().await.unwrap();
        for (document, text) in rows {
            id += 1;
            sqlx::query("INSERT INTO directories VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)")
                .bind(id)
                .bind(&document.code)
                .bind(&document.provider_code)
                .bind(&document.provider_level)
                .bind(&document.kind)
                .bind(&document.sharing_type)
                .bind(&document.open_type)
                .bind(&document.classification)
                .bind(&document.update_cycle)
                .bind(&document.origin_node)
                .bind(document.modified_at)
                .bind(&document.payload)
                .execute(&mut *transaction)
                .await
                .unwrap();
            for tag in &document.tags {
                sqlx::query("INSERT INTO tags VALUES (?1, ?2)")
                    .bind(id)
                    .bind(tag)
                    .execute(&mut *transaction)
                    .await
                    .unwrap();
            }
            let [name, name_en, summary, tags, items, provider] = text;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO fts (rowid, {FTS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
            )))
            .bind(id)
            .bind(name)
            .bind(name_en)
            .bind(summary)
            .bind(tags)
            .bind(items)
            .bind(provider)
            .execute(&mut *transaction)
            .await
            .unwrap();
        }
        transaction.commit().await.unwrap();
    }
    for statement in [
        "CREATE INDEX tags_by_id ON tags (id)",
        "INSERT INTO fts (fts) VALUES ('optimize')",
        "ANALYZE",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool
}

/// The FTS5 query of the same words: each word's segmented parts all present (AND), as the
/// index reads a word.
fn fts_match(words: &[String]) -> String {
    words
        .iter()
        .flat_map(|word| {
            segment_for_query(word)
                .split(' ')
                .filter(|part| !part.is_empty())
                .map(|part| format!("\"{}\"", part.replace('"', "\"\"")))
                .collect::<Vec<_>>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn facet_column(facet: Facet) -> &'static str {
    match facet {
        Facet::Provider => "provider",
        Facet::Level => "level",
        Facet::Kind => "kind",
        Facet::SharingType => "sharing_type",
        Facet::OpenType => "open_type",
        Facet::Classification => "classification",
        Facet::UpdateCycle => "update_cycle",
        Facet::OriginNode => "origin_node",
        Facet::Tag => "tag",
    }
}

/// Runs one query as a catalog API on SQLite would: the page of hits by rank, the total, and
/// the two facets' counts, each one statement over the FTS5 matches.
async fn fts_search(pool: &SqlitePool, query: &BenchQuery) -> u64 {
    let matched = fts_match(&query.words);
    let (filter_sql, filter_value) = match query.filter {
        Some((facet, value)) => (format!(" AND d.{} = ?2", facet_column(facet)), value),
        None => (String::new(), ""),
    };
    let from =
        format!("FROM fts JOIN directories d ON d.id = fts.rowid WHERE fts MATCH ?1{filter_sql}");
    let bound = |sql: String| {
        let statement = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(matched.clone());
        if query.filter.is_some() {
            statement.bind(filter_value)
        } else {
            statement
        }
    };
    let hits = bound(format!(
        "SELECT d.code, d.payload {from} ORDER BY {FTS_RANK} LIMIT {PAGE}"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    std::hint::black_box(&hits);
    let total: i64 = bound(format!("SELECT count(*) {from}"))
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    for facet in query.facets {
        let sql = if facet == Facet::Tag {
            format!(
                "SELECT t.tag, count(*) AS n FROM fts JOIN directories d ON d.id = fts.rowid JOIN tags t ON t.id = d.id WHERE fts MATCH ?1{filter_sql} GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT {FACET_LIMIT}"
            )
        } else {
            let column = facet_column(facet);
            format!(
                "SELECT d.{column}, count(*) AS n {from} GROUP BY d.{column} ORDER BY n DESC, d.{column} LIMIT {FACET_LIMIT}"
            )
        };
        let counts = bound(sql).fetch_all(pool).await.unwrap();
        std::hint::black_box(&counts);
    }
    total as u64
}

fn fts_latencies(
    runtime: &tokio::runtime::Runtime,
    pool: &SqlitePool,
    queries: &Arc<Vec<BenchQuery>>,
    threads: usize,
    per_thread: usize,
) -> (Vec<Duration>, u64) {
    runtime.block_on(async {
        let tasks: Vec<_> = (0..threads)
            .map(|thread| {
                let pool = pool.clone();
                let queries = queries.clone();
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_thread);
                    let mut hits = 0;
                    for step in 0..per_thread {
                        let query = &queries[(thread * 7919 + step) % queries.len()];
                        let started = Instant::now();
                        hits += fts_search(&pool, query).await;
                        latencies.push(started.elapsed());
                    }
                    (latencies, hits)
                })
            })
            .collect();
        let mut all = Vec::new();
        let mut hits = 0;
        for task in tasks {
            let (latencies, thread_hits) = task.await.unwrap();
            all.extend(latencies);
            hits += thread_hits;
        }
        all.sort();
        (all, hits)
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

/// `(total, anonymous, file-backed)` resident memory of this process, in bytes.
fn resident_memory() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kilobytes| kilobytes.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

/// In the child process: open the index like a restarted server, answer the query mix, report
/// the resident memory.
fn memory_probe(directory: &str) {
    let index = CatalogIndex::open(Path::new(directory)).unwrap();
    let queries = query_mix(2_000);
    for query in &queries {
        index.search(&request(query, true)).unwrap();
    }
    let (total, anonymous, file) = resident_memory();
    println!(
        "memory {total} {anonymous} {file} {}",
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
    let documents = environment_number("CIVITAS_BENCH_DOCS", 1_000_000);
    let runs = environment_number("CIVITAS_BENCH_RUNS", 3).max(1) as usize;
    let threads = environment_number("CIVITAS_BENCH_THREADS", 4).max(1) as usize;
    let per_thread = environment_number("CIVITAS_BENCH_QUERIES", 500).max(1) as usize;
    let nanjing = catalog::NANJING_DIRECTORIES;
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
    let queries = Arc::new(query_mix(1_000));
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
    runtime.block_on(index.close()).unwrap();
    drop(index);

    let fts_path = directory.path().join("fts.db");
    let started = Instant::now();
    let pool = runtime.block_on(build_fts(&fts_path, documents));
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
    fts_latencies(&runtime, &pool, &queries, 1, queries.len().min(200));
    let mut fts_p50 = Vec::new();
    let mut fts_p99 = Vec::new();
    let mut fts_matches = 0;
    for _ in 0..runs {
        let (latencies, matches) = fts_latencies(&runtime, &pool, &queries, threads, per_thread);
        fts_p50.push(milliseconds(percentile(&latencies, 0.50)));
        fts_p99.push(milliseconds(percentile(&latencies, 0.99)));
        fts_matches = matches;
    }
    eprintln!(
        "fts p50 {fts_p50:?} p99 {fts_p99:?}; matches tantivy {tantivy_matches} fts {fts_matches}"
    );
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
        "matches found over all timed queries of a run: tantivy, FTS5".to_owned(),
        format!("{tantivy_matches}, {fts_matches}"),
    ));
    runtime.block_on(pool.close());
    rows.push(("load average at end".to_owned(), load_average()));

    println!("| measurement | result |");
    println!("| --- | --- |");
    for (measurement, result) in rows {
        println!("| {measurement} | {result} |");
    }
}
