//! Upserts, deletes, durability of the indexed sequence number, and visibility of writes.

use std::time::{Duration, Instant};

use civitas_search::{CatalogIndex, SearchError};

use crate::support::{document, memory_index, search_codes, small_options};

#[tokio::test]
async fn reopen_keeps_documents_and_indexed_seq() {
    let directory = tempfile::tempdir().unwrap();
    let index = CatalogIndex::open_with(directory.path(), small_options()).unwrap();
    assert_eq!(index.indexed_seq(), 0, "a new index has seen nothing");
    index
        .upsert(vec![document("320100-B01-000001", "户籍人口信息")])
        .await
        .unwrap();
    index.mark_indexed(42).unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.indexed_seq(), 42);
    index.mark_indexed(43).unwrap();
    index.close().await.unwrap();
    assert!(matches!(
        index.upsert(vec![document("320100-B01-000002", "x")]).await,
        Err(SearchError::IndexerStopped { .. })
    ));
    drop(index);

    let reopened = CatalogIndex::open_with(directory.path(), small_options()).unwrap();
    assert_eq!(reopened.indexed_seq(), 43, "close commits what was marked");
    assert_eq!(search_codes(&reopened, "户籍"), ["320100-B01-000001"]);
    reopened.clear().unwrap();
    reopened.flush().await.unwrap();
    assert_eq!(reopened.indexed_seq(), 0);
    assert_eq!(reopened.document_count(), 0);
    reopened.close().await.unwrap();
}

/// A process being spawned holds a copy of every open file until it starts its program, the
/// writer lock's included; an index closed in that moment (a restart) must still reopen.
#[tokio::test]
async fn an_index_reopens_while_this_process_spawns_others() {
    let directory = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::Command::new("true").status().unwrap();
                spawned += 1;
            }
            spawned
        })
    };
    for _ in 0..20 {
        let index = CatalogIndex::open_with(directory.path(), small_options()).unwrap();
        index.close().await.unwrap();
        drop(index);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(spawner.join().unwrap() > 0);
}

#[tokio::test]
async fn indexes_of_other_format_versions_are_replaced() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::create_dir(directory.path().join("v0")).unwrap();
    std::fs::write(directory.path().join("v0").join("meta.json"), "old").unwrap();
    std::fs::create_dir(directory.path().join("keep-me")).unwrap();
    let index = CatalogIndex::open_with(directory.path(), small_options()).unwrap();
    assert!(!directory.path().join("v0").exists());
    assert!(
        directory.path().join("keep-me").exists(),
        "only version directories are removed"
    );
    index.close().await.unwrap();
}

#[tokio::test]
async fn upsert_replaces_and_delete_removes() {
    let index = memory_index();
    index
        .upsert(vec![
            document("320100-B01-000001", "户籍人口信息"),
            document("320100-B01-000002", "流动人口信息"),
        ])
        .await
        .unwrap();
    index.flush().await.unwrap();
    index
        .upsert(vec![document("320100-B01-000001", "出生医学证明信息")])
        .await
        .unwrap();
    index.flush().await.unwrap();
    assert_eq!(index.document_count(), 2);
    assert_eq!(search_codes(&index, "户籍"), Vec::<String>::new());
    assert_eq!(search_codes(&index, "出生"), ["320100-B01-000001"]);
    index.delete("320100-B01-000002").unwrap();
    index.delete("320100-B01-999999").unwrap();
    index.flush().await.unwrap();
    assert_eq!(search_codes(&index, "人口"), Vec::<String>::new());
    assert_eq!(index.document_count(), 1);
}

#[tokio::test]
async fn a_write_is_searchable_within_a_second_without_flush() {
    let index = CatalogIndex::in_memory(civitas_search::IndexOptions {
        commit_interval: Duration::from_millis(500),
        ..small_options()
    })
    .unwrap();
    // Commit once so that the next write waits for the regular interval, as in a running server.
    index
        .upsert(vec![document("320100-B01-000001", "户籍人口信息")])
        .await
        .unwrap();
    index.flush().await.unwrap();
    for round in 0..3 {
        let code = format!("320100-B02-00000{round}");
        let written = Instant::now();
        index
            .upsert(vec![document(&code, "企业登记注册信息")])
            .await
            .unwrap();
        loop {
            if search_codes(&index, "企业").contains(&code) {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(1),
                "not searchable after a second"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test]
async fn concurrent_writers_and_readers() {
    let index = memory_index();
    let mut writers = Vec::new();
    for writer in 0..4 {
        let index = index.clone();
        writers.push(tokio::spawn(async move {
            for batch in 0..5 {
                let documents = (0..50)
                    .map(|i| {
                        document(
                            &format!("320100-D{:02}-{:06}", writer + 1, batch * 50 + i + 1),
                            "数据共享申请记录",
                        )
                    })
                    .collect();
                index.upsert(documents).await.unwrap();
                let _ = index.search(&crate::support::query("数据共享")).unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    index.flush().await.unwrap();
    assert_eq!(index.document_count(), 1000);
    assert_eq!(
        index
            .search(&crate::support::query("数据共享"))
            .unwrap()
            .total,
        1000
    );
}
