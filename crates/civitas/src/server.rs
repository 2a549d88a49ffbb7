//! `civitas serve`: assembles the store, the API and the gateway listener, and runs them until
//! told to stop.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_api::{ApiMetrics, AppState, NodeInfo};
use civitas_core::{
    authz::Permit,
    registry::{KeyOwner, Role, UserName},
};
use civitas_gateway::{
    Gateway, GatewayConfig,
    tls::{CertificateAuthority, ClientAuth},
};
use civitas_ledger::{Ledger, LedgerOptions, NoteSigner};
use civitas_search::CatalogIndex;
use civitas_store::{LedgerIndexOwner, NewUser, Store};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    config::{GatewayTls, Settings},
    node,
};

/// The environment variable whose value becomes the first platform admin's API key.
pub const BOOTSTRAP_TOKEN_VAR: &str = "CIVITAS_BOOTSTRAP_TOKEN";
/// The user name of the platform admin made on first start.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// A running server.
pub struct RunningServer {
    pub api_addr: SocketAddr,
    pub gateway_addr: SocketAddr,
    /// The first platform admin's key when this start created it and it was not given through
    /// `CIVITAS_BOOTSTRAP_TOKEN`; shown once.
    pub generated_admin_key: Option<String>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
    store: Store,
    ledger: Ledger,
    search: CatalogIndex,
    gateway: Gateway,
}

impl RunningServer {
    /// The server's store, for tools that set data up beside the API (the demo builder, tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server's ledger, for tests that append records beside the API, as the gateway does.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Stops accepting connections, lets requests in flight finish, and closes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        // Every task is awaited and every step below taken even when one task failed: its
        // error is reported at the end, not in place of the usage flush and the last checkpoint.
        let mut failure = None;
        for task in self.tasks {
            let ended = task
                .await
                .context("server task panicked")
                .and_then(|ended| ended);
            if let Err(error) = ended {
                tracing::error!(error = format!("{error:#}"), "a server task failed");
                failure.get_or_insert(error);
            }
        }
        // The gateway's threads are done: every call they carried is counted. Its handle of the
        // ledger goes with it, before the last one below.
        self.gateway.flush_usage().await;
        drop(self.gateway);
        if let Err(error) = self.search.close().await {
            tracing::warn!(%error, "closing the search index");
        }
        self.store.close().await;
        // The last handle of the ledger flushes its appends and signs a final checkpoint as it
        // drops, which blocks: do it off the async threads.
        let ledger = self.ledger;
        tokio::task::spawn_blocking(move || drop(ledger)).await?;
        tracing::info!("stopped");
        failure.map_or(Ok(()), Err)
    }
}

