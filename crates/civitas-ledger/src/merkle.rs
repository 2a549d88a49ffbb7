//! RFC 9162 Merkle tree math: hashing, roots, inclusion and consistency proofs.
//!
//! Everything here is pure. Proof generation is written once, generically over a [`NodeSource`]
//! that knows the hashes of *perfect* subtrees (2^level leaves starting at a multiple of 2^level);
//! the ledger serves those from disk and memory, while [`LeafHashes`] computes them from a slice.
//! Every subtree a proof needs is either perfect or the right edge of a larger subtree, and a right
//! edge decomposes into perfect subtrees by the binary digits of its size, so no other kind of node
//! is ever asked for.
//!
//! Verification follows the algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2 and needs no source at
//! all, so third parties can check proofs with nothing but this module.

use sha2::digest::generic_array::{GenericArray, typenum::U64};
use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
pub type Hash = [u8; 32];

/// Domain separation prefix of leaf hashes, so that a leaf can never be confused with a node.
const LEAF_PREFIX: u8 = 0x00;
/// Domain separation prefix of interior node hashes.
const NODE_PREFIX: u8 = 0x01;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("leaf index {index} is not inside a tree of size {tree_size}")]
    IndexOutOfRange { index: u64, tree_size: u64 },
    #[error("tree size {tree_size} is larger than the {available} leaves available")]
    TreeSizeOutOfRange { tree_size: u64, available: u64 },
    #[error("a consistency proof needs old size {old_size} <= new size {new_size}")]
    SizesOutOfOrder { old_size: u64, new_size: u64 },
    #[error("proof has {actual} hashes, expected {expected}")]
    WrongProofLength { expected: usize, actual: usize },
    #[error("proof does not lead to the expected root hash")]
    RootMismatch,
    #[error("proof does not lead to the expected old root hash")]
    OldRootMismatch,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `SHA-256(0x00 || record)`.
pub fn leaf_hash(record: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([LEAF_PREFIX]);
    hasher.update(record);
    hasher.finalize().into()
}

/// The SHA-256 initial hash value (FIPS 180-4 §5.3.3).
const SHA256_INITIAL_STATE: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// `SHA-256(0x01 || left || right)`.
pub fn interior_hash(left: &Hash, right: &Hash) -> Hash {
    // The input is always 65 bytes, so its two padded blocks are laid out here and fed straight to
    // the compression function: at this size the general hasher's buffering costs about as much as
    // one of the two compressions, and interior hashes are the bulk of all tree work.
    let mut blocks = [GenericArray::<u8, U64>::default(); 2];
    blocks[0][0] = NODE_PREFIX;
    blocks[0][1..33].copy_from_slice(left);
    blocks[0][33..64].copy_from_slice(&right[..31]);
    blocks[1][0] = right[31];
    blocks[1][1] = 0x80;
    blocks[1][56..64].copy_from_slice(&(65u64 * 8).to_be_bytes());
    let mut state = SHA256_INITIAL_STATE;
    sha2::compress256(&mut state, &blocks);
    let mut hash = [0u8; 32];
    for (bytes, word) in hash.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_be_bytes());
    }
    hash
}

/// The root of the empty tree: `SHA-256()` of no input.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `size` (`size` >= 2): RFC 9162's split point `k`.
fn split_point(size: u64) -> u64 {
    debug_assert!(size >= 2);
    1 << (63 - (size - 1).leading_zeros())
}

/// The root of a perfect subtree given its leaf hashes; `leaves.len()` must be a power of two.
pub fn perfect_root(leaves: &[Hash]) -> Hash {
    debug_assert!(leaves.len().is_power_of_two());
    match leaves.len() {
        1 => leaves[0],
        length => {
            let (left, right) = leaves.split_at(length / 2);
            interior_hash(&perfect_root(left), &perfect_root(right))
        }
    }
}

/// Knows the hash of every perfect subtree of some tree, at least up to the sizes asked about.
pub trait NodeSource {
    type Error: From<Error>;

