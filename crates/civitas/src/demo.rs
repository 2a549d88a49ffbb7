//! `civitas demo`: builds a synthetic Nanjing into a data dir (once), then serves it — the API,
//! the gateway, and the provider services the city's interfaces and scenarios call — until
//! stopped. A second start on the same data dir reuses what was built.
//!
//! The data dir holds, besides what `civitas serve` keeps there: `demo.json` (the manifest: seed,
//! scale, counts, build time, example citizens; written last, so its presence means the build
//! completed) and `demo-keys.json` (every user's and system's API key, with a working gateway
//! call per grant). A build that stopped half-way leaves `demo.building`, and the next start
//! clears the data dir and builds again.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use civitas_demo::catalog_services::{self, CatalogServices};
use civitas_demo::city::{self, BuiltCity, CityCounts, CitySize, KeyEntry, Progress, Scale};
use civitas_demo::{Population, ProviderServices, Scenario, reference};
use civitas_gateway::files::{Existing, ORDINARY_FILE_MODE, write_file_whole};
use civitas_store::{Store, StoreUrl};
use serde::{Deserialize, Serialize};

use crate::indexing::IndexFollower;
use crate::{config::Settings, node, server};

/// The manifest of a built demo city.
pub const MANIFEST: &str = "demo.json";
/// The keys of the demo city's users and systems.
pub const KEYS: &str = "demo-keys.json";
/// Present while a build is under way.
const BUILDING: &str = "demo.building";
/// 2: citizens drawn with `civitas-synth`'s randomness.
const MANIFEST_VERSION: u32 = 2;

/// How `civitas demo` was asked to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub scale: Scale,
    pub seed: u64,
    pub fresh: bool,
    /// Gateway calls and scenario runs per second to generate, if any.
    pub traffic: Option<f64>,
}

/// A citizen to try a scenario with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExampleCitizen {
    pub id_number: String,
    pub name: String,
    /// `approve`, `deny` or `needs_review`: what the rental withdrawal decides for them.
    pub outcome: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub seed: u64,
    pub scale: Scale,
    /// The date the city takes as today: the synthetic citizens' histories end there.
    pub today: jiff::civil::Date,
    pub built_at: jiff::Timestamp,
    pub build_seconds: f64,
    pub counts: CityCounts,
    pub rental_withdrawal: Vec<ExampleCitizen>,
}

/// `demo-keys.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeysFile {
    /// Where the API and the gateway listened at the last start.
    pub api: String,
    pub gateway: String,
    pub keys: Vec<KeyEntry>,
}

/// A demo city being served.
pub struct RunningDemo {
    pub server: server::RunningServer,
    pub manifest: Manifest,
    pub keys: KeysFile,
    /// Whether this start built the city (else it reused it).
    pub built: bool,
    pub ready_seconds: f64,
    services: ProviderServices,
    catalog: CatalogServices,
    traffic: Option<Traffic>,
}

impl RunningDemo {
    /// Stops the traffic, the server and the provider services.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(traffic) = self.traffic {
            traffic.stop().await;
        }
        self.server.shutdown().await?;
        self.catalog.shutdown().await?;
        self.services.shutdown().await?;
        Ok(())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes `value` as JSON to `path` whole, readable by the owner only: key files are secrets.
fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    write_file_whole(path, 0o600, Existing::Replace, |file| {
        Ok(file.write_all(&json)?)
    })
}

fn is_empty_dir(path: &Path) -> anyhow::Result<bool> {
    match std::fs::read_dir(path) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(error) => Err(error).with_context(|| format!("reading {}", path.display())),
    }
}

/// Decides whether to build, and clears what a rebuild replaces. Refuses to touch a data dir
/// that is not a demo's.
fn prepare(settings: &Settings, options: &DemoOptions) -> anyhow::Result<Option<Manifest>> {
    let data_dir = &settings.data_dir;
    let manifest: Option<Manifest> = read_json(&data_dir.join(MANIFEST))?;
    let building = data_dir.join(BUILDING).exists();
    let is_demo = manifest.is_some() || building;
    let rebuild = options.fresh || building || manifest.is_none();
    if !rebuild {
        let manifest = manifest.expect("checked above");
        if manifest.version != MANIFEST_VERSION {
            bail!(
                "{} holds a demo city of an older format; start with --fresh to rebuild it",
                data_dir.display()
            );
        }
        if manifest.seed != options.seed || manifest.scale != options.scale {
            bail!(
                "{} holds the demo city of seed {} at scale {}; start with --fresh to rebuild it with seed {} at scale {}",
                data_dir.display(),
                manifest.seed,
                manifest.scale.as_str(),
                options.seed,
                options.scale.as_str()
            );
        }
        return Ok(Some(manifest));
    }
    if !is_empty_dir(data_dir)? {
        if !is_demo {
            bail!(
                "{} is not empty and holds no demo city; give civitas demo an empty or new --data-dir",
                data_dir.display()
            );
        }
        if let StoreUrl::Postgres(_) = settings.store {
            bail!(
                "rebuilding a demo city on PostgreSQL needs an empty database: drop it and start again"
            );
        }
        std::fs::remove_dir_all(data_dir)
            .with_context(|| format!("clearing {}", data_dir.display()))?;
    }
    Ok(None)
}

