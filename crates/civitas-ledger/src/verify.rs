//! Independent full verification of the data chain.
//!
//! [`Verifier`] is the source-agnostic core: push signed checkpoints and records (or leaf hashes)
//! in order, and it recomputes the tree and compares each checkpoint's root with the recomputed
//! root at its size. Matching roots at every checkpoint prove each checkpoint consistent with the
//! next, since both are prefixes of the same recomputed tree. [`verify_dir`] drives it over a local
//! data directory, and also checks every frame checksum and the stored derived data (offsets, leaf
//! hashes, tile roots) so that tampering is pinned to the first bad record.
//!
//! Nothing here uses the ledger's own reading code: the files are parsed from their documented
//! layout. Only the record frames are split, and what follows damage among them is judged, by the
//! `frame` functions that opening and salvaging use too (`split_frames`, `records_tail`), so that
//! all three agree on where the records end.

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::checkpoint_file::{CheckpointFileError, CheckpointReader, StoredNote};
use crate::frame::{
    ChunkBuffer, FRAME_HEADER_BYTES, RecordsTail, frame_checksum, records_tail, split_frames,
};
use crate::ledger::{
    CHECKPOINTS_FILE, GROUP_LEVEL, GROUP_WIDTH, HASH_BYTES, LEAF_HASHES_FILE, LEVEL4_HASHES_FILE,
    OFFSET_BYTES, OFFSETS_FILE, RECORDS_FILE, TILE_HASHES_FILE,
};
use crate::merkle::{Frontier, Hash, interior_hash, leaf_hash};
use crate::note::{self, NoteVerifier, verify_checkpoint};
use crate::tiles::{TILE_HEIGHT, TILE_WIDTH};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("invalid verifier key: {0}")]
    VerifierKey(#[source] note::Error),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("record {index}: frame checksum mismatch")]
    ChecksumMismatch { index: u64 },
    #[error("record {index}: malformed frame at byte {offset}: {reason}")]
    MalformedFrame {
        index: u64,
        offset: u64,
        reason: String,
    },
    #[error(
        "record {index}: damaged frame at byte {offset} ({reason}) with a valid frame after it at byte {next_frame}; a torn write leaves no valid frame after it, so this is corruption"
    )]
    DamageBeforeValidFrames {
        index: u64,
        offset: u64,
        reason: String,
        next_frame: u64,
    },
    #[error("record {index}: leaf hash differs from the stored leaf hash")]
    LeafHashMismatch { index: u64 },
    #[error("record {index}: stored byte offset {stored} differs from the actual offset {actual}")]
    OffsetMismatch {
        index: u64,
        stored: u64,
        actual: u64,
    },
    #[error("records {first_record}..{end}: stored level-{level} node hash differs from their recomputed root", end = first_record + (1u64 << level))]
    StoredNodeMismatch { level: u32, first_record: u64 },
    #[error(
        "checkpoint {checkpoint} (tree size {tree_size}): root does not match the records; the first altered record is among records {first_suspect}..{tree_size}"
    )]
    CheckpointRootMismatch {
        checkpoint: u64,
        tree_size: u64,
        first_suspect: u64,
    },
    #[error("checkpoint {checkpoint}: bad signature or malformed note: {source}")]
    CheckpointSignature {
        checkpoint: u64,
        #[source]
        source: note::Error,
    },
    #[error(
        "checkpoint {checkpoint}: tree size {tree_size} is smaller than the previous checkpoint's {previous}"
    )]
    CheckpointOutOfOrder {
        checkpoint: u64,
        tree_size: u64,
        previous: u64,
    },
    #[error(
        "checkpoint {checkpoint}: tree size {tree_size} was passed before the checkpoint arrived ({records} records verified)"
    )]
    CheckpointTooLate {
        checkpoint: u64,
        tree_size: u64,
        records: u64,
    },
    #[error("checkpoint {checkpoint}: covers {tree_size} records but only {records} exist")]
    CheckpointBeyondRecords {
        checkpoint: u64,
        tree_size: u64,
        records: u64,
    },
    #[error("checkpoints file is corrupt at byte {offset}: {reason}")]
    CorruptCheckpoints { offset: u64, reason: String },
}

impl VerifyError {
    /// The index of the first record known or suspected to be bad, when the error is about
    /// records: for a checkpoint root mismatch, the first record not covered by an earlier
    /// checkpoint that matched.
    pub fn first_bad_record(&self) -> Option<u64> {
        match self {
            VerifyError::ChecksumMismatch { index }
            | VerifyError::MalformedFrame { index, .. }
            | VerifyError::DamageBeforeValidFrames { index, .. }
            | VerifyError::LeafHashMismatch { index }
            | VerifyError::OffsetMismatch { index, .. } => Some(*index),
            VerifyError::StoredNodeMismatch { first_record, .. } => Some(*first_record),
            VerifyError::CheckpointRootMismatch { first_suspect, .. } => Some(*first_suspect),
            VerifyError::CheckpointBeyondRecords { records, .. } => Some(*records),
            _ => None,
        }
    }
}

