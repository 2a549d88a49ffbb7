//! The log on disk: group-committed appends, reads, proofs, tiles, checkpoints and receipts.
//!
//! Files in the ledger directory (FORMAT.md has the byte layouts):
//! - `records.dat`: the records as checksummed frames; the only file whose every acknowledged byte
//!   is made durable before the append returns. The writer keeps about a megabyte past the last
//!   record zero-filled, so that a sync seldom has to grow the file; a zero frame length marks
//!   where the records end.
//! - `record-offsets.dat`, `leaf-hashes.dat`, `level4-hashes.dat`, `tile-hashes.dat`: derived data
//!   (byte offset and leaf hash of every record, root of every full 16-leaf group and of every
//!   full 256-leaf tile), written without fsync and made durable just before each checkpoint, so
//!   after a crash only their part beyond the last checkpoint has to be recomputed.
//! - `checkpoints.dat`: every signed checkpoint, as frames, each fsynced.
//! - `lock`: held with an exclusive file lock while the ledger is open or being salvaged.
//! - `ledger-id`: the ledger's random id, written once (see `identity`).
//! - `records.dat.cut-<offset>`: the bytes a salvage cut off the records at that offset (see
//!   `salvage`); kept for the operator, never read by the ledger.
//! - `<derived file>.rebuilt`: a derived file being rebuilt from the records (see `rebuild`),
//!   renamed into place once synced; never read.
//!
//! One writer thread owns all appends: it drains every pending append, writes them with one write
//! per file and one fdatasync of the records file, and only then publishes the new size and
//! answers the waiters. A checkpointer thread signs the new tree head at least once per interval.
//! Readers use positioned reads and never take a lock that the writer holds for more than a few
//! vector pushes. Unless disabled, a scrub thread re-reads the records at a bounded rate and
//! checks them against the stored hashes that receipts and proofs are served from, and those
//! against the latest signed root (see `scrub`), since opening checks only the end of what the
//! latest checkpoint covers.

mod checkpointer;
mod completions;
mod identity;
mod rebuild;
mod recovery;
mod salvage;
mod scrub;
mod writer;

use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::frame::{FRAME_HEADER_BYTES, FrameParse, MAX_RECORD_PAYLOAD, parse_frame};
use crate::merkle::{self, Hash, NodeSource, perfect_root};
use crate::note::{self, NoteSigner};
use crate::receipt::Receipt;
use crate::record::MAX_RECORD_BYTES;
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH, encode_entry_bundle};

pub(crate) use checkpointer::CheckpointControl;
pub use completions::Completions;
pub use rebuild::{DerivedFileDifference, DerivedRebuild, rebuild_derived_files};
pub use salvage::{
    CheckpointRef, RecordDamage, SalvageCut, SalvageReport, salvage_records, salvage_side_file_name,
};
pub use scrub::{DamageKind, ScrubDamage, ScrubProblem, ScrubStatus};

pub(crate) const RECORDS_FILE: &str = "records.dat";
pub(crate) const OFFSETS_FILE: &str = "record-offsets.dat";
pub(crate) const LEAF_HASHES_FILE: &str = "leaf-hashes.dat";
pub(crate) const LEVEL4_HASHES_FILE: &str = "level4-hashes.dat";
pub(crate) const TILE_HASHES_FILE: &str = "tile-hashes.dat";
pub(crate) const CHECKPOINTS_FILE: &str = "checkpoints.dat";
pub(crate) const LOCK_FILE: &str = "lock";
/// The files of a ledger directory that hold its data (every file but the lock, the id and a
/// repair's side files), as `DataFiles` opens them and FORMAT.md §6 lists them.
pub const DATA_FILES: [&str; 6] = [
    RECORDS_FILE,
    OFFSETS_FILE,
    LEAF_HASHES_FILE,
    LEVEL4_HASHES_FILE,
    TILE_HASHES_FILE,
    CHECKPOINTS_FILE,
];

