//! The indexer thread: the only owner of tantivy's writer.
//!
//! Callers send commands over a channel and never block on the index: tokenizing, committing
//! (which writes and syncs files) and reloading happen here. Commits come at most every
//! `commit_interval` while changes arrive, and no sooner than the last commit took. While
//! upserts queue up behind the indexer (a bulk import), commits wait up to
//! [`BULK_COMMIT_INTERVAL`]: every commit closes the segments being built, and many small
//! segments cost more to merge than to index. After each commit the reader is reloaded, so what
//! was committed is what searches see.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tantivy::indexer::UserOperation;
use tantivy::{Index, IndexReader, IndexWriter, TantivyDocument, Term};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

use crate::schema::{Fields, code_key};
use crate::{Facet, IndexOptions, Result, SearchDocument, SearchError};

/// Longest time between commits while upserts are queued behind the indexer.
const BULK_COMMIT_INTERVAL: Duration = Duration::from_secs(10);

enum Command {
    Upsert {
        documents: Vec<SearchDocument>,
        /// Held until the documents are handed to tantivy, bounding what waits in the channel.
        _permit: OwnedSemaphorePermit,
    },
    Delete(String),
    Clear,
    MarkIndexed(u64),
    Flush(oneshot::Sender<Result<()>>),
    Close(oneshot::Sender<Result<()>>),
}

/// What the commit payload holds.
#[derive(Serialize, Deserialize)]
struct CommitPayload {
    indexed_seq: u64,
}

struct State {
    indexed_seq: AtomicU64,
    /// The last sequence number sent with `MarkIndexed` (or `Clear`), committed or not.
    marked_seq: AtomicU64,
    /// Why the indexer stopped, once it has.
    stopped: Mutex<Option<String>>,
}

pub(crate) struct IndexerHandle {
    sender: mpsc::Sender<Command>,
    permits: Arc<Semaphore>,
    max_pending: usize,
    state: Arc<State>,
}

/// How long opening the writer waits for a held writer lock before it fails.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// Opens tantivy's writer. Its lock belongs to the open lock file, and a process that this one
/// is spawning holds a copy of every open file until it starts its program, so an index closed
/// a moment ago (a restart) can look locked: a busy lock is tried again for [`LOCK_PATIENCE`].
fn open_writer(
    index: &Index,
    options: tantivy::indexer::IndexWriterOptions,
) -> Result<IndexWriter> {
    let give_up = Instant::now() + LOCK_PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        match index.writer_with_options(options.clone()) {
            Err(tantivy::TantivyError::LockFailure(
                tantivy::directory::error::LockError::LockBusy,
                _,
            )) if Instant::now() < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            result => return Ok(result?),
        }
    }
}

pub(crate) fn start(
    index: &Index,
    reader: IndexReader,
    fields: Fields,
    options: &IndexOptions,
) -> Result<IndexerHandle> {
    let indexed_seq = match index.load_metas()?.payload {
        Some(payload) => match serde_json::from_str::<CommitPayload>(&payload) {
            Ok(payload) => payload.indexed_seq,
            Err(error) => {
                // The index is derived data: a payload we cannot read means "rebuild".
                tracing::warn!(%error, "unreadable search index commit payload; treating the index as stale");
                0
            }
        },
        None => 0,
    };
    let threads = options.writer_threads.max(1);
    // tantivy needs at least 15 MB per indexing thread.
    let memory = options.writer_memory_bytes.max(threads * (16 << 20));
    let writer_options = tantivy::indexer::IndexWriterOptions::builder()
        .num_worker_threads(threads)
        .memory_budget_per_thread(memory / threads)
        // Merges run beside indexing and searching; on a small machine one at a time.
        .num_merge_threads(1)
        .build();
    let writer = open_writer(index, writer_options)?;
    let state = Arc::new(State {
        indexed_seq: AtomicU64::new(indexed_seq),
        marked_seq: AtomicU64::new(indexed_seq),
        stopped: Mutex::new(None),
    });
    let (sender, receiver) = mpsc::channel();
    let max_pending = options
        .max_pending_documents
        .clamp(1, Semaphore::MAX_PERMITS);
    let permits = Arc::new(Semaphore::new(max_pending));
    let indexer = Indexer {
        writer: Some(writer),
        permits: permits.clone(),
        max_pending,
        reader,
        fields,
        state: state.clone(),
        commit_interval: options.commit_interval,
        committed_seq: indexed_seq,
        pending_seq: None,
        dirty_since: None,
        last_commit_at: Instant::now(),
        last_commit_took: Duration::ZERO,
    };
    std::thread::Builder::new()
        .name("civitas-search-indexer".to_owned())
        .spawn(move || indexer.run(receiver))
        .map_err(|source| SearchError::IndexerStopped {
            message: format!("cannot start the indexer thread: {source}"),
        })?;
    Ok(IndexerHandle {
        sender,
        permits,
        max_pending,
        state,
    })
}

