//! The catalog through HTTP and the command line.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer, on_both_stores};

on_both_stores!(
    resources_lifecycle_and_history,
    resource_bad_input_and_foreign_officers,
    import_reports_broken_rows_and_export_round_trips,
    an_export_replaces_its_file_whole_or_not_at_all,
    concurrent_writes_neither_fail_nor_replace_silently,
);

pub fn resource(code: &str, provider: &str) -> Value {
    json!({
        "code": code,
        "kind": "dataset",
        "classification": &code[7..10],
        "name": "住房公积金缴存信息",
        "name_en": "Housing provident fund deposits",
        "provider": provider,
        "summary": "按月缴存明细",
        "format": "json",
        "items": [
            { "code": "id_number", "name": "公民身份号码", "data_type": "string", "sensitivity": "personal", "mask": "citizen_id" },
            { "code": "balance", "name": "账户余额", "data_type": "decimal", "sensitivity": "internal" }
        ],
        "sharing": { "type": "conditional", "conditions": "仅用于住房公积金业务", "method": "interface" },
        "open_type": "closed",
        "update_cycle": "monthly",
        "published_on": "2026-01-15",
        "tags": ["公积金", "住房"]
    })
}

async fn resources_lifecycle_and_history(server: TestServer) {
    let org = server.create_org(1, None).await.to_string();
    let officer = server
        .user_with_key("officer", "data_officer", Some(&org.parse().unwrap()))
        .await;
    let code = "320100-B01-000001";
    let (status, created) = server
        .post("/api/v1/resources", &officer, resource(code, &org))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(
        (created["version"].as_u64(), created["active"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(created["items"][0]["mask"], "citizen_id");

    let mut changed = resource(code, &org);
    changed["name"] = json!("住房公积金缴存明细");
    let (status, updated) = server
        .request(
            Method::PUT,
            &format!("/api/v1/resources/{code}"),
            Some(&officer),
            Some(changed.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["version"], 2);
    // The same body again changes nothing.
    let (_, same) = server
        .request(
            Method::PUT,
            &format!("/api/v1/resources/{code}"),
            Some(&officer),
            Some(changed),
        )
        .await;
    assert_eq!(same["version"], 2);

    let (status, gone) = server
        .delete(&format!("/api/v1/resources/{code}"), &officer)
        .await;
    assert_eq!(
        (status, gone["active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    let (status, history) = server
        .get(&format!("/api/v1/resources/{code}/history"), &officer)
        .await;
    assert_eq!(status, StatusCode::OK);
    let versions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version"].as_u64().unwrap(),
                v["resource"]["name"].as_str().unwrap().to_owned(),
                v["changed_by"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        versions[0],
        (1, "住房公积金缴存信息".to_owned(), "officer".to_owned())
    );
    assert_eq!(versions[1].1, "住房公积金缴存明细");
    assert_eq!(versions.len(), 3);

    let (_, listed) = server.get("/api/v1/resources", &officer).await;
    assert_eq!(
        listed["items"].as_array().unwrap().len(),
        0,
        "deactivated resources are not listed"
    );
    let (_, listed) = server.get("/api/v1/resources?active=false", &officer).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .post(
            &format!("/api/v1/resources/{code}/reactivate"),
            &officer,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = server
        .get(
            &format!("/api/v1/resources?provider={org}&kind=dataset"),
            &officer,
        )
        .await;
    assert_eq!(listed["items"][0]["code"], code);

    // Open data is readable without a key; the rest is not.
    let (status, _) = server
        .request(
            Method::GET,
            &format!("/api/v1/resources/{code}"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut open = resource("320100-B01-000002", &org);
    open["open_type"] = json!("open");
    server.post("/api/v1/resources", &officer, open).await;
    let (status, body) = server
        .request(
            Method::GET,
            "/api/v1/resources/320100-B01-000002",
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (_, events) = server
        .get(&format!("/api/v1/audit/events?object_id={code}"), ADMIN_KEY)
        .await;
    let actions: Vec<_> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "resource.reactivate",
            "resource.deactivate",
            "resource.update",
            "resource.create"
        ]
    );
}

async fn resource_bad_input_and_foreign_officers(server: TestServer) {
    let own = server.create_org(1, None).await.to_string();
    let other = server.create_org(2, None).await.to_string();
    let officer = server
        .user_with_key("officer", "data_officer", Some(&own.parse().unwrap()))
        .await;
    let developer = server
        .user_with_key("dev", "developer", Some(&own.parse().unwrap()))
        .await;

    // (what, JSON pointer to change, new value, field named in the 422)
    let cases = [
        ("bad kind", "/kind", json!("spreadsheet"), "kind"),
        (
            "bad sharing type",
            "/sharing/type",
            json!("sometimes"),
            "sharing.type",
        ),
        ("bad open type", "/open_type", json!("ajar"), "open_type"),
        (
            "bad cycle",
            "/update_cycle",
            json!("hourly"),
            "update_cycle",
        ),
        (
            "bad sensitivity",
            "/items/0/sensitivity",
            json!("secret"),
            "items[0].sensitivity",
        ),
        ("no items", "/items", json!([]), "items"),
        (
            "none with method",
            "/sharing",
            json!({ "type": "none", "method": "download" }),
            "sharing.method",
        ),
        ("bad code", "/code", json!("B01-1"), "code"),
        (
            "code and classification disagree",
            "/classification",
            json!("T01"),
            "code",
        ),
        (
            "unknown provider",
            "/provider",
            json!("91350100M000100Y43"),
            "provider",
        ),
        (
            "bad date",
            "/published_on",
            json!("2026-13-01"),
            "published_on",
        ),
    ];
    for (what, pointer, value, field) in cases {
        let mut body = resource("320100-B01-000009", &own);
        *body.pointer_mut(pointer).unwrap() = value;
        let (status, problem) = server.post("/api/v1/resources", ADMIN_KEY, body).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{what}: {problem}"
        );
        assert_eq!(problem["field"], field, "{what}: {problem}");
    }

    let (status, _) = server
        .post(
            "/api/v1/resources",
            &officer,
            resource("320100-B01-000001", &own),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, problem) = server
        .post(
            "/api/v1/resources",
            &officer,
            resource("320100-B01-000001", &own),
        )
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate"))
    );

    // A data officer of one organization cannot publish for, or take over, another's resources.
    let (status, _) = server
        .post(
            "/api/v1/resources",
            &officer,
            resource("320100-B01-000002", &other),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let foreign_officer = server
        .user_with_key("foreign", "data_officer", Some(&other.parse().unwrap()))
        .await;
    let mut takeover = resource("320100-B01-000001", &other);
    takeover["name"] = json!("x");
    let (status, _) = server
        .request(
            Method::PUT,
            "/api/v1/resources/320100-B01-000001",
            Some(&foreign_officer),
            Some(takeover),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .delete("/api/v1/resources/320100-B01-000001", &foreign_officer)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = server
        .post(
            "/api/v1/resources",
            &developer,
            resource("320100-B01-000003", &own),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "developers read the catalog, officers write it"
    );
    let (status, body) = server
        .request(
            Method::PUT,
            "/api/v1/resources/320100-B01-000001",
            Some(&officer),
            Some(resource("320100-B01-000004", &own)),
        )
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("code"))
    );
    let (status, _) = server
        .get("/api/v1/resources/320100-B01-000404", &officer)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (_, resource) = server
        .get("/api/v1/resources/320100-B01-000001", &officer)
        .await;
    assert_eq!(resource["version"], 1, "no failed request changed anything");
}

async fn import_reports_broken_rows_and_export_round_trips(server: TestServer) {
    let org = server.create_org(1, None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("catalog.csv");
    let header = "code,kind,classification,name,name_en,provider,provider_system,summary,format,items,sharing_type,sharing_conditions,sharing_method,open_type,update_cycle,published_on,related,tags,origin_node,device";
    let row = |n: u32, sharing: &str, open: &str| {
        format!(
            "320100-T03-{n:06},dataset,T03,社会保险参保信息{n},Social insurance enrolment {n},{org},,参保明细,csv,\"id_number|公民身份号码|string|personal|citizen_id;insured_months|参保月数|integer|internal\",{sharing},,,{open},monthly,2026-02-01,,社保;参保,,"
        )
    };
    let lines = [
        header.to_owned(),
        row(1, "unconditional", "closed"),
        row(2, "partial", "closed"), // line 3: bad sharing type
        row(3, "unconditional", "closed"),
        row(4, "unconditional", "ajar"), // line 5: bad open type
        row(5, "unconditional", "closed").replace(&org, "91350100M000100Y43"), // line 6: unknown provider
        "320100-T03-000006,dataset,T03,名称".to_owned(), // line 7: too few cells
        row(7, "unconditional", "closed"),
    ];
    std::fs::write(&csv_path, lines.join("\n") + "\n").unwrap();

    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_civitas"));
        let store = match &server.settings.store {
            civitas_store::StoreUrl::Postgres(url) => url.clone(),
            sqlite => sqlite.to_string(),
        };
        command
            .args(args)
            .arg("--data-dir")
            .arg(&server.settings.data_dir)
            .arg("--store")
            .arg(store);
        command.output().unwrap()
    };
    let output = run(&["catalog", "import", csv_path.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 created, 0 updated, 0 unchanged, 4 rejected"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("search index in use by a running server"),
        "{stdout}"
    );
    for expected in [
        "line 3, column sharing_type",
        "line 5, column open_type",
        "line 6, column provider",
        "line 7",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    let (_, listed) = server.get("/api/v1/resources", ADMIN_KEY).await;
    let codes: Vec<_> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        codes,
        [
            "320100-T03-000001",
            "320100-T03-000003",
            "320100-T03-000007"
        ]
    );

    // The running server indexes what the command wrote (within a second; the test allows for
    // a loaded CI machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, found) = server
            .get(
                "/api/v1/search?q=%E7%A4%BE%E4%BC%9A%E4%BF%9D%E9%99%A9",
                ADMIN_KEY,
            )
            .await;
        if found["total"] == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{found}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // A resource whose texts hold what CSV cells make awkward: the list separators, padding,
    // backslashes and line breaks.
    let mut awkward = resource("320100-T03-000008", &org);
    awkward["name"] = json!(" 法人登记信息\u{3000}");
    awkward["summary"] = json!("见 \\\\fs01\\登记;\n");
    awkward["items"][1]["name"] = json!("余额|合计;元 ");
    awkward["tags"] = json!(["法人;机构", " 登记", "a\\"]);
    let (status, created) = server.post("/api/v1/resources", ADMIN_KEY, awkward).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");

    // Export, re-import: nothing changes.
    for format in ["csv", "jsonl"] {
        let export_path = dir.path().join(format!("export.{format}"));
        let output = run(&[
            "catalog",
            "export",
            "--output",
            export_path.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let output = run(&["catalog", "import", export_path.to_str().unwrap()]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains("0 created, 0 updated, 4 unchanged, 0 rejected"),
            "{format}: {stdout}"
        );
    }
    let exported = std::fs::read_to_string(dir.path().join("export.csv")).unwrap();
    for escaped in [
        "\\ 法人登记信息\\\u{3000}",
        "余额\\|合计\\;元\\ ",
        "法人\\;机构;\\ 登记;a\\\\",
    ] {
        assert!(exported.contains(escaped), "{escaped:?} in {exported}");
    }
    let (_, stored) = server
        .get("/api/v1/resources/320100-T03-000008", ADMIN_KEY)
        .await;
    assert_eq!(
        (&stored["version"], &stored["tags"]),
        (&json!(1), &json!(["法人;机构", " 登记", "a\\"]))
    );
    let exported = std::fs::read_to_string(dir.path().join("export.jsonl")).unwrap();
    let first: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(first["items"][0]["mask"], "citizen_id");
    assert_eq!(first["tags"], json!(["社保", "参保"]));
}

/// Runs the `civitas` command with `args` on the test server's data dir and store.
fn civitas_command(server: &TestServer, args: &[&str]) -> std::process::Output {
    civitas_on(server, args).output().unwrap()
}

/// The `civitas` command with `args` on the test server's data dir and store, to run.
fn civitas_on(server: &TestServer, args: &[&str]) -> Command {
    let store = match &server.settings.store {
        civitas_store::StoreUrl::Postgres(url) => url.clone(),
        sqlite => sqlite.to_string(),
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_civitas"));
    command
        .args(args)
        .arg("--data-dir")
        .arg(&server.settings.data_dir)
        .arg("--store")
        .arg(store);
    command
}

/// Runs `statement` in the test server's store directly, as damage to the store would.
async fn execute_behind_the_store(server: &TestServer, statement: &str) {
    use sqlx::Connection;
    match &server.settings.store {
        civitas_store::StoreUrl::Sqlite(path) => {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path);
            let mut connection = sqlx::SqliteConnection::connect_with(&options)
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut connection)
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
        civitas_store::StoreUrl::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut connection)
                .await
                .unwrap();
            connection.close().await.unwrap();
        }
    }
}

/// An export reads the catalog a page at a time while it writes: a row that cannot be read on a
/// later page stops it after earlier pages reached the file. What it wrote is thrown away, and
/// a previous export at the path is left as it was; a successful one replaces it, keeping its
/// permissions.
async fn an_export_replaces_its_file_whole_or_not_at_all(server: TestServer) {
    let org = server.create_org(1, None).await.to_string();
    let dir = tempfile::tempdir().unwrap();
    // More than a page of the store's listing (1,000), and more than a write buffer.
    let rows = 1200;
    let jsonl: String = (1..=rows)
        .map(|n| {
            let row = resource(&format!("320100-T03-{n:06}"), &org);
            format!("{row}\n")
        })
        .collect();
    let import_path = dir.path().join("catalog.jsonl");
    std::fs::write(&import_path, jsonl).unwrap();
    let output = civitas_command(
        &server,
        &["catalog", "import", import_path.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("{rows} created")), "{stdout}");

    let exports = tempfile::tempdir().unwrap();
    let export_path = exports.path().join("catalog.jsonl");
    let export = || {
        civitas_command(
            &server,
            &[
                "catalog",
                "export",
                "--output",
                export_path.to_str().unwrap(),
            ],
        )
    };
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(exports.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };

    // The last resource's stored document no longer reads as a resource.
    let last = format!("320100-T03-{rows:06}");
    let damaged = format!("UPDATE resources SET document = 'x' || document WHERE code = '{last}'");
    execute_behind_the_store(&server, &damaged).await;
    let output = export();
    assert!(!output.status.success(), "the damaged row stops the export");
    assert!(
        names().is_empty(),
        "no file, not even a part: {:?}",
        names()
    );

    let previous = "the previous export\n";
    std::fs::write(&export_path, previous).unwrap();
    let output = export();
    assert!(!output.status.success());
    assert_eq!(std::fs::read_to_string(&export_path).unwrap(), previous);
    assert_eq!(names(), ["catalog.jsonl"]);

    // Repaired, the export replaces the previous one with every resource.
    let repaired =
        format!("UPDATE resources SET document = substr(document, 2) WHERE code = '{last}'");
    execute_behind_the_store(&server, &repaired).await;
    let output = export();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let exported = std::fs::read_to_string(&export_path).unwrap();
    assert_eq!(exported.lines().count(), rows);
    assert!(exported.ends_with('\n'));
    let last_row: Value = serde_json::from_str(exported.lines().last().unwrap()).unwrap();
    assert_eq!(last_row["code"], last.as_str());
    assert_eq!(names(), ["catalog.jsonl"]);

    // The export that replaces another keeps the permissions given to the one it replaces.
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    std::fs::set_permissions(&export_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(export().status.success());
    assert_eq!(mode(&export_path), 0o640);
    assert_eq!(names(), ["catalog.jsonl"]);

    // `-` is standard output, not a file of that name.
    let output = civitas_on(&server, &["catalog", "export", "--output", "-"])
        .current_dir(exports.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8(output.stdout).unwrap(), exported);
    assert_eq!(names(), ["catalog.jsonl"]);
}

/// An import in a process that holds the search index hands the index each batch as written;
/// where a write of somebody else's came in between, the index catches up from the store
/// instead, so that nothing is skipped.
#[tokio::test]
async fn the_index_follows_an_import_and_writes_in_between() {
    use civitas::{catalog_io, indexing::IndexFollower};
    use civitas_core::{RegionCode, authz::Permit, catalog::ResourceDraft, registry::Level};
    use civitas_search::{CatalogIndex, SearchRequest};
    use civitas_store::{NewOrganization, Store, WriteMode};

    let dir = tempfile::tempdir().unwrap();
    let settings = crate::support::test_settings(dir.path(), None);
    let store = Store::connect(&settings.store).await.unwrap();
    let permit = Permit::internal("civitas:test");
    let org = crate::support::uscc(1);
    store
        .create_organization(
            &permit,
            &NewOrganization {
                code: org.clone(),
                name: "南京市住房公积金管理中心".into(),
                name_en: None,
                level: Level::Municipal,
                region: RegionCode::parse("320100").unwrap(),
                parent: None,
            },
        )
        .await
        .unwrap();
    let code = |n: u32| format!("320100-B01-{n:06}");
    let draft = |n: u32| -> ResourceDraft {
        serde_json::from_value(resource(&code(n), &org.to_string())).unwrap()
    };
    let jsonl = |numbers: &[u32]| {
        numbers
            .iter()
            .map(|&n| serde_json::to_string(&draft(n)).unwrap() + "\n")
            .collect::<String>()
    };
    let follower = IndexFollower::start(&store, &settings)
        .await
        .unwrap()
        .expect("nobody else holds the index");
    let mut handed = Vec::new();
    let mut import = async |numbers: &[u32]| {
        let input = std::io::Cursor::new(jsonl(numbers));
        catalog_io::import(
            &store,
            input,
            catalog_io::Format::Jsonl,
            async |first, written| {
                handed.push((first, written.len()));
                follower.written(first, written).await;
            },
        )
        .await
        .unwrap()
    };
    assert_eq!(import(&[1, 2]).await.created, 2);
    // Somebody else's write, which nobody hands the index, then another import at once.
    store
        .write_resources(&permit, &[draft(3)], WriteMode::Create)
        .await
        .unwrap();
    assert_eq!(import(&[4, 1]).await.created, 1);
    assert_eq!(handed, [(1, 2), (4, 1)]);
    let indexed = follower.finish(&store, &settings, |_, _| {}).await.unwrap();
    assert_eq!(indexed, 4);
    store.close().await;

    let index = CatalogIndex::open(&settings.data_dir.join("index")).unwrap();
    let mut codes: Vec<String> = index
        .search(&SearchRequest::default())
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.code)
        .collect();
    codes.sort();
    assert_eq!(codes, [code(1), code(2), code(3), code(4)]);
}

/// Sends `body` to `path` with `method` and an optional `If-Match`; answers the status, the body
/// and the `ETag`.
async fn send_if_match(
    client: reqwest::Client,
    url: String,
    method: Method,
    body: Value,
    if_match: Option<String>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = client
        .request(method, url)
        .bearer_auth(ADMIN_KEY)
        .json(&body);
    if let Some(tag) = if_match {
        request = request.header("If-Match", tag);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let etag = response
        .headers()
        .get("etag")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap_or(Value::Null), etag)
}

/// Fires `bodies` at once; answers each status, body and `ETag`.
async fn all_at_once(
    server: &TestServer,
    method: Method,
    path: &str,
    bodies: Vec<(Value, Option<String>)>,
) -> Vec<(StatusCode, Value, Option<String>)> {
    let mut calls = tokio::task::JoinSet::new();
    for (body, if_match) in bodies {
        let client = server.client.clone();
        let url = format!("{}{path}", server.base);
        let method = method.clone();
        calls.spawn(send_if_match(client, url, method, body, if_match));
    }
    calls.join_all().await
}

async fn concurrent_writes_neither_fail_nor_replace_silently(server: TestServer) {
    let first = server.create_org(1, None).await.to_string();
    let second = server.create_org(2, None).await.to_string();
    let code = "320100-B01-000777";
    let path = format!("/api/v1/resources/{code}");

    // Creates of one code by two providers at once: one wins, the others are duplicates.
    let creates = (0..8)
        .map(|n| {
            let provider = if n % 2 == 0 { &first } else { &second };
            let mut body = resource(code, provider);
            body["name"] = json!(format!("并发创建 {n}"));
            (body, None)
        })
        .collect();
    let answers = all_at_once(&server, Method::POST, "/api/v1/resources", creates).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| [StatusCode::CREATED, StatusCode::CONFLICT].contains(status)),
        "{answers:?}"
    );
    let (status, stored) = server.get(&path, ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&stored["version"], &stored["name"], &stored["provider"]),
        (&json!(1), &created[0]["name"], &created[0]["provider"]),
        "the one created is the one stored"
    );
    let provider = stored["provider"].as_str().unwrap().to_owned();

    // Updates at once without If-Match: each is applied in turn or told of the change that
    // overtook it; none fails, and every applied one is in the history.
    let updates = (0..8)
        .map(|n| {
            let mut body = resource(code, &provider);
            body["name"] = json!(format!("并发修改 {n}"));
            (body, None)
        })
        .collect();
    let answers = all_at_once(&server, Method::PUT, &path, updates).await;
    assert!(
        answers
            .iter()
            .all(|(status, _, _)| [StatusCode::OK, StatusCode::CONFLICT].contains(status)),
        "{answers:?}"
    );
    let applied = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .count();
    assert!(applied >= 1, "{answers:?}");
    let (_, history) = server.get(&format!("{path}/history"), ADMIN_KEY).await;
    assert_eq!(history.as_array().unwrap().len(), 1 + applied, "{history}");

    // With If-Match: of updates of one version, one wins and the others get 412.
    let (status, current, etag) = send_if_match(
        server.client.clone(),
        format!("{}{path}", server.base),
        Method::GET,
        Value::Null,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let etag = etag.expect("GET answers an ETag");
    assert_eq!(etag, format!("\"{}\"", current["version"]));
    let updates = (0..6)
        .map(|n| {
            let mut body = resource(code, &provider);
            body["name"] = json!(format!("条件修改 {n}"));
            (body, Some(etag.clone()))
        })
        .collect();
    let answers = all_at_once(&server, Method::PUT, &path, updates).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _, _)| s.as_u16()).collect();
    statuses.sort();
    assert_eq!(statuses, [200, 412, 412, 412, 412, 412], "{answers:?}");
    let (_, winner, new_etag) = answers
        .iter()
        .find(|(status, _, _)| *status == StatusCode::OK)
        .unwrap();
    assert_eq!(
        new_etag.as_deref(),
        Some(format!("\"{}\"", winner["version"]).as_str())
    );
    let (status, problem, _) = send_if_match(
        server.client.clone(),
        format!("{}{path}", server.base),
        Method::PUT,
        resource(code, &provider),
        Some(etag.clone()),
    )
    .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("precondition_failed")),
        "{problem}"
    );
    let (status, _, _) = send_if_match(
        server.client.clone(),
        format!("{}{path}", server.base),
        Method::PUT,
        resource(code, &provider),
        Some("*".into()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A deactivated resource is not reactivated by an edit: that takes its own call.
    let (status, _) = server.delete(&path, ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK);
    let mut edited = resource(code, &provider);
    edited["name"] = json!("停用后修改");
    let (status, problem) = server
        .request(Method::PUT, &path, Some(ADMIN_KEY), Some(edited.clone()))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("reactivate"),
        "{problem}"
    );
    let (_, stored) = server.get(&path, ADMIN_KEY).await;
    assert_eq!(stored["active"], false);
    let (status, _) = server
        .request(
            Method::POST,
            &format!("{path}/reactivate"),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, stored) = server
        .request(Method::PUT, &path, Some(ADMIN_KEY), Some(edited))
        .await;
    assert_eq!(
        (status, &stored["name"]),
        (StatusCode::OK, &json!("停用后修改"))
    );
}
