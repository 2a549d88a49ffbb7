use civitas_store::{PageRequest, Store, StoreError, StoreUrl, SubjectDelivery};

use crate::{LEDGER, conformance};

conformance!(subject_deliveries_page_oldest_first);

fn delivery(subject: u8, ledger_index: u64) -> SubjectDelivery {
    SubjectDelivery {
        subject: [subject; 32],
        ledger_index,
    }
}

fn page(limit: u32, after: Option<&str>) -> PageRequest {
    PageRequest {
        limit,
        after: after.map(str::to_owned),
    }
}

async fn subject_deliveries_page_oldest_first(store: Store) {
    let spans = [
        vec![delivery(1, 7), delivery(2, 7), delivery(1, 3)],
        vec![delivery(1, 12), delivery(2, 15)],
    ];
    for (span, next) in spans.iter().zip([10, 20]) {
        store
            .add_ledger_index(LEDGER, span, &[], &[], next)
            .await
            .unwrap();
    }
    assert_eq!(store.ledger_index_next().await.unwrap(), 20);
    // Adding a span again changes nothing, and never moves the position back.
    store
        .add_ledger_index(LEDGER, &spans[0], &[], &[], 10)
        .await
        .unwrap();
    assert_eq!(store.ledger_index_next().await.unwrap(), 20);

    let first = store
        .subject_deliveries(&[1; 32], &page(2, None))
        .await
        .unwrap();
    assert_eq!(first.items, [3, 7]);
    let cursor = first.next_cursor.expect("a next page");
    let second = store
        .subject_deliveries(&[1; 32], &page(2, Some(&cursor)))
        .await
        .unwrap();
    assert_eq!((second.items, second.next_cursor), (vec![12], None));
    let other = store
        .subject_deliveries(&[2; 32], &page(100, None))
        .await
        .unwrap();
    assert_eq!(other.items, [7, 15]);
    assert!(
        store
            .subject_deliveries(&[3; 32], &page(100, None))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    for cursor in ["seven", "-1", "18446744073709551615"] {
        let error = store
            .subject_deliveries(&[1; 32], &page(2, Some(cursor)))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Invalid { field, .. } if field == "cursor"),
            "{cursor}: {error}"
        );
    }
}

/// The schema before migration 8 kept a whole row per delivery; the hashes it spelled in
/// hexadecimal are bytes afterwards, with the ledger indexes they pointed at.
pub(crate) const BEFORE_MIGRATION_8: [&str; 3] = [
    "DELETE FROM _sqlx_migrations WHERE version >= 8",
    "DROP TABLE subject_deliveries",
    "CREATE TABLE subject_access (
         subject TEXT NOT NULL, ledger_index BIGINT NOT NULL, at BIGINT NOT NULL,
         consumer TEXT NOT NULL, provider TEXT NOT NULL, service TEXT NOT NULL,
         resource TEXT NOT NULL, grant_id TEXT, PRIMARY KEY (subject, ledger_index))",
];
const OLD_ROWS: &str = "INSERT INTO subject_access VALUES
    ('0101010101010101010101010101010101010101010101010101010101010101', 4, 1, 'c', 'p', 's', 'r', 'g'),
    ('0101010101010101010101010101010101010101010101010101010101010101', 9, 2, 'c', 'p', 's', 'r', NULL),
    ('abababababababababababababababababababababababababababababababab', 5, 3, 'c', 'p', 's', 'r', 'g')";

async fn deliveries_survive_migration_8(url: &StoreUrl) {
    let store = Store::connect(url).await.unwrap();
    assert_eq!(
        store
            .subject_deliveries(&[1; 32], &page(100, None))
            .await
            .unwrap()
            .items,
        [4, 9]
    );
    assert_eq!(
        store
            .subject_deliveries(&[0xab; 32], &page(100, None))
            .await
            .unwrap()
            .items,
        [5]
    );
}

#[tokio::test]
async fn sqlite_deliveries_survive_migration_8() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("civitas.db");
    let url = StoreUrl::Sqlite(path.clone());
    Store::connect(&url).await.unwrap().close().await;
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    for statement in BEFORE_MIGRATION_8.into_iter().chain([OLD_ROWS]) {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    deliveries_survive_migration_8(&url).await;
}

#[tokio::test]
async fn postgres_deliveries_survive_migration_8() {
    let Some(url) = civitas_store::testing::fresh_postgres_database().await else {
        return;
    };
    let StoreUrl::Postgres(text) = &url else {
        unreachable!("a PostgreSQL URL")
    };
    Store::connect(&url).await.unwrap().close().await;
    let pool = sqlx::PgPool::connect(text).await.unwrap();
    for statement in BEFORE_MIGRATION_8.into_iter().chain([OLD_ROWS]) {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    pool.close().await;
    deliveries_survive_migration_8(&url).await;
}
