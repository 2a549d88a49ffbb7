//! Platform policies in Cedar through HTTP: validation against the schema, explain, and the
//! gateway enforcing a forbid.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{
    gateway::{CITIZEN, call_ok, call_until, city, start_upstream},
    support::{ADMIN_KEY, TestServer, on_both_stores, uscc},
};

on_both_stores!(
    policies_are_validated_explained_and_enforced,
    explain_is_only_for_the_parties_to_the_grants,
    hostile_trial_policies_get_a_clear_refusal,
    stored_policies_that_no_longer_validate_refuse_exchanges
);

const PERSONAL_STAYS_IN_CITY: &str = r#"@description("personal items never leave for a system outside the city")
forbid (principal, action, resource)
when { !principal.in_city && !context.personal_items.isEmpty() };"#;

async fn policies_are_validated_explained_and_enforced(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;

    // A consumer in Shanghai with a grant for the same resource.
    let shanghai = uscc(9);
    let (status, body) = server
        .post(
            "/api/v1/organizations",
            ADMIN_KEY,
            json!({ "code": shanghai, "name": "上海市某局", "level": "municipal", "region": "310000" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.create_system(&shanghai, "mirror").await;
    let (_, outcome) = server
        .post(
            "/api/v1/applications",
            ADMIN_KEY,
            json!({ "consumer": { "organization": shanghai, "system": "mirror" }, "resource": "320100-B01-000001",
                    "items": ["id_number", "balance"], "purpose": "异地核验", "legal_basis": "长三角政务数据共享协议", "valid_days": 10 }),
        )
        .await;
    let id = outcome["application"]["id"].as_str().unwrap();
    let (status, _) = server
        .post(
            &format!("/api/v1/applications/{id}/approve"),
            &city.officer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Validation: a type error and a permit are refused, naming the place.
    let bad = server
        .request(Method::PUT, "/api/v1/policies/typo", Some(ADMIN_KEY), Some(json!({ "description": "x", "text": "forbid (principal, action, resource) when { principal.department == \"x\" };" })))
        .await;
    assert_eq!(
        (bad.0, bad.1["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("text")),
        "{}",
        bad.1
    );
    let detail = bad.1["detail"].as_str().unwrap();
    assert!(
        detail.contains("type-check") && detail.contains("line"),
        "{detail}"
    );
    let permit = server
        .request(
            Method::PUT,
            "/api/v1/policies/open-all",
            Some(ADMIN_KEY),
            Some(json!({ "description": "x", "text": "permit (principal, action, resource);" })),
        )
        .await;
    assert_eq!(permit.0, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(permit.1["detail"].as_str().unwrap().contains("forbid-only"));
    let syntax = server
        .request(Method::PUT, "/api/v1/policies/broken", Some(ADMIN_KEY), Some(json!({ "description": "x", "text": "forbid (principal, action, resource) when {" })))
        .await;
    assert_eq!(syntax.0, StatusCode::UNPROCESSABLE_ENTITY);
    let not_admin = server
        .request(
            Method::PUT,
            "/api/v1/policies/mine",
            Some(&city.officer),
            Some(json!({ "description": "x", "text": PERSONAL_STAYS_IN_CITY })),
        )
        .await;
    assert_eq!(not_admin.0, StatusCode::FORBIDDEN);

    let (status, created) = server
        .request(
            Method::PUT,
            "/api/v1/policies/personal-stays-in-city",
            Some(ADMIN_KEY),
            Some(json!({ "description": "个人信息不出城", "text": PERSONAL_STAYS_IN_CITY })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, listed) = server.get("/api/v1/policies", &city.officer).await;
    assert_eq!(listed[0]["id"], "personal-stays-in-city");

    // Explain: the Shanghai system is refused by the policy, the city's own system is not.
    let (status, explained) = server
        .post("/api/v1/policy/explain", &city.officer, json!({ "consumer": { "organization": shanghai, "system": "mirror" }, "resource": "320100-B01-000001" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{explained}");
    let decision = &explained["explanation"]["decision"];
    assert_eq!(
        (decision["outcome"].as_str(), decision["rule"].as_str()),
        (Some("deny"), Some("policy:personal-stays-in-city")),
        "{explained}"
    );
    assert!(
        !explained["explanation"]["steps"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let (_, local) = server
        .post("/api/v1/policy/explain", &city.officer, json!({ "consumer": { "organization": city.consumer, "system": "portal" }, "resource": "320100-B01-000001" }))
        .await;
    assert_eq!(
        local["explanation"]["decision"]["outcome"], "allow",
        "{local}"
    );
    // Trying a policy before publishing it.
    let (_, trial) = server
        .post(
            "/api/v1/policy/explain",
            &city.officer,
            json!({ "consumer": { "organization": shanghai, "system": "mirror" }, "resource": "320100-B01-000001", "policies": [] }),
        )
        .await;
    assert_eq!(trial["explanation"]["decision"]["outcome"], "allow");

    // The gateway enforces it.
    let (_, key) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "system", "organization": shanghai, "system": "mirror" } }),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let (status, _, text, _) = call_until(&server, &key, &path, Duration::from_secs(2), |s| {
        s == StatusCode::FORBIDDEN
    })
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(text.contains("policy:personal-stays-in-city"), "{text}");
    call_ok(&server, &city.consumer_key, &path).await;

    // Deactivated, it stops applying.
    let (status, _) = server
        .delete("/api/v1/policies/personal-stays-in-city", ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text, _) = call_until(&server, &key, &path, Duration::from_secs(2), |s| {
        s == StatusCode::OK
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

/// An explanation lists the grants between the consumer's organization and the provider (ids,
/// items, masking): it is for those two organizations' people, auditors and platform admins.
async fn explain_is_only_for_the_parties_to_the_grants(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let request = json!({ "consumer": { "organization": city.consumer, "system": "portal" }, "resource": "320100-B01-000001" });

    let stranger_org = server.create_org(3, None).await;
    let stranger = server
        .user_with_key("stranger", "developer", Some(&stranger_org))
        .await;
    let (status, problem) = server
        .post("/api/v1/policy/explain", &stranger, request.clone())
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );
    assert!(!problem.to_string().contains(&city.grant), "{problem}");
    // A system, even of the consumer's organization, reads the catalog but not its grants.
    let (status, problem) = server
        .post("/api/v1/policy/explain", &city.other_key, request.clone())
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );

    // The provider's officer, the consumer's people and auditors see the grant.
    let consumer_developer = server
        .user_with_key(
            "consumer-dev",
            "developer",
            Some(&city.consumer.parse().unwrap()),
        )
        .await;
    let auditor = server
        .user_with_key("aud", "auditor", Some(&stranger_org))
        .await;
    for key in [&city.officer, &consumer_developer, &auditor] {
        let (status, explained) = server
            .post("/api/v1/policy/explain", key, request.clone())
            .await;
        assert_eq!(status, StatusCode::OK, "{explained}");
        assert_eq!(
            explained["explanation"]["decision"]["outcome"], "allow",
            "{explained}"
        );
        assert!(explained.to_string().contains(&city.grant), "{explained}");
    }
}

/// Anyone who may explain may try policies. One nested thousands deep overflowed the stack of
/// Cedar's parser and aborted the whole node; nested `if`s kept a worker busy for hours; and
/// thousands of policies took time quadratic in their number. Each is refused with a 422 now, and
/// the node keeps answering.
async fn hostile_trial_policies_get_a_clear_refusal(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let explain = |policies: serde_json::Value| {
        json!({
            "consumer": { "organization": city.consumer, "system": "portal" },
            "resource": "320100-B01-000001",
            "policies": policies,
        })
    };
    let deep = format!(
        "forbid (principal, action, resource) when {{ {}true{} }};",
        "(".repeat(4_000),
        ")".repeat(4_000)
    );
    let chained = format!(
        "forbid (principal, action, resource) when {{ true{} }};",
        "&&true".repeat(1_500)
    );
    let ifs = format!(
        "forbid (principal, action, resource) when {{ {}true{} }};",
        "if true then ".repeat(40),
        " else false".repeat(40)
    );
    for text in [deep, chained, ifs] {
        let (status, problem) = server
            .post(
                "/api/v1/policy/explain",
                &city.officer,
                explain(json!([["deep", text]])),
            )
            .await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("policies")),
            "{problem}"
        );
        assert!(
            problem["detail"].as_str().unwrap().contains("too complex"),
            "{problem}"
        );
    }
    let many: Vec<(String, &str)> = (0..5_000)
        .map(|number| (format!("rule-{number}"), PERSONAL_STAYS_IN_CITY))
        .collect();
    let (status, problem) = server
        .post(
            "/api/v1/policy/explain",
            &city.officer,
            explain(json!(many)),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("policies")),
        "{problem}"
    );
    let long = "// x\n".repeat(3_000) + PERSONAL_STAYS_IN_CITY;
    let (status, problem) = server
        .post(
            "/api/v1/policy/explain",
            &city.officer,
            explain(json!([["long", long]])),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("policies[0]")),
        "{problem}"
    );
    // The node still answers, and a reasonable trial still works.
    let (status, explained) = server
        .post(
            "/api/v1/policy/explain",
            &city.officer,
            explain(json!([["personal-stays-in-city", PERSONAL_STAYS_IN_CITY]])),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{explained}");
}

/// Refused calls of `key` to `path` until `ready` holds, within three seconds: the refusal
/// names `rule`, and its record in the ledger does too.
async fn refused_by(
    server: &TestServer,
    key: &str,
    path: &str,
    rule: &str,
    reason: &str,
) -> serde_json::Value {
    let (status, headers, text, _) =
        call_until(server, key, path, Duration::from_secs(3), |status| {
            status == StatusCode::FORBIDDEN
        })
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let problem: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (problem["code"].as_str(), problem["rule"].as_str()),
        (Some("denied"), Some(rule)),
        "{problem}"
    );
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(reason), "{detail}");
    let index = headers["civitas-receipt"].to_str().unwrap();
    let (status, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        (
            record["record"]["decision"].as_str(),
            record["record"]["rule"].as_str()
        ),
        (Some("deny"), Some(rule)),
        "{record}"
    );
    problem
}

/// A policy stored before an upgrade of Cedar or of the schema may no longer validate. It is not
/// left out (which would let through what it forbids): one that parses is evaluated as written,
/// refusing where it fails, and one that does not refuses every exchange until a platform admin
/// fixes or deactivates it. The API lists how each fares. The store is written directly, as the
/// API refuses such texts.
async fn stored_policies_that_no_longer_validate_refuse_exchanges(server: TestServer) {
    use civitas_core::{Code, authz::Permit};

    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    call_ok(&server, &city.consumer_key, &path).await;

    let store = civitas_store::Store::connect(&server.settings.store)
        .await
        .unwrap();
    let permit = Permit::internal("civitas:test");
    let store_policy = |id: &'static str, text: &'static str| {
        let (store, permit) = (&store, &permit);
        async move {
            store
                .put_policy(
                    permit,
                    &Code::parse(id).unwrap(),
                    "before the upgrade",
                    text,
                    true,
                )
                .await
                .unwrap();
        }
    };
    let policy_of = |listed: &serde_json::Value, id: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|policy| policy["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed: {listed}"))
            .clone()
    };

    // Parses, but reads an attribute the schema does not have: evaluating it fails.
    let by_department =
        "forbid (principal, action, resource) when { principal.department == \"police\" };";
    let refusal = server
        .request(
            Method::PUT,
            "/api/v1/policies/by-department",
            Some(ADMIN_KEY),
            Some(json!({ "description": "x", "text": by_department })),
        )
        .await;
    assert_eq!(refusal.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", refusal.1);
    store_policy("by-department", by_department).await;
    let problem = refused_by(
        &server,
        &city.consumer_key,
        &path,
        "policy:by-department",
        "policy_failed",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("fixes or deactivates it"),
        "{problem}"
    );
    let (status, policy) = server
        .get("/api/v1/policies/by-department", &city.officer)
        .await;
    assert_eq!(status, StatusCode::OK, "{policy}");
    assert_eq!(policy["validity"], "stale", "{policy}");
    assert!(
        policy["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("department")),
        "{policy}"
    );
    // Explain decides as the gateway does.
    let (status, explained) = server
        .post("/api/v1/policy/explain", &city.officer, json!({ "consumer": { "organization": city.consumer, "system": "portal" }, "resource": "320100-B01-000001" }))
        .await;
    assert_eq!(status, StatusCode::OK, "{explained}");
    assert_eq!(
        explained["explanation"]["decision"]["rule"], "policy:by-department",
        "{explained}"
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("civitas_gateway_policies_not_valid{state=\"stale\"} 1"),
        "{metrics}"
    );
    let (status, deactivated) = server
        .delete("/api/v1/policies/by-department", ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK, "{deactivated}");
    assert_eq!(
        (
            deactivated["active"].as_bool(),
            deactivated["validity"].as_str()
        ),
        (Some(false), Some("stale"))
    );
    call_ok(&server, &city.consumer_key, &path).await;

    // Parses, compares a string with a number: it evaluates, and forbids as written.
    store_policy(
        "level-as-number",
        "forbid (principal, action, resource) when { principal.level != 1 };",
    )
    .await;
    refused_by(
        &server,
        &city.consumer_key,
        &path,
        "policy:level-as-number",
        "forbidden_by_policy",
    )
    .await;
    let (status, _) = server
        .delete("/api/v1/policies/level-as-number", ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    call_ok(&server, &city.consumer_key, &path).await;

    // Does not parse: nothing tells which exchanges it covers, so every one is refused.
    store_policy(
        "unreadable",
        "forbid (principal, action, resource) when { principal.level == };",
    )
    .await;
    let problem = refused_by(
        &server,
        &city.consumer_key,
        &path,
        "policy:unreadable",
        "policy_failed",
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("platform policy unreadable cannot be evaluated"),
        "{problem}"
    );
    let (status, listed) = server.get("/api/v1/policies", &city.officer).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let unreadable = policy_of(&listed, "unreadable");
    assert_eq!(
        (
            unreadable["validity"].as_str(),
            unreadable["active"].as_bool()
        ),
        (Some("unusable"), Some(true)),
        "{unreadable}"
    );
    assert!(
        unreadable["problem"]
            .as_str()
            .is_some_and(|problem| problem.contains("syntax error")),
        "{unreadable}"
    );
    let department = policy_of(&listed, "by-department");
    assert_eq!(
        (
            department["validity"].as_str(),
            department["active"].as_bool()
        ),
        (Some("stale"), Some(false))
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("civitas_gateway_policies_not_valid{state=\"unusable\"} 1")
            && metrics.contains("civitas_gateway_policies_not_valid{state=\"stale\"} 0"),
        "{metrics}"
    );

    // A valid policy is listed as such; deactivating the unreadable one lets exchanges through.
    let (status, created) = server
        .request(
            Method::PUT,
            "/api/v1/policies/personal-stays-in-city",
            Some(ADMIN_KEY),
            Some(json!({ "description": "个人信息不出城", "text": PERSONAL_STAYS_IN_CITY })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["validity"].as_str(), &created["problem"]),
        (Some("valid"), &serde_json::Value::Null),
        "{created}"
    );
    let (status, _) = server
        .delete("/api/v1/policies/unreadable", ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    call_ok(&server, &city.consumer_key, &path).await;

    // The API's description says what the listing holds.
    let (status, spec) = server
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let view = &spec["components"]["schemas"]["PolicyView"];
    let text = view.to_string();
    assert!(
        text.contains("validity") && text.contains("problem") && text.contains("PlatformPolicy"),
        "{view}"
    );
    assert_eq!(
        spec["components"]["schemas"]["PolicyValidity"]["enum"],
        json!(["valid", "stale", "unusable"]),
        "{spec}"
    );
}
