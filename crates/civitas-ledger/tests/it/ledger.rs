//! The ledger on disk: appends, reads, proofs, checkpoints, receipts, tiles, recovery and
//! verification of a data directory.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use civitas_ledger::merkle::{self, Hash, NodeSource};
use civitas_ledger::tiles::{self, TileId, TileKind};
use civitas_ledger::{
    Completions, Error, Ledger, LedgerOptions, NoteSigner, Receipt, Verifier, VerifyError,
    verify_dir,
};

use crate::snapshot;

fn signer() -> NoteSigner {
    crate::signer_from(7)
}

fn options() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_millis(20),
        ..LedgerOptions::default()
    }
}

fn open(dir: &Path) -> Ledger {
    Ledger::open(dir, signer(), options()).unwrap()
}

fn record(i: u64) -> Vec<u8> {
    // Varying lengths so that offsets are not a simple multiple.
    format!("record {i} {}", "abc".repeat((i % 11) as usize)).into_bytes()
}

fn leaves(count: u64) -> Vec<Hash> {
    (0..count).map(|i| merkle::leaf_hash(&record(i))).collect()
}

async fn fill(ledger: &Ledger, count: u64) {
    let start = ledger.size();
    let records: Vec<Vec<u8>> = (start..count).map(record).collect();
    ledger.append_batch(records).await.unwrap();
}

fn stored_offset(dir: &Path, index: u64) -> u64 {
    let offsets = std::fs::read(dir.join("record-offsets.dat")).unwrap();
    let at = index as usize * 8;
    u64::from_le_bytes(offsets[at..at + 8].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_get_distinct_indexes_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let mut tasks = Vec::new();
    for task in 0..16u64 {
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut appended = Vec::new();
            for sequence in 0..50u64 {
                let bytes = format!("task {task} sequence {sequence}").into_bytes();
                let index = ledger.append(bytes.clone()).await.unwrap();
                appended.push((index, bytes));
            }
            appended
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    assert_eq!(ledger.size(), 800);
    for (position, (index, bytes)) in all.iter().enumerate() {
        assert_eq!(*index, position as u64);
        assert_eq!(&ledger.read(*index).unwrap(), bytes);
        assert_eq!(ledger.leaf_hash(*index).unwrap(), merkle::leaf_hash(bytes));
    }
    let range = ledger.read_range(100..356).unwrap();
    assert_eq!(range.len(), 256);
    for (offset, bytes) in range.iter().enumerate() {
        assert_eq!(bytes, &all[100 + offset].1);
    }
    let leaf_hashes: Vec<Hash> = all.iter().map(|(_, b)| merkle::leaf_hash(b)).collect();
    assert_eq!(
        ledger.root(800).unwrap(),
        merkle::root(&leaf_hashes, 800).unwrap()
    );
    let batch = ledger
        .append_batch(vec![b"a".to_vec(), b"b".to_vec()])
        .await
        .unwrap();
    assert_eq!(batch, 800..802);
    assert_eq!(ledger.read(801).unwrap(), b"b");
}

#[tokio::test]
async fn a_read_within_a_byte_budget_stops_at_the_record_that_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // Frames of 1,008 bytes: a record of 1,000 and its 8-byte header.
    let records: Vec<Vec<u8>> = (0..10u8).map(|i| vec![i; 1000]).collect();
    ledger.append_batch(records.clone()).await.unwrap();
    let check = |range: std::ops::Range<u64>, max_bytes: u64, expected: std::ops::Range<usize>| {
        assert_eq!(
            ledger.read_range_within(range.clone(), max_bytes).unwrap(),
            records[expected],
            "{range:?} within {max_bytes}"
        );
    };
    // Records start at 0, 1008, 2016 and 3024 bytes into the range: the first three start below
    // 3,000 bytes, and the third takes the total past it.
    check(0..10, 3000, 0..3);
    check(0..10, 3024, 0..3);
    check(0..10, 3025, 0..4);
    check(4..10, 1, 4..5);
    check(4..10, 0, 4..5);
    check(8..10, 1 << 20, 8..10);
    check(3..3, 1 << 20, 0..0);
    assert!(matches!(
        ledger.read_range_within(8..11, 1 << 20),
        Err(Error::IndexOutOfRange {
            index: 10,
            size: 10
        })
    ));
}

/// Two threads, each a single-threaded runtime with its own mailbox, append durably and in order
/// only through their mailboxes, while a third appends directly: every append is answered with its
/// own index, and every record is durable and reads back once its durable successor answered.
#[test]
fn appends_answered_through_mailboxes_get_distinct_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let threads: Vec<_> = (0..3u64)
        .map(|thread| {
            let ledger = ledger.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async move {
                    let (completions, delivery) = Completions::new();
                    tokio::spawn(delivery);
                    let mut tasks = Vec::new();
                    for task in 0..12u64 {
                        let ledger = ledger.clone();
                        let completions = completions.clone();
                        tasks.push(tokio::spawn(async move {
                            let mut appended = Vec::new();
                            for sequence in 0..30u64 {
                                let bytes =
                                    format!("thread {thread} task {task} sequence {sequence}")
                                        .into_bytes();
                                let index = match (thread, sequence % 3) {
                                    (2, _) => ledger.append(bytes.clone()).await,
                                    (_, 0) => {
                                        ledger.append_ordered_via(&completions, bytes.clone()).await
                                    }
                                    _ => ledger.append_via(&completions, bytes.clone()).await,
                                };
                                appended.push((index.unwrap(), bytes));
                            }
                            appended
                        }));
                    }
                    let mut appended = Vec::new();
                    for task in tasks {
                        appended.extend(task.await.unwrap());
                    }
                    assert_eq!(
                        ledger
                            .append_via(&completions, Vec::new())
                            .await
                            .unwrap_err()
                            .to_string(),
                        Error::EmptyRecord.to_string()
                    );
                    appended
                })
            })
        })
        .collect();
    let mut all: Vec<(u64, Vec<u8>)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all.len(), 3 * 12 * 30);
    // Every task ended with a durable append, which makes what came before it durable too.
    assert_eq!(ledger.size(), all.len() as u64);
    for (position, (index, bytes)) in all.iter().enumerate() {
        assert_eq!(*index, position as u64);
        assert_eq!(&ledger.read(*index).unwrap(), bytes);
    }
}

