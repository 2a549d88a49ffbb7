//! The `civitas` command.

use std::process::ExitCode;

use std::{
    fs::File,
    io::{BufReader, BufWriter, Write},
    path::PathBuf,
    time::Instant,
};

use anyhow::Context;
use civitas::{
    catalog_io::{self, DraftWriter, Format},
    config::{Config, LogFormat, Settings},
    demo,
    indexing::IndexFollower,
    ledger_adopt, ledger_rebuild, ledger_salvage, ledger_verify, receipt_check, server,
};
use civitas_gateway::files::{Existing, ORDINARY_FILE_MODE, write_file_whole};
use civitas_store::{PageRequest, ResourceFilter, Store};
use clap::{Parser, Subcommand};

/// mimalloc rather than the C library's allocator: indexing, JSON and the gateway allocate small
/// blocks from many threads, where glibc's malloc spent a fifth of a bulk import's CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(name = "civitas", version, about = "The city data-sharing platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API and the exchange gateway.
    Serve {
        #[command(flatten)]
        config: Config,
        /// Validate the configuration, print it, and exit.
        #[arg(long)]
        check: bool,
    },
    /// The data chain.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Application scenarios.
    Scenario {
        #[command(subcommand)]
        command: ScenarioCommand,
    },
    /// Bulk import and export of catalog resources.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
    /// Build a synthetic Nanjing (once, deterministically from the seed) and serve it: the API,
    /// the gateway and the provider services, with every user's and system's key in
    /// demo-keys.json in the data dir [default data dir: ./civitas-demo, node: cn-js-nanjing].
    Demo {
        /// full: Nanjing's numbers; small: a hundredth of them.
        #[arg(long, value_enum, default_value = "full")]
        scale: DemoScale,
        /// The random seed the city is built from.
        #[arg(long, default_value_t = 2024)]
        seed: u64,
        /// Rebuild the city even if the data dir holds one.
        #[arg(long)]
        fresh: bool,
        /// Generate this many gateway calls and scenario runs per second.
        #[arg(long, value_name = "RATE")]
        traffic: Option<f64>,
        #[command(flatten)]
        config: Config,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DemoScale {
    Full,
    Small,
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Run a definition against a cases file (see scenarios/README.md) and compare outcomes:
    /// with the recorded answers, or live through a node's gateway with --gateway and --api-key
    /// (the scenario consumer system's key). Exits with status 1 when a case fails.
    Test {
        /// The scenario definition (YAML or JSON).
        file: PathBuf,
        /// The cases file.
        #[arg(long, value_name = "CASES")]
        cases: PathBuf,
        /// Run live against this gateway base URL instead of the recorded answers.
        #[arg(long, value_name = "URL", requires = "api_key")]
        gateway: Option<String>,
        /// The scenario consumer system's API key, for live runs.
        #[arg(
            long,
            env = "CIVITAS_API_KEY",
            value_name = "KEY",
            hide_env_values = true
        )]
        api_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LedgerCommand {
    /// Recompute the tree from every record and check every signed checkpoint, in the local data
    /// dir or, with --url, on a running node. Names the first bad record on tampering.
    Verify {
        /// Verify a running node at this base URL instead of the local data dir.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
        /// An API key that may read the audit trail (needed with --url).
        #[arg(
            long,
            env = "CIVITAS_API_KEY",
            value_name = "KEY",
            hide_env_values = true
        )]
        api_key: Option<String>,
        /// The node's verifier key (`name+hash+base64key`). Without it the key is read from the
        /// data dir's node key, or asked of the node with --url, which then warns that the result
        /// shows the ledger consistent only with the key the node itself publishes; an independent
        /// auditor passes the key they obtained out of band.
        #[arg(long, value_name = "KEY")]
        verifier_key: Option<String>,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Cut the local ledger's records at damage that stops the node from opening it: a damaged
    /// record with valid records after it, past the latest signed checkpoint. Every byte cut is
    /// first saved to `records.dat.cut-OFFSET` in the ledger dir. Without --apply, only reports
    /// the damage and what would be cut off. Refuses while a node has the ledger open, and when
    /// the damage lies among records a signed checkpoint covers (exit status 1). When the node
    /// next starts, it re-reads the ledger from the cut for its store's indexes and appends the
    /// audit events recorded in the cut records again.
    Salvage {
        /// Save the cut bytes and cut the records; without it nothing is changed.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Recompute the files the local ledger derives from its records (record offsets, leaf
    /// hashes, level-4 nodes, tile roots): the repair when the ledger scrub reports damage in
    /// the hashes derived from the records. Reports each file that differs from what the
    /// records give, and where it first does; with --apply, replaces those files, each written
    /// whole and synced before it is renamed into place. Refuses while a node has the ledger
    /// open, and changes nothing when the records do not give the root of every signed
    /// checkpoint (the records are damaged then, and need a backup) (exit status 1).
    RebuildDerived {
        /// Replace the files that differ; without it nothing is changed.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Hand the store over to the local data dir's ledger, when the ledger its indexes come from
    /// is lost for good (a node refuses to start on a store of another ledger). Without --apply,
    /// only reports the store's ledger id, this ledger's id and size, and what adopting would
    /// do. With --apply and --from naming the store's ledger, in one store transaction: deletes
    /// the personal-data access index and the scenario runs (they cite the lost ledger's
    /// records, which are lost), returns every audit event to the outbox and sets the store's
    /// position to 0; the node then reads this ledger from its start and appends the events it
    /// does not find there, in order. Refuses while a node has the ledger open; stop every node
    /// using the store first.
    AdoptStore {
        /// The id of the ledger the store records, as the report gives it (`none` for a store
        /// older than ledger ids), so that no store is adopted by accident.
        #[arg(long, value_name = "LEDGER_ID")]
        from: Option<String>,
        /// Hand the store over; without it nothing is changed.
        #[arg(long)]
        apply: bool,
        #[command(flatten)]
        config: Box<Config>,
    },
    /// Check one record's receipt (a gateway answer's `Civitas-Receipt`, or a subject report's)
    /// with nothing but the node's verifier key: the checkpoint's signature, the inclusion proof
    /// and, given the record, its hash. With --url and --index the receipt is fetched from a
    /// running node, and the node's latest checkpoint is proven consistent with it.
    CheckReceipt {
        /// The receipt as JSON, as `/api/v1/ledger/receipts/{index}` gives it; `-` reads
        /// standard input.
        #[arg(required_unless_present = "url", conflicts_with = "url")]
        receipt: Option<PathBuf>,
        /// The record's bytes, to check that the receipt is for them.
        #[arg(long, value_name = "FILE")]
        record: Option<PathBuf>,
        /// Fetch the receipt of --index from a running node at this base URL.
        #[arg(long, value_name = "URL", requires = "index")]
        url: Option<String>,
        /// The record's ledger index (the `Civitas-Receipt` header).
        #[arg(long, requires = "url")]
        index: Option<u64>,
        /// An API key for --url; one that may read the audit trail also has the record's bytes
        /// fetched and checked.
        #[arg(
            long,
            env = "CIVITAS_API_KEY",
            value_name = "KEY",
            hide_env_values = true
        )]
        api_key: Option<String>,
        /// The node's verifier key (`name+hash+base64key`), from a source you trust. The node
        /// publishes it at /api/v1/node, but a key taken from the node being checked proves
        /// nothing against that node.
        #[arg(long, value_name = "KEY")]
        verifier_key: String,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Import resources from CSV or JSON Lines (see docs/catalog-import.md). Valid rows are
    /// imported, broken rows reported with their line; re-importing updates by resource code.
    /// Exits with status 2 when some rows were rejected.
    Import {
        /// The file to import.
        file: PathBuf,
        /// The file's format [default: from its extension].
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        config: Config,
    },
    /// Export the active catalog in the import formats.
    Export {
        /// Where to write; `-` is standard output [default: standard output].
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The format [default: from the output's extension, else jsonl].
        #[arg(long, value_enum)]
        format: Option<Format>,
        #[command(flatten)]
        config: Config,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, check } => serve(config, check).map(|()| ExitCode::SUCCESS),
        Command::Scenario {
            command:
                ScenarioCommand::Test {
                    file,
                    cases,
                    gateway,
                    api_key,
                },
        } => test_scenario(file, cases, gateway, api_key),
        Command::Ledger {
            command:
                LedgerCommand::Verify {
                    url,
                    api_key,
                    verifier_key,
                    config,
                },
        } => verify_ledger(*config, url, api_key, verifier_key).map(|()| ExitCode::SUCCESS),
        Command::Ledger {
            command: LedgerCommand::Salvage { apply, config },
        } => salvage_ledger(*config, apply).map(|()| ExitCode::SUCCESS),
        Command::Ledger {
            command: LedgerCommand::RebuildDerived { apply, config },
        } => rebuild_derived(*config, apply).map(|()| ExitCode::SUCCESS),
        Command::Ledger {
            command:
                LedgerCommand::AdoptStore {
                    from,
                    apply,
                    config,
                },
        } => adopt_store(*config, from, apply).map(|()| ExitCode::SUCCESS),
        Command::Ledger {
            command:
                LedgerCommand::CheckReceipt {
                    receipt,
                    record,
                    url,
                    index,
                    api_key,
                    verifier_key,
                },
        } => check_receipt(receipt, record, url.zip(index), api_key, &verifier_key)
            .map(|()| ExitCode::SUCCESS),
        Command::Catalog {
            command:
                CatalogCommand::Import {
                    file,
                    format,
                    config,
                },
        } => import(config, file, format),
        Command::Catalog {
            command:
                CatalogCommand::Export {
                    output,
                    format,
                    config,
                },
        } => export(config, output, format).map(|()| ExitCode::SUCCESS),
        Command::Demo {
            scale,
            seed,
            fresh,
            traffic,
            config,
        } => demo(config, scale, seed, fresh, traffic).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("civitas: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config, check: bool) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    if check {
        print_settings(&settings);
        println!("configuration ok");
        return Ok(());
    }
    init_logging(&settings)?;
    runtime()?.block_on(async {
        // Listen for signals before announcing anything, so that a stop requested as soon as the
        // server says it is serving is a clean stop, not the default kill.
        let stop = stop_signal()?;
        let token = std::env::var(server::BOOTSTRAP_TOKEN_VAR).ok();
        let running = server::start(&settings, token).await?;
        if let Some(key) = &running.generated_admin_key {
            println!(
                "First start: the platform admin `{}` has API key\n\n    {key}\n\nIt is shown only now; keep it safe.",
                server::BOOTSTRAP_ADMIN
            );
        }
        println!(
            "civitas {} serving the API on http://{} and the gateway on http://{}",
            env!("CARGO_PKG_VERSION"),
            running.api_addr,
            running.gateway_addr
        );
        stop.await?;
        tracing::info!("shutting down");
        running.shutdown().await
    })
}

fn demo(
    mut config: Config,
    scale: DemoScale,
    seed: u64,
    fresh: bool,
    traffic: Option<f64>,
) -> anyhow::Result<()> {
    if let Some(rate) = traffic
        && !(rate > 0.0 && rate <= 100_000.0)
    {
        anyhow::bail!("--traffic must be a rate between 0 and 100000 per second, not {rate}");
    }
    config.data_dir.get_or_insert_with(demo::default_data_dir);
    config
        .node_code
        .get_or_insert_with(|| "cn-js-nanjing".into());
    let settings = config.resolve()?;
    init_logging(&settings)?;
    let options = demo::DemoOptions {
        scale: match scale {
            DemoScale::Full => civitas_demo::city::Scale::Full,
            DemoScale::Small => civitas_demo::city::Scale::Small,
        },
        seed,
        fresh,
        traffic,
    };
    runtime()?.block_on(async {
        let mut stop = std::pin::pin!(stop_signal()?);
        // Building the city takes a while: a stop during it ends the build (the next start
        // builds again) rather than waiting for the build and the server.
        let running = tokio::select! {
            running = demo::start(&settings, &options, false) => running?,
            _ = &mut stop => anyhow::bail!("stopped before the demo city was ready; the next start builds it again"),
        };
        print!("{}", demo::summary(&running, &settings.data_dir));
        println!(
            "civitas {} serving the demo city: API on http://{}, gateway on http://{} (Ctrl-C stops)",
            env!("CARGO_PKG_VERSION"),
            running.server.api_addr,
            running.server.gateway_addr
        );
        stop.await?;
        tracing::info!("shutting down");
        running.shutdown().await
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn import(config: Config, file: PathBuf, format: Option<Format>) -> anyhow::Result<ExitCode> {
    let settings = config.resolve()?;
    let format = match format.or_else(|| Format::from_path(&file)) {
        Some(format) => format,
        None => anyhow::bail!("{}: say --format csv or --format jsonl", file.display()),
    };
    let input = File::open(&file).with_context(|| format!("opening {}", file.display()))?;
    anyhow::ensure!(
        !input.metadata()?.is_dir(),
        "{} is a directory: import reads a CSV or JSON lines file",
        file.display()
    );
    let size = input.metadata()?.len();
    let progress =
        indicatif::ProgressBar::new(size).with_style(indicatif::ProgressStyle::with_template(
            "{spinner} importing {bar:30} {bytes}/{total_bytes} {per_sec} eta {eta}",
        )?);
    let reader = BufReader::with_capacity(1 << 20, progress.wrap_read(input));
    let started = Instant::now();
    let summary = runtime()?.block_on(async {
        let store = Store::connect(&settings.store).await?;
        // The index follows the import as it is written; a running server's feeder does the
        // same when it holds the index.
        let follower = IndexFollower::start(&store, &settings).await?;
        let summary = catalog_io::import(&store, reader, format, async |first, resources| {
            if let Some(follower) = &follower {
                follower.written(first, resources).await;
            }
        })
        .await;
        let indexed = match follower {
            Some(follower) => Some(follower.finish(&store, &settings, |_, _| {}).await),
            None => None,
        };
        store.close().await;
        Ok::<_, anyhow::Error>((summary?, indexed.transpose()?))
    })?;
    let (summary, indexed) = summary;
    progress.finish_and_clear();
    match indexed {
        Some(count) => println!("search index updated with {count} changes"),
        None => {
            println!("search index in use by a running server, which indexes the import itself")
        }
    }
    for error in &summary.rejected {
        eprintln!("{}: {error}", file.display());
    }
    let seconds = started.elapsed().as_secs_f64();
    let rows = summary.created + summary.updated + summary.unchanged;
    println!(
        "imported {}: {} created, {} updated, {} unchanged, {} rejected in {seconds:.1} s ({:.0} rows/s)",
        file.display(),
        summary.created,
        summary.updated,
        summary.unchanged,
        summary.rejected.len(),
        rows as f64 / seconds.max(1e-9)
    );
    Ok(if summary.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

fn export(config: Config, output: Option<PathBuf>, format: Option<Format>) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let format = format
        .or_else(|| output.as_deref().and_then(Format::from_path))
        .unwrap_or(Format::Jsonl);
    let export_into = |sink: &mut dyn Write| {
        let mut writer = DraftWriter::new(BufWriter::new(sink), format)?;
        let count = runtime()?.block_on(async {
            let store = Store::connect(&settings.store).await?;
            let filter = ResourceFilter {
                active: Some(true),
                ..ResourceFilter::default()
            };
            let mut page = PageRequest {
                limit: PageRequest::MAX_LIMIT,
                after: None,
            };
            let mut count = 0usize;
            loop {
                let resources = store.list_resources(&filter, &page).await?;
                for resource in &resources.items {
                    writer.write(&resource.draft)?;
                    count += 1;
                }
                match resources.next_cursor {
                    Some(cursor) => page.after = Some(cursor),
                    None => break,
                }
            }
            store.close().await;
            anyhow::Ok(count)
        })?;
        writer.finish()?;
        anyhow::Ok(count)
    };
    let Some(path) = output.as_ref().filter(|path| path.as_os_str() != "-") else {
        export_into(&mut std::io::stdout().lock())?;
        return Ok(());
    };
    // An export that fails partway must not leave a file that looks like one, nor spoil the
    // previous export at the path. A link is followed, so that it keeps pointing at the export;
    // a device or a pipe (`/dev/stdout`, `/dev/null`) cannot be replaced and is written into.
    let target = match std::fs::canonicalize(path) {
        Ok(target) => target,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => path.clone(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", path.display())),
    };
    let count = match std::fs::metadata(&target) {
        Ok(metadata) if !metadata.is_file() => export_into(
            &mut File::create(&target).with_context(|| format!("opening {}", target.display()))?,
        )?,
        // The export that replaces another keeps its permissions, as one written into it would.
        Ok(metadata) => {
            let permissions = metadata.permissions();
            write_file_whole(&target, ORDINARY_FILE_MODE, Existing::Replace, |file| {
                file.set_permissions(permissions)
                    .with_context(|| format!("setting the mode of {}", target.display()))?;
                export_into(file)
            })?
        }
        Err(_) => write_file_whole(&target, ORDINARY_FILE_MODE, Existing::Replace, |file| {
            export_into(file)
        })?,
    };
    eprintln!("exported {count} resources to {}", path.display());
    Ok(())
}

fn test_scenario(
    file: PathBuf,
    cases: PathBuf,
    gateway: Option<String>,
    api_key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let live = gateway.zip(api_key);
    let report = runtime()?.block_on(civitas::scenario_test::run(&file, &cases, live))?;
    println!("{report}");
    Ok(if report.all_passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn verify_ledger(
    config: Config,
    url: Option<String>,
    api_key: Option<String>,
    verifier_key: Option<String>,
) -> anyhow::Result<()> {
    let self_key = url.is_some() && verifier_key.is_none();
    let outcome = match url {
        Some(url) => runtime()?.block_on(ledger_verify::verify_remote(
            &url,
            api_key.as_deref(),
            verifier_key.as_deref(),
        ))?,
        None => {
            let settings = config.resolve()?;
            let key = match verifier_key {
                Some(key) => key,
                None => ledger_verify::local_verifier_key(
                    &settings.data_dir,
                    settings.node_code.as_str(),
                )?,
            };
            ledger_verify::verify_local(&settings.data_dir, &key)?
        }
    };
    println!("{}", ledger_verify::summary(&outcome));
    if self_key {
        println!("{}", ledger_verify::SELF_KEY_WARNING);
    }
    Ok(())
}

fn repair_mode(apply: bool) -> civitas_ledger::RepairMode {
    if apply {
        civitas_ledger::RepairMode::Apply
    } else {
        civitas_ledger::RepairMode::DryRun
    }
}

fn salvage_ledger(config: Config, apply: bool) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let report = ledger_salvage::salvage_local(&settings.data_dir, repair_mode(apply))?;
    println!("{}", ledger_salvage::describe(&report));
    Ok(())
}

fn rebuild_derived(config: Config, apply: bool) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let report = ledger_rebuild::rebuild_local(&settings.data_dir, repair_mode(apply))?;
    println!("{}", ledger_rebuild::describe(&report));
    Ok(())
}

fn adopt_store(config: Config, from: Option<String>, apply: bool) -> anyhow::Result<()> {
    let settings = config.resolve()?;
    let report =
        runtime()?.block_on(ledger_adopt::adopt_store(&settings, from.as_deref(), apply))?;
    println!("{report}");
    Ok(())
}

fn check_receipt(
    receipt: Option<PathBuf>,
    record: Option<PathBuf>,
    remote: Option<(String, u64)>,
    api_key: Option<String>,
    verifier_key: &str,
) -> anyhow::Result<()> {
    let record = record
        .map(|path| std::fs::read(&path).with_context(|| format!("reading {}", path.display())))
        .transpose()?;
    let checked = match (remote, receipt) {
        (Some((url, index)), _) => runtime()?.block_on(receipt_check::check_remote(
            &url,
            index,
            api_key.as_deref(),
            record,
            verifier_key,
        ))?,
        (None, Some(path)) => {
            let receipt = receipt_check::read_receipt(&path)?;
            receipt_check::check(&receipt, record.as_deref(), verifier_key)?
        }
        (None, None) => anyhow::bail!("give a receipt file, or --url and --index"),
    };
    println!("{}", checked.report());
    Ok(())
}

fn print_settings(settings: &Settings) {
    println!("data_dir = {}", settings.data_dir.display());
    println!("listen = {}", settings.listen);
    if let Some(url) = &settings.public_url {
        println!("public_url = {url}");
    }
    println!("gateway_listen = {}", settings.gateway_listen);
    println!("gateway_threads = {}", settings.gateway_threads);
    println!(
        "gateway_header_timeout = {}",
        settings.gateway_header_timeout.as_secs()
    );
    println!("gateway_tls = {:?}", settings.gateway_tls);
    println!("store = {}", settings.store);
    println!("node_code = {}", settings.node_code);
    println!("city_region = {}", settings.city_region);
    println!("max_grant_days = {}", settings.max_grant_days);
    println!(
        "ledger_scrub_bytes_per_second = {}",
        settings.ledger_scrub_bytes_per_second.unwrap_or(0)
    );
    println!(
        "ledger_scrub_pass_pause = {}",
        settings.ledger_scrub_pass_pause.as_secs()
    );
    println!("log_format = {:?}", settings.log_format);
    println!("log = {}", settings.log);
}

fn init_logging(settings: &Settings) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log)
        .map_err(|e| anyhow::anyhow!("log filter {:?}: {e}", settings.log))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match settings.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
    Ok(())
}

/// Installs handlers for SIGTERM and SIGINT (Ctrl-C) and returns a future that resolves on the
/// first of them. A second signal, while the stop the first began is under way, ends the process
/// at once.
fn stop_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        tokio::spawn(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            eprintln!("a second stop signal: exiting without finishing the stop");
            std::process::exit(130);
        });
        Ok(())
    })
}
