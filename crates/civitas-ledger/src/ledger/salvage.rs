//! Salvaging a ledger that refuses to open because of damage among its synced records.
//!
//! Opening cuts off a torn write by itself, but damage with a valid frame after it is not a torn
//! write, and the ledger refuses to open (see `recovery`). Salvaging is the supported way out for
//! an operator: it finds the damage the way opening does, refuses if the damage lies among
//! records that a signed checkpoint covers (others may hold that checkpoint, and a log cut below
//! it would contradict it), and otherwise saves every byte from the damage to the end of the
//! records in a side file before it truncates `records.dat` at the damage. Opening then
//! recomputes the derived files from the records.
//!
//! A crash at any step leaves the records whole, or cut with the side file already durable: the
//! side file is written under a temporary name, synced, renamed into place and its directory
//! synced before the records file is truncated. A repeated salvage after a crash before the
//! truncation finds the same damage and a side file with the same bytes, and goes on.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::recovery::{RecoveredTree, latest_checkpoint, scan_records};
use super::{
    Error, RECORDS_FILE, RepairMode, Result, create_temporary, io_error, open_for_repair,
    sync_directory,
};
use crate::frame::{FRAME_HEADER_BYTES, RecordsTail};
use crate::merkle::leaf_hash;

/// The first torn or corrupt record frame of `records.dat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDamage {
    /// The index the damaged record has (the number of valid records before it).
    pub index: u64,
    /// Where its frame starts in `records.dat`.
    pub offset: u64,
    pub reason: String,
}

impl RecordDamage {
    /// The last record before the damage, which is the last one kept; `None` if the damage is
    /// at the first record.
    pub fn last_good_index(&self) -> Option<u64> {
        self.index.checked_sub(1)
    }
}

/// The latest stored checkpoint, by its number in `checkpoints.dat` (from 0) and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointRef {
    pub ordinal: usize,
    pub tree_size: u64,
}

/// What cutting the records at the damage does (or did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SalvageCut {
    pub damage: RecordDamage,
    /// The latest checkpoint, which the records kept still reach.
    pub checkpoint: CheckpointRef,
    /// Valid record frames found after the damage, all cut off with it. They were synced and
    /// possibly acknowledged, and any receipt issued for them no longer verifies.
    pub valid_frames_after: u64,
    /// Bytes cut from `records.dat`: from the damage to the end of the records, without the
    /// zero-filled space the writer keeps after them. The side file holds exactly these.
    pub cut_bytes: u64,
    /// The side file, in the ledger directory, named after the damage's offset.
    pub side_file: PathBuf,
    /// Whether the cut was made; `false` in a dry run.
    pub applied: bool,
}

/// What [`salvage_records`] found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SalvageReport {
    /// Nothing that opening refuses: the records end cleanly (`torn_tail_bytes` is 0) or with a
    /// torn write, which opening cuts off by itself. Nothing was changed.
    NothingToDo { records: u64, torn_tail_bytes: u64 },
    /// The damage lies among the records that the latest checkpoint covers, which salvaging
    /// must not cut. Nothing was changed; the records file needs restoring from a backup.
    Refused {
        damage: RecordDamage,
        /// Whether a valid frame follows the damage.
        valid_frames_follow: bool,
        checkpoint: CheckpointRef,
    },
    /// The damage lies after the latest checkpoint's records: they were cut there (or would be,
    /// in a dry run).
    Cut(SalvageCut),
}

/// The name of the side file that keeps the bytes cut at `offset`.
pub fn salvage_side_file_name(offset: u64) -> String {
    format!("{RECORDS_FILE}.cut-{offset}")
}