pub(crate) const OFFSET_BYTES: u64 = 8;
pub(crate) const HASH_BYTES: u64 = 32;
/// The tree level stored between leaves and tile roots. Storing it costs 2 bytes per record and
/// cuts the hashing needed for the levels inside a tile from up to 247 to at most 22 per proof.
pub(crate) const GROUP_LEVEL: u32 = 4;
/// Leaves per level-4 node.
pub(crate) const GROUP_WIDTH: u64 = 1 << GROUP_LEVEL;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ledger directory {0} is already open")]
    AlreadyOpen(PathBuf),
    #[error("record of {0} bytes is larger than the limit of 65535 bytes")]
    RecordTooLarge(usize),
    #[error("records must not be empty")]
    EmptyRecord,
    #[error("record index {index} is not below the ledger size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {tree_size} is larger than the ledger size {size}")]
    TreeSizeOutOfRange { tree_size: u64, size: u64 },
    #[error(transparent)]
    Proof(#[from] merkle::Error),
    #[error("record {index} is corrupt: {reason}")]
    CorruptRecord { index: u64, reason: String },
    /// Damage past the latest checkpoint that a crash cannot explain, since a crash tears only
    /// the end of the records: the ledger will not cut off the records after it.
    #[error(
        "record {index} at byte {offset} of the records file is corrupt ({reason}), and a valid record frame follows at byte {next_frame}: not a torn write, so the records after it are kept and the ledger does not open until the file is restored or salvaged (cut at the damage)"
    )]
    DamageBeforeValidFrames {
        index: u64,
        offset: u64,
        reason: String,
        next_frame: u64,
    },
    #[error(
        "salvage side file {0} is already there with other bytes than those it would save; move it away first"
    )]
    SalvageSideFileDiffers(PathBuf),
    #[error("checkpoints file is corrupt at byte {offset}: {reason}")]
    CorruptCheckpoints { offset: u64, reason: String },
    #[error("latest stored checkpoint does not verify with this node's key: {0}")]
    CheckpointKey(#[source] note::Error),
    #[error("records no longer match stored checkpoint {ordinal} at tree size {tree_size}")]
    CheckpointMismatch { ordinal: usize, tree_size: u64 },
    #[error("stored checkpoint {ordinal} covers {tree_size} records but only {found} remain")]
    RecordsMissing {
        ordinal: usize,
        tree_size: u64,
        found: u64,
    },
    #[error("tree node at level {level} index {index} is missing from memory")]
    MissingNode { level: u32, index: u64 },
    #[error("tile level {level} index {index} width {width} is not available at size {size}")]
    TileNotAvailable {
        level: u8,
        index: u64,
        width: u16,
        size: u64,
    },
    #[error("entry bundle {index} width {width} is not available at size {size}")]
    EntryBundleNotAvailable { index: u64, width: u16, size: u64 },
    #[error("ledger stopped accepting appends after a failed write or sync; reopen it: {0}")]
    Failed(String),
    #[error("signing a checkpoint failed: {0}")]
    CheckpointFailed(String),
    #[error("ledger is shut down")]
    Closed,
    #[error("ledger id file {0} does not hold 32 lowercase hex digits and a newline")]
    CorruptLedgerId(PathBuf),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether a repair of the ledger's files (`salvage_records`, `rebuild_derived_files`) only
/// reports what it would do or also does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepairMode {
    /// Examine and report; change nothing.
    DryRun,
    /// Repair, and report what was done.
    Apply,
}

/// Returns a closure that wraps an I/O error with what was done to which file.
pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

#[derive(Debug, Clone)]
pub struct LedgerOptions {
    /// How often the checkpointer signs a new tree head when there are new records.
    pub checkpoint_interval: Duration,
    /// The writer stops draining pending appends into one group commit beyond this many bytes.
    pub max_batch_bytes: usize,
    /// How long the writer may wait for more appends after a group commit of four or more (see
    /// the writer's `gather_for`); zero always commits whatever is queued at once.
    pub group_commit_window: Duration,
    /// How fast the background scrub re-reads the records to check them against the stored
    /// hashes (see [`Ledger::scrub_status`]); `None` or zero runs no scrub.
    pub scrub_bytes_per_second: Option<u64>,
    /// How long the scrub rests after a pass before it starts the next from record 0. Zero starts
    /// the next pass at once, which costs a few reads a pass even when there is nothing to check.
    pub scrub_pass_pause: Duration,
}

/// The scrub's default rate: a pass over a gigabyte of records takes about four minutes, and
/// costs a disk little next to the appends' syncs.
pub const DEFAULT_SCRUB_BYTES_PER_SECOND: u64 = 4 << 20;

/// The scrub's default rest between passes: at the default rate a ledger of a gigabyte of
/// records is then re-read about four times an hour.
pub const DEFAULT_SCRUB_PASS_PAUSE: Duration = Duration::from_secs(600);

impl Default for LedgerOptions {
    fn default() -> LedgerOptions {
        LedgerOptions {
            checkpoint_interval: Duration::from_secs(1),
            max_batch_bytes: 8 << 20,
            group_commit_window: Duration::from_micros(200),
            scrub_bytes_per_second: Some(DEFAULT_SCRUB_BYTES_PER_SECOND),
            scrub_pass_pause: DEFAULT_SCRUB_PASS_PAUSE,
        }
    }
}

/// A signed checkpoint: the note text and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The signed note, ready to serve as `checkpoint`.
    pub note: String,
    pub tree_size: u64,
    pub root: Hash,
}

impl Checkpoint {
    /// Parses a signed checkpoint note without verifying its signature; for notes read back from
    /// this node's own files.
    pub(crate) fn parse_trusted(note: String) -> Result<Checkpoint, note::Error> {
        let Some(separator) = note.rfind("\n\n") else {
            return Err(note::Error::MalformedNote(
                "no blank line before the signature lines",
            ));
        };
        let body = note::parse_checkpoint_body(&note[..separator + 1])?;
        Ok(Checkpoint {
            tree_size: body.tree_size,
            root: body.root,
            note,
        })
    }
}

pub(crate) struct DataFiles {
    pub(crate) records: File,
    pub(crate) offsets: File,
    pub(crate) leaf_hashes: File,
    pub(crate) level4_hashes: File,
    pub(crate) tile_hashes: File,
    pub(crate) checkpoints: File,
}

impl DataFiles {
    /// The derived files, in the order of `recovery::DERIVED_FILES`.
    pub(crate) fn derived(&self) -> [&File; 4] {
        [
            &self.offsets,
            &self.leaf_hashes,
            &self.level4_hashes,
            &self.tile_hashes,
        ]
    }

