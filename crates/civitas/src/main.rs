//! The `civitas` command.

use std::process::ExitCode;

use civitas::{
    config::{Config, LogFormat, Settings},
    server,
};
use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, check } => serve(config, check),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
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

fn print_settings(settings: &Settings) {
    println!("data_dir = {}", settings.data_dir.display());
    println!("listen = {}", settings.listen);
    println!("gateway_listen = {}", settings.gateway_listen);
    println!("store = {}", settings.store);
    println!("node_code = {}", settings.node_code);
    println!("city_region = {}", settings.city_region);
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
/// first of them.
fn stop_signal() -> anyhow::Result<impl Future<Output = anyhow::Result<()>>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        Ok(())
    })
}
