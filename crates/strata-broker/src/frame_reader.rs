//! Reads Kafka's length-prefixed request frames from a connection through one buffer.
//!
//! One `read` usually brings a whole frame with its length prefix, and with pipelining
//! clients (librdkafka keeps up to five requests in flight) often the next frames too, so a
//! request costs one read syscall instead of one for the prefix and more for the body.
//! Frames are handed out as [`Bytes`] split off the buffer, without copying.
//!
//! Hostile lengths cost nothing: a frame's length is checked against the limit before any
//! room is made for it, and the buffer grows only as bytes actually arrive (at most doubling
//! what is already there), so a peer claiming a 100 MiB frame and sending 10 bytes holds
//! one read chunk.
//!
//! A frame larger than a read chunk first reserves its length from the broker-wide request
//! budget (Kafka's `queued.max.request.bytes`), and the reservation travels with the frame
//! until it is dropped, so all connections together never hold more request bytes than the
//! budget: a connection whose request does not fit waits, which is back-pressure, not memory.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How much room is made for a read when the buffer holds no partial frame; also the step by
/// which a large frame's room starts growing.
const READ_CHUNK: usize = 64 * 1024;

/// Why reading a frame ended the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameReadError {
    #[error(transparent)]
    Frame(#[from] strata_wire::FrameError),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A request frame's body, holding its share of the request budget until dropped.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    _reserved: Option<OwnedSemaphorePermit>,
}

