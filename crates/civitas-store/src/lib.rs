//! The civitas store: one interface over two backends chosen by URL, SQLite (`sqlite://…`, the
//! embedded default) and PostgreSQL (`postgres://…`).
//!
//! Only this crate knows SQL. Both backends share the same schema (migrations under `migrations/`,
//! applied on connect) and the same conformance tests. Queries are written once in the dialect
//! both understand (`$1` placeholders, `ON CONFLICT`, `RETURNING`) and run on whichever pool the
//! store holds, through the `read_pool!` and `write_tx!` macros.
//!
//! Every change takes a [`Permit`](civitas_core::authz::Permit) and writes its audit event in the
//! same transaction, so a change and its audit record are committed together or not at all.

mod access;
mod audit;
mod catalog;
mod gateway;
mod keys;
mod registry;
mod scenarios;

use std::{fmt, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use jiff::Timestamp;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

pub use access::{ApplicationFilter, GrantFilter, GrantTerms, NewApplication};
pub use audit::{AuditEvent, AuditFilter};
pub use catalog::{ImportOutcome, ResourceFilter, ResourceVersion, WriteMode};
pub use gateway::{
    CertificateState, ClientCertificate, GrantUsage, GrantUsageSummary, LedgerIndexFacts,
    LedgerIndexHandover, LedgerIndexOwner, LedgerIndexRewind, SubjectDelivery, UsageFilter,
    UsageReport, UsageSide,
};
pub use keys::{Authenticated, NewApiKey};
pub use registry::{
    NewOrganization, NewSystem, NewUser, OrganizationFilter, OrganizationUpdate, SystemFilter,
    SystemUpdate, UserFilter, UserUpdate,
};
pub use scenarios::{NewScenarioVersion, ScenarioRun, ScenarioVersion};

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{kind} {id} already exists")]
    Duplicate { kind: &'static str, id: String },
    /// A value that is well-formed but breaks a rule that needs the stored data to check (an
    /// unknown parent, a cycle, a deactivated owner). `field` names the input field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// A change that is not possible in the object's current state.
    #[error("{0}")]
    Conflict(String),
    /// A change made on the condition that the object is still at `expected`, which it no longer
    /// is (optimistic concurrency).
    #[error("{kind} {id} is at version {current}, not {expected}")]
    Stale {
        kind: &'static str,
        id: String,
        expected: u32,
        current: u32,
    },
    /// The store's indexes derived from the ledger are recorded as those of another ledger than
    /// the node's (`ledger`): another node has the store, handed over by `civitas ledger
    /// adopt-store`, and this node must not read its ledger into them, note where events
    /// landed, or rewind them. `recorded` is `None` while no ledger is recorded.
    #[error(
        "the store's ledger indexes are recorded as those of ledger {}, not of this node's ledger {ledger}: another node has the store (as `civitas ledger adopt-store` hands it over), so this node leaves it alone; stop this node",
        recorded.as_deref().unwrap_or("(none)")
    )]
    LedgerNotOwned {
        recorded: Option<String>,
        ledger: String,
    },
    #[error("store url: {0}")]
    BadUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

/// The SQLSTATEs PostgreSQL answers for text it cannot hold: a NUL character in `TEXT`
/// (`22021`, character_not_in_repertoire) or escaped in `JSONB` (`22P05`,
/// untranslatable_character). SQLite stores such text.
const UNSTORABLE_TEXT_STATES: [&str; 2] = ["22021", "22P05"];

