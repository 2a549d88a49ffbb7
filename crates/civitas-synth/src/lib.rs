//! Deterministic synthetic catalog data for benchmarks, tests and the demo city.
//!
//! Pure: no I/O, no clock, no global randomness. The same `u64` seed gives the same output on
//! every run and platform, because the only outside algorithm is the ChaCha8 keystream (see
//! `random.rs`).
//!
//! - [`organizations`] makes the 127 bodies of a synthetic Nanjing.
//! - [`catalog::directories`] makes catalog drafts published by given bodies, with names such as
//!   `玄武区住房公积金缴存明细信息` built from the vocabulary of each department.

pub mod catalog;
mod organizations;
pub mod random;
mod vocabulary;

pub use organizations::{Organization, organizations};
