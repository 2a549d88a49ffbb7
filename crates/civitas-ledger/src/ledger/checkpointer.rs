//! The checkpointer thread: signs the tree head whenever there are new records, at least once per
//! interval, and on demand.

use std::os::unix::fs::FileExt;
use std::time::Duration;

use tokio::sync::oneshot;

use super::{
    CHECKPOINTS_FILE, Checkpoint, Error, LEAF_HASHES_FILE, LEVEL4_HASHES_FILE, OFFSETS_FILE,
    Result, Shared, TILE_HASHES_FILE, io_error, lock, read_guard, write_guard,
};
use crate::checkpoint_file::{CheckpointFileError, CheckpointReader};
use crate::frame::{FRAME_HEADER_BYTES, encode_frame};

#[derive(Default)]
pub(crate) struct CheckpointControl {
    pub(crate) stop: bool,
    pub(crate) waiters: Vec<oneshot::Sender<Result<Checkpoint>>>,
}

pub(crate) fn run(shared: &Shared, interval: Duration) {
    let mut control = lock(&shared.checkpoint_control);
    loop {
        if !control.stop && control.waiters.is_empty() {
            control = shared
                .checkpoint_wakeup
                .wait_timeout(control, interval)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        let stop = control.stop;
        let waiters = std::mem::take(&mut control.waiters);
        drop(control);
        // A failure is logged where it happens and then stays (see `write_checkpoint_if_needed`),
        // so later ticks only answer waiters with it.
        let outcome = write_checkpoint_if_needed(shared);
        for waiter in waiters {
            let answer = match &outcome {
                Ok(checkpoint) => Ok(checkpoint.clone()),
                Err(error) => Err(Error::CheckpointFailed(error.to_string())),
            };
            let _ = waiter.send(answer);
        }
        if stop {
            return;
        }
        control = lock(&shared.checkpoint_control);
    }
}

/// Signs and stores a checkpoint of the current size unless the latest one already covers it.
/// Only the checkpointer thread (and `open`, before that thread starts) calls this, so appends to
/// the checkpoints file never race.
///
/// A failure is kept in `Shared::failure`, like the writer's: once a sync has failed, the kernel
/// may have dropped the dirty pages it was to write, and a later sync of the same file can report
/// success all the same. Signing then would vouch for derived files that recovery trusts up to
/// the checkpoint without reading the records. So nothing is signed, and no append taken, until
/// the ledger is opened again and recovery has recomputed what the files really hold.
pub(crate) fn write_checkpoint_if_needed(shared: &Shared) -> Result<Checkpoint> {
    let size = shared.size();
    if let Some(latest) = &read_guard(&shared.checkpoints).latest
        && latest.tree_size >= size
    {
        return Ok(latest.clone());
    }
    if let Some(failure) = shared.failure.get() {
        return Err(Error::Failed(failure.clone()));
    }
    sign_checkpoint(shared, size).inspect_err(|error| {
        tracing::error!(
            %error,
            "signing a ledger checkpoint failed; refusing appends and checkpoints until reopened"
        );
        let _ = shared.failure.set(error.to_string());
    })
}

/// Makes the derived files durable, then signs and stores a checkpoint of `size` records.
fn sign_checkpoint(shared: &Shared, size: u64) -> Result<Checkpoint> {
    // Recovery trusts the derived files up to the latest checkpoint, so they must be durable
    // before a checkpoint that covers them is.
    for (file, name) in [
        (&shared.files.offsets, OFFSETS_FILE),
        (&shared.files.leaf_hashes, LEAF_HASHES_FILE),
        (&shared.files.level4_hashes, LEVEL4_HASHES_FILE),
        (&shared.files.tile_hashes, TILE_HASHES_FILE),
    ] {
        file.sync_data()
            .map_err(io_error("sync", &shared.path(name)))?;
    }
    let root = shared.root(size)?;
    let note = shared.signer.sign_checkpoint(size, &root);
    let mut frame = Vec::with_capacity(FRAME_HEADER_BYTES + note.len());
    encode_frame(note.as_bytes(), &mut frame);
    let offset = read_guard(&shared.checkpoints).file_end;
    let path = shared.path(CHECKPOINTS_FILE);
    shared
        .files
        .checkpoints
        .write_all_at(&frame, offset)
        .map_err(io_error("write", &path))?;
    shared
        .files
        .checkpoints
        .sync_data()
        .map_err(io_error("sync", &path))?;
    let checkpoint = Checkpoint {
        note,
        tree_size: size,
        root,
    };
    write_guard(&shared.checkpoints).record(
        checkpoint.clone(),
        offset,
        offset + frame.len() as u64,
    );
    tracing::debug!(tree_size = size, "signed ledger checkpoint");
    Ok(checkpoint)
}

/// Up to `limit` stored checkpoints of at least `from_size` records, oldest first: found from the
/// sparse index by reading forward at most `CHECKPOINT_INDEX_STRIDE` frames, then read in one pass.
pub(crate) fn checkpoints_from(
    shared: &Shared,
    from_size: u64,
    limit: usize,
) -> Result<Vec<Checkpoint>> {
    let (start, end) = {
        let book = read_guard(&shared.checkpoints);
        match &book.latest {
            Some(latest) if latest.tree_size >= from_size && limit > 0 => {}
            _ => return Ok(Vec::new()),
        }
        let position = book
            .sparse
            .partition_point(|location| location.tree_size < from_size);
        let start = position.saturating_sub(1);
        (book.sparse[start], book.file_end)
    };
    let mut reader = CheckpointReader::new(&shared.files.checkpoints, start.offset, 0, end);
    let path = shared.path(CHECKPOINTS_FILE);
    let mut found: Vec<Checkpoint> = Vec::new();
    while found.len() < limit {
        let stored = reader.next_note().map_err(|error| match error {
            CheckpointFileError::Io(source) => io_error("read", &path)(source),
            CheckpointFileError::Corrupt { offset, reason } => {
                Error::CorruptCheckpoints { offset, reason }
            }
        })?;
        let Some(stored) = stored else {
            // `end` was read with a latest checkpoint of at least `from_size`, so the file holds
            // at least one to return.
            if found.is_empty() {
                return Err(Error::CorruptCheckpoints {
                    offset: reader.offset(),
                    reason: "a checkpoint listed in memory is missing from the file".into(),
                });
            }
            break;
        };
        let checkpoint =
            Checkpoint::parse_trusted(stored.note).map_err(|error| Error::CorruptCheckpoints {
                offset: stored.offset,
                reason: error.to_string(),
            })?;
        let wanted = found
            .last()
            .map_or(from_size, |previous| previous.tree_size + 1);
        if checkpoint.tree_size >= wanted {
            found.push(checkpoint);
        }
    }
    Ok(found)
}