impl From<sqlx::Error> for StoreError {
    /// Text with a NUL character is the input's fault, not the store's, whichever field it came
    /// in: it is invalid input (`body`, as no field is known here), never a database failure.
    /// The store's own validators name the field where they check it.
    fn from(error: sqlx::Error) -> StoreError {
        if let sqlx::Error::Database(database) = &error
            && database
                .code()
                .is_some_and(|code| UNSTORABLE_TEXT_STATES.contains(&code.as_ref()))
        {
            return StoreError::invalid("body", "text must not contain the NUL character (U+0000)");
        }
        StoreError::Database(error)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl StoreError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub(crate) fn corrupt(what: impl fmt::Display) -> StoreError {
        StoreError::Corrupt(what.to_string())
    }
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`], leaving other errors alone.
pub(crate) fn duplicate_as(kind: &'static str, id: &str) -> impl FnOnce(sqlx::Error) -> StoreError {
    let id = id.to_owned();
    move |error| match &error {
        sqlx::Error::Database(database) if database.is_unique_violation() => {
            StoreError::Duplicate { kind, id }
        }
        _ => error.into(),
    }
}

/// Where the store lives. Parsed from `sqlite://PATH` or `postgres://…`; its `Debug` and
/// `Display` forms never show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    pub fn parse(text: &str) -> Result<StoreUrl> {
        if let Some(path) = text.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::BadUrl("sqlite:// needs a file path".into()));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            PgConnectOptions::from_str(text).map_err(|e| StoreError::BadUrl(e.to_string()))?;
            return Ok(StoreUrl::Postgres(text.to_owned()));
        }
        Err(StoreError::BadUrl(
            "expected sqlite://PATH or postgres://USER@HOST:PORT/DB".into(),
        ))
    }

    pub fn backend(&self) -> Backend {
        match self {
            StoreUrl::Sqlite(_) => Backend::Sqlite,
            StoreUrl::Postgres(_) => Backend::Postgres,
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => f.write_str(&redact_password(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// Replaces the password of `scheme://user:password@host…` with `***`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Pools {
    /// SQLite allows one writer at a time: writes go through a single-connection pool so they
    /// queue in-process instead of failing with SQLITE_BUSY, while reads run concurrently in WAL
    /// mode on the reader pool.
    ///
    /// The writer never checkpoints the write-ahead log itself (a commit that crossed SQLite's
    /// automatic threshold would copy megabytes of pages into the database and fsync it before
    /// answering); a connection of its own does, every [`CHECKPOINT_INTERVAL`], beside the
    /// writer.
    Sqlite {
        reader: sqlx::SqlitePool,
        writer: sqlx::SqlitePool,
        checkpointer: sqlx::SqlitePool,
        /// Dropped with the last clone of the store, which stops the checkpointing task.
        _checkpointing: Arc<tokio::sync::watch::Sender<()>>,
    },
    Postgres(sqlx::PgPool),
}

/// The store. Cheap to clone: it holds connection pools.
#[derive(Clone)]
pub struct Store {
    pools: Pools,
    url: StoreUrl,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("url", &self.url).finish()
    }
}

/// Runs `$body` with `$pool` bound to a pool that serves reads.
macro_rules! read_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match &$store.pools {
            $crate::Pools::Sqlite { reader: $pool, .. } => $body,
            $crate::Pools::Postgres($pool) => $body,
        }
    };
}
pub(crate) use read_pool;

/// Runs `$body` inside a write transaction bound to `$tx` and commits it when `$body` succeeds. An
/// early return through `?` drops the transaction, which rolls it back.
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match &$store.pools {
            $crate::Pools::Sqlite { writer, .. } => {
                let mut $tx = writer.begin_with("BEGIN IMMEDIATE").await?;
                let output = $body;
                $tx.commit().await?;
                output
            }
            $crate::Pools::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let output = $body;
                $tx.commit().await?;
                output
            }
        }
    };
}
pub(crate) use write_tx;

impl Store {
    /// Connects to the store at `url`, creating the SQLite file if needed, and applies the
    /// migrations that are not applied yet.
    pub async fn connect(url: &StoreUrl) -> Result<Store> {
        let pools = match url {
            StoreUrl::Sqlite(path) => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::BadUrl(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    // 16 KiB pages (set when the file is created): a bulk import writes a
                    // third fewer pages, and resource documents of a few KB fit in one page.
                    .page_size(16384)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10))
                    .pragma("cache_size", "-65536");
                // The writer's cache keeps the pages it last wrote. The gateway's indexes of
                // the ledger only append, so those pages are seldom read again; at the readers'
                // 64 MiB that cache grew with every call into most of a busy node's memory. A
                // quarter of it imports a million catalog directories as fast.
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(
                        options
                            .clone()
                            .pragma("wal_autocheckpoint", "0")
                            .pragma("cache_size", "-16384"),
                    )
                    .await?;
                sqlx::migrate!("migrations/sqlite").run(&writer).await?;
                let checkpointer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await?;
                let (checkpointing, dropped) = tokio::sync::watch::channel(());
                tokio::spawn(checkpoint_periodically(checkpointer.clone(), dropped));
                let reader = SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options.read_only(true))
                    .await?;
                Pools::Sqlite {
                    reader,
                    writer,
                    checkpointer,
                    _checkpointing: Arc::new(checkpointing),
                }
            }
            StoreUrl::Postgres(text) => {
                let options = PgConnectOptions::from_str(text)
                    .map_err(|e| StoreError::BadUrl(e.to_string()))?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?;
                sqlx::migrate!("migrations/postgres").run(&pool).await?;
                Pools::Postgres(pool)
            }
        };
        tracing::info!(store = %url, "store ready");
        Ok(Store {
            pools,
            url: url.clone(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.url.backend()
    }

    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Checks that the store answers a query.
    pub async fn ping(&self) -> Result<()> {
        read_pool!(self, |pool| {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    /// Closes every connection after the queries in flight finish. On SQLite this also
    /// checkpoints the write-ahead log into the database file.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite {
                reader,
                writer,
                checkpointer,
                ..
            } => {
                reader.close().await;
                checkpointer.close().await;
                if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(writer)
                    .await
                {
                    tracing::warn!(%error, "wal checkpoint on close failed");
                }
                writer.close().await;
            }
            Pools::Postgres(pool) => pool.close().await,
        }
    }
}

/// Placeholders for `rows` rows of `columns` columns, bound in order: `($1, $2, …)` on
/// PostgreSQL, `(?, ?, …)` on SQLite. SQLite binds a numbered parameter by looking its name up
/// in a list, once per parameter, which makes a statement of thousands of numbered parameters
/// quadratic to bind (most of a bulk import's time); anonymous ones bind directly.
pub(crate) fn values_placeholders(backend: Backend, rows: usize, columns: usize) -> String {
    let mut text = String::with_capacity(rows * columns * 5);
    for row in 0..rows {
        if row > 0 {
            text.push_str(", ");
        }
        text.push('(');
        text.push_str(&list_placeholders(backend, row * columns + 1, columns));
        text.push(')');
    }
    text
}

/// `$first, $first+1, …` (or `?, ?, …`, see [`values_placeholders`]) for `count` values; on
/// SQLite only as the statement's first parameters, since `?` takes the next number.
pub(crate) fn list_placeholders(backend: Backend, first: usize, count: usize) -> String {
    let mut text = String::with_capacity(count * 5);
    for n in first..first + count {
        if n > first {
            text.push_str(", ");
        }
        match backend {
            Backend::Sqlite => text.push('?'),
            Backend::Postgres => {
                text.push('$');
                text.push_str(&n.to_string());
            }
        }
    }
    text
}

/// How often the SQLite write-ahead log is checkpointed into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Copies the committed pages of the write-ahead log into the database file, without waiting
/// for readers or blocking the writer (a passive checkpoint), until the pool is closed or the
/// store dropped. The log starts over from its beginning at the first commit after a checkpoint
/// that copied it all.
async fn checkpoint_periodically(
    checkpointer: sqlx::SqlitePool,
    mut dropped: tokio::sync::watch::Receiver<()>,
) {
    let mut interval = tokio::time::interval(CHECKPOINT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = dropped.changed() => {
                checkpointer.close().await;
                return;
            }
        }
        if checkpointer.is_closed() {
            return;
        }
        match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&checkpointer)
            .await
        {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => tracing::warn!(%error, "wal checkpoint failed"),
        }
    }
}

