//! Salvaging a ledger that refuses to open: damage among synced records after the latest
//! checkpoint is cut off with every cut byte saved to a side file, damage among checkpointed
//! records is refused, and a healthy or open ledger is left alone.

use std::path::Path;

use civitas_ledger::{
    CheckpointRef, Error, Ledger, LedgerOptions, NoteSigner, RecordDamage, RepairMode, SalvageCut,
    SalvageReport, salvage_records, verify_dir,
};

use crate::{DATA_FILES, snapshot};

fn signer() -> NoteSigner {
    crate::signer_from(21)
}

fn options() -> LedgerOptions {
    crate::hourly_checkpoints()
}

fn record(n: u64) -> Vec<u8> {
    format!("record {n} {}", "s".repeat((n % 7 * 13) as usize)).into_bytes()
}

/// A ledger of 60 acknowledged records whose latest checkpoint (number 1; number 0 is the empty
/// tree's, signed at creation) covers the first 10, copied as a crash would leave it: without
/// the checkpoint a clean shutdown signs. Also the offsets of the 60 frames.
async fn crashed_ledger() -> (tempfile::TempDir, Vec<u64>) {
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
    let copy = tempfile::tempdir().unwrap();
    for name in DATA_FILES {
        std::fs::copy(dir.path().join(name), copy.path().join(name)).unwrap();
    }
    drop(ledger);
    let records = std::fs::read(copy.path().join("records.dat")).unwrap();
    let mut offsets = Vec::new();
    let mut offset = 0;
    while offsets.len() < 60 {
        offsets.push(offset as u64);
        let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 8 + length;
    }
    // The writer's zero-filled space follows the records.
    assert!(records[offset..].iter().all(|&byte| byte == 0));
    assert!(records.len() > offset + 4096);
    (copy, offsets)
}

/// A copy of `crashed` with `damage` done to its records.
fn damaged_copy(crashed: &Path, damage: impl Fn(&mut Vec<u8>)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in DATA_FILES {
        std::fs::copy(crashed.join(name), copy.path().join(name)).unwrap();
    }
    let path = copy.path().join("records.dat");
    let mut records = std::fs::read(&path).unwrap();
    damage(&mut records);
    std::fs::write(&path, &records).unwrap();
    copy
}

const LATEST: CheckpointRef = CheckpointRef {
    ordinal: 1,
    tree_size: 10,
};

