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
//!   the damage with the same scan (`scan_records`).
//! - derived files: written without fsync, so their tail may be missing or garbage. They were
//!   synced before the latest checkpoint was written, so their prefix up to that checkpoint is
//!   trusted once a spot check passes (the last checkpointed record's frame and leaf hash, the
//!   level-4 nodes of the last two tiles, and the checkpoint root recomputed from the stored tile
//!   roots and leaf hashes); beyond it they are recomputed from the records. If the spot check
//!   fails they are rebuilt from the first record.
//! - `checkpoints.dat`: each checkpoint is synced before the next is written, so only a torn last
//!   frame is cut off: one whose bytes fit within the length its header declares, or are all
//!   zero. Damage with more data after it is an error.
//!
//! Every checkpoint the records are replayed past is compared with the recomputed root, and the
//! records must reach the latest checkpoint's size: records that no longer match a signed
//! checkpoint are an error, never silently dropped.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::{
    CHECKPOINTS_FILE, Checkpoint, CheckpointBook, DataFiles, Error, GROUP_WIDTH, HASH_BYTES,
    LEAF_HASHES_FILE, LEVEL4_HASHES_FILE, OFFSET_BYTES, OFFSETS_FILE, RECORDS_FILE, Result,
    TILE_HASHES_FILE, UpperLevels, io_error,
};
use crate::checkpoint_file::{CheckpointFileError, CheckpointReader, StoredNote, read_up_to};
use crate::frame::{
    FRAME_HEADER_BYTES, FrameParse, MAX_RECORD_PAYLOAD, next_valid_frame, parse_frame,
    zeroed_to_end,
};
use crate::merkle::{self, Hash, NodeSource, leaf_hash, perfect_root};
use crate::note::{NoteVerifier, verify_checkpoint};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};

/// Derived data of this many records is buffered before being written during a replay.
const REPLAY_FLUSH_RECORDS: usize = 1 << 16;

pub(crate) fn checkpoint_file_error(dir: &Path) -> impl Fn(CheckpointFileError) -> Error {
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

/// Reads every stored checkpoint into the in-memory book, cuts off a torn last write and checks
/// that the latest checkpoint was signed by this node's key, so that a misconfigured key is
/// noticed before anything is signed with it.
pub(crate) fn load_checkpoints(
    dir: &Path,
    file: &File,
    verifier: &NoteVerifier,
) -> Result<CheckpointBook> {
    let path = dir.join(CHECKPOINTS_FILE);
    let length = file.metadata().map_err(io_error("inspect", &path))?.len();
    let file_error = checkpoint_file_error(dir);
    let mut reader = CheckpointReader::new(file, 0, 0, length);
    let mut book = CheckpointBook::default();
    while let Some(stored) = reader.next_note().map_err(&file_error)? {
        let offset = stored.offset;
        let checkpoint = parse_stored(stored)?;
        if let Some(previous) = &book.latest
            && checkpoint.tree_size < previous.tree_size
        {
            return Err(Error::CorruptCheckpoints {
                offset,
                reason: format!(
                    "tree size {} follows the larger {}",
                    checkpoint.tree_size, previous.tree_size
                ),
            });
        }
        book.record(checkpoint, offset, reader.offset());
    }
    if let Some(torn_at) = reader.torn_tail_at() {
        tracing::warn!(
            offset = torn_at,
            bytes = length - torn_at,
            "cutting off a torn checkpoint write"
        );
        file.set_len(torn_at)
            .and_then(|()| file.sync_data())
            .map_err(io_error("truncate", &path))?;
    }
    if let Some(latest) = &book.latest {
        verify_checkpoint(&latest.note, verifier).map_err(Error::CheckpointKey)?;
    }
    Ok(book)
}

/// The stored checkpoints a replay must check, in order: none when the derived files were
/// trusted up to the latest checkpoint, all of them (streamed from the file) when rebuilding.
struct CheckpointChecks<'a> {
    reader: Option<CheckpointReader<'a>>,
    next: Option<(usize, Checkpoint)>,
    file_error: Box<dyn Fn(CheckpointFileError) -> Error + 'a>,
}

