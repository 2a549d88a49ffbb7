//! The store conformance suite: every test runs on SQLite and, when a test server is configured, on
//! PostgreSQL, through the same `Store` interface.

mod access;
mod audit;
mod catalog;
mod keys;
mod registry;

use civitas_core::{
    RegionCode, Uscc,
    authz::Permit,
    registry::{Level, Role, UserName},
};
use civitas_store::{NewOrganization, NewUser, Store, StoreUrl};

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