#[tokio::test]
async fn invalid_appends_and_reads_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    assert!(matches!(
        ledger.append(Vec::new()).await,
        Err(Error::EmptyRecord)
    ));
    assert!(matches!(
        ledger.append(vec![1; 65_536]).await,
        Err(Error::RecordTooLarge(65_536))
    ));
    assert_eq!(ledger.append(vec![1; 65_535]).await.unwrap(), 0);
    assert!(matches!(
        ledger.read(1),
        Err(Error::IndexOutOfRange { index: 1, size: 1 })
    ));
    assert!(matches!(
        ledger.inclusion_proof(0, 2),
        Err(Error::TreeSizeOutOfRange { .. })
    ));
    assert!(matches!(
        Ledger::open(dir.path(), signer(), options()),
        Err(Error::AlreadyOpen(_))
    ));
}

#[tokio::test]
async fn proofs_match_the_pure_functions_across_tile_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 1100).await;
    let leaves = leaves(1100);
    for tree_size in [
        1, 2, 255, 256, 257, 300, 511, 512, 513, 768, 1024, 1025, 1100,
    ] {
        let root = merkle::root(&leaves, tree_size).unwrap();
        assert_eq!(ledger.root(tree_size).unwrap(), root, "size {tree_size}");
        for index in [0, 1, tree_size / 3, tree_size / 2, tree_size - 1] {
            if index >= tree_size {
                continue;
            }
            let proof = ledger.inclusion_proof(index, tree_size).unwrap();
            assert_eq!(
                proof,
                merkle::inclusion_proof(&leaves, index, tree_size).unwrap()
            );
            merkle::verify_inclusion(&leaves[index as usize], index, tree_size, &proof, &root)
                .unwrap();
        }
        for old_size in [0, 1, 7, 255, 256, 257, 600, 1024] {
            if old_size > tree_size {
                continue;
            }
            let proof = ledger.consistency_proof(old_size, tree_size).unwrap();
            assert_eq!(
                proof,
                merkle::consistency_proof(&leaves, old_size, tree_size).unwrap()
            );
            let old_root = merkle::root(&leaves, old_size).unwrap();
            merkle::verify_consistency(old_size, tree_size, &old_root, &root, &proof).unwrap();
        }
    }
}

