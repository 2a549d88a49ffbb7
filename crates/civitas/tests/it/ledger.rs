//! The data chain through HTTP and the command line: audit events land in the ledger, checkpoints
//! and receipts verify with the node's key, and `civitas ledger verify` catches tampering.

use std::process::Command;
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_ledger::{
    Receipt, merkle,
    note::{NoteVerifier, verify_checkpoint},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TestServer, on_both_stores};

on_both_stores!(
    audit_events_reach_the_ledger_with_proofs,
    verify_catches_tampering,
    audit_events_appended_before_a_crash_are_not_appended_again,
    a_node_on_a_salvaged_ledger_re_indexes_and_re_appends,
    a_store_refuses_a_node_on_another_ledger,
    a_store_whose_ledger_is_lost_is_adopted_by_a_new_ledger,
    a_node_whose_store_is_handed_over_while_it_runs_goes_out_of_service,
);

fn hash(text: &Value) -> merkle::Hash {
    STANDARD
        .decode(text.as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

async fn audit_events_reach_the_ledger_with_proofs(server: TestServer) {
    let org = server.create_org(1, None).await;
    server.create_system(&org, "portal").await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;

    // Every change is in the ledger by the time its request is answered.
    let (_, events) = server.get("/api/v1/audit/events?limit=100", &auditor).await;
    let events = events["items"].as_array().unwrap();
    assert!(events.len() >= 4);
    assert!(
        events.iter().all(|e| e["ledger_index"].is_u64()),
        "{events:?}"
    );
    let create = events
        .iter()
        .find(|e| e["action"] == "organization.create")
        .unwrap();
    let index = create["ledger_index"].as_u64().unwrap();
    let (status, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["record"]["type"], "admin");
    assert_eq!(record["record"]["action"], "organization.create");
    assert_eq!(record["record"]["object_id"], org.to_string());
    let developer = server.user_with_key("dev", "developer", Some(&org)).await;
    assert_eq!(
        server
            .get(&format!("/api/v1/ledger/records/{index}"), &developer)
            .await
            .0,
        StatusCode::FORBIDDEN
    );

    // The checkpoint is a signed note that verifies with the node's verifier key.
    let (_, node) = server
        .request(Method::GET, "/api/v1/node", None, None)
        .await;
    let verifier_key = node["verifier_key"].as_str().unwrap().to_owned();
    assert!(verifier_key.starts_with("cn-js-nanjing+"), "{verifier_key}");
    let verifier = NoteVerifier::parse(&verifier_key).unwrap();
    let receipt_response = server
        .get(&format!("/api/v1/ledger/receipts/{index}"), &developer)
        .await;
    assert_eq!(receipt_response.0, StatusCode::OK);
    let receipt: Receipt = serde_json::from_value(receipt_response.1).unwrap();
    let bytes = STANDARD.decode(record["bytes"].as_str().unwrap()).unwrap();
    receipt
        .verify(Some(&bytes), &verifier_key)
        .expect("the receipt verifies with only the public key");
    let mut forged = bytes.clone();
    forged[10] ^= 1;
    assert!(receipt.verify(Some(&forged), &verifier_key).is_err());

    let checkpoint_text = server.get_text("/ledger/checkpoint").await;
    let checkpoint =
        verify_checkpoint(&checkpoint_text, &verifier).expect("a valid signed checkpoint");
    assert_eq!(checkpoint.origin, "cn-js-nanjing");

    // Proofs through the API verify with the pure functions.
    let size = checkpoint.tree_size;
    let (status, proof) = server
        .get(
            &format!("/api/v1/ledger/proofs/inclusion?index={index}&tree_size={size}"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{proof}");
    let path: Vec<merkle::Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    merkle::verify_inclusion(
        &hash(&proof["leaf_hash"]),
        index,
        size,
        &path,
        &checkpoint.root,
    )
    .unwrap();
    let (status, consistency) = server
        .get(
            &format!("/api/v1/ledger/proofs/consistency?old=1&new={size}"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{consistency}");
    let path: Vec<merkle::Hash> = consistency["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(hash)
        .collect();
    merkle::verify_consistency(
        1,
        size,
        &hash(&consistency["old_root"]),
        &checkpoint.root,
        &path,
    )
    .unwrap();
    let (status, _) = server
        .get(
            &format!("/api/v1/ledger/proofs/inclusion?index={size}&tree_size={size}"),
            &developer,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // tlog-tiles: hashes are public, entries need the audit permission.
    let partial = format!("{}/ledger/tile/0/000.p/{size}", server.base);
    let tile = server.client.get(&partial).send().await.unwrap();
    assert_eq!(tile.status(), StatusCode::OK);
    assert_eq!(tile.bytes().await.unwrap().len() as u64, 32 * size);
    let entries = format!("{}/ledger/tile/entries/000.p/{size}", server.base);
    assert_eq!(
        server.client.get(&entries).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let bundle = server
        .client
        .get(&entries)
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    let bundle = bundle.bytes().await.unwrap();
    assert_eq!(
        civitas_ledger::tiles::decode_entry_bundle(&bundle)
            .unwrap()
            .len() as u64,
        size
    );
    assert_eq!(
        server
            .client
            .get(format!("{}/ledger/tile/0/x", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );

    let (status, range) = server
        .get(
            &format!("/api/v1/ledger/records?start=0&end={size}"),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(range.as_array().unwrap().len() as u64, size);
    let (status, checkpoints) = server.get("/api/v1/ledger/checkpoints", &auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!checkpoints.as_array().unwrap().is_empty());
}

fn civitas(args: &[&str], server_settings: &civitas::config::Settings) -> std::process::Output {
    let store = match &server_settings.store {
        civitas_store::StoreUrl::Postgres(url) => url.clone(),
        sqlite => sqlite.to_string(),
    };
    Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args(args)
        .arg("--data-dir")
        .arg(&server_settings.data_dir)
        .arg("--store")
        .arg(store)
        .output()
        .unwrap()
}

async fn verify_catches_tampering(server: TestServer) {
    let org = server.create_org(1, None).await;
    for n in 0..20 {
        server.create_system(&org, &format!("s{n}")).await;
    }
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    // Checkpoints are signed at least once a second; wait for one that covers every record.
    assert!(checkpointed_size(&server, &auditor).await > 20);

    // Against the running node over HTTP.
    let verify_url = |api_key: Option<&str>| {
        let mut args = vec!["ledger".to_owned(), "verify".into(), "--url".into()];
        args.push(server.base.clone());
        if let Some(key) = api_key {
            args.extend(["--api-key".to_owned(), key.to_owned()]);
        }
        civitas_command(args)
    };
    let output = verify_url(Some(&auditor)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.starts_with("ledger ok:"), "{stdout}");
    // Checked with the key the node itself publishes, which the command says after the summary.
    assert_eq!(
        stdout.lines().nth(1),
        Some(civitas::ledger_verify::SELF_KEY_WARNING),
        "{stdout}"
    );
    let no_key = verify_url(None).await;
    assert!(!no_key.status.success());
    let no_key_stderr = String::from_utf8_lossy(&no_key.stderr);
    assert!(
        no_key_stderr.contains("401 Unauthorized")
            && no_key_stderr.contains("need an API key that may read the audit trail (--api-key)"),
        "{no_key_stderr}"
    );
    let developer = server.user_with_key("dev", "developer", Some(&org)).await;
    let not_an_auditor = verify_url(Some(&developer)).await;
    assert!(!not_an_auditor.status.success());
    let not_an_auditor_stderr = String::from_utf8_lossy(&not_an_auditor.stderr);
    assert!(
        not_an_auditor_stderr.contains("403 Forbidden")
            && not_an_auditor_stderr.contains("may not read the audit trail"),
        "{not_an_auditor_stderr}"
    );

    let settings = server.settings.clone();
    let data_dir = settings.data_dir.clone();
    let mut server = server;
    server.running.take().unwrap().shutdown().await.unwrap();

    let output = civitas(&["ledger", "verify"], &settings);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let records: u64 = stdout.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(records >= 23, "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");

    // A torn write after the last record, over the zero-filled space the writer keeps there:
    // verification passes and warns about it.
    let records_path = data_dir.join("ledger").join("records.dat");
    let original = std::fs::read(&records_path).unwrap();
    let frame_offset = |bytes: &[u8], index: u64| {
        let mut offset = 0usize;
        for _ in 0..index {
            let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
            offset += 8 + length;
        }
        offset
    };
    let end = frame_offset(&original, records);
    let mut torn = original.clone();
    torn[end..end + 4].copy_from_slice(&300u32.to_le_bytes());
    torn[end + 8..end + 108].fill(b'x');
    std::fs::write(&records_path, &torn).unwrap();
    let output = civitas(&["ledger", "verify"], &settings);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let mut lines = stdout.lines();
    assert!(lines.next().unwrap().starts_with("ledger ok:"), "{stdout}");
    let warning = lines.next().unwrap_or_default();
    assert!(
        warning.starts_with(&format!("warning: {} bytes ", original.len() - end)),
        "{stdout}"
    );
    assert!(warning.contains("torn write"), "{stdout}");

    // Flip one byte inside record 5 and the verifier names it.
    let mut bytes = original;
    let offset = frame_offset(&bytes, 5);
    bytes[offset + 8 + 20] ^= 0x20;
    std::fs::write(&records_path, &bytes).unwrap();
    let output = civitas(&["ledger", "verify"], &settings);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("failed at record 5"), "{stderr}");
}

/// Runs `civitas ledger check-receipt` with `args`, feeding `stdin`.
fn check_receipt(args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args(["ledger", "check-receipt"])
        .args(args)
        .env_remove("CIVITAS_API_KEY")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_check_from_the_command_line() {
    let server = TestServer::start_sqlite().await;
    let org = server.create_org(1, None).await;
    server.create_system(&org, "portal").await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    let developer = server.user_with_key("dev", "developer", Some(&org)).await;
    let (_, events) = server.get("/api/v1/audit/events?limit=100", &auditor).await;
    let index = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["action"] == "organization.create")
        .unwrap()["ledger_index"]
        .as_u64()
        .unwrap();
    let (_, node) = server
        .request(Method::GET, "/api/v1/node", None, None)
        .await;
    let key = node["verifier_key"].as_str().unwrap().to_owned();
    let (status, receipt) = server
        .get(&format!("/api/v1/ledger/receipts/{index}"), &developer)
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    let (_, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
        .await;
    let bytes = STANDARD.decode(record["bytes"].as_str().unwrap()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, contents: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let receipt_file = write("receipt.json", receipt.to_string().as_bytes());
    let record_file = write("record.bin", &bytes);
    let mut forged = bytes.clone();
    forged[10] ^= 1;
    let forged_file = write("forged.bin", &forged);
    let text = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };

    // A receipt alone, from a file and from standard input.
    for (file, stdin) in [
        (receipt_file.as_str(), &b""[..]),
        ("-", receipt.to_string().as_bytes()),
    ] {
        let output = check_receipt(&[file, "--verifier-key", &key], stdin);
        let said = text(&output);
        assert!(output.status.success(), "{said}");
        assert!(
            said.starts_with(&format!(
                "receipt ok: record {index} is in the log that cn-js-nanjing signed"
            )),
            "{said}"
        );
        assert!(said.contains("bytes were not checked"), "{said}");
    }
    // With the record's bytes, and with bytes changed by one bit.
    let output = check_receipt(
        &[
            &receipt_file,
            "--record",
            &record_file,
            "--verifier-key",
            &key,
        ],
        b"",
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("hash to the receipt's leaf"));
    let output = check_receipt(
        &[
            &receipt_file,
            "--record",
            &forged_file,
            "--verifier-key",
            &key,
        ],
        b"",
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("record does not hash to the receipt's leaf hash"),
        "{}",
        text(&output)
    );
    // A receipt claiming another place in the log, or checked with another node's key.
    let mut moved = receipt.clone();
    moved["index"] = serde_json::json!(index + 1);
    let moved_file = write("moved.json", moved.to_string().as_bytes());
    let output = check_receipt(&[&moved_file, "--verifier-key", &key], b"");
    assert!(!output.status.success());
    assert!(
        text(&output).contains("inclusion proof does not verify"),
        "{}",
        text(&output)
    );
    let stranger = civitas_ledger::NoteSigner::new(
        "cn-js-nanjing",
        ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
    )
    .unwrap();
    let output = check_receipt(
        &[&receipt_file, "--verifier-key", &stranger.verifier_key()],
        b"",
    );
    assert!(!output.status.success());
    assert!(
        text(&output).contains("does not verify"),
        "{}",
        text(&output)
    );
    let output = check_receipt(&["{not json", "--verifier-key", &key], b"");
    assert!(!output.status.success());
    assert!(text(&output).contains("{not json"), "{}", text(&output));

    // From the running node: with an auditor's key the record's bytes are checked too, and the
    // node's latest checkpoint is proven to extend the receipt's.
    server.create_system(&org, "later").await;
    let index_text = index.to_string();
    for (api_key, record_checked) in [(&auditor, true), (&developer, false)] {
        let output = check_receipt(
            &[
                "--url",
                &server.base,
                "--index",
                &index_text,
                "--api-key",
                api_key,
                "--verifier-key",
                &key,
            ],
            b"",
        );
        let said = text(&output);
        assert!(output.status.success(), "{said}");
        assert!(said.contains("is consistent with it"), "{said}");
        assert_eq!(
            said.contains("hash to the receipt's leaf"),
            record_checked,
            "{said}"
        );
    }
    let output = check_receipt(
        &[
            "--url",
            &server.base,
            "--index",
            "999999",
            "--api-key",
            &auditor,
            "--verifier-key",
            &key,
        ],
        b"",
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("record 999999"), "{}", text(&output));

    // Neither a receipt nor a node to ask.
    let output = check_receipt(&["--verifier-key", &key], b"");
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

/// An admin record with `filler` bytes of details, as the ledger holds them.
fn admin_record(object_id: u64, filler: usize) -> Vec<u8> {
    civitas_ledger::record::encode(&civitas_ledger::Record::Admin(
        civitas_ledger::record::AdminRecord {
            at: jiff::Timestamp::now(),
            actor: "user:test".into(),
            action: "test.fill".into(),
            object_kind: "test".into(),
            object_id: object_id.to_string(),
            details: json!({ "filler": "x".repeat(filler) }),
            event: None,
        },
    ))
}

/// Waits until a signed checkpoint covers every record of the server's ledger, and returns its
/// size.
async fn checkpointed_size(server: &TestServer, key: &str) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, status) = server.get("/api/v1/ledger", key).await;
        if status["checkpoint_size"] == status["size"] {
            return status["size"].as_u64().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint covered the records: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// What a proxy passed on: each request's path and query, and the node's status.
type Passed = Arc<Mutex<Vec<(String, u16)>>>;

/// Starts an HTTP proxy in front of `server` that, before passing on the first request for an
/// entry bundle, appends `grow_by` records to the node's ledger: the node grows between a
/// verifier's reading of the checkpoints and of the records, as a busy node does.
async fn growing_proxy(server: &TestServer, grow_by: u64) -> (String, Passed) {
    let ledger = server.running.as_ref().unwrap().ledger().clone();
    let node = server.base.clone();
    let client = server.client.clone();
    let grown = Arc::new(AtomicBool::new(false));
    let passed = Passed::default();
    let passed_on = passed.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
            let (ledger, node, client, grown, passed) = (
                ledger.clone(),
                node.clone(),
                client.clone(),
                grown.clone(),
                passed_on.clone(),
            );
            async move {
                let path = uri.path_and_query().unwrap().to_string();
                if path.starts_with("/ledger/tile/entries/") && !grown.swap(true, Ordering::SeqCst)
                {
                    let start = ledger.size();
                    let records = (start..start + grow_by)
                        .map(|n| admin_record(n, 100))
                        .collect();
                    ledger.append_batch(records).await.unwrap();
                }
                let mut request = client.get(format!("{node}{path}"));
                if let Some(authorization) = headers.get(axum::http::header::AUTHORIZATION) {
                    request = request.header(axum::http::header::AUTHORIZATION, authorization);
                }
                let response = request.send().await.unwrap();
                let status = response.status();
                passed.lock().unwrap().push((path, status.as_u16()));
                let content_type = response
                    .headers()
                    .get(axum::http::header::CONTENT_TYPE)
                    .cloned()
                    .unwrap_or(axum::http::HeaderValue::from_static(
                        "application/octet-stream",
                    ));
                let body = response.bytes().await.unwrap();
                (
                    axum::http::StatusCode::from_u16(status.as_u16()).unwrap(),
                    [(axum::http::header::CONTENT_TYPE, content_type)],
                    body,
                )
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), passed)
}

/// Runs the `civitas` binary with `args` off the async threads, which serve the node meanwhile.
async fn civitas_command(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_civitas"))
            .args(args)
            .env_remove("CIVITAS_API_KEY")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A node past the right edge of the last bundle that its latest listed checkpoint covers no
/// longer serves that partial bundle (FORMAT.md, section 5); the verifier reads the full one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reads_a_full_bundle_when_the_node_grew_past_the_partial_one() {
    let server = TestServer::start_sqlite().await;
    let org = server.create_org(1, None).await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    let size = checkpointed_size(&server, &auditor).await;
    assert!((1..256).contains(&size), "{size}");
    let (_, status) = server.get("/api/v1/ledger", &auditor).await;
    let verifier_key = status["verifier_key"].as_str().unwrap().to_owned();

    let (proxy, passed) = growing_proxy(&server, 300).await;
    let output = civitas_command(vec![
        "ledger".into(),
        "verify".into(),
        "--url".into(),
        proxy,
        "--api-key".into(),
        auditor.clone(),
        "--verifier-key".into(),
        verifier_key,
    ])
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!("ledger ok: {size} records")),
        "{stdout}"
    );
    // Given the key, the command has nothing to warn about.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let bundles: Vec<(String, u16)> = passed
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.starts_with("/ledger/tile/entries/"))
        .cloned()
        .collect();
    assert_eq!(
        bundles,
        [
            (format!("/ledger/tile/entries/000.p/{size}"), 404),
            ("/ledger/tile/entries/000".to_owned(), 200),
        ]
    );
    assert!(server.running.as_ref().unwrap().ledger().size() >= size + 300);
}

/// A node that lists no signed checkpoints gives the records nothing to be verified against.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_fails_without_a_signed_checkpoint() {
    let signer = civitas_ledger::NoteSigner::new(
        "cn-js-nanjing",
        ed25519_dalek::SigningKey::from_bytes(&[3; 32]),
    )
    .unwrap();
    let verifier_key = signer.verifier_key().to_owned();
    let node_key = verifier_key.clone();
    let app = axum::Router::new()
        .route(
            "/api/v1/node",
            axum::routing::get(move || {
                let node_key = node_key.clone();
                async move { axum::Json(json!({ "verifier_key": node_key })) }
            }),
        )
        .route(
            "/api/v1/ledger/checkpoints",
            axum::routing::get(|| async { axum::Json(json!([])) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    for with_key in [false, true] {
        let mut args: Vec<String> = vec![
            "ledger".into(),
            "verify".into(),
            "--url".into(),
            url.clone(),
        ];
        if with_key {
            args.extend(["--verifier-key".into(), verifier_key.clone()]);
        }
        let output = civitas_command(args).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stdout}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(
            stderr.contains("the node listed no signed checkpoints"),
            "{stderr}"
        );
    }
}

/// A page of records stops once it holds 4 MiB; its `Link` header, or its count, says where the
/// rest of the range continues.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_large_records_stops_at_its_byte_limit_and_continues() {
    let server = TestServer::start_sqlite().await;
    let org = server.create_org(1, None).await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    let ledger = server.running.as_ref().unwrap().ledger().clone();
    // 100 records of about 60 KB: 6 MB, past the 4 MiB of one page.
    let records: Vec<Vec<u8>> = (0..100).map(|n| admin_record(n, 60_000)).collect();
    let appended = ledger.append_batch(records.clone()).await.unwrap();
    assert_eq!(appended.end, ledger.size());
    let (start, end) = (appended.start, appended.end);

    let page = |start: u64, end: u64| {
        let request = server
            .client
            .get(format!(
                "{}/api/v1/ledger/records?start={start}&end={end}",
                server.base
            ))
            .bearer_auth(&auditor);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let link = response
                .headers()
                .get("link")
                .map(|link| link.to_str().unwrap().to_owned());
            let views: Vec<Value> = response.json().await.unwrap();
            (views, link)
        }
    };
    let (first, link) = page(start, end).await;
    let taken = first.len() as u64;
    assert!((1..100).contains(&taken), "{taken}");
    // Records are added while those before take less than 4 MiB (frames of 8 header bytes).
    let frames: Vec<u64> = first
        .iter()
        .map(|view| {
            STANDARD
                .decode(view["bytes"].as_str().unwrap())
                .unwrap()
                .len() as u64
                + 8
        })
        .collect();
    let limit = 4 << 20;
    assert!(frames[..frames.len() - 1].iter().sum::<u64>() < limit);
    assert!(frames.iter().sum::<u64>() >= limit);
    assert_eq!(
        link.as_deref(),
        Some(
            format!(
                "<{}/api/v1/ledger/records?start={}&end={end}>; rel=\"next\"",
                server.base,
                start + taken
            )
            .as_str()
        )
    );

    let (rest, link) = page(start + taken, end).await;
    assert_eq!(link, None);
    let all: Vec<Value> = first.into_iter().chain(rest).collect();
    assert_eq!(all.len(), 100);
    for ((view, record), index) in all.iter().zip(&records).zip(start..) {
        assert_eq!(view["index"], index);
        assert_eq!(
            STANDARD.decode(view["bytes"].as_str().unwrap()).unwrap(),
            *record
        );
        assert_eq!(view["record"]["object_id"], (index - start).to_string());
    }
    // Past the ledger's end: an empty page, with nothing to continue.
    let (beyond, link) = page(end, end + 10).await;
    assert!(beyond.is_empty() && link.is_none());
}

/// A node stopped between appending audit events to the ledger and noting in the store where they
/// landed finds them in the ledger when it starts again, instead of appending them a second time.
async fn audit_events_appended_before_a_crash_are_not_appended_again(mut server: TestServer) {
    server.create_org(1, None).await;
    server.stop().await;

    // What such a stop leaves: an event still in the store's outbox whose record is in the
    // ledger, appended as the server appends it.
    let settings = server.settings.clone();
    let store = civitas_store::Store::connect(&settings.store)
        .await
        .unwrap();
    let org = crate::support::uscc(2);
    store
        .create_organization(
            &civitas_core::authz::Permit::internal("civitas:test"),
            &civitas_store::NewOrganization {
                code: org.clone(),
                name: "南京市测试局2".into(),
                name_en: None,
                level: civitas_core::registry::Level::Municipal,
                region: civitas_core::RegionCode::parse("320100").unwrap(),
                parent: None,
            },
        )
        .await
        .unwrap();
    let events = store.unshipped_audit_events(10).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let (landed, size) = {
        let key = civitas::node::load_or_create_key(&settings.data_dir).unwrap();
        let signer = civitas_ledger::NoteSigner::new(settings.node_code.as_str(), key).unwrap();
        let ledger_dir = settings.data_dir.join("ledger");
        let ledger = tokio::task::spawn_blocking(move || {
            civitas_ledger::Ledger::open(&ledger_dir, signer, Default::default())
        })
        .await
        .unwrap()
        .unwrap();
        let records = events
            .iter()
            .map(civitas_api::ledger::admin_record)
            .collect();
        let landed = ledger.append_batch(records).await.unwrap().start;
        let size = ledger.size();
        // Closing a ledger waits for its threads.
        tokio::task::spawn_blocking(move || drop(ledger))
            .await
            .unwrap();
        (landed, size)
    };
    drop(store);

    let server = server.start_again().await;
    let (_, status) = server
        .get("/api/v1/ledger", crate::support::ADMIN_KEY)
        .await;
    assert_eq!(status["size"], size, "nothing appended again: {status}");
    let (_, found) = server
        .get(
            &format!("/api/v1/audit/events?object_id={org}"),
            crate::support::ADMIN_KEY,
        )
        .await;
    assert_eq!(
        found["items"][0]["action"], "organization.create",
        "{found}"
    );
    assert_eq!(found["items"][0]["ledger_index"], landed, "{found}");
    let (_, record) = server
        .get(
            &format!("/api/v1/ledger/records/{landed}"),
            crate::support::ADMIN_KEY,
        )
        .await;
    assert_eq!(record["record"]["object_id"], org.to_string(), "{record}");
    assert_eq!(record["record"]["event"], events[0].id, "{record}");
}

/// Runs the binary with `args` and the data dir, with nothing taken from the environment.
fn civitas_in(args: &[&str], data_dir: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("CIVITAS_BOOTSTRAP_TOKEN")
        .env_remove("CIVITAS_NODE_CODE")
        .env_remove("CIVITAS_STORE")
        .output()
        .unwrap()
}

/// The checkpoint signer of the node whose key is in the dir `node` (made there if missing).
fn node_signer(node: &std::path::Path) -> civitas_ledger::NoteSigner {
    let key = civitas::node::load_or_create_key(node).unwrap();
    civitas_ledger::NoteSigner::new("cn-js-nanjing", key).unwrap()
}

/// A dir holding a new node key, and a new ledger in another dir, signed with that key and
/// checkpointed only on demand and at a clean close.
fn node_and_ledger() -> (tempfile::TempDir, tempfile::TempDir, civitas_ledger::Ledger) {
    let node = tempfile::tempdir().unwrap();
    let live = tempfile::tempdir().unwrap();
    let options = civitas_ledger::LedgerOptions {
        checkpoint_interval: std::time::Duration::from_secs(3600),
        ..civitas_ledger::LedgerOptions::default()
    };
    let ledger =
        civitas_ledger::Ledger::open(live.path(), node_signer(node.path()), options).unwrap();
    (node, live, ledger)
}

/// The bytes of the ledger files in `ledger_dir`, in `civitas_ledger::DATA_FILES` order.
fn read_ledger_files(ledger_dir: &std::path::Path) -> Vec<Vec<u8>> {
    civitas_ledger::DATA_FILES
        .map(|name| std::fs::read(ledger_dir.join(name)).unwrap())
        .to_vec()
}

/// A data dir holding the node key in `node` and a ledger of the files `ledger`, in
/// `civitas_ledger::DATA_FILES` order, with `damage` then done to its ledger dir.
fn data_dir_with_ledger(
    node: &std::path::Path,
    ledger: &[Vec<u8>],
    damage: impl Fn(&std::path::Path),
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        node.join(civitas::node::NODE_KEY_FILE),
        dir.path().join(civitas::node::NODE_KEY_FILE),
    )
    .unwrap();
    let ledger_dir = dir.path().join("ledger");
    std::fs::create_dir(&ledger_dir).unwrap();
    for (name, bytes) in civitas_ledger::DATA_FILES.iter().zip(ledger) {
        std::fs::write(ledger_dir.join(name), bytes).unwrap();
    }
    damage(&ledger_dir);
    dir
}

/// Flips the bits of `mask` in the byte at `position` of `file`.
fn flip_byte(file: &std::path::Path, position: usize, mask: u8) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[position] ^= mask;
    std::fs::write(file, bytes).unwrap();
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The standard output of a command that must have succeeded.
fn succeeded(output: &std::process::Output) -> String {
    let stdout = lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", lossy(&output.stderr));
    stdout
}

/// Runs the repair `args` on `data_dir` while its ledger is open, as a node holds it, and checks
/// that it is refused, with exit status 1, and changes nothing.
fn refused_while_open(args: &[&str], data_dir: &std::path::Path, node: &std::path::Path) {
    let ledger_dir = data_dir.join("ledger");
    let open = civitas_ledger::Ledger::open(
        &ledger_dir,
        node_signer(node),
        civitas_ledger::LedgerOptions {
            scrub_bytes_per_second: None,
            ..civitas_ledger::LedgerOptions::default()
        },
    )
    .unwrap();
    let before = read_ledger_files(&ledger_dir);
    let busy = civitas_in(args, data_dir);
    assert_eq!(busy.status.code(), Some(1));
    assert!(
        lossy(&busy.stderr).contains("is open, most likely by a running node; stop the node first"),
        "{}",
        lossy(&busy.stderr)
    );
    assert!(read_ledger_files(&ledger_dir) == before);
    drop(open);
}

/// `civitas ledger salvage` on the ledger of a node that crashed with a damaged record among its
/// last, unsigned ones: the node refuses to start and points to the command, a dry run reports
/// and changes nothing, --apply cuts, and `civitas ledger verify` passes afterwards. Damage under
/// a checkpoint and a ledger that is open are refused with exit status 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn salvage_from_the_command_line() {
    // A node's data dir whose ledger holds 30 records, the first 10 under a checkpoint, as a
    // crash leaves it (a clean shutdown would sign a checkpoint over all of them).
    let (node, live, ledger) = node_and_ledger();
    let record = |n: u64| format!("record {n}").into_bytes();
    ledger
        .append_batch((0..10).map(record).collect())
        .await
        .unwrap();
    assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, 10);
    for n in 10..30 {
        ledger.append(record(n)).await.unwrap();
    }
    let crashed = read_ledger_files(live.path());
    drop(ledger);
    let records = &crashed[0];
    let frame_offset = |index: usize| {
        (0..index).fold(0usize, |offset, _| {
            offset
                + 8
                + u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize
        })
    };
    // A data dir with the node's key and the crashed ledger, record `damaged` flipped.
    let data_dir_with_damage = |damaged: usize| {
        data_dir_with_ledger(node.path(), &crashed, |ledger_dir| {
            flip_byte(
                &ledger_dir.join("records.dat"),
                frame_offset(damaged) + 9,
                0x40,
            );
        })
    };
    let read_ledger = |data_dir: &std::path::Path| read_ledger_files(&data_dir.join("ledger"));
    let text = lossy;

    let data_dir = data_dir_with_damage(15);
    let offset = frame_offset(15);
    let records_end = frame_offset(30);
    let ledger_before = read_ledger(data_dir.path());

    // The node refuses to start and says which command to run.
    let serve = civitas_in(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
        ],
        data_dir.path(),
    );
    let stderr = text(&serve.stderr);
    assert!(!serve.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("record 15 at byte {offset} "))
            && stderr.contains(&format!(
                "`civitas ledger salvage --data-dir {}`",
                data_dir.path().display()
            )),
        "{stderr}"
    );
    let verify = civitas_in(&["ledger", "verify"], data_dir.path());
    assert!(!verify.status.success());
    assert!(
        text(&verify.stderr).contains("civitas ledger salvage"),
        "{}",
        text(&verify.stderr)
    );
    // The refused open left every file of the ledger as it was.
    let damaged = read_ledger(data_dir.path());
    assert!(
        damaged == ledger_before,
        "the refused open changed the ledger's files"
    );

    // Without --apply: a report, and nothing changed.
    let dry_run = civitas_in(&["ledger", "salvage"], data_dir.path());
    let stdout = text(&dry_run.stdout);
    assert!(
        dry_run.status.success(),
        "{stdout}{}",
        text(&dry_run.stderr)
    );
    let side_name = format!("records.dat.cut-{offset}");
    for expected in [
        format!("damage: record 15 at byte {offset} of records.dat (frame checksum mismatch)"),
        "latest signed checkpoint (number 1, 10 records)".to_owned(),
        "the last good record is 14".to_owned(),
        "would be cut off: the damaged record and 14 valid records after it".to_owned(),
        "receipts issued for them will no longer verify".to_owned(),
        format!(
            "would be saved: {side_name} ({} bytes)",
            records_end - offset
        ),
        "dry run: nothing was changed; run again with --apply".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in {stdout}");
    }
    assert!(
        read_ledger(data_dir.path()) == damaged,
        "a dry run changes nothing"
    );
    assert!(!data_dir.path().join("ledger").join(&side_name).exists());

    // With --apply: cut, the bytes kept beside the records, and the ledger verifies.
    let apply = civitas_in(&["ledger", "salvage", "--apply"], data_dir.path());
    let stdout = text(&apply.stdout);
    assert!(apply.status.success(), "{stdout}{}", text(&apply.stderr));
    assert!(
        stdout.contains("cut off: the damaged record and 14 valid records after it")
            && stdout.contains(&format!("saved: {side_name} ("))
            && stdout.contains(&format!("salvaged: records.dat cut at byte {offset}")),
        "{stdout}"
    );
    assert!(
        std::fs::read(data_dir.path().join("ledger").join(&side_name)).unwrap()
            == damaged[0][offset..records_end],
        "the side file holds the bytes cut"
    );
    assert!(read_ledger(data_dir.path())[0] == damaged[0][..offset]);
    let verify = civitas_in(&["ledger", "verify"], data_dir.path());
    let stdout = text(&verify.stdout);
    assert!(verify.status.success(), "{stdout}{}", text(&verify.stderr));
    assert!(stdout.starts_with("ledger ok: 15 records"), "{stdout}");
    let again = civitas_in(&["ledger", "salvage", "--apply"], data_dir.path());
    assert!(again.status.success());
    assert!(
        text(&again.stdout).starts_with("nothing to salvage: the 15 records end cleanly"),
        "{}",
        text(&again.stdout)
    );

    // Damage among the records the checkpoint covers is refused, even with --apply.
    let covered = data_dir_with_damage(4);
    let before = read_ledger(covered.path());
    let refused = civitas_in(&["ledger", "salvage", "--apply"], covered.path());
    let stderr = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("salvage refused: record 4 at byte ")
            && stderr.contains("the latest signed checkpoint (number 1) covers 10 records")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert!(
        read_ledger(covered.path()) == before,
        "a refusal changes nothing"
    );

    // A ledger that a node has open is not touched.
    refused_while_open(
        &["ledger", "salvage", "--apply"],
        data_dir.path(),
        node.path(),
    );
}

/// `civitas ledger rebuild-derived` on a data dir whose derived ledger files are damaged and
/// whose records are not: a dry run names each damaged file and where it first differs and
/// changes nothing, --apply replaces them and `civitas ledger verify` passes afterwards. A
/// ledger that is open, and records that no longer give a signed checkpoint's root, are refused
/// with exit status 1 and nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_derived_from_the_command_line() {
    // A node's data dir whose ledger holds 300 records under checkpoints of 0, 100 and 300.
    let (node, live, ledger) = node_and_ledger();
    let record = |n: u64| format!("record {n}").into_bytes();
    for range in [0..100, 100..300] {
        let end = range.end;
        ledger
            .append_batch(range.map(record).collect())
            .await
            .unwrap();
        assert_eq!(ledger.checkpoint_now().await.unwrap().tree_size, end);
    }
    drop(ledger);
    let healthy = read_ledger_files(live.path());
    let read_ledger = |data_dir: &std::path::Path| read_ledger_files(&data_dir.join("ledger"));

    // The leaf hash of record 40 and the root of the first tile.
    let data_dir = data_dir_with_ledger(node.path(), &healthy, |ledger_dir| {
        flip_byte(&ledger_dir.join("leaf-hashes.dat"), 40 * 32 + 2, 0x08);
        flip_byte(&ledger_dir.join("tile-hashes.dat"), 17, 0x08);
    });
    let verify = civitas_in(&["ledger", "verify"], data_dir.path());
    assert!(!verify.status.success(), "{}", lossy(&verify.stdout));
    let damaged = read_ledger(data_dir.path());

    // Without --apply: a report, and nothing changed.
    let stdout = succeeded(&civitas_in(&["ledger", "rebuild-derived"], data_dir.path()));
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "recomputed from 300 records, which give the root of each of the 3 signed checkpoints",
            "leaf-hashes.dat differs from entry 40 on (entries stored: 300, from the records: 300)",
            "tile-hashes.dat differs from entry 0 on (entries stored: 1, from the records: 1)",
            "dry run: nothing was changed; run again with --apply to replace leaf-hashes.dat, tile-hashes.dat",
        ]
    );
    assert!(
        read_ledger(data_dir.path()) == damaged,
        "a dry run changes nothing"
    );

    // A ledger that a node has open is not touched (on a copy: opening this one would rebuild
    // its files itself, since the first tile is the last full one, whose root opening checks).
    let held = data_dir_with_ledger(node.path(), &healthy, |ledger_dir| {
        flip_byte(&ledger_dir.join("leaf-hashes.dat"), 40 * 32 + 2, 0x08);
    });
    refused_while_open(
        &["ledger", "rebuild-derived", "--apply"],
        held.path(),
        node.path(),
    );

    // With --apply: the files are the ones the records give, and the ledger verifies.
    let stdout = succeeded(&civitas_in(
        &["ledger", "rebuild-derived", "--apply"],
        data_dir.path(),
    ));
    assert!(
        stdout.ends_with(
            "rebuilt: leaf-hashes.dat, tile-hashes.dat replaced with what the records give; `civitas ledger verify` checks the result\n"
        ),
        "{stdout}"
    );
    assert!(read_ledger(data_dir.path()) == healthy);
    let stdout = succeeded(&civitas_in(&["ledger", "verify"], data_dir.path()));
    assert!(stdout.starts_with("ledger ok: 300 records"), "{stdout}");
    let stdout = succeeded(&civitas_in(
        &["ledger", "rebuild-derived", "--apply"],
        data_dir.path(),
    ));
    assert!(
        stdout.ends_with("the derived files agree with the records; nothing was changed\n"),
        "{stdout}"
    );

    // Record 50 rewritten as a valid frame: the records no longer give the root the checkpoint
    // of 100 records signs, and rebuilding what derives from them would not help.
    let records_disagree = data_dir_with_ledger(node.path(), &healthy, |ledger_dir| {
        let path = ledger_dir.join("records.dat");
        let mut records = std::fs::read(&path).unwrap();
        let offset = frame_offsets(&records)[50];
        records[offset + 8] = b'R';
        let length = u32::from_le_bytes(records[offset..offset + 4].try_into().unwrap()) as usize;
        let checksum = crc32c::crc32c(&records[offset + 8..offset + 8 + length]);
        records[offset + 4..offset + 8].copy_from_slice(&checksum.to_le_bytes());
        std::fs::write(&path, records).unwrap();
        flip_byte(&ledger_dir.join("leaf-hashes.dat"), 7 * 32, 0x08);
    });
    let before = read_ledger(records_disagree.path());
    let refused = civitas_in(
        &["ledger", "rebuild-derived", "--apply"],
        records_disagree.path(),
    );
    let stderr = lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "rebuild refused: records no longer match stored checkpoint 1 at tree size 100"
        ) && stderr.contains("nothing was changed; restore the ledger directory from a backup"),
        "{stderr}"
    );
    assert!(
        read_ledger(records_disagree.path()) == before,
        "a refusal changes nothing"
    );
}