/// The city's today: the date in Nanjing.
fn nanjing_today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::fixed(jiff::tz::offset(8)))
        .date()
}

/// A progress bar per build phase, on standard error.
struct BuildProgress {
    started: Instant,
    bar: Option<(indicatif::ProgressBar, &'static str)>,
    quiet: bool,
}

impl BuildProgress {
    fn new(quiet: bool) -> BuildProgress {
        BuildProgress {
            started: Instant::now(),
            bar: None,
            quiet,
        }
    }

    fn update(&mut self, progress: Progress) {
        if self.quiet {
            return;
        }
        let same_phase = matches!(&self.bar, Some((_, phase)) if *phase == progress.phase);
        if !same_phase {
            self.finish_phase();
            let bar = indicatif::ProgressBar::new(progress.total).with_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix:>16} {bar:30} {pos}/{len} {per_sec} {elapsed}",
                )
                .expect("a valid template"),
            );
            bar.set_prefix(progress.phase);
            self.bar = Some((bar, progress.phase));
        }
        if let Some((bar, _)) = &self.bar {
            bar.set_length(progress.total);
            bar.set_position(progress.done);
        }
    }

    fn finish_phase(&mut self) {
        if let Some((bar, phase)) = self.bar.take() {
            bar.finish_and_clear();
            eprintln!(
                "{phase:>16} {} done at {:.1} s",
                bar.position(),
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Builds the city (when needed) and starts serving it. `quiet` hides the progress bars.
pub async fn start(
    settings: &Settings,
    options: &DemoOptions,
    quiet: bool,
) -> anyhow::Result<RunningDemo> {
    let started = Instant::now();
    // A busy port is found before minutes of building, not after (the server binds them last).
    for (what, address) in [
        ("API", settings.listen),
        ("gateway", settings.gateway_listen),
    ] {
        if address.port() != 0 {
            drop(std::net::TcpListener::bind(address).with_context(|| {
                format!("the {what} address {address} is not free; choose another with --listen or --gateway-listen")
            })?);
        }
    }
    let existing = prepare(settings, options)?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let size = CitySize::of(options.scale);
    let today = existing
        .as_ref()
        .map(|manifest| manifest.today)
        .unwrap_or_else(nanjing_today);
    let (seed, citizens) = (options.seed, size.citizens as usize);
    let population =
        tokio::task::spawn_blocking(move || Population::generate(seed, citizens, today))
            .await?
            .context("generating the citizens")?;
    let population = Arc::new(population);
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let services = civitas_demo::start_provider_services(population.clone(), loopback)
        .await
        .context("starting the provider services")?;
    let video_key = node::load_or_create_secret(&settings.data_dir, "video.key")?;
    let catalog = catalog_services::start_catalog_services(population.clone(), video_key, loopback)
        .await
        .context("starting the catalog services")?;

    let store = Store::connect(&settings.store)
        .await
        .context("opening the store")?;
    let (manifest, mut keys, built) = match existing {
        Some(manifest) => {
            reference::point_services(&store, &services).await?;
            city::point_catalog_services(&store, &catalog).await?;
            let keys: KeysFile = read_json(&settings.data_dir.join(KEYS))?
                .with_context(|| format!("{KEYS} is missing; start with --fresh to rebuild"))?;
            (manifest, keys, false)
        }
        None => {
            // The mark must outlast a crash as surely as what the build writes, or the data
            // dir would look like no demo's.
            write_file_whole(
                &settings.data_dir.join(BUILDING),
                ORDINARY_FILE_MODE,
                Existing::Replace,
                |_| Ok(()),
            )?;
            let mut progress = BuildProgress::new(quiet);
            // The index follows the catalog as it is written, on the other core.
            let indexing = IndexFollower::start(&store, settings)
                .await?
                .context("the search index is in use by another process")?;
            let built = city::build(
                &store,
                options.seed,
                options.scale,
                &population,
                &services,
                &catalog,
                &mut |step| progress.update(step),
            )
            .await;
            let indexed = indexing
                .finish(&store, settings, |done, total| {
                    progress.update(Progress {
                        phase: "search index",
                        done,
                        total,
                    })
                })
                .await;
            let built = built?;
            indexed?;
            progress.finish_phase();
            let manifest = Manifest {
                version: MANIFEST_VERSION,
                seed: options.seed,
                scale: options.scale,
                today,
                built_at: jiff::Timestamp::now(),
                build_seconds: 0.0,
                counts: built.counts.clone(),
                rental_withdrawal: example_citizens(&population),
            };
            let BuiltCity { keys, .. } = built;
            let keys = KeysFile {
                api: String::new(),
                gateway: String::new(),
                keys,
            };
            (manifest, keys, true)
        }
    };
    store.close().await;

    let server = server::start(settings, None).await?;
    if let Some(admin_key) = &server.generated_admin_key {
        keys.keys.insert(
            0,
            KeyEntry {
                kind: "user".into(),
                organization: String::new(),
                organization_name: String::new(),
                user: Some(server::BOOTSTRAP_ADMIN.into()),
                role: Some("platform_admin".into()),
                system: None,
                system_name: None,
                key: admin_key.clone(),
                grants: Vec::new(),
            },
        );
    }
    keys.api = format!("http://{}", server.api_addr);
    keys.gateway = format!("http://{}", server.gateway_addr);
    write_json(&settings.data_dir.join(KEYS), &keys)?;
    let mut manifest = manifest;
    let ready_seconds = started.elapsed().as_secs_f64();
    if built {
        manifest.build_seconds = ready_seconds;
        write_json(&settings.data_dir.join(MANIFEST), &manifest)?;
        std::fs::remove_file(settings.data_dir.join(BUILDING))?;
    }
    let traffic = options
        .traffic
        .map(|rate| Traffic::start(rate, &keys, &manifest));
    Ok(RunningDemo {
        server,
        manifest,
        keys,
        built,
        ready_seconds,
        services,
        catalog,
        traffic,
    })
}

/// A few citizens per outcome of the rental withdrawal.
fn example_citizens(population: &Population) -> Vec<ExampleCitizen> {
    let examples = population.examples(Scenario::HousingFundRentalWithdrawal, 3);
    [
        ("approve", &examples.approve),
        ("deny", &examples.deny),
        ("needs_review", &examples.needs_review),
    ]
    .into_iter()
    .flat_map(|(outcome, examples)| {
        examples.iter().map(move |example| ExampleCitizen {
            id_number: example.id_number.clone(),
            name: example.name.clone(),
            outcome: outcome.into(),
        })
    })
    .collect()
}

/// Total size of the files under `path` (0 for what cannot be read).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(metadata) if metadata.is_dir() => disk_usage(&entry.path()),
            Ok(metadata) => metadata.len(),
            Err(_) => 0,
        })
        .sum()
}

