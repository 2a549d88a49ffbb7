//! The store conformance suite: every test runs on SQLite and, when a test server is configured, on
//! PostgreSQL, through the same `Store` interface.

mod access;
mod audit;
mod catalog;
mod keys;
mod ledger_index;
mod registry;
mod scenarios;
mod subjects;
mod usage;

use civitas_core::{
    RegionCode, Uscc,
    authz::Permit,
    registry::{Level, Role, UserName},
};
use civitas_store::{NewOrganization, NewSystem, NewUser, Store, StoreUrl};

/// Generates, for each listed async test function `fn(Store)`, one test per backend.
macro_rules! conformance {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let url = civitas_store::StoreUrl::Sqlite(dir.path().join("civitas.db"));
                    let store = civitas_store::Store::connect(&url).await.unwrap();
                    super::$name(store).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(url) = civitas_store::testing::fresh_postgres_database().await else {
                        return;
                    };
                    let store = civitas_store::Store::connect(&url).await.unwrap();
                    super::$name(store).await;
                }
            )+
        }
    };
}
pub(crate) use conformance;

/// The id of a node's ledger, as `Ledger::id` makes them.
pub const LEDGER: &str = "0123456789abcdef0123456789abcdef";
/// The id of another node's ledger.
pub const OTHER_LEDGER: &str = "fedcba9876543210fedcba9876543210";

pub fn admin() -> Permit {
    Permit::internal("civitas:test")
}

/// Builds a valid unified social credit code whose organization part is `n`.
pub fn uscc(n: u32) -> Uscc {
    Uscc::from_parts('1', '1', "320100", &format!("MB{n:06}")).unwrap()
}

pub fn new_org(n: u32, parent: Option<u32>) -> NewOrganization {
    NewOrganization {
        code: uscc(n),
        name: format!("南京市测试局{n}"),
        name_en: Some(format!("Test Bureau {n}")),
        level: Level::Municipal,
        region: RegionCode::parse("320100").unwrap(),
        parent: parent.map(uscc),
    }
}

/// A system that consumes services, or else provides them.
pub fn new_system(code: &str, consumes: bool) -> NewSystem {
    NewSystem {
        code: civitas_core::Code::parse(code).unwrap(),
        name: format!("系统 {code}"),
        description: "a test system".into(),
        consumes,
        provides: !consumes,
    }
}

pub fn new_user(name: &str, role: Role, organization: Option<u32>) -> NewUser {
    NewUser {
        name: UserName::parse(name).unwrap(),
        display_name: name.to_uppercase(),
        role,
        organization: organization.map(uscc),
        password_hash: None,
    }
}

#[tokio::test]
async fn sqlite_store_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("civitas.db"));
    let store = Store::connect(&url).await.unwrap();
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store.close().await;
    let reopened = Store::connect(&url).await.unwrap();
    assert_eq!(
        reopened.organization(&uscc(1)).await.unwrap().name,
        "南京市测试局1"
    );
}

/// A data dir from before resources kept their current version in one place only (migration
/// 7): its history reads the same afterwards, and versions are no longer stored twice.
#[tokio::test]
async fn sqlite_history_survives_the_move_of_current_versions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("civitas.db");
    let url = StoreUrl::Sqlite(path.clone());
    let store = Store::connect(&url).await.unwrap();
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store.close().await;
    // Back to the schema before migration 7 (undoing 8 on the way), then rows as that schema's
    // code wrote them: each version in `resource_versions`, the current one in `resources` too.
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for statement in subjects::BEFORE_MIGRATION_8.into_iter().chain([
        "DELETE FROM _sqlx_migrations WHERE version >= 7",
        "ALTER TABLE resources DROP COLUMN changed_by",
    ]) {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    let version_1 = serde_json::to_string(&catalog::draft(1, 1)).unwrap();
    let mut changed = catalog::draft(1, 1);
    changed.name = "住房公积金缴存明细".into();
    let version_2 = serde_json::to_string(&changed).unwrap();
    sqlx::query(
        "INSERT INTO resources (code, seq, version, kind, classification, provider, sharing_type,
             open_type, name, active, created_at, updated_at, document)
         VALUES ('320100-B01-000001', 2, 2, 'dataset', 'B01', $1, 'unconditional', 'closed',
             '住房公积金缴存明细', TRUE, 1000, 2000, $2)",
    )
    .bind(uscc(1).as_str())
    .bind(&version_2)
    .execute(&pool)
    .await
    .unwrap();
    for (version, at, by, document) in [
        (1, 1000, "civitas:import", &version_1),
        (2, 2000, "civitas:editor", &version_2),
    ] {
        sqlx::query(
            "INSERT INTO resource_versions (code, version, active, changed_at, changed_by, document)
             VALUES ('320100-B01-000001', $1, TRUE, $2, $3, $4)",
        )
        .bind(version)
        .bind(at)
        .bind(by)
        .bind(document)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let store = Store::connect(&url).await.unwrap();
    let code = catalog::draft(1, 1).code;
    let history = store.resource_history(&code).await.unwrap();
    let versions: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.changed_by.as_str(), v.draft.name.as_str()))
        .collect();
    assert_eq!(
        versions,
        [
            (1, "civitas:import", "住房公积金缴存信息1"),
            (2, "civitas:editor", "住房公积金缴存明细")
        ]
    );
    // A later change moves version 2 into the history, with who made it.
    store
        .set_resource_active(&admin(), &code, false)
        .await
        .unwrap();
    let history = store.resource_history(&code).await.unwrap();
    let actors: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.changed_by.as_str()))
        .collect();
    assert_eq!(
        actors,
        [
            (1, "civitas:import"),
            (2, "civitas:editor"),
            (3, "civitas:test")
        ]
    );
    store.close().await;
    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM resource_versions")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 2, "the current version is stored once");
}

/// Commits leave their pages in the write-ahead log; a connection of the store's own copies them
/// into the database file within about a second, without a commit having to.
#[tokio::test]
async fn sqlite_checkpoints_the_log_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("civitas.db");
    let store = Store::connect(&StoreUrl::Sqlite(path.clone()))
        .await
        .unwrap();
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    // About 3 MB of pages: below SQLite's own threshold for a checkpoint by the committing
    // connection (1,000 pages), which the store turns off anyway.
    for batch in 0..4 {
        let drafts: Vec<_> = (1..=500)
            .map(|n| catalog::draft(batch * 500 + n, 1))
            .collect();
        store
            .write_resources(&admin(), &drafts, civitas_store::WriteMode::Upsert)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() < before + (1 << 20) {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file stayed at {} bytes: the log was not checkpointed",
            size()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    store.close().await;
}
