//! The catalog's full-text index: Chinese and English search, facet counts, filters, sorting,
//! paging and highlighted snippets over catalog entries, on tantivy.
//!
//! The index is derived data. The server feeds it from the store and can always rebuild it: each
//! commit records the store's change sequence number the index has caught up to
//! ([`CatalogIndex::indexed_seq`]), so after a restart the server feeds only what came later,
//! and an index that is missing (or was made by an older version of this crate) starts empty at
//! sequence 0.
//!
//! Writes go to one indexer thread that owns tantivy's writer. It commits in the background, at
//! most every 500 ms while there are changes, and reloads the searcher after each commit, so a
//! write is searchable within about a second. [`CatalogIndex::flush`] waits until everything sent
//! before it is committed and searchable.
//!
//! # Query syntax
//!
//! Words are separated by spaces and all must match (`公积金 玄武区`). Each word is segmented like
//! the text (a word typed as `公积金缴存` matches where both `公积金` and `缴存` occur) and looked
//! for in the names (Chinese and English), summary, tags, information items and provider name; a
//! word in a name weighs more. English words are stemmed. A word with a dash is also looked up
//! as a resource code, which then ranks first. Also:
//!
//! - `"住房公积金 缴存"` or `“…”`: a phrase, its words adjacent and in order within one text;
//! - `+word` must match (the default), `-word` or `NOT word` must not;
//! - `a OR b`: either side (`AND` is accepted and is the default); parentheses group;
//! - `field:word`, `field:"phrase"`, `field:(a b)`: `name` (also `title`, `name_en`) looks only
//!   in the names; `code`, `provider` (code or full name), `tag`/`tags` and the facet names
//!   (`kind:dataset`, `classification:B01`, …) match exact values. A prefix that is not one of
//!   these is read as part of the word (`12:30`);
//! - an empty query, `*` or `*:*` matches everything.
//!
//! Unbalanced quotes or parentheses, operators without a term and similar mistakes are
//! [`SearchError::Syntax`] with a message meant for the person who typed the query.

mod collect;
mod cursor;
mod document;
mod indexer;
mod query;
mod schema;
mod snippet;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tantivy::schema::Value;
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument};

pub use schema::{segment_for_index, segment_for_query};

/// Errors of the search index.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query cannot be parsed; the message explains why to the person who typed it.
    #[error("search query error: {message}")]
    Syntax { message: String },
    /// A request parameter is out of range (a limit, an offset, a cursor).
    #[error("invalid search request: {message}")]
    InvalidRequest { message: String },
    /// The indexer thread has stopped, after [`CatalogIndex::close`] or a failure.
    #[error("the search indexer has stopped: {message}")]
    IndexerStopped { message: String },
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    #[error("search index directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl SearchError {
    /// Whether another process (a running server) holds the index's writer lock.
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            SearchError::Index(tantivy::TantivyError::LockFailure(..))
        )
    }
}

pub type Result<T> = std::result::Result<T, SearchError>;

/// One catalog entry as the index sees it. `code` is the unique key: upserting a document
/// replaces the one with the same code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDocument {
    /// The resource code, e.g. `320100-B01-000123`.
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
    pub summary: String,
    pub tags: Vec<String>,
    /// Information item names and codes, searched as text.
    pub items: Vec<String>,
    pub provider_code: String,
    pub provider_name: String,
    pub provider_level: String,
    pub kind: String,
    pub sharing_type: String,
    pub open_type: String,
    /// The classification code, e.g. `B01`.
    pub classification: String,
    pub update_cycle: String,
    /// The node the entry comes from: the node's own code for its local entries.
    pub origin_node: String,
    /// Last modification, in microseconds since the Unix epoch.
    pub modified_at: i64,
    /// Opaque text (JSON by convention) stored with the entry and returned in hits, so that
    /// results render without a database round trip.
    pub payload: String,
}

/// A facet: a field whose values are counted over the matches and can filter them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facet {
    /// The provider's code.
    Provider,
    /// The provider's administrative level.
    Level,
    Kind,
    SharingType,
    OpenType,
    Classification,
    UpdateCycle,
    OriginNode,
    /// One value per tag of the entry.
    Tag,
}