/// A connection's read half with its frame buffer.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_frame: usize,
    /// The broker-wide request budget, in bytes (`None`: unlimited).
    budget: Option<Arc<Semaphore>>,
    /// The budget taken for the frame being read.
    reserved: Option<OwnedSemaphorePermit>,
    /// When the first byte of the frame being read arrived.
    partial_since: Option<Instant>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `max_frame` is `socket.request.max.bytes`: longer frames close the connection.
    /// `budget` must hold at least `max_frame` permits.
    pub fn new(reader: R, max_frame: usize, budget: Option<Arc<Semaphore>>) -> Self {
        Self {
            reader,
            buf: BytesMut::new(),
            max_frame,
            budget,
            reserved: None,
            partial_since: None,
        }
    }

    /// When the request being read began to arrive, if one is part way.
    pub fn partial_since(&self) -> Option<Instant> {
        self.partial_since
    }

    /// The next frame's body; `None` at a clean end of stream (between frames).
    ///
    /// Cancel safe: bytes read (and budget taken) before a cancellation stay for the next call.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameReadError> {
        loop {
            let missing = match self.buffered_frame_length()? {
                Some(len) if self.buf.len() >= 4 + len => {
                    self.buf.advance(4);
                    let bytes = self.buf.split_to(len).freeze();
                    self.partial_since = (!self.buf.is_empty()).then(Instant::now);
                    return Ok(Some(Frame {
                        bytes,
                        _reserved: self.reserved.take(),
                    }));
                }
                Some(len) => {
                    if len > READ_CHUNK {
                        self.reserve(len).await;
                    }
                    4 + len - self.buf.len()
                }
                None => READ_CHUNK,
            };
            self.buf
                .reserve(missing.min(READ_CHUNK.max(self.buf.len())));
            if self.reader.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(FrameReadError::Truncated)
                };
            }
            self.partial_since.get_or_insert_with(Instant::now);
        }
    }

    /// Takes `len` bytes of the request budget for the frame being read, once.
    async fn reserve(&mut self, len: usize) {
        if self.reserved.is_some() {
            return;
        }
        let Some(budget) = &self.budget else { return };
        let permits = u32::try_from(len).expect("frames are bounded by socket.request.max.bytes");
        self.reserved = budget.clone().acquire_many_owned(permits).await.ok();
    }

    /// The length of the frame at the front of the buffer, once its prefix has arrived.
    fn buffered_frame_length(&self) -> Result<Option<usize>, FrameReadError> {
        let Some(prefix) = self.buf.first_chunk::<4>() else {
            return Ok(None);
        };
        Ok(Some(strata_wire::frame_length(*prefix, self.max_frame)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(input: &[u8], max: usize) -> FrameReader<&[u8]> {
        FrameReader::new(input, max, None)
    }

    #[tokio::test]
    async fn a_frame_longer_than_the_limit_is_refused_before_reading_it() {
        let mut frames = reader(&[0x7f, 0xff, 0xff, 0xff], 1024);
        assert!(matches!(
            frames.next_frame().await,
            Err(FrameReadError::Frame(_))
        ));
    }

    #[tokio::test]
    async fn a_frame_cut_short_is_truncated_and_a_clean_end_is_none() {
        let mut cut = reader(&[0, 0, 0, 10, 1, 2, 3], 1024);
        assert!(matches!(
            cut.next_frame().await,
            Err(FrameReadError::Truncated)
        ));
        let mut cut_prefix = reader(&[0, 0], 1024);
        assert!(matches!(
            cut_prefix.next_frame().await,
            Err(FrameReadError::Truncated)
        ));
        let mut empty = reader(&[], 1024);
        assert!(matches!(empty.next_frame().await, Ok(None)));
    }

    #[tokio::test]
    async fn back_to_back_frames_come_out_whole_and_in_order() {
        let mut frames = reader(&[0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 0, 0, 0, 0, 1, 5], 1024);
        let mut bodies = Vec::new();
        while let Some(frame) = frames.next_frame().await.expect("frame") {
            bodies.push(frame.bytes.to_vec());
        }
        assert_eq!(bodies, vec![vec![7, 8, 9], vec![], vec![5]]);
    }

    #[tokio::test]
    async fn a_frame_larger_than_a_read_chunk_arrives_whole() {
        let body: Vec<u8> = (0..3 * READ_CHUNK + 17).map(|i| i as u8).collect();
        let mut input = u32::try_from(body.len())
            .expect("fits")
            .to_be_bytes()
            .to_vec();
        input.extend_from_slice(&body);
        // A reader that hands out a few bytes at a time, as a slow socket would.
        let trickle = trickle(input);
        let mut frames = FrameReader::new(trickle, body.len(), None);
        let frame = frames.next_frame().await.expect("frame").expect("some");
        assert_eq!(&frame.bytes[..], &body[..]);
        assert!(frames.next_frame().await.expect("end").is_none());
    }

    #[tokio::test]
    async fn a_lying_prefix_holds_no_more_than_one_read_chunk() {
        let mut frames = reader(&[0x05, 0, 0, 0, 1, 2], 100 << 20);
        assert!(matches!(
            frames.next_frame().await,
            Err(FrameReadError::Truncated)
        ));
        assert!(frames.buf.capacity() <= 2 * READ_CHUNK);
    }

    #[tokio::test]
    async fn large_frames_wait_for_the_request_budget_and_free_it_when_dropped() {
        let len = 2 * READ_CHUNK;
        let mut input = u32::try_from(len).expect("fits").to_be_bytes().to_vec();
        input.extend(std::iter::repeat_n(7u8, len));
        let budget = Arc::new(Semaphore::new(len));
        let mut first = FrameReader::new(&input[..], len, Some(budget.clone()));
        let held = first.next_frame().await.expect("frame").expect("some");
        assert_eq!(budget.available_permits(), 0, "the frame holds its bytes");
        let mut second = FrameReader::new(&input[..], len, Some(budget.clone()));
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(100), second.next_frame()).await;
        assert!(waiting.is_err(), "no budget left: the second request waits");
        drop(held);
        let frame = second.next_frame().await.expect("frame").expect("some");
        assert_eq!(frame.bytes.len(), len);
        drop(frame);
        assert_eq!(budget.available_permits(), len);
    }

    /// Splits `input` into reads of at most 1000 bytes.
    fn trickle(input: Vec<u8>) -> impl AsyncRead + Unpin {
        let chunks: Vec<std::io::Result<Bytes>> = input
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        tokio_util::io::StreamReader::new(futures::stream::iter(chunks))
    }
}