    /// The hash of the perfect subtree with `2^level` leaves that starts at leaf `index << level`.
    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// The Merkle tree hash `MTH(D[start:end])` of a range that is a subtree of some tree: `start` is a
/// multiple of the smallest power of two >= `end - start`, which holds for every range in a proof.
fn subtree_hash<S: NodeSource>(source: &mut S, start: u64, end: u64) -> Result<Hash, S::Error> {
    debug_assert!(end > start);
    debug_assert_eq!(start % (end - start).next_power_of_two(), 0);
    // At most one perfect subtree per bit of the size, so 64 slots always suffice.
    let mut nodes = [[0u8; 32]; 64];
    let mut count = 0;
    let mut position = start;
    while position < end {
        let level = 63 - (end - position).leading_zeros();
        nodes[count] = source.perfect_node(level, position >> level)?;
        count += 1;
        position += 1 << level;
    }
    let mut hash = nodes[count - 1];
    for node in nodes[..count - 1].iter().rev() {
        hash = interior_hash(node, &hash);
    }
    Ok(hash)
}

/// The root of the tree of the first `tree_size` leaves.
pub fn root_from<S: NodeSource>(source: &mut S, tree_size: u64) -> Result<Hash, S::Error> {
    if tree_size == 0 {
        return Ok(empty_root());
    }
    subtree_hash(source, 0, tree_size)
}

/// The ranges whose hashes make up the inclusion proof `PATH(index, D[tree_size])`, leaf first.
fn inclusion_ranges(index: u64, tree_size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::with_capacity(64);
    let (mut start, mut end) = (0, tree_size);
    while end - start > 1 {
        let split = start + split_point(end - start);
        if index < split {
            ranges.push((split, end));
            end = split;
        } else {
            ranges.push((start, split));
            start = split;
        }
    }
    ranges.reverse();
    ranges
}

/// The ranges whose hashes make up the consistency proof `PROOF(old_size, D[new_size])`.
fn consistency_ranges(old_size: u64, new_size: u64) -> Vec<(u64, u64)> {
    let mut ranges = Vec::with_capacity(64);
    if old_size == 0 || old_size == new_size {
        return ranges;
    }
    let (mut start, mut end) = (0, new_size);
    // `old_end` is the absolute end of the old tree; `complete` is RFC 9162's flag `b`, true while
    // the current subtree's left edge is also the left edge of the whole tree.
    let old_end = old_size;
    let mut complete = true;
    loop {
        if old_end == end {
            if !complete {
                ranges.push((start, end));
            }
            break;
        }
        let split = start + split_point(end - start);
        if old_end <= split {
            ranges.push((split, end));
            end = split;
        } else {
            ranges.push((start, split));
            start = split;
            complete = false;
        }
    }
    ranges.reverse();
    ranges
}

/// The inclusion proof of leaf `index` in the tree of the first `tree_size` leaves.
pub fn inclusion_proof_from<S: NodeSource>(
    source: &mut S,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if index >= tree_size {
        return Err(Error::IndexOutOfRange { index, tree_size }.into());
    }
    inclusion_ranges(index, tree_size)
        .into_iter()
        .map(|(start, end)| subtree_hash(source, start, end))
        .collect()
}

/// The consistency proof between the trees of the first `old_size` and `new_size` leaves. It is
/// empty when `old_size` is 0 (every tree extends the empty tree) or equal to `new_size`.
pub fn consistency_proof_from<S: NodeSource>(
    source: &mut S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, S::Error> {
    if old_size > new_size {
        return Err(Error::SizesOutOfOrder { old_size, new_size }.into());
    }
    consistency_ranges(old_size, new_size)
        .into_iter()
        .map(|(start, end)| subtree_hash(source, start, end))
        .collect()
}

/// A [`NodeSource`] over a slice of leaf hashes, computing perfect subtrees on demand.
pub struct LeafHashes<'a>(pub &'a [Hash]);

impl NodeSource for LeafHashes<'_> {
    type Error = Error;