pub type Result<T, E = VerifyError> = std::result::Result<T, E>;

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VerifyError {
    let path = path.to_path_buf();
    move |source| VerifyError::Io {
        action,
        path,
        source,
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records whose frames were read and hashed.
    pub records: u64,
    /// Total bytes of those records, without frame headers.
    pub record_bytes: u64,
    /// Signed checkpoints whose signature and root were checked.
    pub checkpoints: u64,
    /// The size of the largest checkpoint checked: records below it are covered by signatures,
    /// records from it on only by their checksums.
    pub verified_tree_size: u64,
    /// The root of the tree of all records.
    pub root: Hash,
    /// Bytes after the last whole record that a reopen would cut off as a torn write: damage past
    /// the last checkpoint with no valid frame anywhere after it. Damage below the last
    /// checkpoint, or with a valid frame after it, is an error.
    pub torn_tail_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct PendingCheckpoint {
    ordinal: u64,
    tree_size: u64,
    root: Hash,
}

/// Streaming verifier: add checkpoints (in order of size) and push records in index order; each
/// checkpoint is checked as soon as the records reach its size.
pub struct Verifier {
    verifier: NoteVerifier,
    frontier: Frontier,
    pending: VecDeque<PendingCheckpoint>,
    checkpoints_added: u64,
    checkpoints_checked: u64,
    largest_checkpoint_size: Option<u64>,
    verified_tree_size: u64,
    record_bytes: u64,
}

impl Verifier {
    pub fn new(verifier_key: &str) -> Result<Verifier> {
        Ok(Verifier {
            verifier: NoteVerifier::parse(verifier_key).map_err(VerifyError::VerifierKey)?,
            frontier: Frontier::new(),
            pending: VecDeque::new(),
            checkpoints_added: 0,
            checkpoints_checked: 0,
            largest_checkpoint_size: None,
            verified_tree_size: 0,
            record_bytes: 0,
        })
    }

    /// Verifies the signature of a checkpoint now and queues its root for comparison when the
    /// records reach its size. Checkpoints are numbered from 0 in the order they are added.
    pub fn add_checkpoint(&mut self, note: &str) -> Result<()> {
        let ordinal = self.checkpoints_added;
        self.checkpoints_added += 1;
        let body = verify_checkpoint(note, &self.verifier).map_err(|source| {
            VerifyError::CheckpointSignature {
                checkpoint: ordinal,
                source,
            }
        })?;
        if let Some(previous) = self.largest_checkpoint_size
            && body.tree_size < previous
        {
            return Err(VerifyError::CheckpointOutOfOrder {
                checkpoint: ordinal,
                tree_size: body.tree_size,
                previous,
            });
        }
        if body.tree_size < self.frontier.size() {
            return Err(VerifyError::CheckpointTooLate {
                checkpoint: ordinal,
                tree_size: body.tree_size,
                records: self.frontier.size(),
            });
        }
        self.largest_checkpoint_size = Some(body.tree_size);
        self.pending.push_back(PendingCheckpoint {
            ordinal,
            tree_size: body.tree_size,
            root: body.root,
        });
        self.check_reached_checkpoints()
    }

    /// The largest tree size of the checkpoints added so far.
    pub fn largest_checkpoint_size(&self) -> Option<u64> {
        self.largest_checkpoint_size
    }

    /// Pushes the next record.
    pub fn push_record(&mut self, record: &[u8]) -> Result<()> {
        self.record_bytes += record.len() as u64;
        self.push_leaf_hash(leaf_hash(record))
    }

    /// Pushes the leaf hash of the next record, for callers that hash records themselves (in
    /// parallel, say).
    pub fn push_leaf_hash(&mut self, leaf: Hash) -> Result<()> {
        self.frontier.push(leaf);
        self.check_reached_checkpoints()
    }

    /// Pushes the root of a perfect subtree of `2^level` records that starts at the current size
    /// and must not pass over a pending checkpoint's size.
    fn push_subtree_observing(
        &mut self,
        level: u32,
        hash: Hash,
        completed: impl FnMut(u32, u64, &Hash),
    ) -> Result<()> {
        self.frontier.push_subtree_observing(level, hash, completed);
        self.check_reached_checkpoints()
    }

    /// Sizes of the checkpoints not yet reached, smallest first.
    fn pending_sizes(&self) -> impl Iterator<Item = u64> + '_ {
        self.pending.iter().map(|checkpoint| checkpoint.tree_size)
    }

    fn check_reached_checkpoints(&mut self) -> Result<()> {
        while let Some(checkpoint) = self.pending.front() {
            debug_assert!(checkpoint.tree_size >= self.frontier.size());
            if checkpoint.tree_size != self.frontier.size() {
                break;
            }
            if self.frontier.root() != checkpoint.root {
                return Err(VerifyError::CheckpointRootMismatch {
                    checkpoint: checkpoint.ordinal,
                    tree_size: checkpoint.tree_size,
                    first_suspect: self.verified_tree_size,
                });
            }
            self.verified_tree_size = checkpoint.tree_size;
            self.checkpoints_checked += 1;
            self.pending.pop_front();
        }
        Ok(())
    }

    /// Records pushed so far.
    pub fn records(&self) -> u64 {
        self.frontier.size()
    }

    /// The root of the tree of the records pushed so far.
    pub fn root(&self) -> Hash {
        self.frontier.root()
    }

    /// Ends verification; fails if a checkpoint covers more records than were pushed.
    pub fn finish(self) -> Result<VerifyReport> {
        if let Some(checkpoint) = self.pending.front() {
            return Err(VerifyError::CheckpointBeyondRecords {
                checkpoint: checkpoint.ordinal,
                tree_size: checkpoint.tree_size,
                records: self.frontier.size(),
            });
        }
        Ok(VerifyReport {
            records: self.frontier.size(),
            record_bytes: self.record_bytes,
            checkpoints: self.checkpoints_checked,
            verified_tree_size: self.verified_tree_size,
            root: self.frontier.root(),
            torn_tail_bytes: 0,
        })
    }
}

/// Bytes of the records file read and hashed per step.
const CHUNK_BYTES: usize = 8 << 20;

/// Verifies the ledger in `dir` with the node's verifier key: every checkpoint signature, every
/// record's frame checksum, the stored derived data of every checkpointed record, and every
/// checkpoint root against the tree recomputed from the records. `progress(done, total)` is
/// called after each step of a few megabytes. Fails with the first problem found.
///
/// Both cores work: each step's records are split in two halves whose leaf hashes and largest
/// aligned perfect subtrees (never crossing a checkpoint's size) are computed on two threads while
/// this thread reads the next step; this thread then merges the few subtree roots in order.
pub fn verify_dir(
    dir: impl AsRef<Path>,
    verifier_key: &str,
    progress: impl FnMut(u64, u64),
) -> Result<VerifyReport> {
    verify_dir_in_chunks(dir.as_ref(), verifier_key, progress, CHUNK_BYTES)
}

fn verify_dir_in_chunks(
    dir: &Path,
    verifier_key: &str,
    mut progress: impl FnMut(u64, u64),
    chunk_bytes: usize,
) -> Result<VerifyReport> {
    let mut verifier = Verifier::new(verifier_key)?;
    let stored_checkpoints = StoredCheckpoints::open(dir)?;
    let covered = stored_checkpoints.largest_size()?;
    let mut checkpoints = CheckpointFeed::new(&stored_checkpoints)?;
    checkpoints.feed(&mut verifier, 0)?;

    let records_path = dir.join(RECORDS_FILE);
    let mut reader = File::open(&records_path).map_err(io_error("open", &records_path))?;
    let records_length = reader
        .metadata()
        .map_err(io_error("inspect", &records_path))?
        .len();
    let stored = StoredDerived::open(dir, covered)?;
    let total = covered.max(stored.offsets_length / OFFSET_BYTES);

    // Two buffers take turns: one is hashed while the next step is read into the other. Each is
    // allocated once, so no step pays for zeroing or faulting in fresh pages.
    let mut buffer = ChunkBuffer::new(chunk_bytes);
    let mut spare = ChunkBuffer::new(chunk_bytes);
    let mut end_of_file = buffer
        .fill(&mut reader, 0, chunk_bytes)
        .map_err(io_error("read", &records_path))?;
    // File offset of `buffer[0]`.
    let mut buffer_offset: u64 = 0;
    let mut record_bytes: u64 = 0;
    let mut torn_tail_bytes = 0;
    let mut frames: Vec<(usize, usize)> = Vec::new();
    // Per-step working memory, kept across steps so that no step allocates and faults in fresh
    // pages for it.
    let mut chunk_stored = ChunkStored::default();
    let mut first_scratch = Scratch::default();
    let mut second_scratch = Scratch::default();

    loop {
        // Split the buffer into whole frames; damage stops the split at that frame.
        frames.clear();
        let valid = buffer.valid();
        let split = split_frames(valid, end_of_file, &mut frames);
        let position = split.end;
        let damage = split.damage;

        let first_index = verifier.records();
        let end_index = first_index + frames.len() as u64;
        checkpoints.feed(&mut verifier, end_index)?;
        stored.load_into(&mut chunk_stored, first_index, end_index)?;
        let cuts: Vec<u64> = verifier
            .pending_sizes()
            .filter(|size| (first_index + 1..end_index).contains(size))
            .collect();
        let split = split_by_bytes(&frames);
        let context = RangeContext {
            buffer: valid,
            buffer_offset,
            cuts: &cuts,
            stored: &chunk_stored,
        };
        let first_scratch = &mut first_scratch;
        let second_scratch = &mut second_scratch;
        let (first_half, second_half, next) = std::thread::scope(|scope| {
            let first =
                scope.spawn(|| context.process(&frames[..split], first_index, first_scratch));
            let second = scope.spawn(|| {
                context.process(&frames[split..], first_index + split as u64, second_scratch)
            });
            // Damage ends the scan, and what follows it (up to a whole chunk) would not fit
            // before the next chunk.
            let next = if end_of_file || damage.is_some() {
                Ok(true)
            } else {
                let leftover = &valid[position..];
                spare.bytes[..leftover.len()].copy_from_slice(leftover);
                spare
                    .fill(&mut reader, leftover.len(), chunk_bytes)
                    .map_err(io_error("read", &records_path))
            };
            (
                first.join().expect("verifying records does not panic"),
                second.join().expect("verifying records does not panic"),
                next,
            )
        });

        for (outcome, scratch) in [
            (first_half, &*first_scratch),
            (second_half, &*second_scratch),
        ] {
            let mut node_mismatch = None;
            for &(level, hash) in &scratch.nodes {
                verifier.push_subtree_observing(level, hash, |level, index, hash| {
                    if let Err(error) = chunk_stored.check_node(level, index, hash) {
                        node_mismatch.get_or_insert(error);
                    }
                })?;
                if let Some(error) = node_mismatch.take() {
                    return Err(error);
                }
            }
            record_bytes += outcome.record_bytes;
            match outcome.error {
                None => {}
                Some(VerifyError::ChecksumMismatch { index }) if index >= covered => {
                    // Damage past the last checkpoint may be what a crash mid-write leaves
                    // behind, if nothing valid follows it.
                    let (payload_start, _) = frames[(index - first_index) as usize];
                    let frame_offset = buffer_offset + (payload_start - FRAME_HEADER_BYTES) as u64;
                    torn_tail_bytes = torn_tail_bytes_at(
                        &reader,
                        &records_path,
                        index,
                        frame_offset,
                        "frame checksum mismatch".to_owned(),
                        records_length,
                    )?;
                    checkpoints.feed(&mut verifier, u64::MAX)?;
                    return finish(verifier, record_bytes, torn_tail_bytes, &mut progress);
                }
                Some(error) => return Err(error),
            }
        }

        if let Some(reason) = damage {
            let index = verifier.records();
            let offset = buffer_offset + position as u64;
            if index < covered {
                return Err(VerifyError::MalformedFrame {
                    index,
                    offset,
                    reason,
                });
            }
            torn_tail_bytes = torn_tail_bytes_at(
                &reader,
                &records_path,
                index,
                offset,
                reason,
                records_length,
            )?;
            break;
        }
        progress(verifier.records(), total.max(verifier.records()));
        let next_end_of_file = next?;
        std::mem::swap(&mut buffer, &mut spare);
        buffer_offset += position as u64;
        if end_of_file {
            break;
        }
        end_of_file = next_end_of_file;
    }
    // Checkpoints beyond the records make `finish` fail.
    checkpoints.feed(&mut verifier, u64::MAX)?;
    finish(verifier, record_bytes, torn_tail_bytes, &mut progress)
}

/// The bytes a reopen would cut off as a torn write, from the damaged frame of record `index` at
/// `offset` to the end of the file: none if all of them are the zero-filled space the writer
/// keeps ahead of its records. Fails if a valid frame follows the damage, since a crash tears
/// only the end of the records.
fn torn_tail_bytes_at(
    records: &File,
    path: &Path,
    index: u64,
    offset: u64,
    reason: String,
    records_length: u64,
) -> Result<u64> {
    match records_tail(records, offset, reason).map_err(io_error("read", path))? {
        RecordsTail::Clean => Ok(0),
        RecordsTail::Torn { .. } => Ok(records_length - offset),
        RecordsTail::DamageBeforeValidFrames { reason, next_frame } => {
            Err(VerifyError::DamageBeforeValidFrames {
                index,
                offset,
                reason,
                next_frame,
            })
        }
    }
}

fn finish(
    verifier: Verifier,
    record_bytes: u64,
    torn_tail_bytes: u64,
    progress: &mut impl FnMut(u64, u64),
) -> Result<VerifyReport> {
    progress(verifier.records(), verifier.records());
    let mut report = verifier.finish()?;
    report.record_bytes = record_bytes;
    report.torn_tail_bytes = torn_tail_bytes;
    Ok(report)
}

/// Where to split `frames` so that both halves hold about as many bytes.
fn split_by_bytes(frames: &[(usize, usize)]) -> usize {
    let total: usize = frames.iter().map(|&(_, length)| length).sum();
    let mut running = 0;
    frames
        .iter()
        .position(|&(_, length)| {
            running += length;
            running * 2 >= total
        })
        .map_or(0, |position| position + 1)
        .min(frames.len())
}

/// What one thread found in its half of a step, besides the subtree roots in its scratch.
struct RangeOutcome {
    record_bytes: u64,
    /// The first problem in the range, if any; the scratch's nodes stop before it.
    error: Option<VerifyError>,
}

/// One thread's working memory for a step.
#[derive(Default)]
struct Scratch {
    leaves: Vec<Hash>,
    /// Roots of consecutive aligned perfect subtrees covering the records before any error.
    nodes: Vec<(u32, Hash)>,
}

struct RangeContext<'a> {
    buffer: &'a [u8],
    buffer_offset: u64,
    /// Checkpoint sizes inside the step, which subtrees must not cross.
    cuts: &'a [u64],
    stored: &'a ChunkStored,
}

