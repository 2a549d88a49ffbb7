//! A write that fails: the ledger refuses every later append and says why, and, opened again, it
//! holds every record acknowledged before the failure and takes appends again.
//!
//! The child is this same test binary, re-executed under a shell that lowers the file size limit
//! (`ulimit -f`) and ignores SIGXFSZ, so that a write past the limit fails with `EFBIG` instead
//! of killing the process: a real failed write, as a full disk would give.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use civitas_ledger::{Error, Ledger, LedgerOptions, NoteSigner, verify_dir};
use ed25519_dalek::SigningKey;

const CHILD_DIR_VARIABLE: &str = "CIVITAS_LEDGER_FAILURE_CHILD_DIR";
const TEST_NAME: &str = "failure::a_failed_write_stops_appends_until_reopened";
/// Records the child tries to append; its limit stops it long before.
const CHILD_ATTEMPTS: usize = 20_000;

fn signer() -> NoteSigner {
    NoteSigner::new("cn-js-nanjing", SigningKey::from_bytes(&[12; 32])).unwrap()
}

fn options() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_secs(3600),
        ..LedgerOptions::default()
    }
}

fn record(n: usize) -> Vec<u8> {
    format!("record {n} {}", "x".repeat(1000)).into_bytes()
}

#[test]
fn a_failed_write_stops_appends_until_reopened() {
    if let Ok(dir) = std::env::var(CHILD_DIR_VARIABLE) {
        run_child(Path::new(&dir));
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
        for n in 0..3 {
            runtime.block_on(ledger.append(record(n))).unwrap();
        }
        assert_eq!(ledger.failure(), None);
        ledger.size()
    };
    // The records file is zero-filled ahead of its records; the child may write a little way
    // into that space (a limit in 512-byte blocks, or 1024-byte ones in some shells) but not
    // extend it.
    let length = std::fs::metadata(dir.path().join("records.dat"))
        .unwrap()
        .len();
    let blocks = length / 512;
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {blocks} && exec \"$0\" \"$@\""
        ))
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR_VARIABLE, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let acknowledged: Vec<(u64, usize)> = stdout
        .lines()
        .filter_map(|line| {
            let mut parts = line.strip_prefix("ack ")?.split(' ');
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .collect();
    let refusal = stdout
        .lines()
        .find_map(|line| line.strip_prefix("refused "))
        .unwrap_or_else(|| panic!("the child's appends never failed: {stdout}"));
    assert!(
        refusal.to_lowercase().contains("file too large"),
        "{refusal}"
    );
    assert!(!acknowledged.is_empty(), "the child acknowledged nothing");

    // Opened again, without the limit: everything acknowledged is there, and appends work.
    let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
    assert_eq!(ledger.failure(), None);
    for n in 0..3 {
        assert_eq!(ledger.read(n).unwrap(), record(n as usize));
    }
    for &(index, n) in &acknowledged {
        assert!(index >= before);
        assert_eq!(ledger.read(index).unwrap(), record(n), "record {index}");
    }
    let size = ledger.size();
    let index = runtime.block_on(ledger.append(record(0))).unwrap();
    assert_eq!(index, size);
    drop(ledger);
    let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
    assert_eq!(report.records, size + 1);
}

/// Appends until an append fails, printing `ack INDEX N` for each acknowledged record N, then
/// checks that the ledger names the failure and refuses the next append too.
fn run_child(dir: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ledger = Ledger::open(dir, signer(), options()).unwrap();
        for n in 3..CHILD_ATTEMPTS {
            match ledger.append(record(n)).await {
                Ok(index) => println!("ack {index} {n}"),
                Err(error) => {
                    assert!(matches!(error, Error::Failed(_)), "{error}");
                    let failure = ledger.failure().expect("the ledger names its failure");
                    let again = ledger.append(record(0)).await.unwrap_err();
                    assert_eq!(again.to_string(), error.to_string());
                    println!("refused {failure}");
                    return;
                }
            }
        }
        panic!("{CHILD_ATTEMPTS} appends and none failed");
    });
}
