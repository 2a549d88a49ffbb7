//! The background scrub: re-reads the records from the start, a chunk at a time at a bounded
//! rate, and checks everything receipts and proofs are served from against them. Opening trusts
//! the stored hashes up to the latest checkpoint after checking only their end, so a byte that
//! rots (or is changed) in an old record or a stored hash would otherwise go unnoticed until
//! someone verifies the whole directory. A pass checks:
//! - each frame's length and checksum, walking the frames from record 0 as they were written,
//!   and that `record-offsets.dat` lists each frame where the walk finds it;
//! - that each record's leaf hash equals its entry in `leaf-hashes.dat`;
//! - that the 16 stored leaf hashes of each full group hash to its entry in `level4-hashes.dat`,
//!   and the 16 stored level-4 nodes of each full tile to its entry in `tile-hashes.dat`;
//! - once the records are done, that the tree levels above the tiles held in memory, which
//!   proofs and hash tiles are served from, are the ones the stored tile roots give, and that the
//!   root computed from what is served, at the size of the latest checkpoint signed before the
//!   pass began, is the root that checkpoint signs. This ties all the node serves to its
//!   signature: with every stored hash found to agree with the records, a different root means
//!   the records themselves no longer give the signed tree.
//!
//! Each finding is classed by what is damaged ([`DamageKind`]), since that decides the repair:
//! the records, which salvage can cut past the latest checkpoint and only a backup restores below
//! it, or the hashes derived from them, which `rebuild_derived_files` recomputes while the
//! records are intact.
//!
//! The scrub uses positioned reads, which take no lock, and holds the read lock of the in-memory
//! levels only to compare them, so it never holds up the writer. Each pass checks the records
//! below the size published when it began; after a pass it rests for
//! `LedgerOptions::scrub_pass_pause`, then starts again from record 0. The first damage it finds
//! is kept in the status and logged once; later passes go on checking.

use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use crate::frame::{FRAME_HEADER_BYTES, FrameParse, MAX_RECORD_PAYLOAD, parse_frame};
use crate::merkle::{self, Hash, perfect_root};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};

use super::{
    Checkpoint, Error, GROUP_LEVEL, GROUP_WIDTH, RECORDS_FILE, Result, Shared, UpperLevels,
    io_error, lock, read_guard,
};

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
    /// What a readiness probe adds to its body once the scrub has found damage: the damage, what
    /// it is in and what the operator does about it. The node stays ready, since it still
    /// records every new exchange; the metric `civitas_ledger_scrub_damage` is what to alert on.
    pub fn damage_notice(&self) -> Option<String> {
        self.damage.as_ref().map(|damage| {
            let kind = damage.problem.kind();
            format!(
                "ledger scrub found damage in {}: {damage}; {}\n",
                kind.what(),
                kind.remedy()
            )
        })
    }
}

/// What damage is in, which decides how it is repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// `records.dat` itself: a frame's length or checksum, or records that no longer give the
    /// signed root. Salvage can cut damage past the latest signed checkpoint off, with every
    /// record after it; damage a checkpoint covers only a backup repairs.
    Records,
    /// The hashes derived from the records, in their files or in memory, while the records
    /// themselves are intact: `rebuild_derived_files` recomputes the files, and opening the
    /// ledger the levels in memory.
    Derived,
}

impl DamageKind {
    /// Every kind, for reporting one series of a metric per kind.
    pub const ALL: [DamageKind; 2] = [DamageKind::Records, DamageKind::Derived];

    /// A short name, `records` or `derived`: the `kind` label of the scrub's damage metric.
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::Records => "records",
            DamageKind::Derived => "derived",
        }
    }

    fn what(self) -> &'static str {
        match self {
            DamageKind::Records => "the records",
            DamageKind::Derived => "the hashes derived from the records",
        }
    }

    /// What the operator does about damage of this kind.
    pub fn remedy(self) -> &'static str {
        match self {
            DamageKind::Records => {
                "with the node stopped, `civitas ledger salvage --data-dir DIR` can cut off damage past the latest signed checkpoint, with every record after it; damage a signed checkpoint covers needs the ledger directory restored from a backup; then run `civitas ledger verify`"
            }
            DamageKind::Derived => {
                "the records are intact: stop the node, run `civitas ledger rebuild-derived --data-dir DIR --apply`, which recomputes the derived files from the records, and `civitas ledger verify`, then start the node again, which rebuilds the tree levels it holds in memory"
            }
        }
    }
}

