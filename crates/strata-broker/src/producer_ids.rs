//! Producer ids for idempotent producers, unique across the cluster: the metadata quorum
//! hands each broker blocks of ids (`AllocateProducerIds`), and the broker gives them out one
//! by one. A block is never handed out twice, even across restarts (the quorum's counter only
//! moves forward), so a restarted broker simply takes a new block; the rest of the old one is
//! never used.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use strata_meta::{CommandOutcome, MetaCommand};
use strata_raft::{Controller, ControllerError};
use tracing::info;

use crate::error::BrokerError;

/// Ids per block: one quorum write per this many InitProducerId requests.
const BLOCK: u32 = 1000;

/// This broker's source of producer ids.
pub struct ProducerIds {
    controller: Arc<Controller>,
    broker_id: i32,
    block: Mutex<Range<i64>>,
}

impl std::fmt::Debug for ProducerIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIds")
            .field("broker_id", &self.broker_id)
            .field("block", &self.lock())
            .finish()
    }
}

impl ProducerIds {
    pub fn new(controller: Arc<Controller>, broker_id: i32) -> Self {
        Self {
            controller,
            broker_id,
            block: Mutex::new(0..0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Range<i64>> {
        self.block
            .lock()
            .expect("the producer id lock holder never panics")
    }

    /// A producer id no broker of the cluster has handed out before.
    pub async fn allocate(&self) -> Result<i64, BrokerError> {
        if let Some(id) = self.lock().next() {
            return Ok(id);
        }
        let fresh = self.new_block(BLOCK).await?;
        let mut block = self.lock();
        // A concurrent request may have refilled it meanwhile; keep the larger remainder.
        if block.is_empty() {
            *block = fresh;
        }
        block
            .next()
            .ok_or_else(|| unexpected("an empty producer id block"))
    }

    /// Moves the cluster's counter past `local_end`: ids this data directory handed out
    /// before the quorum kept them (a data directory from an earlier version).
    pub async fn adopt_local_ids(&self, local_end: i64) -> Result<(), BrokerError> {
        let cluster_next = self.controller.state.read(|s| s.next_producer_id());
        let Some(gap) = local_end.checked_sub(cluster_next).filter(|&gap| gap > 0) else {
            return Ok(());
        };
        let count = u32::try_from(gap).unwrap_or(u32::MAX);
        self.new_block(count).await?;
        info!(
            local_end,
            "moved the cluster's producer ids past those this data directory handed out"
        );
        Ok(())
    }

    /// After a restore from a metadata backup: blocks handed out after that backup are not
    /// in it, and their ids may still be in use. Moving the counter a whole `u32` of ids
    /// on (far more than the blocks a backup interval can see handed out; the id space
    /// holds billions of such skips) guarantees none is handed out twice.
    pub async fn skip_ids_a_backup_may_miss(&self) -> Result<(), BrokerError> {
        let skipped = self.new_block(u32::MAX).await?;
        info!(
            from = skipped.start,
            to = skipped.end,
            "skipped producer ids the restored metadata backup may not know were handed out"
        );
        Ok(())
    }

    async fn new_block(&self, count: u32) -> Result<Range<i64>, BrokerError> {
        let command = MetaCommand::AllocateProducerIds {
            broker_id: self.broker_id,
            count,
        };
        match self.controller.propose(command).await?.response {
            Ok(CommandOutcome::ProducerIdBlock { first_id, count }) => {
                Ok(first_id..first_id + i64::from(count))
            }
            Ok(
                CommandOutcome::Applied
                | CommandOutcome::SegmentsCommitted { .. }
                | CommandOutcome::SegmentsReplaced { .. }
                | CommandOutcome::Elections(_)
                | CommandOutcome::Reassignments(_),
            ) => Err(unexpected(
                "the quorum answered a producer id request without a block",
            )),
            Err(refused) => Err(BrokerError::Metadata(refused)),
        }
    }
}

fn unexpected(what: &str) -> BrokerError {
    BrokerError::ControlPlane(ControllerError::Fatal(what.to_string()))
}