impl IndexerHandle {
    pub(crate) async fn upsert(&self, documents: Vec<SearchDocument>) -> Result<()> {
        if documents.is_empty() {
            return Ok(());
        }
        // A batch larger than the bound waits for an empty channel rather than forever.
        let wanted = documents.len().min(self.max_pending) as u32;
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| self.stopped_error())?;
        self.send(Command::Upsert {
            documents,
            _permit: permit,
        })
    }

    pub(crate) fn delete(&self, code: String) -> Result<()> {
        self.send(Command::Delete(code))
    }

    pub(crate) fn clear(&self) -> Result<()> {
        self.send(Command::Clear)?;
        self.state.marked_seq.store(0, Ordering::Release);
        Ok(())
    }

    pub(crate) fn mark_indexed(&self, seq: u64) -> Result<()> {
        self.send(Command::MarkIndexed(seq))?;
        self.state.marked_seq.store(seq, Ordering::Release);
        Ok(())
    }

    pub(crate) fn indexed_seq(&self) -> u64 {
        self.state.indexed_seq.load(Ordering::Acquire)
    }

    pub(crate) fn marked_seq(&self) -> u64 {
        self.state.marked_seq.load(Ordering::Acquire)
    }

    pub(crate) async fn flush(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Flush(reply))?;
        answer.await.map_err(|_| self.stopped_error())?
    }

    pub(crate) async fn close(&self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Close(reply))?;
        answer.await.map_err(|_| self.stopped_error())?
    }

    fn send(&self, command: Command) -> Result<()> {
        if let Some(message) = self.stopped_message() {
            return Err(SearchError::IndexerStopped { message });
        }
        self.sender.send(command).map_err(|_| self.stopped_error())
    }

    fn stopped_message(&self) -> Option<String> {
        self.state
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn stopped_error(&self) -> SearchError {
        SearchError::IndexerStopped {
            message: self
                .stopped_message()
                .unwrap_or_else(|| "the indexer thread has exited".to_owned()),
        }
    }
}

struct Indexer {
    /// `None` once closed or failed.
    writer: Option<IndexWriter>,
    /// Shared with the handle: permits missing are documents queued behind the indexer.
    permits: Arc<Semaphore>,
    max_pending: usize,
    reader: IndexReader,
    fields: Fields,
    state: Arc<State>,
    commit_interval: Duration,
    committed_seq: u64,
    pending_seq: Option<u64>,
    /// When the first change since the last commit arrived.
    dirty_since: Option<Instant>,
    last_commit_at: Instant,
    last_commit_took: Duration,
}

impl Indexer {
    fn run(mut self, receiver: mpsc::Receiver<Command>) {
        loop {
            let wait = match self.commit_deadline() {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            match receiver.recv_timeout(wait) {
                Ok(Command::Close(reply)) => {
                    let result = self.commit_if_dirty().and_then(|()| self.close());
                    self.stop("the index was closed".to_owned());
                    let _ = reply.send(result);
                    return;
                }
                Ok(command) => self.handle(command),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Every handle is gone: keep what was sent.
                    if let Err(error) = self.commit_if_dirty() {
                        tracing::error!(%error, "final search index commit failed");
                    }
                    return;
                }
            }
            if self
                .commit_deadline()
                .is_some_and(|deadline| Instant::now() >= deadline)
                && let Err(error) = self.commit()
            {
                self.fail(&error);
            }
        }
    }

    /// When the pending changes are due: not before `commit_interval` after the last commit,
    /// nor before as long again as that commit took; while more upserts are queued, not before
    /// [`BULK_COMMIT_INTERVAL`].
    fn commit_deadline(&self) -> Option<Instant> {
        let dirty_since = self.dirty_since?;
        let bulk = self.permits.available_permits() < self.max_pending;
        let gap = if bulk {
            BULK_COMMIT_INTERVAL.max(self.commit_interval)
        } else {
            self.commit_interval.max(self.last_commit_took)
        };
        Some(dirty_since.max(self.last_commit_at + gap))
    }

