//! Logs to stderr, and spans over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the
//! exporter reads the standard `OTEL_*` variables itself).

use std::io::IsTerminal as _;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Flushes exported spans on drop of the process.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("strata: flushing traces failed: {e}");
        }
    }
}

pub fn init(log_level: &str) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_new(log_level)
        .with_context(|| format!("invalid --log-level '{log_level}'"))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_filter(filter);
    let endpoint_set = std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    if !endpoint_set {
        tracing_subscriber::registry()
            .with(fmt)
            .try_init()
            .context("installing the log subscriber")?;
        return Ok(Telemetry { provider: None });
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .context("building the OTLP span exporter")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("strata").build())
        .build();
    let tracer = provider.tracer("strata");
    // Export request spans and what happens inside them, not every debug event.
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(Telemetry {
        provider: Some(provider),
    })
}
