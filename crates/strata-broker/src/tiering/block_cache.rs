//! Reads of tiered objects through a foyer hybrid cache of aligned blocks.
//!
//! An object is read in [`BLOCK_BYTES`]-aligned blocks, each filled by one ranged GET and
//! kept in memory, then on a local-disk tier, keyed by object name and block number. Objects
//! are immutable and their names never reused, so a cached block never goes stale. Concurrent
//! reads of one missing block share one GET (foyer's fetch deduplication). GETs in flight are
//! bounded by a semaphore; read-ahead only uses a permit that is free at that moment, so it
//! never queues ahead of a reader that is waiting.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCache, HybridCacheBuilder, Source,
};
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, debug, debug_span};

use crate::config::{TIERED_BLOCK_BYTES, TieringSettings};
use crate::error::BrokerError;
use crate::metrics::{TierLabels, TieringMetrics};

/// The unit of GETs and of caching.
pub const BLOCK_BYTES: u64 = TIERED_BLOCK_BYTES;

/// Blocks of tiered objects, cached in memory and on local disk.
pub struct BlockCache {
    store: Arc<dyn ObjectStore>,
    cache: HybridCache<String, Bytes>,
    gets: Arc<Semaphore>,
    metrics: TieringMetrics,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache").finish_non_exhaustive()
    }
}

fn remote_err(what: &str, e: impl std::fmt::Display) -> BrokerError {
    BrokerError::RemoteStorage(format!("{what}: {e}"))
}

impl BlockCache {
    /// Opens the cache, its disk tier in `dir` (its contents from an earlier run are not
    /// reused: they are only a cache).
    pub async fn open(
        store: Arc<dyn ObjectStore>,
        dir: &Path,
        settings: &TieringSettings,
        metrics: TieringMetrics,
    ) -> Result<Self, BrokerError> {
        std::fs::create_dir_all(dir).map_err(|e| BrokerError::storage(dir, e))?;
        let device = FsDeviceBuilder::new(dir)
            .with_capacity(settings.cache_disk_bytes)
            .build()
            .map_err(|e| remote_err("opening the read cache's disk tier", e))?;
        let cache = HybridCacheBuilder::new()
            .with_name("strata-tiered-blocks")
            .memory(settings.cache_memory_bytes)
            .with_weighter(|key: &String, block: &Bytes| key.len() + block.len())
            .storage()
            .with_engine_config(BlockEngineConfig::new(device))
            .build()
            .await
            .map_err(|e| remote_err("opening the read cache", e))?;
        Ok(Self {
            store,
            cache,
            gets: Arc::new(Semaphore::new(settings.max_concurrent_gets)),
            metrics,
        })
    }

