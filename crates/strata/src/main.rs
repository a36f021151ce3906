//! `strata`: the Strata broker binary.

mod check_object_store;
mod cli;
mod groups_cli;
mod kafka_client;
mod quorum;
mod server_config;
mod signals;
mod telemetry;

use std::process::ExitCode;

use clap::Parser;

/// jemalloc rather than glibc's malloc: with a thread per core and buffers of up to tens of
/// MiB (merges, snapshots), glibc kept what was freed in its arenas and resident memory grew
/// to three times the live heap over a long run; jemalloc returns freed pages to the system
/// within seconds (docs/benchmarks.md, "Metadata at scale").
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.command {
        cli::Command::Server(args) => server(*args),
        cli::Command::Quorum(command) => quorum::run(command).map_err(Failure::Unreported),
        cli::Command::Groups(command) => groups_cli::run(command).map_err(Failure::Unreported),
        cli::Command::CheckObjectStore { url } => {
            check_object_store::run(&url).map_err(Failure::Unreported)
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Logged) => ExitCode::FAILURE,
        Err(Failure::Unreported(e)) => {
            // One line that says what went wrong; the backtrace only when asked for.
            eprintln!("strata: {e:#}");
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("{}", e.backtrace());
            }
            ExitCode::FAILURE
        }
    }
}

/// How a command failed: already said in the log, or still to be said.
enum Failure {
    Logged,
    Unreported(anyhow::Error),
}

fn server(args: cli::ServerArgs) -> Result<(), Failure> {
    let settings = server_config::Settings::load(args).map_err(Failure::Unreported)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Unreported(e.into()))?;
    runtime.block_on(run_server(settings))
}

async fn run_server(settings: server_config::Settings) -> Result<(), Failure> {
    let telemetry = telemetry::init(&settings.log_level).map_err(Failure::Unreported)?;
    let result = serve(settings).await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "strata server failed");
    }
    telemetry.shutdown();
    result.map_err(|_| Failure::Logged)
}

async fn serve(settings: server_config::Settings) -> anyhow::Result<()> {
    use anyhow::Context as _;
    strata_broker::process::raise_fd_limit();
    // A controller-only node serves no Kafka clients.
    let kafka = if settings.broker.roles.broker {
        let listener = tokio::net::TcpListener::bind(&settings.kafka_listen)
            .await
            .with_context(|| format!("binding the Kafka listener on {}", settings.kafka_listen))?;
        Some(listener)
    } else {
        None
    };
    let admin = tokio::net::TcpListener::bind(&settings.admin_listen)
        .await
        .with_context(|| format!("binding the admin listener on {}", settings.admin_listen))?;
    let controller = tokio::net::TcpListener::bind(&settings.controller_listen)
        .await
        .with_context(|| {
            format!(
                "binding the controller listener on {}",
                settings.controller_listen
            )
        })?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    signals::spawn_handler(shutdown.clone(), settings.broker.shutdown_timeout);
    let listeners = strata_broker::Listeners {
        kafka,
        admin,
        controller,
    };
    strata_broker::run(settings.broker, listeners, shutdown).await?;
    tracing::info!("strata stopped");
    Ok(())
}
