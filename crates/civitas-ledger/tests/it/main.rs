//! Integration tests of the ledger, one binary with a module per concern.

mod checkpoint_independent;
mod crash;
mod damage;
mod failure;
mod ledger;
mod merkle_known_answers;
mod salvage;
