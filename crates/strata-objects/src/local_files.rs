//! Writes to the local-directory backend, as a local disk wants them: one object at a time,
//! and out of the page cache once written.
//!
//! - One at a time: a PUT to a `file://` store is CPU and disk work on this machine, not a
//!   wait on a remote server, so the uploader's concurrent PUTs (meant to hide S3's latency)
//!   would only compete with the request threads for the same cores. Measured with
//!   `bench/ab.sh` (tiering on, 130k records/s): produce p99 231 → 127 ms, e2e p99
//!   471 → 216 ms (docs/benchmarks.md, "Sustained load").
//! - Out of the page cache: an object is read back only through the broker's block cache
//!   (or by a restore), so its pages are dropped once written, instead of growing the page
//!   cache by every byte tiered. The backend fsyncs each object before the PUT answers (the
//!   durability an object store's PUT implies: the manifest may reference it and local
//!   copies go), which also leaves its pages clean, so they can be dropped.
//!
//! Why it matters: on the bench VM, tiering to a local directory wrote every byte a second
//! time into fresh page-cache memory, and with memory the host had taken back each new page
//! cost a host fault; copying into the page cache became 45% of the broker's CPU during an
//! upload round (docs/benchmarks.md, "Sustained load").

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use object_store::local::LocalFileSystem;
use tracing::debug;

use crate::layer::{Call, Layer, Op, Request};

/// Writes objects one at a time and drops their pages from the page cache.
#[derive(Debug)]
pub struct LocalDisk {
    store: Arc<LocalFileSystem>,
    writing: tokio::sync::Semaphore,
}

impl LocalDisk {
    pub fn new(store: Arc<LocalFileSystem>) -> Self {
        Self {
            store,
            writing: tokio::sync::Semaphore::new(1),
        }
    }
}

impl Layer for LocalDisk {
    fn around<'a, T: Send + 'a>(
        &'a self,
        request: Request<'a>,
        call: Call<'a, T>,
    ) -> BoxFuture<'a, object_store::Result<T>> {
        async move {
            if request.op != Op::Put {
                return call().await;
            }
            let out = {
                let _turn = self.writing.acquire().await;
                call().await?
            };
            let path = self.store.path_to_filesystem(request.path)?;
            // Advice only: a failure costs page cache, never the object.
            let dropped = tokio::task::spawn_blocking(move || {
                let file = std::fs::File::open(&path)?;
                rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)?;
                std::io::Result::Ok(())
            })
            .await;
            if let Ok(Err(e)) = dropped {
                debug!(path = %request.path, error = %e, "could not drop a written object's pages");
            }
            Ok(out)
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, PutPayload};

    #[tokio::test]
    async fn an_object_put_in_parts_reads_back_whole_after_its_pages_are_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            crate::open_backend(&format!("file://{}", dir.path().display())).expect("file store");
        let parts = [
            Bytes::from_static(b"chunk one, "),
            Bytes::from_static(b"then the tail"),
        ];
        let location = object_store::path::Path::from("segments/1/object");
        store
            .put(&location, parts.iter().cloned().collect::<PutPayload>())
            .await
            .expect("put");
        let stored = store
            .get(&location)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&stored[..], b"chunk one, then the tail");
        assert!(dir.path().join("segments/1/object").is_file());
    }
}
