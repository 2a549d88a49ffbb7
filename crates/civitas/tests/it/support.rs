//! The test harness: a real civitas server on a free port with a temporary data dir, and a small
//! JSON client.

use std::path::Path;

use civitas::{
    config::{Config, Settings},
    server::{self, RunningServer},
};
use civitas_core::Uscc;
use civitas_store::StoreUrl;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_KEY: &str = "cvk_test-admin-key-0123456789";

/// Generates, for each listed async test function `fn(TestServer)`, one test per store backend.
macro_rules! on_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let server = $crate::support::TestServer::start_sqlite().await;
                    super::$name(server).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(server) = $crate::support::TestServer::start_postgres().await else {
                        return;
                    };
                    super::$name(server).await;
                }
            )+
        }
    };
}
pub(crate) use on_both_stores;

pub struct TestServer {
    pub running: Option<RunningServer>,
    pub base: String,
    pub settings: Settings,
    pub client: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start_sqlite() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let settings = test_settings(dir.path(), None);
        TestServer::start_with(settings, Some(dir)).await
    }

    /// Starts a server on SQLite with settings adjusted by `adjust`.
    pub async fn start_sqlite_with(adjust: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path(), None);
        adjust(&mut config);
        TestServer::start_with(config.resolve().unwrap(), Some(dir)).await
    }

    pub async fn start_postgres() -> Option<TestServer> {
        let url = civitas_store::testing::fresh_postgres_database().await?;
        let dir = tempfile::tempdir().unwrap();
        let settings = test_settings(dir.path(), Some(url));
        Some(TestServer::start_with(settings, Some(dir)).await)
    }

    /// Starts a server with `settings`, keeping `dir` (its data dir, say) until it is dropped.
    pub async fn start_with(settings: Settings, dir: Option<tempfile::TempDir>) -> TestServer {
        let running = server::start(&settings, Some(ADMIN_KEY.to_owned()))
            .await
            .expect("the server starts");
        TestServer {
            base: format!("http://{}", running.api_addr),
            running: Some(running),
            settings,
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// Stops the server and starts a new one on the same data dir and store.
    pub async fn restart(mut self) -> TestServer {
        self.stop().await;
        self.start_again().await
    }

    /// Stops the server, leaving its data dir and store as they are.
    pub async fn stop(&mut self) {
        self.running.take().unwrap().shutdown().await.unwrap();
    }

    /// Starts a server on the data dir and store of one stopped by [`TestServer::stop`].
    pub async fn start_again(mut self) -> TestServer {
        let dir = self._dir.take();
        TestServer::start_with(self.settings.clone(), dir).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = response.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type, "application/problem+json", "{status} {text}");
        }
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// The text of an unauthenticated GET on the API listener, such as `/metrics`.
    pub async fn get_text(&self, path: &str) -> String {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(Method::GET, path, Some(key), None).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::POST, path, Some(key), Some(body))
            .await
    }

    pub async fn put(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PUT, path, Some(key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        self.request(Method::PATCH, path, Some(key), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, key: &str) -> (StatusCode, Value) {
        self.request(Method::DELETE, path, Some(key), None).await
    }

    /// Reads a listing as `key` a page of `limit` at a time, following `next_cursor` to the
    /// end, and answers the items of each page.
    pub async fn pages(&self, path: &str, key: &str, limit: u32) -> Vec<Vec<Value>> {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(cursor) => format!("{path}{separator}limit={limit}&cursor={cursor}"),
                None => format!("{path}{separator}limit={limit}"),
            };
            let (status, page) = self.get(&page_path, key).await;
            assert_eq!(status, StatusCode::OK, "{page_path}: {page}");
            let items = page["items"].as_array().unwrap().clone();
            assert!(items.len() <= limit as usize, "{page_path}: {page}");
            pages.push(items);
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return pages,
            }
        }
    }

    /// Creates an organization as the platform admin and returns its code.
    pub async fn create_org(&self, n: u32, parent: Option<&Uscc>) -> Uscc {
        let code = uscc(n);
        let (status, body) = self
            .post(
                "/api/v1/organizations",
                ADMIN_KEY,
                json!({
                    "code": code, "name": format!("测试局{n}"), "name_en": format!("Test bureau {n}"),
                    "level": "municipal", "region": "320100", "parent": parent,
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        code
    }

    pub async fn create_system(&self, org: &Uscc, code: &str) {
        let (status, body) = self
            .post(
                &format!("/api/v1/organizations/{org}/systems"),
                ADMIN_KEY,
                json!({ "code": code, "name": format!("系统{code}"), "consumes": true, "provides": true }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates a user with `role` in `org` and returns an API key for them.
    pub async fn user_with_key(&self, name: &str, role: &str, org: Option<&Uscc>) -> String {
        let (status, body) = self
            .post(
                "/api/v1/users",
                ADMIN_KEY,
                json!({ "name": name, "display_name": name, "role": role, "organization": org }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .post(
                "/api/v1/keys",
                ADMIN_KEY,
                json!({ "owner": { "kind": "user", "name": name }, "label": "test" }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Tests that do not shut down explicitly leave the runtime to cancel the tasks.
        self.running.take();
    }
}

pub fn test_settings(dir: &Path, store: Option<StoreUrl>) -> Settings {
    test_config(dir, store).resolve().unwrap()
}

fn test_config(dir: &Path, store: Option<StoreUrl>) -> Config {
    Config {
        data_dir: Some(dir.to_path_buf()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        gateway_listen: Some("127.0.0.1:0".parse().unwrap()),
        // More than one, so that every test also crosses the gateway's threads.
        gateway_threads: Some(2),
        store: store.map(|url| match url {
            StoreUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreUrl::Postgres(url) => url,
        }),
        ..Config::default()
    }
}

/// A valid unified social credit code whose organization part is `n`.
pub fn uscc(n: u32) -> Uscc {
    Uscc::from_parts('1', '1', "320100", &format!("MB{n:06}")).unwrap()
}

/// `code` with its last (check) character replaced by a wrong one.
pub fn with_bad_check(code: &Uscc) -> String {
    let mut text = code.to_string();
    let last = text.pop().unwrap();
    text.push(if last == '0' { '1' } else { '0' });
    text
}

/// This crate's directory in the checkout the tests run from. Cargo sets it when it runs the
/// tests; the value compiled in is the checkout the test binary was built from, which may be
/// another one sharing the build directory.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(
        || env!("CARGO_MANIFEST_DIR").into(),
        std::path::PathBuf::from,
    )
}

/// The Python with the real third-party clients (ckanapi, rdflib), made once per target dir by
/// `scripts/python-env`.
pub fn python() -> std::path::PathBuf {
    static PYTHON: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = manifest_dir().join("../../scripts/python-env");
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-env");
            let output = std::process::Command::new(script)
                .arg(&dir)
                .output()
                .expect("run scripts/python-env");
            assert!(
                output.status.success(),
                "scripts/python-env failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
        })
        .clone()
}
