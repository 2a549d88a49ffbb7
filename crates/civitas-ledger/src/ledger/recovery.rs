//! Opening a ledger after a clean shutdown or a crash.
//!
//! What a crash can leave behind, and what is done about it:
//! - `records.dat`: everything acknowledged was fdatasynced, so only the writes since the last
//!   sync, at the end of the records, can be torn. Frames are scanned from the end of the last
//!   checkpointed record. At the first torn or corrupt frame: if all that follows is zero, that is
//!   the zero-filled space the writer keeps ahead of its records, left in place; if no valid frame
//!   starts anywhere after it, it is a torn write, cut off with everything after it; if a valid
//!   frame follows, the damage lies among records that were synced, and perhaps acknowledged,
//!   after it: that is corruption, and the ledger refuses to open rather than cut them off. An
//!   operator can have them cut off with `salvage_records`, which keeps the cut bytes and finds
//!   the damage with the same scan (`scan_records`); `verify_dir` splits the frames and judges
//!   the damage with the same functions (`frame::split_frames`, `frame::records_tail`).
//! - derived files: written without fsync, so their tail may be missing or garbage. They were
//!   synced before the latest checkpoint was written, so their prefix up to that checkpoint is
//!   trusted once a spot check passes (the last checkpointed record's frame and leaf hash, the
//!   level-4 nodes of the last two tiles, and the checkpoint root recomputed from the stored tile
//!   roots and leaf hashes); beyond it they are recomputed from the records. If the spot check
//!   fails they are rebuilt from the first record. What opening writes to them it syncs.
//! - `checkpoints.dat`: each checkpoint is synced before the next is written, so only a torn last
//!   frame is cut off: one whose bytes fit within the length its header declares, or are all
//!   zero. Damage with more data after it is an error.
//!
//! Every checkpoint the records are replayed past is compared with the recomputed root, and the
//! records must reach the latest checkpoint's size: records that no longer match a signed
//! checkpoint are an error, never silently dropped.
//!
//! Nothing is changed until all of that has been decided: the checkpoints, the spot check and the
//! replay only read, so that a refused open leaves every file as it was for an operator,
//! `salvage_records` or a forensic copy. Only then are the derived files cut to the trusted
//! prefix and the replayed entries written after it (kept in memory while the replay is short,
//! read from the records again when it is not), and the torn tails of the records and the
//! checkpoints cut off. A crash in between is one more crash before an open: what is written is
//! what an open would write, and the torn tails are found again.

use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    CHECKPOINTS_FILE, Checkpoint, CheckpointBook, CheckpointRef, DataFiles, Error, GROUP_WIDTH,
    HASH_BYTES, LEAF_HASHES_FILE, LEVEL4_HASHES_FILE, OFFSET_BYTES, OFFSETS_FILE, RECORDS_FILE,
    Result, TILE_HASHES_FILE, UpperLevels, io_error,
};
use crate::checkpoint_file::{CheckpointFileError, CheckpointReader, StoredNote};
use crate::frame::{
    ChunkBuffer, FRAME_HEADER_BYTES, FrameParse, FrameSplit, MAX_RECORD_PAYLOAD, RecordsTail,
    frame_checksum, parse_frame, records_tail, split_frames,
};
use crate::merkle::{self, Hash, NodeSource, leaf_hash, perfect_root};
use crate::note::{NoteVerifier, verify_checkpoint};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};

/// Derived data of up to this many replayed records is kept in memory until the ledger is known
/// to open, and written in steps of this many when the records are read again.
pub(crate) const REPLAY_FLUSH_RECORDS: usize = 1 << 16;

pub(crate) fn checkpoint_file_error(dir: &Path) -> impl Fn(CheckpointFileError) -> Error + use<> {
    let path = dir.join(CHECKPOINTS_FILE);
    move |error| match error {
        CheckpointFileError::Io(source) => io_error("read", &path)(source),
        CheckpointFileError::Corrupt { offset, reason } => {
            Error::CorruptCheckpoints { offset, reason }
        }
    }
}

