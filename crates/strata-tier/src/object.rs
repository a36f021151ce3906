//! A tiered object: the sealed log data of one or more partitions, packed, with a footer
//! saying what is where.
//!
//! ```text
//! [chunk 0][chunk 1]...[chunk n-1] [footer: rkyv archive] [trailer: 20 bytes]
//! trailer = footer length (u32 LE) | footer CRC32C (u32 LE) | format version (u32 LE) | magic "STRATAOB"
//! ```
//!
//! A chunk is a run of whole record batches of one partition, exactly as the log stored
//! them, so a Fetch served from it returns the bytes a local read would. Each footer entry
//! names the chunk's partition (topic id, partition), its offsets and timestamps, where it is
//! (byte offset and length) and the chunk's CRC32C. A reader GETs the trailer (the last 20
//! bytes), then the footer, checks both, and afterwards GETs only the byte ranges it needs.

use bytes::{BufMut, Bytes, BytesMut};
use rkyv::rancor;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Deserialize, Serialize};
use uuid::Uuid;

const MAGIC: &[u8; 8] = b"STRATAOB";
/// The layout written today.
pub const OBJECT_FORMAT_VERSION: u32 = 1;
/// The trailer's length: footer length, footer CRC, version, magic.
pub const TRAILER_LEN: usize = 4 + 4 + 4 + MAGIC.len();
/// The largest footer a reader accepts (a hostile trailer cannot make it allocate more).
pub const MAX_FOOTER_LEN: u32 = 64 << 20;

/// Where one partition's chunk is in an object.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub topic_id: [u8; 16],
    pub partition: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    /// The largest record timestamp in the chunk (for ListOffsets by time and retention).
    pub max_timestamp_ms: i64,
    /// Where the chunk starts in the object, and its length.
    pub byte_offset: u64,
    pub byte_len: u64,
    /// CRC32C of the chunk's bytes.
    pub crc32c: u32,
}

impl ChunkEntry {
    pub fn topic_id(&self) -> Uuid {
        Uuid::from_bytes(self.topic_id)
    }
}

/// The footer: every chunk of the object, in the order they are stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Footer {
    pub chunks: Vec<ChunkEntry>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectFormatError {
    #[error("not a Strata tiered object")]
    NotAnObject,
    #[error(
        "object format version {0} is not supported (this build reads {OBJECT_FORMAT_VERSION})"
    )]
    UnsupportedVersion(u32),
    #[error("footer of {len} bytes is larger than the {MAX_FOOTER_LEN} a reader accepts")]
    FooterTooLarge { len: u32 },
    #[error("footer checksum mismatch")]
    FooterChecksum,
    #[error("footer is invalid: {0}")]
    InvalidFooter(String),
    #[error("chunk {index} does not lie inside the object")]
    ChunkOutOfBounds { index: usize },
    #[error("chunk of partition {partition} at {byte_offset} fails its checksum")]
    ChunkChecksum { partition: i32, byte_offset: u64 },
}

/// One partition's sealed data, to pack.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub topic_id: Uuid,
    pub partition: i32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp_ms: i64,
    pub batches: Bytes,
}

/// Packs `chunks` into one object; answers its bytes, in order, and its footer. The parts are
/// each chunk's batches as they are, then the footer and trailer: nothing is copied, and a
/// PUT sends the parts one after another.
pub fn encode(chunks: &[Chunk]) -> Result<(Vec<Bytes>, Footer), ObjectFormatError> {
    let mut parts = Vec::with_capacity(chunks.len() + 1);
    let mut footer = Footer::default();
    let mut byte_offset = 0u64;
    for chunk in chunks {
        footer.chunks.push(ChunkEntry {
            topic_id: *chunk.topic_id.as_bytes(),
            partition: chunk.partition,
            base_offset: chunk.base_offset,
            last_offset: chunk.last_offset,
            max_timestamp_ms: chunk.max_timestamp_ms,
            byte_offset,
            byte_len: chunk.batches.len() as u64,
            crc32c: crc32c::crc32c(&chunk.batches),
        });
        byte_offset += chunk.batches.len() as u64;
        parts.push(chunk.batches.clone());
    }
    let archive = rkyv::to_bytes::<rancor::Error>(&footer)
        .map_err(|e| ObjectFormatError::InvalidFooter(e.to_string()))?;
    let footer_len = u32::try_from(archive.len())
        .map_err(|_| ObjectFormatError::FooterTooLarge { len: u32::MAX })?;
    let mut tail = BytesMut::with_capacity(archive.len() + TRAILER_LEN);
    tail.extend_from_slice(&archive);
    tail.put_u32_le(footer_len);
    tail.put_u32_le(crc32c::crc32c(&archive));
    tail.put_u32_le(OBJECT_FORMAT_VERSION);
    tail.extend_from_slice(MAGIC);
    parts.push(tail.freeze());
    Ok((parts, footer))
}

/// What the trailer says: where the footer is and its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub footer_len: u32,
    pub footer_crc32c: u32,
}

/// Reads the trailer (the object's last [`TRAILER_LEN`] bytes).
pub fn decode_trailer(trailer: &[u8]) -> Result<Trailer, ObjectFormatError> {
    let trailer: &[u8; TRAILER_LEN] = trailer
        .try_into()
        .map_err(|_| ObjectFormatError::NotAnObject)?;
    let word = |at: usize| {
        u32::from_le_bytes([
            trailer[at],
            trailer[at + 1],
            trailer[at + 2],
            trailer[at + 3],
        ])
    };
    if &trailer[12..] != MAGIC {
        return Err(ObjectFormatError::NotAnObject);
    }
    let version = word(8);
    if version != OBJECT_FORMAT_VERSION {
        return Err(ObjectFormatError::UnsupportedVersion(version));
    }
    let footer_len = word(0);
    if footer_len > MAX_FOOTER_LEN {
        return Err(ObjectFormatError::FooterTooLarge { len: footer_len });
    }
    Ok(Trailer {
        footer_len,
        footer_crc32c: word(4),
    })
}

