//! The demo city's integration tests: the generated population, and the provider services over
//! real HTTP.

mod population;
mod services;
mod support;