#[tokio::test]
async fn checkpoints_are_signed_periodically_and_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(
        dir.path(),
        signer(),
        LedgerOptions {
            checkpoint_interval: Duration::from_secs(3600),
            ..LedgerOptions::default()
        },
    )
    .unwrap();
    let empty = ledger.latest_checkpoint();
    assert_eq!(empty.tree_size, 0);
    assert_eq!(empty.root, merkle::empty_root());

    fill(&ledger, 10).await;
    // With an hour between ticks only `checkpoint_now` can cover the new records.
    assert_eq!(ledger.latest_checkpoint().tree_size, 0);
    let forced = ledger.checkpoint_now().await.unwrap();
    assert_eq!(forced.tree_size, 10);
    assert_eq!(forced.root, ledger.root(10).unwrap());
    assert_eq!(ledger.latest_checkpoint(), forced);
    // Nothing new: the same checkpoint comes back.
    assert_eq!(ledger.checkpoint_now().await.unwrap(), forced);
    drop(ledger);

    let ledger = open(dir.path());
    fill(&ledger, 20).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ledger.latest_checkpoint().tree_size < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "no periodic checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        ledger.checkpoint_at_or_after(0).unwrap().unwrap().tree_size,
        0
    );
    assert_eq!(
        ledger.checkpoint_at_or_after(1).unwrap().unwrap().tree_size,
        10
    );
    assert_eq!(
        ledger
            .checkpoint_at_or_after(10)
            .unwrap()
            .unwrap()
            .tree_size,
        10
    );
    assert_eq!(
        ledger
            .checkpoint_at_or_after(11)
            .unwrap()
            .unwrap()
            .tree_size,
        20
    );
    assert!(ledger.checkpoint_at_or_after(21).unwrap().is_none());
    let sizes = |from_size: u64, limit: usize| -> Vec<u64> {
        ledger
            .checkpoints_from(from_size, limit)
            .unwrap()
            .iter()
            .map(|checkpoint| checkpoint.tree_size)
            .collect()
    };
    assert_eq!(sizes(0, 1000), [0, 10, 20]);
    assert_eq!(sizes(0, 2), [0, 10]);
    assert_eq!(sizes(1, 1), [10]);
    assert_eq!(sizes(11, 1000), [20]);
    assert_eq!(sizes(21, 1000), [] as [u64; 0]);
    assert_eq!(sizes(0, 0), [] as [u64; 0]);
}

#[tokio::test]
async fn receipts_verify_with_only_the_verifier_key() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 300).await;
    let receipt = ledger.receipt(123).await.unwrap();
    let key = ledger.verifier_key().to_owned();
    receipt.verify(Some(&record(123)), &key).unwrap();
    receipt.verify(None, &key).unwrap();

    let json = serde_json::to_string(&receipt).unwrap();
    assert!(json.contains("\"leaf_hash\":\""));
    let parsed: Receipt = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed, receipt);
    parsed.verify(Some(&record(123)), &key).unwrap();

    assert!(receipt.verify(Some(&record(124)), &key).is_err());
    let mut wrong_index = receipt.clone();
    wrong_index.index = 124;
    assert!(wrong_index.verify(None, &key).is_err());
    let mut bad_proof = receipt.clone();
    bad_proof.inclusion_proof[0][0] ^= 1;
    assert!(bad_proof.verify(None, &key).is_err());
    let other_key = crate::signer_from(8).verifier_key();
    assert!(receipt.verify(None, &other_key).is_err());

    // Records appended later are covered by a forced checkpoint without waiting for a tick.
    let index = ledger.append(b"late".to_vec()).await.unwrap();
    let late = ledger.receipt(index).await.unwrap();
    late.verify(Some(b"late"), &key).unwrap();
    assert!(matches!(
        ledger.receipt(index + 1).await,
        Err(Error::IndexOutOfRange { .. })
    ));
}

/// Serves perfect subtree hashes from fetched tiles only, the way a tlog-tiles client does.
struct TileNodes<'a> {
    tiles: &'a HashMap<(u8, u64), Vec<Hash>>,
}

impl NodeSource for TileNodes<'_> {
    type Error = merkle::Error;

    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash, merkle::Error> {
        let tile_level = (level / 8) as u8;
        let height_in_tile = level % 8;
        let first = index << height_in_tile;
        let tile = self
            .tiles
            .get(&(tile_level, first / 256))
            .expect("tile fetched");
        let start = (first % 256) as usize;
        Ok(merkle::perfect_root(
            &tile[start..start + (1 << height_in_tile)],
        ))
    }
}

fn split_hashes(bytes: &[u8]) -> Vec<Hash> {
    assert_eq!(bytes.len() % 32, 0);
    bytes
        .chunks_exact(32)
        .map(|chunk| chunk.try_into().unwrap())
        .collect()
}