/// Damage the scrub found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrubDamage {
    /// The damaged record, or the first record of the damaged group, tile or tree node (0 when
    /// the root of the tree differs).
    pub index: u64,
    /// Where the record's frame starts in `records.dat`, when it is known.
    pub offset: Option<u64>,
    pub problem: ScrubProblem,
}

impl std::fmt::Display for ScrubDamage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let ScrubProblem::CheckpointRootMismatch { .. } = self.problem {
            return write!(f, "{}", self.problem);
        }
        write!(f, "record {}", self.index)?;
        if let Some(offset) = self.offset {
            write!(f, " at byte {offset} of records.dat")?;
        }
        write!(f, ": {}", self.problem)
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrubProblem {
    /// The frame that starts where the one before it ends has an invalid length or checksum, or
    /// runs past the end of the file.
    #[error("{0}")]
    CorruptFrame(String),
    /// Reading a file failed; `file` names it, `None` for the tree levels in memory.
    #[error("{reason}")]
    Unreadable {
        file: Option<String>,
        reason: String,
    },
    /// `record-offsets.dat` places the frame somewhere else than where the frame before it ends.
    #[error(
        "record-offsets.dat lists its frame at byte {found}, but the frame before it ends at byte {expected}"
    )]
    Misplaced { expected: u64, found: u64 },
    #[error("its leaf hash differs from the one stored in leaf-hashes.dat")]
    LeafHashMismatch,
    #[error(
        "the 16 leaf hashes from this record on hash to another root than the one stored in level4-hashes.dat"
    )]
    GroupHashMismatch,
    #[error(
        "the 16 level-4 nodes of the 256 records from this one on hash to another root than the one stored in tile-hashes.dat"
    )]
    TileHashMismatch,
    /// A node of the tree levels held in memory, which proofs and tiles are served from, differs
    /// from the one the stored tile roots give.
    #[error(
        "the level-{level} tree node over the {} records from this one on, held in memory to serve proofs from, differs from the one the tile roots in tile-hashes.dat give",
        1u64 << level
    )]
    UpperNodeMismatch { level: u32 },
    /// The root of the tree at the latest checkpoint's size, computed from the hashes served,
    /// differs from the root the checkpoint signs.
    #[error(
        "the root of the first {tree_size} records, computed from the hashes the node serves, differs from the root its latest checkpoint signs"
    )]
    CheckpointRootMismatch { tree_size: u64 },
}

impl ScrubProblem {
    /// Whether the records themselves are damaged or only what is derived from them. A frame is
    /// found by walking the frames from record 0, never by its listed offset, so a frame out of
    /// place in `record-offsets.dat` is damage to that file. A root that differs is the records'
    /// damage, since it is checked once every stored hash has been found to agree with them.
    pub fn kind(&self) -> DamageKind {
        match self {
            ScrubProblem::CorruptFrame(_) | ScrubProblem::CheckpointRootMismatch { .. } => {
                DamageKind::Records
            }
            ScrubProblem::Unreadable { file, .. } if file.as_deref() == Some(RECORDS_FILE) => {
                DamageKind::Records
            }
            ScrubProblem::Unreadable { .. }
            | ScrubProblem::Misplaced { .. }
            | ScrubProblem::LeafHashMismatch
            | ScrubProblem::GroupHashMismatch
            | ScrubProblem::TileHashMismatch
            | ScrubProblem::UpperNodeMismatch { .. } => DamageKind::Derived,
        }
    }
}

/// Damage at `index` for a failed read, named by the file the error names.
fn unreadable(index: u64, offset: Option<u64>, error: Error) -> ScrubDamage {
    let file = match &error {
        Error::Io { path, .. } => path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned()),
        _ => None,
    };
    ScrubDamage {
        index,
        offset,
        problem: ScrubProblem::Unreadable {
            file,
            reason: error.to_string(),
        },
    }
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

/// Keeps `damage` in the status if it is the first found, and logs it then.
fn keep_first(shared: &Shared, status: &mut ScrubStatus, damage: Option<ScrubDamage>) {
    if let (None, Some(damage)) = (&status.damage, damage) {
        let kind = damage.problem.kind();
        tracing::error!(
            dir = %shared.dir.display(),
            index = damage.index,
            offset = damage.offset,
            kind = kind.as_str(),
            problem = %damage.problem,
            remedy = kind.remedy(),
            "the ledger scrub found damage in what the ledger has served"
        );
        status.damage = Some(damage);
    }
}