    /// The bytes `range` of `object`. Fails if the object is shorter than the range.
    pub async fn read(&self, object: &str, range: Range<u64>) -> Result<Bytes, BrokerError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let first = range.start / BLOCK_BYTES;
        let last = (range.end - 1) / BLOCK_BYTES;
        if first == last {
            let block = self.block(object, first).await?;
            return slice_block(&block, first, &range, object);
        }
        let mut out = BytesMut::with_capacity((range.end - range.start) as usize);
        for index in first..=last {
            let block = self.block(object, index).await?;
            out.extend_from_slice(&slice_block(&block, index, &range, object)?);
        }
        Ok(out.freeze())
    }

    /// Starts fetching `blocks` of `object` in the background, as far as free GET permits
    /// allow; blocks already cached cost nothing.
    pub fn read_ahead(self: &Arc<Self>, object: &str, blocks: Range<u64>) {
        for index in blocks {
            if self.cache.memory().contains(&block_key(object, index)) {
                continue;
            }
            let Ok(permit) = self.gets.clone().try_acquire_owned() else {
                return;
            };
            let this = self.clone();
            let object = object.to_string();
            tokio::spawn(async move {
                if let Err(e) = this.block_with(&object, index, Some(permit)).await {
                    debug!(object, block = index, error = %e, "read-ahead failed");
                }
            });
        }
    }

    async fn block(&self, object: &str, index: u64) -> Result<Bytes, BrokerError> {
        self.block_with(object, index, None).await
    }

    /// One block through the cache; a miss GETs it, under `permit` if given, else under one
    /// waited for.
    async fn block_with(
        &self,
        object: &str,
        index: u64,
        permit: Option<OwnedSemaphorePermit>,
    ) -> Result<Bytes, BrokerError> {
        let key = block_key(object, index);
        let store = self.store.clone();
        let gets = self.gets.clone();
        let path = object_store::path::Path::from(object);
        let span = debug_span!("remote_block_get", object, block = index);
        let entry = self
            .cache
            .get_or_fetch(&key, move || {
                async move {
                    let _permit = match permit {
                        Some(permit) => permit,
                        None => gets.acquire_owned().await?,
                    };
                    let start = index * BLOCK_BYTES;
                    // A range past the object's end returns what there is (object_store's
                    // contract), so the last block is simply shorter.
                    let bytes = store.get_range(&path, start..start + BLOCK_BYTES).await?;
                    Ok::<_, anyhow::Error>(bytes)
                }
                .instrument(span)
            })
            .await
            .map_err(|e| remote_err(&format!("reading {object}"), format!("{e:#}")))?;
        let tier = match entry.source() {
            Source::Memory => "memory",
            Source::Disk => "disk",
            Source::Outer => {
                self.metrics
                    .fetched_bytes
                    .inc_by(entry.value().len() as u64);
                "object_store"
            }
        };
        self.metrics
            .cache_reads
            .get_or_create(&TierLabels { tier })
            .inc();
        Ok(entry.value().clone())
    }

    /// Closes the disk tier (flushing what it buffers).
    pub async fn close(&self) {
        if let Err(e) = self.cache.close().await {
            debug!(error = %e, "closing the read cache failed");
        }
    }
}

fn block_key(object: &str, index: u64) -> String {
    format!("{object}#{index}")
}

/// The part of block `index` that `range` covers.
fn slice_block(
    block: &Bytes,
    index: u64,
    range: &Range<u64>,
    object: &str,
) -> Result<Bytes, BrokerError> {
    let block_start = index * BLOCK_BYTES;
    let from = range.start.saturating_sub(block_start) as usize;
    let to = (range.end - block_start).min(BLOCK_BYTES) as usize;
    if to > block.len() {
        return Err(BrokerError::RemoteStorage(format!(
            "{object} ends at {} but the manifest says it holds bytes up to {}",
            block_start + block.len() as u64,
            range.end
        )));
    }
    Ok(block.slice(from..to))
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;

    async fn cache_over(bytes: &[u8]) -> (Arc<BlockCache>, tempfile::TempDir) {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        store
            .put(&"o".into(), Bytes::copy_from_slice(bytes).into())
            .await
            .expect("put");
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = TieringSettings {
            cache_disk_bytes: 16 << 20,
            ..TieringSettings::default()
        };
        let cache = BlockCache::open(store, dir.path(), &settings, TieringMetrics::default())
            .await
            .expect("open");
        (Arc::new(cache), dir)
    }

    #[tokio::test]
    async fn ranges_across_blocks_read_back_exactly_and_a_second_read_hits_memory() {
        let data: Vec<u8> = (0..(2 * BLOCK_BYTES + 500))
            .map(|i| (i % 251) as u8)
            .collect();
        let (cache, _dir) = cache_over(&data).await;
        for range in [
            0..10,
            BLOCK_BYTES - 3..BLOCK_BYTES + 3,
            5..2 * BLOCK_BYTES + 500,
        ] {
            let got = cache.read("o", range.clone()).await.expect("read");
            assert_eq!(&got[..], &data[range.start as usize..range.end as usize]);
        }
        let from_store = |c: &BlockCache| {
            c.metrics
                .cache_reads
                .get_or_create(&TierLabels {
                    tier: "object_store",
                })
                .get()
        };
        assert_eq!(from_store(&cache), 3, "one GET per block");
        cache.read("o", 0..10).await.expect("read");
        assert_eq!(from_store(&cache), 3, "the second read is a hit");
    }

    #[tokio::test]
    async fn a_range_past_the_object_end_is_an_error_not_a_short_read() {
        let (cache, _dir) = cache_over(b"short").await;
        assert!(matches!(
            cache.read("o", 0..10).await,
            Err(BrokerError::RemoteStorage(_))
        ));
        assert!(cache.read("missing", 0..1).await.is_err());
    }
}