/// Starts civitas with `settings`: opens (or creates) the data dir, the node key and the store,
/// makes the first platform admin on first start, and starts serving.
pub async fn start(
    settings: &Settings,
    bootstrap_token: Option<String>,
) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    let signing_key = node::load_or_create_key(&settings.data_dir)?;
    let store = Store::connect(&settings.store)
        .await
        .with_context(|| format!("opening the store at {}", settings.store))?;
    if let Some(token) = &bootstrap_token {
        anyhow::ensure!(
            token.len() >= 16,
            "{BOOTSTRAP_TOKEN_VAR} must have at least 16 characters"
        );
    }
    let ledger_dir = settings.data_dir.join("ledger");
    let signer = NoteSigner::new(settings.node_code.as_str(), signing_key.clone())
        .context("the node key as a checkpoint signer")?;
    let options = LedgerOptions {
        scrub_bytes_per_second: settings.ledger_scrub_bytes_per_second,
        scrub_pass_pause: settings.ledger_scrub_pass_pause,
        ..LedgerOptions::default()
    };
    let ledger = tokio::task::spawn_blocking(move || Ledger::open(&ledger_dir, signer, options))
        .await?
        .map_err(|error| {
            crate::ledger_salvage::ledger_error(error, "opening", &settings.data_dir)
        })?;
    claim_ledger_index(&store, &ledger, settings).await?;

    let public_key = signing_key.verifying_key().to_bytes();
    let api_listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding the API listener to {}", settings.listen))?;
    let gateway_listener = TcpListener::bind(settings.gateway_listen)
        .await
        .with_context(|| {
            format!(
                "binding the gateway listener to {}",
                settings.gateway_listen
            )
        })?;
    let api_addr = api_listener.local_addr()?;
    let gateway_addr = gateway_listener.local_addr()?;
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{api_addr}"));

    let node = NodeInfo {
        code: settings.node_code.to_string(),
        public_key: STANDARD.encode(public_key),
        verifier_key: ledger.verifier_key().to_owned(),
        city_region: settings.city_region.to_string(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ApiMetrics::register(&mut registry);
    let certificate_authority = Arc::new(
        CertificateAuthority::load_or_create(&settings.data_dir, settings.node_code.as_str())
            .context("the node's certificate authority")?,
    );
    let gateway_certificate = certificate_authority
        .load_or_issue_gateway_certificate(&settings.data_dir, settings.node_code.as_str())
        .context("the gateway's client certificate")?;
    let gateway_config = GatewayConfig {
        node_code: settings.node_code.to_string(),
        city_region: settings.city_region,
        utc_offset: jiff::tz::Offset::constant(8),
        subject_key: node::load_or_create_secret(&settings.data_dir, "subject.key")?,
        video_key: node::load_or_create_secret(&settings.data_dir, "video.key")?,
        max_json_bytes: 16 << 20,
        playback_validity: std::time::Duration::from_secs(300),
        accept_api_keys: settings.gateway_tls != GatewayTls::Mtls,
        header_timeout: settings.gateway_header_timeout,
        upstream_tls: civitas_gateway::tls::upstream_config(
            &certificate_authority,
            &gateway_certificate,
        )?,
    };
    let gateway = Gateway::new(store.clone(), ledger.clone(), gateway_config, &mut registry)
        .await
        .context("starting the exchange gateway")?;
    let gateway_tls = match settings.gateway_tls {
        GatewayTls::Off => None,
        mode => {
            let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
            names.push(gateway_addr.ip().to_string());
            let (certificate, key) = certificate_authority.issue_server(names)?;
            let client_auth = if mode == GatewayTls::Mtls {
                ClientAuth::Required
            } else {
                ClientAuth::Optional
            };
            let config = civitas_gateway::tls::server_config(
                &certificate_authority,
                &certificate,
                &key,
                client_auth,
            )?;
            Some(tokio_rustls::TlsAcceptor::from(config))
        }
    };
    let access_changes = Arc::new(tokio::sync::Notify::new());
    let index_dir = settings.data_dir.join("index");
    let search = tokio::task::spawn_blocking(move || CatalogIndex::open(&index_dir))
        .await?
        .context("opening the search index")?;
    let catalog_changes = Arc::new(tokio::sync::Notify::new());
    let state = AppState {
        store: store.clone(),
        node: Arc::new(node),
        metrics,
        registry: Arc::new(registry),
        catalog_changes: catalog_changes.clone(),
        public_url: public_url.into(),
        ledger: ledger.clone(),
        audit_shipping: Default::default(),
        keys: Default::default(),
        access: civitas_api::AccessSettings {
            max_valid_days: settings.max_grant_days,
        },
        access_changes: access_changes.clone(),
        gateway: gateway.clone(),
        certificate_authority,
        scenarios: Default::default(),
        search: search.clone(),
    };
    // The first admin is made once everything else has started, so that a start failing on a
    // busy port, say, does not leave an admin whose key nobody saw.
    let generated_admin_key = bootstrap(&store, bootstrap_token).await?;
    // A ledger shorter than the store remembers (cut by `civitas ledger salvage --apply`, or
    // restored from an older backup) gave the indexes past its end to new records: what the
    // store derived from the lost ones is forgotten before anything reads or appends, the
    // reading below rebuilds from the ledger, and the events noted there are appended again.
    let ledger_size = ledger.size();
    let rewind = store
        .rewind_ledger_index(ledger.id(), ledger_size)
        .await
        .context("rewinding the store's indexes to the ledger's size")?;
    if rewind.rewound() {
        tracing::warn!(
            ledger_size,
            indexed_to = rewind.indexed_to,
            subject_deliveries = rewind.subject_deliveries,
            scenario_runs = rewind.scenario_runs,
            audit_events = rewind.audit_events,
            "the ledger is shorter than the store's indexes: deleted the entries of the personal-data access index and the scenario runs read from the lost records, returned the audit events noted there to the outbox to be appended again, and re-indexing from the ledger's end"
        );
    }
    // Audit events written while no server ran (by `civitas catalog import`, say) or left behind
    // by a crash reach the ledger before anything else happens. Reading the ledger's new records
    // first notes where events appended just before a crash landed, so that they are not
    // appended again.
    gateway
        .index_ledger()
        .await
        .context("reading the ledger's latest records")?;
    let shipped = state
        .ship_audit_events()
        .await
        .context("shipping audit events")?;
    if shipped > 0 {
        tracing::info!(shipped, "appended waiting audit events to the ledger");
    }
    let (stop, stopped) = watch::channel(false);

    let shipper_task = tokio::spawn(ship_audit_events_periodically(
        state.clone(),
        stopped.clone(),
    ));
    // Made now, so that the first sign-in of an unknown name does not also pay for making it.
    tokio::task::spawn_blocking(civitas_api::auth::dummy_password_hash);
    let api = civitas_api::router(state);
    let api_task = tokio::spawn(serve(api_listener, api, stopped.clone()));
    let feeder_task = tokio::spawn(civitas_api::search::feed_index(
        store.clone(),
        search.clone(),
        settings.node_code.clone(),
        catalog_changes,
        stopped.clone(),
    ));
    let feeder_task = tokio::spawn(async move {
        feeder_task.await?;
        Ok(())
    });
    let maintenance_task = {
        let gateway = gateway.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            gateway.maintain(access_changes, stopped).await;
            Ok(())
        })
    };
    let gateway_task = {
        let gateway = gateway.clone();
        let threads = settings.gateway_threads;
        tokio::spawn(async move {
            gateway
                .serve_threads(gateway_listener, gateway_tls, stopped, threads)
                .await
        })
    };
    tracing::info!(api = %api_addr, gateway = %gateway_addr, node = %settings.node_code, "serving");
    Ok(RunningServer {
        api_addr,
        gateway_addr,
        generated_admin_key,
        stop,
        tasks: vec![
            api_task,
            gateway_task,
            shipper_task,
            maintenance_task,
            feeder_task,
        ],
        store,
        ledger,
        search,
        gateway,
    })
}

