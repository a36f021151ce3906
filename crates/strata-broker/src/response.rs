//! A response frame as the connection sends it: encoded bytes, ranges of segment files the
//! connection sends straight from the file (`sendfile`), so a fetch's local records never
//! pass through user space, and records already in memory (a tiered read's slice of a cached
//! block), written from where they are instead of copied into the frame.
//!
//! How: `kafka-protocol` encodes records from a `Bytes` with one `put_slice`. A fetch puts a
//! *stand-in* there for each file range ([`Splices::stand_in`]): a `Bytes` of the range's
//! length that points into [`STAND_IN`], a static, zero-filled region never read; records in
//! memory go in as they are, and are noted by their address ([`Splices::keep`]). The frame is
//! encoded into [`SplicingBuf`], which recognises a noted address, and instead of copying it
//! ends the current run of bytes and puts the file range or the records in its place. Every
//! field around the records, their length prefixes included, is the codec's own encoding.

use std::collections::HashMap;
use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ResponseHeader;
use kafka_protocol::protocol::buf::ByteBufMut;
use kafka_protocol::protocol::{Encodable, HeaderVersion};
use strata_log::FileRange;

use crate::handlers::RequestError;

/// The largest records of one response sent from their files (a stand-in's index plus its
/// length stays within it); larger ones are read into memory. Fetch responses are bounded by
/// `fetch.max.bytes` (50 MiB by default) and, past it, by one batch.
const STAND_IN_LEN: usize = 128 << 20;

/// Records shorter than this are copied into the frame instead (a file range read first):
/// each piece costs the connection a flush and a call of its own (two system calls and, with
/// `TCP_NODELAY`, a packet of its own), which outweighs copying a few kilobytes.
const MIN_SPLICED: usize = 16 << 10;

/// Stand-ins point into this; its bytes are never read or written, so its pages are never
/// touched and it costs address space only. It is `mut` only so that it lives in `.bss`: an
/// immutable static goes to `.rodata`, and the binary would carry 128 MiB of zeros.
static mut STAND_IN: [u8; STAND_IN_LEN] = [0; STAND_IN_LEN];

/// [`STAND_IN`] as a slice.
#[allow(unsafe_code)]
fn stand_in_region() -> &'static [u8] {
    // SAFETY: nothing ever writes the region, so a shared slice of it never aliases a write;
    // the pointer is to a static of exactly `STAND_IN_LEN` bytes.
    unsafe { std::slice::from_raw_parts((&raw const STAND_IN).cast::<u8>(), STAND_IN_LEN) }
}

/// One part of a frame.
#[derive(Debug, Clone)]
pub enum Piece {
    Bytes(Bytes),
    File(FileRange),
}

impl Piece {
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::File(range) => range.len(),
        }
    }
}

/// A whole response frame, length prefix included.
#[derive(Debug, Clone)]
pub struct Response {
    pieces: Vec<Piece>,
}

impl Response {
    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    /// The frame's bytes on the wire.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(Piece::len).sum()
    }

    /// The frame in memory, its file ranges read. Blocking.
    #[cfg(test)]
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.len());
        for piece in &self.pieces {
            match piece {
                Piece::Bytes(bytes) => out.extend_from_slice(bytes),
                Piece::File(range) => out.extend_from_slice(&range.read()?),
            }
        }
        Ok(out.freeze())
    }
}

impl From<Bytes> for Response {
    fn from(bytes: Bytes) -> Self {
        Self {
            pieces: vec![Piece::Bytes(bytes)],
        }
    }
}

/// The records a response sends as pieces of their own, by the address the encoder will see
/// them at.
#[derive(Debug, Default)]
pub struct Splices {
    by_address: HashMap<usize, Piece>,
    /// Stand-ins handed out: the next one starts this far into the region, so that each has
    /// an address of its own.
    stand_ins: usize,
}

impl Splices {
    /// The `Bytes` to put in a response where `range`'s bytes go: a stand-in, or (for a
    /// short range, or when the stand-ins' region is used up) the bytes themselves, read now.
    pub fn stand_in(&mut self, range: FileRange) -> std::io::Result<Bytes> {
        let span = self.stand_ins..self.stand_ins + range.len();
        if range.len() < MIN_SPLICED || span.end > STAND_IN_LEN {
            return range.read();
        }
        self.stand_ins += 1;
        let stand_in = Bytes::from_static(&stand_in_region()[span]);
        self.by_address
            .insert(stand_in.as_ptr() as usize, Piece::File(range));
        Ok(stand_in)
    }

