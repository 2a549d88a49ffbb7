//! What the search index benchmark (`benches/search.rs`) and the catalog benchmark through the
//! server (`crates/civitas/benches/catalog.rs`, which includes this file by path) share: the
//! query mix, the same queries on SQLite FTS5, statistics and memory readings.
//!
//! The FTS5 side answers each query as a catalog API on SQLite would: the page of hits by rank,
//! the total and the two facets' counts, each one statement over the FTS5 matches, on text
//! segmented by the index's own jieba analyzers. Its totals and facet counts are the index's
//! exactly (the benchmarks check that); only the order of hits differs, as BM25 in SQLite is
//! not tantivy's.

// Each benchmark uses a different part of this module.
#![allow(dead_code)]

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas_search::{
    Facet, Paging, SearchDocument, SearchRequest, SearchResponse, segment_for_index,
    segment_for_query,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

/// Hits per page.
pub const PAGE: usize = 20;
/// Values per facet.
pub const FACET_LIMIT: usize = 10;

pub fn environment_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace(['_', ','], "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number")),
        Err(_) => default,
    }
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// `sorted` must be sorted.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index]
}

pub fn milliseconds(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split(' ')
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(0, |cores| cores.get())
}

/// Resident memory of a process from `/proc/PID/status`, in bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub resident: u64,
    /// `VmHWM`: the most that was ever resident.
    pub peak: u64,
    /// `RssAnon`: heap, stacks and other anonymous memory.
    pub anonymous: u64,
    /// `RssFile`: mapped files (the memory-mapped index) and the executable.
    pub file: u64,
}

/// `None` reads this process.
pub fn memory(pid: Option<u32>) -> Memory {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_owned(),
    };
    let status = std::fs::read_to_string(path).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|line| line.starts_with(name))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kilobytes| kilobytes.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Memory {
        resident: field("VmRSS:"),
        peak: field("VmHWM:"),
        anonymous: field("RssAnon:"),
        file: field("RssFile:"),
    }
}

