//! Catalog search and the CKAN Action API through HTTP, and the real `ckanapi` client.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    catalog::resource,
    support::{ADMIN_KEY, TestServer, on_both_stores, python},
};

on_both_stores!(
    search_finds_facets_filters_and_pages,
    ckan_action_api_and_ckanapi_client,
    repeated_facets_are_counted_once,
    ckan_harvesters_walk_the_catalog_by_id,
    ckan_harvesters_include_and_exclude_organizations_and_groups,
    ckan_fq_clauses_all_hold_with_or_not_and_groups,
    a_renamed_provider_is_indexed_anew
);

/// Publishes a few resources of two organizations: housing-fund and social-insurance entries,
/// some open.
async fn catalog(server: &TestServer) -> (String, String) {
    let fund = server.create_org(1, None).await.to_string();
    let insurance = server.create_org(2, None).await.to_string();
    let entries = [
        (
            "320100-B01-000001",
            &fund,
            "住房公积金缴存信息",
            "Housing fund deposits",
            "open",
            vec!["公积金", "住房"],
        ),
        (
            "320100-B01-000002",
            &fund,
            "住房公积金提取记录",
            "Housing fund withdrawals",
            "closed",
            vec!["公积金"],
        ),
        (
            "320100-B01-000003",
            &fund,
            "公积金贷款审批信息",
            "Housing fund loan approvals",
            "closed",
            vec!["公积金", "贷款"],
        ),
        (
            "320100-T03-000001",
            &insurance,
            "社会保险参保登记信息",
            "Social insurance registrations",
            "open",
            vec!["社保"],
        ),
        (
            "320100-T03-000002",
            &insurance,
            "养老保险待遇发放信息",
            "Pension payments",
            "closed",
            vec!["社保", "养老"],
        ),
    ];
    for (code, provider, name, name_en, open, tags) in entries {
        let mut body = resource(code, provider);
        body["name"] = json!(name);
        body["name_en"] = json!(name_en);
        body["open_type"] = json!(open);
        body["tags"] = json!(tags);
        let (status, created) = server.post("/api/v1/resources", ADMIN_KEY, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }
    (fund, insurance)
}

/// Searches until `ready` holds (writes are searchable within a second).
async fn search_until(
    server: &TestServer,
    query: &str,
    key: Option<&str>,
    ready: impl Fn(&Value) -> bool,
) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (status, body) = server
            .request(Method::GET, &format!("/api/v1/search?{query}"), key, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if ready(&body) || started.elapsed() > Duration::from_secs(3) {
            return (body, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn codes(results: &Value) -> Vec<String> {
    results["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["code"].as_str().unwrap().to_owned())
        .collect()
}

async fn search_finds_facets_filters_and_pages(server: TestServer) {
    let (fund, _) = catalog(&server).await;
    let (results, elapsed) =
        search_until(&server, "q=公积金", Some(ADMIN_KEY), |r| r["total"] == 3).await;
    assert_eq!(
        results["total"], 3,
        "公积金 finds 住房公积金缴存信息 and its kin: {results}"
    );
    assert!(
        elapsed < Duration::from_secs(1),
        "searchable within a second, took {elapsed:?}"
    );
    let hit = &results["hits"][0];
    assert!(
        hit["name_snippet"].as_str().unwrap().contains("<em>"),
        "{hit}"
    );
    assert_eq!(hit["resource"]["provider"]["code"], fund.as_str());

    // English stemming.
    let (results, _) = search_until(&server, "q=deposit", Some(ADMIN_KEY), |_| true).await;
    assert_eq!(codes(&results), ["320100-B01-000001"]);

    // Facets and filters.
    let (results, _) = search_until(
        &server,
        "q=&facet=classification&facet=tag&filter=tag:公积金",
        Some(ADMIN_KEY),
        |_| true,
    )
    .await;
    assert_eq!(results["total"], 3);
    assert_eq!(
        results["facets"]["classification"],
        json!([{ "value": "B01", "count": 3 }])
    );
    let tags = results["facets"]["tag"].as_array().unwrap();
    assert!(
        tags.contains(&json!({ "value": "公积金", "count": 3 })),
        "{tags:?}"
    );
    let (results, _) = search_until(
        &server,
        "q=信息&filter=classification:T03&filter=open_type:closed",
        Some(ADMIN_KEY),
        |_| true,
    )
    .await;
    assert_eq!(codes(&results), ["320100-T03-000002"]);

    // Sorting and paging: offset and cursor walk the same five entries.
    let (first, _) =
        search_until(&server, "sort=modified&limit=2", Some(ADMIN_KEY), |_| true).await;
    assert_eq!(first["total"], 5);
    assert_eq!(codes(&first)[0], "320100-T03-000002", "newest first");
    let mut seen = codes(&first);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let (page, _) = search_until(
            &server,
            &format!("sort=modified&limit=2&cursor={cursor}"),
            Some(ADMIN_KEY),
            |_| true,
        )
        .await;
        seen.extend(codes(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);
    let (offset_page, _) = search_until(
        &server,
        "sort=modified&limit=2&offset=2",
        Some(ADMIN_KEY),
        |_| true,
    )
    .await;
    assert_eq!(codes(&offset_page).len(), 2);

    // Anonymous callers search open data only.
    let (open, _) = search_until(&server, "q=公积金", None, |_| true).await;
    assert_eq!(codes(&open), ["320100-B01-000001"]);

    // Malformed syntax and bad parameters.
    let (status, problem) = server
        .get("/api/v1/search?q=%22unbalanced", ADMIN_KEY)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("search_syntax")),
        "{problem}"
    );
    let (status, problem) = server.get("/api/v1/search?facet=colour", ADMIN_KEY).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("facet"))
    );

    // A deactivated entry leaves the index; a changed one is found by its new name.
    server
        .delete("/api/v1/resources/320100-B01-000003", ADMIN_KEY)
        .await;
    let (results, _) =
        search_until(&server, "q=公积金", Some(ADMIN_KEY), |r| r["total"] == 2).await;
    assert_eq!(results["total"], 2);
}

async fn ckan_call(
    server: &TestServer,
    action: &str,
    query: &str,
    key: Option<&str>,
) -> (StatusCode, Value) {
    let mut request = server
        .client
        .get(format!("{}/api/3/action/{action}?{query}", server.base));
    if let Some(key) = key {
        request = request.header("Authorization", key);
    }
    let response = request.send().await.unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn ckan_action_api_and_ckanapi_client(server: TestServer) {
    let (fund, insurance) = catalog(&server).await;
    search_until(&server, "q=公积金", Some(ADMIN_KEY), |r| r["total"] == 3).await;

    let (status, body) = ckan_call(
        &server,
        "package_search",
        "q=公积金&rows=2&facet.field=[\"organization\",\"tags\"]",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert!(body["help"].as_str().unwrap().contains("help_show"));
    assert_eq!(body["result"]["count"], 3);
    assert_eq!(body["result"]["results"].as_array().unwrap().len(), 2);
    let package = &body["result"]["results"][0];
    assert_eq!(
        package["name"],
        package["id"].as_str().unwrap().to_lowercase()
    );
    assert_eq!(package["organization"]["name"], fund.to_lowercase());
    assert_eq!(
        body["result"]["facets"]["organization"][fund.to_lowercase()],
        3
    );
    assert!(body["result"]["search_facets"]["tags"]["items"].is_array());

    let (_, body) = ckan_call(
        &server,
        "package_search",
        &format!("fq=organization:{}+tags:社保", insurance.to_lowercase()),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(body["result"]["count"], 2, "{body}");
    let (_, body) = ckan_call(&server, "package_search", "rows=5000", Some(ADMIN_KEY)).await;
    assert_eq!(
        body["result"]["results"].as_array().unwrap().len(),
        5,
        "rows are capped, results all there"
    );
    let (status, body) = ckan_call(&server, "package_search", "q=%22broken", Some(ADMIN_KEY)).await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Search Query Error")),
        "{body}"
    );
    let (status, body) = ckan_call(
        &server,
        "package_show",
        "id=320100-b01-000404",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::NOT_FOUND, Some("Not Found Error"))
    );
    let (status, body) = ckan_call(&server, "package_show", "", Some(ADMIN_KEY)).await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::CONFLICT, Some("Validation Error")),
        "{body}"
    );
    let (status, body) = ckan_call(&server, "package_list", "", Some("cvk_wrong")).await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::FORBIDDEN, Some("Authorization Error"))
    );

    let (_, body) = ckan_call(
        &server,
        "package_show",
        "id=320100-b01-000001",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(body["result"]["title"], "住房公积金缴存信息");
    let (_, body) = ckan_call(
        &server,
        "resource_show",
        "id=320100-B01-000001-access",
        Some(ADMIN_KEY),
    )
    .await;
    assert!(
        body["result"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/resources/320100-B01-000001")
    );
    let (_, body) = ckan_call(&server, "package_list", "", None).await;
    assert_eq!(
        body["result"],
        json!(["320100-b01-000001", "320100-t03-000001"]),
        "anonymous: open data only"
    );
    let (_, body) = ckan_call(
        &server,
        "organization_list",
        "all_fields=true",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(body["result"].as_array().unwrap().len(), 2);
    assert_eq!(body["result"][0]["package_count"], 3);
    let (_, body) = ckan_call(
        &server,
        "organization_show",
        &format!("id={}", fund.to_lowercase()),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(body["result"]["title"], "测试局1");
    let (_, body) = ckan_call(&server, "group_list", "all_fields=true", Some(ADMIN_KEY)).await;
    assert!(
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "b01" && g["package_count"] == 3)
    );
    // Anonymous callers' counts are of open data only, like their lists.
    let (_, body) = ckan_call(&server, "organization_list", "all_fields=true", None).await;
    let counts: Vec<&Value> = body["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|org| &org["package_count"])
        .collect();
    assert_eq!(counts, [&json!(1), &json!(1)], "{body}");
    let (_, body) = ckan_call(
        &server,
        "organization_show",
        &format!("id={}", fund.to_lowercase()),
        None,
    )
    .await;
    assert_eq!(body["result"]["package_count"], 1, "{body}");
    let (_, body) = ckan_call(&server, "group_list", "all_fields=true", None).await;
    assert!(
        body["result"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["name"] == "b01" && g["package_count"] == 1),
        "{body}"
    );
    let (_, body) = ckan_call(&server, "group_show", "id=t03", None).await;
    assert_eq!(body["result"]["package_count"], 1, "{body}");
    // A start that overflows is refused like any start past the offset window.
    let (status, body) = ckan_call(
        &server,
        "package_search",
        "start=18446744073709551615&rows=10",
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Search Query Error")),
        "{body}"
    );
    let (_, body) = ckan_call(&server, "group_show", "id=t03", Some(ADMIN_KEY)).await;
    assert_eq!(body["result"]["title"], "社会保障");
    let (_, body) = ckan_call(&server, "status_show", "", None).await;
    assert!(body["result"]["ckan_version"].is_string());
    let (status, body) = ckan_call(&server, "package_patch", "", Some(ADMIN_KEY)).await;
    assert_eq!(
        (status, &body["error"]["__type"]),
        (StatusCode::BAD_REQUEST, &json!("Bad Request")),
        "{body}"
    );
    // POST with a JSON body and the X-CKAN-API-Key header, at /api/action too.
    let response = server
        .client
        .post(format!("{}/api/action/package_search", server.base))
        .header("X-CKAN-API-Key", ADMIN_KEY)
        .json(&json!({ "q": "养老", "rows": 1 }))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["count"], 1, "{body}");
    // A body past the API's 4 MiB is refused in CKAN's envelope.
    let response = server
        .client
        .post(format!("{}/api/action/package_search", server.base))
        .header("X-CKAN-API-Key", ADMIN_KEY)
        .json(&json!({ "q": "x".repeat(civitas_api::extract::MAX_JSON_BODY) }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (&body["success"], &body["error"]["__type"]),
        (&json!(false), &json!("Bad Request")),
        "{body}"
    );

    // The real ckanapi client, unchanged.
    let python = python();
    let bin = python.parent().unwrap();
    let ckanapi = bin.join("ckanapi");
    let run = |args: &[&str]| {
        // `dump` starts its workers as `ckanapi` found on the PATH.
        let path = std::env::join_paths(std::iter::once(bin.to_path_buf()).chain(
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
        ))
        .unwrap();
        let output = Command::new(&ckanapi)
            .args(args)
            .args(["-r", &server.base, "-a", ADMIN_KEY])
            .env("PATH", path)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "ckanapi {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let printed: Value =
        serde_json::from_str(&run(&["action", "package_search", "q=公积金", "rows=10"])).unwrap();
    assert_eq!(printed["count"], 3);
    let found = run(&["search", "datasets", "q=公积金"]);
    assert_eq!(found.lines().count(), 3, "{found}");
    assert!(found.lines().all(|line| {
        serde_json::from_str::<Value>(line).unwrap()["name"]
            .as_str()
            .unwrap()
            .starts_with("320100-b01")
    }));
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("datasets.jsonl");
    run(&["dump", "datasets", "--all", "-O", dump.to_str().unwrap()]);
    let dumped = std::fs::read_to_string(&dump).unwrap();
    assert_eq!(dumped.lines().count(), 5, "{dumped}");
    let organizations: Value =
        serde_json::from_str(&run(&["action", "organization_list"])).unwrap();
    assert_eq!(organizations.as_array().unwrap().len(), 2);
}

/// Every requested facet costs counters in every segment of the index: a facet named again is
/// counted once, and more names than there are facets are refused, naming the parameter.
async fn repeated_facets_are_counted_once(server: TestServer) {
    catalog(&server).await;
    search_until(&server, "q=", Some(ADMIN_KEY), |r| r["total"] == 5).await;

    let (results, _) = search_until(&server, "facet=tag&facet=tag,tag&facet=kind", None, |r| {
        r["total"] == 2
    })
    .await;
    assert_eq!(results["facets"].as_object().unwrap().len(), 2, "{results}");
    let many = vec!["facet=tag"; 20].join("&");
    let (status, problem) = server
        .request(Method::GET, &format!("/api/v1/search?{many}"), None, None)
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("facet")),
        "{problem}"
    );
    let every = "facet=provider,level,kind,sharing_type,open_type,classification,update_cycle,origin_node,tag";
    let (status, results) = server
        .request(Method::GET, &format!("/api/v1/search?{every}"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{results}");
    assert_eq!(results["facets"].as_object().unwrap().len(), 9);

    // CKAN: names repeat or alias one facet; each name is answered, the facet counted once.
    let (status, body) = ckan_call(
        &server,
        "package_search",
        "facet.field=[\"tags\",\"tags\",\"organization\",\"owner_org\"]",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let facets = body["result"]["facets"].as_object().unwrap();
    assert_eq!(facets.len(), 3, "{body}");
    assert_eq!(facets["organization"], facets["owner_org"]);
    let many = format!("[{}]", vec!["\"tags\""; 20].join(","));
    let (status, body) = ckan_call(
        &server,
        "package_search",
        &format!("facet.field={many}"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::CONFLICT, Some("Validation Error")),
        "{body}"
    );
    assert!(body["error"]["facet.field"].is_array(), "{body}");

    // Filters are clauses of the query: a hundred at most, in either API.
    let many = vec!["filter=tag:x"; 101].join("&");
    let (status, body) = server
        .request(Method::GET, &format!("/api/v1/search?{many}"), None, None)
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("filter")),
        "{body}"
    );
    let fq = vec!["tags:x"; 101].join("%20");
    let (status, body) = ckan_call(&server, "package_search", &format!("fq={fq}"), None).await;
    assert_eq!(
        (status, body["error"]["__type"].as_str()),
        (StatusCode::BAD_REQUEST, Some("Search Query Error")),
        "{body}"
    );
    let (status, _) = server
        .request(
            Method::GET,
            &format!("/api/v1/search?{}", vec!["filter=tag:x"; 100].join("&")),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// `fq` as it goes into a query string: spaces, brackets, quotes and `+` encoded.
fn encode_fq(fq: &str) -> String {
    fq.replace('%', "%25")
        .replace(' ', "%20")
        .replace('+', "%2B")
        .replace('[', "%5B")
        .replace(']', "%5D")
        .replace('"', "%22")
}

/// Walks the catalog as CKAN's harvester does, two datasets a page: the ids in the order
/// listed, and the count the last page gave.
async fn harvest(server: &TestServer, key: Option<&str>, fq: &str) -> (Vec<String>, u64) {
    let mut ids = Vec::new();
    let mut count = None;
    for page in 0.. {
        let (status, body) = ckan_call(
            server,
            "package_search",
            &format!(
                "sort=id%20asc&rows=2&start={}&fq={}",
                page * 2,
                encode_fq(fq)
            ),
            key,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{fq}: {body}");
        count = Some(body["result"]["count"].as_u64().unwrap());
        let results = body["result"]["results"].as_array().unwrap();
        if results.is_empty() {
            break;
        }
        ids.extend(results.iter().map(|p| p["id"].as_str().unwrap().to_owned()));
    }
    (ids, count.unwrap())
}

/// What CKAN's harvester asks: `sort=id asc`, `start` raised page by page until a page is empty,
/// and for a later run `fq=metadata_modified:[SINCE TO *]`; an anonymous harvester gets open
/// data only, and `start` may go past the search index's window.
async fn ckan_harvesters_walk_the_catalog_by_id(server: TestServer) {
    let (_, insurance) = catalog(&server).await;
    let (ids, count) = harvest(&server, Some(ADMIN_KEY), "").await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(count, 5);
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "in id order, each once");

    // Anonymous: open data only (two of the five).
    let (open, open_count) = harvest(&server, None, "").await;
    assert_eq!((open.len(), open_count), (2, 2), "{open:?}");

    // Changed since: everything since 2000, nothing since a time to come.
    let (since, _) = harvest(
        &server,
        Some(ADMIN_KEY),
        "metadata_modified:[2000-01-01T00:00:00Z TO *]",
    )
    .await;
    assert_eq!(since, ids);
    let (_, none) = harvest(
        &server,
        Some(ADMIN_KEY),
        "metadata_modified:[2100-01-01T00:00:00Z TO *]",
    )
    .await;
    assert_eq!(none, 0);
    let (theirs, _) = harvest(
        &server,
        Some(ADMIN_KEY),
        &format!("organization:{}", insurance.to_lowercase()),
    )
    .await;
    assert_eq!(theirs.len(), 2, "{theirs:?}");

    // Past the index's window, a listing is simply empty; a search is refused.
    let (status, body) = ckan_call(
        &server,
        "package_search",
        "sort=id%20asc&start=50000",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["results"], json!([]));
    let (status, _) = ckan_call(&server, "package_search", "start=50000", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for refused in [
        "sort=id%20asc&q=公积金",
        "sort=id%20asc&facet.field=[\"tags\"]",
        "sort=id%20asc&fq=tags:社保",
        "sort=id%20asc&fq=metadata_modified:%5Byesterday%20TO%20*%5D",
    ] {
        let (status, body) = ckan_call(&server, "package_search", refused, Some(ADMIN_KEY)).await;
        assert_eq!(
            (status, body["error"]["__type"].as_str()),
            (StatusCode::BAD_REQUEST, Some("Search Query Error")),
            "{refused}: {body}"
        );
    }
    // CKAN's "all values" facet limit, once the index has the catalog.
    search_until(&server, "q=公积金", Some(ADMIN_KEY), |r| r["total"] == 3).await;
    let (status, body) = ckan_call(
        &server,
        "package_search",
        "facet.field=[\"tags\"]&facet.limit=-1",
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body["result"]["search_facets"]["tags"]["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The catalog, and a third organization with an open housing-fund entry, `320100-B01-000004`
/// (tags 公积金 and 住房): the organizations' codes in CKAN's lower case.
async fn catalog_of_three(server: &TestServer) -> (String, String, String) {
    let (fund, insurance) = catalog(server).await;
    let third = server.create_org(3, None).await.to_string();
    let mut body = resource("320100-B01-000004", &third);
    body["open_type"] = json!("open");
    let (status, created) = server.post("/api/v1/resources", ADMIN_KEY, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    search_until(server, "q=", Some(ADMIN_KEY), |r| r["total"] == 6).await;
    (
        fund.to_lowercase(),
        insurance.to_lowercase(),
        third.to_lowercase(),
    )
}

/// How many datasets a search (`sort=score desc`) with `fq` finds, checking that the page holds
/// them all and that an anonymous caller's are all open.
async fn fq_count(server: &TestServer, key: Option<&str>, fq: &str) -> u64 {
    let (status, body) = ckan_call(
        server,
        "package_search",
        &format!("fq={}&rows=10", encode_fq(fq)),
        key,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fq}: {body}");
    let results = body["result"]["results"].as_array().unwrap();
    let count = body["result"]["count"].as_u64().unwrap();
    assert_eq!(results.len() as u64, count, "{fq} ({key:?}): {body}");
    if key.is_none() {
        assert!(
            results.iter().all(|package| package["isopen"] == true),
            "{fq}: {body}"
        );
    }
    count
}

/// The message of the Search Query Error that `package_search` answers `fq` with.
async fn fq_refusal(server: &TestServer, sort: &str, fq: &str) -> String {
    let (status, body) = ckan_call(
        server,
        "package_search",
        &format!("sort={}&fq={}", encode_fq(sort), encode_fq(fq)),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(
        (status, body["error"]["__type"].as_str(), &body["success"]),
        (
            StatusCode::BAD_REQUEST,
            Some("Search Query Error"),
            &json!(false)
        ),
        "{fq}: {body}"
    );
    body["error"]["message"].as_str().unwrap().to_owned()
}

/// A harvest source configured with `organizations_filter_include` sends
/// `fq=organization:a OR organization:b`, one with `organizations_filter_exclude`
/// `-organization:a -organization:b` (and `groups:…` likewise), beside the modified range of a
/// later run. Listings and searches both take them; anonymous callers still see open data only.
async fn ckan_harvesters_include_and_exclude_organizations_and_groups(server: TestServer) {
    let (fund, insurance, third) = catalog_of_three(&server).await;
    let fund_or_third = format!("organization:{fund} OR organization:{third}");
    let listed = |codes: &[&str]| -> Vec<String> { codes.iter().map(|c| c.to_string()).collect() };
    let fund_and_third = listed(&[
        "320100-B01-000001",
        "320100-B01-000002",
        "320100-B01-000003",
        "320100-B01-000004",
    ]);
    let insurances = listed(&["320100-T03-000001", "320100-T03-000002"]);
    for (key, fq, expected) in [
        (
            Some(ADMIN_KEY),
            fund_or_third.clone(),
            fund_and_third.clone(),
        ),
        (
            Some(ADMIN_KEY),
            format!("{fund_or_third} metadata_modified:[2000-01-01T00:00:00Z TO *]"),
            fund_and_third.clone(),
        ),
        (
            Some(ADMIN_KEY),
            format!("metadata_modified:[2100-01-01T00:00:00Z TO *] {fund_or_third}"),
            vec![],
        ),
        // Anonymous: the open ones among them.
        (
            None,
            fund_or_third.clone(),
            listed(&["320100-B01-000001", "320100-B01-000004"]),
        ),
        (
            Some(ADMIN_KEY),
            format!("-organization:{fund}"),
            listed(&[
                "320100-B01-000004",
                "320100-T03-000001",
                "320100-T03-000002",
            ]),
        ),
        (
            Some(ADMIN_KEY),
            format!("NOT organization:{fund}"),
            listed(&[
                "320100-B01-000004",
                "320100-T03-000001",
                "320100-T03-000002",
            ]),
        ),
        (
            Some(ADMIN_KEY),
            format!("-organization:{fund} -organization:{third}"),
            insurances.clone(),
        ),
        (
            Some(ADMIN_KEY),
            format!("-organization:({fund} OR {third})"),
            insurances.clone(),
        ),
        (
            None,
            format!("-organization:{fund}"),
            listed(&["320100-B01-000004", "320100-T03-000001"]),
        ),
        (
            Some(ADMIN_KEY),
            format!("(organization:{fund} OR organization:{insurance}) -organization:{fund}"),
            insurances.clone(),
        ),
        // Clauses of one field all hold: their common organizations, none for two at once.
        (
            Some(ADMIN_KEY),
            format!("organization:({fund} OR {third}) organization:{third}"),
            listed(&["320100-B01-000004"]),
        ),
        (
            Some(ADMIN_KEY),
            format!("organization:{fund} organization:{insurance}"),
            vec![],
        ),
        // Groups are the classifications.
        (Some(ADMIN_KEY), "groups:t03".into(), insurances.clone()),
        (
            Some(ADMIN_KEY),
            format!("(groups:b01 OR groups:t03) -organization:{fund}"),
            listed(&[
                "320100-B01-000004",
                "320100-T03-000001",
                "320100-T03-000002",
            ]),
        ),
        (
            Some(ADMIN_KEY),
            format!("-groups:b01 organization:({fund} OR {insurance})"),
            insurances.clone(),
        ),
        // A name that is no credit code names no organization: it lets nothing through and
        // excludes nothing, as in a search.
        (Some(ADMIN_KEY), "organization:nobody".into(), vec![]),
        (
            Some(ADMIN_KEY),
            format!("organization:({fund} OR nobody) -groups:(t03 OR nothing)"),
            listed(&[
                "320100-B01-000001",
                "320100-B01-000002",
                "320100-B01-000003",
            ]),
        ),
        (
            Some(ADMIN_KEY),
            "-organization:nobody groups:t03".into(),
            insurances.clone(),
        ),
        // As ckanext-harvest sends its organization and group filters: any of the first and
        // any of the second.
        (
            Some(ADMIN_KEY),
            format!(
                "organization:{fund} OR organization:{third} groups:b01 OR groups:t03 \
                 metadata_modified:[2000-01-01T00:00:00Z TO *]"
            ),
            listed(&[
                "320100-B01-000001",
                "320100-B01-000002",
                "320100-B01-000003",
                "320100-B01-000004",
            ]),
        ),
        (
            Some(ADMIN_KEY),
            format!("organization:{fund} OR organization:{insurance} -groups:b01"),
            insurances.clone(),
        ),
        // An open type: anonymous callers list open data only, so closed data is none.
        (
            Some(ADMIN_KEY),
            "open_type:closed".into(),
            listed(&[
                "320100-B01-000002",
                "320100-B01-000003",
                "320100-T03-000002",
            ]),
        ),
        (None, "open_type:closed".into(), vec![]),
        (
            None,
            "open_type:open groups:b01".into(),
            listed(&["320100-B01-000001", "320100-B01-000004"]),
        ),
    ] {
        let (ids, count) = harvest(&server, key, &fq).await;
        assert_eq!(ids, expected, "{fq} ({key:?})");
        assert_eq!(count, expected.len() as u64, "{fq} ({key:?})");
    }

    // A search (sort=score desc) takes the same clauses from the index.
    for (key, fq, expected) in [
        (Some(ADMIN_KEY), fund_or_third.clone(), 4),
        (None, fund_or_third.clone(), 2),
        (Some(ADMIN_KEY), format!("-organization:{fund}"), 3),
        (None, format!("-organization:{fund}"), 2),
        (None, format!("-organization:{fund} -open_type:open"), 0),
        (
            Some(ADMIN_KEY),
            format!("-groups:t03 -organization:{third}"),
            3,
        ),
        (Some(ADMIN_KEY), "tags:社保 -tags:养老".to_string(), 1),
    ] {
        assert_eq!(
            fq_count(&server, key, &fq).await,
            expected,
            "{fq} ({key:?})"
        );
    }

    // What a listing cannot serve, or nobody can read, is refused, naming the clause.
    for (sort, fq, fragment) in [
        (
            "id asc",
            format!("organization:{fund} OR groups:b01"),
            "groups:b01",
        ),
        (
            "id asc",
            format!("organization:{fund} OR organization:{third} AND groups:b01"),
            "stand in one group: say which binds first with parentheses",
        ),
        ("id asc", "tags:公积金".into(), "not \"tags:公积金\""),
        (
            "id asc",
            "open_type:(open OR closed)".into(),
            "one open_type",
        ),
        (
            "id asc",
            "OR groups:b01".into(),
            "OR at character 1 must stand between two clauses",
        ),
        (
            "id asc",
            "groups:b01 OR".into(),
            "OR at character 12 must stand between two clauses",
        ),
        (
            "id asc",
            "- groups:b01".into(),
            "'-' at character 1 must be followed",
        ),
        (
            "id asc",
            "-tags:社保".into(),
            "excludes organizations and groups only",
        ),
        (
            "id asc",
            "groups:b01 OR metadata_modified:[2000-01-01T00:00:00Z TO *]".into(),
            "OR cannot join a metadata_modified range",
        ),
        (
            "id asc",
            "NOT metadata_modified:[2000-01-01T00:00:00Z TO *]".into(),
            "cannot be excluded",
        ),
        (
            "score desc",
            "metadata_modified:[2000-01-01T00:00:00Z TO *]".into(),
            "only in a listing",
        ),
    ] {
        let message = fq_refusal(&server, sort, &fq).await;
        assert!(message.contains(fragment), "{fq}: {message}");
    }
}

/// `fq` as CKAN's Solr reads it: clauses all hold (two tags are both, as CKAN's web interface
/// narrows a search by a second tag), OR between clauses of any fields, NOT and `-`,
/// parentheses and groups of one field's values, OR binding tighter than the spaces between
/// the clauses that all hold. Whatever it says,
/// an anonymous caller finds open data only.
async fn ckan_fq_clauses_all_hold_with_or_not_and_groups(server: TestServer) {
    let (fund, insurance, third) = catalog_of_three(&server).await;
    // Fund: 000001 open (公积金 住房), 000002 closed (公积金), 000003 closed (公积金 贷款);
    // insurance: T03 000001 open (社保), 000002 closed (社保 养老); third: 000004 open (公积金 住房).
    for (key, fq, expected) in [
        // Two tags: both.
        (Some(ADMIN_KEY), "tags:公积金 tags:住房".to_owned(), 2),
        (
            Some(ADMIN_KEY),
            "tags:\"公积金\" tags:\"贷款\"".to_owned(),
            1,
        ),
        (Some(ADMIN_KEY), "tags:公积金 AND tags:养老".to_owned(), 0),
        (Some(ADMIN_KEY), "tags:(公积金 住房)".to_owned(), 2),
        // Either of a field's values.
        (Some(ADMIN_KEY), "tags:(住房 OR 贷款)".to_owned(), 3),
        (Some(ADMIN_KEY), "tags:(\"住房\" OR 养老)".to_owned(), 3),
        (Some(ADMIN_KEY), "tags:住房 OR tags:贷款".to_owned(), 3),
        // Two organizations at once: none.
        (
            Some(ADMIN_KEY),
            format!("organization:{fund} organization:{insurance}"),
            0,
        ),
        // Grouped alternatives and another field.
        (
            Some(ADMIN_KEY),
            format!("(organization:{fund} OR organization:{insurance}) AND tags:社保"),
            2,
        ),
        (
            Some(ADMIN_KEY),
            format!("(organization:{fund} OR organization:{insurance}) tags:住房"),
            1,
        ),
        // Exclusions.
        (Some(ADMIN_KEY), "-tags:公积金".to_owned(), 2),
        (Some(ADMIN_KEY), "NOT tags:公积金".to_owned(), 2),
        (
            Some(ADMIN_KEY),
            "NOT (tags:公积金 OR tags:养老)".to_owned(),
            1,
        ),
        (Some(ADMIN_KEY), "groups:b01 -tags:住房".to_owned(), 2),
        // OR across fields.
        (
            Some(ADMIN_KEY),
            format!("organization:{third} OR tags:养老"),
            2,
        ),
        (None, format!("organization:{third} OR tags:养老"), 1),
        (
            Some(ADMIN_KEY),
            format!("organization:{fund} OR groups:t03"),
            5,
        ),
        // OR binds tighter than the spaces between clauses, and parentheses say otherwise.
        (
            Some(ADMIN_KEY),
            format!("organization:{third} OR tags:社保 tags:养老"),
            1,
        ),
        (
            Some(ADMIN_KEY),
            format!("organization:{third} OR (tags:社保 tags:养老)"),
            2,
        ),
        (
            Some(ADMIN_KEY),
            format!("(organization:{third} OR tags:社保) tags:养老"),
            1,
        ),
        // Whatever the fq says of open types, an anonymous caller finds open data only.
        (
            Some(ADMIN_KEY),
            "open_type:closed OR tags:公积金".to_owned(),
            5,
        ),
        (None, "open_type:closed OR tags:公积金".to_owned(), 2),
        (Some(ADMIN_KEY), "NOT open_type:open".to_owned(), 3),
        (None, "NOT open_type:open".to_owned(), 0),
        (None, "-open_type:open".to_owned(), 0),
        (None, "open_type:closed".to_owned(), 0),
        (
            None,
            format!("-open_type:open OR organization:{insurance}"),
            1,
        ),
        (
            None,
            "open_type:(closed OR conditional) OR tags:社保".to_owned(),
            1,
        ),
        (None, "open_type:(closed OR open)".to_owned(), 3),
    ] {
        assert_eq!(
            fq_count(&server, key, &fq).await,
            expected,
            "{fq} ({key:?})"
        );
    }

    // Syntax the parser cannot read is CKAN's Search Query Error, naming where.
    for (fq, fragment) in [
        ("tags:(住房 OR 贷款", "'(' at character 6 is not closed"),
        ("tags:住房)", "')' at character 8 closes no '('"),
        (
            "tags:住房 OR",
            "OR at character 9 must stand between two clauses",
        ),
        ("tags:住房 AND AND tags:贷款", "AND at character 9"),
        ("NOT", "NOT at character 1 must be followed by a clause"),
        ("tags:\"住房", "unbalanced quote"),
        ("住房", "cannot read fq clause \"住房\" at character 1"),
        ("title:住房", "cannot filter on \"title\""),
        ("tags:(organization:x)", "names a field inside a group"),
    ] {
        let message = fq_refusal(&server, "score desc", fq).await;
        assert!(message.contains(fragment), "{fq}: {message}");
    }
}

/// The index shows each entry with its provider's name and level: after the provider is renamed
/// or moves to another level, its entries are indexed again though they did not change.
async fn a_renamed_provider_is_indexed_anew(server: TestServer) {
    let (fund, _) = catalog(&server).await;
    let of_fund = format!("q=&filter=provider:{fund}");
    let (before, _) = search_until(&server, &of_fund, Some(ADMIN_KEY), |r| r["total"] == 3).await;
    assert_eq!(before["total"], 3, "{before}");
    let (status, renamed) = server
        .patch(
            &format!("/api/v1/organizations/{fund}"),
            ADMIN_KEY,
            json!({ "name": "南京住房公积金管理中心江北分中心" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{renamed}");
    let named = |results: &Value| {
        results["hits"].as_array().is_some_and(|hits| {
            hits.len() == 3
                && hits.iter().all(|hit| {
                    hit["resource"]["provider"]["name"] == "南京住房公积金管理中心江北分中心"
                })
        })
    };
    let (after, _) = search_until(&server, &of_fund, Some(ADMIN_KEY), named).await;
    assert!(named(&after), "{after}");
    // The entries themselves did not change: no new versions.
    let (_, resource) = server
        .get("/api/v1/resources/320100-B01-000001", ADMIN_KEY)
        .await;
    assert_eq!(resource["version"], 1, "{resource}");
}
