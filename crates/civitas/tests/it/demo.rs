//! `civitas demo --scale small` end to end, as a newcomer uses it: start the binary, read the keys
//! file, search the catalog, apply for a resource and have it approved, call services through
//! the gateway, run the rental withdrawal, verify the ledger with the CLI, stop, and start again
//! on the same data dir.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

const CIVITAS: &str = env!("CARGO_BIN_EXE_civitas");

struct Demo {
    child: Child,
    api: String,
    gateway: String,
    stdout: String,
}

fn start_demo(data_dir: &Path, extra: &[&str]) -> Demo {
    let mut child = Command::new(CIVITAS)
        .args([
            "demo",
            "--scale",
            "small",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .env_remove("CIVITAS_BOOTSTRAP_TOKEN")
        .env("CIVITAS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut stdout = String::new();
    let mut addresses = None;
    while let Some(Ok(line)) = lines.next() {
        stdout.push_str(&line);
        stdout.push('\n');
        if let Some(rest) = line.split("serving the demo city: API on ").nth(1) {
            let mut words = rest.split(|c: char| c == ',' || c.is_whitespace());
            let api = words.next().unwrap().to_owned();
            let gateway = rest.split("gateway on ").nth(1).unwrap();
            let gateway = gateway.split_whitespace().next().unwrap().to_owned();
            addresses = Some((api, gateway));
            break;
        }
    }
    let (api, gateway) = addresses.unwrap_or_else(|| panic!("the demo did not start:\n{stdout}"));
    // Keep draining standard output so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Demo {
        child,
        api,
        gateway,
        stdout,
    }
}

fn stop(mut demo: Demo) {
    let status = Command::new("kill")
        .args(["-TERM", &demo.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = demo.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the demo did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a clean stop exits 0: {exit:?}");
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The first key entry that matches.
fn entry(keys: &Value, matches: impl Fn(&Value) -> bool) -> &Value {
    keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| matches(entry))
        .expect("a matching key entry")
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    key: &str,
    body: Option<Value>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_city_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("city");
    let demo = start_demo(&data_dir, &[]);
    assert!(
        demo.stdout.contains("is built and ready"),
        "{}",
        demo.stdout
    );
    let manifest = read_json(&data_dir.join("demo.json"));
    let keys = read_json(&data_dir.join("demo-keys.json"));
    let counts = &manifest["counts"];
    assert_eq!(counts["organizations"], 127);
    assert_eq!(counts["directories"], 1_726);
    assert_eq!(counts["videos"], 1_686);
    assert_eq!(counts["citizens"], 1_000);
    assert_eq!(
        keys["api"],
        format!("http://{}", demo.api.trim_start_matches("http://"))
    );
    for role in [
        "platform_admin",
        "org_admin",
        "data_officer",
        "developer",
        "auditor",
    ] {
        entry(&keys, |entry| entry["role"] == role);
    }
    let client = reqwest::Client::new();
    let api = keys["api"].as_str().unwrap().to_owned();
    let gateway = keys["gateway"].as_str().unwrap().to_owned();
    assert_eq!(gateway, demo.gateway);
    let admin = entry(&keys, |entry| entry["user"] == "demo-admin")["key"]
        .as_str()
        .unwrap()
        .to_owned();

    // Search the catalog, in Chinese, with facets; and through the CKAN API.
    let (status, _, found) = call(
        &client,
        reqwest::Method::GET,
        &format!("{api}/api/v1/search?q=%E5%85%AC%E7%A7%AF%E9%87%91&facet=kind&facet=provider"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(found["total"].as_u64().unwrap() > 0, "{found}");
    assert!(
        found["hits"][0]["resource"]["name"]
            .as_str()
            .unwrap()
            .contains("公积金")
    );
    let (status, _, ckan) = call(
        &client,
        reqwest::Method::GET,
        &format!("{api}/api/3/action/package_search?q=%E5%85%AC%E7%A7%AF%E9%87%91&rows=2"),
        &admin,
        None,
    )
    .await;
    assert_eq!(
        (status, &ckan["success"]),
        (StatusCode::OK, &json!(true)),
        "{ckan}"
    );

    // Every example call in the keys file works, with personal items masked as it says.
    let mut calls = 0;
    for system in keys["keys"].as_array().unwrap() {
        for grant in system["grants"].as_array().into_iter().flatten() {
            let method =
                reqwest::Method::from_bytes(grant["method"].as_str().unwrap().as_bytes()).unwrap();
            let url = format!("{gateway}{}", grant["path"].as_str().unwrap());
            let (status, headers, body) =
                call(&client, method, &url, system["key"].as_str().unwrap(), None).await;
            assert_eq!(status, StatusCode::OK, "{url}: {body}");
            assert!(headers.contains_key("civitas-receipt"), "{url}");
            let text = body.to_string();
            for masked in grant["masked"].as_array().unwrap() {
                let masked = masked.as_str().unwrap();
                if let Some(value) = body["records"][0][masked].as_str() {
                    assert!(value.contains('*'), "{masked} of {url} is masked: {text}");
                }
            }
            calls += 1;
        }
    }
    assert!(
        calls >= 20,
        "the keys file shows a call per grant ({calls})"
    );

    // A developer of the one-network platform applies for an interface another consumer reads;
    // the provider's data officer approves; the platform calls it through the gateway.
    let one_network = entry(&keys, |entry| entry["system"] == "one-network");
    let (resource, path) = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["system"] == "health-insight" || entry["system"] == "city-operations")
        .flat_map(|entry| entry["grants"].as_array().unwrap().iter())
        .find(|grant| grant["method"] == "GET")
        .map(|grant| {
            (
                grant["resource"].as_str().unwrap().to_owned(),
                grant["path"].as_str().unwrap().to_owned(),
            )
        })
        .expect("a granted interface");
    let (_, _, described) = call(
        &client,
        reqwest::Method::GET,
        &format!("{api}/api/v1/resources/{resource}"),
        &admin,
        None,
    )
    .await;
    let provider = described["provider"].as_str().unwrap().to_owned();
    let items: Vec<Value> = described["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["code"].clone())
        .collect();
    let developer = entry(&keys, |entry| {
        entry["role"] == "developer" && entry["organization"] == one_network["organization"]
    });
    let (status, _, application) = call(
        &client,
        reqwest::Method::POST,
        &format!("{api}/api/v1/applications"),
        developer["key"].as_str().unwrap(),
        Some(json!({
            "consumer": { "organization": one_network["organization"], "system": "one-network" },
            "resource": resource,
            "items": items,
            "purpose": "一网通办事项办理",
            "legal_basis": "《南京市政务数据管理暂行办法》",
            "valid_days": 30,
        })),
    )
    .await;
    assert!(status.is_success(), "{application}");
    if application["state"] == "pending" {
        let officer = entry(&keys, |entry| {
            entry["role"] == "data_officer" && entry["organization"] == provider.as_str()
        });
        let (status, _, approved) = call(
            &client,
            reqwest::Method::POST,
            &format!(
                "{api}/api/v1/applications/{}/approve",
                application["id"].as_str().unwrap()
            ),
            officer["key"].as_str().unwrap(),
            Some(json!({ "note": "同意" })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{approved}");
    }
    let url = format!("{gateway}{path}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = call(
            &client,
            reqwest::Method::GET,
            &url,
            one_network["key"].as_str().unwrap(),
            None,
        )
        .await;
        if status == StatusCode::OK {
            assert!(
                body["records"]
                    .as_array()
                    .is_some_and(|records| !records.is_empty()),
                "{body}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new grant never took effect: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The rental withdrawal for the manifest's citizens, from the city app.
    let city_app = entry(&keys, |entry| entry["system"] == "city-app")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for outcome in ["approve", "deny"] {
        let citizen = manifest["rental_withdrawal"]
            .as_array()
            .unwrap()
            .iter()
            .find(|citizen| citizen["outcome"] == outcome)
            .expect("an example citizen per outcome");
        let (status, _, run) = call(
            &client,
            reqwest::Method::POST,
            &format!("{api}/api/v1/scenarios/housing-fund-rental-withdrawal/runs"),
            &city_app,
            Some(json!({
                "inputs": { "id_number": citizen["id_number"], "name": citizen["name"], "months": 3 },
                "consent": "consent-e2e-0001",
            })),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(run["result"]["outcome"], outcome, "{run}");
    }

    // The ledger verifies, through the CLI against the running node.
    let auditor = entry(&keys, |entry| entry["role"] == "auditor")["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let verify = tokio::task::spawn_blocking({
        let api = api.clone();
        move || {
            Command::new(CIVITAS)
                .args(["ledger", "verify", "--url", &api, "--api-key", &auditor])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(printed.contains("ledger ok"), "{printed}");

    // A second start reuses the city, and the keys still work; with --traffic the city lives.
    stop(demo);
    let again = start_demo(&data_dir, &["--traffic", "40"]);
    assert!(again.stdout.contains("is reused"), "{}", again.stdout);
    let keys_again = read_json(&data_dir.join("demo-keys.json"));
    let api = keys_again["api"].as_str().unwrap().to_owned();
    let gateway = keys_again["gateway"].as_str().unwrap().to_owned();
    let (status, _, _) = call(
        &client,
        reqwest::Method::GET,
        &format!("{api}/api/v1/me"),
        &admin,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(
        &client,
        reqwest::Method::GET,
        &format!("{gateway}{path}"),
        one_network["key"].as_str().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "services follow the provider services to their new ports: {body}"
    );
    let tree_size =
        |checkpoint: String| -> u64 { checkpoint.lines().nth(1).unwrap().parse().unwrap() };
    let ledger = || async {
        let checkpoint = client
            .get(format!("{api}/ledger/checkpoint"))
            .send()
            .await
            .unwrap();
        tree_size(checkpoint.text().await.unwrap())
    };
    let before = ledger().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = ledger().await;
        // 40 calls and runs a second append one record each (a run, six).
        if now >= before + 40 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the traffic generator fills the ledger: {before} -> {now}"
        );
    }
    // Another seed on the same data dir is refused, naming the way out.
    let refused = Command::new(CIVITAS)
        .args(["demo", "--scale", "small", "--seed", "7", "--data-dir"])
        .arg(&data_dir)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--fresh"));
    stop(again);
}