pub(crate) fn parse_stored(stored: StoredNote) -> Result<Checkpoint> {
    let offset = stored.offset;
    Checkpoint::parse_trusted(stored.note).map_err(|error| Error::CorruptCheckpoints {
        offset,
        reason: error.to_string(),
    })
}

/// The stored checkpoints, read but not yet changed.
pub(crate) struct LoadedCheckpoints {
    pub(crate) book: CheckpointBook,
    /// Where a torn last write starts, which opening cuts off once it has decided to open.
    torn_tail_at: Option<u64>,
}

/// Reads every stored checkpoint into the in-memory book, notes a torn last write and checks
/// that the latest checkpoint was signed by this node's key, so that a misconfigured key is
/// noticed before anything is signed with it. Changes nothing.
pub(crate) fn load_checkpoints(
    dir: &Path,
    file: &File,
    verifier: &NoteVerifier,
) -> Result<LoadedCheckpoints> {
    let path = dir.join(CHECKPOINTS_FILE);
    let length = file.metadata().map_err(io_error("inspect", &path))?.len();
    let file_error = checkpoint_file_error(dir);
    let mut reader = CheckpointReader::new(file, 0, 0, length);
    let mut book = CheckpointBook::default();
    while let Some(stored) = reader.next_note().map_err(&file_error)? {
        let offset = stored.offset;
        let checkpoint = parse_stored(stored)?;
        check_order(book.latest.as_ref(), &checkpoint, offset)?;
        book.record(checkpoint, offset, reader.offset());
    }
    let torn_tail_at = reader.torn_tail_at();
    if let Some(latest) = &book.latest {
        verify_checkpoint(&latest.note, verifier).map_err(Error::CheckpointKey)?;
    }
    Ok(LoadedCheckpoints { book, torn_tail_at })
}

/// Checkpoint sizes never decrease: a tree only grows.
fn check_order(previous: Option<&Checkpoint>, checkpoint: &Checkpoint, offset: u64) -> Result<()> {
    match previous {
        Some(previous) if checkpoint.tree_size < previous.tree_size => {
            Err(Error::CorruptCheckpoints {
                offset,
                reason: format!(
                    "tree size {} follows the larger {}",
                    checkpoint.tree_size, previous.tree_size
                ),
            })
        }
        _ => Ok(()),
    }
}

/// The latest stored checkpoint and its number, read without changing the file: a torn last
/// frame is left for opening to cut off. Damage before other frames is an error. For repairs,
/// which need no key: the checkpoints are not verified.
pub(crate) fn latest_checkpoint(dir: &Path) -> Result<(Option<Checkpoint>, usize)> {
    let path = dir.join(CHECKPOINTS_FILE);
    let file = File::open(&path).map_err(io_error("open", &path))?;
    let length = file.metadata().map_err(io_error("inspect", &path))?.len();
    let file_error = checkpoint_file_error(dir);
    let mut reader = CheckpointReader::new(&file, 0, 0, length);
    let mut latest = None;
    let mut ordinal = 0;
    while let Some(stored) = reader.next_note().map_err(&file_error)? {
        ordinal = stored.ordinal;
        latest = Some(parse_stored(stored)?);
    }
    Ok((latest, ordinal))
}

/// The stored checkpoints a replay must check, in order: none when the derived files were
/// trusted up to the latest checkpoint, all of them (streamed from the file) when rebuilding.
pub(crate) struct CheckpointChecks<'a> {
    reader: Option<CheckpointReader<'a>>,
    next: Option<(usize, Checkpoint)>,
    file_error: Box<dyn Fn(CheckpointFileError) -> Error + 'a>,
    /// How many checkpoints matched the tree.
    pub(crate) matched: usize,
}

impl<'a> CheckpointChecks<'a> {
    /// Checks the checkpoints `reader` reads, or none.
    pub(crate) fn new(dir: &Path, reader: Option<CheckpointReader<'a>>) -> Result<Self> {
        let mut checks = CheckpointChecks {
            reader,
            next: None,
            file_error: Box::new(checkpoint_file_error(dir)),
            matched: 0,
        };
        checks.advance()?;
        Ok(checks)
    }

