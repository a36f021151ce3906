//! The backend named by `--object-store`. This is the only module that names concrete
//! backends; everything else receives an `Arc<dyn ObjectStore>`.
//!
//! - `file:///abs/path`: a local directory (created if missing), the embedded default.
//! - `memory://`: in memory, for tests.
//! - `s3://bucket/prefix`: S3 or an S3-compatible server; credentials come from aws-config's
//!   default chain ([`AwsConfigCredentials`]), region and endpoint from the standard `AWS_*`
//!   variables, and the URL may set the rest for MinIO and LocalStack:
//!   `s3://bucket/prefix?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true`
//!   (an `http://` endpoint allows plain HTTP).

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::aws_credentials::AwsConfigCredentials;
use crate::layer::Layered;
use crate::local_files::LocalDisk;

/// Why an object store URL could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ObjectStoreUrlError {
    #[error("object store url '{url}' must start with file://, memory:// or s3://")]
    UnknownScheme { url: String },
    #[error("object store url '{url}': {reason}")]
    Invalid { url: String, reason: String },
    #[error(
        "no AWS credentials for '{url}' ({cause}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE with a shared credentials file, or run with a web-identity, ECS or EC2 instance role; add ?skip_signature=true for a public bucket or a test server"
    )]
    NoCredentials { url: String, cause: String },
}

/// How long the startup check waits for the credential chain (instance metadata can take
/// a few seconds to answer, or to fail to).
const CREDENTIALS_CHECK: std::time::Duration = std::time::Duration::from_secs(15);

/// Fails at once, with one line that says what to set, when `url` is a signed `s3://`
/// store and the default credential chain provides nothing: a broker would otherwise find
/// out at its first upload, or retry a restore for a long while.
pub async fn check_credentials(url: &str) -> Result<(), ObjectStoreUrlError> {
    let signed = url.starts_with("s3://") && !url.contains("skip_signature=true");
    if !signed {
        return Ok(());
    }
    let no_credentials = |cause: String| ObjectStoreUrlError::NoCredentials {
        url: url.to_string(),
        cause,
    };
    let provider = AwsConfigCredentials::default();
    let asked = tokio::time::timeout(
        CREDENTIALS_CHECK,
        object_store::CredentialProvider::get_credential(&provider),
    )
    .await
    .map_err(|_| no_credentials("the default chain did not answer within 15 s".into()))?;
    match asked {
        Ok(_) => Ok(()),
        Err(e) => {
            use std::error::Error as _;
            let cause = e
                .source()
                .map_or_else(|| e.to_string(), ToString::to_string);
            Err(no_credentials(cause))
        }
    }
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
        let store = LocalFileSystem::new_with_prefix(path)
            .map_err(|e| invalid(e.to_string()))?
            .with_fsync(true);
        let store = Arc::new(store);
        return Ok(Arc::new(Layered::new(store.clone(), LocalDisk::new(store))));
    }
    if url == "memory://" || url == "memory:///" {
        return Ok(Arc::new(InMemory::new()));
    }
    if let Some(rest) = url.strip_prefix("s3://") {
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        if bucket.is_empty() {
            return Err(invalid("s3:// needs a bucket (s3://bucket/prefix)".into()));
        }
        // Retries happen once, in the Retries layer, for every backend alike.
        let no_retries = object_store::RetryConfig {
            max_retries: 0,
            ..Default::default()
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(no_retries)
            .with_credentials(Arc::new(AwsConfigCredentials::default()));
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| invalid(format!("'{pair}' is not key=value")))?;
            builder = match key {
                "endpoint" => builder
                    .with_allow_http(value.starts_with("http://"))
                    .with_endpoint(value),
                "region" => builder.with_region(value),
                // Unsigned requests: public buckets and local test servers.
                "skip_signature" => match value {
                    "true" => builder.with_skip_signature(true),
                    "false" => builder,
                    _ => {
                        return Err(invalid(format!(
                            "skip_signature must be true or false, not '{value}'"
                        )));
                    }
                },
                "path_style" => match value {
                    "true" => builder.with_virtual_hosted_style_request(false),
                    "false" => builder.with_virtual_hosted_style_request(true),
                    _ => {
                        return Err(invalid(format!(
                            "path_style must be true or false, not '{value}'"
                        )));
                    }
                },
                _ => {
                    return Err(invalid(format!(
                        "unknown option '{key}' (endpoint, region, path_style and skip_signature are known)"
                    )));
                }
            };
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
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
        open_backend(
            "s3://bucket/p?endpoint=http://127.0.0.1:9000&region=us-east-1&path_style=true",
        )
        .expect("a MinIO-style store");
        assert!(matches!(
            open_backend("s3://bucket/p?colour=blue"),
            Err(ObjectStoreUrlError::Invalid { .. })
        ));
        assert!(matches!(
            open_backend("s3://bucket/p?path_style=maybe"),
            Err(ObjectStoreUrlError::Invalid { .. })
        ));
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