/// A node whose derived ledger files were damaged in the first tile, which opening's spot check
/// does not read, starts and serves a receipt that does not verify; once `civitas ledger
/// rebuild-derived --apply` has replaced them, the ledger verifies and the node serves a
/// receipt for the same record that does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_serves_verifying_receipts_once_its_derived_files_are_rebuilt() {
    let mut server = TestServer::start_sqlite().await;
    let org = server.create_org(1, None).await;
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    // Two full tiles: opening checks the level-4 nodes of the last only.
    let ledger = server.running.as_ref().unwrap().ledger().clone();
    ledger
        .append_batch((0..520).map(|n| admin_record(n, 20)).collect())
        .await
        .unwrap();
    drop(ledger);
    assert!(checkpointed_size(&server, &auditor).await > 520);
    let (_, node) = server
        .request(Method::GET, "/api/v1/node", None, None)
        .await;
    let verifier_key = node["verifier_key"].as_str().unwrap().to_owned();
    const INDEX: u64 = 40;
    assert!(receipt_verifies(&server, &auditor, INDEX, &verifier_key).await);
    server.stop().await;

    let ledger_dir = server.settings.data_dir.join("ledger");
    flip_byte(
        &ledger_dir.join("leaf-hashes.dat"),
        INDEX as usize * 32 + 9,
        0x40,
    );
    let mut server = server.start_again().await;
    assert!(
        !receipt_verifies(&server, &auditor, INDEX, &verifier_key).await,
        "the damaged leaf hash is what the node serves"
    );
    server.stop().await;

    let settings = server.settings.clone();
    let stdout = succeeded(&civitas(
        &["ledger", "rebuild-derived", "--apply"],
        &settings,
    ));
    assert!(
        stdout.contains(&format!("leaf-hashes.dat differs from entry {INDEX} on"))
            && stdout.contains("rebuilt: leaf-hashes.dat replaced"),
        "{stdout}"
    );
    succeeded(&civitas(&["ledger", "verify"], &settings));
    let server = server.start_again().await;
    assert!(receipt_verifies(&server, &auditor, INDEX, &verifier_key).await);
}

