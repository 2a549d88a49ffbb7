//! The search index following the catalog while a bulk write (an import, the demo's build) runs
//! in this process, so that store writes and indexing overlap on the two cores instead of taking
//! turns.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use civitas_core::NodeCode;
use civitas_core::catalog::Resource;
use civitas_search::{CatalogIndex, IndexOptions};
use civitas_store::Store;

use crate::config::Settings;

/// Least time between two commits of the index during a bulk write; a crash loses at most this
/// much indexing, which is redone from the store on the next start.
const BULK_COMMIT_INTERVAL: Duration = Duration::from_secs(30);

/// Batches an import may hand over before it waits for the index.
const QUEUED_BATCHES: usize = 2;

/// The data dir's search index, fed by a background task with what a bulk write hands it and
/// with whatever else the store's change sequence holds.
pub struct IndexFollower {
    index: CatalogIndex,
    /// Where the index stood when opened.
    started_at: u64,
    /// Resources just written, with the change sequence number of the first.
    written: tokio::sync::mpsc::Sender<(u64, Vec<Resource>)>,
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
        let (written, batches) = tokio::sync::mpsc::channel(QUEUED_BATCHES);
        let feeder = tokio::spawn(follow(
            store.clone(),
            index.clone(),
            settings.node_code.clone(),
            batches,
        ));
        Ok(Some(IndexFollower {
            started_at: index.marked_seq(),
            index,
            written,
            feeder,
        }))
    }

    /// Hands the feeder resources just written, whose changes are numbered from `first` on;
    /// waits while it is [`QUEUED_BATCHES`] behind.
    pub async fn written(&self, first: u64, resources: Vec<Resource>) {
        // A feeder gone has logged why; `finish` catches up from the store.
        let _ = self.written.send((first, resources)).await;
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
        // The feeder takes what was handed to it, then stops.
        drop(self.written);
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

/// The feeder: catches up with the store, then indexes what it is handed until the follower
/// is finished, and polls the store in between.
async fn follow(
    store: Store,
    index: CatalogIndex,
    node: NodeCode,
    mut batches: tokio::sync::mpsc::Receiver<(u64, Vec<Resource>)>,
) {
    let mut organizations = HashMap::new();
    let mut fed = civitas_api::search::catch_up(&store, &index, &node, &mut organizations)
        .await
        .map(drop);
    loop {
        if let Err(error) = fed {
            tracing::warn!(
                error = format!("{error:#}"),
                "search index feed failed; retrying"
            );
        }
        fed = tokio::select! {
            biased;
            batch = batches.recv() => match batch {
                Some((first, resources)) => {
                    civitas_api::search::feed_written(
                        &store,
                        &index,
                        &node,
                        &mut organizations,
                        first,
                        &resources,
                    )
                    .await
                }
                None => return,
            },
            _ = tokio::time::sleep(civitas_api::search::FEED_POLL_INTERVAL) => {
                civitas_api::search::catch_up(&store, &index, &node, &mut organizations)
                    .await
                    .map(drop)
            }
        };
    }
}
