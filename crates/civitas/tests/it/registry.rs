//! The registry through HTTP: every endpoint's happy path and its bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer, on_both_stores, uscc, with_bad_check};

on_both_stores!(
    organizations_lifecycle,
    organization_bad_input,
    systems_lifecycle,
    users_keys_and_login,
    restart_keeps_everything_and_revocation_is_immediate,
    operations_endpoints,
    changes_are_audited,
    text_with_nul_is_invalid_input,
    system_descriptions_are_capped_on_update,
    a_deactivated_organization_s_users_stop_until_it_is_reactivated,
);

fn assert_problem(response: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(response.1["code"], code, "{}", response.1);
    assert_eq!(response.1["status"], status.as_u16());
}

async fn organizations_lifecycle(server: TestServer) {
    let parent = server.create_org(1, None).await;
    let child = server.create_org(2, Some(&parent)).await;

    let (status, org) = server
        .get(&format!("/api/v1/organizations/{child}"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(org["parent"], parent.to_string());
    assert_eq!(org["level"], "municipal");
    assert_eq!(org["name_en"], "Test bureau 2");

    let (status, org) = server
        .patch(
            &format!("/api/v1/organizations/{child}"),
            ADMIN_KEY,
            json!({ "name": "玄武区数据局", "level": "district", "region": "320102", "name_en": null }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{org}");
    assert_eq!(org["name"], "玄武区数据局");
    assert_eq!(org["region"], "320102");
    assert_eq!(org["name_en"], Value::Null);

    for n in 3..=7 {
        server.create_org(n, Some(&parent)).await;
    }
    let (status, page) = server
        .get(
            &format!("/api/v1/organizations?parent={parent}&limit=2"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let mut seen = 2;
    let mut cursor = page["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (_, page) = server
            .get(
                &format!("/api/v1/organizations?parent={parent}&limit=2&cursor={cursor}"),
                ADMIN_KEY,
            )
            .await;
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, 6);
    let (_, districts) = server
        .get("/api/v1/organizations?level=district", ADMIN_KEY)
        .await;
    assert_eq!(districts["items"].as_array().unwrap().len(), 1);
    let (_, in_xuanwu) = server
        .get("/api/v1/organizations?region=320102", ADMIN_KEY)
        .await;
    assert_eq!(in_xuanwu["items"][0]["code"], child.to_string());

    let (status, org) = server
        .delete(&format!("/api/v1/organizations/{child}"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(org["active"], false);
    let (status, org) = server
        .get(&format!("/api/v1/organizations/{child}"), ADMIN_KEY)
        .await;
    assert_eq!(
        (status, &org["active"]),
        (StatusCode::OK, &json!(false)),
        "deactivated, never deleted"
    );
    let (_, active) = server
        .get(
            &format!("/api/v1/organizations?parent={parent}&active=true"),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(active["items"].as_array().unwrap().len(), 5);
    let (status, org) = server
        .post(
            &format!("/api/v1/organizations/{child}/reactivate"),
            ADMIN_KEY,
            json!({}),
        )
        .await;
    assert_eq!((status, &org["active"]), (StatusCode::OK, &json!(true)));
}

async fn organization_bad_input(server: TestServer) {
    let parent = server.create_org(1, None).await;
    let good = |code: Value| json!({ "code": code, "name": "某局", "level": "municipal", "region": "320100" });

    let bad_check = server
        .post(
            "/api/v1/organizations",
            ADMIN_KEY,
            good(json!(with_bad_check(&uscc(9)))),
        )
        .await;
    assert_problem(
        &bad_check,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_eq!(bad_check.1["field"], "code");
    assert!(
        bad_check.1["detail"]
            .as_str()
            .unwrap()
            .contains("check character"),
        "{}",
        bad_check.1
    );

    let mut unknown_region = good(json!(uscc(9)));
    unknown_region["region"] = json!("320199");
    let response = server
        .post("/api/v1/organizations", ADMIN_KEY, unknown_region)
        .await;
    assert_problem(&response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(response.1["field"], "region");

    let mut bad_level = good(json!(uscc(9)));
    bad_level["level"] = json!("galactic");
    let response = server
        .post("/api/v1/organizations", ADMIN_KEY, bad_level)
        .await;
    assert_eq!(response.1["field"], "level");

    let duplicate = server
        .post("/api/v1/organizations", ADMIN_KEY, good(json!(parent)))
        .await;
    assert_problem(&duplicate, StatusCode::CONFLICT, "duplicate");

    let mut unknown_parent = good(json!(uscc(9)));
    unknown_parent["parent"] = json!(uscc(99));
    let response = server
        .post("/api/v1/organizations", ADMIN_KEY, unknown_parent)
        .await;
    assert_problem(&response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(response.1["field"], "parent");

    let child = server.create_org(2, Some(&parent)).await;
    let cycle = server
        .patch(
            &format!("/api/v1/organizations/{parent}"),
            ADMIN_KEY,
            json!({ "parent": child }),
        )
        .await;
    assert_problem(&cycle, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(cycle.1["detail"].as_str().unwrap().contains("cycle"));

    let mut missing_name = good(json!(uscc(9)));
    missing_name.as_object_mut().unwrap().remove("name");
    let response = server
        .post("/api/v1/organizations", ADMIN_KEY, missing_name)
        .await;
    assert_problem(&response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert!(response.1["detail"].as_str().unwrap().contains("name"));

    let mut unknown_field = good(json!(uscc(9)));
    unknown_field["colour"] = json!("red");
    let response = server
        .post("/api/v1/organizations", ADMIN_KEY, unknown_field)
        .await;
    assert_problem(&response, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");

    let malformed = server
        .client
        .post(format!("{}/api/v1/organizations", server.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{\"code\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");

    let not_json = server
        .client
        .post(format!("{}/api/v1/organizations", server.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    // Up to 4 MiB a body is read (this one's long name is then refused); past it, 413.
    let max = civitas_api::extract::MAX_JSON_BODY;
    for (bytes, status, code) in [
        (
            3 * 1024 * 1024,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (max + 1, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
    ] {
        let mut long_name = good(json!(uscc(9)));
        long_name["name"] = json!("");
        let padding = bytes - long_name.to_string().len();
        long_name["name"] = json!("名".repeat(padding / 3) + &"x".repeat(padding % 3));
        let body = long_name.to_string();
        assert_eq!(body.len(), bytes);
        let response = server
            .client
            .post(format!("{}/api/v1/organizations", server.base))
            .bearer_auth(ADMIN_KEY)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], code, "{problem}");
    }

    let not_found = server
        .get(&format!("/api/v1/organizations/{}", uscc(98)), ADMIN_KEY)
        .await;
    assert_problem(&not_found, StatusCode::NOT_FOUND, "not_found");
    let malformed_code = server
        .get("/api/v1/organizations/not-a-code", ADMIN_KEY)
        .await;
    assert_problem(&malformed_code, StatusCode::NOT_FOUND, "not_found");
    let bad_filter = server
        .get("/api/v1/organizations?region=12", ADMIN_KEY)
        .await;
    assert_problem(
        &bad_filter,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_eq!(bad_filter.1["field"], "region");
    let bad_cursor = server
        .get("/api/v1/organizations?cursor=!!", ADMIN_KEY)
        .await;
    assert_eq!(bad_cursor.1["field"], "cursor");

    let no_route = server.get("/api/v1/nowhere", ADMIN_KEY).await;
    assert_problem(&no_route, StatusCode::NOT_FOUND, "no_route");
    let wrong_method = server
        .request(
            Method::PUT,
            "/api/v1/organizations",
            Some(ADMIN_KEY),
            Some(json!({})),
        )
        .await;
    assert_problem(
        &wrong_method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );

    // None of the failed requests left anything behind.
    let (_, all) = server.get("/api/v1/organizations", ADMIN_KEY).await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        server
            .get(&format!("/api/v1/organizations/{parent}"), ADMIN_KEY)
            .await
            .1["parent"],
        Value::Null
    );
}

async fn systems_lifecycle(server: TestServer) {
    let org = server.create_org(1, None).await;
    let path = format!("/api/v1/organizations/{org}/systems");
    let (status, system) = server
        .post(&path, ADMIN_KEY, json!({ "code": "rental-portal", "name": "租赁门户", "description": "citizen portal", "consumes": true }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{system}");
    assert_eq!(
        (system["consumes"].as_bool(), system["provides"].as_bool()),
        (Some(true), Some(false))
    );
    server
        .post(
            &path,
            ADMIN_KEY,
            json!({ "code": "fund-core", "name": "公积金核心", "provides": true }),
        )
        .await;

    let duplicate = server
        .post(
            &path,
            ADMIN_KEY,
            json!({ "code": "fund-core", "name": "x" }),
        )
        .await;
    assert_problem(&duplicate, StatusCode::CONFLICT, "duplicate");
    let bad_code = server
        .post(
            &path,
            ADMIN_KEY,
            json!({ "code": "Fund Core", "name": "x" }),
        )
        .await;
    assert_problem(&bad_code, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(bad_code.1["field"], "code");
    let empty_name = server
        .post(&path, ADMIN_KEY, json!({ "code": "x", "name": "  " }))
        .await;
    assert_eq!(empty_name.1["field"], "name");
    let no_org = server
        .post(
            &format!("/api/v1/organizations/{}/systems", uscc(9)),
            ADMIN_KEY,
            json!({ "code": "x", "name": "x" }),
        )
        .await;
    assert_problem(&no_org, StatusCode::NOT_FOUND, "not_found");

    let (status, updated) = server
        .patch(
            &format!("{path}/rental-portal"),
            ADMIN_KEY,
            json!({ "provides": true, "description": "portal and api" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["provides"], true);
    assert_eq!(updated["description"], "portal and api");

    let (_, providers) = server
        .get(&format!("{path}?provides=true"), ADMIN_KEY)
        .await;
    assert_eq!(providers["items"].as_array().unwrap().len(), 2);
    let (_, consumers) = server
        .get(&format!("{path}?consumes=true"), ADMIN_KEY)
        .await;
    assert_eq!(consumers["items"].as_array().unwrap().len(), 1);

    let (status, system) = server.delete(&format!("{path}/fund-core"), ADMIN_KEY).await;
    assert_eq!((status, &system["active"]), (StatusCode::OK, &json!(false)));
    let (_, system) = server.get(&format!("{path}/fund-core"), ADMIN_KEY).await;
    assert_eq!(system["active"], false);
    let (status, _) = server
        .post(
            &format!("{path}/fund-core/reactivate"),
            ADMIN_KEY,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let missing = server.get(&format!("{path}/nothing"), ADMIN_KEY).await;
    assert_problem(&missing, StatusCode::NOT_FOUND, "not_found");
}

async fn users_keys_and_login(server: TestServer) {
    let org = server.create_org(1, None).await;
    let (status, user) = server
        .post(
            "/api/v1/users",
            ADMIN_KEY,
            json!({ "name": "wang.fang", "display_name": "王芳", "role": "data_officer", "organization": org, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["role"], "data_officer");
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let short = server
        .post("/api/v1/users", ADMIN_KEY, json!({ "name": "li", "display_name": "李", "role": "developer", "organization": org, "password": "short" }))
        .await;
    assert_eq!(short.1["field"], "password");
    let unscoped = server
        .post(
            "/api/v1/users",
            ADMIN_KEY,
            json!({ "name": "li", "display_name": "李", "role": "developer" }),
        )
        .await;
    assert_eq!(unscoped.1["field"], "organization");
    let bad_role = server
        .post(
            "/api/v1/users",
            ADMIN_KEY,
            json!({ "name": "li", "display_name": "李", "role": "king", "organization": org }),
        )
        .await;
    assert_eq!(bad_role.1["field"], "role");
    let duplicate = server.post("/api/v1/users", ADMIN_KEY, json!({ "name": "wang.fang", "display_name": "x", "role": "developer", "organization": org })).await;
    assert_problem(&duplicate, StatusCode::CONFLICT, "duplicate");

    let wrong_password = server
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "name": "wang.fang", "password": "wrong password!" })),
        )
        .await;
    assert_problem(
        &wrong_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    // An unknown or malformed name is refused alike (after as long a check).
    for name in ["nobody.here", "not a name!"] {
        let unknown = server
            .request(
                Method::POST,
                "/api/v1/login",
                None,
                Some(json!({ "name": name, "password": "correct horse battery" })),
            )
            .await;
        assert_problem(&unknown, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let (status, session) = server
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "name": "wang.fang", "password": "correct horse battery" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    let session_key = session["key"].as_str().unwrap();
    assert!(session_key.starts_with("cvk_"));
    assert!(session["api_key"]["expires_at"].is_string());
    let (status, me) = server.get("/api/v1/me", session_key).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("wang.fang"), Some("data_officer"))
    );

    // Self-service keys, listed without the secret.
    let (status, own) = server
        .post(
            "/api/v1/keys",
            session_key,
            json!({ "label": "laptop", "expires_in_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{own}");
    let (_, listed) = server.get("/api/v1/keys", session_key).await;
    let labels: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["laptop", "session"]);
    assert!(
        !listed.to_string().contains(own["key"].as_str().unwrap()),
        "keys are never shown again"
    );

    // A system key.
    server.create_system(&org, "portal").await;
    let (status, system_key) = server
        .post("/api/v1/keys", ADMIN_KEY, json!({ "owner": { "kind": "system", "organization": org, "system": "portal" }, "label": "prod" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{system_key}");
    let (status, me) = server
        .get("/api/v1/me", system_key["key"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, me["kind"].as_str()),
        (StatusCode::OK, Some("system"))
    );
    let (_, org_keys) = server
        .get(&format!("/api/v1/keys?organization={org}"), ADMIN_KEY)
        .await;
    assert_eq!(org_keys["items"].as_array().unwrap().len(), 3);
    let ghost = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "system", "organization": org, "system": "ghost" } }),
        )
        .await;
    assert_problem(&ghost, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");

    let (status, updated) = server
        .patch(
            "/api/v1/users/wang.fang",
            ADMIN_KEY,
            json!({ "role": "org_admin", "display_name": "王芳芳" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(updated["role"], "org_admin");
    let (_, in_org) = server
        .get(&format!("/api/v1/users?organization={org}"), ADMIN_KEY)
        .await;
    assert_eq!(in_org["items"].as_array().unwrap().len(), 1);

    let (status, _) = server.delete("/api/v1/users/wang.fang", ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK);
    let stopped = server.get("/api/v1/me", session_key).await;
    assert_problem(&stopped, StatusCode::UNAUTHORIZED, "unauthenticated");
    let no_login = server
        .request(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "name": "wang.fang", "password": "correct horse battery" })),
        )
        .await;
    assert_problem(&no_login, StatusCode::UNAUTHORIZED, "invalid_credentials");
}

async fn restart_keeps_everything_and_revocation_is_immediate(server: TestServer) {
    let org = server.create_org(1, None).await;
    server.create_system(&org, "portal").await;
    let key = server.user_with_key("dev", "developer", Some(&org)).await;
    assert_eq!(server.get("/api/v1/me", &key).await.0, StatusCode::OK);

    let server = server.restart().await;
    let (status, organization) = server
        .get(&format!("/api/v1/organizations/{org}"), &key)
        .await;
    assert_eq!(status, StatusCode::OK, "{organization}");
    assert_eq!(
        server
            .get(&format!("/api/v1/organizations/{org}/systems/portal"), &key)
            .await
            .0,
        StatusCode::OK
    );
    let (status, node_before) = server.get("/api/v1/node", &key).await;
    assert_eq!(status, StatusCode::OK);

    let (_, keys) = server.get("/api/v1/keys?user=dev", ADMIN_KEY).await;
    let id = keys["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, revoked) = server
        .delete(&format!("/api/v1/keys/{id}"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    let rejected = server.get("/api/v1/me", &key).await;
    assert_problem(&rejected, StatusCode::UNAUTHORIZED, "unauthenticated");
    let twice = server
        .delete(&format!("/api/v1/keys/{id}"), ADMIN_KEY)
        .await;
    assert_problem(&twice, StatusCode::CONFLICT, "conflict");

    let server = server.restart().await;
    assert_eq!(
        server.get("/api/v1/me", &key).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, node_after) = server.get("/api/v1/node", ADMIN_KEY).await;
    assert_eq!(
        node_before["public_key"], node_after["public_key"],
        "the node key is kept"
    );
}

async fn operations_endpoints(server: TestServer) {
    let healthz = server
        .client
        .get(format!("{}/healthz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    let readyz = server
        .client
        .get(format!("{}/readyz", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), StatusCode::OK);

    let missing_key = server
        .request(Method::GET, "/api/v1/organizations", None, None)
        .await;
    assert_problem(&missing_key, StatusCode::UNAUTHORIZED, "unauthenticated");
    let bad_key = server.get("/api/v1/organizations", "cvk_nonsense").await;
    assert_problem(&bad_key, StatusCode::UNAUTHORIZED, "unauthenticated");

    let metrics = server.get_text("/metrics").await;
    assert!(metrics.contains("civitas_http_requests_total{route=\"/api/v1/organizations\",method=\"GET\",status=\"401\"} 2"), "{metrics}");
    assert!(metrics.contains("civitas_http_request_duration_seconds_bucket"));

    let (status, spec) = server
        .request(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/api/v1/organizations",
        "/api/v1/organizations/{org_code}/systems/{system_code}",
        "/api/v1/keys",
        "/api/v1/users/{name}",
        "/api/v1/node",
    ] {
        assert!(spec["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    let docs = server
        .client
        .get(format!("{}/docs/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger"));

    let (status, node) = server
        .request(Method::GET, "/api/v1/node", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(node["code"], "cn-js-nanjing");
    assert_eq!(
        node["public_key"].as_str().unwrap().len(),
        44,
        "32 bytes in base64"
    );

    let gateway = server.running.as_ref().unwrap().gateway_addr;
    let reserved = server
        .client
        .get(format!("http://{gateway}/x/a/b/c"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        reserved.status(),
        StatusCode::UNAUTHORIZED,
        "the gateway listener asks for a system key"
    );
}

async fn changes_are_audited(server: TestServer) {
    let org = server.create_org(1, None).await;
    server.create_system(&org, "portal").await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    let (status, events) = server
        .get(&format!("/api/v1/audit/events?object_id={org}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert_eq!(events["items"][0]["action"], "organization.create");
    assert_eq!(events["items"][0]["actor"], "admin");
    let (_, all) = server.get("/api/v1/audit/events?limit=100", &auditor).await;
    let actions: Vec<_> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for expected in [
        "organization.create",
        "system.create",
        "user.create",
        "api_key.create",
    ] {
        assert!(
            actions.iter().any(|a| a == expected),
            "{expected} missing from {actions:?}"
        );
    }
    let developer = server.user_with_key("dev", "developer", Some(&org)).await;
    let forbidden = server.get("/api/v1/audit/events", &developer).await;
    assert_problem(&forbidden, StatusCode::FORBIDDEN, "forbidden");
}

/// PostgreSQL cannot store NUL in text (SQLite can): a NUL in input is the client's mistake on
/// either backend, answered 422 naming the field and changing nothing, never a 500.
async fn text_with_nul_is_invalid_input(server: TestServer) {
    let org = server.create_org(1, None).await;
    let path = format!("/api/v1/organizations/{org}");
    let renamed = server
        .patch(&path, ADMIN_KEY, json!({ "name": "数据\u{0}局" }))
        .await;
    assert_problem(&renamed, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(renamed.1["field"], "name", "{}", renamed.1);
    let (_, unchanged) = server.get(&path, ADMIN_KEY).await;
    assert_eq!(unchanged["name"], "测试局1", "{unchanged}");
    let tab = server
        .patch(&path, ADMIN_KEY, json!({ "name_en": "Data\tBureau" }))
        .await;
    assert_problem(&tab, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(tab.1["field"], "name_en", "{}", tab.1);

    let systems = format!("{path}/systems");
    let described = server
        .post(
            &systems,
            ADMIN_KEY,
            json!({ "code": "portal", "name": "门户", "description": "a\u{0}b" }),
        )
        .await;
    assert_problem(
        &described,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_field",
    );
    assert_eq!(described.1["field"], "description", "{}", described.1);
    let (_, listed) = server.get(&systems, ADMIN_KEY).await;
    assert_eq!(listed["items"], json!([]), "{listed}");

    // A field no validator checks is refused alike on both stores, naming the field.
    let labelled = server
        .post("/api/v1/keys", ADMIN_KEY, json!({ "label": "a\u{0}b" }))
        .await;
    assert_problem(&labelled, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(labelled.1["field"], "label", "{}", labelled.1);
    let (_, keys) = server.get("/api/v1/keys", ADMIN_KEY).await;
    assert!(
        !keys.to_string().contains("a\\u0000b"),
        "no key was issued: {keys}"
    );
    // A backslash before the letters u0000 is text, not a NUL.
    let (status, key) = server
        .post("/api/v1/keys", ADMIN_KEY, json!({ "label": "C:\\u0000" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");

    // So is a query parameter, which the stores would match differently.
    let queried = server
        .get("/api/v1/organizations?cursor=a%00b", ADMIN_KEY)
        .await;
    assert_problem(&queried, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(queried.1["field"], "cursor", "{}", queried.1);

    // And a path parameter that reaches a store as it is: a key id, a certificate serial.
    for (method, path, field) in [
        (Method::GET, "/api/v1/keys/a%00b", "id"),
        (Method::DELETE, "/api/v1/keys/a%00b", "id"),
        (Method::GET, "/api/v1/certificates/a%00b", "serial"),
        (Method::POST, "/api/v1/certificates/a%00b/revoke", "serial"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let refused = server
            .request(method.clone(), path, Some(ADMIN_KEY), body)
            .await;
        assert_problem(&refused, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(refused.1["field"], field, "{method} {path}: {}", refused.1);
    }
    // Bytes that are not UTF-8 once decoded are refused with a problem document too.
    let garbled = server.get("/api/v1/keys/%FF%FE", ADMIN_KEY).await;
    assert_problem(&garbled, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}

/// A description is capped at 4,000 characters when it is changed, as when it is registered.
async fn system_descriptions_are_capped_on_update(server: TestServer) {
    let org = server.create_org(1, None).await;
    server.create_system(&org, "portal").await;
    let path = format!("/api/v1/organizations/{org}/systems/portal");
    let longest = "述".repeat(4000);
    let (status, system) = server
        .patch(&path, ADMIN_KEY, json!({ "description": longest }))
        .await;
    assert_eq!(status, StatusCode::OK, "{system}");
    let too_long = server
        .patch(
            &path,
            ADMIN_KEY,
            json!({ "description": "述".repeat(4001) }),
        )
        .await;
    assert_problem(&too_long, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(too_long.1["field"], "description", "{}", too_long.1);
    let (_, unchanged) = server.get(&path, ADMIN_KEY).await;
    assert_eq!(unchanged["description"], json!(longest));
}

/// Deactivating an organization stops its users as deactivating each of them would: their keys
/// stop working at once (the server forgets the keys it remembered), they cannot sign in, and no
/// user is made in it or moved into it. Reactivated, it has its users back.
async fn a_deactivated_organization_s_users_stop_until_it_is_reactivated(server: TestServer) {
    let org = server.create_org(1, None).await;
    let elsewhere = server.create_org(2, None).await;
    let (status, body) = server
        .post(
            "/api/v1/users",
            ADMIN_KEY,
            json!({ "name": "wang.fang", "display_name": "王芳", "role": "data_officer", "organization": org, "password": "correct horse battery" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "user", "name": "wang.fang" }, "label": "laptop" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().unwrap().to_owned();
    let other_key = server
        .user_with_key("li.lei", "developer", Some(&elsewhere))
        .await;
    let login = || {
        server.request(
            Method::POST,
            "/api/v1/login",
            None,
            Some(json!({ "name": "wang.fang", "password": "correct horse battery" })),
        )
    };
    assert_eq!(login().await.0, StatusCode::CREATED);
    // Remembered as valid for a second from here.
    assert_eq!(server.get("/api/v1/me", &key).await.0, StatusCode::OK);

    let (status, body) = server
        .delete(&format!("/api/v1/organizations/{org}"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let stopped = server.get("/api/v1/me", &key).await;
    assert_problem(&stopped, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_problem(
        &login().await,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let created = server
        .post(
            "/api/v1/users",
            ADMIN_KEY,
            json!({ "name": "late", "display_name": "迟", "role": "developer", "organization": org }),
        )
        .await;
    assert_problem(&created, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(created.1["field"], "organization");
    let moved = server
        .patch(
            "/api/v1/users/li.lei",
            ADMIN_KEY,
            json!({ "organization": org }),
        )
        .await;
    assert_problem(&moved, StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(moved.1["field"], "organization");
    let (_, li) = server.get("/api/v1/users/li.lei", &other_key).await;
    assert_eq!(li["organization"], elsewhere.to_string());

    let (status, body) = server
        .post(
            &format!("/api/v1/organizations/{org}/reactivate"),
            ADMIN_KEY,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(server.get("/api/v1/me", &key).await.0, StatusCode::OK);
    assert_eq!(login().await.0, StatusCode::CREATED);
}