    fn advance(&mut self) -> Result<()> {
        let previous = self.next.take();
        if let Some(reader) = &mut self.reader
            && let Some(stored) = reader.next_note().map_err(&self.file_error)?
        {
            let (ordinal, offset) = (stored.ordinal, stored.offset);
            let checkpoint = parse_stored(stored)?;
            check_order(
                previous.as_ref().map(|(_, previous)| previous),
                &checkpoint,
                offset,
            )?;
            self.next = Some((ordinal, checkpoint));
        }
        Ok(())
    }

    /// Compares every checkpoint of the tree's current size with its root.
    pub(crate) fn check(&mut self, tree: &RecoveredTree) -> Result<()> {
        while let Some((ordinal, checkpoint)) = &self.next {
            debug_assert!(checkpoint.tree_size >= tree.size);
            if checkpoint.tree_size != tree.size {
                break;
            }
            if tree.root()? != checkpoint.root {
                return Err(Error::CheckpointMismatch {
                    ordinal: *ordinal,
                    tree_size: tree.size,
                });
            }
            self.matched += 1;
            self.advance()?;
        }
        Ok(())
    }
}

#[derive(Clone)]
pub(crate) struct RecoveredTree {
    pub(crate) size: u64,
    pub(crate) records_end: u64,
    pub(crate) partial_tile: Vec<Hash>,
    pub(crate) upper: UpperLevels,
}

impl RecoveredTree {
    pub(crate) fn empty() -> RecoveredTree {
        RecoveredTree {
            size: 0,
            records_end: 0,
            partial_tile: Vec::new(),
            upper: UpperLevels::default(),
        }
    }

    pub(crate) fn root(&self) -> Result<Hash> {
        let mut nodes = MemoryNodes {
            upper: &self.upper,
            partial_tile: &self.partial_tile,
            partial_tile_start: self.size - self.partial_tile.len() as u64,
        };
        merkle::root_from(&mut nodes, self.size)
    }

    /// Adds a leaf; returns the level-4 node and the tile root it completes, if any.
    pub(crate) fn push_leaf(
        &mut self,
        leaf: Hash,
        frame_bytes: u64,
    ) -> (Option<Hash>, Option<Hash>) {
        self.partial_tile.push(leaf);
        self.size += 1;
        self.records_end += frame_bytes;
        let filled = self.partial_tile.len();
        if !(filled as u64).is_multiple_of(GROUP_WIDTH) {
            return (None, None);
        }
        let group_root = perfect_root(&self.partial_tile[filled - GROUP_WIDTH as usize..]);
        if filled as u64 != TILE_WIDTH {
            return (Some(group_root), None);
        }
        let tile_root = perfect_root(&self.partial_tile);
        self.upper.push_tile_root(tile_root);
        self.partial_tile.clear();
        (Some(group_root), Some(tile_root))
    }
}

/// The right edge of the tree held in memory while opening: upper levels plus the leaf hashes of
/// the incomplete last tile, which is all a root needs.
struct MemoryNodes<'a> {
    upper: &'a UpperLevels,
    partial_tile: &'a [Hash],
    partial_tile_start: u64,
}

impl NodeSource for MemoryNodes<'_> {
    type Error = Error;

    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash> {
        if level >= TILE_HEIGHT {
            return self
                .upper
                .node(level, index)
                .ok_or(Error::MissingNode { level, index });
        }
        let start = (index << level)
            .checked_sub(self.partial_tile_start)
            .ok_or(Error::MissingNode { level, index })? as usize;
        self.partial_tile
            .get(start..start + (1 << level))
            .map(perfect_root)
            .ok_or(Error::MissingNode { level, index })
    }
}

