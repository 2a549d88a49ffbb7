//! The `civitas` binary as an operator runs it.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const CIVITAS: &str = env!("CARGO_BIN_EXE_civitas");

#[test]
fn version_is_printed() {
    let output = Command::new(CIVITAS).arg("--version").output().unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.starts_with("civitas "), "{text}");
}

#[test]
fn check_validates_config_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("civitas.toml");
    std::fs::write(
        &file,
        "node_code = \"cn-js-wuxi\"\nlisten = \"127.0.0.1:9999\"\n",
    )
    .unwrap();
    let output = Command::new(CIVITAS)
        .args(["serve", "--check", "--config"])
        .arg(&file)
        .args(["--listen", "127.0.0.1:7000"])
        .env("CIVITAS_NODE_CODE", "cn-js-suzhou")
        .env(
            "CIVITAS_STORE",
            "postgres://civitas:hunter2@db.internal:5432/civitas",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("listen = 127.0.0.1:7000"),
        "flags win: {stdout}"
    );
    assert!(
        stdout.contains("node_code = cn-js-suzhou"),
        "env wins over the file: {stdout}"
    );
    assert!(
        stdout.contains("postgres://civitas:***@db.internal"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hunter2"),
        "passwords never printed: {stdout}"
    );

    let bad = Command::new(CIVITAS)
        .args(["serve", "--check", "--city-region", "999999"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert!(
        stderr.contains("city_region") && stderr.contains("999999"),
        "{stderr}"
    );
}

#[test]
fn serves_until_sigterm_then_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, key, api) = serve_in(dir.path(), None);
    let key = key.expect("a first start prints the admin key once");
    let body = http_get(&api, "/api/v1/me", &key);
    assert!(body.contains("\"role\":\"platform_admin\""), "{body}");
    stop_within(child, Duration::from_secs(10));

    // The second start finds the admin and prints no key.
    let (second, printed, _) = serve_in(dir.path(), None);
    stop_within(second, Duration::from_secs(10));
    assert_eq!(
        printed, None,
        "the admin key is shown only on the first start"
    );
}

/// Starts `civitas serve` on free ports in `dir`; the child, the admin key it printed (if any)
/// and the API's address.
fn serve_in(
    dir: &std::path::Path,
    token: Option<&str>,
) -> (std::process::Child, Option<String>, String) {
    let mut command = Command::new(CIVITAS);
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("CIVITAS_BOOTSTRAP_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(token) = token {
        command.env("CIVITAS_BOOTSTRAP_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut key = None;
    while let Some(Ok(line)) = lines.next() {
        if line.trim().starts_with("cvk_") {
            key = Some(line.trim().to_owned());
        }
        if let Some(rest) = line.split("serving the API on http://").nth(1) {
            let api = rest.split_whitespace().next().unwrap().to_owned();
            return (child, key, api);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("the server did not announce its address");
}

/// Sends SIGTERM and waits at most `within` for a clean exit.
fn stop_within(mut child: std::process::Child, within: Duration) {
    let started = Instant::now();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if started.elapsed() > within {
            let _ = child.kill();
            panic!("the server did not stop within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a clean stop exits 0: {exit:?}");
}

/// A first start that fails (a busy port, a token too short) makes no admin whose key nobody
/// saw: the next start makes the admin with a key, printed or the token given.
#[test]
fn a_failed_first_start_leaves_no_admin_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = Command::new(CIVITAS)
        .args(["serve", "--listen", "127.0.0.1:0", "--gateway-listen"])
        .arg(busy.local_addr().unwrap().to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("CIVITAS_BOOTSTRAP_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("cvk_"),
        "no key shown by a start that failed"
    );
    let short = Command::new(CIVITAS)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .env("CIVITAS_BOOTSTRAP_TOKEN", "short")
        .output()
        .unwrap();
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("at least 16 characters"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );

    let token = "cvk_operator-chosen-token-1";
    let (child, printed, api) = serve_in(dir.path(), Some(token));
    assert_eq!(printed, None, "a key given is not printed");
    let body = http_get(&api, "/api/v1/me", token);
    assert!(body.contains("\"role\":\"platform_admin\""), "{body}");
    stop_within(child, Duration::from_secs(10));
}

/// A client that never finishes sending its request does not hold the stop: requests in flight
/// get a grace period, then the server stops without them.
#[test]
fn a_half_sent_request_does_not_hold_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _, api) = serve_in(dir.path(), None);
    let mut stream = TcpStream::connect(&api).unwrap();
    write!(stream, "GET /api/v1/node HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop_within(child, Duration::from_secs(20));
    drop(stream);
}

/// The demo finds a busy port before it builds the city, not after minutes of building.
#[test]
fn the_demo_checks_its_ports_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let started = Instant::now();
    let output = Command::new(CIVITAS)
        .args([
            "demo",
            "--scale",
            "small",
            "--listen",
            "127.0.0.1:0",
            "--gateway-listen",
        ])
        .arg(busy.local_addr().unwrap().to_string())
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is not free"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        !dir.path().join("demo.building").exists(),
        "nothing was built"
    );
}

/// `catalog import` of a directory names the mistake at once instead of reading it for ever.
#[test]
fn importing_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_file = dir.path().join("catalog.jsonl");
    std::fs::create_dir(&not_a_file).unwrap();
    let output = Command::new(CIVITAS)
        .args(["catalog", "import"])
        .arg(&not_a_file)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is a directory"), "{stderr}");
}

/// A minimal HTTP/1.1 GET, so that this test needs no client library beyond std.
fn http_get(addr: &str, path: &str, key: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[test]
fn scenario_test_compares_outcomes_with_the_cases() {
    let root = crate::support::manifest_dir().join("../../scenarios");
    let root = root.display();
    for scenario in [
        "housing-fund-rental-withdrawal",
        "elderly-care-allowance",
        "newborn-registration",
    ] {
        let output = Command::new(CIVITAS)
            .args([
                "scenario",
                "test",
                &format!("{root}/{scenario}.yaml"),
                "--cases",
                &format!("{root}/{scenario}.cases.yaml"),
            ])
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains(" 0 failed"), "{stdout}");
    }
    // A changed rule that flips an outcome is caught.
    let dir = tempfile::tempdir().unwrap();
    let definition =
        std::fs::read_to_string(format!("{root}/elderly-care-allowance.yaml")).unwrap();
    let stricter = dir.path().join("stricter.yaml");
    std::fs::write(&stricter, definition.replace("value: 80", "value: 95")).unwrap();
    let output = Command::new(CIVITAS)
        .args(["scenario", "test"])
        .arg(&stricter)
        .args([
            "--cases",
            &format!("{root}/elderly-care-allowance.cases.yaml"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
}