/// A page of a listing and the cursor for the next one (`None` on the last page).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// Which page of a listing to read: at most `limit` items after the item whose key is `after`.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub limit: u32,
    pub after: Option<String>,
}

impl PageRequest {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;

    /// The number of rows to fetch: one more than the page size tells whether a next page exists.
    pub(crate) fn fetch_limit(&self) -> i64 {
        i64::from(self.limit.clamp(1, PageRequest::MAX_LIMIT)) + 1
    }

    /// Cuts the extra row fetched by [`fetch_limit`](Self::fetch_limit) and derives the cursor.
    pub(crate) fn page<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let limit = self.limit.clamp(1, PageRequest::MAX_LIMIT) as usize;
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(key)
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

pub(crate) fn micros(at: Timestamp) -> i64 {
    at.as_microsecond()
}

pub(crate) fn timestamp(micros: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(micros).map_err(StoreError::corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_passwords() {
        let url = StoreUrl::parse("postgres://civitas:s3cret@127.0.0.1:5432/civitas").unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://civitas:***@127.0.0.1:5432/civitas"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(
            StoreUrl::parse("sqlite://data/civitas.db").unwrap(),
            StoreUrl::Sqlite("data/civitas.db".into())
        );
        assert!(StoreUrl::parse("mysql://x").is_err());
        assert!(StoreUrl::parse("sqlite://").is_err());
    }
}

/// Helpers for tests that run against both backends, here and in the crates above.
pub mod testing {
    use super::*;

    /// The environment variable naming a PostgreSQL server for tests (an admin URL such as
    /// `postgres://postgres@127.0.0.1:5432/postgres`). The test scripts start one and set it.
    pub const POSTGRES_URL_VAR: &str = "CIVITAS_TEST_POSTGRES_URL";
    /// Set by the test scripts so that a missing PostgreSQL fails the run instead of skipping.
    pub const REQUIRE_POSTGRES_VAR: &str = "CIVITAS_REQUIRE_POSTGRES";

    /// Creates a fresh, empty database on the test PostgreSQL server and returns its URL; `None`
    /// when no server is configured (and none is required).
    pub async fn fresh_postgres_database() -> Option<StoreUrl> {
        let Ok(admin_url) = std::env::var(POSTGRES_URL_VAR) else {
            if std::env::var_os(REQUIRE_POSTGRES_VAR).is_some() {
                panic!("{REQUIRE_POSTGRES_VAR} is set but {POSTGRES_URL_VAR} is not");
            }
            eprintln!("{POSTGRES_URL_VAR} is not set: skipping the PostgreSQL half of this test");
            return None;
        };
        let options = PgConnectOptions::from_str(&admin_url).expect("test postgres url");
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = format!(
            "civitas_test_{}_{}_{}",
            std::process::id(),
            Timestamp::now().as_millisecond(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let admin = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("connect to the test postgres server");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("create a test database");
        admin.close().await;
        let (base, _database) = admin_url
            .rsplit_once('/')
            .expect("the test postgres url ends in /DATABASE");
        Some(StoreUrl::Postgres(format!("{base}/{name}")))
    }
}
