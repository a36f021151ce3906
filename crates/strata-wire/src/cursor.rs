//! A read-only cursor over request bytes that checks every read against what remains.

use crate::BoundsError;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn skip(&mut self, len: usize, field: &'static str) -> Result<(), BoundsError> {
        self.take(len, field).map(|_| ())
    }

    pub(crate) fn take(
        &mut self,
        len: usize,
        field: &'static str,
    ) -> Result<Cursor<'a>, BoundsError> {
        if len > self.bytes.len() {
            return Err(BoundsError::Truncated {
                field,
                needed: len,
                remaining: self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(Cursor { bytes: head })
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], BoundsError> {
        let taken = self.take(N, field)?;
        Ok(taken.bytes.try_into().expect("take returned N bytes"))
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, BoundsError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, BoundsError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }

    /// An unsigned varint of at most 5 bytes that fits 32 bits.
    pub(crate) fn uvarint(&mut self, field: &'static str) -> Result<u32, BoundsError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let [byte] = self.array::<1>(field)?;
            if i == 4 && byte > 0x0f {
                return Err(BoundsError::BadVarint { field });
            }
            value |= u32::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(BoundsError::BadVarint { field })
    }
}
