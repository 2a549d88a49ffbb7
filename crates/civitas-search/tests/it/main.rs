//! Integration tests of the catalog index, one binary with a module per area.

mod generated;
mod language;
mod listing;
mod support;
mod syntax;
mod writes;