    fn perfect_node(&mut self, level: u32, index: u64) -> Result<Hash> {
        let start = (index << level) as usize;
        let end = start + (1usize << level);
        if end > self.0.len() {
            return Err(Error::TreeSizeOutOfRange {
                tree_size: end as u64,
                available: self.0.len() as u64,
            });
        }
        Ok(perfect_root(&self.0[start..end]))
    }
}

fn check_available(tree_size: u64, leaves: &[Hash]) -> Result<()> {
    if tree_size > leaves.len() as u64 {
        return Err(Error::TreeSizeOutOfRange {
            tree_size,
            available: leaves.len() as u64,
        });
    }
    Ok(())
}

/// The root of the tree of the first `tree_size` of `leaves`.
pub fn root(leaves: &[Hash], tree_size: u64) -> Result<Hash> {
    check_available(tree_size, leaves)?;
    root_from(&mut LeafHashes(leaves), tree_size)
}

/// The inclusion proof of leaf `index` in the tree of the first `tree_size` of `leaves`.
pub fn inclusion_proof(leaves: &[Hash], index: u64, tree_size: u64) -> Result<Vec<Hash>> {
    check_available(tree_size, leaves)?;
    inclusion_proof_from(&mut LeafHashes(leaves), index, tree_size)
}

/// The consistency proof between the trees of the first `old_size` and `new_size` of `leaves`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
    check_available(new_size, leaves)?;
    consistency_proof_from(&mut LeafHashes(leaves), old_size, new_size)
}

