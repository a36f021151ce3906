//! The allocation-free walk of a request by its [`Schema`](crate::schema::Schema).

use crate::BoundsError;
use crate::cursor::Cursor;
use crate::schema::{Field, Ty, schema_for};

/// The fixed start of every request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestStart {
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
}

/// Reads api key, version and correlation id without trusting anything else in the frame.
pub fn peek_header(frame: &[u8]) -> Result<RequestStart, BoundsError> {
    let mut cursor = Cursor::new(frame);
    Ok(RequestStart {
        api_key: cursor.i16("api_key")?,
        api_version: cursor.i16("api_version")?,
        correlation_id: cursor.i32("correlation_id")?,
    })
}

/// Proves that `kafka-protocol` can decode `frame` (a whole request after its length prefix)
/// without allocating from a length the bytes cannot back: every array, string and bytes
/// length fits in what remains, and every declared tagged field's payload is exactly its
/// declared size. Bytes after the request are tolerated, as Kafka does.
pub fn check_request(frame: &[u8]) -> Result<(), BoundsError> {
    let start = peek_header(frame)?;
    let unsupported = BoundsError::UnsupportedApi {
        api_key: start.api_key,
        api_version: start.api_version,
    };
    let schema = schema_for(start.api_key).ok_or(unsupported.clone())?;
    if !(schema.min..=schema.max).contains(&start.api_version) {
        return Err(unsupported);
    }
    let version = start.api_version;
    let flexible = version >= schema.flexible_from;
    let mut cursor = Cursor::new(frame);
    cursor.skip(8, "request header")?;
    // The header's client id is a classic nullable string even in flexible versions.
    walk_str(&mut cursor, false, "client_id")?;
    let mut walk = Walk::new(version);
    if flexible {
        walk.tagged(&mut cursor, &[], "request header")?;
    }
    walk.fields(&mut cursor, schema.fields, flexible)
}

/// The most array elements (strings, structs) one request may hold. The decoder allocates
/// each element in memory (an empty compact string is 1 byte on the wire but 32 decoded),
/// so the element count, not the frame size, bounds what decoding a request can allocate.
/// Kafka's largest real requests (fetches of every partition a broker leads) hold tens of
/// thousands.
pub const MAX_REQUEST_ELEMENTS: usize = 1 << 20;

/// One walk of a request (or of a blob inside one): its version and the element budget it
/// has left.
pub(crate) struct Walk {
    version: i16,
    elements_left: usize,
}

impl Walk {
    pub(crate) fn new(version: i16) -> Self {
        Self {
            version,
            elements_left: MAX_REQUEST_ELEMENTS,
        }
    }

    pub(crate) fn fields(
        &mut self,
        cursor: &mut Cursor<'_>,
        fields: &[Field],
        flexible: bool,
    ) -> Result<(), BoundsError> {
        let version = self.version;
        for field in fields
            .iter()
            .filter(|f| f.tag.is_none() && f.in_version(version))
        {
            self.ty(cursor, &field.ty, flexible, field.name)?;
        }
        if flexible {
            self.tagged(cursor, fields, "tagged fields")?;
        }
        Ok(())
    }

    fn tagged(
        &mut self,
        cursor: &mut Cursor<'_>,
        fields: &[Field],
        context: &'static str,
    ) -> Result<(), BoundsError> {
        let count = cursor.uvarint(context)?;
        if count as usize > cursor.remaining() {
            return Err(BoundsError::BadLength {
                field: context,
                len: i64::from(count),
                remaining: cursor.remaining(),
            });
        }
        for _ in 0..count {
            let tag = cursor.uvarint(context)?;
            let size = cursor.uvarint(context)? as usize;
            let mut payload = cursor.take(size, context)?;
            let declared = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.in_version(self.version));
            if let Some(field) = declared {
                // kafka-protocol decodes a known tag from the stream, not from `size` bytes.
                self.ty(&mut payload, &field.ty, true, field.name)?;
                if payload.remaining() != 0 {
                    return Err(BoundsError::TaggedSizeMismatch {
                        field: field.name,
                        declared: size,
                        extra: payload.remaining(),
                    });
                }
            }
        }
        Ok(())
    }

    fn ty(
        &mut self,
        cursor: &mut Cursor<'_>,
        ty: &Ty,
        flexible: bool,
        field: &'static str,
    ) -> Result<(), BoundsError> {
        match ty {
            Ty::Fixed(n) => cursor.skip(*n, field),
            Ty::Str => walk_str(cursor, flexible, field),
            Ty::Bytes => {
                let len = if flexible {
                    compact_len(cursor, field)?
                } else {
                    i64::from(cursor.i32(field)?)
                };
                skip_len(cursor, len, field)
            }
            Ty::Array(element) => {
                let count = if flexible {
                    compact_len(cursor, field)?
                } else {
                    i64::from(cursor.i32(field)?)
                };
                if count < 0 {
                    return check_null(count, field, cursor.remaining());
                }
                // Every element takes at least one byte: a count above the bytes left is a lie.
                let count = usize::try_from(count).unwrap_or(usize::MAX);
                if count > cursor.remaining() {
                    return Err(BoundsError::BadLength {
                        field,
                        len: count as i64,
                        remaining: cursor.remaining(),
                    });
                }
                if let Ty::Fixed(n) = element {
                    // Fixed-width elements decode no larger than they are on the wire.
                    return cursor.skip(count.saturating_mul(*n), field);
                }
                self.elements_left =
                    self.elements_left
                        .checked_sub(count)
                        .ok_or(BoundsError::TooManyElements {
                            field,
                            max: MAX_REQUEST_ELEMENTS,
                        })?;
                for _ in 0..count {
                    self.ty(cursor, element, flexible, field)?;
                }
                Ok(())
            }
            Ty::Struct(fields) => self.fields(cursor, fields, flexible),
        }
    }
}

fn walk_str(
    cursor: &mut Cursor<'_>,
    compact: bool,
    field: &'static str,
) -> Result<(), BoundsError> {
    let len = if compact {
        compact_len(cursor, field)?
    } else {
        i64::from(cursor.i16(field)?)
    };
    skip_len(cursor, len, field)
}

/// A compact length: unsigned varint N, meaning N-1 (N = 0 is null, returned as -1).
fn compact_len(cursor: &mut Cursor<'_>, field: &'static str) -> Result<i64, BoundsError> {
    Ok(i64::from(cursor.uvarint(field)?) - 1)
}

fn skip_len(cursor: &mut Cursor<'_>, len: i64, field: &'static str) -> Result<(), BoundsError> {
    if len < 0 {
        return check_null(len, field, cursor.remaining());
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > cursor.remaining() {
        return Err(BoundsError::BadLength {
            field,
            len: len as i64,
            remaining: cursor.remaining(),
        });
    }
    cursor.skip(len, field)
}

/// -1 is null; any other negative length is malformed.
fn check_null(len: i64, field: &'static str, remaining: usize) -> Result<(), BoundsError> {
    if len == -1 {
        Ok(())
    } else {
        Err(BoundsError::BadLength {
            field,
            len,
            remaining,
        })
    }
}
