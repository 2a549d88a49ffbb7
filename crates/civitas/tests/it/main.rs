//! End-to-end tests of civitas through its real doors: HTTP on a free port and the `civitas`
//! binary. Tests that take a `TestServer` run once on SQLite and once on PostgreSQL.

mod access;
mod authorization;
mod binary;
mod catalog;
mod dcat;
mod demo;
mod gateway;
mod gateway_tls;
mod ledger;
mod policies;
mod registry;
mod scenarios;
mod search;
mod support;
