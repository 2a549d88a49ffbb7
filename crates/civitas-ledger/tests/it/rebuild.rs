//! Rebuilding the derived files: damage in them is reported per file and, with `Apply`, repaired
//! from the records, while records that no longer give the signed checkpoints' roots, and a
//! ledger that is open, are refused with nothing changed.

use std::path::Path;
use std::time::Duration;

use civitas_ledger::{
    DerivedFileDifference, DerivedRebuild, Error, Ledger, LedgerOptions, NoteSigner, RepairMode,
    rebuild_derived_files, verify_dir,
};

use crate::{DATA_FILES, snapshot};

fn signer() -> NoteSigner {
    crate::signer_from(37)
}

/// 600 records: two full tiles and 88 records more.
const RECORDS: u64 = 600;

fn record(n: u64) -> Vec<u8> {
    format!("record {n} {}", "r".repeat((n % 11 * 17) as usize)).into_bytes()
}

/// A closed ledger of `RECORDS` records, with checkpoints at 0 (its creation), 200 and 600.
async fn healthy_ledger() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), signer(), crate::hourly_checkpoints()).unwrap();
    ledger
        .append_batch((0..200).map(record).collect())
        .await
        .unwrap();
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, 200);
    ledger
        .append_batch((200..RECORDS).map(record).collect())
        .await
        .unwrap();
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, RECORDS);
    dir
}

/// A copy of the ledger in `from`, with `damage` done to it.
fn damaged_copy(from: &Path, damage: impl Fn(&Path)) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    for name in DATA_FILES {
        std::fs::copy(from.join(name), copy.path().join(name)).unwrap();
    }
    damage(copy.path());
    copy
}

/// Whether the data files of the ledgers in `a` and `b` hold the same bytes (compared whole,
/// not printed: they are large).
fn same_data_files(a: &Path, b: &Path) -> bool {
    DATA_FILES
        .iter()
        .all(|name| std::fs::read(a.join(name)).unwrap() == std::fs::read(b.join(name)).unwrap())
}

/// Flips one byte of `file` in `dir` at `position`.
fn flip(dir: &Path, file: &str, position: u64) {
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[position as usize] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
}

fn difference(file: &'static str, first_entry: u64, entries: u64) -> DerivedFileDifference {
    DerivedFileDifference {
        file,
        first_entry,
        stored_entries: entries,
        expected_entries: entries,
    }
}

fn report(differences: Vec<DerivedFileDifference>, applied: bool) -> DerivedRebuild {
    DerivedRebuild {
        records: RECORDS,
        checkpoints: 3,
        torn_tail_bytes: 0,
        differences,
        applied,
    }
}

