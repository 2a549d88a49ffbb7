//! Configuration: one struct read from a TOML file, `CIVITAS_…` environment variables and
//! command-line flags, in that order of precedence (flags win).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use civitas_core::{NodeCode, RegionCode};
use civitas_store::StoreUrl;
use serde::Deserialize;

/// Settings of `civitas serve`. Every field is optional here; [`Config::resolve`] fills in the
/// defaults. In a TOML file the keys are the flag names with `_` (e.g. `data_dir`).
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A TOML file with any of these settings.
    #[arg(long, env = "CIVITAS_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Where civitas keeps its state [default: ./civitas-data].
    #[arg(long, env = "CIVITAS_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "CIVITAS_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// The API's public base URL, used in links and RDF identifiers [default: http://LISTEN].
    #[arg(long, env = "CIVITAS_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Address of the exchange gateway [default: 127.0.0.1:8081].
    #[arg(long, env = "CIVITAS_GATEWAY_LISTEN", value_name = "ADDR")]
    pub gateway_listen: Option<SocketAddr>,

    /// Threads serving the gateway, each an event loop of its own with its own pool of upstream
    /// connections, so that a call never changes threads on its way through [default: one per
    /// core].
    #[arg(long, env = "CIVITAS_GATEWAY_THREADS", value_name = "N")]
    pub gateway_threads: Option<usize>,

    /// Seconds a gateway consumer has to send a request's head (and finish a TLS handshake),
    /// counted from when the gateway starts waiting; a keep-alive connection idle that long is
    /// closed [default: 30].
    #[arg(long, env = "CIVITAS_GATEWAY_HEADER_TIMEOUT", value_name = "SECONDS")]
    pub gateway_header_timeout: Option<u64>,

    /// TLS on the gateway listener: off, on (client certificates optional, API keys accepted) or
    /// mtls (client certificates from the node's CA required) [default: off].
    #[arg(long, env = "CIVITAS_GATEWAY_TLS", value_name = "MODE")]
    pub gateway_tls: Option<GatewayTls>,

    /// The store: sqlite://PATH or postgres://USER@HOST:PORT/DB [default: sqlite://DATA_DIR/civitas.db].
    #[arg(long, env = "CIVITAS_STORE", value_name = "URL")]
    pub store: Option<String>,

    /// This node's code, the origin of its ledger checkpoints [default: cn-js-nanjing].
    #[arg(long, env = "CIVITAS_NODE_CODE", value_name = "CODE")]
    pub node_code: Option<String>,

    /// GB/T 2260 code of the city this node serves; systems of organizations inside it count as
    /// inside the city [default: 320100].
    #[arg(long, env = "CIVITAS_CITY_REGION", value_name = "CODE")]
    pub city_region: Option<String>,

    /// The longest validity, in days, an application for access may ask for [default: 365].
    #[arg(long, env = "CIVITAS_MAX_GRANT_DAYS", value_name = "DAYS")]
    pub max_grant_days: Option<u32>,

    /// Bytes per second at which the ledger's background scrub re-reads the records and checks
    /// them against their stored hashes; 0 turns the scrub off [default: 4194304].
    #[arg(
        long,
        env = "CIVITAS_LEDGER_SCRUB_BYTES_PER_SECOND",
        value_name = "BYTES"
    )]
    pub ledger_scrub_bytes_per_second: Option<u64>,

    /// Seconds the ledger's scrub rests after a pass over the records before it starts the next
    /// [default: 600].
    #[arg(long, env = "CIVITAS_LEDGER_SCRUB_PASS_PAUSE", value_name = "SECONDS")]
    pub ledger_scrub_pass_pause: Option<u64>,

    /// Log format: pretty or json [default: pretty].
    #[arg(long, env = "CIVITAS_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter in `tracing` syntax, e.g. `info` or `civitas=debug,info` [default: info].
    #[arg(long, env = "CIVITAS_LOG", value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayTls {
    Off,
    On,
    Mtls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The configuration with every default applied and every value validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `None` means `http://` and the address the API listener got.
    pub public_url: Option<String>,
    pub gateway_listen: SocketAddr,
    pub gateway_threads: usize,
    pub gateway_header_timeout: std::time::Duration,
    pub gateway_tls: GatewayTls,
    pub store: StoreUrl,
    pub node_code: NodeCode,
    pub city_region: RegionCode,
    pub max_grant_days: u32,
    /// `None` runs no scrub.
    pub ledger_scrub_bytes_per_second: Option<u64>,
    pub ledger_scrub_pass_pause: std::time::Duration,
    pub log_format: LogFormat,
    pub log: String,
}