/// The scrub thread: passes over the records at about `bytes_per_second`, resting `pass_pause`
/// after each, until stopped.
pub(crate) fn run(shared: &Shared, bytes_per_second: u64, pass_pause: Duration) {
    debug_assert!(bytes_per_second > 0);
    let state = &shared.scrub;
    loop {
        // Taken before the size, so that the pass covers every record the checkpoint signs.
        let checkpoint = read_guard(&shared.checkpoints)
            .latest
            .clone()
            .expect("open signs a checkpoint before the scrub starts");
        let pass_size = shared.size();
        {
            let mut status = lock(&state.status);
            status.position = 0;
            status.pass_size = pass_size;
        }
        let pass_started = Instant::now();
        let mut pass_bytes = 0u64;
        let mut pass = Pass::new();
        let mut index = 0;
        while index < pass_size {
            let checked = check_chunk(shared, index, pass_size, &mut pass);
            index = checked.end;
            pass_bytes += checked.bytes;
            {
                let mut status = lock(&state.status);
                status.position = index;
                status.bytes_checked += checked.bytes;
                keep_first(shared, &mut status, checked.damage);
            }
            // Pacing by the bytes of the whole pass keeps the average rate even when chunks
            // differ in size.
            let due =
                pass_started + Duration::from_secs_f64(pass_bytes as f64 / bytes_per_second as f64);
            if !state.rest_until(due) {
                return;
            }
        }
        let tree_damage = check_served_tree(shared, &checkpoint);
        {
            let mut status = lock(&state.status);
            keep_first(shared, &mut status, tree_damage);
            status.passes_completed += 1;
        }
        if !state.rest_until(Instant::now() + pass_pause) {
            return;
        }
    }
}

/// A level of the tree stored in a file, as the scrub reads it.
#[derive(Clone, Copy)]
struct StoredLevel {
    level: u32,
    read: fn(&Shared, u64, usize) -> Result<Vec<Hash>>,
}

const LEAVES: StoredLevel = StoredLevel {
    level: 0,
    read: Shared::read_leaf_hashes,
};
const GROUPS: StoredLevel = StoredLevel {
    level: GROUP_LEVEL,
    read: Shared::read_level4_hashes,
};
const TILES: StoredLevel = StoredLevel {
    level: TILE_HEIGHT,
    read: Shared::read_tile_hashes,
};

/// Checks a stored level against the stored level four above it as a pass takes the lower
/// level's nodes in order: every 16 consecutive nodes ([`GROUP_WIDTH`]), from a multiple of 16,
/// must hash to their parent. The nodes taken of a parent that a chunk left unfinished are kept
/// for the next chunk, so that a parent straddling two chunks is not read twice.
struct ParentCheck {
    children: StoredLevel,
    parents: StoredLevel,
    mismatch: ScrubProblem,
    /// The children taken of the unfinished parent, from its first child.
    pending: Vec<Hash>,
    /// The child after the last one taken; `None` before the first and after a failed read.
    next: Option<u64>,
}

impl ParentCheck {
    fn new(children: StoredLevel, parents: StoredLevel, mismatch: ScrubProblem) -> ParentCheck {
        ParentCheck {
            children,
            parents,
            mismatch,
            pending: Vec::new(),
            next: None,
        }
    }

    /// Takes the stored children `first..first + children.len()` and checks every parent they
    /// complete against its stored hash. Returns the index of the first parent they complete and
    /// the stored parents read from it on, for the level above (none when they complete none, or
    /// a read failed). Children of that parent before `first` that were not taken (a chunk was
    /// cut short by damage, or a read failed) are read from their file.
    fn take(
        &mut self,
        shared: &Shared,
        first: u64,
        children: &[Hash],
        note: &mut impl FnMut(ScrubDamage),
    ) -> (u64, Vec<Hash>) {
        let first_parent = first / GROUP_WIDTH;
        let parent_start = first_parent * GROUP_WIDTH;
        if self.next != Some(first) {
            match (self.children.read)(shared, parent_start, (first - parent_start) as usize) {
                Ok(earlier) => self.pending = earlier,
                Err(error) => {
                    self.next = None;
                    note(unreadable(parent_start << self.children.level, None, error));
                    return (first_parent, Vec::new());
                }
            }
        }
        self.pending.extend_from_slice(children);
        self.next = Some(first + children.len() as u64);
        let complete = self.pending.len() / GROUP_WIDTH as usize * GROUP_WIDTH as usize;
        let unfinished = self.pending.split_off(complete);
        let completed = std::mem::replace(&mut self.pending, unfinished);
        if completed.is_empty() {
            return (first_parent, Vec::new());
        }
        let parents =
            match (self.parents.read)(shared, first_parent, complete / GROUP_WIDTH as usize) {
                Ok(parents) => parents,
                Err(error) => {
                    note(unreadable(first_parent << self.parents.level, None, error));
                    return (first_parent, Vec::new());
                }
            };
        if let Some(position) = completed
            .chunks_exact(GROUP_WIDTH as usize)
            .zip(&parents)
            .position(|(children, parent)| perfect_root(children) != *parent)
        {
            let index = (first_parent + position as u64) << self.parents.level;
            note(ScrubDamage {
                index,
                offset: listed_offset(shared, index),
                problem: self.mismatch.clone(),
            });
        }
        (first_parent, parents)
    }
}