impl RangeContext<'_> {
    /// Checks and hashes the records of `frames`, the first of which has index `first_index`, and
    /// reduces their leaf hashes to aligned perfect subtree roots.
    fn process(
        &self,
        frames: &[(usize, usize)],
        first_index: u64,
        scratch: &mut Scratch,
    ) -> RangeOutcome {
        let Scratch { leaves, nodes } = scratch;
        leaves.clear();
        nodes.clear();
        let mut record_bytes = 0;
        let mut error = None;
        for (position, &(payload_start, length)) in frames.iter().enumerate() {
            let index = first_index + position as u64;
            let payload = &self.buffer[payload_start..payload_start + length];
            if crc32c::crc32c(payload) != frame_checksum(self.buffer, payload_start) {
                error = Some(VerifyError::ChecksumMismatch { index });
                break;
            }
            let frame_offset = self.buffer_offset + (payload_start - FRAME_HEADER_BYTES) as u64;
            if let Some(stored) = self.stored.offset(index)
                && stored != frame_offset
            {
                error = Some(VerifyError::OffsetMismatch {
                    index,
                    stored,
                    actual: frame_offset,
                });
                break;
            }
            let leaf = leaf_hash(payload);
            if let Some(stored) = self.stored.leaf(index)
                && *stored != leaf
            {
                error = Some(VerifyError::LeafHashMismatch { index });
                break;
            }
            leaves.push(leaf);
            record_bytes += length as u64;
        }

        let end = first_index + leaves.len() as u64;
        let mut position = first_index;
        while position < end {
            let limit = self
                .cuts
                .iter()
                .copied()
                .find(|&cut| cut > position)
                .map_or(end, |cut| cut.min(end));
            let alignment = if position == 0 {
                63
            } else {
                position.trailing_zeros()
            };
            let level = alignment.min(63 - (limit - position).leading_zeros());
            let start = (position - first_index) as usize;
            let subtree = &leaves[start..start + (1usize << level)];
            match self.stored.checked_root(subtree, position) {
                Ok(hash) => nodes.push((level, hash)),
                Err(mismatch) => {
                    error = Some(mismatch);
                    break;
                }
            }
            position += 1 << level;
        }
        RangeOutcome {
            record_bytes,
            error,
        }
    }
}

