//! The writer thread: group commit of all pending appends.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use super::completions::{Answers, Reply};
use super::{
    Error, GROUP_WIDTH, HASH_BYTES, LEAF_HASHES_FILE, LEVEL4_HASHES_FILE, OFFSET_BYTES,
    OFFSETS_FILE, RECORDS_FILE, Result, Shared, TILE_HASHES_FILE, io_error, write_guard,
};
use crate::frame::{FRAME_HEADER_BYTES, encode_frame};
use crate::merkle::{Hash, leaf_hash, perfect_root};
use crate::tiles::TILE_WIDTH;

/// How far past its last record the writer keeps the records file zero-filled. A sync that only
/// overwrites blocks the file already has flushes the records' pages alone; one that grows the
/// file must also write the inode and its block map, a third I/O that makes each sync slower.
const ZEROED_AHEAD: u64 = 1 << 20;
/// The zero-filled space is extended in steps of this size, each flushed by the next sync.
const ZEROING_STEP: usize = 64 * 1024;
static ZEROS: [u8; ZEROING_STEP] = [0; ZEROING_STEP];

pub(crate) struct AppendRequest {
    pub(crate) records: Vec<Vec<u8>>,
    pub(crate) reply: Reply,
    /// Answer as soon as the records are written in order, before they are durable.
    pub(crate) ordered_only: bool,
    /// When the append was asked for: the writer learns the rhythm of arrivals from it.
    pub(crate) sent: Instant,
}

pub(crate) struct WriterState {
    /// Records written, durable or not; readers see `Shared::size`, the durable ones.
    size: u64,
    records_end: u64,
    /// The records file is zero-filled from `records_end` up to here.
    zeroed_end: u64,
    /// Leaf hashes of the incomplete 16-leaf group at the right edge.
    partial_group: Vec<Hash>,
    /// Level-4 nodes of the incomplete tile at the right edge.
    partial_tile: Vec<Hash>,
    frames: Vec<u8>,
    offsets: Vec<u8>,
    leaves: Vec<u8>,
    level4_nodes: Vec<Hash>,
    /// Roots of tiles completed by records not yet durable; published with the next sync.
    tile_roots: Vec<Hash>,
    /// Whether records have been written since the last sync.
    unsynced: bool,
}

impl WriterState {
    /// `partial_tile_leaves` are the leaf hashes of the incomplete tile at the right edge;
    /// `records_file_length` is the records file's length, zero-filled past `records_end`.
    pub(crate) fn new(
        size: u64,
        records_end: u64,
        records_file_length: u64,
        partial_tile_leaves: &[Hash],
    ) -> WriterState {
        debug_assert_eq!(partial_tile_leaves.len() as u64, size % TILE_WIDTH);
        let groups = partial_tile_leaves.chunks_exact(GROUP_WIDTH as usize);
        let partial_group = groups.remainder().to_vec();
        WriterState {
            size,
            records_end,
            zeroed_end: records_file_length.max(records_end),
            partial_group,
            partial_tile: groups.map(perfect_root).collect(),
            frames: Vec::new(),
            offsets: Vec::new(),
            leaves: Vec::new(),
            level4_nodes: Vec::new(),
            tile_roots: Vec::new(),
            unsynced: false,
        }
    }

    /// Runs `step` unless an earlier write or sync failed, and keeps its failure in
    /// `Shared::failure`: the kernel may have dropped the dirty pages, so nothing written
    /// afterwards could be trusted to sit on top of what the file really holds.
    fn guarded<T>(
        &mut self,
        shared: &Shared,
        step: impl FnOnce(&mut Self, &Shared) -> Result<T>,
    ) -> Result<T, String> {
        if let Some(failure) = shared.failure.get() {
            return Err(failure.clone());
        }
        step(self, shared).map_err(|error| {
            tracing::error!(%error, "ledger append failed; refusing further appends");
            let message = error.to_string();
            let _ = shared.failure.set(message.clone());
            message
        })
    }

