//! Ledger benchmark: `cargo bench -p civitas-ledger` prints a markdown table.
//!
//! Measured: durable group-commit append throughput (256-byte records, 64 and 512 appending
//! tasks; and 64 tasks on two single-threaded runtimes, as the gateway's threads append, each
//! answered directly and through its thread's mailbox), inclusion and consistency proof latency
//! at a tree of ten million records, full verification speed against this machine's raw
//! single-thread SHA-256 speed, and bytes on disk per record beyond the record itself. Every
//! figure is the median of several runs because the machine is shared and noisy.
//!
//! Environment variables: `CIVITAS_BENCH_PROOF_RECORDS` (default 10,000,000),
//! `CIVITAS_BENCH_APPEND_RECORDS` (default 300,000 per run), `CIVITAS_BENCH_VERIFY_RECORDS`
//! (default 1,000,000), `CIVITAS_BENCH_RUNS` (default 3).

use std::path::Path;
use std::time::{Duration, Instant};

use civitas_ledger::merkle;
use civitas_ledger::{Completions, Ledger, LedgerOptions, NoteSigner, verify_dir};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

const RECORD_BYTES: usize = 256;
const PROOF_RECORD_BYTES: usize = 32;
const PROOF_SAMPLES: usize = 100_000;

fn environment_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(text) => text
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a number")),
        Err(_) => default,
    }
}