#[tokio::test]
async fn tiles_and_entry_bundles_rebuild_the_checkpoint_root() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // Past 256^2 leaves so that a level-2 tile exists.
    let size = 65_536 + 256 * 3 + 17;
    fill(&ledger, size).await;
    let checkpoint = ledger.checkpoint_now().await.unwrap();
    assert_eq!(checkpoint.tree_size, size);

    // Fetch what a client needs for this checkpoint, by path, as it would over HTTP.
    let mut tiles: HashMap<(u8, u64), Vec<Hash>> = HashMap::new();
    let mut leaf_hashes = Vec::new();
    for level in 0u8..3 {
        let nodes = size >> (8 * u32::from(level));
        let full = nodes / 256;
        let partial = (nodes % 256) as u16;
        for index in 0..=full {
            let width = if index < full { 256 } else { partial };
            if width == 0 {
                continue;
            }
            let id = TileId {
                kind: TileKind::Hashes { level },
                index,
                width,
            };
            let parsed = tiles::parse_tile_path(&tiles::format_tile_path(&id)).unwrap();
            let TileKind::Hashes { level } = parsed.kind else {
                unreachable!()
            };
            let hashes = split_hashes(&ledger.tile(level, parsed.index, parsed.width).unwrap());
            assert_eq!(hashes.len(), usize::from(width));
            tiles.insert((level, index), hashes);

            if level == 0 {
                let bundle = ledger.entry_bundle(index, width).unwrap();
                let entries = tiles::decode_entry_bundle(&bundle).unwrap();
                assert_eq!(entries.len(), usize::from(width));
                for entry in entries {
                    leaf_hashes.push(merkle::leaf_hash(entry));
                }
            }
        }
    }
    // Entry bundles hash to the level-0 tiles, and each upper tile hash is the root of the full
    // tile below it.
    let level_zero: Vec<Hash> = (0..=size / 256)
        .flat_map(|index| tiles[&(0, index)].clone())
        .collect();
    assert_eq!(leaf_hashes, level_zero);
    for ((level, index), hashes) in &tiles {
        if *level == 0 {
            continue;
        }
        for (position, hash) in hashes.iter().enumerate() {
            let below = &tiles[&(level - 1, index * 256 + position as u64)];
            assert_eq!(below.len(), 256);
            assert_eq!(*hash, merkle::perfect_root(below));
        }
    }
    let root = merkle::root_from(&mut TileNodes { tiles: &tiles }, size).unwrap();
    assert_eq!(root, checkpoint.root);
    assert_eq!(root, merkle::root(&leaf_hashes, size).unwrap());

    // Full tiles only when complete, partial ones only at the right edge.
    let last = size / 256;
    assert!(ledger.tile(0, last, 256).is_err());
    assert!(ledger.tile(0, last, 18).is_err());
    assert!(ledger.tile(0, last - 1, 17).is_err());
    assert!(ledger.tile(0, last + 1, 1).is_err());
    assert!(ledger.tile(3, 0, 1).is_err());
    assert!(ledger.tile(2, 0, 2).is_err());
    assert!(ledger.entry_bundle(last, 18).is_err());
    assert!(ledger.entry_bundle(last, 256).is_err());
}

#[tokio::test]
async fn reopening_continues_the_tree_and_the_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 700).await;
    let before = ledger.checkpoint_now().await.unwrap();
    drop(ledger);

    // The writer left zero-filled space past the records; opening keeps it and appends into it.
    let records_path = dir.path().join("records.dat");
    let records = std::fs::read(&records_path).unwrap();
    let end = frame_offset_by_walking(&records, 700);
    assert!(
        records.len() - end >= 1 << 20,
        "{} of {}",
        end,
        records.len()
    );
    assert!(records[end..].iter().all(|&byte| byte == 0));
    let ledger = open(dir.path());
    assert_eq!(
        std::fs::metadata(&records_path).unwrap().len(),
        records.len() as u64
    );
    assert_eq!(ledger.size(), 700);
    assert_eq!(ledger.root(700).unwrap(), before.root);
    assert_eq!(ledger.latest_checkpoint(), before);
    assert_eq!(ledger.append(record(700)).await.unwrap(), 700);
    assert_eq!(stored_offset(dir.path(), 700), end as u64);
    assert_eq!(ledger.read(699).unwrap(), record(699));
    assert_eq!(ledger.read(700).unwrap(), record(700));
    fill(&ledger, 1500).await;
    let after = ledger.checkpoint_now().await.unwrap();
    let proof = ledger.consistency_proof(700, 1500).unwrap();
    merkle::verify_consistency(700, 1500, &before.root, &after.root, &proof).unwrap();
    assert_eq!(after.root, merkle::root(&leaves(1500), 1500).unwrap());
    drop(ledger);

    let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
    assert_eq!(report.records, 1500);
    assert_eq!(report.verified_tree_size, 1500);
    assert_eq!(report.root, after.root);
}

