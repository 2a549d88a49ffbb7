//! Damage that a crash cannot explain. A crash tears only the write in progress: the end of the
//! records written since the last sync, or the last checkpoint frame. Damage with valid data
//! after it is corruption, and the ledger refuses to open (and `verify_dir` fails) naming where
//! it is, instead of cutting off records and checkpoints that were synced and acknowledged.

use std::path::{Path, PathBuf};

use civitas_ledger::{Error, Ledger, LedgerOptions, NoteSigner, VerifyError, verify_dir};

use crate::{DATA_FILES, snapshot};

fn signer() -> NoteSigner {
    crate::signer_from(13)
}

fn options() -> LedgerOptions {
    crate::hourly_checkpoints()
}

fn record(n: u64) -> Vec<u8> {
    format!("record {n} {}", "r".repeat(100)).into_bytes()
}

/// Copies the ledger's files as they are now, which is what a crash at this moment leaves on
/// disk: every acknowledged record is synced, and no checkpoint is signed on the way out.
fn crashed_copy(from: &Path) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in DATA_FILES {
        std::fs::copy(from.join(name), copy.path().join(name)).unwrap();
    }
    copy
}

/// Byte offsets of the frames in `records`, walked from the start.
fn frame_offsets(records: &[u8]) -> Vec<u64> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    loop {
        let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
        if length == 0 {
            return offsets;
        }
        offsets.push(offset as u64);
        offset += 8 + length;
    }
}

/// What opening a damaged ledger gives, and what verifying it first says.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// It opens with this many records; verification passes and reports a torn tail.
    Opens { size: u64 },
    /// It refuses, naming the damaged record, where its frame starts and where a valid frame
    /// follows; verification fails the same way, and the file is left as it was.
    Refused {
        index: u64,
        offset: u64,
        next_frame: u64,
    },
}

/// Damage past the latest checkpoint, at size 10, of a ledger of 60 acknowledged records. The
/// derived files hold all 60 records, so recovery would shorten them to the checkpoint's size if
/// it changed them before deciding.
#[tokio::test]
async fn damage_before_acknowledged_records_is_corruption_not_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
    ledger
        .append_batch((0..10).map(record).collect())
        .await
        .unwrap();
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, 10);
    for n in 10..60 {
        assert_eq!(ledger.append(record(n)).await.unwrap(), n);
    }
    let crashed = crashed_copy(dir.path());
    drop(ledger);
    let original = std::fs::read(crashed.path().join("records.dat")).unwrap();
    let offsets = frame_offsets(&original);
    assert_eq!(offsets.len(), 60);
    let at = |index: usize| offsets[index] as usize;

    let check = |damage: &dyn Fn(&mut Vec<u8>), expected: Outcome| {
        let copy = crashed_copy(crashed.path());
        let records_path = copy.path().join("records.dat");
        let mut records = original.clone();
        damage(&mut records);
        std::fs::write(&records_path, &records).unwrap();
        let before = snapshot(copy.path());
        let verified = verify_dir(copy.path(), &signer().verifier_key(), |_, _| {});
        let opened = Ledger::open(copy.path(), signer(), options());
        match expected {
            Outcome::Opens { size } => {
                let report = verified.unwrap();
                assert_eq!(report.records, size);
                assert!(report.torn_tail_bytes > 0);
                let ledger = opened.unwrap();
                assert_eq!(ledger.size(), size);
                for index in 0..size {
                    assert_eq!(ledger.read(index).unwrap(), record(index));
                }
            }
            Outcome::Refused {
                index,
                offset,
                next_frame,
            } => {
                match verified {
                    Err(
                        ref error @ VerifyError::DamageBeforeValidFrames {
                            index: found,
                            offset: found_offset,
                            next_frame: found_next,
                            ..
                        },
                    ) => {
                        assert_eq!(
                            (found, found_offset, found_next),
                            (index, offset, next_frame)
                        );
                        assert_eq!(error.first_bad_record(), Some(index));
                    }
                    other => panic!("verify: expected damage before valid frames, got {other:?}"),
                }
                match opened {
                    Err(
                        ref error @ Error::DamageBeforeValidFrames {
                            index: found,
                            offset: found_offset,
                            next_frame: found_next,
                            ..
                        },
                    ) => {
                        assert_eq!(
                            (found, found_offset, found_next),
                            (index, offset, next_frame)
                        );
                        let message = error.to_string();
                        assert!(
                            message.starts_with(&format!("record {index} at byte {offset} ")),
                            "{message}"
                        );
                    }
                    other => panic!("open: expected damage before valid frames, got {other:?}"),
                }
                assert!(
                    snapshot(copy.path()) == before,
                    "the refused open changed a file"
                );
            }
        }
    };

    // One flipped byte inside record 12: 48 acknowledged records follow it.
    check(
        &|records| records[at(12) + 20] ^= 0xFF,
        Outcome::Refused {
            index: 12,
            offset: offsets[12],
            next_frame: offsets[13],
        },
    );
    // A length that no longer makes sense, zeroed or garbled.
    check(
        &|records| records[at(30)..at(30) + 4].fill(0),
        Outcome::Refused {
            index: 30,
            offset: offsets[30],
            next_frame: offsets[31],
        },
    );
    check(
        &|records| records[at(30) + 3] = 0x7F,
        Outcome::Refused {
            index: 30,
            offset: offsets[30],
            next_frame: offsets[31],
        },
    );
    // Damage to the second last record still leaves the last one after it.
    check(
        &|records| records[at(58) + 9] ^= 1,
        Outcome::Refused {
            index: 58,
            offset: offsets[58],
            next_frame: offsets[59],
        },
    );
    // The last record damaged, with nothing valid after it: what a torn write looks like.
    check(
        &|records| records[at(59) + 9] ^= 1,
        Outcome::Opens { size: 59 },
    );
    check(
        &|records| records[at(59) + 2] = 0x7F,
        Outcome::Opens { size: 59 },
    );
    // Half of the last frame never reached the disk.
    check(
        &|records| records[at(59) + 60..at(59) + 8 + record(59).len()].fill(0),
        Outcome::Opens { size: 59 },
    );
}

