//! S3 credentials from aws-config's default chain: the `AWS_*` variables, the shared config
//! and credentials files (profiles, SSO), web identity (EKS service accounts), the ECS task
//! role and EC2 instance metadata. That is what the AWS CLI and every AWS SDK use, so a
//! broker finds the credentials its environment already provides. Credentials are cached
//! and fetched again shortly before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use object_store::CredentialProvider;
use object_store::aws::AwsCredential;
use tokio::sync::{Mutex, OnceCell};

/// Temporary credentials are replaced this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Credentials and when they expire (`None`: long-lived keys).
type Cached = (Arc<AwsCredential>, Option<SystemTime>);

/// The default chain as an object_store credential provider.
#[derive(Debug, Default)]
pub struct AwsConfigCredentials {
    chain: OnceCell<Option<SharedCredentialsProvider>>,
    cached: Mutex<Option<Cached>>,
}

/// No credentials anywhere in the chain is not something a retry fixes; a provider that
/// failed or timed out (instance metadata, STS) may be.
fn credentials_error(error: CredentialsError) -> object_store::Error {
    match error {
        CredentialsError::CredentialsNotLoaded(_) => object_store::Error::Unauthenticated {
            path: String::new(),
            source: Box::new(error),
        },
        _ => object_store::Error::Generic {
            store: "S3",
            source: Box::new(error),
        },
    }
}

#[derive(Debug, thiserror::Error)]
#[error("aws-config's default chain provides no credentials provider")]
struct NoProvider;

#[async_trait]
impl CredentialProvider for AwsConfigCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let mut cached = self.cached.lock().await;
        if let Some((credential, expiry)) = cached.as_ref()
            && expiry.is_none_or(|at| SystemTime::now() + REFRESH_BEFORE_EXPIRY < at)
        {
            return Ok(credential.clone());
        }
        let chain = self
            .chain
            .get_or_init(|| async {
                // The region is the URL's business; fixing one here keeps the loader from
                // looking for it (instance metadata can take seconds off AWS).
                aws_config::defaults(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .load()
                    .await
                    .credentials_provider()
            })
            .await
            .as_ref()
            .ok_or_else(|| object_store::Error::Unauthenticated {
                path: String::new(),
                source: Box::new(NoProvider),
            })?;
        let provided = chain
            .provide_credentials()
            .await
            .map_err(credentials_error)?;
        let credential = Arc::new(AwsCredential {
            key_id: provided.access_key_id().to_string(),
            secret_key: provided.secret_access_key().to_string(),
            token: provided.session_token().map(str::to_string),
        });
        *cached = Some((credential.clone(), provided.expiry()));
        Ok(credential)
    }
}
