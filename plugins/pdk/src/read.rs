//! Reading vendor answers liberally.
//!
//! Once a vendor answered 2xx the work is done at the vendor; failing then
//! because a field is missing, null, extra or of a looser type than the docs
//! say orphans what the vendor made (a retry makes a second one). So typed
//! models are read with [`lenient`]: the strict reading first, and when that
//! fails, a reading that takes a missing or null field as its type's empty
//! value, `"12"` as 12, `1` as true and a number as text. Extra fields are
//! ignored by the models as usual. Callers that need what the vendor really
//! said keep the raw JSON next to the model.
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `T` read from a vendor's JSON: strictly when it fits, else liberally. The
/// error is the strict reading's, for the rare answer even the liberal
/// reading cannot take (an object where a number belongs).
pub fn lenient<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    match serde_json::from_value::<T>(value.clone()) {
        Ok(t) => Ok(t),
        Err(strict) => T::deserialize(Lenient(value)).map_err(|_| strict),
    }
}

/// A vendor record passed through its model `T` (read liberally, written
/// back as JSON), or, when even the liberal reading cannot take it, the
/// record exactly as the vendor sent it: after a 2xx the caller gets what
/// the vendor said, never an error about its shape.
pub fn through<T: DeserializeOwned + serde::Serialize>(value: Value) -> Value {
    match lenient::<T>(value.clone()).and_then(|model| serde_json::to_value(model)) {
        Ok(read) => read,
        Err(_) => value,
    }
}

/// A JSON value that deserializes into whatever the model asks for when it
/// reasonably can.
struct Lenient(Value);

fn number_of(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() { Some(0.0) } else { s.parse::<f64>().ok().or_else(|| s.replace(',', ".").parse().ok()) }
        }
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Null => Some(0.0),
        _ => None,
    }
}

fn integer_of(value: &Value) -> Option<i128> {
    match value {
        Value::Number(n) => n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from)).or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
        Value::String(s) if s.trim().parse::<i128>().is_ok() => s.trim().parse().ok(),
        other => number_of(other).filter(|f| f.fract() == 0.0).map(|f| f as i128),
    }
}

