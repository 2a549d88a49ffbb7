//! The background scrub: re-reads the records from the start, a chunk at a time at a bounded
//! rate, and checks what opening trusts without reading: each frame's checksum, that each frame
//! starts where the one before it ends, that each record's leaf hash equals its entry in
//! `leaf-hashes.dat`, and that each full 16-record group hashes to its entry in
//! `level4-hashes.dat`. Receipts and proofs are served from those stored hashes, so a byte that
//! rots (or is changed) in an old record would otherwise go unnoticed until someone verifies
//! the whole directory.
//!
//! The scrub uses the readers' positioned reads (`Shared::read_offsets`, `read_frames`,
//! `read_leaf_hashes`), which take no lock, so it never holds up the writer. Each pass checks the
//! records below the size published when it began; after a pass it pauses for
//! [`PASS_PAUSE`], then starts again from record 0. The first damage it finds is kept in the
//! status and logged once; later passes go on checking.

use std::time::{Duration, Instant};

use crate::frame::FRAME_HEADER_BYTES;
use crate::merkle::{self, perfect_root};

use super::{Error, GROUP_WIDTH, Shared, lock};

/// How long the scrub rests between passes.
const PASS_PAUSE: Duration = Duration::from_secs(600);
/// At most this many records are read at once.
const CHUNK_RECORDS: u64 = 256;
/// A chunk stops adding records once their frames take this many bytes.
const CHUNK_BYTES: u64 = 1 << 20;

/// What the scrub has done and found since the ledger was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStatus {
    /// Passes over every record that was there when the pass began.
    pub passes_completed: u64,
    /// The next record the current pass checks.
    pub position: u64,
    /// The ledger size when the current pass began; the pass checks the records below it.
    pub pass_size: u64,
    /// Bytes of record frames checked, over all passes.
    pub bytes_checked: u64,
    /// The first damage found, if any; it stays until the ledger is opened again.
    pub damage: Option<ScrubDamage>,
}

impl ScrubStatus {
    /// What a readiness probe adds to its body once the scrub has found damage: the damage and
    /// what the operator does about it. The node stays ready, since it still records every new
    /// exchange; the metric `civitas_ledger_scrub_damage` is what to alert on.
    pub fn damage_notice(&self) -> Option<String> {
        self.damage.as_ref().map(|damage| {
            format!(
                "ledger scrub found damage: {damage}; restore the ledger from a backup and run `civitas ledger verify`\n"
            )
        })
    }
}

/// Damage the scrub found at one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubDamage {
    /// The damaged record, or the first record of the damaged group.
    pub index: u64,
    /// Where the record's frame starts in `records.dat`, when its offset could be read.
    pub offset: Option<u64>,
    pub problem: ScrubProblem,
}

impl std::fmt::Display for ScrubDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record {}", self.index)?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset} of records.dat")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What is wrong at a damaged record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrubProblem {
    /// The frame's checksum or length is wrong, or reading the files failed.
    #[error("{0}")]
    Unreadable(String),
    /// `record-offsets.dat` places the frame somewhere else than where the previous one ends.
    #[error("its frame is listed at byte {found}, but the previous frame ends at byte {expected}")]
    Misplaced { expected: u64, found: u64 },
    #[error("its leaf hash differs from the one stored in leaf-hashes.dat")]
    LeafHashMismatch,
    #[error(
        "the 16 leaf hashes from this record on hash to another root than the one stored in level4-hashes.dat"
    )]
    GroupHashMismatch,
}

/// Whether the scrub should stop, and its status, shared by the scrub thread and the ledger.
#[derive(Default)]
pub(crate) struct ScrubState {
    stop: std::sync::Mutex<bool>,
    wakeup: std::sync::Condvar,
    status: std::sync::Mutex<ScrubStatus>,
}

impl ScrubState {
    pub(crate) fn status(&self) -> ScrubStatus {
        lock(&self.status).clone()
    }

    /// Tells the scrub thread to stop; it notices within one chunk.
    pub(crate) fn stop(&self) {
        *lock(&self.stop) = true;
        self.wakeup.notify_all();
    }