fn key_of(keys: &KeysFile, matches: impl Fn(&KeyEntry) -> bool) -> Option<&KeyEntry> {
    keys.keys.iter().find(|entry| matches(entry))
}

/// What `civitas demo` prints when the city is ready.
pub fn summary(demo: &RunningDemo, data_dir: &Path) -> String {
    use std::fmt::Write;
    let counts = &demo.manifest.counts;
    let keys = &demo.keys;
    let mut text = String::new();
    let how = if demo.built { "built" } else { "reused" };
    let _ = writeln!(
        text,
        "\nThe demo city of Nanjing (seed {}, {} scale) is {how} and ready in {:.1} s; data dir {} ({:.0} MB).\n",
        demo.manifest.seed,
        demo.manifest.scale.as_str(),
        demo.ready_seconds,
        data_dir.display(),
        disk_usage(data_dir) as f64 / 1e6
    );
    let _ = writeln!(
        text,
        "  {} organizations, {} information systems, {} users\n  {} catalog directories ({} datasets, {} interfaces, {} files), {} cameras\n  {} gateway services, {} grants, {} application scenarios, {} synthetic citizens\n",
        counts.organizations,
        counts.systems,
        counts.users,
        counts.directories,
        counts.datasets,
        counts.interfaces,
        counts.files,
        counts.videos,
        counts.services,
        counts.grants,
        counts.scenarios,
        counts.citizens
    );
    let _ = writeln!(
        text,
        "  API      {}\n  gateway  {}\n  keys     {} (every user and system, with a working call per grant)\n",
        keys.api,
        keys.gateway,
        data_dir.join(KEYS).display()
    );
    let admin = key_of(keys, |entry| {
        entry.role.as_deref() == Some("platform_admin")
            && entry.user.as_deref() == Some("demo-admin")
    });
    let auditor = key_of(keys, |entry| entry.role.as_deref() == Some("auditor"));
    if let Some(admin) = admin {
        let _ = writeln!(
            text,
            "Search the catalog:\n  curl -G -H 'Authorization: Bearer {}' {}/api/v1/search --data-urlencode 'q=公积金' -d facet=provider -d facet=kind\n",
            admin.key, keys.api
        );
        let _ = writeln!(
            text,
            "Use a CKAN client (pip install ckanapi):\n  ckanapi action package_search q=公积金 rows=3 -r {} -a {}\n",
            keys.api, admin.key
        );
    }
    let masked_call = keys.keys.iter().find_map(|entry| {
        entry
            .grants
            .iter()
            .find(|grant| grant.method == "GET" && !grant.masked.is_empty())
            .map(|grant| (entry, grant))
    });
    if let Some((entry, grant)) = masked_call {
        let _ = writeln!(
            text,
            "Call a service through the gateway as {} {} ({} masked):\n  curl -H 'Authorization: Bearer {}' '{}{}'\n",
            entry.organization_name,
            entry.system_name.as_deref().unwrap_or_default(),
            grant.masked.join(", "),
            entry.key,
            keys.gateway,
            grant.path
        );
    }
    let city_app = key_of(keys, |entry| entry.system.as_deref() == Some("city-app"));
    let citizen = demo
        .manifest
        .rental_withdrawal
        .iter()
        .find(|citizen| citizen.outcome == "approve");
    if let (Some(city_app), Some(citizen)) = (city_app, citizen) {
        let body = serde_json::json!({
            "inputs": { "id_number": citizen.id_number, "name": citizen.name, "months": 3 },
            "consent": "consent-demo-0001",
        });
        let _ = writeln!(
            text,
            "Withdraw housing-fund money for rent as {} from the city app (approved; see {MANIFEST} for denials and reviews):\n  curl -H 'Authorization: Bearer {}' -H 'Content-Type: application/json' {}/api/v1/scenarios/housing-fund-rental-withdrawal/runs -d '{}'\n",
            citizen.name, city_app.key, keys.api, body
        );
    }
    if let Some(auditor) = auditor.or(admin) {
        let _ = writeln!(
            text,
            "Verify the data chain:\n  civitas ledger verify --url {} --api-key {}\n",
            keys.api, auditor.key
        );
    }
    text
}

