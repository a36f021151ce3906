//! The backend named by `--object-store`. This is the only module that names concrete
//! backends; everything else receives an `Arc<dyn ObjectStore>`.
//!
//! - `file:///abs/path`: a local directory (created if missing), the embedded default.
//! - `memory://`: in memory, for tests.
//! - `s3://bucket/prefix`: S3 or an S3-compatible server; credentials, region and endpoint
//!   come from the standard `AWS_*` variables (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP` for MinIO and
//!   LocalStack).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

/// Why an object store URL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreUrlError {
    #[error("object store url '{url}' must start with file://, memory:// or s3://")]
    UnknownScheme { url: String },
    #[error("object store url '{url}': {reason}")]
    Invalid { url: String, reason: String },
}

/// Opens the bare backend for `url`, rooted at the URL's path or prefix (see
/// [`crate::open`] for the store with its layers).
pub fn open_backend(url: &str) -> Result<Arc<dyn ObjectStore>, ObjectStoreUrlError> {
    let invalid = |reason: String| ObjectStoreUrlError::Invalid {
        url: url.to_string(),
        reason,
    };
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(invalid(
                "file:// needs an absolute path (file:///abs/path)".into(),
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| invalid(e.to_string()))?;
        let store = LocalFileSystem::new_with_prefix(path).map_err(|e| invalid(e.to_string()))?;
        return Ok(Arc::new(store));
    }
    if url == "memory://" || url == "memory:///" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("s3:// needs a bucket (s3://bucket/prefix)".into()));
        }
        // Retries happen once, in the Retries layer, for every backend alike.
        let no_retries = object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        };
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(no_retries)
            .build()
            .map_err(|e| invalid(e.to_string()))?;
        let prefix = prefix.trim_matches('/');
        return Ok(if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix))
        });
    }
    Err(ObjectStoreUrlError::UnknownScheme {
        url: url.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_memory_and_s3_urls_open_and_others_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = dir.path().join("objects");
        open_backend(&format!("file://{}", objects.display())).expect("file store");
        assert!(objects.is_dir(), "the directory is created");
        open_backend("memory://").expect("memory store");
        open_backend("s3://bucket/some/prefix").expect("s3 store builds without contacting S3");
        assert!(matches!(
            open_backend("ftp://x"),
            Err(ObjectStoreUrlError::UnknownScheme { .. })
        ));
        assert!(matches!(
            open_backend("file://relative"),
            Err(ObjectStoreUrlError::Invalid { .. })
        ));
        assert!(matches!(
            open_backend("s3:///nobucket"),
            Err(ObjectStoreUrlError::Invalid { .. })
        ));
    }
}
