//! The crate's Merkle math against a deliberately naive transcription of RFC 9162 §2.1 (MTH,
//! PATH, PROOF/SUBPROOF as recursive functions over the record list), for every tree size up to 64.

use civitas_ledger::merkle::{self, Hash};
use sha2::{Digest, Sha256};

const MAX_SIZE: usize = 64;

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The largest power of two smaller than `n`, by counting up.
fn k_for(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
fn mth(records: &[Vec<u8>]) -> Hash {
    match records.len() {
        0 => sha256(&[]),
        1 => sha256(&[&[0u8], &records[0]]),
        n => {
            let k = k_for(n);
            sha256(&[&[1u8], &mth(&records[..k]), &mth(&records[k..])])
        }
    }
}

/// PATH(m, D[n]).
fn path(m: usize, records: &[Vec<u8>]) -> Vec<Hash> {
    let n = records.len();
    if n == 1 {
        return Vec::new();
    }
    let k = k_for(n);
    if m < k {
        let mut proof = path(m, &records[..k]);
        proof.push(mth(&records[k..]));
        proof
    } else {
        let mut proof = path(m - k, &records[k..]);
        proof.push(mth(&records[..k]));
        proof
    }
}

/// SUBPROOF(m, D[n], b).
fn subproof(m: usize, records: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = records.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(records)] };
    }
    let k = k_for(n);
    if m <= k {
        let mut proof = subproof(m, &records[..k], b);
        proof.push(mth(&records[k..]));
        proof
    } else {
        let mut proof = subproof(m - k, &records[k..], false);
        proof.push(mth(&records[..k]));
        proof
    }
}

/// PROOF(m, D[n]) for 0 < m < n; empty for the trivial cases.
fn proof(m: usize, records: &[Vec<u8>]) -> Vec<Hash> {
    if m == 0 || m == records.len() {
        return Vec::new();
    }
    subproof(m, records, true)
}

fn records() -> Vec<Vec<u8>> {
    (0..MAX_SIZE)
        .map(|i| format!("record number {i} {}", "x".repeat(i % 7)).into_bytes())
        .collect()
}

fn altered(hash: &Hash, byte: usize) -> Hash {
    let mut copy = *hash;
    copy[byte] ^= 0x01;
    copy
}

#[test]
fn roots_match_the_reference_for_every_size() {
    let records = records();
    let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    assert_eq!(merkle::root(&leaves, 0).unwrap(), mth(&[]));
    for size in 1..=MAX_SIZE {
        assert_eq!(
            merkle::root(&leaves, size as u64).unwrap(),
            mth(&records[..size]),
            "size {size}"
        );
    }
}

#[test]
fn inclusion_proofs_match_the_reference_and_reject_any_altered_byte() {
    let records = records();
    let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    for size in 1..=MAX_SIZE {
        let tree = &records[..size];
        let root = mth(tree);
        let tree_size = size as u64;
        for index in 0..size {
            let expected = path(index, tree);
            let proof = merkle::inclusion_proof(&leaves, index as u64, tree_size).unwrap();
            assert_eq!(proof, expected, "size {size} index {index}");
            let leaf = leaves[index];
            merkle::verify_inclusion(&leaf, index as u64, tree_size, &proof, &root).unwrap();

            for byte in 0..32 {
                let leaf_altered = altered(&leaf, byte);
                assert!(
                    merkle::verify_inclusion(&leaf_altered, index as u64, tree_size, &proof, &root)
                        .is_err()
                );
                let root_altered = altered(&root, byte);
                assert!(
                    merkle::verify_inclusion(&leaf, index as u64, tree_size, &proof, &root_altered)
                        .is_err()
                );
            }
            for hash_position in 0..proof.len() {
                for byte in 0..32 {
                    let mut bad = proof.clone();
                    bad[hash_position] = altered(&bad[hash_position], byte);
                    assert!(
                        merkle::verify_inclusion(&leaf, index as u64, tree_size, &bad, &root)
                            .is_err(),
                        "size {size} index {index} hash {hash_position} byte {byte}"
                    );
                }
            }
            // A proof for a different position or size, or with a hash missing or added, fails.
            if size > 1 {
                let other = (index + 1) % size;
                assert!(
                    merkle::verify_inclusion(&leaf, other as u64, tree_size, &proof, &root)
                        .is_err()
                );
                let mut short = proof.clone();
                short.pop();
                assert!(
                    merkle::verify_inclusion(&leaf, index as u64, tree_size, &short, &root)
                        .is_err()
                );
            }
            let mut long = proof.clone();
            long.push(root);
            assert!(
                merkle::verify_inclusion(&leaf, index as u64, tree_size, &long, &root).is_err()
            );
        }
        assert!(merkle::inclusion_proof(&leaves, tree_size, tree_size).is_err());
    }
}

