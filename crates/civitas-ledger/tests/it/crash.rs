//! Crash safety: a child process appends from many tasks and prints each index and record digest
//! only after the append resolved; the parent kills it with SIGKILL at a random moment, reopens
//! the ledger and checks that every acknowledged record is there, unchanged, that the tree and the
//! checkpoints continue consistently, and that appends work again.
//!
//! The child is this same test binary, re-executed with an environment variable that makes the
//! test play the child's part.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use civitas_ledger::merkle;
use civitas_ledger::{Checkpoint, Ledger, LedgerOptions, NoteSigner, verify_dir};
use sha2::{Digest, Sha256};

const CHILD_DIR_VARIABLE: &str = "CIVITAS_LEDGER_CRASH_CHILD_DIR";
const CHILD_ROUND_VARIABLE: &str = "CIVITAS_LEDGER_CRASH_CHILD_ROUND";
const TEST_NAME: &str = "crash::acknowledged_records_survive_sigkill";
const ROUNDS: u32 = 4;
const APPENDING_TASKS: u64 = 48;
/// The child stops by itself after this long, should the parent never kill it.
const CHILD_LIFETIME: Duration = Duration::from_secs(60);

fn signer() -> NoteSigner {
    crate::signer_from(11)
}

fn options() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_millis(10),
        ..LedgerOptions::default()
    }
}

fn digest_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn random_u64() -> u64 {
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

#[test]
fn acknowledged_records_survive_sigkill() {
    if let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) {
        let round: u32 = std::env::var(CHILD_ROUND_VARIABLE)
            .unwrap()
            .parse()
            .unwrap();
        run_child(Path::new(&dir), round);
        return;
    }

    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: HashMap<u64, String> = HashMap::new();
    let mut previous_checkpoint: Option<Checkpoint> = None;
    for round in 0..ROUNDS {
        let lines = run_and_kill_child(dir.path(), round);
        let mut new_in_round = 0;
        for line in &lines {
            let mut parts = line.split(' ');
            let (Some("ack"), Some(index), Some(digest)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let index: u64 = index.parse().unwrap();
            if let Some(previous) = acknowledged.insert(index, digest.to_owned()) {
                assert_eq!(previous, digest, "index {index} acknowledged twice");
            } else {
                new_in_round += 1;
            }
        }
        assert!(
            new_in_round > 0,
            "round {round}: the child acknowledged nothing"
        );

        let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
        let size = ledger.size();
        eprintln!(
            "round {round}: {new_in_round} new acknowledged records, {} in all, size {size} after reopen",
            acknowledged.len()
        );
        for (index, digest) in &acknowledged {
            assert!(
                *index < size,
                "acknowledged index {index} lost, size {size}"
            );
            assert_eq!(
                &digest_hex(&ledger.read(*index).unwrap()),
                digest,
                "record {index} changed"
            );
        }
        // The checkpoint stored before the crash still matches the tree (open checked it), and
        // the previous round's last checkpoint is a prefix of this one.
        let latest = ledger.latest_checkpoint();
        assert!(latest.tree_size <= size);
        assert_eq!(ledger.root(latest.tree_size).unwrap(), latest.root);
        if let Some(previous) = &previous_checkpoint {
            let proof = ledger
                .consistency_proof(previous.tree_size, latest.tree_size)
                .unwrap();
            merkle::verify_consistency(
                previous.tree_size,
                latest.tree_size,
                &previous.root,
                &latest.root,
                &proof,
            )
            .unwrap();
        }

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let record = format!("parent after round {round}").into_bytes();
        let index = runtime.block_on(ledger.append(record.clone())).unwrap();
        assert_eq!(index, size);
        assert_eq!(ledger.read(index).unwrap(), record);
        let receipt = runtime.block_on(ledger.receipt(index)).unwrap();
        receipt
            .verify(Some(&record), ledger.verifier_key())
            .unwrap();
        previous_checkpoint = Some(runtime.block_on(ledger.checkpoint_now()).unwrap());
        drop(ledger);

        let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
        assert_eq!(report.records, size + 1);
        assert_eq!(report.verified_tree_size, size + 1);
    }
    assert!(acknowledged.len() > 100, "too few appends to mean much");
}

/// Starts the child, waits until it has acknowledged something, lets it run a random while
/// longer, kills it and returns every complete line it printed.
fn run_and_kill_child(dir: &Path, round: u32) -> Vec<String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VARIABLE, dir)
        .env(CHILD_ROUND_VARIABLE, round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (first_ack, first_ack_seen) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut reader = std::io::BufReader::new(stdout);
        let mut lines = Vec::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                // A line cut by the kill has no newline and may be incomplete: ignore it.
                Ok(_) if line.last() != Some(&b'\n') => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    if text.starts_with("ack ") {
                        let _ = first_ack.send(());
                    }
                    lines.push(text);
                }
            }
        }
        lines
    });
    first_ack_seen
        .recv_timeout(Duration::from_secs(60))
        .expect("the child acknowledged an append");
    std::thread::sleep(Duration::from_millis(20 + random_u64() % 400));
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap()
}

fn run_child(dir: &Path, round: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(dir, signer(), options()).unwrap();
        let stop_at = Instant::now() + CHILD_LIFETIME;
        let mut tasks = Vec::new();
        for task in 0..APPENDING_TASKS {
            let ledger = ledger.clone();
            tasks.push(tokio::spawn(async move {
                let mut sequence = 0u64;
                while Instant::now() < stop_at {
                    let padding = "p".repeat(((task * 7 + sequence) % 200) as usize);
                    let record = format!("round {round} task {task} sequence {sequence} {padding}");
                    if task % 8 == 0 {
                        // Some batches too, so that group commit mixes both kinds.
                        let records = vec![
                            format!("{record} a").into_bytes(),
                            format!("{record} b").into_bytes(),
                        ];
                        let range = ledger.append_batch(records.clone()).await.unwrap();
                        for (index, record) in range.zip(&records) {
                            println!("ack {index} {}", digest_hex(record));
                        }
                    } else {
                        let index = ledger.append(record.clone().into_bytes()).await.unwrap();
                        println!("ack {index} {}", digest_hex(record.as_bytes()));
                    }
                    sequence += 1;
                }
            }));
        }
        // Receipts force checkpoints at random moments, so the kill also lands inside them.
        let receipts = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                while Instant::now() < stop_at {
                    let size = ledger.size();
                    if size > 0 {
                        ledger.receipt(size - 1).await.unwrap();
                    }
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };
        for task in tasks {
            task.await.unwrap();
        }
        receipts.await.unwrap();
    });
}