fn text_of(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn unexpected(value: &Value, wanted: &str) -> serde_json::Error {
    de::Error::custom(format!("expected {wanted}, found {value}"))
}

macro_rules! integers {
    ($($method:ident => $visit:ident as $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            let n = integer_of(&self.0).ok_or_else(|| unexpected(&self.0, "an integer"))?;
            visitor.$visit(<$ty>::try_from(n).map_err(|_| unexpected(&self.0, "an integer in range"))?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Lenient {
    type Error = serde_json::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(b),
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or_default())
                }
            }
            Value::String(s) => visitor.visit_string(s),
            Value::Array(items) => visitor.visit_seq(Seq(items.into_iter())),
            Value::Object(map) => visitor.visit_map(Fields { entries: map.into_iter(), pending: None }),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let b = match &self.0 {
            Value::Bool(b) => *b,
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" | "j" | "ja" => true,
                "false" | "0" | "no" | "n" | "nee" | "" => false,
                _ => return Err(unexpected(&self.0, "a boolean")),
            },
            other => number_of(other).map(|n| n != 0.0).ok_or_else(|| unexpected(other, "a boolean"))?,
        };
        visitor.visit_bool(b)
    }

    integers!(deserialize_i8 => visit_i64 as i64, deserialize_i16 => visit_i64 as i64, deserialize_i32 => visit_i64 as i64,
        deserialize_i64 => visit_i64 as i64, deserialize_u8 => visit_u64 as u64, deserialize_u16 => visit_u64 as u64,
        deserialize_u32 => visit_u64 as u64, deserialize_u64 => visit_u64 as u64);

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_f64(number_of(&self.0).ok_or_else(|| unexpected(&self.0, "a number"))?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_string(text_of(self.0))
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_bytes(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_byte_buf(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            other => visitor.visit_some(Lenient(other)),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A list; nothing (null, "", {}) is an empty list and a single value a list of one.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let items = match self.0 {
            Value::Array(items) => items,
            Value::Null => Vec::new(),
            Value::String(s) if s.trim().is_empty() => Vec::new(),
            Value::Object(m) if m.is_empty() => Vec::new(),
            other => vec![other],
        };
        visitor.visit_seq(Seq(items.into_iter()))
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(self, _name: &'static str, _len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        let map = match self.0 {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            Value::String(s) if s.trim().is_empty() => Map::new(),
            Value::Array(a) if a.is_empty() => Map::new(),
            other => return Err(unexpected(&other, "an object")),
        };
        visitor.visit_map(Fields { entries: map.into_iter(), pending: None })
    }

    /// A record: the fields the answer leaves out are read as null, so each
    /// becomes its type's empty value instead of "missing field".
    fn deserialize_struct<V: Visitor<'de>>(self, _name: &'static str, fields: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        let mut map = match self.0 {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            Value::String(s) if s.trim().is_empty() => Map::new(),
            Value::Array(a) if a.is_empty() => Map::new(),
            other => return Err(unexpected(&other, "an object")),
        };
        for field in fields {
            map.entry(field.to_string()).or_insert(Value::Null);
        }
        visitor.visit_map(Fields { entries: map.into_iter(), pending: None })
    }

    fn deserialize_enum<V: Visitor<'de>>(self, name: &'static str, variants: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        match self.0 {
            Value::Number(n) => visitor.visit_enum(n.to_string().into_deserializer()),
            other => other.deserialize_enum(name, variants, visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        self.deserialize_string(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
        visitor.visit_unit()
    }
}

struct Seq(std::vec::IntoIter<Value>);

impl<'de> SeqAccess<'de> for Seq {
    type Error = serde_json::Error;
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Self::Error> {
        self.0.next().map(|v| seed.deserialize(Lenient(v))).transpose()
    }
}

struct Fields {
    entries: serde_json::map::IntoIter,
    pending: Option<Value>,
}

impl<'de> MapAccess<'de> for Fields {
    type Error = serde_json::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Self::Error> {
        match self.entries.next() {
            Some((key, value)) => {
                self.pending = Some(value);
                seed.deserialize(Value::String(key)).map(Some)
            }
            None => Ok(None),
        }
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value, Self::Error> {
        seed.deserialize(Lenient(self.pending.take().unwrap_or(Value::Null)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Customer {
        name: String,
        is_business_address: bool,
        customer_id: Option<i64>,
        house_number: String,
        lines: Vec<Line>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Line {
        quantity: i64,
        price: f64,
    }

    #[test]
    fn the_strict_reading_stands_when_it_fits() {
        let c: Customer = lenient(json!({"name": "A", "is_business_address": true, "customer_id": 7, "house_number": "12", "lines": []})).unwrap();
        assert_eq!(c.customer_id, Some(7));
        assert!(c.is_business_address);
    }

    #[test]
    fn missing_null_and_extra_fields_do_not_fail() {
        let c: Customer = lenient(json!({"name": "A", "house_number": null, "extra": {"x": 1}})).unwrap();
        assert_eq!(c, Customer { name: "A".into(), is_business_address: false, customer_id: None, house_number: String::new(), lines: vec![] });
    }

    #[test]
    fn looser_types_are_read_as_the_documented_ones() {
        let c: Customer = lenient(json!({"name": 42, "is_business_address": "1", "customer_id": "7", "house_number": 12,
            "lines": {"quantity": "3", "price": "12,50"}}))
        .unwrap();
        assert_eq!(c.name, "42");
        assert!(c.is_business_address);
        assert_eq!(c.customer_id, Some(7));
        assert_eq!(c.house_number, "12");
        assert_eq!(c.lines, vec![Line { quantity: 3, price: 12.5 }]);
    }

    #[test]
    fn a_record_the_model_cannot_take_comes_through_as_sent() {
        #[derive(Debug, Deserialize, serde::Serialize)]
        struct Flat {
            n: Option<i64>,
            #[serde(flatten)]
            other: serde_json::Map<String, Value>,
        }
        assert_eq!(through::<Flat>(json!({"n": 1, "x": true})), json!({"n": 1, "x": true}));
        assert_eq!(through::<Flat>(json!({"n": "1", "x": true})), json!({"n": 1, "x": true}));
        assert_eq!(through::<Flat>(json!({"n": {"a": 1}, "x": true})), json!({"n": {"a": 1}, "x": true}));
    }

    #[test]
    fn what_cannot_be_read_keeps_the_strict_error() {
        let err = lenient::<Line>(json!({"quantity": {"a": 1}, "price": 1})).unwrap_err();
        assert!(err.to_string().contains("quantity") || err.to_string().contains("invalid type"), "{err}");
    }
}