    fn handle(&mut self, command: Command) {
        let command = match command {
            Command::Flush(reply) => {
                let result = self.commit_if_dirty();
                if let Err(error) = &result {
                    self.fail(error);
                }
                let _ = reply.send(result);
                return;
            }
            Command::Close(_) => unreachable!("close is handled by the loop"),
            other => other,
        };
        let Some(writer) = &self.writer else {
            // Writes after a failure were refused when sent; these raced with the failure.
            return;
        };
        let result = match command {
            // One batch of operations: the writer's threads are woken once per batch, not
            // twice per document.
            Command::Upsert { documents, .. } => {
                let mut operations = Vec::with_capacity(documents.len() * 2);
                for document in documents {
                    operations.push(UserOperation::Delete(Term::from_field_text(
                        self.fields.code,
                        &document.code,
                    )));
                    operations.push(UserOperation::Add(tantivy_document(&self.fields, document)));
                }
                writer.run(operations).map(drop)
            }
            Command::Delete(code) => {
                writer.delete_term(Term::from_field_text(self.fields.code, &code));
                Ok(())
            }
            Command::Clear => {
                self.pending_seq = Some(0);
                writer.delete_all_documents().map(drop)
            }
            Command::MarkIndexed(seq) => {
                self.pending_seq = Some(seq);
                Ok(())
            }
            Command::Flush(_) | Command::Close(_) => unreachable!("handled above"),
        };
        self.mark_dirty();
        if let Err(error) = result {
            self.fail(&error.into());
        }
    }

    fn mark_dirty(&mut self) {
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    fn commit_if_dirty(&mut self) -> Result<()> {
        if self.dirty_since.is_some() {
            self.commit()
        } else {
            Ok(())
        }
    }

    fn commit(&mut self) -> Result<()> {
        let Some(writer) = &mut self.writer else {
            return Err(SearchError::IndexerStopped {
                message: self.stopped_reason(),
            });
        };
        let started = Instant::now();
        let seq = self.pending_seq.unwrap_or(self.committed_seq);
        let mut prepared = writer.prepare_commit()?;
        let payload = serde_json::to_string(&CommitPayload { indexed_seq: seq })
            .expect("the payload serializes");
        prepared.set_payload(&payload);
        prepared.commit()?;
        self.reader.reload()?;
        self.committed_seq = seq;
        self.pending_seq = None;
        self.state.indexed_seq.store(seq, Ordering::Release);
        self.dirty_since = None;
        self.last_commit_at = Instant::now();
        self.last_commit_took = started.elapsed();
        tracing::debug!(took = ?self.last_commit_took, indexed_seq = seq, "search index committed");
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        match self.writer.take() {
            // Merges still running would otherwise be abandoned half-way at exit.
            Some(writer) => Ok(writer.wait_merging_threads()?),
            None => Ok(()),
        }
    }

    /// Stops indexing after an error: tantivy's writer may be unusable, and silently dropping
    /// later writes would leave the index behind without anyone knowing.
    fn fail(&mut self, error: &SearchError) {
        tracing::error!(%error, "search indexer failed; writes are refused until restart");
        self.writer = None;
        self.stop(format!("indexing failed: {error}"));
    }

    fn stop(&self, reason: String) {
        let mut stopped = self
            .state
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        stopped.get_or_insert(reason);
    }

    fn stopped_reason(&self) -> String {
        self.state
            .stopped
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .unwrap_or_else(|| "the indexer has stopped".to_owned())
    }
}

fn tantivy_document(fields: &Fields, document: SearchDocument) -> TantivyDocument {
    let mut indexed = TantivyDocument::new();
    indexed.add_text(fields.code, &document.code);
    indexed.add_u64(fields.code_key, code_key(&document.code));
    // Names go into `name` (for `name:`) and, like all text, into `all`: twice, so that a word
    // in the name counts more than one in the summary (an entry whose name carries the word is
    // what people look for far more often). Each text is its own value of `all` so that phrases
    // do not run from one into the next; items and tags are one value each, because segmentation
    // has a cost per call.
    indexed.add_text(fields.name, &document.name);
    indexed.add_text(fields.all, &document.name);
    indexed.add_text(fields.all, &document.name);
    if let Some(name_en) = &document.name_en {
        indexed.add_text(fields.name, name_en);
        indexed.add_text(fields.all, name_en);
        indexed.add_text(fields.all, name_en);
    }
    indexed.add_text(fields.all, &document.summary);
    indexed.add_text(fields.summary, &document.summary);
    if !document.tags.is_empty() {
        indexed.add_text(fields.all, document.tags.join("\n"));
    }
    if !document.items.is_empty() {
        indexed.add_text(fields.all, document.items.join("\n"));
    }
    indexed.add_text(fields.all, &document.provider_name);
    indexed.add_text(fields.provider_name, &document.provider_name);
    indexed.add_i64(fields.modified_at, document.modified_at);
    for facet in Facet::ALL {
        let values = facet.values(&document);
        for (position, value) in values.iter().enumerate() {
            // A value given twice (a repeated tag) is counted once; an empty value is no value.
            if value.is_empty() || values[..position].contains(value) {
                continue;
            }
            indexed.add_text(fields.facet(facet), value);
        }
    }
    indexed.add_text(fields.payload, &document.payload);
    indexed
}