    fn open(dir: &Path) -> Result<DataFiles> {
        Ok(DataFiles {
            records: open_data_file(dir, RECORDS_FILE)?,
            offsets: open_data_file(dir, OFFSETS_FILE)?,
            leaf_hashes: open_data_file(dir, LEAF_HASHES_FILE)?,
            level4_hashes: open_data_file(dir, LEVEL4_HASHES_FILE)?,
            tile_hashes: open_data_file(dir, TILE_HASHES_FILE)?,
            checkpoints: open_data_file(dir, CHECKPOINTS_FILE)?,
        })
    }
}

pub(crate) fn open_data_file(dir: &Path, name: &str) -> Result<File> {
    let path = dir.join(name);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_error("open", &path))
}

/// Tree levels 8 and above, fully in memory: one hash per 256 leaves at level 8, halving upward,
/// so about 1/128 of a hash per record (2.5 MB at ten million records).
#[derive(Debug, Default, Clone)]
pub(crate) struct UpperLevels {
    /// `levels[i]` holds the complete nodes of tree level `8 + i`, left to right.
    pub(crate) levels: Vec<Vec<Hash>>,
}

impl UpperLevels {
    /// Adds the root of the next full level-0 tile and every node above it that it completes.
    pub(crate) fn push_tile_root(&mut self, tile_root: Hash) {
        let mut depth = 0;
        let mut hash = tile_root;
        loop {
            if self.levels.len() == depth {
                self.levels.push(Vec::new());
            }
            let level = &mut self.levels[depth];
            level.push(hash);
            if level.len() % 2 == 1 {
                break;
            }
            hash = merkle::interior_hash(&level[level.len() - 2], &level[level.len() - 1]);
            depth += 1;
        }
    }

    fn node(&self, level: u32, index: u64) -> Option<Hash> {
        debug_assert!(level >= TILE_HEIGHT);
        self.levels
            .get((level - TILE_HEIGHT) as usize)?
            .get(usize::try_from(index).ok()?)
            .copied()
    }
}

/// Where a checkpoint's frame lies in the checkpoints file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckpointLocation {
    pub(crate) tree_size: u64,
    pub(crate) offset: u64,
}

/// Every this many checkpoints, one is indexed in memory; any other is found by reading at most
/// this many frames forward from the index entry before it. Unit tests use a small stride so that
/// a few checkpoints already exercise the index.
pub(crate) const CHECKPOINT_INDEX_STRIDE: usize = if cfg!(test) { 4 } else { 256 };

/// What is known in memory about the stored checkpoints. A busy node signs one per second,
/// forever, so only the latest and a sparse index stay in memory.
#[derive(Default)]
pub(crate) struct CheckpointBook {
    /// Checkpoints number 0, `CHECKPOINT_INDEX_STRIDE`, 2 * `CHECKPOINT_INDEX_STRIDE`...
    pub(crate) sparse: Vec<CheckpointLocation>,
    pub(crate) count: usize,
    pub(crate) latest: Option<Checkpoint>,
    /// Where the next checkpoint frame goes.
    pub(crate) file_end: u64,
}

impl CheckpointBook {
    /// Notes the next stored checkpoint, whose frame spans `offset..frame_end`.
    pub(crate) fn record(&mut self, checkpoint: Checkpoint, offset: u64, frame_end: u64) {
        if self.count.is_multiple_of(CHECKPOINT_INDEX_STRIDE) {
            self.sparse.push(CheckpointLocation {
                tree_size: checkpoint.tree_size,
                offset,
            });
        }
        self.count += 1;
        self.latest = Some(checkpoint);
        self.file_end = frame_end;
    }
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) files: DataFiles,
    /// The durable tree size. The writer stores it (Release) after the records are synced and
    /// their offsets, leaf hashes and upper nodes are written; readers load it (Acquire) and read
    /// only below it.
    pub(crate) size: AtomicU64,
    pub(crate) upper: RwLock<UpperLevels>,
    pub(crate) checkpoints: RwLock<CheckpointBook>,
    pub(crate) checkpoint_control: Mutex<CheckpointControl>,
    pub(crate) checkpoint_wakeup: Condvar,
    pub(crate) signer: NoteSigner,
    pub(crate) verifier_key: String,
    /// The ledger's id (`identity`).
    pub(crate) id: String,
    /// Why the writer refuses appends and the checkpointer signs nothing, once a write or sync
    /// of the writer or the checkpointer has failed (until the ledger is opened again, which
    /// recovers what the files really hold).
    pub(crate) failure: OnceLock<String>,
    pub(crate) scrub: scrub::ScrubState,
    /// Held for its exclusive lock, released when the last thread lets go of `Shared`.
    _lock: File,
}

