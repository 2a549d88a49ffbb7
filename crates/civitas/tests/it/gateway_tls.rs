//! Mutual TLS on the gateway listener, and a 100 MB body streamed through a separate civitas
//! process with flat memory.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, routing::get};
use civitas_gateway::tls::{GATEWAY_CERT_FILE, GATEWAY_KEY_FILE};
use reqwest::StatusCode;
use rustls::{
    RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    gateway::{
        CITIZEN, City, answered_with, call_once, city, point_accounts_at, receipt_index,
        start_upstream, tls_get,
    },
    support::{ADMIN_KEY, TestServer},
};

fn client_config(ca_pem: &str, identity: Option<(&str, &str)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    Arc::new(match identity {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            builder
                .with_client_auth_cert(
                    chain,
                    PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap(),
                )
                .unwrap()
        }
        None => builder.with_no_client_auth(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_this_nodes_certificates() {
    // One CI run hung in this test, idle, with nothing in flight. Should that happen again, the
    // test fails after two minutes, and the phases it printed (shown with the failure) say where.
    tokio::time::timeout(Duration::from_secs(120), mutual_tls_phases())
        .await
        .expect("the test finished within two minutes; its last phase is printed above");
}

async fn mutual_tls_phases() {
    let server = TestServer::start_sqlite_with(|config| {
        config.gateway_tls = Some(civitas::config::GatewayTls::Mtls)
    })
    .await;
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    eprintln!("phase: city set up");
    let (status, issued) = server
        .post(
            &format!(
                "/api/v1/organizations/{}/systems/portal/certificates",
                city.consumer
            ),
            ADMIN_KEY,
            json!({ "valid_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{issued}");
    eprintln!("phase: certificate issued");
    let ca_pem = issued["ca_certificate"].as_str().unwrap();
    let gateway = server.running.as_ref().unwrap().gateway_addr;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);

    let trusted = client_config(
        ca_pem,
        Some((
            issued["certificate"].as_str().unwrap(),
            issued["private_key"].as_str().unwrap(),
        )),
    );
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = tls_get(gateway, trusted.clone(), &path)
            .await
            .expect("a certificate from the node's CA is accepted");
        if status == StatusCode::OK || started.elapsed() > Duration::from_secs(2) {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["name"], "欧阳**");
    eprintln!("phase: a call with the certificate answered");

    // A certificate naming the same system but signed by another CA is refused at the handshake.
    let rogue_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut rogue_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    rogue_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let rogue_ca_cert = rogue_ca.self_signed(&rogue_ca_key).unwrap();
    let rogue_issuer =
        rcgen::Issuer::from_ca_cert_pem(&rogue_ca_cert.pem(), &rogue_ca_key).unwrap();
    let rogue_key = rcgen::KeyPair::generate().unwrap();
    let mut rogue = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    rogue.subject_alt_names = vec![rcgen::SanType::URI(
        format!("urn:civitas:system:{}/portal", city.consumer)
            .try_into()
            .unwrap(),
    )];
    let rogue_cert = rogue.signed_by(&rogue_key, &rogue_issuer).unwrap();
    let impostor = client_config(
        ca_pem,
        Some((&rogue_cert.pem(), &rogue_key.serialize_pem())),
    );
    let refused = tls_get(gateway, impostor, &path).await;
    assert!(
        refused.is_err(),
        "a certificate from another CA must be refused: {refused:?}"
    );
    eprintln!("phase: another CA's certificate refused");

    // The gateway's own client certificate is from the node's CA too, and passes the
    // handshake, but it names the node's gateway, no system: the connection ends there.
    let data_dir = &server.settings.data_dir;
    let gateway_own = client_config(
        ca_pem,
        Some((
            &std::fs::read_to_string(data_dir.join(GATEWAY_CERT_FILE)).unwrap(),
            &std::fs::read_to_string(data_dir.join(GATEWAY_KEY_FILE)).unwrap(),
        )),
    );
    let refused = tls_get(gateway, gateway_own, &path).await;
    assert!(
        refused.is_err(),
        "the gateway's certificate must not pass for a system: {refused:?}"
    );
    eprintln!("phase: the gateway's own certificate refused");

    // No certificate at all, and an API key instead, are refused too.
    let anonymous = tls_get(gateway, client_config(ca_pem, None), &path).await;
    assert!(
        anonymous.is_err() || anonymous.as_ref().unwrap().0 == StatusCode::UNAUTHORIZED,
        "{anonymous:?}"
    );
    eprintln!("phase: no certificate refused");

    // A revoked certificate stops working within a second.
    let (status, _) = server
        .post(
            &format!(
                "/api/v1/certificates/{}/revoke",
                issued["serial"].as_str().unwrap()
            ),
            ADMIN_KEY,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    eprintln!("phase: certificate revoked");
    refused_within_a_second(gateway, &trusted, &path, "revoked").await;
    eprintln!("phase: revoked certificate refused");

    // A deactivated system's certificates stop working too, as its keys do.
    let (status, second) = server
        .post(
            &format!(
                "/api/v1/organizations/{}/systems/portal/certificates",
                city.consumer
            ),
            ADMIN_KEY,
            json!({ "valid_days": 30 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = client_config(
        ca_pem,
        Some((
            second["certificate"].as_str().unwrap(),
            second["private_key"].as_str().unwrap(),
        )),
    );
    let (status, body) = tls_get(gateway, second.clone(), &path).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/organizations/{}/systems/portal", city.consumer),
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    refused_within_a_second(gateway, &second, &path, "deactivated").await;
    eprintln!("phase: a deactivated system's certificate refused");
}

/// Calls over mutual TLS with `identity` until the gateway refuses it (401, the answer naming
/// `why`), which must happen within a second: the gateway follows the store that fast.
async fn refused_within_a_second(
    gateway: std::net::SocketAddr,
    identity: &Arc<rustls::ClientConfig>,
    path: &str,
    why: &str,
) {
    let started = Instant::now();
    loop {
        let (status, body) = tls_get(gateway, identity.clone(), path).await.unwrap();
        if status == StatusCode::UNAUTHORIZED {
            assert!(body.contains(why), "{body}");
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not refused ({why}) within a second: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

const HUNDRED_MB: usize = 100 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_stream_with_flat_memory() {
    // An upstream that streams 100 MB of generated bytes in 64 KiB chunks.
    let app = Router::new().route(
        "/export",
        get(|| async {
            let chunks = generated_bytes(HUNDRED_MB, 64 << 10);
            axum::response::Response::builder()
                .header("content-type", "application/octet-stream")
                .body(Body::from_stream(chunks))
                .unwrap()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    // civitas in its own process, so that its memory can be measured alone.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_civitas"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--log",
            "warn",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CIVITAS_BOOTSTRAP_TOKEN", ADMIN_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (api, gateway) = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.split("serving the API on http://").nth(1) {
            let api = rest.split_whitespace().next().unwrap().to_owned();
            let gateway = line
                .split("gateway on http://")
                .nth(1)
                .unwrap()
                .trim()
                .to_owned();
            break (api, gateway);
        }
    };
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        client
            .request(method, format!("http://{api}{path}"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let provider = crate::support::uscc(1).to_string();
    let consumer = crate::support::uscc(2).to_string();
    for (code, system, consumes) in [(&provider, "archive", false), (&consumer, "reader", true)] {
        let response = call(
            reqwest::Method::POST,
            "/api/v1/organizations",
            json!({ "code": code, "name": "局", "level": "municipal", "region": "320100" }),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let response = call(
            reqwest::Method::POST,
            &format!("/api/v1/organizations/{code}/systems"),
            json!({ "code": system, "name": "系统", "consumes": consumes, "provides": !consumes }),
        )
        .await
        .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
    }
    let resource = json!({
        "code": "320100-T12-000001", "kind": "interface", "classification": "T12", "name": "生态环境监测数据批量导出",
        "provider": provider, "provider_system": "archive", "format": "bin",
        "items": [{ "code": "readings", "name": "监测数据", "data_type": "binary", "sensitivity": "internal" }],
        "sharing": { "type": "unconditional", "method": "exchange" }, "open_type": "closed", "update_cycle": "daily"
    });
    assert_eq!(
        call(reqwest::Method::POST, "/api/v1/resources", resource)
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let service = json!({ "code": "export", "resource": "320100-T12-000001", "upstream": format!("http://{upstream}"), "paths": ["/export"], "timeout_ms": 60000 });
    assert_eq!(
        call(
            reqwest::Method::PUT,
            &format!("/api/v1/organizations/{provider}/systems/archive/services/export"),
            service
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CREATED
    );
    let application = json!({ "consumer": { "organization": consumer, "system": "reader" }, "resource": "320100-T12-000001", "purpose": "环境分析", "legal_basis": "《环境保护法》", "valid_days": 1 });
    assert_eq!(
        call(reqwest::Method::POST, "/api/v1/applications", application)
            .await
            .unwrap()
            .status(),
        StatusCode::CREATED
    );
    let key: Value = call(
        reqwest::Method::POST,
        "/api/v1/keys",
        json!({ "owner": { "kind": "system", "organization": consumer, "system": "reader" } }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();

    // The search index takes its writer's memory when it indexes the first resource; let that
    // happen before the measurement, so that only the stream is measured.
    let (client_ref, api_ref) = (&client, &api);
    let read = move |path: String| async move {
        let response = client_ref
            .get(format!("http://{api_ref}{path}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .unwrap();
        response.json::<Value>().await.unwrap()
    };
    let indexed = Instant::now();
    loop {
        let found = read("/api/v1/search?q=监测".into()).await;
        if found["total"].as_u64() == Some(1) {
            break;
        }
        assert!(
            indexed.elapsed() < Duration::from_secs(10),
            "the resource never became searchable: {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = format!("http://{gateway}/x/{provider}/archive/export/export");
    let started = Instant::now();
    let mut response = loop {
        let response = client.get(&url).bearer_auth(&key).send().await.unwrap();
        if response.status() == StatusCode::OK || started.elapsed() > Duration::from_secs(3) {
            break response;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(response.status(), StatusCode::OK);
    let before = peak_rss_kib(child.id());
    let mut received = 0usize;
    let mut hasher = Sha256::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received += chunk.len();
        hasher.update(&chunk);
    }
    let after = peak_rss_kib(child.id());
    assert_eq!(received, HUNDRED_MB);
    // The kernel sums a process's resident pages from per-CPU counters, so two readings of the
    // peak may differ by a little either way when it did not grow.
    let grown = after.saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "peak memory grew by {grown} KiB while streaming 100 MB"
    );

    // The completion record carries the size and digest of what crossed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = read("/api/v1/ledger".into()).await;
    let size = status["size"].as_u64().unwrap();
    let last = read(format!("/api/v1/ledger/records/{}", size - 1)).await;
    assert_eq!(
        last["record"]["response_bytes"], HUNDRED_MB as u64,
        "{last}"
    );
    let digest: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(last["record"]["response_sha256"], digest.as_str());
    assert!(
        last["record"]["rule"]
            .as_str()
            .unwrap()
            .ends_with("stream_complete")
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

/// `total` bytes in chunks of `size`, generated as they are sent.
fn generated_bytes(
    total: usize,
    size: usize,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold((total, 0u8), move |(left, counter)| async move {
        if left == 0 {
            return None;
        }
        let length = left.min(size);
        Some((
            Ok(bytes::Bytes::from(vec![counter; length])),
            (left - length, counter.wrapping_add(1)),
        ))
    })
}

/// A JSON upstream over TLS with the given server certificate: the housing-fund account of the
/// ID number a path ends with. With `client_ca`, it requires a client certificate that CA
/// issued, and notes the URIs each one names (its subject alternative names) in the list it
/// hands back.
async fn start_tls_upstream(
    cert_pem: &str,
    key_pem: &str,
    client_ca: Option<&str>,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<Vec<String>>>>) {
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let config = match client_ca {
        Some(client_ca) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(client_ca.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
                    .build()
                    .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    }
    .with_single_cert(chain, key)
    .unwrap();
    let clients = Arc::new(Mutex::new(Vec::new()));
    let noted = clients.clone();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let noted = noted.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                if let Some(certificate) = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                {
                    noted.lock().unwrap().push(uris_in(certificate));
                }
                let service =
                    hyper::service::service_fn(|request: hyper::Request<hyper::body::Incoming>| {
                        let id = request
                            .uri()
                            .path()
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_owned();
                        async move {
                            let body =
                                json!({ "id_number": id, "name": "欧阳娜娜", "balance": 1.0 });
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .header("content-type", "application/json")
                                    .body(http_body_util::Full::new(bytes::Bytes::from(
                                        body.to_string(),
                                    )))
                                    .unwrap(),
                            )
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, clients)
}

/// The URIs a certificate names among its subject alternative names.
fn uris_in(certificate: &[u8]) -> Vec<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).unwrap();
    let names = parsed.subject_alternative_name().unwrap();
    names
        .map(|names| {
            names
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::URI(uri) => Some(uri.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Services may forward to `https://` upstreams: ones whose certificate the node's CA (or the
/// system's trusted roots) signed are called; others are refused as unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_are_called_when_their_certificate_is_trusted() {
    let server = TestServer::start_sqlite().await;
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let (cert, key) = localhost_certificate(&server);
    let (trusted, _) = start_tls_upstream(&cert, &key, None).await;
    point_accounts_at_tls(&server, &city, trusted).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    let (headers, text) = answered_with(
        &server,
        &city.consumer_key,
        &path,
        Duration::from_secs(3),
        StatusCode::OK,
    )
    .await;
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["name"], "欧阳**", "filtered and masked as over http");
    assert!(headers.contains_key("civitas-receipt"));

    // A certificate no trusted CA signed.
    let stranger = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (untrusted, _) = start_tls_upstream(
        &stranger.cert.pem(),
        &stranger.signing_key.serialize_pem(),
        None,
    )
    .await;
    refused_by_tls_upstream(&server, &city, untrusted, &path).await;
}

/// A server certificate for `localhost` from the node's CA, as a provider may have one issued,
/// and its key.
fn localhost_certificate(server: &TestServer) -> (String, String) {
    let ca = civitas_gateway::tls::CertificateAuthority::load_or_create(
        &server.settings.data_dir,
        server.settings.node_code.as_str(),
    )
    .unwrap();
    ca.issue_server(vec!["localhost".into()]).unwrap()
}

/// Points the city's service at the TLS upstream on `address`, as `localhost`, the name its
/// certificate gives.
async fn point_accounts_at_tls(server: &TestServer, city: &City, address: std::net::SocketAddr) {
    point_accounts_at(
        server,
        city,
        &format!("https://localhost:{}", address.port()),
    )
    .await;
}

/// Points the city's service at the TLS upstream on `address` and calls `path` until the
/// gateway answers that the upstream could not be reached (502 `upstream_refused`), as it does
/// once the change reaches it; that answer's headers.
async fn refused_by_tls_upstream(
    server: &TestServer,
    city: &City,
    address: std::net::SocketAddr,
    path: &str,
) -> reqwest::header::HeaderMap {
    point_accounts_at_tls(server, city, address).await;
    let (headers, text) = answered_with(
        server,
        &city.consumer_key,
        path,
        Duration::from_secs(3),
        StatusCode::BAD_GATEWAY,
    )
    .await;
    let problem: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(problem["code"], "upstream_refused", "{problem}");
    assert_eq!(headers["civitas-refusal"], "upstream_refused");
    headers
}

/// A provider's upstream that requires client certificates from the node's CA (as published at
/// `/api/v1/ca.pem`) is called with the gateway's, which names the node's gateway; one that
/// requires another CA's refuses the gateway, whose call then fails as any unreachable
/// upstream's does, recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_presents_its_client_certificate_to_upstreams_that_require_one() {
    let server = TestServer::start_sqlite().await;
    let upstream = start_upstream().await;
    let city = city(&server, upstream, json!({})).await;
    let node_ca = server.get_text("/api/v1/ca.pem").await;
    let (cert, key) = localhost_certificate(&server);
    let (requiring, clients) = start_tls_upstream(&cert, &key, Some(&node_ca)).await;
    point_accounts_at_tls(&server, &city, requiring).await;
    let path = format!("/x/{}/fund-core/accounts/accounts/{CITIZEN}", city.provider);
    // The TLS upstream's balance tells its answers from the first upstream's, which the gateway
    // calls until the service's new upstream reaches it (the consumer's key reaches it within a
    // second too).
    let started = Instant::now();
    let answer = loop {
        let (status, _, text) = call_once(&server, &city.consumer_key, &path).await;
        let body: Value = serde_json::from_str(&text).unwrap();
        if status == StatusCode::OK && body["balance"] == 1.0 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the upstream requiring a client certificate was never called: {status} {text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(answer["name"], "欧阳**", "filtered and masked as over http");
    let gateway_identity = format!(
        "urn:civitas:node:{}:gateway",
        server.settings.node_code.as_str()
    );
    let seen = clients.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|uris| *uris == [gateway_identity.as_str()]),
        "{seen:?}"
    );

    // An upstream that trusts only another CA's client certificates.
    let other_ca_key = rcgen::KeyPair::generate().unwrap();
    let mut other_ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other_ca = other_ca.self_signed(&other_ca_key).unwrap();
    let (elsewhere, elsewhere_clients) =
        start_tls_upstream(&cert, &key, Some(&other_ca.pem())).await;
    let headers = refused_by_tls_upstream(&server, &city, elsewhere, &path).await;
    let (_, record) = server
        .get(
            &format!("/api/v1/ledger/records/{}", receipt_index(&headers)),
            ADMIN_KEY,
        )
        .await;
    let exchange = &record["record"];
    assert_eq!(exchange["type"], "exchange", "{record}");
    assert_eq!(exchange["consumer"], format!("{}/portal", city.consumer));
    assert_eq!(exchange["decision"], "deny", "{record}");
    assert_eq!(exchange["rule"], "upstream_refused", "{record}");
    assert_eq!(exchange["status"], 502, "{record}");
    assert!(
        elsewhere_clients.lock().unwrap().is_empty(),
        "no handshake with the gateway's certificate completed"
    );
}
