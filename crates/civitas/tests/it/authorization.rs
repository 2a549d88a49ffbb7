//! Who may do what, table-driven: every role × every action × own vs other organization, through
//! HTTP.

use civitas_core::Uscc;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN_KEY, TestServer, on_both_stores, uscc};

on_both_stores!(roles_times_actions_times_scope);

#[derive(Debug, Clone, Copy)]
enum Act {
    ReadOrganization,
    RenameOrganization,
    MoveOrganization,
    CreateSystem,
    CreateUser,
    CreateSystemKey,
    ReadAudit,
}

/// (action, role, allowed on own organization, allowed on another organization).
const EXPECTED: &[(Act, &str, bool, bool)] = &[
    (Act::ReadOrganization, "platform_admin", true, true),
    (Act::ReadOrganization, "org_admin", true, true),
    (Act::ReadOrganization, "data_officer", true, true),
    (Act::ReadOrganization, "developer", true, true),
    (Act::ReadOrganization, "auditor", true, true),
    (Act::ReadOrganization, "system", false, false),
    (Act::RenameOrganization, "platform_admin", true, true),
    (Act::RenameOrganization, "org_admin", true, false),
    (Act::RenameOrganization, "data_officer", false, false),
    (Act::RenameOrganization, "developer", false, false),
    (Act::RenameOrganization, "auditor", false, false),
    (Act::RenameOrganization, "system", false, false),
    (Act::MoveOrganization, "platform_admin", true, true),
    (Act::MoveOrganization, "org_admin", false, false),
    (Act::MoveOrganization, "data_officer", false, false),
    (Act::MoveOrganization, "developer", false, false),
    (Act::MoveOrganization, "auditor", false, false),
    (Act::MoveOrganization, "system", false, false),
    (Act::CreateSystem, "platform_admin", true, true),
    (Act::CreateSystem, "org_admin", true, false),
    (Act::CreateSystem, "data_officer", false, false),
    (Act::CreateSystem, "developer", true, false),
    (Act::CreateSystem, "auditor", false, false),
    (Act::CreateSystem, "system", false, false),
    (Act::CreateUser, "platform_admin", true, true),
    (Act::CreateUser, "org_admin", true, false),
    (Act::CreateUser, "data_officer", false, false),
    (Act::CreateUser, "developer", false, false),
    (Act::CreateUser, "auditor", false, false),
    (Act::CreateUser, "system", false, false),
    (Act::CreateSystemKey, "platform_admin", true, true),
    (Act::CreateSystemKey, "org_admin", true, false),
    (Act::CreateSystemKey, "data_officer", false, false),
    (Act::CreateSystemKey, "developer", true, false),
    (Act::CreateSystemKey, "auditor", false, false),
    (Act::CreateSystemKey, "system", false, false),
    (Act::ReadAudit, "platform_admin", true, true),
    (Act::ReadAudit, "org_admin", false, false),
    (Act::ReadAudit, "data_officer", false, false),
    (Act::ReadAudit, "developer", false, false),
    (Act::ReadAudit, "auditor", true, true),
    (Act::ReadAudit, "system", false, false),
];

async fn attempt(
    server: &TestServer,
    act: Act,
    key: &str,
    target: &Uscc,
    serial: u32,
) -> StatusCode {
    let (status, body) = match act {
        Act::ReadOrganization => server.get(&format!("/api/v1/organizations/{target}"), key).await,
        Act::RenameOrganization => {
            server.patch(&format!("/api/v1/organizations/{target}"), key, json!({ "name": format!("名称{serial}") })).await
        }
        Act::MoveOrganization => {
            server.patch(&format!("/api/v1/organizations/{target}"), key, json!({ "region": "320104" })).await
        }
        Act::CreateSystem => {
            server
                .post(&format!("/api/v1/organizations/{target}/systems"), key, json!({ "code": format!("s{serial}"), "name": "系统" }))
                .await
        }
        Act::CreateUser => {
            server
                .post(
                    "/api/v1/users",
                    key,
                    json!({ "name": format!("u{serial}"), "display_name": "x", "role": "developer", "organization": target }),
                )
                .await
        }
        Act::CreateSystemKey => {
            server
                .post("/api/v1/keys", key, json!({ "owner": { "kind": "system", "organization": target, "system": "base" } }))
                .await
        }
        Act::ReadAudit => server.request(Method::GET, "/api/v1/audit/events?limit=1", Some(key), None).await,
    };
    assert!(
        status.is_success() || status == StatusCode::FORBIDDEN,
        "{act:?} answered {status}: {body}"
    );
    status
}

async fn roles_times_actions_times_scope(server: TestServer) {
    let own = server.create_org(1, None).await;
    let other = server.create_org(2, None).await;
    for org in [&own, &other] {
        server.create_system(org, "base").await;
    }
    let mut keys = vec![("platform_admin", ADMIN_KEY.to_owned())];
    for role in ["org_admin", "data_officer", "developer", "auditor"] {
        keys.push((
            role,
            server
                .user_with_key(&role.replace('_', "-"), role, Some(&own))
                .await,
        ));
    }
    let (_, system_key) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "system", "organization": own, "system": "base" } }),
        )
        .await;
    keys.push(("system", system_key["key"].as_str().unwrap().to_owned()));

    let mut serial = 100;
    let mut failures = Vec::new();
    for (act, role, own_allowed, other_allowed) in EXPECTED {
        let key = &keys.iter().find(|(r, _)| r == role).unwrap().1;
        for (target, allowed) in [(&own, own_allowed), (&other, other_allowed)] {
            serial += 1;
            let status = attempt(&server, *act, key, target, serial).await;
            let expected = if *allowed { "allowed" } else { "forbidden" };
            let actual = if status.is_success() {
                "allowed"
            } else {
                "forbidden"
            };
            if expected != actual {
                let scope = if target == &own { "own" } else { "other" };
                failures.push(format!(
                    "{act:?} by {role} on {scope} organization: expected {expected}, got {status}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "authorization table mismatches:\n{}",
        failures.join("\n")
    );
    assert_ne!(own, other);
    assert_eq!(own, uscc(1));
}
