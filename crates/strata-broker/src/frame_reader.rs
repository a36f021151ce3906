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

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

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

/// A connection's read half with its frame buffer.
pub struct FrameReader<R> {
    reader: R,
    buf: BytesMut,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// `max_frame` is `socket.request.max.bytes`: longer frames close the connection.
    pub fn new(reader: R, max_frame: usize) -> Self {
        Self {
            reader,
            buf: BytesMut::new(),
            max_frame,
        }
    }

    /// The next frame's body; `None` at a clean end of stream (between frames).
    ///
    /// Cancel safe: bytes read before a cancellation stay buffered for the next call.
    pub async fn next_frame(&mut self) -> Result<Option<Bytes>, FrameReadError> {
        loop {
            let missing = match self.buffered_frame_length()? {
                Some(len) if self.buf.len() >= 4 + len => {
                    self.buf.advance(4);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
                Some(len) => 4 + len - self.buf.len(),
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
        }
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
        FrameReader::new(input, max)
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
            bodies.push(frame.to_vec());
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
        let mut frames = FrameReader::new(trickle, body.len());
        let frame = frames.next_frame().await.expect("frame").expect("some");
        assert_eq!(&frame[..], &body[..]);
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

    /// Splits `input` into reads of at most 1000 bytes.
    fn trickle(input: Vec<u8>) -> impl AsyncRead + Unpin {
        let chunks: Vec<std::io::Result<Bytes>> = input
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        tokio_util::io::StreamReader::new(futures::stream::iter(chunks))
    }
}