#[tokio::test]
async fn damage_after_the_latest_checkpoint_is_cut_off_and_its_bytes_kept() {
    let (crashed, offsets) = crashed_ledger().await;
    let at = |index: usize| offsets[index] as usize;
    let records_end = at(59) + 8 + record(59).len();

    // The damaged record, where the records end once cut, and the valid frames cut off after it.
    let check = |damage: &dyn Fn(&mut Vec<u8>), index: u64, valid_frames_after: u64| {
        let dir = damaged_copy(crashed.path(), damage);
        let offset = offsets[index as usize];
        match Ledger::open(dir.path(), signer(), options()) {
            Err(Error::DamageBeforeValidFrames {
                index: found,
                offset: found_offset,
                ..
            }) => assert_eq!((found, found_offset), (index, offset)),
            other => panic!("expected the damage to stop the open, got {other:?}"),
        }
        let damaged = snapshot(dir.path());
        let side_name = format!("records.dat.cut-{offset}");
        let expected = |applied: bool| {
            SalvageReport::Cut(SalvageCut {
                damage: RecordDamage {
                    index,
                    offset,
                    reason: "frame checksum mismatch".into(),
                },
                checkpoint: LATEST,
                valid_frames_after,
                cut_bytes: (records_end - offset as usize) as u64,
                side_file: dir.path().join(&side_name),
                applied,
            })
        };

        // A dry run reports the cut and changes nothing.
        let report = salvage_records(dir.path(), RepairMode::DryRun).unwrap();
        assert_eq!(report, expected(false));
        assert_eq!(snapshot(dir.path()), damaged);

        let report = salvage_records(dir.path(), RepairMode::Apply).unwrap();
        assert_eq!(report, expected(true));
        let SalvageReport::Cut(cut) = &report else {
            unreachable!()
        };
        assert_eq!(cut.damage.last_good_index(), Some(index - 1));
        // The side file holds exactly the bytes from the damage to the end of the records,
        // without the zero-filled space after them.
        let damaged_records = &damaged["records.dat"];
        assert_eq!(
            std::fs::read(dir.path().join(&side_name)).unwrap(),
            damaged_records[offset as usize..records_end]
        );
        let cut_records = std::fs::read(dir.path().join("records.dat")).unwrap();
        assert_eq!(cut_records, damaged_records[..offset as usize]);
        let mut names: Vec<String> = snapshot(dir.path()).into_keys().collect();
        names.sort();
        let mut expected_names: Vec<String> = DATA_FILES.iter().map(|&n| n.into()).collect();
        expected_names.push(side_name.clone());
        expected_names.sort();
        assert_eq!(names, expected_names);

        // Verification passes on the cut records, and the ledger opens with the records before
        // the damage and goes on from there.
        let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
        assert_eq!((report.records, report.torn_tail_bytes), (index, 0));
        let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
        assert_eq!(ledger.size(), index);
        for n in 0..index {
            assert_eq!(ledger.read(n).unwrap(), record(n));
        }
        drop(ledger);
        let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
        assert_eq!(report.records, index);
        // Salvaging again finds nothing to do.
        assert_eq!(
            salvage_records(dir.path(), RepairMode::Apply).unwrap(),
            SalvageReport::NothingToDo {
                records: index,
                torn_tail_bytes: 0
            }
        );
    };

    // One flipped byte inside record 12: 47 acknowledged records follow it.
    check(&|records| records[at(12) + 20] ^= 0xFF, 12, 47);
    // The first record after the checkpoint: every checkpointed record is kept.
    check(&|records| records[at(10) + 9] ^= 1, 10, 49);
    // Damage again further on: frames are counted past it too, and it is cut off with the rest.
    check(
        &|records| {
            records[at(30) + 9] ^= 1;
            records[at(40) + 10] ^= 1;
        },
        30,
        28,
    );
    // A torn write after the last record is kept in the side file too, the zeros after it not.
    let with_torn_write = |records: &mut Vec<u8>| {
        records[at(20) + 9] ^= 1;
        records[records_end..records_end + 4].copy_from_slice(&300u32.to_le_bytes());
        records[records_end + 8..records_end + 40].fill(b'x');
    };
    let dir = damaged_copy(crashed.path(), with_torn_write);
    let damaged = std::fs::read(dir.path().join("records.dat")).unwrap();
    let SalvageReport::Cut(cut) = salvage_records(dir.path(), RepairMode::Apply).unwrap() else {
        panic!("expected a cut")
    };
    assert_eq!(cut.valid_frames_after, 39);
    assert_eq!(
        std::fs::read(&cut.side_file).unwrap(),
        damaged[at(20)..records_end + 40]
    );
    assert_eq!(
        Ledger::open(dir.path(), signer(), options())
            .unwrap()
            .size(),
        20
    );
}

