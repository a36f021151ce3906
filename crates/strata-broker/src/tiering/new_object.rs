//! Writing a new tiered object, for the uploader and the merger alike: a name never used
//! before, the chunks packed and PUT, and the deadline for committing it.

use object_store::ObjectStoreExt;
use strata_tier::object::{Chunk, Footer, encode};
use tracing::{Instrument, info_span};
use uuid::Uuid;

use super::TieringContext;
use super::sweeper::SEGMENTS_PREFIX;
use crate::error::BrokerError;

/// A name for a new object of this broker: `segments/<broker id>/<random 128-bit id>`.
pub(super) fn name(tier: &TieringContext) -> String {
    format!(
        "{SEGMENTS_PREFIX}/{}/{}",
        tier.node_id,
        Uuid::new_v4().simple()
    )
}

/// Packs `chunks` and PUTs the object under `name`; answers its footer and size. A retried
/// PUT sends the same bytes under the same name, so an ambiguous one is harmless.
pub(super) async fn put(
    tier: &TieringContext,
    name: &str,
    chunks: &[Chunk],
) -> Result<(Footer, u64), BrokerError> {
    let (parts, footer) = encode(chunks).map_err(|e| BrokerError::RemoteStorage(e.to_string()))?;
    let size = parts.iter().map(|part| part.len() as u64).sum();
    tier.store
        .put(
            &object_store::path::Path::from(name),
            parts.into_iter().collect(),
        )
        .instrument(info_span!("put", bytes = size))
        .await
        .map_err(|e| BrokerError::RemoteStorage(format!("storing {name}: {e}")))?;
    Ok((footer, size))
}

/// Refuses to commit an object written since `started` once half the orphan grace period
/// has passed: the sweeper deletes unreferenced objects past the grace period, so a later
/// commit could reference an object being deleted. The object is left for the sweeper.
pub(super) fn check_commit_deadline(
    tier: &TieringContext,
    name: &str,
    started: std::time::Instant,
) -> Result<(), BrokerError> {
    if started.elapsed() > tier.settings.orphan_grace / 2 {
        return Err(BrokerError::RemoteStorage(format!(
            "{name} was written more than half the orphan grace period ago; it is left for the sweeper"
        )));
    }
    Ok(())
}
