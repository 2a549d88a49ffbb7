//! The registry: organizations, their systems, people and their roles, and credentials.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::{Code, RegionCode, Uscc, string_enum};

string_enum! {
    /// Administrative level of an organization or a region.
    pub enum Level {
        National => "national",
        Provincial => "provincial",
        Municipal => "municipal",
        District => "district",
        Street => "street",
    }
}

string_enum! {
    /// What a person may do. Every role but `platform_admin` is scoped to one organization.
    pub enum Role {
        PlatformAdmin => "platform_admin",
        OrgAdmin => "org_admin",
        DataOfficer => "data_officer",
        Developer => "developer",
        Auditor => "auditor",
    }
}

impl Role {
    pub fn is_scoped_to_organization(self) -> bool {
        self != Role::PlatformAdmin
    }
}

/// A government body, identified by its unified social credit code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Organization {
    /// Unified social credit code (GB 32100).
    #[schema(value_type = String, example = "11320100MB1234567X")]
    pub code: Uscc,
    pub name: String,
    pub name_en: Option<String>,
    pub level: Level,
    /// GB/T 2260 region code.
    #[schema(value_type = String, example = "320100")]
    pub region: RegionCode,
    #[schema(value_type = Option<String>)]
    pub parent: Option<Uscc>,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// An information system of an organization (X-Road's subsystem). It holds credentials and
/// consumes and/or provides services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct System {
    #[schema(value_type = String)]
    pub organization: Uscc,
    #[schema(value_type = String, example = "housing-fund-core")]
    pub code: Code,
    pub name: String,
    pub description: String,
    pub consumes: bool,
    pub provides: bool,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A person who signs in to civitas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct User {
    #[schema(value_type = String)]
    pub name: UserName,
    pub display_name: String,
    pub role: Role,
    /// The organization the role is scoped to; `None` only for platform admins.
    #[schema(value_type = Option<String>)]
    pub organization: Option<Uscc>,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

/// A user's login name: 1 to 64 characters of lower-case letters, digits, `.`, `-`, `_` and `@`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

impl UserName {
    pub fn parse(text: &str) -> Result<UserName, crate::InvalidValue> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || matches!(b, b'.' | b'-' | b'_' | b'@')
            });
        if !valid {
            return Err(crate::InvalidValue::new(format!(
                "{text:?} is not a valid user name: use 1 to 64 lower-case letters, digits, '.', '-', '_' or '@'"
            )));
        }
        Ok(UserName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

crate::string_newtype_serde!(UserName);

/// Who an API key belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyOwner {
    User {
        #[schema(value_type = String)]
        name: UserName,
    },
    System {
        #[schema(value_type = String)]
        organization: Uscc,
        #[schema(value_type = String)]
        system: Code,
    },
}

/// What is known about an API key; the key itself is shown once and stored only as a hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    pub id: String,
    /// The first characters of the key, enough to recognize it in a list.
    pub prefix: String,
    pub owner: KeyOwner,
    pub label: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    pub created_by: String,
    /// Keys made by signing in with a password expire; keys issued for systems usually do not.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<Timestamp>,
}

/// An authenticated caller, as established from a credential.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    User {
        name: UserName,
        role: Role,
        organization: Option<Uscc>,
    },
    System {
        organization: Uscc,
        system: Code,
    },
}

impl Principal {
    /// The name written into audit records: the user name, or `system:{org}/{code}`.
    pub fn audit_name(&self) -> String {
        match self {
            Principal::User { name, .. } => name.as_str().to_owned(),
            Principal::System {
                organization,
                system,
            } => format!("system:{organization}/{system}"),
        }
    }

    pub fn organization(&self) -> Option<&Uscc> {
        match self {
            Principal::User { organization, .. } => organization.as_ref(),
            Principal::System { organization, .. } => Some(organization),
        }
    }
}

/// The prefix of every civitas API key, so that a leaked key is easy to recognize in code or logs.
pub const API_KEY_PREFIX: &str = "cvk_";

/// How a presented API key is looked up: keys are long random strings, so a fast hash is enough
/// (a slow password hash would only slow every request down).
pub fn api_key_hash(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}