/// The stored checkpoints, read twice: once to learn how far they reach, then lazily, step by
/// step, so that a file of millions of checkpoints never sits in memory. An incomplete last frame
/// is a torn write and ends the list; damage with more data after it is an error.
struct StoredCheckpoints {
    file: Option<File>,
    path: PathBuf,
    end: u64,
}

impl StoredCheckpoints {
    fn open(dir: &Path) -> Result<StoredCheckpoints> {
        let path = dir.join(CHECKPOINTS_FILE);
        let file = match File::open(&path) {
            Ok(file) => Some(file),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => return Err(io_error("open", &path)(error)),
        };
        let end = match &file {
            Some(file) => file.metadata().map_err(io_error("inspect", &path))?.len(),
            None => 0,
        };
        Ok(StoredCheckpoints { file, path, end })
    }

    fn reader(&self) -> Option<CheckpointReader<'_>> {
        let file = self.file.as_ref()?;
        Some(CheckpointReader::new(file, 0, 0, self.end))
    }

    fn next(&self, reader: &mut Option<CheckpointReader<'_>>) -> Result<Option<StoredNote>> {
        let Some(reader) = reader else {
            return Ok(None);
        };
        reader.next_note().map_err(|error| match error {
            CheckpointFileError::Io(source) => io_error("read", &self.path)(source),
            CheckpointFileError::Corrupt { offset, reason } => {
                VerifyError::CorruptCheckpoints { offset, reason }
            }
        })
    }

    /// The largest tree size of any stored checkpoint, read without checking signatures yet.
    fn largest_size(&self) -> Result<u64> {
        let mut reader = self.reader();
        let mut largest = 0;
        while let Some(stored) = self.next(&mut reader)? {
            let size = tree_size_of(&stored)?;
            largest = largest.max(size);
        }
        Ok(largest)
    }
}