/// Recovers the tree: trusts the derived files up to the latest checkpoint if they pass the spot
/// check, replays the records after that and checks the checkpoints. Only once it has decided
/// that the ledger opens does it change any file: it rewrites the derived files past the trusted
/// prefix, cuts off a torn tail of the records (damage with no valid frame after it) and a torn
/// last checkpoint write. A refusal leaves every file as it was.
pub(crate) fn recover_tree(
    dir: &Path,
    files: &DataFiles,
    checkpoints: &LoadedCheckpoints,
) -> Result<RecoveredTree> {
    let book = &checkpoints.book;
    let checkpointed_size = book.latest.as_ref().map_or(0, |latest| latest.tree_size);
    let trusted = match &book.latest {
        Some(latest) if latest.tree_size > 0 => {
            match trusted_prefix(files, latest.tree_size, &latest.root) {
                Ok(Some(tree)) => Some(tree),
                Ok(None) => None,
                Err(error) => {
                    tracing::warn!(%error, "reading the derived ledger files failed");
                    None
                }
            }
        }
        _ => Some(RecoveredTree::empty()),
    };
    let rebuilding = trusted.is_none();
    let mut tree = trusted.unwrap_or_else(|| {
        tracing::warn!(
            checkpointed_size,
            "derived ledger files do not match the latest checkpoint; rebuilding them from the records"
        );
        RecoveredTree::empty()
    });
    // A trusted prefix already matched the latest checkpoint, and no checkpoint lies beyond it.
    let mut checks = CheckpointChecks::new(
        dir,
        rebuilding.then(|| CheckpointReader::new(&files.checkpoints, 0, 0, book.file_end)),
    )?;
    checks.check(&tree)?;

    let records_path = dir.join(RECORDS_FILE);
    let records_length = files
        .records
        .metadata()
        .map_err(io_error("inspect", &records_path))?
        .len();

    // The replay is kept in memory while it is short; a longer one is read again to write it
    // once the ledger is known to open, rather than written before that is decided.
    let start = tree.clone();
    let mut replayed = DerivedData::after(&start);
    let mut replay_kept = true;
    let latest = CheckpointRef {
        ordinal: book.count.saturating_sub(1),
        tree_size: checkpointed_size,
    };
    let torn_records = replay_records(
        &files.records,
        &records_path,
        &mut tree,
        &mut checks,
        latest,
        |offset, leaf, nodes| {
            if replay_kept {
                replayed.push(offset, leaf, nodes);
                if replayed.records() > REPLAY_FLUSH_RECORDS {
                    replay_kept = false;
                    replayed = DerivedData::after(&start);
                }
            }
            Ok(())
        },
    )?;

    // The ledger opens: only from here on is anything written.
    for ((file, (name, entry_bytes)), entries) in files
        .derived()
        .into_iter()
        .zip(DERIVED_FILES)
        .zip(derived_entries(start.size))
    {
        file.set_len(entries * entry_bytes)
            .map_err(io_error("truncate", &dir.join(name)))?;
    }
    if replay_kept {
        replayed.flush(write_derived(dir, files))?;
    } else {
        rewrite_replayed(dir, files, start, &tree)?;
    }
    // What opening wrote is made durable before the ledger serves from it: after a spot check
    // that failed, entries below the latest checkpoint were rewritten, and a crash before the
    // next checkpoint's sync must not bring back the damaged ones that the next opening's spot
    // check, reading only the end of the prefix, would trust.
    for (file, (name, _)) in files.derived().into_iter().zip(DERIVED_FILES) {
        file.sync_data()
            .map_err(io_error("sync", &dir.join(name)))?;
    }
    if let Some(reason) = torn_records {
        tracing::warn!(
            index = tree.size,
            offset = tree.records_end,
            bytes = records_length - tree.records_end,
            %reason,
            "cutting off a torn record write"
        );
        files
            .records
            .set_len(tree.records_end)
            .and_then(|()| files.records.sync_data())
            .map_err(io_error("truncate", &records_path))?;
    }
    if let Some(torn_at) = checkpoints.torn_tail_at {
        let path = dir.join(CHECKPOINTS_FILE);
        let length = files
            .checkpoints
            .metadata()
            .map_err(io_error("inspect", &path))?
            .len();
        tracing::warn!(
            offset = torn_at,
            bytes = length - torn_at,
            "cutting off a torn checkpoint write"
        );
        files
            .checkpoints
            .set_len(torn_at)
            .and_then(|()| files.checkpoints.sync_data())
            .map_err(io_error("truncate", &path))?;
    }
    if book.count == 0 && tree.size > 0 {
        tracing::warn!(
            records = tree.size,
            "ledger has records but no checkpoints; signing a new checkpoint over them"
        );
    }
    Ok(tree)
}

