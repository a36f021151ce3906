//! The request layouts the bounds walker follows, generated from Kafka's JSON message specs
//! (`common/message/*Request.json`, by `scripts/gen-wire-schema.py` into [`generated`]): for
//! each field, the versions it is present in and its type. Flexible versions use compact
//! lengths and end every struct with a tagged-fields section; tagged fields Kafka declares
//! are listed with their tag so their payload is walked too.
//!
//! Nullability is not tracked: a null where Kafka forbids one is bounded (it has no length)
//! and `kafka-protocol` rejects it while decoding, which is an error, not an allocation.

/// A field's wire type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    /// A fixed number of bytes: bool/int8 1, int16 2, int32 4, int64/float64 8, uuid 16.
    Fixed(usize),
    /// A (nullable) string: int16 length, or compact (unsigned varint length+1).
    Str,
    /// (Nullable) bytes or records: int32 length, or compact.
    Bytes,
    /// An array of elements: int32 count, or compact (count+1); -1/0 is null.
    Array(&'static Ty),
    /// A nested structure.
    Struct(&'static [Field]),
}

/// One field of a request structure.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub min: i16,
    pub max: i16,
    pub ty: Ty,
    /// `Some(tag)` for a tagged field (present only in the tagged-fields section).
    pub tag: Option<u32>,
}

impl Field {
    pub(crate) fn in_version(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// The layout of one API's request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schema {
    pub api_key: i16,
    pub min: i16,
    pub max: i16,
    pub flexible_from: i16,
    pub fields: &'static [Field],
}

mod generated;

pub(crate) use generated::SCHEMAS;

pub(crate) const ANY: i16 = i16::MAX;
const BOOL: Ty = Ty::Fixed(1);
const INT8: Ty = Ty::Fixed(1);
const INT16: Ty = Ty::Fixed(2);
pub(crate) const INT32: Ty = Ty::Fixed(4);
const INT64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);

pub(crate) const fn f(name: &'static str, min: i16, max: i16, ty: Ty) -> Field {
    Field {
        name,
        min,
        max,
        ty,
        tag: None,
    }
}

const fn tagged(name: &'static str, tag: u32, min: i16, ty: Ty) -> Field {
    Field {
        name,
        min,
        max: ANY,
        ty,
        tag: Some(tag),
    }
}

pub(crate) fn schema_for(api_key: i16) -> Option<&'static Schema> {
    SCHEMAS.iter().find(|s| s.api_key == api_key)
}