/// Whether the receipt the node serves for record `index` verifies with `verifier_key`, the
/// record's bytes included.
async fn receipt_verifies(server: &TestServer, key: &str, index: u64, verifier_key: &str) -> bool {
    let (_, record) = server
        .get(&format!("/api/v1/ledger/records/{index}"), key)
        .await;
    let bytes = STANDARD.decode(record["bytes"].as_str().unwrap()).unwrap();
    let (_, receipt) = server
        .get(&format!("/api/v1/ledger/receipts/{index}"), key)
        .await;
    let receipt: Receipt = serde_json::from_value(receipt).unwrap();
    receipt.verify(Some(&bytes), verifier_key).is_ok()
}

/// The offsets of the whole frames at the start of `records.dat`, in order.
fn frame_offsets(records: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut offset = 0;
    while let Some(length) = records.get(offset..offset + 4) {
        let length = u32::from_le_bytes(length.try_into().unwrap()) as usize;
        if length == 0 || offset + 8 + length > records.len() {
            break;
        }
        offsets.push(offset);
        offset += 8 + length;
    }
    offsets
}

/// A node whose last records were cut by `civitas ledger salvage --apply` starts on a ledger
/// shorter than its store's indexes: the subject report no longer cites the records cut, the
/// audit events that had landed there are appended again in their order, exchanges after the
/// restart are indexed, and the ledger verifies.
async fn a_node_on_a_salvaged_ledger_re_indexes_and_re_appends(mut server: TestServer) {
    use crate::gateway::{CITIZEN, call_ok, receipt_index};

    let (city, path, auditor) = city_with_auditor(&server).await;
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let kept_exchange = receipt_index(&headers);
    server.stop().await;

    // A clean stop signs a checkpoint over every record. Keeping the checkpoints as they are now
    // and putting them back later leaves the records written after this point unsigned, as a
    // crash between checkpoints does.
    let data_dir = server.settings.data_dir.clone();
    let ledger_file = |name: &str| data_dir.join("ledger").join(name);
    let checkpoints = std::fs::read(ledger_file("checkpoints.dat")).unwrap();
    let cut_at = frame_offsets(&std::fs::read(ledger_file("records.dat")).unwrap()).len();

    let mut server = server.start_again().await;
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let lost_exchange = receipt_index(&headers);
    assert!(lost_exchange >= cut_at as u64);
    let org = server.create_org(3, None).await;
    server.create_system(&org, "archive").await;
    call_ok(&server, &city.consumer_key, &path).await;
    let (_, events) = server.get("/api/v1/audit/events?limit=100", &auditor).await;
    // The events that landed after the cut, oldest first.
    let mut cut_events: Vec<(i64, u64)> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["id"].as_i64().unwrap(),
                event["ledger_index"].as_u64().unwrap(),
            )
        })
        .filter(|(_, index)| *index >= cut_at as u64)
        .collect();
    cut_events.reverse();
    assert!(cut_events.len() >= 2, "{events}");
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(report["accesses"].as_array().unwrap().len(), 3, "{report}");
    server.stop().await;

    // Record `cut_at`, the first one after the kept checkpoint, damaged; the node refuses to
    // open its ledger until the salvage cuts the records there.
    let mut records = std::fs::read(ledger_file("records.dat")).unwrap();
    let frames = frame_offsets(&records);
    assert!(frames.len() > cut_at + 1, "valid records follow the damage");
    records[frames[cut_at] + 9] ^= 0x40;
    std::fs::write(ledger_file("records.dat"), records).unwrap();
    std::fs::write(ledger_file("checkpoints.dat"), &checkpoints).unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let salvage = civitas_in(&["ledger", "salvage", "--apply"], &data_dir);
    let stdout = text(&salvage.stdout);
    assert!(
        salvage.status.success(),
        "{stdout}{}",
        text(&salvage.stderr)
    );
    assert!(
        stdout.contains(&format!(
            "salvaged: records.dat cut at byte {}",
            frames[cut_at]
        )) && stdout.contains("appends the audit events recorded there again"),
        "{stdout}"
    );

    let mut server = server.start_again().await;
    let (_, ledger) = server.get("/api/v1/ledger", &auditor).await;
    assert_eq!(
        ledger["size"],
        cut_at + cut_events.len(),
        "the events cut off, and nothing else, appended again: {ledger}"
    );
    let (_, events) = server.get("/api/v1/audit/events?limit=100", &auditor).await;
    let landed: std::collections::HashMap<i64, u64> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["id"].as_i64().unwrap(),
                event["ledger_index"].as_u64().expect("every event landed"),
            )
        })
        .collect();
    for (n, (event, _)) in cut_events.iter().enumerate() {
        let index = landed[event];
        assert_eq!(index, (cut_at + n) as u64, "appended again in their order");
        let (_, record) = server
            .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
            .await;
        assert_eq!(
            (&record["record"]["type"], &record["record"]["event"]),
            (&json!("admin"), &json!(event)),
            "{record}"
        );
    }
    let accesses = |report: &Value| -> Vec<u64> {
        report["accesses"]
            .as_array()
            .unwrap_or_else(|| panic!("{report}"))
            .iter()
            .map(|access| access["ledger_index"].as_u64().unwrap())
            .collect()
    };
    let (status, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(accesses(&report), [kept_exchange], "no cut record is cited");
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let new_exchange = receipt_index(&headers);
    assert!(new_exchange >= (cut_at + cut_events.len()) as u64);
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(accesses(&report), [kept_exchange, new_exchange]);
    assert_eq!(
        report["accesses"][1]["consumer"],
        format!("{}/portal", city.consumer)
    );
    server.stop().await;

    let verify = civitas_in(&["ledger", "verify"], &data_dir);
    let stdout = text(&verify.stdout);
    assert!(verify.status.success(), "{stdout}{}", text(&verify.stderr));
    assert!(stdout.starts_with("ledger ok: "), "{stdout}");
}