#[tokio::test]
async fn a_batch_larger_than_the_zero_filled_space_grows_the_file_past_it() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 10).await;
    // 40 records of 60 KB: 2.4 MB in one batch, more than twice the space kept zero-filled.
    let big: Vec<Vec<u8>> = (0..40u8).map(|n| vec![b'a' + n % 26; 60_000]).collect();
    let indexes = ledger.append_batch(big.clone()).await.unwrap();
    assert_eq!(indexes, 10..50);
    fill(&ledger, 60).await;
    drop(ledger);

    let records = std::fs::read(dir.path().join("records.dat")).unwrap();
    let end = frame_offset_by_walking(&records, 60);
    assert!(records.len() - end >= 1 << 20);
    assert!(records[end..].iter().all(|&byte| byte == 0));
    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 60);
    for (n, expected) in big.iter().enumerate() {
        assert_eq!(&ledger.read(10 + n as u64).unwrap(), expected);
    }
    assert_eq!(ledger.read(9).unwrap(), record(9));
    assert_eq!(ledger.read(59).unwrap(), record(59));
    drop(ledger);
    let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
    assert_eq!(report.records, 60);
    assert_eq!(report.torn_tail_bytes, 0);
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_garbage_derived_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 600).await;
    let checkpoint = ledger.checkpoint_now().await.unwrap();
    drop(ledger);

    // A crash mid-write: one whole frame that was never acknowledged is fine to keep, but the
    // frame after it is torn; derived files have garbage tails.
    // Both are written over the zero-filled space the writer keeps past its records.
    let records_path = dir.path().join("records.dat");
    let mut records = std::fs::read(&records_path).unwrap();
    let clean_length = frame_offset_by_walking(&records, 600);
    assert!(records[clean_length..].iter().all(|&byte| byte == 0));
    let extra = b"an extra record";
    let mut tail = Vec::new();
    tail.extend_from_slice(&(extra.len() as u32).to_le_bytes());
    tail.extend_from_slice(&crc32c::crc32c(extra).to_le_bytes());
    tail.extend_from_slice(extra);
    tail.extend_from_slice(&100u32.to_le_bytes());
    tail.extend_from_slice(&[0xAB; 30]);
    records[clean_length..clean_length + tail.len()].copy_from_slice(&tail);
    std::fs::write(&records_path, &records).unwrap();
    for name in ["leaf-hashes.dat", "record-offsets.dat", "tile-hashes.dat"] {
        let path = dir.path().join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&[0x5A; 100]);
        std::fs::write(&path, bytes).unwrap();
    }

    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 601);
    assert_eq!(ledger.read(600).unwrap(), extra);
    assert_eq!(
        std::fs::metadata(&records_path).unwrap().len(),
        (clean_length + 8 + extra.len()) as u64
    );
    assert_eq!(ledger.root(600).unwrap(), checkpoint.root);
    let index = ledger.append(b"after recovery".to_vec()).await.unwrap();
    assert_eq!(index, 601);
    assert_eq!(ledger.read(601).unwrap(), b"after recovery");
    let mut expected = leaves(600);
    expected.push(merkle::leaf_hash(extra));
    expected.push(merkle::leaf_hash(b"after recovery"));
    assert_eq!(
        ledger.root(602).unwrap(),
        merkle::root(&expected, 602).unwrap()
    );
    drop(ledger);

    // Derived files lost entirely are rebuilt from the records.
    for name in ["leaf-hashes.dat", "record-offsets.dat", "tile-hashes.dat"] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 602);
    assert_eq!(
        ledger.root(602).unwrap(),
        merkle::root(&expected, 602).unwrap()
    );
    assert_eq!(ledger.read(300).unwrap(), record(300));
    drop(ledger);
    verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
}

#[tokio::test]
async fn records_that_no_longer_match_a_checkpoint_refuse_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 600).await;
    ledger.checkpoint_now().await.unwrap();
    drop(ledger);

    // Rewrite record 10 with a valid checksum and drop the derived files so that nothing but the
    // checkpoints can notice.
    let records_path = dir.path().join("records.dat");
    let original = std::fs::read(&records_path).unwrap();
    let mut records = original.clone();
    let offset = frame_offset_by_walking(&records, 10);
    let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
    let payload = &mut records[offset + 8..offset + 8 + length];
    payload[0] = b'R';
    let checksum = crc32c::crc32c(payload);
    records[offset + 4..offset + 8].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(&records_path, &records).unwrap();
    for name in ["leaf-hashes.dat", "record-offsets.dat", "tile-hashes.dat"] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    // Every refusal leaves the directory as it was: files are neither changed nor created.
    assert_open_refused(dir.path(), signer(), |error| {
        matches!(error, Error::CheckpointMismatch { tree_size: 600, .. })
    });

    // Untouched records cut below the checkpoint are missing records, not a torn tail.
    let cut = frame_offset_by_walking(&original, 500);
    std::fs::write(&records_path, &original[..cut]).unwrap();
    assert_open_refused(dir.path(), signer(), |error| {
        matches!(
            error,
            Error::RecordsMissing {
                tree_size: 600,
                found: 500,
                ..
            }
        )
    });

    // A frame damaged below the checkpoint is corruption, and nothing is cut off.
    let mut damaged = original.clone();
    let offset = frame_offset_by_walking(&original, 300);
    damaged[offset + 9] ^= 1;
    std::fs::write(&records_path, &damaged).unwrap();
    assert_open_refused(dir.path(), signer(), |error| {
        matches!(error, Error::CorruptRecord { index: 300, .. })
    });
    std::fs::write(&records_path, &original).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 600);
}