    /// Records already in memory, to put in a response as they are: large ones are noted, so
    /// that the frame refers to them instead of copying them.
    pub fn keep(&mut self, records: Bytes) -> Bytes {
        if records.len() >= MIN_SPLICED {
            self.by_address
                .insert(records.as_ptr() as usize, Piece::Bytes(records.clone()));
        }
        records
    }

    /// The piece `slice` is, if these splices noted it. Two noted slices at one address and
    /// of one length hold the same bytes (a stand-in's address is its own), so either does.
    fn piece_for(&self, slice: &[u8]) -> Option<&Piece> {
        self.by_address
            .get(&(slice.as_ptr() as usize))
            .filter(|piece| piece.len() == slice.len())
    }
}

/// Encodes a length-prefixed response frame; stand-ins of `splices` become file pieces.
pub fn encode<T: Encodable + HeaderVersion>(
    correlation_id: i32,
    version: i16,
    response: &T,
    splices: &Splices,
) -> Result<Response, RequestError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = SplicingBuf::new(splices);
    // The frame's size, filled in once the whole frame is encoded.
    buf.put_i32(0);
    header
        .encode(&mut buf, T::header_version(version))
        .and_then(|()| response.encode(&mut buf, version))
        .map_err(|e| RequestError::Internal(format!("encoding a response failed: {e}")))?;
    buf.finish()
}

/// The encoder's buffer: bytes gathered in runs, broken by the pieces the splices noted.
struct SplicingBuf<'a> {
    run: BytesMut,
    /// Runs stay mutable until the frame's size is written into the first.
    parts: Vec<Part>,
    /// Bytes of the frame already in `parts`.
    done: usize,
    splices: &'a Splices,
}

enum Part {
    Run(BytesMut),
    Noted(Piece),
}

impl<'a> SplicingBuf<'a> {
    fn new(splices: &'a Splices) -> Self {
        Self {
            run: BytesMut::with_capacity(1024),
            parts: Vec::new(),
            done: 0,
            splices,
        }
    }

    fn end_run(&mut self) {
        if !self.run.is_empty() {
            self.done += self.run.len();
            self.parts.push(Part::Run(self.run.split()));
        }
    }

    /// The frame, its size (everything after the 4 bytes of the size) written first.
    fn finish(mut self) -> Result<Response, RequestError> {
        self.end_run();
        let size = i32::try_from(self.done - 4)
            .map_err(|_| RequestError::Internal("response over 2 GiB".into()))?;
        match self.parts.first_mut() {
            Some(Part::Run(first)) if first.len() >= 4 => {
                first[..4].copy_from_slice(&size.to_be_bytes());
            }
            _ => {
                return Err(RequestError::Internal(
                    "a response frame began with something other than its size".into(),
                ));
            }
        }
        let pieces = self
            .parts
            .into_iter()
            .map(|part| match part {
                Part::Run(run) => Piece::Bytes(run.freeze()),
                Part::Noted(piece) => piece,
            })
            .collect();
        Ok(Response { pieces })
    }

    /// `r`, a range of the frame, as a range of the current run.
    fn in_run(&self, r: Range<usize>) -> Range<usize> {
        r.start - self.done..r.end - self.done
    }
}

