//! The access workflow through HTTP: apply, review, grant, revoke, with bad input and wrong
//! actors, and a roles × actions × own/other table for the access actions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    catalog::resource,
    support::{ADMIN_KEY, TestServer, on_both_stores},
};

on_both_stores!(
    application_workflow,
    a_grants_history_pages_oldest_first,
    access_bad_input_and_wrong_actors,
    access_authorization_table
);

/// Provider organization 1 publishes three resources (conditional, unconditional, not shared);
/// consumer organization 2 has the system `portal`.
async fn city(server: &TestServer) -> (String, String) {
    let provider = server.create_org(1, None).await.to_string();
    let consumer = server.create_org(2, None).await.to_string();
    server
        .create_system(&consumer.parse().unwrap(), "portal")
        .await;
    let mut conditional = resource("320100-B01-000001", &provider);
    conditional["items"] = json!([
        { "code": "id_number", "name": "公民身份号码", "data_type": "string", "sensitivity": "personal" },
        { "code": "name", "name": "姓名", "data_type": "string", "sensitivity": "personal" },
        { "code": "balance", "name": "账户余额", "data_type": "decimal", "sensitivity": "internal" }
    ]);
    let mut unconditional = resource("320100-B01-000002", &provider);
    unconditional["sharing"] = json!({ "type": "unconditional", "method": "interface" });
    let mut not_shared = resource("320100-B01-000003", &provider);
    not_shared["sharing"] = json!({ "type": "none" });
    for body in [conditional, unconditional, not_shared] {
        let (status, created) = server.post("/api/v1/resources", ADMIN_KEY, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    (provider, consumer)
}

fn apply_body(consumer: &str, resource: &str) -> Value {
    json!({
        "consumer": { "organization": consumer, "system": "portal" },
        "resource": resource,
        "items": ["id_number", "name", "balance"],
        "purpose": "住房公积金租房提取核验",
        "legal_basis": "《住房公积金管理条例》第二十四条",
        "valid_days": 90,
        "expected_calls_per_day": 5000
    })
}

async fn application_workflow(server: TestServer) {
    let (provider, consumer) = city(&server).await;
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let officer = server
        .user_with_key("officer", "data_officer", Some(&provider.parse().unwrap()))
        .await;

    let (status, outcome) = server
        .post(
            "/api/v1/applications",
            &developer,
            apply_body(&consumer, "320100-B01-000001"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    assert_eq!(outcome["application"]["state"], "pending");
    assert_eq!(outcome["grant"], Value::Null);
    let id = outcome["application"]["id"].as_str().unwrap().to_owned();

    let (status, queue) = server
        .get(
            &format!("/api/v1/applications?provider={provider}&state=pending"),
            &officer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(queue["items"][0]["id"], id.as_str());

    let (status, approved) = server
        .post(
            &format!("/api/v1/applications/{id}/approve"),
            &officer,
            json!({ "items": ["id_number", "balance"], "valid_days": 30, "calls_per_day": 1000, "requests_per_second": 5, "plaintext_items": ["id_number"], "note": "同意" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["application"]["state"], "approved");
    let grant = &approved["grant"];
    assert_eq!(
        grant["items"],
        json!([{ "code": "id_number", "plaintext": true }, { "code": "balance", "plaintext": false }])
    );
    assert_eq!(
        (
            grant["calls_per_day"].as_u64(),
            grant["requests_per_second"].as_u64()
        ),
        (Some(1000), Some(5))
    );
    let grant_id = grant["id"].as_str().unwrap().to_owned();

    let twice = server
        .post(
            &format!("/api/v1/applications/{id}/approve"),
            &officer,
            json!({}),
        )
        .await;
    assert_eq!(
        (twice.0, twice.1["code"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );

    // What the system may read; who may read the resource.
    let (_, readable) = server
        .get(
            &format!("/api/v1/organizations/{consumer}/systems/portal/grants"),
            &developer,
        )
        .await;
    assert_eq!(readable.as_array().unwrap().len(), 1);
    let (_, readers) = server
        .get("/api/v1/resources/320100-B01-000001/grants", &officer)
        .await;
    assert_eq!(readers[0]["consumer"]["system"], "portal");

    // Unconditional sharing is approved at once.
    let mut unconditional = apply_body(&consumer, "320100-B01-000002");
    unconditional["items"] = json!(["id_number", "balance"]);
    let (status, automatic) = server
        .post("/api/v1/applications", &developer, unconditional)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{automatic}");
    assert_eq!(automatic["application"]["state"], "approved");
    assert!(automatic["grant"]["id"].is_string());

    let (status, revoked) = server
        .post(
            &format!("/api/v1/grants/{grant_id}/revoke"),
            &officer,
            json!({ "reason": "用途已结束" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let (_, readable) = server
        .get(
            &format!("/api/v1/organizations/{consumer}/systems/portal/grants"),
            &developer,
        )
        .await;
    assert_eq!(
        readable.as_array().unwrap().len(),
        1,
        "only the unconditional grant is left"
    );

    let (status, history) = server
        .get(&format!("/api/v1/grants/{grant_id}/history"), &developer)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["next_cursor"], Value::Null, "one page: {history}");
    let history = &history["items"];
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("application.create", "dev"),
            ("application.approve", "officer"),
            ("grant.create", "officer"),
            ("grant.revoke", "officer")
        ]
    );
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["ledger_index"].is_u64()),
        "every transition is in the ledger"
    );

    // Reject and withdraw.
    let (_, second) = server
        .post(
            "/api/v1/applications",
            &developer,
            apply_body(&consumer, "320100-B01-000001"),
        )
        .await;
    let second = second["application"]["id"].as_str().unwrap().to_owned();
    let (status, rejected) = server
        .post(
            &format!("/api/v1/applications/{second}/reject"),
            &officer,
            json!({ "reason": "用途与法律依据不符" }),
        )
        .await;
    assert_eq!(
        (status, rejected["state"].as_str()),
        (StatusCode::OK, Some("rejected"))
    );
    assert_eq!(rejected["reason"], "用途与法律依据不符");
    let (_, third) = server
        .post(
            "/api/v1/applications",
            &developer,
            apply_body(&consumer, "320100-B01-000001"),
        )
        .await;
    let third = third["application"]["id"].as_str().unwrap().to_owned();
    // A reason is capped like a rejection's: the change is recorded whole in the ledger.
    let long = server
        .post(
            &format!("/api/v1/applications/{third}/withdraw"),
            &developer,
            json!({ "reason": "撤".repeat(2001) }),
        )
        .await;
    assert_eq!(
        (long.0, long.1["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("reason")),
        "{}",
        long.1
    );
    let (status, withdrawn) = server
        .post(
            &format!("/api/v1/applications/{third}/withdraw"),
            &developer,
            json!({}),
        )
        .await;
    assert_eq!(
        (status, withdrawn["state"].as_str()),
        (StatusCode::OK, Some("withdrawn"))
    );
    let late = server
        .post(
            &format!("/api/v1/applications/{third}/reject"),
            &officer,
            json!({ "reason": "x" }),
        )
        .await;
    assert_eq!(late.0, StatusCode::CONFLICT);
}

/// A grant's history is its application's events and its own in one sequence, oldest first:
/// paged at any size it meets each exactly once, and leaves out the events of other applications
/// made in between. A cursor carries no permission.
async fn a_grants_history_pages_oldest_first(server: TestServer) {
    let (provider, consumer) = city(&server).await;
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let officer = server
        .user_with_key("officer", "data_officer", Some(&provider.parse().unwrap()))
        .await;
    // A second application, made in between, whose events belong to no grant.
    let mut applications = Vec::new();
    for _ in 0..2 {
        let (status, outcome) = server
            .post(
                "/api/v1/applications",
                &developer,
                apply_body(&consumer, "320100-B01-000001"),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{outcome}");
        applications.push(outcome["application"]["id"].as_str().unwrap().to_owned());
    }
    let [application, other] = &applications[..] else {
        unreachable!("two applications")
    };
    let (status, approved) = server
        .post(
            &format!("/api/v1/applications/{application}/approve"),
            &officer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let grant = approved["grant"]["id"].as_str().unwrap().to_owned();
    let (status, rejected) = server
        .post(
            &format!("/api/v1/applications/{other}/reject"),
            &officer,
            json!({ "reason": "重复申请" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    let (status, revoked) = server
        .post(
            &format!("/api/v1/grants/{grant}/revoke"),
            &officer,
            json!({ "reason": "用途已结束" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");

    let history_path = format!("/api/v1/grants/{grant}/history");
    let (status, whole) = server.get(&history_path, &developer).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    let whole = whole["items"].as_array().unwrap().clone();
    let events: Vec<_> = whole
        .iter()
        .map(|event| {
            (
                event["action"].as_str().unwrap(),
                event["object_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("application.create", application.as_str()),
            ("application.approve", application.as_str()),
            ("grant.create", grant.as_str()),
            ("grant.revoke", grant.as_str()),
        ]
    );
    for limit in 1..=5 {
        let pages = server.pages(&history_path, &developer, limit).await;
        let expected: Vec<Vec<Value>> = whole
            .chunks(limit as usize)
            .map(<[Value]>::to_vec)
            .collect();
        assert_eq!(pages, expected, "pages of {limit}");
    }

    // Another organization's officer is refused a later page as they are the first; the
    // provider's officer reads it.
    let (_, first) = server
        .get(&format!("{history_path}?limit=2"), &developer)
        .await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let stranger_org = server.create_org(3, None).await;
    let foreign_officer = server
        .user_with_key("foreign", "data_officer", Some(&stranger_org))
        .await;
    let (status, problem) = server
        .get(&format!("{history_path}?cursor={cursor}"), &foreign_officer)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );
    let (status, rest) = server
        .get(&format!("{history_path}?cursor={cursor}"), &officer)
        .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!(rest["items"], json!(whole[2..]));

    // Bad cursors and page sizes name their field; an unknown grant has no history.
    for (query, field) in [
        ("cursor=!!", "cursor"),
        // `not-a-cursor` in base64: a cursor's encoding, not a cursor's contents.
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ] {
        let (status, problem) = server
            .get(&format!("{history_path}?{query}"), &developer)
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}: {problem}"
        );
    }
    let (status, problem) = server
        .get("/api/v1/grants/no-such-grant/history", &developer)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
}

async fn access_bad_input_and_wrong_actors(server: TestServer) {
    let (provider, consumer) = city(&server).await;
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let officer = server
        .user_with_key("officer", "data_officer", Some(&provider.parse().unwrap()))
        .await;
    let stranger_org = server.create_org(3, None).await;
    let foreign_officer = server
        .user_with_key("foreign", "data_officer", Some(&stranger_org))
        .await;

    // (what, change to the application, expected status, field)
    let cases = [
        (
            "not shared",
            "/resource",
            json!("320100-B01-000003"),
            "resource",
        ),
        (
            "unknown resource",
            "/resource",
            json!("320100-B01-000404"),
            "resource",
        ),
        (
            "unknown item",
            "/items",
            json!(["id_number", "salary"]),
            "items[1]",
        ),
        (
            "validity beyond the cap",
            "/valid_days",
            json!(400),
            "valid_days",
        ),
        ("no validity", "/valid_days", json!(0), "valid_days"),
        ("empty purpose", "/purpose", json!(" "), "purpose"),
        (
            "unknown system",
            "/consumer/system",
            json!("ghost"),
            "consumer",
        ),
    ];
    for (what, pointer, value, field) in cases {
        let mut body = apply_body(&consumer, "320100-B01-000001");
        *body.pointer_mut(pointer).unwrap() = value;
        let (status, problem) = server.post("/api/v1/applications", &developer, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {problem}"
        );
        assert_eq!(problem["field"], field, "{what}: {problem}");
    }
    let (status, problem) = server
        .post(
            "/api/v1/applications",
            &developer,
            apply_body(&consumer, "320100-B01-000003"),
        )
        .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("not shared"),
        "{status} {problem}"
    );

    // A developer applies only for their own organization's systems.
    let mut foreign = apply_body(&provider, "320100-B01-000001");
    foreign["consumer"]["system"] = json!("portal");
    assert_eq!(
        server
            .post("/api/v1/applications", &developer, foreign)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    let (_, outcome) = server
        .post(
            "/api/v1/applications",
            &developer,
            apply_body(&consumer, "320100-B01-000001"),
        )
        .await;
    let id = outcome["application"]["id"].as_str().unwrap().to_owned();
    // Only the provider's officers approve.
    for key in [&foreign_officer, &developer] {
        let (status, _) = server
            .post(
                &format!("/api/v1/applications/{id}/approve"),
                key,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let narrowing = [
        (json!({ "items": ["salary"] }), "items[0]"),
        // A grant naming an item twice is one the gateway could not take.
        (json!({ "items": ["name", "name"] }), "items[1]"),
        (json!({ "valid_days": 91 }), "valid_days"),
        (
            json!({ "plaintext_items": ["balance"] }),
            "plaintext_items[0]",
        ),
        (json!({ "calls_per_day": 0 }), "calls_per_day"),
    ];
    for (body, field) in narrowing {
        let (status, problem) = server
            .post(
                &format!("/api/v1/applications/{id}/approve"),
                &officer,
                body,
            )
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{problem}"
        );
    }
    let no_reason = server
        .post(
            &format!("/api/v1/applications/{id}/reject"),
            &officer,
            json!({ "reason": "" }),
        )
        .await;
    assert_eq!(no_reason.1["field"], "reason");
    // The foreign officer cannot see it either.
    assert_eq!(
        server
            .get(&format!("/api/v1/applications/{id}"), &foreign_officer)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server
            .get(
                &format!("/api/v1/applications?provider={provider}"),
                &foreign_officer
            )
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // After all that, the application is still pending.
    let (_, application) = server
        .get(&format!("/api/v1/applications/{id}"), &officer)
        .await;
    assert_eq!(application["state"], "pending");
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Apply,
    Approve,
    Reject,
    ReadQueue,
    Revoke,
}

/// (action, role, allowed when the role's organization is the relevant party, allowed when not).
/// For Apply the party is the consumer; for the rest, the provider.
const EXPECTED: &[(Act, &str, bool, bool)] = &[
    (Act::Apply, "org_admin", true, false),
    (Act::Apply, "data_officer", false, false),
    (Act::Apply, "developer", true, false),
    (Act::Apply, "auditor", false, false),
    (Act::Apply, "platform_admin", true, true),
    (Act::Approve, "org_admin", true, false),
    (Act::Approve, "data_officer", true, false),
    (Act::Approve, "developer", false, false),
    (Act::Approve, "auditor", false, false),
    (Act::Approve, "platform_admin", true, true),
    (Act::Reject, "org_admin", true, false),
    (Act::Reject, "data_officer", true, false),
    (Act::Reject, "developer", false, false),
    (Act::Reject, "auditor", false, false),
    (Act::Reject, "platform_admin", true, true),
    (Act::ReadQueue, "org_admin", true, false),
    (Act::ReadQueue, "data_officer", true, false),
    (Act::ReadQueue, "developer", true, false),
    (Act::ReadQueue, "auditor", true, true),
    (Act::ReadQueue, "platform_admin", true, true),
    (Act::Revoke, "org_admin", true, false),
    (Act::Revoke, "data_officer", true, false),
    (Act::Revoke, "developer", false, false),
    (Act::Revoke, "auditor", false, false),
    (Act::Revoke, "platform_admin", true, true),
];

async fn access_authorization_table(server: TestServer) {
    let (provider, consumer) = city(&server).await;
    let other = server.create_org(3, None).await.to_string();
    server
        .create_system(&other.parse().unwrap(), "portal")
        .await;
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let mut failures = Vec::new();
    let mut serial = 0;
    for (act, role, party_allowed, other_allowed) in EXPECTED {
        for (is_party, allowed) in [(true, party_allowed), (false, other_allowed)] {
            serial += 1;
            // The acting user belongs to the party organization, or to a third one.
            let party = match act {
                Act::Apply => &consumer,
                _ => &provider,
            };
            let own = if is_party { party } else { &other };
            let key = if *role == "platform_admin" {
                ADMIN_KEY.to_owned()
            } else {
                server
                    .user_with_key(&format!("u{serial}"), role, Some(&own.parse().unwrap()))
                    .await
            };
            let apply_as = if *role == "platform_admin" && !is_party {
                &other
            } else {
                &consumer
            };
            let status = match act {
                Act::Apply => {
                    server
                        .post(
                            "/api/v1/applications",
                            &key,
                            apply_body(
                                if is_party { &consumer } else { apply_as },
                                "320100-B01-000001",
                            ),
                        )
                        .await
                        .0
                }
                Act::ReadQueue => {
                    server
                        .get(&format!("/api/v1/applications?provider={provider}"), &key)
                        .await
                        .0
                }
                Act::Approve | Act::Reject | Act::Revoke => {
                    let (_, outcome) = server
                        .post(
                            "/api/v1/applications",
                            &developer,
                            apply_body(&consumer, "320100-B01-000001"),
                        )
                        .await;
                    let id = outcome["application"]["id"].as_str().unwrap().to_owned();
                    match act {
                        Act::Approve => {
                            server
                                .post(
                                    &format!("/api/v1/applications/{id}/approve"),
                                    &key,
                                    json!({}),
                                )
                                .await
                                .0
                        }
                        Act::Reject => {
                            server
                                .post(
                                    &format!("/api/v1/applications/{id}/reject"),
                                    &key,
                                    json!({ "reason": "no" }),
                                )
                                .await
                                .0
                        }
                        _ => {
                            let (_, approved) = server
                                .post(
                                    &format!("/api/v1/applications/{id}/approve"),
                                    ADMIN_KEY,
                                    json!({}),
                                )
                                .await;
                            let grant = approved["grant"]["id"].as_str().unwrap().to_owned();
                            server
                                .post(
                                    &format!("/api/v1/grants/{grant}/revoke"),
                                    &key,
                                    json!({ "reason": "no" }),
                                )
                                .await
                                .0
                        }
                    }
                }
            };
            assert!(
                status.is_success() || status == StatusCode::FORBIDDEN,
                "{act:?} by {role}: {status}"
            );
            if status.is_success() != *allowed {
                failures.push(format!(
                    "{act:?} by {role} ({}): expected {}, got {status}",
                    if is_party { "party" } else { "other" },
                    if *allowed { "allowed" } else { "forbidden" }
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "access authorization mismatches:\n{}",
        failures.join("\n")
    );
}
