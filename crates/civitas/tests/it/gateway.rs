//! The exchange gateway end to end, with real upstream HTTP servers started by the tests.

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, extract::Path, routing::get};
use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_ledger::Receipt;
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer, on_both_stores};

on_both_stores!(
    granted_call_is_filtered_masked_and_receipted,
    denials_limits_and_revocation,
    a_bulk_read_s_row_count_is_read_or_refused,
    upstream_failures_and_circuit_breaker,
    video_playback_urls,
    connections_are_spread_over_the_gateway_threads,
    the_gateway_answers_health_and_readiness_probes,
    problem_types_link_to_their_documentation,
    client_certificates_are_listed_and_read,
    the_daily_quota_holds_across_a_restart,
    the_gateway_s_own_headers_cannot_be_forged,
    a_call_its_consumer_abandons_still_ends_and_is_recorded,
    an_open_circuit_does_not_use_up_the_grant_s_calls,
    service_upstreams_are_for_the_provider,
    an_answer_about_many_people_is_recorded_whole,
    overlapping_field_mappings_are_refused,
    a_mapping_suggested_from_a_real_world_description_registers,
    unreadable_openapi_descriptions_are_refused,
    a_stored_service_s_overlapping_mappings_are_reported,
);

pub const CITIZEN: &str = "11010519491231002X";

/// A real upstream: a housing-fund service with a slow and a failing endpoint.
pub async fn start_upstream() -> SocketAddr {
    start_upstream_at("127.0.0.1:0".parse().unwrap()).await
}

