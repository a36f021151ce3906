//! Tiered storage: sealed log data leaves the brokers' disks for object storage.
//!
//! - [`object`]: the format of a tiered object, which packs the sealed data of many
//!   partitions (so PUTs do not grow with the partition count) behind a checksummed, versioned
//!   footer that maps each partition's offset range to its bytes (`docs/formats/object.md`).

pub mod object;