/// Replays the records after `tree` into it, from its end to the first torn or corrupt frame,
/// handing each record's frame offset, leaf hash and the level-4 node and tile root it completes
/// to `on_record`, and comparing every checkpoint `checks` holds with the root at its size. Then
/// judges where the records end against `latest`, the latest stored checkpoint: damage among
/// the records it covers, damage with a valid frame after it, and records that stop short of it
/// are errors. Returns why the bytes after the records are a torn write, if they are one, which
/// opening cuts off. Changes no file: opening a ledger and rebuilding its derived files replay
/// this way.
pub(crate) fn replay_records(
    records: &File,
    records_path: &Path,
    tree: &mut RecoveredTree,
    checks: &mut CheckpointChecks,
    latest: CheckpointRef,
    mut on_record: impl FnMut(u64, Hash, (Option<Hash>, Option<Hash>)) -> Result<()>,
) -> Result<Option<String>> {
    let scan = scan_records(
        records,
        records_path,
        tree.records_end,
        |offset, payload| {
            debug_assert_eq!(offset, tree.records_end);
            let leaf = leaf_hash(payload);
            let nodes = tree.push_leaf(leaf, (FRAME_HEADER_BYTES + payload.len()) as u64);
            checks.check(tree)?;
            on_record(offset, leaf, nodes)
        },
    )?;
    debug_assert_eq!(scan.end, tree.records_end);

    let torn = match scan.tail {
        RecordsTail::Clean => None,
        RecordsTail::Torn { reason } | RecordsTail::DamageBeforeValidFrames { reason, .. }
            if tree.size < latest.tree_size =>
        {
            return Err(Error::CorruptRecord {
                index: tree.size,
                reason,
            });
        }
        RecordsTail::DamageBeforeValidFrames { reason, next_frame } => {
            return Err(Error::DamageBeforeValidFrames {
                index: tree.size,
                offset: tree.records_end,
                reason,
                next_frame,
            });
        }
        RecordsTail::Torn { reason } => Some(reason),
    };
    if tree.size < latest.tree_size {
        return Err(Error::RecordsMissing {
            ordinal: latest.ordinal,
            tree_size: latest.tree_size,
            found: tree.size,
        });
    }
    Ok(torn)
}

/// Reads the records replayed from `tree` (the trusted prefix) up to `replayed` again, and
/// writes their derived data in steps.
fn rewrite_replayed(
    dir: &Path,
    files: &DataFiles,
    mut tree: RecoveredTree,
    replayed: &RecoveredTree,
) -> Result<()> {
    let records_path = dir.join(RECORDS_FILE);
    let mut derived = DerivedData::after(&tree);
    let mut write = write_derived(dir, files);
    let end = read_frames(
        &files.records,
        &records_path,
        tree.records_end,
        |offset, payload| {
            let leaf = leaf_hash(payload);
            let nodes = tree.push_leaf(leaf, (FRAME_HEADER_BYTES + payload.len()) as u64);
            derived.push(offset, leaf, nodes);
            if derived.records() >= REPLAY_FLUSH_RECORDS {
                derived.flush(&mut write)?;
            }
            Ok(())
        },
    )?
    .0;
    debug_assert_eq!((tree.size, end), (replayed.size, replayed.records_end));
    derived.flush(write)
}

/// The files derived from the records, in the order [`DerivedData::flush`] numbers them, each
/// with the bytes of one entry.
pub(crate) const DERIVED_FILES: [(&str, u64); 4] = [
    (OFFSETS_FILE, OFFSET_BYTES),
    (LEAF_HASHES_FILE, HASH_BYTES),
    (LEVEL4_HASHES_FILE, HASH_BYTES),
    (TILE_HASHES_FILE, HASH_BYTES),
];

/// How many entries each derived file holds for a tree of `size` records: an offset and a leaf
/// hash per record, a level-4 node per full group and a tile root per full tile.
pub(crate) fn derived_entries(size: u64) -> [u64; 4] {
    [size, size, size / GROUP_WIDTH, size / TILE_WIDTH]
}

