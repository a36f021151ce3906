//! `strata`: the Strata broker binary.

mod check_object_store;
mod cli;
mod groups_cli;
mod kafka_client;
mod quorum;
mod server_config;
mod signals;
mod telemetry;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    match cli.command {
        cli::Command::Server(args) => {
            let settings = server_config::Settings::load(*args)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run_server(settings))
        }
        cli::Command::Quorum(command) => quorum::run(command),
        cli::Command::Groups(command) => groups_cli::run(command),
        cli::Command::CheckObjectStore { url } => check_object_store::run(&url),
    }
}

async fn run_server(settings: server_config::Settings) -> anyhow::Result<()> {
    let telemetry = telemetry::init(&settings.log_level)?;
    let result = serve(settings).await;
    if let Err(e) = &result {
        tracing::error!(error = %format!("{e:#}"), "strata server failed");
    }
    telemetry.shutdown();
    result
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