// SAFETY: every method delegates to `BytesMut`'s implementation, which upholds the trait's
// contract; `put_slice` either delegates too or writes nothing into the run.
#[allow(unsafe_code)]
unsafe impl BufMut for SplicingBuf<'_> {
    fn remaining_mut(&self) -> usize {
        self.run.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller's promise (`cnt` bytes of the chunk were initialised) is passed
        // on unchanged to the buffer that handed out that chunk.
        unsafe { self.run.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut bytes::buf::UninitSlice {
        self.run.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        match self.splices.piece_for(src) {
            Some(piece) => {
                let piece = piece.clone();
                self.end_run();
                self.done += piece.len();
                self.parts.push(Part::Noted(piece));
            }
            None => self.run.put_slice(src),
        }
    }
}

impl ByteBufMut for SplicingBuf<'_> {
    fn offset(&self) -> usize {
        self.done + self.run.len()
    }

    /// Only within the current run: the codec seeks to fill gaps it left for lengths, never
    /// across records.
    fn seek(&mut self, offset: usize) {
        self.run.resize(offset - self.done, 0);
    }

    fn range(&mut self, r: Range<usize>) -> &mut [u8] {
        let r = self.in_run(r);
        &mut self.run[r]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::FetchResponse;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

    /// A segment-like file holding `parts`, and a located range for each.
    fn ranges(dir: &std::path::Path, parts: &[&[u8]]) -> Vec<FileRange> {
        let path = dir.join("segment");
        std::fs::write(&path, parts.concat()).expect("write");
        let file = std::sync::Arc::new(std::fs::File::open(&path).expect("open"));
        let mut position = 0;
        parts
            .iter()
            .map(|part| {
                let range = FileRange::at(file.clone(), position, part.len());
                position += part.len() as u64;
                range
            })
            .collect()
    }

    /// The frame as `BytesMut` takes it from the codec, sized afterwards.
    fn reference_frame(correlation_id: i32, version: i16, response: &FetchResponse) -> Bytes {
        use kafka_protocol::protocol::HeaderVersion as _;
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut buf, FetchResponse::header_version(version))
            .expect("header");
        response.encode(&mut buf, version).expect("body");
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        buf.freeze()
    }

    fn response(records: &[Bytes]) -> FetchResponse {
        let partitions = records
            .iter()
            .enumerate()
            .map(|(i, r)| {
                PartitionData::default()
                    .with_partition_index(i as i32)
                    .with_high_watermark(1000 + i as i64)
                    .with_records(Some(r.clone()))
            })
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default().with_partitions(partitions),
        ])
    }

    #[test]
    fn a_spliced_frame_is_byte_for_byte_the_frame_with_the_records_in_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts: [&[u8]; 4] = [&[1; 17_000], &[2; 5], &[3; 70_000], &[4; 16_384]];
        for version in [4, 11, 12, 16, 18] {
            let mut splices = Splices::default();
            let mut records: Vec<Bytes> = ranges(dir.path(), &parts)
                .into_iter()
                .map(|range| splices.stand_in(range).expect("stand-in"))
                .collect();
            // Records in memory too (a tiered read), one large and one short.
            records.push(splices.keep(Bytes::from(vec![5; 20_000])));
            records.push(splices.keep(Bytes::from_static(&[6; 100])));
            let spliced = encode(7, version, &response(&records), &splices).expect("spliced");
            let count = |file: bool| {
                spliced
                    .pieces()
                    .iter()
                    .filter(|p| matches!(p, Piece::File(_)) == file && p.len() >= MIN_SPLICED)
                    .count()
            };
            assert_eq!(
                count(true),
                3,
                "v{version}: every file range but the short one from its file"
            );
            assert_eq!(
                count(false),
                1,
                "v{version}: the large records in memory as they are"
            );
            let mut real: Vec<Bytes> = parts.iter().map(|p| Bytes::copy_from_slice(p)).collect();
            real.push(Bytes::from(vec![5; 20_000]));
            real.push(Bytes::from_static(&[6; 100]));
            let plain = encode(7, version, &response(&real), &Splices::default()).expect("plain");
            assert_eq!(plain.pieces().len(), 1);
            assert_eq!(
                plain.to_bytes().expect("bytes"),
                reference_frame(7, version, &response(&real)),
                "v{version}: the codec's own frame"
            );
            assert_eq!(
                spliced.to_bytes().expect("read"),
                plain.to_bytes().expect("bytes"),
                "v{version}"
            );
            assert_eq!(spliced.len(), plain.len());
        }
    }

    #[test]
    fn only_a_noted_address_at_its_length_is_spliced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut splices = Splices::default();
        let stand_in = splices
            .stand_in(ranges(dir.path(), &[&[9; MIN_SPLICED]]).remove(0))
            .expect("stand-in");
        assert!(splices.piece_for(&stand_in).is_some());
        assert!(
            splices.piece_for(&stand_in[..MIN_SPLICED - 1]).is_none(),
            "a shorter slice"
        );
        assert!(
            Splices::default().piece_for(&stand_in).is_none(),
            "other splices"
        );
        assert!(
            splices.piece_for(&[0u8; MIN_SPLICED]).is_none(),
            "other memory"
        );
    }
}