impl CheckpointChecks<'_> {
    fn advance(&mut self) -> Result<()> {
        self.next = None;
        if let Some(reader) = &mut self.reader
            && let Some(stored) = reader.next_note().map_err(&self.file_error)?
        {
            let ordinal = stored.ordinal;
            self.next = Some((ordinal, parse_stored(stored)?));
        }
        Ok(())
    }

    /// Compares every checkpoint of the tree's current size with its root.
    fn check(&mut self, tree: &RecoveredTree) -> Result<()> {
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
            self.advance()?;
        }
        Ok(())
    }
}

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
/// check, replays the records after that, cuts off a torn tail (damage with no valid frame after
/// it) and checks the checkpoints.
pub(crate) fn recover_tree(
    dir: &Path,
    files: &DataFiles,
    book: &CheckpointBook,
) -> Result<RecoveredTree> {
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
    let mut checks = CheckpointChecks {
        reader: rebuilding.then(|| CheckpointReader::new(&files.checkpoints, 0, 0, book.file_end)),
        next: None,
        file_error: Box::new(checkpoint_file_error(dir)),
    };
    checks.advance()?;
    checks.check(&tree)?;

    let truncate = |file: &File, name: &str, length: u64| {
        file.set_len(length)
            .map_err(io_error("truncate", &dir.join(name)))
    };
    truncate(&files.offsets, OFFSETS_FILE, tree.size * OFFSET_BYTES)?;
    truncate(&files.leaf_hashes, LEAF_HASHES_FILE, tree.size * HASH_BYTES)?;
    let mut written_groups = tree.size / GROUP_WIDTH;
    truncate(
        &files.level4_hashes,
        LEVEL4_HASHES_FILE,
        written_groups * HASH_BYTES,
    )?;
    let mut written_tiles = tree.size / TILE_WIDTH;
    truncate(
        &files.tile_hashes,
        TILE_HASHES_FILE,
        written_tiles * HASH_BYTES,
    )?;

    let records_path = dir.join(RECORDS_FILE);
    let records_length = files
        .records
        .metadata()
        .map_err(io_error("inspect", &records_path))?
        .len();

    let mut offsets = Vec::new();
    let mut leaves = Vec::new();
    let mut group_roots: Vec<Hash> = Vec::new();
    let mut tile_roots: Vec<Hash> = Vec::new();
    let mut written_size = tree.size;
    let mut flush = |tree: &RecoveredTree,
                     offsets: &mut Vec<u8>,
                     leaves: &mut Vec<u8>,
                     group_roots: &mut Vec<Hash>,
                     tile_roots: &mut Vec<Hash>|
     -> Result<()> {
        let write = |file: &File, name: &str, bytes: &[u8], at: u64| {
            file.write_all_at(bytes, at)
                .map_err(io_error("write", &dir.join(name)))
        };
        write(
            &files.offsets,
            OFFSETS_FILE,
            offsets,
            written_size * OFFSET_BYTES,
        )?;
        write(
            &files.leaf_hashes,
            LEAF_HASHES_FILE,
            leaves,
            written_size * HASH_BYTES,
        )?;
        write(
            &files.level4_hashes,
            LEVEL4_HASHES_FILE,
            group_roots.as_flattened(),
            written_groups * HASH_BYTES,
        )?;
        write(
            &files.tile_hashes,
            TILE_HASHES_FILE,
            tile_roots.as_flattened(),
            written_tiles * HASH_BYTES,
        )?;
        written_size = tree.size;
        written_groups += group_roots.len() as u64;
        written_tiles += tile_roots.len() as u64;
        offsets.clear();
        leaves.clear();
        group_roots.clear();
        tile_roots.clear();
        Ok(())
    };

    let scan = scan_records(
        &files.records,
        &records_path,
        tree.records_end,
        |offset, payload| {
            debug_assert_eq!(offset, tree.records_end);
            let leaf = leaf_hash(payload);
            offsets.extend_from_slice(&offset.to_le_bytes());
            leaves.extend_from_slice(&leaf);
            let (group_root, tile_root) =
                tree.push_leaf(leaf, (FRAME_HEADER_BYTES + payload.len()) as u64);
            group_roots.extend(group_root);
            tile_roots.extend(tile_root);
            checks.check(&tree)?;
            if leaves.len() >= REPLAY_FLUSH_RECORDS * HASH_BYTES as usize {
                flush(
                    &tree,
                    &mut offsets,
                    &mut leaves,
                    &mut group_roots,
                    &mut tile_roots,
                )?;
            }
            Ok(())
        },
    )?;
    debug_assert_eq!(scan.end, tree.records_end);
    flush(
        &tree,
        &mut offsets,
        &mut leaves,
        &mut group_roots,
        &mut tile_roots,
    )?;

    match scan.tail {
        RecordsTail::Clean => {}
        RecordsTail::Torn { reason } | RecordsTail::DamageBeforeValidFrames { reason, .. }
            if tree.size < checkpointed_size =>
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
        RecordsTail::Torn { reason } => {
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
    }
    if tree.size < checkpointed_size {
        return Err(Error::RecordsMissing {
            ordinal: book.count - 1,
            tree_size: checkpointed_size,
            found: tree.size,
        });
    }
    if book.count == 0 && tree.size > 0 {
        tracing::warn!(
            records = tree.size,
            "ledger has records but no checkpoints; signing a new checkpoint over them"
        );
    }
    Ok(tree)
}

/// What the records file holds after its last valid frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordsTail {
    /// Nothing, or only the zero-filled space the writer keeps ahead of its records.
    Clean,
    /// A torn or corrupt frame with no valid frame starting anywhere after it: what a crash
    /// during a write leaves behind.
    Torn { reason: String },
    /// A torn or corrupt frame with a valid frame starting at byte `next_frame` after it. A crash
    /// tears only the end of the records, and the records before a frame were synced when it
    /// was, so this is damage among synced (and perhaps acknowledged) records.
    DamageBeforeValidFrames { reason: String, next_frame: u64 },
}