#[test]
fn consistency_proofs_match_the_reference_and_reject_any_altered_byte() {
    let records = records();
    let leaves: Vec<Hash> = records.iter().map(|r| merkle::leaf_hash(r)).collect();
    for new_size in 1..=MAX_SIZE {
        let new_root = mth(&records[..new_size]);
        for old_size in 0..=new_size {
            let old_root = mth(&records[..old_size]);
            let expected = proof(old_size, &records[..new_size]);
            let actual =
                merkle::consistency_proof(&leaves, old_size as u64, new_size as u64).unwrap();
            assert_eq!(actual, expected, "old {old_size} new {new_size}");
            let (old, new) = (old_size as u64, new_size as u64);
            merkle::verify_consistency(old, new, &old_root, &new_root, &actual).unwrap();

            for byte in 0..32 {
                assert!(
                    merkle::verify_consistency(
                        old,
                        new,
                        &altered(&old_root, byte),
                        &new_root,
                        &actual
                    )
                    .is_err(),
                    "old root byte {byte} old {old_size} new {new_size}"
                );
                // With an empty old tree the new root is unconstrained: every tree extends it.
                if old_size > 0 {
                    assert!(
                        merkle::verify_consistency(
                            old,
                            new,
                            &old_root,
                            &altered(&new_root, byte),
                            &actual
                        )
                        .is_err(),
                        "new root byte {byte} old {old_size} new {new_size}"
                    );
                }
            }
            for hash_position in 0..actual.len() {
                for byte in 0..32 {
                    let mut bad = actual.clone();
                    bad[hash_position] = altered(&bad[hash_position], byte);
                    assert!(
                        merkle::verify_consistency(old, new, &old_root, &new_root, &bad).is_err(),
                        "old {old_size} new {new_size} hash {hash_position} byte {byte}"
                    );
                }
            }
            if old_size > 0 && old_size < new_size {
                let mut short = actual.clone();
                short.pop();
                assert!(
                    merkle::verify_consistency(old, new, &old_root, &new_root, &short).is_err()
                );
                let wrong_old = mth(&records[..old_size - 1]);
                assert!(
                    merkle::verify_consistency(old, new, &wrong_old, &new_root, &actual).is_err()
                );
            }
        }
        assert!(merkle::consistency_proof(&leaves, new_size as u64 + 1, new_size as u64).is_err());
    }
}

#[test]
fn generic_proofs_agree_with_the_slice_functions_on_larger_trees() {
    // Sizes around tile and power-of-two boundaries, where the ledger's node source switches
    // between memory and tile reads.
    let leaves: Vec<Hash> = (0u32..1100)
        .map(|i| merkle::leaf_hash(&i.to_be_bytes()))
        .collect();
    let mut frontier = merkle::Frontier::new();
    for (count, leaf) in leaves.iter().enumerate() {
        frontier.push(*leaf);
        let size = count as u64 + 1;
        if [1, 255, 256, 257, 511, 512, 513, 1024, 1100].contains(&size) {
            let root = merkle::root(&leaves, size).unwrap();
            assert_eq!(frontier.root(), root);
            for index in [0, size / 2, size - 1] {
                let proof = merkle::inclusion_proof(&leaves, index, size).unwrap();
                merkle::verify_inclusion(&leaves[index as usize], index, size, &proof, &root)
                    .unwrap();
            }
        }
    }
}
