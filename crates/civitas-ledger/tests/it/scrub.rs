//! The background scrub: damage in records that the latest checkpoint covers, or in the hashes
//! derived from them, passes opening's spot check, and the scrub finds it while the ledger runs,
//! saying whether the records or the derived hashes are damaged.

use std::path::Path;
use std::time::{Duration, Instant};

use civitas_ledger::{
    DamageKind, Ledger, LedgerOptions, NoteSigner, ScrubDamage, ScrubProblem, ScrubStatus,
};

fn signer() -> NoteSigner {
    crate::signer_from(29)
}

fn options(scrub_bytes_per_second: Option<u64>) -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_secs(3600),
        scrub_bytes_per_second,
        ..LedgerOptions::default()
    }
}

const FAST: Option<u64> = Some(1 << 30);
const RECORDS: u64 = 600;

/// About 5 KB, so that a chunk of the scrub's reads (1 MiB) ends inside a 16-record group and a
/// 256-record tile, whose checks then take their hashes from two chunks.
fn record(n: u64) -> Vec<u8> {
    format!("record {n} {}", "s".repeat(5000 + (n % 13) as usize)).into_bytes()
}

/// Writes `RECORDS` records, all covered by a checkpoint, and closes the ledger.
async fn write_ledger(dir: &Path) {
    let ledger = Ledger::open(dir, signer(), options(None)).unwrap();
    ledger
        .append_batch((0..RECORDS).map(record).collect())
        .await
        .unwrap();
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, RECORDS);
}

/// Polls the scrub status until `done` holds, for at most ten seconds.
fn wait_for(ledger: &Ledger, done: impl Fn(&ScrubStatus) -> bool) -> ScrubStatus {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let status = ledger.scrub_status().expect("the scrub is enabled");
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < give_up,
            "scrub did not get there: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where record `index`'s frame starts, found by walking the frames of `records.dat` rather than
/// read from `record-offsets.dat`, which a test may have damaged.
fn record_offset(dir: &Path, index: u64) -> u64 {
    let records = std::fs::read(dir.join("records.dat")).unwrap();
    (0..index).fold(0, |offset, _| {
        let header = &records[offset as usize..offset as usize + 4];
        offset + 8 + u64::from(u32::from_le_bytes(header.try_into().unwrap()))
    })
}

/// Flips one byte of `file` at `position`.
fn flip(dir: &Path, file: &str, position: u64) {
    let path = dir.join(file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[position as usize] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
}

/// Checks that the scrub found `problem` at record `index`, classed as `kind`, and that the
/// readiness notice names the repair for that kind.
fn check_damage(
    dir: &Path,
    status: &ScrubStatus,
    index: u64,
    problem: ScrubProblem,
    kind: DamageKind,
) {
    let damage = status.damage.clone().expect("the scrub found the damage");
    assert_eq!(
        damage,
        ScrubDamage {
            index,
            offset: Some(record_offset(dir, index)),
            problem,
        },
        "{damage}"
    );
    assert_eq!(damage.problem.kind(), kind, "{damage}");
    let notice = status.damage_notice().unwrap();
    let repair = match kind {
        DamageKind::Records => "`civitas ledger salvage --data-dir DIR`",
        DamageKind::Derived => "`civitas ledger rebuild-derived --data-dir DIR --apply`",
    };
    assert!(
        notice.starts_with("ledger scrub found damage in ") && notice.contains(repair),
        "{notice}"
    );
}

/// Flips one byte of `file` at `position`, opens the ledger (which must still open and serve
/// every record's leaf hash), then opens it with a fast scrub and expects the damage at record
/// `index` for `problem`, of `kind`.
async fn check(file: &str, position: u64, index: u64, problem: ScrubProblem, kind: DamageKind) {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path()).await;
    flip(dir.path(), file, position);

    // Opening checks only the end of what the checkpoint covers, so it does not notice.
    let unscrubbed = Ledger::open(dir.path(), signer(), options(None)).unwrap();
    assert_eq!(unscrubbed.size(), RECORDS);
    assert_eq!(unscrubbed.scrub_status(), None);
    unscrubbed.leaf_hash(index).unwrap();
    drop(unscrubbed);

    let ledger = Ledger::open(dir.path(), signer(), options(FAST)).unwrap();
    let status = wait_for(&ledger, |status| status.passes_completed >= 1);
    check_damage(dir.path(), &status, index, problem, kind);
    // Appends go on: the damage is in old records, not in the writer's way.
    assert_eq!(ledger.append(record(RECORDS)).await.unwrap(), RECORDS);
}

#[tokio::test]
async fn damage_in_checkpointed_records_and_their_hashes_is_found_by_the_scrub() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path()).await;
    // A byte inside the payload of record 37 (8 frame header bytes, then "record 37 ...").
    let payload_byte = record_offset(dir.path(), 37) + 8 + 3;
    let record_100 = record_offset(dir.path(), 100);
    drop(dir);
    check(
        "records.dat",
        payload_byte,
        37,
        ScrubProblem::CorruptFrame("frame checksum mismatch".into()),
        DamageKind::Records,
    )
    .await;
    // The lowest byte of record 100's offset: the frames are intact, their list is not.
    check(
        "record-offsets.dat",
        100 * 8,
        100,
        ScrubProblem::Misplaced {
            expected: record_100,
            found: record_100 ^ 0x20,
        },
        DamageKind::Derived,
    )
    .await;
    // Leaf hash of record 300, in the last full tile, whose leaves opening does not read.
    check(
        "leaf-hashes.dat",
        300 * 32 + 5,
        300,
        ScrubProblem::LeafHashMismatch,
        DamageKind::Derived,
    )
    .await;
    // The level-4 node of records 208..224, which the first chunk ends inside.
    check(
        "level4-hashes.dat",
        13 * 32 + 7,
        208,
        ScrubProblem::GroupHashMismatch,
        DamageKind::Derived,
    )
    .await;
}