/// A generator of gateway calls and scenario runs at a steady rate.
struct Traffic {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    fn start(rate: f64, keys: &KeysFile, manifest: &Manifest) -> Traffic {
        let calls: Vec<(String, String, String)> = keys
            .keys
            .iter()
            .flat_map(|entry| {
                entry.grants.iter().map(|grant| {
                    (
                        entry.key.clone(),
                        grant.method.clone(),
                        format!("{}{}", keys.gateway, grant.path),
                    )
                })
            })
            .collect();
        let city_app = key_of(keys, |entry| entry.system.as_deref() == Some("city-app"))
            .map(|entry| entry.key.clone());
        let citizens = manifest.rental_withdrawal.clone();
        let runs_url = format!(
            "{}/api/v1/scenarios/housing-fund-rental-withdrawal/runs",
            keys.api
        );
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let period = Duration::from_secs_f64(1.0 / rate.max(0.01));
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            let sent = Arc::new(AtomicU64::new(0));
            let answered: Arc<std::sync::Mutex<BTreeMap<u16, u64>>> = Arc::default();
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut report = tokio::time::interval(Duration::from_secs(10));
            let mut turn: usize = 0;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = report.tick() => {
                        let answered = answered.lock().expect("counts lock").clone();
                        tracing::info!(sent = sent.load(Ordering::Relaxed), ?answered, "demo traffic");
                    }
                    _ = ticker.tick() => {
                        turn += 1;
                        let request = match (&city_app, turn.is_multiple_of(5) && !citizens.is_empty()) {
                            (Some(key), true) => {
                                let citizen = &citizens[turn / 5 % citizens.len()];
                                client.post(&runs_url).bearer_auth(key).json(&serde_json::json!({
                                    "inputs": { "id_number": citizen.id_number, "name": citizen.name, "months": 3 },
                                    "consent": format!("consent-traffic-{turn}"),
                                }))
                            }
                            _ if calls.is_empty() => continue,
                            _ => {
                                let (key, method, url) = &calls[turn % calls.len()];
                                let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
                                client.request(method, url).bearer_auth(key)
                            }
                        };
                        sent.fetch_add(1, Ordering::Relaxed);
                        let answered = answered.clone();
                        tokio::spawn(async move {
                            let status = match request.send().await {
                                Ok(response) => {
                                    let status = response.status().as_u16();
                                    let _ = response.bytes().await;
                                    status
                                }
                                Err(_) => 0,
                            };
                            *answered.lock().expect("counts lock").entry(status).or_default() += 1;
                        });
                    }
                }
            }
        });
        Traffic { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The data dir the demo uses when none is given.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("civitas-demo")
}