/// Makes sure that the store's indexes derived from a ledger come from this node's, recording
/// it on a store that has recorded none, before anything reads the ledger into them, rewinds
/// them or notes where audit events land. A store of another ledger stops the start unchanged:
/// its positions name that ledger's records, and a rewind to this ledger's size would delete
/// the other's index entries and append its audit events again here.
async fn claim_ledger_index(
    store: &Store,
    ledger: &Ledger,
    settings: &Settings,
) -> anyhow::Result<()> {
    let ledger_id = ledger.id();
    let ledger_size = ledger.size();
    let owner = store
        .claim_ledger_index(ledger_id, ledger_size)
        .await
        .context("checking which ledger the store's indexes come from")?;
    match owner {
        LedgerIndexOwner::This => Ok(()),
        LedgerIndexOwner::Adopted { derived } => {
            if derived {
                tracing::info!(
                    ledger_id,
                    "the store's indexes derived from a ledger name none: recorded them as this node's ledger's, the only one they can have come from"
                );
            } else {
                tracing::info!(ledger_id, "the store now belongs to this node's ledger");
            }
            Ok(())
        }
        LedgerIndexOwner::Other { recorded } => {
            let theirs = match &recorded {
                Some(recorded) => format!("the ledger {recorded}"),
                None => "a ledger it did not record (it is older than ledger ids), which cannot be this empty one".to_owned(),
            };
            anyhow::bail!(
                "the store at {} holds indexes derived from {theirs}, not from this node's ledger {ledger_id} ({ledger_size} records) in the data dir {}: a store belongs to one node's ledger (several nodes or replicas on one store are not supported yet); start the node whose data dir holds that ledger, or give this node a store of its own, or, if that ledger is lost for good, `civitas ledger adopt-store --data-dir {}` reports what handing the store over to this ledger would do; nothing in the store was changed",
                settings.store,
                settings.data_dir.display(),
                settings.data_dir.display(),
            )
        }
    }
}

