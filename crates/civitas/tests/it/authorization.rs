//! Who may do what, table-driven: every role × every action × own vs other organization, through
//! HTTP; and the rules that guard against taking on another's powers (keys, auditors).

use civitas_core::Uscc;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{ADMIN_KEY, TestServer, on_both_stores, uscc};

on_both_stores!(
    roles_times_actions_times_scope,
    another_users_keys_are_managed_by_who_manages_the_user,
    only_platform_admins_make_and_change_auditors
);

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

fn assert_forbidden(response: &(StatusCode, serde_json::Value), what: &str) {
    assert_eq!(response.0, StatusCode::FORBIDDEN, "{what}: {}", response.1);
    assert_eq!(response.1["code"], "forbidden", "{what}: {}", response.1);
}

/// A user's key acts as that user: a developer, who manages the organization's system keys, must
/// not issue, read or revoke its admin's keys, which would let them act as the admin.
async fn another_users_keys_are_managed_by_who_manages_the_user(server: TestServer) {
    let org = server.create_org(1, None).await;
    server.create_system(&org, "base").await;
    let boss = server.user_with_key("boss", "org_admin", Some(&org)).await;
    let developer = server.user_with_key("dev", "developer", Some(&org)).await;
    let user_key = |name: &str| json!({ "owner": { "kind": "user", "name": name } });

    let issued = server
        .post("/api/v1/keys", &developer, user_key("boss"))
        .await;
    assert_forbidden(&issued, "a developer issuing the org admin's key");
    let listed = server.get("/api/v1/keys?user=boss", &developer).await;
    assert_forbidden(&listed, "a developer listing the org admin's keys");
    let whole = server
        .get(&format!("/api/v1/keys?organization={org}"), &developer)
        .await;
    assert_forbidden(&whole, "a developer listing all of the organization's keys");
    let (_, own) = server.get("/api/v1/keys", &boss).await;
    let boss_key_id = own["items"][0]["id"].as_str().unwrap().to_owned();
    let read = server
        .get(&format!("/api/v1/keys/{boss_key_id}"), &developer)
        .await;
    assert_forbidden(&read, "a developer reading the org admin's key");
    let revoked = server
        .delete(&format!("/api/v1/keys/{boss_key_id}"), &developer)
        .await;
    assert_forbidden(&revoked, "a developer revoking the org admin's key");
    let (status, me) = server.get("/api/v1/me", &boss).await;
    assert_eq!(
        (status, me["name"].as_str()),
        (StatusCode::OK, Some("boss"))
    );

    // The org admin manages their users' keys and sees the organization's.
    let (status, body) = server.post("/api/v1/keys", &boss, user_key("dev")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server.get("/api/v1/keys?user=dev", &boss).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .get(&format!("/api/v1/keys?organization={org}"), &boss)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The developer still manages system keys and their own.
    let (status, system_key) = server
        .post(
            "/api/v1/keys",
            &developer,
            json!({ "owner": { "kind": "system", "organization": org, "system": "base" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{system_key}");
    let (status, body) = server
        .get(
            &format!("/api/v1/keys?organization={org}&system=base"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let system_key_id = system_key["api_key"]["id"].as_str().unwrap();
    let (status, body) = server
        .delete(&format!("/api/v1/keys/{system_key_id}"), &developer)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post("/api/v1/keys", &developer, json!({ "label": "laptop" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // An auditor's keys read every organization's records: only a platform admin issues them.
    server.user_with_key("aud", "auditor", Some(&org)).await;
    let issued = server.post("/api/v1/keys", &boss, user_key("aud")).await;
    assert_forbidden(&issued, "an org admin issuing an auditor's key");
    let (status, body) = server
        .post("/api/v1/keys", ADMIN_KEY, user_key("aud"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Auditors read every organization's records: an org admin may neither make one nor change one.
async fn only_platform_admins_make_and_change_auditors(server: TestServer) {
    let org = server.create_org(1, None).await;
    let boss = server.user_with_key("boss", "org_admin", Some(&org)).await;
    let new_user = |name: &str, role: &str| json!({ "name": name, "display_name": name, "role": role, "organization": org });

    let created = server
        .post("/api/v1/users", &boss, new_user("aud", "auditor"))
        .await;
    assert_forbidden(&created, "an org admin creating an auditor");
    let (status, _) = server.get("/api/v1/users/aud", ADMIN_KEY).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was created");
    let (status, body) = server
        .post("/api/v1/users", &boss, new_user("dev", "developer"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let promoted = server
        .patch("/api/v1/users/dev", &boss, json!({ "role": "auditor" }))
        .await;
    assert_forbidden(&promoted, "an org admin promoting a user to auditor");
    let (_, dev) = server.get("/api/v1/users/dev", ADMIN_KEY).await;
    assert_eq!(dev["role"], "developer", "{dev}");

    let (status, body) = server
        .post("/api/v1/users", ADMIN_KEY, new_user("aud", "auditor"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let demoted = server
        .patch("/api/v1/users/aud", &boss, json!({ "role": "developer" }))
        .await;
    assert_forbidden(&demoted, "an org admin changing an auditor's role");
    let password = server
        .patch(
            "/api/v1/users/aud",
            &boss,
            json!({ "password": "the org admin's choice" }),
        )
        .await;
    assert_forbidden(&password, "an org admin setting an auditor's password");
    let (_, aud) = server.get("/api/v1/users/aud", ADMIN_KEY).await;
    assert_eq!(aud["role"], "auditor", "{aud}");

    let (status, body) = server
        .patch("/api/v1/users/dev", ADMIN_KEY, json!({ "role": "auditor" }))
        .await;
    assert_eq!(
        (status, body["role"].as_str()),
        (StatusCode::OK, Some("auditor")),
        "{body}"
    );
}