impl Facet {
    pub const ALL: [Facet; 9] = [
        Facet::Provider,
        Facet::Level,
        Facet::Kind,
        Facet::SharingType,
        Facet::OpenType,
        Facet::Classification,
        Facet::UpdateCycle,
        Facet::OriginNode,
        Facet::Tag,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
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

    pub fn parse(text: &str) -> Option<Facet> {
        Facet::ALL.into_iter().find(|facet| facet.as_str() == text)
    }

    /// The facet's value(s) in a document.
    fn values(self, document: &SearchDocument) -> &[String] {
        match self {
            Facet::Provider => std::slice::from_ref(&document.provider_code),
            Facet::Level => std::slice::from_ref(&document.provider_level),
            Facet::Kind => std::slice::from_ref(&document.kind),
            Facet::SharingType => std::slice::from_ref(&document.sharing_type),
            Facet::OpenType => std::slice::from_ref(&document.open_type),
            Facet::Classification => std::slice::from_ref(&document.classification),
            Facet::UpdateCycle => std::slice::from_ref(&document.update_cycle),
            Facet::OriginNode => std::slice::from_ref(&document.origin_node),
            Facet::Tag => &document.tags,
        }
    }
}

impl std::fmt::Display for Facet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The order of hits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Best match first. With an empty query every entry matches equally, and the order is that
    /// of [`Sort::Modified`].
    #[default]
    Relevance,
    /// Most recently modified first.
    Modified,
}

/// Which hits of the ordered matches to return.
///
/// Ties are broken by a hash of the code, so both orders are total and paging never repeats or
/// drops an entry of an unchanged index.
///
/// A cursor is an opaque token naming the position after the last hit of a page
/// ([`SearchResponse::next_cursor`]). It holds that hit's sort key (modification time or score,
/// and the tie-breaker), not an offset, so later pages stay put while the index changes: under
/// [`Sort::Modified`], entries added or updated after the first page sort before the cursor and
/// are not seen by later pages, deleted entries simply drop out, and nothing else is repeated or
/// skipped. Under [`Sort::Relevance`] scores depend on index-wide statistics that writes shift
/// slightly, so a page boundary may repeat or miss a hit while the index changes; use the
/// modified order to walk a whole result set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Paging {
    /// `offset + limit` at most 10,000: deeper pages take cursors.
    Offset { offset: usize, limit: usize },
    /// `after`: `None` for the first page, then the previous page's `next_cursor`.
    Cursor { after: Option<String>, limit: usize },
}

/// The largest page.
pub const MAX_LIMIT: usize = 1000;
/// How far offset paging reaches (`offset + limit`).
pub const MAX_OFFSET_WINDOW: usize = 10_000;
/// The most filter values one search takes, over its filters, exclusions and condition: each is
/// a clause of the query. (The API takes fewer from a caller, leaving room for the filters it
/// adds itself.)
pub const MAX_FILTERS: usize = 128;
/// How deeply a [`Condition`] may nest (each `All`, `Any` and `Not` is a level): turning one
/// into a query recurses once per level.
pub const MAX_CONDITION_DEPTH: usize = 32;

/// A condition on facet values that entries must meet, for what the filters and exclusions of a
/// [`SearchRequest`] cannot say: all of several values of one facet (two tags), alternatives
/// across facets (a provider or a tag), the negation of a group. CKAN's `fq` becomes one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// Entries with this value of the facet: for tags, with this tag among theirs. Facets of
    /// one value per entry (all but tags) never have two values at once.
    Value(Facet, String),
    /// Entries meeting every one of the conditions; every entry, when there are none.
    All(Vec<Condition>),
    /// Entries meeting at least one of the conditions; no entry, when there are none.
    Any(Vec<Condition>),
    /// Entries not meeting the condition.
    Not(Box<Condition>),
}

impl Condition {
    /// The facet and values of a condition met by any of some values of one facet (one value,
    /// or several joined by `Any`), which can be checked like a filter.
    pub fn one_facet_values(&self) -> Option<(Facet, Vec<&str>)> {
        match self {
            Condition::Value(facet, value) => Some((*facet, vec![value.as_str()])),
            Condition::Any(alternatives) => {
                let mut facet = None;
                let mut values = Vec::with_capacity(alternatives.len());
                for alternative in alternatives {
                    let Condition::Value(of, value) = alternative else {
                        return None;
                    };
                    if facet.replace(*of).is_some_and(|before| before != *of) {
                        return None;
                    }
                    values.push(value.as_str());
                }
                Some((facet?, values))
            }
            Condition::All(_) | Condition::Not(_) => None,
        }
    }