    /// Writes every record of `batch` after the records written so far; returns the first index.
    /// The records are durable and visible to readers after the next [`WriterState::sync`].
    fn write(&mut self, shared: &Shared, batch: &[AppendRequest]) -> Result<u64> {
        let first_index = self.size;
        let first_group = first_index / GROUP_WIDTH;
        let first_tile = first_index / TILE_WIDTH;
        let first_new_tile_root = self.tile_roots.len();
        self.frames.clear();
        self.offsets.clear();
        self.leaves.clear();
        self.level4_nodes.clear();
        let mut position = self.records_end;
        for record in batch.iter().flat_map(|request| &request.records) {
            self.offsets.extend_from_slice(&position.to_le_bytes());
            encode_frame(record, &mut self.frames);
            position += (FRAME_HEADER_BYTES + record.len()) as u64;
            let leaf = leaf_hash(record);
            self.leaves.extend_from_slice(&leaf);
            self.partial_group.push(leaf);
            if self.partial_group.len() as u64 == GROUP_WIDTH {
                let group_root = perfect_root(&self.partial_group);
                self.partial_group.clear();
                self.level4_nodes.push(group_root);
                self.partial_tile.push(group_root);
                if self.partial_tile.len() as u64 == TILE_WIDTH / GROUP_WIDTH {
                    self.tile_roots.push(perfect_root(&self.partial_tile));
                    self.partial_tile.clear();
                }
            }
        }
        let count = self.offsets.len() as u64 / OFFSET_BYTES;
        debug_assert_eq!(
            self.partial_group.len() as u64,
            (first_index + count) % GROUP_WIDTH
        );

        // Derived data goes out before the sync so that everything this batch writes is in the
        // page cache by the time readers may look; none of it needs to be durable yet.
        shared
            .files
            .records
            .write_all_at(&self.frames, self.records_end)
            .map_err(io_error("write", &shared.path(RECORDS_FILE)))?;
        if self.zeroed_end < position + ZEROED_AHEAD {
            let end = (position + ZEROED_AHEAD).next_multiple_of(ZEROING_STEP as u64);
            let mut at = self.zeroed_end.max(position);
            while at < end {
                let step = (end - at).min(ZEROING_STEP as u64) as usize;
                shared
                    .files
                    .records
                    .write_all_at(&ZEROS[..step], at)
                    .map_err(io_error("write", &shared.path(RECORDS_FILE)))?;
                at += step as u64;
            }
            self.zeroed_end = end;
        }
        shared
            .files
            .offsets
            .write_all_at(&self.offsets, first_index * OFFSET_BYTES)
            .map_err(io_error("write", &shared.path(OFFSETS_FILE)))?;
        shared
            .files
            .leaf_hashes
            .write_all_at(&self.leaves, first_index * HASH_BYTES)
            .map_err(io_error("write", &shared.path(LEAF_HASHES_FILE)))?;
        if !self.level4_nodes.is_empty() {
            shared
                .files
                .level4_hashes
                .write_all_at(self.level4_nodes.as_flattened(), first_group * HASH_BYTES)
                .map_err(io_error("write", &shared.path(LEVEL4_HASHES_FILE)))?;
        }
        let new_tile_roots = &self.tile_roots[first_new_tile_root..];
        if !new_tile_roots.is_empty() {
            shared
                .files
                .tile_hashes
                .write_all_at(new_tile_roots.as_flattened(), first_tile * HASH_BYTES)
                .map_err(io_error("write", &shared.path(TILE_HASHES_FILE)))?;
        }
        self.size += count;
        self.records_end = position;
        self.unsynced = true;
        Ok(first_index)
    }

    /// Makes every written record durable and publishes them to readers.
    fn sync(&mut self, shared: &Shared) -> Result<()> {
        shared
            .files
            .records
            .sync_data()
            .map_err(io_error("sync", &shared.path(RECORDS_FILE)))?;
        if !self.tile_roots.is_empty() {
            let mut upper = write_guard(&shared.upper);
            for tile_root in self.tile_roots.drain(..) {
                upper.push_tile_root(tile_root);
            }
        }
        self.unsynced = false;
        shared.size.store(self.size, Ordering::Release);
        Ok(())
    }
}