/// What the store holds that was derived from a ledger: the position, the access index's
/// entries for one person, where every audit event landed, and the outbox.
async fn derived_from_ledger(
    settings: &civitas::config::Settings,
    subject: &str,
) -> (u64, Vec<u64>, Vec<(i64, Option<u64>)>, usize) {
    let store = civitas_store::Store::connect(&settings.store)
        .await
        .unwrap();
    let all = civitas_store::PageRequest {
        limit: 1000,
        after: None,
    };
    let subject: [u8; 32] = (0..32)
        .map(|i| u8::from_str_radix(&subject[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .try_into()
        .unwrap();
    let derived = (
        store.ledger_index_next().await.unwrap(),
        store
            .subject_deliveries(&subject, &all)
            .await
            .unwrap()
            .items,
        store
            .list_audit_events(&civitas_store::AuditFilter::default(), &all)
            .await
            .unwrap()
            .items
            .iter()
            .map(|event| (event.id, event.ledger_index))
            .collect(),
        store.unshipped_audit_events(1000).await.unwrap().len(),
    );
    store.close().await;
    derived
}

/// A city with its upstream (see `gateway::city`), the path of a call about `CITIZEN` to its
/// accounts service, and the key of an auditor of the provider.
async fn city_with_auditor(server: &TestServer) -> (crate::gateway::City, String, String) {
    use crate::gateway::{CITIZEN, city, start_upstream};

    let upstream = start_upstream().await;
    let city = city(server, upstream, json!({})).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let auditor = server
        .user_with_key("auditor", "auditor", Some(&city.provider.parse().unwrap()))
        .await;
    (city, path, auditor)
}

/// Calls `path` (about `CITIZEN`) once and makes one audited change (a new organization); the
/// call's ledger index and the auditor's subject report, which cites it first.
async fn an_indexed_exchange(
    server: &TestServer,
    city: &crate::gateway::City,
    path: &str,
    auditor: &str,
) -> (u64, Value) {
    use crate::gateway::{CITIZEN, call_ok, receipt_index};

    let (headers, _) = call_ok(server, &city.consumer_key, path).await;
    let exchange = receipt_index(&headers);
    server.create_org(3, None).await;
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), auditor)
        .await;
    assert_eq!(report["accesses"][0]["ledger_index"], exchange, "{report}");
    (exchange, report)
}

/// The id of the ledger in `data_dir`.
fn ledger_id_in(data_dir: &std::path::Path) -> String {
    std::fs::read_to_string(data_dir.join("ledger").join("ledger-id"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Runs `civitas ledger adopt-store --from FROM --apply` on the data dir and store of
/// `settings`, which must succeed.
fn adopt_store(settings: &civitas::config::Settings, from: &str) {
    let output = civitas(
        &["ledger", "adopt-store", "--from", from, "--apply"],
        settings,
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A second node with a data dir of its own (a new, empty ledger) pointed at a store whose
/// indexes come from the first node's ledger refuses to start and changes nothing in the store,
/// where it would otherwise have rewound it to its empty ledger: deleted the first node's access
/// index and appended its audit events again into its own ledger. The first node starts again
/// on it as before.
async fn a_store_refuses_a_node_on_another_ledger(mut server: TestServer) {
    use crate::gateway::{CITIZEN, call_ok, receipt_index};

    let (city, path, auditor) = city_with_auditor(&server).await;
    let (exchange, report) = an_indexed_exchange(&server, &city, &path, &auditor).await;
    let subject = report["subject"].as_str().unwrap().to_owned();
    let (_, ledger) = server.get("/api/v1/ledger", &auditor).await;
    server.stop().await;
    let before = derived_from_ledger(&server.settings, &subject).await;
    assert_eq!(before.1, [exchange]);
    assert!(before.2.len() >= 5, "{:?}", before.2);
    assert!(
        before.2.iter().all(|(_, landed)| landed.is_some()),
        "{:?}",
        before.2
    );
    assert_eq!(before.3, 0, "nothing waits in the outbox");

    let other = tempfile::tempdir().unwrap();
    let mut other_settings = server.settings.clone();
    other_settings.data_dir = other.path().to_path_buf();
    let refused =
        civitas::server::start(&other_settings, Some(crate::support::ADMIN_KEY.to_owned())).await;
    let error = match refused {
        Ok(running) => {
            running.shutdown().await.unwrap();
            panic!("a node on another ledger started on the store");
        }
        Err(error) => format!("{error:#}"),
    };
    let (ours, theirs) = (
        ledger_id_in(&server.settings.data_dir),
        ledger_id_in(other.path()),
    );
    assert_ne!(ours, theirs);
    assert!(
        error.contains(&format!(
            "holds indexes derived from the ledger {ours}, not from this node's ledger {theirs} (0 records) in the data dir {}",
            other.path().display()
        )) && error.contains("a store belongs to one node's ledger")
            && error.contains("nothing in the store was changed"),
        "{error}"
    );
    assert_eq!(
        derived_from_ledger(&server.settings, &subject).await,
        before,
        "the store is as it was"
    );

    let server = server.start_again().await;
    let (_, again) = server.get("/api/v1/ledger", &auditor).await;
    assert_eq!(again["size"], ledger["size"], "nothing appended again");
    let (_, report_again) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(report_again["accesses"], report["accesses"]);
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(
        report["accesses"][1]["ledger_index"],
        receipt_index(&headers),
        "{report}"
    );
}

/// An operator hands the store of a running node over to another node's ledger (`civitas ledger
/// adopt-store` from that node's data dir, as if this node's were lost). The running node finds
/// out at its next reading of its ledger or shipping of audit events: it reads nothing more into
/// the store, appends no audit event from the outbox to its ledger, answers calls and both
/// `/readyz` with 503 `store_handed_over`, and cannot start on the store again.
async fn a_node_whose_store_is_handed_over_while_it_runs_goes_out_of_service(
    mut server: TestServer,
) {
    use crate::gateway::{CITIZEN, call_ok, call_once, gateway_url};

    let (city, path, auditor) = city_with_auditor(&server).await;
    call_ok(&server, &city.consumer_key, &path).await;
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    let subject = report["subject"].as_str().unwrap().to_owned();
    let ours = ledger_id_in(&server.settings.data_dir);

    let other = tempfile::tempdir().unwrap();
    let mut other_settings = server.settings.clone();
    other_settings.data_dir = other.path().to_path_buf();
    // The other node, started once on the store, makes its ledger and is refused.
    let refused =
        civitas::server::start(&other_settings, Some(crate::support::ADMIN_KEY.to_owned())).await;
    assert!(refused.is_err(), "a node on another ledger started");
    adopt_store(&other_settings, &ours);
    let theirs = ledger_id_in(other.path());

    // The node's index reader and audit shipper run every second.
    let started = std::time::Instant::now();
    let (status, body) = loop {
        let response = server
            .client
            .get(format!("{}/readyz", server.base))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        if status != StatusCode::OK || started.elapsed() > std::time::Duration::from_secs(10) {
            break (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let why = format!(
        "the store's ledger indexes are recorded as those of ledger {theirs}, not of this node's ledger {ours}"
    );
    assert!(
        body.contains(&why) && body.contains("adopt-store"),
        "{body}"
    );
    let response = server
        .client
        .get(format!("{}/readyz", gateway_url(&server)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["type"]
            .as_str()
            .unwrap()
            .ends_with("store_handed_over"),
        "{problem}"
    );
    let (status, _, text) = call_once(&server, &city.consumer_key, &path).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{text}");
    assert!(
        text.contains("store_handed_over") && text.contains(&why),
        "{text}"
    );
    // What the API reads from the ledger's indexes is out of service too, not an error.
    let (status, problem) = server
        .get(
            &format!("/api/v1/scenario-runs?id_number={CITIZEN}"),
            &auditor,
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["code"], "unavailable", "{problem}");

    // A change is still made and audited, but its event waits for the node that has the store.
    let (_, ledger_before) = server.get("/api/v1/ledger", &auditor).await;
    let handed_over = derived_from_ledger(&server.settings, &subject).await;
    assert_eq!(
        (handed_over.0, handed_over.1.len()),
        (0, 0),
        "{handed_over:?}"
    );
    server.create_org(7, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, ledger_after) = server.get("/api/v1/ledger", &auditor).await;
    assert_eq!(
        ledger_after["size"], ledger_before["size"],
        "nothing appended"
    );
    let after = derived_from_ledger(&server.settings, &subject).await;
    assert_eq!(
        (after.0, &after.1, after.3),
        (0, &handed_over.1, handed_over.3 + 1)
    );

    server.stop().await;
    let refused =
        civitas::server::start(&server.settings, Some(crate::support::ADMIN_KEY.to_owned())).await;
    match refused {
        Ok(running) => {
            running.shutdown().await.unwrap();
            panic!("the node started again on a store handed over to another ledger");
        }
        Err(error) => assert!(
            format!("{error:#}")
                .contains(&format!("holds indexes derived from the ledger {theirs}")),
            "{error:#}"
        ),
    }
}

/// A node's data dir, and with it its ledger, is lost for good while its store is kept: a node
/// with a new data dir is refused, and `civitas ledger adopt-store` hands the store over to its
/// ledger. Without --apply it reports and changes nothing; --apply needs --from naming the
/// store's ledger. Adopted, the node starts, every audit event is appended to the new ledger in
/// order, the lost ledger's exchanges are no longer cited, new exchanges are indexed, and the
/// ledger verifies.
async fn a_store_whose_ledger_is_lost_is_adopted_by_a_new_ledger(mut server: TestServer) {
    use crate::gateway::{CITIZEN, call_ok, receipt_index};

    let text = |output: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let (city, path, auditor) = city_with_auditor(&server).await;
    let (exchange, report) = an_indexed_exchange(&server, &city, &path, &auditor).await;
    let subject = report["subject"].as_str().unwrap().to_owned();
    let (_, lost_ledger) = server.get("/api/v1/ledger", &auditor).await;
    let lost_id = lost_ledger["ledger_id"].as_str().unwrap().to_owned();
    assert_eq!(lost_id.len(), 32, "{lost_ledger}");
    server.stop().await;
    let before = derived_from_ledger(&server.settings, &subject).await;
    assert_eq!(before.1, [exchange]);
    let events: Vec<i64> = before.2.iter().map(|(id, _)| *id).collect();
    assert!(events.len() >= 5, "{events:?}");

    // The data dir is lost, all but a SQLite store kept in it.
    let store_file = match &server.settings.store {
        civitas_store::StoreUrl::Sqlite(path) => path.file_name().map(|name| name.to_owned()),
        civitas_store::StoreUrl::Postgres(_) => None,
    };
    for entry in std::fs::read_dir(&server.settings.data_dir).unwrap() {
        let entry = entry.unwrap();
        let kept = store_file.as_ref().is_some_and(|store| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with(&*store.to_string_lossy())
        });
        if !kept {
            let path = entry.path();
            if path.is_dir() {
                std::fs::remove_dir_all(path).unwrap();
            } else {
                std::fs::remove_file(path).unwrap();
            }
        }
    }

    let new_dir = tempfile::tempdir().unwrap();
    let mut settings = server.settings.clone();
    settings.data_dir = new_dir.path().to_path_buf();
    let error =
        match civitas::server::start(&settings, Some(crate::support::ADMIN_KEY.to_owned())).await {
            Ok(running) => {
                running.shutdown().await.unwrap();
                panic!("a node on a new ledger started on the store");
            }
            Err(error) => format!("{error:#}"),
        };
    assert!(
        error.contains(&format!(
            "`civitas ledger adopt-store --data-dir {}`",
            new_dir.path().display()
        )),
        "{error}"
    );
    let new_id = ledger_id_in(new_dir.path());
    assert_ne!(new_id, lost_id);

    let output = civitas(&["ledger", "adopt-store"], &settings);
    let stdout = text(&output);
    assert!(output.status.success(), "{stdout}");
    for expected in [
        format!("holds indexes derived from the ledger {lost_id}"),
        format!("this ledger: {new_id} in "),
        ", 0 records".to_owned(),
        format!(
            "the store has read {} records of its ledger: 1 access index entries",
            before.0
        ),
        format!("{} audit events noted as landed there", events.len()),
        format!(
            "`civitas ledger adopt-store --data-dir {} --from {lost_id} --apply`",
            new_dir.path().display()
        ),
        "dry run: nothing was changed".to_owned(),
    ] {
        assert!(stdout.contains(&expected), "{expected:?} in {stdout}");
    }
    assert_eq!(derived_from_ledger(&settings, &subject).await, before);

    for refused in [
        vec!["ledger", "adopt-store", "--apply"],
        vec!["ledger", "adopt-store", "--apply", "--from", &new_id],
        vec!["ledger", "adopt-store", "--apply", "--from", "none"],
    ] {
        let output = civitas(&refused, &settings);
        let stderr = text(&output);
        assert!(!output.status.success(), "{refused:?}: {stderr}");
        assert!(
            stderr.contains(&format!("--from {lost_id}"))
                || stderr.contains(&format!("not the ledger the store records ({lost_id})")),
            "{refused:?}: {stderr}"
        );
        assert!(stderr.contains("nothing was changed"), "{stderr}");
        assert_eq!(derived_from_ledger(&settings, &subject).await, before);
    }

    let output = civitas(
        &["ledger", "adopt-store", "--from", &lost_id, "--apply"],
        &settings,
    );
    let stdout = text(&output);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "adopted: deleted 1 access index entries and 0 scenario runs that cited the old ledger's records (lost with it), returned {} audit events to the outbox, set the position to 0 (it was {}), and recorded this ledger {new_id} as the store's",
            events.len(),
            before.0
        )),
        "{stdout}"
    );
    let handed_over = derived_from_ledger(&settings, &subject).await;
    assert_eq!(handed_over.0, 0);
    assert_eq!(handed_over.1, Vec::<u64>::new());
    assert!(handed_over.2.iter().all(|(_, landed)| landed.is_none()));
    assert_eq!(handed_over.3, events.len());
    let output = civitas(&["ledger", "adopt-store"], &settings);
    assert!(
        text(&output).contains("already belongs to this ledger"),
        "{}",
        text(&output)
    );

    let server = TestServer::start_with(settings.clone(), Some(new_dir)).await;
    let (_, ledger) = server.get("/api/v1/ledger", &auditor).await;
    assert_eq!(ledger["ledger_id"], new_id.as_str(), "{ledger}");
    // Every audit event is in the new ledger, in its order.
    let landed = derived_from_ledger(&settings, &subject).await;
    assert_eq!(landed.3, 0, "nothing waits in the outbox");
    let mut in_order = landed.2.clone();
    in_order.sort();
    let mut previous = None;
    for (id, place) in in_order.iter().filter(|(id, _)| events.contains(id)) {
        let index = place.expect("every event landed");
        assert!(previous < Some(index), "{:?}", landed.2);
        previous = Some(index);
        let (_, record) = server
            .get(&format!("/api/v1/ledger/records/{index}"), &auditor)
            .await;
        assert_eq!(record["record"]["type"], "admin", "{record}");
        assert_eq!(record["record"]["event"], *id, "{record}");
    }
    assert_eq!(
        landed
            .2
            .iter()
            .filter(|(id, _)| events.contains(id))
            .count(),
        events.len()
    );
    assert_eq!(
        landed.1,
        Vec::<u64>::new(),
        "the lost exchange is not cited"
    );
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(report["accesses"], json!([]), "{report}");

    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    assert_eq!(
        report["accesses"][0]["ledger_index"],
        receipt_index(&headers),
        "{report}"
    );
    assert_eq!(report["accesses"].as_array().unwrap().len(), 1, "{report}");

    let mut server = server;
    server.stop().await;
    let output = civitas(&["ledger", "verify"], &settings);
    assert!(output.status.success(), "{}", text(&output));
}

/// A ledger restored from a backup made before ledgers had ids (an older copy of the store's own
/// ledger) gets a new id, so the node is refused; adopted, the node reads the restored records
/// again, keeps citing the exchange they hold and where the audit events they hold landed, and
/// appends only the audit events the backup lacks, once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_adopted_by_an_older_backup_of_its_ledger_keeps_what_the_backup_holds() {
    use crate::gateway::{CITIZEN, call_ok, receipt_index};

    let mut server = TestServer::start_sqlite().await;
    let (city, path, auditor) = city_with_auditor(&server).await;
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let kept_exchange = receipt_index(&headers);
    server.stop().await;
    let ledger_dir = server.settings.data_dir.join("ledger");
    let backup = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&ledger_dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "ledger-id" && entry.file_name() != "lock" {
            std::fs::copy(entry.path(), backup.path().join(entry.file_name())).unwrap();
        }
    }

    let server = server.start_again().await;
    let (_, backup_status) = server.get("/api/v1/ledger", &auditor).await;
    let (headers, _) = call_ok(&server, &city.consumer_key, &path).await;
    let lost_exchange = receipt_index(&headers);
    server.create_org(3, None).await;
    let (_, report) = server
        .get(&format!("/api/v1/audit/subjects/{CITIZEN}"), &auditor)
        .await;
    let subject = report["subject"].as_str().unwrap().to_owned();
    let (_, lost_status) = server.get("/api/v1/ledger", &auditor).await;
    let lost_id = lost_status["ledger_id"].as_str().unwrap().to_owned();
    let mut server = server;
    server.stop().await;
    let before = derived_from_ledger(&server.settings, &subject).await;
    assert_eq!(before.1, [kept_exchange, lost_exchange]);

    // The backup's records, whose size the ledger had when it was copied.
    let backup_size = backup_status["size"].as_u64().unwrap();
    assert!(backup_size > kept_exchange);
    std::fs::remove_dir_all(&ledger_dir).unwrap();
    std::fs::create_dir(&ledger_dir).unwrap();
    for entry in std::fs::read_dir(backup.path()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), ledger_dir.join(entry.file_name())).unwrap();
    }
    let settings = server.settings.clone();
    let refused = civitas::server::start(&settings, None).await;
    assert!(refused.is_err(), "a restored ledger with a new id started");

    let output = civitas(&["ledger", "adopt-store"], &settings);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "this ledger already holds {backup_size} records: adopt it only if they were written for this store"
        )),
        "{stdout}"
    );
    adopt_store(&settings, &lost_id);

    let server = server.start_again().await;
    let after = derived_from_ledger(&settings, &subject).await;
    assert_eq!(after.1, [kept_exchange], "the backup's exchange is cited");
    assert_eq!(after.3, 0, "nothing waits in the outbox");
    let was_in_backup = |landed: Option<u64>| landed.is_some_and(|index| index < backup_size);
    let mut appended = 0;
    for ((id, landed), (same_id, landed_before)) in after.2.iter().zip(&before.2) {
        assert_eq!(id, same_id);
        if was_in_backup(*landed_before) {
            assert_eq!(
                landed, landed_before,
                "event {id} noted where the backup holds it"
            );
        } else {
            let landed = landed.expect("every event landed");
            assert!(landed >= backup_size, "event {id} appended at {landed}");
            appended += 1;
        }
    }
    assert!(appended > 0);
    let (_, status) = server.get("/api/v1/ledger", &auditor).await;
    assert_eq!(
        status["size"].as_u64().unwrap(),
        backup_size + appended,
        "each event the backup lacks appended once: {status}"
    );
}