    /// Sleeps until `due` and returns true, or returns false as soon as the scrub is stopped.
    fn rest_until(&self, due: Instant) -> bool {
        let mut stopped = lock(&self.stop);
        loop {
            if *stopped {
                return false;
            }
            let now = Instant::now();
            if now >= due {
                return true;
            }
            stopped = self
                .wakeup
                .wait_timeout(stopped, due - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// The scrub thread: passes over the records at about `bytes_per_second` until stopped.
pub(crate) fn run(shared: &Shared, bytes_per_second: u64) {
    debug_assert!(bytes_per_second > 0);
    let state = &shared.scrub;
    loop {
        let pass_size = shared.size();
        {
            let mut status = lock(&state.status);
            status.position = 0;
            status.pass_size = pass_size;
        }
        let pass_started = Instant::now();
        let mut pass_bytes = 0u64;
        let mut next_offset = None;
        let mut index = 0;
        while index < pass_size {
            let checked = check_chunk(shared, index, pass_size, &mut next_offset);
            index = checked.end;
            pass_bytes += checked.bytes;
            {
                let mut status = lock(&state.status);
                status.position = index;
                status.bytes_checked += checked.bytes;
                if let (None, Some(damage)) = (&status.damage, checked.damage) {
                    tracing::error!(
                        dir = %shared.dir.display(),
                        index = damage.index,
                        offset = damage.offset,
                        problem = %damage.problem,
                        "the ledger scrub found damage in records the ledger has already served; restore the ledger directory from a backup and run `civitas ledger verify`"
                    );
                    status.damage = Some(damage);
                }
            }
            // Pacing by the bytes of the whole pass keeps the average rate even when chunks
            // differ in size.
            let due =
                pass_started + Duration::from_secs_f64(pass_bytes as f64 / bytes_per_second as f64);
            if !state.rest_until(due) {
                return;
            }
        }
        lock(&state.status).passes_completed += 1;
        if !state.rest_until(Instant::now() + PASS_PAUSE) {
            return;
        }
    }
}

/// What checking one chunk of records did.
struct Checked {
    /// The next record to check.
    end: u64,
    /// Bytes of record frames read.
    bytes: u64,
    /// The first damage in the chunk.
    damage: Option<ScrubDamage>,
}

/// Checks records from `start` (at most up to `pass_size`): their frames, their place after the
/// frame before (which ends at `next_offset`, when known), their leaf hashes, and the stored
/// root of every 16-record group that ends among them.
fn check_chunk(
    shared: &Shared,
    start: u64,
    pass_size: u64,
    next_offset: &mut Option<u64>,
) -> Checked {
    let unreadable = |index: u64, offset: Option<u64>, reason: String| ScrubDamage {
        index,
        offset,
        problem: ScrubProblem::Unreadable(reason),
    };
    let count = (pass_size - start).min(CHUNK_RECORDS) as usize;
    let offsets = match shared.read_offsets(start, count) {
        Ok(offsets) => offsets,
        Err(error) => {
            *next_offset = None;
            return Checked {
                end: start + count as u64,
                bytes: 0,
                damage: Some(unreadable(start, None, error.to_string())),
            };
        }
    };
    let first = offsets[0];
    let within = offsets
        .iter()
        .take_while(|&&offset| offset.saturating_sub(first) < CHUNK_BYTES)
        .count()
        .max(1);
    let mut offsets = &offsets[..within];
    // A damaged frame fails the whole read; the records before it are checked on their own, and
    // the next chunk starts at the damaged one.
    let records = loop {
        match shared.read_frames(start, offsets) {
            Ok(records) => break records,
            Err(Error::CorruptRecord { index, .. }) if index > start => {
                offsets = &offsets[..(index - start) as usize];
            }
            Err(error) => {
                let reason = match error {
                    Error::CorruptRecord { reason, .. } => reason,
                    other => other.to_string(),
                };
                *next_offset = None;
                return Checked {
                    end: start + 1,
                    bytes: 0,
                    damage: Some(unreadable(start, Some(first), reason)),
                };
            }
        }
    };
    let end = start + records.len() as u64;
    let mut damage = None;
    let mut note = |found: ScrubDamage| {
        damage.get_or_insert(found);
    };
    let mut bytes = 0;
    let stored_leaves = shared.read_leaf_hashes(start, records.len());
    if let Err(error) = &stored_leaves {
        note(unreadable(start, Some(first), error.to_string()));
    }
    for (position, (record, &offset)) in records.iter().zip(offsets).enumerate() {
        let index = start + position as u64;
        if let Some(expected) = *next_offset
            && expected != offset
        {
            note(ScrubDamage {
                index,
                offset: Some(offset),
                problem: ScrubProblem::Misplaced {
                    expected,
                    found: offset,
                },
            });
        }
        let frame_bytes = (FRAME_HEADER_BYTES + record.len()) as u64;
        *next_offset = Some(offset + frame_bytes);
        bytes += frame_bytes;
        if let Ok(stored) = &stored_leaves
            && stored[position] != merkle::leaf_hash(record)
        {
            note(ScrubDamage {
                index,
                offset: Some(offset),
                problem: ScrubProblem::LeafHashMismatch,
            });
        }
    }
    if let Some(found) = check_groups(shared, start, end) {
        note(found);
    }
    Checked { end, bytes, damage }
}

/// Checks the stored root of every 16-record group whose last record lies in `start..end`
/// against the stored leaf hashes of the group, which the chunks have checked against the
/// records.
fn check_groups(shared: &Shared, start: u64, end: u64) -> Option<ScrubDamage> {
    let groups = start / GROUP_WIDTH..end / GROUP_WIDTH;
    if groups.is_empty() {
        return None;
    }
    let group_count = (groups.end - groups.start) as usize;
    let first_leaf = groups.start * GROUP_WIDTH;
    let stored = shared.read_leaf_hashes(first_leaf, group_count * GROUP_WIDTH as usize);
    let roots = shared.read_level4_hashes(groups.start, group_count);
    let (leaves, roots) = match (stored, roots) {
        (Ok(leaves), Ok(roots)) => (leaves, roots),
        (Err(error), _) | (_, Err(error)) => {
            return Some(ScrubDamage {
                index: first_leaf,
                offset: None,
                problem: ScrubProblem::Unreadable(error.to_string()),
            });
        }
    };
    let mismatch = leaves
        .chunks_exact(GROUP_WIDTH as usize)
        .zip(&roots)
        .position(|(group_leaves, root)| perfect_root(group_leaves) != *root)?;
    let index = first_leaf + mismatch as u64 * GROUP_WIDTH;
    Some(ScrubDamage {
        index,
        offset: shared
            .read_offsets(index, 1)
            .ok()
            .and_then(|offsets| offsets.first().copied()),
        problem: ScrubProblem::GroupHashMismatch,
    })
}