fn tree_size_of(stored: &StoredNote) -> Result<u64> {
    let corrupt = |reason: String| VerifyError::CorruptCheckpoints {
        offset: stored.offset,
        reason,
    };
    let separator = stored
        .note
        .rfind("\n\n")
        .ok_or_else(|| corrupt("no blank line before the signature lines".into()))?;
    note::parse_checkpoint_body(&stored.note[..separator + 1])
        .map(|body| body.tree_size)
        .map_err(|error| corrupt(error.to_string()))
}

/// Feeds stored checkpoints to the verifier, in order, as long as their size is at most `limit`.
struct CheckpointFeed<'a> {
    stored: &'a StoredCheckpoints,
    reader: Option<CheckpointReader<'a>>,
    next: Option<(u64, StoredNote)>,
}

impl<'a> CheckpointFeed<'a> {
    fn new(stored: &'a StoredCheckpoints) -> Result<CheckpointFeed<'a>> {
        let mut feed = CheckpointFeed {
            stored,
            reader: stored.reader(),
            next: None,
        };
        feed.pull()?;
        Ok(feed)
    }

    fn pull(&mut self) -> Result<()> {
        self.next = match self.stored.next(&mut self.reader)? {
            Some(stored) => Some((tree_size_of(&stored)?, stored)),
            None => None,
        };
        Ok(())
    }

    fn feed(&mut self, verifier: &mut Verifier, limit: u64) -> Result<()> {
        while let Some((size, stored)) = &self.next {
            if *size > limit {
                break;
            }
            verifier.add_checkpoint(&stored.note)?;
            self.pull()?;
        }
        Ok(())
    }
}

/// The stored derived files. Their content for the records covered by the latest checkpoint was
/// made durable before that checkpoint was signed, so any disagreement with the records there is
/// tampering; past it, a crash may legitimately have left them incomplete, so it is not compared.
struct StoredDerived {
    dir: PathBuf,
    covered: u64,
    offsets_length: u64,
    offsets: Option<File>,
    leaf_hashes: Option<File>,
    level4_hashes: Option<File>,
    tile_hashes: Option<File>,
}

impl StoredDerived {
    fn open(dir: &Path, covered: u64) -> Result<StoredDerived> {
        let open = |name: &str| -> Result<Option<File>> {
            let path = dir.join(name);
            match File::open(&path) {
                Ok(file) => Ok(Some(file)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound && covered == 0 => {
                    Ok(None)
                }
                Err(error) => Err(io_error("open", &path)(error)),
            }
        };
        let offsets = open(OFFSETS_FILE)?;
        let offsets_length = match &offsets {
            Some(file) => file
                .metadata()
                .map_err(io_error("inspect", &dir.join(OFFSETS_FILE)))?
                .len(),
            None => 0,
        };
        Ok(StoredDerived {
            dir: dir.to_path_buf(),
            covered,
            offsets_length,
            offsets,
            leaf_hashes: open(LEAF_HASHES_FILE)?,
            level4_hashes: open(LEVEL4_HASHES_FILE)?,
            tile_hashes: open(TILE_HASHES_FILE)?,
        })
    }

    /// Reads `count` consecutive items of `item_bytes` bytes from `file`, starting at item
    /// `start`, into `bytes`; nothing when `count` is zero.
    fn read_items(
        &self,
        file: &Option<File>,
        name: &str,
        item_bytes: u64,
        start: u64,
        count: u64,
        bytes: &mut Vec<u8>,
    ) -> Result<()> {
        bytes.clear();
        bytes.resize((count * item_bytes) as usize, 0);
        if let (Some(file), true) = (file, count > 0) {
            file.read_exact_at(bytes, start * item_bytes)
                .map_err(io_error("read", &self.dir.join(name)))?;
        }
        Ok(())
    }

    /// Loads into `chunk` the stored data that covered records in `start..end` need, including
    /// the level-4 nodes and tile roots of the groups and tiles that overlap the range.
    fn load_into(&self, chunk: &mut ChunkStored, start: u64, end: u64) -> Result<()> {
        let record_count = end.min(self.covered).saturating_sub(start);
        chunk.start = start;
        self.read_items(
            &self.offsets,
            OFFSETS_FILE,
            OFFSET_BYTES,
            start,
            record_count,
            &mut chunk.offsets,
        )?;
        self.read_items(
            &self.leaf_hashes,
            LEAF_HASHES_FILE,
            HASH_BYTES,
            start,
            record_count,
            &mut chunk.leaves,
        )?;
        let node_range = |width: u64| {
            let first = start / width;
            let last = end.div_ceil(width).min(self.covered / width);
            (first, last.saturating_sub(first))
        };
        let (level4_first, level4_count) = node_range(GROUP_WIDTH);
        chunk.level4_first = level4_first;
        self.read_items(
            &self.level4_hashes,
            LEVEL4_HASHES_FILE,
            HASH_BYTES,
            level4_first,
            level4_count,
            &mut chunk.level4,
        )?;
        let (tile_first, tile_count) = node_range(TILE_WIDTH);
        chunk.tile_first = tile_first;
        self.read_items(
            &self.tile_hashes,
            TILE_HASHES_FILE,
            HASH_BYTES,
            tile_first,
            tile_count,
            &mut chunk.tiles,
        )
    }
}

/// Item `position` of a run of items of `N` bytes, if there is one.
fn item<const N: usize>(bytes: &[u8], position: u64) -> Option<&[u8; N]> {
    let start = usize::try_from(position).ok()?.checked_mul(N)?;
    bytes.get(start..start.checked_add(N)?)?.try_into().ok()
}

/// Stored derived data for one step, as read from the files; lookups answer `None` outside the
/// covered records.
#[derive(Default)]
struct ChunkStored {
    start: u64,
    offsets: Vec<u8>,
    leaves: Vec<u8>,
    level4_first: u64,
    level4: Vec<u8>,
    tile_first: u64,
    tiles: Vec<u8>,
}

impl ChunkStored {
    fn offset(&self, index: u64) -> Option<u64> {
        item::<8>(&self.offsets, index.checked_sub(self.start)?)
            .map(|bytes| u64::from_le_bytes(*bytes))
    }