#[tokio::test]
async fn a_salvage_stopped_before_cutting_goes_on_only_with_the_same_side_file() {
    let (crashed, offsets) = crashed_ledger().await;
    let offset = offsets[15];
    let dir = damaged_copy(crashed.path(), |records| {
        records[offset as usize + 12] ^= 0x10;
    });
    let damaged = std::fs::read(dir.path().join("records.dat")).unwrap();
    let side_path = dir.path().join(format!("records.dat.cut-{offset}"));

    // A side file with other bytes is not overwritten, and nothing is cut.
    std::fs::write(&side_path, b"something else").unwrap();
    let before = snapshot(dir.path());
    match salvage_records(dir.path(), RepairMode::Apply) {
        Err(error @ Error::SalvageSideFileDiffers(_)) => {
            assert!(error.to_string().contains("move it away"), "{error}");
        }
        other => panic!("expected the side file to be refused, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);

    // A salvage that saved the side file and stopped before cutting: done again, it cuts.
    let SalvageReport::Cut(cut) = salvage_records(dir.path(), RepairMode::DryRun).unwrap() else {
        panic!("expected a cut")
    };
    let saved = damaged[offset as usize..(offset + cut.cut_bytes) as usize].to_vec();
    std::fs::write(&side_path, &saved).unwrap();
    let SalvageReport::Cut(cut) = salvage_records(dir.path(), RepairMode::Apply).unwrap() else {
        panic!("expected a cut")
    };
    assert!(cut.applied);
    assert_eq!(std::fs::read(&side_path).unwrap(), saved);
    assert_eq!(
        std::fs::metadata(dir.path().join("records.dat"))
            .unwrap()
            .len(),
        offset
    );
    assert_eq!(
        Ledger::open(dir.path(), signer(), options())
            .unwrap()
            .size(),
        15
    );
}

#[tokio::test]
async fn damage_among_checkpointed_records_is_refused_and_nothing_changes() {
    let (crashed, offsets) = crashed_ledger().await;
    let at = |index: usize| offsets[index] as usize;
    for (damage, valid_frames_follow) in [
        (
            &(|records: &mut Vec<u8>| records[at(5) + 15] ^= 4) as &dyn Fn(&mut Vec<u8>),
            true,
        ),
        // The records cut short inside record 5: nothing valid follows, and still the
        // checkpoint covers the missing records.
        (&|records: &mut Vec<u8>| records[at(5) + 9..].fill(0), false),
    ] {
        let dir = damaged_copy(crashed.path(), damage);
        let before = snapshot(dir.path());
        // Opening trusts the derived files up to the checkpoint after a spot check, so only
        // verification is sure to see this damage.
        assert!(verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).is_err());
        for mode in [RepairMode::DryRun, RepairMode::Apply] {
            let report = salvage_records(dir.path(), mode).unwrap();
            let SalvageReport::Refused {
                damage,
                valid_frames_follow: follow,
                checkpoint,
            } = report
            else {
                panic!("expected a refusal, got {report:?}")
            };
            assert_eq!((damage.index, damage.offset), (5, offsets[5]));
            assert_eq!(follow, valid_frames_follow);
            assert_eq!(checkpoint, LATEST);
            assert_eq!(snapshot(dir.path()), before, "{mode:?}");
        }
    }

    // A checkpointed record rewritten with a valid checksum, and damage after the checkpoint:
    // cutting would not make the records match the checkpoint again, so salvaging fails.
    let dir = damaged_copy(crashed.path(), |records| {
        let payload = at(3) + 8..at(3) + 8 + record(3).len();
        records[payload.start] ^= 1;
        let checksum = crc32c::crc32c(&records[payload]);
        records[at(3) + 4..at(3) + 8].copy_from_slice(&checksum.to_le_bytes());
        records[at(20) + 9] ^= 1;
    });
    let before = snapshot(dir.path());
    match salvage_records(dir.path(), RepairMode::Apply) {
        Err(Error::CheckpointMismatch {
            ordinal: 1,
            tree_size: 10,
        }) => {}
        other => panic!("expected the records to contradict the checkpoint, got {other:?}"),
    }
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn a_healthy_ledger_or_a_torn_write_is_left_alone() {
    let (crashed, offsets) = crashed_ledger().await;
    let before = snapshot(crashed.path());
    for mode in [RepairMode::DryRun, RepairMode::Apply] {
        assert_eq!(
            salvage_records(crashed.path(), mode).unwrap(),
            SalvageReport::NothingToDo {
                records: 60,
                torn_tail_bytes: 0
            }
        );
        assert_eq!(snapshot(crashed.path()), before);
    }

    // Damage to the last record, with nothing valid after it, is a torn write that opening cuts
    // off by itself.
    let dir = damaged_copy(crashed.path(), |records| {
        records[offsets[59] as usize + 9] ^= 1;
    });
    let before = snapshot(dir.path());
    let length = before["records.dat"].len() as u64;
    assert_eq!(
        salvage_records(dir.path(), RepairMode::Apply).unwrap(),
        SalvageReport::NothingToDo {
            records: 59,
            torn_tail_bytes: length - offsets[59]
        }
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[tokio::test]
async fn salvaging_an_open_ledger_is_refused() {
    let (crashed, _) = crashed_ledger().await;
    let ledger = Ledger::open(crashed.path(), signer(), options()).unwrap();
    match salvage_records(crashed.path(), RepairMode::Apply) {
        Err(Error::AlreadyOpen(dir)) => assert_eq!(dir, crashed.path()),
        other => panic!("expected the open ledger to refuse salvage, got {other:?}"),
    }
    drop(ledger);

    // A directory without records is no ledger to salvage, and is left as it was.
    let empty = tempfile::tempdir().unwrap();
    match salvage_records(empty.path(), RepairMode::DryRun) {
        Err(error @ Error::Io { .. }) => {
            assert!(error.to_string().contains("records.dat"), "{error}")
        }
        other => panic!("expected a missing records file, got {other:?}"),
    }
    assert!(!empty.path().join("lock").exists());
}