fn signer() -> NoteSigner {
    NoteSigner::new("bench-node", SigningKey::from_bytes(&[5; 32])).unwrap()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A record of `length` bytes that differs for every index.
fn record(index: u64, length: usize) -> Vec<u8> {
    let mut bytes = vec![b'r'; length];
    let text = index.to_string();
    bytes[..text.len()].copy_from_slice(text.as_bytes());
    bytes
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn raw_sha256_megabytes_per_second(runs: u64) -> f64 {
    let buffer = vec![0x5Au8; 64 << 20];
    let speeds = (0..runs.max(3))
        .map(|_| {
            let started = Instant::now();
            let digest = Sha256::digest(&buffer);
            std::hint::black_box(digest);
            buffer.len() as f64 / 1e6 / started.elapsed().as_secs_f64()
        })
        .collect();
    median(speeds)
}

/// One run of durable appends with `tasks` tokio tasks appending concurrently.
struct AppendRun {
    per_second: f64,
    /// Appends per CPU-second of the whole process: the ceiling once syncs are fast enough.
    per_cpu_second: f64,
    /// Bytes on disk per record beyond the record.
    overhead: f64,
}

impl AppendRun {
    /// The figures of a run that appended `appended` records, once they are all in; closes the
    /// ledger (after the CPU time is taken) so that its files are complete for the overhead.
    fn measured(
        ledger: Ledger,
        dir: &Path,
        appended: u64,
        elapsed: Duration,
        cpu_before: f64,
    ) -> AppendRun {
        let cpu = process_cpu_seconds() - cpu_before;
        assert_eq!(ledger.size(), appended);
        drop(ledger);
        AppendRun {
            per_second: appended as f64 / elapsed.as_secs_f64(),
            per_cpu_second: appended as f64 / cpu,
            overhead: overhead_per_record(dir, appended, RECORD_BYTES),
        }
    }
}

fn append_run(tasks: u64, records: u64) -> AppendRun {
    let dir = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let ledger = Ledger::open(dir.path(), signer(), LedgerOptions::default()).unwrap();
    let per_task = records / tasks;
    let cpu_before = process_cpu_seconds();
    let elapsed = runtime.block_on(async {
        let started = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    for sequence in 0..per_task {
                        let index = task * per_task + sequence;
                        ledger.append(record(index, RECORD_BYTES)).await.unwrap();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
        started.elapsed()
    });
    AppendRun::measured(ledger, dir.path(), per_task * tasks, elapsed, cpu_before)
}

/// `tasks` appending tasks spread over `threads` threads, each a single-threaded runtime as a
/// gateway thread is; with `mailbox`, each thread's appends are answered through its own
/// [`Completions`], otherwise each append is answered (and its task woken) directly.
fn threaded_append_run(threads: u64, tasks: u64, records: u64, mailbox: bool) -> AppendRun {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path(), signer(), LedgerOptions::default()).unwrap();
    let per_thread = tasks / threads;
    let per_task = records / tasks;
    let cpu_before = process_cpu_seconds();
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
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
                    let handles: Vec<_> = (0..per_thread)
                        .map(|task| {
                            let (ledger, completions) = (ledger.clone(), completions.clone());
                            let first = (thread * per_thread + task) * per_task;
                            tokio::spawn(async move {
                                for index in first..first + per_task {
                                    let bytes = record(index, RECORD_BYTES);
                                    if mailbox {
                                        ledger.append_via(&completions, bytes).await.unwrap();
                                    } else {
                                        ledger.append(bytes).await.unwrap();
                                    }
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.unwrap();
                    }
                });
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let appended = per_task * per_thread * threads;
    AppendRun::measured(ledger, dir.path(), appended, started.elapsed(), cpu_before)
}

/// Bytes in `dir` beyond the records themselves, per record; the zero-filled space at the end of
/// the records file (about a megabyte, whatever the ledger's size) is not counted.
fn overhead_per_record(dir: &Path, records: u64, record_bytes: usize) -> f64 {
    let total: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    let records_file = std::fs::read(dir.join("records.dat")).unwrap();
    let zero_tail = records_file
        .iter()
        .rev()
        .take_while(|&&byte| byte == 0)
        .count() as u64;
    (total - zero_tail - records * record_bytes as u64) as f64 / records as f64
}

/// Appends `count` records of `length` bytes in large batches, the fastest way to build a big
/// ledger.
fn build(dir: &Path, count: u64, length: usize) -> Duration {
    let runtime = runtime();
    let ledger = Ledger::open(dir, signer(), LedgerOptions::default()).unwrap();
    let started = Instant::now();
    runtime.block_on(async {
        let batch = 65_536;
        let mut next = 0;
        while next < count {
            let end = (next + batch).min(count);
            let records = (next..end).map(|index| record(index, length)).collect();
            ledger.append_batch(records).await.unwrap();
            next = end;
        }
        ledger.checkpoint_now().await.unwrap();
    });
    started.elapsed()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

struct ProofLatency {
    inclusion_p50: Duration,
    inclusion_p99: Duration,
    consistency_p50: Duration,
    consistency_p99: Duration,
    build: Duration,
}

fn proof_latency(records: u64, runs: u64) -> ProofLatency {
    let dir = tempfile::tempdir().unwrap();
    let build = build(dir.path(), records, PROOF_RECORD_BYTES);
    let ledger = Ledger::open(dir.path(), signer(), LedgerOptions::default()).unwrap();
    let size = ledger.size();
    let root = ledger.root(size).unwrap();
    let mut random = XorShift(0x9E37_79B9_7F4A_7C15);

    let mut inclusion_p50 = Vec::new();
    let mut inclusion_p99 = Vec::new();
    let mut consistency_p50 = Vec::new();
    let mut consistency_p99 = Vec::new();
    for _ in 0..runs {
        let mut inclusion = Vec::with_capacity(PROOF_SAMPLES);
        for sample in 0..PROOF_SAMPLES {
            let index = random.next() % size;
            let started = Instant::now();
            let proof = ledger.inclusion_proof(index, size).unwrap();
            inclusion.push(started.elapsed());
            if sample % 1000 == 0 {
                let leaf = merkle::leaf_hash(&record(index, PROOF_RECORD_BYTES));
                merkle::verify_inclusion(&leaf, index, size, &proof, &root).unwrap();
            }
        }
        inclusion.sort();
        inclusion_p50.push(percentile(&inclusion, 0.50).as_secs_f64());
        inclusion_p99.push(percentile(&inclusion, 0.99).as_secs_f64());

        let mut consistency = Vec::with_capacity(PROOF_SAMPLES / 10);
        for _ in 0..PROOF_SAMPLES / 10 {
            let old = 1 + random.next() % size;
            let started = Instant::now();
            let proof = ledger.consistency_proof(old, size).unwrap();
            consistency.push(started.elapsed());
            std::hint::black_box(proof);
        }
        consistency.sort();
        consistency_p50.push(percentile(&consistency, 0.50).as_secs_f64());
        consistency_p99.push(percentile(&consistency, 0.99).as_secs_f64());
    }
    ProofLatency {
        inclusion_p50: Duration::from_secs_f64(median(inclusion_p50)),
        inclusion_p99: Duration::from_secs_f64(median(inclusion_p99)),
        consistency_p50: Duration::from_secs_f64(median(consistency_p50)),
        consistency_p99: Duration::from_secs_f64(median(consistency_p99)),
        build,
    }
}

/// Verification speed over a ledger of `records` 256-byte records.
fn verify_speed(records: u64, runs: u64) -> VerifySpeed {
    let dir = tempfile::tempdir().unwrap();
    build(dir.path(), records, RECORD_BYTES);
    let key = signer().verifier_key();
    // One unmeasured pass so that every run reads from the page cache alike.
    verify_dir(dir.path(), &key, |_, _| {}).unwrap();
    let mut speeds = Vec::new();
    let mut ratios = Vec::new();
    let mut cpu_speeds = Vec::new();
    for _ in 0..runs.max(3) {
        let sha = raw_sha256_megabytes_per_second(1);
        let started = Instant::now();
        let cpu_before = process_cpu_seconds();
        let report = verify_dir(dir.path(), &key, |_, _| {}).unwrap();
        let cpu = process_cpu_seconds() - cpu_before;
        assert_eq!(report.records, records);
        let megabytes = report.record_bytes as f64 / 1e6;
        let speed = megabytes / started.elapsed().as_secs_f64();
        speeds.push(speed);
        ratios.push(speed / sha);
        cpu_speeds.push(megabytes / cpu);
    }
    VerifySpeed {
        wall: median(speeds),
        ratio: median(ratios),
        per_cpu_second: median(cpu_speeds),
    }
}

struct VerifySpeed {
    /// MB of records per second of wall time.
    wall: f64,
    /// `wall` over raw single-thread SHA-256 measured just before each run.
    ratio: f64,
    /// MB of records per CPU-second summed over all threads: unlike wall time, this does not
    /// depend on how many cores other processes leave free.
    per_cpu_second: f64,
}

/// User plus system CPU time of this process, all threads included, from `/proc/self/stat`
/// (fields 14 and 15, in clock ticks of 1/100 s on Linux).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The command name may contain spaces, so fields are counted after its closing parenthesis.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Raw single-thread SHA-256 per CPU-second: hashing one buffer is a single thread's work, so
/// CPU time is its own time on a core.
fn raw_sha256_per_cpu_second() -> f64 {
    let buffer = vec![0x5Au8; 256 << 20];
    let cpu_before = process_cpu_seconds();
    std::hint::black_box(Sha256::digest(&buffer));
    buffer.len() as f64 / 1e6 / (process_cpu_seconds() - cpu_before)
}

/// Median fdatasync latency of a small append on the file system the benchmark writes to: the
/// floor under every group commit.
fn fdatasync_latency() -> Duration {
    use std::io::Write;
    let mut file = tempfile::tempfile().unwrap();
    let mut latencies: Vec<f64> = (0..100)
        .map(|_| {
            file.write_all(&[7u8; 16 * 1024]).unwrap();
            let started = Instant::now();
            file.sync_data().unwrap();
            started.elapsed().as_secs_f64()
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    Duration::from_secs_f64(latencies[latencies.len() / 2])
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "unknown".into())
}

fn main() {
    // `cargo bench` passes `--bench` (a filter argument selects nothing here). Under `cargo test`
    // (no `--bench`) a small smoke run checks that the benchmark still works without taking the
    // test suite's time.
    let smoke = !std::env::args().any(|argument| argument == "--bench");
    let scale = |full: u64, small: u64| if smoke { small } else { full };
    let runs = environment_number("CIVITAS_BENCH_RUNS", scale(3, 1)).max(1);
    let proof_records =
        environment_number("CIVITAS_BENCH_PROOF_RECORDS", scale(10_000_000, 10_000));
    let append_records = environment_number("CIVITAS_BENCH_APPEND_RECORDS", scale(300_000, 2_000));
    let verify_records =
        environment_number("CIVITAS_BENCH_VERIFY_RECORDS", scale(1_000_000, 10_000));

    let load_before = load_average();
    eprintln!("measuring raw sha-256 speed and fdatasync latency");
    let sha = raw_sha256_megabytes_per_second(runs);
    let sync_latency = fdatasync_latency();

    let mut append_rows = Vec::new();
    let mut overheads = Vec::new();
    for tasks in [64, 512] {
        eprintln!("measuring durable appends with {tasks} tasks");
        let mut throughputs = Vec::new();
        let mut cpu_throughputs = Vec::new();
        for _ in 0..runs {
            let run = append_run(tasks, append_records);
            throughputs.push(run.per_second);
            cpu_throughputs.push(run.per_cpu_second);
            overheads.push(run.overhead);
        }
        append_rows.push((tasks, median(throughputs), median(cpu_throughputs)));
    }

    eprintln!("measuring durable appends from 64 tasks on two single-threaded runtimes");
    let mut threaded_rows = Vec::new();
    for mailbox in [false, true] {
        let mut throughputs = Vec::new();
        let mut cpu_throughputs = Vec::new();
        for _ in 0..runs {
            let run = threaded_append_run(2, 64, append_records, mailbox);
            throughputs.push(run.per_second);
            cpu_throughputs.push(run.per_cpu_second);
        }
        threaded_rows.push((mailbox, median(throughputs), median(cpu_throughputs)));
    }

    eprintln!("measuring verification over {verify_records} records");
    let verify = verify_speed(verify_records, runs);
    let sha_per_cpu_second = median(
        (0..runs.max(3))
            .map(|_| raw_sha256_per_cpu_second())
            .collect(),
    );

    eprintln!("building a ledger of {proof_records} records for proof latency");
    let proofs = proof_latency(proof_records, runs);

    let load_after = load_average();
    println!();
    println!("| measurement | result | target |");
    println!("| --- | --- | --- |");
    println!(
        "| machine load average (1, 5, 15 min) before / after | {load_before} / {load_after} | 2 cores |"
    );
    println!(
        "| fdatasync of a 16 KB append, p50 | {:.0} µs | |",
        sync_latency.as_secs_f64() * 1e6
    );
    for (tasks, throughput, per_cpu_second) in &append_rows {
        println!(
            "| durable appends, {tasks} tasks, {RECORD_BYTES}-byte records | {throughput:.0} records/s (at most {tasks} per fdatasync; CPU cost {per_cpu_second:.0} appends per CPU-second) | >= 200,000 records/s |"
        );
    }
    for (mailbox, throughput, per_cpu_second) in &threaded_rows {
        let answered = if *mailbox {
            "through each thread's mailbox"
        } else {
            "each answered directly"
        };
        println!(
            "| durable appends, 64 tasks on 2 single-threaded runtimes, {answered} | {throughput:.0} records/s (CPU cost {per_cpu_second:.0} appends per CPU-second) | |"
        );
    }
    if let [(_, direct, direct_cpu), (_, mailed, mailed_cpu)] = threaded_rows[..] {
        println!(
            "| mailbox / direct, on 2 single-threaded runtimes | {:.2} x records/s, {:.2} x appends per CPU-second | |",
            mailed / direct,
            mailed_cpu / direct_cpu
        );
    }
    println!(
        "| inclusion proof at {proof_records} records, p50 / p99 | {:.1} µs / {:.1} µs | p99 <= 100 µs |",
        proofs.inclusion_p50.as_secs_f64() * 1e6,
        proofs.inclusion_p99.as_secs_f64() * 1e6
    );
    println!(
        "| consistency proof at {proof_records} records, p50 / p99 | {:.1} µs / {:.1} µs | |",
        proofs.consistency_p50.as_secs_f64() * 1e6,
        proofs.consistency_p99.as_secs_f64() * 1e6
    );
    println!(
        "| building the {proof_records}-record ledger (batches of 65,536) | {:.1} s | |",
        proofs.build.as_secs_f64()
    );
    println!("| raw sha-256, one thread | {sha:.0} MB/s | |");
    println!(
        "| full verification, {verify_records} records of {RECORD_BYTES} bytes, wall clock | {:.0} MB/s ({:.2} x raw sha-256 measured alongside) | >= 0.5 x |",
        verify.wall, verify.ratio
    );
    println!(
        "| full verification, CPU cost | {:.0} MB per CPU-second (raw sha-256: {sha_per_cpu_second:.0}); on 2 free cores about {:.2} x raw | |",
        verify.per_cpu_second,
        2.0 * verify.per_cpu_second / sha_per_cpu_second
    );
    println!(
        "| bytes on disk per record beyond the record | {:.2} | low |",
        median(overheads)
    );
}