pub fn megabytes(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

#[derive(Debug, Clone)]
pub struct BenchQuery {
    pub words: Vec<String>,
    pub facets: [Facet; 2],
    pub filter: Option<(Facet, &'static str)>,
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
/// district or department, then another tag), a third English; each query asks for two facets
/// and three in ten filter on a facet value.
pub fn query_mix(count: usize) -> Vec<BenchQuery> {
    let vocabulary = civitas_synth::catalog::search_vocabulary();
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

impl BenchQuery {
    /// The query as an index request: the first page of [`PAGE`] hits by relevance.
    pub fn request(&self, snippets: bool) -> SearchRequest {
        SearchRequest {
            query: self.words.join(" "),
            filters: self
                .filter
                .iter()
                .map(|(facet, value)| (*facet, (*value).to_owned()))
                .collect(),
            facets: self.facets.to_vec(),
            facet_limit: FACET_LIMIT,
            paging: Paging::Offset {
                offset: 0,
                limit: PAGE,
            },
            snippets,
            ..SearchRequest::default()
        }
    }

    /// The same request as the query string of `GET /api/v1/search`.
    pub fn query_string(&self, snippets: bool) -> String {
        let mut pairs = vec![("q", self.words.join(" "))];
        for facet in self.facets {
            pairs.push(("facet", facet.as_str().to_owned()));
        }
        if let Some((facet, value)) = self.filter {
            pairs.push(("filter", format!("{facet}:{value}")));
        }
        pairs.push(("limit", PAGE.to_string()));
        pairs.push(("facet_limit", FACET_LIMIT.to_string()));
        if !snippets {
            pairs.push(("snippets", "false".to_owned()));
        }
        pairs
            .iter()
            .map(|(name, value)| format!("{name}={}", percent_encode(value)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// What two engines must agree on for a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub total: u64,
    /// Codes of the first page of hits, best first.
    pub hits: Vec<String>,
    /// The requested facets' counts, in the order requested.
    pub facets: Vec<Vec<(String, u64)>>,
}

impl Answer {
    pub fn of_index(response: &SearchResponse) -> Answer {
        Answer {
            total: response.total,
            hits: response.hits.iter().map(|hit| hit.code.clone()).collect(),
            facets: response
                .facets
                .iter()
                .map(|counts| counts.values.clone())
                .collect(),
        }
    }
}

/// How far the answers of two engines to the same queries agree.
#[derive(Debug, Default)]
pub struct Agreement {
    pub queries: usize,
    pub totals: usize,
    pub facets: usize,
    /// Hits of both first pages, over hits of the reference's first pages.
    pub shared_hits: usize,
    pub reference_hits: usize,
    pub matches: u64,
}

impl Agreement {
    pub fn add(&mut self, reference: &Answer, other: &Answer) {
        self.queries += 1;
        self.totals += usize::from(reference.total == other.total);
        self.facets += usize::from(reference.facets == other.facets);
        self.shared_hits += reference
            .hits
            .iter()
            .filter(|code| other.hits.contains(code))
            .count();
        self.reference_hits += reference.hits.len();
        self.matches += reference.total;
    }

    pub fn summary(&self) -> String {
        format!(
            "totals {}/{}, facet counts {}/{}, first-page hits in common {:.0}% ({} matches in all)",
            self.totals,
            self.queries,
            self.facets,
            self.queries,
            100.0 * self.shared_hits as f64 / self.reference_hits.max(1) as f64,
            self.matches
        )
    }
}

/// Latencies of `tasks` concurrent tasks, each running `per_task` queries of the mix from its
/// own starting point with `run`; sorted.
pub async fn concurrent_latencies<F, Fut>(
    queries: &Arc<Vec<BenchQuery>>,
    tasks: usize,
    per_task: usize,
    run: F,
) -> Vec<Duration>
where
    F: Fn(BenchQuery) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let queries = queries.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(per_task);
                for step in 0..per_task {
                    let query = queries[(task * 7919 + step) % queries.len()].clone();
                    let started = Instant::now();
                    run(query).await;
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::with_capacity(tasks * per_task);
    for handle in handles {
        all.extend(handle.await.expect("a query task panicked"));
    }
    all.sort();
    all
}

// ---------------------------------------------------------------------------------------------
// SQLite FTS5

const FTS_COLUMNS: &str = "name, name_en, summary, tags, items, provider_name";
/// The index's field weights: names count more than the rest.
const FTS_RANK: &str = "bm25(fts, 3.0, 2.0, 1.5, 1.0, 0.7, 0.7)";

pub async fn sqlite_pool(path: &Path, connections: u32) -> SqlitePool {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-65536");
    SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(connections)
        .connect_with(options)
        .await
        .unwrap()
}

/// The catalog in SQLite with an FTS5 table over text segmented as the index segments it.
pub struct Fts5 {
    pub pool: SqlitePool,
    rows: i64,
}

impl Fts5 {
    /// A new database at `path`, with a pool of `connections` for the queries.
    pub async fn create(path: &Path, connections: u32) -> Fts5 {
        let pool = sqlite_pool(path, connections).await;
        // The segmented text is already lower-cased and stemmed: the tokenizer only splits it
        // at spaces (and keeps `_`, which item codes such as `id_number` hold).
        for statement in [
            "CREATE TABLE directories (id INTEGER PRIMARY KEY, code TEXT NOT NULL, provider TEXT, level TEXT, kind TEXT, sharing_type TEXT, open_type TEXT, classification TEXT, update_cycle TEXT, origin_node TEXT, modified_at INTEGER, payload TEXT)".to_owned(),
            "CREATE TABLE tags (id INTEGER NOT NULL, tag TEXT NOT NULL)".to_owned(),
            format!("CREATE VIRTUAL TABLE fts USING fts5({FTS_COLUMNS}, content='', tokenize=\"unicode61 remove_diacritics 0 tokenchars '_'\")"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(statement)).execute(&pool).await.unwrap();
        }
        Fts5 { pool, rows: 0 }
    }

    /// Adds a batch of documents in one transaction. Segmentation, CPU work, runs off the
    /// runtime's threads.
    pub async fn insert(&mut self, batch: Vec<SearchDocument>) {
        let rows = tokio::task::spawn_blocking(move || {
            batch
                .into_iter()
                .map(|document| {
                    let text = [
                        segment_for_index(&document.name),
                        segment_for_index(document.name_en.as_deref().unwrap_or_default()),
                        segment_for_index(&document.summary),
                        segment_for_index(&document.tags.join("\n")),
                        segment_for_index(&document.items.join("\n")),
                        segment_for_index(&document.provider_name),
                    ];
                    (document, text)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap();
        let mut transaction = self.pool.begin().await.unwrap();
        for (document, text) in rows {
            self.rows += 1;
            let id = self.rows;
            sqlx::query(
                "INSERT INTO directories VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
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
            let mut tags: Vec<&String> = document.tags.iter().filter(|t| !t.is_empty()).collect();
            // The index counts a repeated tag once.
            tags.sort();
            tags.dedup();
            for tag in tags {
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

    /// Indexes the tag table, merges the FTS5 segments and gathers statistics for the planner.
    pub async fn finish(&self) {
        for statement in [
            "CREATE INDEX tags_by_id ON tags (id)",
            "INSERT INTO fts (fts) VALUES ('optimize')",
            "ANALYZE",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::query(statement).execute(&self.pool).await.unwrap();
        }
    }

    pub fn rows(&self) -> i64 {
        self.rows
    }
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

/// Runs one query as a catalog API on SQLite would: the page of hits (with their payloads) by
/// rank, the total, and the two facets' counts, each one statement over the FTS5 matches.
pub async fn fts_search(pool: &SqlitePool, query: &BenchQuery) -> Answer {
    let matched = fts_match(&query.words);
    let (filter_sql, filter_value) = match query.filter {
        Some((facet, value)) => (format!(" AND d.{} = ?2", facet.as_str()), value),
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
    let rows = bound(format!(
        "SELECT d.code, d.payload {from} ORDER BY {FTS_RANK} LIMIT {PAGE}"
    ))
    .fetch_all(pool)
    .await
    .unwrap();
    let hits = rows
        .iter()
        .map(|row| {
            std::hint::black_box(row.get::<&str, _>(1));
            row.get::<String, _>(0)
        })
        .collect();
    let total: i64 = bound(format!("SELECT count(*) {from}"))
        .fetch_one(pool)
        .await
        .unwrap()
        .get(0);
    let mut facets = Vec::with_capacity(query.facets.len());
    for facet in query.facets {
        let sql = if facet == Facet::Tag {
            format!(
                "SELECT t.tag, count(*) AS n FROM fts JOIN directories d ON d.id = fts.rowid JOIN tags t ON t.id = d.id WHERE fts MATCH ?1{filter_sql} GROUP BY t.tag ORDER BY n DESC, t.tag LIMIT {FACET_LIMIT}"
            )
        } else {
            let column = facet.as_str();
            format!(
                "SELECT d.{column}, count(*) AS n {from} AND d.{column} <> '' GROUP BY d.{column} ORDER BY n DESC, d.{column} LIMIT {FACET_LIMIT}"
            )
        };
        let counts = bound(sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<String, _>(0), row.get::<i64, _>(1) as u64))
            .collect();
        facets.push(counts);
    }
    Answer {
        total: total as u64,
        hits,
        facets,
    }
}
