//! ApiVersions: the versions of every API this broker serves.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::{RequestContext, RequestError};
use crate::response::{Response, Splices};

/// The API versions advertised to clients: the served APIs' table.
fn advertised_api_versions() -> Vec<ApiVersion> {
    super::apis::APIS
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min)
                .with_max_version(api.max)
        })
        .collect()
}

pub fn handle(_ctx: &RequestContext<'_>, _request: ApiVersionsRequest) -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(advertised_api_versions())
}

/// The answer to an ApiVersions request of a version this broker does not know: a v0
/// response with UNSUPPORTED_VERSION and the supported list, as Kafka does (KIP-511).
pub fn unsupported_version_response(correlation_id: i32) -> Result<Response, RequestError> {
    let response = ApiVersionsResponse::default()
        .with_error_code(ResponseError::UnsupportedVersion.code())
        .with_api_keys(advertised_api_versions());
    crate::response::encode(correlation_id, 0, &response, &Splices::default())
}