/// Where a scan of the records file stopped, and what lies there.
#[derive(Debug)]
pub(crate) struct RecordsScan {
    /// Where the last valid frame read ends (the first torn or corrupt frame starts here).
    pub(crate) end: u64,
    pub(crate) tail: RecordsTail,
}

/// Reads the record frames of `records` from byte `start`, handing each valid frame's offset and
/// payload to `on_frame`, up to the end of the file or the first torn or corrupt frame, and says
/// what lies from there on. Opening the ledger and salvaging it both find damage this way.
pub(crate) fn scan_records(
    records: &File,
    path: &Path,
    start: u64,
    mut on_frame: impl FnMut(u64, &[u8]) -> Result<()>,
) -> Result<RecordsScan> {
    let mut reader = BufReader::with_capacity(1 << 20, records);
    reader
        .seek(SeekFrom::Start(start))
        .map_err(io_error("seek in", path))?;
    let mut end = start;
    let mut header = [0u8; FRAME_HEADER_BYTES];
    let mut payload = Vec::new();
    let damage = loop {
        let header_read = read_up_to(&mut reader, &mut header).map_err(io_error("read", path))?;
        if header_read == 0 {
            break None;
        }
        if header_read < FRAME_HEADER_BYTES {
            break Some("torn frame header".to_owned());
        }
        let length = u32::from_le_bytes(header[..4].try_into().expect("four bytes")) as usize;
        let checksum = u32::from_le_bytes(header[4..].try_into().expect("four bytes"));
        if length == 0 || length > MAX_RECORD_PAYLOAD {
            break Some(format!("invalid frame length {length}"));
        }
        payload.resize(length, 0);
        let payload_read = read_up_to(&mut reader, &mut payload).map_err(io_error("read", path))?;
        if payload_read < length {
            break Some("torn frame".to_owned());
        }
        if crc32c::crc32c(&payload) != checksum {
            break Some("frame checksum mismatch".to_owned());
        }
        on_frame(end, &payload)?;
        end += (FRAME_HEADER_BYTES + length) as u64;
    };
    let Some(reason) = damage else {
        return Ok(RecordsScan {
            end,
            tail: RecordsTail::Clean,
        });
    };
    // The zero-filled space the writer keeps ahead of its records is where they end.
    if zeroed_to_end(records, end).map_err(io_error("read", path))? {
        return Ok(RecordsScan {
            end,
            tail: RecordsTail::Clean,
        });
    }
    let tail =
        match next_valid_frame(records, end, MAX_RECORD_PAYLOAD).map_err(io_error("read", path))? {
            Some(next_frame) => RecordsTail::DamageBeforeValidFrames { reason, next_frame },
            None => RecordsTail::Torn { reason },
        };
    Ok(RecordsScan { end, tail })
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
