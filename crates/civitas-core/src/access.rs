//! Access to resources: applications, the grants their approval creates, and platform policies.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Code, Uscc, catalog::ResourceCode, string_enum};

/// A system, named as `{organization}/{system}`: a consumer or a provider of an exchange.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct SystemRef {
    #[schema(value_type = String)]
    pub organization: Uscc,
    #[schema(value_type = String)]
    pub system: Code,
}

impl std::fmt::Display for SystemRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.organization, self.system)
    }
}

string_enum! {
    /// Where an application stands. Only `pending` applications change.
    pub enum ApplicationState {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
        Withdrawn => "withdrawn",
    }
}

/// A consumer system's request for some information items of a resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Application {
    pub id: String,
    pub consumer: SystemRef,
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// The provider organization whose data officers review the application.
    #[schema(value_type = String)]
    pub provider: Uscc,
    /// The information items asked for.
    pub items: Vec<String>,
    pub purpose: String,
    pub legal_basis: String,
    /// How long the grant should last, in days.
    pub valid_days: u32,
    pub expected_calls_per_day: Option<u64>,
    pub state: ApplicationState,
    /// The user who applied.
    pub applicant: String,
    pub decided_by: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub decided_at: Option<Timestamp>,
    /// Why it was rejected or withdrawn, or a note on the approval.
    pub reason: Option<String>,
    /// The grant an approval created.
    pub grant: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// One granted information item. Personal items are delivered masked unless `plaintext`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct GrantedItem {
    pub code: String,
    #[serde(default)]
    pub plaintext: bool,
}

/// What an approval creates: consumer system × resource × items, with validity and quota.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Grant {
    pub id: String,
    /// The application whose approval created the grant.
    pub application: Option<String>,
    pub consumer: SystemRef,
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    #[schema(value_type = String)]
    pub provider: Uscc,
    pub items: Vec<GrantedItem>,
    #[schema(value_type = String, format = DateTime)]
    pub valid_from: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub valid_until: Timestamp,
    /// Calls allowed per day (in the node's time zone); none means no daily quota.
    pub calls_per_day: Option<u64>,
    /// Sustained request rate allowed; none means no rate limit.
    pub requests_per_second: Option<u32>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
    pub revoked_by: Option<String>,
    pub revoke_reason: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl Grant {
    /// Whether the grant allows exchanges at `at`: not revoked, and within its validity.
    pub fn is_valid_at(&self, at: Timestamp) -> bool {
        self.revoked_at.is_none() && self.valid_from <= at && at < self.valid_until
    }
}

/// A platform-wide rule written in Cedar; see the access crate for its schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PlatformPolicy {
    #[schema(value_type = String)]
    pub id: Code,
    pub description: String,
    /// The Cedar text.
    pub text: String,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}