/// Derived files rebuilt from more records than recovery keeps in memory while it decides
/// (65,536) are written by reading the records again, and only once the ledger opens.
#[tokio::test]
async fn a_long_rebuild_is_written_only_after_deciding_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let small = |index: u64| index.to_le_bytes().to_vec();
    ledger
        .append_batch((0..70_000).map(small).collect())
        .await
        .unwrap();
    drop(ledger);
    let derived = [
        "record-offsets.dat",
        "leaf-hashes.dat",
        "level4-hashes.dat",
        "tile-hashes.dat",
    ];
    let stored: Vec<Vec<u8>> = derived
        .iter()
        .map(|name| std::fs::read(dir.path().join(name)).unwrap())
        .collect();
    for name in derived {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }

    // Damage near the end, under the checkpoint signed at the close: found after the replay no
    // longer fits in memory.
    let records_path = dir.path().join("records.dat");
    let original = std::fs::read(&records_path).unwrap();
    let mut damaged = original.clone();
    damaged[frame_offset_by_walking(&original, 69_000) + 9] ^= 1;
    std::fs::write(&records_path, &damaged).unwrap();
    assert_open_refused(dir.path(), signer(), |error| {
        matches!(error, Error::CorruptRecord { index: 69_000, .. })
    });

    std::fs::write(&records_path, &original).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 70_000);
    drop(ledger);
    for (name, stored) in derived.iter().zip(&stored) {
        let rebuilt = std::fs::read(dir.path().join(name)).unwrap();
        assert!(rebuilt == *stored, "{name} rebuilt differently");
    }
}

/// Opens the ledger in `dir`, which must refuse with an error that `expected` accepts and leave
/// every file as it was: none changed, none created.
fn assert_open_refused(dir: &Path, signer: NoteSigner, expected: impl FnOnce(&Error) -> bool) {
    let before = snapshot(dir);
    match Ledger::open(dir, signer, options()) {
        Err(error) => assert!(expected(&error), "refused for another reason: {error:?}"),
        Ok(_) => panic!("the ledger opened"),
    }
    assert!(snapshot(dir) == before, "the refused open changed a file");
}

/// The byte offset of frame `index`, found by walking the frames.
fn frame_offset_by_walking(records: &[u8], index: usize) -> usize {
    let mut offset = 0;
    for _ in 0..index {
        let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 8 + length;
    }
    offset
}

#[tokio::test]
async fn opening_with_another_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 5).await;
    drop(ledger);
    // A torn last checkpoint write, which an open with the right key would cut off, stays.
    let checkpoints_path = dir.path().join("checkpoints.dat");
    let mut checkpoints = std::fs::read(&checkpoints_path).unwrap();
    checkpoints.extend_from_slice(&[0; 300]);
    std::fs::write(&checkpoints_path, &checkpoints).unwrap();
    let other = crate::signer_from(9);
    assert_open_refused(dir.path(), other, |error| {
        matches!(error, Error::CheckpointKey(_))
    });
    let ledger = open(dir.path());
    assert_eq!(ledger.size(), 5);
    drop(ledger);
    assert!(std::fs::metadata(&checkpoints_path).unwrap().len() < checkpoints.len() as u64);
}

async fn verified_directory(count: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    // Several checkpoints along the way.
    for step in 1..=4 {
        fill(&ledger, count * step / 4).await;
        ledger.checkpoint_now().await.unwrap();
    }
    drop(ledger);
    dir
}

#[tokio::test]
async fn verification_passes_on_an_untouched_directory() {
    let dir = verified_directory(1000).await;
    let mut last_progress = (0, 0);
    let report = verify_dir(dir.path(), &signer().verifier_key(), |done, total| {
        last_progress = (done, total);
    })
    .unwrap();
    assert_eq!(report.records, 1000);
    assert_eq!(report.checkpoints, 5);
    assert_eq!(report.verified_tree_size, 1000);
    assert_eq!(report.root, merkle::root(&leaves(1000), 1000).unwrap());
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(
        report.record_bytes,
        (0..1000).map(|i| record(i).len() as u64).sum::<u64>()
    );
    assert_eq!(last_progress, (1000, 1000));
    let other_key = crate::signer_from(8).verifier_key();
    assert!(matches!(
        verify_dir(dir.path(), &other_key, |_, _| {}),
        Err(VerifyError::CheckpointSignature { checkpoint: 0, .. })
    ));
}