/// Checks and decodes the footer bytes the trailer pointed at.
pub fn decode_footer(trailer: Trailer, footer: &[u8]) -> Result<Footer, ObjectFormatError> {
    if footer.len() != trailer.footer_len as usize {
        return Err(ObjectFormatError::NotAnObject);
    }
    if crc32c::crc32c(footer) != trailer.footer_crc32c {
        return Err(ObjectFormatError::FooterChecksum);
    }
    // The archive's root must be aligned; the bytes came from the network.
    let mut aligned = AlignedVec::<16>::with_capacity(footer.len());
    aligned.extend_from_slice(footer);
    rkyv::from_bytes::<Footer, rancor::Error>(&aligned)
        .map_err(|e| ObjectFormatError::InvalidFooter(e.to_string()))
}

/// Decodes a whole object: its footer, checked against the object's length.
pub fn decode(object: &[u8]) -> Result<Footer, ObjectFormatError> {
    let trailer_at = object
        .len()
        .checked_sub(TRAILER_LEN)
        .ok_or(ObjectFormatError::NotAnObject)?;
    let trailer = decode_trailer(&object[trailer_at..])?;
    let footer_at = trailer_at
        .checked_sub(trailer.footer_len as usize)
        .ok_or(ObjectFormatError::NotAnObject)?;
    let footer = decode_footer(trailer, &object[footer_at..trailer_at])?;
    for (index, entry) in footer.chunks.iter().enumerate() {
        let end = entry.byte_offset.checked_add(entry.byte_len);
        if end.is_none_or(|end| end > footer_at as u64) {
            return Err(ObjectFormatError::ChunkOutOfBounds { index });
        }
    }
    Ok(footer)
}

/// Checks a chunk's bytes (as read from the object) against its entry.
pub fn verify_chunk(entry: &ChunkEntry, bytes: &[u8]) -> Result<(), ObjectFormatError> {
    if bytes.len() as u64 != entry.byte_len || crc32c::crc32c(bytes) != entry.crc32c {
        return Err(ObjectFormatError::ChunkChecksum {
            partition: entry.partition,
            byte_offset: entry.byte_offset,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn chunk(partition: i32, base: i64, bytes: &'static [u8]) -> Chunk {
        Chunk {
            topic_id: Uuid::from_u128(7),
            partition,
            base_offset: base,
            last_offset: base + 9,
            max_timestamp_ms: 1_700_000_000_000,
            batches: Bytes::from_static(bytes),
        }
    }

    #[test]
    fn an_object_packs_chunks_and_its_footer_finds_them() {
        let chunks = [chunk(0, 0, b"partition zero"), chunk(3, 100, b"three")];
        let (parts, footer) = encode(&chunks).expect("encode");
        let object = parts.concat();
        assert_eq!(decode(&object).expect("decode"), footer);
        for (entry, chunk) in footer.chunks.iter().zip(&chunks) {
            let at = entry.byte_offset as usize;
            let bytes = &object[at..at + entry.byte_len as usize];
            assert_eq!(bytes, &chunk.batches[..]);
            verify_chunk(entry, bytes).expect("checksum");
            assert_eq!(entry.topic_id(), chunk.topic_id);
        }
        // A reader that has only the tail: trailer, then footer.
        let trailer = decode_trailer(&object[object.len() - TRAILER_LEN..]).expect("trailer");
        let footer_at = object.len() - TRAILER_LEN - trailer.footer_len as usize;
        assert_eq!(
            decode_footer(trailer, &object[footer_at..object.len() - TRAILER_LEN]),
            Ok(footer)
        );
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let (parts, footer) = encode(&[chunk(0, 0, b"abc")]).expect("encode");
        let object = parts.concat();
        let mut wrong_magic = object.to_vec();
        let last = wrong_magic.len() - 1;
        wrong_magic[last] ^= 1;
        assert_eq!(decode(&wrong_magic), Err(ObjectFormatError::NotAnObject));
        let mut flipped = object.to_vec();
        let in_footer = object.len() - TRAILER_LEN - 2;
        flipped[in_footer] ^= 1;
        assert_eq!(decode(&flipped), Err(ObjectFormatError::FooterChecksum));
        assert!(verify_chunk(&footer.chunks[0], b"abd").is_err());
        let mut huge = object.to_vec();
        let len_at = object.len() - TRAILER_LEN;
        huge[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&huge),
            Err(ObjectFormatError::FooterTooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn any_chunks_round_trip(parts in proptest::collection::vec((0i32..100, proptest::collection::vec(any::<u8>(), 0..64)), 0..8)) {
            let chunks: Vec<Chunk> = parts
                .into_iter()
                .map(|(p, data)| Chunk {
                    topic_id: Uuid::from_u128(p as u128),
                    partition: p,
                    base_offset: 0,
                    last_offset: 0,
                    max_timestamp_ms: -1,
                    batches: Bytes::from(data),
                })
                .collect();
            let (parts, footer) = encode(&chunks).expect("encode");
            let object = parts.concat();
            prop_assert_eq!(decode(&object).expect("decode"), footer.clone());
            for (entry, chunk) in footer.chunks.iter().zip(&chunks) {
                let at = entry.byte_offset as usize;
                prop_assert_eq!(&object[at..at + entry.byte_len as usize], &chunk.batches[..]);
            }
        }
    }
}