    fn leaf(&self, index: u64) -> Option<&Hash> {
        item::<32>(&self.leaves, index.checked_sub(self.start)?)
    }

    /// Compares a recomputed level-4 node or tile root with the stored one, if there is one.
    fn check_node(&self, level: u32, index: u64, hash: &Hash) -> Result<()> {
        let (first, stored) = match level {
            GROUP_LEVEL => (self.level4_first, &self.level4),
            TILE_HEIGHT => (self.tile_first, &self.tiles),
            _ => return Ok(()),
        };
        let position = index.checked_sub(first);
        match position.and_then(|position| item::<32>(stored, position)) {
            Some(stored) if stored != hash => Err(VerifyError::StoredNodeMismatch {
                level,
                first_record: index << level,
            }),
            _ => Ok(()),
        }
    }

    /// The root of the perfect subtree over `leaves` (a power of two of them, starting at leaf
    /// `first`), checking every level-4 node and tile root computed on the way.
    fn checked_root(&self, leaves: &[Hash], first: u64) -> Result<Hash> {
        if leaves.len() == 1 {
            return Ok(leaves[0]);
        }
        let half = leaves.len() / 2;
        let left = self.checked_root(&leaves[..half], first)?;
        let right = self.checked_root(&leaves[half..], first + half as u64)?;
        let hash = interior_hash(&left, &right);
        let level = leaves.len().trailing_zeros();
        self.check_node(level, first >> level, &hash)?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ledger, LedgerOptions, NoteSigner};