/// Writes derived bytes, as [`DerivedData::flush`] hands them, into the ledger's files.
fn write_derived<'a>(
    dir: &'a Path,
    files: &'a DataFiles,
) -> impl FnMut(usize, u64, &[u8]) -> Result<()> + 'a {
    let targets = files.derived();
    move |file, at, bytes| {
        targets[file]
            .write_all_at(bytes, at)
            .map_err(io_error("write", &dir.join(DERIVED_FILES[file].0)))
    }
}

/// Derived data recomputed from replayed records, not yet written: the entries of the records
/// from `size` on, level-4 nodes from `groups` and tile roots from `tiles`.
pub(crate) struct DerivedData {
    size: u64,
    groups: u64,
    tiles: u64,
    offsets: Vec<u8>,
    leaves: Vec<u8>,
    group_roots: Vec<Hash>,
    tile_roots: Vec<Hash>,
}

impl DerivedData {
    /// Nothing yet, for the records after those of `tree`.
    pub(crate) fn after(tree: &RecoveredTree) -> DerivedData {
        DerivedData {
            size: tree.size,
            groups: tree.size / GROUP_WIDTH,
            tiles: tree.size / TILE_WIDTH,
            offsets: Vec::new(),
            leaves: Vec::new(),
            group_roots: Vec::new(),
            tile_roots: Vec::new(),
        }
    }

    /// Adds the next record's offset and leaf hash, and the level-4 node and tile root it
    /// completes, as `RecoveredTree::push_leaf` returns them.
    pub(crate) fn push(
        &mut self,
        offset: u64,
        leaf: Hash,
        (group_root, tile_root): (Option<Hash>, Option<Hash>),
    ) {
        self.offsets.extend_from_slice(&offset.to_le_bytes());
        self.leaves.extend_from_slice(&leaf);
        self.group_roots.extend(group_root);
        self.tile_roots.extend(tile_root);
    }

    pub(crate) fn records(&self) -> usize {
        self.leaves.len() / HASH_BYTES as usize
    }

    /// Hands what was pushed, after what was handed before, to `sink` as the number of its file
    /// in [`DERIVED_FILES`], its byte offset in that file and the bytes; then forgets it.
    pub(crate) fn flush(
        &mut self,
        mut sink: impl FnMut(usize, u64, &[u8]) -> Result<()>,
    ) -> Result<()> {
        sink(0, self.size * OFFSET_BYTES, &self.offsets)?;
        sink(1, self.size * HASH_BYTES, &self.leaves)?;
        sink(2, self.groups * HASH_BYTES, self.group_roots.as_flattened())?;
        sink(3, self.tiles * HASH_BYTES, self.tile_roots.as_flattened())?;
        self.size += self.records() as u64;
        self.groups += self.group_roots.len() as u64;
        self.tiles += self.tile_roots.len() as u64;
        self.offsets.clear();
        self.leaves.clear();
        self.group_roots.clear();
        self.tile_roots.clear();
        Ok(())
    }
}

/// Where a scan of the records file stopped, and what lies there.
#[derive(Debug)]
pub(crate) struct RecordsScan {
    /// Where the last valid frame read ends (the first torn or corrupt frame starts here).
    pub(crate) end: u64,
    pub(crate) tail: RecordsTail,
}

/// Bytes of the records file read per step of a scan.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

