//! `strata check-object-store URL`: proves an object store works the way the brokers will use
//! it, through the same layers (retries, timeouts, counting), with one probe object.

use std::time::Instant;

use anyhow::{Context as _, ensure};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The probe's size: big enough to make a ranged read meaningful.
const PROBE_BYTES: usize = 1 << 20;

pub fn run(url: &str) -> anyhow::Result<()> {
    let metrics = strata_objects::ObjectStoreMetrics::default();
    let store = strata_objects::open(url, strata_objects::StoreSettings::default(), metrics)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(probe(store.as_ref()))
}

async fn probe(store: &dyn ObjectStore) -> anyhow::Result<()> {
    let name = format!("check/probe-{}", std::process::id());
    let path = Path::from(name.as_str());
    let body: Vec<u8> = (0..=255u8).cycle().take(PROBE_BYTES).collect();
    let step = |what: &str, started: Instant| {
        println!("{what:<28} ok  {:>6} ms", started.elapsed().as_millis());
    };

    let started = Instant::now();
    store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .context("writing the probe object")?;
    step("put 1 MiB", started);
    let started = Instant::now();
    let whole = store
        .get(&path)
        .await
        .context("reading it")?
        .bytes()
        .await?;
    ensure!(
        whole.as_ref() == &body[..],
        "the probe read back differs from what was written"
    );
    step("get it back", started);
    let started = Instant::now();
    let range = store
        .get_range(&path, 1000..1100)
        .await
        .context("a ranged read")?;
    ensure!(
        range.as_ref() == &body[1000..1100],
        "the ranged read returned other bytes"
    );
    step("get bytes 1000..1100", started);
    let started = Instant::now();
    let listed: Vec<_> = store
        .list(Some(&Path::from("check")))
        .try_collect()
        .await
        .context("listing")?;
    ensure!(
        listed
            .iter()
            .any(|meta| meta.location == path && meta.size == PROBE_BYTES as u64),
        "the listing does not show the probe"
    );
    step("list", started);
    let started = Instant::now();
    store.delete(&path).await.context("deleting the probe")?;
    ensure!(
        matches!(
            store.head(&path).await,
            Err(object_store::Error::NotFound { .. })
        ),
        "the probe is still there after its deletion"
    );
    step("delete", started);
    println!("the object store works");
    Ok(())
}
