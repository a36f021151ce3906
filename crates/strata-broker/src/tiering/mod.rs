//! Tiered storage on the broker: sealed log data goes to the object store, reads below the
//! local log start come back from it.
//!
//! - [`uploader`] packs sealed data of every partition this broker leads into shared objects
//!   and commits each object's segments to the manifest, fenced by leader epochs.
//! - [`block_cache`] reads objects through a foyer hybrid cache (memory, then local disk) of
//!   aligned blocks, with a bounded number of GETs in flight.
//! - [`remote_read`] turns a Fetch below the local log start into whole batches from a
//!   committed segment, the same bytes a local read would have returned.
//!
//! The lifecycle and why each step is crash-safe are in `docs/architecture.md` (Tiering).

pub mod block_cache;
pub mod metadata_backup;
pub mod producer_state;
pub mod remote_read;
pub mod retention;
pub mod sweeper;
pub mod uploader;