/// Reads the record frames of `records` from byte `start`, handing each valid frame's offset and
/// payload to `on_frame`, up to the end of the file or the first torn or corrupt frame, and says
/// what lies from there on. Opening the ledger and salvaging it both find damage this way, and
/// `verify_dir` splits frames and judges the tail with the same functions.
pub(crate) fn scan_records(
    records: &File,
    path: &Path,
    start: u64,
    on_frame: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<RecordsScan> {
    let (end, damage) = read_frames(records, path, start, on_frame)?;
    let Some(reason) = damage else {
        return Ok(RecordsScan {
            end,
            tail: RecordsTail::Clean,
        });
    };
    let tail = records_tail(records, end, reason).map_err(io_error("read", path))?;
    Ok(RecordsScan { end, tail })
}

/// The frame walk of [`scan_records`], without judging what follows the first torn or corrupt
/// frame: where the valid frames end, and why the bytes there are not one, if the file goes on.
fn read_frames(
    records: &File,
    path: &Path,
    start: u64,
    mut on_frame: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<(u64, Option<String>)> {
    let mut reader = records;
    reader
        .seek(SeekFrom::Start(start))
        .map_err(io_error("seek in", path))?;
    let mut buffer = ChunkBuffer::new(SCAN_CHUNK_BYTES);
    let mut end_of_file = buffer
        .fill(&mut reader, 0, SCAN_CHUNK_BYTES)
        .map_err(io_error("read", path))?;
    // File offset of the buffer's first byte.
    let mut buffer_offset = start;
    let mut frames = Vec::new();
    loop {
        frames.clear();
        let valid = buffer.valid();
        let mut split = split_frames(valid, end_of_file, &mut frames);
        for &(payload_start, length) in &frames {
            let payload = &valid[payload_start..payload_start + length];
            let frame_start = payload_start - FRAME_HEADER_BYTES;
            if crc32c::crc32c(payload) != frame_checksum(valid, payload_start) {
                split = FrameSplit {
                    end: frame_start,
                    damage: Some("frame checksum mismatch".to_owned()),
                };
                break;
            }
            on_frame(buffer_offset + frame_start as u64, payload)?;
        }
        if split.damage.is_some() || end_of_file {
            return Ok((buffer_offset + split.end as u64, split.damage));
        }
        let valid_length = valid.len();
        buffer.bytes.copy_within(split.end..valid_length, 0);
        buffer_offset += split.end as u64;
        end_of_file = buffer
            .fill(&mut reader, valid_length - split.end, SCAN_CHUNK_BYTES)
            .map_err(io_error("read", path))?;
    }
}

/// Rebuilds the in-memory tree up to `tree_size` from the derived files if they agree with the
/// checkpoint of that size; `None` when they do not.
fn trusted_prefix(
    files: &DataFiles,
    tree_size: u64,
    root: &Hash,
) -> std::io::Result<Option<RecoveredTree>> {
    let full_tiles = tree_size / TILE_WIDTH;
    let full_groups = tree_size / GROUP_WIDTH;
    let long_enough = files.offsets.metadata()?.len() >= tree_size * OFFSET_BYTES
        && files.leaf_hashes.metadata()?.len() >= tree_size * HASH_BYTES
        && files.level4_hashes.metadata()?.len() >= full_groups * HASH_BYTES
        && files.tile_hashes.metadata()?.len() >= full_tiles * HASH_BYTES;
    if !long_enough {
        return Ok(None);
    }
    let last = tree_size - 1;
    let mut offset = [0u8; OFFSET_BYTES as usize];
    files
        .offsets
        .read_exact_at(&mut offset, last * OFFSET_BYTES)?;
    let offset = u64::from_le_bytes(offset);
    let mut header = [0u8; FRAME_HEADER_BYTES];
    if files.records.read_exact_at(&mut header, offset).is_err() {
        return Ok(None);
    }
    let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes")) as usize;
    if length == 0 || length > MAX_RECORD_PAYLOAD {
        return Ok(None);
    }
    let mut frame = header.to_vec();
    frame.resize(FRAME_HEADER_BYTES + length, 0);
    if files
        .records
        .read_exact_at(
            &mut frame[FRAME_HEADER_BYTES..],
            offset + FRAME_HEADER_BYTES as u64,
        )
        .is_err()
    {
        return Ok(None);
    }
    let FrameParse::Valid { payload } = parse_frame(&frame, MAX_RECORD_PAYLOAD) else {
        return Ok(None);
    };
    let mut stored_leaf = [0u8; 32];
    files
        .leaf_hashes
        .read_exact_at(&mut stored_leaf, last * HASH_BYTES)?;
    if leaf_hash(payload) != stored_leaf {
        return Ok(None);
    }

    let mut tile_roots = vec![[0u8; 32]; full_tiles as usize];
    files
        .tile_hashes
        .read_exact_at(tile_roots.as_flattened_mut(), 0)?;
    // The level-4 nodes of the last full tile must hash to its stored root, and those of the
    // partial tile to its stored leaves.
    let groups_per_tile = (TILE_WIDTH / GROUP_WIDTH) as usize;
    let first_checked_group = full_tiles.saturating_sub(1) * (TILE_WIDTH / GROUP_WIDTH);
    let mut group_roots = vec![[0u8; 32]; (full_groups - first_checked_group) as usize];
    files.level4_hashes.read_exact_at(
        group_roots.as_flattened_mut(),
        first_checked_group * HASH_BYTES,
    )?;
    let (last_full_tile_groups, partial_tile_groups) = if full_tiles > 0 {
        group_roots.split_at(groups_per_tile)
    } else {
        group_roots.split_at(0)
    };
    if let Some(last_tile_root) = tile_roots.last()
        && perfect_root(last_full_tile_groups) != *last_tile_root
    {
        return Ok(None);
    }
    let mut upper = UpperLevels::default();
    for tile_root in tile_roots {
        upper.push_tile_root(tile_root);
    }
    let partial_start = full_tiles * TILE_WIDTH;
    let mut partial_tile = vec![[0u8; 32]; (tree_size - partial_start) as usize];
    files
        .leaf_hashes
        .read_exact_at(partial_tile.as_flattened_mut(), partial_start * HASH_BYTES)?;
    let recomputed_groups = partial_tile
        .chunks_exact(GROUP_WIDTH as usize)
        .map(perfect_root);
    if !recomputed_groups.eq(partial_tile_groups.iter().copied()) {
        return Ok(None);
    }
    let tree = RecoveredTree {
        size: tree_size,
        records_end: offset + (FRAME_HEADER_BYTES + length) as u64,
        partial_tile,
        upper,
    };
    match tree.root() {
        Ok(recomputed) if recomputed == *root => Ok(Some(tree)),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::encode_frame;

    fn payload(index: usize) -> Vec<u8> {
        format!("{index:05}").repeat(2000 + index % 7).into_bytes()
    }

    /// A file of `count` record frames of about 10 KB, so that they span several chunks of a
    /// scan, and their offsets.
    fn frames_file(count: usize) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for index in 0..count {
            offsets.push(bytes.len() as u64);
            encode_frame(&payload(index), &mut bytes);
        }
        (bytes, offsets)
    }

    /// Scans `bytes` from frame `first` on; the offsets of the frames read, and the scan.
    fn scan_from(bytes: &[u8], offsets: &[u64], first: usize) -> (Vec<u64>, RecordsScan) {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        let mut seen = Vec::new();
        let path = Path::new("records.dat");
        let scan = scan_records(&file, path, offsets[first], |offset, read| {
            assert_eq!(read, payload(first + seen.len()));
            seen.push(offset);
            Ok(())
        })
        .unwrap();
        (seen, scan)
    }

    #[test]
    fn a_scan_across_chunks_stops_at_the_first_damage_and_judges_what_follows() {
        let (clean, offsets) = frames_file(300);
        assert!(clean.len() > 2 * SCAN_CHUNK_BYTES);

        let zero_filled = [clean.as_slice(), &[0; 5000]].concat();
        let (seen, scan) = scan_from(&zero_filled, &offsets, 0);
        assert_eq!(seen, offsets);
        assert_eq!(
            (scan.end, scan.tail),
            (clean.len() as u64, RecordsTail::Clean)
        );

        // Damage in the third chunk, with valid frames after it.
        let mut damaged = clean.clone();
        damaged[offsets[250] as usize + 30] ^= 1;
        let (seen, scan) = scan_from(&damaged, &offsets, 0);
        assert_eq!(seen, offsets[..250]);
        let expected = RecordsTail::DamageBeforeValidFrames {
            reason: "frame checksum mismatch".into(),
            next_frame: offsets[251],
        };
        assert_eq!((scan.end, scan.tail), (offsets[250], expected));

        // The last frame cut short, with the scan started at a later frame.
        let (seen, scan) = scan_from(&clean[..clean.len() - 100], &offsets, 100);
        assert_eq!(seen, offsets[100..299]);
        let expected = RecordsTail::Torn {
            reason: "torn frame at the end of the file".into(),
        };
        assert_eq!((scan.end, scan.tail), (offsets[299], expected));
    }
}
