//! The message of an error that a type's own `Serialize` raised, which postcard drops.
//!
//! A `Serialize` implementation that refuses a value says why with `S::Error::custom("...")`, but
//! postcard's error has no room for the text: it becomes `Error::SerdeSerCustom`, "Serde
//! Serialization Error", and the user's reason is lost. When postcard reports that error, the value
//! is serialized once more into [`Discard`], a serializer that writes nothing and whose error keeps
//! the first custom message; that message then says why the argument or result could not be
//! encoded.
//!
//! The second pass runs the type's `Serialize` again: callers run both passes where a panic is
//! caught (`RemoteCall::new` for arguments, `encode_result` for results). A `Serialize` that does
//! not fail the same way twice gives no message, and postcard's own is kept.

use std::fmt::{self, Display};

use serde::ser::{self, Serialize};

/// The custom message `value`'s `Serialize` fails with, if it fails with one.
pub(crate) fn custom_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match value.serialize(Discard) {
        Err(Custom(message)) => Some(message),
        Ok(()) => None,
    }
}

/// The error of [`Discard`]: the message a `Serialize` implementation gave.
#[derive(Debug)]
pub(crate) struct Custom(String);

impl Display for Custom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Custom {}

impl ser::Error for Custom {
    fn custom<T: Display>(message: T) -> Self {
        Custom(message.to_string())
    }
}

/// A serializer that accepts every value and writes nothing: it visits a value the way postcard
/// does (every field, element and entry, not human-readable), so that the `Serialize` calls that
/// failed under postcard fail here too, and the first failure's message comes back as [`Custom`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Discard;

impl ser::Serializer for Discard {
    type Ok = ();
    type Error = Custom;
    type SerializeSeq = Discard;
    type SerializeTuple = Discard;
    type SerializeTupleStruct = Discard;
    type SerializeTupleVariant = Discard;
    type SerializeMap = Discard;
    type SerializeStruct = Discard;
    type SerializeStructVariant = Discard;

    fn serialize_bool(self, _: bool) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_i8(self, _: i8) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_i16(self, _: i16) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_i32(self, _: i32) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_i64(self, _: i64) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_i128(self, _: i128) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_u8(self, _: u8) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_u16(self, _: u16) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_u32(self, _: u32) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_u64(self, _: u64) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_u128(self, _: u128) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_f32(self, _: f32) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_f64(self, _: f64) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_char(self, _: char) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_str(self, _: &str) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_bytes(self, _: &[u8]) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_none(self) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Custom> {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), Custom> {
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Custom> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), Custom> {
        value.serialize(self)
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_tuple(self, _: usize) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Discard, Custom> {
        Ok(self)
    }

    fn collect_str<T: Display + ?Sized>(self, _: &T) -> Result<(), Custom> {
        Ok(())
    }

    fn is_human_readable(&self) -> bool {
        false // as postcard, so that a type serializes the same way under both
    }
}

impl ser::SerializeSeq for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeTuple for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeTupleStruct for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeTupleVariant for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeMap for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Custom> {
        key.serialize(Discard)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeStruct for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

impl ser::SerializeStructVariant for Discard {
    type Ok = ();
    type Error = Custom;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), Custom> {
        value.serialize(Discard)
    }

    fn end(self) -> Result<(), Custom> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::ser::Error as _;

    /// Refuses to be serialized, with `self.0` as the reason.
    struct Refuses(&'static str);

    impl Serialize for Refuses {
        fn serialize<S: ser::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(S::Error::custom(self.0))
        }
    }

    #[derive(serde::Serialize)]
    enum Nested {
        Deep {
            fine: u128,
            list: Vec<Option<(u8, Refuses)>>,
        },
    }

    #[test]
    fn the_first_custom_message_is_found_however_deep() {
        assert_eq!(custom_message(&Refuses("top")).as_deref(), Some("top"));
        let nested = Nested::Deep {
            fine: 1,
            list: vec![
                None,
                Some((1, Refuses("first"))),
                Some((2, Refuses("second"))),
            ],
        };
        assert_eq!(custom_message(&nested).as_deref(), Some("first"));
        let map: std::collections::BTreeMap<u8, Refuses> = [(7, Refuses("in a map"))].into();
        assert_eq!(custom_message(&map).as_deref(), Some("in a map"));
    }

    #[test]
    fn a_value_that_serializes_has_no_message() {
        assert_eq!(custom_message(&("text", 1u64, vec![1.5f32], 1i128)), None);
        // postcard drops the message; this module finds it again.
        let postcard = postcard::to_stdvec(&Refuses("why")).unwrap_err();
        assert_eq!(postcard, postcard::Error::SerdeSerCustom);
    }
}