/// Locks a mutex even if a thread panicked while holding it: every critical section here leaves
/// the data consistent at each step.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn read_guard<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn write_guard<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    fn read_exact_at(&self, file: &File, name: &str, buffer: &mut [u8], offset: u64) -> Result<()> {
        file.read_exact_at(buffer, offset)
            .map_err(io_error("read", &self.path(name)))
    }

    /// Reads entries `start..start + count` of a file of hashes.
    fn read_hashes(&self, file: &File, name: &str, start: u64, count: usize) -> Result<Vec<Hash>> {
        let mut hashes = vec![[0u8; 32]; count];
        self.read_exact_at(file, name, hashes.as_flattened_mut(), start * HASH_BYTES)?;
        Ok(hashes)
    }

    pub(crate) fn read_leaf_hashes(&self, start: u64, count: usize) -> Result<Vec<Hash>> {
        self.read_hashes(&self.files.leaf_hashes, LEAF_HASHES_FILE, start, count)
    }

    pub(crate) fn read_level4_hashes(&self, start: u64, count: usize) -> Result<Vec<Hash>> {
        self.read_hashes(&self.files.level4_hashes, LEVEL4_HASHES_FILE, start, count)
    }

    pub(crate) fn read_tile_hashes(&self, start: u64, count: usize) -> Result<Vec<Hash>> {
        self.read_hashes(&self.files.tile_hashes, TILE_HASHES_FILE, start, count)
    }

    pub(crate) fn read_offsets(&self, start: u64, count: usize) -> Result<Vec<u64>> {
        let mut bytes = vec![0u8; count * OFFSET_BYTES as usize];
        self.read_exact_at(
            &self.files.offsets,
            OFFSETS_FILE,
            &mut bytes,
            start * OFFSET_BYTES,
        )?;
        Ok(bytes
            .chunks_exact(OFFSET_BYTES as usize)
            .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("eight bytes")))
            .collect())
    }

    /// Reads the frames of records `start..start + offsets.len()`, which begin at `offsets`.
    pub(crate) fn read_frames(&self, start: u64, offsets: &[u64]) -> Result<Vec<Vec<u8>>> {
        let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
            return Ok(Vec::new());
        };
        let corrupt = |index: u64, reason: String| Error::CorruptRecord { index, reason };
        let last_index = start + offsets.len() as u64 - 1;
        let mut header = [0u8; FRAME_HEADER_BYTES];
        self.read_exact_at(&self.files.records, RECORDS_FILE, &mut header, last)?;
        let last_length = u32::from_le_bytes(header[..4].try_into().expect("four bytes")) as u64;
        if last < first || last_length > MAX_RECORD_PAYLOAD as u64 {
            return Err(corrupt(
                last_index,
                "offset or length is out of order".into(),
            ));
        }
        let span_end = last + FRAME_HEADER_BYTES as u64 + last_length;
        let mut span = vec![0u8; (span_end - first) as usize];
        self.read_exact_at(&self.files.records, RECORDS_FILE, &mut span, first)?;
        let mut records = Vec::with_capacity(offsets.len());
        for (position, &offset) in offsets.iter().enumerate() {
            let index = start + position as u64;
            let relative = usize::try_from(offset - first).unwrap_or(usize::MAX);
            let Some(bytes) = span.get(relative..) else {
                return Err(corrupt(index, "offset lies beyond the read span".into()));
            };
            match parse_frame(bytes, MAX_RECORD_PAYLOAD) {
                FrameParse::Valid { payload } => records.push(payload.to_vec()),
                FrameParse::ChecksumMismatch => {
                    return Err(corrupt(index, "frame checksum mismatch".into()));
                }
                other => return Err(corrupt(index, format!("malformed frame: {other:?}"))),
            }
        }
        Ok(records)
    }

    pub(crate) fn root(&self, tree_size: u64) -> Result<Hash> {
        merkle::root_from(&mut StoredNodes::new(self, tree_size), tree_size)
    }
}

/// Serves perfect subtree hashes of the stored tree: levels 8 and up from memory, levels 4 to 7
/// from the 16 stored level-4 nodes of their tile, levels 0 to 3 from the 16 leaf hashes of their
/// group. Each group is one small positioned read and at most 15 hash computations.
pub(crate) struct StoredNodes<'a> {
    shared: &'a Shared,
    tree_size: u64,
    /// Groups read so far as `(level, group index, hashes)`; a proof touches at most four.
    groups: Vec<(u32, u64, Vec<Hash>)>,
}

impl<'a> StoredNodes<'a> {
    pub(crate) fn new(shared: &'a Shared, tree_size: u64) -> StoredNodes<'a> {
        StoredNodes {
            shared,
            tree_size,
            groups: Vec::with_capacity(4),
        }
    }

    /// The stored hashes of group `group` of level `level` (0 or 4): up to 16 consecutive nodes,
    /// fewer at the right edge of the tree.
    fn group(&mut self, level: u32, group: u64) -> Result<&[Hash]> {
        let position = match self
            .groups
            .iter()
            .position(|(cached_level, cached, _)| *cached_level == level && *cached == group)
        {
            Some(position) => position,
            None => {
                let first = group * GROUP_WIDTH;
                let available = self.tree_size >> level;
                let count = available.saturating_sub(first).min(GROUP_WIDTH) as usize;
                let hashes = if level == 0 {
                    self.shared.read_leaf_hashes(first, count)?
                } else {
                    self.shared.read_level4_hashes(first, count)?
                };
                self.groups.push((level, group, hashes));
                self.groups.len() - 1
            }
        };
        Ok(&self.groups[position].2)
    }
}

impl NodeSource for StoredNodes<'_> {
    type Error = Error;

    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash> {
        if level >= TILE_HEIGHT {
            return read_guard(&self.shared.upper)
                .node(level, index)
                .ok_or(Error::MissingNode { level, index });
        }
        let stored_level = if level >= GROUP_LEVEL { GROUP_LEVEL } else { 0 };
        let first = index << (level - stored_level);
        let group = first / GROUP_WIDTH;
        let start = (first - group * GROUP_WIDTH) as usize;
        let end = start + (1usize << (level - stored_level));
        let hashes = self.group(stored_level, group)?;
        if end > hashes.len() {
            return Err(Error::MissingNode { level, index });
        }
        Ok(perfect_root(&hashes[start..end]))
    }
}

