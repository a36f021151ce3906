//! The baseline for tiered reads: how fast the object store itself serves the objects a
//! broker wrote, read the way the broker reads them (1 MiB ranged GETs, a bounded number in
//! flight) through the same layers (`strata_objects::open`), with no broker in the way.

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

#[derive(Debug, Clone, clap::Args)]
pub struct RawGetArgs {
    /// The object store URL, as `strata server --object-store` takes it.
    #[arg(long)]
    pub store: String,
    /// Read every object under this prefix.
    #[arg(long, default_value = "segments")]
    pub prefix: String,
    /// GETs in flight (the broker's `strata.tiering.fetch.max.concurrent.gets`).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Bytes per ranged GET (the broker's cache block).
    #[arg(long, default_value_t = 1 << 20)]
    pub block_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct RawGetReport {
    pub store: String,
    pub objects: usize,
    pub gets: usize,
    pub bytes: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

pub fn run(args: &RawGetArgs) -> anyhow::Result<RawGetReport> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(read_all(args))
}

async fn read_all(args: &RawGetArgs) -> anyhow::Result<RawGetReport> {
    let store: Arc<dyn ObjectStore> = strata_objects::open(
        &args.store,
        strata_objects::StoreSettings::default(),
        strata_objects::ObjectStoreMetrics::default(),
    )?;
    let prefix = object_store::path::Path::from(args.prefix.as_str());
    let objects: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
    let ranges: Vec<_> = objects
        .iter()
        .flat_map(|meta| {
            let size = meta.size;
            (0..size.div_ceil(args.block_bytes)).map(move |i| {
                let start = i * args.block_bytes;
                (
                    meta.location.clone(),
                    start..(start + args.block_bytes).min(size),
                )
            })
        })
        .collect();
    let gets = ranges.len();
    let started = Instant::now();
    let bytes: u64 = futures::stream::iter(ranges)
        .map(|(location, range)| {
            let store = store.clone();
            async move {
                store
                    .get_range(&location, range)
                    .await
                    .map(|b| b.len() as u64)
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .try_fold(0u64, |total, n| async move { Ok(total + n) })
        .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(RawGetReport {
        store: args.store.clone(),
        objects: objects.len(),
        gets,
        bytes,
        seconds,
        mb_per_s: bytes as f64 / 1e6 / seconds.max(1e-9),
    })
}