/// [`start_upstream`] on the given address.
pub async fn start_upstream_at(address: SocketAddr) -> SocketAddr {
    let app = Router::new()
        .route(
            "/accounts/{id}",
            get(|Path(id): Path<String>| async move {
                axum::Json(json!({
                    "id_number": id,
                    "name": "欧阳娜娜",
                    "balance": 36512.4,
                    "monthly_deposit": 1824.0,
                    "internal_note": "never leaves the gateway",
                    "deposits": [{ "month": "2026-10", "amount": 1824.0 }, { "month": "2026-09", "amount": 1824.0 }]
                }))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                axum::Json(json!({}))
            }),
        )
        .route(
            "/slow-body",
            get(|| async {
                // Headers at once, then half the JSON, then nothing for three seconds.
                let chunks = futures_util::stream::iter([
                    Ok::<_, std::io::Error>(bytes::Bytes::from_static(b"{\"id_number\": ")),
                ])
                .chain(futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    Ok(bytes::Bytes::from_static(b"\"x\"}"))
                }));
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    axum::body::Body::from_stream(chunks),
                )
            }),
        )
        .route("/text", get(|| async { "plain text cannot be filtered" }))
        .route(
            "/gone",
            get(|| async {
                (
                    axum::http::StatusCode::NOT_FOUND,
                    format!("no such account for {CITIZEN}, Zhang San"),
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A port on which nothing listens.
pub fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

pub struct City {
    pub provider: String,
    pub consumer: String,
    pub consumer_key: String,
    pub other_key: String,
    pub officer: String,
    pub grant: String,
}

/// Provider organization 1 publishes a conditional interface resource served by `upstream`;
/// consumer organization 2's system `portal` is granted id_number, name and balance (name and
/// id_number masked); its system `other` has no grant.
pub async fn city(server: &TestServer, upstream: SocketAddr, grant_terms: Value) -> City {
    let provider = server.create_org(1, None).await.to_string();
    let consumer = server.create_org(2, None).await.to_string();
    server
        .create_system(&provider.parse().unwrap(), "fund-core")
        .await;
    server
        .create_system(&consumer.parse().unwrap(), "portal")
        .await;
    server
        .create_system(&consumer.parse().unwrap(), "other")
        .await;
    let officer = server
        .user_with_key("officer", "data_officer", Some(&provider.parse().unwrap()))
        .await;
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let resource = json!({
        "code": "320100-B01-000001", "kind": "interface", "classification": "B01",
        "name": "住房公积金账户信息", "provider": provider, "provider_system": "fund-core",
        "format": "json",
        "items": [
            { "code": "id_number", "name": "公民身份号码", "data_type": "string", "sensitivity": "personal", "mask": "citizen_id" },
            { "code": "name", "name": "姓名", "data_type": "string", "sensitivity": "personal", "mask": "name" },
            { "code": "balance", "name": "账户余额", "data_type": "decimal", "sensitivity": "internal" },
            { "code": "monthly_deposit", "name": "月缴存额", "data_type": "decimal", "sensitivity": "internal" },
            { "code": "deposit_month", "name": "缴存月份", "data_type": "string", "sensitivity": "internal" }
        ],
        "sharing": { "type": "conditional", "conditions": "仅限政务服务", "method": "interface" },
        "open_type": "closed", "update_cycle": "realtime"
    });
    let (status, body) = server.post("/api/v1/resources", &officer, resource).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let service = json!({
        "code": "accounts", "resource": "320100-B01-000001", "upstream": format!("http://{upstream}"),
        "methods": ["GET"], "paths": ["/accounts/{id}", "/slow", "/slow-body", "/text", "/gone"], "timeout_ms": 300,
        "fields": [
            { "item": "id_number", "path": "$.id_number" },
            { "item": "name", "path": "$.name" },
            { "item": "balance", "path": "$.balance" },
            { "item": "monthly_deposit", "path": "$.monthly_deposit" },
            { "item": "deposit_month", "path": "$.deposits[*].month" }
        ]
    });
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/organizations/{provider}/systems/fund-core/services/accounts"),
            Some(&officer),
            Some(service),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, outcome) = server
        .post(
            "/api/v1/applications",
            &developer,
            json!({
                "consumer": { "organization": consumer, "system": "portal" }, "resource": "320100-B01-000001",
                "items": ["id_number", "name", "balance", "deposit_month"], "purpose": "租房提取核验", "legal_basis": "《住房公积金管理条例》", "valid_days": 30
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{outcome}");
    let id = outcome["application"]["id"].as_str().unwrap();
    let (status, approved) = server
        .post(
            &format!("/api/v1/applications/{id}/approve"),
            &officer,
            grant_terms,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let key = |system: &str| json!({ "owner": { "kind": "system", "organization": consumer, "system": system }, "label": "gateway" });
    let (_, consumer_key) = server.post("/api/v1/keys", ADMIN_KEY, key("portal")).await;
    let (_, other_key) = server.post("/api/v1/keys", ADMIN_KEY, key("other")).await;
    City {
        provider,
        consumer,
        consumer_key: consumer_key["key"].as_str().unwrap().to_owned(),
        other_key: other_key["key"].as_str().unwrap().to_owned(),
        officer,
        grant: approved["grant"]["id"].as_str().unwrap().to_owned(),
    }
}

pub fn gateway_url(server: &TestServer) -> String {
    format!("http://{}", server.running.as_ref().unwrap().gateway_addr)
}

/// Calls the gateway until `ready` holds for the answer, for at most `within`: changes reach the
/// gateway's memory within a second.
pub async fn call_until(
    server: &TestServer,
    key: &str,
    path: &str,
    within: Duration,
    ready: impl Fn(StatusCode) -> bool,
) -> (StatusCode, reqwest::header::HeaderMap, String, Duration) {
    let started = Instant::now();
    loop {
        let response = server
            .client
            .get(format!("{}{path}", gateway_url(server)))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        if ready(status) || started.elapsed() > within {
            return (status, headers, text, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the gateway once.
pub async fn call_once(
    server: &TestServer,
    key: &str,
    path: &str,
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let (status, headers, text, _) = call_until(server, key, path, Duration::ZERO, |_| true).await;
    (status, headers, text)
}

/// Calls the gateway until it answers with `expected`, for at most `within`, and insists that it
/// did; the answer's headers and text.
pub async fn answered_with(
    server: &TestServer,
    key: &str,
    path: &str,
    within: Duration,
    expected: StatusCode,
) -> (reqwest::header::HeaderMap, String) {
    let (status, headers, text, _) =
        call_until(server, key, path, within, |status| status == expected).await;
    assert_eq!(status, expected, "{path}: {text}");
    (headers, text)
}

/// Calls until the gateway answers 200 (its routes settle within two seconds of a change), and
/// hands back the answer's headers and body.
pub async fn call_ok(
    server: &TestServer,
    key: &str,
    path: &str,
) -> (reqwest::header::HeaderMap, String) {
    let (status, headers, text, _) = call_until(server, key, path, Duration::from_secs(2), |s| {
        s == StatusCode::OK
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    (headers, text)
}

/// The ledger index an answer's `Civitas-Receipt` header names.
pub fn receipt_index(headers: &reqwest::header::HeaderMap) -> u64 {
    headers["civitas-receipt"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// What the upstream's account of [`CITIZEN`] becomes for the city's consumer system, under its
/// grant: the items granted, personal ones masked.
fn granted_answer() -> Value {
    json!({
        "id_number": "110105********002X",
        "name": "欧阳**",
        "balance": 36512.4,
        "deposits": [{ "month": "2026-10" }, { "month": "2026-09" }]
    })
}

async fn granted_call_is_filtered_masked_and_receipted(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let (headers, text) = call_ok(&server, &city.consumer_key, &path).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        granted_answer(),
        "not granted (monthly_deposit, amounts) and unmapped (internal_note) fields are gone; personal ones are masked"
    );
    let exchange_id = headers["civitas-exchange-id"].to_str().unwrap().to_owned();
    let index = receipt_index(&headers);

    // The receipt verifies with the node's verifier key alone, against the record's bytes.
    let auditor = server
        .user_with_key("auditor", "auditor", Some(&city.provider.parse().unwrap()))
        .await;
    let (_, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
        .await;
    let exchange = &record["record"];
    assert_eq!(exchange["type"], "exchange");
    assert_eq!(exchange["exchange_id"], exchange_id.as_str());
    assert_eq!(exchange["decision"], "allow");
    assert_eq!(exchange["consumer"], format!("{}/portal", city.consumer));
    assert_eq!(exchange["grant"], city.grant.as_str());
    assert_eq!(
        exchange["path"], "/accounts/110105********002X",
        "no plaintext ID number in the ledger"
    );
    assert_eq!(
        exchange["items"],
        json!(["balance", "deposit_month", "id_number", "name"])
    );
    assert_eq!(exchange["masked"], json!(["id_number", "name"]));
    assert_eq!(exchange["subjects"].as_array().unwrap().len(), 1);
    assert!(!record.to_string().contains(CITIZEN));
    let (status, receipt) = server
        .get(&format!("/api/v1/ledger/receipts/{index}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK);
    let receipt: Receipt = serde_json::from_value(receipt).unwrap();
    let (_, node) = server.get("/api/v1/node", &auditor).await;
    let bytes = STANDARD.decode(record["bytes"].as_str().unwrap()).unwrap();
    receipt
        .verify(Some(&bytes), node["verifier_key"].as_str().unwrap())
        .expect("the receipt verifies");

    // Who received this person's data: not a system whose call for it was refused.
    // (The key reaches the gateway within a second of being made.)
    answered_with(
        &server,
        &city.other_key,
        &path,
        Duration::from_secs(2),
        StatusCode::FORBIDDEN,
    )
    .await;
    let (status, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    // The report names the person by the keyed hash the exchange record lists.
    assert_eq!(report["subject"], exchange["subjects"][0]);
    let accesses = report["accesses"].as_array().unwrap();
    assert_eq!(accesses.len(), 1);
    assert_eq!(accesses[0]["subject"], report["subject"]);
    assert_eq!(accesses[0]["consumer"], format!("{}/portal", city.consumer));
    assert_eq!(accesses[0]["grant"], city.grant.as_str());
    assert_eq!(accesses[0]["ledger_index"], index);
    assert_eq!(accesses[0]["exchange_id"], exchange_id.as_str());
    assert_eq!(accesses[0]["at"], exchange["at"]);
    let inline: Receipt = serde_json::from_value(accesses[0]["receipt"].clone()).unwrap();
    assert_eq!(inline.index, index);
    inline
        .verify(Some(&bytes), node["verifier_key"].as_str().unwrap())
        .expect("the report's receipt verifies against the exchange record");
    assert!(
        inline
            .verify(Some(b"{}"), node["verifier_key"].as_str().unwrap())
            .is_err()
    );
    assert_eq!(report["next_cursor"], Value::Null);
    // Page by page, oldest first.
    let mut indexes = vec![index];
    for _ in 0..2 {
        let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
        indexes.push(receipt_index(&headers));
    }
    let (status, first) = server
        .get(
            &format!("/api/v1/audit/subjects/{CITIZEN}?limit=2"),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let (status, second) = server
        .get(
            &format!("/api/v1/audit/subjects/{CITIZEN}?limit=2&cursor={cursor}"),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["next_cursor"], Value::Null);
    let paged: Vec<u64> = [&first, &second]
        .iter()
        .flat_map(|page| page["accesses"].as_array().unwrap())
        .map(|access| access["ledger_index"].as_u64().unwrap())
        .collect();
    assert_eq!(paged, indexes);
    // Cursors of "not-a-number" and of 2^64 - 1, past any ledger index the store can hold.
    for cursor in ["bm90LWEtbnVtYmVy", "MTg0NDY3NDQwNzM3MDk1NTE2MTU"] {
        let (status, bad) = server
            .get(
                &format!("/api/v1/audit/subjects/{CITIZEN}?cursor={cursor}"),
                &auditor,
            )
            .await;
        assert_eq!(
            (status, bad["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")),
            "{bad}"
        );
    }
    let (status, bad) = server
        .get("/api/v1/audit/subjects/110105194912310021", &auditor)
        .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("id_number"))
    );
    let developer = server
        .user_with_key("dev2", "developer", Some(&city.consumer.parse().unwrap()))
        .await;
    assert_eq!(
        server
            .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &developer)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // Usage and metrics.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, usage) = server
        .get(
            &format!("/api/v1/grants/{}/usage", city.grant),
            &city.officer,
        )
        .await;
    assert_eq!(usage[0]["calls"], 3, "{usage}");
    let day = usage[0]["day"].as_str().unwrap().to_owned();
    let grant_usage = |query: String| {
        let path = format!("/api/v1/grants/{}/usage?{query}", city.grant);
        let officer = city.officer.clone();
        let server = &server;
        async move { server.get(&path, &officer).await }
    };
    let (_, same) = grant_usage(format!("from={day}&to={day}")).await;
    assert_eq!(same, usage, "one day's span holds that day");
    let (status, before) = grant_usage("to=2000-01-01".into()).await;
    assert_eq!((status, before), (StatusCode::OK, json!([])));
    for (query, field) in [
        ("from=2026-12-02&to=2026-12-01", "to"),
        ("from=yesterday", "from"),
    ] {
        let (status, problem) = grant_usage(query.into()).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{problem}"
        );
    }
    // The provider's report sums the grant's days; the consumer's shows the same grant.
    let (status, report) = server
        .get(
            &format!("/api/v1/usage?organization={}&from={day}", city.provider),
            &city.officer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(
        (&report["grants"], &report["calls"], &report["side"]),
        (&json!(1), &json!(3), &json!("provider")),
        "{report}"
    );
    let item = &report["items"][0];
    assert_eq!(item["grant"], json!(city.grant), "{report}");
    assert_eq!(
        item["consumer"],
        json!({ "organization": city.consumer, "system": "portal" }),
        "{report}"
    );
    assert_eq!(
        (
            &item["calls"],
            &item["days"],
            &item["first_day"],
            &item["last_day"]
        ),
        (&json!(3), &json!(1), &json!(day), &json!(day)),
        "{report}"
    );
    let auditor = server
        .user_with_key(
            "usage-auditor",
            "auditor",
            Some(&city.provider.parse().unwrap()),
        )
        .await;
    let (status, consumed) = server
        .get(
            &format!("/api/v1/usage?organization={}&side=consumer", city.consumer),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{consumed}");
    assert_eq!(consumed["items"], report["items"], "{consumed}");
    let (_, none) = server
        .get(
            &format!("/api/v1/usage?organization={}", city.consumer),
            &auditor,
        )
        .await;
    assert_eq!(
        (&none["grants"], &none["calls"], &none["items"]),
        (&json!(0), &json!(0), &json!([])),
        "the consumer provides nothing: {none}"
    );
    let (status, _) = server
        .get(
            &format!("/api/v1/usage?organization={}&side=consumer", city.consumer),
            &city.officer,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not the officer's organization"
    );
    let (status, problem) = server
        .get(
            &format!("/api/v1/usage?organization={}&side=both", city.provider),
            &city.officer,
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("side")),
        "{problem}"
    );
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "civitas_gateway_exchanges_total{{consumer=\"{}/portal\"",
            city.consumer
        )),
        "{metrics}"
    );
    // Every exchange counted waited for its ledger append once.
    let exchanges: f64 = metric_values(&metrics, "civitas_gateway_exchanges_total{").sum();
    let waits: f64 = metric_values(&metrics, "civitas_gateway_ledger_wait_seconds_count ").sum();
    assert!(exchanges >= 1.0, "{metrics}");
    assert_eq!(waits, exchanges, "{metrics}");

    // A non-JSON answer cannot be filtered, so it does not leave.
    let (status, _, text, _) = call_until(
        &server,
        &city.consumer_key,
        &format!("/x/{}/fund-core/accounts/text", city.provider),
        Duration::ZERO,
        |_| true,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("unfilterable_answer"));
    // An error answer keeps the provider's status, but its body, which could echo personal data
    // the grant masks, is withheld; the answer is the provider's, not a refusal of the gateway.
    let (status, headers, text, _) = call_until(
        &server,
        &city.consumer_key,
        &format!("/x/{}/fund-core/accounts/gone", city.provider),
        Duration::ZERO,
        |_| true,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    assert!(
        !text.contains(CITIZEN) && !text.contains("Zhang"),
        "the error page leaked: {text}"
    );
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["code"], "upstream_body_withheld", "{problem}");
    assert_eq!(
        headers[reqwest::header::CONTENT_TYPE],
        "application/problem+json"
    );
    assert!(headers.get("civitas-refusal").is_none(), "{headers:?}");
    let index = receipt_index(&headers);
    let (_, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
        .await;
    let record = &record["record"];
    assert_eq!(
        record["exchange_id"],
        headers["civitas-exchange-id"].to_str().unwrap()
    );
    assert_eq!(record["status"], 404, "{record}");
    assert_eq!(record["items"], json!([]), "{record}");
}

async fn denials_limits_and_revocation(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(
        &server,
        upstream,
        json!({ "requests_per_second": 2, "calls_per_day": 1000 }),
    )
    .await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    call_ok(&server, &city.consumer_key, &path).await;

    // No grant: 403, recorded in the ledger.
    let (status, headers, text, _) = call_until(
        &server,
        &city.other_key,
        &path,
        Duration::from_secs(2),
        |s| s != StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (problem["code"].as_str(), problem["rule"].as_str()),
        (Some("denied"), Some("no_grant"))
    );
    let index = receipt_index(&headers);
    let (_, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), ADMIN_KEY)
        .await;
    assert_eq!(record["record"]["decision"], "deny");
    assert_eq!(record["record"]["rule"], "no_grant");

    // Unauthenticated and unknown.
    let response = server
        .client
        .get(format!("{}{path}", gateway_url(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = server
        .client
        .get(format!("{}{path}", gateway_url(&server)))
        .bearer_auth("cvk_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let (status, _, _, _) = call_until(
        &server,
        &city.consumer_key,
        &format!("/x/{}/fund-core/nothing/x", city.provider),
        Duration::ZERO,
        |_| true,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _, _) = call_until(
        &server,
        &city.consumer_key,
        &format!("/x/{}/fund-core/accounts/elsewhere", city.provider),
        Duration::ZERO,
        |_| true,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Past the grant's rate: 429 with Retry-After.
    let mut limited = None;
    for _ in 0..10 {
        let response = server
            .client
            .get(format!("{}{path}", gateway_url(&server)))
            .bearer_auth(&city.consumer_key)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("a burst past 2 requests per second is limited");
    assert!(limited.headers().contains_key("retry-after"));
    let problem: Value = limited.json().await.unwrap();
    assert_eq!(problem["code"], "rate_limited");

    // A revoked grant stops within a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = server
        .post(
            &format!("/api/v1/grants/{}/revoke", city.grant),
            &city.officer,
            json!({ "reason": "用途结束" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text, elapsed) = call_until(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        |s| s == StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert!(
        elapsed < Duration::from_secs(1),
        "revocation took {elapsed:?}"
    );
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert!(
        problem["rule"]
            .as_str()
            .unwrap()
            .starts_with("grant_revoked"),
        "{problem}"
    );
}

/// `Civitas-Bulk-Rows` announces a bulk read of so many rows, which platform policies may limit.
/// A value the gateway cannot read is refused, and recorded like every refusal: read as no
/// header, it would have made the bulk read an ordinary call, out of the policies' reach.
async fn a_bulk_read_s_row_count_is_read_or_refused(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            "/api/v1/policies/no-big-bulk-reads",
            Some(ADMIN_KEY),
            Some(json!({
                "description": "bulk reads of at most 1000 rows",
                "text": "forbid (principal, action, resource) when { context.bulk && context.expected_rows > 1000 };",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let url = format!(
        "{}/x/{}/fund-core/accounts/accounts/{CITIZEN}",
        gateway_url(&server),
        city.provider
    );
    let call = |rows: &'static [u8]| {
        server
            .client
            .get(&url)
            .bearer_auth(&city.consumer_key)
            .header(
                "civitas-bulk-rows",
                reqwest::header::HeaderValue::from_bytes(rows).unwrap(),
            )
            .send()
    };
    // The policy reaches the gateway within a second or two.
    let started = Instant::now();
    let big = loop {
        let response = call(b"5000").await.unwrap();
        if response.status() == StatusCode::FORBIDDEN || started.elapsed() > Duration::from_secs(3)
        {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(big.status(), StatusCode::FORBIDDEN);
    let problem: Value = big.json().await.unwrap();
    assert_eq!(problem["rule"], "policy:no-big-bulk-reads", "{problem}");
    assert_eq!(call(b"500").await.unwrap().status(), StatusCode::OK);

    for unreadable in [&b"many"[..], b"-5000", b"5e3", b"\xe5\x8d\x81"] {
        let response = call(unreadable).await.unwrap();
        let sent = String::from_utf8_lossy(unreadable);
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{sent}");
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["civitas-refusal"], "bad_header");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "bad_header", "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("civitas-bulk-rows"),
            "{problem}"
        );
        let index = receipt_index(&headers);
        let (_, record) = server
            .get(&format!("/api/v1/ledger/records/{index}"), ADMIN_KEY)
            .await;
        assert_eq!(record["record"]["decision"], "deny", "{record}");
        assert_eq!(record["record"]["rule"], "bad_header", "{record}");
    }
    // Given twice, the count is as unreadable as a word.
    let twice = server
        .client
        .get(&url)
        .bearer_auth(&city.consumer_key)
        .header("civitas-bulk-rows", "10")
        .header("civitas-bulk-rows", "5000")
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
}

async fn upstream_failures_and_circuit_breaker(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let slow = format!("/x/{}/fund-core/accounts/slow", city.provider);
    let (status, _, text, elapsed) = call_until(
        &server,
        &city.consumer_key,
        &slow,
        Duration::from_secs(2),
        |s| s == StatusCode::GATEWAY_TIMEOUT,
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    assert!(text.contains("upstream_timeout"));
    assert!(
        elapsed < Duration::from_secs(2),
        "the consumer is never left hanging"
    );
    // A JSON answer whose body stalls is cut off at the same limit: it cannot be filtered
    // before it is whole.
    let slow_body = format!("/x/{}/fund-core/accounts/slow-body", city.provider);
    let (status, _, text, elapsed) = call_until(
        &server,
        &city.consumer_key,
        &slow_body,
        Duration::ZERO,
        |_| true,
    )
    .await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    assert!(text.contains("upstream_timeout"), "{text}");
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < Duration::from_secs(2),
        "{elapsed:?}"
    );

    // Point the service at a closed port: 502, and after repeated failures a fast 503.
    let closed = format!("http://{}", closed_port());
    point_accounts_at(&server, &city, &closed).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let (_, text) = answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(2),
        StatusCode::BAD_GATEWAY,
    )
    .await;
    assert!(text.contains("upstream_refused"));
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let (status, _, _) = call_once(&server, &city.consumer_key, &path).await;
        statuses.push(status);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::SERVICE_UNAVAILABLE),
        "{statuses:?}"
    );
    let started = Instant::now();
    let (status, headers, text) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        text.contains("circuit_open") && text.contains("accounts"),
        "{text}"
    );
    assert!(headers.contains_key("retry-after"));
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "an open circuit fails fast"
    );

    // Operators see the open circuit, in the API and in the metrics.
    let name = format!("{}/fund-core/accounts", city.provider);
    let (status, circuits) = server.get("/api/v1/gateway/circuits", &city.officer).await;
    assert_eq!(status, StatusCode::OK, "{circuits}");
    let circuit = &circuits[0];
    assert_eq!(circuits.as_array().unwrap().len(), 1, "{circuits}");
    assert_eq!(circuit["service"], json!(name), "{circuits}");
    assert_eq!(circuit["state"], "open", "{circuits}");
    assert_eq!(circuit["upstream"], json!(closed), "{circuits}");
    assert!(
        circuit["consecutive_failures"].as_u64().unwrap() >= 5,
        "{circuits}"
    );
    let retry_after = circuit["retry_after_ms"].as_u64().unwrap();
    assert!((1..=5000).contains(&retry_after), "{circuits}");
    assert!(circuit["failing_since"].is_string(), "{circuits}");
    // The upstream is the provider's internal address: a consumer's developer sees the circuit
    // without it.
    let consumer_developer = key_of_user(&server, "dev").await;
    let (status, seen) = server
        .get("/api/v1/gateway/circuits", &consumer_developer)
        .await;
    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen[0]["service"], json!(name), "{seen}");
    assert_eq!(seen[0]["state"], "open", "{seen}");
    assert!(seen[0].get("upstream").is_none(), "{seen}");
    let (status, _) = server
        .request(reqwest::Method::GET, "/api/v1/gateway/circuits", None, None)
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "not for anonymous callers"
    );
    let circuit_open = |metrics: &str| {
        metric_values(
            metrics,
            &format!("civitas_gateway_circuit_open{{service=\"{name}\"}} "),
        )
        .next()
    };
    assert_eq!(circuit_open(&server.get_text("/metrics").await), Some(1.0));

    // The upstream comes back where it was; calls fail fast until the open period is over,
    // then one call probes it, and its success closes the circuit.
    let address: SocketAddr = closed.trim_start_matches("http://").parse().unwrap();
    start_upstream_at(address).await;
    let (status, _, _) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "still open");
    tokio::time::sleep(Duration::from_millis(retry_after)).await;
    let (status, _, text) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::OK, "the probe: {text}");
    let (_, circuits) = server.get("/api/v1/gateway/circuits", &city.officer).await;
    assert_eq!(circuits, json!([]));
    assert_eq!(circuit_open(&server.get_text("/metrics").await), Some(0.0));

    // A circuit opened against one upstream does not hold a service pointed at another: the
    // officer who fixes the address need not wait out the open period.
    point_accounts_at(&server, &city, &format!("http://{}", closed_port())).await;
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    point_accounts_at(&server, &city, &closed).await;
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        StatusCode::OK,
    )
    .await;
    let (_, circuits) = server.get("/api/v1/gateway/circuits", &city.officer).await;
    assert_eq!(
        circuits,
        json!([]),
        "the old upstream's breaker is forgotten"
    );
}

/// A new API key for the user `name`, issued by the platform admin.
async fn key_of_user(server: &TestServer, name: &str) -> String {
    let (status, body) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "user", "name": name } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["key"].as_str().unwrap().to_owned()
}

/// A service's upstream is an internal address, possibly with credentials: the provider's people
/// who manage its services see it, auditors and platform admins too, other readers of the
/// catalog do not.
async fn service_upstreams_are_for_the_provider(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let services = format!(
        "/api/v1/organizations/{}/systems/fund-core/services",
        city.provider
    );
    let service = format!("{services}/accounts");
    let consumer_developer = key_of_user(&server, "dev").await;
    let auditor = server
        .user_with_key("aud", "auditor", Some(&city.consumer.parse().unwrap()))
        .await;
    let expected = json!(format!("http://{upstream}"));

    for (who, key) in [
        ("the consumer's developer", consumer_developer.as_str()),
        ("a consumer system", city.consumer_key.as_str()),
    ] {
        let (status, one) = server.get(&service, key).await;
        assert_eq!(status, StatusCode::OK, "{who}: {one}");
        assert_eq!(one["code"], "accounts", "{who}: {one}");
        assert!(one.get("upstream").is_none(), "{who}: {one}");
        let (status, all) = server.get(&services, key).await;
        assert_eq!(status, StatusCode::OK, "{who}: {all}");
        assert_eq!(all[0]["code"], "accounts", "{who}: {all}");
        assert!(all[0].get("upstream").is_none(), "{who}: {all}");
    }
    for (who, key) in [
        ("the provider's officer", city.officer.as_str()),
        ("an auditor", auditor.as_str()),
        ("the platform admin", ADMIN_KEY),
    ] {
        let (status, one) = server.get(&service, key).await;
        assert_eq!(
            (status, &one["upstream"]),
            (StatusCode::OK, &expected),
            "{who}: {one}"
        );
        let (status, all) = server.get(&services, key).await;
        assert_eq!(
            (status, &all[0]["upstream"]),
            (StatusCode::OK, &expected),
            "{who}: {all}"
        );
    }
}

/// Points the city's `accounts` service at `upstream`, as its data officer does.
pub async fn point_accounts_at(server: &TestServer, city: &City, upstream: &str) {
    let path = format!(
        "/api/v1/organizations/{}/systems/fund-core/services/accounts",
        city.provider
    );
    let (_, mut service) = server.get(&path, &city.officer).await;
    for field in ["provider", "active", "created_at", "updated_at"] {
        service.as_object_mut().unwrap().remove(field);
    }
    service["upstream"] = json!(upstream);
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&city.officer),
            Some(service),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn video_playback_urls(server: TestServer) {
    let provider = server.create_org(1, None).await.to_string();
    let consumer = server.create_org(2, None).await.to_string();
    server
        .create_system(&provider.parse().unwrap(), "cameras")
        .await;
    server
        .create_system(&consumer.parse().unwrap(), "dispatch")
        .await;
    let officer = server
        .user_with_key("officer", "data_officer", Some(&provider.parse().unwrap()))
        .await;
    let device = "32010200001320000001";
    let camera = json!({
        "code": "320102-T11-000001", "kind": "video", "classification": "T11", "name": "玄武区中山路口摄像机",
        "provider": provider, "provider_system": "cameras", "format": "stream", "device": device,
        "sharing": { "type": "unconditional", "method": "video" }, "open_type": "closed", "update_cycle": "realtime"
    });
    let platform = json!({
        "code": "320102-T11-000002", "kind": "interface", "classification": "T11", "name": "视频共享平台",
        "provider": provider, "provider_system": "cameras", "format": "stream",
        "items": [{ "code": "stream", "name": "视频流", "data_type": "binary", "sensitivity": "internal" }],
        "sharing": { "type": "conditional", "conditions": "按需", "method": "video" }, "open_type": "closed", "update_cycle": "realtime"
    });
    for resource in [camera, platform] {
        let (status, body) = server.post("/api/v1/resources", &officer, resource).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &format!("/api/v1/organizations/{provider}/systems/cameras/services/video"),
            Some(&officer),
            Some(json!({ "code": "video", "resource": "320102-T11-000002", "upstream": "https://video.example/live", "methods": ["GET"] })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, key) = server
        .post("/api/v1/keys", ADMIN_KEY, json!({ "owner": { "kind": "system", "organization": consumer, "system": "dispatch" } }))
        .await;
    let key = key["key"].as_str().unwrap().to_owned();
    let url = format!(
        "{}/x/{provider}/cameras/video/{device}/play",
        gateway_url(&server)
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let denied = server
        .client
        .post(&url)
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN, "no grant yet");
    let developer = server
        .user_with_key("dev", "developer", Some(&consumer.parse().unwrap()))
        .await;
    let (status, outcome) = server
        .post(
            "/api/v1/applications",
            &developer,
            json!({ "consumer": { "organization": consumer, "system": "dispatch" }, "resource": "320102-T11-000001", "purpose": "应急指挥", "legal_basis": "《突发事件应对法》", "valid_days": 7 }),
        )
        .await;
    assert_eq!(
        (status, outcome["application"]["state"].as_str()),
        (StatusCode::CREATED, Some("approved")),
        "{outcome}"
    );
    let started = Instant::now();
    let played = loop {
        let response = server
            .client
            .post(&url)
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK || started.elapsed() > Duration::from_secs(2) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(played.status(), StatusCode::OK);
    assert!(played.headers().contains_key("civitas-receipt"));
    let body: Value = played.json().await.unwrap();
    let url = body["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://video.example/live/play/{device}?consumer={consumer}/dispatch&expires="
        )),
        "{url}"
    );
    assert!(url.contains("&signature="));
    let missing = server
        .client
        .post(format!(
            "{}/x/{provider}/cameras/video/32010200001320009999/play",
            gateway_url(&server)
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // A playback URL counts against the grant like any call (its rate and daily quota too).
    let grant = outcome["grant"]["id"].as_str().unwrap();
    let started = Instant::now();
    loop {
        let (_, usage) = server
            .get(&format!("/api/v1/grants/{grant}/usage"), &developer)
            .await;
        if usage[0]["calls"] == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the playback was not counted: {usage}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads a header-free HTTP/1.1 answer over a TLS stream. Each step has ten seconds, so that a
/// connection the server neither answers nor closes fails the test, naming the step, instead of
/// hanging it.
pub async fn tls_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(StatusCode, String), String> {
    use http_body_util::BodyExt;
    async fn step<T, E: std::fmt::Display>(
        name: &str,
        future: impl Future<Output = Result<T, E>>,
    ) -> Result<T, String> {
        match tokio::time::timeout(Duration::from_secs(10), future).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(format!("{name}: {error}")),
            Err(_) => Err(format!("{name}: no answer within 10 s")),
        }
    }
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = step("connect", tokio::net::TcpStream::connect(addr)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = step("handshake", connector.connect(name, tcp)).await?;
    let (mut sender, connection) = step(
        "http",
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)),
    )
    .await?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = step("request", sender.send_request(request)).await?;
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let body = step("body", response.into_body().collect())
        .await?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Open consumer connections on each gateway thread, from the metrics.
async fn open_connections(server: &TestServer) -> Vec<i64> {
    let metrics = server.get_text("/metrics").await;
    let mut open = Vec::new();
    for thread in 0.. {
        let prefix = format!("civitas_gateway_open_connections{{thread=\"{thread}\"}} ");
        let Some(value) = metric_values(&metrics, &prefix).next() else {
            break;
        };
        open.push(value as i64);
    }
    open
}

/// Sends a request on a raw keep-alive connection and reads the answer's head.
async fn ask(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: gateway\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = stream.read(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

async fn connections_are_spread_over_the_gateway_threads(server: TestServer) {
    // Once one connection is answered, the gateway threads are serving.
    let address = server.running.as_ref().unwrap().gateway_addr;
    let mut first = tokio::net::TcpStream::connect(address).await.unwrap();
    assert!(ask(&mut first).await.starts_with("HTTP/1.1 404"));
    let before = open_connections(&server).await;
    assert_eq!(before.len(), 2, "the tests run two gateway threads");
    let mut streams = vec![first];
    for _ in 0..7 {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        // Answered: the connection has been accepted and handed to a thread.
        assert!(ask(&mut stream).await.starts_with("HTTP/1.1 404"));
        streams.push(stream);
    }
    let during = open_connections(&server).await;
    assert_eq!(
        during.iter().sum::<i64>(),
        before.iter().sum::<i64>() + 7,
        "{before:?} {during:?}"
    );
    let (fewest, most) = (during.iter().min().unwrap(), during.iter().max().unwrap());
    assert!(most - fewest <= 1, "{during:?}");
    // Each connection still works where it landed.
    for stream in &mut streams {
        assert!(ask(stream).await.starts_with("HTTP/1.1 404"));
    }
    drop(streams);
    let started = Instant::now();
    loop {
        let after = open_connections(&server).await;
        // `before` counted the first connection, closed with the rest.
        if after.iter().sum::<i64>() == before.iter().sum::<i64>() - 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "closed connections are counted out: {before:?} {after:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The values of the metric lines starting with `prefix` (a name and `{` or a space).
fn metric_values<'a>(metrics: &'a str, prefix: &'a str) -> impl Iterator<Item = f64> + 'a {
    metrics
        .lines()
        .filter(move |line| line.starts_with(prefix))
        .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
}

async fn the_gateway_answers_health_and_readiness_probes(server: TestServer) {
    let gateway = gateway_url(&server);
    for (path, text) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let answer = server
            .client
            .get(format!("{gateway}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{path}");
        // A probe is not an exchange: nothing is recorded for it.
        assert!(answer.headers().get("civitas-receipt").is_none(), "{path}");
        assert!(answer.headers().get("civitas-exchange-id").is_none());
        assert_eq!(answer.text().await.unwrap(), text);
        let head = server
            .client
            .head(format!("{gateway}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::OK, "HEAD {path}");
        let post = server
            .client
            .post(format!("{gateway}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED, "POST {path}");
        assert_eq!(post.headers()["allow"], "GET, HEAD");
        let problem: Value = post.json().await.unwrap();
        assert_eq!(problem["code"], "method_not_allowed");
    }
    // Other paths outside /x/ are still no route.
    let elsewhere = server
        .client
        .get(format!("{gateway}/healthz/more"))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::NOT_FOUND);
}

/// A problem's `type` resolves, against the listener that gave it, to the page of problem types,
/// which has a row for its code.
async fn problem_types_link_to_their_documentation(server: TestServer) {
    let gateway = gateway_url(&server);
    let api_problem = server
        .client
        .get(format!("{}/api/v1/organizations", server.base))
        .send()
        .await
        .unwrap();
    let gateway_problem = server
        .client
        .get(format!("{gateway}/x/a/b/c"))
        .send()
        .await
        .unwrap();
    let not_a_route = server
        .client
        .get(format!("{gateway}/nowhere"))
        .send()
        .await
        .unwrap();
    for (base, answer, code) in [
        (&server.base, api_problem, "unauthenticated"),
        (&gateway, gateway_problem, "unauthenticated"),
        (&gateway, not_a_route, "no_route"),
    ] {
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], code);
        let link = reqwest::Url::parse(base)
            .unwrap()
            .join(problem["type"].as_str().unwrap())
            .unwrap();
        assert_eq!(link.fragment(), Some(code));
        let page = server.client.get(link.clone()).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{link}");
        assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
        let page = page.text().await.unwrap();
        assert!(page.contains(&format!("<tr id=\"{code}\">")), "{link}");
        // Both listeners document the gateway's own codes and the API's.
        assert!(page.contains("<tr id=\"upstream_timeout\">"));
        assert!(page.contains("<tr id=\"precondition_failed\">"));
    }
}

async fn client_certificates_are_listed_and_read(server: TestServer) {
    let consumer = server.create_org(2, None).await;
    let other = server.create_org(3, None).await;
    server.create_system(&consumer, "portal").await;
    server.create_system(&consumer, "other").await;
    let developer = server
        .user_with_key("cert-dev", "developer", Some(&consumer))
        .await;
    let outsider = server
        .user_with_key("outsider", "developer", Some(&other))
        .await;
    let auditor = server
        .user_with_key("cert-auditor", "auditor", Some(&other))
        .await;
    let certificates = format!("/api/v1/organizations/{consumer}/systems/portal/certificates");
    let mut serials = Vec::new();
    for _ in 0..3 {
        let (status, issued) = server
            .post(&certificates, &developer, json!({ "valid_days": 30 }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{issued}");
        serials.push(issued["serial"].as_str().unwrap().to_owned());
    }
    // A certificate of another system is not listed with these.
    let (status, _) = server
        .post(
            &format!("/api/v1/organizations/{consumer}/systems/other/certificates"),
            &developer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, revoked) = server
        .post(
            &format!("/api/v1/certificates/{}/revoke", serials[1]),
            &developer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");

    let serials_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["serial"].as_str().unwrap().to_owned())
            .collect()
    };
    let mut all = serials.clone();
    all.sort();
    for key in [&developer, &auditor] {
        let (status, page) = server.get(&certificates, key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut listed = serials_of(&page);
        listed.sort();
        assert_eq!(listed, all, "{page}");
        assert!(page["next_cursor"].is_null(), "{page}");
        assert!(
            !page.to_string().contains("PRIVATE KEY"),
            "a listing never holds keys"
        );
    }
    let (_, page) = server.get(&certificates, &developer).await;
    let created: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["created_at"].as_str().unwrap())
        .collect();
    let mut newest_first = created.clone();
    newest_first.sort_by(|a, b| {
        b.parse::<jiff::Timestamp>()
            .unwrap()
            .cmp(&a.parse::<jiff::Timestamp>().unwrap())
    });
    assert_eq!(created, newest_first, "newest first: {page}");

    // Pages of one follow the same order and meet every certificate once.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("{certificates}?limit=1&cursor={cursor}"),
            None => format!("{certificates}?limit=1"),
        };
        let (status, page) = server.get(&path, &developer).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        paged.extend(serials_of(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(
        paged,
        serials_of(&server.get(&certificates, &developer).await.1)
    );

    for (state, expected) in [
        ("active", vec![serials[0].clone(), serials[2].clone()]),
        ("revoked", vec![serials[1].clone()]),
        ("expired", vec![]),
    ] {
        let (status, page) = server
            .get(&format!("{certificates}?state={state}"), &developer)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut listed = serials_of(&page);
        listed.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(listed, expected, "{state}: {page}");
    }
    let (status, problem) = server
        .get(&format!("{certificates}?state=valid"), &developer)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(problem.to_string().contains("state"), "{problem}");
    let (status, problem) = server
        .get(
            &format!("{certificates}?cursor=bm90LWEtY3Vyc29y"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");

    // One certificate by its serial.
    let (status, one) = server
        .get(&format!("/api/v1/certificates/{}", serials[1]), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["serial"], json!(serials[1]));
    assert_eq!(
        one["system"],
        json!({ "organization": consumer.to_string(), "system": "portal" }),
        "{one}"
    );
    assert!(one["revoked_at"].is_string(), "{one}");
    assert_eq!(one["revoked_at"], revoked["revoked_at"]);

    // Another organization's developer sees neither; unknown things are 404.
    let (status, _) = server.get(&certificates, &outsider).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .get(&format!("/api/v1/certificates/{}", serials[0]), &outsider)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .get("/api/v1/certificates/00ff00ff", &developer)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .get(
            &format!("/api/v1/organizations/{consumer}/systems/absent/certificates"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Calls counted in the gateway's memory reach the store when the node stops, and a restarted
/// node counts today's quota from them.
async fn the_daily_quota_holds_across_a_restart(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({ "calls_per_day": 3 })).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(2),
        StatusCode::OK,
    )
    .await;
    let (status, _, _) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::OK);

    // At once, before the gateway's periodic flush.
    let server = server.restart().await;
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(2),
        StatusCode::OK,
    )
    .await;
    let (status, headers, text) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{text}");
    assert!(text.contains("quota_exhausted"), "{text}");
    assert!(headers.contains_key("retry-after"));

    let server = server.restart().await;
    let (_, usage) = server
        .get(
            &format!("/api/v1/grants/{}/usage", city.grant),
            &city.officer,
        )
        .await;
    assert_eq!(
        (&usage[0]["calls"], &usage[0]["denied"]),
        (&json!(3), &json!(1)),
        "{usage}"
    );
}

/// Consumers cannot pose as another system to the upstream, nor upstreams hand out receipts:
/// `civitas-` headers and hop-by-hop ones stop at the gateway in both directions.
async fn the_gateway_s_own_headers_cannot_be_forged(server: TestServer) {
    let seen: Arc<std::sync::Mutex<Option<axum::http::HeaderMap>>> = Arc::default();
    let recorder = seen.clone();
    let app = Router::new().route(
        "/accounts/{id}",
        get(
            move |Path(id): Path<String>, headers: axum::http::HeaderMap| async move {
                *recorder.lock().unwrap() = Some(headers);
                (
                    [("civitas-receipt", "999999"), ("x-upstream", "u")],
                    axum::Json(json!({ "id_number": id, "balance": 1.0 })),
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let city = city(&server, upstream, json!({})).await;
    let url = format!(
        "{}/x/{}/fund-core/accounts/accounts/{CITIZEN}",
        gateway_url(&server),
        city.provider
    );
    let started = Instant::now();
    let response = loop {
        let response = server
            .client
            .get(&url)
            .bearer_auth(&city.consumer_key)
            .header("civitas-consumer", format!("{}/other", city.consumer))
            .header("civitas-exchange-id", "forged")
            .header("accept-encoding", "gzip")
            .header("connection", "keep-alive, x-private")
            .header("x-private", "for the gateway only")
            .header("x-trace", "t-1")
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK || started.elapsed() > Duration::from_secs(2) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), StatusCode::OK);
    let receipts: Vec<_> = response
        .headers()
        .get_all("civitas-receipt")
        .iter()
        .collect();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_ne!(
        receipts[0], "999999",
        "the upstream's receipt does not pass"
    );
    assert_eq!(response.headers()["x-upstream"], "u");
    let exchange_id = response.headers()["civitas-exchange-id"].clone();

    let seen = seen.lock().unwrap().take().unwrap();
    let all = |name: &str| -> Vec<String> {
        seen.get_all(name)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        all("civitas-consumer"),
        [format!("{}/portal", city.consumer)]
    );
    assert_eq!(
        all("civitas-exchange-id"),
        [exchange_id.to_str().unwrap().to_owned()]
    );
    assert_eq!(all("accept-encoding"), ["identity"]);
    assert_eq!(all("x-trace"), ["t-1"]);
    assert!(all("x-private").is_empty(), "named by Connection");
    assert!(all("authorization").is_empty());

    // Dot segments are refused before they reach the upstream, however spelled (sent raw, as
    // HTTP clients would resolve them first).
    let address = server.running.as_ref().unwrap().gateway_addr;
    for path in [
        "accounts/../../admin",
        "%2e%2e/%2E%2E/admin",
        "accounts/a%2f..%2fadmin",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!(
            "GET /x/{}/fund-core/accounts/{path} HTTP/1.1\r\nhost: gateway\r\n\
             authorization: Bearer {}\r\nconnection: close\r\n\r\n",
            city.provider, city.consumer_key
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("bad_path"), "{path}: {answer}");
    }
}

/// A consumer that sends half a request head, or leaves a keep-alive connection idle, is cut off
/// after the header timeout: neither holds a gateway connection for long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server =
        TestServer::start_sqlite_with(|config| config.gateway_header_timeout = Some(1)).await;
    let address = server.running.as_ref().unwrap().gateway_addr;
    let mut idle = tokio::net::TcpStream::connect(address).await.unwrap();
    assert!(ask(&mut idle).await.starts_with("HTTP/1.1 404"));
    let mut slow = tokio::net::TcpStream::connect(address).await.unwrap();
    slow.write_all(b"GET /x/ HTTP/1.1\r\nhost: gat")
        .await
        .unwrap();
    let started = Instant::now();
    for stream in [&mut idle, &mut slow] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the gateway closes the connection");
        assert!(read.is_ok(), "{read:?}");
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    // Both are counted out of the threads' open connections.
    let deadline = Instant::now() + Duration::from_secs(2);
    while open_connections(&server).await.iter().sum::<i64>() != 0 {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            open_connections(&server).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A consumer that gives up on a call does not leave it half done: the call still ends, its
/// exchange is recorded, and a circuit breaker probe it carried is settled (else the circuit
/// would stay half-open, failing every call fast, for as long as the node runs).
async fn a_call_its_consumer_abandons_still_ends_and_is_recorded(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let closed = format!("http://{}", closed_port());
    point_accounts_at(&server, &city, &closed).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let (_, circuits) = server.get("/api/v1/gateway/circuits", &city.officer).await;
    let retry_after = circuits[0]["retry_after_ms"].as_u64().unwrap();
    // The upstream is back, but slow: the probe will run into the service's time limit.
    start_upstream_at(closed.trim_start_matches("http://").parse().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(retry_after + 50)).await;
    let timeouts = |metrics: &str| -> f64 {
        metrics
            .lines()
            .filter(|line| {
                line.starts_with("civitas_gateway_exchanges_total{")
                    && line.contains("status=\"504\"")
            })
            .map(|line| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    let before = timeouts(&server.get_text("/metrics").await);
    let abandoned = server
        .client
        .get(format!(
            "{}/x/{}/fund-core/accounts/slow",
            gateway_url(&server),
            city.provider
        ))
        .bearer_auth(&city.consumer_key)
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(abandoned.is_err(), "the consumer gave up: {abandoned:?}");
    // The probe ran on: it failed, so the circuit is open again rather than stuck half-open,
    // and the call has its record.
    // (The circuit opens a moment before the call's record is counted.)
    let started = Instant::now();
    loop {
        let (_, circuits) = server.get("/api/v1/gateway/circuits", &city.officer).await;
        let counted = timeouts(&server.get_text("/metrics").await);
        if circuits[0]["state"] == "open" && counted == before + 1.0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the abandoned probe was never settled: {circuits}, {counted} timeouts counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Calls refused because the service's circuit is open never reached the upstream: they do not
/// count against the grant's daily quota, so a consumer retrying through an outage still has its
/// day's calls when the service is back.
async fn an_open_circuit_does_not_use_up_the_grant_s_calls(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({ "calls_per_day": 1000 })).await;
    point_accounts_at(&server, &city, &format!("http://{}", closed_port())).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    let calls = || async {
        // Counts reach the store within a second or so.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let (_, usage) = server
            .get(
                &format!("/api/v1/grants/{}/usage", city.grant),
                &city.officer,
            )
            .await;
        usage[0]["calls"].as_u64().unwrap()
    };
    let before = calls().await;
    assert!(
        before >= 5,
        "the failures that opened the circuit count: {before}"
    );
    for _ in 0..10 {
        let (status, _, text) = call_once(&server, &city.consumer_key, &path).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
        assert!(text.contains("circuit_open"), "{text}");
    }
    assert_eq!(calls().await, before, "refused by the open circuit");
}

/// The ID number of the `n`-th person of a long list, all valid.
fn person(n: u32) -> String {
    civitas_core::CitizenId::from_parts("320102", 1950 + n / 1000, 1, 1, n % 1000)
        .unwrap()
        .as_str()
        .to_owned()
}

/// An answer about more people than one ledger record can list (a record holds about 900 keyed
/// hashes) is delivered, and its record continues in `exchange_subjects` records written with
/// it, so that every person's access report finds it. A request target longer than a record
/// could hold is refused with 414 before it reaches a service.
async fn an_answer_about_many_people_is_recorded_whole(server: TestServer) {
    let app = Router::new().route(
        "/members/{count}",
        get(|Path(count): Path<u32>| async move {
            let members: Vec<Value> = (0..count)
                .map(|n| json!({ "id_number": person(n) }))
                .collect();
            axum::Json(json!({ "members": members }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let city = city(&server, upstream, json!({})).await;
    let (status, body) = server
        .request(
            reqwest::Method::PUT,
            &format!(
                "/api/v1/organizations/{}/systems/fund-core/services/accounts",
                city.provider
            ),
            Some(&city.officer),
            Some(json!({
                "code": "accounts", "resource": "320100-B01-000001",
                "upstream": format!("http://{upstream}"), "methods": ["GET"],
                "paths": ["/members/{count}"], "timeout_ms": 5000,
                "fields": [{ "item": "id_number", "path": "$.members[*].id_number" }]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    const PEOPLE: u32 = 2500;
    let path = format!("/x/{}/fund-core/accounts/members/{PEOPLE}", city.provider);
    let (headers, text) = call_ok(&server, &city.consumer_key, &path).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["members"].as_array().unwrap().len(), PEOPLE as usize);
    assert!(!text.contains(&person(7)), "masked");
    let index = receipt_index(&headers);

    let auditor = server
        .user_with_key("auditor", "auditor", Some(&city.provider.parse().unwrap()))
        .await;
    let (_, first) = server
        .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
        .await;
    let exchange = &first["record"];
    assert_eq!(exchange["type"], "exchange", "{first}");
    let parts = exchange["subjects_continued"].as_u64().expect("continued");
    assert!(parts >= 2, "{parts} parts");
    let mut listed = exchange["subjects"].as_array().unwrap().len();
    for part in 1..=parts {
        let (_, more) = server
            .get(
                &format!("/api/v1/ledger/records/{}", index + part),
                &auditor,
            )
            .await;
        let more = &more["record"];
        assert_eq!(more["type"], "exchange_subjects", "{more}");
        assert_eq!(more["part"], part);
        assert_eq!(more["exchange_id"], exchange["exchange_id"]);
        listed += more["subjects"].as_array().unwrap().len();
    }
    assert_eq!(listed, PEOPLE as usize, "every person once");

    // Every person's report finds the exchange, wherever the record listing them is.
    let mut continued = 0;
    for n in [0, 1, 1234, PEOPLE - 1] {
        let (status, report) = server
            .get(&format!("/api/v1/audit/subjects/{}", person(n)), &auditor)
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        let accesses = report["accesses"].as_array().unwrap();
        assert_eq!(accesses.len(), 1, "person {n}: {report}");
        assert_eq!(accesses[0]["ledger_index"], index);
        assert_eq!(accesses[0]["exchange_id"], exchange["exchange_id"]);
        if let Some(at) = accesses[0]["listed_at"].as_u64() {
            assert!((index + 1..=index + parts).contains(&at), "{at}");
            continued += 1;
        }
    }
    assert!(continued > 0, "some are listed in the continuing records");

    let long = format!("{path}?q={}", "a".repeat(9000));
    let (status, _, text) = call_once(&server, &city.consumer_key, &long).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{text}");
    assert!(text.contains("uri_too_long"), "{text}");
}

/// A mapped field leaves the gateway whole, so a service whose mappings put one item's field
/// inside another's (which would deliver the inner item with the outer one, whatever the grant
/// says of it) is refused, naming both fields; a mapping suggested from an OpenAPI description
/// leaves such a field out and says so.
async fn overlapping_field_mappings_are_refused(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let path = format!(
        "/api/v1/organizations/{}/systems/fund-core/services/accounts",
        city.provider
    );
    let (_, registered) = server.get(&path, &city.officer).await;
    let put = |fields: Value| {
        let service = json!({
            "code": "accounts", "resource": "320100-B01-000001",
            "upstream": format!("http://{upstream}"), "methods": ["GET"],
            "paths": ["/accounts/{id}"], "timeout_ms": 300, "fields": fields
        });
        server.request(
            reqwest::Method::PUT,
            &path,
            Some(&city.officer),
            Some(service),
        )
    };
    for (fields, field, detail) in [
        (
            json!([
                { "item": "name", "path": "$.holder" },
                { "item": "id_number", "path": "$.holder.id_number" }
            ]),
            "fields[1].path",
            r#"fields[1].path: "$.holder.id_number" lies inside "$.holder" (fields[0], item name)"#,
        ),
        (
            json!([
                { "item": "balance", "path": "$.balance" },
                { "item": "monthly_deposit", "path": "$.deposits[*].amount" },
                { "item": "deposit_month", "path": "$.deposits[*]" }
            ]),
            "fields[1].path",
            r#"fields[1].path: "$.deposits[*].amount" lies inside "$.deposits[*]" (fields[2], item deposit_month)"#,
        ),
    ] {
        let (status, problem) = put(fields).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "invalid_field", "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        assert_eq!(problem["detail"], detail, "{problem}");
    }
    let (_, unchanged) = server.get(&path, &city.officer).await;
    assert_eq!(unchanged, registered, "a refused draft changes nothing");
    let calls = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let (_, text) = call_ok(&server, &city.consumer_key, &calls).await;
    assert!(!text.contains(CITIZEN), "{text}");

    // One item at two fields that do not overlap is fine.
    let (status, body) = put(json!([
        { "item": "deposit_month", "path": "$.deposits[*].month" },
        { "item": "deposit_month", "path": "$.months[*]" },
        { "item": "balance", "path": "$.balance" }
    ]))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // One operation maps the holder whole, another field by field: the outer mapping is kept.
    let answer = |schema: Value| {
        json!({ "get": { "responses": { "200": { "content": {
            "application/json": { "schema": schema }
        } } } } })
    };
    let openapi = json!({
        "openapi": "3.1.0",
        "paths": {
            "/accounts/{id}": answer(json!({ "type": "object", "properties": {
                "holder": { "type": "object", "x-civitas-item": "name" },
                "balance": { "type": "number" }
            } })),
            "/holders/{id}": answer(json!({ "type": "object", "properties": {
                "holder": { "type": "object", "properties": {
                    "id_number": { "type": "string" }
                } }
            } }))
        }
    });
    let (status, suggestion) = suggest_mapping(&server, &city.officer, openapi).await;
    assert_eq!(status, StatusCode::OK, "{suggestion}");
    assert_eq!(
        suggestion,
        json!({
            "paths": ["/accounts/{id}", "/holders/{id}"],
            "fields": [
                { "item": "balance", "path": "$.balance" },
                { "item": "name", "path": "$.holder" }
            ],
            "left_out": [{
                "item": "id_number", "path": "$.holder.id_number",
                "inside": { "item": "name", "path": "$.holder" }
            }],
            "unmatched_items": ["id_number", "monthly_deposit", "deposit_month"],
            "warnings": []
        })
    );
}

/// Asks for the mapping of the city's resource that `openapi` suggests.
async fn suggest_mapping(server: &TestServer, key: &str, openapi: Value) -> (StatusCode, Value) {
    server
        .post(
            "/api/v1/services/mapping-from-openapi",
            key,
            json!({ "resource": "320100-B01-000001", "openapi": openapi }),
        )
        .await
}

/// A provider's OpenAPI description written as real ones are: composed schemas, chains of
/// references (to responses and to schemas), a recursive schema, a success answer that is a 201
/// in JSON with a charset, an error answer in problem+json, a path template no path pattern can
/// express and a reference to another file. The suggestion maps every item, says what it could
/// not use and where, and registers as it is: the gateway filters the service's answers by it.
async fn a_mapping_suggested_from_a_real_world_description_registers(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let openapi = json!({
        "openapi": "3.1.0",
        "info": { "title": "住房公积金账户服务", "version": "2.3.0" },
        "paths": {
            "/accounts": { "post": { "responses": {
                "201": { "$ref": "#/components/responses/Account" }
            } } },
            "/accounts/{id}": {
                "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
                "get": { "responses": {
                    "200": { "$ref": "#/components/responses/Account" },
                    "404": { "description": "no such account", "content": {
                        "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
                    } }
                } }
            },
            "/accounts/{id}/statement": { "get": { "responses": {
                "201": { "description": "a statement, made for this request", "content": {
                    "application/json; charset=utf-8": { "schema": { "$ref": "#/components/schemas/Statement" } }
                } },
                "default": { "$ref": "#/components/responses/Problem" }
            } } },
            "/accounts/{id}/statements/{month}.pdf": { "get": { "responses": {
                "200": { "description": "a statement, printed", "content": { "application/pdf": {} } }
            } } }
        },
        "components": {
            "responses": {
                "Account": { "$ref": "#/components/responses/AccountFound" },
                "AccountFound": { "description": "the account", "content": {
                    "application/json": { "schema": { "$ref": "#/components/schemas/Account" } }
                } },
                "Problem": { "description": "what went wrong", "content": {
                    "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } }
                } }
            },
            "schemas": {
                "Account": { "allOf": [
                    { "$ref": "#/components/schemas/Holder" },
                    { "type": "object", "properties": {
                        "balance": { "type": "number" },
                        "monthly_deposit": { "type": ["number", "null"] },
                        "deposits": { "type": "array", "items": { "$ref": "#/components/schemas/Deposit" } },
                        "linked_accounts": { "type": "array", "items": { "$ref": "#/components/schemas/Account" } },
                        "center": { "$ref": "#/components/schemas/ManagingCenter" },
                        "attachments": { "$ref": "common.yaml#/components/schemas/Attachments" }
                    } }
                ] },
                "Holder": { "$ref": "#/components/schemas/Person" },
                "Person": { "type": "object", "required": ["id_number"], "properties": {
                    "id_number": { "type": "string", "pattern": "^[0-9]{17}[0-9X]$" },
                    "name": { "type": "string" }
                } },
                "Deposit": {
                    "oneOf": [
                        { "$ref": "#/components/schemas/MonthlyDeposit" },
                        { "$ref": "#/components/schemas/ExtraDeposit" }
                    ],
                    "discriminator": { "propertyName": "kind" }
                },
                "MonthlyDeposit": { "type": "object", "properties": {
                    "kind": { "const": "monthly" },
                    "month": { "type": "string", "x-civitas-item": "deposit_month" },
                    "amount": { "type": "number" }
                } },
                "ExtraDeposit": { "type": "object", "properties": {
                    "kind": { "const": "extra" },
                    "month": { "type": "string", "x-civitas-item": "deposit_month" },
                    "reason": { "type": "string" }
                } },
                // Recursive, holding no item: it says nothing.
                "ManagingCenter": { "type": "object", "properties": {
                    "code": { "type": "string" },
                    "parent": { "$ref": "#/components/schemas/ManagingCenter" }
                } },
                "Statement": { "allOf": [
                    { "$ref": "#/components/schemas/Account" },
                    { "properties": { "issued_at": { "type": "string", "format": "date-time" } } }
                ] },
                // Were error answers read, `detail` would map.
                "Problem": { "type": "object", "properties": {
                    "title": { "type": "string" },
                    "detail": { "type": "string", "x-civitas-item": "monthly_deposit" }
                } }
            }
        }
    });
    let (status, suggestion) = suggest_mapping(&server, &city.officer, openapi).await;
    assert_eq!(status, StatusCode::OK, "{suggestion}");
    assert_eq!(
        suggestion,
        json!({
            "paths": ["/accounts/{id}", "/accounts/{id}/statement"],
            "fields": [
                { "item": "balance", "path": "$.balance" },
                { "item": "deposit_month", "path": "$.deposits[*].month" },
                { "item": "id_number", "path": "$.id_number" },
                { "item": "monthly_deposit", "path": "$.monthly_deposit" },
                { "item": "name", "path": "$.name" }
            ],
            "left_out": [],
            "unmatched_items": [],
            "warnings": [
                {
                    "at": "#/components/schemas/Account/allOf/1/properties/attachments",
                    "message": "$ref \"common.yaml#/components/schemas/Attachments\" is outside this description; only references within it (\"#/…\") are followed, so what it describes is not mapped"
                },
                {
                    "at": "#/components/schemas/Account/allOf/1/properties/linked_accounts/items",
                    "message": "$ref \"#/components/schemas/Account\" leads back to a schema it lies inside of; field paths cannot repeat, so the fields below $.linked_accounts[*] are not mapped and the gateway drops them: map the levels the answers use by hand"
                },
                {
                    "at": "#/paths/~1accounts~1{id}~1statements~1{month}.pdf",
                    "message": "\"/accounts/{id}/statements/{month}.pdf\" has a malformed segment \"{month}.pdf\", so it is not among the suggested paths; a parameter must be a whole segment"
                }
            ]
        })
    );

    let path = format!(
        "/api/v1/organizations/{}/systems/fund-core/services/accounts-v2",
        city.provider
    );
    let service = json!({
        "code": "accounts-v2", "resource": "320100-B01-000001",
        "upstream": format!("http://{upstream}"), "methods": ["GET"],
        "paths": suggestion["paths"], "fields": suggestion["fields"]
    });
    let (status, registered) = server.put(&path, &city.officer, service).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let calls = format!(
        "/x/{}/fund-core/accounts-v2/accounts/{CITIZEN}",
        city.provider
    );
    let (_, text) = call_ok(&server, &city.consumer_key, &calls).await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body,
        granted_answer(),
        "granted items by the suggested mapping, personal ones masked"
    );

    let (_, spec) = server
        .request(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let warnings = &spec["components"]["schemas"]["MappingSuggestion"]["properties"]["warnings"];
    assert_eq!(
        warnings["items"]["$ref"], "#/components/schemas/MappingWarning",
        "{warnings}"
    );
}

/// Descriptions the suggestion cannot read are refused with a problem naming the field, and one
/// nested deeper than a JSON body may be is refused before it is read.
async fn unreadable_openapi_descriptions_are_refused(server: TestServer) {
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let mut nested = json!({ "properties": { "name": {} } });
    for _ in 0..70 {
        nested = json!({ "items": nested });
    }
    let deep = json!({ "openapi": "3.1.0", "paths": { "/accounts/{id}": { "get": { "responses": {
        "200": { "content": { "application/json": { "schema": nested } } }
    } } } } });
    // Each detail as it begins.
    for (openapi, field, detail) in [
        (
            json!("openapi: 3.1.0"),
            "openapi",
            "must be an OpenAPI description, a JSON object",
        ),
        (
            json!({ "openapi": "3.1.0", "paths": ["/accounts/{id}"] }),
            "openapi.paths",
            "must be an object",
        ),
        (
            deep,
            "openapi",
            "schemas nest more than 64 deep (at #/paths/~1accounts~1{id}/get/responses/200/content/application~1json/schema/items/items/",
        ),
    ] {
        let (status, problem) = suggest_mapping(&server, &city.officer, openapi).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["code"], "invalid_field", "{problem}");
        assert_eq!(problem["field"], field, "{problem}");
        let named = format!("{field}: {detail}");
        assert!(
            problem["detail"].as_str().unwrap().starts_with(&named),
            "{problem}"
        );
    }

    // Only an active interface resource's items are suggested, as only such a resource can be
    // registered.
    let dataset = crate::catalog::resource("320100-B01-000009", &city.provider);
    let (status, created) = server
        .post("/api/v1/resources", &city.officer, dataset)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let openapi = json!({ "openapi": "3.1.0", "paths": {} });
    for (resource, detail) in [
        (
            "320100-B01-000009",
            "resource: 320100-B01-000009 is a dataset resource; services deliver interface resources",
        ),
        (
            "320100-B01-000099",
            "resource: no active resource 320100-B01-000099",
        ),
    ] {
        let (status, problem) = server
            .post(
                "/api/v1/services/mapping-from-openapi",
                &city.officer,
                json!({ "resource": resource, "openapi": openapi }),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
        assert_eq!(problem["detail"], detail, "{problem}");
    }

    let mut too_deep = String::from("{\"properties\": {\"name\": {}}}");
    for _ in 0..200 {
        too_deep = format!("{{\"items\": {too_deep}}}");
    }
    let body = format!(
        "{{\"resource\": \"320100-B01-000001\", \"openapi\": {{\"openapi\": \"3.1.0\", \"paths\": {too_deep}}}}}"
    );
    let response = server
        .client
        .post(format!(
            "{}/api/v1/services/mapping-from-openapi",
            server.base
        ))
        .bearer_auth(&city.officer)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "malformed_json", "{problem}");
}

/// A service stored before overlapping mappings were refused is still in the store and served;
/// reading it through the API says what overlaps, so that its provider registers it again, and
/// registering it again as it is is refused, naming the same two fields.
async fn a_stored_service_s_overlapping_mappings_are_reported(server: TestServer) {
    use civitas_core::{Code, access::SystemRef, authz::Permit, service::ServiceDraft};

    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let path = format!(
        "/api/v1/organizations/{}/systems/fund-core/services/accounts",
        city.provider
    );
    let (status, registered) = server.get(&path, &city.officer).await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert!(registered.get("overlap").is_none(), "{registered}");

    let service = json!({
        "code": "accounts", "resource": "320100-B01-000001",
        "upstream": format!("http://{upstream}"), "methods": ["GET"],
        "paths": ["/accounts/{id}"], "timeout_ms": 300,
        "fields": [
            { "item": "id_number", "path": "$.id_number" },
            { "item": "name", "path": "$.name" },
            { "item": "balance", "path": "$.balance" },
            { "item": "monthly_deposit", "path": "$.deposits[*].amount" },
            { "item": "deposit_month", "path": "$.deposits[*]" }
        ]
    });
    let draft: ServiceDraft = serde_json::from_value(service.clone()).unwrap();
    assert!(draft.validate().is_err(), "the API would refuse the draft");
    // The store takes what it is given: validation is the API's, so the test writes there, as
    // registration did before it refused overlaps.
    let provider = SystemRef {
        organization: city.provider.parse().unwrap(),
        system: Code::parse("fund-core").unwrap(),
    };
    server
        .running
        .as_ref()
        .unwrap()
        .store()
        .put_service(&Permit::internal("civitas:test"), &provider, &draft)
        .await
        .unwrap();

    let overlap = r#"fields[3].path: "$.deposits[*].amount" lies inside "$.deposits[*]" (fields[4], item deposit_month)"#;
    let (status, stored) = server.get(&path, &city.officer).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["overlap"], overlap, "{stored}");
    assert_eq!(stored["fields"], service["fields"], "{stored}");
    let (status, listed) = server
        .get(
            &format!(
                "/api/v1/organizations/{}/systems/fund-core/services",
                city.provider
            ),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["overlap"], overlap, "{listed}");

    let (status, problem) = server
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&city.officer),
            Some(service),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["field"], "fields[3].path", "{problem}");
    assert_eq!(problem["detail"], overlap, "{problem}");
    let (_, unchanged) = server.get(&path, &city.officer).await;
    assert_eq!(unchanged, stored, "a refused draft changes nothing");

    // Every answer about a service has the shape GET gives it: a deactivation's says what
    // overlaps, and shows the upstream to the officer who manages the service.
    let (status, deactivated) = server.delete(&path, &city.officer).await;
    assert_eq!(status, StatusCode::OK, "{deactivated}");
    assert_eq!(deactivated["overlap"], overlap, "{deactivated}");
    assert_eq!(deactivated["upstream"], stored["upstream"], "{deactivated}");
    assert_eq!(deactivated["active"], false, "{deactivated}");
    let (_, read) = server.get(&path, &city.officer).await;
    assert_eq!(deactivated, read);

    // Registered again without the overlap, the answer has none.
    let mut fixed = read.clone();
    for field in ["provider", "active", "created_at", "updated_at", "overlap"] {
        fixed.as_object_mut().unwrap().remove(field);
    }
    fixed["fields"][4]["path"] = json!("$.deposits[*].month");
    let (status, registered_again) = server
        .request(
            reqwest::Method::PUT,
            &path,
            Some(&city.officer),
            Some(fixed),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{registered_again}");
    assert!(
        registered_again.get("overlap").is_none(),
        "{registered_again}"
    );
    let (_, read) = server.get(&path, &city.officer).await;
    assert_eq!(registered_again, read);

    let (_, spec) = server
        .request(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    let operations = &spec["paths"]["/api/v1/organizations/{org_code}/systems/{system_code}/services/{service_code}"];
    for (method, status) in [
        ("get", "200"),
        ("put", "200"),
        ("put", "201"),
        ("delete", "200"),
    ] {
        assert_eq!(
            operations[method]["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ServiceView",
            "{method} {status}"
        );
    }
    let described = &spec["components"]["schemas"]["ServiceView"]["properties"]["overlap"];
    assert!(
        described["description"]
            .as_str()
            .is_some_and(|text| text.contains("register the service again")),
        "{described}"
    );
}