/// Runs until every sender is gone: takes the first pending append, gathers more (up to
/// `max_batch_bytes`), writes them together, answers the appends that wait only for their place
/// in order, syncs once if any append waits for durability, and answers those.
///
/// How long to gather: after a small group commit, not at all (see `gather_for`); what arrives
/// during a sync makes the next group. After a large one: waiters that were just answered usually
/// append again within microseconds, but the first of them wakes the writer alone; committing at
/// once would alternate tiny and large groups and waste half the syncs. So when fewer are queued
/// than the previous group carried, the writer waits up to `gather_window` for that many. And while
/// appends keep arriving (one came within twice the usual gap between arrivals, and the next is due
/// before the window closes) it sleeps to the end of the window and takes what came: under a steady
/// stream of callers, such as a busy gateway's, each sync then carries what arrived in the whole
/// window instead of what arrived during the previous sync, and syncs (and the wake-ups around
/// each) take less of the machine. A closed group of callers that all wait for the writer stops
/// arriving at once, and is committed as soon as that is seen. Records written without a sync are
/// synced by the next durable append's group or, when none comes within `gather_window`, on their
/// own. Answers for appends made through a mailbox are left there a group at a time (see
/// `completions`).
pub(crate) fn run(
    shared: &Shared,
    receiver: Receiver<AppendRequest>,
    mut state: WriterState,
    max_batch_bytes: usize,
    gather_window: Duration,
) {
    let mut batch: Vec<AppendRequest> = Vec::new();
    let mut previous_group = 1;
    let mut arrivals = Arrivals::new(gather_window);
    let mut answers = Answers::default();
    let mut durable = Vec::new();
    loop {
        let first = if state.unsynced {
            match receiver.recv_timeout(gather_window) {
                Ok(first) => first,
                Err(RecvTimeoutError::Timeout) => {
                    let _ = state.guarded(shared, WriterState::sync);
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match receiver.recv() {
                Ok(first) => first,
                Err(_) => break,
            }
        };
        let mut bytes = request_bytes(&first);
        arrivals.arrived(first.sent);
        batch.push(first);
        let deadline = Instant::now() + gather_for(previous_group, gather_window);
        while bytes < max_batch_bytes {
            let next = match receiver.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    if batch.len() >= previous_group {
                        if !arrivals.streaming(now, deadline) {
                            break;
                        }
                        // A steady stream: sleep to the window's end and take what came then,
                        // instead of being woken by every append (each wake-up a system call
                        // for the appender and a context switch for the writer).
                        std::thread::sleep(deadline - now);
                        continue;
                    }
                    match receiver.recv_timeout(deadline - now) {
                        Ok(next) => next,
                        Err(RecvTimeoutError::Timeout) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            };
            arrivals.arrived(next.sent);
            bytes += request_bytes(&next);
            batch.push(next);
        }
        previous_group = batch.len();
        let written = state.guarded(shared, |state, shared| state.write(shared, &batch));
        let first_index = match written {
            Ok(first_index) => first_index,
            Err(message) => {
                for request in batch.drain(..) {
                    answers.answer(request.reply, Err(Error::Failed(message.clone())));
                }
                answers.deliver();
                continue;
            }
        };
        let mut next_index = first_index;
        for request in batch.drain(..) {
            let end = next_index + request.records.len() as u64;
            if request.ordered_only {
                answers.answer(request.reply, Ok(next_index..end));
            } else {
                durable.push((request.reply, next_index..end));
            }
            next_index = end;
        }
        answers.deliver();
        if durable.is_empty() {
            continue;
        }
        let synced = state.guarded(shared, WriterState::sync);
        for (reply, range) in durable.drain(..) {
            let answer = match &synced {
                Ok(()) => Ok(range),
                Err(message) => Err(Error::Failed(message.clone())),
            };
            answers.answer(reply, answer);
        }
        answers.deliver();
    }
    if state.unsynced {
        let _ = state.guarded(shared, WriterState::sync);
    }
}

/// How long to gather appends after taking the first, given how many the previous group commit
/// carried: nothing when that was fewer than `GATHER_FROM`. Such small groups mean the appends
/// come slowly enough for a sync to be waiting for them rather than the other way round; the
/// window would then only add to every append's wait (under a gateway's moderate, steady load,
/// each call's whole window). Gathering pays when groups are large, where fewer syncs are worth
/// more to a busy machine than a fraction of a sync's time is to each append.
fn gather_for(previous_group: usize, gather_window: Duration) -> Duration {
    if previous_group >= GATHER_FROM {
        gather_window
    } else {
        Duration::ZERO
    }
}

/// See `gather_for`.
const GATHER_FROM: usize = 4;

/// The rhythm of arriving appends: the last arrival and the usual gap between arrivals (a
/// moving average, so that one pause does not end a stream).
struct Arrivals {
    last: Option<Instant>,
    gap: Duration,
}

impl Arrivals {
    fn new(gather_window: Duration) -> Arrivals {
        Arrivals {
            last: None,
            gap: gather_window,
        }
    }

    fn arrived(&mut self, sent: Instant) {
        if let Some(last) = self.last {
            // Gaps longer than a second are idleness, not rhythm. Appends from several threads
            // may reach the queue out of the order they were sent in.
            let gap = sent
                .saturating_duration_since(last)
                .min(Duration::from_secs(1));
            self.gap = (self.gap * 7 + gap) / 8;
        }
        self.last = Some(self.last.map_or(sent, |last| last.max(sent)));
    }

    /// Whether appends are still arriving at `now` and another is due before `deadline`: the
    /// last came within twice the usual gap, and the usual gap after it ends before the deadline.
    fn streaming(&self, now: Instant, deadline: Instant) -> bool {
        self.last
            .is_some_and(|last| now < last + self.gap * 2 && last + self.gap < deadline)
    }
}

fn request_bytes(request: &AppendRequest) -> usize {
    request
        .records
        .iter()
        .map(|record| record.len() + FRAME_HEADER_BYTES)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_micros(200);

    #[test]
    fn a_steady_stream_is_gathered_until_the_window_closes() {
        let start = Instant::now();
        let mut arrivals = Arrivals::new(WINDOW);
        // One append every 20 µs for a while: the usual gap settles near 20 µs.
        for n in 0..64 {
            arrivals.arrived(start + Duration::from_micros(20 * n));
        }
        let last = start + Duration::from_micros(20 * 63);
        let deadline = last + WINDOW;
        // Just after the last arrival, the next is due.
        assert!(arrivals.streaming(last + Duration::from_micros(5), deadline));
        // Quiet for well over twice the gap: the stream has stopped.
        assert!(!arrivals.streaming(last + Duration::from_micros(100), deadline));
        // The next arrival would come after the window closes: commit now.
        assert!(!arrivals.streaming(
            last + Duration::from_micros(5),
            last + Duration::from_micros(10)
        ));
    }

    #[test]
    fn a_closed_group_that_arrived_at_once_is_not_waited_for() {
        let start = Instant::now();
        let mut arrivals = Arrivals::new(WINDOW);
        // 64 callers answered together append again within microseconds, after a sync.
        for round in 0..4u64 {
            let burst = start + Duration::from_micros(500 * round);
            for n in 0..64 {
                arrivals.arrived(burst + Duration::from_nanos(200 * n));
            }
        }
        let last = start + Duration::from_micros(1500) + Duration::from_nanos(200 * 63);
        assert!(!arrivals.streaming(last + Duration::from_micros(50), last + WINDOW));
    }

    #[test]
    fn only_a_large_previous_group_is_gathered_for() {
        assert_eq!(gather_for(1, WINDOW), Duration::ZERO);
        assert_eq!(gather_for(GATHER_FROM - 1, WINDOW), Duration::ZERO);
        assert_eq!(gather_for(GATHER_FROM, WINDOW), WINDOW);
        assert_eq!(gather_for(64, WINDOW), WINDOW);
    }

    #[test]
    fn appends_sent_out_of_order_do_not_move_the_last_arrival_back() {
        let start = Instant::now();
        let mut arrivals = Arrivals::new(WINDOW);
        arrivals.arrived(start + Duration::from_micros(100));
        arrivals.arrived(start + Duration::from_micros(90));
        assert_eq!(arrivals.last, Some(start + Duration::from_micros(100)));
    }
}
