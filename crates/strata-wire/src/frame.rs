//! Kafka's framing: every request is a 4-byte big-endian length followed by that many bytes.

/// Why a frame's length prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {len} is negative")]
    Negative { len: i32 },
    #[error("frame of {len} bytes exceeds socket.request.max.bytes ({max})")]
    TooLarge { len: usize, max: usize },
}

/// Checks a length prefix against the configured maximum; returns the frame's length.
pub fn frame_length(prefix: [u8; 4], max_request_bytes: usize) -> Result<usize, FrameError> {
    let len = i32::from_be_bytes(prefix);
    let len = usize::try_from(len).map_err(|_| FrameError::Negative { len })?;
    if len > max_request_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_request_bytes,
        });
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_against_sign_and_limit() {
        assert_eq!(frame_length([0, 0, 0, 10], 100), Ok(10));
        assert_eq!(frame_length([0, 0, 0, 0], 100), Ok(0));
        assert_eq!(frame_length(100i32.to_be_bytes(), 100), Ok(100));
        assert_eq!(
            frame_length(101i32.to_be_bytes(), 100),
            Err(FrameError::TooLarge { len: 101, max: 100 })
        );
        assert_eq!(
            frame_length((-1i32).to_be_bytes(), 100),
            Err(FrameError::Negative { len: -1 })
        );
    }
}
