//! The demo city's data: synthetic citizens ([`citizens`]) and the provider departments' HTTP
//! services that serve them ([`services`]), as `docs/demo-services.md` describes.
//!
//! A population is generated deterministically from a seed, a count and the date the city takes as
//! today, in well under a second for 100,000 citizens in a release build, so a demo city needs no
//! stored data: restarting it regenerates the same citizens.

pub mod catalog_services;
pub mod citizens;
pub mod city;
pub mod reference;
pub mod services;

pub use citizens::{Population, Scenario};
pub use services::{
    Department, ProviderServices, ServiceOptions, start_provider_services,
    start_provider_services_with,
};