impl Config {
    /// Overlays `self` (from flags and environment) on the file named by `--config`, if any, and
    /// applies defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        self.overlay(file).into_settings()
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
    }

    /// `self` wins over `lower` field by field.
    fn overlay(self, lower: Config) -> Config {
        Config {
            config: self.config.or(lower.config),
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            public_url: self.public_url.or(lower.public_url),
            gateway_listen: self.gateway_listen.or(lower.gateway_listen),
            gateway_threads: self.gateway_threads.or(lower.gateway_threads),
            gateway_header_timeout: self.gateway_header_timeout.or(lower.gateway_header_timeout),
            gateway_tls: self.gateway_tls.or(lower.gateway_tls),
            store: self.store.or(lower.store),
            node_code: self.node_code.or(lower.node_code),
            city_region: self.city_region.or(lower.city_region),
            max_grant_days: self.max_grant_days.or(lower.max_grant_days),
            ledger_scrub_bytes_per_second: self
                .ledger_scrub_bytes_per_second
                .or(lower.ledger_scrub_bytes_per_second),
            ledger_scrub_pass_pause: self
                .ledger_scrub_pass_pause
                .or(lower.ledger_scrub_pass_pause),
            log_format: self.log_format.or(lower.log_format),
            log: self.log.or(lower.log),
        }
    }

    fn into_settings(self) -> anyhow::Result<Settings> {
        let data_dir = self
            .data_dir
            .unwrap_or_else(|| PathBuf::from("civitas-data"));
        let store = match &self.store {
            Some(url) => StoreUrl::parse(url).context("store")?,
            None => StoreUrl::Sqlite(data_dir.join("civitas.db")),
        };
        let node_code = NodeCode::parse(self.node_code.as_deref().unwrap_or("cn-js-nanjing"))
            .context("node_code")?;
        let city_region = RegionCode::parse(self.city_region.as_deref().unwrap_or("320100"))
            .context("city_region")?;
        let listen = self.listen.unwrap_or(([127, 0, 0, 1], 8080).into());
        let gateway_listen = self.gateway_listen.unwrap_or(([127, 0, 0, 1], 8081).into());
        if listen == gateway_listen && listen.port() != 0 {
            bail!("listen and gateway_listen must differ, both are {listen}");
        }
        let public_url = match self.public_url {
            Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                Some(url.trim_end_matches('/').to_owned())
            }
            Some(url) => bail!("public_url {url:?} must start with http:// or https://"),
            None => None,
        };
        Ok(Settings {
            data_dir,
            listen,
            public_url,
            gateway_listen,
            gateway_threads: match self.gateway_threads {
                Some(0) => bail!("gateway_threads must be at least 1"),
                Some(threads) => threads,
                None => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            },
            gateway_header_timeout: match self.gateway_header_timeout.unwrap_or(30) {
                seconds @ 1..=3600 => std::time::Duration::from_secs(seconds),
                _ => bail!("gateway_header_timeout must be between 1 and 3600 seconds"),
            },
            gateway_tls: self.gateway_tls.unwrap_or(GatewayTls::Off),
            store,
            node_code,
            city_region,
            max_grant_days: match self.max_grant_days.unwrap_or(365) {
                0 => bail!("max_grant_days must be at least 1"),
                days => days,
            },
            ledger_scrub_bytes_per_second: match self
                .ledger_scrub_bytes_per_second
                .unwrap_or(civitas_ledger::DEFAULT_SCRUB_BYTES_PER_SECOND)
            {
                0 => None,
                bytes_per_second => Some(bytes_per_second),
            },
            ledger_scrub_pass_pause: match self.ledger_scrub_pass_pause {
                Some(0) => bail!("ledger_scrub_pass_pause must be at least 1 second"),
                Some(seconds) => std::time::Duration::from_secs(seconds),
                None => civitas_ledger::DEFAULT_SCRUB_PASS_PAUSE,
            },
            log_format: self.log_format.unwrap_or(LogFormat::Pretty),
            log: self.log.unwrap_or_else(|| "info".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(
            &file,
            "data_dir = \"from-file\"\nlisten = \"127.0.0.1:9000\"\nnode_code = \"cn-js-wuxi\"\n",
        )
        .unwrap();
        let flags = Config {
            config: Some(file),
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Config::default()
        };
        let settings = flags.resolve().unwrap();
        assert_eq!(settings.listen, "127.0.0.1:9100".parse().unwrap());
        assert_eq!(settings.data_dir, PathBuf::from("from-file"));
        assert_eq!(settings.node_code.as_str(), "cn-js-wuxi");
        assert_eq!(settings.gateway_listen, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(
            settings.gateway_threads,
            std::thread::available_parallelism().unwrap().get()
        );
        assert_eq!(
            settings.store,
            StoreUrl::Sqlite(PathBuf::from("from-file/civitas.db"))
        );
        assert_eq!(
            settings.ledger_scrub_bytes_per_second,
            Some(civitas_ledger::DEFAULT_SCRUB_BYTES_PER_SECOND)
        );
        assert_eq!(
            settings.ledger_scrub_pass_pause,
            civitas_ledger::DEFAULT_SCRUB_PASS_PAUSE
        );
        let scrub_off = Config {
            ledger_scrub_bytes_per_second: Some(0),
            ..Config::default()
        };
        assert_eq!(
            scrub_off.resolve().unwrap().ledger_scrub_bytes_per_second,
            None
        );
        let short_pause = Config {
            ledger_scrub_pass_pause: Some(5),
            ..Config::default()
        };
        assert_eq!(
            short_pause.resolve().unwrap().ledger_scrub_pass_pause,
            std::time::Duration::from_secs(5)
        );
    }

    #[test]
    fn bad_values_are_named() {
        let check = |config: Config, expected: &str| {
            let error = format!("{:#}", config.resolve().unwrap_err());
            assert!(error.contains(expected), "{expected:?} in {error}");
        };
        check(
            Config {
                node_code: Some("Bad Code".into()),
                ..Config::default()
            },
            "node_code",
        );
        check(
            Config {
                city_region: Some("999999".into()),
                ..Config::default()
            },
            "city_region",
        );
        check(
            Config {
                gateway_threads: Some(0),
                ..Config::default()
            },
            "gateway_threads must be at least 1",
        );
        check(
            Config {
                ledger_scrub_pass_pause: Some(0),
                ..Config::default()
            },
            "ledger_scrub_pass_pause must be at least 1 second",
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("civitas.toml");
        std::fs::write(&file, "colour = \"blue\"\n").unwrap();
        check(
            Config {
                config: Some(file),
                ..Config::default()
            },
            "colour",
        );
    }
}