#[tokio::test]
async fn a_flipped_byte_names_the_record() {
    let dir = verified_directory(1000).await;
    let records_path = dir.path().join("records.dat");
    let mut records = std::fs::read(&records_path).unwrap();
    let offset = stored_offset(dir.path(), 437) as usize;
    records[offset + 8 + 3] ^= 0x20;
    std::fs::write(&records_path, &records).unwrap();
    let error = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap_err();
    assert!(
        matches!(error, VerifyError::ChecksumMismatch { index: 437 }),
        "{error}"
    );
    assert_eq!(error.first_bad_record(), Some(437));
    assert_eq!(error.to_string(), "record 437: frame checksum mismatch");
}

/// Changes the first byte of record `index` and writes a checksum that matches: the frame is
/// valid, the record is not the one signed.
pub(crate) fn rewrite_record_with_valid_checksum(dir: &Path, index: u64) -> Vec<u8> {
    let records_path = dir.join("records.dat");
    let mut records = std::fs::read(&records_path).unwrap();
    let offset = stored_offset(dir, index) as usize;
    let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
    records[offset + 8] = b'R';
    let payload = records[offset + 8..offset + 8 + length].to_vec();
    records[offset + 4..offset + 8].copy_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    std::fs::write(&records_path, &records).unwrap();
    payload
}

#[tokio::test]
async fn a_rewritten_record_with_a_valid_checksum_is_caught() {
    let dir = verified_directory(1000).await;
    rewrite_record_with_valid_checksum(dir.path(), 612);
    let error = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap_err();
    assert!(
        matches!(error, VerifyError::LeafHashMismatch { index: 612 }),
        "{error}"
    );
}

#[tokio::test]
async fn a_rewrite_that_also_forges_derived_files_fails_the_checkpoint() {
    let dir = verified_directory(1000).await;
    let payload = rewrite_record_with_valid_checksum(dir.path(), 612);
    // Forge the stored leaf hash and the tile root too; only the signed roots remain.
    let forged_leaf = merkle::leaf_hash(&payload);
    let leaf_path = dir.path().join("leaf-hashes.dat");
    let mut leaf_bytes = std::fs::read(&leaf_path).unwrap();
    leaf_bytes[612 * 32..613 * 32].copy_from_slice(&forged_leaf);
    std::fs::write(&leaf_path, &leaf_bytes).unwrap();
    let forged_leaves: Vec<Hash> = split_hashes(&leaf_bytes);

    // With only the leaf hash forged, the stored level-4 node of records 608..624 gives it away.
    let error = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::StoredNodeMismatch {
                level: 4,
                first_record: 608
            }
        ),
        "{error}"
    );
    assert_eq!(error.first_bad_record(), Some(608));

    let level4_path = dir.path().join("level4-hashes.dat");
    let mut level4_bytes = std::fs::read(&level4_path).unwrap();
    level4_bytes[38 * 32..39 * 32].copy_from_slice(&merkle::perfect_root(&forged_leaves[608..624]));
    std::fs::write(&level4_path, &level4_bytes).unwrap();
    let tile_path = dir.path().join("tile-hashes.dat");
    let mut tile_bytes = std::fs::read(&tile_path).unwrap();
    tile_bytes[2 * 32..3 * 32].copy_from_slice(&merkle::perfect_root(&forged_leaves[512..768]));
    std::fs::write(&tile_path, &tile_bytes).unwrap();

    let error = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap_err();
    match error {
        VerifyError::CheckpointRootMismatch {
            checkpoint,
            tree_size,
            first_suspect,
        } => {
            // Checkpoints were signed at 0, 250, 500, 750 and 1000 records.
            assert_eq!((checkpoint, tree_size, first_suspect), (3, 750, 500));
        }
        other => panic!("expected a checkpoint root mismatch, got {other}"),
    }
}