    /// How many values the condition names, each a clause of the query; refused when it nests
    /// deeper than [`MAX_CONDITION_DEPTH`] (`depth` is this condition's level, from 1).
    fn count_values(&self, depth: usize) -> Result<usize> {
        if depth > MAX_CONDITION_DEPTH {
            return Err(SearchError::InvalidRequest {
                message: format!(
                    "the filter condition nests too deeply: at most {MAX_CONDITION_DEPTH} levels"
                ),
            });
        }
        match self {
            Condition::Value(..) => Ok(1),
            Condition::All(conditions) | Condition::Any(conditions) => {
                conditions.iter().try_fold(0, |sum, condition| {
                    Ok(sum + condition.count_values(depth + 1)?)
                })
            }
            Condition::Not(condition) => condition.count_values(depth + 1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The query (see the crate documentation); empty matches everything.
    pub query: String,
    /// AND across facets, OR between values of the same facet, as a multi-select facet
    /// navigation narrows a search (`/api/v1/search`'s `filter`); [`SearchRequest::condition`]
    /// says anything else.
    pub filters: Vec<(Facet, String)>,
    /// Entries with any of these values are left out (`-facet:value`), whatever the filters let
    /// through.
    #[serde(default)]
    pub exclusions: Vec<(Facet, String)>,
    /// A condition entries must meet besides the filters and exclusions (it cannot widen what
    /// they let through).
    #[serde(default)]
    pub condition: Option<Condition>,
    /// Facets whose value counts over all matches are returned, each at most once
    /// ([`CatalogIndex::search`] refuses a facet requested twice).
    pub facets: Vec<Facet>,
    /// Values per facet, most frequent first.
    pub facet_limit: usize,
    pub sort: Sort,
    pub paging: Paging,
    /// Whether hits carry highlighted snippets of name and summary.
    pub snippets: bool,
}

impl Default for SearchRequest {
    fn default() -> SearchRequest {
        SearchRequest {
            query: String::new(),
            filters: Vec::new(),
            exclusions: Vec::new(),
            condition: None,
            facets: Vec::new(),
            facet_limit: 20,
            sort: Sort::Relevance,
            paging: Paging::Offset {
                offset: 0,
                limit: 20,
            },
            snippets: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResponse {
    /// How many entries match the query and filters, over all pages.
    pub total: u64,
    pub hits: Vec<Hit>,
    /// In the order the facets were requested.
    pub facets: Vec<FacetCounts>,
    /// The cursor of the next page, if there are more hits.
    pub next_cursor: Option<String>,
}

/// One matching entry.
///
/// Snippets are HTML: the text is escaped (`&`, `<`, `>`, `"` and `'` as entities) and matched
/// words are wrapped in `<em>` and `</em>`, the only markup. A snippet holds the whole name, and
/// the best passage of the summary (about a hundred characters, `…` marking cut text). Without
/// matched words in it, a snippet is the escaped beginning of the text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    pub code: String,
    /// The relevance score, when hits are ordered by relevance.
    pub score: Option<f32>,
    pub payload: String,
    pub name_snippet: Option<String>,
    pub summary_snippet: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCounts {
    pub facet: Facet,
    /// Values and how many matches have them, most frequent first, ties by value.
    pub values: Vec<(String, u64)>,
}

/// Tuning of an index; the defaults suit a server on a small machine.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Memory of tantivy's writer, over all its threads; larger means fewer, larger segments
    /// during bulk imports.
    pub writer_memory_bytes: usize,
    /// Threads tokenizing and indexing documents.
    pub writer_threads: usize,
    /// Least time between two commits while writes come in.
    pub commit_interval: Duration,
    /// Documents sent but not yet indexed before [`CatalogIndex::upsert`] waits.
    pub max_pending_documents: usize,
}

impl Default for IndexOptions {
    fn default() -> IndexOptions {
        let cores = std::thread::available_parallelism().map_or(2, |cores| cores.get());
        IndexOptions {
            writer_memory_bytes: 192 << 20,
            writer_threads: cores.clamp(1, 4),
            commit_interval: Duration::from_millis(500),
            max_pending_documents: 50_000,
        }
    }
}

/// Bumped whenever the schema or the analyzers change: an index of another version is not read
/// but left for removal, and a new one is built from the store.
const INDEX_FORMAT_VERSION: u32 = 2;

/// The catalog's search index. Cheap to clone; clones share the index and its indexer thread.
#[derive(Clone)]
pub struct CatalogIndex {
    shared: Arc<Shared>,
}

struct Shared {
    index: Index,
    reader: IndexReader,
    fields: schema::Fields,
    indexer: indexer::IndexerHandle,
    columns: Arc<collect::ColumnCache>,
}

impl CatalogIndex {
    /// Opens the index in `directory`, creating it (and the directory) if missing. Blocking file
    /// I/O: call it at start-up, or from `spawn_blocking`.
    ///
    /// The index lives in a subdirectory named after its format version; subdirectories of
    /// other versions are removed, because the index can always be rebuilt.
    pub fn open(directory: &Path) -> Result<CatalogIndex> {
        CatalogIndex::open_with(directory, IndexOptions::default())
    }

    pub fn open_with(directory: &Path, options: IndexOptions) -> Result<CatalogIndex> {
        let versioned = directory.join(format!("v{INDEX_FORMAT_VERSION}"));
        let directory_error = |path: &Path| {
            let path = path.to_owned();
            move |source| SearchError::Directory { path, source }
        };
        std::fs::create_dir_all(&versioned).map_err(directory_error(&versioned))?;
        remove_other_versions(directory);
        let (schema, fields) = schema::build_schema();
        let mmap = tantivy::directory::MmapDirectory::open(&versioned)
            .map_err(|error| SearchError::Index(error.into()))?;
        let index = Index::builder()
            .schema(schema)
            .settings(index_settings())
            .open_or_create(mmap)?;
        CatalogIndex::start(index, fields, options)
    }

    /// An index in memory, for tests and tools.
    pub fn in_memory(options: IndexOptions) -> Result<CatalogIndex> {
        let (schema, fields) = schema::build_schema();
        let index = Index::builder()
            .schema(schema)
            .settings(index_settings())
            .create_in_ram()?;
        CatalogIndex::start(index, fields, options)
    }

    fn start(index: Index, fields: schema::Fields, options: IndexOptions) -> Result<CatalogIndex> {
        schema::register_analyzers(&index);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        let indexer = indexer::start(&index, reader.clone(), fields.clone(), &options)?;
        Ok(CatalogIndex {
            shared: Arc::new(Shared {
                index,
                reader,
                fields,
                indexer,
                columns: Arc::default(),
            }),
        })
    }

    /// Adds the documents, replacing those with the same codes. Returns once the indexer thread
    /// has them; waits only while it is more than
    /// [`IndexOptions::max_pending_documents`] behind, so a bulk import cannot outrun it.
    pub async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<()> {
        self.shared.indexer.upsert(documents).await
    }

    /// Removes the document with this code, if any. Never waits.
    pub fn delete(&self, code: &str) -> Result<()> {
        self.shared.indexer.delete(code.to_owned())
    }

    /// Removes every document and records sequence number 0, for a rebuild. Never waits.
    pub fn clear(&self) -> Result<()> {
        self.shared.indexer.clear()
    }

    /// Records that the index has been sent every store change up to `seq`. The number is saved
    /// with the commit that makes those changes durable, so [`CatalogIndex::indexed_seq`] never
    /// claims more than the index holds. Never waits.
    pub fn mark_indexed(&self, seq: u64) -> Result<()> {
        self.shared.indexer.mark_indexed(seq)
    }

    /// The store sequence number of the last commit: 0 for a new index.
    pub fn indexed_seq(&self) -> u64 {
        self.shared.indexer.indexed_seq()
    }

    /// The sequence number of the last [`CatalogIndex::mark_indexed`] (0 after
    /// [`CatalogIndex::clear`], [`CatalogIndex::indexed_seq`] for an index just opened): what a
    /// feeder has sent, committed or not. A feeder continues from here, not from
    /// `indexed_seq`, so that changes waiting for the next commit are not sent again.
    pub fn marked_seq(&self) -> u64 {
        self.shared.indexer.marked_seq()
    }

    /// Resolves when everything sent before the call is committed and searchable.
    pub async fn flush(&self) -> Result<()> {
        self.shared.indexer.flush().await
    }

    /// Commits what is pending, waits for background merges and stops the indexer thread,
    /// releasing the index's write lock. Clones can still search; their writes fail.
    pub async fn close(&self) -> Result<()> {
        self.shared.indexer.close().await
    }

    /// Documents in the searchable index.
    pub fn document_count(&self) -> u64 {
        self.shared.reader.searcher().num_docs()
    }

    /// Runs a search. CPU-bound and without I/O waits (the index is memory-mapped); at a million
    /// documents it takes about a millisecond, so async callers may run it in place or, under
    /// heavy load, on `spawn_blocking`.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchResponse> {
        let shared = &*self.shared;
        let (offset, limit, after) = match &request.paging {
            Paging::Offset { offset, limit } => {
                if offset.saturating_add(*limit) > MAX_OFFSET_WINDOW {
                    return Err(SearchError::InvalidRequest {
                        message: format!(
                            "offset + limit must be at most {MAX_OFFSET_WINDOW}; use a cursor to page deeper"
                        ),
                    });
                }
                (*offset, *limit, None)
            }
            Paging::Cursor { after, limit } => (0, *limit, after.as_deref()),
        };
        if limit > MAX_LIMIT {
            return Err(SearchError::InvalidRequest {
                message: format!("limit must be at most {MAX_LIMIT}"),
            });
        }
        let condition_values = match &request.condition {
            Some(condition) => condition.count_values(1)?,
            None => 0,
        };
        if request.filters.len() + request.exclusions.len() + condition_values > MAX_FILTERS {
            return Err(SearchError::InvalidRequest {
                message: format!("at most {MAX_FILTERS} filter values"),
            });
        }
        // Each requested facet costs a counter per distinct value in every segment, so a
        // facet asked for twice would be counted twice: refused here, whoever the caller is, so
        // a request can never ask for more counting than the facets that exist.
        let mut requested = [false; Facet::ALL.len()];
        for &facet in &request.facets {
            if std::mem::replace(&mut requested[facet as usize], true) {
                return Err(SearchError::InvalidRequest {
                    message: format!("facet {facet} is requested more than once"),
                });
            }
        }
        let mut built = query::build(
            &shared.index,
            &shared.fields,
            &request.query,
            &request.filters,
            &request.exclusions,
            request.condition.as_ref(),
        )?;
        let sort = match (request.sort, built.has_text()) {
            (Sort::Relevance, true) => cursor::Order::Relevance,
            _ => cursor::Order::Modified,
        };
        let after = after.map(|text| cursor::decode(text, sort)).transpose()?;
        let highlight_terms = std::mem::take(&mut built.highlight_terms);
        let searcher = shared.reader.searcher();
        let plan = built.plan(&shared.fields, sort == cursor::Order::Relevance, &searcher);
        let live: Vec<tantivy::index::SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|segment| segment.segment_id())
            .collect();
        shared.columns.retain(&live);
        let collector = collect::CatalogCollector {
            order: sort,
            after,
            // One more than the page shows whether there is a next page.
            keep: offset + limit + 1,
            facets: request.facets.clone(),
            facet_limit: request.facet_limit,
            fields: shared.fields.clone(),
            cache: shared.columns.clone(),
            filters: plan.collector_filters,
            prune: plan.prune,
            words: plan.words,
        };
        let found = searcher.search(&*plan.query, &collector)?;
        let mut ranked = found.top;
        let has_more = ranked.len() > offset + limit;
        ranked.truncate(offset + limit);
        let page: Vec<_> = ranked.into_iter().skip(offset).collect();
        let next_cursor = match (has_more, page.last()) {
            (true, Some(last)) => Some(cursor::encode(sort, last.key)),
            _ => None,
        };
        let mut highlighter = request
            .snippets
            .then(|| snippet::Highlighter::new(&highlight_terms));
        let mut hits = Vec::with_capacity(page.len());
        for ranked_hit in page {
            let document: TantivyDocument = searcher.doc(ranked_hit.address)?;
            let text = |field| {
                document
                    .get_first(field)
                    .and_then(|value| value.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            let (name_snippet, summary_snippet) = match &mut highlighter {
                Some(highlighter) => (
                    Some(highlighter.name(&text(shared.fields.name))),
                    Some(highlighter.summary(&text(shared.fields.summary))),
                ),
                None => (None, None),
            };
            hits.push(Hit {
                code: text(shared.fields.code),
                score: (sort == cursor::Order::Relevance).then_some(ranked_hit.score),
                payload: text(shared.fields.payload),
                name_snippet,
                summary_snippet,
            });
        }
        let facets = request
            .facets
            .iter()
            .zip(found.facet_counts)
            .map(|(&facet, values)| FacetCounts { facet, values })
            .collect();
        Ok(SearchResponse {
            total: found.total,
            hits,
            facets,
            next_cursor,
        })
    }
}

/// Stored documents are compressed in blocks, and showing a hit decompresses its whole block.
/// Hits of one page lie in different blocks, so blocks are kept small: 4 KiB holds a few entries.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_blocksize: 4096,
        ..tantivy::IndexSettings::default()
    }
}

/// Removes `v<digits>` subdirectories other than the current version's: indexes of older
/// formats, which the server rebuilds. Only such names are touched, so pointing the index at a
/// directory holding other data never deletes that data.
fn remove_other_versions(directory: &Path) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    let current = format!("v{INDEX_FORMAT_VERSION}");
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_version = name.len() > 1
            && name.starts_with('v')
            && name[1..].bytes().all(|byte| byte.is_ascii_digit());
        if is_version && name != current && entry.path().is_dir() {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(directory = %entry.path().display(), "removed search index of another format version")
                }
                Err(error) => {
                    tracing::warn!(directory = %entry.path().display(), %error, "cannot remove search index of another format version")
                }
            }
        }
    }
}