/// How long `open` waits for a held directory lock before it reports the directory as open.
const LOCK_PATIENCE: Duration = Duration::from_millis(500);

/// Takes the directory's exclusive lock. The lock belongs to the open file, and a process that
/// this one is spawning holds a copy of every open file until it starts its program, so a
/// ledger that was just closed can look open for that moment: a held lock is tried again for
/// [`LOCK_PATIENCE`] before it counts as another holder's.
pub(crate) fn lock_directory(lock_file: &File, dir: &Path, lock_path: &Path) -> Result<()> {
    let give_up = std::time::Instant::now() + LOCK_PATIENCE;
    let mut pause = Duration::from_millis(1);
    loop {
        match lock_file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Error::AlreadyOpen(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(io_error("lock", lock_path)(source));
            }
        }
    }
}

/// Opens the records of the ledger in `dir` for a repair and takes the directory's lock, held
/// while the returned lock file is: fails with [`Error::AlreadyOpen`] while a node has the
/// ledger open. The records are not created: a directory without them is no ledger to repair.
pub(crate) fn open_for_repair(dir: &Path) -> Result<(File, File)> {
    let records_path = dir.join(RECORDS_FILE);
    let records = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&records_path)
        .map_err(io_error("open", &records_path))?;
    let lock_file = open_data_file(dir, LOCK_FILE)?;
    lock_directory(&lock_file, dir, &dir.join(LOCK_FILE))?;
    Ok((records, lock_file))
}

/// Creates the temporary file `path` for writing a file that is then synced and renamed into
/// place. One left there by a crash was never renamed, so never read: it is emptied.
pub(crate) fn create_temporary(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(io_error("create", path))
}

/// Makes the directory's entries durable: files created, renamed or removed in it.
pub(crate) fn sync_directory(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_error("sync directory", dir))
}

struct Handle {
    shared: Arc<Shared>,
    sender: Option<mpsc::Sender<writer::AppendRequest>>,
    writer: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    /// `None` when the scrub is disabled.
    scrubber: Option<JoinHandle<()>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // The scrub stops within one chunk of reads, and has nothing to finish.
        self.shared.scrub.stop();
        if let Some(scrubber) = self.scrubber.take() {
            let _ = scrubber.join();
        }
        // Closing the channel lets the writer finish what is queued and exit; the checkpointer
        // then signs a last checkpoint so that a clean shutdown leaves every record covered.
        drop(self.sender.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        lock(&self.shared.checkpoint_control).stop = true;
        self.shared.checkpoint_wakeup.notify_all();
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
    }
}

/// An open ledger. Cloning is cheap and every clone shares the same writer; the ledger shuts down
/// (finishing queued appends and signing a final checkpoint) when the last clone is dropped, and
/// that drop waits for both threads, which takes a few fsyncs.
///
/// Reads (`read`, proofs, tiles) are positioned reads that normally hit the page cache; a server
/// expecting many reads of cold data may run them on a blocking thread pool.
#[derive(Clone)]
pub struct Ledger {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("dir", &self.handle.shared.dir)
            .field("size", &self.size())
            .finish()
    }
}

impl Ledger {
    /// Opens the ledger in `dir`, creating it if needed and recovering from a crash: a torn tail
    /// of the records file is cut off (damage with a valid frame after it is not a torn tail, and
    /// refuses to open), derived files are checked and recomputed where needed, and the records
    /// must still match the stored checkpoints. A refused open changes no file.
    pub fn open(
        dir: impl AsRef<Path>,
        signer: NoteSigner,
        options: LedgerOptions,
    ) -> Result<Ledger> {
        let dir = dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io_error("create directory", &dir))?;
        let lock_path = dir.join(LOCK_FILE);
        let lock_file = open_data_file(&dir, LOCK_FILE)?;
        lock_directory(&lock_file, &dir, &lock_path)?;
        let created: Vec<PathBuf> = DATA_FILES
            .iter()
            .map(|name| dir.join(name))
            .filter(|path| !path.exists())
            .collect();
        let files = DataFiles::open(&dir)?;
        // Newly created files only survive a crash once their directory entries are durable.
        sync_directory(&dir)?;

        let verifier = signer.verifier();
        let recovered = recovery::load_checkpoints(&dir, &files.checkpoints, &verifier).and_then(
            |checkpoints| {
                let tree = recovery::recover_tree(&dir, &files, &checkpoints)?;
                Ok((checkpoints.book, tree))
            },
        );
        let (book, recovered) = match recovered {
            Ok(recovered) => recovered,
            Err(error) => {
                // Recovery changes no file before it decides to open, so a refusal leaves the
                // directory as it was but for the files created above, empty, and the lock.
                for path in &created {
                    if let Err(error) = std::fs::remove_file(path) {
                        tracing::warn!(path = %path.display(), %error, "removing a data file created by a refused open failed");
                    }
                }
                return Err(error);
            }
        };
        // Made only for records that opened: a directory refused as damaged gets its id (if it
        // has none yet) once it is repaired.
        let id = identity::load_or_create(&dir)?;