    fn signer() -> NoteSigner {
        NoteSigner::new(
            "cn-js-nanjing",
            ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
        )
        .unwrap()
    }

    fn record(index: u64) -> Vec<u8> {
        format!("record {index} {}", "z".repeat((index * 37 % 300) as usize)).into_bytes()
    }

    /// A ledger of 3000 records of 9 to 320 bytes with checkpoints at uneven sizes.
    fn build(dir: &Path) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ledger = Ledger::open(dir, signer(), LedgerOptions::default()).unwrap();
        runtime.block_on(async {
            let mut next = 0;
            for end in [1, 17, 256, 1000, 1001, 2049, 3000] {
                ledger
                    .append_batch((next..end).map(record).collect())
                    .await
                    .unwrap();
                ledger.checkpoint_now().await.unwrap();
                next = end;
            }
        });
    }

    #[test]
    fn every_chunk_size_gives_the_same_report() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let key = signer().verifier_key();
        let whole = verify_dir(dir.path(), &key, |_, _| {}).unwrap();
        assert_eq!(whole.records, 3000);
        assert_eq!(whole.checkpoints, 8);
        assert_eq!(whole.verified_tree_size, 3000);
        for chunk_bytes in [400, 1000, 4096, 65_536] {
            let mut steps = 0;
            let report =
                verify_dir_in_chunks(dir.path(), &key, |_, _| steps += 1, chunk_bytes).unwrap();
            assert_eq!(report, whole, "chunk {chunk_bytes}");
            assert!(steps > 1);
        }
    }

