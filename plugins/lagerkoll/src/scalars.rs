//! Scalar types of the models. The documentation's own examples send numbers
//! and booleans as strings at times ("deliveredAmount": "0", "vatIncluded":
//! "true"), so reading is lenient; writing always uses the documented type.
use crate::time;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use spoke_pdk::{json, Value};
use std::fmt;

/// What a field looks like in JSON Schema; models derive theirs from it.
pub trait Schema {
    fn schema() -> Value;
}

impl<T: Schema> Schema for Vec<T> {
    fn schema() -> Value {
        json!({"type": "array", "items": T::schema()})
    }
}

impl Schema for Value {
    fn schema() -> Value {
        json!({})
    }
}

macro_rules! scalar {
    ($(#[$doc:meta])* $name:ident($inner:ty), $schema:tt, $expecting:literal, |$v:ident| $from_str:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Default)]
        pub struct $name(pub $inner);

        impl Schema for $name {
            fn schema() -> Value {
                json!($schema)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                Serialize::serialize(&self.0, s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, $v: &str) -> Result<$name, E> {
                        let parsed: Option<$inner> = $from_str;
                        parsed.map($name).ok_or_else(|| E::custom(format!("expected {}, got {:?}", $expecting, $v)))
                    }
                    fn visit_bool<E: de::Error>(self, b: bool) -> Result<$name, E> {
                        self.visit_str(&b.to_string())
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$name, E> {
                        self.visit_str(&n.to_string())
                    }
                    fn visit_u64<E: de::Error>(self, n: u64) -> Result<$name, E> {
                        self.visit_str(&n.to_string())
                    }
                    fn visit_f64<E: de::Error>(self, n: f64) -> Result<$name, E> {
                        self.visit_str(&n.to_string())
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

fn integral(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| s.parse::<f64>().ok().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64))
}

scalar!(
    /// A Double/Float of the documentation.
    Num(f64), {"type": "number"}, "a number", |v| v.trim().parse::<f64>().ok().filter(|f| f.is_finite())
);
scalar!(
    /// An int/Integer/long/Long of the documentation.
    Int(i64), {"type": "integer"}, "an integer", |v| integral(v)
);
scalar!(
    /// A Boolean of the documentation.
    Flag(bool), {"type": "boolean"}, "a boolean", |v| match v.trim() { "true" => Some(true), "false" => Some(false), _ => None }
);
scalar!(
    /// A String of the documentation (numbers are taken as their text).
    Text(String), {"type": "string"}, "a string", |v| Some(v.to_string())
);
scalar!(
    /// A Date of the documentation: milliseconds since 1970 (UTC), kept as
    /// the API sends it. Input may also give an RFC 3339 date-time, which is
    /// converted to milliseconds before sending.
    Millis(i64),
    {"type": ["integer", "string"], "format": "date-time",
     "description": "milliseconds since 1970 (UTC) as Lagerkoll sends it; input also accepts an RFC 3339 date-time. Output adds the sibling `<field>Rfc3339` with the RFC 3339 rendering"},
    "milliseconds since 1970 or an RFC 3339 date-time",
    |v| integral(v).or_else(|| time::rfc3339_to_ms(v))
);

impl Millis {
    pub fn rfc3339(&self) -> String {
        time::ms_to_rfc3339(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documentation_s_stringly_values() {
        let n: Num = serde_json::from_str("\"0\"").unwrap();
        assert_eq!(n.0, 0.0);
        let b: Flag = serde_json::from_str("\"true\"").unwrap();
        assert!(b.0);
        let i: Int = serde_json::from_str("\"-1\"").unwrap();
        assert_eq!(i.0, -1);
        let t: Text = serde_json::from_str("42").unwrap();
        assert_eq!(t.0, "42");
        let m: Millis = serde_json::from_str("\"2024-04-19T22:26:11.411Z\"").unwrap();
        assert_eq!(m.0, 1713565571411);
        assert!(serde_json::from_str::<Flag>("\"yes\"").is_err());
        assert!(serde_json::from_str::<Int>("1.5").is_err());
        assert_eq!(serde_json::to_string(&Num(2.5)).unwrap(), "2.5");
    }
}
