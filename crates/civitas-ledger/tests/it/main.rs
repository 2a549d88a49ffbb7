//! Integration tests of the ledger, one binary with a module per concern.

mod checkpoint_independent;
mod crash;
mod damage;
mod failure;
mod ledger;
mod merkle_known_answers;
mod rebuild;
mod salvage;
mod scrub;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use civitas_ledger::{DATA_FILES, LedgerOptions, NoteSigner};
use ed25519_dalek::SigningKey;

/// A Nanjing node's checkpoint signer, its key made of `seed`: each module signs with its own.
fn signer_from(seed: u8) -> NoteSigner {
    NoteSigner::new("cn-js-nanjing", SigningKey::from_bytes(&[seed; 32])).unwrap()
}

/// Options under which checkpoints come only at the start, on a clean close and on demand
/// within a test's time: what a crash between two checkpoints leaves is then up to the test.
fn hourly_checkpoints() -> LedgerOptions {
    LedgerOptions {
        checkpoint_interval: Duration::from_secs(3600),
        ..LedgerOptions::default()
    }
}

/// Every file in `dir` with its bytes, except the lock that salvaging and opening take.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .map(|entry| entry.file_name().into_string().unwrap())
        .filter(|name| name != "lock")
        .map(|name| {
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            (name, bytes)
        })
        .collect()
}
