//! Who may do what: one table of roles × actions, with the organization scope of the target.
//!
//! The table is data so that it can be read, tested row by row and printed in the docs. Callers
//! pass the organization the action touches; scoped roles act only inside their own organization.

use crate::{
    Uscc,
    registry::{Principal, Role},
};

crate::string_enum! {
    /// Everything a caller may be allowed to do through the API.
    pub enum Action {
        /// Read organizations, systems, users and the node.
        ReadRegistry => "read_registry",
        /// Create or deactivate organizations.
        ManageOrganizations => "manage_organizations",
        /// Change an organization's names, level, region or parent.
        UpdateOrganization => "update_organization",
        ManageSystems => "manage_systems",
        ManageUsers => "manage_users",
        /// Issue and revoke API keys of users and systems of an organization.
        ManageKeys => "manage_keys",
        /// Issue and revoke one's own API keys, whatever one's role.
        ManageOwnKeys => "manage_own_keys",
        /// Read the audit trail and the ledger behind it.
        ReadAudit => "read_audit",
        /// Read the whole catalog (anonymous callers see only open resources).
        ReadCatalog => "read_catalog",
        /// Publish, change and deactivate an organization's catalog resources.
        ManageResources => "manage_resources",
        /// Apply for access on behalf of one of the organization's systems, and withdraw.
        ApplyForAccess => "apply_for_access",
        /// Approve or reject applications for the organization's resources, and revoke grants.
        ReviewApplications => "review_applications",
        /// Read applications and grants the organization is party to.
        ReadAccess => "read_access",
        /// Write and change platform-wide policies.
        ManagePolicies => "manage_policies",
        /// Start runs of application scenarios (a scenario's front-end system) and list a
        /// citizen's runs for them.
        RunScenarios => "run_scenarios",
    }
}

/// Who gets each action, and whether a scoped role needs the target to be its own organization.
/// Platform admins may do everything everywhere; systems act only through the gateway.
pub const TABLE: &[(Action, &[Role], Scope)] = &[
    (
        Action::ReadRegistry,
        &[
            Role::OrgAdmin,
            Role::DataOfficer,
            Role::Developer,
            Role::Auditor,
        ],
        Scope::Any,
    ),
    (Action::ManageOrganizations, &[], Scope::Own),
    (Action::UpdateOrganization, &[Role::OrgAdmin], Scope::Own),
    (
        Action::ManageSystems,
        &[Role::OrgAdmin, Role::Developer],
        Scope::Own,
    ),
    (Action::ManageUsers, &[Role::OrgAdmin], Scope::Own),
    (
        Action::ManageKeys,
        &[Role::OrgAdmin, Role::Developer],
        Scope::Own,
    ),
    (
        Action::ManageOwnKeys,
        &[
            Role::OrgAdmin,
            Role::DataOfficer,
            Role::Developer,
            Role::Auditor,
        ],
        Scope::Any,
    ),
    (Action::ReadAudit, &[Role::Auditor], Scope::Any),
    (
        Action::ReadCatalog,
        &[
            Role::OrgAdmin,
            Role::DataOfficer,
            Role::Developer,
            Role::Auditor,
        ],
        Scope::Any,
    ),
    (
        Action::ManageResources,
        &[Role::OrgAdmin, Role::DataOfficer],
        Scope::Own,
    ),
    (
        Action::ApplyForAccess,
        &[Role::OrgAdmin, Role::Developer],
        Scope::Own,
    ),
    (
        Action::ReviewApplications,
        &[Role::OrgAdmin, Role::DataOfficer],
        Scope::Own,
    ),
    (
        Action::ReadAccess,
        &[Role::OrgAdmin, Role::DataOfficer, Role::Developer],
        Scope::Own,
    ),
    (Action::ManagePolicies, &[], Scope::Own),
    (Action::RunScenarios, &[], Scope::Own),
];

/// The actions a system (rather than a person) may take through the API; everything else a
/// system does goes through the exchange gateway.
pub const SYSTEM_ACTIONS: &[Action] = &[Action::ReadCatalog, Action::RunScenarios];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The role may act on any organization.
    Any,
    /// The role may act only on its own organization; it may not act platform-wide (with no
    /// target organization).
    Own,
}

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the {role} role may not {action}")]
    Role { role: Role, action: Action },
    #[error("a {role} may {action} only in their own organization")]
    OtherOrganization { role: Role, action: Action },
    #[error("systems act only through the exchange gateway")]
    System,
}

/// Proof that an action passed [`authorize`]. Every change in the store takes a `Permit`, so no code
/// path can change data without having been authorized, and the permit names the actor that the
/// audit record carries.
#[derive(Debug, Clone)]
pub struct Permit {
    actor: String,
    action: Option<Action>,
}

impl Permit {
    /// A permit for work the node does on its own behalf (bootstrap, bulk import from the command
    /// line, the demo builder). `actor` says which, e.g. `civitas:bootstrap`.
    pub fn internal(actor: &str) -> Permit {
        debug_assert!(actor.starts_with("civitas:"));
        Permit {
            actor: actor.to_owned(),
            action: None,
        }
    }

    /// The name written into audit records.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The action this permit was issued for; `None` for internal permits, which allow anything.
    pub fn action(&self) -> Option<Action> {
        self.action
    }
}

/// Decides whether `principal` may perform `action` on something that belongs to `target`
/// (`None` for actions that touch no single organization, such as listing), and if so hands out
/// the permit the store asks for.
pub fn authorize(
    principal: &Principal,
    action: Action,
    target: Option<&Uscc>,
) -> Result<Permit, Denied> {
    decide(principal, action, target).map(|()| Permit {
        actor: principal.audit_name(),
        action: Some(action),
    })
}

fn decide(principal: &Principal, action: Action, target: Option<&Uscc>) -> Result<(), Denied> {
    let (role, own) = match principal {
        Principal::User {
            role: Role::PlatformAdmin,
            ..
        } => return Ok(()),
        Principal::User {
            role, organization, ..
        } => (*role, organization.as_ref()),
        Principal::System { .. } if SYSTEM_ACTIONS.contains(&action) => return Ok(()),
        Principal::System { .. } => return Err(Denied::System),
    };
    let (_, roles, scope) = TABLE
        .iter()
        .find(|(row_action, _, _)| *row_action == action)
        .expect("every action has a row in the table");
    if !roles.contains(&role) {
        return Err(Denied::Role { role, action });
    }
    match (scope, target) {
        (Scope::Any, _) => Ok(()),
        (Scope::Own, Some(target)) if Some(target) == own => Ok(()),
        (Scope::Own, _) => Err(Denied::OtherOrganization { role, action }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_exactly_one_row() {
        for action in Action::ALL {
            let rows = TABLE.iter().filter(|(a, _, _)| a == action).count();
            assert_eq!(rows, 1, "{action}");
        }
    }
}