        let shared = Arc::new(Shared {
            dir,
            files,
            size: AtomicU64::new(recovered.size),
            upper: RwLock::new(recovered.upper),
            checkpoints: RwLock::new(book),
            checkpoint_control: Mutex::new(CheckpointControl::default()),
            checkpoint_wakeup: Condvar::new(),
            verifier_key: signer.verifier_key(),
            id,
            signer,
            failure: OnceLock::new(),
            scrub: scrub::ScrubState::default(),
            _lock: lock_file,
        });
        // Every open ledger has a checkpoint, so `latest_checkpoint` never has to say "none".
        checkpointer::write_checkpoint_if_needed(&shared)?;

        let (sender, receiver) = mpsc::channel();
        let records_file_length = shared
            .files
            .records
            .metadata()
            .map_err(io_error("inspect", &shared.path(RECORDS_FILE)))?
            .len();
        let writer_state = writer::WriterState::new(
            recovered.size,
            recovered.records_end,
            records_file_length,
            &recovered.partial_tile,
        );
        let writer = {
            let writer_shared = shared.clone();
            let max_batch_bytes = options.max_batch_bytes;
            let gather_window = options.group_commit_window;
            std::thread::Builder::new()
                .name("ledger-writer".into())
                .spawn(move || {
                    writer::run(
                        &writer_shared,
                        receiver,
                        writer_state,
                        max_batch_bytes,
                        gather_window,
                    );
                })
                .map_err(io_error("spawn the writer thread for", &shared.dir))?
        };
        let checkpointer = {
            let checkpointer_shared = shared.clone();
            let interval = options.checkpoint_interval;
            std::thread::Builder::new()
                .name("ledger-checkpointer".into())
                .spawn(move || checkpointer::run(&checkpointer_shared, interval))
                .map_err(io_error("spawn the checkpointer thread for", &shared.dir))?
        };
        let scrubber = match options.scrub_bytes_per_second {
            Some(bytes_per_second) if bytes_per_second > 0 => {
                let scrub_shared = shared.clone();
                let pass_pause = options.scrub_pass_pause;
                Some(
                    std::thread::Builder::new()
                        .name("ledger-scrub".into())
                        .spawn(move || scrub::run(&scrub_shared, bytes_per_second, pass_pause))
                        .map_err(io_error("spawn the scrub thread for", &shared.dir))?,
                )
            }
            _ => None,
        };
        Ok(Ledger {
            handle: Arc::new(Handle {
                shared,
                sender: Some(sender),
                writer: Some(writer),
                checkpointer: Some(checkpointer),
                scrubber,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    pub fn dir(&self) -> &Path {
        &self.shared().dir
    }

    /// The ledger's id: 32 lowercase hex digits, random, written into the directory when it was
    /// first opened and never changed, so that two ledgers have different ids even when one node
    /// key signs both; a salvage keeps it. Data derived from the ledger elsewhere (the node's
    /// store) is kept with it, to be checked against it.
    pub fn id(&self) -> &str {
        &self.shared().id
    }

    /// Appends one record and returns its index once it is durable. Dropping the future does not
    /// withdraw the record.
    pub async fn append(&self, record: Vec<u8>) -> Result<u64> {
        Ok(self.submit(vec![record], false, None).await?.start)
    }

    /// [`Ledger::append`], answered through `completions`, the mailbox of the calling thread:
    /// for many appenders on one single-threaded runtime, such as a gateway thread's calls.
    pub async fn append_via(&self, completions: &Completions, record: Vec<u8>) -> Result<u64> {
        Ok(self
            .submit(vec![record], false, Some(completions))
            .await?
            .start)
    }

    /// Appends records as consecutive entries and returns their indexes once all are durable.
    pub async fn append_batch(&self, records: Vec<Vec<u8>>) -> Result<Range<u64>> {
        self.submit(records, false, None).await
    }

    /// Appends one record and returns its index as soon as it is written in order, before it is
    /// durable. It becomes durable (and readable) with the sync of the next durable append, which
    /// comes after it in the ledger, or on its own within the group-commit window when none
    /// follows. For a record that a later durable one stands for, such as the exchanges of a
    /// scenario run before the run's own record: waiting for that one covers both. If the sync
    /// fails, the later durable append fails too.
    pub async fn append_ordered(&self, record: Vec<u8>) -> Result<u64> {
        Ok(self.submit(vec![record], true, None).await?.start)
    }

    /// [`Ledger::append_ordered`], answered through `completions` (see [`Ledger::append_via`]).
    pub async fn append_ordered_via(
        &self,
        completions: &Completions,
        record: Vec<u8>,
    ) -> Result<u64> {
        Ok(self
            .submit(vec![record], true, Some(completions))
            .await?
            .start)
    }

    async fn submit(
        &self,
        records: Vec<Vec<u8>>,
        ordered_only: bool,
        via: Option<&Completions>,
    ) -> Result<Range<u64>> {
        for record in &records {
            if record.is_empty() {
                return Err(Error::EmptyRecord);
            }
            if record.len() > MAX_RECORD_BYTES {
                return Err(Error::RecordTooLarge(record.len()));
            }
        }
        if records.is_empty() {
            let size = self.size();
            return Ok(size..size);
        }
        let (sender, answer) = oneshot::channel();
        let reply = completions::Reply {
            sender,
            mailbox: via.map(|completions| completions.mailbox.clone()),
        };
        let channel = self.handle.sender.as_ref().ok_or(Error::Closed)?;
        channel
            .send(writer::AppendRequest {
                records,
                reply,
                ordered_only,
                sent: std::time::Instant::now(),
            })
            .map_err(|_| Error::Closed)?;
        answer.await.map_err(|_| Error::Closed)?
    }

    /// The number of durable records, which is also the size of the tree over them.
    pub fn size(&self) -> u64 {
        self.shared().size()
    }

    /// Why appends are refused, if a write or sync of the ledger's files has failed, the
    /// writer's or the checkpointer's: from then on every append fails and no checkpoint is
    /// signed, until the ledger is opened again.
    pub fn failure(&self) -> Option<&str> {
        self.shared().failure.get().map(String::as_str)
    }

    /// What the background scrub has checked and the first damage it found, or `None` when the
    /// ledger was opened without a scrub.
    pub fn scrub_status(&self) -> Option<ScrubStatus> {
        self.handle
            .scrubber
            .is_some()
            .then(|| self.shared().scrub.status())
    }

    fn check_index(&self, index: u64) -> Result<u64> {
        let size = self.size();
        if index >= size {
            return Err(Error::IndexOutOfRange { index, size });
        }
        Ok(size)
    }

    fn check_tree_size(&self, tree_size: u64) -> Result<()> {
        let size = self.size();
        if tree_size > size {
            return Err(Error::TreeSizeOutOfRange { tree_size, size });
        }
        Ok(())
    }

    /// Reads one record; its frame checksum is checked.
    pub fn read(&self, index: u64) -> Result<Vec<u8>> {
        self.check_index(index)?;
        let offsets = self.shared().read_offsets(index, 1)?;
        Ok(self
            .shared()
            .read_frames(index, &offsets)?
            .pop()
            .expect("one frame was read"))
    }

    /// Reads consecutive records with one positioned read of their frames.
    pub fn read_range(&self, range: Range<u64>) -> Result<Vec<Vec<u8>>> {
        self.read_range_within(range, u64::MAX)
    }

    /// Reads consecutive records from `range.start` with one positioned read of their frames,
    /// but stops adding records once those read take `max_bytes` or more in the records file
    /// (each record counts with its 8-byte frame header). At least one record is read, so the
    /// result exceeds `max_bytes` by less than one record.
    pub fn read_range_within(&self, range: Range<u64>, max_bytes: u64) -> Result<Vec<Vec<u8>>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        self.check_index(range.end - 1)?;
        let count = usize::try_from(range.end - range.start).expect("a range of records in memory");
        let offsets = self.shared().read_offsets(range.start, count)?;
        let first = offsets[0];
        let within = offsets
            .iter()
            .take_while(|&&offset| offset.saturating_sub(first) < max_bytes)
            .count()
            .max(1);
        self.shared().read_frames(range.start, &offsets[..within])
    }

    pub fn leaf_hash(&self, index: u64) -> Result<Hash> {
        self.check_index(index)?;
        Ok(self.shared().read_leaf_hashes(index, 1)?[0])
    }

    /// The root of the tree of the first `tree_size` records.
    pub fn root(&self, tree_size: u64) -> Result<Hash> {
        self.check_tree_size(tree_size)?;
        self.shared().root(tree_size)
    }

    pub fn inclusion_proof(&self, index: u64, tree_size: u64) -> Result<Vec<Hash>> {
        self.check_tree_size(tree_size)?;
        merkle::inclusion_proof_from(
            &mut StoredNodes::new(self.shared(), tree_size),
            index,
            tree_size,
        )
    }

    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        self.check_tree_size(new_size)?;
        merkle::consistency_proof_from(
            &mut StoredNodes::new(self.shared(), new_size),
            old_size,
            new_size,
        )
    }

    /// The node's verifier key: `<name>+<key id>+<base64 key>`.
    pub fn verifier_key(&self) -> &str {
        &self.shared().verifier_key
    }

    /// The newest signed checkpoint.
    pub fn latest_checkpoint(&self) -> Checkpoint {
        read_guard(&self.shared().checkpoints)
            .latest
            .clone()
            .expect("open signs a checkpoint before returning")
    }

    /// The oldest stored checkpoint whose tree has at least `tree_size` records.
    pub fn checkpoint_at_or_after(&self, tree_size: u64) -> Result<Option<Checkpoint>> {
        Ok(checkpointer::checkpoints_from(self.shared(), tree_size, 1)?.pop())
    }

    /// Up to `limit` stored checkpoints whose trees have at least `from_size` records, oldest
    /// first, one per tree size, read from the checkpoints file in one pass.
    pub fn checkpoints_from(&self, from_size: u64, limit: usize) -> Result<Vec<Checkpoint>> {
        checkpointer::checkpoints_from(self.shared(), from_size, limit)
    }

    /// Returns a checkpoint covering every record appended before the call, signing one now if
    /// the latest does not.
    pub async fn checkpoint_now(&self) -> Result<Checkpoint> {
        let size = self.size();
        let latest = self.latest_checkpoint();
        if latest.tree_size >= size {
            return Ok(latest);
        }
        let (reply, answer) = oneshot::channel();
        lock(&self.shared().checkpoint_control).waiters.push(reply);
        self.shared().checkpoint_wakeup.notify_all();
        answer.await.map_err(|_| Error::Closed)?
    }

    /// A receipt for record `index`: its leaf hash, the oldest checkpoint covering it (signed now
    /// if there is none yet) and the inclusion proof to that checkpoint.
    pub async fn receipt(&self, index: u64) -> Result<Receipt> {
        self.check_index(index)?;
        let checkpoint = match self.checkpoint_at_or_after(index + 1)? {
            Some(checkpoint) => checkpoint,
            None => self.checkpoint_now().await?,
        };
        let inclusion_proof = self.inclusion_proof(index, checkpoint.tree_size)?;
        Ok(Receipt {
            index,
            leaf_hash: self.leaf_hash(index)?,
            checkpoint: checkpoint.note,
            inclusion_proof,
        })
    }

    /// The tlog-tiles hash tile `tile/<level>/<index>[.p/<width>]`: `width` concatenated 32-byte
    /// hashes, 256 for a full tile. Partial tiles exist only at the right edge of the tree.
    pub fn tile(&self, level: u8, index: u64, width: u16) -> Result<Vec<u8>> {
        let size = self.size();
        let not_available = || Error::TileNotAvailable {
            level,
            index,
            width,
            size,
        };
        let tree_level = u32::from(level) * TILE_HEIGHT;
        if tree_level >= 64 {
            return Err(not_available());
        }
        let complete_nodes = size >> tree_level;
        let start = tile_start(index, width, complete_nodes).ok_or_else(not_available)?;
        if level == 0 {
            let hashes = self.shared().read_leaf_hashes(start, usize::from(width))?;
            return Ok(hashes.as_flattened().to_vec());
        }
        let upper = read_guard(&self.shared().upper);
        let nodes = upper
            .levels
            .get((tree_level - TILE_HEIGHT) as usize)
            .and_then(|nodes| nodes.get(start as usize..start as usize + usize::from(width)))
            .ok_or(Error::MissingNode {
                level: tree_level,
                index: start,
            })?;
        Ok(nodes.as_flattened().to_vec())
    }

    /// The tlog-tiles entry bundle `tile/entries/<index>[.p/<width>]`: each record as a big-endian
    /// u16 length followed by its bytes.
    pub fn entry_bundle(&self, index: u64, width: u16) -> Result<Vec<u8>> {
        let size = self.size();
        let start = tile_start(index, width, size).ok_or(Error::EntryBundleNotAvailable {
            index,
            width,
            size,
        })?;
        let records = self.read_range(start..start + u64::from(width))?;
        Ok(encode_entry_bundle(records.iter().map(Vec::as_slice)))
    }
}

/// The first node of tile `index` if a tile of `width` can be served when `complete_nodes` nodes
/// of its level exist: full tiles once complete, partial ones only at the right edge.
fn tile_start(index: u64, width: u16, complete_nodes: u64) -> Option<u64> {
    let start = index.checked_mul(TILE_WIDTH)?;
    let width = u64::from(width);
    let servable = if width == TILE_WIDTH {
        start.checked_add(TILE_WIDTH)? <= complete_nodes
    } else {
        (1..TILE_WIDTH).contains(&width)
            && start / TILE_WIDTH == complete_nodes / TILE_WIDTH
            && start + width <= complete_nodes
    };
    servable.then_some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoints_are_found_through_the_sparse_index_before_and_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let signer = || {
            NoteSigner::new(
                "cn-js-nanjing",
                ed25519_dalek::SigningKey::from_bytes(&[2; 32]),
            )
            .unwrap()
        };
        let options = || LedgerOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..LedgerOptions::default()
        };
        let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
        // Checkpoints at sizes 0, 2, 4, ..., 42: 22 of them, so the index has several entries.
        for step in 1..=21u64 {
            ledger
                .append_batch(vec![vec![step as u8; 10], vec![0; 3]])
                .await
                .unwrap();
            assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, step * 2);
        }
        let check = |ledger: &Ledger| {
            assert_eq!(read_guard(&ledger.shared().checkpoints).count, 22);
            for size in 0..=42u64 {
                let found = ledger.checkpoint_at_or_after(size).unwrap().unwrap();
                assert_eq!(found.tree_size, size.next_multiple_of(2), "size {size}");
                assert_eq!(found.root, ledger.root(found.tree_size).unwrap());
            }
            assert!(ledger.checkpoint_at_or_after(43).unwrap().is_none());
            // Lists from any size, across the index's strides, in one pass.
            for from_size in 0..=44u64 {
                for limit in [1, 3, 5, 1000] {
                    let sizes: Vec<u64> = ledger
                        .checkpoints_from(from_size, limit)
                        .unwrap()
                        .iter()
                        .map(|checkpoint| checkpoint.tree_size)
                        .collect();
                    let expected: Vec<u64> = (from_size.next_multiple_of(2)..=42)
                        .step_by(2)
                        .take(limit)
                        .collect();
                    assert_eq!(sizes, expected, "from {from_size}, at most {limit}");
                }
            }
        };
        check(&ledger);
        drop(ledger);
        let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
        check(&ledger);
    }

    #[test]
    fn tiles_are_servable_full_when_complete_and_partial_only_at_the_edge() {
        assert_eq!(tile_start(0, 256, 256), Some(0));
        assert_eq!(tile_start(0, 256, 255), None);
        assert_eq!(tile_start(0, 255, 255), Some(0));
        assert_eq!(tile_start(0, 100, 255), Some(0));
        assert_eq!(tile_start(0, 100, 256), None);
        assert_eq!(tile_start(1, 1, 257), Some(256));
        assert_eq!(tile_start(1, 2, 257), None);
        assert_eq!(tile_start(0, 0, 10), None);
        assert_eq!(tile_start(u64::MAX, 256, u64::MAX), None);
    }
}