/// Examines the ledger in `dir` for damage among its synced records after the latest signed
/// checkpoint, the damage that makes opening refuse, and with [`RepairMode::Apply`] cuts the
/// records there after saving the cut bytes to a side file. Takes the directory's lock, so it
/// fails with [`Error::AlreadyOpen`] while a node has the ledger open. Damage among checkpointed
/// records is [`SalvageReport::Refused`], and records that no longer match the latest
/// checkpoint are an error, since cutting would not make the ledger open.
pub fn salvage_records(dir: impl AsRef<Path>, mode: RepairMode) -> Result<SalvageReport> {
    let dir = dir.as_ref();
    let records_path = dir.join(RECORDS_FILE);
    let (records, _lock) = open_for_repair(dir)?;

    let (latest, latest_ordinal) = latest_checkpoint(dir)?;
    let checkpoint = CheckpointRef {
        ordinal: latest_ordinal,
        tree_size: latest.as_ref().map_or(0, |latest| latest.tree_size),
    };

    // Every record from the first is read, since damage below the latest checkpoint must be
    // found too, and the records kept must still match that checkpoint.
    let mut tree = RecoveredTree::empty();
    let scan = scan_records(&records, &records_path, 0, |_, payload| {
        tree.push_leaf(
            leaf_hash(payload),
            (FRAME_HEADER_BYTES + payload.len()) as u64,
        );
        if let Some(latest) = &latest
            && tree.size == latest.tree_size
            && tree.root()? != latest.root
        {
            return Err(Error::CheckpointMismatch {
                ordinal: latest_ordinal,
                tree_size: tree.size,
            });
        }
        Ok(())
    })?;
    let damage = |reason: String| RecordDamage {
        index: tree.size,
        offset: scan.end,
        reason,
    };
    let records_length = records
        .metadata()
        .map_err(io_error("inspect", &records_path))?
        .len();

    let valid_frames_follow = matches!(scan.tail, RecordsTail::DamageBeforeValidFrames { .. });
    let (damage, next_frame) = match scan.tail {
        RecordsTail::Torn { reason } | RecordsTail::DamageBeforeValidFrames { reason, .. }
            if tree.size < checkpoint.tree_size =>
        {
            return Ok(SalvageReport::Refused {
                damage: damage(reason),
                valid_frames_follow,
                checkpoint,
            });
        }
        RecordsTail::Clean | RecordsTail::Torn { .. } if tree.size < checkpoint.tree_size => {
            return Err(Error::RecordsMissing {
                ordinal: latest_ordinal,
                tree_size: checkpoint.tree_size,
                found: tree.size,
            });
        }
        RecordsTail::Clean => {
            return Ok(SalvageReport::NothingToDo {
                records: tree.size,
                torn_tail_bytes: 0,
            });
        }
        RecordsTail::Torn { .. } => {
            return Ok(SalvageReport::NothingToDo {
                records: tree.size,
                torn_tail_bytes: records_length - scan.end,
            });
        }
        RecordsTail::DamageBeforeValidFrames { reason, next_frame } => (damage(reason), next_frame),
    };

    // Frame boundaries are lost at each damaged frame, so the scan resumes at the next valid
    // frame found after it, until nothing valid follows.
    let mut valid_frames_after = 0;
    let mut frames_end = damage.offset;
    let mut resume_at = Some(next_frame);
    while let Some(start) = resume_at {
        let scan = scan_records(&records, &records_path, start, |_, _| {
            valid_frames_after += 1;
            Ok(())
        })?;
        frames_end = scan.end;
        resume_at = match scan.tail {
            RecordsTail::DamageBeforeValidFrames { next_frame, .. } => Some(next_frame),
            RecordsTail::Clean | RecordsTail::Torn { .. } => None,
        };
    }
    debug_assert!(valid_frames_after > 0);
    // A torn write after the last valid frame is evidence too; the zeros after it are not.
    let cut_end = frames_end.max(
        end_of_nonzero_bytes(&records, frames_end, records_length)
            .map_err(io_error("read", &records_path))?,
    );
    let side_file_name = salvage_side_file_name(damage.offset);
    let side_path = dir.join(&side_file_name);
    let mut cut = SalvageCut {
        cut_bytes: cut_end - damage.offset,
        damage,
        checkpoint,
        valid_frames_after,
        side_file: side_path.clone(),
        applied: false,
    };
    if mode == RepairMode::DryRun {
        return Ok(SalvageReport::Cut(cut));
    }

    save_cut_bytes(dir, &records, cut.damage.offset, cut_end, &side_path)?;
    tracing::warn!(
        index = cut.damage.index,
        offset = cut.damage.offset,
        bytes = cut.cut_bytes,
        valid_frames_after = cut.valid_frames_after,
        side_file = %side_path.display(),
        "salvage: cutting off the records from a damaged frame"
    );
    records
        .set_len(cut.damage.offset)
        .and_then(|()| records.sync_all())
        .map_err(io_error("truncate", &records_path))?;
    cut.applied = true;
    Ok(SalvageReport::Cut(cut))
}

/// Where the non-zero bytes of `file` between `from` and `length` end: every byte from the
/// returned offset up to `length` is zero.
fn end_of_nonzero_bytes(file: &File, from: u64, length: u64) -> std::io::Result<u64> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut end = length;
    while end > from {
        let chunk = (end - from).min(buffer.len() as u64) as usize;
        let start = end - chunk as u64;
        file.read_exact_at(&mut buffer[..chunk], start)?;
        if let Some(last) = buffer[..chunk].iter().rposition(|&byte| byte != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// Copies bytes `start..end` of the records into the side file at `side_path`, durably: written
/// under a temporary name, synced, renamed into place and the directory synced, so that the side
/// file is either absent or whole. A side file already there (left by a salvage that stopped
/// before cutting) must hold exactly these bytes.
fn save_cut_bytes(
    dir: &Path,
    records: &File,
    start: u64,
    end: u64,
    side_path: &Path,
) -> Result<()> {
    let records_path = dir.join(RECORDS_FILE);
    let mut buffer = vec![0u8; 1 << 20];
    if side_path.exists() {
        let existing = File::open(side_path).map_err(io_error("open", side_path))?;
        let existing_length = existing
            .metadata()
            .map_err(io_error("inspect", side_path))?
            .len();
        let mut same = existing_length == end - start;
        let mut compared = buffer.clone();
        let mut offset = start;
        while same && offset < end {
            let chunk = (end - offset).min(buffer.len() as u64) as usize;
            records
                .read_exact_at(&mut buffer[..chunk], offset)
                .map_err(io_error("read", &records_path))?;
            existing
                .read_exact_at(&mut compared[..chunk], offset - start)
                .map_err(io_error("read", side_path))?;
            same = buffer[..chunk] == compared[..chunk];
            offset += chunk as u64;
        }
        if !same {
            return Err(Error::SalvageSideFileDiffers(side_path.to_path_buf()));
        }
        return sync_directory(dir);
    }

    let mut temporary_name = side_path.as_os_str().to_owned();
    temporary_name.push(".partial");
    let temporary_path = PathBuf::from(temporary_name);
    let temporary = create_temporary(&temporary_path)?;
    let mut offset = start;
    while offset < end {
        let chunk = (end - offset).min(buffer.len() as u64) as usize;
        records
            .read_exact_at(&mut buffer[..chunk], offset)
            .map_err(io_error("read", &records_path))?;
        temporary
            .write_all_at(&buffer[..chunk], offset - start)
            .map_err(io_error("write", &temporary_path))?;
        offset += chunk as u64;
    }
    temporary
        .sync_all()
        .map_err(io_error("sync", &temporary_path))?;
    drop(temporary);
    std::fs::rename(&temporary_path, side_path).map_err(io_error("rename into", side_path))?;
    sync_directory(dir)
}