/// Where `record-offsets.dat` places record `index`'s frame, if it can be read.
fn listed_offset(shared: &Shared, index: u64) -> Option<u64> {
    shared
        .read_offsets(index, 1)
        .ok()
        .and_then(|offsets| offsets.first().copied())
}

/// What a pass carries from one chunk to the next.
struct Pass {
    /// Where the next record's frame starts, as the walk from record 0 found it; `None` after a
    /// damaged frame, whose length cannot be trusted, and the next chunk then starts where
    /// `record-offsets.dat` lists its first frame.
    next_frame: Option<u64>,
    /// Leaf hashes against level-4 nodes.
    groups: ParentCheck,
    /// Level-4 nodes against tile roots.
    tiles: ParentCheck,
}

impl Pass {
    fn new() -> Pass {
        Pass {
            next_frame: Some(0),
            groups: ParentCheck::new(LEAVES, GROUPS, ScrubProblem::GroupHashMismatch),
            tiles: ParentCheck::new(GROUPS, TILES, ScrubProblem::TileHashMismatch),
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

/// Checks records from `start` (at most up to `pass_size`): their frames, where the offsets file
/// places them, their leaf hashes, and the stored root of every group and tile they complete.
/// Damage to a record is noted before the damage it causes in the levels above it.
fn check_chunk(shared: &Shared, start: u64, pass_size: u64, pass: &mut Pass) -> Checked {
    let count = (pass_size - start).min(CHUNK_RECORDS) as usize;
    let mut damage = None;
    let mut note = |found: ScrubDamage| {
        damage.get_or_insert(found);
    };
    let listed = match shared.read_offsets(start, count) {
        Ok(listed) => listed,
        Err(error) => {
            pass.next_frame = None;
            note(unreadable(start, None, error));
            return Checked {
                end: start + count as u64,
                bytes: 0,
                damage,
            };
        }
    };
    let first = pass.next_frame.unwrap_or(listed[0]);
    let walk = match walk_frames(shared, first, &listed) {
        Ok(walk) => walk,
        Err(error) => {
            pass.next_frame = None;
            note(unreadable(start, Some(first), error));
            return Checked {
                end: start + 1,
                bytes: 0,
                damage,
            };
        }
    };
    let stored_leaves = match (LEAVES.read)(shared, start, walk.leaves.len()) {
        Ok(stored) => Some(stored),
        Err(error) => {
            note(unreadable(start, Some(first), error));
            None
        }
    };
    for (position, (leaf, &offset)) in walk.leaves.iter().zip(&walk.offsets).enumerate() {
        let index = start + position as u64;
        if listed[position] != offset {
            note(ScrubDamage {
                index,
                offset: Some(offset),
                problem: ScrubProblem::Misplaced {
                    expected: offset,
                    found: listed[position],
                },
            });
        }
        if let Some(stored) = &stored_leaves
            && stored[position] != *leaf
        {
            note(ScrubDamage {
                index,
                offset: Some(offset),
                problem: ScrubProblem::LeafHashMismatch,
            });
        }
    }
    let walked = walk.leaves.len() as u64;
    if let Some(reason) = &walk.damage {
        note(ScrubDamage {
            index: start + walked,
            offset: Some(walk.end),
            problem: ScrubProblem::CorruptFrame(reason.clone()),
        });
    }
    if let Some(stored) = &stored_leaves {
        let (first_group, group_roots) = pass.groups.take(shared, start, stored, &mut note);
        if !group_roots.is_empty() {
            pass.tiles
                .take(shared, first_group, &group_roots, &mut note);
        }
    }
    pass.next_frame = walk.damage.is_none().then_some(walk.end);
    Checked {
        end: start + walked + u64::from(walk.damage.is_some()),
        bytes: walk.bytes,
        damage,
    }
}

/// The frames one chunk's walk found.
struct Walk {
    /// Where each valid frame starts.
    offsets: Vec<u64>,
    /// Each valid frame's leaf hash.
    leaves: Vec<Hash>,
    /// Bytes of the valid frames.
    bytes: u64,
    /// Where the frame after the last valid one starts: the next chunk's, or the damaged one.
    end: u64,
    /// Why the frame at `end` is damaged, if the walk stopped there.
    damage: Option<String>,
}

/// Walks the frames of up to `listed.len()` records from byte `first`, where the first of them
/// starts, until they take [`CHUNK_BYTES`]: checks each frame's length and checksum and hashes
/// its record. The offsets `record-offsets.dat` lists only size the reads; a frame that runs
/// past what they say is read on.
fn walk_frames(shared: &Shared, first: u64, listed: &[u64]) -> Result<Walk> {
    let path = shared.path(RECORDS_FILE);
    let records = &shared.files.records;
    let file_length = records
        .metadata()
        .map_err(io_error("inspect", &path))?
        .len();
    let listed_end = listed[listed.len() - 1].saturating_add(FRAME_HEADER_BYTES as u64);
    let span_end = listed_end
        .min(first.saturating_add(CHUNK_BYTES))
        .min(file_length)
        .max(first);
    let mut span = vec![0u8; (span_end - first) as usize];
    records
        .read_exact_at(&mut span, first)
        .map_err(io_error("read", &path))?;
    let mut walk = Walk {
        offsets: Vec::with_capacity(listed.len()),
        leaves: Vec::with_capacity(listed.len()),
        bytes: 0,
        end: first,
        damage: None,
    };
    let mut at = 0usize;
    while walk.leaves.len() < listed.len() && (at as u64) < CHUNK_BYTES {
        let reason = match parse_frame(&span[at..], MAX_RECORD_PAYLOAD) {
            FrameParse::Valid { payload } => {
                walk.offsets.push(first + at as u64);
                walk.leaves.push(merkle::leaf_hash(payload));
                at += FRAME_HEADER_BYTES + payload.len();
                continue;
            }
            FrameParse::Incomplete { needed } if first + (at + needed) as u64 <= file_length => {
                let read_from = span.len();
                span.resize(at + needed, 0);
                records
                    .read_exact_at(&mut span[read_from..], first + read_from as u64)
                    .map_err(io_error("read", &path))?;
                continue;
            }
            FrameParse::Incomplete { .. } => "frame runs past the end of the file".to_owned(),
            FrameParse::BadLength { length } => format!("invalid frame length {length}"),
            FrameParse::ChecksumMismatch => "frame checksum mismatch".to_owned(),
        };
        walk.damage = Some(reason);
        break;
    }
    walk.bytes = at as u64;
    walk.end = first + at as u64;
    Ok(walk)
}

/// Checks what proofs are served from against `checkpoint`, once a pass has checked the stored
/// hashes below its size against the records: the tree levels held in memory against those the
/// stored tile roots give, then the root of the tree at the checkpoint's size, computed from the
/// levels in memory and the stored level-4 nodes and leaf hashes as a proof is, against the
/// root it signs.
fn check_served_tree(shared: &Shared, checkpoint: &Checkpoint) -> Option<ScrubDamage> {
    let full_tiles = (checkpoint.tree_size / TILE_WIDTH) as usize;
    let tile_roots = match shared.read_tile_hashes(0, full_tiles) {
        Ok(tile_roots) => tile_roots,
        Err(error) => return Some(unreadable(0, None, error)),
    };
    let mut computed = UpperLevels::default();
    for tile_root in tile_roots {
        computed.push_tile_root(tile_root);
    }
    {
        let served = read_guard(&shared.upper);
        for (depth, nodes) in computed.levels.iter().enumerate() {
            let held = served.levels.get(depth).map_or(&[][..], Vec::as_slice);
            if let Some(index) =
                (0..nodes.len()).find(|&index| held.get(index) != Some(&nodes[index]))
            {
                let level = TILE_HEIGHT + depth as u32;
                return Some(ScrubDamage {
                    index: (index as u64) << level,
                    offset: None,
                    problem: ScrubProblem::UpperNodeMismatch { level },
                });
            }
        }
    }
    match shared.root(checkpoint.tree_size) {
        Ok(root) if root == checkpoint.root => None,
        Ok(_) => Some(ScrubDamage {
            index: 0,
            offset: None,
            problem: ScrubProblem::CheckpointRootMismatch {
                tree_size: checkpoint.tree_size,
            },
        }),
        Err(error) => Some(unreadable(0, None, error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{Ledger, LedgerOptions, write_guard};
    use crate::note::NoteSigner;

    /// Three full tiles and five records more, so that levels 8 and 9 are held in memory and the
    /// root at that size reads the level-9 node but not the level-8 nodes under it.
    const RECORDS: u64 = 3 * TILE_WIDTH + 5;

    /// A ledger of `RECORDS` records, all covered by its latest checkpoint, scrubbed fast with a
    /// short rest between passes.
    async fn scrubbed_ledger(dir: &std::path::Path) -> Ledger {
        let signer = NoteSigner::new(
            "cn-js-nanjing",
            ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
        )
        .unwrap();
        let options = LedgerOptions {
            checkpoint_interval: Duration::from_secs(3600),
            scrub_bytes_per_second: Some(1 << 30),
            scrub_pass_pause: Duration::from_millis(10),
            ..LedgerOptions::default()
        };
        let ledger = Ledger::open(dir, signer, options).unwrap();
        ledger
            .append_batch((0..RECORDS).map(|n| n.to_le_bytes().to_vec()).collect())
            .await
            .unwrap();
        assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, RECORDS);
        ledger
    }

    /// Flips a bit of the node at `index` of tree level `8 + depth` held in memory.
    fn flip_upper_node(ledger: &Ledger, depth: usize, index: usize) {
        write_guard(&ledger.shared().upper).levels[depth][index][0] ^= 1;
    }

    #[tokio::test]
    async fn the_served_tree_is_checked_against_the_tile_roots_and_the_signed_root() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = scrubbed_ledger(dir.path()).await;
        let checkpoint = ledger.latest_checkpoint();
        assert_eq!(check_served_tree(ledger.shared(), &checkpoint), None);

        // A level-8 node the root does not read, and the level-9 node above it, which it does:
        // each is found where it is held.
        for (depth, index) in [(0, 1), (1, 0)] {
            flip_upper_node(&ledger, depth, index);
            let level = TILE_HEIGHT + depth as u32;
            let damage = check_served_tree(ledger.shared(), &checkpoint).unwrap();
            assert_eq!(
                damage,
                ScrubDamage {
                    index: (index as u64) << level,
                    offset: None,
                    problem: ScrubProblem::UpperNodeMismatch { level },
                },
                "{damage}"
            );
            assert_eq!(damage.problem.kind(), DamageKind::Derived);
            flip_upper_node(&ledger, depth, index);
        }

        // Hashes that all agree with the records but not with the signed root: the records are
        // no longer those the checkpoint signed.
        let other_root = Checkpoint {
            root: [7; 32],
            ..checkpoint.clone()
        };
        let damage = check_served_tree(ledger.shared(), &other_root).unwrap();
        assert_eq!(
            damage.problem,
            ScrubProblem::CheckpointRootMismatch { tree_size: RECORDS }
        );
        assert_eq!(damage.problem.kind(), DamageKind::Records);
        assert_eq!(
            damage.to_string(),
            format!(
                "the root of the first {RECORDS} records, computed from the hashes the node serves, differs from the root its latest checkpoint signs"
            )
        );
    }

    #[tokio::test]
    async fn a_pass_ends_by_checking_the_levels_held_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = scrubbed_ledger(dir.path()).await;
        let wait_for_passes = |passes: u64| {
            let give_up = Instant::now() + Duration::from_secs(10);
            loop {
                let status = ledger.scrub_status().unwrap();
                if status.passes_completed >= passes {
                    return status;
                }
                assert!(Instant::now() < give_up, "{status:?}");
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let clean = wait_for_passes(1);
        assert_eq!(clean.damage, None);
        flip_upper_node(&ledger, 1, 0);
        let status = wait_for_passes(clean.passes_completed + 2);
        let damage = status.damage.clone().unwrap();
        assert_eq!(
            damage.problem,
            ScrubProblem::UpperNodeMismatch { level: 9 },
            "{damage}"
        );
        assert!(
            status
                .damage_notice()
                .unwrap()
                .starts_with("ledger scrub found damage in the hashes derived from the records: record 0: the level-9 tree node over the 512 records from this one on, held in memory"),
            "{:?}",
            status.damage_notice()
        );
    }
}
