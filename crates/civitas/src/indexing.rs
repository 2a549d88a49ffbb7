//! The search index following the catalog while a bulk write (an import, the demo's build) runs
//! in this process, so that store writes and indexing overlap on the two cores instead of taking
//! turns.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use civitas_search::{CatalogIndex, IndexOptions};
use civitas_store::Store;

use crate::config::Settings;

/// Least time between two commits of the index during a bulk write; a crash loses at most this
/// much indexing, which is redone from the store on the next start.
const BULK_COMMIT_INTERVAL: Duration = Duration::from_secs(30);

/// The data dir's search index, fed from the store's change sequence by a background task.
pub struct IndexFollower {
    index: CatalogIndex,
    /// Where the index stood when opened.
    started_at: u64,
    changes: Arc<tokio::sync::Notify>,
    stop: tokio::sync::watch::Sender<bool>,
    feeder: tokio::task::JoinHandle<()>,
}

impl IndexFollower {
    /// Opens the index and starts following the store. `None` when a running server holds the
    /// index: its own feeder indexes the changes within a second.
    pub async fn start(
        store: &Store,
        settings: &Settings,
    ) -> anyhow::Result<Option<IndexFollower>> {
        let directory = settings.data_dir.join("index");
        // Nothing in this process searches while it writes in bulk: rare commits leave fewer,
        // larger segments and less merging than a server's commit every half second.
        let options = IndexOptions {
            commit_interval: BULK_COMMIT_INTERVAL,
            ..IndexOptions::default()
        };
        let index =
            match tokio::task::spawn_blocking(move || CatalogIndex::open_with(&directory, options))
                .await?
            {
                Ok(index) => index,
                Err(error) if error.is_locked() => return Ok(None),
                Err(error) => return Err(error).context("opening the search index"),
            };
        let changes = Arc::new(tokio::sync::Notify::new());
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let feeder = tokio::spawn(civitas_api::search::feed_index(
            store.clone(),
            index.clone(),
            settings.node_code.clone(),
            changes.clone(),
            stopped,
        ));
        Ok(Some(IndexFollower {
            started_at: index.marked_seq(),
            index,
            changes,
            stop,
            feeder,
        }))
    }

    /// Tells the feeder that the store has new changes, rather than letting it find them on
    /// its next poll.
    pub fn changed(&self) {
        self.changes.notify_one();
    }

    /// Feeds what the feeder has not reached yet and waits until all of it is committed;
    /// returns how many changes of the store's sequence it indexed. `progress` is told
    /// (changes indexed, changes in all) every tenth of a second meanwhile.
    pub async fn finish(
        self,
        store: &Store,
        settings: &Settings,
        mut progress: impl FnMut(u64, u64),
    ) -> anyhow::Result<u64> {
        let _ = self.stop.send(true);
        self.feeder.await?;
        let total = store.catalog_sequence().await?;
        let catching_up = {
            let (store, index, node) = (
                store.clone(),
                self.index.clone(),
                settings.node_code.clone(),
            );
            tokio::spawn(async move {
                let mut organizations = std::collections::HashMap::new();
                civitas_api::search::catch_up(&store, &index, &node, &mut organizations).await
            })
        };
        while !catching_up.is_finished() {
            progress(self.index.marked_seq(), total);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        catching_up.await??;
        let marked = self.index.marked_seq();
        progress(marked, total);
        self.index.close().await?;
        Ok(marked.saturating_sub(self.started_at))
    }
}