/// Every second, moves audit events that other writers (the command line) left in the store's
/// outbox into the ledger.
async fn ship_audit_events_periodically(
    state: AppState,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = interval.tick() => state.audit_changed().await,
            _ = stopped.changed() => return Ok(()),
        }
    }
}

/// How long requests in flight may take to finish once the server is told to stop; connections
/// still open then (a client that never finishes sending its request, say) are left behind, so
/// that the stop goes on to flush and sign what it must.
const API_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

async fn serve(
    listener: TcpListener,
    router: axum::Router,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let stop_requested = |mut stopped: watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    };
    let graceful = axum::serve(listener, router)
        .with_graceful_shutdown(stop_requested(stopped.clone()))
        .into_future();
    tokio::select! {
        served = graceful => served.context("serving"),
        _ = async {
            stop_requested(stopped).await;
            tokio::time::sleep(API_STOP_GRACE).await;
        } => {
            tracing::warn!(
                grace = ?API_STOP_GRACE,
                "API connections still open after the grace period; stopping without them"
            );
            Ok(())
        }
    }
}

/// Makes the first platform admin when the store has no users, or gives the first admin its key
/// when an earlier start made the user and failed before storing one (the admin never had a key;
/// one that was revoked does not count). The key is `CIVITAS_BOOTSTRAP_TOKEN` when set, otherwise
/// a new random key that is returned to be shown once.
async fn bootstrap(store: &Store, token: Option<String>) -> anyhow::Result<Option<String>> {
    let permit = Permit::internal("civitas:bootstrap");
    let name = UserName::parse(BOOTSTRAP_ADMIN).expect("a valid user name");
    if store.has_users().await? {
        let keyless_admin = match store.user(&name).await {
            Ok(user) => {
                user.role == Role::PlatformAdmin
                    && store
                        .list_api_keys(
                            Some(&KeyOwner::User { name: name.clone() }),
                            None,
                            &civitas_store::PageRequest {
                                limit: 1,
                                after: None,
                            },
                        )
                        .await?
                        .items
                        .is_empty()
            }
            Err(civitas_store::StoreError::NotFound { .. }) => false,
            Err(error) => return Err(error.into()),
        };
        if !keyless_admin {
            return Ok(None);
        }
    } else {
        store
            .create_user(
                &permit,
                &NewUser {
                    name: name.clone(),
                    display_name: "Platform administrator".into(),
                    role: Role::PlatformAdmin,
                    organization: None,
                    password_hash: None,
                },
            )
            .await?;
    }
    let (secret, generated) = match token {
        Some(token) => (token, false),
        None => (civitas_api::auth::new_secret(), true),
    };
    let record =
        civitas_api::auth::key_record(&secret, KeyOwner::User { name }, "bootstrap".into(), None);
    store.create_api_key(&permit, &record, None).await?;
    tracing::info!(
        user = BOOTSTRAP_ADMIN,
        "created the first platform admin's key"
    );
    Ok(generated.then_some(secret))
}