/// Checks that `proof` proves leaf `index` with hash `leaf` is in the tree of size `tree_size` with
/// root `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<()> {
    if index >= tree_size {
        return Err(Error::IndexOutOfRange { index, tree_size });
    }
    let expected = inclusion_ranges(index, tree_size).len();
    if proof.len() != expected {
        return Err(Error::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let mut position = index;
    let mut last = tree_size - 1;
    let mut hash = *leaf;
    for sibling in proof {
        if last == 0 {
            return Err(Error::RootMismatch);
        }
        if position & 1 == 1 || position == last {
            hash = interior_hash(sibling, &hash);
            if position & 1 == 0 {
                while position & 1 == 0 && position != 0 {
                    position >>= 1;
                    last >>= 1;
                }
            }
        } else {
            hash = interior_hash(&hash, sibling);
        }
        position >>= 1;
        last >>= 1;
    }
    if last != 0 || hash != *root {
        return Err(Error::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` proves the tree of size `old_size` with root `old_root` is a prefix of the
/// tree of size `new_size` with root `new_root` (RFC 9162 §2.1.4.2, extended to the trivial cases:
/// an empty old tree, whose root must be [`empty_root`], and equal sizes, whose roots must match).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<()> {
    if old_size > new_size {
        return Err(Error::SizesOutOfOrder { old_size, new_size });
    }
    let expected = consistency_ranges(old_size, new_size).len();
    if proof.len() != expected {
        return Err(Error::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if old_size == 0 {
        return if *old_root == empty_root() {
            Ok(())
        } else {
            Err(Error::OldRootMismatch)
        };
    }
    if old_size == new_size {
        return if old_root == new_root {
            Ok(())
        } else {
            Err(Error::RootMismatch)
        };
    }
    // When the old tree is a perfect subtree at the left edge, the proof leaves out its root
    // because the verifier already has it.
    let mut path = proof.iter();
    let seed = if old_size.is_power_of_two() {
        *old_root
    } else {
        *path.next().ok_or(Error::WrongProofLength {
            expected,
            actual: 0,
        })?
    };
    let mut position = old_size - 1;
    let mut last = new_size - 1;
    while position & 1 == 1 {
        position >>= 1;
        last >>= 1;
    }
    let mut old_hash = seed;
    let mut new_hash = seed;
    for sibling in path {
        if last == 0 {
            return Err(Error::RootMismatch);
        }
        if position & 1 == 1 || position == last {
            old_hash = interior_hash(sibling, &old_hash);
            new_hash = interior_hash(sibling, &new_hash);
            if position & 1 == 0 {
                while position & 1 == 0 && position != 0 {
                    position >>= 1;
                    last >>= 1;
                }
            }
        } else {
            new_hash = interior_hash(&new_hash, sibling);
        }
        position >>= 1;
        last >>= 1;
    }
    if old_hash != *old_root {
        return Err(Error::OldRootMismatch);
    }
    if last != 0 || new_hash != *new_root {
        return Err(Error::RootMismatch);
    }
    Ok(())
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first, which is
/// all that is needed to append leaves and to compute the current root. Used by streaming
/// verifiers that see every leaf once.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// `(level, hash)` of each perfect subtree of the current tree, from left to right; levels
    /// strictly decrease, one per set bit of `size`.
    nodes: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn new() -> Frontier {
        Frontier::default()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.push_observing(leaf, |_, _, _| {});
    }

    /// Appends a leaf hash and calls `completed(level, index, hash)` for every perfect subtree of
    /// level >= 1 that the leaf completes, lowest level first.
    pub fn push_observing(&mut self, leaf: Hash, completed: impl FnMut(u32, u64, &Hash)) {
        self.push_subtree_observing(0, leaf, completed);
    }

    /// Appends the root of a perfect subtree of `2^level` leaves, which must start at the current
    /// size (a multiple of `2^level`), and reports the larger subtrees it completes.
    pub(crate) fn push_subtree_observing(
        &mut self,
        level: u32,
        hash: Hash,
        mut completed: impl FnMut(u32, u64, &Hash),
    ) {
        debug_assert_eq!(self.size % (1 << level), 0);
        let end = self.size + (1 << level);
        let mut level = level;
        let mut hash = hash;
        while let Some(&(top_level, top_hash)) = self.nodes.last() {
            if top_level != level {
                break;
            }
            self.nodes.pop();
            hash = interior_hash(&top_hash, &hash);
            level += 1;
            completed(level, (end >> level) - 1, &hash);
        }
        self.nodes.push((level, hash));
        self.size = end;
        debug_assert_eq!(self.nodes.len() as u32, self.size.count_ones());
    }

    /// The root of the current tree.
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(&(_, mut hash)) = nodes.next() else {
            return empty_root();
        };
        for (_, node) in nodes {
            hash = interior_hash(node, &hash);
        }
        hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_the_largest_power_of_two_below_the_size() {
        assert_eq!(split_point(2), 1);
        assert_eq!(split_point(3), 2);
        assert_eq!(split_point(4), 2);
        assert_eq!(split_point(5), 4);
        assert_eq!(split_point(1 << 40), 1 << 39);
        assert_eq!(split_point((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn interior_hash_equals_the_plain_sha256_of_its_input() {
        let mut left = [0u8; 32];
        let mut right = [0u8; 32];
        for round in 0..64u8 {
            for (position, byte) in left.iter_mut().enumerate() {
                *byte = round.wrapping_mul(31).wrapping_add(position as u8);
            }
            for (position, byte) in right.iter_mut().enumerate() {
                *byte = round.wrapping_mul(17) ^ (position as u8).wrapping_mul(7);
            }
            let mut input = vec![NODE_PREFIX];
            input.extend_from_slice(&left);
            input.extend_from_slice(&right);
            let expected: Hash = Sha256::digest(&input).into();
            assert_eq!(interior_hash(&left, &right), expected);
        }
    }

    #[test]
    fn empty_root_is_the_hash_of_nothing() {
        let hex: String = empty_root().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn frontier_matches_the_slice_root_and_reports_completed_subtrees() {
        let leaves: Vec<Hash> = (0u32..300).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut frontier = Frontier::new();
        let mut level_eight = Vec::new();
        for (count, leaf) in leaves.iter().enumerate() {
            frontier.push_observing(*leaf, |level, index, hash| {
                if level == 8 {
                    level_eight.push((index, *hash));
                }
            });
            assert_eq!(frontier.root(), root(&leaves, count as u64 + 1).unwrap());
        }
        assert_eq!(level_eight, vec![(0, perfect_root(&leaves[..256]))]);
    }
}
