//! The civitas data chain: an append-only, tamper-evident ledger of exchange, administration and
//! scenario records.
//!
//! Records are stored in a directory with group-committed durability and an RFC 9162 Merkle tree
//! over them; the node signs C2SP checkpoints of the tree, serves inclusion and consistency
//! proofs, receipts and tlog-tiles, and anyone holding the node's verifier key can check all of it
//! independently. FORMAT.md describes every byte so that auditors can re-implement verification.
//!
//! - [`merkle`]: pure tree math and proof verification.
//! - [`note`]: signed notes and checkpoints.
//! - [`record`]: the canonical record encoding.
//! - [`tiles`]: tlog-tiles paths and entry bundles.
//! - [`Ledger`]: the log on disk.
//! - [`salvage_records`]: cutting the records at damage that stops the ledger from opening,
//!   keeping what is cut.
//! - [`rebuild_derived_files`]: recomputing the files derived from the records, when they are
//!   damaged and the records are not.
//! - [`Receipt`]: a self-contained inclusion receipt.
//! - [`verify`]: full independent verification of a data directory or of records streamed in.

mod base64_serde;
mod checkpoint_file;
mod frame;
mod ledger;
pub mod merkle;
pub mod note;
pub mod receipt;
pub mod record;
pub mod tiles;
pub mod verify;

pub use ledger::{
    Checkpoint, CheckpointRef, Completions, DATA_FILES, DEFAULT_SCRUB_BYTES_PER_SECOND,
    DEFAULT_SCRUB_PASS_PAUSE, DamageKind, DerivedFileDifference, DerivedRebuild, Error, Ledger,
    LedgerOptions, RecordDamage, RepairMode, Result, SalvageCut, SalvageReport, ScrubDamage,
    ScrubProblem, ScrubStatus, rebuild_derived_files, salvage_records, salvage_side_file_name,
};
pub use merkle::Hash;
pub use note::{NoteSigner, NoteVerifier};
pub use receipt::Receipt;
pub use record::Record;
pub use verify::{Verifier, VerifyError, VerifyReport, verify_dir};
