//! Rebuilding the files derived from the records (offsets, leaf hashes, level-4 nodes, tile
//! roots) when they are damaged and the records are not, as the scrub tells it.
//!
//! Opening rebuilds them from record 0 when its spot check fails, but the spot check reads only
//! the end of what the latest checkpoint covers, so it passes over damage further in. This repair
//! recomputes every entry with opening's replay (`recovery::replay_records`, which checks the
//! tree against every stored checkpoint on the way) and compares it with the stored files; with
//! [`RepairMode::Apply`] it replaces the files that differ.
//!
//! Nothing is written until a first replay has found that the records give the root of every
//! signed checkpoint: if they do not, the records are what is damaged, and the repair refuses.
//! A second replay then writes each file that differs under a temporary name (`NAME.rebuilt`),
//! which is synced and renamed into place before the directory is synced. A crash leaves each
//! derived file whole, old or new, and the ledger opens either way: new files agree with the
//! records, and a mix that fails opening's spot check is rebuilt by opening. A temporary file
//! left behind is never read; the next rebuild writes over it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::recovery::{
    CheckpointChecks, DERIVED_FILES, DerivedData, REPLAY_FLUSH_RECORDS, RecoveredTree,
    derived_entries, latest_checkpoint, replay_records,
};
use super::{
    CHECKPOINTS_FILE, CheckpointRef, RECORDS_FILE, RepairMode, Result, create_temporary, io_error,
    open_for_repair, sync_directory,
};
use crate::checkpoint_file::CheckpointReader;

/// Where a stored derived file first differs from what the records give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedFileDifference {
    /// The file's name in the ledger directory.
    pub file: &'static str,
    /// The first entry whose stored bytes differ from the recomputed ones, are missing, or are
    /// one too many.
    pub first_entry: u64,
    /// The whole entries the stored file holds.
    pub stored_entries: u64,
    /// The entries it should hold: one per record for offsets and leaf hashes, one per full
    /// 16-record group or 256-record tile.
    pub expected_entries: u64,
}

/// What [`rebuild_derived_files`] found, and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedRebuild {
    /// The records the derived files were recomputed from.
    pub records: u64,
    /// The stored checkpoints, every one of which the recomputed tree matched.
    pub checkpoints: usize,
    /// Bytes of a torn write after the records, which opening cuts off; 0 if there is none.
    pub torn_tail_bytes: u64,
    /// The derived files that differ from what the records give.
    pub differences: Vec<DerivedFileDifference>,
    /// Whether the files that differ were replaced: `false` in a dry run, or when none differs.
    pub applied: bool,
}

/// Recomputes the files derived from the records of the ledger in `dir`, compares them with the
/// stored ones and, with [`RepairMode::Apply`], replaces those that differ (see the module's
/// documentation for how). Takes the directory's lock, so it fails with
/// [`Error::AlreadyOpen`](super::Error::AlreadyOpen) while a node has the ledger open. Changes
/// nothing when the records do not give the tree the checkpoints sign: a record that no longer
/// matches a checkpoint's root ([`Error::CheckpointMismatch`](super::Error::CheckpointMismatch)),
/// a damaged frame among the records the latest covers
/// ([`Error::CorruptRecord`](super::Error::CorruptRecord)) or records that stop short of it
/// ([`Error::RecordsMissing`](super::Error::RecordsMissing)); nor at damage past the latest
/// checkpoint with valid records after it
/// ([`Error::DamageBeforeValidFrames`](super::Error::DamageBeforeValidFrames)), which is for
/// `salvage_records`.
pub fn rebuild_derived_files(dir: impl AsRef<Path>, mode: RepairMode) -> Result<DerivedRebuild> {
    let dir = dir.as_ref();
    let (records, _lock) = open_for_repair(dir)?;
    let (latest, latest_ordinal) = latest_checkpoint(dir)?;
    let latest = CheckpointRef {
        ordinal: latest_ordinal,
        tree_size: latest.map_or(0, |latest| latest.tree_size),
    };
    let checkpoints_path = dir.join(CHECKPOINTS_FILE);
    let checkpoints = File::open(&checkpoints_path).map_err(io_error("open", &checkpoints_path))?;

    let mut stored = Vec::with_capacity(DERIVED_FILES.len());
    for (name, _) in DERIVED_FILES {
        stored.push(StoredComparison::open(dir, name)?);
    }
    let recomputed = recompute(dir, &records, &checkpoints, latest, |file, at, bytes| {
        stored[file].compare(at, bytes)
    })?;
    let differences: Vec<DerivedFileDifference> = stored
        .iter()
        .zip(DERIVED_FILES)
        .zip(derived_entries(recomputed.size))
        .filter_map(|((stored, (name, entry_bytes)), expected_entries)| {
            let first_byte = stored.difference(expected_entries * entry_bytes)?;
            Some(DerivedFileDifference {
                file: name,
                first_entry: first_byte / entry_bytes,
                stored_entries: stored.length / entry_bytes,
                expected_entries,
            })
        })
        .collect();
    let records_path = dir.join(RECORDS_FILE);
    let torn_tail_bytes = if recomputed.torn {
        let records_length = records
            .metadata()
            .map_err(io_error("inspect", &records_path))?
            .len();
        records_length - recomputed.records_end
    } else {
        0
    };
    let mut report = DerivedRebuild {
        records: recomputed.size,
        checkpoints: recomputed.checkpoints,
        torn_tail_bytes,
        differences,
        applied: false,
    };
    if mode == RepairMode::DryRun || report.differences.is_empty() {
        return Ok(report);
    }

    // The records give every checkpoint's root: the files that differ are written anew.
    let mut rebuilt: Vec<Option<(PathBuf, File)>> = Vec::with_capacity(DERIVED_FILES.len());
    for (name, _) in DERIVED_FILES {
        if !report
            .differences
            .iter()
            .any(|difference| difference.file == name)
        {
            rebuilt.push(None);
            continue;
        }
        let path = dir.join(format!("{name}.rebuilt"));
        let file = create_temporary(&path)?;
        rebuilt.push(Some((path, file)));
    }
    let again = recompute(
        dir,
        &records,
        &checkpoints,
        latest,
        |file, at, bytes| match &rebuilt[file] {
            Some((path, file)) => file
                .write_all_at(bytes, at)
                .map_err(io_error("write", path)),
            None => Ok(()),
        },
    )?;
    debug_assert_eq!(again.size, recomputed.size);
    for ((path, file), (name, _)) in rebuilt
        .into_iter()
        .zip(DERIVED_FILES)
        .filter_map(|(rebuilt, file)| Some((rebuilt?, file)))
    {
        file.sync_all().map_err(io_error("sync", &path))?;
        drop(file);
        let target = dir.join(name);
        std::fs::rename(&path, &target).map_err(io_error("rename into", &target))?;
    }
    sync_directory(dir)?;
    tracing::warn!(
        dir = %dir.display(),
        records = report.records,
        files = ?report.differences.iter().map(|difference| difference.file).collect::<Vec<_>>(),
        "rebuilt derived ledger files from the records"
    );
    report.applied = true;
    Ok(report)
}

