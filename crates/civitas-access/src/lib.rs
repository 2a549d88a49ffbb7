//! Access decisions of the civitas exchange gateway: who may read what, with which items masked.
//!
//! - [`mask`](mod@mask): pure masking functions for personal information items;
//! - [`decision`]: grants, their in-memory index and [`decide`], the one function that decides
//!   every exchange (and [`explain`], which records how);
//! - [`policy`]: platform-wide rules written in Cedar, evaluated after the grant allows, with a
//!   memo of their outcomes so that repeated exchanges skip Cedar.
//!
//! The domain types (grants, systems, resource kinds, sensitivities, mask kinds) are those of
//! `civitas-core`, re-exported here, so that the store, the API and the gateway hand the same
//! values around. The crate does no I/O and reads no clock: time and local time facts are inputs.

pub mod decision;
pub mod mask;
pub mod policy;

pub use civitas_core::access::{Grant, GrantedItem, SystemRef};
pub use civitas_core::catalog::{MaskKind, ResourceCode, ResourceKind, Sensitivity};
pub use decision::{
    ConsumerFacts, Decision, DecisionRequest, DenyReason, Explanation, GrantError, GrantIndex,
    GrantStatus, ItemPolicy, LocalTime, MaskedItem, ResourceFacts, decide, explain, grant_status,
    granted_item, validate_grant,
};
pub use mask::{keeps_length, mask, mask_kind_for};
pub use policy::{MemoStats, PlatformPolicies, PolicyError, PolicyStatus};
