//! A write or sync that fails: the ledger refuses every later append and signs no checkpoint, says
//! why, and, opened again, it holds every record acknowledged before the failure and takes appends
//! again.
//!
//! For the writer, the child is this same test binary, re-executed under a shell that lowers the
//! file size limit (`ulimit -f`) and ignores SIGXFSZ, so that a write past the limit fails with
//! `EFBIG` instead of killing the process: a real failed write, as a full disk would give.
//!
//! For the checkpointer, a derived file's descriptor is pointed at `/dev/null` for a moment,
//! where a sync fails for real (`EINVAL`), and then back at the file, where the next sync
//! succeeds: as on Linux after a failed writeback, whose dropped pages a later sync no longer
//! reports.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use civitas_ledger::{Error, Ledger, LedgerOptions, NoteSigner, verify_dir};

const CHILD_DIR_VARIABLE: &str = "CIVITAS_LEDGER_FAILURE_CHILD_DIR";
const TEST_NAME: &str = "failure::a_failed_write_stops_appends_until_reopened";
/// Records the child tries to append; its limit stops it long before.
const CHILD_ATTEMPTS: usize = 20_000;

fn signer() -> NoteSigner {
    crate::signer_from(12)
}

fn options() -> LedgerOptions {
    crate::hourly_checkpoints()
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

/// The descriptor number this process has open on `path`.
fn open_descriptor(path: &Path) -> i32 {
    let path = path.canonicalize().unwrap();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let target = std::fs::read_link(entry.path()).ok()?;
            (target == path).then(|| entry.file_name().to_str()?.parse().ok())?
        })
        .next()
        .unwrap_or_else(|| panic!("{} is not open", path.display()))
}

/// Makes descriptor `target` refer to what `file` is open on.
fn redirect(target: i32, file: &std::fs::File) {
    // SAFETY: `dup2` only replaces the descriptor table entry `target`, which the ledger keeps
    // open for as long as this test uses it; `file` is open.
    let result = unsafe { libc::dup2(file.as_raw_fd(), target) };
    assert_eq!(result, target, "{}", std::io::Error::last_os_error());
}

#[tokio::test]
async fn a_failed_checkpoint_sync_stops_appends_and_checkpoints_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
    for n in 0..5 {
        ledger.append(record(n)).await.unwrap();
    }
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, 5);
    for n in 5..10 {
        ledger.append(record(n)).await.unwrap();
    }

    // The checkpointer syncs the derived files before it signs; the first, the offsets, fails.
    let offsets_path = dir.path().join("record-offsets.dat");
    let descriptor = open_descriptor(&offsets_path);
    let offsets_file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&offsets_path)
        .unwrap();
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .unwrap();
    redirect(descriptor, &null);
    let error = ledger.checkpoint_now().await.unwrap_err();
    redirect(descriptor, &offsets_file);
    assert!(
        matches!(&error, Error::CheckpointFailed(message) if message.contains("record-offsets.dat")),
        "{error}"
    );

    // The sync would succeed now, but the failure stays: it is reported, appends are refused and
    // nothing is signed, not even on the way out.
    let failure = ledger.failure().expect("the ledger names its failure");
    assert!(failure.contains("record-offsets.dat"), "{failure}");
    assert!(matches!(
        ledger.append(record(10)).await,
        Err(Error::Failed(_))
    ));
    assert!(matches!(
        ledger.checkpoint_now().await,
        Err(Error::CheckpointFailed(_))
    ));
    assert!(matches!(
        ledger.receipt(7).await,
        Err(Error::CheckpointFailed(_))
    ));
    assert_eq!(ledger.latest_checkpoint().tree_size, 5);
    assert_eq!(ledger.size(), 10);
    let checkpoints_path = dir.path().join("checkpoints.dat");
    let checkpoints = std::fs::read(&checkpoints_path).unwrap();
    drop(ledger);
    assert_eq!(std::fs::read(&checkpoints_path).unwrap(), checkpoints);

    // Opened again, the derived files are recomputed past the last checkpoint, every
    // acknowledged record is there, and appends and checkpoints work.
    let ledger = Ledger::open(dir.path(), signer(), options()).unwrap();
    assert_eq!(ledger.failure(), None);
    assert_eq!(ledger.size(), 10);
    for n in 0..10 {
        assert_eq!(ledger.read(n).unwrap(), record(n as usize));
    }
    assert_eq!(ledger.append(record(10)).await.unwrap(), 10);
    let receipt = ledger.receipt(7).await.unwrap();
    receipt
        .verify(Some(&record(7)), ledger.verifier_key())
        .unwrap();
    drop(ledger);
    let report = verify_dir(dir.path(), &signer().verifier_key(), |_, _| {}).unwrap();
    assert_eq!(report.records, 11);
    assert_eq!(report.verified_tree_size, 11);
}
