//! Receipts: everything a third party needs to check that a record is in the ledger, given only
//! the node's verifier key.

use serde::{Deserialize, Serialize};

use crate::merkle::{self, Hash, leaf_hash, verify_inclusion};
use crate::note::{self, CheckpointBody, NoteVerifier, verify_checkpoint};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid verifier key: {0}")]
    VerifierKey(#[source] note::Error),
    #[error("receipt checkpoint does not verify: {0}")]
    Checkpoint(#[source] note::Error),
    #[error("record does not hash to the receipt's leaf hash")]
    RecordMismatch,
    #[error("inclusion proof does not verify: {0}")]
    Proof(#[source] merkle::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Proof that record `index` with hash `leaf_hash` is in the tree signed by `checkpoint`.
/// In JSON the hashes are standard base64 strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub index: u64,
    #[serde(with = "crate::base64_serde::hash")]
    pub leaf_hash: Hash,
    /// The signed checkpoint note whose tree includes the record.
    pub checkpoint: String,
    /// Inclusion proof of `index` in the checkpoint's tree, from the leaf upward.
    #[serde(with = "crate::base64_serde::hashes")]
    pub inclusion_proof: Vec<Hash>,
}

impl Receipt {
    /// Checks the checkpoint's signature with `verifier_key`, that `record` (when given) hashes
    /// to the leaf hash, and that the inclusion proof leads from the leaf to the checkpoint root;
    /// the verified checkpoint's contents.
    pub fn verify(&self, record: Option<&[u8]>, verifier_key: &str) -> Result<CheckpointBody> {
        let verifier = NoteVerifier::parse(verifier_key).map_err(Error::VerifierKey)?;
        let checkpoint =
            verify_checkpoint(&self.checkpoint, &verifier).map_err(Error::Checkpoint)?;
        if let Some(record) = record
            && leaf_hash(record) != self.leaf_hash
        {
            return Err(Error::RecordMismatch);
        }
        verify_inclusion(
            &self.leaf_hash,
            self.index,
            checkpoint.tree_size,
            &self.inclusion_proof,
            &checkpoint.root,
        )
        .map_err(Error::Proof)?;
        Ok(checkpoint)
    }
}
