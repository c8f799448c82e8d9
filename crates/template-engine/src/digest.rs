//! A compact, unambiguous byte encoding of any `Serialize` value, for hashing rendered objects.
//!
//! Why not JSON: escaping every string (the scripts are kilobytes of quotes and newlines) cost more than the
//! rest of the hashing. Here strings are copied verbatim behind their length, and every value starts with a
//! tag byte and every container ends with a byte that cannot start a value, so the encoding is prefix-free:
//! two different values never produce the same bytes (`("ab", "c")` ≠ `("a", "bc")`, `None` ≠ `Some("")`).
//! The bytes are an implementation detail: only their sha256 leaves this crate.

use serde::ser::{self, Serialize};

/// A short, stable hash of one object (16 hex digits of the sha256 of its encoding): the `riotkit.org/spec-hash`
/// annotation a child carries, so a controller sees that what it wants changed without caching the content.
/// Stable across processes and versions of this crate as long as the encoding is.
pub fn object_hash<T: Serialize + ?Sized>(value: &T) -> String {
    use sha2::{Digest, Sha256};
    let mut buf = Vec::with_capacity(4 * 1024);
    encode(&mut buf, value);
    Sha256::digest(&buf)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends the encoding of `value` to `out`. Serialising our own k8s-openapi objects cannot fail; a failing
/// `Serialize` impl only stops the encoding early.
pub(crate) fn encode<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let _ = value.serialize(&mut Encoder { out });
}

struct Encoder<'a> {
    out: &'a mut Vec<u8>,
}

/// Never produced by the encoder itself; required by serde for `Serialize` impls that fail.
#[derive(Debug)]
pub(crate) struct EncodeError(String);

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EncodeError(msg.to_string())
    }
}

// Tags: each value starts with one of these; SEQ_END/MAP_END only close containers.
const BOOL: u8 = b'b';
const INT: u8 = b'i';
const UINT: u8 = b'u';
const FLOAT: u8 = b'f';
const STR: u8 = b's';
const BYTES: u8 = b'y';
const NONE: u8 = b'n';
const SOME: u8 = b'S';
const UNIT: u8 = b'0';
const VARIANT: u8 = b'v';
const SEQ: u8 = b'[';
const SEQ_END: u8 = b']';
const MAP: u8 = b'{';
const MAP_END: u8 = b'}';

impl Encoder<'_> {
    /// Tag, length (LEB128: one byte for the usual short strings, which keeps the hashed input small), bytes.
    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.out.push(tag);
        let mut len = bytes.len();
        while len >= 0x80 {
            self.out.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        self.out.push(len as u8);
        self.out.extend_from_slice(bytes);
    }
}

type Res = Result<(), EncodeError>;

impl<'a, 'b> ser::Serializer for &'a mut Encoder<'b> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Res {
        self.out.extend_from_slice(&[BOOL, u8::from(v)]);
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_i16(self, v: i16) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_i32(self, v: i32) -> Res {
        self.serialize_i64(v.into())
    }
    fn serialize_i64(self, v: i64) -> Res {
        self.out.push(INT);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Res {
        self.serialize_u64(v.into())
    }
    fn serialize_u16(self, v: u16) -> Res {
        self.serialize_u64(v.into())
    }
    fn serialize_u32(self, v: u32) -> Res {
        self.serialize_u64(v.into())
    }
    fn serialize_u64(self, v: u64) -> Res {
        self.out.push(UINT);
        self.out.extend_from_slice(&v.to_le_bytes());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Res {
        self.serialize_f64(v.into())
    }
    fn serialize_f64(self, v: f64) -> Res {
        self.out.push(FLOAT);
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Res {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Res {
        self.tagged(STR, v.as_bytes());
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Res {
        self.tagged(BYTES, v);
        Ok(())
    }
    fn serialize_none(self) -> Res {
        self.out.push(NONE);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Res {
        self.out.push(SOME);
        value.serialize(self)
    }
    fn serialize_unit(self) -> Res {
        self.out.push(UNIT);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Res {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Res {
        self.tagged(VARIANT, variant.as_bytes());
        self.out.push(UNIT);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Res {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Res {
        self.tagged(VARIANT, variant.as_bytes());
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, EncodeError> {
        self.out.push(SEQ);
        Ok(self)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Self, EncodeError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        self.tagged(VARIANT, variant.as_bytes());
        self.serialize_seq(Some(len))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, EncodeError> {
        self.out.push(MAP);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Self, EncodeError> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self, EncodeError> {
        self.tagged(VARIANT, variant.as_bytes());
        self.serialize_map(Some(len))
    }
}

/// Sequences and tuples: the elements, then SEQ_END.
macro_rules! seq_like {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                self.out.push(SEQ_END);
                Ok(())
            }
        }
    )*};
}
seq_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Encoder<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Res {
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Res {
        value.serialize(&mut **self)
    }
    fn end(self) -> Res {
        self.out.push(MAP_END);
        Ok(())
    }
}

/// Structs: like maps with the field names as string keys (skipped fields leave no trace, as in JSON).
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for &mut Encoder<'_> {
            type Ok = ();
            type Error = EncodeError;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Res {
                self.tagged(STR, key.as_bytes());
                value.serialize(&mut **self)
            }
            fn end(self) -> Res {
                self.out.push(MAP_END);
                Ok(())
            }
        }
    )*};
}
struct_like!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn bytes<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, v);
        out
    }

    #[test]
    fn the_object_hash_is_short_stable_and_follows_the_content() {
        let a = object_hash(&("backup.sh", "pg_dump app"));
        // Pinned: children of running clusters carry it, a changed encoding re-applies every child once.
        assert_eq!(a, "553c457104aba8b4");
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, object_hash(&("backup.sh", "pg_dump app2")));
    }

    #[test]
    fn moving_text_between_neighbouring_strings_changes_the_encoding() {
        assert_ne!(bytes(&("ab", "c")), bytes(&("a", "bc")));
        assert_ne!(bytes(&vec!["a", "b"]), bytes(&vec!["ab"]));
    }

    #[test]
    fn absent_empty_and_null_like_values_are_all_distinct() {
        let none: Option<&str> = None;
        let all = [
            bytes(&none),
            bytes(&Some("")),
            bytes(&""),
            bytes(&Vec::<String>::new()),
            bytes(&BTreeMap::<String, String>::new()),
            bytes(&()),
            bytes(&0u64),
            bytes(&0i64),
            bytes(&false),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_value_moved_between_map_entries_changes_the_encoding() {
        let a = BTreeMap::from([("k", vec!["x"]), ("l", vec![])]);
        let b = BTreeMap::from([("k", vec![]), ("l", vec!["x"])]);
        assert_ne!(bytes(&a), bytes(&b));
    }

    #[test]
    fn strings_are_copied_verbatim_without_escaping() {
        let script = "echo \"$HOME\"\n\\ 'x'";
        let out = bytes(script);
        assert_eq!(out[..2], [STR, script.len() as u8]);
        assert_eq!(&out[2..], script.as_bytes());
    }

    #[test]
    fn long_strings_carry_their_full_length() {
        // 300 = 0b10_0101100: LEB128 bytes 0xac, 0x02.
        let long = "x".repeat(300);
        let out = bytes(long.as_str());
        assert_eq!(out[..3], [STR, 0xac, 0x02]);
        assert_eq!(out.len(), 3 + 300);
        assert_ne!(bytes(long.as_str()), bytes(&"x".repeat(301)));
    }
}