/// A ledger with a checkpoint signed after each of 50 appends, and the frame offsets of its 51
/// checkpoints (the first, of size 0, signed at creation).
async fn checkpointed_directory() -> (tempfile::TempDir, Vec<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
    for n in 0..50 {
        ledger.append(record(n)).await.unwrap();
        assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, n + 1);
    }
    drop(ledger);
    let checkpoints = std::fs::read(dir.path().join("checkpoints.dat")).unwrap();
    let mut offsets = Vec::new();
    let mut offset = 0;
    while offset < checkpoints.len() {
        offsets.push(offset as u64);
        let length =
            u32::from_le_bytes(checkpoints[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 8 + length;
    }
    assert_eq!(offsets.len(), 51);
    (dir, offsets)
}

#[tokio::test]
async fn only_an_incomplete_last_checkpoint_frame_is_a_torn_write() {
    let (dir, offsets) = checkpointed_directory().await;
    let path: PathBuf = dir.path().join("checkpoints.dat");
    let original = std::fs::read(&path).unwrap();
    let at = |ordinal: usize| offsets[ordinal] as usize;

    // `Ok(latest tree size)` after opening, or `Err(offset)` of the damage it refused.
    let check = |damage: &dyn Fn(&mut Vec<u8>), expected: Result<u64, u64>| {
        let mut checkpoints = original.clone();
        damage(&mut checkpoints);
        std::fs::write(&path, &checkpoints).unwrap();
        let before = snapshot(dir.path());
        let verified = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {});
        match expected {
            Ok(latest) => {
                verified.unwrap();
                let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
                let found = ledger.checkpoint_at_or_after(latest).unwrap().unwrap();
                assert_eq!(found.tree_size, latest);
                assert_eq!(ledger.root(latest).unwrap(), found.root);
                drop(ledger);
            }
            Err(offset) => {
                match verified {
                    Err(VerifyError::CorruptCheckpoints { offset: found, .. }) => {
                        assert_eq!(found, offset);
                    }
                    other => panic!("verify: expected corrupt checkpoints, got {other:?}"),
                }
                match Ledger::open(dir.path(), signer(), options()) {
                    Err(Error::CorruptCheckpoints { offset: found, .. }) => {
                        assert_eq!(found, offset);
                    }
                    other => panic!("open: expected corrupt checkpoints, got {other:?}"),
                }
                // Nothing was cut off, nor changed.
                assert!(
                    snapshot(dir.path()) == before,
                    "the refused open changed a file"
                );
            }
        }
        std::fs::write(&path, &original).unwrap();
    };

    // One flipped byte in checkpoint 10, with 40 signed checkpoints after it.
    check(&|bytes| bytes[at(10) + 12] ^= 1, Err(offsets[10]));
    // In the second last: the last one follows it.
    check(&|bytes| bytes[at(49) + 12] ^= 1, Err(offsets[49]));
    // A garbled length, in the middle or at the end with data after it.
    check(&|bytes| bytes[at(20) + 3] = 0x7F, Err(offsets[20]));
    check(
        &|bytes| bytes.extend_from_slice(&[0x22; 20]),
        Err(original.len() as u64),
    );
    // The last frame damaged whole, or cut short: a torn write, cut off.
    check(&|bytes| bytes[at(50) + 12] ^= 1, Ok(49));
    check(&|bytes| bytes.truncate(at(50) + 30), Ok(49));
    check(&|bytes| bytes.truncate(at(50) + 5), Ok(49));
    // Space the file grew by whose data never reached the disk.
    check(&|bytes| bytes.extend_from_slice(&[0; 300]), Ok(50));
    check(
        &|bytes| {
            let last = at(50);
            bytes[last..].fill(0);
        },
        Ok(49),
    );
}