#[tokio::test]
async fn damaged_derived_files_are_reported_then_rebuilt_from_the_records() {
    let healthy = healthy_ledger().await;
    let dir = damaged_copy(healthy.path(), |dir| {
        flip(dir, "record-offsets.dat", 77 * 8);
        flip(dir, "leaf-hashes.dat", 123 * 32 + 4);
        flip(dir, "level4-hashes.dat", 20 * 32 + 31);
        flip(dir, "tile-hashes.dat", 5);
    });
    // Opening's spot check passes over damage before the last tile, so such a ledger opens;
    // only the whole-directory verification sees it.
    let verifier_key = signer().verifier_key();
    assert!(verify_dir(dir.path(), &verifier_key, |_, _| {}).is_err());
    let damaged = snapshot(dir.path());

    let expected_differences = vec![
        difference("record-offsets.dat", 77, RECORDS),
        difference("leaf-hashes.dat", 123, RECORDS),
        difference("level4-hashes.dat", 20, RECORDS / 16),
        difference("tile-hashes.dat", 0, 2),
    ];
    assert_eq!(
        rebuild_derived_files(dir.path(), RepairMode::DryRun).unwrap(),
        report(expected_differences.clone(), false)
    );
    assert!(snapshot(dir.path()) == damaged, "a dry run changes nothing");

    assert_eq!(
        rebuild_derived_files(dir.path(), RepairMode::Apply).unwrap(),
        report(expected_differences, true)
    );
    // The files are those the writer wrote, the records and checkpoints are untouched, and no
    // temporary file is left.
    assert!(same_data_files(dir.path(), healthy.path()));
    assert_eq!(snapshot(dir.path()).len(), DATA_FILES.len());
    assert_eq!(
        verify_dir(dir.path(), &verifier_key, |_, _| {})
            .unwrap()
            .records,
        RECORDS
    );
    assert_eq!(
        rebuild_derived_files(dir.path(), RepairMode::Apply).unwrap(),
        report(Vec::new(), false)
    );

    // The repaired ledger opens, serves receipts that verify, and its scrub finds nothing.
    let ledger = Ledger::open(
        dir.path(),
        signer(),
        LedgerOptions {
            scrub_bytes_per_second: Some(1 << 30),
            ..crate::hourly_checkpoints()
        },
    )
    .unwrap();
    let receipt = ledger.receipt(123).await.unwrap();
    receipt.verify(Some(&record(123)), &verifier_key).unwrap();
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while ledger.scrub_status().unwrap().passes_completed == 0 {
        assert!(std::time::Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(ledger.scrub_status().unwrap().damage, None);
}

#[tokio::test]
async fn missing_short_and_long_derived_files_are_reported_and_replaced() {
    let healthy = healthy_ledger().await;
    let dir = damaged_copy(healthy.path(), |dir| {
        std::fs::remove_file(dir.join("tile-hashes.dat")).unwrap();
        let offsets = dir.join("record-offsets.dat");
        let length = std::fs::metadata(&offsets).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&offsets)
            .unwrap()
            .set_len(length - 8 * 10 - 3)
            .unwrap();
        let mut leaves = std::fs::read(dir.join("leaf-hashes.dat")).unwrap();
        leaves.extend_from_slice(&[9; 32]);
        std::fs::write(dir.join("leaf-hashes.dat"), leaves).unwrap();
        // A temporary file a crashed rebuild left is written over.
        std::fs::write(dir.join("tile-hashes.dat.rebuilt"), b"left by a crash").unwrap();
    });
    let expected_differences = vec![
        DerivedFileDifference {
            file: "record-offsets.dat",
            first_entry: RECORDS - 11,
            stored_entries: RECORDS - 11,
            expected_entries: RECORDS,
        },
        DerivedFileDifference {
            file: "leaf-hashes.dat",
            first_entry: RECORDS,
            stored_entries: RECORDS + 1,
            expected_entries: RECORDS,
        },
        DerivedFileDifference {
            file: "tile-hashes.dat",
            first_entry: 0,
            stored_entries: 0,
            expected_entries: 2,
        },
    ];
    assert_eq!(
        rebuild_derived_files(dir.path(), RepairMode::Apply).unwrap(),
        report(expected_differences, true)
    );
    assert!(same_data_files(dir.path(), healthy.path()));
    assert_eq!(snapshot(dir.path()).len(), DATA_FILES.len());
}

#[tokio::test]
async fn records_that_no_longer_give_the_signed_roots_are_refused_and_nothing_changes() {
    let healthy = healthy_ledger().await;
    // Record 150 rewritten with a valid frame: its checksum holds, but the checkpoint of 200
    // records signed other bytes. The derived files are damaged too, and stay as they are.
    let dir = damaged_copy(healthy.path(), |dir| {
        crate::ledger::rewrite_record_with_valid_checksum(dir, 150);
        flip(dir, "leaf-hashes.dat", 40 * 32);
    });
    let before = snapshot(dir.path());
    for mode in [RepairMode::DryRun, RepairMode::Apply] {
        match rebuild_derived_files(dir.path(), mode) {
            Err(Error::CheckpointMismatch {
                ordinal: 1,
                tree_size: 200,
            }) => {}
            other => panic!("expected the records to disagree with checkpoint 1, got {other:?}"),
        }
        assert!(
            snapshot(dir.path()) == before,
            "{mode:?} changed the ledger"
        );
    }
}

#[tokio::test]
async fn an_open_ledger_is_not_rebuilt() {
    let healthy = healthy_ledger().await;
    let ledger = Ledger::open(healthy.path(), signer(), crate::hourly_checkpoints()).unwrap();
    assert!(matches!(
        rebuild_derived_files(healthy.path(), RepairMode::Apply),
        Err(Error::AlreadyOpen(_))
    ));
    drop(ledger);
    assert_eq!(
        rebuild_derived_files(healthy.path(), RepairMode::Apply).unwrap(),
        report(Vec::new(), false)
    );
}