/// What a replay of every record gave.
struct Recomputed {
    size: u64,
    records_end: u64,
    /// Whether a torn write follows the records.
    torn: bool,
    /// The checkpoints the tree matched.
    checkpoints: usize,
}

/// Replays every record from the first, as opening does when it rebuilds the derived files,
/// checking the root at every stored checkpoint's size, and hands the derived files' bytes to
/// `sink` in order, a step at a time (see `DerivedData::flush`).
fn recompute(
    dir: &Path,
    records: &File,
    checkpoints: &File,
    latest: CheckpointRef,
    mut sink: impl FnMut(usize, u64, &[u8]) -> Result<()>,
) -> Result<Recomputed> {
    let checkpoints_path = dir.join(CHECKPOINTS_FILE);
    let checkpoints_length = checkpoints
        .metadata()
        .map_err(io_error("inspect", &checkpoints_path))?
        .len();
    let mut checks = CheckpointChecks::new(
        dir,
        Some(CheckpointReader::new(checkpoints, 0, 0, checkpoints_length)),
    )?;
    let mut tree = RecoveredTree::empty();
    checks.check(&tree)?;
    let mut derived = DerivedData::after(&tree);
    let torn = replay_records(
        records,
        &dir.join(RECORDS_FILE),
        &mut tree,
        &mut checks,
        latest,
        |offset, leaf, nodes| {
            derived.push(offset, leaf, nodes);
            if derived.records() >= REPLAY_FLUSH_RECORDS {
                derived.flush(&mut sink)?;
            }
            Ok(())
        },
    )?;
    derived.flush(&mut sink)?;
    Ok(Recomputed {
        size: tree.size,
        records_end: tree.records_end,
        torn: torn.is_some(),
        checkpoints: checks.matched,
    })
}

/// A stored derived file, compared step by step with the bytes the records give.
struct StoredComparison {
    path: PathBuf,
    /// `None` when the file does not exist.
    file: Option<File>,
    length: u64,
    /// The first byte found to differ.
    first_difference: Option<u64>,
    buffer: Vec<u8>,
}

impl StoredComparison {
    fn open(dir: &Path, name: &str) -> Result<StoredComparison> {
        let path = dir.join(name);
        let (file, length) = match File::open(&path) {
            Ok(file) => {
                let length = file.metadata().map_err(io_error("inspect", &path))?.len();
                (Some(file), length)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => (None, 0),
            Err(error) => return Err(io_error("open", &path)(error)),
        };
        Ok(StoredComparison {
            path,
            file,
            length,
            first_difference: None,
            buffer: Vec::new(),
        })
    }

    /// Compares the stored bytes from byte `at` on with `expected`, unless a difference was
    /// found before.
    fn compare(&mut self, at: u64, expected: &[u8]) -> Result<()> {
        if self.first_difference.is_some() || expected.is_empty() {
            return Ok(());
        }
        let available = self.length.saturating_sub(at).min(expected.len() as u64) as usize;
        self.buffer.resize(available, 0);
        if let Some(file) = &self.file {
            file.read_exact_at(&mut self.buffer, at)
                .map_err(io_error("read", &self.path))?;
        }
        let same = self
            .buffer
            .iter()
            .zip(expected)
            .take_while(|(stored, expected)| stored == expected)
            .count();
        if same < expected.len() {
            self.first_difference = Some(at + same as u64);
        }
        Ok(())
    }

    /// The first byte where the stored file differs from the `expected_length` bytes compared:
    /// a byte that differs, or where the file is shorter or longer.
    fn difference(&self, expected_length: u64) -> Option<u64> {
        self.first_difference
            .or((self.length != expected_length).then_some(self.length.min(expected_length)))
    }
}
