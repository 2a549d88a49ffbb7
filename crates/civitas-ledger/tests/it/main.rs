//! Integration tests of the ledger, one binary with a module per concern.

mod checkpoint_independent;
mod crash;
mod damage;
mod failure;
mod ledger;
mod merkle_known_answers;
mod salvage;
mod scrub;

use std::collections::BTreeMap;
use std::path::Path;

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