/// A byte flipped in an old, checkpointed record does not stop the node from starting; its
/// ledger scrub finds it, and `/metrics` and both listeners' `/readyz` say so while the node
/// stays ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_scrub_reports_damage_through_metrics_and_readiness() {
    let mut server = TestServer::start_sqlite_with(|config| {
        config.ledger_scrub_bytes_per_second = Some(1 << 30);
    })
    .await;
    let org = server.create_org(1, None).await;
    for n in 0..5 {
        server.create_system(&org, &format!("s{n}")).await;
    }
    let auditor = server.user_with_key("auditor", "auditor", Some(&org)).await;
    assert!(checkpointed_size(&server, &auditor).await > 5);
    let metrics = server.get_text("/metrics").await;
    assert!(
        metrics.contains("civitas_ledger_scrub_damage{kind=\"records\"} 0")
            && metrics.contains("civitas_ledger_scrub_damage{kind=\"derived\"} 0"),
        "{metrics}"
    );
    server.stop().await;

    // A byte inside the payload of record 1, after its 8-byte frame header.
    let records_path = server.settings.data_dir.join("ledger").join("records.dat");
    let mut records = std::fs::read(&records_path).unwrap();
    let record_0_length = u32::from_le_bytes(records[..4].try_into().unwrap()) as usize;
    records[8 + record_0_length + 8 + 3] ^= 0x01;
    std::fs::write(&records_path, records).unwrap();

    let server = server.start_again().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let metrics = server.get_text("/metrics").await;
        if metrics.contains("civitas_ledger_scrub_damage{kind=\"records\"} 1") {
            // A frame that fails its checksum is damage to the records, not to what is derived.
            assert!(
                metrics.contains("civitas_ledger_scrub_damage{kind=\"derived\"} 0"),
                "{metrics}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scrub reported no damage: {metrics}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Both listeners: the API's and the gateway's, which the load balancer in front of the
    // department systems asks.
    for base in [server.base.clone(), crate::gateway::gateway_url(&server)] {
        let response = server
            .client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{base}");
        let body = response.text().await.unwrap();
        assert!(body.starts_with("ready\n"), "{base}: {body}");
        assert!(
            body.contains("ledger scrub found damage in the records: record 1 at byte")
                && body.contains("frame checksum mismatch")
                && body.contains("`civitas ledger salvage --data-dir DIR`"),
            "{base}: {body}"
        );
    }
}