    #[test]
    fn tampering_is_found_at_the_same_record_for_every_chunk_size() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let key = signer().verifier_key();
        let offsets = std::fs::read(dir.path().join(OFFSETS_FILE)).unwrap();
        let records_path = dir.path().join(RECORDS_FILE);
        let original = std::fs::read(&records_path).unwrap();
        for index in [0u64, 15, 16, 255, 256, 999, 1000, 2048, 2999] {
            let at = index as usize * 8;
            let offset = u64::from_le_bytes(offsets[at..at + 8].try_into().unwrap()) as usize;
            let mut damaged = original.clone();
            damaged[offset + FRAME_HEADER_BYTES] ^= 0x40;
            std::fs::write(&records_path, &damaged).unwrap();
            for chunk_bytes in [400, 4096, CHUNK_BYTES] {
                let error =
                    verify_dir_in_chunks(dir.path(), &key, |_, _| {}, chunk_bytes).unwrap_err();
                assert!(
                    matches!(error, VerifyError::ChecksumMismatch { index: found } if found == index),
                    "record {index}, chunk {chunk_bytes}: {error}"
                );
            }
        }
        std::fs::write(&records_path, &original).unwrap();
    }

    /// Where the frames in `records` end and the zero-filled space begins.
    fn records_end(records: &[u8]) -> usize {
        let mut offset = 0;
        loop {
            let length =
                u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
            if length == 0 {
                return offset;
            }
            offset += FRAME_HEADER_BYTES + length;
        }
    }

    #[test]
    fn the_zero_filled_space_past_the_records_is_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let records = std::fs::read(dir.path().join(RECORDS_FILE)).unwrap();
        let end = records_end(&records);
        assert!(records.len() > end, "the writer zero-fills ahead");
        assert!(records[end..].iter().all(|&byte| byte == 0));
        // The third size ends the first chunk more than a frame's worth into the zeros, which
        // run on past it.
        for chunk_bytes in [400, 4096, end + 70_000, CHUNK_BYTES] {
            let report =
                verify_dir_in_chunks(dir.path(), &signer().verifier_key(), |_, _| {}, chunk_bytes)
                    .unwrap();
            assert_eq!(report.records, 3000);
            assert_eq!(report.torn_tail_bytes, 0);
        }
    }

    #[test]
    fn a_torn_tail_past_the_last_checkpoint_is_reported_not_failed() {
        let dir = tempfile::tempdir().unwrap();
        build(dir.path());
        let records_path = dir.path().join(RECORDS_FILE);
        let mut records = std::fs::read(&records_path).unwrap();
        // Written over the zero-filled space the writer keeps past its records: one whole frame
        // and the first 10 bytes of the next.
        let end = records_end(&records);
        let mut extra = Vec::new();
        crate::frame::encode_frame(b"unacknowledged", &mut extra);
        records[end..end + extra.len()].copy_from_slice(&extra);
        records[end + extra.len()..end + extra.len() + 10].copy_from_slice(&extra[..10]);
        records.truncate(end + extra.len() + 10);
        std::fs::write(&records_path, &records).unwrap();
        let report =
            verify_dir_in_chunks(dir.path(), &signer().verifier_key(), |_, _| {}, 4096).unwrap();
        assert_eq!(report.records, 3001);
        assert_eq!(report.verified_tree_size, 3000);
        assert_eq!(report.torn_tail_bytes, 10);
    }
}