/// A tile root damaged before opening fails opening's spot check, which rebuilds the derived
/// files; one damaged while the ledger runs is found by the next pass, which starts after the
/// configured pause.
#[tokio::test]
async fn a_tile_root_damaged_while_the_ledger_runs_is_found_by_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path()).await;
    let ledger = Ledger::open(
        dir.path(),
        signer(),
        LedgerOptions {
            scrub_pass_pause: Duration::from_millis(20),
            ..options(FAST)
        },
    )
    .unwrap();
    let clean = wait_for(&ledger, |status| status.passes_completed >= 1);
    assert_eq!(clean.damage, None);
    flip(dir.path(), "tile-hashes.dat", 9);
    // A pass that began after the flip has ended once two more have.
    let status = wait_for(&ledger, |status| {
        status.passes_completed >= clean.passes_completed + 2
    });
    check_damage(
        dir.path(),
        &status,
        0,
        ScrubProblem::TileHashMismatch,
        DamageKind::Derived,
    );
}

#[tokio::test]
async fn a_healthy_ledger_completes_a_pass_without_damage() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path()).await;
    let ledger = Ledger::open(dir.path(), signer(), options(FAST)).unwrap();
    let status = wait_for(&ledger, |status| status.passes_completed >= 1);
    assert_eq!(status.damage, None);
    assert_eq!(status.pass_size, RECORDS);
    assert_eq!(status.position, RECORDS);
    let frame_bytes: u64 = (0..RECORDS).map(|n| 8 + record(n).len() as u64).sum();
    assert_eq!(status.bytes_checked, frame_bytes);
}

#[tokio::test]
async fn the_ledger_drops_promptly_while_a_slow_scrub_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_ledger(dir.path()).await;
    // At 2 KB/s a pass over these records takes seconds, most of them spent resting.
    let ledger = Ledger::open(dir.path(), signer(), options(Some(2000))).unwrap();
    let status = wait_for(&ledger, |status| status.bytes_checked > 0);
    assert!(status.position < RECORDS, "{status:?}");
    let started = Instant::now();
    drop(ledger);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "drop took {:?}",
        started.elapsed()
    );
    // The directory lock is released with the scrub thread's share of the ledger.
    Ledger::open(dir.path(), signer(), options(None)).unwrap();
}
