//! Integration tests of civitas-scenario: one binary, a module per concern.

mod parsing;
mod running;
mod shipped;
mod support;
mod validation;
