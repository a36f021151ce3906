//! A run of whole batches in a segment file, located but not read.
//!
//! Why: a fetch used to `pread` its batches into a buffer and then copy them again into the
//! encoded response; a plaintext connection can instead hand the range to the kernel with
//! `sendfile(2)`, which sends page-cache pages to the socket without copying them through
//! user space (Kafka's `FileRecords.transferTo`). Holding the file keeps the range readable
//! even if retention deletes the segment meanwhile. Below the high watermark the bytes never
//! change (appends go after them, and only a divergent tail above it is ever truncated); a
//! follower's range of a leader's uncommitted tail can be cut if that leader is deposed
//! before the range is sent, and the follower's checks then refuse what it gets, as they
//! would refuse any deposed leader's tail.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// Bytes `position..position + len` of a segment file.
#[derive(Debug, Clone)]
pub struct FileRange {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRange {
    pub(crate) fn new(file: Arc<File>, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }

    /// The same range, `by` bytes longer.
    pub(crate) fn extended(&self, by: usize) -> Self {
        Self::new(self.file.clone(), self.position, self.len + by)
    }

    /// A range of any file (tests build responses from plain files).
    #[cfg(any(test, feature = "test-util"))]
    pub fn at(file: Arc<File>, position: u64, len: usize) -> Self {
        Self::new(file, position, len)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads the range into memory. Blocking.
    pub fn read(&self) -> io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }

    /// Sends the range's bytes from `sent` on to `socket` with `sendfile(2)`, as many as the
    /// socket takes now; answers how many (`WouldBlock` when it takes none). `Ok(0)` means
    /// the file ends before the range does: it was cut after the range was located.
    #[allow(unsafe_code)]
    pub fn send_to(&self, socket: BorrowedFd<'_>, sent: usize) -> io::Result<usize> {
        let remaining = self.len.saturating_sub(sent);
        if remaining == 0 {
            return Ok(0);
        }
        let mut offset = libc::off_t::try_from(self.position + sent as u64)
            .map_err(|_| io::Error::other("a file position beyond what off_t holds"))?;
        // SAFETY: both descriptors stay open for the call (`socket` is borrowed, the file is
        // held by `self`), and `offset` is a valid, exclusively borrowed off_t the call
        // updates; no memory of ours is read or written otherwise.
        let written = unsafe {
            libc::sendfile(
                socket.as_raw_fd(),
                self.file.as_raw_fd(),
                &raw mut offset,
                remaining,
            )
        };
        usize::try_from(written).map_err(|_| io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;
    use std::os::fd::AsFd as _;

    #[test]
    fn a_range_reads_and_sends_the_same_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).expect("write");
        let range = FileRange::new(Arc::new(File::open(&path).expect("open")), 1000, 200_000);
        assert_eq!(range.read().expect("read"), data[1000..201_000]);

        let (mut reader, writer) = std::os::unix::net::UnixStream::pair().expect("pair");
        let sender = std::thread::spawn(move || {
            let mut sent = 0;
            while sent < range.len() {
                sent += range.send_to(writer.as_fd(), sent).expect("sendfile");
            }
            assert_eq!(range.send_to(writer.as_fd(), sent).expect("done"), 0);
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).expect("receive");
        sender.join().expect("sender");
        assert_eq!(received, data[1000..201_000]);
    }

    #[test]
    fn a_range_past_the_end_of_its_file_sends_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("segment");
        std::fs::write(&path, b"short").expect("write");
        let range = FileRange::new(Arc::new(File::open(&path).expect("open")), 0, 100);
        let (_reader, writer) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(range.send_to(writer.as_fd(), 0).expect("send"), 5);
        assert_eq!(
            range.send_to(writer.as_fd(), 5).expect("cut"),
            0,
            "the file ended"
        );
        assert!(range.read().is_err());
    }
}