#[tokio::test]
async fn a_tampered_checkpoint_signature_is_caught() {
    let dir = verified_directory(1000).await;
    let path = dir.path().join("checkpoints.dat");
    let mut bytes = std::fs::read(&path).unwrap();
    // Change the tree size digit of the second checkpoint and fix up its frame checksum, so that
    // only the signature can tell.
    let first_length = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
    let second = 8 + first_length;
    let length = u32::from_le_bytes(bytes[second..second + 4].try_into().unwrap()) as usize;
    let note = String::from_utf8(bytes[second + 8..second + 8 + length].to_vec()).unwrap();
    let forged = note.replacen("\n250\n", "\n251\n", 1);
    assert_ne!(forged, note);
    bytes[second + 8..second + 8 + length].copy_from_slice(forged.as_bytes());
    let checksum = crc32c::crc32c(forged.as_bytes());
    bytes[second + 4..second + 8].copy_from_slice(&checksum.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let error = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::CheckpointSignature { checkpoint: 1, .. }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn the_streaming_verifier_checks_bundles_and_checkpoints_from_any_source() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    fill(&ledger, 300).await;
    let first = ledger.checkpoint_now().await.unwrap();
    fill(&ledger, 600).await;
    let second = ledger.checkpoint_now().await.unwrap();

    let mut verifier = Verifier::new(ledger.verifier_key()).unwrap();
    verifier.add_checkpoint(&first.note).unwrap();
    verifier.add_checkpoint(&second.note).unwrap();
    for index in 0..=2 {
        let width = if index < 2 { 256 } else { 600 - 512 };
        let bundle = ledger.entry_bundle(index, width).unwrap();
        for entry in tiles::decode_entry_bundle(&bundle).unwrap() {
            verifier.push_record(entry).unwrap();
        }
    }
    let report = verifier.finish().unwrap();
    assert_eq!(report.records, 600);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.root, second.root);

    let mut verifier = Verifier::new(ledger.verifier_key()).unwrap();
    verifier.add_checkpoint(&first.note).unwrap();
    let mut result = Ok(());
    for index in 0..300 {
        let mut bytes = ledger.read(index).unwrap();
        if index == 77 {
            bytes.push(b'!');
        }
        result = result.and_then(|()| verifier.push_record(&bytes));
    }
    assert!(matches!(
        result,
        Err(VerifyError::CheckpointRootMismatch {
            checkpoint: 0,
            tree_size: 300,
            first_suspect: 0
        })
    ));

    let mut verifier = Verifier::new(ledger.verifier_key()).unwrap();
    verifier.add_checkpoint(&second.note).unwrap();
    verifier.push_record(&ledger.read(0).unwrap()).unwrap();
    assert!(matches!(
        verifier.finish(),
        Err(VerifyError::CheckpointBeyondRecords { records: 1, .. })
    ));
}

#[tokio::test]
async fn a_torn_checkpoint_write_is_cut_off_but_damage_before_others_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    for size in [10, 20, 30] {
        fill(&ledger, size).await;
        ledger.checkpoint_now().await.unwrap();
    }
    drop(ledger);
    let path = dir.path().join("checkpoints.dat");
    let original = std::fs::read(&path).unwrap();

    let mut torn = original.clone();
    torn.extend_from_slice(&200u32.to_le_bytes());
    torn.extend_from_slice(&[0x11; 50]);
    std::fs::write(&path, &torn).unwrap();
    let ledger = open(dir.path());
    assert_eq!(ledger.latest_checkpoint().tree_size, 30);
    assert_eq!(
        ledger
            .checkpoint_at_or_after(11)
            .unwrap()
            .unwrap()
            .tree_size,
        20
    );
    drop(ledger);
    assert_eq!(std::fs::read(&path).unwrap(), original);

    // Damage followed by more than one frame's worth of data is not a torn write.
    let mut damaged = original.clone();
    damaged[10] ^= 0xFF;
    damaged.extend_from_slice(&vec![0x22; 70_000]);
    std::fs::write(&path, &damaged).unwrap();
    assert!(matches!(
        Ledger::open(dir.path(), signer(), options()),
        Err(Error::CorruptCheckpoints { offset: 0, .. })
    ));
    assert!(matches!(
        verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}),
        Err(VerifyError::CorruptCheckpoints { offset: 0, .. })
    ));
}

/// A process being spawned holds a copy of every open file until it starts its program, the
/// directory lock's included; a ledger closed in that moment must still reopen.
#[test]
fn a_ledger_reopens_while_this_process_spawns_others() {
    let dir = tempfile::tempdir().unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawner = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut spawned = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::process::Command::new("true").status().unwrap();
                spawned += 1;
            }
            spawned
        })
    };
    for _ in 0..40 {
        drop(open(dir.path()));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(spawner.join().unwrap() > 0);
}

#[tokio::test]
async fn a_ledger_keeps_its_id_and_another_with_the_same_key_has_another() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(dir.path());
    let id = ledger.id().to_owned();
    assert_eq!(id.len(), 32);
    assert!(
        id.bytes()
            .all(|byte| byte.is_ascii_hexdigit() && !byte.is_ascii_uppercase())
    );
    fill(&ledger, 20).await;
    drop(ledger);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("ledger-id")).unwrap(),
        format!("{id}\n")
    );
    assert_eq!(open(dir.path()).id(), id, "reopened, the same ledger");

    let other = tempfile::tempdir().unwrap();
    let ledger = open(other.path());
    fill(&ledger, 20).await;
    assert_ne!(ledger.id(), id, "the same records and key, another ledger");
    drop(ledger);

    // A damaged id is not replaced: the ledger does not open.
    std::fs::write(dir.path().join("ledger-id"), "not an id\n").unwrap();
    assert!(matches!(
        Ledger::open(dir.path(), signer(), options()),
        Err(Error::CorruptLedgerId(_))
    ));
}
