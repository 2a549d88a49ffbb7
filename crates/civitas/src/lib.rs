//! The civitas server and command line, as a library so that tests can start a real server in
//! process on a free port.

pub mod catalog_io;
pub mod config;
pub mod demo;
pub mod indexing;
pub mod ledger_adopt;
pub mod ledger_rebuild;
pub mod ledger_salvage;
pub mod ledger_verify;
pub mod node;
pub mod receipt_check;
pub mod scenario_test;
pub mod server;
